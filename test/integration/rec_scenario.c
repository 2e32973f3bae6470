// SPDX-License-Identifier: MIT
/*
 * rec_scenario: builds one epoll situation, prints "ready" and waits for
 * SIGTERM, so that a test can dump it with `epollcr dump` and compare the
 * image with /proc/PID/fdinfo.  Plain program: run it under the shim.
 *
 *   rec_scenario nested|dupclose|dup2over|oneshot|et|exclusive|raw|mixed|forked
 *   rec_scenario many N          N eventfd watches in one set
 *   rec_scenario hammer THREADS  threads churn ADD/MOD/DEL/dup/close/malloc
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void fail(const char *what)
{
	fprintf(stderr, "rec_scenario: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		fail("epoll_ctl ADD");
}

static int efd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		fail("eventfd");
	return fd;
}

static void nested(void)
{
	int ep[5];
	for (int i = 0; i < 5; i++) {
		ep[i] = epoll_create1(i % 2 ? EPOLL_CLOEXEC : 0);
		if (ep[i] < 0)
			fail("epoll_create1");
		add(ep[i], efd(), EPOLLIN, 0x100 + (uint64_t)i);
	}
	for (int i = 0; i < 4; i++) /* e0 > e1 > e2 > e3 > e4 */
		add(ep[i], ep[i + 1], EPOLLIN, 0x200 + (uint64_t)i);
}

static void dupclose(void)
{
	int ep = epoll_create1(0), a = efd();
	add(ep, a, EPOLLIN | EPOLLOUT, 0xa);
	int b = dup(a);
	if (b < 0)
		fail("dup");
	close(a); /* the watch stays under number a; the file lives at b */
}

static void dup2over(void)
{
	int ep = epoll_create1(0);
	int x = efd(), keep = dup(x), y = efd(), z = efd();
	add(ep, x, EPOLLIN, 0x1);
	add(ep, z, EPOLLIN, 0x2);
	int p[2];
	if (pipe(p) < 0)
		fail("pipe");
	dup2(p[0], x); /* x's file survives at keep: stale tfd x */
	dup2(y, z);    /* z's file had no other fd: its watch is gone */
	(void)keep;
}

static void oneshot(void)
{
	int ep = epoll_create1(0), a = efd(), b = efd();
	add(ep, a, EPOLLIN | EPOLLONESHOT, 0x51);
	add(ep, b, EPOLLIN | EPOLLONESHOT, 0x52); /* stays armed */
	uint64_t one = 1;
	if (write(a, &one, sizeof(one)) != sizeof(one))
		fail("write");
	struct epoll_event ev;
	if (epoll_wait(ep, &ev, 1, 1000) != 1)
		fail("epoll_wait");
}

static void edge(void)
{
	int ep = epoll_create1(0), p[2];
	if (pipe2(p, O_NONBLOCK) < 0)
		fail("pipe2");
	add(ep, p[0], EPOLLIN | EPOLLET | EPOLLRDHUP, 0xe1);
	add(ep, p[1], EPOLLOUT | EPOLLET, 0xe2);
}

static int listener(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 77) < 0)
		fail("listener");
	return fd;
}

static void exclusive(void)
{
	int l = listener(), a = epoll_create1(0), b = epoll_create1(0);
	add(a, l, EPOLLIN | EPOLLEXCLUSIVE, 0xc1);
	add(b, l, EPOLLIN | EPOLLEXCLUSIVE | EPOLLET, 0xc2);
}

static void raw(void)
{
	int ep = epoll_create1(0), a = efd(), b = efd();
	add(ep, a, EPOLLIN, 0x1);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = 0xbad };
	if (syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, b, &ev) < 0)
		fail("raw epoll_ctl");
	/* and a set the shim never saw created */
	int hidden = (int)syscall(SYS_epoll_create1, 0);
	if (hidden < 0 || syscall(SYS_epoll_ctl, hidden, EPOLL_CTL_ADD, a, &ev) < 0)
		fail("raw epoll_create1");
}

/*
 * A set the shim never saw created (as one inherited across exec, or a
 * parent's used by a forked child), used only through libc's epoll_ctl:
 * no epoll_create started the recorder thread, the first epoll_ctl must,
 * or every dump is read from outside, without the shadow's backtraces.
 */
static void rawset(void)
{
	int ep = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (ep < 0)
		fail("raw epoll_create1");
	add(ep, efd(), EPOLLIN, 0xa1);
	add(ep, efd(), EPOLLOUT, 0xa2);
}

/* Watches, then a fork: the parent must stay dumpable afterwards. */
static void forked(void)
{
	int ep = epoll_create1(0), a = efd();
	add(ep, a, EPOLLIN, 0xf1);
	pid_t pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	add(ep, efd(), EPOLLOUT, 0xf2);
	close(a); /* a file watched before the fork: shared, now uncertain */
}

static void mixed(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = { .it_value = { 100, 0 }, .it_interval = { 3, 0 } };
	if (t < 0 || timerfd_settime(t, 0, &its, NULL) < 0)
		fail("timerfd");
	int e = eventfd(5, EFD_SEMAPHORE);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		fail("socketpair");
	add(ep, t, EPOLLIN, 0x71);
	add(ep, e, EPOLLIN | EPOLLOUT, 0x72);
	add(ep, sv[0], EPOLLIN | EPOLLRDHUP, 0x73);
	add(ep, listener(), EPOLLIN, 0x74);
}

/*
 * n watches in all: as many eventfds as RLIMIT_NOFILE allows (raising the
 * soft limit to the hard one), each watched in as many sets as it takes.
 */
static void many(int n)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)n + 64 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max
							  : (rlim_t)n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	int nfiles = n;
	if ((rlim_t)nfiles + 200 > rl.rlim_cur)
		nfiles = (int)rl.rlim_cur - 200;
	int nsets = (n + nfiles - 1) / nfiles;
	int *files = calloc((size_t)nfiles, sizeof(*files));
	if (!files)
		fail("calloc");
	for (int i = 0; i < nfiles; i++)
		files[i] = efd();
	for (int s = 0, added = 0; s < nsets; s++) {
		int ep = epoll_create1(0);
		if (ep < 0)
			fail("epoll_create1");
		for (int i = 0; i < nfiles && added < n; i++, added++)
			add(ep, files[i], EPOLLIN | (i % 3 ? 0 : EPOLLET),
			    0x7f0000000000ull + (uint64_t)added * 64);
	}
	free(files);
}

struct churn {
	int ep;
	unsigned seed;
};

/* Random ADD/MOD/DEL/dup/close on a private pool, plus malloc traffic. */
static void *churn(void *arg)
{
	struct churn *c = arg;
	int fds[32];
	for (int i = 0; i < 32; i++)
		fds[i] = efd();
	while (!stop) {
		int i = (int)(rand_r(&c->seed) % 32);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
		switch (rand_r(&c->seed) % 6) {
		case 0:
			epoll_ctl(c->ep, EPOLL_CTL_ADD, fds[i], &ev);
			break;
		case 1:
			ev.events = EPOLLOUT;
			epoll_ctl(c->ep, EPOLL_CTL_MOD, fds[i], &ev);
			break;
		case 2:
			epoll_ctl(c->ep, EPOLL_CTL_DEL, fds[i], NULL);
			break;
		case 3: {
			int d = dup(fds[i]);
			if (d >= 0) {
				close(fds[i]);
				fds[i] = d;
			}
			break;
		}
		case 4:
			close(fds[i]);
			fds[i] = efd();
			break;
		default:
			free(malloc(1 + rand_r(&c->seed) % 4096));
		}
	}
	return NULL;
}

static void hammer(int nthreads)
{
	static struct churn c[16];
	pthread_t tid;
	int shared = epoll_create1(0);
	for (int i = 0; i < nthreads && i < 16; i++) {
		c[i].ep = i % 2 ? shared : epoll_create1(0);
		c[i].seed = (unsigned)i * 7919u + 1;
		if (pthread_create(&tid, NULL, churn, &c[i]) != 0)
			fail("pthread_create");
		pthread_detach(tid);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: rec_scenario SCENARIO [N]\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	const char *s = argv[1];
	int n = argc > 2 ? atoi(argv[2]) : 0;
	if (!strcmp(s, "nested"))
		nested();
	else if (!strcmp(s, "dupclose"))
		dupclose();
	else if (!strcmp(s, "dup2over"))
		dup2over();
	else if (!strcmp(s, "oneshot"))
		oneshot();
	else if (!strcmp(s, "et"))
		edge();
	else if (!strcmp(s, "exclusive"))
		exclusive();
	else if (!strcmp(s, "raw"))
		raw();
	else if (!strcmp(s, "mixed"))
		mixed();
	else if (!strcmp(s, "forked"))
		forked();
	else if (!strcmp(s, "rawset"))
		rawset();
	else if (!strcmp(s, "many"))
		many(n > 0 ? n : 1000);
	else if (!strcmp(s, "hammer"))
		hammer(n > 0 ? n : 4);
	else {
		fprintf(stderr, "rec_scenario: unknown scenario %s\n", s);
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 6000 && !stop; i++) /* at most 10 minutes */
		usleep(100000);
	return 0;
}
