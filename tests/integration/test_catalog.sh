#!/usr/bin/env bash
# Boot kits in manifests, the repo's signed catalog, `circ ls` (a repo's images,
# this machine's disks) and `circ rm`; a pointer that bounds its manifest.
. "$(dirname "$0")/lib.sh"

# A kernel as a VMM sees one: the boot protocol's "HdrS" at 0x202 of a bzImage.
make_bzimage() {
	head -c "${2:-600000}" /dev/urandom >"$1"
	printf 'HdrS' | dd of="$1" bs=1 seek=$((0x202)) conv=notrunc status=none
}

# le64 N: N as 8 little-endian bytes.
le64() {
	local n=$1 i out=""
	for i in 0 1 2 3 4 5 6 7; do out+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done
	printf "$out"
}

# resign FILE OFFSET VALUE KEY: sets a u64 field of a signed file and signs it
# again with KEY, as a publisher (or whoever holds its key) could.
resign() {
	local f=$1 len
	len=$(stat -c %s "$f")
	head -c $((len - 64)) "$f" >body
	le64 "$3" | dd of=body bs=1 seek="$2" conv=notrunc status=none
	openssl pkeyutl -sign -inkey "$4" -rawin -in body -out sig 2>/dev/null || skip "openssl cannot sign Ed25519 raw input"
	cat body sig >"$f"
}

repo_state() { (cd "$1" && find . -type f ! -name .lock -print0 | sort -z | xargs -0 -r sha256sum); }

# A repo with "lab" version 1: a kernel, an initrd, a command line, a description.
publish_lab() {
	"$CIRC" keygen k >/dev/null || die "keygen"
	make_image img 4
	make_bzimage vmlinuz
	head -c 300000 /dev/urandom >initrd.img
	v=$("$CIRC" publish --repo repo --key k.key --name lab --kernel vmlinuz --initrd initrd.img \
		--cmdline "console=ttyS0 root=/dev/vda ro" --description "Lab image, été 2024" img) ||
		die "publish with a boot kit failed"
	[ "$v" = 1 ] || die "publish printed '$v'"
}

test_ls_shows_the_kit() {
	publish_lab
	[ -f repo/catalog ] || die "no catalog written"
	find repo -name '.tmp-*' | grep -q . && die "temporaries left behind"
	start_serve repo
	[ "$(curl -sI "$URL/catalog" | tr -d '\r' | sed -n 's/^Cache-Control: //Ip')" = "public, max-age=30" ] ||
		die "catalog Cache-Control"
	out=$("$CIRC" ls "$URL" --key k.pub 2>err) || die "ls failed: $(cat err)"
	[ ! -s err ] || die "a verified listing warned: $(cat err)"
	echo "$out" | head -n 1 | grep -q "^NAME .*VERSION .*SIZE .*BOOT KIT .*CREATED (UTC) .*DESCRIPTION" ||
		die "header: $out"
	echo "$out" | grep -Eq "^lab +1 +4\.0M +585\.9K\+293\.0K +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}  Lab image, été 2024$" ||
		die "row: $out"
	json=$("$CIRC" ls "$URL" --key k.pub --json) || die "ls --json"
	echo "$json" | grep -q '"verified":true' || die "json: $json"
	echo "$json" | grep -q '"name":"lab","version":1,"image_size":4194304,"kernel_size":600000,"initrd_size":300000' ||
		die "json: $json"
	echo "$json" | grep -q '"description":"Lab image, été 2024"' || die "json: $json"
	# Without a key: listed, with one line on stderr saying it is not verified.
	out=$("$CIRC" ls "$URL" 2>err) || die "unverified ls failed"
	echo "$out" | grep -q "^lab " || die "unverified: $out"
	[ "$(wc -l <err)" = 1 ] && grep -q "not verified" err || die "stderr: $(cat err)"
	# The kit is stored as blocks and the image still verifies.
	"$CIRC" verify --repo repo --key k.pub --name lab >/dev/null || die "verify"
}

test_tampered_catalog_refused() {
	publish_lab
	start_serve repo
	cp repo/catalog c.orig
	flip_byte repo/catalog 100
	expect_fail 1 "catalog signature does not verify" "$CIRC" ls "$URL" --key k.pub
	cp c.orig repo/catalog
	"$CIRC" keygen other >/dev/null
	expect_fail 1 "catalog is signed by key .* not by the trusted key" "$CIRC" ls "$URL" --key other.pub
	head -c 100 c.orig >repo/catalog
	expect_fail 1 "catalog" "$CIRC" ls "$URL" --key k.pub
	rm repo/catalog
	expect_fail 1 "has no catalog" "$CIRC" ls "$URL" --key k.pub
	expect_fail 2 "not an http" "$CIRC" ls ftp://x --key k.pub
}

test_second_image_and_inheritance() {
	publish_lab
	# A second image, no kit: listed beside the first, sorted by name.
	make_image img2 2
	"$CIRC" publish --repo repo --key k.key --name base --description "plain" img2 >/dev/null ||
		die "publish base"
	# lab v2 without --kernel keeps the kit, the command line and the description.
	n=$(find repo/blocks -type f | wc -l)
	head -c 65536 /dev/urandom | dd of=img bs=65536 seek=5 conv=notrunc status=none
	v=$("$CIRC" publish --repo repo --key k.key --name lab img) || die "publish v2"
	[ "$v" = 2 ] || die "v2 printed $v"
	[ $(($(find repo/blocks -type f | wc -l) - n)) = 1 ] || die "v2 stored kit blocks again"
	start_serve repo
	json=$("$CIRC" ls "$URL" --key k.pub --json) || die "ls"
	echo "$json" | grep -q '"images":\[{"name":"base","version":1,"image_size":2097152,"kernel_size":0,"initrd_size":0' ||
		die "base: $json"
	echo "$json" | grep -q '"name":"lab","version":2,"image_size":4194304,"kernel_size":600000,"initrd_size":300000' ||
		die "lab v2 did not keep the kit: $json"
	echo "$json" | grep -q '"description":"Lab image, été 2024"' || die "description not kept: $json"
	out=$("$CIRC" ls "$URL" --key k.pub) || die "ls"
	echo "$out" | grep -Eq '^base +1 +2\.0M +- ' || die "base row: $out"
	# --initrd alone replaces the kept kit's initrd; a new --kernel drops the old initrd.
	head -c 5000 /dev/urandom >small.img
	"$CIRC" publish --repo repo --key k.key --name lab --initrd small.img --cmdline "quiet" img >/dev/null ||
		die "publish v3 with a new initrd"
	json=$("$CIRC" ls "$URL" --key k.pub --json)
	echo "$json" | grep -q '"name":"lab","version":3,"image_size":4194304,"kernel_size":600000,"initrd_size":5000' ||
		die "v3: $json"
	cp "$CIRC" vmlinux # an ELF64 file
	"$CIRC" publish --repo repo --key k.key --name lab --kernel vmlinux --block-size 4K img >/dev/null ||
		die "publish v4 with an ELF kernel"
	json=$("$CIRC" ls "$URL" --key k.pub --json)
	echo "$json" | grep -q "\"name\":\"lab\",\"version\":4,\"image_size\":4194304,\"kernel_size\":$(stat -c %s vmlinux),\"initrd_size\":0" ||
		die "v4: $json"
	# Kept across a change of block size: cut again into 4K blocks.
	"$CIRC" publish --repo repo --key k.key --name lab --block-size 16K img >/dev/null || die "publish v5"
	json=$("$CIRC" ls "$URL" --key k.pub --json)
	echo "$json" | grep -q "\"name\":\"lab\",\"version\":5,\"image_size\":4194304,\"kernel_size\":$(stat -c %s vmlinux)," ||
		die "v5: $json"
	"$CIRC" verify --repo repo --key k.pub --name lab >/dev/null || die "verify v5"
}

test_bad_kit_refused() {
	"$CIRC" keygen k >/dev/null
	make_image img 1
	head -c 100000 /dev/urandom >notakernel
	expect_fail 1 "notakernel is not a kernel" "$CIRC" publish --repo repo --key k.key --name t --kernel notakernel img
	[ ! -e repo/images ] && [ ! -e repo/catalog ] || die "a refused kernel published something"
	: >empty
	expect_fail 1 "empty" "$CIRC" publish --repo repo --key k.key --name t --kernel empty img
	make_bzimage vmlinuz
	expect_fail 1 "missing.img" "$CIRC" publish --repo repo --key k.key --name t --kernel vmlinuz --initrd missing.img img
	# --initrd or --cmdline with no kernel to go with: a usage error, nothing published.
	expect_fail 2 "need --kernel" "$CIRC" publish --repo repo --key k.key --name t --cmdline quiet img
	expect_fail 2 "need --kernel" "$CIRC" publish --repo repo --key k.key --name t --initrd vmlinuz img
	[ ! -e repo/images/t/latest ] || die "a usage error published"
	expect_fail 2 "cmdline" "$CIRC" publish --repo repo --key k.key --name t --kernel vmlinuz --cmdline "$(printf 'a\tb')" img
	expect_fail 2 "description" "$CIRC" publish --repo repo --key k.key --name t --description "$(head -c 1025 /dev/zero | tr '\0' d)" img
	expect_fail 2 "description" "$CIRC" publish --repo repo --key k.key --name t --description "$(printf 'bell\a')" img
	[ "$(find repo/blocks -type f 2>/dev/null | wc -l)" = 0 ] || die "refused publishes left blocks"
	# A kit kept from v1 makes --cmdline alone fine later.
	"$CIRC" publish --repo repo --key k.key --name t --kernel vmlinuz img >/dev/null || die "v1"
	"$CIRC" publish --repo repo --key k.key --name t --cmdline quiet img >/dev/null || die "v2 --cmdline"
	before=$(repo_state repo)
	expect_fail 1 "not a kernel" "$CIRC" publish --repo repo --key k.key --name t --kernel notakernel img
	[ "$before" = "$(repo_state repo)" ] || die "the repo changed"
}

# A server may send whatever it likes: the signed pointer bounds the manifest.
test_pointer_bounds_manifest() {
	publish_lab
	start_serve repo
	cp repo/images/lab/latest latest.orig
	size=$(stat -c %s repo/images/lab/1.manifest)
	# A manifest longer than the pointer says, served by a hostile server.
	cp repo/images/lab/1.manifest m.orig
	head -c 1000000 /dev/zero >>repo/images/lab/1.manifest
	expect_fail 1 "not the manifest the signed pointer names.*larger than $size bytes" \
		"$CIRC" --state st pull "$URL" lab --key k.pub
	cp m.orig repo/images/lab/1.manifest
	# A signed pointer naming a smaller size than the real manifest's.
	resign repo/images/lab/latest 112 $((size - 8)) k.key
	"$CIRC" verify --repo repo --key k.pub --name lab >/dev/null 2>&1 && die "verify accepted the pointer"
	expect_fail 1 "not the manifest the signed pointer names" "$CIRC" --state st pull "$URL" lab --key k.pub
	# ... and a larger one.
	cp latest.orig repo/images/lab/latest
	resign repo/images/lab/latest 112 $((size + 8)) k.key
	expect_fail 1 "not the manifest the signed pointer names \($size bytes, not $((size + 8))\)" \
		"$CIRC" --state st pull "$URL" lab --key k.pub
	cp latest.orig repo/images/lab/latest
	"$CIRC" --state st pull "$URL" lab --key k.pub >/dev/null || die "pull of the genuine pointer"
}

test_local_listing_and_rm() {
	need_fuse
	"$CIRC" keygen k >/dev/null
	head -c $((8 << 20)) /dev/urandom >img
	"$CIRC" publish --repo repo --key k.key --name deb img >/dev/null || die "publish"
	start_serve repo
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	"$CIRC" --state st create home --size 64M >/dev/null || die "create"
	out=$("$CIRC" --state st ls) || die "ls"
	echo "$out" | grep -Eq '^deb +deb +1 +0\.0% +0 +-$' || die "fresh disk: $out"
	echo "$out" | grep -Eq '^home +blank +- +- +0 +-$' || die "blank disk: $out"
	mount_disk st deb mnt
	dd if=mnt/disk.img of=/dev/null bs=64K count=16 status=none || die "read"
	echo "local" | dd of=mnt/disk.img bs=1 seek=$((7 << 20)) conv=notrunc,fsync status=none || die "write"
	out=$("$CIRC" --state st ls) || die "ls while mounted"
	echo "$out" | grep -Eq "^deb .* $T_DIR/mnt\$" || die "mountpoint not shown: $out"
	expect_fail 1 "in use" "$CIRC" --state st rm deb
	"$CIRC" --state st umount mnt || die "umount"
	json=$("$CIRC" --state st ls --json) || die "ls --json"
	base=$(json_field "$json" base_blocks)
	cached=$(json_field "$json" cached_blocks)
	writes=$(json_field "$json" overlay_bytes)
	[ "$base" = 128 ] || die "base blocks: $json"
	[ "$cached" -ge 16 ] && [ "$cached" -lt 128 ] || die "cached $cached of $base: $json"
	[ "$writes" -gt 0 ] || die "no local writes counted: $json"
	echo "$json" | grep -q '"mountpoint":null' || die "still mounted: $json"
	pct=$("$CIRC" --state st ls | awk '$1 == "deb" { print $4 }')
	[ "$pct" = "$(awk "BEGIN { printf \"%.1f%%\", 100 * $cached / $base }")" ] || die "table says $pct"
	echo "note: reading 1 MiB of an 8 MiB disk left $pct of it cached"
	"$CIRC" --state st rm deb || die "rm"
	[ ! -e st/disks/deb ] || die "disk directory left"
	"$CIRC" --state st ls | grep -q '^deb ' && die "deb still listed"
	[ "$("$CACHETOOL" list st/cache | wc -l)" -ge "$cached" ] || die "the shared cache was touched"
	expect_fail 1 "no disk 'deb'" "$CIRC" --state st rm deb
	expect_fail 2 "invalid disk name" "$CIRC" --state st rm ../x
	expect_fail 2 "--key goes with a URL" "$CIRC" --state st ls --key k.pub
	"$CIRC" --state st rm home || die "rm blank"
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull again after rm"
}

t_case "publish a boot kit; circ ls URL --key lists it" test_ls_shows_the_kit
t_case "a tampered or foreign catalog is refused" test_tampered_catalog_refused
t_case "a second image is listed; v2 inherits the boot kit" test_second_image_and_inheritance
t_case "a bad kernel, or a kit option without a kernel, publishes nothing" test_bad_kit_refused
t_case "the signed pointer bounds the manifest's size" test_pointer_bounds_manifest
t_case "circ ls lists local disks with % cached; circ rm removes one" test_local_listing_and_rm
