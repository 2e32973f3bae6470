// SPDX-License-Identifier: MIT
/*
 * close, close_range.  As the kernel: the fd is gone after close() even when
 * it fails with EINTR, and a file's watches go with its last descriptor.
 */
#include <errno.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "registry.h"
#include "shim.h"

SHIM_API SHIM_HOT int close(int fd)
{
	struct reg_seen seen = registry_fd_peek(fd);
	/* Untracked, or the shim's own call: nothing to record. */
	if ((!seen.file && fd != log_get_fd()) || shim_busy)
		return REAL(close)(fd);
	bool locked = registry_fdop_begin(seen.file);
	int ret = REAL(close)(fd);
	int saved_errno = errno;
	registry_fd_closed(fd, seen); /* no-op for an untracked fd */
	log_fd_closed(fd);	      /* no-op unless it is the log fd */
	errno = saved_errno;
	registry_fdop_end(locked);
	return ret;
}

SHIM_API int close_range(unsigned int first, unsigned int last, int flags)
{
	int ret;
	bool locked = !(flags & CLOSE_RANGE_CLOEXEC) && !shim_busy &&
		      registry_fdop_begin_many();
	if (shim_real.close_range || (shim_resolve(), shim_real.close_range))
		ret = shim_real.close_range(first, last, flags);
	else
		ret = (int)syscall(SYS_close_range, first, last, flags);
	if (ret == 0 && !(flags & CLOSE_RANGE_CLOEXEC) && !shim_busy) {
		int saved_errno = errno;
		registry_fd_closed_range(first, last);
		int log_fd = log_get_fd();
		if (log_fd >= 0 && (unsigned)log_fd >= first &&
		    (unsigned)log_fd <= last)
			log_fd_closed(log_fd);
		errno = saved_errno;
	}
	registry_fdop_end(locked);
	return ret;
}
