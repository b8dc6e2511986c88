#!/usr/bin/env bash
# Guest half of bench/blk-compare: runs inside the rxe guest (scripts/rxe-guest).
#
#   guest.sh RAWDIR
#
# Sets up every block system over rxe0/rxe1 (or the veth, for nbd-server) at
# once, each on its own zero-filled file of ZC_BLK_SIZE_MB on the guest's
# tmpfs, checks each device with a write/read-back, then runs the fio jobs
# with systems interleaved (job by job, the order rotated every job and rep),
# zc_blk_bench (randread QD1/QD32, randwrite QD32) against both NVMe-oF
# targets and the ib_read_bw 4 KiB anchor in every rep, and
# one CPU profile (perf) of 4 KiB randread QD32 per RDMA system. Writes raw
# results into RAWDIR (fio JSON, logs, CPU accounting, env.txt, status-*);
# bench/blk-lib/report.py turns them into tables. A system that fails to set
# up is recorded as missing (status-SYS) and skipped; nothing here is fatal.
#
# Settings (environment): ZC_BLK_TIME, ZC_BLK_RAMP (s per fio job),
# ZC_BLK_REPS, ZC_BLK_SIZE_MB, ZC_BLK_SYSTEMS (subset of "zc nvmf iser nbd"),
# ZC_BLK_PROFILE (1/0), ZC_BLK_ACCEL (the host tells us).
set -u
raw=${1:?usage: guest.sh RAWDIR}
mkdir -p "$raw"
T=${ZC_BLK_TIME:-10} RAMP=${ZC_BLK_RAMP:-2} REPS=${ZC_BLK_REPS:-3} SIZE=${ZC_BLK_SIZE_MB:-256}
SYSTEMS=(${ZC_BLK_SYSTEMS:-zc nvmf iser nbd})
PROFILE=${ZC_BLK_PROFILE:-1}
A=$ZC_ADDR_A B=$ZC_ADDR_B
bin=$(cd "$(dirname "$0")/../.." && pwd)/build/bin
[ -n "${ZC_BLK_BINDIR:-}" ] && bin=$ZC_BLK_BINDIR
work=/tmp/blk-compare
mkdir -p "$work"
ZC_PORT=4421 ZNQN=nqn.2024-01.io.zcrdma:blkcmp-zc NQN=nqn.2024-01.io.zcrdma:blkcmp IQN=iqn.2024-01.io.zcrdma:blkcmp
# job name, fio rw, bs, iodepth
JOBS=("rr4k-qd1 randread 4k 1" "rr4k-qd32 randread 4k 32" "rw4k-qd1 randwrite 4k 1"
	"rw4k-qd32 randwrite 4k 32" "sr128k-qd8 read 128k 8" "sw128k-qd8 write 128k 8")

log() { echo "[blk-compare $(date +%H:%M:%S)] $*"; }
declare -A DEV PIDS
missing() { # missing SYS REASON
	log "$1: MISSING: $2"
	echo "missing: $2" >"$raw/status-$1"
	DEV[$1]=
}
child() { # child PID: the process `timeout` runs (signals and CPU time go to it)
	local c
	for _ in $(seq 50); do
		c=$(pgrep -P "$1" | head -n1)
		[ -n "$c" ] && { echo "$c"; return; }
		sleep 0.1
	done
	echo "$1"
}
wait_for() { # wait_for SECONDS CMD...: polls CMD every 0.2 s
	local i
	for i in $(seq $(($1 * 5))); do
		"${@:2}" && return 0
		sleep 0.2
	done
	return 1
}

# ---- environment -------------------------------------------------------
{
	echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel=$(uname -r)"
	echo "accel=${ZC_BLK_ACCEL:-unknown}"
	echo "vcpus=$(nproc)"
	echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "mem_mib=$(($(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) / 1024))"
	echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	echo "fio=$(fio --version 2>/dev/null)"
	echo "time_s=$T ramp_s=$RAMP reps=$REPS size_mib=$SIZE"
	echo "backing=zero-filled ${SIZE} MiB file per system on the guest's /tmp (tmpfs)"
	echo "rxe_gid_a=$ZC_GID_A rxe_gid_b=$ZC_GID_B"
} >"$raw/env.txt"

modprobe -a nbd nvmet nvmet-rdma nvme-rdma ib_iser sd_mod 2>"$raw/modprobe.err"
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config

# ---- set-up, one function per system ----------------------------------
mkimg() { dd if=/dev/zero of="$work/$1.img" bs=1M count="$SIZE" status=none; }

setup_zc() {
	mkimg zc || { missing zc "cannot create the backing file"; return; }
	command -v nvme >/dev/null || { missing zc "nvme-cli is not installed"; return; }
	timeout 7200 "$bin/zc_blk_target" --listen "$B:$ZC_PORT" --file "$work/zc.img" --nqn "$ZNQN" \
		>"$raw/zc_target.log" 2>&1 &
	PIDS[zc_target]=$!
	PIDS[zc_target_c]=$(child $!)
	wait_for 30 grep -q "listening on" "$raw/zc_target.log" || { missing zc "zc_blk_target did not start"; return; }
	timeout 60 nvme connect -t rdma -a "$B" -s "$ZC_PORT" -n "$ZNQN" --host-traddr "$A" >"$raw/zc_setup.log" 2>&1 ||
		{ missing zc "nvme connect failed: $(tail -n1 "$raw/zc_setup.log")"; return; }
	wait_for 20 nvmf_dev "$ZNQN" >/dev/null || { missing zc "no namespace block device after nvme connect"; return; }
	DEV[zc]=/dev/$(nvmf_dev "$ZNQN")
	wait_for 20 test -b "${DEV[zc]}" || { missing zc "${DEV[zc]} did not appear"; return; }
}

nvmf_dev() { # nvmf_dev NQN: the namespace's block device (its device is the controller or, multipath, the subsystem)
	local b
	for b in /sys/block/nvme*; do
		[[ ${b##*/} =~ ^nvme[0-9]+n[0-9]+$ ]] || continue # not the hidden per-path nvmeXcYnZ
		[ "$(cat "$b/device/subsysnqn" 2>/dev/null)" = "$1" ] && { echo "${b##*/}"; return 0; }
	done
	return 1
}

setup_nvmf() {
	local S=/sys/kernel/config/nvmet/subsystems/$NQN P=/sys/kernel/config/nvmet/ports/1 d
	command -v nvme >/dev/null || { missing nvmf "nvme-cli is not installed"; return; }
	[ -d /sys/kernel/config/nvmet ] || { missing nvmf "no nvmet in configfs (modprobe nvmet-rdma failed)"; return; }
	mkimg nvmf || { missing nvmf "cannot create the backing file"; return; }
	{
		mkdir "$S" && echo 1 >"$S/attr_allow_any_host" && mkdir "$S/namespaces/1" &&
			echo -n "$work/nvmf.img" >"$S/namespaces/1/device_path" &&
			echo 1 >"$S/namespaces/1/buffered_io" && echo 1 >"$S/namespaces/1/enable" &&
			mkdir "$P" && echo rdma >"$P/addr_trtype" && echo ipv4 >"$P/addr_adrfam" &&
			echo "$B" >"$P/addr_traddr" && echo 4420 >"$P/addr_trsvcid" && ln -s "$S" "$P/subsystems/$NQN"
	} 2>"$raw/nvmf_setup.log" || { missing nvmf "nvmet configfs set-up failed: $(tail -n1 "$raw/nvmf_setup.log")"; return; }
	timeout 60 nvme connect -t rdma -a "$B" -s 4420 -n "$NQN" --host-traddr "$A" >>"$raw/nvmf_setup.log" 2>&1 ||
		{ missing nvmf "nvme connect failed: $(tail -n1 "$raw/nvmf_setup.log")"; return; }
	wait_for 20 nvmf_dev "$NQN" >/dev/null || { missing nvmf "no namespace block device after nvme connect"; return; }
	d=$(nvmf_dev "$NQN")
	wait_for 20 test -b "/dev/$d" || { missing nvmf "/dev/$d did not appear"; return; }
	DEV[nvmf]=/dev/$d
}

setup_iser() {
	local iname s
	command -v tgtd >/dev/null && command -v iscsiadm >/dev/null ||
		{ missing iser "tgt or open-iscsi is not installed"; return; }
	[ -d /sys/module/ib_iser ] || { missing iser "ib_iser did not load"; return; }
	mkimg iser || { missing iser "cannot create the backing file"; return; }
	# /etc is the read-only host root: iscsiadm writes its node records here.
	mkdir -p "$work/etc-iscsi" /run/lock/iscsi && cp -a /etc/iscsi/. "$work/etc-iscsi/" &&
		mount --bind "$work/etc-iscsi" /etc/iscsi || { missing iser "cannot make /etc/iscsi writable"; return; }
	timeout 7200 tgtd -f --iser pool_sz_mb=128 >"$raw/iser_tgtd.log" 2>&1 &
	PIDS[tgtd]=$!
	PIDS[tgtd_c]=$(child $!)
	# setsid: iscsid's shutdown kills its whole process group (block-peers.md P7)
	setsid timeout 7200 iscsid -f >"$raw/iser_iscsid.log" 2>&1 &
	PIDS[iscsid]=$!
	wait_for 20 tgtadm --op show --mode system >/dev/null 2>&1 || { missing iser "tgtd did not start"; return; }
	iname=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
	{
		tgtadm --lld iser --op new --mode target --tid 1 -T "$IQN" &&
			tgtadm --lld iser --op new --mode logicalunit --tid 1 --lun 1 -b "$work/iser.img" &&
			tgtadm --lld iser --op bind --mode target --tid 1 -I ALL &&
			tgtadm --lld iser --op bind --mode target --tid 1 -Q "$iname" &&
			sleep 1 &&
			timeout 30 iscsiadm -m node -T "$IQN" -p "$B:3260" -I iser -o new &&
			timeout 60 iscsiadm -m node -T "$IQN" -p "$B:3260" -I iser --login
	} >"$raw/iser_setup.log" 2>&1 || { missing iser "tgt/iscsiadm set-up failed: $(tail -n1 "$raw/iser_setup.log")"; return; }
	for _ in $(seq 100); do
		s=$(iscsiadm -m session -P 3 2>/dev/null | sed -n 's/.*Attached scsi disk \([a-z]*\).*/\1/p' | head -n1)
		[ -n "$s" ] && [ -b "/dev/$s" ] && break
		sleep 0.2
	done
	[ -n "$s" ] && [ -b "/dev/$s" ] || { missing iser "no SCSI disk after the iSER login"; return; }
	DEV[iser]=/dev/$s
}

setup_nbd() {
	command -v nbd-server >/dev/null && command -v nbd-client >/dev/null ||
		{ missing nbd "nbd-server/nbd-client are not installed"; return; }
	[ -b /dev/nbd1 ] || { missing nbd "no /dev/nbd1"; return; }
	mkimg nbd || { missing nbd "cannot create the backing file"; return; }
	printf '[generic]\nlistenaddr = %s\n[blk]\nexportname = %s\n' "$B" "$work/nbd.img" >"$work/nbd.conf"
	timeout 30 nbd-server -C "$work/nbd.conf" >"$raw/nbd_server.log" 2>&1 || { missing nbd "nbd-server failed"; return; }
	timeout 30 nbd-client -N blk "$B" /dev/nbd1 >"$raw/nbd_client.log" 2>&1 ||
		{ missing nbd "nbd-client failed: $(tail -n1 "$raw/nbd_client.log")"; return; }
	DEV[nbd]=/dev/nbd1
}

teardown() {
	log "teardown"
	[ -n "${DEV[zc]:-}" ] && timeout 30 nvme disconnect -n "$ZNQN" >/dev/null 2>&1
	[ -n "${PIDS[zc_target_c]:-}" ] && kill "${PIDS[zc_target_c]}" 2>/dev/null
	if [ -e "/sys/kernel/config/nvmet/subsystems/$NQN" ]; then
		timeout 30 nvme disconnect -n "$NQN" >/dev/null 2>&1
		rm -f "/sys/kernel/config/nvmet/ports/1/subsystems/$NQN" 2>/dev/null
		rmdir /sys/kernel/config/nvmet/ports/1 2>/dev/null
		echo 0 >"/sys/kernel/config/nvmet/subsystems/$NQN/namespaces/1/enable" 2>/dev/null
		rmdir "/sys/kernel/config/nvmet/subsystems/$NQN/namespaces/1" "/sys/kernel/config/nvmet/subsystems/$NQN" 2>/dev/null
	fi
	[ -n "${DEV[nbd]:-}" ] && timeout 20 nbd-client -d /dev/nbd1 >/dev/null 2>&1
	pkill_nbd_server
	if [ -n "${PIDS[tgtd]:-}" ]; then
		timeout 30 iscsiadm -m node -T "$IQN" -p "$B:3260" -I iser --logout >/dev/null 2>&1
		sleep 2
		timeout 20 tgtadm --op delete --mode system >/dev/null 2>&1 # tgtd ignores SIGTERM (P6)
		timeout 10 tail --pid="${PIDS[tgtd]}" -f /dev/null || kill -9 "${PIDS[tgtd]}" 2>/dev/null
	fi
	[ -n "${PIDS[iscsid]:-}" ] && kill "${PIDS[iscsid]}" 2>/dev/null
	mountpoint -q /etc/iscsi && umount /etc/iscsi
	return 0
}
pkill_nbd_server() { # nbd-server daemonises: find ours by its config file
	local p
	for p in $(pgrep -x nbd-server); do
		tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "$work/nbd.conf" && kill "$p"
	done
}
trap teardown EXIT

# Pids whose CPU time is charged to each system (besides the kernel's).
sys_pids() {
	case $1 in
	zc | zcb-zc) echo "${PIDS[zc_target_c]:-}" ;;
	iser) echo "${PIDS[tgtd_c]:-}" ;;
	nbd) pgrep -x nbd-server | tr '\n' ' ' ;;
	esac
}
# "user system softirq idle ... " jiffies of all CPUs, and utime+stime of pids
cpu_snap() {
	local p t=0
	for p in $1; do
		[ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$(head -n1 /proc/stat | cut -d' ' -f2-) $t"
}

# fio on one device, plus CPU accounting around it.
run_fio() { # run_fio SYS JOB RW BS QD REP
	local sys=$1 job=$2 out="$raw/fio-$1-$2-r$6.json" c0 c1 pids rc
	pids=$(sys_pids "$sys")
	c0=$(cpu_snap "$pids")
	timeout $((T + RAMP + 60)) fio --name="$job" --filename="${DEV[$sys]}" --direct=1 --ioengine=libaio \
		--rw="$3" --bs="$4" --iodepth="$5" --runtime="$T" --ramp_time="$RAMP" --time_based \
		--norandommap --randrepeat=0 --group_reporting --output-format=json --output="$out" \
		>"$raw/fio.err" 2>&1
	rc=$?
	c1=$(cpu_snap "$pids")
	echo "$sys $job $6 $rc | $c0 | $c1" >>"$raw/cpu.txt"
	[ $rc -eq 0 ] || { log "$sys $job rep $6: fio exit $rc: $(tail -n2 "$raw/fio.err" | tr '\n' ' ')"; rm -f "$out"; }
	[ -f "$out" ] && log "$sys $job rep $6: $(jq -r '.jobs[0] | (.read.iops + .write.iops | floor | tostring) + " IOPS"' "$out" 2>/dev/null)"
}

data_check() { # O_DIRECT 4 MiB write at 64 MiB, read back, compare
	local dev=$1
	head -c 4M /dev/urandom >"$work/chk.in"
	timeout 60 dd if="$work/chk.in" of="$dev" bs=1M seek=64 count=4 oflag=direct status=none &&
		timeout 60 dd if="$dev" of="$work/chk.out" bs=1M skip=64 count=4 iflag=direct status=none &&
		cmp -s "$work/chk.in" "$work/chk.out"
}

counters() { # counters LABEL: rxe packet/error counters and veth/lo bytes, one line
	echo "$1 $(grep -H . /sys/class/infiniband/rxe[01]/ports/1/hw_counters/* /sys/class/net/{va,vb,lo}/statistics/tx_bytes |
		sed 's|/sys/class/[a-z]*/||; s|/ports/1/hw_counters/|.|; s|/statistics/|.|; s|:|=|' | tr '\n' ' ')" >>"$raw/counters.txt"
}

ib_read_bw_anchor() { # ib_read_bw_anchor LABEL
	local out="$raw/ib_read_bw-$1.txt"
	command -v ib_read_bw >/dev/null || { echo "missing: perftest not installed" >"$out"; return; }
	timeout 60 ib_read_bw -d rxe1 -x "$ZC_GID_B" -s 4096 -n 5000 -F >"$raw/ib_read_bw-server.log" 2>&1 &
	local srv=$!
	sleep 1
	timeout 60 ib_read_bw -d rxe0 -x "$ZC_GID_A" -s 4096 -n 5000 -F "$B" >"$out" 2>&1 ||
		echo "missing: ib_read_bw exit $?" >>"$out"
	wait $srv
	log "ib_read_bw 4 KiB ($1): $(awk '$1 == 4096 { print $5 " Mpps" }' "$out")"
}

# zc_blk_bench (the user-space NVMe-oF host) against both NVMe-oF targets,
# with the same CPU accounting as fio (the zc target's process; nvmet is kernel).
BENCH_JOBS=("rr4k-qd1 randread 4k 1" "rr4k-qd32 randread 4k 32" "rw4k-qd32 randwrite 4k 32")
zc_bench_runs() { # zc_bench_runs REP
	local t addr nqn out c0 c1 pids rc j job rw bs qd
	for t in zc nvmf; do
		[ -n "${DEV[$t]:-}" ] || continue
		if [ $t = zc ]; then addr=$B:$ZC_PORT nqn=$ZNQN; else addr=$B:4420 nqn=$NQN; fi
		for j in "${BENCH_JOBS[@]}"; do
			read -r job rw bs qd <<<"$j"
			out="$raw/zcbench-$t-$job-r$1.json"
			pids=$(sys_pids "zcb-$t")
			c0=$(cpu_snap "$pids")
			timeout $((T + RAMP + 60)) "$bin/zc_blk_bench" -b "$A" "$addr" --nqn "$nqn" --rw $rw --bs $bs --qd $qd \
				--time "$((T + RAMP))" --json "$out" >>"$raw/zcbench.log" 2>&1
			rc=$?
			c1=$(cpu_snap "$pids")
			echo "zcb-$t $job $1 $rc | $c0 | $c1" >>"$raw/cpu.txt"
			[ $rc -eq 0 ] || { log "zc_blk_bench -> $t $job failed"; rm -f "$out"; }
			[ -f "$out" ] && log "zc_blk_bench -> $t $job rep $1: $(tail -n1 "$raw/zcbench.log")"
		done
	done
}

# ---- run ------------------------------------------------------------------
log "setting up: ${SYSTEMS[*]}"
for s in "${SYSTEMS[@]}"; do
	DEV[$s]=
	"setup_$s"
	if [ -n "${DEV[$s]}" ]; then
		if data_check "${DEV[$s]}"; then
			echo "ok ${DEV[$s]}" >"$raw/status-$s"
			log "$s: ${DEV[$s]} ready, data check passed"
		else
			missing "$s" "data check (4 MiB O_DIRECT write/read-back on ${DEV[$s]}) failed"
		fi
	fi
done
for s in "${SYSTEMS[@]}"; do
	d=${DEV[$s]}
	[ -n "$d" ] || continue
	d=${d#/dev/}
	echo "$s $d scheduler=$(cat /sys/block/$d/queue/scheduler) max_sectors_kb=$(cat /sys/block/$d/queue/max_sectors_kb) nr_requests=$(cat /sys/block/$d/queue/nr_requests)" >>"$raw/queues.txt"
done
ACTIVE=()
for s in "${SYSTEMS[@]}"; do [ -n "${DEV[$s]}" ] && ACTIVE+=("$s"); done
log "active: ${ACTIVE[*]:-none}"

ib_read_bw_anchor start
k=0
for rep in $(seq "$REPS"); do
	zc_bench_runs "$rep"
	for j in "${JOBS[@]}"; do
		read -r job rw bs qd <<<"$j"
		n=${#ACTIVE[@]}
		for i in $(seq 0 $((n - 1))); do
			s=${ACTIVE[$(((i + k) % n))]}
			counters "$s $job $rep before"
			run_fio "$s" "$job" "$rw" "$bs" "$qd" "$rep"
			counters "$s $job $rep after"
		done
		k=$((k + 1))
	done
done
ib_read_bw_anchor end

# ---- CPU profiles: where the time goes at 4 KiB randread QD32 -------------
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
	for s in "${ACTIVE[@]}"; do
		[ "$s" = nbd ] && continue
		log "profile: $s rr4k-qd32"
		timeout 120 perf record -o "$work/perf-$s.data" -a -g -F 499 -e cpu-clock -- \
			timeout 60 fio --name=prof --filename="${DEV[$s]}" --direct=1 --ioengine=libaio --rw=randread \
			--bs=4k --iodepth=32 --runtime=6 --time_based --norandommap --randrepeat=0 \
			--output-format=json --output="$raw/profile-fio-$s.json" >/dev/null 2>"$raw/perf-$s.err"
		timeout 300 perf report -i "$work/perf-$s.data" --no-children --sort comm --stdio -g none \
			>"$raw/profile-$s-comm.txt" 2>/dev/null
		timeout 300 perf report -i "$work/perf-$s.data" --no-children --sort comm,sym --stdio -g none \
			2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 60 >"$raw/profile-$s-sym.txt"
	done
fi
dmesg >"$raw/dmesg.txt"
log "done"
