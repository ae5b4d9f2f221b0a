#!/bin/bash
# A cache that fills before commit.interval.ms is up. A task whose changed
# users pass half its share of statestore.cache.max.bytes asks for the
# instance's next commit cycle (sealed: intake goes on while it waits for the
# acknowledgements and the write) instead of committing alone with intake
# stopped (the latency benchmark's p99 was 236 ms with caches that filled
# between cycles). Here the interval is
# ten minutes and the cache 4 MiB (1 MiB a partition) for 20,000 users: every
# cycle but the last is an early one, no task commits alone (a batch adds at
# most ~1,000 users a partition, under the half that is left), and the
# triggers, ids, dead letters and states are the file mode's.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic events --topic triggers
"$cuepoint" generate --users 20000 --events 60000 --seed 5 > "$tmp/all.jsonl"
n_all=$(wc -l < "$tmp/all.jsonl")
produce "$tmp/all.jsonl" events
reference events "$n_all" early ref
config a early events triggers
sed -i 's/"commit.interval.ms": 300/"commit.interval.ms": 600000, "statestore.cache.max.bytes": 4194304/' "$tmp/a.json"
start_run a "$tmp/a.log"
wait_metric a cuepoint_records_consumed_total "$n_all" 120 && ok \
    || bad "consumed $(metric a cuepoint_records_consumed_total) of $n_all in 120 s"
early=$(metric a cuepoint_commit_cycles_early_total)
own=$(metric a cuepoint_task_own_commits_total)
echo "early commit cycles: $early, a task's own commits: $own"
[ "$early" -gt 0 ] && ok || bad "no early commit cycle with a 10-minute interval and a full cache"
[ "$own" -eq 0 ] && ok || bad "$own commits of a task alone, intake stopped, before its cycle came"
kill -TERM "$run_pid"
wait_run 60; rc=$?
[ "$rc" -eq 0 ] && ok || { bad "run exit $rc"; tail -5 "$tmp/a.log"; }
balanced "$tmp/a.log" "early cycles"
check a triggers ref
finish
