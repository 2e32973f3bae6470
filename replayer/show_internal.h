/* SPDX-License-Identifier: MIT */
/*
 * `epollcr show`'s rooms (show.c, symbolize.c, show_text.c, show_json.c):
 * the buffered output, the names of constants, the image's index and the
 * symbolized backtraces that both formats use.  Not part of any public API.
 */
#ifndef EPOLLCR_SHOW_INTERNAL_H
#define EPOLLCR_SHOW_INTERNAL_H

#include <arpa/inet.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "show.h"

#define OUT_BUF_LEN 16384	   /* bytes buffered before a write(2) */
#define A2L_MAX_ADDRS 16384	   /* addresses given to one addr2line run */
#define A2L_OUTPUT_PER_ADDR 1024   /* output bytes allowed per address */
#define DM_MAX_NAMES 1024	   /* names given to one c++filt run */
#define TREE_MAX_DEPTH 64	   /* nesting levels printed at most */
#define FRAME_TEXT_LEN (2 * IMAGE_MAX_STRING + 64) /* one frame as text */

/* What is printed, buffered for one fd. */
struct out {
	int fd;
	int err;		/* first write error, -errno */
	size_t len;
	char buf[OUT_BUF_LEN];
};

/* The image's fds by target and watches by set (index_build). */
struct show_index {
	/* fds of target t: fd_list[fd_start[t] .. fd_start[t + 1]) */
	uint32_t *fd_start;
	uint32_t *fd_list;	/* indexes in img->fds, by target then number */
	/* watches of set s: w_list[w_start[s] .. w_start[s + 1]) */
	uint32_t *w_start;
	uint32_t *w_list;	/* indexes in img->watches, in image order */
	uint32_t *nparents;	/* per target: watches of sets on it */
};

struct a2l_entry {
	uint32_t module;
	uint64_t offset;
	char *where;		/* "file:line" or NULL */
};

struct a2l {
	struct a2l_entry *e;
	size_t n;
};

/* Mangled symbol -> demangled, sorted by mangled (pointers into the image). */
struct dm_entry {
	const char *mangled;
	char *plain;
};

struct demangled {
	struct dm_entry *e;
	size_t n;
};

/* One run of either format: its output, image, index and symbols. */
struct text_ctx {
	struct out *o;
	const struct image *img;
	struct show_index ix;
	struct a2l a2l;
	struct demangled dm;	/* C++ names of the frames */
	char *frame;		/* FRAME_TEXT_LEN bytes */
};

/* A watch flag (IMAGE_W_*) and its name, in both formats. */
struct watch_flag_name {
	uint32_t bit;
	const char *name;
};

#define WATCH_FLAG_NAMES 4 /* entries of watch_flag_names */
extern const struct watch_flag_name watch_flag_names[WATCH_FLAG_NAMES];

/*
 * Output, names and indexes (show.c), used by both formats: out_* buffer
 * what is printed (one write(2) per OUT_BUF_LEN bytes; text escaped by
 * escape.h's rule, JSON strings as JSON); *_name and format_* name the
 * image's constants; index_build indexes fds by target and watches by set
 * (index_free frees it), target_of and lowest_fd look targets up.
 */
void out_flush(struct out *o);
void out_puts(struct out *o, const char *s);
__attribute__((format(printf, 2, 3))) void
out_printf(struct out *o, const char *fmt, ...);
void out_text_bytes(struct out *o, const char *s, size_t n);
void out_text(struct out *o, const char *s);
void out_json_bytes(struct out *o, const char *s, size_t n);
void out_json_str(struct out *o, const char *s);
void out_json_fd(struct out *o, int64_t fd);
const char *json_bool(bool b);
void format_events(uint32_t events, char *out, size_t len);
const char *domain_name(uint32_t domain, char *buf, size_t len);
const char *socktype_name(uint32_t type, char *buf, size_t len);
const char *clock_name(uint32_t clockid, char *buf, size_t len);
const char *signal_name(int signo, char *buf, size_t len);
const char *severity_name(uint32_t severity);
const char *diag_code_name(uint32_t code);
size_t format_sockaddr(const struct sockaddr_storage *ss,
		       uint32_t addr_len, char *out, size_t len);
const struct image_target *target_of(const struct image *img,
				     uint32_t id);
void index_free(struct show_index *ix);
int index_build(const struct image *img, struct show_index *ix);
int64_t lowest_fd(const struct image *img, const struct show_index *ix,
		  uint32_t id);

/*
 * One run's context (show.c): show_ctx_open fills *c for img written to
 * out_fd (output buffer, frame text, index; 0 or -ENOMEM with nothing
 * held), show_ctx_close flushes the output, frees what *c holds (the
 * symbols too, when built) and returns the output's error, 0 or -errno.
 */
int show_ctx_open(struct text_ctx *c, const struct image *img, int out_fd);
int show_ctx_close(struct text_ctx *c);

/*
 * Symbolizing (symbolize.c).  In: the image's backtraces.  Out: a2l_build
 * and dm_build run addr2line and c++filt over every frame at once, within
 * the process's tools budget; a2l_lookup and dm_lookup give a frame's
 * file:line and plain name (NULL when unknown); a2l_free and dm_free free
 * them.  format_frame writes one frame, backtrace_of finds a backtrace by
 * id.  Called by show_text.c (all) and show_json.c (the last two).
 */
const char *a2l_lookup(const struct a2l *a, uint32_t module,
		       uint64_t offset);
void a2l_free(struct a2l *a);
void a2l_build(const struct image *img, struct a2l *a);
const char *dm_lookup(const struct demangled *d, const char *symbol);
void dm_free(struct demangled *d);
void dm_build(const struct image *img, struct demangled *d);
size_t format_frame(const struct image *img,
		    const struct image_frame *f, const char *symbol,
		    char *buf);
const struct image_backtrace *backtrace_of(const struct image *img,
					   uint32_t id);

#endif /* EPOLLCR_SHOW_INTERNAL_H */
