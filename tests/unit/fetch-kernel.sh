#!/usr/bin/env bash
# Fetches Debian's stock kernel (the package linux-image-amd64 depends on)
# for the boot loader's unit tests and prints the path of its vmlinuz.
# Cached: a second run prints the path without touching the network.
# Usage: tests/unit/fetch-kernel.sh [DIR]   (default: build/kernel)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/build/kernel}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

find_vmlinuz() {
	[ -d "$dir/root/boot" ] || return 0
	find "$dir/root/boot" -maxdepth 1 -name 'vmlinuz-*' -type f | sort | tail -n 1
}

vmlinuz=$(find_vmlinuz)
if [ -n "$vmlinuz" ]; then
	echo "$vmlinuz"
	exit 0
fi

pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$pkg" ]; then
	echo "fetch-kernel: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
	exit 1
fi

# Unpack into a scratch directory and rename it into place, so an
# interrupted run never leaves a half-extracted tree that looks cached.
tmp=$(mktemp -d "$dir/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q "$pkg" >&2)
deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n 1)
if [ -z "$deb" ]; then
	echo "fetch-kernel: apt-get download $pkg produced no .deb" >&2
	exit 1
fi
mkdir "$tmp/root"
# Only boot/ is needed; the package's modules are another 400 MB.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/root" ./boot
rm -rf "$dir/root"
mv "$tmp/root" "$dir/root"

vmlinuz=$(find_vmlinuz)
if [ -z "$vmlinuz" ]; then
	echo "fetch-kernel: $pkg has no boot/vmlinuz-*" >&2
	exit 1
fi
echo "$vmlinuz"
