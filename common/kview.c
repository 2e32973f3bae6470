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
 *
 * The stages, one file each (contracts in kview_internal.h):
 *   kview_read.c      every fd's fdinfo, link and mount class (pass 1)
 *   kview_group.c     which fds matter, and their open file descriptions
 *                     (passes 2 and 3)
 *   kview_describe.c  the image's targets and fds, pipe and socket pairs
 *   kview_resolve.c   every watch tied to its target (pass 4)
 *   kview_compare.c   two images compared (kview_compare, `epollcr verify`)
 * This file holds the small helpers they share and kview_snapshot, which
 * runs them in that order.
 */
#include "kview_internal.h"
#include "ownfd.h"

static __thread struct kview_stats kview_last;

void kview_last_stats(struct kview_stats *out)
{
	*out = kview_last;
}

/* ---- small helpers ------------------------------------------------------- */

uint32_t kernel_dev(dev_t dev)
{
	return (major(dev) << 20) | minor(dev);
}

long kv_kcmp(struct kv *kv, int type, unsigned long a,
	     unsigned long b)
{
	kv->st.kcmp_calls++;
	return syscall(SYS_kcmp, kv->kpid, kv->kpid, type, a, b);
}

/*
 * Append len bytes and a NUL to the arena; *off gets their offset.
 * Returns 0, -ENOMEM, or -E2BIG when the arena would pass its limit.
 */
int arena_put(struct kv *kv, const char *s, size_t len, size_t *off)
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

const char *fd_text(const struct kv *kv, const struct kv_fd *f)
{
	return f->have_text ? kv->arena + f->text_off : NULL;
}

const char *fd_link(const struct kv *kv, const struct kv_fd *f)
{
	return f->have_link ? kv->arena + f->link_off : NULL;
}

void fd_name(char *name, size_t len, int fd)
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
int fd_learn_link(struct kv *kv, struct kv_fd *f)
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
int kv_stat(struct kv *kv, int fd, struct stat *st)
{
	char name[16];

	fd_name(name, sizeof(name), fd);
	kv->st.stats++;
	if (fstatat(kv->fd_dir, name, st, 0) < 0)
		return -errno;
	return 0;
}

/* ---- the snapshot -------------------------------------------------------- */

static int open_proc(struct kv *kv, pid_t pid)
{
	char path[64];

	if (kv->self)
		snprintf(path, sizeof(path), "/proc/thread-self");
	else
		snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	int dir = OWN_FD(open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));

	if (dir < 0)
		return -errno;
	kv->fdinfo_dir = OWN_FD(openat(dir, "fdinfo", O_RDONLY | O_DIRECTORY |
						       O_CLOEXEC));
	if (kv->fdinfo_dir < 0) {
		int ret = -errno;

		close(dir);
		return ret;
	}
	kv->fd_dir = OWN_FD(openat(dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
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
	free(kv->inet);
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
	if (ret == 0)
		ret = read_inet_bulk(&kv);
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
