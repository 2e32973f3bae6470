// SPDX-License-Identifier: MIT
/*
 * Memory bounded by the image (issue 11 item 3a): a worst-case image (many
 * minimal socket targets, each with an fd and a watch: the records that
 * cost the fewest bytes on disk for the most in memory, test/imggen.h
 * ig_worst_image) is read, shown (text and JSON) and restored, each in a
 * fresh child, and the child's peak RSS (wait4's ru_maxrss) beyond a child
 * that does nothing must stay within MEMCAP_K_SHOW (read, show) or
 * MEMCAP_K_RESTORE (epollcr_restore) bytes per byte of image plus
 * MEMCAP_FIXED (docs/security.md states them).  Before targets were made
 * small (socket addresses out of line), bare targets took 80 to 93 bytes
 * per byte of image.
 *
 * EPOLLCR_MEMCAP_MB (default 16) sets the image size; EPOLLCR_MEMCAP_PRINT=1
 * prints the figures (docs/performance.md).  Under a sanitizer the RSS
 * means nothing: the figures are printed, not checked.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "epollcr.h"
#include "epollcr_image.h"
#include "image_io.h"
#include "imggen.h"
#include "log.h"
#include "show.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEMCAP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MEMCAP_SANITIZED 1
#endif
#endif
#ifndef MEMCAP_SANITIZED
#define MEMCAP_SANITIZED 0
#endif

#define MEMCAP_K_SHOW 24	/* read and show: bytes per byte of image */
#define MEMCAP_K_RESTORE 36	/* epollcr_restore(): bytes per byte */
#define MEMCAP_FIXED (8u << 20) /* bytes beside that */

static char img_path[64];
static off_t img_size;

enum what { DO_NOTHING, DO_READ, DO_SHOW_TEXT, DO_SHOW_JSON, DO_RESTORE };

static const char *const what_name[] = { "nothing", "read", "show",
					 "show --json", "restore" };

static int child(enum what what)
{
	struct image img;
	char err[256];
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (out < 0)
		return 2;
	switch (what) {
	case DO_NOTHING:
		return 0;
	case DO_READ:
		if (image_read_file(img_path, &img, err, sizeof(err)) < 0)
			return 3;
		image_free(&img);
		return 0;
	case DO_SHOW_TEXT:
	case DO_SHOW_JSON:
		if (image_read_file(img_path, &img, err, sizeof(err)) < 0)
			return 3;
		if ((what == DO_SHOW_JSON ? show_image_json(&img, out)
					  : show_image_text(&img, out, 0)) < 0)
			return 4;
		image_free(&img);
		return 0;
	case DO_RESTORE: {
		struct epollcr_restore_options o = {
			.targets = EPOLLCR_TARGETS_RECREATE,
			.missing = EPOLLCR_MISSING_SKIP,
			.report_fd = -1,
		};

		/* fails at the fd limit, after reading and planning */
		epollcr_restore(img_path, &o, err, sizeof(err));
		return 0;
	}
	}
	return 1;
}

/* Peak RSS in bytes of a fresh child doing what. */
static long peak_rss(enum what what)
{
	struct rusage ru;
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child(what));
	assert_int_equal(wait4(pid, &status, 0, &ru), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status))
		fail_msg("%s: child exited %d", what_name[what],
			 WEXITSTATUS(status));
	return ru.ru_maxrss * 1024L;
}

/*
 * Write a worst-case image of about mb MiB in a child (the parent stays
 * small).
 */
static void make_image(unsigned mb, bool sockets)
{
	int status;
	struct stat st;
	pid_t pid;

	strcpy(img_path, "/tmp/epollcr-memcap-XXXXXX");
	int fd = mkstemp(img_path);

	assert_true(fd >= 0);
	close(fd);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct image img;

		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		ig_worst_image(&img, (uint64_t)mb << 20,
			       rl.rlim_cur > 64 ? (uint32_t)(rl.rlim_cur - 32)
						: 32,
			       sockets);
		_exit(image_write_file(&img, img_path) < 0 ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(stat(img_path, &st), 0);
	img_size = st.st_size;
}

static void worst_case(bool sockets)
{
	const char *e = getenv("EPOLLCR_MEMCAP_MB");
	bool print = getenv("EPOLLCR_MEMCAP_PRINT") != NULL;
	unsigned mb = e ? (unsigned)atoi(e) : 16;
	long base;
	bool over = false;
	struct image img;
	char err[256];

	make_image(mb ? mb : 16, sockets);
	/* the reader accepts it: the figures are of real work */
	if (image_read_file(img_path, &img, err, sizeof(err)) < 0)
		fail_msg("the worst-case image is refused: %s", err);
	if (print)
		printf("%s: image %lld bytes: %u targets, %u fds, %u watches\n",
		       sockets ? "sockets" : "bare targets",
		       (long long)img_size, img.ntargets, img.nfds,
		       img.nwatches);
	image_free(&img);
	base = peak_rss(DO_NOTHING);
	for (enum what w = DO_READ; w <= DO_RESTORE; w++) {
		long rss = peak_rss(w) - base;
		double k = (double)rss / (double)img_size;
		int kmax = w == DO_RESTORE ? MEMCAP_K_RESTORE : MEMCAP_K_SHOW;

		if (print || MEMCAP_SANITIZED)
			printf("%-12s peak RSS %8.1f MiB beyond a bare child: %5.2f bytes per image byte\n",
			       what_name[w], (double)rss / (1 << 20), k);
		if (!MEMCAP_SANITIZED &&
		    rss > (long)kmax * img_size + (long)MEMCAP_FIXED) {
			print_message("%s: peak RSS %ld bytes for an image of %lld: over %d x image + %u\n",
				      what_name[w], rss, (long long)img_size,
				      kmax, MEMCAP_FIXED);
			over = true;
		}
	}
	unlink(img_path);
	assert_false(over);
}

/*
 * The reader's cap: a valid image of IMAGE_MAX_BYTES and a bit (diagnostics
 * of 4 KiB), streamed through a pipe, is refused once the limit is read;
 * the same from memory before any byte is read.
 */
static void test_cap(void **state)
{
	char msg[IMAGE_MAX_STRING + 1], err[256];
	struct image img;
	int p[2], status;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint32_t n = IMAGE_MAX_BYTES / IMAGE_MAX_STRING + 64;

		close(p[0]);
		memset(msg, 'm', IMAGE_MAX_STRING);
		msg[IMAGE_MAX_STRING] = '\0';
		image_init(&img);
		img.proc.pid = 1;
		for (uint32_t i = 0; i < n; i++)
			if (image_add_diag(&img, IMAGE_SEV_INFO,
					   IMAGE_DIAG_GENERIC, -1, -1, NULL,
					   IMAGE_NONE, "%s", msg) < 0)
				_exit(1);
		/* the reader stops reading: EPIPE ends the writer */
		signal(SIGPIPE, SIG_DFL);
		image_write_fd(&img, p[1]);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(image_read_fd(p[0], &img, err, sizeof(err)), -1);
	close(p[0]);
	assert_non_null(strstr(err, "the image is longer than 268435456 bytes"));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(image_read_mem(msg, (size_t)IMAGE_MAX_BYTES + 1, &img,
					err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "the image is longer than 268435456 bytes"));
}

/* Minimal socket targets, each watched. */
static void test_worst_sockets(void **state)
{
	(void)state;
	worst_case(true);
}

/* Bare targets of kind "other": the fewest bytes on disk per target. */
static void test_worst_targets(void **state)
{
	(void)state;
	worst_case(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worst_sockets),
		cmocka_unit_test(test_worst_targets),
		cmocka_unit_test(test_cap),
	};

	log_setup(STDERR_FILENO, LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
