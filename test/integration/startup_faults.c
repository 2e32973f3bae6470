// SPDX-License-Identifier: MIT
/*
 * startup_faults RUNS LIB PROG...: run PROG RUNS times (fork, execve,
 * wait4), with LD_PRELOAD=LIB unless LIB is "-", and print the smallest
 * and the median number of minor page faults the child took
 * (ru_minflt).  A page fault is what start-up costs most on a machine
 * where it is worth 15 syscalls (docs/performance.md, figure 8); unlike
 * time, the count hardly moves with the load of the machine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RUNS 1000

extern char **environ;

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static long faults[MAX_RUNS];
	int runs = argc > 3 ? atoi(argv[1]) : 0;
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: startup_faults RUNS LIB|- PROG [ARGS...]\n");
		return 2;
	}
	for (int i = 0; i < runs; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			if (strcmp(argv[2], "-") != 0)
				setenv("LD_PRELOAD", argv[2], 1);
			else
				unsetenv("LD_PRELOAD");
			execve(argv[3], argv + 3, environ);
			_exit(127);
		}
		int status;
		struct rusage ru;
		while (wait4(pid, &status, 0, &ru) < 0)
			if (errno != EINTR) {
				perror("wait4");
				return 2;
			}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "startup_faults: %s failed (status 0x%x)\n",
				argv[3], (unsigned)status);
			return 1;
		}
		faults[i] = ru.ru_minflt;
	}
	qsort(faults, (size_t)runs, sizeof(faults[0]), cmp_long);
	printf("%ld %ld\n", faults[0], faults[runs / 2]);
	return 0;
}
