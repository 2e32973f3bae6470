// SPDX-License-Identifier: MIT
/* The in-memory image model: growth helpers shared by recorder and replayer. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "epollcr_image.h"
#include "image_io.h"

void image_init(struct image *img)
{
	memset(img, 0, sizeof(*img));
	img->file_uid = -1;
}

static void backtrace_free(struct image_backtrace *bt)
{
	for (uint32_t i = 0; i < bt->nframes; i++)
		free(bt->frames[i].symbol);
	free(bt->frames);
}

void image_free(struct image *img)
{
	free(img->proc.exe);
	free(img->proc.comm);
	free(img->proc.version);
	for (uint32_t i = 0; i < img->nmodules; i++)
		free(img->modules[i].path);
	free(img->modules);
	for (uint32_t i = 0; i < img->nbacktraces; i++)
		backtrace_free(&img->backtraces[i]);
	free(img->backtraces);
	for (uint32_t i = 0; i < img->ntargets; i++)
		image_target_release(&img->targets[i]);
	free(img->targets);
	free(img->fds);
	free(img->watches);
	for (uint32_t i = 0; i < img->ndiags; i++) {
		free(img->diags[i].path);
		free(img->diags[i].message);
	}
	free(img->diags);
	image_init(img);
}

/* The link text of every target of these kinds: one copy, never freed. */
static const char *const standard_paths[IMAGE_KIND_COUNT] = {
	[IMAGE_KIND_EVENTFD] = "anon_inode:[eventfd]",
	[IMAGE_KIND_TIMERFD] = "anon_inode:[timerfd]",
	[IMAGE_KIND_SIGNALFD] = "anon_inode:[signalfd]",
	[IMAGE_KIND_EPOLL] = "anon_inode:[eventpoll]",
};

const char *image_standard_path(uint32_t kind)
{
	return kind < IMAGE_KIND_COUNT ? standard_paths[kind] : NULL;
}

int32_t image_max_fd(const struct image *img)
{
	int32_t max_fd = -1;

	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd > max_fd)
			max_fd = img->fds[i].fd;
	for (uint32_t i = 0; i < img->nwatches; i++)
		if (img->watches[i].tfd > max_fd)
			max_fd = img->watches[i].tfd;
	return max_fd;
}

static bool is_standard_path(const char *path)
{
	for (uint32_t k = 0; k < IMAGE_KIND_COUNT; k++)
		if (path && path == standard_paths[k])
			return true;
	return false;
}

void image_target_release(struct image_target *t)
{
	if (!is_standard_path(t->path))
		free(t->path);
	t->path = NULL;
	if (t->kind == IMAGE_KIND_SOCKET) {
		image_socket_set_addr(&t->u.sock, NULL, 0);
		image_socket_set_peer(&t->u.sock, NULL, 0);
	}
}

/* Replace *dst (*dst_len bytes) with a copy of len bytes of src. */
static int set_bytes(struct sockaddr_storage **dst, uint32_t *dst_len,
		     const void *src, uint32_t len)
{
	struct sockaddr_storage *copy = NULL;

	if (len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	if (len) {
		/* never less than a family, zeroed beyond len */
		copy = calloc(1, len < sizeof(sa_family_t) ? sizeof(sa_family_t)
							   : len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, src, len);
	}
	free(*dst);
	*dst = copy;
	*dst_len = len;
	return 0;
}

int image_socket_set_addr(struct image_socket *s, const void *addr,
			  uint32_t len)
{
	return set_bytes(&s->addrp, &s->addr_len, addr, len);
}

int image_socket_set_peer(struct image_socket *s, const void *addr,
			  uint32_t len)
{
	return set_bytes(&s->peerp, &s->peer_len, addr, len);
}

void *image_array_grow(void **array, uint32_t *count, uint32_t *cap,
		       size_t elem_size, uint32_t max_count)
{
	if (*count >= max_count)
		return NULL;
	if (*count == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 16;
		if (ncap > max_count)
			ncap = max_count;
		void *n = realloc(*array, (size_t)ncap * elem_size);
		if (!n)
			return NULL;
		*array = n;
		*cap = ncap;
	}
	char *elem = (char *)*array + (size_t)*count * elem_size;
	memset(elem, 0, elem_size);
	(*count)++;
	return elem;
}

#define GROW(img, name, max)                                                  \
	image_array_grow((void **)&(img)->name, &(img)->n##name,             \
			 &(img)->cap_##name, sizeof(*(img)->name), (max))

struct image_target *image_add_target(struct image *img, uint32_t kind)
{
	struct image_target *t = GROW(img, targets, IMAGE_MAX_TARGETS);
	if (t) {
		t->id = img->ntargets;
		t->kind = kind;
	}
	return t;
}

struct image_fd *image_add_fd(struct image *img)
{
	return GROW(img, fds, IMAGE_MAX_FDS);
}

struct image_watch *image_add_watch(struct image *img)
{
	struct image_watch *w = GROW(img, watches, IMAGE_MAX_WATCHES);
	if (w)
		w->open_fd = -1;
	return w;
}

struct image_module *image_add_module(struct image *img)
{
	struct image_module *m = GROW(img, modules, IMAGE_MAX_MODULES);
	if (m)
		m->id = img->nmodules;
	return m;
}

struct image_backtrace *image_add_backtrace(struct image *img)
{
	struct image_backtrace *b =
		GROW(img, backtraces, IMAGE_MAX_BACKTRACES);
	if (b)
		b->id = img->nbacktraces;
	return b;
}

int image_add_diag(struct image *img, uint32_t severity, uint32_t code,
		   int epfd, int tfd, const char *path, uint32_t bt,
		   const char *fmt, ...)
{
	char *msg = NULL, *path_copy = NULL;
	va_list ap;

	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	if (path && !(path_copy = strdup(path)))
		goto err_free_msg;
	struct image_diag *d = GROW(img, diags, IMAGE_MAX_DIAGS);
	if (!d)
		goto err_free_path;
	d->severity = severity;
	d->code = code;
	d->epfd = epfd;
	d->tfd = tfd;
	d->path = path_copy;
	d->message = msg;
	d->bt = bt;
	return 0;

err_free_path:
	free(path_copy);
err_free_msg:
	free(msg);
	return -ENOMEM;
}

struct image_target *image_target_by_id(const struct image *img, uint32_t id)
{
	if (id == IMAGE_NONE || id > img->ntargets)
		return NULL;
	return &img->targets[id - 1];
}

static uint32_t renumbered(const uint32_t *map, uint32_t n, uint32_t id)
{
	return id != IMAGE_NONE && id <= n ? map[id] : id;
}

int image_drop_targets(struct image *img, const uint8_t *drop)
{
	uint32_t n = img->ntargets, kept = 0;
	uint32_t *map = calloc((size_t)n + 1, sizeof(*map));

	if (!map)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct image_target *t = &img->targets[i];

		if (drop[t->id]) {
			image_target_release(t);
			continue;
		}
		map[t->id] = ++kept;
		if (kept - 1 != i)
			img->targets[kept - 1] = *t;
		img->targets[kept - 1].id = kept;
	}
	img->ntargets = kept;
	for (uint32_t i = 0; i < img->nfds; i++)
		img->fds[i].target = renumbered(map, n, img->fds[i].target);
	for (uint32_t i = 0; i < img->nwatches; i++) {
		struct image_watch *w = &img->watches[i];

		w->set = renumbered(map, n, w->set);
		w->target = renumbered(map, n, w->target);
	}
	for (uint32_t i = 0; i < kept; i++) {
		struct image_target *t = &img->targets[i];

		if (t->kind == IMAGE_KIND_PIPE)
			t->u.pipe.peer = renumbered(map, n, t->u.pipe.peer);
		else if (t->kind == IMAGE_KIND_SOCKET &&
			 (t->u.sock.flags & IMAGE_SOCK_PAIR))
			t->u.sock.pair = renumbered(map, n, t->u.sock.pair);
	}
	free(map);
	return 0;
}

const char *image_kind_name(uint32_t kind)
{
	static const char *const names[IMAGE_KIND_COUNT] = {
		[IMAGE_KIND_OTHER] = "other",	  [IMAGE_KIND_SOCKET] = "socket",
		[IMAGE_KIND_PIPE] = "pipe",	  [IMAGE_KIND_EVENTFD] = "eventfd",
		[IMAGE_KIND_TIMERFD] = "timerfd", [IMAGE_KIND_SIGNALFD] = "signalfd",
		[IMAGE_KIND_EPOLL] = "epoll",
	};
	return kind < IMAGE_KIND_COUNT ? names[kind] : "other";
}

bool image_sockaddr_ok(uint32_t domain, const struct sockaddr_storage *addr,
		       uint32_t len, char *why, size_t why_len)
{
	const size_t path_off = offsetof(struct sockaddr_un, sun_path);
	const struct sockaddr_un *un = (const void *)addr;
	size_t want = 0, max = sizeof(*addr);

	if (len == 0)
		return true;
	if (len < sizeof(sa_family_t) || len > sizeof(*addr) ||
	    addr->ss_family != domain) {
		snprintf(why, why_len,
			 "address of %u bytes, family %u, for a socket of family %u",
			 len, len >= sizeof(sa_family_t) ? addr->ss_family : 0,
			 domain);
		return false;
	}
	switch (domain) {
	case AF_INET:
		want = sizeof(struct sockaddr_in);
		break;
	case AF_INET6:
		want = sizeof(struct sockaddr_in6);
		break;
	case AF_UNIX:
		max = sizeof(struct sockaddr_un);
		/* A path of all 108 bytes, reported with its NUL. */
		if (len == max + 1 && un->sun_path[0] != '\0' &&
		    ((const char *)addr)[max] == '\0')
			return true;
		break;
	}
	if (want && len != want) {
		snprintf(why, why_len,
			 "address of family %u is %u bytes, not %zu", domain,
			 len, want);
		return false;
	}
	if (len > max) {
		snprintf(why, why_len,
			 "unix address of %u bytes, more than the %zu the kernel accepts (a path of at most %zu bytes)",
			 len, max, max - path_off);
		return false;
	}
	return true;
}

size_t image_sun_path_len(const struct sockaddr_storage *addr, uint32_t len)
{
	const size_t path_off = offsetof(struct sockaddr_un, sun_path);
	const struct sockaddr_un *un = (const void *)addr;
	size_t n;

	if (len <= path_off)
		return 0;
	n = len - path_off;
	if (n > sizeof(un->sun_path))
		n = sizeof(un->sun_path);
	if (un->sun_path[0] != '\0')
		n = strnlen(un->sun_path, n);
	return n;
}
