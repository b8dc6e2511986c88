#!/usr/bin/env bash
# rxe test: a misbehaving NVMe-oF host is disconnected alone.
#   zc_blk_target (--memory 128M) on $ZC_ADDR_A. Linux's host connects from
#   $ZC_ADDR_B and runs fio (random writes, then reads, verify=crc32c) while
#   nvmf_rawhost (zcrdma raw mode, also from $ZC_ADDR_B) sends rejected
#   connection requests, bad commands, falls silent past its keep-alive
#   timeout and sends a 10-byte capsule (see nvmf_rawhost.c). Both must
#   pass; the target must log the keep-alive timeout and the transport
#   error; the kernel host's dmesg must show no timeout, reset or error.
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
tgt= connected=
cleanup() {
	[ -n "$connected" ] && timeout 30 nvme disconnect -n "$nqn" >/dev/null 2>&1
	[ -n "$tgt" ] && kill "$tgt" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	[ -n "$tgt" ] && pkill -USR1 -P "$tgt" -x zc_blk_target && wait_for "$tlog" "state: pool" "$tgt" 10
	for f in target.log rawhost.out fio.out; do
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

timeout 400 fio --name=bystander --filename="$dev" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
	--iodepth=8 --size=96M --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 \
	--output="$work/fio.out" &
fio_pid=$!
timeout 120 "$bin/nvmf_rawhost" "$ZC_ADDR_A" "$port" "$nqn" >"$work/rawhost.out" 2>&1
raw_rc=$?
sed 's/^/    /' "$work/rawhost.out"
[ $raw_rc -eq 0 ] || fail "nvmf_rawhost exit status $raw_rc"
kill -0 "$fio_pid" 2>/dev/null && echo "ok: fio still running after the misbehaving host was done"
wait "$fio_pid" || fail "fio failed"
grep -q "err= 0" "$work/fio.out" || fail "fio reported an error"
echo "ok: fio (the kernel host) wrote and verified 96 MiB meanwhile"
grep -q "keep-alive timeout" "$tlog" || fail "the target did not log the keep-alive timeout"
grep -q "a capsule shorter than an SQE" "$tlog" || fail "the target did not log the short capsule"
echo "ok: target: $(grep "keep-alive timeout:" "$tlog")"
echo "ok: target: $(grep "shorter than an SQE" "$tlog")"
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
