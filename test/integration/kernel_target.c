// SPDX-License-Identifier: MIT
/*
 * A program whose epoll state only the kernel knows: every epoll call is
 * a raw syscall, so under `epollcr run` the shim's recorder never starts,
 * and built with -static the shim is not loaded at all.  It holds nested
 * sets, a fired oneshot, a stale tfd, an EPOLLEXCLUSIVE watch, a
 * listening TCP socket (backlog 7), a bound UDP socket, a listening unix
 * socket (abstract name "epollcr-kt-PID", backlog 5), a socketpair, an
 * eventfd, a timerfd, a signalfd (SIGUSR2, SIGWINCH) and a pipe; prints "ready" and waits to be killed.
 * With the argument "busy" it then changes the data of one watch without
 * a pause instead (EPOLL_CTL_MOD, data counting up), so that no two reads
 * of its state agree.  Test program of test_kernel_only.sh.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

static int ep_create(void)
{
	return (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
}

static void ep_add(int epfd, int fd, unsigned events, unsigned long data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("epoll_ctl");
		exit(1);
	}
}

static int tcp_listener(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 7) < 0) {
		perror("tcp");
		exit(1);
	}
	return fd;
}

static int udp_bound(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("udp");
		exit(1);
	}
	return fd;
}

static int unix_listener(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
			   "epollcr-kt-%d", (int)getpid());

	if (bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0 ||
	    listen(fd, 5) < 0) {
		perror("unix");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	int outer = ep_create(), inner = ep_create(), once = ep_create();
	int efd = eventfd(3, EFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = { .it_value.tv_sec = 3600,
				  .it_interval.tv_sec = 3600 };
	int lsn = tcp_listener(), udp = udp_bound(), ulsn = unix_listener();
	int sp[2], pp[2];
	int fired = eventfd(1, 0);
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

	if (outer < 0 || inner < 0 || once < 0 || efd < 0 || tfd < 0 ||
	    fired < 0 || sfd < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0 ||
	    pipe(pp) < 0) {
		perror("setup");
		return 1;
	}
	timerfd_settime(tfd, 0, &its, NULL);
	/* nesting: outer watches inner, inner watches eventfd and timerfd */
	ep_add(inner, efd, EPOLLIN | EPOLLET, 0x1001);
	ep_add(inner, tfd, EPOLLIN, 0x1002);
	ep_add(inner, sfd, EPOLLIN, 0x1003);
	ep_add(outer, inner, EPOLLIN, 0x2001);
	ep_add(outer, lsn, EPOLLIN | EPOLLEXCLUSIVE, 0x2002);
	ep_add(outer, udp, EPOLLIN | EPOLLOUT, 0x2003);
	ep_add(outer, sp[0], EPOLLIN | EPOLLRDHUP, 0x2004);
	ep_add(outer, ulsn, EPOLLIN, 0x2006);
	/* a stale tfd: added through a dup that is closed again */
	int dup_r = dup(pp[0]);
	ep_add(outer, dup_r, EPOLLIN, 0x2005);
	close(dup_r);
	/* a fired oneshot: its only event was collected */
	ep_add(once, fired, EPOLLIN | EPOLLONESHOT, 0x3001);
	struct epoll_event ev;
	if (syscall(SYS_epoll_wait, once, &ev, 1, 1000) != 1) {
		fprintf(stderr, "the oneshot did not fire\n");
		return 1;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (argc > 1 && !strcmp(argv[1], "busy")) {
		struct epoll_event mod = { .events = EPOLLIN | EPOLLET };

		for (uint64_t n = 0;; n++) {
			mod.data.u64 = 0x1001 + n;
			syscall(SYS_epoll_ctl, inner, EPOLL_CTL_MOD, efd, &mod);
		}
	}
	for (;;)
		pause();
}
