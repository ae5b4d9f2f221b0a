#!/bin/bash
# A file mixing good lines with every kind of bad line must give exactly the
# triggers of the good lines alone, and every bad line must be in the
# dead-letter file with its line number and reason (badinput/expected-dead.tsv).
set -uo pipefail
. "$(dirname "$0")/../lib.sh" "$1"
here=$(cd "$(dirname "$0")" && pwd)

opts=(--machines "$root/deploy/machines" --until 2026-03-20T00:00:00Z --set event.max.bytes=1024 --quiet)
"$cuepoint" file "${opts[@]}" --input "$here/badinput/good.jsonl" --state-dir "$tmp/good" > "$tmp/good.out" \
    || bad "good input: exit $?"
"$cuepoint" file "${opts[@]}" --input "$here/badinput/mixed.jsonl" --state-dir "$tmp/mixed" \
    --dead-letters "$tmp/dead.jsonl" > "$tmp/mixed.out" || bad "mixed input: exit $?"

[ -s "$tmp/good.out" ] && ok || bad "the good lines gave no triggers"
cmp -s "$tmp/good.out" "$tmp/mixed.out" && ok || { bad "triggers differ with bad lines mixed in"; diff "$tmp/good.out" "$tmp/mixed.out" | head; }
[ ! -s "$tmp/good/dead-letters.jsonl" ] && ok || bad "the good lines produced dead letters"

expected=$(wc -l < "$here/badinput/expected-dead.tsv")
got=$(wc -l < "$tmp/dead.jsonl")
[ "$got" -eq "$expected" ] && ok || bad "expected $expected dead letters, got $got"
while IFS=$'\t' read -r line reason; do
    if grep -q "\"reason\":\"$reason\".*\"line\":$line," "$tmp/dead.jsonl"; then ok
    else bad "line $line: no dead letter with reason $reason"; fi
done < "$here/badinput/expected-dead.tsv"
# Each dead letter keeps the record itself (truncated only when over the limit).
grep -q '"raw":"not json at all"' "$tmp/dead.jsonl" && ok || bad "dead letter lost the raw record"
grep -q '"reason":"too_large".*"truncated":true' "$tmp/dead.jsonl" && ok || bad "oversize record not marked truncated"

finish
