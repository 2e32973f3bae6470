// SPDX-License-Identifier: MIT
/* The replayer's public API: epollcr_restore(), epollcr_version(). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "epollcr.h"
#include "escape.h"
#include "image_io.h"
#include "restore.h"

#define EPOLLCR_API __attribute__((visibility("default")))

EPOLLCR_API const char *epollcr_version(void)
{
	return EPOLLCR_VERSION_STRING;
}

EPOLLCR_API int epollcr_restore(const char *image_path,
				const struct epollcr_restore_options *options,
				char *errbuf, size_t errbuf_len)
{
	char local[512], why[512], *err = errbuf && errbuf_len ? errbuf : local;
	size_t err_len = errbuf && errbuf_len ? errbuf_len : sizeof(local);
	struct image img;
	int saved_errno = errno, ret;

	if (!image_path) {
		snprintf(err, err_len, "no image path given");
		return -1;
	}
	if (image_read_file(image_path, &img, why, sizeof(why)) < 0) {
		char raw[1024];

		/* One line, escaped (escape.h): the path may be anyone's. */
		snprintf(raw, sizeof(raw), "%s: %s", image_path, why);
		escape_bytes(err, err_len, raw, strlen(raw), 0);
		errno = saved_errno;
		return -1;
	}
	ret = restore_image(&img, options, err, err_len);
	image_free(&img);
	errno = saved_errno;
	return ret < 0 ? -1 : 0;
}
