#!/usr/bin/env bash
# hv's network card and display, beside peers measured in the same run:
#   1. the virtio-net device model without KVM (bench/io_bench.c): frames a
#      second through hand-built rings, 64 and 1500 bytes, each way, beside
#      memcpy of the same bytes between the same buffers;
#   2. exits per frame under KVM: the test guest sends 64-byte frames in
#      batches of 32 with one notify each (ioeventfd: the write never
#      reaches hv) and completions interrupt through irqfd; exits to hv and
#      the guest's notifications, less a run without the frames;
#   3. the VNC server (hv/vnc.c): full-screen updates a second to a local
#      client (tests/tools/vnctool, raw encoding) while a thread redraws
#      the whole frame, beside the same bytes a frame through a loopback
#      TCP connection; what it costs with no client; and telling changed
#      pages by KVM's dirty log beside comparing the frame with a copy.
# 2 needs /dev/kvm and is skipped without it.
# Usage: bench/devices.sh [BUILD_DIR]   (bench/run.sh passes its build dir)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "${1:-${CIRC_BUILD:-build}}" && pwd)
if [ -z "${BENCH_WORK:-}" ]; then
	[ -x "$build/circ" ] || {
		echo "bench: $build/circ not built (run make)" >&2
		exit 1
	}
	mkdir -p "$build/bench"
	BENCH_WORK=$(mktemp -d "$build/bench/devices.XXXXXX")
	trap 'rm -rf "$BENCH_WORK"' EXIT
	trap 'exit 130' INT TERM
	export BENCH_WORK BENCH_RESULTS=$BENCH_WORK/results BENCH_CACHE=${CIRC_BENCH_CACHE:-$BENCH_WORK}
	export BENCH_RUNS=${CIRC_BENCH_RUNS:-3} CIRC=$BENCH_WORK/circ
	: >"$BENCH_RESULTS"
	cp "$build/circ" "$CIRC"
fi
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

D=$BENCH_WORK/devices
mkdir -p "$D"
FRAMES=1000000   # a device-model figure
NET_FRAMES=8192  # frames the test guest sends (a multiple of 32)
VNC_SECS=3       # a VNC or socket figure
SCREEN=1024x768

for f in guest/test-guest.elf io-bench vnctool; do
	[ -x "$build/$f" ] || [ -f "$build/$f" ] || die "$build/$f not built (make bench builds it)"
	cp "$build/$f" "$D/"
done
IO=$D/io-bench
GUEST=$D/test-guest.elf
VNCTOOL=$D/vnctool
mean() { meansd "$@" | cut -d' ' -f1; }
mfps() { printf '%s M/s' "$(calc "$1 / 1e6" 2)"; }

# --- 1: the device model ----------------------------------------------------------

say "virtio-net device model: $FRAMES frames a figure, $BENCH_RUNS runs"
"$IO" net --frames "$FRAMES" --runs "$BENCH_RUNS" >"$D/net.out" 2>"$D/net.err" ||
	die "io-bench net failed: $(tail -n 3 "$D/net.err")"
dev() { awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$D/net.out"; }
section "virtio-net device model without KVM: frames through hand-built rings, batches of 32, one thread, $BENCH_RUNS runs"
printf '  tx: guest buffers to a back end that copies each frame out; rx: a back end that copies one in\n'
printf '  peer: memcpy of the same bytes between the same buffers; ratio = device / peer in frames/s\n'
for len in 64 1500; do
	for dir in tx rx; do
		a=$(dev "${dir}_$len" 2)
		b=$(dev "memcpy_$len" 2)
		[ -n "$a" ] && [ -n "$b" ] || die "io-bench net printed no ${dir}_$len: $(cat "$D/net.out")"
		line "$dir, $len-byte frames" device "$(mfps "$a") ±$(calc "$(dev "${dir}_$len" 3) / 1e6" 2)" \
			memcpy "$(mfps "$b")" "$(ratio "$a" "$b")"
		printf '  %-32s (the device adds %s ns a frame)\n' "" "$(calc "1e9 / $a - 1e9 / $b" 0)"
		result "vnet_${dir}_${len}_fps" "$a"
		result "vnet_memcpy_${len}_fps" "$b"
	done
done

# --- 2: exits per frame ----------------------------------------------------------------

if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	section "virtio-net under KVM: skipped, no usable /dev/kvm"
	result vnet_kvm_skipped "no /dev/kvm"
else
	# net_run NAME N: the guest sends N frames on a restricted user network; stats in $D/nb.NAME.
	net_run() {
		timeout 300 "$CIRC" run --vmm hv --kernel "$GUEST" --append "net=3 netbench=$2" \
			--net user,restrict --mem 32M --stats >"$D/nb.$1.out" 2>"$D/nb.$1.err" </dev/null ||
			die "circ run (netbench=$2) failed: $(tail -n 3 "$D/nb.$1.err")"
		grep -q '^circ test guest: done' "$D/nb.$1.out" || die "the guest did not finish: $(cat "$D/nb.$1.out")"
	}
	net_get() {
		case $2 in
		exits) awk '/^hv: exits / { s += $NF } END { print s + 0 }' "$D/nb.$1.err" ;;
		out) sed -nE 's/^hv: net 1: user, .* ([0-9]+) out .*/\1/p' "$D/nb.$1.err" ;;
		notifies) sed -nE 's/^hv: net 1: .* ([0-9]+) notifications.*/\1/p' "$D/nb.$1.err" ;;
		interrupts) sed -nE 's/^hv: net 1: .* ([0-9]+) interrupts$/\1/p' "$D/nb.$1.err" ;;
		esac
	}
	say "exits per frame: the guest without frames, then with $NET_FRAMES"
	net_run base 0
	net_run frames "$NET_FRAMES"
	sent=$(($(net_get frames out) - $(net_get base out)))
	[ "$sent" = "$NET_FRAMES" ] || die "the card sent $sent frames, not $NET_FRAMES"
	ex=$(calc "($(net_get frames exits) - $(net_get base exits)) / $NET_FRAMES" 4)
	no=$(calc "($(net_get frames notifies) - $(net_get base notifies)) / $NET_FRAMES" 4)
	irq=$(calc "($(net_get frames interrupts) - $(net_get base interrupts)) / $NET_FRAMES" 4)
	section "virtio-net under KVM: $NET_FRAMES 64-byte frames from the test guest in batches of 32 (exact counts, one run each)"
	printf '  exits to hv: %s less a run without the frames; notifications: the guest'"'"'s notify writes,\n' "'circ run --stats'"
	printf '  each an exit that KVM hands to the worker'"'"'s ioeventfd; goal: at most one a batch (%s a frame)\n' \
		"$(calc "1 / 32" 4)"
	line "a frame: exits to hv" hv "$ex" "goal" "$(calc "1 / 32" 4)" "$(ratio "$ex" "$(calc "1 / 32" 4)")"
	line "a frame: notifications" hv "$no" "goal" "$(calc "1 / 32" 4)" "$(ratio "$no" "$(calc "1 / 32" 4)")"
	printf '  %-32s (interrupts: %s a frame, through irqfd, no exit to hv)\n' "" "$irq"
	result vnet_exits_per_frame "$ex"
	result vnet_notifies_per_frame "$no"
fi

# --- 3: the display ------------------------------------------------------------------

vnc_fps=() sock_fps=() vnc_bytes=()
say "VNC: $SCREEN redrawn whole, $VNC_SECS s a figure, $BENCH_RUNS runs, interleaved"
for _ in $(seq 1 "$BENCH_RUNS"); do
	port=$(free_port)
	"$IO" vnc-serve "$port" $((VNC_SECS + 2)) "$SCREEN" >"$D/vnc.out" 2>"$D/vnc.err" &
	pid=$!
	for _ in $(seq 1 100); do
		grep -q '^ready' "$D/vnc.out" && break
		sleep 0.05
	done
	read -r n s b < <("$VNCTOOL" "127.0.0.1:$port" fps "$VNC_SECS") || die "vnctool fps failed"
	wait "$pid" || die "io-bench vnc-serve failed: $(cat "$D/vnc.err")"
	vnc_fps+=("$(calc "$n / $s" 1)")
	vnc_bytes+=("$(calc "$b / $s" 0)")
	read -r n s b < <("$IO" socket "$VNC_SECS" "$SCREEN") || die "io-bench socket failed"
	sock_fps+=("$(calc "$n / $s" 1)")
done
# "CPU_SECONDS hv: display: N updates sent, N clients, N wake-ups"
read -r idle_cpu idle_wakeups < <("$IO" vnc-idle "$VNC_SECS" "$SCREEN" | tail -n 1 |
	sed -nE 's/^([0-9.]+) hv: display: .* ([0-9]+) wake-ups$/\1 \2/p')
[ -n "${idle_wakeups:-}" ] || die "io-bench vnc-idle printed no report"
read -r log_us cmp_us < <("$IO" dirty-log "$SCREEN" 2>/dev/null | awk '{ v[$1] = $2 } END { print v["dirtylog"], v["memcmp"] }') ||
	true
section "the VNC server: $SCREEN, 32-bit, a local client (raw encoding), $BENCH_RUNS runs"
printf '  a thread redraws the whole frame without pause; the client asks for each update as the last arrives\n'
printf '  peer: the same %s MB a frame written into a loopback TCP connection and read back\n' \
	"$(calc "${SCREEN%x*} * ${SCREEN#*x} * 4 / 1e6" 1)"
line "full-screen updates a second" vnc "$(meansd "${vnc_fps[@]}" | awk '{ printf "%.0f ±%.0f", $1, $2 }')" \
	socket "$(meansd "${sock_fps[@]}" | awk '{ printf "%.0f ±%.0f", $1, $2 }')" \
	"$(ratio "$(mean "${vnc_fps[@]}")" "$(mean "${sock_fps[@]}")")"
printf '  %-32s (%s MB/s to the client; the server also converts each pixel to the client'"'"'s format)\n' "" \
	"$(calc "$(mean "${vnc_bytes[@]}") / 1e6" 0)"
printf '  %-32s %s CPU-s in %s s, %s wake-ups (the thread sleeps in poll until a client comes)\n' \
	"no client" "$idle_cpu" "$VNC_SECS" "$idle_wakeups"
if [ -n "${log_us:-}" ]; then
	line "changed pages of a frame" "dirty log" "$log_us us" memcmp "$cmp_us us" "$(ratio "$log_us" "$cmp_us")"
	printf '  %-32s (KVM_GET_DIRTY_LOG on the framebuffer'"'"'s slot beside comparing it with a copy; the log also\n' ""
	printf '  %-32s  costs the guest a write-protect fault on the first write to a page after each look)\n' ""
	result vnc_dirtylog_us "$log_us"
	result vnc_memcmp_us "$cmp_us"
fi
result vnc_fps "$(mean "${vnc_fps[@]}")"
result vnc_socket_fps "$(mean "${sock_fps[@]}")"
result vnc_idle_cpu_s "$idle_cpu"
result vnc_idle_wakeups "$idle_wakeups"
