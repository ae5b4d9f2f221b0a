#!/bin/bash
# A file run killed with SIGKILL part way, then resumed with --resume, gives
# exactly the trigger ids of one uninterrupted run (repeats allowed: those made
# after the last commit before the kill), and the same final state.
set -uo pipefail
. "$(dirname "$0")/../lib.sh" "$1"
cd "$tmp"
opts=(--machines "$root/deploy/machines" --quiet --set commit.records=2000 --until 2026-06-01T00:00:00Z)

"$cuepoint" generate --users 5000 --events 100000 --seed 11 > events.jsonl
"$cuepoint" file "${opts[@]}" --input events.jsonl --state-dir whole > whole.jsonl || bad "whole run"

"$cuepoint" file "${opts[@]}" --input events.jsonl --state-dir cut > cut1.jsonl &
pid=$!
# Killed once it has started on the file (a busy machine may take longer than
# the pause to get there), part way through.
for _ in $(seq 300); do [ -e cut/file-source.txt ] && break; sleep 0.1; done
sleep "${KILL_AFTER:-0.4}"
kill -9 "$pid" 2>/dev/null && killed=1 || killed=0
wait "$pid" 2>/dev/null
"$cuepoint" file "${opts[@]}" --input events.jsonl --state-dir cut --resume > cut2.jsonl || bad "resume run"
echo "killed mid-run: $killed; triggers before the kill: $(wc -l < cut1.jsonl), after: $(wc -l < cut2.jsonl)"

ids() { grep -o '"id":"[0-9a-f]\{32\}"' "$@" | sed 's/.*:"//; s/"//' | sort; }
ids whole.jsonl > whole.ids
ids cut1.jsonl cut2.jsonl | sort -u > cut.ids
cmp -s whole.ids cut.ids && ok || { bad "trigger ids differ after kill and resume"; diff whole.ids cut.ids | head -5; }
dups=$(( $(ids cut1.jsonl cut2.jsonl | wc -l) - $(wc -l < cut.ids) ))
echo "repeated deliveries after the kill: $dups"

"$cuepoint" state dump --state-dir whole --machines "$root/deploy/machines" > whole.state
"$cuepoint" state dump --state-dir cut --machines "$root/deploy/machines" > cut.state
cmp -s whole.state cut.state && ok || { bad "final state differs"; diff whole.state cut.state | head -4; }

head -5 events.jsonl > other.jsonl
"$cuepoint" file "${opts[@]}" --input other.jsonl --state-dir cut --resume > /dev/null 2> err.txt
[ $? -eq 64 ] && grep -q "nothing to resume" err.txt && ok || { bad "resuming another source"; cat err.txt; }

finish
