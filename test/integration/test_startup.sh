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
if [ -z "$ecr_min" ] || [ -z "$one_min" ]; then
	fail "startup_faults did not run"
elif [ $((ecr_min - one_min)) -le "$MAX_EXTRA" ]; then
	pass "epollcr adds $((ecr_min - one_min)) faults to a one-wrapper library's start-up (at most $MAX_EXTRA)"
else
	fail "epollcr adds $((ecr_min - one_min)) faults to a one-wrapper library's start-up (more than $MAX_EXTRA)"
fi
finish
