// SPDX-License-Identifier: MIT
/* epollcr: checkpoint and restore the epoll state of unmodified programs. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "epollcr.h"
#include "epollcr_image.h"
#include "escape.h"
#include "signame.h"

static const char usage[] =
	"usage: epollcr COMMAND [OPTION...] [ARG...]\n"
	"\n"
	"Checkpoint and restore the epoll state of unmodified programs.\n"
	"\n"
	"commands:\n"
	"  run      run a program with the epollcr shim preloaded\n"
	"  dump     write an image of a running program's epoll state\n"
	"  show     print an image (text or --json)\n"
	"  verify   compare an image with a live process\n"
	"  restore  rebuild an image's epoll sets and watches\n"
	"  ps       list your processes that hold epoll sets\n"
	"\n"
	"Run 'epollcr COMMAND --help' for a command's options.\n"
	"Exit status: 0 success, 1 failure or difference, 2 usage error.\n";

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("epollcr: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * The library's own answer (the core is linked in), so `epollcr --version`,
 * epollcr_version() and the version recorded in images cannot disagree.
 */
void cli_print_version(void)
{
	printf("epollcr %s (image format %d)\n", epollcr_version(),
	       IMAGE_VERSION);
}

pid_t cli_parse_pid(const char *s)
{
	char *end;
	errno = 0;
	long n = strtol(s, &end, 10);
	if (errno || end == s || *end || n <= 0 || n > 0x3fffffff)
		return -1;
	return (pid_t)n;
}

bool cli_parse_timeout(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v > 0 && v <= 3600)) {
		cli_error("--timeout %s: give seconds, more than 0 and at most 3600", s);
		return false;
	}
	*out = v;
	return true;
}

bool cli_parse_signal(const char *s, int *out)
{
	int sig = signame_parse(s);

	if (!sig) {
		cli_error("--signal %s: not a usable signal", s);
		return false;
	}
	*out = sig;
	return true;
}

const char *cli_esc(const char *s)
{
	static char bufs[4][1024];
	static unsigned next;

	return escape_str(bufs[next++ % 4], sizeof(bufs[0]), s);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_image_paths(const char *path, char ***out, bool *is_dir)
{
	struct stat st;
	*is_dir = false;
	if (stat(path, &st) < 0) {
		cli_error("%s: %s", cli_esc(path), strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*out = malloc(sizeof(char *));
		if (!*out || !((*out)[0] = strdup(path))) {
			cli_error("out of memory");
			return -1;
		}
		return 1;
	}
	*is_dir = true;
	DIR *dir = opendir(path);
	if (!dir) {
		cli_error("%s: %s", cli_esc(path), strerror(errno));
		return -1;
	}
	char **paths = NULL;
	int n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".img"))
			continue;
		/* Only regular files: a FIFO would block the read forever. */
		if (fstatat(dirfd(dir), de->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode)) {
			fprintf(stderr, "epollcr: note: %s/%s: not a regular file, skipped\n",
				cli_esc(path), cli_esc(de->d_name));
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **grown = realloc(paths, cap * sizeof(*paths));
			if (!grown)
				break;
			paths = grown;
		}
		if (asprintf(&paths[n], "%s/%s", path, de->d_name) < 0)
			break;
		n++;
	}
	closedir(dir);
	if (!n) {
		cli_error("%s: no image (*.img) in this directory", cli_esc(path));
		free(paths);
		return -1;
	}
	qsort(paths, n, sizeof(*paths), cmp_str);
	*out = paths;
	return n;
}

void cli_free_paths(char **paths, int n)
{
	for (int i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = { { "run", cmd_run },
		     { "dump", cmd_dump },
		     { "show", cmd_show },
		     { "verify", cmd_verify },
		     { "restore", cmd_restore },
		     { "ps", cmd_ps } };
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		cli_print_version();
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	cli_error("unknown command '%s'", argv[1]);
	fputs(usage, stderr);
	return CLI_USAGE;
}
