// SPDX-License-Identifier: MIT
/*
 * What a program sees of its own action for the checkpoint signal
 * (SIGRTMAX-3), printed one line per check so that test_sig_ckpt.sh can
 * compare a run without the shim with a run under it: the action read
 * back (flags as the kernel keeps them, SIGKILL out of the mask), what is
 * blocked while its handler runs (sa_mask, SA_NODEFER), SA_RESETHAND, a
 * blocking read interrupted by a signal from another process (EINTR
 * without SA_RESTART, restarted with it), signal()'s action.  Every wait
 * is bounded (alarm).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

static int ckpt;
static volatile sig_atomic_t hits, usr2_blocked, self_blocked;

static void handler(int sig)
{
	sigset_t now;
	(void)sig;
	hits++;
	sigprocmask(SIG_BLOCK, NULL, &now);
	usr2_blocked = sigismember(&now, SIGUSR2);
	self_blocked = sigismember(&now, ckpt);
}

static const char *handler_name(void (*h)(int))
{
	return h == SIG_DFL ? "SIG_DFL" : h == SIG_IGN ? "SIG_IGN" :
	       h == handler ? "handler" : "other";
}

static void set(int flags, int mask_sig)
{
	struct sigaction a = { .sa_handler = handler, .sa_flags = flags };
	sigemptyset(&a.sa_mask);
	if (mask_sig)
		sigaddset(&a.sa_mask, mask_sig);
	if (sigaction(ckpt, &a, NULL) < 0) {
		perror("sigaction");
		exit(2);
	}
}

static void read_back(const char *what)
{
	struct sigaction o;
	memset(&o, 0, sizeof(o));
	sigaction(ckpt, NULL, &o);
	printf("%s: %s flags %#x mask SIGKILL %d SIGUSR2 %d self %d restorer %s\n",
	       what, handler_name(o.sa_handler), (unsigned)o.sa_flags,
	       sigismember(&o.sa_mask, SIGKILL),
	       sigismember(&o.sa_mask, SIGUSR2), sigismember(&o.sa_mask, ckpt),
	       o.sa_restorer ? "set" : "none");
}

/* raise() the signal with action (flags, mask_sig): what was blocked. */
static void blocked_in_handler(const char *what, int flags, int mask_sig)
{
	set(flags, mask_sig);
	hits = 0;
	raise(ckpt);
	printf("%s: hits %d, SIGUSR2 blocked %d, itself blocked %d\n", what,
	       (int)hits, (int)usr2_blocked, (int)self_blocked);
}

/*
 * A blocking read of a pipe while another process sends the signal, then
 * a byte: returns what the first read() gave (EINTR, or the byte).
 */
static void interrupted_read(const char *what, int flags)
{
	int p[2];
	char c;
	set(flags, 0);
	if (pipe(p) < 0)
		exit(2);
	pid_t parent = getpid(), kid = fork();
	if (kid == 0) {
		usleep(200 * 1000);
		kill(parent, ckpt);
		usleep(200 * 1000);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		_exit(0);
	}
	hits = 0;
	alarm(10);
	ssize_t n = read(p[0], &c, 1);
	int err = errno;
	printf("%s: first read %s, hits %d\n", what,
	       n == 1 ? "got the byte" : err == EINTR ? "EINTR" : "failed",
	       (int)hits);
	if (n != 1 && read(p[0], &c, 1) != 1)
		printf("%s: second read failed\n", what);
	alarm(0);
	waitpid(kid, NULL, 0);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	ckpt = SIGRTMAX - 3;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* An epoll set: under the shim, its recorder thread runs. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return 2;
	read_back("initial");

	set(SA_RESETHAND | SA_ONSTACK, SIGKILL);
	read_back("resethand");
	raise(ckpt);
	read_back("resethand after one");
	pid_t kid = fork();
	if (kid == 0) {
		alarm(5);
		raise(ckpt);
		_exit(0);
	}
	int st = 0;
	waitpid(kid, &st, 0);
	printf("resethand: a second one %s\n",
	       WIFSIGNALED(st) && WTERMSIG(st) == ckpt ? "kills" : "does not kill");

	blocked_in_handler("mask SIGUSR2", 0, SIGUSR2);
	blocked_in_handler("nodefer", SA_NODEFER, 0);
	read_back("nodefer");

	interrupted_read("no SA_RESTART", 0);
	interrupted_read("SA_RESTART", SA_RESTART);

	signal(ckpt, handler);
	read_back("signal()");
	set(0, 0);
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigaction(ckpt, &ign, NULL);
	read_back("ignored");
	close(ep);
	return 0;
}
