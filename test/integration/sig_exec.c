// SPDX-License-Identifier: MIT
/*
 * A program that ignores the checkpoint signal (SIGRTMAX-3) starts
 * programs: exec keeps an ignored signal ignored, so each child must
 * start with it ignored, as the kernel shows it (/proc/self/status SigIgn,
 * read by the child, which runs without the shim: LD_PRELOAD is removed
 * first).  One line per way of starting a program: every exec function,
 * posix_spawn, posix_spawnp, system, popen, vfork + execve; and what a
 * vfork child reads back of the action with sigaction() and signal().
 * A failed exec must leave the program as it was (its action read back).
 * Then "ready", and the program waits for SIGTERM (test_sig_exec.sh dumps
 * it: the shim's handler must be back in place after all that).
 *
 *   sig_exec            run every way, print one line each
 *   sig_exec report W   print "W: SIG_IGN" or "W: not ignored" (child)
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int ckpt;
static const char *self;

/* Whether /proc/self/status says sig is ignored. */
static int kernel_ignores(int sig)
{
	char line[256];
	unsigned long long mask = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigIgn: %llx", &mask) == 1)
			break;
	fclose(f);
	return (int)((mask >> (sig - 1)) & 1);
}

static int report(const char *way)
{
	int ign = kernel_ignores(ckpt);
	printf("%s: %s\n", way, ign == 1 ? "SIG_IGN" : ign == 0 ? "not ignored" : "unknown");
	fflush(stdout);
	return 0;
}

static void wait_child(pid_t pid)
{
	int st;
	if (pid > 0)
		waitpid(pid, &st, 0);
}

static char *const *args(const char *way)
{
	static char *argv[4];
	argv[0] = (char *)self;
	argv[1] = "report";
	argv[2] = (char *)way;
	argv[3] = NULL;
	return argv;
}

/* Fork, run fn(way) in the child (which execs), wait for it. */
static void in_child(const char *way, void (*fn)(const char *))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		fn(way);
		_exit(127);
	}
	wait_child(pid);
}

static void by_execve(const char *w) { execve(self, args(w), environ); }
static void by_execv(const char *w) { execv(self, args(w)); }
static void by_execvp(const char *w) { execvp(self, args(w)); }
static void by_execvpe(const char *w) { execvpe(self, args(w), environ); }
static void by_execl(const char *w) { execl(self, self, "report", w, (char *)NULL); }
static void by_execlp(const char *w) { execlp(self, self, "report", w, (char *)NULL); }
static void by_execle(const char *w)
{
	execle(self, self, "report", w, (char *)NULL, environ);
}
static void by_fexecve(const char *w)
{
	int fd = open(self, O_RDONLY);
	fexecve(fd, args(w), environ);
}
static void by_execveat(const char *w)
{
	execveat(AT_FDCWD, self, args(w), environ, 0);
}

int main(int argc, char **argv)
{
	ckpt = SIGRTMAX - 3;
	self = argv[0];
	if (argc == 3 && !strcmp(argv[1], "report"))
		return report(argv[2]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (self[0] != '/') {
		fprintf(stderr, "run me by an absolute path\n");
		return 2;
	}
	unsetenv("LD_PRELOAD"); /* the children: the kernel's own view */
	/* An epoll set: under the shim, its recorder thread runs. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	int efd[2];
	if (ep < 0 || pipe(efd) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd[0], &ev))
		return 2;
	signal(ckpt, SIG_IGN);

	in_child("execve", by_execve);
	in_child("execv", by_execv);
	in_child("execvp", by_execvp);
	in_child("execvpe", by_execvpe);
	in_child("execl", by_execl);
	in_child("execlp", by_execlp);
	in_child("execle", by_execle);
	in_child("fexecve", by_fexecve);
	in_child("execveat", by_execveat);

	fflush(stdout);
	pid_t pid = vfork();
	if (pid == 0) {
		execve(self, args("vfork execve"), environ);
		_exit(127);
	}
	wait_child(pid);

	/* A vfork child reads the program's action back, then sets its own. */
	pid = vfork();
	if (pid == 0) {
		struct sigaction q;
		sigaction(ckpt, NULL, &q);
		void (*was)(int) = signal(ckpt, SIG_DFL);
		_exit(q.sa_handler == SIG_IGN && was == SIG_IGN ? 0 : 1);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	printf("vfork child reads back: %s\n",
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "SIG_IGN" : "not ignored");

	if (posix_spawn(&pid, self, NULL, NULL, args("posix_spawn"), environ) == 0)
		wait_child(pid);
	if (posix_spawnp(&pid, self, NULL, NULL, args("posix_spawnp"), environ) == 0)
		wait_child(pid);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "exec '%s' report system", self);
	if (system(cmd) != 0)
		printf("system: failed\n");
	snprintf(cmd, sizeof(cmd), "exec '%s' report popen", self);
	FILE *p = popen(cmd, "r");
	if (p) {
		char line[128];
		while (fgets(line, sizeof(line), p))
			fputs(line, stdout);
		pclose(p);
	}

	/* A failed exec leaves the action as it was. */
	char *none[] = { "/nonexistent/sig_exec", NULL };
	execv(none[0], none);
	execl(none[0], none[0], (char *)NULL);
	struct sigaction o;
	sigaction(ckpt, NULL, &o);
	printf("after failed execs: %s\n",
	       o.sa_handler == SIG_IGN ? "SIG_IGN" : "not ignored");
	printf("ready\n");
	for (;;)
		pause();
}
