#!/usr/bin/env bash
# A child sharing the parent's memory leaves the registry alone: Debian's
# python3 runs subprocess with close_fds=True (a vfork child calling
# close_range) while a listener is watched; the dump must have no
# diagnostic, and keep the listener's backlog and registration backtrace.
# vfork_child.c does the same with vfork() and clone(CLONE_VM|CLONE_VFORK)
# from C: a child closing the watched fd, creating and closing pipes and
# sockets, then exec'ing (or _exiting); and posix_spawn closing it with
# file actions; the parent's image must still equal the kernel's view,
# with its backtraces.
. "$(dirname "$0")/lib.sh"

PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -x "$PY" ] || PY=python3

# image_ok NAME PID TFD BACKLOG: the image of PID has no diagnostic, and
# its watch of TFD has a backtrace and the backlog BACKLOG.
image_ok() {
	dump_check "$1" "$2" || return 1
	local r
	r=$(json_query "$WORK/$1.json" "[d['message'] for d in j['diagnostics'] if d['severity'] != 'info'] or [(w['target']['backlog'], len(w['backtrace']) > 0) for e in j['epoll'] for w in e['watches'] if w['tfd'] == $3]")
	[ "$r" = "[($4, True)]" ] || { echo "$1: $r"; return 1; }
}

start py "$PY" "$TOP/test/integration/real_vfork_child.py" ||
	{ fail "python did not start"; finish; }
fd=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$WORK/py.out")
image_ok py "$STARTED_PID" "$fd" 77 &&
	pass "python subprocess (vfork, close_range): no diagnostic, backlog 77 and backtrace kept" ||
	fail "python subprocess (vfork, close_range) changed the registry"
stop "$STARTED_PID"

PROG=$PROGS/vfork_child
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
for how in vfork vfork-exit clone spawn; do
	start "$how" "$PROG" "$how" || { fail "vfork_child $how did not start"; continue; }
	fd=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$WORK/$how.out")
	image_ok "$how" "$STARTED_PID" "$fd" 5 &&
		pass "$how: the child's calls left the registry alone" ||
		fail "$how: the child's calls changed the registry"
	stop "$STARTED_PID"
done
finish
