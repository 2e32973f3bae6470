#!/usr/bin/env bash
# tools/deps.sh with stand-ins for apt-get, dpkg-query and id first in PATH
# (nothing is installed): the sets (make demo needs neither cmocka nor
# man-db), the wait for another apt holding the lists lock (bounded), the
# lock timeout given to apt-get install, and the non-root message.
. "$(dirname "$0")/lib.sh"

fake=$WORK/bin
mkdir -p "$fake"
# Every package is missing.
printf '#!/bin/sh\nexit 1\n' >"$fake/dpkg-query"
printf '#!/bin/sh\n[ "$1" = -u ] && echo "${FAKE_UID:-0}" && exit 0\nexec /usr/bin/id "$@"\n' >"$fake/id"
# apt-get: logs its arguments; update fails as apt 2.6 does while
# $WORK/locked exists, or with another error when $WORK/broken does.
cat >"$fake/apt-get" <<FAKE
#!/bin/sh
echo "\$*" >>"$WORK/apt.log"
case " \$* " in *" update "*)
	if [ -e "$WORK/locked" ]; then
		echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)" >&2
		echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
		exit 100
	fi
	if [ -e "$WORK/broken" ]; then
		echo "E: The repository is not signed." >&2
		exit 100
	fi ;;
esac
exit 0
FAKE
chmod +x "$fake"/*
deps() { PATH="$fake:$PATH" timeout 60 "$TOP/tools/deps.sh" "$@"; }

# The sets.
deps --list demo >"$WORK/demo.list" && deps --list build >"$WORK/build.list" &&
	deps --list all >"$WORK/all.list" && pass "--list demo, build, all" || fail "--list"
grep -qx 'libcmocka-dev\|man-db\|groff-base\|valgrind' "$WORK/demo.list" &&
	fail "the demo set has test-only packages: $(tr '\n' ' ' <"$WORK/demo.list")" ||
	pass "the demo set has no test-only package"
grep -qx gcc "$WORK/demo.list" && pass "the demo set has gcc" || fail "no gcc in the demo set"
[ -z "$(comm -23 <(sort "$WORK/demo.list") <(sort "$WORK/build.list"))" ] &&
	[ -z "$(comm -23 <(sort "$WORK/build.list") <(sort "$WORK/all.list"))" ] &&
	pass "demo within build within all" || fail "the sets do not nest"
grep -qx libcmocka-dev "$WORK/build.list" && pass "build has cmocka" || fail "build lacks cmocka"
[ "$(deps --list test)" = "$(cat "$WORK/build.list")" ] && pass "test is build" || fail "test differs from build"
deps nosuch >/dev/null 2>"$WORK/usage.err"; rc=$?
[ "$rc" = 2 ] && grep -q usage "$WORK/usage.err" && pass "unknown set: usage, exit 2" ||
	fail "unknown set: exit $rc"

# Another apt holds the lists lock for about 3 s: deps waits, then installs
# the demo set alone, telling apt-get install to wait for dpkg's lock too.
: >"$WORK/apt.log"
touch "$WORK/locked"
(sleep 3; rm -f "$WORK/locked") &
t0=$SECONDS
if deps demo >"$WORK/wait.out" 2>&1; then pass "lock held 3 s: deps demo succeeds"
else fail "lock held 3 s: deps demo failed"; cat "$WORK/wait.out"; fi
wait
[ $((SECONDS - t0)) -ge 2 ] && pass "it waited for the lock ($((SECONDS - t0)) s)" ||
	fail "it did not wait ($((SECONDS - t0)) s)"
grep -q 'waiting' "$WORK/wait.out" && pass "it says it waits" || fail "no word about the wait"
[ "$(grep -c ' update' "$WORK/apt.log")" -ge 2 ] && pass "update retried" || fail "update not retried"
inst=$(grep ' install ' "$WORK/apt.log")
[[ $inst == *DPkg::Lock::Timeout=300* ]] && pass "install waits for dpkg's lock" ||
	fail "install without a lock timeout: $inst"
[[ $inst == *" gcc "* && $inst != *cmocka* && $inst != *man-db* ]] &&
	pass "install: the demo set alone" || fail "install: $inst"

# A lock never released: give up after DEPS_LOCK_WAIT seconds, one message.
touch "$WORK/locked"
t0=$SECONDS
DEPS_LOCK_WAIT=1 deps demo >"$WORK/stuck.out" 2>&1; rc=$?
[ "$rc" != 0 ] && [ $((SECONDS - t0)) -lt 20 ] && grep -q 'still held after 1s' "$WORK/stuck.out" &&
	pass "lock never released: fails after the wait ($rc, $((SECONDS - t0)) s)" ||
	{ fail "lock never released: exit $rc after $((SECONDS - t0)) s"; cat "$WORK/stuck.out"; }
rm -f "$WORK/locked"
DEPS_LOCK_WAIT=soon deps demo >/dev/null 2>"$WORK/bad.err"; rc=$?
[ "$rc" = 2 ] && grep -q 'DEPS_LOCK_WAIT' "$WORK/bad.err" && pass "bad DEPS_LOCK_WAIT: exit 2" ||
	fail "bad DEPS_LOCK_WAIT: exit $rc"

# Another error of update is not a lock: no retry.
touch "$WORK/broken"
: >"$WORK/apt.log"
deps demo >"$WORK/broken.out" 2>&1 && fail "broken update: success" ||
	{ [ "$(grep -c ' update' "$WORK/apt.log")" = 1 ] && grep -q 'not signed' "$WORK/broken.out" &&
		pass "another update error: no retry, apt's message shown" ||
		{ fail "another update error"; cat "$WORK/broken.out"; }; }
rm -f "$WORK/broken"

# Not root: name the packages and fail, without calling apt-get.
: >"$WORK/apt.log"
FAKE_UID=1000 deps demo >"$WORK/user.out" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -q 'sudo apt-get install -y gcc' "$WORK/user.out" && [ ! -s "$WORK/apt.log" ] &&
	pass "not root: packages named, exit 1" || { fail "not root: exit $rc"; cat "$WORK/user.out"; }
finish
