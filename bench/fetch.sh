#!/usr/bin/env bash
# Fetch over loopback: the repo publish.sh left (v1 and v2, 64K blocks) served
# by `circ serve` and by nginx side by side, each fetched by two clients:
#   A: `circ verify --url` (pointer, manifest, every distinct block of the
#      newest version, verified; 8 in flight);
#   B: curl fetching every object of the repo, 8 in flight on kept-alive
#      connections;
# and, for scale, the raw image in one request from nginx; then a load of
# 64 kept-alive connections on one block for CIRC_BENCH_LOAD_S seconds
# (default 60) from ab, against each server: requests/s and errors.
# Both servers are stopped on exit, also when something fails.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_images
bench_key
W=$BENCH_WORK
REPO=$(get repo)
[ -d "$REPO/blocks" ] || die "no repo from publish.sh at '$REPO'"
name=$BENCH_NAME

SERVE_PID=''
NGINX_PID=''
NGINX_DIR=''
stop_servers() {
	local p
	for p in "$SERVE_PID" "$NGINX_PID"; do
		[ -n "$p" ] || continue
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "$SERVE_PID" "$NGINX_PID"; do
		[ -n "$p" ] || continue
		wait "$p" 2>/dev/null || true
	done
	SERVE_PID='' NGINX_PID=''
	[ -z "$NGINX_DIR" ] || rm -rf "$NGINX_DIR"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

start_circ_serve() {
	local i
	"$CIRC" serve --repo "$REPO" --listen 127.0.0.1:0 --quiet >"$W/serve.out" 2>"$W/serve.log" &
	SERVE_PID=$!
	for i in $(seq 1 200); do
		CIRC_URL=$(sed -n 's/^listening on //p' "$W/serve.out")
		[ -z "$CIRC_URL" ] || break
		kill -0 "$SERVE_PID" 2>/dev/null || die "circ serve exited: $(cat "$W/serve.log")"
		[ "$i" -lt 200 ] && sleep 0.05
	done
	[ -n "$CIRC_URL" ] || die "circ serve printed no address"
	wait_http "$CIRC_URL/images/$name/latest" "$SERVE_PID" "circ serve" ||
		die "circ serve exited: $(cat "$W/serve.log")"
}

say "starting circ serve and nginx on loopback"
start_circ_serve
# nginx also serves the raw images under /raw/ for the one-request figure.
start_nginx "$REPO" "/images/$name/latest" "location /raw/ { alias $(dirname "$IMG1")/; }"

# Every object of the repo, as a curl config per server.
(cd "$REPO" && find blocks images -type f ! -name '.*' | LC_ALL=C sort) >"$W/objects"
nobj=$(wc -l <"$W/objects")
obytes=$(bytes_of_list "$REPO" "$W/objects")
for s in circ nginx; do
	if [ $s = circ ]; then base=$CIRC_URL; else base=$NGINX_URL; fi
	awk -v b="$base" '{ printf "url = \"%s/%s\"\noutput = \"/dev/null\"\n", b, $0 }' \
		"$W/objects" >"$W/urls.$s"
done
CURL_B="curl -s --no-progress-meter --parallel --parallel-max 8 --parallel-immediate"

# One untimed pass each: everything answers 200 and the image verifies.
for s in circ nginx; do
	ok=$($CURL_B -w '%{http_code}\n' -K "$W/urls.$s" 2>"$W/curl.err" | grep -c '^200$' || true)
	[ "$ok" -eq "$nobj" ] || die "$s: $ok of $nobj objects answered 200: $(tail -n 2 "$W/curl.err")"
done
out=$("$CIRC" --state "$W/state" verify --url "$CIRC_URL" --key "$PUB" --name "$name") ||
	die "circ verify against circ serve failed: $out"
"$CIRC" --state "$W/state" verify --url "$NGINX_URL" --key "$PUB" --name "$name" >/dev/null ||
	die "circ verify against nginx failed"
distinct=$(sed -nE 's/.*\(([0-9]+) distinct.*/\1/p' <<<"$out")
version=$(sed -nE "s/^$name version ([0-9]+):.*/\\1/p" <<<"$out")

section "fetch over loopback: circ serve (8 threads) vs nginx (2 workers, sendfile), $BENCH_RUNS runs each"
printf '  A: circ verify --url, v%s: %s distinct blocks + manifest, 8 in flight, SHA-256 checked\n' "$version" "$distinct"
printf '  B: curl, every object of the repo: %s files, %s, 8 in flight, keep-alive\n' "$nobj" "$(human "$obytes")"

verify_cmd() { printf "'%s' --state '%s' verify --url '%s' --key '%s' --name %s" "$CIRC" "$W/state" "$1" "$PUB" "$name"; }
say "client A against circ serve, then nginx"
hf va_circ ":" "$(verify_cmd "$CIRC_URL")"
hf va_nginx ":" "$(verify_cmd "$NGINX_URL")"
say "client B against circ serve, then nginx"
hf vb_circ ":" "$CURL_B -K '$W/urls.circ'"
hf vb_nginx ":" "$CURL_B -K '$W/urls.nginx'"
say "raw image from nginx, one request"
hf raw ":" "curl -s -o /dev/null '$NGINX_URL/raw/$(basename "$IMG2")'"

row "A: circ verify --url" "circ serve" va_circ nginx va_nginx
row "B: curl every object" "circ serve" vb_circ nginx vb_nginx "$obytes"
row "whole image: verify vs raw GET" "circ+serve" va_circ "nginx+curl" raw "$IMG_SIZE"
printf '  (MB/s on the last line are of the 1 GiB image delivered, compressed or not)\n'
result fetch_objects "$nobj"
result fetch_bytes "$obytes"
result fetch_verify_circ_s "${T[va_circ]}"
result fetch_verify_nginx_s "${T[va_nginx]}"
result fetch_curl_circ_s "${T[vb_circ]}"
result fetch_curl_nginx_s "${T[vb_nginx]}"
result fetch_raw_nginx_s "${T[raw]}"

# Load: 64 kept-alive connections for LOAD_S seconds on one block, ab against
# each server in turn (ab is one process: the same client for both).
LOAD_S=${CIRC_BENCH_LOAD_S:-60}
block=$(head -n 1 <(grep '^blocks/' "$W/objects"))
load() { # SERVER_URL OUT
	ab -k -c 64 -t "$LOAD_S" -n 100000000 "$1/$block" >"$2" 2>&1 || die "ab against $1 failed: $(tail -n 2 "$2")"
}
say "load: ab -k -c 64 for $LOAD_S s against circ serve, then nginx"
load "$CIRC_URL" "$W/ab.circ"
load "$NGINX_URL" "$W/ab.nginx"
ab_rps() { sed -nE 's/^Requests per second: +([0-9.]+).*/\1/p' "$1"; }
ab_bad() { awk '/^Failed requests:/ { f = $3 } /^Non-2xx responses:/ { n = $3 } END { print f + n }' "$1"; }
section "load: 64 kept-alive connections for $LOAD_S s on one block (ab -k -c 64)"
line "requests/s" "circ serve" "$(ab_rps "$W/ab.circ") req/s, $(ab_bad "$W/ab.circ") errors" \
	nginx "$(ab_rps "$W/ab.nginx") req/s, $(ab_bad "$W/ab.nginx") errors" \
	"$(ratio "$(ab_rps "$W/ab.circ")" "$(ab_rps "$W/ab.nginx")")"
result load_circ_rps "$(ab_rps "$W/ab.circ")"
result load_nginx_rps "$(ab_rps "$W/ab.nginx")"
result load_circ_errors "$(ab_bad "$W/ab.circ")"
