#!/usr/bin/env bash
# rxe test: SIGKILL in the block example (examples/blk), both roles and both
# directions (randwrite: the target RDMA-READs from the initiator; randread:
# it RDMA-WRITEs into it).
#   1. zc_blk_legacy_target is killed while zc_blk_bench runs: the bench must exit 1
#      (its documented failure status, no sanitizer report) with a reason
#      within ZC_DEATH_BOUND_S seconds (default 5) of the kill; a new target
#      then serves a new bench run.
#   2. zc_blk_bench, then a blk_check initiator, is killed while the target
#      serves it: the target must log the connection's failure within the
#      bound, keep running, and serve a new initiator that writes, reads back
#      and verifies its region (blk_check io); it exits 0 on SIGTERM at the end.
# Every kill comes after the target has answered commands of the victim's
# connection (asked with SIGUSR1), and while work provably remains: the
# benches run for 120 s, blk_check loops until killed; the victim must then
# die of the SIGKILL (status 137), not of its own accord. No initiator may
# reconnect. The measured times are printed.
#
#   death_blk.sh BINDIR     (the directory holding zc_blk_legacy_target, zc_blk_bench, blk_check)
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: death_blk.sh BINDIR}
bound=${ZC_DEATH_BOUND_S:-5}
port=$((7760 + ($$ % 40) * 4))
work=$(mktemp -d "${TMPDIR:-/tmp}/death_blk.XXXXXX")
tgt= ini=
trap 'for p in $tgt $ini; do kill -9 "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
now() { date +%s.%N; }
elapsed() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }
within() { awk "BEGIN { exit !($1 < $bound) }"; }

# wait_answered LOG: until the target ($tgt, logging to LOG) reports a live
# connection with answered commands in a SIGUSR1 dump written after this call:
# progress observed, not assumed from a sleep.
wait_answered() {
	local from i
	from=$(($(wc -l <"$1") + 1))
	for i in $(seq 300); do
		kill -USR1 "$tgt" 2>/dev/null || return 1
		sleep 0.2
		tail -n +"$from" "$1" | grep -qE 'ACTIVE, .*, [1-9][0-9]* answered' && return 0
	done
	return 1
}

# killed NAME PID: SIGKILLs a still running PID and reaps it; fails unless it
# died of that signal (it had not finished or failed on its own before).
killed() {
	local rc
	kill -9 "$2"
	wait "$2" 2>/dev/null
	rc=$?
	[ $rc -eq 137 ] || bad "$1 had ended before the kill (exit $rc)"
}

# Not under timeout(1): the kill must reach the target itself.
start_target() { # start_target LOG PORT
	"$bin/zc_blk_legacy_target" --listen "$ZC_ADDR_B:$2" --memory 32M --queue-depth 16 --pool 16 >"$1" 2>&1 &
	tgt=$!
	wait_for "$1" "listening on" "$tgt" 60 || { bad "the target did not start"; show target "$1"; exit 1; }
}

bench() { # bench PORT RW SECONDS OUT: in the background, pid in $ini
	"$bin/zc_blk_bench" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$1" --rw "$2" --bs 64k --qd 8 --time "$3" --size 16M \
		>"$4" 2>&1 &
	ini=$!
}

# 1. The target dies under a running benchmark.
target_killed() {
	local rw=$1 t0 t1 rc
	runs=$((runs + 1))
	port=$((port + 1))
	start_target "$work/t1.log" $port
	bench $port "$rw" 120 "$work/b1.out"
	wait_answered "$work/t1.log" || { bad "the bench made no progress"; show target "$work/t1.log"; }
	t0=$(now)
	killed target "$tgt"
	tgt=
	wait "$ini"
	rc=$?
	t1=$(now)
	ini=
	if [ $rc -eq 1 ] && within "$(elapsed "$t0" "$t1")" && sanitizer_clean "$work/b1.out"; then
		echo "ok: target killed under a $rw bench: the bench exited $rc after $(elapsed "$t0" "$t1") s:" \
			"$(grep -m1 zc_blk_bench "$work/b1.out")"
	else
		bad "target killed under a $rw bench: bench exit $rc (expected 1) after $(elapsed "$t0" "$t1") s (bound $bound s)"
		show bench "$work/b1.out"
	fi
	# A new target, a new bench.
	runs=$((runs + 1))
	port=$((port + 1))
	start_target "$work/t2.log" $port
	timeout 60 "$bin/zc_blk_bench" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$port" --rw "$rw" --bs 64k --qd 8 --time 1 \
		--size 16M >"$work/b2.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && no_reconnect "$work/b2.out"; then
		echo "ok: a new target served a new bench: $(head -n1 "$work/b2.out")"
	else
		bad "new bench after the target's death: exit $rc"; show bench "$work/b2.out"
	fi
	kill -TERM "$tgt"; wait "$tgt"; tgt=
}

# 2. An initiator dies while the target serves it: the target goes on.
initiator_killed() { # initiator_killed WHAT
	local what=$1 t0 t1 n
	runs=$((runs + 1))
	n=$(grep -c "failed after" "$work/t3.log")
	if [ "$what" = blk_check ]; then
		"$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" 0 2048 7 loop >"$work/i.out" 2>&1 &
		ini=$!
	else
		bench $port "$what" 120 "$work/i.out"
	fi
	wait_answered "$work/t3.log" || { bad "the $what initiator made no progress"; show initiator "$work/i.out"; }
	t0=$(now)
	killed "the $what initiator" "$ini"
	ini=
	while [ "$(grep -c "failed after" "$work/t3.log")" -le "$n" ] && within "$(elapsed "$t0" "$(now)")"; do
		sleep 0.02
	done
	t1=$(now)
	if [ "$(grep -c "failed after" "$work/t3.log")" -gt "$n" ] && kill -0 "$tgt" 2>/dev/null; then
		echo "ok: $what initiator killed: the target noticed after $(elapsed "$t0" "$t1") s:" \
			"$(grep "failed after" "$work/t3.log" | tail -n1)"
	else
		bad "$what initiator killed: the target did not report the failure within $bound s"
		show target "$work/t3.log"; show initiator "$work/i.out"
	fi
	runs=$((runs + 1))
	if timeout 120 "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" 32768 4096 $((runs)) >"$work/v.out" 2>&1 &&
		sanitizer_clean "$work/v.out"; then
		echo "ok: then a new initiator wrote and verified its region"
	else
		bad "the target did not serve a new initiator after the $what initiator was killed"
		show check "$work/v.out"; show target "$work/t3.log"
	fi
}

target_killed randwrite
target_killed randread

port=$((port + 1))
start_target "$work/t3.log" $port
initiator_killed randwrite
initiator_killed randread
initiator_killed blk_check
runs=$((runs + 1))
kill -TERM "$tgt"
wait "$tgt"
rc=$?
tgt=
if [ $rc -eq 0 ]; then
	echo "ok: the target exited 0 on SIGTERM after three killed initiators"
else
	bad "target exit status $rc after SIGTERM"; show target "$work/t3.log"
fi

echo "death_blk: $((runs - failed)) of $runs runs passed"
[ $failed -eq 0 ]
