// SPDX-License-Identifier: MIT
/*
 * The one escaping rule (common/escape.c) and where it is applied: restore
 * errors and report lines, show text and JSON, with hostile strings in
 * images (socket paths, target paths, module and function names,
 * diagnostic texts, the executable's name).  Printed text must hold no C0
 * control but the line ends show itself writes, no DEL, no C1 control
 * (raw or UTF-8), no bidirectional control and no invalid UTF-8.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "epollcr.h"
#include "epollcr_image.h"
#include "escape.h"
#include "restore.h"
#include "show.h"

/* Every hostile piece at once. */
static const char hostile[] = "a\x1b[31mb\x07\n\r\t\x7f\\\xc2\x9b\x9b"
			      "\xe2\x80\xae\xe2\x81\xa6\xe2\x80\x8f\xd8\x9c"
			      "\xff\xc0\xaf\xed\xa0\x80\"z\xc3\xa9\xe2\x80";

/*
 * Whether text (len bytes) is safe: valid UTF-8, no control but newline
 * where allowed, no C1, no bidi control.
 */
static const char *unsafe_at(const char *text, size_t len, bool newlines)
{
	const unsigned char *p = (const unsigned char *)text;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k;

		if (p[i] < 0x80) {
			if ((p[i] < 0x20 && !(newlines && p[i] == '\n')) ||
			    p[i] == 0x7f)
				return text + i;
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0)
			k = 2, cp = p[i] & 0x1f;
		else if ((p[i] & 0xf0) == 0xe0)
			k = 3, cp = p[i] & 0x0f;
		else if ((p[i] & 0xf8) == 0xf0)
			k = 4, cp = p[i] & 0x07;
		else
			return text + i;
		if (i + k > len)
			return text + i;
		for (size_t j = 1; j < k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return text + i;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) ||
		    (k == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || cp == 0x200e ||
		    cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069))
			return text + i;
		i += k;
	}
	return NULL;
}

static void assert_safe(const char *text, bool newlines)
{
	const char *at = unsafe_at(text, strlen(text), newlines);

	if (at)
		fail_msg("unsafe byte 0x%02x at %zu in:\n%s",
			 (unsigned char)*at, (size_t)(at - text), text);
}

static void assert_contains(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("missing \"%s\" in:\n%s", want, text);
}

/* ---- the rule ---- */

static void test_rule_text(void **state)
{
	char out[512];
	size_t n;

	(void)state;
	n = escape_bytes(out, sizeof(out), hostile, strlen(hostile), 0);
	assert_int_equal(n, strlen(out));
	assert_string_equal(out,
			    "a\\x1b[31mb\\x07\\x0a\\x0d\\x09\\x7f\\\\\\u009b\\x9b"
			    "\\u202e\\u2066\\u200f\\u061c"
			    "\\xff\\xc0\\xaf\\xed\\xa0\\x80\"z\xc3\xa9\\xe2\\x80");
	/* U+0085 (C1 NEL) as valid UTF-8 */
	escape_bytes(out, sizeof(out), "x\xc2\x85y", 4, 0);
	assert_string_equal(out, "x\\u0085y");
	/* plain text and UTF-8 stay as they are */
	escape_bytes(out, sizeof(out), "caf\xc3\xa9 \xf0\x9f\x98\x80", 10, 0);
	assert_string_equal(out, "caf\xc3\xa9 \xf0\x9f\x98\x80");
	assert_string_equal(escape_str(out, sizeof(out), NULL), "(none)");
}

static void test_rule_json(void **state)
{
	char out[512];

	(void)state;
	escape_bytes(out, sizeof(out), hostile, strlen(hostile), ESCAPE_JSON);
	assert_string_equal(out,
			    "a\\u001b[31mb\\u0007\\n\\r\\t\\u007f\\\\\\u009b\\u009b"
			    "\\u202e\\u2066\\u200f\\u061c"
			    "\\u00ff\\u00c0\\u00af\\u00ed\\u00a0\\u0080\\\"z\xc3\xa9\\u00e2\\u0080");
}

/* A short buffer: NUL-terminated, cut between pieces, full length told. */
static void test_rule_truncation(void **state)
{
	char out[8];
	size_t n;

	(void)state;
	n = escape_bytes(out, sizeof(out), "ab\x1b" "cdef", 7, 0);
	assert_int_equal(n, 10);
	assert_string_equal(out, "ab\\x1bc");
	n = escape_bytes(out, 6, "abcd\xc3\xa9z", 7, 0);
	assert_int_equal(n, 7);
	assert_string_equal(out, "abcd"); /* not half of the e-acute */
	n = escape_bytes(out, 4, "ab\x1b", 3, 0);
	assert_string_equal(out, "ab"); /* an escape is never cut */
	assert_int_equal(escape_bytes(NULL, 0, "abc", 3, 0), 3);
}

/* ---- restore ---- */

static uint32_t add_set_with_fd(struct image *img, int fd)
{
	struct image_target *t = image_add_target(img, IMAGE_KIND_EPOLL);
	struct image_fd *f;
	uint32_t id = t->id;

	t->origin = IMAGE_ORIGIN_KERNEL;
	t->file_flags = O_RDWR;
	f = image_add_fd(img);
	f->fd = fd;
	f->target = id;
	f->fd_flags = FD_CLOEXEC;
	return id;
}

static void add_watch(struct image *img, uint32_t set, int tfd,
		      uint32_t target)
{
	struct image_watch *w = image_add_watch(img);

	w->set = set;
	w->tfd = tfd;
	w->events = 0x19;
	w->target = target;
	w->open_fd = tfd;
	w->flags = IMAGE_W_KERNEL;
	img->targets[set - 1].u.ep.nwatches++;
}

/* A unix socket bound at a hostile path in a missing directory. */
static void test_restore_error_escaped(void **state)
{
	struct epollcr_restore_options o = { .report_fd = -1 };
	struct image img;
	struct image_target *t;
	struct sockaddr_un sun = { 0 }, *un;
	struct image_fd *f;
	uint32_t set, id;
	char err[1024];

	(void)state;
	image_init(&img);
	set = add_set_with_fd(&img, 300);
	t = image_add_target(&img, IMAGE_KIND_SOCKET);
	id = t->id;
	t->origin = IMAGE_ORIGIN_KERNEL;
	t->file_flags = O_RDWR;
	t->path = strdup(hostile);
	t->u.sock.domain = AF_UNIX;
	t->u.sock.type = SOCK_STREAM;
	t->u.sock.flags = IMAGE_SOCK_BOUND | IMAGE_SOCK_LISTENING;
	t->u.sock.backlog = 4;
	t->u.sock.pair = IMAGE_NONE;
	un = &sun;
	un->sun_family = AF_UNIX;
	snprintf(un->sun_path, sizeof(un->sun_path),
		 "/nonexistent-dir/\x1b]0;owned\x07\n\xe2\x80\xae");
	assert_int_equal(image_socket_set_addr(
				 &t->u.sock, un,
				 (uint32_t)(offsetof(struct sockaddr_un,
						     sun_path) +
					    strlen(un->sun_path) + 1)),
			 0);
	f = image_add_fd(&img);
	f->fd = 301;
	f->target = id;
	add_watch(&img, set, 301, id);
	assert_int_equal(restore_image(&img, &o, err, sizeof(err)), -1);
	print_message("restore error: %s\n", err);
	assert_safe(err, false);
	assert_contains(err, "/nonexistent-dir/\\x1b]0;owned\\x07\\x0a\\u202e");
	image_free(&img);
}

/* Report lines: a hostile target path and message, one line each. */
static void test_restore_report_escaped(void **state)
{
	struct epollcr_restore_options o = {
		.missing = EPOLLCR_MISSING_SKIP,
	};
	struct image img;
	struct image_target *t;
	uint32_t set, id;
	char err[1024], report[4096];
	ssize_t n;
	int fd = memfd_create("report", MFD_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	o.report_fd = fd;
	image_init(&img);
	set = add_set_with_fd(&img, 310);
	/* an OTHER target cannot be recreated: skipped, with a warning */
	t = image_add_target(&img, IMAGE_KIND_OTHER);
	id = t->id;
	t->origin = IMAGE_ORIGIN_KERNEL;
	t->file_flags = O_RDWR;
	t->path = strdup(hostile);
	add_watch(&img, set, 311, id);
	assert_int_equal(restore_image(&img, &o, err, sizeof(err)), 0);
	n = pread(fd, report, sizeof(report) - 1, 0);
	assert_true(n > 0);
	report[n] = '\0';
	print_message("report: %s", report);
	assert_safe(report, true);
	assert_contains(report, "a\\x1b[31mb\\x07\\x0a");
	/* one line per diagnostic */
	unsigned lines = 0;
	for (char *p = report; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, img.ndiags);
	close(310);
	close(fd);
	image_free(&img);
}

/* ---- show ---- */

static char *render(const struct image *img, bool json)
{
	int fd = memfd_create("show", MFD_CLOEXEC);
	off_t len;
	char *text;

	assert_true(fd >= 0);
	if (json)
		assert_int_equal(show_image_json(img, fd), 0);
	else
		assert_int_equal(show_image_text(img, fd, SHOW_NO_ADDR2LINE),
				 0);
	len = lseek(fd, 0, SEEK_END);
	text = malloc((size_t)len + 1);
	assert_int_equal(pread(fd, text, (size_t)len, 0), len);
	text[len] = '\0';
	close(fd);
	return text;
}

/* python3 parses json (a JSON object with "exe"): 0, or its status. */
static int python_parses(const char *json)
{
	static const char script[] =
		"import json, sys\n"
		"d = json.load(sys.stdin)\n"
		"sys.exit(0 if '\\u202e' in d['exe'] else 3)\n";
	int fd = memfd_create("json", MFD_CLOEXEC), status;
	pid_t pid;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd, 0);
		execlp("python3", "python3", "-c", script, (char *)NULL);
		_exit(127);
	}
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_show_escaped(void **state)
{
	struct image img;
	struct image_backtrace *bt;
	struct image_target *t;
	char *text;
	uint32_t set;

	(void)state;
	image_init(&img);
	img.proc.pid = 7;
	img.proc.exe = strdup(hostile);
	img.proc.comm = strdup(hostile);
	img.proc.version = strdup(hostile);
	image_add_module(&img)->path = strdup(hostile);
	bt = image_add_backtrace(&img);
	bt->nframes = 1;
	bt->frames = calloc(1, sizeof(*bt->frames));
	bt->frames[0] = (struct image_frame){ 1, 0x10, strdup(hostile), 2 };
	set = add_set_with_fd(&img, 3);
	t = image_add_target(&img, IMAGE_KIND_OTHER);
	t->path = strdup(hostile);
	add_watch(&img, set, 4, t->id);
	img.watches[0].bt_add = 1;
	image_add_diag(&img, IMAGE_SEV_WARNING, 0, 3, 4, hostile, 1, "%s",
		       hostile);
	text = render(&img, false);
	assert_safe(text, true);
	assert_contains(text, "\\u202e");
	free(text);
	text = render(&img, true);
	assert_safe(text, true);
	assert_contains(text, "\\u202e");
	assert_contains(text, "\\u009b");
	/* valid JSON that decodes back to the characters (127: no python3) */
	int py = python_parses(text);
	if (py != 127 && py != 0)
		fail_msg("python3 (status %d) rejected:\n%s", py, text);
	free(text);
	image_free(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_text),
		cmocka_unit_test(test_rule_json),
		cmocka_unit_test(test_rule_truncation),
		cmocka_unit_test(test_restore_error_escaped),
		cmocka_unit_test(test_restore_report_escaped),
		cmocka_unit_test(test_show_escaped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
