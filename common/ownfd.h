/* SPDX-License-Identifier: MIT */
/*
 * Descriptors the library opens for its own use (the image directory, a
 * temporary image, /proc files, netlink sockets) while it runs inside a
 * program.  The program owns every low descriptor number, and may dup2()
 * onto a number it believes free at any moment: a descriptor of ours left
 * at such a number would be replaced under us, and our close() would then
 * close the program's.  So every such descriptor is opened as
 *
 *	fd = OWN_FD(open(...));
 *
 * Inside a program the shim sets the hooks: own_fd_begin() holds back the
 * program's dup2()/dup3() (they wait while any OWN_FD is in progress, and
 * it waits for those already under way), and own_fd_end() moves the new
 * descriptor above the program's range (shim_fd_high) before letting them
 * go.  The low number the kernel gave is thus never visible to a dup2()
 * of the program.  In the command-line tool no hook is set and nothing
 * moves.  errno is kept; a failed call (fd < 0) comes back unchanged.
 */
#ifndef EPOLLCR_OWNFD_H
#define EPOLLCR_OWNFD_H

struct own_fd_hooks {
	void (*begin)(void);
	int (*end)(int fd);
	void (*section_begin)(void);
	void (*section_end)(void);
};

/* Set by the shim's constructor; NULL outside a program. */
extern const struct own_fd_hooks *own_fd_hooks;

static inline void own_fd_begin(void)
{
	const struct own_fd_hooks *h =
		__atomic_load_n(&own_fd_hooks, __ATOMIC_ACQUIRE);
	if (h)
		h->begin();
}

static inline int own_fd_end(int fd)
{
	const struct own_fd_hooks *h =
		__atomic_load_n(&own_fd_hooks, __ATOMIC_ACQUIRE);
	return h ? h->end(fd) : fd;
}

/*
 * A section: many OWN_FD() in a row (a dump).  The program's dup2s are
 * switched to their careful path once for the whole section rather than
 * at each descriptor; they are held back only during each OWN_FD().
 */
static inline void own_fd_section_begin(void)
{
	const struct own_fd_hooks *h =
		__atomic_load_n(&own_fd_hooks, __ATOMIC_ACQUIRE);
	if (h)
		h->section_begin();
}

static inline void own_fd_section_end(void)
{
	const struct own_fd_hooks *h =
		__atomic_load_n(&own_fd_hooks, __ATOMIC_ACQUIRE);
	if (h)
		h->section_end();
}

/* call (an expression giving a new descriptor) between begin and end. */
#define OWN_FD(call) (own_fd_begin(), own_fd_end(call))

/*
 * A descriptor opened, used and closed at once (one /proc file read):
 *
 *	own_fd_hold();
 *	fd = open(...); read(fd, ...); close(fd);
 *	own_fd_release();
 *
 * The program's dup2()/dup3() are held back from before the open to after
 * the close, so the low number the kernel gives is never visible to them
 * and need not be moved high: three syscalls instead of OWN_FD()'s six
 * (getrlimit, F_DUPFD, the low number's close), for about as long a hold.
 * Nothing between the two may wait for another thread of the program.
 */
static inline void own_fd_hold(void)
{
	own_fd_begin();
}

static inline void own_fd_release(void)
{
	(void)own_fd_end(-1);
}

#endif
