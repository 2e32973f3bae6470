// SPDX-License-Identifier: MIT
/*
 * fd_race: a program that dup2()s onto the lowest free descriptor numbers
 * all the time, as a program may (a number it believes free).  Plain
 * program: run it under the shim and take dumps meanwhile.
 *
 *   fd_race STOPFILE
 *	Has one epoll set watching a pipe (so the recorder thread starts),
 *	finds N, the lowest free descriptor, and prints "ready".  It
 *	then loops until STOPFILE exists (at most 120 s): dup2() /dev/null
 *	onto N .. N+3, checks with fstat() that each is still /dev/null, and
 *	closes them, each close() must succeed.  A descriptor of the library
 *	left at one of those numbers is replaced by the dup2(), and its later
 *	close() takes the program's /dev/null: fstat() or close() then fails.
 *	Prints "errors E loops L" at the end; exit 0, or 1 when E > 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPAN 4

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fd_race STOPFILE\n");
		return 2;
	}
	int p[2];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	if (ep < 0 || pipe2(p, O_CLOEXEC) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0) {
		perror("fd_race: setup");
		return 1;
	}
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct stat ref;
	if (nul < 0 || fstat(nul, &ref) < 0) {
		perror("fd_race: /dev/null");
		return 1;
	}
	int n = dup(nul);
	if (n < 0) {
		perror("fd_race: dup");
		return 1;
	}
	close(n);
	printf("ready\nlow %d\n", n);
	fflush(stdout);
	long loops = 0, errors = 0;
	time_t end = time(NULL) + 120;
	while (access(argv[1], F_OK) != 0 && time(NULL) < end) {
		for (int k = 0; k < SPAN; k++)
			if (dup2(nul, n + k) < 0)
				errors++;
		for (int k = 0; k < SPAN; k++) {
			struct stat st;
			if (fstat(n + k, &st) < 0 || st.st_rdev != ref.st_rdev ||
			    st.st_ino != ref.st_ino) {
				if (errors < 5)
					fprintf(stderr, "fd_race: fd %d is not /dev/null any more\n", n + k);
				errors++;
			}
		}
		for (int k = 0; k < SPAN; k++)
			if (close(n + k) < 0) {
				if (errors < 5)
					fprintf(stderr, "fd_race: close(%d): %s\n", n + k, strerror(errno));
				errors++;
			}
		loops++;
	}
	printf("errors %ld loops %ld\n", errors, loops);
	return errors > 0;
}
