// SPDX-License-Identifier: MIT
/*
 * bt_depth: registers one watch through three nested functions (ADD in
 * bt_add_site(), MOD in bt_mod_site(), each called through bt_level2()
 * and bt_level1()), prints "ready" and waits for SIGTERM, so that a test
 * can dump it and read which frames the shim kept for the ADD and the MOD.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * Not inlined, and not a tail call: each level keeps its own frame.
 * noclone is gcc's (clang does not clone functions for constant arguments).
 */
#ifdef __clang__
#define BT_FRAME __attribute__((noinline))
#else
#define BT_FRAME __attribute__((noinline, noclone))
#endif
#define BT_KEEP() __asm__ volatile("" ::: "memory")

static int bt_epfd, bt_efd;

static BT_FRAME int bt_add_site(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
	int ret = epoll_ctl(bt_epfd, EPOLL_CTL_ADD, bt_efd, &ev);
	BT_KEEP();
	return ret;
}

static BT_FRAME int bt_mod_site(void)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = 8 };
	int ret = epoll_ctl(bt_epfd, EPOLL_CTL_MOD, bt_efd, &ev);
	BT_KEEP();
	return ret;
}

static BT_FRAME int bt_level2(int (*site)(void))
{
	int ret = site();
	BT_KEEP();
	return ret;
}

static BT_FRAME int bt_level1(int (*site)(void))
{
	int ret = bt_level2(site);
	BT_KEEP();
	return ret;
}

int main(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	bt_epfd = epoll_create1(EPOLL_CLOEXEC);
	bt_efd = eventfd(0, EFD_CLOEXEC);
	if (bt_epfd < 0 || bt_efd < 0 || bt_level1(bt_add_site) < 0 ||
	    bt_level1(bt_mod_site) < 0) {
		perror("bt_depth");
		return 1;
	}
	printf("ready %d %d\n", bt_epfd, bt_efd);
	fflush(stdout);
	sigwait(&set, &sig);
	return 0;
}
