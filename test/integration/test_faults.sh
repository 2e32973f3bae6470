#!/usr/bin/env bash
# Injected failures: the program's own calls still succeed and return what
# they return without the shim, and the image says what the shim lost.
#   EPOLLCR_FAULT_ALLOC=AFTER:COUNT  the registry's allocations fail
#   EPOLLCR_FAULT_NOPROC=1           the recorder cannot read /proc
. "$(dirname "$0")/lib.sh"

# 1. The errno/fd matrix is identical with every registry allocation failing.
"$PROGS/errno_matrix" >"$WORK/plain.txt" 2>&1
for spec in 0:1000000 3:5 20:2; do
	ERRNO_MATRIX_REQUIRE_SHIM=1 EPOLLCR_FAULT_ALLOC=$spec LD_PRELOAD=$PRELOAD "$PROGS/errno_matrix" >"$WORK/fault.txt" 2>&1
	if diff -u "$WORK/plain.txt" "$WORK/fault.txt" >"$WORK/diff.txt"; then
		pass "errno matrix identical with allocation failures $spec"
	else
		fail "errno matrix differs with allocation failures $spec"; head -20 "$WORK/diff.txt"
	fi
done

# 2. A dump of a process whose registry lost allocations: still the kernel's
#    exact view, flagged incomplete, with a diagnostic saying so.
for spec in 0:1000000 2:3; do
	export EPOLLCR_FAULT_ALLOC=$spec
	start "alloc$spec" "$PROGS/rec_scenario" mixed || { fail "alloc $spec: program failed"; continue; }
	pid=$STARTED_PID
	if dump_check "alloc" "$pid"; then pass "alloc $spec: image equals the kernel's view"
	else fail "alloc $spec: image differs from the kernel"; fi
	[ "$(json_query "$WORK/alloc.json" "j['complete']")" = False ] &&
		pass "alloc $spec: image flagged incomplete" || fail "alloc $spec: image claims to be complete"
	json_query "$WORK/alloc.json" "[d['code'] for d in j['diagnostics']]" | grep -q incomplete &&
		pass "alloc $spec: diagnostic names the loss" || fail "alloc $spec: no 'incomplete' diagnostic"
	stop "$pid"
	unset EPOLLCR_FAULT_ALLOC
done

# 3. No /proc for the recorder: the shadow alone, said so, still valid.
export EPOLLCR_FAULT_NOPROC=1
start noproc "$PROGS/rec_scenario" mixed || fail "noproc: program failed"
pid=$STARTED_PID
"$CLI" dump -o "$WORK/noproc.img" "$pid" >/dev/null || fail "noproc: dump failed"
"$CLI" show --json "$WORK/noproc.img" >"$WORK/noproc.json" || fail "noproc: show failed"
json_query "$WORK/noproc.json" "[d['code'] for d in j['diagnostics']]" | grep -q no-proc &&
	pass "noproc: image says /proc was not read" || fail "noproc: no 'no-proc' diagnostic"
[ "$(json_query "$WORK/noproc.json" "j['kernel_view']")" = False ] &&
	pass "noproc: image not flagged as the kernel's view" || fail "noproc: kernel_view flag set"
# The shadow alone still has every watch the program registered.
[ "$(json_query "$WORK/noproc.json" "sum(len(e['watches']) for e in j['epoll'])")" = 4 ] &&
	pass "noproc: the shadow's 4 watches are in the image" || fail "noproc: watches missing"
stop "$pid"
unset EPOLLCR_FAULT_NOPROC

finish
