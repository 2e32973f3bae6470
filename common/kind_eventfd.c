// SPDX-License-Identifier: MIT
/* eventfd: the counter and the semaphore mode, as fdinfo shows them. */
#include <errno.h>
#include <string.h>

#include "kind_internal.h"

static bool eventfd_match_link(const char *link)
{
	return kind_link_is_anon(link, "eventfd");
}

/*
 * From `eventfd-count:` (hex) and `eventfd-semaphore:`; reading the
 * counter through the fd would consume it, so with fd alone the calling
 * thread's own fdinfo is read.
 */
static int eventfd_describe(struct image_target *t, int fd,
			    const char *fdinfo)
{
	char buf[KIND_FDINFO_MAX];
	uint64_t count, sem = 0;
	int ret;

	memset(&t->u.efd, 0, sizeof(t->u.efd));
	ret = kind_describe_fdinfo(t, fd, &fdinfo, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	if (!fdinfo_u64(fdinfo, "eventfd-count:", 16, &count))
		return -EINVAL;
	fdinfo_u64(fdinfo, "eventfd-semaphore:", 10, &sem);
	t->u.efd.count = count;
	t->u.efd.semaphore = sem != 0;
	return 0;
}

static bool eventfd_same(const struct image_target *a,
			 const struct image_target *b, char *diff,
			 size_t diff_len)
{
	const struct image_eventfd *x = &a->u.efd, *y = &b->u.efd;

	if (x->count != y->count || x->semaphore != y->semaphore) {
		kind_diff(diff, diff_len,
			  "eventfd count %llu%s vs %llu%s",
			  (unsigned long long)x->count,
			  x->semaphore ? " (semaphore)" : "",
			  (unsigned long long)y->count,
			  y->semaphore ? " (semaphore)" : "");
		return false;
	}
	return true;
}

const struct kind_ops kind_eventfd_ops = {
	.kind = IMAGE_KIND_EVENTFD,
	.name = "eventfd",
	.match_link = eventfd_match_link,
	.describe = eventfd_describe,
	.same = eventfd_same,
};
