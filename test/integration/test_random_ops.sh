#!/usr/bin/env bash
# random_ops: seeded random epoll/dup/close/fork sequences, the shim's shadow
# registry compared with /proc/self/fdinfo and kcmp at checkpoints.
#  1. the checker itself, against the program's own model of the kernel (-m):
#     must pass; with a corrupted model (-m -B): must fail;
#  2. without the shim: must skip (exit 77: epollcr_shadow_print absent);
#  3. with the shim, several seeds: must pass (77 is a failure here); with
#     -s (no fork, no fd the shim cannot see) nothing may be uncertain.
# Environment (tools/run-tests.sh): TOP, BUILD, PRELOAD.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) bdir=$BUILD ;; *) bdir=$TOP/$BUILD ;; esac
PRELOAD=${PRELOAD:-$bdir/libepollcr.so}
prog=$bdir/test/integration/random_ops
SEEDS=${RANDOM_OPS_SEEDS:-"1 2 3 4"}
SEEDS_NOBT=${RANDOM_OPS_SEEDS_NOBT:-"5 6 7 8"}
OPS=${RANDOM_OPS_COUNT:-5000}

fail() { echo "FAIL: $*"; exit 1; }

[ -x "$prog" ] || fail "$prog is not built (make tests)"
lib=${PRELOAD##*:}
[ -f "$lib" ] || fail "the shim $lib is not built (make $BUILD/libepollcr.so)"

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
status=0

# run NAME EXPECTED_EXIT ENV... -- ARGS...
run() {
	local name=$1 want=$2; shift 2
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	timeout -k 5 60 env "${envs[@]}" "$prog" "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ $rc -eq "$want" ]; then
		echo "ok   $name (exit $rc): $(tail -n 1 "$tmp/out")"
	else
		echo "FAIL $name: exit $rc, expected $want"
		[ $rc -eq 77 ] && echo "     (77: epollcr_shadow_print not found although $PRELOAD is preloaded)"
		sed 's/^/     | /' "$tmp/out" | tail -n 5
		sed 's/^/     | /' "$tmp/err" | head -n 80
		status=1
	fi
}

echo "== the checker against the program's own model of the kernel"
for seed in 1 2 3; do
	run "model seed $seed" 0 -- -m -n "$OPS" "$seed"
done
run "model seed 4, strict (-s)" 0 -- -m -s -n "$OPS" 4
run "corrupted model seed 1 must be caught" 1 -- -m -B -n "$OPS" 1

echo "== without the shim"
run "no preload" 77 -- -n 10 1

echo "== with the shim ($PRELOAD)"
for seed in $SEEDS; do
	run "shim seed $seed" 0 LD_PRELOAD="$PRELOAD" -- -n "$OPS" "$seed"
done
for seed in $SEEDS_NOBT; do
	run "shim seed $seed, EPOLLCR_BACKTRACE=0" 0 LD_PRELOAD="$PRELOAD" \
		EPOLLCR_BACKTRACE=0 -- -n "$OPS" "$seed"
done
# -s: no fork, no fd the shim cannot see: nothing may be uncertain.
run "shim seed 11, strict" 0 LD_PRELOAD="$PRELOAD" -- -s -n "$OPS" 11
run "shim seed 12, strict, EPOLLCR_BACKTRACE=0" 0 LD_PRELOAD="$PRELOAD" \
	EPOLLCR_BACKTRACE=0 -- -s -n "$OPS" 12
run "shim seed 99, EPOLLCR_BACKTRACE=0, checkpoint every op" 0 \
	LD_PRELOAD="$PRELOAD" EPOLLCR_BACKTRACE=0 -- -n 1500 -i 1 99

[ $status -eq 0 ] && echo "PASS random_ops"
exit $status
