/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmarks (bench/bench_util.c): the raw libc
 * functions behind the shim, the clock, per-round samples and the one-line
 * report that tools/run-bench.sh prints for every figure.
 *
 * Method: each figure is measured in one process in which the raw side and
 * the shim side alternate round by round (the order flips every round), so
 * that both see the same machine state.  A round times one batch of each
 * side; its ratio is shim time / raw time.  The report gives the median of
 * the per-round ratios, their interquartile range and their min-max.
 */
#ifndef EPOLLCR_BENCH_H
#define EPOLLCR_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

/*
 * libc's own definitions, reached past the preloaded shim.  Without the
 * preload they are the same functions as the normal symbols.
 */
struct bench_libc {
	int (*epoll_create1)(int flags);
	int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *event);
	int (*eventfd)(unsigned int initval, int flags);
	int (*close)(int fd);
	int (*dup)(int oldfd);
	int (*dup2)(int oldfd, int newfd);
};

/*
 * Fill libc with libc.so.6's definitions (dlopen with RTLD_NOLOAD, then
 * dlsym).  Returns 0, or -ENOENT when libc.so.6 or a symbol is not found.
 */
int bench_libc_resolve(struct bench_libc *libc);

/* True when libepollcr.so is preloaded into this process. */
bool bench_preloaded(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* True when QUICK is set to a non-empty value other than "0". */
bool bench_quick(void);

/* full_rounds, or quick_rounds in QUICK mode. */
unsigned bench_rounds(unsigned full_rounds, unsigned quick_rounds);

/*
 * The backtrace depth the shim read at load, as a label: "bt=0" when
 * EPOLLCR_BACKTRACE is 0, "bt=8" (the default depth) when unset.  The
 * string is static.
 */
const char *bench_bt_label(void);

/*
 * Per-round timings of one figure: raw_ns[i] and shim_ns[i] are the two
 * sides' times of round i, for ops_per_batch operations each.  At most
 * max_rounds rounds are kept; further ones are dropped.
 */
struct bench_series {
	double *raw_ns;
	double *shim_ns;
	unsigned nrounds;
	unsigned max_rounds;
	double ops_per_batch;
	const char *raw_label;	/* how the report names each side: */
	const char *shim_label;	/* "raw" and "shim" unless set */
};

/* Allocate room for max_rounds rounds.  Returns 0 or -ENOMEM. */
int bench_series_init(struct bench_series *s, unsigned max_rounds,
		      double ops_per_batch);

/* Record one round (times in nanoseconds for the whole batch). */
void bench_series_add(struct bench_series *s, uint64_t raw_ns,
		      uint64_t shim_ns);

/* Median of the per-round ratios shim/raw, 0 when there is no round. */
double bench_series_median_ratio(const struct bench_series *s);

void bench_series_free(struct bench_series *s);

/*
 * Print the figure's line: median ratio, IQR and min-max of the ratios,
 * median time per operation of each side, the target (a ratio the median
 * must not exceed) and "ok" or "MISSED".  note (may be NULL) is appended.
 * Returns the median ratio.
 */
double bench_report_ratio(const char *name, const struct bench_series *s,
			  double target_ratio, const char *note);

/*
 * Print a figure that is one measured value (bytes per watch...), with
 * its unit, against a target it must not exceed.
 */
void bench_report_value(const char *name, double value, const char *unit,
			double target_max, const char *note);

/* Print a line for a figure that was not measured, and why. */
void bench_report_skip(const char *name, const char *why);

/*
 * Make at least want_fds descriptors available: raise the soft
 * RLIMIT_NOFILE up to the hard limit, and as root the hard limit up to
 * /proc/sys/fs/nr_open.  Returns the soft limit in force afterwards.
 */
long bench_raise_nofile(long want_fds);

/*
 * How N watches are laid out: nsets sets, each watching the same ntargets
 * eventfds (N = nsets * ntargets).  One set of N targets when N targets
 * fit under RLIMIT_NOFILE (raised as far as allowed); otherwise targets
 * shared by several sets, since a watch is keyed by (set, file, fd) and one
 * file may be watched by any number of sets.
 */
struct bench_shape {
	unsigned long nsets;
	unsigned long ntargets;
	char label[48];	/* "10k", or "100k=10x10k" for sets x targets */
};

/*
 * Choose the shape of nwatches watches, leaving spare_fds descriptors
 * besides the targets and sets (ntargets is nwatches divided by a power of
 * ten).  Returns 0, or -EMFILE when even 10 targets per set do not fit
 * (why then says so, in at most why_len bytes).
 */
int bench_shape_for(unsigned long nwatches, long spare_fds,
		    struct bench_shape *shape, char *why, size_t why_len);

/* Why the last bench_raise_nofile() fell short, or "". */
const char *bench_nofile_why(void);

/* "1k", "10k", "100k", "1M" or the plain number, into buf (len >= 16). */
const char *bench_size_label(unsigned long n, char *buf, size_t len);

/*
 * How one operation's time grows with the number of watches, from the last
 * two sizes measured: predicts the next size's time, so that a benchmark
 * can skip a size that would not finish within its time budget.
 */
struct bench_growth {
	double n[2];		/* sizes, older first */
	double seconds[2];	/* one operation's time at each */
	unsigned count;		/* sizes recorded, at most 2 kept */
};

/* Record that one operation on n watches took seconds. */
void bench_growth_add(struct bench_growth *g, double n, double seconds);

/*
 * Predicted seconds of one operation on n watches: power law through the
 * last two sizes (linear from one size), 0 when nothing was recorded.
 * *exponent gets the power used (may be NULL).
 */
double bench_growth_predict(const struct bench_growth *g, double n,
			    double *exponent);

/*
 * One size of a benchmark that grows with the number of watches, run in a
 * fresh process (so that nothing a smaller size left behind, such as the
 * shim's reusable objects, is counted).  predicted_s is the time one
 * operation should take at this size going by the smaller sizes (0: no
 * prediction), exponent the power law used.  The function prints its own
 * lines and sets *op_seconds to the time one operation took (0: none).
 */
typedef void (*bench_size_fn)(unsigned long nwatches, double predicted_s,
			      double exponent, double *op_seconds);

/*
 * main() of such a benchmark: with "--one N PREDICTED EXPONENT FD", run
 * fn for N and write the operation's time to FD; otherwise run each size
 * (argv, else 1k 10k 100k 1M, QUICK: 1k 10k) through a child exec'ing
 * /proc/self/exe with "--one", feeding each size the prediction from the
 * sizes before.  Returns the exit status (0, or 2 for bad arguments).
 */
int bench_sizes_main(int argc, char **argv, const char *prog,
		     bench_size_fn fn);

/*
 * Kill the process after seconds (0: disarm), first printing line (kept
 * by pointer: must stay valid), unlinking unlink_path (may be NULL) and,
 * in a size's child, telling bench_sizes_main() to skip the larger sizes:
 * a size that overruns its budget ends with a clear message.
 */
void bench_watchdog(unsigned seconds, const char *line,
		    const char *unlink_path);

/* A directory on tmpfs for image files: /dev/shm when writable, or /tmp. */
const char *bench_tmp_dir(void);

#endif
