// SPDX-License-Identifier: MIT
/*
 * vfork_child: children that share the parent's memory call wrapped
 * functions.  Plain program: run it under the shim.
 *
 *   vfork_child vfork|vfork-exit|clone|spawn
 *	Watches a TCP listener (127.0.0.1, backlog 5) in an epoll set, then
 *	starts a child with vfork() (which execs /bin/true, or _exits with
 *	vfork-exit) or clone(CLONE_VM | CLONE_VFORK) (whose function
 *	returns), or posix_spawn() of /bin/true with file actions closing the
 *	listener and every fd above it (spawn: glibc's child calls no
 *	wrapper).  The vfork and clone children close the listener, creates an epoll set
 *	watching a new pipe, a socket and an eventfd, and closes them all:
 *	in the child's own fd table, none of which the parent's registry may
 *	record, each at the lowest free number (not moved high as the
 *	shim's own descriptors are).  Prints "ready FD" (the listener) once the child is done and
 *	waits for SIGTERM.  Exit 0, or 1 when a call failed.
 */
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static int listener;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* The child's work: async-signal-safe calls on its own fd table. */
static int child_calls(void)
{
	int p[2];
	struct epoll_event ev = { .events = EPOLLIN };
	close(listener);
	int ep = epoll_create1(0);
	if (ep < 0 || pipe(p) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0)
		return 1;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	int e = eventfd(0, 0);
	if (s < 0 || e < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) < 0)
		return 1;
	/* The lowest free numbers, as without the shim (not moved high). */
	if (ep > 64 || p[0] > 64 || p[1] > 64 || s > 64 || e > 64)
		return 1;
	close(s);
	close(e);
	close(p[0]);
	close(p[1]);
	close(ep);
	return 0;
}

static int clone_fn(void *arg)
{
	(void)arg;
	return child_calls();
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event ev = { .events = EPOLLIN };
	static char stack[256 * 1024] __attribute__((aligned(16)));
	const char *how = argc == 2 ? argv[1] : "";
	int status = -1;
	pid_t pid;

	sigaction(SIGTERM, &sa, NULL);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	int ep = epoll_create1(0);
	if (listener < 0 || ep < 0 ||
	    bind(listener, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(listener, 5) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) < 0) {
		perror("vfork_child");
		return 1;
	}
	if (!strcmp(how, "vfork") || !strcmp(how, "vfork-exit")) {
		pid = vfork();
		if (pid == 0) {
			if (child_calls())
				_exit(1);
			if (!strcmp(how, "vfork"))
				execl("/bin/true", "true", (char *)NULL);
			_exit(0);
		}
	} else if (!strcmp(how, "spawn")) {
		posix_spawn_file_actions_t fa;
		char *args[] = { "true", NULL };
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addclose(&fa, listener);
		posix_spawn_file_actions_addclosefrom_np(&fa, listener + 1);
		int err = posix_spawn(&pid, "/bin/true", &fa, NULL, args,
				      environ);
		posix_spawn_file_actions_destroy(&fa);
		if (err)
			pid = -1;
	} else if (!strcmp(how, "clone")) {
		pid = clone(clone_fn, stack + sizeof(stack),
			    CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	} else {
		fprintf(stderr,
			"usage: vfork_child vfork|vfork-exit|clone|spawn\n");
		return 2;
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0) {
		fprintf(stderr, "vfork_child: %s child failed (status %d)\n",
			how, status);
		return 1;
	}
	printf("ready %d\n", listener);
	fflush(stdout);
	while (!stopping)
		pause();
	return 0;
}
