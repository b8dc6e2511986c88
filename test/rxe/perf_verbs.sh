#!/usr/bin/env bash
# rxe test: zc_perf's raw-verbs tests over rxe0 -> rxe1. For write, read and
# send, a few sizes with --verify (payload checked on the receiving side),
# one latency run, and a client whose options differ, which both sides must
# refuse. Every run: server in the background on $ZC_ADDR_B, client bound to
# $ZC_ADDR_A, both must exit 0 (or both non-zero for the mismatch).
#
#   perf_verbs.sh PATH/TO/zc_perf
set -u

if [ -z "${ZC_ADDR_A:-}" ] || [ -z "${ZC_ADDR_B:-}" ]; then
	echo "SKIPPED: ZC_ADDR_A/ZC_ADDR_B are not set; run in the rxe guest (scripts/rxe-guest)" >&2
	exit 77
fi
perf=${1:?usage: perf_verbs.sh PATH/TO/zc_perf}
port=$((18600 + $$ % 100))
log=$(mktemp -d "${TMPDIR:-/tmp}/perf_verbs.XXXXXX")
trap 'rm -rf "$log"' EXIT
failed=0 runs=0

# pair EXPECT ARGS...: one server/client run; EXPECT is "ok" or "refused".
# CLIENT_EXTRA: options only the client gets (last, so they win).
pair() {
	local expect=$1 srv_rc cli_rc
	shift
	runs=$((runs + 1))
	"$perf" -d "$ZC_DEV_B" -b "$ZC_ADDR_B" -p "$port" --wait 60 "$@" >"$log/server" 2>&1 &
	local srv=$!
	# --wait: the client retries until the server listens.
	"$perf" -d "$ZC_DEV_A" -b "$ZC_ADDR_A" -p "$port" --wait 30 "$@" "${CLIENT_EXTRA[@]}" "$ZC_ADDR_B" \
		>"$log/client" 2>&1
	cli_rc=$?
	wait "$srv"
	srv_rc=$?
	if [ "$expect" = ok ] && [ $cli_rc -eq 0 ] && [ $srv_rc -eq 0 ]; then
		echo "ok: $* -> $(grep -A1 '#bytes' "$log/client" | tail -n 1 | tr -s ' ' | cut -c1-60)"
		return
	fi
	if [ "$expect" = refused ] && [ $cli_rc -ne 0 ] && [ $srv_rc -ne 0 ] &&
		grep -q "differs" "$log/client" && grep -q "differs" "$log/server"; then
		echo "ok (refused as expected): $* -> $(grep differs "$log/client" | head -n 1)"
		return
	fi
	failed=$((failed + 1))
	echo "FAIL ($expect): $* (client rc $cli_rc, server rc $srv_rc)"
	echo "--- client:"; cat "$log/client"
	echo "--- server:"; cat "$log/server"
}

CLIENT_EXTRA=()
for test in write read send; do
	for size in 1 4097 65536; do
		pair ok --test=$test -s $size -n 200 --verify
	done
done
pair ok --test=send --lat -n 200 --verify
pair ok --test=write -s 65536 -n 200 -q 2 --verify -e
CLIENT_EXTRA=(-s 4096)
pair refused --test=write -s 8192 -n 200

echo "perf_verbs: $((runs - failed)) of $runs runs passed"
[ $failed -eq 0 ]
