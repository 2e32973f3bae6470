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
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backtrace.h"
#include "kview.h"
#define LOG_PREFIX "shim"
#include "log.h"
#include "ownfd.h"
#include "recorder.h"
#include "registry.h"
#include "shim.h"


/*
 * EPOLLCR_DIR's copy: in .bss, touched only when the variable is set, so
 * that .data (written at load) stays within one page.
 */
static char config_dir[4096];

struct shim_config shim_config = {
	.backtrace_depth = BACKTRACE_DEFAULT_DEPTH,
	.backtrace_mod_depth = 1,
	.dir = "",
};


uint32_t shim_backtrace(uintptr_t caller, unsigned depth)
{
	if (!backtrace_loaded()) {
		/*
		 * dlopen, libunwind's constructors: the shim's own calls, with
		 * no handler of the program among them (its calls would be
		 * taken for the shim's): signals wait for this one load, which
		 * takes a few milliseconds.
		 */
		struct shim_quiet q;
		shim_quiet_begin(&q);
		backtrace_load();
		shim_quiet_end(&q);
	}
	/* Not shim_busy: a signal handler may interrupt the unwinder, and
	 * its calls are the program's (shim_unwinding, shim.h). */
	int saved_errno = errno; /* libunwind's validations set it */
	/* A handler's ADD may interrupt this thread's own unwinding. */
	int was_unwinding = shim_unwinding;
	shim_unwinding = 1;
	uint32_t id = depth == 1 ? backtrace_call_site(caller)
				 : backtrace_capture(caller, depth);
	shim_unwinding = was_unwinding;
	errno = saved_errno;
	return id;
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
	if (v && strlen(v) < sizeof(config_dir)) {
		memcpy(config_dir, v, strlen(v) + 1);
		shim_config.dir = config_dir;
	}
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
	/* First, holding nothing: the recorder may be taking a cut. */
	shim_recorder_fork_prepare();
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
	shim_recorder_fork_parent();
}

static void fork_child(void)
{
	/* Another thread was adopting: the child scans again when it needs. */
	if (__atomic_load_n(&shim_adopt_pending, __ATOMIC_RELAXED) == 2)
		__atomic_store_n(&shim_adopt_pending, 1, __ATOMIC_RELAXED);
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

/*
 * Close a descriptor of the scan with close(), not the real one, so that a
 * sanitizer preloaded before us sees the number go (ThreadSanitizer
 * otherwise pairs its next user with our open(): a false race), the
 * thread marked busy so that the wrapper only passes it on.  With every
 * signal blocked meanwhile: a handler's calls would be taken for the
 * shim's own (its new fds moved high, its watches unrecorded).  Once per
 * scan, the first epoll call of a process.
 */
static void own_close(int fd)
{
	struct shim_quiet q;
	shim_quiet_begin(&q);
	close(fd);
	shim_quiet_end(&q);
}

/*
 * Adopt the inherited epoll fd epfd.  The fdinfo file is
 * read under own_fd_hold() (ownfd.h: open, read, close, the number never
 * moves); the registry is told after the release, since a program dup2
 * held back may hold the fd-operation lock.  A text longer than the 64 KiB
 * buffer (about 850 watches) goes on into an mmap()ed one, doubled as it
 * fills, so that a large set is adopted whole (mmap rather than malloc:
 * adoption may run from a dump).  Not inlined: its 64 KiB buffer in the
 * constructor's frame would fault a stack page in every program, with or
 * without inherited sets.
 */
__attribute__((noinline)) static void adopt_set(int epfd)
{
	char path[40], stack_buf[65536], *buf = stack_buf;
	size_t cap = sizeof(stack_buf), len = 0;
	bool failed = false;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	own_fd_hold();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd >= 0) {
		if (len == cap - 1) {
			/* Bounded: the kernel's text of one set, at most
			 * max_user_watches lines. */
			size_t ncap = cap * 2;
			char *nb = mmap(NULL, ncap, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (nb == MAP_FAILED) {
				failed = true;
				break;
			}
			memcpy(nb, buf, len);
			if (buf != stack_buf)
				munmap(buf, cap);
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			failed = n < 0;
			break;
		}
		len += (size_t)n;
	}
	if (fd >= 0)
		own_close(fd);
	own_fd_release();
	if (fd >= 0) {
		registry_adopt_set(epfd);
		/* Unread (no memory, a read error): adopted partly, shared. */
		if (len > 0) {
			struct adopt_ctx a = { .epfd = epfd };
			size_t upto = len;
			/* Only whole lines: the text may end inside one. */
			if (failed)
				while (upto > 0 && buf[upto - 1] != '\n')
					upto--;
			buf[upto] = '\0';
			fdinfo_parse_epoll(buf, upto, NULL, adopt_one, &a);
		}
	}
	if (buf != stack_buf)
		munmap(buf, cap);
}

/* A directory entry's name as a descriptor number, or -1. */
static int fd_from_name(const char *s)
{
	int fd = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || fd > (INT_MAX - 9) / 10)
			return -1;
		fd = fd * 10 + (*s - '0');
	}
	return fd;
}

#define ADOPT_BATCH 64 /* epoll fds noted per scan of /proc/self/fd */
#define EVENTPOLL_LINK "anon_inode:[eventpoll]"

/*
 * Note in sets[] the epoll fds numbered from `from` on, at most
 * ADOPT_BATCH of them; returns how many, and in *next the number to scan
 * from again when the batch is full (-1 when the scan is complete).
 *
 * Cheap (docs/performance.md, figure 8): each page touched for the first
 * time is a page fault, each syscall counts.  So no opendir (its malloc
 * starts the heap: brk and two fresh pages), no stdio, and no path per
 * descriptor: getdents64 into a buffer on the stack, readlinkat relative
 * to the directory, one syscall per descriptor the registry does not know
 * (a set the program created itself is known).  The directory is opened
 * under own_fd_hold() (ownfd.h): no program dup2 can land on its number,
 * which never moves (the hold costs one membarrier, where OWN_FD() cost
 * four syscalls), and it is closed before the scan returns.
 */
static unsigned scan_sets(int from, int sets[ADOPT_BATCH], int *next)
{
	char buf[2048] __attribute__((aligned(8)));
	unsigned count = 0;
	long n;

	*next = -1;
	own_fd_hold();
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (dir >= 0 && *next < 0 &&
	       (n = getdents64(dir, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			char link[sizeof(EVENTPOLL_LINK)];
			off += de->d_reclen;
			int fd = fd_from_name(de->d_name);
			/* A set the program created before its first
			 * epoll_ctl is the shim's already. */
			if (fd < from || fd == dir || registry_file_at(fd))
				continue;
			ssize_t len = readlinkat(dir, de->d_name, link,
						 sizeof(link));
			if (len != sizeof(EVENTPOLL_LINK) - 1 ||
			    memcmp(link, EVENTPOLL_LINK, (size_t)len) != 0)
				continue;
			if (count == ADOPT_BATCH) {
				*next = fd;
				break;
			}
			sets[count++] = fd;
		}
	}
	if (dir >= 0)
		own_close(dir);
	own_fd_release();
	return count;
}

/*
 * Epoll fds inherited across exec: the previous program's shadow is gone,
 * the kernel still has the sets.  /proc/self/fd lists them in increasing
 * order; a batch is adopted with the directory closed (adoption takes the
 * registry's locks, which must not happen inside a hold), and a process
 * with more than a batch scans again from where the batch ended.
 */
static void adopt_inherited(void)
{
	int sets[ADOPT_BATCH], from = 0;
	do {
		unsigned count = scan_sets(from, sets, &from);
		for (unsigned i = 0; i < count; i++)
			adopt_set(sets[i]);
	} while (from >= 0);
}

int shim_adopt_pending SHIM_LOAD_DATA = 1;

/*
 * The first caller adopts, the others wait for it (a scan: tens of
 * microseconds).  Callers hold none of the shim's locks: the first
 * epoll_ctl of a thread outside any wrapper, a dump before it reads
 * anything (recorder_before_build), the shadow print; inside a wrapper (a
 * signal handler that interrupted one, maybe this very adoption) nothing
 * is done, the next call adopts.  The adoption counts as a wrapper
 * (shim_wrap_enter): a signal handler's wrapped calls meanwhile queue
 * their bookkeeping, applied when it ends.  Until then the program's own
 * calls on an inherited set or its targets (close, dup) reach the kernel
 * as for any untracked fd, and the scan reads the kernel's state as it is
 * when it runs; a watch read just before another thread closes its target
 * is left uncertain, as every adopted watch is, and a dump takes those
 * from the kernel.
 */
void shim_adopt_inherited_slow(void)
{
	if (shim_depth)
		return;
	int pending = 1;
	if (__atomic_compare_exchange_n(&shim_adopt_pending, &pending, 2,
					false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		int saved_errno = errno;
		shim_wrap_enter();
		adopt_inherited();
		shim_wrap_leave();
		errno = saved_errno;
		__atomic_store_n(&shim_adopt_pending, 0, __ATOMIC_RELEASE);
		return;
	}
	while (__atomic_load_n(&shim_adopt_pending, __ATOMIC_ACQUIRE) == 2)
		sched_yield();
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
	/* Inherited epoll sets: adopted when first needed (shim.h). */
	__atomic_store_n(&recorder_before_build, shim_adopt_inherited_slow,
			 __ATOMIC_RELEASE);
	shim_signal_init();
	shim_busy = 0;
}

/*
 * Called by the constructor alone, once; a flag rather than pthread_once,
 * whose control word would be the one variable of its .bss page written at
 * load (a page fault; SHIM_LOAD_DATA).
 */
void shim_init(void)
{
	static int done SHIM_LOAD_DATA;
	if (__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL))
		return;
	init_once_fn();
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
