#!/usr/bin/env bash
# rxe test: zc_blk_legacy_target with several initiators and hostile capsules.
#   1. a target (--memory) on $ZC_ADDR_B; two initiators at once (blk_check io,
#      two processes) write, read back and verify disjoint regions in mixed
#      command sizes at QD 8, FLUSH, DISCARD; then two new connections, again
#      at once, verify each other's region.
#   2. blk_check errors: out-of-range LBAs, oversize and empty transfers, bad
#      opcodes/flags/tags/lengths/versions, garbage, short and wrongly-righted
#      descriptors, tag reuse, commands before HELLO -> error responses, and
#      the connection goes on; a revoked descriptor ends only that connection.
#   3. zc_blk_bench runs against the same target while (1) is repeated.
#   4. a --read-only target over a file refuses WRITE and DISCARD.
# The target must survive all of it and exit 0 on SIGTERM; no initiator may
# need to reconnect.
#
#   blk_proto.sh BINDIR     (the directory holding zc_blk_legacy_target and blk_check)
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: blk_proto.sh BINDIR}
port=$((7680 + ($$ % 40) * 2))
work=$(mktemp -d "${TMPDIR:-/tmp}/blk_proto.XXXXXX")
tgt=
trap '[ -n "$tgt" ] && kill "$tgt" 2>/dev/null; rm -rf "$work"' EXIT
# start_target LOG ARGS...: in the background; waits until it listens.
start_target() {
	local log=$1 i
	shift
	timeout 200 "$bin/zc_blk_legacy_target" "$@" >"$log" 2>&1 &
	tgt=$!
	for i in $(seq 300); do
		grep -q "listening on" "$log" && return 0
		kill -0 "$tgt" 2>/dev/null || break
		sleep 0.1
	done
	bad "the target did not start: $*"
	show target "$log"
	exit 1
}

stop_target() {
	local log=$1 rc
	if ! kill -0 "$tgt" 2>/dev/null; then
		bad "the target died"
		show target "$log"
		tgt=
		return
	fi
	kill -TERM "$tgt"
	wait "$tgt"
	rc=$?
	tgt=
	[ $rc -eq 0 ] || { bad "target exit status $rc after SIGTERM"; show target "$log"; }
}

# check NAME CMD...: one blk_check run, must exit 0.
check() {
	local name=$1 rc
	shift
	runs=$((runs + 1))
	timeout 120 "$@" >"$work/$name.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "ok: $name ($(grep -c '^ok:' "$work/$name.out") checks)"
	else
		bad "$name: exit status $rc"
		show "$name" "$work/$name.out"
	fi
}

# Two initiators at once, then each verifies the other's region.
pair() {
	local a b ra rb
	runs=$((runs + 1))
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" 0 8192 1 >"$work/io1.out" 2>&1 &
	a=$!
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" 8192 8192 2 >"$work/io2.out" 2>&1 &
	b=$!
	wait $a; ra=$?
	wait $b; rb=$?
	if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
		echo "ok: two initiators at once wrote and verified their regions"
		sed 's/^/    /' "$work/io1.out"
	else
		bad "concurrent initiators: exit status $ra / $rb"
		show "initiator 1" "$work/io1.out"; show "initiator 2" "$work/io2.out"
	fi
	runs=$((runs + 1))
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" 8192 8192 2 verify >"$work/v1.out" 2>&1 &
	a=$!
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" 0 8192 1 verify >"$work/v2.out" 2>&1 &
	b=$!
	wait $a; ra=$?
	wait $b; rb=$?
	if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
		echo "ok: new connections verified each other's regions"
	else
		bad "cross verification: exit status $ra / $rb"
		show "verifier 1" "$work/v1.out"; show "verifier 2" "$work/v2.out"
	fi
}

start_target "$work/target.log" --listen "$ZC_ADDR_B:$port" --memory 64M --queue-depth 16 --pool 8
pair
check errors "$bin/blk_check" errors "$ZC_ADDR_A" "$ZC_ADDR_B:$port"
sed -n 's/^ok: /    /p' "$work/errors.out"

# A benchmark run alongside verified I/O of another initiator.
runs=$((runs + 1))
timeout 60 "$bin/zc_blk_bench" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$port" --rw randwrite --bs 4k --qd 4 --time 3 \
	--size 4M --json "$work/bench.json" >"$work/bench.out" 2>&1 &
bpid=$!
check io3 "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" 16384 4096 3
wait $bpid
rc=$?
if [ $rc -eq 0 ] && grep -q '"iops"' "$work/bench.json" && no_reconnect "$work/bench.out"; then
	echo "ok: $(cat "$work/bench.out")"
else
	bad "zc_blk_bench: exit status $rc"; show bench "$work/bench.out"
fi
stop_target "$work/target.log"
grep -E "failed|never" "$work/target.log" | sed 's/^/    target: /'

# Read-only, over a file.
port=$((port + 1))
truncate -s 8M "$work/ro.img"
start_target "$work/ro.log" --listen "$ZC_ADDR_B:$port" --file "$work/ro.img" --block-size 4096 --read-only
check readonly "$bin/blk_check" readonly "$ZC_ADDR_A" "$ZC_ADDR_B:$port"
stop_target "$work/ro.log"

echo "blk_proto: $((runs - failed)) of $runs runs passed"
[ $failed -eq 0 ]
