/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the shim's wrapper files: the real libc functions,
 * the per-thread guard, configuration read once at load.
 */
#ifndef EPOLLCR_SHIM_H
#define EPOLLCR_SHIM_H

#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>

#include "backtrace.h"
#include "registry.h"

#define SHIM_API __attribute__((visibility("default")))
/*
 * Wrappers a busy program calls on every request: hot, so that the compiler
 * groups them (.text.hot) and an untracked call touches few pages; each
 * page costs a TLB miss after the syscall on a paravirtual machine.
 */
#define SHIM_HOT __attribute__((hot))
/*
 * Variables written at load (by the constructor): in .data, not .bss.  The
 * loader writes the .data page anyway (relocations, the zeroed tail of the
 * last file page), while each .bss page written costs a fresh page, a page
 * fault that is worth 15 syscalls here (docs/performance.md, figure 8).
 */
#define SHIM_LOAD_DATA __attribute__((section(".data")))

/* Pointers to the next definitions (libc's) of every wrapped function. */
struct shim_real {
	int (*epoll_create)(int);
	int (*epoll_create1)(int);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int,
			struct timespec *);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*pipe)(int[2]);
	int (*pipe2)(int[2], int);
	int (*eventfd)(unsigned int, int);
	int (*timerfd_create)(int, int);
	int (*signalfd)(int, const sigset_t *, int);
	int (*inotify_init)(void);
	int (*inotify_init1)(int);
	pid_t (*fork_)(void); /* _Fork */
	int (*clone)(int (*)(void *), void *, int, void *, ...);
	int (*posix_spawn)(pid_t *, const char *,
			   const posix_spawn_file_actions_t *,
			   const posix_spawnattr_t *, char *const[],
			   char *const[]);
	int (*posix_spawnp)(pid_t *, const char *,
			    const posix_spawn_file_actions_t *,
			    const posix_spawnattr_t *, char *const[],
			    char *const[]);
	int (*system)(const char *);
	FILE *(*popen)(const char *, const char *);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	sighandler_t (*signal)(int, sighandler_t);
	long (*syscall)(long, ...);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execv)(const char *, char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int);
};

extern struct shim_real shim_real;

/*
 * Epoll sets inherited across exec are adopted (shim/init.c) at the first
 * epoll_ctl, dump or shadow print, not at load: listing the descriptors
 * means /proc, which costs a program that never uses epoll more than all
 * the rest of the start-up (docs/performance.md, figure 8).  1: pending,
 * 2: a thread is adopting, 0: done.  In .data beside shim_real.
 */
extern int shim_adopt_pending;
void shim_adopt_inherited_slow(void);

/* Adopt the inherited sets now if not done; never from a nested wrapper. */
static inline void shim_adopt_inherited(void)
{
	if (__builtin_expect(
		    __atomic_load_n(&shim_adopt_pending, __ATOMIC_ACQUIRE), 0))
		shim_adopt_inherited_slow();
}

/* Resolve every real function once (thread-safe; any wrapper may call). */
void shim_resolve(void);

/* shim_real.NAME, resolved first if the constructor has not run yet. */
#define SHIM_STR_(x) #x
#define SHIM_STR(x) SHIM_STR_(x) /* a macro's value as a string */

#define REAL(name)                                                            \
	(__builtin_expect(shim_real.name != NULL, 1)                          \
		 ? shim_real.name                                             \
		 : (shim_resolve(), shim_real.name))

/* Configuration, read once at load (the environment may vanish later). */
struct shim_config {
	unsigned backtrace_depth; /* EPOLLCR_BACKTRACE, 0: off */
	unsigned backtrace_mod_depth; /* EPOLLCR_BACKTRACE_MOD, 0: off */
	int signal;		  /* EPOLLCR_SIGNAL */
	const char *dir;	  /* EPOLLCR_DIR, or "" for the default */
	unsigned recorder_flags;  /* RECORDER_F_* (EPOLLCR_FAULT_NOPROC) */
};
extern struct shim_config shim_config;

/*
 * The per-thread guard: set while the shim itself calls libc, so that
 * wrappers reached from inside the shim (libunwind, the recorder) pass
 * straight through without bookkeeping.
 */
extern __thread int shim_busy __attribute__((tls_model("initial-exec")));
#define SHIM_BUSY_OWN 1	     /* the shim's own calls (shim_quiet_begin) */
#define SHIM_BUSY_VM_CHILD 2 /* a vfork child runs in this thread's memory */

/*
 * Set while a wrapper captures a stack (shim_backtrace(), shim/init.c).
 * Not shim_busy: a signal handler that interrupts the unwinder makes the
 * program's calls, which must be recorded (they take the nested wrappers'
 * deferred path) and get the lowest free numbers.  The unwinder's own
 * descriptor (the pipe libunwind validates addresses with) is told apart
 * by its caller's address (backtrace_from_unwinder, shim/backtrace.c).
 */
extern __thread int shim_unwinding __attribute__((tls_model("initial-exec")));

/*
 * Is this call the shim's own (libunwind, the recorder), whose new fds are
 * moved out of the program's way?  Not in a vfork child, whose calls are
 * the child program's and must be left exactly as they are.  caller: the
 * wrapper's return address.
 */
static inline bool shim_own_call_from(uintptr_t caller)
{
	return shim_busy == SHIM_BUSY_OWN ||
	       (__builtin_expect(shim_unwinding, 0) &&
		backtrace_from_unwinder(caller));
}
#define shim_own_call() \
	shim_own_call_from((uintptr_t)__builtin_return_address(0))

/*
 * Is this call libunwind's, made while the shim captures a stack?  Its
 * address-validation pipe is refused (shim/fdcreate.c) and the one write
 * it validates with is emulated (shim/syscall.c): a pipe libunwind kept
 * would hold two numbers of the program's range for ever, and once the
 * program closed them (a daemon's close loop) and got them back for its
 * own files, libunwind would read and write those.
 */
#define shim_unwinder_call()                                                  \
	(__builtin_expect(shim_unwinding, 0) &&                               \
	 backtrace_from_unwinder((uintptr_t)__builtin_return_address(0)))

/*
 * The shim's own calls where no handler of the program may run (its calls
 * would be taken for the shim's: its new fds moved high, its watches
 * unrecorded): every signal blocked and the thread marked SHIM_BUSY_OWN,
 * both put back by shim_quiet_end().  For rare, short sections (the load
 * of libunwind, the recorder thread's start, the inherited-set scan's
 * close): two more syscalls each.
 */
struct shim_quiet {
	sigset_t mask;
	int busy;
};

static inline void shim_quiet_begin(struct shim_quiet *q)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &q->mask);
	q->busy = shim_busy;
	shim_busy = SHIM_BUSY_OWN;
}

static inline void shim_quiet_end(const struct shim_quiet *q)
{
	shim_busy = q->busy;
	pthread_sigmask(SIG_SETMASK, &q->mask, NULL);
}

/*
 * Wrappers that take the shim's locks mark their thread (shim_depth) from
 * before the first lock to after the last.  A wrapper that finds the mark
 * runs in a signal handler that interrupted one (shim/defer.c): it makes
 * the real call, queues its bookkeeping with shim_defer() instead of
 * taking a lock its thread may hold, and the interrupted wrapper applies
 * the queue in shim_wrap_leave().
 */
extern __thread unsigned shim_depth __attribute__((tls_model("initial-exec")));
extern __thread unsigned shim_deferred_pushed
	__attribute__((tls_model("initial-exec")));
extern __thread unsigned shim_deferred_popped
	__attribute__((tls_model("initial-exec")));

enum shim_defer_op {
	SHIM_DEFER_CLOSE,	  /* fd, seen */
	SHIM_DEFER_CLOSE_RANGE,	  /* fd (first) .. fd2 (last) */
	SHIM_DEFER_DUP,		  /* fd (old) to fd2 (new) */
	SHIM_DEFER_CTL,		  /* fd2 (epfd), ctl_op, fd, event */
	SHIM_DEFER_SET_CREATED,	  /* fd (epfd), flags */
	SHIM_DEFER_FD_CREATED,	  /* fd, kind, create */
	SHIM_DEFER_FD_UNKNOWN,	  /* fd */
	SHIM_DEFER_BOUND,	  /* fd */
	SHIM_DEFER_LISTEN,	  /* fd, flags (the backlog) */
	SHIM_DEFER_SIGNALFD_MASK, /* fd, create.sigmask */
	SHIM_DEFER_FLAGS_LOST,	  /* fd (first) .. fd2 (last) */
};

/* One call whose bookkeeping waits for the interrupted wrapper. */
struct shim_deferred {
	enum shim_defer_op op;
	int fd, fd2;
	int ctl_op;
	int flags;
	uint32_t kind;
	struct epoll_event event;
	struct reg_seen seen;
	struct reg_create create;
};

/* Queue d (async-signal-safe; a full queue marks the registry incomplete). */
void shim_defer(const struct shim_deferred *d);
/* Apply the queue of this thread, in order (shim_wrap_leave() does). */
void shim_deferred_run(void);

/*
 * The registry_* calls of the same names (registry.h), made now, or queued
 * when this thread is inside a wrapper already.  errno is preserved.
 */
void shim_record_fd_created(int fd, uint32_t kind, const struct reg_create *c);
void shim_record_fd_unknown(int fd);
void shim_record_socket_bound(int fd);
void shim_record_socket_listen(int fd, int backlog);
void shim_record_signalfd_mask(int fd, uint64_t mask);


/*
 * A flag change that succeeded (fcntl, ioctl): registry_fd_cloexec(),
 * registry_file_setfl() or registry_file_flag(), inline (a load or two
 * and a plain store: the program's F_SETFL/F_SETFD/FIONBIO pay little);
 * in a signal handler inside a wrapper of its thread, whose queued
 * records may yet create or replace fd, the flags of fd are lost instead
 * (shim_fd_flags_lost(), shim/fdflags.c).  errno is untouched.
 */
enum shim_fl {
	SHIM_FL_CLOEXEC,  /* F_SETFD, FIOCLEX, FIONCLEX: arg FD_CLOEXEC on */
	SHIM_FL_SETFL,	  /* F_SETFL: arg as given */
	SHIM_FL_NONBLOCK, /* FIONBIO: arg on */
	SHIM_FL_ASYNC,	  /* FIOASYNC: arg on */
};
void shim_fd_flags_lost(int fd);

static inline void shim_record_fd_flags(int fd, enum shim_fl what, int arg)
{
	if (shim_busy)
		return;
	if (__builtin_expect(shim_depth, 0)) {
		shim_fd_flags_lost(fd);
		return;
	}
	switch (what) {
	case SHIM_FL_CLOEXEC:
		registry_fd_cloexec(fd, arg != 0);
		break;
	case SHIM_FL_SETFL:
		registry_file_setfl(fd, arg);
		break;
	case SHIM_FL_NONBLOCK:
		registry_file_flag(fd, O_NONBLOCK, arg != 0);
		break;
	case SHIM_FL_ASYNC:
		registry_file_flag(fd, O_ASYNC, arg != 0);
		break;
	}
}

/* Enter a wrapper's bookkeeping; false: re-entered, use shim_defer(). */
static inline bool shim_wrap_enter(void)
{
	if (shim_depth)
		return false;
	shim_depth = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return true;
}

/* Leave it, every lock released: apply what handlers queued meanwhile. */
static inline void shim_wrap_leave(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	/* Queued records first, the mark still set (shim_deferred_run). */
	if (__builtin_expect(shim_deferred_pushed != shim_deferred_popped, 0)) {
		shim_deferred_run();
		return;
	}
	shim_depth = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (__builtin_expect(shim_deferred_pushed != shim_deferred_popped, 0))
		shim_deferred_run();
}

/*
 * Move fd, which the shim itself created, above the numbers programs use
 * (RLIMIT_NOFILE - 64, or half the limit when that is small), close-on-exec,
 * closing the original.  Returns the new number, or fd when no higher one is
 * free.  errno is preserved.
 */
int shim_fd_high(int fd);

/*
 * A descriptor the shim creates for itself, unseen by the program's
 * dup2()/dup3(): shim_own_begin() before the creating call, and
 * shim_own_end(fd) after it (fd < 0 too), which moves fd high
 * (shim_fd_high) and returns it.  A section (a whole dump) makes the
 * program's dup2s take the counted path once instead of at each
 * creation.  The program's dup2/dup3 wrappers run their call between
 * how = shim_prog_dup_enter() and shim_prog_dup_leave(how), which wait
 * while such a creation is under way.  See ownfd.h and real.c.
 */
void shim_own_init(void);
void shim_own_fork_child(void);
void shim_own_section_begin(void);
void shim_own_section_end(void);
void shim_own_begin(void);
int shim_own_end(int fd);
int shim_prog_dup_slow(void);
void shim_prog_dup_counted_leave(void);
extern int shim_dup_careful;
extern __thread int *shim_dup_busy __attribute__((tls_model("initial-exec")));

/* 1: the thread's slot marks the call (no section), 2: counted. */
static inline int shim_prog_dup_enter(void)
{
	int *busy = shim_dup_busy;
	if (busy) {
		int b = __atomic_load_n(busy, __ATOMIC_RELAXED);
		__atomic_store_n(busy, b + 1, __ATOMIC_RELAXED);
		/* a section's membarrier orders this store and that load */
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&shim_dup_careful, __ATOMIC_RELAXED))
			return 1;
		__atomic_store_n(busy, b, __ATOMIC_RELEASE);
	}
	return shim_prog_dup_slow();
}

static inline void shim_prog_dup_leave(int how)
{
	if (how == 1) {
		int *busy = shim_dup_busy;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		__atomic_store_n(busy, __atomic_load_n(busy, __ATOMIC_RELAXED) - 1,
				 __ATOMIC_RELEASE);
	} else {
		shim_prog_dup_counted_leave();
	}
}
#define OWN_CREATE(call) (shim_own_begin(), shim_own_end(call))

/* Load-time set-up: configuration, atfork handlers, inherited sets. */
void shim_init(void);

/*
 * The backtrace of at most depth frames from a wrapper's caller (caller: the
 * wrapper's __builtin_return_address(0)), interned; 0 when depth is 0 or the
 * capture failed.  Depth 1 is the call site alone, without unwinding.
 */
uint32_t shim_backtrace(uintptr_t caller, unsigned depth);

/*
 * Recorder hooks (recorder/): start the thread when the first set exists,
 * or at the first epoll_ctl of a process that created none (a forked
 * child using its parent's sets, a program using only inherited ones):
 * shim_recorder_live is 1 while this process's thread runs (0 again in a
 * forked child), one load on epoll_ctl's path.
 */
extern int shim_recorder_live;
void shim_recorder_need(void);
void shim_recorder_fork_prepare(void);
void shim_recorder_fork_parent(void);
void shim_recorder_fork_child(void);

/* Signal handling of the checkpoint signal (shim/signal.c). */
void shim_signal_init(void);

/*
 * exec keeps an ignored signal ignored but resets a caught one to SIG_DFL,
 * and the shim's handler stands in the kernel where the program asked for
 * SIG_IGN.  shim_signal_exec_begin(), just before an exec: when the
 * program ignores the checkpoint signal and the kernel holds the shim's
 * handler for it, puts SIG_IGN there and returns true;
 * shim_signal_exec_end(true) after a failed exec puts the handler back
 * (errno kept).  shim_signal_spawn_begin() and shim_signal_spawn_end(held)
 * do the same around posix_spawn, system() and popen(), whose child glibc
 * resets to SIG_DFL every signal caught in the parent: counted, for
 * threads that spawn at once.
 */
bool shim_signal_exec_begin(void);
void shim_signal_exec_end(bool changed);
bool shim_signal_spawn_begin(void);
void shim_signal_spawn_end(bool held);

#endif
