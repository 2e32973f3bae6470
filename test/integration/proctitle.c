// SPDX-License-Identifier: MIT
/*
 * proctitle: a program that rewrites its process title, as redis-server
 * and nginx do, then registers a watch.  Plain program: run it under the
 * shim.
 *
 *   proctitle
 *	Overwrites the whole argv area (argv[0] and its arguments) with
 *	"proctitle-rewritten: serving", creates an epoll set and an eventfd,
 *	adds the eventfd from register_watch() (a function of its own, so that
 *	the first frame of the ADD's backtrace is in this program), prints
 *	"ready LINE" where LINE is the line of that epoll_ctl call in this
 *	file, and waits for SIGTERM.  Exit 0, or 1 when a call failed.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TITLE "proctitle-rewritten: serving"

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Rewrite argv[0]..argv[argc-1] in place, as setproctitle() does. */
static void set_title(int argc, char **argv)
{
	char *start = argv[0];
	char *end = argv[argc - 1] + strlen(argv[argc - 1]);
	size_t room = (size_t)(end - start);

	memset(start, 0, room);
	strncpy(start, TITLE, room);
}

static int ctl_line;

static __attribute__((noinline)) int register_watch(int ep, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 };
	ctl_line = __LINE__ + 1;
	int ret = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
	return ret;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigaction(SIGTERM, &sa, NULL);
	set_title(argc, argv);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ep < 0 || fd < 0 || register_watch(ep, fd) < 0) {
		perror("proctitle");
		return 1;
	}
	printf("ready %d\n", ctl_line);
	fflush(stdout);
	for (int i = 0; i < 600 * 100 && !stopping; i++)
		usleep(10000);
	return 0;
}
