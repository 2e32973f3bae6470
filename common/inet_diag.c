// SPDX-License-Identifier: MIT
/*
 * TCP and UDP sockets through sock_diag (see inet_diag.h): one dump
 * request per family and protocol over the shared transport
 * (sock_diag.c); each answer's length checked before it is parsed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>

#include "inet_diag.h"
#include "sock_diag.h"

/* Fill s from one answer; false when malformed. */
static bool id_parse(const struct nlmsghdr *h, uint32_t protocol,
		     struct inet_diag_sock *s)
{
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	const struct rtattr *a;
	int len;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return false;
	if (m->idiag_family != AF_INET && m->idiag_family != AF_INET6)
		return false;
	memset(s, 0, sizeof(*s));
	s->ino = m->idiag_inode;
	s->family = m->idiag_family;
	s->protocol = protocol;
	s->state = m->idiag_state;
	s->rqueue = m->idiag_rqueue;
	s->wqueue = m->idiag_wqueue;
	s->v6only = -1;
	if (s->family == AF_INET) {
		struct sockaddr_in *l = (struct sockaddr_in *)&s->local;
		struct sockaddr_in *r = (struct sockaddr_in *)&s->remote;

		l->sin_family = r->sin_family = AF_INET;
		l->sin_port = m->id.idiag_sport;
		r->sin_port = m->id.idiag_dport;
		memcpy(&l->sin_addr, m->id.idiag_src, 4);
		memcpy(&r->sin_addr, m->id.idiag_dst, 4);
	} else {
		struct sockaddr_in6 *l = (struct sockaddr_in6 *)&s->local;
		struct sockaddr_in6 *r = (struct sockaddr_in6 *)&s->remote;

		l->sin6_family = r->sin6_family = AF_INET6;
		l->sin6_port = m->id.idiag_sport;
		r->sin6_port = m->id.idiag_dport;
		memcpy(&l->sin6_addr, m->id.idiag_src, 16);
		memcpy(&r->sin6_addr, m->id.idiag_dst, 16);
	}
	len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	a = (const struct rtattr *)((const char *)m + NLMSG_ALIGN(sizeof(*m)));
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1)
			s->v6only = *(const uint8_t *)RTA_DATA(a) != 0;
	return true;
}

/* Parse one answer and hand it to the caller's on_sock. */
struct id_ctx {
	uint32_t protocol;
	int (*on_sock)(void *ctx, const struct inet_diag_sock *s);
	void *ctx;
};

static int id_answer(void *ctx, const struct nlmsghdr *h)
{
	const struct id_ctx *c = ctx;
	struct inet_diag_sock s;

	if (!id_parse(h, c->protocol, &s))
		return -EPROTO;
	return c->on_sock(c->ctx, &s);
}

int inet_diag_dump(uint32_t family, uint32_t protocol,
		   int (*on_sock)(void *ctx, const struct inet_diag_sock *s),
		   void *ctx)
{
	struct inet_diag_req_v2 req;
	struct id_ctx c = { .protocol = protocol, .on_sock = on_sock,
			    .ctx = ctx };

	memset(&req, 0, sizeof(req));
	req.sdiag_family = (uint8_t)family;
	req.sdiag_protocol = (uint8_t)protocol;
	/*
	 * Every state but TIME_WAIT and NEW_SYN_RECV (12): those are no
	 * descriptor's socket (inode 0), and a busy host holds thousands.
	 */
	req.idiag_states = ~0u & ~(1u << TCP_TIME_WAIT) & ~(1u << 12);
	return sock_diag_request(&req, sizeof(req), true, INET_DIAG_MAX_SOCKS,
				 id_answer, &c);
}
