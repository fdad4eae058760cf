#!/usr/bin/env bash
# The lazy disk: the test image published (64K blocks) into a fresh repo that
# nginx serves on loopback, pulled into a fresh --state and mounted with
# `circ mount` (FUSE), beside peers measured in the same run:
#   1. cold read of the whole disk.img, beside curl fetching the same objects
#      (8 in flight) and `casync extract` of the same image from a chunk store
#      on the same nginx; and of a 256 MiB image of random bytes beside curl
#      fetching its objects (4 in flight);
#   2. warm reads with fio (1 MiB sequential, 4 KiB random) on a disk whose
#      blocks are all cached, the kernel page cache dropped before each run,
#      beside the same jobs on a raw local copy of the image, read directly
#      and through libfuse's passthrough example (FUSE's own ceiling); and
#      the same disk read in-process through the vdisk API, as hv reads it
#      (bench/vdisk_bench.c), beside pread of the raw copy;
#   3. `circ update` v1 -> v2 of a disk that has read all of v1, beside
#      `casync extract --seed=v1.img` of v2 (bytes and requests from nginx's
#      access log);
#   4. random 4 KiB writes into the overlay with an fsync every 64, beside
#      the same on a raw file.
# Every disk is unmounted and nginx stopped on exit, also when something fails.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "${1:-${CIRC_BUILD:-build}}" && pwd)

if [ ! -c /dev/fuse ]; then
	section "lazy disk: skipped, no /dev/fuse"
	result disk_skipped "no /dev/fuse"
	exit 0
fi
bench_images
bench_key
W=$BENCH_WORK
D=$W/disk
REPO=$D/repo
name=$BENCH_NAME
FIO_RAND_S=10
mkdir -p "$D"

# --- clean-up: every mount, nginx, the big scratch files ----------------------

declare -A MOUNTED=() # mount point -> its state dir
NGINX_PID=''
NGINX_DIR=''
cleanup() {
	local m
	for m in "${!MOUNTED[@]}"; do
		if [ "${MOUNTED[$m]}" = pass ]; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		else
			"$CIRC" --state "${MOUNTED[$m]}" umount "$m" >/dev/null 2>&1 || umount -l "$m" 2>/dev/null || true
		fi
	done
	MOUNTED=()
	if [ -n "$NGINX_PID" ]; then
		kill -TERM "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=''
	fi
	[ -z "$NGINX_DIR" ] || rm -rf "$NGINX_DIR"
	rm -rf --one-file-system "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- disks --------------------------------------------------------------------

# disk_pull STATE: a fresh state dir STATE with disk $name pulled from nginx.
disk_pull() {
	rm -rf "$1"
	"$CIRC" --state "$1" pull "$NGINX_URL" "$name" --key "$PUB" >/dev/null 2>"$D/pull.err" ||
		die "circ pull failed: $(tail -n 3 "$D/pull.err")"
}

# disk_mount STATE MNT: mounts disk $name of STATE at MNT (MNT/disk.img).
disk_mount() {
	mkdir -p "$2"
	"$CIRC" --state "$1" mount "$name" "$2" >/dev/null 2>"$D/mount.err" ||
		die "circ mount failed: $(tail -n 3 "$D/mount.err")"
	MOUNTED[$2]=$1
	[ -f "$2/disk.img" ] || die "circ mount: no $2/disk.img"
}

# disk_umount MNT: flushes and unmounts; circ umount waits for the mount
# process to exit, so the disk's stats are final afterwards.
disk_umount() {
	"$CIRC" --state "${MOUNTED[$1]}" umount "$1" >/dev/null 2>"$D/umount.err" ||
		die "circ umount failed: $(tail -n 3 "$D/umount.err")"
	unset "MOUNTED[$1]"
}

# disk_stat STATE FIELD: FIELD of `circ stats --json` for disk $name.
disk_stat() {
	"$CIRC" --state "$1" stats "$name" --json | jq -r ".disks[0].$2"
}

# --- the page cache -------------------------------------------------------------

DROP=no
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	DROP=yes
fi
# drop_caches: empties the kernel page cache (whole machine), if permitted.
drop_caches() {
	[ "$DROP" = yes ] || return 0
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# --- fio ----------------------------------------------------------------------

# fio_run OUT ARGS...: one fio job, its JSON report in OUT.
fio_run() {
	local out=$1
	shift
	fio --output-format=json --output="$out" "$@" >/dev/null 2>"$out.err" ||
		die "fio failed: fio $*: $(tail -n 3 "$out.err")"
}
# fio_get OUT EXPR: a field of job 0 of a report, e.g. read.bw_bytes.
fio_get() { jq -r ".jobs[0].$2" "$1"; }

# --- the repo, the casync store, nginx ----------------------------------------

# publish.sh left a casync store with v1's and v2's chunks and both indexes;
# make them if it did not (this script run alone).
STORE=$W/casync.store
CAIBX1=$W/v1.caibx
CAIBX2=$W/v2.caibx
if [ ! -f "$CAIBX1" ] || [ ! -f "$CAIBX2" ] || [ ! -d "$STORE" ]; then
	say "casync make v1 and v2 into a store"
	STORE=$D/casync.store CAIBX1=$D/v1.caibx CAIBX2=$D/v2.caibx
	casync make --store="$STORE" "$CAIBX1" "$IMG1" >/dev/null 2>"$D/casync.err" ||
		die "casync make failed: $(tail -n 3 "$D/casync.err")"
	casync make --store="$STORE" "$CAIBX2" "$IMG2" >/dev/null 2>"$D/casync.err" ||
		die "casync make failed: $(tail -n 3 "$D/casync.err")"
fi

say "circ publish v1 into a fresh repo (64K blocks)"
"$CIRC" publish --repo "$REPO" --key "$KEY" --name "$name" "$IMG1" >/dev/null 2>"$D/pub.err" ||
	die "circ publish failed: $(tail -n 3 "$D/pub.err")"

say "starting nginx on loopback (repo, casync store and indexes; access log on)"
start_nginx "$REPO" "/images/$name/latest" \
	"location /store/ { alias $STORE/; } location = /v1.caibx { alias $CAIBX1; } location = /v2.caibx { alias $CAIBX2; }" log
CAS_STORE_URL=$NGINX_URL/store/
casx() { printf "casync extract --store='%s' %s '%s'" "$CAS_STORE_URL" "$*" "$D/cas.out"; }

# === 1. cold read =============================================================

# The objects circ fetches for v1: the pointer, the manifest, every block (the
# repo holds v1 only).
(cd "$REPO" && find blocks images -type f ! -name '.*' | LC_ALL=C sort) >"$D/objects"
nobj=$(wc -l <"$D/objects")
obytes=$(bytes_of_list "$REPO" "$D/objects")
awk -v b="$NGINX_URL" '{ printf "url = \"%s/%s\"\noutput = \"/dev/null\"\n", b, $0 }' "$D/objects" >"$D/urls"
CURL_B="curl -s --no-progress-meter --parallel --parallel-max 8 --parallel-immediate"
ok=$($CURL_B -w '%{http_code}\n' -K "$D/urls" 2>"$D/curl.err" | grep -c '^200$' || true)
[ "$ok" -eq "$nobj" ] || die "nginx: $ok of $nobj objects answered 200: $(tail -n 2 "$D/curl.err")"

say "circ: fresh state, pull, mount, cat disk.img (timed), umount; $BENCH_RUNS times"
cold=() pullmount=()
for i in $(seq 1 "$BENCH_RUNS"); do
	s=$D/cold$i
	time_once pull "$D/time.err" disk_pull "$s"
	time_once mount "$D/time.err" disk_mount "$s" "$D/mnt"
	pullmount+=("$(calc "${T[pull]} + ${T[mount]}" 3)")
	mark=$(nginx_log_mark)
	time_once cold "$D/cat.err" cat "$D/mnt/disk.img"
	cold+=("${T[cold]}")
	disk_umount "$D/mnt"
	read -r circ_req_log circ_bytes_log <<<"$(nginx_log_since "$mark")"
	circ_bytes=$(disk_stat "$s" fetched_bytes)
	circ_req=$(disk_stat "$s" requests)
	circ_hits=$(disk_stat "$s" cache_hits)
	circ_miss=$(disk_stat "$s" cache_misses)
	# Run 1's disk serves the warm reads and the writes, run 2's the update.
	[ "$i" -le 2 ] || rm -rf "$s"
done
tally cold "${cold[@]}"
tally pullmount "${pullmount[@]}"

say "curl: the same objects, 8 in flight"
mark=$(nginx_log_mark)
hf curl ":" "$CURL_B -K '$D/urls'"
read -r curl_req curl_bytes <<<"$(nginx_log_since "$mark")"
curl_req=$((curl_req / BENCH_RUNS)) curl_bytes=$((curl_bytes / BENCH_RUNS))

say "casync extract v1 from the same nginx"
mark=$(nginx_log_mark)
hf cas "rm -f '$D/cas.out'" "$(casx "$NGINX_URL/v1.caibx")"
read -r cas_req cas_bytes <<<"$(nginx_log_since "$mark")"
cas_req=$((cas_req / BENCH_RUNS)) cas_bytes=$((cas_bytes / BENCH_RUNS))
cmp -s "$D/cas.out" "$IMG1" || die "casync extract of v1 differs from the image"
rm -f "$D/cas.out"

section "lazy disk, cold read: the whole 1 GiB disk.img from nginx on loopback, $BENCH_RUNS runs each"
printf '  circ: fresh --state, pull and mount (%s, not counted), then timed: cat MNT/disk.img >/dev/null\n' "${TXT[pullmount]}"
printf '  curl: the same %s objects (v1 pointer, manifest, blocks: %s), 8 in flight, to /dev/null\n' "$nobj" "$(human "$obytes")"
printf '  casync extract: v1.caibx from a chunk store on the same nginx, to a file\n'
row "cold read vs curl objects" circ cold curl curl "$IMG_SIZE"
row "cold read vs casync extract" circ cold casync cas "$IMG_SIZE"
line "fetched (per run)" circ "$(human "$circ_bytes"), $circ_req req" casync "$(human "$cas_bytes"), $cas_req req" \
	"$(ratio "$circ_bytes" "$cas_bytes")"
# The cache's footprint: run 1's packs (blocks kept as their bytes) beside the
# same blocks compressed as the repo holds them (what a compressed cache would hold).
pack_bytes=$(du -sb "$D/cold1/cache/packs" | cut -f1)
blk_bytes=$(grep '^blocks/' "$D/objects" | (cd "$REPO" && xargs stat -c %s) | awk '{ s += $1 } END { print s }')
line "cache footprint after the read" circ "$(human "$pack_bytes") packed" repo "$(human "$blk_bytes") zstd" \
	"$(ratio "$pack_bytes" "$blk_bytes")"
printf '  (MB/s of the 1 GiB image delivered, compressed or not; circ: fetched_bytes and requests of\n'
printf '   circ stats, %s hits / %s misses; nginx logged %s requests, %s for it, curl %s, %s;\n' \
	"$circ_hits" "$circ_miss" "$circ_req_log" "$(human "$circ_bytes_log")" "$curl_req" "$(human "$curl_bytes")"
printf '   footprint: du -b of the packs, blocks uncompressed on purpose (docs/client.md), beside the\n'
printf '   repo'"'"'s files of the same blocks)\n'
result disk_cold_s "${T[cold]}"
result disk_cold_curl_s "${T[curl]}"
result disk_cold_casync_s "${T[cas]}"
result disk_cold_bytes "$circ_bytes"
result disk_cold_requests "$circ_req"
result disk_cold_casync_bytes "$cas_bytes"
result disk_cold_casync_requests "$cas_req"
result disk_cache_pack_bytes "$pack_bytes"
result disk_cache_zstd_bytes "$blk_bytes"

# === 1b. cold read of an incompressible image ====================================

# 256 MiB of random bytes: nothing to decompress, so the figure is the fetch,
# the verification and the cache's writes, beside curl moving the same bytes.
RND=$D/rnd.img
head -c $((256 << 20)) /dev/urandom >"$RND"
(cd "$REPO" && find blocks -type f ! -name '.*' | LC_ALL=C sort) >"$D/blocks.before"
"$CIRC" publish --repo "$REPO" --key "$KEY" --name rnd "$RND" >/dev/null 2>"$D/pub.err" ||
	die "circ publish of the random image failed: $(tail -n 3 "$D/pub.err")"
(cd "$REPO" && find blocks -type f ! -name '.*' | LC_ALL=C sort) >"$D/blocks.after"
{
	echo images/rnd/latest
	echo images/rnd/1.manifest
	comm -13 "$D/blocks.before" "$D/blocks.after"
} >"$D/rnd.objects"
rnd_nobj=$(wc -l <"$D/rnd.objects")
awk -v b="$NGINX_URL" '{ printf "url = \"%s/%s\"\noutput = \"/dev/null\"\n", b, $0 }' "$D/rnd.objects" >"$D/rnd.urls"
say "incompressible: circ pull, mount, cat (timed); curl of the same $rnd_nobj objects; $BENCH_RUNS times each"
rcold=()
for i in $(seq 1 "$BENCH_RUNS"); do
	s=$D/rnd$i
	rm -rf "$s"
	"$CIRC" --state "$s" pull "$NGINX_URL" rnd --key "$PUB" >/dev/null 2>"$D/pull.err" ||
		die "circ pull rnd failed: $(tail -n 3 "$D/pull.err")"
	mkdir -p "$D/mnt"
	"$CIRC" --state "$s" mount rnd "$D/mnt" >/dev/null 2>"$D/mount.err" ||
		die "circ mount rnd failed: $(tail -n 3 "$D/mount.err")"
	MOUNTED[$D/mnt]=$s
	time_once rcold "$D/cat.err" cat "$D/mnt/disk.img"
	rcold+=("${T[rcold]}")
	disk_umount "$D/mnt"
	rm -rf "$s"
done
tally rcold "${rcold[@]}"
CURL_4="curl -s --no-progress-meter --parallel --parallel-max 4 --parallel-immediate"
hf rcurl ":" "$CURL_4 -K '$D/rnd.urls'"
section "lazy disk, cold read of a 256 MiB incompressible image (random bytes) from nginx, $BENCH_RUNS runs each"
printf '  circ: fresh --state, pull and mount (not counted), then timed: cat MNT/disk.img >/dev/null\n'
printf '  curl: the same %s objects (pointer, manifest, blocks), 4 in flight, to /dev/null\n' "$rnd_nobj"
row "cold read vs curl objects" circ rcold curl rcurl $((256 << 20))
result disk_cold_rnd_s "${T[rcold]}"
result disk_cold_rnd_curl_s "${T[rcurl]}"
rm -f "$RND"

# === 2. warm reads ============================================================

S1=$D/cold1
disk_mount "$S1" "$D/mnt"
say "checking disk.img against the image"
cmp -s "$D/mnt/disk.img" "$IMG1" || die "disk.img of a cached disk differs from the image"
mkdir -p "$D/rawdir"
RAW=$D/rawdir/raw.img
cp --sparse=always "$IMG1" "$RAW"

# FUSE's ceiling: libfuse's own passthrough example (shipped with
# libfuse3-dev) over the raw copy, with circ's page-cache option.
PASS_SRC=/usr/share/doc/libfuse3-dev/examples
[ -f "$PASS_SRC/passthrough.c" ] || die "$PASS_SRC/passthrough.c missing (libfuse3-dev)"
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -O2 -D_FILE_OFFSET_BITS=64 -I"$PASS_SRC" "$PASS_SRC/passthrough.c" $(pkg-config --cflags --libs fuse3) \
	-o "$D/passthrough" 2>"$D/cc.err" || die "building libfuse's passthrough failed: $(tail -n 3 "$D/cc.err")"
mkdir -p "$D/pass"
"$D/passthrough" -o kernel_cache "$D/pass" 2>"$D/pass.err" || die "passthrough: $(tail -n 3 "$D/pass.err")"
MOUNTED[$D/pass]=pass
PASS=$D/pass$RAW
[ -f "$PASS" ] || die "passthrough shows no $PASS"

F=(--ioengine=psync --direct=0)
say "fio sequential 1 MiB reads, FUSE then raw copy then pass-through, $BENCH_RUNS times (page cache dropped before each: $DROP)"
seq_c=() seq_r=() seq_p=()
for i in $(seq 1 "$BENCH_RUNS"); do
	for side in c r p; do
		case $side in c) f=$D/mnt/disk.img ;; r) f=$RAW ;; p) f=$PASS ;; esac
		drop_caches
		fio_run "$D/fio.json" --name=seq --filename="$f" --rw=read --bs=1M --size=1G "${F[@]}"
		v=$(fio_get "$D/fio.json" read.bw_bytes)
		case $side in c) seq_c+=("$v") ;; r) seq_r+=("$v") ;; p) seq_p+=("$v") ;; esac
	done
done
read -r seq_cm seq_cs <<<"$(meansd "${seq_c[@]}")"
read -r seq_rm seq_rs <<<"$(meansd "${seq_r[@]}")"
read -r seq_pm seq_ps <<<"$(meansd "${seq_p[@]}")"

# rand_read KEY FILE DIRECT: one 4 KiB random read job, caches dropped first;
# IOPS in IOPS[KEY].
declare -A IOPS=()
rand_read() {
	drop_caches
	fio_run "$D/fio.json" --name=rand --filename="$2" --rw=randread --bs=4k \
		--runtime="$FIO_RAND_S" --time_based --ioengine=psync --direct="$3"
	IOPS[$1]=$(fio_get "$D/fio.json" read.iops)
}
say "fio random 4 KiB reads, ${FIO_RAND_S} s each: FUSE, raw copy, pass-through, then FUSE and raw with O_DIRECT"
rand_read c "$D/mnt/disk.img" 0
rand_read r "$RAW" 0
rand_read p "$PASS" 0
rand_read cd "$D/mnt/disk.img" 1
rand_read rd "$RAW" 1

mbs() { calc "$1 / 1e6" 0; }
section "lazy disk, warm reads: fio through FUSE, every block cached, beside a raw local copy; ratio = circ / raw"
if [ "$DROP" = yes ]; then
	printf '  kernel page cache dropped before every run (echo 3 > /proc/sys/vm/drop_caches): disk.img is\n'
	printf '  mounted with kernel_cache, so this makes each run go through FUSE and read circ'"'"'s cache files\n'
	printf '  from disk, as the raw copy is read from disk\n'
else
	printf '  NOTE: could not drop the kernel page cache (not permitted): disk.img is mounted with\n'
	printf '  kernel_cache, so runs after the first read it from the page cache, not through FUSE\n'
fi
line "seq read 1M, $BENCH_RUNS runs" circ "$(mbs "$seq_cm") MB/s ±$(mbs "$seq_cs")" raw "$(mbs "$seq_rm") MB/s ±$(mbs "$seq_rs")" \
	"$(ratio "$seq_cm" "$seq_rm")"
line "rand read 4K, ${FIO_RAND_S} s" circ "$(calc "${IOPS[c]}" 0) IOPS" raw "$(calc "${IOPS[r]}" 0) IOPS" \
	"$(ratio "${IOPS[c]}" "${IOPS[r]}")"
line "rand read 4K O_DIRECT, ${FIO_RAND_S} s" circ "$(calc "${IOPS[cd]}" 0) IOPS" raw "$(calc "${IOPS[rd]}" 0) IOPS" \
	"$(ratio "${IOPS[cd]}" "${IOPS[rd]}")"
printf '  (psync, one job; buffered reads still fill the page cache within a run, kernel readahead\n'
printf '   included; O_DIRECT sends every 4 KiB read through FUSE to circ, or to the raw copy'"'"'s disk)\n'

section "lazy disk, warm reads beside FUSE's ceiling: the same jobs on libfuse's passthrough example over the raw copy; ratio = circ / pass-through"
printf '  both multithreaded libfuse 3 with kernel_cache, default max_read and max_write; circ also\n'
printf '  asks for 1 MiB kernel readahead; the pass-through adds use_ino and no attribute caching\n'
line "seq read 1M, $BENCH_RUNS runs" circ "$(mbs "$seq_cm") MB/s ±$(mbs "$seq_cs")" pass "$(mbs "$seq_pm") MB/s ±$(mbs "$seq_ps")" \
	"$(ratio "$seq_cm" "$seq_pm")"
line "rand read 4K, ${FIO_RAND_S} s" circ "$(calc "${IOPS[c]}" 0) IOPS" pass "$(calc "${IOPS[p]}" 0) IOPS" \
	"$(ratio "${IOPS[c]}" "${IOPS[p]}")"
printf '  (no O_DIRECT line: the example opens the raw copy with the reader'"'"'s O_DIRECT and reads\n'
printf '   into buffers that are not aligned for it, so its O_DIRECT reads fail)\n'
result disk_seq_pass_bps "$seq_pm"
result disk_rand_pass_iops "${IOPS[p]}"
result disk_seq_circ_bps "$seq_cm"
result disk_seq_raw_bps "$seq_rm"
result disk_rand_circ_iops "${IOPS[c]}"
result disk_rand_raw_iops "${IOPS[r]}"
result disk_randd_circ_iops "${IOPS[cd]}"
result disk_randd_raw_iops "${IOPS[rd]}"
disk_umount "$D/mnt"
fusermount3 -u "$D/pass" || die "fusermount3 -u $D/pass"
unset "MOUNTED[$D/pass]"

# In-process, as hv reads the disk: the vdisk API over the same cached disk.
VB=$D/vdisk-bench
[ -x "$build/vdisk-bench" ] || die "$build/vdisk-bench not built (make bench builds it)"
cp "$build/vdisk-bench" "$VB"
say "vdisk_read beside pread, in one process, page cache warm: median of $BENCH_RUNS rounds of 2 s each"
"$VB" "$S1" "$name" "$RAW" --runs "$BENCH_RUNS" --seconds 2 >"$D/vb.out" 2>"$D/vb.err" ||
	die "vdisk-bench failed: $(tail -n 3 "$D/vb.err")"
read -r _ vb_seq_c vb_seq_r <<<"$(grep '^seq64k ' "$D/vb.out")"
read -r _ vb_rand_c vb_rand_r <<<"$(grep '^rand4k ' "$D/vb.out")"
section "lazy disk, in-process reads (hv's path, no FUSE): vdisk_read of a cached disk beside pread of the raw copy; ratio = circ / pread"
line "seq read 64K, median of $BENCH_RUNS" circ "$(mbs "$(calc "$vb_seq_c * 65536" 0)") MB/s" pread "$(mbs "$(calc "$vb_seq_r * 65536" 0)") MB/s" \
	"$(ratio "$vb_seq_c" "$vb_seq_r")"
line "rand read 4K, median of $BENCH_RUNS" circ "$(calc "$vb_rand_c" 0) reads/s" pread "$(calc "$vb_rand_r" 0) reads/s" \
	"$(ratio "$vb_rand_c" "$vb_rand_r")"
printf '  (one thread, 2 s per figure per round, the same offsets on both sides; the page cache holds\n'
printf '   circ'"'"'s packs and the raw copy, so this compares the read paths, not the disk)\n'
result disk_vdisk_seq_ops "$vb_seq_c"
result disk_vdisk_seq_pread_ops "$vb_seq_r"
result disk_vdisk_rand_ops "$vb_rand_c"
result disk_vdisk_rand_pread_ops "$vb_rand_r"

# === 3. update v1 -> v2 =======================================================

# Run 2's disk: pulled v1, read it all, unmounted: every block of v1 cached.
S2=$D/cold2
if [ ! -d "$S2" ]; then
	disk_pull "$S2"
	disk_mount "$S2" "$D/mnt"
	cat "$D/mnt/disk.img" >/dev/null
	disk_umount "$D/mnt"
fi
say "circ publish v2 into the repo"
"$CIRC" publish --repo "$REPO" --key "$KEY" --name "$name" "$IMG2" >/dev/null 2>"$D/pub.err" ||
	die "circ publish failed: $(tail -n 3 "$D/pub.err")"
U=$D/upd
say "circ update v1 -> v2 of a copy of a disk that has read all of v1"
mark=$(nginx_log_mark)
hf upd "rm -rf '$U' && cp -a '$S2' '$U' && sync" "'$CIRC' --state '$U' update $name"
read -r upd_req_log upd_bytes_log <<<"$(nginx_log_since "$mark")"
upd_req_log=$((upd_req_log / BENCH_RUNS)) upd_bytes_log=$((upd_bytes_log / BENCH_RUNS))
[ "$(disk_stat "$U" version)" = 2 ] || die "circ update did not move the disk to v2"
upd_bytes=$(($(disk_stat "$U" fetched_bytes) - $(disk_stat "$S2" fetched_bytes)))
upd_req=$(($(disk_stat "$U" requests) - $(disk_stat "$S2" requests)))
upd_blocks=$(($(disk_stat "$U" fetched_blocks) - $(disk_stat "$S2" fetched_blocks)))
say "checking the updated disk.img against v2"
disk_mount "$U" "$D/mnt"
cmp -s "$D/mnt/disk.img" "$IMG2" || die "disk.img after the update differs from v2"
disk_umount "$D/mnt"
rm -rf "$U"

say "the same update with manifest format 1 (no boot kit, an uncompressed table): bytes on the wire"
F=$D/f1
rm -rf "$F" && cp -a "$S2" "$F"
"$CIRC" publish --repo "$REPO" --key "$KEY" --name "${name}f1" --format 1 "$IMG1" >/dev/null 2>"$D/pub.err" ||
	die "circ publish --format 1 failed: $(tail -n 3 "$D/pub.err")"
"$CIRC" --state "$F" pull "$NGINX_URL" "${name}f1" --key "$PUB" >/dev/null || die "pull (format 1)"
"$CIRC" publish --repo "$REPO" --key "$KEY" --name "${name}f1" --format 1 "$IMG2" >/dev/null 2>"$D/pub.err" ||
	die "circ publish --format 1 failed: $(tail -n 3 "$D/pub.err")"
mark=$(nginx_log_mark)
"$CIRC" --state "$F" update "${name}f1" >/dev/null || die "update (format 1)"
read -r f1_req f1_bytes <<<"$(nginx_log_since "$mark")"
f2_manifest=$(stat -c %s "$REPO/images/$name/2.manifest")
f1_manifest=$(stat -c %s "$REPO/images/${name}f1/2.manifest")
rm -rf "$F" "$S2"

say "casync extract --seed=v1.img of v2 from the same nginx"
mark=$(nginx_log_mark)
hf cas_upd "rm -f '$D/cas.out' && sync" "$(casx "--seed='$IMG1'" "$NGINX_URL/v2.caibx")"
read -r casu_req casu_bytes <<<"$(nginx_log_since "$mark")"
casu_req=$((casu_req / BENCH_RUNS)) casu_bytes=$((casu_bytes / BENCH_RUNS))
cmp -s "$D/cas.out" "$IMG2" || die "casync extract of v2 differs from the image"
rm -f "$D/cas.out"

section "lazy disk, update v1 -> v2 of a disk that has read all of v1, beside casync extract --seed=v1.img, $BENCH_RUNS runs each"
row "update v1 -> v2" circ upd "casync" cas_upd
printf '  %-32s %-11s %s\n' "fetched (circ stats delta)" circ "$(human "$upd_bytes"), $upd_blocks blocks, $upd_req requests"
line "on the wire (nginx log)" circ "$(human "$upd_bytes_log"), $upd_req_log req" casync "$(human "$casu_bytes"), $casu_req req" \
	"$(ratio "$upd_bytes_log" "$casu_bytes")"
line "format 2 beside format 1" "format 2" "$(human "$upd_bytes_log") (manifest $(human "$f2_manifest"))" \
	"format 1" "$(human "$f1_bytes") (manifest $(human "$f1_manifest"))" "$(ratio "$upd_bytes_log" "$f1_bytes")"
printf '  (circ update fetches the changed blocks into the cache and the disk reads v2 lazily after;\n'
printf '   casync extract writes all of v2, chunking the 1 GiB seed to find what it has;\n'
printf '   on the wire: body bytes and requests nginx logged per run; circ'"'"'s include the pointer and\n'
printf '   the new manifest, casync'"'"'s the index; circ stats: fetched_bytes, fetched_blocks, requests)\n'
result disk_upd_s "${T[upd]}"
result disk_upd_casync_s "${T[cas_upd]}"
result disk_upd_bytes "$upd_bytes"
result disk_upd_requests "$upd_req"
result disk_upd_wire_bytes "$upd_bytes_log"
result disk_upd_wire_requests "$upd_req_log"
result disk_upd_casync_bytes "$casu_bytes"
result disk_upd_f1_wire_bytes "$f1_bytes"
result disk_upd_casync_requests "$casu_req"

# === 4. overlay writes =======================================================

# Run 1's disk again (every block cached), and the raw copy.
disk_mount "$S1" "$D/mnt"

say "fio random 4 KiB writes, fsync every 64, ${FIO_RAND_S} s each: FUSE, then the raw copy"
W4=(--name=w --rw=randwrite --bs=4k --fsync=64 --size=256M --runtime="$FIO_RAND_S" --time_based --ioengine=psync)
fio_run "$D/fio.json" --filename="$D/mnt/disk.img" "${W4[@]}"
IOPS[wc]=$(fio_get "$D/fio.json" write.iops)
fio_run "$D/fio.json" --filename="$RAW" "${W4[@]}"
IOPS[wr]=$(fio_get "$D/fio.json" write.iops)
time_once wflush "$D/flush.err" disk_umount "$D/mnt"
overlay=$(disk_stat "$S1" overlay_bytes)
rm -f "$RAW"
rm -rf "$S1"

section "lazy disk, overlay writes: random 4K writes, fsync every 64, into disk.img's overlay beside a raw file"
line "rand write 4K, ${FIO_RAND_S} s" circ "$(calc "${IOPS[wc]}" 0) IOPS" raw "$(calc "${IOPS[wr]}" 0) IOPS" \
	"$(ratio "${IOPS[wc]}" "${IOPS[wr]}")"
printf '  (first 256 MiB of the disk, psync, one job; circ'"'"'s overlay then held %s; umount took %s)\n' \
	"$(human "$overlay")" "${TXT[wflush]}"
result disk_write_circ_iops "${IOPS[wc]}"
result disk_write_raw_iops "${IOPS[wr]}"

