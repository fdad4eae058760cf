#!/usr/bin/env bash
# circ sync: a repository copied in the order that keeps the copy consistent
# for clients reading it meanwhile (blocks, manifests, pointers, catalog).
. "$(dirname "$0")/lib.sh"

need_rsync() { command -v rsync >/dev/null || skip "rsync is not installed"; }

# Clients verify (pointer, manifest, every block) the copy's newest version in
# a loop while the source gains three versions and is synced after each: none
# ever finds an object missing or a signature or block that does not verify.
test_sync_while_clients_read() {
	need_rsync
	"$CIRC" keygen k >/dev/null
	make_image img 4
	"$CIRC" publish --repo src --key k.key --name g img >/dev/null || die "publish 1"
	"$CIRC" sync src dst || die "the first sync failed"
	start_serve dst
	readers=()
	for r in 1 2; do
		(
			n=0
			while [ ! -e stop ]; do
				"$CIRC" verify --url "$URL" --key k.pub --name g >"v$r" 2>&1 ||
					echo "reader $r, round $n: $(tail -n 1 "v$r")" >>failures
				n=$((n + 1))
			done
			echo "$n" >"rounds$r"
		) &
		readers+=($!)
		T_PIDS+=($!)
	done
	for v in 2 3 4; do
		# A new version: a few blocks of new bytes, the rest as it was.
		head -c 200000 /dev/urandom | dd of=img bs=1 seek=$((v * 500000)) conv=notrunc status=none
		"$CIRC" publish --repo src --key k.key --name g img >/dev/null || die "publish $v"
		"$CIRC" sync src dst || die "sync after version $v failed"
	done
	touch stop
	wait "${readers[@]}"
	[ ! -s failures ] || die "a client saw the copy broken: $(head -n 3 failures)"
	rounds=$(($(cat rounds1) + $(cat rounds2)))
	[ "$rounds" -ge 4 ] || die "the clients verified only $rounds times"
	echo "note: $rounds verifications of the copy while it was synced three times, none failed"
	"$CIRC" verify --url "$URL" --key k.pub --name g | grep -q "^g version 4:" ||
		die "the copy does not end at version 4"
	# Nothing but the format's files: no lock, no temporaries.
	[ -z "$(find dst -name '.*')" ] || die "the copy holds $(find dst -name '.*' | head -n 3)"
}

test_sync_bad_input() {
	need_rsync
	expect_fail 2 "expected SRC and DEST" "$CIRC" sync onlyone
	expect_fail 1 "nope: not a directory" "$CIRC" sync nope dst
	mkdir notrepo
	expect_fail 1 "not a circ repository" "$CIRC" sync notrepo dst
	"$CIRC" keygen k >/dev/null
	make_image img 1
	"$CIRC" publish --repo src --key k.key --name g img >/dev/null || die "publish"
	if [ "$(id -u)" != 0 ]; then
		mkdir ro && chmod 0555 ro
		expect_fail 1 "copying the blocks failed" "$CIRC" sync src ro/dst
	fi
	# A file where the copy's blocks/ should be: rsync fails, said in one line.
	mkdir -p bad && touch bad/blocks
	expect_fail 1 "copying the blocks failed" "$CIRC" sync src bad
	[ ! -e bad/images/g/latest ] || die "a failed sync still copied the pointer"
}

t_case "sync: clients reading the copy never see it broken" test_sync_while_clients_read
t_case "sync: bad input is refused in one line" test_sync_bad_input
