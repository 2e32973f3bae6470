// SPDX-License-Identifier: MIT
/*
 * A signal handler that interrupts the shim while it captures a stack (an
 * epoll_ctl ADD with a backtrace) makes the program's calls: an eventfd it
 * creates must get the lowest free number, as without the shim, and its
 * watch must be recorded.  Plain program: run it under the shim, with
 * EPOLLCR_BACKTRACE deep, so that the unwinding takes most of each ADD.
 *
 *   sig_unwind SECONDS
 *	Main thread: ADDs and DELs of a few eventfds from 40 frames deep, in
 *	a loop.  SIGALRM every 50 us: the handler creates an eventfd, checks
 *	that its number is the lowest free one (it closes and reopens to
 *	see), watches it in a set of its own, and closes it.  Prints
 *	"done ROUNDS HANDLED HIGH" (HIGH: handler eventfds that did not get
 *	the lowest free number) after SECONDS (at most 30) and exits 0, or
 *	exits 1 when a call failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TARGETS 4

static int ep, hep, targets[TARGETS];
static volatile long handled, high;
static volatile sig_atomic_t failed;

static void on_alarm(int sig)
{
	int saved_errno = errno;
	(void)sig;
	int fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0) {
		failed = 1;
		goto out;
	}
	/* The lowest free number is fd itself: closed, it comes back. */
	close(fd);
	int again = eventfd(0, EFD_CLOEXEC);
	if (again != fd || fd > 64)
		high++;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = again };
	if (again < 0 || epoll_ctl(hep, EPOLL_CTL_ADD, again, &ev) < 0)
		failed = 1;
	if (again >= 0)
		close(again);
	handled++;
out:
	errno = saved_errno;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ADD and DEL every target from depth frames down. */
static int __attribute__((noinline)) deep(int depth)
{
	if (depth > 0) {
		int r = deep(depth - 1);
		__asm__ volatile("" ::: "memory"); /* no tail call */
		return r;
	}
	for (int i = 0; i < TARGETS; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, targets[i], &ev) < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_DEL, targets[i], NULL) < 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2;
	if (seconds <= 0 || seconds > 30)
		seconds = 2;
	ep = epoll_create1(EPOLL_CLOEXEC);
	hep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < TARGETS; i++)
		targets[i] = eventfd(0, EFD_CLOEXEC);
	if (ep < 0 || hep < 0 || targets[TARGETS - 1] < 0) {
		perror("sig_unwind: setup");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_alarm,
				.sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_interval = { 0, 50 },
				.it_value = { 0, 50 } };
	if (setitimer(ITIMER_REAL, &it, NULL) < 0) {
		perror("sig_unwind: setitimer");
		return 1;
	}
	long rounds = 0;
	double end = now() + seconds;
	while (!failed && now() < end) {
		if (deep(40) < 0) {
			perror("sig_unwind: epoll_ctl");
			return 1;
		}
		rounds++;
	}
	struct itimerval off = { 0 };
	setitimer(ITIMER_REAL, &off, NULL);
	if (failed) {
		fprintf(stderr, "sig_unwind: a handler call failed\n");
		return 1;
	}
	printf("done %ld %ld %ld\n", rounds, (long)handled, (long)high);
	return 0;
}
