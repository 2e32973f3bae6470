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
 * The intern table is split in stripes by hash, each with its own lock, so
 * threads registering watches do not share one lock; ids map to entries
 * through a chunked array read without locks.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

struct stripe {
	pthread_mutex_t lock;
	struct bt_entry **buckets;
	uint32_t nbuckets; /* power of two */
	uint32_t count;
};

static struct stripe stripes[STRIPES];
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
	pthread_once(&stripes_once, stripes_init);
	uint32_t h = hash_frames(frames, nframes);
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
out:
	pthread_mutex_unlock(&s->lock);
	return id;
}

#define UNWIND_LIBRARY "libunwind.so.8"

static int (*unwinder)(void **pcs, int max_frames);
static pthread_once_t unwinder_once = PTHREAD_ONCE_INIT;

static void load_unwinder(void)
{
	void *lib = dlopen(UNWIND_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (lib)
		*(void **)&unwinder = dlsym(lib, "unw_backtrace");
}

uint32_t backtrace_capture(uintptr_t from, unsigned depth)
{
	void *pcs[BACKTRACE_MAX_DEPTH + BACKTRACE_SEARCH];
	uintptr_t frames[BACKTRACE_MAX_DEPTH];

	if (depth > BACKTRACE_MAX_DEPTH)
		depth = BACKTRACE_MAX_DEPTH;
	if (!depth)
		return 0;
	pthread_once(&unwinder_once, load_unwinder);
	if (!unwinder)
		return 0;
	int n = unwinder(pcs, (int)(depth + BACKTRACE_SEARCH));
	int start = 0;
	while (start < n && start < BACKTRACE_SEARCH &&
	       (uintptr_t)pcs[start] != from)
		start++;
	if (start >= n || start >= BACKTRACE_SEARCH)
		return 0;
	unsigned count = 0;
	for (int i = start; i < n && count < depth; i++)
		frames[count++] = (uintptr_t)pcs[i];
	return backtrace_intern(frames, count);
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
	pthread_once(&stripes_once, stripes_init);
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_lock(&stripes[i].lock);
}

void backtrace_fork_parent(void)
{
	for (int i = STRIPES - 1; i >= 0; i--)
		pthread_mutex_unlock(&stripes[i].lock);
}

void backtrace_fork_child(void)
{
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&stripes[i].lock, NULL);
}
