#!/usr/bin/env bash
# `epollcr verify` against a process that has exited.  A zombie's
# /proc/PID/fd reads as empty, so comparing with it reported every set of
# the image missing ("epoll set missing"), as if the live program had
# closed them; it must say the process has exited instead, as `epollcr
# dump` does.  Then the same once the zombie is reaped.
. "$(dirname "$0")/lib.sh"

PY=$(python3 -c 'import sys; print(sys.executable)')
# The child's parent is a sleep that never reaps it: it stays a zombie.
(
	"$PY" -c '
import os, select, time
e = select.epoll()
r, w = os.pipe()
e.register(r, select.EPOLLIN)
print("ready", flush=True)
time.sleep(60)' >"$WORK/child.out" &
	echo $! >"$WORK/child.pid"
	exec sleep 60
) &
HOLDER=$!
PIDS+=("$HOLDER")
wait_for "$WORK/child.out" ready 20 || { fail "the child did not start"; finish; }
CHILD=$(cat "$WORK/child.pid")
PIDS+=("$CHILD")

"$CLI" dump --kernel -o "$WORK/c.img" "$CHILD" >/dev/null 2>"$WORK/dump.err" ||
	{ fail "dump of the child failed: $(cat "$WORK/dump.err")"; finish; }
"$CLI" verify "$WORK/c.img" >"$WORK/v1.out" 2>&1 &&
	pass "verify of the live child: $(cat "$WORK/v1.out")" ||
	fail "verify of the live child: $(cat "$WORK/v1.out")"

kill -KILL "$CHILD"
for ((i = 0; i < 100; i++)); do
	[ "$(awk '{ print $3 }' "/proc/$CHILD/stat" 2>/dev/null)" = Z ] && break
	sleep 0.05
done
state=$(awk '{ print $3 }' "/proc/$CHILD/stat" 2>/dev/null)
if [ "$state" = Z ]; then
	"$CLI" verify "$WORK/c.img" >"$WORK/v2.out" 2>"$WORK/v2.err"; rc=$?
	if [ "$rc" = 1 ] && grep -q "pid $CHILD has exited (a zombie" "$WORK/v2.err" &&
		! grep -q "missing" "$WORK/v2.out"; then
		pass "verify of the zombie: exit 1, $(cat "$WORK/v2.err")"
	else
		fail "verify of the zombie: exit $rc, stdout '$(cat "$WORK/v2.out")', stderr '$(cat "$WORK/v2.err")'"
	fi
else
	fail "the killed child is not a zombie (state '$state')"
fi

# The holder's end gives the zombie to a reaper (init or a subreaper).
kill -KILL "$HOLDER"
wait "$HOLDER" 2>/dev/null
for ((i = 0; i < 100; i++)); do
	[ -e "/proc/$CHILD" ] || break
	sleep 0.05
done
if [ -e "/proc/$CHILD" ]; then
	echo "skip: pid $CHILD was not reaped within 5 s (no reaping init here)"
else
	"$CLI" verify "$WORK/c.img" >"$WORK/v3.out" 2>"$WORK/v3.err"; rc=$?
	[ "$rc" = 1 ] && grep -q "no process has pid $CHILD (it has exited)" "$WORK/v3.err" &&
		pass "verify of the reaped child: exit 1, $(cat "$WORK/v3.err")" ||
		fail "verify of the reaped child: exit $rc, stdout '$(cat "$WORK/v3.out")', stderr '$(cat "$WORK/v3.err")'"
fi
finish
