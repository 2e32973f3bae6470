#!/usr/bin/env bash
# haproxy (Debian's haproxy) under the shim, one process, one thread, on
# 127.0.0.1 with a frontend that answers every request itself (http-request
# return) and a stats socket (mode 600).  haproxy binds the stats socket
# as NAME.PID.tmp and renames it to NAME: the image must record NAME, its
# mode 0600 and an info diagnostic (issue 12 item 5).  Dumped 5 times under
# an HTTP load (every status and body checked), then quiet (exact, show,
# verify); a restore beside the live haproxy (whose listener has
# SO_REUSEPORT) must be refused (item 6); then haproxy is stopped and the
# quiet image restored in a fresh process (as nobody when root), the stats
# socket file with its mode, and removed when the restore ends.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

PATH=$PATH:/usr/sbin	# where Debian puts haproxy
real_need haproxy haproxy
PORT=$(real_free_port)
H=$WORK/haproxy
mkdir -p "$H/run"
chmod 755 "$H"
chmod 1777 "$H/run"	# the restore, as nobody, binds the stats socket there
printf 'epollcr haproxy test %s %s' "$PORT" "$RANDOM" >"$H/body"
chmod 644 "$H/body"
cat >"$H/haproxy.cfg" <<CFG
global
	stats socket $H/run/stats.sock mode 600 level admin
	nbthread 1
	pidfile $H/haproxy.pid
defaults
	mode http
	timeout connect 1s
	timeout client 10s
	timeout server 10s
frontend fe
	bind 127.0.0.1:$PORT
	http-request return status 200 content-type text/plain file $H/body
CFG
# -db: foreground, no daemon, one process.
LD_PRELOAD=$PRELOAD haproxy -db -f "$H/haproxy.cfg" >"$WORK/haproxy.out" 2>&1 &
HPID=$!
PIDS+=("$HPID")
real_wait_listen "$PORT" || { fail "haproxy did not start"; cat "$WORK/haproxy.out"; finish; }
# haproxy listens before it adds its three watches (the listener, the stats
# socket and one more) to its epoll set: wait for them in fdinfo (at most 20 s;
# a loaded machine once showed the first image with none).
watches() { cat /proc/"$HPID"/fdinfo/* 2>/dev/null | grep -c '^tfd:'; }
for ((i = 0; i < 400; i++)); do [ "$(watches)" -ge 3 ] && break; sleep 0.05; done
[ "$(watches)" -ge 3 ] || { fail "haproxy has $(watches) watches after 20 s"; cat "$WORK/haproxy.out"; finish; }
echo "haproxy pid $HPID on 127.0.0.1:$PORT"

# stats_check NAME: the image's stats socket is at its final name, mode
# 0600, and the rename is diagnosed.
stats_check() {
	local got
	got=$(real_query "$WORK/$1.json" "[(t['address'], t.get('file_mode')) for e in j['epoll'] for w in e['watches'] for t in [w['target']] if t.get('domain') == 'AF_UNIX' and t.get('listening')]")
	[ "$got" = "[('$H/run/stats.sock', '0600')]" ] &&
		pass "$1: the stats socket is recorded at its final name, mode 0600" ||
		fail "$1: stats socket(s) recorded as $got, expected $H/run/stats.sock with mode 0600"
	got=$(real_query "$WORK/$1.json" "sum(1 for d in j['diagnostics'] if 'bound as $H/run/stats.sock.$HPID.tmp was renamed to $H/run/stats.sock' in d['message'])")
	[ "$got" = 1 ] && pass "$1: the rename of the stats socket is diagnosed" ||
		fail "$1: $got diagnostics of the rename, expected 1"
}

real_dump start "$HPID" && real_exact_check start "$HPID" "$WORK/start.json" "$WORK/start.img" ||
	fail "dump of the idle haproxy"
stats_check start

# Load: 8 keep-alive clients, a new connection every 20 requests, until
# the test has dumped 5 times (at most 1000000 requests, 45 s).
"$PY" "$REAL_LOAD" http "$PORT" --clients 8 --requests 1000000 --seconds 45 \
	--reconnect 20 --stop "$WORK/stop" --body-file "$H/body" \
	>"$WORK/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
real_dumps_under_load "$HPID" "$LPID"
cat "$WORK/load.out"
[ "$LOAD_STATUS" = 0 ] && pass "every answer was 200 with the body" || fail "the load saw errors"

real_quiet_check quiet "$HPID"
stats_check quiet
if out=$("$CLI" show "$WORK/quiet.img" 2>&1); then
	pass "epollcr show: $(grep -c 'tfd ' <<<"$out") watch lines"
else
	fail "epollcr show:"; echo "$out"
fi

# Beside the live haproxy (same user: the kernel would let it join the
# listener's SO_REUSEPORT group): refused, and no file left behind.
if out=$(cd "$WORK" && "$CLI" restore "$WORK/quiet.img" 2>&1); then
	fail "restored beside the live haproxy: $out"
else
	grep -q "127.0.0.1:$PORT is in use by another process.*SO_REUSEPORT" <<<"$out" &&
		pass "a restore beside the live haproxy is refused: $out" ||
		fail "beside the live haproxy: $out"
fi
[ "$(ls "$H/run")" = stats.sock ] || fail "files in $H/run after the refused restore: $(ls "$H/run")"

stop "$HPID"
real_alive "$HPID" && fail "haproxy did not stop"
real_no_shim_log haproxy "$WORK/haproxy.out"
# haproxy leaves its stats socket file behind; a restore never replaces a
# file, so the operator removes it (haproxy's own restart renames over it).
rm -f "$H/run/stats.sock"
real_restore_check restore "$WORK/quiet.img" "$WORK/quiet.json"
[ -z "$(ls "$H/run")" ] && pass "the restore removed the stats socket file it bound when it ended" ||
	fail "left in $H/run after the restore: $(ls -l "$H/run")"
echo "dump times: $(real_dump_stats)"
finish
