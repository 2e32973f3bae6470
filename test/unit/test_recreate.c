// SPDX-License-Identifier: MIT
/*
 * The per-kind recreate operations (replayer/recreate.h), each checked
 * against what the kernel says of the created file: its fdinfo, poll(),
 * getsockname/getsockopt.  Cases that need an ordinary user run in a
 * forked child that switches to nobody.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "epollcr_image.h"
#include "recreate.h"

static char why[512], note[512];

static struct recreate_req req(bool cloexec)
{
	why[0] = note[0] = '\0';
	return (struct recreate_req){
		.cloexec = cloexec,
		.why = why, .why_len = sizeof(why),
		.note = note, .note_len = sizeof(note),
	};
}

/*
 * Room for the out-of-line addresses of the targets a test builds (by
 * value, never freed): a socket target gets two zeroed buffers, in turn.
 */
static struct sockaddr_storage *addr_room(void)
{
	static struct sockaddr_storage room[8];
	static unsigned next;
	struct sockaddr_storage *ss = &room[next++ % 8];

	memset(ss, 0, sizeof(*ss));
	return ss;
}

static struct image_target target(uint32_t kind)
{
	struct image_target t = { .id = 1, .kind = kind, .file_flags = O_RDWR };

	if (kind == IMAGE_KIND_SOCKET) {
		t.u.sock.addrp = addr_room();
		t.u.sock.peerp = addr_room();
	}
	return t;
}

static int create(const struct image_target *t, bool cloexec)
{
	struct recreate_req r = req(cloexec);
	int fd = -1, ret = recreate_ops_of(t->kind)->recreate(t, &r, &fd);

	if (ret < 0)
		fail_msg("recreate %s: %d %s", image_kind_name(t->kind), ret, why);
	return fd;
}

/* A "key:" field of fd's fdinfo, as text. */
static const char *field(int fd, const char *key)
{
	static char text[4096], val[256];
	char path[64], *p, *q;
	ssize_t n;
	int pfd;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	pfd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(pfd >= 0);
	n = read(pfd, text, sizeof(text) - 1);
	close(pfd);
	assert_true(n > 0);
	text[n] = '\0';
	p = strstr(text, key);
	if (!p)
		fail_msg("no %s in %s", key, text);
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	q = strchr(p, '\n');
	snprintf(val, sizeof(val), "%.*s", (int)(q ? q - p : (long)strlen(p)), p);
	return val;
}

static unsigned file_flags(int fd)
{
	return (unsigned)strtoul(field(fd, "flags:"), NULL, 8);
}

static short polled(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

	assert_true(poll(&p, 1, 0) >= 0);
	return p.revents;
}

/* Become user nobody, with no supplementary groups. */
static int setgroups_nobody(void)
{
	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0)
		return -errno;
	return 0;
}

/* Run fn in a child as user nobody; the child's exit status is checked. */
static void as_nobody(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups_nobody() < 0)
			_exit(90);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- eventfd ---- */

static void test_eventfd(void **state)
{
	struct image_target t = target(IMAGE_KIND_EVENTFD);
	int fd;

	t.u.efd.count = 7;
	t.u.efd.semaphore = 1;
	t.file_flags = O_RDWR | O_NONBLOCK;
	fd = create(&t, true);
	assert_string_equal(field(fd, "eventfd-count:"), "7");
	assert_string_equal(field(fd, "eventfd-semaphore:"), "1");
	assert_true(file_flags(fd) & O_NONBLOCK);
	assert_true(file_flags(fd) & O_CLOEXEC);
	close(fd);
	t = target(IMAGE_KIND_EVENTFD);
	t.u.efd.count = 0xfffffffffffffffeULL;
	fd = create(&t, false);
	assert_string_equal(field(fd, "eventfd-count:"), "fffffffffffffffe");
	assert_false(file_flags(fd) & (O_CLOEXEC | O_NONBLOCK));
	close(fd);
}

static void test_eventfd_bad_count(void **state)
{
	struct image_target t = target(IMAGE_KIND_EVENTFD);
	struct recreate_req r = req(true);
	int fd = -1;

	t.u.efd.count = UINT64_MAX;
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &r, &fd),
			 -EINVAL);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(why, "above the largest value"));
}

/* make_ready adds 1; undo_ready takes back exactly that 1. */
static void test_eventfd_ready(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_EVENTFD);
	struct image_target t = target(IMAGE_KIND_EVENTFD);

	for (int sem = 0; sem < 2; sem++) {
		for (uint64_t count = 0; count <= 5; count += 5) {
			struct recreate_ready rr = { .peer_fd = -1, .aux_fd = -1 };
			char want[32];

			t.u.efd.count = count;
			t.u.efd.semaphore = (uint32_t)sem;
			rr.fd = create(&t, true);
			assert_int_equal(ops->make_ready(&t, &rr, why, sizeof(why)), 0);
			assert_true(polled(rr.fd) & POLLIN);
			ops->undo_ready(&t, &rr);
			snprintf(want, sizeof(want), "%llx", (unsigned long long)count);
			assert_string_equal(field(rr.fd, "eventfd-count:"), want);
			close(rr.fd);
		}
	}
}

/* ---- timerfd ---- */

static void test_timerfd(void **state)
{
	struct image_target t = target(IMAGE_KIND_TIMERFD);
	struct itimerspec its;
	int fd;

	t.u.tfd.clockid = CLOCK_MONOTONIC;
	t.u.tfd.value_ns = 5000000000ULL;
	t.u.tfd.interval_ns = 1000000ULL;
	t.u.tfd.ticks = 4;
	fd = create(&t, true);
	assert_string_equal(field(fd, "it_interval:"), "(0, 1000000)");
	assert_string_equal(field(fd, "ticks:"), "4");
	assert_int_equal(timerfd_gettime(fd, &its), 0);
	assert_true(its.it_value.tv_sec == 4 || its.it_value.tv_sec == 5);
	close(fd);
	/* Disarmed with an interval: stays disarmed, interval kept. */
	t = target(IMAGE_KIND_TIMERFD);
	t.u.tfd.clockid = CLOCK_REALTIME;
	t.u.tfd.interval_ns = 3000000000ULL;
	fd = create(&t, true);
	assert_string_equal(field(fd, "it_value:"), "(0, 0)");
	assert_string_equal(field(fd, "it_interval:"), "(3, 0)");
	close(fd);
}

static void test_timerfd_bad_flags(void **state)
{
	struct image_target t = target(IMAGE_KIND_TIMERFD);
	struct recreate_req r = req(true);
	int fd = -1;

	t.u.tfd.clockid = CLOCK_MONOTONIC;
	t.u.tfd.settime_flags = 0x80;
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &r, &fd),
			 -EINVAL);
	t.u.tfd.settime_flags = 0;
	t.u.tfd.clockid = 12345;
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &r, &fd),
			 -EINVAL);
	assert_int_equal(fd, -1);
}

static void test_timerfd_ready(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_TIMERFD);
	struct image_target t = target(IMAGE_KIND_TIMERFD);
	struct recreate_ready rr = { .peer_fd = -1, .aux_fd = -1 };

	t.u.tfd.clockid = CLOCK_MONOTONIC;
	rr.fd = create(&t, true);
	assert_false(polled(rr.fd) & POLLIN);
	assert_int_equal(ops->make_ready(&t, &rr, why, sizeof(why)), 0);
	assert_true(polled(rr.fd) & POLLIN);
	ops->undo_ready(&t, &rr);
	assert_false(polled(rr.fd) & POLLIN);
	assert_string_equal(field(rr.fd, "ticks:"), "0");
	close(rr.fd);
}

static void alarm_as_nobody(void)
{
	struct image_target t = target(IMAGE_KIND_TIMERFD);
	struct recreate_req r = req(true);
	int fd = -1;

	t.u.tfd.clockid = CLOCK_REALTIME_ALARM;
	if (recreate_ops_of(t.kind)->recreate(&t, &r, &fd) != -EOPNOTSUPP ||
	    !strstr(why, "CAP_WAKE_ALARM"))
		_exit(1);
}

static void test_timerfd_alarm_unprivileged(void **state)
{
	as_nobody(alarm_as_nobody);
}

/* ---- signalfd ---- */

static void test_signalfd(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_SIGNALFD);
	struct image_target t = target(IMAGE_KIND_SIGNALFD);
	struct recreate_ready rr = { .peer_fd = -1, .aux_fd = -1 };
	sigset_t set, old;

	t.u.sfd.mask = 1ULL << (SIGUSR2 - 1) | 1ULL << (SIGWINCH - 1);
	rr.fd = create(&t, true);
	assert_int_equal(strtoull(field(rr.fd, "sigmask:"), NULL, 16),
			 t.u.sfd.mask);
	/* Not blocked: raising one would deliver it. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGWINCH);
	assert_int_equal(sigprocmask(SIG_UNBLOCK, &set, &old), 0);
	assert_int_equal(ops->make_ready(&t, &rr, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(why, "blocked"));
	/* Blocked: pending for a moment, then read back. */
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	assert_int_equal(sigprocmask(SIG_BLOCK, &set, NULL), 0);
	assert_int_equal(ops->make_ready(&t, &rr, why, sizeof(why)), 0);
	assert_true(polled(rr.fd) & POLLIN);
	ops->undo_ready(&t, &rr);
	assert_false(polled(rr.fd) & POLLIN);
	assert_int_equal(sigpending(&set), 0);
	assert_int_equal(sigismember(&set, SIGWINCH), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
	close(rr.fd);
}

/* ---- epoll, other ---- */

static void test_epoll_other(void **state)
{
	struct image_target t = target(IMAGE_KIND_EPOLL);
	const struct recreate_ops *ops;
	int fd = create(&t, false);
	char link[64];

	assert_false(file_flags(fd) & O_CLOEXEC);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	close(fd);
	assert_null(recreate_ops_of(IMAGE_KIND_EPOLL)->make_ready);
	ops = recreate_ops_of(IMAGE_KIND_OTHER);
	t = target(IMAGE_KIND_OTHER);
	assert_int_equal(ops->can_recreate(&t, false, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_null(ops->recreate);
	assert_ptr_equal(recreate_ops_of(999), ops);
	assert_int_equal(recreate_poll_now(fd), -EBADF);
}

/* ---- pipes ---- */

static struct image_target pipe_end(uint32_t id, bool wr, uint32_t peer)
{
	struct image_target t = target(IMAGE_KIND_PIPE);

	t.id = id;
	t.u.pipe.write_end = wr;
	t.u.pipe.peer = peer;
	t.file_flags = wr ? O_WRONLY : O_RDONLY;
	return t;
}

static void test_pipe_pair(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_PIPE);
	struct image_target w = pipe_end(1, true, 2), r = pipe_end(2, false, 1);
	struct recreate_req q = req(true);
	struct recreate_ready rr = { .aux_fd = -1 };
	int fds[2], avail = -1;
	char c;

	w.file_flags |= O_NONBLOCK;
	r.u.pipe.pending = 3;
	assert_int_equal(ops->recreate_pair(&w, &r, &q, fds), 0);
	assert_true(file_flags(fds[0]) & O_NONBLOCK);
	assert_false(file_flags(fds[1]) & O_NONBLOCK);
	assert_int_equal(write(fds[0], "z", 1), 1);
	assert_int_equal(read(fds[1], &c, 1), 1);
	assert_non_null(strstr(note, "3 pending bytes"));
	/* The read end is made readable through the write end, then not. */
	rr.fd = fds[1];
	rr.peer_fd = fds[0];
	assert_int_equal(ops->make_ready(&r, &rr, why, sizeof(why)), 0);
	assert_true(polled(fds[1]) & POLLIN);
	ops->undo_ready(&r, &rr);
	assert_int_equal(ioctl(fds[1], FIONREAD, &avail), 0);
	assert_int_equal(avail, 0);
	rr.fd = fds[0];
	assert_int_equal(ops->make_ready(&w, &rr, why, sizeof(why)),
			 -EOPNOTSUPP);
	close(fds[0]);
	close(fds[1]);
	/* Two read ends do not make a pipe. */
	q = req(true);
	assert_int_equal(ops->recreate_pair(&r, &r, &q, fds), -EINVAL);
}

static void test_pipe_lone(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_PIPE);
	struct image_target r = pipe_end(1, false, IMAGE_NONE);
	struct image_target f = pipe_end(2, false, IMAGE_NONE);
	struct recreate_ready rr = { .peer_fd = -1, .aux_fd = -1 };
	int fd = create(&r, true);

	assert_non_null(strstr(note, "the write end of this pipe is not in the image"));
	assert_true(polled(fd) & POLLHUP);
	rr.fd = fd;
	assert_int_equal(ops->make_ready(&r, &rr, why, sizeof(why)),
			 -EOPNOTSUPP);
	close(fd);
	f.path = (char *)"/tmp/some-fifo";
	assert_int_equal(ops->can_recreate(&f, false, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(why, "FIFO"));
}

/* ---- sockets ---- */

static struct image_target inet_sock(uint32_t type, uint32_t flags,
				     uint16_t port)
{
	struct image_target t = target(IMAGE_KIND_SOCKET);
	struct sockaddr_in *in = (void *)t.u.sock.addrp;

	t.u.sock.domain = AF_INET;
	t.u.sock.type = type;
	t.u.sock.flags = flags;
	t.u.sock.backlog = -1;
	t.u.sock.addr_len = sizeof(*in);
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return t;
}

static int sockopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

static void test_socket_listen(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_SOCKET);
	struct image_target t = inet_sock(SOCK_STREAM,
					  IMAGE_SOCK_BOUND | IMAGE_SOCK_LISTENING |
						  IMAGE_SOCK_REUSEPORT,
					  0);
	struct recreate_ready rr = { .peer_fd = -1, .aux_fd = -1 };
	struct sockaddr_in in;
	socklen_t len = sizeof(in);
	int fd = create(&t, true);

	assert_int_equal(sockopt(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
	assert_int_equal(sockopt(fd, SOL_SOCKET, SO_REUSEPORT), 1);
	assert_int_equal(sockopt(fd, SOL_SOCKET, SO_REUSEADDR), 0);
	assert_int_equal(getsockname(fd, (void *)&in, &len), 0);
	assert_int_equal(in.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	/* Ready through a loopback connection, accepted and closed after. */
	rr.fd = fd;
	assert_false(polled(fd) & POLLIN);
	assert_int_equal(ops->make_ready(&t, &rr, why, sizeof(why)), 0);
	assert_true(polled(fd) & POLLIN);
	assert_true(rr.aux_fd >= 0);
	ops->undo_ready(&t, &rr);
	assert_false(polled(fd) & POLLIN);
	assert_int_equal(rr.aux_fd, -1);
	close(fd);
}

static void test_socket_udp_connected(void **state)
{
	struct image_target t = inet_sock(SOCK_DGRAM,
					  IMAGE_SOCK_BOUND | IMAGE_SOCK_CONNECTED,
					  0);
	struct sockaddr_in *peer = (void *)t.u.sock.peerp, got;
	socklen_t len = sizeof(got);
	int fd;

	peer->sin_family = AF_INET;
	peer->sin_port = htons(53);
	peer->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t.u.sock.peer_len = sizeof(*peer);
	t.file_flags = O_RDWR | O_NONBLOCK;
	assert_int_equal(recreate_ops_of(t.kind)->can_recreate(&t, false, why,
							       sizeof(why)),
			 0);
	fd = create(&t, true);
	assert_int_equal(getpeername(fd, (void *)&got, &len), 0);
	assert_int_equal(got.sin_port, htons(53));
	assert_true(file_flags(fd) & O_NONBLOCK);
	close(fd);
}

static void test_socket_unrestorable(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_SOCKET);
	struct image_target t = inet_sock(SOCK_STREAM,
					  IMAGE_SOCK_BOUND | IMAGE_SOCK_CONNECTED,
					  1);
	struct recreate_req q = req(true);
	int fd = -1;

	assert_int_equal(ops->can_recreate(&t, false, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(why, "TCP_REPAIR"));
	t.u.sock.domain = AF_UNIX;
	assert_int_equal(ops->can_recreate(&t, false, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(why, "peer is not in the image"));
	t.u.sock.flags = IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED;
	assert_int_equal(ops->can_recreate(&t, false, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_int_equal(ops->can_recreate(&t, true, why, sizeof(why)), 0);
	/* A connection that ended: refused, bound or not. */
	t = inet_sock(SOCK_STREAM, IMAGE_SOCK_BOUND | IMAGE_SOCK_ENDED, 0);
	assert_int_equal(ops->can_recreate(&t, false, why, sizeof(why)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(why, "connection ended"));
	/* Bad input: unknown flags, an address of another family. */
	t = inet_sock(SOCK_STREAM, 0x100, 0);
	assert_int_equal(ops->recreate(&t, &q, &fd), -EINVAL);
	t = inet_sock(SOCK_STREAM, IMAGE_SOCK_BOUND, 0);
	t.u.sock.addrp->ss_family = AF_INET6;
	assert_int_equal(ops->recreate(&t, &q, &fd), -EINVAL);
	assert_non_null(strstr(why, "bad bound address"));
	t = inet_sock(SOCK_STREAM, IMAGE_SOCK_BOUND, 0);
	t.u.sock.addr_len = 1000;
	assert_int_equal(ops->recreate(&t, &q, &fd), -EINVAL);
	/* A family that does not exist: cannot be made here. */
	t = inet_sock(SOCK_STREAM, 0, 0);
	t.u.sock.domain = 200;
	assert_int_equal(ops->recreate(&t, &q, &fd), -EOPNOTSUPP);
	assert_int_equal(fd, -1);
	t = inet_sock(SOCK_DGRAM, 0, 0);
	assert_int_equal(ops->make_ready(&t, &(struct recreate_ready){ .fd = -1 },
					 why, sizeof(why)),
			 -EOPNOTSUPP);
}

static void raw_as_nobody(void)
{
	struct image_target t = inet_sock(SOCK_RAW, 0, 0);
	struct recreate_req q = req(true);
	int fd = -1;

	t.u.sock.protocol = IPPROTO_ICMP;
	t.u.sock.addr_len = 0;
	if (recreate_ops_of(t.kind)->recreate(&t, &q, &fd) != -EOPNOTSUPP ||
	    fd != -1)
		_exit(1);
}

static void test_socket_raw_unprivileged(void **state)
{
	as_nobody(raw_as_nobody);
}

static void test_socket_ipv6(void **state)
{
	struct image_target t = target(IMAGE_KIND_SOCKET);
	struct sockaddr_in6 *in6 = (void *)t.u.sock.addrp;
	int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;

	if (probe < 0)
		skip();
	close(probe);
	t.u.sock.domain = AF_INET6;
	t.u.sock.type = SOCK_STREAM;
	t.u.sock.flags = IMAGE_SOCK_BOUND | IMAGE_SOCK_LISTENING |
			 IMAGE_SOCK_V6ONLY;
	t.u.sock.backlog = 3;
	t.u.sock.addr_len = sizeof(*in6);
	in6->sin6_family = AF_INET6;
	in6->sin6_addr = in6addr_any;
	fd = create(&t, true);
	assert_int_equal(sockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
	assert_int_equal(sockopt(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
	close(fd);
	t.u.sock.flags &= ~IMAGE_SOCK_V6ONLY;
	fd = create(&t, true);
	assert_int_equal(sockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY), 0);
	close(fd);
}

static struct image_target unix_sock(uint32_t id, uint32_t flags)
{
	struct image_target t = target(IMAGE_KIND_SOCKET);

	t.id = id;
	t.u.sock.domain = AF_UNIX;
	t.u.sock.type = SOCK_SEQPACKET;
	t.u.sock.flags = flags;
	t.u.sock.addr_len = sizeof(sa_family_t);
	t.u.sock.addrp->ss_family = AF_UNIX;
	return t;
}

static void test_socketpair(void **state)
{
	const struct recreate_ops *ops = recreate_ops_of(IMAGE_KIND_SOCKET);
	struct image_target a = unix_sock(1, IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED);
	struct image_target b = unix_sock(2, IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED);
	struct recreate_req q = req(false);
	int fds[2];
	char c;

	b.file_flags |= O_NONBLOCK;
	assert_int_equal(ops->recreate_pair(&a, &b, &q, fds), 0);
	assert_int_equal(sockopt(fds[0], SOL_SOCKET, SO_TYPE), SOCK_SEQPACKET);
	assert_true(file_flags(fds[1]) & O_NONBLOCK);
	assert_false(file_flags(fds[0]) & O_NONBLOCK);
	assert_int_equal(write(fds[0], "q", 1), 1);
	assert_int_equal(read(fds[1], &c, 1), 1);
	assert_int_equal(c, 'q');
	close(fds[0]);
	close(fds[1]);
	b.u.sock.type = SOCK_STREAM;
	assert_int_equal(ops->recreate_pair(&a, &b, &q, fds), -EINVAL);
}

static void test_socket_unix_path(void **state)
{
	char dir[] = "/tmp/epollcr-recreate-XXXXXX", path[128];
	struct image_target t = unix_sock(1, IMAGE_SOCK_BOUND);
	struct sockaddr_un *un = (void *)t.u.sock.addrp;
	struct recreate_req q = req(true);
	struct stat st;
	int fd = -1;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	strcpy(un->sun_path, path);
	t.u.sock.addr_len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) +
				       strlen(path) + 1);
	fd = create(&t, true);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	close(fd);
	/* Now it exists: a conflict, never replaced. */
	fd = -1;
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &q, &fd),
			 -EADDRINUSE);
	assert_non_null(strstr(why, "already exists"));
	assert_int_equal(fd, -1);
	unlink(path);
	/* A dangling symlink at the name is a conflict too. */
	assert_int_equal(symlink("/nonexistent", path), 0);
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &q, &fd),
			 -EADDRINUSE);
	unlink(path);
	/* A missing directory. */
	snprintf(un->sun_path, sizeof(un->sun_path), "%s/no/s", dir);
	t.u.sock.addr_len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) +
				       strlen(un->sun_path) + 1);
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &q, &fd),
			 -ENOENT);
	assert_int_equal(rmdir(dir), 0);
}

/*
 * Addresses longer than the kernel accepts, even if a reader let them
 * through: refused before any copy into a sun_path-sized buffer (before
 * the check, a 126-byte path overflowed two stack buffers).
 */
static void test_socket_addr_too_long(void **state)
{
	struct image_target t = unix_sock(1, IMAGE_SOCK_BOUND);
	struct recreate_req q = req(true);
	struct sockaddr_in *in = (void *)t.u.sock.addrp;
	int fd = -1;

	memset(t.u.sock.addrp, '/', sizeof(*t.u.sock.addrp));
	t.u.sock.addrp->ss_family = AF_UNIX;
	t.u.sock.addr_len = IMAGE_MAX_SOCKADDR;
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &q, &fd),
			 -EINVAL);
	assert_non_null(strstr(why, "more than the 110"));
	assert_int_equal(fd, -1);
	/* abstract, one byte too many */
	t.u.sock.addr_len = sizeof(struct sockaddr_un) + 1;
	((char *)t.u.sock.addrp)[offsetof(struct sockaddr_un, sun_path)] = 0;
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &q, &fd),
			 -EINVAL);
	/* an AF_INET address is exactly a sockaddr_in */
	t.u.sock.domain = AF_INET;
	t.u.sock.type = SOCK_DGRAM;
	memset(t.u.sock.addrp, 0, sizeof(*t.u.sock.addrp));
	in->sin_family = AF_INET;
	t.u.sock.addr_len = sizeof(*in) + 4;
	assert_int_equal(recreate_ops_of(t.kind)->recreate(&t, &q, &fd),
			 -EINVAL);
	assert_non_null(strstr(why, "not 16"));
	assert_int_equal(fd, -1);
}

/* ---- pairing ---- */

static void test_match_pairs(void **state)
{
	struct image img;
	uint32_t partner[16];
	struct image_target *t;

	image_init(&img);
	/* 1,2: pipe by peer.  3,4,5: same inode, three ends: none.
	 * 6,7: same inode, opposite ends.  8..11: socketpair ends, two
	 * types interleaved.  12: a pair end alone. */
	for (int i = 0; i < 12; i++)
		assert_non_null(image_add_target(&img, i < 7 ? IMAGE_KIND_PIPE
							     : IMAGE_KIND_SOCKET));
	t = img.targets;
	t[0].u.pipe.peer = 2;
	t[1].u.pipe.write_end = 1;
	for (int i = 2; i < 5; i++)
		t[i].u.pipe.ino = 33;
	t[3].u.pipe.write_end = 1;
	t[5].u.pipe.ino = 44;
	t[6].u.pipe.ino = 44;
	t[6].u.pipe.write_end = 1;
	for (int i = 7; i < 12; i++) {
		t[i].u.sock.domain = AF_UNIX;
		t[i].u.sock.type = i % 2 ? SOCK_STREAM : SOCK_DGRAM;
		t[i].u.sock.flags = IMAGE_SOCK_PAIR;
	}
	assert_int_equal(recreate_match_pairs(&img, partner), 0);
	assert_int_equal(partner[0], 2);
	assert_int_equal(partner[1], 1);
	assert_int_equal(partner[2], 0);
	assert_int_equal(partner[3], 0);
	assert_int_equal(partner[4], 0);
	assert_int_equal(partner[5], 7);
	assert_int_equal(partner[6], 6);
	assert_int_equal(partner[7], 10);  /* 8 (stream) with 10 */
	assert_int_equal(partner[9], 8);
	assert_int_equal(partner[8], 11);  /* 9 (dgram) with 11 */
	assert_int_equal(partner[10], 9);
	assert_int_equal(partner[11], 0);  /* 12 alone */
	image_free(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eventfd),
		cmocka_unit_test(test_eventfd_bad_count),
		cmocka_unit_test(test_eventfd_ready),
		cmocka_unit_test(test_timerfd),
		cmocka_unit_test(test_timerfd_bad_flags),
		cmocka_unit_test(test_timerfd_ready),
		cmocka_unit_test(test_timerfd_alarm_unprivileged),
		cmocka_unit_test(test_signalfd),
		cmocka_unit_test(test_epoll_other),
		cmocka_unit_test(test_pipe_pair),
		cmocka_unit_test(test_pipe_lone),
		cmocka_unit_test(test_socket_listen),
		cmocka_unit_test(test_socket_udp_connected),
		cmocka_unit_test(test_socket_unrestorable),
		cmocka_unit_test(test_socket_raw_unprivileged),
		cmocka_unit_test(test_socket_ipv6),
		cmocka_unit_test(test_socketpair),
		cmocka_unit_test(test_socket_unix_path),
		cmocka_unit_test(test_socket_addr_too_long),
		cmocka_unit_test(test_match_pairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
