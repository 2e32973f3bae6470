// SPDX-License-Identifier: MIT
/*
 * Figure 6: epollcr_restore() of an image of N watches against a plain
 * loop doing the same work with epoll_ctl, for each size N (argv, or 1k,
 * 10k, 100k, 1M; QUICK: 1k and 10k), each size in a fresh process.  Runs
 * without the preload (as `epollcr restore` does).
 *
 * The process creates the watches (one set of N eventfds, or N/T sets
 * sharing T eventfds when N descriptors do not fit: see bench_shape_for()),
 * dumps itself to tmpfs (through the shim, loaded with RTLD_LOCAL: see
 * struct maker), then alternates, round by round, forked children
 * that time one side each (inside the child: fork and exit excluded):
 *
 * existing: the child closes the sets; the targets stay at their numbers.
 *   restore side  epollcr_restore(targets=existing): read and validate the
 *                 image, check the targets, create the sets at their
 *                 numbers, N ADDs, verify against /proc/self/fdinfo.
 *   plain side    epoll_create1 per set and N epoll_ctl ADDs.
 * recreate: the child closes every descriptor but its result pipe.
 *   restore side  epollcr_restore(targets=recreate): the same, plus
 *                 creating the eventfds (with their counters).
 *   plain side    T eventfd(), then epoll_create1 per set, N ADDs.
 *
 * A third side, the floor (line restore.MODE.vs-floor), is the least a
 * restore that checks what the issue asks must ask the kernel: the plain
 * side, then each set's /proc/self/fdinfo read whole (verify compares
 * every watch with it) and, for existing, one readlinkat() of
 * /proc/thread-self/fd/N per target (the cheapest call that tells an
 * eventfd from a timerfd: they share one anonymous inode).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "epollcr.h"

/* Descriptors left beside the targets, for the restore's temporaries. */
#define SPARE_FDS 1024
#define RESTORE_TARGET 1.3

enum mode { MODE_EXISTING, MODE_RECREATE, NR_MODES };

/* What a child times. */
enum side { SIDE_PLAIN, SIDE_RESTORE, SIDE_FLOOR, NR_SIDES };

static const char *const mode_names[NR_MODES] = { "existing", "recreate" };

/* What a child reports through its pipe (one write, under PIPE_BUF). */
struct child_result {
	uint64_t ns;
	int ok;
	char err[240];
};

/* The process's watches, and the image of them. */
struct setup {
	struct bench_shape shape;
	int *fds;		/* the targets */
	unsigned long nfds;
	int *epfds;		/* the sets */
	unsigned long nsets;
	int *scratch;		/* the plain side's recreated targets */
	int *scratch_sets;	/* the plain side's sets */
	char image[256];
};

static unsigned long nwatches(const struct setup *su)
{
	return su->shape.nsets * su->shape.ntargets;
}

/*
 * What creates the watches and dumps them: the shim's functions, from the
 * library (EPOLLCR_BENCH_LIB) loaded with RTLD_LOCAL, so that the image is
 * what a preloaded program's dump gives while nothing else in this
 * process (the timed children above all) goes through the shim; or, when
 * it cannot be loaded, libc's and the linked recorder (the kernel's view).
 */
struct maker {
	int (*eventfd_fn)(unsigned int initval, int flags);
	int (*epoll_create1_fn)(int flags);
	int (*epoll_ctl_fn)(int epfd, int op, int fd, struct epoll_event *ev);
	int (*dump_fn)(const char *image_path);
};

static struct maker maker = {
	.eventfd_fn = eventfd,
	.epoll_create1_fn = epoll_create1,
	.epoll_ctl_fn = epoll_ctl,
	.dump_fn = epollcr_dump_self,
};

static void maker_init(void)
{
	const char *lib = getenv("EPOLLCR_BENCH_LIB");
	void *h = lib && *lib ? dlopen(lib, RTLD_NOW | RTLD_LOCAL) : NULL;
	struct maker m;

	if (h) {
		*(void **)&m.eventfd_fn = dlsym(h, "eventfd");
		*(void **)&m.epoll_create1_fn = dlsym(h, "epoll_create1");
		*(void **)&m.epoll_ctl_fn = dlsym(h, "epoll_ctl");
		*(void **)&m.dump_fn = dlsym(h, "epollcr_dump_self");
		if (m.eventfd_fn && m.epoll_create1_fn && m.epoll_ctl_fn &&
		    m.dump_fn) {
			maker = m;
			return;
		}
	}
	printf("# bench_restore: EPOLLCR_BENCH_LIB not loadable (%s): the images hold the kernel's view only\n",
	       h ? "symbols missing" : lib && *lib ? dlerror() : "unset");
}

/* Create the shape's eventfds and sets, and dump them.  0 or -errno. */
static int setup_create(struct setup *su, const struct bench_shape *shape)
{
	memset(su, 0, sizeof(*su));
	su->shape = *shape;
	su->fds = calloc(shape->ntargets, sizeof(*su->fds));
	su->scratch = calloc(shape->ntargets, sizeof(*su->scratch));
	su->epfds = calloc(shape->nsets, sizeof(*su->epfds));
	su->scratch_sets = calloc(shape->nsets, sizeof(*su->scratch_sets));
	if (!su->fds || !su->scratch || !su->epfds || !su->scratch_sets)
		return -ENOMEM;
	for (; su->nfds < shape->ntargets; su->nfds++) {
		int fd = maker.eventfd_fn(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return -errno;
		su->fds[su->nfds] = fd;
	}
	for (; su->nsets < shape->nsets; su->nsets++) {
		int epfd = maker.epoll_create1_fn(EPOLL_CLOEXEC);
		if (epfd < 0)
			return -errno;
		su->epfds[su->nsets] = epfd;
		for (unsigned long i = 0; i < su->nfds; i++) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.u64 = i };
			if (maker.epoll_ctl_fn(epfd, EPOLL_CTL_ADD, su->fds[i],
						&ev) < 0)
				return -errno;
		}
	}
	snprintf(su->image, sizeof(su->image), "%s/epollcr-bench-restore-%d.img",
		 bench_tmp_dir(), (int)getpid());
	return maker.dump_fn(su->image);
}

static void setup_destroy(struct setup *su)
{
	for (unsigned long i = 0; i < su->nsets; i++)
		close(su->epfds[i]);
	for (unsigned long i = 0; i < su->nfds; i++)
		close(su->fds[i]);
	if (su->image[0])
		unlink(su->image);
	free(su->epfds);
	free(su->fds);
	free(su->scratch);
	free(su->scratch_sets);
	memset(su, 0, sizeof(*su));
}

/* The plain side: the same sets and watches with plain calls. */
static int plain_rebuild(const struct setup *su, enum mode mode)
{
	const int *targets = su->fds;
	if (mode == MODE_RECREATE) {
		for (unsigned long i = 0; i < su->nfds; i++) {
			su->scratch[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (su->scratch[i] < 0)
				return -errno;
		}
		targets = su->scratch;
	}
	for (unsigned long s = 0; s < su->nsets; s++) {
		int epfd = epoll_create1(EPOLL_CLOEXEC);
		if (epfd < 0)
			return -errno;
		su->scratch_sets[s] = epfd;
		for (unsigned long i = 0; i < su->nfds; i++) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.u64 = i };
			if (epoll_ctl(epfd, EPOLL_CTL_ADD, targets[i], &ev) < 0)
				return -errno;
		}
	}
	return 0;
}

/* Read /proc/thread-self/<dir>/<fd> whole, in chunks; bytes or -errno. */
static long read_proc_fd(int dir, int fd, char *buf, size_t len)
{
	char name[16];
	long total = 0;
	ssize_t n;
	int pfd;

	snprintf(name, sizeof(name), "%d", fd);
	pfd = openat(dir, name, O_RDONLY | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	while ((n = read(pfd, buf, len)) > 0)
		total += n;
	close(pfd);
	return n < 0 ? -errno : total;
}

/*
 * The floor: the plain side, then what a restore must read back from the
 * kernel at the least: every set's fdinfo, and with targets=existing one
 * readlinkat() per target.
 */
static int floor_rebuild(const struct setup *su, enum mode mode,
			 const int *epfds)
{
	static char buf[64 * 1024];
	int ret = 0;

	if (mode == MODE_EXISTING) {
		int dir = open("/proc/thread-self/fd",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		char name[16], link[256];

		if (dir < 0)
			return -errno;
		for (unsigned long i = 0; i < su->nfds && ret == 0; i++) {
			snprintf(name, sizeof(name), "%d", su->fds[i]);
			if (readlinkat(dir, name, link, sizeof(link)) < 0)
				ret = -errno;
		}
		close(dir);
	}
	int dir = open("/proc/thread-self/fdinfo",
		       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	for (unsigned long s = 0; s < su->nsets && ret == 0; s++) {
		long n = read_proc_fd(dir, epfds[s], buf, sizeof(buf));
		ret = n < 0 ? (int)n : 0;
	}
	close(dir);
	return ret;
}

/* In the child: clear the fd table as the mode says, time one side. */
static void child_main(const struct setup *su, enum mode mode, enum side side,
		       int result_fd)
{
	struct child_result res = { 0 };

	if (mode == MODE_EXISTING) {
		for (unsigned long i = 0; i < su->nsets; i++)
			close(su->epfds[i]);
	} else {
		syscall(SYS_close_range, 3u, (unsigned)result_fd - 1, 0);
		syscall(SYS_close_range, (unsigned)result_fd + 1, ~0u, 0);
	}
	uint64_t t0 = bench_now_ns();
	if (side == SIDE_RESTORE) {
		struct epollcr_restore_options o = {
			.targets = mode == MODE_EXISTING ?
					   EPOLLCR_TARGETS_EXISTING :
					   EPOLLCR_TARGETS_RECREATE,
			.missing = EPOLLCR_MISSING_FAIL,
			.report_fd = -1,
		};
		res.ok = epollcr_restore(su->image, &o, res.err,
					 sizeof(res.err)) == 0;
	} else {
		int ret = plain_rebuild(su, mode);
		if (ret == 0 && side == SIDE_FLOOR)
			ret = floor_rebuild(su, mode, su->scratch_sets);
		res.ok = ret == 0;
		if (ret < 0)
			snprintf(res.err, sizeof(res.err), "%s",
				 strerror(-ret));
	}
	res.ns = bench_now_ns() - t0;
	if (write(result_fd, &res, sizeof(res)) != sizeof(res))
		_exit(1);
	_exit(0);
}

/*
 * Fork a child that times one side, and wait at most timeout_s for its
 * result (then kill it).  Returns 0, -ETIMEDOUT, or -errno when the child
 * could not be run or said nothing.
 */
static int run_child(const struct setup *su, enum mode mode, enum side side,
		     unsigned timeout_s, struct child_result *res)
{
	int p[2], ret = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(p[0]);
		close(p[1]);
		return ret;
	}
	if (pid == 0) {
		close(p[0]);
		child_main(su, mode, side, p[1]);
	}
	close(p[1]);
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	int n;
	do
		n = poll(&pfd, 1, (int)timeout_s * 1000);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		kill(pid, SIGKILL);
		ret = -ETIMEDOUT;
	} else if (read(p[0], res, sizeof(*res)) != (ssize_t)sizeof(*res)) {
		ret = -EPIPE;
	}
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return ret;
}

static unsigned rounds_for(unsigned long n)
{
	if (n <= 1000)
		return bench_rounds(30, 10);
	if (n <= 10000)
		return bench_rounds(10, 4);
	if (n <= 100000)
		return 5;
	return 3;
}

/* Seconds one size and mode may take. */
static unsigned restore_budget(void)
{
	return bench_quick() ? 15 : 240;
}

/*
 * Both sides of one mode, round by round, within the budget.  Returns the
 * mean time of one restore in seconds, 0 when none completed.
 */
static double measure_mode(const struct setup *su, enum mode mode)
{
	static const char *const side_names[NR_SIDES] = { "plain", "restore",
							  "floor" };
	unsigned rounds = rounds_for(nwatches(su)), budget = restore_budget();
	char name[96], fname[112], why[300];
	struct bench_series s, fl;
	double restore_s = 0;
	uint64_t start = bench_now_ns();

	snprintf(name, sizeof(name), "restore.%s %s", mode_names[mode],
		 su->shape.label);
	snprintf(fname, sizeof(fname), "restore.%s.vs-floor %s",
		 mode_names[mode], su->shape.label);
	if (bench_series_init(&s, rounds, (double)nwatches(su)) < 0)
		goto err_mem;
	if (bench_series_init(&fl, rounds, (double)nwatches(su)) < 0) {
		bench_series_free(&s);
		goto err_mem;
	}
	s.raw_label = "plain";
	s.shim_label = "restore";
	fl.raw_label = "floor";
	fl.shim_label = "restore";

	for (unsigned r = 0; r < rounds; r++) {
		struct child_result res[NR_SIDES];
		/* Each round starts with the next side. */
		for (unsigned k = 0; k < NR_SIDES; k++) {
			enum side side = (enum side)((r + k) % NR_SIDES);
			int ret = run_child(su, mode, side, 2 * budget,
					    &res[side]);
			if (ret < 0 || !res[side].ok) {
				snprintf(why, sizeof(why), "%s side: %s",
					 side_names[side],
					 ret == -ETIMEDOUT ? "over the time budget, killed" :
					 ret < 0 ? strerror(-ret) :
						   res[side].err);
				bench_report_skip(name, why);
				bench_series_free(&s);
				bench_series_free(&fl);
				return 0;
			}
		}
		bench_series_add(&s, res[SIDE_PLAIN].ns, res[SIDE_RESTORE].ns);
		bench_series_add(&fl, res[SIDE_FLOOR].ns, res[SIDE_RESTORE].ns);
		restore_s += (double)res[SIDE_RESTORE].ns / 1e9;
		/* Stop early rather than overrun the budget. */
		double spent = (double)(bench_now_ns() - start) / 1e9;
		if (spent / (r + 1) * (r + 2) > budget)
			break;
	}
	snprintf(why, sizeof(why), "per watch; %.1f s in all",
		 (double)(bench_now_ns() - start) / 1e9);
	bench_report_ratio(name, &s, RESTORE_TARGET, why);
	bench_report_ratio(fname, &fl, RESTORE_TARGET,
			   mode == MODE_EXISTING ?
				   "floor: plain + the sets' fdinfo + one readlinkat per target" :
				   "floor: plain + the sets' fdinfo");
	restore_s /= s.nrounds ? s.nrounds : 1;
	bench_series_free(&s);
	bench_series_free(&fl);
	return restore_s;

err_mem:
	bench_report_skip(name, "out of memory");
	return 0;
}

/* One size in this process (see bench_sizes_main()). */
static void run_size(unsigned long n, double predicted, double exponent,
		     double *op_seconds)
{
	char size[16], name[64], why[240];
	struct bench_shape shape;
	struct setup su;

	bench_size_label(n, size, sizeof(size));
	snprintf(name, sizeof(name), "restore %s", size);
	if (bench_preloaded())
		printf("# bench_restore: libepollcr.so is preloaded: both sides' epoll_ctl go through the shim\n");
	if (predicted * 4 > restore_budget()) {
		snprintf(why, sizeof(why), "one restore predicted to take %.0f s (time grows as N^%.1f over the smaller sizes), over this size's %u s budget",
			 predicted, exponent, restore_budget());
		bench_report_skip(name, why);
		return;
	}
	if (bench_shape_for(n, SPARE_FDS, &shape, why, sizeof(why)) < 0) {
		bench_report_skip(name, why);
		return;
	}
	maker_init();
	int ret = setup_create(&su, &shape);
	if (ret < 0) {
		snprintf(why, sizeof(why), "setting up %lu watches and dumping them: %s",
			 n, strerror(-ret));
		bench_report_skip(name, why);
	} else {
		for (int m = 0; m < NR_MODES; m++) {
			double t = measure_mode(&su, (enum mode)m);
			if (t > *op_seconds)
				*op_seconds = t;
		}
	}
	setup_destroy(&su);
}

/*
 * The shim's thread-locals are initial-exec (it is meant to be preloaded),
 * so dlopen() of it needs static TLS room that glibc reserves only when
 * asked: run again with glibc.rtld.optional_static_tls raised, once.
 */
static void reexec_for_tls(char **argv)
{
	const char *lib = getenv("EPOLLCR_BENCH_LIB"), *old;
	char tun[1024];

	if (!lib || !*lib || getenv("EPOLLCR_BENCH_TLS"))
		return;
	old = getenv("GLIBC_TUNABLES");
	snprintf(tun, sizeof(tun), "%s%sglibc.rtld.optional_static_tls=65536",
		 old && *old ? old : "", old && *old ? ":" : "");
	if (setenv("GLIBC_TUNABLES", tun, 1) < 0 ||
	    setenv("EPOLLCR_BENCH_TLS", "1", 1) < 0)
		return;
	execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
	reexec_for_tls(argv);
	return bench_sizes_main(argc, argv, "bench_restore", run_size);
}
