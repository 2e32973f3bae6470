// SPDX-License-Identifier: MIT
/*
 * Issue 14 item 4: `epollcr verify` of another process, for each size N
 * (argv, or 1k, 10k, 100k, 1M; QUICK: 1k and 10k), each size in a fresh
 * process.  A forked child holds the watches (N eventfds in one set, or
 * N/T sets each watching the same T eventfds, see bench_shape_for()) and
 * waits; the parent times what `epollcr verify --pid CHILD` does (the
 * kernel view of the child, kview_snapshot(), then kview_compare() with an
 * image of it taken before) against reading the child's sets'
 * /proc/PID/fdinfo, alternating round by round.  No preload: the child is
 * any process, the view has no shadow to lean on.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "image_io.h"
#include "kview.h"

#define SPARE_FDS 64	      /* descriptors needed beside the targets */
#define READ_CHUNK (1u << 20) /* fdinfo read buffer */
#define VERIFY_TARGET 4.0     /* verify time / the sets' fdinfo read */

static char read_buf[READ_CHUNK];

/* The child: the shape's watches, then wait for the parent's word. */
static void child_main(const struct bench_shape *shape, int ready, int hold,
		       int *epfds)
{
	int *fds = calloc(shape->ntargets, sizeof(*fds));
	char c = 1;

	if (!fds)
		_exit(1);
	for (unsigned long i = 0; i < shape->ntargets; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			_exit(1);
	for (unsigned long s = 0; s < shape->nsets; s++) {
		int epfd = epoll_create1(EPOLL_CLOEXEC);

		if (epfd < 0)
			_exit(1);
		epfds[s] = epfd;
		for (unsigned long i = 0; i < shape->ntargets; i++) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.u64 = i };

			if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0)
				_exit(1);
		}
	}
	if (write(ready, epfds, shape->nsets * sizeof(int)) < 0)
		_exit(1);
	(void)!read(hold, &c, 1); /* until the parent closes its end */
	_exit(0);
}

/* Read the child's sets' fdinfo.  Returns the bytes read or -errno. */
static long read_sets(pid_t pid, const int *epfds, unsigned long nsets)
{
	char path[64];
	long total = 0;

	for (unsigned long s = 0; s < nsets; s++) {
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid,
			 epfds[s]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			return -errno;
		for (;;) {
			ssize_t n = read(fd, read_buf, sizeof(read_buf));

			if (n < 0) {
				close(fd);
				return -errno;
			}
			if (n == 0)
				break;
			total += n;
		}
		close(fd);
	}
	return total;
}

/* What `epollcr verify` does: a kernel view of pid compared with img. */
static int verify_once(pid_t pid, const struct image *img)
{
	struct image live;
	int ret;

	image_init(&live);
	ret = kview_snapshot(pid, &live, 0, NULL);
	if (ret == 0)
		ret = kview_compare(img, &live, -1);
	image_free(&live);
	return ret > 0 ? -EPROTO : ret;
}

static unsigned rounds_for(unsigned long n)
{
	if (n <= 1000)
		return bench_rounds(20, 7);
	if (n <= 10000)
		return bench_rounds(7, 3);
	return 3;
}

static void run_size(unsigned long n, double predicted, double exponent,
		     double *op_s)
{
	static char stop_line[256];
	char size[16], name[64], why[200], note[200];
	struct bench_shape shape;
	int ready[2], hold[2], *epfds;
	struct bench_series s;
	struct image img;
	unsigned rounds = rounds_for(n), budget = bench_quick() ? 20 : 240;
	pid_t pid;
	int ret = 0;

	bench_size_label(n, size, sizeof(size));
	snprintf(name, sizeof(name), "verify.other %s", size);
	if (bench_shape_for(n, SPARE_FDS, &shape, why, sizeof(why)) < 0) {
		bench_report_skip(name, why);
		return;
	}
	snprintf(name, sizeof(name), "verify.other %s", shape.label);
	if (predicted * 2 > budget) {
		snprintf(note, sizeof(note), "one verify predicted to take %.0f s (time grows as N^%.1f over the smaller sizes), over this size's %u s budget",
			 predicted, exponent, budget);
		bench_report_skip(name, note);
		return;
	}
	epfds = calloc(shape.nsets, sizeof(*epfds));
	if (!epfds || pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) {
		bench_report_skip(name, "no memory or pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		child_main(&shape, ready[1], hold[0], epfds);
	}
	close(ready[1]);
	close(hold[0]);
	if (pid < 0 || read(ready[0], epfds, shape.nsets * sizeof(int)) !=
			       (ssize_t)(shape.nsets * sizeof(int))) {
		bench_report_skip(name, "the child could not create its watches");
		goto out;
	}
	image_init(&img);
	snprintf(stop_line, sizeof(stop_line), "%-30s stopped: over %u s (the watchdog ended this size)\n",
		 name, 2 * budget);
	bench_watchdog(2 * budget, stop_line, NULL);
	uint64_t start = bench_now_ns(), t0 = start;
	ret = kview_snapshot(pid, &img, 0, NULL);
	double first_s = (double)(bench_now_ns() - t0) / 1e9;

	if (first_s * 2 * (rounds + 1) > budget)
		rounds = first_s * 2 > budget / 2.0 ? 1 :
			(unsigned)(budget / (first_s * 2)) - 1;
	if (ret == 0 && bench_series_init(&s, rounds, (double)n) < 0)
		ret = -ENOMEM;
	if (ret == 0) {
		s.raw_label = "fdinfo";
		s.shim_label = "verify";
		for (unsigned r = 0; r < rounds && ret == 0; r++) {
			uint64_t fdinfo_ns = 0, verify_ns = 0;

			for (int k = 0; k < 2 && ret == 0; k++) {
				long got;

				t0 = bench_now_ns();
				if ((k == 0) == (r % 2 == 0)) {
					got = read_sets(pid, epfds, shape.nsets);
					ret = got < 0 ? (int)got : 0;
					fdinfo_ns = bench_now_ns() - t0;
				} else {
					ret = verify_once(pid, &img);
					verify_ns = bench_now_ns() - t0;
				}
			}
			bench_series_add(&s, fdinfo_ns, verify_ns);
		}
		bench_watchdog(0, NULL, NULL);
		if (ret == 0) {
			for (unsigned r = 0; r < s.nrounds; r++)
				*op_s += s.shim_ns[r] / 1e9 / s.nrounds;
			snprintf(note, sizeof(note), "per watch; %.1f s in all",
				 (double)(bench_now_ns() - start) / 1e9);
			bench_report_ratio(name, &s, VERIFY_TARGET, note);
		}
		bench_series_free(&s);
	}
	bench_watchdog(0, NULL, NULL);
	if (ret < 0)
		bench_report_skip(name, strerror(-ret));
	image_free(&img);
out:
	close(hold[1]);
	close(ready[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	free(epfds);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return bench_sizes_main(argc, argv, "bench_verify", run_size);
}
