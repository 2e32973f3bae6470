// SPDX-License-Identifier: MIT
/* The sock_diag netlink transport (see sock_diag.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/sock_diag.h>

#include "ownfd.h"
#include "sock_diag.h"

#define SD_BUF_LEN (64u << 10)	/* bytes of one netlink read */
#define SD_MAX_EINTR 100	/* retries of one interrupted call */
#define SD_MAX_BODY 256		/* bytes of one request body */
#define SD_SEQ 0x45504353u	/* "EPCS": our request's sequence number */

/* A netlink socket for sock_diag with a receive timeout, or -errno. */
static int sd_open(void)
{
	struct timeval tv = { .tv_sec = SOCK_DIAG_TIMEOUT_MS / 1000,
			      .tv_usec = (SOCK_DIAG_TIMEOUT_MS % 1000) * 1000 };
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

static int sd_send(int fd, const void *body, size_t body_len, bool dump)
{
	struct {
		struct nlmsghdr h;
		unsigned char body[SD_MAX_BODY];
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	size_t len = NLMSG_LENGTH(body_len);
	int tries = 0;

	if (body_len > SD_MAX_BODY)
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = (uint32_t)len;
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0);
	req.h.nlmsg_seq = SD_SEQ;
	memcpy(NLMSG_DATA(&req.h), body, body_len);
	while (sendto(fd, &req, len, 0, (struct sockaddr *)&kernel,
		      sizeof(kernel)) < 0) {
		if (errno != EINTR || ++tries >= SD_MAX_EINTR)
			return -errno;
	}
	return 0;
}

/*
 * Read answers until NLMSG_DONE (a dump) or the first answer (a lookup).
 * Each round consumes one non-empty read: bounded by the answers.
 */
static int sd_receive(int fd, bool dump, uint32_t max_answers,
		      int (*on_answer)(void *ctx, const struct nlmsghdr *h),
		      void *ctx)
{
	char *buf = malloc(SD_BUF_LEN);
	uint32_t nanswers = 0;
	int ret = 0, tries = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = SD_BUF_LEN };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &msg, 0);
		size_t left, step;

		if (n < 0 && errno == EINTR && ++tries < SD_MAX_EINTR)
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

			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > left) {
				ret = -EPROTO;
				goto out;
			}
			step = NLMSG_ALIGN(h->nlmsg_len);
			if (step > left)
				step = left;
			if (h->nlmsg_seq != SD_SEQ)
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
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) {
				ret = -EPROTO;
				goto out;
			}
			if (++nanswers > max_answers) {
				ret = -E2BIG;
				goto out;
			}
			ret = on_answer(ctx, h);
			if (ret || !dump)
				goto out;
		}
	}
out:
	free(buf);
	return ret;
}

int sock_diag_request(const void *body, size_t body_len, bool dump,
		      uint32_t max_answers,
		      int (*on_answer)(void *ctx, const struct nlmsghdr *h),
		      void *ctx)
{
	int fd = sd_open(), ret;

	if (fd < 0)
		return fd;
	ret = sd_send(fd, body, body_len, dump);
	if (ret == 0)
		ret = sd_receive(fd, dump, max_answers, on_answer, ctx);
	close(fd);
	return ret;
}
