#!/usr/bin/env bash
# make demo: the main job end to end, on the example epoll server.
#   1. start build/examples/epoll-server under `epollcr run`
#   2. put a bounded echo load on it
#   3. dump its epoll state, show the image, verify it against the live process
#   4. stop the server
#   5. restore the image in a fresh, unprivileged-capable process and verify
#      that process against the image
set -eu
BUILD=${1:-build}
cd "$(dirname "$0")/.."
CLI=$BUILD/epollcr
SERVER=$BUILD/examples/epoll-server
work=$(mktemp -d)
server_pid= restore_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
	[ -n "$restore_pid" ] && kill "$restore_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
# Bold headings on a terminal only, and not when NO_COLOR is set
# (no-color.org): a pipe or a log gets plain text.
bold= plain=
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	bold=$'\033[1m' plain=$'\033[0m'
fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1. Start an epoll server under the shim"
printf '$ %s run -- %s 0 &\n' "$CLI" "$SERVER"
"$CLI" run -- "$SERVER" 0 >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
	grep -q listening "$work/server.out" 2>/dev/null && break
	sleep 0.05
done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$work/server.out")
[ -n "$port" ] || { cat "$work/server.out"; echo "server did not start"; exit 1; }
echo "server pid $server_pid, port $port"

step "2. Load it: 200 echo round trips on 127.0.0.1:$port"
run "$SERVER" --client "$port" 200

step "3. Dump its epoll state"
image=$work/server.img
run "$CLI" dump -o "$image" "$server_pid"

step "4. Show the image"
run "$CLI" show "$image"

step "5. Verify the image against the live server"
run "$CLI" verify "$image"

step "6. Stop the server"
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
cat "$work/server.out"

step "7. Restore the image in a fresh process (held open for inspection)"
printf '$ %s restore --hold %s &\n' "$CLI" "$image"
"$CLI" restore --hold "$image" >"$work/restore.out" 2>"$work/restore.err" &
restore_pid=$!
for _ in $(seq 100); do
	grep -q ready "$work/restore.out" 2>/dev/null && break
	kill -0 "$restore_pid" 2>/dev/null || break
	sleep 0.05
done
cat "$work/restore.err"
grep -q ready "$work/restore.out" || { echo "restore failed"; exit 1; }

step "8. Verify the restored process against the image"
run "$CLI" verify --pid "$restore_pid" "$image"
echo
echo "The kernel's view of the restored process (/proc/$restore_pid/fdinfo):"
for fd in /proc/$restore_pid/fd/*; do
	if [ "$(readlink "$fd")" = "anon_inode:[eventpoll]" ]; then
		n=${fd##*/}
		echo "-- epoll fd $n"
		grep '^tfd' "/proc/$restore_pid/fdinfo/$n" || echo '(no watches)'
	fi
done
kill -TERM "$restore_pid"; wait "$restore_pid" || true; restore_pid=
step "Done: dumped, shown, verified, restored and verified again"
