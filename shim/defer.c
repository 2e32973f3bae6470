// SPDX-License-Identifier: MIT
/*
 * Bookkeeping of calls made from a signal handler that interrupted a
 * wrapper of the same thread.
 *
 * A wrapper may hold the fd-operation lock shared, a set's stripe or lock,
 * the list or free lock when a handler runs on its thread.  If the
 * handler's own close(), dup2() or epoll_ctl() took one of them again it
 * would wait for itself (or queue behind a dump that waits for the
 * interrupted wrapper): for ever.  So a wrapper re-entered on its thread
 * (shim_depth set) makes the real call, queues what the registry must
 * learn in a small per-thread ring, and returns; the outermost wrapper
 * applies the queue, in order, under the usual locks, as it leaves.
 * Pushing is async-signal-safe: only the handler pushes, and the thread
 * it interrupted pops when every handler above it has returned.  A full
 * ring marks the registry incomplete (a dump then says so).
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "registry.h"
#include "shim.h"

#define DEFER_SLOTS 32 /* calls queued by handlers of one wrapper call */

__thread unsigned shim_depth __attribute__((tls_model("initial-exec")));
__thread unsigned shim_deferred_pushed
	__attribute__((tls_model("initial-exec")));
__thread unsigned shim_deferred_popped
	__attribute__((tls_model("initial-exec")));
/* Not initial-exec: 3 KiB would crowd the static TLS of a dlopen(). */
static __thread struct shim_deferred ring[DEFER_SLOTS];

void shim_defer(const struct shim_deferred *d)
{
	unsigned slot = shim_deferred_pushed;

	if (slot - shim_deferred_popped >= DEFER_SLOTS) {
		registry_mark_incomplete();
		return;
	}
	registry_deferred_queued(); /* open until applied (registry.h) */
	/*
	 * Reserve the slot before filling it: a nested handler that runs
	 * meanwhile takes the next one.  The popper runs only after every
	 * handler above it has returned, so each reserved slot is full.
	 */
	shim_deferred_pushed = slot + 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	ring[slot % DEFER_SLOTS] = *d;
}

static void apply_ctl(const struct shim_deferred *d)
{
	struct reg_ctl ctl;

	registry_ctl_begin(&ctl, d->fd2, d->fd);
	struct reg_set *set = registry_ctl_lock_set(&ctl);
	registry_ctl_locked(set, d->fd2, d->ctl_op, d->fd,
			    d->ctl_op == EPOLL_CTL_DEL ? NULL :
			    (struct epoll_event *)&d->event, 0);
	if (set)
		registry_set_unlock(set);
	registry_ctl_end(&ctl);
}

/* Record one deferred call, as its wrapper would have done. */
static void apply(const struct shim_deferred *d)
{
	bool locked;

	switch (d->op) {
	case SHIM_DEFER_CLOSE: {
		/* Unknown when queued: what the earlier records put there. */
		struct reg_seen seen = d->seen.file ? d->seen
						    : registry_fd_peek(d->fd);
		locked = registry_fdop_begin(seen.file);
		registry_fd_closed(d->fd, seen);
		log_fd_closed(d->fd);
		registry_fdop_end(locked);
		break;
	}
	case SHIM_DEFER_CLOSE_RANGE:
		locked = registry_fdop_begin_many();
		registry_fd_closed_range((unsigned)d->fd, (unsigned)d->fd2);
		int log_fd = log_get_fd();
		if (log_fd >= 0 && (unsigned)log_fd >= (unsigned)d->fd &&
		    (unsigned)log_fd <= (unsigned)d->fd2)
			log_fd_closed(log_fd);
		registry_fdop_end(locked);
		break;
	case SHIM_DEFER_DUP:
		/* Only the bookkeeping: newfd's old file is already gone. */
		locked = registry_fdop_begin_many();
		registry_fd_dup(d->fd, d->fd2);
		registry_fdop_end(locked);
		break;
	case SHIM_DEFER_CTL:
		apply_ctl(d);
		break;
	case SHIM_DEFER_SET_CREATED:
		registry_set_created(d->fd, d->flags);
		shim_recorder_need();
		break;
	case SHIM_DEFER_FD_CREATED:
		registry_fd_created(d->fd, d->kind, &d->create);
		break;
	case SHIM_DEFER_FD_UNKNOWN:
		registry_fd_unknown(d->fd);
		break;
	case SHIM_DEFER_BOUND:
		registry_socket_bound(d->fd);
		break;
	case SHIM_DEFER_LISTEN:
		registry_socket_listen(d->fd, d->flags);
		break;
	case SHIM_DEFER_SIGNALFD_MASK:
		registry_signalfd_mask(d->fd, d->create.sigmask);
		break;
	case SHIM_DEFER_FLAGS_LOST:
		registry_fd_flags_lost((unsigned)d->fd, (unsigned)d->fd2);
		break;
	}
}

void shim_deferred_run(void)
{
	int saved_errno = errno;

	/*
	 * Handlers that run meanwhile queue behind (the mark stays set over
	 * the whole queue: a handler that found it clear while records wait
	 * would look at a registry that lags behind its own thread): loop
	 * until empty, and again if one came between the last look and the
	 * mark's clearing.
	 */
	do {
		shim_depth = 1;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		while (shim_deferred_popped != shim_deferred_pushed) {
			struct shim_deferred d =
				ring[shim_deferred_popped % DEFER_SLOTS];
			shim_deferred_popped++;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			apply(&d);
			registry_deferred_end();
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
		}
		shim_depth = 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	} while (shim_deferred_popped != shim_deferred_pushed);
	errno = saved_errno;
}

/* Apply d now, or queue it when this thread is inside a wrapper already. */
static void record(const struct shim_deferred *d)
{
	int saved_errno = errno;

	if (!shim_wrap_enter()) {
		shim_defer(d);
	} else {
		apply(d);
		shim_wrap_leave();
	}
	errno = saved_errno;
}

void shim_record_fd_created(int fd, uint32_t kind, const struct reg_create *c)
{
	struct shim_deferred d = { .op = SHIM_DEFER_FD_CREATED, .fd = fd,
				   .kind = kind,
				   .create = { .backlog = -1 } };
	if (c)
		d.create = *c;
	record(&d);
}

void shim_record_fd_unknown(int fd)
{
	record(&(struct shim_deferred){ .op = SHIM_DEFER_FD_UNKNOWN,
					.fd = fd });
}

void shim_record_socket_bound(int fd)
{
	record(&(struct shim_deferred){ .op = SHIM_DEFER_BOUND, .fd = fd });
}

void shim_record_socket_listen(int fd, int backlog)
{
	record(&(struct shim_deferred){ .op = SHIM_DEFER_LISTEN, .fd = fd,
					.flags = backlog });
}

void shim_record_signalfd_mask(int fd, uint64_t mask)
{
	record(&(struct shim_deferred){ .op = SHIM_DEFER_SIGNALFD_MASK,
					.fd = fd,
					.create = { .sigmask = mask } });
}
