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

#endif
