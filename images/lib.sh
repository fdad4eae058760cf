# Shared by the image scripts (sourced, not run): messages, timing, and
# Debian packages fetched with `apt-get download` into one cache directory,
# ${CIRC_IMAGES_CACHE:-build/images} (relative to the repository root).
# Nothing is ever installed: packages are unpacked with dpkg -x / dpkg-deb.
# shellcheck shell=bash

images_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
images_cache=${CIRC_IMAGES_CACHE:-$images_root/build/images}
# Fixed timestamps make the initramfs and the image the same bytes on every
# build from the same packages (so a rebuilt image publishes no new blocks).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

me=${me:-$(basename "$0" .sh)}
die() {
	echo "$me: $*" >&2
	exit 1
}
say() { echo "$me: $*"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# secs_since START_MS: "1.234 s"
secs_since() {
	local ms=$(($(now_ms) - $1))
	printf '%d.%03d s' $((ms / 1000)) $((ms % 1000))
}
# human SIZE_BYTES: "1.9 MiB"
human() {
	awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.1f MiB", b / 1048576;
		else printf "%.1f KiB", b / 1024 }'
}
file_size() { stat -c %s "$1"; }

apt_updated=0
# apt_candidate PKG: prints the version apt would download, running
# apt-get update once (as root) when the package lists do not know PKG.
apt_candidate() {
	local ver
	ver=$(apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
	if { [ -z "$ver" ] || [ "$ver" = "(none)" ]; } && [ $apt_updated -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
		say "apt knows no $1 yet: apt-get update" >&2
		apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed (no network or no Debian mirror?)"
		apt_updated=1
		ver=$(apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
	fi
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		die "apt knows no package $1 (run apt-get update as root on a Debian 12 machine)"
	fi
	echo "$ver"
}

# cached_deb GLOB: prints the newest cached .deb whose name matches GLOB.
cached_deb() {
	local f
	for f in "$images_cache"/debs/$1; do
		if [ -f "$f" ]; then echo "$f"; fi
	done | sort -V | tail -n 1
}

# fetch_deb PKG: prints the path of PKG's candidate .deb in the cache,
# downloading it first when it is not there.
fetch_deb() {
	local pkg=$1 ver esc tmp deb log
	local -a opts=(-q)
	ver=$(apt_candidate "$pkg")
	esc=${ver//:/%3a}
	deb=$(cached_deb "${pkg}_${esc}_*.deb")
	if [ -n "$deb" ]; then
		echo "$deb"
		return
	fi
	mkdir -p "$images_cache/debs"
	tmp=$(mktemp -d "$images_cache/debs/tmp.XXXXXX")
	log=$tmp/apt.log
	# As root apt drops to the _apt user, which cannot write here.
	[ "$(id -u)" -eq 0 ] && opts+=(-o APT::Sandbox::User=root)
	if ! (cd "$tmp" && apt-get download "${opts[@]}" "$pkg=$ver") >"$log" 2>&1; then
		local why
		why=$(grep -E '^E:' "$log" | head -n 1 || true)
		rm -rf "$tmp"
		die "cannot download $pkg $ver: ${why:-apt-get download failed}"
	fi
	deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n 1)
	if [ -z "$deb" ]; then
		rm -rf "$tmp"
		die "apt-get download $pkg produced no .deb"
	fi
	mv "$deb" "$images_cache/debs/"
	rm -rf "$tmp"
	say "downloaded $(basename "$deb") ($(human "$(file_size "$images_cache/debs/$(basename "$deb")")"))" >&2
	echo "$images_cache/debs/$(basename "$deb")"
}

# busybox_deb: Debian's busybox-static, from the cache when it has one.
busybox_deb() {
	local deb
	deb=$(cached_deb 'busybox-static_*.deb')
	if [ -z "$deb" ] || [ "${CIRC_IMAGES_REFRESH:-0}" != 0 ]; then
		deb=$(fetch_deb busybox-static)
	fi
	echo "$deb"
}

# busybox_bin: prints the path of the static busybox binary, unpacked from
# its package into the cache once.
busybox_bin() {
	local deb dir tmp
	deb=$(busybox_deb)
	dir=$images_cache/busybox/$(basename "$deb" .deb)
	if [ ! -x "$dir/busybox" ]; then
		mkdir -p "$dir"
		tmp=$(mktemp -d "$dir/tmp.XXXXXX")
		dpkg -x "$deb" "$tmp" || die "dpkg -x $deb failed"
		[ -x "$tmp/bin/busybox" ] || die "$(basename "$deb") has no bin/busybox"
		mv "$tmp/bin/busybox" "$dir/busybox"
		rm -rf "$tmp"
	fi
	"$dir/busybox" true 2>/dev/null || die "$dir/busybox does not run on this machine"
	echo "$dir/busybox"
}
