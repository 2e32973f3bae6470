/* SPDX-License-Identifier: MIT */
/*
 * Socket facts for an image read from outside the process: what sock_diag
 * (inet_diag for TCP/UDP over IPv4 and IPv6, unix_diag) shows of each
 * socket target, matched by inode.
 */
#ifndef EPOLLCR_SOCKINFO_H
#define EPOLLCR_SOCKINFO_H

#include "epollcr_image.h"

/*
 * For every socket target of img (its path "socket:[INODE]"): a listening
 * TCP or unix socket without a backlog gets the kernel's (sock_diag's
 * write queue of a listener); a socket that could not be described through a
 * descriptor (type 0: no copy of another process's fd) gets domain,
 * type, protocol, state, local and remote address from sock_diag, one
 * dump per family and protocol (TCP and UDP over IPv4 and IPv6, then
 * AF_UNIX), asked only when a target needs it.  What stays unknown, and a
 * dump that fails, becomes a diagnostic.  Returns 0 or -ENOMEM.
 */
int sockinfo_fill(struct image *img);

#endif
