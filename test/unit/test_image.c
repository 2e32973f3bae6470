// SPDX-License-Identifier: MIT
/*
 * The image format: CRC-32C and varints against published values, the
 * writer and reader against each other field by field, every fixture of
 * test/fixtures (in sync with fixtures.h, good ones read, broken ones
 * rejected at the offset where the fault was placed), every limit at its
 * edge and one past, truncation at every byte, every single bit flip,
 * atomic and interrupted writes, streaming a million watches through a
 * pipe, the bytes-per-watch budget, and memory that only grows with what is
 * present.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixtures/fixtures.h"
#include "image_io.h"
#include "show.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

static char err[512];

/* ---- helpers ------------------------------------------------------------ */

static int read_buf(const struct fx_buf *b, struct image *img)
{
	return image_read_mem(b->p, b->len, img, err, sizeof(err));
}

/* The image must be rejected at offset off with a message containing msg. */
static void expect_reject(const struct fx_buf *b, uint64_t off,
			  const char *msg)
{
	struct image img;
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "offset %" PRIu64 ": ", off);
	if (read_buf(b, &img) != -1 || strncmp(err, prefix, strlen(prefix)) ||
	    !strstr(err, msg))
		fail_msg("expected \"%s...%s\", got \"%s\"", prefix, msg, err);
	assert_null(strchr(err, '\n'));
	/* left empty */
	assert_int_equal(img.ntargets + img.nwatches + img.nfds +
				 img.nmodules + img.nbacktraces + img.ndiags,
			 0);
	assert_null(img.targets);
	assert_null(img.proc.exe);
}

static void expect_good(const struct fx_buf *b, struct image *img)
{
	if (read_buf(b, img) != 0)
		fail_msg("expected a good image, got \"%s\"", err);
}

static struct fx_buf model_bytes(const struct image *img)
{
	return fx_write_model(img);
}

static void assert_str_same(const char *a, const char *b)
{
	/* absent and empty are the same in the format */
	if (!a || !*a || !b || !*b) {
		assert_true((!a || !*a) && (!b || !*b));
		return;
	}
	assert_string_equal(a, b);
}

/* Every field of two models, as the format keeps them. */
static void assert_same_model(const struct image *a, const struct image *b)
{
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->proc.pid, b->proc.pid);
	assert_int_equal(a->proc.uid, b->proc.uid);
	assert_true(a->proc.time_sec == b->proc.time_sec);
	assert_int_equal(a->proc.time_nsec, b->proc.time_nsec);
	assert_int_equal(a->proc.nofile_limit, b->proc.nofile_limit);
	assert_str_same(a->proc.exe, b->proc.exe);
	assert_str_same(a->proc.comm, b->proc.comm);
	assert_str_same(a->proc.version, b->proc.version);
	assert_int_equal(a->nmodules, b->nmodules);
	for (uint32_t i = 0; i < a->nmodules; i++) {
		assert_int_equal(b->modules[i].id, i + 1);
		assert_str_same(a->modules[i].path, b->modules[i].path);
		assert_true(a->modules[i].base == b->modules[i].base);
	}
	assert_int_equal(a->nbacktraces, b->nbacktraces);
	for (uint32_t i = 0; i < a->nbacktraces; i++) {
		const struct image_backtrace *x = &a->backtraces[i],
					     *y = &b->backtraces[i];
		assert_int_equal(y->id, i + 1);
		assert_int_equal(x->nframes, y->nframes);
		for (uint32_t f = 0; f < x->nframes; f++) {
			assert_int_equal(x->frames[f].module,
					 y->frames[f].module);
			assert_true(x->frames[f].offset == y->frames[f].offset);
			assert_str_same(x->frames[f].symbol,
					y->frames[f].symbol);
			assert_true(x->frames[f].symbol_offset ==
				    y->frames[f].symbol_offset);
		}
	}
	assert_int_equal(a->ntargets, b->ntargets);
	for (uint32_t i = 0; i < a->ntargets; i++) {
		const struct image_target *x = &a->targets[i], *y = &b->targets[i];
		assert_int_equal(y->id, i + 1);
		assert_int_equal(x->kind, y->kind);
		assert_int_equal(x->origin, y->origin);
		assert_int_equal(x->file_flags, y->file_flags);
		assert_str_same(x->path, y->path);
		switch (x->kind) {
		case IMAGE_KIND_SOCKET:
			assert_int_equal(x->u.sock.domain, y->u.sock.domain);
			assert_int_equal(x->u.sock.type, y->u.sock.type);
			assert_int_equal(x->u.sock.protocol, y->u.sock.protocol);
			assert_int_equal(x->u.sock.flags, y->u.sock.flags);
			assert_int_equal(x->u.sock.backlog, y->u.sock.backlog);
			assert_int_equal(x->u.sock.addr_len, y->u.sock.addr_len);
			if (x->u.sock.addr_len)
				assert_memory_equal(x->u.sock.addrp,
						    y->u.sock.addrp,
						    x->u.sock.addr_len);
			assert_int_equal(x->u.sock.peer_len, y->u.sock.peer_len);
			if (x->u.sock.peer_len)
				assert_memory_equal(x->u.sock.peerp,
						    y->u.sock.peerp,
						    x->u.sock.peer_len);
			assert_int_equal(x->u.sock.pair, y->u.sock.pair);
			assert_int_equal(x->u.sock.pending, y->u.sock.pending);
			break;
		case IMAGE_KIND_PIPE:
			assert_int_equal(x->u.pipe.write_end,
					 y->u.pipe.write_end);
			assert_true(x->u.pipe.ino == y->u.pipe.ino);
			assert_int_equal(x->u.pipe.peer, y->u.pipe.peer);
			assert_int_equal(x->u.pipe.pending, y->u.pipe.pending);
			break;
		case IMAGE_KIND_EVENTFD:
			assert_true(x->u.efd.count == y->u.efd.count);
			assert_int_equal(x->u.efd.semaphore,
					 y->u.efd.semaphore);
			break;
		case IMAGE_KIND_TIMERFD:
			assert_memory_equal(&x->u.tfd, &y->u.tfd,
					    sizeof(x->u.tfd));
			break;
		case IMAGE_KIND_SIGNALFD:
			assert_true(x->u.sfd.mask == y->u.sfd.mask);
			break;
		case IMAGE_KIND_EPOLL:
			assert_int_equal(x->u.ep.nwatches, y->u.ep.nwatches);
			break;
		}
	}
	assert_int_equal(a->nfds, b->nfds);
	for (uint32_t i = 0; i < a->nfds; i++)
		assert_memory_equal(&a->fds[i], &b->fds[i], sizeof(a->fds[i]));
	assert_int_equal(a->nwatches, b->nwatches);
	for (uint32_t i = 0; i < a->nwatches; i++)
		assert_memory_equal(&a->watches[i], &b->watches[i],
				    sizeof(a->watches[i]));
	assert_int_equal(a->ndiags, b->ndiags);
	for (uint32_t i = 0; i < a->ndiags; i++) {
		const struct image_diag *x = &a->diags[i], *y = &b->diags[i];
		assert_int_equal(x->severity, y->severity);
		assert_int_equal(x->code, y->code);
		assert_int_equal(x->epfd, y->epfd);
		assert_int_equal(x->tfd, y->tfd);
		assert_str_same(x->path, y->path);
		assert_str_same(x->message, y->message);
		assert_int_equal(x->bt, y->bt);
	}
}

static const char *top_dir(void)
{
	const char *top = getenv("TOP");
	return top && *top ? top : ".";
}

static bool load_file(const char *path, struct fx_buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char chunk[4096];
	ssize_t n;

	memset(b, 0, sizeof(*b));
	if (fd < 0)
		return false;
	fx_put(b, NULL, 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		fx_put(b, chunk, (size_t)n);
	close(fd);
	return n == 0;
}

/* ---- primitives --------------------------------------------------------- */

/* Bit by bit, from the definition: reflected polynomial 0x82f63b78. */
static uint32_t crc32c_reference(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static void test_crc32c(void **state)
{
	uint8_t zeros[32] = { 0 }, ones[32], buf[1000];

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 B.4 and the usual check value */
	assert_int_equal(image_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(image_crc32c(0, zeros, 32), 0x8a9136aau);
	assert_int_equal(image_crc32c(0, ones, 32), 0x62a8ab43u);
	assert_int_equal(image_crc32c(0, NULL, 0), 0);
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (size_t len = 0; len < sizeof(buf); len += 37) {
		uint32_t whole = image_crc32c(0, buf, len);
		assert_int_equal(whole, crc32c_reference(0, buf, len));
		/* continuing from a split point gives the same */
		size_t cut = len / 3;
		assert_int_equal(image_crc32c(image_crc32c(0, buf, cut),
					      buf + cut, len - cut),
				 whole);
	}
}

static void test_leb128(void **state)
{
	static const uint64_t values[] = {
		0, 1, 127, 128, 16383, 16384, (1ull << 21) - 1, 1ull << 21,
		UINT32_MAX, (1ull << 63) - 1, 1ull << 63, UINT64_MAX,
	};
	static const unsigned sizes[] = { 1, 1, 1, 2, 2, 3, 3, 4, 5, 9, 10, 10 };
	uint8_t b[LEB128_MAX_LEN + 2];
	uint64_t v;
	unsigned used;

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		assert_int_equal(leb128_size(values[i]), sizes[i]);
		assert_int_equal(leb128_put(b, values[i]), sizes[i]);
		assert_int_equal(leb128_get(b, sizes[i], &v, &used), LEB128_OK);
		assert_true(v == values[i]);
		assert_int_equal(used, sizes[i]);
		assert_int_equal(leb128_get(b, sizes[i] - 1, &v, &used),
				 LEB128_TRUNCATED);
	}
	/* 0x80 0x00: zero in two bytes */
	memcpy(b, "\x80\x00", 2);
	assert_int_equal(leb128_get(b, 2, &v, &used), LEB128_OVERLONG);
	/* ten bytes with more than bit 63 */
	memset(b, 0xff, 9);
	b[9] = 0x02;
	assert_int_equal(leb128_get(b, 10, &v, &used), LEB128_OVERFLOW);
	b[9] = 0x81; /* and a continuation bit */
	assert_int_equal(leb128_get(b, 11, &v, &used), LEB128_OVERFLOW);
	/* zigzag: 0, -1, 1, -2 ... and both extremes */
	assert_true(zigzag_encode(0) == 0);
	assert_true(zigzag_encode((uint64_t)-1) == 1);
	assert_true(zigzag_encode(1) == 2);
	assert_true(zigzag_encode((uint64_t)INT64_MIN) == UINT64_MAX);
	assert_true(zigzag_encode((uint64_t)INT64_MAX) == UINT64_MAX - 1);
	for (int64_t d = -1000; d <= 1000; d += 7)
		assert_true(zigzag_decode(zigzag_encode((uint64_t)d)) ==
			    (uint64_t)d);
}

/* ---- round trip --------------------------------------------------------- */

static void test_round_trip_full(void **state)
{
	struct image model, back, again;
	struct fx_buf b1, b2;

	(void)state;
	fx_model_full(&model);
	b1 = model_bytes(&model);
	expect_good(&b1, &back);
	assert_same_model(&model, &back);
	/* nothing lost: writing what was read gives the same bytes */
	b2 = model_bytes(&back);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.p, b2.p, b1.len);
	/* the same through a file and through an fd */
	char path[] = "/tmp/epollcr-test-image-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(image_write_file(&model, path), 0);
	assert_int_equal(image_read_file(path, &again, err, sizeof(err)), 0);
	assert_same_model(&model, &again);
	unlink(path);
	image_free(&again);
	image_free(&back);
	image_free(&model);
	fx_buf_free(&b1);
	fx_buf_free(&b2);
}

/* What show_image_text (no addr2line) or show_image_json print for img. */
static char *show_to_string(const struct image *img, bool json)
{
	int fd = memfd_create("show", MFD_CLOEXEC);
	off_t len;
	char *out;

	assert_true(fd >= 0);
	assert_int_equal(json ? show_image_json(img, fd)
			      : show_image_text(img, fd, SHOW_NO_ADDR2LINE),
			 0);
	len = lseek(fd, 0, SEEK_END);
	out = malloc((size_t)len + 1);
	assert_non_null(out);
	assert_int_equal(pread(fd, out, (size_t)len, 0), len);
	out[len] = '\0';
	close(fd);
	return out;
}

/*
 * A socketpair's two ends name each other in the model, but only the later
 * end stores the other's id; the reader fills in the earlier end.
 */
static void test_round_trip_socketpair(void **state)
{
	struct image model, back;
	struct fx_buf b1, b2;
	uint8_t enc[2 * LEB128_MAX_LEN];
	size_t n;

	(void)state;
	fx_model_pair(&model);
	b1 = model_bytes(&model);
	expect_good(&b1, &back);
	assert_same_model(&model, &back);
	assert_int_equal(back.targets[3].u.sock.pair, 5);
	assert_int_equal(back.targets[4].u.sock.pair, 4);
	assert_int_equal(back.targets[3].u.sock.pending, 5);
	assert_int_equal(back.targets[4].u.sock.pending, 70000);
	assert_int_equal(back.targets[5].u.sock.pair, IMAGE_NONE);
	assert_true(back.targets[5].u.sock.flags & IMAGE_SOCK_PAIR);
	b2 = model_bytes(&back);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.p, b2.p, b1.len);
	/* the later end's "pair 4, pending 70000" is in the file */
	n = leb128_put(enc, 4);
	n += leb128_put(enc + n, 70000);
	assert_non_null(memmem(b1.p, b1.len, enc, n));
	/* `epollcr show` names the other end and the queue */
	char *text = show_to_string(&back, false);
	char *json = show_to_string(&back, true);

	if (!strstr(text, "socket AF_UNIX SOCK_STREAM protocol 0, address (unnamed), peer (unnamed), connected, socketpair, other end target 5 (fd 7 (cloexec), fd 8), 5 bytes pending; fd 6 (cloexec)"))
		fail_msg("text lacks the pair:\n%s", text);
	if (!strstr(json, "\"socketpair\": true, \"pair\": 5, \"pair_fd\": 7, \"pending\": 5"))
		fail_msg("JSON lacks the pair:\n%s", json);
	free(text);
	free(json);
	fx_buf_free(&b1);
	fx_buf_free(&b2);
	image_free(&back);
	image_free(&model);
}

/*
 * A chain of 3 sets, then (with extra) an eventfd nothing names, then two
 * pipe ends no fd holds (watched by set 1, each the other's peer) and the
 * two ends of a socketpair at fds 30 and 31 (each the other's pair).
 */
static void drop_model(struct image *img, bool extra)
{
	const uint32_t base = extra ? 5 : 4;
	struct image_target *t;

	fx_model_chain(img, 3);
	if (extra) {
		t = image_add_target(img, IMAGE_KIND_EVENTFD);
		t->path = fx_strdup("anon_inode:[eventfd]");
	}
	for (uint32_t e = 0; e < 2; e++) {
		t = image_add_target(img, IMAGE_KIND_PIPE);
		t->path = fx_strdup("pipe:[77]");
		t->u.pipe.ino = 77;
		t->u.pipe.write_end = e;
		t->u.pipe.peer = base + 1 - e;
		struct image_watch *w = image_add_watch(img);
		*w = (struct image_watch){ .set = 1, .tfd = 20 + (int32_t)e,
					   .events = 0x19, .target = t->id,
					   .open_fd = -1,
					   .flags = IMAGE_W_KERNEL | IMAGE_W_STALE };
	}
	for (uint32_t e = 0; e < 2; e++) {
		t = fx_unix_target(img, SOCK_STREAM,
				   IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED);
		t->u.sock.pair = base + 3 - e;
		struct image_fd *f = image_add_fd(img);
		f->fd = 30 + (int32_t)e;
		f->target = t->id;
	}
	img->targets[0].u.ep.nwatches = 3;
}

/*
 * image_drop_targets(): dropping a target nothing names gives the image
 * built without it, every reference renumbered, and the writer and the
 * reader agree on it.
 */
static void test_drop_targets(void **state)
{
	struct image with, without, back;
	struct fx_buf b;
	uint8_t drop[10] = { 0 };

	(void)state;
	drop_model(&with, true);
	drop_model(&without, false);
	assert_int_equal(with.ntargets, 8);
	drop[4] = 1;
	assert_int_equal(image_drop_targets(&with, drop), 0);
	assert_int_equal(with.ntargets, 7);
	assert_same_model(&without, &with);
	assert_int_equal(with.targets[3].u.pipe.peer, 5);
	assert_int_equal(with.targets[4].u.pipe.peer, 4);
	assert_int_equal(with.targets[5].u.sock.pair, 7);
	assert_int_equal(with.targets[6].u.sock.pair, 6);
	b = model_bytes(&with);
	expect_good(&b, &back);
	assert_same_model(&without, &back);
	fx_buf_free(&b);
	image_free(&back);
	image_free(&with);
	image_free(&without);
}

/*
 * A unix socket file's mode (issue 12, item 5) goes through the format:
 * the header flag 0x8 and the field only when a socket has a mode (other
 * images keep their bytes), the flag not kept in the model, a mode that
 * is not a socket file's refused by the writer.
 */
static void test_socket_file_mode(void **state)
{
	struct image img, back;
	struct image_target *t = NULL;
	struct fx_buf b;
	(void)state;

	fx_model_small(&img);
	for (uint32_t i = 0; i < img.ntargets; i++)
		if (img.targets[i].kind == IMAGE_KIND_SOCKET)
			t = &img.targets[i];
	assert_non_null(t);
	b = model_bytes(&img);
	assert_int_equal(b.p[16] & IMAGE_F_SOCK_MODE, 0);
	fx_buf_free(&b);
	t->u.sock.file_mode = 0140600;
	b = model_bytes(&img);
	assert_int_equal(b.p[16] & IMAGE_F_SOCK_MODE, IMAGE_F_SOCK_MODE);
	assert_int_equal(read_buf(&b, &back), 0);
	assert_int_equal(back.flags, img.flags);
	assert_int_equal(back.targets[t->id - 1].u.sock.file_mode, 0140600);
	image_free(&back);
	fx_buf_free(&b);
	assert_true(image_socket_mode_valid(0));
	assert_false(image_socket_mode_valid(0100600)); /* a regular file */
	assert_false(image_socket_mode_valid(0150600)); /* stray type bits */
	t->u.sock.file_mode = 0100600;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(image_write_fd(&img, fd), -EINVAL);
	close(fd);
	image_free(&img);
}

/* The writer refuses socketpair ends that do not name each other right. */
static void test_writer_socketpair(void **state)
{
	struct image img;

	fx_model_pair(&img);
	struct {
		uint32_t *field;
		uint32_t bad;
	} cases[] = {
		{ &img.targets[4].u.sock.pair, 6 },	  /* 4 names 5 */
		{ &img.targets[3].u.sock.pair, 2 },	  /* not a socket */
		{ &img.targets[3].u.sock.pair, 4 },	  /* itself */
		{ &img.targets[3].u.sock.pair, 99 },	  /* no such target */
		{ &img.targets[4].u.sock.flags, IMAGE_SOCK_CONNECTED },
		{ &img.targets[3].u.sock.flags, IMAGE_SOCK_CONNECTED },
		{ &img.targets[4].u.sock.type, SOCK_DGRAM },
		{ &img.targets[4].u.sock.protocol, 1 },
	};
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t saved = *cases[i].field;

		*cases[i].field = cases[i].bad;
		fd = memfd_create("t", MFD_CLOEXEC);
		if (image_write_fd(&img, fd) != -EINVAL)
			fail_msg("bad socketpair model %zu was written", i);
		assert_int_equal(lseek(fd, 0, SEEK_END), 0);
		close(fd);
		*cases[i].field = saved;
	}
	fd = memfd_create("t", MFD_CLOEXEC);
	assert_int_equal(image_write_fd(&img, fd), 0);
	close(fd);
	image_free(&img);
}

/* ---- fixtures ----------------------------------------------------------- */

/*
 * Duplicates are found whatever the order: the reader keeps no table
 * while fds (and each set's watches) come in increasing order, and fills
 * one with what came before at the first that does not.
 */
static void test_duplicates_out_of_order(void **state)
{
	static const int64_t fds_apart[][3] = {
		{ 3, 1, 1 }, { 5, 2, 0 }, { 4, 3, 0 }, { 5, 3, 0 },
	};
	static const int64_t fds_down[][3] = {
		{ 5, 1, 1 }, { 3, 2, 0 }, { 4, 3, 0 },
	};
	struct fx_watch apart[3] = { fx_small_watches[1], fx_small_watches[0],
				     fx_small_watches[1] };
	struct fx_watch down[2] = { fx_small_watches[1], fx_small_watches[0] };
	struct fx_buf b = { 0 };
	struct image img;
	uint64_t off = 0;

	(void)state;
	/* fd 5 again after a smaller fd: found with the table */
	fx_fds(&b, &off, fds_apart, 4, 3, 0);
	expect_reject(&b, off, "fd 5 is listed twice");
	fx_buf_free(&b);
	/* decreasing, no duplicate: reads */
	fx_fds(&b, &off, fds_down, 3, 0, 0);
	expect_good(&b, &img);
	assert_int_equal(img.nfds, 3);
	assert_int_equal(img.fds[0].fd, 5);
	image_free(&img);
	fx_buf_free(&b);
	/* tfd 5 again after tfd 4 in the set */
	fx_watches(&b, &off, 1, apart, 3, 2, 0);
	expect_reject(&b, off, "watch of set 1, tfd 5, target 3 is listed twice");
	fx_buf_free(&b);
	fx_watches(&b, &off, 1, down, 2, 0, 0);
	expect_good(&b, &img);
	assert_int_equal(img.nwatches, 2);
	assert_int_equal(img.watches[0].tfd, 5);
	image_free(&img);
	fx_buf_free(&b);
}

static void test_fixtures(void **state)
{
	unsigned good = 0, bad = 0;

	(void)state;
	for (size_t i = 0; i < FX_NCASES; i++) {
		const struct fx_case *c = &fx_cases[i];
		struct fx_buf built = { 0 }, file;
		uint64_t off = 0;
		char path[4096];

		c->build(&built, &off);
		snprintf(path, sizeof(path), "%s/test/fixtures/%s.img",
			 top_dir(), c->name);
		if (!load_file(path, &file))
			fail_msg("%s: cannot read (run gen_fixtures)", path);
		if (file.len != built.len ||
		    (file.len && memcmp(file.p, built.p, file.len)))
			fail_msg("%s differs from what fixtures.h builds: regenerate it with gen_fixtures",
				 path);
		if (c->message) {
			expect_reject(&file, off, c->message);
			bad++;
		} else {
			struct image img;
			expect_good(&file, &img);
			assert_true(img.proc.pid > 0);
			image_free(&img);
			good++;
		}
		/* the file reader agrees with the memory reader */
		struct image img;
		char err2[512];
		int ret = image_read_file(path, &img, err2, sizeof(err2));
		assert_int_equal(ret, c->message ? -1 : 0);
		if (c->message)
			assert_string_equal(err, err2);
		image_free(&img);
		fx_buf_free(&built);
		fx_buf_free(&file);
	}
	print_message("fixtures: %u good, %u broken, all as expected\n", good,
		      bad);
}

/* The good fixtures say what they hold. */
static void test_fixture_contents(void **state)
{
	struct image img;
	struct fx_buf b = { 0 };
	uint64_t off;

	(void)state;
	fx_good_nest5(&b, &off);
	expect_good(&b, &img);
	assert_int_equal(img.ntargets, 5);
	assert_int_equal(img.nwatches, 4);
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(img.watches[i].set, i + 1);
		assert_int_equal(img.watches[i].target, i + 2);
	}
	image_free(&img);
	fx_buf_free(&b);
	fx_good_small(&b, &off);
	expect_good(&b, &img);
	assert_int_equal(img.watches[1].events, 0x80000019u);
	assert_true(img.watches[1].data == 0x7f1234567890ull);
	assert_string_equal(img.targets[2].path, "socket:[1234]");
	assert_string_equal(img.targets[1].path, "anon_inode:[eventfd]");
	assert_string_equal(img.diags[0].message, "tfd 9 holds another file");
	image_free(&img);
	fx_buf_free(&b);
}

/* ---- limits ------------------------------------------------------------- */

static char *filled(size_t n, char c)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Payload length of the first record of type in b. */
static uint32_t payload_len_of(const struct fx_buf *b, uint32_t type,
			       struct fx_image *fi, unsigned *index)
{
	fx_split(b, fi);
	for (unsigned i = 0; i < fi->n; i++)
		if (fi->recs[i].type == type) {
			*index = i;
			return (uint32_t)fi->recs[i].payload.len;
		}
	fail_msg("no record of type %u", type);
	return 0;
}

/*
 * The image of img has a record of type at exactly max_len bytes, reads
 * back, and is rejected when that record's payload_len says max_len + 1.
 */
static void check_payload_edge(const struct image *img, uint32_t type,
			       uint32_t max_len, const char *name)
{
	struct fx_buf b = model_bytes(img), bad;
	struct fx_image fi;
	struct image back;
	unsigned i = 0;
	char msg[128];

	assert_int_equal(payload_len_of(&b, type, &fi, &i), max_len);
	expect_good(&b, &back);
	assert_same_model(img, &back);
	image_free(&back);
	fi.recs[i].len_field = max_len + 1;
	bad = fx_join(&fi);
	snprintf(msg, sizeof(msg), "%s record payload_len %u above its maximum %u",
		 name, max_len + 1, max_len);
	expect_reject(&bad, fx_rec_off(&fi, i) + 4, msg);
	fx_image_free(&fi);
	fx_buf_free(&b);
	fx_buf_free(&bad);
}

static void test_payload_limits(void **state)
{
	struct image img;

	(void)state;
	/* PROCESS with every field at its longest encoding */
	image_init(&img);
	img.proc.pid = INT32_MAX;
	img.proc.uid = UINT32_MAX;
	img.proc.time_sec = UINT64_MAX;
	img.proc.time_nsec = 999999999;
	img.proc.nofile_limit = UINT32_MAX;
	img.proc.exe = filled(IMAGE_MAX_STRING, 'e');
	img.proc.comm = filled(IMAGE_MAX_STRING, 'c');
	img.proc.version = filled(IMAGE_MAX_STRING, 'v');
	check_payload_edge(&img, IMAGE_REC_PROCESS, IMAGE_MAX_PROCESS_PAYLOAD,
			   "PROCESS");
	/* MODULE; BACKTRACE of 64 frames in module 200; DIAG */
	for (int i = 0; i < 200; i++) {
		struct image_module *m = image_add_module(&img);
		m->path = filled(IMAGE_MAX_STRING, 'm');
		m->base = UINT64_MAX;
	}
	struct image_backtrace *bt = image_add_backtrace(&img);
	bt->nframes = IMAGE_MAX_FRAMES;
	bt->frames = calloc(IMAGE_MAX_FRAMES, sizeof(*bt->frames));
	for (int f = 0; f < IMAGE_MAX_FRAMES; f++)
		bt->frames[f] = (struct image_frame){
			200, UINT64_MAX, filled(IMAGE_MAX_STRING, 's'),
			UINT64_MAX
		};
	char *path = filled(IMAGE_MAX_STRING, 'p');
	char *msg = filled(IMAGE_MAX_STRING, 'g');
	/* bt id 1 takes 1 byte: make the id need 3 (at most 2^20) */
	for (uint32_t i = 1; i < (1u << 14) + 1; i++) {
		struct image_backtrace *more = image_add_backtrace(&img);
		(void)more;
	}
	image_add_diag(&img, IMAGE_SEV_ERROR, IMAGE_DIAG_CODE_MAX, INT32_MAX,
		       INT32_MAX, path, 1u << 14, "%s", msg);
	check_payload_edge(&img, IMAGE_REC_MODULE, IMAGE_MAX_MODULE_PAYLOAD,
			   "MODULE");
	check_payload_edge(&img, IMAGE_REC_BACKTRACE,
			   IMAGE_MAX_BACKTRACE_PAYLOAD, "BACKTRACE");
	free(path);
	free(msg);
	image_free(&img);
	/*
	 * DIAG at its maximum needs a bt id of 3 bytes: 2^14 backtraces
	 * (an empty one takes 1 byte) make id 16385 valid.
	 */
	image_init(&img);
	img.proc.pid = 1;
	for (uint32_t i = 0; i < (1u << 14) + 1; i++)
		image_add_backtrace(&img);
	path = filled(IMAGE_MAX_STRING, 'p');
	msg = filled(IMAGE_MAX_STRING, 'g');
	image_add_diag(&img, IMAGE_SEV_ERROR, IMAGE_DIAG_CODE_MAX, INT32_MAX,
		       INT32_MAX, path, (1u << 14) + 1, "%s", msg);
	free(path);
	free(msg);
	check_payload_edge(&img, IMAGE_REC_DIAG, IMAGE_MAX_DIAG_PAYLOAD,
			   "DIAG");
	image_free(&img);
	/*
	 * END at 25 bytes needs 2^24 targets; one past is checked from the
	 * header alone.
	 */
	struct fx_image fi;
	struct fx_buf b = { 0 }, end = { 0 };
	uint64_t off;
	uint8_t h[8];

	fx_good_small(&b, &off);
	fx_split(&b, &fi);
	fx_buf_free(&b);
	fi.has_end = false;
	b = fx_join(&fi);
	off = b.len;
	fx_u32le(h, IMAGE_REC_END);
	fx_u32le(h + 4, IMAGE_END_PAYLOAD_MAX + 1);
	fx_put(&b, h, sizeof(h));
	fx_put(&end, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80", 13);
	fx_put(&b, end.p, end.len);
	fx_put(&b, end.p, end.len);
	expect_reject(&b, off + 4,
		      "END record payload_len 26 above its maximum 25");
	fx_buf_free(&b);
	fx_buf_free(&end);
	fx_image_free(&fi);
}

/* A TARGET record of exactly len bytes of OTHER targets (len >= 64). */
static struct fx_buf targets_of_len(uint32_t len, uint32_t *ntargets)
{
	struct fx_buf p = { 0 }, body = { 0 };
	uint32_t n = 0;

	/* entries of kind, origin, file_flags, path(len+2, bytes) */
	while (true) {
		size_t left = len - leb128_size(n + 1) - body.len;
		/* the last entry takes 5 bytes and at most a full string */
		if (left <= 5 + IMAGE_MAX_STRING)
			break;
		char *s = filled(1000, 'x');
		fx_u(&body, 0);
		fx_u(&body, 0);
		fx_u(&body, 0);
		fx_u(&body, 1000 + 2);
		fx_put(&body, s, 1000);
		free(s);
		n++;
	}
	/* the last one takes exactly what is left */
	size_t left = len - leb128_size(n + 1) - body.len;
	size_t slen = left - 3 - 2;
	char *s = filled(slen, 'y');
	fx_u(&body, 0);
	fx_u(&body, 0);
	fx_u(&body, 0);
	fx_u(&body, slen + 2);
	fx_put(&body, s, slen);
	free(s);
	n++;
	fx_u(&p, n);
	fx_put(&p, body.p, body.len);
	fx_buf_free(&body);
	assert_int_equal(p.len, len);
	*ntargets = n;
	return p;
}

static void test_batch_limit(void **state)
{
	struct image img;
	struct fx_image fi;
	struct fx_buf b, p;
	uint32_t n;

	(void)state;
	image_init(&img);
	img.proc.pid = 1;
	b = model_bytes(&img);
	fx_split(&b, &fi);
	fx_buf_free(&b);
	p = targets_of_len(IMAGE_MAX_BATCH_PAYLOAD, &n);
	fx_insert(&fi, 1, IMAGE_REC_TARGET, &p);
	fi.end_counts[2] = n;
	b = fx_join(&fi);
	expect_good(&b, &img);
	assert_int_equal(img.ntargets, n);
	image_free(&img);
	fx_buf_free(&b);
	fi.recs[1].len_field = IMAGE_MAX_BATCH_PAYLOAD + 1;
	b = fx_join(&fi);
	expect_reject(&b, fx_rec_off(&fi, 1) + 4,
		      "TARGET record payload_len 65537 above its maximum 65536");
	fx_buf_free(&b);
	fx_image_free(&fi);
}

/* The writer cuts batches at the limit and the reader takes them. */
static void test_writer_cuts_batches(void **state)
{
	struct image img, back;
	struct fx_image fi;
	struct fx_buf b;
	unsigned nwatch_recs = 0, ntarget_recs = 0;

	(void)state;
	image_init(&img);
	img.proc.pid = 1;
	for (int i = 0; i < 3000; i++) {
		struct image_target *t = image_add_target(&img, IMAGE_KIND_OTHER);
		t->path = filled(100, 'a' + i % 26);
	}
	struct image_target *set = image_add_target(&img, IMAGE_KIND_EPOLL);
	set->u.ep.nwatches = 20000;
	for (int i = 0; i < 20000; i++) {
		struct image_watch *w = image_add_watch(&img);
		w->set = set->id;
		w->tfd = i % 19000;
		w->target = 1 + (uint32_t)(i % 3000);
		w->events = EPOLLIN | EPOLLERR | EPOLLHUP;
		w->data = 0x7f0000000000ull + (uint64_t)rand() * 16;
	}
	b = model_bytes(&img);
	fx_split(&b, &fi);
	for (unsigned i = 0; i < fi.n; i++) {
		if (fi.recs[i].type != IMAGE_REC_TARGET &&
		    fi.recs[i].type != IMAGE_REC_WATCHES)
			continue;
		assert_true(fi.recs[i].payload.len <= IMAGE_MAX_BATCH_PAYLOAD);
		if (fi.recs[i].type == IMAGE_REC_TARGET)
			ntarget_recs++;
		else
			nwatch_recs++;
	}
	assert_true(ntarget_recs >= 5 && nwatch_recs >= 3);
	expect_good(&b, &back);
	assert_same_model(&img, &back);
	image_free(&back);
	image_free(&img);
	fx_image_free(&fi);
	fx_buf_free(&b);
}

static void test_string_and_frame_limits(void **state)
{
	struct image img, back;
	struct fx_buf b;

	(void)state;
	fx_model_small(&img);
	free(img.proc.exe);
	img.proc.exe = filled(IMAGE_MAX_STRING, 'x');
	b = model_bytes(&img);
	expect_good(&b, &back);
	assert_int_equal(strlen(back.proc.exe), IMAGE_MAX_STRING);
	image_free(&back);
	fx_buf_free(&b);
	/* the writer cuts longer names rather than fail a dump */
	free(img.proc.exe);
	img.proc.exe = filled(IMAGE_MAX_STRING + 100, 'x');
	b = model_bytes(&img);
	expect_good(&b, &back);
	assert_int_equal(strlen(back.proc.exe), IMAGE_MAX_STRING);
	image_free(&back);
	fx_buf_free(&b);
	/* 64 frames are fine; fixtures test 65 */
	struct image_backtrace *bt = &img.backtraces[0];
	bt->frames = realloc(bt->frames, IMAGE_MAX_FRAMES * sizeof(*bt->frames));
	for (uint32_t i = 2; i < IMAGE_MAX_FRAMES; i++)
		bt->frames[i] = (struct image_frame){ 1, i, NULL, 0 };
	bt->nframes = IMAGE_MAX_FRAMES;
	b = model_bytes(&img);
	expect_good(&b, &back);
	assert_int_equal(back.backtraces[0].nframes, IMAGE_MAX_FRAMES);
	image_free(&back);
	fx_buf_free(&b);
	/* and the writer refuses 65 */
	bt->nframes = IMAGE_MAX_FRAMES + 1;
	int fd = memfd_create("t", MFD_CLOEXEC);
	assert_int_equal(image_write_fd(&img, fd), -EINVAL);
	assert_int_equal(lseek(fd, 0, SEEK_END), 0);
	close(fd);
	bt->nframes = IMAGE_MAX_FRAMES;
	image_free(&img);
}

/* Nesting: a diamond and a wide fan are fine; 5 deep ok, 6 not. */
static void test_nesting_shapes(void **state)
{
	struct image img, back;
	struct fx_buf b;

	(void)state;
	image_init(&img);
	img.proc.pid = 1;
	/* 1 > 2, 1 > 3, 2 > 4, 3 > 4, 4 > 5: longest chain 4 */
	static const uint32_t edges[][2] = { { 1, 2 }, { 1, 3 }, { 2, 4 },
					     { 3, 4 }, { 4, 5 } };
	for (int i = 0; i < 5; i++)
		image_add_target(&img, IMAGE_KIND_EPOLL);
	for (int i = 0; i < 5; i++) {
		struct image_watch *w = image_add_watch(&img);
		w->set = edges[i][0];
		w->tfd = (int32_t)(100 + i);
		w->target = edges[i][1];
		img.targets[edges[i][0] - 1].u.ep.nwatches++;
	}
	b = model_bytes(&img);
	expect_good(&b, &back);
	image_free(&back);
	fx_buf_free(&b);
	/* 5 > 6 makes the chain 1 > 2 > 4 > 5 > 6: 5 sets, still fine */
	image_add_target(&img, IMAGE_KIND_EPOLL);
	struct image_watch *w = image_add_watch(&img);
	*w = (struct image_watch){ 5, 200, EPOLLIN, 0, 6, -1, 0, 0, 0 };
	img.targets[4].u.ep.nwatches++;
	b = model_bytes(&img);
	expect_good(&b, &back);
	image_free(&back);
	fx_buf_free(&b);
	/* 6 > 7: six sets deep */
	image_add_target(&img, IMAGE_KIND_EPOLL);
	w = image_add_watch(&img);
	*w = (struct image_watch){ 6, 201, EPOLLIN, 0, 7, -1, 0, 0, 0 };
	img.targets[5].u.ep.nwatches++;
	b = model_bytes(&img);
	assert_int_equal(read_buf(&b, &back), -1);
	assert_non_null(strstr(err, "nest 6 deep (target ids 1 > 2 > 4 > 5 > 6 > 7)"));
	fx_buf_free(&b);
	image_free(&img);
	/* a fan of 2000 sets in one: depth 2 */
	image_init(&img);
	img.proc.pid = 1;
	for (int i = 0; i < 2001; i++)
		image_add_target(&img, IMAGE_KIND_EPOLL);
	img.targets[0].u.ep.nwatches = 2000;
	for (int i = 0; i < 2000; i++) {
		w = image_add_watch(&img);
		*w = (struct image_watch){ 1, 7, EPOLLIN, 0, (uint32_t)i + 2,
					   -1, 0, 0, 0 };
	}
	b = model_bytes(&img);
	expect_good(&b, &back);
	image_free(&back);
	fx_buf_free(&b);
	image_free(&img);
}

/* ---- corruption --------------------------------------------------------- */

/* Every proper prefix of a good image fails cleanly, at or before its end. */
static void test_truncation_everywhere(void **state)
{
	void (*builds[])(struct fx_buf *, uint64_t *) = { fx_good_small,
							  fx_good_full };

	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct fx_buf b = { 0 };
		uint64_t off;

		builds[k](&b, &off);
		for (size_t len = 0; len < b.len; len++) {
			struct image img;
			uint64_t at;

			if (image_read_mem(b.p, len, &img, err, sizeof(err)) != -1)
				fail_msg("prefix of %zu bytes read as good", len);
			assert_int_equal(sscanf(err, "offset %" SCNu64 ":", &at), 1);
			assert_true(at <= len);
			assert_true(strstr(err, "ends") || strstr(err, "empty") ||
				    strstr(err, "runs past"));
			assert_int_equal(img.nwatches + img.ntargets, 0);
		}
		fx_buf_free(&b);
	}
}

/* Every single bit flip anywhere is caught (checksum or a check). */
static void test_bit_flips(void **state)
{
	struct fx_buf b = { 0 };
	uint64_t off;
	unsigned by_checksum = 0;

	(void)state;
	fx_good_full(&b, &off);
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct image img;

			b.p[i] ^= (uint8_t)(1 << bit);
			if (read_buf(&b, &img) != -1)
				fail_msg("flip of bit %d of byte %zu went unnoticed",
					 bit, i);
			by_checksum += strstr(err, "CRC-32C") != NULL;
			b.p[i] ^= (uint8_t)(1 << bit);
		}
	}
	/* most flips leave a readable image that only the checksum catches */
	assert_true(by_checksum > b.len);
	print_message("bit flips: %zu tried, all rejected, %u by the checksum\n",
		      b.len * 8, by_checksum);
	fx_buf_free(&b);
}

/* Random damage must never crash, hang or leak; what reads must show. */
static void test_random_mutations(void **state)
{
	struct fx_buf b = { 0 }, m = { 0 };
	uint64_t off;
	unsigned good = 0;
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	(void)state;
	fx_good_full(&b, &off);
	srand(12345);
	for (int round = 0; round < 20000; round++) {
		struct image img;

		m.len = 0;
		fx_put(&m, b.p, b.len);
		int nmut = 1 + rand() % 4;
		for (int k = 0; k < nmut; k++) {
			size_t at = (size_t)rand() % m.len;
			switch (rand() % 3) {
			case 0:
				m.p[at] = (uint8_t)rand();
				break;
			case 1:
				m.len = at + 1;
				break;
			default:
				m.p[at] ^= 0x80;
				break;
			}
		}
		if (image_read_mem(m.p, m.len, &img, err, sizeof(err)) == 0) {
			good++;
			assert_int_equal(show_image_text(&img, null_fd,
							 SHOW_NO_ADDR2LINE), 0);
			assert_int_equal(show_image_json(&img, null_fd), 0);
			image_free(&img);
		} else {
			assert_int_equal(strncmp(err, "offset ", 7), 0);
		}
	}
	close(null_fd);
	fx_buf_free(&b);
	fx_buf_free(&m);
	print_message("random mutations: 20000 tried, %u still valid\n", good);
}

/* A count of 2^24 targets in a tiny record allocates nothing for them. */
static void test_counts_do_not_allocate(void **state)
{
	struct image img;
	struct fx_image fi;
	struct fx_buf b, p = { 0 };

	(void)state;
	image_init(&img);
	img.proc.pid = 1;
	b = model_bytes(&img);
	fx_split(&b, &fi);
	fx_buf_free(&b);
	fx_u(&p, IMAGE_MAX_TARGETS);
	fx_u(&p, IMAGE_KIND_OTHER);
	fx_u(&p, 0);
	fx_u(&p, 0);
	fx_u(&p, 0);
	fx_insert(&fi, 1, IMAGE_REC_TARGET, &p);
	b = fx_join(&fi);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* 2^24 targets would need gigabytes: allow 64 MiB more */
		struct rlimit rl = { 0 };
		FILE *f = fopen("/proc/self/statm", "r");
		unsigned long pages = 0;
		if (f && fscanf(f, "%lu", &pages) == 1 && !UNDER_SANITIZER) {
			rl.rlim_cur = rl.rlim_max =
				pages * 4096ul + (64ul << 20);
			setrlimit(RLIMIT_AS, &rl);
		}
		int ret = read_buf(&b, &img);
		_exit(ret == -1 && strstr(err, "ends inside this varint") &&
				      strstr(err, "target kind")
			      ? 0
			      : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fx_buf_free(&b);
	/* one more than the limit is refused at the count */
	fi.recs[1].payload.len = 0;
	fx_u(&fi.recs[1].payload, IMAGE_MAX_TARGETS + 1u);
	b = fx_join(&fi);
	expect_reject(&b, fx_rec_off(&fi, 1) + 8,
		      "count: 16777217 more targets would exceed the limit of 16777216");
	fx_buf_free(&b);
	fx_image_free(&fi);
}

/* ---- RLIMIT_NOFILE ------------------------------------------------------ */

/*
 * In a child whose RLIMIT_NOFILE hard limit is 64 (soft 32: the restore
 * can raise it): fd 63 reads, 64 not, and the message names the limit
 * needed.
 */
static void test_nofile_limit(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		struct image img, back;
		struct fx_buf b;
		int bad = 0;

		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = 32;
		rl.rlim_max = 64;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(2);
		fx_model_small(&img);
		img.fds[2].fd = 63;
		b = model_bytes(&img);
		bad |= read_buf(&b, &back) != 0;
		image_free(&back);
		fx_buf_free(&b);
		img.fds[2].fd = 64;
		b = model_bytes(&img);
		bad |= read_buf(&b, &back) != -1 ||
		       !strstr(err, "fd 64 is not below this process's RLIMIT_NOFILE hard limit 64: the image cannot be restored here (it needs a limit of at least 65)");
		fx_buf_free(&b);
		img.fds[2].fd = 5;
		img.watches[1].tfd = 64;
		b = model_bytes(&img);
		bad |= read_buf(&b, &back) != -1 ||
		       !strstr(err, "watch tfd 64 is not below");
		fx_buf_free(&b);
		img.watches[1].tfd = 5;
		img.watches[1].open_fd = 64;
		b = model_bytes(&img);
		bad |= read_buf(&b, &back) != -1 ||
		       !strstr(err, "watch open_fd 64 is not below");
		fx_buf_free(&b);
		image_free(&img);
		_exit(bad);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- writer ------------------------------------------------------------- */

static unsigned count_dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void test_writer_atomic(void **state)
{
	char dir[] = "/tmp/epollcr-test-dir-XXXXXX", path[256], sub[300];
	struct image small, full, back;
	struct fx_buf a, file;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.img", dir);
	fx_model_small(&small);
	fx_model_full(&full);
	/* a first good write: exactly image_write_fd's bytes, mode 0600 */
	assert_int_equal(image_write_file(&small, path), 0);
	a = model_bytes(&small);
	assert_true(load_file(path, &file));
	assert_int_equal(file.len, a.len);
	assert_memory_equal(file.p, a.p, a.len);
	fx_buf_free(&file);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a second write fails midway (file size limit): the old file stays */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 200, 200 };
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		_exit(image_write_file(&full, path) == -EFBIG ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(load_file(path, &file));
	assert_int_equal(file.len, a.len);
	assert_memory_equal(file.p, a.p, a.len);
	fx_buf_free(&file);
	assert_int_equal(count_dir_entries(dir), 1);
	/* rename onto a directory fails: temporary file removed */
	snprintf(sub, sizeof(sub), "%s/adir", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(image_write_file(&small, sub), -EISDIR);
	assert_int_equal(count_dir_entries(dir), 2);
	assert_int_equal(count_dir_entries(sub), 0);
	rmdir(sub);
	/* an invalid model is refused and leaves nothing behind */
	full.watches[0].set = 2;
	assert_int_equal(image_write_file(&full, path), -EINVAL);
	full.watches[0].set = 1;
	assert_int_equal(count_dir_entries(dir), 1);
	/* a missing directory */
	snprintf(sub, sizeof(sub), "%s/missing/x.img", dir);
	assert_int_equal(image_write_file(&small, sub), -ENOENT);
	/* replacing works and the result reads back */
	assert_int_equal(image_write_file(&full, path), 0);
	assert_int_equal(image_read_file(path, &back, err, sizeof(err)), 0);
	assert_same_model(&full, &back);
	assert_int_equal(count_dir_entries(dir), 1);
	image_free(&back);
	unlink(path);
	rmdir(dir);
	fx_buf_free(&a);
	image_free(&small);
	image_free(&full);
}

static void test_writer_errors(void **state)
{
	struct image img;
	int fd;

	(void)state;
	fx_model_full(&img);
	fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		assert_int_equal(image_write_fd(&img, fd), -ENOSPC);
		close(fd);
	}
	assert_int_equal(image_write_fd(&img, -1), -EBADF);
	/* models the format cannot hold */
	struct {
		uint32_t *field;
		uint32_t bad;
	} cases[] = {
		{ &img.targets[1].kind, IMAGE_KIND_COUNT },
		{ &img.targets[0].u.ep.nwatches, 4 },	  /* holds 5 */
		{ &img.targets[3].u.pipe.peer, 2 },	  /* not a pipe */
		{ &img.targets[4].u.pipe.peer, IMAGE_NONE }, /* 4 names 5 */
		{ &img.watches[0].events, 0x20 },
		{ &img.watches[0].flags, 0x10 },
		{ &img.watches[0].bt_add, 3 },
		{ &img.fds[0].target, 99 },
		{ &img.diags[0].severity, 3 },
		{ &img.flags, 0x40 },
		{ &img.backtraces[0].frames[0].module, 3 },
		{ &img.targets[2].u.sock.flags, 0x100 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t saved = *cases[i].field;
		*cases[i].field = cases[i].bad;
		fd = memfd_create("t", MFD_CLOEXEC);
		if (image_write_fd(&img, fd) != -EINVAL)
			fail_msg("bad model %zu was written", i);
		assert_int_equal(lseek(fd, 0, SEEK_END), 0);
		close(fd);
		*cases[i].field = saved;
	}
	img.fds[0].fd = -2;
	fd = memfd_create("t", MFD_CLOEXEC);
	assert_int_equal(image_write_fd(&img, fd), -EINVAL);
	close(fd);
	image_free(&img);
}

/* ---- big images --------------------------------------------------------- */

/*
 * nwatches watches, each on its own eventfd target held by one fd, in one
 * set; data like heap pointers or small numbers.
 */
static void model_eventfds(struct image *img, uint32_t nwatches, bool pointers)
{
	uint64_t ptr = 0x7f3a5c000000ull;

	image_init(img);
	img->flags = IMAGE_F_COMPLETE | IMAGE_F_KERNEL_VIEW;
	img->proc.pid = 77;
	struct image_target *set = image_add_target(img, IMAGE_KIND_EPOLL);
	set->u.ep.nwatches = nwatches;
	set->file_flags = 02000002;
	set->path = fx_strdup("anon_inode:[eventpoll]");
	struct image_fd *f = image_add_fd(img);
	f->fd = 3;
	f->target = 1;
	f->fd_flags = FD_CLOEXEC;
	srand(99);
	for (uint32_t i = 0; i < nwatches; i++) {
		struct image_target *t = image_add_target(img, IMAGE_KIND_EVENTFD);
		t->origin = IMAGE_ORIGIN_KERNEL | IMAGE_ORIGIN_SHADOW;
		t->file_flags = 02004002; /* O_RDWR|O_NONBLOCK|O_CLOEXEC */
		t->path = fx_strdup("anon_inode:[eventfd]");
		f = image_add_fd(img);
		f->fd = 4 + (int32_t)i;
		f->target = t->id;
		f->fd_flags = FD_CLOEXEC;
	}
	for (uint32_t i = 0; i < nwatches; i++) {
		struct image_watch *w = image_add_watch(img);
		/* malloc'ed connection structs: 16-byte aligned, scattered */
		ptr += 16 * (1 + (uint64_t)(rand() % 4096));
		w->set = 1;
		w->tfd = 4 + (int32_t)i;
		w->events = EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLET;
		w->data = pointers ? ptr : i;
		w->target = 2 + i;
		w->open_fd = w->tfd;
		w->flags = IMAGE_W_KERNEL | IMAGE_W_SHADOW;
	}
}

static void test_bytes_per_watch(void **state)
{
	(void)state;
	for (int pointers = 0; pointers < 2; pointers++) {
		struct image img;
		struct fx_buf b;
		struct fx_image fi;
		uint64_t bytes = 0;

		model_eventfds(&img, 100000, pointers);
		b = model_bytes(&img);
		fx_split(&b, &fi);
		for (unsigned i = 0; i < fi.n; i++)
			if (fi.recs[i].type == IMAGE_REC_TARGET ||
			    fi.recs[i].type == IMAGE_REC_FD ||
			    fi.recs[i].type == IMAGE_REC_WATCHES)
				bytes += 8 + fi.recs[i].payload.len;
		double per_watch = (double)bytes / 100000.0;
		print_message("100000 eventfd watches, data %s: %" PRIu64 " bytes of targets+fds+watches = %.2f bytes per watch (file %zu bytes)\n",
			      pointers ? "pointers" : "small ints", bytes,
			      per_watch, b.len);
		assert_true(per_watch <= 40.0);
		/* it reads back where the fd numbers fit RLIMIT_NOFILE */
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct rlimit rl = { 200000, 200000 };
			struct image back;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(3); /* not allowed here: skip */
			if (read_buf(&b, &back) != 0)
				_exit(1);
			_exit(back.nwatches == 100000 &&
					      back.watches[99999].data ==
						      img.watches[99999].data
				      ? 0
				      : 1);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3);
		fx_image_free(&fi);
		fx_buf_free(&b);
		image_free(&img);
	}
}

/*
 * A million watches (1000 sets x 1000 tfds on 1000 eventfds) written by a
 * child into a pipe and read by the parent as it arrives: nothing seeks,
 * nothing needs the whole file.
 */
static void model_million(struct image *img)
{
	image_init(img);
	img->proc.pid = 5;
	for (uint32_t s = 0; s < 1000; s++) {
		struct image_target *t = image_add_target(img, IMAGE_KIND_EPOLL);
		t->u.ep.nwatches = 1000;
		struct image_fd *f = image_add_fd(img);
		f->fd = 3000 + (int32_t)s;
		f->target = t->id;
	}
	for (uint32_t e = 0; e < 1000; e++) {
		struct image_target *t = image_add_target(img, IMAGE_KIND_EVENTFD);
		struct image_fd *f = image_add_fd(img);
		f->fd = 1000 + (int32_t)e;
		f->target = t->id;
	}
	for (uint32_t s = 0; s < 1000; s++)
		for (uint32_t e = 0; e < 1000; e++) {
			struct image_watch *w = image_add_watch(img);
			w->set = s + 1;
			w->tfd = 1000 + (int32_t)e;
			w->events = EPOLLIN | EPOLLERR | EPOLLHUP;
			w->data = (uint64_t)s << 32 | e;
			w->target = 1001 + e;
			w->open_fd = w->tfd;
			w->flags = IMAGE_W_KERNEL;
		}
}

static void test_million_watches_stream(void **state)
{
	struct image img, back;
	int p[2];

	(void)state;
	model_million(&img);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(image_write_fd(&img, p[1]) == 0 ? 0 : 1);
	}
	close(p[1]);
	int ret = image_read_fd(p[0], &back, err, sizeof(err));
	close(p[0]);
	if (ret)
		fail_msg("%s", err);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(back.nwatches, 1000000);
	for (uint32_t i = 0; i < back.nwatches; i += 999)
		assert_memory_equal(&back.watches[i], &img.watches[i],
				    sizeof(img.watches[i]));
	image_free(&back);
	image_free(&img);
}

/* Short writes and EINTR: a slow pipe reader and a 1 ms interval timer. */
static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void test_writer_interrupted(void **state)
{
	struct image img;
	struct fx_buf want, got = { 0 };
	int p[2];
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval it = { { 0, 1000 }, { 0, 1000 } }, off = { 0 };

	(void)state;
	model_eventfds(&img, 100000, true);
	want = model_bytes(&img);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* read slowly, a little at a time */
		char chunk[1000];
		ssize_t n;
		close(p[1]);
		while ((n = read(p[0], chunk, sizeof(chunk))) > 0) {
			fx_put(&got, chunk, (size_t)n);
			if (got.len % 97 == 0)
				usleep(100);
		}
		_exit(got.len == want.len && !memcmp(got.p, want.p, want.len)
			      ? 0
			      : 1);
	}
	close(p[0]);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: writes return early */
	sigaction(SIGALRM, &sa, &old);
	alarms = 0;
	setitimer(ITIMER_REAL, &it, NULL);
	int ret = image_write_fd(&img, p[1]);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	close(p[1]);
	assert_int_equal(ret, 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	print_message("writer: %d signals arrived during the write\n",
		      (int)alarms);
	assert_true(alarms > 0);
	fx_buf_free(&want);
	image_free(&img);
}

/* Out of memory while reading: a clean error, nothing leaked or half-built. */
static void test_reader_out_of_memory(void **state)
{
	(void)state;
	if (UNDER_SANITIZER)
		skip();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct image img;
		struct fx_buf b;
		struct rlimit rl;
		unsigned long pages = 0;

		model_million(&img);
		b = model_bytes(&img);
		image_free(&img);
		FILE *f = fopen("/proc/self/statm", "r");
		if (!f || fscanf(f, "%lu", &pages) != 1)
			_exit(2);
		fclose(f);
		/* 16 MiB more: far less than a million watches take */
		rl.rlim_cur = rl.rlim_max = pages * 4096ul + (16ul << 20);
		setrlimit(RLIMIT_AS, &rl);
		int ret = read_buf(&b, &img);
		_exit(ret == -1 && strstr(err, "out of memory") &&
				      img.nwatches == 0 && !img.watches
			      ? 0
			      : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_reader_io_errors(void **state)
{
	struct image img;
	int fd;

	(void)state;
	assert_int_equal(image_read_file("/nonexistent/x.img", &img, err,
					 sizeof(err)),
			 -1);
	assert_string_equal(err, "offset 0: cannot open the image: No such file or directory");
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(image_read_fd(fd, &img, err, sizeof(err)), -1);
	assert_string_equal(err, "offset 0: cannot read the image: Is a directory");
	close(fd);
	/* a short error buffer is still NUL-terminated */
	char tiny[12];
	assert_int_equal(image_read_mem("", 0, &img, tiny, sizeof(tiny)), -1);
	assert_string_equal(tiny, "offset 0: e");
	/* and no buffer at all is fine */
	assert_int_equal(image_read_mem("", 0, &img, NULL, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_leb128),
		cmocka_unit_test(test_round_trip_full),
		cmocka_unit_test(test_round_trip_socketpair),
		cmocka_unit_test(test_drop_targets),
		cmocka_unit_test(test_socket_file_mode),
		cmocka_unit_test(test_writer_socketpair),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_duplicates_out_of_order),
		cmocka_unit_test(test_fixture_contents),
		cmocka_unit_test(test_payload_limits),
		cmocka_unit_test(test_batch_limit),
		cmocka_unit_test(test_writer_cuts_batches),
		cmocka_unit_test(test_string_and_frame_limits),
		cmocka_unit_test(test_nesting_shapes),
		cmocka_unit_test(test_truncation_everywhere),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_random_mutations),
		cmocka_unit_test(test_counts_do_not_allocate),
		cmocka_unit_test(test_nofile_limit),
		cmocka_unit_test(test_writer_atomic),
		cmocka_unit_test(test_writer_errors),
		cmocka_unit_test(test_bytes_per_watch),
		cmocka_unit_test(test_million_watches_stream),
		cmocka_unit_test(test_writer_interrupted),
		cmocka_unit_test(test_reader_out_of_memory),
		cmocka_unit_test(test_reader_io_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
