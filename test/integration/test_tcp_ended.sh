#!/usr/bin/env bash
# TCP sockets whose connection ended (tcp_ended.py: accepted and reset by
# the client, accepted and past TIME_WAIT, a client reset by the server;
# getpeername says ENOTCONN for each) are flagged "ended" in the image,
# with an unrestorable diagnostic each; one in CLOSE_WAIT is connected; a
# fresh bound socket is neither.  The program stopped, the image restores
# with --missing=skip (as nobody), which leaves out exactly the ended and
# connected ones (verify reports exactly those), and the listener and the
# fresh socket come back at their addresses.  Without the flag every
# ended socket was a plain socket bound at the listener's address: the
# restore failed with EADDRINUSE.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

start tcp "$PY" "$TOP/test/integration/tcp_ended.py" || { fail "tcp_ended.py did not start"; finish; }
PID=$STARTED_PID
cat "$WORK/tcp.out"
declare -A FD PEER
while read -r fd name peer; do
	[ "$fd" = ready ] && break
	FD[$name]=$fd PEER[$name]=$peer
done <"$WORK/tcp.out"
for n in reset timewait client fresh; do
	[ "${PEER[$n]}" = ENOTCONN ] && pass "$n (fd ${FD[$n]}): getpeername says ENOTCONN" ||
		fail "$n (fd ${FD[$n]}): getpeername says ${PEER[$n]}, not ENOTCONN"
done
[ "${PEER[closewait]}" != ENOTCONN ] && pass "closewait: still connected to ${PEER[closewait]}" ||
	fail "closewait: not connected"

dump_check tcp "$PID" && pass "the image equals the kernel's view" || fail "the image differs from the kernel's view"
# flags: "connected ended bound" per socket, and its unrestorable diagnostics
sock() {
	json_query "$WORK/tcp.json" "[(t['connected'], t['ended'], t['bound'], len([d for d in j['diagnostics'] if d['code'] == 'unrestorable' and d['tfd'] == $1])) for e in j['epoll'] for w in e['watches'] if w['tfd'] == $1 for t in [w['target']]]"
}
for n in reset timewait client; do
	r=$(sock "${FD[$n]}")
	[ "$r" = "[(False, True, True, 1)]" ] && pass "$n: ended, not connected, one unrestorable diagnostic" ||
		fail "$n: (connected, ended, bound, diagnostics) = $r"
done
r=$(sock "${FD[closewait]}")
[ "$r" = "[(True, False, True, 1)]" ] && pass "closewait: connected, one unrestorable diagnostic" ||
	fail "closewait: (connected, ended, bound, diagnostics) = $r"
r=$(sock "${FD[fresh]}")
[ "$r" = "[(False, False, True, 0)]" ] && pass "fresh: bound, neither connected nor ended, no diagnostic" ||
	fail "fresh: (connected, ended, bound, diagnostics) = $r"
stop "$PID"
real_restore_check tcp "$WORK/tcp.img" "$WORK/tcp.json" --missing=skip
n=$(wc -l <"$WORK/tcp.skipped")
[ "$n" = 4 ] && pass "the restore left out 4 watches (3 ended, 1 connected)" ||
	{ fail "the restore left out $n watches, not 4:"; cat "$WORK/tcp.skipped"; }
finish
