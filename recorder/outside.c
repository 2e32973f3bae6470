// SPDX-License-Identifier: MIT
/*
 * The image of another process from the kernel's view alone: what its
 * owner may read of it (/proc/PID/fd, /proc/PID/fdinfo, kcmp, sock_diag),
 * with no help from the program.  Without the shim's locks nothing holds
 * the program still, so the state is read until two reads agree, or with
 * --freeze the program is stopped by ptrace for one read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "epollcr.h"
#include "image_io.h"
#include "kview.h"
#include "recorder.h"
#include "sockinfo.h"

#define FREEZE_MAX_THREADS 65536 /* threads of one process stopped */
#define FREEZE_ROUNDS 20	 /* task list scans until no new thread */
#define FREEZE_WAIT_MS 2000	 /* for one thread to stop */

/* ---- who the process is -------------------------------------------------- */

/* The first number after key in /proc/PID/status, or -1. */
static long status_field(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t klen = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen)) {
			v = strtol(line + klen, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static char *read_link_of(pid_t pid, const char *name)
{
	char path[64], buf[PATH_MAX];

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static char *read_comm_of(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	return recorder_read_line(path);
}

static int fill_process_of(pid_t pid, struct image *img)
{
	struct timespec now;
	struct rlimit rl;
	long uid = status_field(pid, "Uid:");

	clock_gettime(CLOCK_REALTIME, &now);
	img->proc.pid = (int32_t)pid;
	img->proc.uid = uid >= 0 ? (uint32_t)uid : (uint32_t)getuid();
	img->proc.time_sec = (uint64_t)now.tv_sec;
	img->proc.time_nsec = (uint32_t)now.tv_nsec;
	if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl) == 0)
		img->proc.nofile_limit = rl.rlim_cur > UINT32_MAX
						 ? UINT32_MAX
						 : (uint32_t)rl.rlim_cur;
	img->proc.exe = read_link_of(pid, "exe");
	img->proc.comm = read_comm_of(pid);
	img->proc.version = strdup(EPOLLCR_VERSION_STRING);
	return img->proc.version ? 0 : -ENOMEM;
}

/* ---- why a process cannot be read ---------------------------------------- */

/* The state letter of /proc/PID/stat ('R', 'S', 'Z'...), 0 when gone. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parens */
	return p && p[1] == ' ' ? p[2] : 0;
}

/* Running, sleeping, stopped: anything but gone or a zombie. */
static bool alive(pid_t pid)
{
	char st = proc_state(pid);

	return st && st != 'Z' && st != 'X';
}

char recorder_pid_state(pid_t pid)
{
	return proc_state(pid);
}

/* /proc/sys/kernel/yama/ptrace_scope, or -1 without Yama. */
static int yama_scope(void)
{
	char buf[16] = "";
	int fd = open("/proc/sys/kernel/yama/ptrace_scope",
		      O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

void recorder_outside_why(pid_t pid, int err, char *why, size_t why_len)
{
	char path[64];
	struct stat st;
	long uid, tracer;

	if (proc_state(pid) == 'Z') {
		snprintf(why, why_len,
			 "pid %d has exited (a zombie its parent has not reaped yet): it holds no descriptors",
			 (int)pid);
		return;
	}
	if (!alive(pid)) {
		snprintf(why, why_len, "pid %d exited during the read",
			 (int)pid);
		return;
	}
	if (err == -ESRCH) {
		snprintf(why, why_len, "pid %d has exited", (int)pid);
		return;
	}
	if (err != -EACCES && err != -EPERM) {
		snprintf(why, why_len, "cannot read the epoll state of pid %d: %s",
			 (int)pid, strerror(-err));
		return;
	}
	uid = status_field(pid, "Uid:");
	if (geteuid() != 0 && uid >= 0 && (uid_t)uid != geteuid()) {
		snprintf(why, why_len,
			 "pid %d belongs to uid %ld, not to you (uid %u): the kernel shows a process's epoll state to its owner and root only",
			 (int)pid, uid, (unsigned)geteuid());
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (geteuid() != 0 && stat(path, &st) == 0 && st.st_uid != geteuid()) {
		snprintf(why, why_len,
			 "pid %d is not dumpable (it called prctl(PR_SET_DUMPABLE, 0), changed its credentials or runs a setuid file): its /proc/%d/fd belongs to root",
			 (int)pid, (int)pid);
		return;
	}
	tracer = status_field(pid, "TracerPid:");
	if (tracer > 0) {
		snprintf(why, why_len,
			 "pid %d is already traced by pid %ld (a debugger?): it cannot be stopped for the read; dump without --freeze",
			 (int)pid, tracer);
		return;
	}
	int scope = yama_scope();
	if (scope >= 1) {
		snprintf(why, why_len,
			 "ptrace of pid %d refused: Yama's kernel.yama.ptrace_scope is %d (%s); dump without --freeze, or lower it (sysctl kernel.yama.ptrace_scope=0, as root)",
			 (int)pid, scope,
			 scope == 1 ? "only a parent may trace its descendants"
			 : scope == 2 ? "only CAP_SYS_PTRACE may trace"
				      : "no process may be traced");
		return;
	}
	snprintf(why, why_len, "cannot read the epoll state of pid %d: %s",
		 (int)pid, strerror(-err));
}

/* ---- --freeze: every thread stopped by ptrace ---------------------------- */

struct frozen {
	pid_t tid;
	int sig;	/* a signal caught while stopping, given back at detach */
};

struct freeze {
	struct frozen *t;
	unsigned n, cap;
};

static bool frozen_has(const struct freeze *fz, pid_t tid)
{
	for (unsigned i = 0; i < fz->n; i++)
		if (fz->t[i].tid == tid)
			return true;
	return false;
}

/*
 * Wait until tid stops after PTRACE_INTERRUPT; *sig gets a signal it
 * stopped for instead (to give back).  Returns 0, -ESRCH when it exited,
 * -ETIMEDOUT.
 */
static int wait_stopped(pid_t tid, int *sig)
{
	const struct timespec pause = { .tv_nsec = 1000000 };

	*sig = 0;
	for (int ms = 0; ms < FREEZE_WAIT_MS; ms++) {
		int st;
		pid_t r = waitpid(tid, &st, __WALL | WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -ESRCH;
		if (r == tid) {
			if (!WIFSTOPPED(st))
				return -ESRCH; /* exited */
			if (WSTOPSIG(st) != SIGTRAP || (st >> 16) == 0)
				*sig = WSTOPSIG(st) == SIGTRAP ? 0
							       : WSTOPSIG(st);
			return 0;
		}
		nanosleep(&pause, NULL);
	}
	return -ETIMEDOUT;
}

static void thaw(struct freeze *fz)
{
	for (unsigned i = 0; i < fz->n; i++)
		ptrace(PTRACE_DETACH, fz->t[i].tid, NULL,
		       (void *)(long)fz->t[i].sig);
	free(fz->t);
	fz->t = NULL;
	fz->n = fz->cap = 0;
}

/* Seize and stop tid; returns 0, 1 when it is gone, or -errno. */
static int freeze_thread(struct freeze *fz, pid_t tid)
{
	int sig, ret;

	if (fz->n == fz->cap) {
		unsigned cap = fz->cap ? fz->cap * 2 : 16;
		if (cap > FREEZE_MAX_THREADS)
			return -E2BIG;
		struct frozen *grown = realloc(fz->t, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		fz->t = grown;
		fz->cap = cap;
	}
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0)
		return errno == ESRCH ? 1 : -errno;
	fz->t[fz->n++] = (struct frozen){ .tid = tid };
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0)
		return errno == ESRCH ? 1 : -errno;
	ret = wait_stopped(tid, &sig);
	if (ret == -ESRCH)
		return 1;
	if (ret < 0)
		return ret;
	fz->t[fz->n - 1].sig = sig;
	return 0;
}

/*
 * Stop every thread of pid (PTRACE_SEIZE + PTRACE_INTERRUPT: no SIGSTOP,
 * so its parent sees nothing), scanning /proc/PID/task until a scan finds
 * no new thread.  Returns 0 or -errno, with every thread already stopped
 * let go again.
 */
static int freeze(pid_t pid, struct freeze *fz)
{
	char path[64];
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	for (int round = 0; round < FREEZE_ROUNDS; round++) {
		DIR *dir = opendir(path);
		bool found = false;
		struct dirent *de;

		if (!dir) {
			ret = -errno;
			break;
		}
		while (!ret && (de = readdir(dir))) {
			pid_t tid = (pid_t)atoi(de->d_name);
			if (tid <= 0 || frozen_has(fz, tid))
				continue;
			found = true;
			int r = freeze_thread(fz, tid);
			if (r < 0)
				ret = r;
		}
		closedir(dir);
		if (ret < 0 || !found)
			break;
	}
	if (!ret && !fz->n)
		ret = -ESRCH;
	if (ret < 0)
		thaw(fz);
	return ret;
}

/* ---- the reads ----------------------------------------------------------- */

/* One read of pid into a fresh image. */
static int read_once(pid_t pid, struct image *img)
{
	int ret;

	image_init(img);
	ret = fill_process_of(pid, img);
	if (ret == 0)
		ret = kview_snapshot(pid, img, 0, NULL);
	if (ret < 0)
		image_free(img);
	return ret;
}

/* Do two reads describe the same state?  (-errno when memory ran out.) */
static int reads_agree(const struct image *a, const struct image *b)
{
	int diffs = kview_compare(a, b, -1);

	if (diffs < 0)
		return diffs;
	/* kview_compare matches b's sets to a's: count them too. */
	return diffs == 0 && a->ntargets == b->ntargets &&
	       a->nwatches == b->nwatches && a->nfds == b->nfds;
}

static void add_missing_diag(struct image *img, const char *why_kernel)
{
	image_add_diag(img, IMAGE_SEV_INFO, IMAGE_DIAG_GENERIC, -1, -1, NULL,
		       IMAGE_NONE,
		       "kernel-only image (read from outside the process%s%s): it has no backtraces; listen backlogs are the kernel's where sock_diag shows them, else a restore uses SOMAXCONN; creation details the kernel does not show (whether a socket was accepted or connected by the program) are not known",
		       why_kernel ? ": " : ", no shim", why_kernel ? why_kernel : "");
}

int recorder_build_outside(pid_t pid, struct recorder_outside *opt,
			   struct image *img, char *why, size_t why_len)
{
	unsigned max = opt->max_reads ? opt->max_reads : RECORDER_READS_DEFAULT;
	struct freeze fz = { 0 };
	struct image prev;
	bool settled = false;
	int ret;

	if (!proc_state(pid)) {
		snprintf(why, why_len, "no process %d", (int)pid);
		return -ESRCH;
	}
	if (!alive(pid)) {
		recorder_outside_why(pid, -ESRCH, why, why_len);
		return -ESRCH;
	}
	if (max < 2)
		max = 2;
	if (max > RECORDER_READS_MAX)
		max = RECORDER_READS_MAX;
	opt->reads = 0;
	if (opt->freeze) {
		ret = freeze(pid, &fz);
		if (ret == -ETIMEDOUT) {
			snprintf(why, why_len,
				 "a thread of pid %d did not stop within %d ms (in an uninterruptible sleep?): dump without --freeze",
				 (int)pid, FREEZE_WAIT_MS);
			return ret;
		}
		if (ret < 0) {
			recorder_outside_why(pid, ret, why, why_len);
			return ret;
		}
		max = 1;
	}
	image_init(&prev);
	for (;;) {
		ret = read_once(pid, img);
		if (ret < 0)
			break;
		opt->reads++;
		if (opt->freeze) {
			settled = true;
			break;
		}
		if (opt->reads > 1) {
			ret = reads_agree(&prev, img);
			if (ret < 0) {
				image_free(img);
				break;
			}
			if (ret) {
				settled = true;
				break;
			}
		}
		if (opt->reads >= max)
			break;
		image_free(&prev);
		prev = *img;
		image_init(img);
	}
	image_free(&prev);
	if (opt->freeze)
		thaw(&fz);
	if (ret < 0) {
		recorder_outside_why(pid, ret, why, why_len);
		return ret;
	}
	ret = sockinfo_fill(img);
	if (ret < 0) {
		image_free(img);
		snprintf(why, why_len, "describing the sockets of pid %d: %s",
			 (int)pid, strerror(-ret));
		return ret;
	}
	img->flags |= IMAGE_F_COMPLETE | IMAGE_F_KERNEL_ONLY;
	recorder_diagnose_kernel_view(img);
	add_missing_diag(img, opt->why_kernel);
	if (!settled) {
		img->flags |= IMAGE_F_UNSETTLED;
		img->flags &= ~(uint32_t)IMAGE_F_COMPLETE;
		image_add_diag(img, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC, -1,
			       -1, NULL, IMAGE_NONE,
			       "pid %d changed its epoll state during each of %u reads: no two reads in a row agreed, this image is the last one (dump again, or with --freeze)",
			       (int)pid, opt->reads);
	}
	return 0;
}
