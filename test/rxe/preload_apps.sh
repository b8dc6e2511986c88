#!/usr/bin/env bash
# rxe test: real, unmodified programs from Debian under zcrun, both ends
# shimmed, server on $ZC_ADDR_B, client routed from $ZC_ADDR_A. Each run
# must succeed with its output checked AND each end's ZCRDMA_PRELOAD_LOG
# must show its connections went by zcrdma (no silent TCP fallback).
#   socat     an 8 MiB random file, sha256 equal at both ends
#   iperf3    4 parallel streams, then -R (server sends), 2 s each
#   redis     redis-benchmark SET/GET, 50 clients, pipelining 16
#   sockperf  ping-pong and throughput, 2 s each (SECONDS: ctest passes 1)
#   nginx     one process serving files: curl fetches 4 MiB + 7 (sha256
#             equal), wrk keeps 4 connections busy for SECONDS (all 200)
#
#   preload_apps.sh BINDIR APP [SECONDS]   (SECONDS: iperf3/sockperf run time)
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: preload_apps.sh BINDIR APP}
app=${2:?usage: preload_apps.sh BINDIR APP}
secs=${3:-2}
port=$((32000 + $$ % 1000 * 4))
work=$(mktemp -d "${TMPDIR:-/tmp}/zc_papps.XXXXXX")
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$work"' EXIT
export ZCRDMA_PRELOAD_LOG=1
zc="$bin/zcrun"
b=$ZC_ADDR_B
for p in $app $([ "$app" = nginx ] && echo "curl wrk"); do
	command -v "$p" >/dev/null 2>&1 || [ "$p" = redis ] || { echo "SKIPPED: $p not installed (scripts/install-deps)"; exit 77; }
done

fail() {
	for f in "$work"/*.out "$work"/*.err; do [ -s "$f" ] && show "$(basename "$f")" "$f"; done
	echo "FAIL: preload $app: $*"
	exit 1
}

# zc_path FILE: FILE's shim log shows zcrdma connections (accepted or
# connected) to $port and no kernel TCP one.
zc_path() {
	grep -qE "(connect $(hostport "$b" "$port")|accept on fd [0-9]+ from .*): zcrdma" "$1" ||
		fail "$(basename "$1"): no zcrdma connection logged"
	! grep -qE "connect $(hostport "$b" "$port"): kernel TCP" "$1" || fail "$(basename "$1"): fell back to TCP"
}

# wait_port: until something listens on $port (the server's shim log says so).
wait_port() {
	wait_for "$work/srv.err" "listen .*:$port: kernel TCP . zcrdma" "$srv" 60 || fail "server did not listen"
}

case $app in
socat)
	head -c $((8 << 20)) /dev/urandom >"$work/in"
	timeout 120 "$zc" socat -u "TCP-LISTEN:$port,bind=$b,reuseaddr" "OPEN:$work/outf,creat,trunc" \
		>"$work/srv.out" 2>"$work/srv.err" &
	srv=$!
	wait_port
	timeout 120 "$zc" socat -u "OPEN:$work/in" "TCP:$(hostport "$b" "$port")" >"$work/cli.out" 2>"$work/cli.err" ||
		fail "client failed"
	wait "$srv" || fail "server failed"
	srv=
	[ "$(sha256sum <"$work/in")" = "$(sha256sum <"$work/outf")" ] || fail "sha256 differs"
	zc_path "$work/srv.err"
	zc_path "$work/cli.err"
	echo "ok: socat moved 8 MiB, sha256 $(sha256sum <"$work/outf" | cut -c1-16)... equal"
	;;
iperf3)
	for dir in "" -R; do
		timeout 120 "$zc" iperf3 -s -1 -B "$b" -p "$port" >"$work/srv.out" 2>"$work/srv.err" &
		srv=$!
		wait_port
		timeout 120 "$zc" iperf3 -c "$b" -p "$port" -P 4 -t "$secs" $dir >"$work/cli.out" 2>"$work/cli.err" ||
			fail "client failed $dir"
		wait "$srv" || fail "server failed $dir"
		srv=
		grep -E "^\[SUM\].*receiver" "$work/cli.out" || fail "no receiver summary $dir"
		[ "$(grep -cE "connect $(hostport "$b" "$port"): zcrdma" "$work/cli.err")" -eq 5 ] ||
			fail "not all 5 connections (control + 4 streams) by zcrdma $dir"
		zc_path "$work/srv.err"
		port=$((port + 1))
	done
	echo "ok: iperf3 4 streams both directions over zcrdma"
	;;
redis)
	timeout 120 "$zc" redis-server --port "$port" --bind "$b" --protected-mode no --save "" --appendonly no \
		>"$work/srv.err" 2>&1 &
	srv=$!
	wait_port
	timeout 120 "$zc" redis-benchmark -h "$b" -p "$port" -t set,get -n 20000 -c 50 -P 16 -q \
		>"$work/cli.out" 2>"$work/cli.err" || fail "redis-benchmark failed"
	tr '\r' '\n' <"$work/cli.out" | grep -E "^(SET|GET): [0-9.]+ requests per second" ||
		fail "no SET/GET results"
	[ "$(tr '\r' '\n' <"$work/cli.out" | grep -cE "^(SET|GET): [0-9.]+ requests per second")" -eq 2 ] ||
		fail "SET or GET missing"
	timeout 60 "$zc" redis-cli -h "$b" -p "$port" shutdown nosave >/dev/null 2>>"$work/cli.err"
	wait "$srv"
	srv=
	zc_path "$work/srv.err"
	zc_path "$work/cli.err"
	echo "ok: redis-benchmark SET/GET with 50 clients over zcrdma"
	;;
sockperf)
	timeout 120 "$zc" sockperf sr --tcp -i "$b" -p "$port" >"$work/srv.out" 2>"$work/srv.err" &
	srv=$!
	wait_port
	timeout 120 "$zc" sockperf pp --tcp -i "$b" -p "$port" -t "$secs" -m 64 >"$work/pp.out" 2>"$work/cli.err" ||
		fail "ping-pong failed"
	grep -E "Summary: Latency is" "$work/pp.out" || fail "no latency summary"
	timeout 120 "$zc" sockperf tp --tcp -i "$b" -p "$port" -t "$secs" -m 1400 >"$work/tp.out" 2>>"$work/cli.err" ||
		fail "throughput failed"
	grep -E "Summary: BandWidth is" "$work/tp.out" || fail "no bandwidth summary"
	kill "$srv"
	wait "$srv"
	srv=
	zc_path "$work/srv.err"
	zc_path "$work/cli.err"
	echo "ok: sockperf ping-pong and throughput over zcrdma"
	;;
nginx)
	# One process: workers forked after listen() would inherit the listener
	# as a plain kernel one (docs/preload.md, fork).
	mkdir -p "$work/www" "$work/tmp"
	head -c $(((4 << 20) + 7)) /dev/urandom >"$work/www/big.bin"
	echo "zcrdma" >"$work/www/index.html"
	cat >"$work/nginx.conf" <<-EOF
		daemon off;
		master_process off;
		error_log $work/error.log info;
		pid $work/nginx.pid;
		events { worker_connections 64; }
		http {
			access_log off;
			client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
			uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
			sendfile on;
			server { listen $(hostport "$b" "$port"); root $work/www; }
		}
	EOF
	timeout 120 "$zc" nginx -c "$work/nginx.conf" -p "$work" >"$work/srv.out" 2>"$work/srv.err" &
	srv=$!
	wait_port
	url=http://$(hostport "$b" "$port")
	timeout 60 "$zc" curl -sS -g -o "$work/got" "$url/big.bin" >"$work/cli.out" 2>"$work/cli.err" ||
		fail "curl failed"
	[ "$(sha256sum <"$work/www/big.bin")" = "$(sha256sum <"$work/got")" ] || fail "sha256 differs"
	timeout 60 "$zc" wrk -t1 -c4 -d"${secs}s" "$url/index.html" >"$work/wrk.out" 2>>"$work/cli.err" ||
		fail "wrk failed"
	grep -E "^Requests/sec" "$work/wrk.out" || fail "no wrk summary"
	grep -qE "[1-9][0-9]* requests in" "$work/wrk.out" || fail "wrk made no request"
	! grep -qE "Socket errors|Non-2xx" "$work/wrk.out" || fail "wrk saw errors"
	kill "$srv"
	wait "$srv"
	srv=
	# nginx points its stderr at its error log once it runs
	cat "$work/error.log" >>"$work/srv.err"
	zc_path "$work/srv.err"
	zc_path "$work/cli.err"
	echo "ok: nginx served 4 MiB + 7 to curl (sha256 equal) and wrk over zcrdma"
	;;
*)
	fail "unknown app"
	;;
esac
