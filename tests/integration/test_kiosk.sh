#!/usr/bin/env bash
# Kiosks: one command boots a URL's image with its own boot kit, resets,
# survives the server going away, records each boot; circ run owns its VM
# and its mounts whatever stops it. QEMU (TCG) boots the busybox image.
. "$(dirname "$0")/lib.sh"

# kiosk_setup [kit]: the busybox image published (with the boot kit and a
# command line running the guest's check, given "kit") and served; leaves
# repo/, k.key, k.pub, URL.
kiosk_setup() {
	local kit=()
	need_fuse
	need_images
	# The kit's files under this test's directory, so that its QEMU is told from others'.
	cp "$IMAGES/kit/vmlinuz" "$IMAGES/kit/initrd.img" "$T_DIR/"
	KERNEL=$T_DIR/vmlinuz INITRD=$T_DIR/initrd.img
	[ "${1:-}" != kit ] || kit=(--kernel "$KERNEL" --initrd "$INITRD"
		--cmdline "quiet root=/dev/vda circ.test=check")
	"$CIRC" keygen k >/dev/null
	"$CIRC" publish --repo repo --key k.key --name bb "${kit[@]}" "$IMAGES/busybox.img" \
		>/dev/null || die "publish"
	start_serve repo
}

# run_bg OUT ARGS...: circ run in the background, its console in OUT, typing from
# the fifo console (fd 3); sets RUN_PID. With RUN_TTY=1, run's console is a
# terminal (script(1)'s), as a person's is: QEMU takes its escapes only from one.
run_bg() {
	local out=$1 cmd
	shift
	rm -f console "$out"
	mkfifo console
	if [ "${RUN_TTY:-}" = 1 ]; then
		cmd=$(printf '%q ' "$CIRC" --state st run --vmm qemu --mem 256M "$@")
		script -qefc "$cmd" /dev/null <console >"$out" 2>&1 &
	else
		"$CIRC" --state st run --vmm qemu --mem 256M "$@" <console >"$out" 2>&1 &
	fi
	RUN_PID=$!
	# A watchdog, not a wait: a run that hangs fails the case instead of the suite.
	# Its output goes nowhere: it must not hold the case's output open while it sleeps.
	(exec >/dev/null 2>&1 </dev/null; sleep 240 && kill -9 $RUN_PID) &
	T_PIDS+=($!)
	exec 3>console
}

# wait_for FILE TEXT: until FILE shows TEXT (the guest's console), or 120 s.
wait_for() {
	local i
	for i in $(seq 1 1200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$RUN_PID" 2>/dev/null || die "circ run ended: $(tail -n 3 "$1")"
		sleep 0.1
	done
	die "no '$2' on the console: $(tail -n 3 "$1")"
}

test_signals_stop_everything() {
	kiosk_setup
	"$CIRC" --state st pull "$URL" bb --key k.pub >/dev/null || die "pull"
	for sig in TERM INT HUP; do
		run_bg out --kernel "$KERNEL" --initrd "$INITRD" \
			--append "quiet root=/dev/vda" --disk bb
		wait_for out "poweroff stops the machine"
		kill -$sig $RUN_PID
		wait $RUN_PID
		rc=$?
		exec 3>&-
		[ $rc -gt 128 ] || die "SIG$sig: circ run exited $rc"
		grep -q "stopped by" out || die "SIG$sig: no message: $(tail -n 2 out)"
		pgrep -f "qemu-system-x86_64.*$T_DIR" >/dev/null && die "SIG$sig left QEMU running"
		[ ! -e st/disks/bb/mountpoint ] || die "SIG$sig left a FUSE mount"
		mkdir -p mnt
		"$CIRC" --state st mount bb mnt >/dev/null 2>&1 || die "the disk is still in use"
		"$CIRC" --state st umount mnt
	done
	true
}

test_exit_statuses_under_qemu() {
	kiosk_setup
	"$CIRC" --state st pull "$URL" bb --key k.pub >/dev/null || die "pull"
	command -v script >/dev/null || skip "script(1) is not installed"
	for how in reboot poweroff ctrl-a-x; do
		# Ctrl-A x reaches QEMU only from a terminal.
		RUN_TTY=$([ $how = ctrl-a-x ] && echo 1) run_bg out --kernel "$KERNEL" \
			--initrd "$INITRD" --append "quiet root=/dev/vda" --disk bb
		wait_for out "poweroff stops the machine"
		case $how in
		reboot) printf 'reboot -f\n' >&3 ;;
		poweroff) printf 'poweroff\n' >&3 ;;
		ctrl-a-x) printf '\001x' >&3 ;;
		esac
		wait $RUN_PID
		rc=$?
		exec 3>&-
		want=$(case $how in reboot) echo 3 ;; ctrl-a-x) echo 4 ;; *) echo 0 ;; esac)
		[ $rc = "$want" ] || die "$how: circ run exited $rc, not $want: $(tail -n 3 out)"
	done
	[ ! -e st/disks/bb/mountpoint ] || die "a mount is left"
	true
}

test_killed_run_is_cleaned_up() {
	kiosk_setup kit
	run_bg out "$URL" bb --key k.pub --append "quiet root=/dev/vda"
	wait_for out "poweroff stops the machine"
	kill -9 $RUN_PID
	wait $RUN_PID 2>/dev/null
	exec 3>&-
	for i in $(seq 1 100); do
		pgrep -f "qemu-system-x86_64.*$T_DIR" >/dev/null || break
		sleep 0.1
	done
	pgrep -f "qemu-system-x86_64.*$T_DIR" >/dev/null && die "QEMU outlived its run"
	expect_fail 1 "in use: mounted at /tmp/circ-run.* by process [0-9]+" \
		"$CIRC" --state st update bb
	# The next run (a kiosk's, as systemd would start it) takes the dead run's mount down.
	timeout 180 "$CIRC" --state st run --vmm qemu --mem 256M "$URL" bb --key k.pub \
		</dev/null >out2 2>&1 || die "the next run failed: $(tail -n 3 out2)"
	grep -q "left by a run that died" out2 || die "the next run did not say it cleaned up"
	[ ! -e st/disks/bb/mountpoint ] || die "a mount is left"
	true
}

test_bad_kernel_refused_before_mounting() {
	need_fuse
	"$CIRC" keygen k >/dev/null
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name t img >/dev/null || die "publish"
	start_serve repo
	"$CIRC" --state st pull "$URL" t --key k.pub >/dev/null || die "pull"
	head -c 4096 /dev/urandom >notakernel
	for vmm in qemu hv; do
		expect_fail 1 "neither a bzImage nor an ELF64" \
			"$CIRC" --state st run --vmm $vmm --kernel notakernel --disk t
		expect_fail 1 "kernel missing" "$CIRC" --state st run --vmm $vmm --kernel missing --disk t
	done
	[ ! -e st/disks/t/mountpoint ] || die "a refused run mounted something"
	expect_fail 2 "nothing to boot" "$CIRC" --state st run --vmm qemu
	true
}

test_kiosk_unit_verifies() {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	local root=${CIRC_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
	# The unit as installed, with circ and its configuration where this tree has them.
	sed "s|/usr/local/bin/circ|$CIRC|; s|/etc/circ/kiosk/%i.conf|$T_DIR/%i.conf|g" \
		"$root/dist/circ-kiosk@.service" >"circ-kiosk@bb.service"
	printf 'CIRC_URL=http://127.0.0.1:8080\nCIRC_IMAGE=bb\nCIRC_KEY=%s/k.pub\n' "$T_DIR" >bb.conf
	out=$(systemd-analyze verify "./circ-kiosk@bb.service" 2>&1) || die "verify failed: $out"
	[ -z "$out" ] || die "systemd-analyze verify warns: $out"
	true
}

# kiosk_run OUT ARGS...: circ run (QEMU) to the guest's power-off; output in OUT.
kiosk_run() {
	local out=$1
	shift
	timeout 180 "$CIRC" --state st run --vmm qemu --mem 256M "$@" </dev/null >"$out" 2>&1
}

test_kiosk_story() {
	kiosk_setup kit
	# One command, no kernel given: the version's own kit; the guest writes a file.
	kiosk_run out "$URL" bb --key k.pub --reset --append "quiet root=/dev/vda circ.test=write" ||
		die "first boot: $(tail -n 3 out)"
	grep -q "CIRC-WROTE" out || die "the guest did not write: $(tail -n 3 out)"
	kiosk_run out bb --reset || die "second boot: $(tail -n 3 out)"
	grep -q "CIRC-VERSION 1" out || die "not version 1: $(tail -n 3 out)"
	grep -q "CIRC-FILE" out && die "--reset kept the last session's file"
	# Without --reset writes stay, and the disk stays at its version.
	kiosk_run out bb --append "quiet root=/dev/vda circ.test=write" || die "boot 3"
	cp "$IMAGES/busybox.img" img2
	"$ROOT/images/busybox.sh" img2 --update >/dev/null 2>&1 || die "busybox.sh --update"
	"$CIRC" publish --repo repo --key k.key --name bb img2 >/dev/null || die "publish v2"
	kiosk_run out bb || die "boot 4"
	grep -q "CIRC-FILE written by the guest" out || die "the writes were not kept"
	grep -q "stays at version 1: it holds local writes" out || die "no word on staying: $(head -n 3 out)"
	# --reset: the new version, its kit inherited, from a clean image.
	kiosk_run out bb --reset || die "boot 5: $(tail -n 3 out)"
	grep -q "CIRC-VERSION 2" out || die "the next boot does not run version 2: $(tail -n 3 out)"
	grep -q "moved from version 1 to 2" out || die "no word on the update"
	grep -q "CIRC-FILE" out && die "--reset kept a file"
	"$CIRC" --state st log bb --boots >boots || die "log --boots"
	[ "$(wc -l <boots)" = 5 ] || die "expected 5 boot records: $(cat boots)"
	tail -n 1 boots | grep -q '"version":2,"manifest_sha256":"[0-9a-f]\{64\}","kernel_sha256":"[0-9a-f]\{64\}"' ||
		die "the last record: $(tail -n 1 boots)"
	tail -n 1 boots | grep -q '"outcome":"poweroff"' || die "no outcome: $(tail -n 1 boots)"
	# update --discard-overlay at the newest version drops the writes too.
	kiosk_run out bb --append "quiet root=/dev/vda circ.test=write" || die "boot 6"
	"$CIRC" --state st update bb --discard-overlay >/dev/null || die "update --discard-overlay"
	kiosk_run out bb || die "boot 7"
	grep -q "CIRC-FILE" out && die "update --discard-overlay kept the writes"
	true
}

test_kiosk_offline() {
	kiosk_setup kit
	"$CIRC" --state st pull "$URL" bb --key k.pub >/dev/null || die "pull"
	"$CIRC" --state st fetch bb >out || die "fetch: $(cat out)"
	"$CIRC" --state never pull "$URL" bb --key k.pub >/dev/null || die "pull (never fetched)"
	# A server that answers wrongly is not "offline": nothing boots on its word.
	cp repo/images/bb/latest latest.good
	flip_byte repo/images/bb/latest 100
	expect_fail 1 "signed by|signature|damaged" "$CIRC" --state st run bb --vmm qemu
	grep -q '"offline":true' st/disks/bb/boots 2>/dev/null && die "a bad pointer was taken for offline"
	cp latest.good repo/images/bb/latest
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	kiosk_run out bb --reset --timeout 2 || die "offline boot: $(tail -n 3 out)"
	grep -q "offline: the server cannot be reached; booting version 1" out ||
		die "the offline boot did not say so: $(head -n 3 out)"
	grep -q "CIRC-VERSION 1" out || die "offline: $(tail -n 3 out)"
	grep -q '"offline":true' st/disks/bb/boots || die "the boot record does not say offline"
	err=$(timeout 60 "$CIRC" --state never run bb --vmm qemu --timeout 2 </dev/null 2>&1 >/dev/null)
	rc=$?
	[ $rc = 1 ] || die "a never-fetched kiosk offline exited $rc: $err"
	[ "$(echo "$err" | wc -l)" = 1 ] || die "not one line: $err"
	echo "$err" | grep -q "not all here .* nothing booted; circ fetch bb while online" ||
		die "the refusal says: $err"
}

test_damaged_kit_never_boots() {
	kiosk_setup kit
	id=$(head -c 65536 "$IMAGES/kit/vmlinuz" | sha256sum | cut -c1-64)
	f=repo/blocks/${id:0:2}/$id
	[ -f "$f" ] || die "the kernel's first block is not in the store"
	printf 'XXXX' | dd of="$f" bs=1 seek=40 conv=notrunc status=none
	expect_fail 1 "kernel block 0 \($id\) is damaged" "$CIRC" verify --url "$URL" --key k.pub --name bb
	err=$(timeout 120 "$CIRC" --state st run "$URL" bb --key k.pub --vmm qemu </dev/null 2>&1 >/dev/null)
	[ $? = 1 ] || die "a run with a damaged kernel did not fail: $err"
	echo "$err" | grep -q "Booting" && die "it booted"
	[ ! -e st/disks/bb/boots ] || die "a boot was recorded"
	true
}

test_fetch_resumes() {
	need_fuse
	"$CIRC" keygen k >/dev/null
	make_image img 32
	"$CIRC" publish --repo repo --key k.key --name t img >/dev/null || die "publish"
	start_serve repo
	"$CIRC" --state st pull "$URL" t --key k.pub >/dev/null || die "pull"
	"$CIRC" --state st fetch t --timeout 5 >/dev/null 2>&1 &
	pid=$!
	while kill -0 $pid 2>/dev/null && [ "$(grep -c 'GET /blocks/' "$SERVE_LOG")" -lt 60 ]; do
		sleep 0.01
	done
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	"$CIRC" --state st fetch t >out || die "the second fetch: $(cat out)"
	grep -q "cached before" out || die "fetch said: $(cat out)"
	# Only what was in flight when it was killed (at most 8 requests) comes twice.
	dups=$(grep ' GET /blocks/.* 200 ' "$SERVE_LOG" | awk '{print $3}' | sort | uniq -d | wc -l)
	[ "$dups" -le 8 ] || die "$dups blocks were fetched twice"
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	mount_disk st t mnt --timeout 2
	cmp mnt/disk.img img || die "the fetched disk does not read back offline"
	"$CIRC" --state st umount mnt
	echo "note: $(cat out)"
}

test_remote_moves_a_disk() {
	need_fuse
	"$CIRC" keygen k >/dev/null
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name t img >/dev/null || die "publish"
	start_serve repo
	old=$URL
	"$CIRC" --state st pull "$URL" t --key k.pub >/dev/null || die "pull"
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	start_serve repo
	"$CIRC" --state st remote t --set-url "$URL" --add-mirror "$old" >out || die "remote"
	[ "$(head -n 1 out)" = "$URL  (origin)" ] || die "remote shows: $(cat out)"
	mount_disk st t mnt --timeout 5
	cmp mnt/disk.img img || die "the disk does not read from its new server"
	"$CIRC" --state st umount mnt
	"$CIRC" --state st remote t --remove-mirror "$old" >out || die "remove-mirror"
	[ "$(wc -l <out)" = 1 ] || die "remote shows: $(cat out)"
	expect_fail 1 "only source" "$CIRC" --state st remote t --remove-mirror "$URL"
	expect_fail 2 "not an http" "$CIRC" --state st remote t --set-url ftp://x
}

ROOT=${CIRC_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}

t_case "kiosk: one command boots the kit; --reset; a new version; writes kept without reset" \
	test_kiosk_story
t_case "kiosk offline: a fetched disk boots and says so; a never-fetched one refuses" \
	test_kiosk_offline
t_case "a damaged boot kit: verify names the kernel block, run refuses to boot" \
	test_damaged_kit_never_boots
t_case "circ fetch killed with -9 resumes; only blocks in flight are fetched again" \
	test_fetch_resumes
t_case "circ remote moves a disk to another server without pulling again" \
	test_remote_moves_a_disk
t_case "SIGTERM, SIGINT and SIGHUP stop QEMU and unmount; the disk is free" \
	test_signals_stop_everything
t_case "under QEMU too: power-off exits 0, a reboot 3, Ctrl-A x 4 (QEMU's monitor says which)" \
	test_exit_statuses_under_qemu
t_case "a run killed with -9: QEMU goes with it, the next run unmounts what it left" \
	test_killed_run_is_cleaned_up
t_case "the kiosk unit passes systemd-analyze verify" test_kiosk_unit_verifies
t_case "a bad or missing kernel is refused before anything is mounted, on both VMMs" \
	test_bad_kernel_refused_before_mounting
