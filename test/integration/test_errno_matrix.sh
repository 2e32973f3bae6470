#!/usr/bin/env bash
# errno_matrix without and with the shim preloaded: every line (return value,
# fd number, errno name) must be identical, and both runs must agree with the
# kernel facts the program checks itself (exit 0).
# Environment (tools/run-tests.sh): TOP, BUILD, PRELOAD.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) bdir=$BUILD ;; *) bdir=$TOP/$BUILD ;; esac
PRELOAD=${PRELOAD:-$bdir/libepollcr.so}
prog=$bdir/test/integration/errno_matrix

fail() { echo "FAIL: $*"; exit 1; }

[ -x "$prog" ] || fail "$prog is not built (make tests)"
lib=${PRELOAD##*:}
[ -f "$lib" ] || fail "the shim $lib is not built (make $BUILD/libepollcr.so)"

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

# run NAME ENV... : run the matrix with extra environment, keep its output.
run() {
	local name=$1; shift
	timeout -k 5 30 env "$@" "$prog" >"$tmp/$name.out" 2>"$tmp/$name.err"
	local rc=$?
	echo "$name: exit $rc, $(wc -l <"$tmp/$name.out") cases"
	if [ $rc -ne 0 ]; then
		sed 's/^/    /' "$tmp/$name.err"
		echo "$name: errno_matrix exited with $rc"
		status=1
	fi
}

status=0

run plain
[ "$(wc -l <"$tmp/plain.out")" -gt 250 ] || fail "plain: too few cases"
run preload LD_PRELOAD="$PRELOAD" ERRNO_MATRIX_REQUIRE_SHIM=1
run preload_nobt LD_PRELOAD="$PRELOAD" ERRNO_MATRIX_REQUIRE_SHIM=1 \
	EPOLLCR_BACKTRACE=0

for name in preload preload_nobt; do
	if diff -u "$tmp/plain.out" "$tmp/$name.out" >"$tmp/$name.diff"; then
		echo "compared $(wc -l <"$tmp/plain.out") lines (ret, errno) plain vs $name: identical"
	else
		echo "DIFFERENCE plain vs $name:"
		cat "$tmp/$name.diff"
		status=1
	fi
	if [ -s "$tmp/$name.err" ] && [ "$(cat "$tmp/$name.err")" != "$(cat "$tmp/plain.err")" ]; then
		echo "$name wrote to stderr:"
		sed 's/^/    /' "$tmp/$name.err"
		status=1
	fi
done
[ $status -eq 0 ] && echo "PASS errno_matrix"
exit $status
