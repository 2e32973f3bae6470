// SPDX-License-Identifier: MIT
/*
 * transp_probe: small checks that a program cannot tell whether the shim is
 * preloaded.  test_transparency.sh runs each mode with and without the shim
 * and compares what it prints on stdout (only facts that must not differ);
 * a mode that checks a property itself says why on stderr and exits 1.
 *
 *   firstfd          fd numbers of the first open() in main, and after
 *                    the first epoll calls
 *   fork             fork(), posix_spawn(); parent and child use one set
 *   signals          every signal's disposition and the blocked mask, after
 *                    the program has used epoll (the shim's checkpoint
 *                    signal must look untouched: SIG_DFL)
 *   sigown SIG       the program installs its own handler on SIG, gets it
 *                    back from a query, and it runs on raise()
 *   nofds            the open fds and threads of a program that opens
 *                    nothing
 *   epollfds BASE    a program using epoll: every fd it did not open must
 *                    be >= BASE and close-on-exec (run it with only 0-2
 *                    open)
 *   dumpfds BASE SIG as epollfds, after asking for a dump with SIG
 *   exec             an epoll set inherited across exec still works
 *   execmany N       N epoll sets inherited across exec all work, and the
 *                    shim adopted every one (its load-time scan notes them
 *                    in batches of 64: N > 64 crosses a batch)
 *   execbig N        one set of N watches inherited across exec: the
 *                    shim adopts every watch (its fdinfo is longer than
 *                    the 64 KiB read of a small set from about 850 on)
 *   basic            epoll, fork, wait: for `env -i` and clearenv runs
 *   clearenv         clearenv() first (as nginx workers), then basic
 *   loaded           prints whether the shim is loaded (maps, dlsym)
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdinfo_util.h"

#define MAX_FDS 4096		/* fds listed */
#define DUMP_WAIT_MS 3000	/* how long dumpfds waits for an image */

extern char **environ;

static int failures;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("transp_probe: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

static bool shim_loaded(void)
{
	return dlsym(RTLD_DEFAULT, "epollcr_shadow_print") != NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* A set watching a fresh eventfd with data; returns the set, *efd set. */
static int make_set(int *efd, uint64_t data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
	int ep = epoll_create1(0);
	*efd = eventfd(0, EFD_NONBLOCK);
	if (ep < 0 || *efd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, *efd, &ev))
		fail("make_set: %s", strerror(errno));
	return ep;
}

/* Signal efd and collect the event from ep: true when data comes back. */
static bool roundtrip(int ep, int efd, uint64_t data)
{
	uint64_t one = 1, got;
	struct epoll_event ev;
	if (write(efd, &one, sizeof(one)) != sizeof(one))
		return false;
	int n = epoll_wait(ep, &ev, 1, 1000);
	bool ok = n == 1 && ev.data.u64 == data;
	return read(efd, &got, sizeof(got)) == sizeof(got) && ok;
}

static int mode_firstfd(void)
{
	int fd = open("/dev/null", O_RDONLY);
	printf("first_open %d\n", fd);
	int efd, ep = make_set(&efd, 1);
	printf("epoll %d eventfd %d\n", ep, efd);
	int fd2 = open("/dev/null", O_RDONLY);
	printf("open_after_epoll %d\n", fd2);
	close(fd2);
	close(ep);
	int fd3 = open("/dev/null", O_RDONLY);
	printf("open_after_close %d\n", fd3);
	return failures != 0;
}

static int child_work(int ep, int efd)
{
	if (!roundtrip(ep, efd, 42))
		return 3;
	int own_efd, own = make_set(&own_efd, 43);
	if (!roundtrip(own, own_efd, 43))
		return 4;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 44 };
	if (epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev))
		return 5;
	return 0;
}

static int mode_fork(void)
{
	int efd, ep = make_set(&efd, 42);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0)
		_exit(child_work(ep, efd));
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fail("fork child: status 0x%x", (unsigned)status);
	}
	printf("fork child ok\n");
	/* The child's MOD is visible in the shared set. */
	if (!roundtrip(ep, efd, 44))
		fail("fork parent: event after the child's MOD");
	printf("fork parent ok\n");

	char *argv[] = { "true", NULL };
	if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) ||
	    waitpid(pid, &status, 0) != pid || status != 0)
		fail("posix_spawn /bin/true");
	else
		printf("posix_spawn ok\n");
	if (!roundtrip(ep, efd, 44))
		fail("after posix_spawn: no event");
	close(efd);
	close(ep);
	return failures != 0;
}

static const char *disposition(void (*handler)(int))
{
	return handler == SIG_DFL ? "SIG_DFL" :
	       handler == SIG_IGN ? "SIG_IGN" :
				    "handler";
}

static int mode_signals(void)
{
	int efd, ep = make_set(&efd, 1);
	sleep_ms(50); /* let a thread started by the first set settle */
	for (int sig = 1; sig <= SIGRTMAX; sig++) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		errno = 0;
		int ret = sigaction(sig, NULL, &sa);
		printf("signal %d: ret %d errno %d %s flags 0x%x\n", sig, ret,
		       ret ? errno : 0, ret ? "-" : disposition(sa.sa_handler),
		       ret ? 0 : (unsigned)sa.sa_flags);
	}
	sigset_t blocked;
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	printf("blocked:");
	for (int sig = 1; sig <= SIGRTMAX; sig++)
		if (sigismember(&blocked, sig) == 1)
			printf(" %d", sig);
	printf("\n");
	close(efd);
	close(ep);
	return 0;
}

static volatile sig_atomic_t handled;

static void own_handler(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	handled = sig;
}

static int mode_sigown(int sig)
{
	int efd, ep = make_set(&efd, 1);
	struct sigaction sa = { .sa_sigaction = own_handler,
				.sa_flags = SA_SIGINFO | SA_RESTART };
	struct sigaction old, now;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, &old))
		fail("sigaction(%d): %s", sig, strerror(errno));
	printf("before: %s\n", disposition(old.sa_handler));
	sigaction(sig, NULL, &now);
	printf("query: %s\n", now.sa_sigaction == own_handler ? "own handler" :
			      disposition(now.sa_handler));
	raise(sig);
	printf("raise: handler %s\n", handled == sig ? "ran" : "did not run");
	if (handled != sig)
		fail("own handler of signal %d did not run", sig);
	/* Give it back: the query must say SIG_DFL again. */
	sa.sa_handler = SIG_DFL;
	sa.sa_flags = 0;
	sigaction(sig, &sa, NULL);
	sigaction(sig, NULL, &now);
	printf("restored: %s\n", disposition(now.sa_handler));
	close(efd);
	close(ep);
	return failures != 0;
}

/* Print the kind of what fd refers to, without names that vary by run. */
static void print_fd(int fd)
{
	char link[256];
	if (fdinfo_util_link(fd, link, sizeof(link)))
		snprintf(link, sizeof(link), "?");
	const char *kind = strncmp(link, "anon_inode:", 11) == 0 ? link :
			   strncmp(link, "pipe:", 5) == 0    ? "pipe" :
			   strncmp(link, "socket:", 7) == 0  ? "socket" :
							       "path";
	printf(" %d:%s", fd, kind);
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int mode_nofds(void)
{
	static int fds[MAX_FDS];
	sleep_ms(20);
	int n = fdinfo_util_list_fds(fds, MAX_FDS);
	printf("fds:");
	for (int i = 0; i < n; i++)
		print_fd(fds[i]);
	printf("\nthreads: %d\n", count_threads());
	return n < 0;
}

static bool in_list(const int *list, int n, int fd)
{
	for (int i = 0; i < n; i++)
		if (list[i] == fd)
			return true;
	return false;
}

/*
 * Checks of the fds the program did not open (anything but 0-2 and own:
 * the script starts the probe with nothing else open); prints own fds.
 */
static void check_foreign_fds(const int *own, int nown, int base)
{
	static int after[MAX_FDS];
	int n = fdinfo_util_list_fds(after, MAX_FDS), foreign = 0;
	for (int i = 0; i < n; i++) {
		int fd = after[i];
		if (fd <= 2 || in_list(own, nown, fd))
			continue;
		foreign++;
		char link[256] = "?";
		fdinfo_util_link(fd, link, sizeof(link));
		fprintf(stderr, "transp_probe: fd %d not opened by the program: %s\n",
			fd, link);
		if (fd < base)
			fail("fd %d (%s) is below %d: the shim must keep its fds high",
			     fd, link, base);
		int flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			fail("fd %d (%s) is not close-on-exec", fd, link);
	}
	for (int i = 0; i < nown; i++)
		if (!in_list(after, n, own[i]))
			fail("the program's fd %d was closed behind its back",
			     own[i]);
	printf("own fds:");
	for (int i = 0; i < nown; i++)
		printf(" %d", own[i]);
	printf("\nforeign fds below %d: %s\n", base,
	       failures ? "some" : "none");
	fprintf(stderr, "transp_probe: %d foreign fds\n", foreign);
}

/* Image files in dir (the shim's EPOLLCR_DIR), -1 when unreadable. */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int mode_epollfds(int base, int dump_sig)
{
	int own[16], nown = 0;
	int efd, ep = make_set(&efd, 7);
	own[nown++] = ep;
	own[nown++] = efd;
	int p[2];
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 8 };
	if (pipe(p) || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev))
		fail("pipe: %s", strerror(errno));
	own[nown++] = p[0];
	own[nown++] = p[1];
	int inner = epoll_create1(EPOLL_CLOEXEC);
	own[nown++] = inner;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, inner, &ev))
		fail("nested: %s", strerror(errno));
	own[nown++] = dup(efd);
	if (!roundtrip(ep, efd, 7))
		fail("epoll does not work");
	sleep_ms(50);

	if (dump_sig > 0) {
		const char *dir = getenv("EPOLLCR_DIR");
		int files = dir ? count_files(dir) : -1;
		if (!shim_loaded()) {
			fail("dumpfds needs the shim");
			return 1;
		}
		kill(getpid(), dump_sig); /* SI_USER: a dump request */
		int waited = 0;
		while (dir && count_files(dir) <= files &&
		       waited < DUMP_WAIT_MS) {
			sleep_ms(20);
			waited += 20;
		}
		fprintf(stderr, "transp_probe: dump %s after %d ms\n",
			dir && count_files(dir) > files ? "written" :
							  "not observed",
			waited);
		if (!roundtrip(ep, efd, 7))
			fail("epoll does not work after the dump");
	}
	check_foreign_fds(own, nown, base);
	return failures != 0;
}

static int mode_exec_child(int ep, int efd)
{
	static struct fdinfo_util_watch w[16];
	char text[8192];
	size_t n = 0;
	if (fdinfo_util_epoll_watches(ep, text, sizeof(text), w, 16, &n) ||
	    n != 1 || w[0].tfd != efd || w[0].data != 0x77 ||
	    w[0].events != (EPOLLIN | EPOLLERR | EPOLLHUP))
		fail("inherited set %d: unexpected fdinfo:\n%s", ep, text);
	if (!roundtrip(ep, efd, 0x77))
		fail("inherited set: no event");
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 0x78 };
	if (epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev))
		fail("MOD on inherited set: %s", strerror(errno));
	int efd2 = eventfd(0, 0);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, efd2, &ev) ||
	    epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL))
		fail("ADD/DEL on inherited set: %s", strerror(errno));
	fdinfo_util_epoll_watches(ep, text, sizeof(text), w, 16, &n);
	if (n != 1 || w[0].tfd != efd2 || w[0].data != 0x78)
		fail("inherited set after ADD/DEL:\n%s", text);
	printf("exec child: inherited set works\n");

	/* The shim adopted the set: its print lists it with the new watch. */
	int (*print)(int) = (int (*)(int))dlsym(RTLD_DEFAULT,
						"epollcr_shadow_print");
	if (print) {
		int mfd = memfd_create("shadow", MFD_CLOEXEC);
		char buf[8192] = "", want_set[32], want_watch[64];
		if (mfd < 0 || print(mfd) ||
		    pread(mfd, buf, sizeof(buf) - 1, 0) < 0)
			fail("epollcr_shadow_print failed");
		close(mfd);
		snprintf(want_set, sizeof(want_set), "set %d ", ep);
		snprintf(want_watch, sizeof(want_watch), "watch %d %d ", ep,
			 efd2);
		if (!strstr(buf, want_set) || !strstr(buf, want_watch))
			fail("the shim's print lacks the inherited set %d:\n%s",
			     ep, buf);
		fprintf(stderr, "transp_probe: shadow after exec:\n%s", buf);
	}
	return failures != 0;
}

static int mode_exec(const char *self)
{
	int efd, ep = make_set(&efd, 0x77);
	char a[16], b[16];
	snprintf(a, sizeof(a), "%d", ep);
	snprintf(b, sizeof(b), "%d", efd);
	fflush(stdout);
	execl(self, self, "exec-child", a, b, (char *)NULL);
	fail("exec %s: %s", self, strerror(errno));
	return 1;
}

#define EXECMANY_MAX 200

static int int_arg(const char *s);

static int mode_execmany_child(int n, char **eps)
{
	static char buf[1 << 20];
	int (*print)(int) = (int (*)(int))dlsym(RTLD_DEFAULT,
						"epollcr_shadow_print");
	/*
	 * TRANSP_DUMP_ONLY=PATH: dump to PATH (epollcr_dump_self) and nothing
	 * else, no epoll_ctl and no print: test_startup checks that the dump
	 * alone makes the shim adopt the inherited sets.
	 */
	const char *dump_only = getenv("TRANSP_DUMP_ONLY");
	if (dump_only && *dump_only) {
		int (*dump)(const char *) = (int (*)(const char *))dlsym(
			RTLD_DEFAULT, "epollcr_dump_self");
		if (!dump || dump(dump_only) != 0)
			fail("epollcr_dump_self(%s) failed", dump_only);
		printf("exec child: %d inherited sets, dumped\n", n);
		return failures != 0;
	}
	if (print) {
		int mfd = memfd_create("shadow", MFD_CLOEXEC);
		ssize_t len = -1;
		if (mfd < 0 || print(mfd) ||
		    (len = pread(mfd, buf, sizeof(buf) - 1, 0)) < 0)
			fail("epollcr_shadow_print failed");
		buf[len > 0 ? len : 0] = '\0';
		close(mfd);
	}
	for (int i = 0; i < n; i++) {
		static struct fdinfo_util_watch w[4];
		char text[4096], want[32];
		size_t count = 0;
		int ep = int_arg(eps[i]);
		if (fdinfo_util_epoll_watches(ep, text, sizeof(text), w, 4,
					      &count) ||
		    count != 1 || w[0].data != 0x1000u + (unsigned)i)
			fail("inherited set %d (%d of %d): unexpected fdinfo:\n%s",
			     ep, i + 1, n, text);
		snprintf(want, sizeof(want), "set %d ", ep);
		if (print && !strstr(buf, want))
			fail("the shim did not adopt inherited set %d (%d of %d)",
			     ep, i + 1, n);
	}
	printf("exec child: %d inherited sets\n", n);
	return failures != 0;
}

static int mode_execmany(const char *self, int n)
{
	static char args[EXECMANY_MAX][16];
	char *argv[EXECMANY_MAX + 4];
	if (n < 1 || n > EXECMANY_MAX) {
		fail("execmany: 1 to %d sets", EXECMANY_MAX);
		return 1;
	}
	argv[0] = (char *)self;
	argv[1] = "execmany-child";
	for (int i = 0; i < n; i++) {
		int efd, ep = make_set(&efd, 0x1000u + (unsigned)i);
		snprintf(args[i], sizeof(args[i]), "%d", ep);
		argv[2 + i] = args[i];
	}
	argv[2 + n] = NULL;
	fflush(stdout);
	execv(self, argv);
	fail("exec %s: %s", self, strerror(errno));
	return 1;
}

static int mode_execbig_child(int ep, int n)
{
	static char buf[1 << 22];
	char want[64];
	int (*print)(int) = (int (*)(int))dlsym(RTLD_DEFAULT,
						"epollcr_shadow_print");
	if (!print) { /* the run without the shim */
		printf("exec child: one inherited set of %d watches\n", n);
		return failures != 0;
	}
	int mfd = memfd_create("shadow", MFD_CLOEXEC);
	ssize_t len = -1;
	if (mfd < 0 || print(mfd) ||
	    (len = pread(mfd, buf, sizeof(buf) - 1, 0)) < 0) {
		fail("epollcr_shadow_print failed");
		return 1;
	}
	buf[len] = '\0';
	close(mfd);
	int adopted = 0;
	snprintf(want, sizeof(want), "watch %d ", ep);
	for (const char *p = buf; (p = strstr(p, want)); p++)
		adopted++;
	if (adopted != n)
		fail("execbig: the shim adopted %d of the %d inherited watches",
		     adopted, n);
	printf("exec child: one inherited set of %d watches\n", n);
	return failures != 0;
}

static int mode_execbig(const char *self, int n)
{
	char eparg[16], narg[16];
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max; /* n eventfds */
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int ep = epoll_create1(0);
	if (n < 1 || n > 5000 || ep < 0) {
		fail("execbig: 1 to 5000 watches");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = 0x2000u + (unsigned)i };
		int efd = eventfd(0, EFD_NONBLOCK);
		if (efd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev)) {
			fail("execbig: watch %d: %s", i, strerror(errno));
			return 1;
		}
	}
	snprintf(eparg, sizeof(eparg), "%d", ep);
	snprintf(narg, sizeof(narg), "%d", n);
	char *argv[] = { (char *)self, "execbig-child", eparg, narg, NULL };
	fflush(stdout);
	execv(self, argv);
	fail("exec %s: %s", self, strerror(errno));
	return 1;
}

static int mode_basic(void)
{
	int efd, ep = make_set(&efd, 42);
	if (!roundtrip(ep, efd, 42))
		fail("basic: no event");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_work(ep, efd));
	int status = -1;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		fail("basic: child status 0x%x", (unsigned)status);
	if (!roundtrip(ep, efd, 44))
		fail("basic: no event after the child's MOD");
	printf("basic ok\n");
	return failures != 0;
}

static int mode_loaded(void)
{
	char line[512];
	bool mapped = false;
	FILE *maps = fopen("/proc/self/maps", "r");
	while (maps && fgets(line, sizeof(line), maps))
		mapped |= strstr(line, "libepollcr") != NULL;
	if (maps)
		fclose(maps);
	printf("libepollcr mapped: %s, epollcr_shadow_print: %s\n",
	       mapped ? "yes" : "no", shim_loaded() ? "yes" : "no");
	return 0;
}

static int int_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 0);
	if (!*s || *end || v < 0 || v > 1 << 24) {
		fprintf(stderr, "transp_probe: bad number %s\n", s);
		exit(2);
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "firstfd") == 0)
		return mode_firstfd();
	if (strcmp(mode, "fork") == 0)
		return mode_fork();
	if (strcmp(mode, "signals") == 0)
		return mode_signals();
	if (strcmp(mode, "sigown") == 0 && argc == 3)
		return mode_sigown(int_arg(argv[2]));
	if (strcmp(mode, "nofds") == 0)
		return mode_nofds();
	if (strcmp(mode, "epollfds") == 0 && argc == 3)
		return mode_epollfds(int_arg(argv[2]), 0);
	if (strcmp(mode, "dumpfds") == 0 && argc == 4)
		return mode_epollfds(int_arg(argv[2]), int_arg(argv[3]));
	if (strcmp(mode, "exec") == 0)
		return mode_exec(argv[0][0] == '/' ? argv[0] : "/proc/self/exe");
	if (strcmp(mode, "exec-child") == 0 && argc == 4)
		return mode_exec_child(int_arg(argv[2]), int_arg(argv[3]));
	if (strcmp(mode, "execmany") == 0 && argc == 3)
		return mode_execmany(argv[0][0] == '/' ? argv[0]
						       : "/proc/self/exe",
				     int_arg(argv[2]));
	if (strcmp(mode, "execbig") == 0 && argc == 3)
		return mode_execbig(argv[0][0] == '/' ? argv[0]
						      : "/proc/self/exe",
				    int_arg(argv[2]));
	if (strcmp(mode, "execbig-child") == 0 && argc == 4)
		return mode_execbig_child(int_arg(argv[2]), int_arg(argv[3]));
	if (strcmp(mode, "execmany-child") == 0 && argc > 2)
		return mode_execmany_child(argc - 2, argv + 2);
	if (strcmp(mode, "basic") == 0)
		return mode_basic();
	if (strcmp(mode, "clearenv") == 0) {
		clearenv();
		return mode_basic();
	}
	if (strcmp(mode, "loaded") == 0)
		return mode_loaded();
	fprintf(stderr, "usage: transp_probe firstfd|fork|signals|sigown SIG|nofds|epollfds BASE|dumpfds BASE SIG|exec|basic|clearenv|loaded\n");
	return 2;
}
