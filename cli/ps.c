// SPDX-License-Identifier: MIT
/*
 * epollcr ps: the processes of the calling user (every process for root)
 * that hold epoll sets, one line each, from /proc alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "escape.h"
#include "signame.h"

#define PS_MAX_PROCS 65536 /* processes listed at most */

static const char ps_usage[] =
	"usage: epollcr ps [--json]\n"
	"\n"
	"List your processes that hold epoll sets (every process's, as root):\n"
	"pid, command, epoll fds, watches, whether the epollcr shim runs in\n"
	"it and its checkpoint signal (- when its recorder has not started).\n"
	"Any of them can be dumped with `epollcr dump PID`.\n";

static void put_piece(void *out, const char *piece, size_t len)
{
	fwrite(piece, 1, len, out);
}

/* s as a JSON string, by escape.h's one rule. */
static void json_string(const char *s)
{
	putchar('"');
	escape_emit(s, strlen(s), ESCAPE_JSON, put_piece, stdout);
	putchar('"');
}

int cmd_ps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c, listed = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(ps_usage, stdout);
			return CLI_OK;
		case 'V':
			cli_print_version();
			return CLI_OK;
		default:
			fputs(ps_usage, stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc) {
		cli_error("ps: takes no argument");
		fputs(ps_usage, stderr);
		return CLI_USAGE;
	}
	DIR *dir = opendir("/proc");
	if (!dir) {
		cli_error("ps: cannot read /proc: %s", strerror(errno));
		return CLI_FAIL;
	}
	uid_t me = geteuid();
	pid_t self = getpid();
	struct dirent *de;
	if (json)
		printf("[");
	else
		printf("%7s %-16s %5s %7s %-4s %s\n", "PID", "COMMAND", "SETS",
		       "WATCHES", "SHIM", "SIGNAL");
	int seen = 0;
	while ((de = readdir(dir)) && seen++ < PS_MAX_PROCS) {
		pid_t pid = cli_parse_pid(de->d_name);
		char path[64], comm[64], sig_name[32] = "-";
		struct stat st;
		unsigned sets, watches;
		if (pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%d", (int)pid);
		if (stat(path, &st) < 0 || (me != 0 && st.st_uid != me))
			continue;
		if (cli_epoll_count(pid, &sets, &watches) < 0 || !sets)
			continue;
		cli_comm_of(pid, comm, sizeof(comm));
		int shim = cli_has_shim(pid);
		int sig = shim == 1 ? cli_recorder_signal(pid) : 0;
		if (sig)
			signame_format(sig, sig_name, sizeof(sig_name));
		const char *shim_s = shim == 1 ? "yes" : shim == 0 ? "no" : "?";
		if (json) {
			printf("%s\n {\"pid\": %d, \"comm\": ", listed ? "," : "",
			       (int)pid);
			json_string(comm);
			printf(", \"sets\": %u, \"watches\": %u, \"shim\": %s, \"signal\": ",
			       sets, watches,
			       shim == 1   ? "true"
			       : shim == 0 ? "false"
					   : "null");
			if (sig) {
				json_string(sig_name);
				printf(", \"signo\": %d}", sig);
			} else {
				printf("null, \"signo\": null}");
			}
		} else {
			printf("%7d %-16s %5u %7u %-4s %s\n", (int)pid, comm,
			       sets, watches, shim_s, sig_name);
		}
		listed++;
	}
	closedir(dir);
	if (json)
		printf("%s]\n", listed ? "\n" : "");
	return CLI_OK;
}
