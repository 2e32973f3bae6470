// SPDX-License-Identifier: MIT
/*
 * sleepers: threads asleep in calls the kernel never restarts after a
 * signal handler, counting every EINTR.  Plain program: run it under the
 * shim.
 *
 *   sleepers STOPFILE [BLOCKSIG]
 *	Three threads sleep in epoll_wait, epoll_pwait (with an empty signal
 *	mask) and poll (each on its own epoll set or pipe that never becomes
 *	ready, 200 ms at a time); the main thread sleeps in nanosleep (50 ms
 *	at a time) until STOPFILE exists or 120 s have passed.  With
 *	BLOCKSIG (a number), every thread blocks that signal, epoll_pwait's
 *	mask too (the workaround docs/limitations.md gives for a plain kill
 *	of the checkpoint signal).  Prints "ready" once every thread is
 *	asleep, and at the end one line "eintr epoll_wait=N epoll_pwait=N
 *	poll=N nanosleep=N" and "calls N".  Exit 0, or 1 when a call failed
 *	with anything but EINTR.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

enum { S_EPOLL_WAIT, S_EPOLL_PWAIT, S_POLL, S_NANOSLEEP, S_COUNT };

static const char *const names[S_COUNT] = { "epoll_wait", "epoll_pwait",
					    "poll", "nanosleep" };
static int eintr[S_COUNT];
static long calls;
static int failed;
static volatile int stopping;
static int asleep;
static int block_sig;

static void count(int which, int ret)
{
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	if (ret < 0 && errno == EINTR)
		__atomic_add_fetch(&eintr[which], 1, __ATOMIC_RELAXED);
	else if (ret < 0)
		__atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
}

static void *sleeper(void *arg)
{
	int which = (int)(long)arg;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		failed = 1;
		return NULL;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN }, out;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0) {
		failed = 1;
		return NULL;
	}
	/*
	 * epoll_pwait's mask: empty (every signal unblocked while it waits),
	 * or with BLOCKSIG the thread's own, which blocks it.
	 */
	sigset_t wait_mask;
	sigemptyset(&wait_mask);
	if (block_sig)
		pthread_sigmask(SIG_BLOCK, NULL, &wait_mask);
	__atomic_add_fetch(&asleep, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		switch (which) {
		case S_EPOLL_WAIT:
			count(which, epoll_wait(ep, &out, 1, 200));
			break;
		case S_EPOLL_PWAIT:
			count(which, epoll_pwait(ep, &out, 1, 200, &wait_mask));
			break;
		default:
			count(which, poll(&pfd, 1, 200));
			break;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[S_NANOSLEEP];
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: sleepers STOPFILE [BLOCKSIG]\n");
		return 2;
	}
	if (argc == 3) {
		sigset_t block;
		block_sig = atoi(argv[2]);
		sigemptyset(&block);
		sigaddset(&block, block_sig);
		pthread_sigmask(SIG_BLOCK, &block, NULL); /* threads inherit it */
	}
	for (long i = 0; i < S_NANOSLEEP; i++)
		if (pthread_create(&t[i], NULL, sleeper, (void *)i) != 0) {
			fprintf(stderr, "sleepers: pthread_create failed\n");
			return 1;
		}
	for (int i = 0; i < 200 && __atomic_load_n(&asleep, __ATOMIC_ACQUIRE) <
					    S_NANOSLEEP; i++)
		usleep(10000);
	printf("ready\n");
	fflush(stdout);
	/* 120 s at 50 ms a step, EINTRs included. */
	for (int i = 0; i < 2400 && access(argv[1], F_OK) != 0; i++) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		count(S_NANOSLEEP, nanosleep(&ts, NULL));
	}
	__atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < S_NANOSLEEP; i++)
		pthread_join(t[i], NULL);
	printf("eintr");
	for (int i = 0; i < S_COUNT; i++)
		printf(" %s=%d", names[i], eintr[i]);
	printf("\ncalls %ld\n", calls);
	return failed;
}
