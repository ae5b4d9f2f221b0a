#!/bin/bash
# The policy simulation at full size (bench/policy_sim.c): a month (28 days)
# of generated events with consent events for 10k users (seed 42) through the
# example journeys, policies off and on, RUNS rounds (default 3) in one
# process, medians of the rates. Builds Release first, into BUILD_DIR (default
# build/bench, as bench/pipeline.sh). Exits 1 when a figure that must be 0 with
# policies on is not.
#   bench/policy_sim.sh            RUNS=5 USERS=100000 bench/policy_sim.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build/bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCUE_TESTS=OFF -DCUE_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target policy_sim >/dev/null
"$build/bench/policy_sim" --users "${USERS:-10000}" --days "${DAYS:-28}" --runs "${RUNS:-3}" \
    --seed "${SEED:-42}" --policies "${POLICIES:-deploy/policies.json}" \
    --machines "${MACHINES:-deploy/machines}"
