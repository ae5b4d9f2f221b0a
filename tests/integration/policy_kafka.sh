#!/bin/bash
# The policy stage on Kafka: a live run with deploy/policies.json, a replay of
# its topic, a replay of the file the topic was loaded from, and a second
# deployment (another application.id: another group, state and topics) all
# decide the same: the same triggers with the same policy fields (channel,
# class, experiment variant) and the same decision records. Also: the live
# run's decisions are on <app>-decisions, every trigger on the topic has
# exactly one "sent" decision there, /v1/users/{id} shows a user's recent
# decisions, and /metrics counts them.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic ev --topic trig
clock=2026-03-10T00:00:00Z
"$cuepoint" generate --users 1500 --events 15000 --seed 5 > "$tmp/events.jsonl"
produce "$tmp/events.jsonl" ev || exit 1

# deploy NAME APP TRIGGERS: a live config with the policies, on a fixed clock
deploy() {
    config "$1" "$2" ev "$3"
    sed -i "s|\"wall.clock.advance\": false|\"wall.clock.advance\": true, \"policies\": \"$root/deploy/policies.json\"|" "$tmp/$1.json"
}
deploy live pol-live trig
CUEPOINT_CLOCK=$clock start_run live "$tmp/live.log"
for _ in $(seq 300); do [ -s "$tmp/live.admin" ] && break; sleep 0.1; done
addr=$(cat "$tmp/live.admin")
# Caught up, and the clock's timers fired (a tick after the end): the admin
# API shows the decisions; then SIGTERM.
for _ in $(seq 600); do
    [ "$(metric live cuepoint_records_consumed_total)" -ge "$(wc -l < "$tmp/events.jsonl")" ] &&
        [ "$(metric live cuepoint_consumer_lag_records)" -eq 0 ] && break
    sleep 0.1
done
sleep 1
sent_metric=$(curl -s "http://$addr/metrics" | awk '$1 ~ /^cuepoint_policy_decisions_total\{outcome="sent"\}/ { print $2 }')
user_json=$(curl -s "http://$addr/v1/users/u0000007")
kill -TERM "$run_pid"
wait_run 60 || bad "live run exit $?"
kcat -b "$bootstrap" -C -t trig -o beginning -e -q -f '%s\n' 2>/dev/null | sort > "$tmp/live.triggers"
kcat -b "$bootstrap" -C -t pol-live-decisions -o beginning -e -q -f '%k\t%s\n' 2>/dev/null > "$tmp/live.decisions.kv"
cut -f2- "$tmp/live.decisions.kv" | sort > "$tmp/live.decisions"
n=$(wc -l < "$tmp/live.triggers"); nd=$(wc -l < "$tmp/live.decisions")
[ "$n" -gt 500 ] && [ "$nd" -gt "$n" ] && ok || bad "live: $n triggers, $nd decisions"
echo "live: $n triggers, $nd decisions ($(grep -c '"outcome":"suppressed"' "$tmp/live.decisions") suppressed, $(grep -c '"outcome":"deferred"' "$tmp/live.decisions") deferred)"
grep -q '"policy":{"channel":"[a-z_]*","class":"[a-z]*"' "$tmp/live.triggers" && ok || bad "live triggers carry no policy fields"
[ "$(grep -c '"variant":' "$tmp/live.triggers")" -gt 0 ] && ok || bad "no trigger carries an experiment variant"
# Keys: the user id, except for erasures.
awk -F'\t' '$2 ~ /"user_id":/ { s = $2; sub(/.*"user_id":"/, "", s); sub(/".*/, "", s); if (s != $1) bad++ } END { exit bad > 0 }' \
    "$tmp/live.decisions.kv" && ok || bad "a decision record is not keyed by its user id"
# Every trigger on the topic has exactly one "sent" decision.
grep -o '^{"specversion":"1.0","id":"[0-9a-f]*"' "$tmp/live.triggers" | sed 's/.*"id":"//; s/"$//' | sort > "$tmp/ids.triggers"
grep '"outcome":"sent"' "$tmp/live.decisions" | sed 's/^{"trigger_id":"\([0-9a-f]*\)".*/\1/' | sort > "$tmp/ids.sent"
cmp -s "$tmp/ids.triggers" "$tmp/ids.sent" && ok || bad "triggers on the topic and 'sent' decisions differ"
[ "$(grep -c '"outcome":"suppressed","reason":"none"' "$tmp/live.decisions")" -eq 0 ] && ok || bad "a suppression without a reason"
[ -n "$sent_metric" ] && [ "${sent_metric%.*}" -gt 0 ] && ok || bad "/metrics: no sent decisions counted ('$sent_metric')"
echo "$user_json" | grep -q '"policy":{"consent":{"push":' && echo "$user_json" | grep -q '"decisions":\[{"trigger_id"' && ok \
    || bad "/v1/users/u0000007 shows no decisions: $(echo "$user_json" | cut -c1-200)"

# same NAME TRIGGERS DECISIONS: equal to the live run's
same() {
    sort "$2" | cmp -s - "$tmp/live.triggers" && ok \
        || { bad "$1: triggers differ from the live run's"; diff <(sort "$2") "$tmp/live.triggers" | head -4 | cut -c1-250; }
    sort "$3" | cmp -s - "$tmp/live.decisions" && ok \
        || { bad "$1: decisions differ from the live run's"; diff <(sort "$3") "$tmp/live.decisions" | head -4 | cut -c1-250; }
}
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r1" --advance-to $clock \
    --decisions "$tmp/r1.decisions" > "$tmp/r1.out" 2> "$tmp/r1.log" || bad "replay exit $?"
same "replay of the topic" "$tmp/r1.out" "$tmp/r1.decisions"
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r2" --advance-to $clock --input "$tmp/events.jsonl" \
    --decisions "$tmp/r2.decisions" > "$tmp/r2.out" 2> "$tmp/r2.log" || bad "file replay exit $?"
same "replay of the file" "$tmp/r2.out" "$tmp/r2.decisions"

# Another deployment: its own group, state and topics. Records name their
# application, so the comparison is of trigger ids with their policy fields.
deploy other pol-other trig-other
CUEPOINT_CLOCK=$clock timeout 120 "$cuepoint" run --config "$tmp/other.json" --stop-at-end 2> "$tmp/other.log" || bad "second deployment exit $?"
pol() { sed -E 's/^\{"specversion":"1.0","id":"([0-9a-f]*)".*("policy":\{[^}]*\}).*/\1 \2/' | sort; }
kcat -b "$bootstrap" -C -t trig-other -o beginning -e -q -f '%s\n' 2>/dev/null | pol > "$tmp/other.pol"
pol < "$tmp/live.triggers" > "$tmp/live.pol"
cmp -s "$tmp/other.pol" "$tmp/live.pol" && ok || { bad "the second deployment decided differently"; diff "$tmp/live.pol" "$tmp/other.pol" | head -4; }

finish
