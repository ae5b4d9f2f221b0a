#!/bin/bash
# The console on the admin port (docs/console.md), in headless Chromium:
# `cuepoint run` with the policies on a dev broker, generated events
# produced and consumed; then the page at / is loaded and its DOM dumped
# once the page says it has loaded. Every journey is drawn with a count in
# each state, and each count equals cuepoint_journey_users in /metrics; the
# partitions table lists the 4 partitions; the JSON endpoints answer and the
# page asks for nothing outside the admin port (Content-Security-Policy).
# A screenshot goes to $CONSOLE_SCREENSHOT (docs/console.png is one).
# Needs chromium (scripts/deps.sh --test); without it the test says so and is
# skipped.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
skip() { echo "console: skipped: $*"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
command -v chromium > /dev/null || skip "chromium is not installed (scripts/deps.sh --test installs it)"
. "$(dirname "$0")/../kafka_lib.sh"
command -v python3 > /dev/null || { echo "python3 is not installed (scripts/deps.sh)"; exit 1; }
shot=${CONSOLE_SCREENSHOT:-$tmp/console.png}

broker_start --partitions 4 --topic events --topic triggers --topic decisions
"$cuepoint" generate --users 1500 --events 12000 --seed 41 > "$tmp/events.jsonl"
produce "$tmp/events.jsonl" events || exit 1
config c console-app events triggers
sed -i "s|\"wall.clock.advance\": false|\"wall.clock.advance\": false, \"policies\": \"$root/deploy/policies.json\", \"decisions.topic\": \"decisions\"|" "$tmp/c.json"
start_run c "$tmp/run.log"
wait_metric c cuepoint_records_consumed_total 12000 60 || { bad "not all events consumed"; tail -3 "$tmp/run.log"; }
addr=$(cat "$tmp/c.admin")
# A sample of activity after the events, so the chart has two points.
sleep 6

# The endpoints the page reads.
for p in /v1/journeys /v1/partitions /v1/activity; do
    curl -s -f "http://$addr$p" > "$tmp/$(basename $p).json" && python3 -m json.tool "$tmp/$(basename $p).json" > /dev/null \
        && ok || bad "$p is not JSON: $(head -c 200 "$tmp/$(basename $p).json")"
done
headers=$(curl -s -D - -o "$tmp/page.html" "http://$addr/")
grep -qi '^content-type: text/html' <<< "$headers" && ok || bad "/ is not HTML: $headers"
grep -qi "^content-security-policy: default-src 'none';.*connect-src 'self'" <<< "$headers" && ok \
    || bad "/ has no Content-Security-Policy that keeps it on this origin"
# Nothing on the page names another origin (no http(s):// but the SVG namespace).
grep -o 'https\?://[^"'"'"' )]*' "$tmp/page.html" | grep -v '^http://www.w3.org/2000/svg$' > "$tmp/outside" \
    && bad "the page names outside addresses: $(head -3 "$tmp/outside")" || ok

# The page, as a browser renders it; virtual time lets its first polls run.
# browse URL-TAIL OPTION...
browse() {
    local tail=$1; shift
    timeout 60 chromium --headless --disable-gpu --no-sandbox --no-first-run --disable-extensions \
        --user-data-dir="$tmp/chromium" --virtual-time-budget=8000 --window-size=1400,2200 "$@" \
        "http://$addr/$tail" 2>> "$tmp/chromium.log"
}
browse "" --dump-dom > "$tmp/dom.html" || bad "chromium --dump-dom exit $?"
curl -s "http://$addr/metrics" > "$tmp/metrics.txt"
python3 - "$tmp/dom.html" "$tmp/metrics.txt" "$tmp/journeys.json" <<'EOF' && ok || bad "the console's counts are not /metrics'"
import html.parser, json, re, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.cur = None; self.users = {}; self.rows = 0; self.loaded = None; self.graphs = set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body": self.loaded = a.get("data-loaded")
        if tag == "svg" and "data-machine" in a: self.graphs.add(a["data-machine"])
        if tag == "tr" and "data-partition" in a: self.rows += 1
        if tag == "text" and "users" in (a.get("class") or "").split(): self.cur = (a["data-machine"], a["data-state"])
    def handle_data(self, d):
        if self.cur: self.users[self.cur] = int(d); self.cur = None
p = P(); p.feed(open(sys.argv[1]).read())
metrics = {}
for line in open(sys.argv[2]):
    m = re.match(r'cuepoint_journey_users\{machine="([^"]*)",state="([^"]*)"\} (\S+)$', line.strip())
    if m: metrics[(m.group(1), m.group(2))] = int(float(m.group(3)))
machines = {j["name"] for j in json.load(open(sys.argv[3]))["journeys"]}
fails = []
if p.loaded != "1": fails.append(f"the page did not load its data (data-loaded={p.loaded})")
if p.graphs != machines: fails.append(f"graphs drawn {sorted(p.graphs)}, journeys {sorted(machines)}")
if set(p.users) != set(metrics): fails.append(f"states on the page {len(p.users)}, in /metrics {len(metrics)}")
for k in sorted(set(p.users) & set(metrics)):
    if p.users[k] != metrics[k]: fails.append(f"{k[0]}.{k[1]}: page {p.users[k]}, /metrics {metrics[k]}")
if sum(metrics.values()) == 0: fails.append("no users in any state")
if p.rows != 4: fails.append(f"{p.rows} partition rows, 4 partitions")
print(f"console: {len(p.users)} states drawn in {len(p.graphs)} journeys, {sum(p.users.values())} users, {p.rows} partitions")
for f in fails[:10]: print("  " + f)
sys.exit(1 if fails else 0)
EOF
grep -q 'class="edge active"\|class="edge"' "$tmp/dom.html" && ok || bad "no edges drawn"

# A user looked up (/#user=ID, through /v1/users/{id}): the page shows each
# of the user's journeys in its state and every decision of the trail.
uid=$(sed -n 's/.*"user_id":"\([^"]*\)".*/\1/p; 40q' "$tmp/events.jsonl" | tail -n1)
curl -s -f "http://$addr/v1/users/$uid" > "$tmp/user.json" || bad "/v1/users/$uid failed"
browse "#user=$uid" --dump-dom > "$tmp/user.html" || bad "chromium --dump-dom (user) exit $?"
python3 - "$tmp/user.html" "$tmp/user.json" <<'EOF' && ok || bad "the user look-up does not show the user's state"
import html.parser, json, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.inst = []; self.decisions = 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "instance": self.inst.append((a["data-machine"], a["data-state"]))
        if tag == "tr" and a.get("class") == "decision": self.decisions += 1
p = P(); p.feed(open(sys.argv[1]).read())
u = json.load(open(sys.argv[2]))
want = [(i["machine"], i["state"]) for i in u["instances"]]
n = len(u.get("policy", {}).get("decisions", []))
print(f"user {u['user_id']}: {len(p.inst)} journeys shown ({len(want)} in its state), {p.decisions} decisions ({n})")
sys.exit(0 if sorted(p.inst) == sorted(want) and want and p.decisions == n else 1)
EOF
browse "#user=$uid" --screenshot="$shot" > /dev/null || bad "chromium --screenshot exit $?"
[ "$(head -c 8 "$shot" 2> /dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$shot")" -gt 20000 ] \
    && ok || bad "no screenshot in $shot"
echo "screenshot: $shot"
kill -TERM "$run_pid"; wait_run 30 || bad "run exit $?"
finish
