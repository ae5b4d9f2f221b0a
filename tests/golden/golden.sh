#!/bin/bash
# Golden tests: each directory here with events.jsonl and case.env (ONLY=machine,
# UNTIL=time, MACHINES=a directory of journeys relative to the case, default
# deploy/machines; any may be empty) is run through `cuepoint file`, and the
# triggers must equal expected.jsonl byte for byte. The same input is then run
# again over a fresh state directory, and split in two runs over one state
# directory: both must give the same bytes. A case with expected-dead.jsonl
# must give those dead letters (without their source file and line, which
# differ between the whole and the split runs); any other has none.
# Usage: golden.sh CUEPOINT [CASE...]; UPDATE_GOLDEN=1 rewrites expected.jsonl
# (and expected-dead.jsonl where there is one).
set -uo pipefail
cuepoint=$(realpath "$1"); shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
cases=("$@"); [ ${#cases[@]} -eq 0 ] && cases=($(cd "$here" && ls -d */ | tr -d / ))

check() { # name, expected, actual
    if cmp -s "$2" "$3"; then passed=$((passed+1)); else
        failed=$((failed+1)); echo "FAIL $1"; diff "$2" "$3" | head -20; fi
}

for c in "${cases[@]}"; do
    dir=$here/$c
    [ -f "$dir/events.jsonl" ] && [ -f "$dir/case.env" ] || continue
    ONLY=""; UNTIL=""; MACHINES=""; . "$dir/case.env"
    machines=$root/deploy/machines; [ -n "$MACHINES" ] && machines=$dir/$MACHINES
    opts=(--machines "$machines" --quiet)
    [ -n "$ONLY" ] && opts+=(--only "$ONLY")
    until=(); [ -n "$UNTIL" ] && until=(--until "$UNTIL")
    run() { "$cuepoint" file "${opts[@]}" "$@"; }

    run --input "$dir/events.jsonl" --state-dir "$tmp/$c.1" "${until[@]}" > "$tmp/$c.out1" || { echo "FAIL $c: exit $?"; failed=$((failed+1)); continue; }
    if [ "${UPDATE_GOLDEN:-}" = 1 ]; then cp "$tmp/$c.out1" "$dir/expected.jsonl"; fi
    [ -f "$dir/expected.jsonl" ] || { echo "FAIL $c: no expected.jsonl"; failed=$((failed+1)); continue; }
    check "$c: triggers differ from expected.jsonl" "$dir/expected.jsonl" "$tmp/$c.out1"

    run --input "$dir/events.jsonl" --state-dir "$tmp/$c.2" "${until[@]}" > "$tmp/$c.out2"
    check "$c: a second run differs" "$tmp/$c.out1" "$tmp/$c.out2"

    n=$(wc -l < "$dir/events.jsonl"); half=$((n / 2))
    head -n "$half" "$dir/events.jsonl" > "$tmp/$c.a"; tail -n +"$((half + 1))" "$dir/events.jsonl" > "$tmp/$c.b"
    run --input "$tmp/$c.a" --state-dir "$tmp/$c.3" > "$tmp/$c.out3"
    run --input "$tmp/$c.b" --state-dir "$tmp/$c.3" "${until[@]}" >> "$tmp/$c.out3"
    check "$c: split into two runs over one state directory differs" "$tmp/$c.out1" "$tmp/$c.out3"
    for st in "$tmp/$c.1" "$tmp/$c.3"; do
        if [ -f "$dir/expected-dead.jsonl" ]; then
            touch "$st/dead-letters.jsonl"
            sed -E 's/,"source":"([^"\\]|\\.)*"(,"line":[0-9]+)?//' "$st/dead-letters.jsonl" > "$st.dead"
            if [ "${UPDATE_GOLDEN:-}" = 1 ] && [ "$st" = "$tmp/$c.1" ]; then cp "$st.dead" "$dir/expected-dead.jsonl"; fi
            check "$c: dead letters differ from expected-dead.jsonl ($(basename "$st"))" "$dir/expected-dead.jsonl" "$st.dead"
        elif [ -s "$st/dead-letters.jsonl" ]; then
            echo "FAIL $c: unexpected dead letters:"; cat "$st/dead-letters.jsonl"; failed=$((failed+1)); fi
    done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
