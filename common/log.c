// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

int log_current_fd = 2;
static enum log_level log_max = LOG_LEVEL_WARN;

void log_setup(int fd, enum log_level max_level)
{
	__atomic_store_n(&log_current_fd, fd, __ATOMIC_RELAXED);
	log_max = max_level;
}

void log_fd_closed(int fd)
{
	int expected = fd;
	if (fd >= 0)
		__atomic_compare_exchange_n(&log_current_fd, &expected, -1, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}


void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info",
					     "debug" };
	int fd = log_get_fd();
	if (level > log_max || fd < 0)
		return;
	int saved_errno = errno;
	char line[1024];
	int n = snprintf(line, sizeof(line), "epollcr[%d] %s: %s: ",
			 (int)getpid(), prefix, names[level]);
	if (n < 0 || n >= (int)sizeof(line) - 2)
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - 1 - n, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(fd, line, n);
	(void)w;
	errno = saved_errno;
}
