#!/usr/bin/env bash
# Runs every test and ends with "N passed, N failed, N skipped".
# Usage: tests/run.sh BUILD_DIR   (make check calls it)
set -uo pipefail

build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "$build" && pwd)
export CIRC="$build/circ" CIRC_BUILD="$build" CIRC_ROOT="$root"
passed=0 failed=0 skipped=0
failures=()

# The boot loader's tests run against Debian's stock kernel, fetched once.
if kernel=$("$root/tests/unit/fetch-kernel.sh" 2>/dev/null); then
	export CIRC_TEST_KERNEL=$kernel
else
	echo "note: could not fetch Debian's kernel; boot loader tests against it are skipped"
fi

# A check over the sources: PASS, SKIP (exit 77, with why), or FAIL with what it printed.
source_check() {
	local name=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "PASS: $name"
		passed=$((passed + 1))
	elif [ "$rc" -eq 77 ]; then
		echo "SKIP: $name: $out"
		skipped=$((skipped + 1))
	else
		echo "$out" | head -n 20
		echo "FAIL: $name"
		failed=$((failed + 1))
		failures+=("$name")
	fi
}

echo "== source checks"
source_check "layering: includes follow the data flow" "$root/scripts/check-layering.sh" "$root"
source_check "clang-format: the sources as .clang-format writes them" "$root/scripts/check-format.sh" "$root"

echo "== unit tests (Check)"
out=$("$build/unit-tests" 2>&1)
rc=$?
echo "$out" | grep -v '^Running suite' | tail -n 40
# Check's summary: "NN%: Checks: C, Failures: F, Errors: E"
if summary=$(echo "$out" | grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' | tail -n 1); then
	read -r c f e < <(echo "$summary" | tr -cd '0-9 ,' | tr ',' ' ')
	# A test that finds what it needs missing prints "SKIP: ..." and returns: Check counts it passed.
	s=$(echo "$out" | grep -c '^SKIP: ' || true)
	echo "$out" | grep '^SKIP: ' || true
	passed=$((passed + c - f - e - s))
	skipped=$((skipped + s))
	failed=$((failed + f + e))
	[ $((f + e)) -gt 0 ] && failures+=("unit tests")
else
	failed=$((failed + 1))
	failures+=("unit tests (exit $rc, no summary)")
fi

echo "== fuzz corpus replay"
for replay in "$build"/fuzz-*-replay; do
	[ -x "$replay" ] || continue
	name=$(basename "$replay" -replay)
	name=${name#fuzz-}
	corpus="$root/tests/fuzz/corpus/$name"
	if "$replay" "$corpus"/* >/dev/null 2>&1; then
		echo "PASS: fuzz replay $name ($(ls "$corpus" | wc -l) inputs)"
		passed=$((passed + 1))
	else
		echo "FAIL: fuzz replay $name"
		failed=$((failed + 1))
		failures+=("fuzz replay $name")
	fi
done

echo "== integration tests"
for t in "$root"/tests/integration/test_*.sh; do
	echo "-- $(basename "$t")"
	log=$(mktemp)
	bash "$t" 2>&1 | tee "$log"
	p=$(grep -c '^PASS: ' "$log")
	f=$(grep -c '^FAIL: ' "$log")
	s=$(grep -c '^SKIP: ' "$log")
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
		f=1
		echo "FAIL: $(basename "$t") reported no result"
	fi
	while IFS= read -r line; do failures+=("$line"); done < <(grep '^FAIL: ' "$log" | sed 's/^FAIL: //')
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	rm -f "$log"
done

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "Failed:"
	printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
