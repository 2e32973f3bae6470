// SPDX-License-Identifier: MIT
/*
 * `epollcr show`: an image as text for people or as JSON for programs
 * (contract in docs/image-format.md).  Works on any model whose arrays
 * match their counts: ids that name nothing print as such, the nesting tree
 * prints every set once, so no image makes it loop or blow up.
 *
 * The rooms (contracts in show_internal.h): show_text.c prints the text
 * (show_image_text), show_json.c the JSON (show_image_json), symbolize.c
 * turns backtraces into file:line and plain C++ names with addr2line and
 * c++filt; this file holds what both formats use: the buffered output,
 * the names of constants and the image's index.
 */
#include "show_internal.h"

/* ---- output ------------------------------------------------------------- */

void out_flush(struct out *o)
{
	size_t done = 0;

	while (done < o->len && !o->err) {
		ssize_t n = write(o->fd, o->buf + done, o->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			o->err = -errno;
		else if (n == 0)
			o->err = -EIO;
		else
			done += (size_t)n;
	}
	o->len = 0;
}

static void out_write(struct out *o, const void *p, size_t n)
{
	const char *s = p;

	while (n && !o->err) {
		if (o->len == OUT_BUF_LEN)
			out_flush(o);
		size_t k = OUT_BUF_LEN - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

void out_puts(struct out *o, const char *s)
{
	out_write(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) void
out_printf(struct out *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		out_write(o, line, (size_t)n);
		return;
	}
	char *big = NULL;
	va_start(ap, fmt);
	n = vasprintf(&big, fmt, ap);
	va_end(ap);
	if (n >= 0)
		out_write(o, big, (size_t)n);
	free(big);
}

static void out_emit(void *ctx, const char *piece, size_t piece_len)
{
	out_write(ctx, piece, piece_len);
}

/* n bytes for a terminal, by the one rule of escape.h. */
void out_text_bytes(struct out *o, const char *s, size_t n)
{
	escape_emit(s, n, 0, out_emit, o);
}

void out_text(struct out *o, const char *s)
{
	if (s)
		out_text_bytes(o, s, strlen(s));
	else
		out_puts(o, "(none)");
}

/*
 * A JSON string of n bytes, by the one rule of escape.h: C1 and bidi
 * controls as \uXXXX, bytes that are not UTF-8 as \u00XX.
 */
void out_json_bytes(struct out *o, const char *s, size_t n)
{
	out_puts(o, "\"");
	escape_emit(s, n, ESCAPE_JSON, out_emit, o);
	out_puts(o, "\"");
}

/* A JSON string, or null for NULL. */
void out_json_str(struct out *o, const char *s)
{
	if (s)
		out_json_bytes(o, s, strlen(s));
	else
		out_puts(o, "null");
}

/* An fd number, or null for -1 (any negative value). */
void out_json_fd(struct out *o, int64_t fd)
{
	if (fd < 0)
		out_puts(o, "null");
	else
		out_printf(o, "%" PRId64, fd);
}

const char *json_bool(bool b)
{
	return b ? "true" : "false";
}

/* ---- names -------------------------------------------------------------- */

static const struct {
	uint32_t bit;
	const char *name;
} event_names[] = {
	{ EPOLLIN, "EPOLLIN" },		{ EPOLLPRI, "EPOLLPRI" },
	{ EPOLLOUT, "EPOLLOUT" },	{ EPOLLERR, "EPOLLERR" },
	{ EPOLLHUP, "EPOLLHUP" },	{ EPOLLRDNORM, "EPOLLRDNORM" },
	{ EPOLLRDBAND, "EPOLLRDBAND" }, { EPOLLWRNORM, "EPOLLWRNORM" },
	{ EPOLLWRBAND, "EPOLLWRBAND" }, { EPOLLMSG, "EPOLLMSG" },
	{ EPOLLRDHUP, "EPOLLRDHUP" },	{ EPOLLEXCLUSIVE, "EPOLLEXCLUSIVE" },
	{ EPOLLWAKEUP, "EPOLLWAKEUP" }, { EPOLLONESHOT, "EPOLLONESHOT" },
	{ EPOLLET, "EPOLLET" },
};

/* "EPOLLIN|EPOLLET", undefined bits as a trailing hex number, "0" for 0. */
void format_events(uint32_t events, char *out, size_t len)
{
	size_t used = 0;
	uint32_t rest = events;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(event_names) / sizeof(event_names[0]);
	     i++) {
		if (!(events & event_names[i].bit))
			continue;
		rest &= ~event_names[i].bit;
		used += (size_t)snprintf(out + used, len - used, "%s%s",
					 used ? "|" : "", event_names[i].name);
	}
	if (rest || !events)
		snprintf(out + used, len - used, "%s0x%x", used ? "|" : "",
			 rest);
}

/* A constant and its name, for the tables below. */
struct const_name {
	uint32_t value;
	const char *name;
};

#define CONST_NAME(c) { (uint32_t)(c), #c }

static const struct const_name domain_names[] = {
	CONST_NAME(AF_UNIX),	CONST_NAME(AF_INET),   CONST_NAME(AF_INET6),
	CONST_NAME(AF_NETLINK), CONST_NAME(AF_PACKET),
};

static const struct const_name socktype_names[] = {
	CONST_NAME(SOCK_STREAM),    CONST_NAME(SOCK_DGRAM),
	CONST_NAME(SOCK_RAW),	    CONST_NAME(SOCK_RDM),
	CONST_NAME(SOCK_SEQPACKET), CONST_NAME(SOCK_DCCP),
	CONST_NAME(SOCK_PACKET),
};

static const struct const_name clock_names[] = {
	CONST_NAME(CLOCK_REALTIME),	  CONST_NAME(CLOCK_MONOTONIC),
	CONST_NAME(CLOCK_BOOTTIME),	  CONST_NAME(CLOCK_REALTIME_ALARM),
	CONST_NAME(CLOCK_BOOTTIME_ALARM),
};

/*
 * The name of value in the table of n entries, or "PREFIX<value>" written
 * into buf (len bytes) when the table has none.
 */
static const char *const_name(const struct const_name *table, size_t n,
			      uint32_t value, const char *prefix, char *buf,
			      size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].value == value)
			return table[i].name;
	snprintf(buf, len, "%s%u", prefix, value);
	return buf;
}

/* const_name() of a table given by name. */
#define CONST_NAME_OF(table, value, prefix, buf, len)                         \
	const_name(table, sizeof(table) / sizeof((table)[0]), value, prefix,  \
		   buf, len)

const char *domain_name(uint32_t domain, char *buf, size_t len)
{
	return CONST_NAME_OF(domain_names, domain, "AF_", buf, len);
}

const char *socktype_name(uint32_t type, char *buf, size_t len)
{
	return CONST_NAME_OF(socktype_names, type, "SOCK_", buf, len);
}

const char *clock_name(uint32_t clockid, char *buf, size_t len)
{
	return CONST_NAME_OF(clock_names, clockid, "clock ", buf, len);
}

/* "SIGINT" for 1..31 where the C library knows it, else "SIG34". */
const char *signal_name(int signo, char *buf, size_t len)
{
	const char *abbrev = signo < 32 ? sigabbrev_np(signo) : NULL;

	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "SIG%d", signo);
	return buf;
}

const char *severity_name(uint32_t severity)
{
	static const char *const names[] = { "info", "warning", "error" };

	return severity <= IMAGE_SEV_ERROR ? names[severity] : "unknown";
}

const char *diag_code_name(uint32_t code)
{
	static const char *const names[] = {
		[IMAGE_DIAG_GENERIC] = "generic",
		[IMAGE_DIAG_UNSEEN_WATCH] = "unseen-watch",
		[IMAGE_DIAG_PHANTOM_WATCH] = "phantom-watch",
		[IMAGE_DIAG_STALE_TFD] = "stale-tfd",
		[IMAGE_DIAG_MISMATCH] = "mismatch",
		[IMAGE_DIAG_NO_PROC] = "no-proc",
		[IMAGE_DIAG_INCOMPLETE] = "incomplete",
		[IMAGE_DIAG_UNRESTORABLE] = "unrestorable",
	};

	return code <= IMAGE_DIAG_CODE_MAX ? names[code] : "unknown";
}

const struct watch_flag_name watch_flag_names[WATCH_FLAG_NAMES] = {
	{ IMAGE_W_KERNEL, "kernel" },
	{ IMAGE_W_SHADOW, "shadow" },
	{ IMAGE_W_DISARMED, "disarmed" },
	{ IMAGE_W_STALE, "stale" },
};

/*
 * A socket address for people: "127.0.0.1:80", "[::1]:80", a unix path,
 * "@name" for an abstract one, "(unnamed)"; raw bytes in hex otherwise.
 * Writes into out (at least INET6_ADDRSTRLEN + 16 bytes); returns the
 * number of bytes, which may include any byte of a unix path.
 */
size_t format_sockaddr(const struct sockaddr_storage *ss,
		       uint32_t addr_len, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	int n = 0;

	if (addr_len >= sizeof(sa_family_t) && ss->ss_family == AF_INET &&
	    addr_len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		n = snprintf(out, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (addr_len >= sizeof(struct sockaddr_in6) &&
		   ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		n = snprintf(out, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else if (addr_len >= sizeof(sa_family_t) &&
		   ss->ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)ss;
		size_t plen = addr_len - offsetof(struct sockaddr_un, sun_path);

		if (plen > sizeof(un->sun_path))
			plen = sizeof(un->sun_path);
		if (!plen)
			return (size_t)snprintf(out, len, "(unnamed)");
		if (un->sun_path[0] == '\0') {
			out[0] = '@';
			memcpy(out + 1, un->sun_path + 1, plen - 1);
			return plen;
		}
		plen = strnlen(un->sun_path, plen);
		memcpy(out, un->sun_path, plen);
		return plen;
	} else {
		const uint8_t *b = (const uint8_t *)ss;

		n = snprintf(out, len, "%u bytes:", addr_len);
		for (uint32_t i = 0; i < addr_len && (size_t)n + 3 < len; i++)
			n += snprintf(out + n, len - (size_t)n, "%02x", b[i]);
	}
	return n > 0 ? (size_t)n : 0;
}

/* ---- indexes ------------------------------------------------------------ */

const struct image_target *target_of(const struct image *img,
				     uint32_t id)
{
	return image_target_by_id(img, id);
}

/* By target (ids that name nothing first, as slot 0), then fd number. */
static int cmp_fd_index(const void *a, const void *b, void *ctx)
{
	const struct image *img = ctx;
	const struct image_fd *x = &img->fds[*(const uint32_t *)a];
	const struct image_fd *y = &img->fds[*(const uint32_t *)b];
	uint32_t tx = x->target <= img->ntargets ? x->target : 0;
	uint32_t ty = y->target <= img->ntargets ? y->target : 0;

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

int show_ctx_open(struct text_ctx *c, const struct image *img, int out_fd)
{
	memset(c, 0, sizeof(*c));
	c->img = img;
	c->o = malloc(sizeof(*c->o));
	c->frame = malloc(FRAME_TEXT_LEN);
	if (!c->o || !c->frame || index_build(img, &c->ix) < 0) {
		free(c->o);
		free(c->frame);
		return -ENOMEM;
	}
	c->o->fd = out_fd;
	c->o->err = 0;
	c->o->len = 0;
	return 0;
}

int show_ctx_close(struct text_ctx *c)
{
	int ret;

	out_flush(c->o);
	ret = c->o->err;
	a2l_free(&c->a2l);
	dm_free(&c->dm);
	index_free(&c->ix);
	free(c->frame);
	free(c->o);
	return ret;
}

void index_free(struct show_index *ix)
{
	free(ix->fd_start);
	free(ix->fd_list);
	free(ix->w_start);
	free(ix->w_list);
	free(ix->nparents);
}

/*
 * Group fds by target and watches by set (ids that name nothing go in slot
 * 0, which nothing prints).  Returns 0 or -ENOMEM.
 */
int index_build(const struct image *img, struct show_index *ix)
{
	uint32_t nt = img->ntargets;

	memset(ix, 0, sizeof(*ix));
	ix->fd_start = calloc((size_t)nt + 2, sizeof(uint32_t));
	ix->w_start = calloc((size_t)nt + 2, sizeof(uint32_t));
	ix->nparents = calloc((size_t)nt + 1, sizeof(uint32_t));
	ix->fd_list = calloc(img->nfds + 1, sizeof(uint32_t));
	ix->w_list = calloc(img->nwatches + 1, sizeof(uint32_t));
	if (!ix->fd_start || !ix->w_start || !ix->nparents || !ix->fd_list ||
	    !ix->w_list) {
		index_free(ix);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < img->nfds; i++)
		ix->fd_list[i] = i;
	qsort_r(ix->fd_list, img->nfds, sizeof(uint32_t), cmp_fd_index,
		(void *)img);
	for (uint32_t i = 0; i < img->nfds; i++) {
		uint32_t t = img->fds[i].target;
		ix->fd_start[(t <= nt ? t : 0) + 1]++;
	}
	for (uint32_t i = 0; i < img->nwatches; i++) {
		const struct image_watch *w = &img->watches[i];
		const struct image_target *t = target_of(img, w->target);

		ix->w_start[(w->set <= nt ? w->set : 0) + 1]++;
		if (t && t->kind == IMAGE_KIND_EPOLL)
			ix->nparents[w->target]++;
	}
	for (uint32_t t = 0; t <= nt; t++) {
		ix->fd_start[t + 1] += ix->fd_start[t];
		ix->w_start[t + 1] += ix->w_start[t];
	}
	uint32_t *fill = calloc((size_t)nt + 1, sizeof(uint32_t));
	if (!fill) {
		index_free(ix);
		return -ENOMEM;
	}
	memcpy(fill, ix->w_start, ((size_t)nt + 1) * sizeof(uint32_t));
	for (uint32_t i = 0; i < img->nwatches; i++) {
		uint32_t s = img->watches[i].set;
		ix->w_list[fill[s <= nt ? s : 0]++] = i;
	}
	free(fill);
	return 0;
}

/* Lowest fd number of target id, or -1. */
int64_t lowest_fd(const struct image *img, const struct show_index *ix,
		  uint32_t id)
{
	if (id == IMAGE_NONE || id > img->ntargets ||
	    ix->fd_start[id] == ix->fd_start[id + 1])
		return -1;
	return img->fds[ix->fd_list[ix->fd_start[id]]].fd;
}
