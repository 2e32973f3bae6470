// SPDX-License-Identifier: MIT
/*
 * Kernel view, pass 4: tie each watch to the description it watches: the
 * shim's hints, a socket inode at its tfd, or kcmp(KCMP_EPOLL_TFD) over the
 * descriptions with the watched inode, the tfd's own first; a watched file
 * no fd holds gets a target guessed from (sdev, ino).  A set whose fdinfo
 * changed while it was read is read again.
 */
#include "kview_internal.h"

/* ---- pass 4: watches ----------------------------------------------------- */

/*
 * The devices of sockfs, pipefs and the anon inode, learnt from
 * descriptors of the calling process when the dumped one showed none: each
 * exists once per kernel.  Only needed for a watched file no fd holds.
 */
static void learn_pseudo_devs(struct kv *kv)
{
	struct stat st;
	int fds[2];

	if (kv->learnt_pseudo)
		return;
	kv->learnt_pseudo = true;
	if (!kv->have_sock_dev) {
		int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		if (s >= 0 && fstat(s, &st) == 0) {
			kv->have_sock_dev = true;
			kv->sock_dev = kernel_dev(st.st_dev);
		}
		if (s >= 0)
			close(s);
	}
	if (!kv->have_pipe_dev && pipe2(fds, O_CLOEXEC) == 0) {
		if (fstat(fds[0], &st) == 0) {
			kv->have_pipe_dev = true;
			kv->pipe_dev = kernel_dev(st.st_dev);
		}
		close(fds[0]);
		close(fds[1]);
	}
	if (!kv->have_anon) {
		int e = eventfd(0, EFD_CLOEXEC);

		if (e >= 0 && fstat(e, &st) == 0) {
			kv->have_anon = true;
			kv->anon_ino = st.st_ino;
			kv->anon_dev = kernel_dev(st.st_dev);
		}
		if (e >= 0)
			close(e);
	}
}

/*
 * The target of a watched file no fd holds, guessed from (sdev, ino):
 * sockets are found again by inode, anything else gets its own target.
 * Returns its id or IMAGE_NONE when memory runs out.
 */
static uint32_t orphan_target(struct kv *kv, const struct fdinfo_watch *w,
			      uint32_t first_orphan)
{
	char path[64];
	uint32_t kind = IMAGE_KIND_OTHER;
	struct image_target *t;

	learn_pseudo_devs(kv);
	path[0] = '\0';
	if (kv->have_sock_dev && w->sdev == kv->sock_dev) {
		kind = IMAGE_KIND_SOCKET;
		snprintf(path, sizeof(path), "socket:[%" PRIu64 "]", w->ino);
		for (uint32_t id = first_orphan; id <= kv->img->ntargets;
		     id++) {
			t = image_target_by_id(kv->img, id);
			if (t && t->kind == kind && t->path &&
			    strcmp(t->path, path) == 0)
				return id;
		}
	} else if (kv->have_pipe_dev && w->sdev == kv->pipe_dev) {
		kind = IMAGE_KIND_PIPE;
		snprintf(path, sizeof(path), "pipe:[%" PRIu64 "]", w->ino);
	} else if (kv->have_anon && w->sdev == kv->anon_dev &&
		   w->ino == kv->anon_ino) {
		snprintf(path, sizeof(path), KVIEW_ANON_UNKNOWN);
	}
	t = image_add_target(kv->img, kind);
	if (!t)
		return IMAGE_NONE;
	t->origin = IMAGE_ORIGIN_KERNEL;
	if (path[0] && !(t->path = strdup(path)))
		return IMAGE_NONE;
	if (kind == IMAGE_KIND_SOCKET)
		t->u.sock.backlog = -1;
	else if (kind == IMAGE_KIND_PIPE) {
		t->u.pipe.ino = w->ino;
		/*
		 * Which end it is, the kernel does not say without an fd:
		 * taken from what it is watched for (EPOLLOUT without
		 * EPOLLIN: the write end), and said by the dump's
		 * stale-tfd diagnostic.  The shim, where there is one,
		 * knows (recorder/dump.c, enrich_orphan).
		 */
		t->u.pipe.write_end = (w->events & EPOLLOUT) &&
				      !(w->events & EPOLLIN);
		t->file_flags = t->u.pipe.write_end ? O_WRONLY : O_RDONLY;
	}
	return t->id;
}

/* kcmp(KCMP_EPOLL_TFD): does fd hold the file watched as (epfd, tfd, toff)? */
static long kcmp_tfd(struct kv *kv, int fd, int epfd, int tfd, uint32_t toff)
{
	struct kcmp_epoll_slot slot = {
		.efd = (uint32_t)epfd,
		.tfd = (uint32_t)tfd,
		.toff = toff,
	};

	return kv_kcmp(kv, KCMP_EPOLL_TFD, (unsigned long)fd,
		       (unsigned long)&slot);
}

/* Outcome of trying one candidate through kcmp. */
enum try_result { TRY_NO, TRY_YES, TRY_GONE, TRY_BROKEN };

static enum try_result try_candidate(struct kv *kv, uint32_t g, int epfd,
				     const struct fdinfo_watch *w,
				     uint32_t toff)
{
	long r = kcmp_tfd(kv, kv->fds[kv->groups[g].rep].fd, epfd, w->tfd,
			  toff);

	if (r == 0)
		return TRY_YES;
	if (r > 0 || errno == EBADF)
		return TRY_NO;
	if (errno == ENOENT || errno == EINVAL)
		return TRY_GONE; /* the set changed under us */
	return TRY_BROKEN;
}

/* A kcmp failure while resolving: a diagnostic; returns 0 or -ENOMEM. */
static int resolve_failed(struct kv *kv, enum try_result r, int epfd,
			  const struct fdinfo_watch *w)
{
	if (r == TRY_GONE) {
		kv->gone++;
		return image_add_diag(kv->img, IMAGE_SEV_WARNING,
				      IMAGE_DIAG_GENERIC, epfd, w->tfd, NULL,
				      IMAGE_NONE,
				      "epoll fd %d: the watch of tfd %d changed while it was read; its file is unknown",
				      epfd, w->tfd);
	}
	kv->kcmp_broken = true;
	return image_add_diag(kv->img, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC,
			      epfd, w->tfd, NULL, IMAGE_NONE,
			      "kcmp(KCMP_EPOLL_TFD) is not usable here (%s): watched files are guessed from their tfd and inode",
			      strerror(errno));
}

/* The group at w's tfd when it has w's inode, index + 1, or 0. */
static uint32_t tfd_group(const struct kv *kv, const struct fdinfo_watch *w)
{
	int32_t ti = find_fd(kv, w->tfd);
	uint32_t tg = ti >= 0 ? kv->fds[ti].group : 0;

	return tg && kv->groups[tg - 1].ino == w->ino ? tg : 0;
}

/*
 * The cheap ways to tie watch w (toff-th of its tfd in the set read from
 * epfd; res->run names its (set, tfd)) to a group: the hints, a socket
 * inode at tfd, one kcmp on the tfd's own file.  Sets res->group (index
 * + 1) or res->pending when the other descriptions must be scanned.
 * Returns 0 or -ENOMEM.
 */
static int resolve_quick(struct kv *kv, int epfd,
			 const struct fdinfo_watch *w, struct kv_res *res)
{
	const struct kview_hints *h = kv->hints;
	uint32_t tg = tfd_group(kv, w);
	enum try_result r;

	res->group = 0;
	res->pending = false;
	if (h && h->confirm_watch && !(kv->flags & KVIEW_F_FULL_KCMP)) {
		int open_fd = -1;

		if (h->confirm_watch(h->ctx, epfd, w->tfd, w->events, w->data,
				     &open_fd)) {
			int32_t oi = find_fd(kv, open_fd);

			if (oi >= 0 && kv->fds[oi].group &&
			    kv->fds[oi].ino == w->ino) {
				kv->st.hinted++;
				res->group = kv->fds[oi].group;
				return 0;
			}
		}
	}
	/* A socket is the only file of its inode. */
	if (tg && kv->groups[tg - 1].kind == IMAGE_KIND_SOCKET &&
	    kv->fds[kv->groups[tg - 1].rep].sdev == w->sdev) {
		res->group = tg;
		return 0;
	}
	if (kv->kcmp_broken) {
		res->group = tg;
		return 0;
	}
	if (tg && kv->groups[tg - 1].claim != res->run) {
		r = try_candidate(kv, tg - 1, epfd, w, res->toff);
		if (r == TRY_YES) {
			res->group = tg;
			return 0;
		}
		if (r != TRY_NO) {
			/* kcmp refused: the tfd's file is the best guess. */
			res->group = r == TRY_BROKEN ? tg : 0;
			return resolve_failed(kv, r, epfd, w) < 0 ? -ENOMEM : 0;
		}
	}
	res->pending = true;
	return 0;
}

/*
 * A stale watch: try every other description of its inode through kcmp,
 * first those no watch of this set (set_stamp) has matched yet, then the
 * others, never one another watch of the same (set, tfd) matched.  Sets
 * res->group (0 when no fd holds the file).  Returns 0 or -ENOMEM.
 */
static int resolve_scan(struct kv *kv, int epfd, const struct fdinfo_watch *w,
			struct kv_res *res, uint32_t set_stamp)
{
	uint32_t tg = tfd_group(kv, w), lo = 0, hi = kv->ngroups;
	enum try_result r;

	res->group = 0;
	if (kv->kcmp_broken)
		return 0;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (kv->groups[kv->by_ino[mid]].ino < w->ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = lo; i < kv->ngroups; i++) {
			uint32_t g = kv->by_ino[i];
			const struct kv_group *grp = &kv->groups[g];

			if (grp->ino != w->ino)
				break;
			if (g + 1 == tg || grp->claim == res->run ||
			    (grp->set_claim == set_stamp) != (pass == 1))
				continue;
			r = try_candidate(kv, g, epfd, w, res->toff);
			if (r == TRY_YES) {
				res->group = g + 1;
				return 0;
			}
			if (r != TRY_NO)
				return resolve_failed(kv, r, epfd, w) < 0
					       ? -ENOMEM
					       : 0;
		}
	}
	return 0;
}

static int cmp_by_tfd(const void *a, const void *b, void *ctx)
{
	const struct fdinfo_watch *w = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (w[x].tfd != w[y].tfd)
		return w[x].tfd < w[y].tfd ? -1 : 1;
	return (x > y) - (x < y);
}

/* Record that res's group holds the file of a watch of this set. */
static void claim(struct kv *kv, const struct kv_res *res, uint32_t set_stamp)
{
	if (res->group) {
		kv->groups[res->group - 1].claim = res->run;
		kv->groups[res->group - 1].set_claim = set_stamp;
	}
}

/*
 * Resolve the watches of set s into res[], in (tfd, fdinfo order) order
 * so that toff is the rank among one tfd's watches as the kernel counts it
 * (rbtree order, which fdinfo follows too): first the cheap way for all,
 * then a scan for the stale ones.
 */
static int resolve_set(struct kv *kv, const struct kv_set *s,
		       struct kv_res *res, uint32_t *order)
{
	int epfd = kv->fds[s->fdi].fd;
	uint32_t set_stamp = ++kv->stamp;
	int ret;

	for (uint32_t i = 0; i < s->nw; i++)
		order[i] = i;
	qsort_r(order, s->nw, sizeof(*order), cmp_by_tfd, s->w);
	for (uint32_t k = 0; k < s->nw; k++) {
		uint32_t i = order[k];
		bool same_tfd = k > 0 && s->w[order[k - 1]].tfd == s->w[i].tfd;

		res[i].toff = same_tfd ? res[order[k - 1]].toff + 1 : 0;
		res[i].run = same_tfd ? res[order[k - 1]].run : ++kv->stamp;
		ret = resolve_quick(kv, epfd, &s->w[i], &res[i]);
		if (ret < 0)
			return ret;
		claim(kv, &res[i], set_stamp);
	}
	for (uint32_t k = 0; k < s->nw; k++) {
		uint32_t i = order[k];

		if (!res[i].pending)
			continue;
		ret = resolve_scan(kv, epfd, &s->w[i], &res[i], set_stamp);
		if (ret < 0)
			return ret;
		claim(kv, &res[i], set_stamp);
	}
	return 0;
}

/* Emit one set's watches in fdinfo order. */
static int emit_set_watches(struct kv *kv, const struct kv_group *sg,
			    const struct kv_set *s, const struct kv_res *res,
			    uint32_t first_orphan)
{
	const uint32_t private_bits = EPOLLONESHOT | EPOLLET |
				      EPOLLEXCLUSIVE | EPOLLWAKEUP;

	for (uint32_t i = 0; i < s->nw; i++) {
		const struct fdinfo_watch *w = &s->w[i];
		int32_t ti = find_fd(kv, w->tfd);
		uint32_t target;
		int open_fd = -1;
		bool stale = true;

		if (res[i].group) {
			const struct kv_group *g =
				&kv->groups[res[i].group - 1];

			target = g->target;
			stale = ti < 0 || kv->fds[ti].group != res[i].group;
			open_fd = stale ? kv->fds[g->rep].fd : w->tfd;
		} else {
			target = orphan_target(kv, w, first_orphan);
			if (target == IMAGE_NONE)
				return -ENOMEM;
		}
		struct image_watch *iw = image_add_watch(kv->img);

		if (!iw)
			return -ENOMEM;
		iw->set = sg->target;
		iw->tfd = w->tfd;
		iw->events = w->events;
		iw->data = w->data;
		iw->target = target;
		iw->open_fd = open_fd;
		iw->flags = IMAGE_W_KERNEL;
		if (!(w->events & ~private_bits))
			iw->flags |= IMAGE_W_DISARMED;
		if (stale)
			iw->flags |= IMAGE_W_STALE;
	}
	struct image_target *t = image_target_by_id(kv->img, sg->target);

	if (t)
		t->u.ep.nwatches = s->nw;
	return 0;
}

/* Forget the diagnostics added since there were keep of them. */
static void drop_diags_since(struct image *img, uint32_t keep)
{
	while (img->ndiags > keep) {
		struct image_diag *d = &img->diags[--img->ndiags];

		free(d->message);
		free(d->path);
	}
}

/*
 * Read set s's fdinfo again.  Returns 1 when its watches differ from s->w
 * (s->w then holds the new ones), 0 when they are the same or the fd could
 * not be read again, -ENOMEM.
 */
static int reread_set(struct kv *kv, struct kv_set *s)
{
	struct kv_set fresh = { .fdi = s->fdi };
	ssize_t len = read_fdinfo(kv, kv->fds[s->fdi].fd);
	int ret;

	if (len < 0)
		return len == -ENOMEM ? -ENOMEM : 0;
	ret = fdinfo_parse_epoll(kv->buf, (size_t)len, NULL, set_add_watch,
				 &fresh);
	bool same = ret == 0 && fresh.nw == s->nw;

	for (uint32_t i = 0; same && i < s->nw; i++) {
		const struct fdinfo_watch *a = &s->w[i], *b = &fresh.w[i];

		same = a->tfd == b->tfd && a->events == b->events &&
		       a->data == b->data && a->ino == b->ino &&
		       a->sdev == b->sdev;
	}
	if (ret == 0 && !same) {
		struct fdinfo_watch *old = s->w;

		s->w = fresh.w;
		s->nw = fresh.nw;
		s->cap = fresh.cap;
		fresh.w = old;
	}
	free(fresh.w);
	if (ret < 0)
		return ret == -ENOMEM ? -ENOMEM : 0;
	return !same;
}

/*
 * Resolve set s into *res, growing *res and *order (*cap entries) when a
 * new read of the set has more watches.  kcmp names a watch by its tfd and
 * its rank among that tfd's watches: when another process sharing the set
 * (a forked child) releases a watched file between the read and the kcmp
 * calls, the ranks shift and kcmp answers about another watch, or ENOENT.
 * The recorder holds back the program's own epoll_ctl calls, not another
 * process's.  So when kcmp was used, the set is read again, and resolved
 * again from the new text when its watches changed, or from the same text
 * when kcmp found a watch gone (a child's DEL and ADD of one tfd between
 * the read and the kcmp leaves the text as it was): at most
 * KVIEW_SET_READS reads; the last resolution stays, diagnostics included.
 * Returns 0 or -ENOMEM.
 */
#define KVIEW_SET_READS 8

static int resolve_set_stable(struct kv *kv, struct kv_set *s,
			      struct kv_res **res, uint32_t **order,
			      uint32_t *cap)
{
	for (int reads = 1;; reads++) {
		uint32_t diags = kv->img->ndiags, kcmps = kv->st.kcmp_calls;
		uint32_t gone = kv->gone;
		int ret;

		if (s->nw > *cap) {
			struct kv_res *r = realloc(*res, s->nw * sizeof(**res));
			uint32_t *o = r ? realloc(*order,
						  s->nw * sizeof(**order))
					: NULL;

			if (r)
				*res = r;
			if (!o)
				return -ENOMEM;
			*order = o;
			*cap = s->nw;
		}
		ret = resolve_set(kv, s, *res, *order);
		if (ret < 0 || kv->st.kcmp_calls == kcmps ||
		    reads == KVIEW_SET_READS)
			return ret;
		ret = reread_set(kv, s);
		if (ret < 0 || (ret == 0 && kv->gone == gone))
			return ret;
		drop_diags_since(kv->img, diags);
	}
}

/* Resolve and emit the watches of every set, in target order. */
int emit_watches(struct kv *kv)
{
	uint32_t maxw = 1, first_orphan = kv->img->ntargets + 1;
	struct kv_res *res;
	uint32_t *order;
	int ret = 0;

	for (uint32_t s = 0; s < kv->nsets; s++)
		if (kv->sets[s].nw > maxw)
			maxw = kv->sets[s].nw;
	res = calloc(maxw, sizeof(*res));
	order = calloc(maxw, sizeof(*order));
	if (!res || !order) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t g = 0; g < kv->ngroups && ret == 0; g++) {
		const struct kv_group *sg = &kv->groups[g];
		const struct kv_fd *rep = &kv->fds[sg->rep];

		if (sg->kind != IMAGE_KIND_EPOLL || !rep->set)
			continue;
		struct kv_set *s = &kv->sets[rep->set - 1];

		ret = resolve_set_stable(kv, s, &res, &order, &maxw);
		if (ret == 0)
			ret = emit_set_watches(kv, sg, s, res, first_orphan);
	}
out:
	free(res);
	free(order);
	return ret;
}
