#!/bin/bash
# The latency rig's own floor: bench/pipeline.sh's latency measurement with
# bench/latency_relay (which turns the timed events into their triggers at
# once) in cuepoint's place, on a fresh `cuepoint dev-broker` with
# LAT_PARTITIONS partitions. What it prints is the mock broker's, the Kafka
# clients' and the cores' share of the latency figure; cuepoint's share is
# the rest.
#
#   bench/latency_floor.sh                                   220k events/s for 10 s
#   LAT_RATE=2000 LAT_SECONDS=2 bench/latency_floor.sh       smoke size
#
# Prints bench/latency's line (p50_ms, p99_ms, max_ms, triggers, expected)
# and, with TRACE=FILE, writes its trace (cause time, latency) there. Fails
# unless every trigger came back.
set -euo pipefail
cd "$(dirname "$0")/.."
LAT_RATE=${LAT_RATE:-220000}
LAT_SECONDS=${LAT_SECONDS:-10}
LAT_PARTITIONS=${LAT_PARTITIONS:-4}
if [ -z "${BIN_DIR:-}" ]; then
    ./scripts/deps.sh
    BIN_DIR=build/bench
    cmake -S . -B "$BIN_DIR" -DCMAKE_BUILD_TYPE=Release -DCUE_TESTS=OFF >/dev/null
    cmake --build "$BIN_DIR" -j"$(nproc)" --target cuepoint latency latency_relay >/dev/null
fi
BIN_DIR=$(realpath "$BIN_DIR")
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "latency_floor.sh: $*" >&2; exit 1; }

"$BIN_DIR/cuepoint" dev-broker --partitions "$LAT_PARTITIONS" --topic lat-events \
    --topic lat-triggers > "$work/broker.txt" 2> "$work/broker.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/broker.txt" ] && break; sleep 0.1; done
bootstrap=$(head -n1 "$work/broker.txt")
[ -n "$bootstrap" ] || fail "dev-broker printed no address"
"$BIN_DIR/bench/latency_relay" "$bootstrap" lat-events lat-triggers > "$work/relay.out" \
    2> "$work/relay.log" &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$work/relay.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/relay.out" || fail "the relay did not start: $(cat "$work/relay.log")"
sleep 1 # its first fetches out, as cuepoint's are once it is ready
trace=()
[ -n "${TRACE:-}" ] && trace=(--trace "$TRACE")
line=$("$BIN_DIR/bench/latency" --bootstrap "$bootstrap" --events-topic lat-events \
    --triggers-topic lat-triggers --rate "$LAT_RATE" --seconds "$LAT_SECONDS" \
    --set fetch.wait.max.ms=1 "${trace[@]}")
echo "bench=latency_floor $line"
got=$(sed -E 's/.* triggers=([0-9]+) .*/\1/' <<< "$line")
want=$(sed -E 's/.* expected=([0-9]+) .*/\1/' <<< "$line")
[ -n "$want" ] && [ "$want" -gt 0 ] && [ "$got" = "$want" ] ||
    fail "$got triggers came back of $want"
