/* SPDX-License-Identifier: MIT */
/* Signal names as epollcr accepts them (EPOLLCR_SIGNAL, --signal). */
#ifndef EPOLLCR_SIGNAME_H
#define EPOLLCR_SIGNAME_H

#include <stddef.h>

/*
 * The signal named by s: a number ("61"), "RTMIN+N"/"RTMAX-N" (with or
 * without "SIG"), or one of USR1, USR2, PWR, WINCH, URG, SYS.  Returns 0
 * when s names no usable signal (SIGKILL and SIGSTOP are not usable).
 */
int signame_parse(const char *s);

/*
 * The name of signal sig that signame_parse() reads back, into out (len
 * bytes): "SIGRTMIN+N"/"SIGRTMAX-N" for a real-time signal (from the
 * nearer end), "SIGUSR1" and the like, else the number.
 */
void signame_format(int sig, char *out, size_t len);

/* The default checkpoint signal: SIGRTMAX - 3 (see docs/recorder.md). */
int signame_default(void);

#endif
