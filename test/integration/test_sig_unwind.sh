#!/usr/bin/env bash
# A signal handler that interrupts the shim while it captures a stack (an
# epoll_ctl ADD, 64 frames deep, with EPOLLCR_BACKTRACE=64) makes the
# program's calls: sig_unwind's handler, every 50 us, creates an eventfd
# and checks it got the lowest free number, watches it and closes it.
# Before the unwinding stopped marking the thread busy, such a handler's
# calls were taken for the shim's own: its eventfds were moved above the
# program's numbers (19936...) and its watches never recorded, so a dump
# taken meanwhile found "a watch the shim never saw" (test_sig_reenter
# under ThreadSanitizer, 1 image in 200, 4 runs in 34).
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/sig_unwind
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
# ThreadSanitizer defers a handler to its next interceptor: slower, fewer.
want=200
[ -n "${SAN:-}" ] && want=20
if out=$(EPOLLCR_BACKTRACE=64 LD_PRELOAD=$PRELOAD timeout -k 2 60 "$PROG" 3 2>&1); then
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
finish
