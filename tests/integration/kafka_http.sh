#!/bin/bash
# The admin API over real HTTP on 127.0.0.1: /healthz, /readyz (503 until the
# group gave this instance its partitions), /metrics in Prometheus text
# format with the counts of what was consumed, /v1/users/{id} (200 with the
# state, 404 for a user this instance has no state for), 404/405 for the rest;
# a second member joining makes /readyz 503 until the rebalance ends; SIGTERM
# exits 0 and the port closes.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --partitions 3 --topic events --topic triggers --topic dead --topic http-changelog

"$cuepoint" generate --users 300 --events 3000 --seed 5 \
    | sed -E 's/^(.*"user_id":"([^"]*)".*)$/\2\t\1/' > "$tmp/events.tsv"
kcat -b "$bootstrap" -P -t events -K $'\t' < "$tmp/events.tsv"
total=$(wc -l < "$tmp/events.tsv")

cat > "$tmp/c.json" <<EOF
{"application.id": "http", "bootstrap.servers": "$bootstrap", "input.topic": "events",
 "trigger.topic": "triggers", "errors.dead.letter.queue.topic.name": "dead",
 "state.dir": "$tmp/state", "machines.dir": "$root/deploy/machines",
 "admin.listen": "127.0.0.1:0", "commit.interval.ms": 200, "wall.clock.advance": false,
 "kafka": {"consumer": {"fetch.wait.max.ms": 10, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}}}
EOF
"$cuepoint" run --config "$tmp/c.json" --admin-addr-file "$tmp/admin.txt" 2> "$tmp/run.log" &
run_pid=$!
for _ in $(seq 100); do [ -s "$tmp/admin.txt" ] && break; sleep 0.05; done
addr=$(cat "$tmp/admin.txt")
case "$addr" in 127.0.0.1:*) ok ;; *) bad "admin address '$addr' is not on 127.0.0.1" ;; esac
get() { curl -s -o "$tmp/body" -w '%{http_code}' "http://$addr$1"; }

[ "$(get /healthz)" = 200 ] && grep -q '"ok"' "$tmp/body" && ok || bad "/healthz: $(cat "$tmp/body")"
# Joining the group takes the mock ~3 s: not ready before, ready after.
first=$(get /readyz)
[ "$first" = 503 ] && ok || bad "/readyz before the assignment: $first"
ready=
for _ in $(seq 200); do [ "$(get /readyz)" = 200 ] && ready=1 && break; sleep 0.05; done
[ -n "$ready" ] && grep -q '"partitions":\[0,1,2\]' "$tmp/body" && ok || bad "/readyz never became 200 with partitions 0-2: $(cat "$tmp/body")"

consumed=0
for _ in $(seq 200); do
    get /metrics > /dev/null
    consumed=$(awk '$1 == "cuepoint_records_consumed_total" { print $2 }' "$tmp/body")
    [ "${consumed:-0}" -ge "$total" ] && break
    sleep 0.05
done
[ "$consumed" = "$total" ] && ok || bad "cuepoint_records_consumed_total $consumed, produced $total"
cp "$tmp/body" "$tmp/metrics.txt"
# Prometheus text format 0.0.4: HELP and TYPE before each family's samples,
# sample lines `name{label="value",...} number`, counters ending in _total,
# no user ids in labels.
awk '
    /^# HELP / { help[$3] = 1; next }
    /^# TYPE / { if (!($3 in help)) { print "TYPE before HELP: " $0; bad++ }
                 type[$3] = $4; if ($4 == "counter" && $3 !~ /_total$/) { print "counter without _total: " $3; bad++ } next }
    /^#/ { next }
    {
        if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? [-+]?([0-9.]+([eE][-+]?[0-9]+)?|Inf|NaN)$/) { print "bad line: " $0; bad++; next }
        name = $1; sub(/\{.*/, "", name); fam = name; sub(/_(bucket|sum|count)$/, "", fam)
        if (!(name in type) && !(fam in type)) { print "sample before its TYPE: " $0; bad++ }
        if ($0 ~ /u[0-9]{7}/) { print "user id in a label: " $0; bad++ }
        samples++
    }
    END { if (samples < 20) { print "only " samples " samples"; bad++ } exit bad > 0 }' "$tmp/metrics.txt" \
    && ok || bad "/metrics is not valid Prometheus text"
for m in cuepoint_records_applied_total cuepoint_consumer_lag_records cuepoint_commit_duration_seconds_bucket \
         'cuepoint_triggers_total{machine="onboarding",trigger="onboarding_completed"}' \
         cuepoint_cache_hits_total cuepoint_rocksdb_sst_bytes 'cuepoint_dead_letters_total{reason="not_json"}'; do
    grep -qF "$m" "$tmp/metrics.txt" && ok || bad "/metrics lacks $m"
done
lag=$(awk '$1 ~ /^cuepoint_consumer_lag_records\{/ { s += $2 } END { print s + 0 }' "$tmp/metrics.txt")
[ "$lag" = 0 ] && ok || bad "consumer lag $lag after everything was consumed"

[ "$(get /v1/users/u0000001)" = 200 ] && grep -q '"u0000001"' "$tmp/body" && ok \
    || bad "/v1/users/u0000001: $(cat "$tmp/body")"
[ "$(get /v1/users/nobody-here)" = 404 ] && ok || bad "/v1/users/nobody-here is not 404"
[ "$(get /no/such/path)" = 404 ] && ok || bad "an unknown path is not 404"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$addr/metrics")
[ "$code" = 405 ] && ok || bad "POST /metrics: $code, expected 405"

# The admin port taken: a configuration error naming admin.listen, before joining.
"$cuepoint" run --config "$tmp/c.json" --set "admin.listen=$addr" --set "state.dir=$tmp/state3" \
    2> "$tmp/taken.log"
rc=$?
[ $rc -eq 78 ] && grep -q "admin.listen: .*$addr" "$tmp/taken.log" && ok \
    || bad "a taken admin port: exit $rc, $(tail -1 "$tmp/taken.log")"

# A second member joins: the first gives partitions up, is not ready while
# the group rebalances, and is ready again with fewer partitions.
sed 's|"state.dir": "[^"]*"|"state.dir": "'"$tmp"'/state2"|' "$tmp/c.json" > "$tmp/c2.json"
"$cuepoint" run --config "$tmp/c2.json" --admin-addr-file "$tmp/admin2.txt" 2> "$tmp/run2.log" &
run2_pid=$!
saw_503=; back=
# (the mock holds a rebalance for session.timeout.ms - 1 s: 5 s here)
for _ in $(seq 600); do
    code=$(get /readyz)
    [ "$code" = 503 ] && saw_503=1
    [ -n "$saw_503" ] && [ "$code" = 200 ] && back=1 && break
    sleep 0.05
done
[ -n "$saw_503" ] && ok || bad "/readyz stayed 200 while the group rebalanced"
[ -n "$back" ] && ! grep -q '"partitions":\[0,1,2\]' "$tmp/body" && ok \
    || bad "/readyz after the rebalance: $(cat "$tmp/body")"
kill -TERM $run2_pid; wait $run2_pid || bad "the second member: exit $?"

# A member stopped while it waits for its first assignment (librdkafka 2.0.2
# asserts when such a consumer is destroyed: cuepoint must still exit 0).
sed 's|"state.dir": "[^"]*"|"state.dir": "'"$tmp"'/state4"|' "$tmp/c.json" > "$tmp/c4.json"
"$cuepoint" run --config "$tmp/c4.json" 2> "$tmp/run4.log" &
run4_pid=$!
sleep 6 # joined (about 5 s on the mock with a 6 s session), not yet given partitions
kill -TERM $run4_pid; wait $run4_pid; rc=$?
[ $rc -eq 0 ] && ok || { bad "a member stopped before its first assignment: exit $rc"; grep -v '"ts"' "$tmp/run4.log" | head -3; }

kill -TERM $run_pid; wait $run_pid; rc=$?; run_pid=
[ $rc -eq 0 ] && ok || bad "exit $rc after SIGTERM"
grep -q '"msg":"stopped"' "$tmp/run.log" && ok || bad "no 'stopped' log line"
curl -s -m 2 "http://$addr/healthz" > /dev/null && bad "the admin port still answers after exit" || ok
finish
