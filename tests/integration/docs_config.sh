#!/bin/bash
# The configuration reference cannot drift from the code: every key the
# binary knows (what `run --print-config` prints for a minimal config, and
# the key list src/config.c accepts) has a row in docs/configuration.md's
# table, and that row's default is the one --print-config shows (a name
# derived from application.id may be written <application.id>-...).
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
command -v jq >/dev/null || { echo "jq is not installed (scripts/deps.sh --test installs it)"; exit 1; }
ref=${DOCS_CONFIG_REF:-$root/docs/configuration.md}

# An empty config: every setting at its default (machines.dir's is
# deploy/machines under the working directory).
echo '{}' > "$tmp/c.json"
if (cd "$root" && "$cuepoint" run --config "$tmp/c.json" --print-config) > "$tmp/dump.json" 2> "$tmp/err"; then ok
else bad "--print-config of a minimal config failed: $(cat "$tmp/err")"; fi
jq -r 'keys_unsorted[]' "$tmp/dump.json" > "$tmp/keys" || bad "--print-config is not JSON"
sed -n '/^static const char \*const keys\[\] = {/,/};/p' "$root/src/config.c" |
    grep -o '"[^"]*"' | tr -d '"' > "$tmp/source_keys"
[ "$(wc -l < "$tmp/source_keys")" -ge 30 ] && ok || bad "cannot read the key list in src/config.c"
sort -u "$tmp/keys" "$tmp/source_keys" > "$tmp/all"

# "KEY<TAB>DEFAULT CELL" for each key named in the first cell of a table row.
awk -F '|' '/^\| `/ {
    n = split($2, parts, "`")
    for (i = 2; i <= n; i += 2) print parts[i] "\t" $3
}' "$ref" > "$tmp/rows"

while read -r key; do
    cell=$(awk -F '\t' -v k="$key" '$1 == k { print $2; exit }' "$tmp/rows")
    if [ -z "$cell" ]; then
        bad "config key $key is not in $ref"
        continue
    fi
    ok
    kind=$(jq -r --arg k "$key" '.[$k] | type' "$tmp/dump.json")
    case $kind in
    string | number | boolean)
        want=$(jq -r --arg k "$key" '.[$k]' "$tmp/dump.json")
        [ -z "$want" ] && want='""'
        derived="<application.id>${want#cuepoint}"
        if grep -qF -- "$want" <<<"$cell" || grep -qF -- "$derived" <<<"$cell"; then ok
        else bad "config key $key: --print-config's default is $want, $ref says:$cell"; fi
        ;;
    object)
        [ "$key" = kafka ] && continue # the clients' sub-objects: nothing set
        for v in $(jq -r --arg k "$key" '.[$k][]' "$tmp/dump.json"); do
            grep -qF -- "$v" <<<"$cell" && ok || bad "config key $key: default $v not in $ref"
        done
        ;;
    esac
done < "$tmp/all"
finish
