#!/bin/bash
# `cuepoint replay` against a live run on the dev broker, with kcat as the
# independent client: a replay of the topic and a replay of the same events
# from a file give the live run's triggers byte for byte (same ids) and its
# final state; --since-trigger-time writes exactly the live triggers from
# then on; a replay beside a running live instance moves nothing of it (its
# group, offsets, readiness and trigger topic); the live trigger topic needs
# --allow-live-topic; --output-topic records carry the replay's id; changed
# journeys (--machines) show in the summary; --from-time through a broker
# that answers -1 replays nothing; --seed-state writes the changelog (on by
# default), so an instance with an empty state directory restores the
# seeded state from it, not the state it replaced.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4 --topic ev --topic trig --topic ev-old
clock=2026-03-20T00:00:00Z

"$cuepoint" generate --users 1500 --events 15000 --seed 11 > "$tmp/events.jsonl"
# Poison: bad JSON, no user id, a user id the key disagrees with is not
# possible from a file, so two kinds.
printf '%s\n' '{"user_id":"u0000001","type":' '{"type":"signed_up","ts":1768650878972}' >> "$tmp/events.jsonl"
produce "$tmp/events.jsonl" ev || exit 1
n_events=$(wc -l < "$tmp/events.jsonl")

# The live run: its clock is fixed, so caught-up partitions fire every timer
# due by then; replays reach the same with --advance-to.
config live replay-live ev trig
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": true/' "$tmp/live.json"
CUEPOINT_CLOCK=$clock timeout 120 "$cuepoint" run --config "$tmp/live.json" --stop-at-end 2> "$tmp/live.log" \
    || { bad "live run exit $?"; tail -5 "$tmp/live.log"; }
kcat -b "$bootstrap" -C -t trig -o beginning -e -q -f '%s\n' 2>/dev/null | sort > "$tmp/live.triggers"
live_n=$(wc -l < "$tmp/live.triggers")
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/live.state" | sort > "$tmp/live.dump"
[ "$live_n" -gt 1000 ] && ok || bad "the live run made only $live_n triggers"
echo "live: $live_n triggers, $(wc -l < "$tmp/live.dump") users"

# same_as_live NAME OUT STATE-DIR: sorted triggers and state equal the live run's
same_as_live() {
    sort "$2" > "$2.sorted"
    cmp -s "$2.sorted" "$tmp/live.triggers" && ok \
        || { bad "$1: triggers differ from the live run's ($(wc -l < "$2") here, $live_n live)";
             diff "$tmp/live.triggers" "$2.sorted" | head -4 | cut -c1-200; }
    "$cuepoint" state dump --machines "$machines" --state-dir "$3" | sort > "$3.dump"
    cmp -s "$3.dump" "$tmp/live.dump" && ok \
        || { bad "$1: final state differs from the live run's";
             diff "$tmp/live.dump" "$3.dump" | head -4 | cut -c1-200; }
}

# 1. From the topic, from the beginning.
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r1" --advance-to $clock \
    --replay-id r1 > "$tmp/r1.out" 2> "$tmp/r1.log" || { bad "topic replay exit $?"; tail -5 "$tmp/r1.log"; }
same_as_live "topic replay" "$tmp/r1.out" "$tmp/r1"
grep -q "$n_events events read" "$tmp/r1.log" && ok || { bad "topic replay summary lacks the record count"; tail -3 "$tmp/r1.log"; }
[ "$(wc -l < "$tmp/r1/dead-letters.jsonl")" -eq 2 ] && ok || bad "topic replay: 2 dead letters expected in its file"
grep -q '"source":"ev".*"partition":[0-9]*,"offset":[0-9]*' "$tmp/r1/dead-letters.jsonl" && ok \
    || bad "topic replay dead letters do not name topic, partition and offset"

# 1b. --seed-state: a live instance started on the seeded directory resumes
# at the end of what was replayed: nothing applied or sent twice. (Another
# application than the live one, so that no group offsets help: the store's
# positions alone must do it. The seeded directory records that application.)
# (The seed joins the group to hold it while it writes the changelog; the
# dev broker keeps a departed member for session.timeout.ms before the next
# join completes: kept short.)
config seeded replay-seeded ev trig-seeded '"session.timeout.ms": 6000'
"$cuepoint" replay --config "$tmp/seeded.json" --seed-state "$tmp/seed" --advance-to $clock \
    > /dev/null 2> "$tmp/seed.log" || bad "--seed-state exit $?"
grep -q "start 'cuepoint run' with state.dir=$tmp/seed" "$tmp/seed.log" && ok || bad "--seed-state does not say how to use it"
sed -i "s|\"state.dir\": \"[^\"]*\"|\"state.dir\": \"$tmp/seed\"|" "$tmp/seeded.json"
timeout 60 "$cuepoint" run --config "$tmp/seeded.json" --stop-at-end 2> "$tmp/seeded.log" || bad "run on the seeded state exit $?"
grep -q '"msg":"stopped".*"consumed":0,"triggers":0' "$tmp/seeded.log" && ok \
    || { bad "a live run on the seeded state read or sent again"; grep '"stopped"' "$tmp/seeded.log"; }
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/seed" | sort | cmp -s - "$tmp/live.dump" && ok \
    || bad "the seeded state is not the live state"
grep -q '"restore started"' "$tmp/seeded.log" && bad "the seeded directory was restored from the changelog" || ok

# 1c. The seed replaces what the changelog held. An application whose
# changelog has other states of the same users, and users the seed does not
# have (a run over another topic, ev-old), is seeded from ev; an instance with
# an empty state directory then restores exactly the seeded state from the
# changelog (the others tombstoned) and resumes where the seed ended.
"$cuepoint" generate --users 1800 --events 4000 --seed 99 > "$tmp/old.jsonl"
produce "$tmp/old.jsonl" ev-old || exit 1
config ghost replay-ghost ev-old trig-ghost '"session.timeout.ms": 6000'
CUEPOINT_CLOCK=$clock timeout 120 "$cuepoint" run --config "$tmp/ghost.json" --stop-at-end 2> "$tmp/ghost.log" \
    || { bad "run over ev-old exit $?"; tail -3 "$tmp/ghost.log"; }
old_users=$("$cuepoint" state dump --machines "$machines" --state-dir "$tmp/ghost.state" | wc -l)
sed -i 's|"input.topic": "ev-old"|"input.topic": "ev"|' "$tmp/ghost.json"
"$cuepoint" replay --config "$tmp/ghost.json" --seed-state "$tmp/gseed" --advance-to $clock \
    > /dev/null 2> "$tmp/gseed.log" || { bad "--seed-state over a changelog exit $?"; tail -3 "$tmp/gseed.log"; }
removed=$(sed -nE 's/.*changelog replay-ghost-changelog rewritten with the seeded state \(([0-9]+) users removed.*/\1/p' "$tmp/gseed.log")
[ "${removed:-0}" -gt 0 ] && ok || { bad "the seed removed no user from the changelog ($old_users there)"; tail -3 "$tmp/gseed.log"; }
echo "changelog before the seed: $old_users users; $removed tombstoned"
sed -i "s|\"state.dir\": \"[^\"]*\"|\"state.dir\": \"$tmp/gfresh\"|" "$tmp/ghost.json"
timeout 60 "$cuepoint" run --config "$tmp/ghost.json" --stop-at-end 2> "$tmp/gfresh.log" || bad "fresh run after the seed exit $?"
[ "$(grep -c '"restore finished"' "$tmp/gfresh.log")" -eq 4 ] && ok || bad "the fresh instance did not restore 4 partitions"
grep -q '"msg":"stopped".*"consumed":0,"triggers":0' "$tmp/gfresh.log" && ok \
    || { bad "the fresh instance read or sent again after restoring the seed"; grep '"stopped"' "$tmp/gfresh.log"; }
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/gfresh" | sort > "$tmp/gfresh.dump"
cmp -s "$tmp/gfresh.dump" "$tmp/live.dump" && ok \
    || { bad "the state restored from the changelog is not the seeded state ($(wc -l < "$tmp/gfresh.dump") users, $(wc -l < "$tmp/live.dump") seeded)";
         diff "$tmp/live.dump" "$tmp/gfresh.dump" | head -4 | cut -c1-200; }

# 1d. Under exactly-once the seed goes to the changelog in one transaction
# of its own (not any instance's transactional.id); an instance with an
# empty state directory, reading committed records only, restores it.
config eos replay-eos ev trig-eos '"session.timeout.ms": 6000'
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "processing.guarantee": "exactly_once_v2"/' "$tmp/eos.json"
"$cuepoint" replay --config "$tmp/eos.json" --seed-state "$tmp/eseed" --advance-to $clock \
    > /dev/null 2> "$tmp/eseed.log" || { bad "--seed-state under exactly-once exit $?"; tail -3 "$tmp/eseed.log"; }
grep -q '"transactional_id":"replay-eos-changelog-writer"' "$tmp/eseed.log" && ok || bad "the seed's changelog writer was not transactional"
sed -i "s|\"state.dir\": \"[^\"]*\"|\"state.dir\": \"$tmp/efresh\"|" "$tmp/eos.json"
timeout 60 "$cuepoint" run --config "$tmp/eos.json" --stop-at-end 2> "$tmp/efresh.log" || bad "exactly-once run after the seed exit $?"
grep -q '"msg":"stopped".*"consumed":0,"triggers":0' "$tmp/efresh.log" && ok \
    || { bad "exactly-once: the fresh instance read or sent again after restoring the seed"; grep '"stopped"' "$tmp/efresh.log"; }
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/efresh" | sort | cmp -s - "$tmp/live.dump" && ok \
    || bad "exactly-once: the state restored from the changelog is not the seeded state"

# 2. From the file the topic was loaded from: placed like kcat placed them.
"$cuepoint" replay --config "$tmp/live.json" --input "$tmp/events.jsonl" --state-dir "$tmp/r2" \
    --advance-to $clock > "$tmp/r2.out" 2> "$tmp/r2.log" || { bad "file replay exit $?"; tail -5 "$tmp/r2.log"; }
grep -q '"partitions":4' "$tmp/r2.log" && ok || bad "file replay did not learn the topic's 4 partitions"
same_as_live "file replay" "$tmp/r2.out" "$tmp/r2"

# 3. --since-trigger-time: exactly the live triggers from then on, and the
# whole state.
since=$(sed -E 's/.*"time":"([^"]*)".*/\1/' "$tmp/live.triggers" | sort | sed -n "$((live_n / 2))p")
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r3" --advance-to $clock \
    --since-trigger-time "$since" > "$tmp/r3.out" 2> "$tmp/r3.log" || bad "since replay exit $?"
awk -v t="$since" '{ s = $0; sub(/.*"time":"/, "", s); sub(/".*/, "", s); if (s >= t) print }' \
    "$tmp/live.triggers" > "$tmp/live.since"
sort "$tmp/r3.out" > "$tmp/r3.sorted"
[ -s "$tmp/r3.sorted" ] && [ "$(wc -l < "$tmp/r3.sorted")" -lt "$live_n" ] && cmp -s "$tmp/r3.sorted" "$tmp/live.since" && ok \
    || { bad "--since-trigger-time $since: $(wc -l < "$tmp/r3.sorted") triggers, $(wc -l < "$tmp/live.since") live ones at or after it";
         diff "$tmp/live.since" "$tmp/r3.sorted" | head -3 | cut -c1-200; }
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/r3" | sort | cmp -s - "$tmp/live.dump" && ok \
    || bad "--since-trigger-time: state differs from the live run's"
grep -q "triggers before --since-trigger-time not written" "$tmp/r3.log" && ok || bad "since: summary does not count what it held back"

# 4. --output-topic: every record carries the replay's id.
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r7" --advance-to $clock --to-offset 0:1000000 \
    --output-topic replayed --replay-id bf-7 2> "$tmp/r7.log" || { bad "--output-topic replay exit $?"; tail -3 "$tmp/r7.log"; }
kcat -b "$bootstrap" -C -t replayed -o beginning -e -q -f '%h\t%s\n' 2>/dev/null > "$tmp/r7.topic"
[ "$(wc -l < "$tmp/r7.topic")" -eq "$(grep -c "" "$tmp/live.triggers")" ] && ok \
    || bad "--output-topic: $(wc -l < "$tmp/r7.topic") records, $live_n expected"
[ "$(grep -vc 'cuepoint-replay=bf-7' "$tmp/r7.topic")" -eq 0 ] && ok || bad "records on the output topic without cuepoint-replay=bf-7"

# 5. Changed journeys: a 48 h stall instead of 72 h nudges more users.
mkdir -p "$tmp/m48"
cp "$machines"/*.json "$tmp/m48/"
sed -i 's/"after": "72h"/"after": "48h"/' "$tmp/m48/onboarding.json"
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r8" --advance-to $clock --machines "$tmp/m48" \
    > /dev/null 2> "$tmp/r8.log" || bad "--machines replay exit $?"
stalled() { awk '$1 == "onboarding" && $2 == "onboarding_stalled" { print $3 }' "$1"; }
s72=$(stalled "$tmp/r1.log"); s48=$(stalled "$tmp/r8.log")
[ -n "$s72" ] && [ -n "$s48" ] && [ "$s48" -gt "$s72" ] && ok \
    || bad "--machines with a 48 h stall: onboarding_stalled $s48 vs $s72 with 72 h"
echo "onboarding_stalled: 72h $s72, 48h $s48"
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r9" --only milestones --advance-to $clock \
    > "$tmp/r9.out" 2> "$tmp/r9.log" || bad "--only replay exit $?"
grep -o '"source":"cuepoint/replay-live/[a-z]*"' "$tmp/r9.out" | sort -u | grep -qvx '"source":"cuepoint/replay-live/milestones"' \
    && bad "--only milestones wrote other machines' triggers" || ok
[ -s "$tmp/r9.out" ] && cmp -s <(sort "$tmp/r9.out") <(grep '"source":"cuepoint/replay-live/milestones"' "$tmp/live.triggers") && ok \
    || bad "--only milestones: not the live run's milestone triggers"

# 6. --from-time: the mock answers -1 (no record at or after any time), which
# means nothing to replay; the replay says so instead of reading everything.
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r10" --from-time 2026-01-01T00:00:00Z \
    > "$tmp/r10.out" 2> "$tmp/r10.log" || bad "--from-time replay exit $?"
[ ! -s "$tmp/r10.out" ] && grep -q "no record at or after the time" "$tmp/r10.log" && grep -q "0 events read" "$tmp/r10.log" && ok \
    || bad "--from-time with a broker answering -1 replayed something"
grep -q "mock cluster (cuepoint dev-broker) answers every time this way" "$tmp/r10.log" && ok \
    || bad "--from-time on the dev broker: no hint that the mock cannot look records up by time"

# 7. Beside a live instance (last: it adds events to the topic): nothing of the live pipeline moves.
more=$tmp/more.jsonl
"$cuepoint" generate --users 200 --events 1000 --seed 12 --start 2026-02-01T00:00:00Z > "$more"
config side replay-side ev trig-side
start_run side "$tmp/side.log"
[ "$(wait_assigned "$tmp/side.log" 4)" -ge 0 ] && ok || bad "the live instance was not assigned its partitions"
for _ in $(seq 100); do [ -s "$tmp/side.admin" ] && break; sleep 0.1; done
addr=$(cat "$tmp/side.admin")
for _ in $(seq 100); do [ "$(metric side cuepoint_consumer_lag_records)" -eq 0 ] && break; sleep 0.2; done
sleep 1 # the last triggers acknowledged and committed
# The group's committed offsets, read without joining it.
committed() { "$cuepoint" offsets show --config "$tmp/side.json" --json 2>/dev/null | grep -o '"partition":[0-9]*,.*"committed":[0-9a-z]*'; }
committed_before=$(committed)
ready_before=$(curl -s "http://$addr/readyz")
rebal_before=$(metric side cuepoint_rebalances_total)
side_before=$(count trig-side)
live_before=$(count trig)
"$cuepoint" replay --config "$tmp/side.json" --state-dir "$tmp/r4" > "$tmp/r4.out" 2> "$tmp/r4.log" \
    || bad "replay beside a live instance exit $?"
"$cuepoint" replay --config "$tmp/side.json" --state-dir "$tmp/r5" --output-topic trig-side > /dev/null 2> "$tmp/r5.log"
rc=$?
[ "$rc" -eq 64 ] && grep -q "allow-live-topic" "$tmp/r5.log" && ok \
    || { bad "--output-topic = trigger.topic without --allow-live-topic: exit $rc"; tail -2 "$tmp/r5.log"; }
"$cuepoint" replay --config "$tmp/side.json" --state-dir "$tmp/side.state" > /dev/null 2> "$tmp/r6.log"
rc=$?
[ "$rc" -eq 64 ] && ok || bad "a replay into the live state.dir: exit $rc, 64 expected"
committed_after=$(committed)
[ "$(echo "$committed_before" | grep -c '"committed":[0-9]')" -eq 4 ] && [ "$committed_before" = "$committed_after" ] && ok \
    || bad "the live group's committed offsets moved during the replays: '$committed_before' -> '$committed_after'"
# The live instance still takes new events: its own triggers, untouched by the replays.
produce "$more" ev
for _ in $(seq 100); do [ "$(metric side cuepoint_consumer_lag_records)" -eq 0 ] && break; sleep 0.2; done
sleep 1
ready_after=$(curl -s "http://$addr/readyz")
rebal_after=$(metric side cuepoint_rebalances_total)
[ "$ready_before" = "$ready_after" ] && echo "$ready_after" | grep -q '"ready":true,"partitions":\[0,1,2,3\]' && ok \
    || bad "live /readyz changed: '$ready_before' -> '$ready_after'"
[ "$rebal_before" -eq "$rebal_after" ] && ok || bad "the live group rebalanced during the replays ($rebal_before -> $rebal_after)"
[ "$(count trig)" -eq "$live_before" ] && ok || bad "a replay wrote to a live trigger topic"
kill -TERM "$run_pid"; wait_run 30 || bad "live instance exit $?"
# What the live instance made is what a live run over everything makes: its
# group offsets and store stayed its own.
side_total=$(count trig-side)
[ "$side_total" -gt "$side_before" ] && ok || bad "the live instance made nothing of the new events"
grep '"partition assigned"' "$tmp/side.log" | wc -l | grep -qx 4 && ok \
    || bad "the live instance saw partitions assigned more than once"
# The replay read what the live instance had read when it began: the same
# triggers, all of them on the live instance's topic.
ids() { grep -o '^{"specversion":"1.0","id":"[0-9a-f]*"' "$1" | sort -u; }
kcat -b "$bootstrap" -C -t trig-side -o beginning -e -q -f '%s\n' 2>/dev/null > "$tmp/side.topic"
[ "$(wc -l < "$tmp/r4.out")" -eq "$side_before" ] && [ -z "$(comm -23 <(ids "$tmp/r4.out") <(ids "$tmp/side.topic"))" ] && ok \
    || bad "the replay beside the live instance: $(wc -l < "$tmp/r4.out") triggers, the live instance had $side_before"

# 8. Usage errors name what is wrong.
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r1" > /dev/null 2> "$tmp/u1.log"
[ $? -eq 64 ] && grep -q "not empty" "$tmp/u1.log" && ok || bad "a used state dir was accepted"
"$cuepoint" replay --config "$tmp/live.json" --state-dir "$tmp/r11" --from-offset 9:5 > /dev/null 2> "$tmp/u2.log"
[ $? -eq 64 ] && grep -q "partition 9; the topic has 4" "$tmp/u2.log" && ok || { bad "--from-offset 9:5 on 4 partitions"; cat "$tmp/u2.log"; }
"$cuepoint" replay --config "$tmp/live.json" --seed-state "$tmp/r12" --input "$tmp/events.jsonl" > /dev/null 2> "$tmp/u3.log"
[ $? -eq 64 ] && ok || bad "--seed-state from a file was accepted"

finish
