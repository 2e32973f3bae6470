#!/usr/bin/env bash
# Run every test of the build directory $1 and print "N passed, N failed".
# Unit tests: build/test/unit/test_*; integration: test/integration/test_*.sh
# (each gets BUILD, LIB, CLI, PRELOAD in its environment).  ONLY=unit or
# ONLY=integration narrows the run; T=pattern keeps matching names.
# LONG=1 runs the long soaks instead, test/integration/long_*.sh
# (`make check-long`).  The total wall, user and system time come last
# but one.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${1:-build}
export BUILD
export LIB="$PWD/$BUILD/libepollcr.so"
export CLI="$PWD/$BUILD/epollcr"
export TOP="$PWD"
# Under a sanitizer, its runtime must come first in LD_PRELOAD.
PRELOAD="$LIB"
case "${SAN:-}" in
*address*) PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so):$LIB"
	export ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" ;;
*thread*) PRELOAD="$(${CC:-gcc} -print-file-name=libtsan.so):$LIB"
	# The shim's recorder thread makes every epoll program multi-threaded;
	# its forked children start their own (TSan refuses that by default).
	# A forked child re-initialises the shim's locks that the fork held
	# (the only correct thing for an rwlock taken by another TID): TSan
	# calls that mutex misuse, so those reports are off; races are not.
	export TSAN_OPTIONS="halt_on_error=1:report_signal_unsafe=0:die_after_fork=0:report_mutex_bugs=0:${TSAN_OPTIONS:-}" ;;
*undefined*) export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" ;;
esac
export PRELOAD
passed=0 failed=0 failures=()
logdir="$BUILD/test-logs"
mkdir -p "$logdir"

run_one() { # name, command...
	local name=$1; shift
	if [ -n "${T:-}" ] && [[ $name != *$T* ]]; then return; fi
	local log="$logdir/${name//\//_}.log"
	local start=$SECONDS
	if timeout -k 10 "${TEST_TIMEOUT:-600}" "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		printf 'PASS %-50s %4ss\n' "$name" $((SECONDS - start))
	else
		failed=$((failed + 1)); failures+=("$name")
		printf 'FAIL %-50s %4ss (log: %s)\n' "$name" $((SECONDS - start)) "$log"
		tail -n 40 "$log" | sed 's/^/    | /'
	fi
}

if [ -n "${LONG:-}" ] && [ "$LONG" != 0 ]; then
	ONLY=long
fi
if [ "${ONLY:-unit}" = unit ] || [ -z "${ONLY:-}" ]; then
	for t in "$BUILD"/test/unit/test_*; do
		[ -x "$t" ] || continue
		run_one "unit/$(basename "$t")" "$t"
	done
fi
if [ "${ONLY:-integration}" = integration ] || [ "${ONLY:-}" = long ] ||
	[ -z "${ONLY:-}" ]; then
	# A dump (and fork) holds every set's lock at once; TSan's deadlock
	# detector tracks at most 64 held locks per thread and aborts beyond.
	# Lock order is checked by the unit tests, which hold few.
	[[ ${SAN:-} == *thread* ]] && export TSAN_OPTIONS="$TSAN_OPTIONS:detect_deadlocks=0"
	pattern=test/integration/test_*.sh
	[ "${ONLY:-}" = long ] && pattern=test/integration/long_*.sh
	for t in $pattern; do
		[ -f "$t" ] || continue
		# Third-party programs (node, nginx...) are not ours to race-check:
		# under TSan they get the (uninstrumented) shim alone.
		name="integration/$(basename "$t" .sh)"
		[ "${ONLY:-}" = long ] && name="long/$(basename "$t" .sh)"
		if [[ ${SAN:-} == *thread* && $t == */test_real_* ]]; then
			PRELOAD=$LIB run_one "$name" bash "$t"
		else
			run_one "$name" bash "$t"
		fi
	done
fi
echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
# CPU time of every test (this script's children) beside the wall time:
# on a shared machine the wall time also counts the others' load.
# (`times` into a file: in a pipe it would run in a subshell, which has no
# children.)
times >"$logdir/times"
tail -n 1 "$logdir/times" | awk -v wall=$SECONDS '
	function sec(t) { split(t, a, /[ms]/); return a[1] * 60 + a[2] }
	{ printf "time: %d s wall, %.0f s user, %.0f s sys\n", wall, sec($1), sec($2) }'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
