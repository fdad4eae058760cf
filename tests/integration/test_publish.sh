#!/usr/bin/env bash
# circ keygen, publish and verify on a directory repo: the publisher's contract.
. "$(dirname "$0")/lib.sh"

blocks_in() { find "$1/blocks" -type f 2>/dev/null | wc -l; }

# A listing with checksums: "the repo as it was" means this is unchanged.
repo_state() { (cd "$1" && find . -type f ! -name .lock -print0 | sort -z | xargs -0 -r sha256sum); }

setup_repo() {
	"$CIRC" keygen k >/dev/null || die "keygen failed"
	make_image img 4
	v=$("$CIRC" publish --repo repo --key k.key --name test img) || die "publish failed"
	[ "$v" = 1 ] || die "first publish printed '$v', not 1"
}

test_keygen() {
	"$CIRC" keygen k >/dev/null || die "keygen failed"
	[ "$(stat -c %a k.key)" = 600 ] || die "private key mode is $(stat -c %a k.key)"
	openssl pkey -pubin -in k.pub -text -noout | grep -q ED25519 || die "k.pub is not Ed25519 PEM"
	openssl pkey -in k.key -noout || die "k.key is not a PEM private key"
	cp k.key before
	expect_fail 1 "exists" "$CIRC" keygen k
	cmp -s k.key before || die "keygen overwrote an existing key"
}

test_publish_verify() {
	setup_repo
	out=$("$CIRC" verify --repo repo --key k.pub --name test) || die "verify failed: $out"
	echo "$out" | grep -q "test version 1: $(stat -c %s img) bytes" || die "wrong size: $out"
	[ -f repo/images/test/1.manifest ] && [ -f repo/images/test/latest ] || die "layout"
	find repo -name '.tmp-*' | grep -q . && die "temporaries left behind"
	# Blocks are zstd frames named by the SHA-256 of their bytes.
	f=$(find repo/blocks -type f | head -n 1)
	[ "$(zstd -dc "$f" | sha256sum | cut -c1-64)" = "$(basename "$f")" ] || die "block name is not the SHA-256 of its content"
	[ "$(basename "$(dirname "$f")")" = "$(basename "$f" | cut -c1-2)" ] || die "fan-out dir"
}

test_exact_size_and_zero_blocks() {
	"$CIRC" keygen k >/dev/null
	# 3 blocks of zeros, one non-zero block, an odd tail: only 2 blocks stored.
	head -c $((3 * 65536)) /dev/zero >img
	head -c 65536 /dev/urandom >>img
	head -c 777 /dev/urandom >>img
	"$CIRC" publish --repo repo --key k.key --name odd img >/dev/null || die "publish failed"
	[ "$(blocks_in repo)" = 2 ] || die "stored $(blocks_in repo) blocks, expected 2 (zeros are never stored)"
	out=$("$CIRC" verify --repo repo --key k.pub --name odd) || die "verify: $out"
	echo "$out" | grep -q ": $((4 * 65536 + 777)) bytes, 5 blocks (2 distinct, 3 zero)" || die "$out"
}

test_update_writes_changed_blocks_only() {
	setup_repo
	n1=$(blocks_in repo)
	# Change exactly three 64 KiB blocks in place.
	for b in 3 17 40; do
		head -c 65536 /dev/urandom | dd of=img bs=65536 seek=$b conv=notrunc status=none
	done
	v=$("$CIRC" publish --repo repo --key k.key --name test img) || die "publish v2 failed"
	[ "$v" = 2 ] || die "second publish printed '$v'"
	[ $(($(blocks_in repo) - n1)) = 3 ] || die "wrote $(($(blocks_in repo) - n1)) blocks, expected 3"
	v=$("$CIRC" publish --repo repo --key k.key --name test img) || die "publish v3 failed"
	[ $(($(blocks_in repo) - n1)) = 3 ] || die "an unchanged publish wrote blocks"
	"$CIRC" verify --repo repo --key k.pub --name test --version 2 >/dev/null || die "verify v2"
	"$CIRC" verify --repo repo --key k.pub --name test --version 1 >/dev/null || die "verify v1"
	expect_fail 1 "no version 9" "$CIRC" verify --repo repo --key k.pub --name test --version 9
}

test_block_sizes() {
	"$CIRC" keygen k >/dev/null
	make_image img 2
	for bs in 4K 256K 4M; do
		"$CIRC" publish --repo "r$bs" --key k.key --name t --block-size $bs img >/dev/null ||
			die "publish --block-size $bs failed"
		"$CIRC" verify --repo "r$bs" --key k.pub --name t >/dev/null || die "verify $bs"
	done
}

test_tampered_block_is_named() {
	setup_repo
	f=$(find repo/blocks -type f | sort | sed -n 5p)
	id=$(basename "$f")
	flip_byte "$f" 20
	expect_fail 1 "block [0-9]+ \($id\) is damaged" "$CIRC" verify --repo repo --key k.pub --name test
	expect_fail 1 "test version 1" "$CIRC" verify --repo repo --key k.pub --name test
	rm "$f"
	expect_fail 1 "block [0-9]+ \($id\) is missing" "$CIRC" verify --repo repo --key k.pub --name test
}

test_tampered_metadata() {
	setup_repo
	cp repo/images/test/1.manifest m.orig
	flip_byte repo/images/test/1.manifest 200
	expect_fail 1 "manifest" "$CIRC" verify --repo repo --key k.pub --name test
	cp m.orig repo/images/test/1.manifest
	flip_byte repo/images/test/latest 17
	expect_fail 1 "pointer signature does not verify" "$CIRC" verify --repo repo --key k.pub --name test
	"$CIRC" keygen other >/dev/null
	expect_fail 1 "signed by key" "$CIRC" verify --repo repo --key other.pub --name test
}

test_expired_pointer() {
	"$CIRC" keygen k >/dev/null
	make_image img 1
	"$CIRC" publish --repo repo --key k.key --name test --expires 1s img >/dev/null || die "publish"
	# Wait for the condition (the pointer's expiry second has passed), bounded.
	for _ in $(seq 1 40); do
		"$CIRC" verify --repo repo --key k.pub --name test >/dev/null 2>&1 || break
		sleep 0.1
	done
	expect_fail 1 "expired" "$CIRC" verify --repo repo --key k.pub --name test
}

test_bad_input() {
	"$CIRC" keygen k >/dev/null
	make_image img 1
	expect_fail 1 "nonexistent.img: No such file" "$CIRC" publish --repo repo --key k.key --name t nonexistent.img
	mkdir adir
	expect_fail 1 "not a regular file" "$CIRC" publish --repo repo --key k.key --name t adir
	: >empty
	expect_fail 1 "empty" "$CIRC" publish --repo repo --key k.key --name t empty
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa.key 2>/dev/null
	expect_fail 1 "not an Ed25519 key" "$CIRC" publish --repo repo --key rsa.key --name t img
	expect_fail 1 "not a PEM private key" "$CIRC" publish --repo repo --key k.pub --name t img
	for name in a/b .. ../x ".hidden" "sp ace" ""; do
		expect_fail 1 "invalid image name" "$CIRC" publish --repo repo --key k.key --name "$name" img
	done
	for bs in 3000 2K 8M 100K 0 x; do
		expect_fail 2 "block size" "$CIRC" publish --repo repo --key k.key --name t --block-size $bs img
	done
	expect_fail 2 "required" "$CIRC" publish --repo repo --name t img
	expect_fail 2 "unknown option '--bogus'" "$CIRC" publish --bogus
	expect_fail 2 "needs an argument" "$CIRC" publish img --repo
	expect_fail 2 "unknown command" "$CIRC" frobnicate
	[ ! -e repo/images ] || die "a failed publish left images behind"
	[ "$(blocks_in repo)" = 0 ] || die "a failed publish left blocks behind"
}

test_other_key_refused() {
	setup_repo
	"$CIRC" keygen other >/dev/null
	before=$(repo_state repo)
	expect_fail 1 "signed by key .* not by the trusted key" "$CIRC" publish --repo repo --key other.key --name test img
	[ "$before" = "$(repo_state repo)" ] || die "the repo changed"
}

test_full_disk_leaves_repo_as_before() {
	[ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"
	mkdir small
	mount -t tmpfs -o size=3m tmpfs small 2>/dev/null || skip "cannot mount tmpfs here"
	T_MOUNTS+=("$PWD/small")
	"$CIRC" keygen k >/dev/null
	head -c $((1024 * 1024)) /dev/urandom >img
	"$CIRC" publish --repo small/repo --key k.key --name test img >/dev/null || die "v1 should fit"
	before=$(repo_state small/repo)
	head -c $((8 * 1024 * 1024)) /dev/urandom >big
	expect_fail 1 "No space left on device" "$CIRC" publish --repo small/repo --key k.key --name test big
	[ "$before" = "$(repo_state small/repo)" ] || die "the repo changed after a failed publish"
	find small/repo -name '.tmp-*' | grep -q . && die "temporaries left behind"
	"$CIRC" verify --repo small/repo --key k.pub --name test >/dev/null || die "v1 no longer verifies"
	umount small
}

test_crash_leftovers_are_harmless() {
	setup_repo
	# What a publisher killed mid-write leaves: a temporary and an orphan manifest.
	echo junk >repo/blocks/.tmp-999-1
	cp repo/images/test/1.manifest repo/images/test/2.manifest
	"$CIRC" verify --repo repo --key k.pub --name test >/dev/null || die "verify with leftovers"
	v=$("$CIRC" publish --repo repo --key k.key --name test img) || die "publish after crash"
	[ "$v" = 3 ] || die "publish reused version $v over an orphan manifest"
	[ ! -e repo/blocks/.tmp-999-1 ] || die "temporaries not cleaned"
}

# A publish cut by a power failure after renaming its blocks into place but
# before syncing them may leave one torn under its name; the next publish of
# that image must not reuse it.
test_torn_block_after_a_cut() {
	setup_repo
	make_image img2 4
	"$CIRC" publish --repo other --key k.key --name test img2 >/dev/null || die "publish other"
	blk=$(cd other && find blocks -type f ! -name '.*' | while read -r f; do
		[ -e "../repo/$f" ] || { echo "$f"; break; }
	done)
	[ -n "$blk" ] || die "img2 has no block img lacks"
	# The cut publish: marked, one of its new blocks there at full length, torn.
	touch -d '-1 minute' repo/.publishing
	mkdir -p "repo/$(dirname "$blk")"
	head -c "$(stat -c %s "other/$blk")" /dev/urandom >"repo/$blk"
	v=$("$CIRC" publish --repo repo --key k.key --name test img2 2>err) || die "publish: $(cat err)"
	[ "$v" = 2 ] || die "published version $v"
	grep -q "1 damaged blocks a crashed publish left were removed" err ||
		die "the damaged block was not reported: $(cat err)"
	cmp -s "other/$blk" "repo/$blk" || die "the torn block was reused"
	[ ! -e repo/.publishing ] || die "the mark outlived a publish that finished"
	"$CIRC" verify --repo repo --key k.pub --name test >/dev/null || die "verify"
}

test_progress_only_on_a_terminal() {
	command -v script >/dev/null || skip "script(1) is not installed"
	"$CIRC" keygen k >/dev/null
	make_image img 2
	script -qec "'$CIRC' publish --repo r1 --key k.key --name t img" /dev/null >tty.out </dev/null ||
		die "publish on a terminal failed"
	grep -q "publishing: 100%" tty.out || die "no progress on a terminal: $(cat -v tty.out)"
	"$CIRC" publish --repo r2 --key k.key --name t img >out 2>err || die "publish failed"
	[ ! -s err ] || die "publish wrote to stderr when not on a terminal: $(cat err)"
	[ "$(cat out)" = 1 ] || die "stdout is not just the version: $(cat out)"
}

test_format_1() {
	"$CIRC" keygen k >/dev/null
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name t --format 1 img >/dev/null || die "publish"
	[ "$(head -c 12 repo/images/t/1.manifest | tail -c 4 | od -An -tu4 | tr -d ' ')" = 1 ] ||
		die "the manifest is not format 1"
	"$CIRC" verify --repo repo --key k.pub --name t >/dev/null || die "verify"
	cp /bin/true kernel # an ELF64 file: a kernel as far as the format goes
	expect_fail 1 "format 1 has no boot kit" \
		"$CIRC" publish --repo repo --key k.key --name t --format 1 --kernel kernel img
	expect_fail 2 "--format is 1 or 2" "$CIRC" publish --repo repo --key k.key --name t --format 3 img
	start_serve repo
	"$CIRC" --state st pull "$URL" t --key k.pub >/dev/null || die "pull of format 1"
}

test_expires_needs_a_unit() {
	"$CIRC" keygen k >/dev/null
	make_image img 1
	# A bare number could mean seconds or days: refused, nothing written.
	for d in 30 86400 0s 0d 12x 1w -1d "" d 1.5h; do
		expect_fail 2 "bad duration '$d' \(a unit is needed" "$CIRC" publish --repo repo --key k.key --name t --expires "$d" img
	done
	[ ! -e repo/images ] || die "a refused --expires left images behind"
	v=0
	for d in 30d 12h 90m 45s; do
		v=$((v + 1))
		out=$("$CIRC" publish --repo repo --key k.key --name t --expires "$d" img 2>&1) || die "--expires $d: $out"
		[ "$out" = "$v" ] || die "--expires $d printed '$out'"
	done
	"$CIRC" verify --repo repo --key k.pub --name t >/dev/null || die "verify after --expires 45s"
}

test_help() {
	for c in keygen publish verify serve; do
		"$CIRC" $c --help | grep -q "Usage: circ $c" || die "$c --help"
	done
	"$CIRC" --help | grep -q "Commands:" || die "circ --help"
	"$CIRC" --version | grep -Eqx 'circ [0-9A-Za-z.+-]+' || die "circ --version: $("$CIRC" --version)"
	"$CIRC" --state /tmp/x -v publish --help >/dev/null || die "global options before the command"
}

t_case "keygen writes 0600 PEM keys and never overwrites" test_keygen
t_case "publish then verify a repo" test_publish_verify
t_case "exact image size kept, zero blocks never stored" test_exact_size_and_zero_blocks
t_case "a new version writes only its changed blocks" test_update_writes_changed_blocks_only
t_case "block sizes 4K, 256K and 4M" test_block_sizes
t_case "verify names a tampered or missing block" test_tampered_block_is_named
t_case "verify refuses tampered manifest, pointer, wrong key" test_tampered_metadata
t_case "verify refuses an expired pointer" test_expired_pointer
t_case "bad input to publish: one-line errors, repo untouched" test_bad_input
t_case "publishing with another key is refused" test_other_key_refused
t_case "a full disk leaves the repo as it was" test_full_disk_leaves_repo_as_before
t_case "leftovers of a crashed publish are harmless" test_crash_leftovers_are_harmless
t_case "a block a power cut tore during a publish is found, removed and stored again" \
	test_torn_block_after_a_cut
t_case "progress on a terminal, quiet elsewhere" test_progress_only_on_a_terminal
t_case "publish --expires takes a duration with a unit" test_expires_needs_a_unit
t_case "publish --format 1 for older clients: read and verified like format 2" test_format_1
t_case "--help for every command" test_help
