# Sourced by the shell rxe tests: the guest check, pass/fail bookkeeping,
# showing logs, waiting for servers, and zc_perf server/client pairs.

# Outside the rxe guest (or a host with native rxe) there is nothing to test:
# exit 77, which ctest reports as skipped.
if [ -z "${ZC_ADDR_A:-}" ] || [ -z "${ZC_ADDR_B:-}" ]; then
	echo "SKIPPED: ZC_ADDR_A/ZC_ADDR_B are not set; run in the rxe guest (scripts/rxe-guest)" >&2
	exit 77
fi

# ZC_TEST_FAMILY=6: the same test over the devices' IPv6 addresses.
if [ "${ZC_TEST_FAMILY:-4}" = 6 ]; then
	if [ -z "${ZC_ADDR6_A:-}" ] || [ -z "${ZC_ADDR6_B:-}" ]; then
		echo "SKIPPED: ZC_TEST_FAMILY=6 but ZC_ADDR6_A/ZC_ADDR6_B are not set" >&2
		exit 77
	fi
	ZC_ADDR_A=$ZC_ADDR6_A ZC_ADDR_B=$ZC_ADDR6_B
fi

# hostport ADDR PORT: ADDR:PORT as the tools parse it ([ADDR]:PORT for IPv6).
hostport() {
	case $1 in
	*:*) echo "[$1]:$2" ;;
	*) echo "$1:$2" ;;
	esac
}

failed=0 runs=0

bad() {
	failed=$((failed + 1))
	echo "FAIL: $*"
}

show() { # show NAME FILE: a log, indented
	echo "--- $1:"
	sed 's/^/    /' "$2"
}

# wait_for LOG PATTERN PID SECONDS: until PATTERN is in LOG (0), or PID died
# or time ran out (1).
wait_for() {
	local i
	for i in $(seq $(($4 * 50))); do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.02
	done
	return 1
}

# step WHAT CMD...: runs CMD (its output in $work/step.out, shown on
# failure), and fails the test through the caller's fail() with WHAT if it
# fails; says how long it took otherwise.
step() {
	local what=$1 t0 rc
	shift
	t0=$(date +%s.%N)
	"$@" >"$work/step.out" 2>&1
	rc=$?
	[ $rc -eq 0 ] || { cat "$work/step.out"; fail "$what (exit status $rc)"; }
	echo "ok: $what ($(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s)"
}

# sanitizer_clean LOG...: no ASan, LSan or UBSan report in any LOG.
sanitizer_clean() {
	! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$@"
}

# wait_listening LOG PID: until the server says it listens (at most 120 s;
# a server under valgrind in the emulated guest takes a while).
wait_listening() {
	wait_for "$1" "listening on" "$2" 120
}

# perf_pair EXPECT ARGS...: one zc_perf server/client run ($perf, logs in
# $log, a new $port each); EXPECT is "ok" or "refused" (both sides must
# refuse mismatched options). CLIENT_EXTRA: options only the client gets
# (last, so they win).
CLIENT_EXTRA=()
perf_pair() {
	local expect=$1 srv srv_rc cli_rc
	shift
	runs=$((runs + 1))
	port=$((port + 1))
	"$perf" -d "$ZC_DEV_B" -b "$ZC_ADDR_B" -p "$port" --wait 60 "$@" >"$log/server" 2>&1 &
	srv=$!
	# --wait: the client retries until the server listens.
	"$perf" -d "$ZC_DEV_A" -b "$ZC_ADDR_A" -p "$port" --wait 30 "$@" "${CLIENT_EXTRA[@]}" "$ZC_ADDR_B" \
		>"$log/client" 2>&1
	cli_rc=$?
	wait "$srv"
	srv_rc=$?
	if [ "$expect" = ok ] && [ $cli_rc -eq 0 ] && [ $srv_rc -eq 0 ]; then
		echo "ok: $* -> $(grep -A1 '#bytes' "$log/client" | sed -n 2p | tr -s ' ' | cut -c1-60)"
		return
	fi
	if [ "$expect" = refused ] && [ $cli_rc -ne 0 ] && [ $srv_rc -ne 0 ] &&
		grep -q "differs" "$log/client" && grep -q "differs" "$log/server"; then
		echo "ok (refused as expected): $* -> $(grep differs "$log/client" | head -n 1)"
		return
	fi
	bad "($expect): $* (client rc $cli_rc, server rc $srv_rc)"
	show client "$log/client"
	show server "$log/server"
}
