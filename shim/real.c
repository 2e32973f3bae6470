// SPDX-License-Identifier: MIT
/*
 * The real functions behind the wrappers, resolved with dlsym(RTLD_NEXT),
 * once, from the constructor or from the first wrapper that runs before it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "shim.h"

/*
 * In .data rather than .bss: next to the fd table's first leaf pointer and
 * the log fd, so that an untracked close() touches one data page less.
 */
struct shim_real shim_real __attribute__((section(".data")));
__thread int shim_busy __attribute__((tls_model("initial-exec")));

/*
 * 0: not resolved, 1: a thread is resolving, 2: done.  Not pthread_once:
 * a sanitizer runtime calls wrapped functions (sigaction) while it starts,
 * before its own pthread_once interceptor can run.
 */
static int resolve_state;

#define RESOLVE(field, sym) \
	*(void **)&shim_real.field = dlsym(RTLD_NEXT, sym)

static void resolve_all(void)
{
	RESOLVE(epoll_create, "epoll_create");
	RESOLVE(epoll_create1, "epoll_create1");
	RESOLVE(epoll_ctl, "epoll_ctl");
	RESOLVE(socket, "socket");
	RESOLVE(socketpair, "socketpair");
	RESOLVE(accept, "accept");
	RESOLVE(accept4, "accept4");
	RESOLVE(bind, "bind");
	RESOLVE(listen, "listen");
	RESOLVE(recvmsg, "recvmsg");
	RESOLVE(close, "close");
	RESOLVE(close_range, "close_range");
	RESOLVE(dup, "dup");
	RESOLVE(dup2, "dup2");
	RESOLVE(dup3, "dup3");
	RESOLVE(fcntl, "fcntl");
	RESOLVE(fcntl64, "fcntl64");
	RESOLVE(pipe, "pipe");
	RESOLVE(pipe2, "pipe2");
	RESOLVE(eventfd, "eventfd");
	RESOLVE(timerfd_create, "timerfd_create");
	RESOLVE(signalfd, "signalfd");
	RESOLVE(inotify_init, "inotify_init");
	RESOLVE(inotify_init1, "inotify_init1");
	RESOLVE(fork_, "_Fork");
	RESOLVE(clone, "clone");
	RESOLVE(sigaction, "sigaction");
	RESOLVE(signal, "signal");
	if (!shim_real.fcntl64)
		shim_real.fcntl64 = shim_real.fcntl;
}

void shim_resolve(void)
{
	int state = __atomic_load_n(&resolve_state, __ATOMIC_ACQUIRE);
	if (state == 2)
		return;
	if (state == 0 &&
	    __atomic_compare_exchange_n(&resolve_state, &state, 1, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		resolve_all();
		__atomic_store_n(&resolve_state, 2, __ATOMIC_RELEASE);
		return;
	}
	while (__atomic_load_n(&resolve_state, __ATOMIC_ACQUIRE) != 2)
		__builtin_ia32_pause();
}

int shim_fd_high(int fd)
{
	struct rlimit rl;
	int saved_errno = errno;
	int base = 1024;
	if (fd < 0)
		return fd;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		base = rl.rlim_cur > 2048 ? (int)(rl.rlim_cur - 64)
					  : (int)(rl.rlim_cur / 2);
	if (fd >= base) {
		errno = saved_errno;
		return fd;
	}
	/* libc has both: resolved (NOLINT: the analyzer cannot know it). */
	int high = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, base); // NOLINT
	if (high >= 0)
		REAL(close)(fd); // NOLINT
	errno = saved_errno;
	return high >= 0 ? high : fd;
}
