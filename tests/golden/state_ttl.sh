#!/bin/bash
# State TTL in file mode, with the journeys in tests/golden/state_ttl (visit:
# any event, no timer; remind: 'arm' starts a 2-day timer). Global state.ttl:
# a user goes once it has had no event for that long and nothing is pending;
# a journey's state_ttl drops its idle instance, and the user with its last
# one. Both by stream time: the same events in one run or in several give
# the same triggers and the same store. A user who comes back after expiring
# is a new user.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
machines="$root/tests/golden/state_ttl"

day() { date -u -d "2026-03-01 + $1 days" +%Y-%m-%dT%H:%M:%SZ; }
ev() { echo "{\"event_id\":\"$1-$2-$3\",\"user_id\":\"$1\",\"type\":\"$2\",\"ts\":\"$(day "$3")\"}"; }

file_run() { # state-dir input until [options]
    local st=$1 in=$2 until=$3; shift 3
    "$cuepoint" file --quiet --machines "$machines" --input "$in" --state-dir "$st" \
        --until "$(day "$until")" --output - "$@" 2> "$tmp/err" \
        || { bad "run $in: exit $?"; cat "$tmp/err"; }
}
has() { "$cuepoint" state get "$2" --machines "$machines" --state-dir "$1" > "$tmp/user.json" 2>&1; }
expired() { sed -E 's/.*"expired":\{"users":([0-9]+),"instances":([0-9]+)\}.*/\1 \2/' "$1"; }

# ---- global: state.ttl = 7 days ---------------------------------------------
ttl=(--set state.ttl=7d)
{
    ev a visit 0        # nothing after: goes at day 7
    ev b visit 0
    ev c arm 0          # its timer (day 2) keeps it, then day 0 + 7
    ev b visit 5        # goes at day 12
    ev d arm 6          # timer at day 8, then goes at day 13
} > "$tmp/g1.events"
ev e visit 11 > "$tmp/g2.events"   # stays: day 18 is past the end
ev a visit 16 > "$tmp/g3.events"   # back, after expiring

st="$tmp/g.state"
file_run "$st" "$tmp/g1.events" 10 "${ttl[@]}" --stats "$tmp/g1.stats" > "$tmp/g1.out"
[ "$(expired "$tmp/g1.stats")" = "2 0" ] && ok || bad "by day 10, a and c expire: $(expired "$tmp/g1.stats")"
has "$st" a && bad "a (no event for 7 days) is still stored" || ok
has "$st" c && bad "c (its timer fired, then 7 days) is still stored" || ok
has "$st" b && ok || bad "b (an event at day 5) is gone before day 12"
has "$st" d && ok || bad "d (a timer until day 8) is gone before day 13"
[ "$(grep -c '"type":"reminder"' "$tmp/g1.out")" = 2 ] && ok || bad "c's and d's reminders (days 2 and 8) did not go out once each"
file_run "$st" "$tmp/g2.events" 15 "${ttl[@]}" --stats "$tmp/g2.stats" > "$tmp/g2.out"
[ "$(expired "$tmp/g2.stats")" = "2 0" ] && ok || bad "by day 15, b and d expire: $(expired "$tmp/g2.stats")"
has "$st" b && bad "b is still stored at day 15" || ok
has "$st" e && ok || bad "e (day 11) is gone before day 18"
"$cuepoint" file --machines "$machines" --input "$tmp/g3.events" --state-dir "$st" \
    "${ttl[@]}" > "$tmp/g3.out" 2> "$tmp/g3.summary" || bad "run g3: exit $?"
has "$st" a && grep -q "\"started\":\"$(day 16 | sed 's/Z$/.000Z/')\"" "$tmp/user.json" && ok \
    || { bad "a back at day 16 is not a new user"; cat "$tmp/user.json"; }
# Without state.ttl nothing goes: the control for all of the above.
file_run "$tmp/keep.state" "$tmp/g1.events" 15 --stats "$tmp/keep.stats" > /dev/null
[ "$(expired "$tmp/keep.stats")" = "0 0" ] && has "$tmp/keep.state" a && ok || bad "state.ttl off: a user expired"

# Users stored before state.ttl was set expire too: the store above, run
# without it to day 15, then with it over no new events.
: > "$tmp/none.events"
"$cuepoint" file --machines "$machines" --input "$tmp/none.events" --state-dir "$tmp/keep.state" \
    "${ttl[@]}" --until "$(day 30)" --stats "$tmp/late.stats" > /dev/null 2> "$tmp/late.err" \
    || bad "late TTL: exit $?"
[ "$(expired "$tmp/late.stats")" = "4 0" ] && ok || bad "users stored before state.ttl: $(expired "$tmp/late.stats") expired, 4 expected"
grep -q "state TTL: 4 users stored before it was set given an expiry" "$tmp/late.err" && ok \
    || { bad "late TTL: summary"; cat "$tmp/late.err"; }

# One run equals two: the same triggers, the same store.
file_run "$tmp/one.state" <(cat "$tmp/g1.events" "$tmp/g2.events") 15 "${ttl[@]}" > "$tmp/one.out"
cat "$tmp/g1.out" "$tmp/g2.out" | cmp -s - "$tmp/one.out" && ok || bad "one run and two runs: triggers differ"
dump() { "$cuepoint" state dump --machines "$machines" --state-dir "$1" | sed -E 's/"last_offset":[0-9]+,//'; }
# The split case again, without a's return, to compare stores.
st2="$tmp/g2.state"
file_run "$st2" "$tmp/g1.events" 10 "${ttl[@]}" > /dev/null
file_run "$st2" "$tmp/g2.events" 15 "${ttl[@]}" > /dev/null
diff <(dump "$st2") <(dump "$tmp/one.state") > "$tmp/dump.diff" && ok \
    || { bad "one run and two runs: stores differ"; head "$tmp/dump.diff"; }
[ "$(dump "$st2" | wc -l)" = 1 ] && ok || bad "only e should be left at day 15"
"$cuepoint" file --machines "$machines" --input "$tmp/g1.events" --state-dir "$tmp/sum.state" \
    "${ttl[@]}" --until "$(day 10)" > /dev/null 2> "$tmp/sum.err"
grep -q "state TTL: 2 users expired, 0 journey instances expired" "$tmp/sum.err" && ok \
    || { bad "summary line"; cat "$tmp/sum.err"; }

# ---- per journey: remind has state_ttl 3 days, no global TTL ------------------
mkdir -p "$tmp/pj"
cp "$machines/visit.json" "$tmp/pj/"
sed 's/"version": 1,/"version": 1,\n  "state_ttl": "3d",/' "$machines/remind.json" > "$tmp/pj/remind.json"
{
    ev f arm 0          # reminder at day 2, then idle 3 days: its only instance goes at day 5
    ev g visit 0
    ev g arm 0          # remind goes at day 5; visit (no state_ttl) keeps g
} > "$tmp/p1.events"
st="$tmp/p.state"
"$cuepoint" file --quiet --machines "$tmp/pj" --input "$tmp/p1.events" --state-dir "$st" \
    --until "$(day 6)" --stats "$tmp/p1.stats" > "$tmp/p1.out" 2> "$tmp/err" || bad "p1: exit $?"
[ "$(expired "$tmp/p1.stats")" = "1 2" ] && ok || bad "per journey: 1 user, 2 instances: $(expired "$tmp/p1.stats")"
"$cuepoint" state get f --machines "$tmp/pj" --state-dir "$st" > /dev/null 2>&1 && bad "f is still stored" || ok
"$cuepoint" state get g --machines "$tmp/pj" --state-dir "$st" > "$tmp/g.json" 2>&1 \
    && grep -q '"machine":"visit"' "$tmp/g.json" && ! grep -q '"machine":"remind"' "$tmp/g.json" && ok \
    || { bad "g keeps visit, loses remind"; cat "$tmp/g.json"; }
# The journey begins afresh for f (remind has no repeat: without the TTL it would not).
ev f arm 7 > "$tmp/p2.events"
"$cuepoint" file --quiet --machines "$tmp/pj" --input "$tmp/p2.events" --state-dir "$st" \
    --until "$(day 10)" > "$tmp/p2.out" 2> "$tmp/err" || bad "p2: exit $?"
[ "$(grep -c reminder "$tmp/p2.out")" = 1 ] && ok || bad "f's journey did not begin afresh"

finish
