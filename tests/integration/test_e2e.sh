#!/usr/bin/env bash
# The user's whole path on a real OS: the busybox image and Debian's kernel
# (images/), published, served, pulled into a fresh state, booted under QEMU
# from the FUSE disk, written to, updated, and booted on hv through the vdisk
# API. Images are built once and cached in build/images.
. "$(dirname "$0")/lib.sh"

ROOT=${CIRC_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
IMAGES=$ROOT/build/images
QEMU_TIMEOUT=180

# boot DISK_FILE ARGS: QEMU (TCG) boots the kit on DISK_FILE; output in boot.out.
boot() {
	timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -accel tcg -m 256M -nographic -no-reboot \
		-kernel "$IMAGES/kit/vmlinuz" -initrd "$IMAGES/kit/initrd.img" \
		-append "console=ttyS0 quiet root=/dev/vda $2" \
		-drive "file=$1,format=raw,if=virtio" </dev/null >boot.out 2>&1
}

setup() {
	need_fuse
	need_images
	cp "$IMAGES/busybox.img" img
	"$CIRC" keygen k >/dev/null
	"$CIRC" publish --repo repo --key k.key --name bb img >/dev/null || die "publish"
	start_serve repo
	"$CIRC" --state st pull "$URL" bb --key k.pub >/dev/null || die "pull"
}

test_boot_write_remount() {
	setup
	mount_disk st bb mnt
	boot mnt/disk.img "circ.test=write" || die "QEMU failed: $(tail -n 5 boot.out)"
	grep -q "CIRC-BOOT-OK root=/dev/vda kernel=$KERNEL_RELEASE uptime=" boot.out ||
		die "no marker: $(tail -n 5 boot.out)"
	grep -q "CIRC-WROTE" boot.out || die "the guest did not write its file"
	"$CIRC" --state st umount mnt || die "umount"
	fetched=$(json_field "$("$CIRC" --state st stats bb --json)" fetched_bytes)
	echo "note: booting the busybox image fetched $fetched of $(stat -c %s img) bytes" \
		"($(json_field "$("$CIRC" --state st stats bb --json)" requests) requests)"
	[ "$fetched" -gt 0 ] && [ "$fetched" -lt "$(stat -c %s img)" ] || die "fetched $fetched bytes to boot"
	mount_disk st bb mnt
	debugfs -R "cat /circ-test.txt" mnt/disk.img 2>/dev/null | grep -q "written by the guest" ||
		die "the guest's file is not on the disk after umount and mount"
	e2fsck -fn mnt/disk.img >/dev/null 2>&1 || die "e2fsck on the disk after the guest's write"
	"$CIRC" --state st umount mnt
}

test_update_then_boot() {
	setup
	mount_disk st bb mnt
	boot mnt/disk.img "circ.test=check" || die "QEMU failed"
	grep -q "CIRC-VERSION 1" boot.out || die "v1 does not say version 1: $(tail -n 3 boot.out)"
	"$CIRC" --state st umount mnt
	find repo/blocks -type f | sort >before
	"$ROOT/images/busybox.sh" img --update >/dev/null 2>&1 || die "busybox.sh --update"
	"$CIRC" publish --repo repo --key k.key --name bb img >/dev/null || die "publish v2"
	find repo/blocks -type f | sort >after
	changed=$(comm -13 before after | xargs cat | wc -c)
	out=$("$CIRC" --state st update bb --discard-overlay) || die "update: $out"
	fetched=$(echo "$out" | grep -o 'fetched [0-9]* bytes' | grep -o '[0-9]*')
	echo "note: $out; the changed blocks are $changed bytes"
	[ "$fetched" -le $((changed * 11 / 10)) ] || die "fetched $fetched bytes for $changed of changed blocks"
	mount_disk st bb mnt
	boot mnt/disk.img "circ.test=check" || die "QEMU failed"
	grep -q "CIRC-VERSION 2" boot.out || die "the next boot does not see version 2: $(tail -n 3 boot.out)"
	"$CIRC" --state st umount mnt
}

test_run_vmm_qemu() {
	setup
	timeout "$QEMU_TIMEOUT" "$CIRC" --state st run --vmm qemu --kernel "$IMAGES/kit/vmlinuz" \
		--initrd "$IMAGES/kit/initrd.img" --append "quiet root=/dev/vda circ.test=poweroff" \
		--disk bb --mem 256M </dev/null >out 2>&1 || die "circ run --vmm qemu: $(tail -n 3 out)"
	grep -q "CIRC-BOOT-OK root=/dev/vda" out || die "no marker: $(tail -n 3 out)"
	grep -q "circ:bb" /proc/mounts && die "circ run left its FUSE mount behind"
	true
}

test_hv_boots_the_published_disk() {
	setup
	[ -c /dev/kvm ] || skip "/dev/kvm is absent"
	sum=$(head -c 4096 img | cksum | cut -d' ' -f1)
	# The test guest reads the image's first sectors through the vdisk API, no FUSE.
	timeout 120 "$CIRC" --state st run --vmm hv --kernel "$GUEST" \
		--append "cksum=$sum copy=130000 discard=130100" --disk bb --mem 64M </dev/null >out 2>err ||
		die "circ run --vmm hv: $(tail -n 3 err)"
	grep -q "^read matches the host: ok" out || die "the test guest did not read the image: $(cat out)"
	grep -q "FAIL" out && die "the test guest failed: $(cat out)"
	true
}

t_case "boot the busybox image from the FUSE disk; its write survives umount" test_boot_write_remount
t_case "an update fetches only changed blocks and the next boot sees it" test_update_then_boot
t_case "circ run --vmm qemu boots a pulled disk" test_run_vmm_qemu
t_case "hv boots its test guest from the published disk through the vdisk API" test_hv_boots_the_published_disk
