# Shared helpers of the integration scripts (sourced, not run).
# Environment from tools/run-tests.sh: BUILD, LIB, CLI, PRELOAD, TOP.
set -u
: "${BUILD:=build}" "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${CLI:=$TOP/$BUILD/epollcr}" "${LIB:=$TOP/$BUILD/libepollcr.so}"
: "${PRELOAD:=$LIB}"
PROGS=$TOP/$BUILD/test/integration
WORK=$(mktemp -d "${TMPDIR:-/tmp}/epollcr-test.XXXXXX")
chmod 755 "$WORK"
PIDS=()
FAILS=0

cleanup() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }

# wait_for FILE PATTERN [SECONDS]: until FILE contains PATTERN.
wait_for() {
	local i
	for ((i = 0; i < ${3:-10} * 20; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "timed out waiting for '$2' in $1:"; cat "$1"
	return 1
}

# start NAME CMD...: run CMD under the shim (LD_PRELOAD=$PRELOAD, so
# sanitizer runtimes come first) in the background, output in
# $WORK/NAME.out; sets STARTED_PID.  Waits for "ready" when READY is unset.
start() {
	local name=$1; shift
	LD_PRELOAD=$PRELOAD "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
	wait_for "$WORK/$name.out" "${READY:-ready}" "${READY_SECONDS:-20}"
}

# stop PID: SIGTERM, then SIGKILL after 5 s.
stop() {
	local i
	kill -TERM "$1" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# dump_check NAME PID [--subset]: dump PID, write $WORK/NAME.img and
# $WORK/NAME.json, compare it with the kernel's view; returns non-zero
# (with the reason printed) on any failure.
dump_check() {
	local name=$1 pid=$2; shift 2
	"$CLI" dump -o "$WORK/$name.img" "$pid" >/dev/null || { echo "dump of $pid failed"; return 1; }
	"$CLI" show --json "$WORK/$name.img" >"$WORK/$name.json" || { echo "show failed"; return 1; }
	python3 "$TOP/test/integration/check_image.py" "$pid" "$WORK/$name.json" "$@"
}

# inconsistent_images JSON...: how many of the images (show --json) are
# not consistent cuts (a watch the shim never saw, a watch whose file the
# shadow says no fd holds, a set behind the shim's back), read by one
# python3; each such image's diagnostics go to stderr.
inconsistent_images() {
	python3 -c '
import json, sys
bad = 0
for path in sys.argv[1:]:
    j = json.load(open(path))
    d = [d for d in j["diagnostics"] if "never saw" in d["message"] or
         "does not hold" in d["message"] or "behind the shim" in d["message"]]
    if d:
        bad += 1
        print(path, d, file=sys.stderr)
print(bad)' "$@"
}

# json_query FILE EXPR: evaluate a python expression on the JSON as `j`.
json_query() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

finish() {
	if [ "$FAILS" -gt 0 ]; then
		echo "$FAILS check(s) failed"
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
