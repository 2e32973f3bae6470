// SPDX-License-Identifier: MIT
/*
 * epollcr dump: ask a process running the shim for an image of its epoll
 * state.  The request is a sigqueue() of the checkpoint signal carrying a
 * nonce; the process's recorder thread connects to an abstract unix socket
 * named after the pid and nonce, and streams the image.  The image is
 * written here, by the dumping user, so a program that changed user after
 * start-up (nginx, memcached) can still be dumped anywhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "epollcr_image.h"
#include "image_io.h"
#include "recorder.h"
#include "signame.h"

static const char dump_usage[] =
	"usage: epollcr dump [-o FILE] [--timeout SECONDS] [--signal SIG] PID\n"
	"       epollcr dump --tree [-o DIR] [--timeout SECONDS] PID\n"
	"\n"
	"Write an image of the epoll state of PID, which must run with the\n"
	"epollcr shim (started by `epollcr run`), and print its path.\n"
	"\n"
	"  -o, --output PATH    the image file (default: DIR/epollcr-PID.img in\n"
	"                       EPOLLCR_DIR, $XDG_RUNTIME_DIR/epollcr or\n"
	"                       /tmp/epollcr-UID); with --tree, a directory\n"
	"  -t, --timeout SECS   how long to wait for the image (default 10)\n"
	"  -s, --signal SIG     the process's checkpoint signal (default: read\n"
	"                       from its recorder thread, else SIGRTMAX-3)\n"
	"      --tree           PID and every descendant that runs the shim,\n"
	"                       one image each, into a directory\n";

/* True when /proc/PID/maps shows libepollcr loaded. */
static bool has_shim(pid_t pid)
{
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "/libepollcr.so") != NULL;
	fclose(f);
	return found;
}

/*
 * The signal named by the recorder thread ("epollcr-sigN"), 0 when the
 * process has no recorder thread yet.
 */
static int recorder_signal(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	int sig = 0;
	struct dirent *de;
	while (!sig && (de = readdir(dir))) {
		char comm_path[320], comm[32];
		if (de->d_name[0] == '.')
			continue;
		snprintf(comm_path, sizeof(comm_path), "/proc/%d/task/%s/comm",
			 (int)pid, de->d_name);
		int fd = open(comm_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n <= 0)
			continue;
		comm[n] = '\0';
		if (!strncmp(comm, "epollcr-sig", 11))
			sig = atoi(comm + 11);
	}
	closedir(dir);
	return sig;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Wait for pid's recorder on a fresh abstract socket and stream its image
 * into out_fd, validating it as it arrives: the first invalid byte, more
 * than IMAGE_MAX_BYTES, or the deadline stops the transfer.  Returns 0 or
 * -errno with the reason in why.
 */
static int request_image(pid_t pid, int sig, double timeout, int out_fd,
			 char *why, size_t why_len)
{
	uint32_t nonce = 0;
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	nonce &= RECORDER_NONCE_MASK;

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int len = recorder_socket_name(sa.sun_path, sizeof(sa.sun_path),
				       (int)pid, nonce);
	socklen_t salen =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	int ret;
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		ret = -errno;
		snprintf(why, why_len, "socket: %s", strerror(-ret));
		return ret;
	}
	if (bind(lfd, (struct sockaddr *)&sa, salen) < 0 || listen(lfd, 4) < 0) {
		ret = -errno;
		snprintf(why, why_len, "cannot listen for the image: %s",
			 strerror(-ret));
		goto out_close_listen;
	}
	union sigval value = { .sival_int = (int)(RECORDER_REQ_MAGIC | nonce) };
	if (sigqueue(pid, sig, value) < 0) {
		ret = -errno;
		snprintf(why, why_len, "cannot signal pid %d: %s", (int)pid,
			 strerror(-ret));
		goto out_close_listen;
	}
	double deadline = now_seconds() + timeout;
	int cfd = -1;
	for (;;) {
		int left_ms = (int)((deadline - now_seconds()) * 1000);
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		if (left_ms <= 0 || poll(&p, 1, left_ms) == 0) {
			ret = -ETIMEDOUT;
			snprintf(why, why_len,
				 "pid %d did not answer within %g s (is it stopped, or blocking signal %d?)",
				 (int)pid, timeout, sig);
			goto out_close_listen;
		}
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
		    cred.pid == pid)
			break;
		close(cfd); /* not our process: ignore the impostor */
	}
	struct image img;
	char err[512];
	if (image_read_stream(cfd, out_fd, deadline, &img, IMAGE_READ_ANY_FD,
			      err, sizeof(err)) < 0) {
		ret = -EPROTO;
		snprintf(why, why_len, "pid %d sent an invalid image: %s",
			 (int)pid, err);
	} else {
		image_free(&img);
		ret = 0;
	}
	close(cfd);
out_close_listen:
	close(lfd);
	return ret;
}

/*
 * A new temporary file ".NAME.tmp-XXXXXX" in dirfd (O_EXCL, O_NOFOLLOW,
 * 0600); its name into tmp.  Returns the fd or -errno.
 */
static int create_temp_at(int dirfd, const char *name, char *tmp,
			  size_t tmp_len)
{
	for (int i = 0; i < 16; i++) {
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)getpid() * 2654435761u ^ (uint32_t)i ^
			    (uint32_t)(now_seconds() * 1e6);
		if (snprintf(tmp, tmp_len, ".%s.tmp-%08x", name, r) >=
		    (int)tmp_len)
			return -ENAMETOOLONG;
		int fd = openat(dirfd, tmp,
				O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC,
				0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

/*
 * Dump pid atomically into the file name of the directory dirfd (path: the
 * same, for messages); prints path.  Returns CLI_*.
 */
static int dump_one(pid_t pid, int sig_opt, double timeout, int dirfd,
		    const char *name, const char *path)
{
	char why[PATH_MAX + 1024], tmp[NAME_MAX + 1];
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		cli_error("dump: no process %d", (int)pid);
		return CLI_FAIL;
	}
	if (!has_shim(pid)) {
		cli_error("dump: pid %d does not have libepollcr.so loaded (or its maps are not readable by you); start the program with: epollcr run -- PROGRAM [ARG...]", (int)pid);
		return CLI_FAIL;
	}
	int sig = sig_opt ? sig_opt : recorder_signal(pid);
	if (!sig) {
		cli_error("dump: pid %d runs the shim but has no recorder thread: it has created no epoll set yet", (int)pid);
		return CLI_FAIL;
	}
	int fd = create_temp_at(dirfd, name, tmp, sizeof(tmp));
	if (fd < 0) {
		cli_error("dump: cannot create a file next to %s: %s", path,
			  strerror(-fd));
		return CLI_FAIL;
	}
	int ret = request_image(pid, sig, timeout, fd, why, sizeof(why));
	if (ret == 0 && fsync(fd) < 0) {
		ret = -errno;
		snprintf(why, sizeof(why), "fsync %s: %s", tmp, strerror(-ret));
	}
	close(fd);
	if (ret == 0 && renameat(dirfd, tmp, dirfd, name) < 0) {
		ret = -errno;
		snprintf(why, sizeof(why), "rename to %s: %s", path,
			 strerror(-ret));
	}
	if (ret < 0) {
		unlinkat(dirfd, tmp, 0);
		cli_error("dump: %s", why);
		return CLI_FAIL;
	}
	printf("%s\n", path);
	fflush(stdout);
	return CLI_OK;
}

/*
 * Open the directory of path for dump_one(): its fd, and its last
 * component in *name.  Returns the fd or -1 (message printed).
 */
static int open_parent(const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	*name = slash ? slash + 1 : path;
	if (!**name) {
		cli_error("dump: %s: give a file name, not a directory", path);
		return -1;
	}
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir)) {
		cli_error("dump: %s: path too long", path);
		return -1;
	} else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		cli_error("dump: cannot create a file next to %s: %m", path);
	return fd;
}

/* Parent pid of pid from /proc/PID/stat, -1 when unknown. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parens */
	int ppid;
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

/* pid and its descendants, breadth first; returns the count. */
static int process_tree(pid_t root, pid_t *out, int max)
{
	int n = 0;
	out[n++] = root;
	DIR *dir = opendir("/proc");
	if (!dir)
		return n;
	pid_t all[32768][2];
	int nall = 0;
	struct dirent *de;
	while ((de = readdir(dir)) && nall < 32768) {
		pid_t p = cli_parse_pid(de->d_name);
		if (p > 0) {
			all[nall][0] = p;
			all[nall][1] = parent_of(p);
			nall++;
		}
	}
	closedir(dir);
	for (int head = 0; head < n; head++)
		for (int i = 0; i < nall && n < max; i++)
			if (all[i][1] == out[head])
				out[n++] = all[i][0];
	return n;
}

static int dump_tree(pid_t root, int sig, double timeout, int dirfd,
		     const char *dir)
{
	pid_t pids[4096];
	int n = process_tree(root, pids, 4096), dumped = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		if (!has_shim(pids[i]))
			continue;
		char path[PATH_MAX + 32], name[32];
		snprintf(name, sizeof(name), "epollcr-%d.img", (int)pids[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (dump_one(pids[i], sig, timeout, dirfd, name, path) ==
		    CLI_OK)
			dumped++;
		else
			failed++;
	}
	if (!dumped && !failed) {
		cli_error("dump: no process in the tree of %d runs the shim",
			  (int)root);
		return CLI_FAIL;
	}
	return failed ? CLI_FAIL : CLI_OK;
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ "signal", required_argument, NULL, 's' },
		{ "tree", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *output = NULL;
	double timeout = 10;
	int sig = 0, c;
	bool tree = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:t:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 't': {
			char *end;
			timeout = strtod(optarg, &end);
			if (*end || !(timeout > 0 && timeout <= 3600)) {
				cli_error("--timeout %s: give seconds, more than 0 and at most 3600", optarg);
				return CLI_USAGE;
			}
			break;
		}
		case 's':
			if (!(sig = signame_parse(optarg))) {
				cli_error("--signal %s: not a usable signal", optarg);
				return CLI_USAGE;
			}
			break;
		case 'T':
			tree = true;
			break;
		case 'h':
			fputs(dump_usage, stdout);
			return CLI_OK;
		case 'V':
			cli_print_version();
			return CLI_OK;
		default:
			fputs(dump_usage, stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_error("dump: give exactly one PID");
		fputs(dump_usage, stderr);
		return CLI_USAGE;
	}
	pid_t pid = cli_parse_pid(argv[optind]);
	if (pid < 0) {
		cli_error("dump: '%s' is not a process id", argv[optind]);
		return CLI_USAGE;
	}
	char dir[PATH_MAX], why[PATH_MAX + 512], path[PATH_MAX + 32];
	char name[32];
	const char *leaf;
	int dirfd, ret;
	if (!output || tree) {
		/* The same checks as the program's own image directory. */
		if (output) {
			snprintf(dir, sizeof(dir), "%s", output);
			dirfd = recorder_private_dir_open(dir, true, why,
							  sizeof(why));
		} else {
			dirfd = recorder_image_dir(getenv("EPOLLCR_DIR"), dir,
						   sizeof(dir), why,
						   sizeof(why));
		}
		if (dirfd < 0) {
			cli_error("dump: %s", why);
			return CLI_FAIL;
		}
		if (tree) {
			ret = dump_tree(pid, sig, timeout, dirfd, dir);
			close(dirfd);
			return ret;
		}
		snprintf(name, sizeof(name), "epollcr-%d.img", (int)pid);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		output = path;
		leaf = name;
	} else if ((dirfd = open_parent(output, &leaf)) < 0) {
		return CLI_FAIL;
	}
	ret = dump_one(pid, sig, timeout, dirfd, leaf, output);
	close(dirfd);
	return ret;
}
