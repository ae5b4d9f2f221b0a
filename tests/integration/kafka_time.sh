#!/bin/bash
# Time in production: a caught-up partition follows the wall clock, so a user
# who signed up and did nothing more gets onboarding_stalled without any new
# event; a lagging partition does not, so a user whose progress is still in
# the backlog gets no false "stalled". The wall clock is injected
# (CUEPOINT_CLOCK), and the lag is made real by a backlog read in small fetches.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail

mkfifo "$tmp/faults"
exec 3<> "$tmp/faults"
# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
"$cuepoint" dev-broker --partitions 2 --topic events --topic triggers --topic dead --topic time-changelog \
    < "$tmp/faults" > "$tmp/broker.txt" 2> "$tmp/broker.log" &
broker_pid=$!
run_pid=
trap 'kill $run_pid $broker_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/broker.txt" ] && break; sleep 0.1; done
bootstrap=$(head -n1 "$tmp/broker.txt")

t0=1772352000000 # 2026-03-01T08:00:00Z
ev() { printf '%s\t{"user_id":"%s","type":"%s","ts":%s}\n' "$1" "$1" "$2" "$3"; }
# Partition 1: one user signs up and goes quiet. Nothing else ever arrives.
# (The lagging partition is 0, before it in every loop over partitions: the
# caught-up one must follow the clock however the other is doing.)
ev quiet signed_up $t0 | kcat -b "$bootstrap" -P -t events -p 1 -K $'\t'
# Partition 0: a user signs up, then a long backlog, then that user's
# onboarding steps (an hour later in event time).
{
    ev slow signed_up $t0
    for i in $(seq 1 2000); do ev "f$i" page_viewed $((t0 + i)); done
    ev slow file_uploaded $((t0 + 3600000))
    ev slow member_invited $((t0 + 3700000))
    ev slow project_exported $((t0 + 3800000))
} | kcat -b "$bootstrap" -P -t events -p 0 -K $'\t' -X batch.num.messages=1

# One record per batch, and the mock answers one batch per fetch: with 2 ms
# added to every request, partition 0 stays behind its high watermark for
# several seconds, many clock ticks.
echo "rtt 1 2" >&3
cat > "$tmp/c.json" <<EOF
{"application.id": "time", "bootstrap.servers": "$bootstrap", "input.topic": "events",
 "trigger.topic": "triggers", "errors.dead.letter.queue.topic.name": "dead",
 "state.dir": "$tmp/state", "machines.dir": "$root/deploy/machines",
 "admin.listen": "127.0.0.1:0", "commit.interval.ms": 200,
 "kafka": {"consumer": {"fetch.wait.max.ms": 20, "fetch.max.bytes": 2048, "message.max.bytes": 2048,
                        "max.partition.fetch.bytes": 2048}}}
EOF
CUEPOINT_CLOCK=2026-03-10T00:00:00Z "$cuepoint" run --config "$tmp/c.json" --stop-at-end \
    --admin-addr-file "$tmp/admin.txt" 2> "$tmp/run.log" &
run_pid=$!
# Watch /metrics while it runs: the caught-up partition's stall must come
# while the other partition still lags, not once everything has caught up.
stalled_while_lagging=
for _ in $(seq 600); do
    kill -0 $run_pid 2>/dev/null || break
    m=$(curl -s -m 1 "http://$(cat "$tmp/admin.txt" 2>/dev/null)/metrics" 2>/dev/null)
    stalls=$(awk '$1 ~ /^cuepoint_triggers_total\{.*trigger="onboarding_stalled"/ { print $2 }' <<< "$m")
    lag0=$(awk '$1 ~ /^cuepoint_consumer_lag_records\{.*partition="0"/ { print $2 }' <<< "$m")
    [ "${stalls:-0}" -ge 1 ] && [ "${lag0:-0}" -gt 0 ] && stalled_while_lagging=1
    sleep 0.1
done
wait $run_pid || bad "run exit $?"
[ -n "$stalled_while_lagging" ] && ok \
    || bad "the caught-up partition's stall did not fire while partition 0 lagged"
kcat -b "$bootstrap" -C -t triggers -o beginning -e -q -f '%s\n' 2>/dev/null > "$tmp/triggers.jsonl"
sub() { grep "\"subject\":\"$1\"" "$tmp/triggers.jsonl" | grep -o '"type":"[a-z_]*"' | cut -d'"' -f4 | sort | tr '\n' ' '; }

[ "$(sub quiet)" = "onboarding_stalled " ] && ok \
    || bad "quiet (caught-up partition) got: '$(sub quiet)', expected the stall from the wall clock"
[ "$(sub slow)" = "onboarding_completed onboarding_survey " ] && ok \
    || bad "slow (lagging partition) got: '$(sub slow)' (a stall here means the wall clock moved a lagging partition)"
# The lag was real: partition 1 was read in many small fetches, not at once.
n_fired=$(grep -c '"onboarding_stalled"' "$tmp/triggers.jsonl")
[ "$n_fired" -eq 1 ] && ok || bad "$n_fired onboarding_stalled triggers, expected 1"
finish
