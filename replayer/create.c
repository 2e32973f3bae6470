// SPDX-License-Identifier: MIT
/*
 * Restore, create phase: every target and set, straight at its final
 * number when no other watch needs that number for a moment, else at a
 * temporary number above every number the image names.  Under root with an
 * untrusted image, paths and socket addresses are checked first.
 */
#define LOG_PREFIX "restore"

#include "restore_internal.h"

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
int rs_place_fd(struct restore *r, uint32_t id, uint32_t fi)
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

void rs_close_fillers(struct restore *r)
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

		/* Only below the home: a number above it may be the home of
		 * a target created later (a pipe's second end lands there),
		 * which rs_close_fillers would then close. */
		if (ret < 0 || !keep_filler || fd > rt->home)
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

/*
 * Remember the socket file a creation bound, to remove it on failure (or
 * hand it to the result); out of memory, it is removed at once.
 */
static int rs_keep_file(struct restore *r, const struct recreate_bound *b)
{
	struct restore_file *f;

	if (r->nfiles == r->cap_files) {
		uint32_t cap = r->cap_files ? r->cap_files * 2 : 8;

		f = realloc(r->files, sizeof(*f) * cap);
		if (!f)
			goto err_remove;
		r->files = f;
		r->cap_files = cap;
	}
	f = &r->files[r->nfiles];
	f->path = strdup(b->path);
	if (!f->path)
		goto err_remove;
	f->dev = b->dev;
	f->ino = b->ino;
	r->nfiles++;
	return 0;

err_remove:
	recreate_unix_unlink(b->path, b->dev, b->ino);
	return rs_fail(r, "out of memory");
}

/* Why the kernel refused status flag f (errno err, 0: taken, not kept). */
static const char *rs_flag_refusal(uint32_t f, int err, char *buf,
				   size_t len)
{
	if (f == O_NOATIME && err == EPERM)
		return "only the owner of the file's inode or CAP_FOWNER may set it (the anonymous inode of an eventfd, timerfd, signalfd or epoll file belongs to root)";
	if (f == O_DIRECT && err == EINVAL)
		return "the kernel takes it only on pipes (packet mode) and files open for direct I/O";
	if (err == 0)
		return "F_SETFL took it but the file does not keep it (a kind without fasync keeps no O_ASYNC)";
	snprintf(buf, len, "F_SETFL: %s", strerror(err));
	return buf;
}

/*
 * Give target id's new descriptor fd the status flags of the image its
 * creation did not give it (recreate_set_flags: nothing to do, no
 * syscall, for most targets).  A flag the kernel refuses is left out with
 * a warning each, which is all a restore can do about it (as for
 * EPOLLWAKEUP): the file exists and its watches are right, so the missing
 * policy is not applied.  Bits of the image that are not status flags
 * get a warning.  O_ASYNC set gets an info diagnostic: its owner
 * (F_SETOWN) is not in fdinfo, so none is set and no SIGIO is sent
 * until the program sets one.  fd is closed on failure.
 */
static int rs_give_flags(struct restore *r, uint32_t id, int fd)
{
	const struct image_target *t = rs_tgt(r, id);
	uint32_t other = t->file_flags & ~(uint32_t)(O_ACCMODE |
						     KIND_STATUS_FLAGS);
	uint32_t refused = 0;
	int refused_errno[32] = { 0 };
	char what[64], buf[96];
	int ret;

	ret = recreate_set_flags(fd, t, recreate_flags_given(t), &refused,
				 refused_errno);
	if (ret < 0) {
		char full[256];

		close(fd);
		return rs_fail(r, "%s: fcntl F_SETFL 0%o: %s",
			       rs_what(r, id, full, sizeof(full)),
			       t->file_flags & KIND_STATUS_FLAGS,
			       strerror(-ret));
	}
	if (!(refused | other) && !(t->file_flags & O_ASYNC))
		return 0;
	/* The report line names the path already. */
	snprintf(what, sizeof(what), "%s target %u", image_kind_name(t->kind),
		 id);
	for (int bit = 0; bit < 32; bit++) {
		uint32_t f = 1u << bit;

		if (!(refused & f))
			continue;
		if (rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_UNRESTORABLE,
			    IMAGE_NONE, -1, id,
			    "%s: file status flag %s of the image not restored: %s",
			    what, kind_file_flag_name(f),
			    rs_flag_refusal(f, refused_errno[bit], buf,
					    sizeof(buf))) < 0)
			goto err_close_fd;
	}
	if (other &&
	    rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_UNRESTORABLE, IMAGE_NONE,
		    -1, id,
		    "%s: file flags 0%o of the image are not status flags F_SETFL sets: not restored",
		    what, other) < 0)
		goto err_close_fd;
	if ((t->file_flags & O_ASYNC) && !(refused & O_ASYNC) &&
	    rs_diag(r, IMAGE_SEV_INFO, IMAGE_DIAG_GENERIC, IMAGE_NONE, -1, id,
		    "%s: O_ASYNC restored without an owner (F_SETOWN is not in fdinfo, so not in the image): no SIGIO is sent until the program sets one",
		    what) < 0)
		goto err_close_fd;
	return 0;

err_close_fd:
	close(fd);
	return -1;
}

static int rs_create_one(struct restore *r, uint32_t id)
{
	const struct image_target *t = rs_tgt(r, id);
	struct recreate_bound bound = { .set = false };
	struct recreate_req req = {
		.img = r->img,
		.cloexec = rs_home_cloexec(r, &r->t[id - 1]),
		.why = r->why, .why_len = sizeof(r->why),
		.note = r->note, .note_len = sizeof(r->note),
		.force_bind = r->ext->force_bind,
		.bound = &bound,
	};
	const struct recreate_ops *ops = recreate_ops_of(t->kind);
	int fd = -1, ret;

	r->why[0] = r->note[0] = '\0';
	ret = ops->recreate ? ops->recreate(t, &req, &fd) : -EOPNOTSUPP;
	if (ret < 0)
		return rs_create_failed(r, id, ret);
	if (bound.set && rs_keep_file(r, &bound) < 0) {
		close(fd);
		return -1;
	}
	if (rs_give_flags(r, id, fd) < 0)
		return -1;
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
	if (rs_give_flags(r, a, fd[0]) < 0) {
		close(fd[1]);
		return -1;
	}
	if (rs_give_flags(r, b, fd[1]) < 0) {
		close(fd[0]);
		return -1;
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
	const struct sockaddr_in *in = (const void *)s->addrp;
	const struct sockaddr_in6 *in6 = (const void *)s->addrp;
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
	plen = image_sun_path_len(s->addrp, s->addr_len);
	if (s->domain != AF_UNIX || !plen ||
	    ((const struct sockaddr_un *)s->addrp)->sun_path[0] == '\0')
		return 0; /* unnamed or abstract: no file */
	memcpy(path, ((const struct sockaddr_un *)s->addrp)->sun_path, plen);
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
int rs_create_all(struct restore *r)
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
