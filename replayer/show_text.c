// SPDX-License-Identifier: MIT
/*
 * `epollcr show` as text for people: the header, every target with its fds,
 * every set with its watches, the nesting tree and the diagnostics.
 */
#include "show_internal.h"

/* ---- text --------------------------------------------------------------- */

static void text_backtrace(struct text_ctx *c, const char *title,
			   uint32_t id, const char *indent)
{
	const struct image_backtrace *bt = backtrace_of(c->img, id);

	if (id == IMAGE_NONE)
		return;
	out_printf(c->o, "%s%s:\n", indent, title);
	if (!bt) {
		out_printf(c->o, "%s  backtrace %u is not in the image\n",
			   indent, id);
		return;
	}
	for (uint32_t i = 0; bt->frames && i < bt->nframes; i++) {
		const struct image_frame *f = &bt->frames[i];
		size_t n = format_frame(c->img, f,
					dm_lookup(&c->dm, f->symbol), c->frame);
		const char *where = a2l_lookup(&c->a2l, f->module, f->offset);

		out_printf(c->o, "%s  #%u ", indent, i);
		out_text_bytes(c->o, c->frame, n);
		if (where) {
			out_puts(c->o, " at ");
			out_text(c->o, where);
		}
		out_puts(c->o, "\n");
	}
}

/* "fd 5 (cloexec), fd 9" or "no fd". */
static void text_fds(struct text_ctx *c, uint32_t id)
{
	const struct show_index *ix = &c->ix;

	if (id == IMAGE_NONE || id > c->img->ntargets ||
	    ix->fd_start[id] == ix->fd_start[id + 1]) {
		out_puts(c->o, "no fd");
		return;
	}
	for (uint32_t i = ix->fd_start[id]; i < ix->fd_start[id + 1]; i++) {
		const struct image_fd *f = &c->img->fds[ix->fd_list[i]];

		out_printf(c->o, "%sfd %d%s", i > ix->fd_start[id] ? ", " : "",
			   f->fd, f->fd_flags & FD_CLOEXEC ? " (cloexec)" : "");
	}
}

static void text_socket(struct text_ctx *c, const struct image_socket *s)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} flags[] = {
		{ IMAGE_SOCK_LISTENING, "listening" },
		{ IMAGE_SOCK_CONNECTED, "connected" },
		{ IMAGE_SOCK_ENDED, "ended" },
		{ IMAGE_SOCK_REUSEADDR, "reuseaddr" },
		{ IMAGE_SOCK_REUSEPORT, "reuseport" },
		{ IMAGE_SOCK_BOUND, "bound" },
		{ IMAGE_SOCK_V6ONLY, "v6only" },
		{ IMAGE_SOCK_PAIR, "socketpair" },
	};
	char a[32], b[32], addr[IMAGE_MAX_SOCKADDR * 2 + 64];
	size_t n;

	out_printf(c->o, " %s %s protocol %u",
		   domain_name(s->domain, a, sizeof(a)),
		   socktype_name(s->type, b, sizeof(b)), s->protocol);
	if (s->addr_len) {
		n = format_sockaddr(s->addrp, s->addr_len, addr, sizeof(addr));
		out_puts(c->o, ", address ");
		out_text_bytes(c->o, addr, n);
	}
	if (s->peer_len) {
		n = format_sockaddr(s->peerp, s->peer_len, addr, sizeof(addr));
		out_puts(c->o, ", peer ");
		out_text_bytes(c->o, addr, n);
	}
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (s->flags & flags[i].bit)
			out_printf(c->o, ", %s", flags[i].name);
	if (s->backlog >= 0)
		out_printf(c->o, ", backlog %d", s->backlog);
	if (s->file_mode)
		out_printf(c->o, ", file mode 0%o", s->file_mode & 07777);
	if (s->pair) {
		out_printf(c->o, ", other end target %u (", s->pair);
		text_fds(c, s->pair);
		out_puts(c->o, ")");
	}
	if (s->pending)
		out_printf(c->o, ", %u bytes pending", s->pending);
}

/* Nanoseconds as seconds with 9 decimals. */
static void text_ns(struct out *o, const char *what, uint64_t ns)
{
	out_printf(o, ", %s %" PRIu64 ".%09" PRIu64 "s", what,
		   ns / 1000000000u, ns % 1000000000u);
}

static void text_target_kind(struct text_ctx *c, const struct image_target *t)
{
	char buf[64];

	switch (t->kind) {
	case IMAGE_KIND_SOCKET:
		text_socket(c, &t->u.sock);
		break;
	case IMAGE_KIND_PIPE:
		out_printf(c->o, " %s end, ino %" PRIu64,
			   t->u.pipe.write_end ? "write" : "read",
			   t->u.pipe.ino);
		if (t->u.pipe.peer) {
			out_printf(c->o, ", peer target %u (", t->u.pipe.peer);
			text_fds(c, t->u.pipe.peer);
			out_puts(c->o, ")");
		}
		if (t->u.pipe.pending)
			out_printf(c->o, ", %u bytes pending",
				   t->u.pipe.pending);
		break;
	case IMAGE_KIND_EVENTFD:
		out_printf(c->o, " count %" PRIu64 "%s", t->u.efd.count,
			   t->u.efd.semaphore ? ", semaphore" : "");
		break;
	case IMAGE_KIND_TIMERFD:
		out_printf(c->o, " %s",
			   clock_name(t->u.tfd.clockid, buf, sizeof(buf)));
		text_ns(c->o, "value", t->u.tfd.value_ns);
		text_ns(c->o, "interval", t->u.tfd.interval_ns);
		out_printf(c->o, ", ticks %" PRIu64 "%s%s", t->u.tfd.ticks,
			   t->u.tfd.settime_flags & 1 ? ", abstime" : "",
			   t->u.tfd.settime_flags & 2 ? ", cancel-on-set" : "");
		break;
	case IMAGE_KIND_SIGNALFD:
		out_printf(c->o, " mask 0x%" PRIx64, t->u.sfd.mask);
		for (int s = 1; s <= 64; s++)
			if (t->u.sfd.mask & (1ull << (s - 1)))
				out_printf(c->o, " %s",
					   signal_name(s, buf, sizeof(buf)));
		break;
	case IMAGE_KIND_EPOLL:
		out_printf(c->o, " set, %u watches", t->u.ep.nwatches);
		break;
	default:
		break;
	}
}

static void text_target(struct text_ctx *c, uint32_t id, const char *indent)
{
	const struct image_target *t = target_of(c->img, id);

	out_printf(c->o, "%starget ", indent);
	if (!t) {
		out_puts(c->o, id ? "not in the image\n" : "unknown\n");
		return;
	}
	out_printf(c->o, "%u: %s", id, image_kind_name(t->kind));
	text_target_kind(c, t);
	out_puts(c->o, "; ");
	text_fds(c, id);
	out_puts(c->o, "; path ");
	out_text(c->o, t->path);
	out_printf(c->o, ", file flags 0x%x\n", t->file_flags);
}

static void text_watch(struct text_ctx *c, const struct image_watch *w)
{
	char ev[256];

	format_events(w->events, ev, sizeof(ev));
	out_printf(c->o, "  tfd %d: %s (0x%x), data 0x%" PRIx64 ", open_fd ",
		   w->tfd, ev, w->events, w->data);
	if (w->open_fd >= 0)
		out_printf(c->o, "%d", w->open_fd);
	else
		out_puts(c->o, "none");
	out_puts(c->o, " [");
	bool first = true;
	for (size_t i = 0; i < sizeof(watch_flag_names) /
				       sizeof(watch_flag_names[0]);
	     i++) {
		if (!(w->flags & watch_flag_names[i].bit))
			continue;
		out_printf(c->o, "%s%s", first ? "" : " ",
			   watch_flag_names[i].name);
		first = false;
	}
	out_puts(c->o, "]\n");
	text_target(c, w->target, "    ");
	text_backtrace(c, "added at", w->bt_add, "    ");
	text_backtrace(c, "last modified at", w->bt_mod, "    ");
}

static void text_sets(struct text_ctx *c)
{
	const struct image *img = c->img;

	for (uint32_t id = 1; id <= img->ntargets; id++) {
		const struct image_target *t = &img->targets[id - 1];
		uint32_t from = c->ix.w_start[id], to = c->ix.w_start[id + 1];

		if (t->kind != IMAGE_KIND_EPOLL)
			continue;
		out_printf(c->o, "\nepoll set %u: ", id);
		text_fds(c, id);
		out_printf(c->o, "; %u watch%s\n", to - from,
			   to - from == 1 ? "" : "es");
		for (uint32_t i = from; i < to; i++)
			text_watch(c, &img->watches[c->ix.w_list[i]]);
	}
}

static void text_tree_line(struct text_ctx *c, uint32_t id, unsigned depth,
			   bool again)
{
	int64_t fd = lowest_fd(c->img, &c->ix, id);

	out_printf(c->o, "%*sset %u", 2 + 2 * (int)depth, "", id);
	if (fd >= 0)
		out_printf(c->o, " (fd %" PRId64 ")", fd);
	else
		out_puts(c->o, " (no fd)");
	out_puts(c->o, again ? " (see above)\n" : "\n");
}

/*
 * The nesting tree: each set not nested anywhere, its nested sets
 * indented below.  Iterative; a set printed once is "see above" after, so
 * the output stays linear in sets + watches even for a cyclic model.
 */
static void text_tree(struct text_ctx *c)
{
	const struct image *img = c->img;
	struct frame {
		uint32_t id, next;
	} stack[TREE_MAX_DEPTH];
	bool *printed = calloc((size_t)img->ntargets + 1, sizeof(bool));
	bool any = false;

	if (!printed)
		return;
	out_puts(c->o, "\nnesting:\n");
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t root = 1; root <= img->ntargets; root++) {
			if (img->targets[root - 1].kind != IMAGE_KIND_EPOLL ||
			    printed[root] || (!pass && c->ix.nparents[root]))
				continue;
			unsigned depth = 0;
			any = true;
			printed[root] = true;
			text_tree_line(c, root, 0, false);
			stack[0] = (struct frame){ root, c->ix.w_start[root] };
			while (depth < TREE_MAX_DEPTH) {
				struct frame *f = &stack[depth];
				if (f->next >= c->ix.w_start[f->id + 1]) {
					if (!depth--)
						break;
					continue;
				}
				const struct image_watch *w =
					&img->watches[c->ix.w_list[f->next++]];
				const struct image_target *t =
					target_of(img, w->target);
				if (!t || t->kind != IMAGE_KIND_EPOLL)
					continue;
				text_tree_line(c, w->target, depth + 1,
					       printed[w->target]);
				if (printed[w->target])
					continue;
				printed[w->target] = true;
				/* too deep: what it holds starts a new tree */
				if (depth + 1 == TREE_MAX_DEPTH)
					continue;
				stack[++depth] = (struct frame){
					w->target, c->ix.w_start[w->target]
				};
			}
		}
	}
	if (!any)
		out_puts(c->o, "  (no epoll sets)\n");
	free(printed);
}

static void text_diags(struct text_ctx *c)
{
	const struct image *img = c->img;

	out_printf(c->o, "\ndiagnostics: %u\n", img->ndiags);
	for (uint32_t i = 0; i < img->ndiags; i++) {
		const struct image_diag *d = &img->diags[i];

		out_printf(c->o, "  %s (%s)", severity_name(d->severity),
			   diag_code_name(d->code));
		if (d->epfd >= 0)
			out_printf(c->o, " epfd %d", d->epfd);
		if (d->tfd >= 0)
			out_printf(c->o, " tfd %d", d->tfd);
		if (d->path) {
			out_puts(c->o, " ");
			out_text(c->o, d->path);
		}
		out_puts(c->o, ": ");
		out_text(c->o, d->message ? d->message : "");
		out_puts(c->o, "\n");
		text_backtrace(c, "backtrace", d->bt, "    ");
	}
}

static void text_header(struct text_ctx *c)
{
	const struct image *img = c->img;
	const struct image_process *p = &img->proc;
	char when[64] = "?";
	struct tm tm;
	time_t sec = (time_t)p->time_sec;
	uint32_t nsets = 0;

	if ((uint64_t)sec == p->time_sec && gmtime_r(&sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	for (uint32_t i = 0; i < img->ntargets; i++)
		nsets += img->targets[i].kind == IMAGE_KIND_EPOLL;
	out_printf(c->o, "epollcr image, format %d%s%s%s%s%s\n", IMAGE_VERSION,
		   img->flags & IMAGE_F_COMPLETE ? ", complete" : ", INCOMPLETE",
		   img->flags & IMAGE_F_KERNEL_VIEW ? ", kernel view" : "",
		   img->flags & IMAGE_F_SHADOW_VIEW ? ", shadow view" : "",
		   img->flags & IMAGE_F_KERNEL_ONLY
			   ? ", kernel-only (read from outside, no shim)"
			   : "",
		   img->flags & IMAGE_F_UNSETTLED
			   ? ", UNSETTLED (no two reads agreed)"
			   : "");
	out_printf(c->o, "process: pid %d, uid %u, exe ", p->pid, p->uid);
	out_text(c->o, p->exe);
	out_puts(c->o, ", comm ");
	out_text(c->o, p->comm);
	out_printf(c->o, "\ndumped: %s.%09u UTC by epollcr ", when,
		   p->time_nsec);
	out_text(c->o, p->version);
	out_printf(c->o, ", RLIMIT_NOFILE %u\n", p->nofile_limit);
	out_printf(c->o, "contents: %u epoll sets, %u watches, %u targets, %u fds, %u diagnostics, %u backtraces, %u modules\n",
		   nsets, img->nwatches, img->ntargets, img->nfds, img->ndiags,
		   img->nbacktraces, img->nmodules);
}

int show_image_text(const struct image *img, int out_fd, unsigned flags)
{
	struct text_ctx c;

	if (show_ctx_open(&c, img, out_fd) < 0)
		return -ENOMEM;
	if (!(flags & SHOW_NO_ADDR2LINE)) {
		a2l_build(img, &c.a2l);
		dm_build(img, &c.dm);
	}
	text_header(&c);
	text_sets(&c);
	text_tree(&c);
	text_diags(&c);
	return show_ctx_close(&c);
}
