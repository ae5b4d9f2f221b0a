#!/bin/bash
# The changelog and restore (changelog.enabled): a run writes each changed
# user and each partition's position to <app>-changelog; with its state
# directory wiped, the next run rebuilds every partition from the changelog
# (/readyz 503 while it does, /metrics showing what is left, a log line per
# partition at start and end), then resumes the input exactly where the state
# ends: the same final state as the file mode, nothing read or sent twice.
# A changelog topic with another partition count than the input is refused
# (exit 78, both counts named).
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic events --topic triggers --topic wrong-changelog:2
"$cuepoint" generate --users 3000 --events 30000 --seed 21 > "$tmp/a.jsonl"
"$cuepoint" generate --users 3000 --events 6000 --seed 22 --start 2026-02-15T00:00:00Z > "$tmp/b.jsonl"
produce "$tmp/a.jsonl" events || exit 1

config live restore-app events triggers '"session.timeout.ms": 6000'
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "changelog.enabled": true/' "$tmp/live.json"
timeout 120 "$cuepoint" run --config "$tmp/live.json" --stop-at-end 2> "$tmp/run1.log" || { bad "first run exit $?"; tail -3 "$tmp/run1.log"; }
n_log=$(kcat -b "$bootstrap" -C -t restore-app-changelog -o beginning -e -q -f '%p\n' 2>/dev/null | wc -l)
n_meta=$(kcat -b "$bootstrap" -C -t restore-app-changelog -o beginning -e -q -f '%K\n' 2>/dev/null | grep -cx 0)
users=$("$cuepoint" state dump --machines "$machines" --state-dir "$tmp/live.state" | wc -l)
[ "$n_log" -ge "$users" ] && [ "$n_meta" -ge 4 ] && ok || bad "changelog: $n_log records ($n_meta meta) for $users users"
echo "changelog: $n_log records, $n_meta partition positions, $users users"

# Wipe the state; slow the broker down so the restore takes long enough to be seen.
rm -rf "$tmp/live.state"
fault "rtt 1 300"
start_run live "$tmp/run2.log"
saw_503=0; saw_remaining=0
for _ in $(seq 300); do
    addr=$(cat "$tmp/live.admin" 2>/dev/null)
    if [ -n "$addr" ]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$addr/readyz")
        [ "$code" = 503 ] && grep -q '"restore started"' "$tmp/run2.log" && saw_503=1
        [ "$(metric live cuepoint_restore_remaining_records)" -gt 0 ] && saw_remaining=1
        [ "$code" = 200 ] && break
    fi
    sleep 0.1
done
fault "rtt 1 0"
[ "$saw_503" = 1 ] && ok || bad "/readyz was never 503 while restoring"
[ "$saw_remaining" = 1 ] && ok || bad "/metrics never showed records left to restore"
[ "$code" = 200 ] && ok || bad "/readyz did not become 200 after the restore"
[ "$(grep -c '"restore finished"' "$tmp/run2.log")" -eq 4 ] && ok || bad "not 4 'restore finished' lines"
# New events after the restore: processed from exactly where the state ended.
produce "$tmp/b.jsonl" events
for _ in $(seq 300); do
    [ "$(metric live cuepoint_records_consumed_total)" -ge "$(wc -l < "$tmp/b.jsonl")" ] &&
        [ "$(metric live cuepoint_consumer_lag_records)" -eq 0 ] && break
    sleep 0.1
done
consumed=$(metric live cuepoint_records_consumed_total)
kill -TERM "$run_pid"; wait_run 30 || bad "second run exit $?"
[ "$consumed" -eq "$(wc -l < "$tmp/b.jsonl")" ] && ok || bad "after the restore $consumed records were read, $(wc -l < "$tmp/b.jsonl") are new"
# The whole: triggers and final state equal the file mode's over the topic.
reference events "$(($(wc -l < "$tmp/a.jsonl") + $(wc -l < "$tmp/b.jsonl")))" restore-app ref
check live triggers ref
[ "$dups" -eq 0 ] && ok || bad "$dups triggers sent twice across the restore"

# A changelog with another partition count is refused.
config wrong wrong events triggers
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "changelog.enabled": true/' "$tmp/wrong.json"
timeout 60 "$cuepoint" run --config "$tmp/wrong.json" --stop-at-end 2> "$tmp/wrong.log"
rc=$?
[ "$rc" -eq 78 ] && grep -q 'changelog topic wrong-changelog has 2 partitions and input topic events has 4' "$tmp/wrong.log" && ok \
    || { bad "a 2-partition changelog for 4 input partitions: exit $rc"; tail -2 "$tmp/wrong.log"; }

finish
