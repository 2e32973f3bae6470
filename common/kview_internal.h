/* SPDX-License-Identifier: MIT */
/*
 * The kernel view's rooms (kview.c and kview_*.c): the state of one
 * snapshot (struct kv) and each stage's entry points, in the order
 * kview_snapshot (kview.c) runs them.  Not part of any public API.
 */
#ifndef EPOLLCR_KVIEW_INTERNAL_H
#define EPOLLCR_KVIEW_INTERNAL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/kcmp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "escape.h"
#include "image_io.h"
#include "kind_internal.h"
#include "kview.h"
#include "inet_diag.h"
#include "unix_diag.h"

#define KVIEW_MAX_FDINFO (256u << 20) /* bytes of one fdinfo text read */
#define KVIEW_READ_BUF (64u << 10)    /* initial read buffer */
#define KVIEW_TEXT_KEEP 1024	      /* bytes of a non-epoll fdinfo kept */
#define KVIEW_MAX_ARENA (256u << 20)  /* bytes of kept texts and links */
#define KVIEW_MAX_EINTR 100	      /* retries of one interrupted call */
#define KVIEW_LINK_MAX 4096	      /* bytes of one link text */
#define KVIEW_MAX_FDS (1u << 22)      /* descriptors of one process */

/* Class of a mount: what every file on it is. */
enum kv_class {
	KV_CLASS_UNKNOWN = 0,
	KV_CLASS_SOCK,	/* sockfs: "socket:[INO]" */
	KV_CLASS_PIPE,	/* pipefs: "pipe:[INO]" */
	KV_CLASS_ANON,	/* anon inodes: "anon_inode:..." */
	KV_CLASS_PATH,	/* a real file system */
};

struct kv_mnt {
	int mnt_id;
	uint8_t cls;
	bool have_sdev;
	uint32_t sdev;	/* kernel dev_t encoding */
};

/* One descriptor of the process. */
struct kv_fd {
	int fd;
	int mnt_id;		/* -1 when fdinfo shows none */
	uint32_t flags;		/* fdinfo flags: f_flags | O_CLOEXEC of fd */
	uint32_t kind;		/* enum image_kind */
	uint32_t sdev;		/* valid with have_sdev */
	uint64_t ino;		/* fdinfo ino: */
	uint64_t efd_id;	/* eventfd-id + 1, 0 when none */
	size_t text_off;	/* kept fdinfo text in the arena */
	size_t link_off;	/* link text in the arena, with have_link */
	uint32_t set;		/* index + 1 in kv.sets for an epoll fd */
	uint32_t group;		/* index + 1 in kv.groups */
	uint8_t cls;		/* enum kv_class */
	bool have_sdev, have_text, have_link, kind_known, relevant;
	bool have_known;	/* a socket's known, from the shadow */
	struct kind_socket_known known;
};

/* The watches read from one epoll fd. */
struct kv_set {
	uint32_t fdi;		/* index in kv.fds */
	struct fdinfo_watch *w;
	uint32_t nw, cap;
};

/* One open file description: a target. */
struct kv_group {
	uint32_t kind;
	uint32_t first;		/* index in kv.members */
	uint32_t n;		/* members */
	uint32_t rep;		/* kv.fds index of its lowest fd */
	uint32_t target;	/* image target id */
	uint32_t claim;		/* stamp of the (set, tfd) that matched it */
	uint32_t set_claim;	/* stamp of the last set that matched it */
	uint64_t ino;
};

/* A unix socket of the process, as sock_diag shows it. */
struct kv_usock {
	struct unix_diag_sock d;
	bool paired;		/* one end of a socketpair held here */
};

/* What a watch's fdinfo line says its file is. */
struct kv_key {
	uint64_t ino;
	uint32_t sdev;
};

/* How one watch was resolved. */
struct kv_res {
	uint32_t group;		/* index + 1, 0 when no fd holds the file */
	uint32_t toff;		/* rank among the set's watches of its tfd */
	uint32_t run;		/* stamp of its (set, tfd) */
	bool pending;		/* stale: the other descriptions to scan */
};

struct kv {
	pid_t kpid;		/* pid for kcmp */
	bool self;
	unsigned flags;
	const struct kview_hints *hints;
	struct image *img;
	int fdinfo_dir, fd_dir, pidfd;
	char *buf;
	size_t buf_cap;
	char *arena;
	size_t arena_len, arena_cap;
	struct kv_fd *fds;
	uint32_t nfds;
	struct kv_mnt *mnts;
	uint32_t nmnts, cap_mnts, last_mnt;
	struct kv_set *sets;
	uint32_t nsets, cap_sets;
	struct kv_group *groups;
	uint32_t ngroups;
	uint32_t *members;
	uint32_t *by_ino;	/* group indices sorted by ino */
	struct kv_key *keys;	/* watched (ino, sdev), sorted, unique */
	size_t nkeys;
	bool have_sock_dev, have_pipe_dev, have_anon, learnt_pseudo;
	uint32_t sock_dev, pipe_dev, anon_dev;
	uint64_t anon_ino;
	size_t kind_link[IMAGE_KIND_COUNT]; /* arena offset + 1, learnt */
	bool kcmp_broken;
	uint32_t gone;		/* kcmp found a watch gone (TRY_GONE) */
	int kcmp_failed_errno;	/* KCMP_FILE failure while grouping */
	struct kv_usock *usocks; /* the process's unix sockets, by inode */
	uint32_t nusocks, cap_usocks;
	uint64_t *sock_inos;	/* its socket fds' inodes, sorted, unique */
	uint32_t nsock_inos;
	struct inet_diag_sock *inet; /* its TCP/UDP sockets, by inode */
	uint32_t ninet, cap_inet;
	uint32_t stamp;
	struct kview_stats st;
};

/*
 * Small helpers (kview.c), used by every stage: device encoding, counted
 * kcmp, the arena of kept texts and links, and the per-fd link and stat
 * lookups.
 */
uint32_t kernel_dev(dev_t dev);
long kv_kcmp(struct kv *kv, int type, unsigned long a,
	     unsigned long b);
int arena_put(struct kv *kv, const char *s, size_t len, size_t *off);
const char *fd_text(const struct kv *kv, const struct kv_fd *f);
const char *fd_link(const struct kv *kv, const struct kv_fd *f);
void fd_name(char *name, size_t len, int fd);
int fd_learn_link(struct kv *kv, struct kv_fd *f);
int kv_stat(struct kv *kv, int fd, struct stat *st);

/*
 * Reading (kview_read.c).  In: kv with its /proc directories open.  Out:
 * kv->fds, one entry per descriptor with its fdinfo keys, mount class and
 * (when needed) link; kv->sets, the watches of every epoll fd.  Called by
 * kview_snapshot (read_all_fds) and by the watch stage, which reads a set
 * again (read_fdinfo, set_add_watch) and finds fds by number (find_fd).
 * Returns 0 or -errno.
 */
ssize_t read_fdinfo(struct kv *kv, int fd);
int set_add_watch(void *ctx, const struct fdinfo_watch *w);
int read_all_fds(struct kv *kv);
int32_t find_fd(const struct kv *kv, int fd);

/*
 * Grouping (kview_group.c).  In: kv->fds and kv->sets.  Out: the fds that
 * matter marked relevant (mark_relevant), and kv->groups, one open file
 * description each, with its members and the by-inode index (group_fds,
 * kcmp(KCMP_FILE) where inodes are shared).  Called by kview_snapshot.
 * Returns 0 or -errno.
 */
int mark_relevant(struct kv *kv);
int group_fds(struct kv *kv);

/*
 * Describing (kview_describe.c).  In: kv->groups.  Out: the image's targets
 * (emit_group, one per group) and fds (emit_fds); both ends of a pipe or a
 * socketpair held here named partners (pair_pipes, pair_sockets, after
 * find_socketpairs read the unix sockets through sock_diag).  Called by
 * kview_snapshot.  Returns 0 or -errno.
 */
int emit_group(struct kv *kv, struct kv_group *g);
int read_inet_bulk(struct kv *kv);
int emit_fds(struct kv *kv);
void pair_pipes(struct kv *kv);
int find_socketpairs(struct kv *kv);
void pair_sockets(struct kv *kv);

/*
 * Resolving (kview_resolve.c).  In: kv->sets, kv->groups and the targets
 * already in the image.  Out: the image's sets and watches, each watch tied
 * to its target (orphan targets added for files no fd holds).  Called by
 * kview_snapshot last.  Returns 0 or -errno.
 */
int emit_watches(struct kv *kv);

#endif /* EPOLLCR_KVIEW_INTERNAL_H */
