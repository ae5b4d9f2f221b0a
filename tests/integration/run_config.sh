#!/bin/bash
# How `cuepoint run` takes its configuration, as an operator meets it:
# --config is required (64 at once, not 69 after startup.timeout.ms on the
# defaults); a missing config file is 66 naming the path; relative paths in a
# config file are taken from its directory; --print-config refuses what run
# refuses (librdkafka properties, combinations librdkafka checks only when it
# creates a client, the admin address, machines, the policy file) with the
# same exit code, and prints the rest as JSON that reads back (numbers as
# numbers, two-space indent); log.level filters the log.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
command -v jq >/dev/null || { echo "jq is not installed (scripts/deps.sh --test installs it)"; exit 1; }

# rc_of COMMAND...: the exit status, stdout in $tmp/out, stderr in $tmp/err
rc_of() { "$@" > "$tmp/out" 2> "$tmp/err"; echo $?; }
# same WHAT CONFIG [option...]: run and --print-config give the same status
# (run stopped by a short startup.timeout.ms on an unreachable broker when
# the config is good); prints it
same() {
    local what=$1 cfg=$2; shift 2
    local p r
    p=$(rc_of "$cuepoint" run --config "$cfg" --print-config "$@")
    r=$(rc_of timeout 30 "$cuepoint" run --config "$cfg" --set bootstrap.servers=127.0.0.1:1 \
        --set startup.timeout.ms=500 --state-dir "$tmp/state.$RANDOM" "$@")
    if [ "$p" = 0 ]; then [ "$r" = 69 ] && ok || bad "$what: --print-config 0 but run $r (expected 69: no broker)"
    else [ "$p" = "$r" ] && ok || bad "$what: --print-config exits $p, run $r"; fi
    echo "$p"
}

start=$(date +%s%N)
[ "$(rc_of "$cuepoint" run)" = 64 ] && ok || bad "run without --config: $(cat "$tmp/err")"
grep -q -- '--config FILE is required' "$tmp/err" && ok || bad "the usage error does not name --config"
[ "$(rc_of "$cuepoint" run --print-config --set bootstrap.servers=x)" = 64 ] && ok \
    || bad "--print-config without --config is not a usage error"
[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 5000 ] && ok || bad "the refusals took 5 s or more"

[ "$(rc_of "$cuepoint" run --config "$tmp/nope/missing.json")" = 66 ] && ok || bad "missing config file: not 66"
grep -q "$tmp/nope/missing.json" "$tmp/err" && ok || bad "the error does not name the path: $(cat "$tmp/err")"
[ "$(rc_of "$cuepoint" offsets show --config "$tmp/nope/missing.json")" = 66 ] && ok || bad "offsets with a missing config: not 66"

# Relative paths are the config file's, whatever the working directory.
mkdir -p "$tmp/site/journeys" "$tmp/elsewhere"
cp "$root"/deploy/machines/*.json "$tmp/site/journeys/"
cp "$root/deploy/policies.json" "$tmp/site/rules.json"
echo secret-from-file > "$tmp/site/pw.txt"
cat > "$tmp/site/c.json" <<'JSON'
{"machines.dir": "journeys", "policies": "rules.json", "state.dir": "var/state",
 "kafka": {"sasl.password": {"file": "pw.txt"}, "consumer": {"fetch.wait.max.ms": 10, "check.crcs": true},
           "producer": {"linger.ms": 5, "client.rack": "r1"}}}
JSON
(cd "$tmp/elsewhere" && "$cuepoint" run --config ../site/c.json --print-config > "$tmp/p.json" 2> "$tmp/err")
[ $? = 0 ] && ok || bad "relative machines.dir/policies: $(cat "$tmp/err")"
[ "$(jq -r '."machines.dir"' "$tmp/p.json")" = ../site/journeys ] && ok || bad "machines.dir: $(jq -r '."machines.dir"' "$tmp/p.json")"
[ "$(jq -r '."state.dir"' "$tmp/p.json")" = ../site/var/state ] && ok || bad "state.dir: $(jq -r '."state.dir"' "$tmp/p.json")"
[ "$(jq -r '.policies' "$tmp/p.json")" = ../site/rules.json ] && ok || bad "policies: $(jq -r .policies "$tmp/p.json")"
# A command-line path stays the shell's.
(cd "$tmp/elsewhere" && "$cuepoint" run --config ../site/c.json --state-dir here --print-config) \
    | jq -e '."state.dir" == "here"' > /dev/null && ok || bad "--state-dir was taken from the config's directory"
# Numbers stay numbers, booleans booleans; the secret (read from the file
# beside the config) is redacted; the text is jq's own two-space layout.
jq -e '.kafka.consumer."fetch.wait.max.ms" == 10 and .kafka.consumer."check.crcs" == true
       and .kafka.producer."linger.ms" == 5 and .kafka."sasl.password" == "[redacted]"
       and ."commit.interval.ms" == 1000 and ."log.level" == "info"' "$tmp/p.json" > /dev/null \
    && ok || bad "--print-config types: $(jq -c .kafka "$tmp/p.json")"
jq . "$tmp/p.json" | cmp -s - "$tmp/p.json" && ok || { bad "--print-config is not laid out as jq lays it out"; jq . "$tmp/p.json" | diff - "$tmp/p.json" | head; }
grep -q secret-from-file "$tmp/p.json" && bad "a secret in --print-config" || ok
# What it prints reads back as a config file, to the same effective config.
jq 'del(.kafka."sasl.password")' "$tmp/p.json" > "$tmp/elsewhere/again.json"
(cd "$tmp/elsewhere" && "$cuepoint" run --config again.json --print-config > "$tmp/p2.json" 2> "$tmp/err") \
    && jq -e --slurpfile a "$tmp/p.json" '. == ($a[0] | del(.kafka."sasl.password"))' "$tmp/p2.json" > /dev/null \
    && ok || bad "the dump does not read back to itself: $(cat "$tmp/err"; diff <(jq -S . "$tmp/p.json") <(jq -S . "$tmp/p2.json") | head)"

# --print-config refuses what run refuses, with run's exit status.
m="$root/deploy/machines"
cfg() { echo "$2" > "$tmp/$1.json"; echo "$tmp/$1.json"; }
[ "$(same "librdkafka rejects a value" "$(cfg v1 '{"kafka": {"socket.timeout.ms": "soon"}}')" --machines "$m")" = 78 ] && ok || bad "a rejected property is not 78"
grep -q 'socket.timeout.ms' "$tmp/err" && ok || bad "the error does not name socket.timeout.ms: $(cat "$tmp/err")"
[ "$(same "a combination rd_kafka_new refuses" "$(cfg v2 '{"kafka": {"consumer": {"fetch.max.bytes": 1000, "message.max.bytes": 2000000}}}')" --machines "$m")" = 78 ] \
    && ok || bad "fetch.max.bytes < message.max.bytes is not 78"
[ "$(same "an admin port out of range" "$(cfg v3 '{"admin.listen": "127.0.0.1:70000"}')" --machines "$m")" = 78 ] && ok || bad "admin port 70000 is not 78"
[ "$(same "standby without changelog" "$(cfg v4 '{"num.standby.replicas": 1, "changelog.enabled": false}')" --machines "$m")" = 78 ] && ok || bad "standby without changelog is not 78"
[ "$(same "missing machines" "$(cfg v5 '{"machines.dir": "no-such-dir"}')")" != 0 ] && ok || bad "a missing machines.dir passes --print-config"
[ "$(same "missing policy file" "$(cfg v6 '{"policies": "no-such.json"}')" --machines "$m")" != 0 ] && ok || bad "a missing policy file passes --print-config"
[ "$(same "a good config" "$(cfg v7 '{"admin.listen": "127.0.0.1:0", "kafka": {"consumer": {"fetch.wait.max.ms": 10}}}')" --machines "$m")" = 0 ] \
    && ok || bad "a good config is refused: $(cat "$tmp/err")"
[ "$(rc_of "$cuepoint" run --config "$(cfg v8 '{"log.level": "loud"}')" --print-config)" = 78 ] \
    && grep -q '\$.log.level' "$tmp/err" && ok || bad "log.level loud is not 78 naming the key"

# log.level: at "error" an unreachable broker leaves only error lines.
echo '{"log.level": "error", "bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 500, "admin.listen": ""}' > "$tmp/quiet.json"
[ "$(rc_of "$cuepoint" run --config "$tmp/quiet.json" --machines "$m" --state-dir "$tmp/qs")" = 69 ] && ok || bad "quiet run: not 69"
grep -q '"level":"error"' "$tmp/err" && ! grep -q '"level":"\(info\|warn\|debug\)"' "$tmp/err" && ok \
    || bad "log.level error let other lines through: $(head -3 "$tmp/err")"
echo '{"bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 500, "admin.listen": ""}' > "$tmp/loud.json"
rc_of "$cuepoint" run --config "$tmp/loud.json" --machines "$m" --state-dir "$tmp/ls" > /dev/null
grep -q '"level":"\(info\|warn\)"' "$tmp/err" && ok || bad "the default level shows no info or warn line (test premise)"
finish
