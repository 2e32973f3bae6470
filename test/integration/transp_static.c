// SPDX-License-Identifier: MIT
/*
 * transp_static: a program that test_transparency.sh links statically
 * (LD_PRELOAD cannot reach it: it must run exactly as without the shim) and
 * that the Makefile also builds dynamically (where the preload must show).
 * Prints the fd numbers it gets, whether epoll and fork work, and whether
 * libepollcr is mapped into it.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

static bool libepollcr_mapped(void)
{
	char line[512];
	bool mapped = false;
	FILE *maps = fopen("/proc/self/maps", "r");
	while (maps && fgets(line, sizeof(line), maps))
		mapped |= strstr(line, "libepollcr") != NULL;
	if (maps)
		fclose(maps);
	return mapped;
}

int main(void)
{
	int fd = open("/dev/null", O_RDONLY);
	int ep = epoll_create1(0), efd = eventfd(0, EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 5 }, got;
	uint64_t one = 1;
	int ok = epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0 &&
		 write(efd, &one, sizeof(one)) == sizeof(one) &&
		 epoll_wait(ep, &got, 1, 1000) == 1 && got.data.u64 == 5;
	printf("first_open %d epoll %d eventfd %d epoll works: %s\n", fd, ep,
	       efd, ok ? "yes" : "no");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(epoll_wait(ep, &got, 1, 1000) == 1 ? 0 : 1);
	int status = -1;
	waitpid(pid, &status, 0);
	printf("fork works: %s\n", pid > 0 && status == 0 ? "yes" : "no");
	printf("libepollcr mapped: %s\n", libepollcr_mapped() ? "yes" : "no");
	return ok && status == 0 ? 0 : 1;
}
