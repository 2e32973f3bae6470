#!/usr/bin/env bash
# restore_image() as an ordinary user: run restore_unpriv (an image built in
# memory, restored in its own process, checked against /proc/self/fdinfo)
# as nobody through setpriv, and show the uid it ran with.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prog=$PROGS/restore_unpriv
if [ ! -x "$prog" ]; then
	fail "$prog is not built (the Makefile must include test/integration/restore_unpriv.mk)"
	exit 1
fi
# A copy nobody can surely reach, whatever the permissions of the tree.
cp "$prog" "$WORK/restore_unpriv"
chmod 755 "$WORK/restore_unpriv"
drop=()
if [ "$(id -u)" -eq 0 ]; then
	command -v setpriv >/dev/null || { fail "setpriv (util-linux) is missing"; exit 1; }
	drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
out=$(cd "$WORK" && "${drop[@]}" sh -c 'echo "id -u: $(id -u)"; exec ./restore_unpriv' 2>&1)
status=$?
echo "$out"
[ $status -eq 0 ] || fail "restore_unpriv exited with status $status"
uid=$(sed -n 's/^id -u: //p' <<<"$out")
if [ "$(id -u)" -eq 0 ]; then
	[ "$uid" = 65534 ] && pass "ran as nobody (id -u: $uid)" ||
		fail "expected to run as 65534, ran as $uid"
fi
[ "$uid" != 0 ] || fail "ran as root: proves nothing"
grep -q "^restore_unpriv: uid $uid euid $uid$" <<<"$out" ||
	fail "the program did not see uid $uid"
grep -q "^restore_unpriv: ok: " <<<"$out" && pass "restored and checked" ||
	fail "no ok line"
grep -q "^epollcr restore: warning: epfd 100 tfd 111: watch left out: .*TCP_REPAIR" <<<"$out" &&
	pass "the skipped connected socket is reported" ||
	fail "no report line for the skipped socket"
[ $FAILS -eq 0 ]
