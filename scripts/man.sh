#!/usr/bin/env bash
# Writes circ's man pages from its own --help, so they cannot drift from it
# (help2man: the pages are the help text, set as a man page): circ.1 from
# `circ --help`, and circ-COMMAND.1 from `circ COMMAND --help` for each
# command that `circ --help` lists, named after its line there.
# Usage: scripts/man.sh CIRC OUTDIR
set -euo pipefail

[ $# -eq 2 ] || {
	echo "usage: scripts/man.sh CIRC OUTDIR" >&2
	exit 2
}
circ=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$2
command -v help2man >/dev/null || {
	echo "man.sh: help2man is missing (scripts/deps.sh build installs it)" >&2
	exit 1
}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

version=$("$circ" --version | cut -d' ' -f2)
# Each command and the words of its line in `circ --help`: the usage, then
# the description (on the same line after the gap, or on the next line).
"$circ" --help | awk '
	/^Commands:|^Cold migration/ { inlist = 1; next }
	/^Options for every command:/ { inlist = 0 }
	!inlist { next }
	/^  [a-z]+ / || /^  [a-z]+$/ {
		line = substr($0, 3); cmd = $1
		split(line, parts, /   +/)
		if (parts[2] != "") { if (!(cmd in desc)) { desc[cmd] = parts[2]; order[++n] = cmd } }
		else { pending = cmd }
		next
	}
	/^                    / && pending != "" {
		sub(/^ +/, "")
		if (!(pending in desc)) { desc[pending] = $0; order[++n] = pending }
		pending = ""
	}
	END { for (i = 1; i <= n; i++) print order[i] "\t" desc[order[i]] }
' >"$work/commands"
[ -s "$work/commands" ] || {
	echo "man.sh: no commands in 'circ --help'" >&2
	exit 1
}

{
	echo "[SEE ALSO]"
	cut -f1 "$work/commands" | sed 's/.*/.BR circ-&\\ (1),/' | sed '$ s/,$//'
} >"$work/see-also"
help2man --no-info --version-string="$version" --section=1 --source="circ $version" \
	--manual="circ manual" --name="circulate operating-system disk images" \
	--include="$work/see-also" --output="$out/circ.1" "$circ"
while IFS=$'\t' read -r cmd desc; do
	# help2man runs the program it documents: a wrapper makes "circ CMD" one.
	printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$circ" "$cmd" >"$work/circ-$cmd"
	chmod +x "$work/circ-$cmd"
	printf '[SEE ALSO]\n.BR circ (1)\n' >"$work/see-also-$cmd"
	help2man --no-info --version-string="$version" --section=1 --source="circ $version" \
		--manual="circ manual" --name="$desc" --include="$work/see-also-$cmd" \
		--output="$out/circ-$cmd.1" "$work/circ-$cmd"
done <"$work/commands"
echo "man.sh: $(($(wc -l <"$work/commands") + 1)) pages in $out"
