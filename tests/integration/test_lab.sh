#!/usr/bin/env bash
# A lab: every machine a mirror for its neighbours (circ serve --cache), or an
# HTTP cache (squid) in front of the origin. Either way the origin sends each
# block once however many machines read the image, and every machine still
# reads exactly the image: blocks are checked against their IDs wherever
# they come from.
. "$(dirname "$0")/lib.sh"

# publish_and_serve MIB: image img of MIB MiB published as "test" in repo,
# served by circ serve (URL, SERVE_LOG); ORIGIN is its URL.
publish_and_serve() {
	"$CIRC" keygen k >/dev/null || die "keygen"
	make_image img "$1"
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish"
	start_serve repo
	ORIGIN=$URL
}

# start_peer STATE: circ serve --cache STATE on a free loopback port; sets
# PEER_URL and PEER_LOG (its access log).
start_peer() {
	local out="$T_DIR/peer.$RANDOM" pid i
	"$CIRC" serve --cache "$1" --listen 127.0.0.1:0 >"$out.out" 2>"$out.log" &
	pid=$!
	T_PIDS+=("$pid")
	PEER_LOG=$out.log
	for i in $(seq 1 100); do
		PEER_URL=$(sed -n 's/^listening on //p' "$out.out")
		[ -n "$PEER_URL" ] && return 0
		kill -0 "$pid" 2>/dev/null || die "circ serve --cache exited: $(cat "$out.log")"
		sleep 0.05
	done
	die "circ serve --cache did not start"
}

# read_all STATE URL [MIRROR...]: machine STATE pulls image test from URL
# (then the mirrors, in order), reads its whole disk through FUSE into
# STATE.img and unmounts. Its mountpoint, STATE.mnt, must be in T_MOUNTS
# already when this runs in the background.
read_all() {
	local st=$1 url=$2 m=() u
	shift 2
	for u in "$@"; do m+=(--mirror "$u"); done
	"$CIRC" --state "$st" pull "$url" test --key k.pub "${m[@]}" >/dev/null 2>"$st.err" ||
		{ echo "pull on $st: $(cat "$st.err")"; return 1; }
	mkdir -p "$st.mnt"
	"$CIRC" --state "$st" mount test "$st.mnt" 2>"$st.err" ||
		{ echo "mount on $st: $(cat "$st.err")"; return 1; }
	cat "$st.mnt/disk.img" >"$st.img" || { echo "read on $st failed"; return 1; }
	"$CIRC" --state "$st" umount "$st.mnt" 2>"$st.err" ||
		{ echo "umount on $st: $(cat "$st.err")"; return 1; }
}

# read_many N PREFIX URLS_FN: N machines PREFIX1..PREFIXN read the disk at
# once, each from the URL list URLS_FN I prints; fails if any read differs.
read_many() {
	local n=$1 prefix=$2 fn=$3 i pids=() bad=0
	for i in $(seq 1 "$n"); do T_MOUNTS+=("$T_DIR/$prefix$i.mnt"); done
	for i in $(seq 1 "$n"); do
		# shellcheck disable=SC2046 # the URL list splits into words on purpose
		read_all "$prefix$i" $("$fn" "$i") &
		pids+=($!)
		T_PIDS+=($!)
	done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || bad=1; done
	[ "$bad" = 0 ] || die "a machine failed to read the disk"
	for i in $(seq 1 "$n"); do
		cmp -s img "$prefix$i.img" || die "$prefix$i read bytes that differ from the image"
	done
}

# block_gets LOG: the block paths a server answered GET 200 to, one a line;
# LOG is circ serve's access log or nginx's (combined format).
block_gets() {
	awk '$2 == "GET" && $3 ~ /^\/blocks\// && $4 == 200 { print $3 }
		$6 == "\"GET" && $7 ~ /^\/blocks\// && $9 == 200 { print $7 }' "$1"
}

# gets LOG PATH: how many GETs of PATH a server answered (any status).
gets() {
	awk -v p="$2" '($2 == "GET" && $3 == p) || ($6 == "\"GET" && $7 == p) { n++ } END { print n + 0 }' "$1"
}

# each_block_once LOG: every stored block was sent exactly once.
each_block_once() {
	local dup stored sent
	dup=$(block_gets "$1" | sort | uniq -d | head -n 3)
	[ -z "$dup" ] || die "the origin sent blocks more than once: $dup"
	stored=$(find repo/blocks -type f | wc -l)
	sent=$(block_gets "$1" | wc -l)
	[ "$sent" = "$stored" ] || die "the origin sent $sent blocks, the repo holds $stored"
}

test_cache_server_http() {
	publish_and_serve 4
	read_all m1 "$ORIGIN" || die "m1 could not read the disk"
	start_peer m1
	blk=$(cd repo && find blocks -type f | sort | head -n 1)
	id=$(basename "$blk")
	curl -sf -D h -o body "$PEER_URL/$blk" || die "GET of a cached block: $(cat "$PEER_LOG")"
	[ "$(zstd -dc body | sha256sum | cut -c1-64)" = "$id" ] || die "the body is not the block, compressed"
	grep -qi '^Cache-Control: public, max-age=31536000, immutable' h || die "block Cache-Control: $(cat h)"
	etag=$(grep -i '^ETag:' h | cut -d' ' -f2- | tr -d '\r')
	[ "$etag" = "\"$id\"" ] || die "ETag $etag"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$PEER_URL/$blk")
	[ "$code" = 304 ] || die "If-None-Match gave $code"
	len=$(curl -sfI "$PEER_URL/$blk" | grep -i '^Content-Length:' | tr -dc 0-9)
	[ "$len" = "$(stat -c %s body)" ] || die "HEAD Content-Length $len"
	# Only blocks: the pointer, manifests, users/ and anything else are 404.
	for p in images/test/latest images/test/1.manifest users/alice/keys "${blk%/*}" \
		"blocks/00/$(printf '0%.0s' $(seq 1 64))" machine-id "${blk#blocks/}"; do
		code=$(curl -s -o /dev/null -w '%{http_code}' "$PEER_URL/$p")
		[ "$code" = 404 ] || die "/$p gave $code"
	done
	code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data x "$PEER_URL/$blk")
	[ "$code" = 405 ] || die "PUT gave $code"
	code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$PEER_URL/../../etc/passwd")
	case $code in 403 | 404 | 400) ;; *) die "traversal gave $code" ;; esac
	grep -Eq "GET /$blk 200 $(stat -c %s body) " "$PEER_LOG" || die "no access-log line for the GET"
	expect_fail 2 "exclusive" "$CIRC" serve --repo repo --cache m1
	expect_fail 2 "needs --repo" "$CIRC" serve --cache m1 --users /dev/null
	expect_fail 1 "nostate/cache: No such file" "$CIRC" serve --cache nostate --listen 127.0.0.1:0
}

test_peers_as_mirrors() {
	need_fuse
	publish_and_serve 8
	# Peer 1 reads everything from the origin; peer 2 lists peer 1 first, so
	# its pointer and manifest (404 on a peer) come from the origin, its blocks from peer 1.
	read_all p1 "$ORIGIN" || die "peer 1 could not read the disk"
	cmp -s img p1.img || die "peer 1 read bytes that differ from the image"
	start_peer p1
	P1=$PEER_URL P1_LOG=$PEER_LOG
	read_all p2 "$P1" "$ORIGIN" || die "peer 2 could not read the disk"
	cmp -s img p2.img || die "peer 2 read bytes that differ from the image"
	start_peer p2
	P2=$PEER_URL P2_LOG=$PEER_LOG
	# Ten machines at once, half of them asking peer 2 first.
	urls() { if [ $(($1 % 2)) = 1 ]; then echo "$P1 $P2 $ORIGIN"; else echo "$P2 $P1 $ORIGIN"; fi; }
	read_many 10 c urls
	each_block_once "$SERVE_LOG"
	n1=$(block_gets "$P1_LOG" | wc -l)
	n2=$(block_gets "$P2_LOG" | wc -l)
	if [ "$n1" = 0 ] || [ "$n2" = 0 ]; then die "peer 1 sent $n1 blocks, peer 2 $n2: both should serve"; fi
	[ "$(gets "$SERVE_LOG" /images/test/latest)" -ge 12 ] || die "the pointer did not come from the origin"
	echo "note: origin sent $(block_gets "$SERVE_LOG" | wc -l) blocks once each; peers sent $n1 and $n2 to 11 machines"
}

test_damaged_peer() {
	need_fuse
	publish_and_serve 4
	read_all p1 "$ORIGIN" || die "peer 1 could not read the disk"
	# One block damaged in place, one torn (its end never written): the peer
	# must not send either.
	mapfile -t entries < <("$CACHETOOL" list p1/cache)
	[ "${#entries[@]}" -ge 2 ] || die "peer 1 cached ${#entries[@]} blocks"
	read -r bad pack off len _ <<<"${entries[0]}"
	printf 'XXXX' | dd of="$pack" bs=1 seek=$((off + 100)) conv=notrunc status=none
	read -r torn pack off len _ <<<"${entries[1]}"
	dd if=/dev/zero of="$pack" bs=1 seek=$((off + len - 512)) count=512 conv=notrunc status=none
	start_peer p1
	# Next in line, a server that sends wrong bytes for the damaged entry's
	# block: another block's valid frame under its name.
	cp -r repo evil
	id=$bad
	lie=blocks/${id:0:2}/$id
	other=$(cd evil && find blocks -type f ! -name "$id" | sort | head -n 1)
	cp "evil/$other" "evil/$lie"
	"$CIRC" serve --repo evil --listen 127.0.0.1:0 >evil.out 2>evil.log &
	T_PIDS+=($!)
	for _ in $(seq 1 100); do
		EVIL=$(sed -n 's/^listening on //p' evil.out)
		[ -n "$EVIL" ] && break
		sleep 0.05
	done
	[ -n "$EVIL" ] || die "the lying server did not start"
	read_all c1 "$PEER_URL" "$EVIL" "$ORIGIN" || die "the client could not read the disk"
	cmp -s img c1.img || die "the client read damaged bytes"
	for id in "$bad" "$torn"; do
		grep -Eq "GET /blocks/${id:0:2}/$id 404 .*refused: damaged cache entry" "$PEER_LOG" ||
			die "the peer did not refuse damaged entry $id: $(grep "$id" "$PEER_LOG")"
	done
	# The torn entry's block came from the next server, the damaged one's,
	# refused there, from the origin.
	id=$torn
	grep -q "GET /blocks/${id:0:2}/$id 200" evil.log || die "block $id did not come from the next server"
	id=$bad
	[ "$(block_gets "$SERVE_LOG" | grep -c "$id")" = 2 ] ||
		die "block $id came from the origin $(block_gets "$SERVE_LOG" | grep -c "$id") times, not twice"
	grep -q "GET /$lie 200" evil.log || die "the lying server was not asked for $lie"
}

# start_squid ORIGIN_URL: squid as a reverse proxy (accelerator) in front of
# ORIGIN_URL on a free loopback port, caching in memory only; its logs in
# $T_DIR/squid; sets SQUID_URL.
start_squid() {
	local dir="$T_DIR/squid" port i code
	command -v squid >/dev/null || skip "squid is not installed (scripts/deps.sh build installs it)"
	mkdir -p "$dir"
	port=$(free_port) || die "no free port"
	cat >"$dir/squid.conf" <<CONF
http_port 127.0.0.1:$port accel defaultsite=circ-origin no-vhost
cache_peer 127.0.0.1 parent ${1##*:} 0 no-query no-digest originserver name=origin
cache_peer_access origin allow all
http_access allow all
cache_mem 256 MB
maximum_object_size_in_memory 8 MB
collapsed_forwarding on
pid_filename $dir/squid.pid
access_log stdio:$dir/access.log
cache_log $dir/cache.log
cache_store_log none
coredump_dir $dir
visible_hostname circ-test
shutdown_lifetime 0 seconds
CONF
	# As root, squid drops to its cache_effective_user (Debian's "proxy"): it
	# must reach its directory.
	if [ "$(id -u)" = 0 ]; then
		chmod o+x "$T_ROOT" "$T_DIR"
		chown proxy: "$dir" 2>/dev/null || skip "squid's user 'proxy' does not exist"
	fi
	# Its own service name: its shared-memory segments' names, apart from any other squid.
	squid -N -n "circtest$$x$RANDOM" -f "$dir/squid.conf" >"$dir/stderr" 2>&1 &
	SQUID_PID=$!
	T_PIDS+=("$SQUID_PID")
	SQUID_URL="http://127.0.0.1:$port"
	for i in $(seq 1 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "$SQUID_URL/images/test/latest")
		[ "$code" = 200 ] && return 0
		kill -0 "$SQUID_PID" 2>/dev/null ||
			die "squid exited: $(grep -h -E 'FATAL|ERROR' "$dir/stderr" "$dir/cache.log" 2>/dev/null | head -n 1)"
		sleep 0.1
	done
	die "squid did not answer: $(tail -n 1 "$dir/cache.log" 2>/dev/null)"
}

# squid_case LOG: ten machines read through squid (SQUID_URL) in front of an
# origin whose access log is LOG; then a new version reaches them.
squid_case() {
	local log=$1 p0 out deadline
	urls() { echo "$SQUID_URL"; }
	p0=$(gets "$log" /images/test/latest)
	read_many 10 c urls
	each_block_once "$log"
	[ "$(gets "$log" /images/test/1.manifest)" = 1 ] || die "the origin sent the manifest $(gets "$log" /images/test/1.manifest) times"
	# Every pull asked for the pointer past the cache (no-cache): the origin answered each.
	[ $(($(gets "$log" /images/test/latest) - p0)) -ge 10 ] ||
		die "the pointer was answered from squid's cache: the origin saw $(($(gets "$log" /images/test/latest) - p0)) of 10"
	# A new version: three blocks change. Clients see it within the pointer's max-age (30 s).
	for b in 3 17 40; do
		head -c 65536 /dev/urandom | dd of=img bs=65536 seek=$b conv=notrunc status=none
	done
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish v2"
	deadline=$((SECONDS + 35))
	until out=$("$CIRC" --state c1 update test 2>&1) && echo "$out" | grep -q -- '-> 2'; do
		[ "$SECONDS" -lt "$deadline" ] || die "no client saw version 2 within 35 s: $out"
		sleep 1
	done
	echo "note: version 2 seen $((SECONDS - deadline + 35)) s after it was published"
	"$CIRC" --state c2 update test >/dev/null || die "update c2"
	for i in 1 2; do
		T_MOUNTS+=("$T_DIR/c$i.mnt")
		"$CIRC" --state "c$i" mount test "c$i.mnt" || die "mount c$i"
		cmp -s img "c$i.mnt/disk.img" || die "c$i does not read version 2"
		"$CIRC" --state "c$i" umount "c$i.mnt" || die "umount c$i"
	done
	each_block_once "$log"
}

test_squid_before_circ_serve() {
	need_fuse
	publish_and_serve 8
	start_squid "$ORIGIN"
	squid_case "$SERVE_LOG"
}

test_squid_before_nginx() {
	need_fuse
	"$CIRC" keygen k >/dev/null || die "keygen"
	make_image img 8
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish"
	start_nginx "root $T_DIR/repo;
		location /blocks/ { add_header Cache-Control \"public, max-age=31536000, immutable\"; }
		location ~ \\.manifest\$ { add_header Cache-Control \"public, max-age=31536000, immutable\"; }
		location ~ /latest\$ { add_header Cache-Control \"public, max-age=30\"; }"
	start_squid "$URL"
	squid_case "$T_DIR/nginx/access.log"
}

t_case "serve --cache: verified blocks only, compressed, cacheable" test_cache_server_http
t_case "peers as mirrors: the origin sends each block once to 12 machines" test_peers_as_mirrors
t_case "a damaged peer or a lying one: clients still read the image" test_damaged_peer
t_case "squid before circ serve: one request per block, pointer revalidated" test_squid_before_circ_serve
t_case "squid before nginx: one request per block, pointer revalidated" test_squid_before_nginx
