// SPDX-License-Identifier: MIT
/*
 * epoll-server: a small event-driven TCP echo server of the kind epollcr is
 * for, used by `make demo` and the tests.  Its epoll state has the usual
 * shapes: a listening socket (EPOLLEXCLUSIVE), client connections with
 * pointers as data (edge-triggered, in a nested set), an eventfd woken by a
 * worker thread, a timerfd with an interval, a signalfd for SIGTERM/SIGINT,
 * and a pipe.
 *
 *   epoll-server [PORT]     listen on 127.0.0.1:PORT (0: any free port);
 *                           prints "listening on 127.0.0.1:N" when ready
 *   epoll-server --client PORT COUNT
 *                           COUNT echo round trips, one connection each
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define TAG_LISTEN 1
#define TAG_WAKE 2
#define TAG_TIMER 3
#define TAG_SIGNAL 4
#define TAG_CLIENTS 5
#define TAG_PIPE 6

struct conn {
	int fd;
	uint64_t bytes;
};

static int wake_fd = -1;

static void die(const char *what)
{
	fprintf(stderr, "epoll-server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void add(int epfd, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl ADD");
}

/* A worker that pokes the event loop once a second. */
static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(1);
		uint64_t one = 1;
		if (write(wake_fd, &one, sizeof(one)) < 0)
			return NULL;
	}
}

static void accept_all(int lfd, int clients)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		add(clients, fd, EPOLLIN | EPOLLRDHUP | EPOLLET,
		    (uint64_t)(uintptr_t)c);
	}
}

/* Echo everything readable; close on EOF or error. */
static void serve(int clients, struct conn *c, uint32_t events)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n > 0) {
			c->bytes += (uint64_t)n;
			if (write(c->fd, buf, (size_t)n) != n)
				break;
			continue;
		}
		if (n < 0 && errno == EAGAIN && !(events & EPOLLRDHUP))
			return;
		break;
	}
	epoll_ctl(clients, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static int server(int port)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int clients = epoll_create1(EPOLL_CLOEXEC);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ep < 0 || clients < 0 || lfd < 0)
		die("setup");
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 128) < 0)
		die("bind/listen");
	socklen_t len = sizeof(sa);
	getsockname(lfd, (struct sockaddr *)&sa, &len);

	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { .it_value = { 5, 0 }, .it_interval = { 5, 0 } };
	if (wake_fd < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
		die("eventfd/timerfd");
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	int pipefd[2];
	if (sfd < 0 || pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) < 0)
		die("signalfd/pipe");

	add(ep, lfd, EPOLLIN | EPOLLEXCLUSIVE, TAG_LISTEN);
	add(ep, wake_fd, EPOLLIN, TAG_WAKE);
	add(ep, tfd, EPOLLIN, TAG_TIMER);
	add(ep, sfd, EPOLLIN, TAG_SIGNAL);
	add(ep, clients, EPOLLIN, TAG_CLIENTS);
	add(ep, pipefd[0], EPOLLIN | EPOLLRDHUP, TAG_PIPE);

	pthread_t tid;
	if (pthread_create(&tid, NULL, worker, NULL) != 0)
		die("pthread_create");
	printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
	fflush(stdout);

	uint64_t wakes = 0, ticks = 0;
	for (;;) {
		struct epoll_event evs[MAX_EVENTS];
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			uint64_t v;
			switch (evs[i].data.u64) {
			case TAG_LISTEN:
				accept_all(lfd, clients);
				break;
			case TAG_WAKE:
				if (read(wake_fd, &v, sizeof(v)) == sizeof(v))
					wakes += v;
				break;
			case TAG_TIMER:
				if (read(tfd, &v, sizeof(v)) == sizeof(v))
					ticks += v;
				break;
			case TAG_SIGNAL:
				printf("stopping after %llu wake-ups, %llu ticks\n",
				       (unsigned long long)wakes,
				       (unsigned long long)ticks);
				return 0;
			case TAG_CLIENTS: {
				struct epoll_event cev[MAX_EVENTS];
				int m = epoll_wait(clients, cev, MAX_EVENTS, 0);
				for (int j = 0; j < m; j++)
					serve(clients,
					      (struct conn *)(uintptr_t)cev[j].data.u64,
					      cev[j].events);
				break;
			}
			case TAG_PIPE:
				while (read(pipefd[0], &v, sizeof(v)) > 0)
					;
				break;
			}
		}
	}
}

static int client(int port, int count)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < count; i++) {
		char out[64], in[64];
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect");
		int len = snprintf(out, sizeof(out), "hello %d\n", i);
		if (write(fd, out, (size_t)len) != len)
			die("write");
		int got = 0;
		while (got < len) {
			ssize_t n = read(fd, in + got, sizeof(in) - (size_t)got);
			if (n <= 0)
				die("read");
			got += (int)n;
		}
		if (memcmp(in, out, (size_t)len)) {
			fprintf(stderr, "epoll-server: echo mismatch\n");
			return 1;
		}
		close(fd);
	}
	printf("%d echo round trips ok\n", count);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--client"))
		return client(atoi(argv[2]), atoi(argv[3]));
	if (argc > 2) {
		fprintf(stderr, "usage: epoll-server [PORT] | --client PORT COUNT\n");
		return 2;
	}
	return server(argc == 2 ? atoi(argv[1]) : 0);
}
