// SPDX-License-Identifier: MIT
/*
 * The backtrace intern table (shim/backtrace.c): one id per distinct
 * stack, and a stack a thread interned before is found again without the
 * table's locks (each thread's cache of its recent stacks), so that
 * threads registering watches from the same code do not meet on one
 * stripe's lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "backtrace.h"

#define STACKS 200 /* many more than a thread's cache holds */
#define DEPTH 6

static void stack_of(unsigned i, uintptr_t frames[DEPTH])
{
	for (unsigned f = 0; f < DEPTH; f++)
		frames[f] = 0x400000u + i * 0x40u + f * 0x1000u;
}

/* Same stack, same id; another stack, another id; also past the cache. */
static void test_ids(void **state)
{
	static uint32_t ids[STACKS];
	uintptr_t frames[DEPTH];
	(void)state;
	for (unsigned i = 0; i < STACKS; i++) {
		stack_of(i, frames);
		ids[i] = backtrace_intern(frames, DEPTH);
		assert_int_not_equal(ids[i], 0);
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(ids[i], ids[j]);
	}
	for (unsigned round = 0; round < 3; round++)
		for (unsigned i = 0; i < STACKS; i++) {
			stack_of(i, frames);
			assert_int_equal(backtrace_intern(frames, DEPTH), ids[i]);
			/* A prefix is another stack. */
			assert_int_not_equal(backtrace_intern(frames, DEPTH - 1),
					     ids[i]);
		}
	const uintptr_t *got;
	stack_of(7, frames);
	assert_int_equal(backtrace_frames(ids[7], &got), DEPTH);
	assert_memory_equal(got, frames, sizeof(frames));
}

struct again {
	uint32_t first, second;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int step; /* 1: first interned; 2: stripes held, go again */
};

static void *intern_twice(void *arg)
{
	struct again *a = arg;
	uintptr_t frames[DEPTH];
	stack_of(STACKS + 1, frames);
	a->first = backtrace_intern(frames, DEPTH);
	pthread_mutex_lock(&a->lock);
	a->step = 1;
	pthread_cond_broadcast(&a->cond);
	while (a->step != 2)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
	a->second = backtrace_intern(frames, DEPTH); /* stripes held */
	__atomic_store_n(&a->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A thread interns a stack, then every stripe's lock is taken (as fork
 * does): interning the same stack again must not wait for them.  Before
 * the per-thread cache it did, until they were released.
 */
static void test_known_stack_takes_no_lock(void **state)
{
	struct again a = { .lock = PTHREAD_MUTEX_INITIALIZER,
			   .cond = PTHREAD_COND_INITIALIZER };
	pthread_t t;
	(void)state;
	assert_int_equal(pthread_create(&t, NULL, intern_twice, &a), 0);
	pthread_mutex_lock(&a.lock);
	while (a.step != 1)
		pthread_cond_wait(&a.cond, &a.lock);
	backtrace_fork_prepare(); /* every stripe's lock */
	a.step = 2;
	pthread_cond_broadcast(&a.cond);
	pthread_mutex_unlock(&a.lock);
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	for (int i = 0; i < 200 && !__atomic_load_n(&a.done, __ATOMIC_ACQUIRE);
	     i++)
		nanosleep(&pause, NULL);
	bool done = __atomic_load_n(&a.done, __ATOMIC_ACQUIRE);
	backtrace_fork_parent();
	pthread_join(t, NULL);
	assert_true(done); /* within 2 s, the locks still held */
	assert_int_not_equal(a.first, 0);
	assert_int_equal(a.second, a.first);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_known_stack_takes_no_lock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
