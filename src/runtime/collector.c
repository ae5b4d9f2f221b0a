/* The record collector: the tasks' sink onto the producer (task.h's
 * cue_task_sink). Triggers, dead letters, decisions and changelog records go
 * from a task to the producer in the call that made them; the loop sees
 * none of them. Flushing is the commit cycle's first step (promise 3: the
 * records are durable before the offsets move); under exactly-once the
 * transaction makes them durable instead. */
#include "runtime_int.h"

/* Dead letters logged one by one before the log switches to every 10,000th. */
#define DEAD_LOG_FIRST 100

static void sink_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    rt *r = ctx;
    if (cue_kafka_produce_trigger(r->k, t->user->id, t->user->id_len, t->id, t->name, t->time_ms,
                                  rec, len) != 0)
        return; /* the failure stopped the run already */
    /* Atomic: with stream threads, tasks on several threads count here. */
    __atomic_fetch_add(&r->res->triggers, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->res->by_trigger[t->machine_index][t->trigger_index], 1,
                       __ATOMIC_RELAXED);
    if (r->o->on_trigger) {
        rt_workers_serial(r, true);
        r->o->on_trigger(t, rec, len, r->o->on_trigger_ctx);
        rt_workers_serial(r, false);
    }
}

static void sink_dead(const cue_dead_letter *dl, void *ctx)
{
    rt *r = ctx;
    uint64_t n = __atomic_add_fetch(&r->res->dead_letters, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->res->dead_by_reason[dl->reason], 1, __ATOMIC_RELAXED);
    const char *topic = r->cfg->input_topic;
    if (n <= DEAD_LOG_FIRST || n % 10000 == 0)
        cue_log(CUE_LOG_WARN, "dead letter", "s:reason", cue_reason_name(dl->reason), "s:error",
                dl->message ? dl->message : "", "s:topic", topic, "i:partition",
                (int64_t)dl->partition, "i:offset", dl->offset, "u:dead_letters", n, NULL);
    cue_kafka_dead d = {.reason = cue_reason_name(dl->reason),
                        .message = dl->message,
                        .topic = topic,
                        .partition = (int32_t)dl->partition,
                        .offset = dl->offset,
                        .key = dl->key,
                        .key_len = dl->key_len,
                        .value = dl->raw,
                        .value_len = dl->raw_len,
                        .timestamp_ms = dl->timestamp_ms};
    cue_kafka_produce_dead_letter(r->k, &d);
}

static void sink_decision(const char *key, size_t key_len, const char *rec, size_t len, void *ctx)
{
    rt *r = ctx;
    cue_kafka_produce_decision(r->k, key, key_len, rec, len); /* a failure stops the run */
}

static void sink_changelog(uint32_t partition, const char *key, size_t key_len, const void *val,
                           size_t len, void *ctx)
{
    rt *r = ctx;
    cue_kafka_produce_changelog(r->k, (int32_t)partition, key, key_len, val, len);
}

static void sink_changelog_erasure(uint32_t partition, const char *key, size_t key_len, void *ctx)
{
    rt *r = ctx;
    cue_kafka_produce_changelog_erasure(r->k, (int32_t)partition, key, key_len);
}

static int64_t sink_changelog_next(uint32_t partition, int64_t *synced_ms, void *ctx)
{
    rt *r = ctx;
    /* Every record of ours is acknowledged and the partition is ours (a
     * lost one is not committed, rt_part_release): a record past the position
     * can only be written after now. A zombie that has not heard yet that
     * the group moved on stamps wrongly, as at least once cannot keep it
     * from writing either; exactly-once fences it before this is called. */
    *synced_ms = rt_real_ms();
    return cue_kafka_changelog_next(r->k, (int32_t)partition);
}

static int sink_flush(void *ctx, cue_err *err)
{
    return rt_flush(ctx, err);
}

int rt_flush(rt *r, cue_err *err)
{
    if (r->fatal_rc) return cue_err_set(err, r->fatal_rc, "%s", r->fatal_err.msg);
    /* Exactly-once: the records become durable with their transaction. */
    if (r->cfg->exactly_once) return 0;
    int rc = cue_kafka_flush(r->k, r->cfg->delivery_timeout_ms, err);
    if (rc == 0) rt_step(r, RT_STEP_ACKED, -1);
    return rc;
}

/* A task's own commit (exactly-once): every task goes in the transaction.
 * With stream threads the others stand still meanwhile, each between two of
 * its steps (where its work so far is whole, as between two timers with one
 * thread); and once a transaction aborted, no thread commits another before
 * the loop has rolled every task back (it would carry the aborted work). */
static int sink_commit(void *ctx, cue_err *err)
{
    rt *r = ctx;
    rt_workers_exclusive(true, r);
    int rc = rt_workers_aborted(r)
                 ? cue_err_set(err, CUE_EABORTED, "a transaction aborted in this batch")
                 : rt_eos_commit(r, err);
    if (rc == CUE_EABORTED && rt_workers_abort(r)) cue_kafka_txn_hold(r->k);
    rt_workers_exclusive(false, r);
    return rc;
}

static void want_cycle(void *ctx)
{
    rt *r = ctx;
    __atomic_store_n(&r->cycle_wanted, true, __ATOMIC_RELAXED);
}

cue_task_sink rt_collector(rt *r)
{
    const cue_config *c = r->o->cfg;
    return (cue_task_sink){.trigger = sink_trigger,
                           .dead_letter = sink_dead,
                           .decision = sink_decision,
                           .changelog = c->changelog ? sink_changelog : NULL,
                           .changelog_erasure = c->changelog ? sink_changelog_erasure : NULL,
                           .changelog_next = c->changelog ? sink_changelog_next : NULL,
                           .flush = sink_flush,
                           .commit = c->exactly_once ? sink_commit : NULL,
                           .exclusive = c->stream_threads > 1 ? rt_workers_exclusive : NULL,
                           /* Exactly-once commits one transaction for every
                            * task as the cache fills (sink_commit). */
                           .want_cycle = c->exactly_once ? NULL : want_cycle,
                           .ctx = r};
}
