#!/bin/bash
# The whole test suite: installs what it needs, builds with -Werror under
# AddressSanitizer and UndefinedBehaviorSanitizer, runs every unit, golden and
# integration test, then the benchmarks at smoke size, then every fuzz target
# for 20 s (scripts/fuzz.sh; FUZZ_SECONDS=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh --test
build=build/ci
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCUE_WERROR=ON -DCUE_SANITIZE=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 1200)
fuzz_seconds=${FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ]; then
    ./scripts/fuzz.sh "$fuzz_seconds"
fi
