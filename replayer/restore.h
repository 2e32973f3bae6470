/* SPDX-License-Identifier: MIT */
/* Rebuilding an image's epoll state in the calling process. */
#ifndef EPOLLCR_RESTORE_H
#define EPOLLCR_RESTORE_H

#include <stddef.h>

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

#endif
