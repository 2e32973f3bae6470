/* SPDX-License-Identifier: MIT */
/*
 * The shadow registry's rooms (registry.c, registry_fork.c,
 * registry_walk.c): the set object and the state they share.  registry.c
 * keeps everything an interposed call reaches (the fd table, files, sets
 * and watches, the locks, adoption, registry_find_watch), so that the hot
 * path is one translation unit.  Not part of any public API.
 */
#ifndef EPOLLCR_REGISTRY_INTERNAL_H
#define EPOLLCR_REGISTRY_INTERNAL_H

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backtrace.h"
#include "registry.h"

#define SLAB_WATCHES 127 /* watches per slab: 8 + 127 * 40 = 5088 bytes */
#define MIN_BUCKETS 16

struct reg_slab {
	struct reg_slab *next;
	struct reg_watch w[SLAB_WATCHES];
};

/*
 * A ctl stripe: a spin lock on its own cache line.  Held across one
 * epoll_ctl (a microsecond or two) and rarely contended (a set has
 * REG_SET_STRIPES); a waiter spins a little, then yields.  Not a
 * pthread mutex: a dump holds every stripe of every set, more locks than
 * ThreadSanitizer's deadlock detector can follow (64).
 */
struct reg_stripe {
	int locked;
} __attribute__((aligned(64)));

#define STRIPE_SPINS 100 /* pauses before each sched_yield() */

#define REG_SET_STRIPES 32 /* ctl stripes per set (see registry_ctl_begin) */

struct reg_set {
	struct reg_stripe stripes[REG_SET_STRIPES]; /* never re-initialised
						      * while in use */
	pthread_mutex_t lock;
	struct reg_file *file;	/* the set's own file; NULL once destroyed */
	struct reg_watch **buckets;
	uint32_t nbuckets;	/* 0 or a power of two */
	uint32_t nwatch;
	struct reg_watch *free_watches;
	struct reg_slab *slabs;
	int flags;		/* epoll_create1 flags */
	bool shared;		/* another process may change it (fork, exec) */
	struct reg_set *next, *prev; /* live sets, under sets_lock */
	struct reg_set *next_free;   /* reuse list, under free_lock */
};

/*
 * Shared from registry.c: the locks (in the order of registry.c's header),
 * the list of live sets and the reuse lists, the forks counters read by
 * fork_raced(), and the helpers the fork room re-initialises sets with.
 * registry_fork.c resets the locks in a child; registry_walk.c walks
 * sets_head under sets_lock (or with registry_lock_all() held).
 */
extern pthread_rwlock_t fdop_lock;
extern pthread_mutex_t sets_lock;
extern struct reg_stripe unknown_stripes[REG_SET_STRIPES];
extern struct reg_set *sets_head;
extern int cut_pending;
extern pthread_mutex_t free_lock;
extern struct reg_set *free_sets;
extern uint32_t forks_begun, forks_done;
struct reg_file *fdt_get(int fd);

/* fd is the first number of a leaf the fd table never created. */
static inline bool fdt_leaf_absent(unsigned fd)
{
	return (fd & (REG_FDT_LEAF_SIZE - 1)) == 0 &&
	       !__atomic_load_n(&registry_fdt[fd >> REG_FDT_LEAF_BITS],
				__ATOMIC_ACQUIRE);
}

/* Call fn on the file of every fd the table holds (once per fd). */
void fdt_each_file(void (*fn)(struct reg_file *f));
void set_stripes_init(struct reg_set *s);
void set_lock_init(struct reg_set *s);

#endif /* EPOLLCR_REGISTRY_INTERNAL_H */
