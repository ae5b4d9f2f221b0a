#!/bin/bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan + UBSan, no
# suppressions) and runs each for SECONDS (default 20), two at a time. Fails
# on any finding, printing the reproducer's path and how to replay it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    e.g. scripts/fuzz.sh 3600 restore members
#   scripts/fuzz.sh --seeds                  rewrites the made seeds in tests/fuzz/corpus
#   scripts/fuzz.sh --coverage [TARGET...]   line coverage of each target's modules by its
#                                            corpus so far (llvm-cov; build/fuzz-cov)
#
# Each target's corpus grows in build/fuzz/work/corpus/<target> (the seeds in
# tests/fuzz/corpus/<target> are read too, never written), so runs add up:
# a long run is the same command with more seconds. Findings go to
# build/fuzz/work/findings/, logs to build/fuzz/work/logs/, and one line per
# target and run to build/fuzz/work/summary.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh --fuzz

build=build/fuzz
work=$build/work
CC=clang cmake -S . -B "$build" -DCUE_FUZZ=ON -DCUE_TESTS=OFF -DCUE_BENCH=OFF -DCUE_WERROR=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

if [ "${1:-}" = "--seeds" ]; then
    cmake --build "$build" -j"$(nproc)" --target cue_fuzz_seeds
    "$build/tests/fuzz/cue_fuzz_seeds" . tests/fuzz/corpus
    exit 0
fi

coverage=false
if [ "${1:-}" = "--coverage" ]; then
    coverage=true
    shift
fi
secs=20
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do
        t=${f#tests/fuzz/fuzz_}
        targets+=("${t%.c}")
    done
fi
for t in "${targets[@]}"; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target '$t' (tests/fuzz/fuzz_$t.c)" >&2; exit 64; }
done

mkdir -p "$work/corpus" "$work/findings" "$work/logs" "$work/tmp"
cmake --build "$build" -j"$(nproc)" --target cue_fuzz >"$work/logs/build.log" 2>&1 ||
    { tail -40 "$work/logs/build.log" >&2; exit 1; }

# The sources each target is there to reach, for --coverage.
declare -A sources=([json]=src/json.c [event]=src/event.c
    [machine]="src/machine.c src/engine.c src/check.c" [policy]=src/policy.c
    [config]=src/config.c [codec]=src/codec.c [restore]="src/restore.c src/store.c"
    [members]=src/standby.c [timefmt]=src/timefmt.c [http_path]=src/http.c)

if $coverage; then
    cov_build=build/fuzz-cov
    CC=clang cmake -S . -B "$cov_build" -DCUE_FUZZ=ON -DCUE_FUZZ_COVERAGE=ON -DCUE_TESTS=OFF \
        -DCUE_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$cov_build" -j"$(nproc)" --target cue_fuzz >"$work/logs/build-cov.log" 2>&1 ||
        { tail -40 "$work/logs/build-cov.log" >&2; exit 1; }
    mkdir -p "$work/cov"
    for t in "${targets[@]}"; do
        mkdir -p "$work/corpus/$t" "$work/tmp/$t"
        rm -f "$work/cov/$t".prof*
        TMPDIR="$PWD/$work/tmp/$t" LLVM_PROFILE_FILE="$work/cov/$t.profraw" \
            "$cov_build/tests/fuzz/fuzz_$t" -runs=0 "$work/corpus/$t" "tests/fuzz/corpus/$t" \
            </dev/null >"$work/logs/$t-cov.log" 2>&1
        llvm-profdata merge -sparse "$work/cov/$t.profraw" -o "$work/cov/$t.profdata"
        inputs=$(find "$work/corpus/$t" "tests/fuzz/corpus/$t" -type f | wc -l)
        # shellcheck disable=SC2086
        llvm-cov report "$cov_build/tests/fuzz/fuzz_$t" -instr-profile="$work/cov/$t.profdata" \
            ${sources[$t]} | awk -v t="$t" -v n="$inputs" '
            $1 ~ /\.c$/ { sub(".*/", "", $1);
                          printf "%-10s %-12s lines %6s of %5s (%s)  %s inputs\n",
                                 t, $1, $8 - $9, $8, $10, n }'
    done
    exit 0
fi

# No suppressions: every report is a finding. Leaks count too.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_one() {
    local t=$1
    local dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    mkdir -p "$work/corpus/$t" "$work/tmp/$t"
    # stdin from /dev/null: the config target may be told to read a file.
    TMPDIR="$PWD/$work/tmp/$t" "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=25 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/findings/$t-" \
        "${dict[@]}" "$work/corpus/$t" "tests/fuzz/corpus/$t" </dev/null >"$work/logs/$t.log" 2>&1
}

# Two at a time: the machine has two cores, shared.
declare -A pid_of=() started_at=()
failed=()
start() {
    run_one "$1" &
    pid_of[$!]=$1
    started_at[$!]=$SECONDS
}
finish() {
    local pid=$1 rc=$2 t=${pid_of[$1]}
    local took=$((SECONDS - started_at[$1]))
    unset "pid_of[$pid]" "started_at[$pid]"
    local log=$work/logs/$t.log
    local execs cov ft corp
    # A run that stops early may print none of these.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$( (grep -oE 'cov: [0-9]+' "$log" || true) | tail -1 | cut -d' ' -f2)
    ft=$( (grep -oE 'ft: [0-9]+' "$log" || true) | tail -1 | cut -d' ' -f2)
    corp=$(find "$work/corpus/$t" -type f | wc -l)
    local verdict=ok
    [ "$rc" -ne 0 ] && verdict=FINDING
    printf '%-10s %6ss %10s execs  cov %5s  ft %6s  corpus %6s  %s\n' "$t" "$took" "${execs:-?}" \
        "${cov:-?}" "${ft:-?}" "$corp" "$verdict"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" "${execs:-}" \
        "${cov:-}" "${ft:-}" "$corp" "$verdict" >>"$work/summary.tsv"
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        echo "---- $t: $log (last lines)" >&2
        tail -40 "$log" >&2
        local art
        art=$( (grep -oE "Test unit written to [^ ]+" "$log" || true) | tail -1 | cut -d' ' -f5)
        if [ -n "$art" ]; then
            echo "---- $t: reproducer $art" >&2
            echo "     replay: $build/tests/fuzz/fuzz_$t $art" >&2
        fi
    fi
}

echo "fuzz.sh: ${#targets[@]} targets, ${secs}s each, two at a time"
for t in "${targets[@]}"; do
    while [ ${#pid_of[@]} -ge 2 ]; do
        set +e
        wait -n -p done_pid
        rc=$?
        set -e
        finish "$done_pid" "$rc"
    done
    start "$t"
done
while [ ${#pid_of[@]} -gt 0 ]; do
    set +e
    wait -n -p done_pid
    rc=$?
    set -e
    finish "$done_pid" "$rc"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in ${failed[*]} (reproducers in $work/findings/)" >&2
    exit 1
fi
