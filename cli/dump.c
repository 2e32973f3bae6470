// SPDX-License-Identifier: MIT
/*
 * epollcr dump: ask a process running the shim for an image of its epoll
 * state.  The request is the checkpoint signal queued to the process's
 * recorder thread alone (rt_tgsigqueueinfo), carrying a nonce; the
 * recorder thread connects to an abstract unix socket named after the pid
 * and nonce, and streams the image.  The image is
 * written here, by the dumping user, so a program that changed user after
 * start-up (nginx, memcached) can still be dumped anywhere.
 */
#include <dirent.h>
#include <elf.h>
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
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "epollcr_image.h"
#include "image_io.h"
#include "recorder.h"
#include "signame.h"

static const char dump_usage[] =
	"usage: epollcr dump [-o FILE] [--timeout SECONDS] [--signal SIG]\n"
	"                    [--kernel] [--freeze] [--reads N] PID\n"
	"       epollcr dump --tree [-o DIR] [OPTION...] PID\n"
	"\n"
	"Write an image of the epoll state of PID, a process of yours, and\n"
	"print its path.  When PID runs the epollcr shim (epollcr run) and its\n"
	"recorder answers, the image is the kernel's view enriched by the\n"
	"shim's registry; otherwise it is read from outside, from the kernel's\n"
	"view alone (a kernel-only image: no backtraces), and a note says why.\n"
	"\n"
	"  -o, --output PATH    the image file (default: DIR/epollcr-PID.img in\n"
	"                       EPOLLCR_DIR, $XDG_RUNTIME_DIR/epollcr or\n"
	"                       /tmp/epollcr-UID); with --tree, a directory\n"
	"  -t, --timeout SECS   how long to wait for the shim's image (default 10)\n"
	"  -s, --signal SIG     the process's checkpoint signal (default: the\n"
	"                       one its recorder thread names; with none, the\n"
	"                       image is read from outside)\n"
	"  -k, --kernel         read from outside even when the shim runs\n"
	"  -f, --freeze         kernel-only: stop the process for the read\n"
	"                       (PTRACE_SEIZE + PTRACE_INTERRUPT, unseen by its\n"
	"                       parent; needs ptrace rights: see epollcr(1))\n"
	"  -r, --reads N        kernel-only: read up to N times (2..100, default\n"
	"                       5) until two reads in a row agree\n"
	"      --tree           PID and every descendant with epoll sets, one\n"
	"                       image each, into a directory; one line per\n"
	"                       process on stderr says how it was dumped\n";

int cli_has_shim(pid_t pid)
{
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	bool found = false;
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "/libepollcr.so") != NULL;
	fclose(f);
	return found;
}

/*
 * 1 when the program pid runs is statically linked (its ELF file has no
 * PT_INTERP: no dynamic loader, so LD_PRELOAD is never read), 0 when it
 * is dynamic, -errno when /proc/PID/exe cannot be read.
 */
static int exe_is_static(pid_t pid)
{
	char path[64];
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int ret = 1;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(ph) || eh.e_phnum > 4096) {
		close(fd);
		return -ENOEXEC;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph),
			  (off_t)(eh.e_phoff + i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			break;
		if (ph.p_type == PT_INTERP) {
			ret = 0;
			break;
		}
	}
	close(fd);
	return ret;
}

/*
 * The tid of pid's recorder thread (named "epollcr-sigN"), with N in *sig;
 * 0 (and *sig 0) when the process has no recorder thread yet.
 */
static pid_t recorder_task(pid_t pid, int *sig)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	*sig = 0;
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	pid_t tid = 0;
	struct dirent *de;
	while (!tid && (de = readdir(dir))) {
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
		if (!strncmp(comm, "epollcr-sig", 11)) {
			*sig = atoi(comm + 11);
			tid = atoi(de->d_name);
		}
	}
	closedir(dir);
	return tid;
}

/*
 * The signal named by the recorder thread ("epollcr-sigN"), 0 when the
 * process has no recorder thread yet.
 */
static int recorder_signal(pid_t pid)
{
	int sig;
	recorder_task(pid, &sig);
	return sig;
}

/*
 * Queue the request to pid's recorder thread alone (a thread-directed
 * rt_tgsigqueueinfo), so that no program thread takes the signal and
 * none of its sleeping calls returns EINTR.  To the process (sigqueue),
 * as before, when no recorder thread of that signal is found or it has
 * just gone: a program that answers requests itself.  si_uid is our
 * effective uid, the one SO_PEERCRED shows for our socket, which the
 * program checks before it sends a byte.  Returns 0 or -1 with errno set.
 */
static int signal_recorder(pid_t pid, int sig, union sigval value)
{
	int named;
	pid_t tid = recorder_task(pid, &named);
	if (!tid || named != sig)
		return sigqueue(pid, sig, value);
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	info.si_signo = sig;
	info.si_code = SI_QUEUE;
	info.si_pid = getpid();
	info.si_uid = geteuid();
	info.si_value = value;
	if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &info) == 0)
		return 0;
	return errno == ESRCH ? sigqueue(pid, sig, value) : -1;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Declared in cli.h: the image of pid's shim, as dump writes it. */
int cli_request_image(pid_t pid, int sig, double timeout, int out_fd,
		      struct image *out, char *why, size_t why_len)
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
	if (signal_recorder(pid, sig, value) < 0) {
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
		if (out)
			*out = img;
		else
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

/* How one process was dumped, for --tree's report. */
enum dump_how {
	DUMP_VIA_SHIM,		/* the shim's recorder wrote the image */
	DUMP_KERNEL_ONLY,	/* read from outside, the kernel's view */
	DUMP_NO_EPOLL,		/* no epoll set: nothing to dump (--tree) */
	DUMP_FAILED,		/* why says why */
};

struct dump_opts {
	int sig;		/* --signal, 0: the recorder thread's */
	double timeout;		/* --timeout */
	bool kernel;		/* --kernel: never ask the shim */
	bool freeze;		/* --freeze */
	bool skip_no_epoll;	/* --tree: no image for a process without
				 * epoll sets */
	unsigned reads;		/* --reads, 0: the default */
};

/* Declared in cli.h: can pid's shim answer a dump request? */
int cli_shim_answers(pid_t pid, int sig_opt, char *note, size_t note_len)
{
	int r = cli_has_shim(pid), st;

	if (r < 0) {
		snprintf(note, note_len,
			 "its memory maps are not readable by you (%s), so whether it runs the shim is not known",
			 strerror(-r));
		return 0;
	}
	if (!r) {
		st = exe_is_static(pid);
		if (st == 1)
			snprintf(note, note_len,
				 "it is a statically linked program: no dynamic loader runs in it, so LD_PRELOAD (epollcr run) cannot load libepollcr.so into it");
		else
			snprintf(note, note_len,
				 "it does not have libepollcr.so loaded (it was not started with epollcr run)");
		return 0;
	}
	int sig = sig_opt ? sig_opt : recorder_signal(pid);
	if (!sig)
		snprintf(note, note_len,
			 "it runs the shim but its recorder never started: it created no epoll set through libc (raw epoll syscalls, as Go makes, or none at all)");
	return sig;
}

int cli_recorder_signal(pid_t pid)
{
	return recorder_signal(pid);
}

int cli_epoll_count(pid_t pid, unsigned *sets, unsigned *watches)
{
	char path[64], info[320], link[64], line[256];
	struct dirent *de;

	*sets = *watches = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -errno;
	int dfd = dirfd(dir);
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		ssize_t n = readlinkat(dfd, de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, "anon_inode:[eventpoll]"))
			continue;
		(*sets)++;
		snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", (int)pid,
			 de->d_name);
		FILE *f = fopen(info, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			*watches += !strncmp(line, "tfd:", 4);
		fclose(f);
	}
	closedir(dir);
	return 0;
}

/*
 * Write the kernel-only image of pid into fd.  Returns 0 or -errno with
 * the reason in why.
 */
static int outside_image(pid_t pid, const struct dump_opts *o,
			 const char *note, int fd, char *why, size_t why_len)
{
	struct recorder_outside opt = {
		.max_reads = o->reads,
		.freeze = o->freeze,
		.why_kernel = note && *note ? note : NULL,
	};
	struct image img;
	int ret = recorder_build_outside(pid, &opt, &img, why, why_len);

	if (ret < 0)
		return ret;
	if (img.flags & IMAGE_F_UNSETTLED)
		cli_error("dump: warning: pid %d changed its epoll state during each of %u reads: the image is the last read (marked unsettled); dump again, or with --freeze",
			  (int)pid, opt.reads);
	ret = image_write_fd(&img, fd);
	image_free(&img);
	if (ret < 0)
		snprintf(why, why_len, "writing the image of pid %d: %s",
			 (int)pid, strerror(-ret));
	return ret;
}

/*
 * Dump pid atomically into the file name of the directory dirfd (path: the
 * same, for messages); prints the path.  Returns CLI_*, with
 * *how and, on failure, the reason in why (printed unless quiet).
 */
static int dump_one(pid_t pid, const struct dump_opts *o, int dirfd,
		    const char *name, const char *path, enum dump_how *how,
		    char *why, size_t why_len)
{
	char note[512] = "", tmp[NAME_MAX + 1];
	unsigned sets = 0, watches = 0;
	int sig = 0;

	*how = DUMP_FAILED;
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		snprintf(why, why_len, "no process %d", (int)pid);
		goto fail;
	}
	if (o->kernel)
		snprintf(note, sizeof(note), "--kernel was given");
	else
		sig = cli_shim_answers(pid, o->sig, note, sizeof(note));
	if (!sig) {
		int r = cli_epoll_count(pid, &sets, &watches);
		if (r < 0) {
			recorder_outside_why(pid, r, why, why_len);
			goto fail;
		}
		if (!sets && o->skip_no_epoll) {
			*how = DUMP_NO_EPOLL;
			return CLI_OK;
		}
	}
	int fd = create_temp_at(dirfd, name, tmp, sizeof(tmp));
	if (fd < 0) {
		snprintf(why, why_len, "cannot create a file next to %s: %s",
			 path, strerror(-fd));
		goto fail;
	}
	int ret = sig ? cli_request_image(pid, sig, o->timeout, fd, NULL, why,
					    why_len)
		      : outside_image(pid, o, note, fd, why, why_len);
	if (ret == 0 && fsync(fd) < 0) {
		ret = -errno;
		snprintf(why, why_len, "fsync %s: %s", tmp, strerror(-ret));
	}
	close(fd);
	if (ret == 0 && !sig) {
		/* Check what was written before it replaces anything. */
		struct image img;
		char err[512];
		int rfd = openat(dirfd, tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (rfd < 0 ||
		    image_read_fd_flags(rfd, &img, IMAGE_READ_ANY_FD, err,
					sizeof(err)) < 0) {
			snprintf(why, why_len, "pid %d gave an invalid image: %s",
				 (int)pid, rfd < 0 ? strerror(errno) : err);
			ret = -EPROTO;
		} else {
			image_free(&img);
		}
		if (rfd >= 0)
			close(rfd);
	}
	if (ret == 0 && renameat(dirfd, tmp, dirfd, name) < 0) {
		ret = -errno;
		snprintf(why, why_len, "rename to %s: %s", path,
			 strerror(-ret));
	}
	if (ret < 0) {
		unlinkat(dirfd, tmp, 0);
		goto fail;
	}
	if (!sig && !o->skip_no_epoll)
		cli_error("dump: note: pid %d: %s; the image was read from outside, from the kernel's view alone (kernel-only: no backtraces, see epollcr show)",
			  (int)pid, note);
	if (!sig && !sets && !o->skip_no_epoll)
		cli_error("dump: note: pid %d had no epoll set when it was looked at: the image may hold none",
			  (int)pid);
	*how = sig ? DUMP_VIA_SHIM : DUMP_KERNEL_ONLY;
	printf("%s\n", path);
	fflush(stdout);
	return CLI_OK;
fail:
	if (!o->skip_no_epoll)
		cli_error("dump: %s", why);
	return CLI_FAIL;
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

/* The command name of pid, "?" when unknown. */
void cli_comm_of(pid_t pid, char *comm, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	snprintf(comm, len, "?");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, comm, len - 1);
	close(fd);
	if (n > 0) {
		comm[n] = '\0';
		comm[strcspn(comm, "\n")] = '\0';
	}
}

/*
 * Every process of the tree with epoll sets, through the shim where it
 * answers, else from the kernel's view; one report line per process on
 * stderr.  CLI_OK when every process with epoll state was dumped.
 */
static int dump_tree(pid_t root, struct dump_opts *o, int dirfd,
		     const char *dir)
{
	pid_t pids[4096];
	int n = process_tree(root, pids, 4096), dumped = 0, failed = 0;
	o->skip_no_epoll = true;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX + 32], why[PATH_MAX + 1024], comm[64];
		char name[32];
		enum dump_how how;
		snprintf(name, sizeof(name), "epollcr-%d.img", (int)pids[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		cli_comm_of(pids[i], comm, sizeof(comm));
		dump_one(pids[i], o, dirfd, name, path, &how, why,
			 sizeof(why));
		switch (how) {
		case DUMP_VIA_SHIM:
			dumped++;
			fprintf(stderr, "pid %d (%s): dumped via the shim\n",
				(int)pids[i], comm);
			break;
		case DUMP_KERNEL_ONLY:
			dumped++;
			fprintf(stderr, "pid %d (%s): dumped kernel-only\n",
				(int)pids[i], comm);
			break;
		case DUMP_NO_EPOLL:
			fprintf(stderr, "pid %d (%s): no epoll sets\n",
				(int)pids[i], comm);
			break;
		case DUMP_FAILED:
			/* A process gone since the tree was listed had none. */
			if (kill(pids[i], 0) < 0 && errno == ESRCH) {
				fprintf(stderr, "pid %d (%s): exited\n",
					(int)pids[i], comm);
				break;
			}
			failed++;
			fprintf(stderr, "pid %d (%s): failed: %s\n",
				(int)pids[i], comm, why);
			break;
		}
	}
	fflush(stderr);
	if (!dumped && !failed) {
		cli_error("dump: no process in the tree of %d has an epoll set",
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
		{ "kernel", no_argument, NULL, 'k' },
		{ "freeze", no_argument, NULL, 'f' },
		{ "reads", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *output = NULL;
	struct dump_opts o = { .timeout = 10 };
	int c;
	bool tree = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:t:s:kfr:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o.kernel = true;
			break;
		case 'f':
			o.freeze = true;
			break;
		case 'r': {
			char *end;
			errno = 0;
			unsigned long n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 2 ||
			    n > RECORDER_READS_MAX) {
				cli_error("--reads %s: give a number from 2 to %d", optarg, RECORDER_READS_MAX);
				return CLI_USAGE;
			}
			o.reads = (unsigned)n;
			break;
		}
		case 'o':
			output = optarg;
			break;
		case 't':
			if (!cli_parse_timeout(optarg, &o.timeout))
				return CLI_USAGE;
			break;
		case 's':
			if (!cli_parse_signal(optarg, &o.sig))
				return CLI_USAGE;
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
			ret = dump_tree(pid, &o, dirfd, dir);
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
	enum dump_how how;
	ret = dump_one(pid, &o, dirfd, leaf, output, &how, why, sizeof(why));
	close(dirfd);
	return ret;
}
