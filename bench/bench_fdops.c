// SPDX-License-Identifier: MIT
/*
 * Figure 3: close, dup and dup2 of descriptors the shim does not track
 * (copies of an open("/dev/null"), which is not wrapped), under the shim
 * against the raw libc functions, in one process run under LD_PRELOAD.
 *
 * Per round and side: BATCH dup() of the /dev/null fd (timed), BATCH
 * dup2() of it onto each of those numbers (timed: each replaces an open
 * descriptor, as a server's dup2 onto stdout does), BATCH close() (timed).
 *
 * Then the fcntl and ioctl wrappers (issue 14 item 1), BATCH calls per
 * round and side: the commands the shadow follows on a socket created
 * under the shim (F_SETFL toggling O_NONBLOCK, F_SETFD, FIONBIO), and
 * the ones it passes through (F_GETFL on the untracked fd, FIONREAD on
 * the socket).  Last, sendmsg and recvmsg of one-byte datagrams without
 * descriptors, wrapped for the SCM_RIGHTS ones (BATCH of each per round
 * and side, on a unix datagram socketpair).
 */
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define BATCH 1000
#define WARMUP_ROUNDS 3

enum { OP_DUP, OP_DUP2, OP_CLOSE, NR_OPS };

static const char *const op_names[NR_OPS] = { "dup", "dup2", "close" };

struct fd_funcs {
	int (*dup_fn)(int oldfd);
	int (*dup2_fn)(int oldfd, int newfd);
	int (*close_fn)(int fd);
};

/*
 * One side's round: dup, dup2 onto the copies, close them; the time of
 * each loop into ns[].  Returns the calls that failed.
 */
static unsigned run_side(const struct fd_funcs *f, int src, int *fds,
			 uint64_t ns[NR_OPS])
{
	unsigned errors = 0;
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < BATCH; i++) {
		fds[i] = f->dup_fn(src);
		if (fds[i] < 0)
			errors++;
	}
	uint64_t t1 = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		if (fds[i] >= 0 && f->dup2_fn(src, fds[i]) < 0)
			errors++;
	uint64_t t2 = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		if (fds[i] >= 0 && f->close_fn(fds[i]) < 0)
			errors++;
	uint64_t t3 = bench_now_ns();
	ns[OP_DUP] = t1 - t0;
	ns[OP_DUP2] = t2 - t1;
	ns[OP_CLOSE] = t3 - t2;
	return errors;
}

enum { FL_SETFL, FL_SETFD, FL_FIONBIO, FL_GETFL, FL_FIONREAD, NR_FL };

static const char *const fl_names[NR_FL] = {
	"fcntl F_SETFL tracked", "fcntl F_SETFD tracked",
	"ioctl FIONBIO tracked", "fcntl F_GETFL untracked",
	"ioctl FIONREAD passed",
};

struct fl_funcs {
	int (*fcntl_fn)(int fd, int cmd, ...);
	int (*ioctl_fn)(int fd, unsigned long request, ...);
};

/* One side's round of the fcntl/ioctl calls, times into ns[]. */
static unsigned run_flags(const struct fl_funcs *f, int sock, int src,
			  uint64_t ns[NR_FL])
{
	unsigned errors = 0;
	int on, n;
	uint64_t t[NR_FL + 1];

	t[0] = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		errors += f->fcntl_fn(sock, F_SETFL, (i & 1) ? O_NONBLOCK : 0) < 0;
	t[1] = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		errors += f->fcntl_fn(sock, F_SETFD, (i & 1) ? FD_CLOEXEC : 0) < 0;
	t[2] = bench_now_ns();
	for (int i = 0; i < BATCH; i++) {
		on = i & 1;
		errors += f->ioctl_fn(sock, FIONBIO, &on) < 0;
	}
	t[3] = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		errors += f->fcntl_fn(src, F_GETFL) < 0;
	t[4] = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		errors += f->ioctl_fn(sock, FIONREAD, &n) < 0;
	t[5] = bench_now_ns();
	for (int op = 0; op < NR_FL; op++)
		ns[op] = t[op + 1] - t[op];
	return errors;
}

static void bench_flags(int src, unsigned rounds)
{
	struct bench_series s[NR_FL];
	unsigned errors = 0;
	char name[64];
	void *h = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	struct fl_funcs raw = { NULL, NULL }, shim = { fcntl, ioctl };

	if (h) {
		*(void **)&raw.fcntl_fn = dlsym(h, "fcntl");
		*(void **)&raw.ioctl_fn = dlsym(h, "ioctl");
	}
	int sock = socket(AF_INET, SOCK_STREAM, 0);
	if (!raw.fcntl_fn || !raw.ioctl_fn || sock < 0) {
		bench_report_skip("fdops flags", "no libc fcntl/ioctl or socket");
		return;
	}
	for (int op = 0; op < NR_FL; op++)
		if (bench_series_init(&s[op], rounds, BATCH) < 0) {
			bench_report_skip("fdops flags", "out of memory");
			return;
		}
	for (unsigned r = 0; r < rounds + WARMUP_ROUNDS; r++) {
		uint64_t raw_ns[NR_FL], shim_ns[NR_FL];
		if (r % 2) {
			errors += run_flags(&raw, sock, src, raw_ns);
			errors += run_flags(&shim, sock, src, shim_ns);
		} else {
			errors += run_flags(&shim, sock, src, shim_ns);
			errors += run_flags(&raw, sock, src, raw_ns);
		}
		if (r < WARMUP_ROUNDS)
			continue;
		for (int op = 0; op < NR_FL; op++)
			bench_series_add(&s[op], raw_ns[op], shim_ns[op]);
	}
	for (int op = 0; op < NR_FL; op++) {
		snprintf(name, sizeof(name), "fd.%s", fl_names[op]);
		bench_report_ratio(name, &s[op], 1.05,
				   errors ? "some calls failed" : NULL);
		bench_series_free(&s[op]);
	}
	close(sock);
}

enum { MSG_SEND, MSG_RECV, NR_MSG };

static const char *const msg_names[NR_MSG] = {
	"sendmsg without fds", "recvmsg without fds",
};

struct msg_funcs {
	ssize_t (*send_fn)(int fd, const struct msghdr *msg, int flags);
	ssize_t (*recv_fn)(int fd, struct msghdr *msg, int flags);
};

/* One side's round: BATCH one-byte datagrams sent, then received. */
static unsigned run_msgs(const struct msg_funcs *f, const int sp[2],
			 uint64_t ns[NR_MSG])
{
	unsigned errors = 0;
	char byte = 'x';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		errors += f->send_fn(sp[0], &m, 0) != 1;
	uint64_t t1 = bench_now_ns();
	for (int i = 0; i < BATCH; i++)
		errors += f->recv_fn(sp[1], &m, 0) != 1;
	uint64_t t2 = bench_now_ns();
	ns[MSG_SEND] = t1 - t0;
	ns[MSG_RECV] = t2 - t1;
	return errors;
}

/* sendmsg and recvmsg are wrapped for the descriptors they pass. */
static void bench_msgs(unsigned rounds)
{
	struct bench_series s[NR_MSG];
	unsigned errors = 0;
	char name[64];
	int sp[2], buf = BATCH * 2048;
	void *h = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	struct msg_funcs raw = { NULL, NULL }, shim = { sendmsg, recvmsg };

	if (h) {
		*(void **)&raw.send_fn = dlsym(h, "sendmsg");
		*(void **)&raw.recv_fn = dlsym(h, "recvmsg");
	}
	if (!raw.send_fn || !raw.recv_fn ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0) {
		bench_report_skip("fdops msgs", "no libc sendmsg or socketpair");
		return;
	}
	/* Room for a whole batch: no send blocks. */
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	for (int op = 0; op < NR_MSG; op++)
		if (bench_series_init(&s[op], rounds, BATCH) < 0) {
			bench_report_skip("fdops msgs", "out of memory");
			return;
		}
	for (unsigned r = 0; r < rounds + WARMUP_ROUNDS; r++) {
		uint64_t raw_ns[NR_MSG], shim_ns[NR_MSG];
		if (r % 2) {
			errors += run_msgs(&raw, sp, raw_ns);
			errors += run_msgs(&shim, sp, shim_ns);
		} else {
			errors += run_msgs(&shim, sp, shim_ns);
			errors += run_msgs(&raw, sp, raw_ns);
		}
		if (r < WARMUP_ROUNDS)
			continue;
		for (int op = 0; op < NR_MSG; op++)
			bench_series_add(&s[op], raw_ns[op], shim_ns[op]);
	}
	for (int op = 0; op < NR_MSG; op++) {
		snprintf(name, sizeof(name), "fd.%s", msg_names[op]);
		bench_report_ratio(name, &s[op], 1.05,
				   errors ? "some calls failed" : NULL);
		bench_series_free(&s[op]);
	}
	close(sp[0]);
	close(sp[1]);
}

int main(void)
{
	static int fds[BATCH];
	struct bench_libc libc_raw;
	struct bench_series s[NR_OPS];
	unsigned rounds = bench_rounds(300, 50), errors = 0;
	char name[64];

	if (bench_libc_resolve(&libc_raw) < 0) {
		bench_report_skip("fdops", "libc.so.6 not found");
		return 0;
	}
	if (!bench_preloaded())
		printf("# bench_fdops: libepollcr.so is not preloaded: both sides are raw\n");
	bench_raise_nofile(2 * BATCH + 64);
	int src = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (src < 0) {
		bench_report_skip("fdops", strerror(errno));
		return 0;
	}
	const struct fd_funcs raw = { libc_raw.dup, libc_raw.dup2,
				      libc_raw.close };
	const struct fd_funcs shim = { dup, dup2, close };
	for (int op = 0; op < NR_OPS; op++)
		if (bench_series_init(&s[op], rounds, BATCH) < 0) {
			bench_report_skip("fdops", "out of memory");
			return 0;
		}

	for (unsigned r = 0; r < rounds + WARMUP_ROUNDS; r++) {
		uint64_t raw_ns[NR_OPS], shim_ns[NR_OPS];
		if (r % 2) {
			errors += run_side(&raw, src, fds, raw_ns);
			errors += run_side(&shim, src, fds, shim_ns);
		} else {
			errors += run_side(&shim, src, fds, shim_ns);
			errors += run_side(&raw, src, fds, raw_ns);
		}
		if (r < WARMUP_ROUNDS)
			continue;
		for (int op = 0; op < NR_OPS; op++)
			bench_series_add(&s[op], raw_ns[op], shim_ns[op]);
	}
	for (int op = 0; op < NR_OPS; op++) {
		snprintf(name, sizeof(name), "fd.%s untracked",
			 op_names[op]);
		bench_report_ratio(name, &s[op], 1.05,
				   errors ? "some calls failed" : NULL);
		bench_series_free(&s[op]);
	}
	bench_flags(src, rounds);
	bench_msgs(rounds);
	close(src);
	return 0;
}
