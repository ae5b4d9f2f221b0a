#!/bin/bash
# The replay benchmark: the same generated records through `cuepoint run
# --stop-at-end` (the live pipeline's rate), `cuepoint replay` from the topic,
# and `cuepoint replay --input FILE`, RUNS rounds each, medians and ratios
# from the same run.
#
#   bench/replay.sh                                 full size (1M events, 100k users, 3 rounds)
#   EVENTS=20000 USERS=2000 RUNS=1 bench/replay.sh  smoke size
#
# Everything on this machine: `cuepoint dev-broker` (127.0.0.1) with
# PARTITIONS partitions (64: the mock keeps about 5 MB per partition, so fewer
# would drop records), EVENTS records from `cuepoint generate --seed $SEED`
# produced once with kcat keyed by user id (librdkafka's partitioner, which
# the file replay uses too). The live rate is records / active_seconds (first
# record to last, from its "stopped" line: the group join is left out). The
# replay rates are records / the replay's whole wall time (from its --stats):
# connecting, planning, the final commit and the trigger file included, so
# they err low. Every round checks that all records were read and that the
# three give the same number of triggers. Target: replay >= the live rate.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

EVENTS=${EVENTS:-1000000}
USERS=${USERS:-100000}
RUNS=${RUNS:-3}
SEED=${SEED:-42}
PARTITIONS=${PARTITIONS:-64}
PROPS='"fetch.max.bytes": "104857600", "max.partition.fetch.bytes": "4194304", "fetch.wait.max.ms": "100"'
if [ -z "${BIN_DIR:-}" ]; then
    ./scripts/deps.sh
    BIN_DIR=build/bench
    cmake -S . -B "$BIN_DIR" -DCMAKE_BUILD_TYPE=Release -DCUE_TESTS=OFF >/dev/null
    cmake --build "$BIN_DIR" -j"$(nproc)" --target cuepoint >/dev/null
fi
cuepoint=$(realpath "$BIN_DIR")/cuepoint
command -v kcat >/dev/null || { echo "replay.sh: kcat is not installed (scripts/deps.sh installs it)" >&2; exit 1; }

work=$(mktemp -d)
broker_pid=""
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "replay.sh: $*" >&2; exit 1; }

# The live runs keep the changelog (the default); the mock cluster cannot
# create a topic on request, so each round's is made here with the input's
# partition count (an auto-created one would have 4, and be refused).
changelogs=()
for round in $(seq "$RUNS"); do changelogs+=(--topic "bench-replay-$round-changelog"); done
"$cuepoint" dev-broker --partitions "$PARTITIONS" --topic events "${changelogs[@]}" \
    > "$work/broker.txt" 2> "$work/broker.log" &
broker_pid=$!
for _ in $(seq 100); do [ -s "$work/broker.txt" ] && break; sleep 0.1; done
bootstrap=$(head -n1 "$work/broker.txt")
[ -n "$bootstrap" ] || fail "dev-broker printed no address"

"$cuepoint" generate --users "$USERS" --events "$EVENTS" --seed "$SEED" > "$work/events.jsonl"
sed -E 's/^(.*"user_id":"([^"]*)".*)$/\2\t\1/; t; s/^/\t/' "$work/events.jsonl" |
    kcat -b "$bootstrap" -P -t events -K $'\t' -z none -X linger.ms=2000 \
        -X batch.num.messages=100000 -X queue.buffering.max.messages=2000000 \
        -X queue.buffering.max.kbytes=2000000 2> "$work/kcat.log" || fail "kcat produce failed"
echo "bench=replay case=setup events=$EVENTS users=$USERS seed=$SEED partitions=$PARTITIONS runs=$RUNS"

json_num() { sed -nE "s/.*\"$2\":([0-9.eE+-]+).*/\1/p" <<< "$1" | head -n1; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

live_rates=(); topic_rates=(); file_rates=()
for round in $(seq "$RUNS"); do
    app=bench-replay-$round
    cat > "$work/$app.json" <<EOF
{"application.id": "$app", "bootstrap.servers": "$bootstrap", "input.topic": "events",
 "trigger.topic": "$app-triggers", "state.dir": "$work/$app.state",
 "machines.dir": "$root/deploy/machines", "admin.listen": "", "wall.clock.advance": false,
 "kafka": {"consumer": {$PROPS}}}
EOF
    "$cuepoint" run --config "$work/$app.json" --stop-at-end 2> "$work/$app.log" ||
        fail "cuepoint run exit $? (KEEP=1 keeps $work)"
    stopped=$(grep '"msg":"stopped"' "$work/$app.log" | tail -n1)
    consumed=$(json_num "$stopped" consumed)
    live_triggers=$(json_num "$stopped" triggers)
    [ "$consumed" -eq "$EVENTS" ] || fail "live run consumed $consumed records, $EVENTS produced"
    live_rates+=("$(rate "$consumed" "$(json_num "$stopped" active_seconds)")")
    echo "bench=replay case=live round=$round records=$consumed triggers=$live_triggers" \
         "seconds=$(json_num "$stopped" active_seconds) rate=${live_rates[-1]} interval=first_record_to_last"

    for src in topic file; do
        opts=()
        [ "$src" = file ] && opts=(--input "$work/events.jsonl")
        "$cuepoint" replay --config "$work/$app.json" --state-dir "$work/$app.$src" --quiet \
            --stats "$work/$app.$src.stats" --output "$work/$app.$src.out" "${opts[@]}" 2> "$work/$app.$src.log" ||
            fail "replay from the $src exit $? (KEEP=1 keeps $work)"
        stats=$(cat "$work/$app.$src.stats")
        records=$(json_num "$stats" records)
        triggers=$(json_num "$stats" triggers)
        [ "$records" -eq "$EVENTS" ] || fail "replay from the $src read $records records, $EVENTS produced"
        [ "$triggers" -eq "$live_triggers" ] || fail "replay from the $src made $triggers triggers, the live run $live_triggers"
        r=$(rate "$records" "$(json_num "$stats" seconds)")
        if [ "$src" = topic ]; then topic_rates+=("$r"); else file_rates+=("$r"); fi
        echo "bench=replay case=replay_$src round=$round records=$records triggers=$triggers" \
             "seconds=$(json_num "$stats" seconds) rate=$r interval=whole_command"
        rm -rf "$work/$app.$src" "$work/$app.$src.out"
    done
    rm -rf "$work/$app.state"
done
live=$(printf '%s\n' "${live_rates[@]}" | median)
topic=$(printf '%s\n' "${topic_rates[@]}" | median)
file=$(printf '%s\n' "${file_rates[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
meets=$(awk -v t="$topic" -v f="$file" -v l="$live" 'BEGIN { print (t >= l && f >= l) ? "yes" : "no" }')
echo "bench=replay case=summary runs=$RUNS live_rate_median=$(printf %.0f "$live")" \
     "replay_topic_rate_median=$(printf %.0f "$topic") replay_file_rate_median=$(printf %.0f "$file")" \
     "topic_vs_live=$(ratio "$topic" "$live") file_vs_live=$(ratio "$file" "$live") target=replay_ge_live meets_target=$meets"
