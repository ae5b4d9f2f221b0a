#!/bin/bash
# Real-world input in the file mode: a generated stream with hostile records
# mixed in (times years ahead in several formats, times in the wrong unit,
# absurd numbers, invalid UTF-8 in ids and values, NULs, keys named twice).
# Every hostile record is a dead letter with the reason it deserves, the
# triggers are byte for byte those of the clean stream, and every record is
# counted once. Then the ways one input comes twice: the same file again
# (refused), and events re-sent under new positions (duplicates, no new id).
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
cd "$tmp"
# The reader's clock, the reference of records that carry no Kafka timestamp.
export CUEPOINT_CLOCK=2026-06-01T00:00:00Z
opts=(--machines "$root/deploy/machines" --quiet)

"$cuepoint" generate --users 400 --events 8000 --seed 21 > clean.jsonl

# reason, then the record (printf format: \xHH are raw bytes): the records
# every input test shares, and times ahead of this run's clock. Each names a
# user of the stream with an event that would change its journeys if applied.
{
    cat "$root/tests/golden/hostile/records.tsv"
    printf 'future_time\t{"event_id":"h31","user_id":"u0000004","type":"deadline_set","ts":"2026-06-03T12:00:00Z","props":{"project_id":"x4","due_at":"2026-06-10T00:00:00Z"}}\n'
    printf 'future_time\t{"event_id":"h32","user_id":"u0000005","type":"file_uploaded","ts":"2027-01-01 00:00:00-07:00"}\n'
    printf 'future_time\t{"event_id":"h33","user_id":"u0000002","type":"signed_up","ts":1780358400000}\n'
} > hostile.txt
n_hostile=$(wc -l < hostile.txt)

# Mixed: a hostile record after every 250 clean lines.
{
    i=0
    while IFS=$'\t' read -r _ rec; do
        sed -n "$((i * 250 + 1)),$(((i + 1) * 250))p" clean.jsonl
        printf '%b\n' "$rec"
        i=$((i + 1))
    done < hostile.txt
    tail -n +$((i * 250 + 1)) clean.jsonl
} > mixed.jsonl
[ "$(wc -l < mixed.jsonl)" -eq $((8000 + n_hostile)) ] && ok || bad "mixed stream has $(wc -l < mixed.jsonl) lines"

"$cuepoint" file "${opts[@]}" --input clean.jsonl --state-dir s-clean --until 2026-06-01T00:00:00Z \
    --stats clean.stats > clean.out || bad "clean run"
"$cuepoint" file "${opts[@]}" --input mixed.jsonl --state-dir s-mixed --until 2026-06-01T00:00:00Z \
    --stats mixed.stats --dead-letters mixed.dead > mixed.out || bad "mixed run"
[ -s clean.out ] && cmp -s clean.out mixed.out && ok \
    || { bad "triggers differ with the hostile records mixed in"; diff clean.out mixed.out | head -4; }

# The clean stream's own dead letters (none expected) plus one per hostile record, with its reason.
field() { grep -o "\"$1\":[^,}]*" | head -n1 | cut -d: -f2- | tr -d '"'; }
[ ! -s s-clean/dead-letters.jsonl ] && ok || bad "the clean stream has dead letters"
[ "$(wc -l < mixed.dead)" -eq "$n_hostile" ] && ok || bad "$(wc -l < mixed.dead) dead letters, $n_hostile expected"
i=0
while IFS=$'\t' read -r want _; do
    i=$((i + 1))
    got=$(sed -n "${i}p" mixed.dead | field reason)
    line=$(sed -n "${i}p" mixed.dead | field line)
    [ "$got" = "$want" ] && [ "$line" -eq $((i * 251)) ] && ok \
        || bad "hostile record $i (line $((i * 251))): reason $got at line $line, expected $want"
done < hostile.txt
# A record that is not UTF-8 keeps its bytes: base64, not a JSON string.
sed -n 's/.*"line":\([0-9]*\).*"raw_base64":"\([^"]*\)".*/\1 \2/p' mixed.dead > b64.txt
[ "$(wc -l < b64.txt)" -eq 5 ] && ok || bad "$(wc -l < b64.txt) dead letters in base64, 5 expected (the raw bytes that are not UTF-8)"
while read -r line b64; do
    cmp -s <(printf '%s' "$b64" | base64 -d) <(sed -n "${line}p" mixed.jsonl | tr -d '\n') && ok \
        || bad "line $line: the dead letter's bytes are not the record's"
done < b64.txt
grep -q '"error":"event time 1767600000 at /ts looks like epoch seconds' mixed.dead && ok \
    || bad "the epoch-seconds dead letter does not name the unit"
grep -q 'years\|days ahead of the reader.s clock' mixed.dead && ok || bad "no future_time message says how far ahead"

# Every record counted once: applied, duplicate or dead letter.
for s in clean mixed; do
    r=$(field records < $s.stats); a=$(field applied < $s.stats)
    d=$(field duplicates < $s.stats); x=$(field dead_letters < $s.stats)
    [ "$r" -eq $((a + d + x)) ] && ok || bad "$s: records $r != applied $a + duplicates $d + dead $x"
done

# The same file again over the same state: refused, nothing made.
"$cuepoint" file "${opts[@]}" --input mixed.jsonl --state-dir s-mixed > again.out 2> again.err
rc=$?
[ $rc -eq 64 ] && [ ! -s again.out ] && grep -q -- "--resume" again.err && ok \
    || { bad "running the same file again: exit $rc, $(wc -l < again.out) triggers"; cat again.err; }
cp mixed.jsonl copy.jsonl
"$cuepoint" file "${opts[@]}" --input copy.jsonl --state-dir s-mixed > again.out 2> again.err
[ $? -eq 64 ] && [ ! -s again.out ] && ok || bad "the same file under another name was not refused"
# ... also after another input in between, and from stdin; two inputs that
# only share a first line are two inputs.
"$cuepoint" generate --users 5 --events 20 --seed 99 --start 2026-05-01T00:00:00Z > other.jsonl
"$cuepoint" file "${opts[@]}" --input other.jsonl --state-dir s-mixed > /dev/null || bad "another input"
"$cuepoint" file "${opts[@]}" --input mixed.jsonl --state-dir s-mixed > again.out 2> again.err
[ $? -eq 64 ] && grep -q "already been run" again.err && ok || bad "A, B, A: the second A was not refused"
"$cuepoint" file "${opts[@]}" --input other.jsonl --state-dir s-mixed > again.out 2> again.err
[ $? -eq 64 ] && ok || bad "A, B, B: the second B was not refused"
{ head -n 1 other.jsonl; "$cuepoint" generate --users 5 --events 20 --seed 98 --start 2026-05-02T00:00:00Z; } > shares.jsonl
"$cuepoint" file "${opts[@]}" --input shares.jsonl --state-dir s-mixed > /dev/null 2> shares.err \
    && ok || { bad "an input sharing only its first line was refused"; cat shares.err; }
"$cuepoint" file "${opts[@]}" --state-dir s-mixed < mixed.jsonl > again.out 2> again.err
[ $? -eq 64 ] && ok || bad "the same input on stdin was not refused"

# Events sent again under new positions, within the lateness and past it: no
# trigger id the first run did not make, and the copies within the lateness
# are duplicates. (No --until: the stream ends at its last event.)
ids() { grep -o '"id":"[0-9a-f]\{32\}"' "$@" | sort -u; }
"$cuepoint" file "${opts[@]}" --input clean.jsonl --state-dir s-live > live.out || bad "live run"
tail -n 400 clean.jsonl > resent.jsonl
"$cuepoint" file "${opts[@]}" --input resent.jsonl --state-dir s-live --stats resent.stats \
    > resent.out || bad "re-sent run"
new=$(comm -13 <(ids live.out) <(ids resent.out) | wc -l)
[ "$new" -eq 0 ] && ok || bad "re-sent events made $new trigger ids the first run did not"
dups=$(field duplicates < resent.stats); late=$(grep -o '"late":[0-9]*' resent.stats | cut -d: -f2)
[ "${dups:-0}" -gt 0 ] && [ $((dups + ${late:-0})) -eq 400 ] && ok \
    || bad "re-sent: $dups duplicates and ${late:-0} late, 400 re-sent"
# The same stream with the copies inside it gives the clean stream's triggers.
{ head -n 6000 clean.jsonl; sed -n 5990,6000p clean.jsonl; tail -n +6001 clean.jsonl; } > retried.jsonl
"$cuepoint" file "${opts[@]}" --input retried.jsonl --state-dir s-retried > retried.out || bad "retried run"
cmp -s live.out retried.out && ok || bad "a producer's retries inside the stream changed the triggers"

finish
