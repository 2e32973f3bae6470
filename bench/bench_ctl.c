// SPDX-License-Identifier: MIT
/*
 * Figures 1 and 2: epoll_ctl ADD, MOD and DEL under the shim against the
 * raw libc function, in one process run under LD_PRELOAD.  The backtrace
 * depth is the shim's (EPOLLCR_BACKTRACE, read at load): tools/run-bench.sh
 * runs this program once with 0 and once with the variable unset.
 *
 * Figure 1: one thread; per round, each side ADDs, MODs and DELs its own
 * BATCH eventfds in its own set, each of the three loops timed apart.
 * Figure 2: 1, 2 and 4 threads, each with its own sets and targets, and 2
 * threads sharing one set per side; a round is every thread doing
 * ADD+MOD+DEL on its BATCH targets, timed from the start barrier to the
 * end barrier (wall time, so the ratio is raw throughput / shim throughput).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

#define BATCH 1000	     /* targets per side and per thread */
#define WARMUP_ROUNDS 3	     /* rounds run before recording */
#define MAX_THREADS 4
#define THREAD_TOLERANCE 1.05 /* N threads: ratio <= 1-thread ratio * this */

enum { OP_ADD, OP_MOD, OP_DEL, NR_OPS };

static const char *const op_names[NR_OPS] = { "add", "mod", "del" };

static struct bench_libc libc_raw;

/* One side of a measurement: a set, its targets, the functions to use. */
struct side {
	int epfd;
	bool own_epfd;	/* this side created epfd (and closes it) */
	int fds[BATCH];
	int nfds;
	int (*ctl)(int epfd, int op, int fd, struct epoll_event *event);
	int (*close_fn)(int fd);
	unsigned errors; /* epoll_ctl calls that failed */
};

/*
 * Open a side: the raw one with libc's functions, the shim one with the
 * normal symbols (which the preload interposes).  shared_epfd >= 0 is a
 * set to use instead of a new one.  Returns 0 or -errno.
 */
static int side_open(struct side *sd, bool shim, int shared_epfd)
{
	int (*create1)(int) = shim ? epoll_create1 : libc_raw.epoll_create1;
	int (*mkevfd)(unsigned int, int) = shim ? eventfd : libc_raw.eventfd;

	memset(sd, 0, sizeof(*sd));
	sd->ctl = shim ? epoll_ctl : libc_raw.epoll_ctl;
	sd->close_fn = shim ? close : libc_raw.close;
	sd->epfd = shared_epfd;
	if (sd->epfd < 0) {
		sd->epfd = create1(EPOLL_CLOEXEC);
		if (sd->epfd < 0)
			return -errno;
		sd->own_epfd = true;
	}
	for (sd->nfds = 0; sd->nfds < BATCH; sd->nfds++) {
		int fd = mkevfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			int err = -errno;
			for (int i = 0; i < sd->nfds; i++)
				sd->close_fn(sd->fds[i]);
			if (sd->own_epfd)
				sd->close_fn(sd->epfd);
			return err;
		}
		sd->fds[sd->nfds] = fd;
	}
	return 0;
}

static void side_close(struct side *sd)
{
	if (sd->own_epfd)
		sd->close_fn(sd->epfd);
	for (int i = 0; i < sd->nfds; i++)
		sd->close_fn(sd->fds[i]);
	sd->nfds = 0;
}

/* ADD, MOD, DEL every target of sd once; each loop's time into ns[]. */
static void side_run(struct side *sd, uint64_t ns[NR_OPS])
{
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < sd->nfds; i++) {
		ev.data.u64 = (uint64_t)i;
		if (sd->ctl(sd->epfd, EPOLL_CTL_ADD, sd->fds[i], &ev))
			sd->errors++;
	}
	uint64_t t1 = bench_now_ns();
	ev.events = EPOLLIN | EPOLLOUT;
	for (int i = 0; i < sd->nfds; i++) {
		ev.data.u64 = (uint64_t)i + 1;
		if (sd->ctl(sd->epfd, EPOLL_CTL_MOD, sd->fds[i], &ev))
			sd->errors++;
	}
	uint64_t t2 = bench_now_ns();
	for (int i = 0; i < sd->nfds; i++)
		if (sd->ctl(sd->epfd, EPOLL_CTL_DEL, sd->fds[i], NULL))
			sd->errors++;
	uint64_t t3 = bench_now_ns();
	ns[OP_ADD] = t1 - t0;
	ns[OP_MOD] = t2 - t1;
	ns[OP_DEL] = t3 - t2;
}

/* Figure 1: one thread, each op timed apart. */
static void figure_single(void)
{
	const char *bt = bench_bt_label();
	unsigned rounds = bench_rounds(300, 60);
	struct side raw, shim;
	struct bench_series s[NR_OPS];
	char name[64], note[64];
	int ret;

	if ((ret = side_open(&raw, false, -1)) < 0) {
		bench_report_skip("ctl", strerror(-ret));
		return;
	}
	if ((ret = side_open(&shim, true, -1)) < 0) {
		bench_report_skip("ctl", strerror(-ret));
		goto err_close_raw;
	}
	for (int op = 0; op < NR_OPS; op++)
		if (bench_series_init(&s[op], rounds, BATCH) < 0) {
			bench_report_skip("ctl", "out of memory");
			while (op--)
				bench_series_free(&s[op]);
			goto err_close_shim;
		}

	for (unsigned r = 0; r < rounds + WARMUP_ROUNDS; r++) {
		uint64_t raw_ns[NR_OPS], shim_ns[NR_OPS];
		if (r % 2) {
			side_run(&raw, raw_ns);
			side_run(&shim, shim_ns);
		} else {
			side_run(&shim, shim_ns);
			side_run(&raw, raw_ns);
		}
		if (r < WARMUP_ROUNDS)
			continue;
		for (int op = 0; op < NR_OPS; op++)
			bench_series_add(&s[op], raw_ns[op], shim_ns[op]);
	}

	for (int op = 0; op < NR_OPS; op++) {
		double target = 1.10;
		if (op == OP_ADD && strcmp(bt, "bt=0") != 0)
			target = 1.5;
		snprintf(name, sizeof(name), "ctl.%s %s", op_names[op], bt);
		snprintf(note, sizeof(note), "errors=%u", raw.errors +
			 shim.errors);
		bench_report_ratio(name, &s[op], target,
				   raw.errors + shim.errors ? note : NULL);
		bench_series_free(&s[op]);
	}
err_close_shim:
	side_close(&shim);
err_close_raw:
	side_close(&raw);
}

/* ---- figure 2: threads --------------------------------------------------- */

struct threads_bench {
	pthread_mutex_t gate_lock;
	pthread_cond_t gate;	/* workers wait here until every one exists */
	int gate_state;		/* 0: wait, 1: go, -1: leave */
	pthread_barrier_t start;
	pthread_barrier_t done;
	bool use_shim;	/* side of this round, set before the start barrier */
	bool stop;
};

struct worker {
	pthread_t tid;
	struct threads_bench *tb;
	struct side raw;
	struct side shim;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct threads_bench *tb = w->tb;
	uint64_t ns[NR_OPS];

	pthread_mutex_lock(&tb->gate_lock);
	while (tb->gate_state == 0)
		pthread_cond_wait(&tb->gate, &tb->gate_lock);
	int go = tb->gate_state > 0;
	pthread_mutex_unlock(&tb->gate_lock);
	while (go) {
		pthread_barrier_wait(&tb->start);
		if (tb->stop)
			break;
		side_run(tb->use_shim ? &w->shim : &w->raw, ns);
		pthread_barrier_wait(&tb->done);
	}
	return NULL;
}

/* Open every worker's sides: one set per side, or one shared by all. */
static int workers_open(struct worker *w, int nthreads, bool shared)
{
	int raw_epfd = -1, shim_epfd = -1;
	int i, ret = 0;

	for (i = 0; i < nthreads; i++) {
		ret = side_open(&w[i].raw, false, raw_epfd);
		if (ret < 0)
			goto err_close_workers;
		ret = side_open(&w[i].shim, true, shim_epfd);
		if (ret < 0) {
			side_close(&w[i].raw);
			goto err_close_workers;
		}
		if (shared) {
			raw_epfd = w[i].raw.epfd;
			shim_epfd = w[i].shim.epfd;
		}
	}
	return 0;

err_close_workers:
	/* Worker 0 owns the shared sets: close the others first. */
	while (i--) {
		side_close(&w[i].raw);
		side_close(&w[i].shim);
	}
	return ret;
}

/*
 * Run nthreads workers (sharing one set per side when shared) for the
 * given rounds; the wall time of each side's rounds into s.  Returns the
 * epoll_ctl failures, or -errno when the threads could not be set up.
 */
static int threads_measure(int nthreads, bool shared, unsigned rounds,
			   struct bench_series *s)
{
	struct threads_bench tb = { .gate_lock = PTHREAD_MUTEX_INITIALIZER,
				    .gate = PTHREAD_COND_INITIALIZER };
	struct worker w[MAX_THREADS];
	int started = 0, ret;

	memset(w, 0, sizeof(w));
	ret = workers_open(w, nthreads, shared);
	if (ret < 0)
		return ret;
	pthread_barrier_init(&tb.start, NULL, (unsigned)nthreads + 1);
	pthread_barrier_init(&tb.done, NULL, (unsigned)nthreads + 1);
	for (; started < nthreads; started++) {
		w[started].tb = &tb;
		ret = pthread_create(&w[started].tid, NULL, worker_main,
				     &w[started]);
		if (ret) {
			ret = -ret;
			break;
		}
	}
	/* Open the gate: into the rounds, or out when one was missing. */
	pthread_mutex_lock(&tb.gate_lock);
	tb.gate_state = started == nthreads ? 1 : -1;
	pthread_cond_broadcast(&tb.gate);
	pthread_mutex_unlock(&tb.gate_lock);
	if (started != nthreads)
		goto err_join_workers;

	for (unsigned r = 0; r < rounds + WARMUP_ROUNDS; r++) {
		uint64_t ns[2];
		for (int k = 0; k < 2; k++) {
			int side = (int)(r + (unsigned)k) % 2;
			tb.use_shim = side;
			uint64_t t0 = bench_now_ns();
			pthread_barrier_wait(&tb.start);
			pthread_barrier_wait(&tb.done);
			ns[side] = bench_now_ns() - t0;
		}
		if (r >= WARMUP_ROUNDS)
			bench_series_add(s, ns[0], ns[1]);
	}
	tb.stop = true;
	pthread_barrier_wait(&tb.start);
	ret = 0;

err_join_workers:
	for (int i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
	pthread_barrier_destroy(&tb.start);
	pthread_barrier_destroy(&tb.done);
	unsigned errors = 0;
	for (int i = nthreads; i--;) {
		errors += w[i].raw.errors + w[i].shim.errors;
		side_close(&w[i].raw);
		side_close(&w[i].shim);
	}
	return ret < 0 ? ret : (int)errors;
}

/* Figure 2: throughput with threads, against the one-thread ratio. */
static void figure_threads(void)
{
	static const struct {
		int nthreads;
		bool shared;
	} configs[] = { { 1, false }, { 2, false }, { 4, false }, { 2, true } };
	const char *bt = bench_bt_label();
	unsigned rounds = bench_rounds(100, 20);
	double one_thread = 0;
	char name[64], note[128];

	for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
		int n = configs[c].nthreads;
		struct bench_series s;
		snprintf(name, sizeof(name), "ctl.threads=%d%s %s", n,
			 configs[c].shared ? " shared" : "", bt);
		if (bench_series_init(&s, rounds, 3.0 * BATCH * n) < 0) {
			bench_report_skip(name, "out of memory");
			continue;
		}
		int ret = threads_measure(n, configs[c].shared, rounds, &s);
		if (ret < 0) {
			bench_report_skip(name, strerror(-ret));
			bench_series_free(&s);
			continue;
		}
		double med = bench_series_median_ratio(&s);
		if (c == 0) {
			one_thread = med;
			/* The loosest per-op target of figure 1. */
			double target = strcmp(bt, "bt=0") ? 1.5 : 1.10;
			snprintf(note, sizeof(note),
				 "thr shim/raw %.3f (reference)%s",
				 med > 0 ? 1 / med : 0, ret ? " errors" : "");
			bench_report_ratio(name, &s, target, note);
		} else {
			snprintf(note, sizeof(note),
				 "thr shim/raw %.3f, vs 1 thread %+.3f%s",
				 med > 0 ? 1 / med : 0, med - one_thread,
				 ret ? " errors" : "");
			bench_report_ratio(name, &s,
					   one_thread * THREAD_TOLERANCE, note);
		}
		bench_series_free(&s);
	}
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "all";

	if (bench_libc_resolve(&libc_raw) < 0) {
		bench_report_skip("ctl", "libc.so.6 not found");
		return 0;
	}
	if (!bench_preloaded())
		printf("# bench_ctl: libepollcr.so is not preloaded: both sides are raw\n");
	bench_raise_nofile(4 * (MAX_THREADS + 1) * BATCH);
	if (strcmp(only, "threads") != 0)
		figure_single();
	if (strcmp(only, "single") != 0)
		figure_threads();
	return 0;
}
