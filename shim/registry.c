// SPDX-License-Identifier: MIT
/*
 * The shadow registry (see registry.h for the model).
 *
 * Locks, in the order they may be taken:
 *   fdop_lock (shared by closes of watched files and by installs over
 *   them, exclusive for a dump)
 *   -> the unknown-set ctl stripes -> sets_lock (the list of sets)
 *   -> per set: its ctl stripes, then its lock -> free_lock.
 * An epoll_ctl holds one stripe across the real call and takes the set's
 * lock only around its bookkeeping (see registry_ctl_begin).
 * The fd table is lock-free: slots change with atomic exchange and
 * compare-and-swap, so a close() racing another thread's open of the same
 * number cannot drop the newcomer.  File and set objects are never returned
 * to malloc while the process lives (they are reused), so a pointer read
 * from the fd table stays a valid object even when the program races a
 * close against an epoll_ctl of the same fd.
 *
 * Everything an interposed call reaches is in this file, so that the hot
 * path is one translation unit; registry_fork.c holds the fork handlers and
 * registry_walk.c the walks for the recorder and the shim's report (shared
 * state in registry_internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <time.h>

#include "registry_internal.h"

/* One attempt at a stripe: true when it is now ours. */
static inline bool stripe_try(struct reg_stripe *st)
{
	return !__atomic_load_n(&st->locked, __ATOMIC_RELAXED) &&
	       !__atomic_exchange_n(&st->locked, 1, __ATOMIC_ACQUIRE);
}

/* Between two attempts: pause STRIPE_SPINS times, then yield. */
static inline void stripe_backoff(unsigned spins)
{
	if (spins < STRIPE_SPINS) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} else {
		sched_yield();
	}
}

static void stripe_lock(struct reg_stripe *st)
{
	for (unsigned spins = 0; !stripe_try(st); spins++)
		stripe_backoff(spins);
}

static void stripe_unlock(struct reg_stripe *st)
{
	__atomic_store_n(&st->locked, 0, __ATOMIC_RELEASE);
}

struct reg_fdt_leaf *registry_fdt[REG_FDT_TOP_SIZE];
static int fdt_max = -1;

/* Writers (the recorder, fork) must not starve behind busy closers. */
pthread_rwlock_t fdop_lock =
	PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
pthread_mutex_t sets_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * epoll_ctl calls on one key (set, fd number) must reach the registry in the
 * kernel's order; calls on different keys commute.  A stripe of the set,
 * chosen by the fd number, is held across the real call; the set's own lock
 * only around the short update of its table, so that threads sharing a set
 * run their syscalls in parallel as they do without the shim, and threads
 * on separate sets touch only their own set's cache lines.  Calls on an
 * epoll fd the shim does not know use the unknown-set stripes.
 */
struct reg_stripe unknown_stripes[REG_SET_STRIPES];
struct reg_set *sets_head;

/*
 * The consistent cut must not starve behind busy epoll_ctl callers: the
 * stripes are test-and-set locks, and a caller that releases one takes the
 * next (often the same) at once, while the cut needs every one of them in
 * turn (with 4 threads on one fd, taking them took 12-55 ms on average, up
 * to 185 ms).  So a cut sets cut_pending before it takes the stripes:
 * callers arriving meanwhile wait until the cut ends (cut_wait()) instead
 * of taking a stripe, and the cut waits only for the calls already in
 * flight.  Set only by the holder of fdop_lock exclusive: one cut at a
 * time, and no waiter holds fdop_lock shared.
 */
int cut_pending;

pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reg_file *free_files;
struct reg_set *free_sets;

static bool lost_something;
static size_t watch_bytes;

static unsigned fail_after, fail_count;
static void (*install_hook)(void); /* registry_test_install_hook() */

/* Allocation with failure injection; failures mark the registry. */
/* An injected allocation failure is due (registry_fail_alloc()). */
static bool reg_fail_now(void)
{
	if (__atomic_load_n(&fail_count, __ATOMIC_RELAXED)) {
		if (__atomic_load_n(&fail_after, __ATOMIC_RELAXED) == 0) {
			__atomic_sub_fetch(&fail_count, 1, __ATOMIC_RELAXED);
			registry_mark_incomplete();
			return true;
		}
		__atomic_sub_fetch(&fail_after, 1, __ATOMIC_RELAXED);
	}
	return false;
}

static void *reg_calloc(size_t n, size_t size)
{
	void *p = reg_fail_now() ? NULL : calloc(n, size);
	if (!p)
		registry_mark_incomplete();
	return p;
}

/* A zeroed object of size bytes aligned to align (a power of two). */
static void *reg_zalloc_aligned(size_t align, size_t size)
{
	void *p = reg_fail_now() ? NULL : aligned_alloc(align, size);
	if (!p) {
		registry_mark_incomplete();
		return NULL;
	}
	memset(p, 0, size);
	return p;
}

static void account(ssize_t delta)
{
	__atomic_add_fetch(&watch_bytes, (size_t)delta, __ATOMIC_RELAXED);
}

void registry_test_install_hook(void (*fn)(void))
{
	__atomic_store_n(&install_hook, fn, __ATOMIC_RELEASE);
}

void registry_fail_alloc(unsigned after, unsigned count)
{
	__atomic_store_n(&fail_after, after, __ATOMIC_RELAXED);
	__atomic_store_n(&fail_count, count, __ATOMIC_RELAXED);
}

bool registry_incomplete(void)
{
	return __atomic_load_n(&lost_something, __ATOMIC_RELAXED);
}

void registry_mark_incomplete(void)
{
	__atomic_store_n(&lost_something, true, __ATOMIC_RELAXED);
}

size_t registry_watch_bytes(void)
{
	return __atomic_load_n(&watch_bytes, __ATOMIC_RELAXED);
}

int registry_init(void)
{
	return 0;
}

/* ---- fd table ---------------------------------------------------------- */

/* The slot of fd, creating its leaf when create is set; NULL otherwise. */
static struct reg_file **fdt_slot(int fd, bool create)
{
	if (fd < 0)
		return NULL;
	unsigned top = (unsigned)fd >> REG_FDT_LEAF_BITS;
	struct reg_fdt_leaf *leaf =
		__atomic_load_n(&registry_fdt[top], __ATOMIC_ACQUIRE);
	if (!leaf) {
		if (!create)
			return NULL;
		struct reg_fdt_leaf *fresh = reg_calloc(1, sizeof(*fresh));
		if (!fresh)
			return NULL;
		if (__atomic_compare_exchange_n(&registry_fdt[top], &leaf, fresh,
						false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			leaf = fresh;
		else
			free(fresh);
	}
	int max = __atomic_load_n(&fdt_max, __ATOMIC_RELAXED);
	while (create && fd > max &&
	       !__atomic_compare_exchange_n(&fdt_max, &max, fd, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return &leaf->slot[fd & (REG_FDT_LEAF_SIZE - 1)];
}

struct reg_file *fdt_get(int fd)
{
	return registry_fd_lookup(fd);
}

int registry_max_fd(void)
{
	return __atomic_load_n(&fdt_max, __ATOMIC_RELAXED);
}

const struct reg_file *registry_file_at(int fd)
{
	return fdt_get(fd);
}

/* ---- files ------------------------------------------------------------- */

/* An 80-byte allocation per file (bench_dump's registry memory row). */
_Static_assert(sizeof(struct reg_file) <= 72, "struct reg_file grew");

static inline uint8_t file_flags(const struct reg_file *f)
{
	return __atomic_load_n(&f->flags, __ATOMIC_RELAXED);
}

static inline uint8_t file_kind(const struct reg_file *f)
{
	return __atomic_load_n(&f->kind, __ATOMIC_RELAXED);
}

static void file_init(struct reg_file *f, uint32_t kind, uint8_t flags,
		      const struct reg_create *c)
{
	/* gen survives reuse: a racing registry_fd_closed() compares it. */
	memset((char *)f + offsetof(struct reg_file, refs), 0,
	       sizeof(*f) - offsetof(struct reg_file, refs));
	__atomic_add_fetch(&f->gen, 1, __ATOMIC_RELEASE);
	f->refs = 1;
	f->kind = (uint8_t)kind;
	f->flags = flags;
	f->hint_tfd = -1;
	if (c)
		f->create = *c;
	else
		f->create.backlog = -1;
}

/*
 * A new file with one reference.  A recycled object is initialised under
 * free_lock, which is also what file_maybe_free() checks under: a late
 * file_maybe_free() on an object reused meanwhile sees it alive.
 */
static struct reg_file *file_new(uint32_t kind, uint8_t flags,
				 const struct reg_create *c)
{
	struct reg_file *f = NULL;

	pthread_mutex_lock(&free_lock);
	if (free_files) {
		f = free_files;
		free_files = f->next_free;
		file_init(f, kind, flags, c);
	}
	pthread_mutex_unlock(&free_lock);
	if (!f && (f = reg_calloc(1, sizeof(*f))))
		file_init(f, kind, flags, c);
	return f;
}

/* Recycle f when nothing refers to it any more. */
static void file_maybe_free(struct reg_file *f)
{
	pthread_mutex_lock(&free_lock);
	if (!(file_flags(f) & REG_FILE_DEAD) &&
	    __atomic_load_n(&f->refs, __ATOMIC_ACQUIRE) == 0 &&
	    __atomic_load_n(&f->nwatch, __ATOMIC_ACQUIRE) == 0 && !f->set) {
		__atomic_or_fetch(&f->flags, REG_FILE_DEAD, __ATOMIC_RELAXED);
		f->next_free = free_files;
		free_files = f;
	}
	pthread_mutex_unlock(&free_lock);
}

static void file_last_ref(struct reg_file *f);

static void file_get(struct reg_file *f)
{
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}

static void file_put(struct reg_file *f)
{
	if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
		file_last_ref(f);
}

/*
 * Forks begun (registry_fork_prepare) and finished (registry_fork_parent,
 * registry_fork_child; all three in registry_fork.c), and the latter as
 * this thread saw it at its last two installs in the fd table (newest
 * first).  See fork_raced().
 */
uint32_t forks_begun, forks_done;
static __thread uint32_t forks_seen[2];

/*
 * Did a fork perhaps copy into a child the file this thread just installed
 * in the fd table, without marking it shared?  Creating, dup'ing or
 * dup2'ing over a file without watches takes no lock: the real call may
 * complete before the fork's own while the bookkeeping lands after the
 * fork marked every file of the table shared; the child then holds a file
 * the parent believes it counts exactly, and would drop its watches at its
 * last close while the kernel keeps them.  True when a fork is under way,
 * or one finished since this thread's install before the previous one
 * (which preceded this call's real call, even when one real call installs
 * two files: pipe, socketpair).  Conservative: at most two files per
 * thread per fork are marked shared for nothing.  Called after the
 * install, so that a fork marking files at that moment either sees the
 * file or is seen here.
 */
static bool fork_raced(void)
{
	uint32_t done = __atomic_load_n(&forks_done, __ATOMIC_SEQ_CST);
	bool raced = __atomic_load_n(&forks_begun, __ATOMIC_SEQ_CST) != done ||
		     forks_seen[1] != done;

	forks_seen[1] = forks_seen[0];
	forks_seen[0] = done;
	return raced;
}

static __thread unsigned fdop_held; /* fdop_lock taken shared, nesting */

/*
 * Install f (whose reference the caller hands over) at fd.
 *
 * A watched file (or an epoll set) still at fd is most often one whose
 * close() is between its real call and its bookkeeping: the kernel gave
 * the number to this caller, and the exchange takes over the reference the
 * closer was about to drop, maybe the last one, whose watches the kernel
 * has dropped already.  The closer holds fdop_lock shared until its
 * bookkeeping is done, but not until this caller's: hold it too, so that
 * no consistent cut falls between the closer letting go and file_put()
 * below (the cut would see the kernel without the watches and the shadow
 * with them: a phantom watch).  Nested: dup2() over a watched file holds
 * it already.
 *
 * The fd's FD_CLOEXEC (cloexec 0, 1; -1: unknown) is set before the slot,
 * so that a reader who finds f finds it.
 */
static void fdt_install_fd(int fd, struct reg_file *f, int cloexec)
{
	struct reg_file **slot = fdt_slot(fd, true);
	if (!slot) {
		if (f)
			file_put(f);
		return;
	}
	registry_fdt_set_cloexec(registry_fdt_leaf(fd), fd, cloexec);
	struct reg_file *cur = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	bool locked = !fdop_held && registry_fdop_needed(cur) &&
		      registry_fdop_begin_many();
	struct reg_file *old = __atomic_exchange_n(slot, f, __ATOMIC_ACQ_REL);
	if (__builtin_expect(old != NULL, 0) &&
	    __atomic_load_n(&install_hook, __ATOMIC_ACQUIRE) &&
	    registry_fdop_needed(old))
		install_hook();
	if (f && fork_raced())
		__atomic_or_fetch(&f->flags, REG_FILE_SHARED, __ATOMIC_RELAXED);
	if (old)
		file_put(old);
	registry_fdop_end(locked);
}

static void fdt_install(int fd, struct reg_file *f)
{
	fdt_install_fd(fd, f, -1);
}

/*
 * The f_flags the kernel gives a new file of these kinds (checked against
 * /proc/self/fdinfo by test_shadow_flags): a socket O_RDWR and
 * SOCK_NONBLOCK; a pipe's read end O_RDONLY and O_NONBLOCK, its write end
 * O_WRONLY, O_NONBLOCK and O_DIRECT.  Other kinds: not known (0).
 */
static uint16_t fl_at_creation(uint32_t kind, const struct reg_create *c)
{
	if (!c)
		return 0;
	uint32_t given = (uint32_t)c->flags;
	switch (kind) {
	case IMAGE_KIND_SOCKET:
		return (uint16_t)(REG_FL_KNOWN |
				  registry_fl_encode(O_RDWR | (given & O_NONBLOCK)));
	case IMAGE_KIND_PIPE:
		return (uint16_t)(REG_FL_KNOWN |
				  registry_fl_encode(c->pipe_end
						    ? O_WRONLY | (given & (O_NONBLOCK |
									   O_DIRECT))
						    : O_RDONLY | (given & O_NONBLOCK)));
	default:
		return 0;
	}
}

void registry_fd_created(int fd, uint32_t kind, const struct reg_create *c)
{
	struct reg_file *f = file_new(kind, 0, c);
	if (f)
		f->fl = fl_at_creation(kind, c);
	/* Even without memory, the number's previous occupant is gone. */
	fdt_install_fd(fd, f, c ? (c->flags & O_CLOEXEC) != 0 : -1);
}

void registry_fd_unknown(int fd)
{
	fdt_install(fd, NULL);
}

static void fd_dup(int oldfd, int newfd, int cloexec)
{
	if (oldfd == newfd)
		return;
	struct reg_file *f = fdt_get(oldfd);
	if (f)
		file_get(f);
	if (f || fdt_get(newfd))
		fdt_install_fd(newfd, f, cloexec);
}

void registry_fd_dup(int oldfd, int newfd)
{
	fd_dup(oldfd, newfd, -1);
}

void registry_fd_dup_cloexec(int oldfd, int newfd, bool cloexec)
{
	fd_dup(oldfd, newfd, cloexec);
}

/*
 * Clip [first, *last] to the numbers the fd table may hold; false when
 * none of them is there.
 */
static bool fd_range_clip(unsigned first, unsigned *last)
{
	int max = registry_max_fd();
	if (max < 0 || first > (unsigned)max)
		return false;
	if (*last > (unsigned)max)
		*last = (unsigned)max;
	return true;
}

void registry_fd_cloexec_range(unsigned int first, unsigned int last)
{
	if (!fd_range_clip(first, &last))
		return;
	for (unsigned fd = first; fd <= last; fd++)
		registry_fd_cloexec((int)fd, true);
}

void registry_fd_flags_lost(unsigned int first, unsigned int last)
{
	if (!fd_range_clip(first, &last))
		return;
	for (unsigned fd = first; fd <= last; fd++) {
		struct reg_file *f = fdt_get((int)fd);
		if (!f)
			continue;
		__atomic_and_fetch(&f->fl, (uint16_t)~REG_FL_KNOWN,
				   __ATOMIC_RELAXED);
		registry_fdt_set_cloexec(registry_fdt_leaf((int)fd), (int)fd, -1);
	}
}

void fdt_each_file(void (*fn)(struct reg_file *f))
{
	int max = registry_max_fd();
	for (int fd = 0; fd <= max; fd++) {
		if (fdt_leaf_absent((unsigned)fd)) {
			fd += REG_FDT_LEAF_SIZE - 1; /* a whole empty leaf */
			continue;
		}
		struct reg_file *f = fdt_get(fd);
		if (f)
			fn(f);
	}
}

static void file_flags_unknown(struct reg_file *f)
{
	if (__atomic_load_n(&f->fl, __ATOMIC_RELAXED) & REG_FL_KNOWN)
		__atomic_and_fetch(&f->fl, (uint16_t)~REG_FL_KNOWN,
				   __ATOMIC_RELAXED);
}

void registry_files_flags_shared(void)
{
	fdt_each_file(file_flags_unknown);
}

void registry_fd_sent(int fd)
{
	struct reg_file *f = fdt_get(fd);
	if (!f)
		return;
	/* f may be reused meanwhile: marking another file costs reads. */
	__atomic_or_fetch(&f->flags, REG_FILE_SHARED, __ATOMIC_RELAXED);
	file_flags_unknown(f);
	struct reg_set *s = __atomic_load_n(&f->set, __ATOMIC_ACQUIRE);
	if (s)
		__atomic_store_n(&s->shared, true, __ATOMIC_RELAXED);
}

bool registry_fd_fdinfo_flags(int fd, uint32_t *kind, uint32_t *flags)
{
	struct reg_file *f = fdt_get(fd);
	struct reg_fdt_leaf *leaf = registry_fdt_leaf(fd);
	if (!f || !leaf)
		return false;
	uint16_t fl = __atomic_load_n(&f->fl, __ATOMIC_RELAXED);
	uint8_t fdfl = __atomic_load_n(
		&leaf->fdfl[(unsigned)fd & (REG_FDT_LEAF_SIZE - 1)],
		__ATOMIC_RELAXED);
	if (!(fl & REG_FL_KNOWN) || (file_flags(f) & REG_FILE_SHARED) ||
	    !(fdfl & REG_FDFL_KNOWN))
		return false;
	*kind = file_kind(f);
	*flags = registry_fl_decode(fl) |
		 ((fdfl & REG_FDFL_CLOEXEC) ? (uint32_t)O_CLOEXEC : 0);
	return true;
}

void registry_fd_closed(int fd, struct reg_seen seen)
{
	struct reg_file **slot = fdt_slot(fd, false);
	struct reg_file *expected = seen.file;
	if (!slot || !expected)
		return;
	/*
	 * Recycled since the peek: whoever replaced it at this number already
	 * dropped the reference our fd held (ABA on the slot otherwise).
	 */
	if (__atomic_load_n(&expected->gen, __ATOMIC_ACQUIRE) != seen.gen)
		return;
	if (__atomic_compare_exchange_n(slot, &expected, NULL, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		file_put(seen.file);
}

void registry_fd_closed_range(unsigned int first, unsigned int last)
{
	if (!fd_range_clip(first, &last))
		return;
	for (unsigned fd = first; fd <= last; fd++) {
		if (fdt_leaf_absent((unsigned)fd)) {
			fd += REG_FDT_LEAF_SIZE - 1; /* a whole empty leaf */
			continue;
		}
		registry_fd_closed((int)fd, registry_fd_peek((int)fd));
	}
}

void registry_socket_listen(int fd, int backlog)
{
	struct reg_file *f = fdt_get(fd);
	if (f)
		__atomic_store_n(&f->create.backlog, backlog, __ATOMIC_RELAXED);
}

void registry_socket_bound(int fd)
{
	struct reg_file *f = fdt_get(fd);
	if (f)
		__atomic_or_fetch(&f->flags, REG_FILE_BOUND, __ATOMIC_RELAXED);
}

void registry_signalfd_mask(int fd, uint64_t mask)
{
	struct reg_file *f = fdt_get(fd);
	if (f && file_kind(f) == IMAGE_KIND_SIGNALFD)
		__atomic_store_n(&f->create.sigmask, mask, __ATOMIC_RELAXED);
}

unsigned registry_fds_of(const struct reg_file *file,
			 void (*fn)(void *ctx, int fd), void *ctx,
			 unsigned max_calls)
{
	unsigned calls = 0;
	int max = registry_max_fd();
	for (int fd = 0; fd <= max && calls < max_calls; fd++) {
		if (fdt_leaf_absent((unsigned)fd)) {
			fd += REG_FDT_LEAF_SIZE - 1; /* a whole empty leaf */
			continue;
		}
		if (fdt_get(fd) == file) {
			fn(ctx, fd);
			calls++;
		}
	}
	return calls;
}

/* ---- watches within a locked set --------------------------------------- */

static inline uint32_t bucket_of(const struct reg_set *s, int tfd)
{
	return (uint32_t)tfd & (s->nbuckets - 1);
}

static struct reg_watch *watch_find(struct reg_set *s,
				    const struct reg_file *file, int tfd)
{
	if (!s->nbuckets)
		return NULL;
	for (struct reg_watch *w = s->buckets[bucket_of(s, tfd)]; w;
	     w = w->next)
		if (w->tfd == tfd && w->file == file)
			return w;
	return NULL;
}

/* Double the buckets when the load passes 1; on failure keep chains. */
static void set_grow(struct reg_set *s)
{
	uint32_t n = s->nbuckets ? s->nbuckets * 2 : MIN_BUCKETS;
	struct reg_watch **b = reg_calloc(n, sizeof(*b));
	if (!b)
		return;
	for (uint32_t i = 0; i < s->nbuckets; i++) {
		struct reg_watch *w = s->buckets[i], *next;
		for (; w; w = next) {
			next = w->next;
			uint32_t h = (uint32_t)w->tfd & (n - 1);
			w->next = b[h];
			b[h] = w;
		}
	}
	account((ssize_t)(n - s->nbuckets) * (ssize_t)sizeof(*b));
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

static struct reg_watch *watch_alloc(struct reg_set *s)
{
	if (!s->free_watches) {
		struct reg_slab *slab = reg_calloc(1, sizeof(*slab));
		if (!slab)
			return NULL;
		account(sizeof(*slab));
		slab->next = s->slabs;
		s->slabs = slab;
		for (int i = SLAB_WATCHES - 1; i >= 0; i--) {
			slab->w[i].next = s->free_watches;
			s->free_watches = &slab->w[i];
		}
	}
	struct reg_watch *w = s->free_watches;
	s->free_watches = w->next;
	memset(w, 0, sizeof(*w));
	return w;
}

static struct reg_watch *watch_insert(struct reg_set *s,
				      struct reg_file *file, int tfd)
{
	if (s->nwatch >= s->nbuckets)
		set_grow(s);
	if (!s->nbuckets)
		return NULL;
	struct reg_watch *w = watch_alloc(s);
	if (!w)
		return NULL;
	w->file = file;
	w->tfd = tfd;
	uint32_t h = bucket_of(s, tfd);
	w->next = s->buckets[h];
	s->buckets[h] = w;
	s->nwatch++;
	__atomic_add_fetch(&file->nwatch, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&file->hint_set, s, __ATOMIC_RELAXED);
	__atomic_store_n(&file->hint_tfd, tfd, __ATOMIC_RELAXED);
	return w;
}

/* Unlink w from s; the caller decides what becomes of w->file. */
static void watch_unlink(struct reg_set *s, struct reg_watch *w)
{
	struct reg_watch **pp = &s->buckets[bucket_of(s, w->tfd)];
	while (*pp && *pp != w)
		pp = &(*pp)->next;
	if (*pp)
		*pp = w->next;
	w->next = s->free_watches;
	s->free_watches = w;
	s->nwatch--;
}

/* Unlink w and drop its file's watch count (recycling the file if due). */
static void watch_remove(struct reg_set *s, struct reg_watch *w)
{
	struct reg_file *f = w->file;
	watch_unlink(s, w);
	if (__atomic_sub_fetch(&f->nwatch, 1, __ATOMIC_ACQ_REL) == 0 &&
	    __atomic_load_n(&f->refs, __ATOMIC_ACQUIRE) == 0)
		file_maybe_free(f);
}

/* ---- sets -------------------------------------------------------------- */

/* Every ctl stripe of s unlocked: a new set, or the child after fork. */
void set_stripes_init(struct reg_set *s)
{
	for (unsigned i = 0; i < REG_SET_STRIPES; i++)
		__atomic_store_n(&s->stripes[i].locked, 0, __ATOMIC_RELAXED);
}

/*
 * A set's lock is held only around the short update of its table (a ctl
 * stripe, not the lock, is held across the real epoll_ctl): adaptive, it
 * spins a little before sleeping (threads sharing a set otherwise meet in
 * futex).
 */
void set_lock_init(struct reg_set *s)
{
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&s->lock, &attr);
	pthread_mutexattr_destroy(&attr);
}

static struct reg_set *set_new(struct reg_file *file, int flags, bool shared)
{
	struct reg_set *s = NULL;

	pthread_mutex_lock(&free_lock);
	if (free_sets) {
		s = free_sets;
		free_sets = s->next_free;
	}
	pthread_mutex_unlock(&free_lock);
	if (!s) {
		/* Its stripes are cache-line aligned: so must it be. */
		s = reg_zalloc_aligned(_Alignof(struct reg_set), sizeof(*s));
		if (!s)
			return NULL;
		set_lock_init(s);
		set_stripes_init(s);
		account(sizeof(*s));
	}
	s->file = file;
	s->flags = flags;
	s->shared = shared;
	pthread_mutex_lock(&sets_lock);
	s->prev = NULL;
	s->next = sets_head;
	if (sets_head)
		sets_head->prev = s;
	sets_head = s;
	pthread_mutex_unlock(&sets_lock);
	return s;
}

/*
 * The set's file lost its last reference: the kernel frees the set and all
 * its watches.  Unlink it first so no walker finds it, then empty it.
 */
static void set_destroy(struct reg_set *s)
{
	pthread_mutex_lock(&sets_lock);
	if (s->prev)
		s->prev->next = s->next;
	else if (sets_head == s)
		sets_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	pthread_mutex_unlock(&sets_lock);

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->nbuckets; i++) {
		while (s->buckets[i])
			watch_remove(s, s->buckets[i]);
	}
	account(-(ssize_t)(s->nbuckets * sizeof(*s->buckets)));
	free(s->buckets);
	s->buckets = NULL;
	s->nbuckets = 0;
	while (s->slabs) {
		struct reg_slab *next = s->slabs->next;
		free(s->slabs);
		account(-(ssize_t)sizeof(struct reg_slab));
		s->slabs = next;
	}
	s->free_watches = NULL;
	s->file = NULL;
	pthread_mutex_unlock(&s->lock);

	pthread_mutex_lock(&free_lock);
	s->next_free = free_sets;
	free_sets = s;
	pthread_mutex_unlock(&free_lock);
}

/*
 * f lost its last known descriptor.  For an exactly counted file the kernel
 * released it: its watches go.  For a shared one the kernel may keep it:
 * its watches become uncertain.
 */
static void file_forget_watches(struct reg_file *f)
{
	bool drop = !(file_flags(f) & REG_FILE_SHARED);
	struct reg_set *hint = __atomic_load_n(&f->hint_set, __ATOMIC_RELAXED);
	int hint_tfd = __atomic_load_n(&f->hint_tfd, __ATOMIC_RELAXED);

	/* Fast path: the set and number of its latest watch. */
	if (hint) {
		pthread_mutex_lock(&hint->lock);
		struct reg_watch *w = watch_find(hint, f, hint_tfd);
		if (w && drop)
			watch_remove(hint, w);
		else if (w)
			w->uncertain = 1;
		pthread_mutex_unlock(&hint->lock);
	}
	if (drop && __atomic_load_n(&f->nwatch, __ATOMIC_ACQUIRE) == 0)
		return;
	/* Slow path: every set, every bucket. */
	pthread_mutex_lock(&sets_lock);
	for (struct reg_set *s = sets_head; s; s = s->next) {
		pthread_mutex_lock(&s->lock);
		for (uint32_t i = 0; i < s->nbuckets; i++) {
			struct reg_watch *w = s->buckets[i], *next;
			for (; w; w = next) {
				next = w->next;
				if (w->file != f)
					continue;
				if (drop)
					watch_remove(s, w);
				else
					w->uncertain = 1;
			}
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&sets_lock);
}

static void file_last_ref(struct reg_file *f)
{
	/*
	 * Pin f while its watches go: removing the last one would otherwise
	 * let watch_remove() recycle it, and the scan below would then take
	 * the watches of the object's next life for its own.  No fd refers to
	 * f, so nobody else can take a reference meanwhile.
	 */
	__atomic_store_n(&f->refs, 1, __ATOMIC_RELAXED);
	__atomic_or_fetch(&f->flags, REG_FILE_RELEASING, __ATOMIC_RELEASE);
	if (file_kind(f) == IMAGE_KIND_EPOLL && f->set &&
	    !(file_flags(f) & REG_FILE_SHARED)) {
		struct reg_set *s = f->set;
		f->set = NULL;
		set_destroy(s);
	}
	if (__atomic_load_n(&f->nwatch, __ATOMIC_ACQUIRE))
		file_forget_watches(f);
	__atomic_and_fetch(&f->flags, (uint8_t)~REG_FILE_RELEASING,
			   __ATOMIC_RELEASE);
	__atomic_store_n(&f->refs, 0, __ATOMIC_RELEASE);
	file_maybe_free(f);
}

/*
 * Lock s, the set f had when it was looked up, and return it when it is
 * still f's set; NULL (unlocked) when s or f is NULL, or f's set was
 * released (and maybe reused) meanwhile.
 */
static struct reg_set *set_lock_live(struct reg_file *f, struct reg_set *s)
{
	if (!f || !s)
		return NULL;
	pthread_mutex_lock(&s->lock);
	if (s->file == f && __atomic_load_n(&f->set, __ATOMIC_ACQUIRE) == s)
		return s;
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct reg_set *registry_set_lock(int epfd)
{
	struct reg_file *f = fdt_get(epfd);
	return set_lock_live(f, registry_set_of(f));
}

void registry_set_unlock(struct reg_set *set)
{
	if (set)
		pthread_mutex_unlock(&set->lock);
}

/*
 * epfd is an epoll fd the shim did not see created (raw syscall, inherited,
 * or created while memory ran out): adopt it, shared, and return it locked.
 */
static struct reg_set *set_adopt(int epfd)
{
	struct reg_file *f = fdt_get(epfd);
	if (!f) {
		f = file_new(IMAGE_KIND_EPOLL, REG_FILE_SHARED, NULL);
		if (!f)
			return NULL;
		struct reg_file **slot = fdt_slot(epfd, true);
		struct reg_file *expected = NULL;
		if (!slot || !__atomic_compare_exchange_n(
				     slot, &expected, f, false,
				     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&f->refs, 0, __ATOMIC_RELAXED);
			file_maybe_free(f);
			return registry_set_lock(epfd);
		}
	}
	if (file_kind(f) != IMAGE_KIND_EPOLL && file_kind(f) != IMAGE_KIND_OTHER)
		return NULL;
	__atomic_store_n(&f->kind, IMAGE_KIND_EPOLL, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&f->set, __ATOMIC_ACQUIRE)) {
		struct reg_set *s = set_new(f, 0, true);
		struct reg_set *none = NULL;
		if (!s)
			return NULL;
		if (!__atomic_compare_exchange_n(&f->set, &none, s, false,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE)) {
			s->file = f; /* lost a race: give the spare back */
			set_destroy(s);
		}
	}
	return registry_set_lock(epfd);
}

/* The file at fd, creating a shared one of unknown kind if none. */
static struct reg_file *file_at_or_adopt(int fd)
{
	struct reg_file *f = fdt_get(fd);
	if (f)
		return f;
	f = file_new(IMAGE_KIND_OTHER, REG_FILE_SHARED, NULL);
	if (!f)
		return NULL;
	struct reg_file **slot = fdt_slot(fd, true);
	struct reg_file *expected = NULL;
	if (slot && __atomic_compare_exchange_n(slot, &expected, f, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
		return f;
	__atomic_store_n(&f->refs, 0, __ATOMIC_RELAXED);
	file_maybe_free(f);
	return expected;
}

void registry_ctl_locked(struct reg_set *set, int epfd, int op, int fd,
			 const struct epoll_event *ev, uint32_t bt)
{
	bool adopted = false;
	if (!set) {
		set = set_adopt(epfd);
		if (!set) {
			registry_mark_incomplete();
			return;
		}
		adopted = true;
	}
	struct reg_file *f = file_at_or_adopt(fd);
	if (!f) {
		set->shared = true; /* a watch is missing: trust the kernel */
		goto out;
	}
	struct reg_watch *w = watch_find(set, f, fd);
	switch (op) {
	case EPOLL_CTL_ADD:
	case EPOLL_CTL_MOD:
		if (!w)
			w = watch_insert(set, f, fd);
		if (!w) {
			set->shared = true;
			break;
		}
		w->events = ev->events;
		w->data = ev->data.u64;
		w->uncertain = 0;
		if (op == EPOLL_CTL_ADD) {
			w->bt_add = bt;
			w->bt_mod = 0;
		} else {
			w->bt_mod = bt & 0x7fffffffu;
		}
		break;
	case EPOLL_CTL_DEL:
		if (w)
			watch_remove(set, w);
		break;
	}
out:
	if (adopted)
		registry_set_unlock(set);
}

void registry_adopt_set(int epfd)
{
	registry_set_unlock(set_adopt(epfd));
}

void registry_adopt_watch(int epfd, int tfd, uint32_t events, uint64_t data)
{
	struct reg_set *set = set_adopt(epfd);
	if (!set)
		return;
	struct reg_file *f = file_at_or_adopt(tfd);
	struct reg_watch *w = f ? watch_find(set, f, tfd) : NULL;
	if (f && !w)
		w = watch_insert(set, f, tfd);
	if (w) {
		w->events = events;
		w->data = data;
		w->uncertain = 1;
	} else {
		set->shared = true;
	}
	registry_set_unlock(set);
}

uint32_t registry_same_call_site(struct reg_set *set, int fd,
				 uintptr_t caller)
{
	struct reg_file *f = fdt_get(fd);
	const struct reg_watch *w = set && f ? watch_find(set, f, fd) : NULL;
	if (!w)
		return 0;
	uint32_t id = w->bt_mod ? w->bt_mod : w->bt_add;
	const uintptr_t *frames;
	if (id && backtrace_frames(id, &frames) && frames[0] == caller)
		return id;
	return 0;
}

/* ---- locks: fd operations, ctl stripes, the cut ----------------------- */

bool registry_fdop_begin_many(void)
{
	/* EDEADLK: this thread holds it exclusively (fork, dump): go on. */
	if (pthread_rwlock_rdlock(&fdop_lock) != 0)
		return false;
	fdop_held++;
	return true;
}

void registry_fdop_unlock(void)
{
	fdop_held--;
	pthread_rwlock_unlock(&fdop_lock);
}

/*
 * Handlers' calls whose bookkeeping is deferred (registry.h): open now,
 * begun ever.  Sequentially consistent: a handler's begin() precedes its
 * real call, the cut's reads follow its locks and precede its unlock.
 */
static unsigned deferred_open, deferred_begun;
static int cut_held; /* the recorder holds its cut (clean_begin..unlock) */

#define CUT_HELD_WAIT_NS 100000000 /* a handler waits 100 ms at most */

/*
 * A handler's real call waits while a cut is held (the recorder holds
 * every registry lock then, so this thread holds none it could need), so
 * that the cut's read of the kernel is not spoiled; with the open count
 * raised first and cut_held read after (both sequentially consistent), a
 * cut that began meanwhile sees the count and is dropped.  Bounded: the
 * recorder may want a lock outside the registry (malloc's) that the
 * interrupted code holds; after CUT_HELD_WAIT_NS the call goes ahead and
 * the cut, which sees begun change, is taken again.
 */
void registry_deferred_begin(void)
{
	struct timespec t0 = { 0, 0 }, t;
	for (;;) {
		__atomic_add_fetch(&deferred_open, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&cut_held, __ATOMIC_SEQ_CST))
			break;
		if (!t0.tv_sec && !t0.tv_nsec)
			clock_gettime(CLOCK_MONOTONIC, &t0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000000L +
			    (t.tv_nsec - t0.tv_nsec) > CUT_HELD_WAIT_NS)
			break;
		__atomic_sub_fetch(&deferred_open, 1, __ATOMIC_SEQ_CST);
		sched_yield();
	}
	__atomic_add_fetch(&deferred_begun, 1, __ATOMIC_SEQ_CST);
}

/*
 * A queued record keeps the count open until applied, but begins nothing:
 * a record of a call that changes watches was opened by begin() before
 * its real call; the others (a creation, a plain dup) change no watch, and
 * their records, pushed during a cut, must not spoil it.
 */
void registry_deferred_queued(void)
{
	__atomic_add_fetch(&deferred_open, 1, __ATOMIC_SEQ_CST);
}

void registry_deferred_end(void)
{
	__atomic_sub_fetch(&deferred_open, 1, __ATOMIC_SEQ_CST);
}

void registry_deferred_fork_child(unsigned n)
{
	__atomic_store_n(&cut_held, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&deferred_open, n, __ATOMIC_SEQ_CST);
}

bool registry_cut_clean_begin(unsigned *gen)
{
	__atomic_store_n(&cut_held, 1, __ATOMIC_SEQ_CST);
	*gen = __atomic_load_n(&deferred_begun, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&deferred_open, __ATOMIC_SEQ_CST) == 0;
}

bool registry_cut_still_clean(unsigned gen)
{
	/* Open now: records pushed meanwhile, of calls that began earlier
	 * (caught by clean_begin) or change no watch. */
	return __atomic_load_n(&deferred_begun, __ATOMIC_SEQ_CST) == gen;
}

void registry_wait_deferred(unsigned timeout_ms)
{
	struct timespec pause = { 0, 100000 }; /* 100 us */
	for (unsigned i = 0; i < timeout_ms * 10 &&
			     __atomic_load_n(&deferred_open, __ATOMIC_SEQ_CST);
	     i++)
		nanosleep(&pause, NULL);
}

static unsigned stripe_of(int fd)
{
	/* The top bits of a Fibonacci hash: REG_SET_STRIPES is 2^5. */
	return (unsigned)(((uint64_t)(unsigned)fd * 0x9e3779b97f4a7c15ull) >>
			  59) % REG_SET_STRIPES;
}

/*
 * A cut is being taken: wait until it ends.  Only reached from a wrapper's
 * outermost call, holding no registry lock.  A few yields,
 * then naps of 20 us (timer slack makes them 70 or so) until the cut ends.
 * Yielding alone kept the waiters runnable: with 4 of them and the
 * recorder on 2 CPUs, the scheduler gave the recorder its fair share and
 * a dump under churn took a slice more whenever it was preempted
 * (bench_churn p99 under churn 5.3-10 ms against 1.2-1.3 at rest on the
 * machine of 2026-12-03).  Napping waiters leave the CPUs to it: p99
 * 1.7-1.9 ms in the same session, the median under churn unchanged
 * (docs/performance.md, figure 9).  Not one long sleep
 * with a wake-up at the end of the cut: all the waiters then woke with
 * earlier deadlines than the recorder's, which had its dump still to
 * write (median under churn 9 ms instead of 1.2, measured).  errno is
 * kept: a nap that a signal interrupts sets it.
 */
static void __attribute__((noinline, cold)) cut_wait(void)
{
	struct timespec nap = { 0, 20000 };
	int saved_errno = errno;

	for (unsigned i = 0; __atomic_load_n(&cut_pending, __ATOMIC_ACQUIRE);
	     i++) {
		if (i < 4)
			sched_yield();
		else
			nanosleep(&nap, NULL);
	}
	errno = saved_errno;
}

/*
 * stripe_lock() for an epoll_ctl: the same, except that it leaves the
 * stripes alone while a cut is pending (also when the cut began while this
 * caller was already waiting for the stripe).
 */
static inline void stripe_lock_ctl(struct reg_stripe *st)
{
	for (unsigned spins = 0;; spins++) {
		if (__builtin_expect(__atomic_load_n(&cut_pending,
						     __ATOMIC_RELAXED), 0))
			cut_wait();
		if (stripe_try(st))
			return;
		stripe_backoff(spins);
	}
}

void registry_ctl_begin(struct reg_ctl *c, int epfd, int fd)
{
	unsigned i = stripe_of(fd);

	c->file = fdt_get(epfd);
	c->set = registry_set_of(c->file);
	c->stripe = c->set ? &c->set->stripes[i] : &unknown_stripes[i];
	stripe_lock_ctl(c->stripe);
}

struct reg_set *registry_ctl_lock_set(struct reg_ctl *c)
{
	struct reg_set *s = set_lock_live(c->file, c->set);

	if (s)
		return s;
	/*
	 * Unknown, or destroyed since: registry_ctl_locked() adopts it,
	 * taking the list lock, which a dump takes before any set's stripe.
	 * Only the unknown-set stripes come before it: leave the set's.
	 */
	if (c->set) {
		stripe_unlock(c->stripe);
		c->stripe = NULL;
	}
	return NULL;
}

void registry_ctl_end(struct reg_ctl *c)
{
	if (c->stripe)
		stripe_unlock(c->stripe);
	c->stripe = NULL;
}

/*
 * Order: the fd-operation lock (then cut_pending is set), the unknown-set
 * stripes, the list of sets, then each set's stripes and its lock.  An
 * epoll_ctl holds one stripe and then that set's lock (or, with no set,
 * the list lock).
 */
void registry_lock_all(void)
{
	pthread_rwlock_wrlock(&fdop_lock);
	__atomic_store_n(&cut_pending, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < REG_SET_STRIPES; i++)
		stripe_lock(&unknown_stripes[i]);
	pthread_mutex_lock(&sets_lock);
	for (struct reg_set *s = sets_head; s; s = s->next) {
		for (unsigned i = 0; i < REG_SET_STRIPES; i++)
			stripe_lock(&s->stripes[i]);
		pthread_mutex_lock(&s->lock);
	}
}

void registry_unlock_all(void)
{
	__atomic_store_n(&cut_held, 0, __ATOMIC_SEQ_CST);
	for (struct reg_set *s = sets_head; s; s = s->next) {
		pthread_mutex_unlock(&s->lock);
		for (unsigned i = REG_SET_STRIPES; i-- > 0;)
			stripe_unlock(&s->stripes[i]);
	}
	pthread_mutex_unlock(&sets_lock);
	for (unsigned i = REG_SET_STRIPES; i-- > 0;)
		stripe_unlock(&unknown_stripes[i]);
	__atomic_store_n(&cut_pending, 0, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&fdop_lock);
}

const struct reg_watch *registry_find_watch(struct reg_set *set,
					    const struct reg_file *file,
					    int tfd)
{
	return watch_find(set, file, tfd);
}

unsigned registry_count_tfd(struct reg_set *set, int tfd)
{
	unsigned n = 0;
	if (!set->nbuckets)
		return 0;
	for (struct reg_watch *w = set->buckets[bucket_of(set, tfd)]; w;
	     w = w->next)
		n += w->tfd == tfd;
	return n;
}

/* ---- creation of sets -------------------------------------------------- */

void registry_set_created(int epfd, int flags)
{
	struct reg_create c = { .flags = flags, .backlog = -1 };
	struct reg_file *f = file_new(IMAGE_KIND_EPOLL, 0, &c);
	if (f) {
		f->set = set_new(f, flags, false);
		if (!f->set)
			f->flags |= REG_FILE_SHARED; /* not published yet */
	}
	fdt_install_fd(epfd, f, (flags & O_CLOEXEC) != 0);
	struct reg_set *set = registry_set_of(f);
	if (set && (file_flags(f) & REG_FILE_SHARED)) { /* see fdt_install */
		pthread_mutex_lock(&set->lock);
		set->shared = true;
		pthread_mutex_unlock(&set->lock);
	}
}

struct reg_set *registry_set_of(const struct reg_file *file)
{
	if (!file || file_kind(file) != IMAGE_KIND_EPOLL)
		return NULL;
	return __atomic_load_n(&file->set, __ATOMIC_ACQUIRE);
}

/* ---- tests ------------------------------------------------------------- */

void registry_reset(void)
{
	int max = registry_max_fd();
	for (int fd = 0; fd <= max; fd++) {
		registry_fd_closed(fd, registry_fd_peek(fd));
	}
	while (sets_head) {
		struct reg_set *s = sets_head;
		if (s->file)
			s->file->set = NULL;
		set_destroy(s);
	}
	for (unsigned i = 0; i < REG_FDT_TOP_SIZE; i++) {
		free(registry_fdt[i]);
		registry_fdt[i] = NULL;
	}
	while (free_files) {
		struct reg_file *f = free_files;
		free_files = f->next_free;
		free(f);
	}
	while (free_sets) {
		struct reg_set *s = free_sets;
		free_sets = s->next_free;
		pthread_mutex_destroy(&s->lock);
		free(s);
	}
	fdt_max = -1;
	lost_something = false;
	watch_bytes = 0;
	fail_after = fail_count = 0;
}
