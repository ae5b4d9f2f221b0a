/* The changelog reader (changelog.enabled): one consumer outside the group
 * that restores a partition assigned here (its local copy, then the
 * changelog's tail, or all of it when the copy cannot be trusted) before
 * the partition processes input, and keeps standby replicas of other
 * instances' partitions current. A finished restore opens the partition's
 * task and resumes its input (restore_finish). */
#include "runtime_int.h"

static void standby_apply(rt *r, part *p, const cue_kafka_msg *m);

/* Records restored per loop turn: the rest of the loop (other partitions,
 * HTTP, timers) runs between turns, so a restore blocks nothing else. */
#define RESTORE_BATCH 20000

/* The partition is rebuilt: its meta goes in with the last records, the
 * task loads from the store, and its input starts where the state ends. */
static void restore_finish(rt *r, int32_t id)
{
    part *p = &r->parts[id];
    cue_kafka_unassign_one(r->reader.k, id);
    cue_err err = {0};
    if (cue_restore_topics_check(&p->rs, r->cfg, &err) != 0) {
        /* Another input's changelog: no position of it is written, and
         * no task opens on it. */
        cue_err_prefix(&err, "%s partition %d, the position record at offset %lld",
                       r->reader.cfg.input_topic, (int)id, (long long)p->rs.last_position_at);
        cue_log(CUE_LOG_ERROR, "changelog of another input", "s:topic", r->reader.cfg.input_topic,
                "i:partition", (int64_t)id, "i:offset", p->rs.last_position_at, "s:error", err.msg,
                NULL);
        rt_fatal(r, err.code, err.msg);
        return;
    }
    cue_restore_finish(&p->rs, r->store, p->restore_end, p->restore_synced_ms);
    int rc = cue_store_batch_commit(r->store, false, &err);
    cue_restore_deinit(&p->rs); /* the held entries' memory; its counts stay */
    if (rc == 0) rc = r->reader.open_task(r, id, &err);
    if (rc != 0) {
        rt_fatal(r, rc, err.msg);
        return;
    }
    p->restoring = false;
    r->reader.restoring--;
    /* The task was opened from the restored meta: it has every topic's offset. */
    rt_part_positions_reset(r, p);
    int64_t offsets[CUE_INPUT_TOPICS_MAX];
    rt_task_offsets(p, rt_topics(r), offsets);
    cue_kafka_seek_resume_all(r->k, id, offsets);
    double secs = (double)(uv_hrtime() - p->restore_started_ns) / 1e9;
    cue_log(CUE_LOG_INFO, "restore finished", "s:topic", r->reader.cfg.input_topic, "i:partition",
            (int64_t)id, "u:records", p->rs.records, "u:bytes", p->rs.bytes, "d:seconds", secs,
            "i:input_offset", p->rs.input_offset, NULL);
}

/* Applies one changelog record for a restore or a standby. A record that is
 * not the owner's (cue_restore_apply says which) is skipped, counted and
 * logged with where it is, and the partition goes on: anything that can
 * write the topic can put one there. False when it was skipped. */
static bool changelog_apply(rt *r, cue_restore *rs, const cue_kafka_msg *m)
{
    cue_err err = {0};
    int rc = m->erasure ? cue_restore_apply_erasure(rs, r->store, m->key, m->key_len, &err)
                        : cue_restore_apply(rs, r->store, m->key, m->key_len,
                                            m->value_len ? m->value : NULL, m->value_len, &err);
    if (rc == 0) {
        if (m->key_len == 0 && !m->erasure) rs->last_position_at = m->offset;
        return true;
    }
    r->reader.skipped++;
    cue_log(CUE_LOG_WARN, "changelog record skipped", "s:topic", r->reader.cfg.input_topic,
            "i:partition", (int64_t)m->partition, "i:offset", m->offset, "s:reason", err.msg, NULL);
    return false;
}

static void on_restore_message(const cue_kafka_msg *m, void *ctx)
{
    rt *r = ctx;
    part *p = rt_part_get(r, m->partition);
    if (p && p->standby && !r->fatal_rc) {
        standby_apply(r, p, m);
        return;
    }
    if (p == NULL || !p->restoring || r->fatal_rc || m->offset < p->restore_pos) return;
    if (m->offset >= p->restore_end) {
        restore_finish(r, m->partition);
        return;
    }
    changelog_apply(r, &p->rs, m);
    p->restore_pos = m->offset + 1;
    if (cue_store_batch_count(r->store) >= RESTORE_BATCH) rt_batch_commit(r);
    if (p->restore_pos >= p->restore_end) restore_finish(r, m->partition);
}

static void on_restore_end(int32_t partition, int64_t offset, void *ctx)
{
    rt *r = ctx;
    part *p = rt_part_get(r, partition);
    if (p && p->restoring && offset >= p->restore_end) restore_finish(r, partition);
}

/* The reader is served while it restores or keeps a standby. */
static bool reader_serving(void *ctx)
{
    const rt *r = ctx;
    return r->reader.restoring + r->reader.standbys > 0 && r->fatal_rc == 0;
}

/* The reader serves again (reader_serving turned true). librdkafka signals
 * a queue once until it is served: an event that came while nothing was
 * restored or kept (a fetch of a partition just let go) was signalled, and
 * left unserved, so a restore started afterwards would wait for ever. */
static void reader_resume(rt *r)
{
    rt_client_resume(&r->reader.client);
}

void rt_reader_start(rt *r)
{
    if (r->reader.k == NULL) return;
    r->reader.client = (rt_client){.batch = RESTORE_BATCH, .may_serve = reader_serving, .ctx = r};
    rt_client_start(&r->reader.client, &r->loop, r->reader.k, false);
}

/* Whether a local copy last in line with the changelog at `synced_ms` may
 * have missed a tombstone: the broker keeps one for delete.retention.ms
 * after its segment is cleaned, so a copy younger than that saw every
 * tombstone past its position. A tenth (at most 10 min) is kept in hand
 * for clocks that disagree. */
static bool copy_too_old(const rt *r, int64_t synced_ms, int64_t *age_ms)
{
    int64_t keep = r->task_cfg.changelog_delete_retention_ms; /* rt_changelog_open's */
    int64_t margin = keep / 10 < 600000 ? keep / 10 : 600000;
    *age_ms = rt_real_ms() - synced_ms;
    return *age_ms > keep - margin;
}

/* Where reading partition `id`'s changelog starts, given its log start `low`
 * and end `high` and the local copy's position `have` (-1: none) and age:
 * there, or at the log start with the partition emptied first, so nothing
 * stale survives, when the copy is
 * - older than what the changelog still holds (compacted or expired away),
 * - so old that a tombstone past its position may be gone (an erased user
 *   would come back), or
 * - past the log's end: the changelog was recreated under it, so the copy
 *   belongs to another history (reading from there would also stop at
 *   once, out of range, again and again).
 * Clears *local then. */
static int changelog_from(rt *r, int32_t id, int64_t low, int64_t high, int64_t have,
                          int64_t synced_ms, bool *local, int64_t *from, cue_err *err)
{
    int64_t age_ms = 0;
    bool past_end = have > high;
    bool too_old = have >= low && have < high && copy_too_old(r, synced_ms, &age_ms);
    bool keep = have >= low && !too_old && !past_end;
    *from = keep ? have : low;
    if (keep || (high <= low && !past_end)) return 0;
    if (too_old && synced_ms <= 0)
        cue_log(CUE_LOG_WARN, "local copy of unknown age: emptied, read in full", "i:partition",
                (int64_t)id, "i:position", have, NULL);
    else if (too_old)
        cue_log(CUE_LOG_WARN,
                "local copy older than changelog.delete.retention.ms: emptied, read in full",
                "i:partition", (int64_t)id, "i:position", have, "i:age_ms", age_ms,
                "i:delete_retention_ms", r->task_cfg.changelog_delete_retention_ms, NULL);
    if (past_end)
        cue_log(CUE_LOG_WARN,
                "local copy past the changelog's end (the topic was recreated): emptied, read in "
                "full",
                "i:partition", (int64_t)id, "i:position", have, "i:changelog_end", high, NULL);
    cue_store_meta empty = {.input_offset = 0, .changelog_offset = -1, .stream_time_ms = INT64_MIN};
    *local = false;
    return cue_store_partition_reset(r->store, (uint32_t)id, true, &empty, r->parts[id].marker,
                                     err);
}

/* The changelog's edges and the local copy of partition `id`. */
static int changelog_where(rt *r, int32_t id, int64_t timeout_ms, int64_t *low, int64_t *high,
                           cue_store_meta *meta, bool *local, cue_err *err)
{
    int rc = cue_kafka_watermarks(r->reader.k, id, timeout_ms, low, high, err);
    if (rc != 0) return rc;
    rc = cue_store_meta_get(r->store, (uint32_t)id, meta, err);
    *local = rc == 0;
    return rc == CUE_ENOTFOUND ? 0 : rc;
}

/* Decides whether partition `id` needs its state from the changelog: when the
 * local store is missing it, or is behind what the changelog holds (another
 * instance had the partition). */
int rt_restore_plan(rt *r, int32_t id, bool *needed, cue_err *err)
{
    *needed = false;
    if (r->reader.k == NULL) return 0;
    part *p = &r->parts[id];
    int64_t low = 0, high = 0;
    cue_store_meta meta = {0};
    bool local = false;
    int64_t asked_ms = rt_real_ms();
    int rc = changelog_where(r, id, r->cfg->startup_timeout_ms, &low, &high, &meta, &local, err);
    if (rc != 0) return rc;
    int64_t have = local ? meta.changelog_offset : -1;
    /* An empty changelog has nothing to add; a copy past its end is
     * another history (changelog_from) unless the log is empty, when the
     * copy is all there is and is kept. */
    if (high <= low || (have >= 0 && have == high)) return 0;
    *needed = true;
    rc = changelog_from(r, id, low, high, have, meta.synced_ms, &local, &p->restore_from, err);
    if (rc != 0) return rc;
    p->restore_end = high;
    p->restore_synced_ms = asked_ms;
    p->restore_pos = p->restore_from;
    cue_restore_init(&p->rs, (uint32_t)id, local ? &meta : NULL, true);
    p->restore_started_ns = uv_hrtime();
    rc = cue_kafka_assign_one(r->reader.k, id, p->restore_from, err);
    if (rc != 0) return rc;
    p->restoring = true;
    r->reader.restoring++;
    reader_resume(r);
    cue_log(CUE_LOG_INFO, "restore started", "s:topic", r->reader.cfg.input_topic, "i:partition",
            (int64_t)id, "i:from", p->restore_from, "i:to", high, "s:local",
            local ? "behind" : "none", NULL);
    return 0;
}

/* A standby start asks the changelog's leader for its edges; a broker that
 * does not answer in this time leaves it for the next heartbeat. */
#define STANDBY_START_TIMEOUT_MS 2000

#define STANDBY_RETRY_NS (10 * 1000000000ull)

/* Partition `id` becomes a standby here: its changelog is tailed from the
 * local copy's position. */
static int standby_start(rt *r, int32_t id, cue_err *err)
{
    part *p = &r->parts[id];
    int64_t low = 0, high = 0, from = 0;
    cue_store_meta meta = {0};
    bool local = false;
    int rc = changelog_where(r, id, STANDBY_START_TIMEOUT_MS, &low, &high, &meta, &local, err);
    int64_t have = local ? meta.changelog_offset : -1;
    if (rc == 0) rc = changelog_from(r, id, low, high, have, meta.synced_ms, &local, &from, err);
    if (rc == 0) rc = cue_kafka_assign_one(r->reader.k, id, from, err);
    if (rc != 0) return rc;
    p->sb_records_before += p->sb.records;
    cue_restore_init(&p->sb, (uint32_t)id, local ? &meta : NULL, false);
    p->restore_pos = from;
    p->standby = true;
    r->reader.standbys++;
    reader_resume(r);
    cue_log(CUE_LOG_INFO, "standby started", "s:topic", r->reader.cfg.input_topic, "i:partition",
            (int64_t)id, "i:from", from, "i:end", high, NULL);
    return 0;
}

/* Stops tailing partition `id`; what it applied is committed, so a restore
 * that follows (the partition assigned here) starts from there. */
void rt_standby_stop(rt *r, int32_t id, const char *why)
{
    part *p = &r->parts[id];
    if (!p->standby) return;
    cue_kafka_unassign_one(r->reader.k, id);
    p->standby = false;
    r->reader.standbys--;
    rt_batch_commit(r);
    cue_log(CUE_LOG_INFO, "standby stopped", "s:topic", r->reader.cfg.input_topic, "i:partition",
            (int64_t)id, "i:position", p->restore_pos, "s:reason", why, NULL);
}

/* The changelog's start passed where a restore or a standby was reading
 * (retention, or compaction of a log with cleanup.policy=compact,delete):
 * records it never saw are gone, so the copy is not whole. What it
 * applied is committed first (so nothing of it follows the reset), then it
 * starts again from the log's start on an emptied partition
 * (changelog_from): a restore at once, a standby at the next placement
 * update. */
static void on_restore_out_of_range(int32_t partition, int64_t offset, void *ctx)
{
    rt *r = ctx;
    part *p = rt_part_get(r, partition);
    if (p == NULL || (!p->standby && !p->restoring) || r->fatal_rc) return;
    cue_kafka_unassign_one(r->reader.k, partition);
    cue_err err = {0};
    int rc = cue_store_batch_commit(r->store, false, &err);
    if (rc == 0 && p->standby) {
        /* The next placement update starts it again (changelog_from). */
        p->standby = false;
        r->reader.standbys--;
        cue_log(CUE_LOG_WARN, "standby stopped: it fell behind the changelog's start",
                "i:partition", (int64_t)partition, "i:missed_from", offset, NULL);
        return;
    }
    bool needed = false;
    if (rc == 0) {
        p->restoring = false;
        r->reader.restoring--;
        /* The local meta is older than the log's start now: the partition
         * is emptied and read from the start again. */
        rc = rt_restore_plan(r, partition, &needed, &err);
    }
    if (rc == 0 && !needed) {
        rc = r->reader.open_task(r, partition, &err);
        if (rc == 0) {
            rt_part_positions_reset(r, p);
            int64_t offsets[CUE_INPUT_TOPICS_MAX];
            rt_task_offsets(p, rt_topics(r), offsets);
            cue_kafka_seek_resume_all(r->k, partition, offsets);
        }
    }
    if (rc != 0) rt_fatal(r, rc, err.msg);
    cue_log(CUE_LOG_WARN, "restore started again from the changelog's start", "i:partition",
            (int64_t)partition, "i:missed_from", offset, NULL);
}

/* Brings the standbys here in line with the placement the members' records
 * give (standby.h): never a partition this instance owns or restores. */
void rt_standby_update(rt *r)
{
    if (r->mem.view == NULL || !r->mem.read || r->stop_requested || r->fatal_rc) return;
    int32_t n = r->mem.parts;
    cue_members_standbys(r->mem.view, rt_real_ms(), (int)r->cfg->standby_replicas, r->mem.want);
    /* One start per update: each asks a broker (up to
     * STANDBY_START_TIMEOUT_MS), and updates come with every member record
     * and heartbeat, so the rest follow within seconds without holding the
     * loop; a failed one waits STANDBY_RETRY_NS. */
    bool started = false;
    uint64_t now = uv_hrtime();
    for (int32_t i = 0; i < n; i++) {
        part *p = &r->parts[i];
        bool keep = r->mem.want[i] && p->task == NULL && !p->restoring;
        if (keep && !p->standby && !started && now >= p->standby_retry_ns) {
            cue_err err = {0};
            started = true;
            if (standby_start(r, i, &err) != 0) {
                p->standby_retry_ns = now + STANDBY_RETRY_NS;
                cue_log(CUE_LOG_WARN, "standby not started; trying again later", "i:partition",
                        (int64_t)i, "s:error", err.msg, NULL);
            }
        } else if (!keep && p->standby) {
            rt_standby_stop(r, i, "placement moved it");
        }
    }
    rt_client_pump(&r->reader.client);
}

/* A changelog record for a standby: applied like a restore's, and at each
 * cycle's position record the copy is whole up to there, so its meta moves. */
static void standby_apply(rt *r, part *p, const cue_kafka_msg *m)
{
    if (m->offset < p->restore_pos) return;
    bool applied = changelog_apply(r, &p->sb, m);
    p->restore_pos = m->offset + 1;
    /* The owner wrote the position record before any record past it. One
     * of another input is not kept as the copy's position: a promotion then
     * restores from the last one that was this input's, and meets it. */
    cue_err err = {0};
    if (applied && m->key != NULL && m->key_len == 0 &&
        cue_restore_topics_check(&p->sb, r->cfg, &err) == 0)
        cue_restore_finish(&p->sb, r->store, p->restore_pos,
                           m->timestamp_ms > 0 ? m->timestamp_ms : 0);
    if (cue_store_batch_count(r->store) >= RESTORE_BATCH) rt_batch_commit(r);
}

/* The changelog must have one partition per input partition: a user's state
 * lives in the partition of the same number. Created (compacted) when
 * missing; a count that differs is a configuration error. */
/* A topic's settings are asked once at start; a cluster that cannot say
 * (the mock has no DescribeConfigs) must not hold the start up. */
#define STARTUP_CONFIG_TIMEOUT_MS 2000

/* How long the changelog keeps tombstones, which judges local copies
 * (copy_too_old) and paces an idle partition's position (task.c): the
 * topic's own delete.retention.ms when it is shorter than the setting (a
 * topic made by hand, or changed since). */
static void changelog_retention(rt *r, const char *topic, bool ask)
{
    char v[32];
    cue_err e = {0};
    int64_t *keep = &r->task_cfg.changelog_delete_retention_ms;
    int rc = ask ? cue_kafka_topic_config(r->k, topic, "delete.retention.ms", v, sizeof v,
                                          STARTUP_CONFIG_TIMEOUT_MS, &e)
                 : cue_err_set(&e, CUE_EUNAVAILABLE, "the cluster did not create it either");
    long long topic_ms = rc == 0 ? strtoll(v, NULL, 10) : 0;
    if (rc != 0)
        cue_log(CUE_LOG_WARN,
                "cannot read the changelog's delete.retention.ms; copies are judged by "
                "changelog.delete.retention.ms, which must not exceed it",
                "s:topic", topic, "i:changelog.delete.retention.ms", *keep, "s:error", e.msg, NULL);
    else if (topic_ms > 0 && topic_ms < *keep) {
        cue_log(CUE_LOG_WARN,
                "the changelog keeps tombstones for less than changelog.delete.retention.ms; "
                "copies are judged by the topic's",
                "s:topic", topic, "i:delete.retention.ms", (int64_t)topic_ms,
                "i:changelog.delete.retention.ms", *keep, NULL);
        *keep = topic_ms;
    }
}

int rt_changelog_open(rt *r, int32_t partitions, cue_err *err)
{
    bool described = true;
    int rc = cue_kafka_changelog_ensure(r->k, partitions, r->cfg->input_topic, &described, err);
    if (rc == 0) changelog_retention(r, cue_config_changelog_topic(r->cfg), described);
    return rc == 0 ? cue_kafka_changelog_open(r->k, partitions, err) : rc;
}

/* The changelog's reader: the live config with the changelog as its input,
 * outside the group. */
int rt_reader_open(rt *r, cue_err *err)
{
    r->reader.cfg = *r->cfg;
    cue_config_set_input_topic(&r->reader.cfg, cue_config_changelog_topic(r->cfg));
    cue_kafka_handler h = {.message = on_restore_message,
                           .fatal = rt_on_fatal,
                           .end = on_restore_end,
                           .out_of_range = on_restore_out_of_range,
                           .ctx = r};
    return cue_kafka_open_replay(&r->reader.k, &r->reader.cfg, &h, "restore", NULL, err);
}
