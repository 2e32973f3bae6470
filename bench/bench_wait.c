// SPDX-License-Identifier: MIT
/*
 * Figure 4: a busy EPOLLONESHOT event loop under the shim against the raw
 * libc functions, in one process run under LD_PRELOAD.  The loop is its
 * own peer: it writes to NTARGETS eventfds, collects them with epoll_wait,
 * and for each event reads the eventfd and re-arms it with EPOLL_CTL_MOD,
 * as a oneshot server re-arms a connection.  Only epoll_ctl goes through
 * the shim (epoll_wait, read and write are not wrapped): the figure says
 * how much that costs a whole loop.  Run once per backtrace setting.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

#define NTARGETS 64	 /* eventfds per side, all ready in every pass */
#define PASSES 16	 /* passes per batch: NTARGETS * PASSES events */
#define MAX_WAITS 1000	 /* epoll_wait calls per pass before giving up */
#define WARMUP_ROUNDS 3
#define ONESHOT_IN (EPOLLIN | EPOLLONESHOT)

struct loop {
	int epfd;
	int fds[NTARGETS];
	int nfds;
	int (*ctl)(int epfd, int op, int fd, struct epoll_event *event);
	int (*close_fn)(int fd);
	unsigned errors;
};

static int loop_open(struct loop *l, int (*create1)(int),
		     int (*mkevfd)(unsigned int, int),
		     int (*ctl)(int, int, int, struct epoll_event *),
		     int (*close_fn)(int))
{
	memset(l, 0, sizeof(*l));
	l->ctl = ctl;
	l->close_fn = close_fn;
	l->epfd = create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	for (; l->nfds < NTARGETS; l->nfds++) {
		int fd = mkevfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			goto err_close_all;
		l->fds[l->nfds] = fd;
		struct epoll_event ev = { .events = ONESHOT_IN,
					  .data.u32 = (uint32_t)l->nfds };
		if (ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close_fn(fd);
			goto err_close_all;
		}
	}
	return 0;

err_close_all: {
	int err = -errno;
	while (l->nfds--)
		close_fn(l->fds[l->nfds]);
	close_fn(l->epfd);
	return err;
}
}

static void loop_close(struct loop *l)
{
	l->close_fn(l->epfd);
	for (int i = 0; i < l->nfds; i++)
		l->close_fn(l->fds[i]);
}

/* PASSES passes of: write every target, wait, read and re-arm each. */
static uint64_t loop_run(struct loop *l)
{
	struct epoll_event evs[NTARGETS];
	uint64_t one = 1, val;
	uint64_t t0 = bench_now_ns();

	for (int p = 0; p < PASSES; p++) {
		for (int i = 0; i < l->nfds; i++)
			if (write(l->fds[i], &one, sizeof(one)) != sizeof(one))
				l->errors++;
		int got = 0;
		for (int w = 0; got < l->nfds && w < MAX_WAITS; w++) {
			int n = epoll_wait(l->epfd, evs, NTARGETS, 1000);
			if (n < 0) {
				l->errors++;
				continue;
			}
			for (int i = 0; i < n; i++) {
				int fd = l->fds[evs[i].data.u32 % NTARGETS];
				if (read(fd, &val, sizeof(val)) != sizeof(val))
					l->errors++;
				struct epoll_event ev = { .events = ONESHOT_IN,
							  .data = evs[i].data };
				if (l->ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev))
					l->errors++;
			}
			got += n;
		}
		if (got < l->nfds)
			l->errors++;
	}
	return bench_now_ns() - t0;
}

int main(void)
{
	struct bench_libc libc_raw;
	struct loop raw, shim;
	struct bench_series s;
	unsigned rounds = bench_rounds(300, 40);
	char name[64], note[64];
	int ret;

	snprintf(name, sizeof(name), "wait.oneshot-loop %s", bench_bt_label());
	if (bench_libc_resolve(&libc_raw) < 0) {
		bench_report_skip(name, "libc.so.6 not found");
		return 0;
	}
	if (!bench_preloaded())
		printf("# bench_wait: libepollcr.so is not preloaded: both sides are raw\n");
	ret = loop_open(&raw, libc_raw.epoll_create1, libc_raw.eventfd,
			libc_raw.epoll_ctl, libc_raw.close);
	if (ret < 0) {
		bench_report_skip(name, strerror(-ret));
		return 0;
	}
	ret = loop_open(&shim, epoll_create1, eventfd, epoll_ctl, close);
	if (ret < 0) {
		bench_report_skip(name, strerror(-ret));
		goto err_close_raw;
	}
	if (bench_series_init(&s, rounds, (double)NTARGETS * PASSES) < 0) {
		bench_report_skip(name, "out of memory");
		goto err_close_shim;
	}
	for (unsigned r = 0; r < rounds + WARMUP_ROUNDS; r++) {
		uint64_t raw_ns, shim_ns;
		if (r % 2) {
			raw_ns = loop_run(&raw);
			shim_ns = loop_run(&shim);
		} else {
			shim_ns = loop_run(&shim);
			raw_ns = loop_run(&raw);
		}
		if (r >= WARMUP_ROUNDS)
			bench_series_add(&s, raw_ns, shim_ns);
	}
	snprintf(note, sizeof(note), "per event; errors=%u",
		 raw.errors + shim.errors);
	bench_report_ratio(name, &s, 1.02,
			   raw.errors + shim.errors ? note : "per event");
	bench_series_free(&s);
err_close_shim:
	loop_close(&shim);
err_close_raw:
	loop_close(&raw);
	return 0;
}
