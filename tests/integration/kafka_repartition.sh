#!/bin/bash
# Repartitioning ("repartition": true): an input keyed by something else than
# the user id goes through a first stage that re-keys each record by its user
# id into <application.id>-repartition (the input's partition count), which
# the journeys read. With the same events, an input keyed by event id gives
# the same triggers as one keyed by user id; with several input partitions
# the pipeline after re-keying still equals the file mode over what the
# repartition topic holds (per user, order follows each input partition);
# an input of another partition count than the repartition topic (one that
# grew) goes in all the same.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: the 1-partition ones named here.
broker_start --partitions 4 --topic keyed --topic keyed1:1 --topic raw1:1 --topic raw4 \
    --topic rk1-changelog:1 --topic rp1-changelog:1 --topic rp1-repartition:1 --topic rp4-repartition --topic trig-k --topic trig-k1 --topic trig-1 \
    --topic trig-4 --topic gkeyed --topic graw4 --topic graw8:8 --topic trig-gk --topic trig-g
"$cuepoint" generate --users 2000 --events 20000 --seed 41 > "$tmp/events.jsonl"
# Bad records too: the first stage dead-letters what has no user id.
printf '%s\n' '{"type":"signed_up","ts":1768650878972}' 'not json' >> "$tmp/events.jsonl"
produce "$tmp/events.jsonl" keyed || exit 1
produce "$tmp/events.jsonl" keyed1 || exit 1
# key<TAB>value with the event id as the key
by_event() { sed -E 's/^(.*"event_id":"([^"]*)".*)$/\2\t\1/; t; s/^/x\t/'; }
by_event < "$tmp/events.jsonl" | kcat -b "$bootstrap" -P -t raw1 -K $'\t' -z none 2>> "$tmp/kcat.log"
by_event < "$tmp/events.jsonl" | kcat -b "$bootstrap" -P -t raw4 -K $'\t' -z none 2>> "$tmp/kcat.log"

config keyed rk keyed trig-k
config keyed1 rk1 keyed1 trig-k1
config one rp1 raw1 trig-1
config four rp4 raw4 trig-4
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "repartition": true/' "$tmp/one.json" "$tmp/four.json"
for n in keyed keyed1 one four; do
    timeout 120 "$cuepoint" run --config "$tmp/$n.json" --stop-at-end 2> "$tmp/$n.log" \
        || { bad "$n: exit $?"; tail -3 "$tmp/$n.log"; }
done

# Trigger records name their application in "source": compared without it.
norm() { kcat -b "$bootstrap" -C -t "$1" -o beginning -e -q -f '%s\n' 2>/dev/null |
         sed -E 's|"source":"cuepoint/[^/]*/|"source":"cuepoint/APP/|' | sort; }
norm trig-k1 > "$tmp/k1.trig"; norm trig-1 > "$tmp/1.trig"; norm trig-k > "$tmp/k.trig"; norm trig-4 > "$tmp/4n.trig"
n=$(wc -l < "$tmp/k1.trig")
[ "$n" -gt 1000 ] && cmp -s "$tmp/k1.trig" "$tmp/1.trig" && ok \
    || { bad "1 partition: input keyed by event id ($(wc -l < "$tmp/1.trig") triggers) != keyed by user id ($n)";
         diff "$tmp/k1.trig" "$tmp/1.trig" | head -4 | cut -c1-200; }
echo "1 partition: keyed by user id $n triggers; keyed by event id, re-keyed: $(wc -l < "$tmp/1.trig")"
# 4 partitions: the first stage merges the input's partitions by event time,
# so a backlog keyed by event id reaches the journeys in time order.
extra=$(comm -13 "$tmp/k.trig" "$tmp/4n.trig" | wc -l); missing=$(comm -23 "$tmp/k.trig" "$tmp/4n.trig" | wc -l)
echo "4 partitions: keyed by user id $(wc -l < "$tmp/k.trig") triggers; re-keyed $(wc -l < "$tmp/4n.trig"): $missing missing, $extra other"
[ $((missing + extra)) -eq 0 ] && ok || bad "4 partitions: re-keyed input gave other triggers than the keyed input"

# The repartition topic: every record keyed by its user id, on the input's 4 partitions.
kcat -b "$bootstrap" -C -t rp4-repartition -o beginning -e -q -f '%k\t%s\n' 2>/dev/null > "$tmp/rp4.kv"
total=$(wc -l < "$tmp/rp4.kv")
wrong=$(awk -F'\t' '{ v = $2; sub(/.*"user_id":"/, "", v); sub(/".*/, "", v); if (v != $1) n++ } END { print n + 0 }' "$tmp/rp4.kv")
[ "$total" -eq "$(($(wc -l < "$tmp/events.jsonl") - 2))" ] && [ "$wrong" -eq 0 ] && ok \
    || bad "repartition topic: $total records, $wrong keyed by something else"
# Dead letters of the first stage go to the application's dead-letter topic.
[ "$(count four-dead)" -eq 2 ] && ok || bad "the 2 bad records are not on four-dead ($(count four-dead))"

# With 4 input partitions: the pipeline after re-keying equals the file mode
# over the repartition topic, partition by partition.
reference rp4-repartition "$total" rp4 ref4
kcat -b "$bootstrap" -C -t trig-4 -o beginning -e -q -f '%s\n' 2>/dev/null | sort > "$tmp/4.trig"
cmp -s "$tmp/4.trig" "$tmp/ref4.ref.triggers" && ok || bad "4-partition input: triggers differ from the file mode over the repartition topic"
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/four.state" | sort | cmp -s - "$tmp/ref4.ref.state" && ok \
    || bad "4-partition input: state differs from the file mode over the repartition topic"

# The input's offsets are committed by the first stage's group.
"$cuepoint" offsets show --config <(sed 's/"application.id": "rp4"/"application.id": "rp4-repartition"/' "$tmp/four.json") --json 2>/dev/null \
    | grep -c '"committed":[0-9]' | grep -qx 4 && ok || bad "the first stage did not commit its 4 input partitions"

# The repartition topic's partition count is the journeys' (their state is
# bound to it); the input's may differ and grow, since re-keying puts each
# user where their state is. The mock cannot add partitions to a live topic,
# so growth is shown across two topics: the first half of the events through
# a 4-partition input, the second half through an 8-partition one, into the
# same 4-partition repartition topic and state directory. The triggers equal
# those of the same halves keyed by user id on 4 partitions.
head -n 10000 "$tmp/events.jsonl" > "$tmp/a.jsonl"
tail -n +10001 "$tmp/events.jsonl" > "$tmp/b.jsonl"
produce "$tmp/a.jsonl" gkeyed && produce "$tmp/b.jsonl" gkeyed || exit 1
by_event < "$tmp/a.jsonl" | kcat -b "$bootstrap" -P -t graw4 -K $'\t' -z none 2>> "$tmp/kcat.log"
by_event < "$tmp/b.jsonl" | kcat -b "$bootstrap" -P -t graw8 -K $'\t' -z none 2>> "$tmp/kcat.log"
config gk gk gkeyed trig-gk
config grow grow graw4 trig-g
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "repartition": true/' "$tmp/grow.json"
for step in gk grow grow8; do
    [ "$step" = grow8 ] && sed -i 's/"input.topic": "graw4"/"input.topic": "graw8"/' "$tmp/grow.json"
    timeout 120 "$cuepoint" run --config "$tmp/${step%8}.json" --stop-at-end 2> "$tmp/$step.log"
    rc=$?
    [ "$rc" -eq 0 ] && ok || { bad "$step: exit $rc"; tail -3 "$tmp/$step.log"; }
done
grep -q '"repartitioning","from":"graw8","partitions":8,"to":"grow-repartition","to_partitions":4' "$tmp/grow8.log" && ok \
    || { bad "the 8-partition input did not go into the 4-partition repartition topic"; grep repartitioning "$tmp/grow8.log"; }
norm trig-gk > "$tmp/gk.trig"; norm trig-g > "$tmp/g.trig"
n=$(wc -l < "$tmp/gk.trig")
[ "$n" -gt 1000 ] && cmp -s "$tmp/gk.trig" "$tmp/g.trig" && ok \
    || { bad "4 then 8 input partitions: $(wc -l < "$tmp/g.trig") triggers, keyed by user id $n";
         diff "$tmp/gk.trig" "$tmp/g.trig" | head -4 | cut -c1-200; }
echo "4 then 8 input partitions into 4: $(wc -l < "$tmp/g.trig") triggers; keyed by user id: $n"
[ "$(count grow-repartition)" -eq "$(($(wc -l < "$tmp/events.jsonl") - 2))" ] && ok \
    || bad "grow-repartition holds $(count grow-repartition) records"

finish
