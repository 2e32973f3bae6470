#!/usr/bin/env bash
# Kernel-only dumps (issue 13): processes the shim cannot answer for are
# dumped from the kernel's view alone, restored as nobody and verified
# against /proc/PID/fdinfo.
# - kernel_target (nested sets, a fired oneshot, a stale tfd,
#   EPOLLEXCLUSIVE, TCP listener with backlog 7, UDP, socketpair, pipe,
#   eventfd, timerfd, signalfd) built -static and started with `epollcr run` (the
#   shim cannot load), and built dynamic under `epollcr run` (the shim is
#   loaded, its recorder never starts: raw epoll syscalls);
# - `dump --kernel` of a program whose shim answers; `dump --freeze`;
# - a kernel-only dump as nobody of nobody's own process, and the errors
#   for another user's process and a process that is gone;
# - `epollcr ps` and `dump --tree` over a mixed tree;
# - a Python server without the shim whose unix socket file was renamed
#   and given mode 0640 after bind: the kernel-only image records the
#   file's mode and the name it has now, with an info diagnostic.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$TOP/test/integration/real_lib.sh"

target=$PROGS/kernel_target
[ -x "$target" ] || { fail "$target is not built"; finish; }
cp "$target" "$WORK/kdyn" && chmod 755 "$WORK/kdyn"
if ! ${CC:-gcc} -static -O1 -o "$WORK/kstatic" "$TOP/test/integration/kernel_target.c" 2>"$WORK/static.err"; then
	fail "gcc -static failed (Debian package libc6-dev):"; cat "$WORK/static.err"; finish
fi
chmod 755 "$WORK/kstatic"

# json_is FILE EXPR: the python expression on `j` is true.
json_is() { [ "$(json_query "$1" "$2")" = True ]; }

# kcheck NAME PID: dump PID (kernel-only expected), check the image
# against the kernel, the shapes kernel_target made, and verify.
kcheck() {
	local name=$1 pid=$2 out
	if ! "$CLI" dump -o "$WORK/$name.img" "$pid" >"$WORK/$name.dump" 2>&1; then
		fail "$name: dump of pid $pid exit $?:"; cat "$WORK/$name.dump"; return 1
	fi
	"$CLI" show --json "$WORK/$name.img" >"$WORK/$name.json" || { fail "$name: show --json"; return 1; }
	json_is "$WORK/$name.json" 'j["kernel_only"] and j["kernel_view"] and not j["shadow_view"] and j["complete"] and not j["unsettled"]' &&
		pass "$name: the image says kernel-only, complete" ||
		fail "$name: flags: $(head -c 400 "$WORK/$name.json")"
	"$CLI" show "$WORK/$name.img" | grep -q '^epollcr image, format 1, complete, kernel view, kernel-only' &&
		pass "$name: show says kernel-only" || fail "$name: show does not say kernel-only"
	json_is "$WORK/$name.json" 'sum("kernel-only image" in d["message"] for d in j["diagnostics"]) == 1' &&
		pass "$name: one diagnostic lists what a kernel-only image lacks" ||
		fail "$name: no single kernel-only diagnostic"
	if out=$(python3 "$TOP/test/integration/check_image.py" "$pid" "$WORK/$name.json" 2>&1); then
		pass "$name: image equals /proc/$pid/fdinfo: ${out##*$'\n'}"
	else
		fail "$name: image differs from /proc/$pid/fdinfo:"; echo "$out"
	fi
	python3 - "$WORK/$name.json" <<'PY' && pass "$name: 3 sets, nesting, disarmed oneshot, stale tfd, EPOLLEXCLUSIVE, backlog 7, signalfd, unix listener @epollcr-kt-PID backlog 5" || fail "$name: shapes missing"
import json, sys
j = json.load(open(sys.argv[1]))
sets = j["epoll"]
w = [x for s in sets for x in s["watches"]]
by_data = {x["data"]: x for x in w}
ok = len(sets) == 3 and len(w) == 10
ok &= "disarmed" in by_data["0x3001"]["flags"] and by_data["0x3001"]["events"] == "0x40000000"
ok &= "stale" in by_data["0x2005"]["flags"]
ok &= int(by_data["0x2002"]["events"], 16) & 0x10000000 != 0
ok &= by_data["0x2002"]["target"]["backlog"] == 7
ok &= by_data["0x2001"]["target"]["kind"] == "epoll"
ok &= any(s["nested_in"] for s in sets)
ok &= by_data["0x1003"]["target"]["kind"] == "signalfd"
u = by_data["0x2006"]["target"]
ok &= u["listening"] and u["backlog"] == 5 and u["address"].startswith("@epollcr-kt-")
sys.exit(0 if ok else 1)
PY
	if out=$("$CLI" verify --pid "$pid" "$WORK/$name.img" 2>&1); then
		pass "$name: epollcr verify --pid $pid: $out"
	else
		fail "$name: epollcr verify --pid $pid:"; echo "$out"
	fi
}

# kstart NAME CMD...: start CMD (no LD_PRELOAD of ours), wait for "ready".
kstart() {
	local name=$1; shift
	"$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
	wait_for "$WORK/$name.out" ready 20
}

# 1. static, under epollcr run: the shim cannot load
kstart static "$CLI" run -- "$WORK/kstatic" || fail "static: not ready"
spid=$STARTED_PID
if kcheck static "$spid"; then
	grep -q "note: pid $spid: it is a statically linked program" "$WORK/static.dump" &&
		pass "static: the note says statically linked: $(grep note "$WORK/static.dump")" ||
		{ fail "static: no note naming a static binary:"; cat "$WORK/static.dump"; }
fi
# --freeze: stopped for the read, running again after, not traced
if "$CLI" dump --freeze -o "$WORK/frozen.img" "$spid" >"$WORK/frozen.dump" 2>&1; then
	state=$(awk '{ print $3 }' "/proc/$spid/stat")
	tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$spid/status")
	[ "$state" = S ] && [ "$tracer" = 0 ] &&
		pass "freeze: dumped; afterwards state $state, TracerPid $tracer" ||
		fail "freeze: afterwards state $state, TracerPid $tracer"
	"$CLI" verify --pid "$spid" "$WORK/frozen.img" >/dev/null &&
		pass "freeze: the frozen image verifies" || fail "freeze: verify"
else
	fail "freeze: dump --freeze:"; cat "$WORK/frozen.dump"
fi
# --freeze of a process traced by another (here a python ctypes
# PTRACE_SEIZE): refused, naming the tracer; a plain dump still works
python3 - "$spid" >"$WORK/tracer.out" 2>&1 <<'PY' &
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_SEIZE = 0x4206
if libc.ptrace(PTRACE_SEIZE, int(sys.argv[1]), None, None) != 0:
    print("seize failed", ctypes.get_errno(), flush=True)
    sys.exit(1)
print("traced", flush=True)
time.sleep(30)
PY
tracer=$!
PIDS+=("$tracer")
if wait_for "$WORK/tracer.out" traced 10; then
	out=$("$CLI" dump --freeze -o "$WORK/traced.img" "$spid" 2>&1)
	[ $? = 1 ] && grep -q "pid $spid is already traced by pid $tracer" <<<"$out" &&
		pass "traced: --freeze refused: $out" || fail "traced: --freeze: $out"
	"$CLI" dump -o "$WORK/traced.img" "$spid" >/dev/null 2>&1 &&
		"$CLI" verify --pid "$spid" "$WORK/traced.img" >/dev/null &&
		pass "traced: a dump without --freeze works" || fail "traced: plain dump"
fi
kill "$tracer" 2>/dev/null
wait "$tracer" 2>/dev/null

# epollcr ps lists it, without the shim
if "$CLI" ps >"$WORK/ps.txt" 2>&1 && grep -Eq "^ *$spid +kstatic +3 +10 no +-$" "$WORK/ps.txt"; then
	pass "ps: $(grep -E "^ *$spid " "$WORK/ps.txt")"
else
	fail "ps: no line for pid $spid with 3 sets, 10 watches, no shim:"; cat "$WORK/ps.txt"
fi
"$CLI" ps --json >"$WORK/ps.json" && json_is "$WORK/ps.json" "[p for p in j if p['pid'] == $spid] == [{'pid': $spid, 'comm': 'kstatic', 'sets': 3, 'watches': 10, 'shim': False, 'signal': None, 'signo': None}]" &&
	pass "ps --json: pid $spid" || fail "ps --json: $(cat "$WORK/ps.json")"
# Without pidfd_getfd (refused, as under Yama ptrace_scope 1: a seccomp
# filter here), sockets are described from sock_diag alone
if python3 "$TOP/test/integration/no_getfd.py" "$CLI" dump -o "$WORK/nogetfd.img" "$spid" >"$WORK/nogetfd.dump" 2>&1 &&
	"$CLI" show --json "$WORK/nogetfd.img" >"$WORK/nogetfd.json"; then
	python3 - "$WORK/nogetfd.json" <<'PY' && pass "no getfd: TCP listener (address, backlog 7), UDP (address), unix listener (name, backlog 5) from sock_diag; the note says so" || fail "no getfd: $(head -c 2000 "$WORK/nogetfd.json")"
import json, sys
j = json.load(open(sys.argv[1]))
t = {w["data"]: w["target"] for s in j["epoll"] for w in s["watches"]}
ok = t["0x2002"]["domain"] == "AF_INET" and t["0x2002"]["listening"] and t["0x2002"]["backlog"] == 7
ok &= t["0x2002"]["address"].startswith("127.0.0.1:") and not t["0x2002"]["reuseaddr"]
ok &= t["0x2003"]["type"] == "SOCK_DGRAM" and t["0x2003"]["address"].startswith("127.0.0.1:")
ok &= t["0x2004"]["domain"] == "AF_UNIX" and t["0x2004"]["socketpair"]
ok &= t["0x2006"]["backlog"] == 5 and t["0x2006"]["address"].startswith("@epollcr-kt-") and t["0x2006"]["listening"]
ok &= any("3 sockets were described from sock_diag alone" in d["message"] for d in j["diagnostics"])
sys.exit(0 if ok else 1)
PY
	if out=$(python3 "$TOP/test/integration/check_image.py" "$spid" "$WORK/nogetfd.json" 2>&1); then
		pass "no getfd: image equals /proc/$spid/fdinfo: ${out##*$'\n'}"
	else
		fail "no getfd: image differs from /proc/$spid/fdinfo:"; echo "$out"
	fi
else
	fail "no getfd: dump:"; cat "$WORK/nogetfd.dump"
fi
stop "$spid"
real_restore_check static "$WORK/static.img" "$WORK/static.json"
real_restore_check nogetfd "$WORK/nogetfd.img" "$WORK/nogetfd.json"

# reads until two agree: a process that changes a watch's data without a
# pause never gives two equal reads, unless it did not run at all between
# them (2 cores shared by the whole test suite): up to 40 dumps, until one
# is unsettled; --freeze gives one consistent read
kstart busy "$WORK/kstatic" busy || fail "busy: not ready"
bpid=$STARTED_PID
for ((try = 1; try <= 40; try++)); do
	out=$("$CLI" dump --reads 2 -o "$WORK/busy.img" "$bpid" 2>&1)
	status=$?
	grep -q "changed its epoll state" <<<"$out" && break
done
"$CLI" show --json "$WORK/busy.img" >"$WORK/busy.json" 2>&1
[ $status = 0 ] && grep -q "changed its epoll state during each of 2 reads" <<<"$out" &&
	json_is "$WORK/busy.json" 'j["unsettled"] and not j["complete"] and any("no two reads in a row agreed" in d["message"] for d in j["diagnostics"])' &&
	pass "busy: dump $try: 2 reads did not agree: the image says unsettled: $(grep warning <<<"$out")" ||
	{ fail "busy: exit $status: $out"; head -c 600 "$WORK/busy.json"; }
"$CLI" dump --freeze -o "$WORK/busy-frozen.img" "$bpid" >/dev/null 2>&1 &&
	"$CLI" show --json "$WORK/busy-frozen.img" >"$WORK/busy-frozen.json" &&
	json_is "$WORK/busy-frozen.json" 'not j["unsettled"] and j["complete"] and len(j["epoll"]) == 3' &&
	pass "busy: with --freeze one read is consistent and complete" || fail "busy: --freeze"
[ "$(awk '/^TracerPid:/ { print $2 }' "/proc/$bpid/status")" = 0 ] && [ "$(awk '{ print $3 }' "/proc/$bpid/stat")" = R ] &&
	pass "busy: running again, untraced, after --freeze" || fail "busy: state after --freeze: $(awk '{ print $3 }' "/proc/$bpid/stat")"
stop "$bpid"

# 2. dynamic, raw syscalls, under epollcr run: the recorder never starts
kstart raw "$CLI" run -- "$WORK/kdyn" || fail "raw: not ready"
rpid=$STARTED_PID
grep -q libepollcr "/proc/$rpid/maps" && pass "raw: the shim is loaded" || fail "raw: the shim is not loaded"
if kcheck raw "$rpid"; then
	grep -q "note: pid $rpid: it runs the shim but its recorder never started" "$WORK/raw.dump" &&
		pass "raw: the note says the recorder never started" ||
		{ fail "raw: no note about the recorder:"; cat "$WORK/raw.dump"; }
fi
grep -Eq "^ *$rpid +kdyn +3 +10 yes +-$" <("$CLI" ps) && pass "ps: the shim runs in $rpid, no recorder signal" ||
	{ fail "ps: line of $rpid:"; "$CLI" ps; }
stop "$rpid"
real_restore_check raw "$WORK/raw.img" "$WORK/raw.json"

# 3. --kernel with a shim that answers
READY=listening start server "$TOP/$BUILD/examples/epoll-server" 0 || fail "server: not ready"
epid=$STARTED_PID
"$CLI" dump -o "$WORK/shim.img" "$epid" >/dev/null 2>&1 && "$CLI" show --json "$WORK/shim.img" >"$WORK/shim.json" &&
	json_is "$WORK/shim.json" 'j["shadow_view"] and not j["kernel_only"]' &&
	pass "server: a dump through the shim has the shadow view" || fail "server: dump through the shim"
if "$CLI" dump --kernel -o "$WORK/kern.img" "$epid" >"$WORK/kern.dump" 2>&1 &&
	"$CLI" show --json "$WORK/kern.img" >"$WORK/kern.json" &&
	json_is "$WORK/kern.json" 'j["kernel_only"] and not j["shadow_view"] and j["counts"]["backtraces"] == 0'; then
	pass "server: --kernel reads from outside though the shim answers"
	"$CLI" verify --pid "$epid" "$WORK/kern.img" >/dev/null && pass "server: --kernel image verifies" ||
		fail "server: verify of the --kernel image"
else
	fail "server: dump --kernel:"; cat "$WORK/kern.dump"
fi

# 4. as nobody: nobody's own process, then root's
cp "$CLI" "$WORK/cli" && chmod 755 "$WORK/cli"
if [ "$(id -u)" = 0 ]; then
	drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	kstart nobody "${drop[@]}" "$WORK/kdyn" || fail "nobody: not ready"
	npid=$STARTED_PID
	mkdir -m 777 "$WORK/nobody-dir"
	if (cd "$WORK" && "${drop[@]}" ./cli dump -o "$WORK/nobody-dir/n.img" "$npid") >"$WORK/n.dump" 2>&1 &&
		(cd "$WORK" && "${drop[@]}" ./cli verify --pid "$npid" "$WORK/nobody-dir/n.img") >"$WORK/n.verify" 2>&1; then
		pass "nobody: dumped and verified its own process $npid: $(cat "$WORK/n.verify")"
	else
		fail "nobody: dump or verify of its own process:"; cat "$WORK/n.dump" "$WORK/n.verify"
	fi
	out=$(cd "$WORK" && "${drop[@]}" ./cli dump -o "$WORK/nobody-dir/root.img" "$epid" 2>&1)
	status=$?
	[ $status = 1 ] && grep -q "pid $epid belongs to uid 0, not to you (uid 65534)" <<<"$out" &&
		pass "nobody: dump of root's process: exit 1: $out" ||
		fail "nobody: dump of root's process: exit $status: $out"
	out=$(cd "$WORK" && "${drop[@]}" ./cli dump --freeze -o "$WORK/nobody-dir/root.img" "$epid" 2>&1)
	[ $? = 1 ] && grep -q "belongs to uid 0" <<<"$out" && pass "nobody: --freeze of root's process: $out" ||
		fail "nobody: --freeze of root's process: $out"
	stop "$npid"
fi
# a process without epoll sets: an empty image, and a note saying so
sleep 30 &
zpid=$!
PIDS+=("$zpid")
out=$("$CLI" dump -o "$WORK/none.img" "$zpid" 2>&1)
[ $? = 0 ] && grep -q "note: pid $zpid had no epoll set" <<<"$out" &&
	[ "$(json_query <("$CLI" show --json "$WORK/none.img") 'len(j["epoll"])')" = 0 ] &&
	pass "no epoll set: an empty kernel-only image and a note" || fail "no epoll set: $out"
kill "$zpid"
out=$("$CLI" dump -o "$WORK/gone.img" "$npid" 2>&1)
[ $? = 1 ] && grep -q "no process $npid" <<<"$out" && pass "gone: $out" || fail "gone: $out"
[ ! -e "$WORK/gone.img" ] && pass "gone: no image left" || fail "gone: an image was left"

# 5. --tree: a shell whose children are the server (shim, answers), a
# static kernel_target (no shim), a raw kernel_target (shim, no recorder)
# and a sleep under the shim (no epoll set)
"$CLI" run -- bash -c '"$1" 0 > "$2/t-server.out" & "$3" > "$2/t-static.out" & "$4" > "$2/t-raw.out" & sleep 60 & wait' \
	tree "$TOP/$BUILD/examples/epoll-server" "$WORK" "$WORK/kstatic" "$WORK/kdyn" &
tpid=$!
PIDS+=("$tpid")
TREE_PIDS+=("$tpid")
wait_for "$WORK/t-server.out" listening 20 && wait_for "$WORK/t-static.out" ready 20 && wait_for "$WORK/t-raw.out" ready 20
sleep 0.2
if "$CLI" dump --tree -o "$WORK/tree" "$tpid" >"$WORK/tree.paths" 2>"$WORK/tree.report"; then
	pass "tree: exit 0"
else
	fail "tree: exit $?"
fi
cat "$WORK/tree.report"
[ "$(grep -c 'dumped via the shim$' "$WORK/tree.report")" = 1 ] &&
	[ "$(grep -c 'dumped kernel-only$' "$WORK/tree.report")" = 2 ] &&
	[ "$(grep -c 'no epoll sets$' "$WORK/tree.report")" = 2 ] &&
	pass "tree: 1 via the shim, 2 kernel-only, 2 without epoll sets (bash, sleep)" ||
	fail "tree: report above"
[ "$(wc -l <"$WORK/tree.paths")" = 3 ] && [ "$(ls "$WORK/tree" | wc -l)" = 3 ] &&
	pass "tree: 3 images" || fail "tree: images: $(ls "$WORK/tree")"
"$CLI" verify "$WORK/tree" >"$WORK/tree.verify" 2>&1 && pass "tree: every image verifies" ||
	{ fail "tree: verify"; cat "$WORK/tree.verify"; }

# 6. unix socket files from outside (issue 12.5 on the kernel-only path):
# bound as u.tmp, then chmod 0640 and renamed to u.sock, as haproxy does.
kstart unixfile python3 -c '
import os, select, socket, sys, time
d = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(d + "/u.tmp"); s.listen(3)
os.chmod(d + "/u.tmp", 0o640); os.rename(d + "/u.tmp", d + "/u.sock")
ep = select.epoll(); ep.register(s.fileno(), select.EPOLLIN)
print("ready", flush=True)
time.sleep(60)' "$WORK"
upid=$STARTED_PID
if "$CLI" dump -o "$WORK/unixfile.img" "$upid" >"$WORK/unixfile.dump" 2>&1 &&
	"$CLI" show --json "$WORK/unixfile.img" >"$WORK/unixfile.json"; then
	json_is "$WORK/unixfile.json" 'j["kernel_only"] and any(w["target"].get("file_mode") == "0640" and w["target"]["address"].endswith("/u.sock") for e in j["epoll"] for w in e["watches"]) and any("was renamed to" in d["message"] for d in j["diagnostics"])' &&
		pass "unixfile: kernel-only image records u.sock, file mode 0640, the rename" ||
		fail "unixfile: $(head -c 1200 "$WORK/unixfile.json")"
else
	fail "unixfile: dump or show:"; cat "$WORK/unixfile.dump"
fi
finish
