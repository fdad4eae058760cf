#!/usr/bin/env bash
# Builds (once, then reuses from BENCH_CACHE) the benchmark's test images:
#   v1: a 1 GiB ext4 image made by `mke2fs -d` from a tree of real OS files
#       (binaries, shared libraries, Python and Perl modules, man pages,
#       locales, dpkg's database) copied from this machine, ~340 MiB in all,
#       so that about a third of the image is non-zero like a minimal Debian;
#   v2: v1 edited in place with `debugfs -w` the way a package upgrade plus
#       a small package install would change it: five files replaced by
#       patched copies, ~10 MiB of new files, dpkg's status file rewritten.
#       Everything else keeps its blocks, so v1 -> v2 is a realistic update.
# Records image_v1, image_v2 and image_size in BENCH_RESULTS.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

# Bump when the recipe below changes, so a stale cached image is not reused.
RECIPE=3
SIZE=1G

# Source trees and how many MiB of each to take (in sorted path order, files
# of at most 16 MiB). Trees missing on this machine are skipped.
SOURCES=(
	"/usr/bin 55"
	"/usr/sbin 10"
	"/usr/lib/x86_64-linux-gnu 85"
	"/usr/lib/python3.11 30"
	"/usr/lib/systemd 6"
	"/usr/share/perl 15"
	"/usr/share/locale 15"
	"/usr/share/man 18"
	"/usr/share/doc 15"
	"/usr/share/zoneinfo 5"
	"/usr/share/i18n 8"
	"/etc 5"
	"/var/lib/dpkg 15"
)
MAX_FILE=$((16 * 1024 * 1024))

dir=$BENCH_CACHE
v1=$dir/ext4-r$RECIPE-v1.img
v2=$dir/ext4-r$RECIPE-v2.img
meta=$dir/ext4-r$RECIPE-v1.meta
meta2=$dir/ext4-r$RECIPE-v2.meta
mkdir -p "$dir"
# Images of older recipes are of no further use.
find "$dir" -maxdepth 1 -name 'ext4-r*' ! -name "ext4-r$RECIPE-*" -exec rm -rf {} +

# select_files SRC MIB SKIPFILE: prints "size path" of regular files of SRC,
# in path order, until MIB MiB are taken; the rest (the files not taken) go to
# SKIPFILE, where v2 draws its "newly installed" files from.
select_files() {
	local src=$1 mib=$2 skip=$3
	find "$src" -xdev -type f -readable -size -$((MAX_FILE / 1024 + 1))k -printf '%s %p\n' 2>/dev/null |
		LC_ALL=C sort -k2 |
		awk -v cap=$((mib * 1024 * 1024)) -v skip="$skip" '
			{ if (sum + $1 <= cap) { sum += $1; print } else print >>skip }'
}

# Scratch paths, removed on exit whatever happens.
SCRATCH=()
trap 'rm -rf "${SCRATCH[@]}"' EXIT

build_v1() {
	local stage list skip tmp total
	stage=$(mktemp -d "$dir/stage.XXXXXX")
	list=$stage.list
	skip=$stage.skip
	tmp=$v1.tmp
	SCRATCH+=("$stage" "$list" "$skip" "$tmp" "$stage.log")
	: >"$list"
	: >"$skip"
	say "selecting files for the test image"
	local s src mib
	for s in "${SOURCES[@]}"; do
		read -r src mib <<<"$s"
		[ -d "$src" ] || continue
		select_files "$src" "$mib" "$skip" >>"$list"
	done
	total=$(awk '{ s += $1 } END { print s + 0 }' "$list")
	[ "$total" -gt $((50 * 1024 * 1024)) ] || die "found only $(human "$total") of files to build an image from"
	say "copying $(wc -l <"$list") files, $(human "$total"), into a staging tree"
	cut -d' ' -f2- "$list" | tr '\n' '\0' |
		tar --null --no-recursion -T - -cf - 2>/dev/null | tar -xf - -C "$stage"
	say "mke2fs -t ext4 -d TREE IMG $SIZE"
	rm -f "$tmp"
	mke2fs -q -F -t ext4 -L circ-bench -E root_owner=0:0 -d "$stage" "$tmp" "$SIZE" \
		>"$stage.log" 2>&1 || die "mke2fs failed: $(tail -n 3 "$stage.log")"
	rm -f "$stage.log"
	printf 'files=%s\nfile_bytes=%s\n' "$(wc -l <"$list")" "$total" >"$meta"
	mv "$tmp" "$v1"
	# Candidates for v2's new files: files left out of v1, 64 KiB to 2 MiB.
	awk '$1 >= 65536 && $1 <= 2097152' "$skip" >"$dir/ext4-r$RECIPE-extra.list"
	rm -rf "$stage" "$list" "$skip"
}

# The debugfs script that turns v1 into v2, with the files it writes in $1.
build_v2() {
	local files=$1 tmp=$v2.tmp cmds=$1/cmds n=0 f p base d
	SCRATCH+=("$tmp")
	cp --sparse=always "$v1" "$tmp"
	: >"$cmds"
	# An "upgrade": five files of v1 (100 KiB..2 MiB, spread over the tree)
	# replaced by copies with a few KiB patched, written as new files the way
	# dpkg unpacks them.
	while read -r p; do
		n=$((n + 1))
		f=$files/upd$n
		debugfs -R "dump -p $p $f" "$v1" 2>/dev/null
		[ -s "$f" ] || die "debugfs could not read $p from v1"
		printf 'circ bench v2 patch %s' "$p" | dd of="$f" bs=1 seek=$(($(stat -c %s "$f") / 2)) conv=notrunc status=none
		base=${p##*/}
		d=${p%/*}
		printf 'cd %s\nrm %s\nwrite %s %s\n' "$d" "$base" "$f" "$base" >>"$cmds"
	done < <(debugfs -R "ls -p /usr/bin" "$v1" 2>/dev/null |
		awk -F/ '$3 ~ /^10/ && $7 >= 102400 && $7 <= 2097152 { print "/usr/bin/" $6 }' |
		awk '{ f[NR] = $0 } END { step = int(NR / 5); if (step < 1) step = 1;
			for (i = 1; i <= NR && n < 5; i += step) { print f[i]; n++ } }')
	[ "$n" -eq 5 ] || die "found only $n files in v1's /usr/bin to upgrade"
	# An "install": ~10 MiB of new files in a new directory.
	printf 'mkdir /usr/lib/circ-bench-pkg\ncd /usr/lib/circ-bench-pkg\n' >>"$cmds"
	local sum=0 size path i=0
	while read -r size path; do
		[ $((sum + size)) -le $((10 * 1024 * 1024)) ] || continue
		[ -r "$path" ] || continue
		i=$((i + 1))
		cp "$path" "$files/new$i"
		printf 'write %s new%d\n' "$files/new$i" "$i" >>"$cmds"
		sum=$((sum + size))
	done <"$dir/ext4-r$RECIPE-extra.list"
	[ "$sum" -gt $((4 * 1024 * 1024)) ] || say "warning: v2 adds only $(human "$sum") of new files"
	# dpkg's status file grows by a stanza.
	if debugfs -R "dump -p /var/lib/dpkg/status $files/status" "$v1" 2>/dev/null && [ -s "$files/status" ]; then
		printf '\nPackage: circ-bench-pkg\nStatus: install ok installed\nVersion: 2\n' >>"$files/status"
		printf 'cd /var/lib/dpkg\nrm status\nwrite %s status\n' "$files/status" >>"$cmds"
	fi
	debugfs -w -f "$cmds" "$tmp" >"$files/debugfs.log" 2>&1 || die "debugfs -w failed: $(tail -n 3 "$files/debugfs.log")"
	# debugfs reports per-command errors without failing.
	if grep -Eiq 'error|not found|could not|cannot' "$files/debugfs.log"; then
		die "debugfs: $(grep -Ei 'error|not found|could not|cannot' "$files/debugfs.log" | head -n 3)"
	fi
	e2fsck -fn "$tmp" >"$files/fsck.log" 2>&1 || die "v2 does not pass e2fsck -fn: $(tail -n 5 "$files/fsck.log")"
	mv "$tmp" "$v2"
	printf 'v2_upgraded=5\nv2_new_files=%s\nv2_new_bytes=%s\n' "$i" "$sum" >"$meta2"
}

if [ ! -f "$v1" ] || [ ! -f "$meta" ]; then
	build_v1
	rm -f "$v2" "$meta2"
else
	say "reusing cached $v1"
fi
if [ ! -f "$v2" ] || [ ! -f "$meta2" ]; then
	work=$(mktemp -d "$dir/v2.XXXXXX")
	SCRATCH+=("$work")
	say "building v2 with debugfs -w"
	build_v2 "$work"
else
	say "reusing cached $v2"
fi

result image_v1 "$v1"
result image_v2 "$v2"
result image_size "$(stat -c %s "$v1")"
# The recipe's figures: files and bytes in v1's tree, what v2 changes.
while IFS='=' read -r k val; do result "image_$k" "$val"; done < <(cat "$meta" "$meta2")
