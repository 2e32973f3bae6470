#!/usr/bin/env bash
# A program that ignores the checkpoint signal passes SIG_IGN on to the
# programs it starts, as without the shim (whose handler stands in the
# kernel, and exec resets a caught signal to SIG_DFL): sig_exec sets
# SIG_IGN and starts itself every way (each exec function, vfork + execve,
# posix_spawn, posix_spawnp, system, popen), each child reading SigIgn in
# its own /proc/self/status without the shim, and a vfork child reads the
# action back with sigaction() and signal(); the lines under the shim
# must equal those without it (before: every child "not ignored").  After
# two failed execs and all the spawns the shim's handler must be back: a
# dump through the shim (not kernel-only) must succeed.  Then Python:
# subprocess (a vfork child) after signal.signal(SIG_IGN), the child with
# the shim (signal.getsignal) and without it (SigIgn).
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/sig_exec
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }

READY_SECONDS=20
start plain env -u LD_PRELOAD "$PROG" || fail "sig_exec without the shim did not start"
plain_pid=$STARTED_PID
start shim "$PROG" || fail "sig_exec under the shim did not start"
shim_pid=$STARTED_PID
n=$(grep -c ': SIG_IGN$' "$WORK/plain.out")
if [ "$n" -lt 16 ]; then
	fail "without the shim, only $n children saw SIG_IGN"
	cat "$WORK/plain.out"
elif diff "$WORK/plain.out" "$WORK/shim.out" >"$WORK/diff"; then
	pass "SIG_IGN of the checkpoint signal reaches the children of every exec and spawn ($n lines as without the shim)"
else
	fail "the children saw another disposition under the shim (< without, > with):"
	cat "$WORK/diff"
fi
if timeout 20 "$CLI" dump -o "$WORK/shim.img" "$shim_pid" >/dev/null 2>"$WORK/dump.err" &&
	! grep -q kernel-only "$WORK/dump.err"; then
	pass "dumped through the shim after the failed execs and spawns"
else
	fail "dump after the execs and spawns: $(cat "$WORK/dump.err")"
fi
stop "$plain_pid"
stop "$shim_pid"

PY=$(command -v python3)
if [ -z "$PY" ]; then
	echo "skip: no python3"
else
	cat >"$WORK/ign.py" <<'EOF'
import os, select, signal, subprocess, sys
s = signal.SIGRTMAX - 3
ep = select.epoll()  # under the shim: its recorder thread runs
signal.signal(s, signal.SIG_IGN)
shim = subprocess.run([sys.executable, '-c',
    'import signal; print(signal.getsignal(signal.SIGRTMAX - 3))'],
    capture_output=True, text=True, timeout=20).stdout.strip()
env = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
kernel = subprocess.run([sys.executable, '-c',
    'import signal\n'
    'm = [l for l in open("/proc/self/status") if l.startswith("SigIgn")]\n'
    'print((int(m[0].split()[1], 16) >> (signal.SIGRTMAX - 4)) & 1)'],
    env=env, capture_output=True, text=True, timeout=20).stdout.strip()
print(shim, kernel)
EOF
	out=$(LD_PRELOAD=$PRELOAD timeout 30 "$PY" "$WORK/ign.py" 2>&1)
	[ "$out" = "1 1" ] &&
		pass "python subprocess: the child ignores it (getsignal, SigIgn)" ||
		fail "python subprocess: the child's getsignal and SigIgn bit: '$out' (expected '1 1': SIG_IGN is 1)"
fi
finish
