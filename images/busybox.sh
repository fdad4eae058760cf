#!/usr/bin/env bash
# Builds circ's small test OS: an ext4 image holding Debian's static busybox,
# an /sbin/init script and a few MiB of varied files, made with `mke2fs -d`
# from a generated tree (no loop mounts, no root-only operations). Boot it
# with images/bootkit.sh's kernel and initramfs. Its /sbin/init prints
#   CIRC-BOOT-OK root=/dev/vda kernel=<uname -r> uptime=<seconds>
# then acts on the kernel command line's circ.test=:
#   write     writes /circ-test.txt, syncs, prints CIRC-WROTE, powers off
#   check     prints CIRC-VERSION <content of /etc/circ-version> and, when
#             /circ-test.txt exists, CIRC-FILE <its content>; powers off
#   poweroff  powers off
#   net       brings eth0 up by DHCP (udhcpc), prints CIRC-NET-IP <address>,
#             fetches circ.url= with wget and prints CIRC-NET-GOT <its md5sum>
#             (or CIRC-NET-FAIL <why>); powers off, or with circ.serve=1
#             serves /usr/share/circ over HTTP on port 80, prints
#             CIRC-NET-SERVING and waits to be stopped
#   display   writes a banner on the screen (tty1), prints the input devices
#             (CIRC-INPUT <name>), CIRC-DISPLAY-READY, then reads a line typed
#             on the screen's keyboard and prints CIRC-TYPED <it>; powers off
#   (none)    a shell on the console; `poweroff` stops the machine
# /etc/circ-version holds 1. --update makes the next version of an existing
# image in place with `debugfs -w`, as a real update would: it writes the
# next number to /etc/circ-version and replaces /usr/share/circ/update.txt,
# so all other blocks stay as they were.
# The same packages and script give the same image bytes (fixed UUID, hash
# seed and times). Downloads are cached in ${CIRC_IMAGES_CACHE:-build/images}.
# Usage: images/busybox.sh OUT.img [--size SIZE] [--update]   (default 64M)
set -euo pipefail

me=busybox
# shellcheck source=images/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: images/busybox.sh OUT.img [--size SIZE] [--update]" >&2
	exit 2
}
img='' size=64M update=0
while [ $# -gt 0 ]; do
	case $1 in
	--size)
		[ $# -ge 2 ] || usage
		size=$2
		shift
		;;
	--size=*) size=${1#--size=} ;;
	--update) update=1 ;;
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
for tool in mke2fs debugfs e2fsck openssl; do
	command -v "$tool" >/dev/null || die "$tool is missing (apt-get install e2fsprogs openssl)"
done

start=$(now_ms)
umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/circ-busybox.XXXXXX")
trap 'rm -rf "$work"' EXIT

# e2fsck -n exits 0 on a clean file system and 4 when it finds damage.
fsck_ok() {
	e2fsck -fn "$1" >"$work/fsck.log" 2>&1 ||
		die "e2fsck finds $1 damaged: $(grep -v '^e2fsck' "$work/fsck.log" | head -n 1)"
}
# version_of IMG: the number in IMG's /etc/circ-version.
version_of() {
	debugfs -R 'cat /etc/circ-version' "$1" 2>/dev/null | tr -dc '0-9'
}
# update_text N: the file that each update replaces, about 40 KiB.
update_text() {
	echo "circ busybox image, version $1"
	seq -f "update $1, line %g: the quick brown fox jumps over the lazy dog" 1 600
}

if [ "$update" -eq 1 ]; then
	[ -f "$img" ] || die "--update needs an existing $img (build it first without --update)"
	cur=$(version_of "$img")
	[ -n "$cur" ] || die "$img has no /etc/circ-version: not an image from images/busybox.sh"
	next=$((cur + 1))
	echo "$next" >"$work/circ-version"
	update_text "$next" >"$work/update.txt"
	cat >"$work/cmds" <<EOF
rm /etc/circ-version
write $work/circ-version /etc/circ-version
sif /etc/circ-version uid 0
sif /etc/circ-version gid 0
rm /usr/share/circ/update.txt
write $work/update.txt /usr/share/circ/update.txt
sif /usr/share/circ/update.txt uid 0
sif /usr/share/circ/update.txt gid 0
EOF
	debugfs -w -f "$work/cmds" "$img" >"$work/debugfs.log" 2>&1 ||
		die "debugfs -w failed on $img: $(tail -n 1 "$work/debugfs.log")"
	[ "$(version_of "$img")" = "$next" ] || die "debugfs did not write /etc/circ-version to $img"
	fsck_ok "$img"
	say "updated $img in place to version $next (/etc/circ-version, /usr/share/circ/update.txt)" \
		"in $(secs_since "$start")"
	exit 0
fi

bb=$(busybox_bin)
t=$work/tree
mkdir -p "$t"/{bin,sbin,etc,dev,proc,sys,tmp,root,mnt,var/log,usr/share/circ/text}
chmod 1777 "$t/tmp"
chmod 700 "$t/root"
cp "$bb" "$t/bin/busybox"
for a in $("$bb" --list); do
	[ "$a" = busybox ] || ln -s busybox "$t/bin/$a"
done

cat >"$t/sbin/init" <<'EOF'
#!/bin/sh
# circ busybox image's init: mounts /proc, /sys and /dev (the initramfs may
# have moved them here), prints the boot marker, then runs the test named by
# circ.test= on the kernel command line, or a shell on the console.
export PATH=/bin:/sbin HOME=/root PS1='circ:\w# '
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
mount -o remount,rw / 2>/dev/null
root= test= url= serve=
for arg in $(cat /proc/cmdline); do
	case $arg in
	root=*) root=${arg#root=} ;;
	circ.test=*) test=${arg#circ.test=} ;;
	circ.url=*) url=${arg#circ.url=} ;;
	circ.serve=*) serve=${arg#circ.serve=} ;;
	esac
done
[ -n "$root" ] || root=$(awk '$2 == "/" { d = $1 } END { print d }' /proc/mounts)
up() { cut -d' ' -f1 /proc/uptime; }
stop() {
	sync
	mount -o remount,ro / 2>/dev/null
	poweroff -f
}
echo "CIRC-BOOT-OK root=$root kernel=$(uname -r) uptime=$(up)"
case $test in
write)
	echo "written by the guest at uptime $(up)" >/circ-test.txt
	sync
	echo CIRC-WROTE
	stop
	;;
check)
	echo "CIRC-VERSION $(cat /etc/circ-version)"
	[ ! -f /circ-test.txt ] || echo "CIRC-FILE $(cat /circ-test.txt)"
	stop
	;;
poweroff) stop ;;
display)
	sed -n 's/^N: Name="\(.*\)"$/CIRC-INPUT \1/p' /proc/bus/input/devices
	printf '\n\n   circ busybox image: type a line and press Enter\n\n' >/dev/tty1
	echo CIRC-DISPLAY-READY
	read -r line </dev/tty1
	echo "CIRC-TYPED $line"
	stop
	;;
net)
	ip link set lo up
	if ! ip link set eth0 up 2>/dev/null; then
		echo "CIRC-NET-FAIL no eth0"
	elif ! udhcpc -i eth0 -n -q -t 5 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1; then
		echo "CIRC-NET-FAIL no DHCP lease"
	else
		echo "CIRC-NET-IP $(ip -4 -o addr show eth0 | awk '{ print $4 }')"
		if err=$(wget -q -O /tmp/circ-got "$url" 2>&1); then
			sum=$(md5sum </tmp/circ-got)
			echo "CIRC-NET-GOT ${sum%% *}"
		else
			echo "CIRC-NET-FAIL wget $url: $err"
		fi
		if [ "$serve" = 1 ] && httpd -p 80 -h /usr/share/circ; then
			echo CIRC-NET-SERVING
			while :; do sleep 3600; done
		fi
	fi
	stop
	;;
esac
# busybox's poweroff, halt and reboot signal PID 1: USR2, USR1, TERM.
trap stop USR1 USR2
trap 'sync; reboot -f' TERM
echo "circ busybox image, version $(cat /etc/circ-version); poweroff stops the machine"
while :; do
	setsid cttyhack sh </dev/console >/dev/console 2>&1 &
	wait
done
EOF
chmod 755 "$t/sbin/init"

echo 1 >"$t/etc/circ-version"
# udhcpc's script: udhcpc configures nothing by itself.
cat >"$t/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case $1 in
bound | renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -z "$router" ] || ip route add default via "${router%% *}" dev "$interface"
	;;
esac
EOF
chmod 755 "$t/etc/udhcpc.script"
echo circ >"$t/etc/hostname"
echo 'root:x:0:0:root:/root:/bin/sh' >"$t/etc/passwd"
echo 'root:x:0:' >"$t/etc/group"
echo '/dev/vda / ext4 rw 0 1' >"$t/etc/fstab"
# Varied content, the same on every build: 2 MiB that does not compress,
# 1 MiB of text, 512 KiB of zeros (circ stores no all-zero block), 100 small
# files, and the file that --update replaces.
c=$t/usr/share/circ
head -c 2M /dev/zero | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff \
	-iv 00000000000000000000000000000000 >"$c/random.bin"
seq 1 150000 >"$c/numbers.txt"
head -c 512K /dev/zero >"$c/zeros.bin"
for i in $(seq 1 100); do
	seq -f "file $i, line %g" 1 $((i * 7)) >"$c/text/$i.txt"
done
update_text 1 >"$c/update.txt"
find "$t" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# A fixed UUID, hash seed and clock make the image the same bytes each time.
uuid=c1c0b5b0-7e57-4000-8000-000000000001
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -b 4096 -L circ-busybox -U "$uuid" \
	-E "hash_seed=$uuid,root_owner=0:0" -d "$t" -F "$work/out.img" "$size" >"$work/mke2fs.log" 2>&1 ||
	die "mke2fs failed: $(tail -n 1 "$work/mke2fs.log")"
# mke2fs -d copies each file's ctime, which touch cannot set, and owner
# (the builder's when not root): set them to fixed values.
(cd "$t" && echo / && find . -mindepth 1 | sed 's|^\.||') |
	awk -v t="@$SOURCE_DATE_EPOCH" '{ f = "sif \"" $0 "\" "
		print f "ctime " t; print f "uid 0"; print f "gid 0" }' >"$work/ctimes"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$work/ctimes" "$work/out.img" >"$work/debugfs.log" 2>&1 ||
	die "debugfs failed: $(tail -n 1 "$work/debugfs.log")"
fsck_ok "$work/out.img"
mkdir -p "$(dirname "$img")"
mv "$work/out.img" "$img"
files=$(du -sb "$t" | cut -f1)
say "built $img: version 1, $(human "$(file_size "$img")") ext4 holding $(human "$files") of files," \
	"$(find "$t" | wc -l) entries, in $(secs_since "$start")"
