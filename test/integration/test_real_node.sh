#!/usr/bin/env bash
# node (the nodejs package: libuv, one epoll set per event loop, worker
# threads) running an HTTP server (real_node_server.js) under the shim:
# HTTP clients (real_load.py, every status and body checked) while the test
# dumps it 5 times (stable watches checked against the kernel), a quiet
# dump checked exactly, then the quiet image restored (as nobody when
# root) and checked.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

real_need node nodejs
PORT=$(real_free_port)
LD_PRELOAD=$PRELOAD node "$TOP/test/integration/real_node_server.js" "$PORT" \
	>"$WORK/server.out" 2>"$WORK/server.err" &
SPID=$!
PIDS+=("$SPID")
wait_for "$WORK/server.out" "^ready" 20 || { fail "the node server did not start"; cat "$WORK/server.err"; finish; }
echo "node $(node --version) (libuv $(node -p process.versions.uv)) pid $SPID on 127.0.0.1:$PORT"

real_dump start "$SPID" && real_exact_check start "$SPID" "$WORK/start.json" "$WORK/start.img" ||
	fail "dump of the idle server"

# Load: 8 keep-alive HTTP clients, a new connection every 20 requests,
# until the test has dumped 5 times (at most 1000000 requests, 45 s).
"$PY" "$REAL_LOAD" http "$PORT" --clients 8 --requests 1000000 --seconds 45 \
	--reconnect 20 --stop "$WORK/stop" --body-echo "hello from node" \
	>"$WORK/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
real_dumps_under_load "$SPID" "$LPID"
lstatus=$LOAD_STATUS

cat "$WORK/load.out"
[ $lstatus = 0 ] && pass "every answer was 200 with the expected body" || fail "the load saw errors"
n=$(sed -n 's/^http: \([0-9]*\) requests.*/\1/p' "$WORK/load.out")
count=$(timeout 10 "$PY" "$REAL_LOAD" count "$PORT" http)
[ -n "$n" ] && [ "$count" = "$n" ] && pass "the server served $count requests, as the clients counted" ||
	fail "the server counted '$count' requests, the clients '$n'"

real_quiet_check quiet "$SPID"
stop "$SPID"
real_alive "$SPID" && fail "node did not stop"
grep -q "^stopped: served $n\$" "$WORK/server.out" && pass "node stopped cleanly on SIGTERM" ||
	{ fail "node did not stop cleanly:"; cat "$WORK/server.out" "$WORK/server.err"; }
real_no_shim_log node "$WORK/server.out" "$WORK/server.err"
real_restore_check quiet "$WORK/quiet.img" "$WORK/quiet.json"
echo "dump times: $(real_dump_stats)"
finish
