#!/bin/bash
# The main job on its embedded default: installs what it needs, builds, and
# runs `cuepoint demo` (the example journeys over generated events).
# Extra arguments go to `cuepoint demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCUE_TESTS=OFF -DCUE_BENCH=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target cuepoint >/dev/null
exec ./build/release/cuepoint demo "$@"
