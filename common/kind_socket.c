// SPDX-License-Identifier: MIT
/* Sockets: what the kernel shows of them (getsockopt, getsockname). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_segs_in (glibc's lacks it) */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "inet_diag.h"
#include "kind.h"
#include "kind_internal.h"
#include "ownfd.h"
#include "unix_diag.h"

/* What same() compares in image_socket.flags. */
#define SOCK_SAME_FLAGS                                                      \
	(IMAGE_SOCK_LISTENING | IMAGE_SOCK_CONNECTED | IMAGE_SOCK_REUSEADDR | \
	 IMAGE_SOCK_REUSEPORT | IMAGE_SOCK_BOUND | IMAGE_SOCK_V6ONLY |       \
	 IMAGE_SOCK_ENDED)

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

/* TCP states of tcpi_state (the kernel's enum, include/net/tcp_states.h). */
enum {
	KTCP_SYN_SENT = 2,
	KTCP_SYN_RECV = 3,
	KTCP_CLOSE = 7,
	KTCP_LISTEN = 10,
};

static bool sock_is_tcp(const struct image_socket *s)
{
	return (s->domain == AF_INET || s->domain == AF_INET6) &&
	       s->type == SOCK_STREAM && s->protocol == IPPROTO_TCP;
}

/*
 * What getpeername does not say, from the TCP state: a handshake under way
 * (SYN_SENT: no peer address yet; SYN_RECV) is a connection, and a socket
 * in state CLOSE that has sent or received segments had one, which ended
 * (reset, or closed and past TIME_WAIT): restoring it as a fresh socket
 * bound at its address would not bring it back.
 */
static void tcp_describe_state(struct image_socket *s, int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_segs_in) +
			  sizeof(ti.tcpi_segs_in))
		return;
	if (ti.tcpi_state == KTCP_SYN_SENT || ti.tcpi_state == KTCP_SYN_RECV)
		s->flags |= IMAGE_SOCK_CONNECTED;
	else if (ti.tcpi_state == KTCP_CLOSE &&
		 !(s->flags & IMAGE_SOCK_CONNECTED) &&
		 (ti.tcpi_segs_in || ti.tcpi_segs_out))
		s->flags |= IMAGE_SOCK_ENDED;
}

/*
 * Describe a socket we hold a descriptor of; what k knows (NULL: nothing)
 * is not asked.
 */
static int socket_describe_live(struct image_socket *s, int fd,
				const struct kind_socket_known *k)
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
	if (k && k->type >= 0)
		s->type = (uint32_t)k->type;
	else if (!sock_int(fd, SOL_SOCKET, SO_TYPE, &v))
		return -errno;
	else
		s->type = (uint32_t)v;
	if (k && k->protocol >= 0)
		s->protocol = (uint32_t)k->protocol;
	else if (sock_int(fd, SOL_SOCKET, SO_PROTOCOL, &v))
		s->protocol = (uint32_t)v;
	if ((!k || k->listening != 0) &&
	    sock_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &v) && v)
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
	/*
	 * With a peer, TCP_INFO adds nothing: a handshake under way is a
	 * connection already, and "ended" is for sockets without one.
	 */
	if (sock_is_tcp(s) && !(s->flags & IMAGE_SOCK_CONNECTED))
		tcp_describe_state(s, fd);
	return 0;
}

/*
 * Start t's socket description afresh: the addresses it held before (its
 * own) freed, every field cleared, the backlog unknown, the file flags
 * taken.  Returns 0 or -errno.
 */
static int socket_describe_start(struct image_target *t, int fd,
				 const char *fdinfo)
{
	struct image_socket *s = &t->u.sock;

	image_socket_set_addr(s, NULL, 0);
	image_socket_set_peer(s, NULL, 0);
	memset(s, 0, sizeof(*s));
	s->backlog = -1;
	return kind_describe_file_flags(t, fd, fdinfo);
}

/*
 * With fd, everything getsockopt/getsockname/getpeername show; without,
 * only that a unix socket's fdinfo has `scm_fds:` (the domain).
 */
static int socket_describe(struct image_target *t, int fd, const char *fdinfo)
{
	struct image_socket *s = &t->u.sock;
	int ret;

	ret = socket_describe_start(t, fd, fdinfo);
	if (ret < 0)
		return ret;
	if (fd >= 0)
		return socket_describe_live(s, fd, NULL);
	if (fdinfo && fdinfo_value(fdinfo, "scm_fds:"))
		s->domain = AF_UNIX;
	return 0;
}

int kind_socket_describe_known(struct image_target *t, int fd,
			       const char *fdinfo,
			       const struct kind_socket_known *k)
{
	int ret = socket_describe_start(t, fd, fdinfo);

	if (ret < 0)
		return ret;
	return socket_describe_live(&t->u.sock, fd, k);
}

/* An IPv6 address whose getsockname() carries a scope id. */
static bool sock_v6_scoped(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *in6 = (const void *)ss;

	return ss->ss_family == AF_INET6 &&
	       (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr) ||
		IN6_IS_ADDR_MC_LINKLOCAL(&in6->sin6_addr));
}

/* Is there a remote port: what inet_getname() asks before a peer. */
static bool sock_has_dport(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)ss)->sin_port;
	return ((const struct sockaddr_in6 *)(const void *)ss)->sin6_port;
}

int kind_socket_describe_bulk(struct image_target *t, int fd,
			      const char *fdinfo,
			      const struct inet_diag_sock *d)
{
	struct image_socket *s = &t->u.sock;
	socklen_t alen = d->family == AF_INET ? sizeof(struct sockaddr_in)
					      : sizeof(struct sockaddr_in6);
	int ret, v;

	/*
	 * A TCP socket in CLOSE may have had a connection that ended
	 * (IMAGE_SOCK_ENDED, from its segment counts): through fd.
	 */
	if (fd < 0 || (d->family != AF_INET && d->family != AF_INET6) ||
	    (d->protocol != IPPROTO_TCP && d->protocol != IPPROTO_UDP) ||
	    (d->protocol == IPPROTO_TCP && d->state == KTCP_CLOSE) ||
	    (d->family == AF_INET6 && d->v6only < 0) ||
	    sock_v6_scoped(&d->local) || sock_v6_scoped(&d->remote))
		return -EAGAIN;
	ret = socket_describe_start(t, fd, fdinfo);
	if (ret < 0)
		return ret;
	s->domain = d->family;
	s->type = d->protocol == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
	s->protocol = d->protocol;
	if (image_socket_set_addr(s, &d->local, alen) < 0)
		return -ENOMEM;
	if (d->protocol == IPPROTO_TCP && d->state == KTCP_LISTEN)
		s->flags |= IMAGE_SOCK_LISTENING;
	/* No bulk source has these two. */
	if (sock_int(fd, SOL_SOCKET, SO_REUSEADDR, &v) && v)
		s->flags |= IMAGE_SOCK_REUSEADDR;
	if (sock_int(fd, SOL_SOCKET, SO_REUSEPORT, &v) && v)
		s->flags |= IMAGE_SOCK_REUSEPORT;
	if (d->family == AF_INET6 && d->v6only > 0)
		s->flags |= IMAGE_SOCK_V6ONLY;
	if (sock_addr_is_bound(s->addrp, s->addr_len))
		s->flags |= IMAGE_SOCK_BOUND;
	/* inet_getname(): a peer once there is a remote port, unless closed
	 * or still connecting. */
	if (sock_has_dport(&d->remote) && d->state != KTCP_CLOSE &&
	    d->state != KTCP_SYN_SENT) {
		s->flags |= IMAGE_SOCK_CONNECTED;
		if (image_socket_set_peer(s, &d->remote, alen) < 0)
			return -ENOMEM;
	}
	/* tcp_describe_state(): a handshake under way is a connection. */
	if (d->protocol == IPPROTO_TCP &&
	    (d->state == KTCP_SYN_SENT || d->state == KTCP_SYN_RECV))
		s->flags |= IMAGE_SOCK_CONNECTED;
	return 0;
}

/*
 * The text of a recorded socket address for messages: 127.0.0.1:80,
 * [::1]:80, a unix path, @abstract, unnamed, or the family and length.
 */
static const char *sock_addr_str(const struct image_socket *s, char *buf,
				 size_t buf_len)
{
	const struct sockaddr_storage *a = s->addrp;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	char ip[INET6_ADDRSTRLEN];

	if (s->addr_len < sizeof(sa_family_t)) {
		snprintf(buf, buf_len, "none");
	} else if (a->ss_family == AF_INET &&
		   s->addr_len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)a;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, buf_len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (a->ss_family == AF_INET6 &&
		   s->addr_len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)a;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, buf_len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else if (a->ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)a;
		size_t plen = s->addr_len > off ? s->addr_len - off : 0;

		if (plen > sizeof(un->sun_path))
			plen = sizeof(un->sun_path);
		if (!plen)
			snprintf(buf, buf_len, "unnamed");
		else if (un->sun_path[0] == '\0')
			snprintf(buf, buf_len, "@%.*s", (int)(plen - 1),
				 un->sun_path + 1);
		else
			snprintf(buf, buf_len, "%.*s", (int)plen, un->sun_path);
	} else {
		snprintf(buf, buf_len, "family %u, %u bytes", a->ss_family,
			 s->addr_len);
	}
	return buf;
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
		char xa[160], ya[160];

		kind_diff(diff, diff_len, "socket bound address %s vs %s",
			  sock_addr_str(x, xa, sizeof(xa)),
			  sock_addr_str(y, ya, sizeof(ya)));
		return false;
	}
	if (x->file_mode && y->file_mode && x->file_mode != y->file_mode) {
		kind_diff(diff, diff_len, "socket file mode 0%o vs 0%o",
			  x->file_mode & 07777, y->file_mode & 07777);
		return false;
	}
	if (x->backlog >= 0 && y->backlog >= 0 && x->backlog != y->backlog) {
		kind_diff(diff, diff_len, "socket backlog %d vs %d",
			  x->backlog, y->backlog);
		return false;
	}
	return true;
}

/* Whether st is the socket file sock_diag names (inode, kernel dev). */
static bool sock_file_is(const struct stat *st, const struct unix_diag_sock *d)
{
	return S_ISSOCK(st->st_mode) && st->st_ino == d->vfs_ino &&
	       major(st->st_dev) == d->vfs_dev >> 20 &&
	       minor(st->st_dev) == (d->vfs_dev & 0xfffff);
}

/*
 * Look for the file among the entries of directory dir (relative to
 * base_fd); its name into name (name_len bytes).  true when found.
 */
static bool sock_file_in_dir(int base_fd, const char *dir,
			     const struct unix_diag_sock *d,
			     struct stat *st, char *name, size_t name_len)
{
	/* Inside a program: moved above its range (ownfd.h). */
	int dfd = OWN_FD(openat(base_fd, dir,
				O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	DIR *dp = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;
	bool found = false;

	if (!dp) {
		if (dfd >= 0)
			close(dfd);
		return false;
	}
	for (uint32_t n = 0; !found && n < KIND_UNIX_SCAN_MAX &&
			     (e = readdir(dp)); n++) {
		if (e->d_ino != d->vfs_ino ||
		    (e->d_type != DT_SOCK && e->d_type != DT_UNKNOWN) ||
		    fstatat(dirfd(dp), e->d_name, st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !sock_file_is(st, d))
			continue;
		found = snprintf(name, name_len, "%s", e->d_name) <
			(int)name_len;
	}
	closedir(dp);
	return found;
}

enum kind_unix_file kind_socket_unix_file(struct image_socket *s, int fd,
					  int cwd_fd, char *old_name,
					  size_t old_name_len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX }, *un = &sun;
	size_t off = offsetof(struct sockaddr_un, sun_path), plen, dlen;
	char path[sizeof(un->sun_path) + 1], dir[sizeof(path)], name[256];
	char moved[sizeof(path) + sizeof(name) + 1];
	struct unix_diag_sock d;
	struct stat st;
	const char *slash;

	/*
	 * A connected socket (an accepted one has its listener's name) is
	 * not restored by binding: one sock_diag request per connection
	 * would be wasted.
	 */
	if (s->domain != AF_UNIX || s->addr_len <= off + 1 ||
	    (s->flags & IMAGE_SOCK_CONNECTED))
		return KIND_UNIX_FILE_NONE;
	/* a copy: a new name is set as a whole (the address is out of line) */
	memcpy(&sun, s->addrp,
	       s->addr_len < sizeof(sun) ? s->addr_len : sizeof(sun));
	if (un->sun_path[0] == '\0')
		return KIND_UNIX_FILE_NONE;
	plen = strnlen(un->sun_path, s->addr_len - off);
	memcpy(path, un->sun_path, plen);
	path[plen] = '\0';
	if (fstat(fd, &st) < 0 || unix_diag_lookup(st.st_ino, &d) < 0 ||
	    !d.has_vfs)
		return KIND_UNIX_FILE_UNKNOWN;
	if (fstatat(cwd_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    sock_file_is(&st, &d)) {
		s->file_mode = (uint32_t)st.st_mode;
		return KIND_UNIX_FILE_AT_NAME;
	}
	slash = strrchr(path, '/');
	dlen = slash ? (size_t)(slash - path) : 0;
	if (slash)
		snprintf(dir, sizeof(dir), "%.*s", (int)(dlen ? dlen : 1),
			 path);
	else
		snprintf(dir, sizeof(dir), ".");
	if (!sock_file_in_dir(cwd_fd, dir, &d, &st, name, sizeof(name)))
		return KIND_UNIX_FILE_UNREACHABLE;
	snprintf(moved, sizeof(moved), "%s%s%s", slash && dlen ? dir : "",
		 slash ? "/" : "", name);
	if (strlen(moved) >= sizeof(un->sun_path))
		return KIND_UNIX_FILE_UNREACHABLE;
	memset(un->sun_path, 0, sizeof(un->sun_path));
	memcpy(un->sun_path, moved, strlen(moved));
	if (image_socket_set_addr(s, un,
				  (uint32_t)(off + strlen(moved) + 1)) < 0)
		return KIND_UNIX_FILE_UNKNOWN;
	snprintf(old_name, old_name_len, "%s", path);
	s->file_mode = (uint32_t)st.st_mode;
	return KIND_UNIX_FILE_RENAMED;
}

const struct kind_ops kind_socket_ops = {
	.kind = IMAGE_KIND_SOCKET,
	.name = "socket",
	.match_link = socket_match_link,
	.describe = socket_describe,
	.same = socket_same,
};
