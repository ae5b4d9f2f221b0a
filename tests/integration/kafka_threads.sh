#!/bin/bash
# Stream threads (num.stream.threads): the same triggers, with the same ids,
# the same dead letters and the same final states as the file mode's (one
# thread, one partition at a time), whatever the number of threads.
#
# 1. One instance with 4 threads over 8 partitions, with settings that make
#    the threads' shared paths busy: commit.records 300 (each task commits
#    on its own, inside batches, hundreds of times), a timer window of 16
#    entries (refilled from the store again and again), poison records (dead
#    letters produced from every thread).
# 2. Two instances in one group, 3 and 2 threads, the second joining while
#    the first is busy: partitions move between instances (and so between
#    threads) mid-stream, their state handed over through the changelog.
# Exactly-once with threads: kafka_eos_threads.sh.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
pid_b=""
pid_c=""
trap '[ -n "$pid_b" ] && kill -9 "$pid_b" 2>/dev/null; [ -n "$pid_c" ] && kill -9 "$pid_c" 2>/dev/null; cleanup' EXIT

parts=8
# The changelogs named here: the mock creates other topics with 4 partitions.
broker_start --partitions "$parts" --topic events --topic triggers --topic events2 --topic triggers2 \
    --topic threads-a-changelog --topic threads-b-changelog
"$cuepoint" generate --users 4000 --events 40000 --seed 11 > "$tmp/all.jsonl"
# Poison, keyed by users that have events: each goes to a dead letter on
# whichever thread holds its partition.
for u in u0000001 u0000002 u0000003 u0000004 u0000005 u0000006 u0000007 u0000008; do
    printf '{"user_id":"%s","type":"project_created","ts":\n' "$u"
    printf '{"user_id":"%s","type":"project_created","ts":"not a time"}\n' "$u"
done >> "$tmp/all.jsonl"
n_all=$(wc -l < "$tmp/all.jsonl")

# --- 1. four threads, one instance -------------------------------------------
produce "$tmp/all.jsonl" events
reference events "$n_all" threads-a ref
config a threads-a events triggers
sed -i 's/"commit.interval.ms": 300/"commit.interval.ms": 300, "num.stream.threads": 4, "commit.records": 300, "timers.memory.max": 16/' "$tmp/a.json"
start_run a "$tmp/a.log" --stop-at-end
wait_run 120; rc=$?
[ "$rc" -eq 0 ] && ok || { bad "4 threads: run exit $rc"; tail -5 "$tmp/a.log"; }
balanced "$tmp/a.log" "4 threads"
check a triggers ref
commits=$(grep -o '"commits":[0-9]*' "$tmp/a.log" | tail -n1 | cut -d: -f2)
echo "4 threads: $commits commit cycles"

# A task's own commits happened inside batches (commit.records 300 over
# about 5,000 records a partition): the state has them all.
[ "$(wc -l < "$tmp/a.final.state")" -gt 0 ] && ok || bad "4 threads: no state"

# --- 2. two instances, 3 and 2 threads, one joining mid-stream ---------------
split -n l/2 -d "$tmp/all.jsonl" "$tmp/half."
for n in b c; do
    config "$n" threads-b events2 triggers2 '"session.timeout.ms": 6000'
done
sed -i 's/"commit.interval.ms": 300/"commit.interval.ms": 500, "num.stream.threads": 3, "commit.records": 700/' "$tmp/b.json"
sed -i 's/"commit.interval.ms": 300/"commit.interval.ms": 500, "num.stream.threads": 2/' "$tmp/c.json"
"$cuepoint" run --config "$tmp/b.json" --admin-addr-file "$tmp/b.admin" 2> "$tmp/b.log" &
pid_b=$!
produce "$tmp/half.00" events2
"$cuepoint" run --config "$tmp/c.json" --admin-addr-file "$tmp/c.admin" 2> "$tmp/c.log" &
pid_c=$!
produce "$tmp/half.01" events2
# Both caught up, with every partition held by one of them.
ready() { curl -s --max-time 2 "http://$(cat "$tmp/$1.admin" 2>/dev/null)/readyz"; }
held_by() { ready "$1" | grep -o '\[[0-9,]*\]' | tr -d '[]' | tr ',' ' '; }
held=0
for _ in $(seq 600); do
    nb=$(held_by b | wc -w); nc=$(held_by c | wc -w)
    if ready b | grep -q '"ready":true' && ready c | grep -q '"ready":true' &&
        [ $((nb + nc)) -eq "$parts" ] && [ "$nc" -gt 0 ] &&
        [ "$(metric b cuepoint_consumer_lag_records)" -eq 0 ] && [ "$(metric c cuepoint_consumer_lag_records)" -eq 0 ]; then
        held=1; break
    fi
    sleep 0.2
done
[ "$held" = 1 ] && ok || bad "b and c never held all $parts partitions with no lag: b $(ready b), c $(ready c)"
# /metrics says how many threads and what each did.
busy=$(curl -s --max-time 2 "http://$(cat "$tmp/b.admin")/metrics" |
       awk '$1 ~ /^cuepoint_stream_thread_records_total\{thread="[0-9]+"\}$/ && $2 > 0 { n++ } END { print n + 0 }')
[ "$(metric b cuepoint_stream_threads)" -eq 3 ] && [ "$busy" -eq 3 ] && ok \
    || bad "b's /metrics: cuepoint_stream_threads $(metric b cuepoint_stream_threads), $busy of 3 threads with records"
sleep 1 # past a commit interval
parts_b=$(held_by b); parts_c=$(held_by c)
echo "b holds: $parts_b; c holds: $parts_c"
kill -TERM "$pid_b" "$pid_c"
wait "$pid_b" || bad "b after SIGTERM: exit $?"
wait "$pid_c" || bad "c after SIGTERM: exit $?"
grep -q '"partition revoked"' "$tmp/b.log" && ok || bad "b never gave a partition to c"

reference events2 "$n_all" threads-b ref2
ids() { grep -o '^{"specversion":"1.0","id":"[0-9a-f]*"' | sed 's/.*"id":"//; s/"$//'; }
kcat -b "$bootstrap" -C -t triggers2 -o beginning -e -q -f '%s\n' 2>/dev/null > "$tmp/topic2"
ids < "$tmp/ref2.ref.triggers" | sort -u > "$tmp/ref2.ids"
ids < "$tmp/topic2" | sort -u > "$tmp/topic2.ids"
missing=$(comm -23 "$tmp/ref2.ids" "$tmp/topic2.ids" | wc -l)
extra=$(comm -13 "$tmp/ref2.ids" "$tmp/topic2.ids" | wc -l)
[ "$(wc -l < "$tmp/ref2.ids")" -gt 0 ] && [ "$missing" -eq 0 ] && ok || bad "two instances: $missing of the file mode's trigger ids are missing"
[ "$extra" -eq 0 ] && ok || bad "two instances: $extra trigger ids the file mode did not make"
sort -u "$tmp/topic2" | cmp -s - "$tmp/ref2.ref.triggers" && ok || bad "two instances: the distinct trigger records differ from the file mode's"
# Each partition's state from the instance that held it last.
{
    for p in $parts_b; do "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/b.state" --partition "$p"; done
    for p in $parts_c; do "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/c.state" --partition "$p"; done
} | sort > "$tmp/two.state"
[ "$(wc -l < "$tmp/two.state")" -gt 0 ] && cmp -s "$tmp/two.state" "$tmp/ref2.ref.state" && ok \
    || { bad "two instances: the states differ from the file mode's ($(wc -l < "$tmp/two.state") users here, $(wc -l < "$tmp/ref2.ref.state") there)";
         diff "$tmp/ref2.ref.state" "$tmp/two.state" | head -4 | cut -c1-250; }

finish
