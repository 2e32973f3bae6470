// SPDX-License-Identifier: MIT
/*
 * The shim keeps no descriptor of its own in the program's range once it
 * has captured stacks (test_unwind_fds.sh).  With RLIMIT_NOFILE 1000, the
 * program registers watches from main and from threads on fresh stacks
 * (libunwind validates such stacks' outermost frames), then checks,
 * against the kernel's own view:
 *
 *   fdtable: /proc/self/fd lists only the program's descriptors;
 *   fill:    eventfds until EMFILE get every number from the lowest free
 *            one up to 999, in order, none skipped;
 *   daemon:  after closing every descriptor it did not open, socketpairs
 *            over the whole range, 8 bytes queued at each end, then more
 *            registrations from fresh stacks: every end reads back exactly
 *            its 8 bytes (libunwind's pipe, once at two of these numbers,
 *            read from and wrote into the program's sockets);
 *   errno:   a successful ADD leaves errno as it was.
 *
 * Prints one line per check ("ok: ..." or "FAIL: ...") and exits 1 when
 * any failed.  Needs no shim: it passes without one, as it must with.
 *
 *   unwind_fds seccomp: the same under a seccomp filter that refuses
 *   process_vm_readv (EPERM), as some containers' profiles do: the shim
 *   then validates through a pipe made and closed at once (shim/syscall.c).
 */
#include <dirent.h>
#include <errno.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LIMIT 1000	  /* RLIMIT_NOFILE of the test */
#define STACK (1 << 20)	  /* a fresh thread stack */
#define THREADS 6	  /* registrations from fresh stacks, per round */
#define SPARE 16	  /* numbers left free for the threads' eventfds */
#define BYTES 8		  /* queued at each socket end */

static int ep;
static int failures;
static int errno_changed;

static void check(int ok, const char *what, const char *detail)
{
	printf("%s: %s%s%s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "",
	       detail ? detail : "");
	failures += !ok;
}

/* ADD an eventfd (errno set to a marker first), DEL and close it. */
static void add_one(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0)
		return;
	struct epoll_event e = { .events = EPOLLIN };
	errno = 4242;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0 && errno != 4242)
		errno_changed++;
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
}

static void *adder(void *arg)
{
	add_one();
	return arg;
}

/* add_one() in THREADS threads, each on a stack never used before. */
static void add_from_fresh_stacks(void)
{
	for (int i = 0; i < THREADS; i++) {
		void *stack = aligned_alloc(4096, STACK);
		pthread_attr_t attr;
		pthread_t t;
		if (!stack)
			continue;
		pthread_attr_init(&attr);
		pthread_attr_setstack(&attr, stack, STACK);
		if (pthread_create(&t, &attr, adder, NULL) == 0)
			pthread_join(t, NULL);
		pthread_attr_destroy(&attr);
		/* not freed: the next stack must be at another address */
	}
}

/* Every fd in /proc/self/fd other than 0-2, ep and the listing's own. */
static void check_fdtable(void)
{
	char detail[512] = "";
	size_t len = 0;
	int extra = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		check(0, "fdtable", "cannot open /proc/self/fd");
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int fd = atoi(de->d_name);
		if (fd <= 2 || fd == ep || fd == dirfd(d))
			continue;
		char path[64], target[128] = "?";
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n >= 0)
			target[n] = 0;
		extra++;
		if (len < sizeof(detail) - 64)
			len += (size_t)snprintf(detail + len, sizeof(detail) - len,
						" %d -> %s", fd, target);
	}
	closedir(d);
	check(extra == 0, "fdtable: only the program's descriptors are open",
	      extra ? detail : NULL);
}

/* eventfds until EMFILE: from the lowest free number up to LIMIT - 1. */
static void check_fill(void)
{
	int first = -1, last = -1, skipped = 0, fd;
	char detail[128] = "";
	while ((fd = eventfd(0, 0)) >= 0) {
		if (first < 0)
			first = fd;
		else if (fd != last + 1 && !skipped++)
			snprintf(detail, sizeof(detail), "%d follows %d", fd,
				 last);
		last = fd;
	}
	int stop = errno;
	if (!skipped)
		snprintf(detail, sizeof(detail), "%d..%d, then %s", first,
			 last, strerror(stop));
	check(!skipped && last == LIMIT - 1 && stop == EMFILE,
	      "fill: every number up to the limit, in order", detail);
	for (fd = first; fd >= 0 && fd <= last; fd++)
		close(fd);
}

/* Close every fd it did not open, socketpairs everywhere, fresh stacks. */
static void check_daemon(void)
{
	static int ends[LIMIT];
	int n = 0, bad = 0, sv[2];
	char detail[128] = "";

	for (int fd = 3; fd < LIMIT; fd++)
		if (fd != ep)
			close(fd);
	while (n + 2 < LIMIT - SPARE &&
	       socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		if (sv[1] >= LIMIT - SPARE) {
			close(sv[0]);
			close(sv[1]);
			break;
		}
		ends[n++] = sv[0];
		ends[n++] = sv[1];
	}
	/* end i reads what its peer i ^ 1 wrote: 8 copies of a tag byte */
	for (int i = 0; i < n; i++) {
		char msg[BYTES];
		memset(msg, 'A' + i % 26, sizeof(msg));
		if (write(ends[i], msg, sizeof(msg)) != sizeof(msg))
			bad++;
	}
	add_from_fresh_stacks();
	for (int i = 0; i < n; i++) {
		char want[BYTES], got[2 * BYTES];
		memset(want, 'A' + (i ^ 1) % 26, sizeof(want));
		ssize_t r = recv(ends[i], got, sizeof(got), MSG_DONTWAIT);
		if (r != BYTES || memcmp(got, want, BYTES)) {
			if (!bad++)
				snprintf(detail, sizeof(detail),
					 "fd %d read %zd bytes, first 0x%02x",
					 ends[i], r, r > 0 ? got[0] & 0xff : 0);
		}
		close(ends[i]);
	}
	snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
		 "%s%d socket ends", *detail ? ", of " : "", n);
	check(!bad && n > LIMIT / 2,
	      "daemon: sockets over the whole range keep their bytes", detail);
}

/* process_vm_readv refused with EPERM from now on (x86-64; else none). */
static int refuse_process_vm_readv(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]),
				   .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "seccomp") == 0 &&
	    refuse_process_vm_readv() != 0) {
		perror("seccomp");
		return 2;
	}
	struct rlimit rl = { LIMIT, LIMIT };
	/* A daemon from the start: nothing inherited beyond 0-2. */
	if (close_range(3, ~0U, 0) != 0) {
		perror("close_range");
		return 2;
	}
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("setrlimit");
		return 2;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("epoll_create1");
		return 2;
	}
	add_one();
	add_from_fresh_stacks();
	check_fdtable();
	check_fill();
	check_daemon();
	check_fdtable();
	char detail[64];
	snprintf(detail, sizeof(detail), "%d of %d successful ADDs changed it",
		 errno_changed, 2 + 2 * THREADS);
	check(!errno_changed, "errno: a successful ADD leaves it alone",
	      detail);
	return failures ? 1 : 0;
}
