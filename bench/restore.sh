#!/bin/bash
# The restore benchmark at full size (bench/restore.c): a 1M-user partition's
# changelog applied to a fresh store, RUNS rounds (default 3), medians.
# Target: >= 100 MB/s. Builds Release into BUILD_DIR (default build/bench).
#   bench/restore.sh            USERS=2000000 RUNS=5 bench/restore.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
build=${BUILD_DIR:-build/bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCUE_TESTS=OFF -DCUE_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target restore >/dev/null
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$build/bench/restore" --users "${USERS:-1000000}" --runs "${RUNS:-3}" --machines deploy/machines --workdir "$work"
