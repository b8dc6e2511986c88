#!/usr/bin/env bash
# rxe test: the examples over rxe0 -> rxe1.
#   zc_echo: a server on $ZC_ADDR_B (-n 1) per size, a client without -b
#            (the route picks $ZC_ADDR_A) sending with --verify; 0 B, 1 B,
#            4097 B, 1 MiB + 1; then one event-loop server serving 8 (4097 B)
#            and 4 (1 MiB + 1) verifying clients at once.
#   zc_copy: a 100 MiB random file, a 0-byte and a 1-byte file from
#            $ZC_ADDR_A to $ZC_ADDR_B, identical sha256 on both ends; the
#            100 MiB time is printed (never asserted: the guest may be TCG);
#            then 20 copies of a 4097-byte file (the confirmation overtaking
#            the sender's last completion must not fail it).
#   failures: a sender towards a port nobody listens on and a sender without
#            a destination both exit non-zero with a one-line reason.
# Every program runs under timeout(1) on top of its own bounds.
#
#   examples.sh BINDIR     (the directory holding zc_echo and zc_copy)
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: examples.sh BINDIR}
port=$((7400 + $$ % 100))
work=$(mktemp -d "${TMPDIR:-/tmp}/zc_examples.XXXXXX")
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$work"' EXIT
# echo_run SIZE COUNT: one server connection, one verifying client.
echo_run() {
	local size=$1 count=$2 cli_rc srv_rc
	runs=$((runs + 1))
	port=$((port + 1))
	timeout 120 "$bin/zc_echo" -l "$(hostport "$ZC_ADDR_B" "$port")" -n 1 >"$work/srv.out" 2>"$work/srv.err" &
	srv=$!
	wait_listening "$work/srv.err" "$srv"
	timeout 120 "$bin/zc_echo" "$(hostport "$ZC_ADDR_B" "$port")" -s "$size" -c "$count" --verify \
		>"$work/cli.out" 2>"$work/cli.err"
	cli_rc=$?
	wait "$srv"
	srv_rc=$?
	srv=
	if [ $cli_rc -eq 0 ] && [ $srv_rc -eq 0 ] && grep -q "^zc_echo: $count x $size bytes" "$work/cli.out"; then
		echo "ok: echo $(cat "$work/cli.out")"
	else
		bad "zc_echo -s $size -c $count (client rc $cli_rc, server rc $srv_rc)"
		show client "$work/cli.out"; show "client stderr" "$work/cli.err"
		show "server stderr" "$work/srv.err"
	fi
}

# echo_many N SIZE COUNT: one event-loop server (-n N) and N verifying
# clients at once; every client and the server must succeed.
echo_many() {
	local n=$1 size=$2 count=$3 k pids=() bad_clients=0 srv_rc
	runs=$((runs + 1))
	port=$((port + 1))
	timeout 300 "$bin/zc_echo" -l "$(hostport "$ZC_ADDR_B" "$port")" -n "$n" >"$work/srv.out" 2>"$work/srv.err" &
	srv=$!
	wait_listening "$work/srv.err" "$srv"
	for k in $(seq "$n"); do
		timeout 240 "$bin/zc_echo" "$(hostport "$ZC_ADDR_B" "$port")" -s "$size" -c "$count" --verify \
			>"$work/cli$k.out" 2>"$work/cli$k.err" &
		pids+=($!)
	done
	for k in "${!pids[@]}"; do
		wait "${pids[$k]}" || bad_clients=$((bad_clients + 1))
	done
	wait "$srv"
	srv_rc=$?
	srv=
	if [ $bad_clients -eq 0 ] && [ $srv_rc -eq 0 ]; then
		echo "ok: echo, $n clients at once on one event-loop server, $count x $size bytes each, verified"
	else
		bad "zc_echo, $n clients at once: $bad_clients clients failed, server rc $srv_rc"
		show "server stderr" "$work/srv.err"
		for k in $(seq "$n"); do show "client $k stderr" "$work/cli$k.err"; done
	fi
}

# copy_run FILE: receiver on B, sender from A, then sha256 of both files.
copy_run() {
	local in=$1 out=$work/out.$RANDOM snd_rc rcv_rc t0 t1 a b
	runs=$((runs + 1))
	port=$((port + 1))
	timeout 180 "$bin/zc_copy" -l "$(hostport "$ZC_ADDR_B" "$port")" -a 60 -v "$out" >"$work/rcv.out" 2>"$work/rcv.err" &
	srv=$!
	wait_listening "$work/rcv.err" "$srv"
	t0=$(date +%s.%N)
	timeout 180 "$bin/zc_copy" -b "$ZC_ADDR_A" -v "$in" "$(hostport "$ZC_ADDR_B" "$port")" >"$work/snd.out" 2>"$work/snd.err"
	snd_rc=$?
	t1=$(date +%s.%N)
	wait "$srv"
	rcv_rc=$?
	srv=
	a=$(sha256sum <"$in" | cut -d' ' -f1)
	b=$( [ -f "$out" ] && sha256sum <"$out" | cut -d' ' -f1)
	if [ $snd_rc -eq 0 ] && [ $rcv_rc -eq 0 ] && [ "$a" = "$b" ]; then
		echo "ok: copy of $(stat -c %s "$in") bytes in $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s," \
			"sha256 equal ($a)"
		sed 's/^/    /' "$work/snd.err"
	else
		bad "zc_copy $(stat -c %s "$in") bytes (sender rc $snd_rc, receiver rc $rcv_rc, sha256 $a vs ${b:-none})"
		show "sender stderr" "$work/snd.err"; show "receiver stderr" "$work/rcv.err"
	fi
	rm -f "$out"
}

# fail_run WHAT CMD...: must exit non-zero (not by timeout) with one line on stderr.
fail_run() {
	local what=$1 rc lines
	shift
	runs=$((runs + 1))
	timeout 60 "$@" >"$work/f.out" 2>"$work/f.err"
	rc=$?
	lines=$(wc -l <"$work/f.err")
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$lines" -ge 1 ] && grep -q '^zc_copy: ' "$work/f.err" &&
		{ [ "$lines" -eq 1 ] || [ "$what" = usage ]; }; then
		echo "ok ($what fails as expected, rc $rc): $(head -n 1 "$work/f.err")"
	else
		bad "$what: rc $rc, $lines lines on stderr"
		show stderr "$work/f.err"
	fi
}

for spec in "0 50" "1 50" "4097 50" "1048577 10"; do
	echo_run $spec
done
echo_many 8 4097 50
echo_many 4 1048577 5

head -c 100M /dev/urandom >"$work/big"
: >"$work/empty"
head -c 1 /dev/urandom >"$work/one"
copy_run "$work/big"
copy_run "$work/empty"
copy_run "$work/one"
# The receiver's confirmation may overtake the sender's reaping of its last
# send completion (about 1 copy in 40 of small files did, and failed).
head -c 4097 /dev/urandom >"$work/page1"
for _ in $(seq 20); do
	copy_run "$work/page1"
done

# Nobody listens on port - 50 (our ports only go up).
fail_run "no listener" "$bin/zc_copy" -b "$ZC_ADDR_A" -t 3 "$work/one" "$(hostport "$ZC_ADDR_B" $((port - 50)))"
fail_run usage "$bin/zc_copy" -b "$ZC_ADDR_A" "$work/one"

echo "examples: $((runs - failed)) of $runs runs passed"
[ $failed -eq 0 ]
