#!/usr/bin/env bash
# The image directory (EPOLLCR_DIR, and `dump` without -o or with --tree
# -o DIR) is opened once, checked through that descriptor, and the image
# created relative to it.  A directory under another user's directory is
# refused, whether named directly or through a symlinked parent (that
# user could swap it between the checks and the creation); a symlinked
# parent that leads to a safe place is fine; the last component may not
# be a symlink.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "needs root (a directory of another user): skipped"; finish; }
PROG=$PROGS/behind
[ -x "$PROG" ] || { fail "$PROG is not built (make tests)"; finish; }
chmod 755 "$WORK"
mkdir -p "$WORK/other/s" "$WORK/safe/s" "$WORK/real"
chown 65534:65534 "$WORK/other"
chmod 700 "$WORK/other/s" "$WORK/safe/s" "$WORK/real"
ln -s "$WORK/other" "$WORK/link-other"
ln -s "$WORK/safe" "$WORK/link-safe"
ln -s "$WORK/real" "$WORK/last-link"

# plain_dump NAME DIR: start behind with EPOLLCR_DIR=DIR, ask for a plain
# dump (kill), wait until the image or an error is logged; sets IMG_PID.
plain_dump() {
	local name=$1 dir=$2 sig i
	EPOLLCR_DIR=$dir start "$name" "$PROG" || { fail "$name: behind did not start"; return 1; }
	IMG_PID=$STARTED_PID
	sig=$(sed -n 's/^epollcr-sig\([0-9]*\)$/\1/p' /proc/"$IMG_PID"/task/*/comm | head -1)
	kill -"$sig" "$IMG_PID"
	for ((i = 0; i < 100; i++)); do
		grep -q "image written\|no image directory\|failed" "$WORK/$name.err" && break
		sleep 0.05
	done
}

refused() { # NAME DIR PATTERN
	plain_dump "$1" "$2" || return
	if grep -q "no image directory: .*$3" "$WORK/$1.err" &&
	   [ -z "$(find "$WORK" -name "epollcr-$IMG_PID.img*")" ]; then
		pass "$1: refused ($(grep -o 'no image directory: .*' "$WORK/$1.err" | head -1 | cut -c1-150))"
	else
		fail "$1: not refused: $(cat "$WORK/$1.err"; find "$WORK" -name "epollcr-$IMG_PID.img*")"
	fi
	stop "$IMG_PID"
}

refused under-other "$WORK/other/s" "which belongs to uid 65534"
refused symlinked-parent "$WORK/link-other/s" "which belongs to uid 65534"
refused last-symlink "$WORK/last-link" "is a symbolic link"

plain_dump safe-parent "$WORK/link-safe/s"
if [ -f "$WORK/safe/s/epollcr-$IMG_PID.img" ] && "$CLI" show "$WORK/safe/s/epollcr-$IMG_PID.img" >/dev/null; then
	pass "a symlinked parent leading to a safe place: image written there"
else
	fail "safe-parent: no image: $(cat "$WORK/safe-parent.err")"
fi
[ -z "$(find "$WORK/safe/s" -name '.*tmp*')" ] && pass "no temporary file left" || fail "temporary files left: $(ls -a "$WORK/safe/s")"

# Swaps while dumps run: a middle component (m) flips between a safe
# directory and a symlink to the other user's, the last component (l/s)
# between a directory of ours and a symlink to the other user's s.  Each of
# 30 plain dumps either writes into the safe place or is refused; none
# lands in the other user's directory (the directory is resolved once,
# checked and used through one descriptor).  A dump may also fail when the
# swapper removes the directory it holds (ENOENT): a failure, not a leak.
mkdir -p "$WORK/m-real/s" "$WORK/l/s"
chmod 700 "$WORK/m-real/s" "$WORK/l/s"
ln -s "$WORK/m-real" "$WORK/m"
touch "$WORK/swapping"
(
	end=$((SECONDS + 30))
	while [ -e "$WORK/swapping" ] && [ $SECONDS -lt $end ]; do
		ln -sfn "$WORK/other" "$WORK/m.x" && mv -T "$WORK/m.x" "$WORK/m"
		mv -T "$WORK/l/s" "$WORK/l/s.d" && ln -s "$WORK/other/s" "$WORK/l/s"
		ln -sfn "$WORK/m-real" "$WORK/m.x" && mv -T "$WORK/m.x" "$WORK/m"
		rm "$WORK/l/s" && mv -T "$WORK/l/s.d" "$WORK/l/s"
	done
) &
SWAPPER=$!
for leg in m/s l/s; do
	name=swap-${leg%%/*}
	EPOLLCR_LOG=2 EPOLLCR_DIR=$WORK/$leg start "$name" "$PROG" || { fail "$name: behind did not start"; continue; }
	pid=$STARTED_PID
	sig=$(sed -n 's/^epollcr-sig\([0-9]*\)$/\1/p' /proc/"$pid"/task/*/comm | head -1)
	for ((n = 1; n <= 30; n++)); do
		kill -"$sig" "$pid"
		for ((i = 0; i < 100; i++)); do
			[ "$(grep -c "image written\|no image directory\|failed" "$WORK/$name.err")" -ge "$n" ] && break
			sleep 0.02
		done
	done
	written=$(grep -c "image written" "$WORK/$name.err")
	refused=$(grep -c "no image directory" "$WORK/$name.err")
	failed=$(grep -c "failed" "$WORK/$name.err")
	stop "$pid"
	if [ -z "$(find "$WORK/other" -name "epollcr-*")" ] &&
	   [ $((written + refused + failed)) = 30 ] && [ "$written" -gt 0 ]; then
		pass "$name: 30 dumps under swaps of $leg: $written written in our directory, $refused refused, $failed failed, none in the other user's"
	else
		fail "$name: $written written, $refused refused, $failed failed; in the other user's directory: $(find "$WORK/other" -name "epollcr-*")"
	fi
done
rm -f "$WORK/swapping"
wait "$SWAPPER"

# The same checks for `epollcr dump` into a directory.
if out=$("$CLI" dump --tree -o "$WORK/link-other/t" "$IMG_PID" 2>&1); then
	fail "dump --tree -o under another user's directory succeeded: $out"
else
	case $out in
	*"which belongs to uid 65534"*) pass "dump --tree -o DIR refused: $out" ;;
	*) fail "dump --tree -o DIR: unexpected message: $out" ;;
	esac
fi
[ ! -e "$WORK/other/t" ] && pass "and created nothing there" || fail "dump --tree created $WORK/other/t"
if out=$(EPOLLCR_DIR=$WORK/other/s "$CLI" dump "$IMG_PID" 2>&1); then
	fail "dump into EPOLLCR_DIR under another user's directory succeeded: $out"
else
	pass "dump with EPOLLCR_DIR under another user's directory refused"
fi
if out=$("$CLI" dump --tree -o "$WORK/tree" "$IMG_PID" 2>&1) && [ -f "$WORK/tree/epollcr-$IMG_PID.img" ] &&
   [ "$(stat -c %a "$WORK/tree")" = 700 ]; then
	pass "dump --tree -o a new directory: created 0700, image inside"
else
	fail "dump --tree -o $WORK/tree: $out"
fi
stop "$IMG_PID"
finish
