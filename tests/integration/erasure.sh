#!/bin/bash
# Erasure that is physical: once a user's erasure (the policy's erasure event
# in file mode, or `cuepoint erase` offline) has been committed, no file of
# the state directory holds the user's id, searched as bytes (grep -a) in
# every file RocksDB keeps there: WAL, table files, MANIFEST, LOG. Each case
# first checks that the id IS there before the erasure, so the search can
# fail. cuepoint's own outputs in the directory (dead-letters.jsonl, the
# file-source notes) are checked on their own: the user has no dead letter.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
machines="$root/deploy/machines"
policies="$tmp/policies.json"
echo '{"erasure": {"event": "user_erased"}}' > "$policies"

# holds DIR ID: whether any RocksDB file of DIR holds ID (cuepoint's own
# output files are left out: see above).
holds() {
    grep -r -a -l -F --exclude=dead-letters.jsonl --exclude='file-source*.txt' "$2" "$1" > "$tmp/where" 2>/dev/null
}

ev() { # user type time
    echo "{\"event_id\":\"$1-$2-$3\",\"user_id\":\"$1\",\"type\":\"$2\",\"ts\":\"$3\",\"props\":{\"project_id\":\"p-$1\",\"due_at\":\"2026-06-01T00:00:00Z\"}}"
}

file_run() { # state-dir input [options]
    local st=$1 in=$2; shift 2
    "$cuepoint" file --quiet --machines "$machines" --policies "$policies" --input "$in" \
        --state-dir "$st" --decisions "$tmp/decisions.jsonl" "$@" > /dev/null 2> "$tmp/err" \
        || { bad "file run on $in: exit $?"; cat "$tmp/err"; }
}

# A stream big enough that RocksDB flushes and compacts on its own (state in
# several table files, at more than one level), with the user in it early.
gone=zq7-erase-me-4711
stays=zq7-keep-me-0815
{
    ev "$gone" signup 2026-01-05T09:00:00Z
    ev "$gone" project_created 2026-01-05T09:01:00Z
    ev "$gone" deadline_set 2026-01-05T09:02:00Z
    ev "$stays" signup 2026-01-05T09:00:00Z
    "$cuepoint" generate --users 30000 --events 100000 --start 2026-01-05T09:03:00Z
} > "$tmp/a.events"
st="$tmp/state"
file_run "$st" "$tmp/a.events" --set commit.records=5000
holds "$st" "$gone" && ok || bad "control: the user's id is not in the state directory before its erasure"
ls "$st"/*.sst > /dev/null 2>&1 && ok || bad "control: no table files: the case tests only the WAL"

# The erasure, in the middle of more events (the user's state is in table
# files, the erasure's deletion in the WAL and a memtable).
"$cuepoint" generate --users 2000 --events 6000 --seed 7 --start 2026-03-01T00:00:00Z > "$tmp/gen"
{
    head -n 3000 "$tmp/gen"
    # At the time of the last event before it, so that it is not late.
    at=$(sed -n '3000s/.*"ts":\([0-9]*\).*/\1/p' "$tmp/gen")
    echo "{\"user_id\":\"$gone\",\"type\":\"user_erased\",\"ts\":$at}"
    tail -n +3001 "$tmp/gen"
} > "$tmp/b.events"
file_run "$st" "$tmp/b.events" --set commit.records=5000
if holds "$st" "$gone"; then bad "the erased user's id is still in: $(cat "$tmp/where")"; else ok; fi
grep -q -F "$gone" "$st/dead-letters.jsonl" 2>/dev/null && bad "dead letters name the user" || ok
grep -q '"outcome":"erased"' "$tmp/decisions.jsonl" && ok || bad "no erasure decision"
"$cuepoint" state get "$gone" --machines "$machines" --state-dir "$st" > /dev/null 2>&1
[ $? -eq 1 ] && ok || bad "the erased user still has state"
"$cuepoint" state get "$stays" --machines "$machines" --state-dir "$st" > /dev/null 2>&1 && ok \
    || bad "erasing one user touched another"

# The same user back after the erasure is a new user, and only that is kept.
ev "$gone" signup 2026-04-01T00:00:00Z > "$tmp/c.events"
file_run "$st" "$tmp/c.events"
"$cuepoint" state get "$gone" --machines "$machines" --state-dir "$st" > "$tmp/back.json" 2>&1 \
    && grep -q '"last_event":"2026-04-01T00:00:00.000Z"' "$tmp/back.json" && ok \
    || { bad "a user back after the erasure"; cat "$tmp/back.json"; }

# Offline: `cuepoint erase` on a closed state directory.
holds "$st" "$stays" && ok || bad "control: the other user is not in the state directory"
"$cuepoint" erase "$stays" --state-dir "$st" > "$tmp/offline" 2>&1 \
    && grep -qx '{"outcome":"erased","partition":0,"offline":true}' "$tmp/offline" && ok \
    || { bad "cuepoint erase"; cat "$tmp/offline"; }
if holds "$st" "$stays"; then bad "cuepoint erase left the id in: $(cat "$tmp/where")"; else ok; fi
n=$("$cuepoint" state dump --machines "$machines" --state-dir "$st" 2>/dev/null | wc -l)
[ "$n" -gt 15000 ] && ok || bad "cuepoint erase lost other users: $n left"

finish
