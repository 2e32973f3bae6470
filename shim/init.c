// SPDX-License-Identifier: MIT
/*
 * Load-time set-up: read the configuration once (nginx clears its
 * environment, memcached changes user: nothing is read later), register the
 * fork handlers, adopt epoll sets inherited across exec.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backtrace.h"
#include "kview.h"
#define LOG_PREFIX "shim"
#include "log.h"
#include "ownfd.h"
#include "recorder.h"
#include "registry.h"
#include "shim.h"


struct shim_config shim_config = {
	.backtrace_depth = BACKTRACE_DEFAULT_DEPTH,
	.backtrace_mod_depth = 1,
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

uint32_t shim_backtrace(uintptr_t caller, unsigned depth)
{
	if (depth == 1)
		return backtrace_call_site(caller);
	return backtrace_capture(caller, depth);
}

/* A depth from the environment variable name, or *depth left alone. */
static void read_depth(const char *name, unsigned *depth)
{
	const char *v = getenv(name);
	unsigned long d;
	char *end;

	if (!v || !*v)
		return;
	d = strtoul(v, &end, 10);
	if (*end || d > BACKTRACE_MAX_DEPTH) {
		d = *end ? 0 : BACKTRACE_MAX_DEPTH;
		log_warn("%s=%s is not a depth from 0 to %d; using %lu", name, v, BACKTRACE_MAX_DEPTH, d);
	}
	*depth = (unsigned)d;
}

static void read_config(void)
{
	const char *v;

	read_depth("EPOLLCR_BACKTRACE", &shim_config.backtrace_depth);
	/* MOD: the call site only, unless asked; never without ADD's. */
	if (!shim_config.backtrace_depth)
		shim_config.backtrace_mod_depth = 0;
	read_depth("EPOLLCR_BACKTRACE_MOD", &shim_config.backtrace_mod_depth);
	v = getenv("EPOLLCR_DIR");
	if (v && strlen(v) < sizeof(shim_config.dir))
		memcpy(shim_config.dir, v, strlen(v) + 1);
	/* Test hooks (docs/testing.md): inject failures from load time on. */
	v = getenv("EPOLLCR_FAULT_ALLOC");
	if (v && *v) {
		unsigned after = 0, count = 0;
		if (sscanf(v, "%u:%u", &after, &count) == 2)
			registry_fail_alloc(after, count);
	}
	v = getenv("EPOLLCR_FAULT_NOPROC");
	if (v && *v == '1')
		shim_config.recorder_flags |= RECORDER_F_NO_PROC;
	v = getenv("EPOLLCR_LOG");
	if (v && *v)
		log_setup(2, (enum log_level)atoi(v));
}

/*
 * Lock order: registry locks, then backtrace stripes (a MOD interns its
 * backtrace while holding its set's lock).  From prepare to parent or
 * child the thread holds every registry lock: a signal handler's wrapped
 * calls meanwhile must not take them, so the fork counts as a wrapper
 * (shim_wrap_enter, shim/defer.c).
 */
static __thread bool fork_wrapped;

static void fork_prepare(void)
{
	fork_wrapped = shim_wrap_enter();
	registry_fork_prepare();
	backtrace_fork_prepare();
}

static void fork_parent(void)
{
	backtrace_fork_parent();
	registry_fork_parent();
	if (fork_wrapped) {
		fork_wrapped = false;
		shim_wrap_leave();
	}
}

static void fork_child(void)
{
	shim_own_fork_child();
	registry_fork_child();
	/* The other threads' queued records stayed in the parent. */
	registry_deferred_fork_child(shim_deferred_pushed -
				     shim_deferred_popped);
	backtrace_fork_child();
	shim_recorder_fork_child();
	if (fork_wrapped) {
		fork_wrapped = false;
		shim_wrap_leave();
	}
}

struct adopt_ctx {
	int epfd;
};

static int adopt_one(void *ctx, const struct fdinfo_watch *w)
{
	struct adopt_ctx *a = ctx;
	registry_adopt_watch(a->epfd, w->tfd, w->events, w->data);
	return 0;
}

/* Adopt the epoll fd epfd found open at load time. */
static void adopt_set(int fdinfo_dir, int epfd)
{
	char name[16], buf[65536];
	snprintf(name, sizeof(name), "%d", epfd);
	int fd = OWN_FD(openat(fdinfo_dir, name, O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return;
	registry_adopt_set(epfd);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	/* A set too large for one buffer is adopted partly: still shared. */
	if (n > 0) {
		struct adopt_ctx a = { .epfd = epfd };
		buf[n] = '\0';
		fdinfo_parse_epoll(buf, (size_t)n, NULL, adopt_one, &a);
	}
	shim_real.close(fd);
}

/*
 * Epoll fds inherited across exec: the previous program's shadow is gone,
 * the kernel still has the sets.  The directory fd is closed before main(),
 * so the program's first open() gets the same number as without the shim
 * (they are above the program's range anyway).
 */
static void adopt_inherited(void)
{
	/* Our descriptors stay out of the program's range (ownfd.h). */
	int dir_fd =
		OWN_FD(open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	DIR *dir = dir_fd >= 0 ? fdopendir(dir_fd) : NULL;
	if (!dir) {
		if (dir_fd >= 0)
			shim_real.close(dir_fd);
		return;
	}
	int fdinfo_dir = OWN_FD(open("/proc/self/fdinfo",
				     O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *de;
	char path[64], link[64];
	while ((de = readdir(dir))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int fd = atoi(de->d_name);
		if (fd == dirfd(dir) || fd == fdinfo_dir)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strstr(link, "eventpoll") && fdinfo_dir >= 0)
			adopt_set(fdinfo_dir, fd);
	}
	if (fdinfo_dir >= 0)
		shim_real.close(fdinfo_dir);
	closedir(dir);
}

static void init_once_fn(void)
{
	shim_resolve();
	/* The library's own descriptors go above the program's range. */
	static const struct own_fd_hooks hooks = {
		shim_own_begin, shim_own_end, shim_own_section_begin,
		shim_own_section_end
	};
	shim_own_init();
	__atomic_store_n(&own_fd_hooks, &hooks, __ATOMIC_RELEASE);
	shim_busy = 1;
	read_config();
	registry_init();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	adopt_inherited();
	shim_signal_init();
	shim_busy = 0;
}

void shim_init(void)
{
	pthread_once(&init_once, init_once_fn);
}

__attribute__((constructor)) static void shim_constructor(void)
{
	shim_init();
}

/* _Fork runs no atfork handlers: do their work around it. */
SHIM_API pid_t _Fork(void)
{
	fork_prepare();
	pid_t pid = REAL(fork_)();
	int saved_errno = errno;
	if (pid == 0)
		fork_child();
	else
		fork_parent();
	errno = saved_errno;
	return pid;
}
