#!/usr/bin/env bash
# The lazy virtual disk end to end: circ serve on loopback, pull, a real FUSE
# mount, writes, failures of the network and of the server's data, updates.
. "$(dirname "$0")/lib.sh"

# publish_ext4 SIZE: an ext4 image from a tree of files, published as "deb" and
# served; leaves img, tree/, repo/, k.pub and URL.
publish_ext4() {
	"$CIRC" keygen k >/dev/null || die "keygen"
	make_tree tree
	mke2fs -q -t ext4 -d tree -F img "$1" || die "mke2fs"
	"$CIRC" publish --repo repo --key k.key --name deb img >/dev/null || die "publish"
	start_serve repo
}

stats() { "$CIRC" --state st stats deb --json; }

test_image_reads_back_exactly() {
	need_fuse
	publish_ext4 256M
	[ "$("$CIRC" --state st pull "$URL" deb --key k.pub)" = 1 ] || die "pull did not print version 1"
	mount_disk st deb mnt
	[ "$(stat -c %s mnt/disk.img)" = "$(stat -c %s img)" ] || die "disk.img has the wrong size"
	cmp mnt/disk.img img || die "disk.img differs from the image"
	e2fsck -fn mnt/disk.img >/dev/null 2>&1 || die "e2fsck -fn failed on disk.img"
	mkdir out
	debugfs -R "rdump / $T_DIR/out" mnt/disk.img >/dev/null 2>&1 || die "debugfs rdump"
	(cd tree && find . -type f -exec sha256sum {} + | sort -k 2) >want
	(cd out && find . -type f ! -path './lost+found*' -exec sha256sum {} + | sort -k 2) >got
	diff -q want got >/dev/null || die "files read back differ"
	"$CIRC" --state st umount mnt || die "umount"
}

test_small_read_fetches_little() {
	need_fuse
	publish_ext4 256M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt
	out=$(debugfs -R "cat /etc/small.txt" mnt/disk.img 2>/dev/null)
	[ "$out" = "small file for the lazy-read test" ] || die "read back: $out"
	"$CIRC" --state st umount mnt || die "umount"
	fetched=$(json_field "$(stats)" fetched_bytes)
	size=$(stat -c %s img)
	[ -n "$fetched" ] && [ "$fetched" -gt 0 ] || die "no fetch recorded"
	[ $((fetched * 100)) -lt $((size * 5)) ] || die "fetched $fetched of $size bytes (>= 5%)"
	echo "note: reading one small file fetched $fetched of $size bytes"
}

test_writes_are_durable() {
	need_fuse
	command -v qemu-io >/dev/null || skip "qemu-io (qemu-utils) is not installed"
	publish_ext4 64M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	cp img want
	mount_disk st deb mnt
	# Whole sectors, a partial sector at an odd offset, and a range across blocks.
	head -c 8192 /dev/urandom >w1
	head -c 100 /dev/urandom >w2
	head -c 200000 /dev/urandom >w3
	for f in "w1 4096" "w2 12345" "w3 1000000"; do
		set -- $f
		dd if="$1" of=mnt/disk.img bs=1 seek="$2" conv=notrunc,fsync status=none ||
			die "write $1 failed"
		dd if="$1" of=want bs=1 seek="$2" conv=notrunc status=none
	done
	cmp mnt/disk.img want || die "reads do not show the writes"
	"$CIRC" --state st umount mnt || die "umount"
	mount_disk st deb mnt
	cmp mnt/disk.img want || die "writes lost over umount and mount"
	# QEMU's block layer reads and writes the disk file.
	qemu-io -f raw -c "write -P 0xab 2M 64k" -c "flush" mnt/disk.img >/dev/null || die "qemu-io write"
	qemu-io -f raw -c "read -P 0xab 2M 64k" mnt/disk.img | grep -q "read 65536/65536" ||
		die "qemu-io read back"
	printf '\xab%.0s' $(seq 1 65536) | dd of=want bs=1 seek=$((2 << 20)) conv=notrunc status=none
	qemu-img info -f raw mnt/disk.img | grep -q "virtual size: 64 MiB" || die "qemu-img info"
	# kill -9 of the mount process after fsync loses nothing.
	head -c 4096 /dev/urandom >w4
	dd if=w4 of=mnt/disk.img bs=4096 seek=100 conv=notrunc,fsync status=none || die "write w4"
	dd if=w4 of=want bs=4096 seek=100 conv=notrunc status=none
	pid=$(cat st/disks/deb/mount.pid) || die "no mount.pid"
	kill -9 "$pid" || die "no mount process to kill"
	umount -l mnt 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	mount_disk st deb mnt
	cmp mnt/disk.img want || die "an fsynced write was lost to kill -9"
	# Discard: a punched range reads as zeros.
	fallocate --punch-hole --keep-size -o 1M -l 128K mnt/disk.img || die "punch hole"
	head -c $((128 << 10)) /dev/zero | dd of=want bs=1 seek=$((1 << 20)) conv=notrunc status=none
	cmp mnt/disk.img want || die "discarded range does not read as zeros"
	"$CIRC" --state st umount mnt || die "umount"
}

test_offline_and_timeout() {
	need_fuse
	publish_ext4 64M
	port=${URL##*:}
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt --timeout 2
	dd if=mnt/disk.img of=/dev/null bs=1M count=4 status=none || die "warm-up read"
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	cmp -n $((4 << 20)) mnt/disk.img img || die "cached range unreadable with the server down"
	# An uncached block holding data, far past the warm-up and its read-ahead.
	blk=
	for b in $(seq 128 1023); do
		if dd if=img bs=64k skip="$b" count=1 status=none | tr -d '\0' | head -c 1 | grep -q .; then
			blk=$b
			break
		fi
	done
	[ -n "$blk" ] || die "no data block past 8 MiB in the image"
	start=$(date +%s)
	dd if=mnt/disk.img of=/dev/null bs=64k skip="$blk" count=1 status=none 2>err &&
		die "an uncached block read succeeded with the server down"
	[ $(($(date +%s) - start)) -le 15 ] || die "the failing read took over 15 s"
	grep -q "Input/output error" err || die "not EIO: $(cat err)"
	"$CIRC" serve --repo repo --listen "127.0.0.1:$port" >/dev/null 2>&1 &
	T_PIDS+=($!)
	for _ in $(seq 1 100); do curl -s -o /dev/null "$URL/" && break; sleep 0.05; done
	cmp mnt/disk.img img || die "reads did not recover when the server came back"
	"$CIRC" --state st umount mnt || die "umount"
}

# A server restart during reads, within the mount's --timeout: the reader
# sees a delay, never an error. Killed and started again on its port, then
# stopped (SIGSTOP: it accepts connections and never answers) and resumed.
test_restart_within_timeout() {
	need_fuse
	publish_ext4 64M
	port=${URL##*:}
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt --timeout 30
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	cat mnt/disk.img >got 2>err &
	reader=$!
	# The server is down for two seconds: the scenario, not a wait for something.
	sleep 2
	kill -0 "$reader" 2>/dev/null || die "the read ended while the server was down: $(cat err)"
	"$CIRC" serve --repo repo --listen "127.0.0.1:$port" >/dev/null 2>&1 &
	SERVE_PID=$!
	T_PIDS+=("$SERVE_PID")
	wait "$reader" || die "a read failed across the restart: $(cat err)"
	cmp got img || die "the disk read across the restart differs"
	"$CIRC" --state st umount mnt || die "umount"
	"$CIRC" --state st2 pull "$URL" deb --key k.pub >/dev/null || die "pull 2"
	mount_disk st2 deb mnt2 --timeout 30
	kill -STOP "$SERVE_PID"
	cat mnt2/disk.img >got 2>err &
	reader=$!
	sleep 2
	kill -CONT "$SERVE_PID"
	wait "$reader" || die "a read failed across a hung server: $(cat err)"
	cmp got img || die "the disk read across a hung server differs"
	"$CIRC" --state st2 umount mnt2 || die "umount 2"
}

# Against a server that accepts and never answers, a read fails with EIO
# within its --timeout, not a multiple of it (the kernel reading the page
# again after a failed read-ahead must not start a second wait).
test_hung_server_fails_in_time() {
	need_fuse
	publish_ext4 64M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt --timeout 6
	kill -STOP "$SERVE_PID"
	start=$(date +%s%N)
	dd if=mnt/disk.img of=/dev/null bs=64k count=1 status=none 2>err &&
		die "a read succeeded with the server hung"
	took=$((($(date +%s%N) - start) / 1000000))
	kill -CONT "$SERVE_PID"
	grep -q "Input/output error" err || die "not EIO: $(cat err)"
	echo "note: the first read against a hung server failed after $took ms (--timeout 6)"
	[ "$took" -lt 10000 ] || die "the failing read took $took ms, past its 6 s timeout"
	cmp mnt/disk.img img || die "reads did not recover when the server answered again"
	"$CIRC" --state st umount mnt || die "umount"
}

# A mount killed with -9 leaves a dead endpoint: mount says so and how to
# clear it, and circ umount clears it.
test_dead_endpoint() {
	need_fuse
	"$CIRC" --state st create home --size 8M >/dev/null || die "create"
	mount_disk st home mnt
	pid=$(cat st/disks/home/mount.pid) || die "no mount.pid"
	kill -9 "$pid"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	expect_fail 1 "dead FUSE mount .*circ umount" "$CIRC" --state st mount home mnt
	"$CIRC" --state st umount mnt || die "umount of a dead endpoint"
	mount_disk st home mnt
	"$CIRC" --state st umount mnt || die "umount"
}

# circ mount -f stopped by SIGTERM (systemd's stop) flushes and exits 0.
test_foreground_stop() {
	need_fuse
	"$CIRC" --state st create home --size 8M >/dev/null || die "create"
	mkdir -p mnt
	"$CIRC" --state st mount home mnt -f &
	pid=$!
	T_PIDS+=("$pid")
	T_MOUNTS+=("$T_DIR/mnt")
	for _ in $(seq 1 200); do [ -e st/disks/home/mountpoint ] && break; sleep 0.05; done
	[ -e st/disks/home/mountpoint ] || die "the mount did not come up"
	echo "written before the stop" | dd of=mnt/disk.img conv=notrunc status=none || die "write"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ "$rc" = 0 ] || die "mount -f stopped by SIGTERM exited $rc"
	[ ! -e st/disks/home/mountpoint ] || die "still listed as mounted"
	mount_disk st home mnt
	head -c 23 mnt/disk.img | grep -q "written before the stop" || die "the write was lost"
	"$CIRC" --state st umount mnt || die "umount"
}

# The cache directory deleted under a mount: the log says so, the cache is
# made again, and the disk is fetched at most about once more, not over and over.
test_cache_deleted_under_mount() {
	need_fuse
	publish_ext4 64M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt
	cat mnt/disk.img >/dev/null || die "first read"
	"$CIRC" --state st umount mnt || die "umount"
	first=$(json_field "$(stats)" fetched_bytes)
	mount_disk st deb mnt
	rm -rf st/cache
	# Past the page cache: every read goes to circ, which still holds the
	# packs it had open (their bytes are the blocks'), and within a second
	# notices they are gone: it says so, and lets go of them.
	dd if=mnt/disk.img of=got bs=1M iflag=direct status=none || die "read after rm"
	cmp got img || die "the disk reads wrong after its cache was deleted"
	for _ in $(seq 1 100); do
		grep -q "block cache .* was deleted; made again" st/disks/deb/mount.log && break
		dd if=mnt/disk.img of=/dev/null bs=64K count=1 iflag=direct status=none || die "read"
		sleep 0.05
	done
	dd if=mnt/disk.img of=got bs=1M iflag=direct status=none || die "third read"
	cmp got img || die "the disk reads wrong after its cache was made again"
	"$CIRC" --state st umount mnt || die "umount"
	again=$(($(json_field "$(stats)" fetched_bytes) - first))
	echo "note: the first read fetched $first bytes; after rm -rf of the cache two more reads fetched $again"
	[ "$again" -le $((first * 12 / 10)) ] || die "fetched $again bytes again for $first bytes of disk"
	grep -q "block cache .* was deleted; made again" st/disks/deb/mount.log ||
		die "the log does not say so: $(cat st/disks/deb/mount.log)"
	[ "$(find st/cache -type f | wc -l)" -gt 0 ] || die "the cache was not made again"
}

# Rollback through the state directory: a disk.conf set back to an older
# version (its signed manifest restored beside it) is refused at mount.
test_local_rollback_refused() {
	need_fuse
	publish_ext4 16M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	cp st/disks/deb/disk.conf conf.v1
	cp st/disks/deb/manifest.1 manifest.1
	mount_disk st deb mnt
	"$CIRC" --state st umount mnt
	head -c 65536 /dev/urandom | dd of=img bs=65536 seek=20 conv=notrunc status=none
	"$CIRC" publish --repo repo --key k.key --name deb img >/dev/null || die "publish v2"
	"$CIRC" --state st update deb >/dev/null || die "update"
	mount_disk st deb mnt
	"$CIRC" --state st umount mnt
	cp conf.v1 st/disks/deb/disk.conf
	cp manifest.1 st/disks/deb/manifest.1
	mkdir -p mnt
	expect_fail 1 "rollback refused: .*version 1, but this disk was at version 2" \
		"$CIRC" --state st mount deb mnt
	"$CIRC" --state st update deb >/dev/null || die "update after the rollback attempt"
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "the disk is not version 2 after the update"
	"$CIRC" --state st umount mnt
}

# kill -9 cycles: four threads of aligned and unaligned writes, discards and
# fsyncs on a mounted disk (tests/tools/disktraffic.c), the mount killed
# after a random number of fsyncs, the disk mounted again: every page holds
# what was fsynced or something written after it, whole, never older.
# CIRC_KILL_CYCLES cycles (default 50; make stress runs 1000).
test_kill9_cycles() {
	need_fuse
	traffic=${CIRC_BUILD:-$(dirname "$CIRC")}/disktraffic
	[ -x "$traffic" ] || die "$traffic is not built"
	cycles=${CIRC_KILL_CYCLES:-50}
	"$CIRC" --state st create home --size 4M >/dev/null || die "create"
	: >journal
	for c in $(seq 1 "$cycles"); do
		mount_disk st home mnt
		"$traffic" write mnt/disk.img journal "$c" 2>/dev/null &
		t=$!
		want=$(($(wc -l <journal) + 4 + RANDOM % 60))
		until [ "$(wc -l <journal)" -ge "$want" ]; do
			kill -0 "$t" 2>/dev/null || die "cycle $c: the traffic stopped"
			sleep 0.01
		done
		pid=$(cat st/disks/home/mount.pid) || die "no mount.pid"
		kill -9 "$pid"
		wait "$t" 2>/dev/null
		for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
		"$CIRC" --state st umount mnt 2>/dev/null
		mount_disk st home mnt
		"$traffic" verify mnt/disk.img journal 2>err || die "cycle $c: $(head -n 3 err)"
		"$CIRC" --state st umount mnt || die "umount"
	done
	echo "note: $cycles kill -9 cycles; $(wc -l <journal) fsynced operations, all there after"
}

test_corrupt_block_never_served() {
	need_fuse
	publish_ext4 64M
	good=$URL
	cp -r repo bad
	victim=$(find bad/blocks -type f -size +20k | sort | head -n 1)
	id=$(basename "$victim")
	printf 'corrupt' | dd of="$victim" bs=1 seek=100 conv=notrunc status=none
	start_serve bad
	# First mirror corrupted, second good: the right bytes arrive.
	"$CIRC" --state st pull "$URL" deb --key k.pub --mirror "$good" >/dev/null || die "pull"
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "disk.img differs with a good mirror at hand"
	"$CIRC" --state st umount mnt
	# Only the corrupted server: that block's reads fail, never wrong bytes.
	"$CIRC" --state st2 pull "$URL" deb --key k.pub >/dev/null || die "pull 2"
	mount_disk st2 deb mnt2
	if cmp mnt2/disk.img img 2>cmp.err; then die "read the whole disk from a corrupted server"; fi
	grep -q "Input/output error" cmp.err || die "corruption did not surface as EIO: $(cat cmp.err)"
	grep -q "$id" st2/disks/deb/mount.log || die "the log does not name block $id"
	"$CIRC" --state st2 umount mnt2
}

test_trust_refusals() {
	publish_ext4 16M
	"$CIRC" keygen other >/dev/null
	expect_fail 1 "signed by key" "$CIRC" --state st pull "$URL" deb --key other.pub
	expect_fail 1 "has no image 'nosuch'" "$CIRC" --state st pull "$URL" nosuch --key k.pub
	mkdir -p repo/images/alias
	cp repo/images/deb/latest repo/images/alias/latest
	expect_fail 1 "names image 'deb', not 'alias'" "$CIRC" --state st pull "$URL" alias --key k.pub
	# Rollback: having seen version 2, version 1 is refused by update and by pull.
	cp repo/images/deb/latest latest.v1
	head -c 65536 /dev/urandom | dd of=img bs=65536 seek=20 conv=notrunc status=none
	"$CIRC" publish --repo repo --key k.key --name deb img >/dev/null || die "publish v2"
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull v2"
	cp latest.v1 repo/images/deb/latest
	expect_fail 1 "rollback refused" "$CIRC" --state st update deb
	expect_fail 1 "rollback refused" "$CIRC" --state st pull "$URL" deb --key k.pub --as deb2
	expect_fail 1 "pinned to key" "$CIRC" --state st pull "$URL" deb --key other.pub --as deb3
	# A damaged record of the highest version seen stops a pull; it never reads as "none".
	seen=$(find st/images -name seen | head -n 1)
	[ -f "$seen" ] || die "no seen file under st/images"
	cp "$seen" seen.good
	echo garbage >"$seen"
	expect_fail 1 "is damaged" "$CIRC" --state st pull "$URL" deb --key k.pub --as deb4
	cp seen.good "$seen"
	# Freeze: an expired pointer is refused.
	"$CIRC" publish --repo repo --key k.key --name deb --expires 1s img >/dev/null || die "publish"
	for _ in $(seq 1 40); do
		"$CIRC" --state st3 pull "$URL" deb --key k.pub --as probe >/dev/null 2>&1 || break
		rm -rf st3
		sleep 0.1
	done
	expect_fail 1 "expired" "$CIRC" --state st4 pull "$URL" deb --key k.pub
	expect_fail 2 "expected URL and NAME" "$CIRC" --state st pull "$URL"
	# A disk keeps 8 sources: pull's URL and 7 mirrors; the command line says so, not the engine.
	local m=() i
	for i in 1 2 3 4 5 6 7 8; do m+=(--mirror "http://127.0.0.1:9/$i"); done
	expect_fail 2 "at most 7 mirrors" "$CIRC" --state st pull "$URL" deb --key k.pub --as m8 "${m[@]}"
	expect_fail 1 "not an http" "$CIRC" --state st pull "ftp://x" deb --key k.pub
	expect_fail 1 "no such disk" "$CIRC" --state st update nosuch
}

test_cache_stays_bounded() {
	need_fuse
	publish_ext4 64M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt --cache-size 2M
	cmp mnt/disk.img img || die "disk.img differs under a small cache"
	used=$(du -sb st/cache | cut -f1)
	[ "$used" -le $(((2 << 20) + (1 << 20))) ] || die "cache holds $used bytes over a 2M bound"
	"$CIRC" --state st umount mnt
	cached=$(json_field "$(stats)" bytes)
	[ "$cached" -le $((2 << 20)) ] || die "stats say the cache holds $cached bytes"
}

test_cache_bound_is_a_setting() {
	need_fuse
	publish_ext4 64M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	"$CIRC" --state st config cache-size 2M || die "config"
	[ "$("$CIRC" --state st config cache-size)" = "cache-size 2097152" ] || die "config shows another bound"
	expect_fail 2 "no setting 'colour'" "$CIRC" --state st config colour 3
	expect_fail 2 "bad size" "$CIRC" --state st config cache-size lots
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "disk.img differs under a small cache"
	"$CIRC" --state st umount mnt
	used=$(du -sb st/cache | cut -f1)
	[ "$used" -le $(((2 << 20) + (1 << 20))) ] || die "cache holds $used bytes over a 2M setting"
}

test_cache_never_starves_the_disk() {
	need_fuse
	"$CIRC" keygen k >/dev/null || die "keygen"
	make_image img 64
	"$CIRC" publish --repo repo --key k.key --name deb img >/dev/null || die "publish"
	start_serve repo
	# The state on a 20 MiB file system, the image's blocks 48 MiB: they cannot all stay.
	mkdir small
	mount -t tmpfs -o size=20m tmpfs small || skip "cannot mount a tmpfs"
	T_MOUNTS+=("$T_DIR/small")
	"$CIRC" --state small/st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk small/st deb mnt
	cmp mnt/disk.img img || die "disk.img differs with the cache at its floor"
	# The overlay still has room: a write after the whole image was read.
	head -c $((1 << 20)) /dev/urandom >w
	dd if=w of=mnt/disk.img bs=64K seek=100 conv=notrunc,fsync status=none ||
		die "the overlay was starved"
	"$CIRC" --state small/st umount mnt || die "umount"
	fetched=$(json_field "$("$CIRC" --state small/st stats deb --json)" fetched_bytes)
	repo_bytes=$(du -sb repo/blocks | cut -f1)
	echo "note: reading 64 MiB with the state on 20 MiB fetched $fetched bytes (the blocks: $repo_bytes)"
	[ "$fetched" -le $((repo_bytes * 3 / 2)) ] || die "fetched $fetched bytes for $repo_bytes of blocks"
	avail=$(df -B1 --output=avail small | tail -n 1)
	[ "$avail" -ge $((1 << 20)) ] || die "the cache left only $avail bytes free"
}

test_update_fetches_changed_blocks() {
	need_fuse
	publish_ext4 64M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "v1 read"
	echo "local change" | dd of=mnt/disk.img bs=1 seek=$((60 << 20)) conv=notrunc,fsync status=none
	"$CIRC" --state st umount mnt
	# v2: a few files changed in place.
	find repo/blocks -type f | sort >before
	for i in 3 7 11; do seq 1 $((i * 1000)) | rev >"new$i"; done
	debugfs -w -R "rm /etc/conf3" img >/dev/null 2>&1
	for i in 3 7 11; do debugfs -w -R "write new$i /etc/new$i" img >/dev/null 2>&1; done
	head -c 300000 /dev/urandom >blob2
	debugfs -w -R "write blob2 /usr/bin/blob2" img >/dev/null 2>&1
	"$CIRC" publish --repo repo --key k.key --name deb img >/dev/null || die "publish v2"
	find repo/blocks -type f | sort >after
	changed=$(comm -13 before after | xargs cat | wc -c)
	[ "$changed" -gt 0 ] || die "v2 added no blocks"
	expect_fail 1 "local writes" "$CIRC" --state st update deb
	out=$("$CIRC" --state st update deb --discard-overlay) || die "update: $out"
	echo "$out"
	fetched=$(echo "$out" | grep -o 'fetched [0-9]* bytes' | grep -o '[0-9]*')
	[ "$fetched" -le $((changed * 11 / 10)) ] || die "fetched $fetched bytes for $changed bytes of changed blocks"
	[ "$fetched" -gt 0 ] || die "fetched nothing"
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "disk.img does not hold version 2"
	"$CIRC" --state st umount mnt
	out=$("$CIRC" --state st update deb) || die "second update"
	echo "$out" | grep -q "already at version 2" || die "$out"
}

test_update_keeps_overlay() {
	need_fuse
	publish_ext4 16M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt
	printf 'KEEP' | dd of=mnt/disk.img bs=1 seek=$((15 << 20)) conv=notrunc,fsync status=none
	"$CIRC" --state st umount mnt
	head -c 65536 /dev/urandom | dd of=img bs=65536 seek=30 conv=notrunc status=none
	"$CIRC" publish --repo repo --key k.key --name deb img >/dev/null || die "publish v2"
	"$CIRC" --state st update deb --keep-overlay >/dev/null || die "update --keep-overlay"
	mount_disk st deb mnt
	[ "$(dd if=mnt/disk.img bs=1 skip=$((15 << 20)) count=4 status=none)" = KEEP ] || die "overlay lost"
	cmp -n $((15 << 20)) mnt/disk.img img || die "base is not version 2 under the overlay"
	"$CIRC" --state st umount mnt
}

test_torn_cache_entry_refetched() {
	need_fuse
	publish_ext4 32M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "first read"
	"$CIRC" --state st umount mnt
	# What power loss can leave: the last block of a pack cut short, another
	# block's bytes torn in place.
	"$CACHETOOL" list st/cache >records
	[ "$(wc -l <records)" -ge 2 ] || die "the cache holds $(wc -l <records) blocks"
	read -r a apack aoff _ < <(tail -n 1 records)
	read -r b bpack boff _ < <(head -n 1 records)
	truncate -s $((aoff + 1000)) "$apack"
	printf 'torn' | dd of="$bpack" bs=1 seek=$((boff + 5000)) conv=notrunc status=none
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "a damaged cache entry was served"
	"$CIRC" --state st umount mnt
	fetched=$(json_field "$(stats)" fetched_blocks)
	# Both fetched again, each once, and whole in the cache again.
	"$CACHETOOL" list st/cache >after
	for id in "$a" "$b"; do
		[ "$(grep -c "^$id " after)" -ge 1 ] || die "block $id was not fetched again"
	done
	mount_disk st deb mnt
	cmp mnt/disk.img img || die "second read"
	"$CIRC" --state st umount mnt
	[ "$(json_field "$(stats)" fetched_blocks)" = "$fetched" ] || die "the blocks were fetched again, again"
}

test_signals_unmount_and_flush() {
	need_fuse
	publish_ext4 16M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt
	printf 'SIGNAL' | dd of=mnt/disk.img bs=1 seek=5000000 conv=notrunc status=none
	expect_fail 1 "in use" "$CIRC" --state st update deb
	mkdir mnt2
	expect_fail 1 "in use" "$CIRC" --state st mount deb mnt2
	pid=$(cat st/disks/deb/mount.pid) || die "no mount.pid"
	kill -TERM "$pid"
	for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$pid" 2>/dev/null && die "the mount did not exit on SIGTERM"
	mountpoint -q mnt && die "still mounted after SIGTERM"
	mount_disk st deb mnt
	[ "$(dd if=mnt/disk.img bs=1 skip=5000000 count=6 status=none)" = SIGNAL ] ||
		die "a write was lost on SIGTERM"
	"$CIRC" --state st umount mnt
}

test_boot_prefetch() {
	need_fuse
	publish_ext4 64M
	"$CIRC" --state st pull "$URL" deb --key k.pub >/dev/null || die "pull"
	mount_disk st deb mnt --record-reads trace
	debugfs -R "cat /usr/bin/blob" mnt/disk.img >/dev/null 2>&1 || die "read through debugfs"
	"$CIRC" --state st umount mnt || die "umount"
	[ -s trace ] || die "no reads recorded"
	grep -qv '^[0-9][0-9]*$' trace && die "the trace is not a list of block numbers"
	n=$(sort -u trace | wc -l)
	[ "$n" = "$(wc -l <trace)" ] || die "the trace repeats blocks"
	# The next version carries the list; a fresh client fetches it on mount, unasked.
	"$CIRC" publish --repo repo --key k.key --name deb --prefetch trace img >/dev/null || die "publish"
	"$CIRC" --state st2 pull "$URL" deb --key k.pub >/dev/null || die "pull 2"
	mount_disk st2 deb mnt2
	for _ in $(seq 1 200); do
		got=$(json_field "$("$CIRC" --state st2 stats deb --json)" fetched_blocks)
		[ "${got:-0}" -ge "$n" ] && break
		sleep 0.05
	done
	[ "${got:-0}" -ge "$n" ] || die "prefetched $got of $n blocks"
	debugfs -R "cat /usr/bin/blob" mnt2/disk.img >/dev/null 2>&1 || die "read after prefetch"
	"$CIRC" --state st2 umount mnt2 || die "umount 2"
	# Every block the reader asked for was in the cache already: no read waited on the network.
	misses=$(json_field "$("$CIRC" --state st2 stats deb --json)" cache_misses)
	[ "$misses" = 0 ] || die "$misses reads missed the cache after prefetching"
	expect_fail 1 "not a list of block numbers" "$CIRC" publish --repo repo --key k.key --name deb --prefetch img img
}

t_case "pull and mount a 256 MiB ext4 image: exact bytes, e2fsck, files" test_image_reads_back_exactly
t_case "reading one small file fetches under 5% of the image" test_small_read_fetches_little
t_case "writes survive umount, kill -9 after fsync; QEMU uses disk.img" test_writes_are_durable
t_case "server down: cached reads work, others fail with EIO in time, then recover" test_offline_and_timeout
t_case "a server restart within --timeout: reads wait, never fail" test_restart_within_timeout
t_case "a hung server: the read fails with EIO within --timeout, not twice it" \
	test_hung_server_fails_in_time
t_case "a dead FUSE endpoint: mount says how to clear it; circ umount clears it" test_dead_endpoint
t_case "circ mount -f stopped by SIGTERM flushes and exits 0" test_foreground_stop
t_case "the cache deleted under a mount: logged, made again, fetched once more" \
	test_cache_deleted_under_mount
t_case "disk.conf set back to an older version is refused at mount" test_local_rollback_refused
t_case "kill -9 cycles under aligned, unaligned, discard and fsync traffic lose nothing fsynced" \
	test_kill9_cycles
t_case "a corrupted block is never served" test_corrupt_block_never_served
t_case "wrong key, wrong name, rollback and freeze are refused" test_trust_refusals
t_case "the cache stays within its bound" test_cache_stays_bounded
t_case "the cache's bound is a setting of the state directory (circ config)" \
	test_cache_bound_is_a_setting
t_case "a full file system: the cache keeps its floor, nothing is fetched over and over" \
	test_cache_never_starves_the_disk
t_case "update fetches only changed blocks; refuses to drop writes" test_update_fetches_changed_blocks
t_case "update --keep-overlay keeps local writes on the new base" test_update_keeps_overlay
t_case "a torn or damaged cache entry is fetched again, never served" test_torn_cache_entry_refetched
t_case "SIGTERM unmounts and flushes" test_signals_unmount_and_flush
t_case "a recorded boot working set is prefetched on the next version" test_boot_prefetch
