/* A partition's commit: the cycle's changed users encoded once as records,
 * the changelog, then one RocksDB batch with the users, the timer index
 * entries and the position (in place, or handed to the store's thread). */
#include "task_int.h"

#include "cuepoint/restore.h"

#include <stdlib.h>
#include <string.h>

/* The record of a cached user's image, with its checksum, into t->sealed. */
static int seal_user(cue_task *t, const void *img, size_t len)
{
    if (t->flushing == NULL && (t->flushing = malloc(sizeof *t->flushing)) == NULL)
        return CUE_ENOMEM;
    cue_codec_image_load(img, len, t->ms, t->flushing);
    return cue_codec_encode(t->flushing, t->ms, &t->sealed);
}

/* ---- users back to back: the cycle's records, a fill job's images ------ */

/* One user's bytes appended to `b`: the id's length (1 byte), the id, the
 * bytes' length (4 bytes), the bytes. */
static int user_bytes_append(cue_buf *b, const char *uid, size_t len, const void *val, size_t vlen)
{
    uint32_t n = (uint32_t)vlen;
    if (cue_buf_reserve(b, 1 + len + sizeof n + vlen) != 0) return CUE_ENOMEM;
    char *p = b->data + b->len;
    p[0] = (char)(uint8_t)len;
    memcpy(p + 1, uid, len);
    memcpy(p + 1 + len, &n, sizeof n);
    memcpy(p + 1 + len + sizeof n, val, vlen);
    b->len += 1 + len + sizeof n + vlen;
    b->data[b->len] = '\0'; /* as cue_buf_append leaves it */
    return 0;
}

/* The user at `p` (user_bytes_append's layout): its id and bytes, and
 * where the next one starts. */
static const uint8_t *user_bytes_read(const uint8_t *p, const char **uid, size_t *len,
                                      const uint8_t **val, size_t *vlen)
{
    uint32_t n;
    *len = p[0];
    *uid = (const char *)p + 1;
    memcpy(&n, p + 1 + *len, sizeof n);
    *val = p + 1 + *len + sizeof n;
    *vlen = n;
    return *val + n;
}

/* A sealed batch's changed users, as their images (copied at the seal), for
 * the writer thread to encode into the batch (cue_store_fill): encoding is
 * most of a seal's time, and intake stands still while it lasts. */
typedef struct fill_job {
    const cue_machines *ms; /* outlives the store's writer */
    cue_store *store;       /* outlives the job: its writer's queue holds it */
    uint32_t partition;
    cue_buf imgs; /* owned (the store's again at the end): the images
                   * (user_bytes_append), in key order */
    cue_buf rec;  /* owned: the record being made */
} fill_job;

/* ---- the cycle's records: each changed user encoded once ---------------- */

void cue_task_recs_drop(cue_task *t)
{
    cue_buf_reset(&t->recs);
    t->recs_ok = false;
    t->recs_log_at = t->recs_flush_at = 0;
}

static int recs_add(const char *uid, size_t len, const void *val, size_t vlen, void *ctx)
{
    cue_task *t = ctx;
    if (val == NULL) return 0;
    int rc = seal_user(t, val, vlen);
    return rc != 0 ? rc : user_bytes_append(&t->recs, uid, len, t->sealed.data, t->sealed.len);
}

int cue_task_commit_encode(cue_task *t, cue_err *err)
{
    if (t->recs_ok) return 0;
    cue_task_recs_drop(t);
    int rc = cue_cache_visit_dirty(t->cache, recs_add, t);
    if (rc != 0) {
        cue_task_recs_drop(t);
        return cue_err_set(err, rc, "partition %u: out of memory encoding the states",
                           t->partition);
    }
    t->recs_ok = true;
    return 0;
}

/* The record of `uid` (whose image is `val`): the next of the cycle's
 * records from `*at` when they were made and it is that user's (the cache
 * visits the same changed users in the same order each time), else encoded
 * now into t->sealed. */
static int recs_take(cue_task *t, size_t *at, const char *uid, size_t len, const void *val,
                     size_t vlen, const void **rec, size_t *rlen)
{
    const uint8_t *b = (const uint8_t *)t->recs.data + *at;
    if (t->recs_ok && *at < t->recs.len && b[0] == len && memcmp(b + 1, uid, len) == 0) {
        const char *id;
        size_t id_len;
        const uint8_t *r;
        *at = (size_t)(user_bytes_read(b, &id, &id_len, &r, rlen) - (const uint8_t *)t->recs.data);
        *rec = r;
        return 0;
    }
    int rc = seal_user(t, val, vlen);
    *rec = t->sealed.data;
    *rlen = t->sealed.len;
    return rc;
}

static int flush_user(const char *uid, size_t len, const void *val, size_t vlen, void *ctx)
{
    cue_task *t = ctx;
    t->stats.state_writes++;
    if (val == NULL) {
        cue_store_batch_user_delete(t->store, t->partition, uid, len);
        return 0;
    }
    /* For a fill job (t->filling): the image, encoded by the writer. */
    if (t->filling) return user_bytes_append(&t->filling->imgs, uid, len, val, vlen);
    const void *rec;
    size_t rlen;
    int rc = recs_take(t, &t->recs_flush_at, uid, len, val, vlen, &rec, &rlen);
    if (rc != 0) return rc;
    cue_store_batch_user_put(t->store, t->partition, uid, len, rec, rlen);
    return 0;
}

/* ---- records made on the store's writer thread ------------------------- */

static void fill_job_free(fill_job *j)
{
    cue_store_fill_buf_give(j->store, &j->imgs);
    cue_buf_deinit(&j->rec);
    free(j);
}

/* On the writer thread (or with f NULL, to let go of a batch never written). */
static int fill_users(cue_store_filler *f, void *ctx)
{
    fill_job *j = ctx;
    int rc = 0;
    cue_user *u = f ? cue_store_filler_scratch(f, sizeof *u) : NULL;
    if (f && u == NULL) rc = CUE_ENOMEM;
    const uint8_t *p = (const uint8_t *)j->imgs.data, *end = p + j->imgs.len;
    while (f && rc == 0 && p < end) {
        const char *uid;
        size_t len, n;
        const uint8_t *img;
        p = user_bytes_read(p, &uid, &len, &img, &n);
        cue_codec_image_load(img, n, j->ms, u);
        rc = cue_codec_encode(u, j->ms, &j->rec);
        if (rc == 0)
            rc = cue_store_filler_user_put(f, j->partition, uid, len, j->rec.data, j->rec.len);
    }
    fill_job_free(j);
    return rc;
}

/* Whether `uid` was erased in this cycle (t->erased: ids after their length). */
static bool erased_now(const cue_task *t, const char *uid, size_t len)
{
    const char *e = t->erased.data;
    for (size_t at = 0; at < t->erased.len; at += 1 + (unsigned char)e[at])
        if ((unsigned char)e[at] == len && memcmp(e + at + 1, uid, len) == 0) return true;
    return false;
}

/* ---- the changelog: produced, or held until the triggers are acknowledged */

enum { LOG_PUT = 0, LOG_TOMBSTONE = 1, LOG_ERASURE = 2 };

/* One changelog record to the sink, or into t->log_held while holding. */
static void log_emit(cue_task *t, uint8_t kind, const char *key, size_t key_len, const void *val,
                     size_t len)
{
    if (t->log_holding) {
        uint8_t head[2] = {kind, (uint8_t)key_len};
        uint32_t n = (uint32_t)len;
        if (cue_buf_append(&t->log_held, head, sizeof head) != 0 ||
            cue_buf_append(&t->log_held, key, key_len) != 0 ||
            cue_buf_append(&t->log_held, &n, sizeof n) != 0 ||
            (len && cue_buf_append(&t->log_held, val, len) != 0))
            t->log_hold_failed = true;
        return;
    }
    if (kind == LOG_ERASURE)
        t->sink.changelog_erasure(t->partition, key, key_len, t->sink.ctx);
    else
        t->sink.changelog(t->partition, key, key_len, kind == LOG_TOMBSTONE ? NULL : val, len,
                          t->sink.ctx);
}

void cue_task_commit_release_log(cue_task *t)
{
    const uint8_t *p = (const uint8_t *)t->log_held.data, *end = p + t->log_held.len;
    while (p < end) {
        uint8_t kind = p[0], key_len = p[1];
        const char *key = (const char *)p + 2;
        uint32_t n;
        memcpy(&n, p + 2 + key_len, sizeof n);
        const void *val = p + 2 + key_len + sizeof n;
        log_emit(t, kind, key, key_len, val, n);
        p += 2 + key_len + sizeof n + n;
    }
    cue_buf_reset(&t->log_held);
}

bool cue_task_commit_log_held(const cue_task *t)
{
    return t->log_held.len > 0;
}

static int changelog_user(const char *uid, size_t len, const void *val, size_t vlen, void *ctx)
{
    cue_task *t = ctx;
    if (val == NULL) {
        bool erasure = t->sink.changelog_erasure && erased_now(t, uid, len);
        log_emit(t, erasure ? LOG_ERASURE : LOG_TOMBSTONE, uid, len, NULL, 0);
        return 0;
    }
    /* The same sealed bytes the store gets: a restore writes them as they are. */
    const void *rec;
    size_t rlen;
    int rc = recs_take(t, &t->recs_log_at, uid, len, val, vlen, &rec, &rlen);
    if (rc != 0) return rc;
    log_emit(t, LOG_PUT, uid, len, rec, rlen);
    t->stats.changelog_records++;
    return 0;
}

/* Writes the cycle's changelog: the changed users, then where the partition's
 * input stands, so a restore knows where to resume. Nothing when nothing moved. */
static int changelog_write(cue_task *t)
{
    if (t->sink.changelog == NULL) return 0;
    /* A sealed cycle's records go before any later one's (a restore keeps
     * the last record of a user); whoever writes the changelog now has made
     * the triggers before it durable. */
    if (!t->log_holding && t->log_held.len) cue_task_commit_release_log(t);
    cue_cache_stats cs;
    cue_cache_stats_get(t->cache, &cs);
    /* An idle partition's position is written again now and then all the
     * same: a standby's copy is as old as the last position record it
     * applied, and one older than the changelog's delete.retention.ms is
     * restored in full when it takes over. */
    int64_t refresh_ms = t->cfg->changelog_delete_retention_ms / 10;
    if (cs.dirty_bytes == 0 && memcmp(t->next, t->logged, sizeof t->next) == 0 &&
        t->synced_ms - t->logged_ms < refresh_ms)
        return 0;
    /* Encoded once, for the changelog and the store batch alike. */
    cue_err err;
    if (cue_task_commit_encode(t, &err) != 0) return err.code;
    t->recs_log_at = 0;
    int rc = cue_cache_visit_dirty(t->cache, changelog_user, t);
    if (rc != 0) return rc;
    /* Where the partition's input stands, every topic's next offset. */
    char meta[CUE_POSITION_TEXT_BYTES_MAX];
    uint32_t topics = t->cfg->input_topic_count;
    cue_position_topics tp = {.n = topics,
                              .hash = topics ? cue_config_input_topics_hash(t->cfg, topics) : 0};
    size_t n = (size_t)cue_restore_position_format(meta, sizeof meta, t->next[0], t->stream_ms,
                                                   t->next + 1, topics > 1 ? topics - 1 : 0, &tp);
    log_emit(t, LOG_PUT, "", 0, meta, n);
    memcpy(t->logged, t->next, sizeof t->logged);
    t->logged_now = true;
    return 0;
}

int cue_task_commit_log(cue_task *t, cue_err *err)
{
    int rc = changelog_write(t);
    return rc ? cue_err_set(err, rc, "out of memory writing the changelog") : 0;
}

int cue_task_commit_hold_log(cue_task *t, cue_err *err)
{
    if (t->sink.changelog == NULL) return 0;
    if (t->log_held.len) cue_task_commit_release_log(t); /* the caller made them durable */
    t->log_holding = true;
    t->log_hold_failed = false;
    int rc = changelog_write(t);
    t->log_holding = false;
    if (rc == 0 && t->log_hold_failed) rc = CUE_ENOMEM;
    if (rc != 0) {
        cue_buf_reset(&t->log_held);
        return cue_err_set(err, rc, "partition %u: out of memory holding the changelog",
                           t->partition);
    }
    return 0;
}

int cue_task_commit_prepare(cue_task *t, cue_err *err)
{
    /* Triggers are durable before any changelog record of the cycle: a
     * restored user who applied a record never skips it with its trigger
     * unsent (promise 3 across instances). Then the changelog, then the store. */
    int rc = t->sink.flush ? t->sink.flush(t->sink.ctx, err) : 0;
    if (rc == 0) rc = cue_task_commit_log(t, err);
    if (rc == 0 && t->sink.changelog && t->sink.flush) rc = t->sink.flush(t->sink.ctx, err);
    return rc;
}

/* Everything of a commit but the write: erasures, the range delete, the
 * pending index entries, the dirty users and the position, into the batch. */
static int commit_build(cue_task *t, cue_err *err)
{
    if (t->sink.changelog_next) {
        int64_t next = t->sink.changelog_next(t->partition, &t->synced_ms, t->sink.ctx);
        if (next >= 0) t->changelog_next = next;
        if (t->logged_now) t->logged_ms = t->synced_ms;
        t->logged_now = false;
    }
    /* Erasures go first: a user erased and back within the cycle keeps
     * what was written for it since (its state, its new index entries). */
    if (t->erased.len) {
        int rc = cue_store_batch_users_erase(t->store, t->partition, &t->erased, err);
        if (rc != 0) return rc;
        cue_buf_reset(&t->erased);
    }
    /* The range delete goes first: entries written after it in this batch are
     * kept even when they are due in the range (a late event's timer that has
     * not fired yet when a full cache forces a commit mid-step). */
    if (t->fired_upto > t->purged_upto) {
        cue_store_batch_timers_delete_upto(t->store, t->partition, t->fired_upto);
        t->purged_upto = t->fired_upto;
    }
    cue_task_index_flush(t);
    t->recs_flush_at = 0;
    int rc = cue_cache_flush(t->cache, flush_user, t);
    cue_task_recs_drop(t);
    if (rc != 0)
        return cue_err_set(err, rc, "partition %u: out of memory writing the states", t->partition);
    cue_store_meta meta = {.input_offset = t->next[0],
                           .changelog_offset = t->changelog_next,
                           .stream_time_ms = t->stream_ms,
                           .synced_ms = t->synced_ms};
    meta.n_more = t->cfg->input_topic_count > 1 ? (uint8_t)(t->cfg->input_topic_count - 1) : 0;
    for (size_t i = 0; i < meta.n_more; i++)
        meta.more_offsets[i] = t->next[i + 1];
    cue_store_batch_meta_put(t->store, t->partition, &meta);
    return 0;
}

static void commit_done(cue_task *t)
{
    t->repair_from = INT64_MIN; /* a repair is in the store now */
    if (t->journeys) cue_journey_counts_mark(t->journeys);
    t->stats.commits++;
    t->since_commit = 0;
}

int cue_task_commit_finish(cue_task *t, cue_err *err)
{
    int rc = commit_build(t, err);
    if (rc == 0) rc = cue_store_batch_commit(t->store, false, err);
    if (rc != 0) return rc;
    commit_done(t);
    return 0;
}

/* A fill job for the changed users' images, sized for them; NULL when
 * their records are made already (the changelog's), or without memory
 * (they are then made here). */
static fill_job *fill_job_new(cue_task *t)
{
    if (t->recs_ok) return NULL;
    cue_cache_stats cs;
    cue_cache_stats_get(t->cache, &cs);
    fill_job *j = calloc(1, sizeof *j);
    if (j == NULL) return NULL;
    j->store = t->store;
    if (cue_store_fill_buf_take(t->store, cs.dirty_bytes + 64, &j->imgs) != 0) {
        fill_job_free(j);
        return NULL;
    }
    j->ms = t->ms;
    j->partition = t->partition;
    return j;
}

int cue_task_commit_finish_async(cue_task *t, cue_store_written_fn fn, void *ctx, cue_err *err)
{
    /* Reads of the store wait for the batch (cue_store_batch_commit_async),
     * so a user that leaves the cache before it is written reads right
     * (user_find asks the cache who left). */
    t->filling = fill_job_new(t);
    int rc = commit_build(t, err);
    fill_job *job = t->filling;
    t->filling = NULL;
    if (rc != 0) {
        if (job) fill_job_free(job);
        fn(rc, err, 0, ctx);
        return rc;
    }
    cue_store_fill fill = {0};
    if (job && job->imgs.len > 0)
        fill = (cue_store_fill){.fn = fill_users, .ctx = job, .bytes = job->imgs.len};
    else if (job)
        fill_job_free(job);
    /* Calls fn on failure; the fill is called (and lets go of the job) either way. */
    rc = cue_store_batch_commit_async(t->store, &fill, fn, ctx, err);
    if (rc != 0) return rc;
    commit_done(t);
    return 0;
}

int cue_task_commit(cue_task *t, cue_err *err)
{
    int rc = cue_task_commit_prepare(t, err);
    return rc != 0 ? rc : cue_task_commit_finish(t, err);
}

/* The task's own commits: alone, or with every task when a transaction
 * spans them (the sink's commit). */
int cue_task_self_commit(cue_task *t, cue_err *err)
{
    t->stats.own_commits++;
    if (t->sink.commit) return t->sink.commit(t->sink.ctx, err);
    cue_task_exclusive(t, true);
    int rc = cue_task_commit(t, err);
    cue_task_exclusive(t, false);
    return rc;
}
