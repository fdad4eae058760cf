#!/usr/bin/env bash
# hv under the real /dev/kvm: the freestanding test guest (tests/guest/) boots,
# drives virtio-blk, and powers off; the host checks what it wrote.
. "$(dirname "$0")/lib.sh"


# make_disk FILE MIB: random bytes; prints the cksum of the first 4 KiB.
make_disk() {
	head -c $(($2 << 20)) /dev/urandom >"$1"
	head -c 4096 "$1" | cksum | cut -d' ' -f1
}

sectors() { dd if="$1" bs=512 skip="$2" count="$3" status=none; }

test_guest_drives_virtio_blk() {
	need_kvm
	sum=$(make_disk disk.raw 1)
	make_disk ro.raw 1 >/dev/null
	cp ro.raw ro.orig
	timeout 120 "$CIRC" run --vmm hv --kernel "$GUEST" --append "cksum=$sum copy=100 discard=200" \
		--disk-file disk.raw --disk-file ro.raw,ro --mem 64M --stats >out 2>err </dev/null
	rc=$?
	cat out
	[ "$rc" = 0 ] || die "circ run exited $rc: $(tail -n 3 err)"
	grep -q "circ test guest: hello" out || die "no serial output"
	grep -q "virtio-blk disks: 2" out || die "the guest did not find two disks"
	grep -q "FAIL" out && die "the guest reported a failure"
	for what in "read matches the host" "write" "flush" "read back" "discard" "get-id" \
		"interrupt status set" "interrupt status cleared by reading" \
		"a read past the end fails" "a read-only disk refuses writes"; do
		grep -q "^$what: ok" out || die "no '$what: ok' from the guest"
	done
	grep -q "circ test guest: done" out || die "the guest did not finish"
	cmp <(sectors disk.raw 0 8) <(sectors disk.raw 100 8) || die "the copy is not on the disk"
	cmp <(sectors disk.raw 200 8) <(head -c 4096 /dev/zero) || die "discarded sectors are not zero"
	cmp ro.raw ro.orig || die "the read-only disk changed"
	grep -q "hv: exits io" err || die "no exit statistics"
}

test_guest_on_a_circ_disk() {
	need_kvm
	"$CIRC" keygen k >/dev/null
	sum=$(make_disk img 2)
	cp img want
	"$CIRC" publish --repo repo --key k.key --name g img >/dev/null || die "publish"
	start_serve repo
	"$CIRC" --state st pull "$URL" g --key k.pub >/dev/null || die "pull"
	timeout 120 "$CIRC" --state st run --vmm hv --kernel "$GUEST" \
		--append "cksum=$sum copy=300 discard=400" --disk g --mem 64M >out 2>err </dev/null ||
		die "circ run failed: $(tail -n 3 err)"
	grep -q "^read matches the host: ok" out || die "the guest did not read the image: $(cat out)"
	grep -q "FAIL" out && die "the guest reported a failure: $(cat out)"
	# The guest's writes are in the disk's overlay: visible through FUSE.
	[ -c /dev/fuse ] || return 0
	mount_disk st g mnt
	cmp <(sectors mnt/disk.img 0 8) <(sectors mnt/disk.img 300 8) || die "the copy is not in the overlay"
	cmp <(sectors mnt/disk.img 400 8) <(head -c 4096 /dev/zero) || die "the discard is not in the overlay"
	cmp <(sectors mnt/disk.img 1000 100) <(sectors want 1000 100) || die "untouched sectors changed"
	"$CIRC" --state st umount mnt
}

test_reboot_and_triple_fault() {
	need_kvm
	make_disk disk.raw 1 >/dev/null
	timeout 60 "$CIRC" run --vmm hv --kernel "$GUEST" --append "reboot=1" --disk-file disk.raw \
		--mem 32M >out 2>err </dev/null
	rc=$?
	[ "$rc" = 3 ] || die "a guest reset exited $rc, not 3: $(cat err)"
	timeout 60 "$CIRC" run --vmm hv --kernel "$GUEST" --append "crash=1" --mem 32M >out 2>err </dev/null
	rc=$?
	[ "$rc" = 1 ] || die "a triple fault exited $rc, not 1"
	# Hardware KVM reports a shutdown; an emulating KVM may give up earlier, as an internal error.
	grep -Eq "(triple-fault|internal error).*rip=0x" err || die "no register dump: $(cat err)"
}

test_console_input_and_smp() {
	need_kvm
	command -v script >/dev/null || skip "script(1) is not installed"
	# On a terminal the guest owns the keyboard; the line comes back from the guest.
	printf 'hello from the host\r' | timeout 60 script -qec \
		"'$CIRC' run --vmm hv --kernel '$GUEST' --append echo=1 --mem 32M --cpus 2" /dev/null >out
	rc=$?
	[ "$rc" = 0 ] || die "circ run exited $rc: $(cat -v out | tail -n 3)"
	grep -q "got: hello from the host" out || die "the guest did not read the console: $(cat -v out)"
}

# Debian's kernel reads hv's ACPI tables. It boots as the vmlinux inside the
# bzImage (hv's ELF path): under an emulating KVM the bzImage's own
# decompressor takes hours. Where KVM emulates, the boot ends later at an
# instruction KVM cannot emulate; so the test stops at the tables.
test_linux_reads_the_acpi_tables() {
	need_kvm
	[ -n "${CIRC_TEST_KERNEL:-}" ] || skip "no Debian kernel (tests/run.sh fetches it)"
	command -v xz >/dev/null || skip "xz is not installed"
	off=$(LC_ALL=C grep -obUa $'\xfd7zXZ' "$CIRC_TEST_KERNEL" | head -n 1 | cut -d: -f1)
	[ -n "$off" ] || skip "$CIRC_TEST_KERNEL holds no xz payload"
	# xz stops at the end of its stream; what follows it is not xz.
	tail -c +$((off + 1)) "$CIRC_TEST_KERNEL" | xz -dc >vmlinux 2>/dev/null
	[ "$(head -c 4 vmlinux)" = $'\x7fELF' ] || die "no vmlinux in $CIRC_TEST_KERNEL"
	make_disk disk.raw 1 >/dev/null
	"$CIRC" run --vmm hv --kernel vmlinux --append "earlyprintk=ttyS0 panic=-1" \
		--disk-file disk.raw --mem 256M --cpus 2 >out 2>err </dev/null &
	pid=$!
	T_PIDS+=("$pid")
	want="ACPI: Using ACPI (MADT) for SMP configuration information"
	start=$(date +%s)
	until grep -qF "$want" out; do
		kill -0 "$pid" 2>/dev/null || die "hv ended before Linux read the MADT: $(tail -n 3 out err)"
		[ $(($(date +%s) - start)) -lt 600 ] || die "no '$want' in 10 minutes: $(tail -n 3 out)"
		sleep 0.2
	done
	echo "note: Linux read the MADT $(($(date +%s) - start)) s after exec"
	for line in "BIOS-e820: [mem 0x00000000000e0000-0x00000000000fffff] reserved" \
		"ACPI: RSDP 0x00000000000E0000 000024 (v02 CIRC  )" \
		"ACPI: FACP 0x" "ACPI: DSDT 0x" "ACPI: FACS 0x" "ACPI: APIC 0x" \
		"IOAPIC[0]: apic_id 2, version 17, address 0xfec00000, GSI 0-23" \
		"ACPI: INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2 dfl dfl)" \
		"ACPI: INT_SRC_OVR (bus 0 bus_irq 9 global_irq 9 high level)" \
		"ACPI: LAPIC_NMI (acpi_id[0xff] dfl dfl lint[0x1])"; do
		grep -qF "$line" out || die "Linux did not say '$line': $(grep ACPI out | head -n 5)"
	done
	grep -q "ACPI BIOS Error\|ACPI Error\|ACPI Warning" out && die "Linux complained: $(grep 'ACPI.*\(Error\|Warning\)' out)"
	# The boot goes on; where KVM runs at hardware speed it would reach user space.
	kill "$pid"
}

test_bad_input() {
	need_kvm
	expect_fail 1 "nokernel: No such file" "$CIRC" run --vmm hv --kernel nokernel
	head -c 100000 /dev/urandom >junk
	expect_fail 1 "neither a bzImage nor an ELF64" "$CIRC" run --vmm hv --kernel junk
	head -c $((40 << 20)) /dev/urandom >big.initrd
	expect_fail 1 "memory" "$CIRC" run --vmm hv --kernel "$GUEST" --initrd big.initrd --mem 32M
	expect_fail 1 "nofile: No such file" "$CIRC" run --vmm hv --kernel "$GUEST" --disk-file nofile
	expect_fail 1 "no such disk" "$CIRC" --state st run --vmm hv --kernel "$GUEST" --disk nodisk
	expect_fail 2 "kernel is required" "$CIRC" run --vmm hv
	expect_fail 2 "auto, hv or qemu" "$CIRC" run --vmm xen --kernel "$GUEST"
	expect_fail 2 "at least 16M" "$CIRC" run --kernel "$GUEST" --mem 1M
	if command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
		expect_fail 1 "/dev/kvm" unshare -m sh -c "mount --bind /dev/null /dev/kvm && exec '$CIRC' run --vmm hv --kernel '$GUEST'"
	fi
}

# A kiosk on hv: the version's kit is the test guest, which writes and then
# waits. SIGTERM stops it as Ctrl-A x would: the write is flushed to the
# disk, the boot recorded, nothing left holding the disk.
test_stop_signal_on_hv() {
	need_kvm
	"$CIRC" keygen k >/dev/null
	sum=$(make_disk img 2)
	"$CIRC" publish --repo repo --key k.key --name g --kernel "$GUEST" \
		--cmdline "cksum=$sum copy=300 discard=400 hang=1" img >/dev/null || die "publish"
	start_serve repo
	"$CIRC" --state st run "$URL" g --key k.pub --vmm hv --mem 64M >out 2>err </dev/null &
	pid=$!
	T_PIDS+=("$pid")
	start=$(date +%s)
	until grep -q "circ test guest: waiting" out; do
		kill -0 "$pid" 2>/dev/null || die "run ended before the guest waited: $(tail -n 3 out err)"
		[ $(($(date +%s) - start)) -lt 120 ] || die "the guest did not get to wait: $(tail -n 3 out)"
		sleep 0.1
	done
	grep -q "^write: ok" out || die "the guest did not write: $(cat out)"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ "$rc" = 143 ] || die "SIGTERM: run exited $rc, not 143: $(cat err)"
	grep -q "stopped by Terminated" err || die "no stop message: $(cat err)"
	boot=$("$CIRC" --state st log g --boots | tail -n 1)
	echo "$boot" | grep -q '"vmm":"hv".*"outcome":"signal"' || die "boot record: $boot"
	[ -c /dev/fuse ] || return 0
	mount_disk st g mnt
	cmp <(sectors mnt/disk.img 0 8) <(sectors mnt/disk.img 300 8) ||
		die "the guest's write was lost at the stop"
	"$CIRC" --state st umount mnt
}

t_case "the test guest drives virtio-blk on raw files and powers off" test_guest_drives_virtio_blk
t_case "the test guest boots from a published circ disk (no FUSE)" test_guest_on_a_circ_disk
t_case "guest reset exits 3; a triple fault exits 1 with a register dump" test_reboot_and_triple_fault
t_case "console input reaches the guest; two vCPUs start and stop" test_console_input_and_smp
t_case "Debian's kernel on hv finds the ACPI tables: RSDP, FADT, DSDT, MADT" test_linux_reads_the_acpi_tables
t_case "bad input to circ run: one-line errors" test_bad_input
t_case "SIGTERM stops a kiosk on hv: the write flushed, the boot recorded" test_stop_signal_on_hv
