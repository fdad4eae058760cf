#!/usr/bin/env bash
# circ serve --users: authenticated uploads of users' encrypted objects, the
# rules of each kind (blocks once, keys and heads by compare-and-swap, layers
# under the lease), the quota, and what is never served or logged.
. "$(dirname "$0")/lib.sh"

# Throwaway passwords: they reach htpasswd on stdin, never its command line.
PW_ALICE="alice-throwaway-$RANDOM-$RANDOM"
PW_BOB="bob-throwaway-$RANDOM-$RANDOM"
A="alice:$PW_ALICE"
B="bob:$PW_BOB"
MAC=0123456789abcdef0123456789abcdef
TOKEN1=11111111111111111111111111111111
TOKEN2=22222222222222222222222222222222

make_users() {
	command -v htpasswd >/dev/null || skip "htpasswd (apache2-utils) is not installed"
	printf '%s\n' "$PW_ALICE" >pass
	htpasswd -B -i -c users alice <pass 2>/dev/null || die "htpasswd alice"
	printf '%s\n' "$PW_BOB" >pass
	htpasswd -B -i users bob <pass 2>/dev/null || die "htpasswd bob"
	rm -f pass
}

# serve_users [ARGS...]: an empty repo served with the users file; sets URL.
serve_users() {
	make_users
	mkdir -p repo
	start_serve repo --users users "$@"
}

# code ARGS...: the HTTP status curl gets.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# want CODE WHAT ARGS...: curl ARGS must answer CODE.
want() {
	local expect=$1 what=$2 got
	shift 2
	got=$(code "$@")
	[ "$got" = "$expect" ] || die "$what: got $got, expected $expect"
}

# header FILE NAME: the value of response header NAME in headers file FILE.
header() { grep -i "^$2:" "$1" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }

# logged REGEX: the access log has a line matching REGEX.
logged() { grep -Eq -- "$1" "$SERVE_LOG" || die "not in the log: /$1/: $(tail -n 5 "$SERVE_LOG")"; }

# block_path USER HEX: a user block's URL path.
block_path() { echo "users/$1/blocks/${2:0:2}/$2"; }

# make_block OUT SIZE: a sealed block as the server sees one: format byte 1, then bytes.
make_block() {
	printf '\001' >"$1"
	head -c "$(($2 - 1))" /dev/urandom >>"$1"
}

# make_layer USER DISK N OUT [BODY]: a layer whose plain header names USER, DISK and N.
make_layer() {
	python3 - "$@" <<'PY'
import os, struct, sys
user, disk, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
body = int(sys.argv[5]) if len(sys.argv) > 5 else 600
hdr = b"CIRCLAYR" + struct.pack("<IIQII", 1, 192, n, len(user), len(disk))
hdr += user.encode().ljust(64, b"\0") + disk.encode().ljust(64, b"\0") + os.urandom(32)
assert len(hdr) == 192
open(out, "wb").write(hdr + os.urandom(body))
PY
}

# make_head OUT VERSION LAYER [HOST TOKEN]: a head naming LAYER's SHA-256, held if HOST given.
make_head() {
	local sha
	sha=$(sha256sum "$3" | cut -d' ' -f1)
	if [ $# -ge 5 ]; then
		printf 'circ-head 1\nversion %s\nlayer %s\nholder %s %s\nsince 1700000000\ntoken %s\n' \
			"$2" "$sha" "$MAC" "$4" "$5" >"$1"
	else
		printf 'circ-head 1\nversion %s\nlayer %s\nholder -\nsince 0\ntoken -\n' "$2" "$sha" >"$1"
	fi
}

# etag_of PATH: the ETag alice gets for PATH.
etag_of() {
	curl -s -u "$A" -I -o /dev/null -D etag.h "$URL/$1" || die "HEAD $1"
	header etag.h ETag
}

# put_head EXPECT WHAT FILE ARGS...: PUT of alice's disk d's head.
put_head() {
	local expect=$1 what=$2 file=$3
	shift 3
	want "$expect" "$what" -u "$A" -X PUT --data-binary "@$file" "$@" "$URL/users/alice/d/head"
}

test_auth() {
	serve_users
	h=$(printf 'ab%.0s' $(seq 32))
	make_block blk 300
	p=$(block_path alice "$h")
	curl -s -o /dev/null -D h401 -X PUT --data-binary @blk "$URL/$p"
	grep -q '^HTTP/1.1 401' h401 || die "unauthenticated PUT: $(head -n 1 h401)"
	[ "$(header h401 WWW-Authenticate)" = 'Basic realm="circ"' ] ||
		die "WWW-Authenticate: $(header h401 WWW-Authenticate)"
	want 401 "wrong password" -u "alice:not-$PW_ALICE" -X PUT --data-binary @blk "$URL/$p"
	want 401 "unknown user" -u "carol:$PW_ALICE" -X PUT --data-binary @blk "$URL/$p"
	want 403 "bob writing alice's tree" -u "$B" -X PUT --data-binary @blk "$URL/$p"
	[ ! -e "repo/$p" ] || die "a refused PUT was stored"
	want 201 "alice's PUT" -u "$A" -X PUT --data-binary @blk "$URL/$p"
	want 401 "unauthenticated GET" "$URL/$p"
	want 403 "bob reading alice's tree" -u "$B" "$URL/$p"
	curl -sf -u "$A" -D h -o got "$URL/$p" || die "alice's GET"
	cmp -s got blk || die "GET differs from the PUT"
	[ "$(header h Cache-Control)" = "private, max-age=31536000, immutable" ] ||
		die "user block Cache-Control: $(header h Cache-Control)"
	want 404 "alice's missing block" -u "$A" "$URL/$(block_path alice "$(printf 'cd%.0s' $(seq 32))")"
	# The public tree needs no credentials, and ignores any.
	want 404 "public path without credentials" "$URL/images/x/latest"
	logged "PUT /$p 401 .*refused: no credentials"
	logged "PUT /$p 401 .*refused: wrong password for alice"
	logged "PUT /$p 401 .*refused: unknown user$"
	logged "PUT /$p 403 .*refused: bob may not write alice's tree"
	logged "GET /$p 403 .*refused: bob may not read alice's tree"
	! grep -qF -- "$PW_ALICE" "$SERVE_LOG" || die "alice's password is in the log"
	! grep -qF -- "$PW_BOB" "$SERVE_LOG" || die "bob's password is in the log"
	! grep -qF -- "$(printf '%s' "$A" | base64)" "$SERVE_LOG" || die "credentials are in the log"
}

test_read_only_without_users() {
	make_users
	mkdir -p repo/users/alice
	echo '{"secret": 1}' >repo/users/alice/keys
	start_serve repo
	curl -s -o /dev/null -D h -u "$A" -X PUT --data-binary @users "$URL/users/alice/keys"
	grep -q '^HTTP/1.1 405' h || die "PUT without --users: $(head -n 1 h)"
	[ "$(header h Allow)" = "GET, HEAD" ] || die "Allow: $(header h Allow)"
	want 405 "DELETE without --users" -u "$A" -X DELETE "$URL/users/alice/keys"
	want 404 "users/ without --users" -u "$A" "$URL/users/alice/keys"
	[ "$(cat repo/users/alice/keys)" = '{"secret": 1}' ] || die "the file changed"
}

test_paths_and_methods() {
	serve_users
	"$CIRC" keygen repo/publisher >/dev/null || die "keygen"
	mkdir -p repo/users/alice
	echo leftover >repo/users/alice/.tmp-0123
	want 404 "a private key in the repo dir" "$URL/publisher.key"
	want 404 "a private key, authenticated" -u "$A" "$URL/publisher.key"
	want 404 "a temporary in a user's tree" -u "$A" "$URL/users/alice/.tmp-0123"
	h=$(printf 'ef%.0s' $(seq 32))
	make_block blk 100
	want 405 "PUT of a public block" -u "$A" -X PUT --data-binary @blk "$URL/blocks/${h:0:2}/$h"
	want 405 "PUT of a pointer" -u "$A" -X PUT --data-binary @blk "$URL/images/x/latest"
	want 404 "PUT of a block in the wrong directory" -u "$A" -X PUT --data-binary @blk \
		"$URL/users/alice/blocks/zz/$h"
	want 404 "PUT of a non-hex block" -u "$A" -X PUT --data-binary @blk \
		"$URL/users/alice/blocks/zz/$(printf 'zz%.0s' $(seq 32))"
	want 404 "PUT of an unknown kind" -u "$A" -X PUT --data-binary @blk "$URL/users/alice/notes.txt"
	want 404 "PUT of a layer 0" -u "$A" -X PUT --data-binary @blk "$URL/users/alice/d/0.layer"
	# '..' is refused as traversal (403) before it could name anything.
	c=$(code --path-as-is -u "$A" -X PUT --data-binary @blk "$URL/users/../x")
	case $c in 400 | 403 | 404) ;; *) die "PUT users/../x gave $c" ;; esac
	c=$(code --path-as-is -u "$A" -X PUT --data-binary @blk "$URL/users/alice/../bob/keys")
	case $c in 400 | 403 | 404) ;; *) die "PUT users/alice/../bob/keys gave $c" ;; esac
	[ ! -e repo/x ] && [ ! -e repo/users/bob ] || die "a traversal was stored"
	logged "refused: path traversal"
	curl -s -o /dev/null -D h -u "$A" -X DELETE "$URL/users/alice/keys"
	grep -q '^HTTP/1.1 405' h || die "DELETE: $(head -n 1 h)"
	[ "$(header h Allow)" = "GET, HEAD, PUT" ] || die "Allow under users/: $(header h Allow)"
	want 405 "POST under users/" -u "$A" -X POST --data-binary @blk "$URL/$(block_path alice "$h")"
	[ -z "$(find repo/users/alice -name "$h")" ] || die "a refused method stored a block"
}

test_block_stored_once() {
	serve_users
	h=$(printf '0a%.0s' $(seq 32))
	p=$(block_path alice "$h")
	make_block blk 5000
	want 201 "first PUT" -u "$A" -X PUT --data-binary @blk "$URL/$p"
	ino=$(stat -c %i "repo/$p")
	mtime=$(stat -c %Y.%y "repo/$p")
	want 200 "the same PUT again" -u "$A" -X PUT --data-binary @blk "$URL/$p"
	logged "PUT /$p 200 .*exists"
	make_block other 5000
	want 409 "other bytes under the same name" -u "$A" -X PUT --data-binary @other "$URL/$p"
	[ "$(stat -c %i "repo/$p")" = "$ino" ] && [ "$(stat -c %Y.%y "repo/$p")" = "$mtime" ] ||
		die "the block was rewritten"
	cmp -s blk "repo/$p" || die "the block's content changed"
	logged "PUT /$p 409 .*never rewritten"
	# Its ETag hashes its content, so a client can tell a damaged copy from its own.
	curl -sf -I -u "$A" "$URL/$p" -D hdr -o /dev/null || die "HEAD of the block"
	[ "$(header hdr ETag)" = "\"$(sha256sum <blk | head -c 32)\"" ] ||
		die "the block's ETag is $(header hdr ETag), not its content's hash"
	[ "$(stat -c %a "repo/$p")" = 644 ] || die "mode $(stat -c %a "repo/$p")"
	[ "$(stat -c %a repo/users/alice)" = 755 ] || die "directory mode $(stat -c %a repo/users/alice)"
	printf '\002' >bad
	head -c 100 /dev/urandom >>bad
	want 400 "a block without the format byte" -u "$A" -X PUT --data-binary @bad \
		"$URL/$(block_path alice "$(printf '0b%.0s' $(seq 32))")"
	printf '\001short' >short
	want 400 "a block shorter than its tag" -u "$A" -X PUT --data-binary @short \
		"$URL/$(block_path alice "$(printf '0b%.0s' $(seq 32))")"
	[ -z "$(find repo -name '.tmp-*')" ] || die "temporaries left behind"
}

test_quota() {
	make_users
	# Already there at start: counted by the walk of alice's tree.
	mkdir -p repo/users/alice/blocks/aa
	head -c 5000 /dev/urandom >"repo/users/alice/blocks/aa/$(printf 'aa%.0s' $(seq 32))"
	start_serve repo --users users --quota 10K
	make_block b1 4000
	make_block b2 4000
	p1=$(block_path alice "$(printf '01%.0s' $(seq 32))")
	p2=$(block_path alice "$(printf '02%.0s' $(seq 32))")
	want 201 "under the quota" -u "$A" -X PUT --data-binary @b1 "$URL/$p1"
	want 507 "over the quota" -u "$A" -X PUT --data-binary @b2 "$URL/$p2"
	[ ! -e "repo/$p2" ] || die "a block over the quota was stored"
	[ -z "$(find repo -name '.tmp-*')" ] || die "temporaries left behind"
	logged "PUT /$p2 507 .*refused: quota of alice exceeded"
	want 200 "an existing block over the quota" -u "$A" -X PUT --data-binary @b1 "$URL/$p1"
	want 201 "bob has his own quota" -u "$B" -X PUT --data-binary @b2 \
		"$URL/$(block_path bob "$(printf '02%.0s' $(seq 32))")"
	expect_fail 2 "bad quota" "$CIRC" serve --repo repo --users users --quota lots
	expect_fail 2 "needs --users" "$CIRC" serve --repo repo --quota 1G
}

test_keys_cas() {
	serve_users
	# UKEY_FILE_LEN (vdisk/ukey.h): magic, 4 x u32, salt, sealed master key, tag.
	len=$((8 + 16 + 32 + 32 + 16))
	{ printf 'CIRCKEYS'; head -c $((len - 8)) /dev/urandom; } >keys1
	{ printf 'CIRCKEYS'; head -c $((len - 8)) /dev/urandom; } >keys2
	want 428 "keys without a precondition" -u "$A" -X PUT --data-binary @keys1 "$URL/users/alice/keys"
	want 412 "keys If-Match before any" -u "$A" -X PUT -H 'If-Match: "00"' --data-binary @keys1 \
		"$URL/users/alice/keys"
	head -c $((len - 1)) keys1 >short
	want 400 "a short keys file" -u "$A" -X PUT -H 'If-None-Match: *' --data-binary @short \
		"$URL/users/alice/keys"
	curl -s -o /dev/null -D h -u "$A" -X PUT -H 'If-None-Match: *' --data-binary @keys1 \
		"$URL/users/alice/keys"
	grep -q '^HTTP/1.1 201' h || die "keys create: $(head -n 1 h)"
	e1=$(header h ETag)
	[ "$e1" = "$(etag_of users/alice/keys)" ] || die "the PUT's ETag $e1 is not the GET's"
	[ "$(header etag.h Cache-Control)" = "private, no-cache" ] || die "keys Cache-Control"
	want 412 "a second create" -u "$A" -X PUT -H 'If-None-Match: *' --data-binary @keys2 \
		"$URL/users/alice/keys"
	want 412 "a stale If-Match" -u "$A" -X PUT -H 'If-Match: "0123"' --data-binary @keys2 \
		"$URL/users/alice/keys"
	want 200 "a replace" -u "$A" -X PUT -H "If-Match: $e1" --data-binary @keys2 "$URL/users/alice/keys"
	cmp -s keys2 repo/users/alice/keys || die "keys not replaced"
	want 412 "a replace on the old ETag" -u "$A" -X PUT -H "If-Match: $e1" --data-binary @keys1 \
		"$URL/users/alice/keys"
	want 304 "If-None-Match on GET" -u "$A" -H "If-None-Match: $(etag_of users/alice/keys)" \
		"$URL/users/alice/keys"
}

test_head_and_lease() {
	serve_users
	make_layer alice d 1 l1
	make_layer alice d 2 l2
	make_layer alice d 3 l3
	make_head h1 1 l1
	want 409 "a head before its layer" -u "$A" -X PUT -H 'If-None-Match: *' --data-binary @h1 \
		"$URL/users/alice/d/head"
	want 409 "layer 2 before any head" -u "$A" -X PUT --data-binary @l2 "$URL/users/alice/d/2.layer"
	make_layer bob d 1 lbob
	want 400 "a layer naming another user" -u "$A" -X PUT --data-binary @lbob "$URL/users/alice/d/1.layer"
	make_layer alice e 1 le
	want 400 "a layer naming another disk" -u "$A" -X PUT --data-binary @le "$URL/users/alice/d/1.layer"
	want 400 "a layer naming another version" -u "$A" -X PUT --data-binary @l2 "$URL/users/alice/d/1.layer"
	want 201 "layer 1" -u "$A" -X PUT --data-binary @l1 "$URL/users/alice/d/1.layer"
	make_layer alice d 1 l1b
	want 200 "layer 1 again before a head" -u "$A" -X PUT --data-binary @l1b "$URL/users/alice/d/1.layer"
	put_head 409 "a head naming another layer" h1 -H 'If-None-Match: *'
	logged "PUT /users/alice/d/head 409 .*refused: 1.layer does not match the head"
	want 200 "layer 1 replaced back" -u "$A" -X PUT --data-binary @l1 "$URL/users/alice/d/1.layer"
	put_head 428 "a head without a precondition" h1
	make_head h2bad 2 l2
	put_head 409 "a first head at version 2" h2bad -H 'If-None-Match: *'
	put_head 201 "the first head" h1 -H 'If-None-Match: *'
	put_head 412 "a second first head" h1 -H 'If-None-Match: *'
	e1=$(etag_of users/alice/d/head)
	[ "$(header etag.h Cache-Control)" = "private, no-cache" ] || die "head Cache-Control"
	want 409 "a committed layer replaced" -u "$A" -X PUT --data-binary @l1b "$URL/users/alice/d/1.layer"
	# Take the lease: same version and layer, a new holder; no token needed.
	make_head h1held 1 l1 host-one "$TOKEN1"
	put_head 428 "a head update without If-Match" h1held
	put_head 200 "lease taken" h1held -H "If-Match: $e1"
	logged "PUT /users/alice/d/head 200 .*lease taken by host-one"
	put_head 412 "a stale ETag" h1 -H "If-Match: $e1"
	e2=$(etag_of users/alice/d/head)
	[ "$e2" != "$e1" ] || die "the ETag did not change"
	make_head h3 3 l3
	put_head 409 "version + 2" h3 -H "If-Match: $e2"
	# The next layer: only under the lease.
	want 409 "a layer without the lease" -u "$A" -X PUT --data-binary @l2 "$URL/users/alice/d/2.layer"
	logged "PUT /users/alice/d/2.layer 409 .*refused: lease held by host-one"
	want 409 "a layer with the wrong lease" -u "$A" -X PUT -H "Circ-Lease: $TOKEN2" --data-binary @l2 \
		"$URL/users/alice/d/2.layer"
	want 409 "layer 3 before 2 is committed" -u "$A" -X PUT -H "Circ-Lease: $TOKEN1" --data-binary @l3 \
		"$URL/users/alice/d/3.layer"
	want 201 "a layer under the lease" -u "$A" -X PUT -H "Circ-Lease: $TOKEN1" --data-binary @l2 \
		"$URL/users/alice/d/2.layer"
	make_head h2 2 l2 host-one "$TOKEN1"
	put_head 409 "a commit without the lease" h2 -H "If-Match: $e2"
	put_head 409 "a commit with the wrong lease" h2 -H "If-Match: $e2" -H "Circ-Lease: $TOKEN2"
	make_head h2wrong 2 l3 host-one "$TOKEN1"
	put_head 409 "a commit naming another layer" h2wrong -H "If-Match: $e2" -H "Circ-Lease: $TOKEN1"
	put_head 200 "a commit under the lease" h2 -H "If-Match: $e2" -H "Circ-Lease: $TOKEN1"
	logged "PUT /users/alice/d/head 200 .*committed version 2"
	cmp -s h2 repo/users/alice/d/head || die "the head was not stored"
	e3=$(etag_of users/alice/d/head)
	# Steal and release: lease changes at the same version, allowed without the token.
	make_head h2stolen 2 l2 host-two "$TOKEN2"
	put_head 200 "lease stolen" h2stolen -H "If-Match: $e3"
	logged "PUT /users/alice/d/head 200 .*lease stolen from host-one by host-two"
	make_head h2free 2 l2
	put_head 200 "lease released" h2free -H "If-Match: $(etag_of users/alice/d/head)"
	logged "PUT /users/alice/d/head 200 .*lease released"
	make_head h2x 2 l1
	put_head 409 "the same version naming another layer" h2x -H "If-Match: $(etag_of users/alice/d/head)"
	printf 'circ-head 1\nversion 2\n' >junk
	put_head 400 "a malformed head" junk -H "If-Match: $(etag_of users/alice/d/head)"
	want 403 "bob committing alice's head" -u "$B" -X PUT -H 'If-None-Match: *' --data-binary @h1 \
		"$URL/users/alice/d/head"
	[ -z "$(find repo -name '.tmp-*')" ] || die "temporaries left behind"
}

test_concurrent_cas() {
	serve_users
	make_layer alice d 1 l1
	make_head h1 1 l1
	want 201 "layer 1" -u "$A" -X PUT --data-binary @l1 "$URL/users/alice/d/1.layer"
	put_head 201 "the first head" h1 -H 'If-None-Match: *'
	e1=$(etag_of users/alice/d/head)
	# Eight machines take the lease from the same head at once: one wins.
	pids=()
	for i in 1 2 3 4 5 6 7 8; do
		make_head "take$i" 1 l1 "host-$i" "$(printf '%032d' "$i")"
		code -u "$A" -X PUT -H "If-Match: $e1" --data-binary "@take$i" \
			"$URL/users/alice/d/head" >"code$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	[ "$(cat code? | grep -o 200 | wc -l)" = 1 ] || die "not one winner: $(cat code?)"
	[ "$(cat code? | grep -o 412 | wc -l)" = 7 ] || die "the losers did not get 412: $(cat code?)"
	winner=$(grep -l 200 code? | sed 's/code//')
	cmp -s "take$winner" repo/users/alice/d/head || die "the stored head is not the winner's"
}

test_oversized() {
	serve_users
	head -c 5000 /dev/zero >big
	curl -s -o /dev/null -D h -u "$A" -X PUT -H 'If-None-Match: *' --data-binary @big \
		"$URL/users/alice/keys"
	grep -q '^HTTP/1.1 413' h || die "oversized keys: $(head -n 1 h)"
	# Without Content-Length the bound is found while reading.
	want 413 "oversized chunked keys" -u "$A" -X PUT -H 'If-None-Match: *' \
		-H 'Transfer-Encoding: chunked' --data-binary @big "$URL/users/alice/keys"
	head -c 5000 /dev/zero >big
	want 413 "an oversized head" -u "$A" -X PUT -H 'If-None-Match: *' --data-binary @big \
		"$URL/users/alice/d/head"
	[ ! -e repo/users/alice/keys ] && [ ! -e repo/users/alice/d/head ] || die "an oversized body was stored"
	logged "PUT /users/alice/keys 413 .*refused: body over 4096 bytes"
}

test_users_file_errors() {
	make_users
	mkdir repo
	printf 'carol:$apr1$abcdefgh$0123456789abcdefghijkl\n' >>users
	expect_fail 1 "users: line 3: not a bcrypt hash" "$CIRC" serve --repo repo --users users \
		--listen 127.0.0.1:0
	err=$("$CIRC" serve --repo repo --users users --listen 127.0.0.1:0 2>&1)
	echo "$err" | grep -qF 'apr1' && die "the error shows the hash: $err"
	printf 'bad/name:%s\n' "$(head -n 1 users | cut -d: -f2)" >users2
	expect_fail 1 "line 1: bad user name" "$CIRC" serve --repo repo --users users2 --listen 127.0.0.1:0
	head -n 1 users >users3
	head -n 1 users >>users3
	expect_fail 1 "line 2: user alice listed twice" "$CIRC" serve --repo repo --users users3 \
		--listen 127.0.0.1:0
	expect_fail 1 "nosuch" "$CIRC" serve --repo repo --users nosuch --listen 127.0.0.1:0
	"$CIRC" serve --help | grep -q -- "--users FILE" || die "--help lacks --users"
	"$CIRC" serve --help | grep -q -- "--quota SIZE" || die "--help lacks --quota"
}

t_case "credentials: 401 without or wrong, 403 for another user, never logged" test_auth
t_case "without --users: read-only, users/ is 404" test_read_only_without_users
t_case "only format paths; public read-only; '..' and bad names refused" test_paths_and_methods
t_case "a block is stored once, never rewritten: other bytes under its name are refused" \
	test_block_stored_once
t_case "the quota: 507, nothing written, per user" test_quota
t_case "keys: create with If-None-Match, replace with If-Match" test_keys_cas
t_case "head CAS, layers and the lease" test_head_and_lease
# SIGHUP reads the users file again: a user added can write, one removed
# cannot, a changed password takes over, a broken file changes nothing, and
# a connection open across the signal goes on serving.
test_users_reload() {
	serve_users
	pid=$SERVE_PID
	pw_carol="carol-throwaway-$RANDOM"
	h=$(printf 'cd%.0s' $(seq 32))
	make_block blk 300
	want 401 "carol before she is listed" -u "carol:$pw_carol" -X PUT --data-binary @blk \
		"$URL/$(block_path carol "$h")"
	# A keep-alive connection, open across every signal below.
	hostport=${URL#http://}
	exec {conn}<>"/dev/tcp/${hostport%:*}/${hostport#*:}" || die "no connection"
	get_on_conn() {
		printf 'HEAD /users/ HTTP/1.1\r\nHost: x\r\n\r\n' >&"$conn"
		read -r -t 5 status <&"$conn" || die "the open connection answered nothing"
		while read -r -t 5 line <&"$conn" && [ "$line" != $'\r' ]; do :; done
		echo "$status"
	}
	first=$(get_on_conn)
	printf '%s\n' "$pw_carol" >pass
	htpasswd -B -i users carol <pass 2>/dev/null || die "htpasswd carol"
	htpasswd -D users bob 2>/dev/null || die "htpasswd -D bob"
	# wait_log N PATTERN: until the log has N lines matching PATTERN (10 s at most).
	wait_log() {
		for _ in $(seq 1 200); do
			[ "$(grep -c -- "$2" "$SERVE_LOG")" -ge "$1" ] && return 0
			kill -0 "$pid" 2>/dev/null || die "circ serve died: $(tail -n 3 "$SERVE_LOG")"
			sleep 0.05
		done
		die "no '$2' in the log: $(tail -n 3 "$SERVE_LOG")"
	}
	kill -HUP "$pid"
	wait_log 1 "SIGHUP: read users again: 2 users"
	want 201 "carol once listed" -u "carol:$pw_carol" -X PUT --data-binary @blk \
		"$URL/$(block_path carol "$h")"
	want 401 "bob once removed" -u "$B" -X PUT --data-binary @blk "$URL/$(block_path bob "$h")"
	want 201 "alice, still listed" -u "$A" -X PUT --data-binary @blk "$URL/$(block_path alice "$h")"
	# A new password for alice: the old one stops working at once.
	printf 'new-%s\n' "$PW_ALICE" >pass
	htpasswd -B -i users alice <pass 2>/dev/null || die "htpasswd alice"
	kill -HUP "$pid"
	wait_log 2 "SIGHUP: read users again"
	want 401 "alice's old password" -u "$A" "$URL/$(block_path alice "$h")"
	want 200 "alice's new password" -u "alice:new-$PW_ALICE" "$URL/$(block_path alice "$h")"
	# A file that does not load: said, and nothing changes.
	echo "not a users line" >users
	kill -HUP "$pid"
	wait_log 1 "the users stay as they were"
	want 200 "alice after a broken file" -u "alice:new-$PW_ALICE" "$URL/$(block_path alice "$h")"
	second=$(get_on_conn)
	[ "$first" = "$second" ] || die "the open connection answered '$first', then '$second'"
	exec {conn}>&-
	kill -0 "$pid" 2>/dev/null || die "circ serve is gone"
}

t_case "concurrent compare-and-swap of a head: one winner" test_concurrent_cas
t_case "oversized bodies: 413, nothing stored" test_oversized
t_case "users file: bcrypt only, errors name the line" test_users_file_errors
t_case "users file: SIGHUP reads it again, connections stay" test_users_reload
