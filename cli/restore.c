// SPDX-License-Identifier: MIT
/*
 * epollcr restore: rebuild an image's epoll sets and watches in this
 * process, then hold them (--hold), hand them to a program (--exec), or
 * just report and exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "image_io.h"
#include "restore.h"

static const char restore_usage[] =
	"usage: epollcr restore [--hold] [--targets=recreate|existing]\n"
	"                       [--missing=fail|skip] IMAGE\n"
	"       epollcr restore --exec [--targets=recreate|existing]\n"
	"                       [--missing=fail|skip] IMAGE CMD [ARG...]\n"
	"\n"
	"Rebuild every epoll set of IMAGE at its original fd number, with every\n"
	"watch's original fd number, events, data and nesting, then verify the\n"
	"result against /proc/self/fdinfo.  All or nothing.  No privilege needed.\n"
	"\n"
	"  --targets=recreate  create the watched files too (default): sockets\n"
	"                      bound/listening, pipes, eventfd, timerfd, signalfd\n"
	"  --targets=existing  the watched files are already at their fds\n"
	"  --missing=fail      fail when a target cannot be recreated (default)\n"
	"  --missing=skip      leave such watches out and say so\n"
	"  --hold              after success print 'ready' and wait for SIGTERM\n"
	"                      or SIGINT, so the state can be inspected\n"
	"  --exec              after success, exec CMD (given after IMAGE) with the\n"
	"                      restored fds;\n"
	"                      those the image recorded close-on-exec are closed\n"
	"                      by the exec, as in the original process; the list\n"
	"                      of restored fds is in EPOLLCR_RESTORED_FDS\n"
	"  --trust-image       run as root on an image of another user: allow\n"
	"                      ports below 1024, unix socket paths outside the\n"
	"                      working directory, other socket families\n";

/* Clear FD_CLOEXEC where the image says the fd was not close-on-exec. */
static int prepare_exec(const struct image *img)
{
	size_t cap = (size_t)img->nfds * 12 + 1, len = 0;
	char *list = malloc(cap);
	if (!list)
		return -ENOMEM;
	list[0] = '\0';
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct image_fd *f = &img->fds[i];
		int flags = fcntl(f->fd, F_GETFD);
		if (flags < 0)
			continue;
		if (!(f->fd_flags & FD_CLOEXEC))
			fcntl(f->fd, F_SETFD, flags & ~FD_CLOEXEC);
		len += (size_t)snprintf(list + len, cap - len, "%s%d",
					len ? "," : "", f->fd);
	}
	setenv("EPOLLCR_RESTORED_FDS", list, 1);
	free(list);
	return 0;
}

static int hold(void)
{
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("ready\n");
	fflush(stdout);
	while (sigwait(&set, &sig) != 0)
		;
	return CLI_OK;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hold", no_argument, NULL, 'H' },
		{ "exec", no_argument, NULL, 'e' },
		{ "targets", required_argument, NULL, 't' },
		{ "missing", required_argument, NULL, 'm' },
		{ "trust-image", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct epollcr_restore_options o = {
		.targets = EPOLLCR_TARGETS_RECREATE,
		.missing = EPOLLCR_MISSING_FAIL,
		.report_fd = STDERR_FILENO,
	};
	bool do_hold = false, do_exec = false;
	unsigned trust = 0;
	int c;
	optind = 1;
	/* '+': stop at the first non-option, so --exec CMD keeps its args. */
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			do_hold = true;
			break;
		case 'e':
			do_exec = true;
			break;
		case 'T':
			trust = RESTORE_TRUST_IMAGE;
			break;
		case 't':
			if (!strcmp(optarg, "recreate"))
				o.targets = EPOLLCR_TARGETS_RECREATE;
			else if (!strcmp(optarg, "existing"))
				o.targets = EPOLLCR_TARGETS_EXISTING;
			else {
				cli_error("--targets=%s: give recreate or existing", optarg);
				return CLI_USAGE;
			}
			break;
		case 'm':
			if (!strcmp(optarg, "fail"))
				o.missing = EPOLLCR_MISSING_FAIL;
			else if (!strcmp(optarg, "skip"))
				o.missing = EPOLLCR_MISSING_SKIP;
			else {
				cli_error("--missing=%s: give fail or skip", optarg);
				return CLI_USAGE;
			}
			break;
		case 'h':
			fputs(restore_usage, stdout);
			return CLI_OK;
		case 'V':
			cli_print_version();
			return CLI_OK;
		default:
			fputs(restore_usage, stderr);
			return CLI_USAGE;
		}
		if (do_exec)
			break;
	}
	if (do_hold && do_exec) {
		cli_error("restore: --hold and --exec exclude each other");
		return CLI_USAGE;
	}
	/* IMAGE comes first, then with --exec the command. */
	if (optind >= argc || (!do_exec && optind != argc - 1) ||
	    (do_exec && optind + 1 >= argc)) {
		cli_error(do_exec ? "restore: give IMAGE and then the command to exec"
				  : "restore: give one image file");
		fputs(restore_usage, stderr);
		return CLI_USAGE;
	}
	const char *path = argv[optind];
	struct image img;
	char err[1024];
	if (image_read_file(path, &img, err, sizeof(err)) < 0) {
		cli_error("%s: %s", cli_esc(path), cli_esc(err));
		return CLI_FAIL;
	}
	uint32_t diags_before = img.ndiags;
	if (restore_image_trust(&img, &o, trust, err, sizeof(err)) < 0) {
		cli_error("restore of %s failed: %s", cli_esc(path), err);
		image_free(&img);
		return CLI_FAIL;
	}
	unsigned nsets = 0;
	for (uint32_t i = 0; i < img.ntargets; i++)
		nsets += img.targets[i].kind == IMAGE_KIND_EPOLL;
	unsigned left_out = 0;
	for (uint32_t i = diags_before; i < img.ndiags; i++)
		left_out += img.diags[i].code == IMAGE_DIAG_UNRESTORABLE &&
			    img.diags[i].tfd >= 0;
	fprintf(stderr, "epollcr: restored %u epoll sets and %u of %u watches from %s (pid %d), verified against /proc/self/fdinfo\n",
		nsets, img.nwatches - left_out, img.nwatches, cli_esc(path),
		(int)img.proc.pid);
	if (do_exec) {
		prepare_exec(&img);
		image_free(&img);
		execvp(argv[optind + 1], argv + optind + 1);
		cli_error("restore: cannot execute %s: %m", argv[optind + 1]);
		return 127;
	}
	image_free(&img);
	return do_hold ? hold() : CLI_OK;
}
