#!/bin/bash
# Installs the Debian 12 packages cuepoint builds, tests and runs with.
# Skips apt entirely when they are all present already.
set -euo pipefail

# libglib2.0-dev: the tz module's time zones (GLib's GTimeZone, which reads the
# system's compiled tz data rather than carrying a copy of its own).
# tzdata: /usr/share/zoneinfo, the data GTimeZone reads at run time and that
# Debian's (security) updates keep current; also what `date` and `zdump` read to
# compute the tz tests' expected instants.
# libjemalloc-dev: the executables' allocator (CMakeLists.txt, CUE_JEMALLOC).
# clang: the fuzz build (scripts/fuzz.sh, CUE_FUZZ): libFuzzer is clang's, and
# clang's UBSan sees what gcc's does not (NULL + 0, float-to-int overflow).
# libclang-rt-14-dev: clang 14's runtime libraries, libFuzzer among them
# (libclang_rt.fuzzer-x86_64.a); clang only recommends it, and recommends
# are not installed here.
# llvm: llvm-symbolizer, for the fuzzers' stack traces with file and line.
packages=(build-essential cmake pkg-config librdkafka-dev librocksdb-dev libjansson-dev
          libuv1-dev libcriterion-dev libxxhash-dev libmicrohttpd-dev libglib2.0-dev tzdata kcat curl
          libjemalloc-dev clang libclang-rt-14-dev llvm)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps.sh: run as root or install sudo" >&2; exit 77; }
    SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
