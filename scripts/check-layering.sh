#!/usr/bin/env bash
# Fails on an #include that goes against the data flow (docs/architecture.md):
# a module includes its own headers and the public headers of the modules
# before it, never one after it or beside it, and never another module's
# internals (*_int.h).
# Usage: scripts/check-layering.sh [ROOT]   (make check runs it)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# The order data flows through the modules; hv and server both come after
# vdisk and neither may include the other.
declare -A rank=([util]=0 [blockfs]=1 [vdisk]=2 [server]=3 [hv]=3 [client]=4)

bad=0
for mod in "${!rank[@]}"; do
	for f in "$mod"/*.[ch]; do
		[ -e "$f" ] || continue
		while IFS=: read -r line text; do
			inc=$(sed 's/^[^"]*"\([^"]*\)".*/\1/' <<<"$text")
			dep=${inc%%/*}
			[ -n "${rank[$dep]+x}" ] || continue # a system or test header
			if [ "$dep" != "$mod" ] && [[ "$inc" == *_int.h ]]; then
				echo "$f:$line: includes $inc, the internals of $dep/"
				bad=1
			elif [ "$dep" != "$mod" ] && [ "${rank[$dep]}" -ge "${rank[$mod]}" ]; then
				echo "$f:$line: $mod/ includes $inc, but $dep/ does not come before $mod/"
				bad=1
			fi
		done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
	done
done
exit "$bad"
