/* SPDX-License-Identifier: MIT */
/*
 * libepollcr public API.  The library is meant to be preloaded
 * (LD_PRELOAD=libepollcr.so) into an unmodified program; these functions are
 * for checkpointers that embed the recorder or the replayer.
 */
#ifndef EPOLLCR_H
#define EPOLLCR_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's exported interface (everything else is hidden). */
#define EPOLLCR_EXPORT __attribute__((visibility("default")))

/*
 * The version: these three numbers are its only source.  The Makefile reads
 * them (library file name libepollcr.so.MAJOR.MINOR, soname
 * libepollcr.so.MAJOR, epollcr.pc), epollcr_version() and
 * `epollcr --version` return EPOLLCR_VERSION_STRING, and every image records
 * it.  MAJOR changes when the ABI breaks, MINOR when the API grows.
 */
#define EPOLLCR_VERSION_MAJOR 0
#define EPOLLCR_VERSION_MINOR 1
#define EPOLLCR_VERSION_PATCH 0

#define EPOLLCR_STRINGIFY_(x) #x
#define EPOLLCR_STRINGIFY(x) EPOLLCR_STRINGIFY_(x)
/* "MAJOR.MINOR.PATCH", e.g. "0.1.0" */
#define EPOLLCR_VERSION_STRING                                                 \
	EPOLLCR_STRINGIFY(EPOLLCR_VERSION_MAJOR)                               \
	"." EPOLLCR_STRINGIFY(EPOLLCR_VERSION_MINOR)                           \
	"." EPOLLCR_STRINGIFY(EPOLLCR_VERSION_PATCH)
/* One number for #if tests: 0x000100 is 0.1.0 */
#define EPOLLCR_VERSION_NUMBER                                                 \
	((EPOLLCR_VERSION_MAJOR << 16) | (EPOLLCR_VERSION_MINOR << 8) |       \
	 EPOLLCR_VERSION_PATCH)

/* The library's version string, e.g. "0.1.0". */
EPOLLCR_EXPORT const char *epollcr_version(void);

/* How epollcr_restore() treats the targets of the watches. */
enum epollcr_targets {
	EPOLLCR_TARGETS_RECREATE = 0, /* create every target anew */
	EPOLLCR_TARGETS_EXISTING = 1, /* targets already sit at their fds */
};

/* What epollcr_restore() does with a target it cannot bring back. */
enum epollcr_missing {
	EPOLLCR_MISSING_FAIL = 0, /* fail the whole restore */
	EPOLLCR_MISSING_SKIP = 1, /* leave its watches out, say so */
};

struct epollcr_restore_options {
	enum epollcr_targets targets;
	enum epollcr_missing missing;
	int report_fd;		/* where diagnostics are written, -1: none */
};

/*
 * Rebuild, in the calling process, every epoll set and watch that the image
 * at image_path describes, at the same fd numbers, then verify the result
 * against /proc/self/fdinfo.  All or nothing: on failure every descriptor the
 * call created is closed again and every unix socket file it bound removed
 * (on success those files stay with their sockets).  An inet address that
 * another process holds is not bound (the call fails).  Returns 0, or -1
 * with a one-line reason of at most errbuf_len - 1 bytes in errbuf (which
 * may be NULL).
 */
EPOLLCR_EXPORT int epollcr_restore(const char *image_path,
		    const struct epollcr_restore_options *options,
		    char *errbuf, size_t errbuf_len);

/*
 * Write an image of the calling process's epoll state to image_path
 * (atomically: a temporary file in the same directory, fsync, rename).
 * Works with or without the library preloaded; without it, only the kernel's
 * view is recorded.  Returns 0 or -errno.
 */
EPOLLCR_EXPORT int epollcr_dump_self(const char *image_path);

/*
 * Write the preloaded shim's shadow registry to fd, for tests and debugging.
 * One line per epoll fd, then one per watch of the set it refers to:
 *   set EPFD flags 0xFLAGS [incomplete] [shared]
 *   watch EPFD TFD events 0xEVENTS data 0xDATA certain|uncertain [fd N]
 * events are as the program passed them (the kernel adds EPOLLERR|EPOLLHUP);
 * "fd N" names the fd that holds the watched file as far as the shim knows.
 * A set reachable from several fds is listed under each.  Returns 0 or
 * -errno.  Look it up with dlsym(RTLD_DEFAULT, "epollcr_shadow_print").
 */
EPOLLCR_EXPORT int epollcr_shadow_print(int fd);

#ifdef __cplusplus
}
#endif
#endif
