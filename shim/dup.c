// SPDX-License-Identifier: MIT
/*
 * dup, dup2, dup3, fcntl(F_DUPFD, F_DUPFD_CLOEXEC).  The new number refers
 * to the same file; whatever it held before was closed implicitly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "log.h"
#include "registry.h"
#include "shim.h"

/* Record newfd as a copy of oldfd; the caller holds the fd-op lock if any. */
static void dup_recorded(int oldfd, int newfd, bool tracked)
{
	if (tracked)
		registry_fd_dup(oldfd, newfd);
	if (newfd == log_get_fd())
		log_fd_closed(newfd);
}

static SHIM_HOT int duplicated(int oldfd, int newfd)
{
	if (newfd >= 0 && newfd != oldfd) {
		/* Untracked both: nothing to do, and no call to pay. */
		bool tracked = registry_fd_lookup(oldfd) ||
			       registry_fd_lookup(newfd);
		if ((!tracked && newfd != log_get_fd() && !shim_depth) ||
		    shim_busy)
			return newfd;
		int saved_errno = errno;
		if (!shim_wrap_enter()) {
			/*
			 * A handler's: queued even when untracked now, since
			 * this thread's queue may create oldfd (as close()).
			 */
			if (newfd == log_get_fd())
				log_fd_closed(newfd);
			shim_defer(&(struct shim_deferred){
				.op = SHIM_DEFER_DUP, .fd = oldfd,
				.fd2 = newfd });
		} else {
			dup_recorded(oldfd, newfd, tracked);
			shim_wrap_leave();
		}
		errno = saved_errno;
	}
	return newfd;
}

SHIM_API SHIM_HOT int dup(int oldfd)
{
	return duplicated(oldfd, REAL(dup)(oldfd));
}

/*
 * dup2/dup3 close newfd implicitly: a watched file may go with it, so the
 * fd-operation lock is held across the call, as for close().
 */
static SHIM_HOT int dup_over(int oldfd, int newfd, int ret)
{
	int saved_errno = errno;
	if (ret >= 0 && newfd != oldfd) {
		bool tracked = registry_fd_lookup(oldfd) ||
			       registry_fd_lookup(newfd);
		dup_recorded(oldfd, newfd, tracked);
	}
	errno = saved_errno;
	return ret;
}

/*
 * The program's dup2/dup3 call itself: held back while the shim creates
 * a descriptor of its own (shim_prog_dup_enter, real.c), so that it never
 * lands between the kernel handing the shim a low number and the move.
 */
#define PROG_DUP(call)                                                       \
	({                                                                    \
		int how_ = shim_busy ? 0 : shim_prog_dup_enter();             \
		int ret_ = (call);                                            \
		if (how_)                                                     \
			shim_prog_dup_leave(how_);                            \
		ret_;                                                         \
	})

SHIM_API SHIM_HOT int dup2(int oldfd, int newfd)
{
	const struct reg_file *f = registry_fd_lookup(newfd);
	/* A handler's (newfd maybe watched through its queue): see close(). */
	if (__builtin_expect(shim_depth, 0) && !shim_busy) {
		registry_deferred_begin();
		int ret = duplicated(oldfd, PROG_DUP(REAL(dup2)(oldfd, newfd)));
		registry_deferred_end();
		return ret;
	}
	if (!f || shim_busy)
		return duplicated(oldfd, PROG_DUP(REAL(dup2)(oldfd, newfd)));
	shim_wrap_enter();
	bool locked = registry_fdop_begin(f);
	/* After the lock: never wait for a creation while holding it. */
	int ret = dup_over(oldfd, newfd, PROG_DUP(REAL(dup2)(oldfd, newfd)));
	registry_fdop_end(locked);
	shim_wrap_leave();
	return ret;
}

SHIM_API SHIM_HOT int dup3(int oldfd, int newfd, int flags)
{
	const struct reg_file *f = registry_fd_lookup(newfd);
	/* A handler's (newfd maybe watched through its queue): see close(). */
	if (__builtin_expect(shim_depth, 0) && !shim_busy) {
		registry_deferred_begin();
		int ret = duplicated(oldfd,
				     PROG_DUP(REAL(dup3)(oldfd, newfd, flags)));
		registry_deferred_end();
		return ret;
	}
	if (!f || shim_busy)
		return duplicated(oldfd,
				  PROG_DUP(REAL(dup3)(oldfd, newfd, flags)));
	shim_wrap_enter();
	bool locked = registry_fdop_begin(f);
	int ret = dup_over(oldfd, newfd,
			   PROG_DUP(REAL(dup3)(oldfd, newfd, flags)));
	registry_fdop_end(locked);
	shim_wrap_leave();
	return ret;
}

/* fcntl's third argument is an int, a long or a pointer: pass a word. */
static SHIM_HOT int fcntl_common(int (*real)(int, int, ...), int fd, int cmd,
			va_list ap)
{
	void *arg = va_arg(ap, void *);
	int ret = real(fd, cmd, arg);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		duplicated(fd, ret);
	return ret;
}

SHIM_API SHIM_HOT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int ret = fcntl_common(REAL(fcntl), fd, cmd, ap);
	va_end(ap);
	return ret;
}

SHIM_API SHIM_HOT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int ret = fcntl_common(REAL(fcntl64), fd, cmd, ap);
	va_end(ap);
	return ret;
}
