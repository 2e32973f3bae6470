// SPDX-License-Identifier: MIT
/*
 * behind: replaces a descriptor behind the shim's back, for good.  Plain
 * program: run it under the shim.
 *
 *   behind
 *	Creates an epoll set watching an eventfd (so that every anon-inode
 *	file is described in an image) and a pipe through libc, which the
 *	shim records; then closes the pipe's read end and creates an eventfd
 *	at that number with raw system calls, which the shim does not see.
 *	Prints "ready FD" (the replaced number) and waits for SIGTERM.  The
 *	recorder must report the kind disagreement at FD in every image: it
 *	lasts, unlike a race of the program with a dump.  Exit 0, or 1 when
 *	a call failed.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_term };
	struct epoll_event ev = { .events = EPOLLIN };
	int p[2];

	sigaction(SIGTERM, &sa, NULL);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int watched = eventfd(0, EFD_CLOEXEC);
	if (ep < 0 || watched < 0 || pipe2(p, O_CLOEXEC) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, watched, &ev) < 0) {
		perror("behind");
		return 1;
	}
	/* The lowest free number is p[0] again once it is closed. */
	long fd = -1;
	if (syscall(SYS_close, p[0]) == 0)
		fd = syscall(SYS_eventfd2, 0, EFD_CLOEXEC);
	if (fd != p[0]) {
		fprintf(stderr, "behind: eventfd at %ld, not %d\n", fd, p[0]);
		return 1;
	}
	printf("ready %ld\n", fd);
	fflush(stdout);
	for (int i = 0; i < 600 * 100 && !stopping; i++)
		usleep(10000);
	return 0;
}
