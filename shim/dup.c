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

static SHIM_HOT int duplicated(int oldfd, int newfd)
{
	if (newfd >= 0 && newfd != oldfd) {
		/* Untracked both: nothing to do, and no call to pay. */
		bool tracked = registry_fd_lookup(oldfd) ||
			       registry_fd_lookup(newfd);
		if ((!tracked && newfd != log_get_fd()) || shim_busy)
			return newfd;
		int saved_errno = errno;
		if (tracked)
			registry_fd_dup(oldfd, newfd);
		if (newfd == log_get_fd())
			log_fd_closed(newfd);
		errno = saved_errno;
	}
	return newfd;
}

SHIM_API SHIM_HOT int dup(int oldfd)
{
	return duplicated(oldfd, REAL(dup)(oldfd));
}

/* dup2/dup3 close newfd implicitly: a watched file may go with it. */
SHIM_API SHIM_HOT int dup2(int oldfd, int newfd)
{
	const struct reg_file *f = registry_fd_lookup(newfd);
	bool locked = f && !shim_busy && registry_fdop_begin(f);
	/* After the lock: never wait for a creation while holding it. */
	int how = shim_busy ? 0 : shim_prog_dup_enter();
	int ret = REAL(dup2)(oldfd, newfd);
	if (how)
		shim_prog_dup_leave(how);
	ret = duplicated(oldfd, ret);
	registry_fdop_end(locked);
	return ret;
}

SHIM_API SHIM_HOT int dup3(int oldfd, int newfd, int flags)
{
	const struct reg_file *f = registry_fd_lookup(newfd);
	bool locked = f && !shim_busy && registry_fdop_begin(f);
	/* After the lock: never wait for a creation while holding it. */
	int how = shim_busy ? 0 : shim_prog_dup_enter();
	int ret = REAL(dup3)(oldfd, newfd, flags);
	if (how)
		shim_prog_dup_leave(how);
	ret = duplicated(oldfd, ret);
	registry_fdop_end(locked);
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
