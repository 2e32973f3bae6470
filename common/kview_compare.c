// SPDX-License-Identifier: MIT
/*
 * Comparing two images of the same process (kview_compare, behind
 * `epollcr verify`): targets matched by their fds, watches by (set, tfd,
 * target), each difference one line of text.
 */
#include "kview_internal.h"

/* ---- comparing two images ------------------------------------------------ */

/* The first watches of one tfd that are matched by target before order. */
#define CMP_MAX_GREEDY 1024
#define CMP_LINE_MAX 1024	/* bytes of one difference line */
#define CMP_LIST_FDS 8		/* fd numbers shown in one line */

/* One image, indexed. */
struct cmp_img {
	const struct image *img;
	uint32_t *by_target;	/* img->fds indexes by (target, fd) */
	uint32_t *by_number;	/* img->fds indexes by fd */
	uint32_t *by_set;	/* img->watches indexes by (set, tfd, order) */
};

struct cmp {
	struct cmp_img e, a;
	int out_fd;
	int count;
	int err;		/* first -errno of a write */
	uint8_t *done;		/* expected targets already compared */
};

static int cmp_fd_target(const void *x, const void *y, void *ctx)
{
	const struct image *img = ctx;
	const struct image_fd *a = &img->fds[*(const uint32_t *)x];
	const struct image_fd *b = &img->fds[*(const uint32_t *)y];

	if (a->target != b->target)
		return a->target < b->target ? -1 : 1;
	return (a->fd > b->fd) - (a->fd < b->fd);
}

static int cmp_fd_number(const void *x, const void *y, void *ctx)
{
	const struct image *img = ctx;
	int a = img->fds[*(const uint32_t *)x].fd;
	int b = img->fds[*(const uint32_t *)y].fd;

	return (a > b) - (a < b);
}

static int cmp_watch_set(const void *x, const void *y, void *ctx)
{
	const struct image *img = ctx;
	uint32_t i = *(const uint32_t *)x, j = *(const uint32_t *)y;
	const struct image_watch *a = &img->watches[i], *b = &img->watches[j];

	if (a->set != b->set)
		return a->set < b->set ? -1 : 1;
	if (a->tfd != b->tfd)
		return a->tfd < b->tfd ? -1 : 1;
	return (i > j) - (i < j);
}

static uint32_t *index_array(uint32_t n)
{
	uint32_t *v = malloc((n ? n : 1) * sizeof(*v));

	for (uint32_t i = 0; v && i < n; i++)
		v[i] = i;
	return v;
}

static int cmp_img_init(struct cmp_img *ci, const struct image *img)
{
	ci->img = img;
	ci->by_target = index_array(img->nfds);
	ci->by_number = index_array(img->nfds);
	ci->by_set = index_array(img->nwatches);
	if (!ci->by_target || !ci->by_number || !ci->by_set)
		return -ENOMEM;
	qsort_r(ci->by_target, img->nfds, sizeof(uint32_t), cmp_fd_target,
		(void *)img);
	qsort_r(ci->by_number, img->nfds, sizeof(uint32_t), cmp_fd_number,
		(void *)img);
	qsort_r(ci->by_set, img->nwatches, sizeof(uint32_t), cmp_watch_set,
		(void *)img);
	return 0;
}

static void cmp_img_free(struct cmp_img *ci)
{
	free(ci->by_target);
	free(ci->by_number);
	free(ci->by_set);
}

/* The target id at fd in the image, or IMAGE_NONE. */
static uint32_t cmp_target_at(const struct cmp_img *ci, int fd)
{
	uint32_t lo = 0, hi = ci->img->nfds;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ci->img->fds[ci->by_number[mid]].fd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ci->img->nfds && ci->img->fds[ci->by_number[lo]].fd == fd)
		return ci->img->fds[ci->by_number[lo]].target;
	return IMAGE_NONE;
}

/* The range [*first, return) of by_target holding target's fds. */
static uint32_t cmp_fds_of(const struct cmp_img *ci, uint32_t target,
			   uint32_t *first)
{
	uint32_t lo = 0, hi = ci->img->nfds, end;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ci->img->fds[ci->by_target[mid]].target < target)
			lo = mid + 1;
		else
			hi = mid;
	}
	end = lo;
	while (end < ci->img->nfds &&
	       ci->img->fds[ci->by_target[end]].target == target)
		end++;
	*first = lo;
	return end;
}

/* The range [*first, return) of by_set holding the watches of set. */
static uint32_t cmp_watches_of(const struct cmp_img *ci, uint32_t set,
			       uint32_t *first)
{
	uint32_t lo = 0, hi = ci->img->nwatches, end;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ci->img->watches[ci->by_set[mid]].set < set)
			lo = mid + 1;
		else
			hi = mid;
	}
	end = lo;
	while (end < ci->img->nwatches &&
	       ci->img->watches[ci->by_set[end]].set == set)
		end++;
	*first = lo;
	return end;
}

/* Write prefix and one line (escaped, see escape.h) to c->out_fd. */
static void write_line(struct cmp *c, const char *prefix, const char *fmt,
		       va_list ap)
{
	char raw[CMP_LINE_MAX], line[CMP_LINE_MAX];
	size_t len = strlen(prefix);
	int n;

	if (c->out_fd < 0 || c->err)
		return;
	memcpy(raw, prefix, len);
	n = vsnprintf(raw + len, sizeof(raw) - len, fmt, ap);
	if (n < 0)
		return;
	/* The image's strings in it: one line, escaped (escape.h). */
	escape_bytes(line, sizeof(line) - 1, raw, strlen(raw), 0);
	n = (int)strlen(line);
	line[n++] = '\n';
	for (int off = 0, tries = 0; off < n;) {
		ssize_t w = write(c->out_fd, line + off, (size_t)(n - off));

		if (w < 0 && errno == EINTR && ++tries < KVIEW_MAX_EINTR)
			continue;
		if (w <= 0) {
			c->err = w < 0 ? -errno : -EIO;
			return;
		}
		off += (int)w;
	}
}

/* Write one difference line and count it. */
static void diff_line(struct cmp *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void diff_line(struct cmp *c, const char *fmt, ...)
{
	va_list ap;

	c->count++;
	va_start(ap, fmt);
	write_line(c, "", fmt, ap);
	va_end(ap);
}

/* Write one line that is not a difference ("note: ..."), not counted. */
static void note_line(struct cmp *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note_line(struct cmp *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_line(c, "note: ", fmt, ap);
	va_end(ap);
}

/* "3,5 cloexec,7" for the fds [first, end) of by_target. */
static void format_fds(const struct cmp_img *ci, uint32_t first,
		       uint32_t end, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	if (first == end)
		snprintf(buf, len, "none");
	for (uint32_t i = first; i < end && used < len; i++) {
		const struct image_fd *f = &ci->img->fds[ci->by_target[i]];
		int n;

		if (i - first == CMP_LIST_FDS) {
			snprintf(buf + used, len - used, ",...");
			return;
		}
		n = snprintf(buf + used, len - used, "%s%d%s",
			     i > first ? "," : "", f->fd,
			     (f->fd_flags & FD_CLOEXEC) ? " cloexec" : "");
		if (n < 0)
			return;
		used += (size_t)n;
	}
}

/* Do two targets sit at the same fd numbers, with the same fd flags? */
static bool same_fds(const struct cmp *c, uint32_t te, uint32_t ta,
		     char *exp, char *act, size_t len)
{
	uint32_t ef, af, ee = cmp_fds_of(&c->e, te, &ef),
			 ae = cmp_fds_of(&c->a, ta, &af);
	bool same = ee - ef == ae - af;

	for (uint32_t i = 0; same && i < ee - ef; i++) {
		const struct image_fd *x =
			&c->e.img->fds[c->e.by_target[ef + i]];
		const struct image_fd *y =
			&c->a.img->fds[c->a.by_target[af + i]];

		same = x->fd == y->fd &&
		       (x->fd_flags & FD_CLOEXEC) == (y->fd_flags & FD_CLOEXEC);
	}
	if (!same) {
		format_fds(&c->e, ef, ee, exp, len);
		format_fds(&c->a, af, ae, act, len);
	}
	return same;
}

/*
 * A file no fd held in expected (its watches lived on through another
 * process's reference) that actual holds at one number expected does not
 * use: how a restore keeps such a file, and its watches, alive
 * (docs/restore.md, "kept open").  That number, or -1.
 */
static int kept_open_at(const struct cmp *c, const struct image_target *te,
			const struct image_target *ta)
{
	uint32_t ef, af, ee = cmp_fds_of(&c->e, te->id, &ef),
			 ae = cmp_fds_of(&c->a, ta->id, &af);
	int fd;

	if (ee != ef || ae != af + 1)
		return -1;
	fd = c->a.img->fds[c->a.by_target[af]].fd;
	return cmp_target_at(&c->e, fd) == IMAGE_NONE ? fd : -1;
}

/* One line for file flags that differ: both values, in octal and named. */
static void flags_diff(struct cmp *c, int epfd, int tfd, const char *whose,
		       uint32_t exp_fl, uint32_t act_fl)
{
	char exp[160], act[160];
	diff_line(c, "epfd %d tfd %d: %s file flags expected 0%o (%s), actual 0%o (%s)",
		  epfd, tfd, whose, exp_fl,
		  kind_file_flags_text(exp_fl, exp, sizeof(exp)), act_fl,
		  kind_file_flags_text(act_fl, act, sizeof(act)));
}

/*
 * A socketpair end: the other end the image names must be this end's other
 * end in actual too, at the same numbers with the same fd flags, access
 * mode and status flags (KIND_STATUS_FLAGS).  Queued bytes are not compared: the
 * program moves them.
 */
static void compare_pair(struct cmp *c, int epfd, int tfd,
			 const struct image_target *te,
			 const struct image_target *ta)
{
	const uint32_t fl_mask = O_ACCMODE | KIND_STATUS_FLAGS;
	const struct image_target *pe, *pa;
	char exp[160], act[160];
	uint32_t first, end;

	pe = image_target_by_id(c->e.img, te->u.sock.pair);
	if (!pe)
		return;
	pa = image_target_by_id(c->a.img, ta->u.sock.pair);
	if (!pa) {
		end = cmp_fds_of(&c->e, pe->id, &first);
		format_fds(&c->e, first, end, exp, sizeof(exp));
		diff_line(c, "epfd %d tfd %d: socketpair other end expected at fds %s, actual none (not connected to a socket of this process)",
			  epfd, tfd, exp);
		return;
	}
	if (!same_fds(c, pe->id, pa->id, exp, act, sizeof(exp)))
		diff_line(c, "epfd %d tfd %d: socketpair other end's fds expected %s, actual %s",
			  epfd, tfd, exp, act);
	if ((pe->file_flags ^ pa->file_flags) & fl_mask)
		flags_diff(c, epfd, tfd, "socketpair other end's",
			   pe->file_flags & fl_mask, pa->file_flags & fl_mask);
}

/*
 * A file no fd held, seen from the kernel alone, is KVIEW_ANON_UNKNOWN
 * when its inode is the anonymous inode: one of the kinds below, the
 * kernel does not say which.  Held by an fd now, it is described: that
 * is not a difference, and there is nothing else of it to compare.
 */
static bool anon_unknown_is(const struct image_target *te,
			    const struct image_target *ta)
{
	/* The kinds of the anonymous inode: those with a standard path. */
	return kview_anon_unknown(te) && image_standard_path(ta->kind);
}

/*
 * Do the open_fd of two watches agree: equal, or none in expected and the
 * number actual keeps the file open at (kept_open_at)?
 */
static bool open_fds_agree(const struct cmp *c, const struct image_watch *we,
			   const struct image_watch *wa,
			   const struct image_target *te,
			   const struct image_target *ta)
{
	return we->open_fd == wa->open_fd ||
	       (we->open_fd < 0 && te && ta &&
		wa->open_fd == kept_open_at(c, te, ta));
}

/* Do the kinds of te and ta agree (equal, or te could not say)? */
static bool kinds_agree(const struct image_target *te,
			const struct image_target *ta)
{
	return te->kind == ta->kind || anon_unknown_is(te, ta);
}

/* Compare a watched target once: description, fds, file flags. */
static void compare_target(struct cmp *c, int epfd, int tfd,
			   const struct image_target *te,
			   const struct image_target *ta)
{
	const uint32_t fl_mask = O_ACCMODE | KIND_STATUS_FLAGS;
	char diff[256], exp[160], act[160];
	uint32_t first;
	int kept;

	if (!kinds_agree(te, ta)) {
		diff_line(c, "epfd %d tfd %d: target kind expected %s, actual %s",
			  epfd, tfd, image_kind_name(te->kind),
			  image_kind_name(ta->kind));
		return;
	}
	if (c->done[te->id - 1])
		return;
	c->done[te->id - 1] = 1;
	diff[0] = '\0';
	if (te->kind != IMAGE_KIND_EPOLL && te->kind == ta->kind &&
	    !kind_ops_of(te->kind)->same(te, ta, diff, sizeof(diff)))
		diff_line(c, "epfd %d tfd %d: target %s differs: %s", epfd,
			  tfd, image_kind_name(te->kind), diff);
	kept = kept_open_at(c, te, ta);
	if (kept >= 0)
		note_line(c, "epfd %d tfd %d: no fd held this %s in the image; fd %d holds it now (as a restore keeps such a file open so that its watches live)",
			  epfd, tfd, image_kind_name(ta->kind), kept);
	else if (!same_fds(c, te->id, ta->id, exp, act, sizeof(exp)))
		diff_line(c, "epfd %d tfd %d: target fds expected %s, actual %s",
			  epfd, tfd, exp, act);
	if (cmp_fds_of(&c->e, te->id, &first) != first &&
	    cmp_fds_of(&c->a, ta->id, &first) != first &&
	    (te->file_flags & fl_mask) != (ta->file_flags & fl_mask))
		flags_diff(c, epfd, tfd, "target", te->file_flags & fl_mask,
			   ta->file_flags & fl_mask);
	if (te->kind == IMAGE_KIND_SOCKET)
		compare_pair(c, epfd, tfd, te, ta);
}

static void compare_watch(struct cmp *c, int epfd,
			  const struct image_watch *we,
			  const struct image_watch *wa)
{
	const struct image_target *te = image_target_by_id(c->e.img,
							   we->target);
	const struct image_target *ta = image_target_by_id(c->a.img,
							   wa->target);
	bool se = we->flags & IMAGE_W_STALE, sa = wa->flags & IMAGE_W_STALE;

	if (we->events != wa->events)
		diff_line(c, "epfd %d tfd %d: events expected 0x%x, actual 0x%x",
			  epfd, we->tfd, we->events, wa->events);
	if (we->data != wa->data)
		diff_line(c, "epfd %d tfd %d: data expected 0x%llx, actual 0x%llx",
			  epfd, we->tfd, (unsigned long long)we->data,
			  (unsigned long long)wa->data);
	if (se != sa)
		diff_line(c, "epfd %d tfd %d: stale expected %s, actual %s",
			  epfd, we->tfd, se ? "yes" : "no", sa ? "yes" : "no");
	if (!open_fds_agree(c, we, wa, te, ta))
		diff_line(c, "epfd %d tfd %d: open_fd expected %d, actual %d",
			  epfd, we->tfd, we->open_fd, wa->open_fd);
	if (!te || !ta) {
		if (te || ta)
			diff_line(c, "epfd %d tfd %d: target expected %s, actual %s",
				  epfd, we->tfd,
				  te ? image_kind_name(te->kind) : "none",
				  ta ? image_kind_name(ta->kind) : "none");
		return;
	}
	compare_target(c, epfd, we->tfd, te, ta);
}

/* Would we and wa pass compare_watch without a difference in the watch? */
static bool watch_alike(const struct cmp *c, const struct image_watch *we,
			const struct image_watch *wa)
{
	const struct image_target *te = image_target_by_id(c->e.img,
							   we->target);
	const struct image_target *ta = image_target_by_id(c->a.img,
							   wa->target);

	if (we->events != wa->events || we->data != wa->data || !te || !ta ||
	    !kinds_agree(te, ta) || !open_fds_agree(c, we, wa, te, ta))
		return false;
	return te->kind == IMAGE_KIND_EPOLL || te->kind != ta->kind ||
	       kind_ops_of(te->kind)->same(te, ta, NULL, 0);
}

/*
 * Match the watches of one tfd: e[0..ne) against a[0..na) (indexes of
 * img->watches); alike pairs first (for at most CMP_MAX_GREEDY watches),
 * then the rest in order.  ematch/amatch: room for ne/na flags.
 */
static void compare_tfd_run(struct cmp *c, int epfd, const uint32_t *e,
			    uint32_t ne, const uint32_t *a, uint32_t na,
			    uint8_t *ematch, uint8_t *amatch)
{
	const struct image_watch *we, *wa;
	uint32_t j = 0;

	memset(ematch, 0, ne);
	memset(amatch, 0, na);
	if (ne > 1 || na > 1) {
		uint32_t me = ne < CMP_MAX_GREEDY ? ne : CMP_MAX_GREEDY;
		uint32_t ma = na < CMP_MAX_GREEDY ? na : CMP_MAX_GREEDY;

		for (uint32_t i = 0; i < me; i++) {
			we = &c->e.img->watches[e[i]];
			for (uint32_t k = 0; k < ma; k++) {
				wa = &c->a.img->watches[a[k]];
				if (amatch[k] || !watch_alike(c, we, wa))
					continue;
				ematch[i] = amatch[k] = 1;
				compare_watch(c, epfd, we, wa);
				break;
			}
		}
	}
	for (uint32_t i = 0; i < ne; i++) {
		if (ematch[i])
			continue;
		we = &c->e.img->watches[e[i]];
		while (j < na && amatch[j])
			j++;
		if (j < na) {
			amatch[j] = 1;
			compare_watch(c, epfd, we, &c->a.img->watches[a[j]]);
			continue;
		}
		diff_line(c, "epfd %d tfd %d: watch missing (expected events 0x%x, data 0x%llx)",
			  epfd, we->tfd, we->events,
			  (unsigned long long)we->data);
	}
	for (uint32_t k = 0; k < na; k++) {
		if (amatch[k])
			continue;
		wa = &c->a.img->watches[a[k]];
		diff_line(c, "epfd %d tfd %d: unexpected watch (actual events 0x%x, data 0x%llx)",
			  epfd, wa->tfd, wa->events,
			  (unsigned long long)wa->data);
	}
}

/* Compare the watches of expected set se with actual set sa. */
static int compare_set_watches(struct cmp *c, int epfd, uint32_t se,
			       uint32_t sa)
{
	uint32_t ef, af, ee = cmp_watches_of(&c->e, se, &ef),
			 ae = cmp_watches_of(&c->a, sa, &af);
	uint32_t len = (ee - ef) + (ae - af);
	uint8_t *match = malloc(len ? len : 1);

	if (!match)
		return -ENOMEM;
	while (ef < ee || af < ae) {
		int32_t te = ef < ee ? c->e.img->watches[c->e.by_set[ef]].tfd
				     : INT32_MAX;
		int32_t ta = af < ae ? c->a.img->watches[c->a.by_set[af]].tfd
				     : INT32_MAX;
		int32_t tfd = te < ta ? te : ta;
		uint32_t ne = 0, na = 0;

		if (ef >= ee)
			tfd = ta;
		else if (af >= ae)
			tfd = te;
		while (ef + ne < ee &&
		       c->e.img->watches[c->e.by_set[ef + ne]].tfd == tfd)
			ne++;
		while (af + na < ae &&
		       c->a.img->watches[c->a.by_set[af + na]].tfd == tfd)
			na++;
		compare_tfd_run(c, epfd, c->e.by_set + ef, ne,
				c->a.by_set + af, na, match, match + ne);
		ef += ne;
		af += na;
	}
	free(match);
	return 0;
}

/* Every set of expected, found at its lowest fd in actual. */
static int compare_sets(struct cmp *c)
{
	char exp[160], act[160];

	for (uint32_t t = 1; t <= c->e.img->ntargets; t++) {
		const struct image_target *te = &c->e.img->targets[t - 1];
		uint32_t first, end = cmp_fds_of(&c->e, t, &first);

		if (te->kind != IMAGE_KIND_EPOLL || first == end)
			continue;
		int epfd = c->e.img->fds[c->e.by_target[first]].fd;
		uint32_t ta = cmp_target_at(&c->a, epfd);
		const struct image_target *a = image_target_by_id(c->a.img, ta);

		if (!a) {
			diff_line(c, "epfd %d: epoll set missing (expected %u watches)",
				  epfd, te->u.ep.nwatches);
			continue;
		}
		if (a->kind != IMAGE_KIND_EPOLL) {
			diff_line(c, "epfd %d: expected an epoll set, actual %s",
				  epfd, image_kind_name(a->kind));
			continue;
		}
		if (!same_fds(c, t, ta, exp, act, sizeof(exp)))
			diff_line(c, "epfd %d: set fds expected %s, actual %s",
				  epfd, exp, act);
		int ret = compare_set_watches(c, epfd, t, ta);

		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Sets of actual that no set of expected names. */
static void compare_extra_sets(struct cmp *c)
{
	for (uint32_t t = 1; t <= c->a.img->ntargets; t++) {
		const struct image_target *ta = &c->a.img->targets[t - 1];
		uint32_t first, end = cmp_fds_of(&c->a, t, &first);
		bool known = false;

		if (ta->kind != IMAGE_KIND_EPOLL || first == end)
			continue;
		for (uint32_t i = first; i < end && !known; i++) {
			int fd = c->a.img->fds[c->a.by_target[i]].fd;
			const struct image_target *te = image_target_by_id(
				c->e.img, cmp_target_at(&c->e, fd));

			known = te && te->kind == IMAGE_KIND_EPOLL;
		}
		if (!known)
			diff_line(c, "epfd %d: unexpected epoll set (actual %u watches)",
				  c->a.img->fds[c->a.by_target[first]].fd,
				  ta->u.ep.nwatches);
	}
}

int kview_compare(const struct image *expected, const struct image *actual,
		  int out_fd)
{
	struct cmp c = { .out_fd = out_fd };
	int ret;

	ret = cmp_img_init(&c.e, expected);
	if (ret == 0)
		ret = cmp_img_init(&c.a, actual);
	if (ret == 0) {
		c.done = calloc(expected->ntargets ? expected->ntargets : 1, 1);
		if (!c.done)
			ret = -ENOMEM;
	}
	if (ret == 0)
		ret = compare_sets(&c);
	if (ret == 0)
		compare_extra_sets(&c);
	free(c.done);
	cmp_img_free(&c.e);
	cmp_img_free(&c.a);
	if (ret < 0)
		return ret;
	return c.err ? c.err : c.count;
}
