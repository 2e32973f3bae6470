// SPDX-License-Identifier: MIT
/*
 * Figure 9, run under LD_PRELOAD: the latency of a dump (the consistent
 * cut: every set's locks and the fd-operation lock) while CHURN_THREADS
 * threads run epoll_ctl ADD/MOD/DEL in a loop, against the same dump at
 * rest, in one process.
 *
 * REST_WATCHES eventfds are watched at rest (spread over the threads'
 * sets: a set of its own for even threads, one set shared by the odd
 * ones); each churn thread then adds, modifies and deletes watches of its
 * own CHURN_FDS eventfds in its set, without pause.  The dumps
 * (epollcr_dump_self(), the recorder's own path, from this thread) are
 * taken one after another: first DUMPS at rest, then DUMPS under churn.
 * The line gives p99 under churn / median at rest (target 2), with both
 * sides' median, p99 and maximum and the churn threads' epoll_ctl rate.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

#define CHURN_THREADS 4
#define CHURN_FDS 16	    /* eventfds each churn thread adds and deletes */
#define REST_WATCHES 300    /* watches present all along */
#define CHURN_TARGET 2.0    /* p99 under churn / median at rest */
#define DUMP_BUDGET_S 300   /* the whole figure */

typedef int (*dump_fn)(const char *image_path);

struct churner {
	pthread_t tid;
	int ep;
	int fds[CHURN_FDS];
	unsigned seed;
	unsigned long ops;	/* epoll_ctl calls made */
	int err;		/* errno of a call that failed, or 0 */
};

static volatile int churning;

static void *churn(void *arg)
{
	struct churner *c = arg;
	bool added[CHURN_FDS] = { false };

	while (__atomic_load_n(&churning, __ATOMIC_RELAXED)) {
		unsigned i = (unsigned)rand_r(&c->seed) % CHURN_FDS;
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = c->ops };
		int op;
		if (!added[i])
			op = EPOLL_CTL_ADD;
		else
			op = rand_r(&c->seed) % 2 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
		if (op == EPOLL_CTL_MOD)
			ev.events = EPOLLIN | EPOLLOUT;
		if (epoll_ctl(c->ep, op, c->fds[i], &ev) < 0) {
			c->err = errno;
			break;
		}
		added[i] = op != EPOLL_CTL_DEL;
		c->ops++;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The q quantile (nearest rank) of n sorted values. */
static double quantile(const double *v, unsigned n, double q)
{
	unsigned rank = (unsigned)ceil(q * n);
	return v[rank ? rank - 1 : 0];
}

/* n dumps one after another into ms[], sorted; 0 or -errno. */
static int dumps(dump_fn dump, const char *path, double *ms, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns();
		int ret = dump(path);
		if (ret < 0)
			return ret;
		ms[i] = (double)(bench_now_ns() - t0) / 1e6;
	}
	qsort(ms, n, sizeof(*ms), cmp_double);
	return 0;
}

int main(void)
{
	const char *name = "dump.churn";
	if (!bench_preloaded()) {
		bench_report_skip(name, "libepollcr.so is not preloaded");
		return 0;
	}
	dump_fn dump = (dump_fn)dlsym(RTLD_DEFAULT, "epollcr_dump_self");
	if (!dump) {
		bench_report_skip(name, "epollcr_dump_self not found");
		return 0;
	}
	unsigned n = bench_rounds(100, 30);
	double *rest = calloc(n, sizeof(*rest));
	double *busy = calloc(n, sizeof(*busy));
	static struct churner c[CHURN_THREADS];
	if (!rest || !busy) {
		bench_report_skip(name, "out of memory");
		return 0;
	}

	int shared = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned t = 0; t < CHURN_THREADS; t++) {
		c[t].ep = t % 2 ? shared : epoll_create1(EPOLL_CLOEXEC);
		c[t].seed = t * 7919u + 1;
		for (unsigned i = 0; i < CHURN_FDS; i++)
			c[t].fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	}
	for (unsigned i = 0; i < REST_WATCHES; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd < 0 || c[i % CHURN_THREADS].ep < 0 ||
		    epoll_ctl(c[i % CHURN_THREADS].ep, EPOLL_CTL_ADD, fd,
			      &ev) < 0) {
			bench_report_skip(name, strerror(errno));
			return 0;
		}
	}
	char path[256], stop_line[128];
	snprintf(path, sizeof(path), "%s/epollcr-bench-churn-%d.img",
		 bench_tmp_dir(), (int)getpid());
	snprintf(stop_line, sizeof(stop_line),
		 "%-30s stopped: over %d s (a dump starved)\n", name,
		 DUMP_BUDGET_S);
	bench_watchdog(DUMP_BUDGET_S, stop_line, path);

	int ret = dumps(dump, path, rest, n);
	uint64_t t0 = bench_now_ns();
	__atomic_store_n(&churning, 1, __ATOMIC_RELAXED);
	unsigned started = 0;
	for (; ret == 0 && started < CHURN_THREADS; started++)
		if (pthread_create(&c[started].tid, NULL, churn, &c[started]))
			ret = -EAGAIN;
	usleep(20000); /* let every thread get going */
	if (ret == 0)
		ret = dumps(dump, path, busy, n);
	__atomic_store_n(&churning, 0, __ATOMIC_RELAXED);
	unsigned long ops = 0;
	for (unsigned t = 0; t < started; t++) {
		pthread_join(c[t].tid, NULL);
		ops += c[t].ops;
		if (c[t].err && ret == 0)
			ret = -c[t].err;
	}
	double secs = (double)(bench_now_ns() - t0) / 1e9;
	bench_watchdog(0, NULL, NULL);
	unlink(path);
	if (ret < 0) {
		bench_report_skip(name, strerror(-ret));
		return 0;
	}
	double rest_med = quantile(rest, n, 0.5);
	char note[256];
	snprintf(note, sizeof(note),
		 "%u dumps of %u watches each side; at rest median %.2f p99 %.2f max %.2f ms; under churn median %.2f p99 %.2f max %.2f ms; %d threads %.2g epoll_ctl/s",
		 n, REST_WATCHES, rest_med, quantile(rest, n, 0.99),
		 rest[n - 1], quantile(busy, n, 0.5), quantile(busy, n, 0.99),
		 busy[n - 1], CHURN_THREADS, (double)ops / secs);
	bench_report_value("dump.churn.p99/rest", quantile(busy, n, 0.99) /
			   rest_med, "x", CHURN_TARGET, note);
	free(rest);
	free(busy);
	return 0;
}
