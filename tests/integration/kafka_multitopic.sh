#!/bin/bash
# Several input topics (input.topics) read as one stream per partition
# number. One user's events split across two topics (web, mobile) give the
# same triggers, trigger ids included, as the same events on one topic; a
# restart resumes both topics where they were (nothing applied twice, no
# trigger twice); /metrics has the lag of each topic's partitions, and
# `offsets show` each topic's positions; topics of
# different partition counts are refused at start naming each topic and its
# count (exit 78, as the other partition count checks); and the state
# directory stays bound to its topic list.
#
# The events are produced in chunks, alternating topics, each chunk consumed
# before the next is produced: the order in which a task applies records of
# different topics is the order they arrive in, so this makes each
# partition's sequence the one the single topic has, and the file mode's
# triggers over the single topic are the reference.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic events --topic web --topic mobile --topic triggers \
    --topic web2 --topic mobile2 --topic triggers2 --topic mt-app-changelog --topic billing:8
"$cuepoint" generate --users 300 --events 3000 --seed 11 > "$tmp/all.jsonl"
total=$(wc -l < "$tmp/all.jsonl")

# The reference: every event on one topic, through the file mode per partition.
produce "$tmp/all.jsonl" events || exit 1
reference events "$total" mt-app one

chunks=6
per=$(((total + chunks - 1) / chunks))
split -l "$per" -d -a 1 "$tmp/all.jsonl" "$tmp/chunk."
ids() { grep -o '^{"specversion":"1.0","id":"[0-9a-f]*"' "$1" | sed 's/.*"id":"//; s/"$//'; }
ids "$tmp/one.ref.triggers" | sort > "$tmp/one.ids"

# multi NAME TOPIC-A TOPIC-B TRIGGERS [JSON members]: runs NAME over two
# topics, the chunks produced in turn (even ones to A, odd ones to B), each
# once the run consumed everything before it, with a clean restart half way;
# then checks the triggers against the single topic's.
multi() {
    local name=$1 ta=$2 tb=$3 out=$4 extra=${5:-}
    config "$name" mt-app "$ta" "$out"
    sed -i "s/\"input.topic\": \"$ta\"/\"input.topics\": [\"$ta\", \"$tb\"]${extra:+, $extra}/" "$tmp/$name.json"
    sent=0 base=0
    feed() {
        local i topic
        for i in $(seq "$1" "$2"); do
            topic=$ta
            [ $((i % 2)) -eq 1 ] && topic=$tb
            produce "$tmp/chunk.$i" "$topic" || return 1
            sent=$((sent + $(wc -l < "$tmp/chunk.$i")))
            wait_metric "$name" cuepoint_records_consumed_total $((sent - base)) 60 \
                || { bad "$name: chunk $i: the run consumed $(metric "$name" cuepoint_records_consumed_total) of $((sent - base))"; return 1; }
        done
    }
    start_run "$name" "$tmp/$name.1.log"
    [ "$(wait_assigned "$tmp/$name.1.log" 4)" -ge 0 ] && ok || { bad "$name: no assignment"; tail -5 "$tmp/$name.1.log"; }
    for _ in $(seq 100); do [ -s "$tmp/$name.admin" ] && break; sleep 0.1; done
    feed 0 2
    # Lag per topic and partition: both topics' four partitions are labelled.
    curl -s "http://$(cat "$tmp/$name.admin")/metrics" > "$tmp/$name.metrics"
    local t n c d
    for t in "$ta" "$tb"; do
        n=$(grep -c "^cuepoint_consumer_lag_records{topic=\"$t\",partition=\"[0-3]\"}" "$tmp/$name.metrics")
        [ "$n" -eq 4 ] && ok || bad "$name: /metrics has $n lag samples for topic $t, 4 expected"
    done
    curl -s "http://$(cat "$tmp/$name.admin")/v1/partitions" | grep -q "\"topics\":\[\"$ta\",\"$tb\"\]" \
        && ok || bad "$name: /v1/partitions does not list both topics"
    kill -TERM "$run_pid"
    wait_run 60 && ok || bad "$name: the first run did not stop cleanly: exit $?"
    balanced "$tmp/$name.1.log" "$name, first run"

    # A restart: both topics resume where the store says, and nothing is
    # applied again (no duplicate in the counts, no trigger twice).
    base=$sent
    start_run "$name" "$tmp/$name.2.log"
    [ "$(wait_assigned "$tmp/$name.2.log" 4)" -gt 0 ] && ok || { bad "$name: the restart resumed at nothing"; tail -5 "$tmp/$name.2.log"; }
    for _ in $(seq 100); do [ -s "$tmp/$name.admin" ] && break; sleep 0.1; done
    feed 3 $((chunks - 1))
    kill -TERM "$run_pid"
    wait_run 60 && ok || bad "$name: the second run did not stop cleanly: exit $?"
    balanced "$tmp/$name.2.log" "$name, second run"
    c=$(grep '"msg":"stopped"' "$tmp/$name.2.log" | grep -o '"consumed":[0-9]*' | cut -d: -f2)
    d=$(grep '"msg":"stopped"' "$tmp/$name.2.log" | grep -o '"duplicates":[0-9]*' | cut -d: -f2)
    [ "${c:-0}" -eq $((total - base)) ] && [ "${d:-1}" -eq 0 ] && ok \
        || bad "$name: the restart read ${c:-?} records (${d:-?} duplicates); $((total - base)) new ones were produced"

    # The same triggers as the single topic's, by id and byte for byte, each once.
    kcat -b "$bootstrap" -C -t "$out" -o beginning -e -q -f '%s\n' -X isolation.level=read_committed \
        2>/dev/null > "$tmp/$name.topic"
    ids "$tmp/$name.topic" | sort > "$tmp/$name.ids"
    n=$(wc -l < "$tmp/one.ids")
    [ "$n" -gt 0 ] && cmp -s "$tmp/one.ids" "$tmp/$name.ids" && ok \
        || { bad "$name: trigger ids differ from the single topic's ($n there, $(wc -l < "$tmp/$name.ids") here)";
             diff "$tmp/one.ids" "$tmp/$name.ids" | head -4; }
    sort "$tmp/$name.topic" | cmp -s - "$tmp/one.ref.triggers" && ok \
        || bad "$name: the trigger records differ from the single topic's"
    echo "$name: $(wc -l < "$tmp/$name.ids") triggers over $ta and $tb, $n from the single topic"
}

# Both runs are application mt-app (a trigger record names its application,
# and they are compared byte for byte with the reference's), so only the
# second keeps the changelog: the first one's would be restored under it.
multi mt web mobile triggers '"changelog.enabled": false'
# Exactly-once: the transaction carries both topics' offsets (and the store
# too: the mock keeps no transactional offset commit).
multi eos web2 mobile2 triggers2 '"processing.guarantee": "exactly_once_v2", "changelog.enabled": true'
# A lost state.dir comes back from the changelog, whose position records
# carry both topics' offsets: the run resumes each topic where it was and
# reads nothing again.
rm -rf "$tmp/eos.state"
timeout 120 "$cuepoint" run --config "$tmp/eos.json" --stop-at-end 2> "$tmp/eos.3.log"
rc=$?
[ "$rc" -eq 0 ] && [ "$(grep -c '"restore finished"' "$tmp/eos.3.log")" -eq 4 ] && ok \
    || { bad "eos: the restore from the changelog: exit $rc"; tail -3 "$tmp/eos.3.log"; }
c=$(grep '"msg":"stopped"' "$tmp/eos.3.log" | grep -o '"consumed":[0-9]*' | cut -d: -f2)
[ "${c:-1}" -eq 0 ] && ok || bad "eos: after the restore ${c:-?} records were read again"

# A changelog written reading two topics is not restored for the first
# alone: refused, naming the changelog's partition and position record.
rm -rf "$tmp/eos.state"
sed 's/"input.topics": \["web2", "mobile2"\]/"input.topic": "web2"/' "$tmp/eos.json" > "$tmp/eos1.json"
timeout 120 "$cuepoint" run --config "$tmp/eos1.json" --stop-at-end 2> "$tmp/eos1.log"
rc=$?
[ "$rc" -eq 78 ] && grep -q 'mt-app-changelog partition [0-9]*, the position record at offset [0-9]*: the changelog' "$tmp/eos1.log" && ok \
    || { bad "one topic over a two-topic changelog: exit $rc"; grep -i changelog "$tmp/eos1.log" | tail -2; }

# The state directory records its topics: the first topic alone is refused.
sed 's/"input.topics": \["web", "mobile"\]/"input.topic": "web"/' "$tmp/mt.json" > "$tmp/web.json"
timeout 60 "$cuepoint" run --config "$tmp/web.json" --stop-at-end 2> "$tmp/web.log"
rc=$?
[ "$rc" -eq 78 ] && grep -q 'reading \\"web,mobile\\"' "$tmp/web.log" && ok \
    || { bad "one topic over a two-topic state.dir: exit $rc"; tail -2 "$tmp/web.log"; }

# The offsets tool shows every topic's partitions: after the runs above,
# each stored and committed at its high watermark, the watermarks adding up
# to the records produced to the topic. A reset, which would move one
# topic's positions, is still refused naming both.
web=0 mobile=0
for i in $(seq 0 $((chunks - 1))); do
    if [ $((i % 2)) -eq 0 ]; then web=$((web + $(wc -l < "$tmp/chunk.$i"))); else mobile=$((mobile + $(wc -l < "$tmp/chunk.$i"))); fi
done
timeout 60 "$cuepoint" offsets show --config "$tmp/mt.json" --json > "$tmp/offsets.json" 2> "$tmp/offsets.log"
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "offsets show with input.topics: exit $rc"; tail -2 "$tmp/offsets.log"; }
for t in web:$web mobile:$mobile; do
    name=${t%%:*} want=${t#*:}
    rows=$(grep -c "^{\"topic\":\"$name\",\"partition\":[0-3]," "$tmp/offsets.json")
    high=$(grep "^{\"topic\":\"$name\"," "$tmp/offsets.json" | grep -o '"high_watermark":[0-9]*' | cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }')
    behind=$(grep "^{\"topic\":\"$name\"," "$tmp/offsets.json" \
        | sed -E 's/.*"high_watermark":([0-9]+),"committed":([0-9a-z]+),"stored":([0-9a-z]+),"lag":([0-9]+).*/\1 \2 \3 \4/' \
        | awk '$1 != $2 || $1 != $3 || $4 != 0' | wc -l)
    [ "$rows" -eq 4 ] && [ "${high:-0}" -eq "$want" ] && [ "$behind" -eq 0 ] && ok \
        || { bad "offsets show, topic $name: $rows rows, watermarks add up to ${high:-?} of $want, $behind not at their watermark"; cat "$tmp/offsets.json"; }
done
timeout 60 "$cuepoint" offsets show --config "$tmp/mt.json" > "$tmp/offsets.txt" 2>> "$tmp/offsets.log"
[ "$(grep -cE '^(web|mobile) +[0-3] ' "$tmp/offsets.txt")" -eq 8 ] && grep -q 'topics web,mobile' "$tmp/offsets.txt" && ok \
    || { bad "the offsets table does not name each row's topic"; cat "$tmp/offsets.txt"; }
timeout 60 "$cuepoint" offsets reset --config "$tmp/mt.json" --to-earliest --dry-run > /dev/null 2> "$tmp/reset.log"
rc=$?
[ "$rc" -eq 78 ] && grep -q 'input.topics lists 2 (web,mobile)' "$tmp/reset.log" && ok \
    || { bad "offsets reset with input.topics: exit $rc"; tail -2 "$tmp/reset.log"; }

# Different partition counts: refused before anything is read.
sed -e 's/"input.topics": \["web", "mobile"\]/"input.topics": ["web", "billing"]/' \
    -e "s|/mt.state\"|/mc.state\"|" "$tmp/mt.json" > "$tmp/mc.json"
timeout 60 "$cuepoint" run --config "$tmp/mc.json" --stop-at-end 2> "$tmp/mc.log"
rc=$?
[ "$rc" -eq 78 ] && ok || { bad "topics of 4 and 8 partitions: exit $rc, 78 expected"; tail -2 "$tmp/mc.log"; }
grep -q 'different partition counts (web has 4, billing has 8)' "$tmp/mc.log" && ok \
    || { bad "the refusal does not name each topic and its count"; tail -2 "$tmp/mc.log"; }
grep -q '"partition assigned"' "$tmp/mc.log" && bad "the refused run took partitions" || ok

# Both keys at once: a configuration error naming both.
sed 's/"input.topics"/"input.topic": "web", "input.topics"/' "$tmp/mt.json" > "$tmp/both.json"
"$cuepoint" run --config "$tmp/both.json" --print-config > /dev/null 2> "$tmp/both.log"
rc=$?
[ "$rc" -eq 78 ] && grep -q 'either input.topic (one topic) or input.topics (a list), not both' "$tmp/both.log" \
    && ok || { bad "input.topic and input.topics together: exit $rc"; tail -2 "$tmp/both.log"; }

finish
