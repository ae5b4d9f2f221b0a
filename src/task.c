/* One partition's loop: decode, time, engine, state, timers (the step's
 * triggers and the policy stage: task_policy.c; the timer index entries
 * and the window's refill: task_timers.c; the commit: task_commit.c). */
#include "task_int.h"

#include "cuepoint/migrate.h"
#include "cuepoint/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- state TTL for users stored before it was set ------------------------ */

/* Users rewritten between two batch commits of the pass. */
#define TTL_PASS_BATCH_USERS 1024

/* Whether any state TTL is set: state.ttl, or a journey's state_ttl. */
static bool ttl_set(const cue_config *cfg, const cue_machines *ms)
{
    if (cfg->state_ttl_ms > 0) return true;
    for (size_t i = 0; i < cue_machines_count(ms); i++)
        if (cue_machines_get(ms, i)->state_ttl_ms > 0) return true;
    return false;
}

static bool ttl_needed(const cue_config *cfg, const cue_machines *ms)
{
    /* With machines set aside (--only), a user written back would lose the
     * instances of the others. */
    return cue_machines_set_aside(ms) == 0 && ttl_set(cfg, ms);
}

typedef struct ttl_pass {
    cue_task *t;
    size_t pending;
    int rc;
    cue_err *err;
} ttl_pass;

/* A user with no index entry (nothing was pending when it was last
 * written, before state TTL was set) gets one at its expiry. Users with an
 * entry are passed over from the record's header: when it comes up, the
 * user is indexed again, expiry included. */
static int ttl_pass_user(uint32_t partition, const char *uid, size_t len, const void *val,
                         size_t vlen, void *ctx)
{
    ttl_pass *p = ctx;
    cue_task *t = p->t;
    int64_t due;
    if (cue_codec_peek_indexed_due(val, vlen, &due) != 0 || due != CUE_TIMER_NONE) return 0;
    if (cue_codec_decode(val, vlen, t->ms, t->user, &t->stats.codec, NULL) != 0) return 0;
    due = cue_engine_expiry(t->ms, t->user, t->cfg->state_ttl_ms);
    if (due == CUE_TIMER_NONE) return 0;
    t->user->indexed_due = due;
    if (cue_codec_encode(t->user, t->ms, &t->enc) != 0) {
        p->rc = cue_err_set(p->err, CUE_ENOMEM, "out of memory indexing a user's expiry");
        return 1;
    }
    cue_store_batch_timer_put(t->store, partition, due, uid, len);
    cue_store_batch_user_put(t->store, partition, uid, len, t->enc.data, t->enc.len);
    t->stats.ttl_indexed_users++;
    if (++p->pending < TTL_PASS_BATCH_USERS) return 0;
    p->pending = 0;
    p->rc = cue_store_batch_commit(t->store, false, p->err);
    return p->rc != 0;
}

/* What decides which users the pass indexes: whether state.ttl is set, and
 * which journeys have a state_ttl (their lengths do not matter: an entry
 * that comes up is indexed again under the lengths of the day). Never 0. */
static uint64_t ttl_fingerprint(const cue_config *cfg, const cue_machines *ms)
{
    uint64_t h = cue_hash64("state.ttl", 9, cfg->state_ttl_ms > 0);
    for (size_t i = 0; i < cue_machines_count(ms); i++) {
        const cue_machine *m = cue_machines_get(ms, i);
        if (m->state_ttl_ms > 0) h = cue_hash64(m->name, strlen(m->name), h);
    }
    return h | 1;
}

/* At a partition's opening, with state TTL set: a read of every stored
 * user's header, so that users written before state TTL was set expire
 * too. Writes go straight to the store, as the migration pass's do: an
 * instance that restores the old records indexes them the same way. Once
 * done under the same settings, the partition's mark says so and later
 * openings skip it (a read of every user, ~0.3 s a million on this
 * machine, at every start and every assignment): users written since were
 * indexed as they were saved. A run without state TTL, and a restore or a
 * standby that applies a user record without a timer index entry (restore.c),
 * clear the mark. */
static int ttl_index_pass(cue_task *t, cue_err *err)
{
    uint64_t want = ttl_fingerprint(t->cfg, t->ms), have = 0;
    int rc = cue_store_ttl_mark_get(t->store, t->partition, &have, err);
    if (rc != 0 || have == want) return rc;
    ttl_pass p = {.t = t, .err = err};
    rc = cue_store_users_scan(t->store, t->partition, ttl_pass_user, &p);
    if (rc < 0)
        return cue_err_set(err, rc, "partition %u: cannot read the users to index their expiry",
                           t->partition);
    if (p.rc != 0) return p.rc;
    cue_store_batch_ttl_mark_put(t->store, t->partition, want);
    return cue_store_batch_commit(t->store, false, err);
}

/* Without any state TTL, users are saved without an expiry entry: a later
 * run with it must index them again. */
static int ttl_mark_clear(cue_task *t, cue_err *err)
{
    uint64_t have = 0;
    int rc = cue_store_ttl_mark_get(t->store, t->partition, &have, err);
    if (rc != 0 || have == 0) return rc;
    cue_store_batch_ttl_mark_put(t->store, t->partition, 0);
    return cue_store_batch_commit(t->store, false, err);
}

int cue_task_new(cue_task **out, const cue_config *cfg, const cue_machines *ms, cue_store *store,
                 uint32_t partition, const cue_task_sink *sink, cue_err *err)
{
    cue_task *t = calloc(1, sizeof *t);
    if (t == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory for a task");
    t->cfg = cfg;
    t->ms = ms;
    t->store = store;
    t->sink = *sink;
    t->partition = partition;
    t->user = malloc(sizeof *t->user);
    int rc = t->user ? 0 : cue_err_set(err, CUE_ENOMEM, "out of memory for a task");
    if (rc == 0) rc = cue_event_decoder_new(&t->dec, cfg, err);
    /* The fields the journeys read, found in the decoder's one pass; one it
     * has no room for (CUE_EFULL) is read by a second pass instead. */
    for (uint16_t i = 0; rc == 0 && i < cue_machines_ptr_count(ms); i++)
        (void)cue_event_decoder_want(t->dec, cue_machines_ptr(ms, i));
    if (rc == 0) rc = cue_cache_new(&t->cache, cfg->cache_max_bytes, err);
    if (rc == 0) rc = cue_timers_new(&t->timers, cfg->timers_memory_max, err);
    if (rc == 0 && cue_machines_use_local_time(ms)) rc = cue_tz_new(&t->jtz, CUE_TZ_ZONES_MAX, err);
    if (rc == 0 && (cue_buf_init(&t->enc, 4096) || cue_buf_init(&t->rec, 4096) ||
                    cue_buf_init(&t->loaded, 4096) || cue_buf_init(&t->sealed, 4096) ||
                    cue_buf_init(&t->recs, 4096) || cue_buf_init(&t->log_held, 256) ||
                    cue_buf_init(&t->timer_ops, 4096) || cue_buf_init(&t->timer_keys, 4096) ||
                    cue_buf_init(&t->timer_sort, 4096)))
        rc = cue_err_set(err, CUE_ENOMEM, "out of memory for a task");
    cue_store_meta meta = {.input_offset = 0, .changelog_offset = -1, .stream_time_ms = INT64_MIN};
    if (rc == 0) {
        rc = cue_store_meta_get(store, partition, &meta, err);
        if (rc == CUE_ENOTFOUND) rc = 0;
    }
    /* Journeys with a `migrate` map: the partition's stored users are
     * migrated now, before any timer is looked at (migrate.h says why). */
    if (rc == 0 && cue_migrate_needed(ms))
        rc = cue_migrate_partition(store, partition, ms, &t->stats.codec, &t->stats.migrated_users,
                                   err);
    if (rc == 0 && ttl_needed(cfg, ms))
        rc = ttl_index_pass(t, err);
    else if (rc == 0 && !ttl_set(cfg, ms))
        rc = ttl_mark_clear(t, err);
    if (rc != 0) {
        cue_task_free(t);
        return rc;
    }
    /* A topic the meta has no offset for was added to input.topics since:
     * it is read from its start. */
    t->next[0] = meta.input_offset;
    for (size_t i = 1; i < CUE_INPUT_TOPICS_MAX; i++)
        t->next[i] = i - 1 < meta.n_more ? meta.more_offsets[i - 1] : 0;
    t->stream_ms = meta.stream_time_ms;
    memcpy(t->logged, t->next, sizeof t->logged);
    /* logged_ms stays 0: when the last position record was written is not
     * kept, so an idle partition writes one soon after it opens. */
    t->changelog_next = meta.changelog_offset;
    t->synced_ms = meta.synced_ms;
    t->fired_upto = INT64_MIN;
    t->purged_upto = INT64_MIN;
    t->clock_ms = INT64_MIN;
    t->repair_from = INT64_MIN;
    t->repair_ms = INT64_MAX;
    *out = t;
    return 0;
}

void cue_task_set_clock(cue_task *t, int64_t now_ms)
{
    t->clock_ms = now_ms;
}

int64_t cue_task_repair_stream_time(cue_task *t, int64_t limit_ms)
{
    if (t->stream_ms == INT64_MIN || t->stream_ms <= limit_ms) return INT64_MIN;
    int64_t was = t->stream_ms;
    t->repair_from = was;
    t->repair_ms = limit_ms;
    t->stream_ms = limit_ms;
    /* The changelog's position record carries stream time: write it again. */
    t->logged[0] = -1;
    return was;
}

void cue_task_free(cue_task *t)
{
    if (t == NULL) return;
    free(t->released);
    cue_buf_deinit(&t->decision);
    cue_buf_deinit(&t->log_held);
    cue_buf_deinit(&t->erased);
    cue_buf_deinit(&t->pend_recs);
    cue_buf_deinit(&t->pend);
    cue_policy_tz_free(t->tz);
    cue_tz_free(t->jtz);
    cue_buf_deinit(&t->timer_sort);
    cue_buf_deinit(&t->timer_keys);
    cue_buf_deinit(&t->timer_ops);
    cue_buf_deinit(&t->sealed);
    cue_buf_deinit(&t->recs);
    cue_buf_deinit(&t->loaded);
    cue_buf_deinit(&t->rec);
    cue_buf_deinit(&t->enc);
    cue_timers_free(t->timers);
    cue_cache_free(t->cache);
    cue_event_decoder_free(t->dec);
    cue_journey_counts_free(t->journeys);
    free(t->user);
    free(t->flushing);
    free(t);
}

int cue_task_set_policy(cue_task *t, const struct cue_policy *p, cue_err *err)
{
    if (p == NULL) return 0;
    int rc = cue_policy_tz_new(&t->tz, err);
    if (rc == 0 && (t->released = malloc(sizeof *t->released)) == NULL)
        rc = cue_err_set(err, CUE_ENOMEM, "out of memory for a task");
    if (rc == 0 && (cue_buf_init(&t->pend, 1024) || cue_buf_init(&t->pend_recs, 4096) ||
                    cue_buf_init(&t->decision, 1024)))
        rc = cue_err_set(err, CUE_ENOMEM, "out of memory for a task");
    if (rc == 0) t->policy = p;
    for (size_t i = 0; rc == 0 && cue_policy_event_ptr(p, i) != NULL; i++)
        (void)cue_event_decoder_want(t->dec, cue_policy_event_ptr(p, i)); /* as the journeys' */
    return rc;
}

int64_t cue_task_next_offset(const cue_task *t)
{
    return t->next[0];
}

int64_t cue_task_next_offset_of(const cue_task *t, uint8_t topic)
{
    CUE_ASSERT(topic < CUE_INPUT_TOPICS_MAX);
    return t->next[topic];
}

int64_t cue_task_stream_time(const cue_task *t)
{
    return t->stream_ms;
}

const cue_task_stats *cue_task_stats_get(const cue_task *t)
{
    return &t->stats;
}

void cue_task_stats_add(cue_task_stats *sum, const cue_task_stats *s)
{
    sum->records += s->records;
    sum->applied += s->applied;
    sum->duplicates += s->duplicates;
    sum->late_applied += s->late_applied;
    sum->dead_letters += s->dead_letters;
    sum->corrupt_states += s->corrupt_states;
    for (int k = 0; k < CUE_REASON_COUNT; k++)
        sum->dead_by_reason[k] += s->dead_by_reason[k];
    sum->commits += s->commits;
    sum->state_writes += s->state_writes;
    sum->timer_writes += s->timer_writes;
    sum->timer_dropped += s->timer_dropped;
    sum->timer_loads += s->timer_loads;
    sum->timer_checks += s->timer_checks;
    sum->timer_stale += s->timer_stale;
    sum->engine.transitions += s->engine.transitions;
    sum->engine.starts += s->engine.starts;
    sum->engine.finishes += s->engine.finishes;
    sum->engine.triggers += s->engine.triggers;
    sum->engine.timers_fired += s->engine.timers_fired;
    sum->engine.instance_limit += s->engine.instance_limit;
    sum->engine.bad_key += s->engine.bad_key;
    sum->engine.bad_timer_value += s->engine.bad_timer_value;
    sum->engine.value_truncated += s->engine.value_truncated;
    sum->engine.timers_past += s->engine.timers_past;
    sum->engine.timers_past_skipped += s->engine.timers_past_skipped;
    sum->engine.timers_refused += s->engine.timers_refused;
    cue_codec_stats_add(&sum->codec, &s->codec);
    for (int k = 0; k < CUE_OUTCOME_COUNT; k++)
        sum->decisions[k] += s->decisions[k];
    sum->erasures += s->erasures;
    sum->expired_users += s->expired_users;
    sum->own_commits += s->own_commits;
    sum->ttl_indexed_users += s->ttl_indexed_users;
    sum->engine.instances_expired += s->engine.instances_expired;
    sum->changelog_records += s->changelog_records;
    sum->migrated_users += s->migrated_users;
}

void cue_task_cache_stats(const cue_task *t, cue_cache_stats *out)
{
    cue_cache_stats_get(t->cache, out);
}

static void dead_letter(cue_task *t, cue_reason reason, const char *msg, const char *raw,
                        size_t len, int64_t offset)
{
    t->stats.dead_letters++;
    t->stats.dead_by_reason[reason]++;
    const cue_record *rec = t->in; /* every dead letter is of the record in hand */
    CUE_ASSERT(rec != NULL);
    cue_dead_letter dl = {.reason = reason,
                          .message = msg,
                          .raw = raw,
                          .raw_len = len,
                          .partition = t->partition,
                          .offset = offset,
                          .key = rec->key,
                          .key_len = rec->key_len,
                          .timestamp_ms = rec->timestamp_ms};
    t->sink.dead_letter(&dl, t->sink.ctx);
}

/* ---- users in and out -------------------------------------------------- */

/* The user's zone for journeys' local clock times (the engine finds none
 * itself): the event's timezone attribute, else the one kept in the user's
 * state; none (UTC) when neither names a zone. Names found not to be zones
 * are remembered: each look-up of one would read the disk. */
static cue_step_env step_env(cue_task *t, const cue_event *ev)
{
    cue_step_env env = {.tz = t->jtz,
                        .zone = -1,
                        .taken = t->journeys ? cue_journey_counts_taken : NULL,
                        .taken_ctx = t->journeys};
    if (t->jtz == NULL) return env;
    bool from_ev = ev && ev->attr[CUE_ATTR_TIMEZONE];
    const char *name = from_ev ? ev->attr[CUE_ATTR_TIMEZONE] : t->user->attrs[CUE_ATTR_TIMEZONE];
    size_t n = from_ev ? ev->attr_len[CUE_ATTR_TIMEZONE] : t->user->attr_len[CUE_ATTR_TIMEZONE];
    if (n == 0 || n > CUE_ATTR_BYTES_MAX) return env;
    env.zone = cue_tz_found(t->jtz, name, n);
    if (env.zone >= 0) return env;
    uint64_t h = cue_hash64(name, n, 7) | 1;
    for (size_t i = 0; i < sizeof t->bad_zones / sizeof *t->bad_zones; i++)
        if (t->bad_zones[i] == h) return env;
    if (cue_tz_find(t->jtz, name, n, &env.zone, NULL) != 0) {
        env.zone = -1;
        t->bad_zones[t->next_bad_zone++ % (sizeof t->bad_zones / sizeof *t->bad_zones)] = h;
    }
    return env;
}

/* Finds a user's state: its image in the cache (`*own` set) or its record
 * in the store (into t->loaded). `*rec` is NULL for a user with no state.
 * It is borrowed until the cache or t->loaded changes. */
static int user_find(cue_task *t, const char *uid, size_t len, const void **rec, size_t *rlen,
                     bool *own, cue_err *err)
{
    *own = true;
    t->user_op = 0;
    if (cue_cache_get(t->cache, uid, len, rec, rlen, &t->user_op) == 0) {
        /* The user's pending index entry, read by the save after the step:
         * one of up to every dirty user's, so a miss of its own (a third of
         * user_save's time), which the step now overlaps. */
        if (t->user_op && t->user_op <= t->timer_ops.len / sizeof(timer_op))
            __builtin_prefetch((const timer_op *)t->timer_ops.data + (t->user_op - 1));
        return 0;
    }
    *own = false;
    /* Only a user that left the cache (evicted, its deletion flushed) since a
     * batch was handed over can be in a batch not yet written: that one
     * waits for the writes (and, for a sealed cycle's, its acknowledgements);
     * a user new to the cache, the usual miss, does not. With none pending,
     * everything that left so far is in the store. */
    bool settle = false;
    if (!cue_store_writes_pending(t->store))
        cue_cache_left_forget(t->cache);
    else
        settle = cue_cache_left_maybe(t->cache, uid, len);
    int rc;
    if (settle) {
        cue_task_exclusive(t, true);
        rc = cue_store_user_get(t->store, t->partition, uid, len, &t->loaded, err);
        cue_task_exclusive(t, false);
    } else {
        rc = cue_store_user_get_unsettled(t->store, t->partition, uid, len, &t->loaded, err);
    }
    *rec = rc == 0 ? t->loaded.data : NULL;
    *rlen = rc == 0 ? t->loaded.len : 0;
    return rc == CUE_ENOTFOUND ? 0 : rc;
}

/* Decodes a found record into t->user (or starts a fresh user). */
static int user_decode(cue_task *t, const char *uid, size_t len, const void *rec, size_t rlen,
                       bool own, cue_err *err)
{
    if (rec == NULL) {
        cue_user_init(t->user, uid, len);
        return 0;
    }
    if (own) {
        cue_codec_image_load(rec, rlen, t->ms, t->user);
        return 0;
    }
    return cue_codec_decode(rec, rlen, t->ms, t->user, &t->stats.codec, err);
}

/* Loads a user into t->user: cache, then store, else fresh. CUE_ECORRUPT or
 * CUE_EVERSION when the stored state does not decode. */
static int user_load(cue_task *t, const char *uid, size_t len, cue_err *err)
{
    const void *rec;
    size_t rlen;
    bool own;
    int rc = user_find(t, uid, len, &rec, &rlen, &own, err);
    return rc != 0 ? rc : user_decode(t, uid, len, rec, rlen, own, err);
}

static int user_save(cue_task *t, cue_err *err)
{
    if (t->recs_ok) cue_task_recs_drop(t); /* made before this step changed a user */
    cue_task_index_sync(t);
    if (cue_codec_image_save(t->user, t->ms, &t->enc) != 0)
        return cue_err_set(err, CUE_ENOMEM, "out of memory keeping a state");
    int rc = cue_cache_put(t->cache, t->user->id, t->user->id_len, t->enc.data, t->enc.len,
                           t->user_op, true);
    if (rc == CUE_EFULL && t->sink.commit) {
        /* Exactly-once: a commit now would put this step's triggers in the
         * transaction without the state that made them, and a later abort
         * would make them again. The cache runs over its budget until the
         * step ends; should_flush then commits. */
        rc = cue_cache_put_over(t->cache, t->user->id, t->user->id_len, t->enc.data, t->enc.len,
                                t->user_op);
    } else if (rc == CUE_EFULL) {
        /* The dirty share outgrew the cache: commit, which makes room and
         * writes the index entry just made (t->user_op is then 0). */
        rc = cue_task_self_commit(t, err);
        if (rc == 0)
            rc = cue_cache_put(t->cache, t->user->id, t->user->id_len, t->enc.data, t->enc.len,
                               t->user_op, true);
    }
    if (rc != 0 && err && err->code == 0)
        cue_err_set(err, rc, "cannot cache the state of user %.*s", (int)t->user->id_len,
                    t->user->id);
    return rc;
}

/* Deletes t->user, whose state expired (state TTL): as an erasure does,
 * through the cache, so the commit deletes the record and the changelog
 * gets its tombstone; but not physically (no flush or compaction: expiry is
 * housekeeping, and frequent). Any index entry of the user left behind finds
 * no user and is skipped; a user with the same id later starts afresh. */
static int user_expire(cue_task *t, cue_err *err)
{
    cue_user *u = t->user;
    if (t->recs_ok) cue_task_recs_drop(t);
    cue_task_index_kill(t, CUE_TIMER_NONE);
    int rc = cue_cache_put(t->cache, u->id, u->id_len, NULL, 0, t->user_op, true);
    if (rc == CUE_EFULL && t->sink.commit)
        rc = cue_cache_put_over(t->cache, u->id, u->id_len, NULL, 0, t->user_op);
    else if (rc == CUE_EFULL) {
        rc = cue_task_self_commit(t, err);
        if (rc == 0) rc = cue_cache_put(t->cache, u->id, u->id_len, NULL, 0, t->user_op, true);
    }
    if (rc != 0)
        return err && err->code
                   ? rc
                   : cue_err_set(err, rc, "cannot delete the expired state of user %.*s",
                                 (int)u->id_len, u->id);
    t->stats.expired_users++;
    return 0;
}

/* ---- firing timers ------------------------------------------------------ */

/* Fires the entry at the front of the window, if the user still has it. */
static int fire_entry(cue_task *t, int64_t due, cue_err *err)
{
    const char *uid;
    size_t len;
    cue_timers_peek(t->timers, &due, &uid, &len);
    char id[CUE_USER_ID_BYTES_MAX];
    /* A fixed 16 bytes for a short id (the slot has room for the longest):
     * a copy of unknown length became a `rep movs`, whose start-up was half
     * of this function's time. */
    if (len <= 16)
        memcpy(id, uid, 16);
    else
        memcpy(id, uid, len);
    cue_timers_pop(t->timers);
    cue_err uerr; /* cleared, not zeroed (516 bytes): once per timer */
    cue_err_clear(&uerr);
    const void *rec;
    size_t rlen;
    bool own;
    int rc = user_find(t, id, len, &rec, &rlen, &own, &uerr);
    if (rc != 0) return cue_err_set(err, rc, "%s", uerr.msg);
    t->stats.timer_checks++;
    /* Not the user's entry (a second copy of one already used, or one left
     * behind when the user's earliest timer moved earlier): the record's
     * header says so without decoding the rest. */
    int64_t indexed = CUE_TIMER_NONE;
    if (rec && own)
        indexed = cue_codec_image_indexed_due(rec);
    else if (rec && cue_codec_peek_indexed_due(rec, rlen, &indexed) != 0)
        indexed = due; /* does not read: decoding says why */
    if (rec == NULL || indexed != due) {
        t->stats.timer_stale++;
        return 0;
    }
    rc = user_decode(t, id, len, rec, rlen, own, &uerr);
    if (rc == CUE_ECORRUPT || rc == CUE_EVERSION) {
        /* Counted; the user's next event is dead-lettered with the reason. */
        t->stats.corrupt_states++;
        return 0;
    }
    if (rc != 0) return cue_err_set(err, rc, "%s", uerr.msg);
    if (t->user->indexed_due != due) {
        t->stats.timer_stale++;
        return 0;
    }
    /* The entry is used up; cue_task_index_sync indexes the user's next timer, if any.
     * The user may have no timer due now: the entry was a lower bound. */
    t->user->indexed_due = CUE_TIMER_NONE;
    cue_task_index_kill(t, due);
    bool deferring = t->user->policy.n_deferred > 0;
    cue_step_env env = step_env(t, NULL);
    if (t->journeys) cue_journey_counts_leave(t->journeys, t->user);
    cue_engine_fire(t->ms, t->user, due, &env, cue_task_on_trigger, t, &t->stats.engine);
    if (t->policy) {
        cue_task_release_deferred(t, due);
        cue_task_decide_step(t);
    }
    /* After the step: what it left armed or deferred keeps the user. One
     * whose journeys all went while a trigger of theirs waited (quiet hours,
     * a cap) goes when the last such trigger is let out, as it would have
     * gone with its last journey: nothing else would ever fire for it. */
    if (cue_engine_expire(t->ms, t->user, due, t->cfg->state_ttl_ms, &t->stats.engine) ||
        (deferring && t->user->n_instances == 0 && t->user->policy.n_deferred == 0))
        return user_expire(t, err);
    if (t->journeys) cue_journey_counts_enter(t->journeys, t->user);
    return user_save(t, err);
}

/* A timer's user, fetched ahead as a record's is (cue_timers_hint). */
static void hint_timer(const char *uid, size_t len, int stage, void *ctx)
{
    cue_task *t = ctx;
    cue_cache_prefetch(t->cache, uid, len, stage);
}

/* Fires every timer due at or before `limit`, in (due, user id) order. */
static int fire_due(cue_task *t, int64_t limit, cue_err *err)
{
    for (;;) {
        int64_t due;
        const char *uid;
        size_t len;
        cue_timers_hint(t->timers, hint_timer, t);
        if (cue_timers_peek(t->timers, &due, &uid, &len) == 0 && due <= limit) {
            int rc = fire_entry(t, due, err);
            /* Exactly-once lets the cache run over its budget within a step
             * (user_save); between two timers' steps it may commit again. */
            if (rc == 0 && t->sink.commit && cue_cache_should_flush(t->cache))
                rc = cue_task_self_commit(t, err);
            if (rc != 0) return rc;
            continue;
        }
        int64_t hdue;
        cue_timers_horizon(t->timers, &hdue, &uid, &len);
        if (hdue > limit || hdue == INT64_MAX) {
            if (limit > t->fired_upto) t->fired_upto = limit;
            return 0;
        }
        cue_task_exclusive(t, true);
        int rc = cue_task_timers_reload(t, err);
        cue_task_exclusive(t, false);
        if (rc != 0) return rc;
    }
}

/* ---- records ----------------------------------------------------------- */

static bool is_late(const cue_task *t, int64_t ts)
{
    return t->stream_ms != INT64_MIN && ts < t->stream_ms - t->cfg->allowed_lateness_ms;
}

/* Forgets a user: state, timers and deferred triggers go (the cached
 * deletion reaches the store at the next commit; index entries left behind
 * find no user and are skipped). The erasure is recorded without the user's
 * id: the input topic's partition and offset say which event asked for it. */
static int erase_user(cue_task *t, const cue_event *ev, cue_err *err)
{
    /* t->user_op is the user's (user_find), even when its state did not
     * decode: the commit's erasure must find no entry written after it. */
    if (t->recs_ok) cue_task_recs_drop(t);
    cue_task_index_kill(t, CUE_TIMER_NONE);
    int rc = cue_cache_put(t->cache, ev->user_id, ev->user_id_len, NULL, 0, t->user_op, true);
    if (rc == CUE_EFULL) {
        /* Nothing of this step is out yet: a commit (with every task's,
         * under exactly-once) is consistent here. */
        rc = cue_task_self_commit(t, err);
        if (rc == 0)
            rc = cue_cache_put(t->cache, ev->user_id, ev->user_id_len, NULL, 0, t->user_op, true);
    }
    if (rc != 0) return err && err->code ? rc : cue_err_set(err, rc, "cannot erase a user");
    /* The commit makes it physical (cue_store_batch_users_erase). A growth
     * failure of a buffer kept across cycles leaves the erasure logical
     * only: said, since the promise is broken. */
    size_t mark = t->erased.len;
    if (cue_buf_append_char(&t->erased, (char)ev->user_id_len) != 0 ||
        cue_buf_append(&t->erased, ev->user_id, ev->user_id_len) != 0) {
        t->erased.len = mark;
        return cue_err_set(err, CUE_ENOMEM, "out of memory noting an erasure");
    }
    if (t->journeys && t->user_loaded) cue_journey_counts_leave(t->journeys, t->user);
    t->stats.erasures++;
    t->stats.applied++; /* consumed = applied + duplicates + dead letters */
    cue_task_decide_erased(t, ev);
    return 0;
}

/* What the user's remembered ids say of an event that has one. */
typedef enum { ID_NEW, ID_RESENT, ID_UNSURE } id_seen;

/* Whether the user applied this event before under another position (a
 * producer's retry, a file sent again): the same id at the same time is
 * among those it remembers. The same id at another time is another event (a
 * client that sends a constant id must not lose all but its first). An event
 * at or before the time up to which ids were dropped to keep within the
 * bound cannot be told from a copy. *hash gets the id's hash. */
static id_seen event_id_seen(const cue_task *t, const cue_event *ev, uint64_t *hash)
{
    if (ev->event_id == NULL || t->cfg->event_id_dedup_max == 0) return ID_NEW;
    *hash = cue_hash64(ev->event_id, ev->event_id_len, 0);
    const cue_user *u = t->user;
    for (size_t i = 0; i < u->n_seen; i++)
        if (u->seen[i].hash == *hash && u->seen[i].ms == ev->ts_ms) return ID_RESENT;
    return ev->ts_ms <= u->seen_floor_ms ? ID_UNSURE : ID_NEW;
}

/* Keeps the id of an event just applied. Ids of events older than stream
 * time minus allowed.lateness.ms go: a copy of such an event is late and
 * refused as such (under late.policy dead_letter). Past event.id.dedup.max,
 * the oldest goes, and the floor notes up to when the list is no longer
 * whole. */
static void remember_id(cue_task *t, const cue_event *ev, uint64_t hash)
{
    cue_user *u = t->user;
    int64_t floor = t->stream_ms - t->cfg->allowed_lateness_ms;
    size_t n = 0, max = t->cfg->event_id_dedup_max;
    for (size_t i = 0; i < u->n_seen; i++)
        if (u->seen[i].ms >= floor) u->seen[n++] = u->seen[i];
    if (u->seen_floor_ms < floor) u->seen_floor_ms = INT64_MIN; /* older is late anyway */
    if (n >= max) {
        size_t drop = n - max + 1;
        for (size_t i = 0; i < drop; i++)
            if (u->seen[i].ms > u->seen_floor_ms) u->seen_floor_ms = u->seen[i].ms;
        memmove(u->seen, u->seen + drop, (max - 1) * sizeof *u->seen);
        n = max - 1;
    }
    u->seen[n++] = (cue_seen_id){.ms = ev->ts_ms, .hash = hash};
    u->n_seen = (uint8_t)n;
}

static int apply_event(cue_task *t, cue_event *ev, cue_err *err)
{
    cue_err uerr; /* cleared, not zeroed (516 bytes): once per event */
    cue_err_clear(&uerr);
    int rc = user_load(t, ev->user_id, ev->user_id_len, &uerr);
    t->user_loaded = rc == 0;
    /* An erasure goes through whatever the stored state holds, even a
     * record that no longer decodes. */
    if (t->policy && cue_policy_is_erasure(t->policy, ev) &&
        (rc == 0 || rc == CUE_ECORRUPT || rc == CUE_EVERSION))
        return erase_user(t, ev, err);
    if (rc == CUE_ECORRUPT || rc == CUE_EVERSION) {
        t->stats.corrupt_states++;
        dead_letter(t, CUE_REASON_BAD_STATE, uerr.msg, ev->raw, ev->raw_len, ev->offset);
        return 0;
    }
    if (rc != 0) return cue_err_set(err, rc, "%s", uerr.msg);
    uint64_t id_hash = 0;
    id_seen seen = ID_NEW;
    /* Offsets of different input topics do not compare: each has its own. */
    int64_t last = ev->topic == 0 ? t->user->last_offset : t->user->more_offsets[ev->topic - 1];
    if ((last != CUE_OFFSET_NONE && ev->offset <= last) ||
        (seen = event_id_seen(t, ev, &id_hash)) == ID_RESENT) {
        t->stats.duplicates++;
        return 0;
    }
    if (seen == ID_UNSURE) {
        dead_letter(t, CUE_REASON_LATE,
                    "event time is before what this user's event ids still cover "
                    "(event.id.dedup.max ids within allowed.lateness.ms): it cannot be told "
                    "from a copy of an event already applied",
                    ev->raw, ev->raw_len, ev->offset);
        return 0;
    }
    /* A timer's time that does not read refuses the whole event, before
     * anything of it (consent included) is kept, as other bad fields do. */
    cue_step_env env = step_env(t, ev);
    env.has_type = true;
    env.type_id = cue_machines_type_id(t->ms, ev->type, ev->type_len);
    cue_step_refusal refusal;
    if (!cue_engine_check(t->ms, t->user, ev, &env, &refusal)) {
        cue_engine_refusal_text(t->ms, &refusal, t->msg, sizeof t->msg);
        dead_letter(t, CUE_REASON_BAD_FIELD, t->msg, ev->raw, ev->raw_len, ev->offset);
        return 0;
    }
    if (t->policy) {
        const char *why = NULL;
        cue_policy_event pe =
            cue_policy_observe(t->policy, t->user, ev, cue_task_on_cancelled, t, &why);
        if (pe == CUE_POLICY_EVENT_BAD) {
            /* A consent event that does not say which channel or what: kept
             * as is, and not silently taken for anything. */
            dead_letter(t, CUE_REASON_BAD_FIELD, why, ev->raw, ev->raw_len, ev->offset);
            return 0;
        }
    }
    if (t->journeys) cue_journey_counts_leave(t->journeys, t->user);
    cue_engine_apply(t->ms, t->user, ev, &env, cue_task_on_trigger, t, &t->stats.engine);
    if (t->journeys) cue_journey_counts_enter(t->journeys, t->user);
    if (t->policy) cue_task_decide_step(t);
    if (ev->event_id && t->cfg->event_id_dedup_max > 0) remember_id(t, ev, id_hash);
    t->stats.applied++;
    return user_save(t, err);
}

static bool key_matches(const cue_event *ev, const char *key, size_t key_len)
{
    return key == NULL || (key_len == ev->user_id_len && memcmp(key, ev->user_id, key_len) == 0);
}

/* Whether the event's time is further ahead of its record's reference than
 * event.time.max.future.ms; if so, the message says by how much. Checked
 * before the time can move stream time or arm a timer. */
static bool is_future(cue_task *t, const cue_event *ev, const cue_record *rec)
{
    /* 0 is what a producer that sets no time sends on some clients: no time. */
    bool kafka = rec->timestamp_ms > 0;
    int64_t ref = kafka ? rec->timestamp_ms : t->clock_ms;
    /* Both are within [0, year 9999] or unset: the difference cannot overflow. */
    if (ref < 0 || ev->ts_ms <= ref || ev->ts_ms - ref <= t->cfg->event_max_future_ms) return false;
    char ts[CUE_TIME_TEXT_MAX], rt[CUE_TIME_TEXT_MAX];
    cue_time_format_rfc3339(ev->ts_ms, ts);
    cue_time_format_rfc3339(ref, rt); /* 0 <= ref < ts: in range */
    double ahead = (double)(ev->ts_ms - ref) / 3600000.0;
    const char *unit = "hours";
    if (ahead >= 2 * 8766) {
        ahead /= 8766; /* hours in an average year */
        unit = "years";
    } else if (ahead >= 48) {
        ahead /= 24;
        unit = "days";
    }
    snprintf(t->msg, sizeof t->msg,
             "event time %s is %.1f %s ahead of %s %s, more than event.time.max.future.ms "
             "(%lld ms): a device clock set ahead?",
             ts, ahead, unit, kafka ? "the record's Kafka timestamp" : "the reader's clock", rt,
             (long long)t->cfg->event_max_future_ms);
    return true;
}

int cue_task_process(cue_task *t, const cue_record *rec, cue_err *err)
{
    t->in = rec;
    int64_t offset = rec->offset;
    const char *raw = rec->value;
    size_t len = rec->value_len;
    CUE_ASSERT(offset >= 0);
    t->stats.records++;
    cue_event ev;
    cue_reason reason;
    cue_err derr; /* cleared, not zeroed (516 bytes): once per record */
    cue_err_clear(&derr);
    int rc = 0;
    if (cue_event_decode(t->dec, raw, len, &ev, &reason, &derr) != 0) {
        dead_letter(t, reason, derr.msg, raw, len, offset);
    } else if (!key_matches(&ev, rec->key, rec->key_len)) {
        dead_letter(t, CUE_REASON_KEY_MISMATCH, "the record's key is not its user id", raw, len,
                    offset);
    } else if (is_future(t, &ev, rec)) {
        dead_letter(t, CUE_REASON_FUTURE_TIME, t->msg, raw, len, offset);
    } else if (is_late(t, ev.ts_ms) && t->cfg->late_policy == CUE_LATE_DEAD_LETTER) {
        dead_letter(t, CUE_REASON_LATE,
                    "event time is older than stream time minus "
                    "allowed.lateness.ms",
                    raw, len, offset);
    } else {
        t->stats.late_applied += is_late(t, ev.ts_ms);
        ev.offset = offset;
        ev.topic = rec->topic;
        int64_t now = ev.ts_ms > t->stream_ms ? ev.ts_ms : t->stream_ms;
        t->now_ms = now;
        /* Timers that time has now passed fire first; one due at exactly the
         * event's time does not count as passed and fires after it. (Firing
         * timers does not decode, so `ev` stays valid.) */
        rc = fire_due(t, now - 1, err);
        t->stream_ms = now;
        if (rc == 0) rc = apply_event(t, &ev, err);
        if (rc == 0) rc = fire_due(t, t->stream_ms, err);
    }
    t->in = NULL;
    if (rc != 0) return rc;
    t->next[rec->topic] = offset + 1;
    if (++t->since_commit >= t->cfg->commit_records) return cue_task_self_commit(t, err);
    if (cue_cache_should_flush(t->cache)) {
        /* A task's own commit waits for every acknowledgement and writes
         * the store with intake stopped: with caches filling between
         * cycles, the latency run's p99 was 236 ms at 297k records/s. */
        if (t->sink.want_cycle == NULL) return cue_task_self_commit(t, err);
        t->sink.want_cycle(t->sink.ctx);
    }
    return 0;
}

void cue_task_prefetch(const cue_task *t, const char *uid, size_t uid_len, int stage)
{
    if (uid && uid_len > 0 && uid_len <= CUE_USER_ID_BYTES_MAX)
        cue_cache_prefetch(t->cache, uid, uid_len, stage);
}

int cue_task_offer(cue_task *t, const cue_record *rec, cue_err *err)
{
    CUE_ASSERT(rec->topic < CUE_INPUT_TOPICS_MAX);
    if (rec->offset < t->next[rec->topic]) {
        cue_task_skip(t);
        return 1;
    }
    if (rec->value_len > t->cfg->event_bytes_max)
        return cue_task_reject(t, rec, CUE_REASON_TOO_LARGE, "record larger than event.max.bytes",
                               err);
    return cue_task_process(t, rec, err);
}

void cue_task_skip(cue_task *t)
{
    t->stats.records++;
    t->stats.duplicates++;
}

int cue_task_reject(cue_task *t, const cue_record *rec, cue_reason reason, const char *msg,
                    cue_err *err)
{
    CUE_ASSERT(rec->offset >= 0);
    t->stats.records++;
    t->in = rec;
    dead_letter(t, reason, msg, rec->value, rec->value_len, rec->offset);
    t->in = NULL;
    t->next[rec->topic] = rec->offset + 1;
    if (++t->since_commit >= t->cfg->commit_records) return cue_task_self_commit(t, err);
    return 0;
}

int cue_task_advance(cue_task *t, int64_t until_ms, cue_err *err)
{
    if (until_ms <= t->stream_ms) return 0;
    t->now_ms = until_ms;
    int rc = fire_due(t, until_ms, err);
    if (rc == 0) t->stream_ms = until_ms;
    return rc;
}

int cue_task_rollback(cue_task *t, cue_err *err)
{
    /* A task built afresh from the store holds exactly the last committed
     * batch; its parts are swapped in whole, so no field can be forgotten.
     * Allocates, but rollbacks are rare (an aborted transaction). */
    cue_task *fresh = NULL;
    int rc = cue_task_new(&fresh, t->cfg, t->ms, t->store, t->partition, &t->sink, err);
    if (rc == 0) rc = cue_task_set_policy(fresh, t->policy, err);
    if (rc != 0) {
        cue_task_free(fresh);
        return rc;
    }
    cue_task old = *t;
    *t = *fresh;
    t->stats = old.stats;
    t->clock_ms = old.clock_ms;
    /* The counts go back to the last commit with the store. */
    t->journeys = old.journeys;
    old.journeys = NULL;
    if (t->journeys) cue_journey_counts_rollback(t->journeys);
    /* A repair not committed yet is undone with the rest: made again, but
     * only over the poisoned time it replaced (since then, time may have
     * moved past the limit honestly). */
    if (old.repair_from != INT64_MIN && t->stream_ms == old.repair_from)
        cue_task_repair_stream_time(t, old.repair_ms);
    *fresh = old; /* the old parts, freed with it */
    cue_task_free(fresh);
    return 0;
}

int cue_task_user_json(cue_task *t, const char *uid, size_t uid_len, cue_buf *out, cue_err *err)
{
    const void *rec;
    size_t rlen;
    bool own;
    int rc = user_find(t, uid, uid_len, &rec, &rlen, &own, err);
    if (rc != 0) return rc;
    if (rec == NULL) return CUE_ENOTFOUND;
    rc = user_decode(t, uid, uid_len, rec, rlen, own, err);
    if (rc != 0) return rc;
    return cue_user_to_json(t->user, t->ms, out);
}

int cue_task_count_journeys(cue_task *t, cue_err *err)
{
    if (t->journeys) return 0;
    int rc = cue_journey_counts_new(&t->journeys, t->ms, err);
    /* t->user is free between steps: the recount decodes into it. */
    if (rc == 0) rc = cue_journey_counts_recount(t->journeys, t->store, t->partition, t->user, err);
    if (rc != 0) {
        cue_journey_counts_free(t->journeys);
        t->journeys = NULL;
    }
    return rc;
}

const cue_journey_counts *cue_task_journeys(const cue_task *t)
{
    return t->journeys;
}
