#!/usr/bin/env bash
# rxe test: a real filesystem on /dev/nbd0 through zc_blk_nbd and zc_blk_legacy_target.
#   target --file (256 MiB on the guest's /tmp) on $ZC_ADDR_B; zc_blk_nbd from
#   $ZC_ADDR_A attaches /dev/nbd0; mkfs.ext4 (which discards the device
#   first); mount; a 64 MiB random file; sync; umount; detach (zc_blk_nbd -d,
#   the bridge exits 0); the target restarts on the same file; re-attach;
#   mount; sha256 unchanged; umount; fsck.ext4 -fn clean; detach (SIGTERM to
#   the bridge this time). The bridge must never have had to reconnect.
#
#   blk_fs.sh BINDIR     (the directory holding zc_blk_legacy_target and zc_blk_nbd)
# ZC_BLK_KEEP=DIR writes the target's and the bridge's logs there (kept).
set -u

. "$(dirname "$0")/lib.sh"
bin=${1:?usage: blk_fs.sh BINDIR}
port=$((7600 + ($$ % 40) * 2))
dev=/dev/nbd0
mnt=/mnt
work=$(mktemp -d "${TMPDIR:-/tmp}/blk_fs.XXXXXX")
logs=${ZC_BLK_KEEP:-$work}
rm -f "$logs/target.log" "$logs/nbd.log"
tgt= nbd=
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt"
	[ -n "$nbd" ] && { "$bin/zc_blk_nbd" -d "$dev" 2>/dev/null; timeout 20 tail --pid="$nbd" -f /dev/null; }
	[ -n "$tgt" ] && kill "$tgt" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# rxe error and retry counters that are not 0, for the log.
counters() {
	local d f v
	for d in /sys/class/infiniband/*; do
		printf '    %s:' "${d##*/}"
		for f in "$d"/ports/1/hw_counters/*; do
			v=$(cat "$f" 2>/dev/null) && [ "$v" != 0 ] && printf ' %s=%s' "${f##*/}" "$v"
		done
		echo
	done
}

fail() {
	echo "FAIL: $*"
	for f in "$logs"/*.log; do
		[ -f "$f" ] && { echo "--- $(basename "$f"):"; sed 's/^/    /' "$f"; }
	done
	echo "--- rxe counters:"; counters
	echo "--- dmesg (last 15 lines):"; dmesg | tail -n 15 | sed 's/^/    /'
	exit 1
}

start_target() {
	local i
	timeout 250 "$bin/zc_blk_legacy_target" --listen "$ZC_ADDR_B:$port" --file "$work/disk.img" \
		>>"$logs/target.log" 2>&1 &
	tgt=$!
	for i in $(seq 300); do
		[ "$(grep -c "listening on" "$logs/target.log")" -ge "$1" ] && { echo "ok: target started"; return; }
		kill -0 "$tgt" 2>/dev/null || break
		sleep 0.1
	done
	fail "the target did not start"
}

stop_target() {
	local rc
	kill -TERM "$tgt"
	wait "$tgt"
	rc=$?
	tgt=
	[ $rc -eq 0 ] || fail "target exit status $rc after SIGTERM"
	echo "ok: target stopped"
}

attach() {
	local i
	timeout 250 "$bin/zc_blk_nbd" -b "$ZC_ADDR_A" "$ZC_ADDR_B:$port" "$dev" >>"$logs/nbd.log" 2>&1 &
	nbd=$!
	for i in $(seq 300); do
		[ "$(grep -c "attached to" "$logs/nbd.log")" -ge "$1" ] && break
		kill -0 "$nbd" 2>/dev/null || fail "zc_blk_nbd exited before attaching"
		sleep 0.1
	done
	for i in $(seq 100); do
		[ "$(blockdev --getsize64 "$dev")" = $((256 << 20)) ] && break
		sleep 0.1
	done
	[ "$(blockdev --getsize64 "$dev")" = $((256 << 20)) ] || fail "$dev has $(blockdev --getsize64 "$dev") bytes"
	echo "ok: attached: $(grep "attached to" "$logs/nbd.log" | tail -n 1)"
}

detach() { # detach -d|TERM: with zc_blk_nbd -d, or SIGTERM to the bridge
	local rc
	if [ "$1" = -d ]; then
		"$bin/zc_blk_nbd" -d "$dev" || fail "zc_blk_nbd -d failed"
	else
		kill -TERM "$nbd"
	fi
	timeout 30 tail --pid="$nbd" -f /dev/null
	wait "$nbd"
	rc=$?
	nbd=
	[ $rc -eq 0 ] || fail "zc_blk_nbd exit status $rc after $1"
	[ "$(cat /sys/block/nbd0/size)" = 0 ] || fail "$dev still has a size after $1"
	echo "ok: detached with $1, the bridge exited 0"
}

modprobe nbd || fail "modprobe nbd"
modprobe ext4 || fail "modprobe ext4"
[ -b "$dev" ] || fail "no $dev after modprobe nbd"
truncate -s 256M "$work/disk.img"
head -c 64M /dev/urandom >"$work/data.bin"
want=$(sha256sum <"$work/data.bin" | cut -d' ' -f1)

start_target 1
attach 1
step "mkfs.ext4" mkfs.ext4 -q -F "$dev"
step "mount" mount -t ext4 "$dev" "$mnt"
step "copy a 64 MiB random file" cp "$work/data.bin" "$mnt/data.bin"
step "sync" sync
step "umount" umount "$mnt"
detach -d
stop_target

start_target 2
attach 2
step "mount again" mount -t ext4 -o ro "$dev" "$mnt"
got=$(sha256sum <"$mnt/data.bin" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "sha256 after the restart: $got, expected $want"
echo "ok: sha256 unchanged after detach, target restart and re-attach ($want)"
step "umount" umount "$mnt"
step "fsck.ext4 -fn" fsck.ext4 -fn "$dev"
detach TERM
stop_target
no_reconnect "$logs/nbd.log" || fail "the bridge had to re-establish its connection on a clean link"
echo "ok: the bridge never reconnected"
grep -E "failed|never" "$logs/target.log" "$logs/nbd.log" | sed 's/^/    note: /'
echo "rxe counters:"; counters
echo "blk_fs: passed"
