/* SPDX-License-Identifier: MIT */
/* Rebuilding an image's epoll state in the calling process. */
#ifndef EPOLLCR_RESTORE_H
#define EPOLLCR_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "epollcr.h"
#include "epollcr_image.h"

/*
 * Rebuild img (already validated by image_read_*) in the calling process,
 * following docs/restore.md: own fds moved above every number the image
 * names, targets and sets created at high numbers, each watch added through
 * its original tfd (disarmed oneshots first), everything moved to its
 * original numbers, then verified against /proc/self/fdinfo.  All or
 * nothing.  Diagnostics (what was skipped, what could not be made identical)
 * are appended to img->diags and, when options->report_fd >= 0, written
 * there.  Returns 0, or -1 with a one-line reason in err.
 */
int restore_image(struct image *img,
		  const struct epollcr_restore_options *options, char *err,
		  size_t err_len);

/* restore_image_trust() flags. */
#define RESTORE_TRUST_IMAGE 0x1 /* root restoring another user's image:
				 * no policy (docs/security.md) */

/*
 * restore_image() with flags (RESTORE_TRUST_IMAGE).  Without that flag, a
 * restore that runs as root (euid 0) of an image whose process was not
 * root's (image_process.uid != 0), or that was read from a file root does
 * not own (image.file_uid, since anyone can write uid 0 into an image),
 * refuses to create: a socket bound to a
 * port below 1024, an AF_UNIX socket whose path is not under the current
 * working directory (or has a ".." component), a socket of a family other
 * than AF_UNIX/AF_INET/AF_INET6, a raw or packet socket.
 */
int restore_image_trust(struct image *img,
			const struct epollcr_restore_options *options,
			unsigned flags, char *err, size_t err_len);

/* One descriptor a successful restore created. */
struct restore_fd {
	int fd;		/* its number in this process */
	uint32_t kind;	/* enum image_kind of its file */
	bool kept;	/* not an fd of the image: it only keeps a watched
			 * file (with no fd in the image) alive */
};

/* One AF_UNIX socket file a restore created by bind(). */
struct restore_file {
	char *path;	/* as bound (relative to the cwd of the restore) */
	dev_t dev;	/* its device and inode right after bind(): it is */
	ino_t ino;	/* removed only while the path still names them */
};

/* What a successful restore created, for its caller to hand over. */
struct restore_result {
	struct restore_fd *fds;	/* every descriptor, by increasing number */
	uint32_t nfds;
	struct restore_file *files; /* every socket file bound */
	uint32_t nfiles;
};

/* Options of restore_image_ex() that the public API does not have. */
struct restore_ext {
	unsigned flags;	/* RESTORE_TRUST_IMAGE */
	/*
	 * Bind even where another process already has the address (a live
	 * listener of the program being restored, whose SO_REUSEPORT group
	 * the restored socket would join).  false: such a bind fails.
	 */
	bool force_bind;
	/* When not NULL: filled on success (restore_result_free() it). */
	struct restore_result *result;
};

/*
 * restore_image_trust() with ext (may be NULL: no flags, no forced bind,
 * no result).  On failure the socket files the restore bound are removed
 * again (each only while its path still names the file bound); on success
 * they stay, and ext->result lists them.
 */
int restore_image_ex(struct image *img,
		     const struct epollcr_restore_options *options,
		     const struct restore_ext *ext, char *err, size_t err_len);

/* Free what a result holds and leave it empty. */
void restore_result_free(struct restore_result *res);

/*
 * Remove the socket files of res whose path still names the file that
 * was bound (same device and inode, not followed through a symlink): a
 * file replaced since is left alone.  Returns how many were removed.
 */
uint32_t restore_remove_files(const struct restore_result *res);

#endif
