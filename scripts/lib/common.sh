# Shared by the scripts under scripts/: paths and small helpers.
# shellcheck shell=bash

ZC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ZC_CACHE=${ZC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zcrdma}
ZC_KERNEL_CACHE=$ZC_CACHE/kernel

zc_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
zc_die() { zc_log "error: $*"; exit 1; }

# The unpacked guest kernel install-deps chose last: prints its ABI (e.g. 6.1.0-56-amd64).
zc_kernel_abi() {
	[ -r "$ZC_KERNEL_CACHE/current" ] || return 1
	cat "$ZC_KERNEL_CACHE/current"
}
