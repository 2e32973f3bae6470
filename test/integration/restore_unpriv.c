// SPDX-License-Identifier: MIT
/*
 * restore_unpriv: build an image in memory (nested sets, fired oneshots,
 * a stale tfd, a loopback listener, an abstract unix listener, a pipe, a
 * socketpair, eventfd/timerfd/signalfd, a connected TCP socket that must
 * be skipped), restore it with restore_image() in this process, and check
 * every watch against /proc/self/fdinfo with a parser of its own.  Meant
 * to run as an ordinary user (test_restore_unpriv.sh runs it as nobody).
 * Prints "restore_unpriv: ok ..." and exits 0 when everything matches.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "epollcr.h"
#include "epollcr_image.h"
#include "restore.h"

#define MAX_LINES 64

static int failures;

#define EXPECT(cond, ...)                                                     \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "restore_unpriv: FAIL %s: ", #cond);  \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			failures++;                                           \
		}                                                             \
	} while (0)

static struct image img;

static uint32_t add_target(uint32_t kind)
{
	struct image_target *t = image_add_target(&img, kind);

	if (!t) {
		fprintf(stderr, "restore_unpriv: out of memory\n");
		exit(2);
	}
	t->file_flags = O_RDWR;
	return t->id;
}

static struct image_target *tgt(uint32_t id)
{
	return &img.targets[id - 1];
}

static void add_fd(int fd, uint32_t target, bool cloexec)
{
	struct image_fd *f = image_add_fd(&img);

	if (!f)
		exit(2);
	*f = (struct image_fd){ .fd = fd, .target = target,
				.fd_flags = cloexec ? FD_CLOEXEC : 0 };
}

static void add_watch(uint32_t set, int tfd, uint32_t events, uint64_t data,
		      uint32_t target)
{
	struct image_watch *w = image_add_watch(&img);

	if (!w)
		exit(2);
	w->set = set;
	w->tfd = tfd;
	w->events = events;
	w->data = data;
	w->target = target;
	w->flags = IMAGE_W_KERNEL;
}

static uint32_t add_socket(int domain, int type, uint32_t flags,
			   const void *addr, uint32_t addr_len)
{
	uint32_t id = add_target(IMAGE_KIND_SOCKET);
	struct image_socket *s = &tgt(id)->u.sock;

	s->domain = (uint32_t)domain;
	s->type = (uint32_t)type;
	s->flags = flags;
	s->backlog = -1;
	if (image_socket_set_addr(s, addr, addr_len) < 0)
		exit(2);
	return id;
}

/* A loopback TCP port that was free a moment ago. */
static uint16_t free_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (void *)&in, sizeof(in)) < 0 ||
	    getsockname(s, (void *)&in, &len) < 0) {
		perror("restore_unpriv: free port");
		exit(2);
	}
	close(s);
	return ntohs(in.sin_port);
}

/* One `tfd:` line of an epoll fd's fdinfo. */
struct line {
	int tfd;
	unsigned events;
	unsigned long long data;
};

static int read_lines(int epfd, struct line *out)
{
	static char text[65536];
	char path[64], *p = text;
	ssize_t n;
	int fd, count = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return -1;
	text[n] = '\0';
	while ((p = strstr(p, "tfd:")) != NULL && count < MAX_LINES) {
		if (sscanf(p, "tfd: %d events: %x data: %llx", &out[count].tfd,
			   &out[count].events, &out[count].data) != 3)
			return -1;
		count++;
		p += 4;
	}
	return count;
}

/* The events of the watch (tfd, data) of epfd, or -1 when absent. */
static long long events_of(int epfd, int tfd, unsigned long long data)
{
	struct line l[MAX_LINES];
	int n = read_lines(epfd, l);

	for (int i = 0; i < n; i++)
		if (l[i].tfd == tfd && l[i].data == data)
			return l[i].events;
	return -1;
}

static int count_of(int epfd)
{
	struct line l[MAX_LINES];

	return read_lines(epfd, l);
}

static void build(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_port = htons(free_port()) };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char name[64];
	uint32_t outer, inner, efd, rd, wr, tcp, ux, tm, sg, pa, pb, conn;
	int nlen;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	nlen = snprintf(name, sizeof(name), "%cepollcr-unpriv-%d", 0,
			(int)getpid());
	memcpy(un.sun_path, name, (size_t)nlen);
	image_init(&img);
	outer = add_target(IMAGE_KIND_EPOLL);
	inner = add_target(IMAGE_KIND_EPOLL);
	efd = add_target(IMAGE_KIND_EVENTFD);
	tgt(efd)->u.efd.count = 3;
	rd = add_target(IMAGE_KIND_PIPE);
	wr = add_target(IMAGE_KIND_PIPE);
	tgt(rd)->u.pipe.peer = wr;
	tgt(wr)->u.pipe.peer = rd;
	tgt(wr)->u.pipe.write_end = 1;
	tcp = add_socket(AF_INET, SOCK_STREAM,
			 IMAGE_SOCK_BOUND | IMAGE_SOCK_LISTENING |
				 IMAGE_SOCK_REUSEADDR,
			 &in, sizeof(in));
	ux = add_socket(AF_UNIX, SOCK_STREAM,
			IMAGE_SOCK_BOUND | IMAGE_SOCK_LISTENING, &un,
			(uint32_t)(offsetof(struct sockaddr_un, sun_path) +
				   (size_t)nlen));
	tm = add_target(IMAGE_KIND_TIMERFD);
	tgt(tm)->u.tfd.clockid = 1; /* CLOCK_MONOTONIC */
	tgt(tm)->u.tfd.interval_ns = 250000000;
	tgt(tm)->u.tfd.value_ns = 60000000000ULL;
	sg = add_target(IMAGE_KIND_SIGNALFD);
	tgt(sg)->u.sfd.mask = 1ULL << (SIGUSR1 - 1);
	un.sun_path[0] = '\0';
	pa = add_socket(AF_UNIX, SOCK_STREAM,
			IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED, &un,
			sizeof(sa_family_t));
	pb = add_socket(AF_UNIX, SOCK_STREAM,
			IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED, &un,
			sizeof(sa_family_t));
	conn = add_socket(AF_INET, SOCK_STREAM,
			  IMAGE_SOCK_BOUND | IMAGE_SOCK_CONNECTED, &in,
			  sizeof(in));
	add_fd(100, outer, true);
	add_fd(101, inner, false);
	add_fd(102, efd, true);
	add_fd(103, rd, true);
	add_fd(104, wr, false);
	add_fd(105, tcp, true);
	add_fd(106, ux, true);
	add_fd(107, tm, true);
	add_fd(108, sg, true);
	add_fd(109, pa, true);
	add_fd(110, pb, true);
	add_fd(111, conn, true);
	add_watch(outer, 101, EPOLLIN | 0x18, 0x101, inner);
	add_watch(outer, 105, EPOLLONESHOT, 0x105, tcp);
	add_watch(outer, 106, EPOLLONESHOT, 0x106, ux);
	add_watch(outer, 150, EPOLLIN | EPOLLET | 0x18, 0x150, efd); /* stale */
	add_watch(outer, 111, EPOLLIN | 0x18, 0x111, conn);	      /* skipped */
	add_watch(inner, 102, EPOLLIN | EPOLLEXCLUSIVE | 0x18, 0x102, efd);
	add_watch(inner, 103, EPOLLONESHOT, 0x103, rd);
	add_watch(inner, 107, EPOLLONESHOT, 0x107, tm);
	add_watch(inner, 108, EPOLLONESHOT, 0x108, sg);
	add_watch(inner, 109, EPOLLIN | EPOLLRDHUP | 0x18, 0x109, pa);
}

static void check(void)
{
	char c;

	EXPECT(count_of(100) == 4, "outer has %d watches", count_of(100));
	EXPECT(count_of(101) == 5, "inner has %d watches", count_of(101));
	EXPECT(events_of(100, 101, 0x101) == 0x19, "nested set");
	EXPECT(events_of(100, 105, 0x105) == 0x40000000, "fired oneshot tcp");
	EXPECT(events_of(100, 106, 0x106) == 0x40000000, "fired oneshot unix");
	EXPECT(events_of(100, 150, 0x150) == 0x80000019, "stale tfd");
	EXPECT(fcntl(150, F_GETFD) < 0 && errno == EBADF, "150 not left open");
	EXPECT(events_of(100, 111, 0x111) == -1, "connected socket skipped");
	EXPECT(fcntl(111, F_GETFD) < 0, "no fd for the skipped socket");
	EXPECT(events_of(101, 102, 0x102) == 0x10000019, "EPOLLEXCLUSIVE");
	EXPECT(events_of(101, 103, 0x103) == 0x40000000, "fired oneshot pipe");
	EXPECT(events_of(101, 107, 0x107) == 0x40000000, "fired oneshot timer");
	EXPECT(events_of(101, 108, 0x108) == 0x40000000, "fired oneshot sig");
	EXPECT(events_of(101, 109, 0x109) == 0x2019, "socketpair end");
	EXPECT((fcntl(100, F_GETFD) & FD_CLOEXEC) != 0, "100 cloexec");
	EXPECT(fcntl(101, F_GETFD) == 0, "101 not cloexec");
	EXPECT(write(104, "p", 1) == 1 && read(103, &c, 1) == 1 && c == 'p',
	       "pipe ends connected");
	EXPECT(write(110, "s", 1) == 1 && read(109, &c, 1) == 1 && c == 's',
	       "socketpair ends connected");
}

int main(void)
{
	struct epollcr_restore_options o = {
		.targets = EPOLLCR_TARGETS_RECREATE,
		.missing = EPOLLCR_MISSING_SKIP,
		.report_fd = 1,
	};
	sigset_t usr1;
	char err[1024];

	/* Only our own descriptors: inherited ones may sit anywhere. */
	syscall(SYS_close_range, 3, ~0U, 0);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	printf("restore_unpriv: uid %d euid %d\n", (int)getuid(),
	       (int)geteuid());
	fflush(stdout);
	build();
	if (restore_image(&img, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "restore_unpriv: restore failed: %s\n", err);
		return 1;
	}
	check();
	if (failures) {
		fprintf(stderr, "restore_unpriv: %d checks failed\n", failures);
		return 1;
	}
	printf("restore_unpriv: ok: 2 sets, %u watches restored (1 skipped) and checked against /proc/self/fdinfo as uid %d\n",
	       img.nwatches - 1, (int)getuid());
	image_free(&img);
	return 0;
}
