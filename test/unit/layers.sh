#!/usr/bin/env bash
# The include graph of src/ against the layer table in src/LAYERS: every
# source and header is in the table, and every #include "..." names a header
# of the same layer or a lower one. Also: nothing in the library sleeps.
#   test/unit/layers.sh SRC_DIR
set -euo pipefail
src=${1:?usage: layers.sh SRC_DIR}
declare -A layer
while read -r lvl _ files; do
	for f in $files; do layer[$f]=$lvl; done
done < <(grep -E '^[0-9]' "$src/LAYERS")

bad=0
for path in "$src"/*.c "$src"/*.h; do
	f=${path##*/}
	if [ -z "${layer[$f]:-}" ]; then
		echo "layers: $f is not in src/LAYERS"
		bad=1
		continue
	fi
	while read -r inc; do
		if [ -z "${layer[$inc]:-}" ]; then
			echo "layers: $f includes $inc, which is not in src/LAYERS"
			bad=1
		elif [ "${layer[$inc]}" -gt "${layer[$f]}" ]; then
			echo "layers: $f (layer ${layer[$f]}) includes $inc (layer ${layer[$inc]}): an upward dependency"
			bad=1
		fi
	done < <(sed -n 's/^#include "\(.*\)"/\1/p' "$path")
done
# Waits are driven by progress with deadlines: no call may sleep under the
# context's other connections.
if grep -nE '\b(usleep|nanosleep|sleep|clock_nanosleep)\s*\(' "$src"/*.c; then
	echo "layers: the library must not sleep (see above)"
	bad=1
fi
if [ "$bad" -eq 0 ]; then
	echo "layers: $(ls "$src"/*.c "$src"/*.h | wc -l) files, every include points down or sideways, no sleep"
fi
exit "$bad"
