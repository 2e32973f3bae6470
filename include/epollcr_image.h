/* SPDX-License-Identifier: MIT */
/*
 * epollcr image format, version 1, and the in-memory model that both the
 * recorder (which fills it from the kernel and the shadow registry, then
 * writes it) and the replayer (which reads it, validates it and rebuilds it)
 * share.  docs/image-format.md is the prose version of this header; the two
 * must agree.
 *
 * On disk:
 *   file   := header record* end-record
 *   header := 32 bytes, see struct image_file_header
 *   record := u32 type, u32 payload_len (little endian), payload
 * A payload is a sequence of fields.  Every integer field is an unsigned
 * LEB128 varint (at most 10 bytes, minimal: no redundant 0x80 bytes; a value
 * that does not fit its field is an error); a string is a varint length
 * followed by that many bytes, no NUL, at most IMAGE_MAX_STRING bytes; the
 * empty string stands for "absent" (NULL in the model).  Signed numbers are
 * stored as value + 1 (fd numbers where -1 means none) or as zigzag deltas
 * (fd numbers and ids inside batches).  Records come in this order: PROCESS,
 * MODULE*, BACKTRACE*, TARGET*, FD*, WATCHES*, DIAG*, END.  A record may only
 * refer to ids defined by earlier records, so one pass validates every
 * reference.  The exact field list of every record is in
 * docs/image-format.md.
 */
#ifndef EPOLLCR_IMAGE_H
#define EPOLLCR_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define IMAGE_MAGIC "EPOLLCR\0"		/* 8 bytes at offset 0 */
#define IMAGE_MAGIC_LEN 8
#define IMAGE_VERSION 1			/* this header's format version */
#define IMAGE_HEADER_LEN 32		/* bytes of struct image_file_header */
#define IMAGE_BYTE_ORDER 0x01020304u	/* stored little endian */

/* Record types. */
enum image_record_type {
	IMAGE_REC_PROCESS = 1,	 /* who was dumped; exactly one, first */
	IMAGE_REC_MODULE = 2,	 /* a loaded object named by backtraces */
	IMAGE_REC_BACKTRACE = 3, /* one distinct call stack */
	IMAGE_REC_TARGET = 4,	 /* a batch of open file descriptions */
	IMAGE_REC_FD = 5,	 /* a batch of fd -> target bindings */
	IMAGE_REC_WATCHES = 6,	 /* a batch of watches of one epoll set */
	IMAGE_REC_DIAG = 7,	 /* one diagnostic */
	IMAGE_REC_END = 8,	 /* counts and checksum; exactly one, last */
};

/*
 * Largest payload, in bytes, that a record of each type may have.  Batches
 * (TARGET, FD, WATCHES) are cut by the writer so that no payload exceeds
 * IMAGE_MAX_BATCH_PAYLOAD; the reader rejects any record whose payload_len is
 * above its type's limit before reading the payload.  For the other types the
 * limit is exact: the size of the record with every field at its largest
 * encoding (strings of IMAGE_MAX_STRING bytes, IMAGE_MAX_FRAMES frames), so a
 * valid record can reach it and none can exceed it.
 */
#define IMAGE_MAX_PROCESS_PAYLOAD 12324	  /* 5 varints (30) + 3 strings */
#define IMAGE_MAX_MODULE_PAYLOAD 4108	  /* string (4098) + base (10) */
#define IMAGE_MAX_BACKTRACE_PAYLOAD 263681 /* 1 + 64 frames of 4120 */
#define IMAGE_MAX_BATCH_PAYLOAD 65536	  /* TARGET, FD, WATCHES */
#define IMAGE_MAX_DIAG_PAYLOAD 8211	  /* 5 varints (15) + 2 strings */
#define IMAGE_END_PAYLOAD_MAX 25	  /* 6 counts (20) + CRC-32C (5) */
#define IMAGE_MAX_STRING_FIELD 4098	  /* length varint (2) + 4096 bytes */
#define IMAGE_MAX_SOCKADDR 128		  /* bytes of a socket address field */

/* Whole-image limits the reader enforces, whatever the counts claim. */
#define IMAGE_MAX_STRING 4096	      /* bytes of one string field */
#define IMAGE_MAX_FRAMES 64	      /* frames of one backtrace */
#define IMAGE_MAX_TARGETS (1u << 24)  /* targets in one image */
#define IMAGE_MAX_FDS (1u << 24)      /* fd bindings in one image */
#define IMAGE_MAX_WATCHES (1u << 24)  /* watches in one image */
#define IMAGE_MAX_BACKTRACES (1u << 20) /* distinct backtraces */
#define IMAGE_MAX_MODULES 4096	      /* distinct modules */
#define IMAGE_MAX_DIAGS (1u << 20)    /* diagnostics */
#define IMAGE_MAX_NEST_DEPTH 5	      /* sets in one chain: EP_MAX_NESTS + 1 */
#define IMAGE_MAX_BYTES (256u << 20)  /* bytes of one image file or stream */
#define IMAGE_NONE 0		      /* id 0 names nothing in references */

/* The 32-byte file header. All fields little endian. */
struct image_file_header {
	char magic[IMAGE_MAGIC_LEN];	/* IMAGE_MAGIC */
	uint16_t version;		/* IMAGE_VERSION */
	uint16_t header_len;		/* IMAGE_HEADER_LEN */
	uint32_t byte_order;		/* IMAGE_BYTE_ORDER */
	uint32_t flags;			/* IMAGE_F_* */
	uint32_t reserved0;		/* zero */
	uint64_t reserved1;		/* zero */
};

/* image flags (header and struct image) */
#define IMAGE_F_COMPLETE 0x1	   /* nothing was lost while recording */
#define IMAGE_F_KERNEL_VIEW 0x2	   /* /proc/self/fdinfo was read */
#define IMAGE_F_SHADOW_VIEW 0x4	   /* the shim's registry contributed */
#define IMAGE_F_KERNEL_ONLY 0x8	   /* read from outside the process, from
				    * the kernel's view alone: no shim */
#define IMAGE_F_UNSETTLED 0x10	   /* with KERNEL_ONLY: no two reads of the
				    * process agreed; the last one is kept */
#define IMAGE_F_SOCK_MODE 0x20	   /* socket targets have a file_mode field
				    * (a flag of the file's encoding: the
				    * reader and writer keep it out of
				    * struct image) */
#define IMAGE_F_ALL                                                    \
	(IMAGE_F_COMPLETE | IMAGE_F_KERNEL_VIEW | IMAGE_F_SHADOW_VIEW |  \
	 IMAGE_F_KERNEL_ONLY | IMAGE_F_UNSETTLED | IMAGE_F_SOCK_MODE)

/*
 * Event bits a watch may hold: EPOLLIN|PRI|OUT|ERR|HUP|RDNORM|RDBAND|WRNORM|
 * WRBAND|MSG|RDHUP and the private EPOLLEXCLUSIVE|WAKEUP|ONESHOT|ET.
 */
#define IMAGE_EVENTS_ALL 0xf00027dfu

/* Kinds of target.  The numbering is part of the format. */
enum image_kind {
	IMAGE_KIND_OTHER = 0,	 /* anything else: tty, inotify, device... */
	IMAGE_KIND_SOCKET = 1,	 /* socket(2), accept(2), socketpair(2) */
	IMAGE_KIND_PIPE = 2,	 /* one end of pipe(2) or a FIFO */
	IMAGE_KIND_EVENTFD = 3,	 /* eventfd(2) */
	IMAGE_KIND_TIMERFD = 4,	 /* timerfd_create(2) */
	IMAGE_KIND_SIGNALFD = 5, /* signalfd(2) */
	IMAGE_KIND_EPOLL = 6,	 /* epoll_create(2) */
	IMAGE_KIND_COUNT = 7,
};

/* Where a target's description came from (image_target.origin bits). */
#define IMAGE_ORIGIN_KERNEL 0x1	/* described from the kernel's view */
#define IMAGE_ORIGIN_SHADOW 0x2	/* the shim saw it being created */
#define IMAGE_ORIGIN_ALL 0x3	/* every origin bit */

/* socket target */
struct image_socket {
	uint32_t domain;	/* AF_* (SO_DOMAIN) */
	uint32_t type;		/* SOCK_STREAM... without flags (SO_TYPE) */
	uint32_t protocol;	/* SO_PROTOCOL */
	uint32_t flags;		/* IMAGE_SOCK_* */
	int32_t backlog;	/* listen() backlog, -1 when unknown */
	uint32_t addr_len;	/* bytes at addrp, 0 when unbound/unknown */
	uint32_t peer_len;	/* bytes at peerp, 0 when not connected */
	uint32_t pair;		/* with IMAGE_SOCK_PAIR: the other end's
				 * target id (both ends name each other),
				 * else IMAGE_NONE */
	uint32_t pending;	/* socketpair end: bytes queued for reading
				 * (SIOCINQ; a datagram socket's first
				 * datagram), 0 otherwise */
	uint32_t file_mode;	/* AF_UNIX path: st_mode of the socket file
				 * (S_IFSOCK | permission bits), 0 when not
				 * known (IMAGE_F_SOCK_MODE) */
	/*
	 * The addresses, out of line and sized to their length (see
	 * image_socket_set_addr), so that a target stays small.
	 */
	struct sockaddr_storage *addrp; /* getsockname(): addr_len bytes,
					 * NULL when addr_len is 0 */
	struct sockaddr_storage *peerp; /* getpeername(), for diagnostics:
					 * peer_len bytes, NULL when 0 */
};
#define IMAGE_SOCK_LISTENING 0x01 /* SO_ACCEPTCONN */
#define IMAGE_SOCK_CONNECTED 0x02 /* has a peer: not restorable unprivileged */
#define IMAGE_SOCK_REUSEADDR 0x04 /* SO_REUSEADDR */
#define IMAGE_SOCK_REUSEPORT 0x08 /* SO_REUSEPORT */
#define IMAGE_SOCK_BOUND 0x10	  /* bound to addr (explicitly or by listen) */
#define IMAGE_SOCK_V6ONLY 0x20	  /* IPV6_V6ONLY */
#define IMAGE_SOCK_PAIR 0x40	  /* one end of a socketpair in this image */
#define IMAGE_SOCK_ENDED 0x80	  /* a TCP connection that ended (reset or
				   * closed: getpeername ENOTCONN), or an
				   * accepted socket no longer connected: not
				   * restorable */
#define IMAGE_SOCK_FLAGS_ALL 0xff

/* A file_mode the format accepts: 0, or S_IFSOCK with permission bits. */
static inline bool image_socket_mode_valid(uint32_t file_mode)
{
	return file_mode == 0 || (file_mode & ~07777u) == 0140000u;
}

/* pipe target */
struct image_pipe {
	uint32_t write_end;	/* 1: write end, 0: read end */
	uint64_t ino;		/* pipefs inode, to pair the ends */
	uint32_t peer;		/* the other end's target id, IMAGE_NONE;
				 * both ends name each other */
	uint32_t pending;	/* bytes queued (FIONREAD on the read end) */
};

/* eventfd target */
struct image_eventfd {
	uint64_t count;		/* eventfd-count */
	uint32_t semaphore;	/* EFD_SEMAPHORE was given */
};

/* timerfd target; times in nanoseconds */
struct image_timerfd {
	uint32_t clockid;	/* CLOCK_* */
	uint32_t settime_flags;	/* IMAGE_TFD_FLAGS_ALL at most */
	uint64_t value_ns;	/* it_value as fdinfo shows it (0: disarmed) */
	uint64_t interval_ns;	/* it_interval */
	uint64_t ticks;		/* expirations not yet read */
};

/* timerfd settime flags: TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET */
#define IMAGE_TFD_FLAGS_ALL 0x3

/* signalfd target */
struct image_signalfd {
	uint64_t mask;		/* bit (n - 1) set for signal n */
};

/* epoll target */
struct image_epoll {
	uint32_t nwatches;	/* watches this set holds in the image */
};

/*
 * One open file description: what epoll keys a watch on.  Its size bounds
 * what an image costs in memory (docs/security.md): a socket's addresses
 * are out of line, sized to their length, so the union stays small.  Several fds may
 * refer to one target (dup), and a target may have no fd at all (a watched
 * file whose every fd was closed while a dup elsewhere kept it alive: only
 * the set still knows it).
 */
struct image_target {
	uint32_t id;		/* 1..n, unique, increasing in the image */
	uint32_t kind;		/* enum image_kind */
	uint32_t origin;	/* IMAGE_ORIGIN_* */
	uint32_t file_flags;	/* O_NONBLOCK | O_RDWR... (F_GETFL) */
	char *path;		/* readlink of /proc/PID/fd/N, or NULL */
	union {
		struct image_socket sock;
		struct image_pipe pipe;
		struct image_eventfd efd;
		struct image_timerfd tfd;
		struct image_signalfd sfd;
		struct image_epoll ep;
	} u;
};

/* One descriptor: fd number -> target. */
struct image_fd {
	int32_t fd;		/* the number in the dumped process */
	uint32_t target;	/* target id */
	uint32_t fd_flags;	/* FD_CLOEXEC */
};
#define IMAGE_FD_FLAGS_ALL 0x1	/* FD_CLOEXEC: the only fd flag */

/* One watch of one epoll set, keyed like the kernel: (target, tfd). */
struct image_watch {
	uint32_t set;		/* target id of the epoll set */
	int32_t tfd;		/* fd number given to EPOLL_CTL_ADD */
	uint32_t events;	/* as /proc/PID/fdinfo shows (EPOLLERR|HUP in) */
	uint64_t data;		/* epoll_data as fdinfo shows */
	uint32_t target;	/* target id of the watched file, or IMAGE_NONE */
	int32_t open_fd;	/* an fd holding the file at dump time, or -1 */
	uint32_t flags;		/* IMAGE_W_* */
	uint32_t bt_add;	/* backtrace id of the ADD, or IMAGE_NONE */
	uint32_t bt_mod;	/* backtrace id of the last MOD, or IMAGE_NONE */
};
#define IMAGE_W_SHADOW 0x1	/* the shim saw this watch being added */
#define IMAGE_W_KERNEL 0x2	/* the kernel listed this watch */
#define IMAGE_W_DISARMED 0x4	/* fired EPOLLONESHOT: events has no poll bits */
#define IMAGE_W_STALE 0x8	/* tfd no longer holds the watched file */
#define IMAGE_W_FLAGS_ALL 0xf

/* A loaded object that backtrace frames point into. */
struct image_module {
	uint32_t id;		/* 1..n */
	char *path;		/* as the dynamic loader named it */
	uint64_t base;		/* load address at dump time (diagnostic only) */
};

struct image_frame {
	uint32_t module;	/* module id, IMAGE_NONE when unknown */
	uint64_t offset;	/* from the module's load address (or absolute) */
	char *symbol;		/* nearest symbol, or NULL */
	uint64_t symbol_offset;	/* offset from that symbol */
};

struct image_backtrace {
	uint32_t id;		/* 1..n */
	uint32_t nframes;	/* <= IMAGE_MAX_FRAMES */
	struct image_frame *frames;
};

enum image_severity {
	IMAGE_SEV_INFO = 0,
	IMAGE_SEV_WARNING = 1,
	IMAGE_SEV_ERROR = 2,
};

/* Diagnostic codes: what kind of discrepancy, for tools. */
enum image_diag_code {
	IMAGE_DIAG_GENERIC = 0,		/* free text only */
	IMAGE_DIAG_UNSEEN_WATCH = 1,	/* kernel has it, the shim never saw it */
	IMAGE_DIAG_PHANTOM_WATCH = 2,	/* the shim has it, the kernel does not */
	IMAGE_DIAG_STALE_TFD = 3,	/* tfd holds another file or none */
	IMAGE_DIAG_MISMATCH = 4,	/* events/data differ shim vs kernel */
	IMAGE_DIAG_NO_PROC = 5,		/* /proc could not be read */
	IMAGE_DIAG_INCOMPLETE = 6,	/* the registry lost something */
	IMAGE_DIAG_UNRESTORABLE = 7,	/* target cannot be recreated unprivileged */
	IMAGE_DIAG_CODE_MAX = 7,
};

struct image_diag {
	uint32_t severity;	/* enum image_severity */
	uint32_t code;		/* enum image_diag_code */
	int32_t epfd;		/* epoll fd concerned, or -1 */
	int32_t tfd;		/* watch's tfd concerned, or -1 */
	char *path;		/* target path, or NULL */
	char *message;		/* one line, no trailing newline */
	uint32_t bt;		/* registration backtrace, or IMAGE_NONE */
};

/* Identity of the dumped process. */
struct image_process {
	int32_t pid;
	uint32_t uid;
	uint64_t time_sec;	/* CLOCK_REALTIME at dump */
	uint32_t time_nsec;
	uint32_t nofile_limit;	/* RLIMIT_NOFILE soft limit at dump */
	char *exe;		/* readlink /proc/self/exe */
	char *comm;		/* /proc/self/comm */
	char *version;		/* epollcr version that wrote the image */
};

/*
 * The whole model.  Arrays are owned by the struct; ids are indexes + 1, so
 * targets[id - 1].id == id (likewise modules, backtraces).  Watches are
 * grouped by set, in the order the set's fdinfo lists them.
 */
struct image {
	uint32_t flags;		/* IMAGE_F_* */
	struct image_process proc;
	struct image_module *modules;
	uint32_t nmodules;
	struct image_backtrace *backtraces;
	uint32_t nbacktraces;
	struct image_target *targets;
	uint32_t ntargets;
	struct image_fd *fds;
	uint32_t nfds;
	struct image_watch *watches;
	uint32_t nwatches;
	struct image_diag *diags;
	uint32_t ndiags;
	/* capacities of the arrays above, for the image_add_* helpers */
	uint32_t cap_modules, cap_backtraces, cap_targets, cap_fds, cap_watches,
		cap_diags;
	/*
	 * Not in the format: the owner (st_uid) of the file the image was
	 * read from by image_read_file*, -1 when not read from a file.  The
	 * image's own proc.uid is anyone's claim; who owns the file is not.
	 */
	int64_t file_uid;
};

/* Initialise an empty image. */
void image_init(struct image *img);

/* Free everything an image owns and leave it empty. */
void image_free(struct image *img);

/*
 * Append an element and return a pointer to it, zeroed, with its id set where
 * it has one; NULL when memory runs out or a limit (IMAGE_MAX_*) is reached.
 * The pointer is valid until the next append of the same kind.
 */
struct image_target *image_add_target(struct image *img, uint32_t kind);
struct image_fd *image_add_fd(struct image *img);
struct image_watch *image_add_watch(struct image *img);
struct image_module *image_add_module(struct image *img);
struct image_backtrace *image_add_backtrace(struct image *img);

/*
 * Append a diagnostic whose message is formatted printf-style; path is
 * copied (may be NULL).  Returns 0 or -ENOMEM.
 */
int image_add_diag(struct image *img, uint32_t severity, uint32_t code,
		   int epfd, int tfd, const char *path, uint32_t bt,
		   const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/*
 * Set a socket's address (addrp, addr_len) or peer (peerp, peer_len) to a
 * copy of len bytes of addr (at most sizeof(struct sockaddr_storage); 0:
 * none), replacing and freeing the one it had.  The socket owns the copy:
 * image_free() frees it for the targets of an image,
 * image_target_release() for a target of one's own.  Only len bytes of the
 * copy may be read.  Returns 0 or -ENOMEM (or -EINVAL for a longer len),
 * leaving the socket as it was.
 */
int image_socket_set_addr(struct image_socket *s, const void *addr,
			  uint32_t len);
int image_socket_set_peer(struct image_socket *s, const void *addr,
			  uint32_t len);

/*
 * Free what a target owns (its path, a socket's addresses) and leave those
 * fields empty; for targets outside an image (image_free does it for its
 * own).  Never call it on two copies of one target (a struct copy shares
 * the pointers).
 */
void image_target_release(struct image_target *t);

/*
 * The link text every target of this kind has ("anon_inode:[eventfd]"),
 * NULL for kinds without one.  The reader points a target's path at this
 * one shared copy instead of allocating its own (image_target_release()
 * knows it and does not free it): the path must then not be written to.
 */
const char *image_standard_path(uint32_t kind);

/* The highest descriptor number an image names (as an fd or a tfd); -1. */
int32_t image_max_fd(const struct image *img);

/* The target with this id, or NULL when the id names none. */
struct image_target *image_target_by_id(const struct image *img, uint32_t id);

/*
 * Whether a socket address of len bytes is one the kernel accepts for a
 * socket of this domain (0: none recorded): its family is the domain's;
 * AF_INET and AF_INET6 are exactly sockaddr_in and sockaddr_in6; AF_UNIX
 * at most sizeof(struct sockaddr_un) (a path, an abstract name or
 * nothing), one more byte only when it is a path's trailing NUL (as
 * getsockname() reports a path of the full 108 bytes); other families at
 * most sizeof(struct sockaddr_storage).  When not, a one-line reason is
 * put in why (why_len bytes).
 */
bool image_sockaddr_ok(uint32_t domain, const struct sockaddr_storage *addr,
		       uint32_t len, char *why, size_t why_len);

/*
 * The bytes of an AF_UNIX address's sun_path (a path, or an abstract name
 * with its leading NUL) in an address image_sockaddr_ok() accepted, never
 * more than sizeof(sun_path); a path stops before its first NUL.
 */
size_t image_sun_path_len(const struct sockaddr_storage *addr, uint32_t len);

/* Lower-case name of a kind ("socket"...), "other" for unknown values. */
const char *image_kind_name(uint32_t kind);

#endif
