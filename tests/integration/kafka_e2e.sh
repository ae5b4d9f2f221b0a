#!/bin/bash
# End to end with an independent client: `cuepoint dev-broker` in its own
# process, events produced with kcat (keyed by user id), `cuepoint run` in
# its own process, triggers read back with kcat. For each golden case and for
# a generated stream, the trigger records on the topic must be the file mode's,
# byte for byte (same trigger_ids), with the ce_id/ce_type headers matching.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
command -v kcat >/dev/null || { echo "kcat is not installed (scripts/deps.sh installs it)"; exit 1; }

"$cuepoint" dev-broker --partitions 4 --topic placeholder > "$tmp/broker.txt" 2> "$tmp/broker.log" &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null; wait $broker_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/broker.txt" ] && break; sleep 0.1; done
bootstrap=$(head -n1 "$tmp/broker.txt")
[ -n "$bootstrap" ] || { echo "FAIL dev-broker printed no address"; cat "$tmp/broker.log"; exit 1; }

# key<TAB>value, the key taken from the event's user_id (records without one get no key)
keyed() { sed -E 's/^(.*"user_id":"([^"]*)".*)$/\2\t\1/; t; s/^/\t/'; }

# name, events file, machine ("" for all), until ("" for no clock), machines
# directory (default deploy/machines)
run_case() {
    local name=$1 events=$2 only=$3 until=$4 src=${5:-$root/deploy/machines}
    local mdir="$tmp/$name.machines"
    mkdir -p "$mdir"
    if [ -n "$only" ]; then cp "$src/$only.json" "$mdir/"; else cp "$src"/*.json "$mdir/"; fi
    local fopts=(--machines "$mdir" --quiet --input "$events" --state-dir "$tmp/$name.fstate"
                 --set "application.id=e2e-$name")
    [ -n "$until" ] && fopts+=(--until "$until")
    "$cuepoint" file "${fopts[@]}" > "$tmp/$name.file.jsonl" 2> "$tmp/$name.file.log" \
        || { bad "$name: file mode exit $?"; return; }

    keyed < "$events" | kcat -b "$bootstrap" -P -t "$name-events" -K $'\t' -z none 2> "$tmp/$name.kcat.log" \
        || { bad "$name: kcat produce failed"; cat "$tmp/$name.kcat.log"; return; }
    cat > "$tmp/$name.json" <<EOF
{"application.id": "e2e-$name", "bootstrap.servers": "$bootstrap",
 "input.topic": "$name-events", "trigger.topic": "$name-triggers",
 "errors.dead.letter.queue.topic.name": "$name-dead", "state.dir": "$tmp/$name.kstate",
 "machines.dir": "$mdir", "admin.listen": "127.0.0.1:0", "commit.interval.ms": 200,
 "wall.clock.advance": $([ -n "$until" ] && echo true || echo false),
 "kafka": {"consumer": {"fetch.wait.max.ms": 10}}}
EOF
    CUEPOINT_CLOCK="$until" timeout 60 "$cuepoint" run --config "$tmp/$name.json" --stop-at-end \
        2> "$tmp/$name.run.log" || { bad "$name: run exit $?"; tail -5 "$tmp/$name.run.log"; return; }

    local n; n=$(wc -l < "$tmp/$name.file.jsonl")
    kcat -b "$bootstrap" -C -t "$name-triggers" -o beginning -e -q -c "$n" -f '%k\t%h\t%s\n' \
        > "$tmp/$name.kafka.tsv" 2>/dev/null
    cut -f3- "$tmp/$name.kafka.tsv" | sort > "$tmp/$name.kafka.sorted"
    sort "$tmp/$name.file.jsonl" > "$tmp/$name.file.sorted"
    if [ "$n" -gt 0 ] && cmp -s "$tmp/$name.file.sorted" "$tmp/$name.kafka.sorted"; then ok; else
        bad "$name: the trigger topic differs from the file mode ($n expected)"
        diff "$tmp/$name.file.sorted" "$tmp/$name.kafka.sorted" | head -5
    fi
    # nothing more than the file mode's (kcat -c stopped at n)
    local extra; extra=$(kcat -b "$bootstrap" -C -t "$name-triggers" -o beginning -e -q 2>/dev/null | wc -l)
    [ "$extra" -eq "$n" ] && ok || bad "$name: $extra triggers on the topic, $n expected"
    # headers: ce_id is the record's id, ce_type its type; the key is the subject
    local hdr_bad
    hdr_bad=$(awk -F'\t' '{ id=$3; sub(/.*"id":"/, "", id); sub(/".*/, "", id);
                            ty=$3; sub(/.*"type":"/, "", ty); sub(/".*/, "", ty);
                            su=$3; sub(/.*"subject":"/, "", su); sub(/".*/, "", su);
                            if (index($2, "ce_id=" id) == 0 || index($2, "ce_type=" ty) == 0 ||
                                index($2, "content-type=application/cloudevents+json") == 0 || $1 != su) n++ }
                          END { print n + 0 }' "$tmp/$name.kafka.tsv")
    [ "$hdr_bad" -eq 0 ] && ok || bad "$name: $hdr_bad records with wrong headers or key"
}

for dir in "$root"/tests/golden/*/; do
    [ -f "$dir/case.env" ] || continue
    ONLY=""; UNTIL=""; MACHINES=""; . "$dir/case.env"
    run_case "$(basename "$dir")" "$dir/events.jsonl" "$ONLY" "$UNTIL" "${MACHINES:+$dir/$MACHINES}"
done

"$cuepoint" generate --users 3000 --events 30000 --seed 7 > "$tmp/gen.jsonl"
run_case gen "$tmp/gen.jsonl" "" "2026-06-01T00:00:00Z"

finish
