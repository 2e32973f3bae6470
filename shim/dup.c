// SPDX-License-Identifier: MIT
/*
 * dup, dup2, dup3, fcntl(F_DUPFD, F_DUPFD_CLOEXEC).  The new number refers
 * to the same file, with its own FD_CLOEXEC; whatever it held before was
 * closed implicitly.  fcntl's F_SETFD and F_SETFL are followed too
 * (shim/fdflags.c); its other commands are the real call alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#include "log.h"
#include "registry.h"
#include "shim.h"

/*
 * Record newfd as a copy of oldfd, FD_CLOEXEC set or not; the caller
 * holds the fd-op lock if any.
 */
static void dup_recorded(int oldfd, int newfd, bool tracked, bool cloexec)
{
	if (tracked)
		registry_fd_dup_cloexec(oldfd, newfd, cloexec);
	if (newfd == log_get_fd())
		log_fd_closed(newfd);
}

static SHIM_HOT int duplicated(int oldfd, int newfd, bool cloexec)
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
			dup_recorded(oldfd, newfd, tracked, cloexec);
			shim_wrap_leave();
		}
		errno = saved_errno;
	}
	return newfd;
}

SHIM_API SHIM_HOT int dup(int oldfd)
{
	return duplicated(oldfd, REAL(dup)(oldfd), false);
}

/*
 * dup2/dup3 close newfd implicitly: a watched file may go with it, so the
 * fd-operation lock is held across the call, as for close().
 */
static SHIM_HOT int dup_over(int oldfd, int newfd, int ret, bool cloexec)
{
	int saved_errno = errno;
	if (ret >= 0 && newfd != oldfd) {
		bool tracked = registry_fd_lookup(oldfd) ||
			       registry_fd_lookup(newfd);
		dup_recorded(oldfd, newfd, tracked, cloexec);
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
		int ret = duplicated(oldfd, PROG_DUP(REAL(dup2)(oldfd, newfd)),
				     false);
		registry_deferred_end();
		return ret;
	}
	if (!f || shim_busy)
		return duplicated(oldfd, PROG_DUP(REAL(dup2)(oldfd, newfd)),
				  false);
	shim_wrap_enter();
	bool locked = registry_fdop_begin(f);
	/* After the lock: never wait for a creation while holding it. */
	int ret = dup_over(oldfd, newfd, PROG_DUP(REAL(dup2)(oldfd, newfd)),
			   false);
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
				     PROG_DUP(REAL(dup3)(oldfd, newfd, flags)),
				     flags & O_CLOEXEC);
		registry_deferred_end();
		return ret;
	}
	if (!f || shim_busy)
		return duplicated(oldfd,
				  PROG_DUP(REAL(dup3)(oldfd, newfd, flags)),
				  flags & O_CLOEXEC);
	shim_wrap_enter();
	bool locked = registry_fdop_begin(f);
	int ret = dup_over(oldfd, newfd,
			   PROG_DUP(REAL(dup3)(oldfd, newfd, flags)),
			   flags & O_CLOEXEC);
	registry_fdop_end(locked);
	shim_wrap_leave();
	return ret;
}

/*
 * The commands the shadow follows.  The third argument is an int, a long
 * or a pointer (the struct flock of F_SETLK*, 64-bit in fcntl64): passed
 * on as a word, as glibc's own fcntl does.
 */
static inline __attribute__((always_inline)) int
fcntl_tracked(int (*real)(int, int, ...), int fd, int cmd,
			 void *arg)
{
	int ret = real(fd, cmd, arg);
	if (ret < 0 || shim_busy)
		return ret;
	switch (cmd) {
	case F_DUPFD:
		return duplicated(fd, ret, false);
	case F_DUPFD_CLOEXEC:
		return duplicated(fd, ret, true);
	case F_SETFD:
		shim_record_fd_flags(fd, SHIM_FL_CLOEXEC,
				     (int)(intptr_t)arg & FD_CLOEXEC);
		break;
	case F_SETFL:
		shim_record_fd_flags(fd, SHIM_FL_SETFL, (int)(intptr_t)arg);
		break;
	}
	return ret;
}

#define FCNTL_BODY(real)                                                     \
	do {                                                                  \
		va_list ap;                                                   \
		va_start(ap, cmd);                                            \
		void *arg = va_arg(ap, void *);                               \
		va_end(ap);                                                   \
		switch (cmd) {                                                \
		case F_DUPFD:                                                 \
		case F_DUPFD_CLOEXEC:                                         \
		case F_SETFD:                                                 \
		case F_SETFL:                                                 \
			return fcntl_tracked(real, fd, cmd, arg);             \
		default:                                                      \
			return real(fd, cmd, arg);                            \
		}                                                             \
	} while (0)

SHIM_API SHIM_HOT int fcntl(int fd, int cmd, ...)
{
	FCNTL_BODY(REAL(fcntl));
}

SHIM_API SHIM_HOT int fcntl64(int fd, int cmd, ...)
{
	FCNTL_BODY(REAL(fcntl64));
}
