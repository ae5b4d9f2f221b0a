#!/bin/bash
# migrate.sh through `cuepoint run` on the dev broker: version 1 of a journey
# runs a topic into a state directory; `check --against` plans version 2; then
# version 2 runs over the same directory and topic, and the triggers, the
# users' states and /metrics' migration counters are what the plan said.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
here=$root/tests/integration/migrate
st=$tmp/mig.state
# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --partitions 1 --topic events --topic triggers --topic mig-dead --topic mig-changelog

# config NAME MACHINES CLOCK-ADVANCE
mig_config() {
    cat > "$tmp/$1.json" <<EOF2
{"application.id": "mig", "bootstrap.servers": "$bootstrap",
 "input.topic": "events", "trigger.topic": "triggers",
 "errors.dead.letter.queue.topic.name": "mig-dead", "state.dir": "$st",
 "machines.dir": "$2", "admin.listen": "127.0.0.1:0", "commit.interval.ms": 200,
 "wall.clock.advance": $3, "kafka": {"consumer": {"fetch.wait.max.ms": 10}}}
EOF2
}

produce "$here/events-v1.jsonl" events
mig_config v1 "$here/v1" false
start_run v1 "$tmp/v1.log" --stop-at-end
wait_run 60 && ok || { bad "version 1 run: exit $?"; tail -5 "$tmp/v1.log"; }

"$cuepoint" check "$here/v2" --against "$st" > "$tmp/plan" 2>&1 && ok || { bad "plan"; cat "$tmp/plan"; }
grep -q "^migration: 9 instances migrated, 6 moved, 2 finished, 0 stranded, 0 dropped; timers: 6 moved, 2 dropped; 1 due at once$" \
    "$tmp/plan" && ok || { bad "the plan:"; cat "$tmp/plan"; }

produce "$here/events-v2.jsonl" events
mig_config v2 "$here/v2" true
CUEPOINT_CLOCK=2026-03-10T00:00:00Z start_run v2 "$tmp/v2.log"
# u9's completion (version 1) and the seven nudges of version 2.
for _ in $(seq 300); do [ "$(count triggers)" -ge 8 ] && break; sleep 0.2; done
wait_metric v2 cuepoint_journey_instances_migrated_total 9 10 && ok \
    || bad "migrated: $(metric v2 cuepoint_journey_instances_migrated_total), expected 9"
[ "$(metric v2 cuepoint_journey_instances_stranded_total)" = 0 ] && ok \
    || bad "stranded: $(metric v2 cuepoint_journey_instances_stranded_total), expected 0"
kill -TERM "$run_pid"
wait_run 30 && ok || { bad "version 2 run: exit $?"; tail -5 "$tmp/v2.log"; }

fired=$(kcat -b "$bootstrap" -C -t triggers -o beginning -e -q -f '%s\n' 2>/dev/null |
    sed -nE 's/.*"type":"([a-z_]+)","subject":"(u[0-9]+)","time":"([^"]+)".*/\2 \1 \3/p' | sort)
want="u1 stalled 2026-03-03T00:00:00.000Z
u10 stalled 2026-03-05T07:00:00.000Z
u2 stalled 2026-03-03T12:00:00.000Z
u3 stalled 2026-03-04T00:00:00.000Z
u4 power_user_stalled 2026-03-04T02:00:00.000Z
u5 power_user_stalled 2026-03-04T04:00:00.000Z
u6 power_user_stalled 2026-03-04T07:00:00.000Z
u9 completed 2026-03-03T06:00:00.000Z"
[ "$fired" = "$want" ] && ok || { bad "triggers:"; echo "$fired"; echo "expected:"; echo "$want"; }
"$cuepoint" check "$here/v2" --against "$st" > "$tmp/plan2" 2>&1
grep -q "journey signup (version 2): nothing stored under another version" "$tmp/plan2" && ok \
    || { bad "migrated users not written back:"; cat "$tmp/plan2"; }
"$cuepoint" state dump --state-dir "$st" --machines "$here/v2" |
    sed -nE 's/.*"user_id":"(u[0-9]+)".*"state":"([a-z_]+)","finished":(true|false).*/\1 \2 \3/p' | sort > "$tmp/states"
want="u1 greeting false
u10 greeting false
u2 greeting false
u3 greeting false
u4 uploading_more false
u5 uploading_more false
u6 uploading_more false
u7 done true
u8 done true
u9 done true"
[ "$(cat "$tmp/states")" = "$want" ] && ok || { bad "states:"; cat "$tmp/states"; }
finish
