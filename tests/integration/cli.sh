#!/bin/bash
# The command line as a user meets it: help texts, exit codes, error messages
# that name what and where, the state tools, the generator and the demo.
set -uo pipefail
. "$(dirname "$0")/../lib.sh" "$1"
cd "$tmp"
expect_exit() { # want, description, command...
    local want=$1 what=$2; shift 2
    "$@" > "$tmp/out" 2> "$tmp/err"; local got=$?
    if [ "$got" -eq "$want" ]; then passed=$((passed+1)); else
        failed=$((failed+1)); echo "FAIL $what: exit $got, expected $want"; head -5 "$tmp/err"; fi
}
expect_in() { # file, text, description
    if grep -qF -- "$2" "$1"; then passed=$((passed+1)); else
        failed=$((failed+1)); echo "FAIL $3: '$2' not in $(basename "$1"):"; head -5 "$1"; fi
}

for c in file check graph state generate demo; do
    expect_exit 0 "$c --help" "$cuepoint" "$c" --help
    expect_in "$tmp/out" "Usage: cuepoint $c" "$c --help"
done
expect_exit 0 "--help" "$cuepoint" --help
expect_exit 64 "no command" "$cuepoint"
expect_exit 64 "unknown command" "$cuepoint" fiel
expect_in "$tmp/err" "did you mean 'file'" "unknown command suggests"
expect_exit 64 "unknown option" "$cuepoint" file --inptu x
expect_exit 66 "missing input" "$cuepoint" file --machines "$root/deploy/machines" --input /nonexistent.jsonl
expect_exit 78 "missing machines directory (configuration)" "$cuepoint" file --machines /nonexistent --input /dev/null

echo '{"state.dri": "x"}' > bad.json
expect_exit 78 "misspelt config key" "$cuepoint" file --config bad.json --input /dev/null
expect_in "$tmp/err" "did you mean 'state.dir'" "config typo suggests"
expect_in "$tmp/err" "bad.json" "config error names the file"

mkdir -p broken && cp "$root/deploy/machines/onboarding.json" broken/
sed -i 's/"goto": "awaiting_invite"/"goto": "awaiting_invit"/' broken/onboarding.json
expect_exit 78 "broken machine" "$cuepoint" file --machines broken --input /dev/null
expect_in "$tmp/err" "awaiting_invit" "machine error names the state"
expect_in "$tmp/err" "did you mean 'awaiting_invite'" "machine error suggests"
expect_exit 65 "check a broken machine" "$cuepoint" check broken/onboarding.json
expect_in "$tmp/out" 'broken/onboarding.json: $.states.awaiting_upload.on[0].goto' "check names the path"
expect_exit 0 "check the examples" "$cuepoint" check "$root"/deploy/machines/*.json
expect_exit 0 "graph" "$cuepoint" graph "$root/deploy/machines/deadlines.json"
expect_in "$tmp/out" "digraph" "graph is DOT"

# The generator is deterministic, and its output runs through the file mode.
"$cuepoint" generate --users 50 --seed 7 > gen1.jsonl
"$cuepoint" generate --users 50 --seed 7 > gen2.jsonl
"$cuepoint" generate --users 50 --seed 8 > gen3.jsonl
cmp -s gen1.jsonl gen2.jsonl && passed=$((passed+1)) || { failed=$((failed+1)); echo "FAIL generate not deterministic"; }
cmp -s gen1.jsonl gen3.jsonl && { failed=$((failed+1)); echo "FAIL seed ignored"; } || passed=$((passed+1))
[ "$(wc -l < gen1.jsonl)" -eq 500 ] && passed=$((passed+1)) || { failed=$((failed+1)); echo "FAIL generate count"; }

expect_exit 0 "file over generated events" "$cuepoint" file --machines "$root/deploy/machines" \
    --input gen1.jsonl --output trig.jsonl --state-dir st --until 2026-06-01T00:00:00Z --stats stats.json
expect_in "$tmp/err" "500 events read, 500 applied, 0 dead-lettered" "summary counts"
expect_in stats.json '"records":500' "stats JSON"
[ -s trig.jsonl ] && passed=$((passed+1)) || { failed=$((failed+1)); echo "FAIL no triggers"; }

# State, offline.
expect_exit 0 "state get" "$cuepoint" state get u0000003 --state-dir st --machines "$root/deploy/machines"
expect_in "$tmp/out" '"user_id":"u0000003"' "state get prints the user"
expect_in "$tmp/out" '"machine":"onboarding"' "state get shows instances"
expect_exit 1 "state get unknown user" "$cuepoint" state get nobody --state-dir st --machines "$root/deploy/machines"
expect_exit 0 "state dump" "$cuepoint" state dump --state-dir st --machines "$root/deploy/machines"
[ "$(wc -l < "$tmp/out")" -eq 50 ] && passed=$((passed+1)) || { failed=$((failed+1)); echo "FAIL state dump: $(wc -l < "$tmp/out") users, expected 50"; }
expect_exit 66 "state without a directory" "$cuepoint" state dump --state-dir nowhere --machines "$root/deploy/machines"

# One command's errors read alike, usage errors included: JSON lines when
# stderr is not a terminal, text at a terminal (log.format auto) or when asked.
expect_exit 64 "usage error as JSON" "$cuepoint" file --bogus
expect_in "$tmp/err" '"level":"error","msg":"unknown option' "usage error is a JSON log line"
expect_in "$tmp/err" '"command":"file","error":"EUSAGE"' "usage error names command and code"
expect_exit 78 "config error as JSON" "$cuepoint" file --machines /nonexistent --input gen1.jsonl
expect_in "$tmp/err" '"level":"error","msg":"cannot open machines directory' "run error is a JSON log line"
expect_exit 64 "usage error as text" "$cuepoint" file --set log.format=text --bogus
expect_in "$tmp/err" "cuepoint file: unknown option '--bogus'" "usage error as text when asked"
expect_exit 78 "config error as text" "$cuepoint" file --set log.format=text --machines /nonexistent --input gen1.jsonl
expect_in "$tmp/err" "cuepoint file: cannot open machines directory" "run error as text when asked"
expect_exit 78 "bad log.format" "$cuepoint" file --set log.format=xml --input gen1.jsonl
expect_in "$tmp/err" 'log.format: must be' "log.format is checked"
if command -v script > /dev/null; then
    script -qec "'$cuepoint' file --bogus" /dev/null > tty.out 2>&1
    grep -q "^cuepoint file: unknown option '--bogus'" tty.out && passed=$((passed+1)) \
        || { failed=$((failed+1)); echo "FAIL at a terminal a usage error is not text: $(cat tty.out)"; }
fi

# The demo needs nothing but the binary.
expect_exit 0 "demo" "$cuepoint" demo --users 300
expect_in "$tmp/out" "Summary:" "demo prints a summary"
expect_in "$tmp/out" "onboarding_stalled" "demo shows stalled onboarding"
expect_in "$tmp/out" "missed_deadline" "demo shows missed deadlines"

finish
