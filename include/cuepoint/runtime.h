/*
 * runtime: `cuepoint run`, the Kafka pipeline, on one libuv loop.
 *
 * The loop owns every activity: the consumer's and the producer's queues wake
 * it through pipes (no polling, no sleeps), a timer starts the commit cycle
 * every commit.interval.ms (a task whose cache fills with changed users asks
 * for it sooner), another moves caught-up partitions' time with the
 * wall clock, the admin HTTP server answers on the same loop, and SIGTERM or
 * SIGINT stop it. Each assigned partition is a task (task.h) over the shared
 * state store; the user cache budget (statestore.cache.max.bytes) is shared
 * among the input topic's partitions.
 *
 * The commit cycle: stop taking records, wait (on the loop) for every produced
 * trigger, dead letter and decision to be acknowledged; for each task, write
 * its changelog records (changelog.enabled) and wait for them, then its store
 * batch (users, timer index, input offset, changelog position); then commit
 * the offsets to the group, and take records again. A failed delivery ends
 * the run without committing past it: the next run makes the trigger again,
 * with the same id.
 *
 * With the changelog, a partition whose store is missing or behind it is held
 * and rebuilt from it on the loop (restore.h) before it takes input; with
 * "repartition", a first stage in its own group re-keys the input by user id
 * into <application.id>-repartition, merged across partitions in event-time
 * order, and the tasks read that.
 *
 * One thread. The runtime borrows the config, the machines and the policy; it
 * owns the store, the Kafka clients, the HTTP server and the tasks.
 */
#ifndef CUEPOINT_RUNTIME_H
#define CUEPOINT_RUNTIME_H

#include "cuepoint/config.h"
#include "cuepoint/engine.h"
#include "cuepoint/err.h"
#include "cuepoint/machine.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cue_runtime_opts {
    const cue_config *cfg;           /* borrowed */
    const cue_machines *ms;          /* borrowed */
    const struct cue_policy *policy; /* the policy stage, or NULL; borrowed */
    /* The wall clock, in epoch ms; NULL for the real one. A seam for tests. */
    int64_t (*now_ms)(void *ctx);
    void *now_ctx;
    /* Stop (commit, leave the group, exit 0) once every assigned partition
     * has reached its high watermark and nothing is in flight: for the demo,
     * benchmarks and tests that process a finite topic. */
    bool stop_at_end;
    /* Called for every trigger after it was handed to the producer. */
    void (*on_trigger)(const cue_trigger *t, const char *rec, size_t len, void *ctx);
    void *on_trigger_ctx;
    /* When set, the bound admin address ("127.0.0.1:PORT") is written here
     * once listening, so tests can use port 0. */
    const char *admin_addr_file;
} cue_runtime_opts;

typedef struct cue_runtime_result {
    /* consumed = applied + duplicates + dead_letters */
    uint64_t consumed, applied, duplicates, dead_letters, triggers, commits, rebalances;
    uint64_t dead_by_reason[CUE_REASON_COUNT];
    uint64_t by_trigger[CUE_MACHINES_MAX][CUE_MACHINE_TRIGGERS_MAX];
    double seconds;        /* the whole run, start-up and group join included */
    double active_seconds; /* from the first record consumed to the last */
    int signal;            /* the signal that stopped the run, or 0 */
    /* The returned error was logged when the run stopped for it ("stopping
     * without committing"), so a caller need not log it again. */
    bool error_logged;
} cue_runtime_result;

/* What cue_runtime_run would refuse before it reaches a broker or the
 * state directory: the rules between settings (cue_config_check), the
 * librdkafka properties of both clients (cue_kafka_check) and the admin
 * address (its host bound on a free port and let go). CUE_ECONFIG naming
 * the setting. `cuepoint run` and `run --print-config` call it after loading
 * the machines and the policy file, so both refuse the same configs. */
int cue_runtime_check(const cue_runtime_opts *o, cue_err *err);

/* Runs until a signal, stop_at_end, or a failure. Returns 0 after a clean
 * stop; CUE_EUNAVAILABLE when the brokers did not answer within
 * startup.timeout.ms; CUE_ECONFIG for a bad librdkafka property or admin
 * address; CUE_ESTORE/CUE_EIO for the disk; CUE_EIO for a failed delivery. */
int cue_runtime_run(const cue_runtime_opts *o, cue_runtime_result *res, cue_err *err);

#endif
