#!/usr/bin/env bash
# The same repo served by nginx works for every client command: nothing the
# client needs is special to circ serve.
. "$(dirname "$0")/lib.sh"

# start_nginx DIR: serves DIR on a free loopback port; sets URL.
start_nginx() {
	local root=$1 port conf="$T_DIR/nginx" i
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
		root $root;
		location /blocks/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
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

test_verify_through_nginx() {
	"$CIRC" keygen k >/dev/null
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish"
	start_nginx "$T_DIR/repo"
	out=$("$CIRC" verify --url "$URL" --key k.pub --name test) || die "verify via nginx: $out"
	grep -q "GET /images/test/latest" "$T_DIR/nginx/access.log" || die "nginx did not serve the pointer"
	# A second version, then damage: both seen through nginx too.
	head -c 65536 /dev/urandom | dd of=img bs=65536 seek=2 conv=notrunc status=none
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish v2"
	"$CIRC" verify --url "$URL" --key k.pub --name test | grep -q "version 2" || die "v2 via nginx"
	f=$(find repo/blocks -type f | sort | tail -n 1)
	printf 'XX' | dd of="$f" bs=1 seek=30 conv=notrunc status=none
	expect_fail 1 "\($(basename "$f")\) is damaged" "$CIRC" verify --url "$URL" --key k.pub --name test
}

t_case "circ verify --url against nginx serving the repo" test_verify_through_nginx
