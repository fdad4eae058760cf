#!/usr/bin/env bash
# Guests on a network: hv's virtio-net card under the real /dev/kvm with the
# freestanding test guest (DHCP and ping on a user network, ping through a
# tap in a network namespace this test makes), and Linux (busybox image,
# the boot kit's kernel) getting an address by DHCP, fetching a file from a
# server on the host's loopback through --guestfwd and serving one back
# through --hostfwd. The user networks are restricted: nothing but the
# forwards set up here is reachable, and no name is resolved.
. "$(dirname "$0")/lib.sh"


# hv_guest ARGS...: the test guest on hv; its console in out, stderr in err.
hv_guest() {
	timeout 120 "$CIRC" run --vmm hv --kernel "$GUEST" --mem 32M --stats "$@" >out 2>err </dev/null
}

test_hv_dhcp_and_ping() {
	need_kvm
	hv_guest --append "net=1" --net user,restrict || die "circ run failed: $(tail -n 3 err)"
	cat out
	grep -q "FAIL" out && die "the guest reported a failure"
	grep -q "^virtio-net card: ok" out || die "the guest found no card"
	grep -q "^dhcp: address 10.0.2.15 from 10.0.2.2" out || die "no DHCP offer of 10.0.2.15"
	grep -q "^ping the gateway: ok" out || die "no echo reply from the gateway"
	# Two frames each way (discover and echo out, offer and reply in), nothing malformed.
	grep -q "hv: net 1: user, 2 frames in .*, 2 out .*, 0 malformed" err ||
		die "unexpected device statistics: $(grep 'net 1' err)"
}

test_hv_mac() {
	need_kvm
	hv_guest --append "net=1" --net user,restrict --mac 52:54:00:aa:bb:cc || die "run: $(cat err)"
	grep -q "^mac: 52:54:00:aa:bb:cc" out || die "the card does not have --mac: $(grep mac: out)"
	# Without --mac: derived from the first disk's name, the same on every run.
	head -c 1M /dev/zero >a.raw
	cp a.raw b.raw
	hv_guest --append "net=1" --net user,restrict --disk-file a.raw || die "run: $(cat err)"
	a1=$(grep "^mac: " out)
	hv_guest --append "net=1" --net user,restrict --disk-file a.raw || die "run: $(cat err)"
	a2=$(grep "^mac: " out)
	hv_guest --append "net=1" --net user,restrict --disk-file b.raw || die "run: $(cat err)"
	b1=$(grep "^mac: " out)
	[ "$a1" = "$a2" ] || die "the same disk got two addresses: $a1, $a2"
	[ "$a1" != "$b1" ] || die "two disks got the same address: $a1"
	echo "$a1" | grep -q "^mac: 52:54:00:" || die "not in 52:54:00: $a1"
}

# A tap in a network namespace of the test's own: the host end is 10.0.3.1,
# the guest 10.0.3.2 with a fixed MAC, which the host's neighbour table knows.
test_hv_tap_in_netns() {
	need_kvm
	[ "$(id -u)" = 0 ] || skip "a tap needs root"
	[ -c /dev/net/tun ] || skip "/dev/net/tun is absent"
	command -v ip >/dev/null || skip "ip (iproute2) is not installed"
	unshare --net true 2>/dev/null || skip "cannot make a network namespace here"
	cat >ns.sh <<EOF
set -e
ip link set lo up
ip tuntap add dev circtap0 mode tap
ip addr add 10.0.3.1/24 dev circtap0
ip link set circtap0 up
ip neigh add 10.0.3.2 lladdr 52:54:00:00:03:02 dev circtap0 nud permanent
# 10.0.3.2 and 10.0.3.1 as the guest reads them: decimal numbers.
exec timeout 120 "$CIRC" run --vmm hv --kernel "$GUEST" --mem 32M --stats \
	--append "net=2 ip=$((10 << 24 | 3 << 8 | 2)) host=$((10 << 24 | 3 << 8 | 1))" \
	--net tap:circtap0 --mac 52:54:00:00:03:02
EOF
	unshare --net bash ns.sh >out 2>err </dev/null || die "circ run failed: $(tail -n 3 err)"
	cat out
	grep -q "^ping the host: ok" out || die "no echo reply from the tap's host side"
	grep -q "hv: net 1: tap" err || die "no tap statistics: $(cat err)"
}

test_bad_net_options() {
	[ -f "$GUEST" ] || die "$GUEST is not built"
	for opt in "--net none|user" "--hostfwd" "--guestfwd" "--mac MAC"; do
		"$CIRC" run --help | grep -qF -- "$opt" || die "circ run --help does not tell of $opt"
	done
	expect_fail 2 "none, user, user,restrict or tap" "$CIRC" run --kernel "$GUEST" --net wifi
	expect_fail 2 "bad tap interface name" "$CIRC" run --kernel "$GUEST" --net tap:
	expect_fail 2 "bad hostfwd" "$CIRC" run --kernel "$GUEST" --net user --hostfwd tcp::80
	expect_fail 2 "bad guestfwd" "$CIRC" run --kernel "$GUEST" --net user --guestfwd tcp:10.0.2.100:80
	expect_fail 2 "not 10.0.2.2, 10.0.2.3 or 10.0.2.15" "$CIRC" run --kernel "$GUEST" --net user \
		--guestfwd tcp:10.0.2.2:80-tcp:127.0.0.1:80
	expect_fail 2 "go with --net user" "$CIRC" run --kernel "$GUEST" --hostfwd tcp::8080-:80
	expect_fail 2 "bad --mac" "$CIRC" run --kernel "$GUEST" --net user --mac 01:00:5e:00:00:01
	expect_fail 2 "bad --mac" "$CIRC" run --kernel "$GUEST" --net user --mac 52:54:00:00:00
	expect_fail 2 "bad --mac" "$CIRC" run --kernel "$GUEST" --net user --mac " 2:54:00:aa:bb:cc"
	expect_fail 2 "bad --mac" "$CIRC" run --kernel "$GUEST" --net user --mac 00:00:00:00:00:00
	expect_fail 2 "bad tap interface name" "$CIRC" run --kernel "$GUEST" --net tap:a,b
	expect_fail 2 "not 10.0.2.2, 10.0.2.3 or 10.0.2.15" "$CIRC" run --kernel "$GUEST" --net user \
		--guestfwd tcp:10.0.2.3:53-tcp:127.0.0.1:53
	# A host port that is taken (nginx holds it): one line naming the forward, before the guest runs.
	start_nginx "location / { return 200; }"
	taken=${URL##*:}
	expect_fail 1 "hostfwd tcp:127.0.0.1:$taken" "$CIRC" run --vmm hv --kernel "$GUEST" \
		--net user --hostfwd "tcp::$taken-:80"
}

# The busybox image on Linux: DHCP, a file from nginx on the host's loopback
# through --guestfwd, and the guest's own HTTP server reached through --hostfwd.
# --vmm auto: hv where KVM runs at hardware speed, QEMU (TCG) here.
test_linux_dhcp_guestfwd_hostfwd() {
	need_images
	head -c 300000 /dev/urandom >file.bin
	want=$(md5sum <file.bin | cut -d' ' -f1)
	start_nginx "root $T_DIR;"
	nport=${URL##*:}
	hport=$(free_port) || die "no free port"
	cp "$IMAGES/busybox.img" disk.raw
	"$CIRC" run --vmm auto --kernel "$IMAGES/kit/vmlinuz" --initrd "$IMAGES/kit/initrd.img" \
		--disk-file disk.raw --mem 256M \
		--append "root=/dev/vda circ.test=net circ.url=http://10.0.2.100:8080/file.bin circ.serve=1" \
		--net user,restrict --guestfwd "tcp:10.0.2.100:8080-tcp:127.0.0.1:$nport" \
		--hostfwd "tcp::$hport-:80" >out 2>err </dev/null &
	pid=$!
	T_PIDS+=("$pid")
	start=$(date +%s)
	until grep -aq "CIRC-NET-SERVING\|CIRC-NET-FAIL" out; do
		kill -0 "$pid" 2>/dev/null || die "the VM ended: $(tail -n 5 out err)"
		[ $(($(date +%s) - start)) -lt 300 ] || die "no network test result in 5 minutes"
		sleep 0.2
	done
	grep -a "CIRC-NET" out
	vmm=$(sed -n 's/^circ run: using \([a-z]*\).*/\1/p' err)
	echo "note: on $vmm: $(grep -a CIRC-NET-IP out)"
	grep -aq "^CIRC-NET-IP 10.0.2.15/24" out || die "no DHCP address"
	grep -aq "^CIRC-NET-GOT $want" out || die "the guest fetched something else: $(grep -a CIRC-NET out)"
	grep -q "GET /file.bin" "$T_DIR/nginx/access.log" || die "nginx saw no request"
	# The host reaches the guest's server through --hostfwd (loopback only).
	curl -sf "http://127.0.0.1:$hport/numbers.txt" >numbers.txt || die "nothing through --hostfwd"
	cmp numbers.txt <(seq 1 150000) || die "--hostfwd served something else"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ "$rc" = 143 ] || die "circ run exited $rc after SIGTERM: $(tail -n 3 err)"
}

t_case "hv: DHCP and ping on a restricted user network" test_hv_dhcp_and_ping
t_case "hv: --mac, or an address derived from the disk" test_hv_mac
t_case "hv: a tap in a network namespace" test_hv_tap_in_netns
t_case "net: bad options are refused" test_bad_net_options
t_case "net: Linux gets DHCP, fetches through --guestfwd, serves through --hostfwd" \
	test_linux_dhcp_guestfwd_hostfwd
