#!/usr/bin/env bash
# Stress (issue 5): stress.c (8 threads churning ADD/MOD/DEL/dup/dup2/close
# on their own and on shared sets, forked and exec'd children working on the
# shared sets) runs under the shim for STRESS_SECONDS (10 in make check;
# 120 in make check-long, long_stress.sh) while it is dumped continuously:
#  - all along, `epollcr dump` (the CLI path), one after another: the next
#    one is issued 10 ms after the previous one finished.  A dump costs tens
#    of ms here (hundreds under the sanitizers), so this is not one dump
#    every 10 ms: a process serves dump requests one at a time, and
#    overlapping clients would only measure that queue.  Every image is
#    checked;
#  - in the second half, also the in-process trigger: a plain `kill -SIG`
#    every 10 ms, each asking the process to write EPOLLCR_DIR/epollcr-PID.img.
#    A request that arrives while a dump runs is merged into the next one,
#    so the recorder then dumps back to back, never idle; after every CLI
#    dump the latest in-process image is checked too.
# So the first half gives the CLI dumps' own durations, the second half the
# most load: both paths at once, the CLI dumps waiting behind in-process ones.
# Checks: every CLI dump comes back within its timeout (no deadlock), the
# in-process path keeps writing images, every image is valid (`epollcr show
# --json`) and consistent (real_stress_check.py: no warning of any kind; the
# only exception is the children's own watches, under the numbers 900..989
# that stress.c keeps for them, which the parent's shim cannot see); the
# program keeps making progress, survives, and exits cleanly on SIGTERM with
# every one of its own calls having done what it should.
# Three times (at a third, two thirds and the end) the program is paused
# between operations (SIGUSR1; no child alive then) and both an `epollcr
# dump` image and an in-process image are compared exactly with
# /proc/PID/fdinfo read by this test (check_image.py) and by `epollcr
# verify --kernel` (the kernel's view and kcmp, not the shim's own word).
# Prints the number of dumps of each path and the CLI dumps'
# median and maximum duration in each half.  STRESS_CHILDREN=0 runs without
# the forked and exec'd children (to tell apart what only they cause).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/real_lib.sh"

SECS=${STRESS_SECONDS:-10}
if ! [[ $SECS =~ ^[0-9]+$ ]] || [ "$SECS" -lt 3 ] || [ "$SECS" -gt 300 ]; then
	fail "STRESS_SECONDS must be 3..300, not '$SECS'"
	finish
fi
PROG=$PROGS/stress
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
INTERVAL_MS=10
MAX_DUMPS=$((SECS * 1000 / INTERVAL_MS))
DUMP_TIMEOUT=5
# stress.c: fork children use the numbers 900..939, exec'd children
# 950..989 (FORK_TFD_BASE, EXEC_TFD_BASE, CHILD_TFDS).
CHILD_LO=900 CHILD_HI=989

# The checker must not take the test down with SIGPIPE if it dies.
trap '' PIPE
children=()
[ "${STRESS_CHILDREN:-1}" = 0 ] && children=(--no-children)
mkdir -m 700 "$WORK/inproc" "$WORK/img"
EPOLLCR_DIR=$WORK/inproc EPOLLCR_LOG=2 LD_PRELOAD=$PRELOAD \
	"$PROG" "$SECS" "${children[@]}" >"$WORK/stress.out" 2>"$WORK/stress.err" &
SPID=$!
PIDS+=("$SPID")
wait_for "$WORK/stress.out" '^ready' 20 || { fail "stress did not start"; cat "$WORK/stress.err"; finish; }
ready_us=${EPOCHREALTIME//[.,]/}
INPROC=$WORK/inproc/epollcr-$SPID.img
# The checkpoint signal, from the recorder thread's name (epollcr-sigN).
SIG=$(cat /proc/"$SPID"/task/*/comm 2>/dev/null | sed -n 's/^epollcr-sig\([0-9]*\)$/\1/p' | head -n 1)
[ -n "$SIG" ] || { fail "no recorder thread (epollcr-sigN) in pid $SPID"; finish; }
echo "stress pid $SPID${children[*]:+ ${children[*]}}, $SECS s; CLI dumps 10 ms apart (timeout $DUMP_TIMEOUT s each), kill -$SIG every $INTERVAL_MS ms"

mkfifo "$WORK/queue"
"$PY" "$TOP/test/integration/real_stress_check.py" "$CHILD_LO" "$CHILD_HI" \
	<"$WORK/queue" >"$WORK/check.out" 2>&1 &
CPID=$!
PIDS+=("$CPID")
exec 7>"$WORK/queue"

# The in-process trigger: a signal every INTERVAL_MS until $WORK/kill.stop
# exists (bounded by SECS + 60 s anyway); prints how many it sent.
start_kill_loop() {
	"$PY" -c '
import os, sys, time
pid, sig, every, stop, limit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000, sys.argv[4], time.monotonic() + int(sys.argv[5])
sent, due = 0, time.monotonic()
while not os.path.exists(stop) and time.monotonic() < limit:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        break
    sent += 1
    due += every
    left = due - time.monotonic()
    if left > 0:
        time.sleep(left)
    else:
        due = time.monotonic()
print(sent)
' "$SPID" "$SIG" "$INTERVAL_MS" "$WORK/kill.stop" $((SECS + 60)) >"$WORK/kill.out" 2>&1 &
	KPID=$!
	PIDS+=("$KPID")
}

inproc_count() { grep -c 'image written to' "$WORK/stress.err"; }

# quiet_check N: pause stress, compare a CLI image and an in-process image
# taken while it is paused with the kernel's view, resume.
PAUSED_MS=0	# time spent in pauses, for the progress check
quiet_check() {
	local n=$1 before i ok=1 t0=$EPOCHREALTIME
	kill -USR1 "$SPID"
	wait_for "$WORK/stress.out" "^paused $n\$" 30 >/dev/null || { fail "pause $n: stress did not pause"; return; }
	before=$(inproc_count)
	if "$CLI" dump --timeout $DUMP_TIMEOUT -o "$WORK/quiet$n.img" "$SPID" >/dev/null 2>"$WORK/dump.err" &&
		"$CLI" show --json "$WORK/quiet$n.img" >"$WORK/quiet$n.json" &&
		"$PY" "$TOP/test/integration/check_image.py" "$SPID" "$WORK/quiet$n.json" &&
		"$CLI" verify --kernel "$WORK/quiet$n.img" >"$WORK/verify.out" 2>&1; then
		echo "$WORK/quiet$n.json" >&7
	else
		ok=0; fail "pause $n: the CLI image differs from the kernel's view"
		cat "$WORK/dump.err" "$WORK/verify.out" 2>/dev/null | head -n 20
	fi
	# Two more in-process images: the second one started after the pause
	# (the first may have been running when it began).
	for ((i = 0; i < 300; i++)); do
		[ "$(inproc_count)" -ge $((before + 2)) ] && break
		[ $((i % 25)) = 0 ] && kill -"$SIG" "$SPID"
		sleep 0.02
	done
	if [ "$(inproc_count)" -ge $((before + 2)) ] && cp "$INPROC" "$WORK/quiet$n-p.img" &&
		"$CLI" show --json "$WORK/quiet$n-p.img" >"$WORK/quiet$n-p.json" &&
		"$PY" "$TOP/test/integration/check_image.py" "$SPID" "$WORK/quiet$n-p.json" &&
		"$CLI" verify --kernel "$WORK/quiet$n-p.img" >"$WORK/verify.out" 2>&1; then
		echo "$WORK/quiet$n-p.json" >&7
	else
		ok=0; fail "pause $n: no in-process image within 6 s, or it differs from the kernel's view"
		head -n 20 "$WORK/verify.out" 2>/dev/null
	fi
	[ $ok = 1 ] && pass "pause $n: a CLI image and an in-process image equal the kernel's view (check_image.py, epollcr verify)"
	kill -USR2 "$SPID"
	wait_for "$WORK/stress.out" "^resumed $n\$" 30 >/dev/null || fail "pause $n: stress did not resume"
	PAUSED_MS=$((PAUSED_MS + (${EPOCHREALTIME//[.,]/} - ${t0//[.,]/}) / 1000))
}

n=0 np=0 failed_dumps=0 invalid=0 quiet=0 last_inproc='' KPID='' n_first=''
start_s=$EPOCHREALTIME
start_us=${start_s//[.,]/}
end_us=$((start_us + SECS * 1000000))
while [ $n -lt $MAX_DUMPS ] && [ "${EPOCHREALTIME//[.,]/}" -lt $end_us ]; do
	if [ -z "$KPID" ] && [ "${EPOCHREALTIME//[.,]/}" -ge $((start_us + SECS * 500000)) ]; then
		n_first=$n
		inproc_before=$(inproc_count)
		kill_start=$EPOCHREALTIME
		start_kill_loop
	fi
	# Pauses at a third and two thirds of the run (the third at the end).
	if [ $quiet -lt 2 ] && [ "${EPOCHREALTIME//[.,]/}" -ge $((start_us + (quiet + 1) * SECS * 1000000 / 3)) ]; then
		quiet=$((quiet + 1))
		quiet_check $quiet
	fi
	t0=$EPOCHREALTIME
	img=$WORK/img/$n.img
	if ! timeout -k 2 $((DUMP_TIMEOUT + 5)) "$CLI" dump --timeout $DUMP_TIMEOUT \
		-o "$img" "$SPID" >/dev/null 2>"$WORK/dump.err"; then
		failed_dumps=$((failed_dumps + 1))
		fail "dump $n of pid $SPID failed or timed out: $(cat "$WORK/dump.err")"
		real_alive "$SPID" || { fail "stress died"; break; }
		[ $failed_dumps -ge 3 ] && { echo "3 failed dumps: stopping"; break; }
		continue
	fi
	t1=$EPOCHREALTIME
	us=$((${t1//[.,]/} - ${t0//[.,]/}))
	DUMP_MS+=("$((us / 1000)).$((us / 100 % 10))")
	if "$CLI" show --json "$img" >"$img.json" 2>"$WORK/show.err"; then
		echo "$img.json" >&7
		rm -f "$img"
	else
		invalid=$((invalid + 1))
		[ $invalid -le 3 ] && fail "image $n is not valid: $(cat "$WORK/show.err")"
	fi
	n=$((n + 1))
	# The latest in-process image, when there is a new one.
	stamp=$(stat -c %i.%Y.%Z "$INPROC" 2>/dev/null)
	if [ -n "$stamp" ] && [ "$stamp" != "$last_inproc" ] && cp "$INPROC" "$WORK/img/p$np.img" 2>/dev/null; then
		last_inproc=$stamp
		if "$CLI" show --json "$WORK/img/p$np.img" >"$WORK/img/p$np.json" 2>"$WORK/show.err"; then
			echo "$WORK/img/p$np.json" >&7
			rm -f "$WORK/img/p$np.img"
		else
			invalid=$((invalid + 1))
			[ $invalid -le 3 ] && fail "in-process image p$np is not valid: $(cat "$WORK/show.err")"
		fi
		np=$((np + 1))
	fi
	# The next dump 10 ms after this one finished.
	sleep "$(printf '0.%03d' $INTERVAL_MS)"
done
now_us=${EPOCHREALTIME//[.,]/}
elapsed=$(( (now_us - start_us) / 1000000 ))
inproc=$(( $(inproc_count) - ${inproc_before:-0} ))
kill_start=${kill_start:-$EPOCHREALTIME}
kill_ms=$(( (now_us - ${kill_start//[.,]/}) / 1000 ))
quiet=$((quiet + 1))
quiet_check $quiet
touch "$WORK/kill.stop"
[ -n "$KPID" ] && wait "$KPID"
signals=$(cat "$WORK/kill.out" 2>/dev/null)
ok_dumps=${#DUMP_MS[@]}
: "${n_first:=$ok_dumps}"
[ "$n_first" -le "$ok_dumps" ] || n_first=$ok_dumps
all_ms=("${DUMP_MS[@]}")
# stats_of FIRST COUNT: real_dump_stats of DUMP_MS[FIRST..FIRST+COUNT).
stats_of() {
	[ "$2" -gt 0 ] || { echo "no dumps"; return; }
	DUMP_MS=("${all_ms[@]:$1:$2}")
	real_dump_stats
}
echo "$n CLI dumps in $elapsed s; first half, CLI alone: $(stats_of 0 "$n_first")"
echo "second half, with the in-process trigger: $(stats_of "$n_first" $((ok_dumps - n_first)))"
if [ -n "$KPID" ]; then
	echo "in-process: $signals signals in $kill_ms ms, $inproc images written (one every $((kill_ms / (inproc > 0 ? inproc : 1))) ms), $np of them checked"
else
	echo "in-process: the trigger never started"
fi
DUMP_MS=("${all_ms[@]}")
# A CLI dump takes 50-250 ms here, up to a second or two under
# ThreadSanitizer (the CLI is instrumented too): each must come back within
# its timeout (no deadlock); a handful at least, or nothing was tested.
[ $n -ge 5 ] && [ $failed_dumps = 0 ] &&
	pass "$n CLI dumps taken, each within its $DUMP_TIMEOUT s timeout" ||
	fail "$n CLI dumps in $SECS s, $failed_dumps failed"
[[ $signals =~ ^[0-9]+$ ]] && [ "$inproc" -ge $(( (SECS + 3) / 4 )) ] && [ "$np" -ge 1 ] &&
	pass "in-process trigger: $inproc images for $signals signals" ||
	fail "in-process trigger: $inproc images for '$signals' signals, $np checked"
[ $invalid = 0 ] && pass "every image is valid (epollcr show --json)" || fail "$invalid invalid images"

# The program kept working all along, and stops cleanly on SIGTERM.
real_alive "$SPID" && pass "stress alive after $((n + inproc)) dumps" || fail "stress died"
run_ms=$(( (${EPOCHREALTIME//[.,]/} - ready_us) / 1000 ))
kill -TERM "$SPID"
for ((i = 0; i < 100; i++)); do real_alive "$SPID" || break; sleep 0.1; done
if real_alive "$SPID"; then
	fail "stress did not exit within 10 s of SIGTERM (deadlock?)"
	gdb_out=$(timeout 20 gdb -p "$SPID" -batch -ex 'thread apply all bt 8' 2>/dev/null | grep -E '^(Thread|#)' | head -n 60)
	[ -n "$gdb_out" ] && echo "$gdb_out"
	stop "$SPID"
fi
wait "$SPID"
status=$?
grep -v 'image written to' "$WORK/stress.err" | head -n 20
done_line=$(grep '^stress: done' "$WORK/stress.out")
echo "${done_line:-no summary line}"
[ $status = 0 ] && [[ $done_line == *" pauses $quiet unexpected 0" ]] &&
	pass "stress exited 0 on SIGTERM; every call of its own did what it should" ||
	fail "stress exit status $status, summary '${done_line}'"
# One report a second while not paused (a second may be lost at each of
# the 3 resumes, and one at each end).
progress=$(grep -c '^progress ' "$WORK/stress.out")
expected=$(( (run_ms - PAUSED_MS) / 1000 - 5 ))
if grep '^progress ' "$WORK/stress.out" | awk '{ if (NR > 1 && $2 <= prev) exit 1; prev = $2 }' &&
	[ "$progress" -ge "$expected" ]; then
	pass "stress made progress every second ($progress reports in $((run_ms / 1000)) s, $((PAUSED_MS / 1000)) s of them paused)"
else
	fail "stress stalled: $progress progress reports in $((run_ms / 1000)) s ($((PAUSED_MS / 1000)) s paused; at least $expected expected), or a count that did not grow"
fi
if [ ${#children[@]} = 0 ]; then
	[[ $done_line =~ forks\ ([0-9]+)\ execs\ ([0-9]+) ]] &&
		[ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[2]}" -gt 0 ] &&
		pass "forked ${BASH_REMATCH[1]} and exec'd ${BASH_REMATCH[2]} children during the dumps" ||
		fail "no fork or no exec happened"
fi

exec 7>&-
wait "$CPID"
cstatus=$?
cat "$WORK/check.out"
if [ $cstatus = 0 ]; then
	pass "every image consistent: no warning but the children's unseen watches under $CHILD_LO..$CHILD_HI"
else
	keep=$TOP/$BUILD/test-logs/stress-images
	rm -rf "$keep" && mkdir -p "$keep" && cp "$WORK"/img/*.json "$keep"/ 2>/dev/null
	fail "inconsistent images (the first ones, as show --json, copied to $keep)"
fi
if [ ${#children[@]} = 0 ]; then
	grep -q "^children's watches seen: [1-9]" "$WORK/check.out" &&
		pass "the images caught children's watches (so their exclusion was exercised)" ||
		fail "no image showed a watch of a child: the children's part was not tested"
fi
finish
