# bash completion for circ: commands, each command's options, local disk
# names and circ's mountpoints. The commands and options come from circ's
# own --help, so they are the installed circ's, whatever its version.
# shellcheck shell=bash

# The commands `circ --help` lists.
_circ_commands() {
	"${1:-circ}" --help 2>/dev/null | awk '
		/^Commands:|^Cold migration/ { inlist = 1; next }
		/^Options for every command:/ { inlist = 0 }
		inlist && /^  [a-z]+/ { print $1 }' | sort -u
}

# The long options of `circ COMMAND --help`, and those of every command.
_circ_options() {
	{
		"$1" "$2" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*'
		printf '%s\n' --state --verbose --help
	} | sort -u
}

# The local disks of the state directory in use (`circ ls`'s first column).
_circ_disks() {
	"$@" ls 2>/dev/null | awk 'NR > 1 { print $1 }'
}

# Mountpoints of circ disks (fuse.circ), as /proc/mounts escapes them.
_circ_mountpoints() {
	awk '$3 == "fuse.circ" { gsub(/\\040/, " ", $2); print $2 }' /proc/mounts 2>/dev/null
}

_circ() {
	local cur prev cmd="" i state=() circ=${COMP_WORDS[0]}
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()
	# The command: the first word that is neither an option nor --state's argument.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--state)
			state=(--state "${COMP_WORDS[i + 1]}")
			((i++))
			;;
		--state=*) state=("${COMP_WORDS[i]}") ;;
		-*) ;;
		*)
			cmd=${COMP_WORDS[i]}
			break
			;;
		esac
	done
	case $prev in
	--state | --repo | --cache | --dir)
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	--key | --kernel | --initrd | --disk-file | --users | --*-file)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	--vmm)
		mapfile -t COMPREPLY < <(compgen -W "auto hv qemu" -- "$cur")
		return
		;;
	--net)
		mapfile -t COMPREPLY < <(compgen -W "none user user,restrict tap:" -- "$cur")
		return
		;;
	--display)
		mapfile -t COMPREPLY < <(compgen -W "none vnc" -- "$cur")
		return
		;;
	--disk)
		mapfile -t COMPREPLY < <(compgen -W "$(_circ_disks "$circ" "${state[@]}")" -- "$cur")
		return
		;;
	esac
	if [ -z "$cmd" ]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--state --verbose --help --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$(_circ_commands "$circ")" -- "$cur")
		fi
		return
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_circ_options "$circ" "$cmd")" -- "$cur")
		return
	fi
	case $cmd in
	umount)
		local IFS=$'\n'
		mapfile -t COMPREPLY < <(compgen -W "$(_circ_mountpoints)" -- "$cur")
		;;
	mount | update | stats | rm | fetch | remote | push | log | lease | run | create)
		# The disk first; a mount's second word is a directory.
		if [ "$cmd" = mount ] && [ "$prev" != mount ] && [[ $prev != -* ]]; then
			mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		elif [ "$cmd" != create ]; then
			mapfile -t COMPREPLY < <(compgen -W "$(_circ_disks "$circ" "${state[@]}")" -- "$cur")
		fi
		;;
	keygen | publish | verify | serve | config | checkout | pull | ls)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		;;
	esac
}

complete -F _circ circ
