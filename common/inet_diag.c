// SPDX-License-Identifier: MIT
/*
 * TCP and UDP sockets through sock_diag (see inet_diag.h): one dump
 * request per family and protocol, every answer's length checked before
 * it is used.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>

#include "inet_diag.h"
#include "ownfd.h"

#define ID_BUF_LEN (64u << 10) /* bytes of one netlink read */
#define ID_MAX_EINTR 100       /* retries of one interrupted call */
#define ID_SEQ 0x45504349u     /* "EPCI": our request's sequence number */

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

static int id_open(void)
{
	struct timeval tv = { .tv_sec = INET_DIAG_TIMEOUT_MS / 1000,
			      .tv_usec = (INET_DIAG_TIMEOUT_MS % 1000) * 1000 };
	int fd = OWN_FD(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
			       NETLINK_SOCK_DIAG));

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static int id_send(int fd, uint32_t family, uint32_t protocol)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int tries = 0;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = ID_SEQ;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = (uint8_t)protocol;
	req.r.idiag_states = ~0u;
	while (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel,
		      sizeof(kernel)) < 0) {
		if (errno != EINTR || ++tries >= ID_MAX_EINTR)
			return -errno;
	}
	return 0;
}

/* Read answers until NLMSG_DONE, calling on_sock for each socket. */
static int id_receive(int fd, uint32_t protocol,
		      int (*on_sock)(void *ctx, const struct inet_diag_sock *s),
		      void *ctx)
{
	char *buf = malloc(ID_BUF_LEN);
	uint32_t nsocks = 0;
	int ret = 0, tries = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = ID_BUF_LEN };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &msg, 0);
		size_t left, step;

		if (n < 0 && errno == EINTR && ++tries < ID_MAX_EINTR)
			continue;
		if (n < 0) {
			ret = errno == EAGAIN || errno == EWOULDBLOCK
				      ? -ETIMEDOUT
				      : -errno;
			break;
		}
		if (n == 0 || (msg.msg_flags & MSG_TRUNC)) {
			ret = -EPROTO;
			break;
		}
		for (left = (size_t)n; left >= sizeof(struct nlmsghdr);
		     left -= step) {
			const struct nlmsghdr *h =
				(const void *)(buf + ((size_t)n - left));
			struct inet_diag_sock s;

			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > left) {
				ret = -EPROTO;
				goto out;
			}
			step = NLMSG_ALIGN(h->nlmsg_len);
			if (step > left)
				step = left;
			if (h->nlmsg_seq != ID_SEQ)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				goto out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					ret = -EPROTO;
				else
					ret = e->error < 0 ? e->error : -EPROTO;
				goto out;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    !id_parse(h, protocol, &s)) {
				ret = -EPROTO;
				goto out;
			}
			if (++nsocks > INET_DIAG_MAX_SOCKS) {
				ret = -E2BIG;
				goto out;
			}
			ret = on_sock(ctx, &s);
			if (ret)
				goto out;
		}
	}
out:
	free(buf);
	return ret;
}

int inet_diag_dump(uint32_t family, uint32_t protocol,
		   int (*on_sock)(void *ctx, const struct inet_diag_sock *s),
		   void *ctx)
{
	int fd = id_open(), ret;

	if (fd < 0)
		return fd;
	ret = id_send(fd, family, protocol);
	if (ret == 0)
		ret = id_receive(fd, protocol, on_sock, ctx);
	close(fd);
	return ret;
}
