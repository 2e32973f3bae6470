/* SPDX-License-Identifier: MIT */
/*
 * Per-kind operations on the kernel side, one table entry per kind of target
 * (as CRIU's fdtype_ops): recognise, describe, compare.  The recorder and
 * `epollcr verify` dispatch through kind_ops_of().  The replayer's half of
 * each kind (recreate, make ready) is in replayer/recreate.h.
 */
#ifndef EPOLLCR_KIND_H
#define EPOLLCR_KIND_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "epollcr_image.h"

struct kind_ops {
	uint32_t kind;		/* enum image_kind */
	const char *name;	/* "socket"... */
	/*
	 * Recognise a target from its /proc/PID/fd link text
	 * ("socket:[123]", "anon_inode:[eventfd]").
	 */
	bool (*match_link)(const char *link);
	/*
	 * Fill t->u and t->file_flags from the kernel.  fd is a descriptor
	 * of the target in the calling process, or -1 when only /proc is
	 * available (another pid); fdinfo is the text of /proc/PID/fdinfo/N
	 * (NUL-terminated) or NULL, in which case the kinds that need it
	 * (eventfd, timerfd, signalfd) read the calling thread's own.
	 * t->path (the link text, may be NULL) is set by the caller and
	 * read, never changed.  With fd == -1 only what fdinfo and the link
	 * show is filled (a socket's domain, for one, stays 0 = unknown).
	 * Returns 0 or -errno (-EINVAL: fdinfo lacks what the kind prints;
	 * -EBADF, -ENOTSOCK...: fd is not such a file).
	 */
	int (*describe)(struct image_target *t, int fd, const char *fdinfo);
	/*
	 * Compare two descriptions of a target (image vs. live kernel);
	 * write a one-line difference into diff (diff_len bytes; diff may
	 * be NULL) and return false if they differ in anything a restore
	 * must bring back: socket domain/type/protocol, listening, bound
	 * address, reuse and v6only flags (fields a description made
	 * without a descriptor could not learn compare equal); pipe end;
	 * eventfd count and semaphore mode; timerfd clock, settime flags,
	 * interval and armed or not; signalfd mask; epoll number of
	 * watches; other: the path.  File flags are compared by the caller.
	 */
	bool (*same)(const struct image_target *a,
		     const struct image_target *b, char *diff, size_t diff_len);
};

/* The ops of a kind; the OTHER entry for unknown kinds.  Never NULL. */
const struct kind_ops *kind_ops_of(uint32_t kind);

/*
 * The file status flags F_SETFL changes (the kernel's SETFL_MASK; O_NDELAY
 * is O_NONBLOCK on Linux): what a restore gives a file it created, and,
 * with the access mode (O_ACCMODE), what verify compares.
 */
#define KIND_STATUS_FLAGS \
	(O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME)

/*
 * File flags as text for messages: the access mode and each flag by name
 * ("O_WRONLY|O_NONBLOCK|O_DIRECT"), any other bits in octal ("|0100000").
 * Writes at most len bytes into buf (NUL-terminated) and returns buf.
 */
const char *kind_file_flags_text(uint32_t flags, char *buf, size_t len);

/* The name of one file flag bit ("O_DIRECT"), NULL when it has none here. */
const char *kind_file_flag_name(uint32_t flag);

/* The kind whose match_link accepts link, IMAGE_KIND_OTHER otherwise. */
uint32_t kind_from_link(const char *link);

/* Where an AF_UNIX socket bound to a path can be reached now. */
enum kind_unix_file {
	KIND_UNIX_FILE_NONE = 0,    /* not bound to a path: nothing done */
	KIND_UNIX_FILE_AT_NAME,	    /* its file is at its bound name */
	KIND_UNIX_FILE_RENAMED,	    /* its file was renamed: addr updated */
	KIND_UNIX_FILE_UNREACHABLE, /* no file found: removed or moved away */
	KIND_UNIX_FILE_UNKNOWN,	    /* sock_diag or the path cannot be read */
};

/*
 * For s, described from fd (an AF_UNIX socket bound to a path and not
 * connected; nothing is done for others): find the
 * socket file bind() made (sock_diag's UNIX_DIAG_VFS inode) at the bound
 * path, else among the entries of that path's directory (a server that
 * binds a temporary name and renames it, as haproxy does, at most
 * KIND_UNIX_SCAN_MAX entries looked at).  Found: s->file_mode gets the
 * file's mode, and when renamed, s->addrp the name it has now (old_name
 * gets the bound name).  Relative paths are taken from cwd_fd (the
 * process's cwd).  Costs one sock_diag request.
 */
enum kind_unix_file kind_socket_unix_file(struct image_socket *s, int fd,
					  int cwd_fd, char *old_name,
					  size_t old_name_len);
#define KIND_UNIX_SCAN_MAX 65536 /* directory entries looked at */

#endif
