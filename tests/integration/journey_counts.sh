#!/bin/bash
# Live journey counts (docs/console.md) are derived from state, so they are
# exact after a crash and after a restore: `cuepoint run` on a 4-partition
# topic is killed with SIGKILL in the middle of the stream, run again to the
# end, and its cuepoint_journey_users equal a recount of `cuepoint state
# dump` (instances per journey and state). Then its state directory is
# wiped, the next run restores it from the changelog, applies new events on
# top, and its counts again equal the dump's recount. The edge totals add up:
# users in a journey never exceed the journeys started plus those restored.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
command -v python3 > /dev/null || { echo "python3 is not installed (scripts/deps.sh)"; exit 1; }

broker_start --partitions 4 --topic events --topic triggers
"$cuepoint" generate --users 2000 --events 30000 --seed 31 > "$tmp/a.jsonl"
"$cuepoint" generate --users 2000 --events 5000 --seed 32 --start 2026-02-15T00:00:00Z > "$tmp/b.jsonl"
# Batches of 2 (the mock returns one batch per partition per fetch): the
# stream takes long enough, on a fast machine too, for the kill to land inside it.
produce "$tmp/a.jsonl" events -X batch.num.messages=2 || exit 1
config live jc-app events triggers '"session.timeout.ms": 3000, "heartbeat.interval.ms": 500'
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "changelog.enabled": true/' "$tmp/live.json"

# settle: until every partition is caught up and the counts stop moving, so
# that what /metrics says is what the next commit puts in the store.
settle() {
    local prev="" same=0 now
    for _ in $(seq 240); do
        now=$(metric live cuepoint_records_consumed_total):$(metric live cuepoint_consumer_lag_records)
        if [ "${now#*:}" = 0 ] && [ "$now" = "$prev" ]; then
            same=$((same + 1)); [ "$same" -ge 4 ] && return 0
        else
            same=0
        fi
        prev=$now
        sleep 0.25
    done
    return 1
}

# compare WHAT: the live counts (saved in $tmp/live.users before the stop)
# against the recount of the state dump.
compare() {
    "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/live.state" > "$tmp/dump.jsonl" \
        || bad "$1: state dump exit $?"
    python3 - "$tmp/live.users" "$tmp/dump.jsonl" "$1" <<'EOF'
import collections, json, re, sys
live = {}
for line in open(sys.argv[1]):
    m = re.match(r'cuepoint_journey_users\{machine="([^"]*)",state="([^"]*)"\} (\S+)$', line.strip())
    if m: live[(m.group(1), m.group(2))] = int(float(m.group(3)))
dump = collections.Counter()
for line in open(sys.argv[2]):
    for i in json.loads(line).get("instances", []):
        dump[(i["machine"], i["state"])] += 1
diff = {k: (live.get(k, 0), dump.get(k, 0)) for k in set(live) | set(dump) if live.get(k, 0) != dump.get(k, 0)}
total = sum(dump.values())
print(f"{sys.argv[3]}: {len(live)} (journey, state) series, {total} instances in the dump, "
      f"{sum(live.values())} live")
for k, (l, d) in sorted(diff.items())[:8]:
    print(f"  {k[0]}.{k[1]}: live {l}, dump {d}")
sys.exit(0 if not diff and total > 0 and len(live) > 0 else 1)
EOF
}

# ---- a SIGKILL in the middle, then to the end ------------------------------
start_run live "$tmp/run1.log"
[ "$(wait_assigned "$tmp/run1.log" 4)" -ge 0 ] || { bad "run 1: partitions not assigned"; finish; exit 1; }
# After a batch with records in it is written (its group commit then goes
# out: a fixed sleep was too short on a loaded machine, and run 2 found
# nothing committed; the first cycle may come before any record), at a
# random moment soon after, while records are still coming (on a fast
# machine the stream ends within a second of the first write).
for _ in $(seq 400); do
    [ "$(metric live cuepoint_records_consumed_total)" -ge 1 ] && break
    sleep 0.02
done
writes=$(metric live cuepoint_store_write_duration_seconds_count)
for _ in $(seq 400); do
    [ "$(metric live cuepoint_store_write_duration_seconds_count)" -gt "${writes:-0}" ] && break
    sleep 0.02
done
sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", (r % 100) / 1000 }')"
lag=$(metric live cuepoint_consumer_lag_records)
{ kill -9 "$run_pid"; wait_run 10; } 2> /dev/null
[ "$lag" -gt 0 ] && ok || bad "the kill came after the end of the stream (lag $lag)"
echo "killed with $lag records to go"

start_run live "$tmp/run2.log"
[ "$(wait_assigned "$tmp/run2.log" 4)" -gt 0 ] && ok || bad "run 2 started from nothing committed"
settle || bad "run 2 did not catch up"
curl -s "http://$(cat "$tmp/live.admin")/metrics" > "$tmp/live.metrics"
grep '^cuepoint_journey_users{' "$tmp/live.metrics" > "$tmp/live.users"
recounts=$(awk '$1 == "cuepoint_journey_recounts_total" { print $2 }' "$tmp/live.metrics")
[ "${recounts:-0}" -ge 4 ] && ok || bad "recounts at open: ${recounts:-none}, 4 partitions opened"
kill -TERM "$run_pid"; wait_run 30 || bad "run 2 exit $?"
compare "after a SIGKILL" && ok || bad "after a SIGKILL: live counts differ from the state dump"

# ---- wiped, restored from the changelog, new events on top ----------------
rm -rf "$tmp/live.state"
start_run live "$tmp/run3.log"
for _ in $(seq 300); do
    [ "$(grep -c '"restore finished"' "$tmp/run3.log")" -ge 4 ] && break
    sleep 0.1
done
[ "$(grep -c '"restore finished"' "$tmp/run3.log")" -eq 4 ] && ok || bad "not 4 partitions restored"
produce "$tmp/b.jsonl" events || exit 1
settle || bad "run 3 did not catch up"
curl -s "http://$(cat "$tmp/live.admin")/metrics" > "$tmp/live.metrics"
grep '^cuepoint_journey_users{' "$tmp/live.metrics" > "$tmp/live.users"
# What run 3 started, on top of what it restored: every started journey was
# counted on its (start) edge.
started=$(awk '$1 ~ /^cuepoint_journey_transitions_total\{.*from="\(start\)"/ { s += $2 } END { print s + 0 }' "$tmp/live.metrics")
[ "$started" -gt 0 ] && ok || bad "no journey start counted after the restore"
kill -TERM "$run_pid"; wait_run 30 || bad "run 3 exit $?"
compare "after a restore" && ok || bad "after a restore: live counts differ from the state dump"
finish
