// SPDX-License-Identifier: MIT
/* epollcr_shadow_print(): the registry as text, for tests and debugging. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "epollcr.h"
#include "registry.h"
#include "shim.h"

struct print_ctx {
	FILE *out;
	int epfd;
};

static int print_watch(void *ctx, const struct reg_watch_view *w)
{
	struct print_ctx *p = ctx;
	fprintf(p->out, "watch %d %d events 0x%x data 0x%llx %s", p->epfd,
		w->tfd, w->events, (unsigned long long)w->data,
		w->uncertain ? "uncertain" : "certain");
	if (!w->uncertain && registry_file_at(w->tfd) == w->file)
		fprintf(p->out, " fd %d", w->tfd);
	fputc('\n', p->out);
	return 0;
}

struct set_fds {
	int fds[64];
	unsigned n;
};

static void collect_fd(void *ctx, int fd)
{
	struct set_fds *s = ctx;
	s->fds[s->n++] = fd;
}

static int print_set(void *ctx, struct reg_set *set,
		     const struct reg_file *set_file)
{
	struct print_ctx *p = ctx;
	struct set_fds fds = { .n = 0 };
	registry_fds_of(set_file, collect_fd, &fds, 64);
	for (unsigned i = 0; i < fds.n; i++) {
		p->epfd = fds.fds[i];
		fprintf(p->out, "set %d flags 0x%x%s%s\n", p->epfd,
			registry_set_flags(set),
			registry_incomplete() ? " incomplete" : "",
			registry_set_shared(set) ? " shared" : "");
		registry_walk_watches(set, print_watch, p);
	}
	return 0;
}

SHIM_API int epollcr_shadow_print(int fd)
{
	shim_adopt_inherited();
	int saved_busy = shim_busy;
	shim_busy = 1;
	int dupfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 3);
	FILE *out = dupfd >= 0 ? fdopen(dupfd, "w") : NULL;
	int ret = 0;
	if (!out) {
		ret = -errno;
		if (dupfd >= 0)
			REAL(close)(dupfd);
		goto out;
	}
	struct print_ctx p = { .out = out, .epfd = -1 };
	registry_walk_sets(print_set, &p);
	if (fclose(out) != 0)
		ret = -errno;
out:
	shim_busy = saved_busy;
	return ret;
}
