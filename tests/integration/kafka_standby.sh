#!/bin/bash
# Standby replicas (num.standby.replicas): the fail-over pause, from SIGKILL
# of a partition's owner to the first trigger made by its new owner, with no
# standby and with one, measured the same way in the same run; and what the
# new owner had to restore in each case.
#
# Each case: two instances of one application on 8 partitions (changelog on,
# session.timeout.ms 6000), an "echo" journey that counts each user's
# events and answers each ping with a pong. 120k users get one seed each
# (about 15k changelog records per partition; no pong, so the trigger topic
# stays well inside the 5 MB a partition the mock broker keeps), then a
# steady trickle of pings stamped with their produce time goes on while
# instance A is killed. A kcat consumer stamps
# each pong with its arrival time; the pause is the first pong from one of
# A's partitions whose ping was produced after the kill, minus the kill time.
# Afterwards the survivor's state must count every seed and ping on the
# input topic exactly once, and every ping must have its pong on the trigger
# topic.
# USERS and SESSION_MS change the size and A's detection time; KEEP_DIR=D
# copies the work directory (logs, configs) to D at the end.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

USERS=${USERS:-120000}
SESSION_MS=${SESSION_MS:-6000}
PARTS=8
live_users=$((USERS < 2000 ? USERS : 2000)) # seeded: the journey starts with a seed
machines="$tmp/machines"
mkdir -p "$machines"
cat > "$machines/echo.json" <<'EOF'
{"name": "echo", "version": 1,
 "description": "Counts each user's seed and pings, and answers every ping with a pong.",
 "start": {"event": "seed", "do": [{"increment": "pings"}]},
 "initial": "on",
 "states": {"on": {"on": [{"event": "ping", "do": [{"increment": "pings"}, {"emit": "pong", "data": {"pings": {"counter": "pings"}}}]}]}}}
EOF

topics=()
for c in none one; do topics+=(--topic "in-$c" --topic "out-$c" --topic "standby-$c-changelog"); done
broker_start --partitions "$PARTS" "${topics[@]}"
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
t0=$(($(now_ms) - 3600 * 1000))
# (%.0f: mawk's %d stops at 2^31 - 1, which is not a time in milliseconds.)
awk -v n="$USERS" -v t0="$t0" 'BEGIN { for (i = 0; i < n; i++)
    printf "u%d\t{\"event_id\":\"pre-%d\",\"user_id\":\"u%d\",\"type\":\"seed\",\"ts\":%.0f}\n", i, i, i, t0 + i }' \
    > "$tmp/preload.tsv"

pids=()
pid_a=""; pid_b=""
trap 'kill -9 $pid_a $pid_b 2>/dev/null; stop_bg; [ -n "${KEEP_DIR:-}" ] && cp -r "$tmp" "$KEEP_DIR"; cleanup' EXIT
stop_bg() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; pids=(); }
ready() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(cat "$tmp/$1.admin" 2>/dev/null)/readyz"; }
owned() { # NAME: the partitions an instance processes, from its /metrics
    curl -s --max-time 2 "http://$(cat "$tmp/$1.admin")/metrics" |
        sed -nE 's/^cuepoint_consumer_lag_records\{.*partition="([0-9]+)"\}.*/\1/p' | sort -n
}

# rebalance_story CASE: what each instance logged about its partitions, for
# a failure seen once in CI and not since (a loss after the kill; the
# partitions' assignments, restores and revocations are the suspects).
rebalance_story() {
    local name
    for name in "$1-a" "$1-b"; do
        echo "--- $name: assignments, restores, revocations, stop"
        grep -h -e '"partition assigned"' -e '"partition revoked"' -e '"partition lost"' \
            -e '"restore ' -e '"sealed cycle' -e '"first record' -e '"stopped"' -e '"level":"error"' -e '"level":"warn"' \
            "$tmp/$name.log" | cut -c1-260 | tail -60
    done
}

# loss_story CASE: where the users short of pongs (distinct pongs fewer than
# their pings) or of counted pings lie on the input topic: their partition
# and their pings' offsets, to set beside the offsets the rebalance story
# gives for each assignment and restore.
loss_story() {
    local c=$1
    kcat -b "$bootstrap" -C -t "in-$c" -o beginning -e -q -f '%k %p %o %s\n' 2>/dev/null |
        awk '/"type":"ping"/ { print $1, $2, $3 }' | sort -k1,1 -k3,3n > "$tmp/$c.pings"
    kcat -b "$bootstrap" -C -t "out-$c" -o beginning -e -q -f '%k %h\n' 2>/dev/null |
        sed -nE 's/^([^ ]+) .*ce_id=([0-9a-f]+).*/\1 \2/p' | sort -u |
        awk '{ n[$1]++ } END { for (u in n) print u, n[u] }' | sort > "$tmp/$c.pongs"
    echo "--- users short of pongs: user partition pings pongs, their pings' offsets"
    awk '{ n[$1]++; p[$1] = $2 } END { for (u in n) print u, p[u], n[u] }' "$tmp/$c.pings" | sort |
        join -a1 -e 0 -o 0,1.2,1.3,2.2 - "$tmp/$c.pongs" |
        awk '$4 < $3' | head -30 > "$tmp/$c.short"
    while read -r u p n g; do
        echo "$u partition $p: $n pings, $g pongs; offsets $(awk -v u="$u" '$1 == u { printf "%s ", $3 }' "$tmp/$c.pings")"
    done < "$tmp/$c.short"
    echo "--- users whose count differs (want got), with their partition"
    join -a1 -e 0 -o 0,1.2,2.2 "$tmp/$c.want" "$tmp/$c.got" | awk '$2 != $3' |
        join -a1 -e "?" -o 0,1.2,1.3,2.2 - <(awk '{ print $1, $2 }' "$tmp/$c.pings" | sort -u) | head -20
}

# failover CASE REPLICAS: prints "pause_ms=... restored_records=..." and runs the checks.
failover() {
    local c=$1 replicas=$2 app="standby-$1" name
    for name in "$c-a" "$c-b"; do
        config "$name" "$app" "in-$c" "out-$c" '"session.timeout.ms": '"$SESSION_MS"', "heartbeat.interval.ms": 500'
        sed -i "s/\"wall.clock.advance\": false/\"wall.clock.advance\": false, \"changelog.enabled\": true, \"num.standby.replicas\": $replicas/" \
            "$tmp/$name.json"
    done
    start_run "$c-a" "$tmp/$c-a.log"; pid_a=$run_pid
    start_run "$c-b" "$tmp/$c-b.log"; pid_b=$run_pid
    for _ in $(seq 600); do
        [ "$(ready "$c-a")" = 200 ] && [ "$(ready "$c-b")" = 200 ] &&
            [ "$(owned "$c-a" | wc -l)" -gt 0 ] && [ "$(owned "$c-b" | wc -l)" -gt 0 ] && break
        sleep 0.1
    done
    [ "$(owned "$c-a" | wc -l)" -gt 0 ] && [ "$(owned "$c-b" | wc -l)" -gt 0 ] && ok \
        || { bad "$c: the two instances did not share the partitions";
             grep -h -e '"partition' -e error "$tmp/$c-a.log" "$tmp/$c-b.log" | tail -5 | cut -c1-300; exit 1; }
    kcat -b "$bootstrap" -P -t "in-$c" -K $'\t' -z none -X linger.ms=50 < "$tmp/preload.tsv" 2>> "$tmp/kcat.log"
    local want_standbys=0 got
    [ "$replicas" -gt 0 ] && want_standbys=$PARTS
    for _ in $(seq 900); do
        got=$(($(metric "$c-a" cuepoint_standby_partitions) + $(metric "$c-b" cuepoint_standby_partitions)))
        [ "$(metric "$c-a" cuepoint_consumer_lag_records)" -eq 0 ] &&
            [ "$(metric "$c-b" cuepoint_consumer_lag_records)" -eq 0 ] &&
            [ $(($(metric "$c-a" cuepoint_records_consumed_total) + $(metric "$c-b" cuepoint_records_consumed_total))) -ge "$USERS" ] &&
            [ "$got" -eq "$want_standbys" ] &&
            [ "$(metric "$c-a" cuepoint_standby_lag_records)" -eq 0 ] &&
            [ "$(metric "$c-b" cuepoint_standby_lag_records)" -eq 0 ] && break
        sleep 0.2
    done
    [ "$got" -eq "$want_standbys" ] && ok \
        || bad "$c: $got standby partitions over both instances, want $want_standbys"
    # Steady pings, each stamped with its produce time; pongs stamped on arrival.
    kcat -b "$bootstrap" -C -t "out-$c" -o end -u -q -f '%p %T\n' -X fetch.wait.max.ms=10 2>/dev/null |
        while read -r p t; do echo "${EPOCHREALTIME/./} $p $t"; done > "$tmp/$c.recv" &
    pids+=($!)
    (i=0; while :; do
        i=$((i + 1)); u=$((RANDOM % live_users))
        printf 'u%d\t{"event_id":"live-%d","user_id":"u%d","type":"ping","ts":%d}\n' "$u" "$i" "$u" "$(now_ms)"
        sleep 0.01
    done) | kcat -b "$bootstrap" -P -t "in-$c" -K $'\t' -X linger.ms=1 2>> "$tmp/kcat.log" &
    pids+=($!)
    local sb_before; sb_before=$(metric "$c-b" cuepoint_standby_records_total)
    sleep 4
    owned "$c-a" > "$tmp/$c.a-parts"
    if [ "$replicas" -gt 0 ]; then
        # B's copies of A's partitions follow the trickle up to the kill.
        local sb_after lag_b
        sb_after=$(metric "$c-b" cuepoint_standby_records_total)
        lag_b=$(metric "$c-b" cuepoint_standby_lag_records)
        [ "$sb_after" -gt "$sb_before" ] && [ "$lag_b" -ge 0 ] && [ "$lag_b" -lt 200 ] && ok \
            || bad "$c: B's standbys did not follow A's changelog (records $sb_before -> $sb_after, lag $lag_b)"
    fi
    local kill_us=${EPOCHREALTIME/./}
    kill -9 "$pid_a"; wait "$pid_a" 2>/dev/null
    local first="" kill_ms=$((kill_us / 1000))
    for _ in $(seq 600); do
        first=$(awk -v k="$kill_ms" 'NR == FNR { a[$1] = 1; next } ($2 in a) && $3 >= k { print $1; exit }' \
            "$tmp/$c.a-parts" "$tmp/$c.recv")
        [ -n "$first" ] && break
        sleep 0.1
    done
    stop_bg
    run_pid=$pid_b
    [ -n "$first" ] && ok || bad "$c: no pong from A's partitions ($(tr '\n' ' ' < "$tmp/$c.a-parts")) after the kill"
    # Let B finish what is on the topic, then stop it and look at its store.
    for _ in $(seq 300); do
        [ "$(metric "$c-b" cuepoint_consumer_lag_records)" -eq 0 ] && [ "$(owned "$c-b" | wc -l)" -eq "$PARTS" ] && break
        sleep 0.2
    done
    kill -TERM "$pid_b"; wait_run 60 || bad "$c: instance B exit $?"
    local restored restore_s assigned_ms
    restored=$(grep '"restore finished"' "$tmp/$c-b.log" | sed -nE 's/.*"records":([0-9]+).*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')
    restore_s=$(grep '"restore finished"' "$tmp/$c-b.log" | sed -nE 's/.*"seconds":([0-9.e+-]+).*/\1/p' |
        awk '{ if ($1 > s) s = $1 } END { printf "%.2f", s + 0 }')
    # When the group gave A's partitions to B: its last assignment's log time.
    assigned_ms=$(grep '"partition assigned"' "$tmp/$c-b.log" | tail -n1 |
        sed -nE 's/^\{"ts":"([^"]+)".*/\1/p' | xargs -I{} date -d {} +%s%3N)
    assigned_ms=$((assigned_ms - kill_ms))
    pause_ms=$(((${first:-$kill_us} - kill_us) / 1000))
    restored_records=$restored
    echo "case=$c num.standby.replicas=$replicas pause_ms=$pause_ms restored_records=$restored" \
         "restore_seconds=$restore_s reassigned_after_ms=$assigned_ms a_partitions=$(tr '\n' ',' < "$tmp/$c.a-parts" | sed 's/,$//')"
    # Every ping counted once in B's store, and answered on the trigger topic.
    kcat -b "$bootstrap" -C -t "in-$c" -o beginning -e -q -f '%k\n' 2>/dev/null | sort | uniq -c | awk '{ print $2, $1 }' | sort > "$tmp/$c.want"
    "$cuepoint" state dump --machines "$machines" --state-dir "$tmp/$c-b.state" 2>/dev/null |
        sed -nE 's/^\{"user_id":"([^"]+)".*"pings":([0-9]+).*/\1 \2/p' | sort > "$tmp/$c.got"
    cmp -s "$tmp/$c.want" "$tmp/$c.got" && ok \
        || { bad "$c: the survivor's ping counts differ from the input topic ($(wc -l < "$tmp/$c.got") users, $(wc -l < "$tmp/$c.want") expected)";
             diff "$tmp/$c.want" "$tmp/$c.got" | head -4; rebalance_story "$c"; loss_story "$c"; }
    # Each start of a partition on B took its first record where its state
    # expected it (the input has no gaps): none skipped.
    local skips
    skips=$(grep '"first record since the start"' "$tmp/$c-b.log" | grep -v '"skipped":0')
    [ "$(grep -c '"first record since the start"' "$tmp/$c-b.log")" -ge "$PARTS" ] && [ -z "$skips" ] && ok \
        || { bad "$c: B skipped records at a start: $(echo "$skips" | cut -c1-200)"; rebalance_story "$c"; }
    local events pongs
    events=$(kcat -b "$bootstrap" -C -t "in-$c" -o beginning -e -q -f '%s\n' 2>/dev/null | grep -c '"type":"ping"')
    pongs=$(kcat -b "$bootstrap" -C -t "out-$c" -o beginning -e -q -f '%h\n' 2>/dev/null |
        sed -nE 's/.*ce_id=([0-9a-f]+).*/\1/p' | sort -u | wc -l)
    [ "$events" -gt 0 ] && [ "$pongs" -eq "$events" ] && ok || { bad "$c: $pongs distinct pongs for $events pings"; rebalance_story "$c"; loss_story "$c"; }
}

failover none 0
pause_none=$pause_ms; restored_none=$restored_records
failover one 1
pause_one=$pause_ms; restored_one=$restored_records

echo "standby fail-over: pause without standby ${pause_none} ms (restored $restored_none records)," \
     "with num.standby.replicas=1 ${pause_one} ms (restored $restored_one records)"
# Without a standby the new owner rebuilds A's partitions whole; with one it
# reads only the tail its copy had not applied yet.
[ "$restored_none" -ge $((USERS / 4)) ] && ok || bad "without a standby only $restored_none records were restored"
[ "$restored_one" -lt $((restored_none / 10)) ] && ok \
    || bad "with a standby $restored_one records were restored (without: $restored_none)"
finish
