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
# ratio A B: A/B with two decimals (two significant digits below 0.01), "n/a"
# when B is zero.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else if (a / b < 0.01 && a + 0 != 0) printf "%.2g", a / b;
		else printf "%.2f", a / b }'
}
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

# tally KEY SECONDS...: like hf, for runs timed one by one (with time_once):
# their mean goes to T[KEY], "mean ±stddev" to TXT[KEY].
tally() {
	local key=$1 ms
	shift
	ms=$(meansd "$@")
	T[$key]=$(calc "${ms% *}" 3)
	TXT[$key]="$(calc "${ms% *}" 2) s ±$(calc "${ms#* }" 2)"
}

# median VALUE...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }

# meansd VALUE...: "MEAN STDDEV" (sample standard deviation, 0 for one value).
meansd() {
	printf '%s\n' "$@" | awk '{ v[NR] = $1; s += $1 }
		END { m = s / NR; for (i = 1; i <= NR; i++) d += (v[i] - m) ^ 2
			printf "%.6f %.6f\n", m, (NR > 1 ? sqrt(d / (NR - 1)) : 0) }'
}

# --- servers on loopback ------------------------------------------------------

# wait_http URL PID WHAT: polls URL until it answers 200 (at most ~10 s),
# failing early if PID exits.
wait_http() {
	local url=$1 pid=$2 what=$3 i
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || return 1
		if curl -sf -o /dev/null --max-time 1 "$url"; then
			return 0
		fi
		[ "$i" -lt 200 ] && sleep 0.05
	done
	die "$what did not answer $url"
}

free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		if ! (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# start_nginx ROOT PROBE [SERVER_LINES] [log]: nginx as a peer, serving ROOT
# on a free loopback port: 2 workers (one per core here), sendfile,
# keep-alive. SERVER_LINES go into its server block (more locations). With
# "log", each request is logged to NGINX_LOG as "STATUS BODY_BYTES URI"
# (see nginx_log_mark and nginx_log_since); else there is no access log.
# Sets NGINX_PID, NGINX_URL and NGINX_DIR, which the caller removes after
# stopping NGINX_PID; waits until PROBE (a path) answers 200.
start_nginx() {
	local root=$1 probe=$2 extra=${3:-} port conf attempt user='' alog='access_log off;'
	NGINX_DIR=$(mktemp -d "$BENCH_WORK/nginx.XXXXXX")
	NGINX_LOG=$NGINX_DIR/access.log
	mkdir -p "$NGINX_DIR/tmp"
	[ "$(id -u)" -ne 0 ] || user='user root;'
	[ "${4:-}" != log ] || alog="log_format bench '\$status \$body_bytes_sent \$request_uri'; access_log $NGINX_LOG bench;"
	for attempt in 1 2 3 4 5; do
		port=$(free_port)
		conf=$NGINX_DIR/nginx.conf
		cat >"$conf" <<-EOC
			$user
			worker_processes 2;
			pid $NGINX_DIR/nginx.pid;
			error_log $NGINX_DIR/error.log;
			events { worker_connections 1024; }
			http {
			    $alog
			    sendfile on;
			    tcp_nopush on;
			    keepalive_requests 100000;
			    default_type application/octet-stream;
			    client_body_temp_path $NGINX_DIR/tmp/body;
			    proxy_temp_path $NGINX_DIR/tmp/proxy;
			    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
			    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
			    scgi_temp_path $NGINX_DIR/tmp/scgi;
			    server {
			        listen 127.0.0.1:$port;
			        root $root;
			        $extra
			    }
			}
		EOC
		nginx -e "$NGINX_DIR/error.log" -c "$conf" -p "$NGINX_DIR" -g 'daemon off;' >"$NGINX_DIR/stdout" 2>&1 &
		NGINX_PID=$!
		NGINX_URL=http://127.0.0.1:$port
		if wait_http "$NGINX_URL$probe" "$NGINX_PID" nginx; then
			return 0
		fi
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=''
		say "nginx did not start on port $port (attempt $attempt): $(tail -n 1 "$NGINX_DIR/error.log" 2>/dev/null)"
	done
	die "nginx would not start: $(cat "$NGINX_DIR/stdout" "$NGINX_DIR/error.log" 2>/dev/null | tail -n 3)"
}

# nginx_log_mark: the number of requests logged so far. nginx logs a request
# just after its last byte is sent, so this first polls (up to ~2 s) until
# the count has stopped changing: a client that has just exited may be a log
# line ahead of nginx.
nginx_log_mark() {
	local n m i
	n=$(wc -l <"$NGINX_LOG")
	for i in $(seq 1 40); do
		sleep 0.05
		m=$(wc -l <"$NGINX_LOG")
		[ "$m" -ne "$n" ] || break
		n=$m
	done
	echo "$n"
}

# nginx_log_since MARK [URI_REGEX]: "REQUESTS BYTES" logged after MARK (of
# URIs matching URI_REGEX, if given): body bytes of 200 answers.
nginx_log_since() {
	local mark=$1 re=${2:-.} n
	n=$(nginx_log_mark)
	sed -n "$((mark + 1)),${n}p" "$NGINX_LOG" |
		awk -v re="$re" '$3 ~ re { r++; if ($1 == 200) b += $2 } END { printf "%d %d\n", r, b }'
}
