#!/usr/bin/env bash
# A dump request whose requester gave up leaves its abstract socket name
# free: another user may bind it and wait for the image.  The program
# checks who listens (SO_PEERCRED) against the uid the request's siginfo
# carries (or root) and sends nothing to anyone else.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/behind
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && [ -x /usr/bin/python3 ] || { echo "needs root, setpriv and /usr/bin/python3: skipped"; finish; }
start theft "$PROG" || { fail "behind did not start"; finish; }
PID=$STARTED_PID
SIG=$(sed -n 's/^epollcr-sig\([0-9]*\)$/\1/p' /proc/"$PID"/task/*/comm | head -1)
[ -n "$SIG" ] || { fail "no recorder thread in $PID"; finish; }
MAGIC=$(sed -n 's/^#define RECORDER_REQ_MAGIC \(0x[0-9a-f]*\)u.*/\1/p' "$TOP/recorder/recorder.h")
NONCE=$((RANDOM * 256 % 16777216 + 1))

# listen NAME_NONCE: as nobody, bind the request's name, print the number
# of bytes received from the first connection (or "none" after 5 s).
cat >"$WORK/listen.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0epollcr-dump-%s-%s" % (sys.argv[1], sys.argv[2]))
s.listen(1)
print("listening", flush=True)
s.settimeout(5)
try:
    c, _ = s.accept()
except socket.timeout:
    print("none"); sys.exit(0)
c.settimeout(5)
n = 0
try:
    while True:
        b = c.recv(65536)
        if not b: break
        n += len(b)
except socket.timeout:
    pass
print("received", n)
PY
# Give the listener's directory to nobody (mktemp's is 0700 root).
chmod 755 "$WORK"
setpriv --reuid=65534 --regid=65534 --clear-groups \
	/usr/bin/python3 "$WORK/listen.py" "$PID" "$NONCE" >"$WORK/listen.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
wait_for "$WORK/listen.out" listening 10 || { fail "the listener did not start"; finish; }
# The requester (root) asks and is gone: it never bound the name.
python3 -c 'import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
class sigval(ctypes.Union): _fields_ = [("sival_int", ctypes.c_int), ("sival_ptr", ctypes.c_void_p)]
v = sigval(); v.sival_int = int(sys.argv[3], 0) | int(sys.argv[4])
sys.exit(libc.sigqueue(int(sys.argv[1]), int(sys.argv[2]), v) != 0)' "$PID" "$SIG" "$MAGIC" "$NONCE" ||
	fail "sigqueue failed"
wait "$LPID"
got=$(cat "$WORK/listen.out" | tail -1)
case $got in
"received 0") pass "the other user's listener got nothing" ;;
*) fail "the other user's listener: $got" ;;
esac
if wait_for "$WORK/theft.err" "refused: uid 0 asked, but uid 65534" 5; then
	pass "the program says why it refused"
else
	fail "no refusal in the program's log"
fi
# A real request still gets its image.
if dump_check ok "$PID"; then pass "a dump by root still works"
else fail "a dump by root failed after the refusal"; fi
stop "$PID"
finish
