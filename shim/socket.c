// SPDX-License-Identifier: MIT
/*
 * socket, socketpair, accept, accept4, bind, listen; recvmsg, recvmmsg,
 * sendmsg and sendmmsg for the descriptors they pass.  What a
 * restore needs that the kernel does not keep (the listen backlog) is
 * recorded here; the rest (addresses, options) is read from the kernel at
 * dump time.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "registry.h"
#include "shim.h"

#define SOCK_FLAG_MASK (SOCK_NONBLOCK | SOCK_CLOEXEC)

/* type: SOCK_* with its flags; flags: more flags (accept4's). */
static void socket_created(int fd, int domain, int type, int flags,
			   int protocol, int end, int peer_fd, bool accepted)
{
	struct reg_create c = {
		.flags = (type | flags) & SOCK_FLAG_MASK,
		.domain = domain,
		.type = type & ~SOCK_FLAG_MASK,
		.protocol = protocol,
		.backlog = -1,
		.pipe_end = end,
		.peer_fd = peer_fd,
		.accepted = accepted,
	};
	shim_record_fd_created(fd, IMAGE_KIND_SOCKET, &c);
}

SHIM_API int socket(int domain, int type, int protocol)
{
	if (shim_own_call()) /* the shim's own: high, unseen by the program */
		return OWN_CREATE(REAL(socket)(domain, type, protocol));
	if (shim_busy) /* a vfork child's: the real call alone */
		return REAL(socket)(domain, type, protocol);
	int fd = REAL(socket)(domain, type, protocol);
	if (fd >= 0) {
		int saved_errno = errno;
		socket_created(fd, domain, type, 0, protocol, -1, -1, false);
		errno = saved_errno;
	}
	return fd;
}

SHIM_API int socketpair(int domain, int type, int protocol, int sv[2])
{
	int ret = REAL(socketpair)(domain, type, protocol, sv);
	if (ret == 0 && !shim_busy) {
		int saved_errno = errno;
		socket_created(sv[0], domain, type, 0, protocol, 0, sv[1], false);
		socket_created(sv[1], domain, type, 0, protocol, 1, sv[0], false);
		errno = saved_errno;
	}
	return ret;
}

/* An accepted socket is of its listener's domain, type and protocol. */
static int accepted(int listen_fd, int fd, int flags)
{
	if (fd < 0 || shim_busy)
		return fd;
	int saved_errno = errno;
	const struct reg_file *l = registry_file_at(listen_fd);
	if (l && l->kind == IMAGE_KIND_SOCKET)
		socket_created(fd, l->create.domain, l->create.type, flags,
			       l->create.protocol, -1, -1, true);
	else /* its type unknown: not its flags, accept4's alone */
		socket_created(fd, -1, -1 & ~SOCK_FLAG_MASK, flags, -1, -1,
			       -1, true);
	errno = saved_errno;
	return fd;
}

SHIM_API int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return accepted(fd, REAL(accept)(fd, addr, len), 0);
}

SHIM_API int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return accepted(fd, REAL(accept4)(fd, addr, len, flags),
			flags & SOCK_FLAG_MASK);
}

SHIM_API int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int ret = REAL(bind)(fd, addr, len);
	if (ret == 0 && !shim_busy) {
		int saved_errno = errno;
		shim_record_socket_bound(fd);
		errno = saved_errno;
	}
	return ret;
}

SHIM_API int listen(int fd, int backlog)
{
	int ret = REAL(listen)(fd, backlog);
	if (ret == 0 && !shim_busy) {
		int saved_errno = errno;
		shim_record_socket_listen(fd, backlog);
		errno = saved_errno;
	}
	return ret;
}

/*
 * Call fn on every descriptor of the SCM_RIGHTS messages of n headers,
 * the first at first and each stride bytes after the one before it (a
 * vector's struct mmsghdr; 0 for one msghdr alone); errno kept.
 */
static void each_passed_fd(const struct msghdr *first, size_t stride, int n,
			   void (*fn)(int fd))
{
	int saved_errno = errno;
	for (int m = 0; m < n; m++) {
		const struct msghdr *h = (const struct msghdr *)(const void *)
			((const char *)first + (size_t)m * stride);
		if (!h->msg_control || !h->msg_controllen)
			continue;
		for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)h); c;
		     c = CMSG_NXTHDR((struct msghdr *)h, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int pfd;
				memcpy(&pfd, CMSG_DATA(c) + i * sizeof(int),
				       sizeof(pfd));
				fn(pfd);
			}
		}
	}
	errno = saved_errno;
}

/*
 * Descriptors received with SCM_RIGHTS take numbers the shim must forget;
 * those sent are held by another process from now on (registry_fd_sent).
 * Read after the call only: the kernel has checked msg then (a program's
 * bad pointer gets its EFAULT, not a fault in the shim).
 */
SHIM_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t ret = REAL(recvmsg)(fd, msg, flags);
	if (ret >= 0 && msg && !shim_busy)
		each_passed_fd(msg, 0, 1, shim_record_fd_unknown);
	return ret;
}

SHIM_API int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
		      int flags, struct timespec *timeout)
{
	int ret = REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
	if (ret > 0 && !shim_busy)
		each_passed_fd(&vec->msg_hdr, sizeof(*vec), ret,
			       shim_record_fd_unknown);
	return ret;
}

SHIM_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t ret = REAL(sendmsg)(fd, msg, flags);
	if (ret >= 0 && msg && !shim_busy)
		each_passed_fd(msg, 0, 1, registry_fd_sent);
	return ret;
}

SHIM_API int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
		      int flags)
{
	int ret = REAL(sendmmsg)(fd, vec, vlen, flags);
	if (ret > 0 && !shim_busy)
		each_passed_fd(&vec->msg_hdr, sizeof(*vec), ret,
			       registry_fd_sent);
	return ret;
}
