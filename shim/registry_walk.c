// SPDX-License-Identifier: MIT
/*
 * Walks of the shadow registry for the recorder and the shim's own report
 * (shim/print.c): every set, every watch of a set, the sets nested under
 * one, and what a set says of itself.  registry_walk_sets_locked is for a
 * caller holding registry_lock_all() (the consistent cut of a dump); the
 * others take the locks they need.
 */
#include "registry_internal.h"

int registry_walk_sets_locked(registry_set_fn fn, void *ctx)
{
	int ret = 0;
	for (struct reg_set *s = sets_head; s && !ret; s = s->next)
		if (s->file)
			ret = fn(ctx, s, s->file);
	return ret;
}

int registry_walk_sets(registry_set_fn fn, void *ctx)
{
	int ret = 0;

	pthread_mutex_lock(&sets_lock);
	for (struct reg_set *s = sets_head; s && !ret; s = s->next) {
		pthread_mutex_lock(&s->lock);
		if (s->file)
			ret = fn(ctx, s, s->file);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&sets_lock);
	return ret;
}

int registry_walk_watches(struct reg_set *set, registry_watch_fn fn,
			  void *ctx)
{
	for (uint32_t i = 0; i < set->nbuckets; i++) {
		for (struct reg_watch *w = set->buckets[i]; w; w = w->next) {
			struct reg_watch_view v = {
				.tfd = w->tfd,
				.events = w->events,
				.data = w->data,
				.uncertain = w->uncertain,
				.file = w->file,
				.bt_add = w->bt_add,
				.bt_mod = w->bt_mod,
			};
			int ret = fn(ctx, &v);
			if (ret)
				return ret;
		}
	}
	return 0;
}

uint32_t registry_set_nwatch(const struct reg_set *set)
{
	return set->nwatch;
}

int registry_set_flags(const struct reg_set *set)
{
	return set->flags;
}

bool registry_set_shared(const struct reg_set *set)
{
	return set->shared;
}

/* Collect, from locked set s, the sets its watches target (deduplicated). */
static int nested_children(struct reg_set *s, struct reg_set **queue,
			   unsigned *nqueue, unsigned max_sets)
{
	for (uint32_t i = 0; i < s->nbuckets; i++) {
		for (struct reg_watch *w = s->buckets[i]; w; w = w->next) {
			struct reg_set *child = registry_set_of(w->file);
			if (!child)
				continue;
			unsigned j = 0;
			while (j < *nqueue && queue[j] != child)
				j++;
			if (j < *nqueue)
				continue; /* seen: cycles end here */
			if (*nqueue >= max_sets)
				return 0;
			queue[(*nqueue)++] = child;
		}
	}
	return 0;
}

int registry_walk_nested(struct reg_set *root,
			 int (*fn)(void *ctx, struct reg_set *set,
				   unsigned depth),
			 void *ctx, unsigned max_sets)
{
	if (!root || !max_sets)
		return 0;
	struct reg_set **queue = calloc(max_sets, sizeof(*queue));
	unsigned *depth = calloc(max_sets, sizeof(*depth));
	int ret = 0;
	if (!queue || !depth) {
		ret = -ENOMEM;
		goto out_free;
	}
	unsigned nqueue = 1;
	queue[0] = root;
	for (unsigned head = 0; head < nqueue && !ret; head++) {
		struct reg_set *s = queue[head];
		unsigned before = nqueue;
		pthread_mutex_lock(&s->lock);
		if (s->file) {
			ret = fn(ctx, s, depth[head]);
			if (!ret)
				nested_children(s, queue, &nqueue, max_sets);
		}
		pthread_mutex_unlock(&s->lock);
		for (unsigned j = before; j < nqueue; j++)
			depth[j] = depth[head] + 1;
	}
out_free:
	free(queue);
	free(depth);
	return ret;
}
