// SPDX-License-Identifier: MIT
/*
 * verify_prog: a program for test_verify_shim.sh, run with or without the
 * shim.  One epoll set watching eventfds A (data 1), B (data 2) and C
 * (data 3); prints "ready EPFD A B C" and then, on each signal, changes
 * its state through libc (so the shim sees it) or behind the shim:
 *
 *   SIGUSR1  stale: A's file is kept alive at a dup (through libc), A's
 *            number closed and reused by a new eventfd: the watch on A
 *            is stale, its tfd holds another file of the same inode
 *   SIGUSR2  raw: B's watch changed to EPOLLOUT, data 0x22 by the raw
 *            epoll_ctl syscall, behind the shim's back
 *   SIGHUP   rawstale: as SIGUSR1 for C, by raw dup, close and eventfd2
 *            syscalls, behind the shim's back
 *
 * and prints "stale DUP", "raw" or "rawstale DUP" when done.  Exits on
 * SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "verify_prog: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int efd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		fail("eventfd");
	return fd;
}

static void add(int ep, int fd, uint64_t data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		fail("epoll_ctl ADD");
}

int main(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		fail("sigprocmask");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		fail("epoll_create1");
	int a = efd(), b = efd(), c = efd();
	add(ep, a, 1);
	add(ep, b, 2);
	add(ep, c, 3);
	printf("ready %d %d %d %d\n", ep, a, b, c);
	fflush(stdout);
	/* A bounded life: 120 s at most without a signal. */
	alarm(120);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			fail("sigwait");
		if (sig == SIGTERM)
			break;
		if (sig == SIGUSR1) {
			int keep = dup(a);
			if (keep < 0)
				fail("dup");
			if (close(a) < 0)
				fail("close");
			int again = efd();
			if (again != a) {
				errno = EBADF;
				fail("the new eventfd did not take the closed number");
			}
			printf("stale %d\n", keep);
		} else if (sig == SIGHUP) {
			long keep = syscall(SYS_dup, c);
			if (keep < 0)
				fail("raw dup");
			if (syscall(SYS_close, c) < 0)
				fail("raw close");
			long again = syscall(SYS_eventfd2, 0,
					     EFD_NONBLOCK | EFD_CLOEXEC);
			if (again != c) {
				errno = EBADF;
				fail("the raw eventfd did not take the closed number");
			}
			printf("rawstale %ld\n", keep);
		} else {
			struct epoll_event ev = { .events = EPOLLOUT,
						  .data.u64 = 0x22 };
			if (syscall(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, b, &ev) < 0)
				fail("raw epoll_ctl MOD");
			printf("raw\n");
		}
		fflush(stdout);
	}
	return 0;
}
