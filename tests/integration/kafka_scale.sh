#!/bin/bash
# Scaling out with the changelog: 12 partitions, three `cuepoint run`
# processes in one group, 300k events over 30k users produced while they run;
# a fourth instance joins mid-stream, one is killed with SIGKILL, one stopped
# with SIGTERM. Partitions that move rebuild their state from the changelog;
# each instance also keeps standby replicas (num.standby.replicas 1) through
# all of it. At the end every trigger id of the file mode's run is on the
# trigger topic and none other, the duplicates are counted, each user's
# state, read from whichever instance owns the user's partition, equals the
# file mode's, and so does the standby copy the other survivor keeps of it.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

parts=12
users=${SCALE_USERS:-30000}
events=${SCALE_EVENTS:-300000}
seed=${SCALE_SEED:-31}
echo "seed $seed, $users users, $events events"
# The changelog named here: the mock creates other topics with 4 partitions.
broker_start --partitions "$parts" --topic events --topic triggers --topic scale-changelog
"$cuepoint" generate --users "$users" --events "$events" --seed "$seed" > "$tmp/all.jsonl"
split -n l/6 -d "$tmp/all.jsonl" "$tmp/chunk."

# Long commit intervals: the mock keeps about 5 MB per partition and does not
# compact, so the changelog must stay small enough to be kept whole.
for n in a b c d; do
    config "$n" scale events triggers '"session.timeout.ms": 6000'
    sed -i 's/"commit.interval.ms": 300/"commit.interval.ms": 4000, "changelog.enabled": true, "num.standby.replicas": 1/' "$tmp/$n.json"
done
declare -A pid
start() { "$cuepoint" run --config "$tmp/$1.json" --admin-addr-file "$tmp/$1.admin" 2> "$tmp/$1.log" & pid[$1]=$!; }
lag() { metric "$1" cuepoint_consumer_lag_records; }
ready() { curl -s --max-time 2 "http://$(cat "$tmp/$1.admin" 2>/dev/null)/readyz"; }

start a; start b; start c
produce "$tmp/chunk.00" events -z lz4; sleep 2
produce "$tmp/chunk.01" events -z lz4; sleep 2
start d
produce "$tmp/chunk.02" events -z lz4; sleep 3
kill -9 "${pid[b]}"; wait "${pid[b]}" 2>/dev/null
echo "b killed"
produce "$tmp/chunk.03" events -z lz4; sleep 3
kill -TERM "${pid[c]}"; wait "${pid[c]}"; rc=$?
[ "$rc" -eq 0 ] && ok || bad "c after SIGTERM: exit $rc"
echo "c stopped"
produce "$tmp/chunk.04" events -z lz4
produce "$tmp/chunk.05" events -z lz4

# a and d take everything: ready, holding all 12 partitions, nothing left.
done_=0
for _ in $(seq 900); do
    ra=$(ready a); rd=$(ready d)
    pa=$(echo "$ra" | grep -o '\[[0-9,]*\]' | tr -d '[]' | tr ',' '\n' | grep -c .)
    pd=$(echo "$rd" | grep -o '\[[0-9,]*\]' | tr -d '[]' | tr ',' '\n' | grep -c .)
    if echo "$ra" | grep -q '"ready":true' && echo "$rd" | grep -q '"ready":true' &&
        [ $((pa + pd)) -eq "$parts" ] && [ "$(lag a)" -eq 0 ] && [ "$(lag d)" -eq 0 ]; then
        done_=1; break
    fi
    sleep 0.2
done
[ "$done_" = 1 ] && ok || bad "a and d never held all $parts partitions with no lag: a=$(ready a) d=$(ready d)"
sleep 5 # past a commit interval: the last cycle is on the changelog
# Two live members and one replica: every partition has its copy on the
# other survivor, caught up (b's member record expires after its ttl).
sb=0
for _ in $(seq 300); do
    if [ $(($(metric a cuepoint_standby_partitions) + $(metric d cuepoint_standby_partitions))) -eq "$parts" ] &&
        [ "$(metric a cuepoint_standby_lag_records)" -eq 0 ] && [ "$(metric d cuepoint_standby_lag_records)" -eq 0 ]; then
        sb=1; break
    fi
    sleep 0.2
done
[ "$sb" = 1 ] && ok || bad "standbys: a keeps $(metric a cuepoint_standby_partitions), d $(metric d cuepoint_standby_partitions) of $parts, lag $(metric a cuepoint_standby_lag_records)/$(metric d cuepoint_standby_lag_records)"
parts_a=$(ready a | grep -o '\[[0-9,]*\]' | tr -d '[]' | tr ',' ' ')
parts_d=$(ready d | grep -o '\[[0-9,]*\]' | tr -d '[]' | tr ',' ' ')
echo "a owns: $parts_a; d owns: $parts_d"
grep -h '"restore finished"' "$tmp"/[abcd].log | wc -l | xargs echo "restores finished:"
kill -TERM "${pid[a]}" "${pid[d]}"
wait "${pid[a]}" || bad "a after SIGTERM: exit $?"
wait "${pid[d]}" || bad "d after SIGTERM: exit $?"

reference events "$events" scale ref
ids() { grep -o '^{"specversion":"1.0","id":"[0-9a-f]*"' | sed 's/.*"id":"//; s/"$//'; }
kcat -b "$bootstrap" -C -t triggers -o beginning -e -q -f '%s\n' 2>/dev/null > "$tmp/topic"
ids < "$tmp/ref.ref.triggers" | sort -u > "$tmp/ref.ids"
ids < "$tmp/topic" | sort > "$tmp/topic.ids.all"
sort -u "$tmp/topic.ids.all" > "$tmp/topic.ids"
missing=$(comm -23 "$tmp/ref.ids" "$tmp/topic.ids" | wc -l)
extra=$(comm -13 "$tmp/ref.ids" "$tmp/topic.ids" | wc -l)
total=$(wc -l < "$tmp/topic.ids.all"); distinct=$(wc -l < "$tmp/topic.ids")
[ "$(wc -l < "$tmp/ref.ids")" -gt 0 ] && [ "$missing" -eq 0 ] && ok || bad "$missing of the file mode's trigger ids are not on the topic"
[ "$extra" -eq 0 ] && ok || bad "$extra trigger ids on the topic that the file mode did not make"
sort -u "$tmp/topic" | cmp -s - "$tmp/ref.ref.triggers" && ok || bad "the distinct trigger records differ from the file mode's"
echo "triggers: $total on the topic, $distinct distinct, $(wc -l < "$tmp/ref.ids") from the file mode; duplicates: $((total - distinct))"

# Each partition's state from its owner.
{
    for p in $parts_a; do "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/a.state" --partition "$p"; done
    for p in $parts_d; do "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/d.state" --partition "$p"; done
} | sort > "$tmp/final.state"
n_final=$(wc -l < "$tmp/final.state")
[ "$n_final" -gt 0 ] && cmp -s "$tmp/final.state" "$tmp/ref.ref.state" && ok \
    || { bad "users' states differ from the file mode's ($n_final here, $(wc -l < "$tmp/ref.ref.state") there)";
         diff "$tmp/ref.ref.state" "$tmp/final.state" | head -4 | cut -c1-250; }
echo "states: $n_final users, equal to the file mode's: $([ "$failed" -eq 0 ] && echo yes || echo no)"

# The standby copies: each partition's from the survivor that does not own it.
{
    for p in $parts_a; do "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/d.state" --partition "$p"; done
    for p in $parts_d; do "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/a.state" --partition "$p"; done
} | sort > "$tmp/standby.state"
cmp -s "$tmp/standby.state" "$tmp/ref.ref.state" && ok \
    || { bad "standby copies differ from the file mode's states ($(wc -l < "$tmp/standby.state") users)";
         diff "$tmp/ref.ref.state" "$tmp/standby.state" | head -4 | cut -c1-250; }

finish
