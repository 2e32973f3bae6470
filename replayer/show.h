/* SPDX-License-Identifier: MIT */
/*
 * `epollcr show`: an image rendered for people (text) or for programs
 * (JSON, whose contract is in docs/image-format.md).
 */
#ifndef EPOLLCR_SHOW_H
#define EPOLLCR_SHOW_H

#include "epollcr_image.h"

#define SHOW_NO_ADDR2LINE 0x1 /* run no helper: no addr2line, no c++filt */

/*
 * Write img as text to out_fd: the process, every epoll set with its fds
 * and watches (events decoded, data, open_fd, target description, the
 * ADD/MOD backtraces), the nesting tree, the diagnostics.  Backtrace frames
 * read "symbol+0xOFF (module)" or "module+0xOFF"; unless flags has
 * SHOW_NO_ADDR2LINE, C++ symbols are demangled by c++filt(1) and "at
 * file:line" is added where the module is a regular ELF file (opened
 * without blocking: never a FIFO or a device) and addr2line(1) can tell
 * (one run per module); every helper run of the process shares one budget
 * (show_tools_budget, SHOW_TOOLS_BUDGET_MS by default), and what it does
 * not reach is silently left out.
 * Control characters in names are escaped.  Returns 0 or -errno of a
 * failed write.
 */
int show_image_text(const struct image *img, int out_fd, unsigned flags);

/*
 * Write img to out_fd as one JSON object followed by a newline, following
 * the contract of docs/image-format.md ("format", "pid", "exe", "complete",
 * "epoll" [sets with "fd", "fds", "cloexec", "watches"], "diagnostics", and
 * more keys).  Strings are escaped; bytes that are not UTF-8 become \u00XX.
 * Never runs addr2line.  Returns 0 or -errno of a failed write.
 */
int show_image_json(const struct image *img, int out_fd);

/* Helper time for a whole process (one command), when not set. */
#define SHOW_TOOLS_BUDGET_MS 10000

/*
 * (Re)start the one budget that every addr2line and c++filt run of this
 * process shares: ms milliseconds from now.  Without a call, it starts
 * at the first helper run, SHOW_TOOLS_BUDGET_MS long.
 */
void show_tools_budget(int ms);

#endif
