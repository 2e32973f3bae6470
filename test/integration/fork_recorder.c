// SPDX-License-Identifier: MIT
/*
 * Forks made while the shim's recorder thread is busy must leave a child
 * that can allocate.  Under AddressSanitizer (whose allocator fork does
 * not lock) a child forked while that thread was inside the allocator hung
 * at its first malloc: nginx's master forked its workers right after its
 * first epoll_create started the thread, and 1 run in 30 lost a worker.
 *
 *   fork_recorder start N   N times: a child creates a set (starting its
 *                           recorder) and forks at once; the grandchild
 *                           allocates and exits.  Prints "hung K" when K
 *                           grandchildren did not exit within 5 s.
 *   fork_recorder thread N  N times: a child has a second thread fork
 *                           while its main thread creates its first set
 *                           (starting the recorder); each grandchild
 *                           creates a set (starting its own) and exits.
 *                           A grandchild forked while the start lock was
 *                           held hung for ever in its epoll_create1.
 *                           Stops at the first trial with a grandchild
 *                           not gone within 2 s, and says which.
 *   fork_recorder unwind N  the same, but the recorder runs before the
 *                           forks, and the main thread registers 20
 *                           watches meanwhile (its first: libunwind's
 *                           first use), each grandchild one.  A grandchild
 *                           forked while libunwind held a lock of its own
 *                           hung for ever in its epoll_ctl.
 *   fork_recorder dump N F  one set of 300 watches (the recorder runs),
 *                           prints "ready"; waits (30 s at most) until
 *                           the file F exists, then forks N allocating
 *                           children, one at a time, while the test
 *                           requests dumps.
 *
 * Exit status 0 when every child exited by itself, 1 otherwise.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Allocate in sizes of several classes, as a starting program does. */
static void allocate(void)
{
	void *p[64];
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 64; i++)
			p[i] = malloc(16 + (size_t)i * 24);
		for (int i = 0; i < 64; i++)
			free(p[i]);
	}
	char *s;
	if (asprintf(&s, "child %d", (int)getpid()) >= 0)
		free(s);
}

/* Wait for pid at most 5 s; kill it and return 1 when it hung. */
static int reap(pid_t pid)
{
	int st;
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		if (r < 0)
			return 1;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 1;
}

/* Fork one child that allocates and exits; 1 when it hung or failed. */
static int fork_allocating(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		allocate();
		_exit(0);
	}
	return reap(pid);
}

static int mode_start(int n)
{
	int hung = 0;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			/* The recorder starts in this process at its first set. */
			int ep = epoll_create1(EPOLL_CLOEXEC);
			if (ep < 0)
				_exit(2);
			/* Fork at a different moment of the thread's start-up
			 * each time: 0 to 300 us later. */
			struct timespec t0, t;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			long wait_ns = (long)(i % 31) * 10000;
			do
				clock_gettime(CLOCK_MONOTONIC, &t);
			while ((t.tv_sec - t0.tv_sec) * 1000000000L +
				       (t.tv_nsec - t0.tv_nsec) < wait_ns);
			_exit(fork_allocating());
		}
		hung += reap(pid);
	}
	printf("hung %d of %d\n", hung, n);
	return hung != 0;
}

/* Spin for ns nanoseconds. */
static void spin(long ns)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
	       ns);
}

#define THREAD_FORKS 12
static int thread_go;
static int thread_register; /* unwind mode: grandchildren register */

/* A set with one eventfd watched (one registration, one backtrace). */
static int register_one(int ep)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
	return fd < 0 ? -1 : epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Fork THREAD_FORKS children back to back from the time thread_go is set;
 * each starts a recorder of its own.  Returns how many hung. */
static void *forker(void *arg)
{
	pid_t kids[THREAD_FORKS];
	int n = 0, hung = 0;
	(void)arg;
	while (!__atomic_load_n(&thread_go, __ATOMIC_ACQUIRE))
		;
	for (int i = 0; i < THREAD_FORKS; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			int ep = epoll_create1(EPOLL_CLOEXEC);
			_exit(ep < 0 ||
			      (thread_register && register_one(ep) < 0));
		}
		if (pid > 0)
			kids[n++] = pid;
	}
	/* All of them within 2 s; the others hung. */
	int left = n;
	for (int round = 0; round < 200 && left; round++) {
		for (int i = 0; i < n; i++) {
			int st;
			if (kids[i] && waitpid(kids[i], &st, WNOHANG) == kids[i]) {
				hung += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
				kids[i] = 0;
				left--;
			}
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < n; i++) {
		if (kids[i]) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			hung++;
		}
	}
	return (void *)(intptr_t)hung;
}

static int mode_thread(int n, bool unwind)
{
	int hung = 0, i;
	for (i = 0; i < n && !hung; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			pthread_t t;
			void *ret;
			int ep = -1;
			thread_register = unwind;
			if (unwind && (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
				_exit(2);
			if (pthread_create(&t, NULL, forker, NULL) != 0)
				_exit(2);
			__atomic_store_n(&thread_go, 1, __ATOMIC_RELEASE);
			/* The start at a different moment of the forks. */
			spin((long)(i % 25) * 20000);
			if (!unwind && epoll_create1(EPOLL_CLOEXEC) < 0)
				_exit(2);
			for (int k = 0; unwind && k < 20; k++)
				if (register_one(ep) < 0)
					_exit(2);
			pthread_join(t, &ret);
			_exit(ret != NULL);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			hung++;
	}
	if (hung)
		printf("trial %d of %d: a grandchild hung\n", i, n);
	else
		printf("%d trials: no grandchild hung\n", n);
	return hung != 0;
}

static int mode_dump(int n, const char *go)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("epoll_create1");
		return 1;
	}
	for (int i = 0; i < 300; i++) {
		int fd = eventfd(0, EFD_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
		if (fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("eventfd/epoll_ctl");
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; access(go, F_OK) < 0; i++) {
		if (i == 3000) {
			fprintf(stderr, "fork_recorder: no %s after 30 s\n", go);
			return 1;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	int hung = 0;
	for (int i = 0; i < n; i++)
		hung += fork_allocating();
	printf("hung %d of %d\n", hung, n);
	fflush(stdout);
	return hung != 0;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atoi(argv[2]) <= 0) {
		fprintf(stderr, "usage: fork_recorder start N | thread N | unwind N | dump N FILE\n");
		return 2;
	}
	int n = atoi(argv[2]);
	if (!strcmp(argv[1], "start") && argc == 3)
		return mode_start(n);
	if (!strcmp(argv[1], "thread") && argc == 3)
		return mode_thread(n, false);
	if (!strcmp(argv[1], "unwind") && argc == 3)
		return mode_thread(n, true);
	if (!strcmp(argv[1], "dump") && argc == 4)
		return mode_dump(n, argv[3]);
	fprintf(stderr, "fork_recorder: unknown mode %s\n", argv[1]);
	return 2;
}
