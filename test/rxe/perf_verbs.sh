#!/usr/bin/env bash
# rxe test: zc_perf's raw-verbs tests over rxe0 -> rxe1. For write, read and
# send, a few sizes with --verify (payload checked on the receiving side),
# one latency run, and a client whose options differ, which both sides must
# refuse. Every run: server in the background on $ZC_ADDR_B, client bound to
# $ZC_ADDR_A, both must exit 0 (or both non-zero for the mismatch).
#
#   perf_verbs.sh PATH/TO/zc_perf
set -u

. "$(dirname "$0")/lib.sh"
perf=${1:?usage: perf_verbs.sh PATH/TO/zc_perf}
port=$((18600 + $$ % 100))
log=$(mktemp -d "${TMPDIR:-/tmp}/perf_verbs.XXXXXX")
trap 'rm -rf "$log"' EXIT

for test in write read send; do
	for size in 1 4097 65536; do
		perf_pair ok --test=$test -s $size -n 200 --verify
	done
done
perf_pair ok --test=send --lat -n 200 --verify
perf_pair ok --test=write -s 65536 -n 200 -q 2 --verify -e
CLIENT_EXTRA=(-s 4096)
perf_pair refused --test=write -s 8192 -n 200

echo "perf_verbs: $((runs - failed)) of $runs runs passed"
[ $failed -eq 0 ]
