// SPDX-License-Identifier: MIT
/*
 * errno_matrix: run every wrapped call (epoll, close, dup, fcntl, socket,
 * pipe, eventfd, timerfd, signalfd, fork) through its documented error cases
 * and a few successes, and print one line per case:
 *
 *   NAME RET ERRNO
 *
 * RET is the call's return value as it is (fd numbers included: the shim
 * must not change fd numbering); ERRNO is the errno name after the call, or
 * "-" when errno still holds the sentinel stored before every call (a
 * successful call leaves errno alone).  test_errno_matrix.sh diffs the output
 * with and without the shim.
 *
 * Each case also states what the kernel is expected to do
 * (epoll-facts.md); any case that disagrees is named on stderr and the exit
 * status is 1, so the matrix checks the kernel's side on its own too.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <linux/close_range.h>

#include "fdinfo_util.h"

#define ERRNO_SENTINEL 4242	/* stored in errno before every case */
#define ERRNO_PRESERVE 12345	/* the errno-preservation cases' sentinel */
#define EXPECT_OK 0		/* a case expected to succeed */
#define CLOSED_FD 777		/* a number no case ever opens */
#define HUGE_FD (1 << 24)	/* above any RLIMIT_NOFILE */

static unsigned unexpected;	/* cases that disagreed with the facts */

static void print_errno(int err)
{
	const char *name = strerrorname_np(err);
	if (err == ERRNO_SENTINEL)
		fputs("-", stdout);
	else if (name)
		fputs(name, stdout);
	else
		printf("errno=%d", err);
}

/*
 * Print one case and check it: expect_errno EXPECT_OK means "returns
 * something other than -1 and leaves errno alone", otherwise "returns -1
 * with this errno".
 */
static void report(const char *name, long ret, int err, int expect_errno)
{
	printf("%s %ld ", name, ret);
	print_errno(err);
	putchar('\n');

	bool ok = expect_errno == EXPECT_OK ?
			  ret != -1 && err == ERRNO_SENTINEL :
			  ret == -1 && err == expect_errno;
	if (!ok) {
		unexpected++;
		const char *got = strerrorname_np(err);
		fprintf(stderr, "UNEXPECTED %s: ret %ld errno %s, expected %s\n",
			name, ret, got ? got : "?",
			expect_errno ? strerrorname_np(expect_errno) : "success");
	}
}

/* Run expr with errno set to the sentinel, print and check the outcome. */
#define CASE(name, expect_errno, expr)                                        \
	({                                                                    \
		errno = ERRNO_SENTINEL;                                       \
		long ret_ = (long)(expr);                                     \
		report(name, ret_, errno, expect_errno);                      \
		ret_;                                                         \
	})

/* A value the program computed (no call): must equal expected. */
static void check_value(const char *name, long value, long expected)
{
	printf("%s %ld -\n", name, value);
	if (value != expected) {
		unexpected++;
		fprintf(stderr, "UNEXPECTED %s: %ld, expected %ld\n", name,
			value, expected);
	}
}

/* The number of watches the kernel lists for epfd, -1 when unreadable. */
static long kernel_watches(int epfd)
{
	static struct fdinfo_util_watch w[64];
	char text[8192];
	size_t n;
	if (fdinfo_util_epoll_watches(epfd, text, sizeof(text), w, 64, &n))
		return -1;
	return (long)n;
}

/* The fd number the next open() gets (opened and closed again). */
static void next_fd(const char *name)
{
	int fd = CASE(name, EXPECT_OK, open("/dev/null", O_RDONLY));
	close(fd);
}

static struct epoll_event ev_of(uint32_t events, uint64_t data)
{
	return (struct epoll_event){ .events = events, .data.u64 = data };
}

static long raw_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

/*
 * Pointers the compiler cannot prove NULL or bad, so that it lets the
 * program pass them (the calls must fail with EFAULT, not crash).
 */
static void *volatile null_ptr;
static void *volatile bad_ptr = (void *)16;

static void cases_epoll_create(void)
{
	CASE("epoll_create_0", EINVAL, epoll_create(0));
	CASE("epoll_create_neg", EINVAL, epoll_create(-1));
	CASE("epoll_create1_unknown_flag", EINVAL, epoll_create1(1));
	CASE("epoll_create1_flag_bits", EINVAL, epoll_create1(~EPOLL_CLOEXEC));
	int ep = CASE("epoll_create1_cloexec", EXPECT_OK,
		      epoll_create1(EPOLL_CLOEXEC));
	CASE("epoll_create1_cloexec_getfd", EXPECT_OK, fcntl(ep, F_GETFD));
	close(ep);
	ep = CASE("epoll_create_1", EXPECT_OK, epoll_create(1));
	CASE("epoll_create_getfd", EXPECT_OK, fcntl(ep, F_GETFD));
	close(ep);
	next_fd("nextfd_after_epoll_create");
}

static void cases_ctl_basic(void)
{
	struct epoll_event ev = ev_of(EPOLLIN, 0x2a);
	int ep = CASE("ctl_epoll_create1", EXPECT_OK, epoll_create1(0));
	int efd = CASE("ctl_eventfd", EXPECT_OK, eventfd(0, EFD_NONBLOCK));
	int efd2 = CASE("ctl_eventfd2", EXPECT_OK, eventfd(0, 0));
	int exe = CASE("ctl_open_exe", EXPECT_OK,
		       open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
	int mfd = CASE("ctl_memfd", EXPECT_OK, memfd_create("m", MFD_CLOEXEC));

	CASE("ctl_add_self", EINVAL, epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
	CASE("ctl_add_regular_file", EPERM,
	     epoll_ctl(ep, EPOLL_CTL_ADD, exe, &ev));
	CASE("ctl_add_memfd", EPERM, epoll_ctl(ep, EPOLL_CTL_ADD, mfd, &ev));
	CASE("ctl_epfd_not_open", EBADF,
	     epoll_ctl(CLOSED_FD, EPOLL_CTL_ADD, efd, &ev));
	CASE("ctl_epfd_negative", EBADF, epoll_ctl(-1, EPOLL_CTL_ADD, efd, &ev));
	CASE("ctl_epfd_huge", EBADF, epoll_ctl(HUGE_FD, EPOLL_CTL_ADD, efd, &ev));
	CASE("ctl_epfd_not_epoll", EINVAL,
	     epoll_ctl(efd2, EPOLL_CTL_ADD, efd, &ev));
	CASE("ctl_epfd_not_epoll_del", EINVAL,
	     epoll_ctl(efd2, EPOLL_CTL_DEL, efd, NULL));
	CASE("ctl_fd_not_open", EBADF,
	     epoll_ctl(ep, EPOLL_CTL_ADD, CLOSED_FD, &ev));
	CASE("ctl_fd_negative", EBADF, epoll_ctl(ep, EPOLL_CTL_ADD, -1, &ev));
	CASE("ctl_del_fd_not_open", EBADF,
	     epoll_ctl(ep, EPOLL_CTL_DEL, CLOSED_FD, NULL));
	CASE("ctl_add", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("ctl_add_twice", EEXIST, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("ctl_mod_missing", ENOENT, epoll_ctl(ep, EPOLL_CTL_MOD, efd2, &ev));
	CASE("ctl_del_missing", ENOENT, epoll_ctl(ep, EPOLL_CTL_DEL, efd2, &ev));
	ev = ev_of(EPOLLOUT | EPOLLET, 0xdeadbeefcafeULL);
	CASE("ctl_mod", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
	CASE("ctl_unknown_op", EINVAL, epoll_ctl(ep, 99, efd, &ev));
	CASE("ctl_op_zero", EINVAL, epoll_ctl(ep, 0, efd, &ev));
	CASE("ctl_add_null_event", EFAULT,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd2, null_ptr));
	CASE("ctl_add_bad_pointer", EFAULT,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd2, bad_ptr));
	CASE("ctl_mod_null_event", EFAULT,
	     epoll_ctl(ep, EPOLL_CTL_MOD, efd, null_ptr));
	check_value("ctl_kernel_watches_1", kernel_watches(ep), 1);

	struct epoll_event got;
	uint64_t one = 1;
	CASE("ctl_wait_write", EXPECT_OK, write(efd, &one, sizeof(one)));
	CASE("ctl_wait", EXPECT_OK, epoll_wait(ep, &got, 1, 0));
	check_value("ctl_wait_data_is_cafe", got.data.u64 == 0xdeadbeefcafeULL,
		    1);
	CASE("ctl_del_null_event", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_DEL, efd, null_ptr));
	CASE("ctl_del_again", ENOENT, epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	ev = ev_of(EPOLLIN, 1);
	CASE("ctl_readd", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("ctl_del_bad_pointer", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_DEL, efd, bad_ptr));
	check_value("ctl_kernel_watches_0", kernel_watches(ep), 0);

	/* Unknown event bits pass through; EPOLLWAKEUP may be dropped. */
	ev = ev_of(EPOLLIN | EPOLLWAKEUP | 0x00100000, 3);
	CASE("ctl_add_odd_bits", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd2, &ev));
	CASE("ctl_close_watched_last_ref", EXPECT_OK, close(efd2));
	check_value("ctl_kernel_watches_after_close", kernel_watches(ep), 0);

	close(mfd);
	close(exe);
	close(efd);
	close(ep);
	next_fd("nextfd_after_ctl_basic");
}

static void cases_ctl_exclusive(void)
{
	int ep = CASE("excl_epoll_create1", EXPECT_OK, epoll_create1(0));
	int inner = CASE("excl_inner_epoll", EXPECT_OK, epoll_create1(0));
	int efd = CASE("excl_eventfd", EXPECT_OK, eventfd(0, 0));
	int efd2 = CASE("excl_eventfd2", EXPECT_OK, eventfd(0, 0));
	struct epoll_event ev = ev_of(EPOLLIN | EPOLLEXCLUSIVE, 5);

	CASE("excl_epoll_target", EINVAL,
	     epoll_ctl(ep, EPOLL_CTL_ADD, inner, &ev));
	ev = ev_of(EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 5);
	CASE("excl_with_oneshot", EINVAL,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	ev = ev_of(EPOLLIN | EPOLLEXCLUSIVE | EPOLLPRI, 5);
	CASE("excl_with_pri", EINVAL, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	ev = ev_of(EPOLLIN | EPOLLEXCLUSIVE | EPOLLET, 5);
	CASE("excl_add", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	ev = ev_of(EPOLLIN, 6);
	CASE("excl_mod_of_exclusive_watch", EINVAL,
	     epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
	CASE("excl_add_plain", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd2, &ev));
	ev = ev_of(EPOLLIN | EPOLLEXCLUSIVE, 6);
	CASE("excl_mod_with_exclusive", EINVAL,
	     epoll_ctl(ep, EPOLL_CTL_MOD, efd2, &ev));
	CASE("excl_del", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	check_value("excl_kernel_watches", kernel_watches(ep), 1);
	close(efd2);
	close(efd);
	close(inner);
	close(ep);
}

/* A watch whose tfd was closed while a dup keeps the file alive. */
static void cases_ctl_stale(void)
{
	struct epoll_event ev = ev_of(EPOLLIN, 7);
	int ep = CASE("stale_epoll_create1", EXPECT_OK, epoll_create1(0));
	int efd = CASE("stale_eventfd", EXPECT_OK, eventfd(0, 0));
	CASE("stale_add", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	int keep = CASE("stale_dup", EXPECT_OK, dup(efd));
	CASE("stale_close_tfd", EXPECT_OK, close(efd));
	check_value("stale_kernel_watches", kernel_watches(ep), 1);
	CASE("stale_del_closed_tfd", EBADF,
	     epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	CASE("stale_mod_closed_tfd", EBADF,
	     epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
	CASE("stale_del_through_dup", ENOENT,
	     epoll_ctl(ep, EPOLL_CTL_DEL, keep, NULL));
	/* The number is reused by another file: still not that watch. */
	int other = CASE("stale_reuse_number", EXPECT_OK, eventfd(0, 0));
	check_value("stale_reused_same_number", other, efd);
	CASE("stale_del_other_file", ENOENT,
	     epoll_ctl(ep, EPOLL_CTL_DEL, other, NULL));
	CASE("stale_add_other_file", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, other, &ev));
	check_value("stale_kernel_watches_2", kernel_watches(ep), 2);
	/* Put the watched file back at its number: the watch answers again. */
	CASE("stale_dup2_back", EXPECT_OK, dup2(keep, efd));
	CASE("stale_del_after_dup2_back", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	check_value("stale_kernel_watches_3", kernel_watches(ep), 0);
	CASE("stale_close_keep", EXPECT_OK, close(keep));
	CASE("stale_close_last", EXPECT_OK, close(efd));
	check_value("stale_kernel_watches_4", kernel_watches(ep), 0);
	close(ep);
}

static void cases_ctl_nesting(void)
{
	struct epoll_event ev = ev_of(EPOLLIN, 9);
	int a = CASE("nest_a", EXPECT_OK, epoll_create1(0));
	int b = CASE("nest_b", EXPECT_OK, epoll_create1(0));
	CASE("nest_a_in_b", EXPECT_OK, epoll_ctl(b, EPOLL_CTL_ADD, a, &ev));
	CASE("nest_b_in_a", ELOOP, epoll_ctl(a, EPOLL_CTL_ADD, b, &ev));
	CASE("nest_raw_b_in_a", ELOOP, raw_ctl(a, EPOLL_CTL_ADD, b, &ev));

	int e[6], f[6];
	char name[64];
	for (int i = 0; i < 6; i++)
		e[i] = CASE("nest_chain_create", EXPECT_OK, epoll_create1(0));
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "nest_e%d_holds_e%d", i, i + 1);
		CASE(name, EXPECT_OK,
		     epoll_ctl(e[i], EPOLL_CTL_ADD, e[i + 1], &ev));
	}
	CASE("nest_e4_holds_e5", ELOOP, epoll_ctl(e[4], EPOLL_CTL_ADD, e[5], &ev));
	/* The other direction: the chain is built from the bottom up. */
	for (int i = 0; i < 6; i++)
		f[i] = CASE("nest_rev_create", EXPECT_OK, epoll_create1(0));
	for (int i = 4; i > 0; i--) {
		snprintf(name, sizeof(name), "nest_f%d_holds_f%d", i, i + 1);
		CASE(name, EXPECT_OK,
		     epoll_ctl(f[i], EPOLL_CTL_ADD, f[i + 1], &ev));
	}
	CASE("nest_f0_holds_f1", ELOOP, epoll_ctl(f[0], EPOLL_CTL_ADD, f[1], &ev));
	CASE("nest_del_f2_from_f1", EXPECT_OK,
	     epoll_ctl(f[1], EPOLL_CTL_DEL, f[2], NULL));
	CASE("nest_f0_holds_f1_now", EXPECT_OK,
	     epoll_ctl(f[0], EPOLL_CTL_ADD, f[1], &ev));
	/* Closing the inner set releases it: the outer watch goes. */
	CASE("nest_close_e4", EXPECT_OK, close(e[4]));
	check_value("nest_e3_watches", kernel_watches(e[3]), 0);
	CASE("nest_e4_reuse_holds_e5", EXPECT_OK,
	     epoll_ctl(e[3], EPOLL_CTL_ADD, e[5], &ev));
	for (int i = 5; i >= 0; i--) {
		if (i != 4)
			close(e[i]);
		close(f[i]);
	}
	close(b);
	close(a);
	next_fd("nextfd_after_nesting");
}

/* Raw syscalls: the shim sees none of them and must cope. */
static void cases_raw(void)
{
	struct epoll_event ev = ev_of(EPOLLIN, 11);
	int ep = CASE("raw_epoll_create1", EXPECT_OK,
		      syscall(SYS_epoll_create1, 0));
	CASE("raw_epoll_create1_bad_flag", EINVAL,
	     syscall(SYS_epoll_create1, 1));
	int efd = CASE("raw_eventfd", EXPECT_OK, syscall(SYS_eventfd2, 0, 0));
	CASE("raw_ctl_add", EXPECT_OK, raw_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("raw_ctl_add_twice", EEXIST, raw_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("raw_ctl_add_twice_libc", EEXIST,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("raw_ctl_mod_libc", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
	CASE("raw_ctl_del_libc", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	CASE("raw_ctl_del_missing", ENOENT,
	     raw_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	CASE("raw_ctl_libc_add", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("raw_ctl_raw_del", EXPECT_OK, raw_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	CASE("raw_ctl_libc_mod_gone", ENOENT,
	     epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
	CASE("raw_ctl_unknown_op", EINVAL, raw_ctl(ep, 42, efd, &ev));
	CASE("raw_ctl_null_event", EFAULT,
	     raw_ctl(ep, EPOLL_CTL_ADD, efd, null_ptr));
	CASE("raw_ctl_self", EINVAL, raw_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
	CASE("raw_ctl_epfd_bad", EBADF,
	     raw_ctl(CLOSED_FD, EPOLL_CTL_ADD, efd, &ev));
	CASE("raw_close_efd", EXPECT_OK, syscall(SYS_close, efd));
	CASE("raw_close_twice", EBADF, syscall(SYS_close, efd));
	int d = CASE("raw_dup_set", EXPECT_OK, syscall(SYS_dup, ep));
	CASE("raw_close_ep", EXPECT_OK, close(ep));
	CASE("raw_close_dup", EXPECT_OK, close(d));
	next_fd("nextfd_after_raw");
}

static void cases_close_dup(void)
{
	CASE("close_neg", EBADF, close(-1));
	CASE("close_not_open", EBADF, close(CLOSED_FD));
	CASE("close_huge", EBADF, close(HUGE_FD));
	int efd = CASE("dup_eventfd", EXPECT_OK, eventfd(0, 0));
	int t = CASE("close_twice_open", EXPECT_OK, eventfd(0, 0));
	CASE("close_twice_first", EXPECT_OK, close(t));
	CASE("close_twice_second", EBADF, close(t));

	CASE("dup_neg", EBADF, dup(-1));
	CASE("dup_not_open", EBADF, dup(CLOSED_FD));
	int d = CASE("dup_ok", EXPECT_OK, dup(efd));
	CASE("dup_ok_not_cloexec", EXPECT_OK, fcntl(d, F_GETFD));
	CASE("dup2_same", EXPECT_OK, dup2(efd, efd));
	CASE("dup2_same_not_open", EBADF, dup2(CLOSED_FD, CLOSED_FD));
	CASE("dup2_bad_old", EBADF, dup2(CLOSED_FD, 100));
	CASE("dup2_neg_new", EBADF, dup2(efd, -1));
	CASE("dup2_huge_new", EBADF, dup2(efd, HUGE_FD));
	CASE("dup2_new", EXPECT_OK, dup2(efd, 100));
	CASE("dup3_same", EINVAL, dup3(efd, efd, 0));
	CASE("dup3_same_cloexec", EINVAL, dup3(efd, efd, O_CLOEXEC));
	CASE("dup3_bad_flags", EINVAL, dup3(efd, 101, 0x1234));
	CASE("dup3_bad_old", EBADF, dup3(CLOSED_FD, 101, 0));
	CASE("dup3_cloexec", EXPECT_OK, dup3(efd, 101, O_CLOEXEC));
	CASE("dup3_cloexec_getfd", EXPECT_OK, fcntl(101, F_GETFD));

	/* dup2 onto an open fd: an epoll fd becomes an eventfd. */
	struct epoll_event ev = ev_of(EPOLLIN, 13);
	int ep = CASE("dup2_onto_epoll_create", EXPECT_OK, epoll_create1(0));
	CASE("dup2_onto_epoll_add", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev));
	CASE("dup2_onto_epoll", EXPECT_OK, dup2(efd, ep));
	CASE("dup2_onto_epoll_now_not_epoll", EINVAL,
	     epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev));
	int ep2 = CASE("dup2_epoll_over_watched", EXPECT_OK, epoll_create1(0));
	CASE("dup2_epoll_over_watched_add", EXPECT_OK,
	     epoll_ctl(ep2, EPOLL_CTL_ADD, d, &ev));
	CASE("dup2_epoll_over_watched_dup2", EXPECT_OK, dup2(ep2, d));
	check_value("dup2_epoll_over_watched_kernel", kernel_watches(ep2), 1);
	CASE("dup2_epoll_over_watched_del_self", EINVAL,
	     epoll_ctl(ep2, EPOLL_CTL_DEL, d, NULL));

	CASE("fcntl_dupfd_above_limit", EINVAL, fcntl(efd, F_DUPFD, HUGE_FD));
	CASE("fcntl_dupfd_neg", EINVAL, fcntl(efd, F_DUPFD, -1));
	CASE("fcntl_dupfd_bad_fd", EBADF, fcntl(CLOSED_FD, F_DUPFD, 0));
	CASE("fcntl_dupfd", EXPECT_OK, fcntl(efd, F_DUPFD, 200));
	CASE("fcntl_dupfd_next", EXPECT_OK, fcntl(efd, F_DUPFD, 200));
	CASE("fcntl_dupfd_cloexec", EXPECT_OK, fcntl(efd, F_DUPFD_CLOEXEC, 300));
	CASE("fcntl_dupfd_cloexec_getfd", EXPECT_OK, fcntl(300, F_GETFD));
	CASE("fcntl_dupfd_cloexec_above_limit", EINVAL,
	     fcntl(efd, F_DUPFD_CLOEXEC, HUGE_FD));
	CASE("fcntl_getfl", EXPECT_OK, fcntl(efd, F_GETFL));
	CASE("fcntl_setfl", EXPECT_OK, fcntl(efd, F_SETFL, O_NONBLOCK));
	CASE("fcntl_getfl_after", EXPECT_OK, fcntl(efd, F_GETFL));
	CASE("fcntl_bad_cmd", EINVAL, fcntl(efd, 0x7fff));

	/* close_range: a small range, CLOEXEC, bad arguments. */
	CASE("close_range_prep_a", EXPECT_OK, dup2(efd, 400));
	CASE("close_range_prep_b", EXPECT_OK, dup2(efd, 402));
	CASE("close_range_prep_c", EXPECT_OK, dup2(efd, 405));
	CASE("close_range_cloexec", EXPECT_OK,
	     close_range(400, 402, CLOSE_RANGE_CLOEXEC));
	CASE("close_range_cloexec_getfd_a", EXPECT_OK, fcntl(400, F_GETFD));
	CASE("close_range_cloexec_getfd_c", EXPECT_OK, fcntl(405, F_GETFD));
	CASE("close_range_bad_flags", EINVAL, close_range(400, 405, 0x80));
	CASE("close_range_bad_flags_kept", EXPECT_OK, fcntl(400, F_GETFD));
	CASE("close_range_first_above_last", EINVAL, close_range(405, 400, 0));
	CASE("close_range_unshare", EXPECT_OK,
	     close_range(405, 405, CLOSE_RANGE_UNSHARE));
	CASE("close_range_unshare_closed", EBADF, fcntl(405, F_GETFD));
	CASE("close_range_small", EXPECT_OK, close_range(399, 403, 0));
	CASE("close_range_small_a", EBADF, fcntl(400, F_GETFD));
	CASE("close_range_small_b", EBADF, fcntl(402, F_GETFD));
	CASE("close_range_raw", EXPECT_OK, syscall(SYS_close_range, 300, 300, 0));
	CASE("close_range_raw_closed", EBADF, fcntl(300, F_GETFD));

	close(201);
	close(200);
	close(101);
	close(100);
	close(ep2);
	close(ep);
	close(d);
	close(efd);
	next_fd("nextfd_after_close_dup");
}

static void cases_socket(void)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(addr);
	int sv[2] = { -1, -1 };
	int efd = eventfd(0, 0);

	CASE("socket_bad_domain", EAFNOSUPPORT, socket(12345, SOCK_STREAM, 0));
	CASE("socket_bad_type", EINVAL, socket(AF_INET, 12345, 0));
	CASE("socket_bad_flag", EINVAL, socket(AF_INET, SOCK_STREAM | 0x100000, 0));
	CASE("socket_bad_protocol", EPROTONOSUPPORT,
	     socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
	CASE("socketpair_inet", EOPNOTSUPP,
	     socketpair(AF_INET, SOCK_STREAM, 0, sv));
	CASE("socketpair_bad_pointer", EFAULT,
	     socketpair(AF_UNIX, SOCK_STREAM, 0, bad_ptr));
	CASE("socketpair", EXPECT_OK,
	     socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	check_value("socketpair_fd0", sv[0], sv[0]);
	check_value("socketpair_fd1", sv[1], sv[1]);
	int udp = CASE("socket_udp", EXPECT_OK, socket(AF_INET, SOCK_DGRAM, 0));
	int tcp = CASE("socket_tcp", EXPECT_OK,
		       socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));

	CASE("accept4_not_listening", EINVAL, accept4(tcp, NULL, NULL, 0));
	CASE("accept_not_socket", ENOTSOCK, accept(efd, NULL, NULL));
	CASE("accept_bad_fd", EBADF, accept(CLOSED_FD, NULL, NULL));
	CASE("accept_udp", EOPNOTSUPP, accept(udp, NULL, NULL));
	CASE("bind_bad_fd", EBADF, bind(CLOSED_FD, (void *)&addr, len));
	CASE("bind_not_socket", ENOTSOCK, bind(efd, (void *)&addr, len));
	CASE("bind_short_len", EINVAL, bind(tcp, (void *)&addr, 2));
	CASE("bind", EXPECT_OK, bind(tcp, (void *)&addr, len));
	CASE("bind_twice", EINVAL, bind(tcp, (void *)&addr, len));
	CASE("listen_udp", EOPNOTSUPP, listen(udp, 5));
	CASE("listen_bad_fd", EBADF, listen(CLOSED_FD, 5));
	CASE("listen_not_socket", ENOTSOCK, listen(efd, 5));
	CASE("listen", EXPECT_OK, listen(tcp, 7));
	CASE("listen_again", EXPECT_OK, listen(tcp, 9));
	CASE("accept4_bad_flags", EINVAL, accept4(tcp, NULL, NULL, 0x1234));
	CASE("accept4_none_pending", EAGAIN, accept4(tcp, NULL, NULL, 0));
	CASE("getsockname", EXPECT_OK, getsockname(tcp, (void *)&addr, &len));
	int cli = CASE("socket_client", EXPECT_OK, socket(AF_INET, SOCK_STREAM, 0));
	CASE("connect", EXPECT_OK, connect(cli, (void *)&addr, len));
	int acc = CASE("accept4", EXPECT_OK,
		       accept4(tcp, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK));
	CASE("accept4_getfd", EXPECT_OK, fcntl(acc, F_GETFD));
	CASE("connect_again", EXPECT_OK,
	     (close(cli), cli = socket(AF_INET, SOCK_STREAM, 0),
	      connect(cli, (void *)&addr, len)));
	int acc2 = CASE("accept", EXPECT_OK, accept(tcp, NULL, NULL));

	struct epoll_event ev = ev_of(EPOLLIN | EPOLLEXCLUSIVE, 17);
	int ep = CASE("socket_epoll", EXPECT_OK, epoll_create1(0));
	CASE("socket_add_listener_excl", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, tcp, &ev));
	ev = ev_of(EPOLLIN | EPOLLRDHUP | EPOLLET, 18);
	CASE("socket_add_accepted", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, acc, &ev));
	CASE("socket_add_pair", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev));
	check_value("socket_kernel_watches", kernel_watches(ep), 3);

	close(ep);
	close(acc2);
	close(acc);
	close(cli);
	close(tcp);
	close(udp);
	close(sv[1]);
	close(sv[0]);
	close(efd);
	next_fd("nextfd_after_socket");
}

static void cases_fdcreate(void)
{
	int p[2] = { -1, -1 };
	CASE("pipe2_bad_flags", EINVAL, pipe2(p, 0x1234));
	CASE("pipe_bad_pointer", EFAULT, pipe(bad_ptr));
	CASE("pipe2_bad_pointer", EFAULT, pipe2(bad_ptr, O_CLOEXEC));
	CASE("pipe", EXPECT_OK, pipe(p));
	check_value("pipe_read_end", p[0], p[0]);
	check_value("pipe_write_end", p[1], p[1]);
	close(p[0]);
	close(p[1]);
	CASE("pipe2", EXPECT_OK, pipe2(p, O_CLOEXEC | O_NONBLOCK));
	check_value("pipe2_read_end", p[0], p[0]);
	close(p[0]);
	close(p[1]);

	CASE("eventfd_bad_flags", EINVAL, eventfd(0, 0x1234));
	int efd = CASE("eventfd_semaphore", EXPECT_OK,
		       eventfd(3, EFD_SEMAPHORE | EFD_CLOEXEC));
	CASE("timerfd_bad_clock", EINVAL, timerfd_create(12345, 0));
	CASE("timerfd_bad_flags", EINVAL,
	     timerfd_create(CLOCK_MONOTONIC, 0x1234));
	int tfd = CASE("timerfd", EXPECT_OK,
		       timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	CASE("signalfd_not_signalfd", EINVAL, signalfd(efd, &mask, 0));
	CASE("signalfd_bad_fd", EBADF, signalfd(CLOSED_FD, &mask, 0));
	CASE("signalfd_bad_flags", EINVAL, signalfd(-1, &mask, 0x1234));
	/* Through a pointer: the declaration's nonnull would trip UBSan. */
	int (*signalfd_fn)(int, const sigset_t *, int) = signalfd;
	CASE("signalfd_null_mask", EFAULT, signalfd_fn(-1, null_ptr, 0));
	int sfd = CASE("signalfd", EXPECT_OK, signalfd(-1, &mask, SFD_CLOEXEC));
	sigaddset(&mask, SIGUSR2);
	CASE("signalfd_update", EXPECT_OK, signalfd(sfd, &mask, 0));

	CASE("inotify_init1_bad_flags", EINVAL, inotify_init1(0x1234));
	int ino = CASE("inotify_init1", EXPECT_OK, inotify_init1(IN_CLOEXEC));

	struct epoll_event ev = ev_of(EPOLLIN, 19);
	int ep = CASE("fdcreate_epoll", EXPECT_OK, epoll_create1(0));
	CASE("fdcreate_add_timerfd", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev));
	CASE("fdcreate_add_signalfd", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev));
	CASE("fdcreate_add_inotify", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, ino, &ev));
	CASE("fdcreate_add_eventfd", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	struct epoll_event got[4];
	CASE("fdcreate_wait", EXPECT_OK, epoll_wait(ep, got, 4, 0));
	check_value("fdcreate_kernel_watches", kernel_watches(ep), 4);
	close(ep);
	close(ino);
	close(sfd);
	close(tfd);
	close(efd);
	next_fd("nextfd_after_fdcreate");
}

/* The child works on the inherited set; its exit status says how it went. */
static int fork_child(int ep, int efd)
{
	struct epoll_event ev = ev_of(EPOLLOUT, 23);
	if (epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev) != 0)
		return 10;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != -1 || errno != EEXIST)
		return 11;
	int own = epoll_create1(0);
	if (own < 0 || epoll_ctl(own, EPOLL_CTL_ADD, efd, &ev) != 0)
		return 12;
	if (close(efd) != 0 || close(efd) != -1 || errno != EBADF)
		return 13;
	if (kernel_watches(ep) != 1 || kernel_watches(own) != 1)
		return 14;
	return 0;
}

static void cases_fork(void)
{
	struct epoll_event ev = ev_of(EPOLLIN, 21);
	int ep = CASE("fork_epoll", EXPECT_OK, epoll_create1(0));
	int efd = CASE("fork_eventfd", EXPECT_OK, eventfd(0, 0));
	CASE("fork_add", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	fflush(stdout);
	errno = ERRNO_PRESERVE;
	pid_t pid = fork();
	if (pid == 0)
		_exit(errno == ERRNO_PRESERVE ? fork_child(ep, efd) : 9);
	int err = errno;
	check_value("fork_parent_ok", pid > 0, 1);
	check_value("fork_parent_errno_kept", err, ERRNO_PRESERVE);
	int status = -1;
	CASE("fork_waitpid_is_child", EXPECT_OK, waitpid(pid, &status, 0) == pid);
	check_value("fork_child_status", status, 0);
	/* The child's MOD is in the shared set. */
	struct fdinfo_util_watch w[4];
	char text[4096];
	size_t n = 0;
	fdinfo_util_epoll_watches(ep, text, sizeof(text), w, 4, &n);
	check_value("fork_kernel_watches", (long)n, 1);
	check_value("fork_kernel_events_from_child", n ? (long)w[0].events : -1,
		    EPOLLOUT | EPOLLERR | EPOLLHUP);
	CASE("fork_parent_del", EXPECT_OK,
	     epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
	close(efd);
	close(ep);
	next_fd("nextfd_after_fork");
}

/* A successful call leaves errno as it found it, shim or not. */
static void cases_errno_preserved(void)
{
	struct epoll_event ev = ev_of(EPOLLIN, 31);
	int p[2];
	int ep, efd, d;

	errno = ERRNO_PRESERVE;
	ep = epoll_create1(0);
	check_value("errno_preserved_epoll_create1", errno, ERRNO_PRESERVE);
	efd = eventfd(0, 0);
	check_value("errno_preserved_eventfd", errno, ERRNO_PRESERVE);
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	check_value("errno_preserved_epoll_ctl_add", errno, ERRNO_PRESERVE);
	epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev);
	check_value("errno_preserved_epoll_ctl_mod", errno, ERRNO_PRESERVE);
	d = dup(efd);
	check_value("errno_preserved_dup", errno, ERRNO_PRESERVE);
	dup2(efd, d);
	check_value("errno_preserved_dup2", errno, ERRNO_PRESERVE);
	dup3(ep, d, O_CLOEXEC);
	check_value("errno_preserved_dup3", errno, ERRNO_PRESERVE);
	close(fcntl(ep, F_DUPFD_CLOEXEC, 500));
	check_value("errno_preserved_fcntl_dupfd", errno, ERRNO_PRESERVE);
	close(d);
	check_value("errno_preserved_close", errno, ERRNO_PRESERVE);
	(void)!pipe2(p, O_CLOEXEC); /* its errno is what is checked */
	check_value("errno_preserved_pipe2", errno, ERRNO_PRESERVE);
	close_range((unsigned)p[0], (unsigned)p[0], 0);
	close_range((unsigned)p[1], (unsigned)p[1], 0);
	check_value("errno_preserved_close_range", errno, ERRNO_PRESERVE);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	check_value("errno_preserved_socket", errno, ERRNO_PRESERVE);
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL);
	check_value("errno_preserved_epoll_ctl_del", errno, ERRNO_PRESERVE);
	close(s);
	close(efd);
	close(ep);
	check_value("errno_preserved_close_watched", errno, ERRNO_PRESERVE);

	/* And a failing call sets the kernel's errno, not another. */
	errno = ERRNO_PRESERVE;
	close(CLOSED_FD);
	check_value("errno_failure_close_is_ebadf", errno, EBADF);
}

/*
 * close_range(3, ~0U, 0) closes everything the program (and the shim) has
 * above stderr; the shim must carry on and take no low number afterwards.
 */
static void cases_close_everything(void)
{
	struct epoll_event ev = ev_of(EPOLLIN, 41);
	int ep = CASE("all_epoll", EXPECT_OK, epoll_create1(0));
	int efd = CASE("all_eventfd", EXPECT_OK, eventfd(0, 0));
	CASE("all_add", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("all_close_range", EXPECT_OK, close_range(3, ~0U, 0));
	CASE("all_closed_ep", EBADF, fcntl(ep, F_GETFD));
	next_fd("nextfd_after_close_range_all");
	ep = CASE("all_epoll_again", EXPECT_OK, epoll_create1(0));
	efd = CASE("all_eventfd_again", EXPECT_OK, eventfd(0, 0));
	CASE("all_add_again", EXPECT_OK, epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	CASE("all_dup2_again", EXPECT_OK, dup2(efd, 60));
	CASE("all_close_again", EXPECT_OK, close(efd));
	check_value("all_kernel_watches", kernel_watches(ep), 1);
	CASE("all_close_60", EXPECT_OK, close(60));
	check_value("all_kernel_watches_0", kernel_watches(ep), 0);
	close(ep);
	next_fd("nextfd_end");
}

int main(void)
{
	/* The script asks whether the preload took effect at all. */
	if (getenv("ERRNO_MATRIX_REQUIRE_SHIM") &&
	    !dlsym(RTLD_DEFAULT, "epollcr_shadow_print")) {
		fprintf(stderr, "errno_matrix: the shim is not loaded\n");
		return 3;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	next_fd("nextfd_start");
	cases_epoll_create();
	cases_ctl_basic();
	cases_ctl_exclusive();
	cases_ctl_stale();
	cases_ctl_nesting();
	cases_raw();
	cases_close_dup();
	cases_socket();
	cases_fdcreate();
	cases_fork();
	cases_errno_preserved();
	cases_close_everything();
	if (unexpected) {
		fprintf(stderr, "errno_matrix: %u cases disagree with the kernel facts\n",
			unexpected);
		return 1;
	}
	return 0;
}
