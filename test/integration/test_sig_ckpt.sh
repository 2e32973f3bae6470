#!/usr/bin/env bash
# The program's own action for the checkpoint signal behaves as without
# the shim (which keeps its handler in the kernel and runs the program's
# from it): sig_ckpt prints the action read back, what its handler runs
# with blocked, SA_RESETHAND, and whether a blocking read is interrupted
# (no SA_RESTART) or restarted; the run under the shim must print the same
# lines as the run without it.  Then Python, whose handlers never have
# SA_RESTART: a handler that raises while the main thread blocks in
# os.read() must interrupt it (under the shim before, the read restarted
# and the program waited for ever).
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/sig_ckpt
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }

timeout 30 "$PROG" >"$WORK/plain.out" 2>"$WORK/plain.err" ||
	fail "sig_ckpt without the shim: exit $?"
LD_PRELOAD=$PRELOAD timeout 30 "$PROG" >"$WORK/shim.out" 2>"$WORK/shim.err" ||
	fail "sig_ckpt under the shim: exit $?"
if [ "$(wc -l <"$WORK/plain.out")" -lt 11 ]; then
	fail "sig_ckpt printed too little without the shim"
	cat "$WORK/plain.out"
elif diff "$WORK/plain.out" "$WORK/shim.out" >"$WORK/diff"; then
	pass "the checkpoint signal's action, mask, SA_RESETHAND and SA_RESTART as without the shim ($(wc -l <"$WORK/plain.out") checks)"
else
	fail "the checkpoint signal's action differs under the shim (< without, > with):"
	cat "$WORK/diff"
fi

PY=$(command -v python3)
if [ -z "$PY" ]; then
	echo "skip: no python3"
else
	cat >"$WORK/eintr.py" <<'EOF'
import os, select, signal, sys, time
s = signal.SIGRTMAX - 3
ep = select.epoll()  # under the shim: its recorder thread runs
class Boom(Exception):
    pass
def handler(*args):
    raise Boom()
signal.signal(s, handler)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    time.sleep(0.3)
    os.kill(os.getppid(), s)
    os._exit(0)
signal.alarm(3)  # nothing is ever written: a restarted read waits for it
try:
    os.read(r, 1)
    print('read returned')
except Boom:
    print('handler ran, read interrupted')
signal.alarm(0)
os.waitpid(pid, 0)
EOF
	out=$(LD_PRELOAD=$PRELOAD timeout 20 "$PY" "$WORK/eintr.py" 2>&1)
	st=$?
	[ "$out" = "handler ran, read interrupted" ] && [ $st = 0 ] &&
		pass "python: a handler of the checkpoint signal interrupts os.read()" ||
		fail "python: os.read() was not interrupted by the handler (exit $st, 142: SIGALRM after 3 s): '$out'"
fi
finish
