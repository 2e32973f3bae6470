// SPDX-License-Identifier: MIT
/*
 * same_tfd: many watches of one set that share (tfd, events, data) but
 * watch different files.  Plain program: run it under the shim.
 *
 *   same_tfd N TFD [pipe]
 *	For N files (eventfds, or the read ends of pipes with "pipe"): puts
 *	the file at TFD with dup2 and adds it to one set with EPOLLIN and
 *	data 7, keeping the file open at its first number; then closes TFD.
 *	Every watch is then stale (TFD holds nothing) and only kcmp tells
 *	which file each one is on.  Prints "ready" and waits for SIGTERM
 *	(at most 600 s).  Exit 0, or 1 when a call failed.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	struct rlimit rl;

	if (argc < 3) {
		fprintf(stderr, "usage: same_tfd N TFD [pipe]\n");
		return 1;
	}
	int n = atoi(argv[1]), tfd = atoi(argv[2]);
	bool pipes = argc > 3 && !strcmp(argv[3], "pipe");

	sigaction(SIGTERM, &sa, NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("same_tfd: epoll_create1");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
		int p[2], fd;

		if (pipes) {
			fd = pipe(p) < 0 ? -1 : p[0];
			if (fd >= 0)
				close(p[1]);
		} else {
			fd = eventfd(0, 0);
		}
		if (fd < 0 || dup2(fd, tfd) < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0) {
			perror("same_tfd");
			return 1;
		}
	}
	close(tfd);
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 60000 && !stopping; i++)
		usleep(10000);
	return 0;
}
