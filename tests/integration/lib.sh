# Shared helpers for integration tests; source it. Each test is a function run
# by t_case, which prints "PASS: name", "FAIL: name: why" or "SKIP: name: why".
# Everything a test starts or creates is removed on exit, also on failure.
set -u

CIRC=${CIRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/circ}
# Where a client's cached blocks lie (tests/tools/cachetool.c), for tests that damage one.
CACHETOOL=${CIRC_BUILD:-$(dirname "$CIRC")}/cachetool
T_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/circ-test.XXXXXX")
T_PIDS=()
T_MOUNTS=()

# Stops what a case started; runs when the case's subshell exits, pass or fail.
t_case_cleanup() {
	local p m
	for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for m in "${T_MOUNTS[@]}"; do umount -l "$m" 2>/dev/null; done
}
trap 'rm -rf "$T_ROOT"' EXIT

# t_case NAME FUNCTION: runs FUNCTION in a subshell with its own directory.
# Exit 0 passes, 77 skips (the function prints the reason), else fails.
t_case() {
	local name=$1 fn=$2 dir out rc
	# CIRC_TEST_ONLY=FUNCTION runs that case alone (make stress does).
	[ -z "${CIRC_TEST_ONLY:-}" ] || [ "$CIRC_TEST_ONLY" = "$fn" ] || return 0
	dir=$(mktemp -d "$T_ROOT/case.XXXXXX")
	out=$(
		cd "$dir" || exit 1
		T_DIR=$dir
		trap t_case_cleanup EXIT
		"$fn" 2>&1
	)
	rc=$?
	case $rc in
	0)
		echo "PASS: $name"
		# Figures a test records for the log: lines it prints as "note: ...".
		echo "$out" | grep '^note: ' | sed 's/^/    /'
		;;
	77) echo "SKIP: $name: $(echo "$out" | tail -n 1)" ;;
	*)
		echo "FAIL: $name: $(echo "$out" | tail -n 1)"
		echo "$out" | tail -n 15 | sed 's/^/    | /'
		;;
	esac
}

die() {
	echo "$*"
	exit 1
}

skip() {
	echo "$*"
	exit 77
}

# expect_fail CODE REGEX CMD...: CMD must exit CODE with one stderr line matching REGEX.
expect_fail() {
	local code=$1 re=$2 rc err
	shift 2
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	[ "$rc" -eq "$code" ] || die "expected exit $code, got $rc from: $* ($err)"
	echo "$err" | grep -Eq -- "$re" || die "stderr of '$*' does not match /$re/: $err"
}

# A deterministic-size image of mixed content: random, zeros, text, random tail.
make_image() {
	local out=$1 mib=${2:-4}
	head -c $((mib * 1024 * 1024 / 2)) /dev/urandom >"$out"
	head -c $((mib * 1024 * 1024 / 4)) /dev/zero >>"$out"
	yes "circ test image line" | head -c $((mib * 1024 * 1024 / 4 - 1000)) >>"$out"
	head -c 1000 /dev/urandom >>"$out"
}

# start_serve REPO [ARGS...]: starts circ serve on a free loopback port; sets URL.
start_serve() {
	local repo=$1 out="$T_DIR/serve.$RANDOM" i
	shift
	"$CIRC" serve --repo "$repo" --listen 127.0.0.1:0 "$@" >"$out.out" 2>"$out.log" &
	SERVE_PID=$!
	T_PIDS+=("$SERVE_PID")
	SERVE_LOG="$out.log"
	for i in $(seq 1 100); do
		URL=$(sed -n 's/^listening on //p' "$out.out")
		[ -n "$URL" ] && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || die "circ serve exited: $(cat "$out.log")"
		sleep 0.05
	done
	die "circ serve did not start"
}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		(echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return 0; }
	done
	return 1
}

# json_field JSON NAME: the first numeric value of "NAME" in JSON.
json_field() { echo "$1" | grep -o "\"$2\":[0-9]*" | head -n 1 | cut -d: -f2; }

# make_tree DIR: a small tree of files of mixed kinds, a few MiB.
make_tree() {
	local d=$1 i
	mkdir -p "$d/etc" "$d/usr/bin" "$d/var/log"
	cp -r /usr/share/common-licenses "$d/etc/" 2>/dev/null || true
	for i in $(seq 1 40); do seq "$i" $((i * 300)) >"$d/etc/conf$i"; done
	head -c $((3 << 20)) /dev/urandom >"$d/usr/bin/blob"
	echo "small file for the lazy-read test" >"$d/etc/small.txt"
}

# mount_disk STATE DISK MOUNTPOINT [ARGS...]: mounts and registers the unmount.
mount_disk() {
	local state=$1 disk=$2 mp=$3
	shift 3
	mkdir -p "$mp"
	"$CIRC" --state "$state" mount "$disk" "$mp" "$@" || die "mount $disk failed"
	T_MOUNTS+=("$mp")
}

# The freestanding test guest that hv boots in tests.
GUEST=${CIRC_BUILD:-$(dirname "$CIRC")}/guest/test-guest.elf

# need_kvm: a usable /dev/kvm and the test guest, or a skip (a die) saying why.
need_kvm() {
	[ -c /dev/kvm ] || skip "/dev/kvm is absent"
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "no permission on /dev/kvm"
	[ -f "$GUEST" ] || die "$GUEST is not built"
}

need_fuse() {
	[ -c /dev/fuse ] || skip "/dev/fuse is absent"
	[ "$(id -u)" = 0 ] || command -v fusermount3 >/dev/null || skip "needs root or fusermount3"
}

# start_nginx SERVER_LINES: nginx on a free loopback port with SERVER_LINES
# in its server block (a root, a proxy_pass); its logs in $T_DIR/nginx; sets URL.
start_nginx() {
	local conf="$T_DIR/nginx" port i
	command -v nginx >/dev/null || skip "nginx is not installed"
	mkdir -p "$conf"
	port=$(free_port) || die "no free port"
	cat >"$conf/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $conf/error.log;
pid $conf/nginx.pid;
events { worker_connections 64; }
http {
	access_log $conf/access.log;
	client_body_temp_path $conf/body;
	proxy_temp_path $conf/proxy;
	fastcgi_temp_path $conf/fastcgi;
	uwsgi_temp_path $conf/uwsgi;
	scgi_temp_path $conf/scgi;
	sendfile on;
	server {
		listen 127.0.0.1:$port;
		$1
	}
}
CONF
	nginx -c "$conf/nginx.conf" -p "$conf" &
	T_PIDS+=($!)
	URL="http://127.0.0.1:$port"
	for i in $(seq 1 100); do
		curl -s -o /dev/null "$URL/" && return 0
		sleep 0.05
	done
	die "nginx did not start: $(cat "$conf/error.log" 2>/dev/null)"
}

# need_images: the boot kit and the busybox image (built once, cached in
# build/images), or a skip saying why; sets IMAGES and KERNEL_RELEASE.
need_images() {
	local root=${CIRC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
	IMAGES=$root/build/images
	[ "$(id -u)" = 0 ] || skip "building the boot kit needs root (apt-get download)"
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
	"$root/images/bootkit.sh" "$IMAGES/kit" >/dev/null 2>kit.err ||
		skip "cannot build the boot kit: $(tail -n 1 kit.err)"
	"$root/images/busybox.sh" "$IMAGES/busybox.img" >/dev/null 2>img.err ||
		die "busybox.sh failed: $(tail -n 1 img.err)"
	KERNEL_RELEASE=$(cat "$IMAGES/kit/kernel.release")
}

# flip_byte FILE OFFSET: inverts one byte of FILE in place (always a change,
# unlike writing a constant that may already be there).
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' ')
	[ -n "$b" ] || die "flip_byte: $1 has no byte $2"
	printf "\\$(printf '%03o' $((255 - b)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
