#!/bin/bash
# Runs the engine benchmark at full size: each case RUNS times (default 3) in
# its own process, then prints the median line of each. Builds Release first.
#   bench/run.sh                 1M events over 100k users, and 1M users
#   RUNS=5 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCUE_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target bench_engine >/dev/null
runs=${RUNS:-3}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
median() { # lines on stdin; prints the one with the median events_per_s
    sort -t= -k7 -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}
run_case() { # case users events
    for i in $(seq "$runs"); do
        rm -rf "$work/state"
        ./build/release/bench/bench_engine --case "$1" --users "$2" --events "$3" --workdir "$work" 2>/dev/null
    done | sort -t' ' -k6 | awk -F'events_per_s=' '{ split($2, a, " "); print a[1] "\t" $0 }' \
         | sort -n | awk -F'\t' '{ l[NR] = $2 } END { print "median of " NR ": " l[int((NR + 1) / 2)] }'
}
run_case decode 100000 1000000
run_case engine 100000 1000000
run_case file 100000 1000000
run_case file 1000000 1000000
