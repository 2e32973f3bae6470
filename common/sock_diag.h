/* SPDX-License-Identifier: MIT */
/*
 * The netlink transport of sock_diag (NETLINK_SOCK_DIAG), shared by
 * inet_diag.c (TCP, UDP) and unix_diag.c (AF_UNIX): one socket with a
 * receive timeout, one request, the answers walked with every length
 * checked before it is used.  Each family parses its own messages.
 */
#ifndef EPOLLCR_SOCK_DIAG_H
#define EPOLLCR_SOCK_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/netlink.h>

#define SOCK_DIAG_TIMEOUT_MS 5000 /* wait for one netlink answer */

/*
 * Send one SOCK_DIAG_BY_FAMILY request whose body (the family's request
 * structure, body_len bytes) follows the netlink header this builds
 * (NLM_F_REQUEST, and NLM_F_DUMP with dump).  Then read the answers to it
 * (other sequence numbers are skipped) and call on_answer for each
 * SOCK_DIAG_BY_FAMILY message, whose nlmsg_len is within what was read;
 * on_answer checks its payload.  Stops at NLMSG_DONE, after the first
 * answer when !dump, or at the first non-zero value on_answer returns,
 * which it returns.  Bounds: at most max_answers answers (-E2BIG past
 * that), each read waited for at most SOCK_DIAG_TIMEOUT_MS (-ETIMEDOUT).
 * Returns 0 or -errno: the socket call's (-EPROTONOSUPPORT... when the
 * kernel has no sock_diag), the kernel's NLMSG_ERROR (-ENOENT: no handler
 * for that family or protocol; a lookup that found nothing), -ENOMEM,
 * -EPROTO for a malformed answer.  The netlink socket is opened with
 * OWN_FD() and closed before it returns.
 */
int sock_diag_request(const void *body, size_t body_len, bool dump,
		      uint32_t max_answers,
		      int (*on_answer)(void *ctx, const struct nlmsghdr *h),
		      void *ctx);

#endif
