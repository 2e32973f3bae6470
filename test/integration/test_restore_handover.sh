#!/usr/bin/env bash
# What `epollcr restore` hands over and leaves behind, on the shapes real
# programs showed (issue 12 items 5, 6, 7, 10; issue 11 items 2b, 6), with
# restore_prog.py (Python: every fd close-on-exec, as most programs make
# them) as the dumped program and restore_inspect.py as the exec'd command:
#   --exec   option parsing after --exec and around `--`; --exec --hold
#            refused; the command holds every restored fd, not close-on-exec
#            (its own /proc/self/fdinfo), the epoll set's watches with
#            them; EPOLLCR_RESTORED_FDS lists exactly those fds as FD:KIND
#            (not a skipped target's number the caller holds)
#   unix     the socket file's mode comes back; the file is removed when
#            the restore ends (two restores in a row work), when it fails
#            after binding, but not when another file took the path; a
#            server that binds a temporary name and renames it (haproxy)
#            is restored at the new name; one reachable at no path is
#            diagnosed at dump time
#   reuse    a SO_REUSEPORT listener is not restored beside the live
#            program's unless --force-bind
#   nofile   the soft RLIMIT_NOFILE is raised when the hard limit allows;
#            the message names the number needed when it does not
# Every wait is bounded (lib.sh); every program is stopped at the end.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG=$TOP/test/integration/restore_prog.py
INSPECT=$TOP/test/integration/restore_inspect.py
PY=$(python3 -c 'import sys; print(sys.executable)')
cd "$WORK" || exit 1

# fd_of NAME WHAT: the fd restore_prog.py printed for WHAT in NAME.out.
fd_of() { sed -n "s/^fd $2 //p" "$WORK/$1.out"; }

# restore_bg NAME ARGS...: `epollcr restore --hold ARGS` in the background,
# until it prints ready (sets HOLD_PID; non-zero when it did not).
restore_bg() {
	local name=$1; shift
	"$CLI" restore --hold "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	HOLD_PID=$!
	PIDS+=("$HOLD_PID")
	wait_for "$WORK/$name.out" ready 20 || { cat "$WORK/$name.err"; return 1; }
}

# ---- --exec ----
mkdir -p "$WORK/u"
start prog "$PY" "$PROG" --tcp --conn --unix "$WORK/u/srv.sock" --mode 600 \
	--high 300 || { fail "restore_prog.py did not start"; finish; }
PROG_PID=$STARTED_PID
EP=$(fd_of prog epoll) LST=$(fd_of prog listener) ACC=$(fd_of prog accepted)
UX=$(fd_of prog unix)
"$CLI" dump -o "$WORK/a.img" "$PROG_PID" >/dev/null || fail "dump of restore_prog.py"
stop "$PROG_PID"
[ "$(stat -c %a "$WORK/u/srv.sock")" = 600 ] || fail "the program's socket file is not 0600"
rm -f "$WORK/u/srv.sock"	# the program is gone; its file would block the restore

want="$EP:epoll,$LST:socket,$UX:socket,300:eventfd"
want=$(tr ',' '\n' <<<"$want" | sort -t: -k1,1n | paste -sd,)
if "$CLI" restore --exec --missing=skip "$WORK/a.img" "$PY" "$INSPECT" \
	>"$WORK/x1.out" 2>"$WORK/x1.err"; then
	pass "--exec --missing=skip IMAGE CMD runs CMD"
else
	fail "--exec --missing=skip IMAGE CMD: $(cat "$WORK/x1.err")"
fi
rm -f "$WORK/u/srv.sock"	# handed over with --exec: the command's
# The caller holds the number of the skipped accepted socket: not the
# restore's, so neither listed nor touched.
eval "exec $ACC>/dev/null"
if "$CLI" restore --missing=skip --exec "$WORK/a.img" -- "$PY" "$INSPECT" \
	>"$WORK/x2.out" 2>"$WORK/x2.err"; then
	pass "--exec IMAGE -- CMD runs CMD"
else
	fail "--exec IMAGE -- CMD: $(cat "$WORK/x2.err")"
fi
eval "exec $ACC>&-"
got=$(sed -n 's/^env EPOLLCR_RESTORED_FDS=//p' "$WORK/x2.out")
[ "$got" = "$want" ] && pass "EPOLLCR_RESTORED_FDS=$got" ||
	fail "EPOLLCR_RESTORED_FDS='$got', expected '$want'"
for e in ${want//,/ }; do
	fd=${e%%:*}
	line=$(grep "^fd $fd " "$WORK/x2.out")
	case $e in
	*:epoll) pat="anon_inode:\[eventpoll\]" ;;
	*:eventfd) pat="anon_inode:\[eventfd\]" ;;
	*:socket) pat="socket:\[" ;;
	esac
	if [[ $line =~ ^fd\ $fd\ $pat.*\ cloexec=0$ ]]; then
		pass "the command holds fd $fd ($e), not close-on-exec"
	else
		fail "fd $fd ($e) in the command: '${line:-not open}'"
	fi
done
line=$(grep "^fd $ACC " "$WORK/x2.out")
[ "$line" = "fd $ACC /dev/null cloexec=0" ] &&
	pass "the caller's fd $ACC (the skipped socket's number) is left as it was" ||
	fail "the caller's fd $ACC: '$line'"
n=$(grep -c "^watch $EP " "$WORK/x2.out")
[ "$n" = 3 ] && pass "the command's epoll fd $EP has its 3 restored watches" ||
	fail "the command's epoll fd $EP has $n watches, expected 3"
[ -S "$WORK/u/srv.sock" ] && pass "--exec leaves the socket file to the command" ||
	fail "--exec removed the socket file"
rm -f "$WORK/u/srv.sock"
if "$CLI" restore --exec --hold "$WORK/a.img" true 2>"$WORK/x3.err"; then
	fail "--exec --hold was accepted"
else
	st=$?
	[ $st = 2 ] && grep -q -- "--hold and --exec exclude each other" "$WORK/x3.err" &&
		pass "--exec --hold refused (status 2)" ||
		fail "--exec --hold: status $st, $(cat "$WORK/x3.err")"
fi
[ ! -e "$WORK/u/srv.sock" ] || fail "a refused --exec --hold left a socket file"

# ---- unix socket files ----
if restore_bg hold1 --missing=skip "$WORK/a.img"; then
	mode=$(stat -c %a "$WORK/u/srv.sock" 2>&1)
	[ "$mode" = 600 ] && pass "the restored socket file has the program's mode 0600" ||
		fail "the restored socket file's mode is '$mode', expected 600"
	stop "$HOLD_PID"
	[ ! -e "$WORK/u/srv.sock" ] && pass "the end of --hold removes the socket file" ||
		fail "the socket file stays after --hold ended"
else
	fail "restore --hold of the unix socket image"
fi
ok=0
for i in 1 2; do
	"$CLI" restore --missing=skip "$WORK/a.img" 2>"$WORK/twice$i.err" && ok=$((ok + 1))
done
[ $ok = 2 ] && [ ! -e "$WORK/u/srv.sock" ] && pass "two restores in a row, no file left" ||
	fail "two restores in a row: $ok succeeded; $(cat "$WORK/twice2.err")"
if restore_bg hold2 --missing=skip "$WORK/a.img"; then
	rm -f "$WORK/u/srv.sock"
	echo other >"$WORK/u/srv.sock"
	stop "$HOLD_PID"
	[ "$(cat "$WORK/u/srv.sock" 2>&1)" = other ] &&
		pass "a file that replaced the socket file stays" ||
		fail "the file that replaced the socket file was removed"
	rm -f "$WORK/u/srv.sock"
else
	fail "restore --hold (replaced file)"
fi

# Renamed after bind (haproxy binds NAME.PID.tmp, then renames it).
start ren "$PY" "$PROG" --unix "$WORK/u/ren.sock.$$.tmp" --rename "$WORK/u/ren.sock" \
	--mode 640 || fail "restore_prog.py --rename did not start"
"$CLI" dump -o "$WORK/ren.img" "$STARTED_PID" >/dev/null || fail "dump (rename)"
stop "$STARTED_PID"
rm -f "$WORK/u/ren.sock"
"$CLI" show "$WORK/ren.img" >"$WORK/ren.show" 2>&1
grep -q "bound as $WORK/u/ren.sock.$$.tmp was renamed to $WORK/u/ren.sock" "$WORK/ren.show" &&
	pass "dump: the rename is diagnosed" || fail "dump: no diagnostic for the rename"
if "$CLI" restore --exec "$WORK/ren.img" stat -c '%F %a %n' "$WORK/u/ren.sock" \
	>"$WORK/ren.out" 2>"$WORK/ren.err"; then
	[ "$(cat "$WORK/ren.out")" = "socket 640 $WORK/u/ren.sock" ] &&
		pass "restored at the name it was renamed to, mode 0640" ||
		fail "after the rename: $(cat "$WORK/ren.out")"
else
	fail "restore of the renamed socket: $(cat "$WORK/ren.err")"
fi
[ ! -e "$WORK/u/ren.sock.$$.tmp" ] || fail "the dead temporary name was bound"
rm -f "$WORK/u/ren.sock"
start gone "$PY" "$PROG" --unix "$WORK/u/gone.sock" --unlink || fail "restore_prog.py --unlink did not start"
"$CLI" dump -o "$WORK/gone.img" "$STARTED_PID" >/dev/null || fail "dump (unlinked)"
stop "$STARTED_PID"
"$CLI" show "$WORK/gone.img" 2>&1 | grep -q "warning.*bound as $WORK/u/gone.sock can be reached at no path" &&
	pass "dump: a socket reachable at no path is diagnosed" ||
	fail "dump: no warning for the unlinked socket file"

# ---- beside the live program ----
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start live "$PY" "$PROG" --unix "$WORK/u/live.sock" --reuseport "$PORT" ||
	{ fail "restore_prog.py --reuseport did not start"; finish; }
LIVE_PID=$STARTED_PID
"$CLI" dump -o "$WORK/live.img" "$LIVE_PID" >/dev/null || fail "dump (reuseport)"
rm -f "$WORK/u/live.sock"	# so that the restore gets as far as the listener
if "$CLI" restore "$WORK/live.img" 2>"$WORK/live1.err"; then
	fail "restored a SO_REUSEPORT listener beside the live program"
else
	grep -q "127.0.0.1:$PORT is in use by another process.*SO_REUSEPORT" "$WORK/live1.err" &&
		pass "refused beside the live listener: $(cat "$WORK/live1.err")" ||
		fail "refused, but: $(cat "$WORK/live1.err")"
fi
[ ! -e "$WORK/u/live.sock" ] && pass "the failed restore removed the socket file it had bound" ||
	fail "the failed restore left $WORK/u/live.sock"
hex=$(printf '0100007F:%04X 00000000:0000 0A' "$PORT")
if restore_bg force --force-bind "$WORK/live.img"; then
	n=$(grep -c "$hex" /proc/net/tcp)
	[ "$n" = 2 ] && pass "--force-bind: two listeners on 127.0.0.1:$PORT" ||
		fail "--force-bind: $n listeners on 127.0.0.1:$PORT, expected 2"
	stop "$HOLD_PID"
else
	fail "restore --force-bind"
fi
stop "$LIVE_PID"

# ---- RLIMIT_NOFILE ----
start high prlimit --nofile=4096:4096 "$PY" "$PROG" --high 2000 || fail "restore_prog.py --high did not start"
"$CLI" dump -o "$WORK/high.img" "$STARTED_PID" >/dev/null || fail "dump (fd 2000)"
stop "$STARTED_PID"
if out=$(prlimit --nofile=1024:4096 "$CLI" restore "$WORK/high.img" 2>&1); then
	pass "soft limit 1024, hard 4096: fd 2000 restored (soft limit raised)"
else
	fail "soft limit 1024, hard 4096: $out"
fi
if out=$(prlimit --nofile=1024:1500 "$CLI" restore "$WORK/high.img" 2>&1); then
	fail "hard limit 1500: fd 2000 restored?"
else
	grep -q "at least 2001" <<<"$out" && pass "hard limit 1500: $out" ||
		fail "hard limit 1500, the message does not name 2001: $out"
fi
finish
