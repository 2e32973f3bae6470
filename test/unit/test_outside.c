// SPDX-License-Identifier: MIT
/*
 * recorder_build_outside(): the image of another process (a forked child
 * here) from the kernel's view alone, with and without --freeze, and the
 * reasons given for a process that is gone or a zombie.  Checked against
 * what the child made and against /proc/CHILD/status afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "recorder.h"

/*
 * Fork a child with one epoll set watching an eventfd (data 0x77) and a
 * TCP listener (backlog 6, data 0x78); returns its pid once it is ready.
 */
static pid_t start_child(void)
{
	int ready[2];
	char c;

	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr =
						  htonl(INADDR_LOOPBACK) };
		int ep = epoll_create1(0), efd = eventfd(0, 0);
		int l = socket(AF_INET, SOCK_STREAM, 0);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x77 };

		if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(l, 6) < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
			_exit(1);
		ev.data.u64 = 0x78;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static void stop_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The first number after key in /proc/PID/status. */
static long status_of(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

static void check_image(const struct image *img, pid_t pid)
{
	unsigned sets = 0;
	bool efd = false, lsn = false;

	assert_int_equal(img->proc.pid, pid);
	assert_true(img->flags & IMAGE_F_KERNEL_ONLY);
	assert_true(img->flags & IMAGE_F_KERNEL_VIEW);
	assert_true(img->flags & IMAGE_F_COMPLETE);
	assert_false(img->flags & (IMAGE_F_SHADOW_VIEW | IMAGE_F_UNSETTLED));
	for (uint32_t i = 0; i < img->ntargets; i++)
		sets += img->targets[i].kind == IMAGE_KIND_EPOLL;
	assert_int_equal(sets, 1);
	assert_int_equal(img->nwatches, 2);
	for (uint32_t i = 0; i < img->nwatches; i++) {
		const struct image_watch *w = &img->watches[i];
		const struct image_target *t = image_target_by_id(img, w->target);
		assert_non_null(t);
		if (w->data == 0x77)
			efd = t->kind == IMAGE_KIND_EVENTFD;
		if (w->data == 0x78)
			lsn = t->kind == IMAGE_KIND_SOCKET &&
			      t->u.sock.backlog == 6 &&
			      (t->u.sock.flags & IMAGE_SOCK_LISTENING);
	}
	assert_true(efd);
	assert_true(lsn);
	/* one diagnostic says what a kernel-only image lacks */
	unsigned lacks = 0;
	for (uint32_t i = 0; i < img->ndiags; i++)
		lacks += strstr(img->diags[i].message, "kernel-only image") != NULL;
	assert_int_equal(lacks, 1);
}

static void test_reads_agree(void **state)
{
	(void)state;
	pid_t pid = start_child();
	struct recorder_outside opt = { 0 };
	struct image img;
	char why[512] = "";

	assert_int_equal(recorder_build_outside(pid, &opt, &img, why, sizeof(why)), 0);
	assert_int_equal(opt.reads, 2); /* a quiet process: the second agrees */
	check_image(&img, pid);
	image_free(&img);
	stop_child(pid);
}

static void test_freeze(void **state)
{
	(void)state;
	pid_t pid = start_child();
	struct recorder_outside opt = { .freeze = true };
	struct image img;
	char why[512] = "";

	assert_int_equal(recorder_build_outside(pid, &opt, &img, why, sizeof(why)), 0);
	assert_int_equal(opt.reads, 1);
	check_image(&img, pid);
	image_free(&img);
	/* let go: not traced, not stopped, and no stop reported to us */
	assert_int_equal(status_of(pid, "TracerPid:"), 0);
	int st;
	assert_int_equal(waitpid(pid, &st, WNOHANG | WUNTRACED), 0);
	stop_child(pid);
}

static void test_gone_and_zombie(void **state)
{
	(void)state;
	struct recorder_outside opt = { 0 };
	struct image img;
	char why[512] = "";
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	/* a zombie until reaped: wait for its exit, leaving it unreaped */
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(recorder_build_outside(pid, &opt, &img, why, sizeof(why)), -ESRCH);
	assert_non_null(strstr(why, "a zombie its parent has not reaped"));
	waitpid(pid, NULL, 0);
	assert_int_equal(recorder_build_outside(pid, &opt, &img, why, sizeof(why)), -ESRCH);
	char want[64];
	snprintf(want, sizeof(want), "no process %d", (int)pid);
	assert_string_equal(why, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_agree),
		cmocka_unit_test(test_freeze),
		cmocka_unit_test(test_gone_and_zombie),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
