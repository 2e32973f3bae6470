// SPDX-License-Identifier: MIT
/*
 * Restore, verify phase: /proc/self/fdinfo of every set against the image,
 * with the watched file's identity (inode, or kcmp where it lives
 * elsewhere).
 */
#define LOG_PREFIX "restore"

#include "restore_internal.h"

/* ---- verifying against the kernel ---- */

/* One `tfd:` line of a set's fdinfo. */
struct rs_line {
	int32_t tfd;
	uint32_t events;
	uint64_t data;
	uint64_t ino;
	uint32_t sdev;
	uint32_t pos;	/* its place in the fdinfo text */
	uint32_t toff;	/* rank among lines of this tfd (kcmp's toff) */
	uint32_t ntfd;	/* lines with this tfd in the set */
};

/* One watch the image expects in a set. */
struct rs_exp {
	int32_t tfd;
	uint32_t events;
	uint64_t data;
	uint32_t wi;	/* watch index */
	bool used;
};

/* Scratch space of the verifier, grown to the largest set. */
struct rs_verify {
	char *text;		/* [RS_FDINFO_CHUNK] */
	struct rs_line *lines;
	struct rs_exp *exps;
	uint32_t nlines, nexps;
	uint32_t cap;		/* lines and exps have cap entries */
	uint32_t *exp_at;	/* [r->base]: exps index + 1 by tfd, 0 */
	uint32_t wakeup_dropped;
	uint32_t unverified;	/* identities kcmp could not check */
	int kcmp_errno;
	bool anon_known[IMAGE_KIND_COUNT];
	struct stat anon[IMAGE_KIND_COUNT];
};

static int rs_on_line(void *ctx, const struct fdinfo_watch *fw)
{
	struct rs_verify *v = ctx;

	if (v->nlines == v->cap)
		return -E2BIG;
	v->lines[v->nlines] = (struct rs_line){
		.tfd = fw->tfd, .events = fw->events, .data = fw->data,
		.ino = fw->ino, .sdev = fw->sdev, .pos = v->nlines,
	};
	v->nlines++;
	return 0;
}

/*
 * Read /proc/thread-self/fdinfo/<fd> and parse it (fdinfo_parse_epoll, each
 * tfd line to v->lines, the file's flags to *flags) as it comes, through
 * v->text, a buffer of RS_FDINFO_CHUNK bytes used again and again: no
 * buffer the size of the whole text to fault in.  A set's text is made
 * whole by the kernel at the first read, so the chunks are one view.  At
 * most text_max bytes are accepted (more: more watches than expected).
 * Returns 0, or -1 with the reason recorded.
 */
static int rs_read_fdinfo(struct restore *r, struct rs_verify *v, int fd,
			  int epfd, size_t text_max, unsigned *flags)
{
	size_t have = 0, total = 0;
	char path[64];
	int pfd, ret = 0;

	snprintf(path, sizeof(path), "/proc/thread-self/fdinfo/%d", fd);
	pfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd < 0)
		return rs_fail(r, "verify: epfd %d: cannot open %s: %s", epfd,
			       path, strerror(errno));
	v->nlines = 0;
	/* Bounded: each round reads at least one byte, or stops. */
	for (;;) {
		ssize_t n = read(pfd, v->text + have, RS_FDINFO_CHUNK - have);
		const char *last;
		size_t upto;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			close(pfd);
			return rs_fail(r, "verify: epfd %d: read %s: %s", epfd,
				       path, strerror(err));
		}
		total += (size_t)n;
		if (total >= text_max) {
			ret = -E2BIG;
			break;
		}
		have += (size_t)n;
		if (n == 0) {	/* the end: what is left, newline or not */
			ret = fdinfo_parse_epoll(v->text, have, flags, rs_on_line,
					      v);
			break;
		}
		last = memrchr(v->text, '\n', have);
		if (!last) {
			if (have == RS_FDINFO_CHUNK) {
				ret = -EINVAL; /* a line of 64 KiB */
				break;
			}
			continue;
		}
		upto = (size_t)(last - v->text) + 1;
		ret = fdinfo_parse_epoll(v->text, upto, flags, rs_on_line, v);
		if (ret)
			break;
		memmove(v->text, v->text + upto, have - upto);
		have -= upto;
	}
	close(pfd);
	return ret;
}

static int rs_verify_grow(struct restore *r, struct rs_verify *v, uint32_t n)
{
	if (!v->text && !(v->text = malloc(RS_FDINFO_CHUNK)))
		return rs_fail(r, "out of memory to verify a set of %u watches", n);
	if (n + 1 <= v->cap)
		return 0;
	free(v->lines);
	free(v->exps);
	v->lines = malloc(sizeof(*v->lines) * (n + 1));
	v->exps = malloc(sizeof(*v->exps) * (n + 1));
	v->cap = n + 1;
	if (!v->lines || !v->exps) {
		v->cap = 0;
		return rs_fail(r, "out of memory to verify a set of %u watches", n);
	}
	return 0;
}

static int cmp_line_pos(const void *a, const void *b)
{
	const struct rs_line *x = a, *y = b;

	if (x->tfd != y->tfd)
		return x->tfd < y->tfd ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * Lines and expectations are paired by (tfd, events but EPOLLWAKEUP, data):
 * the kernel may have dropped EPOLLWAKEUP (rs_match_group says so).
 */
static int rs_key_cmp(int32_t tfd_a, uint32_t events_a, uint64_t data_a,
		      int32_t tfd_b, uint32_t events_b, uint64_t data_b)
{
	events_a &= ~EPOLLWAKEUP;
	events_b &= ~EPOLLWAKEUP;
	if (tfd_a != tfd_b)
		return tfd_a < tfd_b ? -1 : 1;
	if (events_a != events_b)
		return events_a < events_b ? -1 : 1;
	if (data_a != data_b)
		return data_a < data_b ? -1 : 1;
	return 0;
}

#define RS_KEY_CMP(x, y)                                                      \
	rs_key_cmp((x)->tfd, (x)->events, (x)->data, (y)->tfd, (y)->events,   \
		   (y)->data)

static int cmp_line_key(const void *a, const void *b)
{
	const struct rs_line *x = a, *y = b;

	return RS_KEY_CMP(x, y);
}

static int cmp_exp_key(const void *a, const void *b)
{
	const struct rs_exp *x = a, *y = b;

	return RS_KEY_CMP(x, y);
}

/* st_dev as the kernel prints sdev: major << 20 | minor. */
static uint32_t rs_kernel_dev(dev_t dev)
{
	return (uint32_t)(major(dev) << 20 | (minor(dev) & 0xfffff));
}

static bool rs_anon_kind(uint32_t kind)
{
	return kind == IMAGE_KIND_EVENTFD || kind == IMAGE_KIND_TIMERFD ||
	       kind == IMAGE_KIND_SIGNALFD || kind == IMAGE_KIND_EPOLL;
}

/*
 * Whether line l of set sid is a watch on watch wi's file: 1 yes, 0 no,
 * -1 failed.  Where the file lives at tfd and no other watch of the set
 * uses that tfd, the inode fdinfo shows is compared with fstat(tfd) (the
 * files of one anonymous-inode kind share one inode: fstat once per kind);
 * elsewhere kcmp(KCMP_EPOLL_TFD) names the file (costly: it walks the set).
 */
static int rs_same_file(struct restore *r, struct rs_verify *v, uint32_t sid,
			const struct rs_line *l, uint32_t wi)
{
	const struct image_watch *w = &r->img->watches[wi];
	const struct image_fd *f = rs_fd_at(r, w->tfd);
	uint32_t kind = rs_tgt(r, w->target)->kind;
	struct kcmp_epoll_slot slot = {
		.efd = (uint32_t)r->t[sid - 1].home,
		.tfd = (uint32_t)l->tfd,
		.toff = l->toff,
	};
	struct stat st, *sp = &st;
	long k;

	if (f && f->target == w->target && l->ntfd == 1) {
		if (rs_anon_kind(kind) && v->anon_known[kind]) {
			sp = &v->anon[kind];
		} else if (fstat(w->tfd, &st) < 0) {
			return rs_fail(r, "verify: fstat fd %d: %s", w->tfd,
				       strerror(errno));
		} else if (rs_anon_kind(kind)) {
			v->anon[kind] = st;
			v->anon_known[kind] = true;
		}
		return l->ino == (uint64_t)sp->st_ino &&
		       l->sdev == rs_kernel_dev(sp->st_dev);
	}
	k = syscall(SYS_kcmp, getpid(), getpid(), KCMP_EPOLL_TFD,
		    r->t[w->target - 1].home, &slot);
	if (k >= 0)
		return k == 0;
	if (errno == ENOSYS || errno == EPERM || errno == EACCES ||
	    errno == EOPNOTSUPP) {
		v->kcmp_errno = errno;
		v->unverified++;
		return 1;
	}
	return rs_fail(r, "verify: kcmp(KCMP_EPOLL_TFD) epfd %d tfd %d: %s",
		       rs_first_fd(r, sid), l->tfd, strerror(errno));
}

/*
 * The first difference between the sorted expectations and lines, at
 * index i: a watch the kernel lacks, one it has in excess, or one whose
 * events differ.
 */
static int rs_differ(struct restore *r, uint32_t sid,
		     const struct rs_verify *v, uint32_t i)
{
	const struct rs_exp *e = i < v->nexps ? &v->exps[i] : NULL;
	const struct rs_line *l = i < v->nlines ? &v->lines[i] : NULL;
	int epfd = rs_first_fd(r, sid);

	if (e && l && e->tfd == l->tfd && e->data == l->data)
		return rs_fail(r, "verify: epfd %d: the image has tfd %d events 0x%x data 0x%llx, the kernel shows events 0x%x",
			       epfd, e->tfd, e->events,
			       (unsigned long long)e->data, l->events);
	if (e && (!l || RS_KEY_CMP(e, l) < 0))
		return rs_fail(r, "verify: epfd %d: watch tfd %d events 0x%x data 0x%llx of the image is not in the kernel's view",
			       epfd, e->tfd, e->events,
			       (unsigned long long)e->data);
	if (!l)
		return rs_fail(r, "verify: epfd %d: the image and the kernel's view differ", epfd);
	return rs_fail(r, "verify: epfd %d: the kernel shows watch tfd %d events 0x%x data 0x%llx, which the image does not have",
		       epfd, l->tfd, l->events, (unsigned long long)l->data);
}

static uint32_t rs_exp_target(const struct restore *r, const struct rs_exp *e)
{
	return r->img->watches[e->wi].target;
}

/* Pair a group of equal keys by file identity: O(group size ^ 2). */
static int rs_match_group(struct restore *r, struct rs_verify *v,
			  uint32_t sid, uint32_t from, uint32_t to)
{
	char what[256];

	for (uint32_t i = from; i < to; i++) {
		const struct rs_line *l = &v->lines[i];
		bool found = false;

		for (uint32_t j = from; j < to && !found; j++) {
			struct rs_exp *e = &v->exps[j];
			int same;

			if (e->used)
				continue;
			same = rs_same_file(r, v, sid, l, e->wi);
			if (same < 0)
				return -1;
			if (same) {
				e->used = found = true;
				if (e->events != l->events &&
				    e->events != (l->events | EPOLLWAKEUP))
					return rs_differ(r, sid, v, i);
				v->wakeup_dropped += e->events != l->events;
			}
		}
		if (!found) {
			rs_what(r, rs_exp_target(r, &v->exps[from]), what,
				sizeof(what));
			return rs_fail(r, "verify: epfd %d tfd %d: the watch with events 0x%x data 0x%llx is not on %s, the kernel shows it on inode %llu",
				       rs_first_fd(r, sid), l->tfd, l->events,
				       (unsigned long long)l->data, what,
				       (unsigned long long)l->ino);
		}
	}
	return 0;
}

/* fdinfo flags carry O_CLOEXEC of the fd read; other fds: F_GETFD. */
static int rs_verify_set_fds(struct restore *r, uint32_t sid, unsigned flags)
{
	const struct rs_target *st = &r->t[sid - 1];

	for (uint32_t k = 0; k < st->fd_count; k++) {
		const struct image_fd *f = rs_fd_of(r, st, k);
		bool cloexec;

		if (f->fd == st->home) {
			cloexec = flags & O_CLOEXEC;
		} else {
			int fl = fcntl(f->fd, F_GETFD);

			if (fl < 0)
				return rs_fail(r, "verify: epfd %d: %s", f->fd,
					       strerror(errno));
			cloexec = fl & FD_CLOEXEC;
		}
		if (cloexec != rs_fd_cloexec(f))
			return rs_fail(r, "verify: epfd %d is %sclose-on-exec, the image says it is %s",
				       f->fd, cloexec ? "" : "not ",
				       rs_fd_cloexec(f) ? "" : "not");
	}
	return 0;
}

/*
 * The common case, matched by index: every watch of the set has a tfd of
 * its own, in the image and in the kernel's view.  Each line is paired
 * with the expectation of its tfd (v->exp_at) and compared as
 * rs_match_group would (key, events, file identity), without sorting.
 * Returns 1 when every line and expectation paired and agreed, 0 when the
 * set is not that simple or differs somewhere (the caller then sorts and
 * matches, and reports the first difference in its order), -1 failed.
 */
static int rs_verify_by_index(struct restore *r, struct rs_verify *v,
			      uint32_t sid)
{
	uint32_t wakeup = v->wakeup_dropped, unverified = v->unverified;
	int kcmp_errno = v->kcmp_errno, ret = 1;
	uint32_t matched = 0;

	if (!v->exp_at || v->nlines != v->nexps)
		return 0;
	for (uint32_t i = 0; i < v->nexps && ret == 1; i++) {
		uint32_t *at = &v->exp_at[v->exps[i].tfd];

		if (*at)
			ret = 0;	/* two watches under one tfd */
		else
			*at = i + 1;
	}
	for (uint32_t i = 0; i < v->nlines && ret == 1; i++) {
		struct rs_line *l = &v->lines[i];
		const struct rs_exp *e;
		int same;

		if (l->tfd < 0 || l->tfd >= r->base || !v->exp_at[l->tfd]) {
			ret = 0;
			break;
		}
		e = &v->exps[v->exp_at[l->tfd] - 1];
		v->exp_at[l->tfd] = 0;	/* a second line there: not simple */
		matched++;
		l->toff = 0;
		l->ntfd = 1;
		if (RS_KEY_CMP(e, l) != 0 ||
		    (e->events != l->events &&
		     e->events != (l->events | EPOLLWAKEUP))) {
			ret = 0;
			break;
		}
		same = rs_same_file(r, v, sid, l, e->wi);
		if (same <= 0)
			ret = same;
		else
			v->wakeup_dropped += e->events != l->events;
	}
	if (matched < v->nexps)
		for (uint32_t i = 0; i < v->nexps; i++)
			v->exp_at[v->exps[i].tfd] = 0;
	if (ret == 0) {
		/* The caller starts again: count nothing twice. */
		v->wakeup_dropped = wakeup;
		v->unverified = unverified;
		v->kcmp_errno = kcmp_errno;
	}
	return ret;
}

static int rs_verify_set(struct restore *r, struct rs_verify *v, uint32_t sid)
{
	const struct rs_target *st = &r->t[sid - 1];
	uint32_t n = 0;
	unsigned flags = 0;
	int ret;

	for (uint32_t k = 0; k < st->w_count; k++)
		n += !(r->wflags[r->by_set[st->w_first + k]] & RSW_SKIP);
	if (rs_verify_grow(r, v, n) < 0 || !v->exps)
		return -1;
	v->nexps = n;
	for (uint32_t k = 0, j = 0; k < st->w_count; k++) {
		uint32_t wi = r->by_set[st->w_first + k];
		const struct image_watch *w = &r->img->watches[wi];

		if (!(r->wflags[wi] & RSW_SKIP))
			v->exps[j++] = (struct rs_exp){
				.tfd = w->tfd, .data = w->data, .wi = wi,
				.events = rs_expected_events(r, wi),
			};
	}
	ret = rs_read_fdinfo(r, v, st->home, rs_first_fd(r, sid),
			     RS_FDINFO_HEAD_MAX +
				     (size_t)(n + 1) * RS_FDINFO_LINE_MAX,
			     &flags);
	if (ret == -E2BIG)
		return rs_fail(r, "verify: epfd %d: the kernel lists more watches than the %u of the image",
			       rs_first_fd(r, sid), n);
	if (ret == -EINVAL)
		return rs_fail(r, "verify: epfd %d: cannot parse its fdinfo: %s",
			       rs_first_fd(r, sid), strerror(-ret));
	if (ret < 0)
		return -1;
	if (rs_verify_set_fds(r, sid, flags) < 0)
		return -1;
	ret = rs_verify_by_index(r, v, sid);
	if (ret != 0)
		return ret < 0 ? -1 : 0;
	qsort(v->lines, v->nlines, sizeof(*v->lines), cmp_line_pos);
	for (uint32_t i = 0, j; i < v->nlines; i = j) {
		j = i;
		while (j < v->nlines && v->lines[j].tfd == v->lines[i].tfd) {
			v->lines[j].toff = j - i;
			j++;
		}
		for (uint32_t k = i; k < j; k++)
			v->lines[k].ntfd = j - i;
	}
	qsort(v->lines, v->nlines, sizeof(*v->lines), cmp_line_key);
	qsort(v->exps, n, sizeof(*v->exps), cmp_exp_key);
	for (uint32_t i = 0, j; i < n || i < v->nlines; i = j) {
		if (i >= n || i >= v->nlines ||
		    RS_KEY_CMP(&v->exps[i], &v->lines[i]) != 0)
			return rs_differ(r, sid, v, i);
		for (j = i + 1; j < n && j < v->nlines &&
				!RS_KEY_CMP(&v->exps[j], &v->exps[i]) &&
				!RS_KEY_CMP(&v->lines[j], &v->lines[i]);
		     j++)
			;
		if (rs_match_group(r, v, sid, i, j) < 0)
			return -1;
	}
	return 0;
}

int rs_verify(struct restore *r)
{
	struct rs_verify v = { .kcmp_errno = 0 };
	int ret = 0;

	/* By index where the numbers are dense (r->num), else by sorting. */
	if (r->num && r->base > 0)
		v.exp_at = calloc((size_t)r->base, sizeof(*v.exp_at));

	for (uint32_t s = 0; s < r->nsets && ret == 0; s++)
		ret = rs_verify_set(r, &v, r->sets[s]);
	free(v.text);
	free(v.lines);
	free(v.exps);
	free(v.exp_at);
	if (ret == 0 && v.wakeup_dropped)
		ret = rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_UNRESTORABLE,
			      IMAGE_NONE, -1, IMAGE_NONE,
			      "EPOLLWAKEUP was dropped by the kernel on %u watches (it needs CAP_BLOCK_SUSPEND and PM sleep support)",
			      v.wakeup_dropped);
	if (ret == 0 && v.unverified)
		ret = rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC,
			      IMAGE_NONE, -1, IMAGE_NONE,
			      "the file of %u watches not at their tfd was not checked: kcmp: %s",
			      v.unverified, strerror(v.kcmp_errno));
	return ret;
}
