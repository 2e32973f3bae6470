#!/usr/bin/env bash
# Run every test of the build directory $1 and print "N passed, N failed".
# Unit tests: build/test/unit/test_*; integration: test/integration/test_*.sh
# (each gets BUILD, LIB, CLI, PRELOAD in its environment).  ONLY=unit or
# ONLY=integration narrows the run; T=pattern keeps matching names.
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
	export TSAN_OPTIONS="halt_on_error=1:report_signal_unsafe=0:die_after_fork=0:${TSAN_OPTIONS:-}" ;;
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

if [ "${ONLY:-unit}" = unit ] || [ -z "${ONLY:-}" ]; then
	for t in "$BUILD"/test/unit/test_*; do
		[ -x "$t" ] || continue
		run_one "unit/$(basename "$t")" "$t"
	done
fi
if [ "${ONLY:-integration}" = integration ] || [ -z "${ONLY:-}" ]; then
	for t in test/integration/test_*.sh; do
		[ -f "$t" ] || continue
		run_one "integration/$(basename "$t" .sh)" bash "$t"
	done
fi
echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
