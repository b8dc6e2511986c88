#!/usr/bin/env bash
# rxe test: libzcrdma_preload runs a plain socket program (preload_peer,
# which knows nothing of zcrdma) over zcrdma, and falls back to kernel TCP
# where it must. One CASE per ctest test:
#   block        both ends under zcrun, blocking calls: zcrdma, 1 B .. 4 MiB
#                verified both ways, no kernel TCP connection on the port
#   epoll        the same with non-blocking connect + epoll LT then ET, a
#                pipe in the same set
#   poll         the same driven by select (connect) and poll
#   fallback     the server without the shim: the client's zcrdma attempt
#                is refused and it goes on over kernel TCP on the same fd
#   plainclient  the client without the shim: the shimmed server's kernel
#                listener serves it over TCP
#   loopback     both under zcrun on 127.0.0.1: kernel TCP, untouched
#   zcproof      the zero-copy proof (preload_peer.c): an 8 MiB write()'s
#                pages, PROT_NONE while in flight, arrive intact
#   halfclose    the client writes, shutdown(SHUT_WR)s and reads the answer
#                the server sends only after its read saw the end of stream
#   timeo        SO_RCVTIMEO/SO_SNDTIMEO give EAGAIN after the timeout;
#                FIONREAD counts every queued byte
#   kill         the server kills itself mid-transfer: the client's write
#                fails with ECONNRESET/EPIPE and nothing hangs
# Each end's ZCRDMA_PRELOAD_LOG line must name the path taken.
#
#   preload.sh BINDIR CASE
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: preload.sh BINDIR CASE}
case=${2:?usage: preload.sh BINDIR CASE}
port=$((30000 + $$ % 1000 * 4))
work=$(mktemp -d "${TMPDIR:-/tmp}/zc_preload.XXXXXX")
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$work"' EXIT
export ZCRDMA_PRELOAD_LOG=1

fail() {
	for f in srv.out srv.err cli.out cli.err; do [ -s "$work/$f" ] && show "$f" "$work/$f"; done
	echo "FAIL: preload $case: $*"
	exit 1
}

# pair SRV_SHIM ADDR CLI_SHIM MODE EXPECT [die]: one server, one client.
pair() {
	local sshim=$1 addr=$2 cshim=$3 mode=$4 expect=$5 die=${6:-} cli_rc srv_rc
	timeout 120 $sshim "$bin/preload_peer" server "$addr" "$port" $die >"$work/srv.out" 2>"$work/srv.err" &
	srv=$!
	wait_for "$work/srv.out" listening "$srv" 60 || fail "server did not start"
	timeout 120 $cshim "$bin/preload_peer" client "$addr" "$port" "$mode" "$expect" >"$work/cli.out" 2>"$work/cli.err"
	cli_rc=$?
	wait "$srv"
	srv_rc=$?
	srv=
	[ $cli_rc -eq 0 ] || fail "client exit status $cli_rc"
	if [ "$die" = die ]; then
		[ $srv_rc -eq 137 ] || fail "server exit status $srv_rc, not killed"
	else
		[ $srv_rc -eq 0 ] || fail "server exit status $srv_rc"
	fi
	cat "$work/cli.out"
}

# logged WHO PATTERN: the end's shim log says PATTERN.
logged() {
	grep -qE "$2" "$work/$1.err" || fail "$1 log lacks /$2/"
	grep -E "$2" "$work/$1.err" | head -n 1
}

zc="$bin/zcrun"
a=$ZC_ADDR_B
hp=$(hostport "$a" "$port")
case $case in
block | epoll | poll)
	pair "$zc" "$a" "$zc" "$case" zc
	logged srv "listen .*: kernel TCP \+ zcrdma on"
	logged cli "connect $hp: zcrdma"
	logged srv "accept on fd [0-9]+ from .*: zcrdma"
	;;
fallback)
	pair "" "$a" "$zc" block tcp
	logged cli "connect $hp: kernel TCP \(zcrdma: connection refused"
	;;
plainclient)
	pair "$zc" "$a" "" block tcp
	logged srv "listen .*: kernel TCP \+ zcrdma on"
	;;
loopback)
	a=127.0.0.1
	pair "$zc" "$a" "$zc" block tcp
	logged srv "listen 127.0.0.1:$port: kernel TCP only"
	logged cli "connect 127.0.0.1:$port: kernel TCP \(loopback\)"
	;;
zcproof)
	pair "$zc" "$a" "$zc" zcproof zc zcproof
	logged cli "connect $hp: zcrdma"
	;;
halfclose)
	pair "$zc" "$a" "$zc" halfclose zc halfclose
	logged cli "connect $hp: zcrdma"
	;;
timeo)
	pair "$zc" "$a" "$zc" timeo zc timeo
	logged cli "connect $hp: zcrdma"
	;;
kill)
	pair "$zc" "$a" "$zc" kill zc die
	logged cli "connect $hp: zcrdma"
	;;
*)
	fail "unknown case"
	;;
esac
echo "ok: preload $case"
