// SPDX-License-Identifier: MIT
/*
 * Restore, watches phase: set by set from the innermost outwards; in each
 * set the fired oneshots first (armed, one event collected: the kernel
 * disarms them to exactly their private bits), then the others: a watch
 * whose tfd already holds its file is one epoll_ctl, any other is
 * dup3(file, tfd); epoll_ctl; close(tfd).
 */
#define LOG_PREFIX "restore"

#include "restore_internal.h"

/* ---- adding watches ---- */

static bool rs_disarmed(uint32_t events)
{
	return (events & EPOLLONESHOT) && !(events & ~RS_PRIVATE_BITS);
}

/* The events the kernel will show for watch i once restored. */
uint32_t rs_expected_events(const struct restore *r, uint32_t i)
{
	uint32_t ev = r->img->watches[i].events;

	if (r->wflags[i] & RSW_ARMED)
		return (ev & RS_PRIVATE_BITS) | RS_ALWAYS_BITS;
	return rs_disarmed(ev) ? ev : ev | RS_ALWAYS_BITS;
}

/*
 * Make number w->tfd hold the watch's file: nothing to do when it does
 * already, else dup3 from where the file is (*dance set: close it after).
 */
static int rs_hold_tfd(struct restore *r, uint32_t wi, bool *dance)
{
	const struct image_watch *w = &r->img->watches[wi];
	char what[256];

	*dance = !(r->wflags[wi] & RSW_DIRECT);
	if (!*dance)
		return 0;
	if (dup3(r->t[w->target - 1].home, w->tfd, O_CLOEXEC) < 0) {
		int err = errno;

		*dance = false;
		return rs_fail(r, "epfd %d tfd %d: dup3 of %s to fd %d: %s",
			       rs_first_fd(r, w->set), w->tfd,
			       rs_what(r, w->target, what, sizeof(what)),
			       w->tfd, strerror(err));
	}
	return 0;
}

static int rs_ctl(struct restore *r, const struct image_watch *w, int op,
		  uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = w->data };
	char what[256];
	int err;

	if (epoll_ctl(r->t[w->set - 1].home, op, w->tfd, &ev) == 0)
		return 0;
	err = errno;
	return rs_fail(r, "epfd %d tfd %d: epoll_ctl %s events 0x%x on %s: %s",
		       rs_first_fd(r, w->set), w->tfd,
		       op == EPOLL_CTL_ADD ? "ADD" : "MOD", events,
		       rs_what(r, w->target, what, sizeof(what)),
		       strerror(err));
}

/* The fd of a target's pair partner, -1 when it has none. */
static int rs_partner_fd(const struct restore *r, uint32_t id)
{
	uint32_t p = r->t[id - 1].partner;

	return p && r->t[p - 1].state == RS_LIVE ? r->t[p - 1].home : -1;
}

/*
 * Ready events of the watch's file now, after make_ready when needed
 * (*made: undo_ready must follow).  0 when nothing can make it ready; the
 * reason is then in r->why.
 */
static int rs_ready_now(struct restore *r, const struct image_watch *w,
			struct recreate_ready *rr, bool *made)
{
	const struct image_target *t = rs_tgt(r, w->target);
	const struct recreate_ops *ops = recreate_ops_of(t->kind);
	int ev = recreate_poll_now(rr->fd);

	*made = false;
	if (ev != 0)
		return ev;
	if (!ops->make_ready || !r->t[w->target - 1].owned) {
		snprintf(r->why, sizeof(r->why), "%s",
			 r->t[w->target - 1].owned
				 ? "nothing can make this kind of file ready for a moment"
				 : "a file restore did not create is not made ready (targets=existing)");
		return 0;
	}
	if (ops->make_ready(t, rr, r->why, sizeof(r->why)) < 0)
		return 0;
	*made = true;
	ev = recreate_poll_now(rr->fd);
	if (ev <= 0) {
		ops->undo_ready(t, rr);
		*made = false;
		snprintf(r->why, sizeof(r->why), "made ready, the file still polls as not ready");
		return 0;
	}
	return ev;
}

/*
 * A fired oneshot (events = private bits only): add it armed for an event
 * its file is ready for now, and collect that one event, so that the
 * kernel disarms it to exactly the original bits.  The set holds only
 * fired oneshots at this point, all disarmed, so the event collected is
 * this watch's.  Where nothing makes the file ready, the watch is added
 * with its private bits (the kernel adds EPOLLERR|EPOLLHUP) and a warning
 * says it is armed.
 */
/*
 * Milliseconds left of the restore's budget for waiting on make_ready
 * (RS_READY_BUDGET_MS for the whole restore, started at the first wait).
 */
static int rs_ready_wait_ms(struct restore *r)
{
	struct timespec now;
	long long left;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!r->ready_end.tv_sec && !r->ready_end.tv_nsec) {
		r->ready_end = now;
		r->ready_end.tv_sec += RS_READY_BUDGET_MS / 1000;
		r->ready_end.tv_nsec += (RS_READY_BUDGET_MS % 1000) * 1000000L;
		if (r->ready_end.tv_nsec >= 1000000000L) {
			r->ready_end.tv_sec++;
			r->ready_end.tv_nsec -= 1000000000L;
		}
	}
	left = (long long)(r->ready_end.tv_sec - now.tv_sec) * 1000 +
	       (r->ready_end.tv_nsec - now.tv_nsec) / 1000000;
	return left > 0 ? (int)left : 0;
}

static int rs_add_disarmed(struct restore *r, uint32_t wi)
{
	const struct image_watch *w = &r->img->watches[wi];
	const struct image_target *t = rs_tgt(r, w->target);
	struct recreate_ready rr = {
		.fd = r->t[w->target - 1].home,
		.peer_fd = rs_partner_fd(r, w->target),
		.aux_fd = -1,
		.wait_ms = rs_ready_wait_ms(r),
	};
	uint32_t priv = w->events & RS_PRIVATE_BITS;
	struct epoll_event got;
	bool dance, made;
	int ev, n, ret;

	if (rs_hold_tfd(r, wi, &dance) < 0)
		return -1;
	r->why[0] = '\0';
	ev = rs_ready_now(r, w, &rr, &made);
	if (ev < 0)
		snprintf(r->why, sizeof(r->why), "poll: %s", strerror(-ev));
	ret = rs_ctl(r, w, EPOLL_CTL_ADD,
		     priv | (ev > 0 ? (uint32_t)ev & RS_POLL_BITS : 0));
	if (ret == 0 && ev > 0) {
		do
			n = epoll_wait(r->t[w->set - 1].home, &got, 1, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			ret = rs_fail(r, "epfd %d: epoll_wait: %s",
				      rs_first_fd(r, w->set), strerror(errno));
		else if (n == 1 && got.data.u64 != w->data)
			ret = rs_fail(r, "epfd %d tfd %d: disarming a fired oneshot delivered data 0x%llx instead of 0x%llx",
				      rs_first_fd(r, w->set), w->tfd,
				      (unsigned long long)got.data.u64,
				      (unsigned long long)w->data);
		else if (n == 0) {
			snprintf(r->why, sizeof(r->why), "the file was ready, then no event came");
			ev = 0;
			ret = rs_ctl(r, w, EPOLL_CTL_MOD, priv);
		}
	}
	if (made)
		recreate_ops_of(t->kind)->undo_ready(t, &rr);
	if (dance)
		close(w->tfd);
	if (ret < 0 || ev > 0)
		return ret;
	r->wflags[wi] |= RSW_ARMED;
	return rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_UNRESTORABLE, w->set,
		       w->tfd, w->target,
		       "fired EPOLLONESHOT watch restored armed (events 0x%x instead of 0x%x): %s",
		       priv | RS_ALWAYS_BITS, w->events, r->why);
}

static int rs_add_one(struct restore *r, uint32_t wi)
{
	const struct image_watch *w = &r->img->watches[wi];
	bool dance;
	int ret;

	if (rs_hold_tfd(r, wi, &dance) < 0)
		return -1;
	ret = rs_ctl(r, w, EPOLL_CTL_ADD, w->events);
	if (dance)
		close(w->tfd);
	return ret;
}

/* The watches of one set whose being fired oneshots is `fired`. */
static int rs_add_set(struct restore *r, const struct rs_target *st,
		      bool fired)
{
	for (uint32_t k = 0; k < st->w_count; k++) {
		uint32_t wi = r->by_set[st->w_first + k];
		bool disarmed = rs_disarmed(r->img->watches[wi].events);

		if ((r->wflags[wi] & RSW_SKIP) || disarmed != fired)
			continue;
		if (fired ? rs_add_disarmed(r, wi) < 0 : rs_add_one(r, wi) < 0)
			return -1;
	}
	return 0;
}

/* Every set, innermost first; in each, fired oneshots first. */
int rs_add_watches(struct restore *r)
{
	for (uint32_t s = 0; s < r->nsets; s++) {
		const struct rs_target *st = &r->t[r->sets[s] - 1];

		if (rs_add_set(r, st, true) < 0 || rs_add_set(r, st, false) < 0)
			return -1;
	}
	return 0;
}
