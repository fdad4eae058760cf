# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are used by the scripts that source it
# Shared helpers for the benchmarks; source it. bench/run.sh exports:
#   CIRC           the circ binary
#   BENCH_WORK     scratch directory of this run (removed on exit)
#   BENCH_CACHE    where test images are kept between runs
#   BENCH_RESULTS  key=value lines each part appends for the summary
#   BENCH_RUNS     runs per hyperfine measurement
# Benchmarks print figures beside a peer and their ratio; they never assert
# timings. A failing command, though, fails the run.

: "${CIRC:?run bench/run.sh, not this file}"
: "${BENCH_WORK:?}" "${BENCH_CACHE:?}" "${BENCH_RESULTS:?}"
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_NAME=bench

# Progress for the person waiting goes to stderr; figures go to stdout.
say() { printf '  .. %s\n' "$*" >&2; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

section() { printf '\n== %s\n' "$*"; }

# result KEY VALUE: remembered for the summary.
result() { printf '%s=%s\n' "$1" "$2" >>"$BENCH_RESULTS"; }
# get KEY: the last value recorded for KEY, empty if none.
get() { sed -n "s/^$1=//p" "$BENCH_RESULTS" | tail -n 1; }

# Arithmetic on decimals, through awk.
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
# ratio A B: A/B with two decimals, "n/a" when B is zero.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
# mbps BYTES SECONDS: decimal megabytes per second.
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { if (s + 0 == 0) print "n/a"; else printf "%.0f", n / s / 1e6 }'; }
# human BYTES: GiB, MiB or KiB with one decimal.
human() {
	awk -v n="$1" 'BEGIN {
		if (n >= 1073741824) printf "%.1f GiB", n / 1073741824;
		else if (n >= 1048576) printf "%.1f MiB", n / 1048576;
		else printf "%.1f KiB", n / 1024 }'
}

# now: seconds since the epoch with microseconds.
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }

# Timings by key: T[KEY] seconds (3 decimals), TXT[KEY] for printing.
declare -gA T=() TXT=()

# time_once KEY ERRLOG CMD...: runs CMD once, timing it; its stdout is
# discarded, its stderr kept in ERRLOG and shown if it fails.
time_once() {
	local key=$1 log=$2 t0 t1
	shift 2
	t0=$(now)
	"$@" >/dev/null 2>"$log" || die "failed: $*: $(tail -n 3 "$log")"
	t1=$(now)
	T[$key]=$(calc "$t1 - $t0" 3)
	TXT[$key]="$(calc "${T[$key]}" 2) s"
}

# hf KEY PREPARE CMD: times the shell command CMD with hyperfine, BENCH_RUNS
# runs, PREPARE (a shell command, may be ":") before each; the mean goes to
# T[KEY], "mean ±stddev" to TXT[KEY].
hf() {
	local key=$1 prep=$2 cmd=$3 json mean sd
	json=$(mktemp "$BENCH_WORK/hf.XXXXXX")
	hyperfine --style none --runs "$BENCH_RUNS" --prepare "$prep" \
		--export-json "$json" "$cmd" >/dev/null 2>"$json.err" ||
		die "hyperfine failed on: $cmd: $(tail -n 3 "$json.err")"
	mean=$(jq -r '.results[0].mean' "$json")
	sd=$(jq -r '.results[0].stddev // 0' "$json")
	T[$key]=$(calc "$mean" 3)
	TXT[$key]="$(calc "$mean" 2) s ±$(calc "$sd" 2)"
	rm -f "$json" "$json.err"
}

# row LABEL NAME_A KEY_A NAME_B KEY_B [BYTES]: one line of the table: both
# timings (with MB/s when BYTES is given) and the ratio A/B.
row() {
	local label=$1 na=$2 ka=$3 nb=$4 kb=$5 bytes=${6:-}
	local sa=${T[$ka]} sb=${T[$kb]} ra=${TXT[$ka]} rb=${TXT[$kb]}
	if [ -n "$bytes" ]; then
		ra="$ra ($(mbps "$bytes" "$sa") MB/s)"
		rb="$rb ($(mbps "$bytes" "$sb") MB/s)"
	fi
	line "$label" "$na" "$ra" "$nb" "$rb" "$(ratio "$sa" "$sb")"
}

# line LABEL NAME_A TEXT_A NAME_B TEXT_B RATIO: the table's layout.
line() {
	printf '  %-32s %-11s %-25s %-12s %-25s ratio %s\n' "$@"
}

# Sizes of what a directory holds: apparent bytes of its files, file count,
# and the space they take on disk.
dir_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
dir_files() { find "$1" -type f 2>/dev/null | wc -l; }
dir_disk() { du -sB1 "$1" 2>/dev/null | cut -f1; }

# list_files DIR: sorted relative paths of the files under DIR.
list_files() { (cd "$1" && find . -type f | sed 's|^\./||' | sort); }

# bytes_of_list DIR LISTFILE: apparent bytes of the listed files under DIR.
bytes_of_list() {
	local dir=$1 list=$2
	(cd "$dir" && tr '\n' '\0' <"$list" | xargs -0 -r stat -c %s) | awk '{ s += $1 } END { print s + 0 }'
}

# A signing key for the whole run.
bench_key() {
	if [ ! -f "$BENCH_WORK/key.key" ]; then
		"$CIRC" keygen "$BENCH_WORK/key" >/dev/null || die "circ keygen failed"
	fi
	KEY=$BENCH_WORK/key.key
	PUB=$BENCH_WORK/key.pub
}

# The images image.sh built (paths recorded in the results).
bench_images() {
	IMG1=$(get image_v1)
	IMG2=$(get image_v2)
	IMG_SIZE=$(get image_size)
	if [ ! -f "$IMG1" ] || [ ! -f "$IMG2" ]; then
		die "test images missing; run bench/image.sh first"
	fi
}
