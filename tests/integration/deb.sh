#!/bin/bash
# The Debian package as an operator installs it: scripts/package.sh builds
# cuepoint_<version>_amd64.deb (CPack, dependencies from dpkg-shlibdeps);
# `dpkg -i` installs it on this machine; the installed /usr/bin/cuepoint
# prints its version and commit and runs `cuepoint demo` to the end with
# triggers of every journey; /etc/cuepoint/cuepoint.json is a conffile, kept
# across a reinstall when edited, and passes `run --print-config`; the
# installed config runs the pipeline on a dev broker (journeys and policies
# from /usr/share/cuepoint) and drains on SIGTERM; `systemd-analyze verify`
# accepts both units (and rejects a misspelt key, so it can fail); their
# exit codes, stop timeout and hardening are the ones docs/deploy.md
# promises; every lintian tag is listed in docs/deploy.md with its reason.
# The package is purged at the end. It needs root and a usable dpkg: without
# them the test says so and is skipped.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail

skip() { echo "deb: skipped: $*"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root, dpkg -i cannot install"
command -v dpkg >/dev/null && command -v dpkg-deb >/dev/null || skip "no dpkg (not a Debian system)"
dpkg --audit > /dev/null 2>&1 || skip "dpkg's database is not usable here (dpkg --audit failed)"
if dpkg-query -W -f='${Status}' cuepoint 2>/dev/null | grep -q "install ok installed"; then
    skip "a cuepoint package is installed already; this test will not replace it"
fi
installed=""
broker_pid=""
run_pid=""
cleanup() {
    [ -n "$run_pid" ] && kill -9 "$run_pid" 2>/dev/null
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null
    [ -n "$installed" ] && dpkg --purge cuepoint > "$tmp/purge.log" 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

t0=$(date +%s)
deb=$("$root/scripts/package.sh" 2> "$tmp/package.err" | tail -n1)
[ -f "$deb" ] || { bad "scripts/package.sh made no package: $(tail -5 "$tmp/package.err")"; finish; exit 1; }
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes, built in $(( $(date +%s) - t0 )) s"
case "$(basename "$deb")" in cuepoint_*_amd64.deb) ok ;; *) bad "package name $(basename "$deb")" ;; esac
dpkg-deb -f "$deb" Depends > "$tmp/depends"
for lib in librdkafka1 libsnappy1v5 libjansson4 libuv1 libmicrohttpd12 libglib2.0-0 libxxhash0 libjemalloc2 tzdata; do
    grep -q "$lib" "$tmp/depends" && ok || bad "Depends lacks $lib (dpkg-shlibdeps): $(cat "$tmp/depends")"
done
dpkg-deb -c "$deb" | awk '{ print $6 }' > "$tmp/files"
for f in ./usr/bin/cuepoint ./etc/cuepoint/cuepoint.json ./lib/systemd/system/cuepoint.service \
         ./lib/systemd/system/cuepoint@.service ./usr/share/cuepoint/policies.json \
         ./usr/share/cuepoint/machines/onboarding.json ./usr/share/cuepoint/schemas/machine.schema.json \
         ./usr/share/man/man1/cuepoint.1.gz ./usr/share/doc/cuepoint/README.md \
         ./usr/share/doc/cuepoint/docs/deploy.md ./usr/share/doc/cuepoint/docs/console.png; do
    grep -qx "$f" "$tmp/files" && ok || bad "the package lacks $f"
done

DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" > "$tmp/dpkg.log" 2>&1 && installed=1 && ok \
    || { bad "dpkg -i failed"; tail -5 "$tmp/dpkg.log"; finish; exit 1; }
[ "$(command -v cuepoint)" = /usr/bin/cuepoint ] && ok || bad "cuepoint on PATH is $(command -v cuepoint)"
want="cuepoint $(sed -n 's/^project(cuepoint VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt") (commit $(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown))"
got=$(/usr/bin/cuepoint version)
[ "$got" = "$want" ] && ok || bad "version: '$got', expected '$want'"
dpkg-query -W -f='${Conffiles}\n' cuepoint | grep -q '^ /etc/cuepoint/cuepoint.json ' && ok \
    || bad "/etc/cuepoint/cuepoint.json is not a conffile"

# The demo from the installed binary: every journey makes triggers.
(cd "$tmp" && timeout 120 cuepoint demo --sample 0 > "$tmp/demo.out" 2> "$tmp/demo.err") && ok \
    || { bad "cuepoint demo: exit $?"; tail -5 "$tmp/demo.err"; }
for t in onboarding_stalled onboarding_completed missed_deadline fifth_project_delivered user_dormant; do
    grep -qE "^ +$t +[a-z]+ +[1-9]" "$tmp/demo.out" && ok || bad "the demo made no $t"
done
echo "demo: $(grep -o '[0-9]* triggers produced' "$tmp/demo.out")"

# The shipped config is valid as installed, and runs the pipeline.
(cd / && cuepoint run --config /etc/cuepoint/cuepoint.json --print-config > "$tmp/print.json" 2> "$tmp/print.err") && ok \
    || bad "the installed config fails --print-config: $(cat "$tmp/print.err")"
grep -q '"machines.dir": "/usr/share/cuepoint/machines"' "$tmp/print.json" && ok || bad "installed machines.dir: $(grep machines.dir "$tmp/print.json")"
# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
cuepoint dev-broker --partitions 2 --topic events --topic triggers --topic cuepoint-dead-letters \
    --topic cuepoint-changelog > "$tmp/broker.txt" 2> "$tmp/broker.log" &
broker_pid=$!
for _ in $(seq 100); do [ -s "$tmp/broker.txt" ] && break; sleep 0.1; done
cuepoint generate --users 200 --events 2000 --seed 3 | sed -E 's/^(.*"user_id":"([^"]*)".*)$/\2\t\1/' \
    | kcat -b "$(head -n1 "$tmp/broker.txt")" -P -t events -K $'\t' 2> "$tmp/kcat.log"
cuepoint run --config /etc/cuepoint/cuepoint.json --set "bootstrap.servers=$(head -n1 "$tmp/broker.txt")" \
    --set admin.listen=127.0.0.1:0 --state-dir "$tmp/state" --admin-addr-file "$tmp/admin" 2> "$tmp/run.log" &
run_pid=$!
ready=
for _ in $(seq 300); do
    [ -s "$tmp/admin" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$(cat "$tmp/admin")/readyz")" = 200 ] && ready=1 && break
    sleep 0.1
done
[ -n "$ready" ] && ok || { bad "the installed config never became ready"; tail -3 "$tmp/run.log"; }
for _ in $(seq 100); do
    n=$(curl -s "http://$(cat "$tmp/admin")/metrics" | awk '$1 == "cuepoint_records_consumed_total" { print $2 }')
    [ "${n:-0}" -ge 2000 ] && break; sleep 0.1
done
[ "${n:-0}" -ge 2000 ] && ok || bad "consumed ${n:-0} of 2000"
kill -TERM "$run_pid"; stopped=$(date +%s%N)
wait "$run_pid"; rc=$?; run_pid=""
[ "$rc" = 0 ] && ok || bad "SIGTERM: exit $rc"
stop_ms=$(( ($(date +%s%N) - stopped) / 1000000 ))
echo "drained in $stop_ms ms after SIGTERM"

# The units: systemd's own checker, offline, and what they promise.
units=(/lib/systemd/system/cuepoint.service /lib/systemd/system/cuepoint@demo.service)
cp /lib/systemd/system/cuepoint@.service "$tmp/cuepoint@demo.service"
if command -v systemd-analyze > /dev/null; then
    systemd-analyze verify /lib/systemd/system/cuepoint.service "$tmp/cuepoint@demo.service" > "$tmp/verify.out" 2>&1 \
        && [ ! -s "$tmp/verify.out" ] && ok || { bad "systemd-analyze verify:"; cat "$tmp/verify.out"; }
    sed 's/^RestartPreventExitStatus=/RestartPreventExitStatuss=/' /lib/systemd/system/cuepoint.service > "$tmp/typo.service"
    systemd-analyze verify "$tmp/typo.service" > "$tmp/typo.out" 2>&1
    grep -q "Unknown key" "$tmp/typo.out" && ok || bad "systemd-analyze verify did not catch a misspelt key (test premise)"
    for u in /lib/systemd/system/cuepoint.service "$tmp/cuepoint@demo.service"; do
        exposure=$(systemd-analyze security --offline=yes "$u" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        echo "systemd-analyze security: $(basename "$u") exposure $exposure"
        awk -v e="${exposure:-99}" 'BEGIN { exit !(e < 2.0) }' && ok || bad "$(basename "$u"): exposure ${exposure:-unknown}, not below 2.0"
    done
else
    bad "systemd-analyze is not installed (scripts/deps.sh --test installs systemd)"
fi
timeout_ms=$(jq '."shutdown.timeout.ms"' "$tmp/print.json")
for u in /lib/systemd/system/cuepoint.service /lib/systemd/system/cuepoint@.service; do
    v() { sed -n "s/^$1=//p" "$u"; }
    [ "$(v RestartPreventExitStatus)" = "64 65 78" ] && ok || bad "$u: RestartPreventExitStatus=$(v RestartPreventExitStatus)"
    [ "$(v Restart)" = on-failure ] && ok || bad "$u: Restart=$(v Restart)"
    [ "$(( $(v TimeoutStopSec) * 1000 ))" -gt "$timeout_ms" ] && ok || bad "$u: TimeoutStopSec=$(v TimeoutStopSec) not above shutdown.timeout.ms=$timeout_ms"
    for k in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes; do
        grep -qx "$k" "$u" && ok || bad "$u lacks $k"
    done
    v ExecStart | grep -q -- '--state-dir ${STATE_DIRECTORY}' && v StateDirectory | grep -q '^cuepoint' && ok || bad "$u: state.dir is not the StateDirectory"
done

# lintian: every tag it reports is explained in docs/deploy.md.
if command -v lintian > /dev/null; then
    lintian -I -E --pedantic "$deb" 2> /dev/null | sed -n 's/^[EWIPX]: cuepoint[^:]*: \([a-z0-9.+-]*\).*/\1/p' | sort -u > "$tmp/tags"
    echo "lintian: $(tr '\n' ' ' < "$tmp/tags")"
    while read -r tag; do
        grep -q "\`$tag\`" "$root/docs/deploy.md" && ok || bad "lintian tag $tag is not explained in docs/deploy.md"
    done < "$tmp/tags"
else
    bad "lintian is not installed (scripts/deps.sh --test installs it)"
fi

# A conffile edited by the operator survives a reinstall.
echo '{"admin.listen": "127.0.0.1:0", "machines.dir": "/usr/share/cuepoint/machines"}' > /etc/cuepoint/cuepoint.json
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" > "$tmp/dpkg2.log" 2>&1 && ok || bad "reinstall failed"
grep -q '127.0.0.1:0' /etc/cuepoint/cuepoint.json && ok || bad "the edited conffile was replaced on reinstall"
dpkg --purge cuepoint > "$tmp/purge.log" 2>&1 && installed="" && ok || bad "dpkg --purge failed: $(tail -3 "$tmp/purge.log")"
[ ! -e /usr/bin/cuepoint ] && [ ! -e /etc/cuepoint/cuepoint.json ] && ok || bad "files left after purge"
echo "deb test took $(( $(date +%s) - t0 )) s"
finish
