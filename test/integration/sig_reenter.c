// SPDX-License-Identifier: MIT
/*
 * sig_reenter: wrapped calls made from a signal handler that interrupts a
 * wrapped call of the same thread.  Plain program: run it under the shim.
 *
 *   sig_reenter SECONDS
 *	Creates an epoll set watching a few eventfds; its main thread loops
 *	creating, watching and closing eventfds (close of a watched file
 *	takes the shim's fd-operation lock shared), while a SIGALRM timer
 *	(every 200 us) runs a handler that creates an eventfd, dups it,
 *	watches the copy with epoll_ctl and closes both (every other time
 *	the copy with dup2() of another watched file over it).  Prints "ready", runs for SECONDS (at most 60)
 *	or until SIGTERM, then prints "done N M" (main-loop rounds, handler
 *	runs) and exits 0; exit 1 when a call failed.  A dump requested
 *	meanwhile must complete, and nothing may hang.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HANDLER_FDS 4 /* watched files the handler copies */

static volatile sig_atomic_t stopping, failed, failed_errno;
static const char *volatile failed_call;
static volatile long handler_runs;
static int ep;
static int handler_fds[HANDLER_FDS];

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void fail_at(const char *call)
{
	if (!failed) {
		failed_call = call;
		failed_errno = errno;
	}
	failed = 1;
}

static void on_alarm(int sig)
{
	int saved_errno = errno;
	struct epoll_event ev = { .events = EPOLLIN };
	int src = handler_fds[handler_runs % HANDLER_FDS];

	(void)sig;
	/* A file of its own: its watch goes when both numbers are closed. */
	int own = eventfd(0, EFD_CLOEXEC);
	int copy = own < 0 ? -1 : dup(own);
	if (copy < 0) {
		fail_at("handler eventfd or dup");
		goto out;
	}
	ev.data.fd = copy;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, copy, &ev) < 0)
		fail_at("handler epoll_ctl");
	/* dup2 over the copy closes it implicitly first. */
	if ((handler_runs & 1) && dup2(src, copy) < 0)
		fail_at("handler dup2");
	if (close(copy) < 0 || close(own) < 0)
		fail_at("handler close");
	handler_runs++;
out:
	errno = saved_errno;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 5;
	struct sigaction term = { .sa_handler = on_term };
	struct sigaction alarm = { .sa_handler = on_alarm,
				   .sa_flags = SA_RESTART };
	struct epoll_event ev = { .events = EPOLLIN };

	if (seconds <= 0 || seconds > 60)
		seconds = 5;
	sigaction(SIGTERM, &term, NULL);
	sigaction(SIGALRM, &alarm, NULL);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("sig_reenter: epoll_create1");
		return 1;
	}
	for (int i = 0; i < HANDLER_FDS; i++) {
		handler_fds[i] = eventfd(0, EFD_CLOEXEC);
		ev.data.fd = handler_fds[i];
		if (handler_fds[i] < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, handler_fds[i], &ev) < 0) {
			perror("sig_reenter: watch");
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);

	struct itimerval it = { .it_interval = { 0, 200 },
				.it_value = { 0, 200 } };
	if (setitimer(ITIMER_REAL, &it, NULL) < 0) {
		perror("sig_reenter: setitimer");
		return 1;
	}
	double end = now() + seconds;
	long rounds = 0;
	while (!stopping && !failed && now() < end) {
		int fd = eventfd(0, EFD_CLOEXEC);
		ev.data.fd = fd;
		if (fd < 0) {
			fail_at("eventfd");
			break;
		}
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			fail_at("epoll_ctl");
		if (close(fd) < 0)
			fail_at("close");
		rounds++;
	}
	struct itimerval off = { 0 };
	setitimer(ITIMER_REAL, &off, NULL);
	if (failed) {
		fprintf(stderr, "sig_reenter: %s: %s\n", failed_call,
			strerror(failed_errno));
		return 1;
	}
	printf("done %ld %ld\n", rounds, (long)handler_runs);
	fflush(stdout);
	/* Stay for a final dump, until SIGTERM (at most 60 s). */
	for (int i = 0; i < 6000 && !stopping; i++)
		usleep(10000);
	return 0;
}
