#!/usr/bin/env bash
# A signal handler that interrupts the shim while it captures a stack (an
# epoll_ctl ADD, 32 frames deep, with EPOLLCR_BACKTRACE=32) makes the
# program's calls: sig_unwind's handler, every 50 us, creates an eventfd
# and checks it got the lowest free number, watches it and closes it.
# Before the unwinding stopped marking the thread busy, such a handler's
# calls were taken for the shim's own: its eventfds were moved above the
# program's numbers (19936...) and its watches never recorded, so a dump
# taken meanwhile found "a watch the shim never saw" (test_sig_reenter
# under ThreadSanitizer, 1 image in 200, 4 runs in 34).  The alarm is
# re-armed by each handler, so that a loaded machine cannot make handlers
# run back to back and starve the loop.
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/sig_unwind
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
# ThreadSanitizer defers a handler to its next interceptor: slower, fewer.
want=200
[ -n "${SAN:-}" ] && want=20
if out=$(EPOLLCR_BACKTRACE=32 LD_PRELOAD=$PRELOAD timeout -k 2 60 "$PROG" 3 2>&1); then
	read -r _ rounds handled high <<<"$(grep '^done ' <<<"$out")"
	echo "$out"
	if [ "${high:-x}" = 0 ] && [ "${handled:-0}" -ge $want ]; then
		pass "$handled handler runs during $rounds rounds of deep ADDs: every eventfd got the lowest free number"
	else
		fail "handler eventfds not at the lowest free number: ${high:-?} of ${handled:-?} (want 0 of at least $want)"
	fi
else
	fail "sig_unwind failed: $out"
fi

# The first epoll_ctl of a process scans its descriptors for inherited
# sets, and closed the directory with the thread marked busy: a handler
# there had its eventfds moved high (44 of 300 children on the library
# before; the storm thread's 15 us keep the main thread running between).
children=300
[ -n "${SAN:-}" ] && children=60
if out=$(LD_PRELOAD=$PRELOAD timeout -k 2 120 "$PROG" first $children 2>&1); then
	read -r _ n bad <<<"$(grep '^first ' <<<"$out")"
	[ "${n:-0}" = $children ] && [ "${bad:-x}" = 0 ] &&
		pass "$children children's first epoll calls under a signal storm: every handler eventfd at the lowest free number" ||
		fail "first epoll calls under a storm: $out"
else
	fail "sig_unwind first failed: $out"
fi
finish
