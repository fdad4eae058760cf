#!/usr/bin/env bash
# A screen and a keyboard: hv's framebuffer, virtio keyboard and tablet
# under the real /dev/kvm with the freestanding test guest (a pattern drawn
# and compared pixel for pixel over VNC, then keys and a click echoed on
# the serial port), the VNC password where the display is not on
# loopback, and Linux under QEMU with the same --display, typing a line on
# its screen. Each screen is saved as a PNG under the build directory for
# a person to look at.
. "$(dirname "$0")/lib.sh"

BUILD=${CIRC_BUILD:-$(dirname "$CIRC")}
VNCTOOL=$BUILD/vnctool

need_display() {
	need_kvm
	[ -x "$VNCTOOL" ] || die "$VNCTOOL is not built"
}

# wait_out PATTERN PID: until the console (out) has PATTERN, or the VM ends.
wait_out() {
	local start
	start=$(date +%s)
	until grep -aq "$1" out; do
		kill -0 "$2" 2>/dev/null || die "the VM ended before '$1': $(tail -n 5 out err)"
		[ $(($(date +%s) - start)) -lt 300 ] || die "no '$1' in 5 minutes: $(tail -n 5 out)"
		sleep 0.1
	done
}

# hv_display PORT ARGS...: the test guest in display mode, in the background; sets PID.
hv_display() {
	local port=$1
	shift
	"$CIRC" run --vmm hv --kernel "$GUEST" --append "display=1" --mem 32M --stats \
		--display "vnc:127.0.0.1:$port,320x200" "$@" >out 2>err </dev/null &
	PID=$!
	T_PIDS+=("$PID")
	wait_out "^display: 320x200 ready" "$PID"
}

test_hv_pattern_keys_and_pointer() {
	need_display
	port=$(free_port) || die "no free port"
	hv_display "$port"
	grep -q "^an EFI framebuffer in screen_info: ok" out || die "no framebuffer: $(cat out)"
	grep -q "^virtio-input: circ keyboard" out || die "no keyboard: $(cat out)"
	grep -q "^virtio-input: circ tablet" out || die "no tablet: $(cat out)"
	"$VNCTOOL" "127.0.0.1:$port" check-pattern "$BUILD/display-hv.png" ||
		die "the screen over VNC is not what the guest drew (see $BUILD/display-hv.png)"
	echo "note: the screen is in $BUILD/display-hv.png"
	# On one connection: x makes the guest paint its top rows, which arrive as
	# an update of the pages written (KVM's dirty log), the rest untouched.
	"$VNCTOOL" "127.0.0.1:$port" press-watch x "$BUILD/display-hv-x.png" ||
		die "the guest's change did not reach the client"
	"$VNCTOOL" "127.0.0.1:$port" click 100 50 || die "click failed"
	"$VNCTOOL" "127.0.0.1:$port" type hi || die "typing failed"
	wait "$PID" || die "circ run exited $?: $(tail -n 3 err)"
	grep -q "circ test guest: done" out || die "the guest did not see Enter: $(tail -n 5 out)"
	# The keyboard: x (45); then the tablet: x 100 of 320 and y 50 of 200 on axes
	# of 0 to 32767, the left button; then h (35), i (23), Enter (28), in order.
	got=$(grep "^input: " out | tr '\n' ' ')
	want="input: 1 45 1 input: 1 45 0 "
	want+="input: 3 0 10271 input: 3 1 8232 input: 3 0 10271 input: 3 1 8232 input: 1 272 1 "
	want+="input: 3 0 10271 input: 3 1 8232 input: 1 272 0 "
	want+="input: 1 35 1 input: 1 35 0 input: 1 23 1 input: 1 23 0 input: 1 28 1 input: 1 28 0 "
	[ "$got" = "$want" ] || die "the guest got other events: $got"
	grep -q "hv: display: [1-9][0-9]* updates sent, 4 clients" err ||
		die "no display statistics: $(grep display err)"
}

# What a network can throw at the port: a flood of connections (each a
# descriptor: libvncserver's fd_set would abort the process past 1024), and a
# web page's WebSocket (libvncserver would take it on the same port).
test_hv_display_survives_floods_and_websockets() {
	need_display
	port=$(free_port) || die "no free port"
	hv_display "$port"
	"$VNCTOOL" "127.0.0.1:$port" flood 1200 || die "the flood could not connect"
	kill -0 "$PID" 2>/dev/null || die "hv died under the flood: $(tail -n 3 err)"
	"$VNCTOOL" "127.0.0.1:$port" websocket || die "a WebSocket client was let in"
	"$VNCTOOL" "127.0.0.1:$port" check-pattern x.png || die "no screen after the flood"
	"$VNCTOOL" "127.0.0.1:$port" type "" || die "typing failed"
	wait "$PID" || die "circ run exited $?: $(tail -n 3 err)"
}

test_hv_password_off_loopback() {
	need_display
	port=$(free_port) || die "no free port"
	# Anyone on the network could drive the guest: a password or nothing.
	expect_fail 1 "needed and no terminal to ask" setsid "$CIRC" run --vmm hv \
		--kernel "$GUEST" --display "vnc:0.0.0.0:$port"
	(umask 077 && echo "s3cret" >pw && echo "wrong" >bad)
	"$CIRC" run --vmm hv --kernel "$GUEST" --append "display=1" --mem 32M \
		--display "vnc:0.0.0.0:$port,320x200" --vnc-password-file pw >out 2>err </dev/null &
	PID=$!
	T_PIDS+=("$PID")
	wait_out "^display: 320x200 ready" "$PID"
	expect_fail 1 "password check failed" "$VNCTOOL" "127.0.0.1:$port" --password-file bad snapshot x.png
	"$VNCTOOL" "127.0.0.1:$port" --password-file pw check-pattern x.png ||
		die "the right password was refused"
	"$VNCTOOL" "127.0.0.1:$port" --password-file pw type "" || die "typing failed"
	wait "$PID" || die "circ run exited $?: $(tail -n 3 err)"
	if grep -q "s3cret" out err; then die "the password was printed"; fi
}

test_display_bad_options() {
	[ -f "$GUEST" ] || die "$GUEST is not built"
	for opt in "--display none|vnc" "--vnc-password-file"; do
		"$CIRC" run --help | grep -qF -- "$opt" || die "circ run --help does not tell of $opt"
	done
	expect_fail 2 "none or vnc" "$CIRC" run --kernel "$GUEST" --display vga
	expect_fail 2 "none or vnc" "$CIRC" run --kernel "$GUEST" --display vnc:1.2.3:5900
	expect_fail 2 "none or vnc" "$CIRC" run --kernel "$GUEST" --display vnc:127.0.0.1:0
	expect_fail 2 "PORT 5900 or more" "$CIRC" run --kernel "$GUEST" --display vnc:127.0.0.1:5000
	expect_fail 2 "none or vnc" "$CIRC" run --kernel "$GUEST" --display "vnc:127.0.0.1: 5901"
	expect_fail 2 "bad display size" "$CIRC" run --kernel "$GUEST" --display vnc,4294967360x768
	expect_fail 2 "bad display size" "$CIRC" run --kernel "$GUEST" --display vnc,10x10
	expect_fail 2 "bad display size" "$CIRC" run --kernel "$GUEST" --display vnc,800x600x16
	expect_fail 2 "goes with --display" "$CIRC" run --kernel "$GUEST" --vnc-password-file pw
	for i in 1 2 3 4 5 6 7; do disks+=(--disk-file "d$i"); done
	expect_fail 2 "at most 8 devices" "$CIRC" run --kernel "$GUEST" "${disks[@]}" --display vnc
	# A port that is taken: one line, before the guest runs.
	start_nginx "location / { return 200; }"
	expect_fail 1 "vnc: cannot listen on 127.0.0.1:${URL##*:}" "$CIRC" run --vmm hv \
		--kernel "$GUEST" --display "vnc:127.0.0.1:${URL##*:}"
}

# Linux (busybox image) with the same option, under QEMU here (--vmm auto:
# hv where KVM runs at hardware speed): its screen over VNC, and a line
# typed on the virtio keyboard reaching the screen's terminal.
test_linux_display_and_keyboard() {
	need_images
	[ -x "$VNCTOOL" ] || die "$VNCTOOL is not built"
	port=$(free_port) || die "no free port"
	[ "$port" -ge 5900 ] || die "free_port gave $port, below QEMU's VNC range"
	cp "$IMAGES/busybox.img" disk.raw
	"$CIRC" run --vmm auto --kernel "$IMAGES/kit/vmlinuz" --initrd "$IMAGES/kit/initrd.img" \
		--disk-file disk.raw --mem 256M --append "root=/dev/vda circ.test=display" \
		--display "vnc:127.0.0.1:$port,640x480" >out 2>err </dev/null &
	PID=$!
	T_PIDS+=("$PID")
	wait_out "CIRC-DISPLAY-READY" "$PID"
	grep -a "CIRC-INPUT" out
	grep -aq "CIRC-INPUT .*[Kk]eyboard" out || die "no virtio keyboard: $(grep -a CIRC-INPUT out)"
	grep -aq "CIRC-INPUT .*[Tt]ablet" out || die "no virtio tablet: $(grep -a CIRC-INPUT out)"
	"$VNCTOOL" "127.0.0.1:$port" snapshot "$BUILD/display-linux.png" || die "no screen over VNC"
	echo "note: on $(sed -n 's/^circ run: using \([a-z]*\).*/\1/p' err); the screen is in $BUILD/display-linux.png"
	"$VNCTOOL" "127.0.0.1:$port" type "circ 123" || die "typing failed"
	wait_out "CIRC-TYPED" "$PID"
	grep -aq "^CIRC-TYPED circ 123" out || die "the guest read something else: $(grep -a CIRC-TYPED out)"
	wait "$PID" || die "circ run exited $?: $(tail -n 3 err)"
}

t_case "hv: a pattern over VNC pixel for pixel; keys and a click reach the guest" \
	test_hv_pattern_keys_and_pointer
t_case "hv: off loopback, the display takes a password from a file" test_hv_password_off_loopback
t_case "display: bad options are refused" test_display_bad_options
t_case "hv: the display survives a flood of connections and refuses WebSockets" \
	test_hv_display_survives_floods_and_websockets
t_case "display: Linux shows its screen and reads a typed line (QEMU here)" \
	test_linux_display_and_keyboard
