#!/usr/bin/env bash
# redis-server (Debian's redis-server) under the shim: redis-benchmark load
# while the test dumps it 5 times (each image checked against the kernel's
# stable watches), a quiet dump checked exactly, the benchmark's effects
# checked with redis-cli, then the quiet image restored (as nobody when
# root) and compared with the restored process.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

real_need redis-server redis-server
real_need redis-benchmark redis-tools
real_need redis-cli redis-tools
N=20000
PORT=$(real_free_port)
mkdir -p "$WORK/redis"
LD_PRELOAD=$PRELOAD redis-server --port "$PORT" --bind 127.0.0.1 --save '' \
	--appendonly no --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" \
	>"$WORK/redis.out" 2>&1 &
RPID=$!
PIDS+=("$RPID")
real_wait_listen "$PORT" || { fail "redis-server did not start"; cat "$WORK/redis.out" "$WORK/redis/redis.log"; finish; }
echo "redis-server pid $RPID on 127.0.0.1:$PORT"
rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

real_dump start "$RPID" && real_exact_check start "$RPID" "$WORK/start.json" "$WORK/start.img" ||
	fail "dump of the idle server"

# Load: rounds of 5 benchmarks of N requests each from 20 connections
# (about 3 s a round here) until the test has dumped 5 times, at most 10
# rounds; counter:__rand_int__ and mylist (no -r: fixed keys) let the test
# check afterwards that every request of every round was executed.
(
	for ((r = 1; r <= 10; r++)); do
		timeout 60 redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$N" -c 20 -q --csv \
			-t set,get,incr,lpush,rpush >>"$WORK/bench.csv" 2>>"$WORK/bench.err" || exit 1
		echo "$r" >"$WORK/rounds"
		[ -e "$WORK/stop" ] && exit 0
	done
) &
BPID=$!
PIDS+=("$BPID")
real_dumps_under_load "$RPID" "$BPID" "the benchmark"
bstatus=$LOAD_STATUS
rounds=$(cat "$WORK/rounds" 2>/dev/null || echo 0)

# The benchmark: every test of every round completed, nothing refused.
echo "redis-benchmark: $rounds round(s) (exit $bstatus):"; grep -v '^"test"' "$WORK/bench.csv"
[ $bstatus = 0 ] || fail "redis-benchmark exit status $bstatus: $(cat "$WORK/bench.err")"
for t in SET GET INCR LPUSH RPUSH; do
	[ "$(grep -c "^\"$t\"," "$WORK/bench.csv")" = "$rounds" ] ||
		fail "redis-benchmark has not $rounds results for $t"
done
grep -qi error "$WORK/bench.csv" "$WORK/bench.err" && fail "redis-benchmark reported errors"
counter=$(rcli get 'counter:__rand_int__')
llen=$(rcli llen mylist)
value=$(rcli get 'key:__rand_int__')
if [ "$rounds" -gt 0 ] && [ "$counter" = $((rounds * N)) ] &&
	[ "$llen" = $((2 * rounds * N)) ] && [ ${#value} = 3 ]; then
	pass "every request was executed: INCR counter = $counter, LLEN mylist = $llen (LPUSH + RPUSH), GET key = '$value' (3 bytes), $rounds round(s) of $N"
else
	fail "requests lost: counter '$counter' llen '$llen' value '$value' (expected $((rounds * N)), $((2 * rounds * N)), 3 bytes)"
fi

# Quiet: the clients are gone; the image must equal the kernel's view.
real_quiet_check quiet "$RPID"
real_query "$WORK/quiet.json" "[w['target'].get('listening') for e in j['epoll'] for w in e['watches'] if w['target']['kind'] == 'socket']" |
	grep -q True && pass "quiet image has the listening socket" || fail "quiet image lacks the listening socket"

rcli shutdown nosave >/dev/null 2>&1
stop "$RPID"
real_alive "$RPID" && fail "redis-server did not stop"
real_no_shim_log redis "$WORK/redis.out" "$WORK/redis/redis.log"
real_restore_check quiet "$WORK/quiet.img" "$WORK/quiet.json"
echo "dump times: $(real_dump_stats)"
finish
