#!/usr/bin/env bash
# Same-boot A/B of zc_blk_target builds against nvmet-rdma, behind the kernel's NVMe-oF host.
#   scripts/rxe-guest -- env VARIANTS="main:/path/to/bin chain:/path/to/bin" ab.sh OUTDIR
# Every round attaches each system afresh (a new target process for each zc variant, a
# new `nvme connect` for all), in an order rotated every round, and runs the fio JOBS on
# it. Around each fio run the zc target is sent SIGUSR1, which prints its totals
# (commands, send work requests, doorbells: zc_ctx_stats); log.txt gets IOPS, p99 and,
# for the zc targets, doorbells and work requests per command and CPU ticks per 1000 I/Os.
set -u
out=$1; mkdir -p "$out"
T=${T:-6} RAMP=${RAMP:-1} ROUNDS=${ROUNDS:-4}
VARIANTS=${VARIANTS:?VARIANTS=\"name:bindir ...\"}
JOBS=${JOBS:-"rr4k-qd32:randread:4k:32 rr4k-qd1:randread:4k:1 rw4k-qd32:randwrite:4k:32"}
A=$ZC_ADDR_A B=$ZC_ADDR_B
w=/tmp/ab; mkdir -p $w
modprobe -a nvmet nvmet-rdma nvme-rdma 2>/dev/null
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
log() { echo "[ab $(date +%T)] $*" | tee -a "$out/log.txt"; }
nvmf_dev() { local b; for b in /sys/block/nvme*; do [[ ${b##*/} =~ ^nvme[0-9]+n[0-9]+$ ]] || continue
	[ "$(cat "$b/device/subsysnqn" 2>/dev/null)" = "$1" ] && { echo "/dev/${b##*/}"; return 0; }; done; return 1; }
attach() { # attach NQN PORT: prints the block device
	local d i
	timeout 60 nvme connect -t rdma -a "$B" -s "$2" -n "$1" --host-traddr "$A" >/dev/null || return 1
	for i in $(seq 100); do d=$(nvmf_dev "$1") && [ -b "$d" ] && { echo "$d"; return 0; }; sleep 0.2; done
	return 1
}
totals() { # totals PID LOG: "commands wrs doorbells ticks" now
	local n
	n=$(grep -c '^.*totals:' "$2")
	kill -USR1 "$1"
	for _ in $(seq 50); do [ "$(grep -c 'totals:' "$2")" -gt "$n" ] && break; sleep 0.1; done
	echo "$(grep 'totals:' "$2" | tail -n1 | sed 's/.*totals: \([0-9]*\) commands, \([0-9]*\) send work requests in \([0-9]*\) doorbells.*/\1 \2 \3/') $(awk '{ print $14 + $15 }' /proc/"$1"/stat)"
}
fio1() { # fio1 DEV rw bs qd TAG: prints "iops p99us ios"
	timeout $((T + RAMP + 60)) fio --name=ab --filename="$1" --direct=1 --ioengine=libaio --rw="$2" --bs="$3" \
		--iodepth="$4" --runtime="$T" --ramp_time="$RAMP" --time_based --norandommap --randrepeat=0 \
		--output-format=json --output="$out/fio-$5.json" >/dev/null 2>&1
	jq -r '.jobs[0] | "\(.read.iops + .write.iops | floor) \((.read.clat_ns.percentile["99.000000"] // 0) + (.write.clat_ns.percentile["99.000000"] // 0) | ./1000 | floor) \(.read.total_ios + .write.total_ios)"' "$out/fio-$5.json"
}

NQN=nqn.2024-01.io.zcrdma:ab S=/sys/kernel/config/nvmet/subsystems/$NQN P=/sys/kernel/config/nvmet/ports/1
dd if=/dev/zero of=$w/nvmf.img bs=1M count=256 status=none
mkdir $S && echo 1 >$S/attr_allow_any_host && mkdir $S/namespaces/1 && echo -n $w/nvmf.img >$S/namespaces/1/device_path &&
	echo 1 >$S/namespaces/1/buffered_io && echo 1 >$S/namespaces/1/enable && mkdir $P && echo rdma >$P/addr_trtype &&
	echo ipv4 >$P/addr_adrfam && echo $B >$P/addr_traddr && echo 4420 >$P/addr_trsvcid && ln -s $S $P/subsystems/$NQN ||
	log "nvmet set-up failed"
SYS=(nvmf)
declare -A BIN
for v in $VARIANTS; do SYS+=("${v%%:*}"); BIN[${v%%:*}]=${v#*:}; dd if=/dev/zero of=$w/${v%%:*}.img bs=1M count=256 status=none; done
log "systems: ${SYS[*]}; jobs: $JOBS; $ROUNDS rounds of ${T}+${RAMP} s"
port=4430
for round in $(seq "$ROUNDS"); do
	n=${#SYS[@]}
	for i in $(seq 0 $((n - 1))); do
		s=${SYS[$(((i + round) % n))]}
		tp=
		if [ "$s" = nvmf ]; then
			nq=$NQN; p=4420
		else
			port=$((port + 1)); nq=nqn.2024-01.io.zcrdma:ab-$s-$round; p=$port; tl=$out/target-$s-$round.log
			timeout 900 "${BIN[$s]}/zc_blk_target" --listen "$B:$p" --file "$w/$s.img" --nqn "$nq" >"$tl" 2>&1 &
			tp=$!
			for _ in $(seq 50); do grep -q listening "$tl" && break; sleep 0.2; done
			tc=$(pgrep -P $tp | head -n1); tc=${tc:-$tp}
		fi
		d=$(attach "$nq" "$p") || { log "$s round $round: attach failed"; [ -n "$tp" ] && kill $tc; continue; }
		for j in $JOBS; do
			IFS=: read -r job rw bs qd <<<"$j"
			[ -n "$tp" ] && t0=$(totals $tc "$tl")
			r=$(fio1 "$d" $rw $bs $qd "$s-$job-$round")
			line="$s $job round $round: iops=${r%% *} p99=$(cut -d' ' -f2 <<<"$r")us"
			if [ -n "$tp" ]; then
				t1=$(totals $tc "$tl")
				line="$line $(awk -v a="$t0" -v b="$t1" 'BEGIN { split(a, x, " "); split(b, y, " "); c = y[1] - x[1];
					printf "cmds=%d doorbells/cmd=%.3f wrs/cmd=%.3f cpu_ticks/1k_cmds=%.1f", c, (y[3] - x[3]) / c,
					(y[2] - x[2]) / c, 1000 * (y[4] - x[4]) / c }')"
			fi
			echo "$line" | tee -a "$out/log.txt"
		done
		timeout 30 nvme disconnect -n "$nq" >/dev/null
		[ -n "$tp" ] && { kill $tc; wait $tp; }
	done
done
log done
