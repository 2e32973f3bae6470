#!/usr/bin/env bash
# The command line under valgrind (memcheck, leaks): show, show --json,
# verify, dump and restore on real images, and a broken image.  Valgrind
# and the sanitizers exclude each other: under SAN this test only says so.
. "$(dirname "$0")/lib.sh"
if [ -n "${SAN:-}" ]; then
	echo "built with -fsanitize=$SAN: valgrind runs in the plain build"
	finish
fi
command -v valgrind >/dev/null || { fail "valgrind is missing (Debian package valgrind)"; finish; }
VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)

start scenario "$PROGS/rec_scenario" mixed || fail "scenario did not start"
pid=$STARTED_PID
vg() { # NAME EXPECTED-STATUS CMD...
	local name=$1 want=$2; shift 2
	"${VG[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
	local got=$?
	if [ "$got" = "$want" ]; then pass "$name: exit $got, valgrind clean"
	else fail "$name: exit $got (wanted $want)"; tail -20 "$WORK/$name.err"; fi
}
vg dump 0 "$CLI" dump -o "$WORK/s.img" "$pid"
vg show 0 "$CLI" show "$WORK/s.img"
vg show-json 0 "$CLI" show --json "$WORK/s.img"
vg verify 0 "$CLI" verify "$WORK/s.img"
stop "$pid"
vg restore-skip 0 "$CLI" restore --missing=skip "$WORK/s.img"
# A number the image needs is taken here: the restore fails cleanly.
epfd=$("$CLI" show --json "$WORK/s.img" | json_query /dev/stdin "j['epoll'][0]['fd']")
eval 'vg restore-fail 1 "$CLI" restore "$WORK/s.img" '"$epfd"'</dev/null'
grep -q "fd $epfd is already open" "$WORK/restore-fail.out" "$WORK/restore-fail.err" &&
	pass "restore-fail: says fd $epfd is taken" || { fail "restore-fail: another reason"; cat "$WORK/restore-fail.out" "$WORK/restore-fail.err"; }
vg bad-image 1 "$CLI" show "$TOP/test/fixtures/bad_checksum.img"
vg usage 2 "$CLI" restore --targets=nonsense x
finish
