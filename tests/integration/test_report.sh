#!/usr/bin/env bash
# What commands report: --json on every command that reports something (one
# JSON object on stdout, the same figures as its text), and progress bars on
# a terminal for the long work of pull, update and fetch, silent elsewhere.
. "$(dirname "$0")/lib.sh"

need_jq() { command -v jq >/dev/null || skip "jq is not installed"; }

# jfield JSON FILTER: jq's raw answer, or a failure if the JSON does not parse.
jfield() { echo "$1" | jq -er "$2" || die "'$2' not in: $1"; }

test_json_everywhere() {
	need_fuse
	need_jq
	j=$("$CIRC" keygen k --json) || die "keygen --json"
	[ "$(jfield "$j" .private_key)" = k.key ] && [ "$(jfield "$j" .public_key)" = k.pub ] ||
		die "keygen: $j"
	make_image img 4
	j=$("$CIRC" publish --repo repo --key k.key --name t img --json) || die "publish --json"
	[ "$(jfield "$j" .version)" = 1 ] || die "publish: $j"
	[ "$(jfield "$j" .image_size)" = "$(stat -c %s img)" ] || die "publish size: $j"
	[ "$(jfield "$j" .blocks)" = 64 ] || die "publish blocks: $j"
	[ "$(jfield "$j" '.new_blocks + .zero_blocks <= .blocks')" = true ] || die "publish: $j"
	j=$("$CIRC" verify --repo repo --key k.pub --name t --json) || die "verify --json"
	[ "$(jfield "$j" .good)" = true ] && [ "$(jfield "$j" .version)" = 1 ] || die "verify: $j"
	start_serve repo
	j=$("$CIRC" --state st pull "$URL" t --key k.pub --json) || die "pull --json"
	[ "$(jfield "$j" .disk)" = t ] && [ "$(jfield "$j" .version)" = 1 ] || die "pull: $j"
	j=$("$CIRC" --state st stats t --json) || die "stats --json"
	[ "$(jfield "$j" '.disks[0].cached_percent')" = 0 ] || die "stats before fetch: $j"
	base=$(jfield "$j" '.disks[0].base_blocks')
	"$CIRC" --state st stats t | grep -Eq '^t +t +1 .* 0\.0% ' ||
		die "the stats table has no cached column: $("$CIRC" --state st stats t)"
	j=$("$CIRC" --state st fetch t --json) || die "fetch --json"
	blocks=$(jfield "$j" .blocks)
	# Zero blocks are never fetched: they count as here from the start.
	[ "$blocks" = 64 ] && [ "$(jfield "$j" .cached_before)" = $((64 - base)) ] || die "fetch: $j"
	[ "$(jfield "$j" .fetched_bytes)" -gt 0 ] || die "fetch fetched nothing: $j"
	j=$("$CIRC" --state st stats t --json) || die "stats --json"
	[ "$(jfield "$j" '.disks[0].cached_percent')" = 100 ] || die "stats after fetch: $j"
	[ "$(jfield "$j" '.disks[0].cached_blocks')" = "$(jfield "$j" '.disks[0].base_blocks')" ] ||
		die "stats: $j"
	[ "$(jfield "$j" .cache.blocks)" -ge "$(jfield "$j" '.disks[0].base_blocks')" ] ||
		die "stats cache: $j"
	j=$("$CIRC" --state st ls --json) || die "ls --json"
	[ "$(jfield "$j" '.disks[0].cached_percent')" = 100 ] || die "ls: $j"
	j=$("$CIRC" ls "$URL" --key k.pub --json) || die "ls URL --json"
	[ "$(jfield "$j" '.images[0].name')" = t ] && [ "$(jfield "$j" .catalog.verified)" = true ] ||
		die "ls URL: $j"
	dd if=/dev/urandom of=img bs=64K count=3 seek=5 conv=notrunc status=none
	"$CIRC" publish --repo repo --key k.key --name t img >/dev/null || die "publish v2"
	j=$("$CIRC" --state st update t --json) || die "update --json"
	[ "$(jfield "$j" .from)" = 1 ] && [ "$(jfield "$j" .to)" = 2 ] || die "update: $j"
	[ "$(jfield "$j" .changed_blocks)" = 3 ] || die "update changed: $j"
	[ "$(jfield "$j" .fetched_blocks)" = 3 ] || die "update fetched: $j"
	j=$("$CIRC" --state st remote t --add-mirror http://127.0.0.1:9/ --json) || die "remote --json"
	[ "$(jfield "$j" .origin)" = "$URL" ] && [ "$(jfield "$j" '.mirrors[0]')" = http://127.0.0.1:9/ ] ||
		die "remote: $j"
	"$CIRC" --state st config cache-size 3G || die "config"
	j=$("$CIRC" --state st config cache-size --json) || die "config --json"
	[ "$(jfield "$j" '."cache-size"')" = $((3 << 30)) ] || die "config: $j"
	# A command that reports nothing takes no --json.
	expect_fail 2 "unknown option '--json'" "$CIRC" --state st rm t --json
	# Quotes and backslashes in a description come out as a JSON string, not broken JSON.
	desc='say "hi" \ to the lab, é'
	"$CIRC" publish --repo repo --key k.key --name t img --description "$desc" >/dev/null ||
		die "publish with a description"
	j=$("$CIRC" ls "$URL" --key k.pub --json) || die "ls URL --json"
	[ "$(jfield "$j" '.images[0].description')" = "$desc" ] || die "description: $j"
}

# serve_slowly REPO RATE: nginx serving REPO at RATE bytes/s a request; sets URL.
serve_slowly() {
	start_nginx "root $T_DIR/$1; limit_rate $2;"
}

test_progress_on_a_terminal() {
	need_fuse
	command -v script >/dev/null || skip "script(1) is not installed"
	"$CIRC" keygen k >/dev/null
	# A format 1 manifest of a 256 MiB image holds a 128 KiB table: over a
	# connection held to 64 KiB/s its download takes about two seconds.
	truncate -s 256M img
	dd if=/dev/urandom of=img bs=64K count=4 conv=notrunc status=none
	"$CIRC" publish --repo repo --key k.key --name t --format 1 img >/dev/null || die "publish"
	serve_slowly repo 64k
	script -qefc "'$CIRC' --state st pull $URL t --key k.pub" /dev/null >tty.out </dev/null ||
		die "pull on a terminal: $(cat -v tty.out)"
	grep -Eq "pull manifest: +[0-9]+%" tty.out || die "no progress for pull: $(cat -v tty.out)"
	# Twelve changed blocks of 64 KiB at 64 KiB/s each, eight at a time.
	dd if=/dev/urandom of=img bs=64K count=12 seek=100 conv=notrunc status=none
	"$CIRC" publish --repo repo --key k.key --name t --format 1 img >/dev/null || die "publish v2"
	script -qefc "'$CIRC' --state st update t" /dev/null >tty.out </dev/null ||
		die "update on a terminal: $(cat -v tty.out)"
	grep -Eq "update blocks: +[0-9]+% +[0-9]+ / 12 blocks" tty.out ||
		die "no progress for update's blocks: $(cat -v tty.out)"
	script -qefc "'$CIRC' --state st fetch t" /dev/null >tty.out </dev/null ||
		die "fetch on a terminal: $(cat -v tty.out)"
	grep -Eq "fetching: 100% +4096 / 4096 blocks" tty.out ||
		die "no progress for fetch: $(cat -v tty.out)"
	# Not on a terminal: nothing on stderr, the result on stdout.
	"$CIRC" --state st2 pull "$URL" t --key k.pub >out 2>err || die "pull"
	[ ! -s err ] || die "pull wrote to stderr off a terminal: $(cat err)"
	[ "$(cat out)" = 2 ] || die "pull printed: $(cat out)"
}

t_case "every reporting command takes --json: one object, the text's figures" test_json_everywhere
t_case "pull, update and fetch show progress on a terminal, nothing elsewhere" \
	test_progress_on_a_terminal
