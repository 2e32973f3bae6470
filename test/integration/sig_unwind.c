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
 *	a loop.  SIGALRM 50 us after the previous handler ended (so that
 *	a slow handler never starves the loop): the handler creates an eventfd, checks
 *	that its number is the lowest free one (it closes and reopens to
 *	see), watches it in a set of its own, and closes it.  Prints
 *	"done ROUNDS HANDLED HIGH" (HIGH: handler eventfds that did not get
 *	the lowest free number) after SECONDS (at most 30) and exits 0, or
 *	exits 1 when a call failed.
 *
 *   sig_unwind first CHILDREN
 *	The first epoll calls of a process (which scan its descriptors for
 *	inherited sets) under a storm of the same handler: CHILDREN (at
 *	most 2000) forked children each start a thread that sends SIGALRM
 *	to the main thread every 15 us, make their first epoll calls,
 *	stop the thread and report.  Prints "first CHILDREN HANDLED HIGH"
 *	(HIGH: children where a handler eventfd did not get the lowest free
 *	number) and exits 0, or exits 1 when a call failed.
 */
#include <pthread.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TARGETS 4

static int ep, targets[TARGETS];
static volatile int hep;
static volatile long handled, high;
static volatile sig_atomic_t failed, stopping;

/*
 * One alarm 50 us from now.  Re-armed by the handler when it ends, not
 * periodic: a handler that takes longer than the period (a loaded
 * machine) would otherwise run back to back and starve the main loop.
 */
static void arm(void)
{
	const struct itimerval it = { .it_value = { 0, 50 } };
	if (!stopping)
		setitimer(ITIMER_REAL, &it, NULL);
}

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
	if (again < 0 ||
	    (hep >= 0 && epoll_ctl(hep, EPOLL_CTL_ADD, again, &ev) < 0))
		failed = 1;
	if (again >= 0)
		close(again);
	handled++;
out:
	arm();
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

static int stop_storm;

/*
 * Send SIGALRM to the main thread every STORM_US microseconds (spinning
 * between) until stop_storm: often, but not so often that the main
 * thread only runs when this one is off its CPU.
 */
#define STORM_US 15
static void *storm(void *arg)
{
	pthread_t main_thread = *(pthread_t *)arg;
	while (!__atomic_load_n(&stop_storm, __ATOMIC_ACQUIRE)) {
		pthread_kill(main_thread, SIGALRM);
		for (double next = now() + STORM_US / 1e6; now() < next;)
			;
	}
	return NULL;
}

/* One child of "first": 0 clean, 2 a handler eventfd not lowest, 1 failed. */
static int first_child(void)
{
	pthread_t self = pthread_self(), t;
	sigset_t alrm, old;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	/* The storm thread inherits SIGALRM blocked: only main handles it. */
	pthread_sigmask(SIG_BLOCK, &alrm, &old);
	if (pthread_create(&t, NULL, storm, &self) != 0)
		return 1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* The storm under way (at most a second). */
	for (double end = now() + 1; !handled && now() < end;)
		sched_yield();
	int e = epoll_create1(EPOLL_CLOEXEC);
	int target = eventfd(0, EFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	int ok = e >= 0 && target >= 0 &&
		 epoll_ctl(e, EPOLL_CTL_ADD, target, &ev) == 0;
	__atomic_store_n(&stop_storm, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	if (!ok || failed)
		return 1;
	return high ? 2 : 0;
}

static int first_mode(long children)
{
	struct sigaction sa = { .sa_handler = on_alarm,
				.sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	stopping = 1; /* the storm, not the timer */
	hep = -1;
	long bad = 0;
	for (long i = 0; i < children; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("sig_unwind: fork");
			return 1;
		}
		if (pid == 0)
			_exit(first_child());
		int status;
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) == 1) {
			fprintf(stderr, "sig_unwind: child %ld failed\n", i);
			return 1;
		}
		bad += WEXITSTATUS(status) == 2;
	}
	printf("first %ld %ld\n", children, bad);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "first") == 0) {
		long n = atol(argv[2]);
		return first_mode(n > 0 && n <= 2000 ? n : 100);
	}
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
	const struct itimerval it = { .it_value = { 0, 50 } };
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
	stopping = 1;
	setitimer(ITIMER_REAL, &off, NULL);
	if (failed) {
		fprintf(stderr, "sig_unwind: a handler call failed\n");
		return 1;
	}
	printf("done %ld %ld %ld\n", rounds, (long)handled, (long)high);
	return 0;
}
