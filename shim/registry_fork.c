// SPDX-License-Identifier: MIT
/*
 * The shadow registry across fork (pthread_atfork, shim/init.c): the parent
 * takes every lock before the fork (registry_fork_prepare); after it, both
 * processes mark every file and set shared, since another process may now
 * change them, and the child, where only the forking thread lives,
 * re-initialises every lock and stripe some other thread may have held.
 */
#include "registry_internal.h"

/* ---- fork -------------------------------------------------------------- */

void registry_fork_prepare(void)
{
	__atomic_add_fetch(&forks_begun, 1, __ATOMIC_SEQ_CST);
	registry_lock_all();
	pthread_mutex_lock(&free_lock);
}

static void file_shared(struct reg_file *f)
{
	__atomic_or_fetch(&f->flags, REG_FILE_SHARED, __ATOMIC_RELAXED);
}

/* After fork every file and set is shared by two processes. */
static void mark_all_shared(void)
{
	fdt_each_file(file_shared);
	for (struct reg_set *s = sets_head; s; s = s->next)
		s->shared = true;
}

void registry_fork_parent(void)
{
	mark_all_shared();
	__atomic_add_fetch(&forks_done, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&free_lock);
	registry_unlock_all();
}

void registry_fork_child(void)
{
	mark_all_shared();
	__atomic_add_fetch(&forks_done, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_init(&free_lock, NULL);
	/* Free sets too: a thread gone in the child may have held a stripe. */
	for (struct reg_set *s = sets_head; s; s = s->next) {
		set_lock_init(s);
		set_stripes_init(s);
	}
	for (struct reg_set *s = free_sets; s; s = s->next_free)
		set_stripes_init(s);
	pthread_mutex_init(&sets_lock, NULL);
	__atomic_store_n(&cut_pending, 0, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < REG_SET_STRIPES; i++)
		__atomic_store_n(&unknown_stripes[i].locked, 0,
				 __ATOMIC_RELAXED);
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fdop_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}
