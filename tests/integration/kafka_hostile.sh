#!/bin/bash
# Real-world input through `cuepoint run` on the dev broker: the hostile
# records every input test shares, plus times ahead of the records' Kafka
# timestamps, mixed into a generated stream. Each is a dead letter with its
# reason; the triggers are those of the clean stream; every record consumed
# is applied, a duplicate or a dead letter. Then the same records re-published
# under new offsets make no new trigger id, and a record keyed by a 1 MB user
# id is cut to fit the dead-letter topic instead of stopping the pipeline.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic events --topic clean --topic triggers --topic ctriggers \
    --topic mixed-dead --topic clean-dead

"$cuepoint" generate --users 300 --events 4000 --seed 31 > "$tmp/clean.jsonl"
# Kafka timestamps are now (kcat's clock): times ahead of now are from the future.
now_ms=$(($(date +%s) * 1000))
{
    cat "$root/tests/golden/hostile/records.tsv"
    printf 'future_time\t{"event_id":"k1","user_id":"u0000030","type":"signed_up","ts":%d}\n' $((now_ms + 2 * 86400000))
    printf 'future_time\t{"event_id":"k2","user_id":"u0000031","type":"signed_up","ts":"%s"}\n' \
        "$(date -u -d '+3 hours' +%Y-%m-%dT%H:%M:%SZ)"
} > "$tmp/hostile.txt"
n_hostile=$(wc -l < "$tmp/hostile.txt")
{
    i=0
    while IFS=$'\t' read -r _ rec; do
        sed -n "$((i * 150 + 1)),$(((i + 1) * 150))p" "$tmp/clean.jsonl"
        printf '%b\n' "$rec"
        i=$((i + 1))
    done < "$tmp/hostile.txt"
    tail -n +$((i * 150 + 1)) "$tmp/clean.jsonl"
} > "$tmp/mixed.jsonl"
produce "$tmp/mixed.jsonl" events
produce "$tmp/clean.jsonl" clean

# run NAME: until the end of its input; the "stopped" line's counts in $tmp/NAME.counts
run() {
    start_run "$1" "$tmp/$1.log" --stop-at-end
    wait_run 120; local rc=$?
    [ $rc -eq 0 ] && ok || { bad "$1: run exit $rc"; tail -3 "$tmp/$1.log"; }
    grep '"msg":"stopped"' "$tmp/$1.log" | tail -n1 > "$tmp/$1.counts"
}
count_of() { grep -o "\"$2\":[0-9]*" "$tmp/$1.counts" | cut -d: -f2; }

config mixed mixed events triggers
config clean clean clean ctriggers
run mixed
run clean
balanced "$tmp/mixed.log" mixed
balanced "$tmp/clean.log" clean
[ "$(count_of mixed dead_letters)" -eq "$n_hostile" ] && ok \
    || bad "mixed: $(count_of mixed dead_letters) dead letters, $n_hostile hostile records"

# The same triggers (the CloudEvents source names the application).
kcat -b "$bootstrap" -C -t triggers -o beginning -e -q -f '%s\n' 2>/dev/null |
    sed 's|"source":"cuepoint/mixed/|"source":"cuepoint/clean/|' | sort > "$tmp/mixed.sorted"
kcat -b "$bootstrap" -C -t ctriggers -o beginning -e -q -f '%s\n' 2>/dev/null | sort > "$tmp/clean.sorted"
[ -s "$tmp/clean.sorted" ] && cmp -s "$tmp/mixed.sorted" "$tmp/clean.sorted" && ok \
    || { bad "triggers differ with the hostile records mixed in"; diff "$tmp/mixed.sorted" "$tmp/clean.sorted" | head -4; }

# One dead letter per hostile record, with its reason.
kcat -b "$bootstrap" -C -t mixed-dead -o beginning -e -q -f '%h\n' 2>/dev/null |
    grep -o '__streams.errors.exception=[a-z_]*' | cut -d= -f2 | sort > "$tmp/dead.reasons"
cut -f1 "$tmp/hostile.txt" | sort > "$tmp/want.reasons"
cmp -s "$tmp/dead.reasons" "$tmp/want.reasons" && ok \
    || { bad "dead-letter reasons differ from the hostile records'"; diff "$tmp/dead.reasons" "$tmp/want.reasons"; }

# The last 300 clean records published again (a producer's retries): new
# offsets, the same events. No trigger id the first run did not make.
ids() { kcat -b "$bootstrap" -C -t "$1" -o beginning -e -q -f '%s\n' 2>/dev/null |
        grep -o '"id":"[0-9a-f]\{32\}"' | sort -u; }
ids ctriggers > "$tmp/ids.before"
tail -n 300 "$tmp/clean.jsonl" > "$tmp/again.jsonl"
produce "$tmp/again.jsonl" clean
run clean
balanced "$tmp/clean.log" clean
ids ctriggers > "$tmp/ids.after"
[ "$(count_of clean consumed)" -eq 300 ] && ok || bad "second run consumed $(count_of clean consumed), 300 re-published"
[ "$(count_of clean applied)" -eq 0 ] && ok || bad "re-published events applied again: $(count_of clean applied)"
cmp -s "$tmp/ids.before" "$tmp/ids.after" && ok \
    || bad "re-published events made $(comm -13 "$tmp/ids.before" "$tmp/ids.after" | wc -l) new trigger ids"

# A record keyed by a 1 MB user id, its value naming the same id, then a good
# event: the first is a dead letter cut to fit, the second is applied, the run
# ends normally, and a restart reads nothing again.
big=$(head -c 1000000 /dev/zero | tr '\0' x)
{
    printf '%s\t{"user_id":"%s","type":"signed_up","ts":%d}\n' "$big" "$big" "$now_ms"
    printf 'late-joiner\t{"user_id":"late-joiner","type":"signed_up","ts":%d}\n' "$now_ms"
} | kcat -b "$bootstrap" -P -t clean -K $'\t' -p 0 -X message.max.bytes=3000000 2>> "$tmp/kcat.log" \
    || bad "kcat could not produce the 1 MB key"
run clean
balanced "$tmp/clean.log" clean
[ "$(count_of clean dead_letters)" -eq 1 ] && [ "$(count_of clean applied)" -eq 1 ] && ok \
    || bad "the 1 MB key: $(cat "$tmp/clean.counts")"
kcat -b "$bootstrap" -C -t clean-dead -o beginning -e -q -f '%K %S %h\n' 2>/dev/null > "$tmp/big.dead"
grep -q '^4096 .*cuepoint.errors.truncated=true' "$tmp/big.dead" \
    && grep -q 'cuepoint.errors.key.bytes=1000000' "$tmp/big.dead" \
    && grep -q '__streams.errors.exception=bad_user_id' "$tmp/big.dead" && ok \
    || bad "the 1 MB key's dead letter: $(cut -c1-300 "$tmp/big.dead")"
"$cuepoint" state get late-joiner --state-dir "$tmp/clean.state" --machines "$machines" > /dev/null \
    && ok || bad "the event after the 1 MB key was not applied"
run clean
[ "$(count_of clean consumed)" -eq 0 ] && ok || bad "restart consumed $(count_of clean consumed) again"

finish
