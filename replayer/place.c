// SPDX-License-Identifier: MIT
/*
 * Restore, place phase: every file and set moved to all its final numbers.
 */
#define LOG_PREFIX "restore"

#include "restore_internal.h"

/* ---- moving to the final numbers ---- */

int rs_place_all(struct restore *r)
{
	char what[256];

	for (uint32_t i = 0; i < r->img->ntargets; i++) {
		struct rs_target *rt = &r->t[i];

		if (rt->state != RS_LIVE || !rt->owned)
			continue;
		for (uint32_t k = 0; k < rt->fd_count; k++) {
			uint32_t fi = r->by_target[rt->fd_first + k];

			if (!r->placed[fi] && rs_place_fd(r, i + 1, fi) < 0)
				return -1;
		}
		if (!rt->home_temp)
			continue;
		if (rt->fd_count) {
			close(rt->home);
			rt->home = rs_first_fd(r, i + 1);
			rt->home_temp = false;
		} else if (rs_diag(r, IMAGE_SEV_WARNING, IMAGE_DIAG_GENERIC,
				   IMAGE_NONE, -1, i + 1,
				   "%s has no fd in the image (its watches lived on through another reference): kept open at fd %d (close-on-exec) so that its watches live",
				   rs_what(r, i + 1, what, sizeof(what)),
				   rt->home) < 0) {
			return -1;
		}
	}
	return 0;
}
