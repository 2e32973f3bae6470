/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing image files (format in include/epollcr_image.h and
 * docs/image-format.md).
 */
#ifndef EPOLLCR_IMAGE_IO_H
#define EPOLLCR_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "epollcr_image.h"

/*
 * Remove from img the targets whose drop[id] is non-zero (drop has
 * img->ntargets + 1 entries) and number the others 1..n again in their
 * order, with every reference to them (fds, watches' sets and targets,
 * pipe peers, socketpair ends).  Nothing may refer to a dropped target.
 * Returns 0 or -ENOMEM (img unchanged).
 */
int image_drop_targets(struct image *img, const uint8_t *drop);

/*
 * Serialise img to fd as one complete image (header, records in the order
 * the format requires, END with checksum), streaming through a bounded
 * buffer of at most 128 KiB whatever the image's size, across short writes
 * and EINTR.  Returns 0 or -errno: -EINVAL (and a log line) when img holds
 * what the format cannot or the reader would refuse in a field or a
 * reference, before anything is written (docs/image-format.md, "What the
 * writer checks"); strings longer than IMAGE_MAX_STRING are cut.
 */
int image_write_fd(const struct image *img, int fd);

/*
 * Write img atomically to path: a temporary file (mode 0600) in path's
 * directory, fsync, rename over path, fsync of the directory.  A crash at
 * any point leaves either the old file or the new one under path, and no
 * temporary file behind when the process survives.  Returns 0 or -errno.
 */
int image_write_file(const struct image *img, const char *path);

/*
 * The same, relative to the open directory dirfd: the temporary file, the
 * rename and the fsync all go through dirfd, never through a path that
 * could be swapped meanwhile.  name is one component (no '/': -EINVAL).
 * Returns 0 or -errno.
 */
int image_write_at(const struct image *img, int dirfd, const char *name);

/*
 * Read and validate a whole image from fd into img (initialised by the
 * call), reading up to end of file: nothing may follow END.  Every check of
 * docs/image-format.md is made, fd numbers included against the caller's
 * RLIMIT_NOFILE soft limit; memory grows only with the records actually
 * present, never with counts the image claims; an input longer than
 * IMAGE_MAX_BYTES is refused.  Returns 0, or -1 with one
 * line in err, no newline, cut to err_len ("offset N: what is wrong") and
 * img left empty.
 */
int image_read_fd(int fd, struct image *img, char *err, size_t err_len);

/* image_read_fd() on the file at path (opened O_RDONLY|O_CLOEXEC). */
int image_read_file(const char *path, struct image *img, char *err,
		    size_t err_len);

/*
 * The same with flags: IMAGE_READ_ANY_FD accepts fd numbers at or above
 * this process's RLIMIT_NOFILE (for show, verify and dump, which restore
 * nothing; still below 2^31).
 */
#define IMAGE_READ_ANY_FD 0x1
int image_read_fd_flags(int fd, struct image *img, unsigned flags, char *err,
			size_t err_len);
int image_read_file_flags(const char *path, struct image *img,
			  unsigned flags, char *err, size_t err_len);

/*
 * image_read_fd_flags() on a stream (a socket), validating while it arrives:
 * every byte read is also written to copy_fd (when not -1), and the read
 * stops with an error at the first invalid byte, at IMAGE_MAX_BYTES, or
 * once deadline (CLOCK_MONOTONIC seconds, 0: none) has passed.
 */
int image_read_stream(int fd, int copy_fd, double deadline,
		      struct image *img, unsigned flags, char *err,
		      size_t err_len);

/* The same on a buffer in memory (used by the fuzz target). */
int image_read_mem(const void *buf, size_t len, struct image *img, char *err,
		   size_t err_len);

/*
 * Make room for one more element of elem_size bytes in *array, which holds
 * *count elements in room for *cap (doubled as it fills, at most
 * max_count).  Returns a pointer to the new, zeroed element, counted in
 * *count, or NULL when max_count is reached or memory runs out.  The
 * image model's arrays, and the kernel view's lists of sockets.
 */
void *image_array_grow(void **array, uint32_t *count, uint32_t *cap,
		       size_t elem_size, uint32_t max_count);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (start with 0). */
uint32_t image_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
