#!/bin/bash
# The policy stage, one rule at a time, in file mode with the test machine in
# tests/golden/policy (each event type emits one trigger name; a user says
# hello first, with their attributes). Each case writes a policy file and a
# few events, and compares the decisions, as
#   trigger outcome reason rule channel until
# with what the rule must give. Expected instants of the DST cases come from
# `TZ=... date` on this machine, not from cuepoint:
#   America/Los_Angeles 2026-03-08: 02:00 PST -> 03:00 PDT (10:00Z)
#   America/Los_Angeles 2026-11-01: 02:00 PDT -> 01:00 PST (09:00Z); 01:30 is 08:30Z and 09:30Z
#   Europe/Berlin 2026-03-29: 02:00 CET -> 03:00 CEST (01:00Z)
#   Europe/Berlin 2026-10-25: 03:00 CEST -> 02:00 CET (01:00Z); 02:30 is 00:30Z and 01:30Z
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
machines="$root/tests/golden/policy"

# policy NAME JSON-MEMBERS: a policy file with the test machine's classes
# (pinged lifecycle, promo promotional, alert transactional, reminder
# lifecycle) plus the given members.
policy() {
    cat > "$tmp/$1.policy.json" <<EOF
{"classes": [{"name": "transactional", "bypass": true}, "lifecycle", "promotional"],
 "defaults": {"class": "lifecycle", "channels": ["push"]},
 "machines": {"m": {"triggers": {"promo": {"class": "promotional"},
                                 "alert": {"class": "transactional", "channels": ["push", "email"]}}}},
 $2}
EOF
}

# run NAME [file options]: events from $tmp/NAME.events; decisions summarised
# in $tmp/NAME.got, triggers in $tmp/NAME.out
run() {
    local name=$1; shift
    rm -rf "$tmp/$name.state" "$tmp/$name.decisions"
    # One partition, one stream time: the cases' events in time order.
    sed -E 's/.*"ts":"([^"]*)".*/\1\t&/' "$tmp/$name.events" | sort -s -k1,1 | cut -f2- > "$tmp/$name.sorted"
    mv "$tmp/$name.sorted" "$tmp/$name.events"
    "$cuepoint" file --quiet --machines "$machines" --policies "$tmp/$name.policy.json" \
        --input "$tmp/$name.events" --state-dir "$tmp/$name.state" --decisions "$tmp/$name.decisions" \
        "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" || { bad "$name: exit $?"; cat "$tmp/$name.err"; }
    sed -E 's/.*"trigger":"([^"]*)","outcome":"([a-z]*)","reason":"([a-z_]*)","rule":"([^"]*)","channel":(null|"[a-z_]*").*"until":(null|"[^"]*").*/\1 \2 \3 \4 \5 \6/; s/"//g' \
        "$tmp/$name.decisions" > "$tmp/$name.got"
}

# expect NAME: the decisions must be the lines on stdin
expect() {
    if diff <(cat) "$tmp/$1.got" > "$tmp/$1.diff"; then ok; else
        bad "$1: decisions differ (expected <, got >)"; cat "$tmp/$1.diff"
    fi
}

ev() { # user type time [attributes JSON]
    local extra=""
    [ -n "${4:-}" ] && extra=",\"user\":$4"
    [ -n "${5:-}" ] && extra="$extra,\"props\":$5"
    echo "{\"event_id\":\"$1-$2-$3\",\"user_id\":\"$1\",\"type\":\"$2\",\"ts\":\"$3\"$extra}"
}

# ---- quiet hours ----------------------------------------------------------
policy quiet '"quiet_hours": {"start": "21:00", "end": "08:00"}'
{
    ev la hello 2026-06-10T04:00:00Z '{"timezone":"America/Los_Angeles"}'
    ev la ping 2026-06-10T05:00:00Z         # 22:00 PDT: wait for 08:00 PDT = 15:00Z
    ev la ping 2026-06-10T20:00:00Z         # 13:00 PDT: out now (the deferred one went at 15:00Z)
    ev tokyo hello 2026-06-10T04:00:00Z '{"timezone":"Asia/Tokyo"}'
    ev tokyo ping 2026-06-10T05:00:00Z      # 14:00 JST: out
    ev notz hello 2026-06-10T04:00:00Z      # no zone, no region: the default (UTC)
    ev notz ping 2026-06-10T22:00:00Z       # 22:00 UTC: wait for 08:00Z
    ev mars hello 2026-06-10T04:00:00Z '{"timezone":"Mars/Olympus"}'
    ev mars ping 2026-06-10T23:00:00Z       # unknown zone: the default, documented
    ev region hello 2026-06-10T04:00:00Z '{"region":"DE"}'
    ev region ping 2026-06-10T20:30:00Z     # no zone, region DE -> Europe/Berlin: 22:30 CEST
} > "$tmp/quiet.events"
policy quiet '"quiet_hours": {"start": "21:00", "end": "08:00"}, "timezone": {"default": "UTC", "regions": {"DE": "Europe/Berlin"}}'
run quiet --until 2026-06-12T00:00:00Z
# The last three: --until moves the clock to 00:00Z in one step, past the
# deferrals' ends, into the next night (02:00 in Berlin, 00:00 UTC): a
# trigger is decided when it would go out, so they wait again.
expect quiet <<'EOF'
pinged deferred quiet_hours quiet_hours null 2026-06-10T15:00:00.000Z
pinged sent none  push null
pinged sent none  push null
pinged sent none  push null
pinged deferred quiet_hours quiet_hours null 2026-06-11T06:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-12T06:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-12T08:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-12T08:00:00.000Z
EOF

# The spread: a deferral lands within [end, end + spread), by user.
policy spread '"quiet_hours": {"start": "21:00", "end": "08:00", "spread": "30m"}'
for u in $(seq 1 40); do ev "s$u" hello 2026-06-10T00:00:00Z; ev "s$u" ping 2026-06-10T23:00:00Z; done > "$tmp/spread.events"
run spread
untils=$(grep -o '"until":"[^"]*"' "$tmp/spread.decisions" | sort -u)
n=$(echo "$untils" | wc -l)
inside=$(echo "$untils" | grep -c '"until":"2026-06-11T08:[0-2][0-9]:')
[ "$n" -gt 30 ] && [ "$inside" -eq "$n" ] && ok || bad "spread: $n distinct ends, $inside within 08:00-08:30"

# A deferred trigger survives the end of a run: the next run over the same
# state directory sends it when its time comes.
policy restart '"quiet_hours": {"start": "21:00", "end": "08:00"}'
{ ev u hello 2026-06-10T00:00:00Z; ev u ping 2026-06-10T22:00:00Z; } > "$tmp/restart.events"
run restart
"$cuepoint" file --quiet --machines "$machines" --policies "$tmp/restart.policy.json" \
    --input <(ev v hello 2026-06-11T09:00:00Z) --state-dir "$tmp/restart.state" \
    --decisions "$tmp/restart.decisions" > "$tmp/restart.out2" 2> "$tmp/restart.err2" || bad "restart: second run exit $?"
grep -c '"outcome":"sent"' "$tmp/restart.decisions" | grep -qx 1 && grep -q '"type":"pinged","subject":"u"' "$tmp/restart.out2" && ok \
    || { bad "restart: the deferred trigger did not go out in the next run"; cat "$tmp/restart.decisions"; }

# ---- DST change days --------------------------------------------------------
policy dst_la_spring '"quiet_hours": {"start": "21:00", "end": "02:30"}'
{
    ev u hello 2026-03-08T00:00:00Z '{"timezone":"America/Los_Angeles"}'
    ev u ping 2026-03-08T09:00:00Z          # 01:00 PST; 02:30 does not exist: 03:00 PDT
} > "$tmp/dst_la_spring.events"
run dst_la_spring
expect dst_la_spring <<'EOF'
pinged deferred quiet_hours quiet_hours null 2026-03-08T10:00:00.000Z
EOF
policy dst_la_fall '"quiet_hours": {"start": "22:00", "end": "01:30"}'
{
    ev a hello 2026-11-01T00:00:00Z '{"timezone":"America/Los_Angeles"}'
    ev a ping 2026-11-01T08:15:00Z          # 01:15 PDT: ends at the first 01:30 (08:30Z)
    ev b hello 2026-11-01T00:00:00Z '{"timezone":"America/Los_Angeles"}'
    ev b ping 2026-11-01T09:15:00Z          # 01:15 PST: ends at the second 01:30 (09:30Z)
} > "$tmp/dst_la_fall.events"
run dst_la_fall
# a's deferral comes up when b's ping moves the clock to 01:15 PST, inside
# the window again: it waits for the second 01:30 too.
expect dst_la_fall <<'EOF'
pinged deferred quiet_hours quiet_hours null 2026-11-01T08:30:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-11-01T09:30:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-11-01T09:30:00.000Z
EOF
policy dst_berlin '"quiet_hours": {"start": "22:00", "end": "02:30"}'
{
    ev a hello 2026-03-28T00:00:00Z '{"timezone":"Europe/Berlin"}'
    ev a ping 2026-03-29T00:30:00Z          # 01:30 CET; 02:30 does not exist: 03:00 CEST (01:00Z)
    ev b hello 2026-10-24T00:00:00Z '{"timezone":"Europe/Berlin"}'
    ev b ping 2026-10-25T00:15:00Z          # 02:15 CEST: the first 02:30 (00:30Z)
    ev c hello 2026-10-24T00:00:00Z '{"timezone":"Europe/Berlin"}'
    ev c ping 2026-10-25T01:15:00Z          # 02:15 CET: the second 02:30 (01:30Z)
} > "$tmp/dst_berlin.events"
run dst_berlin
# One clock for all three: each deferral comes up at the next event, which
# here is always inside the window (02:00 CEST, 02:15 CEST, 02:15 CET), so
# it waits again, each time for the end that follows.
expect dst_berlin <<'EOF'
pinged deferred quiet_hours quiet_hours null 2026-03-29T01:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-10-24T00:30:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-10-25T00:30:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-10-25T00:30:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-10-25T01:30:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-10-25T01:30:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-10-25T01:30:00.000Z
EOF

# ---- caps ------------------------------------------------------------------
policy caps '"caps": [{"name": "two-a-day", "window": "24h", "max": 2},
          {"name": "promo-local-day", "calendar": "day", "max": 1, "classes": ["promotional"]},
          {"name": "ping-deferred", "window": "24h", "max": 2, "triggers": ["reminder"], "on_cap": "defer"}]'
{
    ev u hello 2026-06-10T00:00:00Z '{"timezone":"Asia/Tokyo"}'
    ev u ping 2026-06-10T01:00:00Z
    ev u ping 2026-06-10T02:00:00Z
    ev u ping 2026-06-10T03:00:00Z          # third in 24h: dropped
    ev u ping 2026-06-11T01:30:00Z          # the first left the window: out
    ev t hello 2026-06-10T00:00:00Z '{"timezone":"Asia/Tokyo"}'
    ev t promo 2026-06-10T05:00:00Z         # 14:00 JST
    ev t promo 2026-06-10T14:00:00Z         # 23:00 JST, same local day: dropped
    ev t promo 2026-06-10T16:00:00Z         # 01:00 JST, the next local day (same UTC day): out
} > "$tmp/caps.events"
run caps
expect caps <<'EOF'
pinged sent none  push null
pinged sent none  push null
pinged suppressed cap two-a-day null null
promo sent none  push null
promo suppressed cap promo-local-day null null
promo sent none  push null
pinged sent none  push null
EOF
policy defer '"caps": [{"name": "one-a-day", "window": "24h", "max": 1, "on_cap": "defer"}]'
{
    ev u hello 2026-06-10T00:00:00Z
    ev u ping 2026-06-10T01:00:00Z
    ev u ping 2026-06-10T02:00:00Z          # waits until the first leaves the window
} > "$tmp/defer.events"
run defer --until 2026-06-12T00:00:00Z
expect defer <<'EOF'
pinged sent none  push null
pinged deferred cap one-a-day null 2026-06-11T01:00:00.000Z
pinged sent none  push null
EOF
policy cooldown '"caps": [{"name": "reminder-cooldown", "cooldown": "48h", "triggers": ["reminder"]}]'
{
    ev u hello 2026-06-10T00:00:00Z
    # A timer's trigger is decided when the partition's time passes it.
    ev u arm 2026-06-10T00:00:00Z           # due 01:00Z
    ev u hello 2026-06-10T01:30:00Z         # the first reminder: out at 01:30Z
    ev u arm 2026-06-10T02:00:00Z           # due 03:00Z
    ev u hello 2026-06-10T03:30:00Z         # the second: within 48 h of the first
    ev u arm 2026-06-12T02:00:00Z           # due 03:00Z, decided at --until: 70 h later
} > "$tmp/cooldown.events"
run cooldown --until 2026-06-13T00:00:00Z
expect cooldown <<'EOF'
reminder sent none  push null
reminder suppressed cooldown reminder-cooldown null null
reminder sent none  push null
EOF

# The higher class takes the last slot, whatever order the machine emits in.
policy compete '"caps": [{"name": "one", "window": "24h", "max": 1}]'
{ ev u hello 2026-06-10T00:00:00Z; ev u both 2026-06-10T01:00:00Z; } > "$tmp/compete.events"
run compete
expect compete <<'EOF'
pinged sent none  push null
promo suppressed cap one null null
EOF

# ---- consent ---------------------------------------------------------------
consent='"consent": {"event": {"type": "consent_changed", "channel": "/props/channel", "granted": "/props/granted"},
  "mute_event": {"type": "channel_muted", "channel": "/props/channel", "muted": "/props/muted"},
  "defaults": [{"regions": ["EU"], "mode": "opt_in"}, {"regions": ["*"], "mode": "opt_out"}]}'
policy consent "$consent, \"caps\": [{\"name\": \"none\", \"window\": \"24h\", \"max\": 0}]"
{
    ev eu hello 2026-06-10T00:00:00Z '{"region":"EU"}'
    ev eu alert 2026-06-10T01:00:00Z        # transactional passes the cap, not missing consent
    ev eu consent_changed 2026-06-10T02:00:00Z '' '{"channel":"email","granted":true}'
    ev eu alert 2026-06-10T03:00:00Z        # push not consented: falls back to email
    ev us hello 2026-06-10T00:00:00Z '{"region":"US"}'
    ev us alert 2026-06-10T01:00:00Z        # opt-out region: push until withdrawn
    ev us ping 2026-06-10T01:30:00Z         # lifecycle: capped (max 0)
    ev us channel_muted 2026-06-10T02:00:00Z '' '{"channel":"push","muted":true}'
    ev us alert 2026-06-10T03:00:00Z        # push muted: email
} > "$tmp/consent.events"
run consent
expect consent <<'EOF'
alert suppressed no_consent consent null null
alert sent none  push null
pinged suppressed cap none null null
alert sent none  email null
alert sent none  email null
EOF

# An opt-out while a trigger waits for quiet hours to end: it never goes out.
policy optout "$consent, \"quiet_hours\": {\"start\": \"21:00\", \"end\": \"08:00\"}"
{
    ev u hello 2026-06-10T00:00:00Z '{"region":"US"}'
    ev u ping 2026-06-10T22:00:00Z          # deferred to 08:00Z
    ev u consent_changed 2026-06-10T23:00:00Z '' '{"channel":"push","granted":false}'
    ev u hello 2026-06-11T12:00:00Z         # time passes the window's end
} > "$tmp/optout.events"
run optout --until 2026-06-12T00:00:00Z
expect optout <<'EOF'
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged cancelled consent_withdrawn consent null null
EOF
[ ! -s "$tmp/optout.out" ] && ok || bad "optout: a trigger went out after the opt-out"

# A cancellation carries the experiment and variant that the trigger's other
# records carry (they were missing from it).
policy cancel_exp "$consent, \"quiet_hours\": {\"start\": \"21:00\", \"end\": \"08:00\"}, \"experiments\": [{\"name\": \"copy\", \"triggers\": [\"pinged\"], \"variants\": {\"a\": 1}}]"
{
    ev u hello 2026-06-10T00:00:00Z '{"region":"US"}'
    ev u ping 2026-06-10T22:00:00Z          # deferred to 08:00Z
    ev u consent_changed 2026-06-10T23:00:00Z '' '{"channel":"push","granted":false}'
} > "$tmp/cancel_exp.events"
run cancel_exp
expect cancel_exp <<'EOF'
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged cancelled consent_withdrawn consent null null
EOF
[ "$(grep -c '"experiment":"copy","variant":"a"' "$tmp/cancel_exp.decisions")" -eq 2 ] && ok \
    || { bad "cancel_exp: a record lacks the experiment and variant"; cat "$tmp/cancel_exp.decisions"; }

# ---- late timers -----------------------------------------------------------
for late in drop mark; do
    policy "late_$late" "\"defaults\": {\"class\": \"lifecycle\", \"channels\": [\"push\"], \"max_age\": \"1d\", \"late\": \"$late\"}"
    sed -i 's/ "defaults": {"class": "lifecycle", "channels": \["push"\]},//' "$tmp/late_$late.policy.json"
    {
        ev u hello 2026-06-10T00:00:00Z
        ev u arm 2026-06-10T00:00:00Z       # due 01:00Z
        ev u hello 2026-06-13T00:00:00Z     # the partition's time reaches it three days late
    } > "$tmp/late_$late.events"
    run "late_$late"
done
expect late_drop <<'EOF'
reminder suppressed too_late max_age null null
EOF
expect late_mark <<'EOF'
reminder sent none  push null
EOF
grep -q '"policy":{"channel":"push","class":"lifecycle","late":true}' "$tmp/late_mark.out" && ok \
    || { bad "late mark: the trigger is not marked late"; cat "$tmp/late_mark.out"; }

# A late trigger let through marked that must wait first (here for the
# night to end) waits, marked, instead of being dropped for its age, and
# keeps the mark in the stored state until it goes out in a later run
# (issue 14: it went out without data.policy.late).
policy late_wait '"defaults": {"class": "lifecycle", "channels": ["push"], "max_age": "1d", "late": "mark"}, "quiet_hours": {"start": "21:00", "end": "08:00"}'
sed -i 's/ "defaults": {"class": "lifecycle", "channels": \["push"\]},//' "$tmp/late_wait.policy.json"
{
    ev u hello 2026-06-10T00:00:00Z
    ev u arm 2026-06-10T00:00:00Z           # due 01:00Z
    ev u hello 2026-06-13T22:00:00Z         # reached three days late, at night
} > "$tmp/late_wait.events"
run late_wait
expect late_wait <<'EOF'
reminder deferred quiet_hours quiet_hours null 2026-06-14T08:00:00.000Z
EOF
grep -q '"outcome":"deferred".*"late":true' "$tmp/late_wait.decisions" && ok || bad "late_wait: the deferral is not marked late"
"$cuepoint" file --quiet --machines "$machines" --policies "$tmp/late_wait.policy.json" \
    --input <(ev v hello 2026-06-14T09:00:00Z) --state-dir "$tmp/late_wait.state" \
    --decisions "$tmp/late_wait.decisions" > "$tmp/late_wait.out2" 2> "$tmp/late_wait.err2" || bad "late_wait: second run exit $?"
grep -q '"type":"reminder".*"policy":{"channel":"push","class":"lifecycle","late":true}' "$tmp/late_wait.out2" && ok \
    || { bad "late_wait: the trigger went out without its late mark"; cat "$tmp/late_wait.out2" "$tmp/late_wait.decisions"; }

# A timer's trigger is decided when the partition's time reaches it, which
# is when it goes out: a deadline due at 18:19 in Los Angeles, before the
# quiet hours, that the clock reaches only with an event at 22:27, inside
# them, waits until 08:00 (issue 14: it went out at 22:27, decided "at"
# 18:19). The same in a live run that follows the wall clock: the trigger is
# decided at the tick that reaches it.
policy due '"quiet_hours": {"start": "21:00", "end": "08:00"}'
{
    ev u hello 2026-06-10T23:00:00Z '{"timezone":"America/Los_Angeles"}'
    ev u arm 2026-06-11T00:19:00Z           # 17:19 PDT: due 18:19 PDT (01:19Z)
    ev u ping 2026-06-11T05:27:00Z          # 22:27 PDT: time reaches the timer
} > "$tmp/due.events"
run due --until 2026-06-11T16:00:00Z
expect due <<'EOF'
reminder deferred quiet_hours quiet_hours null 2026-06-11T15:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-11T15:00:00.000Z
reminder sent none  push null
pinged sent none  push null
EOF
grep -q '"trigger":"reminder","outcome":"deferred".*"decided_at":"2026-06-11T05:27:00.000Z"' "$tmp/due.decisions" && ok \
    || bad "the reminder was not decided when the clock reached it"
# Every send is decided at the time it goes out, outside the quiet hours:
# here, at --until (09:00 PDT).
[ "$(grep '"outcome":"sent"' "$tmp/due.decisions" | grep -c '"decided_at":"2026-06-11T16:00:00.000Z"')" -eq 2 ] && ok \
    || { bad "sends not decided at the time they went out"; cat "$tmp/due.decisions"; }

# A consent event that names no known channel is a dead letter, not ignored.
policy badconsent "$consent"
{
    ev u hello 2026-06-10T00:00:00Z '{"region":"US"}'
    ev u consent_changed 2026-06-10T01:00:00Z '' '{"channel":"Push","granted":false}'
    ev u consent_changed 2026-06-10T02:00:00Z '' '{"channel":"push","granted":"no"}'
} > "$tmp/badconsent.events"
run badconsent
[ "$(grep -c '"reason":"bad_field"' "$tmp/badconsent.state/dead-letters.jsonl" 2>/dev/null)" -eq 2 ] && ok \
    || bad "bad consent events were not dead letters"

# ---- experiments -------------------------------------------------------------
policy exp '"experiments": [{"name": "copy", "triggers": ["pinged"], "holdout": 0.5, "variants": {"a": 1, "b": 3}}]'
for u in $(seq 1 400); do ev "x$u" hello 2026-06-10T00:00:00Z; ev "x$u" ping 2026-06-10T01:00:00Z; done > "$tmp/exp.events"
run exp
held=$(grep -c '"outcome":"suppressed","reason":"holdout","rule":"copy"' "$tmp/exp.decisions")
va=$(grep -c '"variant":"a"}' "$tmp/exp.out"); vb=$(grep -c '"variant":"b"}' "$tmp/exp.out")
[ "$held" -gt 160 ] && [ "$held" -lt 240 ] && [ "$vb" -gt "$((2 * va))" ] && [ $((held + va + vb)) -eq 400 ] && ok \
    || bad "experiment: $held held out, $va a, $vb b of 400 (holdout 0.5, a:b 1:3)"
# The same split again, from scratch: assignment is a hash, not a draw.
cp "$tmp/exp.out" "$tmp/exp.first"
run exp
cmp -s "$tmp/exp.out" "$tmp/exp.first" && ok || bad "experiment: a second run assigned differently"

# ---- erasure -----------------------------------------------------------------
policy erase '"erasure": {"event": "user_erased"}, "quiet_hours": {"start": "21:00", "end": "08:00"}'
{
    ev gone hello 2026-06-10T00:00:00Z '{"timezone":"Europe/Berlin"}'
    ev gone ping 2026-06-10T22:00:00Z       # deferred
    ev gone user_erased 2026-06-10T23:00:00Z
    ev stays hello 2026-06-10T00:00:00Z
} > "$tmp/erase.events"
run erase --until 2026-06-12T00:00:00Z
grep -q '^{"outcome":"erased","partition":0,"offset":3,"decided_at":"2026-06-10T23:00:00.000Z","deferred_dropped":1}$' "$tmp/erase.decisions" && ok \
    || { bad "erasure record"; cat "$tmp/erase.decisions"; }
grep -q '^{"trigger_id":"[0-9a-f]*","outcome":"cancelled","reason":"erased","decided_at":"2026-06-10T23:00:00.000Z"}$' "$tmp/erase.decisions" && ok \
    || bad "the erased user's deferred trigger has no final decision"
grep -v '"outcome":"deferred"' "$tmp/erase.decisions" | grep -q gone && bad "an erasure record names the user" || ok
"$cuepoint" state get gone --machines "$machines" --state-dir "$tmp/erase.state" > /dev/null 2>&1
[ $? -eq 1 ] && ok || bad "an erased user still has state"
[ ! -s "$tmp/erase.out" ] && ok || bad "an erased user's deferred trigger went out"
"$cuepoint" state get stays --machines "$machines" --state-dir "$tmp/erase.state" > /dev/null 2>&1 && ok \
    || bad "erasing one user touched another"
# Offline: `cuepoint erase USER` on a state directory.
"$cuepoint" erase stays --state-dir "$tmp/erase.state" > "$tmp/erase.offline" 2>&1
[ $? -eq 0 ] && grep -qx '{"outcome":"erased","partition":0,"offline":true}' "$tmp/erase.offline" && ok \
    || { bad "cuepoint erase"; cat "$tmp/erase.offline"; }
"$cuepoint" state get stays --machines "$machines" --state-dir "$tmp/erase.state" > /dev/null 2>&1
[ $? -eq 1 ] && ok || bad "cuepoint erase left the user's state"
"$cuepoint" erase stays --state-dir "$tmp/erase.state" > /dev/null 2>&1
[ $? -eq 1 ] && ok || bad "erasing a user twice: exit 1 expected"

# ---- every trigger that went out has exactly one "sent" decision -----------------
for name in quiet caps defer consent exp late_mark; do
    grep -o '"id":"[0-9a-f]*"' "$tmp/$name.out" | sed 's/"id"://' | sort > "$tmp/$name.ids.out"
    grep '"outcome":"sent"' "$tmp/$name.decisions" | grep -o '"trigger_id":"[0-9a-f]*"' | sed 's/"trigger_id"://' | sort > "$tmp/$name.ids.sent"
    [ -s "$tmp/$name.ids.out" ] && cmp -s "$tmp/$name.ids.out" "$tmp/$name.ids.sent" && ok \
        || bad "$name: triggers out and 'sent' decisions differ"
    grep '"outcome":"suppressed","reason":"none"' "$tmp/$name.decisions" && bad "$name: a suppression without a reason" || ok
done

# ---- boundaries, mutes, scopes, zone changes (README "Message policies") ----
# Quiet hours are [start, end): 20:59:59.999 goes out, 21:00 waits, and a
# trigger at 08:00 (or a deferral ending then) goes out.
policy edge_quiet '"quiet_hours": {"start": "21:00", "end": "08:00"}'
{
    ev u hello 2026-06-10T00:00:00Z
    ev u ping 2026-06-10T20:59:59.999Z      # out
    ev u ping 2026-06-10T21:00:00.000Z      # waits until 08:00
    ev v hello 2026-06-10T00:00:00Z
    ev v ping 2026-06-11T07:59:59.999Z      # waits until 08:00
    ev w hello 2026-06-10T00:00:00Z
    ev w ping 2026-06-11T08:00:00.000Z      # out; u's and v's deferrals come due with it
} > "$tmp/edge_quiet.events"
run edge_quiet
expect edge_quiet <<'EOF'
pinged sent none  push null
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged sent none  push null
pinged sent none  push null
pinged sent none  push null
EOF

# A rolling window frees at its oldest counted send + the window; a cooldown
# lets the next out when the gap equals it.
policy edge_window '"caps": [{"name": "one-a-day", "window": "24h", "max": 1}]'
{
    ev u hello 2026-06-10T00:00:00Z
    ev u ping 2026-06-10T01:00:00.000Z      # out
    ev u ping 2026-06-11T00:59:59.999Z      # the first is still in the window
    ev u ping 2026-06-11T01:00:00.000Z      # the first left it: out
} > "$tmp/edge_window.events"
run edge_window
expect edge_window <<'EOF'
pinged sent none  push null
pinged suppressed cap one-a-day null null
pinged sent none  push null
EOF
policy edge_cooldown '"caps": [{"name": "ping-cooldown", "cooldown": "48h", "triggers": ["pinged"]}]'
{
    ev u hello 2026-06-09T00:00:00Z
    ev u ping 2026-06-10T00:00:00.000Z      # out
    ev u ping 2026-06-11T23:59:59.999Z      # a gap just short of 48 h
    ev u ping 2026-06-12T00:00:00.000Z      # a gap of 48 h: out
} > "$tmp/edge_cooldown.events"
run edge_cooldown
expect edge_cooldown <<'EOF'
pinged sent none  push null
pinged suppressed cooldown ping-cooldown null null
pinged sent none  push null
EOF

# A mute cancels a waiting trigger as a withdrawal does, once no channel is
# left: u keeps email and gets the trigger there when the night ends; v
# mutes both.
cat > "$tmp/mute.policy.json" <<EOF
{"defaults": {"class": "lifecycle", "channels": ["push", "email"]},
 "quiet_hours": {"start": "21:00", "end": "08:00"}, $consent}
EOF
{
    ev u hello 2026-06-10T00:00:00Z '{"region":"US"}'
    ev u ping 2026-06-10T22:00:00Z          # waits until 08:00
    ev u channel_muted 2026-06-10T23:00:00Z '' '{"channel":"push","muted":true}'
    ev v hello 2026-06-10T00:00:00Z '{"region":"US"}'
    ev v ping 2026-06-10T22:00:00Z
    ev v channel_muted 2026-06-10T23:00:00Z '' '{"channel":"push","muted":true}'
    ev v channel_muted 2026-06-10T23:30:00Z '' '{"channel":"email","muted":true}'
} > "$tmp/mute.events"
run mute --until 2026-06-11T09:00:00Z
expect mute <<'EOF'
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged deferred quiet_hours quiet_hours null 2026-06-11T08:00:00.000Z
pinged cancelled consent_withdrawn consent null null
pinged sent none  email null
EOF
grep -q '"outcome":"cancelled".*"decided_at":"2026-06-10T23:30:00.000Z"' "$tmp/mute.decisions" && ok \
    || bad "mute: not cancelled when the last channel was muted"

# Scopes: each list given narrows a cap (machines AND triggers AND classes),
# any entry of a list matches. "and" covers promo only if it is also
# lifecycle, which it is not: it covers nothing. "either" covers m's pinged
# and alert (alert is transactional: it bypasses caps).
policy scopes '"caps": [{"name": "and", "window": "24h", "max": 0, "triggers": ["promo"], "classes": ["lifecycle"]},
          {"name": "either", "window": "24h", "max": 0, "machines": ["m"], "triggers": ["pinged", "alert"]}]'
{
    ev u hello 2026-06-10T00:00:00Z
    ev u ping 2026-06-10T01:00:00Z
    ev u promo 2026-06-10T02:00:00Z
    ev u alert 2026-06-10T03:00:00Z
} > "$tmp/scopes.events"
run scopes
expect scopes <<'EOF'
pinged suppressed cap either null null
promo sent none  push null
alert sent none  push null
EOF

# A calendar cap counts the sends on the local day of the zone the user has
# when the trigger is decided. u's first promo is at 10:00 in Tokyo; u moves
# to Los Angeles, where that send fell on the day before: a second promo goes
# out at 03:00 (19:00 the same day in Tokyo). t moves the other way: its
# first (23:00 in Los Angeles) falls on 15:00 of Tokyo's next day, the day
# its second is decided on: capped, though in Los Angeles it was a new day.
policy zonechange '"caps": [{"name": "promo-local-day", "calendar": "day", "max": 1, "classes": ["promotional"]}]'
{
    ev u hello 2026-06-10T00:00:00Z '{"timezone":"Asia/Tokyo"}'
    ev u promo 2026-06-10T01:00:00Z         # 10:00 JST 06-10 (18:00 PDT 06-09)
    ev u hello 2026-06-10T09:00:00Z '{"timezone":"America/Los_Angeles"}'
    ev u promo 2026-06-10T10:00:00Z         # 03:00 PDT 06-10: out
    ev t hello 2026-06-10T00:00:00Z '{"timezone":"America/Los_Angeles"}'
    ev t promo 2026-06-11T06:00:00Z         # 23:00 PDT 06-10 (15:00 JST 06-11)
    ev t hello 2026-06-11T07:00:00Z '{"timezone":"Asia/Tokyo"}'
    ev t promo 2026-06-11T08:00:00Z         # 17:00 JST 06-11 (01:00 PDT 06-11): capped
} > "$tmp/zonechange.events"
run zonechange
expect zonechange <<'EOF'
promo sent none  push null
promo sent none  push null
promo sent none  push null
promo suppressed cap promo-local-day null null
EOF

# ---- --only: one journey runs, the policy file still names them all -------
# (rough edges: the policy was checked against the --only subset and refused
# deploy/policies.json, which names every journey, with exit 78.)
"$cuepoint" generate --users 200 --events 2000 --seed 9 > "$tmp/only.events"
"$cuepoint" file --quiet --machines "$root/deploy/machines" --policies "$root/deploy/policies.json" \
    --only milestones --input "$tmp/only.events" --state-dir "$tmp/only.state" > "$tmp/only.out" 2> "$tmp/only.err"
rc=$?
[ $rc -eq 0 ] && [ -s "$tmp/only.out" ] && ! grep -qv '"machine":"milestones"' "$tmp/only.out" && ok \
    || { bad "--only milestones with the example policies: exit $rc"; cat "$tmp/only.err"; }
# The same through replay (a file replay needs no broker with --file-partitions).
"$cuepoint" replay --quiet --set machines.dir="$root/deploy/machines" --set policies="$root/deploy/policies.json" \
    --only milestones --input "$tmp/only.events" --file-partitions 2 --state-dir "$tmp/only.replay" \
    > "$tmp/only.rout" 2> "$tmp/only.rerr"
rc=$?
[ $rc -eq 0 ] && [ -s "$tmp/only.rout" ] && ok || { bad "replay --only milestones with the example policies: exit $rc"; cat "$tmp/only.rerr"; }
"$cuepoint" file --quiet --machines "$root/deploy/machines" --policies "$root/deploy/policies.json" \
    --only milestone --input /dev/null --state-dir "$tmp/only2.state" > /dev/null 2> "$tmp/only2.err"
rc=$?
[ $rc -eq 78 ] && grep -q "no machine named 'milestone' in '[^']*' (did you mean 'milestones'?)" "$tmp/only2.err" && ok \
    || { bad "--only milestone: exit $rc, no suggestion"; cat "$tmp/only2.err"; }

# ---- a bad policy file is an error naming the place -------------------------
policy badcap '"caps": [{"name": "x", "window": "soon", "max": 1}]'
"$cuepoint" file --machines "$machines" --policies "$tmp/badcap.policy.json" --input /dev/null --state-dir "$tmp/bad.state" 2> "$tmp/badcap.err" > /dev/null
[ $? -eq 78 ] && grep -q 'badcap.policy.json: \$.caps\[0\].window: expected a positive duration such as .*, not ..soon' "$tmp/badcap.err" && ok \
    || { bad "a bad cap window: exit/message"; cat "$tmp/badcap.err"; }
policy badzone '"timezone": {"default": "Europe/Berlim"}'
"$cuepoint" file --machines "$machines" --policies "$tmp/badzone.policy.json" --input /dev/null --state-dir "$tmp/bad.state" 2> "$tmp/badzone.err" > /dev/null
[ $? -eq 78 ] && grep -q "unknown time zone 'Europe/Berlim'" "$tmp/badzone.err" && ok || { bad "a bad zone"; cat "$tmp/badzone.err"; }

finish
