// SPDX-License-Identifier: MIT
/* epollcr run: exec a program with the shim preloaded. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "signame.h"

static const char run_usage[] =
	"usage: epollcr run [--signal SIG] [--dir DIR] [--backtrace DEPTH] -- CMD [ARG...]\n"
	"\n"
	"Run CMD with libepollcr.so preloaded (after any LD_PRELOAD already set),\n"
	"so that `epollcr dump PID` can checkpoint its epoll state.  CMD replaces\n"
	"epollcr: it keeps epollcr's pid.\n"
	"\n"
	"  --signal SIG       checkpoint signal (default SIGRTMAX-3; EPOLLCR_SIGNAL)\n"
	"  --dir DIR          where a plain kill -SIG writes images (EPOLLCR_DIR)\n"
	"  --backtrace DEPTH  frames kept per registration, 0 disables (EPOLLCR_BACKTRACE)\n"
	"  --lib PATH         the shim to preload (default: next to epollcr, or\n"
	"                     ../lib/libepollcr.so.0 from it; EPOLLCR_LIB)\n";

/* The shim next to this binary (build tree) or in ../lib (installed). */
static int find_lib(char *out, size_t len)
{
	const char *env = getenv("EPOLLCR_LIB");
	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, R_OK);
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -1;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	static const char *const candidates[] = {
		"%s/libepollcr.so", "%s/../lib/libepollcr.so.0",
		"%s/../lib/x86_64-linux-gnu/libepollcr.so.0",
	};
	for (size_t i = 0; i < sizeof(candidates) / sizeof(*candidates); i++) {
		snprintf(out, len, candidates[i], exe);
		if (access(out, R_OK) == 0) {
			char real[PATH_MAX];
			if (realpath(out, real))
				snprintf(out, len, "%s", real);
			return 0;
		}
	}
	return -1;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "signal", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "backtrace", required_argument, NULL, 'b' },
		{ "lib", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char lib[PATH_MAX];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+s:d:b:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!signame_parse(optarg)) {
				cli_error("--signal %s: not a usable signal (try RTMAX-3, RTMIN+5, USR2 or a number)", optarg);
				return CLI_USAGE;
			}
			setenv("EPOLLCR_SIGNAL", optarg, 1);
			break;
		case 'd':
			setenv("EPOLLCR_DIR", optarg, 1);
			break;
		case 'b': {
			char *end;
			long depth = strtol(optarg, &end, 10);
			if (*end || depth < 0 || depth > 32) {
				cli_error("--backtrace %s: give a depth from 0 to 32", optarg);
				return CLI_USAGE;
			}
			setenv("EPOLLCR_BACKTRACE", optarg, 1);
			break;
		}
		case 'l':
			setenv("EPOLLCR_LIB", optarg, 1);
			break;
		case 'h':
			fputs(run_usage, stdout);
			return CLI_OK;
		case 'V':
			cli_print_version();
			return CLI_OK;
		default:
			fputs(run_usage, stderr);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error("run: no command given");
		fputs(run_usage, stderr);
		return CLI_USAGE;
	}
	if (find_lib(lib, sizeof(lib)) < 0) {
		cli_error("cannot find libepollcr.so (looked next to epollcr and in ../lib); set EPOLLCR_LIB or --lib");
		return CLI_FAIL;
	}
	const char *old = getenv("LD_PRELOAD");
	char *preload;
	if (old && *old) {
		if (asprintf(&preload, "%s:%s", old, lib) < 0)
			return CLI_FAIL;
	} else {
		preload = lib;
	}
	setenv("LD_PRELOAD", preload, 1);
	execvp(argv[optind], argv + optind);
	cli_error("run: cannot execute %s: %m", argv[optind]);
	return 127;
}
