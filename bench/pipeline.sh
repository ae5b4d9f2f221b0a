#!/bin/bash
# The pipeline benchmark: the same generated records read by a bare librdkafka
# consumer that does nothing with them (bench/bare_consumer.c) and by
# `cuepoint run` through the four journeys in deploy/machines, then the
# end-to-end latency from producing an event to reading its trigger.
#
#   bench/pipeline.sh                                   full size (1M events, 100k users, 3 rounds)
#   EVENTS=20000 USERS=2000 RUNS=1 LAT_SECONDS=2 LAT_RATE=2000 bench/pipeline.sh   smoke size
#
# Everything runs on this machine: `cuepoint dev-broker` (librdkafka's mock
# cluster, 127.0.0.1 only) in its own process, EVENTS records from
# `cuepoint generate --seed $SEED` produced to it once with kcat, keyed by
# user id. Then RUNS rounds of: the bare consumer (assign, all partitions from
# the beginning to their high watermarks), then `cuepoint run --stop-at-end`
# with a fresh application.id, state dir and trigger topic.
#
# What each rate covers: both are records / seconds from the first record
# received to the last one. The bare consumer times itself; cuepoint's figure
# is its own `active_seconds` (first record to last, from its "stopped" log
# line), so the ~3 s group join and the final commit are out of both. An
# outside cross-check, bench/metrics_watch polling /metrics every 20 ms, is
# printed as metrics_rate (it errs low by up to one interval).
#
# What each CPU figure covers: the CPU time (user + system, every thread) of
# the whole process, start to exit, from the shell's own accounting of the
# children it waited for (bash's `times`, i.e. getrusage RUSAGE_CHILDREN,
# read before and after each program), as cpu_s_per_M: CPU-seconds per
# million records. For cuepoint that includes opening the state store,
# joining the group and the final commit; for the bare consumer its
# metadata look-ups. The target is cuepoint <= 3x the bare consumer's.
#
# peak_rss_mb: each process's peak resident memory (getrusage's ru_maxrss,
# the bare consumer's own line, cuepoint's "stopped" line). Both read a
# backlog here, so librdkafka's prefetch fills to its bounds in cuepoint,
# which reads slower (docs/architecture.md#memory says what the rest is).
#
# Both consumers get the same librdkafka consumer properties ($CONSUMER_PROPS;
# passed to cuepoint through the config's kafka.consumer object):
#   fetch.max.bytes, max.partition.fetch.bytes   raised, as the issue asks;
#   queued.min.messages=1000000   librdkafka 2.0.2 compares each partition's
#       queue length with this (default 100000) but, with all partitions
#       forwarded to one consumer queue, it is the whole queue's length: one
#       fetch over 64 partitions fills it, every partition stops fetching and
#       is looked at again only on the broker thread's next wake-up, so a
#       consumer that takes time per record (cuepoint) idles ~0.6 s after each
#       fetch. CONSUMER_PROPS="fetch.max.bytes=104857600" shows that;
#   fetch.wait.max.ms=100   cuepoint's own default, made explicit for both.
# Both programs (and the dev-broker, which is cuepoint) use the same allocator:
# jemalloc when built with CUE_JEMALLOC (the default outside sanitizer builds),
# which alone makes librdkafka read ~1.3x faster here than glibc's malloc, so
# the ratio compares what each does with the records, not two allocators.
# Producing uses large batches (linger 2 s): the mock returns one batch per
# partition per fetch and finds a batch by scanning the partition's list, so
# with small batches the mock itself is the bottleneck (~20k records/s).
#
# Latency, LAT_RUNS times (default RUNS), then the medians of p50, p99 and
# max (case=latency_summary, target p99 <= 20 ms): a fresh dev-broker with
# LAT_PARTITIONS (default 4) partitions per topic, a fresh `cuepoint run` on
# it (no --stop-at-end; fetch.wait.max.ms of LAT_FETCH_WAIT_MS, the other
# consumer properties as above) while bench/latency produces at LAT_RATE
# (default: half the median cuepoint rate) for LAT_SECONDS, each
# event's "ts" being its produce time, and reads the trigger topic: latency =
# receive wall time - the trigger's record timestamp, which must equal the
# causing event's ts (checked). Then SIGTERM. Few partitions because the
# latency producer sends small batches (linger.ms=1): over 64 partitions at
# ~100k records/s the mock's linear batch look-ups make it fall behind, and
# the figure would be the mock's. LAT_FETCH_WAIT_MS (default 1) is the
# fetch.wait.max.ms of cuepoint's consumer and of the client reading the
# triggers: a real broker answers a waiting fetch as soon as a record comes,
# but the mock answers a fetch that found nothing only once the whole wait
# has passed, records or not, so each of the two hops would add up to the
# wait to the figure (LAT_FETCH_WAIT_MS=10 shows it: ~6 ms more at the p50).
# The latency stream's users in flight are at different steps, so a fifth
# of any stretch of records causes a trigger; LAT_SHAPE=rounds keeps them in
# step instead (bench/latency --rounds): then two rounds of 10,000 records
# in ten all cause a trigger and the rest none, a burst that shows the cost
# of triggers produced back to back.
#
# THREADS (default 1): cuepoint's num.stream.threads, or several counts
# ("1 2"): each round then runs cuepoint once per count, the summary is the
# first count's, and a line per count gives its medians and its rate against
# the first's (case=threads), measured in the same rounds.
#
# Prints one line per case ("bench=pipeline case=..."), then the summary with
# the medians and their ratios (targets: cuepoint >= 50% of the bare
# consumer's rate, <= 3x its CPU per record).
# Exits non-zero when records are missing or a trigger is wrong, not for a
# missed target. KEEP=1 keeps the work directory (logs, configs, and
# latency-N.trace: round N's triggers, each with its cause time and latency).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

EVENTS=${EVENTS:-1000000}
USERS=${USERS:-100000}
RUNS=${RUNS:-3}
SEED=${SEED:-42}
PARTITIONS=${PARTITIONS:-64}
LAT_SECONDS=${LAT_SECONDS:-15}
LAT_RUNS=${LAT_RUNS:-$RUNS}
LAT_RATE=${LAT_RATE:-}
LAT_PARTITIONS=${LAT_PARTITIONS:-4}
LAT_FETCH_WAIT_MS=${LAT_FETCH_WAIT_MS:-1}
LAT_SHAPE=${LAT_SHAPE:-staggered}
case "$LAT_SHAPE" in staggered | rounds) ;; *) echo "pipeline.sh: LAT_SHAPE is staggered or rounds" >&2; exit 2 ;; esac
THREADS=${THREADS:-1}
for t in $THREADS; do
    [[ "$t" =~ ^[0-9]+$ ]] && [ "$t" -ge 1 ] || { echo "pipeline.sh: THREADS is a list of thread counts" >&2; exit 2; }
done
first_threads=${THREADS%% *}
# The application id of a round's run with t threads (the first count's keeps
# the name it always had).
app_of() { [ "$2" = "$first_threads" ] && echo "bench-run-$1" || echo "bench-run-$1-t$2"; }
# CHANGELOG=1: the cuepoint rounds also write the changelog (changelog.enabled),
# to show what it costs; the changelog topics are created with PARTITIONS.
CHANGELOG=${CHANGELOG:-0}
CONSUMER_PROPS=${CONSUMER_PROPS:-"fetch.max.bytes=104857600 max.partition.fetch.bytes=4194304 queued.min.messages=1000000 fetch.wait.max.ms=100"}
# BIN_DIR: a build directory that already has cuepoint and bench/* (skips the build).
if [ -z "${BIN_DIR:-}" ]; then
    ./scripts/deps.sh
    BIN_DIR=build/bench
    cmake -S . -B "$BIN_DIR" -DCMAKE_BUILD_TYPE=Release -DCUE_TESTS=OFF >/dev/null
    cmake --build "$BIN_DIR" -j"$(nproc)" --target cuepoint bare_consumer metrics_watch latency >/dev/null
fi
BIN_DIR=$(realpath "$BIN_DIR")
cuepoint=$BIN_DIR/cuepoint
command -v kcat >/dev/null || { echo "pipeline.sh: kcat is not installed (scripts/deps.sh installs it)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "pipeline.sh: $*" >&2; exit 1; }

# ---- the broker and the records -----------------------------------------
start_broker() { # name partitions topics...: sets broker_pid and bootstrap
    local name=$1 parts=$2 t topics=()
    shift 2
    for t in "$@"; do topics+=(--topic "$t"); done
    "$cuepoint" dev-broker --partitions "$parts" "${topics[@]}" > "$work/$name.txt" 2> "$work/$name.log" &
    broker_pid=$!
    pids+=("$broker_pid")
    for _ in $(seq 100); do [ -s "$work/$name.txt" ] && break; sleep 0.1; done
    bootstrap=$(head -n1 "$work/$name.txt")
    [ -n "$bootstrap" ] || fail "dev-broker printed no address"
}
changelogs=()
if [ "$CHANGELOG" = 1 ]; then
    for round in $(seq "$RUNS"); do
        for t in $THREADS; do changelogs+=("$(app_of "$round" "$t")-changelog"); done
    done
fi
start_broker broker "$PARTITIONS" events "${changelogs[@]}"

"$cuepoint" generate --users "$USERS" --events "$EVENTS" --seed "$SEED" > "$work/events.jsonl"
avg_bytes=$(awk '{ n += length($0) } END { printf "%.0f", n / NR }' "$work/events.jsonl")
# key<TAB>value, the key being the event's user_id
sed -E 's/^(.*"user_id":"([^"]*)".*)$/\2\t\1/; t; s/^/\t/' "$work/events.jsonl" |
    kcat -b "$bootstrap" -P -t events -K $'\t' -z none -X linger.ms=2000 \
        -X batch.num.messages=100000 -X queue.buffering.max.messages=2000000 \
        -X queue.buffering.max.kbytes=2000000 2> "$work/kcat.log" || fail "kcat produce failed"
echo "bench=pipeline case=setup events=$EVENTS users=$USERS seed=$SEED partitions=$PARTITIONS" \
     "avg_record_bytes=$avg_bytes runs=$RUNS consumer_props=${CONSUMER_PROPS// /,}"

# The consumer properties as --set arguments and as a JSON object.
bare_sets=()
json_props=""
json_props_of() { # props...: "k": "v", ...
    local out="" kv
    for kv in "$@"; do out+="${out:+, }\"${kv%%=*}\": \"${kv#*=}\""; done
    echo "$out"
}
for kv in $CONSUMER_PROPS; do bare_sets+=(--set "$kv"); done
json_props=$(json_props_of $CONSUMER_PROPS)

config() { # file app_id input_topic trigger_topic state_dir consumer_json [threads]
    cat > "$1" <<EOF
{"application.id": "$2", "bootstrap.servers": "$bootstrap", "num.stream.threads": ${7:-$first_threads},
 "input.topic": "$3", "trigger.topic": "$4",
 "errors.dead.letter.queue.topic.name": "$2-dead", "state.dir": "$5",
 "machines.dir": "$root/deploy/machines", "admin.listen": "127.0.0.1:0",
 "wall.clock.advance": false, "changelog.enabled": $([ "$CHANGELOG" = 1 ] && echo true || echo false),
 "kafka": {"consumer": {$6}}}
EOF
}

field() { # line key: the value of key=value in a line
    tr ' ' '\n' <<< "$1" | sed -n "s/^$2=//p" | head -n1
}
json_num() { # json-line key
    sed -nE "s/.*\"$2\":([0-9.eE+-]+).*/\1/p" <<< "$1" | head -n1
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# CPU accounting: `times` (a builtin, so no child of its own) writes the
# user and system time of this shell's waited-for children on its second
# line; cpu_mark saves it, cpu_since sets cpu (the seconds added since) and
# cpu_m (per million of `records`). Both run in this shell, never in a
# subshell, whose own accounting starts from zero.
cpu_mark() { times > "$work/cpu.mark"; }
cpu_since() { # records
    times > "$work/cpu.now"
    local out
    out=$(awk -v n="$1" 'function s(t) { split(t, a, "m"); return a[1] * 60 + a[2] }
        FNR == 2 { c[FILENAME == ARGV[1]] = s($1) + s($2) }
        END { d = c[0] - c[1]; printf "%.3f %.3f", d, d / n * 1e6 }' "$work/cpu.mark" "$work/cpu.now")
    read -r cpu cpu_m <<< "$out"
}

# ---- throughput rounds ---------------------------------------------------
bare_rates=()
cue_rates=()
bare_cpus=()
cue_cpus=()
bare_rss=()
cue_rss=()
declare -A t_rates t_cpus
for round in $(seq "$RUNS"); do
    cpu_mark
    line=$("$BIN_DIR/bench/bare_consumer" --bootstrap "$bootstrap" --topic events "${bare_sets[@]}") ||
        fail "bare consumer: $line"
    cpu_since "$EVENTS"
    records=$(field "$line" records)
    [ "$records" -eq "$EVENTS" ] || fail "bare consumer read $records records, $EVENTS produced"
    bare_rates+=("$(field "$line" rate)")
    bare_cpus+=("$cpu_m")
    bare_rss+=("$(field "$line" peak_rss_mb)")
    echo "bench=pipeline case=bare round=$round records=$records seconds=$(field "$line" seconds)" \
         "rate=$(field "$line" rate) interval=first_record_to_last cpu_seconds=$cpu cpu_s_per_M=$cpu_m" \
         "peak_rss_mb=$(field "$line" peak_rss_mb)"

  for t in $THREADS; do
    app=$(app_of "$round" "$t")
    config "$work/$app.json" "$app" events "$app-triggers" "$work/$app.state" "$json_props" "$t"
    "$BIN_DIR/bench/metrics_watch" --addr-file "$work/$app.addr" --target "$EVENTS" \
        --interval-ms 20 > "$work/$app.watch" 2>&1 &
    watch_pid=$!
    pids+=("$watch_pid")
    cpu_mark
    "$cuepoint" run --config "$work/$app.json" --stop-at-end --admin-addr-file "$work/$app.addr" \
        2> "$work/$app.log" || fail "cuepoint run exit $? (see $work/$app.log; KEEP=1 keeps it)"
    cpu_since "$EVENTS" # before metrics_watch is waited for
    wait "$watch_pid" || true
    stopped=$(grep '"msg":"stopped"' "$work/$app.log" | tail -n1)
    consumed=$(json_num "$stopped" consumed)
    active=$(json_num "$stopped" active_seconds)
    [ "$consumed" -eq "$EVENTS" ] || fail "cuepoint consumed $consumed records, $EVENTS produced"
    watch=$(cat "$work/$app.watch")
    mrate=$(field "$watch" rate)
    if [ -n "$active" ] && awk -v s="$active" 'BEGIN { exit !(s > 0) }'; then
        rate=$(awk -v n="$consumed" -v s="$active" 'BEGIN { printf "%.0f", n / s }')
        secs=$active
    else # a cuepoint without active_seconds: the outside measure
        rate=$mrate
        secs=$(field "$watch" seconds)
    fi
    rss=$(json_num "$stopped" peak_rss_bytes)
    rss_mb=$([ -n "$rss" ] && awk -v b="$rss" 'BEGIN { printf "%.1f", b / 1048576 }' || echo na)
    if [ "$t" = "$first_threads" ]; then
        cue_rates+=("$rate")
        cue_cpus+=("$cpu_m")
        cue_rss+=("$rss_mb")
    fi
    t_rates[$t]+="$rate "
    t_cpus[$t]+="$cpu_m "
    echo "bench=pipeline case=cuepoint round=$round threads=$t records=$consumed seconds=$secs rate=$rate" \
         "interval=first_record_to_last triggers=$(json_num "$stopped" triggers)" \
         "wall_seconds=$(json_num "$stopped" seconds) metrics_rate=${mrate:-na}" \
         "cpu_seconds=$cpu cpu_s_per_M=$cpu_m peak_rss_mb=$rss_mb"
  done
done
bare_med=$(printf '%s\n' "${bare_rates[@]}" | median)
cue_med=$(printf '%s\n' "${cue_rates[@]}" | median)
ratio=$(awk -v c="$cue_med" -v b="$bare_med" 'BEGIN { printf "%.3f", c / b }')
meets=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.5) ? "yes" : "no" }')
bare_cpu_med=$(printf '%s\n' "${bare_cpus[@]}" | median)
cue_cpu_med=$(printf '%s\n' "${cue_cpus[@]}" | median)
cpu_ratio=$(awk -v c="$cue_cpu_med" -v b="$bare_cpu_med" 'BEGIN { printf "%.2f", (b > 0 ? c / b : 0) }')
cpu_meets=$(awk -v r="$cpu_ratio" 'BEGIN { print (r > 0 && r <= 3) ? "yes" : "no" }')
echo "bench=pipeline case=summary runs=$RUNS bare_rate_median=$(printf %.0f "$bare_med")" \
     "cuepoint_rate_median=$(printf %.0f "$cue_med") ratio=$ratio target_ratio=0.50 meets_target=$meets" \
     "bare_cpu_s_per_M_median=$bare_cpu_med cuepoint_cpu_s_per_M_median=$cue_cpu_med" \
     "cpu_ratio=$cpu_ratio target_cpu_ratio=3 meets_cpu_target=$cpu_meets" \
     "bare_peak_rss_mb_median=$(printf '%s\n' "${bare_rss[@]}" | median)" \
     "cuepoint_peak_rss_mb_median=$(printf '%s\n' "${cue_rss[@]}" | grep -v '^na$' | median)"

for t in $THREADS; do
    [ "$t" = "$first_threads" ] && [ "$THREADS" = "$first_threads" ] && break
    t_rate=$(tr ' ' '\n' <<< "${t_rates[$t]}" | grep . | median)
    t_cpu=$(tr ' ' '\n' <<< "${t_cpus[$t]}" | grep . | median)
    echo "bench=pipeline case=threads threads=$t rate_median=$(printf %.0f "$t_rate")" \
         "cpu_s_per_M_median=$t_cpu rate_vs_${first_threads}_threads=$(awk -v a="$t_rate" -v b="$cue_med" 'BEGIN { printf "%.2f", a / b }')"
done

# ---- latency -----------------------------------------------------------------
# LAT_RUNS rounds (default RUNS), each on a broker of its own, with fewer
# partitions (see the top), and a cuepoint starting empty; then the medians.
lat_rate=${LAT_RATE:-$(awk -v c="$cue_med" 'BEGIN { printf "%.0f", c / 2 }')}
lat_props=$(json_props_of $(tr ' ' '\n' <<< "$CONSUMER_PROPS" | grep -v '^fetch.wait.max.ms=') "fetch.wait.max.ms=$LAT_FETCH_WAIT_MS")
lat_shape=()
[ "$LAT_SHAPE" = rounds ] && lat_shape=(--rounds)
lat_p50=()
lat_p99=()
lat_max=()
for round in $(seq "$LAT_RUNS"); do
    kill "$broker_pid"
    wait "$broker_pid" 2>/dev/null || true
    start_broker "lat-broker-$round" "$LAT_PARTITIONS" lat-events lat-triggers
    app=bench-latency-$round
    config "$work/$app.json" "$app" lat-events lat-triggers "$work/$app.state" "$lat_props"
    "$cuepoint" run --config "$work/$app.json" --admin-addr-file "$work/$app.addr" 2> "$work/$app.log" &
    run_pid=$!
    pids+=("$run_pid")
    ready=0
    for _ in $(seq 300); do
        if [ -s "$work/$app.addr" ] &&
            curl -sf "http://$(head -n1 "$work/$app.addr")/readyz" >/dev/null 2>&1; then
            ready=1
            break
        fi
        kill -0 "$run_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ "$ready" = 1 ] || fail "cuepoint run (latency) did not become ready (see $work/$app.log)"
    lat_rc=0
    line=$("$BIN_DIR/bench/latency" "${lat_shape[@]}" --bootstrap "$bootstrap" --events-topic lat-events \
            --triggers-topic lat-triggers --rate "$lat_rate" --seconds "$LAT_SECONDS" \
            --set "fetch.wait.max.ms=$LAT_FETCH_WAIT_MS" --trace "$work/latency-$round.trace") || lat_rc=$?
    # The commit cycles' stops (intake stands still in each): what the tail is
    # made of; and how many cycles began early, or tasks committed alone, because
    # caches filled with changed users between cycles.
    cycles=$(curl -sf "http://$(head -n1 "$work/$app.addr")/metrics" |
        awk '$1 == "cuepoint_commit_duration_seconds_sum" { s = $2 }
             $1 == "cuepoint_commit_duration_seconds_count" { n = $2 }
             $1 == "cuepoint_commit_cycles_early_total" { e = $2 }
             $1 == "cuepoint_task_own_commits_total" { o = $2 }
             END { if (n > 0) printf " commit_cycles=%d commit_stop_avg_ms=%.1f", n, s * 1000 / n
                   printf " early_cycles=%d own_commits=%d", e, o }')
    kill -TERM "$run_pid"
    wait "$run_pid" || fail "cuepoint run (latency) exit $? after SIGTERM"
    echo "bench=pipeline case=$line round=$round$cycles"
    [ "$lat_rc" -eq 0 ] || fail "latency: triggers missing or wrong (exit $lat_rc)"
    lat_p50+=("$(field "$line" p50_ms)")
    lat_p99+=("$(field "$line" p99_ms)")
    lat_max+=("$(field "$line" max_ms)")
done
p99_med=$(printf '%s\n' "${lat_p99[@]}" | median)
echo "bench=pipeline case=latency_summary runs=$LAT_RUNS rate=$lat_rate" \
     "p50_ms_median=$(printf '%s\n' "${lat_p50[@]}" | median) p99_ms_median=$p99_med" \
     "max_ms_median=$(printf '%s\n' "${lat_max[@]}" | median) p99_ms_each=$(IFS=,; echo "${lat_p99[*]}")" \
     "target_p99_ms=20 meets_target=$(awk -v p="$p99_med" 'BEGIN { print (p <= 20) ? "yes" : "no" }')"
