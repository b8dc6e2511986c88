#!/usr/bin/env bash
# unit test install_consumer: `cmake --install` the build into a scratch
# prefix, then build test/install/consumer.c out of tree against that copy
# (a) with pkg-config, (b) with find_package(zcrdma), shared and static each,
# run every program, and check the installed files, the SONAME and that the
# shared library exports only zc_* symbols and the memory hooks' libc names.
# Needs no RDMA device.
#
#   consumer.sh BUILD_DIR SOURCE_DIR
# Environment (set by ctest): CMAKE (cmake binary), CC (C compiler),
# ZC_CONSUMER_FLAGS (extra compile/link flags, e.g. the sanitizers).
set -euo pipefail

build=$(cd "${1:?usage: consumer.sh BUILD_DIR SOURCE_DIR}" && pwd)
src=$(cd "${2:?usage: consumer.sh BUILD_DIR SOURCE_DIR}" && pwd)
cmake=${CMAKE:-cmake}
cc=${CC:-cc}
# shellcheck disable=SC2206
flags=(-Wall -Wextra -Werror ${ZC_CONSUMER_FLAGS:-})

work=$(mktemp -d "${TMPDIR:-/tmp}/zc_install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
failed=0

fail() { echo "FAIL: $*" >&2; failed=1; }
die() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log" >&2; die "cmake --install failed"; }

# Where things went (GNUInstallDirs may say lib or lib/<multiarch>).
mapfile -t pcs < <(find "$prefix" -path '*/pkgconfig/zcrdma.pc')
[ "${#pcs[@]}" -eq 1 ] || die "expected one installed zcrdma.pc, found ${#pcs[@]}"
libdir=$(dirname "$(dirname "${pcs[0]}")")
export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --exists zcrdma || die "pkg-config does not find zcrdma in $PKG_CONFIG_PATH"
version=$(pkg-config --modversion zcrdma)
includedir=$(pkg-config --variable=includedir zcrdma)
soname=libzcrdma.so.${version%%.*}
echo "version $version, libdir $libdir, includedir $includedir"

step "installed files"
for f in "$includedir/zcrdma.h" "$libdir/libzcrdma.so" "$libdir/$soname" "$libdir/libzcrdma.so.$version" \
	"$libdir/libzcrdma.a" "$libdir/cmake/zcrdma/zcrdmaConfig.cmake" \
	"$libdir/cmake/zcrdma/zcrdmaConfigVersion.cmake" "$libdir/cmake/zcrdma/zcrdmaTargets.cmake"; do
	[ -e "$f" ] || fail "not installed: $f"
done
# zcrun finds the preload library, and that library its libzcrdma, in this prefix.
[ -e "$libdir/libzcrdma_preload.so" ] || fail "not installed: $libdir/libzcrdma_preload.so"
"$prefix/bin/zcrun" true || fail "the installed zcrun does not run a program"
ldd "$libdir/libzcrdma_preload.so" | grep -q "libzcrdma.so.* => $libdir/" ||
	fail "the installed libzcrdma_preload.so does not find $libdir/libzcrdma.so"
cmp -s "$includedir/zcrdma.h" "$src/include/zcrdma.h" || fail "installed zcrdma.h differs from include/zcrdma.h"
# Nothing else: no tests, examples or benchmarks.
while IFS= read -r f; do
	case ${f#"$prefix"/} in
	*/libzcrdma.so | */libzcrdma.so.* | */libzcrdma.a | */pkgconfig/zcrdma.pc | */cmake/zcrdma/zcrdma*.cmake | */zcrdma.h) ;;
	*/libzcrdma_preload.so | bin/zcrun) ;; # docs/preload.md
	*) fail "unexpected installed file: $f" ;;
	esac
done < <(find "$prefix" ! -type d)

step "SONAME and exported symbols of $libdir/$soname"
got=$(readelf -d "$libdir/libzcrdma.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$got" = "$soname" ] || fail "SONAME is '$got', want '$soname'"
# grep -q would stop reading early: readelf's SIGPIPE then fails the pipe (pipefail)
readelf -V "$libdir/$soname" | grep -c 'Name: ZCRDMA_' >/dev/null || fail "no ZCRDMA_* version node (symbol map not applied?)"
nm -D --defined-only "$libdir/$soname" >"$work/nm.txt" || die "nm -D failed"
nzc=0
while read -r -a w; do
	name=${w[${#w[@]} - 1]} type=${w[${#w[@]} - 2]}
	name=${name%%@*}
	case $name in
	zc_*) nzc=$((nzc + 1)) ;;
	ZCRDMA_*) [ "$type" = A ] || fail "exported symbol $name ($type)" ;;
	_init | _fini) ;;
	# The memory hooks' interposers (src/memhook.c, include/zcrdma.h).
	mmap | mmap64 | munmap | mremap | madvise | shmdt) [ "$type" = T ] || fail "hook $name ($type)" ;;
	*) fail "exported symbol outside zc_*: $name ($type)" ;;
	esac
done <"$work/nm.txt"
for s in zc_version zc_strerror; do
	grep -Eq " $s(@|\$)" "$work/nm.txt" || fail "$s is not exported"
done
echo "$nzc zc_* symbols exported"

# $1: a program that must use the installed shared library.
uses_installed() {
	local lib
	lib=$(LD_LIBRARY_PATH=$libdir ldd "$1" | sed -n "s/^[[:space:]]*$soname => \([^ ]*\).*/\1/p")
	if [ -z "$lib" ] || [ "$(readlink -f "$lib")" != "$(readlink -f "$libdir/$soname")" ]; then
		fail "$1 resolves $soname to '${lib:-nothing}', not $libdir"
	fi
}
# $1: a program that must have libzcrdma linked in statically.
is_static() {
	! readelf -d "$1" | grep -c "NEEDED.*libzcrdma" >/dev/null || fail "$1 needs libzcrdma.so, expected the static library"
}
run() { echo "\$ $*"; "$@" || fail "$* exited $?"; }

step "(a) pkg-config: cc \$(pkg-config --cflags --libs zcrdma)"
# shellcheck disable=SC2046
"$cc" "${flags[@]}" -DZC_EXPECT_VERSION="\"$version\"" -o "$work/pc_consumer" "$src/test/install/consumer.c" \
	$(pkg-config --cflags --libs zcrdma) || die "pkg-config build failed"
uses_installed "$work/pc_consumer"
run env LD_LIBRARY_PATH="$libdir" "$work/pc_consumer"
# shellcheck disable=SC2046
"$cc" "${flags[@]}" -DZC_EXPECT_VERSION="\"$version\"" -o "$work/pc_consumer_static" "$src/test/install/consumer.c" \
	$(pkg-config --cflags zcrdma) -Wl,-Bstatic -lzcrdma -Wl,-Bdynamic -Wl,--as-needed \
	$(pkg-config --static --libs zcrdma) || die "pkg-config --static build failed"
is_static "$work/pc_consumer_static"
run "$work/pc_consumer_static"

step "(b) find_package(zcrdma) with -DCMAKE_PREFIX_PATH=$prefix"
"$cmake" -S "$src/test/install" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="${flags[*]}" -DCMAKE_BUILD_TYPE=Release \
	>"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; die "configuring the consumer failed"; }
found=$(sed -n 's/^zcrdma_DIR:PATH=//p' "$work/consumer-build/CMakeCache.txt")
[ "$(readlink -f "$found")" = "$(readlink -f "$libdir/cmake/zcrdma")" ] ||
	fail "find_package(zcrdma) used '$found', not $libdir/cmake/zcrdma"
"$cmake" --build "$work/consumer-build" >"$work/build.log" 2>&1 ||
	{ cat "$work/build.log" >&2; die "building the consumer failed"; }
uses_installed "$work/consumer-build/consumer"
run "$work/consumer-build/consumer" # build RPATH points at the prefix
is_static "$work/consumer-build/consumer_static"
run "$work/consumer-build/consumer_static"

if [ "$failed" -ne 0 ]; then
	echo "install_consumer: FAILED" >&2
	exit 1
fi
echo "install_consumer: OK"
