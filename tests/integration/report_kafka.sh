#!/bin/bash
# `cuepoint report` from topics: the events, decisions and triggers of a run
# put on the dev broker (keyed by user, as cuepoint writes them), read with
# --events-topic, --decisions-topic and --triggers-topic, give the same JSON
# as the same records read from files, whatever order the partitions
# interleave in. A topic that holds nothing is refused (exit 66).
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
cd "$tmp"
export CUEPOINT_CLOCK=2026-12-31T00:00:00Z

broker_start --partitions 4 --topic events --topic triggers --topic cuepoint-decisions
"$cuepoint" generate --users 2000 --consent > events.jsonl
"$cuepoint" file --input events.jsonl --output triggers.jsonl --decisions decisions.jsonl \
    --machines "$machines" --policies "$root/deploy/policies.json" --state-dir st --quiet \
    || bad "file exit $?"
produce events.jsonl events || exit 1
# Decisions and triggers keyed by their user, as the pipeline produces them.
sed -E 's/^(.*"user_id":"([^"]*)".*)$/\2\t\1/; t; s/^/\t/' decisions.jsonl \
    | kcat -b "$bootstrap" -P -t cuepoint-decisions -K $'\t' -z none || bad "kcat decisions"
sed -E 's/^(.*"subject":"([^"]*)".*)$/\2\t\1/' triggers.jsonl \
    | kcat -b "$bootstrap" -P -t triggers -K $'\t' -z none || bad "kcat triggers"

common=(--report-config "$root/deploy/report.json" --policies "$root/deploy/policies.json" --quiet)
"$cuepoint" report --events events.jsonl --decisions decisions.jsonl --triggers triggers.jsonl \
    "${common[@]}" --json files.json || bad "report from files exit $?"
"$cuepoint" report --events-topic --decisions-topic --triggers-topic \
    --set bootstrap.servers="$bootstrap" "${common[@]}" --json topics.json --html topics.html \
    || bad "report from topics exit $?"
python3 - files.json topics.json <<'EOF' && ok || bad "the topics' report differs from the files'"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for r in (a, b):
    r.pop("sources"); r["history"].pop("bytes")
if a != b:
    for k in a:
        if a[k] != b[k]: print("differs:", k)
    sys.exit(1)
print(f"same report: {a['history']['events']} events, {a['history']['decisions']} decisions, {a['history']['triggers']} triggers")
EOF
grep -q '"sources":{"events":"events","decisions":"cuepoint-decisions","triggers":"triggers"}' topics.json \
    && ok || bad "the report does not name the topics it read"
# A topic that does not exist: exit 66, named.
"$cuepoint" report --events-topic --set bootstrap.servers="$bootstrap" --set input.topic=nothing \
    --set startup.timeout.ms=3000 --quiet 2> err.txt
[ $? -eq 66 ] && ok || { bad "a missing topic is not exit 66"; cat err.txt; }
finish
