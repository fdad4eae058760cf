#!/usr/bin/env bash
# make demo: circ's whole path on embedded defaults. Builds the boot kit and
# a small busybox OS image (cached in build/images after the first run),
# publishes the image as a signed repo, serves it on loopback, pulls it into
# a fresh state directory as another machine would, and boots it with
# `circ run --vmm auto` (QEMU here, hv where KVM runs at hardware speed).
# The guest prints its marker and powers off; then the demo says what was
# fetched and cleans up. With --shell (make demo-shell) you get the guest's
# shell instead; `poweroff` ends it.
set -euo pipefail

build=${1:-build}
shell=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
circ="$(cd "$build" && pwd)/circ"
images="$root/build/images"
work=$(mktemp -d "${TMPDIR:-/tmp}/circ-demo.XXXXXX")
serve_pid=
cleanup() {
	if [ -n "$serve_pid" ]; then
		kill "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }
now() { date +%s%N; }

step "Boot kit and image (Debian's kernel and busybox; cached after the first run)"
"$root/images/bootkit.sh" "$images/kit"
"$root/images/busybox.sh" "$images/busybox.img"
cd "$work"
cp "$images/busybox.img" image.img
size=$(stat -c %s image.img)

step "circ keygen publisher && circ publish --repo repo --key publisher.key --name busybox image.img"
"$circ" keygen publisher >/dev/null
"$circ" -v publish --repo repo --key publisher.key --name busybox image.img

step "circ serve --repo repo --listen 127.0.0.1:0"
"$circ" serve --repo repo --listen 127.0.0.1:0 --quiet >serve.out &
serve_pid=$!
url=
for _ in $(seq 1 100); do
	url=$(sed -n 's/^listening on //p' serve.out)
	[ -n "$url" ] && break
	sleep 0.05
done
[ -n "$url" ] || { echo "demo: circ serve did not start" >&2; exit 1; }
echo "serving on $url"

step "circ --state client pull $url busybox --key publisher.pub   (a fresh machine)"
"$circ" --state client pull "$url" busybox --key publisher.pub

append="root=/dev/vda quiet"
[ "$shell" = --shell ] || append="$append circ.test=poweroff"
step "circ --state client run --vmm auto --kernel vmlinuz --initrd initrd.img --disk busybox"
start=$(now)
"$circ" --state client run --vmm auto --kernel "$images/kit/vmlinuz" \
	--initrd "$images/kit/initrd.img" --append "$append" --disk busybox --mem 256M
end=$(now)

stats=$("$circ" --state client stats busybox --json)
fetched=$(echo "$stats" | grep -o '"fetched_bytes":[0-9]*' | cut -d: -f2)
requests=$(echo "$stats" | grep -o '"requests":[0-9]*' | cut -d: -f2)
step "Done"
echo "Booted a $((size >> 20)) MiB image over HTTP from a fresh state in $(((end - start) / 1000000)) ms,"
echo "fetching $fetched bytes ($(awk "BEGIN { printf \"%.1f\", 100 * $fetched / $size }")% of the image) in $requests requests;"
echo "every block verified against the signed manifest, the guest's writes kept locally."
