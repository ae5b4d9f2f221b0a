#!/bin/bash
# Partitions lost (the group dropped the instance: it did not heartbeat
# within session.timeout.ms) in the middle of sealed commit cycles, with the
# changelog on, and given back to the same instance.
#
# One instance, 8 partitions; a trickle of pings, each from a user never
# seen before, so a cycle missing from the store or the changelog shows as
# users missing. The broker answers every request 100 ms late, so a sealed
# cycle waits for its triggers' acknowledgements (its changelog records
# held) most of the time; the instance is stopped (SIGSTOP) for longer than
# its session, several times, and loses its partitions each time it goes on.
#
# Afterwards: its store counts every ping once, every ping has its pong, and
# a new instance with an empty state directory, which can only restore from
# the changelog, has the same state. A lost cycle that still reached the
# local store but never the changelog (the records held are dropped with the
# task) fails the last check: the restored position is past pings whose
# users the changelog never got.
#
# STOPS sets how many times the instance is stopped; KEEP_DIR=D copies the
# run's directory (logs, state, topic dumps) to D when it ends.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

PARTS=8
SESSION_MS=3000
STOPS=${STOPS:-4}
machines="$tmp/machines"
mkdir -p "$machines"
cat > "$machines/echo.json" <<'EOF'
{"name": "echo", "version": 1,
 "description": "Counts each user's pings and answers every ping with a pong.",
 "start": {"event": "ping", "do": [{"increment": "pings"}, {"emit": "pong", "data": {"pings": {"counter": "pings"}}}]},
 "initial": "on",
 "states": {"on": {"on": [{"event": "ping", "do": [{"increment": "pings"}, {"emit": "pong", "data": {"pings": {"counter": "pings"}}}]}]}}}
EOF
broker_start --partitions "$PARTS" --topic in --topic out --topic lost-changelog
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
admin() { cat "$tmp/lost.admin"; }
lag() {
    curl -s --max-time 2 "http://$(admin)/metrics" |
        awk '/^cuepoint_consumer_lag_records\{/ { s += $2; n++ } END { print (n == '"$PARTS"' ? s : -1) }'
}
trickle=""
trap '[ -n "$trickle" ] && kill "$trickle" 2>/dev/null; [ -n "${KEEP_DIR:-}" ] && cp -r "$tmp" "$KEEP_DIR"; cleanup' EXIT

config lost lost in out '"session.timeout.ms": '"$SESSION_MS"', "heartbeat.interval.ms": 500'
sed -i 's/"wall.clock.advance": false/"wall.clock.advance": false, "changelog.enabled": true/' "$tmp/lost.json"
start_run lost "$tmp/lost.log"
for _ in $(seq 300); do [ "$(lag 2>/dev/null)" = 0 ] && break; sleep 0.1; done
[ "$(lag)" = 0 ] && ok || { bad "the instance did not take the $PARTS partitions"; tail -3 "$tmp/lost.log"; exit 1; }
fault "rtt 1 100"

(i=0; while :; do
    i=$((i + 1))
    printf 'u%d\t{"event_id":"e%d","user_id":"u%d","type":"ping","ts":%d}\n' "$i" "$i" "$i" "$(now_ms)"
    sleep 0.005
done) | kcat -b "$bootstrap" -P -t in -K $'\t' -X linger.ms=1 2>> "$tmp/kcat.log" &
trickle=$!
sleep 4
for _ in $(seq "$STOPS"); do
    kill -STOP "$run_pid"
    sleep $((SESSION_MS / 1000 + 2))
    kill -CONT "$run_pid"
    sleep 4
done
kill "$trickle"; wait "$trickle" 2>/dev/null; trickle=""
fault "rtt 1 0"
lost=$(grep -c '"partition lost"' "$tmp/lost.log")
dropped=$(grep -c '"sealed cycle dropped' "$tmp/lost.log")
echo "partitions lost: $lost; sealed cycles dropped with them: $dropped"
[ "$lost" -gt 0 ] && ok || bad "no partition was lost: the stops provoked nothing to check"
# Caught up, with every partition back (a member that never rejoins would
# show no lag at all).
for _ in $(seq 600); do [ "$(lag)" = 0 ] && break; sleep 0.1; done
[ "$(lag)" = 0 ] && ok || bad "not caught up with the $PARTS partitions back (lag $(lag))"
kill -TERM "$run_pid"; wait_run 60 || bad "exit $?"
echo "stopped after ${SECONDS}s"

counts() { # STATE-DIR: "user pings" lines, sorted
    "$cuepoint" state dump --machines "$machines" --state-dir "$1" 2>/dev/null |
        sed -nE 's/^\{"user_id":"([^"]+)".*"pings":([0-9]+).*/\1 \2/p' | sort
}
kcat -b "$bootstrap" -C -t in -o beginning -e -q -f '%k\n' 2>/dev/null | sort | uniq -c |
    awk '{ print $2, $1 }' | sort > "$tmp/want"
pings=$(awk '{ s += $2 } END { print s + 0 }' "$tmp/want")
counts "$tmp/lost.state" > "$tmp/got"
cmp -s "$tmp/want" "$tmp/got" && ok ||
    { bad "the store's counts differ from the input topic ($(wc -l < "$tmp/got") users, $(wc -l < "$tmp/want") expected)";
      diff "$tmp/want" "$tmp/got" | head -4; }
pongs=$(kcat -b "$bootstrap" -C -t out -o beginning -e -q -f '%h\n' 2>/dev/null |
    sed -nE 's/.*ce_id=([0-9a-f]+).*/\1/p' | sort -u | wc -l)
[ "$pongs" -eq "$pings" ] && ok || bad "$pongs distinct pongs for $pings pings"
# Each time a partition came back its first record was the one its state
# expected (the input has no gaps): none skipped at a start.
starts=$(grep -c '"first record since the start"' "$tmp/lost.log")
skips=$(grep '"first record since the start"' "$tmp/lost.log" | grep -v '"skipped":0')
[ "$starts" -gt "$PARTS" ] && [ -z "$skips" ] && ok \
    || bad "$starts starts logged; records skipped at a start: $(echo "$skips" | cut -c1-200)"

# A new instance (its state directory empty) restores from the changelog alone.
rm -rf "$tmp/lost.state"
start_run lost "$tmp/fresh.log" --stop-at-end
wait_run 120 || bad "the restoring run: exit $?"
restored=$(grep '"restore finished"' "$tmp/fresh.log" | sed -nE 's/.*"records":([0-9]+).*/\1/p' |
    awk '{ s += $1 } END { print s + 0 }')
echo "restore done after ${SECONDS}s"
echo "restored from the changelog: $restored records over $(grep -c '"restore finished"' "$tmp/fresh.log") partitions, $pings pings"
counts "$tmp/lost.state" > "$tmp/got.restored"
cmp -s "$tmp/want" "$tmp/got.restored" && ok ||
    { bad "restored from the changelog, the counts differ from the input topic ($(diff "$tmp/want" "$tmp/got.restored" | grep -c '^<') users)";
      diff "$tmp/want" "$tmp/got.restored" | head -4; }
finish
