#!/usr/bin/env bash
# Builds a real Debian 12 (bookworm) system as an ext4 disk image for circ:
# debootstrap --variant=minbase plus systemd-sysv, udev, kmod, dbus and
# libpam-systemd, staged in a directory and turned into the image with
# `mke2fs -d` (no loop mounts). Boot it with images/bootkit.sh's kernel and
# initramfs (root=/dev/vda console=ttyS0); the image carries that kernel's
# modules (/lib/modules/<release>, depmod run), so udev loads what it finds.
#   - /dev/vda is / (ext4) in /etc/fstab; hostname circ-debian
#   - a serial login on ttyS0 (serial-getty@ttyS0 enabled; console=ttyS0
#     also makes systemd's getty generator start it): user root, empty
#     password
#   - circ-marker.service, wanted by multi-user.target and ordered after it:
#     once the system is up it prints
#       CIRC-MULTI-USER-OK version=<N> uptime=<seconds>
#     as a kernel message (so on the serial console, whole, after the
#     kernel's [time] prefix), and powers the machine off when the kernel
#     command line has circ.poweroff=1
#   - /etc/circ-version holds 1; /etc/machine-id is empty (set on each
#     machine's first boot)
# --update makes the next version of an existing image in place, as a
# package install would change it, with `debugfs -w` (no loop mounts): it
# installs the next of `less`, `psmisc`, `tree` that is not there yet (files
# from `dpkg -x` of its .deb, its dpkg info files, dpkg's status rewritten)
# and writes the next number to /etc/circ-version; all other blocks stay.
# Downloads are cached in ${CIRC_IMAGES_CACHE:-build/images}: debootstrap's
# packages (debootstrap/) and a tarball of the debootstrapped tree
# (debian/), so a second build skips debootstrap; --refresh runs it again.
# The same tarball, kernel and script give the same image bytes (fixed UUID,
# hash seed and times).
# Usage: images/debian.sh OUT.img [--size SIZE] [--update] [--refresh]
#                         [--kit DIR] [--mirror URL]     (as root, on Debian 12)
#   --size SIZE   image size (default 1G)
#   --kit DIR     the boot kit whose kernel's modules go in (built there with
#                 images/bootkit.sh if needed; default CACHE/kit)
#   --mirror URL  Debian mirror (default $CIRC_DEBIAN_MIRROR, else
#                 http://deb.debian.org/debian)
set -euo pipefail

me=debian
# shellcheck source=images/lib.sh
. "$(dirname "$0")/lib.sh"

SUITE=bookworm
VARIANT=minbase
INCLUDE=systemd-sysv,udev,kmod,dbus,libpam-systemd
# What --update installs, one per version, in this order.
UPDATE_PKGS=(less psmisc tree)
HOSTNAME_=circ-debian
UUID=c1c0deb1-2000-4000-8000-000000000012

usage() {
	echo "usage: images/debian.sh OUT.img [--size SIZE] [--update] [--refresh] [--kit DIR] [--mirror URL]" >&2
	exit 2
}
img='' size=1G update=0 refresh=0 kit=$images_cache/kit
mirror=${CIRC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
	case $1 in
	--size | --kit | --mirror)
		[ $# -ge 2 ] || usage
		case $1 in
		--size) size=$2 ;;
		--kit) kit=$2 ;;
		--mirror) mirror=$2 ;;
		esac
		shift
		;;
	--size=*) size=${1#--size=} ;;
	--kit=*) kit=${1#--kit=} ;;
	--mirror=*) mirror=${1#--mirror=} ;;
	--update) update=1 ;;
	--refresh) refresh=1 ;;
	-h | --help)
		awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
		exit 0
		;;
	-*) usage ;;
	*)
		[ -z "$img" ] || usage
		img=$1
		;;
	esac
	shift
done
[ -n "$img" ] || usage
[[ $size =~ ^[0-9]+[KMG]?$ ]] || die "bad --size $size (a number with K, M or G)"
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, file ownership, device nodes)"
for tool in mke2fs debugfs e2fsck dpkg-deb zstd tar chroot; do
	command -v "$tool" >/dev/null || die "$tool is missing (apt-get install e2fsprogs zstd)"
done

start=$(now_ms)
umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/circ-debian.XXXXXX")
stage='' zt=''
# The staging tree may hold mounts if debootstrap was interrupted: undo
# them before removing anything, and never cross into another file system.
unmount_under() {
	local m
	[ -d "$1" ] || return 0
	awk -v d="$1" 'index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
		while IFS= read -r m; do
			umount -l "$m" 2>/dev/null || true
		done
}
cleanup() {
	if [ -n "$stage" ]; then
		unmount_under "$stage"
		rm -rf --one-file-system "$stage"
	fi
	[ -z "$zt" ] || rm -f "$zt"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# e2fsck -n exits 0 on a clean file system and 4 when it finds damage.
fsck_ok() {
	e2fsck -fn "$1" >"$work/fsck.log" 2>&1 ||
		die "e2fsck finds $1 damaged: $(grep -v '^e2fsck' "$work/fsck.log" | head -n 1)"
}
# image_cat IMG PATH: a file of the image on stdout (empty if it is not there).
image_cat() { debugfs -R "cat \"$2\"" "$1" 2>/dev/null; }
# image_has IMG PATH: whether PATH exists in the image.
image_has() { debugfs -R "stat \"$2\"" "$1" 2>/dev/null | grep -q '^Inode:'; }
version_of() { image_cat "$1" /etc/circ-version | tr -dc '0-9'; }

# === --update: the next version, in place ======================================

if [ "$update" -eq 1 ]; then
	[ -f "$img" ] || die "--update needs an existing $img (build it first without --update)"
	cur=$(version_of "$img")
	[ -n "$cur" ] || die "$img has no /etc/circ-version: not an image from images/debian.sh"
	next=$((cur + 1))
	image_cat "$img" /var/lib/dpkg/status >"$work/status"
	[ -s "$work/status" ] || die "$img has no /var/lib/dpkg/status"
	installed() { grep -qx "Package: $1" "$work/status"; }
	pkg=''
	for p in "${UPDATE_PKGS[@]}"; do
		if ! installed "$p"; then
			pkg=$p
			break
		fi
	done
	cmds=$work/cmds
	: >"$cmds"
	what="/etc/circ-version"
	if [ -n "$pkg" ]; then
		deb=$(fetch_deb "$pkg")
		# Its dependencies must be installed already (names only; the
		# packages chosen depend on a few libraries of the base system).
		deps=$(dpkg-deb -f "$deb" Pre-Depends Depends | sed -n 's/^[A-Za-z-]*: //p' | tr ',' '\n')
		while IFS= read -r alt; do
			[ -n "${alt// /}" ] || continue
			ok=0
			for a in $(echo "$alt" | sed 's/([^)]*)//g; s/:any//g' | tr '|' ' '); do
				if installed "$a"; then ok=1; fi
			done
			[ "$ok" -eq 1 ] || die "$pkg needs $alt, which $img does not have"
		done <<<"$deps"
		x=$work/pkg
		mkdir -p "$x" "$work/control"
		dpkg-deb -x "$deb" "$x" || die "dpkg-deb -x $deb failed"
		dpkg-deb -e "$deb" "$work/control" || die "dpkg-deb -e $deb failed"
		# Directories first (parents before children), made only where
		# missing; then files and symlinks, owned by root with the
		# package's modes and times.
		(cd "$x" && find . -mindepth 1 -type d | sed 's|^\.||' | LC_ALL=C sort) >"$work/dirs"
		while IFS= read -r d; do
			if ! image_has "$img" "$d"; then
				printf 'mkdir "%s"\nsif "%s" mode 040%s\nsif "%s" uid 0\nsif "%s" gid 0\n' \
					"$d" "$d" "$(stat -c %a "$x$d")" "$d" "$d" >>"$cmds"
			fi
		done <"$work/dirs"
		(cd "$x" && find . -mindepth 1 ! -type d | sed 's|^\.||' | LC_ALL=C sort) >"$work/files"
		while IFS= read -r f; do
			# rm first: an update replaces a file that is there.
			printf 'rm "%s"\n' "$f" >>"$cmds"
			if [ -L "$x$f" ]; then
				printf 'symlink "%s" "%s"\n' "$f" "$(readlink "$x$f")" >>"$cmds"
			else
				printf 'write "%s" "%s"\nsif "%s" mode 0100%s\n' "$x$f" "$f" "$f" "$(stat -c %a "$x$f")" >>"$cmds"
			fi
			printf 'sif "%s" uid 0\nsif "%s" gid 0\nsif "%s" mtime @%s\n' \
				"$f" "$f" "$f" "$(stat -c %Y "$x$f")" >>"$cmds"
		done <"$work/files"
		# dpkg's view: the file list, md5sums, maintainer scripts, and a
		# status stanza, written the way dpkg does (a new status file).
		info=/var/lib/dpkg/info
		{
			echo /.
			(cd "$x" && find . -mindepth 1 | sed 's|^\.||' | LC_ALL=C sort)
		} >"$work/$pkg.list"
		for f in "$work/$pkg.list" "$work"/control/*; do
			n=$(basename "$f")
			case $n in control) continue ;; "$pkg.list") ;; *) n=$pkg.$n ;; esac
			printf 'rm "%s/%s"\nwrite "%s" "%s/%s"\n' "$info" "$n" "$f" "$info" "$n" >>"$cmds"
		done
		# The stanza: the package's control fields with its Status (and
		# Conffiles, if any) after Package, a blank line after it.
		if [ -s "$work/control/conffiles" ]; then
			echo "Conffiles:" >"$work/conffiles"
			while IFS= read -r c; do
				echo " $c $(md5sum <"$x$c" | cut -d' ' -f1)" >>"$work/conffiles"
			done <"$work/control/conffiles"
		else
			: >"$work/conffiles"
		fi
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$work/status" >"$work/status.new"
		{
			echo
			dpkg-deb -f "$deb" | awk -v cf="$work/conffiles" '{ print }
				/^Package:/ { print "Status: install ok installed"; while ((getline l < cf) > 0) print l }'
			echo
		} >>"$work/status.new"
		mv "$work/status.new" "$work/status"
		printf 'rm /var/lib/dpkg/status\nwrite "%s" /var/lib/dpkg/status\n' "$work/status" >>"$cmds"
		what="package $pkg $(dpkg-deb -f "$deb" Version) ($(wc -l <"$work/files") files), dpkg status, $what"
	fi
	echo "$next" >"$work/circ-version"
	printf 'rm /etc/circ-version\nwrite "%s" /etc/circ-version\n' "$work/circ-version" >>"$cmds"
	debugfs -w -f "$cmds" "$img" >"$work/debugfs.log" 2>&1 ||
		die "debugfs -w failed on $img: $(tail -n 1 "$work/debugfs.log")"
	[ "$(version_of "$img")" = "$next" ] || die "debugfs did not write /etc/circ-version to $img"
	if [ -n "$pkg" ]; then
		image_cat "$img" /var/lib/dpkg/status | grep -qx "Package: $pkg" ||
			die "debugfs did not install $pkg into $img"
	fi
	fsck_ok "$img"
	say "updated $img in place to version $next: $what, in $(secs_since "$start")"
	exit 0
fi

# === a new image ================================================================

# The boot kit: its kernel's release and unpacked package (bootkit.sh keeps
# it under CACHE/kernel/), whose modules go into the image.
"$images_root/images/bootkit.sh" "$kit" >"$work/bootkit.log" 2>&1 ||
	die "images/bootkit.sh $kit failed: $(tail -n 1 "$work/bootkit.log")"
kver=$(cat "$kit/kernel.release")
kmods=''
for d in "$images_cache"/kernel/*/lib/modules/"$kver"; do
	if [ -d "$d/kernel" ]; then kmods=$d; fi
done
if [ -z "$kmods" ]; then
	kdeb=$(fetch_deb "linux-image-$kver")
	ktree=$images_cache/kernel/$(basename "$kdeb" .deb)
	mkdir -p "$images_cache/kernel"
	tmp=$(mktemp -d "$images_cache/kernel/tmp.XXXXXX")
	dpkg -x "$kdeb" "$tmp" || die "dpkg -x $kdeb failed"
	rm -rf "$ktree"
	mv "$tmp" "$ktree"
	kmods=$ktree/lib/modules/$kver
	[ -d "$kmods/kernel" ] || die "$(basename "$kdeb") has no lib/modules/$kver"
fi

# The debootstrapped tree, from the cached tarball when there is one.
mkdir -p "$images_cache/debian" "$images_cache/debootstrap"
key=$(echo "$SUITE $VARIANT $INCLUDE $mirror" | sha256sum | cut -c1-12)
tarball=$images_cache/debian/$SUITE-$VARIANT-$key.tar.zst
stage=$(mktemp -d "$images_cache/debian/stage.XXXXXX")
t=$stage/root
mkdir "$t"
tar_opts=(--numeric-owner --xattrs --xattrs-include='*' --acls)
t0=$(now_ms)
if [ -f "$tarball" ] && [ "$refresh" -eq 0 ]; then
	zstd -qdc "$tarball" | tar -C "$t" "${tar_opts[@]}" -xpf - ||
		die "cannot unpack $tarball (remove it, or use --refresh)"
	how="unpacked $(basename "$tarball") ($(human "$(file_size "$tarball")"))"
else
	command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
	say "debootstrap $SUITE ($VARIANT + $INCLUDE) from $mirror"
	debootstrap --variant="$VARIANT" --include="$INCLUDE" \
		--cache-dir="$(cd "$images_cache/debootstrap" && pwd)" \
		"$SUITE" "$t" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		die "debootstrap failed: $(grep -E '^(E|W):' "$work/debootstrap.log" | tail -n 1)"
	unmount_under "$t"
	# What a fresh install should not carry: downloaded packages, apt's
	# binary caches, this machine's resolver.
	rm -rf "$t"/var/cache/apt/archives/*.deb "$t"/var/cache/apt/*.bin
	: >"$t/etc/resolv.conf"
	zt=$(mktemp "$images_cache/debian/tar.XXXXXX")
	tar -C "$t" "${tar_opts[@]}" -cf - . | zstd -q -T0 -3 -o "$zt" -f ||
		die "cannot write the tarball $tarball"
	mv "$zt" "$tarball"
	zt=''
	how="debootstrap, tree cached in $(basename "$tarball") ($(human "$(file_size "$tarball")"))"
fi
t_base=$(secs_since "$t0")

# --- configuration ---------------------------------------------------------------

t0=$(now_ms)
touch "$stage/configured" # what is newer was written here
sleep 0.01
echo "$HOSTNAME_" >"$t/etc/hostname"
cat >"$t/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$HOSTNAME_
::1		localhost ip6-localhost ip6-loopback
EOF
cat >"$t/etc/fstab" <<'EOF'
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
/dev/vda	/	ext4	defaults,errors=remount-ro	0	1
EOF
echo 1 >"$t/etc/circ-version"
# root logs in on the console without a password (pam_unix nullok).
sed -i 's/^root:[^:]*:/root::/' "$t/etc/shadow"
# Each machine gets its own identity on its first boot.
: >"$t/etc/machine-id"
rm -f "$t/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$t/var/lib/dbus/machine-id"

sd=$t/etc/systemd/system
mkdir -p "$sd/getty.target.wants" "$sd/multi-user.target.wants" "$t/usr/local/sbin"
ln -sf /lib/systemd/system/serial-getty@.service "$sd/getty.target.wants/serial-getty@ttyS0.service"
cat >"$t/usr/local/sbin/circ-marker" <<'EOF'
#!/bin/sh
# Run by circ-marker.service once the system is up: prints the boot marker on
# the console, then powers off if the kernel command line asks. The marker
# goes through the kernel log (level err, so `quiet` does not hide it): the
# serial console prints a kernel message whole, where a line written to the
# tty can be cut in two by a kernel message printed meanwhile.
echo "<3>CIRC-MULTI-USER-OK version=$(cat /etc/circ-version) uptime=$(cut -d' ' -f1 /proc/uptime)" >/dev/kmsg
case " $(cat /proc/cmdline) " in
*" circ.poweroff=1 "*) exec systemctl --no-block poweroff ;;
esac
EOF
chmod 755 "$t/usr/local/sbin/circ-marker"
# Ordered after multi-user.target, which also wants it: a target orders
# itself after what it wants unless that unit has DefaultDependencies=no, so
# the default dependencies are spelt out here instead (no ordering cycle).
cat >"$sd/circ-marker.service" <<'EOF'
[Unit]
Description=circ boot marker on the console
DefaultDependencies=no
Requires=sysinit.target
After=multi-user.target
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/circ-marker
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/circ-marker.service "$sd/multi-user.target.wants/circ-marker.service"

# The boot kit's kernel modules, with kmod's indexes.
mkdir -p "$t/lib/modules"
cp -a "$kmods" "$t/lib/modules/"
chroot "$t" /sbin/depmod -a "$kver" >"$work/depmod.log" 2>&1 ||
	die "depmod $kver in the image failed: $(tail -n 1 "$work/depmod.log")"
t_conf=$(secs_since "$t0")

# --- the image -------------------------------------------------------------------

t0=$(now_ms)
# Fixed times: mtimes of what was written here, and every atime (mke2fs -d
# copies both); ctimes are set after (touch cannot).
find "$t" -newer "$stage/configured" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
find "$t" -exec touch -a -h -d "@$SOURCE_DATE_EPOCH" {} +
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -b 4096 -L "$HOSTNAME_" -U "$UUID" \
	-E "hash_seed=$UUID,root_owner=0:0" -d "$t" -F "$work/out.img" "$size" >"$work/mke2fs.log" 2>&1 ||
	die "mke2fs -d failed (is $size too small for $(human "$(du -sb "$t" | cut -f1)")?): $(tail -n 1 "$work/mke2fs.log")"
(cd "$t" && find . -mindepth 1 | sed 's|^\.||') |
	awk -v t="@$SOURCE_DATE_EPOCH" '{ print "sif \"" $0 "\" ctime " t }' >"$work/ctimes"
echo "sif / ctime @$SOURCE_DATE_EPOCH" >>"$work/ctimes"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$work/ctimes" "$work/out.img" >"$work/debugfs.log" 2>&1 ||
	die "debugfs failed: $(tail -n 1 "$work/debugfs.log")"
fsck_ok "$work/out.img"
mkdir -p "$(dirname "$img")"
mv "$work/out.img" "$img"
t_img=$(secs_since "$t0")

files=$(du -sb "$t" | cut -f1)
mods=$(du -sb "$t/lib/modules/$kver" | cut -f1)
used=$(du -B1 "$img" | cut -f1)
say "base system: $how in $t_base; configured (modules of $kver: $(human "$mods")) in $t_conf"
say "built $img: version 1, $(human "$(file_size "$img")") ext4 holding $(human "$files") in" \
	"$(find "$t" | wc -l) entries ($(human "$used") allocated), mke2fs + fix-ups in $t_img;" \
	"total $(secs_since "$start")"
