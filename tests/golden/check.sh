#!/bin/bash
# `cuepoint check` on one broken journey file per error and lint class
# (check/expected.tsv: file, level, code, JSON path): each must be reported with
# its file, path and code, errors with exit 65 and warnings with exit 0 (65
# under --strict); the example journeys must check clean.
set -uo pipefail
. "$(dirname "$0")/../lib.sh" "$1"
here=$(cd "$(dirname "$0")" && pwd)

while IFS=$'\t' read -r file level code path; do
    f="$here/check/$file"
    "$cuepoint" check "$f" > "$tmp/out" 2>&1; rc=$?
    want=0; [ "$level" = error ] && want=65
    [ "$rc" -eq "$want" ] && ok || bad "$file: exit $rc, expected $want"
    grep -qF "$f: $path: $level: " "$tmp/out" && grep -qF "[$code]" "$tmp/out" && ok \
        || { bad "$file: no '$level' at '$path' with [$code]:"; cat "$tmp/out"; }
    if [ "$level" = warning ]; then
        "$cuepoint" check --strict "$f" > /dev/null 2>&1; rc=$?
        [ "$rc" -eq 65 ] && ok || bad "$file: --strict exit $rc, expected 65"
    fi
done < "$here/check/expected.tsv"

grep -q "did you mean 'goto'" <("$cuepoint" check "$here/check/unknown-key.json") && ok || bad "no suggestion for a misspelt key"
grep -q "did you mean 'z'" <("$cuepoint" check "$here/check/unknown-name.json") && ok || bad "no suggestion for a misspelt state"

"$cuepoint" check --strict "$root"/deploy/machines/*.json > "$tmp/out" 2>&1 && ok || { bad "examples do not check clean:"; cat "$tmp/out"; }
"$cuepoint" check "$root/deploy/machines" > "$tmp/out" 2>&1 && grep -q "^4 file(s): 0 error(s), 0 warning(s)" "$tmp/out" && ok \
    || { bad "checking the directory:"; cat "$tmp/out"; }
"$cuepoint" check /nonexistent.json > /dev/null 2>&1; [ $? -eq 66 ] && ok || bad "missing file: expected exit 66"

finish
