// SPDX-License-Identifier: MIT
/* epollcr run: exec a program with the shim preloaded. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "epollcr.h"
#include "signame.h"

static const char run_usage[] =
	"usage: epollcr run [--signal SIG] [--dir DIR] [--backtrace DEPTH]\n"
	"                   [--lib PATH] -- CMD [ARG...]\n"
	"\n"
	"Run CMD with libepollcr.so preloaded (after any LD_PRELOAD already set),\n"
	"so that `epollcr dump PID` can checkpoint its epoll state.  CMD replaces\n"
	"epollcr: it keeps epollcr's pid.\n"
	"\n"
	"  --signal SIG       checkpoint signal (default SIGRTMAX-3; EPOLLCR_SIGNAL)\n"
	"  --dir DIR          where a plain kill -SIG writes images (EPOLLCR_DIR)\n"
	"  --backtrace DEPTH  frames kept per registration, 0 disables (EPOLLCR_BACKTRACE)\n"
	"  --lib PATH         the shim to preload (EPOLLCR_LIB; default: next to\n"
	"                     the epollcr binary, or in ../lib, ../lib64 or\n"
	"                     ../lib/MULTIARCH from it, as libepollcr.so.MAJOR)\n";

#define SONAME_(major) "libepollcr.so." EPOLLCR_STRINGIFY(major)
#define LIB_SONAME SONAME_(EPOLLCR_VERSION_MAJOR)
#ifndef EPOLLCR_MULTIARCH
#define EPOLLCR_MULTIARCH "" /* the compiler's -print-multiarch, if any */
#endif

/*
 * Where the shim is looked for, relative to the directory of the real
 * epollcr binary (symbolic links resolved): next to it (the build tree),
 * then where `make install` puts it for any PREFIX (BINDIR/../lib), then
 * the lib64 and Debian multiarch variants of that directory.
 */
static const char *const lib_candidates[] = {
	"%s/libepollcr.so",
	"%s/../lib/" LIB_SONAME,
	"%s/../lib64/" LIB_SONAME,
	"%s/../lib/" EPOLLCR_MULTIARCH "/" LIB_SONAME,
};

/*
 * Find the shim to preload: EPOLLCR_LIB when set (it must be readable),
 * else the first readable lib_candidates entry, as an absolute path with
 * symbolic links resolved.  Returns 0 with the path in out (len bytes), or
 * -1 when there is none.
 */
static int find_lib(char *out, size_t len)
{
	const char *env = getenv("EPOLLCR_LIB");
	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, R_OK);
	}
	char exe[PATH_MAX];
	if (!realpath("/proc/self/exe", exe))
		return -1;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	size_t n = sizeof(lib_candidates) / sizeof(*lib_candidates);
	if (!*EPOLLCR_MULTIARCH)
		n--;
	for (size_t i = 0; i < n; i++) {
		char real[PATH_MAX];
		snprintf(out, len, lib_candidates[i], exe);
		if (access(out, R_OK) == 0 && realpath(out, real)) {
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
		const char *env = getenv("EPOLLCR_LIB");
		if (env && *env)
			cli_error("run: cannot read the library %s: %m (from --lib or EPOLLCR_LIB)", lib);
		else
			cli_error("run: cannot find the library: no libepollcr.so next to the epollcr binary, nor " LIB_SONAME " in ../lib, ../lib64 or ../lib/%s from it; give --lib PATH or EPOLLCR_LIB", *EPOLLCR_MULTIARCH ? EPOLLCR_MULTIARCH : "MULTIARCH");
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
