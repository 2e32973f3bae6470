// SPDX-License-Identifier: MIT
/*
 * epoll_create, epoll_create1, epoll_ctl.  A ctl stripe of the set, chosen
 * by the target's fd number (registry_ctl_begin), is held across the real
 * epoll_ctl and its bookkeeping, so that calls on one (set, fd) reach the
 * registry in the kernel's order; the set's lock is taken only around the
 * update of its table (registry_ctl_lock_set .. registry_set_unlock), so
 * calls on other fds of the set run their syscalls in parallel.  A dump,
 * which reads the kernel's view holding every stripe and every set's lock
 * (registry_lock_all), sees each set as a consistent cut.  The kernel
 * serialises control operations on one set anyway (ep->mtx).
 */
#include <errno.h>

#include "registry.h"
#include "shim.h"

static int created(int epfd, int flags)
{
	if (epfd < 0 || shim_busy)
		return epfd;
	int saved_errno = errno;
	if (!shim_wrap_enter()) {
		shim_defer(&(struct shim_deferred){
			.op = SHIM_DEFER_SET_CREATED, .fd = epfd,
			.flags = flags });
	} else {
		registry_set_created(epfd, flags);
		shim_recorder_need();
		shim_wrap_leave();
	}
	errno = saved_errno;
	return epfd;
}

SHIM_API int epoll_create(int size)
{
	return created(REAL(epoll_create)(size), 0);
}

SHIM_API int epoll_create1(int flags)
{
	return created(REAL(epoll_create1)(flags), flags);
}

/* A signal handler's epoll_ctl inside a wrapper of its thread. */
static int ctl_deferred(int epfd, int op, int fd, struct epoll_event *event)
{
	registry_deferred_begin();
	int ret = REAL(epoll_ctl)(epfd, op, fd, event);
	int saved_errno = errno;
	if (ret == 0) {
		struct shim_deferred d = { .op = SHIM_DEFER_CTL, .fd = fd,
					   .fd2 = epfd, .ctl_op = op };
		if (event && op != EPOLL_CTL_DEL)
			d.event = *event;
		shim_defer(&d);
	}
	registry_deferred_end();
	errno = saved_errno;
	return ret;
}

SHIM_API SHIM_HOT int epoll_ctl(int epfd, int op, int fd,
				struct epoll_event *event)
{
	if (shim_busy)
		return REAL(epoll_ctl)(epfd, op, fd, event);
	/* Not inside another wrapper (a signal handler): it may hold locks. */
	if (!shim_depth)
		shim_adopt_inherited();
	if (!shim_wrap_enter())
		return ctl_deferred(epfd, op, fd, event);

	uintptr_t caller = (uintptr_t)__builtin_return_address(0);
	unsigned depth = op == EPOLL_CTL_ADD ? shim_config.backtrace_depth :
			 op == EPOLL_CTL_MOD ? shim_config.backtrace_mod_depth :
					       0;
	uint32_t bt = 0;
	if (depth && op == EPOLL_CTL_ADD) {
		bt = shim_backtrace(caller, depth);
	}
	struct reg_ctl ctl;
	registry_ctl_begin(&ctl, epfd, fd);
	int ret = REAL(epoll_ctl)(epfd, op, fd, event);
	int saved_errno = errno;
	if (ret == 0) {
		struct reg_set *set = registry_ctl_lock_set(&ctl);
		/* A re-arm from the same call site keeps its stack. */
		if (depth && op == EPOLL_CTL_MOD &&
		    !(bt = registry_same_call_site(set, fd, caller))) {
			bt = shim_backtrace(caller, depth);
		}
		registry_ctl_locked(set, epfd, op, fd, event, bt);
		registry_set_unlock(set);
	}
	registry_ctl_end(&ctl);
	/*
	 * A process whose recorder thread is not running: one that uses sets
	 * it did not create (its parent's, after fork; inherited across
	 * exec).  Without the thread its dumps would be read from outside
	 * (kernel-only).  Holding no registry lock, as created() does.
	 */
	if (__builtin_expect(!__atomic_load_n(&shim_recorder_live,
					      __ATOMIC_RELAXED), 0) && ret == 0)
		shim_recorder_need();
	shim_wrap_leave();
	errno = saved_errno;
	return ret;
}
