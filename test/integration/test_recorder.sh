#!/usr/bin/env bash
# The recorder on real situations: each scenario program runs under the
# shim, is dumped with `epollcr dump`, and the image is compared with the
# kernel's /proc/PID/fdinfo read by this test (check_image.py), then with
# `epollcr verify`.  Specific scenarios check their diagnostics.
# MANY_WATCHES (10,000) watches in the large scenario and HAMMER_DUMPS (40)
# dumps under churn; long_recorder.sh (make check-long) runs 100,000 and
# 200.
. "$(dirname "$0")/lib.sh"

scenario() { # NAME ARGS...: start, dump, compare; leaves SPID running
	local name=$1; shift
	start "$name" "$PROGS/rec_scenario" "$@" || { fail "$name: did not start"; return 1; }
	SPID=$STARTED_PID
	if dump_check "$name" "$SPID"; then pass "$name: image equals the kernel's view"
	else fail "$name: image differs from the kernel's view"; fi
	# verify of another process resolves every watch with kcmp, which the
	# kernel answers in time linear in the set's size: not for 100,000.
	[ "$name" = many ] && return 0
	if "$CLI" verify "$WORK/$name.img" >"$WORK/$name.verify"; then pass "$name: epollcr verify"
	else fail "$name: epollcr verify"; cat "$WORK/$name.verify"; fi
}

diag_has() { # NAME SUBSTRING
	if json_query "$WORK/$1.json" "any('$2' in d['message'] for d in j['diagnostics'])" | grep -q True; then
		pass "$1: diagnostic mentions '$2'"
	else
		fail "$1: no diagnostic mentions '$2'"; json_query "$WORK/$1.json" "j['diagnostics']"
	fi
}

for s in nested dupclose dup2over oneshot et exclusive raw mixed forked rawset; do
	scenario "$s" "$s"
	case $s in
	nested)
		[ "$(json_query "$WORK/$s.json" "len(j['epoll'])")" = 5 ] && pass "nested: 5 sets" || fail "nested: not 5 sets" ;;
	dupclose)
		diag_has "$s" "no longer holds it" ;;
	dup2over)
		diag_has "$s" "no longer holds it" ;;
	oneshot)
		json_query "$WORK/$s.json" "[w['events'] for e in j['epoll'] for w in e['watches']]" | grep -q "0x40000000" &&
			pass "oneshot: disarmed watch shows 0x40000000" || fail "oneshot: no disarmed watch" ;;
	raw)
		diag_has "$s" "never saw it registered" ;;
	rawset)
		[ "$(json_query "$WORK/$s.json" "j['shadow_view'] and not j['kernel_only']")" = True ] &&
			pass "rawset: dumped through the shim (its first epoll_ctl started the recorder)" ||
			fail "rawset: dumped from outside, kernel-only: no epoll_ctl started the recorder" ;;
	exclusive)
		json_query "$WORK/$s.json" "[w['events'] for e in j['epoll'] for w in e['watches']]" | grep -q "0x10000019" &&
			pass "exclusive: EPOLLEXCLUSIVE kept" || fail "exclusive: EPOLLEXCLUSIVE lost" ;;
	esac
	# the shim recorded where each watch was registered
	if [ "$s" != raw ] && json_query "$WORK/$s.json" "all(w['backtrace'] for e in j['epoll'] for w in e['watches'])" | grep -q True; then
		pass "$s: every watch has its registration backtrace"
	elif [ "$s" != raw ]; then
		fail "$s: a watch lacks its backtrace"
	fi
	stop "$SPID"
done

# Many watches (files watched in several sets when RLIMIT_NOFILE is low).
n=${MANY_WATCHES:-10000}
scenario many many "$n"
[ "$(json_query "$WORK/many.json" "sum(len(e['watches']) for e in j['epoll'])")" = "$n" ] &&
	pass "many: $n watches in the image" || fail "many: not $n watches"
stop "$SPID"

# Repeated dumps while threads hammer epoll_ctl, dup, close and malloc: every
# image must be valid and a consistent cut (no watch the shim and the kernel
# disagree on), and the process must survive.
start hammer "$PROGS/rec_scenario" hammer 4 || fail "hammer: did not start"
HPID=$STARTED_PID
bad=0
ndumps=${HAMMER_DUMPS:-40}
for i in $(seq 1 "$ndumps"); do
	if ! "$CLI" dump -o "$WORK/h.img" "$HPID" >/dev/null 2>"$WORK/h.err"; then
		bad=$((bad + 1)); cat "$WORK/h.err"; continue
	fi
	"$CLI" show --json "$WORK/h.img" >"$WORK/h$i.json" || { bad=$((bad + 1)); rm -f "$WORK/h$i.json"; }
done
kill -0 "$HPID" 2>/dev/null && pass "hammer: process alive after $ndumps dumps" || fail "hammer: process died"
stop "$HPID"
# Every image's diagnostics, read by one python3 once the churn stopped
# (one interpreter per image, competing with the churning threads, cost
# most of this test's time).
n=$(inconsistent_images "$WORK"/h[0-9]*.json) || n=$ndumps
bad=$((bad + n))
[ "$bad" = 0 ] && pass "hammer: $ndumps consistent images" || fail "hammer: $bad inconsistent or failed dumps"

# SIGKILL in the middle of a dump leaves the previous image intact.
start killme "$PROGS/rec_scenario" many 15000 || fail "killme: did not start"
KPID=$STARTED_PID
"$CLI" dump -o "$WORK/k.img" "$KPID" >/dev/null || fail "killme: first dump"
sum1=$(sha256sum <"$WORK/k.img")
"$CLI" dump -o "$WORK/k.img" "$KPID" >/dev/null 2>"$WORK/k.err" &
dpid=$!
sleep 0.02
kill -KILL "$KPID"
wait "$dpid" && echo "(the second dump finished before the kill)"
[ "$(sha256sum <"$WORK/k.img")" = "$sum1" ] || "$CLI" show "$WORK/k.img" >/dev/null ||
	fail "killme: the image under the final name is damaged"
"$CLI" show "$WORK/k.img" >/dev/null && pass "killme: previous image intact after SIGKILL" || fail "killme: image unreadable"
ls "$WORK" | grep -q 'k.img.tmp' && fail "killme: temporary file left behind" || pass "killme: no temporary file left"

finish
