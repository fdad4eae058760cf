#!/usr/bin/env bash
# hv, the KVM hypervisor, beside peers measured in the same run:
#   1. start-up: exec to the test guest's first serial byte (and, from hv's
#      own clock, to its first KVM_RUN), beside QEMU (-M microvm and -M pc,
#      KVM) starting a 64 KiB flat "BIOS" that writes one byte to the UART
#      at its reset vector; both guests then power off at once;
#   2. VM exits per virtio-blk request: the test guest's 4 KiB reads at
#      queue depth 1 and 32 (polled, the ISR read once per completed batch
#      as an INTx handler does), exit counts from `circ run --stats` minus
#      those of a run of the same guest without the reads, beside the
#      device-register accesses the guest made (what a VMM without
#      ioeventfd would take as exits);
#   3. the virtio-blk device model without KVM (bench/virtio_bench.c):
#      virtio_blk_process over hand-built rings, 4 KiB reads, beside memcpy
#      of the same bytes (memory backend) and pread of them (file on tmpfs).
# 1 and 2 need /dev/kvm and are skipped without it; 3 always runs.
# Usage: bench/hv.sh [BUILD_DIR]   (bench/run.sh passes its build dir; run
# alone, it makes its own scratch directory and prints its section).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "${1:-${CIRC_BUILD:-build}}" && pwd)
if [ -z "${BENCH_WORK:-}" ]; then
	# Alone, not under bench/run.sh: what run.sh would have set up.
	[ -x "$build/circ" ] || {
		echo "bench: $build/circ not built (run make)" >&2
		exit 1
	}
	mkdir -p "$build/bench"
	BENCH_WORK=$(mktemp -d "$build/bench/hv.XXXXXX")
	trap 'rm -rf "$BENCH_WORK"' EXIT
	trap 'exit 130' INT TERM
	export BENCH_WORK BENCH_RESULTS=$BENCH_WORK/results BENCH_CACHE=${CIRC_BENCH_CACHE:-$BENCH_WORK}
	export BENCH_RUNS=${CIRC_BENCH_RUNS:-3} CIRC=$BENCH_WORK/circ
	: >"$BENCH_RESULTS"
	cp "$build/circ" "$CIRC"
fi
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

H=$BENCH_WORK/hv
mkdir -p "$H"
MEM=64M
START_RUNS=$((BENCH_RUNS < 10 ? 10 : BENCH_RUNS)) # start-ups take tens of ms: more runs
QD_READS=1024                                     # reads per queue-depth run (a multiple of 32)
DEV_REQS=200000                                   # requests per device-model measurement

# Private copies, as run.sh does for circ: a rebuild during the run changes nothing.
[ -f "$build/guest/test-guest.elf" ] || die "$build/guest/test-guest.elf not built (run make)"
GUEST=$H/test-guest.elf
cp "$build/guest/test-guest.elf" "$GUEST"
VB=$H/virtio-bench
if [ -x "$build/virtio-bench" ] && [ "$build/virtio-bench" -nt "$root/bench/virtio_bench.c" ] &&
	[ "$build/virtio-bench" -nt "$build/libcirc.a" ]; then
	cp "$build/virtio-bench" "$VB"
else
	# Not built by make (or stale): built here with the project's flags.
	[ -f "$build/libcirc.a" ] || die "$build/libcirc.a not built (run make)"
	say "building virtio-bench"
	# shellcheck disable=SC2046 # pkg-config's flags are words
	cc -O2 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I"$root" -pthread \
		"$root/bench/virtio_bench.c" "$build/libcirc.a" \
		$(pkg-config --cflags --libs fuse3 libcurl libzstd libxxhash libcrypto libmicrohttpd libcrypt) -lm \
		-o "$VB" 2>"$H/cc.err" || die "building virtio-bench failed: $(tail -n 3 "$H/cc.err")"
fi

ms() { calc "$1 * 1000" "${2:-1}"; }
# ms_sd VALUE...: "MEAN ms ±SD" of seconds.
ms_sd() {
	local m
	m=$(meansd "$@")
	printf '%s ms ±%s' "$(ms "${m% *}")" "$(ms "${m#* }")"
}
mean() { meansd "$@" | cut -d' ' -f1; }
# rate R: requests a second as "1.23 M/s".
rate() { printf '%s M/s' "$(calc "$1 / 1e6" 2)"; }

# --- 1 and 2: hv under KVM ----------------------------------------------------

kvm_ok=1
if [ ! -c /dev/kvm ]; then
	kvm_ok=0 why="no /dev/kvm"
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	kvm_ok=0 why="no permission on /dev/kvm"
elif ! command -v qemu-system-x86_64 >/dev/null; then
	die "qemu-system-x86_64 is missing (scripts/deps.sh bench installs it)"
fi

if [ "$kvm_ok" = 0 ]; then
	section "hv: skipped, $why"
	result hv_skipped "$why"
else
	ips=$("$VB" kvm-speed 2>"$H/speed.err") || die "measuring KVM failed: $(cat "$H/speed.err")"
	result hv_kvm_ips "$ips"

	# The peer's guest: at the reset vector (real mode, CS:IP f000:fff0, the
	# last 16 bytes of the BIOS image): mov dx, 0x3f8; mov al, 'c';
	# out dx, al; out 0xf4, al (isa-debug-exit: QEMU exits with status
	# 'c' << 1 | 1 = 199); hlt; jmp back to the hlt.
	BIOS=$H/bios.bin
	{
		head -c 65520 /dev/zero
		printf '\xba\xf8\x03\xb0\x63\xee\xe6\xf4\xf4\xeb\xfd'
		head -c 5 /dev/zero
	} >"$BIOS"
	QEMU=(qemu-system-x86_64 -accel kvm -m "$MEM" -nodefaults -no-user-config -display none
		-serial stdio -bios "$BIOS" -device "isa-debug-exit,iobase=0xf4,iosize=4")
	HV_START=("$CIRC" run --vmm hv --kernel "$GUEST" --append byte=1 --mem "$MEM" --stats)

	# start WHO: one start-up, timed by virtio-bench first-byte; appends
	# "FIRST_BYTE_S EXIT_S" (hv: then its own first-KVM_RUN and first-byte ms)
	# to $H/start.WHO.
	start() {
		local who=$1 out t want first t_exit status
		case $who in
		hv) t=$("$VB" first-byte "$H/start.out" "${HV_START[@]}" 2>"$H/start.err" </dev/null) ;;
		*) t=$("$VB" first-byte "$H/start.out" "${QEMU[@]}" -M "$who" 2>"$H/start.err" </dev/null) ;;
		esac || die "$who: could not run: $(tail -n 3 "$H/start.err")"
		read -r first t_exit status <<<"$t"
		if [ "$who" = hv ]; then want=0; else want=199; fi
		if [ "$status" != "$want" ] || [ "$(cat "$H/start.out")" != c ]; then
			die "$who: exit status $status (want $want), output '$(head -c 80 "$H/start.out")': $(tail -n 3 "$H/start.err")"
		fi
		if [ "$who" = hv ]; then
			out=$(sed -nE 's/^hv: first KVM_RUN after ([0-9.]+) ms, first serial byte after ([0-9.]+) ms$/\1 \2/p' "$H/start.err")
			[ -n "$out" ] || die "hv: no start-up timings in circ run --stats: $(cat "$H/start.err")"
			# hv prints milliseconds; kept in seconds as the rest.
			awk -v f="$first" -v e="$t_exit" '{ printf "%s %s %.6f %.6f\n", f, e, $1 / 1000, $2 / 1000 }' \
				<<<"$out" >>"$H/start.$who"
		else
			echo "$first $t_exit" >>"$H/start.$who"
		fi
	}
	say "start-up: hv, QEMU -M microvm, QEMU -M pc, interleaved, $START_RUNS runs each (and one untimed)"
	for who in hv microvm pc; do
		start "$who"
		: >"$H/start.$who"
	done
	for _ in $(seq 1 "$START_RUNS"); do
		for who in hv microvm pc; do start "$who"; done
	done
	col() { cut -d' ' -f"$1" "$H/start.$2"; }
	# hv's exec to first KVM_RUN: its first byte (seen by the reader) less what
	# hv's own clock says lay between its first KVM_RUN and that byte.
	awk '{ printf "%.6f\n", $1 - ($4 - $3) }' "$H/start.hv" >"$H/start.hv.run"
	mapfile -t hv_first < <(col 1 hv)
	mapfile -t hv_exit < <(col 2 hv)
	mapfile -t hv_run < <(cat "$H/start.hv.run")
	mapfile -t hv_in_run < <(col 3 hv)
	mapfile -t hv_in_byte < <(col 4 hv)
	mapfile -t mv_first < <(col 1 microvm)
	mapfile -t mv_exit < <(col 2 microvm)
	mapfile -t pc_first < <(col 1 pc)
	mapfile -t pc_exit < <(col 2 pc)

	section "hv start-up: exec to the guest's first serial byte, $MEM, 1 vCPU, $START_RUNS runs each, interleaved"
	printf '  KVM here runs guest code at %s M instructions/s (VT-x, AMD-V: thousands): both VMMs are slowed\n' \
		"$(calc "$ips / 1e6" 1)"
	printf '  peer: %s (%s), its guest a 64 KiB flat BIOS writing the byte at the reset vector\n' \
		"$(qemu-system-x86_64 --version | head -n 1 | sed 's/ (.*//')" "-accel kvm -nodefaults -bios"
	line "exec -> first serial byte" hv "$(ms_sd "${hv_first[@]}")" "QEMU microvm" "$(ms_sd "${mv_first[@]}")" \
		"$(ratio "$(mean "${hv_first[@]}")" "$(mean "${mv_first[@]}")")"
	line "" "" "" "QEMU pc" "$(ms_sd "${pc_first[@]}")" "$(ratio "$(mean "${hv_first[@]}")" "$(mean "${pc_first[@]}")")"
	printf '  %-32s %-11s %-25s %s\n' "exec -> first KVM_RUN" hv "$(ms_sd "${hv_run[@]}")" \
		"(QEMU: at its first byte, see below)"
	printf '  %-32s %-11s %-25s %s\n' "  of which in hv_run" hv "$(ms_sd "${hv_in_run[@]}")" \
		"(hv's clock; to its first byte $(ms_sd "${hv_in_byte[@]}"))"
	line "exec -> exit (byte, power-off)" hv "$(ms_sd "${hv_exit[@]}")" "QEMU microvm" "$(ms_sd "${mv_exit[@]}")" \
		"$(ratio "$(mean "${hv_exit[@]}")" "$(mean "${mv_exit[@]}")")"
	line "" "" "" "QEMU pc" "$(ms_sd "${pc_exit[@]}")" "$(ratio "$(mean "${hv_exit[@]}")" "$(mean "${pc_exit[@]}")")"
	printf '  (QEMU'"'"'s first KVM_RUN ends at the byte, its guest'"'"'s 3rd instruction; it leaves by isa-debug-exit,\n'
	printf '   an exit() at once where hv powers off through PM1 and closes its VM; the kernel destroys both VMs)\n'
	result hv_start_first_byte_s "$(mean "${hv_first[@]}")"
	result hv_start_first_run_s "$(mean "${hv_run[@]}")"
	result hv_start_exit_s "$(mean "${hv_exit[@]}")"
	result hv_start_qemu_microvm_first_byte_s "$(mean "${mv_first[@]}")"
	result hv_start_qemu_pc_first_byte_s "$(mean "${pc_first[@]}")"
	result hv_start_qemu_microvm_exit_s "$(mean "${mv_exit[@]}")"
	result hv_start_qemu_pc_exit_s "$(mean "${pc_exit[@]}")"

	# --- 2: exits per request -------------------------------------------------

	DISK=$H/disk.raw
	head -c $((1 << 20)) /dev/urandom >"$DISK"
	# qd_run NAME ARGS: the bench guest on DISK; its stats in $H/qd.NAME.
	qd_run() {
		timeout 300 "$CIRC" run --vmm hv --kernel "$GUEST" --append "bench=1 $2" --disk-file "$DISK" \
			--mem "$MEM" --stats >"$H/qd.$1.out" 2>"$H/qd.$1.err" </dev/null ||
			die "circ run ($2) failed: $(tail -n 3 "$H/qd.$1.err")"
		grep -q '^circ test guest: done' "$H/qd.$1.out" || die "the bench guest ($2) did not finish: $(cat "$H/qd.$1.out")"
	}
	# qd_get NAME WHAT: a count from run NAME: exits (all), io, mmio, reads
	# (the disk's), notifies, isr, errors (the guest's).
	qd_get() {
		case $2 in
		exits) awk '/^hv: exits / { s += $NF } END { print s + 0 }' "$H/qd.$1.err" ;;
		io | mmio) awk -v w="$2" '$1 == "hv:" && $2 == "exits" && $3 == w { s += $NF } END { print s + 0 }' "$H/qd.$1.err" ;;
		reads) sed -nE 's/^hv: disk 1: ([0-9]+) reads.*/\1/p' "$H/qd.$1.err" ;;
		notifies) sed -nE 's/^bench: notifies=0*([0-9]+) .*/\1/p' "$H/qd.$1.out" ;;
		isr) sed -nE 's/^bench: .* isr-reads=0*([0-9]+) .*/\1/p' "$H/qd.$1.out" ;;
		errors) sed -nE 's/^bench: .* errors=0*([0-9]+)$/\1/p' "$H/qd.$1.out" ;;
		esac
	}
	say "exits per request: the bench guest without reads, with $QD_READS at depth 1, with $QD_READS at depth 32"
	qd_run base ""
	qd_run qd1 "qd1=$QD_READS"
	qd_run qd32 "qd32=$QD_READS"
	section "hv: VM exits per virtio-blk request, $QD_READS 4 KiB reads polled by the test guest (exact counts, one run each)"
	printf '  exits: %s less a run of the same guest without the reads; peer: the guest'"'"'s\n' "'circ run --stats'"
	printf '  device-register accesses (notify writes + ISR reads), each an exit without ioeventfd\n'
	printf '  (the run without reads: %s io exits, serial output and PCI set-up; %s mmio, virtio set-up)\n' \
		"$(qd_get base io)" "$(qd_get base mmio)"
	for q in qd1 qd32; do
		[ "$(qd_get "$q" errors)" = 0 ] || die "$q: the guest saw $(qd_get "$q" errors) failed reads"
		reads=$(($(qd_get "$q" reads) - $(qd_get base reads)))
		[ "$reads" = "$QD_READS" ] || die "$q: the disk served $reads reads, not $QD_READS"
		ex=$(calc "($(qd_get "$q" exits) - $(qd_get base exits)) / $QD_READS" 3)
		io=$(calc "($(qd_get "$q" io) - $(qd_get base io)) / $QD_READS" 3)
		mmio=$(calc "($(qd_get "$q" mmio) - $(qd_get base mmio)) / $QD_READS" 3)
		regs=$(calc "($(qd_get "$q" notifies) + $(qd_get "$q" isr)) / $QD_READS" 3)
		line "depth ${q#qd}: exits per request" hv "$ex (mmio $mmio, io $io)" "accesses" "$regs" "$(ratio "$ex" "$regs")"
		result "hv_exits_$q" "$ex"
		result "hv_regs_$q" "$regs"
	done
	printf '  (the in-kernel LAPIC and IOAPIC take the interrupt'"'"'s EOI without leaving KVM, so no exit is counted for it)\n'
fi

# --- 3: the device model alone --------------------------------------------------

dir=/dev/shm
[ -d "$dir" ] && [ -w "$dir" ] || dir=$H
say "virtio-blk device model: $DEV_REQS requests a figure, $BENCH_RUNS runs, file in $dir"
"$VB" device --reqs "$DEV_REQS" --runs "$BENCH_RUNS" --dir "$dir" >"$H/device.out" 2>"$H/device.err" ||
	die "virtio-bench device failed: $(tail -n 3 "$H/device.err")"
dev() { awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$H/device.out"; }
section "virtio-blk device model without KVM: 4 KiB reads at random offsets of a 64 MiB disk, one thread, $BENCH_RUNS runs"
printf '  virtio_blk_process on hand-built rings in fake guest memory; peers move the same bytes into the same buffers\n'
printf '  ratio = device / peer in requests/s (below 1 is slower)\n'
for q in qd1 qd32; do
	for pair in "dev_mem memcpy memory" "dev_file pread tmpfs"; do
		read -r a b be <<<"$pair"
		ra=$(dev "${a}_$q" 2)
		rb=$(dev "${b}_$q" 2)
		[ -n "$ra" ] || die "virtio-bench device printed no ${a}_$q: $(cat "$H/device.out")"
		[ -n "$rb" ] || die "virtio-bench device printed no ${b}_$q: $(cat "$H/device.out")"
		line "depth ${q#qd}, $be backend" device "$(rate "$ra") ±$(calc "$(dev "${a}_$q" 3) / 1e6" 2)" \
			"$b" "$(rate "$rb") ±$(calc "$(dev "${b}_$q" 3) / 1e6" 2)" "$(ratio "$ra" "$rb")"
		printf '  %-32s (the device adds %s ns a request)\n' "" "$(calc "1e9 / $ra - 1e9 / $rb" 0)"
		result "vblk_${a}_${q}_rps" "$ra"
		result "vblk_${b}_${q}_rps" "$rb"
	done
done
