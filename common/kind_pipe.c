// SPDX-License-Identifier: MIT
/* Pipes and FIFOs: which end, which pipe, how much is queued. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kind_internal.h"

static bool pipe_match_link(const char *link)
{
	uint64_t ino;

	return kind_link_ino(link, "pipe:", &ino);
}

/*
 * The end from the access mode (O_WRONLY: write end; a FIFO opened O_RDWR
 * counts as a read end), the inode from the link or fdinfo, the queued
 * bytes through FIONREAD on a read end we hold.
 */
static int pipe_describe(struct image_target *t, int fd, const char *fdinfo)
{
	struct image_pipe *p = &t->u.pipe;
	uint64_t ino;
	int ret, pending;

	memset(p, 0, sizeof(*p));
	ret = kind_describe_file_flags(t, fd, fdinfo);
	if (ret < 0)
		return ret;
	p->write_end = (t->file_flags & O_ACCMODE) == O_WRONLY;
	if (kind_link_ino(t->path, "pipe:", &ino) ||
	    fdinfo_u64(fdinfo, "ino:", 10, &ino))
		p->ino = ino;
	if (fd >= 0 && !p->write_end) {
		if (ioctl(fd, FIONREAD, &pending) < 0)
			return -errno;
		p->pending = pending > 0 ? (uint32_t)pending : 0;
	}
	return 0;
}

/* The end must be the same; the inode and the queue naturally differ. */
static bool pipe_same(const struct image_target *a,
		      const struct image_target *b, char *diff,
		      size_t diff_len)
{
	if (a->u.pipe.write_end != b->u.pipe.write_end) {
		kind_diff(diff, diff_len, "pipe end %s vs %s",
			  a->u.pipe.write_end ? "write" : "read",
			  b->u.pipe.write_end ? "write" : "read");
		return false;
	}
	return true;
}

const struct kind_ops kind_pipe_ops = {
	.kind = IMAGE_KIND_PIPE,
	.name = "pipe",
	.match_link = pipe_match_link,
	.describe = pipe_describe,
	.same = pipe_same,
};
