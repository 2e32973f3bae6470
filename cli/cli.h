/* SPDX-License-Identifier: MIT */
/* The epollcr command line: one file per subcommand. */
#ifndef EPOLLCR_CLI_H
#define EPOLLCR_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Exit statuses of every subcommand. */
#define CLI_OK 0	/* success; for verify: identical */
#define CLI_FAIL 1	/* failure, bad image, or (verify) a difference */
#define CLI_USAGE 2	/* wrong arguments */

int cmd_run(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_ps(int argc, char **argv);

/*
 * Count the epoll fds of pid (fds whose link is anon_inode:[eventpoll];
 * a set at two fds counts twice) and their watches (tfd lines of their
 * fdinfo).  Returns 0 or -errno when /proc/PID/fd cannot be read.
 */
int cli_epoll_count(pid_t pid, unsigned *sets, unsigned *watches);

/*
 * The signal named by pid's recorder thread ("epollcr-sigN"), 0 when it
 * has no recorder thread.
 */
int cli_recorder_signal(pid_t pid);
/*
 * 1 when /proc/PID/maps shows libepollcr loaded, 0 when it does not,
 * -errno when the maps cannot be read.
 */
int cli_has_shim(pid_t pid);

/*
 * Can pid's shim answer a dump request (libepollcr.so in its maps and a
 * recorder thread naming its signal, or sig_opt given)?  Returns the
 * signal (> 0), or 0 with the reason it cannot in note (one line).
 */
int cli_shim_answers(pid_t pid, int sig_opt, char *note, size_t note_len);

struct image;
/*
 * Ask pid's recorder for its image as `epollcr dump` does: the signal sig
 * to its recorder thread with a random nonce, the answer taken only from a
 * connection whose SO_PEERCRED pid is pid, validated record by record as
 * it streams (the first invalid byte, more than IMAGE_MAX_BYTES or the
 * deadline, timeout seconds, stops it).  Every byte is copied to out_fd
 * when it is not -1; the parsed image goes to *out when out is not NULL
 * (the caller frees it).  Returns 0, or -errno with the reason in why:
 * -ETIMEDOUT when pid did not answer, -EPROTO when what it sent is not a
 * valid image, another -errno when it could not be asked.
 */
int cli_request_image(pid_t pid, int sig, double timeout, int out_fd,
		      struct image *out, char *why, size_t why_len);
/* The command name of pid (/proc/PID/comm), "?" when unknown. */
void cli_comm_of(pid_t pid, char *comm, size_t len);

/* Print "epollcr: " + message + "\n" to stderr (printf-style). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * s escaped by the one rule of escape.h, for a message: in one of four
 * static buffers used in turn (four per message at most).
 */
const char *cli_esc(const char *s);

/* Parse a pid argument; -1 when it is not one. */
pid_t cli_parse_pid(const char *s);

/*
 * Parse --timeout (seconds, more than 0, at most an hour) and --signal
 * (signame_parse) arguments; on a bad one print why and return false.
 */
bool cli_parse_timeout(const char *s, double *out);
bool cli_parse_signal(const char *s, int *out);

/*
 * The image files named by path: path itself when it is a file, or every
 * regular "*.img" file in it (sorted) when it is a directory.  Returns the
 * count and a malloc'ed array of malloc'ed paths in *out, or -1 with a
 * message printed.  *is_dir tells which.
 */
int cli_image_paths(const char *path, char ***out, bool *is_dir);
void cli_free_paths(char **paths, int n);

/* The version line printed by every --version. */
void cli_print_version(void);

#endif
