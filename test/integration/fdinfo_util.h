/* SPDX-License-Identifier: MIT */
/*
 * A small, header-only reader of the kernel's view of a process's epoll
 * state, for the integration test programs (which are plain executables,
 * linked with nothing of epollcr): /proc/self/fd, /proc/self/fdinfo and
 * kcmp(2).  Self-contained on purpose: the tests compare the shim with the
 * kernel through code that shares nothing with the shim or the recorder.
 *
 * Every function is static inline; include this header from one .c file.
 */
#ifndef EPOLLCR_TEST_FDINFO_UTIL_H
#define EPOLLCR_TEST_FDINFO_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <linux/kcmp.h>

/* One `tfd:` line of an epoll fd's fdinfo. */
struct fdinfo_util_watch {
	int tfd;	 /* fd number given to EPOLL_CTL_ADD */
	uint32_t events; /* as the kernel keeps them (EPOLLERR|EPOLLHUP in) */
	uint64_t data;	 /* epoll_data */
	uint64_t ino;	 /* inode number of the watched file */
	uint32_t sdev;	 /* its device, kernel encoding */
};

/* The link text /proc/self/fd/N shows for an epoll fd. */
#define FDINFO_UTIL_EPOLL_LINK "anon_inode:[eventpoll]"

/*
 * Read the whole text of /proc/self/fdinfo/FD into buf (at most buf_len - 1
 * bytes, NUL-terminated).  Returns the length, -E2BIG when the text does not
 * fit, or -errno (-ENOENT: fd is not open).
 */
static inline ssize_t fdinfo_util_read(int fd, char *buf, size_t buf_len)
{
	char path[64];
	size_t len = 0;
	ssize_t ret = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int info = open(path, O_RDONLY | O_CLOEXEC);
	if (info < 0)
		return -errno;
	while (len < buf_len - 1) {
		ssize_t n = read(info, buf + len, buf_len - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (ret == 0 && len == buf_len - 1) {
		char probe;
		if (read(info, &probe, 1) > 0)
			ret = -E2BIG;
	}
	close(info);
	buf[len] = '\0';
	return ret < 0 ? ret : (ssize_t)len;
}

/*
 * Parse the `tfd:` lines of an epoll fdinfo text into out (room for
 * max_watches), in the kernel's order, and set *count.  Returns 0, -EINVAL
 * on a malformed tfd line, -E2BIG when there are more than max_watches.
 */
static inline int fdinfo_util_parse_watches(const char *text,
					    struct fdinfo_util_watch *out,
					    size_t max_watches, size_t *count)
{
	*count = 0;
	for (const char *line = text; line && *line;) {
		const char *next = strchr(line, '\n');
		if (strncmp(line, "tfd:", 4) == 0) {
			int tfd;
			unsigned events, sdev;
			unsigned long long data, ino, pos;
			static const char fmt[] =
				"tfd: %d events: %x data: %llx pos:%llu ino:%llx sdev:%x";
			if (sscanf(line, fmt, &tfd, &events, &data, &pos, &ino,
				   &sdev) != 6)
				return -EINVAL;
			if (*count == max_watches)
				return -E2BIG;
			out[*count] = (struct fdinfo_util_watch){
				.tfd = tfd, .events = events, .data = data,
				.ino = ino, .sdev = sdev,
			};
			(*count)++;
		}
		line = next ? next + 1 : NULL;
	}
	return 0;
}

/*
 * Read and parse the watches of epoll fd epfd (see the two functions
 * above); text_buf (text_len bytes) receives the raw text for diagnostics.
 * Returns 0 or -errno.
 */
static inline int fdinfo_util_epoll_watches(int epfd, char *text_buf,
					    size_t text_len,
					    struct fdinfo_util_watch *out,
					    size_t max_watches, size_t *count)
{
	ssize_t n = fdinfo_util_read(epfd, text_buf, text_len);
	if (n < 0)
		return (int)n;
	return fdinfo_util_parse_watches(text_buf, out, max_watches, count);
}

/*
 * The link text of /proc/self/fd/FD into buf (NUL-terminated, truncated to
 * buf_len - 1).  Returns 0 or -errno.
 */
static inline int fdinfo_util_link(int fd, char *buf, size_t buf_len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, buf, buf_len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* True when fd is open and is an epoll fd, as the kernel names it. */
static inline bool fdinfo_util_is_epoll(int fd)
{
	char link[64];
	return fdinfo_util_link(fd, link, sizeof(link)) == 0 &&
	       strcmp(link, FDINFO_UTIL_EPOLL_LINK) == 0;
}

static inline int fdinfo_util_cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/*
 * The open fds of the calling process, sorted, without the one used to list
 * them, into fds (room for max_fds).  Returns the count, -E2BIG when there
 * are more than max_fds, or -errno.
 */
static inline int fdinfo_util_list_fds(int *fds, size_t max_fds)
{
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return -errno;
	int own = dirfd(dir), ret = 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int fd = atoi(de->d_name);
		if (fd == own)
			continue;
		if (n == max_fds) {
			ret = -E2BIG;
			break;
		}
		fds[n++] = fd;
	}
	closedir(dir);
	if (ret < 0)
		return ret;
	qsort(fds, n, sizeof(*fds), fdinfo_util_cmp_int);
	return (int)n;
}

/*
 * kcmp(KCMP_EPOLL_TFD) on the calling process: 0 when fd refers to the file
 * that epoll set epfd watches as the nth watch (nth from 0, in the kernel's
 * order) registered under tfd; 1 when it is another file; -errno otherwise
 * (-ENOENT: no such watch).
 */
static inline int fdinfo_util_kcmp_tfd(int epfd, int tfd, unsigned nth, int fd)
{
	struct kcmp_epoll_slot slot = {
		.efd = (uint32_t)epfd, .tfd = (uint32_t)tfd, .toff = nth,
	};
	pid_t pid = getpid();
	long ret = syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, fd,
			   (unsigned long)&slot);
	if (ret < 0)
		return -errno;
	return ret == 0 ? 0 : 1;
}

/*
 * True when fd refers to one of the files epfd watches under tfd (any of
 * the first max_watches watches with that tfd: several files may be watched
 * under one number).
 */
static inline bool fdinfo_util_fd_holds_watch(int epfd, int tfd, int fd,
					      unsigned max_watches)
{
	for (unsigned nth = 0; nth < max_watches; nth++) {
		int r = fdinfo_util_kcmp_tfd(epfd, tfd, nth, fd);
		if (r == 0)
			return true;
		if (r < 0)
			return false;
	}
	return false;
}

/* kcmp(KCMP_FILE): true when fd_a and fd_b share one open file description. */
static inline bool fdinfo_util_same_file(int fd_a, int fd_b)
{
	pid_t pid = getpid();
	return syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd_a, fd_b) == 0;
}

#endif
