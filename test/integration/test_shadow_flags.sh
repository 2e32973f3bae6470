#!/usr/bin/env bash
# The dump takes the flags of the sockets and pipes the shim saw created
# from the shadow instead of each fd's fdinfo (issue 14 item 1), so the
# shim must follow every way a program changes them.  shadow_flags
# changes them through fcntl (F_SETFL, F_SETFD, F_DUPFD, F_DUPFD_CLOEXEC,
# and fcntl64), ioctl (FIONBIO, FIOASYNC, FIOCLEX, FIONCLEX), dup, dup2,
# dup3 and close_range(CLOSE_RANGE_CLOEXEC).  The dump through the shim
# and a kernel-only dump (`dump --kernel`: every fd's fdinfo) must then
# describe every target identically: file flags, each fd's FD_CLOEXEC,
# and the rest of the line.  Then the program changes two watched
# sockets' flags with raw fcntl syscalls, behind the shim: the dump
# through the shim keeps the shadow's flags for exactly those two (a
# documented limit, docs/limitations.md), `epollcr verify --kernel`
# reports exactly those two differences, and a plain verify (through the
# process's shim, whose image holds the same shadow flags) reports none.  Last, children started with posix_spawn
# and vfork change the flags of a socket each they inherited: the image
# has the kernel's flags (the shim forgets every file's flags at a spawn).
. "$(dirname "$0")/lib.sh"

# targets NAME IMG: the image's target lines (one per watched file: its
# description, its fds with FD_CLOEXEC, its file flags), sorted.
targets() {
	"$CLI" show "$2" | grep '^    target ' | sort >"$WORK/$1.targets"
}

start flags "$PROGS/shadow_flags" "$WORK/go" || { fail "shadow_flags did not start"; finish; }
PID=$STARTED_PID
cat "$WORK/flags.err"

"$CLI" dump -o "$WORK/shim.img" "$PID" >/dev/null || fail "dump through the shim"
"$CLI" dump --kernel -o "$WORK/kernel.img" "$PID" >/dev/null 2>&1 || fail "dump --kernel"
targets shim "$WORK/shim.img"
targets kernel "$WORK/kernel.img"
n=$(wc -l <"$WORK/shim.targets")
[ "$n" -eq 14 ] && pass "14 watched targets" || fail "$n watched targets, not 14"
if diff "$WORK/kernel.targets" "$WORK/shim.targets"; then
	pass "every target's flags and FD_CLOEXEC from the shadow equal the kernel's"
else
	fail "the dump through the shim differs from the kernel's view (above: < kernel, > shim)"
fi
"$CLI" verify "$WORK/shim.img" >"$WORK/verify1.out" 2>&1 &&
	pass "verify: no difference" || { fail "verify:"; cat "$WORK/verify1.out"; }

touch "$WORK/go"
wait_for "$WORK/flags.out" '^raw ' || { fail "no raw change"; finish; }
read -r _ raw_fl raw_fd < <(grep '^raw ' "$WORK/flags.out")
"$CLI" dump -o "$WORK/shim2.img" "$PID" >/dev/null || fail "second dump through the shim"
"$CLI" verify "$WORK/shim2.img" >"$WORK/verify2s.out" 2>&1 &&
	grep -q 'identical to pid .* via its shim' "$WORK/verify2s.out" &&
	pass "verify through the shim: the shadow's flags on both sides, no difference" ||
	{ fail "verify through the shim after raw changes:"; cat "$WORK/verify2s.out"; }
"$CLI" verify --kernel "$WORK/shim2.img" >"$WORK/verify2.out" 2>&1
rc=$?
cat "$WORK/verify2.out"
[ "$rc" -eq 1 ] && pass "verify: the raw changes differ" || fail "verify exit $rc after raw changes, not 1"
grep -q "tfd $raw_fl: target file flags expected 02 (O_RDWR), actual 04002 (O_RDWR|O_NONBLOCK)" "$WORK/verify2.out" &&
	pass "raw F_SETFL O_NONBLOCK on fd $raw_fl: the image keeps the shadow's flags, verify says so" ||
	fail "raw F_SETFL on fd $raw_fl not reported"
grep -q "tfd $raw_fd: target fds expected $raw_fd, actual $raw_fd cloexec" "$WORK/verify2.out" &&
	pass "raw F_SETFD FD_CLOEXEC on fd $raw_fd: the image keeps the shadow's FD_CLOEXEC, verify says so" ||
	fail "raw F_SETFD on fd $raw_fd not reported"
grep -q ': 2 differences' "$WORK/verify2.out" && pass "exactly two differences" ||
	fail "not exactly two differences"

# Children started with posix_spawn and vfork inherit a watched socket
# each and add O_APPEND to it: the shadow forgets every file's flags at
# the spawn, so the dump reads every fd from the kernel again, the two
# raw changes above included.
touch "$WORK/go2"
wait_for "$WORK/flags.out" '^spawned ' || { fail "no children"; cat "$WORK/flags.err"; finish; }
read -r _ sp1 sp2 < <(grep '^spawned ' "$WORK/flags.out")
"$CLI" dump -o "$WORK/shim3.img" "$PID" >/dev/null || fail "third dump through the shim"
"$CLI" dump --kernel -o "$WORK/kernel3.img" "$PID" >/dev/null 2>&1 || fail "third dump --kernel"
targets shim3 "$WORK/shim3.img"
targets kernel3 "$WORK/kernel3.img"
diff "$WORK/kernel3.targets" "$WORK/shim3.targets" &&
	pass "after the children: every target equals the kernel's" ||
	fail "after the children: the dump through the shim differs from the kernel's view"
for fd in "$sp1" "$sp2"; do
	fl=$(grep "fd $fd[ ,;]" "$WORK/shim3.targets" | sed -n 's/.*file flags \(0x[0-9a-f]*\).*/\1/p')
	if [ -n "$fl" ] && (( fl & 0x400 )); then
		pass "fd $fd: O_APPEND a child set is in the image ($fl)"
	else
		fail "fd $fd: the child's O_APPEND is not in the image (${fl:-no target})"
	fi
done
"$CLI" verify "$WORK/shim3.img" >"$WORK/verify3.out" 2>&1
cat "$WORK/verify3.out"
grep -q ': identical to pid' "$WORK/verify3.out" &&
	pass "verify: no difference (the raw changes read from the kernel too)" ||
	fail "verify after the children: differences"
stop "$PID"
finish
