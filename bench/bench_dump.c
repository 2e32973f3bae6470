// SPDX-License-Identifier: MIT
/*
 * Figures 5 and 7, run under LD_PRELOAD, for each size N (argv, or 1k,
 * 10k, 100k, 1M; QUICK: 1k and 10k), each size in a fresh process:
 *
 * - registry bytes per watch: malloc's own accounting (mallinfo2: bytes in
 *   use in the arenas plus mmapped chunks) before and after the eventfds
 *   are created under the shim, and after the ADDs: the watch cost alone
 *   (targets created before the measurement) and including the targets
 *   (what the shim keeps per file, and its fd table).
 * - dump: epollcr_dump_self() of the process (the preloaded library's, so
 *   the shadow is merged in) to a file on tmpfs, against reading the same
 *   sets' /proc/self/fdinfo in full, alternating round by round; and the
 *   image's bytes per watch.  A second line (dump.vs-floor) sets the same
 *   dumps against the floor of a dump whose facts come from the kernel:
 *   the sets' fdinfo plus each target's own fdinfo, read once.
 *
 * With EPOLLCR_BENCH_SHAPE=server the targets are a server's instead of
 * eventfds (issue 14 item 1): per 100 targets, 1 listening TCP socket
 * (the first), 60 accepted TCP connections (their client ends held too,
 * not watched), 10 unix socketpair ends, 5 eventfds, 5 timerfds, 10 pipe
 * read ends (the write ends held, not watched), the rest accepted TCP
 * (lines "dump.server ...").  Its bulk floor (dump.server.vs-bulk-floor)
 * is what a dump taking the kernel's facts in bulk must read: the sets'
 * fdinfo, one sock_diag dump per family and protocol (TCP and UDP over
 * IPv4 and IPv6, AF_UNIX) and the fdinfo of the targets no bulk source
 * describes (eventfd, timerfd, pipe).
 *
 * N watches are one set of N eventfds when N descriptors fit under
 * RLIMIT_NOFILE (raised to the hard limit, and as root up to nr_open);
 * otherwise N/T sets each watching the same T eventfds (bench_shape_for()),
 * and the line's label says so ("1M=100x10k").
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "epollcr.h"
#include "inet_diag.h"
#include "unix_diag.h"

#define SPARE_FDS 64	     /* descriptors needed beside the targets */
#define READ_CHUNK (1u << 20) /* fdinfo read buffer */
#define REG_TARGET 64.0	     /* registry bytes per watch */
#define IMAGE_TARGET 40.0    /* image bytes per watch */
#define DUMP_TARGET 2.0	     /* dump time / fdinfo read time */

typedef int (*dump_fn)(const char *image_path);

/* Bytes malloc has handed out and not got back, mmapped chunks included. */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* Rounds for a size: fewer for the large ones. */
static unsigned rounds_for(unsigned long n)
{
	if (n <= 1000)
		return bench_rounds(40, 15);
	if (n <= 10000)
		return bench_rounds(15, 5);
	if (n <= 100000)
		return 5;
	return 3;
}

/*
 * Read /proc/self/fdinfo/EPFD to the end through buf.  Returns the bytes
 * read, or -errno.
 */
static long read_fdinfo(int epfd, char *buf, size_t len)
{
	char path[64];
	long total = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0) {
			int err = -errno;
			close(fd);
			return err;
		}
		if (n == 0)
			break;
		total += n;
	}
	close(fd);
	return total;
}

/* The watches: targets, sets, and the heap in use at each step. */
struct watches {
	struct bench_shape shape;
	int *fds;
	unsigned long nfds;
	bool server;		/* the server shape, not eventfds */
	char *perfd;		/* server: target i needs its own fdinfo */
	int *held;		/* server: fds held, not watched */
	unsigned long nheld;
	int listener;
	int *epfds;
	unsigned long nsets;
	size_t heap_before, heap_targets, heap_watches;
};

static unsigned long nwatches(const struct watches *w)
{
	return w->shape.nsets * w->shape.ntargets;
}

static bool server_shape(void)
{
	const char *v = getenv("EPOLLCR_BENCH_SHAPE");

	return v && strcmp(v, "server") == 0;
}

static int hold(struct watches *w, int fd)
{
	if (fd < 0)
		return -errno;
	w->held[w->nheld++] = fd;
	return 0;
}

/* An accepted connection to w->listener: its server end, or -errno. */
static int server_accepted(struct watches *w)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int c, ret;

	if (getsockname(w->listener, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if ((ret = hold(w, c)) < 0)
		return ret;
	/* Reset on close: no TIME_WAIT left to use up the local ports. */
	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(c, (struct sockaddr *)&a, len) < 0)
		return -errno;
	int s = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (s < 0)
		return -errno;
	setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	return s;
}

/* Target i of the server shape (see the top of this file), or -errno. */
static int server_target(struct watches *w, unsigned long i)
{
	unsigned long k = i % 100;
	int fd, sv[2], p[2];

	if (k < 60 || k >= 90)
		return server_accepted(w);
	if (k < 70) {
		if (k % 2)
			return w->held[--w->nheld]; /* the pair's other end */
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
						SOCK_NONBLOCK, 0, sv) < 0)
			return -errno;
		w->held[w->nheld++] = sv[1];
		return sv[0];
	}
	w->perfd[i] = 1;
	if (k < 75)
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	else if (k < 80)
		fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	else if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		fd = -1;
	else
		fd = hold(w, p[1]) < 0 ? -1 : p[0];
	return fd < 0 ? -errno : fd;
}

/* The server shape's listening socket on loopback. */
static int server_listen(struct watches *w)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	w->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w->listener < 0)
		return -errno;
	setsockopt(w->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(w->listener, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(w->listener, 4096) < 0)
		return -errno;
	return 0;
}

/*
 * Create the shape's targets (eventfds, or a server's), then its sets,
 * each watching them all.  Returns 0 or -errno (what was created stays
 * for watches_destroy()).
 */
static int watches_create(struct watches *w, const struct bench_shape *shape)
{
	memset(w, 0, sizeof(*w));
	w->shape = *shape;
	w->listener = -1;
	w->server = server_shape();
	w->fds = calloc(shape->ntargets, sizeof(*w->fds));
	w->epfds = calloc(shape->nsets, sizeof(*w->epfds));
	if (!w->fds || !w->epfds)
		return -ENOMEM;
	if (w->server) {
		w->perfd = calloc(shape->ntargets, 1);
		w->held = calloc(shape->ntargets, sizeof(*w->held));
		if (!w->perfd || !w->held)
			return -ENOMEM;
		int ret = server_listen(w);
		if (ret < 0)
			return ret;
	}
	w->heap_before = heap_in_use();
	for (; w->nfds < shape->ntargets; w->nfds++) {
		int fd = w->server ? (w->nfds == 0 ? dup(w->listener)
						   : server_target(w, w->nfds))
				   : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return w->server ? (fd == -1 ? -errno : fd) : -errno;
		w->fds[w->nfds] = fd;
	}
	w->heap_targets = heap_in_use();
	for (; w->nsets < shape->nsets; w->nsets++) {
		int epfd = epoll_create1(EPOLL_CLOEXEC);
		if (epfd < 0)
			return -errno;
		w->epfds[w->nsets] = epfd;
		for (unsigned long i = 0; i < w->nfds; i++) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.u64 = i };
			if (epoll_ctl(epfd, EPOLL_CTL_ADD, w->fds[i], &ev) < 0)
				return -errno;
		}
	}
	w->heap_watches = heap_in_use();
	return 0;
}

/* Close the sets first: the kernel then drops their watches in one go. */
static void watches_destroy(struct watches *w)
{
	for (unsigned long i = 0; i < w->nsets; i++)
		close(w->epfds[i]);
	for (unsigned long i = 0; i < w->nfds; i++)
		close(w->fds[i]);
	for (unsigned long i = 0; i < w->nheld; i++)
		close(w->held[i]);
	if (w->listener >= 0)
		close(w->listener);
	free(w->held);
	free(w->perfd);
	free(w->epfds);
	free(w->fds);
	memset(w, 0, sizeof(*w));
}

static void report_registry(const struct watches *w)
{
	char name[80];

	if (!bench_preloaded()) {
		snprintf(name, sizeof(name), "registry %s", w->shape.label);
		bench_report_skip(name, "libepollcr.so is not preloaded");
		return;
	}
	double n = (double)nwatches(w);
	double watch_only = ((double)w->heap_watches -
			     (double)w->heap_targets) / n;
	double with_targets = ((double)w->heap_watches -
			       (double)w->heap_before) / n;

	snprintf(name, sizeof(name), "registry.watch-only %s", w->shape.label);
	bench_report_value(name, watch_only, "B/watch", REG_TARGET,
			   "mallinfo2, targets created before");
	snprintf(name, sizeof(name), "registry.with-targets %s",
		 w->shape.label);
	bench_report_value(name, with_targets, "B/watch", REG_TARGET,
			   "mallinfo2, eventfds created under the shim");
}

/* Read every set's fdinfo.  Returns the bytes read, or -errno. */
static long read_all_fdinfo(const struct watches *w, char *buf)
{
	long total = 0;
	for (unsigned long i = 0; i < w->nsets; i++) {
		long n = read_fdinfo(w->epfds[i], buf, READ_CHUNK);
		if (n < 0)
			return n;
		total += n;
	}
	return total;
}

/*
 * Add to total (bytes read so far, or -errno: returned as it is) one short
 * read of the fdinfo of each target fd (with only_perfd, of those no bulk
 * source describes), the cheapest way: relative to the directory.  Returns
 * the bytes read or -errno.
 */
static long read_targets_fdinfo(const struct watches *w, bool only_perfd,
				char *buf, long total)
{
	int dir;
	char name[16];

	if (total < 0)
		return total;
	dir = open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	for (unsigned long i = 0; total >= 0 && i < w->nfds; i++) {
		if (only_perfd && !w->perfd[i])
			continue;
		snprintf(name, sizeof(name), "%d", w->fds[i]);
		int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, READ_CHUNK);

		total = n < 0 ? -errno : total + n;
		if (fd >= 0)
			close(fd);
	}
	close(dir);
	return total;
}

/*
 * The least a dump that takes its facts from the kernel reads: every set's
 * fdinfo and, once each, every target's own fdinfo (an eventfd's counter
 * is nowhere else).  Returns the bytes read or -errno.
 */
static long read_floor_fdinfo(const struct watches *w, char *buf)
{
	return read_targets_fdinfo(w, false, buf, read_all_fdinfo(w, buf));
}

static int count_inet(void *ctx, const struct inet_diag_sock *s)
{
	(void)s;
	++*(long *)ctx;
	return 0;
}

static int count_unix(void *ctx, const struct unix_diag_sock *s)
{
	(void)s;
	++*(long *)ctx;
	return 0;
}

/*
 * The server shape's floor with the kernel's facts in bulk: the sets'
 * fdinfo, one sock_diag dump per family and protocol, and the fdinfo of
 * the targets no bulk source describes.  Returns the bytes read or -errno.
 */
static long read_bulk_floor(const struct watches *w, char *buf)
{
	static const uint32_t inet[][2] = {
		{ AF_INET, IPPROTO_TCP }, { AF_INET6, IPPROTO_TCP },
		{ AF_INET, IPPROTO_UDP }, { AF_INET6, IPPROTO_UDP },
	};
	long total = read_all_fdinfo(w, buf), socks = 0;

	for (unsigned k = 0; total >= 0 && k < 4; k++) {
		int ret = inet_diag_dump(inet[k][0], inet[k][1], count_inet,
					 &socks);
		if (ret < 0 && ret != -ENOENT)
			total = ret;
	}
	if (total >= 0 && unix_diag_dump(count_unix, &socks) < 0)
		total = -EIO;
	return read_targets_fdinfo(w, true, buf, total);
}

/*
 * The clock of a round's sides: CLOCK_MONOTONIC, or with
 * EPOLLCR_BENCH_CLOCK=cpu the calling thread's CPU time (the dump runs in
 * it), which other processes on a shared machine disturb much less.
 */
static uint64_t side_now_ns(void)
{
	static int cpu = -1;
	struct timespec ts;

	if (cpu < 0) {
		const char *v = getenv("EPOLLCR_BENCH_CLOCK");

		cpu = v && strcmp(v, "cpu") == 0;
	}
	if (!cpu)
		return bench_now_ns();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Seconds one size's dump measurement may take. */
static unsigned dump_budget(void)
{
	return bench_quick() ? 20 : 240;
}

/* One round: both sides, the order given by first_dump. */
static int dump_round(const struct watches *w, dump_fn dump,
		      const char *path, char *buf, bool first_dump,
		      uint64_t *fdinfo_ns, uint64_t *dump_ns, long *fdinfo_bytes,
		      uint64_t *floor_ns, uint64_t *bulk_ns)
{
	int ret = 0;
	for (int k = 0; k < (w->server ? 4 : 3); k++) {
		uint64_t t0 = side_now_ns();
		if (k == 3) {
			long n = read_bulk_floor(w, buf);
			if (n < 0)
				ret = (int)n;
			*bulk_ns = side_now_ns() - t0;
		} else if (k == 2) {
			long n = read_floor_fdinfo(w, buf);
			if (n < 0)
				ret = (int)n;
			*floor_ns = side_now_ns() - t0;
		} else if ((k == 0) != first_dump) {
			*fdinfo_bytes = read_all_fdinfo(w, buf);
			if (*fdinfo_bytes < 0)
				ret = (int)*fdinfo_bytes;
			*fdinfo_ns = side_now_ns() - t0;
		} else {
			int d = dump(path);
			if (d < 0)
				ret = d;
			*dump_ns = side_now_ns() - t0;
		}
	}
	return ret;
}

/*
 * Dump against fdinfo for one size, within the time budget (a size whose
 * dump is predicted from the smaller ones to overrun it is skipped); the
 * image's size per watch.  The mean time of one dump into *dump_s.
 */
static void measure_dump(const struct watches *w, dump_fn dump, char *buf,
			 double predicted, double k, double *dump_s)
{
	static char path[256], stop_line[256];
	unsigned rounds = rounds_for(nwatches(w)), budget = dump_budget();
	char name[96], note[200];
	struct bench_series s, fl, bf;
	uint64_t fdinfo_ns, dump_ns, floor_ns, bulk_ns = 0;
	long fdinfo_bytes = 0;
	struct stat st;

	snprintf(path, sizeof(path), "%s/epollcr-bench-%d.img", bench_tmp_dir(),
		 (int)getpid());
	const char *line = w->server ? "dump.server" : "dump";

	snprintf(name, sizeof(name), "%s %s", line, w->shape.label);
	if (predicted * 2 > budget) {
		snprintf(note, sizeof(note), "one dump predicted to take %.0f s (time grows as N^%.1f over the smaller sizes), over this size's %u s budget",
			 predicted, k, budget);
		bench_report_skip(name, note);
		return;
	}
	if (bench_series_init(&s, rounds, (double)nwatches(w)) < 0) {
		bench_report_skip(name, "out of memory");
		return;
	}
	if (bench_series_init(&fl, rounds, (double)nwatches(w)) < 0 ||
	    bench_series_init(&bf, rounds, (double)nwatches(w)) < 0) {
		bench_series_free(&s);
		bench_series_free(&fl);
		bench_report_skip(name, "out of memory");
		return;
	}
	s.raw_label = "fdinfo";
	s.shim_label = "dump";
	fl.raw_label = "floor";
	fl.shim_label = "dump";
	bf.raw_label = "bulk-floor";
	bf.shim_label = "dump";

	snprintf(stop_line, sizeof(stop_line), "%-30s stopped: over %u s (the watchdog ended this size)\n",
		 name, 2 * budget);
	bench_watchdog(2 * budget, stop_line, path);
	uint64_t start = bench_now_ns();
	/* A warm-up round, which also sizes the number of rounds. */
	int ret = dump_round(w, dump, path, buf, true, &fdinfo_ns, &dump_ns,
			     &fdinfo_bytes, &floor_ns, &bulk_ns);
	double round_s = (double)(fdinfo_ns + dump_ns + floor_ns + bulk_ns) /
			 1e9;
	if (round_s * (rounds + 1) > budget)
		rounds = round_s > budget / 2.0 ? 1 :
						  (unsigned)(budget / round_s) - 1;
	for (unsigned r = 0; r < rounds && ret == 0; r++) {
		ret = dump_round(w, dump, path, buf, r % 2, &fdinfo_ns,
				 &dump_ns, &fdinfo_bytes, &floor_ns, &bulk_ns);
		bench_series_add(&s, fdinfo_ns, dump_ns);
		bench_series_add(&fl, floor_ns, dump_ns);
		bench_series_add(&bf, bulk_ns, dump_ns);
	}
	bench_watchdog(0, NULL, NULL);
	if (ret < 0) {
		bench_report_skip(name, strerror(-ret));
	} else {
		for (unsigned r = 0; r < s.nrounds; r++)
			*dump_s += s.shim_ns[r] / 1e9 / s.nrounds;
		snprintf(note, sizeof(note), "per watch; fdinfo %ld bytes; %.1f s in all",
			 fdinfo_bytes, (double)(bench_now_ns() - start) / 1e9);
		bench_report_ratio(name, &s, DUMP_TARGET, note);
		snprintf(name, sizeof(name), "%s.vs-floor %s", line,
			 w->shape.label);
		bench_report_ratio(name, &fl, DUMP_TARGET,
				   "floor: the sets' fdinfo plus one fdinfo read per target");
		if (w->server) {
			snprintf(name, sizeof(name), "%s.vs-bulk-floor %s",
				 line, w->shape.label);
			bench_report_ratio(name, &bf, DUMP_TARGET,
					   "bulk floor: the sets' fdinfo, sock_diag dumps, fdinfo of eventfd/timerfd/pipe targets");
		}
		snprintf(name, sizeof(name), "image.bytes/watch%s %s",
			 w->server ? ".server" : "", w->shape.label);
		if (stat(path, &st) == 0)
			bench_report_value(name, (double)st.st_size /
					   (double)nwatches(w), "B/watch",
					   IMAGE_TARGET, NULL);
		else
			bench_report_skip(name, strerror(errno));
	}
	unlink(path);
	bench_series_free(&bf);
	bench_series_free(&fl);
	bench_series_free(&s);
}

static char read_buf[READ_CHUNK];

/* One size in this process (see bench_sizes_main()). */
static void run_size(unsigned long n, double predicted, double exponent,
		     double *dump_s)
{
	char size[16], name[64], why[200];
	struct bench_shape shape;
	struct watches w;

	dump_fn dump = (dump_fn)dlsym(RTLD_DEFAULT, "epollcr_dump_self");
	if (!bench_preloaded() || !dump) {
		printf("# bench_dump: libepollcr.so is not preloaded: the dump records the kernel's view only, and the registry lines measure nothing\n");
		dump = epollcr_dump_self;
	}
	bench_size_label(n, size, sizeof(size));
	snprintf(name, sizeof(name), "dump+registry %s", size);
	/* The server shape holds about 0.7 more fds per target (clients,
	 * pipe write ends). */
	long spare = SPARE_FDS + (server_shape() ? (long)(7 * (n < 10000 ? n : 10000) / 10) : 0);

	if (bench_shape_for(n, spare, &shape, why, sizeof(why)) < 0) {
		bench_report_skip(name, why);
		return;
	}
	int ret = watches_create(&w, &shape);
	if (ret < 0) {
		snprintf(why, sizeof(why), "creating %lu watches: %s", n,
			 strerror(-ret));
		bench_report_skip(name, why);
		watches_destroy(&w);
		return;
	}
	if (!w.server)
		report_registry(&w);
	measure_dump(&w, dump, read_buf, predicted, exponent, dump_s);
	watches_destroy(&w);
}

int main(int argc, char **argv)
{
	return bench_sizes_main(argc, argv, "bench_dump", run_size);
}
