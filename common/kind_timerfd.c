// SPDX-License-Identifier: MIT
/* timerfd: clock, settime flags, times, as fdinfo shows them. */
#include <errno.h>
#include <string.h>

#include "kind_internal.h"

static bool timerfd_match_link(const char *link)
{
	return kind_link_is_anon(link, "timerfd");
}

/*
 * From `clockid:`, `ticks:`, `settime flags:` (octal), `it_value:` and
 * `it_interval:` ("(SEC, NSEC)", stored in nanoseconds).  it_value is
 * the time remaining, also for a TFD_TIMER_ABSTIME timer.
 */
static int timerfd_describe(struct image_target *t, int fd,
			    const char *fdinfo)
{
	struct image_timerfd *tf = &t->u.tfd;
	char buf[KIND_FDINFO_MAX];
	uint64_t clockid, flags, ticks = 0;
	int ret;

	memset(tf, 0, sizeof(*tf));
	ret = kind_describe_fdinfo(t, fd, &fdinfo, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	if (!fdinfo_u64(fdinfo, "clockid:", 10, &clockid) ||
	    clockid > UINT32_MAX ||
	    !fdinfo_u64(fdinfo, "settime flags:", 8, &flags) ||
	    flags > UINT32_MAX ||
	    !fdinfo_timespec_ns(fdinfo, "it_value:", &tf->value_ns) ||
	    !fdinfo_timespec_ns(fdinfo, "it_interval:", &tf->interval_ns))
		return -EINVAL;
	fdinfo_u64(fdinfo, "ticks:", 10, &ticks);
	tf->clockid = (uint32_t)clockid;
	tf->settime_flags = (uint32_t)flags;
	tf->ticks = ticks;
	return 0;
}

/*
 * Clock, flags and interval must match, and both armed or both disarmed:
 * the time remaining naturally differs between two looks, as do ticks.
 */
static bool timerfd_same(const struct image_target *a,
			 const struct image_target *b, char *diff,
			 size_t diff_len)
{
	const struct image_timerfd *x = &a->u.tfd, *y = &b->u.tfd;

	if (x->clockid != y->clockid || x->settime_flags != y->settime_flags) {
		kind_diff(diff, diff_len,
			  "timerfd clock %u flags 0%o vs clock %u flags 0%o",
			  x->clockid, x->settime_flags, y->clockid,
			  y->settime_flags);
		return false;
	}
	if (x->interval_ns != y->interval_ns) {
		kind_diff(diff, diff_len, "timerfd interval %lluns vs %lluns",
			  (unsigned long long)x->interval_ns,
			  (unsigned long long)y->interval_ns);
		return false;
	}
	if ((x->value_ns != 0) != (y->value_ns != 0)) {
		kind_diff(diff, diff_len, "timerfd %s vs %s",
			  x->value_ns ? "armed" : "disarmed",
			  y->value_ns ? "armed" : "disarmed");
		return false;
	}
	return true;
}

const struct kind_ops kind_timerfd_ops = {
	.kind = IMAGE_KIND_TIMERFD,
	.name = "timerfd",
	.match_link = timerfd_match_link,
	.describe = timerfd_describe,
	.same = timerfd_same,
};
