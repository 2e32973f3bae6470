// SPDX-License-Identifier: MIT
/*
 * Unit tests of kview_snapshot() and kview_compare(): each test builds real
 * epoll state in this process (or in a forked child), takes the kernel view
 * and checks it against what the test did AND, independently of the code
 * under test, against the kernel: its own /proc/PID/fdinfo text (read here
 * with sscanf), F_GETFD, readlink, and kcmp(2) for every claim the view
 * makes about which fd holds which watched file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kview.h"
#include "recorder.h"
#include "restore.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#define PRIVATE_BITS (EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE | EPOLLWAKEUP)
#define MAX_TRACKED 32768

/* ---- fds this test opened, closed after each test ---------------------- */

static int tracked[MAX_TRACKED];
static int ntracked;

static int track(int fd)
{
	assert_true(fd >= 0);
	assert_true(ntracked < MAX_TRACKED);
	tracked[ntracked++] = fd;
	return fd;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < ntracked; i++)
		close(tracked[i]);
	ntracked = 0;
	return 0;
}

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
}

static long kcmp_pid(pid_t pid, int type, unsigned long a, unsigned long b)
{
	return syscall(SYS_kcmp, pid, pid, type, a, b);
}

/* ---- the kernel's own word, read without the code under test ----------- */

struct kline {
	int tfd;
	unsigned events;
	unsigned long long data;
};

/* The tfd lines of /proc/PID/fdinfo/EPFD, parsed with sscanf. */
static int kernel_lines(pid_t pid, int epfd, struct kline **out)
{
	char path[64];
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	int n = 0, max = 16;
	struct kline *v = malloc((size_t)max * sizeof(*v));

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, epfd);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		assert_true(r >= 0);
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	close(fd);
	for (char *p = buf; (p = strstr(p, "tfd:")); p++) {
		if (n == max) {
			max *= 2;
			v = realloc(v, (size_t)max * sizeof(*v));
			assert_non_null(v);
		}
		assert_int_equal(sscanf(p, "tfd: %d events: %x data: %llx",
					&v[n].tfd, &v[n].events, &v[n].data),
				 3);
		n++;
	}
	free(buf);
	*out = v;
	return n;
}

static unsigned fdinfo_flags(pid_t pid, int fd)
{
	char path[64], buf[4096];
	unsigned flags = 0;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	int f = open(path, O_RDONLY);
	assert_true(f >= 0);
	ssize_t n = read(f, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	close(f);
	char *p = strstr(buf, "flags:");
	assert_non_null(p);
	assert_int_equal(sscanf(p, "flags: %o", &flags), 1);
	return flags;
}

/* readlink of /proc/PID/fd/FD; false when fd is no longer open. */
static bool try_link_of(pid_t pid, int fd, char *link, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	ssize_t n = readlink(path, link, len - 1);
	if (n <= 0)
		return false;
	link[n] = '\0';
	return true;
}

static void link_of(pid_t pid, int fd, char *link, size_t len)
{
	assert_true(try_link_of(pid, fd, link, len));
}

/* The link's kind, decided here by plain string tests. */
static uint32_t kind_by_hand(const char *link)
{
	if (!strncmp(link, "socket:[", 8))
		return IMAGE_KIND_SOCKET;
	if (!strncmp(link, "pipe:[", 6))
		return IMAGE_KIND_PIPE;
	if (strstr(link, "anon_inode:") == link) {
		if (strstr(link, "eventpoll"))
			return IMAGE_KIND_EPOLL;
		if (strstr(link, "eventfd"))
			return IMAGE_KIND_EVENTFD;
		if (strstr(link, "timerfd"))
			return IMAGE_KIND_TIMERFD;
		if (strstr(link, "signalfd"))
			return IMAGE_KIND_SIGNALFD;
	}
	return IMAGE_KIND_OTHER;
}

/* Every fd number open in pid. */
static int open_fds(pid_t pid, int *fds, int max)
{
	char path[64];
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && n < max)
			fds[n++] = atoi(de->d_name);
	closedir(d);
	return n;
}

static int lowest_fd_of(const struct image *img, uint32_t target)
{
	int best = -1;

	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].target == target &&
		    (best < 0 || img->fds[i].fd < best))
			best = img->fds[i].fd;
	return best;
}

static uint32_t target_at(const struct image *img, int fd)
{
	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd == fd)
			return img->fds[i].target;
	return IMAGE_NONE;
}

/*
 * Through kcmp alone: open_fd holds the file watched as (epfd, w->tfd,
 * toff), tfd holds it exactly when the watch is not stale, and with
 * open_fd -1 no fd of the process (all[0..nall)) holds it.
 */
static void check_watch_file(pid_t pid, const struct image *img, int epfd,
			     const struct image_watch *w, uint32_t toff,
			     const int *all, int nall)
{
	struct kcmp_epoll_slot slot = { (uint32_t)epfd, (uint32_t)w->tfd,
					toff };
	unsigned long uslot = (unsigned long)&slot;

	assert_non_null(image_target_by_id(img, w->target));
	long at_tfd = kcmp_pid(pid, KCMP_EPOLL_TFD, (unsigned long)w->tfd,
			       uslot);
	assert_int_equal(!!(w->flags & IMAGE_W_STALE), at_tfd != 0);
	if (w->open_fd >= 0) {
		assert_int_equal(kcmp_pid(pid, KCMP_EPOLL_TFD,
					  (unsigned long)w->open_fd, uslot),
				 0);
		assert_int_equal(target_at(img, w->open_fd), w->target);
		if (at_tfd == 0)
			assert_int_equal(w->open_fd, w->tfd);
		return;
	}
	assert_int_equal(lowest_fd_of(img, w->target), -1);
	for (int q = 0; q < nall; q++)
		assert_true(kcmp_pid(pid, KCMP_EPOLL_TFD,
				     (unsigned long)all[q], uslot) != 0);
}

/*
 * Check every claim of img about pid against the kernel.  With sample > 1,
 * only every sample-th watch is checked through kcmp (large sets).
 */
static void check_kernel_sampled(pid_t pid, const struct image *img,
				 uint32_t sample)
{
	static int all[MAX_TRACKED];
	int nall = open_fds(pid, all, MAX_TRACKED);

	assert_true(img->flags & IMAGE_F_KERNEL_VIEW);
	/* fd entries: kind, close-on-exec, one file per target. */
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct image_fd *f = &img->fds[i];
		const struct image_target *t =
			image_target_by_id(img, f->target);
		char link[256];

		assert_non_null(t);
		link_of(pid, f->fd, link, sizeof(link));
		if (t->kind != IMAGE_KIND_PIPE)
			assert_int_equal(kind_by_hand(link), t->kind);
		assert_string_equal(t->path, link);
		assert_int_equal(!!(f->fd_flags & FD_CLOEXEC),
				 !!(fdinfo_flags(pid, f->fd) & O_CLOEXEC));
		if (img->nfds > 400)
			continue;
		for (uint32_t j = i + 1; j < img->nfds; j++) {
			long r = kcmp_pid(pid, KCMP_FILE, (unsigned long)f->fd,
					  (unsigned long)img->fds[j].fd);
			assert_true(r >= 0);
			assert_int_equal(r == 0,
					 f->target == img->fds[j].target);
		}
	}
	/* Every epoll fd of the process is in the image. */
	for (int i = 0; i < nall; i++) {
		char link[256];

		if (!try_link_of(pid, all[i], link, sizeof(link)) ||
		    kind_by_hand(link) != IMAGE_KIND_EPOLL)
			continue;
		const struct image_target *t =
			image_target_by_id(img, target_at(img, all[i]));
		assert_non_null(t);
		assert_int_equal(t->kind, IMAGE_KIND_EPOLL);
	}
	/* Watches: exactly the kernel's lines, in order, per set. */
	uint32_t seen = 0;

	for (uint32_t id = 1; id <= img->ntargets; id++) {
		const struct image_target *set = &img->targets[id - 1];
		int epfd = lowest_fd_of(img, id);
		struct kline *k;

		if (set->kind != IMAGE_KIND_EPOLL || epfd < 0)
			continue;
		int n = kernel_lines(pid, epfd, &k), j = 0;

		assert_int_equal(set->u.ep.nwatches, n);
		for (uint32_t wi = 0; wi < img->nwatches; wi++) {
			const struct image_watch *w = &img->watches[wi];

			if (w->set != id)
				continue;
			seen++;
			assert_true(j < n);
			assert_int_equal(w->tfd, k[j].tfd);
			assert_int_equal(w->events, k[j].events);
			assert_true(w->data == k[j].data);
			assert_true(w->flags & IMAGE_W_KERNEL);
			assert_int_equal(!!(w->flags & IMAGE_W_DISARMED),
					 !(w->events & ~PRIVATE_BITS));
			/* toff: rank of this line among its tfd's. */
			uint32_t toff = 0;

			for (int q = 0; q < j; q++)
				toff += k[q].tfd == k[j].tfd;
			j++;
			if (sample > 1 && wi % sample)
				continue;
			check_watch_file(pid, img, epfd, w, toff, all, nall);
		}
		assert_int_equal(j, n);
		free(k);
	}
	assert_int_equal(seen, img->nwatches);
}

static void check_kernel(pid_t pid, const struct image *img)
{
	check_kernel_sampled(pid, img, 1);
}

static void snap(struct image *img, unsigned flags,
		 const struct kview_hints *hints)
{
	image_init(img);
	assert_int_equal(kview_snapshot(0, img, flags, hints), 0);
	check_kernel(getpid(), img);
}

/* The watch of set fd epfd with this data tag (tags are unique per test). */
static const struct image_watch *watch_by_data(const struct image *img,
					       int epfd, uint64_t data)
{
	uint32_t set = target_at(img, epfd);
	const struct image_watch *found = NULL;

	for (uint32_t i = 0; i < img->nwatches; i++)
		if (img->watches[i].set == set &&
		    img->watches[i].data == data) {
			assert_null(found);
			found = &img->watches[i];
		}
	assert_non_null(found);
	return found;
}

static const struct image_target *target_of_watch(const struct image *img,
						  const struct image_watch *w)
{
	const struct image_target *t = image_target_by_id(img, w->target);

	assert_non_null(t);
	return t;
}

/* ---- tests --------------------------------------------------------------- */

/* e0 > e1 > e2 > eventfd, with e1 reachable from two fds. */
static void test_nested_sets(void **state)
{
	(void)state;
	int e0 = track(epoll_create1(EPOLL_CLOEXEC));
	int e1 = track(epoll_create1(0));
	int e2 = track(epoll_create1(0));
	int ef = track(eventfd(0, 0));
	struct image img;

	add(e0, e1, EPOLLIN, 1);
	add(e1, e2, EPOLLIN, 2);
	add(e2, ef, EPOLLIN, 3);
	int e1dup = track(dup(e1));

	snap(&img, 0, NULL);
	const struct image_watch *w1 = watch_by_data(&img, e0, 1);
	const struct image_watch *w2 = watch_by_data(&img, e1, 2);
	const struct image_watch *w3 = watch_by_data(&img, e2, 3);

	assert_int_equal(w1->target, target_at(&img, e1));
	assert_int_equal(w1->target, target_at(&img, e1dup));
	assert_int_equal(target_of_watch(&img, w1)->kind, IMAGE_KIND_EPOLL);
	assert_int_equal(w2->target, target_at(&img, e2));
	assert_int_equal(w3->target, target_at(&img, ef));
	assert_int_equal(w1->open_fd, e1);
	assert_int_equal(w1->flags, IMAGE_W_KERNEL);
	assert_int_equal(w1->events, EPOLLIN | EPOLLERR | EPOLLHUP);
	/* A watch from e1dup's point of view is the same set's. */
	assert_int_equal(w2->set, target_at(&img, e1dup));
	assert_int_equal(image_target_by_id(&img, w2->set)->u.ep.nwatches, 1);
	image_free(&img);
}

/* dup then close of the watched fd: watch stays, STALE, open_fd = dup. */
static void test_dup_then_close(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int ef = eventfd(0, 0);
	struct image img;

	add(ep, ef, EPOLLIN, 7);
	int d = track(dup(ef));
	close(ef);
	snap(&img, 0, NULL);
	const struct image_watch *w = watch_by_data(&img, ep, 7);

	assert_int_equal(w->tfd, ef);
	assert_int_equal(w->open_fd, d);
	assert_int_equal(w->flags, IMAGE_W_KERNEL | IMAGE_W_STALE);
	assert_int_equal(w->target, target_at(&img, d));
	assert_int_equal(target_of_watch(&img, w)->kind, IMAGE_KIND_EVENTFD);
	image_free(&img);
}

/*
 * dup2 over a watched fd: tfd now holds another file, which is watched
 * under the same tfd too.  Two watches with one tfd (toff 0 and 1).
 */
static void test_dup2_over_watched(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int a = track(eventfd(0, 0));
	int keep = track(dup(a));
	int b = track(timerfd_create(CLOCK_MONOTONIC, 0));
	int p[2];
	struct image img;

	assert_int_equal(pipe(p), 0);
	track(p[0]);
	track(p[1]);
	add(ep, a, EPOLLIN, 1);
	assert_int_equal(dup2(b, a), a); /* a now holds the timerfd */
	add(ep, a, EPOLLIN, 2);
	/* And a watched pipe end whose tfd got a socket: open_fd elsewhere. */
	add(ep, p[0], EPOLLIN, 3);
	int pr = track(dup(p[0]));
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_int_equal(dup2(s, p[0]), p[0]);
	close(s);
	snap(&img, 0, NULL);
	const struct image_watch *w1 = watch_by_data(&img, ep, 1);
	const struct image_watch *w2 = watch_by_data(&img, ep, 2);
	const struct image_watch *w3 = watch_by_data(&img, ep, 3);

	assert_int_equal(w1->tfd, a);
	assert_int_equal(w2->tfd, a);
	assert_int_equal(w1->flags, IMAGE_W_KERNEL | IMAGE_W_STALE);
	assert_int_equal(w1->open_fd, keep);
	assert_int_equal(target_of_watch(&img, w1)->kind, IMAGE_KIND_EVENTFD);
	assert_int_equal(w2->flags, IMAGE_W_KERNEL);
	assert_int_equal(w2->open_fd, a);
	assert_int_equal(target_of_watch(&img, w2)->kind, IMAGE_KIND_TIMERFD);
	assert_int_equal(w2->target, target_at(&img, b));
	assert_int_equal(w3->flags, IMAGE_W_KERNEL | IMAGE_W_STALE);
	assert_int_equal(w3->open_fd, pr);
	assert_int_equal(target_of_watch(&img, w3)->kind, IMAGE_KIND_PIPE);
	/* The socket now at p[0] is no target: nothing watches it. */
	assert_int_equal(target_at(&img, p[0]), IMAGE_NONE);
	image_free(&img);
}

static void test_oneshot_et_exclusive(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int e1 = track(eventfd(1, 0)); /* readable: fires */
	int e2 = track(eventfd(0, 0));
	int e3 = track(eventfd(0, 0));
	struct epoll_event out[4];
	struct image img;

	add(ep, e1, EPOLLIN | EPOLLONESHOT, 1);
	add(ep, e2, EPOLLIN | EPOLLET, 2);
	add(ep, e3, EPOLLIN | EPOLLEXCLUSIVE, 3);
	assert_int_equal(epoll_wait(ep, out, 4, 0), 1);
	snap(&img, 0, NULL);
	const struct image_watch *w1 = watch_by_data(&img, ep, 1);
	const struct image_watch *w2 = watch_by_data(&img, ep, 2);
	const struct image_watch *w3 = watch_by_data(&img, ep, 3);

	assert_int_equal(w1->events, 0x40000000);
	assert_int_equal(w1->flags, IMAGE_W_KERNEL | IMAGE_W_DISARMED);
	assert_int_equal(w2->events, 0x80000019);
	assert_int_equal(w2->flags, IMAGE_W_KERNEL);
	assert_int_equal(w3->events, 0x10000019);
	assert_int_equal(w3->flags, IMAGE_W_KERNEL);
	image_free(&img);
}

/* One of each kind, described from the kernel. */
static void test_kinds_described(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int ef = track(eventfd(5, EFD_SEMAPHORE));
	int tf = track(timerfd_create(CLOCK_MONOTONIC, 0));
	struct itimerspec its = { .it_interval = { 3, 0 },
				  .it_value = { 50, 0 } };
	sigset_t mask;
	int p[2], sp[2];
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct image img;

	assert_int_equal(timerfd_settime(tf, 0, &its, NULL), 0);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	int sf = track(signalfd(-1, &mask, SFD_CLOEXEC));
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	track(p[0]);
	track(p[1]);
	assert_int_equal(write(p[1], "xyz", 3), 3);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	track(sp[0]);
	track(sp[1]);
	int ls = track(socket(AF_INET, SOCK_STREAM, 0));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	add(ep, ef, EPOLLIN, 1);
	add(ep, tf, EPOLLIN, 2);
	add(ep, sf, EPOLLIN, 3);
	add(ep, p[0], EPOLLIN, 4);
	add(ep, p[1], EPOLLOUT, 5);
	add(ep, sp[0], EPOLLIN, 6);
	add(ep, ls, EPOLLIN, 7);

	snap(&img, 0, NULL);
	const struct image_target *t;

	t = target_of_watch(&img, watch_by_data(&img, ep, 1));
	assert_int_equal(t->kind, IMAGE_KIND_EVENTFD);
	assert_int_equal(t->u.efd.count, 5);
	assert_int_equal(t->u.efd.semaphore, 1);
	t = target_of_watch(&img, watch_by_data(&img, ep, 2));
	assert_int_equal(t->kind, IMAGE_KIND_TIMERFD);
	assert_int_equal(t->u.tfd.clockid, CLOCK_MONOTONIC);
	assert_int_equal(t->u.tfd.interval_ns, 3000000000ull);
	assert_true(t->u.tfd.value_ns > 40000000000ull);
	t = target_of_watch(&img, watch_by_data(&img, ep, 3));
	assert_int_equal(t->kind, IMAGE_KIND_SIGNALFD);
	assert_true(t->u.sfd.mask == 1ull << (SIGUSR2 - 1));
	const struct image_target *r =
		target_of_watch(&img, watch_by_data(&img, ep, 4));
	const struct image_target *w =
		target_of_watch(&img, watch_by_data(&img, ep, 5));
	assert_int_equal(r->kind, IMAGE_KIND_PIPE);
	assert_int_equal(w->kind, IMAGE_KIND_PIPE);
	assert_int_equal(r->u.pipe.write_end, 0);
	assert_int_equal(w->u.pipe.write_end, 1);
	assert_int_equal(r->u.pipe.pending, 3);
	assert_int_equal(r->u.pipe.peer, w->id);
	assert_int_equal(w->u.pipe.peer, r->id);
	assert_true(r->file_flags & O_NONBLOCK);
	t = target_of_watch(&img, watch_by_data(&img, ep, 6));
	assert_int_equal(t->kind, IMAGE_KIND_SOCKET);
	assert_int_equal(t->u.sock.domain, AF_UNIX);
	assert_int_equal(t->u.sock.flags,
			 IMAGE_SOCK_CONNECTED | IMAGE_SOCK_PAIR);
	/* sp[1] is not watched, but it is the other end of sp[0]. */
	assert_int_equal(target_at(&img, sp[1]), t->u.sock.pair);
	t = target_of_watch(&img, watch_by_data(&img, ep, 7));
	assert_int_equal(t->kind, IMAGE_KIND_SOCKET);
	assert_int_equal(t->u.sock.domain, AF_INET);
	assert_int_equal(t->u.sock.flags,
			 IMAGE_SOCK_LISTENING | IMAGE_SOCK_BOUND);
	assert_memory_equal(t->u.sock.addrp, &a, sizeof(a));
	image_free(&img);
}

/* 250 eventfds all added as fd 999, which is then closed each time. */
static void test_250_under_one_tfd(void **state)
{
	(void)state;
	enum { N = 250, TFD = 999 };
	int ep = track(epoll_create1(0));
	int efd[N];
	struct image img;

	for (int i = 0; i < N; i++)
		efd[i] = track(eventfd((unsigned)i, 0));
	for (int i = 0; i < N; i++) {
		assert_int_equal(dup2(efd[i], TFD), TFD);
		add(ep, TFD, EPOLLIN, (uint64_t)i);
		close(TFD);
	}
	snap(&img, 0, NULL);
	assert_int_equal(img.nwatches, N);
	for (int i = 0; i < N; i++) {
		const struct image_watch *w = watch_by_data(&img, ep,
							    (uint64_t)i);
		assert_int_equal(w->tfd, TFD);
		assert_int_equal(w->target, target_at(&img, efd[i]));
		assert_int_equal(w->open_fd, efd[i]);
		assert_int_equal(w->flags, IMAGE_W_KERNEL | IMAGE_W_STALE);
		assert_int_equal(target_of_watch(&img, w)->u.efd.count, i);
	}
	image_free(&img);
}

/*
 * One stale watch in a large set: its file is found among the files no
 * other watch of the set matched, not by trying every eventfd.
 */
static void test_stale_in_large_set(void **state)
{
	(void)state;
	enum { N = 1000 };
	int ep = track(epoll_create1(0));
	struct kview_stats st;
	struct image img;

	for (int i = 0; i < N; i++)
		add(ep, track(eventfd(0, 0)), EPOLLIN, (uint64_t)i);
	int ef = eventfd(0, 0);
	add(ep, ef, EPOLLIN, N);
	int d = track(dup(ef));
	close(ef);
	snap(&img, 0, NULL);
	kview_last_stats(&st);
	const struct image_watch *w = watch_by_data(&img, ep, N);
	assert_int_equal(w->open_fd, d);
	assert_true(w->flags & IMAGE_W_STALE);
	/* N watches at their tfd, then a few candidates for the stale one. */
	assert_true(st.kcmp_calls <= N + 3);
	image_free(&img);
}

/* Send fds into a socketpair and leave them in flight. */
static void send_fds(int sock, const int *fds, int n)
{
	char data = 'x';
	struct iovec iov = { &data, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	assert_int_equal(sendmsg(sock, &msg, 0), 1);
}

/* Watched files no fd holds, alive in an SCM_RIGHTS message in flight. */
static void test_watched_file_no_fd_holds(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int ep2 = track(epoll_create1(0));
	int ef = eventfd(0, 0);
	int us = socket(AF_INET, SOCK_DGRAM, 0);
	int sp[2], p[2];
	struct stat st, pst;
	struct image img;

	assert_int_equal(pipe(p), 0);
	track(p[1]);
	assert_int_equal(fstat(p[0], &pst), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), 0);
	track(sp[0]);
	track(sp[1]);
	assert_int_equal(fstat(us, &st), 0);
	add(ep, ef, EPOLLIN, 1);
	add(ep, us, EPOLLIN, 2);
	add(ep2, us, EPOLLOUT, 3);
	add(ep2, p[0], EPOLLIN, 4);
	int fds[3] = { ef, us, p[0] };
	send_fds(sp[0], fds, 3);
	close(ef);
	close(us);
	close(p[0]);
	snap(&img, 0, NULL);
	const struct image_watch *w1 = watch_by_data(&img, ep, 1);
	const struct image_watch *w2 = watch_by_data(&img, ep, 2);
	const struct image_watch *w3 = watch_by_data(&img, ep2, 3);
	char path[64];

	assert_int_equal(w1->open_fd, -1);
	assert_int_equal(w1->flags, IMAGE_W_KERNEL | IMAGE_W_STALE);
	assert_int_equal(target_of_watch(&img, w1)->kind, IMAGE_KIND_OTHER);
	assert_string_equal(target_of_watch(&img, w1)->path, "anon_inode:[?]");
	assert_int_equal(w2->open_fd, -1);
	assert_int_equal(target_of_watch(&img, w2)->kind, IMAGE_KIND_SOCKET);
	snprintf(path, sizeof(path), "socket:[%llu]",
		 (unsigned long long)st.st_ino);
	assert_string_equal(target_of_watch(&img, w2)->path, path);
	/* One socket, one target, whichever set watches it. */
	assert_int_equal(w2->target, w3->target);
	const struct image_watch *w4 = watch_by_data(&img, ep2, 4);
	const struct image_target *pt = target_of_watch(&img, w4);

	assert_int_equal(w4->open_fd, -1);
	assert_int_equal(pt->kind, IMAGE_KIND_PIPE);
	assert_int_equal(pt->u.pipe.ino, pst.st_ino);
	snprintf(path, sizeof(path), "pipe:[%llu]",
		 (unsigned long long)pst.st_ino);
	assert_string_equal(pt->path, path);
	image_free(&img);
}

/* Capture what kview_compare writes. */
static int compare_text(const struct image *e, const struct image *a,
			char *out, size_t len)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	int n = kview_compare(e, a, p[1]);
	close(p[1]);
	ssize_t got = read(p[0], out, len - 1);
	close(p[0]);
	out[got > 0 ? got : 0] = '\0';
	return n;
}

static void test_compare(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int e1 = track(eventfd(0, 0)), e2 = track(eventfd(0, 0));
	int ep2 = track(epoll_create1(0));
	struct image before, same, after;
	char text[4096], want[256];

	add(ep, e1, EPOLLIN, 1);
	add(ep, e2, EPOLLIN, 2);
	add(ep2, e1, EPOLLOUT, 3);
	snap(&before, 0, NULL);
	snap(&same, 0, NULL);
	assert_int_equal(compare_text(&before, &same, text, sizeof(text)), 0);
	assert_string_equal(text, "");
	assert_int_equal(kview_compare(&before, &before, -1), 0);

	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 1 };
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_MOD, e1, &ev), 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_DEL, e2, NULL), 0);
	snap(&after, 0, NULL);
	assert_int_equal(compare_text(&before, &after, text, sizeof(text)), 2);
	snprintf(want, sizeof(want),
		 "epfd %d tfd %d: events expected 0x19, actual 0x1c\n", ep, e1);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want),
		 "epfd %d tfd %d: watch missing (expected events 0x19, data 0x2)\n",
		 ep, e2);
	assert_non_null(strstr(text, want));
	/* The other way round: an unexpected watch. */
	assert_int_equal(compare_text(&after, &before, text, sizeof(text)), 2);
	assert_non_null(strstr(text, "unexpected watch"));
	/* A write error is reported. */
	assert_int_equal(kview_compare(&before, &after, 1000), -EBADF);
	image_free(&before);
	image_free(&same);
	image_free(&after);
}

/* Differences of targets and sets. */
static void test_compare_targets(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int ef = track(eventfd(3, 0));
	int ep2 = epoll_create1(0);
	struct image before, after;
	char text[4096];
	uint64_t v;

	add(ep, ef, EPOLLIN, 1);
	add(ep2, ef, EPOLLIN, 2);
	snap(&before, 0, NULL);
	assert_int_equal(read(ef, &v, sizeof(v)), (ssize_t)sizeof(v));
	assert_int_equal(fcntl(ef, F_SETFD, FD_CLOEXEC), 0);
	close(ep2);
	snap(&after, 0, NULL);
	int n = compare_text(&before, &after, text, sizeof(text));
	assert_non_null(strstr(text, "eventfd count 3 vs 0"));
	assert_non_null(strstr(text, "target fds expected"));
	assert_non_null(strstr(text, "cloexec"));
	assert_non_null(strstr(text, "epoll set missing"));
	assert_int_equal(n, 3);
	/* Reversed: the set is unexpected. */
	n = compare_text(&after, &before, text, sizeof(text));
	assert_non_null(strstr(text, "unexpected epoll set"));
	assert_int_equal(n, 3);
	image_free(&before);
	image_free(&after);
}

/* Receive one fd sent by send_fds(). */
static int recv_fd(int sock)
{
	char data;
	struct iovec iov = { &data, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	int fd;

	assert_int_equal(recvmsg(sock, &msg, 0), 1);
	assert_non_null(CMSG_FIRSTHDR(&msg));
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(fd));
	return fd;
}

/*
 * A watched file no fd held when expected was taken, held by one fd at a
 * number expected does not use: what a restore does to keep its watches
 * alive.  A note, not a difference; held at two numbers, a difference.
 */
static void test_compare_kept_open(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	int ef = eventfd(0, 0);
	int sp[2];
	struct image before, kept, twice;
	char text[4096], want[256];

	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), 0);
	track(sp[0]);
	track(sp[1]);
	add(ep, ef, EPOLLIN, 1);
	send_fds(sp[0], &ef, 1);
	close(ef);
	snap(&before, 0, NULL);
	assert_int_equal(watch_by_data(&before, ep, 1)->open_fd, -1);
	/* Back, at another number than its tfd (which stays stale). */
	int hold = track(open("/dev/null", O_RDONLY));
	int back = track(recv_fd(sp[1]));
	assert_int_equal(hold, ef);
	snap(&kept, 0, NULL);
	assert_int_equal(watch_by_data(&kept, ep, 1)->open_fd, back);
	assert_int_equal(compare_text(&before, &kept, text, sizeof(text)), 0);
	snprintf(want, sizeof(want),
		 "note: epfd %d tfd %d: no fd held this eventfd in the image; fd %d holds it now",
		 ep, ef, back);
	assert_non_null(strstr(text, want));
	assert_null(strstr(text, "expected"));
	/* At two numbers it is no longer the restore's one kept fd. */
	int again = track(dup(back));
	snap(&twice, 0, NULL);
	assert_true(compare_text(&before, &twice, text, sizeof(text)) >= 1);
	snprintf(want, sizeof(want),
		 "epfd %d tfd %d: target fds expected none, actual %d,%d", ep,
		 ef, back, again);
	assert_non_null(strstr(text, want));
	image_free(&before);
	image_free(&kept);
	image_free(&twice);
}

struct hint_ctx {
	int calls;
	bool lie;
};

/* Confirms every watch at its tfd; with lie, names stdin instead. */
static bool confirm_at_tfd(void *ctx, int epfd, int tfd, uint32_t events,
			   uint64_t data, int *open_fd)
{
	struct hint_ctx *h = ctx;

	(void)epfd;
	(void)events;
	(void)data;
	h->calls++;
	*open_fd = h->lie ? 0 : tfd;
	return true;
}

static void test_hints(void **state)
{
	(void)state;
	enum { N = 40 };
	int ep = track(epoll_create1(0));
	struct kview_stats st;
	struct hint_ctx h = { 0 };
	struct kview_hints hints = { .ctx = &h,
				     .confirm_watch = confirm_at_tfd };
	struct image full, hinted, lied;

	for (int i = 0; i < N; i++)
		add(ep, track(eventfd(0, 0)), EPOLLIN, (uint64_t)i);
	snap(&full, 0, NULL);
	kview_last_stats(&st);
	assert_int_equal(st.kcmp_calls, N);
	assert_int_equal(st.hinted, 0);

	snap(&hinted, 0, &hints);
	kview_last_stats(&st);
	assert_int_equal(h.calls, N);
	assert_int_equal(st.kcmp_calls, 0);
	assert_int_equal(st.hinted, N);
	assert_int_equal(kview_compare(&full, &hinted, 2), 0);

	/* A hint naming a fd of another inode is not trusted. */
	h.lie = true;
	snap(&lied, 0, &hints);
	kview_last_stats(&st);
	assert_int_equal(st.hinted, 0);
	assert_int_equal(kview_compare(&full, &lied, 2), 0);
	image_free(&lied);

	/* KVIEW_F_FULL_KCMP does not ask. */
	h.calls = 0;
	h.lie = false;
	snap(&lied, KVIEW_F_FULL_KCMP, &hints);
	assert_int_equal(h.calls, 0);
	kview_last_stats(&st);
	assert_int_equal(st.kcmp_calls, N);
	image_free(&full);
	image_free(&hinted);
	image_free(&lied);
}

/* Sockets are resolved by inode at their tfd, without kcmp. */
static void test_sockets_need_no_kcmp(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0));
	struct kview_stats st;
	struct image img;

	for (int i = 0; i < 20; i++)
		add(ep, track(socket(AF_UNIX, SOCK_DGRAM, 0)), EPOLLIN,
		    (uint64_t)i);
	snap(&img, 0, NULL);
	kview_last_stats(&st);
	assert_int_equal(st.kcmp_calls, 0);
	image_free(&img);
}

/* ---- sockets from the bulk sock_diag dumps ------------------------------ */

/* A TCP listener on loopback (IPv4 or IPv6), port chosen by the kernel. */
static int tcp_listener(int family, bool reuse, bool v6only)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_storage ss;
	socklen_t len;

	if (fd < 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
		if (v6only)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
	}
	if (reuse)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return track(fd);
}

/* Connect a client to listener ls; *accepted gets the server's end. */
static int tcp_connect(int ls, int *accepted)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(ls, (struct sockaddr *)&ss, &len), 0);
	int c = track(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));

	assert_int_equal(connect(c, (struct sockaddr *)&ss, len), 0);
	*accepted = track(accept4(ls, NULL, NULL, SOCK_NONBLOCK));
	return c;
}

/* Every field of two socket descriptions, addresses byte by byte. */
static void assert_same_socket(const struct image_socket *a,
			       const struct image_socket *b)
{
	assert_int_equal(a->domain, b->domain);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->protocol, b->protocol);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->backlog, b->backlog);
	assert_int_equal(a->addr_len, b->addr_len);
	if (a->addr_len)
		assert_memory_equal(a->addrp, b->addrp, a->addr_len);
	assert_int_equal(a->peer_len, b->peer_len);
	if (a->peer_len)
		assert_memory_equal(a->peerp, b->peerp, a->peer_len);
	assert_int_equal(a->pair, b->pair);
	assert_int_equal(a->pending, b->pending);
}

/*
 * Issue 14 item 1: a server's sockets (IPv4 and IPv6 listeners, accepted
 * and connecting ends, UDP bound and connected, a socket never bound, a
 * socketpair) with an eventfd, a timerfd and a pipe, all watched.  The
 * view taken from the bulk sock_diag dumps (KVIEW_F_BULK) and the one
 * taken socket by socket (KVIEW_F_PER_TARGET) are the same image, target by target and
 * field by field, and both match the kernel (snap()).
 */
/*
 * The server-shaped fds of test_bulk_equals_per_target and
 * test_shadow_facts_equal_fdinfo, each watched in ep: IPv4 and IPv6
 * listeners, accepted and connecting ends, UDP bound and connected, a
 * socket never bound, a socketpair, an eventfd, a timerfd, a pipe.
 */
static void server_fds(int ep)
{
	int fds[64], n = 0, acc;
	int l4 = tcp_listener(AF_INET, true, false);
	int l6 = tcp_listener(AF_INET6, false, true);
	int l6d = tcp_listener(AF_INET6, true, false);
	struct sockaddr_in ua = { .sin_family = AF_INET };
	socklen_t ualen = sizeof(ua);
	int sp[2], p[2];

	assert_true(l4 >= 0);
	fds[n++] = l4;
	for (int i = 0; i < 3; i++) {
		fds[n++] = tcp_connect(l4, &acc);
		fds[n++] = acc;
	}
	if (l6 >= 0) { /* IPv6 may be off in this namespace */
		fds[n++] = l6;
		fds[n++] = tcp_connect(l6, &acc);
		fds[n++] = acc;
	}
	if (l6d >= 0)
		fds[n++] = l6d;
	int ub = track(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));

	ua.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ub, (struct sockaddr *)&ua, sizeof(ua)), 0);
	assert_int_equal(getsockname(ub, (struct sockaddr *)&ua, &ualen), 0);
	fds[n++] = ub;
	int uc = track(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));

	assert_int_equal(connect(uc, (struct sockaddr *)&ua, sizeof(ua)), 0);
	fds[n++] = uc;
	fds[n++] = track(socket(AF_INET, SOCK_STREAM, 0)); /* never bound */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	fds[n++] = track(sp[0]);
	fds[n++] = track(sp[1]);
	fds[n++] = track(eventfd(5, EFD_NONBLOCK));
	fds[n++] = track(timerfd_create(CLOCK_MONOTONIC, 0));
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	fds[n++] = track(p[0]);
	fds[n++] = track(p[1]);
	for (int i = 0; i < n; i++)
		add(ep, fds[i], EPOLLIN, (uint64_t)i + 1);
}

/* The same image, target by target and field by field. */
static void assert_same_image(const struct image *a, const struct image *b)
{
	assert_int_equal(a->ntargets, b->ntargets);
	assert_int_equal(a->nfds, b->nfds);
	assert_int_equal(a->nwatches, b->nwatches);
	for (uint32_t i = 0; i < a->ntargets; i++) {
		const struct image_target *x = &a->targets[i];
		const struct image_target *y = &b->targets[i];

		assert_int_equal(x->kind, y->kind);
		assert_int_equal(x->file_flags, y->file_flags);
		assert_string_equal(x->path ? x->path : "", y->path ? y->path : "");
		if (x->kind == IMAGE_KIND_SOCKET)
			assert_same_socket(&x->u.sock, &y->u.sock);
		if (x->kind == IMAGE_KIND_PIPE) {
			assert_int_equal(x->u.pipe.write_end, y->u.pipe.write_end);
			assert_int_equal(x->u.pipe.peer, y->u.pipe.peer);
		}
	}
	for (uint32_t i = 0; i < a->nfds; i++) {
		assert_int_equal(a->fds[i].fd, b->fds[i].fd);
		assert_int_equal(a->fds[i].target, b->fds[i].target);
		assert_int_equal(a->fds[i].fd_flags, b->fds[i].fd_flags);
	}
	for (uint32_t i = 0; i < a->nwatches; i++) {
		assert_int_equal(a->watches[i].tfd, b->watches[i].tfd);
		assert_int_equal(a->watches[i].target, b->watches[i].target);
		assert_int_equal(a->watches[i].open_fd, b->watches[i].open_fd);
	}
	assert_int_equal(kview_compare(a, b, -1), 0);
}

static void test_bulk_equals_per_target(void **state)
{
	(void)state;
	int ep = track(epoll_create1(EPOLL_CLOEXEC));
	struct kview_stats st;
	struct image bulk, per;

	server_fds(ep);
	snap(&bulk, KVIEW_F_BULK, NULL);
	kview_last_stats(&st);
	assert_true(st.diag_dumps > 0);
	/* Every inet socket but the one never bound (no dump lists it). */
	assert_true(st.bulk_sockets >= 10);
	snap(&per, KVIEW_F_PER_TARGET, NULL);
	kview_last_stats(&st);
	assert_int_equal(st.diag_dumps, 0);
	assert_int_equal(st.bulk_sockets, 0);

	assert_same_image(&bulk, &per);
	image_free(&bulk);
	image_free(&per);
}

/*
 * A stand-in for the shadow (kview_hints.fd_facts) that asks the kernel:
 * what a right shadow says of each socket and pipe.  wrong_fd's
 * O_NONBLOCK is turned round, to show the test can tell.
 */
static int wrong_fd = -1;

static bool kernel_facts(void *ctx, int fd, struct kview_fd_facts *f)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD), v;
	socklen_t len = sizeof(v);

	(void)ctx;
	if (fstat(fd, &st) < 0 || fl < 0 || fdfl < 0)
		return false;
	if (!S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode))
		return false;
	f->kind = S_ISSOCK(st.st_mode) ? IMAGE_KIND_SOCKET : IMAGE_KIND_PIPE;
	f->flags = (uint32_t)fl | ((fdfl & FD_CLOEXEC) ? (uint32_t)O_CLOEXEC : 0);
	if (fd == wrong_fd)
		f->flags ^= O_NONBLOCK;
	f->domain = f->type = f->protocol = f->listening = -1;
	if (f->kind != IMAGE_KIND_SOCKET)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == 0)
		f->domain = v;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0)
		f->type = v;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) == 0)
		f->protocol = v;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && !v)
		f->listening = 0;
	return true;
}

/*
 * Issue 14 item 1: the view that takes each socket's and pipe's flags,
 * FD_CLOEXEC, type, protocol and "not listening" from the hints (and its
 * inode from fstat) instead of its fdinfo and getsockopt is the same
 * image, field by field, as the one that reads every fd's fdinfo
 * (KVIEW_F_PER_FD), after fcntl and ioctl changes; a hint that lies about
 * one fd's flags shows in the image.
 */
static void test_shadow_facts_equal_fdinfo(void **state)
{
	(void)state;
	int ep = track(epoll_create1(EPOLL_CLOEXEC)), one = 1;
	struct kview_hints hints = { .fd_facts = kernel_facts };
	struct kview_stats st;
	struct image sh, per;
	int sp[2];

	server_fds(ep);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), 0);
	track(sp[0]);
	track(sp[1]);
	assert_int_equal(fcntl(sp[0], F_SETFL, O_NONBLOCK | O_APPEND), 0);
	assert_int_equal(fcntl(sp[0], F_SETFD, FD_CLOEXEC), 0);
	assert_int_equal(ioctl(sp[1], FIONBIO, &one), 0);
	track(dup3(sp[1], 200, O_CLOEXEC));
	add(ep, sp[0], EPOLLIN, 100);
	add(ep, sp[1], EPOLLIN, 101);

	snap(&sh, 0, &hints);
	kview_last_stats(&st);
	assert_true(st.shadow_fds >= 20);
	snap(&per, KVIEW_F_PER_FD, &hints);
	kview_last_stats(&st);
	assert_int_equal(st.shadow_fds, 0);
	assert_same_image(&sh, &per);
	image_free(&sh);

	wrong_fd = sp[1];
	snap(&sh, 0, &hints);
	wrong_fd = -1;
	assert_true(kview_compare(&per, &sh, -1) > 0);
	image_free(&sh);
	image_free(&per);
}

static void test_all_fds(void **state)
{
	(void)state;
	int fds[1024], n;
	struct image img;

	track(open("/dev/null", O_RDONLY));
	snap(&img, KVIEW_F_ALL_FDS, NULL);
	n = open_fds(getpid(), fds, 1024);
	/* Every fd but the one opendir used to list them. */
	assert_true(img.nfds + 1 >= (uint32_t)n);
	for (int i = 0; i < n; i++) {
		char link[256];

		if (!try_link_of(getpid(), fds[i], link, sizeof(link)))
			continue; /* the listing's own */
		assert_true(target_at(&img, fds[i]) != IMAGE_NONE);
	}
	image_free(&img);
}

/* A child process builds the state; the parent snapshots its pid. */
static void test_other_pid(void **state)
{
	(void)state;
	int ready[2], hold[2];
	struct image img;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(ready[0]);
		close(hold[1]);
		int ep = epoll_create1(0), ep2 = epoll_create1(0);
		int ef = eventfd(3, 0), p[2];
		int ls = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET };
		struct epoll_event ev = { .events = EPOLLIN };

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (pipe(p) || bind(ls, (struct sockaddr *)&a, sizeof(a)) ||
		    listen(ls, 1))
			_exit(1);
		ev.data.u64 = 1;
		epoll_ctl(ep, EPOLL_CTL_ADD, ef, &ev);
		ev.data.u64 = 2;
		epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
		ev.data.u64 = 3;
		epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
		ev.data.u64 = 4;
		epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &ev);
		ev.data.u64 = 5;
		epoll_ctl(ep2, EPOLL_CTL_ADD, ef, &ev);
		int d = dup(p[0]); /* stale: p[0] closed, d holds it */
		close(p[0]);
		(void)d;
		if (write(ready[1], &ep, sizeof(ep)) != sizeof(ep))
			_exit(1);
		char c;
		if (read(hold[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	int ep;
	assert_int_equal(read(ready[0], &ep, sizeof(ep)), sizeof(ep));
	image_init(&img);
	assert_int_equal(kview_snapshot(child, &img, 0, NULL), 0);
	check_kernel(child, &img);
	assert_int_equal(img.nwatches, 5);
	const struct image_target *t;

	t = target_of_watch(&img, watch_by_data(&img, ep, 1));
	assert_int_equal(t->kind, IMAGE_KIND_EVENTFD);
	assert_int_equal(t->u.efd.count, 3);
	const struct image_watch *w = watch_by_data(&img, ep, 2);
	assert_true(w->flags & IMAGE_W_STALE);
	assert_true(w->open_fd >= 0);
	assert_int_equal(target_of_watch(&img, w)->kind, IMAGE_KIND_PIPE);
	t = target_of_watch(&img, watch_by_data(&img, ep, 3));
	assert_int_equal(t->kind, IMAGE_KIND_SOCKET);
	/* Described through a copy of the fd (pidfd_getfd) where allowed. */
	if (t->u.sock.domain || geteuid() == 0) {
		assert_int_equal(t->u.sock.domain, AF_INET);
		assert_true(t->u.sock.flags & IMAGE_SOCK_LISTENING);
	}
	t = target_of_watch(&img, watch_by_data(&img, ep, 4));
	assert_int_equal(t->kind, IMAGE_KIND_EPOLL);
	assert_int_equal(t->u.ep.nwatches, 1);
	image_free(&img);
	close(hold[1]);
	close(ready[0]);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_bad_pid(void **state)
{
	(void)state;
	struct image img;
	pid_t child = fork();

	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	image_init(&img);
	assert_int_equal(kview_snapshot(-1, &img, 0, NULL), -EINVAL);
	int ret = kview_snapshot(child, &img, 0, NULL);
	assert_true(ret == -ENOENT || ret == -ESRCH);
	assert_int_equal(img.nwatches, 0);
	image_free(&img);
}

/*
 * In a child: make kcmp fail with EPERM (seccomp) and check the view
 * still comes, guessed from tfd and inode, with a diagnostic.
 */
static int kcmp_refused_child(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_kcmp, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	struct image img;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 10;
	int ep = epoll_create1(0), ep2 = epoll_create1(0), ef = eventfd(0, 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };

	epoll_ctl(ep, EPOLL_CTL_ADD, ef, &ev);
	image_init(&img);
	if (kview_snapshot(0, &img, 0, NULL) != 0)
		return 11;
	if (img.nwatches != 1 || img.watches[0].open_fd != ef ||
	    img.watches[0].target != target_at(&img, ef))
		return 12;
	if (img.ndiags < 2) /* KCMP_FILE (two sets) and KCMP_EPOLL_TFD */
		return 13;
	if (!strstr(img.diags[img.ndiags - 1].message, "kcmp"))
		return 14;
	if (target_at(&img, ep) == target_at(&img, ep2))
		return 15;
	image_free(&img);
	return 0;
}

static void test_kcmp_refused(void **state)
{
	(void)state;
	pid_t child = fork();
	int status;

	assert_true(child >= 0);
	if (child == 0)
		_exit(kcmp_refused_child());
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * Memory running out (RLIMIT_AS in a child, around the size the snapshot
 * needs): -ENOMEM or success, never a crash.
 */
static void test_out_of_memory(void **state)
{
	(void)state;
#ifdef UNDER_SANITIZER
	skip();
#else
	int enomem = 0, ok = 0;

	for (long extra = 0; extra <= 64 && !ok; extra++) {
		pid_t child = fork();
		int status;

		assert_true(child >= 0);
		if (child == 0) {
			int ep = epoll_create1(0);
			struct image img;
			struct rlimit rl;

			for (int i = 0; i < 3000; i++) {
				struct epoll_event ev = { .events = EPOLLIN };
				int e = eventfd(0, 0);

				if (e < 0 ||
				    epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev))
					_exit(20);
			}
			image_init(&img);
			long vm = 0;
			FILE *f = fopen("/proc/self/statm", "r");

			if (!f || fscanf(f, "%ld", &vm) != 1)
				_exit(21);
			fclose(f);
			rl.rlim_cur = rl.rlim_max =
				(rlim_t)vm * 4096 + (rlim_t)extra * 512 * 1024;
			if (setrlimit(RLIMIT_AS, &rl))
				_exit(22);
			int ret = kview_snapshot(0, &img, 0, NULL);

			image_free(&img);
			_exit(ret == 0 ? 0 : ret == -ENOMEM ? 1 : 23);
		}
		assert_int_equal(waitpid(child, &status, 0), child);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) <= 1);
		enomem += WEXITSTATUS(status) == 1;
		ok += WEXITSTATUS(status) == 0;
	}
	assert_true(enomem > 0);
	assert_true(ok > 0);
#endif
}

/* Threads churning epoll_ctl, dup, close; the snapshot under a lock. */
struct churner {
	int ep;
	unsigned seed;
	int fds[16];
};

static pthread_rwlock_t churn_lock;
static int churn_stop; /* accessed with __atomic builtins */

static void *churn(void *arg)
{
	struct churner *c = arg;

	while (!__atomic_load_n(&churn_stop, __ATOMIC_RELAXED)) {
		int i = (int)(rand_r(&c->seed) % 16);
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = (uint64_t)i };
		int op = (int)(rand_r(&c->seed) % 6), d;

		pthread_rwlock_rdlock(&churn_lock);
		switch (op) {
		case 0:
			epoll_ctl(c->ep, EPOLL_CTL_ADD, c->fds[i], &ev);
			break;
		case 1:
			ev.events = EPOLLOUT | EPOLLONESHOT;
			epoll_ctl(c->ep, EPOLL_CTL_MOD, c->fds[i], &ev);
			break;
		case 2:
			epoll_ctl(c->ep, EPOLL_CTL_DEL, c->fds[i], NULL);
			break;
		case 3:
			d = dup(c->fds[i]);
			if (d >= 0) {
				close(c->fds[i]);
				c->fds[i] = d;
			}
			break;
		case 4:
			close(c->fds[i]);
			c->fds[i] = eventfd(0, 0);
			break;
		default:
			d = dup(c->fds[i]);
			if (d >= 0)
				close(d);
		}
		pthread_rwlock_unlock(&churn_lock);
	}
	return NULL;
}

/*
 * Snapshots taken while threads churn: with every change held off (a
 * consistent cut), each view is exact; while they run free, the snapshot
 * still returns (0) without crashing, whatever it catches mid-change.
 */
static void test_concurrent_churn(void **state)
{
	(void)state;
	enum { T = 3 };
	static struct churner c[T];
	pthread_t tid[T];
	struct image img;

	pthread_rwlockattr_t attr;

	/* Writer first, or the churners starve the snapshot. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	assert_int_equal(pthread_rwlock_init(&churn_lock, &attr), 0);
	pthread_rwlockattr_destroy(&attr);
	__atomic_store_n(&churn_stop, 0, __ATOMIC_RELAXED);
	for (int t = 0; t < T; t++) {
		c[t].ep = track(epoll_create1(0));
		c[t].seed = (unsigned)t * 7919u + 1;
		for (int i = 0; i < 16; i++)
			c[t].fds[i] = eventfd(0, 0);
		assert_int_equal(pthread_create(&tid[t], NULL, churn, &c[t]),
				 0);
	}
	for (int round = 0; round < 60; round++) {
		bool cut = round % 2 == 0;

		if (cut)
			pthread_rwlock_wrlock(&churn_lock);
		image_init(&img);
		int ret = kview_snapshot(0, &img, 0, NULL);

		if (cut) {
			assert_int_equal(ret, 0);
			check_kernel(getpid(), &img);
			pthread_rwlock_unlock(&churn_lock);
		} else {
			assert_true(ret == 0);
		}
		image_free(&img);
	}
	__atomic_store_n(&churn_stop, 1, __ATOMIC_RELAXED);
	for (int t = 0; t < T; t++) {
		assert_int_equal(pthread_join(tid[t], NULL), 0);
		for (int i = 0; i < 16; i++)
			close(c[t].fds[i]);
	}
	pthread_rwlock_destroy(&churn_lock);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Time to read the fdinfo of each fd of the process once, for reference. */
static double fdinfo_baseline_ms(void)
{
	static int fds[MAX_TRACKED];
	int n = open_fds(getpid(), fds, MAX_TRACKED);
	int dir = open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY);
	static char buf[4 << 20];
	double t0 = now_ms();

	for (int i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "%d", fds[i]);
		int f = openat(dir, name, O_RDONLY);
		if (f < 0)
			continue;
		while (read(f, buf, sizeof(buf)) > 0)
			;
		close(f);
	}
	double t = now_ms() - t0;
	close(dir);
	return t;
}

/*
 * The cost with many watches: eventfds confirmed by hints, sockets without
 * hints, eventfds through kcmp alone (EPOLLCR_KVIEW_N sets the count).
 */
static void test_many_watches(void **state)
{
	(void)state;
	struct rlimit rl;
	const char *env = getenv("EPOLLCR_KVIEW_N");
	int n = env ? atoi(env) : 15000;
	struct hint_ctx h = { 0 };
	struct kview_hints hints = { .ctx = &h,
				     .confirm_watch = confirm_at_tfd };
	struct kview_stats st;
	struct image img;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < (rlim_t)n + 200) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 200 ? rl.rlim_max
							     : (rlim_t)n + 200;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	if ((rlim_t)n + 100 > rl.rlim_cur)
		n = (int)rl.rlim_cur - 100;
	if (n > MAX_TRACKED - 100)
		n = MAX_TRACKED - 100;

	for (int kind = 0; kind < 2; kind++) {
		int ep = track(epoll_create1(0));

		for (int i = 0; i < n; i++)
			add(ep, track(kind ? socket(AF_UNIX, SOCK_DGRAM, 0)
					   : eventfd(0, 0)),
			    EPOLLIN, (uint64_t)i);
		double base = fdinfo_baseline_ms();

		image_init(&img);
		double t0 = now_ms();
		assert_int_equal(kview_snapshot(0, &img, 0, &hints), 0);
		double t = now_ms() - t0;
		kview_last_stats(&st);
		print_message("%d %s watches, hinted: %.1f ms (fdinfo of every fd read once: %.1f ms); fdinfo reads %u, readlinks %u, stats %u, kcmp %u\n",
			      n, kind ? "socket" : "eventfd", t, base,
			      st.fdinfo_reads, st.readlinks, st.stats,
			      st.kcmp_calls);
		assert_int_equal(img.nwatches, n);
		assert_int_equal(st.kcmp_calls, 0);
		assert_int_equal(st.fdinfo_reads, st.fds);
		assert_true(st.readlinks < 16 && st.stats < 16);
		check_kernel_sampled(getpid(), &img, 97);
		image_free(&img);

		image_init(&img);
		t0 = now_ms();
		assert_int_equal(kview_snapshot(0, &img, KVIEW_F_FULL_KCMP,
						&hints), 0);
		t = now_ms() - t0;
		kview_last_stats(&st);
		print_message("%d %s watches, KVIEW_F_FULL_KCMP: %.1f ms, kcmp %u\n",
			      n, kind ? "socket" : "eventfd", t,
			      st.kcmp_calls);
		assert_int_equal(st.kcmp_calls, kind ? 0 : (uint32_t)n);
		image_free(&img);
		teardown(NULL);
	}
}

/* ---- socketpairs --------------------------------------------------------- */

/* Bytes queued for reading at fd, as the kernel says (SIOCINQ). */
static int inq(int fd)
{
	int n = -1;

	assert_int_equal(ioctl(fd, SIOCINQ, &n), 0);
	return n;
}

/* The inode in a "socket:[INO]" path. */
static unsigned long long path_ino(const char *path)
{
	unsigned long long ino = 0;

	assert_non_null(path);
	assert_int_equal(sscanf(path, "socket:[%llu]", &ino), 1);
	return ino;
}

static unsigned long long fd_ino(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (unsigned long long)st.st_ino;
}

/* The image fd entry of number fd. */
static const struct image_fd *fd_entry(const struct image *img, int fd)
{
	for (uint32_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd == fd)
			return &img->fds[i];
	fail_msg("fd %d is not in the image", fd);
	return NULL;
}

/*
 * By the kernel alone: a byte written at fd `from` arrives at fd `to`
 * (both queues empty before; nothing left after).
 */
static void assert_linked(int from, int to)
{
	char c = 0;

	assert_int_equal(send(from, "z", 1, MSG_DONTWAIT), 1);
	assert_int_equal(recv(to, &c, 1, MSG_DONTWAIT), 1);
	assert_int_equal(c, 'z');
}

/* Read and drop what is queued at fd (nonblocking). */
static void drain(int fd)
{
	char buf[256];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static uint32_t count_diags(const struct image *img, uint32_t code)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < img->ndiags; i++)
		n += img->diags[i].code == code;
	return n;
}

/*
 * asyncio's self-pipe: a stream socketpair, one end watched, the other at
 * two fds (one close-on-exec), bytes queued both ways.  Both ends are in
 * the image, each naming the other, with the kernel's queue lengths, and
 * the recorder gives no "connected socket" diagnostic.
 */
static void test_socketpair_one_watched(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0)), sp[2];
	struct image img;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    sp),
			 0);
	track(sp[0]);
	track(sp[1]);
	int d = track(fcntl(sp[1], F_DUPFD_CLOEXEC, 40));
	assert_int_equal(write(sp[1], "abc", 3), 3);
	assert_int_equal(write(sp[0], "defghij", 7), 7);
	add(ep, sp[0], EPOLLIN, 1);

	snap(&img, 0, NULL);
	const struct image_target *t =
		target_of_watch(&img, watch_by_data(&img, ep, 1));
	const struct image_target *p = image_target_by_id(&img,
							  t->u.sock.pair);

	assert_int_equal(t->kind, IMAGE_KIND_SOCKET);
	assert_int_equal(t->u.sock.domain, AF_UNIX);
	assert_int_equal(t->u.sock.type, SOCK_STREAM);
	assert_int_equal(t->u.sock.flags,
			 IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED);
	assert_non_null(p);
	assert_int_equal(p->kind, IMAGE_KIND_SOCKET);
	assert_int_equal(p->u.sock.pair, t->id);
	assert_int_equal(p->u.sock.flags,
			 IMAGE_SOCK_PAIR | IMAGE_SOCK_CONNECTED);
	assert_int_equal(p->u.sock.type, SOCK_STREAM);
	/* The other end is where the kernel has it, with its fd flags. */
	assert_int_equal(target_at(&img, sp[1]), p->id);
	assert_int_equal(target_at(&img, d), p->id);
	assert_true(path_ino(p->path) == fd_ino(sp[1]));
	assert_true(path_ino(t->path) == fd_ino(sp[0]));
	assert_int_equal(fd_entry(&img, d)->fd_flags,
			 fcntl(d, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fd_entry(&img, sp[1])->fd_flags,
			 fcntl(sp[1], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(p->file_flags & O_NONBLOCK,
			 fcntl(sp[1], F_GETFL) & O_NONBLOCK);
	/* Queues as SIOCINQ shows them. */
	assert_int_equal(t->u.sock.pending, inq(sp[0]));
	assert_int_equal(p->u.sock.pending, inq(sp[1]));
	assert_int_equal(t->u.sock.pending, 3);
	assert_int_equal(p->u.sock.pending, 7);
	assert_int_equal(img.ntargets, 3);
	assert_int_equal(img.ndiags, 0);
	/* By the kernel: the fd the image names is the other end. */
	drain(sp[0]);
	drain(sp[1]);
	assert_linked(lowest_fd_of(&img, p->id), sp[0]);
	assert_linked(sp[0], lowest_fd_of(&img, p->id));

	/* compare: the other end must be the other end, at its numbers */
	struct image now;
	char out[2048];
	uint32_t tid = t->id, pid = p->id;

	snap(&now, 0, NULL);
	assert_int_equal(compare_text(&img, &now, out, sizeof(out)), 0);
	image_target_by_id(&now, tid)->u.sock.pair = IMAGE_NONE;
	assert_int_equal(compare_text(&img, &now, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "socketpair other end expected at fds"));
	image_target_by_id(&now, tid)->u.sock.pair = pid;
	for (uint32_t i = 0; i < now.nfds; i++)
		if (now.fds[i].fd == d)
			now.fds[i].fd_flags = 0;
	image_target_by_id(&now, pid)->file_flags &= ~(uint32_t)O_NONBLOCK;
	image_target_by_id(&now, pid)->file_flags |= O_APPEND;
	assert_int_equal(compare_text(&img, &now, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "socketpair other end's fds expected"));
	assert_non_null(strstr(out, "socketpair other end's file flags expected 04002 (O_RDWR|O_NONBLOCK), actual 02002 (O_RDWR|O_APPEND)"));
	image_free(&now);
	image_free(&img);

	/* The recorder: no diagnostic saying the socket cannot come back. */
	assert_int_equal(recorder_build_image(&img, 0), 0);
	assert_int_equal(count_diags(&img, IMAGE_DIAG_UNRESTORABLE), 0);
	assert_non_null(image_target_by_id(
		&img, image_target_by_id(&img, target_at(&img, sp[0]))
			      ->u.sock.pair));
	image_free(&img);
}

/* Both ends watched, datagrams: the queue is the first datagram's size. */
static void test_socketpair_both_watched(void **state)
{
	(void)state;
	int ep = track(epoll_create1(EPOLL_CLOEXEC)), sp[2];
	struct image img;

	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), 0);
	track(sp[0]);
	track(sp[1]);
	assert_int_equal(send(sp[1], "12345", 5, 0), 5);
	assert_int_equal(send(sp[1], "xy", 2, 0), 2);
	add(ep, sp[0], EPOLLIN, 1);
	add(ep, sp[1], EPOLLOUT, 2);

	snap(&img, 0, NULL);
	const struct image_target *a =
		target_of_watch(&img, watch_by_data(&img, ep, 1));
	const struct image_target *b =
		target_of_watch(&img, watch_by_data(&img, ep, 2));

	assert_int_equal(a->u.sock.pair, b->id);
	assert_int_equal(b->u.sock.pair, a->id);
	assert_int_equal(a->u.sock.type, SOCK_DGRAM);
	assert_true(a->u.sock.flags & b->u.sock.flags & IMAGE_SOCK_PAIR);
	assert_int_equal(a->u.sock.pending, inq(sp[0]));
	assert_int_equal(a->u.sock.pending, 5);
	assert_int_equal(b->u.sock.pending, 0);
	assert_int_equal(img.ntargets, 3);
	image_free(&img);
}

/* The other end closed: a lone connected end, no pair, no extra target. */
static void test_socketpair_lone_end(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0)), sp[2];
	struct image img;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	track(sp[0]);
	close(sp[1]);
	add(ep, sp[0], EPOLLIN, 1);
	snap(&img, 0, NULL);
	const struct image_target *t =
		target_of_watch(&img, watch_by_data(&img, ep, 1));

	assert_int_equal(t->u.sock.pair, IMAGE_NONE);
	assert_false(t->u.sock.flags & IMAGE_SOCK_PAIR);
	assert_int_equal(img.ntargets, 2);
	image_free(&img);
}

/*
 * Connected unix sockets that are not a socketpair held here: one end of a
 * pair whose other end only a child holds, a connection to a child's
 * listener, and a connection to our own listener (the accepted end has
 * the listener's name: socketpair() cannot make that).  None is paired,
 * and the recorder says the first two cannot be restored.
 */
static void test_unix_not_pairs(void **state)
{
	(void)state;
	int ep = track(epoll_create1(0)), sp[2], ready[2], hold[2];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 1 +
			 (socklen_t)snprintf(a.sun_path + 1,
					     sizeof(a.sun_path) - 1,
					     "epollcr-test-%d", (int)getpid());
	struct sockaddr_un b = a;
	struct image img;
	char c;

	b.sun_path[1] = 'X'; /* the child's listener */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	int ls = track(socket(AF_UNIX, SOCK_STREAM, 0));
	assert_int_equal(bind(ls, (struct sockaddr *)&a, alen), 0);
	assert_int_equal(listen(ls, 4), 0);
	pid_t child = fork();

	assert_true(child >= 0);
	if (child == 0) {
		/* Holds sp[1] and a listener of its own until told. */
		int l = socket(AF_UNIX, SOCK_STREAM, 0);

		close(ready[0]);
		close(hold[1]);
		if (l < 0 || bind(l, (struct sockaddr *)&b, alen) ||
		    listen(l, 4) || write(ready[1], "r", 1) != 1)
			_exit(1);
		_exit(read(hold[0], &c, 1) == 0 ? 0 : 2);
	}
	track(sp[0]);
	close(sp[1]);
	close(ready[1]);
	close(hold[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	int to_child = track(socket(AF_UNIX, SOCK_STREAM, 0));
	int to_self = track(socket(AF_UNIX, SOCK_STREAM, 0));
	assert_int_equal(connect(to_child, (struct sockaddr *)&b, alen), 0);
	assert_int_equal(connect(to_self, (struct sockaddr *)&a, alen), 0);
	int acc = track(accept4(ls, NULL, NULL, SOCK_CLOEXEC));
	add(ep, sp[0], EPOLLIN, 1);
	add(ep, to_child, EPOLLIN, 2);
	add(ep, to_self, EPOLLIN, 3);
	add(ep, acc, EPOLLIN, 4);

	snap(&img, 0, NULL);
	for (uint64_t data = 1; data <= 4; data++) {
		const struct image_target *t =
			target_of_watch(&img, watch_by_data(&img, ep, data));

		assert_int_equal(t->u.sock.pair, IMAGE_NONE);
		assert_false(t->u.sock.flags & IMAGE_SOCK_PAIR);
		assert_true(t->u.sock.flags & IMAGE_SOCK_CONNECTED);
	}
	assert_int_equal(img.ntargets, 5);
	image_free(&img);
	assert_int_equal(recorder_build_image(&img, 0), 0);
	assert_int_equal(count_diags(&img, IMAGE_DIAG_UNRESTORABLE), 4);
	image_free(&img);
	close(hold[1]); /* the child exits */
	int status;

	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Another process's socketpair, seen from here (same network namespace). */
static void test_socketpair_other_pid(void **state)
{
	(void)state;
	int ready[2], hold[2];
	struct image img;
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int ep = epoll_create1(0), sp[2];
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };

		close(ready[0]);
		close(hold[1]);
		if (ep < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, sp[0], &ev) ||
		    send(sp[1], "four", 4, 0) != 4 ||
		    send(sp[1], "xy", 2, 0) != 2 ||
		    write(ready[1], &ep, sizeof(ep)) != sizeof(ep))
			_exit(1);
		_exit(read(hold[0], &c, 1) == 0 ? 0 : 2);
	}
	close(ready[1]);
	close(hold[0]);
	int ep;
	assert_int_equal(read(ready[0], &ep, sizeof(ep)), sizeof(ep));
	image_init(&img);
	assert_int_equal(kview_snapshot(child, &img, 0, NULL), 0);
	check_kernel(child, &img);
	const struct image_target *t =
		target_of_watch(&img, watch_by_data(&img, ep, 1));
	const struct image_target *p = image_target_by_id(&img,
							  t->u.sock.pair);

	assert_non_null(p);
	assert_int_equal(p->u.sock.pair, t->id);
	assert_int_equal(t->u.sock.type, SOCK_SEQPACKET);
	assert_int_equal(t->u.sock.pending, 6); /* SEQPACKET: every record */
	assert_int_equal(img.ntargets, 3);
	image_free(&img);
	close(hold[1]);
	close(ready[0]);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Report a failed check of a child and return its code. */
#define CHILD_CHECK(cond, code)                                               \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: %s failed\n", __FILE__,       \
				__LINE__, #cond);                             \
			return code;                                          \
		}                                                             \
	} while (0)

/*
 * In a child whose socket(AF_NETLINK) fails (seccomp): the view still
 * comes, the pair recorded as lone connected ends, with a warning.
 */
static int no_sock_diag_child(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | EPROTONOSUPPORT),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	struct image img;
	int sp[2];

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 10;
	CHILD_CHECK(socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG) < 0 &&
			    errno == EPROTONOSUPPORT,
		    11);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };

	CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, 12);
	CHILD_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sp[0], &ev) == 0, 13);
	image_init(&img);
	CHILD_CHECK(kview_snapshot(0, &img, 0, NULL) == 0, 14);
	CHILD_CHECK(img.nwatches == 1 && img.ntargets == 2, 15);
	const struct image_target *t =
		image_target_by_id(&img, img.watches[0].target);
	CHILD_CHECK(t && !(t->u.sock.flags & IMAGE_SOCK_PAIR) &&
			    (t->u.sock.flags & IMAGE_SOCK_CONNECTED),
		    16);
	CHILD_CHECK(img.ndiags == 1 &&
			    img.diags[0].severity == IMAGE_SEV_WARNING &&
			    strstr(img.diags[0].message, "sock_diag"),
		    17);
	image_free(&img);
	return 0;
}

static void test_socketpair_no_sock_diag(void **state)
{
	(void)state;
	pid_t child = fork();
	int status;

	assert_true(child >= 0);
	if (child == 0)
		_exit(no_sock_diag_child());
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* SIOCINQ without cmocka (for children), -1 on error. */
static int inq_raw(int fd)
{
	int n = -1;

	return ioctl(fd, SIOCINQ, &n) == 0 ? n : -1;
}

static bool fd_open_here(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* O_NONBLOCK of fd as /proc/self/fdinfo says. */
static bool fdinfo_nonblock(int fd)
{
	return fdinfo_flags(getpid(), fd) & O_NONBLOCK;
}

static int restore_with(struct image *img, enum epollcr_targets targets,
			char *err, size_t len)
{
	struct epollcr_restore_options o = {
		.targets = targets,
		.missing = EPOLLCR_MISSING_FAIL,
		.report_fd = -1,
	};

	return restore_image(img, &o, err, len);
}

/*
 * In a child with only the fds it makes: epoll at 49 watching 50, the
 * watched end (nonblocking) of a stream socketpair whose other end sits at
 * 51 and 60 (close-on-exec), 3 and 7 bytes queued.  Snapshot, close them,
 * restore: the same numbers, flags, queues, one connected pair, and a
 * kernel view equal to the image.  Then targets=existing onto that pair,
 * and onto a pair that is not one.
 */
static int restore_child(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x51 };
	struct image img, now;
	char err[512], c[16];
	int sp[2], other[2];

	syscall(SYS_close_range, 3, ~0U, 0);
	CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) ==
			    0,
		    10);
	int e = epoll_create1(0);

	CHILD_CHECK(e >= 0 && dup3(e, 49, O_CLOEXEC) == 49 &&
			    dup3(sp[0], 50, 0) == 50 &&
			    dup3(sp[1], 51, 0) == 51 &&
			    dup3(sp[1], 60, O_CLOEXEC) == 60,
		    11);
	close(e);
	close(sp[0]);
	close(sp[1]);
	CHILD_CHECK(fcntl(50, F_SETFL, O_NONBLOCK) == 0, 12);
	CHILD_CHECK(write(51, "abc", 3) == 3 && write(50, "defghij", 7) == 7,
		    13);
	CHILD_CHECK(epoll_ctl(49, EPOLL_CTL_ADD, 50, &ev) == 0, 14);
	/* 52, 53: a datagram pair, two datagrams queued at 52 */
	CHILD_CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0 &&
			    dup2(sp[0], 52) == 52 && dup2(sp[1], 53) == 53,
		    37);
	close(sp[0]);
	close(sp[1]);
	ev.data.u64 = 0x52;
	CHILD_CHECK(send(53, "12345", 5, 0) == 5 && send(53, "xy", 2, 0) == 2 &&
			    epoll_ctl(49, EPOLL_CTL_ADD, 52, &ev) == 0,
		    38);
	image_init(&img);
	CHILD_CHECK(kview_snapshot(0, &img, 0, NULL) == 0, 15);
	for (int fd = 49; fd <= 60; fd++)
		close(fd);

	CHILD_CHECK(restore_with(&img, EPOLLCR_TARGETS_RECREATE, err,
				 sizeof(err)) == 0,
		    16);
	CHILD_CHECK(fd_ino(51) == fd_ino(60), 17);
	CHILD_CHECK(fdinfo_nonblock(50) && !fdinfo_nonblock(51), 18);
	CHILD_CHECK(!(fcntl(50, F_GETFD) & FD_CLOEXEC) &&
			    !(fcntl(51, F_GETFD) & FD_CLOEXEC) &&
			    (fcntl(60, F_GETFD) & FD_CLOEXEC) &&
			    (fcntl(49, F_GETFD) & FD_CLOEXEC),
		    19);
	CHILD_CHECK(inq_raw(50) == 3 && inq_raw(51) == 7, 20);
	/* the first datagram's size, as one datagram */
	CHILD_CHECK(inq_raw(52) == 5 && inq_raw(53) == 0, 39);
	CHILD_CHECK(recv(52, c, sizeof(c), MSG_DONTWAIT) == 5 &&
			    recv(52, c, sizeof(c), MSG_DONTWAIT) < 0 &&
			    errno == EAGAIN,
		    40);
	CHILD_CHECK(send(53, "5bytes", 5, 0) == 5, 41);
	bool noted = false;

	for (uint32_t i = 0; i < img.ndiags; i++)
		noted = noted || (img.diags[i].severity == IMAGE_SEV_INFO &&
				  strstr(img.diags[i].message,
					 "3 and 7 pending bytes queued again, as zeros"));
	CHILD_CHECK(noted, 42);
	image_init(&now);
	CHILD_CHECK(kview_snapshot(0, &now, 0, NULL) == 0, 21);
	CHILD_CHECK(kview_compare(&img, &now, 2) == 0, 22);
	image_free(&now);
	CHILD_CHECK(read(50, c, sizeof(c)) == 3 && read(51, c, 16) == 7, 23);
	CHILD_CHECK(write(60, "q", 1) == 1 && read(50, c, 1) == 1 &&
			    c[0] == 'q',
		    24);

	/* targets=existing onto the pair just restored. */
	close(49);
	CHILD_CHECK(restore_with(&img, EPOLLCR_TARGETS_EXISTING, err,
				 sizeof(err)) == 0,
		    25);
	image_init(&now);
	CHILD_CHECK(kview_snapshot(0, &now, 0, NULL) == 0, 26);
	CHILD_CHECK(kview_compare(&img, &now, 2) == 0, 27);
	image_free(&now);
	/* 51 and 60 now the end of another pair (50's end closed): refused. */
	close(49);
	CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, other) == 0, 28);
	CHILD_CHECK(dup2(other[1], 51) == 51 && dup2(other[1], 60) == 60, 29);
	CHILD_CHECK(restore_with(&img, EPOLLCR_TARGETS_EXISTING, err,
				 sizeof(err)) == -1 &&
			    strstr(err, "fds 50 and 51 must be the two ends of one socketpair, but fd 50 is connected to no open socket"),
		    30);
	fprintf(stderr, "expected failure: %s\n", err);
	/* 50 the end of a third pair, alive: connected, but not to 51. */
	int third[2];

	CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, third) == 0 &&
			    dup2(third[0], 50) == 50,
		    35);
	CHILD_CHECK(restore_with(&img, EPOLLCR_TARGETS_EXISTING, err,
				 sizeof(err)) == -1 &&
			    strstr(err, "not to fd 51's inode"),
		    36);
	fprintf(stderr, "expected failure: %s\n", err);
	close(third[0]);
	close(third[1]);
	/* A datagram pair there: not of the recorded type. */
	close(other[0]);
	close(other[1]);
	CHILD_CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, other) == 0, 31);
	CHILD_CHECK(dup2(other[1], 51) == 51 && dup2(other[1], 60) == 60, 32);
	CHILD_CHECK(restore_with(&img, EPOLLCR_TARGETS_EXISTING, err,
				 sizeof(err)) == -1 &&
			    strstr(err, "of type 1"),
		    33);
	fprintf(stderr, "expected failure: %s\n", err);
	CHILD_CHECK(!fd_open_here(49), 34);
	image_free(&img);
	return 0;
}

static void test_socketpair_restore(void **state)
{
	(void)state;
	pid_t child;
	int status;

	fflush(NULL);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		exit(restore_child()); /* exit: LeakSanitizer checks it */
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_nested_sets, teardown),
		cmocka_unit_test_teardown(test_dup_then_close, teardown),
		cmocka_unit_test_teardown(test_dup2_over_watched, teardown),
		cmocka_unit_test_teardown(test_oneshot_et_exclusive, teardown),
		cmocka_unit_test_teardown(test_kinds_described, teardown),
		cmocka_unit_test_teardown(test_250_under_one_tfd, teardown),
		cmocka_unit_test_teardown(test_stale_in_large_set, teardown),
		cmocka_unit_test_teardown(test_watched_file_no_fd_holds,
					  teardown),
		cmocka_unit_test_teardown(test_compare, teardown),
		cmocka_unit_test_teardown(test_compare_targets, teardown),
		cmocka_unit_test_teardown(test_compare_kept_open, teardown),
		cmocka_unit_test_teardown(test_hints, teardown),
		cmocka_unit_test_teardown(test_shadow_facts_equal_fdinfo,
					  teardown),
		cmocka_unit_test_teardown(test_bulk_equals_per_target,
					  teardown),
		cmocka_unit_test_teardown(test_sockets_need_no_kcmp, teardown),
		cmocka_unit_test_teardown(test_all_fds, teardown),
		cmocka_unit_test_teardown(test_other_pid, teardown),
		cmocka_unit_test_teardown(test_bad_pid, teardown),
		cmocka_unit_test_teardown(test_kcmp_refused, teardown),
		cmocka_unit_test_teardown(test_concurrent_churn, teardown),
		cmocka_unit_test_teardown(test_out_of_memory, teardown),
		cmocka_unit_test_teardown(test_many_watches, teardown),
		cmocka_unit_test_teardown(test_socketpair_one_watched,
					  teardown),
		cmocka_unit_test_teardown(test_socketpair_both_watched,
					  teardown),
		cmocka_unit_test_teardown(test_socketpair_lone_end, teardown),
		cmocka_unit_test_teardown(test_unix_not_pairs, teardown),
		cmocka_unit_test_teardown(test_socketpair_other_pid, teardown),
		cmocka_unit_test_teardown(test_socketpair_no_sock_diag,
					  teardown),
		cmocka_unit_test_teardown(test_socketpair_restore, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
