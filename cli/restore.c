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
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "image_io.h"
#include "restore.h"

static const char restore_usage[] =
	"usage: epollcr restore [--hold] [--targets=recreate|existing]\n"
	"                       [--missing=fail|skip] [--force-bind]\n"
	"                       [--trust-image] IMAGE\n"
	"       epollcr restore --exec [--targets=recreate|existing]\n"
	"                       [--missing=fail|skip] [--force-bind]\n"
	"                       [--trust-image] IMAGE [--] CMD [ARG...]\n"
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
	"  --force-bind        bind an inet address even where another process\n"
	"                      has it (the live program: with SO_REUSEPORT the\n"
	"                      restored listener would take part of its\n"
	"                      connections); refused by default\n"
	"  --hold              after success print 'ready' and wait for SIGTERM\n"
	"                      or SIGINT, so the state can be inspected\n"
	"  --exec              after success, exec CMD (given after IMAGE) with\n"
	"                      every restored fd open (and no other fd's flags\n"
	"                      changed); EPOLLCR_RESTORED_FDS lists them as\n"
	"                      FD:KIND[:kept],... (see epollcr(1))\n"
	"  --trust-image       run as root on an image of another user: allow\n"
	"                      ports below 1024, unix socket paths outside the\n"
	"                      working directory, other socket families\n"
	"\n"
	"The soft RLIMIT_NOFILE is raised (up to the hard limit) when the\n"
	"image's fd numbers need it.  Unix socket files the restore binds are\n"
	"removed when it fails or ends (not with --exec: CMD gets them).\n";

/* Room for the temporaries above the image's numbers (docs/restore.md). */
#define RESTORE_NOFILE_SLACK 64

/*
 * Raise the soft RLIMIT_NOFILE so that every number of the image and the
 * restore's temporaries above them fit, as far as the hard limit allows.
 * Fails (with a message naming the number needed) only when the hard
 * limit is below the image's own highest number + 1.
 */
static int raise_nofile(const struct image *img)
{
	int32_t max_fd = image_max_fd(img);
	struct rlimit rl;
	rlim_t need, want;

	if (max_fd < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	need = (rlim_t)max_fd + 1;
	want = need + img->ntargets + RESTORE_NOFILE_SLACK;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		cli_error("restore: the image uses fd %d: RLIMIT_NOFILE must be at least %llu, and the hard limit is %llu (raise it, e.g. prlimit --nofile=%llu)",
			  (int)max_fd, (unsigned long long)need,
			  (unsigned long long)rl.rlim_max,
			  (unsigned long long)want);
		return -1;
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		want = rl.rlim_max;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		cli_error("restore: the image uses fd %d: cannot raise RLIMIT_NOFILE to %llu: %m",
			  (int)max_fd, (unsigned long long)want);
		return -1;
	}
	return 0;
}

/*
 * Hand every restored fd to the command: clear FD_CLOEXEC on each (no
 * other fd is touched) and list them in EPOLLCR_RESTORED_FDS as
 * FD:KIND, with ":kept" for an fd that only keeps a watched file alive.
 */
static int prepare_exec(const struct restore_result *res)
{
	/* "2147483647:signalfd:kept," is 25 bytes: room for the longest. */
	size_t cap = (size_t)res->nfds * 32 + 1, len = 0;
	char *list = malloc(cap);

	if (!list)
		return -ENOMEM;
	list[0] = '\0';
	for (uint32_t i = 0; i < res->nfds; i++) {
		const struct restore_fd *f = &res->fds[i];

		if (fcntl(f->fd, F_SETFD, 0) < 0) {
			int err = errno;

			cli_error("restore: fd %d: cannot clear close-on-exec: %s",
				  f->fd, strerror(err));
			free(list);
			return -err;
		}
		len += (size_t)snprintf(list + len, cap - len, "%s%d:%s%s",
					len ? "," : "", f->fd,
					image_kind_name(f->kind),
					f->kept ? ":kept" : "");
	}
	if (setenv("EPOLLCR_RESTORED_FDS", list, 1) < 0) {
		free(list);
		return -ENOMEM;
	}
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
		{ "force-bind", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct epollcr_restore_options o = {
		.targets = EPOLLCR_TARGETS_RECREATE,
		.missing = EPOLLCR_MISSING_FAIL,
		.report_fd = STDERR_FILENO,
	};
	struct restore_result res = { 0 };
	struct restore_ext ext = { .force_bind = false, .result = &res };
	bool do_hold = false, do_exec = false;
	int c, cmd;
	optind = 1;
	/* '+': stop at IMAGE, the first non-option: CMD keeps its options. */
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			do_hold = true;
			break;
		case 'e':
			do_exec = true;
			break;
		case 'T':
			ext.flags |= RESTORE_TRUST_IMAGE;
			break;
		case 'f':
			ext.force_bind = true;
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
	}
	if (do_hold && do_exec) {
		cli_error("restore: --hold and --exec exclude each other");
		return CLI_USAGE;
	}
	/* IMAGE comes first, then with --exec the command, maybe after --. */
	cmd = optind + 1;
	if (do_exec && cmd < argc && !strcmp(argv[cmd], "--"))
		cmd++;
	if (optind >= argc || (!do_exec && optind != argc - 1) ||
	    (do_exec && cmd >= argc)) {
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
	if (raise_nofile(&img) < 0) {
		image_free(&img);
		return CLI_FAIL;
	}
	if (restore_image_ex(&img, &o, &ext, err, sizeof(err)) < 0) {
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
	image_free(&img);
	if (do_exec) {
		if (prepare_exec(&res) == 0) {
			execvp(argv[cmd], argv + cmd);
			cli_error("restore: cannot execute %s: %m",
				  cli_esc(argv[cmd]));
		}
		restore_remove_files(&res);
		restore_result_free(&res);
		return 127;
	}
	if (do_hold)
		hold();
	/* The sockets go with this process: so do their files. */
	restore_remove_files(&res);
	restore_result_free(&res);
	return CLI_OK;
}
