#!/usr/bin/env bash
# A dump is invisible to the program: `epollcr dump` signals the recorder
# thread alone, so threads asleep in epoll_wait, epoll_pwait, poll and
# nanosleep (which the kernel never restarts after a handler) see no
# EINTR across 25 dumps.  sleepers.c counts them.
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
finish
