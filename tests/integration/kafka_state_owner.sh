#!/bin/bash
# A state directory belongs to the application and input topic that built it:
# run, offsets reset and replay --seed-state refuse another's (exit 78, naming
# both; offsets show leaves its positions out),
# where run used to consume another topic's records and count none of them.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --partitions 2 --topic events --topic other --topic triggers --topic app-a-changelog
"$cuepoint" generate --users 50 --events 300 --seed 3 > "$tmp/e.jsonl"
produce "$tmp/e.jsonl" events
produce "$tmp/e.jsonl" other

# A seed joins the group to hold it while it writes the changelog; the dev
# broker keeps a departed member for session.timeout.ms before the next join
# completes: kept short.
config a app-a events triggers '"session.timeout.ms": 6000'
start_run a "$tmp/a.log" --stop-at-end
wait_run 120 && ok || bad "first run exit $?"

# Another topic, another application: refused before anything is consumed.
sed "s|\"input.topic\": \"events\"|\"input.topic\": \"other\"|" "$tmp/a.json" > "$tmp/b.json"
"$cuepoint" run --config "$tmp/b.json" --stop-at-end 2> "$tmp/b.log"
rc=$?
[ $rc -eq 78 ] && grep -q 'belongs to application.id \\"app-a\\" reading \\"events\\", not to application.id \\"app-a\\" reading \\"other\\"' "$tmp/b.log" && ok \
    || { bad "run on another topic's state.dir: exit $rc"; tail -2 "$tmp/b.log"; }
sed "s|\"application.id\": \"app-a\"|\"application.id\": \"app-c\"|" "$tmp/a.json" > "$tmp/c.json"
"$cuepoint" run --config "$tmp/c.json" --stop-at-end 2> "$tmp/c.log"
rc=$?
[ $rc -eq 78 ] && grep -q '\\"app-c\\"' "$tmp/c.log" && ok || { bad "run as another application: exit $rc"; tail -2 "$tmp/c.log"; }
"$cuepoint" offsets reset --config "$tmp/b.json" --to-earliest > /dev/null 2> "$tmp/o.log"
rc=$?
[ $rc -eq 78 ] && grep -q "belongs to" "$tmp/o.log" && ok || { bad "offsets reset on another topic's state.dir: exit $rc"; tail -2 "$tmp/o.log"; }
# Showing the group's offsets is harmless: the store's positions are left out, with a word why.
"$cuepoint" offsets show --config "$tmp/b.json" > "$tmp/show.txt" 2> "$tmp/show.log"
rc=$?
[ $rc -eq 0 ] && grep -q "positions are not shown.*belongs to" "$tmp/show.log" && ok \
    || { bad "offsets show on another topic's state.dir: exit $rc"; tail -2 "$tmp/show.log"; }

# The same configuration still runs, and what it consumes adds up.
produce "$tmp/e.jsonl" events
start_run a "$tmp/a2.log" --stop-at-end
wait_run 120 && ok || bad "second run exit $?"
line=$(grep '"msg":"stopped"' "$tmp/a2.log")
n() { grep -o "\"$1\":[0-9]*" <<< "$line" | cut -d: -f2; }
[ "$(n consumed)" -eq 300 ] && [ "$(n consumed)" -eq $(($(n applied) + $(n duplicates) + $(n dead_letters))) ] && ok \
    || bad "second run: $line"

# A seeded directory is the live pipeline's: the run takes it.
"$cuepoint" replay --config "$tmp/a.json" --seed-state "$tmp/seeded" --output /dev/null --quiet 2> "$tmp/seed.log" \
    || bad "replay --seed-state exit $?"
sed "s|$tmp/a.state|$tmp/seeded|" "$tmp/a.json" > "$tmp/s.json"
start_run s "$tmp/s.log" --stop-at-end
wait_run 120 && ok || { bad "run on the seeded directory: exit $?"; tail -2 "$tmp/s.log"; }
sed "s|\"input.topic\": \"events\"|\"input.topic\": \"other\"|" "$tmp/s.json" > "$tmp/s2.json"
"$cuepoint" run --config "$tmp/s2.json" --stop-at-end 2> "$tmp/s2.log"
[ $? -eq 78 ] && ok || bad "the seeded directory taken by another topic"

finish
