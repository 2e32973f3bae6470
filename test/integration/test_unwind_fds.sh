#!/usr/bin/env bash
# The shim keeps no descriptor in the program's range after it captured
# stacks: libunwind's address-validation pipe is refused and its one
# validating write answered by the shim (shim/syscall.c).  unwind_fds, with
# RLIMIT_NOFILE 1000, registers watches from main and from threads on
# fresh stacks, then checks against /proc/self/fd and its own sockets
# (see unwind_fds.c): no extra descriptor, every number up to the limit
# in order, sockets spread over the whole range after a daemon's close
# loop keep their bytes, errno untouched by a successful ADD.  Before,
# libunwind's pipe sat at 500 and 501 (half the limit): the fill skipped
# them, and after the close loop libunwind read from and wrote into the
# program's sockets at those numbers; the first ADD left errno EAGAIN.
# Run without the shim (the control) and with it, as root and as nobody,
# and with process_vm_readv refused by seccomp (the fallback's case).
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/unwind_fds
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }

run_case() { # NAME CMD...: the program's checks, each reported
	local name=$1 out rc; shift
	out=$(timeout -k 2 60 "$@" 2>&1); rc=$?
	echo "$out" | sed "s/^/  $name: /"
	if [ $rc -eq 0 ] && ! grep -q '^FAIL' <<<"$out" &&
	   [ "$(grep -c '^ok' <<<"$out")" -eq 5 ]; then
		pass "$name: all 5 checks"
	else
		fail "$name: exit $rc, $(grep -c '^FAIL' <<<"$out") checks failed"
	fi
}

run_case plain "$PROG"
run_case shim env LD_PRELOAD="$PRELOAD" "$PROG"
run_case "shim, 32 frames" env LD_PRELOAD="$PRELOAD" EPOLLCR_BACKTRACE=32 "$PROG"
# A seccomp filter refusing process_vm_readv (some containers' profiles):
# the shim validates through a pipe made and closed at once instead (25
# times in this program, strace shows), and still keeps none.
run_case "shim, process_vm_readv refused" env LD_PRELOAD="$PRELOAD" "$PROG" seccomp
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	run_case "shim, as nobody" setpriv --reuid=nobody --regid=nogroup \
		--clear-groups env LD_PRELOAD="$PRELOAD" "$PROG"
fi
finish
