#!/usr/bin/env bash
# make demo: the publisher's whole path on embedded defaults. Builds a sample
# ext4 image, publishes it as a signed repo, serves it on loopback and
# verifies every block over HTTP, then says what it did and cleans up.
set -euo pipefail

build=${1:-build}
circ="$(cd "$build" && pwd)/circ"
work=$(mktemp -d "${TMPDIR:-/tmp}/circ-demo.XXXXXX")
serve_pid=
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

step() { printf '\n==> %s\n' "$*"; }

step "Building a 64 MiB ext4 sample image from a tree of files (mke2fs -d)"
mkdir -p tree/etc tree/usr/share tree/usr/bin
cp -r /usr/share/common-licenses tree/usr/share/ 2>/dev/null || true
mapfile -t bins < <(find /usr/bin -maxdepth 1 -type f -size -2M | sort | head -n 60)
cp -t tree/usr/bin "${bins[@]}"
for i in $(seq 1 200); do seq "$i" $((i * 50)) >"tree/etc/file$i.txt"; done
head -c $((4 << 20)) /dev/urandom >tree/usr/random.bin
mke2fs -q -t ext4 -d tree -F image.img 64M
echo "image.img: $(du -h --apparent-size image.img | cut -f1), $(du -h image.img | cut -f1) non-sparse"

step "circ keygen publisher"
"$circ" keygen publisher >/dev/null
ls -l publisher.key publisher.pub

step "circ publish --repo repo --key publisher.key --name sample image.img"
"$circ" -v publish --repo repo --key publisher.key --name sample image.img

step "Changing one file and publishing version 2 (only changed blocks are written)"
before=$(find repo/blocks -type f | wc -l)
seq 1 50000 | debugfs -w -R "write /dev/stdin etc/changed.txt" image.img >/dev/null 2>&1 ||
	printf 'changed' | dd of=image.img bs=1 seek=$((40 << 20)) conv=notrunc status=none
"$circ" -v publish --repo repo --key publisher.key --name sample image.img
echo "blocks in repo: $before -> $(find repo/blocks -type f | wc -l)"

step "circ serve --repo repo --listen 127.0.0.1:0"
"$circ" serve --repo repo --listen 127.0.0.1:0 --quiet >serve.out &
serve_pid=$!
for _ in $(seq 1 100); do
	url=$(sed -n 's/^listening on //p' serve.out)
	[ -n "$url" ] && break
	sleep 0.05
done
[ -n "$url" ] || { echo "circ serve did not start" >&2; exit 1; }
echo "serving on $url"

step "circ verify --url $url --key publisher.pub --name sample"
start=$(date +%s%N)
"$circ" verify --url "$url" --key publisher.pub --name sample
"$circ" verify --url "$url" --key publisher.pub --name sample --version 1
end=$(date +%s%N)

step "Damaging one block on the server: verify must name it"
victim=$(find repo/blocks -type f | sort | head -n 1)
printf 'X' | dd of="$victim" bs=1 seek=12 conv=notrunc status=none
if "$circ" verify --url "$url" --key publisher.pub --name sample; then
	echo "verify missed the damaged block" >&2
	exit 1
fi

step "Done"
echo "Published 2 versions of a 64 MiB image into $(du -sh repo | cut -f1) of signed,"
echo "content-addressed zstd blocks, served them over HTTP and verified every block"
echo "in $(((end - start) / 1000000)) ms; a damaged block was caught and named."
