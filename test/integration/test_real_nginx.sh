#!/usr/bin/env bash
# nginx (Debian's nginx-light) under the shim: a master and 2 workers (the
# workers, nobody when started as root, watch the same listening socket
# with EPOLLEXCLUSIVE and their clients with EPOLLET), dumped as a tree
# (`epollcr dump --tree`: one image per process running the shim) 5 times
# under an HTTP load (real_load.py, every status and body checked; each
# image's stable watches checked against its process's kernel view), then
# quiet (every image exact, `epollcr show DIR` and `epollcr verify DIR`),
# then each image restored in a fresh process (as nobody when root).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

PATH=$PATH:/usr/sbin	# where Debian puts nginx, not on every user's PATH
real_need nginx nginx-light
real_need pgrep procps
PORT=$(real_free_port)
N=$WORK/nginx
mkdir -p "$N/html"
echo "epollcr nginx test $PORT $RANDOM" >"$N/html/index.html"
chmod 755 "$N" "$N/html"
chmod 644 "$N/html/index.html"
cat >"$N/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $N/nginx.pid;
error_log $N/error.log info;
events { worker_connections 512; }
http {
	access_log $N/access.log;
	client_body_temp_path $N/client_body;
	proxy_temp_path $N/proxy;
	fastcgi_temp_path $N/fastcgi;
	uwsgi_temp_path $N/uwsgi;
	scgi_temp_path $N/scgi;
	server {
		listen 127.0.0.1:$PORT;
		root $N/html;
		location / { try_files /index.html =404; }
	}
}
EOF
# -e: the error log before the configuration is read (not /var/log).
LD_PRELOAD=$PRELOAD nginx -p "$N" -c "$N/nginx.conf" -e "$N/error.log" \
	>"$WORK/nginx.out" 2>&1 &
NPID=$!
PIDS+=("$NPID")
TREE_PIDS+=("$NPID")
real_wait_listen "$PORT" || { fail "nginx did not start"; cat "$WORK/nginx.out" "$N/error.log"; finish; }
WORKERS=()
for ((i = 0; i < 100; i++)); do
	mapfile -t WORKERS < <(pgrep -P "$NPID")
	[ ${#WORKERS[@]} = 2 ] && break
	sleep 0.1
done
EXTRA_PIDS+=("${WORKERS[@]}")
[ ${#WORKERS[@]} = 2 ] || { fail "nginx has ${#WORKERS[@]} workers, expected 2"; finish; }
echo "nginx master $NPID, workers ${WORKERS[*]} (uid $(awk '/^Uid:/ { print $2 }' "/proc/${WORKERS[0]}/status")) on 127.0.0.1:$PORT"
ALL=("$NPID" "${WORKERS[@]}")

# tree_pids NAME: the pids of the images of $WORK/NAME.json, sorted.
tree_pids() { real_query "$WORK/$1.json" "' '.join(sorted(str(i['pid']) for i in j))"; }
want_pids=$(printf '%s\n' "${ALL[@]}" | sort | tr '\n' ' ' | sed 's/ $//')

# exclusive NAME PID: the worker's image watches the listening socket with
# EPOLLEXCLUSIVE.
exclusive() {
	real_query "$WORK/$1-$2.json" "any(int(w['events'], 16) & 0x10000000 and w['target'].get('listening') for e in j['epoll'] for w in e['watches'])"
}

if ! real_dump start "$NPID" --tree; then
	# Everything below needs the tree dump: stop here.
	fail "start: epollcr dump --tree $NPID (the master and its workers) failed"
	finish
fi
[ "$(tree_pids start)" = "$want_pids" ] && pass "start: dump --tree wrote one image per process ($want_pids)" ||
	{ fail "start: dump --tree wrote images of pids '$(tree_pids start)', expected '$want_pids'"; cat "$WORK/start.dump"; }
for p in "${ALL[@]}"; do
	real_json_of start "$p" &&
		real_exact_check "start-$p" "$p" "$WORK/start-$p.json" "$WORK/start.img/epollcr-$p.img"
done
for w in "${WORKERS[@]}"; do
	[ "$(exclusive start "$w")" = True ] && pass "start: worker $w watches the listening socket with EPOLLEXCLUSIVE" ||
		fail "start: worker $w has no EPOLLEXCLUSIVE watch on the listening socket"
done

# Load: 8 keep-alive HTTP clients, a new connection every 20 requests,
# until the test has dumped 5 times (at most 1000000 requests, 45 s).
"$PY" "$REAL_LOAD" http "$PORT" --clients 8 --requests 1000000 --seconds 45 \
	--reconnect 20 --stop "$WORK/stop" --body-file "$N/html/index.html" \
	>"$WORK/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
sleep 0.3
loaded=0
for ((i = 1; i <= 5; i++)); do
	real_alive "$LPID" || break
	real_dump "load$i" "$NPID" --tree || { fail "load$i: dump --tree"; continue; }
	real_alive "$LPID" || { echo "load$i: the load ended during the dump"; break; }
	loaded=$((loaded + 1))
	[ "$(tree_pids "load$i")" = "$want_pids" ] ||
		{ fail "load$i: images of pids '$(tree_pids "load$i")', expected '$want_pids'"; cat "$WORK/load$i.dump"; }
	for p in "${ALL[@]}"; do
		real_loaded_check "load$i-$p" "$p" "$WORK/load$i.json"
	done
	sleep 0.2
done
touch "$WORK/stop"
wait "$LPID"
lstatus=$?
[ $loaded = 5 ] && pass "5 tree dumps taken under load" || fail "only $loaded tree dumps taken under load"
[ $LOAD_CONNS -gt 0 ] && [ $LOAD_ET_CONNS = $LOAD_CONNS ] &&
	pass "under load the workers' images held $LOAD_CONNS client connection watches, all EPOLLET" ||
	fail "under load: $LOAD_CONNS client connection watches, $LOAD_ET_CONNS of them EPOLLET (expected > 0, all)"

cat "$WORK/load.out"
[ $lstatus = 0 ] && pass "every answer was 200 with index.html" || fail "the load saw errors"
n=$(sed -n 's/^http: \([0-9]*\) requests.*/\1/p' "$WORK/load.out")
logged=$(grep -c ' 200 ' "$N/access.log")
[ -n "$n" ] && [ "$logged" = "$n" ] && pass "nginx logged $logged answers 200, as the clients counted" ||
	fail "nginx logged '$logged' answers 200, the clients counted '$n'"

# Quiet: every image exact; show and verify take the directory.
for w in "${WORKERS[@]}"; do
	real_wait_quiet "$w" || fail "worker $w did not become quiet"
done
real_dump quiet "$NPID" --tree || fail "quiet: dump --tree"
[ "$(tree_pids quiet)" = "$want_pids" ] || fail "quiet: images of pids '$(tree_pids quiet)', expected '$want_pids'"
for p in "${ALL[@]}"; do
	real_json_of quiet "$p" &&
		real_exact_check "quiet-$p" "$p" "$WORK/quiet-$p.json" "$WORK/quiet.img/epollcr-$p.img"
done
if out=$("$CLI" show "$WORK/quiet.img" 2>&1); then
	pass "epollcr show DIR: $(grep -c '^== ' <<<"$out") images"
else
	fail "epollcr show DIR:"; echo "$out"
fi
if out=$("$CLI" verify "$WORK/quiet.img" 2>&1); then
	pass "epollcr verify DIR: $(tr '\n' ' ' <<<"$out")"
else
	fail "epollcr verify DIR:"; echo "$out"
fi

stop "$NPID"
for w in "${WORKERS[@]}"; do
	for ((i = 0; i < 50; i++)); do real_alive "$w" || break; sleep 0.1; done
	real_alive "$w" && fail "worker $w still runs after the master stopped"
done
grep -E '\[(alert|crit|emerg)\]' "$N/error.log" && fail "nginx logged alerts"
real_no_shim_log nginx "$WORK/nginx.out" "$N/error.log"

# Restore each image in a fresh process, one after another (the workers'
# images hold the same listening address).  --missing=skip for the
# workers: each watches its end of the channel socketpair whose other end
# is in the master, another process: no restore of one image can rebuild
# that connection.
real_restore_check "restore-master" "$WORK/quiet.img/epollcr-$NPID.img" "$WORK/quiet-$NPID.json"
for w in "${WORKERS[@]}"; do
	real_restore_check "restore-$w" "$WORK/quiet.img/epollcr-$w.img" "$WORK/quiet-$w.json" --missing=skip
done
echo "dump times (tree of 3 processes): $(real_dump_stats)"
finish
