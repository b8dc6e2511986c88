#!/usr/bin/env bash
# rxe test: the user-space NVMe-oF RDMA host (examples/blk/blk_initiator.c,
# as zc_blk_bench and blk_check) against zc_blk_target and the kernel's
# nvmet-rdma. The host runs on $ZC_ADDR_A, the targets listen on $ZC_ADDR_B.
#   1. zc_blk_target --memory 64M: two blk_check io at once (two I/O queues
#      of QD 4 each, disjoint regions at odd LBAs, one naming the NQN, one
#      discovering it), then two new controllers verify each other's region;
#      blk_check errors (LBA Out of Range, beyond MDTS, then the controller
#      goes on); zc_blk_bench --verify: a sequential write, then random reads
#      checked byte for byte.
#   2. a host SIGKILLed mid-I/O (blk_check io loop, after a verified pass):
#      the target ends its controller and serves a new host that writes and
#      verifies.
#   3. the target SIGKILLed under zc_blk_bench (randwrite 64 KiB, QD 8, 2
#      queues) once the target has completed its commands: the bench exits 1
#      with the reason within ZC_DEATH_BOUND_S (default 10) seconds.
#   4. a --read-only target over a file: Write and Write Zeroes refused, Read works.
#   5. nvmet-rdma (configfs, a 64 MiB RAM disk, brd): blk_check io
#      (discovering the NQN), blk_check errors (any error status past the
#      end: nvmet leaves that check to its backend), zc_blk_bench --verify write
#      and randread. Skipped (said so) when nvmet-rdma is missing.
# Every target exits 0 on SIGTERM at the end; no sanitizer report anywhere.
#
#   nvmf_blkhost.sh BINDIR     (the directory holding zc_blk_target, zc_blk_bench, blk_check)
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: nvmf_blkhost.sh BINDIR}
[ "${ZC_TEST_FAMILY:-4}" = 4 ] || { echo "SKIPPED: IPv4 only"; exit 77; }
bound=${ZC_DEATH_BOUND_S:-10}
port=$((4500 + ($$ % 40) * 4))
nqn=nqn.2024-01.io.zcrdma:blkhost-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/nvmf_blkhost.XXXXXX")
cfs=/sys/kernel/config/nvmet
knqn=nqn.2024-01.io.zcrdma:nvmet-$$
kport=
tgt= ini=
cleanup() {
	for p in $tgt $ini; do kill -9 "$p" 2>/dev/null; done
	if [ -n "$kport" ]; then
		rm -f "$cfs/ports/$kport/subsystems/$knqn"
		rmdir "$cfs/ports/$kport" 2>/dev/null
		echo 0 >"$cfs/subsystems/$knqn/namespaces/1/enable" 2>/dev/null
		rmdir "$cfs/subsystems/$knqn/namespaces/1" "$cfs/subsystems/$knqn" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }

# start_target LOG ARGS...: zc_blk_target in the background (not under
# timeout(1): a SIGKILL must reach the target itself); waits until it listens.
start_target() {
	local log=$1
	shift
	"$bin/zc_blk_target" "$@" >"$log" 2>&1 &
	tgt=$!
	wait_listening "$log" "$tgt" || { bad "the target did not start: $*"; show target "$log"; exit 1; }
}

stop_target() { # stop_target LOG
	local rc
	if ! kill -0 "$tgt" 2>/dev/null; then
		bad "the target died"; show target "$1"; tgt=; return
	fi
	kill -TERM "$tgt"
	wait "$tgt"
	rc=$?
	tgt=
	[ $rc -eq 0 ] && sanitizer_clean "$1" || { bad "target exit status $rc after SIGTERM"; show target "$1"; }
}

# check NAME CMD...: one run that must exit 0 with no sanitizer report.
check() {
	local name=$1 rc
	shift
	runs=$((runs + 1))
	timeout 120 "$@" >"$work/$name.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && sanitizer_clean "$work/$name.out"; then
		echo "ok: $name ($(grep -c '^ok:' "$work/$name.out") checks)"
	else
		bad "$name: exit status $rc"
		show "$name" "$work/$name.out"
	fi
}

# pair ADDR:PORT NQN: two hosts at once on disjoint regions (one discovers
# the NQN), then two new ones verify each other's.
pair() {
	local t=$1 n=$2 a b ra rb
	runs=$((runs + 1))
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$t" "$n" 1 3000 11 >"$work/io1.out" 2>&1 &
	a=$!
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$t" - 4099 3000 12 >"$work/io2.out" 2>&1 &
	b=$!
	wait $a; ra=$?
	wait $b; rb=$?
	if [ $ra -eq 0 ] && [ $rb -eq 0 ] && sanitizer_clean "$work/io1.out" "$work/io2.out"; then
		echo "ok: two hosts at once wrote and verified their regions:"
		sed 's/^/    /' "$work/io2.out"
	else
		bad "two hosts at once: exit status $ra / $rb"
		show "host 1" "$work/io1.out"; show "host 2" "$work/io2.out"
	fi
	runs=$((runs + 1))
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$t" "$n" 4099 3000 12 verify >"$work/v1.out" 2>&1 &
	a=$!
	timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$t" "$n" 1 3000 11 verify >"$work/v2.out" 2>&1 &
	b=$!
	wait $a; ra=$?
	wait $b; rb=$?
	if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
		echo "ok: two new controllers verified each other's regions"
	else
		bad "cross verification: exit status $ra / $rb"
		show "verifier 1" "$work/v1.out"; show "verifier 2" "$work/v2.out"
	fi
}

# bench_verify ADDR:PORT NQN: a --verify sequential write of the first 1 MiB (covered many times over in 1 s), then random reads checked.
bench_verify() {
	local rw
	for rw in write randread; do
		check "bench-$rw" "$bin/zc_blk_bench" -b "$ZC_ADDR_A" "$1" --nqn "$2" --rw $rw --bs 16k --qd 8 \
			--queues 2 --size 1M --time 1 --verify --json "$work/bench.json"
		grep -q '"iops"' "$work/bench.json" && echo "    $(cat "$work/bench-$rw.out")"
	done
}

# ---- 1. zc_blk_target: two hosts, errors, the bench -----------------------------
log=$work/target.log
start_target "$log" --listen "$ZC_ADDR_B:$port" --memory 64M --nqn "$nqn"
pair "$ZC_ADDR_B:$port" "$nqn"
check errors "$bin/blk_check" errors "$ZC_ADDR_A" "$ZC_ADDR_B:$port" "$nqn"
sed -n 's/^ok: /    /p' "$work/errors.out"
bench_verify "$ZC_ADDR_B:$port" "$nqn"

# ---- 2. a host killed mid-I/O ---------------------------------------------------
runs=$((runs + 1))
gone=$(grep -c ": gone" "$log")
"$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" "$nqn" 8192 2048 21 loop >"$work/loop.out" 2>&1 &
ini=$!
if wait_for "$work/loop.out" "^ok: pass 1" "$ini" 60; then
	t0=$(now)
	kill -9 "$ini"
	wait "$ini" 2>/dev/null
	rc=$?
	ini=
	[ $rc -eq 137 ] || bad "the looping host had ended before the kill (exit $rc)"
	for i in $(seq $((bound * 50))); do
		[ "$(grep -c ": gone" "$log")" -gt "$gone" ] && break
		sleep 0.02
	done
	if [ "$(grep -c ": gone" "$log")" -gt "$gone" ]; then
		echo "ok: a host killed mid-I/O: after $(elapsed "$t0" "$(now)") s the target logged:"
		tail -n +1 "$log" | grep -E "blk-check|: gone|disconnected|dropped" | tail -n 4 | sed 's/^/    /'
	else
		bad "the target did not end the killed host's controller within $bound s"; show target "$log"
	fi
else
	bad "the looping host made no verified pass"; show host "$work/loop.out"
fi
check after-kill "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" "$nqn" 12288 1024 22
stop_target "$log"

# ---- 3. the target killed under the bench ----------------------------------------
runs=$((runs + 1))
port=$((port + 1))
log=$work/target2.log
start_target "$log" --listen "$ZC_ADDR_B:$port" --memory 32M --nqn "$nqn"
"$bin/zc_blk_bench" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$port" --nqn "$nqn" --rw randwrite --bs 64k --qd 8 --queues 2 \
	--size 16M --time 120 >"$work/victim.out" 2>&1 &
ini=$!
progress=
for i in $(seq 300); do
	kill -USR1 "$tgt" 2>/dev/null
	sleep 0.2
	grep -qE "queue [12] from .*LIVE, .* [1-9][0-9]* completed" "$log" && { progress=1; break; }
	kill -0 "$ini" 2>/dev/null || break
done
if [ -n "$progress" ]; then
	t0=$(now)
	kill -9 "$tgt"
	wait "$tgt" 2>/dev/null
	tgt=
	for i in $(seq $((bound * 50))); do
		kill -0 "$ini" 2>/dev/null || break
		sleep 0.02
	done
	t1=$(now)
	if kill -0 "$ini" 2>/dev/null; then
		bad "the bench still runs $bound s after the target was killed"; kill -9 "$ini"
	fi
	wait "$ini"
	rc=$?
	ini=
	if [ $rc -eq 1 ] && sanitizer_clean "$work/victim.out"; then
		echo "ok: the target killed under the bench: it exited 1 after $(elapsed "$t0" "$t1") s:" \
			"$(head -n1 "$work/victim.out")"
	else
		bad "the target killed under the bench: exit $rc (expected 1)"; show bench "$work/victim.out"
	fi
else
	bad "the bench made no progress"; show bench "$work/victim.out"; show target "$log"
fi
[ -n "$tgt" ] && stop_target "$log"

# ---- 4. read-only -----------------------------------------------------------------
port=$((port + 1))
log=$work/target3.log
truncate -s 8M "$work/ro.img"
start_target "$log" --listen "$ZC_ADDR_B:$port" --file "$work/ro.img" --block-size 4096 --read-only --nqn "$nqn"
check readonly "$bin/blk_check" readonly "$ZC_ADDR_A" "$ZC_ADDR_B:$port" "$nqn"
sed -n 's/^ok: /    /p' "$work/readonly.out"
stop_target "$log"

# ---- 5. the kernel's nvmet-rdma -------------------------------------------------
nvmet() {
	local S=$cfs/subsystems/$knqn P
	modprobe -a nvmet nvmet-rdma 2>/dev/null || return 1
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config || return 1
	[ -d "$cfs" ] || return 1
	kport=$((port % 60000 + 100))
	P=$cfs/ports/$kport
	# A RAM disk, not a file on tmpfs: tmpfs has no FALLOC_FL_ZERO_RANGE, so
	# nvmet's file backend would fail every Write Zeroes.
	[ -b /dev/ram0 ] || modprobe brd rd_nr=1 rd_size=65536 || return 1
	mkdir "$S" && echo 1 >"$S/attr_allow_any_host" && mkdir "$S/namespaces/1" &&
		echo -n /dev/ram0 >"$S/namespaces/1/device_path" &&
		echo 1 >"$S/namespaces/1/enable" && mkdir "$P" && echo rdma >"$P/addr_trtype" &&
		echo ipv4 >"$P/addr_adrfam" && echo "$ZC_ADDR_B" >"$P/addr_traddr" &&
		echo $((port + 1)) >"$P/addr_trsvcid" && ln -s "$S" "$P/subsystems/$knqn"
}
if nvmet 2>"$work/nvmet.err"; then
	kt=$ZC_ADDR_B:$((port + 1))
	echo "ok: nvmet-rdma serves $knqn on $kt"
	pair "$kt" "$knqn"
	# nvmet-rdma's block device backend fails I/O past the end with Internal Error, not LBA Out of Range.
	check nvmet-errors "$bin/blk_check" errors "$ZC_ADDR_A" "$kt" "$knqn" lenient
	sed -n 's/^ok: /    /p' "$work/nvmet-errors.out"
	bench_verify "$kt" "$knqn"
else
	echo "SKIPPED (part 5): no nvmet-rdma: $(cat "$work/nvmet.err")"
fi

echo "nvmf_blkhost: $((runs - failed)) of $runs runs passed"
[ $failed -eq 0 ]
