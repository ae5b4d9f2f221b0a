#!/bin/bash
# What an erasure that is physical costs: a store of USERS users (from
# `cuepoint generate`), then one more input file of a single event, run in
# file mode, either an ordinary event or the policy's erasure event for a
# stored user. The difference is the commit's flush and compactions
# (store.h, cue_store_batch_users_erase). Also `cuepoint erase` offline,
# which scans the whole directory for the user first. One JSON line per case.
# Usage: bench/erasure.sh CUEPOINT [USERS] [REPEAT]
set -euo pipefail
cuepoint=$(realpath "$1")
users=${2:-100000}
repeat=${3:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
machines="$root/deploy/machines"
echo '{"erasure": {"event": "user_erased"}}' > "$tmp/policies.json"

"$cuepoint" generate --users "$users" --events $((4 * users)) > "$tmp/events"
run() { "$cuepoint" file --quiet --machines "$machines" --policies "$tmp/policies.json" \
    --state-dir "$tmp/state" --output /dev/null --decisions /dev/null "$@"; }
run --input "$tmp/events"
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/state" > "$tmp/dump"
stored=$(wc -l < "$tmp/dump")
bytes=$(du -sb "$tmp/state" | cut -f1)
ids=$(sed -E 's/^\{"user_id":"([^"]*)".*/\1/' "$tmp/dump" | awk -v n=$((2 * repeat)) 'NR % 97 == 1 && c < n { print; c++ }')

# A single-event file per run, at the stream's end.
last=$(tail -n 1 "$tmp/events" | sed -E 's/.*"ts":("[^"]*"|[0-9]+).*/\1/')
now() { date +%s.%N; }
case_line() { # name seconds...
    local name=$1
    shift
    local sum=0
    for s in "$@"; do sum=$(echo "$sum + $s" | bc); done
    printf '{"bench":"erasure","case":"%s","users_stored":%d,"store_bytes":%d,"runs":%d,"seconds_mean":%.3f}\n' \
        "$name" "$stored" "$bytes" "$#" "$(echo "$sum / $#" | bc -l)"
}
plain=() erase=() offline=() kept=()
i=0
for id in $ids; do
    i=$((i + 1))
    if ((i % 2)); then type=page_viewed; else type=user_erased; fi
    echo "{\"user_id\":\"$id\",\"type\":\"$type\",\"ts\":$last}" > "$tmp/one.$i"
    t0=$(now)
    run --input "$tmp/one.$i"
    t1=$(now)
    if ((i % 2)); then
        plain+=("$(echo "$t1 - $t0" | bc)")
        kept+=("$id")
    else
        erase+=("$(echo "$t1 - $t0" | bc)")
    fi
done
case_line file_one_event "${plain[@]}"
case_line file_one_erasure "${erase[@]}"
for id in "${kept[@]}"; do
    t0=$(now)
    "$cuepoint" erase "$id" --state-dir "$tmp/state" > /dev/null
    t1=$(now)
    offline+=("$(echo "$t1 - $t0" | bc)")
done
case_line cuepoint_erase "${offline[@]}"
