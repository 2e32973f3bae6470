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
	/*
	 * Untracked, or the shim's own call: nothing to record.  Inside a
	 * wrapper (a signal handler's call), the registry may not know yet
	 * what this thread's handlers queued (a file created, a dup): queue
	 * the close anyway, it is looked up when applied.
	 */
	if (((!seen.file && fd != log_get_fd()) && !shim_depth) || shim_busy)
		return REAL(close)(fd);
	if (!shim_wrap_enter()) {
		/* A signal handler's, inside a wrapper of its thread. */
		registry_deferred_begin();
		/*
		 * With records of this thread queued, the registry may not
		 * hold fd's file yet (or still hold an old one): look it up
		 * when the record is applied, after them.
		 */
		if (shim_deferred_pushed != shim_deferred_popped)
			seen = (struct reg_seen){ 0 };
		int ret = REAL(close)(fd);
		int saved_errno = errno;
		log_fd_closed(fd);
		shim_defer(&(struct shim_deferred){ .op = SHIM_DEFER_CLOSE,
						    .fd = fd, .seen = seen });
		registry_deferred_end();
		errno = saved_errno;
		return ret;
	}
	bool locked = registry_fdop_begin(seen.file);
	int ret = REAL(close)(fd);
	int saved_errno = errno;
	registry_fd_closed(fd, seen); /* no-op for an untracked fd */
	log_fd_closed(fd);	      /* no-op unless it is the log fd */
	registry_fdop_end(locked);
	shim_wrap_leave();
	errno = saved_errno;
	return ret;
}

static int real_close_range(unsigned int first, unsigned int last, int flags)
{
	if (shim_real.close_range || (shim_resolve(), shim_real.close_range))
		return shim_real.close_range(first, last, flags);
	return (int)syscall(SYS_close_range, first, last, flags);
}

static void closed_range(unsigned int first, unsigned int last)
{
	registry_fd_closed_range(first, last);
	int log_fd = log_get_fd();
	if (log_fd >= 0 && (unsigned)log_fd >= first &&
	    (unsigned)log_fd <= last)
		log_fd_closed(log_fd);
}

/* close_range(CLOSE_RANGE_CLOEXEC) succeeded: see shim_record_fd_flags. */
static void cloexec_range(unsigned int first, unsigned int last)
{
	int saved_errno = errno;
	if (__builtin_expect(shim_depth, 0))
		shim_defer(&(struct shim_deferred){
			.op = SHIM_DEFER_FLAGS_LOST, .fd = (int)first,
			.fd2 = (int)last });
	else
		registry_fd_cloexec_range(first, last);
	errno = saved_errno;
}

SHIM_API int close_range(unsigned int first, unsigned int last, int flags)
{
	if (shim_busy)
		return real_close_range(first, last, flags);
	if (flags & CLOSE_RANGE_CLOEXEC) {
		int ret = real_close_range(first, last, flags);
		if (ret == 0)
			cloexec_range(first, last);
		return ret;
	}
	int ret;
	if (!shim_wrap_enter()) {
		registry_deferred_begin();
		ret = real_close_range(first, last, flags);
		int saved_errno = errno;
		if (ret == 0)
			shim_defer(&(struct shim_deferred){
				.op = SHIM_DEFER_CLOSE_RANGE,
				.fd = (int)first, .fd2 = (int)last });
		registry_deferred_end();
		errno = saved_errno;
		return ret;
	}
	bool locked = registry_fdop_begin_many();
	ret = real_close_range(first, last, flags);
	int saved_errno = errno;
	if (ret == 0)
		closed_range(first, last);
	registry_fdop_end(locked);
	shim_wrap_leave();
	errno = saved_errno;
	return ret;
}
