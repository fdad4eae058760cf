#!/usr/bin/env bash
# A lab: 20 machines (state directories) boot at once. Each boot-reads the
# busybox image's recorded boot set (`circ fetch --boot`: the blocks a real
# boot read, recorded with `circ mount --record-reads` under QEMU and
# published with --prefetch) and its boot kit, three ways:
#   1. straight from the origin (circ serve);
#   2. with two peers in front (`circ serve --cache` on two machines that
#      booted first, peer 2 from peer 1): half the machines list peer 1
#      first, half peer 2, the origin last;
#   3. through squid, a reverse proxy caching in memory, started cold.
# Each figure is what the origin sent (bytes and requests, from circ serve's
# access log, the peers' and squid's own fetches and every machine's pointer
# and manifest included) beside what one machine fetched alone (its `circ
# fetch --json`, a machine of part 1), and their ratio; the goal with peers
# and with squid is 1.1 at most (part 1 is 20). The wall time of the 20
# boot reads is printed for scale, not asserted.
# Skipped, saying why, without root, /dev/fuse, QEMU or the boot kit; part 3
# without squid. Every mount is unmounted and every server stopped on exit,
# also on failure.
# Usage: bench/lab.sh [BUILD_DIR]   (bench/run.sh calls it)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/alone.sh
. "$root/bench/alone.sh" lab "${1:-}"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

N=20
IMAGES=$root/build/images

section "lab: $N machines boot the busybox image at once (its recorded boot set and boot kit)"
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || ! command -v qemu-system-x86_64 >/dev/null ||
	! "$root/images/bootkit.sh" "$IMAGES/kit" >/dev/null 2>&1 ||
	! "$root/images/busybox.sh" "$IMAGES/busybox.img" >/dev/null 2>&1; then
	result lab_skipped "needs root, /dev/fuse, QEMU and the boot kit"
	echo "  skipped: needs root, /dev/fuse, QEMU and the boot kit"
	exit 0
fi

W=$BENCH_WORK/lab
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

# serve NAME ARGS...: circ serve ARGS on a free loopback port, its access log
# in NAME.log; sets SERVED_URL.
serve() {
	local name=$1 i
	shift
	"$CIRC" serve "$@" --listen 127.0.0.1:0 >"$name.out" 2>"$name.log" &
	PIDS+=($!)
	for i in $(seq 1 100); do
		SERVED_URL=$(sed -n 's/^listening on //p' "$name.out")
		[ -n "$SERVED_URL" ] && return 0
		sleep 0.05
	done
	die "circ serve $* did not start: $(cat "$name.log")"
}

# The image and its boot kit, published; the origin.
say "publishing the busybox image with its boot kit"
bench_key
cmdline="quiet root=/dev/vda circ.test=poweroff"
"$CIRC" publish --repo repo --key "$KEY" --name lab --kernel "$IMAGES/kit/vmlinuz" \
	--initrd "$IMAGES/kit/initrd.img" --cmdline "$cmdline" "$IMAGES/busybox.img" >/dev/null ||
	die "publish failed"
serve origin --repo repo
ORIGIN=$SERVED_URL

# The boot set: one boot under QEMU (TCG) from a FUSE mount, its reads
# recorded; version 2 is the same image with that list (no new blocks).
say "recording the blocks a boot reads (QEMU TCG)"
"$CIRC" --state rec pull "$ORIGIN" lab --key "$PUB" >/dev/null || die "pull for the recording"
mkdir -p rec.mnt
MOUNTS+=("$W/rec.mnt")
"$CIRC" --state rec mount lab rec.mnt --record-reads "$W/reads" || die "mount for the recording"
timeout 300 qemu-system-x86_64 -accel tcg -m 256M -nographic -no-reboot \
	-kernel "$IMAGES/kit/vmlinuz" -initrd "$IMAGES/kit/initrd.img" \
	-append "console=ttyS0 $cmdline" -drive "file=rec.mnt/disk.img,format=raw,if=virtio" \
	</dev/null >rec.out 2>&1 || die "the recording boot failed: $(tail -n 3 rec.out)"
grep -q "CIRC-BOOT-OK" rec.out || die "the recording boot did not finish: $(tail -n 3 rec.out)"
"$CIRC" --state rec umount rec.mnt || die "umount after the recording"
[ -s reads ] || die "no reads recorded"
"$CIRC" publish --repo repo --key "$KEY" --name lab --prefetch reads "$IMAGES/busybox.img" \
	>/dev/null || die "publish with the boot set"
rm -rf rec

# boot_read STATE URL [MIRROR...]: pull, then fetch the boot set and the kit;
# what it fetched in STATE.json.
boot_read() {
	local st=$1 url=$2 m=() u
	shift 2
	for u in "$@"; do m+=(--mirror "$u"); done
	"$CIRC" --state "$st" pull "$url" lab --key "$PUB" "${m[@]}" >/dev/null 2>"$st.err" ||
		die "pull on $st: $(cat "$st.err")"
	"$CIRC" --state "$st" fetch lab --boot --json >"$st.json" 2>"$st.err" ||
		die "fetch --boot on $st: $(cat "$st.err")"
}

# machines PREFIX URLS_FN: N machines read the disk at once, machine I from
# the URLs URLS_FN I prints; sets SECS to the seconds it took. Their state
# is then removed, all but PREFIX1's.
machines() {
	local prefix=$1 fn=$2 i t0 pids=() bad=0
	t0=$(now)
	for i in $(seq 1 "$N"); do
		# shellcheck disable=SC2046 # the URL list splits into words on purpose
		boot_read "$prefix$i" $("$fn" "$i") &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || bad=1; done
	[ "$bad" = 0 ] || die "a machine failed to boot-read the image"
	SECS=$(calc "$(now) - $t0" 2)
	for i in $(seq 2 "$N"); do rm -rf "${prefix:?}$i"; done
}

# origin_since LINE: "BYTES REQUESTS" the origin logged after line LINE.
origin_since() {
	sleep 0.2 # the last request's line is written just after its last byte
	tail -n +"$(($1 + 1))" origin.log | awk '{ b += $5; n++ } END { printf "%d %d\n", b, n }'
}
mark() { wc -l <origin.log; }

fetched() { jq -r .fetched_bytes "$1.json"; }

report() { # LABEL BYTES REQUESTS SECONDS
	printf '  %-30s origin %-10s in %5d requests   one machine %-10s   ratio %-5s   (%s s)\n' \
		"$1" "$(human "$2")" "$3" "$(human "$ONE")" "$(ratio "$2" "$ONE")" "$4"
}

# 1. Straight from the origin.
say "1. $N machines from the origin"
m0=$(mark)
direct() { echo "$ORIGIN"; }
machines d direct
read -r bytes reqs < <(origin_since "$m0")
ONE=$(fetched d1)
report "straight from the origin" "$bytes" "$reqs" "$SECS"
result lab_one_bytes "$ONE"
result lab_direct_bytes "$bytes"
result lab_direct_requests "$reqs"
result lab_direct_s "$SECS"
rm -rf d1

# 2. Two peers in front: they read first, peer 2 from peer 1.
say "2. two peers (serve --cache), then $N machines"
m0=$(mark)
t0=$(now)
boot_read peer1 "$ORIGIN"
serve peer1 --cache peer1 --quiet
P1=$SERVED_URL
boot_read peer2 "$P1" "$ORIGIN"
serve peer2 --cache peer2 --quiet
P2=$SERVED_URL
warm=$(calc "$(now) - $t0" 2)
peers() { if [ $(($1 % 2)) = 1 ]; then echo "$P1 $P2 $ORIGIN"; else echo "$P2 $P1 $ORIGIN"; fi; }
machines m peers
read -r bytes reqs < <(origin_since "$m0")
report "two peers in front" "$bytes" "$reqs" "$SECS"
printf '  %-30s %s s to warm the two peers, not counted above\n' "" "$warm"
result lab_peers_bytes "$bytes"
result lab_peers_requests "$reqs"
result lab_peers_s "$SECS"
rm -rf m1

# 3. squid in front, cold.
if ! command -v squid >/dev/null; then
	result lab_squid_skipped "squid is missing (scripts/deps.sh build installs it)"
	echo "  squid: skipped, squid is missing (scripts/deps.sh build installs it)"
	exit 0
fi
say "3. squid (memory cache, cold), then $N machines"
mkdir -p squid
port=$(free_port)
cat >squid/squid.conf <<CONF
http_port 127.0.0.1:$port accel defaultsite=circ-origin no-vhost
cache_peer 127.0.0.1 parent ${ORIGIN##*:} 0 no-query no-digest originserver name=origin
cache_peer_access origin allow all
http_access allow all
cache_mem 512 MB
maximum_object_size_in_memory 8 MB
collapsed_forwarding on
pid_filename $W/squid/squid.pid
access_log none
cache_log $W/squid/cache.log
cache_store_log none
coredump_dir $W/squid
visible_hostname circ-bench
shutdown_lifetime 0 seconds
CONF
# As root squid runs as Debian's "proxy": it must reach its directory.
m0=$(mark) # squid's own fetches count from its first
chmod o+x "$BENCH_WORK" "$W"
chown proxy: squid 2>/dev/null || true
squid -N -n "circbench$$" -f squid/squid.conf >squid/stderr 2>&1 &
PIDS+=($!)
SQUID=http://127.0.0.1:$port
wait_http "$SQUID/images/lab/latest" "${PIDS[-1]}" squid ||
	die "squid exited: $(grep -h -E 'FATAL|ERROR' squid/stderr squid/cache.log 2>/dev/null | head -n 1)"
via_squid() { echo "$SQUID"; }
machines q via_squid
read -r bytes reqs < <(origin_since "$m0")
report "squid in front" "$bytes" "$reqs" "$SECS"
result lab_squid_bytes "$bytes"
result lab_squid_requests "$reqs"
result lab_squid_s "$SECS"
