#!/usr/bin/env bash
# Publish: `circ publish` of the 1 GiB test image into a fresh repo, beside
# `casync make` into a fresh chunk store and `zstd -T0 -3 | sha256sum` (the
# compress-and-hash work alone) over the same bytes; then the v1 -> v2 update
# into the same repo and store; then repo sizes for three block sizes.
# Leaves the 64K repo (v1 and v2) at $BENCH_WORK/repo for fetch.sh.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_images
bench_key
W=$BENCH_WORK
REPO=$W/repo
STORE=$W/casync.store
name=$BENCH_NAME

# All runs read the images from the page cache, none from the disk.
cat "$IMG1" "$IMG2" >/dev/null

# summary_field FILE WHAT: a number from `circ -v publish`'s summary line, e.g.
# "bench version 1: 1073741824 bytes, 16384 blocks (11005 zero), 5378 new
# blocks stored (110179331 bytes compressed), 2.01 s".
summary_field() {
	local line
	line=$(grep -m1 'new blocks stored' "$1") || die "no summary from circ -v publish in $1: $(cat "$1")"
	case $2 in
	blocks) sed -E 's/.* ([0-9]+) blocks \(.*/\1/' <<<"$line" ;;
	zero) sed -E 's/.*\(([0-9]+) zero\).*/\1/' <<<"$line" ;;
	new) sed -E 's/.* ([0-9]+) new blocks stored.*/\1/' <<<"$line" ;;
	newbytes) sed -E 's/.*\(([0-9]+) bytes compressed\).*/\1/' <<<"$line" ;;
	*) die "summary_field: $2?" ;;
	esac
}

section "publish: 1 GiB ext4 image, $(get image_files) files ($(human "$(get image_file_bytes)")), $BENCH_RUNS runs each, page cache warm"

say "circ publish v1 into a fresh repo (64K blocks)"
# sync before each run: circ publish ends with syncfs, which must not pay
# for what earlier runs left dirty.
hf circ "rm -rf '$REPO' && sync" \
	"'$CIRC' -v publish --repo '$REPO' --key '$KEY' --name $name '$IMG1' 2>'$W/pub1.log'"
say "casync make v1 into a fresh store"
hf casync "rm -rf '$STORE' '$W/v1.caibx' && sync" \
	"casync make --store='$STORE' '$W/v1.caibx' '$IMG1'"
say "zstd -T0 -3 | sha256sum"
hf zstd ":" "zstd -q -T0 -3 -c '$IMG1' | sha256sum"

v1_blocks=$(summary_field "$W/pub1.log" blocks)
v1_zero=$(summary_field "$W/pub1.log" zero)
v1_new=$(summary_field "$W/pub1.log" new)
v1_bytes=$(summary_field "$W/pub1.log" newbytes)
nonzero=$(((v1_blocks - v1_zero) * 65536))
cas_files=$(dir_files "$STORE")
cas_bytes=$(dir_bytes "$STORE")
cas_comp=$(find "$STORE" -name '*.cacnk' -print0 -quit | xargs -0 -r head -c 4 | od -An -tx1 | tr -d ' \n')
case $cas_comp in 28b52ffd) cas_comp=zstd ;; fd377a58) cas_comp=xz ;; 1f8b*) cas_comp=gzip ;; esac

printf '  image: %s, %d of %d 64K blocks non-zero (%s); casync chunks are %s-compressed\n' \
	"$(human "$IMG_SIZE")" $((v1_blocks - v1_zero)) "$v1_blocks" "$(human "$nonzero")" "$cas_comp"
row "publish v1 (cold repo)" circ circ "casync make" casync "$IMG_SIZE"
row "publish v1 vs compress+hash" circ circ "zstd|sha256" zstd "$IMG_SIZE"
line "repo after v1" \
	"circ" "$(human "$v1_bytes"), $v1_new blk" "casync" "$(human "$cas_bytes"), $cas_files chk" \
	"$(ratio "$v1_bytes" "$cas_bytes")"
result pub_circ_s "${T[circ]}"
result pub_casync_s "${T[casync]}"
result pub_zstd_s "${T[zstd]}"
result pub_v1_blocks "$v1_new"
result pub_v1_bytes "$v1_bytes"
result cas_v1_chunks "$cas_files"
result cas_v1_bytes "$cas_bytes"
result nonzero_bytes "$nonzero"

# --- the update: v2 into the same repo and store -----------------------------

say "circ publish v2 into the v1 repo"
d64=$(dir_disk "$REPO/blocks")
list_files "$REPO/blocks" >"$W/repo.before"
sync
time_once circ2 "$W/pub2.log" "$CIRC" -v publish --repo "$REPO" --key "$KEY" --name "$name" "$IMG2"
v2_new=$(summary_field "$W/pub2.log" new)
v2_bytes=$(summary_field "$W/pub2.log" newbytes)
list_files "$REPO/blocks" >"$W/repo.after"
seen_new=$(comm -13 "$W/repo.before" "$W/repo.after" | wc -l)
[ "$seen_new" -eq "$v2_new" ] || say "warning: circ said $v2_new new blocks, the repo gained $seen_new files"

say "casync make v2 into the v1 store"
list_files "$STORE" >"$W/store.before"
sync
time_once casync2 "$W/casync2.log" casync make --store="$STORE" "$W/v2.caibx" "$IMG2"
list_files "$STORE" >"$W/store.after"
comm -13 "$W/store.before" "$W/store.after" >"$W/store.new"
cas2_new=$(wc -l <"$W/store.new")
cas2_bytes=$(bytes_of_list "$STORE" "$W/store.new")

section "update v1 -> v2: $(get image_v2_upgraded) files upgraded, $(get image_v2_new_files) files ($(human "$(get image_v2_new_bytes)")) installed, in place"
row "publish v2 into v1's repo" circ circ2 "casync make" casync2 "$IMG_SIZE"
line "new objects written" \
	"circ" "$v2_new blk, $(human "$v2_bytes")" "casync" "$cas2_new chk, $(human "$cas2_bytes")" \
	"$(ratio "$v2_bytes" "$cas2_bytes")"
result upd_circ_s "${T[circ2]}"
result upd_casync_s "${T[casync2]}"
result upd_circ_blocks "$v2_new"
result upd_circ_bytes "$v2_bytes"
result upd_casync_chunks "$cas2_new"
result upd_casync_bytes "$cas2_bytes"
result repo "$REPO"

# --- block sizes --------------------------------------------------------------

section "block size: repo for v1, and what v2 adds (one run each; the 64K row is the repo above)"
printf '  %-6s %-10s %-9s %-12s %-12s %-10s %-9s %-12s %-10s\n' \
	"block" "publish" "blocks" "v1 bytes" "v1 on disk" "manifest" "v2 new" "v2 bytes" "publish v2"
for bs in 4K 64K 256K; do
	r=$W/repo-$bs
	if [ "$bs" = 64K ]; then
		# The repo above: its figures, and the times measured there.
		T[p1]=${T[circ]} TXT[p1]="$(calc "${T[circ]}" 2) s" T[p2]=${T[circ2]} n1=$v1_new b1=$v1_bytes n2=$v2_new b2=$v2_bytes r=$REPO
		d1=$d64
	else
		say "circ publish --block-size $bs, v1 then v2"
		sync
		time_once p1 "$W/pub-$bs-1.log" "$CIRC" -v publish --repo "$r" --key "$KEY" --name "$name" --block-size "$bs" "$IMG1"
		d1=$(dir_disk "$r/blocks")
		sync
		time_once p2 "$W/pub-$bs-2.log" "$CIRC" -v publish --repo "$r" --key "$KEY" --name "$name" --block-size "$bs" "$IMG2"
		n1=$(summary_field "$W/pub-$bs-1.log" new)
		b1=$(summary_field "$W/pub-$bs-1.log" newbytes)
		n2=$(summary_field "$W/pub-$bs-2.log" new)
		b2=$(summary_field "$W/pub-$bs-2.log" newbytes)
	fi
	mf=$(stat -c %s "$r/images/$name/1.manifest")
	printf '  %-6s %-10s %-9s %-12s %-12s %-10s %-9s %-12s %-10s\n' \
		"$bs" "${TXT[p1]}" "$n1" "$(human "$b1")" "$(human "$d1")" "$(human "$mf")" \
		"$n2" "$(human "$b2")" "$(calc "${T[p2]}" 2) s"
	result "bs_${bs}_v1_bytes" "$b1"
	result "bs_${bs}_v2_bytes" "$b2"
	result "bs_${bs}_manifest" "$mf"
	[ "$bs" = 64K ] || rm -rf "$r"
done
printf '  (v1 bytes: compressed blocks; on disk: du of blocks/; v2 new/bytes: blocks the update adds;\n'
printf '   an update also fetches the new manifest, and casync chunks average 64K)\n'
