// SPDX-License-Identifier: MIT
/* Any other file (tty, inotify, device...): known by its path only. */
#include <string.h>

#include "kind_internal.h"

/* The fallback: accepts every link. */
static bool other_match_link(const char *link)
{
	return link != NULL;
}

static int other_describe(struct image_target *t, int fd, const char *fdinfo)
{
	return kind_describe_file_flags(t, fd, fdinfo);
}

/* The same path (the link text), or both unknown. */
static bool other_same(const struct image_target *a,
		       const struct image_target *b, char *diff,
		       size_t diff_len)
{
	const char *x = a->path ? a->path : "", *y = b->path ? b->path : "";

	if (strcmp(x, y) != 0) {
		kind_diff(diff, diff_len, "path '%s' vs '%s'", x, y);
		return false;
	}
	return true;
}

const struct kind_ops kind_other_ops = {
	.kind = IMAGE_KIND_OTHER,
	.name = "other",
	.match_link = other_match_link,
	.describe = other_describe,
	.same = other_same,
};
