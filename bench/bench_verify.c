// SPDX-License-Identifier: MIT
/*
 * Issue 14 item 4: `epollcr verify` of another process, for each size N
 * (argv, or 1k, 10k, 100k, 1M; QUICK: 1k and 10k), each size in a fresh
 * process.  A forked child holds the watches (N eventfds in one set, or
 * N/T sets each watching the same T eventfds, see bench_shape_for()) and
 * waits; the parent times what `epollcr verify --pid CHILD` does (the
 * kernel view of the child, kview_snapshot(), then kview_compare() with an
 * image of it taken before) against reading the child's sets'
 * /proc/PID/fdinfo, alternating round by round.  No preload: the child is
 * any process, the view has no shadow to lean on ("verify.other").
 *
 * "verify.shim": the same shape in a child running the shim (this program
 * re-exec'd with "--shim-child" and LD_PRELOAD of the library:
 * EPOLLCR_BENCH_LIB, else libepollcr.so in the build directory above this
 * program), and `epollcr verify --pid CHILD IMAGE` (the command itself:
 * EPOLLCR_BENCH_CLI, else epollcr there; it asks the child's recorder for
 * its image) timed against reading that child's sets' fdinfo, alternating,
 * with an image `epollcr dump` wrote of it first.  The command's own start
 * (exec, dynamic loading, reading IMAGE) is in its time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "bench.h"
#include "image_io.h"
#include "kview.h"

#define SPARE_FDS 64	      /* descriptors needed beside the targets */
#define READ_CHUNK (1u << 20) /* fdinfo read buffer */
#define VERIFY_TARGET 4.0     /* verify time / the sets' fdinfo read */

static char read_buf[READ_CHUNK];

/* The child: the shape's watches, then wait for the parent's word. */
static void child_main(const struct bench_shape *shape, int ready, int hold,
		       int *epfds)
{
	int *fds = calloc(shape->ntargets, sizeof(*fds));
	char c = 1;

	if (!fds)
		_exit(1);
	for (unsigned long i = 0; i < shape->ntargets; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			_exit(1);
	for (unsigned long s = 0; s < shape->nsets; s++) {
		int epfd = epoll_create1(EPOLL_CLOEXEC);

		if (epfd < 0)
			_exit(1);
		epfds[s] = epfd;
		for (unsigned long i = 0; i < shape->ntargets; i++) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.u64 = i };

			if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0)
				_exit(1);
		}
	}
	if (write(ready, epfds, shape->nsets * sizeof(int)) < 0)
		_exit(1);
	(void)!read(hold, &c, 1); /* until the parent closes its end */
	_exit(0);
}

/* Read the child's sets' fdinfo.  Returns the bytes read or -errno. */
static long read_sets(pid_t pid, const int *epfds, unsigned long nsets)
{
	char path[64];
	long total = 0;

	for (unsigned long s = 0; s < nsets; s++) {
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid,
			 epfds[s]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			return -errno;
		for (;;) {
			ssize_t n = read(fd, read_buf, sizeof(read_buf));

			if (n < 0) {
				close(fd);
				return -errno;
			}
			if (n == 0)
				break;
			total += n;
		}
		close(fd);
	}
	return total;
}

/* What `epollcr verify` does: a kernel view of pid compared with img. */
static int verify_once(pid_t pid, const struct image *img)
{
	struct image live;
	int ret;

	image_init(&live);
	ret = kview_snapshot(pid, &live, 0, NULL);
	if (ret == 0)
		ret = kview_compare(img, &live, -1);
	image_free(&live);
	return ret > 0 ? -EPROTO : ret;
}

static unsigned rounds_for(unsigned long n)
{
	if (n <= 1000)
		return bench_rounds(20, 7);
	if (n <= 10000)
		return bench_rounds(7, 3);
	return 3;
}

static void run_other(unsigned long n, double predicted, double exponent,
		      double *op_s, struct bench_shape *shape_out)
{
	static char stop_line[256];
	char size[16], name[64], why[200], note[200];
	struct bench_shape shape;
	int ready[2], hold[2], *epfds;
	struct bench_series s;
	struct image img;
	unsigned rounds = rounds_for(n), budget = bench_quick() ? 20 : 240;
	pid_t pid;
	int ret = 0;

	bench_size_label(n, size, sizeof(size));
	snprintf(name, sizeof(name), "verify.other %s", size);
	if (bench_shape_for(n, SPARE_FDS, &shape, why, sizeof(why)) < 0) {
		bench_report_skip(name, why);
		return;
	}
	snprintf(name, sizeof(name), "verify.other %s", shape.label);
	*shape_out = shape;
	if (predicted * 2 > budget) {
		snprintf(note, sizeof(note), "one verify predicted to take %.0f s (time grows as N^%.1f over the smaller sizes), over this size's %u s budget",
			 predicted, exponent, budget);
		bench_report_skip(name, note);
		return;
	}
	epfds = calloc(shape.nsets, sizeof(*epfds));
	if (!epfds || pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) {
		bench_report_skip(name, "no memory or pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		child_main(&shape, ready[1], hold[0], epfds);
	}
	close(ready[1]);
	close(hold[0]);
	if (pid < 0 || read(ready[0], epfds, shape.nsets * sizeof(int)) !=
			       (ssize_t)(shape.nsets * sizeof(int))) {
		bench_report_skip(name, "the child could not create its watches");
		goto out;
	}
	image_init(&img);
	snprintf(stop_line, sizeof(stop_line), "%-30s stopped: over %u s (the watchdog ended this size)\n",
		 name, 2 * budget);
	bench_watchdog(2 * budget, stop_line, NULL);
	uint64_t start = bench_now_ns(), t0 = start;
	ret = kview_snapshot(pid, &img, 0, NULL);
	double first_s = (double)(bench_now_ns() - t0) / 1e9;

	if (first_s * 2 * (rounds + 1) > budget)
		rounds = first_s * 2 > budget / 2.0 ? 1 :
			(unsigned)(budget / (first_s * 2)) - 1;
	if (ret == 0 && bench_series_init(&s, rounds, (double)n) < 0)
		ret = -ENOMEM;
	if (ret == 0) {
		s.raw_label = "fdinfo";
		s.shim_label = "verify";
		for (unsigned r = 0; r < rounds && ret == 0; r++) {
			uint64_t fdinfo_ns = 0, verify_ns = 0;

			for (int k = 0; k < 2 && ret == 0; k++) {
				long got;

				t0 = bench_now_ns();
				if ((k == 0) == (r % 2 == 0)) {
					got = read_sets(pid, epfds, shape.nsets);
					ret = got < 0 ? (int)got : 0;
					fdinfo_ns = bench_now_ns() - t0;
				} else {
					ret = verify_once(pid, &img);
					verify_ns = bench_now_ns() - t0;
				}
			}
			bench_series_add(&s, fdinfo_ns, verify_ns);
		}
		bench_watchdog(0, NULL, NULL);
		if (ret == 0) {
			for (unsigned r = 0; r < s.nrounds; r++)
				*op_s += s.shim_ns[r] / 1e9 / s.nrounds;
			snprintf(note, sizeof(note), "per watch; %.1f s in all",
				 (double)(bench_now_ns() - start) / 1e9);
			bench_report_ratio(name, &s, VERIFY_TARGET, note);
		}
		bench_series_free(&s);
	}
	bench_watchdog(0, NULL, NULL);
	if (ret < 0)
		bench_report_skip(name, strerror(-ret));
	image_free(&img);
out:
	close(hold[1]);
	close(ready[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	free(epfds);
}

/* A file next to this program's directory: DIR/../leaf, into out. */
static int beside_build(const char *leaf, char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return snprintf(out, len, "%s/../%s", self, leaf) < (int)len ? 0 : -1;
}

/* An environment variable's value, else DIR/../leaf; NULL when neither. */
static const char *tool_path(const char *var, const char *leaf, char *buf,
			     size_t len)
{
	const char *v = getenv(var);

	if (v && *v)
		return v;
	if (beside_build(leaf, buf, len) < 0 || access(buf, R_OK) < 0)
		return NULL;
	return buf;
}

/*
 * Run argv (stdout and stderr to /dev/null unless out_fd >= 0: stdout
 * there) with env, wait.  Returns its exit status, or -errno.
 */
static int run_cmd(char *const argv[], char *const env[], int out_fd)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, ret;

	posix_spawn_file_actions_init(&fa);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	ret = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		return -ret;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

/* environ without LD_PRELOAD, plus preload (may be NULL); NULL on ENOMEM. */
static char **env_with(const char *preload)
{
	size_t n = 0, k = 0;

	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			env[k++] = environ[i];
	if (preload)
		env[k++] = (char *)preload;
	return env;
}

/* Kill the shim child and close the test's files. */
static void shim_cleanup(pid_t pid, int hold, const char *img_path,
			 const char *dir)
{
	if (hold >= 0)
		close(hold);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (img_path && *img_path)
		unlink(img_path);
	if (dir && *dir)
		rmdir(dir);
}

/*
 * "verify.shim": the shape in a child running the shim, `epollcr verify
 * --pid` of it against reading its sets' fdinfo, the rounds of
 * rounds_for(n).
 */
static void run_shim(unsigned long n, const struct bench_shape *shape)
{
	static char stop_line[256];
	char name[64], lib_buf[PATH_MAX], cli_buf[PATH_MAX], self[PATH_MAX];
	char preload[PATH_MAX + 16], arg_sets[24], arg_targets[24], arg_ready[16];
	char arg_hold[16], arg_pid[16], dir[] = "/tmp/bench_verify.XXXXXX";
	char img_path[sizeof(dir) + 16] = "", note[200];
	struct bench_series s;
	int ready[2], hold[2], ret = 0;
	unsigned rounds = rounds_for(n), budget = bench_quick() ? 20 : 240;
	pid_t pid = -1;
	int *epfds = calloc(shape->nsets, sizeof(*epfds));

	snprintf(name, sizeof(name), "verify.shim %s", shape->label);
	const char *lib = tool_path("EPOLLCR_BENCH_LIB", "libepollcr.so",
				    lib_buf, sizeof(lib_buf));
	const char *cli = tool_path("EPOLLCR_BENCH_CLI", "epollcr", cli_buf,
				    sizeof(cli_buf));
	ssize_t sn = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (!lib || !cli || sn <= 0) {
		bench_report_skip(name, "no library or epollcr (EPOLLCR_BENCH_LIB, EPOLLCR_BENCH_CLI, or the build directory)");
		free(epfds);
		return;
	}
	self[sn] = '\0';
	if (!epfds || pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, 0) < 0) {
		bench_report_skip(name, "no memory or pipe");
		free(epfds);
		return;
	}
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib);
	snprintf(arg_sets, sizeof(arg_sets), "%lu", shape->nsets);
	snprintf(arg_targets, sizeof(arg_targets), "%lu", shape->ntargets);
	snprintf(arg_ready, sizeof(arg_ready), "%d", ready[1]);
	snprintf(arg_hold, sizeof(arg_hold), "%d", hold[0]);
	char *child_argv[] = { self, "--shim-child", arg_sets, arg_targets,
			       arg_ready, arg_hold, NULL };
	char **child_env = env_with(preload), **cli_env = env_with(NULL);
	/* The child's ends cross the exec; ours are CLOEXEC (hold[1] too). */
	fcntl(ready[1], F_SETFD, 0);
	fcntl(hold[1], F_SETFD, FD_CLOEXEC);
	if (child_env && cli_env &&
	    posix_spawn(&pid, self, NULL, NULL, child_argv, child_env) != 0)
		pid = -1;
	close(ready[1]);
	close(hold[0]);
	if (pid < 0 || read(ready[0], epfds, shape->nsets * sizeof(int)) !=
			       (ssize_t)(shape->nsets * sizeof(int))) {
		bench_report_skip(name, "the child could not create its watches under the shim");
		goto out;
	}
	if (!mkdtemp(dir)) {
		*dir = '\0';
		bench_report_skip(name, "mkdtemp");
		goto out;
	}
	snprintf(img_path, sizeof(img_path), "%s/x.img", dir);
	snprintf(arg_pid, sizeof(arg_pid), "%d", (int)pid);
	snprintf(stop_line, sizeof(stop_line), "%-30s stopped: over %u s (the watchdog ended this size)\n",
		 name, 2 * budget);
	bench_watchdog(2 * budget, stop_line, img_path);
	char *dump_argv[] = { (char *)cli, "dump", "-o", img_path, arg_pid,
			      NULL };
	char *verify_argv[] = { (char *)cli, "verify", "--pid", arg_pid,
				img_path, NULL };
	uint64_t start = bench_now_ns(), t0;
	if ((ret = run_cmd(dump_argv, cli_env, -1)) != 0) {
		snprintf(note, sizeof(note), "epollcr dump of the child: exit %d", ret);
		bench_report_skip(name, note);
		goto out;
	}
	/* Its first verify: the shim answers, identical, and how long. */
	int pfd[2];
	char line[512] = "";
	if (pipe2(pfd, O_CLOEXEC) < 0)
		goto out;
	t0 = bench_now_ns();
	ret = run_cmd(verify_argv, cli_env, pfd[1]);
	double first_s = (double)(bench_now_ns() - t0) / 1e9;
	close(pfd[1]);
	ssize_t got = read(pfd[0], line, sizeof(line) - 1);
	close(pfd[0]);
	line[got > 0 ? got : 0] = '\0';
	if (ret != 0) {
		snprintf(note, sizeof(note), "epollcr verify: exit %d, not identical: %.100s", ret, line);
		bench_report_skip(name, note);
		goto out;
	}
	/* An epollcr without the shim path (EPOLLCR_BENCH_CLI): "before". */
	const char *via = strstr(line, "via its shim") ? "via the shim"
						      : "NOT via the shim";
	if (first_s * 2 * (rounds + 1) > budget)
		rounds = first_s * 2 > budget / 2.0 ? 1 :
			(unsigned)(budget / (first_s * 2)) - 1;
	if (bench_series_init(&s, rounds, (double)shape->nsets * shape->ntargets) < 0) {
		bench_report_skip(name, "no memory");
		goto out;
	}
	s.raw_label = "fdinfo";
	s.shim_label = "verify";
	for (unsigned r = 0; r < rounds && ret == 0; r++) {
		uint64_t fdinfo_ns = 0, verify_ns = 0;

		for (int k = 0; k < 2 && ret == 0; k++) {
			t0 = bench_now_ns();
			if ((k == 0) == (r % 2 == 0)) {
				long bytes = read_sets(pid, epfds, shape->nsets);
				ret = bytes < 0 ? (int)bytes : 0;
				fdinfo_ns = bench_now_ns() - t0;
			} else {
				ret = run_cmd(verify_argv, cli_env, -1);
				verify_ns = bench_now_ns() - t0;
			}
		}
		bench_series_add(&s, fdinfo_ns, verify_ns);
	}
	bench_watchdog(0, NULL, NULL);
	if (ret == 0) {
		snprintf(note, sizeof(note), "per watch, %s; %.1f s in all",
			 via, (double)(bench_now_ns() - start) / 1e9);
		bench_report_ratio(name, &s, VERIFY_TARGET, note);
	} else {
		snprintf(note, sizeof(note), "a round failed (%d)", ret);
		bench_report_skip(name, note);
	}
	bench_series_free(&s);
out:
	bench_watchdog(0, NULL, NULL);
	close(ready[0]);
	shim_cleanup(pid, hold[1], img_path, dir);
	free(child_env);
	free(cli_env);
	free(epfds);
}

static void run_size(unsigned long n, double predicted, double exponent,
		     double *op_s)
{
	struct bench_shape shape = { 0 };

	run_other(n, predicted, exponent, op_s, &shape);
	if (shape.nsets)
		run_shim(n, &shape);
}

/* "--shim-child SETS TARGETS READY HOLD": child_main under the shim. */
static int shim_child(char **argv)
{
	struct bench_shape shape = { 0 };

	shape.nsets = strtoul(argv[2], NULL, 10);
	shape.ntargets = strtoul(argv[3], NULL, 10);
	int *epfds = calloc(shape.nsets ? shape.nsets : 1, sizeof(*epfds));
	if (!epfds)
		return 1;
	child_main(&shape, atoi(argv[4]), atoi(argv[5]), epfds);
	return 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 6 && !strcmp(argv[1], "--shim-child"))
		return shim_child(argv);
	return bench_sizes_main(argc, argv, "bench_verify", run_size);
}
