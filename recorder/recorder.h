/* SPDX-License-Identifier: MIT */
/*
 * The recorder: an image of the calling process's epoll state, the kernel's
 * view (kview.h) enriched with the shadow registry and reconciled with it.
 */
#ifndef EPOLLCR_RECORDER_H
#define EPOLLCR_RECORDER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "epollcr_image.h"

/* The value a dump request carries in sigqueue(): magic | 24-bit nonce. */
#define RECORDER_REQ_MAGIC 0x45000000u /* 'E' in the top byte */
#define RECORDER_REQ_MASK 0xff000000u
#define RECORDER_NONCE_MASK 0x00ffffffu

/*
 * Abstract unix socket name on which `epollcr dump` waits for the image of
 * pid, for a request with this nonce: "\0epollcr-dump-PID-NONCE".  Writes
 * at most len bytes into name (len >= 64) and returns the name's length
 * including the leading NUL.
 */
int recorder_socket_name(char *name, size_t len, int pid, uint32_t nonce);

/* Flags of recorder_build_image(). */
#define RECORDER_F_FULL_KCMP 0x1 /* resolve every watch through kcmp */
#define RECORDER_F_NO_PROC 0x2	 /* pretend /proc is unreadable (tests) */
#define RECORDER_F_PER_FD 0x4	 /* every fd's facts from its fdinfo, none
				  * from the shadow (tests, benches) */

/*
 * Build the image of the calling process into img (initialised by the
 * call): the kernel's view, the shadow's enrichment (kinds, backlog,
 * backtraces), a diagnostic for every discrepancy.  While it reads the
 * kernel, every registered set is locked, so no epoll_ctl of the program
 * completes on it: a consistent cut.  Returns 0 or -errno (img is then
 * freed).
 */
int recorder_build_image(struct image *img, unsigned flags);

/*
 * Called by recorder_build_image() before it reads anything, when set: the
 * shim adopts the epoll sets its process inherited across exec there if
 * nothing did before (shim/init.c).  NULL outside the shim.
 */
extern void (*recorder_before_build)(void);

/*
 * Build the image and write it to fd (a stream) or, with path, atomically
 * to a file.  Return 0 or -errno.
 */
int recorder_dump_fd(int fd, unsigned flags);
int recorder_dump_file(const char *path, unsigned flags);
/* The same, as the file name (one component) in the directory dirfd. */
int recorder_dump_at(int dirfd, const char *name, unsigned flags);

/*
 * Open path as a private image directory: created 0700 when missing (with
 * create), opened O_DIRECTORY|O_NOFOLLOW, and refused (checked through the
 * descriptor) when it is a symlink or not a directory, owned by another
 * user, group/world writable, or under a directory that belongs to neither
 * root nor us or that others may write without the sticky bit.  Returns the
 * directory's fd (close-on-exec) or -errno with a one-line reason in why.
 */
int recorder_private_dir_open(const char *path, bool create, char *why,
			      size_t why_len);

/*
 * Diagnostics of a kernel view without the shadow: stale tfds, connected
 * sockets a restore cannot bring back, event bits no flag defines (dropped
 * from the image).  Used by recorder_build_outside().
 */
void recorder_diagnose_kernel_view(struct image *img);

#define RECORDER_READS_DEFAULT 5 /* reads of another process, at most */
#define RECORDER_READS_MAX 100	 /* largest --reads accepted */

/* Options of recorder_build_outside(). */
struct recorder_outside {
	unsigned max_reads;	/* reads until two in a row agree, 2 ..
				 * RECORDER_READS_MAX; 0: the default */
	bool freeze;		/* stop every thread with PTRACE_SEIZE +
				 * PTRACE_INTERRUPT for the read, detach
				 * after: one read is then enough */
	const char *why_kernel;	/* why the shim did not answer, for the
				 * image's diagnostic, or NULL */
	unsigned reads;		/* out: reads made */
};

/*
 * Build the image of another process, pid, from the kernel's view alone
 * (/proc/PID/fd, /proc/PID/fdinfo, kcmp, sock_diag): no shim is needed,
 * only the right to read the process (same user, or root).  The process
 * is not stopped (unless opt->freeze): its state is read up to
 * opt->max_reads times until two reads in a row agree (kview_compare);
 * when none did, the last read is kept with IMAGE_F_UNSETTLED and a
 * diagnostic.  Sets IMAGE_F_KERNEL_ONLY and adds one diagnostic listing
 * what such an image lacks.  img is initialised by the call.  Returns 0,
 * or -errno (img freed) with a one-line reason naming the cause in why
 * (another user's process, a ptrace restriction, a process that exited
 * during the read...).
 */
/* The first line of the file at path, without its newline, in a new
 * string; NULL when it cannot be read or is empty. */
char *recorder_read_line(const char *path);

int recorder_build_outside(pid_t pid, struct recorder_outside *opt,
			   struct image *img, char *why, size_t why_len);

/*
 * Why pid cannot be read from outside after an error err (-errno) of
 * kview_snapshot() or ptrace: writes one line into why.
 */
void recorder_outside_why(pid_t pid, int err, char *why, size_t why_len);

/* The state letter of /proc/PID/stat ('R', 'S', 'Z'...), 0 when gone. */
char recorder_pid_state(pid_t pid);

/*
 * The image directory for this process: dir_env when not empty (EPOLLCR_DIR),
 * else $XDG_RUNTIME_DIR/epollcr, else TMPDIR (or /tmp)/epollcr-UID, opened
 * and checked by recorder_private_dir_open() (created when missing).  Writes
 * the path into out (len bytes), for messages.  Returns the directory's fd
 * or -errno with a reason in why.
 */
int recorder_image_dir(const char *dir_env, char *out, size_t len, char *why,
		       size_t why_len);

#endif
