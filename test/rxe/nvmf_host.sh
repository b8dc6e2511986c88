#!/usr/bin/env bash
# rxe test: Linux's own NVMe-oF RDMA host (nvme-rdma, nvme-cli) on zc_blk_target.
#   The target serves a 256 MiB file (the guest's /tmp) on $ZC_ADDR_A; the
#   kernel host attaches from $ZC_ADDR_B (--host-traddr):
#   1. nvme discover lists the subsystem (discovery controller, log page 70h)
#   2. nvme connect -> /dev/nvmeXnY of the file's size; nvme list, id-ctrl and
#      id-ns show what the target declared (serial, model, MDTS, CNTLID as
#      the target logged it, SGLS, IOCCSZ, NMIC, LBA size, namespace ids)
#   3. fio random writes, then reads, verify=crc32c: 4 KiB (in-capsule data)
#      and 128 KiB (keyed SGLs, RDMA READ), QD 16
#   4. mkfs.ext4, mount, a 64 MiB random file, sha256, umount
#   5. the target restarts: the host reconnects by itself ("Successfully
#      reconnected"), to a new controller id, and sees the same namespace
#      identifiers; mount, sha256 unchanged, umount, fsck.ext4 -fn clean
#   6. nvme disconnect: one controller disconnected, the target logs its end,
#      dmesg has no timeout, reset or error; the target exits 0 on SIGTERM
#
#   nvmf_host.sh BINDIR     (the directory holding zc_blk_target)
# ZC_NVMF_KEEP=DIR keeps the target's log and fio's output there.
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: nvmf_host.sh BINDIR}
[ "${ZC_TEST_FAMILY:-4}" = 4 ] || { echo "SKIPPED: IPv4 only"; exit 77; }
command -v nvme >/dev/null && command -v fio >/dev/null && command -v mkfs.ext4 >/dev/null ||
	{ echo "SKIPPED: nvme-cli, fio or e2fsprogs missing (scripts/install-deps)"; exit 77; }
port=$((4420 + ($$ % 40)))
nqn=nqn.2024-01.io.zcrdma:test-$$
mnt=/mnt
work=$(mktemp -d "${TMPDIR:-/tmp}/nvmf_host.XXXXXX")
logs=${ZC_NVMF_KEEP:-$work}
tlog=$logs/target.log
rm -f "$tlog"
tgt= dev= ctrl= watcher=
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt"
	[ -n "$ctrl" ] && timeout 30 nvme disconnect -n "$nqn" >/dev/null 2>&1
	[ -n "$tgt" ] && kill "$tgt" 2>/dev/null
	[ -n "$watcher" ] && kill "$watcher" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	# the target's requests in progress (SIGUSR1 to it, not to timeout(1)), then its log
	[ -n "$tgt" ] && pkill -USR1 -P "$tgt" -x zc_blk_target && wait_until 10 grep -q "state: pool" "$tlog"
	[ -f "$tlog" ] && show target.log "$tlog"
	echo "--- dmesg (nvme, last 30 lines):"
	dmesg | grep -i nvme | tail -n 30 | sed 's/^/    /'
	rxe_state
	exit 1
}

# The devices' view: every QP's state and PSNs, and the rxe counters (retries,
# sequence errors, RNR), to tell a QP that stopped from a peer that went quiet.
rxe_state() {
	local d
	echo "--- rdma res show qp:"
	rdma res show qp 2>&1 | sed 's/^/    /'
	for d in /sys/class/infiniband/*; do
		echo "--- ${d##*/} counters (non-zero):"
		grep -H . "$d"/ports/1/hw_counters/* 2>/dev/null | sed -n "s|^$d/ports/1/hw_counters/||p" |
			grep -v ':0$' | tr '\n' ' ' | fold -w 110 | sed 's/^/    /'
		echo
	done
}

# until CMD succeeds, at most SECONDS (the work it waits for takes what it takes).
wait_until() {
	local secs=$1 i
	shift
	for i in $(seq $((secs * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

count_ge() { # count_ge N CMD...: CMD prints a number >= N
	local n=$1
	shift
	[ "$("$@")" -ge "$n" ]
}

start_target() { # start_target N: the Nth start
	timeout 600 "$bin/zc_blk_target" --listen "$ZC_ADDR_A:$port" --file "$work/disk.img" --nqn "$nqn" \
		>>"$tlog" 2>&1 &
	tgt=$!
	wait_until 30 count_ge "$1" grep -c "listening on" "$tlog" || fail "the target did not start"
	echo "ok: target started: $(grep "listening on" "$tlog" | tail -n 1)"
}

stop_target() {
	local rc
	kill -TERM "$tgt"
	timeout 30 tail --pid="$tgt" -f /dev/null
	wait "$tgt"
	rc=$?
	tgt=
	[ $rc -eq 0 ] || fail "target exit status $rc after SIGTERM"
	echo "ok: target stopped"
}

# The controller of our subsystem, and its namespace's block device.
find_ctrl() {
	local c
	ctrl= dev=
	for c in /sys/class/nvme/nvme*; do
		[ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$nqn" ] && ctrl=${c##*/}
	done
	[ -n "$ctrl" ] || return 1
	dev=$(ls -d /sys/class/nvme/"$ctrl"/nvme*n1 /sys/class/nvme/"$ctrl"/nvme*c*n1 2>/dev/null | head -n 1)
	[ -n "$dev" ] || return 1
	dev=/dev/$(basename "$dev" | sed 's/c[0-9]*n/n/')
	[ -b "$dev" ]
}

field() { # field NAME: a field of the last nvme id-* output
	sed -n "s/^$1 *: *//p" "$work/id.out" | head -n 1
}

expect() { # expect WHAT GOT WANT
	[ "$2" = "$3" ] || fail "$1: $2, expected $3"
	echo "ok: $1 = $2"
}

ctrl_ids() { grep -o "controller [0-9]*: .* connected" "$tlog" | grep -v discovery | awk '{print $2}' | tr -d :; }

modprobe nvme-rdma || fail "modprobe nvme-rdma"
modprobe ext4 || fail "modprobe ext4"
truncate -s 256M "$work/disk.img"
head -c 64M /dev/urandom >"$work/data.bin"
want=$(sha256sum <"$work/data.bin" | cut -d' ' -f1)

# dmesg_clean FROM WHAT: no nvme errors in dmesg after line FROM.
dmesg_clean() {
	dmesg | tail -n +$(($1 + 1)) | grep -i nvme >"$work/dmesg.out"
	if grep -iE "timeout|error|bogus|failed|reset|reconnect" "$work/dmesg.out"; then
		fail "dmesg has nvme errors $2 (above)"
	fi
	echo "ok: dmesg clean $2:"
	sed 's/^/    /' "$work/dmesg.out"
}
dmesg_start=$(dmesg | wc -l)

start_target 1

# The host's first I/O timeout (a stalled queue): the target's state at that
# moment goes to its log (SIGUSR1), where fail() shows it.
(
	while sleep 1; do
		if dmesg | tail -n +$((dmesg_start + 1)) | grep -q "QID [0-9]* timeout"; then
			pkill -USR1 -P "$tgt" -x zc_blk_target
			break
		fi
	done
) &
watcher=$!

# 1. discovery
step "nvme discover" timeout 60 nvme discover -t rdma -a "$ZC_ADDR_A" -s "$port" --host-traddr "$ZC_ADDR_B"
grep -q "subnqn: *$nqn" "$work/step.out" || { cat "$work/step.out"; fail "nvme discover does not list $nqn"; }
grep -q "traddr: *$ZC_ADDR_A" "$work/step.out" && grep -q "trsvcid: *$port" "$work/step.out" &&
	grep -q "trtype: *rdma" "$work/step.out" || { cat "$work/step.out"; fail "the discovery entry's address"; }
echo "ok: the discovery log lists $nqn at rdma $ZC_ADDR_A:$port"

# 2. connect, and what the host sees
step "nvme connect" timeout 60 nvme connect -t rdma -a "$ZC_ADDR_A" -s "$port" -n "$nqn" \
	--host-traddr "$ZC_ADDR_B" --reconnect-delay 1 --ctrl-loss-tmo 120
wait_until 30 find_ctrl || fail "no block device for $nqn after nvme connect"
echo "ok: $ctrl -> $dev"
expect "size of $dev" "$(blockdev --getsize64 "$dev")" $((256 << 20))
nvme list >"$work/id.out" 2>&1
grep -q "$dev .*zcrdma zc_blk_target" "$work/id.out" || { cat "$work/id.out"; fail "nvme list does not show $dev"; }
echo "ok: nvme list: $(grep "$dev " "$work/id.out" | tr -s ' ')"
nvme id-ctrl "/dev/$ctrl" >"$work/id.out" 2>&1 || fail "nvme id-ctrl"
expect "id-ctrl mn" "$(field mn | sed 's/ *$//')" "zcrdma zc_blk_target"
expect "id-ctrl subnqn" "$(field subnqn)" "$nqn"
expect "id-ctrl mdts" "$(field mdts)" 5
expect "id-ctrl cntlid" "$(($(field cntlid)))" "$(ctrl_ids | tail -n 1)"
expect "id-ctrl sgls (keyed, offsets)" "$(( $(field sgls) & 0x100004 ))" $((0x100004))
expect "id-ctrl ioccsz" "$(field ioccsz)" 260
expect "id-ctrl kas" "$(field kas)" 10
expect "id-ctrl cntrltype" "$(field cntrltype)" 1
serial=$(field sn | sed 's/ *$//')
nvme id-ns "$dev" >"$work/id.out" 2>&1 || fail "nvme id-ns"
expect "id-ns nsze" "$(($(field nsze)))" $((256 << 11))
expect "id-ns nmic" "$(($(field nmic)))" 1
grep -q "lbaf  0 : ms:0   lbads:9 .*(in use)" "$work/id.out" || { cat "$work/id.out"; fail "id-ns LBA format 0"; }
nguid=$(field nguid)
eui64=$(field eui64)
[ -n "$nguid" ] && [ "$nguid" != 00000000000000000000000000000000 ] || fail "id-ns nguid '$nguid'"
echo "ok: id-ns nguid $nguid eui64 $eui64, serial $serial"

# 3. data, verified by fio
off=0
for bs in 4k 128k; do
	step "fio randwrite then verify, bs $bs" timeout 300 fio --name=verify-$bs --filename="$dev" --direct=1 \
		--ioengine=libaio --rw=randwrite --bs=$bs --iodepth=16 --size=64M --offset=${off}M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --randrepeat=0 --output="$logs/fio-$bs.out"
	grep -q "err= 0" "$logs/fio-$bs.out" || { cat "$logs/fio-$bs.out"; fail "fio bs $bs reported an error"; }
	off=$((off + 64))
done

# 4. a file system
step "mkfs.ext4" mkfs.ext4 -q -F "$dev"
step "mount" mount -t ext4 "$dev" "$mnt"
step "copy a 64 MiB random file" cp "$work/data.bin" "$mnt/data.bin"
step "umount" umount "$mnt"

dmesg_clean "$dmesg_start" "from discover to umount"

# 5. the target restarts; the host reconnects on its own
kill "$watcher" 2>/dev/null
watcher=
old=$(ctrl_ids | tail -n 1)
recon=$(dmesg | grep -c "Successfully reconnected")
stop_target
start_target 2
wait_until 120 count_ge $((recon + 1)) eval 'dmesg | grep -c "Successfully reconnected"' ||
	fail "the host did not reconnect after the target restarted"
echo "ok: $(dmesg | grep "Successfully reconnected" | tail -n 1 | sed 's/^\[[^]]*\] //')"
new=$(ctrl_ids | tail -n 1)
[ -n "$new" ] && [ "$new" != "$old" ] || fail "controller id after the restart: $new (before: $old)"
echo "ok: new controller id $new (was $old)"
wait_until 30 find_ctrl || fail "no block device after the reconnect"
nvme id-ns "$dev" >"$work/id.out" 2>&1 || fail "nvme id-ns after the restart"
expect "id-ns nguid after the restart" "$(field nguid)" "$nguid"
expect "id-ns eui64 after the restart" "$(field eui64)" "$eui64"
step "mount again" mount -t ext4 -o ro "$dev" "$mnt"
got=$(sha256sum <"$mnt/data.bin" | cut -d' ' -f1)
expect "sha256 after the target restart" "$got" "$want"
step "umount" umount "$mnt"
step "fsck.ext4 -fn" fsck.ext4 -fn "$dev"

# 6. an orderly disconnect
dmesg_start=$(dmesg | wc -l)
step "nvme disconnect" timeout 60 nvme disconnect -n "$nqn"
grep -q "disconnected 1 controller" "$work/step.out" || { cat "$work/step.out"; fail "nvme disconnect"; }
ctrl=
wait_until 30 grep -q "controller $new: gone" "$tlog" || fail "the target did not see controller $new go"
echo "ok: the target saw controller $new go"
dmesg_clean "$dmesg_start" "at the disconnect"
stop_target
echo "nvmf_host: passed"
