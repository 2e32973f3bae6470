# bash completion for epollcr(1): subcommands, their options and option
# values, pids of processes that hold epoll sets (dump) or any process
# (verify --pid), images, and commands after `run --` and
# `restore --exec IMAGE`.  Self-contained: it needs no bash-completion
# helper.  Installed as share/bash-completion/completions/epollcr.

# The pids whose /proc/PID/fd (readable by us) hold an epoll fd: what
# `epollcr dump` can read, with or without the shim.
_epollcr_epoll_pids()
{
	local fd pid
	for pid in /proc/[0-9]*; do
		for fd in "$pid"/fd/*; do
			[[ $(readlink "$fd" 2>/dev/null) == 'anon_inode:[eventpoll]' ]] && {
				echo "${pid#/proc/}"
				break
			}
		done
	done
}

# Append to COMPREPLY what `compgen ARG...` prints, one word per line (so
# that file names with spaces stay whole).
_epollcr_reply()
{
	local word
	while IFS= read -r word; do
		COMPREPLY+=("$word")
	done < <(compgen "$@" 2>/dev/null)
}

# The same for file names: let readline quote them and mark directories.
_epollcr_files()
{
	_epollcr_reply "$@"
	compopt -o filenames 2>/dev/null
}

# Images (*.img) and directories under the word being completed.
_epollcr_images()
{
	_epollcr_files -d -- "$1"
	_epollcr_files -f -X '!*.img' -- "$1"
}

_epollcr()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= i
	COMPREPLY=()
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}

	# With '=' in COMP_WORDBREAKS (the default), "--targets=re" arrives as
	# three words, "--targets" "=" "re", and readline replaces "re" only.
	# Without it, it is one word, replaced whole: keep the "--targets=".
	local opt_eq= keep=
	if [[ $cur == = ]]; then
		opt_eq=$prev cur=
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		opt_eq=${COMP_WORDS[COMP_CWORD - 2]}
	elif [[ $cur == --*=* ]]; then
		opt_eq=${cur%%=*} keep=${cur%%=*}= cur=${cur#*=}
	fi

	if ((COMP_CWORD == 1)); then
		_epollcr_reply -W 'run dump show verify restore ps --help --version' -- "$cur"
		return 0
	fi
	cmd=${COMP_WORDS[1]}

	# The command of `run [OPTION...] [--] CMD` (its first word that is
	# neither an option nor an option's value) or of `restore ... --exec
	# IMAGE CMD`: a command there, then whatever it takes (files).
	local after=-1 w image=-1 has_exec=
	for ((i = 2; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $cmd == run ]]; then
			case $w in
			--)
				after=$((i + 1))
				break ;;
			-s | -d | -b | -l | --signal | --dir | --backtrace | --lib)
				[[ ${COMP_WORDS[i + 1]-} == = ]] && ((i++))
				((i++)) ;;
			-*) ;;
			*)
				after=$i
				break ;;
			esac
		elif [[ $cmd == restore ]]; then
			# Options anywhere before IMAGE; with --exec, CMD follows
			# IMAGE, maybe after --.
			case $w in
			--exec) has_exec=1 ;;
			--targets | --missing)
				[[ ${COMP_WORDS[i + 1]-} == = ]] && ((i += 2)) ;;
			-*) ;;
			*)
				image=$i
				break ;;
			esac
		fi
	done
	if [[ $cmd == restore && -n ${has_exec-} ]]; then
		if ((image < 0)); then
			[[ $cur != -* ]] && { _epollcr_images "$cur"; return 0; }
		else
			after=$((image + 1))
			[[ ${COMP_WORDS[after]-} == -- ]] && ((COMP_CWORD > after)) &&
				after=$((after + 1))
		fi
	fi
	if ((after >= 0)); then
		if ((COMP_CWORD == after)); then
			_epollcr_reply -c -- "$cur"
		else
			_epollcr_files -f -- "$cur"
		fi
		return 0
	fi

	local values=
	case $cmd:$opt_eq in
	restore:--targets) values='recreate existing' ;;
	restore:--missing) values='fail skip' ;;
	esac
	if [[ -n $values ]]; then
		_epollcr_reply -W "$values" -P "$keep" -- "$cur"
		return 0
	fi

	case $cmd:$prev in
	run:--signal | run:-s | dump:--signal | dump:-s | verify:--signal | verify:-s)
		_epollcr_reply -W 'RTMAX-3 RTMAX-1 RTMAX-2 RTMIN+1 RTMIN+2 USR1 USR2 PWR WINCH URG SYS' -- "$cur"
		return 0 ;;
	run:--dir | run:-d)
		_epollcr_files -d -- "$cur"
		return 0 ;;
	run:--backtrace | run:-b)
		_epollcr_reply -W '0 4 8 16 32' -- "$cur"
		return 0 ;;
	run:--lib | run:-l)
		_epollcr_files -f -- "$cur"
		return 0 ;;
	dump:--output | dump:-o)
		_epollcr_files -f -- "$cur"
		return 0 ;;
	dump:--timeout | dump:-t | verify:--timeout | verify:-t)
		_epollcr_reply -W '1 5 10 30 60' -- "$cur"
		return 0 ;;
	dump:--reads | dump:-r)
		_epollcr_reply -W '2 3 5 10 20' -- "$cur"
		return 0 ;;
	verify:--pid | verify:-p)
		_epollcr_reply -W "$(cd /proc && compgen -G '[0-9]*')" -- "$cur"
		return 0 ;;
	esac

	if [[ $cur == -* ]]; then
		local opts
		case $cmd in
		run) opts='--signal --dir --backtrace --lib --help --version --' ;;
		dump) opts='--output --timeout --signal --kernel --freeze --reads --tree --help --version' ;;
		ps) opts='--json --help --version' ;;
		show) opts='--json --no-addr2line --help --version' ;;
		verify) opts='--pid --kernel --timeout --signal --help --version' ;;
		restore) opts='--targets= --missing= --force-bind --hold --exec --trust-image --help --version' ;;
		*) return 0 ;;
		esac
		_epollcr_reply -W "$opts" -- "$cur"
		# No space after an option that takes its value after '='.
		[[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] &&
			compopt -o nospace 2>/dev/null
		return 0
	fi

	case $cmd in
	run)
		_epollcr_files -c -- "$cur" ;;
	dump)
		_epollcr_reply -W "$(_epollcr_epoll_pids)" -- "$cur" ;;
	show | verify | restore)
		_epollcr_images "$cur" ;;
	esac
	return 0
}

complete -F _epollcr epollcr
