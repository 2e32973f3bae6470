// SPDX-License-Identifier: MIT
/*
 * Call-site backtraces of epoll_ctl ADD/MOD: raw return addresses captured
 * with libunwind (no symbol lookup on the hot path), interned so that an
 * identical stack is stored once and named by a small id.
 *
 * libunwind is loaded with dlopen() at the first capture, not linked: a
 * program that never registers a watch does not pay for loading it (and
 * liblzma behind it) at start-up.  Without libunwind, captures return 0.
 *
 * unw_backtrace() is fast because it keeps a frame cache per thread, which
 * a thread-specific-data destructor frees at thread exit, taking a mutex.
 * In a ThreadSanitizer process that destructor runs after TSan retired the
 * thread (both put themselves last among the destructors; TSan's key is
 * older), and TSan crashes in its mutex interceptor.  No caching policy
 * avoids it (unw_set_caching_policy governs the DWARF register-state cache,
 * not this one), and the unwinders without per-thread state cost too much
 * for every ADD here: libunwind's unw_step() loop blocks and unblocks
 * signals for every frame (about 29 us for 6 frames), libgcc's
 * _Unwind_Backtrace (glibc's backtrace()) 3 us per ADD against 0.45 us.
 * So under ThreadSanitizer only, glibc's backtrace() captures instead.
 *
 * The intern table is split in stripes by hash, each with its own lock, so
 * threads registering watches do not share one lock; ids map to entries
 * through a chunked array read without locks.
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backtrace.h"

#define STRIPES 16
#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 1024 /* at most 1,048,576 distinct stacks */

struct bt_entry {
	struct bt_entry *next; /* chain in its stripe */
	uint32_t hash;
	uint32_t id;
	uint16_t nframes;
	uintptr_t frames[];
};

/* On a cache line of its own: threads interning in two stripes share none. */
struct stripe {
	pthread_mutex_t lock;
	struct bt_entry **buckets;
	uint32_t nbuckets; /* power of two */
	uint32_t count;
} __attribute__((aligned(64)));

static struct stripe stripes[STRIPES];

/*
 * Each thread's most recent stacks, by hash: threads running the same code
 * register watches from the same stacks, which all hash to one stripe, and
 * its lock was where they met (figure 2 of docs/performance.md: 2 and 4
 * threads with backtraces over the 1-thread ratio).  An entry is immutable
 * once published and never freed, so a hit needs no lock: the thread saw
 * the entry complete under the stripe's lock when it cached it.
 */
#define THREAD_CACHE 8 /* a power of two */
static __thread const struct bt_entry *thread_cache[THREAD_CACHE]
	__attribute__((tls_model("initial-exec")));
static struct bt_entry **chunks[MAX_CHUNKS];
static uint32_t next_id = 1;
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

static void stripes_init(void)
{
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&stripes[i].lock, NULL);
}

static uint32_t hash_frames(const uintptr_t *frames, unsigned n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (unsigned i = 0; i < n; i++) {
		h ^= frames[i];
		h *= 0x100000001b3ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

/* Publish e under its id; false when ids ran out or memory did. */
static bool publish(struct bt_entry *e)
{
	uint32_t id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
	uint32_t c = id >> CHUNK_BITS;
	if (c >= MAX_CHUNKS)
		return false;
	struct bt_entry **chunk = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
	if (!chunk) {
		struct bt_entry **fresh = calloc(CHUNK_SIZE, sizeof(*fresh));
		if (!fresh)
			return false;
		if (__atomic_compare_exchange_n(&chunks[c], &chunk, fresh,
						false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			chunk = fresh;
		else
			free(fresh);
	}
	e->id = id;
	__atomic_store_n(&chunk[id & (CHUNK_SIZE - 1)], e, __ATOMIC_RELEASE);
	return true;
}

static void stripe_grow(struct stripe *s)
{
	uint32_t n = s->nbuckets ? s->nbuckets * 2 : 64;
	struct bt_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (uint32_t i = 0; i < s->nbuckets; i++) {
		struct bt_entry *e = s->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[(e->hash / STRIPES) & (n - 1)];
			b[(e->hash / STRIPES) & (n - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

uint32_t backtrace_intern(const uintptr_t *frames, unsigned nframes)
{
	if (!nframes)
		return 0;
	if (nframes > BACKTRACE_MAX_DEPTH)
		nframes = BACKTRACE_MAX_DEPTH;
	uint32_t h = hash_frames(frames, nframes);
	const struct bt_entry **cached =
		&thread_cache[(h / STRIPES) & (THREAD_CACHE - 1)];
	const struct bt_entry *c = *cached;
	if (c && c->hash == h && c->nframes == nframes &&
	    !memcmp(c->frames, frames, nframes * sizeof(*frames)))
		return c->id;
	pthread_once(&stripes_once, stripes_init);
	struct stripe *s = &stripes[h % STRIPES];
	uint32_t id = 0;

	pthread_mutex_lock(&s->lock);
	if (s->count >= s->nbuckets)
		stripe_grow(s);
	if (!s->nbuckets)
		goto out;
	uint32_t b = (h / STRIPES) & (s->nbuckets - 1);
	for (struct bt_entry *e = s->buckets[b]; e; e = e->next) {
		if (e->hash == h && e->nframes == nframes &&
		    !memcmp(e->frames, frames, nframes * sizeof(*frames))) {
			id = e->id;
			*cached = e;
			goto out;
		}
	}
	struct bt_entry *e = malloc(sizeof(*e) + nframes * sizeof(*frames));
	if (!e)
		goto out;
	e->hash = h;
	e->nframes = (uint16_t)nframes;
	memcpy(e->frames, frames, nframes * sizeof(*frames));
	if (!publish(e)) {
		free(e);
		goto out;
	}
	e->next = s->buckets[b];
	s->buckets[b] = e;
	s->count++;
	id = e->id;
	*cached = e;
out:
	pthread_mutex_unlock(&s->lock);
	return id;
}

#define UNWIND_LIBRARY "libunwind.so.8"
#define TSAN_SYMBOL "__tsan_init" /* the ThreadSanitizer runtime is here */
#define RUNTIME_FRAMES 4 /* interceptor frames skipped, at most */

static int (*unwinder)(void **pcs, int max_frames);
static pthread_once_t unwinder_once = PTHREAD_ONCE_INIT;
/*
 * Held for reading while a thread loads the unwinder or unwinds, and for
 * writing by fork from prepare to parent: libunwind's own locks (of its
 * first use, of its caches) are not made safe by fork, and a child forked
 * while another thread held one hung for ever at its first registration
 * (and for frames not cached yet, libunwind calls dl_iterate_phdr, whose
 * lock glibc's fork does not reset either).
 * Writers first, so that a stream of registrations cannot hold a fork off.
 * Taken after the registry's locks (a MOD unwinds holding its set's).
 */
static pthread_rwlock_t unwind_lock =
	PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static __thread bool fork_holds_unwind;
static int unwinder_loaded; /* load_unwinder has run: no lock needed */

/*
 * Under ThreadSanitizer, the addresses of its runtime, whose interceptors
 * (epoll_ctl among them) stand between the program's call and the shim's
 * wrapper; empty otherwise.
 */
static uintptr_t runtime_lo, runtime_hi;
/* libunwind's addresses: its calls to wrappers are the shim's own. */
static uintptr_t unwinder_lo, unwinder_hi;

/* The object that holds sym, and the bounds found (dl_iterate_phdr). */
struct object_bounds {
	uintptr_t sym, lo, hi;
};

/* dl_iterate_phdr callback: the bounds of the object holding ctx->sym. */
static int find_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
	struct object_bounds *b = ctx;
	uintptr_t sym = b->sym, lo = UINTPTR_MAX, hi = 0;
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t seg = info->dlpi_addr + ph->p_vaddr;
		if (seg < lo)
			lo = seg;
		if (seg + ph->p_memsz > hi)
			hi = seg + ph->p_memsz;
	}
	if (sym < lo || sym >= hi)
		return 0;
	b->lo = lo;
	b->hi = hi;
	return 1;
}

bool backtrace_loaded(void)
{
	return __atomic_load_n(&unwinder_loaded, __ATOMIC_ACQUIRE);
}

bool backtrace_from_unwinder(uintptr_t pc)
{
	return pc - unwinder_lo <
	       __atomic_load_n(&unwinder_hi, __ATOMIC_ACQUIRE) - unwinder_lo;
}

static void load_unwinder(void)
{
	void *tsan = dlsym(RTLD_DEFAULT, TSAN_SYMBOL);
	if (tsan) {
		struct object_bounds b = { .sym = (uintptr_t)tsan };
		if (dl_iterate_phdr(find_object, &b)) {
			runtime_lo = b.lo;
			runtime_hi = b.hi;
		}
		/* glibc's own backtrace(), not one the program may define. */
		*(void **)&unwinder = dlsym(RTLD_NEXT, "backtrace");
		return;
	}
	void *lib = dlopen(UNWIND_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (lib)
		*(void **)&unwinder = dlsym(lib, "unw_backtrace");
	struct object_bounds b = { .sym = (uintptr_t)unwinder };
	if (unwinder && dl_iterate_phdr(find_object, &b)) {
		unwinder_lo = b.lo;
		__atomic_store_n(&unwinder_hi, b.hi, __ATOMIC_RELEASE);
	}
}

/* Load the unwinder once, under the read lock (dlopen). */
void backtrace_load(void)
{
	if (__atomic_load_n(&unwinder_loaded, __ATOMIC_ACQUIRE))
		return;
	pthread_rwlock_rdlock(&unwind_lock);
	pthread_once(&unwinder_once, load_unwinder);
	pthread_rwlock_unlock(&unwind_lock);
	__atomic_store_n(&unwinder_loaded, 1, __ATOMIC_RELEASE);
}

static bool in_runtime(uintptr_t pc)
{
	return pc - runtime_lo < runtime_hi - runtime_lo;
}

/*
 * Unwind into pcs (room for max entries) and return the index of the
 * program's frame: the one whose return address is from, past the
 * sanitizer runtime's frames; -1 when from is not within the first
 * BACKTRACE_SEARCH frames or there is no unwinder.  *n gets the count.
 */
static int unwind_from(uintptr_t from, void **pcs, int max, int *n)
{
	backtrace_load();
	if (!unwinder)
		return -1;
	pthread_rwlock_rdlock(&unwind_lock);
	*n = unwinder(pcs, max);
	pthread_rwlock_unlock(&unwind_lock);
	int start = 0;
	while (start < *n && start < BACKTRACE_SEARCH &&
	       (uintptr_t)pcs[start] != from)
		start++;
	if (start >= *n || start >= BACKTRACE_SEARCH)
		return -1;
	for (int skip = 0; skip < RUNTIME_FRAMES && start < *n - 1 &&
			   in_runtime((uintptr_t)pcs[start]);
	     skip++)
		start++;
	return start;
}

uint32_t backtrace_capture(uintptr_t from, unsigned depth)
{
	void *pcs[BACKTRACE_MAX_DEPTH + BACKTRACE_SEARCH + RUNTIME_FRAMES];
	uintptr_t frames[BACKTRACE_MAX_DEPTH];
	int n;

	if (depth > BACKTRACE_MAX_DEPTH)
		depth = BACKTRACE_MAX_DEPTH;
	if (!depth)
		return 0;
	int max = (int)(depth + BACKTRACE_SEARCH + RUNTIME_FRAMES);
	int start = unwind_from(from, pcs, max, &n);
	if (start < 0)
		return 0;
	unsigned count = 0;
	for (int i = start; i < n && count < depth; i++)
		frames[count++] = (uintptr_t)pcs[i];
	return backtrace_intern(frames, count);
}

uint32_t backtrace_call_site(uintptr_t caller)
{
	void *pcs[BACKTRACE_SEARCH + RUNTIME_FRAMES + 1];
	int n;

	backtrace_load(); /* a MOD's call site: no lock once loaded */
	if (in_runtime(caller)) {
		int max = (int)(sizeof(pcs) / sizeof(pcs[0]));
		int start = unwind_from(caller, pcs, max, &n);
		if (start >= 0)
			caller = (uintptr_t)pcs[start];
	}
	return backtrace_intern(&caller, 1);
}

unsigned backtrace_frames(uint32_t id, const uintptr_t **frames)
{
	uint32_t c = id >> CHUNK_BITS;
	if (!id || c >= MAX_CHUNKS)
		return 0;
	struct bt_entry **chunk = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
	if (!chunk)
		return 0;
	struct bt_entry *e =
		__atomic_load_n(&chunk[id & (CHUNK_SIZE - 1)], __ATOMIC_ACQUIRE);
	if (!e)
		return 0;
	*frames = e->frames;
	return e->nframes;
}

uint32_t backtrace_count(void)
{
	return __atomic_load_n(&next_id, __ATOMIC_RELAXED) - 1;
}

void backtrace_fork_prepare(void)
{
	/* 5 s at most: a signal handler of an unwinding thread may fork. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	fork_holds_unwind = pthread_rwlock_timedwrlock(&unwind_lock, &until) == 0;
	pthread_once(&stripes_once, stripes_init);
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_lock(&stripes[i].lock);
}

void backtrace_fork_parent(void)
{
	for (int i = STRIPES - 1; i >= 0; i--)
		pthread_mutex_unlock(&stripes[i].lock);
	if (fork_holds_unwind) {
		fork_holds_unwind = false;
		pthread_rwlock_unlock(&unwind_lock);
	}
}

void backtrace_fork_child(void)
{
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&stripes[i].lock, NULL);
	fork_holds_unwind = false;
	unwind_lock = (pthread_rwlock_t)
		PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
}
