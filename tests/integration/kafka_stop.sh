#!/bin/bash
# SIGTERM while the only broker is down: the run still exits 0 within a
# bounded time (its last commit cycle and the Kafka clients' teardown are
# each bounded by shutdown.timeout.ms), and once the broker is back a new run
# continues from what it committed: no trigger twice, none lost.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
cd "$tmp"
# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --partitions 2 --topic events --topic stop-triggers --topic stop-app-changelog
"$cuepoint" generate --users 300 --events 3000 --seed 9 > events.jsonl
produce events.jsonl events || exit 1
reference events 3000 stop-app stop
# The member that could not leave is dropped after session.timeout.ms: keep it short.
config stop stop-app events stop-triggers '"session.timeout.ms": 6000, "heartbeat.interval.ms": 500'
sed -i 's/"commit.interval.ms": 300/"commit.interval.ms": 300, "shutdown.timeout.ms": 3000/' stop.json

start_run stop stop.1.log
for _ in $(seq 200); do [ "$(metric stop cuepoint_records_consumed_total)" -ge 3000 ] && break; sleep 0.1; done
sleep 1 # a commit cycle after the last record
fault "down 1"
sleep 1
start=$(date +%s)
kill -TERM "$run_pid"
wait_run 60
rc=$?
took=$(( $(date +%s) - start ))
[ $rc -eq 0 ] && ok || { bad "SIGTERM with the broker down: exit $rc"; tail -3 stop.1.log; }
[ $took -le 15 ] && ok || bad "SIGTERM with the broker down took $took s (bound: 2 x 3 s + slack)"
echo "SIGTERM with the broker down: exit $rc after $took s"

fault "up 1"
start_run stop stop.2.log --stop-at-end
wait_run 60 || bad "the run after the broker came back: exit $?"
check stop stop-triggers stop
[ "$dups" -eq 0 ] && ok || bad "$dups duplicate deliveries after a clean stop"
finish
