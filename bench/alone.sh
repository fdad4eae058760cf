# shellcheck shell=bash
# Sourced by a part of the benchmarks run alone, not under bench/run.sh: sets
# up what run.sh would have (scratch directory, results, cache, a private copy
# of circ). Usage: . bench/alone.sh NAME [BUILD_DIR]
if [ -z "${BENCH_WORK:-}" ]; then
	build=$(cd "$root" && cd "${2:-${CIRC_BUILD:-build}}" && pwd)
	[ -x "$build/circ" ] || {
		echo "bench: $build/circ not built (run make)" >&2
		exit 1
	}
	mkdir -p "$build/bench"
	BENCH_WORK=$(mktemp -d "$build/bench/$1.XXXXXX")
	BENCH_ALONE=1
	trap 'rm -rf "$BENCH_WORK"' EXIT
	export BENCH_WORK BENCH_RESULTS=$BENCH_WORK/results
	export BENCH_CACHE=${CIRC_BENCH_CACHE:-$build/bench/cache}
	export BENCH_RUNS=${CIRC_BENCH_RUNS:-3} CIRC=$BENCH_WORK/circ
	mkdir -p "$BENCH_CACHE"
	: >"$BENCH_RESULTS"
	cp "$build/circ" "$CIRC"
fi
