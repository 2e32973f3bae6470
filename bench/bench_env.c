// SPDX-License-Identifier: MIT
/*
 * The machine's own costs, which set every ratio's denominator and explain
 * the figures: a bare syscall, the calls a dump or a restore makes per
 * descriptor (reading /proc/self/fdinfo/N, readlink of /proc/self/fd/N,
 * fstat, fcntl), an epoll_ctl ADD, and the first touch of a fresh page.
 * Each is the median over rounds of a batch; one line each, no target.
 * Runs without the preload.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define ENV_FDS 1000	     /* descriptors each round goes through */
#define ENV_PAGES 2048	     /* fresh pages touched per round */
#define ENV_PAGE 4096
#define ENV_ROUNDS 15
#define ENV_TEXT 4096	     /* bytes of one fdinfo read */

enum env_op {
	ENV_GETPPID,
	ENV_FDINFO,
	ENV_READLINK,
	ENV_FSTAT,
	ENV_FCNTL,
	ENV_ADD,
	ENV_PAGE_TOUCH,
	ENV_NR,
};

static const char *const env_names[ENV_NR] = {
	[ENV_GETPPID] = "getppid (a bare syscall)",
	[ENV_FDINFO] = "fdinfo open+read+close",
	[ENV_READLINK] = "readlink /proc/self/fd/N",
	[ENV_FSTAT] = "fstat",
	[ENV_FCNTL] = "fcntl F_GETFL",
	[ENV_ADD] = "epoll_ctl ADD",
	[ENV_PAGE_TOUCH] = "first touch of a fresh page",
};

static int fds[ENV_FDS];
static char text[ENV_TEXT];

/* One batch of op; returns its time in ns per operation, or -1. */
static double env_batch(enum env_op op, int fdinfo_dir, int fd_dir)
{
	char name[16];
	struct stat st;
	uint64_t t0 = bench_now_ns();
	unsigned n = ENV_FDS;
	int epfd = -1;
	char *mem = NULL;

	if (op == ENV_ADD && (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -1;
	if (op == ENV_PAGE_TOUCH) {
		mem = mmap(NULL, (size_t)ENV_PAGES * ENV_PAGE,
			   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
		if (mem == MAP_FAILED)
			return -1;
		n = ENV_PAGES;
	}
	t0 = bench_now_ns();
	for (unsigned i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN };
		int fd;

		switch (op) {
		case ENV_GETPPID:
			syscall(SYS_getppid);
			break;
		case ENV_FDINFO:
			snprintf(name, sizeof(name), "%d", fds[i]);
			fd = openat(fdinfo_dir, name, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || read(fd, text, sizeof(text)) < 0)
				return -1;
			close(fd);
			break;
		case ENV_READLINK:
			snprintf(name, sizeof(name), "%d", fds[i]);
			if (readlinkat(fd_dir, name, text, sizeof(text)) < 0)
				return -1;
			break;
		case ENV_FSTAT:
			if (fstat(fds[i], &st) < 0)
				return -1;
			break;
		case ENV_FCNTL:
			if (fcntl(fds[i], F_GETFL) < 0)
				return -1;
			break;
		case ENV_ADD:
			if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0)
				return -1;
			break;
		case ENV_PAGE_TOUCH:
			mem[(size_t)i * ENV_PAGE] = 1;
			break;
		case ENV_NR:
			break;
		}
	}
	double ns = (double)(bench_now_ns() - t0) / n;
	if (epfd >= 0)
		close(epfd);
	if (mem)
		munmap(mem, (size_t)ENV_PAGES * ENV_PAGE);
	return ns;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	int fdinfo_dir = open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY |
						       O_CLOEXEC);
	int fd_dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	unsigned rounds = bench_rounds(ENV_ROUNDS, 5);
	double ns[ENV_ROUNDS];

	if (fdinfo_dir < 0 || fd_dir < 0) {
		bench_report_skip("env", strerror(errno));
		return 0;
	}
	bench_raise_nofile(ENV_FDS + 64);
	for (int i = 0; i < ENV_FDS; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0) {
			bench_report_skip("env", strerror(errno));
			return 0;
		}
	for (int op = 0; op < ENV_NR; op++) {
		char label[64];
		unsigned got = 0;

		env_batch((enum env_op)op, fdinfo_dir, fd_dir); /* warm-up */
		for (unsigned r = 0; r < rounds; r++) {
			double v = env_batch((enum env_op)op, fdinfo_dir,
					     fd_dir);
			if (v >= 0)
				ns[got++] = v;
		}
		snprintf(label, sizeof(label), "env %s", env_names[op]);
		if (!got) {
			bench_report_skip(label, "the call failed");
			continue;
		}
		qsort(ns, got, sizeof(ns[0]), cmp_double);
		printf("%-38s %8.0f ns  (median of %u rounds of %u; machine cost, no target)\n",
		       label, ns[got / 2], got,
		       op == ENV_PAGE_TOUCH ? ENV_PAGES : ENV_FDS);
	}
	return 0;
}
