#!/usr/bin/env bash
# Side-by-side benchmarks: each figure of circ is printed beside a peer
# measured in the same run (casync, zstd + sha256sum, nginx, curl, fio on a
# raw file) and their ratio. Benchmarks never assert timings; a command that
# fails fails the run.
# Usage: bench/run.sh [BUILD_DIR]   (make bench calls it from the repo root)
# Environment:
#   CIRC_BENCH_CACHE  where test images are kept between runs
#                     (default BUILD_DIR/bench/cache)
#   CIRC_BENCH_RUNS   runs per timed measurement (default 3)
#   CIRC_BENCH_PARTS  only these parts, e.g. "disk lab" (default: all of
#                     publish fetch disk boot hv devices migrate lab kiosk); the test
#                     images are built either way, the summary only for all
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "${1:-build}" && pwd)
[ -x "$build/circ" ] || {
	echo "bench: $build/circ not built (run make)" >&2
	exit 1
}
for tool in casync hyperfine nginx curl zstd sha256sum mke2fs debugfs e2fsck jq awk fio ab; do
	command -v "$tool" >/dev/null || {
		echo "bench: $tool is missing (scripts/deps.sh bench installs it)" >&2
		exit 1
	}
done

export BENCH_CACHE=${CIRC_BENCH_CACHE:-$build/bench/cache}
export BENCH_RUNS=${CIRC_BENCH_RUNS:-3}
mkdir -p "$build/bench" "$BENCH_CACHE"
BENCH_WORK=$(mktemp -d "$build/bench/run.XXXXXX")
export BENCH_WORK
export BENCH_RESULTS=$BENCH_WORK/results
: >"$BENCH_RESULTS"
trap 'rm -rf "$BENCH_WORK"' EXIT
trap 'exit 130' INT TERM
# A private copy, so a rebuild of build/circ during the run changes nothing.
cp "$build/circ" "$BENCH_WORK/circ"
export CIRC=$BENCH_WORK/circ

# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

t_start=$(now)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'circ benchmarks — %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf '  machine: %s CPUs (%s), %s GiB RAM, %s\n' "$(nproc)" \
	"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
	"$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$(uname -sr)"
printf '  circ: %s (%s)\n' "$build/circ" "$(git -C "$root" describe --always --dirty 2>/dev/null || echo 'no git')"
printf '  peers: %s, %s, %s, %s, %s, %s\n' "$(casync --version 2>&1 | head -n 1)" \
	"$(nginx -v 2>&1 | sed 's/^nginx version: //')" "$(curl --version | head -n 1 | cut -d' ' -f1-2)" \
	"$(zstd --version | sed -E 's/.*(v[0-9.]+).*/zstd \1/')" "$(hyperfine --version)" "$(fio --version)"
printf '  load average: %s\n' "$load0"
printf '  figures: mean ±stddev of %s runs unless noted; ratio = circ / peer (time: below 1 is faster)\n' "$BENCH_RUNS"

say "test images (cached in $BENCH_CACHE)"
"$root/bench/image.sh"
all_parts="publish fetch disk boot hv devices migrate lab kiosk"
parts=${CIRC_BENCH_PARTS:-$all_parts}
for part in $parts; do
	[[ " $all_parts " == *" $part "* ]] || die "no benchmark part '$part' (there are: $all_parts)"
done
for part in $all_parts; do
	[[ " $parts " == *" $part "* ]] || continue
	case $part in hv | disk | devices) "$root/bench/$part.sh" "$build" ;; *) "$root/bench/$part.sh" ;; esac
done
if [ "$parts" != "$all_parts" ]; then
	printf '
(only %s: the summary needs every part)
' "$parts"
	exit 0
fi

section "summary"
g() { get "$1"; }
sum() { printf '  %-30s %s\n' "$1" "$2"; }
s() { calc "$(g "$1")" 2; }
sum "publish 1 GiB, 64K blocks" \
	"circ $(s pub_circ_s) s   casync make $(s pub_casync_s) s   ratio $(ratio "$(g pub_circ_s)" "$(g pub_casync_s)")   (zstd|sha256 $(s pub_zstd_s) s, ratio $(ratio "$(g pub_circ_s)" "$(g pub_zstd_s)"))"
sum "repo for v1" \
	"circ $(human "$(g pub_v1_bytes)")   casync $(human "$(g cas_v1_bytes)")   ratio $(ratio "$(g pub_v1_bytes)" "$(g cas_v1_bytes)")"
sum "publish v2 (update)" \
	"circ $(s upd_circ_s) s   casync make $(s upd_casync_s) s   ratio $(ratio "$(g upd_circ_s)" "$(g upd_casync_s)")"
sum "update v1 -> v2 writes" \
	"circ $(g upd_circ_blocks) blocks, $(human "$(g upd_circ_bytes)")   casync $(g upd_casync_chunks) chunks, $(human "$(g upd_casync_bytes)")   ratio $(ratio "$(g upd_circ_bytes)" "$(g upd_casync_bytes)")"
sum "update by block size" \
	"4K $(human "$(g bs_4K_v2_bytes)") + manifest $(human "$(g bs_4K_manifest)")   64K $(human "$(g bs_64K_v2_bytes)") + $(human "$(g bs_64K_manifest)")   256K $(human "$(g bs_256K_v2_bytes)") + $(human "$(g bs_256K_manifest)")"
sum "circ verify --url" \
	"circ serve $(s fetch_verify_circ_s) s   nginx $(s fetch_verify_nginx_s) s   ratio $(ratio "$(g fetch_verify_circ_s)" "$(g fetch_verify_nginx_s)")"
sum "curl every object" \
	"circ serve $(s fetch_curl_circ_s) s   nginx $(s fetch_curl_nginx_s) s   ratio $(ratio "$(g fetch_curl_circ_s)" "$(g fetch_curl_nginx_s)")   ($(g fetch_objects) objects, $(human "$(g fetch_bytes)"))"
sum "load: 64 connections, one block" \
	"circ serve $(calc "$(g load_circ_rps)" 0) req/s ($(g load_circ_errors) errors)   nginx $(calc "$(g load_nginx_rps)" 0) req/s   ratio $(ratio "$(g load_circ_rps)" "$(g load_nginx_rps)")"
sum "whole image" \
	"circ verify via circ serve $(s fetch_verify_circ_s) s   raw GET from nginx $(s fetch_raw_nginx_s) s   ratio $(ratio "$(g fetch_verify_circ_s)" "$(g fetch_raw_nginx_s)")"
if [ -z "$(g disk_skipped)" ]; then
	sum "disk: cold read 1 GiB" \
		"circ $(s disk_cold_s) s   curl objects $(s disk_cold_curl_s) s   casync extract $(s disk_cold_casync_s) s   ratio $(ratio "$(g disk_cold_s)" "$(g disk_cold_curl_s)") (curl), $(ratio "$(g disk_cold_s)" "$(g disk_cold_casync_s)") (casync)"
	sum "disk: cold read fetched" \
		"circ $(human "$(g disk_cold_bytes)") in $(g disk_cold_requests) requests   casync $(human "$(g disk_cold_casync_bytes)") in $(g disk_cold_casync_requests) requests   ratio $(ratio "$(g disk_cold_bytes)" "$(g disk_cold_casync_bytes)")"
	sum "disk: warm seq read 1M" \
		"circ $(calc "$(g disk_seq_circ_bps) / 1e6" 0) MB/s   raw $(calc "$(g disk_seq_raw_bps) / 1e6" 0) MB/s   ratio $(ratio "$(g disk_seq_circ_bps)" "$(g disk_seq_raw_bps)")"
	sum "disk: warm rand read 4K" \
		"circ $(calc "$(g disk_rand_circ_iops)" 0) IOPS   raw $(calc "$(g disk_rand_raw_iops)" 0) IOPS   ratio $(ratio "$(g disk_rand_circ_iops)" "$(g disk_rand_raw_iops)")   (O_DIRECT: ratio $(ratio "$(g disk_randd_circ_iops)" "$(g disk_randd_raw_iops)"))"
	sum "disk: update v1 -> v2" \
		"circ $(s disk_upd_s) s, $(human "$(g disk_upd_wire_bytes)") in $(g disk_upd_wire_requests) req   casync --seed $(s disk_upd_casync_s) s, $(human "$(g disk_upd_casync_bytes)") in $(g disk_upd_casync_requests) req   ratio $(ratio "$(g disk_upd_s)" "$(g disk_upd_casync_s)") s, $(ratio "$(g disk_upd_wire_bytes)" "$(g disk_upd_casync_bytes)") bytes   (manifest format 1: $(human "$(g disk_upd_f1_wire_bytes)"), ratio $(ratio "$(g disk_upd_wire_bytes)" "$(g disk_upd_f1_wire_bytes)"))"
	sum "disk: overlay rand write 4K" \
		"circ $(calc "$(g disk_write_circ_iops)" 0) IOPS   raw $(calc "$(g disk_write_raw_iops)" 0) IOPS   ratio $(ratio "$(g disk_write_circ_iops)" "$(g disk_write_raw_iops)")   (fsync every 64)"
else
	sum "lazy disk" "skipped: $(g disk_skipped)"
fi
if [ -z "$(g boot_skipped)" ]; then
	sum "boot Debian, cold (QEMU TCG)" \
		"circ $(s boot_cold_s) s   raw copy $(s boot_raw_s) s   ratio $(ratio "$(g boot_cold_s)" "$(g boot_raw_s)")   (fetched $(human "$(g boot_cold_bytes)") in $(g boot_cold_requests) req, $(calc "100 * $(g boot_cold_blocks) * 65536 / $(g boot_image_size)" 1)% of the image in 64K blocks; the boot read $(calc "100 * $(g boot_read_blocks) * 65536 / $(g boot_image_size)" 1)%)"
	sum "boot Debian, prefetch" \
		"circ $(s boot_pre_s) s   no prefetch $(s boot_nopre_s) s   raw copy $(s boot_raw2_s) s   ratio $(ratio "$(g boot_pre_s)" "$(g boot_raw2_s)") (raw), $(ratio "$(g boot_pre_s)" "$(g boot_nopre_s)") (no prefetch)"
else
	sum "boot Debian (QEMU TCG)" "skipped: $(g boot_skipped)"
fi
if [ -z "$(g hv_skipped)" ]; then
	sum "hv: exec to first serial byte" \
		"hv $(calc "$(g hv_start_first_byte_s) * 1000" 1) ms   QEMU microvm $(calc "$(g hv_start_qemu_microvm_first_byte_s) * 1000" 1) ms   ratio $(ratio "$(g hv_start_first_byte_s)" "$(g hv_start_qemu_microvm_first_byte_s)")   (QEMU pc $(calc "$(g hv_start_qemu_pc_first_byte_s) * 1000" 1) ms, ratio $(ratio "$(g hv_start_first_byte_s)" "$(g hv_start_qemu_pc_first_byte_s)"); hv's first KVM_RUN at $(calc "$(g hv_start_first_run_s) * 1000" 1) ms)"
	sum "hv: exits per 4K read" \
		"depth 1: $(g hv_exits_qd1) of $(g hv_regs_qd1) register accesses, ratio $(ratio "$(g hv_exits_qd1)" "$(g hv_regs_qd1)")   depth 32: $(g hv_exits_qd32) of $(g hv_regs_qd32), ratio $(ratio "$(g hv_exits_qd32)" "$(g hv_regs_qd32)")   (notifies take none: ioeventfd)"
else
	sum "hv under KVM" "skipped: $(g hv_skipped)"
fi
sum "virtio-net model, 1500 B" \
	"tx $(calc "$(g vnet_tx_1500_fps) / 1e6" 2) M/s   rx $(calc "$(g vnet_rx_1500_fps) / 1e6" 2) M/s   memcpy $(calc "$(g vnet_memcpy_1500_fps) / 1e6" 2) M/s   ratio $(ratio "$(g vnet_tx_1500_fps)" "$(g vnet_memcpy_1500_fps)") (tx), $(ratio "$(g vnet_rx_1500_fps)" "$(g vnet_memcpy_1500_fps)") (rx)"
if [ -z "$(g vnet_kvm_skipped)" ]; then
	sum "virtio-net exits per frame" \
		"to hv $(g vnet_exits_per_frame)   notifications $(g vnet_notifies_per_frame)   goal 0.0312 (one a batch of 32)"
fi
sum "VNC full-screen updates" \
	"$(calc "$(g vnc_fps)" 0)/s   loopback socket $(calc "$(g vnc_socket_fps)" 0)/s   ratio $(ratio "$(g vnc_fps)" "$(g vnc_socket_fps)")   (no client: $(g vnc_idle_wakeups) wake-ups, $(g vnc_idle_cpu_s) CPU-s)"
if [ -z "$(g migrate_skipped)" ]; then
	sum "migrate: check-in after 64 MiB" \
		"circ $(human "$(g mig_push64_bytes)") in $(s mig_push64_s) s   goal $(human "$(g mig_push64_goal)") (ratio $(ratio "$(g mig_push64_bytes)" "$(g mig_push64_goal)"))   casync+index $(human "$(g mig_push64_casync_bytes)") in $(s mig_push64_casync_s) s (ratio $(ratio "$(g mig_push64_bytes)" "$(g mig_push64_casync_bytes)"))   raw upload $(s mig_push64_raw_s) s"
	sum "migrate: check-in after 1 MiB" \
		"circ $(human "$(g mig_push1_bytes)") in $(s mig_push1_s) s   goal $(human "$(g mig_push1_goal)") (ratio $(ratio "$(g mig_push1_bytes)" "$(g mig_push1_goal)"))   casync+index $(human "$(g mig_push1_casync_bytes)") in $(s mig_push1_casync_s) s"
	sum "migrate: cold read 256 MiB" \
		"encrypted $(s mig_read_enc_s) s   public $(s mig_read_pub_s) s   ratio $(ratio "$(g mig_read_enc_s)" "$(g mig_read_pub_s)")"
	if [ -z "$(g mig_resume_skipped)" ]; then
		sum "migrate: resume on B (QEMU)" \
			"checkout to marker $(s mig_resume_s) s   raw disks $(s mig_resume_raw_s) s   ratio $(ratio "$(g mig_resume_s)" "$(g mig_resume_raw_s)")   fetched $(human "$(g mig_resume_bytes)")"
	fi
else
	sum "cold migration" "skipped: $(g migrate_skipped)"
fi
if [ -z "$(g lab_skipped)" ]; then
	lr() { echo "$(human "$(g "$1")") (ratio $(ratio "$(g "$1")" "$(g lab_one_bytes)"))"; }
	sum "lab: 20 machines, origin" \
		"direct $(lr lab_direct_bytes)   two peers $(lr lab_peers_bytes)   squid $(if [ -z "$(g lab_squid_skipped)" ]; then lr lab_squid_bytes; else echo skipped; fi)   ratio to one machine's $(human "$(g lab_one_bytes)"), goal 1.1"
else
	sum "lab mirrors" "skipped: $(g lab_skipped)"
fi
if [ -z "$(g kiosk_skipped)" ]; then
	sum "kiosk: cold boot (QEMU TCG)" \
		"boot kit from the repo $(s kiosk_kit_s) s   local kernel files $(s kiosk_local_s) s   ratio $(ratio "$(g kiosk_kit_s)" "$(g kiosk_local_s)")   (median of 3)"
else
	sum "kiosk boot" "skipped: $(g kiosk_skipped)"
fi
sum "virtio-blk model, 4K reads" \
	"depth 1: $(calc "$(g vblk_dev_mem_qd1_rps) / 1e6" 2) M/s   memcpy $(calc "$(g vblk_memcpy_qd1_rps) / 1e6" 2) M/s   ratio $(ratio "$(g vblk_dev_mem_qd1_rps)" "$(g vblk_memcpy_qd1_rps)")   (depth 32: ratio $(ratio "$(g vblk_dev_mem_qd32_rps)" "$(g vblk_memcpy_qd32_rps)"); tmpfs file vs pread: ratio $(ratio "$(g vblk_dev_file_qd1_rps)" "$(g vblk_pread_qd1_rps)"))"
printf '  (run took %s s; load average at start %s, at end %s: other work on the machine skews timings)\n' \
	"$(calc "$(now) - $t_start" 0)" "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)"
