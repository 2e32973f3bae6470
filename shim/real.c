// SPDX-License-Identifier: MIT
/*
 * The real functions behind the wrappers, resolved with dlsym(RTLD_NEXT),
 * once, from the constructor or from the first wrapper that runs before it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <linux/membarrier.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

/*
 * In .data rather than .bss: next to the fd table's first leaf pointer and
 * the log fd, so that an untracked close() touches one data page less.
 */
struct shim_real shim_real __attribute__((section(".data")));
__thread int shim_busy __attribute__((tls_model("initial-exec")));
__thread int shim_unwinding __attribute__((tls_model("initial-exec")));

/*
 * 0: not resolved, 1: a thread is resolving, 2: done.  Not pthread_once:
 * a sanitizer runtime calls wrapped functions (sigaction) while it starts,
 * before its own pthread_once interceptor can run.
 */
static int resolve_state SHIM_LOAD_DATA;

/*
 * The names in one table of fixed-size arrays rather than string literals:
 * the linker merges literals with the same text elsewhere in the library,
 * which scattered them over two pages of .rodata, each a page fault at
 * load (docs/performance.md, figure 8).
 */
#define REAL_ENTRY(field, sym) { sym, offsetof(struct shim_real, field) }
static const struct {
	char name[16];
	unsigned short offset; /* of the pointer in struct shim_real */
} real_names[] = {
	REAL_ENTRY(epoll_create, "epoll_create"),
	REAL_ENTRY(epoll_create1, "epoll_create1"),
	REAL_ENTRY(epoll_ctl, "epoll_ctl"),
	REAL_ENTRY(socket, "socket"),
	REAL_ENTRY(socketpair, "socketpair"),
	REAL_ENTRY(accept, "accept"),
	REAL_ENTRY(accept4, "accept4"),
	REAL_ENTRY(bind, "bind"),
	REAL_ENTRY(listen, "listen"),
	REAL_ENTRY(recvmsg, "recvmsg"),
	REAL_ENTRY(recvmmsg, "recvmmsg"),
	REAL_ENTRY(sendmsg, "sendmsg"),
	REAL_ENTRY(sendmmsg, "sendmmsg"),
	REAL_ENTRY(close, "close"),
	REAL_ENTRY(close_range, "close_range"),
	REAL_ENTRY(dup, "dup"),
	REAL_ENTRY(dup2, "dup2"),
	REAL_ENTRY(dup3, "dup3"),
	REAL_ENTRY(fcntl, "fcntl"),
	REAL_ENTRY(fcntl64, "fcntl64"),
	REAL_ENTRY(ioctl, "ioctl"),
	REAL_ENTRY(pipe, "pipe"),
	REAL_ENTRY(pipe2, "pipe2"),
	REAL_ENTRY(eventfd, "eventfd"),
	REAL_ENTRY(timerfd_create, "timerfd_create"),
	REAL_ENTRY(signalfd, "signalfd"),
	REAL_ENTRY(inotify_init, "inotify_init"),
	REAL_ENTRY(inotify_init1, "inotify_init1"),
	REAL_ENTRY(fork_, "_Fork"),
	REAL_ENTRY(clone, "clone"),
	REAL_ENTRY(posix_spawn, "posix_spawn"),
	REAL_ENTRY(posix_spawnp, "posix_spawnp"),
	REAL_ENTRY(system, "system"),
	REAL_ENTRY(popen, "popen"),
	REAL_ENTRY(sigaction, "sigaction"),
	REAL_ENTRY(signal, "signal"),
	REAL_ENTRY(syscall, "syscall"),
	REAL_ENTRY(execve, "execve"),
	REAL_ENTRY(execv, "execv"),
	REAL_ENTRY(execvp, "execvp"),
	REAL_ENTRY(execvpe, "execvpe"),
	REAL_ENTRY(fexecve, "fexecve"),
	REAL_ENTRY(execveat, "execveat"),
};

static void resolve_all(void)
{
	for (size_t i = 0; i < sizeof(real_names) / sizeof(real_names[0]);
	     i++)
		*(void **)((char *)&shim_real + real_names[i].offset) =
			dlsym(RTLD_NEXT, real_names[i].name);
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
	/*
	 * close(), not the real one: a sanitizer preloaded before us must
	 * see the low number go (ThreadSanitizer otherwise pairs the
	 * program's next descriptor at that number with our open(), a false
	 * race); for an untracked number the wrapper is the real call.
	 */
	if (high >= 0)
		close(fd);
	errno = saved_errno;
	return high >= 0 ? high : fd;
}

/*
 * The shim's own descriptors against the program's dup2()/dup3() onto a
 * number it believes free (ownfd.h).  Within a section (a dump, or one
 * creation), each creation and each program dup2 form a Dekker pair: an
 * own creation counts itself in own_low, then waits until no program
 * dup2 is under way (prog_dups); a program dup2 counts itself in
 * prog_dups, then backs off while a creation is under way.  With
 * sequentially consistent operations one of the two sees the other, so a
 * dup2 never runs between the kernel handing us a low number and
 * shim_fd_high() moving it.
 *
 * Outside sections (almost always) a program dup2 pays no locked
 * instruction: it marks its thread's slot busy with a plain store, checks
 * own_active, and clears the slot after the call.  A section sets
 * own_active, then membarrier(PRIVATE_EXPEDITED) makes every thread of the
 * process execute a full barrier (each dup2 from then on sees own_active),
 * and waits until no slot is busy (the dup2s that did not).  Without
 * membarrier, or beyond DUP_SLOTS threads, dup2 always takes the counted
 * path.  Nobody holds a lock while it waits, and each wait lasts a
 * syscall or three; a thread's own nesting (a signal handler) never waits
 * for itself, and a creation waits for dup2s at most OWN_WAIT_NS.
 */
#define DUP_SLOTS 1024
#define OWN_WAIT_NS 50000000 /* a creation waits for dup2s at most 50 ms */

/*
 * Spin until *word is 0, at most OWN_WAIT_NS: a dup2 whose thread runs a
 * signal handler between its syscall and its bookkeeping, and the handler
 * waits for the recorder's consistent cut, must not hang the recorder (the
 * creation then goes ahead unguarded, as it did before the guard).
 */
static void own_wait_zero(const int *word)
{
	struct timespec t0, t;
	bool started = false;
	for (unsigned spins = 0; __atomic_load_n(word, __ATOMIC_SEQ_CST);
	     spins++) {
		__builtin_ia32_pause();
		if (spins % 1024)
			continue;
		clock_gettime(CLOCK_MONOTONIC, started ? &t : &t0);
		if (!started) {
			started = true;
			continue;
		}
		if ((t.tv_sec - t0.tv_sec) * 1000000000L +
			    (t.tv_nsec - t0.tv_nsec) > OWN_WAIT_NS)
			return;
	}
}

struct dup_slot {
	int busy; /* written by its thread only: dup2 calls under way */
} __attribute__((aligned(64)));

static struct dup_slot dup_slots[DUP_SLOTS];
/*
 * Sections under way, plus 1 while membarrier is not registered: dup2
 * takes the counted path when not 0.  In .data beside shim_real, which
 * the wrapper reads anyway (one page fewer to touch).
 */
int shim_dup_careful __attribute__((section(".data"))) = 1;
static int asym_ok SHIM_LOAD_DATA; /* membarrier(PRIVATE_EXPEDITED) registered */
/*
 * The constructor's hold (adoption, shim/init.c) reads and writes these:
 * SHIM_LOAD_DATA, on a cache line of their own (dumps write them, every
 * wrapper reads shim_real).
 */
static int own_low SHIM_LOAD_DATA __attribute__((aligned(64))); /* own creations under way */
static int prog_dups SHIM_LOAD_DATA; /* counted program dup2 calls under way */
static int dup_slots_used SHIM_LOAD_DATA; /* slots handed out, never returned */
__thread int *shim_dup_busy __attribute__((tls_model("initial-exec")));
static __thread int my_slot_tried __attribute__((tls_model("initial-exec")));
static __thread int own_section __attribute__((tls_model("initial-exec")));
static __thread int own_depth __attribute__((tls_model("initial-exec")));

void shim_own_init(void)
{
	int saved_errno = errno;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
		    0, 0) == 0 &&
	    !__atomic_exchange_n(&asym_ok, 1, __ATOMIC_ACQ_REL))
		__atomic_sub_fetch(&shim_dup_careful, 1, __ATOMIC_SEQ_CST);
	errno = saved_errno;
}

/*
 * In a forked child only the forking thread is left: no creation or dup2
 * of another thread is under way any more (their counts would hold the
 * child's dup2 back for ever), and membarrier's registration belongs to
 * the parent's address space.  The forking thread is in fork(), in no
 * dup2 and no creation; a section it had open stays open.
 */
void shim_own_fork_child(void)
{
	int used = __atomic_load_n(&dup_slots_used, __ATOMIC_RELAXED);
	for (int i = 0; i < used && i < DUP_SLOTS; i++)
		if (__atomic_load_n(&dup_slots[i].busy, __ATOMIC_RELAXED))
			__atomic_store_n(&dup_slots[i].busy, 0,
					 __ATOMIC_RELAXED);
	__atomic_store_n(&own_low, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&prog_dups, 0, __ATOMIC_RELAXED);
	own_depth = 0;
	__atomic_store_n(&asym_ok, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&shim_dup_careful, 1 + own_section, __ATOMIC_SEQ_CST);
	shim_own_init();
}

void shim_own_section_begin(void)
{
	if (own_section++)
		return;
	__atomic_add_fetch(&shim_dup_careful, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&asym_ok, __ATOMIC_ACQUIRE))
		return;
	int saved_errno = errno;
	syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	errno = saved_errno;
	int used = __atomic_load_n(&dup_slots_used, __ATOMIC_ACQUIRE);
	for (int i = 0; i < used && i < DUP_SLOTS; i++)
		if (&dup_slots[i].busy != shim_dup_busy)
			own_wait_zero(&dup_slots[i].busy);
}

void shim_own_section_end(void)
{
	if (--own_section == 0)
		__atomic_sub_fetch(&shim_dup_careful, 1, __ATOMIC_SEQ_CST);
}

void shim_own_begin(void)
{
	shim_own_section_begin();
	own_depth++;
	__atomic_add_fetch(&own_low, 1, __ATOMIC_SEQ_CST);
	own_wait_zero(&prog_dups);
}

int shim_own_end(int fd)
{
	fd = shim_fd_high(fd);
	__atomic_sub_fetch(&own_low, 1, __ATOMIC_SEQ_CST);
	own_depth--;
	shim_own_section_end();
	return fd;
}

int shim_prog_dup_slow(void)
{
	if (!shim_dup_busy && !my_slot_tried) {
		my_slot_tried = 1;
		int i = __atomic_fetch_add(&dup_slots_used, 1,
					   __ATOMIC_ACQ_REL);
		if (i < DUP_SLOTS) {
			shim_dup_busy = &dup_slots[i].busy;
			return shim_prog_dup_enter();
		}
	}
	for (;;) {
		__atomic_add_fetch(&prog_dups, 1, __ATOMIC_SEQ_CST);
		if (own_depth || !__atomic_load_n(&own_low, __ATOMIC_SEQ_CST))
			return 2;
		__atomic_sub_fetch(&prog_dups, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&own_low, __ATOMIC_ACQUIRE))
			__builtin_ia32_pause();
	}
}

void shim_prog_dup_counted_leave(void)
{
	__atomic_sub_fetch(&prog_dups, 1, __ATOMIC_SEQ_CST);
}
