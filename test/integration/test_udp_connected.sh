#!/usr/bin/env bash
# A watched connected UDP socket is restorable (the restore connects it
# again), and the dump agrees: no unrestorable diagnostic, the image keeps
# the peer address (udp_connected.py: IPv4, and IPv6 when ::1 exists).
# The program stopped, the image restores without --missing=skip (as
# nobody) and verifies, and the kernel (ss: local and peer address of the
# socket inode at each restored fd) says every socket is bound and
# connected as the program's was.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

command -v ss >/dev/null || { fail "ss (Debian package iproute2) is missing"; finish; }
start udp "$PY" "$TOP/test/integration/udp_connected.py" || { fail "udp_connected.py did not start"; finish; }
PID=$STARTED_PID
grep -v '^ready' "$WORK/udp.out" >"$WORK/udp.socks"
cat "$WORK/udp.socks"
dump_check udp "$PID" && pass "the image equals the kernel's view" || fail "the image differs from the kernel's view"
r=$(json_query "$WORK/udp.json" "[d['message'] for d in j['diagnostics'] if d['severity'] != 'info' or d['code'] == 'unrestorable']")
[ "$r" = "[]" ] && pass "no unrestorable diagnostic" || fail "diagnostics: $r"
while read -r fd name local peer; do
	r=$(json_query "$WORK/udp.json" "[(t['address'], t['peer'] or 'none', t['connected']) for e in j['epoll'] for w in e['watches'] if w['tfd'] == $fd for t in [w['target']]]")
	want="[('$local', '$peer', $([ "$peer" = none ] && echo False || echo True))]"
	[ "$r" = "$want" ] && pass "$name (fd $fd): the image has $local -> $peer" ||
		fail "$name (fd $fd): image $r, kernel $want"
done <"$WORK/udp.socks"
stop "$PID"

# The restore, held: verify, then ask the kernel about each restored fd.
cp "$CLI" "$WORK/epollcr-cli" && chmod 755 "$WORK/epollcr-cli"
chmod 644 "$WORK/udp.img"
drop=()
[ "$(id -u)" = 0 ] && drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
"${drop[@]}" "$WORK/epollcr-cli" restore --hold "$WORK/udp.img" >"$WORK/restore.out" 2>&1 &
RPID=$!
PIDS+=("$RPID")
if ! real_wait_ready "$RPID" "$WORK/restore.out"; then
	fail "the restore did not get ready:"; cat "$WORK/restore.out"; finish
fi
out=$("$CLI" verify --pid "$RPID" "$WORK/udp.img" 2>&1) &&
	pass "restored without --missing=skip; epollcr verify: $out" || fail "epollcr verify: $out"
ss -uanHe >"$WORK/ss.txt"
while read -r fd name local peer; do
	ino=$(stat -L -c %i "/proc/$RPID/fd/$fd") || { fail "$name: no fd $fd in the restored process"; continue; }
	line=$(grep -E "ino:$ino( |$)" "$WORK/ss.txt")
	# ss: State Recv-Q Send-Q Local Peer ...; no peer: 0.0.0.0:* or [::]:*
	read -r _ _ _ kl kp _ <<<"$line"
	if [ "$peer" = none ]; then want='ADDR:* (not connected)'; [[ $kp == *:\* ]]
	else want=$peer; [ "$kp" = "$peer" ]; fi && [ "$kl" = "$local" ] &&
		pass "$name: restored fd $fd is $kl -> $kp (ss)" ||
		fail "$name: restored fd $fd: ss says '$line', expected $local -> $want"
done <"$WORK/udp.socks"
stop "$RPID"
finish
