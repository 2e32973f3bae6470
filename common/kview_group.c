// SPDX-License-Identifier: MIT
/*
 * Kernel view, passes 2 and 3: keep the fds that matter (epoll fds and fds
 * of a watched inode) and group them into open file descriptions, by
 * (kind, dev, ino, access mode, eventfd-id), split with kcmp(KCMP_FILE)
 * where several fds share an inode.
 */
#include "kview_internal.h"

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
int mark_relevant(struct kv *kv)
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
int group_fds(struct kv *kv)
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
