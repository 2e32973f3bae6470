#!/usr/bin/env bash
# bash completion (completion/epollcr.bash), sourced into a clean bash as
# bash-completion would: COMP_WORDS/COMP_CWORD in, COMPREPLY out.
# - the commands, and for every command exactly the options its --help
#   shows (read from the binary, not from a list of ours);
# - option values (--targets=, --missing= in both word splittings, --signal);
# - images and directories for show/verify/restore, a command after
#   `run --` and after `restore --exec IMAGE`;
# - for dump, the pids of processes with epoll sets (with or without the
#   shim), and not others.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

script=$TOP/completion/epollcr.bash
[ -f "$script" ] || { fail "$script is missing"; finish; }

# complete WORD...: the sorted COMPREPLY for the command line WORD...,
# whose last word is the one being completed (run in $WORK).
complete_words() {
	(cd "$WORK" && bash --norc --noprofile -c '
		. "$1" || exit 1
		shift
		[ "$(complete -p epollcr)" = "complete -F _epollcr epollcr" ] ||
			{ echo "not registered: $(complete -p epollcr 2>&1)"; exit 1; }
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		_epollcr epollcr "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort -u | xargs' _ "$script" "$@")
}

# expect "WORDS" EXPECTED: COMPREPLY for WORDS (split on spaces; a final
# empty word is written as '') must be EXPECTED (sorted, space-separated).
expect() {
	local -a words
	read -r -a words <<<"$1"
	[[ $1 == *"''" ]] && words[${#words[@]} - 1]=''
	local got
	got=$(complete_words "${words[@]}")
	[ "$got" = "$2" ] && pass "'$1' -> $got" ||
		fail "'$1' completed to [$got], expected [$2]"
}

expect "epollcr ''" "--help --version dump ps restore run show verify"
expect "epollcr re" "restore"
expect "epollcr dump --t" "--timeout --tree"
expect "epollcr restore --t" "--targets= --trust-image"
expect "epollcr restore --ta" "--targets="
expect "epollcr restore --targets = ''" "existing recreate"
expect "epollcr restore --targets = ex" "existing"
expect "epollcr restore --missing=s" "--missing=skip"
expect "epollcr run --signal US" "USR1 USR2"
expect "epollcr run --signal RTMAX-3 --backtrace 1" "16"

# Every option of every command's --help, and nothing else.
for cmd in run dump show verify restore ps; do
	# The options of the usage lines (up to the first blank line) and
	# those the option lines start with.
	help=$("$CLI" $cmd --help)
	want=$( (sed '/^$/q' <<<"$help" | grep -oE -- '--[a-z][a-z0-9-]*=?'
		grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z0-9-]*=?' <<<"$help" |
			sed 's/^.* //') | sort -u)
	# restore's usage shows "--targets=recreate": the completion offers
	# "--targets=" and the values after it.
	want=$( (echo "$want"; echo --help; echo --version; [ $cmd = run ] && echo --) |
		sort -u | xargs)
	expect "epollcr $cmd --" "$want"
done

# Files: images and directories only, for show/verify/restore.
mkdir -p "$WORK/imgs/sub"
touch "$WORK/imgs/a.img" "$WORK/imgs/b.img" "$WORK/imgs/notes.txt"
expect "epollcr show imgs/" "imgs/a.img imgs/b.img imgs/sub"
expect "epollcr verify --pid 1 imgs/a" "imgs/a.img"
expect "epollcr restore --exec imgs/" "imgs/a.img imgs/b.img imgs/sub"
# A command after `run --`, after `run OPTIONS`, after --exec IMAGE.
expect "epollcr run -- trun" "truncate"
expect "epollcr run --dir imgs trun" "truncate"
expect "epollcr restore --exec imgs/a.img trun" "truncate"
# Options after --exec, then IMAGE, then CMD, maybe after --.
expect "epollcr restore --exec --missing=skip imgs/" "imgs/a.img imgs/b.img imgs/sub"
expect "epollcr restore --exec --missing=skip imgs/a.img trun" "truncate"
expect "epollcr restore --exec imgs/a.img -- trun" "truncate"
expect "epollcr restore --force-bind --exec imgs/a.img -- trun" "truncate"
expect "epollcr restore --f" "--force-bind"
expect "epollcr run -- ls imgs/n" "imgs/notes.txt"

# dump PID: processes with epoll sets are offered, with or without the
# shim; one without epoll sets is not.
READY=listening start server "$TOP/$BUILD/examples/epoll-server" 0 ||
	{ fail "epoll-server did not start under the shim"; finish; }
shim_pid=$STARTED_PID
"$PROGS/kernel_target" >"$WORK/kt.out" &
noshim_pid=$!
PIDS+=("$noshim_pid")
wait_for "$WORK/kt.out" ready 20 || fail "kernel_target did not start"
sleep 30 &
plain_pid=$!
PIDS+=("$plain_pid")
got=" $(complete_words epollcr dump '') "
[[ $got == *" $shim_pid "* ]] && pass "dump offers pid $shim_pid (runs the shim)" ||
	fail "dump did not offer pid $shim_pid, which runs the shim: [$got]"
[[ $got == *" $noshim_pid "* ]] && pass "dump offers pid $noshim_pid (epoll sets, no shim)" ||
	fail "dump did not offer pid $noshim_pid, which has epoll sets: [$got]"
[[ $got != *" $plain_pid "* ]] && pass "dump does not offer pid $plain_pid (no epoll set)" ||
	fail "dump offered pid $plain_pid, which has no epoll set"
stop "$shim_pid"
kill "$noshim_pid" "$plain_pid" 2>/dev/null
finish
