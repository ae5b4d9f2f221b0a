#!/bin/bash
# Installs the Debian 12 packages cuepoint builds, tests and runs with.
# Skips apt entirely when they are all present already.
#
#   scripts/deps.sh          what the build and the demo need
#   scripts/deps.sh --test   also what the tests of shipping it need (the
#                            package, the image, Kubernetes, Prometheus) and
#                            the fuzz build; scripts/test.sh passes it
#   scripts/deps.sh --fuzz   what the build needs and the fuzz build (clang,
#                            libFuzzer); scripts/fuzz.sh passes it
set -euo pipefail

# libglib2.0-dev: the tz module's time zones (GLib's GTimeZone, which reads the
# system's compiled tz data rather than carrying a copy of its own).
# tzdata: /usr/share/zoneinfo, the data GTimeZone reads at run time and that
# Debian's (security) updates keep current; also what `date` and `zdump` read to
# compute the tz tests' expected instants.
# libjemalloc-dev: the executables' allocator (CMakeLists.txt, CUE_JEMALLOC).
# python3: the admin port's flood test client (tests/integration/http_flood.py),
# which holds hundreds of connections at once, more than curl or a shell can.
packages=(build-essential cmake pkg-config librdkafka-dev librocksdb-dev libjansson-dev
          libuv1-dev libcriterion-dev libxxhash-dev libmicrohttpd-dev libglib2.0-dev tzdata kcat curl
          libjemalloc-dev python3)

# Shipping it (docs/deploy.md) and the tests of that, with --test:
# dpkg-dev and file: CPack's DEB generator computes the package's Depends with
#   dpkg-shlibdeps and finds the ELF files with `file` (scripts/package.sh).
# lintian: tests/integration/deb.sh checks that every tag it reports is
#   explained in docs/deploy.md.
# systemd: `systemd-analyze verify` and `security --offline` on the units.
# mmdebstrap, umoci: scripts/image.sh builds the container image from Debian's
#   archive (a root filesystem, then an OCI layout); skopeo reads the result
#   back as a container tool would (tests/integration/image.sh).
# prometheus: promtool checks and unit-tests deploy/prometheus/cuepoint.rules.yml,
#   and a real Prometheus scrapes `cuepoint run` (tests/integration/prometheus.sh).
# jq: the tests read JSON (image configs, --print-config, Prometheus' API).
# python3-yaml: the tests read YAML (the rendered Kubernetes objects, the rules).
# kubernetes-client: `kubectl kustomize` renders deploy/kubernetes. Debian's
#   kubectl; a machine with another kubectl package (the Kubernetes project's
#   own, or the cloud SDK's) already has the command, and the two packages
#   both own /usr/bin/kubectl.
# chromium: the console on the admin port is loaded in headless Chromium,
#   its DOM checked against /metrics and a screenshot taken
#   (tests/integration/console.sh).
if [ "${1:-}" = --test ]; then
    packages+=(dpkg-dev file lintian systemd mmdebstrap umoci skopeo prometheus jq python3-yaml chromium)
    command -v kubectl >/dev/null || packages+=(kubernetes-client)
fi
# The fuzz build, with --fuzz (scripts/fuzz.sh) and with --test (scripts/test.sh
# fuzzes after the suites):
# clang: libFuzzer is clang's, and clang's UBSan sees what gcc's does not
#   (NULL + 0, for one).
# libclang-rt-14-dev: clang 14's runtime libraries, libFuzzer among them
#   (libclang_rt.fuzzer-x86_64.a); clang only recommends it, and recommends
#   are not installed here.
# llvm: llvm-symbolizer, for the fuzzers' stack traces with file and line, and
#   llvm-cov and llvm-profdata for scripts/fuzz.sh --coverage.
if [ "${1:-}" = --test ] || [ "${1:-}" = --fuzz ]; then
    packages+=(clang libclang-rt-14-dev llvm)
fi

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
# The prometheus package starts its own service (on port 9090, scraping this
# host) where systemd runs: the tests start their own on a free port, and a
# build machine has no use for a standing one.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
