#!/usr/bin/env bash
# Booting a real Debian 12 system from circ, under QEMU's software emulation
# (TCG), beside booting a local raw copy of the same image with the same QEMU:
#   the image: images/debian.sh (debootstrap minbase + systemd, the boot
#     kit's kernel modules, 1 GiB ext4), v2 the same made by `--update` (a
#     package installed in place); both kept in BENCH_CACHE; the kernel and
#     initramfs from images/bootkit.sh;
#   a boot: QEMU from exec to the CIRC-MULTI-USER-OK line the image prints on
#     its serial console once multi-user.target is reached (circ.poweroff=1
#     then powers it off); the kernel page cache dropped before each boot;
#   1. cold boot of v1: fresh --state, pull, `circ mount --record-reads`
#      (FUSE), QEMU on MNT/disk.img, beside the raw copy of v1; what circ
#      fetched (circ stats: bytes, blocks, requests) as a share of the image;
#   2. boot prefetch: v2 published with `--prefetch` the blocks boot 1 read;
#      cold boots of v2 with `--no-prefetch` and with the prefetch (mount
#      starts it), beside the raw copy of v2.
# Pull and mount are not timed (they fetch the pointer and the manifest).
# One boot per figure (CIRC_BENCH_BOOT_RUNS=N: N each, interleaved, the median): a TCG
# boot takes tens of seconds, and the part about 3-4 minutes on 2 cores
# (plus 1-2 the first time: debootstrap). Two raw boots of v1 and v2, which
# differ by a package the boot does not touch, show the run-to-run noise.
# Skipped, saying why, without root, /dev/fuse, QEMU, or debootstrap when
# the image is not cached yet.
# Every mount is unmounted, QEMU and nginx stopped on exit, also on failure.
# Usage: bench/boot.sh [BUILD_DIR]   (bench/run.sh calls it; run alone, it
# makes its own scratch directory and uses BUILD_DIR/bench/cache)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/alone.sh
. "$root/bench/alone.sh" boot "${1:-}"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

name=debian
BOOT_TIMEOUT=300 # seconds to power-off; a TCG boot takes ~25-50 s here
RUNS=${CIRC_BENCH_BOOT_RUNS:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "CIRC_BENCH_BOOT_RUNS must be a positive number"
MARKER='CIRC-MULTI-USER-OK'

skip() {
	section "boot: skipped, $1"
	result boot_skipped "$1"
	exit 0
}
[ "$(id -u)" -eq 0 ] || skip "not root (debootstrap, FUSE mounts)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is missing (scripts/deps.sh bench installs it)"
for tool in nginx curl jq; do
	command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh bench installs it)"
done

B=$BENCH_WORK/boot
REPO=$B/repo
mkdir -p "$B"

# --- clean-up: QEMU, every mount, nginx, the scratch files ---------------------

QEMU_PID=''
declare -A MOUNTED=() # mount point -> its state dir
NGINX_PID=''
NGINX_DIR=''
cleanup() {
	local m
	if [ -n "$QEMU_PID" ]; then
		kill -KILL "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
		QEMU_PID=''
	fi
	for m in "${!MOUNTED[@]}"; do
		"$CIRC" --state "${MOUNTED[$m]}" umount "$m" >/dev/null 2>&1 || umount -l "$m" 2>/dev/null || true
	done
	MOUNTED=()
	if [ -n "$NGINX_PID" ]; then
		kill -TERM "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=''
	fi
	[ -z "$NGINX_DIR" ] || rm -rf "$NGINX_DIR"
	rm -rf --one-file-system "$B"
	# Alone, the scratch directory goes too (run.sh removes its own).
	[ -n "${build:-}" ] && rm -rf "$BENCH_WORK"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the images (built once, then reused from BENCH_CACHE) ----------------------

KIT=$BENCH_CACHE/bootkit
"$root/images/bootkit.sh" "$KIT" >"$B/bootkit.log" 2>&1 ||
	die "images/bootkit.sh failed: $(tail -n 3 "$B/bootkit.log")"
KVER=$(cat "$KIT/kernel.release")
# The recipe: the image scripts and the kernel whose modules the image holds.
recipe=$(cat "$root/images/debian.sh" "$root/images/lib.sh" <(echo "$KVER") | sha256sum | cut -c1-12)
IMG1=$BENCH_CACHE/debian-$recipe-v1.img
IMG2=$BENCH_CACHE/debian-$recipe-v2.img
find "$BENCH_CACHE" -maxdepth 1 -name 'debian-*.img' ! -name "debian-$recipe-*" -delete
if [ ! -f "$IMG1" ]; then
	if ! command -v debootstrap >/dev/null && [ -z "$(find "${CIRC_IMAGES_CACHE:-$root/build/images}/debian" \
		-maxdepth 1 -name '*.tar.zst' 2>/dev/null)" ]; then
		skip "debootstrap is missing (scripts/deps.sh bench installs it)"
	fi
	say "building the Debian image with images/debian.sh (debootstrap the first time: a minute or two)"
	rm -f "$IMG2"
	t0=$(now)
	"$root/images/debian.sh" "$IMG1.tmp" --kit "$KIT" >"$B/debian.log" 2>&1 ||
		die "images/debian.sh failed: $(tail -n 3 "$B/debian.log")"
	mv "$IMG1.tmp" "$IMG1"
	say "built in $(calc "$(now) - $t0" 1) s: $(tail -n 1 "$B/debian.log")"
fi
if [ ! -f "$IMG2" ]; then
	say "making v2 with images/debian.sh --update"
	cp --sparse=always "$IMG1" "$IMG2.tmp"
	"$root/images/debian.sh" "$IMG2.tmp" --update >"$B/debian.log" 2>&1 ||
		die "images/debian.sh --update failed: $(tail -n 3 "$B/debian.log")"
	mv "$IMG2.tmp" "$IMG2"
	say "$(tail -n 1 "$B/debian.log")"
fi
IMG_SIZE=$(stat -c %s "$IMG1")
IMG_USED=$(du -B1 "$IMG1" | cut -f1)
# Private copies of the boot kit, as run.sh does for circ.
cp "$KIT/vmlinuz" "$KIT/initrd.img" "$B/"

# --- the page cache ---------------------------------------------------------------

DROP=no
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	DROP=yes
fi
drop_caches() {
	[ "$DROP" = yes ] || return 0
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# --- a boot -------------------------------------------------------------------------

QEMU=(qemu-system-x86_64 -accel tcg -m 1G -nographic -no-reboot -nic none
	-kernel "$B/vmlinuz" -initrd "$B/initrd.img"
	-append "console=ttyS0 root=/dev/vda circ.poweroff=1")

# boot_fail KEY WHY: fails the run, keeping the boot's serial log.
boot_fail() {
	local keep=$BENCH_CACHE/boot-$1.failed.log
	cp "$B/$1.log" "$keep" 2>/dev/null || true
	die "$1: $2; serial log (kept in $keep) ends: $(tail -n 2 "$B/$1.log" | tr -d '\r' | tr '\n' ' ')"
}

# boot KEY DISKFILE VERSION: boots DISKFILE (the page cache dropped first),
# polling the serial log for the marker; T[KEY] and TXT[KEY]: seconds from
# exec to the marker; OFF[KEY]: to QEMU's exit (the guest powered off);
# UP[KEY]: the guest's own uptime at the marker.
declare -gA OFF=() UP=() ALL=()
boot() {
	local key=$1 disk=$2 want=$3 log=$B/$1.log t0 tm='' now_s rc=0 ver start=$SECONDS
	drop_caches
	t0=$(now)
	"${QEMU[@]}" -drive "file=$disk,format=raw,if=virtio" </dev/null >"$log" 2>&1 &
	QEMU_PID=$!
	while kill -0 "$QEMU_PID" 2>/dev/null; do
		now_s=$(now)
		if [ -z "$tm" ] && grep -aq "$MARKER version=" "$log"; then
			tm=$now_s
		fi
		if [ $((SECONDS - start)) -gt "$BOOT_TIMEOUT" ]; then
			kill -KILL "$QEMU_PID" 2>/dev/null || true
			boot_fail "$key" "no power-off within $BOOT_TIMEOUT s (marker: ${tm:-none})"
		fi
		sleep 0.05
	done
	wait "$QEMU_PID" || rc=$?
	QEMU_PID=''
	OFF[$key]=$(calc "$(now) - $t0" 3)
	[ -n "$tm" ] || tm=$(now)
	grep -aq "$MARKER version=" "$log" || boot_fail "$key" "QEMU exited ($rc) without $MARKER"
	[ "$rc" -eq 0 ] || boot_fail "$key" "QEMU exited with status $rc"
	ver=$(sed -n "s/.*$MARKER version=\([0-9]*\).*/\1/p" "$log" | head -n 1)
	[ "$ver" = "$want" ] || boot_fail "$key" "booted version '$ver', expected $want"
	UP[$key]=$(sed -n "s/.*$MARKER .*uptime=\([0-9.]*\).*/\1/p" "$log" | head -n 1)
	T[$key]=$(calc "$tm - $t0" 3)
	TXT[$key]="$(calc "${T[$key]}" 1) s"
	ALL[$key]="${ALL[$key]:-} ${T[$key]}"
	say "$key: marker after ${TXT[$key]} (guest uptime ${UP[$key]} s), powered off after $(calc "${OFF[$key]}" 1) s"
}

# boot_raw KEY IMG VERSION: boots a fresh raw copy of IMG.
boot_raw() {
	cp --sparse=always "$2" "$B/raw.img"
	boot "$1" "$B/raw.img" "$3"
	rm -f "$B/raw.img"
}

# --- circ disks ---------------------------------------------------------------------

# boot_circ KEY STATE VERSION [MOUNT OPTIONS]: a fresh STATE, pull, mount
# (with the options), boot MNT/disk.img, umount; the disk's final stats in
# FB[KEY] (fetched bytes), FK[KEY] (blocks), FR[KEY] (requests), and what
# nginx logged for the boot in WR[KEY] and WB[KEY].
declare -gA FB=() FK=() FR=() WR=() WB=()
boot_circ() {
	local key=$1 s=$2 want=$3 mnt=$B/mnt mark st r b
	shift 3
	rm -rf "$s"
	"$CIRC" --state "$s" pull "$NGINX_URL" "$name" --key "$PUB" >/dev/null 2>"$B/pull.err" ||
		die "circ pull failed: $(tail -n 3 "$B/pull.err")"
	mkdir -p "$mnt"
	mark=$(nginx_log_mark)
	"$CIRC" --state "$s" mount "$name" "$mnt" "$@" >/dev/null 2>"$B/mount.err" ||
		die "circ mount failed: $(tail -n 3 "$B/mount.err")"
	MOUNTED[$mnt]=$s
	[ -f "$mnt/disk.img" ] || die "circ mount: no $mnt/disk.img"
	boot "$key" "$mnt/disk.img" "$want"
	"$CIRC" --state "$s" umount "$mnt" >/dev/null 2>"$B/umount.err" ||
		die "circ umount failed: $(tail -n 3 "$B/umount.err")"
	unset "MOUNTED[$mnt]"
	read -r r b <<<"$(nginx_log_since "$mark")"
	WR[$key]=$r WB[$key]=$b
	st=$("$CIRC" --state "$s" stats "$name" --json)
	FB[$key]=$(jq -r '.disks[0].fetched_bytes' <<<"$st")
	FK[$key]=$(jq -r '.disks[0].fetched_blocks' <<<"$st")
	FR[$key]=$(jq -r '.disks[0].requests' <<<"$st")
	rm -rf "$s"
}

bench_key
BS=65536
say "circ publish v1 into a fresh repo (64K blocks)"
time_once pub1 "$B/pub.err" "$CIRC" publish --repo "$REPO" --key "$KEY" --name "$name" "$IMG1"
say "starting nginx on loopback (access log on)"
start_nginx "$REPO" "/images/$name/latest" "" log

nb=0 total=$((5 * RUNS))
next() { nb=$((nb + 1)) && say "boot $nb/$total: $*"; }
for r in $(seq 1 "$RUNS"); do
	next "raw copy of v1"
	boot_raw raw1 "$IMG1" 1
	if [ "$r" -eq 1 ]; then
		next "circ, cold, v1, recording the blocks it reads"
		boot_circ cold "$B/s1" 1 --record-reads "$B/reads"
	else
		next "circ, cold, v1"
		boot_circ cold "$B/s1" 1
	fi
done
[ -s "$B/reads" ] || die "circ mount --record-reads wrote no $B/reads"
NREADS=$(sort -u "$B/reads" | wc -l)

say "circ publish v2 (images/debian.sh --update of v1) with --prefetch (the $NREADS blocks the cold boot of v1 read)"
time_once pub2 "$B/pub.err" "$CIRC" publish --repo "$REPO" --key "$KEY" --name "$name" --prefetch "$B/reads" "$IMG2"
# 64K blocks that differ between v1 and v2 (cmp exits 1 when files differ).
changed=$({ cmp -l "$IMG1" "$IMG2" || true; } | awk -v bs=$BS '{ print int(($1 - 1) / bs) }' | uniq | sort -u | wc -l)

for _ in $(seq 1 "$RUNS"); do
	next "raw copy of v2"
	boot_raw raw2 "$IMG2" 2
	next "circ, cold, v2, --no-prefetch"
	boot_circ nopre "$B/s2" 2 --no-prefetch
	next "circ, cold, v2, prefetching"
	boot_circ pre "$B/s3" 2
done

# --- the figures ----------------------------------------------------------------------

# Several boots each: the median, as this machine's noise asks (the others beside it).
for k in raw1 cold raw2 nopre pre; do
	[ "$RUNS" -gt 1 ] || continue
	# shellcheck disable=SC2086 # the list of times is words
	T[$k]=$(median ${ALL[$k]})
	TXT[$k]="$(calc "${T[$k]}" 1) s (median of:$(printf ' %.1f' ${ALL[$k]}))"
done
pct() { calc "100 * $1 / $IMG_SIZE" 1; }
# fetched KEY: "48.9 MiB in 2438 req, 2438 blocks (14.9%)"
fetched() {
	printf '%s in %s req, %s blocks (%s%%)' "$(human "${FB[$1]}")" "${FR[$1]}" "${FK[$1]}" "$(pct "$((${FK[$1]} * BS))")"
}
if [ "$RUNS" -eq 1 ]; then per="one boot per figure (a TCG boot takes tens of seconds)"; else per="the median of $RUNS boots"; fi
section "boot: Debian 12 from circ under QEMU TCG to $MARKER, beside a local raw copy; $per"
printf '  image: images/debian.sh, debootstrap minbase + systemd and kernel %s'"'"'s modules, %s ext4\n' \
	"$KVER" "$(human "$IMG_SIZE")"
printf '  (%s allocated); v2: --update, a package installed in place, %s 64K blocks differ from v1\n' \
	"$(human "$IMG_USED")" "$changed"
printf '  timed: QEMU %s exec to the marker (multi-user.target reached), -accel tcg -m 1G, kernel and\n' \
	"$(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')"
printf '  initramfs of images/bootkit.sh; page cache dropped before each boot: %s\n' "$DROP"
printf '  circ: fresh --state, pull and mount (not timed), QEMU on MNT/disk.img, blocks from nginx on\n'
printf '  loopback; raw: QEMU on a fresh local copy of the same image\n'
row "cold boot v1" circ cold raw raw1
row "cold boot v2, --no-prefetch" circ nopre raw raw2
row "cold boot v2, prefetch" circ pre raw raw2
line "prefetch vs none (v2)" prefetch "${TXT[pre]}" none "${TXT[nopre]}" "$(ratio "${T[pre]}" "${T[nopre]}")"
line "noise: raw v2 vs raw v1" "raw v2" "${TXT[raw2]}" "raw v1" "${TXT[raw1]}" "$(ratio "${T[raw2]}" "${T[raw1]}")"
printf '  %-32s %s\n' "boot v1 read (--record-reads)" \
	"$NREADS distinct 64K blocks, $(human "$((NREADS * BS))"), $(pct "$((NREADS * BS))")% of the image"
printf '  %-32s %s\n' "fetched, cold v1" "$(fetched cold)"
printf '  %-32s %s\n' "fetched, cold v2 --no-prefetch" "$(fetched nopre)"
printf '  %-32s %s\n' "fetched, cold v2 prefetch" "$(fetched pre)"
printf '  (the noise line: two boots of images that differ by a package the boot does not touch;\n'
printf '   fetched: circ stats per boot: compressed bytes, requests, distinct 64K blocks and their share\n'
printf '   of the image, read-ahead included; nginx logged %s req / %s, %s / %s and %s / %s;\n' \
	"${WR[cold]}" "$(human "${WB[cold]}")" "${WR[nopre]}" "$(human "${WB[nopre]}")" "${WR[pre]}" "$(human "${WB[pre]}")"
printf '   publish took %s (v1), %s (v2 with the prefetch list); QEMU exited after power-off at %s s\n' \
	"${TXT[pub1]}" "${TXT[pub2]}" "$(calc "${OFF[raw1]}" 1)"
printf '   (raw v1), %s s (circ v1); guest uptime at the marker: raw %s s, circ %s s (v1))\n' \
	"$(calc "${OFF[cold]}" 1)" "${UP[raw1]}" "${UP[cold]}"

result boot_image_size "$IMG_SIZE"
result boot_raw_s "${T[raw1]}"
result boot_cold_s "${T[cold]}"
result boot_cold_bytes "${FB[cold]}"
result boot_cold_requests "${FR[cold]}"
result boot_cold_blocks "${FK[cold]}"
result boot_read_blocks "$NREADS"
result boot_raw2_s "${T[raw2]}"
result boot_nopre_s "${T[nopre]}"
result boot_pre_s "${T[pre]}"
result boot_pre_bytes "${FB[pre]}"
result boot_pre_requests "${FR[pre]}"
