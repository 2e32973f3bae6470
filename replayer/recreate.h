/* SPDX-License-Identifier: MIT */
/*
 * The replayer's half of the per-kind operations (the kernel-side half,
 * describe and compare, is in common/kind.h): create a target anew without
 * privilege, and make it ready for a moment so that a fired EPOLLONESHOT
 * watch can be disarmed exactly (docs/restore.md).  The restore's phases
 * (plan.c, create.c, watches.c) dispatch through recreate_ops_of(); adding
 * a kind touches one entry.
 */
#ifndef EPOLLCR_RECREATE_H
#define EPOLLCR_RECREATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "epollcr_image.h"

/* The AF_UNIX socket file a recreate bound, for removing it later. */
struct recreate_bound {
	bool set;	/* a path was bound: the fields below are valid */
	dev_t dev;	/* device and inode of the file bind() created */
	ino_t ino;
	char path[109];	/* sun_path, NUL-terminated */
};

/*
 * One creation request.  The created descriptors take the lowest free
 * numbers, as every creating syscall does; the caller moves them.
 */
struct recreate_req {
	const struct image *img; /* the whole image (dump time, peers) */
	bool cloexec;		 /* create the fd(s) close-on-exec */
	char *why;		 /* on failure: one line, why_len bytes */
	size_t why_len;
	char *note;		/* on success: a remark worth a diagnostic */
	size_t note_len;	/* (left empty when there is none) */
	bool force_bind;	/* bind even where another process has the
				 * address (see restore_ext.force_bind) */
	struct recreate_bound *bound; /* when not NULL: the socket file a
				       * successful recreate bound */
};

/* What make_ready changed, for undo_ready. */
struct recreate_ready {
	int fd;		 /* the target's descriptor */
	int peer_fd;	 /* the other end (pipe, socketpair), or -1 */
	int aux_fd;	 /* a descriptor make_ready opened, or -1 */
	uint64_t saved;	 /* kind-specific memo */
	int wait_ms;	 /* the most make_ready may wait for an event: what
			  * is left of the restore's one budget */
};

struct recreate_ops {
	uint32_t kind; /* enum image_kind */
	/*
	 * 0 when t can be recreated unprivileged; -EOPNOTSUPP with a
	 * reason in why when it cannot (a connected stream socket, a kind
	 * with no recreate).  has_partner: the other end of a pipe or
	 * socketpair is in the image and will be created with it.
	 */
	int (*can_recreate)(const struct image_target *t, bool has_partner,
			    char *why, size_t why_len);
	/*
	 * Create t anew into *fd_out: its kind's parameters, O_NONBLOCK
	 * from t->file_flags, bound/listening as recorded.  Returns 0,
	 * -EOPNOTSUPP when the target cannot be recreated here (missing
	 * policy applies), or another -errno (the restore fails); req->why
	 * says why.  NULL when the kind has no recreate.
	 */
	int (*recreate)(const struct image_target *t,
			const struct recreate_req *req, int *fd_out);
	/*
	 * Create the two ends a and b of one object (pipe, socketpair):
	 * fds_out[0] is a's descriptor, fds_out[1] b's; a socketpair gets
	 * each end's pending byte count queued again (zeros written through
	 * the other end).  Same returns as recreate.  NULL when the kind has
	 * no pairs.
	 */
	int (*recreate_pair)(const struct image_target *a,
			     const struct image_target *b,
			     const struct recreate_req *req, int fds_out[2]);
	/*
	 * Make the target (rr->fd, created by recreate) ready for some
	 * event right now, for a moment: returns 0 (poll() on rr->fd now
	 * reports an event; undo_ready must follow), or -EOPNOTSUPP / an
	 * -errno with why filled when it cannot.  NULL when impossible.
	 */
	int (*make_ready)(const struct image_target *t,
			  struct recreate_ready *rr, char *why,
			  size_t why_len);
	/* Undo what make_ready did; closes rr->aux_fd. */
	void (*undo_ready)(const struct image_target *t,
			   struct recreate_ready *rr);
};

/* The ops of a kind; the entry for OTHER (nothing possible) when unknown. */
const struct recreate_ops *recreate_ops_of(uint32_t kind);

/*
 * Find the targets that must be created together: the two ends of a pipe
 * (image_pipe.peer, or else the same pipefs inode with opposite ends) and
 * the two ends of a socketpair (both flagged IMAGE_SOCK_PAIR and naming
 * each other in image_socket.pair; ends flagged without a pair, AF_UNIX,
 * are paired in id order per type and protocol).  partner[] has
 * img->ntargets entries and gets the other end's id or IMAGE_NONE.
 * Returns 0 or -ENOMEM; O(n log n) in targets.
 */
int recreate_match_pairs(const struct image *img, uint32_t *partner);

/*
 * Poll fd without waiting and return the events it is ready for now
 * (POLLIN, POLLOUT, ... with POLLERR/POLLHUP), 0 for none, or -errno.
 */
int recreate_poll_now(int fd);

/* ---- shared by the recreate*.c files ---- */

/* snprintf into buf when buf is not NULL. */
void recreate_say(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write "what: strerror(errno)" into why; returns -errno (errno kept). */
int recreate_errno(char *why, size_t why_len, const char *what);

/* Set O_NONBLOCK on fd when t->file_flags has it.  Returns 0 or -errno. */
int recreate_set_nonblock(int fd, const struct image_target *t);

/*
 * The status flags (KIND_STATUS_FLAGS) of t that its kind's recreate gives
 * it at creation: O_NONBLOCK as the image says, and a pipe's write end
 * O_DIRECT (pipe2 makes it a packet-mode pipe).
 */
uint32_t recreate_flags_given(const struct image_target *t);

/*
 * Give fd, just created for t with the status flags `given`
 * (recreate_flags_given), every other status flag of t->file_flags that
 * F_SETFL sets (KIND_STATUS_FLAGS): O_APPEND, O_ASYNC, O_DIRECT,
 * O_NOATIME.  No syscall when there is none; else one F_SETFL and one
 * F_GETFL to read back what the kernel kept.  The flags the kernel
 * refuses (F_SETFL fails with EPERM or EINVAL: tried one by one then) or
 * takes without keeping them are left out: *refused gets them, and
 * refused_errno[i] the errno of bit i's refusal (0: taken, not kept).
 * Returns 0, or -errno when fcntl fails otherwise.
 */
int recreate_set_flags(int fd, const struct image_target *t, uint32_t given,
		       uint32_t *refused, int refused_errno[32]);

/*
 * Remove the AF_UNIX socket file at path when it still is the file with
 * this device and inode (not followed through a symlink).  true when it
 * was removed.
 */
bool recreate_unix_unlink(const char *path, dev_t dev, ino_t ino);

/* The socket entry's operations (recreate_socket.c). */
int recreate_socket_can(const struct image_target *t, bool has_partner,
			char *why, size_t why_len);
int recreate_socket(const struct image_target *t,
		    const struct recreate_req *req, int *fd_out);
int recreate_socket_pair(const struct image_target *a,
			 const struct image_target *b,
			 const struct recreate_req *req, int fds_out[2]);
int recreate_socket_make_ready(const struct image_target *t,
			       struct recreate_ready *rr, char *why,
			       size_t why_len);
void recreate_socket_undo_ready(const struct image_target *t,
				struct recreate_ready *rr);

#endif
