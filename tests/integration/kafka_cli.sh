#!/bin/bash
# `cuepoint run` before it reaches a broker: configuration errors name the
# JSON path and exit 78, secrets never reach stderr or --print-config, an
# unreachable cluster exits 69 after startup.timeout.ms, usage errors exit 64.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail

expect_exit() { # want, name, command...
    local want=$1 name=$2; shift 2
    "$@" > "$tmp/out" 2> "$tmp/err"; local rc=$?
    [ $rc -eq "$want" ] && ok || { bad "$name: exit $rc, expected $want"; cat "$tmp/err"; }
}

echo '{"kafka": {"consumer": {"enable.auto.commit": true}}}' > "$tmp/owned.json"
expect_exit 78 "owned property" "$cuepoint" run --config "$tmp/owned.json"
grep -q '\$.kafka.consumer.enable.auto.commit' "$tmp/err" && ok || bad "the error does not name the JSON path"

# Standby replicas are kept from the changelog: turned off, a config error.
echo '{"num.standby.replicas": 1, "changelog.enabled": false}' > "$tmp/standby.json"
expect_exit 78 "standby without changelog" "$cuepoint" run --config "$tmp/standby.json" --state-dir "$tmp/s0" --machines "$root/deploy/machines"
grep -qF '$.num.standby.replicas: 1 needs \"changelog.enabled\": true' "$tmp/err" && ok || { bad "standby without changelog: $(cat "$tmp/err")"; }
echo '{"processing.guarantee": "exactly_once_v2", "changelog.enabled": false}' > "$tmp/eos.json"
expect_exit 78 "exactly-once without changelog" "$cuepoint" run --config "$tmp/eos.json" --state-dir "$tmp/s0" --machines "$root/deploy/machines"
grep -qF '$.processing.guarantee: exactly_once_v2 needs \"changelog.enabled\": true' "$tmp/err" && ok || bad "exactly-once without changelog: $(cat "$tmp/err")"
echo '{"num.standby.replicas": -1}' > "$tmp/standby.json"
expect_exit 78 "negative standby replicas" "$cuepoint" run --config "$tmp/standby.json"
grep -q '\$.num.standby.replicas' "$tmp/err" && ok || bad "a negative num.standby.replicas: $(cat "$tmp/err")"

echo '{"kafka": {"sasl.oauthbearer.method": "bogus-hunter2", "sasl.password": "hunter2"}}' > "$tmp/secret.json"
expect_exit 78 "rejected secret property" "$cuepoint" run --config "$tmp/secret.json" --state-dir "$tmp/s1" --machines "$root/deploy/machines"
grep -q 'sasl.oauthbearer.method' "$tmp/err" && ok || bad "the error does not name the property"
grep -q hunter2 "$tmp/err" && bad "a secret value reached stderr" || ok
# librdkafka accepts this one, then quotes it in its own warnings: cuepoint's log scrubs it.
echo '{"bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 1000, "kafka": {"sasl.mechanism": "PLAIN-hunter2", "sasl.password": "hunter2"}}' > "$tmp/secret2.json"
expect_exit 69 "unreachable, with secrets" "$cuepoint" run --config "$tmp/secret2.json" --state-dir "$tmp/s3" --machines "$root/deploy/machines"
grep -q 'sasl.mechanism' "$tmp/err" && ok || bad "librdkafka's warning about sasl.mechanism is missing (test premise)"
grep -q hunter2 "$tmp/err" && bad "a secret value reached librdkafka's log lines" || ok

export CUE_TEST_PW=from-env-hunter2
echo '{"kafka": {"sasl.password": {"env": "CUE_TEST_PW"}, "ssl.key.pem": "KEYDATA"}}' > "$tmp/dump.json"
expect_exit 0 "--print-config" "$cuepoint" run --config "$tmp/dump.json" --print-config --machines "$root/deploy/machines"
grep -q '"sasl.password": "\[redacted\]"' "$tmp/out" && ! grep -q 'hunter2\|KEYDATA' "$tmp/out" && ok \
    || bad "--print-config does not redact: $(cat "$tmp/out")"

start=$(date +%s)
echo '{}' > "$tmp/empty.json"
expect_exit 69 "no broker" "$cuepoint" run --config "$tmp/empty.json" --set bootstrap.servers=127.0.0.1:1 \
    --set startup.timeout.ms=1500 --state-dir "$tmp/s2" --machines "$root/deploy/machines"
[ $(( $(date +%s) - start )) -le 10 ] && ok || bad "took more than 10 s to give up"
grep -q '"level":"error".*no broker of 127.0.0.1:1 answered' "$tmp/err" && ok || bad "no clear error line"

expect_exit 64 "unknown option" "$cuepoint" run --no-such-option
expect_exit 0 "--help" "$cuepoint" run --help
grep -q 'admin.listen' "$tmp/out" && ok || bad "run --help does not describe the admin API"
expect_exit 0 "dev-broker --help" "$cuepoint" dev-broker --help
expect_exit 64 "dev-broker bad option" "$cuepoint" dev-broker --partitions 0
expect_exit 64 "dev-broker --debug with a context librdkafka does not have" "$cuepoint" dev-broker --debug nosuch
grep -q "debug contexts 'nosuch'" "$tmp/err" && ok || bad "--debug nosuch: $(cat "$tmp/err")"
# --debug mock: the cluster logs what it serves, a produced record's append among it.
"$cuepoint" dev-broker --debug mock --topic dbg > "$tmp/dbg.txt" 2> "$tmp/dbg.log" &
dbg=$!
for _ in $(seq 100); do [ -s "$tmp/dbg.txt" ] && break; sleep 0.1; done
printf 'k\tv\n' | kcat -b "$(head -n1 "$tmp/dbg.txt")" -P -t dbg -K $'\t' 2> /dev/null
for _ in $(seq 50); do grep -q 'Log append dbg \[' "$tmp/dbg.log" && break; sleep 0.1; done
kill "$dbg"; wait "$dbg" 2> /dev/null
grep -q '"level":"debug".*Log append dbg \[[0-9]\] 1 messages' "$tmp/dbg.log" && ok \
    || bad "dev-broker --debug mock logged no append: $(tail -c 300 "$tmp/dbg.log")"
finish
