#!/bin/bash
# `cuepoint run` through broker faults on a 3-broker dev cluster, while the
# stream is being produced: a broker down for 20 s then up, partition leaders
# moved, the group coordinator moved, 50 produce requests failed. Then it
# stops (SIGTERM, exit 0) and a --stop-at-end run finds nothing left. Against
# the file mode over the same records: every trigger id is on the topic, none
# is there that the file mode did not make, the records are byte-identical,
# every user's final state is the same, the dead letters (the faults reorder
# kcat's retried input, so some events come late) are the file mode's. The
# repeated deliveries are printed.
#
# Two things the Debian 12 mock (librdkafka 2.0.2) does not do, which this
# test must not rely on:
# - it checks an idempotent producer's sequence numbers only for transactional
#   producers. When a Produce request fails (an injected error, or "not
#   leader" while a leader moves) and the next request for the same partition
#   is already on the wire, the mock appends the second; the producer then
#   takes the first one's records as acknowledged ("implicitly acked by
#   subsequent batch success": right against a real broker, which would have
#   refused the second), and they are lost with a successful delivery report.
#   kcat alone shows it (-X enable.idempotence=true -X debug=eos under
#   produce-errors). So the run's producer keeps one request in flight per
#   broker here: max.in.flight.requests.per.connection=1.
# - it does not drop the repeat of a request whose answer was lost when a
#   broker went down, so a trigger may be on the topic twice without a crash.
#   Repeats are printed, not failed.
#
# FAULTS_USERS, FAULTS_EVENTS, FAULTS_SEED and FAULTS_DOWN_S change the sizes.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
cd "$tmp"
users=${FAULTS_USERS:-20000}
events=${FAULTS_EVENTS:-200000}
seed=${FAULTS_SEED:-$RANDOM}
down_s=${FAULTS_DOWN_S:-20}
parts=16
app=faults-app
echo "seed $seed, $users users, $events events"

"$cuepoint" generate --users "$users" --events "$events" --seed "$seed" > events.jsonl
split -n l/5 -d events.jsonl chunk. # chunk.00 .. chunk.04, one per phase
# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --brokers 3 --partitions "$parts" --topic events --topic triggers --topic "$app-changelog"
config faults "$app" events triggers "" '"max.in.flight.requests.per.connection": 1'

alive() { # PHASE: the run must live through every fault
    kill -0 "$run_pid" 2>/dev/null && ok || { bad "$1: cuepoint run died"; tail -5 run.1.log; }
}
caught_up() { # SECONDS: waits until the run has applied all that is on the topic
    local want; want=$(count events)
    for _ in $(seq $(($1 * 4))); do
        [ "$(metric faults cuepoint_records_consumed_total)" -ge "$want" ] &&
            [ "$(metric faults cuepoint_consumer_lag_records)" -eq 0 ] && return 0
        sleep 0.25
    done
    return 1
}
produce_bg() { produce "$1" events & producer=$!; }

produce chunk.00 events || exit 1
start_run faults run.1.log
[ "$(wait_assigned run.1.log "$parts")" -eq 0 ] && ok || { bad "the partitions were not assigned"; tail -3 run.1.log; }

# 1. A broker down while records arrive: its partitions (input and triggers)
# and perhaps the coordinator are gone for $down_s s; the commit cycle waits
# for the acknowledgements, kcat for its deliveries.
produce_bg chunk.01
sleep 0.3
fault "down 1"
sleep "$down_s"
alive "broker 1 down"
fault "up 1"
wait "$producer" || bad "producing chunk 1"
caught_up 60 && ok || bad "not caught up after broker 1 came back"
alive "broker 1 up"

# 2. Leaders move: every input and trigger partition to another broker.
produce_bg chunk.02
for p in $(seq 0 $((parts - 1))); do
    fault "leader events $p $(((p + 1) % 3 + 1))" > /dev/null
    fault "leader triggers $p $(((p + 2) % 3 + 1))" > /dev/null
done
echo "fault: leaders of events and triggers moved"
wait "$producer" || bad "producing chunk 2"
caught_up 60 && ok || bad "not caught up after the leader moves"
alive "leader moves"

# 3. The group's coordinator moves, twice.
produce_bg chunk.03
fault "coordinator group $app 2"
sleep 2
fault "coordinator group $app 3"
wait "$producer" || bad "producing chunk 3"
caught_up 60 && ok || bad "not caught up after the coordinator moves"
alive "coordinator moves"

# 4. Produce errors. The mock fails the next 50 Produce requests of any
# client: the run is paused while kcat writes the chunk, so that the errors
# fall on the triggers it makes from it.
kill -STOP "$run_pid"
produce chunk.04 events
fault "produce-errors 50"
kill -CONT "$run_pid"
caught_up 90 && ok || bad "not caught up after the produce errors"
alive "produce errors"

kill -TERM "$run_pid"
wait_run 60
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "SIGTERM: exit $rc"; tail -5 run.1.log; }
start_run faults run.2.log --stop-at-end
committed=$(wait_assigned run.2.log "$parts")
in_topic=$(count events)
echo "the --stop-at-end run starts at offset $committed of $in_topic"
[ "$committed" -eq "$in_topic" ] && ok || bad "the first run committed $committed of $in_topic"
wait_run 60
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "--stop-at-end run: exit $rc"; tail -5 run.2.log; }

reference events "$events" "$app" faults atleast
check faults triggers faults
echo "duplicate deliveries through the faults: $dups"
grep -h '"level":"\(warn\|error\)"' run.1.log run.2.log | sed -E 's/.*"msg":"([^"]{0,80}).*/\1/' |
    sort | uniq -c | sort -rn | head -8 | sed 's/^/  log: /'

finish
