// SPDX-License-Identifier: MIT
/*
 * Another process changes the flags of a watched socket the shim saw
 * created, through a way no fork wrapper sees, for test_spawn_flags.sh:
 *
 *   spawn_flags system GO   a child of system() (its shell runs this
 *                           program with "child FD")
 *   spawn_flags popen GO    a child of popen(), the same
 *   spawn_flags scm GO      a process forked before the socket existed,
 *                           which receives it with SCM_RIGHTS (sendmsg)
 *   spawn_flags raw GO      this process, with raw fcntl syscalls behind
 *                           the shim (the control: a change the shim
 *                           cannot see, which the image must miss)
 *
 * Each sets O_NONBLOCK and O_APPEND on the socket's file (its own
 * descriptor, the same open file description).  The program watches a
 * TCP listener, a connection's two ends, both ends of a blocking
 * socketpair and a pipe's read end, prints "ready", waits (60 s at most)
 * until the file GO exists, has the connection's client end changed,
 * prints "changed FD" and sleeps until killed (120 s at most).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

static int change(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK | O_APPEND) < 0;
}

/* The process that receives a descriptor on ctl and changes its file. */
static void receiver(int ctl)
{
	char byte, buf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = buf, .msg_controllen = sizeof(buf) };
	if (recvmsg(ctl, &m, 0) != 1)
		_exit(1);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	int fd;
	if (!c || c->cmsg_type != SCM_RIGHTS)
		_exit(1);
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	byte = change(fd) ? 'n' : 'y';
	_exit(write(ctl, &byte, 1) == 1 ? 0 : 1);
}

static void send_fd(int ctl, int fd)
{
	char byte = 's', buf[CMSG_SPACE(sizeof(int))];
	memset(buf, 0, sizeof(buf));
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	chk((int)sendmsg(ctl, &m, 0), "sendmsg");
	if (read(ctl, &byte, 1) != 1 || byte != 'y')
		die("receiver");
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "child"))
		return change(atoi(argv[2]));
	if (argc != 3)
		return 2;
	const char *mode = argv[1];
	int ctl[2] = { -1, -1 };
	pid_t rpid = -1;
	if (!strcmp(mode, "scm")) {
		/* Forked now: the files below are created after the fork. */
		chk(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl),
		    "socketpair ctl");
		rpid = chk(fork(), "fork");
		if (rpid == 0)
			receiver(ctl[1]);
		close(ctl[1]);
	} else if (strcmp(mode, "system") && strcmp(mode, "popen") &&
		   strcmp(mode, "raw")) {
		return 2;
	}
	int ep = chk(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ls = chk(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
	chk(bind(ls, (struct sockaddr *)&a, sizeof(a)), "bind");
	chk(listen(ls, 4), "listen");
	socklen_t alen = sizeof(a);
	chk(getsockname(ls, (struct sockaddr *)&a, &alen), "getsockname");
	int c = chk(socket(AF_INET, SOCK_STREAM, 0), "socket");
	chk(connect(c, (struct sockaddr *)&a, sizeof(a)), "connect");
	int s = chk(accept(ls, NULL, NULL), "accept");
	int sp[2], p[2];
	chk(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), "socketpair");
	chk(pipe(p), "pipe");
	int fds[] = { ls, c, s, sp[0], sp[1], p[0] };
	for (int i = 0; i < 6; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };
		chk(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev), "epoll_ctl");
	}
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 6000 && access(argv[2], F_OK) != 0; i++)
		usleep(10000);

	char self[4096], cmd[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		die("readlink");
	self[n] = '\0';
	snprintf(cmd, sizeof(cmd), "'%s' child %d", self, c);
	if (!strcmp(mode, "system")) {
		if (system(cmd) != 0)
			die("system");
	} else if (!strcmp(mode, "raw")) {
		/* Behind the shim, in this process: the control case. */
		int fl = chk((int)syscall(SYS_fcntl, c, F_GETFL), "raw F_GETFL");
		chk((int)syscall(SYS_fcntl, c, F_SETFL, fl | O_NONBLOCK | O_APPEND),
		    "raw F_SETFL");
	} else if (!strcmp(mode, "popen")) {
		FILE *f = popen(cmd, "r");
		if (!f || pclose(f) != 0)
			die("popen");
	} else {
		send_fd(ctl[0], c);
		int st;
		if (waitpid(rpid, &st, 0) != rpid || st != 0)
			die("receiver exit");
	}
	printf("changed %d\n", c);
	fflush(stdout);
	for (int i = 0; i < 1200; i++)
		usleep(100000);
	return 0;
}
