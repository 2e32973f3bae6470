#!/usr/bin/env bash
# make demo's script (tools/demo.sh) on this build: it completes, and its
# headings are bold on a terminal only: no escape code in a pipe, none with
# NO_COLOR set.
. "$(dirname "$0")/lib.sh"

demo() { # OUT ENV...: the demo's stdout into a pipe (cat), then into OUT
	local out=$1; shift
	(cd "$TOP" && env "$@" tools/demo.sh "$BUILD" 2>&1 | cat >"$out")
}
has_esc() { grep -q $'\033' "$1"; }

if demo "$WORK/pipe.out"; then pass "demo into a pipe: exit 0"
else fail "demo into a pipe failed"; cat "$WORK/pipe.out"; fi
grep -q '^== Done: dumped' "$WORK/pipe.out" && pass "demo into a pipe: reaches the end" ||
	fail "demo into a pipe: no final heading"
has_esc "$WORK/pipe.out" && fail "demo into a pipe: escape codes in its output" ||
	pass "demo into a pipe: plain text"

# On a terminal (script(1) gives it a pseudo-terminal): bold headings, and
# none with NO_COLOR.
tty_demo() { # OUT ENV...
	local out=$1; shift
	(cd "$TOP" && timeout 60 script -qec "env $* tools/demo.sh $BUILD" /dev/null \
		</dev/null >"$out" 2>&1)
}
if tty_demo "$WORK/tty.out" NO_COLOR=; then
	has_esc "$WORK/tty.out" && pass "demo on a terminal: bold headings" ||
		fail "demo on a terminal: no escape code"
else
	fail "demo on a terminal failed"; cat "$WORK/tty.out"
fi
if tty_demo "$WORK/nocolor.out" NO_COLOR=1; then
	has_esc "$WORK/nocolor.out" && fail "demo with NO_COLOR: escape codes" ||
		pass "demo on a terminal with NO_COLOR: plain text"
else
	fail "demo with NO_COLOR failed"; cat "$WORK/nocolor.out"
fi
finish
