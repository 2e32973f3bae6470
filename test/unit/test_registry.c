// SPDX-License-Identifier: MIT
/*
 * Unit tests of the shadow registry, without LD_PRELOAD: the registry is fed
 * the events the wrappers would report, and must model the kernel's rules
 * (watch keyed by file and fd number; close drops a watch only with the
 * file's last descriptor).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "registry.h"

static int setup(void **state)
{
	(void)state;
	registry_reset();
	return 0;
}

static void ctl(int epfd, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	struct reg_set *set = registry_set_lock(epfd);
	registry_ctl_locked(set, epfd, op, fd, &ev, 0);
	registry_set_unlock(set);
}

static void close_fd(int fd)
{
	registry_fd_closed(fd, registry_fd_peek(fd));
}

static struct reg_set *set_at(int epfd)
{
	return registry_set_of(registry_file_at(epfd));
}

/* The watch (file now at file_fd, tfd) in the set at epfd, or NULL. */
static const struct reg_watch *watch(int epfd, int file_fd, int tfd)
{
	struct reg_set *s = set_at(epfd);
	const struct reg_file *f = registry_file_at(file_fd);
	if (!s || !f)
		return NULL;
	return registry_find_watch(s, f, tfd);
}

static void test_add_mod_del(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_fd_created(4, IMAGE_KIND_EVENTFD, NULL);
	ctl(3, EPOLL_CTL_ADD, 4, EPOLLIN, 42);
	const struct reg_watch *w = watch(3, 4, 4);
	assert_non_null(w);
	assert_int_equal(w->events, EPOLLIN);
	assert_int_equal(w->data, 42);
	ctl(3, EPOLL_CTL_MOD, 4, EPOLLOUT | EPOLLET, 7);
	w = watch(3, 4, 4);
	assert_int_equal(w->events, EPOLLOUT | EPOLLET);
	assert_int_equal(w->data, 7);
	assert_int_equal(registry_set_nwatch(set_at(3)), 1);
	ctl(3, EPOLL_CTL_DEL, 4, 0, 0);
	assert_null(watch(3, 4, 4));
	assert_int_equal(registry_set_nwatch(set_at(3)), 0);
}

/* dup(ef); close(ef): the watch stays, under the old number. */
static void test_dup_then_close_keeps_watch(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_fd_created(5, IMAGE_KIND_EVENTFD, NULL);
	ctl(3, EPOLL_CTL_ADD, 5, EPOLLIN, 1);
	registry_fd_dup(5, 9);
	close_fd(5);
	assert_null(registry_file_at(5));
	const struct reg_watch *w = watch(3, 9, 5);
	assert_non_null(w);
	assert_false(w->uncertain);
	close_fd(9); /* last reference: the kernel drops the watch */
	assert_int_equal(registry_set_nwatch(set_at(3)), 0);
}

/* dup2 onto a watched fd closes it implicitly: its only file goes. */
static void test_dup2_over_watched(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_fd_created(5, IMAGE_KIND_PIPE, NULL);
	registry_fd_created(6, IMAGE_KIND_PIPE, NULL);
	ctl(3, EPOLL_CTL_ADD, 5, EPOLLIN, 1);
	registry_fd_dup(6, 5);
	assert_ptr_equal(registry_file_at(5), registry_file_at(6));
	assert_int_equal(registry_set_nwatch(set_at(3)), 0);
	/* dup2(fd, fd) changes nothing */
	registry_fd_dup(6, 6);
	assert_non_null(registry_file_at(6));
}

/* The same number reused for another file: two distinct watch keys. */
static void test_same_tfd_two_files(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_fd_created(7, IMAGE_KIND_EVENTFD, NULL);
	ctl(3, EPOLL_CTL_ADD, 7, EPOLLIN, 1);
	registry_fd_dup(7, 8); /* keep the first file alive at 8 */
	registry_fd_created(7, IMAGE_KIND_EVENTFD, NULL); /* dup2-like reuse */
	/* fd 7 was replaced: the old file lives on at 8 */
	ctl(3, EPOLL_CTL_ADD, 7, EPOLLOUT, 2);
	assert_int_equal(registry_set_nwatch(set_at(3)), 2);
	assert_int_equal(watch(3, 8, 7)->data, 1);
	assert_int_equal(watch(3, 7, 7)->data, 2);
}

static void test_close_range(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	for (int fd = 10; fd < 20; fd++) {
		registry_fd_created(fd, IMAGE_KIND_EVENTFD, NULL);
		ctl(3, EPOLL_CTL_ADD, fd, EPOLLIN, (uint64_t)fd);
	}
	registry_fd_closed_range(12, 15);
	assert_int_equal(registry_set_nwatch(set_at(3)), 6);
	registry_fd_closed_range(0, ~0u);
	assert_null(registry_file_at(3));
	assert_null(registry_file_at(19));
}

/* Closing the epoll fd frees the set and its watches. */
static void test_close_set(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_fd_created(4, IMAGE_KIND_EVENTFD, NULL);
	ctl(3, EPOLL_CTL_ADD, 4, EPOLLIN, 1);
	close_fd(3);
	assert_null(set_at(3));
	assert_int_equal(registry_file_at(4)->nwatch, 0);
}

/*
 * After fork the files are shared: a close makes watches uncertain, in the
 * child and in the parent.  A real fork, as the atfork handlers see it.
 */
static void test_fork_marks_uncertain(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_fd_created(4, IMAGE_KIND_EVENTFD, NULL);
	ctl(3, EPOLL_CTL_ADD, 4, EPOLLIN, 1);
	registry_fork_prepare();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		registry_fork_child();
		const struct reg_file *f = registry_file_at(4);
		close_fd(4);
		const struct reg_watch *w = registry_find_watch(set_at(3), f, 4);
		_exit(registry_set_shared(set_at(3)) && w && w->uncertain ? 0 : 1);
	}
	registry_fork_parent();
	int status = -1;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(registry_set_shared(set_at(3)));
	const struct reg_file *f = registry_file_at(4);
	close_fd(4);
	const struct reg_watch *w = registry_find_watch(set_at(3), f, 4);
	assert_non_null(w);
	assert_true(w->uncertain);
}

/*
 * A file installed after a fork whose real call may have preceded it: the
 * fork marked every file of the table shared before this one was there, so
 * the install itself must: the next two installs of the thread after a
 * fork are marked shared, the third is not, and without a fork none is.
 */
static void test_install_after_fork_shared(void **state)
{
	(void)state;
	registry_fd_created(9, IMAGE_KIND_EVENTFD, NULL);
	registry_fd_created(10, IMAGE_KIND_EVENTFD, NULL);
	registry_fd_created(8, IMAGE_KIND_EVENTFD, NULL);
	assert_false(registry_file_at(8)->flags & REG_FILE_SHARED);
	/* The atfork handlers of a fork, as the parent runs them. */
	registry_fork_prepare();
	registry_fork_parent();
	assert_true(registry_file_at(9)->flags & REG_FILE_SHARED);
	registry_fd_created(11, IMAGE_KIND_EVENTFD, NULL);
	registry_fd_created(12, IMAGE_KIND_EVENTFD, NULL);
	registry_fd_created(13, IMAGE_KIND_EVENTFD, NULL);
	registry_fd_created(14, IMAGE_KIND_EVENTFD, NULL);
	assert_true(registry_file_at(11)->flags & REG_FILE_SHARED);
	assert_true(registry_file_at(12)->flags & REG_FILE_SHARED);
	assert_false(registry_file_at(13)->flags & REG_FILE_SHARED);
	assert_false(registry_file_at(14)->flags & REG_FILE_SHARED);
}

/* A watch on an fd the shim never saw created is adopted, shared. */
static void test_unknown_fd_adopted(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	ctl(3, EPOLL_CTL_ADD, 30, EPOLLIN, 5);
	const struct reg_file *f = registry_file_at(30);
	assert_non_null(f);
	assert_int_equal(f->kind, IMAGE_KIND_OTHER);
	assert_true(f->flags & REG_FILE_SHARED);
	close_fd(30);
	assert_true(registry_find_watch(set_at(3), f, 30)->uncertain);
	/* and an epoll fd it never saw, too */
	registry_fd_created(31, IMAGE_KIND_EVENTFD, NULL);
	ctl(40, EPOLL_CTL_ADD, 31, EPOLLIN, 6);
	assert_non_null(set_at(40));
	assert_true(registry_set_shared(set_at(40)));
	assert_non_null(watch(40, 31, 31));
}

struct nest_count {
	unsigned visits;
	unsigned max_depth;
};

static int count_visit(void *ctx, struct reg_set *set, unsigned depth)
{
	struct nest_count *c = ctx;
	(void)set;
	c->visits++;
	if (depth > c->max_depth)
		c->max_depth = depth;
	return 0;
}

/* The shadow may hold a cycle the kernel would refuse: walks still end. */
static void test_nested_cyclic_walk(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_set_created(4, 0);
	registry_set_created(5, 0);
	ctl(3, EPOLL_CTL_ADD, 4, EPOLLIN, 0);
	ctl(4, EPOLL_CTL_ADD, 5, EPOLLIN, 0);
	ctl(5, EPOLL_CTL_ADD, 3, EPOLLIN, 0); /* cycle 3 > 4 > 5 > 3 */
	ctl(5, EPOLL_CTL_ADD, 5, EPOLLIN, 0); /* and a self loop */
	struct nest_count c = { 0, 0 };
	assert_int_equal(registry_walk_nested(set_at(3), count_visit, &c, 64), 0);
	assert_int_equal(c.visits, 3);
	assert_int_equal(c.max_depth, 2);
	/* the bound holds whatever the graph */
	c = (struct nest_count){ 0, 0 };
	registry_walk_nested(set_at(3), count_visit, &c, 2);
	assert_int_equal(c.visits, 2);
}

static void test_long_chain_bounded(void **state)
{
	(void)state;
	for (int fd = 100; fd < 400; fd++)
		registry_set_created(fd, 0);
	for (int fd = 100; fd < 399; fd++)
		ctl(fd, EPOLL_CTL_ADD, fd + 1, EPOLLIN, 0);
	struct nest_count c = { 0, 0 };
	registry_walk_nested(set_at(100), count_visit, &c, 1000);
	assert_int_equal(c.visits, 300);
	assert_int_equal(c.max_depth, 299);
}

/* Allocation failures lose bookkeeping, never crash, and are reported. */
static void test_alloc_failure(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	registry_fd_created(4, IMAGE_KIND_EVENTFD, NULL);
	assert_false(registry_incomplete());
	for (unsigned after = 0; after < 4; after++) {
		registry_fail_alloc(after, 1000);
		for (int fd = 50; fd < 60; fd++) {
			registry_fd_created(fd, IMAGE_KIND_EVENTFD, NULL);
			ctl(3, EPOLL_CTL_ADD, fd, EPOLLIN, 0);
			registry_fd_dup(fd, fd + 100);
			ctl(3, EPOLL_CTL_MOD, fd, EPOLLOUT, 0);
			close_fd(fd);
			close_fd(fd + 100);
		}
		registry_set_created(70, 0);
		ctl(70, EPOLL_CTL_ADD, 4, EPOLLIN, 0);
		close_fd(70);
		registry_fail_alloc(0, 0);
		assert_true(registry_incomplete());
	}
	/* the registry still works once memory is back */
	ctl(3, EPOLL_CTL_ADD, 4, EPOLLIN, 9);
	assert_non_null(watch(3, 4, 4));
}

static void test_bytes_per_watch(void **state)
{
	(void)state;
	enum { N = 20000 };
	registry_set_created(3, 0);
	for (int fd = 10; fd < 10 + N; fd++)
		registry_fd_created(fd, IMAGE_KIND_EVENTFD, NULL);
	size_t before = registry_watch_bytes();
	for (int fd = 10; fd < 10 + N; fd++)
		ctl(3, EPOLL_CTL_ADD, fd, EPOLLIN, (uint64_t)fd);
	size_t per_watch = (registry_watch_bytes() - before) / N;
	print_message("registry: %zu bytes per watch\n", per_watch);
	assert_true(per_watch <= 64);
}

struct collect {
	int tfds[16];
	unsigned n;
};

static int collect_watch(void *ctx, const struct reg_watch_view *w)
{
	struct collect *c = ctx;
	if (c->n < 16)
		c->tfds[c->n++] = w->tfd;
	return 0;
}

static int collect_set(void *ctx, struct reg_set *set,
		       const struct reg_file *file)
{
	(void)file;
	return registry_walk_watches(set, collect_watch, ctx);
}

static void test_walk_visits_each_watch_once(void **state)
{
	(void)state;
	registry_set_created(3, 0);
	for (int fd = 4; fd < 12; fd++) {
		registry_fd_created(fd, IMAGE_KIND_EVENTFD, NULL);
		ctl(3, EPOLL_CTL_ADD, fd, EPOLLIN, 0);
	}
	struct collect c = { .n = 0 };
	registry_walk_sets(collect_set, &c);
	assert_int_equal(c.n, 8);
	int seen = 0;
	for (unsigned i = 0; i < c.n; i++)
		seen |= 1 << c.tfds[i];
	assert_int_equal(seen, 0xff0);
}

/*
 * The flags a dump takes from the shadow (registry_fd_fdinfo_flags): a
 * socket's and a pipe's from their creation, followed through F_SETFL,
 * FIONBIO, F_SETFD and the dups; unknown for other kinds, for a dup a
 * signal handler deferred, for a file shared after fork, after
 * registry_fd_flags_lost().
 */
static void test_fdinfo_flags(void **state)
{
	(void)state;
	uint32_t kind = 0, fl = 0;
	struct reg_create sock = { .flags = SOCK_NONBLOCK | SOCK_CLOEXEC,
				   .backlog = -1, .domain = AF_INET,
				   .type = SOCK_STREAM };
	struct reg_create rd = { .flags = O_NONBLOCK | O_DIRECT, .backlog = -1,
				 .pipe_end = 0 };
	struct reg_create wr = { .flags = O_NONBLOCK | O_DIRECT, .backlog = -1,
				 .pipe_end = 1 };
	struct reg_create efd = { .flags = O_NONBLOCK, .backlog = -1 };

	registry_fd_created(5, IMAGE_KIND_SOCKET, &sock);
	assert_true(registry_fd_fdinfo_flags(5, &kind, &fl));
	assert_int_equal(kind, IMAGE_KIND_SOCKET);
	assert_int_equal(fl, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	registry_file_setfl(5, O_APPEND);
	registry_fd_cloexec(5, false);
	assert_true(registry_fd_fdinfo_flags(5, &kind, &fl));
	assert_int_equal(fl, O_RDWR | O_APPEND);
	registry_file_flag(5, O_NONBLOCK, true);
	registry_file_flag(5, O_ASYNC, true);
	assert_true(registry_fd_fdinfo_flags(5, &kind, &fl));
	assert_int_equal(fl, O_RDWR | O_APPEND | O_NONBLOCK | O_ASYNC);
	/* A dup shares the file's flags, has its own FD_CLOEXEC. */
	registry_fd_dup_cloexec(5, 9, true);
	assert_true(registry_fd_fdinfo_flags(9, &kind, &fl));
	assert_int_equal(fl, O_RDWR | O_APPEND | O_NONBLOCK | O_ASYNC |
				     O_CLOEXEC);
	registry_file_setfl(9, 0);
	assert_true(registry_fd_fdinfo_flags(5, &kind, &fl));
	assert_int_equal(fl, O_RDWR);
	/* A deferred dup: FD_CLOEXEC unknown until set. */
	registry_fd_dup(5, 10);
	assert_false(registry_fd_fdinfo_flags(10, &kind, &fl));
	registry_fd_cloexec(10, true);
	assert_true(registry_fd_fdinfo_flags(10, &kind, &fl));
	assert_int_equal(fl, O_RDWR | O_CLOEXEC);
	/* Pipes: O_DIRECT stays on the write end only. */
	registry_fd_created(6, IMAGE_KIND_PIPE, &rd);
	registry_fd_created(7, IMAGE_KIND_PIPE, &wr);
	assert_true(registry_fd_fdinfo_flags(6, &kind, &fl));
	assert_int_equal(fl, O_RDONLY | O_NONBLOCK);
	assert_true(registry_fd_fdinfo_flags(7, &kind, &fl));
	assert_int_equal(fl, O_WRONLY | O_NONBLOCK | O_DIRECT);
	registry_fd_cloexec_range(6, 7);
	assert_true(registry_fd_fdinfo_flags(7, &kind, &fl));
	assert_int_equal(fl, O_WRONLY | O_NONBLOCK | O_DIRECT | O_CLOEXEC);
	/* Other kinds, untracked fds, lost flags: not known. */
	registry_fd_created(8, IMAGE_KIND_EVENTFD, &efd);
	assert_false(registry_fd_fdinfo_flags(8, &kind, &fl));
	assert_false(registry_fd_fdinfo_flags(11, &kind, &fl));
	registry_fd_cloexec(11, true); /* untracked: nothing */
	assert_null(registry_file_at(11));
	registry_fd_flags_lost(6, 6);
	assert_false(registry_fd_fdinfo_flags(6, &kind, &fl));
	registry_file_setfl(6, O_NONBLOCK); /* stays unknown */
	assert_false(registry_fd_fdinfo_flags(6, &kind, &fl));
	/* A number reused by another file takes that file's flags. */
	registry_fd_created(9, IMAGE_KIND_PIPE, &rd);
	assert_true(registry_fd_fdinfo_flags(9, &kind, &fl));
	assert_int_equal(fl, O_RDONLY | O_NONBLOCK);
	/* A spawned child may change any file's flags: none known. */
	registry_fd_created(12, IMAGE_KIND_SOCKET, &sock);
	assert_true(registry_fd_fdinfo_flags(12, &kind, &fl));
	registry_files_flags_shared();
	assert_false(registry_fd_fdinfo_flags(12, &kind, &fl));
	assert_false(registry_fd_fdinfo_flags(9, &kind, &fl));
	registry_fd_created(13, IMAGE_KIND_SOCKET, &sock); /* a new one is */
	assert_true(registry_fd_fdinfo_flags(13, &kind, &fl));
	/* After fork, the files are shared: flags from the kernel. */
	registry_fork_prepare();
	registry_fork_parent();
	assert_false(registry_fd_fdinfo_flags(5, &kind, &fl));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_add_mod_del, setup),
		cmocka_unit_test_setup(test_dup_then_close_keeps_watch, setup),
		cmocka_unit_test_setup(test_dup2_over_watched, setup),
		cmocka_unit_test_setup(test_same_tfd_two_files, setup),
		cmocka_unit_test_setup(test_close_range, setup),
		cmocka_unit_test_setup(test_close_set, setup),
		cmocka_unit_test_setup(test_fork_marks_uncertain, setup),
		cmocka_unit_test_setup(test_install_after_fork_shared, setup),
		cmocka_unit_test_setup(test_unknown_fd_adopted, setup),
		cmocka_unit_test_setup(test_nested_cyclic_walk, setup),
		cmocka_unit_test_setup(test_long_chain_bounded, setup),
		cmocka_unit_test_setup(test_alloc_failure, setup),
		cmocka_unit_test_setup(test_bytes_per_watch, setup),
		cmocka_unit_test_setup(test_walk_visits_each_watch_once, setup),
		cmocka_unit_test_setup(test_fdinfo_flags, setup),
	};
	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
