#!/usr/bin/env bash
# Images named by a FIFO (or any file that is not regular) are refused at
# once instead of blocking the open forever: `restore FILE`, `show FILE`,
# `verify FILE` fail with "not a regular file"; `show DIR` and `verify DIR`
# skip such entries with a note (the name escaped) and go on with the
# others.  Every command
# runs under timeout(1): a hang is a failure (status 124).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

good=$TOP/test/fixtures/good_small.img
mkdir "$WORK/dir"
mkfifo "$WORK/fifo.img" "$WORK/dir/a.img"
# a name that would drive a terminal: printed escaped
mkfifo "$WORK/dir/$(printf 'e\033[31m\342\200\256.img')"
cp "$good" "$WORK/dir/b.img"

# run_cli NAME CMD...: $CLI CMD under a 10 s timeout, output in NAME.out,
# status in RC.
run_cli() {
	local name=$1; shift
	timeout 10 "$CLI" "$@" >"$WORK/$name.out" 2>&1
	RC=$?
}

for cmd in show verify restore; do
	run_cli "$cmd-file" $cmd "$WORK/fifo.img"
	if [ $RC -eq 124 ]; then
		fail "$cmd FIFO: hung (killed by timeout)"
	elif [ $RC -ne 0 ] && grep -q 'not a regular file' "$WORK/$cmd-file.out" &&
		[ "$(wc -l <"$WORK/$cmd-file.out")" -eq 1 ]; then
		pass "$cmd FIFO: refused at once: $(cat "$WORK/$cmd-file.out")"
	else
		fail "$cmd FIFO: status $RC, output: $(cat "$WORK/$cmd-file.out")"
	fi
done

run_cli show-dir show "$WORK/dir"
if [ $RC -eq 0 ] && grep -q 'a.img: not a regular file, skipped' "$WORK/show-dir.out" &&
	grep -q 'pid 4242' "$WORK/show-dir.out"; then
	pass "show DIR: the FIFO skipped with a note, the image shown"
else
	fail "show DIR: status $RC, output: $(head -5 "$WORK/show-dir.out")"
fi

if grep -qF 'e\x1b[31m\u202e.img: not a regular file, skipped' "$WORK/show-dir.out" &&
	! grep -q "$(printf '\033')" "$WORK/show-dir.out"; then
	pass "show DIR: a hostile file name is printed escaped"
else
	fail "show DIR: the hostile name is not escaped: $(grep -a skipped "$WORK/show-dir.out" | cat -v)"
fi

run_cli show-json show --json "$WORK/dir"
if [ $RC -eq 0 ] && grep -q 'not a regular file, skipped' "$WORK/show-json.out"; then
	pass "show --json DIR: the FIFO skipped"
else
	fail "show --json DIR: status $RC"
fi

# pid 4242 of the fixture is most likely not there: a failure, not a hang
run_cli verify-dir verify "$WORK/dir"
if [ $RC -ne 124 ] && grep -q 'a.img: not a regular file, skipped' "$WORK/verify-dir.out"; then
	pass "verify DIR: the FIFO skipped with a note (status $RC)"
else
	fail "verify DIR: status $RC, output: $(head -5 "$WORK/verify-dir.out")"
fi
finish
