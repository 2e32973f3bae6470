// SPDX-License-Identifier: MIT
/*
 * Unit tests of the per-kind table: link recognition, describe() against
 * what this test created (and against the kernel's /proc/self/fdinfo and
 * getsockopt), describe() from fdinfo text alone, same(), and error paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "kind_internal.h"
#include "kview.h"

/* The target of fd as kview would start it: path from readlink. */
/*
 * A struct copy of a socket target shares its addresses: forget them in
 * the copy before describing into it (describe frees what it replaces).
 */
static void unshare(struct image_target *u)
{
	u->u.sock.addrp = u->u.sock.peerp = NULL;
	u->u.sock.addr_len = u->u.sock.peer_len = 0;
}

static void target_of(struct image_target *t, int fd, uint32_t kind)
{
	char path[64], link[256];

	memset(t, 0, sizeof(*t));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	t->kind = kind;
	t->path = strdup(link);
	assert_non_null(t->path);
	assert_int_equal(kind_from_link(link), kind);
}

static void self_fdinfo(int fd, char *buf, size_t len)
{
	assert_int_equal(kind_read_self_fdinfo(fd, buf, len), 0);
}

static void test_links(void **state)
{
	(void)state;
	static const struct {
		const char *link;
		uint32_t kind;
	} cases[] = {
		{ "socket:[123]", IMAGE_KIND_SOCKET },
		{ "pipe:[4294967296]", IMAGE_KIND_PIPE },
		{ "anon_inode:[eventfd]", IMAGE_KIND_EVENTFD },
		{ "anon_inode:eventfd", IMAGE_KIND_EVENTFD },
		{ "anon_inode:[timerfd]", IMAGE_KIND_TIMERFD },
		{ "anon_inode:timerfd", IMAGE_KIND_TIMERFD },
		{ "anon_inode:[signalfd]", IMAGE_KIND_SIGNALFD },
		{ "anon_inode:signalfd", IMAGE_KIND_SIGNALFD },
		{ "anon_inode:[eventpoll]", IMAGE_KIND_EPOLL },
		{ "anon_inode:eventpoll", IMAGE_KIND_EPOLL },
		{ "anon_inode:inotify", IMAGE_KIND_OTHER },
		{ "anon_inode:[eventfd", IMAGE_KIND_OTHER },
		{ "anon_inode:[eventfd]x", IMAGE_KIND_OTHER },
		{ "anon_inode:[eventfdx]", IMAGE_KIND_OTHER },
		{ "socket:[]", IMAGE_KIND_OTHER },
		{ "socket:[12", IMAGE_KIND_OTHER },
		{ "socket:[12]x", IMAGE_KIND_OTHER },
		{ "socket:[99999999999999999999999]", IMAGE_KIND_OTHER },
		{ "pipe:12", IMAGE_KIND_OTHER },
		{ "/dev/null", IMAGE_KIND_OTHER },
		{ "", IMAGE_KIND_OTHER },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(kind_from_link(cases[i].link), cases[i].kind);
	assert_int_equal(kind_from_link(NULL), IMAGE_KIND_OTHER);
}

static void test_ops_table(void **state)
{
	(void)state;
	for (uint32_t k = 0; k < 100; k++) {
		const struct kind_ops *ops = kind_ops_of(k);

		assert_non_null(ops);
		assert_non_null(ops->match_link);
		assert_non_null(ops->describe);
		assert_non_null(ops->same);
		if (k < IMAGE_KIND_COUNT) {
			assert_int_equal(ops->kind, k);
			assert_string_equal(ops->name, image_kind_name(k));
		} else {
			assert_int_equal(ops->kind, IMAGE_KIND_OTHER);
		}
	}
	assert_int_equal(kind_ops_of(UINT32_MAX)->kind, IMAGE_KIND_OTHER);
}

static void test_eventfd(void **state)
{
	(void)state;
	int fd = eventfd(41, EFD_SEMAPHORE | EFD_NONBLOCK);
	struct image_target t, u;
	char buf[4096];
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
	target_of(&t, fd, IMAGE_KIND_EVENTFD);
	/* With the fd alone (the describe reads its own fdinfo). */
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, fd, NULL), 0);
	assert_int_equal(t.u.efd.count, 42);
	assert_int_equal(t.u.efd.semaphore, 1);
	assert_true(t.file_flags & O_NONBLOCK);
	assert_int_equal(t.file_flags & O_ACCMODE, O_RDWR);
	/* From text alone, as for another process; the counter unconsumed. */
	self_fdinfo(fd, buf, sizeof(buf));
	u = t;
	memset(&u.u, 0, sizeof(u.u));
	assert_int_equal(kind_ops_of(u.kind)->describe(&u, -1, buf), 0);
	assert_int_equal(u.u.efd.count, 42);
	assert_true(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	u.u.efd.count = 41;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, buf, sizeof(buf)));
	assert_non_null(strstr(buf, "42"));
	u.u.efd.count = 42;
	u.u.efd.semaphore = 0;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	/* Neither fd nor text; text without a counter. */
	assert_int_equal(kind_ops_of(t.kind)->describe(&u, -1, NULL), -EINVAL);
	assert_int_equal(kind_ops_of(t.kind)->describe(&u, -1, "pos: 0\n"),
			 -EINVAL);
	free(t.path);
	close(fd);
}

static void test_timerfd(void **state)
{
	(void)state;
	int fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC);
	struct itimerspec its = { .it_interval = { 2, 500 },
				  .it_value = { 100, 0 } };
	struct image_target t, u;
	char buf[4096];

	assert_true(fd >= 0);
	assert_int_equal(timerfd_settime(fd, 0, &its, NULL), 0);
	target_of(&t, fd, IMAGE_KIND_TIMERFD);
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, fd, NULL), 0);
	assert_int_equal(t.u.tfd.clockid, CLOCK_BOOTTIME);
	assert_int_equal(t.u.tfd.settime_flags, 0);
	assert_int_equal(t.u.tfd.interval_ns, 2000000500ull);
	assert_true(t.u.tfd.value_ns > 99000000000ull &&
		    t.u.tfd.value_ns <= 100000000000ull);
	assert_int_equal(t.file_flags & O_CLOEXEC, 0); /* an fd flag */

	/* Another timer: realtime, absolute, cancel on set, disarmed. */
	int fd2 = timerfd_create(CLOCK_REALTIME, 0);
	struct itimerspec zero = { { 0, 0 }, { 0, 0 } };

	assert_int_equal(timerfd_settime(fd2, TFD_TIMER_ABSTIME, &zero, NULL),
			 0);
	target_of(&u, fd2, IMAGE_KIND_TIMERFD);
	self_fdinfo(fd2, buf, sizeof(buf));
	assert_int_equal(kind_ops_of(u.kind)->describe(&u, -1, buf), 0);
	assert_int_equal(u.u.tfd.clockid, CLOCK_REALTIME);
	assert_int_equal(u.u.tfd.value_ns, 0);
	assert_false(kind_ops_of(t.kind)->same(&t, &u, buf, sizeof(buf)));
	assert_non_null(strstr(buf, "clock"));

	/* Remaining time differs: still the same; armed vs not: differs. */
	struct image_target v = t;

	v.u.tfd.value_ns = 1;
	v.u.tfd.ticks = 7;
	assert_true(kind_ops_of(t.kind)->same(&t, &v, NULL, 0));
	v.u.tfd.value_ns = 0;
	assert_false(kind_ops_of(t.kind)->same(&t, &v, buf, sizeof(buf)));
	assert_non_null(strstr(buf, "disarmed"));
	v = t;
	v.u.tfd.interval_ns++;
	assert_false(kind_ops_of(t.kind)->same(&t, &v, NULL, 0));

	/* Malformed text. */
	assert_int_equal(kind_ops_of(t.kind)->describe(
				 &v, -1,
				 "clockid: 1\nsettime flags: 00\nit_value: (1,\n"),
			 -EINVAL);
	free(t.path);
	free(u.path);
	close(fd);
	close(fd2);
}

static void test_signalfd(void **state)
{
	(void)state;
	sigset_t set;
	struct image_target t, u;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 2);
	int fd = signalfd(-1, &set, 0);

	assert_true(fd >= 0);
	target_of(&t, fd, IMAGE_KIND_SIGNALFD);
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, fd, NULL), 0);
	assert_true(t.u.sfd.mask == ((1ull << (SIGUSR1 - 1)) |
				     (1ull << (SIGRTMIN + 2 - 1))));
	u = t;
	u.u.sfd.mask = 1;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	assert_true(kind_ops_of(t.kind)->same(&t, &t, NULL, 0));
	free(t.path);
	close(fd);
}

static void test_pipe(void **state)
{
	(void)state;
	int p[2];
	struct image_target r, w;
	char diff[128];

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_int_equal(write(p[1], "hello", 5), 5);
	target_of(&r, p[0], IMAGE_KIND_PIPE);
	target_of(&w, p[1], IMAGE_KIND_PIPE);
	assert_int_equal(kind_ops_of(r.kind)->describe(&r, p[0], NULL), 0);
	assert_int_equal(kind_ops_of(w.kind)->describe(&w, p[1], NULL), 0);
	assert_int_equal(r.u.pipe.write_end, 0);
	assert_int_equal(w.u.pipe.write_end, 1);
	assert_int_equal(r.u.pipe.pending, 5);
	assert_int_equal(w.u.pipe.pending, 0);
	assert_true(r.u.pipe.ino != 0 && r.u.pipe.ino == w.u.pipe.ino);
	assert_true(r.file_flags & O_NONBLOCK);
	assert_false(kind_ops_of(r.kind)->same(&r, &w, diff, sizeof(diff)));
	assert_string_equal(diff, "pipe end read vs write");
	/* The queue is not compared: it drains. */
	w.u.pipe.write_end = 0;
	assert_true(kind_ops_of(r.kind)->same(&r, &w, NULL, 0));
	free(r.path);
	free(w.path);
	close(p[0]);
	close(p[1]);
}

static void test_tcp_listener(void **state)
{
	(void)state;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct image_target t, u;
	char buf[4096], diff[128];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one,
				    sizeof(one)), 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 16), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	target_of(&t, s, IMAGE_KIND_SOCKET);
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, s, NULL), 0);
	assert_int_equal(t.u.sock.domain, AF_INET);
	assert_int_equal(t.u.sock.type, SOCK_STREAM);
	assert_int_equal(t.u.sock.protocol, IPPROTO_TCP);
	assert_int_equal(t.u.sock.flags,
			 IMAGE_SOCK_LISTENING | IMAGE_SOCK_BOUND |
				 IMAGE_SOCK_REUSEADDR);
	assert_int_equal(t.u.sock.backlog, -1);
	assert_int_equal(t.u.sock.addr_len, sizeof(a));
	assert_memory_equal(t.u.sock.addrp, &a, sizeof(a));
	assert_int_equal(t.u.sock.peer_len, 0);
	assert_true(t.file_flags & O_NONBLOCK);

	/* Another port: differs; another backlog known on both: differs. */
	struct sockaddr_in other = a;

	other.sin_port ^= 1;
	u = t;
	u.u.sock.addrp = (struct sockaddr_storage *)&other;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, diff, sizeof(diff)));
	assert_non_null(strstr(diff, "address"));
	u = t;
	u.u.sock.backlog = 16;
	assert_true(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	t.u.sock.backlog = 8;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	u = t;
	u.u.sock.flags &= ~(uint32_t)IMAGE_SOCK_REUSEADDR;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));

	/* Without the fd: only what fdinfo shows (nothing for inet). */
	self_fdinfo(s, buf, sizeof(buf));
	unshare(&u);
	assert_int_equal(kind_ops_of(t.kind)->describe(&u, -1, buf), 0);
	assert_int_equal(u.u.sock.domain, 0);
	assert_int_equal(u.u.sock.backlog, -1);
	assert_true(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	image_target_release(&t);
	close(s);
}

static void test_ipv6_v6only(void **state)
{
	(void)state;
	int s = socket(AF_INET6, SOCK_DGRAM, 0), one = 1;
	struct image_target t;

	if (s < 0)
		skip();
	assert_int_equal(setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				    sizeof(one)), 0);
	target_of(&t, s, IMAGE_KIND_SOCKET);
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, s, NULL), 0);
	assert_int_equal(t.u.sock.domain, AF_INET6);
	assert_int_equal(t.u.sock.type, SOCK_DGRAM);
	assert_int_equal(t.u.sock.flags, IMAGE_SOCK_V6ONLY);
	image_target_release(&t);
	close(s);
}

/* A bound socket described live, at addr (AF_INET or AF_UNIX). */
static void describe_bound(struct image_target *t, const struct sockaddr *addr,
			   socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, addr, len), 0);
	memset(t, 0, sizeof(*t));
	t->kind = IMAGE_KIND_SOCKET;
	assert_int_equal(kind_ops_of(t->kind)->describe(t, fd, NULL), 0);
	close(fd);
}

/*
 * A verify mismatch names both values: two bound addresses (inet, unix
 * path), two socket file modes (issue 12, item 9).
 */
static void test_socket_same_names_both(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct image_target t, u;
	char buf[256], dir[] = "/tmp/epollcr-kind-XXXXXX";
	(void)state;

	assert_non_null(mkdtemp(dir));
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	describe_bound(&t, (struct sockaddr *)&in, sizeof(in));
	describe_bound(&u, (struct sockaddr *)&in, sizeof(in));
	assert_false(kind_ops_of(t.kind)->same(&t, &u, buf, sizeof(buf)));
	char want[128];
	snprintf(want, sizeof(want), "socket bound address 127.0.0.1:%u vs 127.0.0.1:%u",
		 ntohs(((struct sockaddr_in *)t.u.sock.addrp)->sin_port),
		 ntohs(((struct sockaddr_in *)u.u.sock.addrp)->sin_port));
	assert_string_equal(buf, want);
	image_target_release(&t);
	image_target_release(&u);

	snprintf(un.sun_path, sizeof(un.sun_path), "%s/a.sock", dir);
	describe_bound(&t, (struct sockaddr *)&un, sizeof(un));
	unlink(un.sun_path);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/b.sock", dir);
	describe_bound(&u, (struct sockaddr *)&un, sizeof(un));
	unlink(un.sun_path);
	assert_false(kind_ops_of(t.kind)->same(&t, &u, buf, sizeof(buf)));
	snprintf(want, sizeof(want), "socket bound address %s/a.sock vs %s/b.sock",
		 dir, dir);
	assert_string_equal(buf, want);
	image_target_release(&u);

	u = t; /* shares t's addresses: only t is released */
	t.u.sock.file_mode = 0140600;
	u.u.sock.file_mode = 0140755;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, buf, sizeof(buf)));
	assert_string_equal(buf, "socket file mode 0600 vs 0755");
	u.u.sock.file_mode = 0; /* not known: not compared */
	assert_true(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	image_target_release(&t);
	rmdir(dir);
}

static void test_unix_pair(void **state)
{
	(void)state;
	int sp[2];
	struct image_target t, u;
	char buf[4096];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
	target_of(&t, sp[0], IMAGE_KIND_SOCKET);
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, sp[0], NULL), 0);
	assert_int_equal(t.u.sock.domain, AF_UNIX);
	assert_int_equal(t.u.sock.type, SOCK_SEQPACKET);
	assert_int_equal(t.u.sock.flags, IMAGE_SOCK_CONNECTED);
	assert_true(t.u.sock.peer_len >= sizeof(sa_family_t));
	/* fdinfo of a unix socket says its domain (scm_fds:). */
	self_fdinfo(sp[0], buf, sizeof(buf));
	if (strstr(buf, "scm_fds:")) {
		u = t;
		unshare(&u);
		assert_int_equal(kind_ops_of(t.kind)->describe(&u, -1, buf), 0);
		assert_int_equal(u.u.sock.domain, AF_UNIX);
	}
	/* A bound unix socket. */
	int b = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1,
		 "epollcr-test-kind-%d", (int)getpid());
	assert_int_equal(bind(b, (struct sockaddr *)&sun,
			      offsetof(struct sockaddr_un, sun_path) + 1 +
				      strlen(sun.sun_path + 1)), 0);
	image_target_release(&t);
	target_of(&t, b, IMAGE_KIND_SOCKET);
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, b, NULL), 0);
	assert_int_equal(t.u.sock.flags, IMAGE_SOCK_BOUND);
	image_target_release(&t);
	close(b);
	close(sp[0]);
	close(sp[1]);
}

static void test_epoll_and_other(void **state)
{
	(void)state;
	int ep = epoll_create1(0), e = eventfd(0, 0);
	struct epoll_event ev = { .events = EPOLLIN };
	struct image_target t, u;
	char buf[4096];

	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev), 0);
	target_of(&t, ep, IMAGE_KIND_EPOLL);
	self_fdinfo(ep, buf, sizeof(buf));
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, ep, buf), 0);
	assert_int_equal(t.u.ep.nwatches, 1);
	u = t;
	u.u.ep.nwatches = 2;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));

	int n = open("/dev/null", O_WRONLY | O_APPEND);

	free(t.path);
	target_of(&t, n, IMAGE_KIND_OTHER);
	assert_int_equal(kind_ops_of(t.kind)->describe(&t, n, NULL), 0);
	assert_int_equal(t.file_flags & (O_ACCMODE | O_APPEND),
			 O_WRONLY | O_APPEND);
	u = t;
	u.path = "/dev/zero";
	assert_false(kind_ops_of(t.kind)->same(&t, &u, buf, sizeof(buf)));
	assert_non_null(strstr(buf, "/dev/zero"));
	u.path = NULL;
	assert_false(kind_ops_of(t.kind)->same(&t, &u, NULL, 0));
	assert_true(kind_ops_of(t.kind)->same(&u, &u, NULL, 0));
	free(t.path);
	close(n);
	close(ep);
	close(e);
}

/* Errors: a closed fd, an fd of the wrong kind. */
static void test_describe_errors(void **state)
{
	(void)state;
	struct image_target t;
	int fd = eventfd(0, 0);

	memset(&t, 0, sizeof(t));
	assert_int_equal(kind_ops_of(IMAGE_KIND_SOCKET)->describe(&t, fd, NULL),
			 -ENOTSOCK);
	assert_int_equal(kind_ops_of(IMAGE_KIND_TIMERFD)->describe(&t, fd,
								   NULL),
			 -EINVAL);
	close(fd);
	assert_int_equal(kind_ops_of(IMAGE_KIND_EVENTFD)->describe(&t, fd,
								   NULL),
			 -ENOENT);
	assert_int_equal(kind_ops_of(IMAGE_KIND_OTHER)->describe(&t, fd, NULL),
			 -EBADF);
	assert_int_equal(kind_ops_of(IMAGE_KIND_PIPE)->describe(&t, fd, NULL),
			 -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_ops_table),
		cmocka_unit_test(test_eventfd),
		cmocka_unit_test(test_timerfd),
		cmocka_unit_test(test_signalfd),
		cmocka_unit_test(test_pipe),
		cmocka_unit_test(test_tcp_listener),
		cmocka_unit_test(test_ipv6_v6only),
		cmocka_unit_test(test_socket_same_names_both),
		cmocka_unit_test(test_unix_pair),
		cmocka_unit_test(test_epoll_and_other),
		cmocka_unit_test(test_describe_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
