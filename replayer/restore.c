// SPDX-License-Identifier: MIT
/*
 * The restore executor (docs/restore.md): rebuild every epoll set of an
 * image in the calling process, at its original fd numbers, with every
 * watch keyed exactly as the kernel keyed it, (file, fd number at ADD).
 *
 *   plan     index the image, check it against this process: every number
 *            below RLIMIT_NOFILE, every number the restore needs free (or,
 *            with targets=existing, holding a file of the right kind);
 *            nothing has been touched when a check fails
 *   create   targets and sets, each straight at its final number when no
 *            other watch needs that number for a moment, else at a
 *            temporary number above every number the image names
 *   watches  set by set from the innermost outwards; in each set the fired
 *            oneshots first (armed, one event collected: the kernel
 *            disarms them to exactly their private bits), then the others:
 *            a watch whose tfd already holds its file is one epoll_ctl,
 *            any other is dup3(file, tfd); epoll_ctl; close(tfd)
 *   place    every file and set to all its final numbers
 *   verify   /proc/self/fdinfo of every set against the image, with the
 *            watched file's identity (inode, or kcmp where it lives
 *            elsewhere)
 * All or nothing: on any failure every descriptor the restore created is
 * closed and the process's other descriptors are as they were.
 *
 * One file per phase (contracts in restore_internal.h): plan.c, create.c,
 * watches.c, place.c, verify.c.  This file holds what they share (the
 * first failure's message, diagnostics, the indexes of the image) and the
 * whole: rs_run runs the phases, rs_undo closes what a failed restore
 * created, rs_report writes the report.
 */
#define LOG_PREFIX "restore"

#include "restore_internal.h"

/* ---- messages ---- */


/*
 * Record the first failure's reason; returns -1.  It names strings of the
 * image (paths, addresses): escaped by the one rule of escape.h, it is one
 * line that cannot drive a terminal.
 */
int rs_fail(struct restore *r, const char *fmt, ...)
{
	char raw[2048];
	va_list ap;

	if (r->failed)
		return -1;
	r->failed = true;
	if (r->err && r->err_len) {
		va_start(ap, fmt);
		vsnprintf(raw, sizeof(raw), fmt, ap);
		va_end(ap);
		escape_bytes(r->err, r->err_len, raw, strlen(raw), 0);
	}
	return -1;
}

struct image_target *rs_tgt(const struct restore *r, uint32_t id)
{
	return &r->img->targets[id - 1];
}

/* "eventfd target 3 (anon_inode:[eventfd])" */
const char *rs_what(const struct restore *r, uint32_t id, char *buf,
		    size_t len)
{
	const struct image_target *t = image_target_by_id(r->img, id);

	if (!t)
		snprintf(buf, len, "unknown target");
	else if (t->path)
		snprintf(buf, len, "%s target %u (%s)", image_kind_name(t->kind),
			 id, t->path);
	else
		snprintf(buf, len, "%s target %u", image_kind_name(t->kind), id);
	return buf;
}

/* The k-th fd entry of a target (k < its fd_count). */
const struct image_fd *rs_fd_of(const struct restore *r,
				const struct rs_target *rt, uint32_t k)
{
	return &r->img->fds[r->by_target[rt->fd_first + k]];
}

/* The first fd number of a target in the image, or -1 when it has none. */
int rs_first_fd(const struct restore *r, uint32_t id)
{
	const struct rs_target *rt;

	if (!r->t || id == 0 || id > r->img->ntargets)
		return -1;
	rt = &r->t[id - 1];
	return rt->fd_count ? r->img->fds[r->by_target[rt->fd_first]].fd : -1;
}


/*
 * Append a diagnostic about watch (set, tfd) or target (IMAGE_NONE and -1
 * where none); -1 when memory runs out.
 */
int rs_diag(struct restore *r, uint32_t severity, uint32_t code,
	    uint32_t set, int tfd, uint32_t target, const char *fmt, ...)
{
	const struct image_target *t = image_target_by_id(r->img, target);
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (image_add_diag(r->img, severity, code,
			   set ? rs_first_fd(r, set) : -1, tfd,
			   t ? t->path : NULL, IMAGE_NONE, "%s", msg) < 0)
		return rs_fail(r, "out of memory for a diagnostic");
	return 0;
}

/* ---- indexes ---- */

/*
 * Counting sort: out[] gets the indexes order[0..n-1] (0..n-1 when order
 * is NULL) grouped by the target id that key_of() gives each, in their
 * order; the group of id is then out[start[id - 1]] .. out[start[id] - 1].
 * start has ntargets + 2 entries.
 */
static void rs_group(const struct restore *r, uint32_t n, const uint32_t *order,
		     uint32_t *out, uint32_t *start,
		     uint32_t (*key_of)(const struct restore *, uint32_t))
{
	memset(start, 0, sizeof(*start) * (r->img->ntargets + 2));
	for (uint32_t i = 0; i < n; i++)
		start[key_of(r, i) + 1]++;
	/* start[id]: how many keys are below id, where group id begins. */
	for (uint32_t k = 1; k < r->img->ntargets + 2; k++)
		start[k] += start[k - 1];
	/* Filling moves start[id] to where group id ends. */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = order ? order[i] : i;

		out[start[key_of(r, x)]++] = x;
	}
}

/*
 * The watches in increasing tfd order (counting sort over the numbers of
 * r->num), or NULL when the numbers are not indexed or memory is short:
 * a set's watches are then added in image order.  Added in tfd order, the
 * files created in fd order go in at one end of the set's tree, which
 * costs the kernel less than the writer's order (the shim's hash order).
 */
static uint32_t *rs_watches_by_tfd(const struct restore *r)
{
	const struct image *img = r->img;
	uint32_t *order, *count;

	if (!r->num || !img->nwatches)
		return NULL;
	order = calloc(img->nwatches, sizeof(*order));
	count = calloc((size_t)r->base + 1, sizeof(*count));
	if (order && count) {
		for (uint32_t i = 0; i < img->nwatches; i++)
			count[img->watches[i].tfd + 1]++;
		for (int k = 1; k <= r->base; k++)
			count[k] += count[k - 1];
		for (uint32_t i = 0; i < img->nwatches; i++)
			order[count[img->watches[i].tfd]++] = i;
	} else {
		free(order);
		order = NULL;
	}
	free(count);
	return order;
}

static uint32_t fd_key(const struct restore *r, uint32_t i)
{
	return r->img->fds[i].target;
}

static uint32_t watch_key(const struct restore *r, uint32_t i)
{
	return r->img->watches[i].set;
}

static int cmp_num(const void *a, const void *b)
{
	const struct rs_num *x = a, *y = b;

	return x->fd < y->fd ? -1 : x->fd > y->fd;
}

static int cmp_tfd(const void *a, const void *b)
{
	const struct rs_tfd *x = a, *y = b;

	if (x->tfd != y->tfd)
		return x->tfd < y->tfd ? -1 : 1;
	return x->target < y->target ? -1 : x->target > y->target;
}

/* The image fd entry with this number, or NULL. */
const struct image_fd *rs_fd_at(const struct restore *r, int fd)
{
	uint32_t lo = 0, hi = r->img->nfds;

	if (r->num) {
		if (fd < 0 || fd >= r->base || !r->num[fd].fi1)
			return NULL;
		return &r->img->fds[r->num[fd].fi1 - 1];
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int32_t at = r->by_number[mid].fd;

		if (at == fd)
			return &r->img->fds[r->by_number[mid].fi];
		if (at < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Whether a target can sit at number fd while the watches are added: no
 * watch of another file was added under that number (it will need the
 * number free for a moment).
 */
bool rs_clean(const struct restore *r, int fd, uint32_t target)
{
	uint32_t lo = 0, hi = r->img->nwatches;

	if (r->num) {
		uint32_t owner = fd >= 0 && fd < r->base ? r->num[fd].owner : 0;

		return owner == 0 || owner == target + 1;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->tfds[mid].tfd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < r->img->nwatches && r->tfds[lo].tfd == fd; lo++)
		if (r->tfds[lo].target != target)
			return false;
	return true;
}

/*
 * Whether number tfd already holds the watch's file when it is added (the
 * plan records it as RSW_DIRECT).
 */
bool rs_direct(const struct restore *r, const struct image_watch *w)
{
	const struct image_fd *f = rs_fd_at(r, w->tfd);
	const struct rs_target *rt;

	if (!f || f->target != w->target)
		return false;
	rt = &r->t[w->target - 1];
	return !rt->owned || rs_clean(r, w->tfd, w->target);
}

bool rs_fd_cloexec(const struct image_fd *f)
{
	return f->fd_flags & FD_CLOEXEC;
}

/* Structural checks the reader makes too; hand-built images get them. */
static int rs_validate(struct restore *r)
{
	const struct image *img = r->img;

	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].id != i + 1)
			return rs_fail(r, "image: target %u has id %u", i + 1,
				       img->targets[i].id);
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct image_fd *f = &img->fds[i];

		if (f->fd < 0 || !image_target_by_id(img, f->target))
			return rs_fail(r, "image: fd entry %u (fd %d) names no target",
				       i, f->fd);
	}
	for (uint32_t i = 0; i < img->nwatches; i++) {
		const struct image_watch *w = &img->watches[i];
		const struct image_target *s = image_target_by_id(img, w->set);

		if (!s || s->kind != IMAGE_KIND_EPOLL || w->tfd < 0 ||
		    w->target == w->set ||
		    (w->target && !image_target_by_id(img, w->target)))
			return rs_fail(r, "image: watch %u (tfd %d) has a bad set or target",
				       i, w->tfd);
	}
	return 0;
}

static int rs_alloc(struct restore *r)
{
	const struct image *img = r->img;

	r->t = calloc(img->ntargets + 1, sizeof(*r->t));
	r->by_target = malloc(sizeof(uint32_t) * (img->nfds + 1));
	r->by_set = malloc(sizeof(uint32_t) * (img->nwatches + 1));
	r->placed = calloc(img->nfds + 1, 1);
	r->wflags = calloc(img->nwatches + 1, 1);
	r->sets = malloc(sizeof(uint32_t) * (img->ntargets + 1));
	r->fillers = malloc(sizeof(int) * (img->ntargets + 1));
	if (!r->t || !r->by_target || !r->by_set || !r->placed ||
	    !r->wflags || !r->sets || !r->fillers)
		return rs_fail(r, "out of memory for %u targets, %u fds, %u watches",
			       img->ntargets, img->nfds, img->nwatches);
	for (uint32_t i = 0; i < img->ntargets; i++)
		r->t[i].home = -1;
	return 0;
}

/* Each target's fds and each set's watches (in tfd order), grouped. */
static int rs_index_groups(struct restore *r)
{
	uint32_t n = r->img->ntargets;
	uint32_t *start = malloc(sizeof(*start) * (n + 2));
	uint32_t *order;

	if (!start)
		return rs_fail(r, "out of memory");
	rs_group(r, r->img->nfds, NULL, r->by_target, start, fd_key);
	for (uint32_t id = 1; id <= n; id++) {
		r->t[id - 1].fd_first = start[id - 1];
		r->t[id - 1].fd_count = start[id] - start[id - 1];
	}
	order = rs_watches_by_tfd(r);
	rs_group(r, r->img->nwatches, order, r->by_set, start, watch_key);
	free(order);
	for (uint32_t id = 1; id <= n; id++) {
		r->t[id - 1].w_first = start[id - 1];
		r->t[id - 1].w_count = start[id] - start[id - 1];
	}
	free(start);
	return 0;
}

/*
 * The lookups of rs_fd_at and rs_clean, by number: one table of r->base
 * entries where the numbers are dense enough (no sort, one load each),
 * else the fds and the watches' tfds sorted.  Either way no number may be
 * listed twice.
 */
static int rs_index_numbers(struct restore *r)
{
	struct image *img = r->img;

	if ((uint64_t)r->base <= RS_NUM_DIRECT_MAX(img->nfds + img->nwatches)) {
		r->num = calloc((size_t)r->base + 1, sizeof(*r->num));
		if (!r->num)
			return rs_fail(r, "out of memory for %d fd numbers",
				       r->base);
		for (uint32_t i = 0; i < img->nfds; i++) {
			struct rs_numinfo *n = &r->num[img->fds[i].fd];

			if (n->fi1)
				return rs_fail(r, "image: fd %d is listed twice",
					       img->fds[i].fd);
			n->fi1 = i + 1;
		}
		for (uint32_t i = 0; i < img->nwatches; i++) {
			struct rs_numinfo *n = &r->num[img->watches[i].tfd];
			uint32_t owner = img->watches[i].target + 1;

			n->owner = n->owner == 0 || n->owner == owner
					   ? owner
					   : RS_MIXED;
		}
		return 0;
	}
	r->by_number = malloc(sizeof(*r->by_number) * (img->nfds + 1));
	r->tfds = malloc(sizeof(*r->tfds) * (img->nwatches + 1));
	if (!r->by_number || !r->tfds)
		return rs_fail(r, "out of memory for %u fds, %u watches",
			       img->nfds, img->nwatches);
	for (uint32_t i = 0; i < img->nfds; i++)
		r->by_number[i] = (struct rs_num){ img->fds[i].fd, i };
	qsort(r->by_number, img->nfds, sizeof(*r->by_number), cmp_num);
	for (uint32_t i = 1; i < img->nfds; i++)
		if (r->by_number[i].fd == r->by_number[i - 1].fd)
			return rs_fail(r, "image: fd %d is listed twice",
				       r->by_number[i].fd);
	for (uint32_t i = 0; i < img->nwatches; i++) {
		r->tfds[i].tfd = img->watches[i].tfd;
		r->tfds[i].target = img->watches[i].target;
	}
	qsort(r->tfds, img->nwatches, sizeof(*r->tfds), cmp_tfd);
	return 0;
}

/*
 * The indexes the plan needs: each target's fds and each set's watches,
 * the numbers (rs_index_numbers), and r->base above every number of the
 * image.
 */
int rs_index(struct restore *r)
{
	if (rs_alloc(r) < 0 || rs_validate(r) < 0)
		return -1;
	r->base = image_max_fd(r->img) + 1;
	if (rs_index_numbers(r) < 0)
		return -1;
	return rs_index_groups(r);
}

/* ---- the whole ---- */

/*
 * Close every descriptor the restore created and remove the socket files
 * it bound (each only while its path still names the file bound).
 */
static void rs_undo(struct restore *r)
{
	for (uint32_t i = 0; i < r->nfiles; i++)
		recreate_unix_unlink(r->files[i].path, r->files[i].dev,
				     r->files[i].ino);
	if (!r->t || !r->placed || !r->fillers)
		return;
	rs_close_fillers(r);
	for (uint32_t i = 0; i < r->img->nfds; i++)
		if (r->placed[i])
			close(r->img->fds[i].fd);
	for (uint32_t i = 0; i < r->img->ntargets; i++)
		if (r->t[i].owned && r->t[i].home_temp && r->t[i].home >= 0)
			close(r->t[i].home);
}

/* Forget the diagnostics of a failed restore. */
static void rs_drop_diags(struct restore *r)
{
	struct image *img = r->img;

	while (img->ndiags > r->ndiags_before) {
		struct image_diag *d = &img->diags[--img->ndiags];

		free(d->path);
		free(d->message);
	}
}

static void rs_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* One line per diagnostic the restore added, to the report fd. */
static void rs_report(const struct restore *r)
{
	static const char *const sev[] = { "info", "warning", "error" };
	char line[2048], path[512], msg[1024];

	if (r->report_fd < 0)
		return;
	for (uint32_t i = r->ndiags_before; i < r->img->ndiags; i++) {
		const struct image_diag *d = &r->img->diags[i];
		uint32_t level = d->severity < IMAGE_SEV_ERROR
					 ? d->severity
					 : IMAGE_SEV_ERROR;
		int n;

		if (d->path)
			escape_str(path, sizeof(path), d->path);
		escape_str(msg, sizeof(msg), d->message);
		char where[64] = "";

		/* A diagnostic on no watch (files, socket pairs) names none. */
		if (d->epfd >= 0 || d->tfd >= 0)
			snprintf(where, sizeof(where), "epfd %d tfd %d", d->epfd,
				 d->tfd);
		n = snprintf(line, sizeof(line), "epollcr restore: %s: %s%s%s%s%s\n",
			     sev[level], where, where[0] && d->path ? " " : "",
			     d->path ? path : "", where[0] || d->path ? ": " : "",
			     msg);

		if (n > (int)sizeof(line) - 1) {
			n = (int)sizeof(line) - 1;
			line[n - 1] = '\n';
		}
		if (n > 0)
			rs_write_all(r->report_fd, line, (size_t)n);
	}
}

static void rs_free(struct restore *r)
{
	for (uint32_t i = 0; r->t && i < r->img->ntargets; i++)
		free(r->t[i].skip_why);
	free(r->t);
	free(r->by_target);
	free(r->num);
	free(r->by_number);
	free(r->by_set);
	free(r->tfds);
	free(r->placed);
	free(r->wflags);
	free(r->sets);
	free(r->fillers);
	for (uint32_t i = 0; i < r->nfiles; i++)
		free(r->files[i].path);
	free(r->files);
}

static int cmp_restore_fd(const void *a, const void *b)
{
	int x = ((const struct restore_fd *)a)->fd;
	int y = ((const struct restore_fd *)b)->fd;

	return x < y ? -1 : x > y;
}

/*
 * Fill res with what the restore created: every fd it placed, the fds
 * kept for watched files with no fd, and the socket files it bound (moved
 * out of r).  Returns 0 or -1 (out of memory, nothing kept).
 */
static int rs_result(struct restore *r, struct restore_result *res)
{
	uint32_t n = 0;

	memset(res, 0, sizeof(*res));
	res->fds = malloc(sizeof(*res->fds) *
			  ((size_t)r->img->nfds + r->img->ntargets + 1));
	if (!res->fds)
		return rs_fail(r, "out of memory");
	for (uint32_t i = 0; i < r->img->nfds; i++) {
		if (!r->placed[i])
			continue;
		res->fds[n].fd = r->img->fds[i].fd;
		res->fds[n].kind = rs_tgt(r, r->img->fds[i].target)->kind;
		res->fds[n++].kept = false;
	}
	for (uint32_t i = 0; i < r->img->ntargets; i++) {
		const struct rs_target *rt = &r->t[i];

		if (rt->state != RS_LIVE || !rt->owned || !rt->home_temp ||
		    rt->home < 0)
			continue;
		res->fds[n].fd = rt->home;
		res->fds[n].kind = r->img->targets[i].kind;
		res->fds[n++].kept = true;
	}
	qsort(res->fds, n, sizeof(*res->fds), cmp_restore_fd);
	res->nfds = n;
	res->files = r->files;
	res->nfiles = r->nfiles;
	r->files = NULL;
	r->nfiles = r->cap_files = 0;
	return 0;
}

void restore_result_free(struct restore_result *res)
{
	for (uint32_t i = 0; i < res->nfiles; i++)
		free(res->files[i].path);
	free(res->files);
	free(res->fds);
	memset(res, 0, sizeof(*res));
}

uint32_t restore_remove_files(const struct restore_result *res)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < res->nfiles; i++)
		n += recreate_unix_unlink(res->files[i].path,
					  res->files[i].dev,
					  res->files[i].ino);
	return n;
}

/* Milliseconds of clock since *t, and *t moved to now. */
static double rs_ms_since(clockid_t clock, struct timespec *t)
{
	struct timespec now;
	double ms;

	clock_gettime(clock, &now);
	ms = (double)(now.tv_sec - t->tv_sec) * 1e3 +
	     (double)(now.tv_nsec - t->tv_nsec) / 1e6;
	*t = now;
	return ms;
}

/* The steps of docs/restore.md, in order, each stopping at a failure. */
static const struct {
	const char *name;
	int (*run)(struct restore *r);
} rs_phases[] = {
	{ "plan", rs_plan },	     { "create", rs_create_all },
	{ "watches", rs_add_watches }, { "place", rs_place_all },
	{ "verify", rs_verify },
};

#define RS_NPHASES (sizeof(rs_phases) / sizeof(rs_phases[0]))

/* Run the phases; log what each cost (wall and CPU time). */
static int rs_run(struct restore *r)
{
	char times[RS_NPHASES * 48] = "";
	struct timespec wall, cpu;
	size_t len = 0;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &wall);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
	for (size_t i = 0; i < RS_NPHASES && ret == 0; i++) {
		double w, c;

		ret = rs_phases[i].run(r);
		w = rs_ms_since(CLOCK_MONOTONIC, &wall);
		c = rs_ms_since(CLOCK_THREAD_CPUTIME_ID, &cpu);
		len += (size_t)snprintf(times + len, sizeof(times) - len,
					"%s%s %.2f ms (cpu %.2f)",
					i ? ", " : "", rs_phases[i].name, w, c);
	}
	log_debug("%s: %s; %u sets, %u watches", ret < 0 ? "failed" : "done",
		  times, r->nsets, r->img->nwatches);
	return ret;
}

int restore_image(struct image *img,
		  const struct epollcr_restore_options *options, char *err,
		  size_t err_len)
{
	return restore_image_trust(img, options, 0, err, err_len);
}

int restore_image_trust(struct image *img,
			const struct epollcr_restore_options *options,
			unsigned flags, char *err, size_t err_len)
{
	const struct restore_ext ext = { .flags = flags };

	return restore_image_ex(img, options, &ext, err, err_len);
}

int restore_image_ex(struct image *img,
		     const struct epollcr_restore_options *options,
		     const struct restore_ext *ext, char *err, size_t err_len)
{
	static const struct restore_ext no_ext = { .flags = 0 };
	static const struct epollcr_restore_options defaults = {
		.targets = EPOLLCR_TARGETS_RECREATE,
		.missing = EPOLLCR_MISSING_FAIL,
		.report_fd = -1,
	};
	const struct epollcr_restore_options *o = options ? options : &defaults;
	const struct restore_ext *x = ext ? ext : &no_ext;
	struct restore r = {
		.img = img,
		.existing = o->targets == EPOLLCR_TARGETS_EXISTING,
		.skip_missing = o->missing == EPOLLCR_MISSING_SKIP,
		.policy = !(x->flags & RESTORE_TRUST_IMAGE) && geteuid() == 0 &&
			  (img->proc.uid != 0 ||
			   (img->file_uid >= 0 && img->file_uid != 0)),
		.report_fd = o->report_fd,
		.err = err,
		.err_len = err_len,
		.ndiags_before = img->ndiags,
		.ext = x,
	};
	int saved_errno = errno, ret;

	if (err && err_len)
		err[0] = '\0';
	if ((o->targets != EPOLLCR_TARGETS_RECREATE &&
	     o->targets != EPOLLCR_TARGETS_EXISTING) ||
	    (o->missing != EPOLLCR_MISSING_FAIL &&
	     o->missing != EPOLLCR_MISSING_SKIP))
		return rs_fail(&r, "bad restore options (targets %d, missing %d)",
			       (int)o->targets, (int)o->missing);
	ret = rs_run(&r);
	if (ret == 0 && x->result)
		ret = rs_result(&r, x->result);
	if (ret < 0) {
		rs_undo(&r);
		rs_drop_diags(&r);
	} else {
		rs_report(&r);
	}
	rs_free(&r);
	errno = saved_errno;
	return ret < 0 ? -1 : 0;
}
