#!/usr/bin/env bash
# rxe test: a misbehaving NVMe-oF host, and one killed mid-I/O, are
# disconnected alone while another host keeps working.
#   zc_blk_target (--memory 128M) on $ZC_ADDR_A. Linux's host connects from
#   $ZC_ADDR_B and runs fio passes (random writes, then reads,
#   verify=crc32c, LBAs below 32 MiB) throughout, while nvmf_rawhost
#   (zcrdma raw mode, also from $ZC_ADDR_B, other host NQNs):
#   1. sends rejected connection requests, bad commands, falls silent past
#      its keep-alive timeout and sends a 10-byte capsule (see
#      nvmf_rawhost.c); the target must log the keep-alive timeout and the
#      transport error;
#   2. as a second, well-behaved host (--io: writes read back and verified
#      at 96 MiB), ends with commands outstanding at the target (its state
#      dump shows them in flight) and is killed (SIGKILL); the target must
#      free that controller and its queues, and fio must finish another
#      verified pass after that.
#   The kernel host's dmesg must show no timeout, reset or error.
#
#   nvmf_hostile.sh BINDIR     (the directory holding zc_blk_target and nvmf_rawhost)
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: nvmf_hostile.sh BINDIR}
[ "${ZC_TEST_FAMILY:-4}" = 4 ] || { echo "SKIPPED: IPv4 only"; exit 77; }
command -v nvme >/dev/null && command -v fio >/dev/null ||
	{ echo "SKIPPED: nvme-cli or fio missing (scripts/install-deps)"; exit 77; }
port=$((4460 + ($$ % 40)))
nqn=nqn.2024-01.io.zcrdma:hostile-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/nvmf_hostile.XXXXXX")
tlog=$work/target.log
tgt= connected= io_pid= fio_pid=
cleanup() {
	[ -n "$connected" ] && timeout 30 nvme disconnect -n "$nqn" >/dev/null 2>&1
	[ -n "$tgt" ] && kill "$tgt" 2>/dev/null
	[ -n "$io_pid" ] && kill -KILL "$io_pid" 2>/dev/null
	[ -n "$fio_pid" ] && touch "$work/stop" && wait "$fio_pid"
	rm -rf "$work"
}
trap cleanup EXIT

# wait_until SECONDS EXPR: until the shell expression EXPR holds, at most SECONDS.
wait_until() {
	local i
	for i in $(seq $(($1 * 10))); do
		eval "$2" && return 0
		sleep 0.1
	done
	return 1
}

fail() {
	echo "FAIL: $*"
	[ -n "$tgt" ] && pkill -USR1 -P "$tgt" -x zc_blk_target && wait_for "$tlog" "state: pool" "$tgt" 10
	for f in target.log rawhost.out iohost.out fio.out; do
		[ -f "$work/$f" ] && show "$f" "$work/$f"
	done
	echo "--- dmesg (nvme, last 30 lines):"
	dmesg | grep -i nvme | tail -n 30 | sed 's/^/    /'
	exit 1
}

modprobe nvme-rdma || fail "modprobe nvme-rdma"
timeout 500 "$bin/zc_blk_target" --listen "$ZC_ADDR_A:$port" --memory 128M --nqn "$nqn" >"$tlog" 2>&1 &
tgt=$!
wait_listening "$tlog" "$tgt" || fail "the target did not start"
dmesg_start=$(dmesg | wc -l)
timeout 60 nvme connect -t rdma -a "$ZC_ADDR_A" -s "$port" -n "$nqn" --host-traddr "$ZC_ADDR_B" >"$work/connect.out" 2>&1 ||
	{ cat "$work/connect.out"; fail "nvme connect"; }
connected=1
dev=
for i in $(seq 300); do
	for c in /sys/class/nvme/nvme*; do
		[ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$nqn" ] || continue
		d=$(ls -d "$c"/nvme*n1 2>/dev/null | head -n 1)
		[ -n "$d" ] && dev=/dev/$(basename "$d" | sed 's/c[0-9]*n/n/')
	done
	[ -n "$dev" ] && [ -b "$dev" ] && break
	sleep 0.1
done
[ -b "$dev" ] || fail "no block device for $nqn"
echo "ok: the kernel host attached $dev"

# The kernel host: verified fio passes until told to stop; $work/passes counts them.
echo 0 >"$work/passes"
(
	n=0
	while [ ! -e "$work/stop" ]; do
		timeout 300 fio --name=bystander --filename="$dev" --direct=1 --ioengine=libaio --rw=randwrite \
			--bs=4k --iodepth=8 --size=32M --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --randrepeat=0 \
			--output="$work/fio.out" && grep -q "err= 0" "$work/fio.out" || exit 1
		n=$((n + 1))
		echo $n >"$work/passes"
	done
) &
fio_pid=$!
passes() { cat "$work/passes"; }

# 1. a misbehaving host
timeout 120 "$bin/nvmf_rawhost" "$ZC_ADDR_A" "$port" "$nqn" >"$work/rawhost.out" 2>&1
raw_rc=$?
sed 's/^/    /' "$work/rawhost.out"
[ $raw_rc -eq 0 ] || fail "nvmf_rawhost exit status $raw_rc"
grep -q "keep-alive timeout" "$tlog" || fail "the target did not log the keep-alive timeout"
grep -q "a capsule shorter than an SQE" "$tlog" || fail "the target did not log the short capsule"
echo "ok: target: $(grep "keep-alive timeout:" "$tlog")"
echo "ok: target: $(grep "shorter than an SQE" "$tlog")"
kill -0 "$fio_pid" 2>/dev/null || fail "fio (the kernel host) stopped"

# 2. a host killed with commands outstanding
# (not under timeout(1): the KILL must reach the host itself; cleanup() ends it)
"$bin/nvmf_rawhost" --io "$ZC_ADDR_A" "$port" "$nqn" $((96 << 11)) >"$work/iohost.out" 2>&1 &
io_pid=$!
wait_for "$work/iohost.out" "^holding" "$io_pid" 120 || { show iohost.out "$work/iohost.out"; fail "the I/O host"; }
sed 's/^/    /' "$work/iohost.out"
ioc=$(sed -n 's/.*controller \([0-9]*\): .*rawhost-io connected.*/\1/p' "$tlog")
[ -n "$ioc" ] || fail "the target did not log the I/O host's controller"
# Its queues in the target's state dump, and their requests with operations in flight.
marks=$(grep -c "state: pool" "$tlog")
pkill -USR1 -P "$tgt" -x zc_blk_target
wait_until 10 '[ "$(grep -c "state: pool" "$tlog")" -gt "$marks" ]' || fail "no state dump"
awk -v m="$marks" '/state: pool/ { d++ } d > m' "$tlog" >"$work/dump"
ioqs=$(sed -n "s/.* queue \([01] from [0-9.:]*\): controller $ioc, LIVE.*/\1/p" "$work/dump")
held=$(awk -v c="$ioc" '/ queue / { on = ($0 ~ "controller " c ",") } on && / in flight/ && !/, 0 in flight/ { n++ }
	END { print n + 0 }' "$work/dump")
[ "$(echo "$ioqs" | wc -l)" -eq 2 ] && [ "$held" -ge 1 ] ||
	{ show dump "$work/dump"; fail "controller $ioc: queues '$ioqs', $held requests in flight at the target"; }
echo "ok: controller $ioc (the I/O host) has $held requests in flight at the target:"
grep "controller $ioc," -A "$held" "$work/dump" | sed 's/^/    /'
p0=$(passes)
kill -KILL "$io_pid"
wait "$io_pid" 2>/dev/null
echo "ok: the I/O host killed (fio passes so far: $p0)"
wait_for "$tlog" "controller $ioc: gone" "$tgt" 60 || fail "the target did not end controller $ioc"
echo "ok: target: $(grep "controller $ioc: gone" "$tlog")"
while read -r q; do
	wait_for "$tlog" "$q: freed" "$tgt" 60 || fail "the target did not free $q"
	echo "ok: target: $(grep "$q: freed" "$tlog")"
done <<<"$ioqs"
p1=$(passes)
wait_until 300 '[ "$(passes)" -gt "$p1" ] || ! kill -0 $fio_pid 2>/dev/null'
[ "$(passes)" -gt "$p1" ] || fail "fio (the kernel host) did not finish a verified pass after the kill"
touch "$work/stop"
wait "$fio_pid" || { show fio.out "$work/fio.out"; fail "fio failed"; }
echo "ok: fio (the kernel host) finished $(passes) verified 32 MiB passes, $(( $(passes) - p1 )) after controller $ioc went"
dmesg | tail -n +$((dmesg_start + 1)) | grep -i nvme >"$work/dmesg.out"
grep -iE "timeout|error|bogus|failed|reset|reconnect" "$work/dmesg.out" && fail "the kernel host saw errors"
echo "ok: the kernel host's dmesg is clean:"
sed 's/^/    /' "$work/dmesg.out"
timeout 60 nvme disconnect -n "$nqn" >"$work/disc.out" 2>&1 || fail "nvme disconnect"
connected=
kill -TERM "$tgt"
wait "$tgt" || fail "target exit status $? after SIGTERM"
tgt=
echo "nvmf_hostile: passed"
