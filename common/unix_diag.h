/* SPDX-License-Identifier: MIT */
/*
 * What the kernel's sock_diag netlink interface (NETLINK_SOCK_DIAG,
 * AF_UNIX) shows of unix sockets: each socket's inode, its connected
 * peer's inode, its type, whether it has a name and how many bytes wait
 * to be read.  Unprivileged; it sees the sockets of the caller's network
 * namespace only.  The kernel view uses it to find the two ends of a
 * socketpair, the restore to check that two existing fds are one.
 */
#ifndef EPOLLCR_UNIX_DIAG_H
#define EPOLLCR_UNIX_DIAG_H

#include <stdbool.h>
#include <stdint.h>

#include "sock_diag.h"

#define UNIX_DIAG_MAX_SOCKS (1u << 22) /* sockets one dump reports */
#define UNIX_DIAG_TIMEOUT_MS SOCK_DIAG_TIMEOUT_MS

/* One AF_UNIX socket as sock_diag shows it. */
struct unix_diag_sock {
	uint64_t ino;	  /* its inode (fstat st_ino, fdinfo ino:) */
	uint64_t peer_ino; /* its connected peer's inode, 0: none */
	uint32_t type;	  /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	uint32_t state;	  /* TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE */
	uint32_t rqueue;  /* bytes queued for reading (SIOCINQ); for a
			   * datagram socket, its first datagram's */
	uint32_t wqueue;  /* listening: its listen backlog */
	bool named;	  /* bound to a path or an abstract name */
	const char *name; /* that name (sun_path bytes: a path with its
			   * NUL, or NUL + an abstract name), name_len
			   * bytes; points into the answer: valid during
			   * on_sock only, never in a copy; NULL: none */
	uint32_t name_len;
	bool has_vfs;	  /* bound to a path: the next two are valid */
	uint32_t vfs_ino; /* the inode of the socket file bind() made */
	uint32_t vfs_dev; /* its device, in the kernel's encoding
			   * (major << 20 | minor), not st_dev's */
};

/*
 * Ask the kernel for every AF_UNIX socket of the caller's network
 * namespace and call on_sock for each (in the kernel's order; s is valid
 * during the call only).  Stops at the first non-zero value on_sock
 * returns and returns it.  Bounds: at most UNIX_DIAG_MAX_SOCKS sockets
 * (-E2BIG past that), each netlink answer waited for at most
 * UNIX_DIAG_TIMEOUT_MS (-ETIMEDOUT).  Returns 0, or -errno: the socket
 * call's error when the kernel has no sock_diag (-EPROTONOSUPPORT...),
 * the kernel's error when it has no AF_UNIX handler (-ENOENT), -ENOMEM,
 * -EPROTO when an answer is malformed.  Uses one netlink socket, closed
 * before it returns.
 */
int unix_diag_dump(int (*on_sock)(void *ctx, const struct unix_diag_sock *s),
		   void *ctx);

/*
 * The sock_diag description of the AF_UNIX socket with inode ino, in *out.
 * One request, not a dump (the kernel still looks the inode up among all
 * unix sockets); out->name is NULL (the name is not kept).  Returns 0, -ENOENT when no unix socket of this network
 * namespace has that inode (or the kernel has no AF_UNIX handler), or
 * another -errno as unix_diag_dump().
 */
int unix_diag_lookup(uint64_t ino, struct unix_diag_sock *out);

#endif
