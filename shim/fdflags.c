// SPDX-License-Identifier: MIT
/*
 * ioctl, and the descriptor and file flags the shadow follows so that a
 * dump need not read each fd's fdinfo for them (issue 14 item 1):
 * FIONBIO, FIOASYNC (the file's O_NONBLOCK, O_ASYNC), FIOCLEX, FIONCLEX
 * (the fd's FD_CLOEXEC).  fcntl's F_SETFL and F_SETFD come here from
 * dup.c.  Any other request is the real call alone, after one switch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "registry.h"
#include "shim.h"

void shim_fd_flags_lost(int fd)
{
	/*
	 * A signal handler's, within a wrapper of its thread whose queued
	 * records may yet create or replace fd: the flags of whatever fd
	 * holds once they are applied are not known.
	 */
	int saved_errno = errno;
	shim_defer(&(struct shim_deferred){
		.op = SHIM_DEFER_FLAGS_LOST, .fd = fd, .fd2 = fd });
	errno = saved_errno;
}

static inline __attribute__((always_inline)) int
ioctl_tracked(int fd, unsigned long request, void *arg)
{
	int ret = REAL(ioctl)(fd, request, arg);
	if (ret < 0)
		return ret;
	switch (request) {
	case FIOCLEX:
		shim_record_fd_flags(fd, SHIM_FL_CLOEXEC, 1);
		break;
	case FIONCLEX:
		shim_record_fd_flags(fd, SHIM_FL_CLOEXEC, 0);
		break;
	case FIONBIO:
		shim_record_fd_flags(fd, SHIM_FL_NONBLOCK, *(const int *)arg);
		break;
	case FIOASYNC:
		shim_record_fd_flags(fd, SHIM_FL_ASYNC, *(const int *)arg);
		break;
	}
	return ret;
}

/* The third argument is a pointer or an int: passed on as a word. */
SHIM_API SHIM_HOT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	switch (request) {
	case FIOCLEX:
	case FIONCLEX:
	case FIONBIO:
	case FIOASYNC:
		return ioctl_tracked(fd, request, arg);
	default:
		return REAL(ioctl)(fd, request, arg);
	}
}
