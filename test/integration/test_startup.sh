#!/usr/bin/env bash
# Start-up (issue 14 item 5; docs/performance.md, figure 8): what loading
# the library costs /bin/true beyond what any preloaded library costs.
# Counted in minor page faults, not time: a page fault is most of the cost
# here, and the count does not move with the machine's load.  The
# reference is a library of one wrapper (close, resolved by dlsym at its
# first call), built here: the difference is epollcr's own share (its
# constructor, its data pages, its size).  It was 22-25 faults before the
# start-up work (libgcc's CPU-model constructor, pthread_once and
# resolver words alone on their .bss pages, opendir's malloc starting the
# heap, a 4 KiB .data of which one page was touched at load); now 7-8.
# Checked on a build without sanitizers (their runtimes fault pages of
# their own).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Most faults epollcr may add over the one-wrapper library (8-10 here, gcc
# and clang; a margin for other layouts and loaders).
MAX_EXTRA=${STARTUP_MAX_EXTRA_FAULTS:-14}
RUNS=${STARTUP_RUNS:-30}
PROG=/bin/true

if [ -n "${SAN:-}" ]; then
	echo "skipped: a sanitizer build (SAN=$SAN) loads its runtime too"
	finish
fi
cat >"$WORK/one.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
__attribute__((visibility("default"))) int close(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "close");
	return real(fd);
}
C
"${CC:-cc}" -O2 -fPIC -shared -o "$WORK/libone.so" "$WORK/one.c" -ldl ||
	{ fail "cannot build the reference library"; finish; }

read -r plain_min plain_med < <("$PROGS/startup_faults" "$RUNS" - "$PROG")
read -r one_min one_med < <("$PROGS/startup_faults" "$RUNS" "$WORK/libone.so" "$PROG")
read -r ecr_min ecr_med < <("$PROGS/startup_faults" "$RUNS" "$LIB" "$PROG")
echo "minor faults of $PROG (min, median of $RUNS): plain $plain_min $plain_med," \
	"one-wrapper library $one_min $one_med, epollcr $ecr_min $ecr_med"
# A program that never calls epoll_ctl opens nothing under /proc: the
# inherited sets are adopted at the first epoll_ctl, dump or shadow print
# (before, /proc/self/fd was read at load by every program).  A spy
# library preloaded before epollcr counts the opens of /proc/self/fd.
cat >"$WORK/spy.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static int opens;
static void count(const char *path)
{
	if (path && strcmp(path, "/proc/self/fd") == 0)
		opens++;
}
#define SPY(name, ...)                                                  \
	{                                                               \
		static int (*real)();                                   \
		if (!real)                                              \
			*(void **)&real = dlsym(RTLD_NEXT, name);       \
		return real(__VA_ARGS__);                               \
	}
__attribute__((visibility("default"))) int open(const char *p, int f, ...)
{
	va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap);
	count(p); SPY("open", p, f, m)
}
__attribute__((visibility("default"))) int open64(const char *p, int f, ...)
{
	va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap);
	count(p); SPY("open64", p, f, m)
}
__attribute__((visibility("default"))) int openat(int d, const char *p, int f, ...)
{
	va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap);
	count(p); SPY("openat", d, p, f, m)
}
__attribute__((destructor)) static void report(void)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "proc-fd-opens %d\n", opens);
	if (write(2, line, (size_t)n) < 0) {}
}
C
"${CC:-cc}" -O2 -fPIC -shared -o "$WORK/libspy.so" "$WORK/spy.c" -ldl ||
	{ fail "cannot build the spy library"; finish; }
spy() { # program args...: the spy's count for the last process
	LD_PRELOAD="$WORK/libspy.so:$LIB" "$@" 2>&1 >/dev/null |
		sed -n 's/^proc-fd-opens //p' | tail -n 1
}
n=$(spy "$PROG")
[ "$n" = 0 ] && pass "$PROG under the shim does not read /proc/self/fd" ||
	fail "$PROG under the shim opened /proc/self/fd ${n:-?} times (the inherited sets' scan belongs to the first epoll_ctl)"
# The spy sees the scan where it belongs: a child inheriting epoll sets
# and using them (transp_probe execmany) scans once.
n=$(spy "$PROGS/transp_probe" execmany 3)
[ "${n:-0}" -ge 1 ] && pass "a program with inherited sets reads /proc/self/fd at its first use of them ($n)" ||
	fail "the spy saw no scan in a program with inherited sets (${n:-no output}): the check above proves nothing"
# A dump alone (no epoll_ctl, no print) adopts them too, before it reads
# anything (recorder_before_build).
n=$(TRANSP_DUMP_ONLY="$WORK/dump-only.img" spy "$PROGS/transp_probe" execmany 3)
[ "${n:-0}" -ge 1 ] && [ -s "$WORK/dump-only.img" ] &&
	pass "a dump adopts the inherited sets first ($n scan)" ||
	fail "a dump without a prior epoll_ctl did not adopt the inherited sets (${n:-no output} scans)"

if [ -z "$ecr_min" ] || [ -z "$one_min" ]; then
	fail "startup_faults did not run"
elif [ $((ecr_min - one_min)) -le "$MAX_EXTRA" ]; then
	pass "epollcr adds $((ecr_min - one_min)) faults to a one-wrapper library's start-up (at most $MAX_EXTRA)"
else
	fail "epollcr adds $((ecr_min - one_min)) faults to a one-wrapper library's start-up (more than $MAX_EXTRA)"
fi
finish
