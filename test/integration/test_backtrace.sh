#!/usr/bin/env bash
# Which frames the shim keeps for a watch (bt_depth.c: one eventfd ADDed
# from bt_add_site() and MODed from bt_mod_site(), each reached through
# bt_level1() and bt_level2()), for each setting of EPOLLCR_BACKTRACE and
# EPOLLCR_BACKTRACE_MOD.  Frames are resolved by addr2line against the
# program itself, not by epollcr, and the image is checked against the
# kernel's fdinfo.
. "$(dirname "$0")/lib.sh"

command -v addr2line >/dev/null || { fail "addr2line (binutils) is not installed"; finish; }

# frames NAME KEY: one "module offset" line per frame of the watch's KEY.
frames() {
	json_query "$WORK/$1.json" "'\n'.join(f for e in j['epoll'] for w in e['watches'] for f in w['$2'])" |
		sed -n 's/^\([^ (]*\)+\(0x[0-9a-f]*\)$/\1 \2/p; s/^.* (\(.*\))$/& /p' |
		sed -n 's/^\([^ ]*\) \(0x[0-9a-f]*\)$/\1 \2/p'
}

# funcs NAME KEY: the function of each of the program's frames, in order
# (a return address minus one: the call instruction itself).
funcs() {
	local mod off
	frames "$1" "$2" | while read -r mod off; do
		[ "$mod" = "$PROGS/bt_depth" ] || continue
		addr2line -f -e "$mod" "$(printf '0x%x' $((off - 1)))" | head -n 1
	done | tr '\n' ' '
}

count() { # NAME KEY: number of frames
	json_query "$WORK/$1.json" "sum(len(w['$2']) for e in j['epoll'] for w in e['watches'])"
}

run() { # NAME ENV...: start bt_depth with ENV, dump (the first run's
	# image compared with fdinfo: the setting changes no watch)
	local name=$1; shift
	if ! start "$name" env "$@" "$PROGS/bt_depth"; then
		fail "$name: bt_depth did not start"; return 1
	fi
	if [ "$name" != default ]; then
		"$CLI" dump -o "$WORK/$name.img" "$STARTED_PID" >/dev/null &&
			"$CLI" show --json "$WORK/$name.img" >"$WORK/$name.json" ||
			fail "$name: dump or show failed"
	elif dump_check "$name" "$STARTED_PID"; then
		pass "$name: image equals the kernel's view"
	else
		fail "$name: image differs from the kernel's view"
	fi
	stop "$STARTED_PID"
}

run default X=1
add=$(funcs default backtrace) mod=$(funcs default backtrace_mod)
[[ $add == "bt_add_site bt_level2 bt_level1 main "* ]] &&
	pass "default: the ADD's stack starts bt_add_site bt_level2 bt_level1 main" ||
	fail "default: the ADD's stack is '$add'"
[ "$(count default backtrace_mod)" = 1 ] && [ "$mod" = "bt_mod_site " ] &&
	pass "default: the MOD keeps its call site alone (bt_mod_site)" ||
	fail "default: the MOD's frames are '$mod' ($(count default backtrace_mod) frames)"

run modfull EPOLLCR_BACKTRACE_MOD=8
mod=$(funcs modfull backtrace_mod)
[[ $mod == "bt_mod_site bt_level2 bt_level1 main "* ]] &&
	pass "EPOLLCR_BACKTRACE_MOD=8: the MOD's whole stack" ||
	fail "EPOLLCR_BACKTRACE_MOD=8: the MOD's stack is '$mod'"

run depth3 EPOLLCR_BACKTRACE=3
add=$(funcs depth3 backtrace)
[ "$(count depth3 backtrace)" = 3 ] && [ "$add" = "bt_add_site bt_level2 bt_level1 " ] &&
	pass "EPOLLCR_BACKTRACE=3: 3 frames for the ADD" ||
	fail "EPOLLCR_BACKTRACE=3: the ADD's frames are '$add'"

run off EPOLLCR_BACKTRACE=0
[ "$(count off backtrace)" = 0 ] && [ "$(count off backtrace_mod)" = 0 ] &&
	pass "EPOLLCR_BACKTRACE=0: no frames for the ADD nor the MOD" ||
	fail "EPOLLCR_BACKTRACE=0: frames kept"

run offmod EPOLLCR_BACKTRACE=0 EPOLLCR_BACKTRACE_MOD=2
mod=$(funcs offmod backtrace_mod)
[ "$(count offmod backtrace)" = 0 ] && [ "$mod" = "bt_mod_site bt_level2 " ] &&
	pass "EPOLLCR_BACKTRACE=0 EPOLLCR_BACKTRACE_MOD=2: MOD stacks alone" ||
	fail "EPOLLCR_BACKTRACE=0 EPOLLCR_BACKTRACE_MOD=2: ADD $(count offmod backtrace) frames, MOD '$mod'"

run badmod EPOLLCR_BACKTRACE_MOD=deep
grep -q "EPOLLCR_BACKTRACE_MOD=deep is not a depth" "$WORK/badmod.err" &&
	[ "$(count badmod backtrace_mod)" = 0 ] && [ "$(count badmod backtrace)" -ge 4 ] &&
	pass "EPOLLCR_BACKTRACE_MOD=deep: a warning, MOD frames off, ADD frames kept" ||
	{ fail "EPOLLCR_BACKTRACE_MOD=deep: no warning or wrong frames"; cat "$WORK/badmod.err"; }
finish
