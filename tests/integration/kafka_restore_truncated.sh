#!/bin/bash
# A restore whose position falls off the changelog while it reads: the log's
# start moves past it (retention; here the mock broker dropping its oldest
# records once a partition holds about 5 MB). The reader must not jump to the
# new start silently, which would leave the users of the dropped records
# missing from a state that claims to be whole: cuepoint logs the partition's
# position as no longer in the log and restores the partition again from the
# changelog's new start on an emptied partition. Checked: the log lines, the
# partition restored twice, /readyz true at the end. (Here the new start
# holds no position record, so the input is read again from its start: the
# state is rebuilt from the input, and triggers come again with their ids.)
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 1 --topic events --topic triggers --topic trunc-changelog
"$cuepoint" generate --users 3000 --events 20000 --seed 5 > "$tmp/a.jsonl"
produce "$tmp/a.jsonl" events || exit 1
# A batch per changelog record (the mock answers a fetch with one batch), so
# that the restore below takes a round trip per record.
config live trunc events triggers '"session.timeout.ms": 6000' '"linger.ms": 0, "batch.num.messages": 1'
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "changelog.enabled": true/' "$tmp/live.json"
timeout 120 "$cuepoint" run --config "$tmp/live.json" --stop-at-end 2> "$tmp/run1.log" ||
    { bad "first run exit $?"; tail -3 "$tmp/run1.log"; }
n_log=$(kcat -b "$bootstrap" -C -t trunc-changelog -o beginning -e -q -f '%o\n' 2>/dev/null | wc -l)
echo "changelog: $n_log records"

# Wipe the state and slow the broker: the restore reads a record per 300 ms.
rm -rf "$tmp/live.state"
fault "rtt 1 300"
start_run live "$tmp/run2.log"
for _ in $(seq 300); do grep -q '"restore started"' "$tmp/run2.log" && break; sleep 0.1; done
grep -q '"restore started"' "$tmp/run2.log" && ok || bad "the restore did not start"
# Meanwhile about 8 MB of tombstones for users that do not exist (100-byte
# keys): the mock keeps about 5 MB a partition and drops the oldest, the
# restore's position included.
awk 'BEGIN { pad = sprintf("%090d", 0); for (i = 0; i < 80000; i++) printf "zz-%s-%d:\n", pad, i }' |
    kcat -b "$bootstrap" -P -t trunc-changelog -p 0 -K: -Z -z none -X linger.ms=100 2>> "$tmp/kcat.log" ||
    bad "kcat could not flood the changelog"
for _ in $(seq 600); do grep -q '"position no longer in the log"' "$tmp/run2.log" && break; sleep 0.1; done
fault "rtt 1 0"
grep -q '"position no longer in the log"' "$tmp/run2.log" && ok \
    || bad "the restore's position fell off the log and nobody said so"
for _ in $(seq 100); do grep -q '"restore started again from the changelog' "$tmp/run2.log" && break; sleep 0.1; done
grep -q '"restore started again from the changelog' "$tmp/run2.log" && ok \
    || bad "the restore did not start again from the changelog's start"
code=""
for _ in $(seq 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(cat "$tmp/live.admin" 2>/dev/null)/readyz")
    [ "$code" = 200 ] && break
    sleep 0.2
done
[ "$code" = 200 ] && ok || bad "/readyz is $code after the second restore"
starts=$(grep -c '"restore started"' "$tmp/run2.log")
[ "$starts" -ge 2 ] && ok || bad "the partition was restored $starts times, at least 2 expected"
grep -h -e 'no longer' -e 'restore ' "$tmp/run2.log" | cut -c1-220
kill -TERM "$run_pid"; wait_run 30 || bad "run exit $?"
finish
