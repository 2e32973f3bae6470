#!/usr/bin/env bash
# The library's own descriptors stay out of the program's range: fd_race
# dup2()s onto its lowest free numbers in a tight loop while 60 plain
# dumps (kill: the image directory, its holders and a temporary file are
# opened inside the program) and 20 `epollcr dump` requests (the /proc
# reads) run.  Every dump succeeds, the program never finds one of its
# descriptors replaced or closed under it.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/fd_race
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
mkdir -m 700 "$WORK/dir"
EPOLLCR_LOG=2 EPOLLCR_DIR=$WORK/dir start race "$PROG" "$WORK/stop" || { fail "fd_race did not start"; finish; }
PID=$STARTED_PID
SIG=$(sed -n 's/^epollcr-sig\([0-9]*\)$/\1/p' /proc/"$PID"/task/*/comm | head -1)
[ -n "$SIG" ] || { fail "no recorder thread"; finish; }
ok=0
for ((n = 1; n <= 60; n++)); do
	kill -"$SIG" "$PID" || break
	for ((i = 0; i < 250; i++)); do
		[ "$(grep -c "image written\|failed\|no image directory" "$WORK/race.err")" -ge "$n" ] && break
		sleep 0.02
	done
	if ((n % 3 == 0)); then
		"$CLI" dump -o "$WORK/d.img" "$PID" >/dev/null 2>>"$WORK/dump.err" && ok=$((ok + 1))
	fi
done
written=$(grep -c "image written" "$WORK/race.err")
[ "$written" = 60 ] && pass "60 plain dumps written" ||
	fail "$written of 60 plain dumps written: $(grep -v 'image written' "$WORK/race.err" | head -3)"
[ "$ok" = 20 ] && pass "20 epollcr dump requests answered" || fail "$ok of 20 dump requests: $(head -3 "$WORK/dump.err")"
touch "$WORK/stop"
wait_for "$WORK/race.out" "^errors" 10 || fail "fd_race did not finish"
wait "$PID"; rc=$?
line=$(grep '^errors' "$WORK/race.out")
[ "$rc" = 0 ] && pass "the program's descriptors were never touched ($line)" ||
	fail "fd_race exited $rc: $line $(grep fd_race "$WORK/race.err" | head -3)"
finish
