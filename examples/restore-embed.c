// SPDX-License-Identifier: MIT
/*
 * restore-embed: a program that embeds the epollcr replayer through the
 * installed header and library, as a checkpointer would.
 *
 *   restore-embed [--existing] [--skip] [--hold] IMAGE
 *       rebuild the epoll sets and watches of IMAGE in this process with
 *       epollcr_restore(), then print each epoll fd and its watches as the
 *       kernel shows them (/proc/self/fdinfo).  --existing: the watched
 *       files are already open at their fds (EPOLLCR_TARGETS_EXISTING);
 *       --skip: leave out watches whose file cannot be recreated
 *       (EPOLLCR_MISSING_SKIP).  --hold: then print "ready" and wait for
 *       SIGTERM or SIGINT, so that the restored state can be inspected
 *       (epollcr verify --pid PID IMAGE).
 *   restore-embed --version
 *       the version of the header it was built with and of the library it
 *       runs with.
 *
 * Build it against an installed epollcr:
 *   cc -o restore-embed restore-embed.c $(pkg-config --cflags --libs epollcr)
 *
 * Linking libepollcr also interposes its wrappers in this program, so the
 * restored process can itself be dumped with `epollcr dump PID`.
 *
 * Exit status: 0 restored, 1 the restore failed, 2 usage error.
 */
#define _POSIX_C_SOURCE 200809L /* readlink, sigwait under -std=c11 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <epollcr.h>

#define MAX_SETS 4096		/* epoll fds listed after a restore */
#define MAX_WATCHES_SHOWN 16	/* watch lines printed per set */

static const char usage[] =
	"usage: restore-embed [--existing] [--skip] [--hold] IMAGE\n"
	"       restore-embed --version\n";

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/*
 * The epoll fds of this process, ascending, at most max_sets of them, into
 * sets.  Returns how many, or -1 when /proc/self/fd cannot be read.
 */
static int list_epoll_fds(int *sets, int max_sets)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!dir)
		return -1;
	while (n < max_sets && (de = readdir(dir))) {
		char path[300], link[64];
		ssize_t len;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (!strcmp(link, "anon_inode:[eventpoll]"))
			sets[n++] = atoi(de->d_name);
	}
	closedir(dir);
	qsort(sets, (size_t)n, sizeof(*sets), cmp_int);
	return n;
}

/*
 * Print the watches of epoll fd epfd from /proc/self/fdinfo: a count, then
 * "tfd T events 0xE data 0xD" for the first MAX_WATCHES_SHOWN.  Returns the
 * number of watches, or -1 when the fdinfo cannot be read.
 */
static int print_set(int epfd)
{
	char path[64], line[256];
	int nwatches = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		nwatches += !strncmp(line, "tfd:", 4);
	printf("epoll fd %d: %d watch%s\n", epfd, nwatches,
	       nwatches == 1 ? "" : "es");
	rewind(f);
	for (int shown = 0; shown < MAX_WATCHES_SHOWN &&
			    fgets(line, sizeof(line), f);) {
		unsigned int events;
		unsigned long long data;
		int tfd;

		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd,
			   &events, &data) != 3)
			continue;
		printf("  tfd %d events 0x%x data 0x%llx\n", tfd, events, data);
		shown++;
	}
	if (nwatches > MAX_WATCHES_SHOWN)
		printf("  ... %d more\n", nwatches - MAX_WATCHES_SHOWN);
	fclose(f);
	return nwatches;
}

/* Print "ready", then wait for SIGTERM or SIGINT. */
static void hold(void)
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
}

int main(int argc, char **argv)
{
	struct epollcr_restore_options options = {
		.targets = EPOLLCR_TARGETS_RECREATE,
		.missing = EPOLLCR_MISSING_FAIL,
		.report_fd = STDERR_FILENO,
	};
	const char *image = NULL;
	char err[1024];
	int sets[MAX_SETS], nsets, do_hold = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--version")) {
			printf("restore-embed: header %s, library %s\n",
			       EPOLLCR_VERSION_STRING, epollcr_version());
			return 0;
		} else if (!strcmp(argv[i], "--existing")) {
			options.targets = EPOLLCR_TARGETS_EXISTING;
		} else if (!strcmp(argv[i], "--skip")) {
			options.missing = EPOLLCR_MISSING_SKIP;
		} else if (!strcmp(argv[i], "--hold")) {
			do_hold = 1;
		} else if (argv[i][0] == '-' || image) {
			fputs(usage, stderr);
			return 2;
		} else {
			image = argv[i];
		}
	}
	if (!image) {
		fputs(usage, stderr);
		return 2;
	}
	if (epollcr_restore(image, &options, err, sizeof(err)) < 0) {
		fprintf(stderr, "restore-embed: %s\n", err);
		return 1;
	}
	nsets = list_epoll_fds(sets, MAX_SETS);
	if (nsets < 0) {
		fprintf(stderr, "restore-embed: cannot list /proc/self/fd\n");
		nsets = 0;
	}
	printf("restore-embed: restored %s with libepollcr %s: %d epoll fd%s\n",
	       image, epollcr_version(), nsets, nsets == 1 ? "" : "s");
	for (int i = 0; i < nsets; i++)
		if (print_set(sets[i]) < 0)
			fprintf(stderr, "restore-embed: cannot read the fdinfo of epoll fd %d\n",
				sets[i]);
	fflush(stdout);
	if (do_hold)
		hold();
	return 0;
}
