#!/usr/bin/env bash
# `epollcr dump` validates the image while it arrives: a "program" that
# answers a dump request with garbage is cut off at its first bytes, one
# that streams valid records for ever at IMAGE_MAX_BYTES (256 MiB); the
# dump fails with one line and leaves no file behind.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/behind
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
FAKE=$TOP/test/integration/fake_recorder.py
SIG=40
LIMIT=$((256 << 20))

start real "$PROG" || { fail "behind did not start"; finish; }
dump_check real "$STARTED_PID" >/dev/null || { fail "no real image to start from"; finish; }
stop "$STARTED_PID"

# fake MODE: run the fake, dump it, check the failure; sets ELAPSED_MS.
fake() {
	local mode=$1 t0 out rc
	mkdir -p "$WORK/$mode"
	READY=ready start "fake-$mode" python3 "$FAKE" "$mode" "$WORK/$mode" "$SIG" "$WORK/real.img" ||
		{ fail "$mode: the fake did not start"; return 1; }
	local pid=$STARTED_PID
	t0=$EPOCHREALTIME
	out=$(timeout -k 2 60 "$CLI" dump --signal "$SIG" --timeout 30 -o "$WORK/$mode/out.img" "$pid" 2>&1)
	rc=$?
	ELAPSED_MS=$(( (${EPOCHREALTIME//[.,]/} - ${t0//[.,]/}) / 1000 ))
	wait_for "$WORK/fake-$mode.out" sent 35 >/dev/null
	SENT=$(sed -n 's/^sent //p' "$WORK/fake-$mode.out")
	echo "$mode: dump exit $rc after $ELAPSED_MS ms, the fake sent ${SENT:-?} bytes: $out"
	[ "$rc" = 1 ] && pass "$mode: dump fails (exit 1)" || fail "$mode: dump exit $rc"
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && pass "$mode: one line" || fail "$mode: $(printf '%s\n' "$out" | wc -l) lines"
	[ -z "$(ls -A "$WORK/$mode" | grep -v '^libepollcr.so$')" ] && pass "$mode: no file left" ||
		fail "$mode: files left: $(ls -A "$WORK/$mode")"
	MSG=$out
	stop "$pid"
}

fake garbage
case $MSG in *"sent an invalid image: offset 0: not an epollcr image"*) pass "garbage: refused at offset 0" ;;
*) fail "garbage: unexpected message" ;; esac
[ "$ELAPSED_MS" -lt 1000 ] && pass "garbage: stopped in $ELAPSED_MS ms" || fail "garbage: took $ELAPSED_MS ms"
[ "${SENT:-0}" -lt $((16 << 20)) ] && pass "garbage: the fake got rid of $SENT bytes only" || fail "garbage: the fake sent $SENT bytes"

fake endless
case $MSG in *"longer than $LIMIT bytes"*) pass "endless: stopped at the limit" ;;
*) fail "endless: unexpected message" ;; esac
[ "${SENT:-0}" -lt $((LIMIT + (16 << 20))) ] && pass "endless: the fake sent $SENT bytes (limit $LIMIT)" ||
	fail "endless: the fake sent $SENT bytes"
finish
