#!/usr/bin/env bash
# test_fifo_dump: a watched named FIFO is diagnosed at dump time (the
# restore refuses it; test_fifo checks FIFOs given as image files):
# python3 under the shim watches a FIFO (mkfifo, opened O_RDWR) and a
# pipe; the image (via the shim and kernel-only) has one unrestorable diagnostic naming the FIFO's fd and
# path (the kernel's /proc/PID/fd link), none for the pipe; the restore
# refuses the image by default and leaves out exactly the FIFO's watch
# with --missing=skip.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

mkfifo "$WORK/fifo" || { fail "mkfifo failed"; finish; }
start fifo "$PY" -c '
import os, select, sys, time
ep = select.epoll()
f = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)
r, w = os.pipe()
ep.register(f, select.EPOLLIN)
ep.register(r, select.EPOLLIN)
print("fds", f, r, flush=True)
print("ready", flush=True)
time.sleep(60)' "$WORK/fifo" || { fail "python did not start"; finish; }
PID=$STARTED_PID
read -r _ ffd pfd < <(grep '^fds' "$WORK/fifo.out")
link=$(readlink "/proc/$PID/fd/$ffd")
[ "$link" = "$WORK/fifo" ] && pass "fd $ffd is the FIFO in the kernel" || fail "fd $ffd is $link"
dump_check fifo "$PID" && pass "the image equals the kernel's view" || fail "the image differs from the kernel's view"
r=$(json_query "$WORK/fifo.json" "[(d['tfd'], d['path']) for d in j['diagnostics'] if d['code'] == 'unrestorable']")
[ "$r" = "[($ffd, '$link')]" ] && pass "one unrestorable diagnostic, for the FIFO at fd $ffd ($link)" ||
	fail "unrestorable diagnostics: $r"
"$CLI" dump --kernel -o "$WORK/fifo-k.img" "$PID" >/dev/null 2>&1 &&
	"$CLI" show --json "$WORK/fifo-k.img" >"$WORK/fifo-k.json" || fail "kernel-only dump failed"
r=$(json_query "$WORK/fifo-k.json" "[(d['tfd'], d['path']) for d in j['diagnostics'] if d['code'] == 'unrestorable']")
[ "$r" = "[($ffd, '$link')]" ] && pass "kernel-only: the same diagnostic for the FIFO" ||
	fail "kernel-only: unrestorable diagnostics: $r"
stop "$PID"
chmod 644 "$WORK/fifo.img"
if out=$("$CLI" restore "$WORK/fifo.img" 2>&1); then
	fail "the restore did not refuse the FIFO: $out"
else
	grep -q "named FIFO" <<<"$out" && pass "the restore refuses the image: ${out%%$'\n'*}" ||
		fail "the restore failed otherwise: $out"
fi
real_restore_check fifo "$WORK/fifo.img" "$WORK/fifo.json" --missing=skip
finish
