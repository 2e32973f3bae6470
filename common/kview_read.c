// SPDX-License-Identifier: MIT
/*
 * Kernel view, pass 1: read every descriptor of the process.  One
 * /proc/PID/fdinfo/N read per fd gives its flags, mount id, inode and the
 * keys one kind prints; the class and device of each mount are learnt once
 * per mount id; an epoll fd's `tfd:` lines become its set's watches.
 */
#include "kview_internal.h"
#include "ownfd.h"

/* ---- reading one fdinfo file --------------------------------------------- */

/*
 * Read /proc/PID/fdinfo/N into kv->buf (NUL-terminated), growing the buffer
 * up to KVIEW_MAX_FDINFO.  A read shorter than asked ends the text: proc
 * builds the whole text before the first byte is copied.  Returns the
 * length or -errno (-EFBIG past the limit).
 */
ssize_t read_fdinfo(struct kv *kv, int fd)
{
	char name[16];
	size_t got = 0;
	int pfd, tries = 0;
	ssize_t ret;

	fd_name(name, sizeof(name), fd);
	/* Read and closed at once: held, not moved (ownfd.h). */
	own_fd_hold();
	pfd = openat(kv->fdinfo_dir, name, O_RDONLY | O_CLOEXEC);
	if (pfd < 0) {
		ret = -errno;
		own_fd_release();
		return ret;
	}
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
	own_fd_release();
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

int set_add_watch(void *ctx, const struct fdinfo_watch *w)
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
 * A socket or a pipe of the calling process that the shadow knows
 * (kview_hints.fd_facts): its flags from the shadow, its inode and device
 * from fstat, and for the kind's describe() a text holding what its
 * fdinfo would say of them (`flags:`, `ino:`, and `scm_fds:` for an
 * AF_UNIX socket, which fd_maybe_unix() looks for).  Returns 0 when f is
 * filled, 1 when it must be read as any other fd (the shadow does not
 * know it, or fstat says another kind), 2 when the fd vanished, or -errno.
 */
static int fd_from_shadow(struct kv *kv, struct kv_fd *f)
{
	const struct kview_hints *h = kv->hints;
	struct kview_fd_facts facts = { .domain = -1, .type = -1,
					.protocol = -1, .listening = -1 };
	char text[96];
	struct stat st;
	int n, ret;

	if (!kv->self || !h || !h->fd_facts || (kv->flags & KVIEW_F_PER_FD) ||
	    !h->fd_facts(h->ctx, f->fd, &facts))
		return 1;
	if (facts.kind != IMAGE_KIND_SOCKET && facts.kind != IMAGE_KIND_PIPE)
		return 1;
	if (facts.kind == IMAGE_KIND_SOCKET && facts.domain < 0)
		return 1;
	kv->st.stats++;
	/*
	 * The raw syscall: a sanitizer's fstat() would count this as a use of
	 * the program's descriptor and report it as racing with whichever of
	 * the program's threads created it (ThreadSanitizer in test_stress: a
	 * number another thread's pipe2 had just been given while the shadow
	 * still held the record of the file closed there before, since the
	 * bookkeeping of an unwatched file's close does not hold the cut
	 * off).  The kernel is the judge of what is there: the kind from
	 * st_mode below, the inode against the sets' fdinfo.  What the shadow
	 * can get wrong in that window is the flags of an fd that no watch
	 * names: docs/limitations.md.
	 */
	if (syscall(SYS_fstat, f->fd, &st) < 0)
		return errno == EBADF ? 2 : 1;
	if (facts.kind == IMAGE_KIND_SOCKET ? !S_ISSOCK(st.st_mode)
					    : !S_ISFIFO(st.st_mode))
		return 1; /* the kernel disagrees: ask it */
	f->flags = facts.flags;
	f->mnt_id = -1;
	f->ino = st.st_ino;
	f->efd_id = 0;
	f->sdev = kernel_dev(st.st_dev);
	f->have_sdev = true;
	f->kind = facts.kind;
	f->kind_known = true;
	f->cls = facts.kind == IMAGE_KIND_SOCKET ? KV_CLASS_SOCK
						 : KV_CLASS_PIPE;
	if (facts.kind == IMAGE_KIND_SOCKET) {
		f->have_known = true;
		f->known.type = facts.type;
		f->known.protocol = facts.protocol;
		f->known.listening = facts.listening;
	}
	n = snprintf(text, sizeof(text), "flags:\t0%o\nino:\t%" PRIu64 "\n%s",
		     (unsigned)facts.flags, (uint64_t)st.st_ino,
		     facts.kind == IMAGE_KIND_SOCKET && facts.domain == AF_UNIX
			     ? "scm_fds:\t0\n"
			     : "");
	ret = arena_put(kv, text, (size_t)n, &f->text_off);
	if (ret < 0 && ret != -E2BIG)
		return ret;
	f->have_text = ret == 0;
	kv->st.shadow_fds++;
	return 0;
}

/*
 * Read fd's fdinfo, keep what later passes need.  Returns 0, 1 when the fd
 * vanished meanwhile (skip it), or -errno.
 */
static int fd_read(struct kv *kv, struct kv_fd *f)
{
	struct fd_header h;
	ssize_t len;
	size_t keep;
	int ret = fd_from_shadow(kv, f);

	if (ret <= 0)
		return ret;
	if (ret == 2)
		return 1;
	len = read_fdinfo(kv, f->fd);
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
int read_all_fds(struct kv *kv)
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
int32_t find_fd(const struct kv *kv, int fd)
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
