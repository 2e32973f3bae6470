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
#include <link.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backtrace.h"
#include "epollcr.h"
#include "image_io.h"
#include "kind.h"
#include "kview.h"
#include "ownfd.h"
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

char *recorder_read_line(const char *path)
{
	char buf[256];
	int fd = OWN_FD(open(path, O_RDONLY | O_CLOEXEC));
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
	img->proc.comm = recorder_read_line("/proc/self/comm");
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

/*
 * The path of the module dladdr found, for addr2line and people.  The main
 * program has an empty name in its link map, and dladdr names it by
 * argv[0], which a program may rewrite (a process title, as redis-server
 * does): /proc/self/exe, read once per image, names the file instead.
 */
static const char *module_path(const struct image *img, const Dl_info *info,
			       const struct link_map *lm)
{
	if (lm && lm->l_name && !lm->l_name[0] && img->proc.exe)
		return img->proc.exe;
	return info->dli_fname;
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
		struct link_map *lm = NULL;
		f[i].offset = frames[i];
		if (!dladdr1((void *)frames[i], &info, (void **)&lm,
			     RTLD_DL_LINKMAP) ||
		    !info.dli_fname)
			continue;
		f[i].module = module_id(img, module_path(img, &info, lm),
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

/*
 * kview hint: the shadow's flags of fd (followed through fcntl, ioctl,
 * dup3, close_range: registry_fd_fdinfo_flags) and, for a socket, its
 * domain, so that the view need not read fd's fdinfo.
 */
static bool fd_facts(void *ctx, int fd, struct kview_fd_facts *facts)
{
	(void)ctx;
	if (!registry_fd_fdinfo_flags(fd, &facts->kind, &facts->flags))
		return false;
	facts->domain = facts->type = facts->protocol = facts->listening = -1;
	const struct reg_file *f = registry_file_at(fd);
	if (facts->kind != IMAGE_KIND_SOCKET || !f)
		return true;
	/* Fields fixed before the file was published (not the backlog). */
	struct reg_create c = { .domain = f->create.domain,
				.type = f->create.type,
				.protocol = f->create.protocol };
	if (c.domain < AF_MAX)
		facts->domain = c.domain;
	/* A type and a protocol the kernel knows as given (or the default). */
	if (facts->domain >= 0 && c.type != UINT8_MAX && c.protocol >= 0) {
		facts->type = c.type;
		facts->protocol = c.protocol;
		if (c.protocol == 0 &&
		    (c.domain == AF_INET || c.domain == AF_INET6))
			facts->protocol = c.type == SOCK_STREAM ? IPPROTO_TCP
					  : c.type == SOCK_DGRAM ? IPPROTO_UDP
								 : -1;
		else if (c.protocol == 0 && c.domain != AF_UNIX)
			facts->protocol = -1;
	}
	/* Listening needs listen(): one the shim saw, or none. */
	if (__atomic_load_n(&f->create.backlog, __ATOMIC_RELAXED) < 0)
		facts->listening = 0;
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

/* Does the kernel's watch w say what the shadow registered as v? */
static bool watch_agrees(const struct image_watch *w,
			 const struct reg_watch_view *v)
{
	const uint32_t private_bits = EPOLLONESHOT | EPOLLET |
				      EPOLLEXCLUSIVE | EPOLLWAKEUP;

	if (w->data != v->data)
		return false;
	if (w->flags & IMAGE_W_DISARMED)
		return (v->events & EPOLLONESHOT) &&
		       ((w->events ^ v->events) & private_bits &
			~(uint32_t)EPOLLWAKEUP) == 0;
	return kernel_events(v->events) == (w->events & ~(uint32_t)EPOLLWAKEUP);
}

/*
 * The image watch of (set, v->tfd) not matched yet that is the shadow's
 * watch v, whose file the image knows as target, or -1.  With a target,
 * (file, tfd) is an epitem key: one candidate at most.  With IMAGE_NONE (a
 * watched file no fd of the process holds, kept alive by another process:
 * several may share one tfd and nothing tells them apart but what they
 * carry), the candidate whose events and data agree with v; failing that,
 * the only candidate when v is certain.  An uncertain v that agrees with
 * none is left unmatched: its file is most likely gone, and pairing it
 * with another file's watch would invent a disagreement.
 */
static long windex_find(const struct watch_index *ix, const struct image *img,
			const uint8_t *matched, uint32_t set,
			const struct reg_watch_view *v, uint32_t target)
{
	uint32_t h = windex_hash(set, v->tfd) & ix->mask;
	unsigned candidates = 0;
	long first = -1;

	for (; ix->slots[h]; h = (h + 1) & ix->mask) {
		uint32_t i = ix->slots[h] - 1;
		const struct image_watch *w = &img->watches[i];
		if (w->set != set || w->tfd != v->tfd || matched[i] ||
		    (target != IMAGE_NONE ? w->target != target
					  : w->open_fd >= 0))
			continue;
		if (target != IMAGE_NONE || watch_agrees(w, v))
			return (long)i;
		if (!candidates++)
			first = (long)i;
	}
	return candidates == 1 && !v->uncertain ? first : -1;
}

/*
 * Registry files -> image target ids, through the fds both know.  Fds of
 * files without watches are not held back by a dump: the program may close
 * one and dup a watched file onto its number between the kernel's reading
 * and this map, so the registry then shows the watched file at a number
 * where the image has another file.  A file whose fds name different
 * targets is therefore marked ambiguous and resolved fd by fd.
 */
#define FILE_MAP_AMBIGUOUS UINT32_MAX /* fds of the file disagree */

struct file_map {
	const struct reg_file **files;
	uint32_t *targets;	/* image target, or FILE_MAP_AMBIGUOUS */
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
		} else if (m->targets[h] != img->fds[i].target) {
			m->targets[h] = FILE_MAP_AMBIGUOUS;
		}
	}
	return 0;
}

/* The target of f, IMAGE_NONE when unknown, or FILE_MAP_AMBIGUOUS. */
static uint32_t file_map_get(const struct file_map *m, const struct reg_file *f)
{
	for (uint32_t h = file_hash(f) & m->mask; m->files[h];
	     h = (h + 1) & m->mask)
		if (m->files[h] == f)
			return m->targets[h];
	return IMAGE_NONE;
}

/*
 * A watch on a file no fd of the process holds (kept alive by another
 * process), with what the shim knew of the file, copied during the walk:
 * the file may be reused once the registry is unlocked.
 */
struct orphan {
	const struct reg_file *file; /* identity only, never dereferenced */
	uint32_t watch;		     /* image watch index */
	uint8_t kind;		     /* the shim's */
	struct reg_create create;
};

struct orphans {
	struct orphan *v;
	uint32_t n, cap;
};

struct shadow_walk {
	struct image *img;
	struct watch_index ix;
	struct file_map files;
	struct bt_map bts;
	uint8_t *matched;
	struct orphans orphans;
	uint32_t set_target;
	int epfd;
};

/*
 * The image watch that is the shadow's watch v, or -1.  A file mapped to
 * several targets (see file_map) is tried through each fd that holds it in
 * the registry, its watch's own tfd first: a watched file's fds cannot go
 * away during the dump, so where the registry and the image both have the
 * tfd, that is the file.  Rare, hence linear.
 */
static long find_kernel_watch(struct shadow_walk *sw,
			      const struct reg_watch_view *v)
{
	const struct image *img = sw->img;
	uint32_t target = file_map_get(&sw->files, v->file);
	long i;

	if (target != FILE_MAP_AMBIGUOUS)
		return windex_find(&sw->ix, img, sw->matched, sw->set_target,
				   v, target);
	if (registry_file_at(v->tfd) == v->file) {
		target = target_at(img, v->tfd);
		i = windex_find(&sw->ix, img, sw->matched, sw->set_target, v,
				target);
		if (target != IMAGE_NONE && i >= 0)
			return i;
	}
	for (uint32_t k = 0; k < img->nfds; k++) {
		if (registry_file_at(img->fds[k].fd) != v->file)
			continue;
		i = windex_find(&sw->ix, img, sw->matched, sw->set_target, v,
				img->fds[k].target);
		if (i >= 0)
			return i;
	}
	return -1;
}

static void orphan_add(struct orphans *o, uint32_t watch,
		       const struct reg_file *f)
{
	struct orphan *x = image_array_grow((void **)&o->v, &o->n, &o->cap,
					    sizeof(*x), UINT32_MAX);
	if (!x)
		return; /* left as the kernel sees it */
	x->file = f;
	x->watch = watch;
	x->kind = f->kind;
	x->create = f->create;
	x->create.sigmask = __atomic_load_n(&f->create.sigmask,
					    __ATOMIC_RELAXED);
}

static int orphan_cmp(const void *a, const void *b)
{
	const struct orphan *x = a, *y = b;
	if (x->file != y->file)
		return (uintptr_t)x->file < (uintptr_t)y->file ? -1 : 1;
	return (x->watch > y->watch) - (x->watch < y->watch);
}

/*
 * Is t a target the kernel's view made for a watched file no fd holds,
 * that the shim can tell more of: an anonymous inode (eventfd, timerfd,
 * signalfd: KVIEW_ANON_UNKNOWN), or a pipe (its inode does not tell the
 * end)?
 */
static bool orphan_target_open(const struct image_target *t)
{
	if (!t || (t->origin & IMAGE_ORIGIN_SHADOW))
		return false;
	return t->kind == IMAGE_KIND_PIPE || kview_anon_unknown(t);
}

/*
 * The kernel's view knows such a file by its inode alone, and eventfd,
 * timerfd and signalfd files all share one anonymous inode, nor does a
 * pipe's inode tell its end.  The shim saw the file created: its kind and
 * creation parameters come from there (false when they do not fit what
 * the kernel says).  Its state (a count, a timer's setting, queued bytes)
 * no fd can read: the target keeps what a creation gives, and
 * diagnose_watches() says so.
 */
static bool enrich_orphan(struct image_target *t, const struct orphan *o)
{
	uint32_t nonblock = (o->create.flags & O_NONBLOCK) ? O_NONBLOCK : 0;

	if (t->kind == IMAGE_KIND_PIPE) {
		if (o->kind != IMAGE_KIND_PIPE)
			return false;
		t->u.pipe.write_end = o->create.pipe_end ? 1 : 0;
		t->file_flags = (o->create.pipe_end ? O_WRONLY : O_RDONLY) |
				nonblock;
		t->origin |= IMAGE_ORIGIN_SHADOW;
		return true;
	}
	if (o->kind != IMAGE_KIND_EVENTFD && o->kind != IMAGE_KIND_TIMERFD &&
	    o->kind != IMAGE_KIND_SIGNALFD)
		return false;
	image_target_release(t);
	t->path = (char *)image_standard_path(o->kind);
	t->kind = o->kind;
	t->origin |= IMAGE_ORIGIN_SHADOW;
	t->file_flags = O_RDWR | nonblock;
	memset(&t->u, 0, sizeof(t->u));
	if (o->kind == IMAGE_KIND_EVENTFD)
		t->u.efd.semaphore = (o->create.flags & EFD_SEMAPHORE) ? 1 : 0;
	else if (o->kind == IMAGE_KIND_TIMERFD)
		t->u.tfd.clockid = (uint32_t)o->create.clockid;
	else
		t->u.sfd.mask = o->create.sigmask;
	return true;
}

static int pipe_ino_cmp(const void *x, const void *y, void *ctx)
{
	const struct image *img = ctx;
	uint64_t a = img->targets[*(const uint32_t *)x].u.pipe.ino;
	uint64_t b = img->targets[*(const uint32_t *)y].u.pipe.ino;
	return (a > b) - (a < b);
}

/*
 * An end of a pipe no fd holds, told by the shim (origin SHADOW, no fd),
 * and the other end of its inode name each other when each is the only
 * one of its end under that inode without a peer (as pair_pipes does for
 * ends with fds).  Sorted by inode: cost n log n in the pipe targets.
 */
static void pair_orphan_pipes(struct image *img, const uint8_t *told,
			      const uint8_t *drop)
{
	uint32_t n = 0, *v = malloc(((size_t)img->ntargets + 1) * sizeof(*v));
	if (!v)
		return;
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].kind == IMAGE_KIND_PIPE &&
		    img->targets[i].u.pipe.peer == IMAGE_NONE &&
		    !drop[img->targets[i].id])
			v[n++] = i;
	qsort_r(v, n, sizeof(*v), pipe_ino_cmp, img);
	for (uint32_t i = 0; i < n;) {
		uint32_t j = i, ends[2] = { 0, 0 }, at[2] = { 0, 0 };
		bool orphan = false;
		for (; j < n && img->targets[v[j]].u.pipe.ino ==
					img->targets[v[i]].u.pipe.ino; j++) {
			const struct image_target *t = &img->targets[v[j]];
			uint32_t e = t->u.pipe.write_end ? 1 : 0;
			ends[e]++;
			at[e] = v[j];
			orphan = orphan || told[t->id];
		}
		if (orphan && ends[0] == 1 && ends[1] == 1) {
			img->targets[at[0]].u.pipe.peer = img->targets[at[1]].id;
			img->targets[at[1]].u.pipe.peer = img->targets[at[0]].id;
		}
		i = j;
	}
	free(v);
}

/*
 * The watches on files no fd holds, once the walk is over: each file's
 * first target takes the shim's facts, and the targets the kernel's view
 * made for its other watches (one per watch: it cannot tell two such
 * files apart) go, their watches naming the first.  Without memory for
 * that, each watch keeps a target of its own, told or not.
 */
static void resolve_orphans(struct image *img, struct orphans *o)
{
	if (!o->n)
		return;
	size_t n = (size_t)img->ntargets + 1;
	uint8_t *drop = calloc(n, 1), *told = calloc(n, 1);
	uint32_t *refs = calloc(n, sizeof(*refs));
	bool dropping = false;

	if (!drop || !told || !refs)
		goto out;
	qsort(o->v, o->n, sizeof(*o->v), orphan_cmp);
	for (uint32_t i = 0; i < img->nwatches; i++)
		if (img->watches[i].target <= img->ntargets)
			refs[img->watches[i].target]++;
	for (uint32_t g = 0; g < o->n;) {
		uint32_t end = g + 1;
		while (end < o->n && o->v[end].file == o->v[g].file)
			end++;
		struct image_watch *w0 = &img->watches[o->v[g].watch];
		struct image_target *t0 = image_target_by_id(img, w0->target);
		uint32_t kind0 = t0 ? t0->kind : IMAGE_KIND_OTHER;
		if (!orphan_target_open(t0) || !enrich_orphan(t0, &o->v[g])) {
			g = end;
			continue;
		}
		told[t0->id] = 1;
		for (uint32_t k = g + 1; k < end; k++) {
			struct image_watch *w = &img->watches[o->v[k].watch];
			struct image_target *t = image_target_by_id(img, w->target);
			if (!t || t == t0 || t->kind != kind0 ||
			    !orphan_target_open(t) || refs[t->id] != 1 ||
			    (kind0 == IMAGE_KIND_PIPE &&
			     t->u.pipe.ino != t0->u.pipe.ino))
				continue;
			drop[t->id] = 1;
			w->target = t0->id;
			dropping = true;
		}
		g = end;
	}
	pair_orphan_pipes(img, told, drop);
	/* Without memory the dropped targets stay, named by no watch. */
	if (dropping)
		(void)image_drop_targets(img, drop);
out:
	free(drop);
	free(told);
	free(refs);
}

static int merge_watch(void *ctx, const struct reg_watch_view *v)
{
	struct shadow_walk *sw = ctx;
	struct image *img = sw->img;
	long i = find_kernel_watch(sw, v);
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
	if (w->open_fd < 0)
		orphan_add(&sw->orphans, (uint32_t)i, v->file);
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

/*
 * A kind disagreement seen by enrich_targets(), reported only once
 * report_kind_disagreements() has looked again.
 */
struct kind_suspect {
	int fd;
	uint32_t image_kind;	/* the kernel's, when the image was read */
	const char *path;	/* the target's, owned by the image */
};

struct kind_suspects {
	struct kind_suspect *v;
	uint32_t n, cap;
};

/*
 * Targets: kinds and creation parameters the kernel does not keep.  An fd
 * whose kind the registry and the image disagree on is not enriched, and
 * goes to suspects (dropped, with the registry marked incomplete, when
 * memory runs out).
 */
static void enrich_targets(struct image *img, struct kind_suspects *suspects)
{
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct reg_file *f = registry_file_at(img->fds[i].fd);
		struct image_target *t =
			image_target_by_id(img, img->fds[i].target);
		if (!f || !t)
			continue;
		if (f->kind != IMAGE_KIND_OTHER && f->kind != t->kind) {
			struct kind_suspect *s = image_array_grow(
				(void **)&suspects->v, &suspects->n,
				&suspects->cap, sizeof(*s), UINT32_MAX);
			if (!s) {
				registry_mark_incomplete();
				continue;
			}
			*s = (struct kind_suspect){
				.fd = img->fds[i].fd,
				.image_kind = t->kind,
				.path = t->path,
			};
			continue;
		}
		t->origin |= IMAGE_ORIGIN_SHADOW;
		if (t->kind == IMAGE_KIND_SOCKET && f->create.backlog >= 0 &&
		    t->u.sock.backlog < 0)
			t->u.sock.backlog = f->create.backlog;
		/*
		 * An accepted socket with no peer now had one: it ended.
		 * (Type 0: described without an fd, its peer unknown.)
		 */
		if (t->kind == IMAGE_KIND_SOCKET && f->create.accepted &&
		    t->u.sock.type != 0 &&
		    !(t->u.sock.flags &
		      (IMAGE_SOCK_CONNECTED | IMAGE_SOCK_LISTENING)))
			t->u.sock.flags |= IMAGE_SOCK_ENDED;
	}
}

/* The kind of the file at fd now, as the kernel says, or -1 when none. */
static int kernel_kind_now(int fd)
{
	char path[64], link[256];
	snprintf(path, sizeof(path), "/proc/thread-self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = '\0';
	return (int)kind_from_link(link);
}

/*
 * Look again at a suspect: KIND_SETTLED when the disagreement is gone (the
 * kernel now has another file there than the image read, or the registry
 * now agrees with the kernel), KIND_PERSISTS when the registry still holds
 * a file of another kind there, KIND_MOVING while the registry changes
 * under the look.
 */
enum kind_look { KIND_SETTLED, KIND_PERSISTS, KIND_MOVING };

static enum kind_look kind_look_again(const struct kind_suspect *s)
{
	const struct reg_file *before = registry_file_at(s->fd);
	int now = kernel_kind_now(s->fd);
	const struct reg_file *after = registry_file_at(s->fd);
	if (now != (int)s->image_kind)
		return KIND_SETTLED;
	if (before != after)
		return KIND_MOVING;
	if (!after || after->kind == IMAGE_KIND_OTHER ||
	    after->kind == (uint32_t)now)
		return KIND_SETTLED;
	return KIND_PERSISTS;
}

/*
 * Report the kind disagreements that last.  Fds of files without watches
 * are not held back by a dump (closing and creating them must not wait for
 * a lock): while the kernel was read, the program may have closed one and
 * created a file of another kind at its number, and the registry learns of
 * a creation just after the real call returns.  So each suspect is looked
 * at again, after the locks are released, up to KIND_LOOKS times
 * KIND_LOOK_PAUSE_NS apart, and reported only when the registry still
 * disagrees with the kernel about the very kind the image read.  Bounds:
 * KIND_LOOKS rounds over the suspects, so at most about 50 ms of pauses,
 * paid only by a dump that finds a disagreement.
 */
#define KIND_LOOKS 25
#define KIND_LOOK_PAUSE_NS 2000000L /* 2 ms: a preempted thread catches up */

static void report_kind_disagreements(struct image *img,
				      struct kind_suspects *suspects)
{
	const struct timespec pause = { .tv_nsec = KIND_LOOK_PAUSE_NS };
	uint32_t left = suspects->n;

	for (int look = 0; look < KIND_LOOKS && left; look++) {
		if (look)
			nanosleep(&pause, NULL);
		uint32_t kept = 0;
		for (uint32_t i = 0; i < left; i++) {
			enum kind_look r = kind_look_again(&suspects->v[i]);
			bool last = look == KIND_LOOKS - 1;
			if (r == KIND_SETTLED || (last && r == KIND_MOVING))
				continue;
			suspects->v[kept++] = suspects->v[i];
		}
		left = kept;
	}
	for (uint32_t i = 0; i < left; i++) {
		const struct kind_suspect *s = &suspects->v[i];
		const struct reg_file *f = registry_file_at(s->fd);
		if (!f)
			continue;
		image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_MISMATCH, -1,
			       s->fd, s->path, IMAGE_NONE,
			       "fd %d is a %s in the kernel but the shim saw a %s created there (closed and reopened behind the shim's back)",
			       s->fd, image_kind_name(s->image_kind),
			       image_kind_name(f->kind));
	}
	free(suspects->v);
	suspects->v = NULL;
	suspects->n = suspects->cap = 0;
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

/*
 * A connected inet datagram socket with its peer recorded: the restore
 * connects it again (replayer/recreate_socket.c).
 */
static bool socket_reconnectable(const struct image_socket *s)
{
	return (s->domain == AF_INET || s->domain == AF_INET6) &&
	       s->type == SOCK_DGRAM && s->peer_len > 0;
}

/* What the image could not read of a target no fd holds (enrich_orphan). */
static const char *orphan_note(const struct image_target *t)
{
	if (t && t->kind == IMAGE_KIND_SOCKET && t->u.sock.domain == 0)
		return "; a socket: without an fd its family, address and state are not read, so a restore cannot recreate it";
	if (t && t->kind == IMAGE_KIND_PIPE &&
	    !(t->origin & IMAGE_ORIGIN_SHADOW))
		return "; which end of its pipe it is, the kernel does not say: taken from what it is watched for (EPOLLOUT without EPOLLIN: the write end)";
	if (!t || !(t->origin & IMAGE_ORIGIN_SHADOW))
		return "";
	switch (t->kind) {
	case IMAGE_KIND_EVENTFD:
		return "; the shim saw it created as an eventfd, whose count no fd can read: a restore creates it with count 0";
	case IMAGE_KIND_TIMERFD:
		return "; the shim saw it created as a timerfd, whose setting no fd can read: a restore creates it disarmed";
	case IMAGE_KIND_SIGNALFD:
		return "; the shim saw it created as a signalfd, with the mask it was last given";
	case IMAGE_KIND_PIPE:
		return "; the shim saw which end of a pipe it is; the bytes queued in it no fd can read: a restore creates it empty";
	default:
		return "";
	}
}

/*
 * Diagnostics for what the kernel shows and the shadow lacks or doubts;
 * matched NULL (no shadow: a kernel-only image) reports no unseen watch.
 */
static void diagnose_watches(struct image *img, const uint8_t *matched)
{
	int epfd = -1;
	for (uint32_t i = 0; i < img->nwatches; i++) {
		struct image_watch *w = &img->watches[i];
		/* watches come grouped by set: look the set's fd up once */
		if (i == 0 || w->set != img->watches[i - 1].set)
			epfd = first_fd_of(img, w->set);
		const char *path = target_path(img, w->target);
		const struct image_target *t = image_target_by_id(img, w->target);
		if (matched && !matched[i])
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
					       "epoll fd %d watches a file under fd number %d, which no longer holds it, and no fd of this process holds that file (kept alive elsewhere)%s",
					       epfd, w->tfd, orphan_note(t));
		}
		if (t && t->kind == IMAGE_KIND_SOCKET &&
		    (t->u.sock.flags & IMAGE_SOCK_CONNECTED) &&
		    !(t->u.sock.flags & IMAGE_SOCK_PAIR) &&
		    !socket_reconnectable(&t->u.sock))
			image_add_diag(img, IMAGE_SEV_INFO,
				       IMAGE_DIAG_UNRESTORABLE, epfd, w->tfd,
				       path, w->bt_add,
				       "fd %d is a connected socket: an unprivileged restore cannot bring its connection back",
				       w->tfd);
		if (t && t->kind == IMAGE_KIND_SOCKET &&
		    (t->u.sock.flags & IMAGE_SOCK_ENDED))
			image_add_diag(img, IMAGE_SEV_INFO,
				       IMAGE_DIAG_UNRESTORABLE, epfd, w->tfd,
				       path, w->bt_add,
				       "fd %d is a socket whose connection ended (reset or closed by its peer; accepted or connected, it has no peer now): an unprivileged restore cannot bring it back",
				       w->tfd);
		/* As replayer/recreate.c: a pipe with a path is a FIFO. */
		if (t && t->kind == IMAGE_KIND_PIPE && t->path &&
		    t->path[0] == '/')
			image_add_diag(img, IMAGE_SEV_INFO,
				       IMAGE_DIAG_UNRESTORABLE, epfd, w->tfd,
				       path, w->bt_add,
				       "fd %d is the named FIFO %s: a restore does not open paths from an image, so it cannot bring it back",
				       w->tfd, t->path);
	}
}

void recorder_diagnose_kernel_view(struct image *img)
{
	diagnose_watches(img, NULL);
	mask_undefined_events(img);
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

/*
 * One attempt at the image.  *clean: no signal handler's call with
 * deferred bookkeeping was open during the cut (registry_cut_clean_begin);
 * when one was open at its start, and last is false, the attempt stops
 * there (*clean false, an image holding the process alone).
 */
static int build_once(struct image *img, unsigned flags, bool last,
		      bool *clean)
{
	int ret;
	unsigned gen;
	*clean = true;
	image_init(img);
	ret = fill_process(img);
	if (ret < 0)
		goto err;
	img->flags = IMAGE_F_COMPLETE;

	registry_lock_all();
	if (!registry_cut_clean_begin(&gen)) {
		*clean = false;
		if (!last) {
			registry_unlock_all();
			return 0;
		}
	}
	struct kview_hints hints = { .confirm_watch = confirm_watch,
				     .fd_facts = fd_facts };
	unsigned kflags = ((flags & RECORDER_F_FULL_KCMP) ? KVIEW_F_FULL_KCMP
							  : 0) |
			  ((flags & RECORDER_F_PER_FD) ? KVIEW_F_PER_FD : 0);
	ret = (flags & RECORDER_F_NO_PROC)
		      ? -EACCES
		      : kview_snapshot(0, img, kflags, &hints);
	if (ret == -EACCES || ret == -ENOENT || ret == -EPERM) {
		/* No /proc: the shadow alone, and say so. */
		struct image fresh;
		image_free(img);
		image_init(&fresh);
		*img = fresh;
		fill_process(img);
		img->flags = IMAGE_F_COMPLETE;
		ret = build_shadow_only(img);
		*clean = *clean && registry_cut_still_clean(gen);
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
	struct kind_suspects suspects = { 0 };
	enrich_targets(img, &suspects);
	registry_walk_sets_locked(merge_set, &sw);
	*clean = *clean && registry_cut_still_clean(gen);
	registry_unlock_all();
	img->flags |= IMAGE_F_SHADOW_VIEW;
	report_kind_disagreements(img, &suspects);
	resolve_orphans(img, &sw.orphans);
	free(sw.orphans.v);
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

/*
 * A signal handler that interrupted a wrapper of its thread makes its real
 * call at once and its bookkeeping later (shim/defer.c): a cut that saw
 * one open may hold the kernel's side of it without the registry's (a
 * phantom or unseen watch that is not real).  Such a cut is dropped and
 * taken again once the interrupted wrappers have left (they apply the
 * records as they do).  A dropped cut mostly costs the locks alone (one
 * found open before the read); under a handler every 200 us a cut was
 * dropped often enough that 8 in a row happened about once in 2,000
 * dumps, so the retries are bounded by time: after CUT_RETRY_MS the next
 * cut stands, whatever it holds.
 */
#define CUT_RETRY_MS 1000
#define CUT_WAIT_MS 50

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000L +
	       (t.tv_nsec - t0->tv_nsec) / 1000000L;
}

void (*recorder_before_build)(void);

int recorder_build_image(struct image *img, unsigned flags)
{
	struct timespec t0;
	void (*before)(void) =
		__atomic_load_n(&recorder_before_build, __ATOMIC_ACQUIRE);
	if (before)
		before();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		bool clean;
		bool last = elapsed_ms(&t0) >= CUT_RETRY_MS;
		int ret = build_once(img, flags, last, &clean);
		if (ret < 0 || clean || last)
			return ret;
		image_free(img);
		registry_wait_deferred(CUT_WAIT_MS);
	}
}

int recorder_dump_fd(int fd, unsigned flags)
{
	struct image img;
	own_fd_section_begin(); /* every descriptor we open: ownfd.h */
	int ret = recorder_build_image(&img, flags);
	if (ret == 0) {
		ret = image_write_fd(&img, fd);
		image_free(&img);
	}
	own_fd_section_end();
	return ret;
}

int recorder_dump_file(const char *path, unsigned flags)
{
	struct image img;
	own_fd_section_begin(); /* every descriptor we open: ownfd.h */
	int ret = recorder_build_image(&img, flags);
	if (ret == 0) {
		ret = image_write_file(&img, path);
		image_free(&img);
	}
	own_fd_section_end();
	return ret;
}

int recorder_dump_at(int dirfd, const char *name, unsigned flags)
{
	struct image img;
	own_fd_section_begin(); /* every descriptor we open: ownfd.h */
	int ret = recorder_build_image(&img, flags);
	if (ret == 0) {
		ret = image_write_at(&img, dirfd, name);
		image_free(&img);
	}
	own_fd_section_end();
	return ret;
}

int epollcr_dump_self(const char *image_path)
{
	return recorder_dump_file(image_path, 0);
}
