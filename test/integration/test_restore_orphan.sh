#!/usr/bin/env bash
# Watched files no fd of the program holds (docs/restore.md, "No fd in the
# image"): restore_orphan.py (python3 under the shim) watches an eventfd,
# a timerfd, a signalfd and both ends of a pipe, each under a number it
# then closes, while a forked child keeps the files alive; a second set
# watches the eventfd too.  The kernel's
# view gives only their inodes; the dump must take their kinds and
# creation parameters from the shim, so that `epollcr restore` (as nobody)
# can recreate them: the restored set's fdinfo must list the same tfds,
# events and data as the original's, each watch's file (found by
# kcmp(KCMP_EPOLL_TFD), the kernel's own answer) must be of its kind with
# its parameters (eventfd-semaphore, clockid, sigmask, O_WRONLY pipe),
# the eventfd one file for both sets and the pipe's ends one pipe, and
# `epollcr verify --pid` must call the restored process identical, noting
# the numbers where the restore keeps those files open.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=$(python3 -c 'import sys; print(sys.executable)')

# watch_list JSON EXPR: "tfd:kind:EXPR" of every watch, set by set, by tfd
# (EXPR a python expression on the watch w).
watch_list() {
	json_query "$1" '" ".join("%d:%s:%s" % (w["tfd"], w["target"]["kind"], '"$2"') for s in j["epoll"] for w in sorted(s["watches"], key=lambda w: w["tfd"]))'
}

# tfd_lines PID EPFD: the set's watches as "tfd events data", sorted.
tfd_lines() {
	awk '$1 == "tfd:" { print $2, $4, $6 }' "/proc/$1/fdinfo/$2" | sort
}

cd "$WORK" || exit 1
start prog "$PY" "$TOP/test/integration/restore_orphan.py" ||
	{ fail "restore_orphan.py did not start"; cat "$WORK/prog.err"; finish; }
PID=$STARTED_PID
EP=$(sed -n 's/^fd epoll //p' "$WORK/prog.out")
EP2=$(sed -n 's/^fd epoll2 //p' "$WORK/prog.out")
PIDS+=("$(sed -n 's/^child //p' "$WORK/prog.out")")
{ tfd_lines "$PID" "$EP"; tfd_lines "$PID" "$EP2"; } >"$WORK/orig.lines"
[ "$(wc -l <"$WORK/orig.lines")" = 6 ] &&
	pass "the kernel keeps the 6 watches whose files no fd of the program holds" ||
	{ fail "the original set:"; cat "$WORK/orig.lines"; }
"$CLI" dump -o "$WORK/o.img" "$PID" >/dev/null || fail "dump"
chmod 644 "$WORK/o.img"
"$CLI" show --json "$WORK/o.img" >"$WORK/o.json" || fail "show"
stop "$PID"

got=$(watch_list "$WORK/o.json" 'w["open_fd"]')
[ "$got" = "40:eventfd:None 41:timerfd:None 42:signalfd:None 43:pipe:None 44:pipe:None 40:eventfd:None" ] &&
	pass "the image names each file's kind, with no fd: $got" ||
	fail "the image's watches: $got"
got=$(json_query "$WORK/o.json" 'j["counts"]["targets"]')
[ "$got" = 7 ] && pass "7 targets: 2 sets, one eventfd for both sets' watches, 2 pipe ends, a timerfd, a signalfd" ||
	fail "the image has $got targets, not 7"
got=$(json_query "$WORK/o.json" '[ (w["target"].get("semaphore"), w["target"].get("clockid"), w["target"].get("mask"), w["target"].get("end"), w["target"]["file_flags"]) for s in j["epoll"] for w in s["watches"] ]')
echo "image targets (semaphore, clockid, mask, end, flags): $got"

# As nobody: no privilege needed.
setpriv --reuid=nobody --regid=nogroup --clear-groups "$CLI" restore --hold "$WORK/o.img" \
	>"$WORK/r.out" 2>"$WORK/r.err" &
HOLD=$!
PIDS+=("$HOLD")
if ! wait_for "$WORK/r.out" ready 20; then
	fail "restore as nobody:"; cat "$WORK/r.err"; finish
fi
[ "$(stat -c %u "/proc/$HOLD")" != 0 ] && pass "the restore ran as uid $(stat -c %u "/proc/$HOLD")" ||
	fail "the restore ran as root"
{ tfd_lines "$HOLD" "$EP"; tfd_lines "$HOLD" "$EP2"; } >"$WORK/rest.lines"
cmp -s "$WORK/orig.lines" "$WORK/rest.lines" &&
	pass "the restored set's fdinfo has the original tfds, events and data" ||
	{ fail "restored set differs:"; diff "$WORK/orig.lines" "$WORK/rest.lines"; }

# The file of each watch, by kcmp(KCMP_EPOLL_TFD): its kind and parameters.
"$PY" - "$HOLD" "$EP" "$EP2" >"$WORK/files.out" 2>&1 <<'PYEOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid, ep, ep2 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
class Slot(ctypes.Structure):
    _fields_ = [("efd", ctypes.c_uint32), ("tfd", ctypes.c_uint32), ("toff", ctypes.c_uint32)]
fds = [int(f) for f in os.listdir("/proc/%d/fd" % pid)]
def held_by(epfd, tfd):
    slot = Slot(epfd, tfd, 0)
    return [fd for fd in fds if libc.syscall(312, pid, pid, 7, fd, ctypes.byref(slot)) == 0]
print("eventfd of both sets: %s %s" % (held_by(ep, 40), held_by(ep2, 40)))
ends = [held_by(ep, 43), held_by(ep, 44)]
if all(len(e) == 1 for e in ends):
    print("pipe ends: %s" % " ".join(os.readlink("/proc/%d/fd/%d" % (pid, e[0])) for e in ends))
for tfd in (40, 41, 42, 43):
    held = held_by(ep, tfd)
    if len(held) != 1:
        print("tfd %d: held by %s" % (tfd, held)); continue
    fd = held[0]
    info = dict(l.split(":", 1) for l in open("/proc/%d/fdinfo/%d" % (pid, fd)) if ":" in l)
    info = {k.strip(): v.strip() for k, v in info.items()}
    link = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    flags = int(info["flags"], 8) & ~0o2000000
    extra = {40: info.get("eventfd-semaphore"), 41: info.get("clockid"),
             42: info.get("sigmask"), 43: None}[tfd]
    print("tfd %d fd %d %s flags %o %s" % (tfd, fd, link.split(":[")[0] if link.startswith("pipe:") else link, flags, extra))
PYEOF
cat "$WORK/files.out"
e1=$(sed -n 's/^eventfd of both sets: //p' "$WORK/files.out")
[ -n "$e1" ] && [ "${e1% *}" = "${e1#* }" ] && [ "${e1% *}" != "[]" ] &&
	pass "both sets watch one restored eventfd (fd $e1)" || fail "the sets' eventfds: $e1"
read -r p1 p2 < <(sed -n 's/^pipe ends: //p' "$WORK/files.out")
[ -n "$p1" ] && [ "$p1" = "$p2" ] && pass "tfd 43 and 44 are the two ends of one restored pipe ($p1)" ||
	fail "the pipe ends: $p1 $p2"
grep -q '^tfd 40 fd [0-9]* anon_inode:\[eventfd\] flags 4002 1$' "$WORK/files.out" &&
	pass "tfd 40: a nonblocking semaphore eventfd" || fail "tfd 40's file"
grep -q '^tfd 41 fd [0-9]* anon_inode:\[timerfd\] flags 4002 1$' "$WORK/files.out" &&
	pass "tfd 41: a nonblocking CLOCK_MONOTONIC timerfd" || fail "tfd 41's file"
grep -q '^tfd 42 fd [0-9]* anon_inode:\[signalfd\] flags 4002 0000000000000800$' "$WORK/files.out" &&
	pass "tfd 42: a nonblocking signalfd for SIGUSR2" || fail "tfd 42's file"
grep -q '^tfd 43 fd [0-9]* pipe flags 1 None$' "$WORK/files.out" &&
	pass "tfd 43: a pipe's write end" || fail "tfd 43's file"

"$CLI" verify --pid "$HOLD" "$WORK/o.img" >"$WORK/v.out" 2>&1 &&
	grep -q "identical" "$WORK/v.out" &&
	[ "$(grep -c '^note: .*holds it now' "$WORK/v.out")" = 5 ] &&
	pass "verify --pid: identical, with a note for each kept file" ||
	{ fail "verify --pid of the restored process:"; cat "$WORK/v.out"; }
stop "$HOLD"

# Without the shim the dump has the kernel's view alone: the anonymous
# files are `other` (the kernel cannot tell them apart), and each pipe end
# is taken from what it is watched for, with a diagnostic that says so.
"$PY" "$TOP/test/integration/restore_orphan.py" >"$WORK/plain.out" 2>&1 &
PLAIN=$!
PIDS+=("$PLAIN")
wait_for "$WORK/plain.out" ready 20 || fail "restore_orphan.py without the shim"
PIDS+=("$(sed -n 's/^child //p' "$WORK/plain.out")")
"$CLI" dump -o "$WORK/k.img" "$PLAIN" >/dev/null 2>&1 || fail "kernel-only dump"
"$CLI" show --json "$WORK/k.img" >"$WORK/k.json" || fail "show of the kernel-only image"
stop "$PLAIN"
got=$(watch_list "$WORK/k.json" 'w["target"].get("end")')
[ "$got" = "40:other:None 41:other:None 42:other:None 43:pipe:write 44:pipe:read 40:other:None" ] &&
	pass "kernel-only: anonymous files other, pipe ends from their events: $got" ||
	fail "kernel-only image's watches: $got"
got=$(json_query "$WORK/k.json" 'sum("the kernel does not say" in d["message"] for d in j["diagnostics"])')
[ "$got" = 2 ] && pass "kernel-only: both pipe ends' guesses are said" ||
	fail "kernel-only: $got diagnostics say a pipe end was guessed, not 2"
finish
