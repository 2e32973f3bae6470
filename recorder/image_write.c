// SPDX-License-Identifier: MIT
/*
 * The image writer: the model of include/epollcr_image.h serialised as
 * docs/image-format.md describes, through one bounded buffer.  Every record
 * is encoded twice by the same code: once counting bytes (for payload_len),
 * once for real, so the length and the bytes cannot disagree.
 */
#define LOG_PREFIX "image"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image_io.h"
#include "leb128.h"
#include "log.h"
#include "ownfd.h"

#define WRITE_BUF_LEN (128 * 1024) /* bytes buffered before a write(2) */
#define TMP_NAME_TRIES 100	   /* temporary names tried before EEXIST */

struct writer {
	int fd;
	uint8_t *buf;	 /* WRITE_BUF_LEN bytes */
	size_t len;	 /* bytes waiting in buf */
	uint32_t crc;	 /* CRC-32C of every byte flushed so far */
	bool counting;	 /* only count bytes (for payload_len) */
	size_t counted;	 /* bytes counted while counting */
	int err;	 /* first error, -errno; later output is dropped */
	bool sock_mode;	 /* socket targets carry file_mode (IMAGE_F_SOCK_MODE) */
};

/* Running values of the previous entry of a batch (deltas start at 0). */
struct batch_prev {
	uint64_t fd, target, tfd, events, data, bt_add, bt_mod;
};

/* Write all len bytes at buf to fd, across short writes and EINTR. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void flush(struct writer *w)
{
	if (w->err || !w->len)
		return;
	w->crc = image_crc32c(w->crc, w->buf, w->len);
	w->err = write_all(w->fd, w->buf, w->len);
	w->len = 0;
}

static void put(struct writer *w, const void *bytes, size_t n)
{
	const uint8_t *p = bytes;

	if (w->counting) {
		w->counted += n;
		return;
	}
	while (n && !w->err) {
		size_t room = WRITE_BUF_LEN - w->len;

		if (!room) {
			flush(w);
			continue;
		}
		size_t k = n < room ? n : room;
		memcpy(w->buf + w->len, p, k);
		w->len += k;
		p += k;
		n -= k;
	}
}

static void put_varint(struct writer *w, uint64_t v)
{
	uint8_t b[LEB128_MAX_LEN];

	put(w, b, leb128_put(b, v));
}

/* A zigzag delta from *prev to v; *prev becomes v. */
static void put_delta(struct writer *w, uint64_t v, uint64_t *prev)
{
	put_varint(w, zigzag_encode(v - *prev));
	*prev = v;
}

/* An fd number where -1 means none: stored as fd + 1. */
static void put_fd_or_none(struct writer *w, int32_t fd)
{
	put_varint(w, (uint64_t)((int64_t)fd + 1));
}

/*
 * A string: length and bytes.  NULL and "" are both stored as length 0;
 * longer strings than IMAGE_MAX_STRING are cut (they are only ever names
 * and messages shown to people).
 */
static void put_string(struct writer *w, const char *s)
{
	size_t n = s ? strnlen(s, IMAGE_MAX_STRING) : 0;

	put_varint(w, n);
	put(w, s, n);
}

static void put_bytes_field(struct writer *w, const void *bytes, size_t n)
{
	put_varint(w, n);
	put(w, bytes, n);
}

static void put_u32le(struct writer *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			 (uint8_t)(v >> 24) };
	put(w, b, sizeof(b));
}

static void put_record_header(struct writer *w, uint32_t type, size_t len)
{
	put_u32le(w, type);
	put_u32le(w, (uint32_t)len);
}

/* ---- fixed records ------------------------------------------------------ */

typedef void (*encode_fn)(struct writer *w, const struct image *img,
			  uint32_t index);

static size_t measure(struct writer *w, encode_fn enc,
		      const struct image *img, uint32_t index)
{
	w->counting = true;
	w->counted = 0;
	enc(w, img, index);
	w->counting = false;
	return w->counted;
}

/* One record of type whose payload enc writes; -E2BIG above max_len. */
static void put_record(struct writer *w, uint32_t type, size_t max_len,
		       encode_fn enc, const struct image *img, uint32_t index)
{
	size_t len = measure(w, enc, img, index);

	if (len > max_len) {
		log_error("record type %u: payload of %zu bytes, above %zu",
			  type, len, max_len);
		if (!w->err)
			w->err = -E2BIG;
		return;
	}
	put_record_header(w, type, len);
	enc(w, img, index);
}

static void enc_process(struct writer *w, const struct image *img,
			uint32_t index)
{
	const struct image_process *p = &img->proc;

	(void)index;
	put_varint(w, (uint32_t)p->pid);
	put_varint(w, p->uid);
	put_varint(w, p->time_sec);
	put_varint(w, p->time_nsec);
	put_varint(w, p->nofile_limit);
	put_string(w, p->exe);
	put_string(w, p->comm);
	put_string(w, p->version);
}

static void enc_module(struct writer *w, const struct image *img,
		       uint32_t index)
{
	const struct image_module *m = &img->modules[index];

	put_string(w, m->path);
	put_varint(w, m->base);
}

static void enc_backtrace(struct writer *w, const struct image *img,
			  uint32_t index)
{
	const struct image_backtrace *b = &img->backtraces[index];

	put_varint(w, b->nframes);
	for (uint32_t i = 0; i < b->nframes; i++) {
		const struct image_frame *f = &b->frames[i];

		put_varint(w, f->module);
		put_varint(w, f->offset);
		put_string(w, f->symbol);
		put_varint(w, f->symbol_offset);
	}
}

static void enc_diag(struct writer *w, const struct image *img,
		     uint32_t index)
{
	const struct image_diag *d = &img->diags[index];

	put_varint(w, d->severity);
	put_varint(w, d->code);
	put_fd_or_none(w, d->epfd);
	put_fd_or_none(w, d->tfd);
	put_varint(w, d->bt);
	put_string(w, d->path);
	put_string(w, d->message);
}

static void enc_end(struct writer *w, const struct image *img,
		    uint32_t crc)
{
	put_varint(w, img->nmodules);
	put_varint(w, img->nbacktraces);
	put_varint(w, img->ntargets);
	put_varint(w, img->nfds);
	put_varint(w, img->nwatches);
	put_varint(w, img->ndiags);
	put_varint(w, crc);
}

/* ---- batches ------------------------------------------------------------ */

/* The link text every target of this kind has, or NULL. */
static const char *standard_path(uint32_t kind)
{
	switch (kind) {
	case IMAGE_KIND_EVENTFD:
		return "anon_inode:[eventfd]";
	case IMAGE_KIND_TIMERFD:
		return "anon_inode:[timerfd]";
	case IMAGE_KIND_SIGNALFD:
		return "anon_inode:[signalfd]";
	case IMAGE_KIND_EPOLL:
		return "anon_inode:[eventpoll]";
	default:
		return NULL;
	}
}

/* A target's path: 0 absent, 1 its kind's standard text, else len + 2. */
static void put_path(struct writer *w, uint32_t kind, const char *path)
{
	const char *std = standard_path(kind);
	size_t n = path ? strnlen(path, IMAGE_MAX_STRING) : 0;

	if (!n) {
		put_varint(w, 0);
	} else if (std && !strcmp(path, std)) {
		put_varint(w, 1);
	} else {
		put_varint(w, n + 2);
		put(w, path, n);
	}
}

static void enc_socket(struct writer *w, const struct image_target *t)
{
	const struct image_socket *s = &t->u.sock;

	put_varint(w, s->domain);
	put_varint(w, s->type);
	put_varint(w, s->protocol);
	put_varint(w, s->flags);
	put_fd_or_none(w, s->backlog);
	put_bytes_field(w, s->addrp, s->addr_len);
	put_bytes_field(w, s->peerp, s->peer_len);
	/* Only the later end of a pair names the other: references go back. */
	put_varint(w, s->pair < t->id ? s->pair : 0);
	put_varint(w, s->pending);
	if (w->sock_mode)
		put_varint(w, s->file_mode);
}

static void enc_target(struct writer *w, const struct image *img,
		       uint32_t index, struct batch_prev *prev)
{
	const struct image_target *t = &img->targets[index];

	(void)prev;
	put_varint(w, t->kind);
	put_varint(w, t->origin);
	put_varint(w, t->file_flags);
	put_path(w, t->kind, t->path);
	switch (t->kind) {
	case IMAGE_KIND_SOCKET:
		enc_socket(w, t);
		break;
	case IMAGE_KIND_PIPE:
		put_varint(w, t->u.pipe.write_end);
		put_varint(w, t->u.pipe.ino);
		/* Only the later end names its peer: references go back. */
		put_varint(w, t->u.pipe.peer < t->id ? t->u.pipe.peer : 0);
		put_varint(w, t->u.pipe.pending);
		break;
	case IMAGE_KIND_EVENTFD:
		put_varint(w, t->u.efd.count);
		put_varint(w, t->u.efd.semaphore);
		break;
	case IMAGE_KIND_TIMERFD:
		put_varint(w, t->u.tfd.clockid);
		put_varint(w, t->u.tfd.settime_flags);
		put_varint(w, t->u.tfd.value_ns);
		put_varint(w, t->u.tfd.interval_ns);
		put_varint(w, t->u.tfd.ticks);
		break;
	case IMAGE_KIND_SIGNALFD:
		put_varint(w, t->u.sfd.mask);
		break;
	case IMAGE_KIND_EPOLL:
		put_varint(w, t->u.ep.nwatches);
		break;
	default:
		break;
	}
}

static void enc_fd(struct writer *w, const struct image *img, uint32_t index,
		   struct batch_prev *prev)
{
	const struct image_fd *f = &img->fds[index];

	put_delta(w, (uint64_t)(int64_t)f->fd, &prev->fd);
	put_delta(w, f->target, &prev->target);
	put_varint(w, f->fd_flags);
}

static void enc_watch(struct writer *w, const struct image *img,
		      uint32_t index, struct batch_prev *prev)
{
	const struct image_watch *wt = &img->watches[index];

	put_delta(w, (uint64_t)(int64_t)wt->tfd, &prev->tfd);
	put_varint(w, wt->events ^ prev->events);
	prev->events = wt->events;
	put_delta(w, wt->data, &prev->data);
	put_delta(w, wt->target, &prev->target);
	/* open_fd: 0 for none, else 1 + zigzag of its distance from tfd */
	if (wt->open_fd < 0)
		put_varint(w, 0);
	else
		put_varint(w, 1 + zigzag_encode((uint64_t)(int64_t)wt->open_fd -
						(uint64_t)(int64_t)wt->tfd));
	put_varint(w, wt->flags);
	put_delta(w, wt->bt_add, &prev->bt_add);
	put_delta(w, wt->bt_mod, &prev->bt_mod);
}

struct batch_kind {
	uint32_t type;
	uint32_t count;
	void (*entry)(struct writer *w, const struct image *img,
		      uint32_t index, struct batch_prev *prev);
	bool per_set; /* WATCHES: one set per record, its id first */
};

static size_t measure_entry(struct writer *w, const struct batch_kind *k,
			    const struct image *img, uint32_t index,
			    struct batch_prev *prev)
{
	w->counting = true;
	w->counted = 0;
	k->entry(w, img, index, prev);
	w->counting = false;
	return w->counted;
}

/*
 * Write elements [0, k->count) as records of k->type, each holding as many
 * consecutive elements as fit in IMAGE_MAX_BATCH_PAYLOAD (and, for watches,
 * of one set only).
 */
static void put_batches(struct writer *w, const struct batch_kind *k,
			const struct image *img)
{
	uint32_t i = 0;

	while (i < k->count && !w->err) {
		uint32_t set = k->per_set ? img->watches[i].set : 0;
		size_t head = k->per_set ? leb128_size(set) : 0;
		size_t body = 0;
		struct batch_prev prev = { 0 };
		uint32_t j;

		for (j = i; j < k->count; j++) {
			if (k->per_set && img->watches[j].set != set)
				break;
			size_t e = measure_entry(w, k, img, j, &prev);
			size_t len = head + leb128_size(j - i + 1) + body + e;

			if (len > IMAGE_MAX_BATCH_PAYLOAD)
				break;
			body += e;
		}
		if (j == i) {
			log_error("record type %u: element %u does not fit in a record",
				  k->type, i);
			w->err = -E2BIG;
			return;
		}
		put_record_header(w, k->type,
				  head + leb128_size(j - i) + body);
		if (k->per_set)
			put_varint(w, set);
		put_varint(w, j - i);
		memset(&prev, 0, sizeof(prev));
		for (; i < j; i++)
			k->entry(w, img, i, &prev);
	}
}

/* ---- model checks ------------------------------------------------------- */

/* The clocks timerfd_create(2) accepts. */
static bool clock_valid(uint32_t clockid)
{
	return clockid == 0 || clockid == 1 || clockid == 7 || clockid == 8 ||
	       clockid == 9;
}

/*
 * The two ends of a socketpair name each other, are both flagged
 * IMAGE_SOCK_PAIR and are sockets of one family, type and protocol.
 */
static bool socket_pair_valid(const struct image *img,
			      const struct image_target *t)
{
	const struct image_target *p = image_target_by_id(img, t->u.sock.pair);

	return p && p != t && p->kind == IMAGE_KIND_SOCKET &&
	       p->u.sock.pair == t->id &&
	       (t->u.sock.flags & p->u.sock.flags & IMAGE_SOCK_PAIR) &&
	       p->u.sock.domain == t->u.sock.domain &&
	       p->u.sock.type == t->u.sock.type &&
	       p->u.sock.protocol == t->u.sock.protocol;
}

/* 0 when target index can be written as it is, -1 otherwise. */
static int check_target(const struct image *img, const struct image_target *t,
			uint32_t index)
{
	if (t->id != index + 1 || t->kind >= IMAGE_KIND_COUNT ||
	    t->origin & ~IMAGE_ORIGIN_ALL)
		return -1;
	switch (t->kind) {
	case IMAGE_KIND_SOCKET: {
		const struct image_socket *s = &t->u.sock;

		if (s->domain > UINT16_MAX || s->type > 15 ||
		    s->protocol > INT32_MAX ||
		    s->flags & ~IMAGE_SOCK_FLAGS_ALL || s->backlog < -1 ||
		    s->addr_len > IMAGE_MAX_SOCKADDR ||
		    s->peer_len > IMAGE_MAX_SOCKADDR ||
		    !image_socket_mode_valid(s->file_mode))
			return -1;
		return s->pair == IMAGE_NONE || socket_pair_valid(img, t) ? 0
									 : -1;
	}
	case IMAGE_KIND_PIPE: {
		const struct image_target *p;

		if (t->u.pipe.write_end > 1)
			return -1;
		if (t->u.pipe.peer == IMAGE_NONE)
			return 0;
		p = image_target_by_id(img, t->u.pipe.peer);
		return p && p != t && p->kind == IMAGE_KIND_PIPE &&
				       p->u.pipe.peer == t->id
			       ? 0
			       : -1;
	}
	case IMAGE_KIND_EVENTFD:
		return t->u.efd.semaphore > 1 ? -1 : 0;
	case IMAGE_KIND_TIMERFD:
		return !clock_valid(t->u.tfd.clockid) ||
				       t->u.tfd.settime_flags &
					       ~IMAGE_TFD_FLAGS_ALL
			       ? -1
			       : 0;
	default:
		return 0;
	}
}

static int check_backtraces(const struct image *img)
{
	for (uint32_t i = 0; i < img->nmodules; i++)
		if (img->modules[i].id != i + 1) {
			log_error("cannot write image: module %u has id %u",
				  i + 1, img->modules[i].id);
			return -EINVAL;
		}
	for (uint32_t i = 0; i < img->nbacktraces; i++) {
		const struct image_backtrace *b = &img->backtraces[i];

		if (b->id != i + 1 || b->nframes > IMAGE_MAX_FRAMES ||
		    (b->nframes && !b->frames)) {
			log_error("cannot write image: backtrace %u is malformed",
				  i + 1);
			return -EINVAL;
		}
		for (uint32_t f = 0; f < b->nframes; f++)
			if (b->frames[f].module > img->nmodules) {
				log_error("cannot write image: backtrace %u frame %u names module %u",
					  i + 1, f, b->frames[f].module);
				return -EINVAL;
			}
	}
	return 0;
}

static int check_fds(const struct image *img)
{
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (check_target(img, &img->targets[i], i) < 0) {
			log_error("cannot write image: target %u (%s) has a field out of range, or a pipe or socketpair peer that does not name it back",
				  i + 1, image_kind_name(img->targets[i].kind));
			return -EINVAL;
		}
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct image_fd *f = &img->fds[i];

		if (f->fd < 0 || f->target == IMAGE_NONE ||
		    f->target > img->ntargets ||
		    f->fd_flags & ~IMAGE_FD_FLAGS_ALL) {
			log_error("cannot write image: fd %d is malformed",
				  f->fd);
			return -EINVAL;
		}
	}
	return 0;
}

static bool watch_valid(const struct image *img, const struct image_watch *w)
{
	const struct image_target *set = image_target_by_id(img, w->set);

	return set && set->kind == IMAGE_KIND_EPOLL && w->tfd >= 0 &&
	       !(w->events & ~IMAGE_EVENTS_ALL) && w->target <= img->ntargets &&
	       w->open_fd >= -1 && !(w->flags & ~IMAGE_W_FLAGS_ALL) &&
	       w->bt_add <= img->nbacktraces && w->bt_mod <= img->nbacktraces;
}

/* Every watch valid, every set's nwatches its number of watches. */
static int check_watches(const struct image *img)
{
	uint32_t *per_set = calloc((size_t)img->ntargets + 1, sizeof(*per_set));
	int ret = -EINVAL;

	if (!per_set)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->nwatches; i++) {
		const struct image_watch *w = &img->watches[i];

		if (!watch_valid(img, w)) {
			log_error("cannot write image: watch %u (set %u, tfd %d, events 0x%x) is malformed",
				  i, w->set, w->tfd, w->events);
			goto out_free_per_set;
		}
		per_set[w->set]++;
	}
	for (uint32_t i = 0; i < img->ntargets; i++) {
		const struct image_target *t = &img->targets[i];

		if (t->kind == IMAGE_KIND_EPOLL &&
		    t->u.ep.nwatches != per_set[t->id]) {
			log_error("cannot write image: epoll target %u says %u watches, the image has %u",
				  t->id, t->u.ep.nwatches, per_set[t->id]);
			goto out_free_per_set;
		}
	}
	ret = 0;
out_free_per_set:
	free(per_set);
	return ret;
}

static int check_diags(const struct image *img)
{
	for (uint32_t i = 0; i < img->ndiags; i++) {
		const struct image_diag *d = &img->diags[i];

		if (d->severity > IMAGE_SEV_ERROR ||
		    d->code > IMAGE_DIAG_CODE_MAX || d->epfd < -1 ||
		    d->tfd < -1 || d->bt > img->nbacktraces) {
			log_error("cannot write image: diagnostic %u is malformed",
				  i);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Refuse what the format cannot hold or the reader would reject in a field
 * or a reference (docs/image-format.md, "What the writer checks").  Logs the
 * reason; returns 0, -EINVAL or -ENOMEM.
 */
static int check_model(const struct image *img)
{
	int ret;

	if (img->flags & ~IMAGE_F_ALL || img->proc.pid < 0 ||
	    img->proc.time_nsec >= 1000000000u) {
		log_error("cannot write image: bad flags, pid or time");
		return -EINVAL;
	}
	if (img->nmodules > IMAGE_MAX_MODULES ||
	    img->nbacktraces > IMAGE_MAX_BACKTRACES ||
	    img->ntargets > IMAGE_MAX_TARGETS || img->nfds > IMAGE_MAX_FDS ||
	    img->nwatches > IMAGE_MAX_WATCHES ||
	    img->ndiags > IMAGE_MAX_DIAGS) {
		log_error("cannot write image: more elements than the format allows");
		return -EINVAL;
	}
	ret = check_backtraces(img);
	if (!ret)
		ret = check_fds(img);
	if (!ret)
		ret = check_watches(img);
	if (!ret)
		ret = check_diags(img);
	return ret;
}

/* ---- whole image -------------------------------------------------------- */

static void put_file_header(struct writer *w, uint32_t flags)
{
	uint8_t h[IMAGE_HEADER_LEN] = { 0 };

	memcpy(h, IMAGE_MAGIC, IMAGE_MAGIC_LEN);
	h[8] = IMAGE_VERSION & 0xff;
	h[9] = IMAGE_VERSION >> 8;
	h[10] = IMAGE_HEADER_LEN & 0xff;
	h[11] = IMAGE_HEADER_LEN >> 8;
	for (int i = 0; i < 4; i++) {
		h[12 + i] = (uint8_t)(IMAGE_BYTE_ORDER >> (8 * i));
		h[16 + i] = (uint8_t)(flags >> (8 * i));
	}
	put(w, h, sizeof(h));
}

int image_write_fd(const struct image *img, int fd)
{
	struct writer w = { .fd = fd };
	int ret = check_model(img);

	if (ret < 0)
		return ret;
	w.buf = malloc(WRITE_BUF_LEN);
	if (!w.buf)
		return -ENOMEM;
	/*
	 * The file_mode field only when some socket has one: other images
	 * stay byte for byte what they were before the field existed.
	 */
	for (uint32_t i = 0; i < img->ntargets && !w.sock_mode; i++)
		w.sock_mode = img->targets[i].kind == IMAGE_KIND_SOCKET &&
			      img->targets[i].u.sock.file_mode;
	put_file_header(&w, (img->flags & ~(uint32_t)IMAGE_F_SOCK_MODE) |
				    (w.sock_mode ? IMAGE_F_SOCK_MODE : 0));
	put_record(&w, IMAGE_REC_PROCESS, IMAGE_MAX_PROCESS_PAYLOAD,
		   enc_process, img, 0);
	for (uint32_t i = 0; i < img->nmodules; i++)
		put_record(&w, IMAGE_REC_MODULE, IMAGE_MAX_MODULE_PAYLOAD,
			   enc_module, img, i);
	for (uint32_t i = 0; i < img->nbacktraces; i++)
		put_record(&w, IMAGE_REC_BACKTRACE,
			   IMAGE_MAX_BACKTRACE_PAYLOAD, enc_backtrace, img, i);
	put_batches(&w,
		    &(struct batch_kind){ IMAGE_REC_TARGET, img->ntargets,
					  enc_target, false },
		    img);
	put_batches(&w,
		    &(struct batch_kind){ IMAGE_REC_FD, img->nfds, enc_fd,
					  false },
		    img);
	put_batches(&w,
		    &(struct batch_kind){ IMAGE_REC_WATCHES, img->nwatches,
					  enc_watch, true },
		    img);
	for (uint32_t i = 0; i < img->ndiags; i++)
		put_record(&w, IMAGE_REC_DIAG, IMAGE_MAX_DIAG_PAYLOAD, enc_diag,
			   img, i);
	/* The checksum covers every byte before the END record's header. */
	flush(&w);
	uint32_t crc = w.crc;
	w.counting = true;
	w.counted = 0;
	enc_end(&w, img, crc);
	w.counting = false;
	put_record_header(&w, IMAGE_REC_END, w.counted);
	enc_end(&w, img, crc);
	flush(&w);
	ret = w.err;
	free(w.buf);
	return ret;
}

/* ---- atomic file -------------------------------------------------------- */

/*
 * Create a new temporary file ".NAME.tmp-XXXXXXXXXXXX" in the directory
 * dirfd, O_EXCL and O_NOFOLLOW so that nothing already there is reused or
 * followed.  Fills tmp (tmp_len bytes, the name relative to dirfd).
 * Returns the fd or -errno.
 */
static int create_temp_at(int dirfd, const char *name, char *tmp,
			  size_t tmp_len)
{
	for (int i = 0; i < TMP_NAME_TRIES; i++) {
		uint64_t r;

		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			r = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^
			    ((uint64_t)i << 40);
		}
		int n = snprintf(tmp, tmp_len, ".%s.tmp-%012llx", name,
				 (unsigned long long)(r & 0xffffffffffffull));
		if (n < 0 || (size_t)n >= tmp_len)
			return -ENAMETOOLONG;
		int fd = OWN_FD(openat(dirfd, tmp,
				       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
					       O_NOFOLLOW,
				       0600));
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

int image_write_at(const struct image *img, int dirfd, const char *name)
{
	char tmp[NAME_MAX + 1];
	int ret;

	if (!*name || strchr(name, '/'))
		return -EINVAL;
	int fd = create_temp_at(dirfd, name, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	ret = image_write_fd(img, fd);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0 && errno != EINTR)
		ret = -errno;
	if (ret < 0)
		goto err_unlink_tmp;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		ret = -errno;
		goto err_unlink_tmp;
	}
	/* Some file systems cannot fsync a directory: nothing more to do. */
	if (fsync(dirfd) < 0 && errno != EINVAL)
		return -errno;
	return 0;

err_unlink_tmp:
	unlinkat(dirfd, tmp, 0);
	return ret;
}

int image_write_file(const struct image *img, const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;

	if (!*base)
		return *path ? -EISDIR : -ENOENT;
	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	int dirfd = OWN_FD(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (dirfd < 0)
		return -errno;
	int ret = image_write_at(img, dirfd, base);
	close(dirfd);
	return ret;
}
