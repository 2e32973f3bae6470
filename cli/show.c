// SPDX-License-Identifier: MIT
/* epollcr show: print images as text or JSON. */
#include <getopt.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "image_io.h"
#include "show.h"

static const char show_usage[] =
	"usage: epollcr show [--json] [--no-addr2line] IMAGE|DIR\n"
	"\n"
	"Print an image: the process, its epoll sets and watches (events\n"
	"decoded), the targets, the nesting tree, the diagnostics and the\n"
	"registration backtraces.  A directory (from `epollcr dump --tree`)\n"
	"prints every *.img in it; with --json, as a JSON array.\n"
	"\n"
	"  --json           the JSON form (see docs/image-format.md)\n"
	"  --no-addr2line   run no helper: no addr2line for file:line, no\n"
	"                   c++filt for C++ names\n";

int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "no-addr2line", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	unsigned flags = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			flags |= SHOW_NO_ADDR2LINE;
			break;
		case 'h':
			fputs(show_usage, stdout);
			return CLI_OK;
		case 'V':
			cli_print_version();
			return CLI_OK;
		default:
			fputs(show_usage, stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_error("show: give one image file or directory");
		fputs(show_usage, stderr);
		return CLI_USAGE;
	}
	/* One budget for every helper (addr2line, c++filt) of the command. */
	show_tools_budget(SHOW_TOOLS_BUDGET_MS);
	char **paths;
	bool many;
	int n = cli_image_paths(argv[optind], &paths, &many);
	if (n < 0)
		return CLI_FAIL;
	int status = CLI_OK;
	if (json && many)
		fputs("[\n", stdout);
	for (int i = 0; i < n; i++) {
		struct image img;
		char err[512];
		if (image_read_file_flags(paths[i], &img, IMAGE_READ_ANY_FD, err, sizeof(err)) < 0) {
			cli_error("%s: %s", cli_esc(paths[i]), cli_esc(err));
			status = CLI_FAIL;
			continue;
		}
		fflush(stdout);
		if (!json && many)
			printf("%s== %s\n", i ? "\n" : "", cli_esc(paths[i]));
		if (json && many && i)
			fputs(",\n", stdout);
		fflush(stdout);
		int ret = json ? show_image_json(&img, STDOUT_FILENO)
			       : show_image_text(&img, STDOUT_FILENO, flags);
		image_free(&img);
		if (ret < 0) {
			cli_error("show: writing %s: %s", cli_esc(paths[i]),
				  strerror(-ret));
			status = CLI_FAIL;
		}
	}
	if (json && many)
		fputs("]\n", stdout);
	cli_free_paths(paths, n);
	return status;
}
