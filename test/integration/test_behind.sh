#!/usr/bin/env bash
# A kind disagreement that lasts is still reported.  The recorder looks
# again at an fd whose kind the kernel and the shim disagree on before
# reporting it (test_stress: a program closing and creating descriptors
# during a dump must not be reported); behind.c replaces a pipe by an
# eventfd with raw system calls, for good: every image must name that fd,
# both kinds, and still equal the kernel's view.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/behind
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
start behind "$PROG" || { fail "behind did not start"; finish; }
PID=$STARTED_PID
fd=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$WORK/behind.out")
[ "$(readlink /proc/"$PID"/fd/"$fd")" = "anon_inode:[eventfd]" ] &&
	pass "fd $fd is an eventfd in the kernel" || fail "fd $fd is not an eventfd: $(readlink /proc/"$PID"/fd/"$fd")"
for i in 1 2; do
	t0=$EPOCHREALTIME
	if dump_check "b$i" "$PID"; then pass "image $i equals the kernel's view"
	else fail "image $i differs from the kernel's view"; fi
	ms=$(( (${EPOCHREALTIME//[.,]/} - ${t0//[.,]/}) / 1000 ))
	n=$(json_query "$WORK/b$i.json" "len([d for d in j['diagnostics'] if d['code'] == 'mismatch' and d['tfd'] == $fd and 'is a eventfd in the kernel but the shim saw a pipe' in d['message']])")
	others=$(json_query "$WORK/b$i.json" "[d['message'] for d in j['diagnostics'] if d['severity'] != 'info' and d['tfd'] != $fd]")
	[ "$n" = 1 ] && pass "image $i reports the kind disagreement at fd $fd once (dump and check: $ms ms)" ||
		{ fail "image $i: $n reports of the kind disagreement at fd $fd"; json_query "$WORK/b$i.json" "j['diagnostics']"; }
	[ "$others" = "[]" ] && pass "image $i: no other warning" || fail "image $i: other warnings: $others"
done
stop "$PID"
finish
