#!/bin/bash
# A state directory is bound to its input's partition count: a user's
# partition is a hash of the user id modulo the count, so state built
# under 4 partitions is split under 8 (earlier events in one partition,
# later ones in another). `cuepoint run` keeps the count in state.dir and
# refuses another (exit 78, naming the topic, both counts and the
# directory) instead of splitting users silently; a fresh state.dir takes
# any count. (The mock broker cannot add partitions to a live topic: the
# topic with 8 partitions is the same name on a second cluster, and the
# refusal for partitions assigned while running is not run here.)
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic events --topic triggers
# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker2_start --partitions 8 --topic events --topic triggers --topic pc-app-changelog
"$cuepoint" generate --users 300 --events 3000 --seed 5 > "$tmp/a.jsonl"
produce "$tmp/a.jsonl" events || exit 1
b4=$bootstrap
bootstrap=$bootstrap2 produce "$tmp/a.jsonl" events || exit 1

config pc pc-app events triggers
# expect RC LOG WHAT: one `run --stop-at-end` that must exit RC
expect() {
    timeout 120 "$cuepoint" run --config "$tmp/pc.json" --stop-at-end 2> "$2"
    local rc=$?
    [ "$rc" -eq "$1" ] && ok || { bad "$3: exit $rc, $1 expected"; tail -3 "$2"; }
}
expect 0 "$tmp/pc.1.log" "first run"

# The same state.dir, an input of 8 partitions: refused, nothing consumed.
sed -i "s/$b4/$bootstrap2/" "$tmp/pc.json"
expect 78 "$tmp/pc.2.log" "8 partitions over a 4-partition state.dir"
grep -q "input topic events has 8 partitions and state.dir $tmp/pc.state was built for 4" "$tmp/pc.2.log" && ok \
    || { bad "the refusal does not name the topic, both counts and the directory"; tail -2 "$tmp/pc.2.log"; }
grep -q '"partition assigned"' "$tmp/pc.2.log" && bad "the refused run took partitions" || ok

# A fresh state.dir takes the 8 partitions, and keeps to them from then on.
sed -i "s|/pc.state\"|/pc8.state\"|" "$tmp/pc.json"
expect 0 "$tmp/pc.3.log" "8 partitions, fresh state.dir"
sed -i "s/$bootstrap2/$b4/" "$tmp/pc.json"
expect 78 "$tmp/pc.4.log" "4 partitions over an 8-partition state.dir"
grep -q "input topic events has 4 partitions and state.dir $tmp/pc8.state was built for 8" "$tmp/pc.4.log" && ok \
    || { bad "the second refusal does not name the topic, both counts and the directory"; tail -2 "$tmp/pc.4.log"; }

finish
