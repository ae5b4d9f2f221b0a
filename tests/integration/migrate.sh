#!/bin/bash
# A journey changes under stored state: version 1 writes a state directory
# (`cuepoint file`); version 2 renames a state, splits one, removes one and
# shortens the nudge from 72 h to 48 h, with a `migrate` map. `check --against`
# must refuse the map that forgets the removed state (stranded users), print
# the plan for the full one, and the run must do what the plan said: the same
# counts, users where the plan put them, the nudge that became due at once
# firing first, and nothing migrated twice.
set -uo pipefail
. "$(dirname "$0")/../lib.sh" "$1"
here=$(cd "$(dirname "$0")/migrate" && pwd)
expect_in() { # file, text, description
    if grep -qF -- "$2" "$1"; then ok; else bad "$3: '$2' not in $(basename "$1"):"; cat "$1"; fi
}
st=$tmp/state

"$cuepoint" file --machines "$here/v1" --input "$here/events-v1.jsonl" --state-dir "$st" \
    --output "$tmp/t1.jsonl" 2> "$tmp/run1.err" && ok || { bad "version 1 run"; cat "$tmp/run1.err"; }
[ "$(grep -c . "$tmp/t1.jsonl")" = 1 ] && grep -q '"type":"completed","subject":"u9"' "$tmp/t1.jsonl" \
    && ok || { bad "version 1: u9's completion only, no nudge yet:"; cat "$tmp/t1.jsonl"; }

# The map that forgets the removed state strands its users: refused.
"$cuepoint" check "$here/v2-unmapped" --against "$st" > "$tmp/plan0" 2>&1; rc=$?
[ "$rc" -eq 65 ] && ok || bad "a plan that strands users: exit $rc, expected 65"
expect_in "$tmp/plan0" "v1 state #" "the stranded state, by hash without --previous"
expect_in "$tmp/plan0" "2 STRANDED" "two users in the removed state"
expect_in "$tmp/plan0" "2 stored instance(s) would be stranded" "the error line"
expect_in "$tmp/plan0" "[stranded]" "the error's code"
"$cuepoint" check "$here/v2-unmapped" --against "$st" --previous "$here/v1" > "$tmp/plan0b" 2>&1
expect_in "$tmp/plan0b" "v1 state invited: 2 STRANDED" "--previous names the old state"

# The full map: the plan, exit 0.
"$cuepoint" check "$here/v2" --against "$st" > "$tmp/plan" 2>&1; rc=$?
[ "$rc" -eq 0 ] && ok || { bad "plan: exit $rc"; cat "$tmp/plan"; }
expect_in "$tmp/plan" "journey signup (version 2): 9 instance(s) stored under another version" "plan header"
expect_in "$tmp/plan" "v1 state welcome: 3 moved to greeting" "renamed"
expect_in "$tmp/plan" "v1 state uploading: 1 moved to uploading_first" "split, one way"
expect_in "$tmp/plan" "v1 state uploading: 2 moved to uploading_more" "split, the other"
expect_in "$tmp/plan" "v1 state invited: 2 finished (shown in done)" "removed, finished by its rule"
expect_in "$tmp/plan" "v1 state done: 1 already finished" "a finished journey"
expect_in "$tmp/plan" "timer nudge: 6 moved to nudge, 1d earlier (1 due at once)" "the shorter nudge"
expect_in "$tmp/plan" "timer nudge: 2 dropped: their instance finishes" "timers of finished users"
expect_in "$tmp/plan" "at once: timer nudge in state greeting: 1, could emit stalled" "what fires at once"
planned=$(sed -n 's/^migration: \(.*dropped\); [0-9]* due at once$/\1/p' "$tmp/plan")
[ "$planned" = "9 instances migrated, 6 moved, 2 finished, 0 stranded, 0 dropped; timers: 6 moved, 2 dropped" ] \
    && ok || { bad "planned totals: '$planned'"; cat "$tmp/plan"; }

# The run does what the plan said.
"$cuepoint" file --machines "$here/v2" --input "$here/events-v2.jsonl" --state-dir "$st" \
    --output "$tmp/t2.jsonl" --until 2026-03-10T00:00:00Z 2> "$tmp/run2.err" && ok \
    || { bad "version 2 run"; cat "$tmp/run2.err"; }
ran=$(sed -n 's/^  migration: \(.*dropped\) (9 users rewritten at start)$/\1/p' "$tmp/run2.err")
[ "$ran" = "$planned" ] && ok || { bad "the run's counts differ from the plan's: '$ran' vs '$planned'"; cat "$tmp/run2.err"; }
"$cuepoint" state dump --state-dir "$st" --machines "$here/v2" > "$tmp/dump" 2>&1 && ok || bad "state dump"
where() { grep "\"user_id\":\"$1\"" "$tmp/dump" | sed -nE 's/.*"state":"([a-z_]+)","finished":(true|false).*/\1 \2/p'; }
for want in "u1 greeting false" "u2 greeting false" "u3 greeting false" "u4 uploading_more false" \
    "u5 uploading_more false" "u6 uploading_more false" "u7 done true" "u8 done true" "u9 done true" \
    "u10 greeting false"; do
    set -- $want
    [ "$(where "$1")" = "$2 $3" ] && ok || bad "$1: '$(where "$1")', expected '$2 $3'"
done
# Triggers: u1's nudge, moved a day earlier to before the partition's time,
# fires first (before u10's event); the rest at their shifted times.
fired=$(sed -nE 's/.*"type":"([a-z_]+)","subject":"(u[0-9]+)","time":"([^"]+)".*/\2 \1 \3/p' "$tmp/t2.jsonl")
want="u1 stalled 2026-03-03T00:00:00.000Z
u2 stalled 2026-03-03T12:00:00.000Z
u3 stalled 2026-03-04T00:00:00.000Z
u4 power_user_stalled 2026-03-04T02:00:00.000Z
u5 power_user_stalled 2026-03-04T04:00:00.000Z
u6 power_user_stalled 2026-03-04T07:00:00.000Z
u10 stalled 2026-03-05T07:00:00.000Z"
[ "$fired" = "$want" ] && ok || { bad "triggers:"; echo "$fired"; echo "expected:"; echo "$want"; }

# Nothing is migrated twice: the next start finds every user at version 2.
"$cuepoint" check "$here/v2" --against "$st" > "$tmp/plan2" 2>&1 && ok || bad "second plan"
expect_in "$tmp/plan2" "journey signup (version 2): nothing stored under another version" "nothing left"
printf '{"user_id":"u11","type":"signed_up","ts":"2026-03-10T01:00:00Z"}\n' > "$tmp/e3.jsonl"
"$cuepoint" file --machines "$here/v2" --input "$tmp/e3.jsonl" --state-dir "$st" --output /dev/null \
    2> "$tmp/run3.err" && ok || bad "third run"
grep -q "migration:" "$tmp/run3.err" && bad "migrated again: $(cat "$tmp/run3.err")" || ok

"$cuepoint" check "$here/v2" --against "$tmp/none" > /dev/null 2>&1; rc=$?
[ "$rc" -eq 66 ] && ok || bad "no state directory: exit $rc, expected 66"
finish
