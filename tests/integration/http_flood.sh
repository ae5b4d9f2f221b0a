#!/bin/bash
# The admin port cannot be wedged by its clients. While hundreds of
# connections hold it (idle keep-alive ones, slow ones dribbling a request
# head a byte a second, silent ones), from the probes' own address or from
# many, /healthz and /metrics answer every probe within a second, during the
# flood and after it, and the events keep being processed. The cases a tester
# found to wedge it for good: 64 keep-alive connections held for 3 s, 500
# clients at once, 100 slow clients; and 500 of all kinds for 20 s. Also: a
# path with %00, a bad escape or bad UTF-8 gets 400, not another user's state.
# The client is tests/integration/http_flood.py (Debian's python3).
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

py=/usr/bin/python3
[ -x "$py" ] || { echo "python3 is not installed (scripts/deps.sh installs it)"; exit 1; }
helper="$(dirname "$0")/http_flood.py"
# 500 client sockets here, up to 96 in cuepoint.
ulimit -n 4096 2>/dev/null || true
[ "$(ulimit -n)" -ge 1200 ] || { echo "FAIL open files limit $(ulimit -n), 1200 needed"; exit 1; }

# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --partitions 2 --topic events --topic triggers --topic dead --topic flood-changelog
"$cuepoint" generate --users 200 --events 2000 --seed 3 > "$tmp/a.jsonl"
"$cuepoint" generate --users 200 --events 2000 --seed 4 > "$tmp/b.jsonl"
produce "$tmp/a.jsonl" events
config flood flood events triggers
start_run flood "$tmp/run.log"
for _ in $(seq 100); do [ -s "$tmp/flood.admin" ] && break; sleep 0.05; done
addr=$(cat "$tmp/flood.admin")
wait_metric flood cuepoint_records_consumed_total 2000 60 && ok || bad "the first events were not consumed"

# flood NAME HELPER-OPTION...: one case; every probe must answer in time.
flood() {
    local name=$1; shift
    "$py" "$helper" --addr "$addr" --deadline 1 "$@" > "$tmp/$name.out" 2>&1
    local rc=$?
    echo "$name: $(head -1 "$tmp/$name.out")"
    [ $rc -eq 0 ] && ok || { bad "$name: a probe failed"; tail -n +2 "$tmp/$name.out"; }
    kill -0 "$run_pid" 2>/dev/null || { bad "cuepoint exited during $name"; tail -3 "$tmp/run.log"; exit 1; }
}

others=$(seq -s, -f '127.0.0.%g' 2 11)

# Held, then all closed at once: the server must listen again afterwards.
flood keepalive64 --idle 64 --hold 3 --after 3
# 500 at once from ten addresses (the probes from an eleventh), reconnecting
# when dropped: the table stays full, and the heaviest clients give way.
flood clients500 --idle 500 --sources "$others" --reconnect --hold 5 --after 2
# Slow heads from the probes' own address: its oldest give way, the rest are
# cut at the 5 s request deadline.
flood slow100 --slow 100 --hold 8 --after 2

# The long one, with events produced meanwhile.
produce "$tmp/b.jsonl" events
flood mixed500 --idle 250 --slow 200 --silent 50 --reconnect --rate 500 --hold 20 --after 3

wait_metric flood cuepoint_records_consumed_total 4000 60 && ok \
    || bad "events produced during the flood were not consumed: $(metric flood cuepoint_records_consumed_total) of 4000"
for reason in client_limit table_full timeout; do
    n=$(metric flood "cuepoint_admin_connections_dropped_total{reason=\"$reason\"}")
    [ "${n:-0}" -gt 0 ] && ok || bad "no connection dropped for $reason"
    echo "dropped for $reason: $n"
done
# Each read of the metric is a connection of its own, and the server learns
# that the previous ones closed on a later run: on a starved machine a few
# may still count. Every flood connection is gone by the table's deadlines
# (CUE_HTTP_REQUEST_TIMEOUT_S, CUE_HTTP_IDLE_TIMEOUT_S) at the latest.
for _ in $(seq 48); do
    open=$(metric flood cuepoint_admin_connections)
    [ "$open" -le 2 ] && break
    sleep 0.25
done
[ "$open" -le 2 ] && ok || bad "$open admin connections still open after the floods (12 s waited)"

# Paths: the id is not cut at a NUL or guessed from a bad escape.
get() { curl -s --max-time 5 -o "$tmp/body" -w '%{http_code}' "http://$addr$1"; }
user=$(grep -o '"user_id":"[^"]*"' "$tmp/a.jsonl" | head -1 | sed 's/.*:"//; s/"$//')
[ "$(get "/v1/users/$user")" = 200 ] && ok || bad "/v1/users/$user: $(cat "$tmp/body")"
for path in "/v1/users/$user%00junk" "/v1/users/$user%zz" "/v1/users/$user%4" "/v1/users/%C3%28$user"; do
    code=$(get "$path")
    [ "$code" = 400 ] && grep -q '^bad request path: ' "$tmp/body" && ok \
        || bad "$path: $code $(cat "$tmp/body")"
done
[ "$(metric flood cuepoint_admin_bad_paths_total)" = 4 ] && ok || bad "bad paths not counted"

kill -TERM "$run_pid"; wait "$run_pid"; rc=$?; run_pid=
[ $rc -eq 0 ] && ok || bad "exit $rc after SIGTERM"
finish
