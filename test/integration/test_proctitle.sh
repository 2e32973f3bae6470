#!/usr/bin/env bash
# Backtraces of a program that rewrites its process title (redis-server and
# nginx do): dladdr names the main program by argv[0], which then holds the
# title.  proctitle.c overwrites its argv area and registers a watch; the
# image's backtrace must name the executable's real path for the program's
# own frames (never the title), and `epollcr show` must resolve the ADD's
# call site to proctitle.c and the line of its epoll_ctl (built with -g).
. "$(dirname "$0")/lib.sh"

PROG=$PROGS/proctitle
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
real_exe=$(readlink -f "$PROG")
# An argument gives the title room, as a server's arguments do.
start proctitle "$PROG" --some-argument-for-room || { fail "proctitle did not start"; finish; }
PID=$STARTED_PID
line=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$WORK/proctitle.out")
title=$(tr '\0' ' ' </proc/"$PID"/cmdline)
[[ $title == proctitle-rewritten:* ]] && pass "the process title is rewritten: '$title'" ||
	fail "the process title was not rewritten: '$title'"

"$CLI" dump -o "$WORK/p.img" "$PID" >/dev/null || fail "dump of $PID failed"
"$CLI" show --json "$WORK/p.img" >"$WORK/p.json" || fail "show --json failed"
# The module of every frame ("sym+0xN (MODULE)" or "MODULE+0xN").
modules=$(json_query "$WORK/p.json" "'\n'.join(f[f.rindex('(') + 1:-1] if f.endswith(')') else f[:f.rindex('+0x')] for e in j['epoll'] for w in e['watches'] for f in w['backtrace'])")
echo "backtrace modules:"; echo "$modules" | sed 's/^/  /'
if [ -z "$modules" ]; then
	fail "the watch has no backtrace"
elif grep -q 'proctitle-rewritten' <<<"$modules"; then
	fail "a frame names the process title as its module"
elif [ "$(head -n 1 <<<"$modules")" = "$real_exe" ]; then
	pass "the ADD's first frame names the executable, $real_exe"
else
	fail "the ADD's first frame names '$(head -n 1 <<<"$modules")', not $real_exe"
fi
[ "$(json_query "$WORK/p.json" "j['exe']")" = "$real_exe" ] && pass "the image's exe is $real_exe" ||
	fail "the image's exe is $(json_query "$WORK/p.json" "j['exe']")"

"$CLI" show "$WORK/p.img" >"$WORK/p.txt" || fail "show failed"
if [ -n "$line" ] && grep -q "proctitle\.c:$line\b" "$WORK/p.txt"; then
	pass "epollcr show resolves the call site to proctitle.c:$line"
else
	fail "epollcr show does not resolve the call site to proctitle.c:$line"
	grep -A4 'registered' "$WORK/p.txt" | head -n 12
fi
stop "$PID"
finish
