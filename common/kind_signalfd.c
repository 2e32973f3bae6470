// SPDX-License-Identifier: MIT
/* signalfd: the mask, as fdinfo shows it. */
#include <errno.h>
#include <string.h>

#include "kind_internal.h"

static bool signalfd_match_link(const char *link)
{
	return kind_link_is_anon(link, "signalfd");
}

/* From `sigmask:` (hex, bit n - 1 for signal n). */
static int signalfd_describe(struct image_target *t, int fd,
			     const char *fdinfo)
{
	char buf[KIND_FDINFO_MAX];
	uint64_t mask;
	int ret;

	memset(&t->u.sfd, 0, sizeof(t->u.sfd));
	ret = kind_describe_fdinfo(t, fd, &fdinfo, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	if (!fdinfo_u64(fdinfo, "sigmask:", 16, &mask))
		return -EINVAL;
	t->u.sfd.mask = mask;
	return 0;
}

static bool signalfd_same(const struct image_target *a,
			  const struct image_target *b, char *diff,
			  size_t diff_len)
{
	if (a->u.sfd.mask != b->u.sfd.mask) {
		kind_diff(diff, diff_len, "signalfd mask 0x%llx vs 0x%llx",
			  (unsigned long long)a->u.sfd.mask,
			  (unsigned long long)b->u.sfd.mask);
		return false;
	}
	return true;
}

const struct kind_ops kind_signalfd_ops = {
	.kind = IMAGE_KIND_SIGNALFD,
	.name = "signalfd",
	.match_link = signalfd_match_link,
	.describe = signalfd_describe,
	.same = signalfd_same,
};
