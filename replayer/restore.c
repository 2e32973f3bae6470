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
 */
#define LOG_PREFIX "restore"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "kind.h"
#include "kview.h"
#include "log.h"
#include "recreate.h"
#include "restore.h"
#include "unix_diag.h"

/* The bits a fired EPOLLONESHOT watch keeps (the kernel's EP_PRIVATE_BITS). */
#define RS_PRIVATE_BITS \
	(EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)
/* The bits the kernel ORs into every ADD and MOD. */
#define RS_ALWAYS_BITS (EPOLLERR | EPOLLHUP)
/* poll() bits that may be asked for when arming a fired oneshot again. */
#define RS_POLL_BITS                                                          \
	(EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND |          \
	 EPOLLWRNORM | EPOLLWRBAND | EPOLLRDHUP)
/*
 * The most a whole restore waits for events that make fired oneshots'
 * files ready (a loopback connection to a listener): a listener that no
 * connection can reach costs the rest of it once, not a second each.
 */
#define RS_READY_BUDGET_MS 1000
/* Numbers checked per poll() call when looking for free fd numbers. */
#define RS_POLL_CHUNK 1024
/* fdinfo bytes allowed per expected watch line (a line is about 90). */
#define RS_FDINFO_LINE_MAX 192
#define RS_FDINFO_HEAD_MAX 4096

enum rs_state {
	RS_UNUSED = 0, /* not part of the epoll state: left alone */
	RS_WANTED,     /* to be created (or found, targets=existing) */
	RS_SKIPPED,    /* cannot be brought back, missing=skip */
	RS_LIVE,       /* created, or found at its fds */
};

/* Per-watch flags (r->wflags). */
#define RSW_SKIP 0x1	/* left out: its target is skipped */
#define RSW_ARMED 0x2	/* fired oneshot that had to be restored armed */
#define RSW_DIRECT 0x4	/* its tfd holds its file: added with no dance */

/* What the restore knows of one image target (index id - 1). */
struct rs_target {
	int home;	   /* fd holding it while watches are added, -1 */
	uint32_t partner;  /* created together with it, IMAGE_NONE */
	uint32_t fd_first; /* its fds: r->by_target[fd_first..+fd_count) */
	uint32_t fd_count;
	uint32_t w_first;  /* sets: their watches, r->by_set[w_first..] */
	uint32_t w_count;
	uint8_t state;	   /* enum rs_state */
	uint8_t height;	   /* sets: longest chain of sets inside, 0..4 */
	char *skip_why;	   /* RS_SKIPPED: why it cannot be restored */
	bool owned;	   /* created by the restore: closed on failure */
	bool home_temp;	   /* home is a temporary number >= r->base */
};

/* An fd number of the image and its entry in img->fds, sorted by number. */
struct rs_num {
	int32_t fd;
	uint32_t fi;
};

/* One watch's (tfd, target), sorted: which numbers a dup3 dance needs. */
struct rs_tfd {
	int32_t tfd;
	uint32_t target;
};

struct restore {
	struct image *img;
	bool existing;		/* targets=existing */
	bool skip_missing;	/* missing=skip */
	bool policy;		/* root restoring a non-root image, not
				 * trusted: rs_check_policy applies */
	int report_fd;
	char *err;
	size_t err_len;
	bool failed;		/* err holds the first failure */
	uint32_t ndiags_before; /* img->ndiags when the restore began */
	int base;		/* temporaries take numbers >= base */
	uint32_t poll_batch;	/* numbers per poll() (RLIMIT_NOFILE bounds) */
	struct rs_target *t;	/* [ntargets] */
	uint32_t *by_target;	/* fd indexes grouped by target */
	struct rs_num *by_number; /* [nfds] sorted by fd number */
	uint32_t *by_set;	/* watch indexes grouped by set */
	struct rs_tfd *tfds;	/* [nwatches], sorted */
	uint8_t *placed;	/* [nfds]: the restore put a file there */
	uint8_t *wflags;	/* [nwatches]: RSW_* */
	uint32_t *sets;		/* set ids, innermost first */
	int *fillers;		/* created fds left below their home, open */
	uint32_t nfillers;	/* until the create phase ends */
	uint32_t nsets;
	struct timespec ready_end; /* CLOCK_MONOTONIC end of the one
				    * budget of waiting to make files ready */
	char why[512];		/* scratch for per-kind reasons */
	char note[512];
};

/* ---- messages ---- */

static int rs_fail(struct restore *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Record the first failure's reason; returns -1.  It names strings of the
 * image (paths, addresses): escaped by the one rule of escape.h, it is one
 * line that cannot drive a terminal.
 */
static int rs_fail(struct restore *r, const char *fmt, ...)
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

static struct image_target *rs_tgt(const struct restore *r, uint32_t id)
{
	return &r->img->targets[id - 1];
}

/* "eventfd target 3 (anon_inode:[eventfd])" */
static const char *rs_what(const struct restore *r, uint32_t id, char *buf,
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
static const struct image_fd *rs_fd_of(const struct restore *r,
				       const struct rs_target *rt, uint32_t k)
{
	return &r->img->fds[r->by_target[rt->fd_first + k]];
}

/* The first fd number of a target in the image, or -1 when it has none. */
static int rs_first_fd(const struct restore *r, uint32_t id)
{
	const struct rs_target *rt;

	if (!r->t || id == 0 || id > r->img->ntargets)
		return -1;
	rt = &r->t[id - 1];
	return rt->fd_count ? r->img->fds[r->by_target[rt->fd_first]].fd : -1;
}

static int rs_diag(struct restore *r, uint32_t severity, uint32_t code,
		   uint32_t set, int tfd, uint32_t target, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/*
 * Append a diagnostic about watch (set, tfd) or target (IMAGE_NONE and -1
 * where none); -1 when memory runs out.
 */
static int rs_diag(struct restore *r, uint32_t severity, uint32_t code,
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
 * Counting sort: out[] gets the indexes 0..n-1 grouped by the target id
 * that key_of() gives each, in their order; the group of id is then
 * out[start[id - 1]] .. out[start[id] - 1].  start has ntargets + 2
 * entries.
 */
static void rs_group(const struct restore *r, uint32_t n, uint32_t *out,
		     uint32_t *start,
		     uint32_t (*key_of)(const struct restore *, uint32_t))
{
	memset(start, 0, sizeof(*start) * (r->img->ntargets + 2));
	for (uint32_t i = 0; i < n; i++)
		start[key_of(r, i) + 1]++;
	/* start[id]: how many keys are below id, where group id begins. */
	for (uint32_t k = 1; k < r->img->ntargets + 2; k++)
		start[k] += start[k - 1];
	/* Filling moves start[id] to where group id ends. */
	for (uint32_t i = 0; i < n; i++)
		out[start[key_of(r, i)]++] = i;
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
static const struct image_fd *rs_fd_at(const struct restore *r, int fd)
{
	uint32_t lo = 0, hi = r->img->nfds;

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
static bool rs_clean(const struct restore *r, int fd, uint32_t target)
{
	uint32_t lo = 0, hi = r->img->nwatches;

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
static bool rs_direct(const struct restore *r, const struct image_watch *w)
{
	const struct image_fd *f = rs_fd_at(r, w->tfd);
	const struct rs_target *rt;

	if (!f || f->target != w->target)
		return false;
	rt = &r->t[w->target - 1];
	return !rt->owned || rs_clean(r, w->tfd, w->target);
}

static bool rs_fd_cloexec(const struct image_fd *f)
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
	r->by_number = malloc(sizeof(*r->by_number) * (img->nfds + 1));
	r->by_set = malloc(sizeof(uint32_t) * (img->nwatches + 1));
	r->tfds = malloc(sizeof(*r->tfds) * (img->nwatches + 1));
	r->placed = calloc(img->nfds + 1, 1);
	r->wflags = calloc(img->nwatches + 1, 1);
	r->sets = malloc(sizeof(uint32_t) * (img->ntargets + 1));
	r->fillers = malloc(sizeof(int) * (img->ntargets + 1));
	if (!r->t || !r->by_target || !r->by_number || !r->by_set ||
	    !r->tfds || !r->placed || !r->wflags || !r->sets || !r->fillers)
		return rs_fail(r, "out of memory for %u targets, %u fds, %u watches",
			       img->ntargets, img->nfds, img->nwatches);
	for (uint32_t i = 0; i < img->ntargets; i++)
		r->t[i].home = -1;
	return 0;
}

/* Each target's fds and each set's watches, grouped. */
static int rs_index_groups(struct restore *r)
{
	uint32_t n = r->img->ntargets;
	uint32_t *start = malloc(sizeof(*start) * (n + 2));

	if (!start)
		return rs_fail(r, "out of memory");
	rs_group(r, r->img->nfds, r->by_target, start, fd_key);
	for (uint32_t id = 1; id <= n; id++) {
		r->t[id - 1].fd_first = start[id - 1];
		r->t[id - 1].fd_count = start[id] - start[id - 1];
	}
	rs_group(r, r->img->nwatches, r->by_set, start, watch_key);
	for (uint32_t id = 1; id <= n; id++) {
		r->t[id - 1].w_first = start[id - 1];
		r->t[id - 1].w_count = start[id] - start[id - 1];
	}
	free(start);
	return 0;
}

/*
 * The lookups the plan needs: fds by number (no number twice), the tfds
 * of all watches sorted, and r->base above every number of the image.
 */
static int rs_index(struct restore *r)
{
	struct image *img = r->img;
	int max_fd = -1;

	if (rs_alloc(r) < 0 || rs_validate(r) < 0 || rs_index_groups(r) < 0)
		return -1;
	for (uint32_t i = 0; i < img->nfds; i++) {
		r->by_number[i] = (struct rs_num){ img->fds[i].fd, i };
		if (img->fds[i].fd > max_fd)
			max_fd = img->fds[i].fd;
	}
	qsort(r->by_number, img->nfds, sizeof(*r->by_number), cmp_num);
	for (uint32_t i = 1; i < img->nfds; i++)
		if (r->by_number[i].fd == r->by_number[i - 1].fd)
			return rs_fail(r, "image: fd %d is listed twice",
				       r->by_number[i].fd);
	for (uint32_t i = 0; i < img->nwatches; i++) {
		r->tfds[i].tfd = img->watches[i].tfd;
		r->tfds[i].target = img->watches[i].target;
		if (img->watches[i].tfd > max_fd)
			max_fd = img->watches[i].tfd;
	}
	qsort(r->tfds, img->nwatches, sizeof(*r->tfds), cmp_tfd);
	r->base = max_fd + 1;
	return 0;
}

/* Every number the image names must be below RLIMIT_NOFILE. */
static int rs_check_limit(struct restore *r)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return rs_fail(r, "getrlimit(RLIMIT_NOFILE): %s",
			       strerror(errno));
	r->poll_batch = RS_POLL_CHUNK;
	if (rl.rlim_cur < RS_POLL_CHUNK)
		r->poll_batch = rl.rlim_cur ? (uint32_t)rl.rlim_cur : 1;
	if (rl.rlim_cur == RLIM_INFINITY || (rlim_t)r->base <= rl.rlim_cur)
		return 0;
	for (uint32_t i = 0; i < r->img->nfds; i++)
		if ((rlim_t)r->img->fds[i].fd >= rl.rlim_cur)
			return rs_fail(r, "fd %d of the image is not below RLIMIT_NOFILE (%llu): raise the limit to at least %d",
				       r->img->fds[i].fd,
				       (unsigned long long)rl.rlim_cur,
				       r->base);
	for (uint32_t i = 0; i < r->img->nwatches; i++)
		if ((rlim_t)r->img->watches[i].tfd >= rl.rlim_cur)
			return rs_fail(r, "tfd %d of a watch of the image is not below RLIMIT_NOFILE (%llu): raise the limit to at least %d",
				       r->img->watches[i].tfd,
				       (unsigned long long)rl.rlim_cur,
				       r->base);
	return 0;
}

/* ---- what to restore ---- */

/* The first watch on target id, for messages; NULL when none. */
static const struct image_watch *rs_first_watch_on(const struct restore *r,
						   uint32_t id)
{
	for (uint32_t i = 0; i < r->img->nwatches; i++)
		if (r->img->watches[i].target == id)
			return &r->img->watches[i];
	return NULL;
}

/*
 * A target that cannot be brought back: with missing=fail the restore
 * fails naming it; with missing=skip it is skipped, and its watches later
 * get a diagnostic each (rs_mark_skipped_watches).
 */
static int rs_unrestorable(struct restore *r, uint32_t id, const char *why)
{
	struct rs_target *rt = &r->t[id - 1];
	char what[256];

	rs_what(r, id, what, sizeof(what));
	if (!r->skip_missing) {
		const struct image_watch *w = rs_first_watch_on(r, id);

		if (w)
			return rs_fail(r, "epfd %d tfd %d: %s cannot be restored: %s (use missing=skip to leave its watches out)",
				       rs_first_fd(r, w->set), w->tfd, what,
				       why);
		return rs_fail(r, "%s cannot be restored: %s", what, why);
	}
	if (rt->partner && r->t[rt->partner - 1].partner == id)
		r->t[rt->partner - 1].partner = IMAGE_NONE;
	rt->partner = IMAGE_NONE;
	rt->state = RS_SKIPPED;
	rt->skip_why = strdup(why);
	if (!rt->skip_why)
		return rs_fail(r, "out of memory");
	if (log_get_fd() >= 0) {
		char esc_what[512], esc_why[1024];

		log_debug("%s skipped: %s",
			  escape_str(esc_what, sizeof(esc_what), what),
			  escape_str(esc_why, sizeof(esc_why), why));
	}
	return 0;
}

/*
 * Give every watch on a skipped file (or on a file unknown to the image)
 * RSW_SKIP and a warning, once.
 */
static int rs_mark_skipped_watches(struct restore *r)
{
	char what[256];

	for (uint32_t i = 0; i < r->img->nwatches; i++) {
		const struct image_watch *w = &r->img->watches[i];

		if (w->target && r->t[w->target - 1].state != RS_SKIPPED)
			continue;
		if (r->wflags[i] & RSW_SKIP)
			continue;
		r->wflags[i] |= RSW_SKIP;
		if (!w->target) {
			if (rs_diag(r, IMAGE_SEV_WARNING,
				    IMAGE_DIAG_UNRESTORABLE, w->set, w->tfd,
				    IMAGE_NONE,
				    "watch left out: the watched file is unknown to the image") < 0)
				return -1;
			continue;
		}
		if (rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_UNRESTORABLE,
			    w->set, w->tfd, w->target,
			    "watch left out: %s cannot be restored: %s",
			    rs_what(r, w->target, what, sizeof(what)),
			    r->t[w->target - 1].skip_why) < 0)
			return -1;
	}
	return 0;
}

/* Mark what takes part: every set, every watched file, their partners. */
static int rs_select(struct restore *r)
{
	struct image *img = r->img;
	uint32_t *partner, unused = 0;

	for (uint32_t i = 0; i < img->nwatches; i++)
		if (!img->watches[i].target && !r->skip_missing)
			return rs_fail(r, "epfd %d tfd %d: the watched file is unknown to the image (use missing=skip to leave the watch out)",
				       rs_first_fd(r, img->watches[i].set),
				       img->watches[i].tfd);
	partner = calloc(img->ntargets + 1, sizeof(*partner));
	if (!partner || recreate_match_pairs(img, partner) < 0) {
		free(partner);
		return rs_fail(r, "out of memory");
	}
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].kind == IMAGE_KIND_EPOLL)
			r->t[i].state = RS_WANTED;
	for (uint32_t i = 0; i < img->nwatches; i++)
		if (img->watches[i].target)
			r->t[img->watches[i].target - 1].state = RS_WANTED;
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (!r->existing && partner[i] && r->t[i].state == RS_WANTED) {
			r->t[i].partner = partner[i];
			r->t[partner[i] - 1].partner = i + 1;
			r->t[partner[i] - 1].state = RS_WANTED;
		}
	free(partner);
	for (uint32_t i = 0; i < img->ntargets && !r->existing; i++)
		unused += r->t[i].state == RS_UNUSED && r->t[i].fd_count;
	if (unused && rs_diag(r, IMAGE_SEV_INFO, IMAGE_DIAG_GENERIC,
			      IMAGE_NONE, -1, IMAGE_NONE,
			      "%u files of the image take no part in its epoll state and were not restored",
			      unused) < 0)
		return -1;
	return 0;
}

/* Which wanted targets the restore creates, and which it cannot bring. */
static int rs_classify(struct restore *r)
{
	for (uint32_t i = 0; i < r->img->ntargets; i++) {
		const struct image_target *t = &r->img->targets[i];
		struct rs_target *rt = &r->t[i];
		int ret;

		if (rt->state != RS_WANTED)
			continue;
		if (t->kind == IMAGE_KIND_EPOLL || !r->existing) {
			rt->owned = true;
			ret = recreate_ops_of(t->kind)->can_recreate(
				t, rt->partner != IMAGE_NONE, r->why,
				sizeof(r->why));
			if (ret < 0 && rs_unrestorable(r, i + 1, r->why) < 0)
				return -1;
		} else if (!rt->fd_count &&
			   rs_unrestorable(r, i + 1,
					   "no fd holds it in the image, so targets=existing cannot find it") < 0) {
			return -1;
		}
	}
	return rs_mark_skipped_watches(r);
}

/*
 * Nesting: a set's height is the longest chain of sets inside it.  The
 * kernel allows chains of IMAGE_MAX_NEST_DEPTH sets (height 4); deeper
 * chains and loops are refused here, before anything is created.  Each
 * round lengthens the known chains by one, so at most MAX_NEST_DEPTH + 1
 * rounds run.
 */
static int rs_heights(struct restore *r)
{
	const struct image *img = r->img;
	bool changed = true;
	uint32_t count[IMAGE_MAX_NEST_DEPTH] = { 0 };

	for (int round = 0; changed && round <= IMAGE_MAX_NEST_DEPTH; round++) {
		changed = false;
		for (uint32_t i = 0; i < img->nwatches; i++) {
			const struct image_watch *w = &img->watches[i];
			struct rs_target *outer = &r->t[w->set - 1];

			if ((r->wflags[i] & RSW_SKIP) ||
			    rs_tgt(r, w->target)->kind != IMAGE_KIND_EPOLL ||
			    outer->height > r->t[w->target - 1].height)
				continue;
			outer->height = r->t[w->target - 1].height + 1;
			changed = true;
			if (outer->height >= IMAGE_MAX_NEST_DEPTH)
				return rs_fail(r, "epfd %d: epoll sets nested more than %d deep (or in a loop): the kernel refuses that (ELOOP)",
					       rs_first_fd(r, w->set),
					       IMAGE_MAX_NEST_DEPTH);
		}
	}
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].kind == IMAGE_KIND_EPOLL)
			count[r->t[i].height]++;
	for (int h = 1; h < IMAGE_MAX_NEST_DEPTH; h++)
		count[h] += count[h - 1];
	r->nsets = count[IMAGE_MAX_NEST_DEPTH - 1];
	for (uint32_t i = img->ntargets; i-- > 0;)
		if (img->targets[i].kind == IMAGE_KIND_EPOLL)
			r->sets[--count[r->t[i].height]] = i + 1;
	return 0;
}

/*
 * Where each target sits while watches are added: the lowest of its final
 * numbers that no watch of another file needs, or a temporary number.
 * targets=existing: a found target stays where it is.
 */
static void rs_homes(struct restore *r)
{
	for (uint32_t i = 0; i < r->img->ntargets; i++) {
		struct rs_target *rt = &r->t[i];

		if (rt->state != RS_WANTED)
			continue;
		for (uint32_t k = 0; k < rt->fd_count; k++) {
			int fd = rs_fd_of(r, rt, k)->fd;

			if ((!rt->owned || rs_clean(r, fd, i + 1)) &&
			    (rt->home < 0 || fd < rt->home))
				rt->home = fd;
		}
	}
}

/* ---- checks against this process ---- */

/* Why number fd was needed (a watch's dance, or a file's place). */
static void rs_needed_for(const struct restore *r, int fd, bool for_watch,
			  char *buf, size_t len)
{
	const struct image_fd *f = rs_fd_at(r, fd);
	char what[256];

	for (uint32_t i = 0; for_watch && i < r->img->nwatches; i++) {
		const struct image_watch *w = &r->img->watches[i];

		if (w->tfd == fd && !(r->wflags[i] & (RSW_DIRECT | RSW_SKIP))) {
			snprintf(buf, len, "the watch epfd %d tfd %d on %s must be added through that number (an fd the restore did not create is never moved or closed)",
				 rs_first_fd(r, w->set), fd,
				 rs_what(r, w->target, what, sizeof(what)));
			return;
		}
	}
	if (f)
		snprintf(buf, len, "the image puts %s there",
			 rs_what(r, f->target, what, sizeof(what)));
	else
		snprintf(buf, len, "the image names it");
}

/*
 * A batch of numbers that must be free: poll() with no timeout says
 * POLLNVAL for each number that is not open.  *n is reset.
 */
static int rs_poll_free(struct restore *r, struct pollfd *p, uint32_t *n,
			bool for_watch)
{
	char why[768];
	int ret;

	if (*n == 0)
		return 0;
	do
		ret = poll(p, *n, 0);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return rs_fail(r, "poll: %s", strerror(errno));
	for (uint32_t i = 0; i < *n; i++) {
		if (p[i].revents & POLLNVAL)
			continue;
		rs_needed_for(r, p[i].fd, for_watch, why, sizeof(why));
		return rs_fail(r, "fd %d is already open in this process, and %s: nothing was changed",
			       p[i].fd, why);
	}
	*n = 0;
	return 0;
}

/*
 * Every number the restore will create a file at must be free: the final
 * numbers of what it creates, and the tfd of every watch that needs a
 * dup3 dance (unless already among the former).  Checked in batches of
 * r->poll_batch numbers per poll() call.
 */
static int rs_check_free(struct restore *r)
{
	struct pollfd p[RS_POLL_CHUNK];
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->img->nfds; i++) {
		const struct rs_target *rt = &r->t[r->img->fds[i].target - 1];

		if (rt->state != RS_WANTED || !rt->owned)
			continue;
		p[n++] = (struct pollfd){ .fd = r->img->fds[i].fd };
		if (n == r->poll_batch && rs_poll_free(r, p, &n, false) < 0)
			return -1;
	}
	if (rs_poll_free(r, p, &n, false) < 0)
		return -1;
	for (uint32_t i = 0; i < r->img->nwatches; i++) {
		const struct image_watch *w = &r->img->watches[i];
		const struct image_fd *f = rs_fd_at(r, w->tfd);
		const struct rs_target *ft = f ? &r->t[f->target - 1] : NULL;

		if ((r->wflags[i] & (RSW_SKIP | RSW_DIRECT)) ||
		    (ft && ft->state == RS_WANTED && ft->owned))
			continue;
		p[n++] = (struct pollfd){ .fd = w->tfd };
		if (n == r->poll_batch && rs_poll_free(r, p, &n, true) < 0)
			return -1;
	}
	return rs_poll_free(r, p, &n, true);
}

/*
 * targets=existing: number fd, relative to the open /proc/thread-self/fd
 * directory dir, must hold a file of target id's kind; first is the
 * target's first number, which fd must share one file with (kcmp).
 */
static int rs_check_existing_fd(struct restore *r, int dir, uint32_t id,
				int fd, int first)
{
	char name[16], link[256], what[256];
	uint32_t kind;
	ssize_t n;

	snprintf(name, sizeof(name), "%d", fd);
	n = readlinkat(dir, name, link, sizeof(link) - 1);
	if (n < 0)
		return rs_fail(r, "targets=existing: fd %d is not open, but the image puts %s there",
			       fd, rs_what(r, id, what, sizeof(what)));
	link[n] = '\0';
	kind = kind_from_link(link);
	if (kind != rs_tgt(r, id)->kind)
		return rs_fail(r, "targets=existing: fd %d is a %s (%s), but the image puts %s there",
			       fd, image_kind_name(kind), link,
			       rs_what(r, id, what, sizeof(what)));
	if (fd != first && syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE,
				   first, fd) > 0)
		return rs_fail(r, "targets=existing: fds %d and %d hold different files, but the image says both hold %s",
			       first, fd, rs_what(r, id, what, sizeof(what)));
	return 0;
}

/* SO_TYPE of fd, -1 when it has none. */
static int rs_sock_type(int fd)
{
	socklen_t len = sizeof(int);
	int type;

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 ? type
								      : -1;
}

/*
 * targets=existing: a found socketpair end (target id) and the other end
 * the image names must be one connected pair here, at their first numbers:
 * unix sockets of the recorded type, fd's peer being the other fd's inode
 * (sock_diag).  Where sock_diag cannot answer, both must at least be
 * connected (getpeername).  Cheap: two fstat, two getsockopt, one netlink
 * request.
 */
static int rs_check_existing_pair(struct restore *r, uint32_t id)
{
	const struct image_target *t = rs_tgt(r, id);
	uint32_t pair = t->u.sock.pair;
	struct sockaddr_storage ss;
	struct unix_diag_sock d;
	struct stat a, b;
	socklen_t len = sizeof(ss);
	int fd, pfd;

	if (t->kind != IMAGE_KIND_SOCKET ||
	    !(t->u.sock.flags & IMAGE_SOCK_PAIR) || !pair)
		return 0;
	fd = rs_first_fd(r, id);
	pfd = rs_first_fd(r, pair);
	if (fd < 0 || pfd < 0)
		return 0;
	if (fstat(fd, &a) < 0 || fstat(pfd, &b) < 0 || !S_ISSOCK(a.st_mode) ||
	    !S_ISSOCK(b.st_mode) || rs_sock_type(fd) != (int)t->u.sock.type ||
	    rs_sock_type(pfd) != (int)t->u.sock.type)
		return rs_fail(r, "targets=existing: fds %d and %d must be the two ends of a socketpair of type %u, but one is not open or not such a socket",
			       fd, pfd, t->u.sock.type);
	if (unix_diag_lookup(a.st_ino, &d) == 0) {
		if (d.peer_ino == 0)
			return rs_fail(r, "targets=existing: fds %d and %d must be the two ends of one socketpair, but fd %d is connected to no open socket",
				       fd, pfd, fd);
		if (d.peer_ino != b.st_ino)
			return rs_fail(r, "targets=existing: fds %d and %d must be the two ends of one socketpair, but fd %d is connected to socket inode %llu, not to fd %d's inode %llu",
				       fd, pfd, fd,
				       (unsigned long long)d.peer_ino, pfd,
				       (unsigned long long)b.st_ino);
		return 0;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    (len = sizeof(ss),
	     getpeername(pfd, (struct sockaddr *)&ss, &len) < 0))
		return rs_fail(r, "targets=existing: fds %d and %d must be the two ends of a socketpair, but one is not connected",
			       fd, pfd);
	log_debug("targets=existing: fds %d and %d: sock_diag unavailable, the pair is checked as connected unix sockets only",
		  fd, pfd);
	return 0;
}

/*
 * targets=existing: every found target must be open at each of its
 * numbers, of the kind the image says (readlink of /proc/self/fd/N), and
 * its numbers must hold one file (kcmp KCMP_FILE); a socketpair end must
 * be connected to the other end the image names.
 */
static int rs_check_existing(struct restore *r)
{
	int dir = open("/proc/thread-self/fd",
		       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (dir < 0)
		return rs_fail(r, "targets=existing: cannot open /proc/thread-self/fd: %s",
			       strerror(errno));
	for (uint32_t i = 0; i < r->img->ntargets && ret == 0; i++) {
		const struct rs_target *rt = &r->t[i];

		if (rt->state != RS_WANTED || rt->owned)
			continue;
		for (uint32_t k = 0; k < rt->fd_count && ret == 0; k++)
			ret = rs_check_existing_fd(r, dir, i + 1,
						   rs_fd_of(r, rt, k)->fd,
						   rs_first_fd(r, i + 1));
		if (ret == 0)
			ret = rs_check_existing_pair(r, i + 1);
	}
	close(dir);
	return ret;
}

static int rs_plan(struct restore *r)
{
	if (rs_index(r) < 0 || rs_check_limit(r) < 0 || rs_select(r) < 0 ||
	    rs_classify(r) < 0 || rs_heights(r) < 0)
		return -1;
	rs_homes(r);
	for (uint32_t i = 0; i < r->img->nwatches; i++)
		if (!(r->wflags[i] & RSW_SKIP) &&
		    rs_direct(r, &r->img->watches[i]))
			r->wflags[i] |= RSW_DIRECT;
	if (rs_check_free(r) < 0)
		return -1;
	return r->existing ? rs_check_existing(r) : 0;
}

/* ---- creating targets and sets ---- */

/* The image fd entry of a target's number fd (it is one of its fds). */
static uint32_t rs_fd_index(const struct restore *r, int fd)
{
	return (uint32_t)(rs_fd_at(r, fd) - r->img->fds);
}

static bool rs_home_cloexec(const struct restore *r, const struct rs_target *rt)
{
	return rt->home < 0 || rs_fd_cloexec(rs_fd_at(r, rt->home));
}

/* Move fd (ours) to a number >= base, close-on-exec; returns it or -1. */
static int rs_lift(struct restore *r, int fd, uint32_t id)
{
	char what[256];
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, r->base);

	if (nfd < 0) {
		int err = errno;

		close(fd);
		return rs_fail(r, "%s: no free fd number at or above %d: %s",
			       rs_what(r, id, what, sizeof(what)), r->base,
			       strerror(err));
	}
	close(fd);
	return nfd;
}

/* Put target id at its final number fi (an fd entry index) too. */
static int rs_place_fd(struct restore *r, uint32_t id, uint32_t fi)
{
	const struct image_fd *f = &r->img->fds[fi];
	int flags = rs_fd_cloexec(f) ? O_CLOEXEC : 0;
	char what[256];

	if (dup3(r->t[id - 1].home, f->fd, flags) < 0) {
		int err = errno;

		return rs_fail(r, "dup3 of %s to fd %d: %s",
			       rs_what(r, id, what, sizeof(what)), f->fd,
			       strerror(err));
	}
	r->placed[fi] = 1;
	return 0;
}

static void rs_close_fillers(struct restore *r)
{
	while (r->nfillers)
		close(r->fillers[--r->nfillers]);
}

/*
 * Put the freshly created fd (close-on-exec iff fd_cloexec) of target id
 * at its home: the final number chosen, or any number >= base.  Then at
 * its other final numbers that no watch needs.  The fd is owned: on
 * failure it is closed.  With keep_filler, an fd created below its home
 * stays open as a filler of that hole until the create phase ends, so
 * that the next creations land further up, at their homes when the
 * image's numbers are dense (one syscall each instead of three).
 */
static int rs_settle(struct restore *r, uint32_t id, int fd, bool fd_cloexec,
		     bool keep_filler)
{
	struct rs_target *rt = &r->t[id - 1];
	char what[256];

	if (rt->home < 0) {
		if (fd < r->base && (fd = rs_lift(r, fd, id)) < 0)
			return -1;
		rt->home = fd;
		rt->home_temp = true;
		rt->state = RS_LIVE;
		return 0;
	}
	if (fd != rt->home) {
		int ret = dup3(fd, rt->home,
			       rs_home_cloexec(r, rt) ? O_CLOEXEC : 0);
		int err = errno;

		if (ret < 0 || !keep_filler)
			close(fd);
		else
			r->fillers[r->nfillers++] = fd;
		if (ret < 0)
			return rs_fail(r, "dup3 of %s to fd %d: %s",
				       rs_what(r, id, what, sizeof(what)),
				       rt->home, strerror(err));
	} else if (fd_cloexec != rs_home_cloexec(r, rt) &&
		   fcntl(fd, F_SETFD, fd_cloexec ? 0 : FD_CLOEXEC) < 0) {
		int err = errno;

		close(fd);
		return rs_fail(r, "fcntl F_SETFD fd %d: %s", fd, strerror(err));
	}
	r->placed[rs_fd_index(r, rt->home)] = 1;
	rt->state = RS_LIVE;
	for (uint32_t k = 0; k < rt->fd_count; k++) {
		uint32_t fi = r->by_target[rt->fd_first + k];

		if (!r->placed[fi] && rs_clean(r, r->img->fds[fi].fd, id) &&
		    rs_place_fd(r, id, fi) < 0)
			return -1;
	}
	return 0;
}

/* A kind's creation failed: missing policy, or the whole restore. */
static int rs_create_failed(struct restore *r, uint32_t id, int ret)
{
	const struct image_watch *w;
	char what[256];

	if (ret == -EOPNOTSUPP)
		return rs_unrestorable(r, id, r->why);
	rs_what(r, id, what, sizeof(what));
	w = rs_first_watch_on(r, id);
	if (w)
		return rs_fail(r, "epfd %d tfd %d: cannot create %s: %s",
			       rs_first_fd(r, w->set), w->tfd, what, r->why);
	return rs_fail(r, "cannot create %s: %s", what, r->why);
}

static int rs_note(struct restore *r, uint32_t id)
{
	if (!r->note[0])
		return 0;
	return rs_diag(r, IMAGE_SEV_INFO, IMAGE_DIAG_GENERIC, IMAGE_NONE, -1,
		       id, "%s", r->note);
}

static int rs_create_one(struct restore *r, uint32_t id)
{
	const struct image_target *t = rs_tgt(r, id);
	struct recreate_req req = {
		.img = r->img,
		.cloexec = rs_home_cloexec(r, &r->t[id - 1]),
		.why = r->why, .why_len = sizeof(r->why),
		.note = r->note, .note_len = sizeof(r->note),
	};
	const struct recreate_ops *ops = recreate_ops_of(t->kind);
	int fd = -1, ret;

	r->why[0] = r->note[0] = '\0';
	ret = ops->recreate ? ops->recreate(t, &req, &fd) : -EOPNOTSUPP;
	if (ret < 0)
		return rs_create_failed(r, id, ret);
	if (rs_settle(r, id, fd, req.cloexec, true) < 0)
		return -1;
	return rs_note(r, id);
}

/*
 * Both ends of a pipe or socketpair.  An end not at its home is first
 * lifted above base, so that settling one end never lands on the other.
 */
static int rs_create_pair(struct restore *r, uint32_t a, uint32_t b)
{
	const struct image_target *ta = rs_tgt(r, a);
	struct recreate_req req = {
		.img = r->img,
		.cloexec = true,
		.why = r->why, .why_len = sizeof(r->why),
		.note = r->note, .note_len = sizeof(r->note),
	};
	uint32_t id[2] = { a, b };
	int fd[2] = { -1, -1 }, ret;

	r->why[0] = r->note[0] = '\0';
	ret = recreate_ops_of(ta->kind)->recreate_pair(ta, rs_tgt(r, b), &req,
						       fd);
	if (ret < 0) {
		if (ret == -EOPNOTSUPP && rs_unrestorable(r, b, r->why) < 0)
			return -1;
		return rs_create_failed(r, a, ret);
	}
	for (int i = 0; i < 2; i++) {
		if (fd[i] == r->t[id[i] - 1].home ||
		    (r->t[id[i] - 1].home < 0 && fd[i] >= r->base))
			continue;
		fd[i] = rs_lift(r, fd[i], id[i]);
		if (fd[i] < 0) {
			close(fd[1 - i]); /* the other end, not yet settled */
			return -1;
		}
	}
	if (rs_settle(r, a, fd[0], true, false) < 0) {
		close(fd[1]);
		return -1;
	}
	if (rs_settle(r, b, fd[1], true, false) < 0)
		return -1;
	return rs_note(r, a);
}

static int cmp_home(const void *x, const void *y, void *ctx)
{
	const struct restore *r = ctx;
	const struct rs_target *a = &r->t[*(const uint32_t *)x - 1];
	const struct rs_target *b = &r->t[*(const uint32_t *)y - 1];
	/* Temporary homes (-1) last. */
	unsigned ha = (unsigned)a->home, hb = (unsigned)b->home;

	return ha < hb ? -1 : ha > hb;
}

/*
 * Whether an AF_UNIX path lies under cwd: relative, or below cwd + "/",
 * and no component is "..".
 */
static bool rs_path_under(const char *path, const char *cwd)
{
	size_t n = strlen(cwd);
	const char *p = path;

	if (path[0] == '/') {
		if (strncmp(path, cwd, n) ||
		    (path[n] != '/' && !(n == 1 && cwd[0] == '/')))
			return false;
		p = path + n;
	}
	for (const char *c = p; (c = strstr(c, "..")); c += 2)
		if ((c == path || c[-1] == '/') && (c[2] == '/' || !c[2]))
			return false;
	return true;
}

/* One socket the restore would create, against the policy. */
static int rs_policy_socket(struct restore *r, uint32_t id, const char *cwd)
{
	const struct image_socket *s = &rs_tgt(r, id)->u.sock;
	const struct sockaddr_in *in = (const void *)&s->addr;
	const struct sockaddr_in6 *in6 = (const void *)&s->addr;
	uint16_t port = 0;
	char what[256], path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	size_t plen;

	char who[64];

	if (r->img->proc.uid != 0)
		snprintf(who, sizeof(who), "an image of uid %u",
			 r->img->proc.uid);
	else
		snprintf(who, sizeof(who), "an image in a file of uid %lld",
			 (long long)r->img->file_uid);
	rs_what(r, id, what, sizeof(what));
	if (s->domain != AF_UNIX && s->domain != AF_INET &&
	    s->domain != AF_INET6)
		return rs_fail(r, "%s: socket family %u refused: a restore as root of %s creates only AF_UNIX, AF_INET and AF_INET6 sockets (--trust-image to allow)",
			       what, s->domain, who);
	if (s->type == SOCK_RAW || s->type == SOCK_PACKET)
		return rs_fail(r, "%s: raw socket refused: a restore as root of %s creates no raw socket (--trust-image to allow)",
			       what, who);
	if (!(s->flags & IMAGE_SOCK_BOUND) || !s->addr_len)
		return 0;
	if (s->domain == AF_INET && s->addr_len >= sizeof(*in))
		port = ntohs(in->sin_port);
	else if (s->domain == AF_INET6 && s->addr_len >= sizeof(*in6))
		port = ntohs(in6->sin6_port);
	if (port && port < 1024)
		return rs_fail(r, "%s: privileged port %u refused: a restore as root of %s binds no port below 1024 (--trust-image to allow)",
			       what, port, who);
	plen = image_sun_path_len(&s->addr, s->addr_len);
	if (s->domain != AF_UNIX || !plen ||
	    ((const struct sockaddr_un *)&s->addr)->sun_path[0] == '\0')
		return 0; /* unnamed or abstract: no file */
	memcpy(path, ((const struct sockaddr_un *)&s->addr)->sun_path, plen);
	path[plen] = '\0';
	if (!rs_path_under(path, cwd))
		return rs_fail(r, "%s: unix socket path %s refused: a restore as root of %s creates sockets only under the working directory %s (--trust-image to allow)",
			       what, path, who, cwd);
	return 0;
}

/*
 * The policy for root restoring another user's image: checked on every
 * socket to be created before anything is, so that a refusal creates
 * nothing.
 */
static int rs_check_policy(struct restore *r)
{
	char cwd[4096];

	if (!r->policy)
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return rs_fail(r, "the working directory: %s", strerror(errno));
	for (uint32_t i = 0; i < r->img->ntargets; i++)
		if (r->t[i].state == RS_WANTED && r->t[i].owned &&
		    rs_tgt(r, i + 1)->kind == IMAGE_KIND_SOCKET &&
		    rs_policy_socket(r, i + 1, cwd) < 0)
			return -1;
	return 0;
}

/*
 * Create what the restore owns, in the order of the final numbers: each
 * creating syscall takes the lowest free number, which is then most often
 * the final number itself, and no move is needed.
 */
static int rs_create_all(struct restore *r)
{
	uint32_t *order = malloc(sizeof(*order) * (r->img->ntargets + 1));
	uint32_t n = 0;
	int ret = 0;

	if (!order)
		return rs_fail(r, "out of memory");
	if (rs_check_policy(r) < 0) {
		free(order);
		return -1;
	}
	for (uint32_t i = 0; i < r->img->ntargets; i++)
		if (r->t[i].state == RS_WANTED && r->t[i].owned)
			order[n++] = i + 1;
	qsort_r(order, n, sizeof(*order), cmp_home, r);
	for (uint32_t i = 0; i < n && ret == 0; i++) {
		uint32_t id = order[i], p = r->t[id - 1].partner;

		if (r->t[id - 1].state != RS_WANTED)
			continue;
		/* A temporary home needs the low holes free again. */
		if (r->t[id - 1].home < 0)
			rs_close_fillers(r);
		if (p && r->t[p - 1].state == RS_WANTED)
			ret = rs_create_pair(r, id, p);
		else
			ret = rs_create_one(r, id);
	}
	free(order);
	rs_close_fillers(r);
	for (uint32_t i = 0; i < r->img->ntargets && ret == 0; i++)
		if (r->t[i].state == RS_WANTED && !r->t[i].owned)
			r->t[i].state = RS_LIVE;
	if (ret == 0)
		ret = rs_mark_skipped_watches(r);
	return ret;
}

/* ---- adding watches ---- */

static bool rs_disarmed(uint32_t events)
{
	return (events & EPOLLONESHOT) && !(events & ~RS_PRIVATE_BITS);
}

/* The events the kernel will show for watch i once restored. */
static uint32_t rs_expected_events(const struct restore *r, uint32_t i)
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
static int rs_add_watches(struct restore *r)
{
	for (uint32_t s = 0; s < r->nsets; s++) {
		const struct rs_target *st = &r->t[r->sets[s] - 1];

		if (rs_add_set(r, st, true) < 0 || rs_add_set(r, st, false) < 0)
			return -1;
	}
	return 0;
}

/* ---- moving to the final numbers ---- */

static int rs_place_all(struct restore *r)
{
	char what[256];

	for (uint32_t i = 0; i < r->img->ntargets; i++) {
		struct rs_target *rt = &r->t[i];

		if (rt->state != RS_LIVE || !rt->owned)
			continue;
		for (uint32_t k = 0; k < rt->fd_count; k++) {
			uint32_t fi = r->by_target[rt->fd_first + k];

			if (!r->placed[fi] && rs_place_fd(r, i + 1, fi) < 0)
				return -1;
		}
		if (!rt->home_temp)
			continue;
		if (rt->fd_count) {
			close(rt->home);
			rt->home = rs_first_fd(r, i + 1);
			rt->home_temp = false;
		} else if (rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC,
				   IMAGE_NONE, -1, i + 1,
				   "%s has no fd in the image (its watches lived on through another reference): kept open at fd %d (close-on-exec) so that its watches live",
				   rs_what(r, i + 1, what, sizeof(what)),
				   rt->home) < 0) {
			return -1;
		}
	}
	return 0;
}

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
	char *text;
	size_t text_cap;
	struct rs_line *lines;
	struct rs_exp *exps;
	uint32_t nlines, nexps;
	uint32_t cap;		/* lines and exps have cap entries */
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

/* Read /proc/thread-self/fdinfo/<fd> whole into v->text; returns length. */
static ssize_t rs_read_fdinfo(struct restore *r, struct rs_verify *v, int fd,
			      int epfd)
{
	char path[64];
	size_t len = 0;
	int pfd;

	snprintf(path, sizeof(path), "/proc/thread-self/fdinfo/%d", fd);
	pfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd < 0)
		return rs_fail(r, "verify: epfd %d: cannot open %s: %s", epfd,
			       path, strerror(errno));
	/* Bounded: each round reads at least one byte, or stops. */
	while (len < v->text_cap) {
		ssize_t n = read(pfd, v->text + len, v->text_cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			close(pfd);
			return rs_fail(r, "verify: epfd %d: read %s: %s", epfd,
				       path, strerror(err));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(pfd);
	if (len == v->text_cap)
		return rs_fail(r, "verify: epfd %d: the kernel lists more watches than the %u of the image",
			       epfd, v->cap - 1);
	return (ssize_t)len;
}

static int rs_verify_grow(struct restore *r, struct rs_verify *v, uint32_t n)
{
	size_t text_cap = RS_FDINFO_HEAD_MAX +
			  (size_t)(n + 1) * RS_FDINFO_LINE_MAX;

	if (n + 1 <= v->cap)
		return 0;
	free(v->text);
	free(v->lines);
	free(v->exps);
	v->text = malloc(text_cap);
	v->lines = malloc(sizeof(*v->lines) * (n + 1));
	v->exps = malloc(sizeof(*v->exps) * (n + 1));
	v->text_cap = text_cap;
	v->cap = n + 1;
	if (!v->text || !v->lines || !v->exps) {
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
			return rs_fail(r, "verify: epfd %d tfd %d: the watch with events 0x%x data 0x%llx is not on %s",
				       rs_first_fd(r, sid), l->tfd, l->events,
				       (unsigned long long)l->data, what);
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

static int rs_verify_set(struct restore *r, struct rs_verify *v, uint32_t sid)
{
	const struct rs_target *st = &r->t[sid - 1];
	uint32_t n = 0;
	unsigned flags = 0;
	ssize_t len;
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
	len = rs_read_fdinfo(r, v, st->home, rs_first_fd(r, sid));
	if (len < 0)
		return -1;
	v->nlines = 0;
	ret = fdinfo_parse_epoll(v->text, (size_t)len, &flags, rs_on_line, v);
	if (ret == -E2BIG)
		return rs_fail(r, "verify: epfd %d: the kernel lists more watches than the %u of the image",
			       rs_first_fd(r, sid), n);
	if (ret < 0)
		return rs_fail(r, "verify: epfd %d: cannot parse its fdinfo: %s",
			       rs_first_fd(r, sid), strerror(-ret));
	if (rs_verify_set_fds(r, sid, flags) < 0)
		return -1;
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

static int rs_verify(struct restore *r)
{
	struct rs_verify v = { .kcmp_errno = 0 };
	int ret = 0;

	for (uint32_t s = 0; s < r->nsets && ret == 0; s++)
		ret = rs_verify_set(r, &v, r->sets[s]);
	free(v.text);
	free(v.lines);
	free(v.exps);
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

/* ---- the whole ---- */

/* Close every descriptor the restore created. */
static void rs_undo(struct restore *r)
{
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
		n = snprintf(line, sizeof(line), "epollcr restore: %s: epfd %d tfd %d%s%s: %s\n",
			     sev[level], d->epfd, d->tfd, d->path ? " " : "",
			     d->path ? path : "", msg);

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
	free(r->by_number);
	free(r->by_set);
	free(r->tfds);
	free(r->placed);
	free(r->wflags);
	free(r->sets);
	free(r->fillers);
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
	static const struct epollcr_restore_options defaults = {
		.targets = EPOLLCR_TARGETS_RECREATE,
		.missing = EPOLLCR_MISSING_FAIL,
		.report_fd = -1,
	};
	const struct epollcr_restore_options *o = options ? options : &defaults;
	struct restore r = {
		.img = img,
		.existing = o->targets == EPOLLCR_TARGETS_EXISTING,
		.skip_missing = o->missing == EPOLLCR_MISSING_SKIP,
		.policy = !(flags & RESTORE_TRUST_IMAGE) && geteuid() == 0 &&
			  (img->proc.uid != 0 ||
			   (img->file_uid >= 0 && img->file_uid != 0)),
		.report_fd = o->report_fd,
		.err = err,
		.err_len = err_len,
		.ndiags_before = img->ndiags,
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
