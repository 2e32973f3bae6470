#!/usr/bin/env bash
# Wrapped calls from a signal handler (close, dup, dup2, epoll_ctl) that
# interrupts the same thread inside a wrapped close(), with dumps taken
# meanwhile: the fd-operation lock is held shared by the interrupted
# close and a dump queues for it exclusive, so a handler that took it
# again would wait for ever.  Nothing may hang, every dump completes, and
# the last image equals the kernel's view.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/sig_reenter
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
SECONDS_RUN=${SIG_REENTER_SECONDS:-6}
start sig_reenter "$PROG" "$SECONDS_RUN" || { fail "sig_reenter did not start"; finish; }
PID=$STARTED_PID
ok=0 bad=0
end=$((SECONDS + SECONDS_RUN))
MAX_DUMPS=${SIG_REENTER_DUMPS:-200}
for ((i = 0; i < MAX_DUMPS && SECONDS < end; i++)); do
	if timeout -k 2 10 "$CLI" dump -o "$WORK/d.img" "$PID" >/dev/null 2>"$WORK/dump.err"; then
		ok=$((ok + 1))
		"$CLI" show --json "$WORK/d.img" >"$WORK/d$i.json" 2>/dev/null ||
			rm -f "$WORK/d$i.json"
	else
		bad=$((bad + 1)); cat "$WORK/dump.err"
		kill -0 "$PID" 2>/dev/null || break
	fi
done
[ "$ok" -gt 0 ] && [ "$bad" = 0 ] && pass "$ok dumps during the run completed" ||
	fail "$bad of $((ok + bad)) dumps failed or hung"
# Every image a consistent cut: a handler's close of a watched copy
# changes the kernel before its queued bookkeeping reaches the shadow, and
# no cut may fall in between (a phantom watch, "does not hold").
n=$(inconsistent_images "$WORK"/d[0-9]*.json 2>"$WORK/inconsistent.txt") || n=$ok
head -c 2000 "$WORK/inconsistent.txt"
[ "$n" = 0 ] && pass "all $ok images are consistent cuts" ||
	fail "$n of $ok images are inconsistent (a watch the shim and the kernel disagree on)"
if wait_for "$WORK/sig_reenter.out" '^done' 30; then
	pass "the program finished: $(grep '^done' "$WORK/sig_reenter.out")"
	if dump_check final "$PID"; then pass "the last image equals the kernel's view"
	else fail "the last image differs from the kernel's view"; fi
else
	fail "the program hung (or failed): $(cat "$WORK/sig_reenter.err")"
	grep -H . /proc/"$PID"/task/*/wchan 2>/dev/null | head
fi
stop "$PID"
finish
