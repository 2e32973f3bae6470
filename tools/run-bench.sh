#!/usr/bin/env bash
# Run every benchmark of the build directory $1 (default build) and print
# one line per figure: name, median ratio shim/raw over the rounds, its
# interquartile range and min-max, the median time per operation of each
# side, the target and "ok" or "MISSED" (see docs/performance.md).
# QUICK=1: fewer rounds and only 1k and 10k watches (under a minute).
# Always exits 0: benchmarks report, tests assert.
set -u
cd "$(dirname "$0")/.." || exit 0
BUILD=${1:-build}
LIB="$PWD/$BUILD/libepollcr.so"
BIN="$BUILD/bench"
QUICK=${QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
export QUICK
# Each program is bounded; a stuck one is killed and reported.
LIMIT=${BENCH_TIMEOUT:-900}
[ -n "$QUICK" ] && LIMIT=${BENCH_TIMEOUT:-60}

# Environment a measurement must not inherit from the caller.
unset LD_PRELOAD EPOLLCR_BACKTRACE EPOLLCR_BACKTRACE_MOD EPOLLCR_LOG EPOLLCR_DIR

run() { # label, command...
	local label=$1 rc
	shift
	timeout -k 5 "$LIMIT" "$@" 2>&1
	rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '%-30s FAILED: exit %d (%s)\n' "$label" "$rc" "$*"
	fi
}

have() { # program: built?
	if [ ! -x "$BIN/$1" ]; then
		printf '%-30s skipped: %s not built\n' "$1" "$BIN/$1"
		return 1
	fi
	return 0
}

if [ ! -f "$LIB" ]; then
	echo "run-bench: $LIB not built: run make first"
	exit 0
fi
if ldd "$LIB" 2>/dev/null | grep -q 'lib[atu]*san'; then
	echo "run-bench: $LIB is a sanitizer build: benchmarks need a plain one (make bench, without SAN)"
	exit 0
fi
printf '# epollcr benchmarks%s: %s cpus, %s, kernel %s, %s\n' \
	"${QUICK:+ (QUICK)}" "$(nproc)" \
	"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
	"$(uname -r)" "$(ldd --version 2>/dev/null | head -n 1 | sed 's/^ldd //')"
printf '# load average %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '# ratio = shim time / raw time per round; median over the rounds\n'

# The machine's own costs, which every ratio below divides by.
have bench_env && run env "$BIN/bench_env"
# Figures 1, 2: epoll_ctl, one process run per backtrace setting (the
# shim reads EPOLLCR_BACKTRACE once, at load).
if have bench_ctl; then
	run "ctl bt=0" env EPOLLCR_BACKTRACE=0 LD_PRELOAD="$LIB" \
		"$BIN/bench_ctl"
	run "ctl bt=default" env LD_PRELOAD="$LIB" "$BIN/bench_ctl"
	# MOD stacks in full instead of the call site alone (not a target:
	# what EPOLLCR_BACKTRACE_MOD=8 costs).
	[ -n "$QUICK" ] || run "ctl mod=8" env EPOLLCR_BACKTRACE_MOD=8 \
		LD_PRELOAD="$LIB" "$BIN/bench_ctl"
fi
# Figure 3: close/dup/dup2 of untracked descriptors.
have bench_fdops && run fdops env LD_PRELOAD="$LIB" "$BIN/bench_fdops"
# Figure 4: a oneshot event loop, per backtrace setting.
if have bench_wait; then
	run "wait bt=0" env EPOLLCR_BACKTRACE=0 LD_PRELOAD="$LIB" \
		"$BIN/bench_wait"
	run "wait bt=default" env LD_PRELOAD="$LIB" "$BIN/bench_wait"
fi
# Figures 5, 7: dump and registry memory (under the preload).
have bench_dump && run dump env LD_PRELOAD="$LIB" "$BIN/bench_dump"
# Figure 5 for a server's targets (listening and accepted TCP, unix
# socketpairs, eventfds, timerfds, pipes), with the bulk floor beside it.
have bench_dump && run "dump server" env EPOLLCR_BENCH_SHAPE=server \
	LD_PRELOAD="$LIB" "$BIN/bench_dump"
# Figure 9: a dump's latency while 4 threads churn ADD/MOD/DEL, against
# the dump at rest in the same process.
have bench_churn && run churn env LD_PRELOAD="$LIB" "$BIN/bench_churn"
# Figure 6: restore (no preload, as `epollcr restore`; the library is
# loaded locally only to make the images).
have bench_restore && run restore env EPOLLCR_BENCH_LIB="$LIB" \
	"$BIN/bench_restore"
# Figure 10: `epollcr verify` of another process (no preload).
have bench_verify && run verify "$BIN/bench_verify"
# Figure 8: start-up of /bin/true with and without the preload, and with a
# one-wrapper library (the floor of any preload).
have bench_startup && run startup "$BIN/bench_startup" "$LIB" /bin/true \
	"$BIN/libonewrap.so"
printf '# done in %d s; load average %s\n' "$SECONDS" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
