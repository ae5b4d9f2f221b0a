#!/bin/bash
# Erasure that is physical in `cuepoint run`: the policy's erasure event on
# the input topic, once its commit is done, leaves the user's id in no file of
# the state directory (grep -a over every file RocksDB keeps there), and the
# changelog gets the user's tombstone. Before the erasure the id is found
# there, so the search can fail.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
cd "$tmp"
broker_start --partitions 2 --topic events --topic er-triggers --topic er-app-changelog:2
gone=zq7-kafka-erase-me-4711
ev() { echo "{\"event_id\":\"$1-$2\",\"user_id\":\"$1\",\"type\":\"$2\",\"ts\":$3}"; }
{
    ev "$gone" signed_up 1767603600000
    ev "$gone" file_uploaded 1767603660000
    "$cuepoint" generate --users 500 --events 5000 --seed 4
} > a.jsonl
produce a.jsonl events || exit 1
echo '{"erasure": {"event": "user_erased"}}' > policies.json
config er er-app events er-triggers
sed -i "s|\"wall.clock.advance\": false,|\"wall.clock.advance\": false, \"changelog.enabled\": true, \"policies\": \"$tmp/policies.json\",|" er.json

start_run er er.1.log --stop-at-end
wait_run 90 || { bad "first run: exit $?"; tail -3 er.1.log; }
grep -r -a -l -F "$gone" er.state > where 2>/dev/null && ok \
    || bad "control: the user's id is not in the state directory before its erasure"

# The erasure, at the wall clock's time (after every generated event, and
# not ahead of its record's timestamp), then a few more events.
ev "$gone" user_erased "$(date +%s)000" > b.jsonl
"$cuepoint" generate --users 50 --events 200 --seed 5 --start "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> b.jsonl
produce b.jsonl events || exit 1
start_run er er.2.log --stop-at-end
wait_run 90 || { bad "second run: exit $?"; tail -3 er.2.log; }
if grep -r -a -l -F "$gone" er.state > where 2>/dev/null; then
    bad "the erased user's id is still in: $(tr '\n' ' ' < where)"
else ok; fi
"$cuepoint" state get "$gone" --machines "$machines" --state-dir er.state > /dev/null 2>&1
[ $? -eq 1 ] && ok || bad "the erased user still has state"
# The changelog's last record for the user is its tombstone (no value).
kcat -b "$bootstrap" -C -t er-app-changelog -o beginning -e -q -f '%k\t%S\n' 2>/dev/null |
    awk -F '\t' -v k="$gone" '$1 == k { last = $2 } END { print last }' > last
[ "$(cat last)" = "-1" ] && ok || bad "no tombstone for the user on the changelog (last value size: $(cat last))"
# ... marked as an erasure's, so that the copies made from the changelog
# erase the user physically too.
kcat -b "$bootstrap" -C -t er-app-changelog -o beginning -e -q -f '%k\t%h\n' 2>/dev/null |
    awk -F '\t' -v k="$gone" '$1 == k { last = $2 } END { print last }' > last.h
grep -q "cuepoint.erasure=true" last.h && ok || bad "the tombstone is not marked as an erasure's: '$(cat last.h)'"

# A fresh instance restores the partition from the changelog: the user's old
# records, then the marked tombstone. Its copy holds the id in no file either.
mv er.state er.state.owner
start_run er er.3.log --stop-at-end
wait_run 90 || { bad "restoring run: exit $?"; tail -3 er.3.log; }
grep -q '"restore finished"' er.3.log && ok || bad "the fresh instance restored nothing"
if grep -r -a -l -F "$gone" er.state > where 2>/dev/null; then
    bad "the restored copy still holds the erased id in: $(tr '\n' ' ' < where)"
else ok; fi
finish
