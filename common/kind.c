// SPDX-License-Identifier: MIT
/* The per-kind table, and the helpers its entries share. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kind_internal.h"
#include "ownfd.h"

static const struct kind_ops *const kind_table[IMAGE_KIND_COUNT] = {
	[IMAGE_KIND_OTHER] = &kind_other_ops,
	[IMAGE_KIND_SOCKET] = &kind_socket_ops,
	[IMAGE_KIND_PIPE] = &kind_pipe_ops,
	[IMAGE_KIND_EVENTFD] = &kind_eventfd_ops,
	[IMAGE_KIND_TIMERFD] = &kind_timerfd_ops,
	[IMAGE_KIND_SIGNALFD] = &kind_signalfd_ops,
	[IMAGE_KIND_EPOLL] = &kind_epoll_ops,
};

const struct kind_ops *kind_ops_of(uint32_t kind)
{
	if (kind >= IMAGE_KIND_COUNT || !kind_table[kind])
		return &kind_other_ops;
	return kind_table[kind];
}

uint32_t kind_from_link(const char *link)
{
	if (!link)
		return IMAGE_KIND_OTHER;
	for (uint32_t k = 0; k < IMAGE_KIND_COUNT; k++) {
		if (k == IMAGE_KIND_OTHER)
			continue;
		if (kind_table[k]->match_link(link))
			return k;
	}
	return IMAGE_KIND_OTHER;
}

int kind_read_self_fdinfo(int fd, char *buf, size_t len)
{
	char path[64];
	size_t got = 0;
	int pfd, ret = 0;

	if (len == 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/thread-self/fdinfo/%d", fd);
	own_fd_hold(); /* read and closed at once (ownfd.h) */
	pfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd < 0) {
		ret = -errno;
		own_fd_release();
		return ret;
	}
	/* Bounded: each round reads at least one byte or stops. */
	while (got < len - 1) {
		ssize_t n = read(pfd, buf + got, len - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(pfd);
	own_fd_release();
	return ret;
}

bool kind_link_is_anon(const char *link, const char *name)
{
	static const char prefix[] = "anon_inode:";
	size_t plen = sizeof(prefix) - 1, nlen = strlen(name);

	if (!link || strncmp(link, prefix, plen) != 0)
		return false;
	link += plen;
	if (link[0] == '[')
		return strncmp(link + 1, name, nlen) == 0 &&
		       link[1 + nlen] == ']' && link[2 + nlen] == '\0';
	return strcmp(link, name) == 0;
}

bool kind_link_ino(const char *link, const char *prefix, uint64_t *ino)
{
	size_t plen = strlen(prefix), used, len;

	if (!link || strncmp(link, prefix, plen) != 0 || link[plen] != '[')
		return false;
	link += plen + 1;
	len = strlen(link);
	if (!fdinfo_parse_number(link, len, 10, 20, ino, &used))
		return false;
	return link[used] == ']' && link[used + 1] == '\0';
}

int kind_describe_fdinfo(struct image_target *t, int fd, const char **fdinfo,
			 char *buf, size_t len)
{
	if (!*fdinfo) {
		if (fd < 0)
			return -EINVAL;
		int ret = kind_read_self_fdinfo(fd, buf, len);
		if (ret < 0)
			return ret;
		*fdinfo = buf;
	}
	return kind_describe_file_flags(t, fd, *fdinfo);
}

int kind_describe_file_flags(struct image_target *t, int fd,
			     const char *fdinfo)
{
	uint64_t flags;

	if (fdinfo_u64(fdinfo, "flags:", 8, &flags)) {
		t->file_flags = (uint32_t)flags & ~(uint32_t)O_CLOEXEC;
		return 0;
	}
	if (fd < 0)
		return 0;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	t->file_flags = (uint32_t)fl;
	return 0;
}

static const struct {
	uint32_t flag;
	const char *name;
} kind_flag_names[] = {
	{ O_APPEND, "O_APPEND" },   { O_NONBLOCK, "O_NONBLOCK" },
	{ O_ASYNC, "O_ASYNC" },	    { O_DIRECT, "O_DIRECT" },
	{ O_NOATIME, "O_NOATIME" }, { O_CLOEXEC, "O_CLOEXEC" },
};

const char *kind_file_flag_name(uint32_t flag)
{
	for (size_t i = 0; i < sizeof(kind_flag_names) /
				       sizeof(kind_flag_names[0]); i++)
		if (kind_flag_names[i].flag == flag)
			return kind_flag_names[i].name;
	return NULL;
}

const char *kind_file_flags_text(uint32_t flags, char *buf, size_t len)
{
	static const char *const modes[] = { "O_RDONLY", "O_WRONLY", "O_RDWR",
					     "O_ACCMODE" };
	uint32_t rest = flags & ~(uint32_t)O_ACCMODE;
	size_t used;

	if (!len)
		return buf;
	snprintf(buf, len, "%s", modes[flags & O_ACCMODE]);
	for (size_t i = 0; i < sizeof(kind_flag_names) /
				       sizeof(kind_flag_names[0]); i++) {
		if (!(rest & kind_flag_names[i].flag))
			continue;
		rest &= ~kind_flag_names[i].flag;
		used = strlen(buf);
		snprintf(buf + used, len - used, "|%s",
			 kind_flag_names[i].name);
	}
	used = strlen(buf);
	if (rest)
		snprintf(buf + used, len - used, "|0%o", rest);
	return buf;
}

void kind_diff(char *diff, size_t diff_len, const char *fmt, ...)
{
	va_list ap;

	if (!diff || diff_len == 0)
		return;
	va_start(ap, fmt);
	/* clang-analyzer 14 wrongly reports ap uninitialised here. */
	vsnprintf(diff, diff_len, fmt, ap); // NOLINT(clang-analyzer-valist.*)
	va_end(ap);
}
