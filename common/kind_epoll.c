// SPDX-License-Identifier: MIT
/* epoll sets as targets (of other sets, and of fds). */
#include <string.h>

#include "kind_internal.h"
#include "kview.h"

static bool epoll_match_link(const char *link)
{
	return kind_link_is_anon(link, "eventpoll");
}

static int count_watch(void *ctx, const struct fdinfo_watch *w)
{
	(void)w;
	(*(uint32_t *)ctx)++;
	return 0;
}

/*
 * The file flags, and nwatches from the `tfd:` lines of fdinfo when it is
 * given (kview_snapshot() sets nwatches itself from the watches it keeps).
 */
static int epoll_describe(struct image_target *t, int fd, const char *fdinfo)
{
	uint32_t n = 0;

	memset(&t->u.ep, 0, sizeof(t->u.ep));
	if (fdinfo) {
		fdinfo_parse_epoll(fdinfo, strlen(fdinfo), NULL, count_watch,
				   &n);
		t->u.ep.nwatches = n;
	}
	return kind_describe_file_flags(t, fd, fdinfo);
}

/* The number of watches; kview_compare() compares the watches themselves. */
static bool epoll_same(const struct image_target *a,
		       const struct image_target *b, char *diff,
		       size_t diff_len)
{
	if (a->u.ep.nwatches != b->u.ep.nwatches) {
		kind_diff(diff, diff_len, "epoll set of %u watches vs %u",
			  a->u.ep.nwatches, b->u.ep.nwatches);
		return false;
	}
	return true;
}

const struct kind_ops kind_epoll_ops = {
	.kind = IMAGE_KIND_EPOLL,
	.name = "epoll",
	.match_link = epoll_match_link,
	.describe = epoll_describe,
	.same = epoll_same,
};
