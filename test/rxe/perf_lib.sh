#!/usr/bin/env bash
# rxe test: zc_perf's library tests (stream, msg, zc, rma, rma_read) over
# rxe0 -> rxe1. Short runs at a few sizes (1 B, 4 KiB, 64 KiB, 1 MiB) with
# --verify (every payload checked), one --lat run per test, one -e run, the
# registration modes and --copy, -q runs (4 and 64 connections per context)
# and option combinations both sides must refuse. Every run: server in the background on $ZC_ADDR_B, client bound to
# $ZC_ADDR_A, both must exit 0 (or both non-zero where a refusal is
# expected). No timing assertions.
#
#   perf_lib.sh PATH/TO/zc_perf
set -u

. "$(dirname "$0")/lib.sh"
perf=${1:?usage: perf_lib.sh PATH/TO/zc_perf}
port=$((18700 + $$ % 100 * 2))
log=$(mktemp -d "${TMPDIR:-/tmp}/perf_lib.XXXXXX")
trap 'rm -rf "$log"' EXIT
t0=$SECONDS

# multi Q N ARGS...: a bandwidth run over Q connections of one context per
# side (-q Q -n N); the client's row must count N x Q iterations (-n is per
# connection, as perftest's is per QP) at a non-zero average bandwidth, and
# the header must say Q qps.
multi() {
	local q=$1 n=$2 row iters avg before=$failed
	shift 2
	perf_pair ok "$@" -q "$q" -n "$n"
	[ $failed -eq $before ] || return
	row=$(grep -A1 '#bytes' "$log/client" | sed -n 2p)
	iters=$(awk '{print $2}' <<<"$row")
	avg=$(awk '{print $4}' <<<"$row")
	if [ "$iters" != $((n * q)) ] || ! awk -v a="$avg" 'BEGIN { exit !(a > 0) }' ||
		! grep -q "Number of qps   : $q " "$log/client"; then
		bad "-q $q -n $n $*: expected $((n * q)) iterations at a non-zero bandwidth, got '$row'"
		show client "$log/client"
	fi
}

# client_counters NAME...: the client's zc_ctx_stats columns NAME..., in
# that order, from the first row of its counters table.
client_counters() {
	awk -v want="$*" '/send_wrs/ { for (i = 1; i <= NF; i++) col[$i] = i; getline
		n = split(want, w, " "); for (i = 1; i <= n; i++) printf "%s%s", $col[w[i]], i < n ? " " : "\n"; exit }' "$log/client"
}

# completions ARGS...: a run whose client only sends small copied messages
# must reap fewer than half as many completions as it posts sends: quiet
# sends go unsignaled (src/qp.c, selective signaling); before, every send
# had a completion of its own.
completions() {
	local before=$failed wrs='' cqes=''
	perf_pair ok "$@"
	[ $failed -eq $before ] || return
	read -r wrs cqes <<<"$(client_counters send_wrs cqes)"
	if [ -z "$wrs" ] || [ -z "$cqes" ] || [ "$wrs" -lt 1000 ] || [ $((cqes * 2)) -ge "$wrs" ]; then
		bad "$*: expected fewer than half as many completions as send WRs, got send_wrs=$wrs cqes=$cqes"
		show client "$log/client"
	else
		echo "ok: $*: $wrs send WRs, $cqes completions"
	fi
}

# one_doorbell ARGS...: a zero-copy rendezvous run's client rings one
# doorbell per message where it binds windows: the bind rides in its RTS's
# doorbell (src/xfer.c); before, each had one of its own.
one_doorbell() {
	local before=$failed rndv='' db='' binds=''
	perf_pair ok "$@"
	[ $failed -eq $before ] || return
	read -r rndv db binds <<<"$(client_counters rndv doorbells mw_binds)"
	if [ -z "$rndv" ] || [ -z "$db" ] || [ "$rndv" -lt 100 ]; then
		bad "$*: no counters or too few rendezvous messages (rndv=$rndv doorbells=$db)"
		show client "$log/client"
	elif [ "${binds:-0}" -gt 0 ] && [ $((db * 2)) -ge $((rndv * 3)) ]; then
		bad "$*: expected about one doorbell per rendezvous, got rndv=$rndv doorbells=$db mw_binds=$binds"
		show client "$log/client"
	else
		echo "ok: $*: $rndv rendezvous, $db doorbells, $binds window binds"
	fi
}

# The busy-polling runs spin at most 100 ms per wait (zc_perf's default,
# -1, spins without end on both sides of a 2-vCPU guest).
busy=(--busy-poll-us=100000)

# alone EXPECT_TEXT ARGS...: a command line zc_perf refuses by itself (exit 2).
alone() {
	local want=$1 rc
	shift
	runs=$((runs + 1))
	"$perf" "$@" >"$log/alone" 2>&1
	rc=$?
	if [ $rc -eq 2 ] && grep -q -- "$want" "$log/alone"; then
		echo "ok (refused as expected): $* -> $(head -n 1 "$log/alone")"
		return
	fi
	bad "$* should be refused with '$want' (rc $rc):"
	cat "$log/alone"
}

# Bandwidth, every payload verified; between them every test sees 1 B, 4 KiB,
# 64 KiB or 1 MiB (rendezvous) and the small sizes (eager/inline).
perf_pair ok --test=stream -s 1 -n 100 --verify "${busy[@]}"
perf_pair ok --test=stream -s 1M -n 10 --verify "${busy[@]}"
perf_pair ok --test=msg -s 4096 -n 100 --verify "${busy[@]}"
completions --test=msg -s 64 -n 1000 --verify "${busy[@]}"
perf_pair ok --test=msg -s 65536 -n 50 --verify "${busy[@]}"
perf_pair ok --test=zc -s 1 -n 100 --verify "${busy[@]}"
perf_pair ok --test=zc -s 1M -n 10 -t 4 --verify "${busy[@]}"
one_doorbell --test=zc -s 65536 -n 100 -t 16 --verify --rcache "${busy[@]}"
perf_pair ok --test=rma -s 4096 -n 100 --verify "${busy[@]}"
perf_pair ok --test=rma_read -s 1M -n 10 -t 4 --verify "${busy[@]}"
# Latency (ping-pong; rma: one operation at a time).
perf_pair ok --test=stream --lat -s 4096 -n 50 --verify "${busy[@]}"
perf_pair ok --test=msg --lat -s 65536 -n 30 --verify "${busy[@]}"
perf_pair ok --test=zc --lat -s 1 -n 50 --verify "${busy[@]}"
perf_pair ok --test=rma --lat -s 65536 -n 30 --verify "${busy[@]}"
perf_pair ok --test=rma_read --lat -s 4096 -n 30 --verify "${busy[@]}"
# Events (busy_poll_us 0) with a fresh registration per transfer; the copy path.
perf_pair ok --test=zc -s 65536 -n 50 -t 8 --verify --no-rcache-reuse -e
perf_pair ok --test=stream -s 65536 -n 50 -t 8 --verify --copy "${busy[@]}"
# -q: many connections from one context on each side, every payload verified.
multi 4 100 --test=zc -s 4096 -t 16 --verify "${busy[@]}"
multi 4 100 --test=stream -s 64 --verify "${busy[@]}"
multi 4 50 --test=msg -s 65536 --verify "${busy[@]}"
multi 64 20 --test=zc -s 64 -t 8 --verify "${busy[@]}"
multi 64 20 --test=msg -s 4096 --verify -e
alone "rma runs one connection" --test=rma -q 2
alone "bandwidth tests only" --test=zc --lat -q 2
# Both sides must run the same data path.
CLIENT_EXTRA=(--copy)
perf_pair refused --test=msg -s 4096 -n 20 -t 8 "${busy[@]}"
CLIENT_EXTRA=()
alone "no copy path" --test=rma --copy
alone "beyond the copy path" --test=zc --copy -s 2M
alone "only the library tests" --test=write --rcache

echo "perf_lib: $((runs - failed)) of $runs runs passed in $((SECONDS - t0)) s"
[ $failed -eq 0 ]
