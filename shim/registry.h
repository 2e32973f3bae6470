/* SPDX-License-Identifier: MIT */
/*
 * The shadow registry: what the shim knows of the process's epoll state,
 * modelled on the kernel, not on the API.
 *
 * - A file (struct reg_file) is an open file description the shim saw being
 *   created or duplicated; the fd table maps fd numbers to files and counts
 *   the references, so close() drops a file's watches only when its last
 *   descriptor goes, as the kernel does.
 * - A watch is keyed like an epitem: (file, fd number given to ADD).
 * - A file whose references the shim cannot count exactly (inherited,
 *   shared with a forked process, first seen at ADD) is "shared": losing its
 *   last known descriptor marks its watches uncertain instead of dropping
 *   them, and the recorder asks the kernel.
 *
 * Nothing here calls an interposed libc function: this file is unit-tested
 * without LD_PRELOAD.  Every entry point is thread-safe; the epoll_ctl path
 * takes one ctl stripe of the set concerned across the real call and that
 * set's lock around its bookkeeping, no global lock.  Allocation failures
 * never propagate: the registry marks itself incomplete and carries on.
 */
#ifndef EPOLLCR_REGISTRY_H
#define EPOLLCR_REGISTRY_H

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "epollcr_image.h"

/* reg_file.flags */
#define REG_FILE_SHARED 0x1 /* references may exist that the shim never saw */
#define REG_FILE_DEAD 0x2   /* released; the object waits for reuse */
#define REG_FILE_BOUND 0x4  /* the program called bind() on it */
#define REG_FILE_RELEASING 0x8 /* its last reference went; watches going */

/*
 * How a file was created, as far as recreating it needs.  24 bytes: the
 * per-kind fields share a union (a file has one kind), so that a file is
 * 72 bytes and each costs the registry an 80-byte allocation (issue 14
 * item 6).
 */
struct reg_create {
	int32_t flags;	  /* SOCK_/EFD_/TFD_/SFD_/O_/EPOLL_ flags given */
	int32_t backlog;  /* socket: listen() backlog, -1 before listen() */
	union {
		struct {		  /* socket; pipe_end, peer_fd: pipe too */
			int32_t protocol; /* socket: protocol */
			int32_t peer_fd;  /* pipe, socketpair: the other end's
					   * fd at creation */
			uint8_t domain;	  /* socket: AF_* (below AF_MAX) */
			uint8_t type;	  /* socket: SOCK_* without the flags */
			uint8_t pipe_end; /* pipe: 0 read end, 1 write end;
					   * socketpair: 0/1 */
			uint8_t accepted; /* socket: returned by accept() */
		};
		int32_t clockid;  /* timerfd: CLOCK_* */
		uint64_t sigmask; /* signalfd: bit n-1 for signal n */
	};
};

/*
 * reg_file.fl: the file's status flags (the kernel's f_flags: access mode,
 * O_NONBLOCK, O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME) in 16 bits, for the
 * kinds whose creation sets them from the call's flags alone (sockets,
 * pipes), followed through fcntl(F_SETFL) and ioctl(FIONBIO, FIOASYNC).
 * Without REG_FL_KNOWN (another kind, a file adopted, inherited or shared
 * with another process, a change the shim could not follow) the recorder
 * reads them from the kernel.  registry_fd_fdinfo_flags() decodes them.
 */
#define REG_FL_KNOWN 0x8000u

struct reg_set;

struct reg_file {
	uint32_t gen;		/* bumped each time the object is reused */
	uint32_t refs;		/* fds of this process known to refer to it */
	uint32_t nwatch;	/* watches keyed on it, in every set */
	uint8_t kind;		/* enum image_kind; OTHER when not known */
	uint8_t flags;		/* REG_FILE_* */
	uint16_t fl;		/* REG_FL_*: its status flags, when known */
	int32_t hint_tfd;	/* tfd of its most recent watch */
	struct reg_set *hint_set; /* set of its most recent watch */
	struct reg_set *set;	/* the set itself, when kind is EPOLL */
	struct reg_file *next_free; /* free list link */
	struct reg_create create;
};

/* One watch, as the shim saw it registered. 40 bytes. */
struct reg_watch {
	struct reg_watch *next;	/* hash chain (or free list) in its set */
	struct reg_file *file;	/* the watched file (key, with tfd) */
	uint64_t data;		/* epoll_data as passed */
	int32_t tfd;		/* fd number given to ADD (key, with file) */
	uint32_t events;	/* events as passed to the last ADD/MOD */
	uint32_t bt_add;	/* backtrace id of the ADD, 0 when none */
	uint32_t bt_mod : 31;	/* backtrace id of the last MOD, 0 when none */
	uint32_t uncertain : 1;	/* the file may be gone: ask the kernel */
};

/* A read-only view of a watch, handed to walkers. */
struct reg_watch_view {
	int32_t tfd;
	uint32_t events;	/* as passed */
	uint64_t data;
	bool uncertain;
	const struct reg_file *file; /* stable during the walk */
	uint32_t bt_add, bt_mod;
};

/*
 * Per-set walk callback, called with the set locked: the set does not change
 * (no epoll_ctl of the program completes on it) until it returns.  set_file
 * is the set's own file; fds/nfds every fd number known to refer to it.
 * Return 0 to go on, anything else to stop the walk with that value.
 */
typedef int (*registry_set_fn)(void *ctx, struct reg_set *set,
			       const struct reg_file *set_file);
typedef int (*registry_watch_fn)(void *ctx, const struct reg_watch_view *w);

/* Make the registry usable; idempotent and thread-safe. Returns 0/-ENOMEM. */
int registry_init(void);

/* An epoll set was created at epfd with epoll_create1 flags. */
void registry_set_created(int epfd, int flags);

/*
 * Walk the sets reachable from root through nested watches (root first),
 * breadth first, each set visited once and locked while fn runs, at most
 * max_sets sets: terminates on any shadow, cyclic ones included.  fn gets
 * the depth (0 for root).  Returns 0, -ENOMEM, or fn's first non-zero value.
 */
int registry_walk_nested(struct reg_set *root,
			 int (*fn)(void *ctx, struct reg_set *set,
				   unsigned depth),
			 void *ctx, unsigned max_sets);

/* The set of a file of kind EPOLL, or NULL. */
struct reg_set *registry_set_of(const struct reg_file *file);

/* A file was created at fd with kind and parameters (copied). */
void registry_fd_created(int fd, uint32_t kind, const struct reg_create *c);

/*
 * newfd now refers to what oldfd refers to (dup, dup2, dup3, F_DUPFD);
 * whatever newfd referred to before lost that reference.
 */
void registry_fd_dup(int oldfd, int newfd);

/* What a slot of the fd table held, and which incarnation of the object. */
struct reg_seen {
	struct reg_file *file;	/* NULL: nothing known at that fd */
	uint32_t gen;		/* file->gen when it was read */
};

/*
 * The fd table: 2^19 leaves of 2^12 slots cover every int fd number.  It is
 * read lock-free, inline, so that a wrapper called on an fd the shim does
 * not track pays no call and touches one more cache line at most.
 */
#define REG_FDT_LEAF_BITS 12
#define REG_FDT_LEAF_SIZE (1u << REG_FDT_LEAF_BITS)
#define REG_FDT_TOP_SIZE (1u << (31 - REG_FDT_LEAF_BITS))

/*
 * Beside each slot, a byte: the fd's FD_CLOEXEC, and whether the shim
 * knows it (set at each install from the creating or duplicating call,
 * followed through F_SETFD, FIOCLEX/FIONCLEX and close_range's
 * CLOSE_RANGE_CLOEXEC).  A byte, not a bit: written with a plain store,
 * no locked instruction on the program's fcntl(F_SETFD).
 */
#define REG_FDFL_CLOEXEC 0x1
#define REG_FDFL_KNOWN 0x2

struct reg_fdt_leaf {
	struct reg_file *slot[REG_FDT_LEAF_SIZE];
	uint8_t fdfl[REG_FDT_LEAF_SIZE]; /* REG_FDFL_* */
};

extern struct reg_fdt_leaf *registry_fdt[REG_FDT_TOP_SIZE];

/* The leaf holding fd's slot (none created), or NULL; any fd number. */
static inline struct reg_fdt_leaf *registry_fdt_leaf(int fd)
{
	if (fd < 0)
		return NULL;
	return __atomic_load_n(&registry_fdt[(unsigned)fd >> REG_FDT_LEAF_BITS],
			       __ATOMIC_ACQUIRE);
}

/* The file at fd (no reference taken), or NULL; any fd number. */
static inline struct reg_file *registry_fd_lookup(int fd)
{
	struct reg_fdt_leaf *leaf = registry_fdt_leaf(fd);

	if (!leaf)
		return NULL;
	return __atomic_load_n(&leaf->slot[fd & (REG_FDT_LEAF_SIZE - 1)],
			       __ATOMIC_ACQUIRE);
}

/* Set fd's FD_CLOEXEC byte in its leaf: cloexec 0 or 1, or -1 for unknown. */
static inline void registry_fdt_set_cloexec(struct reg_fdt_leaf *leaf, int fd,
					    int cloexec)
{
	uint8_t v = cloexec < 0 ? 0
				: (uint8_t)(REG_FDFL_KNOWN |
					    (cloexec ? REG_FDFL_CLOEXEC : 0));
	__atomic_store_n(&leaf->fdfl[(unsigned)fd & (REG_FDT_LEAF_SIZE - 1)], v,
			 __ATOMIC_RELAXED);
}

/*
 * reg_file.fl's encoding: the access mode in bits 0-1, O_APPEND,
 * O_NONBLOCK, O_ASYNC, O_DIRECT, O_NOATIME shifted down by 8 (bits 2, 3,
 * 5, 6, 10), REG_FL_KNOWN: no branch either way.
 */
#define REG_FL_SHIFTED                                                        \
	((O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME) >> 8)
#define REG_FL_SETFL_MASK (O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME)

static inline uint16_t registry_fl_encode(uint32_t f)
{
	return (uint16_t)((f & O_ACCMODE) | ((f >> 8) & REG_FL_SHIFTED));
}

static inline uint32_t registry_fl_decode(uint16_t fl)
{
	return (fl & O_ACCMODE) | ((uint32_t)(fl & REG_FL_SHIFTED) << 8);
}

/*
 * Clear the bits clear of f->fl and set set, while its flags are known.
 * A load and a store, no locked instruction (the program's F_SETFL pays
 * nothing more): two threads changing one file's flags at once leave the
 * last store, whose order the kernel may not share, and a change racing
 * registry_fd_flags_lost() may leave the flags known.  Both need calls
 * the program itself does not order.
 */
static inline void registry_file_fl_update(struct reg_file *f, uint16_t clear,
					   uint16_t set)
{
	uint16_t old = __atomic_load_n(&f->fl, __ATOMIC_RELAXED);
	uint16_t new = (uint16_t)((old & ~clear) | set);
	if ((old & REG_FL_KNOWN) && new != old)
		__atomic_store_n(&f->fl, new, __ATOMIC_RELAXED);
}

/* fcntl(fd, F_SETFL, arg) succeeded. */
static inline void registry_file_setfl(int fd, int arg)
{
	struct reg_file *f = registry_fd_lookup(fd);
	if (f)
		registry_file_fl_update(
			f, registry_fl_encode(REG_FL_SETFL_MASK),
			registry_fl_encode((uint32_t)arg & REG_FL_SETFL_MASK));
}

/* FIONBIO (O_NONBLOCK) or FIOASYNC (O_ASYNC) set (on) or cleared flag. */
static inline void registry_file_flag(int fd, uint32_t flag, bool on)
{
	struct reg_file *f = registry_fd_lookup(fd);
	uint16_t bits = registry_fl_encode(flag & REG_FL_SETFL_MASK);
	if (f)
		registry_file_fl_update(f, bits, on ? bits : 0);
}

/* F_SETFD, FIOCLEX, FIONCLEX succeeded on fd (nothing when untracked). */
static inline void registry_fd_cloexec(int fd, bool cloexec)
{
	/* A leaf is never freed. */
	struct reg_fdt_leaf *leaf = registry_fdt_leaf(fd);

	if (leaf && __atomic_load_n(&leaf->slot[fd & (REG_FDT_LEAF_SIZE - 1)],
				    __ATOMIC_ACQUIRE))
		registry_fdt_set_cloexec(leaf, fd, cloexec);
}

/*
 * The file fd refers to, for a caller about to close fd.  Pass it to
 * registry_fd_closed() afterwards: a number reused by another thread in
 * between, even by a recycled object at the same address, is left alone.
 */
static inline struct reg_seen registry_fd_peek(int fd)
{
	struct reg_seen seen = { .file = registry_fd_lookup(fd), .gen = 0 };

	if (seen.file)
		seen.gen = __atomic_load_n(&seen.file->gen, __ATOMIC_ACQUIRE);
	return seen;
}

/*
 * registry_fd_dup() whose new descriptor's FD_CLOEXEC is known: cloexec
 * (dup, dup2, F_DUPFD: false; dup3 with O_CLOEXEC, F_DUPFD_CLOEXEC: true).
 * registry_fd_dup() leaves it unknown (a signal handler's deferred call).
 */
void registry_fd_dup_cloexec(int oldfd, int newfd, bool cloexec);

/*
 * Descriptor and file flags that changed (all async-signal-safe, lock-free,
 * and nothing for an fd the shim does not track):
 * - registry_fd_cloexec: F_SETFD, FIOCLEX, FIONCLEX succeeded on fd;
 * - registry_fd_cloexec_range: close_range(first, last, CLOSE_RANGE_CLOEXEC);
 * - registry_file_setfl: fcntl(fd, F_SETFL, arg) succeeded;
 * - registry_file_flag: FIONBIO (O_NONBLOCK) or FIOASYNC (O_ASYNC) set
 *   (on) or cleared flag on fd's file;
 * - registry_fd_flags_lost: the file's flags and the fd's FD_CLOEXEC of
 *   every fd in [first, last] are unknown from now on (a change the shim
 *   could not follow in order: a signal handler's).
 */
void registry_fd_cloexec_range(unsigned int first, unsigned int last);
void registry_fd_flags_lost(unsigned int first, unsigned int last);
/*
 * Another process may hold any file of the process from now on (a vfork,
 * clone or posix_spawn child, which can change a file's flags, and may
 * exec with it): no file's flags are known any more.
 */
void registry_files_flags_shared(void);
/*
 * fd was sent to another process (SCM_RIGHTS): its file may be changed
 * there, and outlive this process's last descriptor (with its watches);
 * an epoll set may be changed there too.
 */
void registry_fd_sent(int fd);
/* registry_fd_cloexec, registry_file_setfl, registry_file_flag: inline,
 * after the fd table below. */

/*
 * What /proc/self/fdinfo/FD would show as `flags:` (the file's f_flags,
 * with O_CLOEXEC when the fd has FD_CLOEXEC) and the file's kind, when the
 * shim knows both: true, *kind and *flags set.  False for an fd the shim
 * does not track, a file whose flags it does not know (REG_FL_KNOWN) or
 * that another process may share (REG_FILE_SHARED), an fd whose
 * FD_CLOEXEC it does not know.
 */
bool registry_fd_fdinfo_flags(int fd, uint32_t *kind, uint32_t *flags);

/* fd was closed; seen is what registry_fd_peek() returned before. */
void registry_fd_closed(int fd, struct reg_seen seen);

/* Every fd in [first, last] was closed (close_range without CLOEXEC). */
void registry_fd_closed_range(unsigned int first, unsigned int last);

/* fd holds a number the shim did not see being created (recvmsg...). */
void registry_fd_unknown(int fd);

/* bind(fd, ...) succeeded. */
void registry_socket_bound(int fd);

/* listen(fd, backlog) succeeded. */
void registry_socket_listen(int fd, int backlog);

/* signalfd(fd, mask) changed an existing signalfd's mask. */
void registry_signalfd_mask(int fd, uint64_t mask);

/*
 * The set that fd refers to, locked, or NULL when fd is not a known epoll
 * fd.  Callers hold it around registry_ctl_locked() (after the real
 * epoll_ctl, within registry_ctl_begin/end), then unlock it.
 */
struct reg_set *registry_set_lock(int epfd);
void registry_set_unlock(struct reg_set *set);

struct reg_stripe;

/* One epoll_ctl in flight (registry_ctl_begin() fills it). */
struct reg_ctl {
	struct reg_file *file;	/* epfd's file when the call began */
	struct reg_set *set;	/* its set, or NULL when unknown */
	struct reg_stripe *stripe; /* held, or NULL */
};

/*
 * Order epoll_ctl(epfd, ..., fd, ...) with every other call on the same key
 * (epfd's set, fd): begin before the real call; after it, on success,
 * registry_ctl_lock_set() gives the set locked (NULL: unknown or destroyed
 * meanwhile, for registry_ctl_locked() to adopt), and registry_ctl_end()
 * after the registry was updated and the set unlocked.  The recorder's
 * consistent cut (registry_lock_all()) waits for every call in between.
 */
void registry_ctl_begin(struct reg_ctl *c, int epfd, int fd);
struct reg_set *registry_ctl_lock_set(struct reg_ctl *c);
void registry_ctl_end(struct reg_ctl *c);

/*
 * Record a successful epoll_ctl(epfd, op, fd, ev) on set (locked, from
 * registry_set_lock(), or NULL when epfd was not known: the set is then
 * adopted).  bt is the call site's backtrace id (0: none).
 */
void registry_ctl_locked(struct reg_set *set, int epfd, int op, int fd,
			 const struct epoll_event *ev, uint32_t bt);

/*
 * Adopt an epoll set that exists without the shim having seen it created
 * (inherited across exec): the set, and a watch for each of its fdinfo
 * lines, all marked shared/uncertain so that the recorder asks the kernel.
 */
void registry_adopt_set(int epfd);
void registry_adopt_watch(int epfd, int tfd, uint32_t events, uint64_t data);

/* Take the fd-operation lock shared (close_range: always); true if taken. */
bool registry_fdop_begin_many(void);
/* Release what registry_fdop_begin_many() took. */
void registry_fdop_unlock(void);

/*
 * Does releasing file drop watches?  Its own, and for an epoll file those
 * of its set (the epoll file itself is seldom watched).
 */
static inline bool registry_fdop_needed(const struct reg_file *file)
{
	return file && (__atomic_load_n(&file->nwatch, __ATOMIC_RELAXED) ||
			__atomic_load_n(&file->kind, __ATOMIC_RELAXED) ==
				IMAGE_KIND_EPOLL);
}

/*
 * Around a close(), dup2() or dup3() that may release a watched file or an
 * epoll set (the kernel then drops their watches), wrappers hold the
 * fd-operation lock shared, so that the recorder's consistent cut excludes
 * them.  begin returns true when it took the lock (only for files that
 * registry_fdop_needed()): pass that to end.
 */
static inline bool registry_fdop_begin(const struct reg_file *file)
{
	if (!registry_fdop_needed(file))
		return false;
	return registry_fdop_begin_many();
}

static inline void registry_fdop_end(bool locked)
{
	if (locked)
		registry_fdop_unlock();
}

/*
 * Lock every set (and the list of sets) so that no epoll_ctl of the program
 * completes until registry_unlock_all(), and no close/dup2 of a watched file
 * either: the recorder's consistent cut.
 * While they are held, registry_walk_sets_locked() walks without locking.
 */
void registry_lock_all(void);
void registry_unlock_all(void);
int registry_walk_sets_locked(registry_set_fn fn, void *ctx);

/*
 * Calls of a signal handler that interrupted a wrapper of its thread
 * (shim/defer.c) make their real call at once, also in the middle of a
 * cut, while their bookkeeping waits for the interrupted wrapper to leave.
 * Such a call is "open" from before its real call until its bookkeeping is
 * applied: begin() before the real call (it waits, 100 ms at most, while
 * the recorder holds its cut), queued() once per queued record, end() when
 * the handler's wrapper returns and once per applied record.  All are
 * async-signal-safe.
 */
void registry_deferred_begin(void);
void registry_deferred_end(void);
/* begin() for a queued record, whose real call is made: no wait. */
void registry_deferred_queued(void);
/* A forked child: only this thread's n queued records are open. */
void registry_deferred_fork_child(unsigned n);

/*
 * The recorder's cut, registry_lock_all() held: clean_begin() is true when
 * no such call is open and stores the count begun so far in *gen;
 * still_clean(gen), just before registry_unlock_all(), is true when none
 * has begun since (a call that changes watches: begin(), not queued()).  Otherwise the kernel's view read meanwhile may hold a
 * change the registry does not: read again.  registry_wait_deferred()
 * (no lock held) waits until none is open, at most timeout_ms.
 */
bool registry_cut_clean_begin(unsigned *gen);
bool registry_cut_still_clean(unsigned gen);
void registry_wait_deferred(unsigned timeout_ms);

/*
 * The backtrace id of the last registration of the watch (epfd's set,
 * locked; the file now at fd, fd) when its innermost frame is caller: the
 * same call site MODs again (an EPOLLONESHOT re-arm loop), so the shim
 * keeps the stack it has instead of unwinding again.  0 otherwise.
 */
uint32_t registry_same_call_site(struct reg_set *set, int fd,
				 uintptr_t caller);

/* Fork handlers: no lock stays held in the child; files become shared. */
void registry_fork_prepare(void);
void registry_fork_parent(void);
void registry_fork_child(void);

/*
 * Walk every set (each locked in turn while fn runs).  Returns 0, or the
 * first non-zero value fn returned.
 */
int registry_walk_sets(registry_set_fn fn, void *ctx);

/*
 * Walk the watches of a set from within a registry_set_fn (the set is
 * locked).  Visits every watch exactly once, whatever the hash state.
 */
int registry_walk_watches(struct reg_set *set, registry_watch_fn fn,
			  void *ctx);

/* Find, in a locked set, the watch keyed (file, tfd); NULL when none. */
const struct reg_watch *registry_find_watch(struct reg_set *set,
					    const struct reg_file *file,
					    int tfd);

/* How many watches of a locked set carry this tfd (several: stale keys). */
unsigned registry_count_tfd(struct reg_set *set, int tfd);

/* The file at fd (no reference taken: valid while the fd stays), or NULL. */
const struct reg_file *registry_file_at(int fd);

/*
 * Call fn(ctx, fd) for every fd known to refer to file, in increasing
 * order, at most max_calls times.  Returns how many calls were made.
 */
unsigned registry_fds_of(const struct reg_file *file,
			 void (*fn)(void *ctx, int fd), void *ctx,
			 unsigned max_calls);

/* Highest fd number the registry has seen, or -1. */
int registry_max_fd(void);

/* Facts about a set, for the recorder and tests. */
uint32_t registry_set_nwatch(const struct reg_set *set);
int registry_set_flags(const struct reg_set *set);
bool registry_set_shared(const struct reg_set *set);

/* True once any allocation failed: the shadow is not complete. */
bool registry_incomplete(void);
/* Mark the registry incomplete (a failure elsewhere lost something). */
void registry_mark_incomplete(void);

/*
 * Allocation failure injection for tests: after `after` more successful
 * allocations, the next `count` fail.  count 0 disables.
 */
void registry_fail_alloc(unsigned after, unsigned count);

/*
 * Tests only: fn is called when an fd-table install has just taken the
 * place of a watched file (the window between a closer's real close and
 * the release of that file in the registry); NULL removes it.
 */
void registry_test_install_hook(void (*fn)(void));

/* Bytes the registry holds for sets, watches and hash tables (not files). */
size_t registry_watch_bytes(void);

/*
 * Forget everything (tests only): not thread-safe, frees all memory.
 */
void registry_reset(void);

#endif
