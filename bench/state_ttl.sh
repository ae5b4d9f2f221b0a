#!/bin/bash
# State TTL, the store's size with and without it: a product whose users
# mostly never come back. Weekly cohorts of `cuepoint generate` (each its own
# user ids; a cohort is active for a week or two, then goes quiet for good)
# over WEEKS weeks, run in file mode through the example journeys, once with
# state.ttl off and once with state.ttl=TTL, each to a day after the last
# event (--until). Prints one JSON line per case: users stored at the end,
# the size of their state (as `cuepoint state dump` prints it, JSON: the
# live data, whatever RocksDB has yet to compact away), the state
# directory's bytes on disk (du: table files, WAL and all), and the run's
# time.
# Usage: bench/state_ttl.sh CUEPOINT [WEEKS] [USERS_PER_WEEK] [TTL]
set -euo pipefail
cuepoint=$(realpath "$1")
weeks=${2:-26}
per_week=${3:-2000}
ttl=${4:-30d}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

start=$(date -u -d 2026-01-05 +%s)
for ((w = 0; w < weeks; w++)); do
    at=$(date -u -d "@$((start + w * 7 * 86400))" +%Y-%m-%dT%H:%M:%SZ)
    # Four events per user on average; ids prefixed with the cohort.
    "$cuepoint" generate --users "$per_week" --events $((4 * per_week)) --seed $((w + 1)) \
        --start "$at" | sed "s/\"user_id\":\"u/\"user_id\":\"w${w}u/"
done > "$tmp/cohorts"
# One stream in time order (the generator writes times as numbers and as
# RFC 3339 strings).
python3 - "$tmp/cohorts" > "$tmp/events" << 'EOF'
import datetime, json, sys
def ms(t):
    if isinstance(t, int): return t
    return int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
lines = open(sys.argv[1]).read().splitlines()
lines.sort(key=lambda l: ms(json.loads(l)["ts"]))
print("\n".join(lines))
EOF
events=$(wc -l < "$tmp/events")
last=$(tail -n 1 "$tmp/events" | python3 -c 'import json,sys,datetime; t=json.loads(sys.stdin.read())["ts"]; print(t if isinstance(t,int) else int(datetime.datetime.fromisoformat(t.replace("Z","+00:00")).timestamp()*1000))')
until=$((last + 86400000))

run() { # name, extra options
    local name=$1
    shift
    local st="$tmp/$name.state"
    local t0 t1
    t0=$(date +%s.%N)
    "$cuepoint" file --quiet --machines "$root/deploy/machines" --input "$tmp/events" \
        --state-dir "$st" --until "$until" --stats "$tmp/$name.stats" "$@" > /dev/null
    t1=$(date +%s.%N)
    local users json bytes expired
    "$cuepoint" state dump --machines "$root/deploy/machines" --state-dir "$st" > "$tmp/dump"
    users=$(wc -l < "$tmp/dump")
    json=$(wc -c < "$tmp/dump")
    bytes=$(du -sb "$st" | cut -f1)
    expired=$(sed -E 's/.*"expired":\{"users":([0-9]+).*/\1/' "$tmp/$name.stats")
    printf '{"bench":"state_ttl","case":"%s","weeks":%d,"users_per_week":%d,"events":%d,"users_stored":%d,"users_expired":%d,"state_json_bytes":%d,"store_bytes":%d,"seconds":%.2f}\n' \
        "$name" "$weeks" "$per_week" "$events" "$users" "$expired" "$json" "$bytes" "$(echo "$t1 - $t0" | bc)"
}
run ttl_off
run "ttl_$ttl" --set "state.ttl=$ttl"
