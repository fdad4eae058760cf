#!/usr/bin/env bash
# Builds the boot kit for circ's Linux guests from Debian packages:
#   OUTDIR/vmlinuz         Debian's stock kernel (the linux-image-6.1.0-*-amd64
#                          package that linux-image-amd64 depends on)
#   OUTDIR/initrd.img      a small initramfs: static busybox, the modules that
#                          mount an ext4 root on virtio-blk over PCI and drive
#                          a virtio-net card and virtio keyboard and tablet,
#                          and an
#                          /init that mounts root= (default /dev/vda) and
#                          switches to its /sbin/init
#   OUTDIR/kernel.release  the kernel's release (what `uname -r` prints)
#   OUTDIR/modules.txt     the initramfs' modules, in load order
# Packages are fetched with `apt-get download` into the cache directory
# ${CIRC_IMAGES_CACHE:-build/images} and unpacked there with dpkg -x; nothing
# is installed. A second run with the same packages and script prints
# "cached" and returns at once; --refresh asks apt for the newest kernel and
# busybox again (after an apt-get update, say).
# Usage: images/bootkit.sh [--refresh] OUTDIR     (as root, on Debian 12)
set -euo pipefail

me=bootkit
# shellcheck source=images/lib.sh
. "$(dirname "$0")/lib.sh"

# What mounts an ext4 root on virtio-blk over PCI, the virtio-net card (eth0)
# and virtio-input (a display's keyboard and tablet); their dependencies come
# from the kernel's modules.dep. crc32c_generic is ext4's soft dependency
# (softdep pre: crypto-crc32c): ext4 and jbd2 checksum metadata with it, and
# unlike crc32c-intel it loads on every CPU (QEMU's default lacks SSE4.2).
modules=(virtio_pci virtio_blk virtio_net virtio_input crc32c_generic ext4)

usage() {
	echo "usage: images/bootkit.sh [--refresh] OUTDIR" >&2
	exit 2
}
refresh=0
out=
while [ $# -gt 0 ]; do
	case $1 in
	--refresh) refresh=1 ;;
	-h | --help)
		awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
		exit 0
		;;
	-*) usage ;;
	*)
		[ -z "$out" ] || usage
		out=$1
		;;
	esac
	shift
done
[ -n "$out" ] || usage
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get update, and the initramfs' /dev/console node)"
export CIRC_IMAGES_REFRESH=$refresh

start=$(now_ms)
mkdir -p "$out" "$images_cache/kernel"
out=$(cd "$out" && pwd)

work=
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT

# The kernel package: the cached one, else the one linux-image-amd64 depends on.
kdeb=
[ "$refresh" -eq 1 ] || kdeb=$(cached_deb 'linux-image-[0-9]*-amd64_*.deb')
if [ -z "$kdeb" ]; then
	apt_candidate linux-image-amd64 >/dev/null
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	[ -n "$kpkg" ] || die "linux-image-amd64 depends on no linux-image-*-amd64 package"
	kdeb=$(fetch_deb "$kpkg")
fi
bdeb=$(busybox_deb)

stamp="$(cat "$0" "$(dirname "$0")/lib.sh" | sha256sum | cut -c1-16) $(basename "$kdeb") $(basename "$bdeb")"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -f "$out/.stamp" ] &&
	[ "$(cat "$out/.stamp")" = "$stamp" ]; then
	say "cached: $out/vmlinuz ($(human "$(file_size "$out/vmlinuz")")," \
		"$(cat "$out/kernel.release")), $out/initrd.img ($(human "$(file_size "$out/initrd.img")"))" \
		"in $(secs_since "$start")"
	exit 0
fi
rm -f "$out/.stamp"

# Unpack the kernel package once into the cache and give it a modules.dep
# (the package ships none: its postinst runs depmod). busybox's depmod does
# it, so kmod is not needed.
bb=$(busybox_bin)
ktree=$images_cache/kernel/$(basename "$kdeb" .deb)
if [ ! -d "$ktree" ]; then
	say "unpacking $(basename "$kdeb") (dpkg -x) and running depmod"
	work=$(mktemp -d "$images_cache/kernel/tmp.XXXXXX")
	dpkg -x "$kdeb" "$work" || die "dpkg -x $kdeb failed"
	for d in "$work"/lib/modules/*/; do
		"$bb" depmod -b "$work" "$(basename "$d")" || die "depmod failed for $d"
	done
	mv "$work" "$ktree"
	work=
fi
kvers=("$ktree"/lib/modules/*/)
if [ ${#kvers[@]} -ne 1 ] || [ ! -d "${kvers[0]}" ]; then
	die "$(basename "$kdeb"): expected one lib/modules/VERSION"
fi
kver=$(basename "${kvers[0]}")
kmod=$ktree/lib/modules/$kver
vmlinuz=$ktree/boot/vmlinuz-$kver
config=$ktree/boot/config-$kver
if [ ! -f "$vmlinuz" ] || [ ! -f "$config" ]; then
	die "$(basename "$kdeb") has no boot/vmlinuz-$kver or config-$kver"
fi
[ -f "$kmod/modules.dep" ] || die "no modules.dep in $kmod"
for opt in CONFIG_BLK_DEV_INITRD CONFIG_DEVTMPFS; do
	grep -qx "$opt=y" "$config" || die "kernel $kver lacks $opt=y"
done
# The initramfs compressor: zstd where the kernel reads it, else gzip.
if grep -qx CONFIG_RD_ZSTD=y "$config" && command -v zstd >/dev/null; then
	compress=(zstd -q -19 -c)
elif grep -qx CONFIG_RD_GZIP=y "$config"; then
	compress=(gzip -9 -n -c)
else
	die "kernel $kver reads neither zstd nor gzip initramfs (CONFIG_RD_ZSTD, CONFIG_RD_GZIP)"
fi

# Resolve the modules and their dependencies from modules.dep, in load order
# (a module after everything it depends on).
modname() {
	local b=${1##*/}
	b=${b%%.ko*}
	echo "${b//-/_}"
}
declare -A mpath mdeps builtin seen
while IFS= read -r line; do
	p=${line%%:*}
	n=${p##*/}
	n=${n%%.ko*}
	n=${n//-/_}
	mpath[$n]=$p
	mdeps[$n]=${line#*:}
done <"$kmod/modules.dep"
if [ -f "$kmod/modules.builtin" ]; then
	while IFS= read -r p; do
		n=${p##*/}
		n=${n%%.ko*}
		builtin[${n//-/_}]=1
	done <"$kmod/modules.builtin"
fi
order=()
resolve() {
	local n=$1 d
	[ -z "${seen[$n]:-}" ] || return 0
	seen[$n]=1
	if [ -z "${mpath[$n]:-}" ]; then
		[ -n "${builtin[$n]:-}" ] && return 0
		die "kernel $kver has no module $n (modules.dep) and does not build it in"
	fi
	for d in ${mdeps[$n]}; do
		resolve "$(modname "$d")"
	done
	order+=("$n")
}
for m in "${modules[@]}"; do
	resolve "$m"
done

# The initramfs tree.
work=$(mktemp -d "${TMPDIR:-/tmp}/circ-bootkit.XXXXXX")
r=$work/root
mkdir -p "$r"/{bin,dev,etc,proc,sys,newroot,lib/modules}
cp "$bb" "$r/bin/busybox"
for a in $("$bb" --list); do
	[ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
done
mknod -m 600 "$r/dev/console" c 5 1
: >"$r/etc/modules"
for n in "${order[@]}"; do
	src=$kmod/${mpath[$n]}
	dst=$r/lib/modules/$n.ko
	# busybox insmod reads plain .ko files: unpack compressed modules here.
	case $src in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*) die "cannot read module $src" ;;
	esac
	echo "$n" >>"$r/etc/modules"
done

cat >"$r/init" <<'EOF'
#!/bin/sh
# circ initramfs: loads the modules that read an ext4 root on virtio-blk,
# mounts root= (default /dev/vda) and switches to its init (default
# /sbin/init). On failure: one "circ-initramfs: ..." line, then a shell, or
# power off when the command line has circ.poweroff_on_error.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
cmdline=$(cat /proc/cmdline)

fail() {
	echo "circ-initramfs: $*"
	case " $cmdline " in *" circ.poweroff_on_error "*) poweroff -f ;; esac
	echo "circ-initramfs: starting a shell (poweroff -f turns the machine off)"
	while :; do setsid cttyhack sh; done
}

root=/dev/vda fstype=ext4 mode=rw init=/sbin/init
for arg in $cmdline; do
	case $arg in
	root=*) root=${arg#root=} ;;
	rootfstype=*) fstype=${arg#rootfstype=} ;;
	init=*) init=${arg#init=} ;;
	ro | rw) mode=$arg ;;
	esac
done

for m in $(cat /etc/modules); do
	err=$(insmod "/lib/modules/$m.ko" 2>&1) || fail "cannot load module $m: ${err#insmod: }"
done

i=0
while :; do
	case $root in
	UUID=* | LABEL=*) dev=$(findfs "$root" 2>/dev/null) || dev= ;;
	*) dev=$root ;;
	esac
	[ -n "$dev" ] && [ -b "$dev" ] && break
	i=$((i + 1))
	[ $i -lt 100 ] || fail "cannot mount $root: no such block device after 10 s"
	sleep 0.1
done
err=$(mount -t "$fstype" -o "$mode" "$dev" /newroot 2>&1) || fail "cannot mount $root: ${err#mount: }"
[ -e "/newroot$init" ] || [ -L "/newroot$init" ] || fail "cannot start $init: not on $root"
for d in dev proc sys; do
	if [ -d "/newroot/$d" ]; then
		mount -o move "/$d" "/newroot/$d"
	else
		umount "/$d"
	fi
done
exec switch_root /newroot "$init" "$@"
EOF
chmod 755 "$r/init"

find "$r" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$r" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort |
	"$bb" cpio -o -H newc --ignore-devno --renumber-inodes 2>/dev/null) |
	"${compress[@]}" >"$work/initrd.img"
[ -s "$work/initrd.img" ] || die "cpio produced no initramfs"

cp "$vmlinuz" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$work/initrd.img" "$out/initrd.img"
echo "$kver" >"$out/kernel.release"
printf '%s\n' "${order[@]}" >"$out/modules.txt"
echo "$stamp" >"$out/.stamp"

mods=$(du -cb "$r"/lib/modules/*.ko | tail -n 1 | cut -f1)
say "kernel $kver from $(basename "$kdeb")"
say "modules (load order): ${order[*]}"
say "$out/vmlinuz: $(human "$(file_size "$out/vmlinuz")")"
say "$out/initrd.img: $(human "$(file_size "$out/initrd.img")") ${compress[0]} cpio" \
	"(busybox $(human "$(file_size "$r/bin/busybox")"), modules $(human "$mods"))"
say "built in $(secs_since "$start")"
