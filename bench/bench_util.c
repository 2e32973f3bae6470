// SPDX-License-Identifier: MIT
/*
 * Helpers shared by the benchmarks (see bench.h).  Linked into every
 * bench/ program; not part of the library.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backtrace.h"
#include "bench.h"

#define RESOLVE(handle, field, sym) \
	(*(void **)&(field) = dlsym(handle, sym))

int bench_libc_resolve(struct bench_libc *libc)
{
	void *h = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	if (!h)
		return -ENOENT;
	RESOLVE(h, libc->epoll_create1, "epoll_create1");
	RESOLVE(h, libc->epoll_ctl, "epoll_ctl");
	RESOLVE(h, libc->eventfd, "eventfd");
	RESOLVE(h, libc->close, "close");
	RESOLVE(h, libc->dup, "dup");
	RESOLVE(h, libc->dup2, "dup2");
	/* The handle stays referenced: libc is never unloaded anyway. */
	if (!libc->epoll_create1 || !libc->epoll_ctl || !libc->eventfd ||
	    !libc->close || !libc->dup || !libc->dup2)
		return -ENOENT;
	return 0;
}

bool bench_preloaded(void)
{
	return dlsym(RTLD_DEFAULT, "epollcr_shadow_print") != NULL;
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool bench_quick(void)
{
	const char *v = getenv("QUICK");
	return v && *v && strcmp(v, "0") != 0;
}

unsigned bench_rounds(unsigned full_rounds, unsigned quick_rounds)
{
	return bench_quick() ? quick_rounds : full_rounds;
}

const char *bench_bt_label(void)
{
	static char label[48];
	const char *v = getenv("EPOLLCR_BACKTRACE");
	const char *mod = getenv("EPOLLCR_BACKTRACE_MOD");
	int len;
	if (!v || !*v)
		len = snprintf(label, sizeof(label), "bt=%d",
			       BACKTRACE_DEFAULT_DEPTH);
	else
		len = snprintf(label, sizeof(label), "bt=%.8s", v);
	/* The MOD depth only when not the default (the call site alone). */
	if (mod && *mod && len > 0 && (size_t)len < sizeof(label))
		snprintf(label + len, sizeof(label) - (size_t)len,
			 ",mod=%.8s", mod);
	return label;
}

int bench_series_init(struct bench_series *s, unsigned max_rounds,
		      double ops_per_batch)
{
	memset(s, 0, sizeof(*s));
	s->raw_ns = calloc(max_rounds ? max_rounds : 1, sizeof(double));
	s->shim_ns = calloc(max_rounds ? max_rounds : 1, sizeof(double));
	if (!s->raw_ns || !s->shim_ns) {
		bench_series_free(s);
		return -ENOMEM;
	}
	s->max_rounds = max_rounds;
	s->raw_label = "raw";
	s->shim_label = "shim";
	s->ops_per_batch = ops_per_batch > 0 ? ops_per_batch : 1;
	return 0;
}

void bench_series_add(struct bench_series *s, uint64_t raw_ns,
		      uint64_t shim_ns)
{
	if (s->nrounds >= s->max_rounds)
		return;
	s->raw_ns[s->nrounds] = (double)raw_ns;
	s->shim_ns[s->nrounds] = (double)shim_ns;
	s->nrounds++;
}

void bench_series_free(struct bench_series *s)
{
	free(s->raw_ns);
	free(s->shim_ns);
	s->raw_ns = s->shim_ns = NULL;
	s->nrounds = s->max_rounds = 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted values, linearly interpolated. */
static double quantile(const double *sorted, unsigned n, double q)
{
	if (n == 0)
		return 0;
	double pos = q * (n - 1);
	unsigned lo = (unsigned)pos;
	if (lo + 1 >= n)
		return sorted[n - 1];
	return sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]);
}

/* Sorted copy of the per-round ratios (n values), or NULL. */
static double *sorted_ratios(const struct bench_series *s)
{
	double *r = calloc(s->nrounds ? s->nrounds : 1, sizeof(*r));
	if (!r)
		return NULL;
	for (unsigned i = 0; i < s->nrounds; i++)
		r[i] = s->raw_ns[i] > 0 ? s->shim_ns[i] / s->raw_ns[i] : 0;
	qsort(r, s->nrounds, sizeof(*r), cmp_double);
	return r;
}

/* Median of values[0..n), 0 when out of memory. */
static double median_of(const double *values, unsigned n)
{
	double *copy = calloc(n ? n : 1, sizeof(*copy));
	if (!copy)
		return 0;
	memcpy(copy, values, n * sizeof(*copy));
	qsort(copy, n, sizeof(*copy), cmp_double);
	double m = quantile(copy, n, 0.5);
	free(copy);
	return m;
}

double bench_series_median_ratio(const struct bench_series *s)
{
	double *r = sorted_ratios(s);
	double m = r ? quantile(r, s->nrounds, 0.5) : 0;
	free(r);
	return m;
}

double bench_report_ratio(const char *name, const struct bench_series *s,
			  double target_ratio, const char *note)
{
	unsigned n = s->nrounds;
	double *r = sorted_ratios(s);
	if (!r || n == 0) {
		free(r);
		bench_report_skip(name, "no round completed");
		return 0;
	}
	double med = quantile(r, n, 0.5);
	double q1 = quantile(r, n, 0.25), q3 = quantile(r, n, 0.75);
	double raw_op = median_of(s->raw_ns, n) / s->ops_per_batch;
	double shim_op = median_of(s->shim_ns, n) / s->ops_per_batch;
	printf("%-30s %5.2fx  iqr %4.2f-%4.2f  min-max %4.2f-%4.2f  %s %9.0f ns  %s %9.0f ns  n=%-3u target <=%.2f  %s%s%s\n",
	       name, med, q1, q3, r[0], r[n - 1], s->raw_label, raw_op,
	       s->shim_label, shim_op, n,
	       target_ratio, med <= target_ratio ? "ok" : "MISSED",
	       note ? "  " : "", note ? note : "");
	fflush(stdout);
	free(r);
	return med;
}

void bench_report_value(const char *name, double value, const char *unit,
			double target_max, const char *note)
{
	printf("%-30s %6.1f %-8s (one measurement)  target <=%g  %s%s%s\n",
	       name, value, unit, target_max,
	       value <= target_max ? "ok" : "MISSED", note ? "  " : "",
	       note ? note : "");
	fflush(stdout);
}

void bench_report_skip(const char *name, const char *why)
{
	printf("%-30s skipped: %s\n", name, why);
	fflush(stdout);
}

/* /proc/sys/fs/nr_open, or fallback when it cannot be read. */
static long read_nr_open(long fallback)
{
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");
	long v = fallback;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = fallback;
		fclose(f);
	}
	return v;
}

static char nofile_why[200];

long bench_raise_nofile(long want_fds)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if ((long)rl.rlim_cur >= want_fds)
		return (long)rl.rlim_cur;
	if ((long)rl.rlim_max < want_fds) {
		long nr_open = read_nr_open((long)rl.rlim_max);
		struct rlimit up = { .rlim_cur = (rlim_t)nr_open,
				     .rlim_max = (rlim_t)nr_open };
		if (geteuid() != 0)
			snprintf(nofile_why, sizeof(nofile_why),
				 "the hard RLIMIT_NOFILE is %ld and only root may raise it",
				 (long)rl.rlim_max);
		else if (nr_open > (long)rl.rlim_max &&
			 setrlimit(RLIMIT_NOFILE, &up) == 0)
			return nr_open;
		else
			snprintf(nofile_why, sizeof(nofile_why),
				 "the hard RLIMIT_NOFILE is %ld and raising it to nr_open %ld failed: %s",
				 (long)rl.rlim_max, nr_open,
				 nr_open > (long)rl.rlim_max ? strerror(errno) :
							       "nr_open is not higher");
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	return (long)rl.rlim_cur;
}

const char *bench_nofile_why(void)
{
	return nofile_why;
}

const char *bench_size_label(unsigned long n, char *buf, size_t len)
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, len, "%luM", n / 1000000);
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, len, "%luk", n / 1000);
	else
		snprintf(buf, len, "%lu", n);
	return buf;
}

int bench_shape_for(unsigned long nwatches, long spare_fds,
		    struct bench_shape *shape, char *why, size_t why_len)
{
	char n_label[16], t_label[16];
	long limit = bench_raise_nofile((long)nwatches + 1 + spare_fds);
	unsigned long targets = nwatches, sets = 1;

	while ((long)(targets + sets) + spare_fds > limit && targets >= 100 &&
	       targets % 10 == 0) {
		targets /= 10;
		sets *= 10;
	}
	if ((long)(targets + sets) + spare_fds > limit) {
		snprintf(why, why_len, "RLIMIT_NOFILE is %ld: %lu watches do not fit even as %lu sets of %lu targets",
			 limit, nwatches, sets, targets);
		return -EMFILE;
	}
	if (sets > 1)
		printf("# %lu watches: one set of %lu targets needs %ld descriptors, but %s: measured as %lu sets sharing %lu targets\n",
		       nwatches, nwatches, (long)nwatches + 1 + spare_fds,
		       *nofile_why ? nofile_why : "RLIMIT_NOFILE is too low",
		       sets, targets);
	shape->nsets = sets;
	shape->ntargets = targets;
	bench_size_label(nwatches, n_label, sizeof(n_label));
	bench_size_label(targets, t_label, sizeof(t_label));
	if (sets == 1)
		snprintf(shape->label, sizeof(shape->label), "%s", n_label);
	else
		snprintf(shape->label, sizeof(shape->label), "%s=%lux%s",
			 n_label, sets, t_label);
	return 0;
}

const char *bench_tmp_dir(void)
{
	return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

void bench_growth_add(struct bench_growth *g, double n, double seconds)
{
	if (g->count == 2) {
		g->n[0] = g->n[1];
		g->seconds[0] = g->seconds[1];
		g->count = 1;
	}
	g->n[g->count] = n;
	g->seconds[g->count] = seconds;
	g->count++;
}

double bench_growth_predict(const struct bench_growth *g, double n,
			    double *exponent)
{
	double k = 1;
	if (g->count == 0)
		return 0;
	unsigned last = g->count - 1;
	if (g->count == 2 && g->n[1] > g->n[0] && g->seconds[0] > 0 &&
	    g->seconds[1] > 0)
		k = log(g->seconds[1] / g->seconds[0]) / log(g->n[1] / g->n[0]);
	/* Below linear is start-up cost being amortised: assume linear. */
	if (k < 1)
		k = 1;
	if (exponent)
		*exponent = k;
	return g->seconds[last] * pow(n / g->n[last], k);
}

static const char *watchdog_line;
static const char *watchdog_unlink;
static int size_report_fd = -1; /* --one mode: where the time goes */

static void watchdog_fired(int sig)
{
	static const double overran = -1;

	(void)sig;
	if (watchdog_unlink)
		unlink(watchdog_unlink);
	/* Tell the parent, which then skips the larger sizes. */
	if (size_report_fd >= 0 &&
	    write(size_report_fd, &overran, sizeof(overran)) < 0)
		_exit(0);
	if (watchdog_line &&
	    write(STDOUT_FILENO, watchdog_line, strlen(watchdog_line)) < 0)
		_exit(0);
	_exit(0);
}

void bench_watchdog(unsigned seconds, const char *line,
		    const char *unlink_path)
{
	fflush(stdout);
	watchdog_line = line;
	watchdog_unlink = unlink_path;
	signal(SIGALRM, watchdog_fired);
	alarm(seconds);
}

#define MAX_SIZES 16

/* Run one size in a child; its operation time into *op_seconds. */
static int run_size_child(const char *prog, unsigned long n,
			  double predicted_s, double exponent,
			  double *op_seconds)
{
	char n_arg[32], pred_arg[32], exp_arg[32], fd_arg[16];
	int p[2];

	*op_seconds = 0;
	fflush(stdout);
	if (pipe(p) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0) {
		close(p[0]);
		snprintf(n_arg, sizeof(n_arg), "%lu", n);
		snprintf(pred_arg, sizeof(pred_arg), "%.6f", predicted_s);
		snprintf(exp_arg, sizeof(exp_arg), "%.3f", exponent);
		snprintf(fd_arg, sizeof(fd_arg), "%d", p[1]);
		char *const argv[] = { (char *)prog, "--one", n_arg, pred_arg,
				       exp_arg, fd_arg, NULL };
		execv("/proc/self/exe", argv);
		fprintf(stderr, "%s: exec /proc/self/exe: %s\n", prog,
			strerror(errno));
		_exit(1);
	}
	close(p[1]);
	ssize_t got;
	do
		got = read(p[0], op_seconds, sizeof(*op_seconds));
	while (got < 0 && errno == EINTR);
	close(p[0]);
	if (got != (ssize_t)sizeof(*op_seconds))
		*op_seconds = 0;
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		printf("%-30s the child for %lu watches ended with status 0x%x\n",
		       prog, n, (unsigned)status);
	return 0;
}

/* Parse a watch count from 1 to 100,000,000; 0 when arg is not one. */
static unsigned long parse_count(const char *arg)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || n == 0 || n > 100000000)
		return 0;
	return n;
}

int bench_sizes_main(int argc, char **argv, const char *prog,
		     bench_size_fn fn)
{
	static const unsigned long full_sizes[] = { 1000, 10000, 100000,
						    1000000 };
	static const unsigned long quick_sizes[] = { 1000, 10000 };
	unsigned long sizes[MAX_SIZES];
	size_t nsizes = 0;

	if (argc == 6 && strcmp(argv[1], "--one") == 0) {
		unsigned long n = parse_count(argv[2]);
		double predicted = strtod(argv[3], NULL);
		double exponent = strtod(argv[4], NULL);
		int fd = atoi(argv[5]);
		double op_seconds = 0;
		if (!n)
			return 2;
		size_report_fd = fd;
		fn(n, predicted, exponent, &op_seconds);
		fflush(stdout);
		if (write(fd, &op_seconds, sizeof(op_seconds)) < 0)
			return 1;
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		unsigned long n = parse_count(argv[i]);
		if (!n || nsizes == MAX_SIZES) {
			fprintf(stderr, "%s: %s is not a watch count from 1 to 100000000 (at most %d counts)\n",
				prog, argv[i], MAX_SIZES);
			return 2;
		}
		sizes[nsizes++] = n;
	}
	if (nsizes == 0) {
		const unsigned long *def = bench_quick() ? quick_sizes :
							   full_sizes;
		nsizes = bench_quick() ? 2 : 4;
		memcpy(sizes, def, nsizes * sizeof(*def));
	}
	struct bench_growth growth = { .count = 0 };
	bool overran = false;
	for (size_t i = 0; i < nsizes; i++) {
		double exponent = 1, op_seconds;
		char label[16];
		if (overran) {
			printf("%-30s skipped: a smaller size overran its time budget\n",
			       bench_size_label(sizes[i], label, sizeof(label)));
			continue;
		}
		double predicted = bench_growth_predict(&growth,
							(double)sizes[i],
							&exponent);
		int ret = run_size_child(prog, sizes[i], predicted, exponent,
					 &op_seconds);
		if (ret < 0)
			printf("%-30s cannot run a child: %s\n", prog,
			       strerror(-ret));
		else if (op_seconds < 0)
			overran = true;
		else if (op_seconds > 0)
			bench_growth_add(&growth, (double)sizes[i],
					 op_seconds);
	}
	return 0;
}
