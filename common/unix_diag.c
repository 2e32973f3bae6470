// SPDX-License-Identifier: MIT
/*
 * AF_UNIX sockets through sock_diag (see unix_diag.h): one netlink request
 * (a dump of the namespace, or one inode) over the shared transport
 * (sock_diag.c), each answer parsed with every length checked.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include "unix_diag.h"
#include "sock_diag.h"

/* Fill s from one SOCK_DIAG_BY_FAMILY answer; false when malformed. */
static bool ud_parse(const struct nlmsghdr *h, struct unix_diag_sock *s)
{
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	const struct rtattr *a;
	int len;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return false;
	memset(s, 0, sizeof(*s));
	s->ino = m->udiag_ino;
	s->type = m->udiag_type;
	s->state = m->udiag_state;
	len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	a = (const struct rtattr *)((const char *)m + NLMSG_ALIGN(sizeof(*m)));
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type) {
		case UNIX_DIAG_NAME:
			s->named = RTA_PAYLOAD(a) > 0;
			s->name = s->named ? RTA_DATA(a) : NULL;
			s->name_len = (uint32_t)RTA_PAYLOAD(a);
			break;
		case UNIX_DIAG_PEER:
			if (RTA_PAYLOAD(a) < sizeof(uint32_t))
				return false;
			s->peer_ino = *(const uint32_t *)RTA_DATA(a);
			break;
		case UNIX_DIAG_VFS:
			if (RTA_PAYLOAD(a) < sizeof(struct unix_diag_vfs))
				return false;
			s->vfs_ino = ((const struct unix_diag_vfs *)
					      RTA_DATA(a))->udiag_vfs_ino;
			s->vfs_dev = ((const struct unix_diag_vfs *)
					      RTA_DATA(a))->udiag_vfs_dev;
			s->has_vfs = true;
			break;
		case UNIX_DIAG_RQLEN:
			if (RTA_PAYLOAD(a) < sizeof(struct unix_diag_rqlen))
				return false;
			s->rqueue = ((const struct unix_diag_rqlen *)
					     RTA_DATA(a))->udiag_rqueue;
			s->wqueue = ((const struct unix_diag_rqlen *)
					     RTA_DATA(a))->udiag_wqueue;
			break;
		default:
			break;
		}
	}
	return true;
}

/* The request: a dump of every unix socket, or the one of inode ino. */
static void ud_request(struct unix_diag_req *r, uint64_t ino)
{
	memset(r, 0, sizeof(*r));
	r->sdiag_family = AF_UNIX;
	r->udiag_states = ~0u;
	r->udiag_ino = (uint32_t)ino;
	r->udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN |
			UDIAG_SHOW_VFS;
	r->udiag_cookie[0] = r->udiag_cookie[1] = ~0u; /* no cookie */
}

struct ud_ctx {
	int (*on_sock)(void *ctx, const struct unix_diag_sock *s);
	void *ctx;
};

static int ud_answer(void *ctx, const struct nlmsghdr *h)
{
	const struct ud_ctx *c = ctx;
	struct unix_diag_sock s;

	if (!ud_parse(h, &s))
		return -EPROTO;
	return c->on_sock(c->ctx, &s);
}

int unix_diag_dump(int (*on_sock)(void *ctx, const struct unix_diag_sock *s),
		   void *ctx)
{
	struct unix_diag_req req;
	struct ud_ctx c = { .on_sock = on_sock, .ctx = ctx };

	ud_request(&req, 0);
	return sock_diag_request(&req, sizeof(req), true, UNIX_DIAG_MAX_SOCKS,
				 ud_answer, &c);
}

static int ud_keep(void *ctx, const struct unix_diag_sock *s)
{
	struct unix_diag_sock *out = ctx;

	*out = *s;
	out->name = NULL; /* it points into the answer, freed on return */
	out->name_len = 0;
	return 1;
}

int unix_diag_lookup(uint64_t ino, struct unix_diag_sock *out)
{
	struct unix_diag_req req;
	struct ud_ctx c = { .on_sock = ud_keep, .ctx = out };
	int ret;

	if (ino == 0 || ino > UINT32_MAX)
		return -ENOENT; /* sock_diag inodes are 32 bits */
	ud_request(&req, ino);
	ret = sock_diag_request(&req, sizeof(req), false, 1, ud_answer, &c);
	if (ret == 1)
		return out->ino == ino ? 0 : -EPROTO;
	return ret == 0 ? -ENOENT : ret;
}
