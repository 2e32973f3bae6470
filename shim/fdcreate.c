// SPDX-License-Identifier: MIT
/*
 * The other calls that create pollable descriptors: pipe, pipe2, eventfd,
 * timerfd_create, signalfd, inotify_init, inotify_init1.
 */
#include <errno.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "registry.h"
#include "shim.h"

static int created(int fd, uint32_t kind, const struct reg_create *c)
{
	if (fd >= 0) {
		int saved_errno = errno;
		shim_record_fd_created(fd, kind, c);
		errno = saved_errno;
	}
	return fd;
}

/*
 * The shim's own call: its descriptors high, unseen; a vfork child's:
 * the real call alone (shim_own_call()).
 */
#define CREATE(call, kind, c)                                                 \
	(shim_own_call() ? OWN_CREATE(call) :                                 \
	 !shim_busy	 ? created((call), (kind), (c)) :                     \
			   (call))

/*
 * The shim's own pipe, high.  libunwind's address-validation pipe is not
 * one of them: it is refused (EMFILE, nothing created), so that libunwind
 * keeps no descriptor in the program's range; its validations then go
 * through the write that shim/syscall.c emulates.
 */
static int own_pipe(int fds[2], int flags)
{
	shim_own_begin();
	int ret = flags ? REAL(pipe2)(fds, flags) : REAL(pipe)(fds);
	if (ret == 0) {
		fds[0] = shim_fd_high(fds[0]);
		fds[1] = shim_fd_high(fds[1]);
	}
	shim_own_end(-1);
	return ret;
}

static int pipe_created(int ret, int fds[2], int flags)
{
	if (ret == 0) {
		struct reg_create r = { .flags = flags, .backlog = -1,
					.pipe_end = 0, .peer_fd = fds[1] };
		struct reg_create w = { .flags = flags, .backlog = -1,
					.pipe_end = 1, .peer_fd = fds[0] };
		created(fds[0], IMAGE_KIND_PIPE, &r);
		created(fds[1], IMAGE_KIND_PIPE, &w);
	}
	return ret;
}

SHIM_API int pipe(int fds[2])
{
	if (shim_unwinder_call()) {
		errno = EMFILE;
		return -1;
	}
	if (shim_own_call())
		return own_pipe(fds, 0);
	if (shim_busy)
		return REAL(pipe)(fds);
	return pipe_created(REAL(pipe)(fds), fds, 0);
}

SHIM_API int pipe2(int fds[2], int flags)
{
	if (shim_unwinder_call()) {
		errno = EMFILE;
		return -1;
	}
	if (shim_own_call())
		return own_pipe(fds, flags);
	if (shim_busy)
		return REAL(pipe2)(fds, flags);
	return pipe_created(REAL(pipe2)(fds, flags), fds, flags);
}

SHIM_API int eventfd(unsigned int count, int flags)
{
	struct reg_create c = { .flags = flags, .backlog = -1 };
	return CREATE(REAL(eventfd)(count, flags), IMAGE_KIND_EVENTFD, &c);
}

SHIM_API int timerfd_create(int clockid, int flags)
{
	struct reg_create c = { .flags = flags, .clockid = clockid,
				.backlog = -1 };
	return CREATE(REAL(timerfd_create)(clockid, flags),
		       IMAGE_KIND_TIMERFD, &c);
}

/* The signals of a sigset_t as a bit mask, bit n-1 for signal n. */
static uint64_t sigmask_bits(const sigset_t *mask)
{
	uint64_t bits = 0;
	for (int sig = 1; sig <= 64 && mask; sig++)
		if (sigismember(mask, sig) == 1)
			bits |= 1ull << (sig - 1);
	return bits;
}

SHIM_API int signalfd(int fd, const sigset_t *mask, int flags)
{
	int ret = REAL(signalfd)(fd, mask, flags);
	if (ret >= 0 && !shim_busy) {
		int saved_errno = errno;
		if (fd == -1) {
			struct reg_create c = { .flags = flags, .backlog = -1,
						.sigmask = sigmask_bits(mask) };
			shim_record_fd_created(ret, IMAGE_KIND_SIGNALFD, &c);
		} else {
			shim_record_signalfd_mask(ret, sigmask_bits(mask));
		}
		errno = saved_errno;
	}
	return ret;
}

SHIM_API int inotify_init(void)
{
	return CREATE(REAL(inotify_init)(), IMAGE_KIND_OTHER, NULL);
}

SHIM_API int inotify_init1(int flags)
{
	struct reg_create c = { .flags = flags, .backlog = -1 };
	return CREATE(REAL(inotify_init1)(flags), IMAGE_KIND_OTHER, &c);
}
