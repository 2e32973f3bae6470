// SPDX-License-Identifier: MIT
/*
 * The image reader: streams an image (docs/image-format.md) through a
 * bounded buffer, checks every field, reference, count and the checksum,
 * and builds the model as it goes.  Memory grows with the records present,
 * never with what a count claims.  The first problem ends the read with one
 * line "offset N: what is wrong", N being the file offset of the field or
 * record header at fault.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image_io.h"
#include "leb128.h"

#define READ_BUF_LEN (64 * 1024) /* bytes read from the fd at a time */
#define PAYLOAD_BUF_LEN 4096	 /* first size of the payload buffer */
#define REC_HEADER_LEN 8	 /* u32 type, u32 payload_len */

/* What the reader knows of one epoll set while reading. */
struct set_state {
	uint32_t id;		/* target id */
	uint32_t declared;	/* its nwatches field */
	uint32_t seen;		/* watches read for it so far */
	uint64_t declared_off;	/* file offset of the nwatches field */
	uint64_t last_key;	/* (tfd, target) of its last watch + 1, 0 */
};

/* A watch of one set whose target is another set: a nesting edge. */
struct nest_edge {
	uint32_t from, to;	/* indexes in reader.sets */
	uint64_t off;		/* file offset of the watch's entry */
};

/*
 * Open addressing set of uint32_t values (0 marks a free slot).  Each slot
 * keeps the value's hash beside it (high 32 bits): its place comes from
 * the hash, a probe compares hashes before values, and growing moves
 * slots without hashing again (for watches, without reading them).
 */
struct u32_table {
	uint64_t *slots;
	uint32_t size;		/* 0 or a power of two */
	uint32_t used;
};

struct reader {
	/* input: an fd through inbuf, or memory */
	int fd;
	const uint8_t *mem;
	size_t mem_len;
	uint8_t *inbuf;
	size_t in_len, in_pos;	/* in_pos also indexes mem */
	uint64_t off;		/* file offset of the next byte consumed */
	uint64_t read_total;	/* bytes read from fd so far */
	int copy_fd;		/* stream: every byte read is written here */
	double deadline;	/* stream: CLOCK_MONOTONIC seconds, 0: none */
	uint32_t crc;		/* CRC-32C of every byte consumed */
	bool sock_mode;		/* header IMAGE_F_SOCK_MODE: sockets have one
				 * more field */
	/* the record being parsed */
	uint32_t type;
	uint64_t rec_off;	/* file offset of its header */
	uint8_t *payload;
	size_t payload_cap;
	uint32_t plen, pos;
	/* checks */
	struct image *img;
	uint64_t fd_limit;	/* fds must be below it (RLIMIT_NOFILE) */
	unsigned flags;		/* IMAGE_READ_* */
	uint32_t last_type;	/* type of the previous record, 0 at first */
	struct set_state *sets;	/* epoll targets, by increasing id */
	uint32_t nsets, cap_sets;
	struct nest_edge *edges;
	uint32_t nedges, cap_edges;
	/*
	 * Duplicates: while the fds come in increasing order, and each set's
	 * watches in increasing (tfd, target) order (as the writer puts
	 * them), none can repeat and no table is kept; at the first that does
	 * not, the table is filled with what came before.
	 */
	uint32_t fd_next;	     /* least fd + 1 not yet possible, 0 */
	bool fd_table, watch_table;  /* the tables are in use */
	struct u32_table fd_seen;    /* fd + 1 of every FD entry */
	struct u32_table watch_seen; /* index + 1 of every watch */
	bool sets_checked;
	char *err;
	size_t err_len;
};

static const struct {
	const char *name;
	uint32_t max_payload_len;
} rec_types[] = {
	[IMAGE_REC_PROCESS] = { "PROCESS", IMAGE_MAX_PROCESS_PAYLOAD },
	[IMAGE_REC_MODULE] = { "MODULE", IMAGE_MAX_MODULE_PAYLOAD },
	[IMAGE_REC_BACKTRACE] = { "BACKTRACE", IMAGE_MAX_BACKTRACE_PAYLOAD },
	[IMAGE_REC_TARGET] = { "TARGET", IMAGE_MAX_BATCH_PAYLOAD },
	[IMAGE_REC_FD] = { "FD", IMAGE_MAX_BATCH_PAYLOAD },
	[IMAGE_REC_WATCHES] = { "WATCHES", IMAGE_MAX_BATCH_PAYLOAD },
	[IMAGE_REC_DIAG] = { "DIAG", IMAGE_MAX_DIAG_PAYLOAD },
	[IMAGE_REC_END] = { "END", IMAGE_END_PAYLOAD_MAX },
};

__attribute__((format(printf, 3, 4))) static int
fail(struct reader *r, uint64_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!r->err || !r->err_len)
		return -1;
	n = snprintf(r->err, r->err_len, "offset %" PRIu64 ": ", off);
	if (n < 0 || (size_t)n >= r->err_len)
		return -1;
	va_start(ap, fmt);
	vsnprintf(r->err + n, r->err_len - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *rec_name(uint32_t type)
{
	return rec_types[type].name;
}

/* ---- input -------------------------------------------------------------- */

static double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Stream: wait for input until the deadline.  Returns 0 or -1. */
static int wait_input(struct reader *r, size_t got)
{
	for (;;) {
		int left_ms = (int)((r->deadline - monotonic_seconds()) * 1000);
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		int k = left_ms > 0 ? poll(&p, 1, left_ms) : 0;

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return fail(r, r->off + got,
				    "cannot read the image: %s",
				    strerror(errno));
		if (k == 0)
			return fail(r, r->off + got,
				    "timed out: %" PRIu64 " bytes of the image arrived in time",
				    r->read_total);
		return 0;
	}
}

/* Stream: write what was read to the copy.  Returns 0 or -1. */
static int copy_out(struct reader *r, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t w = write(r->copy_fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return fail(r, r->off, "cannot write the image: %s",
				    strerror(errno));
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Consume up to n bytes into dst.  Returns the number of bytes (fewer than n
 * only at the end of the input) or -1 on a read error.
 */
static ssize_t input(struct reader *r, void *dst, size_t n)
{
	uint8_t *out = dst;
	size_t got = 0;

	if (!r->inbuf) {
		size_t avail = r->mem_len - r->in_pos;

		got = n < avail ? n : avail;
		if (got)
			memcpy(out, r->mem + r->in_pos, got);
		r->in_pos += got;
	}
	while (r->inbuf && got < n) {
		if (r->in_pos == r->in_len) {
			if (r->deadline > 0 && wait_input(r, got) < 0)
				return -1;
			ssize_t k = read(r->fd, r->inbuf, READ_BUF_LEN);

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return fail(r, r->off + got,
					    "cannot read the image: %s",
					    strerror(errno));
			if (k == 0)
				break;
			r->read_total += (uint64_t)k;
			if (r->read_total > IMAGE_MAX_BYTES)
				return fail(r, r->off + got,
					    "the image is longer than %u bytes, the limit of this reader",
					    IMAGE_MAX_BYTES);
			if (r->copy_fd >= 0 &&
			    copy_out(r, r->inbuf, (size_t)k) < 0)
				return -1;
			r->in_len = (size_t)k;
			r->in_pos = 0;
		}
		size_t k = r->in_len - r->in_pos;
		if (k > n - got)
			k = n - got;
		memcpy(out + got, r->inbuf + r->in_pos, k);
		r->in_pos += k;
		got += k;
	}
	r->crc = image_crc32c(r->crc, out, got);
	r->off += got;
	return (ssize_t)got;
}

/* ---- fields ------------------------------------------------------------- */

static uint64_t field_off(const struct reader *r)
{
	return r->rec_off + REC_HEADER_LEN + r->pos;
}

static int get_varint(struct reader *r, const char *what, uint64_t *value)
{
	uint64_t off = field_off(r);
	unsigned used = 0;

	*value = 0;
	switch (leb128_get(r->payload + r->pos, r->plen - r->pos, value,
			   &used)) {
	case LEB128_OK:
		r->pos += used;
		return 0;
	case LEB128_TRUNCATED:
		return fail(r, off, "%s: the %s record ends inside this varint",
			    what, rec_name(r->type));
	case LEB128_OVERFLOW:
		return fail(r, off, "%s: varint longer than 64 bits", what);
	default:
		return fail(r, off, "%s: varint not in its shortest form", what);
	}
}

/* A varint that must be at most max. */
static int get_max(struct reader *r, const char *what, uint64_t max,
		   uint64_t *value)
{
	uint64_t off = field_off(r);

	if (get_varint(r, what, value) < 0)
		return -1;
	if (*value > max)
		return fail(r, off, "%s %" PRIu64 " out of range (at most %" PRIu64 ")",
			    what, *value, max);
	return 0;
}

static int get_u32(struct reader *r, const char *what, uint64_t max,
		   uint32_t *out)
{
	uint64_t v;

	if (get_max(r, what, max, &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* A varint whose bits must all be within allowed. */
static int get_bits(struct reader *r, const char *what, uint32_t allowed,
		    uint32_t *out)
{
	uint64_t off = field_off(r), v;

	if (get_varint(r, what, &v) < 0)
		return -1;
	if (v & ~(uint64_t)allowed)
		return fail(r, off, "%s 0x%" PRIx64 " has undefined bits 0x%" PRIx64,
			    what, v, v & ~(uint64_t)allowed);
	*out = (uint32_t)v;
	return 0;
}

/* A field stored as value + 1, -1 meaning none, value in 0..INT32_MAX. */
static int get_fd_or_none(struct reader *r, const char *what, int32_t *out)
{
	uint64_t v;

	if (get_max(r, what, (uint64_t)INT32_MAX + 1, &v) < 0)
		return -1;
	*out = (int32_t)((int64_t)v - 1);
	return 0;
}

/*
 * The n bytes of a string whose length field was at off: copied into a new
 * NUL-terminated string (NULL when n is 0).
 */
static int take_string(struct reader *r, const char *what, uint64_t n,
		       uint64_t off, char **out)
{
	const uint8_t *p = r->payload + r->pos;
	const uint8_t *nul;

	if (n > IMAGE_MAX_STRING)
		return fail(r, off, "%s: string of %" PRIu64 " bytes, longer than %d",
			    what, n, IMAGE_MAX_STRING);
	if (n > r->plen - r->pos)
		return fail(r, off, "%s: string of %" PRIu64 " bytes runs past the end of the %s record",
			    what, n, rec_name(r->type));
	nul = memchr(p, 0, (size_t)n);
	if (nul)
		return fail(r, off, "%s: NUL byte inside the string, at index %zu",
			    what, (size_t)(nul - p));
	*out = NULL;
	if (n) {
		*out = strndup((const char *)p, (size_t)n);
		if (!*out)
			return fail(r, off, "out of memory");
	}
	r->pos += (uint32_t)n;
	return 0;
}

static int get_string(struct reader *r, const char *what, char **out)
{
	uint64_t off = field_off(r), n;

	if (get_varint(r, what, &n) < 0)
		return -1;
	return take_string(r, what, n, off, out);
}

/* A byte field (length, bytes; NUL allowed) of at most max_len bytes. */
static int get_bytes(struct reader *r, const char *what, size_t max_len,
		     void *dst, uint32_t *len)
{
	uint64_t off = field_off(r), n;

	if (get_max(r, what, max_len, &n) < 0)
		return -1;
	if (n > r->plen - r->pos)
		return fail(r, off, "%s: %" PRIu64 " bytes run past the end of the %s record",
			    what, n, rec_name(r->type));
	memcpy(dst, r->payload + r->pos, (size_t)n);
	r->pos += (uint32_t)n;
	*len = (uint32_t)n;
	return 0;
}

/*
 * A number stored as a zigzag delta from *prev, which becomes the result;
 * the result must be at most max.
 */
static int get_delta(struct reader *r, const char *what, uint64_t max,
		     uint64_t *prev)
{
	uint64_t off = field_off(r), v;

	if (get_varint(r, what, &v) < 0)
		return -1;
	v = *prev + zigzag_decode(v);
	if (v > max)
		return fail(r, off, "%s %" PRId64 " out of range (0 to %" PRIu64 ")",
			    what, (int64_t)v, max);
	*prev = v;
	return 0;
}

/*
 * An fd number the restore will use: below the RLIMIT_NOFILE hard limit
 * (the soft limit can be raised up to it; restore_image() checks the soft
 * limit).
 */
static int check_fd_limit(struct reader *r, const char *what, uint64_t off,
			  int32_t fd)
{
	if ((uint64_t)fd < r->fd_limit)
		return 0;
	return fail(r, off, "%s %d is not below this process's RLIMIT_NOFILE hard limit %" PRIu64 ": the image cannot be restored here (it needs a limit of at least %" PRId64 ")",
		    what, fd, r->fd_limit, (int64_t)fd + 1);
}

/* Room for one more element in an array of *cap (doubling, from 16). */
static int grow(struct reader *r, void **array, uint32_t count, uint32_t *cap,
		size_t elem_size)
{
	if (count < *cap)
		return 0;
	uint32_t ncap = *cap ? *cap * 2 : 16;
	void *n = realloc(*array, (size_t)ncap * elem_size);
	if (!n)
		return fail(r, field_off(r), "out of memory");
	*array = n;
	*cap = ncap;
	return 0;
}

/* ---- duplicate detection ------------------------------------------------ */

struct table_ops {
	uint64_t (*hash)(const struct reader *r, uint32_t value);
	bool (*same)(const struct reader *r, uint32_t a, uint32_t b);
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/*
 * Insert value (not 0) unless an equal one is present.  Returns 0 when
 * inserted, 1 when a duplicate was found, -1 when memory ran out.
 */
static int table_insert(const struct reader *r, struct u32_table *t,
			const struct table_ops *ops, uint32_t value)
{
	uint32_t hash = (uint32_t)(ops->hash(r, value) >> 32);

	if ((uint64_t)(t->used + 1) * 2 > t->size) {
		uint32_t nsize = t->size ? t->size * 2 : 64;
		uint64_t *slots = calloc(nsize, sizeof(*slots));

		if (!slots)
			return -1;
		for (uint32_t i = 0; i < t->size; i++) {
			uint64_t v = t->slots[i];
			if (!(uint32_t)v)
				continue;
			uint32_t h = (uint32_t)(v >> 32) & (nsize - 1);
			while (slots[h])
				h = (h + 1) & (nsize - 1);
			slots[h] = v;
		}
		free(t->slots);
		t->slots = slots;
		t->size = nsize;
	}
	uint32_t h = hash & (t->size - 1);
	while (t->slots[h]) {
		uint64_t v = t->slots[h];

		if ((uint32_t)(v >> 32) == hash &&
		    ops->same(r, (uint32_t)v, value))
			return 1;
		h = (h + 1) & (t->size - 1);
	}
	t->slots[h] = (uint64_t)hash << 32 | value;
	t->used++;
	return 0;
}

static uint64_t fd_hash(const struct reader *r, uint32_t fd_plus_1)
{
	(void)r;
	return mix64(fd_plus_1);
}

static bool fd_same(const struct reader *r, uint32_t a, uint32_t b)
{
	(void)r;
	return a == b;
}

static const struct table_ops fd_ops = { fd_hash, fd_same };

static uint64_t watch_hash(const struct reader *r, uint32_t index_plus_1)
{
	const struct image_watch *w = &r->img->watches[index_plus_1 - 1];

	return mix64(((uint64_t)w->set << 32 | (uint32_t)w->tfd) ^
		     mix64(w->target));
}

static bool watch_same(const struct reader *r, uint32_t a, uint32_t b)
{
	const struct image_watch *x = &r->img->watches[a - 1];
	const struct image_watch *y = &r->img->watches[b - 1];

	return x->set == y->set && x->tfd == y->tfd && x->target == y->target;
}

static const struct table_ops watch_ops = { watch_hash, watch_same };

/*
 * fd + 1 of the FD entry just added: 0 when no earlier entry has it, 1
 * when one has, -1 out of memory.  Increasing fds need no table.
 */
static int fd_unseen(struct reader *r, uint32_t fd_plus_1)
{
	if (!r->fd_table && fd_plus_1 > r->fd_next) {
		r->fd_next = fd_plus_1;
		return 0;
	}
	if (!r->fd_table) {
		r->fd_table = true;
		for (uint32_t i = 0; i + 1 < r->img->nfds; i++)
			if (table_insert(r, &r->fd_seen, &fd_ops,
					 (uint32_t)r->img->fds[i].fd + 1) < 0)
				return -1;
	}
	return table_insert(r, &r->fd_seen, &fd_ops, fd_plus_1);
}

/*
 * The watch just added (the last of img->watches) to set: 0 when no
 * earlier watch of the set has its (tfd, target), 1 when one has, -1 out
 * of memory.  Watches in increasing order within each set need no table.
 */
static int watch_unseen(struct reader *r, struct set_state *set)
{
	const struct image_watch *w = &r->img->watches[r->img->nwatches - 1];
	uint64_t key = ((uint64_t)(uint32_t)w->tfd << 32 | w->target) + 1;

	if (!r->watch_table && key > set->last_key) {
		set->last_key = key;
		return 0;
	}
	if (!r->watch_table) {
		r->watch_table = true;
		for (uint32_t i = 1; i < r->img->nwatches; i++)
			if (table_insert(r, &r->watch_seen, &watch_ops, i) < 0)
				return -1;
	}
	return table_insert(r, &r->watch_seen, &watch_ops, r->img->nwatches);
}

/* ---- records ------------------------------------------------------------ */

static int read_process(struct reader *r)
{
	struct image_process *p = &r->img->proc;
	uint64_t v;

	if (get_max(r, "pid", INT32_MAX, &v) < 0)
		return -1;
	p->pid = (int32_t)v;
	if (get_u32(r, "uid", UINT32_MAX, &p->uid) < 0 ||
	    get_varint(r, "time_sec", &p->time_sec) < 0 ||
	    get_u32(r, "time_nsec", 999999999, &p->time_nsec) < 0 ||
	    get_u32(r, "nofile_limit", UINT32_MAX, &p->nofile_limit) < 0 ||
	    get_string(r, "exe", &p->exe) < 0 ||
	    get_string(r, "comm", &p->comm) < 0 ||
	    get_string(r, "version", &p->version) < 0)
		return -1;
	return 0;
}

static int read_module(struct reader *r)
{
	struct image_module *m;

	if (r->img->nmodules >= IMAGE_MAX_MODULES)
		return fail(r, r->rec_off, "more than %d MODULE records",
			    IMAGE_MAX_MODULES);
	m = image_add_module(r->img);
	if (!m)
		return fail(r, r->rec_off, "out of memory");
	if (get_string(r, "module path", &m->path) < 0 ||
	    get_varint(r, "module base", &m->base) < 0)
		return -1;
	return 0;
}

static int read_backtrace(struct reader *r)
{
	struct image_backtrace *b;
	uint32_t nframes;

	if (r->img->nbacktraces >= IMAGE_MAX_BACKTRACES)
		return fail(r, r->rec_off, "more than %u BACKTRACE records",
			    IMAGE_MAX_BACKTRACES);
	if (get_u32(r, "nframes", IMAGE_MAX_FRAMES, &nframes) < 0)
		return -1;
	b = image_add_backtrace(r->img);
	if (!b)
		return fail(r, r->rec_off, "out of memory");
	if (nframes) {
		b->frames = calloc(nframes, sizeof(*b->frames));
		if (!b->frames)
			return fail(r, r->rec_off, "out of memory");
		b->nframes = nframes;
	}
	for (uint32_t i = 0; i < nframes; i++) {
		struct image_frame *f = &b->frames[i];

		if (get_u32(r, "frame module", r->img->nmodules, &f->module) < 0 ||
		    get_varint(r, "frame offset", &f->offset) < 0 ||
		    get_string(r, "frame symbol", &f->symbol) < 0 ||
		    get_varint(r, "frame symbol_offset", &f->symbol_offset) < 0)
			return -1;
	}
	return 0;
}

static int get_path(struct reader *r, struct image_target *t)
{
	uint64_t off = field_off(r), code;

	if (get_varint(r, "path", &code) < 0)
		return -1;
	if (code == 0)
		return 0;
	if (code == 1) {
		const char *std = image_standard_path(t->kind);

		if (!std)
			return fail(r, off, "path: a %s target has no standard path",
				    image_kind_name(t->kind));
		/* shared, not copied: image_target_release() knows it */
		t->path = (char *)std;
		return 0;
	}
	if (code == 2)
		return fail(r, off, "path: empty path not stored as absent (0)");
	return take_string(r, "path", code - 2, off, &t->path);
}

/*
 * The later end of a socketpair names the earlier one, which must be a
 * socket of the same family, type and protocol not paired yet, both ends
 * flagged IMAGE_SOCK_PAIR.  Both ends then name each other in the model.
 */
static int socket_pair(struct reader *r, struct image_target *t,
		       uint32_t pair, uint64_t off)
{
	struct image_target *q = image_target_by_id(r->img, pair);
	const struct image_socket *s = &t->u.sock;

	if (pair >= t->id)
		return fail(r, off, "socket pair: target %u is not an earlier target (this is %u)",
			    pair, t->id);
	if (q->kind != IMAGE_KIND_SOCKET)
		return fail(r, off, "socket pair: target %u is of kind %s, not a socket",
			    pair, image_kind_name(q->kind));
	if (q->u.sock.pair != IMAGE_NONE)
		return fail(r, off, "socket pair: target %u is already paired with target %u",
			    pair, q->u.sock.pair);
	if (!(s->flags & IMAGE_SOCK_PAIR))
		return fail(r, off, "socket pair: target %u names a pair but is not flagged as a socketpair end (0x%x)",
			    t->id, IMAGE_SOCK_PAIR);
	if (!(q->u.sock.flags & IMAGE_SOCK_PAIR))
		return fail(r, off, "socket pair: target %u is not flagged as a socketpair end (0x%x)",
			    pair, IMAGE_SOCK_PAIR);
	if (q->u.sock.domain != s->domain || q->u.sock.type != s->type ||
	    q->u.sock.protocol != s->protocol)
		return fail(r, off, "socket pair: target %u is a socket of family/type/protocol %u/%u/%u, this one %u/%u/%u",
			    pair, q->u.sock.domain, q->u.sock.type,
			    q->u.sock.protocol, s->domain, s->type,
			    s->protocol);
	t->u.sock.pair = pair;
	q->u.sock.pair = t->id;
	return 0;
}

/*
 * A socket address the kernel would accept for a socket of domain; with
 * domain IMAGE_NONE (a peer, only shown, checked again before a connect),
 * for the address's own family.
 */
static int get_addr(struct reader *r, const char *what, uint32_t domain,
		    struct image_socket *s, bool peer)
{
	uint64_t off = field_off(r);
	struct sockaddr_storage addr;
	uint32_t len = 0;
	char why[160];

	if (get_bytes(r, what, IMAGE_MAX_SOCKADDR, &addr, &len) < 0)
		return -1;
	if (domain == IMAGE_NONE && len >= sizeof(sa_family_t))
		domain = addr.ss_family;
	if (!image_sockaddr_ok(domain, &addr, len, why, sizeof(why)))
		return fail(r, off, "%s: %s", what, why);
	/* out of line, sized to its length: memory follows the image */
	if ((peer ? image_socket_set_peer(s, &addr, len)
		  : image_socket_set_addr(s, &addr, len)) < 0)
		return fail(r, off, "%s: out of memory", what);
	return 0;
}

static int read_socket(struct reader *r, struct image_target *t)
{
	struct image_socket *s = &t->u.sock;
	uint64_t off;
	uint32_t pair;

	if (get_u32(r, "socket domain", UINT16_MAX, &s->domain) < 0 ||
	    get_u32(r, "socket type", 15, &s->type) < 0 ||
	    get_u32(r, "socket protocol", INT32_MAX, &s->protocol) < 0 ||
	    get_bits(r, "socket flags", IMAGE_SOCK_FLAGS_ALL, &s->flags) < 0 ||
	    get_fd_or_none(r, "socket backlog", &s->backlog) < 0 ||
	    get_addr(r, "socket address", s->domain, s, false) < 0 ||
	    get_addr(r, "socket peer", IMAGE_NONE, s, true) < 0)
		return -1;
	off = field_off(r);
	if (get_u32(r, "socket pair", UINT32_MAX, &pair) < 0)
		return -1;
	if (pair != IMAGE_NONE && socket_pair(r, t, pair, off) < 0)
		return -1;
	if (get_u32(r, "socket pending", UINT32_MAX, &s->pending) < 0)
		return -1;
	if (!r->sock_mode)
		return 0; /* no socket file mode in this image: not known */
	off = field_off(r);
	if (get_u32(r, "socket file mode", UINT32_MAX, &s->file_mode) < 0)
		return -1;
	if (!image_socket_mode_valid(s->file_mode))
		return fail(r, off, "socket file mode 0%o is neither 0 nor a socket file's mode (S_IFSOCK and permission bits)",
			    s->file_mode);
	return 0;
}

static int read_pipe(struct reader *r, struct image_target *t)
{
	struct image_pipe *p = &t->u.pipe;
	uint64_t off;
	uint32_t peer;

	if (get_u32(r, "pipe write_end", 1, &p->write_end) < 0 ||
	    get_varint(r, "pipe ino", &p->ino) < 0)
		return -1;
	off = field_off(r);
	if (get_u32(r, "pipe peer", UINT32_MAX, &peer) < 0)
		return -1;
	if (peer != IMAGE_NONE) {
		struct image_target *q = image_target_by_id(r->img, peer);

		if (peer >= t->id)
			return fail(r, off, "pipe peer: target %u is not an earlier target (this is %u)",
				    peer, t->id);
		if (q->kind != IMAGE_KIND_PIPE)
			return fail(r, off, "pipe peer: target %u is of kind %s, not a pipe",
				    peer, image_kind_name(q->kind));
		if (q->u.pipe.peer != IMAGE_NONE)
			return fail(r, off, "pipe peer: target %u is already paired with target %u",
				    peer, q->u.pipe.peer);
		p->peer = peer;
		q->u.pipe.peer = t->id;
	}
	return get_u32(r, "pipe pending", UINT32_MAX, &p->pending);
}

static bool clock_valid(uint64_t clockid)
{
	/* REALTIME, MONOTONIC, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM */
	return clockid == 0 || clockid == 1 || clockid == 7 || clockid == 8 ||
	       clockid == 9;
}

static int read_timerfd(struct reader *r, struct image_timerfd *tfd)
{
	uint64_t off = field_off(r), clockid;

	if (get_varint(r, "timerfd clockid", &clockid) < 0)
		return -1;
	if (!clock_valid(clockid))
		return fail(r, off, "timerfd clockid %" PRIu64 " is not a timerfd clock",
			    clockid);
	tfd->clockid = (uint32_t)clockid;
	if (get_bits(r, "timerfd settime_flags", IMAGE_TFD_FLAGS_ALL,
		     &tfd->settime_flags) < 0 ||
	    get_varint(r, "timerfd value_ns", &tfd->value_ns) < 0 ||
	    get_varint(r, "timerfd interval_ns", &tfd->interval_ns) < 0 ||
	    get_varint(r, "timerfd ticks", &tfd->ticks) < 0)
		return -1;
	return 0;
}

static int add_set(struct reader *r, uint32_t id, uint32_t declared,
		   uint64_t declared_off)
{
	if (grow(r, (void **)&r->sets, r->nsets, &r->cap_sets,
		 sizeof(*r->sets)) < 0)
		return -1;
	r->sets[r->nsets++] = (struct set_state){ id, declared, 0,
						  declared_off, 0 };
	return 0;
}

static int read_target(struct reader *r)
{
	struct image_target *t;
	uint64_t off;
	uint32_t kind;

	if (get_u32(r, "target kind", IMAGE_KIND_COUNT - 1, &kind) < 0)
		return -1;
	t = image_add_target(r->img, kind);
	if (!t)
		return fail(r, field_off(r), "out of memory");
	if (get_bits(r, "target origin", IMAGE_ORIGIN_ALL, &t->origin) < 0 ||
	    get_u32(r, "target file_flags", UINT32_MAX, &t->file_flags) < 0 ||
	    get_path(r, t) < 0)
		return -1;
	switch (kind) {
	case IMAGE_KIND_SOCKET:
		return read_socket(r, t);
	case IMAGE_KIND_PIPE:
		return read_pipe(r, t);
	case IMAGE_KIND_EVENTFD:
		if (get_max(r, "eventfd count", UINT64_MAX - 1,
			    &t->u.efd.count) < 0)
			return -1;
		return get_u32(r, "eventfd semaphore", 1, &t->u.efd.semaphore);
	case IMAGE_KIND_TIMERFD:
		return read_timerfd(r, &t->u.tfd);
	case IMAGE_KIND_SIGNALFD:
		return get_varint(r, "signalfd mask", &t->u.sfd.mask);
	case IMAGE_KIND_EPOLL:
		off = field_off(r);
		if (get_u32(r, "epoll nwatches", IMAGE_MAX_WATCHES,
			    &t->u.ep.nwatches) < 0)
			return -1;
		return add_set(r, t->id, t->u.ep.nwatches, off);
	default:
		return 0;
	}
}

static int read_fd(struct reader *r, uint64_t *prev_fd, uint64_t *prev_target)
{
	struct image_fd *f = image_add_fd(r->img);
	uint64_t off = field_off(r);

	if (!f)
		return fail(r, off, "out of memory");
	if (get_delta(r, "fd", INT32_MAX, prev_fd) < 0)
		return -1;
	f->fd = (int32_t)*prev_fd;
	if (check_fd_limit(r, "fd", off, f->fd) < 0)
		return -1;
	switch (fd_unseen(r, (uint32_t)f->fd + 1)) {
	case 1:
		return fail(r, off, "fd %d is listed twice", f->fd);
	case -1:
		return fail(r, off, "out of memory");
	}
	off = field_off(r);
	if (get_delta(r, "fd target", r->img->ntargets, prev_target) < 0)
		return -1;
	if (*prev_target == IMAGE_NONE)
		return fail(r, off, "fd %d names no target", f->fd);
	f->target = (uint32_t)*prev_target;
	return get_bits(r, "fd flags", IMAGE_FD_FLAGS_ALL, &f->fd_flags);
}

/* The state of set id (a target of kind epoll), by binary search. */
static struct set_state *set_of(struct reader *r, uint32_t id)
{
	uint32_t lo = 0, hi = r->nsets;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->sets[mid].id == id)
			return &r->sets[mid];
		if (r->sets[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Running values of the previous watch of a WATCHES record. */
struct watch_prev {
	uint64_t tfd, events, data, target, bt_add, bt_mod;
};

static int read_watch_fields(struct reader *r, struct image_watch *w,
			     struct watch_prev *prev)
{
	uint64_t off = field_off(r), v;

	if (get_delta(r, "watch tfd", INT32_MAX, &prev->tfd) < 0)
		return -1;
	w->tfd = (int32_t)prev->tfd;
	if (check_fd_limit(r, "watch tfd", off, w->tfd) < 0)
		return -1;
	off = field_off(r);
	if (get_max(r, "watch events", UINT32_MAX, &v) < 0)
		return -1;
	prev->events ^= v;
	v = prev->events & ~(uint64_t)IMAGE_EVENTS_ALL;
	if (v)
		return fail(r, off, "watch events 0x%" PRIx64 " has bits 0x%" PRIx64 " that are not epoll events",
			    prev->events, v);
	w->events = (uint32_t)prev->events;
	if (get_delta(r, "watch data", UINT64_MAX, &prev->data) < 0)
		return -1;
	w->data = prev->data;
	if (get_delta(r, "watch target", r->img->ntargets, &prev->target) < 0)
		return -1;
	w->target = (uint32_t)prev->target;
	off = field_off(r);
	if (get_varint(r, "watch open_fd", &v) < 0)
		return -1;
	if (v == 0) {
		w->open_fd = -1;
	} else {
		v = (uint64_t)w->tfd + zigzag_decode(v - 1);
		if (v > INT32_MAX)
			return fail(r, off, "watch open_fd %" PRId64 " out of range (-1 to %d)",
				    (int64_t)v, INT32_MAX);
		w->open_fd = (int32_t)v;
		if (check_fd_limit(r, "watch open_fd", off, w->open_fd) < 0)
			return -1;
	}
	if (get_bits(r, "watch flags", IMAGE_W_FLAGS_ALL, &w->flags) < 0 ||
	    get_delta(r, "watch bt_add", r->img->nbacktraces, &prev->bt_add) < 0)
		return -1;
	w->bt_add = (uint32_t)prev->bt_add;
	if (get_delta(r, "watch bt_mod", r->img->nbacktraces, &prev->bt_mod) < 0)
		return -1;
	w->bt_mod = (uint32_t)prev->bt_mod;
	return 0;
}

static int read_watch(struct reader *r, struct set_state *set,
		      struct watch_prev *prev)
{
	uint64_t off = field_off(r);
	struct image_watch *w = image_add_watch(r->img);

	if (!w)
		return fail(r, off, "out of memory");
	w->set = set->id;
	if (read_watch_fields(r, w, prev) < 0)
		return -1;
	switch (watch_unseen(r, set)) {
	case 1:
		return fail(r, off, "watch of set %u, tfd %d, target %u is listed twice",
			    w->set, w->tfd, w->target);
	case -1:
		return fail(r, off, "out of memory");
	}
	if (++set->seen > set->declared)
		return fail(r, off, "epoll set %u holds more watches than its nwatches %u",
			    set->id, set->declared);
	const struct image_target *t = image_target_by_id(r->img, w->target);
	if (t && t->kind == IMAGE_KIND_EPOLL) {
		uint32_t from = (uint32_t)(set - r->sets);
		uint32_t to = (uint32_t)(set_of(r, t->id) - r->sets);

		if (grow(r, (void **)&r->edges, r->nedges, &r->cap_edges,
			 sizeof(*r->edges)) < 0)
			return -1;
		r->edges[r->nedges++] = (struct nest_edge){ from, to, off };
	}
	return 0;
}

/* Read the count of a batch and check it against the whole-image limit. */
static int get_count(struct reader *r, const char *what, uint32_t have,
		     uint32_t limit, uint32_t *count)
{
	uint64_t off = field_off(r), v;

	if (get_varint(r, "count", &v) < 0)
		return -1;
	if (v == 0)
		return fail(r, off, "count: empty %s record", rec_name(r->type));
	if (v > limit - have)
		return fail(r, off, "count: %" PRIu64 " more %s would exceed the limit of %u",
			    v, what, limit);
	*count = (uint32_t)v;
	return 0;
}

static int read_batch(struct reader *r)
{
	struct image *img = r->img;
	uint32_t count = 0;

	switch (r->type) {
	case IMAGE_REC_TARGET:
		if (get_count(r, "targets", img->ntargets, IMAGE_MAX_TARGETS,
			      &count) < 0)
			return -1;
		for (uint32_t i = 0; i < count; i++)
			if (read_target(r) < 0)
				return -1;
		return 0;
	case IMAGE_REC_FD: {
		uint64_t prev_fd = 0, prev_target = 0;

		if (get_count(r, "fds", img->nfds, IMAGE_MAX_FDS, &count) < 0)
			return -1;
		for (uint32_t i = 0; i < count; i++)
			if (read_fd(r, &prev_fd, &prev_target) < 0)
				return -1;
		return 0;
	}
	default: {
		struct watch_prev prev = { 0 };
		uint64_t off = field_off(r);
		uint32_t id;

		if (get_u32(r, "set", UINT32_MAX, &id) < 0)
			return -1;
		const struct image_target *t = image_target_by_id(img, id);
		if (!t)
			return fail(r, off, "set: target %u does not exist (the image has %u targets)",
				    id, img->ntargets);
		if (t->kind != IMAGE_KIND_EPOLL)
			return fail(r, off, "set: target %u is of kind %s, not an epoll set",
				    id, image_kind_name(t->kind));
		if (get_count(r, "watches", img->nwatches, IMAGE_MAX_WATCHES,
			      &count) < 0)
			return -1;
		struct set_state *set = set_of(r, id);
		for (uint32_t i = 0; i < count; i++)
			if (read_watch(r, set, &prev) < 0)
				return -1;
		return 0;
	}
	}
}

static int read_diag(struct reader *r)
{
	uint32_t severity, code, bt;
	int32_t epfd, tfd;
	struct image_diag *d;

	if (r->img->ndiags >= IMAGE_MAX_DIAGS)
		return fail(r, r->rec_off, "more than %u DIAG records",
			    IMAGE_MAX_DIAGS);
	if (get_u32(r, "diag severity", IMAGE_SEV_ERROR, &severity) < 0 ||
	    get_u32(r, "diag code", IMAGE_DIAG_CODE_MAX, &code) < 0 ||
	    get_fd_or_none(r, "diag epfd", &epfd) < 0 ||
	    get_fd_or_none(r, "diag tfd", &tfd) < 0 ||
	    get_u32(r, "diag bt", r->img->nbacktraces, &bt) < 0)
		return -1;
	if (image_add_diag(r->img, severity, code, epfd, tfd, NULL, bt, "%s",
			   "") < 0)
		return fail(r, field_off(r), "out of memory");
	d = &r->img->diags[r->img->ndiags - 1];
	free(d->message);
	d->message = NULL;
	if (get_string(r, "diag path", &d->path) < 0 ||
	    get_string(r, "diag message", &d->message) < 0)
		return -1;
	return 0;
}

static int check_end_count(struct reader *r, const char *what, uint32_t have)
{
	uint64_t off = field_off(r), v;

	if (get_varint(r, what, &v) < 0)
		return -1;
	if (v != have)
		return fail(r, off, "END counts %" PRIu64 " %s, the image holds %u",
			    v, what, have);
	return 0;
}

static int read_end(struct reader *r, uint32_t crc_before_end)
{
	const struct image *img = r->img;
	uint64_t off, crc;

	if (check_end_count(r, "modules", img->nmodules) < 0 ||
	    check_end_count(r, "backtraces", img->nbacktraces) < 0 ||
	    check_end_count(r, "targets", img->ntargets) < 0 ||
	    check_end_count(r, "fds", img->nfds) < 0 ||
	    check_end_count(r, "watches", img->nwatches) < 0 ||
	    check_end_count(r, "diagnostics", img->ndiags) < 0)
		return -1;
	off = field_off(r);
	if (get_max(r, "checksum", UINT32_MAX, &crc) < 0)
		return -1;
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	if (crc != crc_before_end)
		return fail(r, off, "checksum 0x%08" PRIx64 " does not match the CRC-32C 0x%08x of the first %" PRIu64 " bytes",
			    crc, crc_before_end, r->rec_off);
#else
	(void)crc_before_end;
	(void)off;
#endif
	return 0;
}

/* ---- whole-image checks ------------------------------------------------- */

/* Append " > id" (or "id" first) to out while it has room. */
static void chain_add(char *out, size_t len, size_t *used, uint32_t id)
{
	if (*used >= len)
		return;
	int k = snprintf(out + *used, len - *used, "%s%u", *used ? " > " : "",
			 id);
	*used += k > 0 ? (size_t)k : 0;
}

/* "A > B > ..." (target ids, outermost first) of the chain ending with e. */
static void format_chain(const struct reader *r, const uint32_t *via,
			 uint32_t e, char *out, size_t len)
{
	uint32_t chain[IMAGE_MAX_NEST_DEPTH + 2];
	uint32_t n = 0, node = r->edges[e].from;
	size_t used = 0;

	chain[n++] = r->edges[e].to;
	for (;;) {
		chain[n++] = node;
		if (via[node] == UINT32_MAX || n == IMAGE_MAX_NEST_DEPTH + 2)
			break;
		node = r->edges[via[node]].from;
	}
	out[0] = '\0';
	while (n--)
		chain_add(out, len, &used, r->sets[chain[n]].id);
}

/*
 * Edges grouped by one end: list[start[node]..start[node + 1]) are the
 * indexes of the edges whose `from` (outgoing) or `to` (incoming) is node.
 */
static void group_edges(const struct reader *r, bool by_to, uint32_t *start,
			uint32_t *fill, uint32_t *list)
{
	uint32_t ns = r->nsets, ne = r->nedges;

	for (uint32_t e = 0; e < ne; e++)
		start[(by_to ? r->edges[e].to : r->edges[e].from) + 1]++;
	for (uint32_t i = 0; i < ns; i++)
		start[i + 1] += start[i];
	memcpy(fill, start, ns * sizeof(*fill));
	for (uint32_t e = 0; e < ne; e++)
		list[fill[by_to ? r->edges[e].to : r->edges[e].from]++] = e;
}

/* An incoming edge of node from a node not ordered (and, if seen, seen). */
static uint32_t pred_edge(const struct reader *r, const bool *done,
			  const uint32_t *seen, const uint32_t *in_start,
			  const uint32_t *in_list, uint32_t node)
{
	for (uint32_t i = in_start[node]; i < in_start[node + 1]; i++) {
		uint32_t from = r->edges[in_list[i]].from;

		if (!done[from] && (!seen || seen[from]))
			return in_list[i];
	}
	return UINT32_MAX; /* not reached for a node left by Kahn */
}

/*
 * Report a cycle among the sets Kahn's algorithm could not order, at the
 * offset of the cycle's last watch in the file.  Each such set has an
 * incoming edge from another such set, so walking back along those edges
 * repeats a set within nsets steps: that closes a cycle.
 */
static int report_cycle(struct reader *r, const bool *done,
			const uint32_t *in_start, const uint32_t *in_list)
{
	uint32_t *seen = calloc(r->nsets, sizeof(*seen));
	uint32_t *cycle = calloc(r->nsets, sizeof(*cycle));
	uint32_t node = 0, step = 1, n = 0;
	uint64_t last_off = 0;
	char text[256];
	size_t used = 0;

	if (!seen || !cycle) {
		free(seen);
		free(cycle);
		return fail(r, r->rec_off, "out of memory");
	}
	while (done[node])
		node++;
	while (!seen[node]) {
		seen[node] = step++;
		node = r->edges[pred_edge(r, done, NULL, in_start, in_list,
					  node)].from;
	}
	uint32_t start = node;
	do {
		uint32_t e = pred_edge(r, done, seen, in_start, in_list, node);

		cycle[n++] = node;
		if (r->edges[e].off > last_off)
			last_off = r->edges[e].off;
		node = r->edges[e].from;
	} while (node != start && n < r->nsets);
	text[0] = '\0';
	chain_add(text, sizeof(text), &used, r->sets[start].id);
	while (n--)
		chain_add(text, sizeof(text), &used, r->sets[cycle[n]].id);
	free(seen);
	free(cycle);
	return fail(r, last_off, "epoll sets nest in a cycle (target ids %s)",
		    text);
}

/*
 * The nesting graph (a watch of set S on set T is an edge S -> T) must be
 * acyclic, with no chain of more than IMAGE_MAX_NEST_DEPTH sets.  Kahn's
 * algorithm: iterative, linear in sets + edges.
 */
static int check_nesting(struct reader *r)
{
	uint32_t ns = r->nsets, ne = r->nedges, head = 0, tail = 0;
	uint32_t *out_start, *out_list, *in_start, *in_list, *indeg, *depth,
		*via, *queue;
	bool *done;
	int ret = 0;

	if (!ne || !ns)
		return 0;
	out_start = calloc(ns + 1, sizeof(uint32_t));
	in_start = calloc(ns + 1, sizeof(uint32_t));
	out_list = calloc(ne, sizeof(uint32_t));
	in_list = calloc(ne, sizeof(uint32_t));
	indeg = calloc(ns, sizeof(uint32_t));
	depth = calloc(ns, sizeof(uint32_t));
	via = calloc(ns, sizeof(uint32_t));
	queue = calloc(ns, sizeof(uint32_t));
	done = calloc(ns, sizeof(bool));
	if (!out_start || !in_start || !out_list || !in_list || !indeg ||
	    !depth || !via || !queue || !done) {
		ret = fail(r, r->rec_off, "out of memory");
		goto out_free;
	}
	group_edges(r, false, out_start, queue, out_list);
	group_edges(r, true, in_start, queue, in_list);
	for (uint32_t i = 0; i < ns; i++) {
		indeg[i] = in_start[i + 1] - in_start[i];
		via[i] = UINT32_MAX;
		depth[i] = 1;
	}
	for (uint32_t i = 0; i < ns; i++)
		if (!indeg[i])
			queue[tail++] = i;
	while (head < tail) {
		uint32_t u = queue[head++];

		done[u] = true;
		for (uint32_t i = out_start[u]; i < out_start[u + 1]; i++) {
			uint32_t e = out_list[i], v = r->edges[e].to;

			if (depth[u] + 1 > depth[v]) {
				depth[v] = depth[u] + 1;
				via[v] = e;
			}
			if (depth[v] > IMAGE_MAX_NEST_DEPTH) {
				char chain[256];

				format_chain(r, via, e, chain, sizeof(chain));
				ret = fail(r, r->edges[e].off, "epoll sets nest %u deep (target ids %s), more than %d",
					   depth[v], chain,
					   IMAGE_MAX_NEST_DEPTH);
				goto out_free;
			}
			if (!--indeg[v])
				queue[tail++] = v;
		}
	}
	if (tail < ns)
		ret = report_cycle(r, done, in_start, in_list);
out_free:
	free(out_start);
	free(in_start);
	free(out_list);
	free(in_list);
	free(indeg);
	free(depth);
	free(via);
	free(queue);
	free(done);
	return ret;
}

/* Once every watch is read: counts per set, then nesting. */
static int check_sets(struct reader *r)
{
	r->sets_checked = true;
	for (uint32_t i = 0; i < r->nsets; i++) {
		const struct set_state *s = &r->sets[i];

		if (s->seen != s->declared)
			return fail(r, s->declared_off, "epoll set %u declares %u watches, the image holds %u",
				    s->id, s->declared, s->seen);
	}
	return check_nesting(r);
}

/* ---- driver ------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static int read_file_header(struct reader *r)
{
	uint8_t h[IMAGE_HEADER_LEN] = { 0 };
	ssize_t n = input(r, h, sizeof(h));
	uint32_t v;

	if (n < 0)
		return -1;
	if (n == 0)
		return fail(r, 0, "empty file, not an epollcr image");
	if (memcmp(h, IMAGE_MAGIC,
		   n < IMAGE_MAGIC_LEN ? (size_t)n : IMAGE_MAGIC_LEN))
		return fail(r, 0, "not an epollcr image (bad magic)");
	if (n < IMAGE_HEADER_LEN)
		return fail(r, 0, "the image ends inside its %d-byte header, after %zd bytes",
			    IMAGE_HEADER_LEN, n);
	v = h[8] | (uint32_t)h[9] << 8;
	if (v != IMAGE_VERSION)
		return fail(r, 8, "image format version %u: this reader reads version %d only",
			    v, IMAGE_VERSION);
	v = h[10] | (uint32_t)h[11] << 8;
	if (v != IMAGE_HEADER_LEN)
		return fail(r, 10, "header_len %u, expected %d", v,
			    IMAGE_HEADER_LEN);
	v = le32(h + 12);
	if (v != IMAGE_BYTE_ORDER)
		return fail(r, 12, "byte order mark 0x%08x, expected 0x%08x: the image was written in another byte order",
			    v, IMAGE_BYTE_ORDER);
	v = le32(h + 16);
	if (v & ~(uint32_t)IMAGE_F_ALL)
		return fail(r, 16, "header flags 0x%x have undefined bits 0x%x",
			    v, v & ~(uint32_t)IMAGE_F_ALL);
	/* A flag of the file's encoding, not of the model. */
	r->sock_mode = v & IMAGE_F_SOCK_MODE;
	r->img->flags = v & ~(uint32_t)IMAGE_F_SOCK_MODE;
	if (le32(h + 20))
		return fail(r, 20, "reserved0 is not zero");
	if (le32(h + 24) || le32(h + 28))
		return fail(r, 24, "reserved1 is not zero");
	return 0;
}

static int check_order(struct reader *r)
{
	if (!r->last_type && r->type != IMAGE_REC_PROCESS)
		return fail(r, r->rec_off, "the first record is %s, not PROCESS",
			    rec_name(r->type));
	if (r->last_type == IMAGE_REC_PROCESS && r->type == IMAGE_REC_PROCESS)
		return fail(r, r->rec_off, "a second PROCESS record");
	if (r->type < r->last_type)
		return fail(r, r->rec_off, "%s record after a %s record (the order is PROCESS, MODULE, BACKTRACE, TARGET, FD, WATCHES, DIAG, END)",
			    rec_name(r->type), rec_name(r->last_type));
	return 0;
}

/* Read, check and parse one record.  Returns 1 after END, 0, or -1. */
static int read_record(struct reader *r)
{
	uint32_t crc_before = r->crc;
	uint8_t h[REC_HEADER_LEN] = { 0 };
	ssize_t n;
	int ret;

	r->rec_off = r->off;
	n = input(r, h, sizeof(h));
	if (n < 0)
		return -1;
	if (n == 0)
		return fail(r, r->rec_off, "the image ends without an END record");
	if (n < REC_HEADER_LEN)
		return fail(r, r->rec_off, "the image ends inside a record header, after %zd of its %d bytes",
			    n, REC_HEADER_LEN);
	r->type = le32(h);
	r->plen = le32(h + 4);
	r->pos = 0;
	if (r->type < IMAGE_REC_PROCESS || r->type > IMAGE_REC_END)
		return fail(r, r->rec_off, "unknown record type %u", r->type);
	if (r->plen > rec_types[r->type].max_payload_len)
		return fail(r, r->rec_off + 4, "%s record payload_len %u above its maximum %u",
			    rec_name(r->type), r->plen,
			    rec_types[r->type].max_payload_len);
	if (check_order(r) < 0)
		return -1;
	if (r->type > IMAGE_REC_WATCHES && !r->sets_checked &&
	    check_sets(r) < 0)
		return -1;
	if (r->plen > r->payload_cap) {
		uint8_t *p = realloc(r->payload, r->plen);

		if (!p)
			return fail(r, r->rec_off, "out of memory");
		r->payload = p;
		r->payload_cap = r->plen;
	}
	n = input(r, r->payload, r->plen);
	if (n < 0)
		return -1;
	if ((size_t)n < r->plen)
		return fail(r, r->rec_off, "the image ends inside a %s record: payload_len %u, %zd bytes follow",
			    rec_name(r->type), r->plen, n);
	switch (r->type) {
	case IMAGE_REC_PROCESS:
		ret = read_process(r);
		break;
	case IMAGE_REC_MODULE:
		ret = read_module(r);
		break;
	case IMAGE_REC_BACKTRACE:
		ret = read_backtrace(r);
		break;
	case IMAGE_REC_DIAG:
		ret = read_diag(r);
		break;
	case IMAGE_REC_END:
		ret = read_end(r, crc_before);
		break;
	default:
		ret = read_batch(r);
		break;
	}
	if (ret < 0)
		return -1;
	if (r->pos != r->plen)
		return fail(r, field_off(r), "%u bytes left over at the end of the %s record",
			    r->plen - r->pos, rec_name(r->type));
	r->last_type = r->type;
	return r->type == IMAGE_REC_END;
}

static int read_image(struct reader *r)
{
	struct rlimit rl;
	uint8_t extra;
	int ret = 0;
	ssize_t n;

	r->fd_limit = UINT64_MAX;
	if (!(r->flags & IMAGE_READ_ANY_FD) &&
	    getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
		r->fd_limit = rl.rlim_max;
	if (r->fd_limit > INT32_MAX)
		r->fd_limit = (uint64_t)INT32_MAX + 1;
	if (read_file_header(r) < 0)
		return -1;
	/* Each record consumes at least its header: bounded by the input. */
	while (ret == 0)
		ret = read_record(r);
	if (ret < 0)
		return -1;
	n = input(r, &extra, 1);
	if (n < 0)
		return -1;
	if (n > 0)
		return fail(r, r->off - 1, "data after the END record");
	return 0;
}

static int read_common(struct reader *r, struct image *img)
{
	int ret;

	image_init(img);
	r->img = img;
	if (r->err && r->err_len)
		r->err[0] = '\0';
	/* never NULL, even for a first record of 0 bytes */
	r->payload = malloc(PAYLOAD_BUF_LEN);
	r->payload_cap = PAYLOAD_BUF_LEN;
	ret = r->payload ? read_image(r) : fail(r, 0, "out of memory");
	free(r->payload);
	free(r->sets);
	free(r->edges);
	free(r->fd_seen.slots);
	free(r->watch_seen.slots);
	if (ret < 0)
		image_free(img);
	return ret;
}

int image_read_stream(int fd, int copy_fd, double deadline,
		      struct image *img, unsigned flags, char *err,
		      size_t err_len)
{
	struct reader r = { .fd = fd, .err = err, .err_len = err_len,
			    .flags = flags, .copy_fd = copy_fd,
			    .deadline = deadline };
	int ret;

	r.inbuf = malloc(READ_BUF_LEN);
	if (!r.inbuf) {
		image_init(img);
		return fail(&r, 0, "out of memory");
	}
	ret = read_common(&r, img);
	free(r.inbuf);
	return ret;
}

int image_read_fd_flags(int fd, struct image *img, unsigned flags, char *err,
			size_t err_len)
{
	/* a stream without a copy or a deadline */
	return image_read_stream(fd, -1, 0, img, flags, err, err_len);
}

int image_read_fd(int fd, struct image *img, char *err, size_t err_len)
{
	return image_read_fd_flags(fd, img, 0, err, err_len);
}

int image_read_file_flags(const char *path, struct image *img,
			  unsigned flags, char *err, size_t err_len)
{
	struct reader r = { .err = err, .err_len = err_len };
	/* Never blocks: a FIFO or a device named as an image is refused. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st = { 0 };
	int ret;

	if (fd < 0) {
		image_init(img);
		return fail(&r, 0, "cannot open the image: %s", strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		const char *why = st.st_mode ? "not a regular file"
					     : strerror(errno);

		close(fd);
		image_init(img);
		return fail(&r, 0, "cannot read the image: %s", why);
	}
	ret = image_read_fd_flags(fd, img, flags, err, err_len);
	close(fd);
	if (ret == 0)
		img->file_uid = st.st_uid;
	return ret;
}

int image_read_file(const char *path, struct image *img, char *err,
		    size_t err_len)
{
	return image_read_file_flags(path, img, 0, err, err_len);
}

int image_read_mem(const void *buf, size_t len, struct image *img, char *err,
		   size_t err_len)
{
	struct reader r = { .fd = -1, .mem = buf, .mem_len = len,
			    .err = err, .err_len = err_len, .copy_fd = -1 };

	if (len > IMAGE_MAX_BYTES) {
		image_init(img);
		return fail(&r, IMAGE_MAX_BYTES,
			    "the image is longer than %u bytes, the limit of this reader",
			    IMAGE_MAX_BYTES);
	}

	return read_common(&r, img);
}
