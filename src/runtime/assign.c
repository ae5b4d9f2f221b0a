/* Assignment: the partition table, partitions assigned (a reset from the
 * group's metadata applied, the state restored or loaded, the input sought
 * to where the store says) and revoked or lost (committed, or closed dirty),
 * each record's way to its partition's task, and exactly-once's one
 * transaction for every task and its rollback. */
#include "runtime_int.h"

uint32_t rt_topics(const rt *r)
{
    return r->cfg->input_topic_count ? r->cfg->input_topic_count : 1;
}

void rt_task_offsets(const part *p, uint32_t topics, int64_t *out)
{
    for (uint32_t t = 0; t < topics; t++)
        out[t] = cue_task_next_offset_of(p->task, (uint8_t)t);
}

void rt_part_positions_reset(rt *r, part *p)
{
    p->position = cue_task_next_offset(p->task);
    for (uint32_t t = 1; t < rt_topics(r); t++)
        p->more_position[t - 1] = cue_task_next_offset_of(p->task, (uint8_t)t);
    for (uint32_t t = 0; t < CUE_INPUT_TOPICS_MAX; t++)
        p->first_from[t] = t < rt_topics(r) ? cue_task_next_offset_of(p->task, (uint8_t)t) : -1;
    p->first_pending = true;
}

/* The first record applied since the partition's task started consuming,
 * against where it was expected: the trail of a start that skipped records
 * (an input without gaps shows `skipped` 0). */
static void note_first(part *p, const cue_kafka_msg *m)
{
    int64_t from = p->first_from[m->topic_index];
    cue_log(CUE_LOG_INFO, "first record since the start", "i:partition", (int64_t)m->partition,
            "i:input_topic", (int64_t)m->topic_index, "i:offset", m->offset, "i:from", from,
            "i:skipped", m->offset > from ? m->offset - from : 0, NULL);
    p->first_from[m->topic_index] = -1;
    p->first_pending = false;
    for (size_t t = 0; t < CUE_INPUT_TOPICS_MAX; t++)
        p->first_pending |= p->first_from[t] >= 0;
}

bool rt_part_caught_up(rt *r, int32_t id, bool refresh)
{
    part *p = &r->parts[id];
    if (refresh) p->high = cue_kafka_high_watermark(r->k, id);
    bool up = p->high >= 0 && p->position >= p->high;
    for (uint32_t t = 1; t < rt_topics(r); t++) {
        if (refresh) p->more_high[t - 1] = cue_kafka_high_watermark_of(r->k, (uint8_t)t, id);
        up = up && p->more_high[t - 1] >= 0 && p->more_position[t - 1] >= p->more_high[t - 1];
    }
    return up;
}

int rt_parts_reserve(rt *r, int32_t p)
{
    if (p < r->n_parts) return 0;
    part *np = realloc(r->parts, (size_t)(p + 1) * sizeof *np);
    if (np == NULL) return CUE_ENOMEM;
    r->parts = np;
    if (r->cfg->exactly_once) {
        /* One entry per partition of every input topic. */
        size_t cap = (size_t)(p + 1) * rt_topics(r);
        int32_t *tp = realloc(r->txn_parts, cap * sizeof *tp);
        if (tp) r->txn_parts = tp;
        int64_t *to = realloc(r->txn_offsets, cap * sizeof *to);
        if (to) r->txn_offsets = to;
        const char **tm = realloc(r->txn_meta, cap * sizeof *tm);
        if (tm) r->txn_meta = tm;
        uint8_t *tt = realloc(r->txn_topics, cap * sizeof *tt);
        if (tt) r->txn_topics = tt;
        if (tp == NULL || to == NULL || tm == NULL || tt == NULL) return CUE_ENOMEM;
    }
    memset(np + r->n_parts, 0, (size_t)(p + 1 - r->n_parts) * sizeof *np);
    r->parts = np;
    r->n_parts = p + 1;
    return 0;
}

/* Applies to the store a reset the group's commit metadata names for one
 * newly assigned partition, unless the store applied it already. */
static int apply_group_reset(rt *r, int32_t id, const char *meta)
{
    part *p = &r->parts[id];
    cue_err err = {0};
    int64_t to = 0;
    if (cue_offsets_marker_parse(meta, strlen(meta), &to)) {
        cue_offsets_applied a;
        if (cue_offsets_apply(r->store, (uint32_t)id, meta, &a, &err) != 0) {
            rt_fatal(r, err.code, err.msg);
            return err.code;
        }
        if (!a.already)
            cue_log(CUE_LOG_INFO, "reset applied", "s:topic", r->cfg->input_topic, "i:partition",
                    (int64_t)id, "s:reset", meta, "i:from", a.from, "i:to", a.to, "s:state",
                    a.action == CUE_OFFSETS_DROP ? "dropped" : "kept", "u:users", a.users, NULL);
    }
    if (cue_store_reset_marker_get(r->store, (uint32_t)id, p->marker, sizeof p->marker, &err) !=
        0) {
        rt_fatal(r, err.code, err.msg);
        return err.code;
    }
    return 0;
}

/* Reads the group's commit metadata for the partitions this member takes on
 * and applies the resets it names (offsets.h) before their tasks load. */
static int apply_group_resets(rt *r, const int32_t *ids, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (r->parts[ids[i]].task == NULL) m++;
    if (m == 0) return 0;
    int32_t *fresh = calloc(m, sizeof *fresh);
    int64_t *offsets = calloc(m, sizeof *offsets);
    char(*meta)[CUE_KAFKA_META_MAX] = calloc(m, sizeof *meta);
    CUE_ASSERT(fresh && offsets && meta); /* rebalances are rare and small */
    m = 0;
    for (size_t i = 0; i < n; i++)
        if (r->parts[ids[i]].task == NULL) fresh[m++] = ids[i];
    cue_err err = {0};
    bool unread = cue_kafka_group_committed(r->k, 0, fresh, m, offsets, meta,
                                            r->cfg->startup_timeout_ms, &err) != 0;
    if (unread)
        cue_log(CUE_LOG_WARN,
                "the group's committed offsets could not be read: a reset would go unseen, so "
                "these partitions' group offsets are not committed until their next assignment",
                "s:error", err.msg, NULL);
    int rc = 0;
    for (size_t i = 0; i < m && rc == 0; i++) {
        r->parts[fresh[i]].group_unread = unread;
        rc = apply_group_reset(r, fresh[i], unread ? "" : meta[i]);
    }
    free(fresh);
    free(offsets);
    free(meta);
    return rc;
}

int rt_task_open(rt *r, int32_t id, cue_err *err)
{
    part *p = &r->parts[id];
    if (p->task) return 0;
    for (size_t t = 0; t < CUE_INPUT_TOPICS_MAX; t++)
        p->txn_sent[t] = -1;
    if (r->cfg->changelog) cue_kafka_changelog_forget(r->k, id);
    int rc = cue_task_new(&p->task, &r->task_cfg, r->o->ms, r->store, (uint32_t)id, &r->sink, err);
    if (rc == 0) rc = cue_task_set_policy(p->task, r->o->policy, err);
    uint64_t t0 = uv_hrtime();
    if (rc == 0) rc = cue_task_count_journeys(p->task, err);
    r->recount_ns += uv_hrtime() - t0;
    r->recounts++;
    if (rc != 0) {
        cue_task_free(p->task);
        p->task = NULL;
        p->gen++;
        return rc;
    }
    int64_t wall = rt_wall_ms(r), real = rt_real_ms();
    cue_task_set_clock(p->task, wall);
    /* No stream time can be honestly ahead of the clocks (the real one, or
     * an injected one ahead of it) by more than the margin events are
     * allowed: one that is came from an event from the future, applied
     * before such events were refused. */
    int64_t limit = (wall > real ? wall : real) + r->cfg->event_max_future_ms;
    int64_t was = cue_task_repair_stream_time(p->task, limit);
    if (was != INT64_MIN) {
        char from[CUE_TIME_TEXT_MAX], to[CUE_TIME_TEXT_MAX];
        cue_time_format_rfc3339(was, from);
        cue_time_format_rfc3339(limit, to);
        cue_log(CUE_LOG_WARN,
                "stream time was ahead of the clock (an event from the future, applied before "
                "such events were refused); brought back",
                "s:topic", r->cfg->input_topic, "i:partition", (int64_t)id, "s:stream_time", from,
                "s:now", to, NULL);
    }
    return 0;
}

int rt_on_assigned(const int32_t *ids, int64_t *start, size_t n, void *ctx)
{
    rt *r = ctx;
    r->res->rebalances++;
    uint32_t topics = rt_topics(r);
    if (r->stop_requested || r->store == NULL) {
        /* Assigned while leaving (a rebalance that was under way): there is
         * no store to load from any more, and nothing will be consumed. */
        for (size_t i = 0; i < n * topics; i++)
            start[i] = CUE_KAFKA_OFFSET_GROUP;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (r->input_parts > 0 && ids[i] >= r->input_parts) {
            /* Partitions were added while running (the group assigns them
             * after a metadata refresh): see rt_partition_count_check. */
            char msg[CUE_ERR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "partition %d of %s assigned, but the topic had %d partitions at start: "
                     "users now map to other partitions than their state; a deployment's input "
                     "cannot change its partition count (docs/operations.md: \"Changing the "
                     "partition count\")",
                     (int)ids[i], r->cfg->input_topic, (int)r->input_parts);
            rt_fatal(r, CUE_ECONFIG, msg);
            return CUE_ECONFIG;
        }
    for (size_t i = 0; i < n; i++)
        if (rt_parts_reserve(r, ids[i]) != 0) {
            rt_fatal(r, CUE_ENOMEM, "out of memory for partitions");
            return CUE_ENOMEM;
        }
    for (size_t i = 0; i < n; i++)
        rt_standby_stop(r, ids[i], "assigned here");
    int rc = apply_group_resets(r, ids, n);
    if (rc != 0) return rc;
    for (size_t i = 0; i < n; i++) {
        cue_err err = {0};
        part *p = &r->parts[ids[i]];
        bool restore = false;
        if (p->task == NULL && !p->restoring &&
            (rt_restore_plan(r, ids[i], &restore, &err) != 0 ||
             (!restore && rt_task_open(r, ids[i], &err) != 0))) {
            rt_fatal(r, err.code, err.msg);
            return err.code;
        }
        p->high = -1;
        for (uint32_t t = 1; t < topics; t++)
            p->more_high[t - 1] = -1;
        if (p->restoring) {
            /* Held until its state is back: readiness is false meanwhile. */
            for (uint32_t t = 0; t < topics; t++)
                start[i * topics + t] = CUE_KAFKA_OFFSET_HOLD;
            continue;
        }
        /* The store, not the group, says where this partition's state ends
         * (in each input topic). */
        for (uint32_t t = 0; t < topics; t++) {
            int64_t at = cue_task_next_offset_of(p->task, (uint8_t)t);
            start[i * topics + t] = at > 0 ? at : CUE_KAFKA_OFFSET_BEGINNING;
        }
        rt_part_positions_reset(r, p);
        int64_t next = p->position;
        cue_log(CUE_LOG_INFO, "partition assigned", "s:topic", r->cfg->input_topic, "i:partition",
                (int64_t)ids[i], "i:offset", next, "t:stream_time_ms",
                cue_task_stream_time(p->task), NULL);
    }
    r->assigned_once = true;
    r->rebalancing = false;
    rt_members_publish(r);
    return 0;
}

void rt_part_committed(rt *r, int32_t id, bool sync)
{
    part *p = &r->parts[id];
    rt_step(r, RT_STEP_STORED, id);
    if (p->group_unread) return;
    int64_t offsets[CUE_INPUT_TOPICS_MAX];
    rt_task_offsets(p, rt_topics(r), offsets);
    cue_kafka_group_commit_all(r->k, id, offsets, p->marker, sync, NULL);
    rt_step(r, RT_STEP_GROUP_COMMITTED, id);
}

/* Finishes a partition: commits it (unless the run is failing or the
 * partition was `lost`) and drops it. A partition handed to another member
 * has its group offset committed before it goes (`sync`); at a stop the
 * store already holds it, and a coordinator that is down must not hold the
 * exit up. */
void rt_part_release(rt *r, int32_t id, bool lost, bool sync)
{
    part *p = rt_part_get(r, id);
    if (p && p->restoring) {
        /* What was restored so far stays in the store, without meta: the
         * next restore of this partition begins again from the same place. */
        cue_kafka_unassign_one(r->reader.k, id);
        p->restoring = false;
        r->reader.restoring--;
        /* Into the store now: a reset of this partition later (its log start
         * passed the copy) must not be followed by these records. The held
         * timer entries go with the restore: without meta, the next one
         * applies these records, and makes their entries, again. */
        rt_batch_commit(r);
        cue_restore_deinit(&p->rs);
        cue_log(CUE_LOG_INFO, "restore stopped: partition revoked", "i:partition", (int64_t)id,
                NULL);
    }
    if (p == NULL || p->task == NULL) return;
    if (lost) rt_part_lost_cycle(r, id);
    /* Exactly-once: the caller committed every task in one transaction.
     * A lost partition is closed without a commit, as Kafka Streams closes
     * it dirty: a new owner may be writing its changelog already, and a
     * commit here would add this instance's records after the new owner's
     * and move the local copy's position past records it never applied.
     * Its store stays at its last commit (a sealed cycle whose changelog
     * records are still held is not one: rt_part_lost_cycle); what came
     * after is redone by the new owner (at least once). */
    if (r->fatal_rc == 0 && !r->cfg->exactly_once && !lost) {
        cue_err err = {0};
        if (cue_task_commit(p->task, &err) != 0)
            rt_fatal(r, err.code, err.msg);
        else
            rt_part_committed(r, id, sync);
    }
    cue_cache_stats cs;
    cue_task_cache_stats(p->task, &cs);
    r->retired_cache.hits += cs.hits;
    r->retired_cache.misses += cs.misses;
    r->retired_cache.evictions += cs.evictions;
    cue_task_stats_add(&r->retired, cue_task_stats_get(p->task));
    if (cue_task_journeys(p->task))
        cue_journey_counts_add(r->journeys_retired, cue_task_journeys(p->task), true);
    cue_task_free(p->task);
    p->task = NULL;
    p->gen++;
}

void rt_on_revoked(const int32_t *ids, size_t n, bool lost, void *ctx)
{
    rt *r = ctx;
    r->res->rebalances++;
    r->rebalancing = true;
    /* Exactly-once: partitions handed over are committed with all the
     * others; lost ones may already have a new owner, so the transaction,
     * which holds their work too, is aborted, and the tasks that stay roll
     * back (Kafka Streams closes lost tasks dirty the same way). */
    bool eos = r->cfg->exactly_once && r->fatal_rc == 0 && r->store;
    if (eos && !lost) rt_eos_cycle(r);
    for (size_t i = 0; i < n; i++) {
        rt_part_release(r, ids[i], lost, true);
        cue_log(CUE_LOG_INFO, lost ? "partition lost" : "partition revoked", "s:topic",
                r->cfg->input_topic, "i:partition", (int64_t)ids[i], NULL);
    }
    rt_members_publish(r);
    if (eos && lost) rt_eos_rollback(r, "partitions lost");
}

/* The record's key is its user id (a record whose key is not is a dead
 * letter), so its user's cached state can be fetched early; a record
 * without a key has its user id guessed from its value. */
void rt_on_prefetch(const cue_kafka_msg *m, int stage, void *ctx)
{
    rt *r = ctx;
    part *p = rt_part_get(r, m->partition);
    if (p == NULL || p->task == NULL) return;
    const char *uid = m->key;
    size_t len = m->key_len;
    if ((uid && len) ||
        (m->value && cue_event_peek_user_id(r->cfg, m->value, m->value_len, &uid, &len)))
        cue_task_prefetch(p->task, uid, len, stage);
}

part *rt_record_part(rt *r, const cue_kafka_msg *m)
{
    part *p = rt_part_get(r, m->partition);
    if (p == NULL || p->task == NULL || r->fatal_rc) return NULL;
    r->res->consumed++;
    p->consumed++;
    r->took_records = true; /* timed once a batch (serve_main) */
    return p;
}

int rt_record_apply(part *p, const cue_kafka_msg *m, cue_err *err)
{
    cue_record rec = cue_kafka_record(m);
    int rc = cue_task_offer(p->task, &rec, err);
    if (rc == 1) return 0; /* applied before: already committed in the store */
    /* A topic still waiting for its first record keeps first_pending
     * set; the others' records go past on the second test. */
    if (__builtin_expect(p->first_pending, 0) && p->first_from[m->topic_index] >= 0)
        note_first(p, m);
    if (m->topic_index == 0)
        p->position = m->offset + 1;
    else
        p->more_position[m->topic_index - 1] = m->offset + 1;
    return rc < 0 ? rc : 0;
}

void rt_on_message(const cue_kafka_msg *m, void *ctx)
{
    rt *r = ctx;
    part *p = rt_record_part(r, m);
    if (p == NULL) return;
    cue_err err; /* cleared, not zeroed: 516 bytes a record */
    cue_err_clear(&err);
    int rc = rt_record_apply(p, m, &err);
    if (rc == CUE_EABORTED) /* a task's own commit, under exactly-once */
        rt_eos_rollback(r, err.msg);
    else if (rc < 0)
        rt_fatal(r, rc, err.msg);
}

/* One transaction for every task of the instance: their changelogs, then
 * the input offsets with the group's metadata, the commit, and only then
 * the store batches. The commit blocks the loop (bounded by
 * delivery.timeout.ms per broker call): librdkafka serves this producer's
 * delivery reports on the thread that commits, and they update the tasks'
 * changelog positions, so it cannot move to a worker thread; intake is
 * stopped during a cycle anyway, and by then the cycle's triggers are
 * acknowledged (rt_check_commit waited for them), so it waits for little more
 * than the changelog and one EndTxn round trip. */
int rt_eos_commit(rt *r, cue_err *err)
{
    size_t n = 0;
    uint32_t topics = rt_topics(r);
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        int rc = cue_task_commit_prepare(p->task, err);
        if (rc != 0) return rc;
        if (p->group_unread) continue; /* see part.group_unread */
        for (uint32_t t = 0; t < topics; t++) {
            int64_t next = cue_task_next_offset_of(p->task, (uint8_t)t);
            if (next == p->txn_sent[t]) continue; /* unmoved since the last transaction */
            r->txn_topics[n] = (uint8_t)t;
            r->txn_parts[n] = i;
            r->txn_offsets[n] = next;
            /* The reset marker goes with the first topic's offset, as in group commits. */
            r->txn_meta[n] = t == 0 ? p->marker : NULL;
            n++;
        }
    }
    uint64_t committed = cue_kafka_stats_get(r->k)->txn_committed;
    int rc = cue_kafka_txn_commit(r->k, r->txn_topics, r->txn_parts, r->txn_offsets, r->txn_meta, n,
                                  r->cfg->delivery_timeout_ms, err);
    if (rc != 0) return rc;
    if (cue_kafka_stats_get(r->k)->txn_committed > committed) r->aborts_in_row = 0;
    for (size_t j = 0; j < n; j++)
        r->parts[r->txn_parts[j]].txn_sent[r->txn_topics[j]] = r->txn_offsets[j];
    /* The input offsets also go in the store: the group's may be missing
     * (the mock broker does not keep transactional offset commits), and on
     * assignment the store says where each partition resumes. */
    for (int32_t i = 0; i < r->n_parts && rc == 0; i++)
        if (r->parts[i].task) rc = cue_task_commit_finish(r->parts[i].task, err);
    return rc;
}

/* Aborts in a row after which the run stops (exit 69) instead of redoing the
 * same work again: transient errors clear long before, a permanent one never. */
#define EOS_ABORTS_MAX 5

/* Drops every task's work since the last committed transaction and reads
 * its input again from there. */
void rt_eos_rollback(rt *r, const char *why)
{
    cue_log(CUE_LOG_WARN, "transaction aborted; rolling back to the last commit", "s:error", why,
            NULL);
    if (++r->aborts_in_row > EOS_ABORTS_MAX) {
        char msg[CUE_ERR_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "%d transactions in a row aborted without one committing (a record the broker "
                 "refuses for good, or a topic this producer may not write?); stopping. Last: %s",
                 r->aborts_in_row, why);
        rt_fatal(r, CUE_EUNAVAILABLE, msg);
        return;
    }
    /* Records already taken from the consumer come again from the positions
     * sought below: applied now, they would skip what lies between. */
    cue_kafka_drop_held(r->k);
    cue_err aerr = {0};
    int rc = cue_kafka_txn_abort(r->k, r->cfg->delivery_timeout_ms, &aerr);
    if (rc != 0) {
        rt_fatal(r, rc, aerr.msg);
        return;
    }
    for (int32_t i = 0; i < r->n_parts && r->fatal_rc == 0; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        cue_err err = {0};
        if (cue_task_rollback(p->task, &err) != 0) {
            rt_fatal(r, err.code, err.msg);
            return;
        }
        rt_part_positions_reset(r, p);
        int64_t offsets[CUE_INPUT_TOPICS_MAX];
        rt_task_offsets(p, rt_topics(r), offsets);
        cue_kafka_seek_resume_all(r->k, i, offsets);
    }
}

/* A commit at the end of a cycle, a revocation or a stop. */
void rt_eos_cycle(rt *r)
{
    cue_err err = {0};
    int rc = rt_eos_commit(r, &err);
    if (rc == CUE_EABORTED)
        rt_eos_rollback(r, err.msg);
    else if (rc != 0)
        rt_fatal(r, rc, err.msg);
}
