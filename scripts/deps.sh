#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only those missing.
# Usage: scripts/deps.sh build|bench|fuzz|demo
set -euo pipefail

build_pkgs=(gcc make pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libzstd-dev libxxhash-dev
	libssl-dev libmicrohttpd-dev libcrypt-dev libslirp-dev libglib2.0-dev libvncserver-dev libpng-dev check e2fsprogs zstd curl nginx-light openssl
	qemu-utils qemu-system-x86 util-linux iproute2 acpica-tools apache2-utils squid jq clang-format help2man man-db systemd
	debhelper dpkg-dev lintian rsync)
bench_pkgs=(casync fio hyperfine debootstrap qemu-system-x86)
fuzz_pkgs=(clang libclang-rt-14-dev)

case "${1:-build}" in
build) want=("${build_pkgs[@]}") ;;
bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
fuzz) want=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
demo) want=("${build_pkgs[@]}") ;;
*) echo "deps.sh: unknown profile '$1'" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]} (run as root, or install them)" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
