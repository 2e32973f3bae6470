/* SPDX-License-Identifier: MIT */
/*
 * Per-kind operations on the kernel side, one table entry per kind of target
 * (as CRIU's fdtype_ops): recognise, describe, compare.  The recorder and
 * `epollcr verify` dispatch through kind_ops_of().  The replayer's half of
 * each kind (recreate, make ready) is in replayer/recreate.h.
 */
#ifndef EPOLLCR_KIND_H
#define EPOLLCR_KIND_H

#include <stdbool.h>
#include <sys/types.h>

#include "epollcr_image.h"

struct kind_ops {
	uint32_t kind;		/* enum image_kind */
	const char *name;	/* "socket"... */
	/*
	 * Recognise a target from its /proc/PID/fd link text
	 * ("socket:[123]", "anon_inode:[eventfd]").
	 */
	bool (*match_link)(const char *link);
	/*
	 * Fill t->u and t->file_flags from the kernel.  fd is a descriptor
	 * of the target in the calling process, or -1 when only /proc is
	 * available (another pid); fdinfo is the text of /proc/PID/fdinfo/N
	 * (NUL-terminated) or NULL, in which case the kinds that need it
	 * (eventfd, timerfd, signalfd) read the calling thread's own.
	 * t->path (the link text, may be NULL) is set by the caller and
	 * read, never changed.  With fd == -1 only what fdinfo and the link
	 * show is filled (a socket's domain, for one, stays 0 = unknown).
	 * Returns 0 or -errno (-EINVAL: fdinfo lacks what the kind prints;
	 * -EBADF, -ENOTSOCK...: fd is not such a file).
	 */
	int (*describe)(struct image_target *t, int fd, const char *fdinfo);
	/*
	 * Compare two descriptions of a target (image vs. live kernel);
	 * write a one-line difference into diff (diff_len bytes; diff may
	 * be NULL) and return false if they differ in anything a restore
	 * must bring back: socket domain/type/protocol, listening, bound
	 * address, reuse and v6only flags (fields a description made
	 * without a descriptor could not learn compare equal); pipe end;
	 * eventfd count and semaphore mode; timerfd clock, settime flags,
	 * interval and armed or not; signalfd mask; epoll number of
	 * watches; other: the path.  File flags are compared by the caller.
	 */
	bool (*same)(const struct image_target *a,
		     const struct image_target *b, char *diff, size_t diff_len);
};

/* The ops of a kind; the OTHER entry for unknown kinds.  Never NULL. */
const struct kind_ops *kind_ops_of(uint32_t kind);

/* The kind whose match_link accepts link, IMAGE_KIND_OTHER otherwise. */
uint32_t kind_from_link(const char *link);

#endif
