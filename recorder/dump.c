// SPDX-License-Identifier: MIT
/*
 * The recorder: the kernel's view of the process (kview_snapshot), enriched
 * with the shadow registry (kinds, listen backlog, backtraces) and reconciled
 * with it: every disagreement becomes a diagnostic in the image.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backtrace.h"
#include "epollcr.h"
#include "image_io.h"
#include "kview.h"
#include "recorder.h"
#include "registry.h"

#define POLL_BITS 0x0000ffffu /* EPOLLIN...EPOLLRDHUP: the non-private bits */
#define KERNEL_ADDED (EPOLLERR | EPOLLHUP)

int recorder_socket_name(char *name, size_t len, int pid, uint32_t nonce)
{
	name[0] = '\0';
	int n = snprintf(name + 1, len - 1, "epollcr-dump-%d-%u", pid, nonce);
	return n + 1;
}

/* The events the kernel shows for a watch registered with `events`. */
static uint32_t kernel_events(uint32_t events)
{
	return (events | KERNEL_ADDED) & ~(uint32_t)EPOLLWAKEUP;
}

/* ---- process identity --------------------------------------------------- */

static char *read_link(const char *path)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static char *read_line_file(const char *path)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return strdup(buf);
}

static int fill_process(struct image *img)
{
	struct timespec now;
	struct rlimit rl;
	clock_gettime(CLOCK_REALTIME, &now);
	img->proc.pid = (int32_t)getpid();
	img->proc.uid = (uint32_t)getuid();
	img->proc.time_sec = (uint64_t)now.tv_sec;
	img->proc.time_nsec = (uint32_t)now.tv_nsec;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		img->proc.nofile_limit = rl.rlim_cur > UINT32_MAX
						 ? UINT32_MAX
						 : (uint32_t)rl.rlim_cur;
	img->proc.exe = read_link("/proc/self/exe");
	img->proc.comm = read_line_file("/proc/self/comm");
	img->proc.version = strdup(EPOLLCR_VERSION_STRING);
	return img->proc.version ? 0 : -ENOMEM;
}

/* ---- backtraces ---------------------------------------------------------- */

/* Maps registry backtrace ids to image ids, and modules by path. */
struct bt_map {
	uint32_t *image_id; /* indexed by registry id */
	uint32_t cap;
};

static uint32_t module_id(struct image *img, const char *path, uint64_t base)
{
	for (uint32_t i = 0; i < img->nmodules; i++)
		if (!strcmp(img->modules[i].path, path))
			return img->modules[i].id;
	char *copy = strdup(path);
	struct image_module *m = copy ? image_add_module(img) : NULL;
	if (!m) {
		free(copy);
		return IMAGE_NONE;
	}
	m->path = copy;
	m->base = base;
	return m->id;
}

/* The image id of registry backtrace id, added to the image on first use. */
static uint32_t image_backtrace(struct image *img, struct bt_map *map,
				uint32_t id)
{
	const uintptr_t *frames;
	unsigned n = id ? backtrace_frames(id, &frames) : 0;
	if (!n)
		return IMAGE_NONE;
	if (id >= map->cap) {
		uint32_t cap = map->cap ? map->cap : 64;
		while (cap <= id)
			cap *= 2;
		uint32_t *grown = realloc(map->image_id, cap * sizeof(*grown));
		if (!grown)
			return IMAGE_NONE;
		memset(grown + map->cap, 0, (cap - map->cap) * sizeof(*grown));
		map->image_id = grown;
		map->cap = cap;
	}
	if (map->image_id[id])
		return map->image_id[id];
	struct image_frame *f = calloc(n, sizeof(*f));
	if (!f)
		return IMAGE_NONE;
	for (unsigned i = 0; i < n; i++) {
		Dl_info info;
		f[i].offset = frames[i];
		if (!dladdr((void *)frames[i], &info) || !info.dli_fname)
			continue;
		f[i].module = module_id(img, info.dli_fname,
					(uintptr_t)info.dli_fbase);
		f[i].offset = frames[i] - (uintptr_t)info.dli_fbase;
		if (info.dli_sname && info.dli_saddr) {
			f[i].symbol = strdup(info.dli_sname);
			f[i].symbol_offset = frames[i] - (uintptr_t)info.dli_saddr;
		}
	}
	struct image_backtrace *b = image_add_backtrace(img);
	if (!b) {
		for (unsigned i = 0; i < n; i++)
			free(f[i].symbol);
		free(f);
		return IMAGE_NONE;
	}
	b->nframes = n;
	b->frames = f;
	map->image_id[id] = b->id;
	return b->id;
}

/* ---- reconciliation ----------------------------------------------------- */

/* kview hint: the shadow knows (epfd, tfd) holds the watched file. */
static bool confirm_watch(void *ctx, int epfd, int tfd, uint32_t events,
			  uint64_t data, int *open_fd)
{
	(void)ctx;
	struct reg_set *set = registry_set_of(registry_file_at(epfd));
	const struct reg_file *f = registry_file_at(tfd);
	if (!set || !f)
		return false;
	/* Several watches under one number: only the kernel can tell. */
	if (registry_count_tfd(set, tfd) != 1)
		return false;
	const struct reg_watch *w = registry_find_watch(set, f, tfd);
	if (!w || w->uncertain || w->data != data ||
	    kernel_events(w->events) != (events & ~(uint32_t)EPOLLWAKEUP))
		return false;
	*open_fd = tfd;
	return true;
}

/* The path of a target, for messages. */
static const char *target_path(const struct image *img, uint32_t id)
{
	const struct image_target *t = image_target_by_id(img, id);
	return t && t->path ? t->path : NULL;
}

/* The lowest fd of target id in the image, or -1. */
static int first_fd_of(const struct image *img, uint32_t target)
{
	int best = -1;
	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].target == target &&
		    (best < 0 || img->fds[i].fd < best))
			best = img->fds[i].fd;
	return best;
}

/* The image target id living at fd, or IMAGE_NONE. */
static uint32_t target_at(const struct image *img, int fd)
{
	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd == fd)
			return img->fds[i].target;
	return IMAGE_NONE;
}

/* The image's watches indexed by (set, tfd), open addressing. */
struct watch_index {
	uint32_t *slots; /* watch index + 1, open addressing */
	uint32_t mask;
};

static uint32_t windex_hash(uint32_t set, int32_t tfd)
{
	uint64_t h = ((uint64_t)set << 32 | (uint32_t)tfd) * 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 32);
}

static int windex_build(struct watch_index *ix, const struct image *img)
{
	uint32_t size = 16;
	while (size < img->nwatches * 2u)
		size *= 2;
	ix->slots = calloc(size, sizeof(*ix->slots));
	if (!ix->slots)
		return -ENOMEM;
	ix->mask = size - 1;
	for (uint32_t i = 0; i < img->nwatches; i++) {
		const struct image_watch *w = &img->watches[i];
		uint32_t h = windex_hash(w->set, w->tfd) & ix->mask;
		while (ix->slots[h])
			h = (h + 1) & ix->mask;
		ix->slots[h] = i + 1;
	}
	return 0;
}

/*
 * The first image watch of (set, tfd) not matched yet whose target is
 * target (IMAGE_NONE: a watched file no fd holds), or -1.
 */
static long windex_find(const struct watch_index *ix, const struct image *img,
			const uint8_t *matched, uint32_t set, int32_t tfd,
			uint32_t target)
{
	uint32_t h = windex_hash(set, tfd) & ix->mask;
	for (; ix->slots[h]; h = (h + 1) & ix->mask) {
		uint32_t i = ix->slots[h] - 1;
		const struct image_watch *w = &img->watches[i];
		if (w->set == set && w->tfd == tfd && !matched[i] &&
		    (target != IMAGE_NONE ? w->target == target
					  : w->open_fd < 0))
			return (long)i;
	}
	return -1;
}

/* Registry files -> image target ids, through the fds both know. */
struct file_map {
	const struct reg_file **files;
	uint32_t *targets;
	uint32_t mask;
};

static uint32_t file_hash(const struct reg_file *f)
{
	return (uint32_t)(((uintptr_t)f * 0x9e3779b97f4a7c15ull) >> 32);
}

static int file_map_build(struct file_map *m, const struct image *img)
{
	uint32_t size = 16;
	while (size < img->nfds * 2u)
		size *= 2;
	m->files = calloc(size, sizeof(*m->files));
	m->targets = calloc(size, sizeof(*m->targets));
	m->mask = size - 1;
	if (!m->files || !m->targets)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct reg_file *f = registry_file_at(img->fds[i].fd);
		if (!f)
			continue;
		uint32_t h = file_hash(f) & m->mask;
		while (m->files[h] && m->files[h] != f)
			h = (h + 1) & m->mask;
		if (!m->files[h]) {
			m->files[h] = f;
			m->targets[h] = img->fds[i].target;
		}
	}
	return 0;
}

static uint32_t file_map_get(const struct file_map *m, const struct reg_file *f)
{
	for (uint32_t h = file_hash(f) & m->mask; m->files[h];
	     h = (h + 1) & m->mask)
		if (m->files[h] == f)
			return m->targets[h];
	return IMAGE_NONE;
}

struct shadow_walk {
	struct image *img;
	struct watch_index ix;
	struct file_map files;
	struct bt_map bts;
	uint8_t *matched;
	uint32_t set_target;
	int epfd;
};

static int merge_watch(void *ctx, const struct reg_watch_view *v)
{
	struct shadow_walk *sw = ctx;
	struct image *img = sw->img;
	uint32_t target = file_map_get(&sw->files, v->file);
	long i = windex_find(&sw->ix, img, sw->matched, sw->set_target,
			     v->tfd, target);
	uint32_t bt = image_backtrace(img, &sw->bts, v->bt_add);
	if (i < 0) {
		/*
		 * Uncertain: the shadow itself doubted it.  Releasing: the
		 * kernel dropped it with its file's last fd, and the thread
		 * doing the bookkeeping waits for this dump's locks.
		 */
		if (v->uncertain ||
		    (__atomic_load_n(&v->file->flags, __ATOMIC_ACQUIRE) &
		     REG_FILE_RELEASING))
			return 0;
		image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_PHANTOM_WATCH,
			       sw->epfd, v->tfd, NULL, bt,
			       "the shim registered a watch on fd %d in epoll fd %d (events 0x%x, data 0x%llx) that the kernel does not hold: removed behind the shim's back (raw syscall, or its file was closed elsewhere)",
			       v->tfd, sw->epfd, kernel_events(v->events),
			       (unsigned long long)v->data);
		return 0;
	}
	struct image_watch *w = &img->watches[i];
	sw->matched[i] = 1;
	w->flags |= IMAGE_W_SHADOW;
	w->bt_add = bt;
	w->bt_mod = image_backtrace(img, &sw->bts, v->bt_mod);
	if (w->flags & IMAGE_W_DISARMED) {
		if (!(v->events & EPOLLONESHOT))
			image_add_diag(img, IMAGE_SEV_WARNING,
				       IMAGE_DIAG_MISMATCH, sw->epfd, v->tfd,
				       target_path(img, w->target), bt,
				       "watch on fd %d in epoll fd %d is disarmed in the kernel but the shim registered it without EPOLLONESHOT",
				       v->tfd, sw->epfd);
		return 0;
	}
	if (kernel_events(v->events) != (w->events & ~(uint32_t)EPOLLWAKEUP) ||
	    v->data != w->data)
		image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_MISMATCH,
			       sw->epfd, v->tfd, target_path(img, w->target),
			       bt,
			       "watch on fd %d in epoll fd %d: the kernel has events 0x%x data 0x%llx, the shim recorded events 0x%x data 0x%llx (changed behind the shim's back); the image keeps the kernel's values",
			       v->tfd, sw->epfd, w->events,
			       (unsigned long long)w->data,
			       kernel_events(v->events),
			       (unsigned long long)v->data);
	return 0;
}

static int merge_set(void *ctx, struct reg_set *set,
		     const struct reg_file *set_file)
{
	struct shadow_walk *sw = ctx;
	(void)set_file;
	/* Find an fd of this set that the image knows as an epoll target. */
	sw->set_target = IMAGE_NONE;
	for (uint32_t i = 0; i < sw->img->nfds; i++) {
		const struct image_fd *fd = &sw->img->fds[i];
		if (registry_file_at(fd->fd) != set_file)
			continue;
		const struct image_target *t =
			image_target_by_id(sw->img, fd->target);
		if (t && t->kind == IMAGE_KIND_EPOLL) {
			sw->set_target = t->id;
			sw->epfd = fd->fd;
			break;
		}
	}
	if (sw->set_target == IMAGE_NONE)
		return 0; /* no fd left (shared after fork): kernel view only */
	return registry_walk_watches(set, merge_watch, sw);
}

/* Targets: kinds and creation parameters the kernel does not keep. */
static void enrich_targets(struct image *img)
{
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct reg_file *f = registry_file_at(img->fds[i].fd);
		struct image_target *t =
			image_target_by_id(img, img->fds[i].target);
		if (!f || !t)
			continue;
		if (f->kind != IMAGE_KIND_OTHER && f->kind != t->kind) {
			image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_MISMATCH,
				       -1, img->fds[i].fd, t->path, IMAGE_NONE,
				       "fd %d is a %s in the kernel but the shim saw a %s created there (closed and reopened behind the shim's back)",
				       img->fds[i].fd, image_kind_name(t->kind),
				       image_kind_name(f->kind));
			continue;
		}
		t->origin |= IMAGE_ORIGIN_SHADOW;
		if (t->kind == IMAGE_KIND_SOCKET && f->create.backlog >= 0 &&
		    t->u.sock.backlog < 0)
			t->u.sock.backlog = f->create.backlog;
	}
}

/*
 * The kernel stores event bits it does not define (an ADD with 0x800000
 * shows in fdinfo); the image format admits only defined bits.  Drop the
 * others and say so.
 */
static void mask_undefined_events(struct image *img)
{
	for (uint32_t i = 0; i < img->nwatches; i++) {
		struct image_watch *w = &img->watches[i];
		uint32_t extra = w->events & ~(uint32_t)IMAGE_EVENTS_ALL;
		if (!extra)
			continue;
		int epfd = first_fd_of(img, w->set); /* rare: no cache */
		image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_MISMATCH,
			       epfd, w->tfd, target_path(img, w->target),
			       w->bt_add,
			       "watch on fd %d in epoll fd %d carries event bits 0x%x that no epoll flag defines; the image keeps 0x%x without them, so a restore differs there",
			       w->tfd, epfd, extra, w->events & ~extra);
		w->events &= ~extra;
		img->flags &= ~(uint32_t)IMAGE_F_COMPLETE;
	}
}

/* Diagnostics for what the kernel shows and the shadow lacks or doubts. */
static void diagnose_watches(struct image *img, const uint8_t *matched)
{
	int epfd = -1;
	for (uint32_t i = 0; i < img->nwatches; i++) {
		struct image_watch *w = &img->watches[i];
		/* watches come grouped by set: look the set's fd up once */
		if (i == 0 || w->set != img->watches[i - 1].set)
			epfd = first_fd_of(img, w->set);
		const char *path = target_path(img, w->target);
		if (!matched[i])
			image_add_diag(img, IMAGE_SEV_WARNING,
				       IMAGE_DIAG_UNSEEN_WATCH, epfd, w->tfd,
				       path, IMAGE_NONE,
				       "epoll fd %d watches fd %d (%s, events 0x%x) but the shim never saw it registered: added by a raw syscall, io_uring, or before the shim was loaded",
				       epfd, w->tfd, path ? path : "no open fd",
				       w->events);
		if (w->flags & IMAGE_W_STALE) {
			if (w->open_fd >= 0)
				image_add_diag(img, IMAGE_SEV_INFO,
					       IMAGE_DIAG_STALE_TFD, epfd,
					       w->tfd, path, w->bt_add,
					       "epoll fd %d watches a file under fd number %d, which no longer holds it; the file lives at fd %d",
					       epfd, w->tfd, w->open_fd);
			else
				image_add_diag(img, IMAGE_SEV_INFO,
					       IMAGE_DIAG_STALE_TFD, epfd,
					       w->tfd, path, w->bt_add,
					       "epoll fd %d watches a file under fd number %d, which no longer holds it, and no fd of this process holds that file (kept alive elsewhere)",
					       epfd, w->tfd);
		}
		const struct image_target *t = image_target_by_id(img, w->target);
		if (t && t->kind == IMAGE_KIND_SOCKET &&
		    (t->u.sock.flags & IMAGE_SOCK_CONNECTED) &&
		    !(t->u.sock.flags & IMAGE_SOCK_PAIR))
			image_add_diag(img, IMAGE_SEV_INFO,
				       IMAGE_DIAG_UNRESTORABLE, epfd, w->tfd,
				       path, w->bt_add,
				       "fd %d is a connected socket: an unprivileged restore cannot bring its connection back",
				       w->tfd);
	}
}

/* Build the image from the shadow alone (no /proc). */
struct shadow_only {
	struct image *img;
	struct bt_map bts;
	uint32_t set_target;
	int epfd;
};

static uint32_t shadow_target(struct image *img, const struct reg_file *f,
			      int fd)
{
	if (fd >= 0) {
		uint32_t id = target_at(img, fd);
		if (id)
			return id;
	}
	struct image_target *t = image_add_target(img, f->kind);
	if (!t)
		return IMAGE_NONE;
	t->origin = IMAGE_ORIGIN_SHADOW;
	if (f->kind == IMAGE_KIND_SOCKET) {
		t->u.sock.domain = (uint32_t)f->create.domain;
		t->u.sock.type = (uint32_t)f->create.type;
		t->u.sock.protocol = (uint32_t)f->create.protocol;
		t->u.sock.backlog = f->create.backlog;
	}
	uint32_t id = t->id;
	if (fd >= 0) {
		struct image_fd *ifd = image_add_fd(img);
		if (ifd) {
			ifd->fd = fd;
			ifd->target = id;
		}
	}
	return id;
}

static int shadow_only_watch(void *ctx, const struct reg_watch_view *v)
{
	struct shadow_only *so = ctx;
	if (v->uncertain)
		return 0;
	int fd = registry_file_at(v->tfd) == v->file ? v->tfd : -1;
	uint32_t target = shadow_target(so->img, v->file, fd);
	struct image_watch *w = image_add_watch(so->img);
	if (!w)
		return -ENOMEM;
	w->set = so->set_target;
	w->tfd = v->tfd;
	w->events = kernel_events(v->events);
	w->data = v->data;
	w->target = target;
	w->open_fd = fd;
	w->flags = IMAGE_W_SHADOW;
	w->bt_add = image_backtrace(so->img, &so->bts, v->bt_add);
	w->bt_mod = image_backtrace(so->img, &so->bts, v->bt_mod);
	return 0;
}

static void first_fd_cb(void *ctx, int fd)
{
	int *first = ctx;
	if (*first < 0)
		*first = fd;
}

static int shadow_only_set(void *ctx, struct reg_set *set,
			   const struct reg_file *set_file)
{
	struct shadow_only *so = ctx;
	int fd = -1;
	registry_fds_of(set_file, first_fd_cb, &fd, 1);
	if (fd < 0)
		return 0;
	so->epfd = fd;
	so->set_target = shadow_target(so->img, set_file, fd);
	if (!so->set_target)
		return -ENOMEM;
	int ret = registry_walk_watches(set, shadow_only_watch, so);
	struct image_target *t = image_target_by_id(so->img, so->set_target);
	if (t)
		t->u.ep.nwatches = registry_set_nwatch(set);
	return ret;
}

static int build_shadow_only(struct image *img)
{
	struct shadow_only so = { .img = img };
	int ret = registry_walk_sets_locked(shadow_only_set, &so);
	free(so.bts.image_id);
	/* nwatches must count the watches written: recount. */
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].kind == IMAGE_KIND_EPOLL)
			img->targets[i].u.ep.nwatches = 0;
	for (uint32_t i = 0; i < img->nwatches; i++) {
		struct image_target *t =
			image_target_by_id(img, img->watches[i].set);
		if (t)
			t->u.ep.nwatches++;
	}
	image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_NO_PROC, -1, -1,
		       NULL, IMAGE_NONE,
		       "/proc/self/fdinfo could not be read: this image holds the shim's registry alone, unchecked against the kernel");
	img->flags |= IMAGE_F_SHADOW_VIEW;
	return ret;
}

int recorder_build_image(struct image *img, unsigned flags)
{
	int ret;
	image_init(img);
	ret = fill_process(img);
	if (ret < 0)
		goto err;
	img->flags = IMAGE_F_COMPLETE;

	registry_lock_all();
	struct kview_hints hints = { .confirm_watch = confirm_watch };
	ret = (flags & RECORDER_F_NO_PROC)
		      ? -EACCES
		      : kview_snapshot(0, img, (flags & RECORDER_F_FULL_KCMP)
						       ? KVIEW_F_FULL_KCMP
						       : 0,
				       &hints);
	if (ret == -EACCES || ret == -ENOENT || ret == -EPERM) {
		/* No /proc: the shadow alone, and say so. */
		struct image fresh;
		image_free(img);
		image_init(&fresh);
		*img = fresh;
		fill_process(img);
		img->flags = IMAGE_F_COMPLETE;
		ret = build_shadow_only(img);
		registry_unlock_all();
		img->flags &= ~(uint32_t)IMAGE_F_COMPLETE;
		if (ret < 0)
			goto err;
		goto done;
	}
	if (ret < 0) {
		registry_unlock_all();
		goto err;
	}
	struct shadow_walk sw = { .img = img };
	sw.matched = calloc(img->nwatches ? img->nwatches : 1, 1);
	if (!sw.matched || windex_build(&sw.ix, img) < 0 ||
	    file_map_build(&sw.files, img) < 0) {
		registry_unlock_all();
		free(sw.matched);
		free(sw.ix.slots);
		free(sw.files.files);
		free(sw.files.targets);
		ret = -ENOMEM;
		goto err;
	}
	enrich_targets(img);
	registry_walk_sets_locked(merge_set, &sw);
	registry_unlock_all();
	img->flags |= IMAGE_F_SHADOW_VIEW;
	diagnose_watches(img, sw.matched);
	mask_undefined_events(img);
	free(sw.matched);
	free(sw.ix.slots);
	free(sw.files.files);
	free(sw.files.targets);
	free(sw.bts.image_id);
done:
	if (registry_incomplete()) {
		img->flags &= ~(uint32_t)IMAGE_F_COMPLETE;
		image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_INCOMPLETE,
			       -1, -1, NULL, IMAGE_NONE,
			       "the shim ran out of memory at some point: its registry is incomplete, so kinds, backlogs and backtraces may be missing (the kernel's view is complete)");
	}
	return 0;
err:
	image_free(img);
	return ret;
}

int recorder_dump_fd(int fd, unsigned flags)
{
	struct image img;
	int ret = recorder_build_image(&img, flags);
	if (ret < 0)
		return ret;
	ret = image_write_fd(&img, fd);
	image_free(&img);
	return ret;
}

int recorder_dump_file(const char *path, unsigned flags)
{
	struct image img;
	int ret = recorder_build_image(&img, flags);
	if (ret < 0)
		return ret;
	ret = image_write_file(&img, path);
	image_free(&img);
	return ret;
}

int epollcr_dump_self(const char *image_path)
{
	return recorder_dump_file(image_path, 0);
}
