#!/usr/bin/env bash
# Debian's python3 running an asyncio echo server (real_asyncio_server.py:
# selectors.EpollSelector, a self-pipe socketpair, signal wake-up fd) under
# the shim: echo clients (real_load.py, every line compared) while the test
# dumps it 5 times (stable watches checked against the kernel), a quiet
# dump checked exactly, then the quiet image restored (as nobody when
# root) and checked.  The self-pipe is a socketpair whose write end is
# never watched: the image must hold both ends, paired (checked against
# the kernel's own word through `ss -x`), and the restore must bring the
# pair back at its numbers without --missing=skip.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

# pair_check NAME PID JSON: every socketpair end the image watches names
# its other end's fd, and the kernel (ss -x: inode and peer inode of every
# unix socket) says the two fds of PID are connected to each other, with
# no diagnostic saying a watched socketpair cannot be restored.  Prints
# the number of pairs checked.
pair_check() {
	"$PY" - "$2" "$3" <<'PYEOF'
import json, os, subprocess, sys
pid, path = int(sys.argv[1]), sys.argv[2]
image = json.load(open(path))
peer = {}
for line in subprocess.run(["ss", "-xHn"], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    f = line.split()
    if len(f) >= 8 and f[5].isdigit() and f[7].isdigit():
        peer[int(f[5])] = int(f[7])
problems, pairs = [], 0
for e in image["epoll"]:
    for w in e["watches"]:
        t = w.get("target") or {}
        if not t.get("socketpair"):
            continue
        pairs += 1
        a, b = w.get("open_fd"), t.get("pair_fd")
        if a is None or b is None:
            problems.append(f"tfd {w['tfd']}: socketpair end without fd {a} or other end fd {b}")
            continue
        ia = os.stat(f"/proc/{pid}/fd/{a}").st_ino
        ib = os.stat(f"/proc/{pid}/fd/{b}").st_ino
        if peer.get(ia) != ib or peer.get(ib) != ia:
            problems.append(f"tfd {w['tfd']}: fds {a} (inode {ia}, peer {peer.get(ia)}) and {b} (inode {ib}, peer {peer.get(ib)}) are not connected to each other")
for d in image["diagnostics"]:
    if d.get("code") == "unrestorable" and "socket" in d.get("message", ""):
        problems.append(f"diagnostic: {d.get('message')}")
for p in problems:
    print(p)
print(f"{pairs} socketpair ends checked against ss -x: {len(problems)} problems")
sys.exit(1 if problems or not pairs else 0)
PYEOF
}

# The interpreter under test is Debian's, whatever python3 the PATH names.
real_need /usr/bin/python3 python3
PORT=$(real_free_port)
LD_PRELOAD=$PRELOAD /usr/bin/python3 "$TOP/test/integration/real_asyncio_server.py" "$PORT" \
	>"$WORK/server.out" 2>"$WORK/server.err" &
SPID=$!
PIDS+=("$SPID")
wait_for "$WORK/server.out" "^ready" 20 || { fail "the asyncio server did not start"; cat "$WORK/server.err"; finish; }
echo "python3 asyncio server pid $SPID on 127.0.0.1:$PORT"

real_dump start "$SPID" && real_exact_check start "$SPID" "$WORK/start.json" "$WORK/start.img" ||
	fail "dump of the idle server"
pair=$(real_query "$WORK/start.json" "sum(1 for e in j['epoll'] for w in e['watches'] if w['target'].get('socketpair'))")
[ "$pair" -ge 1 ] && pass "the idle image has asyncio's self-pipe socketpair watched" ||
	fail "the idle image has no watch flagged socketpair: asyncio's self-pipe (socket.socketpair(), both ends in the process) is recorded as a lone connected socket"
if out=$(pair_check start "$SPID" "$WORK/start.json"); then
	pass "start: ${out##*$'\n'}"
else
	fail "start: the image's socketpair is not the kernel's:"; echo "$out"
fi

# Load: 8 echo clients, a new connection every 20 lines, until the test has
# dumped 5 times (at most 500000 lines, 45 s).
"$PY" "$REAL_LOAD" echo "$PORT" --clients 8 --requests 500000 --seconds 45 \
	--reconnect 20 --stop "$WORK/stop" >"$WORK/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
real_dumps_under_load "$SPID" "$LPID"
lstatus=$LOAD_STATUS

cat "$WORK/load.out"
[ $lstatus = 0 ] && pass "every line came back unchanged" || fail "the load saw errors"
done_n=$(sed -n 's/^echo: \([0-9]*\) requests, [0-9]* errors, \([0-9]*\) connections.*/\1 \2/p' "$WORK/load.out")
stats=$(timeout 10 "$PY" "$REAL_LOAD" count "$PORT" echo)
echo "server stats: $stats"
# The server also counted the connection that asked for the stats.
read -r n c <<<"$done_n"
if [ -n "$done_n" ] && [ "$stats" = "lines $n connections $((c + 1))" ]; then
	pass "the server echoed $n lines on $c connections, as the clients counted"
else
	fail "server stats '$stats' differ from the clients' $n lines on $c connections"
fi

real_quiet_check quiet "$SPID"
if out=$(pair_check quiet "$SPID" "$WORK/quiet.json"); then
	pass "quiet: ${out##*$'\n'}"
else
	fail "quiet: the image's socketpair is not the kernel's:"; echo "$out"
fi
stop "$SPID"
real_alive "$SPID" && fail "the server did not stop"
grep -q "^stopped: lines $n " "$WORK/server.out" && pass "the server stopped cleanly on SIGTERM" ||
	{ fail "the server did not stop cleanly:"; cat "$WORK/server.out" "$WORK/server.err"; }
real_no_shim_log python "$WORK/server.out" "$WORK/server.err"
# The whole image, the socketpair included, without --missing=skip.
real_restore_check quiet "$WORK/quiet.img" "$WORK/quiet.json"
# Once more, to hold the restored pair against the kernel's word (ss -x).
drop=()
[ "$(id -u)" = 0 ] && drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
cp "$CLI" "$WORK/pair-cli" && chmod 755 "$WORK/pair-cli"
cp "$WORK/quiet.img" "$WORK/pair.img" && chmod 644 "$WORK/pair.img"
(cd "$WORK" && exec "${drop[@]}" "$WORK/pair-cli" restore --hold "$WORK/pair.img") \
	>"$WORK/pair.restore.out" 2>&1 &
RPID=$!
PIDS+=("$RPID")
if real_wait_ready "$RPID" "$WORK/pair.restore.out"; then
	if out=$(pair_check restored "$RPID" "$WORK/quiet.json"); then
		pass "restored (pid $RPID): ${out##*$'\n'}"
	else
		fail "restored: the socketpair of the restored process is not the image's:"; echo "$out"
	fi
else
	fail "the second restore did not get ready:"; cat "$WORK/pair.restore.out"
fi
stop "$RPID"
echo "dump times: $(real_dump_stats)"
finish
