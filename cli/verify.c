// SPDX-License-Identifier: MIT
/* epollcr verify: compare images with the live kernel state of processes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "image_io.h"
#include "kview.h"
#include "recorder.h"

static const char verify_usage[] =
	"usage: epollcr verify [--pid PID] IMAGE|DIR\n"
	"\n"
	"Compare an image with the epoll state the kernel holds for PID now\n"
	"(default: the pid recorded in the image): sets, watches (tfd, events,\n"
	"data), targets.  Prints each difference; exit status 0 when identical,\n"
	"1 when anything differs or cannot be read.  A directory checks every\n"
	"*.img in it against its own pid.\n";

static int verify_one(const char *path, pid_t pid_opt)
{
	struct image img, live;
	char err[512];
	if (image_read_file_flags(path, &img, IMAGE_READ_ANY_FD, err, sizeof(err)) < 0) {
		cli_error("%s: %s", cli_esc(path), cli_esc(err));
		return CLI_FAIL;
	}
	pid_t pid = pid_opt > 0 ? pid_opt : img.proc.pid;
	image_init(&live);
	int ret = kview_snapshot(pid, &live, 0, NULL);
	/*
	 * A zombie's /proc/PID/fd reads as empty: every set of the image
	 * would be reported missing, as if the live process had closed them.
	 */
	char st = recorder_pid_state(pid);
	if (ret < 0 || st == 'Z' || st == 'X' || !st) {
		char why[256];

		if (st == 'Z')
			recorder_outside_why(pid, -ESRCH, why, sizeof(why));
		else if (!st || st == 'X' || ret == -ESRCH)
			snprintf(why, sizeof(why), "no process has pid %d (it has exited)",
				 (int)pid);
		else
			snprintf(why, sizeof(why), "%s", strerror(-ret));
		cli_error("verify: cannot read the epoll state of pid %d: %s",
			  (int)pid, why);
		image_free(&img);
		image_free(&live);
		return CLI_FAIL;
	}
	fflush(stdout);
	int diffs = kview_compare(&img, &live, STDOUT_FILENO);
	unsigned nsets = 0;
	for (uint32_t i = 0; i < live.ntargets; i++)
		nsets += live.targets[i].kind == IMAGE_KIND_EPOLL;
	if (diffs == 0)
		printf("%s: identical to pid %d (%u sets, %u watches)\n",
		       cli_esc(path),
		       (int)pid, nsets, live.nwatches);
	else if (diffs > 0)
		printf("%s: %d difference%s from pid %d\n", cli_esc(path), diffs,
		       diffs == 1 ? "" : "s", (int)pid);
	else
		cli_error("verify: comparing: %s", strerror(-diffs));
	image_free(&img);
	image_free(&live);
	return diffs == 0 ? CLI_OK : CLI_FAIL;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	pid_t pid = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((pid = cli_parse_pid(optarg)) < 0) {
				cli_error("--pid %s: not a process id", optarg);
				return CLI_USAGE;
			}
			break;
		case 'h':
			fputs(verify_usage, stdout);
			return CLI_OK;
		case 'V':
			cli_print_version();
			return CLI_OK;
		default:
			fputs(verify_usage, stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_error("verify: give one image file or directory");
		fputs(verify_usage, stderr);
		return CLI_USAGE;
	}
	char **paths;
	bool is_dir;
	int n = cli_image_paths(argv[optind], &paths, &is_dir);
	if (n < 0)
		return CLI_FAIL;
	int status = CLI_OK;
	for (int i = 0; i < n; i++)
		if (verify_one(paths[i], is_dir ? 0 : pid) != CLI_OK)
			status = CLI_FAIL;
	cli_free_paths(paths, n);
	return status;
}
