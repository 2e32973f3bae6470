#!/usr/bin/env bash
# Every file status flag survives dump and restore (docs/restore.md, "File
# status flags"): restore_flags.py (python3 under the shim) watches a
# packet-mode pipe, a pipe with O_APPEND and O_DIRECT ends, an O_ASYNC
# listener, an O_NOATIME|O_APPEND UDP socket and an O_NOATIME|O_APPEND
# eventfd.  It is dumped and stopped; `epollcr restore --hold` restores the
# image as root and as nobody (setpriv), and each restored fd's fdinfo
# `flags:` must equal the original's.  As nobody the eventfd's O_NOATIME
# cannot be set (its anonymous inode belongs to root): the restore warns
# and verify reports exactly that difference.  Then a flag flipped in the
# restored process (through pidfd_getfd, as root) is reported by verify
# with both values.  The packet mode is checked by the kernel's own
# behaviour: two writes into the restored pipe are two reads.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=$(python3 -c 'import sys; print(sys.executable)')
PROG=$TOP/test/integration/restore_flags.py

# flags_of PID FD: the fdinfo flags of PID's FD without O_CLOEXEC (octal).
flags_of() {
	local f
	f=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$1/fdinfo/$2") || return 1
	printf '0%o\n' $((8#$f & ~8#2000000))
}

# restore_bg NAME [PREFIX...] -- ARGS: `epollcr restore --hold ARGS` in the
# background (run through PREFIX, e.g. setpriv), until it prints ready
# (sets HOLD_PID: the restoring process itself, PREFIX execs it).
restore_bg() {
	local name=$1 pre=()
	shift
	while [ "$1" != -- ]; do pre+=("$1"); shift; done
	shift
	"${pre[@]}" "$CLI" restore --hold "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	HOLD_PID=$!
	PIDS+=("$HOLD_PID")
	wait_for "$WORK/$name.out" ready 20 || { cat "$WORK/$name.err"; return 1; }
}

# pidfd_setfl PID FD CLEAR: clear the flags CLEAR (octal) of PID's FD,
# through a duplicate of its open file (pidfd_getfd: needs root here).
pidfd_setfl() {
	"$PY" - "$@" <<'EOF'
import ctypes, fcntl, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid, fd, clear = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3], 8)
pidfd = libc.syscall(434, pid, 0)            # pidfd_open
dup = libc.syscall(438, pidfd, fd, 0) if pidfd >= 0 else -1  # pidfd_getfd
if dup < 0:
    sys.exit("pidfd_getfd: " + os.strerror(ctypes.get_errno()))
fcntl.fcntl(dup, fcntl.F_SETFL, fcntl.fcntl(dup, fcntl.F_GETFL) & ~clear)
EOF
}

cd "$WORK" || exit 1
start prog "$PY" "$PROG" || { fail "restore_flags.py did not start"; cat "$WORK/prog.err"; finish; }
PID=$STARTED_PID
read -r PR PW < <(sed -n 's/^fd packet //p' "$WORK/prog.out")
read -r AR AW < <(sed -n 's/^fd append //p' "$WORK/prog.out")
LS=$(sed -n 's/^fd async //p' "$WORK/prog.out")
US=$(sed -n 's/^fd noatime //p' "$WORK/prog.out")
EFD=$(sed -n 's/^fd efd //p' "$WORK/prog.out")
FDS="$PR $PW $AR $AW $LS $US $EFD"
declare -A orig
for fd in $FDS; do orig[$fd]=$(flags_of "$PID" "$fd"); done
echo "original flags: $(for fd in $FDS; do printf '%s=%s ' "$fd" "${orig[$fd]}"; done)"
[ "${orig[$PW]}" = 040001 ] && [ "${orig[$AW]}" = 06001 ] &&
	[ "${orig[$AR]}" = 040000 ] && [ "${orig[$LS]}" = 024002 ] &&
	[ "${orig[$US]}" = 01002002 ] && [ "${orig[$EFD]}" = 01002002 ] &&
	pass "the program's files have the flags it asked for" ||
	fail "the program's files lack flags it set"
"$CLI" dump -o "$WORK/f.img" "$PID" >/dev/null || fail "dump"
chmod 644 "$WORK/f.img"
"$CLI" verify "$WORK/f.img" >"$WORK/v0.out" 2>&1 &&
	pass "verify of the program: identical" ||
	{ fail "verify of the program:"; cat "$WORK/v0.out"; }
stop "$PID"

# check_restored NAME PID NOATIME_REFUSED: each fd's flags against the
# original's; as nobody the eventfd lacks O_NOATIME.
check_restored() {
	local name=$1 pid=$2 refused=$3 fd want got bad=0
	for fd in $FDS; do
		want=${orig[$fd]}
		[ "$refused" = 1 ] && [ "$fd" = "$EFD" ] &&
			want=$(printf '0%o' $((want & ~8#1000000)))
		got=$(flags_of "$pid" "$fd")
		if [ "$got" != "$want" ]; then
			fail "$name: fd $fd flags $got, expected $want"
			bad=1
		fi
	done
	[ $bad = 0 ] && pass "$name: every restored fd's flags as the original's (O_NOATIME refused on the eventfd: $refused)"
}

# ---- as root (or as the user running the tests) ----
restore_bg r1 -- "$WORK/f.img" || { fail "restore --hold"; finish; }
cat "$WORK/r1.err"
if [ "$(id -u)" -eq 0 ]; then
	check_restored root "$HOLD_PID" 0
	grep -q "O_NOATIME" "$WORK/r1.err" && fail "root: O_NOATIME warned" ||
		pass "root: no O_NOATIME warning"
else
	check_restored "uid $(id -u)" "$HOLD_PID" 1
fi
grep -q "info: socket:\[[0-9]*\]: socket target [0-9]*: O_ASYNC restored without an owner" "$WORK/r1.err" &&
	pass "O_ASYNC's owner not restored: an info line says so" ||
	fail "no O_ASYNC owner note"
"$CLI" verify --pid "$HOLD_PID" "$WORK/f.img" >"$WORK/v1.out" 2>&1
rc=$?
cat "$WORK/v1.out"
if [ "$(id -u)" -eq 0 ]; then
	[ $rc -eq 0 ] && pass "verify of the restored process: identical" ||
		fail "verify of the restored process: exit $rc"
	# A flag flipped after the restore is reported, both values named.
	if pidfd_setfl "$HOLD_PID" "$AW" 2000; then
		"$CLI" verify --pid "$HOLD_PID" "$WORK/f.img" >"$WORK/v2.out" 2>&1
		rc=$?
		cat "$WORK/v2.out"
		[ $rc -eq 1 ] && grep -q "tfd $AW: target file flags expected 06001 (O_WRONLY|O_APPEND|O_NONBLOCK), actual 04001 (O_WRONLY|O_NONBLOCK)" "$WORK/v2.out" &&
			grep -q ': 1 difference from' "$WORK/v2.out" &&
			pass "O_APPEND cleared after the restore: verify names it" ||
			fail "the cleared O_APPEND is not reported (exit $rc)"
	else
		fail "pidfd_getfd of the restored process"
	fi
fi
stop "$HOLD_PID"

# The packet mode, as the kernel behaves: two writes, two reads.
# (The second read does not wait: a byte-stream pipe gave all 4 at once.)
timeout 20 "$CLI" restore --exec "$WORK/f.img" "$PY" -c "
import os
os.write($PW, b'ab'); os.write($PW, b'cd')
first = len(os.read($PR, 8))
os.set_blocking($PR, False)
try:
    second = len(os.read($PR, 8))
except BlockingIOError:
    second = 0
print('reads', first, second)
" >"$WORK/x.out" 2>"$WORK/x.err"
grep -q '^reads 2 2$' "$WORK/x.out" &&
	pass "the restored pipe is in packet mode: two writes are two reads" ||
	{ fail "packet mode: $(cat "$WORK/x.out" "$WORK/x.err")"; }

# ---- as nobody ----
if [ "$(id -u)" -eq 0 ]; then
	command -v setpriv >/dev/null || { fail "setpriv (util-linux) is missing"; finish; }
	restore_bg r2 setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		"$WORK/f.img" || { fail "restore --hold as nobody"; finish; }
	cat "$WORK/r2.err"
	[ "$(stat -c %u "/proc/$HOLD_PID")" = 65534 ] &&
		pass "the restore ran as nobody" || fail "the restore did not run as nobody"
	check_restored nobody "$HOLD_PID" 1
	grep -q "warning: anon_inode:\[eventfd\]: eventfd target [0-9]*: file status flag O_NOATIME of the image not restored: only the owner of the file's inode or CAP_FOWNER may set it" "$WORK/r2.err" &&
		pass "nobody: the refused O_NOATIME is warned" ||
		fail "nobody: no O_NOATIME warning"
	"$CLI" verify --pid "$HOLD_PID" "$WORK/f.img" >"$WORK/v3.out" 2>&1
	rc=$?
	cat "$WORK/v3.out"
	[ $rc -eq 1 ] && grep -q "tfd $EFD: target file flags expected 01002002 (O_RDWR|O_APPEND|O_NOATIME), actual 02002 (O_RDWR|O_APPEND)" "$WORK/v3.out" &&
		grep -q ': 1 difference from' "$WORK/v3.out" &&
		pass "nobody: verify reports exactly the refused O_NOATIME" ||
		fail "nobody: verify (exit $rc) does not report exactly the refused O_NOATIME"
	stop "$HOLD_PID"
fi
finish
