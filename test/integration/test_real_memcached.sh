#!/usr/bin/env bash
# memcached (Debian's memcached: libevent, one epoll set per thread) under
# the shim, 4 worker threads, switching to the user nobody when started as
# root: a set/get client load (real_load.py, every value read back) while
# the test dumps it 5 times (stable watches checked against the kernel),
# memcached's own counters checked against the load, a quiet dump checked
# exactly, then the quiet image restored (as nobody when root) and checked.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

real_need memcached memcached
PORT=$(real_free_port)
user=()
# memcached refuses to run as root without -u; it then switches to nobody
# after creating its sockets and threads, and is dumped as nobody.
[ "$(id -u)" = 0 ] && user=(-u nobody)
LD_PRELOAD=$PRELOAD memcached -l 127.0.0.1 -p "$PORT" -U 0 -t 4 -m 64 \
	"${user[@]}" >"$WORK/memcached.out" 2>&1 &
MPID=$!
PIDS+=("$MPID")
real_wait_listen "$PORT" || { fail "memcached did not start"; cat "$WORK/memcached.out"; finish; }
echo "memcached pid $MPID on 127.0.0.1:$PORT, uid $(awk '/^Uid:/ { print $2 }' "/proc/$MPID/status")"

real_dump start "$MPID" && real_exact_check start "$MPID" "$WORK/start.json" "$WORK/start.img" ||
	fail "dump of the idle server"
nsets=$(real_query "$WORK/start.json" "len(j['epoll'])")
[ "$nsets" -ge 5 ] && pass "memcached has $nsets epoll sets (listener + 4 workers)" ||
	fail "memcached has $nsets epoll sets, expected at least 5"

# Load: 8 clients, set then get (each value compared), a new connection
# every 20 requests, until the test has dumped 5 times (at most 500000
# requests, 45 s).
"$PY" "$REAL_LOAD" memcache "$PORT" --clients 8 --requests 500000 \
	--seconds 45 --reconnect 20 --stop "$WORK/stop" >"$WORK/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
real_dumps_under_load "$MPID" "$LPID"
lstatus=$LOAD_STATUS

cat "$WORK/load.out"
[ $lstatus = 0 ] && pass "every get returned the value set" || fail "the load saw errors"
done_n=$(sed -n 's/^memcache: \([0-9]*\) requests.*/\1/p' "$WORK/load.out")
stats=$(timeout 10 "$PY" "$REAL_LOAD" count "$PORT" memcache)
echo "memcached stats: $stats"
if [ -n "$done_n" ] && [ "$stats" = "cmd_set $done_n get_hits $done_n get_misses 0" ]; then
	pass "memcached counted $done_n sets and $done_n hits, as the client did"
else
	fail "memcached counters '$stats' differ from the client's $done_n requests"
fi

real_quiet_check quiet "$MPID"
real_no_shim_log memcached "$WORK/memcached.out"
stop "$MPID"
real_alive "$MPID" && fail "memcached did not stop"
real_restore_check quiet "$WORK/quiet.img" "$WORK/quiet.json"
echo "dump times: $(real_dump_stats)"
finish
