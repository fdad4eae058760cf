#!/usr/bin/env bash
# Cold migration end to end: circ serve --users on loopback, two state
# directories standing for two machines, real FUSE mounts, and a server that
# misbehaves, runs out of quota or dies mid-push.
. "$(dirname "$0")/lib.sh"

# users_setup: alice and bob with passwords and passphrases in files; the repo.
users_setup() {
	printf 'alice-server-pw\n' >pw.alice
	printf 'bob-server-pw\n' >pw.bob
	printf 'alice passphrase\n' >pp.alice
	printf 'bob passphrase\n' >pp.bob
	printf 'not it\n' >pp.wrong
	printf 'wrong-pw\n' >pw.wrong
	htpasswd -B -i -c users alice <pw.alice 2>/dev/null || die "htpasswd"
	htpasswd -B -i users bob <pw.bob 2>/dev/null || die "htpasswd"
	mkdir -p repo
	as alice
}

# as USER: later commands use USER's password and passphrase files.
as() {
	export CIRC_PASSWORD_FILE=$T_DIR/pw.$1 CIRC_PASSPHRASE_FILE=$T_DIR/pp.$1
}

need_migrate() {
	need_fuse
	command -v htpasswd >/dev/null || skip "htpasswd (apache2-utils) is not installed"
}

# write_at STATE DISK OFFSET FILE: writes FILE into DISK at OFFSET through a FUSE mount.
write_at() {
	mount_disk "$1" "$2" "$T_DIR/mnt.$1"
	dd if="$4" of="$T_DIR/mnt.$1/disk.img" bs=4096 seek=$(($3 / 4096)) conv=notrunc,fsync \
		status=none || die "writing $2 at $3"
	"$CIRC" --state "$1" umount "$T_DIR/mnt.$1" || die "umount"
}

# image_of STATE DISK OUT: the disk's bytes, through a FUSE mount.
image_of() {
	mount_disk "$1" "$2" "$T_DIR/mnt.$1"
	cp "$T_DIR/mnt.$1/disk.img" "$3" || die "reading $2"
	"$CIRC" --state "$1" umount "$T_DIR/mnt.$1" || die "umount"
}

# marker_file NAME TEXT: a 4 KiB file starting with TEXT.
marker_file() {
	printf '%s' "$2" >"$1"
	truncate -s 4096 "$1"
}

test_story() {
	need_migrate
	users_setup
	start_serve repo --users users
	"$CIRC" --state A create home --size 32M || die "create"
	marker_file m1 "written on A"
	write_at A home $((5 << 20)) m1
	"$CIRC" --state A push home --to "$URL" --user alice >out || die "push from A: $(cat out)"
	grep -q "checked in home version 1" out || die "push said: $(cat out)"
	image_of A home a.img
	"$CIRC" --state B checkout "$URL" home --user alice >out || die "checkout on B"
	image_of B home b.img
	cmp a.img b.img || die "B reads other bytes than A checked in"
	marker_file m2 "written on B"
	write_at B home $((9 << 20)) m2
	expect_fail 1 "checked out on .* since .*--steal" \
		"$CIRC" --state A checkout "$URL" home --user alice
	"$CIRC" --state B push home >/dev/null || die "push from B"
	"$CIRC" --state A checkout "$URL" home --user alice >/dev/null || die "checkout on A"
	image_of A home a2.img
	image_of B home b2.img
	cmp a2.img b2.img || die "A does not see B's check-in"
	dd if=a2.img bs=4096 skip=$((9 << 20 >> 12)) count=1 status=none | grep -q "written on B" ||
		die "B's file is missing on A"
	"$CIRC" --state A log home >log || die "log"
	[ "$(grep -c '^[0-9]' log)" = 2 ] || die "log: $(cat log)"
	"$CIRC" --state A lease home | grep -q "held by" || die "lease not shown as held by A"
}

test_server_reads_nothing() {
	need_migrate
	users_setup
	start_serve repo --users users
	marker_file m "PLAINTEXT-MARKER-circ-7f3a"
	for u in alice bob; do
		as $u
		"$CIRC" --state "$u" create home --size 8M || die "create"
		write_at "$u" home $((1 << 20)) m
		write_at "$u" home $((3 << 20)) m
		"$CIRC" --state "$u" push home --to "$URL" --user "$u" >/dev/null || die "push $u"
	done
	! grep -rqa "PLAINTEXT-MARKER" repo || die "the server holds the plaintext"
	(cd repo/users/alice/blocks && find . -type f -printf '%f\n' | sort) >a.names
	(cd repo/users/bob/blocks && find . -type f -printf '%f\n' | sort) >b.names
	[ "$(wc -l <a.names)" = 1 ] || die "alice's identical blocks were not stored once"
	[ -z "$(comm -12 a.names b.names)" ] || die "two users' blocks share a name"
}

test_conflict_becomes_branch() {
	need_migrate
	users_setup
	start_serve repo --users users
	"$CIRC" --state A create home --size 8M || die "create"
	marker_file m1 "v1 from A"
	write_at A home 0 m1
	"$CIRC" --state A push home --to "$URL" --user alice --keep-lease >/dev/null || die "push"
	"$CIRC" --state B checkout "$URL" home --user alice --steal >out 2>err ||
		die "steal: $(cat err)"
	grep -q "took the lease of home from" err || die "--steal did not say so"
	marker_file m2 "B's work"
	write_at B home 8192 m2
	"$CIRC" --state B push home --keep-lease >/dev/null || die "push from B"
	marker_file m3 "A kept writing"
	write_at A home 16384 m3
	expect_fail 1 "kept as disk 'home.conflict-1'" "$CIRC" --state A push home
	expect_fail 1 "kept already as disk 'home.conflict-1'" "$CIRC" --state A push home
	[ ! -e repo/users/alice/home.conflict-2 ] || die "the same writes were kept twice"
	"$CIRC" --state C checkout "$URL" home.conflict-1 --user alice >/dev/null ||
		die "checkout of the branch"
	image_of C home.conflict-1 c.img
	dd if=c.img bs=4096 skip=4 count=1 status=none | grep -q "A kept writing" ||
		die "A's stale writes are not in the branch"
	"$CIRC" --state D checkout "$URL" home --user alice --steal >/dev/null 2>&1 ||
		die "checkout of home"
	image_of D home d.img
	dd if=d.img bs=4096 skip=2 count=1 status=none | grep -q "B's work" ||
		die "B's check-in is not the head"
	! dd if=d.img bs=4096 skip=4 count=1 status=none | grep -q "A kept" ||
		die "A's stale push overwrote the head"
}

test_push_killed_resumes() {
	need_migrate
	users_setup
	start_serve repo --users users
	"$CIRC" --state A create home --size 64M || die "create"
	head -c $((24 << 20)) /dev/urandom >data
	write_at A home 0 data
	image_of A home want.img
	# Three random points of the upload, in order.
	for kill_after in $((10 + RANDOM % 90)) $((110 + RANDOM % 90)) $((210 + RANDOM % 150)); do
		"$CIRC" --state A push home --to "$URL" --user alice >/dev/null 2>&1 &
		pid=$!
		# Wait for the condition (that many uploads logged), then kill at once.
		while kill -0 $pid 2>/dev/null &&
			[ "$(grep -c ' PUT .* 201 ' "$SERVE_LOG")" -lt $kill_after ]; do
			sleep 0.01
		done
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
	done
	"$CIRC" --state A push home --to "$URL" --user alice >out ||
		die "the re-run did not finish: $(cat out)"
	dups=$(grep ' PUT /users/alice/blocks/.* 201 ' "$SERVE_LOG" | awk '{print $3}' | sort |
		uniq -d | wc -l)
	[ "$dups" = 0 ] || die "$dups blocks were uploaded twice"
	"$CIRC" --state B checkout "$URL" home --user alice >/dev/null || die "checkout"
	image_of B home got.img
	cmp want.img got.img || die "the check-in differs from the disk"
	echo "note: $(grep -c ' PUT /users/alice/blocks/.* 201 ' "$SERVE_LOG") blocks uploaded once each over 4 runs"
}

# A push whose head compare-and-swap landed but which died before switching the
# disk over (or lost the server's answer): the state it leaves is made here by
# putting back the disk's files from before a push, with the layer left pending.
test_push_died_after_commit() {
	need_migrate
	users_setup
	start_serve repo --users users
	"$CIRC" --state A create home --size 8M || die "create"
	marker_file m1 "first"
	write_at A home 0 m1
	"$CIRC" --state A push home --to "$URL" --user alice --keep-lease >/dev/null || die "push 1"
	marker_file m2 "second"
	write_at A home 8192 m2
	cp -a A/disks/home saved
	"$CIRC" --state A push home --keep-lease >/dev/null || die "push 2"
	cp A/disks/home/layer.2 saved/push.pending
	rm -rf A/disks/home
	cp -a saved A/disks/home
	# Written after the push died: must not be lost.
	marker_file m3 "third, after the failed push"
	write_at A home 16384 m3
	image_of A home want.img
	"$CIRC" --state A push home >out || die "push 3: $(cat out)"
	[ ! -e A/disks/home/push.pending ] || die "the pending check-in was not finished"
	"$CIRC" --state B checkout "$URL" home --user alice >/dev/null || die "checkout"
	image_of B home got.img
	cmp want.img got.img || die "writes were lost"
	"$CIRC" --state B log home >log || die "log"
	[ "$(grep -c '^[0-9]' log)" = 3 ] || die "expected 3 check-ins: $(cat log)"
}

test_history() {
	need_migrate
	users_setup
	start_serve repo --users users
	"$CIRC" --state A create home --size 8M || die "create"
	for v in 1 2 3; do
		marker_file m "version $v of the file"
		write_at A home 0 m
		"$CIRC" --state A push home --to "$URL" --user alice --keep-lease >/dev/null ||
			die "push $v"
		image_of A home v$v.img
	done
	"$CIRC" --state B checkout "$URL" home --user alice --version 1 --steal >out 2>/dev/null ||
		die "checkout --version 1"
	grep -q "version 4" out || die "the old version did not come back as version 4: $(cat out)"
	image_of B home got.img
	cmp v1.img got.img || die "the bytes are not version 1's"
	"$CIRC" --state B log home >log || die "log"
	grep -q "^4.*from home version 1" log || die "log: $(cat log)"
	[ "$(grep -c '^[0-9]' log)" = 4 ] || die "history was rewritten: $(cat log)"
	command -v jq >/dev/null || return 0
	j=$("$CIRC" --state B log home --json) || die "log --json"
	[ "$(echo "$j" | jq -r '[.checkins[].version] | join(",")')" = 4,3,2,1 ] || die "log: $j"
	[ "$(echo "$j" | jq -r '.checkins[0].from_version')" = 1 ] || die "log: $j"
	j=$("$CIRC" --state B lease home --json) || die "lease --json"
	[ "$(echo "$j" | jq -r '.held, .version')" = "$(printf 'true\n4')" ] || die "lease: $j"
	echo "$j" | grep -q token && die "lease --json shows the fencing token: $j"
	marker_file m "version 5"
	write_at B home 0 m
	j=$("$CIRC" --state B push home --json) || die "push --json"
	[ "$(echo "$j" | jq -r '.version, .uploaded_blocks, .unchanged')" = "$(printf '5\n1\nfalse')" ] ||
		die "push: $j"
	j=$("$CIRC" --state A checkout "$URL" home --user alice --json) || die "checkout --json"
	[ "$(echo "$j" | jq -r '.version, .created, .stolen_from')" = "$(printf '5\nfalse\nnull')" ] ||
		die "checkout: $j"
}

test_refusals() {
	need_migrate
	users_setup
	start_serve repo --users users
	"$CIRC" --state A create home --size 8M || die "create"
	marker_file m "data"
	write_at A home 0 m
	"$CIRC" --state A push home --to "$URL" --user alice >/dev/null || die "push"
	cp repo/users/alice/home/head head.before
	as wrong
	CIRC_PASSWORD_FILE=$T_DIR/pw.alice expect_fail 1 "^circ checkout: wrong passphrase$" \
		"$CIRC" --state B checkout "$URL" home --user alice
	CIRC_PASSPHRASE_FILE=$T_DIR/pp.alice expect_fail 1 "refused the password of user alice" \
		"$CIRC" --state B checkout "$URL" home --user alice
	as bob
	expect_fail 1 "refused the password of user alice" \
		"$CIRC" --state B checkout "$URL" home --user alice
	expect_fail 1 "has no key on|no disk 'home'" "$CIRC" --state B checkout "$URL" home --user bob
	as alice
	expect_fail 1 "invalid disk name" "$CIRC" --state B checkout "$URL" ../x --user alice
	expect_fail 1 "invalid disk name" "$CIRC" --state B checkout "$URL" keys --user alice
	expect_fail 1 "invalid user name" "$CIRC" --state B checkout "$URL" home --user 'a/b'
	cmp head.before repo/users/alice/home/head || die "a refused checkout changed the head"
	[ ! -e B/disks/home ] || die "a refused checkout left a local disk"
	# A damaged record of the highest check-in seen stops a push before its commit.
	[ -f A/users/alice/home.seen ] || die "no A/users/alice/home.seen after a push"
	cp A/users/alice/home.seen seen.good
	echo garbage >A/users/alice/home.seen
	write_at A home 1 m
	expect_fail 1 "is damaged" "$CIRC" --state A push home
	cmp head.before repo/users/alice/home/head || die "a push refused for its seen file moved the head"
	cp seen.good A/users/alice/home.seen
	# Push while mounted.
	mount_disk A home mnt
	expect_fail 1 "in use" "$CIRC" --state A push home
	"$CIRC" --state A umount mnt || die "umount"
	# Uploads to a read-only server.
	mkdir ro
	start_serve ro
	"$CIRC" --state A create other --size 8M || die "create"
	write_at A other 0 m
	expect_fail 1 "does not accept uploads" "$CIRC" --state A push other --to "$URL" --user alice
	expect_fail 2 "together" "$CIRC" --state A push other --to "$URL"
}

# type_at PROMPT TEXT: once the terminal's output (tty.out) shows PROMPT, types TEXT.
type_at() {
	local i
	for i in $(seq 1 200); do
		[ "$(grep -c "$1" tty.out)" -ge "${3:-1}" ] && break
		sleep 0.05
	done
	printf '%s\n' "$2" >&3
}

test_passphrase_on_a_terminal() {
	need_migrate
	command -v script >/dev/null || skip "script (util-linux) is not installed"
	users_setup
	start_serve repo --users users
	unset CIRC_PASSPHRASE_FILE
	"$CIRC" --state A create home --size 1M || die "create"
	mkfifo keys
	script -qfc "$CIRC --state A push home --to $URL --user alice" /dev/null <keys >tty.out 2>&1 &
	pid=$!
	exec 3>keys
	type_at "New passphrase for alice's key: " "typed on a terminal"
	type_at "Again: " "typed on a terminal"
	wait $pid || die "push on a terminal: $(tr '\r' '\n' <tty.out | tail -n 3)"
	exec 3>&-
	grep -q "checked in home version 1" tty.out || die "no check-in: $(cat tty.out)"
	! grep -q "typed on a terminal" tty.out || die "the passphrase was echoed"
	printf 'typed on a terminal\n' >pp.typed
	CIRC_PASSPHRASE_FILE=$T_DIR/pp.typed "$CIRC" --state B checkout "$URL" home --user alice \
		>/dev/null || die "the typed passphrase does not open the key"
}

test_password_changed() {
	need_migrate
	users_setup
	port=$(free_port) || die "no free port"
	start_serve repo --users users --listen 127.0.0.1:$port
	"$CIRC" --state A create home --size 8M || die "create"
	marker_file m "data"
	write_at A home 0 m
	"$CIRC" --state A push home --to "$URL" --user alice --keep-lease >/dev/null || die "push"
	# Later commands use the disk's kept password: no file, no terminal.
	unset CIRC_PASSWORD_FILE
	"$CIRC" --state A lease home </dev/null >/dev/null || die "the kept password was not used"
	printf 'alice-new-pw\n' >pw.new
	htpasswd -B -i users alice <pw.new 2>/dev/null || die "htpasswd"
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	start_serve repo --users users --listen 127.0.0.1:$port
	write_at A home 8192 m
	expect_fail 1 "refused the password of user alice.*--password-file" \
		"$CIRC" --state A push home --keep-lease
	"$CIRC" --state A push home --keep-lease --password-file pw.new >/dev/null ||
		die "push with the new password"
	"$CIRC" --state A lease home </dev/null >/dev/null || die "the new password was not kept"
	[ "$(stat -c %a A/disks/home/secrets)" = 600 ] || die "secrets is not mode 0600"
}

test_hostile_server() {
	need_migrate
	users_setup
	start_serve repo --users users
	"$CIRC" --state A create home --size 8M || die "create"
	head -c $((256 << 10)) /dev/urandom >data
	write_at A home 0 data
	"$CIRC" --state A push home --to "$URL" --user alice >/dev/null || die "push"
	cp repo/users/alice/home/head head.v1
	# A tampered layer: the checkout is refused and changes nothing.
	layer=repo/users/alice/home/1.layer
	cp $layer layer.good
	flip_byte $layer 300
	expect_fail 1 "not the layer the head names" "$CIRC" --state B checkout "$URL" home --user alice
	head -c 200 layer.good >$layer
	expect_fail 1 "not the layer the head names" "$CIRC" --state B checkout "$URL" home --user alice
	cp layer.good $layer
	cmp head.v1 repo/users/alice/home/head || die "a refused checkout changed the head"
	"$CIRC" --state B checkout "$URL" home --user alice >/dev/null || die "checkout"
	# A truncated block and two swapped blocks: reads fail, wrong bytes never appear.
	mapfile -t blocks < <(find repo/users/alice/blocks -type f | sort)
	[ ${#blocks[@]} -ge 3 ] || die "expected several blocks"
	for i in 0 1 2; do cp "${blocks[$i]}" good.$i; done
	head -c 100 "${blocks[0]}" >t && cp t "${blocks[0]}"
	cp "${blocks[1]}" s && cp "${blocks[2]}" "${blocks[1]}" && cp s "${blocks[2]}"
	mount_disk B home mnt --timeout 2
	if cmp -s mnt/disk.img <(head -c $((8 << 20)) data; head -c $((8 << 20)) /dev/zero); then
		die "a damaged block was served"
	fi
	bad=0
	for i in 0 1 2 3; do
		got=$(dd if=mnt/disk.img bs=64K skip=$i count=1 status=none 2>/dev/null | sha256sum)
		want=$(dd if=data bs=64K skip=$i count=1 status=none | sha256sum)
		if [ -n "$got" ] && [ "$got" != "$want" ] &&
			[ "$got" != "$(head -c 0 /dev/null | sha256sum)" ]; then
			bad=1
		fi
	done
	"$CIRC" --state B umount mnt || die "umount"
	[ $bad = 0 ] || die "wrong bytes appeared in the disk"
	for i in 0 1 2; do cp good.$i "${blocks[$i]}"; done
	# An older head replayed after a newer one was seen: rollback refused.
	marker_file m "newer"
	write_at B home 0 m
	"$CIRC" --state B push home >/dev/null || die "push v2"
	"$CIRC" --state C checkout "$URL" home --user alice >/dev/null || die "checkout v2 on C"
	"$CIRC" --state C push home >/dev/null || die "release from C"
	cp head.v1 repo/users/alice/home/head
	expect_fail 1 "rollback refused" "$CIRC" --state C checkout "$URL" home --user alice
}

test_quota_and_server_death() {
	need_migrate
	users_setup
	port=$(free_port) || die "no free port"
	start_serve repo --users users --quota 600K --listen 127.0.0.1:$port
	"$CIRC" --state A create home --size 8M || die "create"
	head -c $((1 << 20)) /dev/urandom >data
	write_at A home 0 data
	expect_fail 1 "quota of user alice exceeded" \
		"$CIRC" --state A push home --to "$URL" --user alice
	[ ! -e repo/users/alice/home/head ] || die "a push over quota committed a head"
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	before=$(grep -c ' PUT /users/alice/blocks/.* 201 ' "$SERVE_LOG")
	start_serve repo --users users --listen 127.0.0.1:$port
	"$CIRC" --state A push home --to "$URL" --user alice >out || die "resume: $(cat out)"
	after=$(grep -c ' PUT /users/alice/blocks/.* 201 ' "$SERVE_LOG")
	[ $((before + after)) = 16 ] || die "uploaded $before then $after blocks, not 16 in all"
	"$CIRC" --state B checkout "$URL" home --user alice >/dev/null || die "checkout"
	image_of B home got.img
	cmp <(head -c $((1 << 20)) got.img) data || die "the check-in differs"
}

test_system_disk_pins_its_base() {
	need_migrate
	users_setup
	"$CIRC" keygen k >/dev/null
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name sys img >/dev/null || die "publish"
	start_serve repo --users users
	"$CIRC" --state A pull "$URL" sys --key k.pub >/dev/null || die "pull"
	marker_file m "a change to the system disk"
	write_at A sys 8192 m
	"$CIRC" --state A push sys --to "$URL" --user alice >/dev/null || die "push"
	image_of A sys want.img
	make_image img 4
	"$CIRC" publish --repo repo --key k.key --name sys img >/dev/null || die "publish v2"
	expect_fail 1 "give its publisher's key with --key" \
		"$CIRC" --state B checkout "$URL" sys --user alice
	"$CIRC" --state B checkout "$URL" sys --user alice --key k.pub >/dev/null ||
		die "checkout on B"
	grep -q "^version 1$" B/disks/sys/disk.conf || die "B's base is not version 1"
	image_of B sys got.img
	cmp want.img got.img || die "B reads other bytes than A checked in"
	expect_fail 1 "would corrupt them.*separate home disk" "$CIRC" --state B update sys
}

test_through_a_proxy() {
	need_migrate
	users_setup
	start_serve repo --users users
	origin=$URL
	"$CIRC" --state A create home --size 8M || die "create"
	head -c $((512 << 10)) /dev/urandom >data
	write_at A home 0 data
	"$CIRC" --state A push home --to "$origin" --user alice >/dev/null || die "push"
	start_nginx "client_max_body_size 80m;
		location / { proxy_pass $origin; proxy_request_buffering off; }"
	"$CIRC" --state B checkout "$URL" home --user alice >/dev/null || die "checkout via nginx"
	image_of B home got.img
	cmp <(head -c $((512 << 10)) got.img) data || die "read through nginx differs"
	grep -q "GET /users/alice/blocks/" "$T_DIR/nginx/access.log" ||
		die "the blocks did not come through nginx"
	! grep -q "alice-server-pw" "$T_DIR/nginx/access.log" "$SERVE_LOG" ||
		die "a log holds the password"
}

test_server_killed_mid_push() {
	need_migrate
	users_setup
	port=$(free_port) || die "no free port"
	start_serve repo --users users --listen 127.0.0.1:$port
	"$CIRC" --state A create home --size 32M || die "create"
	head -c $((8 << 20)) /dev/urandom >data
	write_at A home 0 data
	"$CIRC" --state A push home --to "$URL" --user alice --timeout 2 >out 2>&1 &
	pid=$!
	while kill -0 $pid 2>/dev/null && [ "$(grep -c ' PUT .* 201 ' "$SERVE_LOG")" -lt 40 ]; do
		sleep 0.01
	done
	kill -9 "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null
	wait $pid && die "push succeeded with its server killed"
	[ ! -e repo/users/alice/home/head ] || die "a head was committed"
	# A power cut may also leave an uploaded block torn at its full length (a file
	# system without ordered data). The re-run must see it is not its block, and
	# stop rather than commit over it: the server never rewrites a block.
	blk=$(find repo/users/alice/blocks -type f ! -name '.*' | head -n 1)
	[ -n "$blk" ] || die "no block was uploaded"
	head -c "$(stat -c %s "$blk")" /dev/urandom >torn
	cat torn >"$blk"
	start_serve repo --users users --listen 127.0.0.1:$port
	"$CIRC" --state A push home --to "$URL" --user alice >out 2>&1 &&
		die "the push committed over a damaged block"
	grep -q "damaged copy of block users/alice/blocks/.*never rewrites" out ||
		die "the push did not name the damaged block: $(cat out)"
	[ ! -e repo/users/alice/home/head ] || die "a head was committed over the damaged block"
	rm "$blk"
	"$CIRC" --state A push home --to "$URL" --user alice >out || die "re-run: $(cat out)"
	"$CIRC" --state B checkout "$URL" home --user alice >/dev/null || die "checkout"
	image_of B home got.img
	cmp <(head -c $((8 << 20)) got.img) data || die "the check-in differs"
}

# guest STATE SCRIPT: boots the busybox image (system disk bb, home disk home)
# with circ run --vmm qemu, types SCRIPT at its shell once it is up, waits for
# the guest to power off; the console's output is left in guest.out.
guest() {
	rm -f console guest.out
	mkfifo console
	timeout 180 "$CIRC" --state "$1" run --vmm qemu --kernel "$IMAGES/kit/vmlinuz" \
		--initrd "$IMAGES/kit/initrd.img" --append "quiet root=/dev/vda" \
		--disk bb --disk home --mem 256M <console >guest.out 2>&1 &
	local pid=$!
	exec 3>console
	while ! grep -q "poweroff stops the machine" guest.out; do
		kill -0 $pid 2>/dev/null || die "the guest did not come up: $(tail -n 3 guest.out)"
		sleep 0.1
	done
	printf '%s; poweroff\n' "$2" >&3
	wait $pid || die "circ run failed: $(tail -n 3 guest.out)"
	exec 3>&-
}

test_story_on_a_guest() {
	need_migrate
	need_images
	users_setup
	"$CIRC" keygen k >/dev/null
	"$CIRC" publish --repo repo --key k.key --name bb "$IMAGES/busybox.img" >/dev/null ||
		die "publish"
	start_serve repo --users users
	"$CIRC" --state A pull "$URL" bb --key k.pub >/dev/null || die "pull on A"
	"$CIRC" --state A create home --size 64M || die "create"
	mount_disk A home mnt
	mkfs.ext4 -q -F mnt/disk.img || die "mkfs"
	"$CIRC" --state A umount mnt || die "umount"
	guest A "mount -t ext4 /dev/vdb /mnt && echo notes-from-A >/mnt/a.txt && umount /mnt"
	"$CIRC" --state A push home --to "$URL" --user alice >/dev/null || die "push from A"
	"$CIRC" --state B pull "$URL" bb --key k.pub >/dev/null || die "pull on B"
	"$CIRC" --state B checkout "$URL" home --user alice >/dev/null || die "checkout on B"
	guest B "mount -t ext4 /dev/vdb /mnt && cat /mnt/a.txt && echo notes-from-B >/mnt/b.txt && umount /mnt"
	grep -q "notes-from-A" guest.out || die "the guest on B does not read A's file: $(tail -n 5 guest.out)"
	expect_fail 1 "checked out on" "$CIRC" --state A checkout "$URL" home --user alice
	"$CIRC" --state B push home >/dev/null || die "push from B"
	"$CIRC" --state A checkout "$URL" home --user alice >/dev/null || die "checkout on A"
	guest A "mount -t ext4 /dev/vdb /mnt && cat /mnt/a.txt /mnt/b.txt && umount /mnt"
	grep -q "notes-from-B" guest.out || die "A does not see B's file: $(tail -n 5 guest.out)"
	grep -q "notes-from-A" guest.out || die "A lost its own file"
	echo "note: B fetched $(json_field "$("$CIRC" --state B stats home --json)" fetched_bytes) bytes of the 64 MiB home disk to read and write it"
}

t_case "the story on a guest: A writes /home, pushes; B boots it, writes; A sees B's file" \
	test_story_on_a_guest
t_case "create, push from A, checkout on B, lease, push back, A sees B's files" test_story
t_case "the server holds no plaintext; two users share no object names" test_server_reads_nothing
t_case "a stale push becomes a branch; both versions readable" test_conflict_becomes_branch
t_case "push killed with -9 three times, then re-run: complete, no block uploaded twice" \
	test_push_killed_resumes
t_case "a push that died after its commit is finished by the next, later writes kept" \
	test_push_died_after_commit
t_case "checkout --version 1 after 3 brings version 1's bytes back as version 4" test_history
t_case "wrong passphrase, wrong password, other users, bad names, mounted, read-only server" \
	test_refusals
t_case "a new key's passphrase typed twice on a terminal, never echoed" \
	test_passphrase_on_a_terminal
t_case "a changed server password: refused, then given once and kept" test_password_changed
t_case "tampered layer, damaged blocks, replayed head: refused, never served" test_hostile_server
t_case "a pushed system disk pins its base version; update refuses to move it" \
	test_system_disk_pins_its_base
t_case "a check-out and its lazy reads through nginx as a reverse proxy" test_through_a_proxy
t_case "the server killed mid-push, a block left torn: named, never committed over; then the re-run completes" \
	test_server_killed_mid_push
t_case "quota exceeded mid-push keeps the old head; the push resumes on a new server" \
	test_quota_and_server_death
