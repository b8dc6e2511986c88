#!/usr/bin/env bash
# rxe test: a lossy link. netem on both veths (loss, reordering and
# duplication), then 64 MiB through each path, byte-verified:
#   zero-copy  zc_copy of a random file (zc_send_zc/zc_recv_zc), sha256 equal
#   stream     rxe_lib stream: 0 B .. 64 MiB at odd offsets, partial reads
#   block      zc_blk_target + blk_check io (the NVMe-oF host): write, read
#              back, verify; Writes in the capsule only (a late duplicate
#              RDMA READ request of the target would fail the host's QP on
#              rxe once the Write's export is revoked, docs/reliability.md)
# Windowed rendezvous is the part at risk: rxe 6.1 re-executes a window bind
# when it retransmits an older request (see bind_needs_idle_sq in src/ctx.c).
#
#   lossy.sh BINDIR [LOSS...]      (default losses: 1% 5%; BINDIR holds
#                                  zc_copy, rxe_lib, zc_blk_target, blk_check)
set -u
. "$(dirname "$0")/lib.sh"
bin=${1:?usage: lossy.sh BINDIR [LOSS...]}
shift
losses=("${@:-1%}")
[ $# -eq 0 ] && losses=(1% 5%)
work=$(mktemp -d "${TMPDIR:-/tmp}/lossy.XXXXXX")
port=$((17300 + $$ % 100 * 4))
nqn=nqn.2024-01.io.zcrdma:lossy

netem_off() { tc qdisc del dev va root 2>/dev/null; tc qdisc del dev vb root 2>/dev/null; }
trap 'netem_off; kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
modprobe sch_netem || { echo "FAIL: no netem"; exit 1; }
head -c $((64 << 20)) /dev/urandom >"$work/in"
sum_in=$(sha256sum <"$work/in" | cut -d' ' -f1)

ok() { echo "ok: $*"; }
# run NAME LIMIT CMD...: a foreground step with its own bound and timing
run() {
	local name=$1 limit=$2 t0=$SECONDS rc
	shift 2
	timeout "$limit" "$@" >"$work/$name.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then ok "$name ($((SECONDS - t0)) s)"; else bad "$name: exit $rc"; tail -n 5 "$work/$name.out"; fi
	return $rc
}

for loss in "${losses[@]}"; do
	for dev in va vb; do
		tc qdisc add dev $dev root netem delay 1ms loss "$loss" reorder 2% 50% duplicate 1% || { bad "netem $loss"; continue 2; }
	done
	echo "--- netem on va and vb: loss $loss, reorder 2%, duplicate 1%, delay 1 ms"

	port=$((port + 1))
	rm -f "$work/out"
	timeout 600 "$bin/zc_copy" -l "$ZC_ADDR_B:$port" -a 60 -t 60 -v "$work/out" >"$work/rcv.out" 2>&1 &
	rcv=$!
	wait_listening "$work/rcv.out" $rcv || bad "the zc_copy receiver did not start at $loss"
	run "zero-copy 64 MiB at $loss" 600 "$bin/zc_copy" -b "$ZC_ADDR_A" -t 60 "$work/in" "$ZC_ADDR_B:$port"
	wait $rcv || bad "zc_copy receiver at $loss: $(tail -n 1 "$work/rcv.out")"
	[ "$(sha256sum <"$work/out" 2>/dev/null | cut -d' ' -f1)" = "$sum_in" ] && ok "sha256 equal at $loss" ||
		bad "sha256 differs at $loss"

	run "stream 0 B .. 64 MiB at $loss" 600 "$bin/rxe_lib" stream

	port=$((port + 1))
	timeout 900 "$bin/zc_blk_target" --listen "$ZC_ADDR_B:$port" --memory 64M --nqn "$nqn" >"$work/tgt.out" 2>&1 &
	tgt=$!
	wait_listening "$work/tgt.out" $tgt || bad "the block target did not start at $loss"
	# Writes in the capsule only: rxe replays a duplicated RDMA READ request
	# against the current key, so a late duplicate of the target's READ of a
	# Write already completed (its export revoked) would fail the host's QP.
	run "block 64 MiB at $loss" 900 "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" "$nqn" 0 131072 7 icd
	kill $tgt 2>/dev/null
	wait $tgt 2>/dev/null
	netem_off
done
echo "lossy: $failed failed"
[ $failed -eq 0 ]
