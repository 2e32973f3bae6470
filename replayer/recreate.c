// SPDX-License-Identifier: MIT
/*
 * Recreating targets without privilege, one ops entry per kind: eventfd,
 * timerfd, signalfd, epoll, pipe here, sockets in recreate_socket.c.  Each
 * entry can also make its target ready for a moment (and undo that), which
 * the restore uses to disarm a fired EPOLLONESHOT watch exactly.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "kind.h"
#include "recreate.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

#define EVENTFD_MAX_COUNT 0xfffffffffffffffeULL /* largest eventfd value */
#define NSEC_PER_SEC 1000000000ULL

void recreate_say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int recreate_errno(char *why, size_t why_len, const char *what)
{
	int err = errno;

	recreate_say(why, why_len, "%s: %s", what, strerror(err));
	errno = err;
	return -err;
}

int recreate_poll_now(int fd)
{
	struct pollfd p = {
		.fd = fd,
		.events = POLLIN | POLLOUT | POLLPRI | POLLRDHUP | POLLRDNORM |
			  POLLRDBAND | POLLWRNORM | POLLWRBAND,
	};
	int n;

	do
		n = poll(&p, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return n ? p.revents : 0;
}

/* Apply O_NONBLOCK as t->file_flags says, on a descriptor made without. */
int recreate_set_nonblock(int fd, const struct image_target *t)
{
	int fl;

	if (!(t->file_flags & O_NONBLOCK))
		return 0;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

uint32_t recreate_flags_given(const struct image_target *t)
{
	uint32_t given = t->file_flags & O_NONBLOCK;

	if (t->kind == IMAGE_KIND_PIPE && t->u.pipe.write_end)
		given |= t->file_flags & O_DIRECT;
	return given;
}

/*
 * Checked on Linux 6.18, as root and as nobody: F_SETFL sets O_APPEND on
 * every kind; O_DIRECT on either end of a pipe (packet mode is the write
 * end's flag: pipe2(O_DIRECT) gives it to the write end only), EINVAL on
 * sockets and anonymous-inode files; O_NOATIME on pipes and sockets
 * (their inode belongs to their creator), EPERM on eventfd, timerfd,
 * signalfd and epoll files for anyone without CAP_FOWNER (their shared
 * anonymous inode belongs to root); O_ASYNC on pipes and sockets, while
 * on eventfd, timerfd, signalfd and epoll files (no fasync) F_SETFL
 * succeeds and the flag is not kept.  pipe2() refuses O_APPEND (EINVAL).
 */
int recreate_set_flags(int fd, const struct image_target *t, uint32_t given,
		       uint32_t *refused, int refused_errno[32])
{
	uint32_t want = t->file_flags & KIND_STATUS_FLAGS, have = given;
	int fl;

	*refused = 0;
	if (want == given)
		return 0;
	if (fcntl(fd, F_SETFL, want) < 0) {
		if (errno != EPERM && errno != EINVAL)
			return -errno;
		/* Nothing changed: find the flags refused, one at a time. */
		for (int bit = 0; bit < 32; bit++) {
			uint32_t f = 1u << bit;

			if (!(want & f) || (have & f))
				continue;
			if (fcntl(fd, F_SETFL, have | f) == 0) {
				have |= f;
				continue;
			}
			if (errno != EPERM && errno != EINVAL)
				return -errno;
			*refused |= f;
			refused_errno[bit] = errno;
		}
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	for (int bit = 0; bit < 32; bit++) {
		uint32_t f = 1u << bit;

		if ((want & f) && !(*refused & f) && !((uint32_t)fl & f)) {
			*refused |= f;
			refused_errno[bit] = 0;
		}
	}
	return 0;
}

/* Unrestorable: the missing policy decides. */
static int cannot(char *why, size_t why_len, const char *what)
{
	recreate_say(why, why_len, "%s", what);
	return -EOPNOTSUPP;
}

static int fail_errno(const struct recreate_req *req, const char *call)
{
	return recreate_errno(req->why, req->why_len, call);
}

static int can_always(const struct image_target *t, bool has_partner,
		      char *why, size_t why_len)
{
	return 0;
}

/* ---- eventfd ---- */

static int eventfd_recreate(const struct image_target *t,
			    const struct recreate_req *req, int *fd_out)
{
	uint64_t count = t->u.efd.count;
	int flags = (req->cloexec ? EFD_CLOEXEC : 0) |
		    (t->file_flags & O_NONBLOCK ? EFD_NONBLOCK : 0) |
		    (t->u.efd.semaphore ? EFD_SEMAPHORE : 0);
	int fd;

	if (count > EVENTFD_MAX_COUNT) {
		recreate_say(req->why, req->why_len,
			     "eventfd count 0x%llx is above the largest value an eventfd holds",
			     (unsigned long long)count);
		return -EINVAL;
	}
	/* eventfd(2) takes an unsigned int; a larger count is written. */
	fd = eventfd(count <= 0xffffffffu ? (unsigned)count : 0, flags);
	if (fd < 0)
		return fail_errno(req, "eventfd");
	if (count > 0xffffffffu &&
	    write(fd, &count, sizeof(count)) != (ssize_t)sizeof(count)) {
		int ret = fail_errno(req, "write of the eventfd count");

		close(fd);
		return ret ? ret : -EIO;
	}
	*fd_out = fd;
	return 0;
}

/* Ready for nothing only when empty and full at once: never.  Kept for
 * completeness: make it readable by adding 1 when the count is 0. */
static int eventfd_make_ready(const struct image_target *t,
			      struct recreate_ready *rr, char *why,
			      size_t why_len)
{
	uint64_t one = 1;

	rr->saved = 0;
	if (write(rr->fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		return recreate_errno(why, why_len, "eventfd write");
	rr->saved = 1;
	return 0;
}

/*
 * Take the 1 back.  A semaphore read takes exactly 1; a plain read takes
 * the whole count, so the rest is written back.
 */
static void eventfd_undo_ready(const struct image_target *t,
			       struct recreate_ready *rr)
{
	uint64_t v = 0;
	int ev = recreate_poll_now(rr->fd);

	if (!rr->saved || ev <= 0 || !(ev & POLLIN))
		return;
	if (read(rr->fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return;
	if (v > 1) {
		v -= 1;
		if (write(rr->fd, &v, sizeof(v)) < 0)
			return;
	}
}

/* ---- timerfd ---- */

static void ns_to_timespec(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (long)(ns % NSEC_PER_SEC);
}

static bool clock_is_realtime(uint32_t clockid)
{
	return clockid == CLOCK_REALTIME || clockid == CLOCK_REALTIME_ALARM;
}

/*
 * The it_value to give timerfd_settime(): the image holds the time that
 * remained at dump.  Relative timers get that much again from now.  An
 * absolute CLOCK_REALTIME timer gets its original deadline back (dump time
 * + remaining), so an alarm set for 9:00 still rings at 9:00; other
 * absolute timers (monotonic clocks do not survive a reboot) get now +
 * remaining on their clock.
 */
static int timerfd_value(const struct image_target *t,
			 const struct image *img, struct timespec *value)
{
	const struct image_timerfd *tm = &t->u.tfd;
	struct timespec now;
	uint64_t base_ns;

	if (tm->value_ns == 0 || !(tm->settime_flags & TFD_TIMER_ABSTIME)) {
		ns_to_timespec(tm->value_ns, value);
		return 0;
	}
	if (clock_is_realtime(tm->clockid) && img && img->proc.time_sec) {
		base_ns = img->proc.time_sec * NSEC_PER_SEC +
			  img->proc.time_nsec;
	} else {
		if (clock_gettime((clockid_t)tm->clockid, &now) < 0)
			return -errno;
		base_ns = (uint64_t)now.tv_sec * NSEC_PER_SEC +
			  (uint64_t)now.tv_nsec;
	}
	ns_to_timespec(base_ns + tm->value_ns, value);
	return 0;
}

static int timerfd_recreate(const struct image_target *t,
			    const struct recreate_req *req, int *fd_out)
{
	const struct image_timerfd *tm = &t->u.tfd;
	int flags = (req->cloexec ? TFD_CLOEXEC : 0) |
		    (t->file_flags & O_NONBLOCK ? TFD_NONBLOCK : 0);
	struct itimerspec its = { 0 };
	int fd, ret;

	if (tm->settime_flags &
	    ~(uint32_t)(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)) {
		recreate_say(req->why, req->why_len,
			     "unknown timerfd settime flags 0x%x",
			     tm->settime_flags);
		return -EINVAL;
	}
	fd = timerfd_create((int)tm->clockid, flags);
	if (fd < 0) {
		if (errno == EPERM)
			return cannot(req->why, req->why_len,
				      "an alarm clock timerfd needs CAP_WAKE_ALARM");
		return fail_errno(req, "timerfd_create");
	}
	ns_to_timespec(tm->interval_ns, &its.it_interval);
	ret = timerfd_value(t, req->img, &its.it_value);
	if (ret < 0) {
		recreate_say(req->why, req->why_len, "clock_gettime: %s",
			     strerror(-ret));
		goto err_close_fd;
	}
	if (timerfd_settime(fd, (int)tm->settime_flags, &its, NULL) < 0) {
		ret = fail_errno(req, "timerfd_settime");
		goto err_close_fd;
	}
	if (tm->ticks && ioctl(fd, TFD_IOC_SET_TICKS, &tm->ticks) < 0)
		recreate_say(req->note, req->note_len,
			     "%llu expirations not read at dump time were not restored (TFD_IOC_SET_TICKS: %s)",
			     (unsigned long long)tm->ticks, strerror(errno));
	*fd_out = fd;
	return 0;

err_close_fd:
	close(fd);
	return ret;
}

/* One expiration, set by hand (TFD_IOC_SET_TICKS), makes it readable. */
static int timerfd_make_ready(const struct image_target *t,
			      struct recreate_ready *rr, char *why,
			      size_t why_len)
{
	uint64_t one = 1;

	if (ioctl(rr->fd, TFD_IOC_SET_TICKS, &one) < 0) {
		int err = errno;

		recreate_say(why, why_len,
			     "a timerfd is ready only when it expires (TFD_IOC_SET_TICKS: %s)",
			     strerror(err));
		return -err;
	}
	return 0;
}

/* Read the tick back; real expirations that came meanwhile are put back. */
static void timerfd_undo_ready(const struct image_target *t,
			       struct recreate_ready *rr)
{
	uint64_t ticks = 0;
	int ev = recreate_poll_now(rr->fd);

	if (ev <= 0 || !(ev & POLLIN))
		return;
	if (read(rr->fd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks))
		return;
	if (ticks > 1) {
		ticks -= 1;
		if (ioctl(rr->fd, TFD_IOC_SET_TICKS, &ticks) < 0)
			return;
	}
}

/* ---- signalfd ---- */

static int signalfd_recreate(const struct image_target *t,
			     const struct recreate_req *req, int *fd_out)
{
	int flags = (req->cloexec ? SFD_CLOEXEC : 0) |
		    (t->file_flags & O_NONBLOCK ? SFD_NONBLOCK : 0);
	sigset_t mask;
	int fd;

	sigemptyset(&mask);
	for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
		if (t->u.sfd.mask & (1ULL << (sig - 1)))
			sigaddset(&mask, sig);
	fd = signalfd(-1, &mask, flags);
	if (fd < 0)
		return fail_errno(req, "signalfd");
	*fd_out = fd;
	return 0;
}

/*
 * Make a signal of the mask pending on this thread.  Only a signal that is
 * blocked here and not pending yet is used: a blocked signal stays queued
 * (nothing is delivered), and the signalfd read of undo_ready takes exactly
 * it back (it is the only one of the mask pending, or poll() would have
 * found the signalfd ready already).
 */
static int signalfd_make_ready(const struct image_target *t,
			       struct recreate_ready *rr, char *why,
			       size_t why_len)
{
	sigset_t blocked, pending;

	if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0 ||
	    sigpending(&pending) < 0)
		return cannot(why, why_len, "cannot read the signal mask");
	for (int sig = 1; sig <= 64 && sig < NSIG; sig++) {
		if (!(t->u.sfd.mask & (1ULL << (sig - 1))) || sig == SIGKILL ||
		    sig == SIGSTOP || sigismember(&blocked, sig) != 1 ||
		    sigismember(&pending, sig) == 1)
			continue;
		if (syscall(SYS_tgkill, getpid(), gettid(), sig) < 0) {
			int err = errno;

			recreate_say(why, why_len, "tgkill(%d): %s", sig,
				     strerror(err));
			return -err;
		}
		rr->saved = (uint64_t)sig;
		return 0;
	}
	return cannot(why, why_len,
		      "no signal of the signalfd mask is blocked in the restoring thread: raising one would deliver it");
}

static void signalfd_undo_ready(const struct image_target *t,
				struct recreate_ready *rr)
{
	struct signalfd_siginfo si;
	int ev = recreate_poll_now(rr->fd);

	if (ev > 0 && (ev & POLLIN))
		if (read(rr->fd, &si, sizeof(si)) < 0)
			return;
}

/* ---- epoll ---- */

static int epoll_recreate(const struct image_target *t,
			  const struct recreate_req *req, int *fd_out)
{
	int fd = epoll_create1(req->cloexec ? EPOLL_CLOEXEC : 0);

	if (fd < 0)
		return fail_errno(req, "epoll_create1");
	if (recreate_set_nonblock(fd, t) < 0) {
		int ret = fail_errno(req, "fcntl O_NONBLOCK");

		close(fd);
		return ret;
	}
	*fd_out = fd;
	return 0;
}

/* ---- pipe ---- */

static int pipe_can_recreate(const struct image_target *t, bool has_partner,
			     char *why, size_t why_len)
{
	if (t->path && !strncmp(t->path, "/", 1))
		return cannot(why, why_len,
			      "a named FIFO is not recreated: opening a path from an image is not done");
	return 0;
}

static void pipe_note_pending(const struct image_target *a,
			      const struct image_target *b,
			      const struct recreate_req *req, bool lone)
{
	uint32_t pending = a->u.pipe.pending + (b ? b->u.pipe.pending : 0);
	const char *end = a->u.pipe.write_end ? "read" : "write";

	if (lone && pending)
		recreate_say(req->note, req->note_len,
			     "the %s end of this pipe is not in the image: it was created closed; %u pending bytes were not restored",
			     end, pending);
	else if (lone)
		recreate_say(req->note, req->note_len,
			     "the %s end of this pipe is not in the image: it was created closed",
			     end);
	else if (pending)
		recreate_say(req->note, req->note_len,
			     "%u pending bytes of the pipe were not restored",
			     pending);
}

/*
 * pipe2() with O_NONBLOCK per end as the image says, and O_DIRECT (packet
 * mode, on the write end) when the image's write end has it.
 */
static int pipe_make(const struct image_target *rd,
		     const struct image_target *wr,
		     const struct recreate_req *req, int p[2])
{
	int flags = (req->cloexec ? O_CLOEXEC : 0) |
		    (wr && (wr->file_flags & O_DIRECT) ? O_DIRECT : 0);

	if (pipe2(p, flags) < 0)
		return fail_errno(req, "pipe2");
	if ((rd && recreate_set_nonblock(p[0], rd) < 0) ||
	    (wr && recreate_set_nonblock(p[1], wr) < 0)) {
		int ret = fail_errno(req, "fcntl O_NONBLOCK");

		close(p[0]);
		close(p[1]);
		return ret;
	}
	return 0;
}

/* A lone end: a fresh pipe whose other end is closed at once. */
static int pipe_recreate(const struct image_target *t,
			 const struct recreate_req *req, int *fd_out)
{
	bool wr = t->u.pipe.write_end;
	int p[2], ret;

	ret = pipe_make(wr ? NULL : t, wr ? t : NULL, req, p);
	if (ret < 0)
		return ret;
	close(p[wr ? 0 : 1]);
	*fd_out = p[wr ? 1 : 0];
	pipe_note_pending(t, NULL, req, true);
	return 0;
}

static int pipe_recreate_pair(const struct image_target *a,
			      const struct image_target *b,
			      const struct recreate_req *req, int fds_out[2])
{
	bool a_writes = a->u.pipe.write_end;
	int p[2], ret;

	if (a_writes == (bool)b->u.pipe.write_end) {
		recreate_say(req->why, req->why_len,
			     "pipe targets %u and %u are both %s ends", a->id,
			     b->id, a_writes ? "write" : "read");
		return -EINVAL;
	}
	ret = pipe_make(a_writes ? b : a, a_writes ? a : b, req, p);
	if (ret < 0)
		return ret;
	fds_out[0] = p[a_writes ? 1 : 0];
	fds_out[1] = p[a_writes ? 0 : 1];
	pipe_note_pending(a, b, req, false);
	return 0;
}

/* A read end is made readable with one byte through its write end. */
static int pipe_make_ready(const struct image_target *t,
			   struct recreate_ready *rr, char *why,
			   size_t why_len)
{
	const char byte = 0;

	if (t->u.pipe.write_end)
		return cannot(why, why_len,
			      "the write end of a pipe is ready unless the pipe is full");
	if (rr->peer_fd < 0)
		return cannot(why, why_len,
			      "the write end of this pipe is not in the image");
	if (write(rr->peer_fd, &byte, 1) != 1) {
		int err = errno;

		recreate_say(why, why_len, "pipe write: %s", strerror(err));
		return -err;
	}
	rr->saved = 1;
	return 0;
}

static void pipe_undo_ready(const struct image_target *t,
			    struct recreate_ready *rr)
{
	char byte;
	int ev = recreate_poll_now(rr->fd);

	if (rr->saved && ev > 0 && (ev & POLLIN))
		if (read(rr->fd, &byte, 1) < 0)
			return;
}

/* ---- other ---- */

static int other_can_recreate(const struct image_target *t, bool has_partner,
			      char *why, size_t why_len)
{
	return cannot(why, why_len,
		      "this kind of file (tty, inotify, device, ...) cannot be recreated");
}

static const struct recreate_ops recreate_table[IMAGE_KIND_COUNT] = {
	[IMAGE_KIND_OTHER] = {
		.kind = IMAGE_KIND_OTHER,
		.can_recreate = other_can_recreate,
	},
	[IMAGE_KIND_SOCKET] = {
		.kind = IMAGE_KIND_SOCKET,
		.can_recreate = recreate_socket_can,
		.recreate = recreate_socket,
		.recreate_pair = recreate_socket_pair,
		.make_ready = recreate_socket_make_ready,
		.undo_ready = recreate_socket_undo_ready,
	},
	[IMAGE_KIND_PIPE] = {
		.kind = IMAGE_KIND_PIPE,
		.can_recreate = pipe_can_recreate,
		.recreate = pipe_recreate,
		.recreate_pair = pipe_recreate_pair,
		.make_ready = pipe_make_ready,
		.undo_ready = pipe_undo_ready,
	},
	[IMAGE_KIND_EVENTFD] = {
		.kind = IMAGE_KIND_EVENTFD,
		.can_recreate = can_always,
		.recreate = eventfd_recreate,
		.make_ready = eventfd_make_ready,
		.undo_ready = eventfd_undo_ready,
	},
	[IMAGE_KIND_TIMERFD] = {
		.kind = IMAGE_KIND_TIMERFD,
		.can_recreate = can_always,
		.recreate = timerfd_recreate,
		.make_ready = timerfd_make_ready,
		.undo_ready = timerfd_undo_ready,
	},
	[IMAGE_KIND_SIGNALFD] = {
		.kind = IMAGE_KIND_SIGNALFD,
		.can_recreate = can_always,
		.recreate = signalfd_recreate,
		.make_ready = signalfd_make_ready,
		.undo_ready = signalfd_undo_ready,
	},
	[IMAGE_KIND_EPOLL] = {
		.kind = IMAGE_KIND_EPOLL,
		.can_recreate = can_always,
		.recreate = epoll_recreate,
	},
};

const struct recreate_ops *recreate_ops_of(uint32_t kind)
{
	if (kind >= IMAGE_KIND_COUNT)
		kind = IMAGE_KIND_OTHER;
	return &recreate_table[kind];
}

/* ---- pairing ---- */

/* Pipe ends that name each other (or one names the other, one names none). */
static void pair_pipes_by_peer(const struct image *img, uint32_t *partner)
{
	for (uint32_t i = 0; i < img->ntargets; i++) {
		const struct image_target *a = &img->targets[i], *b;

		if (a->kind != IMAGE_KIND_PIPE || partner[i] ||
		    !(b = image_target_by_id(img, a->u.pipe.peer)) ||
		    b == a || b->kind != IMAGE_KIND_PIPE ||
		    partner[b->id - 1] ||
		    (b->u.pipe.peer != IMAGE_NONE && b->u.pipe.peer != a->id) ||
		    (bool)a->u.pipe.write_end == (bool)b->u.pipe.write_end)
			continue;
		partner[i] = b->id;
		partner[b->id - 1] = a->id;
	}
}

static int cmp_pipe_ino(const void *x, const void *y, void *ctx)
{
	const struct image *img = ctx;
	const struct image_target *a = &img->targets[*(const uint32_t *)x];
	const struct image_target *b = &img->targets[*(const uint32_t *)y];

	if (a->u.pipe.ino != b->u.pipe.ino)
		return a->u.pipe.ino < b->u.pipe.ino ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/*
 * Pipe ends left unpaired that share a pipefs inode: exactly two, one of
 * each end, make a pair; any other count is left alone.
 */
static int pair_pipes_by_ino(const struct image *img, uint32_t *partner)
{
	uint32_t n = 0, *idx = malloc(sizeof(*idx) * (img->ntargets + 1));

	if (!idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].kind == IMAGE_KIND_PIPE && !partner[i] &&
		    img->targets[i].u.pipe.ino)
			idx[n++] = i;
	qsort_r(idx, n, sizeof(*idx), cmp_pipe_ino, (void *)img);
	for (uint32_t i = 0; i < n;) {
		uint32_t j = i + 1;
		uint64_t ino = img->targets[idx[i]].u.pipe.ino;

		while (j < n && img->targets[idx[j]].u.pipe.ino == ino)
			j++;
		if (j - i == 2) {
			uint32_t a = idx[i], b = idx[i + 1];

			if ((bool)img->targets[a].u.pipe.write_end !=
			    (bool)img->targets[b].u.pipe.write_end) {
				partner[a] = b + 1;
				partner[b] = a + 1;
			}
		}
		i = j;
	}
	free(idx);
	return 0;
}

/* Socketpair ends that name each other (image_socket.pair). */
static void pair_sockets_by_pair(const struct image *img, uint32_t *partner)
{
	for (uint32_t i = 0; i < img->ntargets; i++) {
		const struct image_target *a = &img->targets[i], *b;

		if (a->kind != IMAGE_KIND_SOCKET || partner[i] ||
		    !(a->u.sock.flags & IMAGE_SOCK_PAIR) ||
		    !(b = image_target_by_id(img, a->u.sock.pair)) ||
		    b == a || b->kind != IMAGE_KIND_SOCKET ||
		    partner[b->id - 1] || b->u.sock.pair != a->id ||
		    !(b->u.sock.flags & IMAGE_SOCK_PAIR))
			continue;
		partner[i] = b->id;
		partner[b->id - 1] = a->id;
	}
}

/*
 * Socketpair ends flagged IMAGE_SOCK_PAIR that name no other end (an image
 * made by hand or by an older writer), matched in id order per (type,
 * protocol).  One end waits per combination; an image with more than
 * PAIR_MAX_WAITING combinations waiting at once leaves the extra ends
 * unpaired (then unrestorable).
 */
#define PAIR_MAX_WAITING 16
static void pair_sockets(const struct image *img, uint32_t *partner)
{
	uint32_t waiting[PAIR_MAX_WAITING], nwaiting = 0;

	for (uint32_t i = 0; i < img->ntargets; i++) {
		const struct image_target *t = &img->targets[i];
		uint32_t j;

		if (t->kind != IMAGE_KIND_SOCKET ||
		    !(t->u.sock.flags & IMAGE_SOCK_PAIR) ||
		    t->u.sock.pair != IMAGE_NONE || partner[i] ||
		    t->u.sock.domain != AF_UNIX)
			continue;
		for (j = 0; j < nwaiting; j++) {
			const struct image_socket *o;

			o = &img->targets[waiting[j]].u.sock;
			if (o->type == t->u.sock.type &&
			    o->protocol == t->u.sock.protocol)
				break;
		}
		if (j < nwaiting) {
			partner[i] = waiting[j] + 1;
			partner[waiting[j]] = t->id;
			waiting[j] = waiting[--nwaiting];
		} else if (nwaiting < PAIR_MAX_WAITING) {
			waiting[nwaiting++] = i;
		}
	}
}

int recreate_match_pairs(const struct image *img, uint32_t *partner)
{
	int ret;

	memset(partner, 0, sizeof(*partner) * img->ntargets);
	pair_pipes_by_peer(img, partner);
	ret = pair_pipes_by_ino(img, partner);
	if (ret == 0) {
		pair_sockets_by_pair(img, partner);
		pair_sockets(img, partner);
	}
	return ret;
}
