#!/usr/bin/env bash
# Fails, naming the files, where clang-format (the project's .clang-format)
# would change the C sources; `make format` applies it.
# Usage: scripts/check-format.sh [ROOT]   (make check runs it)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
command -v clang-format >/dev/null || {
	echo "check-format: clang-format is not installed (scripts/deps.sh installs it)" >&2
	exit 1
}
mapfile -t files < <(find util blockfs vdisk server hv client tests bench -name '*.[ch]' | sort)
out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1) && exit 0
grep -o '^[^:]*\.[ch]:' <<<"$out" | sort -u | tr -d : | sed 's/$/: not as clang-format would write it (make format)/'
exit 1
