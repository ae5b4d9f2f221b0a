#!/bin/bash
# `cuepoint report` against a history whose effects are known. `generate
# --planted` writes 20,000 users whose onboarding completion differs by work
# mode and sign-up week, a holdout of the stall nudge's experiment with a
# planted lift, push withdrawn after 8% of the nudges and mutes after 5% of
# completed onboardings, and what it planted (truth.json). A replay runs it
# through the journeys and deploy/policies.json; the report's JSON must give
# back the planted rates within its 95% intervals, the counts the generator
# knows exactly (who was exposed, in which arm, nudged, opted out), the
# effects as effects (the lift's interval above 0, the work modes apart), and
# the replay's own summary. Then `report --compare` against a second replay
# with the onboarding stall at 48 h instead of 72 h: more onboarding_stalled
# and more messages per user-week, and each run's counts equal its replay's
# summary. The pages are self-contained (no script, nothing fetched).
set -uo pipefail
. "$(dirname "$0")/../lib.sh" "$1"
cd "$tmp"
export CUEPOINT_CLOCK=2026-12-31T00:00:00Z # after the history: nothing in it is "future"
policies="$root/deploy/policies.json"

"$cuepoint" generate --planted --users 20000 --seed 42 --policies "$policies" \
    --machines "$root/deploy/machines" --truth truth.json > events.jsonl \
    || { bad "generate --planted exit $?"; finish; exit; }
echo "planted history: $(wc -l < events.jsonl) events"

# replay NAME MACHINES: the history through the journeys, on 4 partitions.
replay() {
    "$cuepoint" replay --input events.jsonl --file-partitions 4 --machines "$2" \
        --policies "$policies" --output "$1.jsonl" --decisions "$1.dec.jsonl" \
        --state-dir "$1.state" --stats "$1.stats.json" --quiet \
        || bad "replay $1 exit $?"
}
replay A "$root/deploy/machines"

"$cuepoint" report --events events.jsonl --decisions A.dec.jsonl --triggers A.jsonl \
    --report-config "$root/deploy/report.json" --policies "$policies" \
    --json A.report.json --html A.html 2> report.log \
    || { bad "report exit $?"; tail -3 report.log; }
[ -s A.html ] && ok || bad "no page"

# The checks, in Python (scripts/deps.sh installs it): exit 1 with a line per
# failure. Given a truth file, so that a wrong truth can be shown to fail.
cat > check.py <<'EOF'
import json, sys
rep, truth, stats = (json.load(open(p)) for p in sys.argv[1:4])
fails = []
def check(ok, what):
    if not ok: fails.append(what)
def within(x, ci, what):
    check(ci[0] <= x <= ci[1], f"{what}: planted {x:.4f} outside the 95% interval [{ci[0]:.4f}, {ci[1]:.4f}]")
def rate(name):
    return next(m for m in rep["rates"] if m["name"] == name)
def by(metric, dim, value):
    return next(v["rate"] for v in metric["by"][dim] if v["value"] == value)

# Completion within 7 days, planted by work mode and sign-up week.
done, planted = rate("onboarding_completed_7d"), truth["onboarding_completed_7d"]
within(planted["all"]["expected"], done["all"]["ci"], "completion, all users")
check(done["all"]["n"] == planted["all"]["users"], "every user counted once")
for dim in ("work_mode", "cohort"):
    for value, p in planted[dim].items():
        r = by(done, dim, value)
        check(r["n"] == p["users"], f"completion by {dim} {value}: {r['n']} users, {p['users']} planted")
        within(p["expected"], r["ci"], f"completion by {dim} {value}")
remote, office = by(done, "work_mode", "remote"), by(done, "work_mode", "in_person")
check(remote["ci"][1] < office["ci"][0], "remote and in-person completion are not told apart")
weeks = [v["rate"]["rate"] for v in done["by"]["cohort"]]
check(weeks == sorted(weeks), f"the planted rise by sign-up week does not show: {weeks}")

# The holdout: who is in it, how they did, the lift, the sample-ratio check.
x, e = truth["experiment"], next(e for e in rep["experiments"] if e["name"] == truth["experiment"]["name"])
check(e["users"] == x["exposed"], f"experiment users {e['users']}, planted exposed {x['exposed']}")
check(e["arms"][0]["users"] == x["holdout"], f"holdout users {e['arms'][0]['users']}, planted {x['holdout']}")
check(not e["sample_ratio"]["mismatch"], "a sample-ratio mismatch where the assignment is the policy's")
g = next(g for g in e["goals"] if g["goal"] == x["goal"])
check(g["holdout"]["k"] == x["completed_holdout"] and g["treatment"]["k"] == x["completed_treated"],
      "completions by arm differ from the planted ones")
within(x["rate_holdout"], g["holdout"]["ci"], "completion in the holdout")
within(x["rate_treated"], g["treatment"]["ci"], "completion of the nudged")
within(x["lift"], g["lift"]["ci"], "the lift")
check(g["lift"]["ci"][0] > 0, "the planted lift's interval reaches 0")

# Opt-outs after the nudge, per thousand sent, and after onboarding.
o = truth["opt_out_after_trigger"]
att = {(t["journey"], t["trigger"]): t for t in rep["opt_out_attribution"]["triggers"]}
s = att[(o["journey"], o["trigger"])]
check(s["sent"] == o["sent"] and s["followed"] == o["followed"],
      f"nudges {s['sent']} followed by {s['followed']}, planted {o['sent']} and {o['followed']}")
within(o["per_thousand"], s["ci"], "opt-outs per thousand nudges")
for k, t in att.items():
    if k != (o["journey"], o["trigger"]) and t["sent"] >= 100:
        check(t["ci"][1] < s["ci"][0], f"{k} is not told apart from the nudge the opt-outs follow")
a = truth["opt_out_after_onboarding"]
after = rate("opt_out_after_onboarding")["all"]
check(after["n"] == a["completers"] and after["k"] == a["muted"], "opt-outs after onboarding miscounted")
within(a["expected"], after["ci"], "opt-outs after onboarding")

# The replay's own summary.
for t in rep["triggers"]:
    key = t["journey"] + "." + t["trigger"]
    check(t["records"] == stats["by_trigger"].get(key, 0), f"{key}: {t['records']} records, replay said {stats['by_trigger'].get(key)}")
for k, v in stats["decisions"].items():
    check(rep["decisions"][k] == v, f"decisions {k}: {rep['decisions'][k]}, replay said {v}")
for f in fails: print("FAIL", f)
sys.exit(1 if fails else 0)
EOF
python3 check.py A.report.json truth.json A.stats.json && ok || bad "the report does not give back what was planted"

# The check can fail: a truth with the lift planted at 0.30 is refused.
python3 -c "
import json; t = json.load(open('truth.json')); t['experiment']['lift'] = 0.30
json.dump(t, open('wrong.json', 'w'))"
python3 check.py A.report.json wrong.json A.stats.json > wrong.out && bad "a wrong lift passes the check" \
    || { grep -q "the lift: planted 0.3000 outside" wrong.out && ok || { bad "the wrong lift fails for another reason"; cat wrong.out; }; }

# Self-contained pages: nothing fetched, no script.
selfcontained() {
    grep -qiE '<script|https?://[a-z]|src=|@import|url\(' "$1" && bad "$1 fetches or runs something" || ok
    grep -q '<svg' "$1" && ok || bad "$1 has no chart"
}
selfcontained A.html

# What-if: the stall at 48 h instead of 72 h.
cp -r "$root/deploy/machines" m48
sed -i 's/"after": "72h"/"after": "48h"/' m48/onboarding.json
[ "$(grep -c '"48h"' m48/onboarding.json)" -eq 3 ] && ok || bad "the copy's stall delays are not 48h"
replay B m48
"$cuepoint" report --events events.jsonl --compare A.jsonl,A.dec.jsonl B.jsonl,B.dec.jsonl \
    --labels "stall 72h,stall 48h" --report-config "$root/deploy/report.json" --policies "$policies" \
    --json compare.json --html compare.html 2> compare.log \
    || { bad "report --compare exit $?"; tail -3 compare.log; }
python3 - compare.json A.stats.json B.stats.json <<'EOF' && ok || bad "report --compare"
import json, sys
c, a, b = (json.load(open(p)) for p in sys.argv[1:4])
fails = []
def check(ok, what):
    if not ok: fails.append(what)
check(c["compare"] == {"a": "stall 72h", "b": "stall 48h"}, f"labels {c['compare']}")
t = {(x["journey"], x["trigger"]): x for x in c["triggers"]}
for side, stats in (("a", a), ("b", b)):
    for key, n in stats["by_trigger"].items():
        j, name = key.split(".", 1)
        got = t[(j, name)][side] if (j, name) in t else 0
        check(got == n, f"{side} {key}: {got}, its replay said {n}")
    check(c["decisions"][side] == stats["decisions"], f"{side} decisions differ from its replay's")
s = t[("onboarding", "onboarding_stalled")]
check(s["change"] == b["by_trigger"]["onboarding.onboarding_stalled"] - a["by_trigger"]["onboarding.onboarding_stalled"] and s["change"] > 0,
      f"onboarding_stalled change {s['change']}")
m = c["messages"]
check(m["change_mean"] > 0 and m["b"]["messages"] > m["a"]["messages"], f"messages per user-week did not rise: {m['change_mean']}")
j = {x["name"]: x for x in m["by_journey"]}
check(j["onboarding"]["change_mean"] > 0, "the onboarding journey's messages per user-week did not rise")
check(len(c["groups"]["cohort"]) == 4 and all(g["user_weeks"] > 0 for g in c["groups"]["cohort"]),
      "the change is not shown by sign-up cohort")
print(f"72h -> 48h: onboarding_stalled {s['a']} -> {s['b']}, messages per user-week {m['a']['mean']:.4f} -> {m['b']['mean']:.4f}")
for f in fails: print("FAIL", f)
sys.exit(1 if fails else 0)
EOF
selfcontained compare.html
grep -q 'stall 48h' compare.html && ok || bad "the page does not name the runs"

# Help, and usage errors that name what is wrong.
"$cuepoint" report --help > help.txt && grep -q "Usage: cuepoint report" help.txt && ok || bad "report --help"
"$cuepoint" report --decisions A.dec.jsonl 2> err.txt; [ $? -eq 64 ] && ok || bad "report without events is not a usage error"
grep -q "give the events" err.txt && ok || bad "the usage error does not say what is missing"
"$cuepoint" report --events missing.jsonl --json x.json 2> err.txt; [ $? -eq 66 ] && ok || bad "a missing input is not exit 66"
echo '{"goals": [{"name": "x", "trigger": "y", "withn": "7d"}]}' > badconf.json
"$cuepoint" report --events events.jsonl --report-config badconf.json 2> err.txt; [ $? -eq 78 ] && ok || bad "a bad report config is not exit 78"
grep -q "did you mean 'within'" err.txt && ok || { bad "a misspelt key is not named"; cat err.txt; }
finish
