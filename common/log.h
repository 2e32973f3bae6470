/* SPDX-License-Identifier: MIT */
/*
 * Logging: one fd, plain write(2), errno preserved.  Each source file
 * defines LOG_PREFIX before including this header ("shim", "recorder"...).
 * Safe to call from any thread; not async-signal-safe (it formats).
 */
#ifndef EPOLLCR_LOG_H
#define EPOLLCR_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

/*
 * Send log lines to fd (default 2) and show levels up to max_level.  The
 * caller keeps fd open; log_fd_closed() tells the logger that the program
 * closed it, after which nothing is written.
 */
void log_setup(int fd, enum log_level max_level);

/* The program closed fd: stop writing to it if it is the log fd. */
void log_fd_closed(int fd);

/* Internal to log.c and log_get_fd(): the fd log lines go to, or -1. */
extern int log_current_fd;

/* The fd log lines go to, or -1 (inline: every close() asks). */
static inline int log_get_fd(void)
{
	return __atomic_load_n(&log_current_fd, __ATOMIC_RELAXED);
}

/* Write one line "epollcr[pid] prefix: level: message\n". */
void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifndef LOG_PREFIX
#define LOG_PREFIX "epollcr"
#endif
#define log_error(...) log_write(LOG_LEVEL_ERROR, LOG_PREFIX, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, LOG_PREFIX, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, LOG_PREFIX, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, LOG_PREFIX, __VA_ARGS__)

#endif
