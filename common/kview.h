/* SPDX-License-Identifier: MIT */
/*
 * The kernel's view of a process's epoll state, read from /proc/PID/fd,
 * /proc/PID/fdinfo and kcmp(2), with each target described through the
 * per-kind table in kind.h.  The recorder starts from this view and enriches
 * it with the shadow registry; `epollcr verify` compares an image with it.
 */
#ifndef EPOLLCR_KVIEW_H
#define EPOLLCR_KVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "epollcr_image.h"

/* One `tfd:` line of an epoll fd's fdinfo. */
struct fdinfo_watch {
	int32_t tfd;	 /* fd number given to ADD */
	uint32_t events; /* hex after events: */
	uint64_t data;	 /* hex after data: */
	uint64_t ino;	 /* hex after ino: */
	uint32_t sdev;	 /* hex after sdev: (kernel dev_t encoding) */
};

/*
 * Parse the text of an epoll fd's fdinfo (len bytes at text).  Calls
 * on_watch for each `tfd:` line in order and stores the `flags:` value in
 * *file_flags when that is not NULL.  Returns 0, -EINVAL on a malformed
 * tfd line, or the first non-zero value on_watch returned.
 */
int fdinfo_parse_epoll(const char *text, size_t len, unsigned *file_flags,
		       int (*on_watch)(void *ctx, const struct fdinfo_watch *w),
		       void *ctx);

/*
 * Hints the recorder passes to kview_snapshot() from the shadow registry so
 * that watches the shim is sure of cost no kcmp(2).  Any callback may be
 * NULL.  confirm_watch returns true and sets *open_fd when the shadow knows
 * which fd holds the file watched as (epfd, tfd) with these events/data.
 */
struct kview_hints {
	void *ctx;
	bool (*confirm_watch)(void *ctx, int epfd, int tfd, uint32_t events,
			      uint64_t data, int *open_fd);
};

#define KVIEW_F_ALL_FDS 0x1  /* describe every fd, not only epoll-related */
#define KVIEW_F_FULL_KCMP 0x2 /* ignore hints: resolve every watch by kcmp */

/*
 * Fill img (initialised by the caller) with the kernel's view of pid
 * (0 = the calling process): a target and fd entries for every epoll fd and
 * every fd holding a watched file, one watch per fdinfo `tfd:` line with
 * open_fd resolved, and a target (from fdinfo alone) for watched files no fd
 * holds.  Does not set proc, modules or backtraces.  Returns 0 or -errno;
 * on failure img may hold a partial view and diagnostics.
 */
int kview_snapshot(pid_t pid, struct image *img, unsigned flags,
		   const struct kview_hints *hints);

/*
 * Compare an image with a kernel view of the same process: every set (by fd
 * number), every watch (tfd, events, data, target kind, open_fd), every fd
 * of a watched target.  Writes one line per difference to out_fd (when >=
 * 0) and returns the number of differences (0 = identical) or -errno.
 */
int kview_compare(const struct image *expected, const struct image *actual,
		  int out_fd);

#endif
