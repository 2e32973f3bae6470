/* SPDX-License-Identifier: MIT */
/*
 * A small writer of VALID images with random meaning, for the semantic
 * fuzzer (test/unit/test_semantic.c, test/fuzz/fuzz_semantic.c): random
 * sets, nested sets, watches on every kind, events, data, stale tfds,
 * fired oneshots, sockets with random paths and ports, and hostile strings
 * (control bytes, C1, bidi overrides, invalid UTF-8) wherever the format
 * holds text.  The result is a struct image that the writer
 * (image_write_file) accepts; the reader decides whether its meaning is
 * acceptable, and the restore and show must cope with whatever it accepts.
 *
 * Everything is drawn from a caller's xorshift state, so a seed names an
 * image.  fd numbers are drawn from [fd_base, fd_base + IG_FD_SPAN), unix
 * socket paths lie in sock_dir (which must exist, short enough that a
 * path stays under 108 bytes).
 */
#ifndef EPOLLCR_TEST_IMGGEN_H
#define EPOLLCR_TEST_IMGGEN_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "epollcr_image.h"

#define IG_UNUSED __attribute__((unused))
#define IG_FD_SPAN 48	 /* fd numbers an image may use */
#define IG_MAX_TARGETS 14 /* targets per image, at most */

struct imggen {
	uint64_t state;		/* xorshift64 state, not 0 */
	int fd_base;		/* first fd number an image may use */
	const char *sock_dir;	/* unix socket paths go there */
	bool hostile_paths;	/* unix paths outside sock_dir too */
};

IG_UNUSED static uint64_t ig_next(struct imggen *g)
{
	uint64_t x = g->state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return g->state = x;
}

/* A number in [0, n). */
IG_UNUSED static uint32_t ig_below(struct imggen *g, uint32_t n)
{
	return n ? (uint32_t)(ig_next(g) % n) : 0;
}

IG_UNUSED static bool ig_chance(struct imggen *g, uint32_t percent)
{
	return ig_below(g, 100) < percent;
}

IG_UNUSED static char *ig_strdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		abort();
	return d;
}

/*
 * A string of up to 40 bytes, often hostile: ESC sequences, BEL, newline,
 * C1 bytes raw and as UTF-8, bidi overrides, invalid UTF-8, backslashes,
 * quotes.  Never empty, never with a NUL (the format forbids it).
 */
IG_UNUSED static char *ig_string(struct imggen *g, const char *plain)
{
	static const char *const bits[] = {
		"\x1b[31m", "\x1b]0;title\x07", "\n", "\r", "\t", "\x7f",
		"\x9b", "\xc2\x9b", "\xc2\x85", "\xe2\x80\xae", "\xe2\x81\xa6",
		"\xe2\x80\x8f", "\xd8\x9c", "\xff", "\xc3", "\xe2\x80",
		"\\", "\"", "'", "%s%n", "caf\xc3\xa9", "\xf0\x9f\x98\x80",
		"\xed\xa0\x80", "\xc0\xaf", "<script>", "/../",
	};
	char buf[64];
	size_t len = 0;

	if (!ig_chance(g, 40))
		return ig_strdup(plain);
	for (int i = 0, n = 1 + (int)ig_below(g, 4); i < n; i++) {
		const char *b = ig_chance(g, 70)
					? bits[ig_below(g, sizeof(bits) /
							      sizeof(bits[0]))]
					: plain;
		size_t k = strlen(b);

		if (len + k >= sizeof(buf))
			break;
		memcpy(buf + len, b, k);
		len += k;
	}
	if (!len)
		buf[len++] = 'x';
	buf[len] = '\0';
	return ig_strdup(buf);
}

/* Set a socket's address or peer (the socket owns the copy). */
IG_UNUSED static void ig_set_addr(struct image_socket *s, bool peer,
				  const void *addr, size_t len)
{
	if ((peer ? image_socket_set_peer(s, addr, (uint32_t)len)
		  : image_socket_set_addr(s, addr, (uint32_t)len)) < 0)
		abort();
}

/* A unix socket name: a path in sock_dir (or anywhere), or abstract. */
IG_UNUSED static void ig_unix_addr(struct imggen *g, struct image_socket *s)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX }, *un = &sun;
	size_t off = offsetof(struct sockaddr_un, sun_path), n;

	switch (ig_below(g, 4)) {
	case 0: /* unnamed */
		ig_set_addr(s, false, un, sizeof(sa_family_t));
		return;
	case 1: /* abstract, random bytes (NUL allowed after the first) */
		n = 1 + ig_below(g, 20);
		un->sun_path[0] = '\0';
		for (size_t i = 1; i <= n; i++)
			un->sun_path[i] = (char)ig_below(g, 256);
		ig_set_addr(s, false, un, off + 1 + n);
		return;
	default: { /* a path */
		const char *dir = g->hostile_paths && ig_chance(g, 30)
					  ? (ig_chance(g, 50) ? "/tmp" : "/")
					  : g->sock_dir;
		char *name = ig_string(g, "sock");

		for (char *p = name; *p; p++)
			if (*p == '/')
				*p = '_';
		n = (size_t)snprintf(un->sun_path, sizeof(un->sun_path),
				     "%s/%u-%s", dir, ig_below(g, 1000), name);
		free(name);
		if (n >= sizeof(un->sun_path))
			n = sizeof(un->sun_path) - 1;
		ig_set_addr(s, false, un, off + n + 1);
	}
	}
}

/* An inet address on loopback (or any), port 0, random or privileged. */
IG_UNUSED static void ig_inet_addr(struct imggen *g, struct image_socket *s)
{
	uint16_t port = 0;

	if (ig_chance(g, 15))
		port = (uint16_t)(1 + ig_below(g, 1023));
	else if (ig_chance(g, 40))
		port = (uint16_t)(20000 + ig_below(g, 40000));

	if (s->domain == AF_INET) {
		struct sockaddr_in in = { .sin_family = AF_INET };

		in.sin_port = htons(port);
		in.sin_addr.s_addr = htonl(ig_chance(g, 80) ? INADDR_LOOPBACK
							   : INADDR_ANY);
		ig_set_addr(s, false, &in, sizeof(in));
	} else {
		struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

		in6.sin6_port = htons(port);
		in6.sin6_addr = in6addr_loopback;
		ig_set_addr(s, false, &in6, sizeof(in6));
	}
}

/* A lone socket: a listener or a bound datagram socket, or unbound. */
IG_UNUSED static void ig_socket(struct imggen *g, struct image_target *t)
{
	struct image_socket *s = &t->u.sock;
	static const uint32_t domains[] = { AF_INET, AF_INET6, AF_UNIX };

	s->domain = domains[ig_below(g, 3)];
	s->type = ig_chance(g, 70) ? SOCK_STREAM : SOCK_DGRAM;
	s->protocol = 0;
	s->backlog = ig_chance(g, 20) ? -1 : (int32_t)ig_below(g, 512);
	s->pair = IMAGE_NONE;
	if (ig_chance(g, 85)) {
		s->flags |= IMAGE_SOCK_BOUND;
		if (s->domain == AF_UNIX)
			ig_unix_addr(g, s);
		else
			ig_inet_addr(g, s);
		/* a path's file mode, half the time (0: not known) */
		if (s->domain == AF_UNIX && s->addr_len > sizeof(sa_family_t) &&
		    ((struct sockaddr_un *)s->addrp)->sun_path[0] &&
		    ig_chance(g, 50))
			s->file_mode = 0140000u | ig_below(g, 01000);
		if (s->type == SOCK_STREAM && ig_chance(g, 80))
			s->flags |= IMAGE_SOCK_LISTENING;
	}
	if (s->domain != AF_UNIX && ig_chance(g, 30))
		s->flags |= IMAGE_SOCK_REUSEADDR;
	if (s->domain != AF_UNIX && ig_chance(g, 20))
		s->flags |= IMAGE_SOCK_REUSEPORT;
	if (s->domain == AF_INET6 && ig_chance(g, 50))
		s->flags |= IMAGE_SOCK_V6ONLY;
	t->path = ig_strdup("socket:[4242]");
}

/* A random target of any kind but a pair's second end. */
IG_UNUSED static void ig_target(struct imggen *g, struct image *img,
				uint32_t kind)
{
	struct image_target *t = image_add_target(img, kind);

	if (!t)
		abort();
	t->origin = 1 + ig_below(g, 3);
	t->file_flags = O_RDWR | (ig_chance(g, 50) ? O_NONBLOCK : 0);
	switch (kind) {
	case IMAGE_KIND_EPOLL:
		t->path = ig_strdup("anon_inode:[eventpoll]");
		break;
	case IMAGE_KIND_EVENTFD:
		t->u.efd.count = ig_chance(g, 50) ? 0 : ig_below(g, 1000);
		t->u.efd.semaphore = ig_below(g, 2);
		t->path = ig_strdup("anon_inode:[eventfd]");
		break;
	case IMAGE_KIND_TIMERFD: {
		static const uint32_t clocks[] = { 0, 1, 7 };

		t->u.tfd.clockid = clocks[ig_below(g, 3)];
		if (ig_chance(g, 50))
			t->u.tfd.value_ns = 1 + ig_below(g, 2000000000u);
		if (ig_chance(g, 30))
			t->u.tfd.interval_ns = 1 + ig_below(g, 1000000000u);
		t->u.tfd.ticks = ig_chance(g, 30) ? ig_below(g, 5) : 0;
		t->path = ig_strdup("anon_inode:[timerfd]");
		break;
	}
	case IMAGE_KIND_SIGNALFD:
		t->u.sfd.mask = ig_next(g) & 0x7fffffffull;
		t->path = ig_strdup("anon_inode:[signalfd]");
		break;
	case IMAGE_KIND_SOCKET:
		ig_socket(g, t);
		break;
	case IMAGE_KIND_PIPE:
		t->u.pipe.write_end = ig_below(g, 2);
		t->u.pipe.ino = ig_next(g) & 0xffffff;
		t->u.pipe.peer = IMAGE_NONE;
		t->path = ig_strdup("pipe:[77]");
		break;
	default:
		t->path = ig_string(g, "/dev/null");
		break;
	}
}

/* Two ends created together: a pipe or a socketpair. */
IG_UNUSED static void ig_pair(struct imggen *g, struct image *img)
{
	bool pipe = ig_chance(g, 50);
	uint32_t type = ig_chance(g, 60) ? SOCK_STREAM
			: ig_chance(g, 50) ? SOCK_DGRAM
					   : SOCK_SEQPACKET;
	struct image_target *a, *b;
	uint32_t ida;

	a = image_add_target(img, pipe ? IMAGE_KIND_PIPE : IMAGE_KIND_SOCKET);
	if (!a)
		abort();
	ida = a->id;
	b = image_add_target(img, pipe ? IMAGE_KIND_PIPE : IMAGE_KIND_SOCKET);
	if (!b)
		abort();
	a = &img->targets[ida - 1];
	for (int i = 0; i < 2; i++) {
		struct image_target *t = i ? b : a;

		t->origin = IMAGE_ORIGIN_KERNEL;
		t->file_flags = (pipe ? (i ? O_WRONLY : O_RDONLY) : O_RDWR) |
				(ig_chance(g, 50) ? O_NONBLOCK : 0);
		if (pipe) {
			t->u.pipe.write_end = (uint32_t)i;
			t->u.pipe.ino = 99;
			t->u.pipe.peer = i ? ida : b->id;
			t->u.pipe.pending = i || ig_chance(g, 60)
						    ? 0
						    : ig_below(g, 70000);
			t->path = ig_strdup("pipe:[99]");
		} else {
			struct image_socket *s = &t->u.sock;

			s->domain = AF_UNIX;
			s->type = type;
			s->flags = IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED;
			s->backlog = -1;
			sa_family_t family = AF_UNIX;

			ig_set_addr(s, false, &family, sizeof(family));
			ig_set_addr(s, true, &family, sizeof(family));
			s->pair = i ? ida : b->id;
			s->pending = ig_chance(g, 60) ? 0 : ig_below(g, 5000);
			t->path = ig_strdup("socket:[98]");
		}
	}
}

/*
 * Random modules, backtraces and diagnostics: only show reads them.
 * Module paths name real files of every sort (a FIFO, a device, a
 * directory, a missing file) when given, else hostile strings.
 */
IG_UNUSED static void ig_extras(struct imggen *g, struct image *img,
				const char *const *module_paths,
				size_t nmodule_paths)
{
	uint32_t nmod = ig_below(g, 4), nbt = ig_below(g, 4);

	for (uint32_t i = 0; i < nmod; i++) {
		struct image_module *m = image_add_module(img);

		if (!m)
			abort();
		m->path = nmodule_paths && ig_chance(g, 70)
				  ? ig_strdup(module_paths[ig_below(
					    g, (uint32_t)nmodule_paths)])
				  : ig_string(g, "/usr/lib/libdemo.so");
		m->base = ig_next(g) & 0x7fffffffffffull;
	}
	for (uint32_t i = 0; i < nbt; i++) {
		struct image_backtrace *bt = image_add_backtrace(img);

		if (!bt)
			abort();
		bt->nframes = ig_below(g, 6);
		bt->frames = calloc(bt->nframes + 1, sizeof(*bt->frames));
		if (!bt->frames)
			abort();
		for (uint32_t f = 0; f < bt->nframes; f++) {
			struct image_frame *fr = &bt->frames[f];

			fr->module = nmod && ig_chance(g, 80)
					     ? 1 + ig_below(g, nmod)
					     : IMAGE_NONE;
			fr->offset = ig_next(g) & 0xffffff;
			fr->symbol = ig_chance(g, 70)
					     ? ig_string(g, ig_chance(g, 50)
								    ? "_ZN4demo6Server4pollEv"
								    : "handle_event")
					     : NULL;
			fr->symbol_offset = ig_below(g, 4096);
		}
	}
	for (uint32_t i = 0, n = ig_below(g, 4); i < n; i++) {
		char *path = ig_chance(g, 50) ? ig_string(g, "socket:[1]")
					      : NULL;
		char *msg = ig_string(g, "tfd holds another file");

		if (image_add_diag(img, ig_below(g, 3), ig_below(g, 8),
				   (int)ig_below(g, 100) - 1,
				   (int)ig_below(g, 100) - 1, path,
				   nbt && ig_chance(g, 50)
					   ? 1 + ig_below(g, nbt)
					   : IMAGE_NONE,
				   "%s", msg) < 0)
			abort();
		free(path);
		free(msg);
	}
}

/* A random event mask a watch of a live set may hold. */
IG_UNUSED static uint32_t ig_events(struct imggen *g, bool *disarmed)
{
	static const uint32_t poll_bits[] = { EPOLLIN, EPOLLOUT, EPOLLPRI,
					      EPOLLRDHUP, EPOLLRDNORM,
					      EPOLLWRNORM };
	uint32_t ev = EPOLLERR | EPOLLHUP;

	*disarmed = false;
	for (int i = 0, n = (int)ig_below(g, 4); i < n; i++)
		ev |= poll_bits[ig_below(g, 6)];
	if (ig_chance(g, 20))
		ev |= EPOLLET;
	if (ig_chance(g, 25)) {
		ev |= EPOLLONESHOT;
		if (ig_chance(g, 50)) { /* fired: private bits only */
			*disarmed = true;
			return ev & (EPOLLONESHOT | EPOLLET);
		}
	}
	if (ig_chance(g, 5))
		ev |= EPOLLWAKEUP;
	return ev;
}

/*
 * The whole image: targets (sets first, so that set i watches only sets
 * after it: no cycle), fds, then watches grouped by set.
 */
IG_UNUSED static void ig_image(struct imggen *g, struct image *img,
			       const char *const *module_paths,
			       size_t nmodule_paths)
{
	uint32_t nsets = 1 + ig_below(g, 4), nother = ig_below(g, 9);
	uint8_t used[IG_FD_SPAN] = { 0 };
	int32_t first_fd[IG_MAX_TARGETS + 2];
	static const uint32_t kinds[] = {
		IMAGE_KIND_EVENTFD, IMAGE_KIND_TIMERFD, IMAGE_KIND_SIGNALFD,
		IMAGE_KIND_SOCKET,  IMAGE_KIND_PIPE,	IMAGE_KIND_OTHER,
	};

	image_init(img);
	img->flags = IMAGE_F_COMPLETE | IMAGE_F_KERNEL_VIEW |
		     (ig_chance(g, 50) ? IMAGE_F_SHADOW_VIEW : 0);
	img->proc.pid = 1 + (int32_t)ig_below(g, 4000000);
	img->proc.uid = ig_chance(g, 30) ? 0 : 1000 + ig_below(g, 10);
	img->proc.time_sec = 1700000000 + ig_below(g, 100000000);
	img->proc.time_nsec = ig_below(g, 1000000000);
	img->proc.nofile_limit = 1024;
	img->proc.exe = ig_string(g, "/usr/bin/demo");
	img->proc.comm = ig_string(g, "demo");
	img->proc.version = ig_string(g, "0.1.0");
	ig_extras(g, img, module_paths, nmodule_paths);
	for (uint32_t i = 0; i < nsets; i++)
		ig_target(g, img, IMAGE_KIND_EPOLL);
	while (img->ntargets < nsets + nother &&
	       img->ntargets + 2 <= IG_MAX_TARGETS) {
		if (ig_chance(g, 25))
			ig_pair(g, img);
		else
			ig_target(g, img, kinds[ig_below(g, 6)]);
	}
	/* fds: 0..2 per target, numbers unique in the span */
	for (uint32_t id = 1; id <= img->ntargets; id++) {
		uint32_t n = ig_chance(g, 10) ? 0 : 1 + ig_below(g, 2);

		first_fd[id] = -1;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t slot = ig_below(g, IG_FD_SPAN);
			struct image_fd *f;

			if (used[slot])
				continue;
			used[slot] = 1;
			f = image_add_fd(img);
			if (!f)
				abort();
			f->fd = g->fd_base + (int32_t)slot;
			f->target = id;
			f->fd_flags = ig_chance(g, 50) ? FD_CLOEXEC : 0;
			if (first_fd[id] < 0)
				first_fd[id] = f->fd;
		}
	}
	/* watches: set s watches later sets and other targets */
	for (uint32_t s = 1; s <= nsets; s++) {
		uint32_t nw = ig_below(g, 6), count = 0;
		uint32_t seen[IG_MAX_TARGETS + 2] = { 0 };

		for (uint32_t k = 0; k < nw; k++) {
			uint32_t target =
				s + 1 + ig_below(g, img->ntargets - s);
			struct image_watch *w;
			bool disarmed, stale;
			int32_t tfd;

			if (target > img->ntargets || seen[target])
				continue;
			stale = first_fd[target] < 0 || ig_chance(g, 10);
			if (stale) {
				uint32_t slot = ig_below(g, IG_FD_SPAN);

				if (used[slot])
					continue;
				tfd = g->fd_base + (int32_t)slot;
			} else {
				tfd = first_fd[target];
			}
			seen[target] = 1;
			w = image_add_watch(img);
			if (!w)
				abort();
			w->set = s;
			w->tfd = tfd;
			w->events = ig_events(g, &disarmed);
			w->data = ig_chance(g, 50) ? ig_next(g)
						   : (uint64_t)(uint32_t)tfd;
			w->target = target;
			w->open_fd = stale ? first_fd[target] : tfd;
			w->flags = IMAGE_W_KERNEL |
				   (ig_chance(g, 70) ? IMAGE_W_SHADOW : 0) |
				   (disarmed ? IMAGE_W_DISARMED : 0) |
				   (stale ? IMAGE_W_STALE : 0);
			w->bt_add = img->nbacktraces && ig_chance(g, 50)
					    ? 1 + ig_below(g, img->nbacktraces)
					    : IMAGE_NONE;
			w->bt_mod = IMAGE_NONE;
			count++;
		}
		img->targets[s - 1].u.ep.nwatches = count;
	}
}

/*
 * The worst cases for memory (test_memcap): about nbytes of image made of
 * the records that cost the fewest bytes on disk for the most in memory.
 * With sockets: one set, then minimal socket targets (no path, an unnamed
 * AF_UNIX address and peer), each watched by the set; the first nfds have
 * an fd (the reader wants fds below its RLIMIT_NOFILE), the others only
 * the set knows, watched through a tfd that now holds another file.
 * Without: bare targets of kind "other" (5 bytes each on disk), the first
 * nfds with an fd.
 */
IG_UNUSED static void ig_worst_image(struct image *img, uint64_t nbytes,
				     uint32_t nfds, bool sockets)
{
	/* bytes on disk per socket and watch (fd aside), per bare target */
	uint32_t n = (uint32_t)(nbytes / (sockets ? 26 : 5));

	image_init(img);
	img->flags = IMAGE_F_COMPLETE | IMAGE_F_KERNEL_VIEW;
	img->proc.pid = 4242;
	img->proc.uid = 1000;
	img->proc.time_sec = 1700000000;
	img->proc.nofile_limit = nfds + 16;
	img->proc.exe = ig_strdup("/usr/bin/worst");
	img->proc.comm = ig_strdup("worst");
	img->proc.version = ig_strdup("0.1.0");
	if (sockets) {
		if (!image_add_target(img, IMAGE_KIND_EPOLL))
			abort();
		img->targets[0].u.ep.nwatches = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct image_target *t = image_add_target(
			img, sockets ? IMAGE_KIND_SOCKET : IMAGE_KIND_OTHER);
		sa_family_t family = AF_UNIX;
		struct image_socket *s;
		struct image_fd *f;
		struct image_watch *w;

		if (!t)
			abort();
		t->origin = IMAGE_ORIGIN_KERNEL;
		t->file_flags = O_RDWR;
		if (i < nfds) {
			f = image_add_fd(img);
			if (!f)
				abort();
			f->fd = 10 + (int32_t)i;
			f->target = t->id;
		}
		if (!sockets)
			continue;
		s = &t->u.sock;
		s->domain = AF_UNIX;
		s->type = SOCK_STREAM;
		s->flags = IMAGE_SOCK_CONNECTED;
		s->backlog = -1;
		ig_set_addr(s, false, &family, sizeof(family));
		ig_set_addr(s, true, &family, sizeof(family));
		w = image_add_watch(img);
		if (!w)
			abort();
		w->set = 1;
		w->tfd = 10 + (int32_t)(i % nfds);
		w->events = EPOLLIN;
		w->data = (uint64_t)w->tfd;
		w->target = t->id;
		w->open_fd = i < nfds ? w->tfd : -1;
		w->flags = IMAGE_W_KERNEL | (i < nfds ? 0 : IMAGE_W_STALE);
	}
}

#endif
