#!/bin/bash
# Poison records mixed into a stream (not JSON, a key that is not the user id,
# no key, a 1.1 MB value, no user id, a bad time): each lands on the
# dead-letter topic with its original key, Kafka Streams' dead-letter headers
# (reason, source topic, partition, offset), and the good records' triggers
# are the file mode's. /metrics counts the same dead letters by reason.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic events --topic triggers --topic dead

"$cuepoint" generate --users 500 --events 5000 --seed 11 > "$tmp/good.jsonl"
pad=$(head -c 1100000 /dev/zero | tr '\0' a)
{
    head -n 2500 "$tmp/good.jsonl" | keyed
    printf 'u0000001\tnot json {\n'
    printf 'u0000002\t{"user_id":"u0000003","type":"signed_up","ts":1767603600000}\n'
    printf '{"user_id":"u0000007","type":"signed_up","ts":1767603600000}\n' # no key at all
    printf 'u0000004\t{"user_id":"u0000004","type":"signed_up","ts":1767603600000,"pad":"%s"}\n' "$pad"
    printf 'u0000005\t{"type":"signed_up","ts":1767603600000}\n'
    printf 'u0000006\t{"user_id":"u0000006","type":"signed_up","ts":"yesterday"}\n'
    tail -n +2501 "$tmp/good.jsonl" | keyed
} > "$tmp/mixed.tsv"
total=$(wc -l < "$tmp/mixed.tsv")
kcat -b "$bootstrap" -P -t events -K $'\t' -X message.max.bytes=2000000 < "$tmp/mixed.tsv" \
    || { echo "FAIL kcat produce"; exit 1; }

cat > "$tmp/c.json" <<EOF
{"application.id": "poison", "bootstrap.servers": "$bootstrap", "input.topic": "events",
 "trigger.topic": "triggers", "errors.dead.letter.queue.topic.name": "dead",
 "state.dir": "$tmp/state", "machines.dir": "$root/deploy/machines",
 "admin.listen": "127.0.0.1:0", "commit.interval.ms": 200, "wall.clock.advance": false,
 "kafka": {"consumer": {"fetch.wait.max.ms": 10}}}
EOF
"$cuepoint" run --config "$tmp/c.json" --admin-addr-file "$tmp/admin.txt" 2> "$tmp/run.log" &
run_pid=$!
metric() { awk -v m="$1" '$1 == m { print $2 }' "$tmp/metrics.txt"; }
consumed=0
for _ in $(seq 300); do
    [ -s "$tmp/admin.txt" ] && curl -s "http://$(cat "$tmp/admin.txt")/metrics" > "$tmp/metrics.txt" \
        && consumed=$(metric cuepoint_records_consumed_total) && [ "${consumed:-0}" -ge "$total" ] && break
    sleep 0.1
done
[ "${consumed:-0}" -eq "$total" ] && ok || bad "consumed $consumed of $total records"
for r in not_json key_mismatch too_large missing_user_id bad_time; do
    want=1; [ $r = key_mismatch ] && want=2
    got=$(metric "cuepoint_dead_letters_total{reason=\"$r\"}")
    [ "$got" = "$want" ] && ok || bad "/metrics dead letters $r: $got, expected $want"
done
# Every record consumed is applied, a duplicate or a dead letter, once.
applied=$(metric cuepoint_records_applied_total); dups=$(metric cuepoint_records_duplicate_total)
dead=$(awk '$1 ~ /^cuepoint_dead_letters_total/ { s += $2 } END { print s + 0 }' "$tmp/metrics.txt")
[ "$consumed" -eq $((applied + dups + dead)) ] && ok \
    || bad "/metrics: consumed $consumed != applied $applied + duplicates $dups + dead letters $dead"
kill -TERM $run_pid; wait $run_pid; rc=$?; run_pid=
[ $rc -eq 0 ] && ok || bad "run exit $rc after SIGTERM"
balanced "$tmp/run.log" "the poisoned run"
peak_rss_said "$tmp/run.log"

# The dead-letter topic: six records, each naming its reason and where it came from.
kcat -b "$bootstrap" -C -t dead -o beginning -e -q -f '%k|%S|%h\n' > "$tmp/dead.tsv" 2>/dev/null
kcat -b "$bootstrap" -C -t events -o beginning -e -q -f '%p\t%o\t%k\t%S\n' > "$tmp/in.tsv" 2>/dev/null
[ "$(wc -l < "$tmp/dead.tsv")" -eq 6 ] && ok || bad "$(wc -l < "$tmp/dead.tsv") dead letters on the topic, 6 expected"
hdr() { grep -o "$1=[^,]*" | head -n1 | cut -d= -f2; }
while IFS='|' read -r key size headers; do
    reason=$(hdr __streams.errors.exception <<< "$headers")
    topic=$(hdr __streams.errors.topic <<< "$headers")
    part=$(hdr __streams.errors.partition <<< "$headers")
    off=$(hdr __streams.errors.offset <<< "$headers")
    src=$(awk -F'\t' -v p="$part" -v o="$off" '$1 == p && $2 == o' "$tmp/in.tsv")
    src_key=$(cut -f3 <<< "$src"); src_size=$(cut -f4 <<< "$src")
    case "$key" in
        u0000001) want=not_json ;; u0000002|"") want=key_mismatch ;; u0000004) want=too_large ;;
        u0000005) want=missing_user_id ;; u0000006) want=bad_time ;; *) want="?" ;;
    esac
    [ "$reason" = "$want" ] && ok || bad "dead letter key '$key': reason $reason, expected $want"
    [ "$topic" = events ] && [ "$src_key" = "$key" ] && ok \
        || bad "dead letter key '$key': topic/partition/offset $topic/$part/$off do not point at it"
    if [ "$want" = too_large ]; then
        # Cut to fit a broker's default max.message.bytes, saying what it had.
        grep -q "cuepoint.errors.truncated=true" <<< "$headers" && [ "$size" -le 1000000 ] \
            && grep -q "cuepoint.errors.value.bytes=$src_size" <<< "$headers" && ok \
            || bad "the 1.1 MB dead letter: size $size, headers $headers"
    else
        [ "$size" = "$src_size" ] && ok || bad "dead letter key '$key': value size $size, input $src_size"
    fi
done < "$tmp/dead.tsv"

# The good records' triggers are unchanged by the poison around them.
"$cuepoint" file --machines "$root/deploy/machines" --quiet --input "$tmp/good.jsonl" \
    --state-dir "$tmp/fstate" --set application.id=poison | sort > "$tmp/file.sorted"
kcat -b "$bootstrap" -C -t triggers -o beginning -e -q -f '%s\n' 2>/dev/null | sort > "$tmp/kafka.sorted"
[ -s "$tmp/file.sorted" ] && cmp -s "$tmp/file.sorted" "$tmp/kafka.sorted" && ok \
    || bad "triggers differ from the file mode on the good records only"

finish
