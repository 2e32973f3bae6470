#!/usr/bin/env bash
# `epollcr verify` through the shim: a process running the shim is
# compared with the image its recorder gives (as `epollcr dump` asks for
# it), and the final line says so; --kernel forces the kernel's view; a
# process without the shim, whose recorder does not answer, or whose
# image is marked incomplete or lacks the kernel's view, falls back to the
# kernel's view with one note on stderr.  Soundness: a stale watch
# (its file kept alive at a dup, its number closed and reused by another
# eventfd, through libc) and a watch changed by the raw syscall behind the
# shim are differences on the shim path too.  Hostile: a "program" that
# answers with garbage or streams for ever (fake_recorder.py, streaming
# from c.img, an image with a diagnostic) is refused as dump refuses it.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/verify_prog
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
FAKE=$TOP/test/integration/fake_recorder.py

# verify NAME ARGS...: run verify, output in $WORK/NAME.{out,err}, sets RC.
verify() {
	local name=$1; shift
	timeout -k 2 60 "$CLI" verify "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
	RC=$?
	echo "$name: exit $RC: $(tr '\n' '|' <"$WORK/$name.out") stderr: $(tr '\n' '|' <"$WORK/$name.err")"
}
has() { grep -q -- "$2" "$WORK/$1"; }
lines() { wc -l <"$WORK/$1"; }

start shim "$PROG" || { fail "verify_prog did not start under the shim"; finish; }
P=$STARTED_PID
read -r _ EP A B C <"$WORK/shim.out"
"$CLI" dump -o "$WORK/a.img" "$P" >/dev/null 2>"$WORK/dump.err" ||
	{ fail "dump: $(cat "$WORK/dump.err")"; finish; }

verify same "$WORK/a.img"
[ "$RC" = 0 ] && has same.out "identical to pid $P via its shim (1 sets, 3 watches)" &&
	[ "$(lines same.err)" = 0 ] && pass "unchanged: identical via its shim, nothing on stderr" ||
	fail "unchanged, via the shim"
verify kernel --kernel "$WORK/a.img"
[ "$RC" = 0 ] && has kernel.out "identical to pid $P (1 sets, 3 watches; kernel view)" &&
	[ "$(lines kernel.err)" = 0 ] && pass "--kernel: identical, kernel view, no note" ||
	fail "--kernel"

# The stale watch: the shim path must report it, as the kernel path does.
kill -USR1 "$P"
wait_for "$WORK/shim.out" '^stale' 10 >/dev/null || { fail "no stale step"; finish; }
KEEP=$(sed -n 's/^stale //p' "$WORK/shim.out")
verify stale "$WORK/a.img"
[ "$RC" = 1 ] && has stale.out "^epfd $EP tfd $A: stale expected no, actual yes" &&
	has stale.out "^epfd $EP tfd $A: open_fd expected $A, actual $KEEP" &&
	has stale.out "differences from pid $P via its shim" &&
	pass "stale watch: a difference via the shim: $(grep -c '^epfd' "$WORK/stale.out") lines" ||
	fail "stale watch not reported via the shim"
has stale.err "note: pid $P: info: epoll fd $EP watches a file under fd number $A, which no longer holds it" &&
	pass "stale watch: the shim's diagnostic is a note" || fail "stale watch: no note"
verify stale_k --kernel "$WORK/a.img"
[ "$RC" = 1 ] && diff <(grep '^epfd' "$WORK/stale.out") <(grep '^epfd' "$WORK/stale_k.out") >/dev/null &&
	pass "stale watch: the kernel path reports the same differences" ||
	fail "stale watch: the two paths differ"
"$CLI" dump -o "$WORK/b.img" "$P" >/dev/null 2>"$WORK/dump.err" ||
	{ fail "dump: $(cat "$WORK/dump.err")"; finish; }
verify stale_b "$WORK/b.img"
[ "$RC" = 0 ] && has stale_b.out "identical to pid $P via its shim" &&
	pass "an image holding the stale watch: identical via the shim" ||
	fail "an image holding the stale watch"

# A watch changed behind the shim: the kernel's events and data.
kill -USR2 "$P"
wait_for "$WORK/shim.out" '^raw' 10 >/dev/null || { fail "no raw step"; finish; }
verify raw "$WORK/b.img"
[ "$RC" = 1 ] && has raw.out "^epfd $EP tfd $B: events expected 0x19, actual 0x1c" &&
	has raw.out "^epfd $EP tfd $B: data expected 0x2, actual 0x22" &&
	has raw.out "2 differences from pid $P via its shim" &&
	pass "raw MOD: the kernel's events and data via the shim" ||
	fail "raw MOD via the shim"
has raw.err "note: pid $P: warning: watch on fd $B in epoll fd $EP: the kernel has events 0x1c data 0x22, the shim recorded" &&
	pass "raw MOD: the shim's mismatch diagnostic is a note" || fail "raw MOD: no note"

# A recorder that does not answer (the process stopped): the kernel's view.
"$CLI" dump -o "$WORK/c.img" "$P" >/dev/null 2>&1 || fail "dump c"
kill -STOP "$P"
verify stopped --timeout 0.5 "$WORK/c.img"
kill -CONT "$P"
[ "$RC" = 0 ] && has stopped.out "identical to pid $P (1 sets, 3 watches; kernel view)" &&
	[ "$(lines stopped.err)" = 1 ] &&
	has stopped.err "note: pid $P: its shim gave no image (pid $P did not answer within 0.5 s" &&
	pass "a recorder that does not answer: one note, the kernel's view" ||
	fail "a stopped process"
# A stale watch made wholly behind the shim (raw dup, close, eventfd2 on
# C): the shim vouches for C's number, whose tfd, events and data agree
# with its registry, so only the kernel path can see it (the limit of
# docs/limitations.md, "Raw syscalls and io_uring"; --kernel is the way).
"$CLI" dump -o "$WORK/r.img" "$P" >/dev/null 2>&1 || fail "dump r"
kill -HUP "$P"
wait_for "$WORK/shim.out" '^rawstale' 10 >/dev/null || { fail "no rawstale step"; finish; }
verify rawstale_k --kernel "$WORK/r.img"
[ "$RC" = 1 ] && has rawstale_k.out "^epfd $EP tfd $C: stale expected no, actual yes" &&
	pass "raw close and reopen: --kernel reports the stale watch" ||
	fail "raw close and reopen: --kernel"
verify rawstale "$WORK/r.img"
echo "raw close and reopen via the shim (the known limit): exit $RC"

stop "$P"

# Without the shim: one note, the kernel's view.
"$PROG" >"$WORK/plain.out" 2>&1 &
Q=$!
PIDS+=("$Q")
wait_for "$WORK/plain.out" ready 10 >/dev/null || { fail "verify_prog did not start"; finish; }
"$CLI" dump -o "$WORK/p.img" "$Q" >/dev/null 2>&1 || fail "dump of the plain process"
verify plain "$WORK/p.img"
[ "$RC" = 0 ] && has plain.out "identical to pid $Q (1 sets, 3 watches; kernel view)" &&
	[ "$(lines plain.err)" = 1 ] &&
	has plain.err "verify: note: pid $Q: it does not have libepollcr.so loaded (it was not started with epollcr run); comparing with the kernel's view alone" &&
	pass "no shim: one note, the kernel's view" || fail "no shim"
stop "$Q"

# A shim image not to be taken: its registry lost an allocation
# (EPOLLCR_FAULT_ALLOC: marked incomplete), or it could not read /proc
# (EPOLLCR_FAULT_NOPROC: the shadow alone): the kernel's view, one note.
for fault in EPOLLCR_FAULT_ALLOC=0:1 EPOLLCR_FAULT_NOPROC=1; do
	env "$fault" LD_PRELOAD="$PRELOAD" "$PROG" >"$WORK/fault.out" 2>&1 &
	F=$!
	PIDS+=("$F")
	wait_for "$WORK/fault.out" ready 10 >/dev/null || { fail "$fault: verify_prog did not start"; continue; }
	"$CLI" dump --kernel -o "$WORK/f.img" "$F" >/dev/null 2>&1 || fail "$fault: dump --kernel"
	verify fault "$WORK/f.img"
	[ "$RC" = 0 ] && has fault.out "identical to pid $F (1 sets, 3 watches; kernel view)" &&
		[ "$(lines fault.err)" = 1 ] && has fault.err "verify: note: pid $F: its shim's image is" &&
		pass "$fault: the shim's image is not taken: $(cat "$WORK/fault.err")" ||
		fail "$fault: the shim's image"
	stop "$F"
done

# Hostile answers: refused as dump refuses them, one line, exit 1.
SIG=40
LIMIT=$((256 << 20))
hostile() {
	local mode=$1
	mkdir -p "$WORK/$mode"
	READY=ready start "fake-$mode" python3 "$FAKE" "$mode" "$WORK/$mode" "$SIG" "$WORK/c.img" ||
		{ fail "$mode: the fake did not start"; return 1; }
	local pid=$STARTED_PID
	verify "h-$mode" --signal "$SIG" --timeout 30 --pid "$pid" "$WORK/a.img"
	[ "$RC" = 1 ] && [ "$(lines "h-$mode.err")" = 1 ] && [ "$(lines "h-$mode.out")" = 0 ] &&
		pass "$mode: verify fails with one line" || fail "$mode: verify exit $RC"
	[ -z "$(ls -A "$WORK/$mode" | grep -v '^libepollcr.so$')" ] && pass "$mode: no file left" ||
		fail "$mode: files left: $(ls -A "$WORK/$mode")"
	stop "$pid"
}
hostile garbage
has h-garbage.err "verify: pid [0-9]* sent an invalid image: offset 0: not an epollcr image" &&
	pass "garbage: refused at offset 0" || fail "garbage: unexpected message"
hostile endless
has h-endless.err "longer than $LIMIT bytes" && pass "endless: stopped at the limit" ||
	fail "endless: unexpected message"
finish
