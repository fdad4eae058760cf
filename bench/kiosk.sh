#!/usr/bin/env bash
# A kiosk's cold boot (QEMU TCG, the busybox image over HTTP from circ serve,
# a fresh state each time, page cache dropped): `circ run URL NAME` booting
# the version's own boot kit fetched from the repository, beside `circ pull`
# and `circ run --kernel --initrd` of the same kernel files kept locally.
# From the command's start to the guest's power-off; median of 3, interleaved.
# Skipped without root, /dev/fuse, QEMU or the boot kit.
# Usage: bench/kiosk.sh [BUILD_DIR]   (bench/run.sh calls it)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/alone.sh
. "$root/bench/alone.sh" kiosk "${1:-}"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

section "kiosk: a cold boot with the repository's boot kit beside local kernel files (QEMU TCG)"
IMAGES=$root/build/images
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || ! command -v qemu-system-x86_64 >/dev/null ||
	! "$root/images/bootkit.sh" "$IMAGES/kit" >/dev/null 2>&1 ||
	! "$root/images/busybox.sh" "$IMAGES/busybox.img" >/dev/null 2>&1; then
	result kiosk_skipped "needs root, /dev/fuse, QEMU and the boot kit"
	echo "  skipped: needs root, /dev/fuse, QEMU and the boot kit"
	exit 0
fi
W=$BENCH_WORK/kiosk
mkdir -p "$W"
bench_key
cmdline="quiet root=/dev/vda circ.test=poweroff"
"$CIRC" publish --repo "$W/repo" --key "$KEY" --name bb --kernel "$IMAGES/kit/vmlinuz" \
	--initrd "$IMAGES/kit/initrd.img" --cmdline "$cmdline" "$IMAGES/busybox.img" >/dev/null
"$CIRC" serve --repo "$W/repo" --listen 127.0.0.1:0 --quiet >"$W/serve.out" 2>/dev/null &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null; [ -z "${BENCH_ALONE:-}" ] || rm -rf "$BENCH_WORK"' EXIT
for _ in $(seq 1 100); do
	URL=$(sed -n 's/^listening on //p' "$W/serve.out")
	[ -n "$URL" ] && break
	sleep 0.05
done
[ -n "$URL" ] || die "circ serve did not start"

kit=() local_files=()
for r in 1 2 3; do
	for how in kit local; do
		st=$W/st-$how-$r
		sync
		echo 3 >/proc/sys/vm/drop_caches
		t0=$(now)
		if [ $how = kit ]; then
			timeout 300 "$CIRC" --state "$st" run "$URL" bb --key "$PUB" --vmm qemu --mem 256M \
				</dev/null >"$W/out" 2>&1 || die "kiosk boot: $(tail -n 3 "$W/out")"
		else
			"$CIRC" --state "$st" pull "$URL" bb --key "$PUB" >/dev/null
			timeout 300 "$CIRC" --state "$st" run --vmm qemu --mem 256M --kernel "$IMAGES/kit/vmlinuz" \
				--initrd "$IMAGES/kit/initrd.img" --append "$cmdline" --disk bb \
				</dev/null >"$W/out" 2>&1 || die "local boot: $(tail -n 3 "$W/out")"
		fi
		t1=$(now)
		grep -q "CIRC-BOOT-OK" "$W/out" || die "no boot marker: $(tail -n 3 "$W/out")"
		if [ $how = kit ]; then kit+=("$(calc "$t1 - $t0" 3)"); else local_files+=("$(calc "$t1 - $t0" 3)"); fi
	done
done
k=$(median "${kit[@]}")
l=$(median "${local_files[@]}")
line "cold boot to power-off" "boot kit" "$k s" "local files" "$l s" "$(ratio "$k" "$l")"
kb=$(($(stat -c %s "$IMAGES/kit/vmlinuz") + $(stat -c %s "$IMAGES/kit/initrd.img")))
printf '  (the kit: %s of kernel and initrd fetched as blocks and verified before the boot)\n' "$(human "$kb")"
result kiosk_kit_s "$k"
result kiosk_local_s "$l"
