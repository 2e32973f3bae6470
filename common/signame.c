// SPDX-License-Identifier: MIT
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signame.h"

int signame_default(void)
{
	return SIGRTMAX - 3;
}

static int parse_rt(const char *s, int base)
{
	char *end;
	long off = 0;
	if (s[0]) {
		if (s[0] != '+' && s[0] != '-')
			return 0;
		off = strtol(s, &end, 10);
		if (*end || end == s + 1)
			return 0;
	}
	long n = base + off;
	return (n >= SIGRTMIN && n <= SIGRTMAX) ? (int)n : 0;
}

int signame_parse(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = { { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
		      { "PWR", SIGPWR },   { "WINCH", SIGWINCH },
		      { "URG", SIGURG },   { "SYS", SIGSYS } };
	char *end;

	if (!s)
		return 0;
	if (!strncmp(s, "SIG", 3))
		s += 3;
	if (*s >= '0' && *s <= '9') {
		long n = strtol(s, &end, 10);
		if (*end || n <= 0 || n >= NSIG || n == SIGKILL ||
		    n == SIGSTOP)
			return 0;
		return (int)n;
	}
	if (!strncmp(s, "RTMIN", 5))
		return parse_rt(s + 5, SIGRTMIN);
	if (!strncmp(s, "RTMAX", 5))
		return parse_rt(s + 5, SIGRTMAX);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name))
			return names[i].sig;
	return 0;
}

void signame_format(int sig, char *out, size_t len)
{
	if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
		if (SIGRTMAX - sig <= sig - SIGRTMIN)
			snprintf(out, len, SIGRTMAX == sig ? "SIGRTMAX" : "SIGRTMAX-%d",
				 SIGRTMAX - sig);
		else
			snprintf(out, len, SIGRTMIN == sig ? "SIGRTMIN" : "SIGRTMIN+%d",
				 sig - SIGRTMIN);
		return;
	}
	const char *abbrev = sigabbrev_np(sig);
	if (abbrev)
		snprintf(out, len, "SIG%s", abbrev);
	else
		snprintf(out, len, "%d", sig);
}
