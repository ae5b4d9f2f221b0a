#!/bin/bash
# `cuepoint offsets show|reset` against the dev broker, with kcat producing:
# show reads committed = stored = high watermark after a run; reset refuses
# while the group is active (a local instance on state.dir, and a member seen
# by joining); a backward reset drops the state and the next run rebuilds it
# to exactly the file mode's state over the records from the new offsets; a
# second state directory that never saw the reset applies its marker on
# assignment; the reset is written to the changelog (on by default), so an
# instance with an empty state directory restores the reset, not the state
# before it; a forward reset skips records and keeps the users.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

broker_start --partitions 4
"$cuepoint" generate --users 300 --events 3000 --seed 11 > "$tmp/events.jsonl"
produce "$tmp/events.jsonl" events || exit 1
# The dev broker holds a departed member for about session.timeout.ms before
# the next join completes: keep it short, and the probe's wait above it.
fast='"session.timeout.ms": 4000, "heartbeat.interval.ms": 500'
config a off events triggers "$fast"
config b off events triggers "$fast"
config c off events triggers "$fast"
off() { "$cuepoint" offsets "$@" --set startup.timeout.ms=15000; }

# ---- show after a run to the end ---------------------------------------------
start_run a "$tmp/a.1.log" --stop-at-end
wait_run 60 || bad "first run: exit $?"
off show --config "$tmp/a.json" --json > "$tmp/show.1" 2> "$tmp/show.1.err" || bad "show: exit $?"
[ "$(wc -l < "$tmp/show.1")" -eq 4 ] && ok || { bad "show --json: $(wc -l < "$tmp/show.1") lines"; cat "$tmp/show.1.err"; }
bad_rows=$(awk -F'[:,]' '{ for (i = 1; i < NF; i++) v[$i] = $(i + 1);
    if (v["\"committed\""] != v["\"high_watermark\""] || v["\"stored\""] != v["\"high_watermark\""] ||
        v["\"lag\""] != 0) n++ } END { print n + 0 }' "$tmp/show.1")
[ "$bad_rows" -eq 0 ] && ok || { bad "show: committed = stored = high watermark, lag 0 expected"; cat "$tmp/show.1"; }
off show --config "$tmp/a.json" > "$tmp/show.table" 2>/dev/null
grep -q '^PARTITION .*LAG' "$tmp/show.table" && ok || bad "show: no table header"
highs=$(sed -E 's/.*"high_watermark":([0-9]+).*/\1/' "$tmp/show.1" | tr '\n' ' ')
echo "high watermarks: $highs"

# ---- refused while the group is active ------------------------------------------
start_run a "$tmp/a.live.log"
[ "$(wait_assigned "$tmp/a.live.log" 4)" -ge 0 ] || bad "live run: not assigned"
off reset --config "$tmp/a.json" --to-earliest > "$tmp/r.lock.out" 2> "$tmp/r.lock.err"
rc=$?
[ "$rc" -eq 75 ] && grep -q "in use by a running instance" "$tmp/r.lock.err" && ok \
    || { bad "reset beside a running instance: exit $rc, 75 expected"; cat "$tmp/r.lock.err"; }
off reset --config "$tmp/a.json" --state-dir "$tmp/elsewhere" --to-earliest > "$tmp/r.grp.out" 2> "$tmp/r.grp.err"
rc=$?
# The probe either sees the member's partitions or, when the mock's rebalance
# takes longer than the probe waits (it does under load), gets nothing: both
# are refusals.
[ "$rc" -eq 75 ] && grep -q -e "refused: group off is active" -e "refused: group off assigned nothing to a probe" "$tmp/r.grp.err" && ok \
    || { bad "reset while the group has a member: exit $rc, 75 expected"; cat "$tmp/r.grp.err"; }
[ ! -d "$tmp/elsewhere" ] && ok || bad "a refused reset created a state directory"
addr=$(cat "$tmp/a.admin")
sleep 1
kill -0 "$run_pid" 2>/dev/null && curl -sf "http://$addr/healthz" > /dev/null && ok \
    || bad "the live run did not survive the refused reset"
kill -TERM "$run_pid"
wait_run 30 || bad "live run: SIGTERM gave exit $?"
off show --config "$tmp/a.json" --json > "$tmp/show.2" 2>/dev/null
cmp -s "$tmp/show.1" "$tmp/show.2" && ok || { bad "a refused reset moved something"; diff "$tmp/show.1" "$tmp/show.2"; }

# ---- backward reset: state dropped, rebuilt as from scratch ---------------------
cp -r "$tmp/a.state" "$tmp/b.state" # another instance's store, that never sees the tool
read -r h0 h1 h2 h3 <<< "$highs"
t0=$((h0 / 2)); t1=$((h1 / 3)); t2=0; t3=$((h3 - 5))
cl_count() { kcat -b "$bootstrap" -C -t off-changelog -o beginning -e -q -f '%p\n' 2>/dev/null | sort | uniq -c | tr -s ' \n' ' '; }
cl_before=$(cl_count)
off reset --config "$tmp/a.json" --to-offset "0:$t0,1:$t1,2:$t2,3:$t3" --dry-run > "$tmp/r.dry" 2>&1 || bad "dry run: exit $?"
grep -q "dry run" "$tmp/r.dry" && ok || bad "dry run: no plan"
[ "$(grep -c 'changelog at [0-9]*: backward, [0-9]* users to tombstone' "$tmp/r.dry")" -eq 4 ] && ok \
    || { bad "dry run: not 4 partitions' changelog users to tombstone"; cat "$tmp/r.dry"; }
[ -n "$cl_before" ] && [ "$(cl_count)" = "$cl_before" ] && ok \
    || bad "the dry run wrote to the changelog: '$cl_before' records per partition, then '$(cl_count)'"
# A reset to a time on the dev broker: the mock answers no offset for any time,
# and the tool says so rather than moving every partition to its end silently.
off reset --config "$tmp/a.json" --to-time 2026-01-01T00:00:00Z --dry-run > "$tmp/r.time" 2>&1 \
    || bad "--to-time dry run: exit $?"
grep -q "mock cluster (cuepoint dev-broker) answers every time this way" "$tmp/r.time" && ok \
    || { bad "--to-time on the dev broker: no hint that the mock cannot look records up by time"; cat "$tmp/r.time"; }
off show --config "$tmp/a.json" --json > "$tmp/show.3" 2>/dev/null
cmp -s "$tmp/show.1" "$tmp/show.3" && ok || bad "a dry run moved something"
off reset --config "$tmp/a.json" --to-offset "0:$t0,1:$t1,2:$t2,3:$t3" > "$tmp/r.back" 2> "$tmp/r.back.err"
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "backward reset: exit $rc"; cat "$tmp/r.back.err"; }
cat "$tmp/r.back"
[ "$(grep -c 'backward, [0-9]* users dropped' "$tmp/r.back")" -eq 4 ] && ok || bad "backward reset: not 4 partitions dropped"
[ "$(grep -c 'changelog at [0-9]*: backward, [0-9]* users tombstoned' "$tmp/r.back")" -eq 4 ] && ok \
    || bad "backward reset: not 4 partitions' users tombstoned in the changelog"
# The dry run's plan for the changelog is what the reset then did.
plan=$(grep -o 'changelog at [0-9]*: backward, [0-9]* users' "$tmp/r.dry")
[ "$plan" = "$(grep -o 'changelog at [0-9]*: backward, [0-9]* users' "$tmp/r.back")" ] && ok \
    || { bad "the dry run's changelog plan is not what the reset did"; echo "$plan"; }
off show --config "$tmp/a.json" --json > "$tmp/show.4" 2>/dev/null
want="$t0 $t1 $t2 $t3 "
got_c=$(sed -E 's/.*"committed":([0-9]+).*/\1/' "$tmp/show.4" | tr '\n' ' ')
got_s=$(sed -E 's/.*"stored":([0-9]+).*/\1/' "$tmp/show.4" | tr '\n' ' ')
[ "$got_c" = "$want" ] && [ "$got_s" = "$want" ] && ok \
    || bad "after the reset: committed '$got_c', stored '$got_s', '$want' expected"
grep -q '"reset":"cuepoint-reset:' "$tmp/show.4" && ok || bad "show: no reset marker"

# The expected state: the file mode over each partition's records from its new
# offset, after that many unusable lines so that positions match offsets.
mkdir -p "$tmp/events.split"
kcat -b "$bootstrap" -C -t events -o beginning -e -q -f '%p %s\n' 2>/dev/null |
    awk -v d="$tmp/events.split" '{ p = $1; sub(/^[0-9]+ /, ""); print > (d "/" p ".all") }'
ts=("$t0" "$t1" "$t2" "$t3")
for p in 0 1 2 3; do
    { for _ in $(seq "${ts[$p]}"); do echo 'skipped'; done; tail -n +$((ts[p] + 1)) "$tmp/events.split/$p.all"; } \
        > "$tmp/events.split/$p.jsonl"
    rm "$tmp/events.split/$p.all"
done
reference events 3000 off back
# A fresh instance (empty state directory) restores the reset from the
# changelog: no users, each partition at its new offset, from where it
# rebuilds the state exactly like the file mode.
start_run c "$tmp/c.log" --stop-at-end
wait_run 60 || bad "fresh instance after the reset: exit $?"
[ "$(grep -c '"restore finished"' "$tmp/c.log")" -eq 4 ] && ok || bad "the fresh instance did not restore 4 partitions"
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/c.state" | sort > "$tmp/c.state.dump"
[ -s "$tmp/c.state.dump" ] && cmp -s "$tmp/c.state.dump" "$tmp/back.ref.state" && ok \
    || { bad "a fresh instance after the reset: the state is not the file mode's from the new offsets";
         diff "$tmp/back.ref.state" "$tmp/c.state.dump" | head -4 | cut -c1-300; }
read -r h0 h1 h2 h3 <<< "$highs"
want_n=$((h0 - t0 + h1 - t1 + h2 - t2 + h3 - t3))
grep -q "\"msg\":\"stopped\",\"consumed\":$want_n," "$tmp/c.log" && ok \
    || { bad "the fresh instance did not read exactly the $want_n records after the reset"; grep '"stopped"' "$tmp/c.log"; }
start_run a "$tmp/a.2.log" --stop-at-end
wait_run 60 || bad "run after the reset: exit $?"
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/a.state" | sort > "$tmp/a.2.state"
[ -s "$tmp/a.2.state" ] && cmp -s "$tmp/a.2.state" "$tmp/back.ref.state" && ok \
    || { bad "after a backward reset, the state is not the file mode's from the new offsets";
         diff "$tmp/back.ref.state" "$tmp/a.2.state" | head -4 | cut -c1-300; }
grep -q '"reset applied"' "$tmp/a.2.log" && bad "the tool's store applied its reset twice" || ok

# ---- the other instance applies the marker on assignment -------------------------
start_run b "$tmp/b.log" --stop-at-end
wait_run 60 || bad "the other instance's run: exit $?"
[ "$(grep -c '"reset applied".*"state":"dropped"' "$tmp/b.log")" -eq 4 ] && ok \
    || { bad "the other instance did not apply the reset on 4 partitions"; grep -i reset "$tmp/b.log" | head -3; }
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/b.state" | sort > "$tmp/b.state.dump"
cmp -s "$tmp/b.state.dump" "$tmp/back.ref.state" && ok \
    || { bad "the other instance's state is not the file mode's from the new offsets";
         diff "$tmp/back.ref.state" "$tmp/b.state.dump" | head -4 | cut -c1-300; }
off show --config "$tmp/b.json" --json > "$tmp/show.5" 2>/dev/null
[ "$(grep -c '"lag":0,"reset":"cuepoint-reset:' "$tmp/show.5")" -eq 4 ] && ok \
    || { bad "the marker did not survive the runs' commits"; cat "$tmp/show.5"; }

# ---- forward reset: the new records are skipped, the users kept -------------------
"$cuepoint" generate --users 50 --events 400 --seed 12 > "$tmp/more.jsonl"
produce "$tmp/more.jsonl" events || exit 1
off reset --config "$tmp/a.json" --to-latest > "$tmp/r.fwd" 2> "$tmp/r.fwd.err"
rc=$?
[ "$rc" -eq 0 ] && [ "$(grep -c 'forward, [0-9]* users kept' "$tmp/r.fwd")" -ge 3 ] && ok \
    || { bad "forward reset: exit $rc"; cat "$tmp/r.fwd" "$tmp/r.fwd.err"; }
start_run a "$tmp/a.3.log" --stop-at-end
wait_run 60 || bad "run after the forward reset: exit $?"
grep -q '"msg":"stopped","consumed":0,"triggers":0' "$tmp/a.3.log" && ok \
    || { bad "after --to-latest the run consumed records"; grep '"stopped"' "$tmp/a.3.log"; }
"$cuepoint" state dump --machines "$machines" --state-dir "$tmp/a.state" | sort > "$tmp/a.3.state"
cmp -s "$tmp/a.3.state" "$tmp/a.2.state" && ok || bad "a forward reset changed the users' state"

# ---- a reset right after a stop, with the default session.timeout.ms -----------
# The group counts a member that just stopped for up to session.timeout.ms
# (the dev broker always does): the probe waits through it rather than
# refusing, and leaving another rebalance behind, before it is over.
config s slow events triggers
start_run s "$tmp/s.log" --stop-at-end
wait_run 60 || bad "run of group slow: exit $?"
"$cuepoint" offsets reset --config "$tmp/s.json" --to-earliest > "$tmp/r.slow" 2> "$tmp/r.slow.err"
rc=$?
[ "$rc" -eq 0 ] && [ "$(grep -c 'backward, [0-9]* users dropped' "$tmp/r.slow")" -eq 4 ] && ok \
    || { bad "reset right after a stop: exit $rc"; cat "$tmp/r.slow" "$tmp/r.slow.err"; }

# ---- usage -----------------------------------------------------------------------
"$cuepoint" offsets reset --config "$tmp/a.json" > /dev/null 2>&1
[ $? -eq 64 ] && ok || bad "reset without a --to-* option: not 64"
"$cuepoint" offsets reset --config "$tmp/a.json" --to-offset 9:1 > /dev/null 2> "$tmp/u.err"
[ $? -eq 64 ] && grep -q "partition 9" "$tmp/u.err" && ok || bad "reset of a partition the topic lacks: not 64"

finish
