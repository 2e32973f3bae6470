// SPDX-License-Identifier: MIT
/*
 * Recreating sockets without privilege: socket(), the recorded options,
 * bind() to the recorded address, listen().  Connected sockets come back
 * only where no privilege is needed: both ends of a socketpair (with as
 * many bytes queued as were pending), and a connected datagram socket of
 * AF_INET/AF_INET6 (connect() sends nothing).
 * A connected stream socket would need TCP_REPAIR.  An AF_UNIX path is
 * bound only where nothing exists yet and no symlink leads to it, with
 * the recorded mode; the only file ever removed is one the restore bound
 * itself, while its path still names it.  An inet address another
 * process has (a live listener) is not bound unless forced.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "recreate.h"

/* Bytes of zeros sent at a time to queue a socketpair end's pending bytes;
 * also the largest datagram queued that way. */
#define SOCK_PENDING_CHUNK 65536
/* Sends at most, per end, to queue its pending bytes. */
#define SOCK_PENDING_MAX_SENDS 4096

static bool sock_is_inet(uint32_t domain)
{
	return domain == AF_INET || domain == AF_INET6;
}

/* A connected socket that connect() alone brings back: inet datagram. */
static bool sock_reconnectable(const struct image_socket *s)
{
	return sock_is_inet(s->domain) && s->type == SOCK_DGRAM &&
	       s->peer_len > 0;
}

int recreate_socket_can(const struct image_target *t, bool has_partner,
			char *why, size_t why_len)
{
	const struct image_socket *s = &t->u.sock;

	if (s->flags & IMAGE_SOCK_PAIR) {
		if (has_partner)
			return 0;
		recreate_say(why, why_len,
			     "the other end of this socketpair is not in the image");
		return -EOPNOTSUPP;
	}
	if (s->flags & IMAGE_SOCK_ENDED) {
		recreate_say(why, why_len,
			     "a socket whose connection ended cannot be restored (a new socket at its address would not be it)");
		return -EOPNOTSUPP;
	}
	if (!(s->flags & IMAGE_SOCK_CONNECTED) || sock_reconnectable(s))
		return 0;
	if (s->type == SOCK_STREAM && sock_is_inet(s->domain))
		recreate_say(why, why_len,
			     "a connected TCP socket cannot be restored unprivileged (it needs TCP_REPAIR)");
	else
		recreate_say(why, why_len,
			     "a connected socket whose peer is not in the image cannot be restored");
	return -EOPNOTSUPP;
}

/* The recorded address must be one the kernel accepts for the family. */
static int sock_check_addr(const struct image_socket *s, uint32_t len,
			   const struct sockaddr_storage *a,
			   const struct recreate_req *req, const char *what)
{
	char why[160];

	if (!image_sockaddr_ok(s->domain, a, len, why, sizeof(why))) {
		recreate_say(req->why, req->why_len,
			     "bad %s address in the image: %s", what, why);
		return -EINVAL;
	}
	return 0;
}

/*
 * Check that an AF_UNIX path can be bound without touching anything that
 * exists: no component of its directory is a symlink (openat2 with
 * RESOLVE_NO_SYMLINKS) and nothing, not even a dangling symlink, has the
 * name.  bind() itself never replaces the last component.
 */
static int unix_path_free(const char *path, const struct recreate_req *req)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	const char *slash = strrchr(path, '/'), *name = path;
	struct stat st;
	int dfd;

	if (slash) {
		size_t n = (size_t)(slash - path);

		if (n >= sizeof(dir)) {
			recreate_say(req->why, req->why_len,
				     "unix socket path of more than %zu bytes",
				     sizeof(dir) - 1);
			return -EINVAL;
		}
		memcpy(dir, path, n);
		dir[n ? n : 1] = '\0';
		if (!n)
			dir[0] = '/';
		name = slash + 1;
	} else {
		strcpy(dir, ".");
	}
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
		recreate_say(req->why, req->why_len,
			     "unix socket path %s names no file", path);
		return -EINVAL;
	}
	dfd = (int)syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof(how));
	if (dfd < 0 && errno == ENOSYS)
		dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		int err = errno;

		recreate_say(req->why, req->why_len,
			     err == ELOOP || err == EXDEV
				     ? "unix socket path %s: a symlink leads to its directory: not followed"
				     : "unix socket path %s: its directory: %s",
			     path, strerror(err));
		return -err;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		close(dfd);
		recreate_say(req->why, req->why_len,
			     "unix socket path %s already exists: it is not replaced",
			     path);
		return -EADDRINUSE;
	}
	close(dfd);
	return 0;
}

/* The text of an address for messages. */
static const char *sock_addr_text(const struct sockaddr_storage *a,
				  uint32_t len, char *buf, size_t buf_len)
{
	const struct sockaddr_un *un = (const void *)a;
	size_t plen;

	char ip[INET6_ADDRSTRLEN];

	if (!a || len < sizeof(sa_family_t)) {
		snprintf(buf, buf_len, "(no address)");
		return buf;
	}
	switch (a->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const void *)a;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, buf_len, "%s:%u", ip, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const void *)a;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, buf_len, "[%s]:%u", ip, ntohs(in6->sin6_port));
		break;
	}
	case AF_UNIX:
		plen = image_sun_path_len(a, len);
		if (plen && un->sun_path[0] == '\0')
			snprintf(buf, buf_len, "@%.*s", (int)(plen - 1),
				 un->sun_path + 1);
		else
			snprintf(buf, buf_len, "%.*s", (int)plen, un->sun_path);
		break;
	default:
		snprintf(buf, buf_len, "family %u", a->ss_family);
	}
	return buf;
}

/*
 * An IPv6 socket bound to an address of its own gets IPV6_V6ONLY from the
 * kernel; one without it (connected, bound by connect()) is bound to the
 * wildcard at its port instead, and connect() sets its address again.
 */
static bool sock_bind_any_then_connect(const struct image_socket *s)
{
	const struct sockaddr_in6 *in6 = (const void *)s->addrp;

	return s->domain == AF_INET6 && sock_reconnectable(s) &&
	       !(s->flags & IMAGE_SOCK_V6ONLY) &&
	       s->addr_len >= sizeof(*in6) &&
	       !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
}

_Static_assert(sizeof(((struct recreate_bound *)0)->path) ==
		       sizeof(((struct sockaddr_un *)0)->sun_path) + 1,
	       "recreate_bound.path holds a sun_path and its NUL");

bool recreate_unix_unlink(const char *path, dev_t dev, ino_t ino)
{
	struct stat st;

	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISSOCK(st.st_mode) || st.st_dev != dev || st.st_ino != ino)
		return false;
	return unlink(path) == 0;
}

/* Whether the socket inode ino is one of this process's descriptors. */
static bool sock_inode_is_ours(unsigned long ino)
{
	char want[48], link[64], name[32];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	bool ours = false;

	if (!d)
		return false;
	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	while (!ours && (e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%.20s", e->d_name);
		n = readlinkat(dirfd(d), name, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		ours = !strcmp(link, want);
	}
	closedir(d);
	return ours;
}

/* The 16 bytes of an address as /proc/net/{tcp,udp}6 print it. */
static bool sock_parse_net_addr(const char *hex, size_t nwords, uint32_t *w,
				unsigned *port)
{
	char word[9];

	for (size_t i = 0; i < nwords; i++) {
		memcpy(word, hex + i * 8, 8);
		word[8] = '\0';
		if (strspn(word, "0123456789ABCDEFabcdef") != 8)
			return false;
		w[i] = (uint32_t)strtoul(word, NULL, 16);
	}
	if (hex[nwords * 8] != ':')
		return false;
	*port = (unsigned)strtoul(hex + nwords * 8 + 1, NULL, 16);
	return true;
}

/*
 * Whether a socket of /proc/net/<table> (a line's local address in w, the
 * table's address words in nwords) overlaps the address we bind: same
 * port, and the same address, or a wildcard on either side (an IPv6
 * wildcard or v4-mapped address also covers IPv4).
 */
static bool sock_overlaps(const struct sockaddr_storage *a, size_t nwords,
			  const uint32_t *w)
{
	static const uint32_t zero[4];
	uint32_t mine[4] = { 0 };
	size_t mine_words = 1;
	bool mine_any;

	if (a->ss_family == AF_INET) {
		mine[0] = ((const struct sockaddr_in *)a)->sin_addr.s_addr;
	} else {
		memcpy(mine, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
		mine_words = 4;
	}
	mine_any = !memcmp(mine, zero, mine_words * 4);
	if (mine_any || !memcmp(w, zero, nwords * 4))
		return true;
	if (nwords == mine_words)
		return !memcmp(mine, w, nwords * 4);
	if (nwords == 4) /* an IPv6 line, our IPv4 address: v4-mapped? */
		return w[0] == 0 && w[1] == 0 && w[2] == htonl(0xffff) &&
		       w[3] == mine[0];
	/* an IPv4 line, our IPv6 address */
	return mine[0] == 0 && mine[1] == 0 && mine[2] == htonl(0xffff) &&
	       mine[3] == w[0];
}

/*
 * Find a socket of another process bound to an address the inet socket s
 * would share (the kernel's tables, /proc/net/{tcp,udp}{,6}: TCP
 * listening or bound, UDP bound).  Returns its inode and uid, or 0.
 */
static unsigned long sock_addr_taken(const struct image_socket *s,
				     unsigned *uid_out)
{
	const char *tables[2];
	unsigned port = s->addrp->ss_family == AF_INET
				? ntohs(((const struct sockaddr_in *)s->addrp)
						->sin_port)
				: ntohs(((const struct sockaddr_in6 *)s->addrp)
						->sin6_port);
	bool tcp = s->type == SOCK_STREAM;

	if (!port)
		return 0;
	tables[0] = tcp ? "/proc/net/tcp" : "/proc/net/udp";
	tables[1] = tcp ? "/proc/net/tcp6" : "/proc/net/udp6";
	for (int i = 0; i < 2; i++) {
		size_t nwords = i ? 4 : 1;
		FILE *f = fopen(tables[i], "re");
		char line[512];

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			char local[64];
			unsigned st, uid, lport;
			unsigned long ino;
			uint32_t w[4];

			if (sscanf(line, " %*u: %63s %*s %x %*s %*s %*s %u %*u %lu",
				   local, &st, &uid, &ino) != 4 ||
			    strlen(local) != nwords * 8 + 5 ||
			    !sock_parse_net_addr(local, nwords, w, &lport) ||
			    lport != port || !ino)
				continue;
			/* TCP: 0x0a listening, 0x07 bound; UDP: any. */
			if (tcp && st != 0x0a && st != 0x07)
				continue;
			if (!sock_overlaps(s->addrp, nwords, w) ||
			    sock_inode_is_ours(ino))
				continue;
			fclose(f);
			*uid_out = uid;
			return ino;
		}
		fclose(f);
	}
	return 0;
}

/*
 * bind() to the recorded address: AF_UNIX paths only where free, with the
 * recorded mode (the umask of the bind), the file remembered in
 * req->bound; inet addresses only where no other process has them, unless
 * forced.
 */
static int sock_bind(int fd, const struct image_socket *s,
		     const struct recreate_req *req)
{
	const struct sockaddr_un *un = (const void *)s->addrp;
	struct sockaddr_storage at = { 0 };
	char text[128];
	bool unix_path = false;
	mode_t old_umask = 0;
	int ret;

	ret = sock_check_addr(s, s->addr_len, s->addrp, req, "bound");
	if (ret < 0)
		return ret;
	/* checked: at most sizeof(at) bytes (addr_len is not 0 here) */
	memcpy(&at, s->addrp, s->addr_len);
	if (sock_is_inet(s->domain) && !req->force_bind) {
		unsigned uid = 0;
		unsigned long ino = sock_addr_taken(s, &uid);

		if (ino) {
			recreate_say(req->why, req->why_len,
				     "%s is in use by another process (socket:[%lu], uid %u): a restore beside it would share its address%s; stop it first, or force the bind (epollcr restore --force-bind)",
				     sock_addr_text(s->addrp, s->addr_len,
						    text, sizeof(text)),
				     ino, uid,
				     s->flags & IMAGE_SOCK_REUSEPORT
					     ? " and take part of its connections (SO_REUSEPORT)"
					     : "");
			return -EADDRINUSE;
		}
	}
	if (s->domain == AF_UNIX) {
		size_t plen = image_sun_path_len(s->addrp, s->addr_len);
		char path[sizeof(un->sun_path) + 1];

		if (!plen)
			return 0; /* unnamed: nothing to bind */
		if (un->sun_path[0] != '\0') {
			memcpy(path, un->sun_path, plen);
			path[plen] = '\0';
			ret = unix_path_free(path, req);
			if (ret < 0)
				return ret;
			unix_path = true;
		}
	}
	if (sock_bind_any_then_connect(s))
		((struct sockaddr_in6 *)&at)->sin6_addr = in6addr_any;
	/* The umask of this one bind gives the file the recorded mode. */
	if (unix_path && s->file_mode)
		old_umask = umask(~(mode_t)s->file_mode & 0777);
	ret = bind(fd, (const struct sockaddr *)&at,
		   s->domain == AF_UNIX && s->addr_len > sizeof(*un)
			   ? (socklen_t)sizeof(*un)
			   : s->addr_len);
	if (unix_path && s->file_mode)
		umask(old_umask);
	if (ret < 0) {
		int err = errno;

		recreate_say(req->why, req->why_len, "bind %s: %s",
			     sock_addr_text(s->addrp, s->addr_len, text,
					    sizeof(text)),
			     strerror(err));
		return -err;
	}
	if (unix_path && req->bound) {
		struct recreate_bound *b = req->bound;
		size_t plen = image_sun_path_len(s->addrp, s->addr_len);
		struct stat st;

		memcpy(b->path, un->sun_path, plen);
		b->path[plen] = '\0';
		if (fstatat(AT_FDCWD, b->path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			b->dev = st.st_dev;
			b->ino = st.st_ino;
			b->set = true;
		}
	}
	return 0;
}

static int sock_setopt(int fd, int level, int name, int value,
		       const struct recreate_req *req, const char *what)
{
	char call[64];

	if (setsockopt(fd, level, name, &value, sizeof(value)) == 0)
		return 0;
	snprintf(call, sizeof(call), "setsockopt %s", what);
	return recreate_errno(req->why, req->why_len, call);
}

/* What socket() failing means: here, this kind of socket cannot be made. */
static int sock_create_failed(const struct image_socket *s,
			      const struct recreate_req *req)
{
	int err = errno;

	recreate_say(req->why, req->why_len,
		     "socket(family %u, type %u, protocol %u): %s", s->domain,
		     s->type, s->protocol, strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS)
		return -err;
	return -EOPNOTSUPP;
}

int recreate_socket(const struct image_target *t,
		    const struct recreate_req *req, int *fd_out)
{
	const struct image_socket *s = &t->u.sock;
	int type = (int)s->type | (req->cloexec ? SOCK_CLOEXEC : 0) |
		   (t->file_flags & O_NONBLOCK ? SOCK_NONBLOCK : 0);
	char text[128], call[160];
	int fd, ret = 0;

	if (s->flags & ~IMAGE_SOCK_FLAGS_ALL) {
		recreate_say(req->why, req->why_len,
			     "unknown socket flags 0x%x", s->flags);
		return -EINVAL;
	}
	fd = socket((int)s->domain, type, (int)s->protocol);
	if (fd < 0)
		return sock_create_failed(s, req);
	if (s->flags & IMAGE_SOCK_REUSEADDR)
		ret = sock_setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1, req,
				  "SO_REUSEADDR");
	if (!ret && (s->flags & IMAGE_SOCK_REUSEPORT))
		ret = sock_setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1, req,
				  "SO_REUSEPORT");
	if (!ret && s->domain == AF_INET6)
		ret = sock_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
				  !!(s->flags & IMAGE_SOCK_V6ONLY), req,
				  "IPV6_V6ONLY");
	if (!ret && (s->flags & IMAGE_SOCK_BOUND) && s->addr_len)
		ret = sock_bind(fd, s, req);
	if (!ret && (s->flags & IMAGE_SOCK_CONNECTED)) {
		ret = sock_check_addr(s, s->peer_len, s->peerp, req, "peer");
		if (!ret &&
		    connect(fd, (const struct sockaddr *)s->peerp,
			    s->peer_len) < 0) {
			int err = errno;

			snprintf(call, sizeof(call), "connect %s",
				 sock_addr_text(s->peerp, s->peer_len, text,
						sizeof(text)));
			errno = err;
			ret = recreate_errno(req->why, req->why_len, call);
		}
	}
	if (!ret && (s->flags & IMAGE_SOCK_LISTENING) &&
	    listen(fd, s->backlog >= 0 ? s->backlog : SOMAXCONN) < 0)
		ret = recreate_errno(req->why, req->why_len, "listen");
	if (ret) {
		close(fd);
		if (req->bound && req->bound->set) {
			recreate_unix_unlink(req->bound->path, req->bound->dev,
					     req->bound->ino);
			req->bound->set = false;
		}
		return ret;
	}
	*fd_out = fd;
	return 0;
}

/*
 * Queue count bytes (zeros) for reading at one end of a socketpair by
 * sending them through the other end, `from`, without blocking: a stream
 * in chunks, a datagram or record socket as one message (the image holds
 * the size of its first datagram; SEQPACKET records are joined into one).
 * Stops where the kernel's buffers are full.  Returns the bytes queued.
 */
static uint32_t sock_queue_pending(int from, uint32_t type, uint32_t count)
{
	static const char zeros[SOCK_PENDING_CHUNK];
	uint32_t done = 0;
	int tries = 0;

	for (int i = 0; done < count && i < SOCK_PENDING_MAX_SENDS; i++) {
		size_t n = count - done < sizeof(zeros) ? count - done
							: sizeof(zeros);
		ssize_t k;

		if (type != SOCK_STREAM && n < count)
			break; /* one message larger than what is sent */
		k = send(from, zeros, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR && ++tries < 100)
			continue;
		if (k <= 0)
			break;
		done += (uint32_t)k;
		if (type != SOCK_STREAM)
			break;
	}
	return done;
}

/* Queue both ends' pending bytes again; a note says what was done. */
static void sock_pair_pending(const struct image_target *a,
			      const struct image_target *b, const int fds[2],
			      const struct recreate_req *req)
{
	uint32_t want_a = a->u.sock.pending, want_b = b->u.sock.pending;
	uint32_t got_a = 0, got_b = 0;

	if (!want_a && !want_b)
		return;
	if (want_a)
		got_a = sock_queue_pending(fds[1], a->u.sock.type, want_a);
	if (want_b)
		got_b = sock_queue_pending(fds[0], b->u.sock.type, want_b);
	if (got_a == want_a && got_b == want_b)
		recreate_say(req->note, req->note_len,
			     "socketpair targets %u and %u: %u and %u pending bytes queued again, as zeros (their contents are not kept)",
			     a->id, b->id, want_a, want_b);
	else
		recreate_say(req->note, req->note_len,
			     "socketpair targets %u and %u: only %u of %u and %u of %u pending bytes could be queued again (as zeros)",
			     a->id, b->id, got_a, want_a, got_b, want_b);
}

int recreate_socket_pair(const struct image_target *a,
			 const struct image_target *b,
			 const struct recreate_req *req, int fds_out[2])
{
	const struct image_socket *s = &a->u.sock;
	int sv[2], ret;

	if (b->u.sock.domain != s->domain || b->u.sock.type != s->type ||
	    b->u.sock.protocol != s->protocol) {
		recreate_say(req->why, req->why_len,
			     "socketpair ends %u and %u differ in family, type or protocol",
			     a->id, b->id);
		return -EINVAL;
	}
	if (socketpair((int)s->domain,
		       (int)s->type | (req->cloexec ? SOCK_CLOEXEC : 0),
		       (int)s->protocol, sv) < 0)
		return sock_create_failed(s, req);
	ret = recreate_set_nonblock(sv[0], a);
	if (!ret)
		ret = recreate_set_nonblock(sv[1], b);
	if (ret) {
		recreate_say(req->why, req->why_len, "fcntl O_NONBLOCK: %s",
			     strerror(-ret));
		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	sock_pair_pending(a, b, sv, req);
	fds_out[0] = sv[0];
	fds_out[1] = sv[1];
	return 0;
}

/*
 * The address a client reaches a listening socket at: its own name, with
 * the wildcard address replaced by loopback.
 */
static int listen_addr(int fd, struct sockaddr_storage *a, socklen_t *len)
{
	*len = sizeof(*a);
	if (getsockname(fd, (struct sockaddr *)a, len) < 0)
		return -errno;
	if (a->ss_family == AF_INET) {
		struct sockaddr_in *in = (void *)a;

		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (a->ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (void *)a;

		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	} else if (a->ss_family != AF_UNIX ||
		   *len <= offsetof(struct sockaddr_un, sun_path)) {
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * A listening socket is made readable by a loopback connection to itself,
 * which undo_ready accepts and closes.
 */
int recreate_socket_make_ready(const struct image_target *t,
			       struct recreate_ready *rr, char *why,
			       size_t why_len)
{
	struct sockaddr_storage a = { 0 };
	struct pollfd p = { .fd = rr->fd, .events = POLLIN };
	socklen_t len;
	int c, ret;

	if (!(t->u.sock.flags & IMAGE_SOCK_LISTENING)) {
		recreate_say(why, why_len,
			     "only a listening socket can be made ready for a moment");
		return -EOPNOTSUPP;
	}
	ret = listen_addr(rr->fd, &a, &len);
	if (ret < 0) {
		recreate_say(why, why_len,
			     "no address to connect to the listening socket");
		return ret;
	}
	c = socket(a.ss_family,
		   (int)t->u.sock.type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c < 0)
		return recreate_errno(why, why_len, "client socket");
	if (connect(c, (struct sockaddr *)&a, len) < 0 &&
	    errno != EINPROGRESS) {
		ret = recreate_errno(why, why_len, "loopback connect");
		goto err_close_client;
	}
	do
		ret = poll(&p, 1, rr->wait_ms > 0 ? rr->wait_ms : 0);
	while (ret < 0 && errno == EINTR);
	if (ret <= 0) {
		recreate_say(why, why_len,
			     rr->wait_ms > 0
				     ? "the loopback connection did not reach the listening socket"
				     : "the loopback connection did not reach the listening socket at once, and the restore's time to wait for readiness is spent");
		ret = -ETIMEDOUT;
		goto err_close_client;
	}
	rr->aux_fd = c;
	return 0;

err_close_client:
	close(c);
	return ret;
}

void recreate_socket_undo_ready(const struct image_target *t,
				struct recreate_ready *rr)
{
	int a = accept4(rr->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (a >= 0)
		close(a);
	if (rr->aux_fd >= 0)
		close(rr->aux_fd);
	rr->aux_fd = -1;
}
