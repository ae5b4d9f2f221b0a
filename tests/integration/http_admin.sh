#!/bin/bash
# admin.listen beyond 127.0.0.1, and who may read /v1/users/{id}:
# - "[::1]:0" binds IPv6's loopback only; with no token the user API is open
#   there, as on 127.0.0.1 (only this host reaches it);
# - "0.0.0.0:0" without admin.users.token: health and metrics answer, the
#   user API is refused with 403 (no credentials would help), and a warning
#   says so at start;
# - with admin.users.token (here from the environment): 401 and a
#   WWW-Authenticate challenge without the token or with another one, 200
#   with it, 404 with it for a user this instance has no state for; health
#   and metrics still need nothing; the token is in no log and not in
#   --print-config;
# - "localhost:0", a host name, with the token from a file: the token is
#   asked for on loopback too once it is set;
# - an admin.listen that is not an address: exit 78 naming it.
. "$(dirname "$0")/../lib.sh" "$1"
. "$(dirname "$0")/../kafka_lib.sh"
set -uo pipefail

# The changelog (on by default) needs the input's partition count; the dev
# broker would create it on first use with 4: named here.
broker_start --partitions 2 --topic events --topic triggers --topic dead \
    --topic v6-changelog --topic open-changelog --topic tok-changelog --topic name-changelog
"$cuepoint" generate --users 50 --events 500 --seed 9 > "$tmp/a.jsonl"
produce "$tmp/a.jsonl" events
user=$(grep -o '"user_id":"[^"]*"' "$tmp/a.jsonl" | head -1 | sed 's/.*:"//; s/"$//')
token=Tok3n-for-the-user-api-0123456789
export CUE_TEST_ADMIN_TOKEN=$token

# get ADDRESS PATH [curl option...]: the status; the body in $tmp/body, the
# headers in $tmp/headers.
get() {
    local addr=$1 path=$2; shift 2
    curl -sg --max-time 5 -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$@" "http://$addr$path"
}

# run NAME LISTEN [config member...]: starts an instance, sets $addr.
run() {
    local name=$1 listen=$2 extra=${3:-}
    config "$name" "$name" events triggers
    sed -i "s|\"admin.listen\": \"127.0.0.1:0\"|\"admin.listen\": \"$listen\"$extra|" "$tmp/$name.json"
    start_run "$name" "$tmp/$name.log"
    for _ in $(seq 100); do [ -s "$tmp/$name.admin" ] && break; sleep 0.05; done
    addr=$(cat "$tmp/$name.admin" 2>/dev/null)
    [ -n "$addr" ] && ok || { bad "$name: no admin address"; tail -3 "$tmp/$name.log"; }
}

# wait_user: until the user's state is there (the group joined, events read).
wait_user() {
    for _ in $(seq 300); do [ "$(get "$addr" "/v1/users/$user" "$@")" = 200 ] && return 0; sleep 0.1; done
    return 1
}

stop() {
    kill -TERM "$run_pid"; wait "$run_pid"; local rc=$?; run_pid=
    [ $rc -eq 0 ] && ok || bad "$1: exit $rc after SIGTERM"
}

# IPv6 loopback, no token: open, like 127.0.0.1.
run v6 "[::1]:0"
case "$addr" in "[::1]:"*) ok ;; *) bad "v6: admin address '$addr', expected [::1]:PORT" ;; esac
[ "$(get "$addr" /healthz)" = 200 ] && ok || bad "v6: /healthz over IPv6"
wait_user && ok || bad "v6: /v1/users/$user never answered 200: $(cat "$tmp/body")"
port=${addr##*:}
[ "$(get "127.0.0.1:$port" /healthz)" = 000 ] && ok || bad "v6: [::1] answers on 127.0.0.1 too"
stop v6

# Every interface, no token: probes yes, personal data no.
run open "0.0.0.0:0"
case "$addr" in "0.0.0.0:"*) ok ;; *) bad "open: admin address '$addr'" ;; esac
port=${addr##*:}
[ "$(get "127.0.0.1:$port" /healthz)" = 200 ] && ok || bad "open: /healthz"
[ "$(get "127.0.0.1:$port" /metrics)" = 200 ] && ok || bad "open: /metrics"
code=$(get "127.0.0.1:$port" "/v1/users/$user")
[ "$code" = 403 ] && grep -q 'admin.users.token is not set' "$tmp/body" && ok \
    || bad "open: /v1/users without a token configured: $code $(cat "$tmp/body")"
code=$(get "127.0.0.1:$port" "/v1/users/$user" -H "Authorization: Bearer $token")
[ "$code" = 403 ] && ok || bad "open: a token nobody configured opened the user API: $code"
grep -q '"level":"warn".*/v1/users/{id} refused (403)' "$tmp/open.log" && ok \
    || bad "open: no warning that the user API is refused"
stop open

# Every interface with a token from the environment.
run tok "0.0.0.0:0" ', "admin.users.token": {"env": "CUE_TEST_ADMIN_TOKEN"}'
port=${addr##*:}
a="127.0.0.1:$port"
wait_user -H "Authorization: Bearer $token" && ok || bad "tok: /v1/users/$user with the token: $(cat "$tmp/body")"
grep -q "\"$user\"" "$tmp/body" && ok || bad "tok: the state is not $user's"
code=$(get "$a" "/v1/users/$user")
[ "$code" = 401 ] && grep -qi '^WWW-Authenticate: Bearer realm="cuepoint"' "$tmp/headers" && ok \
    || bad "tok: no token: $code $(grep -i www-auth "$tmp/headers")"
code=$(get "$a" "/v1/users/$user" -H "Authorization: Bearer wrong-token-0123456789")
[ "$code" = 401 ] && grep -qi 'error="invalid_token"' "$tmp/headers" && ok \
    || bad "tok: a wrong token: $code $(grep -i www-auth "$tmp/headers")"
code=$(get "$a" "/v1/users/$user" -H "Authorization: Basic $token")
[ "$code" = 401 ] && ok || bad "tok: the token as Basic: $code"
code=$(get "$a" /v1/users/nobody-here -H "Authorization: Bearer $token")
[ "$code" = 404 ] && ok || bad "tok: an unknown user with the token: $code"
code=$(get "$a" /v1/users/nobody-here)
[ "$code" = 401 ] && ok || bad "tok: an unknown user without the token: $code (404 would tell who exists)"
[ "$(get "$a" /healthz)" = 200 ] && [ "$(get "$a" /readyz)" = 200 ] && [ "$(get "$a" /metrics)" = 200 ] \
    && ok || bad "tok: health, readiness or metrics asked for the token"
"$cuepoint" run --config "$tmp/tok.json" --print-config > "$tmp/print.txt" 2>&1
grep -q '"admin.users.token": "\[redacted\]"' "$tmp/print.txt" && ok || bad "tok: --print-config: $(grep admin "$tmp/print.txt")"
stop tok
grep -q "$token" "$tmp/tok.log" "$tmp/print.txt" && bad "tok: the token is in a log or the printed config" || ok
grep -q '/v1/users/{id} refused' "$tmp/tok.log" && bad "tok: warned although a token is set" || ok

# A host name, the token from a file: asked for on loopback too.
printf '%s\n' "$token" > "$tmp/token.txt"
run name "localhost:0" ", \"admin.users.token\": {\"file\": \"$tmp/token.txt\"}"
case "$addr" in 127.*|"[::1]:"*) ok ;; *) bad "name: localhost bound '$addr'" ;; esac
[ "$(get "$addr" /healthz)" = 200 ] && ok || bad "name: /healthz"
[ "$(get "$addr" "/v1/users/$user")" = 401 ] && ok || bad "name: no token on loopback: $(cat "$tmp/body")"
code=$(get "$addr" "/v1/users/$user" -H "Authorization: Bearer $token")
[ "$code" = 200 ] || [ "$code" = 404 ] && ok || bad "name: the token from the file: $code"
stop name

# Not an address: a configuration error that names it.
config bad bad events triggers
"$cuepoint" run --config "$tmp/bad.json" --set "admin.listen=::1:9464" 2> "$tmp/bad.log"
rc=$?
[ $rc -eq 78 ] && grep -q 'admin.listen: .*::1:9464.*IPv6 address in brackets' "$tmp/bad.log" && ok \
    || bad "a malformed admin.listen: exit $rc, $(tail -1 "$tmp/bad.log")"
"$cuepoint" run --config "$tmp/bad.json" --set "admin.users.token=short" 2> "$tmp/bad.log"
rc=$?
[ $rc -eq 78 ] && grep -q 'admin.users.token' "$tmp/bad.log" && ok \
    || bad "a short admin.users.token: exit $rc, $(tail -1 "$tmp/bad.log")"
finish
