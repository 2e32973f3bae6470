// SPDX-License-Identifier: MIT
/*
 * The kernel's view of a process's epoll state.
 *
 * One pass reads /proc/PID/fdinfo/N of every fd (the only per-fd cost in the
 * common case): its `flags:`, `mnt_id:`, `ino:` and the keys that only one
 * kind prints (`tfd:` epoll, `eventfd-count:`, `clockid:` timerfd,
 * `sigmask:` signalfd).  The class of a mount (sockfs, pipefs, anon inodes,
 * anything else) and its device are learnt once per mount id through one
 * readlinkat and one fstatat.  Then:
 *   - fds holding an epoll set or a file with a watched inode are grouped
 *     into open file descriptions: by (kind, dev, ino, access mode,
 *     eventfd-id); a socket is one file per inode; other groups of several
 *     fds are sorted with kcmp(KCMP_FILE) and split where it says "not
 *     equal";
 *   - each watch is tied to the description it watches: the shim's word
 *     (hints), a socket inode at its tfd, or kcmp(KCMP_EPOLL_TFD) over the
 *     descriptions with the watched inode, the tfd's own first;
 *   - a watched file no fd holds gets a target guessed from (sdev, ino).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "escape.h"
#include "kind_internal.h"
#include "kview.h"
#include "unix_diag.h"

#define KVIEW_MAX_FDINFO (256u << 20) /* bytes of one fdinfo text read */
#define KVIEW_READ_BUF (64u << 10)    /* initial read buffer */
#define KVIEW_TEXT_KEEP 1024	      /* bytes of a non-epoll fdinfo kept */
#define KVIEW_MAX_ARENA (256u << 20)  /* bytes of kept texts and links */
#define KVIEW_MAX_EINTR 100	      /* retries of one interrupted call */
#define KVIEW_LINK_MAX 4096	      /* bytes of one link text */
#define KVIEW_MAX_FDS (1u << 22)      /* descriptors of one process */

/* Class of a mount: what every file on it is. */
enum kv_class {
	KV_CLASS_UNKNOWN = 0,
	KV_CLASS_SOCK,	/* sockfs: "socket:[INO]" */
	KV_CLASS_PIPE,	/* pipefs: "pipe:[INO]" */
	KV_CLASS_ANON,	/* anon inodes: "anon_inode:..." */
	KV_CLASS_PATH,	/* a real file system */
};

struct kv_mnt {
	int mnt_id;
	uint8_t cls;
	bool have_sdev;
	uint32_t sdev;	/* kernel dev_t encoding */
};

/* One descriptor of the process. */
struct kv_fd {
	int fd;
	int mnt_id;		/* -1 when fdinfo shows none */
	uint32_t flags;		/* fdinfo flags: f_flags | O_CLOEXEC of fd */
	uint32_t kind;		/* enum image_kind */
	uint32_t sdev;		/* valid with have_sdev */
	uint64_t ino;		/* fdinfo ino: */
	uint64_t efd_id;	/* eventfd-id + 1, 0 when none */
	size_t text_off;	/* kept fdinfo text in the arena */
	size_t link_off;	/* link text in the arena, with have_link */
	uint32_t set;		/* index + 1 in kv.sets for an epoll fd */
	uint32_t group;		/* index + 1 in kv.groups */
	uint8_t cls;		/* enum kv_class */
	bool have_sdev, have_text, have_link, kind_known, relevant;
};

/* The watches read from one epoll fd. */
struct kv_set {
	uint32_t fdi;		/* index in kv.fds */
	struct fdinfo_watch *w;
	uint32_t nw, cap;
};

/* One open file description: a target. */
struct kv_group {
	uint32_t kind;
	uint32_t first;		/* index in kv.members */
	uint32_t n;		/* members */
	uint32_t rep;		/* kv.fds index of its lowest fd */
	uint32_t target;	/* image target id */
	uint32_t claim;		/* stamp of the (set, tfd) that matched it */
	uint32_t set_claim;	/* stamp of the last set that matched it */
	uint64_t ino;
};

/* A unix socket of the process, as sock_diag shows it. */
struct kv_usock {
	struct unix_diag_sock d;
	bool paired;		/* one end of a socketpair held here */
};

/* What a watch's fdinfo line says its file is. */
struct kv_key {
	uint64_t ino;
	uint32_t sdev;
};

/* How one watch was resolved. */
struct kv_res {
	uint32_t group;		/* index + 1, 0 when no fd holds the file */
	uint32_t toff;		/* rank among the set's watches of its tfd */
	uint32_t run;		/* stamp of its (set, tfd) */
	bool pending;		/* stale: the other descriptions to scan */
};

struct kv {
	pid_t kpid;		/* pid for kcmp */
	bool self;
	unsigned flags;
	const struct kview_hints *hints;
	struct image *img;
	int fdinfo_dir, fd_dir, pidfd;
	char *buf;
	size_t buf_cap;
	char *arena;
	size_t arena_len, arena_cap;
	struct kv_fd *fds;
	uint32_t nfds;
	struct kv_mnt *mnts;
	uint32_t nmnts, cap_mnts, last_mnt;
	struct kv_set *sets;
	uint32_t nsets, cap_sets;
	struct kv_group *groups;
	uint32_t ngroups;
	uint32_t *members;
	uint32_t *by_ino;	/* group indices sorted by ino */
	struct kv_key *keys;	/* watched (ino, sdev), sorted, unique */
	size_t nkeys;
	bool have_sock_dev, have_pipe_dev, have_anon, learnt_pseudo;
	uint32_t sock_dev, pipe_dev, anon_dev;
	uint64_t anon_ino;
	size_t kind_link[IMAGE_KIND_COUNT]; /* arena offset + 1, learnt */
	bool kcmp_broken;
	int kcmp_failed_errno;	/* KCMP_FILE failure while grouping */
	struct kv_usock *usocks; /* the process's unix sockets, by inode */
	uint32_t nusocks, cap_usocks;
	uint64_t *sock_inos;	/* its socket fds' inodes, sorted, unique */
	uint32_t nsock_inos;
	uint32_t stamp;
	struct kview_stats st;
};

static __thread struct kview_stats kview_last;

void kview_last_stats(struct kview_stats *out)
{
	*out = kview_last;
}

/* ---- small helpers ------------------------------------------------------- */

static uint32_t kernel_dev(dev_t dev)
{
	return (major(dev) << 20) | minor(dev);
}

static long kv_kcmp(struct kv *kv, int type, unsigned long a,
		    unsigned long b)
{
	kv->st.kcmp_calls++;
	return syscall(SYS_kcmp, kv->kpid, kv->kpid, type, a, b);
}

/*
 * Append len bytes and a NUL to the arena; *off gets their offset.
 * Returns 0, -ENOMEM, or -E2BIG when the arena would pass its limit.
 */
static int arena_put(struct kv *kv, const char *s, size_t len, size_t *off)
{
	size_t need = kv->arena_len + len + 1;

	if (need > KVIEW_MAX_ARENA)
		return -E2BIG;
	if (need > kv->arena_cap) {
		size_t cap = kv->arena_cap ? kv->arena_cap : 65536;

		while (cap < need)
			cap *= 2;
		if (cap > KVIEW_MAX_ARENA)
			cap = KVIEW_MAX_ARENA;
		char *n = realloc(kv->arena, cap);

		if (!n)
			return -ENOMEM;
		kv->arena = n;
		kv->arena_cap = cap;
	}
	memcpy(kv->arena + kv->arena_len, s, len);
	kv->arena[kv->arena_len + len] = '\0';
	*off = kv->arena_len;
	kv->arena_len = need;
	return 0;
}

static const char *fd_text(const struct kv *kv, const struct kv_fd *f)
{
	return f->have_text ? kv->arena + f->text_off : NULL;
}

static const char *fd_link(const struct kv *kv, const struct kv_fd *f)
{
	return f->have_link ? kv->arena + f->link_off : NULL;
}

static void fd_name(char *name, size_t len, int fd)
{
	snprintf(name, len, "%d", fd);
}

/* readlinkat of /proc/PID/fd/N into buf; returns its length or -errno. */
static ssize_t kv_readlink(struct kv *kv, int fd, char *buf, size_t len)
{
	char name[16];
	ssize_t n;

	fd_name(name, sizeof(name), fd);
	kv->st.readlinks++;
	n = readlinkat(kv->fd_dir, name, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

/* Read and keep the link of fds[fdi].  Returns 0 or -errno. */
static int fd_learn_link(struct kv *kv, struct kv_fd *f)
{
	char link[KVIEW_LINK_MAX];
	ssize_t n;
	int ret;

	if (f->have_link)
		return 0;
	n = kv_readlink(kv, f->fd, link, sizeof(link));
	if (n < 0)
		return (int)n;
	ret = arena_put(kv, link, (size_t)n, &f->link_off);
	if (ret == 0)
		f->have_link = true;
	return ret;
}

/* fstatat of /proc/PID/fd/N. */
static int kv_stat(struct kv *kv, int fd, struct stat *st)
{
	char name[16];

	fd_name(name, sizeof(name), fd);
	kv->st.stats++;
	if (fstatat(kv->fd_dir, name, st, 0) < 0)
		return -errno;
	return 0;
}

/* ---- reading one fdinfo file --------------------------------------------- */

/*
 * Read /proc/PID/fdinfo/N into kv->buf (NUL-terminated), growing the buffer
 * up to KVIEW_MAX_FDINFO.  A read shorter than asked ends the text: proc
 * builds the whole text before the first byte is copied.  Returns the
 * length or -errno (-EFBIG past the limit).
 */
static ssize_t read_fdinfo(struct kv *kv, int fd)
{
	char name[16];
	size_t got = 0;
	int pfd, tries = 0;
	ssize_t ret;

	fd_name(name, sizeof(name), fd);
	pfd = openat(kv->fdinfo_dir, name, O_RDONLY | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	kv->st.fdinfo_reads++;
	for (;;) {
		size_t want = kv->buf_cap - 1 - got;
		ssize_t n = read(pfd, kv->buf + got, want);

		if (n < 0) {
			if (errno == EINTR && ++tries < KVIEW_MAX_EINTR)
				continue;
			ret = -errno;
			goto out_close;
		}
		got += (size_t)n;
		if ((size_t)n < want)
			break;
		if (kv->buf_cap >= KVIEW_MAX_FDINFO) {
			ret = -EFBIG;
			goto out_close;
		}
		size_t cap = kv->buf_cap * 2;
		char *nb = realloc(kv->buf, cap);

		if (!nb) {
			ret = -ENOMEM;
			goto out_close;
		}
		kv->buf = nb;
		kv->buf_cap = cap;
	}
	kv->buf[got] = '\0';
	ret = (ssize_t)got;
out_close:
	close(pfd);
	return ret;
}

/* What the header of one fdinfo text says. */
struct fd_header {
	uint64_t flags, mnt_id, ino, efd_id;
	bool have_flags, have_mnt, have_ino, have_efd_id;
	uint32_t kind;		/* from a key only one kind prints */
	size_t tfd_off;		/* offset of the first `tfd:` line, or len */
};

static bool line_is(const char *p, const char *key)
{
	return strncmp(p, key, strlen(key)) == 0;
}

/* Scan the lines before the first `tfd:` once. */
static void scan_header(const char *text, size_t len, struct fd_header *h)
{
	const char *p = text, *end = text + len;

	memset(h, 0, sizeof(*h));
	h->kind = UINT32_MAX;
	h->tfd_off = len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (line_is(p, "tfd:")) {
			h->kind = IMAGE_KIND_EPOLL;
			h->tfd_off = (size_t)(p - text);
			return;
		}
		if (line_is(p, "flags:"))
			h->have_flags = fdinfo_u64(p, "flags:", 8, &h->flags);
		else if (line_is(p, "mnt_id:"))
			h->have_mnt = fdinfo_u64(p, "mnt_id:", 10, &h->mnt_id);
		else if (line_is(p, "ino:"))
			h->have_ino = fdinfo_u64(p, "ino:", 10, &h->ino);
		else if (line_is(p, "eventfd-id:"))
			h->have_efd_id =
				fdinfo_u64(p, "eventfd-id:", 10, &h->efd_id);
		else if (line_is(p, "eventfd-count:"))
			h->kind = IMAGE_KIND_EVENTFD;
		else if (line_is(p, "clockid:"))
			h->kind = IMAGE_KIND_TIMERFD;
		else if (line_is(p, "sigmask:"))
			h->kind = IMAGE_KIND_SIGNALFD;
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* ---- mounts -------------------------------------------------------------- */

static uint8_t class_of_link(const char *link)
{
	uint64_t ino;

	if (kind_link_ino(link, "socket:", &ino))
		return KV_CLASS_SOCK;
	if (kind_link_ino(link, "pipe:", &ino))
		return KV_CLASS_PIPE;
	if (strncmp(link, "anon_inode:", 11) == 0)
		return KV_CLASS_ANON;
	return KV_CLASS_PATH;
}

/*
 * The class and device of f's mount, learnt from f itself (one readlinkat
 * and one fstatat) the first time the mount is seen.  Returns 0 or -errno.
 */
static int fd_learn_mount(struct kv *kv, struct kv_fd *f)
{
	struct stat st;
	struct kv_mnt *m = NULL;
	int ret;

	if (f->mnt_id >= 0) {
		if (kv->last_mnt < kv->nmnts &&
		    kv->mnts[kv->last_mnt].mnt_id == f->mnt_id)
			m = &kv->mnts[kv->last_mnt];
		for (uint32_t i = 0; !m && i < kv->nmnts; i++)
			if (kv->mnts[i].mnt_id == f->mnt_id) {
				m = &kv->mnts[i];
				kv->last_mnt = i;
			}
	}
	if (!m) {
		ret = fd_learn_link(kv, f);
		if (ret < 0)
			return ret;
		struct kv_mnt fresh = { .mnt_id = f->mnt_id,
					.cls = class_of_link(fd_link(kv, f)) };

		if (kv_stat(kv, f->fd, &st) == 0) {
			fresh.have_sdev = true;
			fresh.sdev = kernel_dev(st.st_dev);
		}
		if (f->mnt_id < 0) {
			/* No mount id: this fd alone. */
			f->cls = fresh.cls;
			f->have_sdev = fresh.have_sdev;
			f->sdev = fresh.sdev;
			return 0;
		}
		if (kv->nmnts == kv->cap_mnts) {
			uint32_t cap = kv->cap_mnts ? kv->cap_mnts * 2 : 16;
			struct kv_mnt *n =
				realloc(kv->mnts, cap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			kv->mnts = n;
			kv->cap_mnts = cap;
		}
		kv->last_mnt = kv->nmnts;
		m = &kv->mnts[kv->nmnts++];
		*m = fresh;
	}
	f->cls = m->cls;
	f->have_sdev = m->have_sdev;
	f->sdev = m->sdev;
	return 0;
}

/* ---- pass 1: every fd ---------------------------------------------------- */

static int set_add_watch(void *ctx, const struct fdinfo_watch *w)
{
	struct kv_set *s = ctx;

	if (s->nw == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 64;

		if (s->cap >= IMAGE_MAX_WATCHES)
			return -E2BIG;
		if (cap > IMAGE_MAX_WATCHES)
			cap = IMAGE_MAX_WATCHES;
		struct fdinfo_watch *n = realloc(s->w, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->w = n;
		s->cap = cap;
	}
	s->w[s->nw++] = *w;
	return 0;
}

/* Parse the watches of the epoll fd f, whose fdinfo is in kv->buf. */
static int fd_read_set(struct kv *kv, struct kv_fd *f, size_t tfd_off,
		       size_t len)
{
	struct kv_set *s;
	int ret;

	if (kv->nsets == kv->cap_sets) {
		uint32_t cap = kv->cap_sets ? kv->cap_sets * 2 : 8;
		struct kv_set *n = realloc(kv->sets, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		kv->sets = n;
		kv->cap_sets = cap;
	}
	s = &kv->sets[kv->nsets];
	memset(s, 0, sizeof(*s));
	s->fdi = (uint32_t)(f - kv->fds);
	f->set = ++kv->nsets;
	ret = fdinfo_parse_epoll(kv->buf + tfd_off, len - tfd_off, NULL,
				 set_add_watch, s);
	if (ret == -EINVAL)
		image_add_diag(kv->img, IMAGE_SEV_ERROR, IMAGE_DIAG_NO_PROC,
			       f->fd, -1, NULL, IMAGE_NONE,
			       "epoll fd %d: malformed tfd line in its fdinfo after %u watches; the rest of this set is left out",
			       f->fd, s->nw);
	else if (ret < 0)
		return ret;
	return 0;
}

/*
 * Read fd's fdinfo, keep what later passes need.  Returns 0, 1 when the fd
 * vanished meanwhile (skip it), or -errno.
 */
static int fd_read(struct kv *kv, struct kv_fd *f)
{
	struct fd_header h;
	ssize_t len = read_fdinfo(kv, f->fd);
	size_t keep;
	int ret;

	if (len == -ENOENT || len == -EBADF)
		return 1;
	if (len < 0)
		return (int)len;
	scan_header(kv->buf, (size_t)len, &h);
	f->flags = h.have_flags ? (uint32_t)h.flags : 0;
	f->mnt_id = h.have_mnt && h.mnt_id <= INT_MAX ? (int)h.mnt_id : -1;
	f->ino = h.ino;
	f->efd_id = h.have_efd_id && h.efd_id < UINT64_MAX ? h.efd_id + 1 : 0;
	ret = fd_learn_mount(kv, f);
	if (ret == -ENOENT || ret == -EBADF)
		return 1;
	if (ret < 0)
		return ret;
	if (f->cls == KV_CLASS_SOCK) {
		f->kind = IMAGE_KIND_SOCKET;
		f->kind_known = true;
	} else if (f->cls == KV_CLASS_PIPE) {
		f->kind = IMAGE_KIND_PIPE;
		f->kind_known = true;
	} else if (f->cls == KV_CLASS_ANON) {
		if (h.kind == UINT32_MAX) {
			/* Nothing in fdinfo says: the link does. */
			ret = fd_learn_link(kv, f);
			if (ret == -ENOENT || ret == -EBADF)
				return 1;
			if (ret < 0)
				return ret;
			h.kind = kind_from_link(fd_link(kv, f));
		}
		f->kind = h.kind;
		f->kind_known = true;
	} else {
		f->kind = IMAGE_KIND_OTHER; /* FIFO or not: decided if needed */
	}
	/* Keep the header (an epoll fd) or the start of the text. */
	keep = h.tfd_off < (size_t)len ? h.tfd_off : (size_t)len;
	if (keep > KVIEW_TEXT_KEEP) {
		const char *cut = kv->buf + KVIEW_TEXT_KEEP;

		while (cut > kv->buf && cut[-1] != '\n')
			cut--;
		keep = (size_t)(cut - kv->buf);
	}
	ret = arena_put(kv, kv->buf, keep, &f->text_off);
	if (ret < 0 && ret != -E2BIG)
		return ret;
	f->have_text = ret == 0;
	if (f->kind == IMAGE_KIND_EPOLL) {
		f->relevant = true;
		if (!kv->have_anon && f->have_sdev) {
			kv->have_anon = true;
			kv->anon_ino = f->ino;
			kv->anon_dev = f->sdev;
		}
		return fd_read_set(kv, f, h.tfd_off, (size_t)len);
	}
	return 0;
}

/* List the fds of the process, sorted, into kv->fds. */
static int list_fds(struct kv *kv)
{
	char dbuf[32768];
	uint32_t cap = 0;

	if (lseek(kv->fdinfo_dir, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t n = getdents64(kv->fdinfo_dir, dbuf, sizeof(dbuf));

		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *de = (struct dirent64 *)(dbuf + off);
			uint64_t v;
			size_t used, len = strlen(de->d_name);

			off += de->d_reclen;
			if (!fdinfo_parse_number(de->d_name, len, 10, 10, &v,
						 &used) ||
			    used != len || v > INT_MAX)
				continue;
			if (kv->self && ((int)v == kv->fdinfo_dir ||
					 (int)v == kv->fd_dir ||
					 (int)v == kv->pidfd))
				continue;
			if (kv->nfds == cap) {
				if (cap >= KVIEW_MAX_FDS)
					return -EMFILE;
				cap = cap ? cap * 2 : 256;
				struct kv_fd *nf =
					realloc(kv->fds, cap * sizeof(*nf));

				if (!nf)
					return -ENOMEM;
				kv->fds = nf;
			}
			memset(&kv->fds[kv->nfds], 0, sizeof(kv->fds[0]));
			kv->fds[kv->nfds++].fd = (int)v;
		}
	}
	return 0;
}

static int cmp_fd(const void *a, const void *b)
{
	const struct kv_fd *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

/* Pass 1: list and read every fd; drop the ones that vanished. */
static int read_all_fds(struct kv *kv)
{
	uint32_t kept = 0;
	int ret = list_fds(kv);

	if (ret < 0)
		return ret;
	if (kv->nfds)
		qsort(kv->fds, kv->nfds, sizeof(kv->fds[0]), cmp_fd);
	for (uint32_t i = 0; i < kv->nfds; i++) {
		if (kept > 0 && kv->fds[kept - 1].fd == kv->fds[i].fd)
			continue; /* listed twice while the table changed */
		kv->fds[kept] = kv->fds[i];
		ret = fd_read(kv, &kv->fds[kept]);
		if (ret < 0)
			return ret;
		if (ret == 0) {
			if (kv->fds[kept].set)
				kv->sets[kv->fds[kept].set - 1].fdi = kept;
			kept++;
		}
	}
	kv->nfds = kept;
	kv->st.fds = kept;
	return 0;
}

/* The kv.fds index of fd, or -1. */
static int32_t find_fd(const struct kv *kv, int fd)
{
	uint32_t lo = 0, hi = kv->nfds;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (kv->fds[mid].fd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < kv->nfds && kv->fds[lo].fd == fd ? (int32_t)lo : -1;
}

/* ---- pass 2: which fds matter -------------------------------------------- */

static int cmp_key(const void *a, const void *b)
{
	const struct kv_key *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return (x->sdev > y->sdev) - (x->sdev < y->sdev);
}

/* Is (ino, sdev) watched?  With any_dev, is ino watched on any device? */
static bool key_watched(const struct kv *kv, uint64_t ino, uint32_t sdev,
			bool any_dev)
{
	size_t lo = 0, hi = kv->nkeys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (kv->keys[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < kv->nkeys && kv->keys[i].ino == ino; i++)
		if (any_dev || kv->keys[i].sdev == sdev)
			return true;
	return false;
}

/* Collect the watched (inode, device) pairs, sorted, unique. */
static int collect_keys(struct kv *kv)
{
	size_t n = 0, u = 0;

	for (uint32_t s = 0; s < kv->nsets; s++)
		n += kv->sets[s].nw;
	kv->keys = malloc((n ? n : 1) * sizeof(*kv->keys));
	if (!kv->keys)
		return -ENOMEM;
	for (uint32_t s = 0; s < kv->nsets; s++)
		for (uint32_t i = 0; i < kv->sets[s].nw; i++) {
			kv->keys[u].ino = kv->sets[s].w[i].ino;
			kv->keys[u++].sdev = kv->sets[s].w[i].sdev;
		}
	qsort(kv->keys, u, sizeof(*kv->keys), cmp_key);
	kv->nkeys = 0;
	for (size_t i = 0; i < u; i++)
		if (kv->nkeys == 0 || cmp_key(&kv->keys[kv->nkeys - 1],
					      &kv->keys[i]) != 0)
			kv->keys[kv->nkeys++] = kv->keys[i];
	return 0;
}

/*
 * A fd on a real file system whose inode number is watched: its own device
 * and mode (a FIFO is a pipe, the rest "other") and its link.  Returns
 * whether it holds a watched (inode, device), or -errno.
 */
static int finish_path_fd(struct kv *kv, struct kv_fd *f)
{
	struct stat st;
	int ret;

	f->kind_known = true;
	if (kv_stat(kv, f->fd, &st) < 0)
		return 0;
	f->kind = S_ISFIFO(st.st_mode) ? IMAGE_KIND_PIPE : IMAGE_KIND_OTHER;
	f->ino = st.st_ino;
	f->sdev = kernel_dev(st.st_dev);
	f->have_sdev = true;
	ret = fd_learn_link(kv, f);
	if (ret < 0 && ret != -ENOENT && ret != -EBADF && ret != -E2BIG)
		return ret;
	return key_watched(kv, f->ino, f->sdev, false);
}

/* Mark the fds that hold an epoll set or a watched file. */
static int mark_relevant(struct kv *kv)
{
	bool all = kv->flags & KVIEW_F_ALL_FDS;
	int ret = collect_keys(kv);

	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < kv->nfds; i++) {
		struct kv_fd *f = &kv->fds[i];

		if (f->cls == KV_CLASS_SOCK && f->have_sdev) {
			kv->have_sock_dev = true;
			kv->sock_dev = f->sdev;
		} else if (f->cls == KV_CLASS_PIPE && f->have_sdev) {
			kv->have_pipe_dev = true;
			kv->pipe_dev = f->sdev;
		}
		if (f->relevant)
			continue;
		if (f->kind_known) {
			f->relevant = all || key_watched(kv, f->ino, f->sdev,
							 false);
			continue;
		}
		if (!all && !key_watched(kv, f->ino, 0, true))
			continue;
		ret = finish_path_fd(kv, f);
		if (ret < 0)
			return ret;
		f->relevant = all || ret;
	}
	return 0;
}

/* ---- pass 3: open file descriptions -------------------------------------- */

static int cmp_group_key(const void *a, const void *b, void *ctx)
{
	const struct kv *kv = ctx;
	const struct kv_fd *x = &kv->fds[*(const uint32_t *)a];
	const struct kv_fd *y = &kv->fds[*(const uint32_t *)b];
	uint32_t xm = x->flags & O_ACCMODE, ym = y->flags & O_ACCMODE;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->sdev != y->sdev)
		return x->sdev < y->sdev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (xm != ym)
		return xm < ym ? -1 : 1;
	if (x->efd_id != y->efd_id)
		return x->efd_id < y->efd_id ? -1 : 1;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

static bool same_group_key(const struct kv_fd *x, const struct kv_fd *y)
{
	return x->kind == y->kind && x->sdev == y->sdev && x->ino == y->ino &&
	       (x->flags & O_ACCMODE) == (y->flags & O_ACCMODE) &&
	       x->efd_id == y->efd_id;
}

/*
 * kcmp(KCMP_FILE) as a comparator of two kv.fds indexes: -1, 0, 1.  A
 * failure is remembered in kv->kcmp_failed_errno and orders by fd number.
 */
/* Was kv.fds[i] closed since it was read?  (kcmp of an fd with itself.) */
static bool fd_vanished(struct kv *kv, uint32_t i)
{
	unsigned long fd = (unsigned long)kv->fds[i].fd;

	return kv_kcmp(kv, KCMP_FILE, fd, fd) < 0 && errno == EBADF;
}

static int cmp_file(struct kv *kv, uint32_t a, uint32_t b)
{
	long r;

	if (kv->kcmp_failed_errno)
		return (a > b) - (a < b);
	r = kv_kcmp(kv, KCMP_FILE, (unsigned long)kv->fds[a].fd,
		    (unsigned long)kv->fds[b].fd);
	if (r == 0)
		return 0;
	if (r == 1)
		return -1;
	if (r == 2)
		return 1;
	if (r < 0 && errno == EBADF) {
		/*
		 * Closed since it was read: a file without watches, whose
		 * close a dump does not hold back.  It stays a file of its
		 * own, after the live ones; kcmp stays usable.
		 */
		bool a_gone = fd_vanished(kv, a), b_gone = fd_vanished(kv, b);

		if (a_gone != b_gone)
			return a_gone ? 1 : -1;
		if (a_gone)
			return (a > b) - (a < b);
		errno = EBADF;
	}
	kv->kcmp_failed_errno = r < 0 ? errno : EINVAL;
	return (a > b) - (a < b);
}

/*
 * Bottom-up merge sort of v[0..n) (tmp has room for n) by cmp_file.  Safe
 * whatever the comparator answers: every index stays in bounds.
 */
static void sort_by_file(struct kv *kv, uint32_t *v, uint32_t n,
			 uint32_t *tmp)
{
	for (uint32_t width = 1; width < n; width *= 2) {
		for (uint32_t lo = 0; lo < n; lo += 2 * width) {
			uint32_t mid = lo + width < n ? lo + width : n;
			uint32_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			uint32_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				tmp[k++] = cmp_file(kv, v[j], v[i]) < 0
						   ? v[j++]
						   : v[i++];
			while (i < mid)
				tmp[k++] = v[i++];
			while (j < hi)
				tmp[k++] = v[j++];
		}
		memcpy(v, tmp, n * sizeof(*v));
		if (width > UINT32_MAX / 2)
			break;
	}
}

/* Close the group of members[first..first+n) (all the same file). */
static void add_group(struct kv *kv, uint32_t first, uint32_t n)
{
	struct kv_group *g = &kv->groups[kv->ngroups++];
	uint32_t rep = kv->members[first];

	for (uint32_t i = first; i < first + n; i++) {
		uint32_t fi = kv->members[i];

		if (kv->fds[fi].fd < kv->fds[rep].fd)
			rep = fi;
		kv->fds[fi].group = kv->ngroups;
	}
	memset(g, 0, sizeof(*g));
	g->kind = kv->fds[rep].kind;
	g->first = first;
	g->n = n;
	g->rep = rep;
	g->ino = kv->fds[rep].ino;
}

/* Split one run of fds with the same key into open file descriptions. */
static void group_run(struct kv *kv, uint32_t first, uint32_t n,
		      uint32_t *tmp)
{
	const struct kv_fd *f = &kv->fds[kv->members[first]];
	uint32_t start = first;

	if (n == 1 || f->kind == IMAGE_KIND_SOCKET || f->efd_id) {
		add_group(kv, first, n);
		return;
	}
	sort_by_file(kv, kv->members + first, n, tmp);
	for (uint32_t i = first + 1; i <= first + n; i++) {
		if (i < first + n && !kv->kcmp_failed_errno &&
		    cmp_file(kv, kv->members[i - 1], kv->members[i]) == 0)
			continue;
		add_group(kv, start, i - start);
		start = i;
	}
}

static int cmp_group_rep(const void *a, const void *b, void *ctx)
{
	const struct kv *kv = ctx;
	const struct kv_group *x = a, *y = b;
	int xf = kv->fds[x->rep].fd, yf = kv->fds[y->rep].fd;

	return (xf > yf) - (xf < yf);
}

static int cmp_group_ino(const void *a, const void *b, void *ctx)
{
	const struct kv *kv = ctx;
	const struct kv_group *x = &kv->groups[*(const uint32_t *)a];
	const struct kv_group *y = &kv->groups[*(const uint32_t *)b];

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return (x->rep > y->rep) - (x->rep < y->rep);
}

/* Group the relevant fds into open file descriptions. */
static int group_fds(struct kv *kv)
{
	uint32_t n = 0, *tmp;

	kv->members = malloc((kv->nfds ? kv->nfds : 1) * sizeof(uint32_t));
	tmp = malloc((kv->nfds ? kv->nfds : 1) * sizeof(uint32_t));
	kv->groups = malloc((kv->nfds ? kv->nfds : 1) * sizeof(*kv->groups));
	if (!kv->members || !tmp || !kv->groups) {
		free(tmp);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < kv->nfds; i++)
		if (kv->fds[i].relevant)
			kv->members[n++] = i;
	qsort_r(kv->members, n, sizeof(uint32_t), cmp_group_key, kv);
	for (uint32_t i = 0; i < n;) {
		uint32_t j = i + 1;

		while (j < n && same_group_key(&kv->fds[kv->members[i]],
					       &kv->fds[kv->members[j]]))
			j++;
		group_run(kv, i, j - i, tmp);
		i = j;
	}
	free(tmp);
	if (kv->kcmp_failed_errno &&
	    image_add_diag(kv->img, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC, -1,
			   -1, NULL, IMAGE_NONE,
			   "kcmp(KCMP_FILE) failed (%s): descriptors of one file may be listed as separate targets",
			   strerror(kv->kcmp_failed_errno)) < 0)
		return -ENOMEM;
	/* Targets in the order of their lowest fd. */
	qsort_r(kv->groups, kv->ngroups, sizeof(*kv->groups), cmp_group_rep,
		kv);
	for (uint32_t g = 0; g < kv->ngroups; g++)
		for (uint32_t i = 0; i < kv->groups[g].n; i++)
			kv->fds[kv->members[kv->groups[g].first + i]].group =
				g + 1;
	kv->by_ino = malloc((kv->ngroups ? kv->ngroups : 1) *
			    sizeof(uint32_t));
	if (!kv->by_ino)
		return -ENOMEM;
	for (uint32_t g = 0; g < kv->ngroups; g++)
		kv->by_ino[g] = g;
	qsort_r(kv->by_ino, kv->ngroups, sizeof(uint32_t), cmp_group_ino, kv);
	return 0;
}

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

/* Create the image target of group g, its fd entries, its description. */
static int emit_group(struct kv *kv, struct kv_group *g)
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
	ret = kind_ops_of(g->kind)->describe(t, fd, fd_text(kv, rep));
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

static int emit_fds(struct kv *kv)
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

/* Pipe ends of one pipe know each other when the image holds both. */
static void pair_pipes(struct kv *kv)
{
	for (uint32_t a = 0; a < kv->ngroups; a++) {
		const struct kv_group *ga = &kv->groups[a];
		uint32_t peer = 0, found = 0;

		if (ga->kind != IMAGE_KIND_PIPE)
			continue;
		for (uint32_t b = 0; b < kv->ngroups && found < 2; b++) {
			const struct kv_group *gb = &kv->groups[b];

			if (b == a || gb->kind != IMAGE_KIND_PIPE ||
			    gb->ino != ga->ino)
				continue;
			found++;
			peer = gb->target;
		}
		struct image_target *t = image_target_by_id(kv->img,
							    ga->target);
		struct image_target *p = image_target_by_id(kv->img, peer);

		if (found == 1 && t && p &&
		    t->u.pipe.write_end != p->u.pipe.write_end)
			t->u.pipe.peer = peer;
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

	if (!has_sock_ino(kv, s->ino))
		return 0;
	if (kv->nusocks == kv->cap_usocks) {
		uint32_t cap = kv->cap_usocks ? kv->cap_usocks * 2 : 16;
		struct kv_usock *n = realloc(kv->usocks, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		kv->usocks = n;
		kv->cap_usocks = cap;
	}
	kv->usocks[kv->nusocks++] = (struct kv_usock){ .d = *s };
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
static int find_socketpairs(struct kv *kv)
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
static void pair_sockets(struct kv *kv)
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
		snprintf(path, sizeof(path), "anon_inode:[?]");
	}
	t = image_add_target(kv->img, kind);
	if (!t)
		return IMAGE_NONE;
	t->origin = IMAGE_ORIGIN_KERNEL;
	if (path[0] && !(t->path = strdup(path)))
		return IMAGE_NONE;
	if (kind == IMAGE_KIND_SOCKET)
		t->u.sock.backlog = -1;
	else if (kind == IMAGE_KIND_PIPE)
		t->u.pipe.ino = w->ino;
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
	if (r == TRY_GONE)
		return image_add_diag(kv->img, IMAGE_SEV_WARNING,
				      IMAGE_DIAG_GENERIC, epfd, w->tfd, NULL,
				      IMAGE_NONE,
				      "epoll fd %d: the watch of tfd %d changed while it was read; its file is unknown",
				      epfd, w->tfd);
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
 * again from the new text when its watches changed: at most
 * KVIEW_SET_READS reads; the last resolution stays, diagnostics included.
 * Returns 0 or -ENOMEM.
 */
#define KVIEW_SET_READS 4

static int resolve_set_stable(struct kv *kv, struct kv_set *s,
			      struct kv_res **res, uint32_t **order,
			      uint32_t *cap)
{
	for (int reads = 1;; reads++) {
		uint32_t diags = kv->img->ndiags, kcmps = kv->st.kcmp_calls;
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
		if (ret <= 0)
			return ret;
		drop_diags_since(kv->img, diags);
	}
}

/* Resolve and emit the watches of every set, in target order. */
static int emit_watches(struct kv *kv)
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

/* ---- the snapshot -------------------------------------------------------- */

static int open_proc(struct kv *kv, pid_t pid)
{
	char path[64];

	if (kv->self)
		snprintf(path, sizeof(path), "/proc/thread-self");
	else
		snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dir < 0)
		return -errno;
	kv->fdinfo_dir = openat(dir, "fdinfo", O_RDONLY | O_DIRECTORY |
						       O_CLOEXEC);
	if (kv->fdinfo_dir < 0) {
		int ret = -errno;

		close(dir);
		return ret;
	}
	kv->fd_dir = openat(dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dir);
	if (kv->fd_dir < 0)
		return -errno;
	if (!kv->self)
		kv->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
}

static void kv_free(struct kv *kv)
{
	if (kv->fdinfo_dir >= 0)
		close(kv->fdinfo_dir);
	if (kv->fd_dir >= 0)
		close(kv->fd_dir);
	if (kv->pidfd >= 0)
		close(kv->pidfd);
	for (uint32_t s = 0; s < kv->nsets; s++)
		free(kv->sets[s].w);
	free(kv->sets);
	free(kv->buf);
	free(kv->arena);
	free(kv->fds);
	free(kv->mnts);
	free(kv->groups);
	free(kv->members);
	free(kv->by_ino);
	free(kv->keys);
	free(kv->usocks);
	free(kv->sock_inos);
}

int kview_snapshot(pid_t pid, struct image *img, unsigned flags,
		   const struct kview_hints *hints)
{
	struct kv kv = {
		.fdinfo_dir = -1,
		.fd_dir = -1,
		.pidfd = -1,
		.flags = flags,
		.hints = hints,
		.img = img,
	};
	int ret;

	if (pid < 0)
		return -EINVAL;
	kv.self = pid == 0 || pid == getpid();
	kv.kpid = kv.self ? (pid_t)syscall(SYS_gettid) : pid;
	ret = open_proc(&kv, pid == 0 ? getpid() : pid);
	if (ret < 0)
		goto out;
	kv.buf_cap = KVIEW_READ_BUF;
	kv.buf = malloc(kv.buf_cap);
	if (!kv.buf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = read_all_fds(&kv);
	if (ret == 0)
		ret = mark_relevant(&kv);
	if (ret == 0)
		ret = find_socketpairs(&kv);
	if (ret == 0)
		ret = group_fds(&kv);
	for (uint32_t g = 0; ret == 0 && g < kv.ngroups; g++)
		ret = emit_group(&kv, &kv.groups[g]);
	if (ret == 0)
		ret = emit_fds(&kv);
	if (ret == 0) {
		pair_pipes(&kv);
		pair_sockets(&kv);
		ret = emit_watches(&kv);
	}
	if (ret == 0)
		img->flags |= IMAGE_F_KERNEL_VIEW;
out:
	kview_last = kv.st;
	kv_free(&kv);
	return ret;
}

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

/* Write one difference line and count it. */
static void diff_line(struct cmp *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void diff_line(struct cmp *c, const char *fmt, ...)
{
	char raw[CMP_LINE_MAX], line[CMP_LINE_MAX];
	va_list ap;
	int n;

	c->count++;
	if (c->out_fd < 0 || c->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
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
 * A socketpair end: the other end the image names must be this end's other
 * end in actual too, at the same numbers with the same fd flags and
 * O_NONBLOCK.  Queued bytes are not compared: the program moves them.
 */
static void compare_pair(struct cmp *c, int epfd, int tfd,
			 const struct image_target *te,
			 const struct image_target *ta)
{
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
	if ((pe->file_flags ^ pa->file_flags) & O_NONBLOCK)
		diff_line(c, "epfd %d tfd %d: socketpair other end's O_NONBLOCK expected %s, actual %s",
			  epfd, tfd, pe->file_flags & O_NONBLOCK ? "on" : "off",
			  pa->file_flags & O_NONBLOCK ? "on" : "off");
}

/* Compare a watched target once: description, fds, file flags. */
static void compare_target(struct cmp *c, int epfd, int tfd,
			   const struct image_target *te,
			   const struct image_target *ta)
{
	const uint32_t fl_mask = O_ACCMODE | O_NONBLOCK;
	char diff[256], exp[160], act[160];
	uint32_t first;

	if (te->kind != ta->kind) {
		diff_line(c, "epfd %d tfd %d: target kind expected %s, actual %s",
			  epfd, tfd, image_kind_name(te->kind),
			  image_kind_name(ta->kind));
		return;
	}
	if (c->done[te->id - 1])
		return;
	c->done[te->id - 1] = 1;
	diff[0] = '\0';
	if (te->kind != IMAGE_KIND_EPOLL &&
	    !kind_ops_of(te->kind)->same(te, ta, diff, sizeof(diff)))
		diff_line(c, "epfd %d tfd %d: target %s differs: %s", epfd,
			  tfd, image_kind_name(te->kind), diff);
	if (!same_fds(c, te->id, ta->id, exp, act, sizeof(exp)))
		diff_line(c, "epfd %d tfd %d: target fds expected %s, actual %s",
			  epfd, tfd, exp, act);
	if (cmp_fds_of(&c->e, te->id, &first) != first &&
	    cmp_fds_of(&c->a, ta->id, &first) != first &&
	    (te->file_flags & fl_mask) != (ta->file_flags & fl_mask))
		diff_line(c, "epfd %d tfd %d: target file flags expected 0%o, actual 0%o",
			  epfd, tfd, te->file_flags & fl_mask,
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
	if (we->open_fd != wa->open_fd)
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

	if (we->events != wa->events || we->data != wa->data ||
	    we->open_fd != wa->open_fd || !te || !ta || te->kind != ta->kind)
		return false;
	return te->kind == IMAGE_KIND_EPOLL ||
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
