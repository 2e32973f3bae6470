#!/usr/bin/env bash
# lighttpd (Debian's lighttpd) under the shim, its linux-sysepoll event
# handler, on 127.0.0.1, switching to nobody when started as root: dumped 5
# times under an HTTP load (every status and body checked; each image's
# stable watches against the kernel); then the shape of issue 12.3: clients
# that send a request and reset their connections (SO_LINGER 0,
# real_reset_load.py) beside checked HTTP clients, dumped up to 30 times
# until 3 images hold sockets whose connection ended (at least one such
# image is required: how many dumps catch lighttpd before it reads the
# resets depends on the machine's load), each such socket flagged "ended"
# with one unrestorable diagnostic; then quiet (exact, show, verify).
# lighttpd stopped, each image with ended sockets restores with
# --missing=skip and the quiet one without (in a fresh process, as nobody
# when root), checked (before issue 12.3 each ended socket was a plain
# socket bound at the listener's address: every restore failed with
# EADDRINUSE); `restore --exec` hands the listener and the set to a
# command, which finds them open and not close-on-exec.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

PATH=$PATH:/usr/sbin	# where Debian puts lighttpd
real_need lighttpd lighttpd
PORT=$(real_free_port)
L=$WORK/lighttpd
mkdir -p "$L/html" "$L/log"
echo "epollcr lighttpd test $PORT $RANDOM" >"$L/html/index.html"
chmod 755 "$L" "$L/html"
chmod 644 "$L/html/index.html"
chmod 777 "$L/log"	# written after the switch to nobody
user=()
[ "$(id -u)" = 0 ] && user=('server.username = "nobody"' 'server.groupname = "nogroup"')
{
	echo "server.document-root = \"$L/html\""
	echo 'server.bind = "127.0.0.1"'
	echo "server.port = $PORT"
	echo "server.errorlog = \"$L/log/error.log\""
	echo 'server.event-handler = "linux-sysepoll"'
	echo 'index-file.names = ( "index.html" )'
	# Every path the load asks for (/r?c=..&i=..) is index.html.
	echo 'server.modules += ( "mod_rewrite" )'
	echo 'url.rewrite-once = ( ".*" => "/index.html" )'
	printf '%s\n' "${user[@]}"
} >"$L/lighttpd.conf"
# -D: foreground, no daemon.
LD_PRELOAD=$PRELOAD lighttpd -D -f "$L/lighttpd.conf" >"$WORK/lighttpd.out" 2>&1 &
LPPID=$!
PIDS+=("$LPPID")
# lighttpd listens (and logs "server started") before it adds the
# listener to its epoll set: wait for a watch in its fdinfo (at most 20 s).
watching() { grep -qs '^tfd:' /proc/"$LPPID"/fdinfo/*; }
real_wait_listen "$PORT" ||
	{ fail "lighttpd did not start"; cat "$WORK/lighttpd.out" "$L/log/error.log"; finish; }
for ((i = 0; i < 400; i++)); do watching && break; sleep 0.05; done
watching || { fail "lighttpd watches nothing after 20 s"; cat "$L/log/error.log"; finish; }
echo "lighttpd pid $LPPID on 127.0.0.1:$PORT, uid $(awk '/^Uid:/ { print $2 }' "/proc/$LPPID/status")"

real_dump start "$LPPID" && real_exact_check start "$LPPID" "$WORK/start.json" "$WORK/start.img" ||
	fail "dump of the idle lighttpd"

# Load: 8 keep-alive clients, a new connection every 20 requests, until
# the test has dumped 5 times (at most 1000000 requests, 45 s).
"$PY" "$REAL_LOAD" http "$PORT" --clients 8 --requests 1000000 --seconds 45 \
	--reconnect 20 --stop "$WORK/stop" --body-file "$L/html/index.html" \
	>"$WORK/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
real_dumps_under_load "$LPPID" "$LPID"
cat "$WORK/load.out"
[ "$LOAD_STATUS" = 0 ] && pass "every answer was 200 with index.html" || fail "the load saw errors"

# Resetting clients beside 4 checked HTTP clients (both at most 90 s).
"$PY" "$REAL_LOAD" http "$PORT" --clients 4 --requests 1000000 --seconds 90 \
	--reconnect 20 --stop "$WORK/stop2" --body-file "$L/html/index.html" \
	>"$WORK/load2.out" 2>&1 &
HPID=$!
"$PY" "$TOP/test/integration/real_reset_load.py" "$PORT" --seconds 90 \
	--stop "$WORK/stop2" >"$WORK/reset.out" 2>&1 &
RPID=$!
PIDS+=("$HPID" "$RPID")
sleep 0.3
ENDED_IMAGES=()
ended_total=0
for ((i = 1; i <= 30 && ${#ENDED_IMAGES[@]} < 3; i++)); do
	real_alive "$RPID" || break
	real_dump "reset$i" "$LPPID" || { fail "reset$i: dump"; continue; }
	real_loaded_check "reset$i" "$LPPID" "$WORK/reset$i.json"
	r=$(real_query "$WORK/reset$i.json" "(sum(1 for e in j['epoll'] for w in e['watches'] if w['target'].get('ended')), len(set(d['tfd'] for d in j['diagnostics'] if d['code'] == 'unrestorable' and 'connection ended' in d['message'])))")
	read -r n diags <<<"${r//[(),]/ }"
	if [ "$n" -gt 0 ]; then
		ENDED_IMAGES+=("reset$i")
		ended_total=$((ended_total + n))
		[ "$diags" = "$n" ] && pass "reset$i: $n ended sockets, one unrestorable diagnostic each" ||
			fail "reset$i: $n ended sockets, $diags with a diagnostic"
	fi
done
touch "$WORK/stop2"
wait "$HPID"; hstatus=$?
wait "$RPID"; rstatus=$?
cat "$WORK/load2.out" "$WORK/reset.out"
[ $hstatus = 0 ] && pass "every HTTP answer beside the resets was right" || fail "the HTTP load beside the resets saw errors"
[ $rstatus = 0 ] && pass "the resetting clients ran" || fail "the resetting clients failed"
[ ${#ENDED_IMAGES[@]} -gt 0 ] &&
	pass "${#ENDED_IMAGES[@]} of $((i - 1)) images held ended sockets, $ended_total in all" ||
	fail "none of $((i - 1)) images held a socket whose connection ended"

real_quiet_check quiet "$LPPID"
if out=$("$CLI" show "$WORK/quiet.img" 2>&1); then
	pass "epollcr show: $(grep -c 'tfd ' <<<"$out") watch lines"
else
	fail "epollcr show:"; echo "$out"
fi

stop "$LPPID"
real_alive "$LPPID" && fail "lighttpd did not stop"
grep -E '\(server\.c\.[0-9]+\) (WARNING|ERROR)' "$L/log/error.log" && fail "lighttpd logged errors"
real_no_shim_log lighttpd "$WORK/lighttpd.out" "$L/log/error.log"
for name in "${ENDED_IMAGES[@]}"; do
	real_restore_check "$name" "$WORK/$name.img" "$WORK/$name.json" --missing=skip
done
real_restore_check restore "$WORK/quiet.img" "$WORK/quiet.json"

# --exec: the command holds the listener and the set, not close-on-exec
# (lighttpd creates both close-on-exec), and the variable names them.
lst=$(real_query "$WORK/quiet.json" "[f for e in j['epoll'] for w in e['watches'] if w['target'].get('listening') for f in w['target']['fds']][0]")
ep=$(real_query "$WORK/quiet.json" "j['epoll'][0]['fds'][0]")
if "$CLI" restore --exec "$WORK/quiet.img" -- "$PY" "$TOP/test/integration/restore_inspect.py" \
	>"$WORK/exec.out" 2>"$WORK/exec.err"; then
	grep -q "^fd $lst socket:\[.* cloexec=0$" "$WORK/exec.out" &&
		grep -q "^fd $ep anon_inode:\[eventpoll\] cloexec=0$" "$WORK/exec.out" &&
		grep -q "^watch $ep $lst " "$WORK/exec.out" &&
		grep -q "^env EPOLLCR_RESTORED_FDS=.*$lst:socket" "$WORK/exec.out" &&
		pass "--exec: the command holds the listener (fd $lst) in the set (fd $ep): $(grep '^env' "$WORK/exec.out")" ||
		{ fail "--exec: the command was not given the listener and the set:"; cat "$WORK/exec.out"; }
else
	fail "restore --exec: $(cat "$WORK/exec.err")"
fi
echo "dump times: $(real_dump_stats)"
finish
