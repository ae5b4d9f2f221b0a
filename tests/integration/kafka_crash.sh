#!/bin/bash
# Crash safety of `cuepoint run` (design, "The promises" 1-4 and "The commit
# cycle"). A generated stream is produced up front to a 16-partition topic on
# a dev broker. `cuepoint run` is killed with SIGKILL at random points in the
# middle of the stream, again and again over the same state.dir, and a last
# run goes to the end. Then, against the file mode over the same records:
# every trigger id is on the trigger topic, none is there that the file mode
# did not make, a repeat is the same record byte for byte, and every user's
# final state is the same. The repeats (only a crash may make them) are
# counted and printed.
# Then SIGTERM: a fresh group, trigger topic and state, stopped mid-stream by
# SIGTERM (exit 0), and run to the end: exactly the file mode's triggers,
# with no repeat at all, and the same states.
#
# CRASH_USERS, CRASH_EVENTS, CRASH_KILLS and CRASH_SEED change the sizes.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
cd "$tmp"
users=${CRASH_USERS:-20000}
events=${CRASH_EVENTS:-200000}
kills=${CRASH_KILLS:-5}
seed=${CRASH_SEED:-$RANDOM}
parts=16 # the mock keeps ~5 MB per partition: 16 hold 200k events of ~175 bytes
echo "seed $seed, $users users, $events events, $kills kills"

"$cuepoint" generate --users "$users" --events "$events" --seed "$seed" > events.jsonl
# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --partitions "$parts" --topic events --topic kill-triggers --topic term-triggers \
    --topic crash-kill-changelog --topic crash-term-changelog
# Batches of 5 records: the mock serves one batch per partition per fetch, so
# the stream takes a few seconds to consume instead of under one, and a kill
# at a random moment lands in the middle of it, between and inside commits.
produce events.jsonl events -X batch.num.messages=5 || exit 1

# A SIGKILLed member keeps its partitions until its session expires: 3 s
# instead of 45 s makes each restart take ~5 s.
fast_rejoin='"session.timeout.ms": 3000, "heartbeat.interval.ms": 500'

# ---- SIGKILL, again and again ---------------------------------------------
reference events "$events" crash-kill kill
config kill crash-kill events kill-triggers "$fast_rejoin"
killed=0
attempt=0
prev=-1
while [ "$killed" -lt "$kills" ] && [ "$attempt" -lt $((kills * 3)) ]; do
    attempt=$((attempt + 1))
    log="kill.$attempt.log"
    start_run kill "$log"
    committed=$(wait_assigned "$log" "$parts")
    if [ "$committed" -lt 0 ]; then
        bad "run $attempt: the $parts partitions were not assigned"; tail -3 "$log"; break
    fi
    [ "$committed" -ge "$prev" ] && ok || bad "run $attempt starts at $committed, the previous at $prev: committed offsets went back"
    prev=$committed
    if [ "$committed" -ge "$events" ]; then
        echo "run $attempt: everything was committed already"; { kill -9 "$run_pid"; wait_run 10; } 2>/dev/null
        break
    fi
    commits0=$(metric kill cuepoint_commit_duration_seconds_count)
    # A random point: 5 to 30% of what is left, by the run's own count of
    # applied records, polled every 20 ms (at most 8 s). A kill timed by the
    # rate of the run before (10 to 60% of the time the rest would take)
    # came after the end in two runs of three on a slower machine: from run
    # to run the rate varied by more than 2x (sanitizers, two cores, the
    # state earlier runs left to compact). The count moves a turn of the
    # loop (4,096 records) at a time and a poll can come late, so a kill
    # lands some thousands of records past its point: the points stay well
    # short of the end, for the later runs' sake.
    target=$(((events - committed) * (50 + RANDOM % 250) / 1000))
    [ "$target" -ge 1 ] || target=1
    for _ in $(seq 400); do
        applied=$(metric kill cuepoint_records_applied_total)
        [ "$applied" -ge "$target" ] && break
        sleep 0.02
    done
    lag=$(metric kill cuepoint_consumer_lag_records)
    commits=$(($(metric kill cuepoint_commit_duration_seconds_count) - commits0))
    { kill -9 "$run_pid"; wait_run 10; } 2>/dev/null # no "Killed" notice from bash
    rc=$?
    on_topic=$(count kill-triggers)
    echo "run $attempt: started at offset $committed of $events, killed (exit $rc) after applying $applied with $lag to go, $commits commits since the assignment; $on_topic triggers on the topic"
    [ "$rc" -eq 137 ] || { bad "run $attempt exited $rc before the kill"; tail -3 "$log"; }
    # a kill counts when the run had made progress and had not reached the end
    if [ "$applied" -gt 0 ] && [ "$lag" -gt 0 ]; then killed=$((killed + 1)); fi
done
[ "$killed" -ge "$kills" ] && ok || bad "only $killed kills in the middle of the stream, $kills wanted"

start_run kill kill.last.log --stop-at-end
committed=$(wait_assigned kill.last.log "$parts")
echo "last run: starts at offset $committed of $events"
[ "$committed" -gt 0 ] && ok || bad "nothing was committed before the last run"
wait_run 120
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "last run: exit $rc"; tail -5 kill.last.log; }
balanced kill.last.log "last run"
check kill kill-triggers kill
echo "duplicate deliveries after $killed kills: $dups"

# ---- SIGTERM: stops cleanly, no repeat ---------------------------------------
reference events "$events" crash-term term
config term crash-term events term-triggers
start_run term term.1.log
committed=$(wait_assigned term.1.log "$parts")
[ "$committed" -eq 0 ] || bad "term: a fresh group starts at $committed"
sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.2 + (r % 800) / 1000 }')"
lag=$(metric term cuepoint_consumer_lag_records)
kill -TERM "$run_pid"
wait_run 60
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "term: SIGTERM gave exit $rc"; tail -5 term.1.log; }
balanced term.1.log "term: the stopped run"
[ "$lag" -gt 0 ] && ok || bad "term: SIGTERM came after the end of the stream (lag $lag)"
start_run term term.2.log --stop-at-end
committed=$(wait_assigned term.2.log "$parts")
echo "term: stopped with $lag records to go; the second run starts at offset $committed of $events"
[ "$committed" -gt 0 ] && [ "$committed" -lt "$events" ] && ok \
    || bad "term: the second run starts at $committed, not in the middle"
wait_run 120
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "term: the second run: exit $rc"; tail -5 term.2.log; }
balanced term.2.log "term: the second run"
check term term-triggers term
[ "$dups" -eq 0 ] && ok || bad "term: $dups duplicate deliveries after a clean stop"

finish
