#!/usr/bin/env bash
# circ serve: a static HTTP view of the repo that caches and CDNs can front.
. "$(dirname "$0")/lib.sh"

# publish_sample [SERVE ARGS...]: a 4 MiB image published and served.
publish_sample() {
	"$CIRC" keygen k >/dev/null || die "keygen"
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish"
	start_serve repo "$@"
}

# header NAME: the value of response header NAME in headers file $1.
header() { grep -i "^$2:" "$1" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }

test_get_head_headers() {
	publish_sample
	blk=$(cd repo && find blocks -type f | head -n 1)
	size=$(stat -c %s "repo/$blk")
	curl -sf -D h -o body "$URL/$blk" || die "GET block"
	cmp -s body "repo/$blk" || die "GET body differs from the file"
	[ "$(header h Content-Length)" = "$size" ] || die "Content-Length $(header h Content-Length) != $size"
	[ -n "$(header h ETag)" ] || die "no ETag"
	[ "$(header h Cache-Control)" = "public, max-age=31536000, immutable" ] || die "block Cache-Control: $(header h Cache-Control)"
	curl -sf -D h -o /dev/null "$URL/images/test/1.manifest" || die "GET manifest"
	[ "$(header h Cache-Control)" = "public, max-age=31536000, immutable" ] || die "manifest Cache-Control"
	curl -sf -D h -o /dev/null "$URL/images/test/latest" || die "GET pointer"
	cc=$(header h Cache-Control)
	[[ $cc =~ max-age=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -le 300 ] || die "pointer Cache-Control: $cc"
	curl -sf -I -D h -o /dev/null "$URL/$blk" || die "HEAD"
	[ "$(header h Content-Length)" = "$size" ] || die "HEAD Content-Length"
	etag=$(header h ETag)
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/$blk")
	[ "$code" = 304 ] || die "If-None-Match gave $code"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/blocks/00/nothing")
	[ "$code" = 404 ] || die "missing file gave $code"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/blocks/")
	[ "$code" = 404 ] || die "a directory gave $code"
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/$blk")
	[ "$code" = 405 ] || die "POST gave $code"
	grep -Eq "GET /$blk 200 $size [0-9.]+ms" "$SERVE_LOG" || die "no access-log line for the GET"
	grep -Eq "HEAD /$blk 200 0 " "$SERVE_LOG" || die "no access-log line for the HEAD"
}

test_traversal_refused() {
	publish_sample
	echo secret >outside
	ln -s "$T_DIR/outside" repo/images/link
	ln -s /etc repo/etc
	# Only paths of the format are served, so an escape worth refusing has one's name.
	mkdir outdir && echo secret >outdir/latest
	ln -s "$T_DIR/outdir" repo/images/evil
	ln -s "$T_DIR/outside" repo/images/test/9.manifest
	for path in "/../outside" "/images/../../outside" "/%2e%2e/outside" "/%2E%2E/%2e%2e/etc/passwd" \
		"/images/%2e%2e%2f%2e%2e%2foutside" "/images/..%2f..%2foutside" "/images/link" "/etc/passwd" \
		"/.lock" "//etc/passwd" "/images/evil/latest" "/images/test/9.manifest"; do
		out=$(curl -s --path-as-is -w ' %{http_code}' "$URL$path")
		code=${out##* }
		case $code in 403 | 404 | 400) ;; *) die "$path gave $code" ;; esac
		echo "$out" | grep -q secret && die "$path leaked a file outside the repo"
		echo "$out" | grep -q root: && die "$path leaked /etc/passwd"
	done
	grep -q "refused: path traversal" "$SERVE_LOG" || die "traversal not logged"
	# %00 would cut the decoded path short, naming another object: a 400, not that object.
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/images/test/latest%00.txt")
	[ "$code" = 400 ] || die "%00 in the path gave $code"
	grep -q "refused: %00 in the path" "$SERVE_LOG" || die "%00 not logged"
	grep -q "refused: leads outside the repo" "$SERVE_LOG" || die "symlink escape not logged"
}

test_keep_alive() {
	publish_sample
	out=$(curl -sv -o /dev/null -o /dev/null "$URL/images/test/latest" "$URL/images/test/1.manifest" 2>&1)
	echo "$out" | grep -qi "re-using existing connection" || die "second request did not reuse the connection"
}

test_verify_over_http() {
	publish_sample
	"$CIRC" verify --url "$URL" --key k.pub --name test >/dev/null || die "verify --url"
	# A dead first mirror fails over to the live one.
	dead=$(free_port)
	"$CIRC" verify --url "http://127.0.0.1:$dead" --url "$URL" --key k.pub --name test >/dev/null ||
		die "verify did not fail over to the second mirror"
	f=$(find repo/blocks -type f | sort | head -n 1)
	printf 'garbage' | dd of="$f" bs=1 seek=9 conv=notrunc status=none
	expect_fail 1 "block [0-9]+ \($(basename "$f")\) is damaged" "$CIRC" verify --url "$URL" --key k.pub --name test
	expect_fail 1 "has no image 'nosuch'" "$CIRC" verify --url "$URL" --key k.pub --name nosuch
}

test_signals_stop_cleanly() {
	publish_sample
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID"
	rc=$?
	[ "$rc" = 0 ] || die "SIGTERM: exit $rc"
	start_serve repo
	kill -INT "$SERVE_PID"
	wait "$SERVE_PID"
	rc=$?
	[ "$rc" = 0 ] || die "SIGINT: exit $rc"
}

test_bad_input() {
	mkdir repo
	expect_fail 1 "nope: No such file" "$CIRC" serve --repo nope --listen 127.0.0.1:0
	# A port missing, out of range or not a number: a usage error before anything starts.
	for l in 127.0.0.1 127.0.0.1: 127.0.0.1:65536 127.0.0.1:99999999999999999999 127.0.0.1:-1 \
		127.0.0.1:http 127.0.0.1:80x "127.0.0.1: 80" :: "[::1]" ""; do
		expect_fail 2 "bad listen address .* \(HOST:PORT, PORT from 0 to 65535\)" \
			"$CIRC" serve --repo repo --listen "$l"
	done
	expect_fail 1 "cannot listen on|listen address" "$CIRC" serve --repo repo --listen 192.0.2.1:65535
	start_serve repo
	port=${URL##*:}
	expect_fail 1 "cannot listen on 127.0.0.1:$port" "$CIRC" serve --repo repo --listen "127.0.0.1:$port"
	expect_fail 2 "required" "$CIRC" serve
}

# answer_us URL: how long one GET of URL takes, in microseconds; fails unless it is a 200.
answer_us() {
	local t
	t=$(curl -sf -o /dev/null -w '%{time_total}' --max-time 10 "$1") || return 1
	awk -v t="$t" 'BEGIN { printf "%d", t * 1000000 }'
}

# Slowloris: 2000 connections that trickle a header line every 2 s, spread
# over 40 client addresses, and 1100 from one address; a normal client is
# answered within a second all the while.
test_slow_clients_do_not_starve() {
	SLOW=${CIRC_BUILD:-$(dirname "$CIRC")}/slowloris
	[ -x "$SLOW" ] || die "$SLOW is not built"
	publish_sample --quiet
	port=${URL##*:}
	block=$(cd repo && find blocks -type f | head -n 1)
	"$SLOW" 127.0.0.1 "$port" 2000 10 40 2000 60 >many.out &
	T_PIDS+=($!)
	"$SLOW" 127.0.0.1 "$port" 1100 2 1 2000 60 >one.out &
	T_PIDS+=($!)
	# Counted after a round of trickling: what the server closed (past the
	# per-client limit) may still sit in its accept queue at the first count.
	for _ in $(seq 1 400); do
		[ "$(wc -l <many.out)" -ge 2 ] && [ "$(wc -l <one.out)" -ge 2 ] && break
		sleep 0.05
	done
	[ "$(wc -l <many.out)" -ge 2 ] && [ "$(wc -l <one.out)" -ge 2 ] ||
		die "the slow clients did not start"
	many=$(tail -n 1 many.out | cut -d' ' -f2)
	one=$(tail -n 1 one.out | cut -d' ' -f2)
	[ "$many" -ge 1900 ] || die "the server held only $many of 2000 connections from 40 clients"
	[ "$one" -le 64 ] || die "one client address held $one connections, over the limit of 64"
	worst=0
	for _ in $(seq 1 10); do
		us=$(answer_us "$URL/$block") || die "a normal client got no answer"
		[ "$us" -gt "$worst" ] && worst=$us
	done
	echo "note: slowest of 10 answers with $many + $one slow connections open: $worst µs"
	[ "$worst" -lt 1000000 ] || die "a normal client waited $worst µs"
	kill -0 "$SERVE_PID" || die "the server died"
}

# A connection silent for --idle-timeout is closed.
test_idle_timeout() {
	publish_sample --quiet --idle-timeout 1s
	exec 5<>"/dev/tcp/127.0.0.1/${URL##*:}"
	# The server closes it: the read ends (at end of file) instead of timing out.
	timeout 10 cat <&5 >/dev/null || die "an idle connection was not closed"
	exec 5<&-
	expect_fail 2 "bad idle timeout" "$CIRC" serve --repo repo --idle-timeout 0s
	expect_fail 2 "bad per-client limit" "$CIRC" serve --repo repo --max-per-client x
	expect_fail 2 "bad connection limit" "$CIRC" serve --repo repo --max-connections 0
}

t_case "GET and HEAD with exact length, ETag and cache headers" test_get_head_headers
t_case "path traversal and symlink escapes refused and logged" test_traversal_refused
t_case "connections are kept alive" test_keep_alive
t_case "verify over HTTP, mirror failover, damage named" test_verify_over_http
t_case "SIGTERM and SIGINT stop the server cleanly" test_signals_stop_cleanly
t_case "bad input to serve" test_bad_input
t_case "2000 slow connections and 1100 from one address: a normal client is answered" \
	test_slow_clients_do_not_starve
t_case "a connection silent past --idle-timeout is closed" test_idle_timeout
