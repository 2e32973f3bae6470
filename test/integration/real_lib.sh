# Helpers of the real-program tests (test_real_*.sh); sourced after lib.sh.
# A real program runs under the shim on 127.0.0.1 with a port chosen here,
# is dumped repeatedly under load (checked with real_check.py stable), then
# quiet (checked exactly: check_image.py and `epollcr verify`), then stopped
# and its quiet image restored in a fresh process, checked again.
# The interpreter itself, resolved once: a python3 on PATH may be a
# wrapper script (pyenv) costing most of a second per start.
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -x "$PY" ] || PY=python3
REAL_PY=$TOP/test/integration/real_check.py
REAL_LOAD=$TOP/test/integration/real_load.py	# used by the tests
DUMP_MS=()	# duration of every dump, milliseconds
EXTRA_PIDS=()	# processes started indirectly (nginx workers): killed too
TREE_PIDS=()	# parents that respawn children (nginx master): killed first

real_cleanup() {
	local p kids=()
	# A parent that respawns would replace the children killed before it.
	for p in "${TREE_PIDS[@]:-}"; do
		[ -n "$p" ] || continue
		mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$p" 2>/dev/null)
		kill -KILL "$p" 2>/dev/null
	done
	for p in "${kids[@]:-}" "${EXTRA_PIDS[@]:-}"; do
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	cleanup
}
trap real_cleanup EXIT
# Killed (a runner's timeout): exit, so that the servers go too.
trap 'exit 143' TERM INT HUP

# real_need PROGRAM PACKAGE: fail the test (not skip) when PROGRAM is not
# installed, naming the Debian package that provides it.
real_need() {
	if ! command -v "$1" >/dev/null 2>&1; then
		fail "$1 is not installed: install the Debian package '$2' (tools/deps.sh all does it)"
		finish
	fi
}

# real_free_port: print a TCP port of 127.0.0.1 that nothing listens on.
real_free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# real_wait_listen PORT [SECONDS]: until something listens on
# 127.0.0.1:PORT (read from /proc/net/tcp: no connection is made).
real_wait_listen() {
	local hex i
	hex=$(printf '0100007F:%04X 00000000:0000 0A' "$1")
	for ((i = 0; i < ${2:-20} * 20; i++)); do
		grep -q "$hex" /proc/net/tcp && return 0
		sleep 0.05
	done
	echo "nothing listens on 127.0.0.1:$1 after ${2:-20} s"
	return 1
}

# real_alive PID: the process exists and is not a zombie.
real_alive() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# real_dump NAME PID [--tree]: dump PID into $WORK/NAME.img (a directory
# with --tree) and write `show --json` into $WORK/NAME.json; record the
# dump's duration in DUMP_MS.  Returns non-zero with the reason printed on
# any failure.
real_dump() {
	local name=$1 pid=$2 t0 t1 out=$WORK/$1.img
	shift 2
	[ "${1:-}" = --tree ] && rm -rf "$out"
	t0=$EPOCHREALTIME
	if ! timeout -k 2 20 "$CLI" dump "$@" --timeout 10 -o "$out" "$pid" \
		>"$WORK/$name.dump" 2>&1; then
		echo "dump of pid $pid failed:"; cat "$WORK/$name.dump"
		return 1
	fi
	t1=$EPOCHREALTIME
	# microseconds; the decimal separator of EPOCHREALTIME follows the locale
	t1=$(( ${t1//[.,]/} - ${t0//[.,]/} ))
	DUMP_MS+=("$((t1 / 1000)).$((t1 / 100 % 10))")
	if ! "$CLI" show --json "$out" >"$WORK/$name.json"; then
		echo "epollcr show --json $out failed"; return 1
	fi
}

# real_json_of DIRNAME PID: write the entry of `show --json DIR` (an array)
# for PID to $WORK/DIRNAME-PID.json.
real_json_of() {
	"$PY" -c '
import json, sys
for j in json.load(open(sys.argv[1])):
    if j["pid"] == int(sys.argv[2]):
        json.dump(j, open(sys.argv[3], "w"))
        sys.exit(0)
print("no image of pid %s in %s" % (sys.argv[2], sys.argv[1]))
sys.exit(1)' "$WORK/$1.json" "$2" "$WORK/$1-$2.json"
}

# real_loaded_check NAME PID JSON [--allow CODE]...: the under-load checks
# of an image already shown into JSON (see real_check.py stable); adds the
# image's watches on TCP connections to LOAD_CONNS (those with EPOLLET to
# LOAD_ET_CONNS).
LOAD_CONNS=0
LOAD_ET_CONNS=0
real_loaded_check() {
	local name=$1 pid=$2 json=$3 last
	shift 3
	if "$PY" "$REAL_PY" stable "$pid" "$json" "$@" >"$WORK/$name.stable"; then
		pass "$name: $(tail -n 1 "$WORK/$name.stable")"
	else
		fail "$name: image and kernel disagree on stable watches:"
		cat "$WORK/$name.stable"
	fi
	last=$(tail -n 1 "$WORK/$name.stable")
	if [[ $last =~ image\ has\ ([0-9]+)\ connection\ watches\ \(([0-9]+)\ EPOLLET\) ]]; then
		LOAD_CONNS=$((LOAD_CONNS + BASH_REMATCH[1]))
		LOAD_ET_CONNS=$((LOAD_ET_CONNS + BASH_REMATCH[2]))
	fi
}

# real_dumps_under_load PID LPID [WHAT]: while the load LPID (WHAT, "the
# load" by default) runs, dump PID 5 times, 0.2 s apart, each image checked
# by real_loaded_check; then stop the load ($WORK/stop), wait for it and
# set LOAD_STATUS to its exit status.  Passes when 5 dumps were taken under
# load and the images held client connections.
real_dumps_under_load() {
	local pid=$1 lpid=$2 what=${3:-the load} i loaded=0
	sleep 0.3
	for ((i = 1; i <= 5; i++)); do
		real_alive "$lpid" || break
		real_dump "load$i" "$pid" || { fail "load$i: dump"; continue; }
		real_alive "$lpid" || { echo "load$i: $what ended during the dump"; break; }
		loaded=$((loaded + 1))
		real_loaded_check "load$i" "$pid" "$WORK/load$i.json"
		sleep 0.2
	done
	touch "$WORK/stop"
	wait "$lpid"
	LOAD_STATUS=$?
	[ $loaded = 5 ] && pass "5 dumps taken while $what ran" ||
		fail "only $loaded dumps taken while $what ran"
	[ $LOAD_CONNS -gt 0 ] && pass "under load the images held $LOAD_CONNS client connection watches" ||
		fail "no client connection in any under-load image: the dumps did not see the load"
}

# real_query FILE EXPR: json_query of lib.sh with the resolved interpreter.
real_query() {
	"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# real_wait_quiet PID [SECONDS]: until no watch of PID is on a TCP
# connection (the clients are gone and the program has closed them).
real_wait_quiet() {
	local i n
	for ((i = 0; i < ${2:-10} * 10; i++)); do
		n=$("$PY" "$REAL_PY" conns "$1") || return 1
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
	echo "pid $1 still watches $n TCP connections after ${2:-10} s"
	return 1
}

# real_quiet_check NAME PID [--allow CODE]...: dump a quiet PID and check
# the image exactly: check_image.py (every epoll fd, watch, open_fd and
# kind against /proc/PID/fdinfo), `epollcr verify` exit 0, no disagreement
# diagnostic, no TCP connection.
real_quiet_check() {
	local name=$1 pid=$2
	shift 2
	real_wait_quiet "$pid" || { fail "$name: the program did not become quiet"; return 1; }
	real_dump "$name" "$pid" || { fail "$name: quiet dump"; return 1; }
	"$CLI" show "$WORK/$name.img" >"$WORK/$name.txt" ||
		fail "$name: epollcr show (text) failed"
	real_exact_check "$name" "$pid" "$WORK/$name.json" "$WORK/$name.img" "$@"
}

# real_exact_check NAME PID JSON IMAGE [--allow CODE]...: the quiet checks
# of an image already dumped and shown into JSON.
real_exact_check() {
	local name=$1 pid=$2 json=$3 img=$4 out
	shift 4
	if out=$("$PY" "$TOP/test/integration/check_image.py" "$pid" "$json" 2>&1); then
		pass "$name: quiet image equals /proc/$pid/fdinfo: ${out##*$'\n'}"
	else
		fail "$name: quiet image differs from /proc/$pid/fdinfo:"; echo "$out"
	fi
	if out=$("$CLI" verify --pid "$pid" "$img" 2>&1); then
		pass "$name: epollcr verify --pid $pid: $out"
	else
		fail "$name: epollcr verify --pid $pid exit $?:"; echo "$out"
	fi
	if out=$("$PY" "$REAL_PY" image "$json" "$@"); then
		pass "$name: ${out##*$'\n'}"
	else
		fail "$name: $out"
	fi
	if out=$("$PY" "$REAL_PY" noconn "$json"); then
		pass "$name: no TCP connection in the quiet image"
	else
		fail "$name: $out"
	fi
}

# real_wait_ready PID FILE: until FILE has a line "ready" (0), or PID has
# exited or 20 s have passed (1).
real_wait_ready() {
	local i
	for ((i = 0; i < 400; i++)); do
		grep -q '^ready' "$2" 2>/dev/null && return 0
		real_alive "$1" || break
		sleep 0.05
	done
	grep -q '^ready' "$2" 2>/dev/null
}

# real_restore_check NAME IMAGE JSON [--missing=skip]: restore IMAGE in a
# fresh process (as nobody when run as root: no privilege is needed) with
# `epollcr restore --hold`, then compare that process with the image:
# `epollcr verify --pid` and check_image.py.  With --missing=skip the
# watches the restore leaves out (connected sockets whose peer is not in
# the image) must be exactly the differences verify reports, and the rest
# must match.
real_restore_check() {
	local name=$1 img=$2 json=$3 rpid out status
	local cli=$WORK/epollcr-cli expect=$json drop=() skip=()
	[ -n "${4:-}" ] && skip=("$4")
	cp "$CLI" "$cli" && chmod 755 "$cli"
	cp "$img" "$WORK/$name.restore.img" && chmod 644 "$WORK/$name.restore.img"
	if [ "$(id -u)" = 0 ]; then
		command -v setpriv >/dev/null || { fail "setpriv (Debian package util-linux) is missing"; return 1; }
		drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	fi
	(cd "$WORK" && exec "${drop[@]}" "$cli" restore --hold "${skip[@]}" "$WORK/$name.restore.img") \
		>"$WORK/$name.restore.out" 2>&1 &
	rpid=$!
	PIDS+=("$rpid")
	if ! real_wait_ready "$rpid" "$WORK/$name.restore.out"; then
		fail "$name: restore${skip[*]:+ ${skip[*]}} did not get ready:"; cat "$WORK/$name.restore.out"
		stop "$rpid"; return 1
	fi
	echo "$name: restorer pid $rpid (uid $(awk '/^Uid:/ { print $2 }' "/proc/$rpid/status")): $(grep -v '^ready' "$WORK/$name.restore.out" | tr '\n' ' ')"
	out=$("$CLI" verify --pid "$rpid" "$img" 2>&1)
	status=$?
	if [ ${#skip[@]} = 0 ]; then
		if [ $status = 0 ]; then pass "$name: restored: epollcr verify --pid $rpid: $out"
		else fail "$name: restored: epollcr verify --pid $rpid exit $status:"; echo "$out"; fi
	else
		# The only differences allowed are the watches left out.
		expect=$WORK/$name.restore-expect.json
		"$PY" "$REAL_PY" skipped "$json" "$expect" >"$WORK/$name.skipped"
		if [ $status = 1 ] && real_only_skipped "$WORK/$name.skipped" "$out"; then
			pass "$name: restored with --missing=skip: verify reports exactly the watch(es) left out: $(tr '\n' ' ' <"$WORK/$name.skipped")"
		else
			fail "$name: restored with --missing=skip: verify exit $status; expected exactly the left-out watches $(tr '\n' ' ' <"$WORK/$name.skipped") as differences:"
			echo "$out"
		fi
	fi
	if out=$("$PY" "$TOP/test/integration/check_image.py" "$rpid" "$expect" 2>&1); then
		pass "$name: restored process equals the image: ${out##*$'\n'}"
	else
		fail "$name: restored process differs from the image:"; echo "$out"
	fi
	stop "$rpid"
}

# real_only_skipped LIST VERIFY_OUTPUT: every "epfd E tfd T" of LIST is
# reported missing by verify, and verify reports nothing else.
real_only_skipped() {
	local e t n=0 line
	while read -r _ e _ t; do
		grep -q "^epfd $e tfd $t: watch missing" <<<"$2" || return 1
		n=$((n + 1))
	done <"$1"
	[ "$n" -gt 0 ] || return 1
	while read -r line; do
		case $line in
		*": watch missing"*) ;;
		*" difference from pid "* | *" differences from pid "*) ;;
		"epollcr: verify: note: "*) ;; # why the kernel's view was read
		*) echo "unexpected: $line"; return 1 ;;
		esac
	done <<<"$2"
	[ "$(grep -c ': watch missing' <<<"$2")" = "$n" ]
}

# real_no_shim_log NAME FILE...: the program's output has no line from the
# shim (its log lines start with "epollcr[PID]").
real_no_shim_log() {
	local name=$1
	shift
	if grep -h 'epollcr\[[0-9]*\]' "$@" >"$WORK/$name.shimlog" 2>/dev/null; then
		fail "$name: the shim logged:"; head -n 20 "$WORK/$name.shimlog"
	else
		pass "$name: no message from the shim in the program's output"
	fi
}

# real_dump_stats: print the count, median and maximum of DUMP_MS.
real_dump_stats() {
	printf '%s\n' "${DUMP_MS[@]}" | sort -n | awk '
		{ v[NR] = $1 }
		END { if (NR) printf "%d dumps, median %.1f ms, max %.1f ms\n", NR, v[int((NR + 1) / 2)], v[NR] }'
}
