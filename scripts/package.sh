#!/bin/bash
# Builds the Debian package: a Release build of cuepoint (no tests, no
# benchmarks) in build/pkg, installed under /usr by CPack's DEB generator.
# Prints the .deb's path on its last line. SOURCE_DATE_EPOCH defaults to the
# commit's time, so two packages of one commit are the same bytes.
#
#   scripts/package.sh [BUILD_DIR]      (default build/pkg)
#
# Tests and scripts/image.sh call it at once: a lock on the build directory
# makes the second wait for the first, then find its work done.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/pkg}
mkdir -p "$build"
exec 9> "$build/.lock"
flock 9
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
# CUE_COMMIT names the commit where there is no git checkout (a Docker
# build context without .git): `cuepoint version` and /metrics report it.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DCUE_TESTS=OFF -DCUE_BENCH=OFF -DCUE_HARDEN=ON -DCUE_COMMIT="${CUE_COMMIT:-}" \
      > "$build/configure.log"
cmake --build "$build" -j"$(nproc)" --target cuepoint > "$build/build.log"
(cd "$build" && cpack -G DEB > cpack.log)
deb=$(ls -t "$build"/cuepoint_*_amd64.deb | head -n1)
echo "$(realpath "$deb")"
