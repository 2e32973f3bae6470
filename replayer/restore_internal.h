/* SPDX-License-Identifier: MIT */
/*
 * The restore executor's rooms (restore.c, plan.c, create.c, watches.c,
 * place.c, verify.c): the state of one restore (struct restore) and each
 * phase's entry point, in the order rs_run (restore.c) calls them; each
 * returns 0, or -1 with the first failure's reason recorded by rs_fail.
 * Not part of any public API.
 */
#ifndef EPOLLCR_RESTORE_INTERNAL_H
#define EPOLLCR_RESTORE_INTERNAL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "kind.h"
#include "kview.h"
#include "log.h"
#include "recreate.h"
#include "restore.h"
#include "unix_diag.h"

/* The bits a fired EPOLLONESHOT watch keeps (the kernel's EP_PRIVATE_BITS). */
#define RS_PRIVATE_BITS \
	(EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)
/* The bits the kernel ORs into every ADD and MOD. */
#define RS_ALWAYS_BITS (EPOLLERR | EPOLLHUP)
/* poll() bits that may be asked for when arming a fired oneshot again. */
#define RS_POLL_BITS                                                          \
	(EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND |          \
	 EPOLLWRNORM | EPOLLWRBAND | EPOLLRDHUP)
/*
 * The most a whole restore waits for events that make fired oneshots'
 * files ready (a loopback connection to a listener): a listener that no
 * connection can reach costs the rest of it once, not a second each.
 */
#define RS_READY_BUDGET_MS 1000
/* Numbers checked per poll() call when looking for free fd numbers. */
#define RS_POLL_CHUNK 1024
/* fdinfo bytes allowed per expected watch line (a line is about 90). */
#define RS_FDINFO_LINE_MAX 192
#define RS_FDINFO_HEAD_MAX 4096
/* Bytes of a set's fdinfo read and parsed at a time. */
#define RS_FDINFO_CHUNK (64 * 1024)

enum rs_state {
	RS_UNUSED = 0, /* not part of the epoll state: left alone */
	RS_WANTED,     /* to be created (or found, targets=existing) */
	RS_SKIPPED,    /* cannot be brought back, missing=skip */
	RS_LIVE,       /* created, or found at its fds */
};

/* Per-watch flags (r->wflags). */
#define RSW_SKIP 0x1	/* left out: its target is skipped */
#define RSW_ARMED 0x2	/* fired oneshot that had to be restored armed */
#define RSW_DIRECT 0x4	/* its tfd holds its file: added with no dance */

/* What the restore knows of one image target (index id - 1). */
struct rs_target {
	char *skip_why;	   /* RS_SKIPPED: why it cannot be restored */
	int home;	   /* fd holding it while watches are added, -1 */
	uint32_t partner;  /* created together with it, IMAGE_NONE */
	uint32_t fd_first; /* its fds: r->by_target[fd_first..+fd_count) */
	uint32_t fd_count;
	uint32_t w_first;  /* sets: their watches, r->by_set[w_first..] */
	uint32_t w_count;
	uint8_t state;	   /* enum rs_state */
	uint8_t height;	   /* sets: longest chain of sets inside, 0..4 */
	bool owned;	   /* created by the restore: closed on failure */
	bool home_temp;	   /* home is a temporary number >= r->base */
};

/* An fd number of the image and its entry in img->fds, sorted by number. */
struct rs_num {
	int32_t fd;
	uint32_t fi;
};

/*
 * What the image puts at one fd number (r->num, indexed by number): the
 * fd entry there and the target of the watches added under it.
 */
struct rs_numinfo {
	uint32_t fi1;	/* img->fds index + 1 of the entry there, 0: none */
	uint32_t owner;	/* target + 1 of every watch with this tfd, 0: no
			 * watch, RS_MIXED: watches of several files */
};
#define RS_MIXED UINT32_MAX
/*
 * r->num holds r->base entries when that is at most this many for an
 * image of n fds and watches (else lookups are binary searches).
 */
#define RS_NUM_DIRECT_MAX(n) ((uint64_t)(n) * 4 + 4096)

/* One watch's (tfd, target), sorted: which numbers a dup3 dance needs. */
struct rs_tfd {
	int32_t tfd;
	uint32_t target;
};

struct restore {
	struct image *img;
	bool existing;		/* targets=existing */
	bool skip_missing;	/* missing=skip */
	bool policy;		/* root restoring a non-root image, not
				 * trusted: rs_check_policy applies */
	int report_fd;
	char *err;
	size_t err_len;
	bool failed;		/* err holds the first failure */
	uint32_t ndiags_before; /* img->ndiags when the restore began */
	int base;		/* temporaries take numbers >= base */
	uint32_t poll_batch;	/* numbers per poll() (RLIMIT_NOFILE bounds) */
	struct rs_target *t;	/* [ntargets] */
	uint32_t *by_target;	/* fd indexes grouped by target */
	struct rs_numinfo *num;	/* [base] by number, or NULL: then */
	struct rs_num *by_number; /* [nfds] sorted by fd number */
	struct rs_tfd *tfds;	/* [nwatches], sorted */
	uint32_t *by_set;	/* watch indexes grouped by set */
	uint8_t *placed;	/* [nfds]: the restore put a file there */
	uint8_t *wflags;	/* [nwatches]: RSW_* */
	uint32_t *sets;		/* set ids, innermost first */
	int *fillers;		/* created fds left below their home, open */
	uint32_t nfillers;	/* until the create phase ends */
	uint32_t nsets;
	struct timespec ready_end; /* CLOCK_MONOTONIC end of the one
				    * budget of waiting to make files ready */
	const struct restore_ext *ext; /* never NULL */
	struct restore_file *files; /* socket files bound: removed on
				     * failure, handed to the result */
	uint32_t nfiles, cap_files;
	char why[512];		/* scratch for per-kind reasons */
	char note[512];
};

/*
 * Messages and indexes (restore.c), used by every phase: the first
 * failure's reason (rs_fail), diagnostics and names of targets for
 * messages, the sorted indexes of the image's fds, targets and watches
 * built by rs_index, and the predicates on them.
 */
int rs_fail(struct restore *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
struct image_target *rs_tgt(const struct restore *r, uint32_t id);
const char *rs_what(const struct restore *r, uint32_t id, char *buf,
		    size_t len);
const struct image_fd *rs_fd_of(const struct restore *r,
				const struct rs_target *rt, uint32_t k);
int rs_first_fd(const struct restore *r, uint32_t id);
int rs_diag(struct restore *r, uint32_t severity, uint32_t code,
	    uint32_t set, int tfd, uint32_t target, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
const struct image_fd *rs_fd_at(const struct restore *r, int fd);
bool rs_clean(const struct restore *r, int fd, uint32_t target);
bool rs_direct(const struct restore *r, const struct image_watch *w);
bool rs_fd_cloexec(const struct image_fd *f);
int rs_index(struct restore *r);

/*
 * Plan (plan.c).  In: the image.  Out: r indexed and checked against this
 * process (limits, free numbers or, with targets=existing, the files found
 * there), each target RS_WANTED or RS_SKIPPED, sets ordered innermost
 * first, homes chosen.  Nothing is touched when it fails.
 */
const struct image_watch *rs_first_watch_on(const struct restore *r,
					    uint32_t id);
int rs_unrestorable(struct restore *r, uint32_t id, const char *why);
int rs_mark_skipped_watches(struct restore *r);
int rs_plan(struct restore *r);

/*
 * Create (create.c).  In: a plan.  Out: every wanted target and set open at
 * its home (its final number, or a temporary one >= r->base), owned by the
 * restore.  Root restoring an untrusted image checks each path and socket
 * address first (rs_check_policy).  rs_place_fd is shared with place.c.
 */
int rs_place_fd(struct restore *r, uint32_t id, uint32_t fi);
void rs_close_fillers(struct restore *r);
int rs_create_all(struct restore *r);

/*
 * Watches (watches.c).  In: targets and sets at their homes.  Out: every
 * watch added, keyed (file, tfd) as in the image; fired oneshots armed,
 * made ready and disarmed.
 */
uint32_t rs_expected_events(const struct restore *r, uint32_t i);
int rs_add_watches(struct restore *r);

/*
 * Place (place.c).  In: watches added.  Out: every file and set at all its
 * final numbers, temporaries closed.
 */
int rs_place_all(struct restore *r);

/*
 * Verify (verify.c).  In: the placed sets.  Out: 0 when /proc/self/fdinfo
 * of every set shows the image's watches on the same files (inode, or kcmp
 * where the file lives elsewhere), else the first difference in rs_fail.
 */
int rs_verify(struct restore *r);


#endif /* EPOLLCR_RESTORE_INTERNAL_H */
