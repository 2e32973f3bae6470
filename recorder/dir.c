// SPDX-License-Identifier: MIT
/*
 * The image directory: created private (0700), never through a symlink,
 * refused when someone else owns it or others may write into it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recorder.h"

/* Check that path is a private directory of ours, creating it if missing. */
static int private_dir(const char *path, char *why, size_t why_len)
{
	struct stat st;
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		int err = errno;
		snprintf(why, why_len, "cannot create %s: %s", path,
			 strerror(err));
		return -err;
	}
	if (lstat(path, &st) < 0) {
		int err = errno;
		snprintf(why, why_len, "cannot stat %s: %s", path,
			 strerror(err));
		return -err;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, why_len, "%s is a symbolic link: refusing it",
			 path);
		return -ELOOP;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, why_len, "%s is not a directory", path);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, why_len,
			 "%s belongs to uid %u, not to this process (uid %u): refusing it",
			 path, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 022) {
		snprintf(why, why_len,
			 "%s is writable by group or others (mode %03o): refusing it",
			 path, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	return 0;
}

int recorder_image_dir(const char *dir_env, char *out, size_t len, char *why,
		       size_t why_len)
{
	int n;
	if (dir_env && *dir_env) {
		n = snprintf(out, len, "%s", dir_env);
	} else {
		const char *xdg = getenv("XDG_RUNTIME_DIR");
		const char *tmp = getenv("TMPDIR");
		if (xdg && *xdg && access(xdg, W_OK) == 0)
			n = snprintf(out, len, "%s/epollcr", xdg);
		else
			n = snprintf(out, len, "%s/epollcr-%u",
				     tmp && *tmp ? tmp : "/tmp",
				     (unsigned)geteuid());
	}
	if (n < 0 || (size_t)n >= len) {
		snprintf(why, why_len, "image directory path too long");
		return -ENAMETOOLONG;
	}
	return private_dir(out, why, why_len);
}
