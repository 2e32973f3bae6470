// SPDX-License-Identifier: MIT
/*
 * Unit tests of the fdinfo parsers: fdinfo_parse_epoll() against the text
 * the kernel really prints for sets this test builds, and against
 * malformed, truncated, overflowing and random text (no crash, no read
 * outside the given length, -EINVAL where a tfd line is broken).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kind_internal.h"
#include "kview.h"

#define MAX_SEEN 64

struct seen {
	int n;
	struct fdinfo_watch w[MAX_SEEN];
	int stop_at;		/* return -EINTR at this watch, or -1 */
};

static int collect(void *ctx, const struct fdinfo_watch *w)
{
	struct seen *s = ctx;

	if (s->n == s->stop_at)
		return -EINTR;
	if (s->n < MAX_SEEN)
		s->w[s->n] = *w;
	s->n++;
	return 0;
}

static int parse(const char *text, struct seen *s, unsigned *flags)
{
	memset(s, 0, sizeof(*s));
	s->stop_at = -1;
	return fdinfo_parse_epoll(text, strlen(text), flags, collect, s);
}

static size_t read_fdinfo(int fd, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY);
	assert_true(f >= 0);
	ssize_t n = read(f, buf, len - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	close(f);
	return (size_t)n;
}

/* The facts file's own example, exactly. */
static void test_documented_example(void **state)
{
	(void)state;
	const char *text = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n"
		"tfd:        4 events:       19 data:               2a  pos:0 ino:40e sdev:10\n"
		"tfd:        7 events: 10000019 data:               2a  pos:0 ino:123f sdev:f\n"
		"tfd:        5 events: 40000000 data:         deadbeef  pos:0 ino:40e sdev:10\n";
	struct seen s;
	unsigned flags = 0;

	assert_int_equal(parse(text, &s, &flags), 0);
	assert_int_equal(flags, 02000002);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.w[0].tfd, 4);
	assert_int_equal(s.w[0].events, 0x19);
	assert_int_equal(s.w[0].data, 0x2a);
	assert_int_equal(s.w[0].ino, 0x40e);
	assert_int_equal(s.w[0].sdev, 0x10);
	assert_int_equal(s.w[1].tfd, 7);
	assert_int_equal(s.w[1].events, 0x10000019);
	assert_int_equal(s.w[1].ino, 0x123f);
	assert_int_equal(s.w[1].sdev, 0xf);
	assert_int_equal(s.w[2].events, 0x40000000);
	assert_int_equal(s.w[2].data, 0xdeadbeef);
}

/* What the kernel prints for a set built here parses back to what we did. */
static void test_real_kernel_text(void **state)
{
	(void)state;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int e1 = eventfd(0, 0), e2 = eventfd(0, 0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET,
				  .data.u64 = 0xffffffffffffffffull };
	char buf[8192];
	struct seen s;
	unsigned flags = 0;

	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, e1, &ev), 0);
	ev.events = EPOLLOUT;
	ev.data.u64 = 0;
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, e2, &ev), 0);
	read_fdinfo(ep, buf, sizeof(buf));
	assert_int_equal(parse(buf, &s, &flags), 0);
	assert_true(flags & O_CLOEXEC);
	assert_int_equal(s.n, 2);
	for (int i = 0; i < 2; i++) {
		if (s.w[i].tfd == e1) {
			assert_int_equal(s.w[i].events, EPOLLIN | EPOLLET |
								EPOLLERR |
								EPOLLHUP);
			assert_true(s.w[i].data == 0xffffffffffffffffull);
		} else {
			assert_int_equal(s.w[i].tfd, e2);
			assert_int_equal(s.w[i].events,
					 EPOLLOUT | EPOLLERR | EPOLLHUP);
			assert_true(s.w[i].data == 0);
		}
	}
	close(ep);
	close(e1);
	close(e2);
}

/* Each malformed tfd line is rejected, after the good lines before it. */
static void test_malformed_lines(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"tfd:\n",
		"tfd: 4\n",
		"tfd: x events: 19 data: 2a  pos:0 ino:40e sdev:10\n",
		"tfd: -4 events: 19 data: 2a  pos:0 ino:40e sdev:10\n",
		"tfd: 99999999999 events: 19 data: 2a  pos:0 ino:40e sdev:10\n",
		"tfd: 2147483648 events: 19 data: 2a  pos:0 ino:40e sdev:10\n",
		"tfd: 4 events: 1ffffffff data: 2a  pos:0 ino:40e sdev:10\n",
		"tfd: 4 events: 19 data: 1ffffffffffffffff  pos:0 ino:40e sdev:10\n",
		"tfd: 4 events: 19 data: 2a  pos:0 ino:40e sdev:1ffffffff\n",
		"tfd: 4 events: 19 data: 2a  pos:0 ino:40e\n",
		"tfd: 4 events: 19 data: 2a pos:0 ino:40e sdev:\n",
		"tfd: 4 events: 19 data: 2a  pos:x ino:40e sdev:10\n",
		"tfd: 4 events: 19 data: 2a  pos:0 ino:40g sdev:10\n",
		"tfd: 4 events: 19 data: 2a  pos:0 ino:40e sdev:10x\n",
		"tfd: 4 events:19data: 2a  pos:0 ino:40e sdev:10\n",
		"tfd: 4 data: 2a events: 19  pos:0 ino:40e sdev:10\n",
		"tfd: 4 events: 19 data: 2a  pos:0 ino:40e sdev:10",
		"tfd: 4 events: 19 data: 2a  pos:0 ino:40e sd",
		"tfd:4events:19data:2apos:0ino:40esdev:10\n",
		"flags: 09\n",
		"flags: 0777777777777777777777777\n",
	};
	const char *good =
		"tfd: 3 events: 19 data: 1  pos:0 ino:40e sdev:10\n";
	char text[512];
	struct seen s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", good, bad[i]);
		assert_int_equal(parse(text, &s, NULL), -EINVAL);
		assert_int_equal(s.n, 1);
		assert_int_equal(s.w[0].tfd, 3);
	}
}

/* Accepted variants: extra fields, tabs, no newline after other lines. */
static void test_tolerated_variants(void **state)
{
	(void)state;
	struct seen s;
	unsigned flags = 7;

	assert_int_equal(parse("tfd: 4 events: 19 data: 2a  pos:-1 ino:40e sdev:10 future:1\n",
			       &s, NULL), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(parse("tfd:\t4\tevents:\t19\tdata:\t2a\tpos:0\tino:40e\tsdev:10  \n",
			       &s, NULL), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(parse("pos:\t0\nsomething else\nino:\t5", &s, &flags),
			 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(flags, 7); /* no flags line: untouched */
	assert_int_equal(fdinfo_parse_epoll("", 0, NULL, collect, &s), 0);
	assert_int_equal(fdinfo_parse_epoll(NULL, 0, NULL, NULL, NULL), 0);
	/* Largest values of each field. */
	assert_int_equal(parse("tfd: 2147483647 events: ffffffff data: ffffffffffffffff  pos:9223372036854775807 ino:ffffffffffffffff sdev:ffffffff\n",
			       &s, NULL), 0);
	assert_int_equal(s.w[0].tfd, 2147483647);
	assert_true(s.w[0].data == UINT64_MAX && s.w[0].ino == UINT64_MAX);
}

/* on_watch's error stops the parse and is returned. */
static void test_callback_error(void **state)
{
	(void)state;
	const char *text =
		"tfd: 3 events: 19 data: 1  pos:0 ino:40e sdev:10\n"
		"tfd: 4 events: 19 data: 1  pos:0 ino:40e sdev:10\n"
		"tfd: 5 events: 19 data: 1  pos:0 ino:40e sdev:10\n";
	struct seen s;

	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	assert_int_equal(fdinfo_parse_epoll(text, strlen(text), NULL, collect,
					    &s),
			 -EINTR);
	assert_int_equal(s.n, 1);
}

/*
 * The parser never reads past len: the text ends at a page boundary
 * followed by an inaccessible page, cut at every length.
 */
static void test_bounded_reads(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const char *line =
		"flags:\t02\ntfd:       12 events:       19 data:               2a  pos:0 ino:40e sdev:10\n";
	size_t len = strlen(line);
	struct seen s;

	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	for (size_t cut = 0; cut <= len; cut++) {
		char *text = map + page - cut;

		memcpy(text, line, cut);
		memset(&s, 0, sizeof(s));
		s.stop_at = -1;
		int ret = fdinfo_parse_epoll(text, cut, NULL, collect, &s);

		if (cut == len) {
			assert_int_equal(ret, 0);
			assert_int_equal(s.n, 1);
		} else {
			assert_int_equal(s.n, 0);
			assert_true(ret == 0 || ret == -EINVAL);
		}
	}
	munmap(map, (size_t)page * 2);
}

/* Random and mutated text: never a crash, never more calls than lines. */
static void test_random_text(void **state)
{
	(void)state;
	const char *seed =
		"pos:\t0\nflags:\t02\ntfd:        4 events:       19 data:               2a  pos:0 ino:40e sdev:10\n";
	char text[256];
	struct seen s;
	unsigned rnd = 12345;

	for (int round = 0; round < 20000; round++) {
		size_t len = strlen(seed);

		memcpy(text, seed, len);
		for (int k = 0; k < 1 + round % 6; k++) {
			rnd = rnd * 1103515245u + 12345u;
			size_t at = (rnd >> 8) % len;
			text[at] = (char)(rnd >> 20);
		}
		memset(&s, 0, sizeof(s));
		s.stop_at = -1;
		int ret = fdinfo_parse_epoll(text, len, NULL, collect, &s);

		assert_true(ret == 0 || ret == -EINVAL);
		assert_true(s.n <= 1);
	}
}

static void test_key_value_helpers(void **state)
{
	(void)state;
	const char *text = "pos:\t0\nflags:\t02004002\nino:\t1038\n"
			   "eventfd-count:                5\n"
			   "it_value: (99, 999482801)\nit_interval: (1, 500)\n"
			   "bad: (1, 1000000000)\nbig: 123456789012345678901234567\n"
			   "neg: -1\n";
	uint64_t v;

	assert_true(fdinfo_u64(text, "flags:", 8, &v));
	assert_int_equal(v, 02004002);
	assert_true(fdinfo_u64(text, "ino:", 10, &v));
	assert_int_equal(v, 1038);
	assert_true(fdinfo_u64(text, "eventfd-count:", 16, &v));
	assert_int_equal(v, 5);
	assert_false(fdinfo_u64(text, "missing:", 10, &v));
	assert_false(fdinfo_u64(text, "big:", 10, &v));
	assert_false(fdinfo_u64(text, "neg:", 10, &v));
	assert_false(fdinfo_u64(NULL, "ino:", 10, &v));
	assert_true(fdinfo_timespec_ns(text, "it_value:", &v));
	assert_true(v == 99ull * 1000000000ull + 999482801ull);
	assert_true(fdinfo_timespec_ns(text, "it_interval:", &v));
	assert_int_equal(v, 1000000500ull);
	assert_false(fdinfo_timespec_ns(text, "bad:", &v));
	assert_false(fdinfo_timespec_ns(text, "pos:", &v));
	assert_true(fdinfo_timespec_ns("t: (18446744073709551615, 0)\n", "t:",
				       &v));
	assert_true(v == UINT64_MAX);
	/* A key must start a line. */
	assert_false(fdinfo_u64("xflags: 1\n", "flags:", 8, &v));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_documented_example),
		cmocka_unit_test(test_real_kernel_text),
		cmocka_unit_test(test_malformed_lines),
		cmocka_unit_test(test_tolerated_variants),
		cmocka_unit_test(test_callback_error),
		cmocka_unit_test(test_bounded_reads),
		cmocka_unit_test(test_random_text),
		cmocka_unit_test(test_key_value_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
