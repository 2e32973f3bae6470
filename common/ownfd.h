/* SPDX-License-Identifier: MIT */
/*
 * Descriptors the library opens for its own use (the image directory, a
 * temporary image, /proc files, netlink sockets) while it runs inside a
 * program: the program owns every low descriptor number, and may dup2()
 * onto a number it believes free at any moment.  A descriptor of ours
 * left at such a number would be replaced under us, and our close() would
 * then close the program's.  So every descriptor the library opens is
 * passed through own_fd() the moment it exists: inside a program (the
 * shim sets the hook) it comes back above the program's range; in the
 * command-line tool the hook is unset and nothing moves.
 */
#ifndef EPOLLCR_OWNFD_H
#define EPOLLCR_OWNFD_H

/* Set by the shim to shim_fd_high(); NULL outside a program. */
extern int (*own_fd_hook)(int fd);

/* fd moved out of the program's range (inside a program), or fd itself;
 * errno is kept.  A negative fd comes back unchanged. */
static inline int own_fd(int fd)
{
	int (*hook)(int) = __atomic_load_n(&own_fd_hook, __ATOMIC_ACQUIRE);
	return fd >= 0 && hook ? hook(fd) : fd;
}

#endif
