// SPDX-License-Identifier: MIT
/*
 * AF_UNIX sockets through sock_diag (see unix_diag.h): one netlink request
 * (a dump of the namespace, or one inode), the answers parsed with every
 * length checked before it is used.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include "unix_diag.h"
#include "ownfd.h"

#define UD_BUF_LEN (64u << 10) /* bytes of one netlink read */
#define UD_MAX_EINTR 100       /* retries of one interrupted call */
#define UD_SEQ 0x45504352u     /* "EPCR": our request's sequence number */

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

/* A netlink socket for sock_diag with a receive timeout, or -errno. */
static int ud_open(void)
{
	struct timeval tv = { .tv_sec = UNIX_DIAG_TIMEOUT_MS / 1000,
			      .tv_usec = (UNIX_DIAG_TIMEOUT_MS % 1000) * 1000 };
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

/* Send one request: a dump of every unix socket, or the one of inode ino. */
static int ud_send(int fd, bool dump, uint64_t ino)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int tries = 0;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0);
	req.h.nlmsg_seq = UD_SEQ;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_states = ~0u;
	req.r.udiag_ino = (uint32_t)ino;
	req.r.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER |
			   UDIAG_SHOW_RQLEN | UDIAG_SHOW_VFS;
	req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u; /* no cookie */
	while (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel,
		      sizeof(kernel)) < 0) {
		if (errno != EINTR || ++tries >= UD_MAX_EINTR)
			return -errno;
	}
	return 0;
}

/*
 * Read answers until NLMSG_DONE (a dump) or the first answer (a lookup),
 * calling on_sock for each socket.  Returns 0, on_sock's first non-zero
 * value, or -errno.
 */
static int ud_receive(int fd, bool dump,
		      int (*on_sock)(void *ctx, const struct unix_diag_sock *s),
		      void *ctx)
{
	char *buf = malloc(UD_BUF_LEN);
	uint32_t nsocks = 0;
	int ret = 0, tries = 0;

	if (!buf)
		return -ENOMEM;
	/* Each round consumes one non-empty read: bounded by the answers. */
	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = UD_BUF_LEN };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &msg, 0);
		size_t left, step;

		if (n < 0 && errno == EINTR && ++tries < UD_MAX_EINTR)
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
		/* Messages one after the other, each within what was read. */
		for (left = (size_t)n; left >= sizeof(struct nlmsghdr);
		     left -= step) {
			const struct nlmsghdr *h =
				(const void *)(buf + ((size_t)n - left));
			struct unix_diag_sock s;

			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > left) {
				ret = -EPROTO;
				goto out;
			}
			step = NLMSG_ALIGN(h->nlmsg_len);
			if (step > left)
				step = left;
			if (h->nlmsg_seq != UD_SEQ)
				continue; /* not an answer to our request */
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
			    !ud_parse(h, &s)) {
				ret = -EPROTO;
				goto out;
			}
			if (++nsocks > UNIX_DIAG_MAX_SOCKS) {
				ret = -E2BIG;
				goto out;
			}
			ret = on_sock(ctx, &s);
			if (ret || !dump)
				goto out;
		}
	}
out:
	free(buf);
	return ret;
}

int unix_diag_dump(int (*on_sock)(void *ctx, const struct unix_diag_sock *s),
		   void *ctx)
{
	int fd = ud_open(), ret;

	if (fd < 0)
		return fd;
	ret = ud_send(fd, true, 0);
	if (ret == 0)
		ret = ud_receive(fd, true, on_sock, ctx);
	close(fd);
	return ret;
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
	int fd, ret;

	if (ino == 0 || ino > UINT32_MAX)
		return -ENOENT; /* sock_diag inodes are 32 bits */
	fd = ud_open();
	if (fd < 0)
		return fd;
	ret = ud_send(fd, false, ino);
	if (ret == 0)
		ret = ud_receive(fd, false, ud_keep, out);
	close(fd);
	if (ret == 1)
		return out->ino == ino ? 0 : -EPROTO;
	return ret == 0 ? -ENOENT : ret;
}
