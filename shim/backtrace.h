/* SPDX-License-Identifier: MIT */
/* Interned call-site backtraces (raw return addresses). */
#ifndef EPOLLCR_BACKTRACE_H
#define EPOLLCR_BACKTRACE_H

#include <stdbool.h>
#include <stdint.h>

#define BACKTRACE_MAX_DEPTH 32	   /* frames kept per stack */
#define BACKTRACE_DEFAULT_DEPTH 8  /* EPOLLCR_BACKTRACE when unset */

/*
 * Capture the calling thread's stack from the frame whose return address
 * is `from` (the caller of a wrapper: __builtin_return_address(0) there),
 * dropping the shim's own frames above it however the compiler inlined or
 * tail-called them (and, under ThreadSanitizer, the frames of its
 * interceptor between the program and the shim), keeping at most `depth`
 * frames (capped at BACKTRACE_MAX_DEPTH).  Returns the id of the interned
 * copy: 0 when depth is 0, `from` is not within the first BACKTRACE_SEARCH
 * frames, or anything failed.
 */
#define BACKTRACE_SEARCH 8
uint32_t backtrace_capture(uintptr_t from, unsigned depth);

/*
 * The id of the one-frame stack of the program's call whose return address
 * is caller: caller itself, without unwinding, except under
 * ThreadSanitizer, whose interceptor is then the caller: the first frame
 * out of its runtime (an unwind).  0 when anything failed.
 */
uint32_t backtrace_call_site(uintptr_t caller);

/*
 * Load the unwinder (libunwind, with dlopen) if not done; the first
 * capture does it otherwise.  backtrace_loaded(): done.
 * backtrace_from_unwinder(pc): pc is in libunwind's code (false before
 * the load, and under ThreadSanitizer, whose glibc backtrace() is used).
 */
void backtrace_load(void);
bool backtrace_loaded(void);
bool backtrace_from_unwinder(uintptr_t pc);

/* Intern nframes addresses; the same stack always gets the same id. */
uint32_t backtrace_intern(const uintptr_t *frames, unsigned nframes);

/*
 * The frames of id (innermost first) through *frames; returns their count,
 * 0 when id names no stack.  The storage lives as long as the process.
 */
unsigned backtrace_frames(uint32_t id, const uintptr_t **frames);

/* How many distinct stacks were interned. */
uint32_t backtrace_count(void);

/* Fork handlers: no stripe lock stays held in the child. */
void backtrace_fork_prepare(void);
void backtrace_fork_parent(void);
void backtrace_fork_child(void);

#endif
