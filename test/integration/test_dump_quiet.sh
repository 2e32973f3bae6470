#!/usr/bin/env bash
# A dump is invisible to the program: `epollcr dump` signals the recorder
# thread alone, so threads asleep in epoll_wait, epoll_pwait, poll and
# nanosleep (which the kernel never restarts after a handler) see no
# EINTR across 25 dumps.  sleepers.c counts them.  Then the workaround
# docs/limitations.md gives for a plain `kill -SIG PID` (process-directed:
# a program thread would take it): with the signal blocked in every
# program thread, the recorder thread takes it, writes its image into
# EPOLLCR_DIR each time, and nothing is interrupted either.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/sleepers
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
start sleepers "$PROG" "$WORK/stop" || { fail "sleepers did not start"; finish; }
PID=$STARTED_PID
ok=0
for i in $(seq 1 25); do
	"$CLI" dump -o "$WORK/s.img" "$PID" >/dev/null 2>"$WORK/dump.err" &&
		ok=$((ok + 1)) || cat "$WORK/dump.err"
	sleep 0.03
done
[ "$ok" = 25 ] && pass "25 dumps taken" || fail "$ok of 25 dumps succeeded"
touch "$WORK/stop"
wait_for "$WORK/sleepers.out" "^calls" 10 || fail "sleepers did not finish"
line=$(grep '^eintr' "$WORK/sleepers.out")
[ "$line" = "eintr epoll_wait=0 epoll_pwait=0 poll=0 nanosleep=0" ] &&
	pass "no call returned EINTR ($line)" || fail "the dumps interrupted the program: $line"
wait "$PID"; rc=$?
[ "$rc" = 0 ] && pass "sleepers exited 0" || fail "sleepers exited $rc"

SIG=$(python3 -c 'import signal; print(int(signal.SIGRTMAX) - 3)')
mkdir -m 700 "$WORK/dir"
rm -f "$WORK/stop"
EPOLLCR_DIR=$WORK/dir start blocked "$PROG" "$WORK/stop" "$SIG" ||
	{ fail "sleepers (signal $SIG blocked) did not start"; finish; }
PID=$STARTED_PID
img=$WORK/dir/epollcr-$PID.img
for i in 1 2 3 4 5; do
	rm -f "$img"
	kill -s "$SIG" "$PID"
	for ((j = 0; j < 100; j++)); do
		[ -s "$img" ] && break
		sleep 0.05
	done
	[ -s "$img" ] || break
done
[ -s "$img" ] && "$CLI" show "$img" >/dev/null &&
	pass "5 plain kills of signal $SIG, blocked by the program: the recorder wrote an image each time" ||
	fail "plain kill $i of signal $SIG: no image in EPOLLCR_DIR"
touch "$WORK/stop"
wait_for "$WORK/blocked.out" "^calls" 10 || fail "sleepers did not finish"
line=$(grep '^eintr' "$WORK/blocked.out")
[ "$line" = "eintr epoll_wait=0 epoll_pwait=0 poll=0 nanosleep=0" ] &&
	pass "no call returned EINTR ($line)" || fail "the plain kills interrupted the program: $line"
finish
