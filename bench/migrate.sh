#!/usr/bin/env bash
# Cold migration, each figure beside a peer measured in the same run:
#   1. check-in of a 1 GiB ext4 home disk after a session that writes 64 MiB
#      of new files (and one of 1 MiB; three of each, medians): bytes
#      uploaded and seconds of
#      `circ push`, beside (a) uploading the whole disk as a naive user would
#      (curl of a raw copy to nginx on loopback) and (b) `casync make` of the
#      disk and uploading its new chunks; and beside the goal, the
#      compressed size (zstd -3) of the 64 KiB blocks that changed plus the
#      layer and head;
#   2. resume on machine B (QEMU TCG, busybox image, median of 3): seconds
#      from `circ checkout` to the guest's marker, printed once it has
#      mounted the home disk and read a file, and the bytes B fetched,
#      beside booting local raw copies of both disks with the same command;
#   3. encryption's cost: cold read of a pushed 256 MiB disk (checked out
#      on a fresh machine, median of 3) beside the same bytes published as a
#      public image and pulled unencrypted.
# Skipped, saying why, without root, /dev/fuse or htpasswd; part 2 without
# QEMU or the boot kit.
# Usage: bench/migrate.sh [BUILD_DIR]   (bench/run.sh calls it)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/alone.sh
. "$root/bench/alone.sh" migrate "${1:-}"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

section "cold migration: push, checkout, encrypted reads"
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || ! command -v htpasswd >/dev/null; then
	result migrate_skipped "needs root, /dev/fuse and htpasswd"
	echo "  skipped: needs root, /dev/fuse and htpasswd (apache2-utils)"
	exit 0
fi

W=$BENCH_WORK/migrate
mkdir -p "$W"
cd "$W"
MOUNTS=()
PIDS=()
cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'cleanup; rm -rf "$W"; [ -z "${BENCH_ALONE:-}" ] || rm -rf "$BENCH_WORK"' EXIT

printf 'bench-pw\n' >pw
printf 'bench passphrase\n' >pp
htpasswd -B -i -c users alice <pw 2>/dev/null
export CIRC_PASSWORD_FILE=$W/pw CIRC_PASSPHRASE_FILE=$W/pp
mkdir -p repo
"$CIRC" serve --repo repo --users users --listen 127.0.0.1:0 >serve.out 2>serve.log &
PIDS+=($!)
for _ in $(seq 1 100); do
	URL=$(sed -n 's/^listening on //p' serve.out)
	[ -n "$URL" ] && break
	sleep 0.05
done
[ -n "$URL" ] || die "circ serve did not start"

# nginx storing uploads with WebDAV PUT: the naive peers' destination.
mkdir -p "$W/www/upload"
echo ok >"$W/www/probe"
start_nginx "$W/www" /probe "client_max_body_size 0; location /upload/ { dav_methods PUT; create_full_put_path on; client_body_temp_path $W/www/tmp; }"
PIDS+=("$NGINX_PID")

fuse_mount() { # STATE DISK MNT
	mkdir -p "$3"
	"$CIRC" --state "$1" mount "$2" "$3" >/dev/null || die "mount $2"
	MOUNTS+=("$3")
}
fuse_umount() { "$CIRC" --state "$1" umount "$2" >/dev/null || die "umount $2"; }

# session STATE MIB SEED: writes MIB of new files (half random, half text) into
# the home disk's ext4, through FUSE and a loop mount.
session() {
	local i n=$(($2 * 2))
	fuse_mount "$1" home "$W/fuse"
	mkdir -p "$W/fs"
	mount -o loop "$W/fuse/disk.img" "$W/fs"
	mkdir -p "$W/fs/session$3"
	for i in $(seq 1 "$n"); do
		head -c 256K /dev/urandom >"$W/fs/session$3/r$i.bin"
		(set +o pipefail; seq $((i * 100000)) $((i * 100000 + 50000)) | head -c 256K) \
			>"$W/fs/session$3/t$i.txt"
	done
	umount "$W/fs"
	fuse_umount "$1" "$W/fuse"
}

snapshot() { # STATE OUT: the disk's bytes
	fuse_mount "$1" home "$W/fuse"
	cp "$W/fuse/disk.img" "$2"
	fuse_umount "$1" "$W/fuse"
}

# compressed_changed A B: zstd -3 bytes of B's 64 KiB blocks that differ from A's.
compressed_changed() {
	rm -rf "$W/changed"
	mkdir "$W/changed"
	python3 - "$1" "$2" "$W/changed" <<'PY'
import sys
a, b, out = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb'), sys.argv[3]
i = 0
while True:
    x, y = a.read(65536), b.read(65536)
    if not y:
        break
    if x != y and y.count(0) != len(y):
        open(f"{out}/{i}", 'wb').write(y)
    i += 1
PY
	zstd -3 -q -r "$W/changed" 2>/dev/null
	find "$W/changed" -name '*.zst' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
}

"$CIRC" --state A create home --size 1G
fuse_mount A home "$W/fuse"
mkfs.ext4 -q -F "$W/fuse/disk.img"
fuse_umount A "$W/fuse"
"$CIRC" --state A push home --to "$URL" --user alice --keep-lease >/dev/null
snapshot A before.raw
casync make --store="$W/castore" before.caibx before.raw >/dev/null 2>&1


# One session of MIB and its check-ins, timed; sets up, meta, goal, circ_s,
# naive_s, cas_s and cas_bytes. The disk's bytes before it are in before.raw.
session_and_checkins() {
	local mib=$1 tag=$2 out v t0 t1
	session A "$mib" "$tag"
	snapshot A after.raw
	goal=$(compressed_changed before.raw after.raw)
	t0=$(now)
	out=$("$CIRC" --state A push home --keep-lease)
	t1=$(now)
	up=$(echo "$out" | sed -n 's/.*uploaded (\([0-9]*\) bytes).*/\1/p')
	v=$(echo "$out" | sed -n 's/.*version \([0-9]*\):.*/\1/p')
	meta=$(($(stat -c %s "repo/users/alice/home/$v.layer") + $(stat -c %s repo/users/alice/home/head)))
	circ_s=$(calc "$t1 - $t0" 3)
	# (a) the naive upload: the whole disk.
	t0=$(now)
	curl -sf -T after.raw "$NGINX_URL/upload/home.raw" >/dev/null
	t1=$(now)
	naive_s=$(calc "$t1 - $t0" 3)
	# (b) casync make, then its new chunks uploaded in one stream.
	list_files "$W/castore" >chunks.before
	t0=$(now)
	casync make --store="$W/castore" after.caibx after.raw >/dev/null 2>&1
	list_files "$W/castore" >chunks.after
	comm -13 chunks.before chunks.after >chunks.new
	(cd "$W/castore" && tar cf - -T "$W/chunks.new") | curl -sf -T - "$NGINX_URL/upload/chunks.tar" >/dev/null
	t1=$(now)
	cas_s=$(calc "$t1 - $t0" 3)
	# Its index travels too: the new version is nothing without it.
	cas_bytes=$(($(bytes_of_list "$W/castore" "$W/chunks.new") + $(stat -c %s after.caibx)))
	mv after.raw before.raw
	mv after.caibx before.caibx
}

# Three sessions of each size: the bytes of each are alike, the seconds move
# with the machine's load, so each figure is the median of three.
for mib in 64 1; do
	say "three sessions writing $mib MiB, each then checked in"
	a_up=() a_meta=() a_goal=() a_circ=() a_naive=() a_cas=() a_casb=()
	for r in 1 2 3; do
		session_and_checkins $mib "$mib-$r"
		a_up+=("$up") a_meta+=("$meta") a_goal+=("$goal") a_circ+=("$circ_s")
		a_naive+=("$naive_s") a_cas+=("$cas_s") a_casb+=("$cas_bytes")
	done
	# Bytes: the mean of the three (their ratios are those of the sums).
	mean_int() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%d", s / NR }'; }
	up=$(mean_int "${a_up[@]}") meta=$(mean_int "${a_meta[@]}") goal=$(mean_int "${a_goal[@]}")
	cas_bytes=$(mean_int "${a_casb[@]}")
	circ_s=$(median "${a_circ[@]}") naive_s=$(median "${a_naive[@]}") cas_s=$(median "${a_cas[@]}")
	line "check-in after $mib MiB: bytes" circ "$(human "$up") + $(human "$meta") meta" \
		"goal" "$(human "$goal") + meta" "$(ratio $((up + meta)) $((goal + meta)))"
	line "" "" "" "casync+index" "$(human "$cas_bytes")" "$(ratio $((up + meta)) "$cas_bytes")"
	line "" "" "" "raw disk" "$(human "$(stat -c %s before.raw)")" \
		"$(ratio $((up + meta)) "$(stat -c %s before.raw)")"
	line "check-in after $mib MiB: s, median" circ "$circ_s s" "casync+curl" "$cas_s s" \
		"$(ratio "$circ_s" "$cas_s")"
	line "" "" "" "curl raw" "$naive_s s" "$(ratio "$circ_s" "$naive_s")"
	result "mig_push${mib}_bytes" $((up + meta))
	result "mig_push${mib}_goal" $((goal + meta))
	result "mig_push${mib}_s" "$circ_s"
	result "mig_push${mib}_casync_bytes" "$cas_bytes"
	result "mig_push${mib}_casync_s" "$cas_s"
	result "mig_push${mib}_raw_s" "$naive_s"
done
"$CIRC" --state A push home >/dev/null # release the lease

# --- 3. encryption's cost: cold reads of a 256 MiB disk -----------------------
say "256 MiB pushed, then cold reads: encrypted beside public"
"$CIRC" --state E create data --size 256M
(
	set +o pipefail
	head -c 128M /dev/urandom
	seq 1 40000000 | head -c 128M
) >data.raw
fuse_mount E data "$W/fuse"
dd if=data.raw of="$W/fuse/disk.img" bs=1M conv=notrunc,fsync status=none
fuse_umount E "$W/fuse"
"$CIRC" --state E push data --to "$URL" --user alice >/dev/null
bench_key
"$CIRC" publish --repo repo --key "$KEY" --name data data.raw >/dev/null
enc=() pub=()
for r in 1 2 3; do
	sync
	echo 3 >/proc/sys/vm/drop_caches
	"$CIRC" --state "$W/enc$r" checkout "$URL" data --user alice --steal >/dev/null 2>&1
	fuse_mount "$W/enc$r" data "$W/fuse"
	t0=$(now)
	cat "$W/fuse/disk.img" >/dev/null
	t1=$(now)
	fuse_umount "$W/enc$r" "$W/fuse"
	enc+=("$(calc "$t1 - $t0" 3)")
	"$CIRC" --state "$W/pub$r" pull "$URL" data --key "$PUB" >/dev/null
	fuse_mount "$W/pub$r" data "$W/fuse"
	t0=$(now)
	cat "$W/fuse/disk.img" >/dev/null
	t1=$(now)
	fuse_umount "$W/pub$r" "$W/fuse"
	pub+=("$(calc "$t1 - $t0" 3)")
done
e=$(median "${enc[@]}")
p=$(median "${pub[@]}")
line "cold read 256 MiB (median of 3)" encrypted "$e s ($(mbps $((256 << 20)) "$e") MB/s)" \
	public "$p s ($(mbps $((256 << 20)) "$p") MB/s)" "$(ratio "$e" "$p")"
result mig_read_enc_s "$e"
result mig_read_pub_s "$p"

# --- 2. resume on B under QEMU ------------------------------------------------
IMAGES=$root/build/images
if ! command -v qemu-system-x86_64 >/dev/null ||
	! "$root/images/bootkit.sh" "$IMAGES/kit" >/dev/null 2>&1 ||
	! "$root/images/busybox.sh" "$IMAGES/busybox.img" >/dev/null 2>&1; then
	result mig_resume_skipped "no QEMU or boot kit"
	echo "  resume on B: skipped (no QEMU or boot kit)"
	exit 0
fi
say "resume on B: checkout to the guest's marker, beside local raw disks"
"$CIRC" publish --repo repo --key "$KEY" --name bb "$IMAGES/busybox.img" >/dev/null
"$CIRC" --state R create notes --size 256M
fuse_mount R notes "$W/fuse"
mkfs.ext4 -q -F "$W/fuse/disk.img"
mkdir -p "$W/fs"
mount -o loop "$W/fuse/disk.img" "$W/fs"
head -c 16M /dev/urandom >"$W/fs/big.bin"
echo "the owner's notes" >"$W/fs/notes.txt"
umount "$W/fs"
cp "$W/fuse/disk.img" home.raw
fuse_umount R "$W/fuse"
"$CIRC" --state R push notes --to "$URL" --user alice >/dev/null
cp "$IMAGES/busybox.img" bb.raw

# to_marker STATE DISKARGS...: seconds from now to the guest's marker.
to_marker() {
	local state=$1 pid t0=$2
	shift 2
	rm -f console guest.out
	mkfifo console
	"$CIRC" --state "$state" run --vmm qemu --kernel "$IMAGES/kit/vmlinuz" \
		--initrd "$IMAGES/kit/initrd.img" --append "quiet root=/dev/vda" --mem 256M \
		"$@" <console >guest.out 2>&1 &
	pid=$!
	exec 3>console
	while ! grep -q "poweroff stops the machine" guest.out; do
		kill -0 $pid 2>/dev/null || die "the guest did not come up: $(tail -n 3 guest.out)"
		sleep 0.02
	done
	printf 'mount -t ext4 /dev/vdb /mnt && cat /mnt/notes.txt && echo HOME-MARKER; poweroff\n' >&3
	while ! grep -q "^HOME-MARKER" guest.out; do
		kill -0 $pid 2>/dev/null || die "no marker: $(tail -n 3 guest.out)"
		sleep 0.02
	done
	calc "$(now) - $t0" 3
	wait $pid || true
	exec 3>&-
}
res=() raw=() fetched=()
for r in 1 2 3; do
	sync
	echo 3 >/proc/sys/vm/drop_caches
	st=$W/B$r
	"$CIRC" --state "$st" pull "$URL" bb --key "$PUB" >/dev/null
	t0=$(now)
	"$CIRC" --state "$st" checkout "$URL" notes --user alice --steal >/dev/null 2>&1
	res+=("$(to_marker "$st" "$t0" --disk bb --disk notes)")
	fetched+=("$("$CIRC" --state "$st" stats notes --json | jq -r '.disks[0].fetched_bytes')")
	sync
	echo 3 >/proc/sys/vm/drop_caches
	raw+=("$(to_marker "$W/rawstate" "$(now)" --disk-file bb.raw --disk-file home.raw)")
done
m=$(median "${res[@]}")
mr=$(median "${raw[@]}")
f=$(median "${fetched[@]}")
total=$(stat -c %s repo/users/alice/notes/1.layer)
total=$("$CIRC" --state "$W/B1" log notes | awk -F'\t' 'NR == 2 { print $4 + 0 }')
line "resume on B: checkout to marker" circ "$m s" "raw disks" "$mr s" "$(ratio "$m" "$mr")"
line "resume on B: home bytes fetched" circ "$(human "$f")" "its check-in" "$(human "$total")" \
	"$(ratio "$f" "$total")"
result mig_resume_s "$m"
result mig_resume_raw_s "$mr"
result mig_resume_bytes "$f"
