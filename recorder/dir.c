// SPDX-License-Identifier: MIT
/*
 * The image directory: created private (0700), never through a symlink,
 * refused when someone else owns it or others may write into it, or when a
 * directory above it is someone else's.  It is opened once and checked
 * through that descriptor; images are created relative to it, so a path
 * swapped after the checks changes nothing.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ownfd.h"
#include "recorder.h"

#define MAX_ANCESTORS 256 /* directory levels checked above the image dir */

/* The path of the open fd, for messages ("?" when /proc cannot say). */
static const char *fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, len - 1);
	if (n <= 0)
		return "?";
	buf[n] = '\0';
	return buf;
}

/*
 * A directory that holds the image directory, directly or higher up, must
 * belong to root or to us, and be writable by no one else unless it is
 * sticky (/tmp): otherwise its owner could swap the image directory.
 */
static int trusted_holder(int fd, const struct stat *st, const char *path,
			  char *why, size_t why_len)
{
	char where[PATH_MAX];

	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(why, why_len,
			 "%s lies under %s, which belongs to uid %u (neither root nor this process, uid %u): refusing it",
			 path, fd_path(fd, where, sizeof(where)),
			 (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if ((st->st_mode & 022) && !(st->st_mode & S_ISVTX)) {
		snprintf(why, why_len,
			 "%s lies under %s, which group or others may write (mode %03o, not sticky): refusing it",
			 path, fd_path(fd, where, sizeof(where)),
			 (unsigned)(st->st_mode & 0777));
		return -EPERM;
	}
	return 0;
}

/*
 * Check the directory parent_fd and every directory above it (the
 * physical path: symbolic links already resolved) with trusted_holder().
 */
static int holders_safe(int parent_fd, const char *path, char *why,
			size_t why_len)
{
	struct stat cur_st, st;
	int cur = OWN_FD(dup(parent_fd)), ret = 0;

	if (cur < 0 || fstat(cur, &cur_st) < 0) {
		ret = -errno;
		snprintf(why, why_len, "cannot check the directory of %s: %s",
			 path, strerror(-ret));
		goto out;
	}
	for (int level = 0; level < MAX_ANCESTORS; level++) {
		ret = trusted_holder(cur, &cur_st, path, why, why_len);
		if (ret < 0)
			goto out;
		int up = OWN_FD(
			openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		if (up < 0 || fstat(up, &st) < 0) {
			ret = -errno;
			snprintf(why, why_len,
				 "cannot check the directories above %s: %s",
				 path, strerror(-ret));
			if (up >= 0)
				close(up);
			goto out;
		}
		close(cur);
		cur = up;
		if (st.st_dev == cur_st.st_dev && st.st_ino == cur_st.st_ino)
			goto out; /* the root: its own parent */
		cur_st = st;
	}
out:
	if (cur >= 0)
		close(cur);
	return ret;
}

/* Open the directory that holds path's last component (into leaf). */
static int open_holder(const char *path, char *leaf, size_t leaf_len,
		       char *why, size_t why_len)
{
	char dir[PATH_MAX];
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	if (!len || len >= sizeof(dir)) {
		snprintf(why, why_len, "image directory path empty or too long");
		return -ENAMETOOLONG;
	}
	memcpy(dir, path, len);
	dir[len] = '\0';
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : dir;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		snprintf(why, why_len,
			 "%s: name the image directory itself (not /, . or ..)",
			 path);
		return -EINVAL;
	}
	if (strlen(base) >= leaf_len) {
		snprintf(why, why_len, "%s: last component too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(leaf, base, strlen(base) + 1); /* checked shorter above */
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		snprintf(dir, sizeof(dir), "/");
	else
		*slash = '\0';
	int fd = OWN_FD(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (fd < 0) {
		int err = errno;
		snprintf(why, why_len, "cannot open %s (to hold %s): %s", dir,
			 path, strerror(err));
		return -err;
	}
	return fd;
}

int recorder_private_dir_open(const char *path, bool create, char *why,
			      size_t why_len)
{
	char leaf[NAME_MAX + 1];
	struct stat st;
	int ret, fd = -1;
	int holder = open_holder(path, leaf, sizeof(leaf), why, why_len);

	if (holder < 0)
		return holder;
	/* Nothing is created in a directory someone else could swap. */
	ret = holders_safe(holder, path, why, why_len);
	if (ret < 0)
		goto out;
	if (create && mkdirat(holder, leaf, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(why, why_len, "cannot create %s: %s", path,
			 strerror(-ret));
		goto out;
	}
	fd = OWN_FD(openat(holder, leaf,
			   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (fd < 0) {
		ret = -errno;
		/* O_NOFOLLOW on a symlink: ELOOP (ENOTDIR with O_DIRECTORY). */
		if (fstatat(holder, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			snprintf(why, why_len,
				 "%s is a symbolic link: refusing it", path);
		else if (ret == -ENOTDIR)
			snprintf(why, why_len, "%s is not a directory", path);
		else
			snprintf(why, why_len, "cannot open %s: %s", path,
				 strerror(-ret));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(why, why_len, "cannot stat %s: %s", path,
			 strerror(-ret));
	} else if (st.st_uid != geteuid()) {
		snprintf(why, why_len,
			 "%s belongs to uid %u, not to this process (uid %u): refusing it",
			 path, (unsigned)st.st_uid, (unsigned)geteuid());
		ret = -EPERM;
	} else if (st.st_mode & 022) {
		snprintf(why, why_len,
			 "%s is writable by group or others (mode %03o): refusing it",
			 path, (unsigned)(st.st_mode & 0777));
		ret = -EPERM;
	}
out:
	close(holder);
	if (ret < 0) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	return fd;
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
	return recorder_private_dir_open(out, true, why, why_len);
}
