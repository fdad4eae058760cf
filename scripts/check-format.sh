#!/usr/bin/env bash
# Fails, naming the files, where clang-format (the project's .clang-format)
# would change the C sources; `make format` applies it.
# Usage: scripts/check-format.sh [ROOT]   (make check runs it)
# Exits 77 (a skip) where clang-format is missing or of another major
# version than Debian 12's (14), whose output may differ in details.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
want=14
command -v clang-format >/dev/null || {
	echo "clang-format is not installed (scripts/deps.sh installs it)"
	exit 77
}
have=$(clang-format --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
[ "$have" = "$want" ] || {
	echo "clang-format $have, not $want: its formatting may differ"
	exit 77
}
mapfile -t files < <(find util blockfs vdisk server hv client tests bench -name '*.[ch]' | sort)
out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1) && exit 0
grep -o '^[^:]*\.[ch]:' <<<"$out" | sort -u | tr -d : | sed 's/$/: not as clang-format would write it (make format)/'
exit 1
