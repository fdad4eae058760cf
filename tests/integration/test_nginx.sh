#!/usr/bin/env bash
# The same repo served by nginx works for every client command: nothing the
# client needs is special to circ serve.
. "$(dirname "$0")/lib.sh"

test_verify_through_nginx() {
	"$CIRC" keygen k >/dev/null
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish"
	start_nginx "root $T_DIR/repo;
		location /blocks/ { add_header Cache-Control \"public, max-age=31536000, immutable\"; }"
	out=$("$CIRC" verify --url "$URL" --key k.pub --name test) || die "verify via nginx: $out"
	grep -q "GET /images/test/latest" "$T_DIR/nginx/access.log" || die "nginx did not serve the pointer"
	# A second version, then damage: both seen through nginx too.
	head -c 65536 /dev/urandom | dd of=img bs=65536 seek=2 conv=notrunc status=none
	(cd repo && find blocks -type f | sort) >blocks.v1
	"$CIRC" publish --repo repo --key k.key --name test img >/dev/null || die "publish v2"
	"$CIRC" verify --url "$URL" --key k.pub --name test | grep -q "version 2" || die "v2 via nginx"
	# The block v2 added: one v2 reads for sure (v1's replaced block is in the repo, not in v2).
	f=repo/$(cd repo && find blocks -type f | sort | comm -13 ../blocks.v1 -)
	[ -f "$f" ] || die "publishing v2 added no block"
	printf 'XX' | dd of="$f" bs=1 seek=30 conv=notrunc status=none
	expect_fail 1 "\($(basename "$f")\) is damaged" "$CIRC" verify --url "$URL" --key k.pub --name test
}

t_case "circ verify --url against nginx serving the repo" test_verify_through_nginx
