#!/usr/bin/env bash
# Kernel-only dumps of a Go net/http server (issue 13): Go's runtime makes
# raw epoll syscalls, so the shim's recorder never starts in it.  Built
# with Debian's golang-go twice, static (CGO_ENABLED=0: the shim cannot
# load) and with cgo (dynamic: the shim loads, its recorder never starts),
# both started with `epollcr run`, served one request, dumped, checked
# against /proc/PID/fdinfo and `epollcr verify`, then stopped and restored
# as nobody and verified again.  Standard library only, no network but
# 127.0.0.1; the Go cache lives in the test's temporary directory.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$TOP/test/integration/real_lib.sh"
real_need go golang-go

export GOCACHE=$WORK/gocache GOPATH=$WORK/gopath GOFLAGS= GOPROXY=off GO111MODULE=off
cp "$TOP/test/integration/real_go_server.go" "$WORK/server.go"
for mode in static cgo; do
	cgo=0
	[ $mode = cgo ] && cgo=1
	if ! (cd "$WORK" && CGO_ENABLED=$cgo nice go build -o "go-$mode" server.go) >"$WORK/build-$mode.log" 2>&1; then
		fail "$mode: go build failed:"; cat "$WORK/build-$mode.log"; continue
	fi
	chmod 755 "$WORK/go-$mode"
	"$CLI" run -- "$WORK/go-$mode" >"$WORK/$mode.out" 2>"$WORK/$mode.err" &
	pid=$!
	PIDS+=("$pid")
	wait_for "$WORK/$mode.out" ready 20 || { fail "$mode: not ready"; continue; }
	port=$(awk '{ print $2 }' "$WORK/$mode.out")
	if [ $mode = cgo ]; then
		grep -q libepollcr "/proc/$pid/maps" && pass "cgo: the shim is loaded" || fail "cgo: the shim is not loaded"
	else
		grep -q libepollcr "/proc/$pid/maps" && fail "static: the shim is loaded?" || pass "static: the shim could not load"
	fi
	body=$("$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5).read().decode().strip())' "$port")
	[ "$body" = hello ] && pass "$mode: served a request" || fail "$mode: request: '$body'"
	# Until the server has dropped that connection (bounded, 10 s).
	for ((i = 0; i < 200; i++)); do
		n=$(grep -c '^tfd:' /proc/"$pid"/fdinfo/* 2>/dev/null | awk -F: '{ s += $2 } END { print s }')
		[ "$n" = 2 ] && break
		sleep 0.05
	done
	if ! "$CLI" dump -o "$WORK/$mode.img" "$pid" >"$WORK/$mode.dump" 2>&1; then
		fail "$mode: dump:"; cat "$WORK/$mode.dump"; continue
	fi
	grep -q "note: pid $pid: " "$WORK/$mode.dump" && pass "$mode: $(grep note: "$WORK/$mode.dump")" ||
		fail "$mode: no note: $(cat "$WORK/$mode.dump")"
	"$CLI" show --json "$WORK/$mode.img" >"$WORK/$mode.json"
	[ "$(json_query "$WORK/$mode.json" 'j["kernel_only"] and not j["shadow_view"] and j["complete"]')" = True ] &&
		pass "$mode: kernel-only, complete" || fail "$mode: flags"
	[ "$(json_query "$WORK/$mode.json" 'any(w["target"]["kind"] == "socket" and w["target"]["listening"] and w["target"]["address"] == "127.0.0.1:'"$port"'" for s in j["epoll"] for w in s["watches"])')" = True ] &&
		pass "$mode: the listener 127.0.0.1:$port is watched" || fail "$mode: no listener in the image"
	if out=$(python3 "$TOP/test/integration/check_image.py" "$pid" "$WORK/$mode.json" 2>&1); then
		pass "$mode: image equals /proc/$pid/fdinfo: ${out##*$'\n'}"
	else
		fail "$mode: image differs from /proc/$pid/fdinfo:"; echo "$out"
	fi
	if out=$("$CLI" verify --pid "$pid" "$WORK/$mode.img" 2>&1); then
		pass "$mode: $out"
	else
		fail "$mode: verify:"; echo "$out"
	fi
	stop "$pid"
	real_restore_check "go-$mode" "$WORK/$mode.img" "$WORK/$mode.json"
done
finish
