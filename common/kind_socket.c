// SPDX-License-Identifier: MIT
/* Sockets: what the kernel shows of them (getsockopt, getsockname). */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kind_internal.h"

/* What same() compares in image_socket.flags. */
#define SOCK_SAME_FLAGS                                                      \
	(IMAGE_SOCK_LISTENING | IMAGE_SOCK_CONNECTED | IMAGE_SOCK_REUSEADDR | \
	 IMAGE_SOCK_REUSEPORT | IMAGE_SOCK_BOUND | IMAGE_SOCK_V6ONLY)

static bool socket_match_link(const char *link)
{
	uint64_t ino;

	return kind_link_ino(link, "socket:", &ino);
}

/* True when the getsockname() result names an address of its own. */
static bool sock_addr_is_bound(const struct sockaddr_storage *ss,
			       socklen_t len)
{
	if (len < sizeof(sa_family_t))
		return false;
	switch (ss->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const void *)ss;

		return len >= sizeof(*in) &&
		       (in->sin_port != 0 ||
			in->sin_addr.s_addr != htonl(INADDR_ANY));
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		return len >= sizeof(*in6) &&
		       (in6->sin6_port != 0 ||
			!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr));
	}
	case AF_UNIX:
		return len > offsetof(struct sockaddr_un, sun_path);
	default:
		for (socklen_t i = sizeof(sa_family_t); i < len; i++)
			if (((const unsigned char *)ss)[i])
				return true;
		return false;
	}
}

/* getsockopt of an int option; false when the option cannot be read. */
static bool sock_int(int fd, int level, int name, int *value)
{
	socklen_t len = sizeof(*value);

	return getsockopt(fd, level, name, value, &len) == 0;
}

/* Describe a socket we hold a descriptor of. */
static int socket_describe_live(struct image_socket *s, int fd)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	int v;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    len >= sizeof(sa_family_t)) {
		s->domain = ss.ss_family;
		if (image_socket_set_addr(s, &ss,
					  len > sizeof(ss) ? sizeof(ss) : len) < 0)
			return -ENOMEM;
	} else {
		if (!sock_int(fd, SOL_SOCKET, SO_DOMAIN, &v))
			return -errno;
		s->domain = (uint32_t)v;
	}
	if (!sock_int(fd, SOL_SOCKET, SO_TYPE, &v))
		return -errno;
	s->type = (uint32_t)v;
	if (sock_int(fd, SOL_SOCKET, SO_PROTOCOL, &v))
		s->protocol = (uint32_t)v;
	if (sock_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &v) && v)
		s->flags |= IMAGE_SOCK_LISTENING;
	if (sock_int(fd, SOL_SOCKET, SO_REUSEADDR, &v) && v)
		s->flags |= IMAGE_SOCK_REUSEADDR;
	if (sock_int(fd, SOL_SOCKET, SO_REUSEPORT, &v) && v)
		s->flags |= IMAGE_SOCK_REUSEPORT;
	if (s->domain == AF_INET6 &&
	    sock_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v) && v)
		s->flags |= IMAGE_SOCK_V6ONLY;
	if (s->addr_len && sock_addr_is_bound(s->addrp, s->addr_len))
		s->flags |= IMAGE_SOCK_BOUND;
	len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		s->flags |= IMAGE_SOCK_CONNECTED;
		if (image_socket_set_peer(s, &ss,
					  len > sizeof(ss) ? sizeof(ss) : len) < 0)
			return -ENOMEM;
	}
	return 0;
}

/*
 * With fd, everything getsockopt/getsockname/getpeername show; without,
 * only that a unix socket's fdinfo has `scm_fds:` (the domain).
 */
static int socket_describe(struct image_target *t, int fd, const char *fdinfo)
{
	struct image_socket *s = &t->u.sock;
	int ret;

	/* addresses a target held before are its own: free them */
	image_socket_set_addr(s, NULL, 0);
	image_socket_set_peer(s, NULL, 0);
	memset(s, 0, sizeof(*s));
	s->backlog = -1;
	ret = kind_describe_file_flags(t, fd, fdinfo);
	if (ret < 0)
		return ret;
	if (fd >= 0)
		return socket_describe_live(s, fd);
	if (fdinfo && fdinfo_value(fdinfo, "scm_fds:"))
		s->domain = AF_UNIX;
	return 0;
}

/*
 * Compare what a restore must bring back.  A description made without a
 * descriptor (domain 0) compares equal in the fields it could not learn.
 */
static bool socket_same(const struct image_target *a,
			const struct image_target *b, char *diff,
			size_t diff_len)
{
	const struct image_socket *x = &a->u.sock, *y = &b->u.sock;

	if (x->domain == 0 || y->domain == 0)
		return true;
	/*
	 * Type 0: described from /proc alone (no pidfd_getfd into another
	 * process, e.g. under valgrind or a ptrace restriction): only the
	 * domain is known, the rest cannot be compared.
	 */
	if ((x->type == 0 || y->type == 0) && x->domain == y->domain)
		return true;
	if (x->domain != y->domain || x->type != y->type ||
	    x->protocol != y->protocol) {
		kind_diff(diff, diff_len,
			  "socket domain/type/protocol %u/%u/%u vs %u/%u/%u",
			  x->domain, x->type, x->protocol, y->domain, y->type,
			  y->protocol);
		return false;
	}
	if ((x->flags & SOCK_SAME_FLAGS) != (y->flags & SOCK_SAME_FLAGS)) {
		kind_diff(diff, diff_len, "socket flags 0x%x vs 0x%x",
			  x->flags & SOCK_SAME_FLAGS,
			  y->flags & SOCK_SAME_FLAGS);
		return false;
	}
	if ((x->flags & IMAGE_SOCK_BOUND) &&
	    (x->addr_len != y->addr_len ||
	     (x->addr_len && memcmp(x->addrp, y->addrp, x->addr_len) != 0))) {
		kind_diff(diff, diff_len,
			  "socket bound address differs (length %u vs %u)",
			  x->addr_len, y->addr_len);
		return false;
	}
	if (x->backlog >= 0 && y->backlog >= 0 && x->backlog != y->backlog) {
		kind_diff(diff, diff_len, "socket backlog %d vs %d",
			  x->backlog, y->backlog);
		return false;
	}
	return true;
}

const struct kind_ops kind_socket_ops = {
	.kind = IMAGE_KIND_SOCKET,
	.name = "socket",
	.match_link = socket_match_link,
	.describe = socket_describe,
	.same = socket_same,
};
