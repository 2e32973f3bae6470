// SPDX-License-Identifier: MIT
/* Socket targets described from sock_diag, by inode (see sockinfo.h). */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "inet_diag.h"
#include "sockinfo.h"
#include "unix_diag.h"

/* A socket target that needs sock_diag, by inode. */
struct want {
	uint64_t ino;
	struct image_target *t;
	bool found;
	bool described;		/* its domain came from sock_diag */
};

struct wants {
	struct want *v;
	uint32_t n;
};

static int cmp_want(const void *a, const void *b)
{
	const struct want *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static struct want *want_of(const struct wants *w, uint64_t ino)
{
	struct want key = { .ino = ino };

	return bsearch(&key, w->v, w->n, sizeof(*w->v), cmp_want);
}

static bool addr_is_set(const struct sockaddr_storage *ss)
{
	static const uint8_t zero[16];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		return a->sin_port || a->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *a = (const void *)ss;
	return a->sin6_port || memcmp(&a->sin6_addr, zero, 16);
}

static int on_inet(void *ctx, const struct inet_diag_sock *s)
{
	struct want *w = want_of(ctx, s->ino);
	struct image_socket *so;
	uint32_t len;

	if (!w || w->found)
		return 0;
	w->found = true;
	so = &w->t->u.sock;
	if (so->type) {
		/* Described through a descriptor: only the backlog is new. */
		if ((so->flags & IMAGE_SOCK_LISTENING) && so->backlog < 0 &&
		    s->protocol == IPPROTO_TCP && s->state == TCP_LISTEN)
			so->backlog = (int32_t)(s->wqueue & INT32_MAX);
		return 0;
	}
	len = s->family == AF_INET ? sizeof(struct sockaddr_in)
				   : sizeof(struct sockaddr_in6);
	w->described = true;
	so->domain = s->family;
	so->type = s->protocol == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
	so->protocol = s->protocol;
	so->flags = 0;
	if (s->v6only > 0)
		so->flags |= IMAGE_SOCK_V6ONLY;
	if (image_socket_set_addr(so, &s->local, len) < 0)
		return -ENOMEM;
	if (addr_is_set(&s->local))
		so->flags |= IMAGE_SOCK_BOUND;
	if (s->protocol == IPPROTO_TCP && s->state == TCP_LISTEN) {
		so->flags |= IMAGE_SOCK_LISTENING;
		so->backlog = (int32_t)(s->wqueue & INT32_MAX);
	} else if (addr_is_set(&s->remote) && s->state != TCP_CLOSE &&
		   s->state != TCP_LISTEN) {
		so->flags |= IMAGE_SOCK_CONNECTED;
		if (image_socket_set_peer(so, &s->remote, len) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int on_unix(void *ctx, const struct unix_diag_sock *s)
{
	struct want *w = want_of(ctx, s->ino);
	struct image_socket *so;

	if (!w || w->found)
		return 0;
	w->found = true;
	so = &w->t->u.sock;
	if (so->domain && so->domain != AF_UNIX)
		return 0;
	if (s->state == TCP_LISTEN && so->backlog < 0)
		so->backlog = (int32_t)(s->wqueue & INT32_MAX);
	if (so->type)
		return 0; /* described through a descriptor: the backlog only */
	w->described = true;
	so->domain = AF_UNIX;
	so->type = s->type;
	if (s->name && s->name_len <= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		struct sockaddr_un un = { .sun_family = AF_UNIX };

		memcpy(un.sun_path, s->name, s->name_len);
		if (image_socket_set_addr(
			    so, &un,
			    (uint32_t)(offsetof(struct sockaddr_un, sun_path) +
				       s->name_len)) < 0)
			return -ENOMEM;
		so->flags |= IMAGE_SOCK_BOUND;
	} else {
		sa_family_t family = AF_UNIX;

		if (image_socket_set_addr(so, &family, sizeof(family)) < 0)
			return -ENOMEM;
	}
	if (s->state == TCP_LISTEN)
		so->flags |= IMAGE_SOCK_LISTENING;
	if (s->peer_ino)
		so->flags |= IMAGE_SOCK_CONNECTED;
	return 0;
}

/* Does target t need sock_diag? */
static bool needs_diag(const struct image_target *t)
{
	const struct image_socket *so = &t->u.sock;

	if (t->kind != IMAGE_KIND_SOCKET)
		return false;
	if (!so->type)
		return true; /* no descriptor described it (SO_TYPE is never 0) */
	return (so->domain == AF_INET || so->domain == AF_INET6 ||
		so->domain == AF_UNIX) &&
	       (so->flags & IMAGE_SOCK_LISTENING) && so->backlog < 0;
}

static int collect(struct image *img, struct wants *w)
{
	w->n = 0;
	w->v = NULL;
	for (uint32_t i = 0; i < img->ntargets; i++) {
		struct image_target *t = &img->targets[i];
		uint64_t ino;

		if (!needs_diag(t) || !t->path ||
		    sscanf(t->path, "socket:[%" SCNu64 "]", &ino) != 1)
			continue;
		if (!w->v && !(w->v = calloc(img->ntargets, sizeof(*w->v))))
			return -ENOMEM;
		w->v[w->n++] = (struct want){ .ino = ino, .t = t };
	}
	if (w->n)
		qsort(w->v, w->n, sizeof(*w->v), cmp_want);
	return 0;
}

int sockinfo_fill(struct image *img)
{
	static const struct {
		uint32_t family, protocol;
		const char *name;
	} tables[] = {
		{ AF_INET, IPPROTO_TCP, "TCP/IPv4" },
		{ AF_INET6, IPPROTO_TCP, "TCP/IPv6" },
		{ AF_INET, IPPROTO_UDP, "UDP/IPv4" },
		{ AF_INET6, IPPROTO_UDP, "UDP/IPv6" },
	};
	struct wants w;
	bool undescribed = false, inet = false, unix_ = false;
	int ret = collect(img, &w);

	if (ret < 0 || !w.n)
		return ret;
	for (uint32_t i = 0; i < w.n; i++) {
		uint32_t domain = w.v[i].t->u.sock.domain;

		undescribed |= !w.v[i].t->u.sock.type;
		inet |= domain == AF_INET || domain == AF_INET6;
		unix_ |= domain == AF_UNIX;
	}
	for (size_t k = 0; k < sizeof(tables) / sizeof(tables[0]); k++) {
		if (!undescribed && (!inet || tables[k].protocol != IPPROTO_TCP))
			continue;
		ret = inet_diag_dump(tables[k].family, tables[k].protocol,
				     on_inet, &w);
		if (ret < 0 && ret != -ENOENT &&
		    image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC,
				   -1, -1, NULL, IMAGE_NONE,
				   "sock_diag could not list the %s sockets: %s",
				   tables[k].name, strerror(-ret)) < 0)
			goto out_nomem;
	}
	if (undescribed || unix_) {
		ret = unix_diag_dump(on_unix, &w);
		if (ret < 0 &&
		    image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC,
				   -1, -1, NULL, IMAGE_NONE,
				   "sock_diag could not list the unix sockets: %s",
				   strerror(-ret)) < 0)
			goto out_nomem;
	}
	for (uint32_t i = 0; i < w.n; i++) {
		const struct image_target *t = w.v[i].t;

		/* Described but for the name: a unix listener, from sock_diag. */
		bool nameless = w.v[i].described &&
				t->u.sock.domain == AF_UNIX &&
				(t->u.sock.flags & IMAGE_SOCK_LISTENING) &&
				!(t->u.sock.flags & IMAGE_SOCK_BOUND);

		if (t->u.sock.type && !nameless)
			continue;
		if (image_add_diag(img, IMAGE_SEV_WARNING,
				   IMAGE_DIAG_UNRESTORABLE, -1, -1, t->path,
				   IMAGE_NONE,
				   nameless
					   ? "%s: a listening unix socket seen only through sock_diag: its name is not known, a restore cannot bind it"
					   : "%s: a socket sock_diag does not show (not TCP, UDP or unix), seen from outside the process: its type is not known",
				   t->path) < 0)
			goto out_nomem;
	}
	uint32_t from_diag = 0;
	for (uint32_t i = 0; i < w.n; i++)
		from_diag += w.v[i].described;
	if (from_diag &&
	    image_add_diag(img, IMAGE_SEV_INFO, IMAGE_DIAG_GENERIC, -1, -1,
			   NULL, IMAGE_NONE,
			   "%u socket%s described from sock_diag alone (no copy of the descriptor could be made: pidfd_getfd refused): SO_REUSEADDR and SO_REUSEPORT are not known, a restore leaves them off",
			   from_diag, from_diag == 1 ? " was" : "s were") < 0)
		goto out_nomem;
	free(w.v);
	return 0;
out_nomem:
	free(w.v);
	return -ENOMEM;
}
