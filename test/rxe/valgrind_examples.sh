#!/usr/bin/env bash
# rxe test: the examples once each under valgrind memcheck
# (--error-exitcode=1 --leak-check=full, suppressions in test/valgrind.supp):
# zc_echo (server and verifying client, eager and rendezvous sizes), zc_copy
# (a 4 MiB file, sha256 compared), zc_blk_target with zc_blk_bench (1 s of
# random writes then reads) and blk_check io (written, read back, verified).
# Any memcheck error or definite leak in any process fails the test, and so
# does a block initiator that had to reconnect.
# Only for the plain build: valgrind cannot run ASan binaries.
#
#   valgrind_examples.sh BINDIR SUPPFILE
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: valgrind_examples.sh BINDIR SUPPFILE}
supp=${2:?usage: valgrind_examples.sh BINDIR SUPPFILE}
port=$((7860 + ($$ % 40) * 4))
work=$(mktemp -d "${TMPDIR:-/tmp}/zc_valgrind.XXXXXX")
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$work"' EXIT
vg=(valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
	--show-leak-kinds=definite,indirect
	--suppressions="$supp" --track-fds=no)

# result NAME RC LOG...: pass if RC is 0 and no log has a valgrind report.
result() {
	local name=$1 rc=$2 f
	shift 2
	runs=$((runs + 1))
	if [ "$rc" -eq 0 ] && ! grep -q '^==[0-9]*==' "$@"; then
		echo "ok: $name under valgrind"
	else
		bad "$name under valgrind (exit $rc)"
		for f in "$@"; do show "$(basename "$f")" "$f"; done
	fi
}

# zc_echo: one server, two verifying clients (eager and rendezvous sizes).
port=$((port + 1))
timeout 600 "${vg[@]}" "$bin/zc_echo" -l "$ZC_ADDR_B:$port" -n 2 >"$work/es.out" 2>"$work/es.err" &
srv=$!
wait_listening "$work/es.err" $srv
timeout 300 "${vg[@]}" "$bin/zc_echo" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$port" -s 1000 -c 20 --verify -t 120 \
	>"$work/e1.out" 2>"$work/e1.err"
rc1=$?
timeout 300 "${vg[@]}" "$bin/zc_echo" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$port" -s 300000 -c 5 --verify -t 120 \
	>"$work/e2.out" 2>"$work/e2.err"
rc2=$?
wait $srv
rc=$?
srv=
result "zc_echo (server, clients of 1000 B and 300000 B)" $((rc | rc1 | rc2)) "$work/es.err" "$work/e1.err" "$work/e2.err"

# zc_copy of a 4 MiB file.
port=$((port + 1))
head -c 4M /dev/urandom >"$work/in"
timeout 600 "${vg[@]}" "$bin/zc_copy" -l "$ZC_ADDR_B:$port" -a 300 -v "$work/out" >"$work/cr.out" 2>"$work/cr.err" &
srv=$!
wait_listening "$work/cr.err" $srv
timeout 300 "${vg[@]}" "$bin/zc_copy" -b "$ZC_ADDR_A" -t 120 "$work/in" "$ZC_ADDR_B:$port" >"$work/cs.out" 2>"$work/cs.err"
rc1=$?
wait $srv
rc=$?
srv=
cmp -s "$work/in" "$work/out" || { rc=1; echo "copy differs" >>"$work/cr.err"; }
result "zc_copy (4 MiB, files equal)" $((rc | rc1)) "$work/cr.err" "$work/cs.err"

# zc_blk_target with the NVMe-oF host: zc_blk_bench and blk_check.
port=$((port + 1))
nqn=nqn.2024-01.io.zcrdma:valgrind
timeout 900 "${vg[@]}" "$bin/zc_blk_target" --listen "$ZC_ADDR_B:$port" --memory 8M --nqn $nqn >"$work/t.err" 2>&1 &
srv=$!
wait_listening "$work/t.err" $srv
rc=0
for rw in randwrite randread; do
	timeout 300 "${vg[@]}" "$bin/zc_blk_bench" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$port" --nqn $nqn --rw $rw --bs 16k --qd 4 \
		--time 1 >"$work/b$rw.err" 2>&1 || rc=1
done
timeout 300 "${vg[@]}" "$bin/blk_check" io "$ZC_ADDR_A" "$ZC_ADDR_B:$port" $nqn 0 2048 5 >"$work/c.err" 2>&1 || rc=1
kill -TERM $srv
wait $srv || rc=1
srv=
result "zc_blk_target + zc_blk_bench (randwrite, randread) + blk_check io" $rc \
	"$work/t.err" "$work/brandwrite.err" "$work/brandread.err" "$work/c.err"

echo "valgrind_examples: $((runs - failed)) of $runs runs passed"
[ $failed -eq 0 ]
