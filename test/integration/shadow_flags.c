// SPDX-License-Identifier: MIT
/*
 * Descriptor and file flags changed every way a program can (issue 14
 * item 1), for test_shadow_flags.sh: sockets (TCP listener, accepted and
 * client ends, UDP, a unix socketpair) and pipes, created with and without
 * SOCK_NONBLOCK/SOCK_CLOEXEC, O_NONBLOCK/O_CLOEXEC/O_DIRECT, then changed
 * through fcntl F_SETFL/F_SETFD/F_DUPFD/F_DUPFD_CLOEXEC (fcntl and
 * fcntl64), ioctl FIONBIO/FIOASYNC/FIOCLEX/FIONCLEX, dup/dup2/dup3 and
 * close_range(CLOSE_RANGE_CLOEXEC); each watched in one set.  Prints
 * "ready", then, once the file named by argv[1] exists (at most 60 s),
 * changes two watched sockets' flags behind the shim (raw fcntl
 * syscalls: O_NONBLOCK on the first, FD_CLOEXEC on the second) and prints
 * "raw FD1 FD2".  Once argv[1] with "2" appended exists, starts two
 * children that inherit a watched socket each (no FD_CLOEXEC) and add
 * O_APPEND to its flags: one through posix_spawn, one through vfork and
 * execv (this program with "child FD"), and prints "spawned FD3 FD4" when
 * both exited.  Sleeps until killed (at most 120 s).
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int ep;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int chk(int r, const char *what)
{
	if (r < 0)
		die(what);
	return r;
}

static void watch(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	chk(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
}

int main(int argc, char **argv)
{
	int one = 1, zero = 0, sp[2], p[2], q[2];
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int (*fcntl64_p)(int, int, ...) =
		(int (*)(int, int, ...))dlsym(RTLD_DEFAULT, "fcntl64");

	if (argc == 3 && strcmp(argv[1], "child") == 0) {
		int fd = atoi(argv[2]);
		int fl = fcntl(fd, F_GETFL);
		return fl < 0 || fcntl(fd, F_SETFL, fl | O_APPEND) < 0;
	}
	if (argc != 2)
		return 2;
	ep = chk(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ls = chk(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), "socket");
	chk(bind(ls, (struct sockaddr *)&a, sizeof(a)), "bind");
	chk(listen(ls, 8), "listen");
	chk(getsockname(ls, (struct sockaddr *)&a, &alen), "getsockname");
	watch(ls);
	int c[4], s[4];
	for (int i = 0; i < 4; i++) {
		c[i] = chk(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
			   "socket");
		chk(connect(c[i], (struct sockaddr *)&a, sizeof(a)), "connect");
		s[i] = i % 2 ? chk(accept(ls, NULL, NULL), "accept")
			     : chk(accept4(ls, NULL, NULL,
					   SOCK_NONBLOCK | SOCK_CLOEXEC),
				   "accept4");
		watch(s[i]);
		watch(c[i]);
	}
	/* fcntl: F_SETFL set and clear, F_SETFD both ways. */
	chk(fcntl(s[0], F_SETFL, 0), "F_SETFL 0");
	chk(fcntl(s[1], F_SETFL, O_NONBLOCK | O_APPEND), "F_SETFL");
	chk(fcntl(s[2], F_SETFD, 0), "F_SETFD 0");
	chk(fcntl(s[3], F_SETFD, FD_CLOEXEC), "F_SETFD");
	chk(fcntl(c[0], F_SETFL, O_ASYNC | O_NONBLOCK), "F_SETFL O_ASYNC");
	if (fcntl64_p)
		chk(fcntl64_p(c[1], F_SETFL, O_NONBLOCK), "fcntl64 F_SETFL");
	/* A failing F_SETFL (O_DIRECT on a socket) changes nothing. */
	if (fcntl(c[2], F_SETFL, O_DIRECT | O_NONBLOCK) == 0)
		fprintf(stderr, "note: O_DIRECT accepted on a socket\n");
	/* ioctl. */
	chk(ioctl(c[2], FIONBIO, &one), "FIONBIO 1");
	chk(ioctl(ls, FIONBIO, &zero), "FIONBIO 0");
	chk(ioctl(c[3], FIONCLEX), "FIONCLEX");
	chk(ioctl(s[0], FIOCLEX), "FIOCLEX");
	chk(ioctl(s[1], FIOASYNC, &one), "FIOASYNC 1");
	/* Duplicates, each with its own FD_CLOEXEC. */
	int d1 = chk(dup(s[3]), "dup");
	int d2 = chk(fcntl(c[0], F_DUPFD_CLOEXEC, 100), "F_DUPFD_CLOEXEC");
	int d3 = chk(fcntl(c[1], F_DUPFD, 110), "F_DUPFD");
	int d4 = chk(dup3(s[2], 120, O_CLOEXEC), "dup3");
	int d5 = chk(dup2(s[1], 121), "dup2");
	if (fcntl64_p)
		chk(fcntl64_p(d5, F_SETFD, FD_CLOEXEC), "fcntl64 F_SETFD");
	(void)d1, (void)d2, (void)d4;
	/* UDP, a socketpair, pipes. */
	int u = chk(socket(AF_INET, SOCK_DGRAM, 0), "socket");
	watch(u);
	chk(fcntl(u, F_SETFL, O_NONBLOCK), "F_SETFL udp");
	chk(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp),
	    "socketpair");
	watch(sp[0]);
	watch(sp[1]);
	chk(ioctl(sp[1], FIONBIO, &zero), "FIONBIO sp");
	chk(pipe2(p, O_NONBLOCK | O_CLOEXEC | O_DIRECT), "pipe2");
	watch(p[0]);
	chk(pipe(q), "pipe");
	watch(q[0]);
	chk(fcntl(q[0], F_SETFL, O_NONBLOCK), "F_SETFL pipe");
	chk(fcntl(q[1], F_SETFL, O_DIRECT), "F_SETFL pipe O_DIRECT");
	/* close_range(CLOSE_RANGE_CLOEXEC) over the pipes' four numbers. */
	if (q[1] - p[0] == 3)
		chk(close_range((unsigned)p[0], (unsigned)q[1],
				CLOSE_RANGE_CLOEXEC),
		    "close_range");
	else
		fprintf(stderr, "note: pipes not consecutive, no close_range\n");
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 6000 && access(argv[1], F_OK) != 0; i++)
		usleep(10000);
	/* Behind the shim: raw syscalls. */
	chk((int)syscall(SYS_fcntl, s[0], F_SETFL, O_NONBLOCK), "raw F_SETFL");
	chk((int)syscall(SYS_fcntl, c[3], F_SETFD, FD_CLOEXEC), "raw F_SETFD");
	printf("raw %d %d\n", s[0], c[3]);
	fflush(stdout);
	/* Children holding our files (s[2] and d3 have no FD_CLOEXEC). */
	char go2[4096], num[16], self[] = "/proc/self/exe", child[] = "child";
	char *cargv[] = { self, child, num, NULL };
	extern char **environ;
	pid_t pid;
	int status;
	snprintf(go2, sizeof(go2), "%s2", argv[1]);
	for (int i = 0; i < 6000 && access(go2, F_OK) != 0; i++)
		usleep(10000);
	snprintf(num, sizeof(num), "%d", s[2]);
	if (posix_spawn(&pid, self, NULL, NULL, cargv, environ) != 0 ||
	    waitpid(pid, &status, 0) != pid || status != 0)
		die("posix_spawn child");
	snprintf(num, sizeof(num), "%d", d3);
	pid = vfork();
	if (pid == 0) {
		execv(self, cargv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		die("vfork child");
	printf("spawned %d %d\n", s[2], d3);
	fflush(stdout);
	for (int i = 0; i < 1200; i++)
		usleep(100000);
	return 0;
}
