// SPDX-License-Identifier: MIT
/*
 * Kernel view: describe each open file description as an image target
 * (kind, path, the kind's own fields) with its fds, and name the two ends
 * of a pipe or of a socketpair (sock_diag) partners.
 */
#include <sys/un.h>

#include "kview_internal.h"

/* ---- targets ------------------------------------------------------------- */

/* The link text of f, synthesised where the mount says what it is. */
static const char *fd_path(struct kv *kv, struct kv_fd *f, char *buf,
			   size_t len)
{
	if (f->have_link)
		return fd_link(kv, f);
	if (f->cls == KV_CLASS_SOCK) {
		snprintf(buf, len, "socket:[%" PRIu64 "]", f->ino);
		return buf;
	}
	if (f->cls == KV_CLASS_PIPE) {
		snprintf(buf, len, "pipe:[%" PRIu64 "]", f->ino);
		return buf;
	}
	if (f->cls == KV_CLASS_ANON && f->kind < IMAGE_KIND_COUNT) {
		/* One readlink per kind, checked against the kind. */
		size_t *learnt = &kv->kind_link[f->kind];

		if (*learnt)
			return kv->arena + *learnt - 1;
		if (fd_learn_link(kv, f) < 0)
			return NULL;
		if (kind_from_link(fd_link(kv, f)) == f->kind)
			*learnt = f->link_off + 1;
		return fd_link(kv, f);
	}
	if (fd_learn_link(kv, f) < 0)
		return NULL;
	return fd_link(kv, f);
}

/*
 * A descriptor of f usable in this process: f itself for the calling
 * process; for another, a copy through pidfd_getfd for the kinds whose
 * description needs one (sockets, pipes), else -1.  *copied says whether
 * the caller must close it.
 */
static int live_fd(struct kv *kv, const struct kv_fd *f, bool *copied)
{
	*copied = false;
	if (kv->self)
		return f->fd;
	if (kv->pidfd < 0 ||
	    (f->kind != IMAGE_KIND_SOCKET && f->kind != IMAGE_KIND_PIPE))
		return -1;
	long fd = syscall(SYS_pidfd_getfd, kv->pidfd, f->fd, 0);

	if (fd < 0)
		return -1;
	*copied = true;
	return (int)fd;
}

/* ---- sockets in bulk ---------------------------------------------------- */

static int cmp_inet(const void *a, const void *b)
{
	const struct inet_diag_sock *x = a, *y = b;

	return (x->ino > y->ino) - (x->ino < y->ino);
}

static bool has_sock_ino(const struct kv *kv, uint64_t ino);

/* inet_diag_dump() callback: keep the sockets some fd of ours holds. */
static int keep_inet(void *ctx, const struct inet_diag_sock *s)
{
	struct kv *kv = ctx;

	struct inet_diag_sock *slot;

	if (!s->ino || !has_sock_ino(kv, s->ino))
		return 0;
	slot = image_array_grow((void **)&kv->inet, &kv->ninet, &kv->cap_inet,
				sizeof(*kv->inet), UINT32_MAX);
	if (!slot)
		return -ENOMEM;
	*slot = *s;
	return 0;
}

/*
 * When the view holds KVIEW_BULK_MIN socket targets or more (any with
 * KVIEW_F_BULK), each of them described through a descriptor: one inet_diag dump per family and
 * protocol (TCP, UDP over IPv4, IPv6), kept for the process's socket
 * inodes and sorted, so that emit_group() takes their addresses, state
 * and v6only from it rather than from six calls per socket.  A dump the
 * kernel refuses leaves its sockets to the per-socket calls.  Returns 0
 * or -ENOMEM.
 */
int read_inet_bulk(struct kv *kv)
{
	static const struct {
		uint32_t family, protocol;
	} dumps[] = {
		{ AF_INET, IPPROTO_TCP }, { AF_INET6, IPPROTO_TCP },
		{ AF_INET, IPPROTO_UDP }, { AF_INET6, IPPROTO_UDP },
	};
	uint32_t nsock = 0, kept = 0;

	if ((kv->flags & KVIEW_F_PER_TARGET) || (!kv->self && kv->pidfd < 0))
		return 0;
	for (uint32_t g = 0; g < kv->ngroups; g++)
		nsock += kv->groups[g].kind == IMAGE_KIND_SOCKET;
	if (!nsock || !kv->nsock_inos ||
	    (nsock < KVIEW_BULK_MIN && !(kv->flags & KVIEW_F_BULK)))
		return 0;
	for (size_t k = 0; k < sizeof(dumps) / sizeof(dumps[0]); k++) {
		uint32_t before = kv->ninet;
		int ret;

		kv->st.diag_dumps++;
		ret = inet_diag_dump(dumps[k].family, dumps[k].protocol,
				     keep_inet, kv);
		if (ret == -ENOMEM)
			return ret;
		if (ret < 0)
			kv->ninet = before; /* that family per socket */
	}
	qsort(kv->inet, kv->ninet, sizeof(*kv->inet), cmp_inet);
	/* A socket listed twice (it changed during the dumps): per socket. */
	for (uint32_t i = 0; i < kv->ninet; i++) {
		bool dup = (i > 0 && kv->inet[i - 1].ino == kv->inet[i].ino) ||
			   (i + 1 < kv->ninet &&
			    kv->inet[i + 1].ino == kv->inet[i].ino);

		if (!dup)
			kv->inet[kept++] = kv->inet[i];
	}
	kv->ninet = kept;
	return 0;
}

/* What the bulk dumps showed of the socket with inode ino, or NULL. */
static const struct inet_diag_sock *inet_of(const struct kv *kv, uint64_t ino)
{
	struct inet_diag_sock key = { .ino = ino };

	if (!ino || !kv->ninet)
		return NULL;
	return bsearch(&key, kv->inet, kv->ninet, sizeof(key), cmp_inet);
}

/* Bytes of an AF_UNIX address's sun_path (out of line: never more). */
static int sun_len(const struct image_socket *s)
{
	size_t off = offsetof(struct sockaddr_un, sun_path);

	return s->addr_len > off ? (int)(s->addr_len - off) : 0;
}

/*
 * An AF_UNIX socket bound to a path: where its file is now (its mode
 * recorded, a new name after a rename), with a diagnostic when it was
 * renamed or can be reached at no path.  Returns 0 or -ENOMEM.
 */
static int unix_file_of(struct kv *kv, struct image_target *t, int dumped_fd,
			int fd)
{
	char old_name[128], cwd[64];
	int cwd_fd = AT_FDCWD, ret = 0;
	enum kind_unix_file where;

	if (!kv->self) {
		snprintf(cwd, sizeof(cwd), "/proc/%d/cwd", (int)kv->kpid);
		cwd_fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (cwd_fd < 0)
			return 0;
	}
	where = kind_socket_unix_file(&t->u.sock, fd, cwd_fd, old_name,
				      sizeof(old_name));
	if (cwd_fd >= 0)
		close(cwd_fd);
	if (where == KIND_UNIX_FILE_RENAMED)
		ret = image_add_diag(kv->img, IMAGE_SEV_INFO, IMAGE_DIAG_GENERIC,
				     -1, dumped_fd, t->path, IMAGE_NONE,
				     "fd %d: unix socket bound as %s was renamed to %.*s: the image records the name it has now",
				     dumped_fd, old_name, sun_len(&t->u.sock),
				     ((const struct sockaddr_un *)t->u.sock.addrp)
					     ->sun_path);
	else if (where == KIND_UNIX_FILE_UNREACHABLE)
		ret = image_add_diag(kv->img, IMAGE_SEV_WARNING,
				     IMAGE_DIAG_GENERIC, -1, dumped_fd, t->path,
				     IMAGE_NONE,
				     "fd %d: unix socket bound as %.*s can be reached at no path (its file was removed or moved to another directory): a restore would bind a name no client uses",
				     dumped_fd, sun_len(&t->u.sock),
				     ((const struct sockaddr_un *)t->u.sock.addrp)
					     ->sun_path);
	return ret;
}

/* Create the image target of group g, its fd entries, its description. */
int emit_group(struct kv *kv, struct kv_group *g)
{
	struct kv_fd *rep = &kv->fds[g->rep];
	char pathbuf[64];
	const char *path = fd_path(kv, rep, pathbuf, sizeof(pathbuf));
	struct image_target *t = image_add_target(kv->img, g->kind);
	bool copied;
	int ret, fd;

	if (!t)
		return -ENOMEM;
	g->target = t->id;
	t->origin = IMAGE_ORIGIN_KERNEL;
	if (path && !(t->path = strdup(path)))
		return -ENOMEM;
	fd = live_fd(kv, rep, &copied);
	const struct inet_diag_sock *d =
		g->kind == IMAGE_KIND_SOCKET ? inet_of(kv, rep->ino) : NULL;

	ret = d ? kind_socket_describe_bulk(t, fd, fd_text(kv, rep), d)
		: -EAGAIN;
	if (ret == 0)
		kv->st.bulk_sockets++;
	if (ret == -EAGAIN && fd >= 0 && rep->have_known &&
	    g->kind == IMAGE_KIND_SOCKET)
		ret = kind_socket_describe_known(t, fd, fd_text(kv, rep),
						 &rep->known);
	else if (ret == -EAGAIN)
		ret = kind_ops_of(g->kind)->describe(t, fd, fd_text(kv, rep));
	if (ret == 0 && fd >= 0 && g->kind == IMAGE_KIND_SOCKET)
		ret = unix_file_of(kv, t, rep->fd, fd);
	if (copied)
		close(fd);
	if (ret < 0 && image_add_diag(kv->img, IMAGE_SEV_WARNING,
				      IMAGE_DIAG_GENERIC, -1, rep->fd,
				      t->path, IMAGE_NONE,
				      "fd %d (%s): could not describe the %s: %s",
				      rep->fd, t->path ? t->path : "?",
				      image_kind_name(g->kind),
				      strerror(-ret)) < 0)
		return -ENOMEM;
	return 0;
}

int emit_fds(struct kv *kv)
{
	for (uint32_t i = 0; i < kv->nfds; i++) {
		const struct kv_fd *f = &kv->fds[i];
		struct image_fd *e;

		if (!f->group)
			continue;
		e = image_add_fd(kv->img);
		if (!e)
			return -ENOMEM;
		e->fd = f->fd;
		e->target = kv->groups[f->group - 1].target;
		e->fd_flags = (f->flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
	}
	return 0;
}

/*
 * Pipe ends of one pipe know each other when the image holds both: the
 * groups of one inode are neighbours in kv->by_ino (one pass, not a scan
 * of every group per pipe: 7% of a 10k server-shape dump's CPU).
 */
void pair_pipes(struct kv *kv)
{
	for (uint32_t i = 0; i < kv->ngroups;) {
		uint32_t j = i, pipes[3], np = 0;

		while (j < kv->ngroups &&
		       kv->groups[kv->by_ino[j]].ino ==
			       kv->groups[kv->by_ino[i]].ino) {
			const struct kv_group *g = &kv->groups[kv->by_ino[j]];

			if (g->kind == IMAGE_KIND_PIPE && np < 3)
				pipes[np++] = kv->by_ino[j];
			j++;
		}
		i = j;
		if (np != 2)
			continue;
		struct image_target *a = image_target_by_id(
			kv->img, kv->groups[pipes[0]].target);
		struct image_target *b = image_target_by_id(
			kv->img, kv->groups[pipes[1]].target);

		if (a && b && a->u.pipe.write_end != b->u.pipe.write_end) {
			a->u.pipe.peer = b->id;
			b->u.pipe.peer = a->id;
		}
	}
}

/* ---- socketpairs --------------------------------------------------------- */

/* Could f be an AF_UNIX socket?  Its kept fdinfo says so (`scm_fds:`). */
static bool fd_maybe_unix(const struct kv *kv, const struct kv_fd *f)
{
	const char *text = fd_text(kv, f);

	return f->cls == KV_CLASS_SOCK &&
	       (!text || fdinfo_value(text, "scm_fds:") != NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int cmp_usock(const void *a, const void *b)
{
	const struct kv_usock *x = a, *y = b;

	return (x->d.ino > y->d.ino) - (x->d.ino < y->d.ino);
}

static bool has_sock_ino(const struct kv *kv, uint64_t ino)
{
	return bsearch(&ino, kv->sock_inos, kv->nsock_inos, sizeof(uint64_t),
		       cmp_u64) != NULL;
}

/* The unix socket of the process with inode ino, or NULL. */
static struct kv_usock *usock_of(const struct kv *kv, uint64_t ino)
{
	struct kv_usock key = { .d.ino = ino };

	if (!ino || !kv->nusocks)
		return NULL;
	return bsearch(&key, kv->usocks, kv->nusocks, sizeof(key), cmp_usock);
}

/* unix_diag_dump() callback: keep the sockets some fd of ours holds. */
static int keep_usock(void *ctx, const struct unix_diag_sock *s)
{
	struct kv *kv = ctx;

	struct kv_usock *slot;

	if (!has_sock_ino(kv, s->ino))
		return 0;
	slot = image_array_grow((void **)&kv->usocks, &kv->nusocks,
				&kv->cap_usocks, sizeof(*kv->usocks),
				UINT32_MAX);
	if (!slot)
		return -ENOMEM;
	slot->d = *s;
	return 0;
}

/*
 * The inodes of every socket fd, and whether a relevant one may be a unix
 * socket (then the pairs are worth a sock_diag dump).  Returns that, or
 * -ENOMEM.
 */
static int collect_sock_inos(struct kv *kv)
{
	bool want = false;
	uint32_t n = 0;

	kv->sock_inos = malloc((kv->nfds ? kv->nfds : 1) * sizeof(uint64_t));
	if (!kv->sock_inos)
		return -ENOMEM;
	for (uint32_t i = 0; i < kv->nfds; i++) {
		const struct kv_fd *f = &kv->fds[i];

		if (f->cls != KV_CLASS_SOCK || !f->ino)
			continue;
		kv->sock_inos[n++] = f->ino;
		want = want || (f->relevant && fd_maybe_unix(kv, f));
	}
	qsort(kv->sock_inos, n, sizeof(uint64_t), cmp_u64);
	kv->nsock_inos = 0;
	for (uint32_t i = 0; i < n; i++)
		if (i == 0 || kv->sock_inos[i] != kv->sock_inos[i - 1])
			kv->sock_inos[kv->nsock_inos++] = kv->sock_inos[i];
	return want;
}

/*
 * Both ends of a socketpair held here: each the other's peer, neither
 * named (what socketpair() makes; an accepted connection to our own
 * listener has a name), of one type.
 */
static bool usock_pair_of(const struct kv *kv, const struct kv_usock *u,
			  struct kv_usock **peer)
{
	struct kv_usock *p = usock_of(kv, u->d.peer_ino);

	*peer = p;
	return p && p != u && p->d.peer_ino == u->d.ino && !u->d.named &&
	       !p->d.named && p->d.type == u->d.type;
}

/*
 * Find the socketpairs whose two ends this process holds, one of them
 * relevant: one sock_diag dump of the namespace's unix sockets (only when
 * a relevant fd may be a unix socket), kept for the process's socket
 * inodes.  The other end's fds become relevant too, so that the image
 * holds both ends at their numbers.  When sock_diag cannot be used, a
 * warning says the pairs are unknown.  Returns 0 or -errno (-ENOMEM).
 */
int find_socketpairs(struct kv *kv)
{
	int ret = collect_sock_inos(kv);

	if (ret <= 0)
		return ret;
	ret = unix_diag_dump(keep_usock, kv);
	if (ret == -ENOMEM)
		return ret;
	if (ret < 0) {
		kv->nusocks = 0;
		return image_add_diag(kv->img, IMAGE_SEV_WARNING,
				      IMAGE_DIAG_GENERIC, -1, -1, NULL,
				      IMAGE_NONE,
				      "the peers of unix sockets could not be read (sock_diag: %s): the ends of a socketpair are recorded as lone connected sockets",
				      strerror(-ret));
	}
	qsort(kv->usocks, kv->nusocks, sizeof(*kv->usocks), cmp_usock);
	for (uint32_t i = 0; i < kv->nfds; i++) {
		struct kv_fd *f = &kv->fds[i];
		struct kv_usock *u, *p;

		if (!f->relevant || f->cls != KV_CLASS_SOCK)
			continue;
		u = usock_of(kv, f->ino);
		if (u && !u->paired && usock_pair_of(kv, u, &p))
			u->paired = p->paired = true;
	}
	for (uint32_t i = 0; i < kv->nfds; i++) {
		struct kv_fd *f = &kv->fds[i];
		const struct kv_usock *u;

		if (f->relevant || f->cls != KV_CLASS_SOCK)
			continue;
		u = usock_of(kv, f->ino);
		if (u && u->paired) {
			f->relevant = true;
			f->kind = IMAGE_KIND_SOCKET;
			f->kind_known = true;
		}
	}
	return 0;
}

/* The socket group (index) with inode ino, or -1. */
static int32_t sock_group_of(const struct kv *kv, uint64_t ino)
{
	uint32_t lo = 0, hi = kv->ngroups;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (kv->groups[kv->by_ino[mid]].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < kv->ngroups && kv->groups[kv->by_ino[lo]].ino == ino; lo++)
		if (kv->groups[kv->by_ino[lo]].kind == IMAGE_KIND_SOCKET)
			return (int32_t)kv->by_ino[lo];
	return -1;
}

/*
 * One end of a pair: its flags, the other end's id, its queue, and what a
 * description from /proc alone could not say (domain, type).
 */
static void mark_pair_end(struct image_target *t, uint32_t peer,
			  const struct kv_usock *u)
{
	struct image_socket *s = &t->u.sock;

	s->flags |= IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED;
	s->pair = peer;
	s->pending = u->d.rqueue;
	if (s->domain == 0)
		s->domain = AF_UNIX;
	if (s->type == 0)
		s->type = u->d.type;
}

/* Socketpair ends found by find_socketpairs() name each other. */
void pair_sockets(struct kv *kv)
{
	for (uint32_t g = 0; g < kv->ngroups; g++) {
		const struct kv_group *ga = &kv->groups[g];
		const struct kv_usock *u, *p;
		struct image_target *ta, *tb;
		int32_t pg;

		if (ga->kind != IMAGE_KIND_SOCKET ||
		    !(u = usock_of(kv, ga->ino)) || !u->paired ||
		    !(p = usock_of(kv, u->d.peer_ino)) ||
		    (pg = sock_group_of(kv, p->d.ino)) < 0)
			continue;
		ta = image_target_by_id(kv->img, ga->target);
		tb = image_target_by_id(kv->img, kv->groups[pg].target);
		if (!ta || !tb || ta->id >= tb->id ||
		    (ta->u.sock.domain && ta->u.sock.domain != AF_UNIX) ||
		    (tb->u.sock.domain && tb->u.sock.domain != AF_UNIX))
			continue;
		mark_pair_end(ta, tb->id, u);
		mark_pair_end(tb, ta->id, p);
	}
}
