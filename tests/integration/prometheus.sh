#!/bin/bash
# deploy/prometheus and deploy/grafana against a real Prometheus (Debian's)
# scraping real instances: two `cuepoint run` on a dev broker (changelog,
# one standby replica, the example policies), so that restores, standby
# copies and policy decisions have figures; events, then poison records,
# produced with kcat while Prometheus scrapes every second. Then, through
# Prometheus' HTTP API: every rule of the rules file loaded and evaluated
# without error; every recording rule's and alert's expression parses, and
# each recording rule has data; every dashboard panel query (with $job,
# $instance and $__rate_interval as Grafana fills them) parses and returns
# data for the running instances (the one query allowed to be empty is named
# below, and its metric must be one cuepoint declares); the dashboard's
# variables find both instances; cuepoint_build_info names this commit and
# the process_* series are there. Last, the dead-letter alert (its `for`
# shortened in a test copy of the rules) fires for real and is read from
# /api/v1/alerts.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail
command -v prometheus > /dev/null && command -v promtool > /dev/null \
    || { bad "prometheus is not installed (scripts/deps.sh --test installs it)"; finish; exit 1; }
py=/usr/bin/python3
$py -c 'import yaml' 2> /dev/null || { bad "python3-yaml is not installed (scripts/deps.sh --test)"; finish; exit 1; }
rules=$root/deploy/prometheus/cuepoint.rules.yml
dashboard=$root/deploy/grafana/cuepoint.json
t0=$(date +%s)

# The offline checks first: they need nothing running.
promtool check rules "$rules" > "$tmp/check.out" 2>&1 && ok || { bad "promtool check rules:"; cat "$tmp/check.out"; }
(cd "$(dirname "$rules")" && promtool test rules cuepoint.rules.test.yml) > "$tmp/unit.out" 2>&1 && ok \
    || { bad "promtool test rules:"; cat "$tmp/unit.out"; }
# Every alert has a unit test, and a runbook section in docs/deploy.md.
$py - "$rules" "$root/deploy/prometheus/cuepoint.rules.test.yml" "$root/docs/deploy.md" > "$tmp/cover.out" <<'PY'
import sys, yaml
rules = [r for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
tests = yaml.safe_load(open(sys.argv[2]))["tests"]
docs = open(sys.argv[3]).read()
tested = {}
for t in tests:
    for a in t.get("alert_rule_test", []):
        tested.setdefault(a["alertname"], []).append(bool(a.get("exp_alerts")))
for r in rules:
    if "alert" not in r:
        continue
    a = r["alert"]
    print("ok" if True in tested.get(a, []) else "FAIL %s has no unit test where it fires" % a)
    print("ok" if ("### " + a) in docs and r["annotations"].get("runbook_url", "").endswith("#" + a.lower())
          else "FAIL %s has no runbook section '### %s' in docs/deploy.md, or its runbook_url does not point there" % (a, a))
    for k in ("summary", "description"):
        print("ok" if "{{ $labels.instance }}" in r["annotations"].get(k, "") else "FAIL %s's %s does not name the instance" % (a, k))
PY
passed=$((passed + $(grep -c '^ok$' "$tmp/cover.out"))); grep '^FAIL' "$tmp/cover.out"; failed=$((failed + $(grep -c '^FAIL' "$tmp/cover.out")))

# Prometheus on 127.0.0.1, a free port, its own storage, scraping the two
# instances' admin ports (chosen free now, so it scrapes them from their
# start); the rules are a copy with the dead-letter alert's `for` shortened
# to 2 s.
free_port() { $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); pa=$(free_port); pb=$(free_port)
a=127.0.0.1:$pa; b=127.0.0.1:$pb
$py - "$rules" "$tmp/rules.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for g in doc["groups"]:
    for r in g["rules"]:
        if r.get("alert") == "CuepointDeadLetters":
            r["for"] = "2s"
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
PY
cat > "$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$tmp/rules.yml"]
scrape_configs:
  - job_name: cuepoint
    static_configs:
      - targets: ["$a", "$b"]
EOF
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; [ -n "${KEEP_DIR:-}" ] && cp -r "$tmp" "$KEEP_DIR"; cleanup' EXIT
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn > "$tmp/prometheus.log" 2>&1 & pids+=($!)
api=http://127.0.0.1:$port/api/v1
echo "Prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}') on 127.0.0.1:$port scraping $a and $b"

# Two instances with the changelog, one standby each and the example
# policies. A reads the first events alone and stops; B starts on an empty
# state.dir and restores every partition from the changelog; then A comes
# back and takes half of them over again.
broker_start --partitions 4 --topic events --topic triggers --topic prom-a-dead --topic prom-b-dead --topic prom-changelog
"$cuepoint" generate --users 300 --events 3000 --seed 7 > "$tmp/events1.jsonl"
"$cuepoint" generate --users 300 --events 3000 --seed 8 --start 2026-03-01T00:00:00Z > "$tmp/events2.jsonl"
produce "$tmp/events1.jsonl" events
for n in a b; do
    config "prom-$n" prom events triggers '"session.timeout.ms": 6000, "heartbeat.interval.ms": 500'
    port_n=$pa; [ $n = b ] && port_n=$pb
    sed -i -e "s|\"wall.clock.advance\": false|\"wall.clock.advance\": false, \"changelog.enabled\": true, \"num.standby.replicas\": 1, \"policies\": \"$root/deploy/policies.json\"|" \
        -e "s|\"admin.listen\": \"127.0.0.1:0\"|\"admin.listen\": \"127.0.0.1:$port_n\"|" "$tmp/prom-$n.json"
done
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$1/readyz")" = 200 ]; }
at_least() { # ADDR METRIC MIN SECONDS: waits until the metric reaches MIN
    for _ in $(seq $(($4 * 4))); do
        [ "$(curl -s --max-time 2 "http://$1/metrics" | awk -v m="$2" '$1 == m { print $2 }')" -ge "$3" ] 2> /dev/null && return 0
        sleep 0.25
    done
    return 1
}
"$cuepoint" run --config "$tmp/prom-a.json" 2> "$tmp/prom-a.log" & pid_a=$!; pids+=($pid_a)
at_least "$a" cuepoint_records_consumed_total 3000 60 || bad "instance a did not consume the first events"
sleep 1 # a commit cycle more: the changelog holds it all
kill -TERM "$pid_a"; wait "$pid_a" && ok || bad "instance a did not stop cleanly"
"$cuepoint" run --config "$tmp/prom-b.json" 2> "$tmp/prom-b.log" & pids+=($!)
for _ in $(seq 600); do ready "$b" && break; sleep 0.1; done
grep -q '"restore' "$tmp/prom-b.log" && ok || bad "instance b restored nothing (test premise)"
"$cuepoint" run --config "$tmp/prom-a.json" 2>> "$tmp/prom-a.log" & pids+=($!)
for _ in $(seq 100); do curl -s "$api/targets" 2> /dev/null | grep -q '"health":"up".*"health":"up"' && break; sleep 0.2; done
curl -s "$api/targets" | jq -e '[.data.activeTargets[] | select(.health == "up")] | length == 2' > /dev/null && ok \
    || { bad "Prometheus does not scrape both instances: $(curl -s "$api/targets" | jq -c '[.data.activeTargets[] | {scrapeUrl, health, lastError}]')"; tail -5 "$tmp/prometheus.log"; }

# Events flow while it scrapes: a second batch, then poison records (keys
# that are user ids, values that are not JSON).
for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$a/readyz")" = 200 ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$b/readyz")" = 200 ] && break
    sleep 0.1
done
sleep 3
produce "$tmp/events2.jsonl" events
sleep 3
for i in $(seq 300); do printf 'u%07d\tnot json %d\n' "$i" "$i"; done |
    kcat -b "$bootstrap" -P -t events -K $'\t' -z none 2>> "$tmp/kcat.log"
# Rates over [5m] need two samples; the standby placement is renewed every 2 s.
sleep 8

# Everything through the HTTP API.
# The commit the binary was configured from, as `cuepoint version` says it.
commit=$("$cuepoint" version | sed -n 's/.*(commit \(.*\))$/\1/p')
if git -C "$root" rev-parse HEAD > /dev/null 2>&1; then
    [[ "$commit" =~ ^[0-9a-f]{12}$ ]] && ok || bad "built in a git checkout, but the commit is '$commit'"
fi
$py - "$api" "$rules" "$dashboard" "$a" "$b" "$commit" \
    > "$tmp/api.out" 2>&1 <<'PY'
import json, re, sys, time, urllib.parse, urllib.request, yaml
api, rules_file, dash_file, a, b, commit = sys.argv[1:7]
def get(path, **params):
    url = api + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    try:
        return json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        return json.load(e)
def check(cond, what):
    print("ok" if cond else "FAIL " + what)
def query(expr):
    r = get("/query", query=expr)
    return r.get("status") == "success", r.get("error", ""), r.get("data", {}).get("result", [])

rules = [r for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"]]
loaded = [r for g in get("/rules")["data"]["groups"] for r in g["rules"]]
check(len(loaded) == len(rules), "Prometheus loaded %d rules, the file has %d" % (len(loaded), len(rules)))
for r in loaded:
    check(r.get("health") == "ok" and not r.get("lastError"),
          "rule %s: health %s, %s" % (r.get("name"), r.get("health"), r.get("lastError")))
for r in rules:
    name = r.get("record") or r.get("alert")
    good, err, res = query(r["expr"])
    check(good, "%s does not evaluate: %s" % (name, err))
    if "record" in r:
        check(len(res) > 0, "recording rule %s has no data" % name)
        good, err, res = query(name)
        check(good and len(res) > 0, "the recorded series %s is not stored" % name)

# What the instances declare, for the one query allowed to be empty.
declared = set()
for inst in (a, b):
    for line in urllib.request.urlopen("http://%s/metrics" % inst, timeout=5).read().decode().splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
recorded = {r["record"] for r in rules if "record" in r}
# cuepoint_restore_remaining_records exists only while a restore runs, and
# the restores here last a fraction of a scrape interval.
may_be_empty = {"cuepoint_restore_remaining_records"}
dash = json.load(open(dash_file))
# As Grafana writes a multi-value variable into a regex matcher: escaped
# for the regex, then for PromQL's double-quoted string.
inst_re = "(%s|%s)" % tuple(re.escape(x).replace("\\", "\\\\") for x in (a, b))
def fill(expr):
    return (expr.replace("$__rate_interval", "1m").replace("$job", "cuepoint")
            .replace("$instance", inst_re))
names_re = re.compile(r"\b((?:cuepoint|process)[a-z_:0-9]*|up)\b(?!\s*\()")
n = 0
for p in dash["panels"]:
    for t in p.get("targets", []):
        n += 1
        expr = fill(t["expr"])
        check("$" not in expr, "panel '%s': a variable is left in %s" % (p["title"], expr))
        good, err, res = query(expr)
        check(good, "panel '%s': %s does not parse: %s" % (p["title"], t["expr"], err))
        names = set(names_re.findall(t["expr"]))
        unknown = {m for m in names if m not in declared and m not in recorded and m != "up"
                   and not any(m == d + s for d in declared for s in ("_bucket", "_sum", "_count"))}
        check(not unknown, "panel '%s' names metrics cuepoint does not export: %s" % (p["title"], sorted(unknown)))
        if names & may_be_empty:
            check(names <= declared | recorded | {"up"}, "panel '%s': %s" % (p["title"], names))
        else:
            check(len(res) > 0, "panel '%s': no data for %s" % (p["title"], t["expr"]))
print("PANELS %d queries" % n)
for v in dash["templating"]["list"]:
    if v["type"] == "query":
        m = re.match(r"label_values\((.*),\s*(\w+)\)$", v["query"]["query"])
        check(m is not None, "variable %s: not label_values(): %s" % (v["name"], v["query"]["query"]))
        if m:
            series = get("/series", **{"match[]": fill(m.group(1))})["data"]
            values = {s.get(m.group(2)) for s in series}
            want = {"cuepoint"} if v["name"] == "job" else {a, b}
            check(want <= values, "variable %s finds %s, not %s" % (v["name"], values, want))
check(any(v["type"] == "datasource" for v in dash["templating"]["list"]), "the dashboard has no datasource variable")

good, err, res = query('cuepoint_build_info{commit="%s"}' % commit)
check(len(res) == 2, "cuepoint_build_info does not name commit %s on both instances" % commit)
for m in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
          "process_max_fds", "process_start_time_seconds", "process_virtual_memory_bytes"):
    good, err, res = query(m + '{job="cuepoint"}')
    check(len(res) == 2 and all(float(s["value"][1]) > 0 for s in res), "%s: %s" % (m, res))
good, err, res = query('cuepoint_ready{job="cuepoint"}')
check(sorted(s["value"][1] for s in res) == ["1", "1"], "cuepoint_ready: %s" % res)

# The dead-letter alert fires for real.
firing = []
for _ in range(60):
    alerts = get("/alerts")["data"]["alerts"]
    firing = [x for x in alerts if x["labels"].get("alertname") == "CuepointDeadLetters" and x["state"] == "firing"]
    if firing:
        break
    time.sleep(1)
check(len(firing) > 0, "CuepointDeadLetters never fired: %s" % get("/alerts")["data"]["alerts"])
for x in firing:
    check(x["labels"].get("reason") == "not_json" and x["labels"].get("instance") in (a, b),
          "the alert's labels do not locate it: %s" % x["labels"])
    print("FIRING %s %s: %s" % (x["labels"]["alertname"], x["labels"]["instance"], x["annotations"]["summary"]))
PY
passed=$((passed + $(grep -c '^ok$' "$tmp/api.out")))
grep '^FAIL\|^Traceback\|Error' "$tmp/api.out" | head -20
failed=$((failed + $(grep -c '^FAIL' "$tmp/api.out")))
grep -q '^Traceback' "$tmp/api.out" && { bad "the API checks crashed"; tail -5 "$tmp/api.out"; }
grep '^PANELS\|^FIRING' "$tmp/api.out"

for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
echo "prometheus test took $(( $(date +%s) - t0 )) s"
finish
