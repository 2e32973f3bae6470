// SPDX-License-Identifier: MIT
/*
 * epollcr verify: compare images with the live epoll state of processes,
 * through the process's shim when it runs one (the image epollcr dump
 * would write), else from the kernel's view alone.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "image_io.h"
#include "kview.h"
#include "recorder.h"
#include "signame.h"

static const char verify_usage[] =
	"usage: epollcr verify [--pid PID] [--kernel] [--timeout SECONDS]\n"
	"                      [--signal SIG] IMAGE|DIR\n"
	"\n"
	"Compare an image with the epoll state of PID now (default: the pid\n"
	"recorded in the image): sets, watches (tfd, events, data), targets.\n"
	"When PID runs the epollcr shim and its recorder answers, the state is\n"
	"the image the shim gives (its registry reconciled with the kernel, as\n"
	"epollcr dump writes it); otherwise, or with --kernel, it is read from\n"
	"the kernel alone, and a note says why.  Prints each difference; exit\n"
	"status 0 when identical, 1 when anything differs or cannot be read.\n"
	"A directory checks every *.img in it against its own pid.\n"
	"\n"
	"  -p, --pid PID        the process to compare with\n"
	"  -k, --kernel         read the kernel's view even when the shim runs\n"
	"  -t, --timeout SECS   how long to wait for the shim's image (default 10)\n"
	"  -s, --signal SIG     the process's checkpoint signal (default: the\n"
	"                       one its recorder thread names)\n";

struct verify_opts {
	bool kernel;		/* --kernel: never ask the shim */
	int sig;		/* --signal, 0: the recorder thread's */
	double timeout;		/* --timeout */
};

/* Diagnostics of the live view printed as notes, at most. */
#define VERIFY_NOTES_MAX 20

/*
 * Why the shim's image is not taken for pid's state, into why; "" when it
 * is.  Its watches stand for the kernel's only when the recorder read the
 * kernel (KERNEL_VIEW) and reconciled the registry (SHADOW_VIEW), and its
 * word on which file a tfd holds only when the registry lost nothing
 * (COMPLETE): else the kernel path decides.
 */
static void shim_image_unusable(const struct image *img, char *why,
				size_t why_len)
{
	const char *what = NULL;

	*why = '\0';
	if (!(img->flags & IMAGE_F_KERNEL_VIEW) ||
	    !(img->flags & IMAGE_F_SHADOW_VIEW) ||
	    (img->flags & IMAGE_F_KERNEL_ONLY))
		snprintf(why, why_len,
			 "its shim's image is not reconciled with the kernel (flags 0x%x)",
			 img->flags);
	else if (!(img->flags & IMAGE_F_COMPLETE)) {
		for (uint32_t i = 0; i < img->ndiags && !what; i++)
			if (img->diags[i].code == IMAGE_DIAG_INCOMPLETE ||
			    img->diags[i].severity == IMAGE_SEV_ERROR)
				what = img->diags[i].message;
		snprintf(why, why_len,
			 "its shim's image is marked incomplete (%s), so the shim's word is not taken",
			 what ? cli_esc(what) : "see epollcr dump");
	}
}

/*
 * The state of pid into live (initialised here): through its shim unless
 * o->kernel, else (or when the shim cannot give it) the kernel's view,
 * with a note saying why.  *via_shim tells which.  Returns 0, or -errno
 * with the reason in why (-EPROTO: the process sent an invalid image,
 * refused as dump refuses it).
 */
static int live_view(pid_t pid, const struct verify_opts *o,
		     struct image *live, bool *via_shim, char *why,
		     size_t why_len)
{
	char note[1100] = "";
	int ret;

	image_init(live);
	*via_shim = false;
	if (!o->kernel) {
		int sig = cli_shim_answers(pid, o->sig, note, sizeof(note));

		if (sig) {
			ret = cli_request_image(pid, sig, o->timeout, -1, live,
						why, why_len);
			if (ret == -EPROTO)
				return ret;
			if (ret < 0) {
				snprintf(note, sizeof(note),
					 "its shim gave no image (%s)", why);
				image_init(live);
			} else {
				shim_image_unusable(live, note, sizeof(note));
				if (!*note) {
					*via_shim = true;
					return 0;
				}
				image_free(live);
				image_init(live);
			}
		}
		cli_error("verify: note: pid %d: %s; comparing with the kernel's view alone",
			  (int)pid, note);
	}
	ret = kview_snapshot(pid, live, 0, NULL);
	if (ret < 0)
		snprintf(why, why_len, "%s", strerror(-ret));
	return ret;
}

/*
 * The live view's diagnostics (the shim's notes on what its registry and
 * the kernel disagree on, or what the kernel view could not learn): each
 * of severity error is a difference (the view is not whole), printed with
 * them; the others are notes on stderr, VERIFY_NOTES_MAX at most and a
 * count of the rest.  Returns the number of differences.
 */
static int report_diags(pid_t pid, const struct image *live)
{
	int errors = 0;
	unsigned shown = 0, hidden = 0;

	for (uint32_t i = 0; i < live->ndiags; i++) {
		const struct image_diag *d = &live->diags[i];
		const char *msg = d->message ? cli_esc(d->message) : "?";

		if (d->severity == IMAGE_SEV_ERROR) {
			printf("view of pid %d not whole: %s\n", (int)pid, msg);
			errors++;
		} else if (shown < VERIFY_NOTES_MAX) {
			cli_error("verify: note: pid %d: %s: %s", (int)pid,
				  d->severity == IMAGE_SEV_WARNING ? "warning"
								   : "info",
				  msg);
			shown++;
		} else {
			hidden++;
		}
	}
	if (hidden)
		cli_error("verify: note: pid %d: %u more diagnostics not shown (epollcr dump, then epollcr show, lists them all)",
			  (int)pid, hidden);
	return errors;
}

/* The error for a pid that has exited (st: its state letter, 0: gone). */
static void exited_error(pid_t pid, char st)
{
	char why[256];

	if (st == 'Z')
		recorder_outside_why(pid, -ESRCH, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "no process has pid %d (it has exited)",
			 (int)pid);
	cli_error("verify: cannot read the epoll state of pid %d: %s",
		  (int)pid, why);
}

static int verify_one(const char *path, pid_t pid_opt,
		      const struct verify_opts *o)
{
	struct image img, live;
	char err[512], why[1024];
	bool via_shim;

	if (image_read_file_flags(path, &img, IMAGE_READ_ANY_FD, err, sizeof(err)) < 0) {
		cli_error("%s: %s", cli_esc(path), cli_esc(err));
		return CLI_FAIL;
	}
	pid_t pid = pid_opt > 0 ? pid_opt : img.proc.pid;
	/*
	 * A zombie's /proc/PID/fd reads as empty: every set of the image
	 * would be reported missing, as if the live process had closed them.
	 */
	char st = recorder_pid_state(pid);
	if (st == 'Z' || st == 'X' || !st) {
		exited_error(pid, st);
		image_free(&img);
		return CLI_FAIL;
	}
	int ret = live_view(pid, o, &live, &via_shim, why, sizeof(why));
	st = recorder_pid_state(pid);
	if (ret == -EPROTO) {
		cli_error("verify: %s", cli_esc(why));
	} else if (ret == -ESRCH || st == 'Z' || st == 'X' || !st) {
		exited_error(pid, st);
		ret = ret < 0 ? ret : -ESRCH;
	} else if (ret < 0) {
		cli_error("verify: cannot read the epoll state of pid %d: %s",
			  (int)pid, cli_esc(why));
	}
	if (ret < 0) {
		image_free(&img);
		image_free(&live);
		return CLI_FAIL;
	}
	fflush(stdout);
	int diffs = kview_compare(&img, &live, STDOUT_FILENO);
	if (diffs >= 0)
		diffs += report_diags(pid, &live);
	unsigned nsets = 0;
	for (uint32_t i = 0; i < live.ntargets; i++)
		nsets += live.targets[i].kind == IMAGE_KIND_EPOLL;
	if (diffs == 0)
		printf("%s: identical to pid %d %s(%u sets, %u watches%s)\n",
		       cli_esc(path), (int)pid, via_shim ? "via its shim " : "",
		       nsets, live.nwatches, via_shim ? "" : "; kernel view");
	else if (diffs > 0)
		printf("%s: %d difference%s from pid %d %s\n", cli_esc(path),
		       diffs, diffs == 1 ? "" : "s", (int)pid,
		       via_shim ? "via its shim" : "(kernel view)");
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
		{ "kernel", no_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ "signal", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct verify_opts o = { .timeout = 10 };
	pid_t pid = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:kt:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o.kernel = true;
			break;
		case 't':
			if (!cli_parse_timeout(optarg, &o.timeout))
				return CLI_USAGE;
			break;
		case 's':
			if (!cli_parse_signal(optarg, &o.sig))
				return CLI_USAGE;
			break;
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
		if (verify_one(paths[i], is_dir ? 0 : pid, &o) != CLI_OK)
			status = CLI_FAIL;
	cli_free_paths(paths, n);
	return status;
}
