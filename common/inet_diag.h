/* SPDX-License-Identifier: MIT */
/*
 * What sock_diag (NETLINK_SOCK_DIAG, inet_diag) shows of the TCP and UDP
 * sockets of the caller's network namespace, IPv4 and IPv6: inode, state,
 * local and remote address, queues.  Unprivileged.  The kernel-only dump
 * uses it to describe the sockets of another process, which it cannot
 * getsockname().
 */
#ifndef EPOLLCR_INET_DIAG_H
#define EPOLLCR_INET_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sock_diag.h"

#define INET_DIAG_MAX_SOCKS (1u << 22) /* sockets one dump reports */
#define INET_DIAG_TIMEOUT_MS SOCK_DIAG_TIMEOUT_MS

/* One TCP or UDP socket as inet_diag shows it. */
struct inet_diag_sock {
	uint64_t ino;		/* its inode (fdinfo ino:, socket:[N]) */
	uint32_t family;	/* AF_INET or AF_INET6 */
	uint32_t protocol;	/* IPPROTO_TCP or IPPROTO_UDP */
	uint32_t state;		/* TCP_LISTEN, TCP_ESTABLISHED, TCP_CLOSE... */
	uint32_t rqueue;	/* listening: connections waiting to be
				 * accepted; else bytes to read */
	uint32_t wqueue;	/* listening TCP: the listen backlog; else
				 * bytes not yet sent */
	int v6only;		/* AF_INET6: IPV6_V6ONLY, -1 when not shown */
	struct sockaddr_storage local;	/* sockaddr_in or sockaddr_in6 */
	struct sockaddr_storage remote;	/* port 0 and any address: none */
};

/*
 * Ask the kernel for every socket of family (AF_INET, AF_INET6) and
 * protocol (IPPROTO_TCP, IPPROTO_UDP) in the caller's network namespace,
 * but those in TIME_WAIT or NEW_SYN_RECV (no descriptor holds them)
 * and call on_sock for each (s valid during the call only).  Stops at the
 * first non-zero value on_sock returns and returns it.  Bounds: at most
 * INET_DIAG_MAX_SOCKS sockets (-E2BIG), each answer waited for at most
 * INET_DIAG_TIMEOUT_MS (-ETIMEDOUT).  Returns 0 or -errno (-ENOENT when
 * the kernel has no handler for that protocol, -EPROTO for a malformed
 * answer).  One netlink socket, closed before it returns.
 */
int inet_diag_dump(uint32_t family, uint32_t protocol,
		   int (*on_sock)(void *ctx, const struct inet_diag_sock *s),
		   void *ctx);

#endif
