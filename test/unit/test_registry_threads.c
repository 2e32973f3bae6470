// SPDX-License-Identifier: MIT
/*
 * The registry under concurrency, without LD_PRELOAD: threads feed it the
 * events wrappers would report (creations, dups, closes, ADD/MOD/DEL on
 * private and shared sets) while another thread takes consistent cuts the
 * way the recorder does.  Run under `make check SAN=thread` this is where
 * ThreadSanitizer sees the registry's own code; in every build it checks
 * that the registry's counts agree with a walk after the storm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"
#include "registry.h"

#define THREADS 4
#define OPS 20000
#define FDS_PER_THREAD 64

struct worker {
	int base;	/* first fd number of this thread's range */
	int shared_ep;	/* a set all threads use */
	int own_ep;	/* a set of this thread's */
	unsigned seed;
};

static void ctl(int epfd, int op, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)fd };
	struct reg_set *set = registry_set_lock(epfd);
	registry_ctl_locked(set, epfd, op, fd, &ev, 0);
	registry_set_unlock(set);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < FDS_PER_THREAD; i++)
		registry_fd_created(w->base + i, IMAGE_KIND_EVENTFD, NULL);
	for (int n = 0; n < OPS; n++) {
		int fd = w->base + (int)(rand_r(&w->seed) % FDS_PER_THREAD);
		int ep = rand_r(&w->seed) % 2 ? w->shared_ep : w->own_ep;
		switch (rand_r(&w->seed) % 6) {
		case 0:
			ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN);
			break;
		case 1:
			ctl(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
			break;
		case 2:
			ctl(ep, EPOLL_CTL_DEL, fd, 0);
			break;
		case 3: { /* dup to a spare number, then close the original */
			int spare = w->base + FDS_PER_THREAD +
				    (int)(rand_r(&w->seed) % FDS_PER_THREAD);
			bool locked = registry_fdop_begin(registry_fd_peek(spare).file);
			registry_fd_dup(fd, spare);
			registry_fdop_end(locked);
			break;
		}
		case 4: {
			struct reg_seen seen = registry_fd_peek(fd);
			bool locked = registry_fdop_begin(seen.file);
			registry_fd_closed(fd, seen);
			registry_fdop_end(locked);
			registry_fd_created(fd, IMAGE_KIND_EVENTFD, NULL);
			break;
		}
		default:
			registry_fd_closed_range((unsigned)w->base + FDS_PER_THREAD,
						 (unsigned)w->base + FDS_PER_THREAD + 3);
		}
	}
	return NULL;
}

static volatile int stop_cutter;

static int count_watch(void *ctx, const struct reg_watch_view *v)
{
	(void)v;
	(*(unsigned *)ctx)++;
	return 0;
}

static int check_set(void *ctx, struct reg_set *set,
		     const struct reg_file *file)
{
	unsigned n = 0;
	(void)file;
	registry_walk_watches(set, count_watch, &n);
	if (n != registry_set_nwatch(set))
		(*(unsigned *)ctx)++;
	return 0;
}

/* The recorder's pattern: lock everything, walk, unlock. */
static void *cutter(void *arg)
{
	unsigned *bad = arg;
	while (!__atomic_load_n(&stop_cutter, __ATOMIC_RELAXED)) {
		registry_lock_all();
		registry_walk_sets_locked(check_set, bad);
		registry_unlock_all();
	}
	return NULL;
}

static void test_concurrent_storm(void **state)
{
	(void)state;
	registry_reset();
	registry_set_created(3, 0);
	struct worker w[THREADS];
	pthread_t tid[THREADS], cut;
	unsigned bad = 0;
	for (int i = 0; i < THREADS; i++) {
		w[i].base = 100 + i * 4 * FDS_PER_THREAD;
		w[i].shared_ep = 3;
		w[i].own_ep = 10 + i;
		w[i].seed = (unsigned)i + 1;
		registry_set_created(w[i].own_ep, 0);
	}
	assert_int_equal(pthread_create(&cut, NULL, cutter, &bad), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, work, &w[i]), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	__atomic_store_n(&stop_cutter, 1, __ATOMIC_RELAXED);
	pthread_join(cut, NULL);
	assert_int_equal(bad, 0);
	/* Every watch's file must still be counted as watched. */
	unsigned after = 0;
	registry_walk_sets(check_set, &after);
	assert_int_equal(after, 0);
	assert_false(registry_incomplete());
	registry_reset();
}

/* epoll_ctl callers, reduced to their registry calls, until told to stop. */
struct caller {
	pthread_t tid;
	int fd;
	unsigned long calls;	/* calls begun (counted under the stripe) */
};

static volatile int stop_callers;

static void *call_loop(void *arg)
{
	struct caller *c = arg;
	while (!__atomic_load_n(&stop_callers, __ATOMIC_RELAXED)) {
		struct reg_ctl ctl;
		registry_ctl_begin(&ctl, 3, c->fd);
		/* counted under the stripe: a count that moves while a
		 * cut is held is a call inside the cut */
		__atomic_add_fetch(&c->calls, 1, __ATOMIC_RELAXED);
		registry_ctl_end(&ctl);
	}
	return NULL;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#define CUTS 50
/*
 * Calls that may complete while one cut takes the locks, as the median
 * over CUTS: the callers run on until the cut has the fd-operation lock
 * and says it is pending (tens of calls), a preempted cut lets thousands
 * through now and then (hence the median); a starved cut saw hundreds of
 * thousands every time.
 */
#define CUT_CALLS_MEDIAN 2000UL

static int cmp_ulong(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return (x > y) - (x < y);
}

/*
 * The consistent cut does not starve (issue 14.2): while THREADS threads
 * call epoll_ctl on one fd without pause (so on one stripe, released and
 * taken again at once), CUTS cuts are taken, 5 ms apart.  Taking the locks
 * took 12-55 ms on average (up to 185 ms) when the callers could take the
 * stripe back under the cut, thousands of calls completing meanwhile; now
 * a cut lets through only the calls made before it says it is pending
 * (counted, not timed: on a loaded machine the time says little).  No call
 * completes while a cut is held, and the callers go on after each.
 */
static void test_cut_not_starved(void **state)
{
	(void)state;
	registry_reset();
	registry_set_created(3, 0);
	struct caller c[THREADS];
	__atomic_store_n(&stop_callers, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < THREADS; i++) {
		c[i].fd = 100;
		c[i].calls = 0;
		assert_int_equal(pthread_create(&c[i].tid, NULL, call_loop,
						&c[i]), 0);
	}
	struct timespec ms5 = { 0, 5 * 1000 * 1000 };
	double total = 0, worst = 0;
	unsigned long during = 0, taking = 0, per_cut[CUTS];
	nanosleep(&ms5, NULL);
	for (int n = 0; n < CUTS; n++) {
		unsigned long start = 0, before = 0, after = 0;
		for (int i = 0; i < THREADS; i++)
			start += __atomic_load_n(&c[i].calls, __ATOMIC_RELAXED);
		double t0 = now_ms();
		registry_lock_all();
		double took = now_ms() - t0;
		for (int i = 0; i < THREADS; i++)
			before += __atomic_load_n(&c[i].calls, __ATOMIC_RELAXED);
		taking += before - start;
		per_cut[n] = before - start;
		struct timespec us200 = { 0, 200 * 1000 };
		nanosleep(&us200, NULL);
		for (int i = 0; i < THREADS; i++)
			after += __atomic_load_n(&c[i].calls, __ATOMIC_RELAXED);
		registry_unlock_all();
		during += after - before;
		total += took;
		worst = took > worst ? took : worst;
		nanosleep(&ms5, NULL);
	}
	__atomic_store_n(&stop_callers, 1, __ATOMIC_RELAXED);
	unsigned long calls = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(c[i].tid, NULL);
		calls += c[i].calls;
	}
	print_message("%d cuts: taking the locks %.3f ms on average, %.3f at most, %lu calls completed meanwhile; %lu calls\n",
		      CUTS, total / CUTS, worst, taking, calls);
	assert_int_equal(during, 0);
	qsort(per_cut, CUTS, sizeof(per_cut[0]), cmp_ulong);
	print_message("calls completed while a cut took the locks: median %lu, most %lu\n",
		      per_cut[CUTS / 2], per_cut[CUTS - 1]);
	assert_true(per_cut[CUTS / 2] <= CUT_CALLS_MEDIAN);
	assert_true(calls > 0);
	registry_reset();
}

/*
 * The install that overtakes a close: thread C closes watched file X at
 * number N (holding the fd-operation lock shared, as close() does), the
 * kernel drops X's watch and gives N to thread D's new eventfd, whose
 * install takes X's place (and X's last reference) before C's bookkeeping
 * looks; C finds N taken and lets go of the lock.  D is stopped right
 * after the exchange (the hook): a consistent cut taken now must not
 * happen before D has released X, or the image (the kernel's fdinfo
 * against the shadow) shows a phantom watch: the shadow holds X's watch,
 * the kernel does not.  Seen under churn about once in 200 to 3,000 dumps
 * before the install held the lock too; here every time.
 */
static int hook_state; /* 1: D is in the hook, 2: let it go */

static void install_pause(void)
{
	__atomic_store_n(&hook_state, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&hook_state, __ATOMIC_ACQUIRE) != 2)
		sched_yield();
}

struct reopen {
	int fd;
};

static void *reopen_thread(void *arg)
{
	struct reopen *r = arg;
	r->fd = eventfd(0, EFD_CLOEXEC);
	registry_fd_created(r->fd, IMAGE_KIND_EVENTFD, NULL);
	return NULL;
}

struct cut {
	struct image img;
	int ret, done;
};

static void *cut_thread(void *arg)
{
	struct cut *c = arg;
	c->ret = recorder_build_image(&c->img, 0);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A fresh registry and set ep watching eventfd x with data, known to the
 * shadow as the wrappers would have recorded them.
 */
static void watched_eventfd(uint64_t data, int *ep, int *x)
{
	registry_reset();
	*ep = epoll_create1(EPOLL_CLOEXEC);
	*x = eventfd(0, EFD_CLOEXEC);
	assert_true(*ep >= 0 && *x >= 0);
	registry_set_created(*ep, EPOLL_CLOEXEC);
	registry_fd_created(*x, IMAGE_KIND_EVENTFD, NULL);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
	assert_int_equal(epoll_ctl(*ep, EPOLL_CTL_ADD, *x, &ev), 0);
	struct reg_set *set = registry_set_lock(*ep);
	registry_ctl_locked(set, *ep, EPOLL_CTL_ADD, *x, &ev, 0);
	registry_set_unlock(set);
}

/* Start a dump in *cutter; 1 when it is done within wait_ms, else 0. */
static int cut_start(struct cut *c, pthread_t *cutter, int wait_ms)
{
	struct timespec ms = { 0, 1000 * 1000 };

	memset(c, 0, sizeof(*c));
	assert_int_equal(pthread_create(cutter, NULL, cut_thread, c), 0);
	for (int i = 0;
	     i < wait_ms && !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE); i++)
		nanosleep(&ms, NULL);
	return __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
}

/*
 * A joined dump's verdict: it succeeded, was not done early (when the
 * window it had to wait for was still open), and its image has no
 * phantom watch.
 */
static void cut_check(struct cut *c, const char *when, int early)
{
	unsigned phantoms = 0;

	assert_int_equal(c->ret, 0);
	for (uint32_t i = 0; i < c->img.ndiags; i++)
		phantoms += c->img.diags[i].code == IMAGE_DIAG_PHANTOM_WATCH;
	print_message("cut %s: %s; phantom watches: %u\n", when,
		      early ? "yes" : "no", phantoms);
	image_free(&c->img);
	assert_false(early);
	assert_int_equal(phantoms, 0);
}

static void test_install_over_closing_file(void **state)
{
	(void)state;
	int ep, x;

	watched_eventfd(42, &ep, &x);

	registry_test_install_hook(install_pause);
	__atomic_store_n(&hook_state, 0, __ATOMIC_RELAXED);
	/* C: the wrapper's close(x), real call first. */
	struct reg_seen seen = registry_fd_peek(x);
	bool locked = registry_fdop_begin(seen.file);
	assert_true(locked);
	assert_int_equal(close(x), 0);
	/* D: a new file gets number x and installs it. */
	struct reopen r;
	pthread_t d, cutter;
	assert_int_equal(pthread_create(&d, NULL, reopen_thread, &r), 0);
	while (__atomic_load_n(&hook_state, __ATOMIC_ACQUIRE) != 1)
		sched_yield();
	/* C's bookkeeping: the number is no longer X's. */
	registry_fd_closed(x, seen);
	registry_fdop_end(locked);
	/* A dump now: it must wait for D. */
	struct cut c;
	int cut_during_install = cut_start(&c, &cutter, 200);
	__atomic_store_n(&hook_state, 2, __ATOMIC_RELEASE);
	pthread_join(d, NULL);
	pthread_join(cutter, NULL);
	registry_test_install_hook(NULL);
	assert_int_equal(r.fd, x);
	cut_check(&c, "during the install", cut_during_install);
	close(r.fd);
	close(ep);
	registry_reset();
}

/*
 * The same for a set: close(ep) of a set with watches releases the set and
 * every watch in it, while the epoll file itself is watched nowhere.
 * Another thread's epoll_create1() gets the number before the closer's
 * bookkeeping; a cut then found the new, empty set at that number in the
 * kernel and the old set's watches in the shadow (a phantom each).  The
 * close must hold the fd-operation lock, as for a watched file.
 */
static void test_close_set_racing_create(void **state)
{
	(void)state;
	int ep, x;

	watched_eventfd(43, &ep, &x);

	/* C: the wrapper's close(ep), real call first. */
	struct reg_seen seen = registry_fd_peek(ep);
	bool locked = registry_fdop_begin(seen.file);
	assert_int_equal(close(ep), 0);
	/* D: a new set gets the number (its bookkeeping comes later). */
	int ep2 = epoll_create1(EPOLL_CLOEXEC);
	assert_int_equal(ep2, ep);
	/* A dump now: it must wait for C. */
	pthread_t cutter;
	struct cut c;
	int cut_during_close = cut_start(&c, &cutter, 200);
	registry_fd_closed(ep, seen);
	registry_fdop_end(locked);
	registry_set_created(ep2, EPOLL_CLOEXEC);
	pthread_join(cutter, NULL);
	cut_check(&c, "during the close", cut_during_close);
	close(x);
	close(ep2);
	registry_reset();
}

/*
 * A signal handler that interrupted a wrapper of its thread closes a
 * watched file: its real close comes at once, its bookkeeping waits in the
 * thread's queue (shim/defer.c) until the interrupted wrapper leaves, and
 * that wrapper may hold no lock the cut needs meanwhile (it has released
 * them, or not taken them yet).  A cut taken in that window saw the kernel
 * without the watch and the shadow with it: a phantom watch.  It must wait
 * until the queued record is applied (registry_deferred_*).
 */
static void test_cut_waits_for_deferred_close(void **state)
{
	(void)state;
	int ep, x;

	watched_eventfd(44, &ep, &x);

	/* The handler's close(x): open, real call, queued, handler returns. */
	struct reg_seen seen = registry_fd_peek(x);
	registry_deferred_begin();
	assert_int_equal(close(x), 0);
	registry_deferred_queued(); /* the queued record */
	registry_deferred_end();
	/* A dump now: it must not use a cut taken before the record. */
	pthread_t cutter;
	struct cut c;
	int cut_before_record = cut_start(&c, &cutter, 30);
	/* The interrupted wrapper leaves: the record is applied. */
	bool locked = registry_fdop_begin(seen.file);
	registry_fd_closed(x, seen);
	registry_fdop_end(locked);
	registry_deferred_end();
	pthread_join(cutter, NULL);
	cut_check(&c, "before the record", cut_before_record);
	close(ep);
	registry_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_storm),
		cmocka_unit_test(test_cut_not_starved),
		cmocka_unit_test(test_install_over_closing_file),
		cmocka_unit_test(test_close_set_racing_create),
		cmocka_unit_test(test_cut_waits_for_deferred_close),
	};
	return cmocka_run_group_tests_name("registry_threads", tests, NULL,
					   NULL);
}
