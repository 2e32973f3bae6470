/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the per-kind tables (kind_*.c), the fdinfo parsers
 * (fdinfo.c) and the kernel view (kview*.c).  Not part of any public API.
 */
#ifndef EPOLLCR_KIND_INTERNAL_H
#define EPOLLCR_KIND_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kind.h"

/* Largest fdinfo text of a non-epoll fd that describe() reads by itself. */
#define KIND_FDINFO_MAX 4096

extern const struct kind_ops kind_socket_ops;
extern const struct kind_ops kind_pipe_ops;
extern const struct kind_ops kind_eventfd_ops;
extern const struct kind_ops kind_timerfd_ops;
extern const struct kind_ops kind_signalfd_ops;
extern const struct kind_ops kind_epoll_ops;
extern const struct kind_ops kind_other_ops;

/*
 * Find the line of the NUL-terminated fdinfo text that starts with key
 * (which includes its colon, e.g. "flags:") and return a pointer to the
 * value after the key and any blanks, or NULL when no line starts with key.
 * Scans the text once.
 */
const char *fdinfo_value(const char *fdinfo, const char *key);

/*
 * Parse the unsigned number (in base 8, 10 or 16, at most 64 bits) that
 * follows key in fdinfo into *out.  The number must end at a blank or at
 * the end of the line.  Returns false when the key is missing, the number
 * malformed or too large.
 */
bool fdinfo_u64(const char *fdinfo, const char *key, unsigned base,
		uint64_t *out);

/*
 * Parse a "(SEC, NSEC)" pair after key (timerfd's it_value, it_interval)
 * into nanoseconds, saturated at UINT64_MAX.  Returns false when the key
 * is missing or the pair malformed.
 */
bool fdinfo_timespec_ns(const char *fdinfo, const char *key, uint64_t *ns);

/*
 * Parse at most max_digits digits of base (8, 10, 16) from s[0..len) into
 * *out, stopping at the first non-digit; *used gets the number of
 * characters consumed.  Returns false when there is no digit, more than
 * max_digits, or the value overflows 64 bits.
 */
bool fdinfo_parse_number(const char *s, size_t len, unsigned base,
			 unsigned max_digits, uint64_t *out, size_t *used);

/*
 * Read /proc/thread-self/fdinfo/FD into buf (len bytes, NUL-terminated,
 * truncated at len - 1).  Returns 0 or -errno.
 */
int kind_read_self_fdinfo(int fd, char *buf, size_t len);

/*
 * True when link is "anon_inode:[name]" or "anon_inode:name" (kernels
 * differ in the brackets).
 */
bool kind_link_is_anon(const char *link, const char *name);

/*
 * Parse "prefix[INO]" (prefix like "socket:") into *ino.  Returns false
 * when link has another form.
 */
bool kind_link_ino(const char *link, const char *prefix, uint64_t *ino);

/*
 * Set t->file_flags from the `flags:` line of fdinfo (without O_CLOEXEC,
 * which belongs to the fd) or, when fdinfo is NULL or has none, from
 * fcntl(fd, F_GETFL).  Returns 0 or -errno.
 */
int kind_describe_file_flags(struct image_target *t, int fd,
			     const char *fdinfo);

/*
 * The start of every describe() that needs the target's fdinfo text: use
 * *fdinfo when set, otherwise read this process's fdinfo of fd into buf
 * (len bytes) and point *fdinfo at it; then set t->file_flags.  Returns 0,
 * -EINVAL when there is neither text nor fd, or -errno.
 */
int kind_describe_fdinfo(struct image_target *t, int fd, const char **fdinfo,
			 char *buf, size_t len);

struct inet_diag_sock;

/*
 * The socket kind's describe() with what one sock_diag dump showed of it
 * (d, its inode's entry): domain, type, protocol, listening, bound and
 * connected, both addresses and IPV6_V6ONLY from d; file flags from
 * fdinfo; only SO_REUSEADDR and SO_REUSEPORT through fd (no bulk source
 * has them).  Gives the same description as describe(t, fd, fdinfo).
 * Returns 0, -EAGAIN when d cannot stand for getsockname() (an IPv6
 * link-local address, whose scope only the descriptor gives; the caller
 * then describes it through fd), or -errno.
 */
int kind_socket_describe_bulk(struct image_target *t, int fd,
			      const char *fdinfo,
			      const struct inet_diag_sock *d);

/*
 * What the shadow knows of a socket that cannot change behind a program
 * whose calls go through the shim (kview_fd_facts): its type and protocol
 * (fixed at creation), and that it is not listening (no listen() was
 * seen on it).  -1 in a field: ask the kernel.
 */
struct kind_socket_known {
	int type;
	int protocol;
	int listening; /* 0: not listening; -1: ask */
};

/*
 * describe(t, fd, fdinfo) of a socket (fd >= 0) without asking the kernel
 * what k knows.  Gives the same description as describe() as long as k is
 * right (test_shadow_flags, test_kview).
 */
int kind_socket_describe_known(struct image_target *t, int fd,
			       const char *fdinfo,
			       const struct kind_socket_known *k);

/* printf into diff (diff_len bytes, may be 0) for the same() operations. */
void kind_diff(char *diff, size_t diff_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
