#!/usr/bin/env bash
# Transparency: a program cannot tell whether the shim is preloaded.
# Each check runs transp_probe (or transp_static) without and with the shim
# and compares stdout; the probe checks some properties itself (exit 1).
#   - the preload takes effect at all (else every comparison is vacuous)
#   - fd numbers: the first open() in main, after epoll calls, after close
#   - fork and posix_spawn: parent and child both work on one set
#   - signals: every disposition (the checkpoint signal SIGRTMAX-3, or the
#     one EPOLLCR_SIGNAL names, looks like SIG_DFL) and the blocked mask;
#     a program's own handler on that signal is returned and runs
#   - /proc/self/fd and thread count of a program that opens nothing
#   - a program using epoll: fds it did not open are >= a high base and
#     close-on-exec, also after a dump
#   - exec with inherited epoll fds (one set; 150 sets, which the shim's
#     load-time scan adopts in batches); `env -i`; clearenv(); a static
#     program
# Environment (tools/run-tests.sh): TOP, BUILD, PRELOAD, CC.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) bdir=$BUILD ;; *) bdir=$TOP/$BUILD ;; esac
PRELOAD=${PRELOAD:-$bdir/libepollcr.so}
probe=$bdir/test/integration/transp_probe
static_dyn=$bdir/test/integration/transp_static
# The shim's own fds must be at or above this number (it uses the soft
# RLIMIT_NOFILE minus a margin; a program's numbers are far below).
FD_BASE=${TRANSP_SHIM_FD_BASE:-256}

fail() { echo "FAIL: $*"; exit 1; }

[ -x "$probe" ] || fail "$probe is not built (make tests)"
[ -x "$static_dyn" ] || fail "$static_dyn is not built (make tests)"
lib=${PRELOAD##*:}
[ -f "$lib" ] || fail "the shim $lib is not built (make $BUILD/libepollcr.so)"

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
status=0
checks=0

report_failure() { # what, files to show...
	local what=$1; shift
	echo "FAIL $what"
	for f in "$@"; do
		[ -s "$f" ] && sed "s/^/     $(basename "$f"): /" "$f" | head -n 40
	done
	status=1
}

# launch OUT PRELOAD ENV... -- ARGS...: run ARGS (with LD_PRELOAD=PRELOAD
# unless empty) into OUT.out/OUT.err; with ENVI=1 under `env -i`, keeping
# only the sanitizers' options.  Returns the exit status.
launch() {
	local out=$1 pre=$2; shift 2
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	[ -n "$pre" ] && envs+=("LD_PRELOAD=$pre")
	if [ "${ENVI:-0}" = 1 ]; then
		local v keep=()
		for v in ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
			[ -n "${!v:-}" ] && keep+=("$v=${!v}")
		done
		timeout -k 5 20 env -i "${keep[@]}" "${envs[@]}" "$@" \
			>"$out.out" 2>"$out.err"
	else
		timeout -k 5 20 env "${envs[@]}" "$@" >"$out.out" 2>"$out.err"
	fi
}

# same NAME [ENV...] -- ARGS...: run ARGS without and with the shim (ENV in
# both); both must exit 0 with identical stdout.
same() {
	local name=$1; shift
	checks=$((checks + 1))
	launch "$tmp/plain" "" "$@"
	local rc1=$?
	launch "$tmp/shim" "$PRELOAD" "$@"
	local rc2=$?
	if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
		report_failure "$name: exit $rc1 without, $rc2 with the shim" \
			"$tmp/plain.out" "$tmp/plain.err" "$tmp/shim.out" "$tmp/shim.err"
	elif ! diff -u "$tmp/plain.out" "$tmp/shim.out" >"$tmp/diff"; then
		report_failure "$name: output differs with the shim" "$tmp/diff" \
			"$tmp/shim.err"
	else
		echo "ok   $name: $(wc -l <"$tmp/plain.out") lines identical"
	fi
}

# holds NAME [ENV...] -- ARGS...: ARGS, with the shim, must exit 0.
holds() {
	local name=$1; shift
	checks=$((checks + 1))
	launch "$tmp/shim" "$PRELOAD" "$@"
	local rc=$?
	if [ $rc -ne 0 ]; then
		report_failure "$name: exit $rc with the shim" "$tmp/shim.out" \
			"$tmp/shim.err"
	else
		echo "ok   $name: $(tail -n 1 "$tmp/shim.out")"
	fi
}

# expect NAME PATTERN FILE: FILE must contain the fixed string PATTERN.
expect() {
	checks=$((checks + 1))
	if grep -qF -- "$2" "$3"; then
		echo "ok   $1: \"$2\""
	else
		report_failure "$1: \"$2\" not found" "$3"
	fi
}

# The probes must start with only 0-2 open (whatever the test runner left
# open would otherwise look like the shim's): close the rest here.
self=$(readlink -f "$0")
for fd in $(ls /proc/$$/fd); do
	[ "$fd" -gt 2 ] || continue
	# bash reads this script through one of them: keep that one.
	[ "$(readlink "/proc/$$/fd/$fd" 2>/dev/null)" = "$self" ] && continue
	eval "exec $fd>&-"
done

rtmax=$(kill -l SIGRTMAX 2>/dev/null || echo 64)
ckpt=$((rtmax - 3))

echo "== the preload takes effect"
LD_PRELOAD="$PRELOAD" "$probe" loaded >"$tmp/loaded" 2>&1
expect "dynamic program under the preload" \
	"libepollcr mapped: yes, epollcr_shadow_print: yes" "$tmp/loaded"
"$probe" loaded >"$tmp/loaded" 2>&1
expect "dynamic program without it" \
	"libepollcr mapped: no, epollcr_shadow_print: no" "$tmp/loaded"

echo "== with and without the shim"
same "first open() and later fd numbers" -- "$probe" firstfd
same "the same, EPOLLCR_BACKTRACE=0" EPOLLCR_BACKTRACE=0 -- "$probe" firstfd
same "fork and posix_spawn" -- "$probe" fork
same "signal dispositions (checkpoint signal $ckpt)" -- "$probe" signals
same "signal dispositions, EPOLLCR_SIGNAL=12" EPOLLCR_SIGNAL=12 -- \
	"$probe" signals
same "own handler on the checkpoint signal $ckpt" -- "$probe" sigown "$ckpt"
same "own handler on SIGUSR2, EPOLLCR_SIGNAL=12" EPOLLCR_SIGNAL=12 -- \
	"$probe" sigown 12
same "/proc/self/fd and threads of a program that opens nothing" -- \
	"$probe" nofds
same "epoll user: own fds; foreign fds >= $FD_BASE, close-on-exec" -- \
	"$probe" epollfds "$FD_BASE"
same "the same, EPOLLCR_BACKTRACE=0" EPOLLCR_BACKTRACE=0 -- \
	"$probe" epollfds "$FD_BASE"
same "exec with inherited epoll fds" -- "$probe" exec
same "exec with 150 inherited epoll sets (the shim adopts them in batches of 64)" -- \
	"$probe" execmany 150
same "exec with one inherited set of 3000 watches (fdinfo over 64 KiB)" -- \
	"$probe" execbig 3000
same "clearenv() before any epoll call" -- "$probe" clearenv

echo "== under env -i (nothing but LD_PRELOAD in the environment)"
ENVI=1
launch "$tmp/shim" "$PRELOAD" -- "$probe" loaded
expect "env -i with LD_PRELOAD loads the shim" \
	"libepollcr mapped: yes, epollcr_shadow_print: yes" "$tmp/shim.out"
same "env -i: epoll, fork, wait" -- "$probe" basic
same "env -i: fd numbers" -- "$probe" firstfd
same "env -i: signal dispositions" -- "$probe" signals
same "env -i: a shell pipeline" -- /bin/sh -c 'echo piped | cat'
ENVI=0

echo "== a dump leaves no fd below $FD_BASE"
mkdir -p "$tmp/images"
holds "dump by signal $ckpt, then foreign fds" EPOLLCR_DIR="$tmp/images" -- \
	"$probe" dumpfds "$FD_BASE" "$ckpt"
grep -h "transp_probe: dump" "$tmp/shim.err" | sed 's/^/     /'
holds "the same, EPOLLCR_BACKTRACE=0" EPOLLCR_DIR="$tmp/images" \
	EPOLLCR_BACKTRACE=0 -- "$probe" dumpfds "$FD_BASE" "$ckpt"
grep -h "transp_probe: dump" "$tmp/shim.err" | sed 's/^/     /'

echo "== a statically linked program is unaffected"
cc=${CC:-cc}
if $cc -static -O1 -std=gnu11 -D_GNU_SOURCE -o "$tmp/transp_static" \
	"$TOP/test/integration/transp_static.c" 2>"$tmp/cc.err"; then
	same "static program" -- "$tmp/transp_static"
	expect "static program does not map the shim" \
		"libepollcr mapped: no" "$tmp/shim.out"
else
	report_failure "cannot link a static program with $cc" "$tmp/cc.err"
fi
# The same source, dynamic: the preload shows (the check above can fail).
LD_PRELOAD="$PRELOAD" "$static_dyn" >"$tmp/dyn.out" 2>&1
expect "dynamic build of it maps the shim" "libepollcr mapped: yes" \
	"$tmp/dyn.out"
"$static_dyn" >"$tmp/dyn_plain.out" 2>&1
checks=$((checks + 1))
if diff <(grep -v mapped "$tmp/dyn_plain.out") \
	<(grep -v mapped "$tmp/dyn.out") >"$tmp/diff"; then
	echo "ok   dynamic build: fd numbers, epoll, fork identical"
else
	report_failure "dynamic build differs with the shim" "$tmp/diff"
fi

echo "$checks checks"
[ $status -eq 0 ] && echo "PASS transparency"
exit $status
