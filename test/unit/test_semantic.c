// SPDX-License-Identifier: MIT
/*
 * The semantic fuzzer: VALID images with random meaning (test/imggen.h)
 * go through epollcr_restore() and show (text and JSON).
 *
 * Around every restore the whole fd table is snapshot (each open fd's
 * number, st_dev, st_ino and fd flags, from the kernel) and:
 * - a failed restore must leave it exactly as it was;
 * - a successful one may only add fds the image names (which the test
 *   then closes, and the table must again be as it was);
 * - a failed one leaves no unix socket file in the test's socket
 *   directory, a successful one gives each file there the recorded mode.
 * Failures are injected: the syscalls the restore makes (socket, pipe2,
 * dup3, fcntl, epoll_ctl, bind...) are wrapped here, and the k-th call of a
 * run fails, for k drawn over the calls a clean run made.
 *
 * EPOLLCR_SEMANTIC_IMAGES (default 150) and EPOLLCR_SEMANTIC_SEED (default
 * 1) choose the run; `make check` runs the default (seconds), `make fuzz`
 * a long one (test/fuzz/fuzz.mk).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "epollcr.h"
#include "epollcr_image.h"
#include "image_io.h"
#include "imggen.h"
#include "log.h"
#include "show.h"

/* ---- injected failures ---- */

static long fault_calls;  /* wrapped calls made while armed */
static long fault_at;	  /* the call that fails (1-based), 0: none */
static bool fault_armed;  /* only inside the restore */
static int fault_errno = EMFILE;

/* Whether this call is the one to fail (errno is then set). */
static bool fault_now(void)
{
	if (!fault_armed)
		return false;
	if (++fault_calls != fault_at)
		return false;
	errno = fault_errno;
	return true;
}

#define REAL(name) ((__typeof__(&name))real_sym(#name))

static void *real_sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p)
		abort();
	return p;
}

#define WRAP(ret, name, params, args)                                         \
	ret name params                                                       \
	{                                                                     \
		if (fault_now())                                              \
			return -1;                                            \
		return REAL(name) args;                                       \
	}

WRAP(int, socket, (int d, int t, int p), (d, t, p))
WRAP(int, socketpair, (int d, int t, int p, int sv[2]), (d, t, p, sv))
WRAP(int, pipe2, (int fds[2], int flags), (fds, flags))
WRAP(int, eventfd, (unsigned int v, int flags), (v, flags))
WRAP(int, timerfd_create, (int c, int flags), (c, flags))
WRAP(int, timerfd_settime,
     (int fd, int flags, const struct itimerspec *n, struct itimerspec *o),
     (fd, flags, n, o))
WRAP(int, signalfd, (int fd, const sigset_t *m, int flags), (fd, m, flags))
WRAP(int, epoll_create1, (int flags), (flags))
WRAP(int, epoll_ctl, (int ep, int op, int fd, struct epoll_event *e),
     (ep, op, fd, e))
WRAP(int, dup3, (int a, int b, int flags), (a, b, flags))
WRAP(int, bind, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))
WRAP(int, listen, (int fd, int n), (fd, n))
WRAP(int, connect, (int fd, const struct sockaddr *a, socklen_t l),
     (fd, a, l))

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (fault_now())
		return -1;
	return REAL(fcntl)(fd, cmd, arg);
}

/* ---- the fd table, from the kernel ---- */

struct fd_entry {
	int fd;
	dev_t dev;
	ino_t ino;
	int fd_flags;
};

struct fd_table {
	struct fd_entry e[512];
	int n;
};

static int cmp_entry(const void *a, const void *b)
{
	const struct fd_entry *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

static void fd_snapshot(struct fd_table *t)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	assert_non_null(d);
	t->n = 0;
	while ((de = readdir(d))) {
		struct stat st;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fstat(fd, &st) < 0)
			continue;
		assert_true(t->n < (int)(sizeof(t->e) / sizeof(t->e[0])));
		t->e[t->n++] = (struct fd_entry){ fd, st.st_dev, st.st_ino,
						  REAL(fcntl)(fd, F_GETFD) };
	}
	closedir(d);
	qsort(t->e, (size_t)t->n, sizeof(t->e[0]), cmp_entry);
}

static bool fd_in_image(const struct image *img, int fd)
{
	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd == fd)
			return true;
	return false;
}

/* Whether the restore's report says it kept fd open (a file no fd held). */
static bool fd_kept(const char *report, int fd)
{
	char needle[48];

	snprintf(needle, sizeof(needle), "kept open at fd %d ", fd);
	return report && strstr(report, needle);
}

/*
 * The table now against before: equal, or plus image fds and fds the
 * report says were kept open (closed here).
 */
static void fd_compare(const struct fd_table *before, const struct image *img,
		       const char *report, bool restored, unsigned long seed,
		       long k)
{
	struct fd_table now;
	int i = 0, j = 0;

	fd_snapshot(&now);
	while (i < before->n || j < now.n) {
		const struct fd_entry *b = i < before->n ? &before->e[i] : NULL;
		const struct fd_entry *a = j < now.n ? &now.e[j] : NULL;

		if (b && a && a->fd == b->fd) {
			if (a->dev != b->dev || a->ino != b->ino ||
			    a->fd_flags != b->fd_flags)
				fail_msg("seed %lu fault %ld: fd %d changed (ino %lu -> %lu, flags %d -> %d)",
					 seed, k, a->fd, (unsigned long)b->ino,
					 (unsigned long)a->ino, b->fd_flags,
					 a->fd_flags);
			i++, j++;
		} else if (a && (!b || a->fd < b->fd)) {
			if (!restored || !(fd_in_image(img, a->fd) ||
					   fd_kept(report, a->fd)))
				fail_msg("seed %lu fault %ld: fd %d left open by a %s restore",
					 seed, k, a->fd,
					 restored ? "successful" : "failed");
			close(a->fd);
			j++;
		} else {
			fail_msg("seed %lu fault %ld: fd %d was closed", seed,
				 k, b->fd);
		}
	}
}

/* ---- the run ---- */

static char work_dir[64];
static char sock_dir[96];

/* Remove what a successful restore bound in the socket directory. */
static void clean_sock_dir(void)
{
	DIR *d = opendir(sock_dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' || de->d_name[1] > '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/*
 * After a restore: a failed one leaves no socket file in sock_dir (it
 * removes what it bound); a successful one bound each file there with
 * the mode its socket records (when the image has one).
 */
static void check_sock_dir(const struct image *img, bool ok,
			   unsigned long seed, long k)
{
	size_t dlen = strlen(sock_dir);
	DIR *d = opendir(sock_dir);
	struct dirent *de;

	assert_non_null(d);
	while (!ok && (de = readdir(d)))
		if (de->d_name[0] != '.' || de->d_name[1] > '.')
			fail_msg("seed %lu, fault at call %ld: the failed restore left %s/%s behind",
				 seed, k, sock_dir, de->d_name);
	closedir(d);
	for (uint32_t i = 0; ok && i < img->ntargets; i++) {
		const struct image_socket *s = &img->targets[i].u.sock;
		const struct sockaddr_un *un = (const void *)s->addrp;
		char path[sizeof(un->sun_path) + 1];
		size_t n;
		struct stat st;

		if (img->targets[i].kind != IMAGE_KIND_SOCKET ||
		    s->domain != AF_UNIX || !s->file_mode)
			continue;
		n = image_sun_path_len(s->addrp, s->addr_len);
		memcpy(path, un->sun_path, n);
		path[n] = '\0';
		if (strncmp(path, sock_dir, dlen) || path[dlen] != '/' ||
		    lstat(path, &st) < 0) /* elsewhere, or left out */
			continue;
		if (!S_ISSOCK(st.st_mode) ||
		    (st.st_mode & 0777) != (s->file_mode & 0777))
			fail_msg("seed %lu: %s has mode 0%o, the image says 0%o",
				 seed, path, (unsigned)st.st_mode,
				 (unsigned)s->file_mode);
	}
}

/* One restore, fault at call k (0: none); returns its result. */
static int restore_once(const char *path, const struct image *img,
			const struct epollcr_restore_options *o,
			unsigned long seed, long k, long *calls)
{
	struct epollcr_restore_options opts = *o;
	static char report[1 << 16];
	struct fd_table before;
	char err[512];
	ssize_t len;
	int ret;

	opts.report_fd = memfd_create("report", MFD_CLOEXEC);
	assert_true(opts.report_fd >= 0);
	fd_snapshot(&before);
	fault_calls = 0;
	fault_at = k;
	fault_armed = true;
	ret = epollcr_restore(path, &opts, err, sizeof(err));
	fault_armed = false;
	if (calls)
		*calls = fault_calls;
	if (ret < 0 && strchr(err, '\n'))
		fail_msg("seed %lu: a message of more than one line: %s", seed,
			 err);
	len = pread(opts.report_fd, report, sizeof(report) - 1, 0);
	report[len > 0 ? len : 0] = '\0';
	fd_compare(&before, img, report, ret == 0, seed, k);
	close(opts.report_fd);
	check_sock_dir(img, ret == 0, seed, k);
	clean_sock_dir();
	return ret;
}

/* show, text (with its helpers now and then) and JSON. */
static void show_both(const struct image *img, int null_fd, bool helpers)
{
	assert_int_equal(show_image_text(img, null_fd,
					 helpers ? 0 : SHOW_NO_ADDR2LINE),
			 0);
	assert_int_equal(show_image_json(img, null_fd), 0);
}

/* Module paths of every sort: ELF, FIFO, device, directory, missing. */
static char fifo_path[96], missing_path[96];
static const char *module_paths[] = { "/bin/true", fifo_path, "/dev/zero",
				      "/", missing_path };

static unsigned long env_ul(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : dflt;
}

static void test_semantic(void **state)
{
	unsigned long n = env_ul("EPOLLCR_SEMANTIC_IMAGES", 150);
	unsigned long seed0 = env_ul("EPOLLCR_SEMANTIC_SEED", 1);
	unsigned long read_ok = 0, restored = 0, faults = 0, fault_fail = 0;
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	char path[160];

	(void)state;
	assert_true(null_fd >= 0);
	snprintf(path, sizeof(path), "%s/image.img", work_dir);
	for (unsigned long s = seed0; s < seed0 + n; s++) {
		struct imggen g = { .state = s * 0x9e3779b97f4a7c15ull + 1,
				    .fd_base = 200, .sock_dir = sock_dir };
		struct epollcr_restore_options o = {
			.targets = EPOLLCR_TARGETS_RECREATE,
			.missing = (s & 1) ? EPOLLCR_MISSING_SKIP
					   : EPOLLCR_MISSING_FAIL,
			.report_fd = null_fd,
		};
		struct image img, back;
		char err[512];
		long calls = 0;

		ig_image(&g, &img, module_paths,
			 sizeof(module_paths) / sizeof(module_paths[0]));
		assert_int_equal(image_write_file(&img, path), 0);
		image_free(&img);
		if (image_read_file(path, &back, err, sizeof(err)) < 0) {
			if (strchr(err, '\n'))
				fail_msg("seed %lu: message of two lines: %s",
					 s, err);
			continue;
		}
		read_ok++;
		show_both(&back, null_fd, s % 64 == 0);
		if (restore_once(path, &back, &o, s, 0, &calls) == 0)
			restored++;
		for (int r = 0; r < 3 && calls > 0; r++) {
			long k = 1 + (long)ig_below(&g, (uint32_t)calls);

			fault_errno = (r & 1) ? EMFILE : ENOMEM;
			faults++;
			if (restore_once(path, &back, &o, s, k, NULL) < 0)
				fault_fail++;
		}
		image_free(&back);
	}
	close(null_fd);
	if (!getenv("EPOLLCR_SEMANTIC_KEEP"))
		unlink(path);
	print_message("semantic: %lu images from seed %lu, %lu read, %lu restored, %lu injected faults (%lu failed the restore), fd table as before every time\n",
		      n, seed0, read_ok, restored, faults, fault_fail);
	/* The generator must mostly make images the reader accepts. */
	assert_true(read_ok * 2 >= n);
	assert_true(restored > 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(work_dir, sizeof(work_dir), "/tmp/epollcr-sem-XXXXXX");
	if (!mkdtemp(work_dir))
		return -1;
	snprintf(sock_dir, sizeof(sock_dir), "%s/s", work_dir);
	if (mkdir(sock_dir, 0700) < 0)
		return -1;
	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", work_dir);
	snprintf(missing_path, sizeof(missing_path), "%s/missing", work_dir);
	if (mkfifo(fifo_path, 0600) < 0)
		return -1;
	/* Under the working directory: allowed by root's policy too. */
	if (chdir(work_dir) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	clean_sock_dir();
	rmdir(sock_dir);
	unlink(fifo_path);
	if (chdir("/") < 0)
		return -1;
	if (!getenv("EPOLLCR_SEMANTIC_KEEP"))
		rmdir(work_dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_semantic),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
