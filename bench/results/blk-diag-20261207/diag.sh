#!/usr/bin/env bash
# diagnosis: zc_blk_target (busy-poll variants) vs nvmet-rdma behind the kernel host
set -u
out=$1; mkdir -p "$out"
T=${T:-5} RAMP=1
BPS=${BPS:-"100 -1"}
JOBS=${JOBS:-"rr4k-qd1:randread:4k:1 rr4k-qd32:randread:4k:32 sw128k-qd8:write:128k:8"}
A=$ZC_ADDR_A B=$ZC_ADDR_B
bin=$(cd "$(dirname "$0")/.." && pwd)/build/bin
w=/tmp/diag; mkdir -p $w
modprobe -a nvmet nvmet-rdma nvme-rdma 2>/dev/null
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
log(){ echo "[diag $(date +%T)] $*" | tee -a $out/log.txt; }
nvmf_dev() { local b; for b in /sys/block/nvme*; do [[ ${b##*/} =~ ^nvme[0-9]+n[0-9]+$ ]] || continue
  [ "$(cat $b/device/subsysnqn 2>/dev/null)" = "$1" ] && { echo /dev/${b##*/}; return 0; }; done; return 1; }
cnt(){ grep -H . /sys/class/infiniband/rxe[01]/ports/1/hw_counters/* | sed 's|/sys/class/infiniband/||;s|/ports/1/hw_counters/|.|' ; }
pst(){ awk '/ctxt_switches/{printf "%s %s ", $1, $2}' /proc/$1/status; awk '{print "utime", $14, "stime", $15}' /proc/$1/stat; }
fio1(){ # dev job rw bs qd tag
  timeout 60 fio --name=$2 --filename=$1 --direct=1 --ioengine=libaio --rw=$3 --bs=$4 --iodepth=$5 --runtime=$T --ramp_time=$RAMP --time_based --norandommap --randrepeat=0 --output-format=json --output=$out/fio-$6.json >/dev/null 2>&1
  echo "$6 $(jq -r '.jobs[0] | "iops=\(.read.iops + .write.iops | floor) p99=\((.read.clat_ns.percentile["99.000000"] // 0) + (.write.clat_ns.percentile["99.000000"] // 0) | ./1000 | floor)us ios=\(.read.total_ios + .write.total_ios)"' $out/fio-$6.json)" | tee -a $out/log.txt
}
# nvmet
NQN=nqn.2024-01.io.zcrdma:diag S=/sys/kernel/config/nvmet/subsystems/$NQN P=/sys/kernel/config/nvmet/ports/1
dd if=/dev/zero of=$w/nvmf.img bs=1M count=256 status=none
mkdir $S && echo 1 >$S/attr_allow_any_host && mkdir $S/namespaces/1 && echo -n $w/nvmf.img >$S/namespaces/1/device_path && echo 1 >$S/namespaces/1/buffered_io && echo 1 >$S/namespaces/1/enable && mkdir $P && echo rdma >$P/addr_trtype && echo ipv4 >$P/addr_adrfam && echo $B >$P/addr_traddr && echo 4420 >$P/addr_trsvcid && ln -s $S $P/subsystems/$NQN
timeout 60 nvme connect -t rdma -a $B -s 4420 -n $NQN --host-traddr $A >/dev/null
sleep 1; ND=$(nvmf_dev $NQN); log "nvmet dev $ND"
dd if=/dev/zero of=$w/zc.img bs=1M count=256 status=none
for round in $(seq ${ROUNDS:-1}); do
for j in $JOBS; do IFS=: read job rw bs qd <<<"$j"
  fio1 $ND $job $rw $bs $qd nvmf-$job-$round
  for bp in $BPS; do
    n=$((${n:-0} + 1)); port=$((4430 + n)); ZNQN=nqn.2024-01.io.zcrdma:diag-zc
    y=; v=$bp; [[ $bp = y* ]] && { y=1; v=${bp#y}; }
    env ${y:+ZC_BLK_YIELD=1} timeout 600 $bin/zc_blk_target --listen $B:$port --file $w/zc.img --nqn $ZNQN --busy-poll-us $v >$out/target-$bp-$job.log 2>&1 &
    tp=$!; sleep 0.5; tc=$(pgrep -P $tp | head -1); tc=${tc:-$tp}
    for i in $(seq 50); do grep -q listening $out/target-$bp-$job.log && break; sleep 0.2; done
    timeout 60 nvme connect -t rdma -a $B -s $port -n $ZNQN --host-traddr $A >/dev/null
    for i in $(seq 50); do ZD=$(nvmf_dev $ZNQN) && [ -b "$ZD" ] && break; sleep 0.2; done
    kill -USR1 $tc; sleep 0.2
    s0=$(pst $tc); cnt >$out/cnt0; c0=$(head -1 /proc/stat)
    fio1 $ZD $job $rw $bs $qd zc$bp-$job-$round
    s1=$(pst $tc); cnt >$out/cnt1; c1=$(head -1 /proc/stat)
 echo "  cpu of target: $(awk '{print $39}' /proc/$tc/stat)" | tee -a $out/log.txt
    echo "  target before: $s0" | tee -a $out/log.txt; echo "  target after:  $s1" | tee -a $out/log.txt
    echo "  /proc/stat: $c0 -> $c1" >>$out/log.txt
    paste -d' ' $out/cnt0 $out/cnt1 | awk -F'[ :]' '{ if ($4-$2) print "  " $1, $4-$2 }' | tee -a $out/log.txt
    if [ "${STRACE:-0}" = 1 ] && [ $job = rr4k-qd32 ]; then
      timeout $((T+5)) strace -c -f -p $tc -o $out/strace-$bp-$job.txt & sp=$!
      sleep 0.5; fio1 $ZD $job $rw $bs $qd zc$bp-$job-strace; kill -INT $sp; wait $sp
    fi
    if [ "${PERF:-0}" = 1 ] && [ $job = rr4k-qd32 ]; then
      timeout 60 perf record -o $w/perf.data -a -F 999 -e cpu-clock -- sleep $T >/dev/null 2>&1 & pp=$!
      fio1 $ZD $job $rw $bs $qd zc$bp-$job-perf; wait $pp
      timeout 200 perf report -i $w/perf.data --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >$out/perf-$bp-comm.txt
      timeout 200 perf report -i $w/perf.data --sort comm,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >$out/perf-$bp-sym.txt
    fi
    timeout 30 nvme disconnect -n $ZNQN >/dev/null
    kill $tc; wait $tp
  done
done
done
if [ -n "${BENCH:-}" ]; then
  n=$((n + 1)); port=$((4430 + n)); ZNQN=nqn.2024-01.io.zcrdma:diag-zc
  timeout 600 $bin/zc_blk_target --listen $B:$port --file $w/zc.img --nqn $ZNQN --busy-poll-us ${BENCH_TBP:-2000} >$out/target-bench.log 2>&1 &
  tp=$!; sleep 1; tc=$(pgrep -P $tp | head -1)
  timeout 60 ib_read_bw -d rxe1 -x "$ZC_GID_B" -s 4096 -n 5000 -F >/dev/null 2>&1 & srv=$!; sleep 1
  timeout 60 ib_read_bw -d rxe0 -x "$ZC_GID_A" -s 4096 -n 5000 -F "$B" >$out/ibrb.txt 2>&1; wait $srv
  echo "ib_read_bw: $(awk '$1 == 4096 { print $5 " Mpps" }' $out/ibrb.txt)" | tee -a $out/log.txt
  for bbp in $BENCH; do
    for tgt in zc nvmf; do
      if [ $tgt = zc ]; then ad=$B:$port nq=$ZNQN; else ad=$B:4420 nq=$NQN; fi
      echo "bench $tgt bbp=$bbp: $(timeout 60 $bin/zc_blk_bench -b $A $ad --nqn $nq --rw randread --bs 4k --qd 32 --time 6 --busy-poll-us $bbp 2>&1 | tail -1)" | tee -a $out/log.txt
    done
  done
  kill $tc; wait $tp
fi
timeout 30 nvme disconnect -n $NQN >/dev/null
log done
