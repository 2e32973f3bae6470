// SPDX-License-Identifier: MIT
/*
 * `epollcr show --json`: the image as one JSON object for programs
 * (contract in docs/image-format.md).
 */
#include "show_internal.h"

/* ---- JSON --------------------------------------------------------------- */

static void json_backtrace(struct text_ctx *c, uint32_t id)
{
	const struct image_backtrace *bt = backtrace_of(c->img, id);

	out_puts(c->o, "[");
	for (uint32_t i = 0; bt && bt->frames && i < bt->nframes; i++) {
		size_t n = format_frame(c->img, &bt->frames[i],
					bt->frames[i].symbol, c->frame);

		if (i)
			out_puts(c->o, ", ");
		out_json_bytes(c->o, c->frame, n);
	}
	out_puts(c->o, "]");
}

/* [5, 9]: the fd numbers of target id, lowest first. */
static void json_fds(struct text_ctx *c, uint32_t id)
{
	const struct show_index *ix = &c->ix;

	out_puts(c->o, "[");
	if (id != IMAGE_NONE && id <= c->img->ntargets)
		for (uint32_t i = ix->fd_start[id]; i < ix->fd_start[id + 1];
		     i++)
			out_printf(c->o, "%s%d", i > ix->fd_start[id] ? ", " : "",
				   c->img->fds[ix->fd_list[i]].fd);
	out_puts(c->o, "]");
}

static void json_sockaddr(struct out *o, const char *key,
			  const struct sockaddr_storage *ss, uint32_t len)
{
	char addr[IMAGE_MAX_SOCKADDR * 2 + 64];

	out_printf(o, ", \"%s\": ", key);
	if (!len) {
		out_puts(o, "null");
		return;
	}
	out_json_bytes(o, addr, format_sockaddr(ss, len, addr, sizeof(addr)));
}

static void json_target_kind(struct text_ctx *c, const struct image_target *t)
{
	struct out *o = c->o;
	char a[32], b[32];

	switch (t->kind) {
	case IMAGE_KIND_SOCKET: {
		const struct image_socket *s = &t->u.sock;

		out_printf(o, ", \"domain\": \"%s\", \"type\": \"%s\", \"protocol\": %u",
			   domain_name(s->domain, a, sizeof(a)),
			   socktype_name(s->type, b, sizeof(b)), s->protocol);
		json_sockaddr(o, "address", s->addrp, s->addr_len);
		json_sockaddr(o, "peer", s->peerp, s->peer_len);
		out_printf(o, ", \"listening\": %s, \"backlog\": ",
			   json_bool(s->flags & IMAGE_SOCK_LISTENING));
		out_json_fd(o, s->backlog);
		out_printf(o, ", \"connected\": %s, \"ended\": %s, \"bound\": %s, \"reuseaddr\": %s, \"reuseport\": %s, \"v6only\": %s, \"socketpair\": %s",
			   json_bool(s->flags & IMAGE_SOCK_CONNECTED),
			   json_bool(s->flags & IMAGE_SOCK_ENDED),
			   json_bool(s->flags & IMAGE_SOCK_BOUND),
			   json_bool(s->flags & IMAGE_SOCK_REUSEADDR),
			   json_bool(s->flags & IMAGE_SOCK_REUSEPORT),
			   json_bool(s->flags & IMAGE_SOCK_V6ONLY),
			   json_bool(s->flags & IMAGE_SOCK_PAIR));
		out_puts(o, ", \"pair\": ");
		out_json_fd(o, s->pair ? (int64_t)s->pair : -1);
		out_puts(o, ", \"pair_fd\": ");
		out_json_fd(o, lowest_fd(c->img, &c->ix, s->pair));
		out_printf(o, ", \"pending\": %u", s->pending);
		if (s->file_mode)
			out_printf(o, ", \"file_mode\": \"0%o\"",
				   s->file_mode & 07777);
		break;
	}
	case IMAGE_KIND_PIPE:
		out_printf(o, ", \"end\": \"%s\", \"ino\": %" PRIu64 ", \"peer\": ",
			   t->u.pipe.write_end ? "write" : "read",
			   t->u.pipe.ino);
		out_json_fd(o, t->u.pipe.peer ? (int64_t)t->u.pipe.peer : -1);
		out_puts(o, ", \"peer_fd\": ");
		out_json_fd(o, lowest_fd(c->img, &c->ix, t->u.pipe.peer));
		out_printf(o, ", \"pending\": %u", t->u.pipe.pending);
		break;
	case IMAGE_KIND_EVENTFD:
		out_printf(o, ", \"count\": %" PRIu64 ", \"semaphore\": %s",
			   t->u.efd.count, json_bool(t->u.efd.semaphore));
		break;
	case IMAGE_KIND_TIMERFD:
		out_printf(o, ", \"clock\": \"%s\", \"clockid\": %u, \"value_ns\": %" PRIu64 ", \"interval_ns\": %" PRIu64 ", \"ticks\": %" PRIu64 ", \"abstime\": %s, \"cancel_on_set\": %s",
			   clock_name(t->u.tfd.clockid, a, sizeof(a)),
			   t->u.tfd.clockid, t->u.tfd.value_ns,
			   t->u.tfd.interval_ns, t->u.tfd.ticks,
			   json_bool(t->u.tfd.settime_flags & 1),
			   json_bool(t->u.tfd.settime_flags & 2));
		break;
	case IMAGE_KIND_SIGNALFD: {
		bool first = true;

		out_printf(o, ", \"mask\": \"0x%" PRIx64 "\", \"signals\": [",
			   t->u.sfd.mask);
		for (int s = 1; s <= 64; s++) {
			if (!(t->u.sfd.mask & (1ull << (s - 1))))
				continue;
			out_printf(o, "%s\"%s\"", first ? "" : ", ",
				   signal_name(s, a, sizeof(a)));
			first = false;
		}
		out_puts(o, "]");
		break;
	}
	case IMAGE_KIND_EPOLL:
		out_printf(o, ", \"nwatches\": %u, \"fd\": ", t->u.ep.nwatches);
		out_json_fd(o, lowest_fd(c->img, &c->ix,
					 (uint32_t)(t - c->img->targets) + 1));
		break;
	default:
		break;
	}
}

static void json_target(struct text_ctx *c, uint32_t id)
{
	const struct image_target *t = target_of(c->img, id);
	struct out *o = c->o;

	if (!t) {
		out_puts(o, "{\"kind\": \"unknown\", \"id\": null}");
		return;
	}
	out_printf(o, "{\"kind\": \"%s\", \"id\": %u, \"path\": ",
		   image_kind_name(t->kind), id);
	out_json_str(o, t->path);
	out_printf(o, ", \"file_flags\": \"0x%x\", \"origin\": [%s%s%s], \"fds\": ",
		   t->file_flags,
		   t->origin & IMAGE_ORIGIN_KERNEL ? "\"kernel\"" : "",
		   (t->origin & IMAGE_ORIGIN_ALL) == IMAGE_ORIGIN_ALL ? ", " : "",
		   t->origin & IMAGE_ORIGIN_SHADOW ? "\"shadow\"" : "");
	json_fds(c, id);
	json_target_kind(c, t);
	out_puts(o, "}");
}

static void json_watch(struct text_ctx *c, const struct image_watch *w)
{
	struct out *o = c->o;
	char ev[256];
	bool first = true;

	format_events(w->events, ev, sizeof(ev));
	out_printf(o, "{\"tfd\": %d, \"events\": \"0x%x\", \"events_decoded\": \"%s\", \"data\": \"0x%" PRIx64 "\", \"open_fd\": ",
		   w->tfd, w->events, ev, w->data);
	out_json_fd(o, w->open_fd);
	out_puts(o, ", \"flags\": [");
	for (size_t i = 0; i < sizeof(watch_flag_names) /
				       sizeof(watch_flag_names[0]);
	     i++) {
		if (!(w->flags & watch_flag_names[i].bit))
			continue;
		out_printf(o, "%s\"%s\"", first ? "" : ", ",
			   watch_flag_names[i].name);
		first = false;
	}
	out_puts(o, "], \"target\": ");
	json_target(c, w->target);
	out_puts(o, ", \"backtrace\": ");
	json_backtrace(c, w->bt_add);
	out_puts(o, ", \"backtrace_mod\": ");
	json_backtrace(c, w->bt_mod);
	out_puts(o, "}");
}

static void json_set(struct text_ctx *c, uint32_t id)
{
	const struct image_target *t = &c->img->targets[id - 1];
	const struct show_index *ix = &c->ix;
	struct out *o = c->o;
	bool has_fd = ix->fd_start[id] < ix->fd_start[id + 1];

	out_puts(o, "{\"fd\": ");
	out_json_fd(o, lowest_fd(c->img, ix, id));
	out_puts(o, ", \"fds\": ");
	json_fds(c, id);
	out_printf(o, ", \"cloexec\": %s, \"id\": %u, \"nwatches\": %u, \"nested_in\": %u, \"watches\": [",
		   has_fd ? json_bool(c->img->fds[ix->fd_list[ix->fd_start[id]]]
						.fd_flags & FD_CLOEXEC)
			  : "null",
		   id, t->u.ep.nwatches, ix->nparents[id]);
	for (uint32_t i = ix->w_start[id]; i < ix->w_start[id + 1]; i++) {
		out_puts(o, i > ix->w_start[id] ? ",\n      " : "\n      ");
		json_watch(c, &c->img->watches[ix->w_list[i]]);
	}
	out_puts(o, "]}");
}

static void json_diag(struct text_ctx *c, const struct image_diag *d)
{
	struct out *o = c->o;

	out_printf(o, "{\"severity\": \"%s\", \"code\": \"%s\", \"epfd\": ",
		   severity_name(d->severity), diag_code_name(d->code));
	out_json_fd(o, d->epfd);
	out_puts(o, ", \"tfd\": ");
	out_json_fd(o, d->tfd);
	out_puts(o, ", \"path\": ");
	out_json_str(o, d->path);
	out_puts(o, ", \"message\": ");
	out_json_str(o, d->message ? d->message : "");
	out_puts(o, ", \"backtrace\": ");
	json_backtrace(c, d->bt);
	out_puts(o, "}");
}

static void json_head(struct text_ctx *c)
{
	const struct image *img = c->img;
	const struct image_process *p = &img->proc;
	struct out *o = c->o;
	uint32_t kinds[IMAGE_KIND_COUNT] = { 0 };

	out_printf(o, "{\"format\": %d, \"pid\": %d, \"uid\": %u, \"exe\": ",
		   IMAGE_VERSION, p->pid, p->uid);
	out_json_str(o, p->exe);
	out_puts(o, ", \"comm\": ");
	out_json_str(o, p->comm);
	out_puts(o, ", \"version\": ");
	out_json_str(o, p->version);
	out_printf(o, ", \"time_sec\": %" PRIu64 ", \"time_nsec\": %u, \"nofile_limit\": %u, \"complete\": %s, \"kernel_view\": %s, \"shadow_view\": %s, \"kernel_only\": %s, \"unsettled\": %s",
		   p->time_sec, p->time_nsec, p->nofile_limit,
		   json_bool(img->flags & IMAGE_F_COMPLETE),
		   json_bool(img->flags & IMAGE_F_KERNEL_VIEW),
		   json_bool(img->flags & IMAGE_F_SHADOW_VIEW),
		   json_bool(img->flags & IMAGE_F_KERNEL_ONLY),
		   json_bool(img->flags & IMAGE_F_UNSETTLED));
	out_printf(o, ",\n \"counts\": {\"targets\": %u, \"fds\": %u, \"watches\": %u, \"diagnostics\": %u, \"backtraces\": %u, \"modules\": %u}",
		   img->ntargets, img->nfds, img->nwatches, img->ndiags,
		   img->nbacktraces, img->nmodules);
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].kind < IMAGE_KIND_COUNT)
			kinds[img->targets[i].kind]++;
	out_puts(o, ",\n \"kinds\": {");
	for (uint32_t k = 0; k < IMAGE_KIND_COUNT; k++)
		out_printf(o, "%s\"%s\": %u", k ? ", " : "", image_kind_name(k),
			   kinds[k]);
	out_puts(o, "}");
}

int show_image_json(const struct image *img, int out_fd)
{
	struct text_ctx c;
	bool first = true;

	if (show_ctx_open(&c, img, out_fd) < 0)
		return -ENOMEM;
	json_head(&c);
	out_puts(c.o, ",\n \"epoll\": [");
	for (uint32_t i = 0; i < img->ntargets; i++) {
		if (img->targets[i].kind != IMAGE_KIND_EPOLL)
			continue;
		out_puts(c.o, first ? "\n  " : ",\n  ");
		first = false;
		json_set(&c, i + 1);
	}
	out_puts(c.o, "],\n \"diagnostics\": [");
	for (uint32_t i = 0; i < img->ndiags; i++) {
		out_puts(c.o, i ? ",\n  " : "\n  ");
		json_diag(&c, &img->diags[i]);
	}
	out_puts(c.o, "]}\n");
	return show_ctx_close(&c);
}
