#!/bin/bash
# A local copy too old for the changelog's tombstones is not trusted: the
# broker keeps a tombstone only delete.retention.ms after compaction meets
# it, so a store last in line with the changelog longer ago than that may
# have missed a user's erasure, and restoring only the tail on top of it
# would bring the user back. Such a copy is emptied and restored in full.
#
# Two applications run the same scenario over the same input: instance 1
# consumes chunk a and stops cleanly; instance 2 (its own state.dir) takes
# over, restores everything and consumes chunk b; a few seconds later
# instance 1 comes back for chunk c with its old store, behind the
# changelog. With changelog.delete.retention.ms = 3000 ("stale") its copy
# is too old: it logs why per partition and reads each changelog partition
# from its start. With Kafka's default of a day ("fresh") it reads only the
# tail from where its copy stands. Both end with the file mode's triggers
# and states.
# Then a copy past the changelog's end (another history of the same
# application and topics: the topics were deleted and created again, the
# cluster rebuilt) is dropped the same way, not trusted as ahead. (A
# directory of another application is refused outright: kafka_state_owner.sh.)
# (The mock broker never compacts, so the tombstone itself cannot be lost
# here; what is tested is the decision and that a full restore is exact.)
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

parts=4
broker_start --partitions "$parts" --topic events --topic few --topic stale-triggers \
    --topic fresh-triggers --topic other-triggers
"$cuepoint" generate --users 2000 --events 16000 --seed 41 > "$tmp/a.jsonl"
"$cuepoint" generate --users 2000 --events 4000 --seed 42 --start 2026-02-15T00:00:00Z > "$tmp/b.jsonl"
"$cuepoint" generate --users 2000 --events 4000 --seed 43 --start 2026-03-15T00:00:00Z > "$tmp/c.jsonl"

# setup NAME RETENTION: instance 1 (NAME) and instance 2 (NAME2) of app NAME-app
setup() {
    config "$1" "$1-app" events "$1-triggers" '"session.timeout.ms": 6000'
    sed -i "s/\"wall.clock.advance\": false/\"wall.clock.advance\": false, \"changelog.enabled\": true${2:+, \"changelog.delete.retention.ms\": $2}/" "$tmp/$1.json"
    sed "s|/$1.state\"|/$1-2.state\"|" "$tmp/$1.json" > "$tmp/$1-2.json"
}
# once CONFIG LOG: one `run --stop-at-end`
once() {
    timeout 120 "$cuepoint" run --config "$tmp/$1.json" --stop-at-end 2> "$2" \
        || { bad "$1: exit $?"; tail -3 "$2"; }
}
setup stale 3000
setup fresh

produce "$tmp/a.jsonl" events || exit 1
once stale "$tmp/stale.1.log"
once fresh "$tmp/fresh.1.log"
produce "$tmp/b.jsonl" events || exit 1
once stale-2 "$tmp/stale-2.log"
once fresh-2 "$tmp/fresh-2.log"
for name in stale-2 fresh-2; do
    [ "$(grep -c '"restore finished"' "$tmp/$name.log")" -eq "$parts" ] && ok \
        || bad "$name: not $parts partitions restored by the second instance"
done
# Instance 1's copy was last in line when it stopped; let it age past 3 s.
sleep 4
produce "$tmp/c.jsonl" events || exit 1
once stale "$tmp/stale.3.log"
once fresh "$tmp/fresh.3.log"

# starts LOG: "partition from local" of each restore start
starts() {
    sed -nE 's/.*"restore started".*"partition":([0-9]+),"from":(-?[0-9]+),.*"local":"([a-z]+)".*/\1 \2 \3/p' "$1" | sort -n
}
starts "$tmp/stale.3.log" > "$tmp/stale.starts"
starts "$tmp/fresh.3.log" > "$tmp/fresh.starts"
echo "stale: restore starts (partition from local):" $(cat "$tmp/stale.starts")
echo "fresh: restore starts (partition from local):" $(cat "$tmp/fresh.starts")
# The mock cannot describe a topic: the run says which retention it goes by.
grep -q '"cannot read the changelog.s delete.retention.ms; copies are judged by changelog.delete.retention.ms.*"changelog.delete.retention.ms":3000' "$tmp/stale.3.log" && ok \
    || bad "stale: no warning that the topic's retention could not be read"
warned=$(grep -c '"local copy older than changelog.delete.retention.ms' "$tmp/stale.3.log")
[ "$warned" -eq "$parts" ] && ok || bad "stale: $warned partitions said their copy was too old, $parts expected"
grep -q '"age_ms":[0-9]*,"delete_retention_ms":3000' "$tmp/stale.3.log" && ok \
    || bad "stale: the warning does not give the copy's age and the retention"
[ "$(awk '$2 == 0 && $3 == "none"' "$tmp/stale.starts" | wc -l)" -eq "$parts" ] && ok \
    || bad "stale: not every partition was read from the changelog's start with its copy dropped"
[ "$(grep -c 'older than changelog.delete.retention.ms' "$tmp/fresh.3.log")" -eq 0 ] && ok \
    || bad "fresh: a copy seconds old was judged too old for a day's retention"
[ "$(awk '$2 > 0 && $3 == "behind"' "$tmp/fresh.starts" | wc -l)" -eq "$parts" ] && ok \
    || bad "fresh: not every partition restored only the tail behind its copy"

total=$(($(wc -l < "$tmp/a.jsonl") + $(wc -l < "$tmp/b.jsonl") + $(wc -l < "$tmp/c.jsonl")))
reference events "$total" stale-app stale
check stale stale-triggers stale
reference events "$total" fresh-app fresh
check fresh fresh-triggers fresh

# A copy past the changelog's end belongs to another history: "other"'s
# store from a second cluster, where it read far more, is used on this one,
# whose changelog is much shorter: it is emptied and restored in full, and
# the result is this cluster's own.
"$cuepoint" generate --users 200 --events 1000 --seed 44 > "$tmp/few.jsonl"
head -n 500 "$tmp/few.jsonl" > "$tmp/few.1.jsonl"
tail -n +501 "$tmp/few.jsonl" > "$tmp/few.2.jsonl"
broker2_start --partitions "$parts" --topic few --topic other-triggers
setup other
sed -i 's/"input.topic": "events"/"input.topic": "few"/' "$tmp/other.json"
sed "s|$bootstrap|$bootstrap2|; s|/other.state\"|/elsewhere.state\"|" "$tmp/other.json" > "$tmp/elsewhere.json"
bootstrap=$bootstrap2 produce "$tmp/a.jsonl" few || exit 1
once elsewhere "$tmp/elsewhere.log"
produce "$tmp/few.1.jsonl" few || exit 1
once other "$tmp/other.1.log"
rm -rf "$tmp/other.state" && cp -r "$tmp/elsewhere.state" "$tmp/other.state"
produce "$tmp/few.2.jsonl" few || exit 1
once other "$tmp/other.2.log"
past=$(grep -c '"local copy past the changelog.s end' "$tmp/other.2.log")
[ "$past" -eq "$parts" ] && ok || bad "other: $past partitions found their copy past the changelog's end, $parts expected"
starts "$tmp/other.2.log" > "$tmp/other.starts"
[ "$(awk '$2 == 0 && $3 == "none"' "$tmp/other.starts" | wc -l)" -eq "$parts" ] && ok \
    || bad "other: not every partition was read from the changelog's start with its copy dropped"
reference few 1000 other-app other
check other other-triggers other

finish
