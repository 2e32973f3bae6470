// SPDX-License-Identifier: MIT
/*
 * Restore, plan phase: decide what to restore (targets wanted or skipped,
 * sets innermost first, each target's home number) and check it against
 * this process: every number below RLIMIT_NOFILE, every number the restore
 * needs free (or, with targets=existing, holding a file of the right
 * kind).  Nothing has been touched when a check fails.
 */
#define LOG_PREFIX "restore"

#include "restore_internal.h"

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
const struct image_watch *rs_first_watch_on(const struct restore *r,
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
int rs_unrestorable(struct restore *r, uint32_t id, const char *why)
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
int rs_mark_skipped_watches(struct restore *r)
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
 * targets=existing: the file found for target id (at fd) has the access
 * mode and status flags (KIND_STATUS_FLAGS) the image records, or a
 * warning says how it differs.  It is not changed: the restore never
 * touches a file it did not create (O_NONBLOCK included), and the file
 * is what the caller restored it as.  One F_GETFL.
 */
static int rs_check_existing_flags(struct restore *r, uint32_t id, int fd)
{
	const uint32_t mask = O_ACCMODE | KIND_STATUS_FLAGS;
	uint32_t want = rs_tgt(r, id)->file_flags & mask;
	char what[256], has_text[160], want_text[160];
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return rs_fail(r, "targets=existing: fd %d: fcntl F_GETFL: %s",
			       fd, strerror(errno));
	if (((uint32_t)fl & mask) == want)
		return 0;
	return rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC, IMAGE_NONE,
		       -1, id,
		       "targets=existing: fd %d has file flags 0%o (%s), the image says 0%o (%s) for %s: left as they are (the restore changes no file it did not create)",
		       fd, (uint32_t)fl & mask,
		       kind_file_flags_text((uint32_t)fl & mask, has_text,
					    sizeof(has_text)),
		       want,
		       kind_file_flags_text(want, want_text,
					    sizeof(want_text)),
		       rs_what(r, id, what, sizeof(what)));
}

/*
 * targets=existing: every found target must be open at each of its
 * numbers, of the kind the image says (readlink of /proc/self/fd/N), and
 * its numbers must hold one file (kcmp KCMP_FILE); a socketpair end must
 * be connected to the other end the image names.  Its file flags are
 * compared with the image's (a warning when they differ).
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
		if (ret == 0 && rt->fd_count)
			ret = rs_check_existing_flags(r, i + 1,
						      rs_first_fd(r, i + 1));
	}
	close(dir);
	return ret;
}

int rs_plan(struct restore *r)
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
