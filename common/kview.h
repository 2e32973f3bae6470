/* SPDX-License-Identifier: MIT */
/*
 * The kernel's view of a process's epoll state, read from /proc/PID/fd,
 * /proc/PID/fdinfo and kcmp(2), with each target described through the
 * per-kind table in kind.h.  The recorder starts from this view and enriches
 * it with the shadow registry; `epollcr verify` compares an image with it.
 */
#ifndef EPOLLCR_KVIEW_H
#define EPOLLCR_KVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "epollcr_image.h"

/* One `tfd:` line of an epoll fd's fdinfo. */
struct fdinfo_watch {
	int32_t tfd;	 /* fd number given to ADD */
	uint32_t events; /* hex after events: */
	uint64_t data;	 /* hex after data: */
	uint64_t ino;	 /* hex after ino: */
	uint32_t sdev;	 /* hex after sdev: (kernel dev_t encoding) */
};

/*
 * Parse the text of an epoll fd's fdinfo (len bytes at text, no NUL
 * needed; any bytes accepted).  Calls on_watch for each `tfd:` line in
 * order and stores the `flags:` value (octal) in *file_flags when that is
 * not NULL.  A tfd line must have every field of the kernel's format
 * "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x" (numbers
 * checked for overflow; further blank-separated fields are ignored) and end
 * with a newline: a text cut inside its last line is malformed.  Returns
 * 0, -EINVAL at the first malformed tfd or flags line (after on_watch was
 * called for the lines before it), or the first non-zero value on_watch
 * returned.  Reads nothing outside [text, text + len), allocates nothing.
 */
int fdinfo_parse_epoll(const char *text, size_t len, unsigned *file_flags,
		       int (*on_watch)(void *ctx, const struct fdinfo_watch *w),
		       void *ctx);

/* What the shadow knows of one descriptor (kview_hints.fd_facts). */
struct kview_fd_facts {
	uint32_t kind;	 /* enum image_kind */
	uint32_t flags;	 /* fdinfo `flags:`: f_flags, O_CLOEXEC for FD_CLOEXEC */
	int domain;	 /* a socket's AF_*, -1 when not known */
	/*
	 * A socket's SO_TYPE and SO_PROTOCOL as the kernel would answer,
	 * and 0 when it cannot be listening (no listen() seen): -1 when not
	 * known (asked through the fd).
	 */
	int type, protocol, listening;
};

/*
 * Hints the recorder passes to kview_snapshot() from the shadow registry so
 * that watches the shim is sure of cost no kcmp(2).  Any callback may be
 * NULL.  confirm_watch returns true and sets *open_fd when the shadow knows
 * which fd holds the file watched as (epfd, tfd) with these events/data.
 */
struct kview_hints {
	void *ctx;
	bool (*confirm_watch)(void *ctx, int epfd, int tfd, uint32_t events,
			      uint64_t data, int *open_fd);
	/*
	 * fd_facts (the calling process only): true and *facts filled when
	 * the shadow knows fd's kind and what its fdinfo `flags:` line
	 * shows.  For a socket or a pipe the view then takes them from
	 * there and the inode and device from fstat(fd) (the kernel's), and
	 * reads no fdinfo of fd; a file of another kind, or whose fstat
	 * says another kind, is read as any other fd.
	 */
	bool (*fd_facts)(void *ctx, int fd, struct kview_fd_facts *facts);
};

/*
 * The path of a watched file no fd holds whose inode is the anonymous
 * inode eventfd, timerfd, signalfd and epoll files share: the kernel does
 * not tell which of them it is.
 */
#define KVIEW_ANON_UNKNOWN "anon_inode:[?]"

/* Is t such a file, as the kernel's view describes it (kind other)? */
static inline bool kview_anon_unknown(const struct image_target *t)
{
	return t->kind == IMAGE_KIND_OTHER && t->path &&
	       strcmp(t->path, KVIEW_ANON_UNKNOWN) == 0;
}

#define KVIEW_F_ALL_FDS 0x1  /* describe every fd, not only epoll-related */
#define KVIEW_F_FULL_KCMP 0x2 /* ignore hints: resolve every watch by kcmp */
/*
 * Sockets: KVIEW_F_PER_TARGET describes every socket through its own
 * descriptor (getsockname, getpeername, getsockopt), never from bulk
 * sock_diag dumps; KVIEW_F_BULK describes TCP and UDP sockets from one
 * inet_diag dump per family and protocol whenever the view holds one.
 * Neither: the dumps are taken when the view holds KVIEW_BULK_MIN
 * sockets or more.  A TCP dump walks the kernel's whole established
 * hash (262,144 buckets on the test machine: 5-10 ms of CPU per family,
 * however few sockets there are), which costs more than the five calls
 * per socket it saves below several thousand sockets (docs/performance.md,
 * figure 5): the bulk path pays only for very large servers.
 */
#define KVIEW_F_PER_TARGET 0x4
#define KVIEW_F_BULK 0x8
#define KVIEW_BULK_MIN 32768
/* Ignore the hints' fd_facts: read every fd's fdinfo (tests, benches). */
#define KVIEW_F_PER_FD 0x10

/*
 * Fill img (initialised by the caller; targets are appended after any it
 * holds) with the kernel's view of pid (0 = the calling thread's fd table;
 * another pid needs ptrace read access: same user or root): one target per
 * open file description among the epoll fds and the fds holding a watched
 * file (every fd with KVIEW_F_ALL_FDS) and the other end of a socketpair
 * one of those holds when the process holds it too (found with one
 * sock_diag dump, see unix_diag.h; both ends then get IMAGE_SOCK_PAIR,
 * image_socket.pair and .pending), fd entries for all their fds
 * (FD_CLOEXEC from fdinfo), and one watch per fdinfo `tfd:` line, grouped
 * by set in fdinfo order, with IMAGE_W_KERNEL, IMAGE_W_DISARMED (no poll
 * bit left), IMAGE_W_STALE (tfd does not hold the watched file), open_fd
 * (tfd when it holds the file, else the lowest fd that does, else -1) and
 * target.  A watched file no fd holds gets a target of its own, its kind
 * guessed from (sdev, ino) (two such watches of one socket share it).
 * Sets img->flags |= IMAGE_F_KERNEL_VIEW.  Does not set proc, modules or
 * backtraces.  What could not be learnt (kcmp refused, a set changed while
 * read, a target that could not be described) becomes a diagnostic.
 * Bounds: one fdinfo text of at most 256 MiB (-EFBIG), at most 4M fds
 * (-EMFILE).  For another pid, sockets and pipes are described through a
 * copy of their fd (pidfd_getfd) when the kernel allows it.  Returns 0 or
 * -errno (-ENOENT/-EACCES/-EPERM when /proc/PID cannot be read); on
 * failure img may hold a partial view.
 */
int kview_snapshot(pid_t pid, struct image *img, unsigned flags,
		   const struct kview_hints *hints);

/* What the last kview_snapshot() of the calling thread cost. */
struct kview_stats {
	uint32_t fds;		/* descriptors looked at */
	uint32_t fdinfo_reads;	/* /proc/PID/fdinfo/N files read */
	uint32_t readlinks;	/* readlinkat of /proc/PID/fd/N */
	uint32_t stats;		/* fstatat of /proc/PID/fd/N */
	uint32_t kcmp_calls;	/* kcmp(2) calls, any type */
	uint32_t hinted;	/* watches the hints confirmed */
	uint32_t diag_dumps;	/* sock_diag dumps asked for (inet_diag) */
	uint32_t bulk_sockets;	/* sockets described from those dumps */
	uint32_t shadow_fds;	/* fds taken from fd_facts and fstat */
};

/* Copy the calling thread's last kview_snapshot() costs into *out. */
void kview_last_stats(struct kview_stats *out);

/*
 * Compare an image with a kernel view of the same process: every set (by
 * its lowest fd number in expected; its other fds must name the same set),
 * every watch (matched by set, tfd and, among watches of one tfd, by target
 * then order: events, data, stale flag, open_fd, target kind, the target's
 * description through kind same(), its fd numbers, FD_CLOEXEC, access
 * mode and status flags (KIND_STATUS_FLAGS: O_APPEND, O_NONBLOCK,
 * O_ASYNC, O_DIRECT, O_NOATIME), a socketpair end's other end: its fd
 * numbers, access mode and status flags), sets and watches that only
 * actual has.  Writes one line per difference, naming epfd and tfd and
 * both values, to out_fd (when >= 0) and returns the number of
 * differences (0 = identical), or -errno when writing to out_fd failed or
 * memory ran out.
 */
int kview_compare(const struct image *expected, const struct image *actual,
		  int out_fd);

#endif
