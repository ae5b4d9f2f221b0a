/* The Kafka pipeline on one libuv loop: tasks per assigned partition, the
 * commit cycle, wall-clock time for caught-up partitions, admin HTTP, signals. */
#include "cuepoint/runtime.h"

#include "cuepoint/buf.h"
#include "cuepoint/http.h"
#include "cuepoint/kafka.h"
#include "cuepoint/kafka_group.h"
#include "cuepoint/log.h"
#include "cuepoint/metrics.h"
#include "cuepoint/offsets.h"
#include "cuepoint/restore.h"
#include "cuepoint/standby.h"
#include "cuepoint/store.h"
#include "cuepoint/task.h"
#include "cuepoint/timefmt.h"
#include "cuepoint/version.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Records served per loop turn before the loop looks at its other work
 * (timers, HTTP, signals); the rest wait for the next turn. */
#define CONSUME_BATCH 4096
/* How often caught-up partitions follow the wall clock and stop_at_end looks. */
#define CLOCK_TICK_MS 250
/* Dead letters logged one by one before the log switches to every 10,000th. */
#define DEAD_LOG_FIRST 100

typedef struct part {
    cue_task *task;   /* owned while assigned; NULL otherwise */
    int64_t position; /* next offset to process */
    int64_t high;     /* the high watermark last seen, or -1 */
    uint64_t consumed;
    /* The partition's reset marker, carried forward in every group commit
     * so the reset reaches stores that have not seen it (offsets.h). Group
     * commits are skipped while `group_unread`: the group's metadata could
     * not be read at assignment, and a commit must not overwrite a marker
     * this instance never saw. */
    char marker[CUE_KAFKA_META_MAX];
    bool group_unread;
    /* Rebuilding the partition's state from the changelog before it
     * processes input (held meanwhile): records [restore_from, restore_end). */
    bool restoring;
    int64_t restore_from, restore_end, restore_pos;
    int64_t restore_synced_ms; /* when restore_end was read: records past it came later */
    cue_restore rs;
    uint64_t restore_started_ns;
    /* A standby replica (num.standby.replicas): the changelog tailed into
     * the local store from `restore_pos` on, while another instance owns
     * the partition. `sb` counts what it applied. */
    bool standby;
    cue_restore sb;
    uint64_t sb_records_before; /* applied by this partition's earlier standbys */
    uint64_t standby_retry_ns;  /* a failed start is not tried again before this */
    /* Exactly-once: the input offset the last committed transaction sent
     * (-1: none since the assignment), so an idle cycle sends nothing. */
    int64_t txn_sent;
} part;

enum { RUNNING = 0, COMMITTING };

typedef struct rt {
    const cue_runtime_opts *o;
    /* The pipeline's config: the caller's, or with repartition its copy whose
     * input is <application.id>-repartition. */
    const cue_config *cfg;
    cue_config cfg_main;
    cue_runtime_result *res;
    cue_config task_cfg; /* the config with the cache budget divided among partitions */
    uv_loop_t loop;
    uv_poll_t cpoll, ppoll;
    uv_timer_t commit_timer, clock_timer, stop_timer;
    uv_idle_t more;
    uv_signal_t sigterm, sigint;
    cue_store *store;    /* owned */
    cue_kafka *k;        /* owned */
    int32_t input_parts; /* the input's partition count at start; 0 before it is known */
    /* The changelog reader (changelog.enabled), outside any group, and its config
     * (the live one with the changelog topic as input). */
    cue_kafka *restore;
    cue_config restore_cfg;
    uv_poll_t rpoll;
    uv_idle_t rmore;
    size_t restoring; /* partitions being restored */
    /* Standby replicas: the members topic's reader and writer (outside the
     * group), the view of the members it gives, this instance's name in it,
     * and the partitions tailed as standbys. */
    cue_kafka *mk;
    cue_config members_cfg;
    cue_members *members;
    char member_name[CUE_MEMBER_NAME_BYTES_MAX];
    bool members_read;  /* the topic was read to its end once */
    bool *want;         /* owned: per partition, from cue_members_standbys */
    int32_t *owned_ids; /* owned: room for every partition, for the member record */
    int32_t members_parts;
    size_t standbys;
    uint64_t members_bad;
    uint64_t changelog_skipped; /* records restores and standbys did not apply */
    cue_buf member_rec;
    uv_poll_t mpoll, mppoll;
    uv_timer_t heartbeat;
    uv_idle_t mmore; /* the members topic had more than one turn's records */
    /* The repartition stage (config "repartition"): a member of its own group
     * (<application.id>-repartition) on the input topic that re-keys each
     * record by its user id into the repartition topic, which the pipeline
     * reads. Stateless: its position is its group's committed offset. */
    cue_kafka *k1;
    cue_config cfg_stage1;
    cue_event_decoder *dec1;
    uv_poll_t c1poll, p1poll;
    uv_idle_t more1;
    bool *owned1; /* per input partition */
    /* Per input partition: the head record's event time and user id (decoded
     * once), and the offset after the last record passed on. */
    struct head1 {
        int64_t offset, ts_ms;
        char uid[CUE_USER_ID_BYTES_MAX];
        size_t uid_len;
    } * h1;
    int64_t *emitted1;
    uint64_t wait1_ns; /* since when a partition with data still to come held the merge */
    int32_t n1;
    bool assigned1_once;
    uint64_t repartitioned;
    cue_http *http;      /* owned */
    bool admin_loopback; /* the admin address bound is a loopback one */
    cue_task_sink sink;
    part *parts; /* owned; n_parts of them, indexed by partition */
    int32_t n_parts;
    int state;
    bool stop_requested, assigned_once;
    /* Between a revocation and the assignment that ends that rebalance
     * (cooperative rebalances end with an assignment, empty or not). */
    bool rebalancing;
    int fatal_rc;
    cue_err fatal_err;
    const cue_kafka_msg *cur; /* the record being processed, for dead letters */
    uint64_t commit_started_ns, started_ns, first_record_ns, last_record_ns;
    cue_histogram commit_hist;
    cue_task_stats retired; /* summed from tasks already freed, so counters only grow */
    cue_cache_stats retired_cache;
    cue_buf labels; /* owned: a metric's label list, rebuilt per sample */
    /* Exactly-once: the offsets handed to each transaction (owned, n_parts
     * long, grown with it) and whether the producer was fenced. */
    int32_t *txn_parts;
    int64_t *txn_offsets;
    const char **txn_meta;
    bool fenced;
    /* Transactions aborted since the last one committed: a record that
     * fails the same way each time would otherwise be redone for ever. */
    int aborts_in_row;
} rt;

static int64_t wall_ms(rt *r)
{
    if (r->o->now_ms) return r->o->now_ms(r->o->now_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Ends the run without another commit: whatever was not committed is made
 * again by the next run, with the same ids. */
static void fatal(rt *r, int rc, const char *msg)
{
    if (rc == CUE_EFENCED && !r->fenced) {
        /* Kafka Streams closes its tasks dirty and rejoins; its
         * transactional.id has a random per-process part, so a fence there
         * means the tasks moved. Ours is stable per instance, so a fence
         * means another live process has this instance's identity: going on
         * (a new producer) would fence it in turn, and the two would abort
         * each other's transactions for ever. So: no commit, not ready, exit
         * 75; whatever was not committed is redone by the survivor. */
        r->fenced = true;
        cue_log(CUE_LOG_ERROR,
                "fenced: another producer registered this transactional.id; exiting 75 without "
                "committing (is a second instance running with the same group.instance.id or "
                "state.dir?)",
                "s:transactional_id", r->cfg->transactional_id, "s:error", msg, NULL);
    }
    if (r->fatal_rc == 0) {
        r->fatal_rc = rc;
        cue_err_set(&r->fatal_err, rc, "%s", msg);
        cue_log(CUE_LOG_ERROR, "stopping without committing", "s:error", msg, NULL);
    }
    uv_stop(&r->loop);
}

/* ---- the task sink ----------------------------------------------------- */

static void sink_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    rt *r = ctx;
    if (cue_kafka_produce_trigger(r->k, t, rec, len) != 0) return; /* fatal already raised */
    r->res->triggers++;
    r->res->by_trigger[t->machine_index][t->trigger_index]++;
    if (r->o->on_trigger) r->o->on_trigger(t, rec, len, r->o->on_trigger_ctx);
}

static void sink_dead(const cue_dead_letter *dl, void *ctx)
{
    rt *r = ctx;
    uint64_t n = ++r->res->dead_letters;
    r->res->dead_by_reason[dl->reason]++;
    const cue_kafka_msg *m = r->cur;
    CUE_ASSERT(m != NULL); /* dead letters come only from records */
    if (n <= DEAD_LOG_FIRST || n % 10000 == 0)
        cue_log(CUE_LOG_WARN, "dead letter", "s:reason", cue_reason_name(dl->reason), "s:error",
                dl->message ? dl->message : "", "s:topic", m->topic, "i:partition",
                (int64_t)m->partition, "i:offset", m->offset, "u:dead_letters", n, NULL);
    cue_kafka_produce_dead_letter(r->k, dl, m);
}

static void sink_decision(const char *key, size_t key_len, const char *rec, size_t len, void *ctx)
{
    rt *r = ctx;
    cue_kafka_produce_decision(r->k, key, key_len, rec, len); /* a failure raises fatal */
}

static void sink_changelog(uint32_t partition, const char *key, size_t key_len, const void *val,
                           size_t len, void *ctx)
{
    rt *r = ctx;
    cue_kafka_produce_changelog(r->k, (int32_t)partition, key, key_len, val, len);
}

/* The wall clock, never an injected one: it is compared with other
 * processes' clocks and with the broker's retention. */
static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sink_changelog_next(uint32_t partition, int64_t *synced_ms, void *ctx)
{
    rt *r = ctx;
    /* Every record of ours is acknowledged and the partition is ours (a
     * lost one is not committed, part_release): a record past the position
     * can only be written after now. A zombie that has not heard yet that
     * the group moved on stamps wrongly, as at least once cannot keep it
     * from writing either; exactly-once fences it before this is called. */
    *synced_ms = real_ms();
    return cue_kafka_changelog_next(r->k, (int32_t)partition);
}

static int sink_flush(void *ctx, cue_err *err)
{
    rt *r = ctx;
    if (r->fatal_rc) return cue_err_set(err, r->fatal_rc, "%s", r->fatal_err.msg);
    /* Exactly-once: the records become durable with their transaction. */
    if (r->cfg->exactly_once) return 0;
    return cue_kafka_flush(r->k, r->cfg->delivery_timeout_ms, err);
}

static int eos_commit(rt *r, cue_err *err);

/* A task's own commit (exactly-once): every task goes in the transaction. */
static int sink_commit(void *ctx, cue_err *err)
{
    return eos_commit(ctx, err);
}

/* ---- partitions -------------------------------------------------------- */

static part *part_get(rt *r, int32_t p)
{
    return p >= 0 && p < r->n_parts ? &r->parts[p] : NULL;
}

static int parts_reserve(rt *r, int32_t p)
{
    if (p < r->n_parts) return 0;
    part *np = realloc(r->parts, (size_t)(p + 1) * sizeof *np);
    if (np == NULL) return CUE_ENOMEM;
    r->parts = np;
    if (r->cfg->exactly_once) {
        int32_t *tp = realloc(r->txn_parts, (size_t)(p + 1) * sizeof *tp);
        if (tp) r->txn_parts = tp;
        int64_t *to = realloc(r->txn_offsets, (size_t)(p + 1) * sizeof *to);
        if (to) r->txn_offsets = to;
        const char **tm = realloc(r->txn_meta, (size_t)(p + 1) * sizeof *tm);
        if (tm) r->txn_meta = tm;
        if (tp == NULL || to == NULL || tm == NULL) return CUE_ENOMEM;
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
            fatal(r, err.code, err.msg);
            return err.code;
        }
        if (!a.already)
            cue_log(CUE_LOG_INFO, "reset applied", "s:topic", r->cfg->input_topic, "i:partition",
                    (int64_t)id, "s:reset", meta, "i:from", a.from, "i:to", a.to, "s:state",
                    a.action == CUE_OFFSETS_DROP ? "dropped" : "kept", "u:users", a.users, NULL);
    }
    if (cue_store_reset_marker_get(r->store, (uint32_t)id, p->marker, sizeof p->marker, &err) !=
        0) {
        fatal(r, err.code, err.msg);
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
    bool unread = cue_kafka_group_committed(r->k, fresh, m, offsets, meta,
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

/* ---- restoring from the changelog ---------------------------------------- */

/* Records restored per loop turn: the rest of the loop (other partitions,
 * HTTP, timers) runs between turns, so a restore blocks nothing else. */
#define RESTORE_BATCH 20000

static int task_open(rt *r, int32_t id, cue_err *err);

/* Commits the store's shared batch: what restores and standbys applied
 * (tasks commit theirs within their own cycle). A store that cannot write
 * stops the run. */
static void batch_commit(rt *r)
{
    cue_err err = {0};
    if (cue_store_batch_commit(r->store, false, &err) != 0) fatal(r, err.code, err.msg);
}

/* The partition is rebuilt: its meta goes in with the last records, the
 * task loads from the store, and its input starts where the state ends. */
static void restore_finish(rt *r, int32_t id)
{
    part *p = &r->parts[id];
    cue_kafka_unassign_one(r->restore, id);
    cue_restore_finish(&p->rs, r->store, p->restore_end, p->restore_synced_ms);
    cue_err err = {0};
    int rc = cue_store_batch_commit(r->store, false, &err);
    cue_restore_deinit(&p->rs); /* the held entries' memory; its counts stay */
    if (rc == 0) rc = task_open(r, id, &err);
    if (rc != 0) {
        fatal(r, rc, err.msg);
        return;
    }
    p->restoring = false;
    r->restoring--;
    p->position = p->rs.input_offset;
    cue_kafka_seek_resume(r->k, id, p->rs.input_offset);
    double secs = (double)(uv_hrtime() - p->restore_started_ns) / 1e9;
    cue_log(CUE_LOG_INFO, "restore finished", "s:topic", r->restore_cfg.input_topic, "i:partition",
            (int64_t)id, "u:records", p->rs.records, "u:bytes", p->rs.bytes, "d:seconds", secs,
            "i:input_offset", p->rs.input_offset, NULL);
}

static void standby_apply(rt *r, part *p, const cue_kafka_msg *m);

/* Applies one changelog record for a restore or a standby. A record that is
 * not the owner's (cue_restore_apply says which) is skipped, counted and
 * logged with where it is, and the partition goes on: anything that can
 * write the topic can put one there. False when it was skipped. */
static bool changelog_apply(rt *r, cue_restore *rs, const cue_kafka_msg *m)
{
    cue_err err = {0};
    if (cue_restore_apply(rs, r->store, m->key, m->key_len, m->value_len ? m->value : NULL,
                          m->value_len, &err) == 0)
        return true;
    r->changelog_skipped++;
    cue_log(CUE_LOG_WARN, "changelog record skipped", "s:topic", r->restore_cfg.input_topic,
            "i:partition", (int64_t)m->partition, "i:offset", m->offset, "s:reason", err.msg, NULL);
    return false;
}

static void on_restore_message(const cue_kafka_msg *m, void *ctx)
{
    rt *r = ctx;
    part *p = part_get(r, m->partition);
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
    if (cue_store_batch_count(r->store) >= RESTORE_BATCH) batch_commit(r);
    if (p->restore_pos >= p->restore_end) restore_finish(r, m->partition);
}

static void on_restore_end(int32_t partition, int64_t offset, void *ctx)
{
    rt *r = ctx;
    part *p = part_get(r, partition);
    if (p && p->restoring && offset >= p->restore_end) restore_finish(r, partition);
}

static void on_restore_more(uv_idle_t *h);

static void restore_pump(rt *r)
{
    if (r->restore == NULL || r->restoring + r->standbys == 0 || r->fatal_rc) {
        uv_idle_stop(&r->rmore);
        return;
    }
    if (cue_kafka_consume(r->restore, RESTORE_BATCH) < RESTORE_BATCH)
        uv_idle_stop(&r->rmore);
    else if (!uv_is_active((uv_handle_t *)&r->rmore))
        uv_idle_start(&r->rmore, on_restore_more);
}

static void on_restore_more(uv_idle_t *h)
{
    restore_pump(h->data);
}

static void on_restore_ready(uv_poll_t *h, int status, int events)
{
    rt *r = h->data;
    (void)status;
    (void)events;
    cue_kafka_drain_fd(cue_kafka_consumer_fd(r->restore));
    restore_pump(r);
}

/* Whether a local copy last in line with the changelog at `synced_ms` may
 * have missed a tombstone: the broker keeps one for delete.retention.ms
 * after its segment is cleaned, so a copy younger than that saw every
 * tombstone past its position. A tenth (at most 10 min) is kept in hand
 * for clocks that disagree. */
static bool copy_too_old(const rt *r, int64_t synced_ms, int64_t *age_ms)
{
    int64_t keep = r->task_cfg.changelog_delete_retention_ms; /* changelog_open's */
    int64_t margin = keep / 10 < 600000 ? keep / 10 : 600000;
    *age_ms = real_ms() - synced_ms;
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
    int rc = cue_kafka_watermarks(r->restore, id, timeout_ms, low, high, err);
    if (rc != 0) return rc;
    rc = cue_store_meta_get(r->store, (uint32_t)id, meta, err);
    *local = rc == 0;
    return rc == CUE_ENOTFOUND ? 0 : rc;
}

/* Decides whether partition `id` needs its state from the changelog: when the
 * local store is missing it, or is behind what the changelog holds (another
 * instance had the partition). */
static int restore_plan(rt *r, int32_t id, bool *needed, cue_err *err)
{
    *needed = false;
    if (r->restore == NULL) return 0;
    part *p = &r->parts[id];
    int64_t low = 0, high = 0;
    cue_store_meta meta = {0};
    bool local = false;
    int64_t asked_ms = real_ms();
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
    rc = cue_kafka_assign_one(r->restore, id, p->restore_from, err);
    if (rc != 0) return rc;
    p->restoring = true;
    r->restoring++;
    cue_log(CUE_LOG_INFO, "restore started", "s:topic", r->restore_cfg.input_topic, "i:partition",
            (int64_t)id, "i:from", p->restore_from, "i:to", high, "s:local",
            local ? "behind" : "none", NULL);
    return 0;
}

/* ---- standby replicas ---------------------------------------------------- */

/* How often an instance writes its member record, and how long the record
 * keeps it live: a member that stops writing counts as gone after the ttl
 * (the group notices a dead consumer after session.timeout.ms on its own). */
#define MEMBER_HEARTBEAT_MS 2000
#define MEMBER_TTL_MS       10000
/* A standby start asks the changelog's leader for its edges; a broker that
 * does not answer in this time leaves it for the next heartbeat. */
#define STANDBY_START_TIMEOUT_MS 2000
#define STANDBY_RETRY_NS         (10 * 1000000000ull)

static void members_publish(rt *r)
{
    if (r->mk == NULL || r->stop_requested) return;
    size_t n = 0;
    for (int32_t i = 0; i < r->members_parts; i++)
        if (r->parts[i].task || r->parts[i].restoring) r->owned_ids[n++] = i;
    if (cue_members_encode(r->member_name, r->owned_ids, n, real_ms(), MEMBER_TTL_MS,
                           &r->member_rec) != 0)
        return; /* out of memory: the next heartbeat tries again */
    cue_kafka_produce_at(r->mk, 0, r->member_name, strlen(r->member_name), r->member_rec.data,
                         r->member_rec.len);
}

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
    if (rc == 0) rc = cue_kafka_assign_one(r->restore, id, from, err);
    if (rc != 0) return rc;
    p->sb_records_before += p->sb.records;
    cue_restore_init(&p->sb, (uint32_t)id, local ? &meta : NULL, false);
    p->restore_pos = from;
    p->standby = true;
    r->standbys++;
    cue_log(CUE_LOG_INFO, "standby started", "s:topic", r->restore_cfg.input_topic, "i:partition",
            (int64_t)id, "i:from", from, "i:end", high, NULL);
    return 0;
}

/* Stops tailing partition `id`; what it applied is committed, so a restore
 * that follows (the partition assigned here) starts from there. */
static void standby_stop(rt *r, int32_t id, const char *why)
{
    part *p = &r->parts[id];
    if (!p->standby) return;
    cue_kafka_unassign_one(r->restore, id);
    p->standby = false;
    r->standbys--;
    batch_commit(r);
    cue_log(CUE_LOG_INFO, "standby stopped", "s:topic", r->restore_cfg.input_topic, "i:partition",
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
    part *p = part_get(r, partition);
    if (p == NULL || (!p->standby && !p->restoring) || r->fatal_rc) return;
    cue_kafka_unassign_one(r->restore, partition);
    cue_err err = {0};
    int rc = cue_store_batch_commit(r->store, false, &err);
    if (rc == 0 && p->standby) {
        /* The next placement update starts it again (changelog_from). */
        p->standby = false;
        r->standbys--;
        cue_log(CUE_LOG_WARN, "standby stopped: it fell behind the changelog's start",
                "i:partition", (int64_t)partition, "i:missed_from", offset, NULL);
        return;
    }
    bool needed = false;
    if (rc == 0) {
        p->restoring = false;
        r->restoring--;
        /* The local meta is older than the log's start now: the partition
         * is emptied and read from the start again. */
        rc = restore_plan(r, partition, &needed, &err);
    }
    if (rc == 0 && !needed) {
        rc = task_open(r, partition, &err);
        if (rc == 0) {
            p->position = cue_task_next_offset(p->task);
            cue_kafka_seek_resume(r->k, partition, p->position);
        }
    }
    if (rc != 0) fatal(r, rc, err.msg);
    cue_log(CUE_LOG_WARN, "restore started again from the changelog's start", "i:partition",
            (int64_t)partition, "i:missed_from", offset, NULL);
}

/* Brings the standbys here in line with the placement the members' records
 * give (standby.h): never a partition this instance owns or restores. */
static void standby_update(rt *r)
{
    if (r->members == NULL || !r->members_read || r->stop_requested || r->fatal_rc) return;
    int32_t n = r->members_parts;
    cue_members_standbys(r->members, real_ms(), (int)r->cfg->standby_replicas, r->want);
    /* One start per update: each asks a broker (up to
     * STANDBY_START_TIMEOUT_MS), and updates come with every member record
     * and heartbeat, so the rest follow within seconds without holding the
     * loop; a failed one waits STANDBY_RETRY_NS. */
    bool started = false;
    uint64_t now = uv_hrtime();
    for (int32_t i = 0; i < n; i++) {
        part *p = &r->parts[i];
        bool keep = r->want[i] && p->task == NULL && !p->restoring;
        if (keep && !p->standby && !started && now >= p->standby_retry_ns) {
            cue_err err = {0};
            started = true;
            if (standby_start(r, i, &err) != 0) {
                p->standby_retry_ns = now + STANDBY_RETRY_NS;
                cue_log(CUE_LOG_WARN, "standby not started; trying again later", "i:partition",
                        (int64_t)i, "s:error", err.msg, NULL);
            }
        } else if (!keep && p->standby) {
            standby_stop(r, i, "placement moved it");
        }
    }
    restore_pump(r);
}

/* A changelog record for a standby: applied like a restore's, and at each
 * cycle's position record the copy is whole up to there, so its meta moves. */
static void standby_apply(rt *r, part *p, const cue_kafka_msg *m)
{
    if (m->offset < p->restore_pos) return;
    bool applied = changelog_apply(r, &p->sb, m);
    p->restore_pos = m->offset + 1;
    /* The owner wrote the position record before any record past it. */
    if (applied && m->key != NULL && m->key_len == 0)
        cue_restore_finish(&p->sb, r->store, p->restore_pos,
                           m->timestamp_ms > 0 ? m->timestamp_ms : 0);
    if (cue_store_batch_count(r->store) >= RESTORE_BATCH) batch_commit(r);
}

static void on_member_message(const cue_kafka_msg *m, void *ctx)
{
    rt *r = ctx;
    if (m->partition != 0) return; /* records are written to partition 0 only */
    cue_err err = {0};
    if (cue_members_apply(r->members, m->key, m->key_len, m->value_len ? m->value : NULL,
                          m->value_len, m->offset, &err) != 0) {
        r->members_bad++;
        cue_log(CUE_LOG_WARN, "members record skipped", "s:topic", r->members_cfg.input_topic,
                "i:partition", (int64_t)m->partition, "i:offset", m->offset, "s:error", err.msg,
                NULL);
        return;
    }
    standby_update(r);
}

static void on_members_end(int32_t partition, int64_t offset, void *ctx)
{
    rt *r = ctx;
    if (partition != 0 || r->members_read) return;
    r->members_read = true;
    cue_log(CUE_LOG_INFO, "members read", "s:topic", r->members_cfg.input_topic, "i:offset", offset,
            "i:live", (int64_t)cue_members_live(r->members, real_ms()), NULL);
    standby_update(r);
}

/* Standbys are a speed-up, never a reason to stop processing: a members
 * topic that cannot be written is reported and the heartbeats go on. */
static void on_members_fatal(const char *why, void *ctx)
{
    rt *r = ctx;
    cue_log(CUE_LOG_WARN, "members topic: standby placement may be stale", "s:topic",
            r->members_cfg.input_topic, "s:error", why, NULL);
}

#define MEMBERS_BATCH 4096

static void on_members_more(uv_idle_t *h);

/* Serves the members topic a turn at a time: a long one (not compacted, read
 * from its start) goes on in the next turns. */
static void members_pump(rt *r)
{
    if (cue_kafka_consume(r->mk, MEMBERS_BATCH) < MEMBERS_BATCH)
        uv_idle_stop(&r->mmore);
    else if (!uv_is_active((uv_handle_t *)&r->mmore))
        uv_idle_start(&r->mmore, on_members_more);
}

static void on_members_more(uv_idle_t *h)
{
    members_pump(h->data);
}

static void on_members_ready(uv_poll_t *h, int status, int events)
{
    rt *r = h->data;
    (void)status;
    (void)events;
    cue_kafka_drain_fd(cue_kafka_consumer_fd(r->mk));
    members_pump(r);
}

static void on_members_producer(uv_poll_t *h, int status, int events)
{
    rt *r = h->data;
    (void)status;
    (void)events;
    cue_kafka_drain_fd(cue_kafka_producer_fd(r->mk));
    cue_kafka_serve_producer(r->mk);
}

static void on_heartbeat(uv_timer_t *h)
{
    rt *r = h->data;
    members_publish(r);
    standby_update(r);
    /* What the standbys applied since reaches disk at least this often. */
    if (r->standbys && cue_store_batch_count(r->store) > 0) batch_commit(r);
}

/* The members topic (created compacted where the cluster lets us; records go
 * to its partition 0 whatever its count, so an automatically created one
 * with several partitions works too), its reader from the beginning and
 * its writer. */
static int instance_id(const cue_config *c, char *out, size_t cap, cue_err *err);

static int members_open(rt *r, int32_t partitions, cue_err *err)
{
    const cue_config *cfg = r->cfg;
    const char *topic = cue_config_members_topic(cfg);
    int32_t n = 0;
    int rc = cue_kafka_topic_partitions(r->k, topic, false, cfg->startup_timeout_ms, &n, err);
    if (rc != 0) return rc;
    if (n == 0) {
        cue_err cerr = {0};
        static const char *const compact[] = {"cleanup.policy", "compact", NULL};
        if (cue_kafka_create_topic(r->k, topic, 1, compact, cfg->startup_timeout_ms, &cerr) == 0)
            cue_log(CUE_LOG_INFO, "members topic created", "s:topic", topic, NULL);
        else if ((rc = cue_kafka_topic_partitions(r->k, topic, true, cfg->startup_timeout_ms, &n,
                                                  err)) != 0)
            return rc;
    }
    rc = instance_id(cfg, r->member_name, sizeof r->member_name, err);
    if (rc != 0) return rc;
    r->members_parts = partitions;
    r->want = calloc((size_t)partitions, sizeof *r->want);
    r->owned_ids = calloc((size_t)partitions, sizeof *r->owned_ids);
    if (r->want == NULL || r->owned_ids == NULL || cue_buf_init(&r->member_rec, 256) != 0)
        return cue_err_set(err, CUE_ENOMEM, "out of memory");
    rc = cue_members_new(&r->members, partitions, r->member_name, err);
    if (rc != 0) return rc;
    r->members_cfg = *cfg;
    snprintf(r->members_cfg.input_topic, sizeof r->members_cfg.input_topic, "%s", topic);
    cue_kafka_handler h = {
        .message = on_member_message, .fatal = on_members_fatal, .end = on_members_end, .ctx = r};
    rc = cue_kafka_open_replay(&r->mk, &r->members_cfg, &h, "members", topic, err);
    if (rc == 0) rc = cue_kafka_assign_one(r->mk, 0, CUE_KAFKA_OFFSET_BEGINNING, err);
    if (rc == 0)
        cue_log(CUE_LOG_INFO, "standby replicas on", "s:topic", topic, "s:instance", r->member_name,
                "i:replicas", r->cfg->standby_replicas, NULL);
    return rc;
}

/* The last word of a clean stop: this member is gone. */
static void members_close(rt *r)
{
    if (r->mk == NULL) return;
    if (r->fatal_rc == 0)
        cue_kafka_produce_at(r->mk, 0, r->member_name, strlen(r->member_name), NULL, 0);
    cue_kafka_close(r->mk, r->fatal_rc ? 0 : 2000);
    r->mk = NULL;
}

static int task_open(rt *r, int32_t id, cue_err *err)
{
    part *p = &r->parts[id];
    if (p->task) return 0;
    p->txn_sent = -1;
    if (r->cfg->changelog) cue_kafka_changelog_forget(r->k, id);
    int rc = cue_task_new(&p->task, &r->task_cfg, r->o->ms, r->store, (uint32_t)id, &r->sink, err);
    if (rc == 0) rc = cue_task_set_policy(p->task, r->o->policy, err);
    if (rc != 0) {
        cue_task_free(p->task);
        p->task = NULL;
        return rc;
    }
    int64_t wall = wall_ms(r), real = real_ms();
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

static int on_assigned(const int32_t *ids, int64_t *start, size_t n, void *ctx)
{
    rt *r = ctx;
    r->res->rebalances++;
    if (r->stop_requested || r->store == NULL) {
        /* Assigned while leaving (a rebalance that was under way): there is
         * no store to load from any more, and nothing will be consumed. */
        for (size_t i = 0; i < n; i++)
            start[i] = CUE_KAFKA_OFFSET_GROUP;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (r->input_parts > 0 && ids[i] >= r->input_parts) {
            /* Partitions were added while running (the group assigns them
             * after a metadata refresh): see partition_count_check. */
            char msg[CUE_ERR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "partition %d of %s assigned, but the topic had %d partitions at start: "
                     "users now map to other partitions than their state; a deployment's input "
                     "cannot change its partition count (README: \"Changing the partition "
                     "count\")",
                     (int)ids[i], r->cfg->input_topic, (int)r->input_parts);
            fatal(r, CUE_ECONFIG, msg);
            return CUE_ECONFIG;
        }
    for (size_t i = 0; i < n; i++)
        if (parts_reserve(r, ids[i]) != 0) {
            fatal(r, CUE_ENOMEM, "out of memory for partitions");
            return CUE_ENOMEM;
        }
    for (size_t i = 0; i < n; i++)
        standby_stop(r, ids[i], "assigned here");
    int rc = apply_group_resets(r, ids, n);
    if (rc != 0) return rc;
    for (size_t i = 0; i < n; i++) {
        cue_err err = {0};
        part *p = &r->parts[ids[i]];
        bool restore = false;
        if (p->task == NULL && !p->restoring &&
            (restore_plan(r, ids[i], &restore, &err) != 0 ||
             (!restore && task_open(r, ids[i], &err) != 0))) {
            fatal(r, err.code, err.msg);
            return err.code;
        }
        if (p->restoring) {
            /* Held until its state is back: readiness is false meanwhile. */
            start[i] = CUE_KAFKA_OFFSET_HOLD;
            p->high = -1;
            continue;
        }
        int64_t next = cue_task_next_offset(p->task);
        /* The store, not the group, says where this partition's state ends. */
        start[i] = next > 0 ? next : CUE_KAFKA_OFFSET_BEGINNING;
        p->position = next;
        p->high = -1;
        cue_log(CUE_LOG_INFO, "partition assigned", "s:topic", r->cfg->input_topic, "i:partition",
                (int64_t)ids[i], "i:offset", next, "t:stream_time_ms",
                cue_task_stream_time(p->task), NULL);
    }
    r->assigned_once = true;
    r->rebalancing = false;
    members_publish(r);
    return 0;
}

/* Finishes a partition: commits it (unless the run is failing or the
 * partition was `lost`) and drops it. A partition handed to another member
 * has its group offset committed before it goes (`sync`); at a stop the
 * store already holds it, and a coordinator that is down must not hold the
 * exit up. */
static void part_release(rt *r, int32_t id, bool lost, bool sync)
{
    part *p = part_get(r, id);
    if (p && p->restoring) {
        /* What was restored so far stays in the store, without meta: the
         * next restore of this partition begins again from the same place. */
        cue_kafka_unassign_one(r->restore, id);
        p->restoring = false;
        r->restoring--;
        /* Into the store now: a reset of this partition later (its log start
         * passed the copy) must not be followed by these records. The held
         * timer entries go with the restore: without meta, the next one
         * applies these records, and makes their entries, again. */
        batch_commit(r);
        cue_restore_deinit(&p->rs);
        cue_log(CUE_LOG_INFO, "restore stopped: partition revoked", "i:partition", (int64_t)id,
                NULL);
    }
    if (p == NULL || p->task == NULL) return;
    /* Exactly-once: the caller committed every task in one transaction.
     * A lost partition is closed without a commit, as Kafka Streams closes
     * it dirty: a new owner may be writing its changelog already, and a
     * commit here would add this instance's records after the new owner's
     * and move the local copy's position past records it never applied.
     * Its store stays at its last commit; what came after is redone by the
     * new owner (at least once). */
    if (r->fatal_rc == 0 && !r->cfg->exactly_once && !lost) {
        cue_err err = {0};
        if (cue_task_commit(p->task, &err) != 0)
            fatal(r, err.code, err.msg);
        else if (!p->group_unread)
            cue_kafka_group_commit(r->k, id, cue_task_next_offset(p->task), p->marker, sync, NULL);
    }
    cue_cache_stats cs;
    cue_task_cache_stats(p->task, &cs);
    r->retired_cache.hits += cs.hits;
    r->retired_cache.misses += cs.misses;
    r->retired_cache.evictions += cs.evictions;
    cue_task_stats_add(&r->retired, cue_task_stats_get(p->task));
    cue_task_free(p->task);
    p->task = NULL;
}

static void eos_cycle(rt *r);
static void eos_rollback(rt *r, const char *why);

static void on_revoked(const int32_t *ids, size_t n, bool lost, void *ctx)
{
    rt *r = ctx;
    r->res->rebalances++;
    r->rebalancing = true;
    /* Exactly-once: partitions handed over are committed with all the
     * others; lost ones may already have a new owner, so the transaction,
     * which holds their work too, is aborted, and the tasks that stay roll
     * back (Kafka Streams closes lost tasks dirty the same way). */
    bool eos = r->cfg->exactly_once && r->fatal_rc == 0 && r->store;
    if (eos && !lost) eos_cycle(r);
    for (size_t i = 0; i < n; i++) {
        part_release(r, ids[i], lost, true);
        cue_log(CUE_LOG_INFO, lost ? "partition lost" : "partition revoked", "s:topic",
                r->cfg->input_topic, "i:partition", (int64_t)ids[i], NULL);
    }
    members_publish(r);
    if (eos && lost) eos_rollback(r, "partitions lost");
}

static void on_message(const cue_kafka_msg *m, void *ctx)
{
    rt *r = ctx;
    part *p = part_get(r, m->partition);
    if (p == NULL || p->task == NULL || r->fatal_rc) return;
    r->res->consumed++;
    p->consumed++;
    r->last_record_ns = uv_hrtime();
    if (r->first_record_ns == 0) r->first_record_ns = r->last_record_ns;
    if (m->offset < cue_task_next_offset(p->task)) { /* already committed in the store */
        cue_task_skip(p->task);
        return;
    }
    cue_err err = {0};
    int rc;
    r->cur = m;
    if (m->value_len > r->cfg->event_bytes_max)
        rc = cue_task_reject(p->task, m->offset, CUE_REASON_TOO_LARGE,
                             "record larger than event.max.bytes", m->value, m->value_len, &err);
    else /* a record without a key is not keyed by user id either */
        rc =
            cue_task_process(p->task,
                             &(cue_record){.value = m->value,
                                           .value_len = m->value_len,
                                           .key = m->key ? m->key : "",
                                           .key_len = m->key ? m->key_len : 0,
                                           .offset = m->offset,
                                           .timestamp_ms = m->timestamp_ms >= 0 ? m->timestamp_ms
                                                                                : CUE_NO_TIMESTAMP},
                             &err);
    r->cur = NULL;
    p->position = m->offset + 1;
    if (rc == CUE_EABORTED) /* a task's own commit, under exactly-once */
        eos_rollback(r, err.msg);
    else if (rc != 0)
        fatal(r, rc, err.msg);
}

static void on_fatal(const char *why, void *ctx)
{
    rt *r = ctx;
    fatal(r, r->k && cue_kafka_fenced(r->k) ? CUE_EFENCED : CUE_EUNAVAILABLE, why);
}

/* ---- exactly-once ------------------------------------------------------ */

/* One transaction for every task of the instance: their changelogs, then
 * the input offsets with the group's metadata, the commit, and only then
 * the store batches. The commit blocks the loop (bounded by
 * delivery.timeout.ms per broker call): librdkafka serves this producer's
 * delivery reports on the thread that commits, and they update the tasks'
 * changelog positions, so it cannot move to a worker thread; intake is
 * stopped during a cycle anyway, and by then the cycle's triggers are
 * acknowledged (check_commit waited for them), so it waits for little more
 * than the changelog and one EndTxn round trip. */
static int eos_commit(rt *r, cue_err *err)
{
    size_t n = 0;
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        int rc = cue_task_commit_prepare(p->task, err);
        if (rc != 0) return rc;
        /* Unmoved since the last transaction, or see part.group_unread. */
        if (p->group_unread || cue_task_next_offset(p->task) == p->txn_sent) continue;
        r->txn_parts[n] = i;
        r->txn_offsets[n] = cue_task_next_offset(p->task);
        r->txn_meta[n] = p->marker;
        n++;
    }
    uint64_t committed = cue_kafka_stats_get(r->k)->txn_committed;
    int rc = cue_kafka_txn_commit(r->k, r->txn_parts, r->txn_offsets, r->txn_meta, n,
                                  r->cfg->delivery_timeout_ms, err);
    if (rc != 0) return rc;
    if (cue_kafka_stats_get(r->k)->txn_committed > committed) r->aborts_in_row = 0;
    for (size_t j = 0; j < n; j++)
        r->parts[r->txn_parts[j]].txn_sent = r->txn_offsets[j];
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
static void eos_rollback(rt *r, const char *why)
{
    cue_log(CUE_LOG_WARN, "transaction aborted; rolling back to the last commit", "s:error", why,
            NULL);
    if (++r->aborts_in_row > EOS_ABORTS_MAX) {
        char msg[CUE_ERR_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "%d transactions in a row aborted without one committing (a record the broker "
                 "refuses for good, or a topic this producer may not write?); stopping. Last: %s",
                 r->aborts_in_row, why);
        fatal(r, CUE_EUNAVAILABLE, msg);
        return;
    }
    cue_err aerr = {0};
    int rc = cue_kafka_txn_abort(r->k, r->cfg->delivery_timeout_ms, &aerr);
    if (rc != 0) {
        fatal(r, rc, aerr.msg);
        return;
    }
    for (int32_t i = 0; i < r->n_parts && r->fatal_rc == 0; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        cue_err err = {0};
        if (cue_task_rollback(p->task, &err) != 0) {
            fatal(r, err.code, err.msg);
            return;
        }
        p->position = cue_task_next_offset(p->task);
        cue_kafka_seek_resume(r->k, i, p->position);
    }
}

/* A commit at the end of a cycle, a revocation or a stop. */
static void eos_cycle(rt *r)
{
    cue_err err = {0};
    int rc = eos_commit(r, &err);
    if (rc == CUE_EABORTED)
        eos_rollback(r, err.msg);
    else if (rc != 0)
        fatal(r, rc, err.msg);
}

/* The instance's stable name: its group.instance.id when static membership
 * names it, else a random id made once and kept in <state.dir>/instance.id.
 * It names the instance among the members (standby.h) and in its
 * transactional.id. Stable across restarts: a restart replaces its own
 * member record, and under exactly-once registering the same
 * transactional.id fences the previous incarnation (a zombie still running)
 * and aborts the transaction it left open at once; a new id per start
 * (Kafka Streams' process id) would leave that transaction open until
 * transaction.timeout.ms, holding read_committed consumers back. One per
 * instance: two live holders fence each other, so a state.dir must never
 * be copied to start a second instance. */
static int instance_id(const cue_config *c, char *out, size_t cap, cue_err *err)
{
    for (size_t i = 0; i < c->kafka_len; i++)
        if ((c->kafka[i].clients & CUE_KAFKA_CONSUMER) &&
            strcmp(cue_config_kafka_key(c, i), "group.instance.id") == 0) {
            snprintf(out, cap, "%s", cue_config_kafka_value(c, i));
            return 0;
        }
    char path[CUE_PATH_MAX + 32], id[40] = "";
    snprintf(path, sizeof path, "%s/instance.id", c->state_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%32[0-9a-f]", id) != 1) id[0] = '\0';
        fclose(f);
    }
    if (strlen(id) != 32) {
        unsigned char b[16];
        int urc = uv_random(NULL, NULL, b, sizeof b, 0, NULL);
        if (urc != 0)
            return cue_err_set(err, CUE_EIO, "no random bytes for the instance id: %s",
                               uv_strerror(urc));
        for (size_t i = 0; i < sizeof b; i++)
            snprintf(id + 2 * i, 3, "%02x", b[i]);
        char tmp[sizeof path + 4];
        snprintf(tmp, sizeof tmp, "%s.new", path);
        /* Written aside, fsync'd, renamed: after a crash or a power loss the
         * id is there whole or not at all. */
        errno = 0;
        bool written = (f = fopen(tmp, "w")) != NULL && fprintf(f, "%s\n", id) > 0 &&
                       fflush(f) == 0 && fsync(fileno(f)) == 0;
        int werr = errno;
        if (f != NULL && fclose(f) != 0 && written) {
            written = false;
            werr = errno;
        }
        if (written && rename(tmp, path) != 0) {
            written = false;
            werr = errno;
        }
        if (written) { /* the rename itself, durable */
            int dfd = open(c->state_dir, O_RDONLY | O_DIRECTORY);
            if (dfd < 0 || fsync(dfd) != 0) {
                written = false;
                werr = errno;
            }
            if (dfd >= 0) close(dfd);
        }
        if (!written) {
            unlink(tmp);
            return cue_err_set(err, CUE_EIO, "%s: cannot write the instance id: %s", tmp,
                               werr ? strerror(werr) : "short write");
        }
    }
    snprintf(out, cap, "%s", id);
    return 0;
}

/* The producer's transactional.id: <application.id>-<instance id>. */
static int txn_id_derive(cue_config *c, cue_err *err)
{
    char id[CUE_MEMBER_NAME_BYTES_MAX];
    int rc = instance_id(c, id, sizeof id, err);
    if (rc == 0)
        snprintf(c->transactional_id, sizeof c->transactional_id, "%s-%s", c->application_id, id);
    return rc;
}

/* ---- the commit cycle -------------------------------------------------- */

/* The repartition stage's progress goes to its group once what it produced
 * is acknowledged (the commit cycle waited for that). */
static void stage1_commit(rt *r, bool sync)
{
    if (r->owned1 == NULL || r->emitted1 == NULL) return; /* it never started */
    for (int32_t i = 0; r->k1 && i < r->n1 && r->fatal_rc == 0; i++) {
        if (!r->owned1[i]) continue;
        if (r->emitted1[i] >= 0) cue_kafka_commit(r->k1, i, r->emitted1[i], sync);
    }
}

static void finish_commit(rt *r)
{
    if (r->cfg->exactly_once) eos_cycle(r);
    for (int32_t i = 0; i < r->n_parts && r->fatal_rc == 0 && !r->cfg->exactly_once; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        cue_err err = {0};
        if (cue_task_commit(p->task, &err) != 0) {
            fatal(r, err.code, err.msg);
            return;
        }
        if (!p->group_unread)
            cue_kafka_group_commit(r->k, i, cue_task_next_offset(p->task), p->marker, false, NULL);
    }
    stage1_commit(r, false);
    r->res->commits++;
    cue_histogram_observe(&r->commit_hist, (double)(uv_hrtime() - r->commit_started_ns) / 1e9);
    if (r->fatal_rc) return;
    r->state = RUNNING;
    if (r->stop_requested) uv_stop(&r->loop);
}

static void pump(rt *r);
static void on_more1_cb(uv_idle_t *h);
static bool stage1_at_end(rt *r, int32_t p);
static void pump1(rt *r);
static void on_more(uv_idle_t *h)
{
    pump(h->data);
}

static void resume(rt *r)
{
    uv_idle_start(&r->more, on_more);
}

static void check_commit(rt *r)
{
    if (r->state != COMMITTING || r->fatal_rc) return;
    if (cue_kafka_in_flight(r->k) > 0) return; /* the producer's fd wakes us */
    if (r->k1 && cue_kafka_in_flight(r->k1) > 0) return;
    finish_commit(r);
    if (r->state == RUNNING && !r->stop_requested) {
        resume(r);
        if (r->k1) uv_idle_start(&r->more1, on_more1_cb);
    }
}

static void begin_commit(rt *r)
{
    if (r->state != RUNNING || r->fatal_rc) return;
    r->state = COMMITTING;
    r->commit_started_ns = uv_hrtime();
    uv_idle_stop(&r->more);
    cue_kafka_serve_producer(r->k);
    check_commit(r);
}

static void on_commit_timer(uv_timer_t *h)
{
    begin_commit(h->data);
}

static void on_producer(uv_poll_t *h, int status, int events)
{
    rt *r = h->data;
    cue_kafka_drain_fd(cue_kafka_producer_fd(r->k));
    cue_kafka_serve_producer(r->k);
    check_commit(r);
}

/* ---- consuming and time ------------------------------------------------ */

/* Refreshes every owned partition's high watermark (each partition's own
 * clock depends on it, so none is skipped) and says whether all are at it. */
static bool all_caught_up(rt *r)
{
    size_t owned = 0, behind = 0;
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->restoring) {
            owned++;
            behind++;
            continue;
        }
        if (p->task == NULL) continue;
        owned++;
        p->high = cue_kafka_high_watermark(r->k, i);
        if (p->high < 0 || p->position < p->high) behind++;
    }
    for (int32_t i = 0; r->k1 && i < r->n1; i++) {
        if (!r->owned1[i]) continue;
        if (cue_kafka_peek(r->k1, i) != NULL || !stage1_at_end(r, i)) behind++;
    }
    return owned > 0 && behind == 0;
}

static void request_stop(rt *r, int sig);

static void pump(rt *r)
{
    if (r->state != RUNNING || r->fatal_rc) {
        uv_idle_stop(&r->more);
        return;
    }
    size_t n = cue_kafka_consume(r->k, CONSUME_BATCH);
    if (n < CONSUME_BATCH)
        uv_idle_stop(&r->more);
    else if (!uv_is_active((uv_handle_t *)&r->more))
        resume(r);
}

static void on_consumer(uv_poll_t *h, int status, int events)
{
    rt *r = h->data;
    cue_kafka_drain_fd(cue_kafka_consumer_fd(r->k));
    pump(r);
}

/* With the repartition stage, "at the end" also needs what it produced to
 * be read: its deliveries done, and the repartition topic's ends (asked from
 * the brokers, not from the last fetch) reached. */
static bool repartition_drained(rt *r)
{
    if (r->k1 == NULL) return true;
    if (cue_kafka_in_flight(r->k1) > 0) return false;
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        int64_t low = 0, high = 0;
        if (cue_kafka_watermarks(r->k, i, 1000, &low, &high, NULL) != 0 || p->position < high)
            return false;
    }
    return true;
}

/* Caught-up partitions follow the wall clock; lagging ones never do, so a
 * backlog of progress is applied before any "stalled" timer can fire. */
static void on_clock(uv_timer_t *h)
{
    rt *r = h->data;
    pump1(r); /* the repartition merge may be waiting for a partition */
    if (r->state != RUNNING || r->fatal_rc) return;
    bool caught_up = all_caught_up(r);
    int64_t now = wall_ms(r);
    for (int32_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].task) cue_task_set_clock(r->parts[i].task, now);
    if (r->cfg->wall_clock) {
        for (int32_t i = 0; i < r->n_parts; i++) {
            part *p = &r->parts[i];
            if (p->task == NULL || p->high < 0 || p->position < p->high) continue;
            cue_err err = {0};
            int rc = cue_task_advance(p->task, now, &err);
            if (rc == CUE_EABORTED) { /* a task's own commit, under exactly-once */
                eos_rollback(r, err.msg);
                return;
            }
            if (rc != 0) {
                fatal(r, err.code, err.msg);
                return;
            }
        }
    }
    if (r->o->stop_at_end && caught_up && cue_kafka_in_flight(r->k) == 0 && !r->stop_requested &&
        repartition_drained(r)) {
        cue_log(CUE_LOG_INFO, "every partition reached its end; stopping", NULL);
        request_stop(r, 0);
    }
}

/* ---- stopping ---------------------------------------------------------- */

static void on_stop_timeout(uv_timer_t *h)
{
    fatal(h->data, CUE_EUNAVAILABLE,
          "shutdown.timeout.ms passed before the last commit; the next run resumes from the one "
          "before");
}

static void request_stop(rt *r, int sig)
{
    if (r->stop_requested && sig != 0) {
        /* A second signal: out at once. The last commit is on disk; the
         * next run resumes there. */
        cue_log(CUE_LOG_WARN, "second signal: exiting now", "i:signal", (int64_t)sig, NULL);
        _exit(128 + sig);
    }
    if (r->stop_requested) return;
    r->stop_requested = true;
    r->res->signal = sig;
    cue_log(CUE_LOG_INFO, "stopping: finishing the commit cycle", "i:signal", (int64_t)sig, NULL);
    uv_timer_start(&r->stop_timer, on_stop_timeout, (uint64_t)r->cfg->shutdown_timeout_ms, 0);
    if (r->state == RUNNING) begin_commit(r);
}

static void on_signal(uv_signal_t *h, int sig)
{
    request_stop(h->data, sig);
}

/* The exit status the run will have, for the watchdog below. */
static volatile sig_atomic_t teardown_status;

static void on_teardown_alarm(int sig)
{
    static const char msg[] = "{\"level\":\"warn\",\"msg\":\"the Kafka clients did not close in "
                              "time; exiting anyway: state and offsets are on disk\"}\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    (void)sig;
    _exit(teardown_status);
}

/* librdkafka's teardown waits for a coordinator that may be down (offset
 * commits, the group's close) for up to a minute, and no flag of 2.0.2 cuts
 * that short. By the time it runs the store is committed and closed, so
 * leaving without it loses nothing: the process exits once `timeout_ms` more
 * have passed, with the status the run would have had. */
static void teardown_watchdog(int rc, int64_t timeout_ms)
{
    teardown_status = rc == 0                             ? 0
                      : rc == CUE_ESTORE || rc == CUE_EIO ? EX_IOERR
                      : rc == CUE_ECONFIG                 ? EX_CONFIG
                      : rc == CUE_EFENCED                 ? EX_TEMPFAIL
                                                          : EX_UNAVAILABLE;
    struct sigaction sa = {.sa_handler = on_teardown_alarm};
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)(timeout_ms / 1000) + 2);
}

/* ---- admin HTTP -------------------------------------------------------- */

static void label_part(rt *r, int32_t p)
{
    cue_buf_reset(&r->labels);
    char v[16];
    snprintf(v, sizeof v, "%d", (int)p);
    cue_prom_label(&r->labels, "topic", r->cfg->input_topic, strlen(r->cfg->input_topic));
    cue_prom_label(&r->labels, "partition", v, strlen(v));
}

static void metrics_counter(cue_buf *b, const char *name, const char *help, double v)
{
    cue_prom_family(b, name, "counter", help);
    cue_prom_sample(b, name, NULL, v);
}

static void metrics_gauge(cue_buf *b, const char *name, const char *help, double v)
{
    cue_prom_family(b, name, "gauge", help);
    cue_prom_sample(b, name, NULL, v);
}

static void render_partitions(rt *r, cue_buf *b, cue_task_stats *sum, cue_cache_stats *cache)
{
    cue_prom_family(b, "cuepoint_consumer_lag_records", "gauge",
                    "High watermark minus the next offset to process, per assigned partition.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        /* Read, not stored: a scrape must not change what the clock sees. */
        int64_t high = cue_kafka_high_watermark(r->k, i);
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_consumer_lag_records", r->labels.data,
                        high > p->position ? (double)(high - p->position) : 0.0);
        cue_task_stats_add(sum, cue_task_stats_get(p->task));
        cue_cache_stats cs;
        cue_task_cache_stats(p->task, &cs);
        cache->hits += cs.hits;
        cache->misses += cs.misses;
        cache->evictions += cs.evictions;
        cache->bytes += cs.bytes;
        cache->entries += cs.entries;
    }
    cue_prom_family(b, "cuepoint_restore_records_total", "counter",
                    "Changelog records restored, per partition being or last restored here.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (!p->restoring && p->rs.records == 0) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_restore_records_total", r->labels.data, (double)p->rs.records);
    }
    cue_prom_family(b, "cuepoint_restore_bytes_total", "counter",
                    "Bytes (keys and values) of changelog records restored, per partition.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (!p->restoring && p->rs.records == 0) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_restore_bytes_total", r->labels.data, (double)p->rs.bytes);
    }
    cue_prom_family(b, "cuepoint_restore_remaining_records", "gauge",
                    "Changelog records left to restore, per partition being restored.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (!p->restoring) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_restore_remaining_records", r->labels.data,
                        (double)(p->restore_end - p->restore_pos));
    }
    if (r->members) {
        cue_prom_family(b, "cuepoint_standby_lag_records", "gauge",
                        "Changelog records a standby replica kept here has yet to apply.");
        for (int32_t i = 0; i < r->n_parts; i++) {
            part *p = &r->parts[i];
            if (!p->standby) continue;
            int64_t high = cue_kafka_high_watermark(r->restore, i);
            label_part(r, i);
            /* Not fetched from yet: unknown, which is not caught up. */
            cue_prom_sample(b, "cuepoint_standby_lag_records", r->labels.data,
                            high < 0                ? NAN
                            : high > p->restore_pos ? (double)(high - p->restore_pos)
                                                    : 0.0);
        }
        cue_prom_family(b, "cuepoint_standby_records_total", "counter",
                        "Changelog records applied to a standby replica, per partition.");
        for (int32_t i = 0; i < r->n_parts; i++) {
            part *p = &r->parts[i];
            uint64_t n = p->sb_records_before + p->sb.records;
            if (n == 0) continue;
            label_part(r, i);
            cue_prom_sample(b, "cuepoint_standby_records_total", r->labels.data, (double)n);
        }
    }
    cue_prom_family(b, "cuepoint_stream_time_seconds", "gauge",
                    "Each assigned partition's stream time (event time), in epoch seconds.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL || cue_task_stream_time(p->task) == INT64_MIN) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_stream_time_seconds", r->labels.data,
                        (double)cue_task_stream_time(p->task) / 1000.0);
    }
}

/* The admin server's own connections: a flood shows here. */
static void render_admin(rt *r, cue_buf *b, const cue_http_stats *st)
{
    metrics_gauge(b, "cuepoint_admin_connections", "Admin HTTP connections open.",
                  (double)st->connections);
    metrics_counter(b, "cuepoint_admin_connections_accepted_total",
                    "Admin HTTP connections accepted.", (double)st->accepted);
    cue_prom_family(b, "cuepoint_admin_connections_dropped_total", "counter",
                    "Admin HTTP connections closed by cuepoint while waiting for a request: to "
                    "make room (client_limit, table_full) or past their deadline (timeout).");
    const struct {
        const char *reason;
        uint64_t n;
    } dropped[] = {{"client_limit", st->closed_client_limit},
                   {"table_full", st->closed_table_full},
                   {"timeout", st->closed_timeout}};
    for (size_t i = 0; i < sizeof dropped / sizeof *dropped; i++) {
        cue_buf_reset(&r->labels);
        cue_prom_label(&r->labels, "reason", dropped[i].reason, strlen(dropped[i].reason));
        cue_prom_sample(b, "cuepoint_admin_connections_dropped_total", r->labels.data,
                        (double)dropped[i].n);
    }
    metrics_counter(b, "cuepoint_admin_bad_paths_total",
                    "Admin HTTP requests answered 400 for a path that did not decode.",
                    (double)st->bad_paths);
}

static bool is_ready(rt *r);

static void render_metrics(rt *r, cue_buf *b)
{
    cue_task_stats sum = r->retired;
    cue_cache_stats cache = r->retired_cache;
    cache.bytes = cache.entries = 0;
    render_partitions(r, b, &sum, &cache);
    const cue_runtime_result *res = r->res;
    metrics_counter(b, "cuepoint_records_consumed_total", "Input records read.",
                    (double)res->consumed);
    metrics_counter(b, "cuepoint_records_applied_total", "Events applied to a user's state.",
                    (double)sum.applied);
    metrics_counter(b, "cuepoint_records_duplicate_total",
                    "Records skipped because the user's state had applied them already.",
                    (double)sum.duplicates);
    cue_prom_family(b, "cuepoint_dead_letters_total", "counter",
                    "Records sent to the dead-letter topic, by reason.");
    for (int k = CUE_REASON_NONE + 1; k < CUE_REASON_COUNT; k++) {
        cue_buf_reset(&r->labels);
        cue_prom_label(&r->labels, "reason", cue_reason_name(k), strlen(cue_reason_name(k)));
        cue_prom_sample(b, "cuepoint_dead_letters_total", r->labels.data,
                        (double)res->dead_by_reason[k]);
    }
    cue_prom_family(b, "cuepoint_triggers_total", "counter", "Triggers produced, by name.");
    for (size_t m = 0; m < cue_machines_count(r->o->ms); m++) {
        const cue_machine *mc = cue_machines_get(r->o->ms, m);
        for (int t = 0; t < mc->n_triggers; t++) {
            cue_buf_reset(&r->labels);
            cue_prom_label(&r->labels, "machine", mc->name, strlen(mc->name));
            cue_prom_label(&r->labels, "trigger", mc->triggers[t].name,
                           strlen(mc->triggers[t].name));
            cue_prom_sample(b, "cuepoint_triggers_total", r->labels.data,
                            (double)res->by_trigger[m][t]);
        }
    }
    metrics_counter(b, "cuepoint_timers_fired_total", "Timers that fired.",
                    (double)sum.engine.timers_fired);
    metrics_counter(b, "cuepoint_journey_instances_migrated_total",
                    "Instances stored under another journey version, migrated on load.",
                    (double)sum.codec.migrated);
    metrics_counter(b, "cuepoint_journey_instances_stranded_total",
                    "Migrated instances whose state was gone with no rule for it: finished.",
                    (double)sum.codec.stranded);
    if (r->o->policy) {
        cue_prom_family(b, "cuepoint_policy_decisions_total", "counter",
                        "Decisions of the policy stage, by outcome.");
        for (int k = 0; k < CUE_OUTCOME_COUNT; k++) {
            const char *name = cue_outcome_name((cue_outcome)k);
            cue_buf_reset(&r->labels);
            cue_prom_label(&r->labels, "outcome", name, strlen(name));
            cue_prom_sample(b, "cuepoint_policy_decisions_total", r->labels.data,
                            (double)sum.decisions[k]);
        }
        metrics_counter(b, "cuepoint_users_erased_total", "Users erased by an erasure event.",
                        (double)sum.erasures);
    }
    cue_prom_family(b, "cuepoint_commit_duration_seconds", "histogram",
                    "Commit cycle: from stopping intake to the offsets committed.");
    cue_prom_histogram(b, "cuepoint_commit_duration_seconds", NULL, &r->commit_hist);
    metrics_counter(b, "cuepoint_rebalances_total", "Partition assignments and revocations.",
                    (double)res->rebalances);
    const cue_kafka_stats *ks = cue_kafka_stats_get(r->k);
    metrics_counter(b, "cuepoint_produced_records_total", "Triggers and dead letters produced.",
                    (double)ks->produced);
    metrics_counter(b, "cuepoint_delivery_failures_total", "Deliveries that failed for good.",
                    (double)ks->delivery_failures);
    metrics_gauge(b, "cuepoint_in_flight_records", "Produced records not yet acknowledged.",
                  (double)cue_kafka_in_flight(r->k));
    if (r->cfg->exactly_once) {
        metrics_counter(b, "cuepoint_transactions_committed_total",
                        "Transactions committed (exactly-once).", (double)ks->txn_committed);
        metrics_counter(b, "cuepoint_transactions_aborted_total",
                        "Transactions aborted; the tasks rolled back to the last commit.",
                        (double)ks->txn_aborted);
        metrics_counter(b, "cuepoint_transactions_aborted_triggers_total",
                        "Trigger records produced in transactions that were then aborted.",
                        (double)ks->txn_aborted_triggers);
        metrics_counter(b, "cuepoint_producer_fenced_total",
                        "Times another producer took over this transactional.id.",
                        (double)ks->txn_fenced);
    }
    /* What /readyz answers, so an alert can say how long it has been false:
     * Prometheus cannot probe /readyz itself without a blackbox exporter. */
    metrics_gauge(b, "cuepoint_ready", "1 when /readyz answers 200, else 0.", is_ready(r) ? 1 : 0);
    metrics_gauge(b, "cuepoint_restoring_partitions",
                  "Partitions rebuilding their state from the changelog (not ready meanwhile).",
                  (double)r->restoring);
    if (r->restore)
        metrics_counter(b, "cuepoint_changelog_records_skipped_total",
                        "Changelog records a restore or standby skipped: not a user's state "
                        "or position (see the log).",
                        (double)r->changelog_skipped);
    if (r->members) {
        metrics_gauge(b, "cuepoint_standby_partitions",
                      "Partitions this instance keeps as standby replicas.", (double)r->standbys);
        metrics_gauge(b, "cuepoint_members_live",
                      "Instances with a live record on the members topic (this one included).",
                      (double)cue_members_live(r->members, real_ms()));
        metrics_counter(b, "cuepoint_members_records_skipped_total",
                        "Records of the members topic that were not member records.",
                        (double)r->members_bad);
    }
    metrics_counter(b, "cuepoint_cache_hits_total", "User states found in the cache.",
                    (double)cache.hits);
    metrics_counter(b, "cuepoint_cache_misses_total", "User states read from RocksDB.",
                    (double)cache.misses);
    metrics_counter(b, "cuepoint_cache_evictions_total", "User states evicted from the cache.",
                    (double)cache.evictions);
    metrics_gauge(b, "cuepoint_cache_bytes", "Bytes held by the user-state caches.",
                  (double)cache.bytes);
    uint64_t sst = 0, mem = 0;
    cue_store_bytes(r->store, &sst, &mem);
    metrics_gauge(b, "cuepoint_rocksdb_sst_bytes", "Bytes of RocksDB SST files.", (double)sst);
    metrics_gauge(b, "cuepoint_rocksdb_memtable_bytes", "Bytes in RocksDB memtables.", (double)mem);
    if (r->http) render_admin(r, b, cue_http_stats_get(r->http));
    cue_prom_build_info(b, cue_version, cue_commit);
    /* Without /proc (not Linux) the process families are left out rather
     * than exported as zeros that would read as real figures. */
    cue_process_stats ps;
    if (cue_process_stats_read(&ps) == 0) cue_prom_process(b, &ps);
}

static bool is_ready(rt *r)
{
    return !r->fenced && r->assigned_once && !r->rebalancing && !r->stop_requested &&
           r->fatal_rc == 0 && r->restoring == 0 && (r->k1 == NULL || r->assigned1_once);
}

static int user_json(rt *r, const char *uid, cue_buf *body)
{
    size_t n = strlen(uid);
    if (n == 0 || n > CUE_USER_ID_BYTES_MAX) return 404;
    /* The producer's partitioner is not known here, so every owned partition
     * is asked: the cache first, then RocksDB; a miss costs one lookup each. */
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        cue_buf_reset(body);
        int rc = cue_task_user_json(p->task, uid, n, body, NULL);
        if (rc == 0) return 200;
        if (rc != CUE_ENOTFOUND) return 500;
    }
    return 404;
}

/* Who may read /v1/users/{id}, which is personal data: with
 * admin.users.token, whoever sends it as a bearer token (401 for anyone
 * else); without one, whoever reaches a loopback admin address, which is
 * this host only, and no one when the address is reachable from elsewhere
 * (403: no credentials would help). Health and metrics stay open to all:
 * they are what probes and scrapers need, and they hold no user's data. */
static int users_gate(rt *r, const cue_http_request *req, cue_http_reply *reply)
{
    const char *token = r->cfg->admin_users_token;
    if (token[0] != '\0') {
        if (cue_http_bearer_is(req->authorization, token)) return 0;
        if (req->authorization) {
            reply->www_authenticate = "Bearer realm=\"cuepoint\", error=\"invalid_token\"";
            cue_buf_append_str(reply->body,
                               "{\"error\":\"the bearer token is not admin.users.token\"}\n");
        } else {
            reply->www_authenticate = "Bearer realm=\"cuepoint\"";
            cue_buf_append_str(reply->body, "{\"error\":\"this needs admin.users.token as a bearer "
                                            "token (Authorization: Bearer ...)\"}\n");
        }
        return 401;
    }
    if (r->admin_loopback) return 0;
    cue_buf_append_str(reply->body,
                       "{\"error\":\"/v1/users/{id} is off: admin.listen is reachable from other "
                       "hosts and admin.users.token is not set\"}\n");
    return 403;
}

static int on_http(const cue_http_request *req, cue_http_reply *reply, void *ctx)
{
    rt *r = ctx;
    const char *path = req->path;
    cue_buf *body = reply->body;
    reply->content_type = "application/json";
    if (strcmp(path, "/healthz") == 0) {
        /* Answered from the loop itself: an answer is the proof of progress. */
        bool ok = r->fatal_rc == 0;
        cue_buf_printf(body, "{\"status\":\"%s\"}\n", ok ? "ok" : "failing");
        return ok ? 200 : 503;
    }
    if (strcmp(path, "/readyz") == 0) {
        bool ok = is_ready(r);
        cue_buf_printf(body, "{\"ready\":%s,%s\"partitions\":[", ok ? "true" : "false",
                       r->fenced ? "\"reason\":\"fenced\"," : "");
        bool first = true;
        for (int32_t i = 0; i < r->n_parts; i++)
            if (r->parts[i].task) {
                cue_buf_printf(body, "%s%d", first ? "" : ",", (int)i);
                first = false;
            }
        cue_buf_append_str(body, "]}\n");
        return ok ? 200 : 503;
    }
    if (strcmp(path, "/metrics") == 0) {
        reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(r, body);
        return 200;
    }
    if (strncmp(path, "/v1/users/", 10) == 0) {
        int status = users_gate(r, req, reply);
        if (status == 0) status = user_json(r, path + 10, body);
        if (status == 200) {
            cue_buf_append_char(body, '\n');
            return 200;
        }
        if (status == 401 || status == 403) return status;
        cue_buf_reset(body);
        cue_buf_printf(body, "{\"error\":\"%s\"}\n",
                       status == 404 ? "no state for this user in this instance's partitions"
                                     : "state could not be read");
        return status;
    }
    cue_buf_append_str(body, "{\"error\":\"not found\",\"paths\":[\"/healthz\",\"/readyz\","
                             "\"/metrics\",\"/v1/users/{id}\"]}\n");
    return 404;
}

/* ---- set-up and tear-down ---------------------------------------------- */

static int check_answer(const cue_http_request *req, cue_http_reply *reply, void *ctx)
{
    return 404;
}

/* admin.listen as open_admin will take it: "HOST:PORT" with a port from 0
 * to 65535, and a host the http module can bind. The host is bound on a
 * free port (PORT 0) and let go at once, so a check beside a running
 * instance that holds the port still passes. */
static int check_admin(const char *listen, cue_err *err)
{
    if (listen[0] == '\0') return 0;
    const char *colon = strrchr(listen, ':');
    size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
    if (colon == NULL || colon == listen || digits == 0 || digits > 5 ||
        colon[1 + digits] != '\0' || atol(colon + 1) > 65535)
        return cue_err_set(err, CUE_ECONFIG, "admin.listen: '%s' is not HOST:PORT (port 0-65535)",
                           listen);
    char any[80];
    snprintf(any, sizeof any, "%.*s:0", (int)(colon - listen), listen);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) return cue_err_set(err, CUE_EIO, "cannot start a loop");
    cue_http *h = NULL;
    int rc = cue_http_start(&h, &loop, any, NULL, check_answer, NULL, err);
    if (rc != 0 && err) {
        /* The http module's message names the address it was given: name
         * the configured one instead, so the message reads as run's. */
        char *at = strstr(err->msg, any);
        size_t n = strlen(any), m = strlen(listen), len = strlen(err->msg);
        if (at && len - n + m < sizeof err->msg) {
            memmove(at + m, at + n, len - (size_t)(at - err->msg) - n + 1);
            memcpy(at, listen, m);
        }
        cue_err_prefix(err, "admin.listen");
        err->code = CUE_ECONFIG;
    }
    if (rc != 0) rc = CUE_ECONFIG;
    cue_http_stop(h);
    uv_run(&loop, UV_RUN_DEFAULT); /* the server's close callbacks */
    uv_loop_close(&loop);
    return rc;
}

int cue_runtime_check(const cue_runtime_opts *o, cue_err *err)
{
    int rc = cue_config_check(o->cfg, err);
    if (rc == 0) rc = cue_kafka_check(o->cfg, err);
    if (rc == 0) rc = check_admin(o->cfg->admin_listen, err);
    return rc;
}

static int open_admin(rt *r, cue_err *err)
{
    if (r->cfg->admin_listen[0] == '\0') return 0;
    int rc = cue_http_start(&r->http, &r->loop, r->cfg->admin_listen, NULL, on_http, r, err);
    if (rc != 0) {
        /* A taken port or a bad address is fixed in the config (or "" for none). */
        cue_err_prefix(err, "admin.listen");
        if (err) err->code = CUE_ECONFIG;
        return CUE_ECONFIG;
    }
    const char *addr = cue_http_address(r->http);
    r->admin_loopback = cue_http_loopback(r->http);
    cue_log(CUE_LOG_INFO, "admin listening", "s:address", addr, NULL);
    if (!r->admin_loopback && r->cfg->admin_users_token[0] == '\0')
        cue_log(CUE_LOG_WARN,
                "admin: /v1/users/{id} refused (403): the admin address is reachable from "
                "other hosts and admin.users.token is not set",
                "s:address", addr, NULL);
    if (r->o->admin_addr_file) {
        char tmp[CUE_PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", r->o->admin_addr_file);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%s\n", addr);
            fclose(f);
            rename(tmp, r->o->admin_addr_file);
        }
    }
    return 0;
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

static int changelog_open(rt *r, int32_t partitions, cue_err *err)
{
    const cue_config *cfg = r->cfg;
    const char *topic = cue_config_changelog_topic(cfg);
    int32_t n = 0;
    bool admin = true;
    int rc = cue_kafka_topic_partitions(r->k, topic, false, cfg->startup_timeout_ms, &n, err);
    if (rc == 0 && n == 0) {
        cue_err cerr = {0};
        char retention[24];
        snprintf(retention, sizeof retention, "%lld",
                 (long long)cfg->changelog_delete_retention_ms);
        const char *const configs[] = {"cleanup.policy", "compact", "delete.retention.ms",
                                       retention, NULL};
        if (cue_kafka_create_topic(r->k, topic, partitions, configs, cfg->startup_timeout_ms,
                                   &cerr) == 0) {
            cue_log(CUE_LOG_INFO, "changelog topic created", "s:topic", topic, "i:partitions",
                    (int64_t)partitions, NULL);
            n = partitions;
        } else {
            /* A broker without CreateTopics (the mock) may still create it on
             * first use, with its own default count: check what it made. */
            cue_log(CUE_LOG_WARN,
                    "cannot create the changelog topic; relying on the cluster's automatic "
                    "creation (not compacted)",
                    "s:topic", topic, "s:error", cerr.msg, NULL);
            rc = cue_kafka_topic_partitions(r->k, topic, true, cfg->startup_timeout_ms, &n, err);
            admin = false; /* nor will it describe the topic: no waiting for that */
        }
    }
    if (rc == 0 && n > 0 && n != partitions)
        return cue_err_set(err, CUE_ECONFIG,
                           "changelog topic %s has %d partitions and input topic %s has %d: they "
                           "must be equal (each partition's state goes to the partition of the "
                           "same number); create %s with %d partitions",
                           topic, (int)n, cfg->input_topic, (int)partitions, topic,
                           (int)partitions);
    if (rc == 0) changelog_retention(r, topic, admin);
    return rc == 0 ? cue_kafka_changelog_open(r->k, partitions, err) : rc;
}

/* ---- the repartition stage -------------------------------------------------- */

#define STAGE1_BATCH 4096
/* How long the merge waits for a partition whose records are still being
 * fetched before it lets the others go on. */
#define STAGE1_WAIT_NS (200 * 1000000ull)

/* The stage's per-partition arrays cover input partitions [0, id]: the
 * input may gain partitions while it runs (its users keep their place, the
 * re-keying puts them there), and the group assigns them after a metadata
 * refresh. */
static int stage1_reserve(rt *r, int32_t id)
{
    if (id < r->n1) return 0;
    size_t n = (size_t)id + 1;
    bool *owned = realloc(r->owned1, n * sizeof *owned);
    if (owned) r->owned1 = owned;
    struct head1 *h = realloc(r->h1, n * sizeof *h);
    if (h) r->h1 = h;
    int64_t *emitted = realloc(r->emitted1, n * sizeof *emitted);
    if (emitted) r->emitted1 = emitted;
    if (owned == NULL || h == NULL || emitted == NULL) return CUE_ENOMEM;
    for (int32_t i = r->n1; i <= id; i++) {
        r->owned1[i] = false;
        r->h1[i].offset = -1;
        r->emitted1[i] = -1;
    }
    r->n1 = id + 1;
    return 0;
}

static int on_assigned1(const int32_t *ids, int64_t *start, size_t n, void *ctx)
{
    rt *r = ctx;
    for (size_t i = 0; i < n; i++) {
        start[i] = CUE_KAFKA_OFFSET_GROUP; /* stateless: where its group left off */
        if (ids[i] < 0) continue;
        if (ids[i] >= CUE_KAFKA_SPLIT_MAX) {
            char msg[CUE_ERR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "repartition: partition %d of %s assigned; the stage takes "
                     "at most %d",
                     (int)ids[i], r->o->cfg->input_topic, CUE_KAFKA_SPLIT_MAX);
            fatal(r, CUE_ECONFIG, msg);
            return CUE_ECONFIG;
        }
        if (stage1_reserve(r, ids[i]) != 0) {
            fatal(r, CUE_ENOMEM, "out of memory for the repartition stage's partitions");
            return CUE_ENOMEM;
        }
        r->owned1[ids[i]] = true;
        r->h1[ids[i]].offset = -1;
        r->emitted1[ids[i]] = -1;
    }
    r->assigned1_once = true;
    return 0;
}

static void on_revoked1(const int32_t *ids, size_t n, bool lost, void *ctx)
{
    rt *r = ctx;
    if (!lost && r->fatal_rc == 0) {
        /* What was produced is acknowledged before the offsets move on. */
        cue_err err = {0};
        if (cue_kafka_flush(r->k1, r->cfg->delivery_timeout_ms, &err) != 0)
            fatal(r, err.code, err.msg);
        else
            stage1_commit(r, true);
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < r->n1) r->owned1[ids[i]] = false;
}

/* A record that cannot be re-keyed goes to the dead letters at once: it has
 * no place in the event-time order. */
static void stage1_dead(rt *r, const cue_kafka_msg *m, cue_reason why, const char *msg)
{
    cue_dead_letter dl = {.reason = why,
                          .message = msg,
                          .raw = m->value,
                          .raw_len = m->value_len,
                          .partition = (uint32_t)m->partition,
                          .offset = m->offset};
    /* Read, and never to reach a task: counted here as consumed. */
    r->res->consumed++;
    r->res->dead_letters++;
    r->res->dead_by_reason[why]++;
    cue_kafka_produce_dead_letter(r->k1, &dl, m);
}

/* The head of partition `p`, decoded: false when there is none (dead
 * letters on the way are passed on and taken). */
static bool stage1_head(rt *r, int32_t p, const cue_kafka_msg **out)
{
    for (;;) {
        const cue_kafka_msg *m = cue_kafka_peek(r->k1, p);
        if (m == NULL) return false;
        struct head1 *h = &r->h1[p];
        if (h->offset == m->offset) {
            *out = m;
            return true;
        }
        cue_event ev;
        cue_reason why = CUE_REASON_TOO_LARGE;
        cue_err derr = {0};
        if (m->value_len > r->cfg->event_bytes_max ||
            cue_event_decode(r->dec1, m->value, m->value_len, &ev, &why, &derr) != 0) {
            stage1_dead(r, m, why, derr.msg[0] ? derr.msg : "record larger than event.max.bytes");
            r->emitted1[p] = m->offset + 1;
            cue_kafka_take(r->k1, p);
            continue;
        }
        h->offset = m->offset;
        /* Ordered by a time one record cannot push far ahead: a head dated
         * 9999 would never be the earliest and would hold its partition
         * back (it is a future_time dead letter past this stage). */
        h->ts_ms = ev.ts_ms;
        if (m->timestamp_ms > 0 && ev.ts_ms - m->timestamp_ms > r->cfg->event_max_future_ms)
            h->ts_ms = m->timestamp_ms + r->cfg->event_max_future_ms;
        h->uid_len = ev.user_id_len;
        memcpy(h->uid, ev.user_id, ev.user_id_len);
        *out = m;
        return true;
    }
}

/* Nothing more to fetch in partition `p` for now: the consumer is at its end. */
static bool stage1_at_end(rt *r, int32_t p)
{
    int64_t high = cue_kafka_high_watermark(r->k1, p), pos = cue_kafka_position(r->k1, p);
    return high >= 0 && pos >= high;
}

static void on_more1_cb(uv_idle_t *h);

/* Passes the input on in event-time order across its partitions: always the
 * earliest head, waiting (briefly) for a partition with records still to
 * come. Read partition by partition instead, a backlog would reach the
 * repartition topic in fetch-sized runs, days apart in event time, and the
 * journeys would see most events as late. */
static void pump1(rt *r)
{
    if (r->k1 == NULL || r->state != RUNNING || r->fatal_rc) {
        uv_idle_stop(&r->more1);
        return;
    }
    cue_kafka_consume(r->k1, 64); /* rebalances and errors; records wait per partition */
    int budget = STAGE1_BATCH;
    for (; budget > 0 && r->fatal_rc == 0; budget--) {
        int32_t best = -1;
        bool lagging = false;
        const cue_kafka_msg *bm = NULL;
        for (int32_t i = 0; i < r->n1; i++) {
            const cue_kafka_msg *m;
            if (!r->owned1[i]) continue;
            if (!stage1_head(r, i, &m)) {
                if (!stage1_at_end(r, i)) lagging = true;
                continue;
            }
            if (best < 0 || r->h1[i].ts_ms < r->h1[best].ts_ms) {
                best = i;
                bm = m;
            }
        }
        if (best < 0) break;
        if (!lagging) {
            r->wait1_ns = 0;
        } else {
            uint64_t now = uv_hrtime();
            if (r->wait1_ns == 0) r->wait1_ns = now;
            if (now - r->wait1_ns < STAGE1_WAIT_NS) break; /* the clock tick looks again */
        }
        const struct head1 *h = &r->h1[best];
        cue_kafka_produce_keyed(r->k1, h->uid, h->uid_len, bm->value, bm->value_len,
                                bm->timestamp_ms);
        r->emitted1[best] = bm->offset + 1;
        r->repartitioned++;
        cue_kafka_take(r->k1, best);
    }
    if (budget > 0)
        uv_idle_stop(&r->more1);
    else if (!uv_is_active((uv_handle_t *)&r->more1))
        uv_idle_start(&r->more1, on_more1_cb);
}

static void on_more1_cb(uv_idle_t *h)
{
    pump1(h->data);
}

static void on_consumer1(uv_poll_t *h, int status, int events)
{
    rt *r = h->data;
    (void)status;
    (void)events;
    cue_kafka_drain_fd(cue_kafka_consumer_fd(r->k1));
    pump1(r);
}

static void on_producer1(uv_poll_t *h, int status, int events)
{
    rt *r = h->data;
    (void)status;
    (void)events;
    cue_kafka_drain_fd(cue_kafka_producer_fd(r->k1));
    cue_kafka_serve_producer(r->k1);
    check_commit(r);
}

/* The repartition topic: the input's partition count, like the changelog. */
static int stage1_open(rt *r, cue_err *err)
{
    const cue_config *cfg = r->o->cfg;
    r->cfg_stage1 = *cfg;
    snprintf(r->cfg_stage1.application_id, sizeof r->cfg_stage1.application_id, "%s",
             cue_config_repartition_topic(cfg));
    snprintf(r->cfg_stage1.trigger_topic, sizeof r->cfg_stage1.trigger_topic, "%s",
             cue_config_repartition_topic(cfg));
    snprintf(r->cfg_stage1.dead_letter_topic, sizeof r->cfg_stage1.dead_letter_topic, "%s",
             cue_config_dead_letter_topic(cfg));
    cue_kafka_handler h = {.assigned = on_assigned1,
                           .revoked = on_revoked1,
                           .message = NULL,
                           .fatal = on_fatal,
                           .ctx = r};
    int32_t n = 0, have = 0;
    const char *topic = cue_config_repartition_topic(cfg);
    int rc = cue_event_decoder_new(&r->dec1, cfg, err);
    if (rc == 0) rc = cue_kafka_open(&r->k1, &r->cfg_stage1, &h, err);
    if (rc == 0) rc = cue_kafka_wait_ready(r->k1, cfg->startup_timeout_ms, &n, err);
    if (rc == 0)
        rc = cue_kafka_topic_partitions(r->k1, topic, false, cfg->startup_timeout_ms, &have, err);
    if (rc == 0 && have == 0) {
        cue_err cerr = {0};
        if (cue_kafka_create_topic(r->k1, topic, n, NULL, cfg->startup_timeout_ms, &cerr) == 0)
            have = n;
        else
            rc =
                cue_kafka_topic_partitions(r->k1, topic, true, cfg->startup_timeout_ms, &have, err);
    }
    /* The repartition topic's count is the journeys' parallelism and is
     * bound to their state (partition_count_check); the input's may differ
     * and grow: re-keying puts each user where the state is. */
    if (rc == 0 && n > CUE_KAFKA_SPLIT_MAX)
        rc = cue_err_set(err, CUE_ECONFIG, "repartition: at most %d input partitions",
                         CUE_KAFKA_SPLIT_MAX);
    if (rc == 0 && stage1_reserve(r, n - 1) != 0)
        rc = cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (rc == 0) cue_kafka_split_partitions(r->k1);
    if (rc == 0) {
        /* The pipeline reads the repartition topic. */
        r->cfg_main = *cfg;
        snprintf(r->cfg_main.input_topic, sizeof r->cfg_main.input_topic, "%s", topic);
        r->cfg = &r->cfg_main;
        cue_log(CUE_LOG_INFO, "repartitioning", "s:from", cfg->input_topic, "i:partitions",
                (int64_t)n, "s:to", topic, "i:to_partitions", (int64_t)have, NULL);
    }
    return rc;
}

/* The decision trail's topic, created when missing where the cluster lets
 * us (else its automatic creation applies, or deliveries fail and say so). */
static void decisions_open(rt *r, int32_t partitions)
{
    const cue_config *cfg = r->cfg;
    const char *topic = cue_config_decisions_topic(cfg);
    int32_t n = 0;
    cue_err err = {0};
    if (cue_kafka_topic_partitions(r->k, topic, false, cfg->startup_timeout_ms, &n, &err) != 0 ||
        n > 0)
        return;
    if (cue_kafka_create_topic(r->k, topic, partitions, NULL, cfg->startup_timeout_ms, &err) == 0)
        cue_log(CUE_LOG_INFO, "decisions topic created", "s:topic", topic, "i:partitions",
                (int64_t)partitions, NULL);
    else
        cue_log(CUE_LOG_WARN, "cannot create the decisions topic; relying on automatic creation",
                "s:topic", topic, "s:error", err.msg, NULL);
}

/* A user's partition is a hash of the user id modulo the input's partition
 * count: state built under one count is split under another (earlier
 * events in one partition, later ones in another, each with half a
 * journey). Kafka Streams refuses the same change. The store keeps the
 * count it was built for; a store without one takes the current count. */
static int partition_count_check(rt *r, int32_t partitions, cue_err *err)
{
    int32_t kept = 0;
    int rc = cue_store_partition_count_get(r->store, &kept, err);
    if (rc == CUE_ENOTFOUND) return cue_store_partition_count_put(r->store, partitions, err);
    if (rc != 0 || kept == partitions) return rc;
    if (r->o->cfg->repartition) /* the stage made its topic with the input's count */
        return cue_err_set(err, CUE_ECONFIG,
                           "repartition topic %s has %d partitions and state.dir %s was built for "
                           "%d: the state belongs to a repartition topic of %d partitions (the "
                           "input may have any count); use a fresh state.dir, or drain %s and "
                           "recreate it with %d",
                           r->cfg->input_topic, (int)partitions, r->cfg->state_dir, (int)kept,
                           (int)kept, r->cfg->input_topic, (int)kept);
    return cue_err_set(err, CUE_ECONFIG,
                       "input topic %s has %d partitions and state.dir %s was built for %d: users "
                       "would map to other partitions than their state; a deployment's input "
                       "cannot change its partition count (README: \"Changing the partition "
                       "count\")",
                       r->cfg->input_topic, (int)partitions, r->cfg->state_dir, (int)kept);
}

static int open_all(rt *r, cue_err *err)
{
    int crc = cue_config_check(r->o->cfg, err);
    if (crc != 0) return crc;
    if (r->o->cfg->exactly_once) {
        /* The pipeline's copy of the config carries the derived id. */
        r->cfg_main = *r->o->cfg;
        r->cfg = &r->cfg_main;
        int rc = cue_store_dir_create(r->cfg_main.state_dir, err);
        if (rc == 0) rc = txn_id_derive(&r->cfg_main, err);
        if (rc != 0) return rc;
    }
    if (r->o->cfg->repartition) {
        int src = stage1_open(r, err);
        if (src != 0) return src;
    }
    const cue_config *cfg = r->cfg;
    int rc = cue_store_dir_create(cfg->state_dir, err);
    cue_store_opts so = {.block_cache_bytes = 0};
    if (rc == 0) rc = cue_store_open(&r->store, cfg->state_dir, &so, err);
    if (rc == 0 &&
        (rc = cue_store_owner_check(r->store, cfg->application_id, cfg->input_topic, err)) != 0)
        cue_err_prefix(err, "%s", cfg->state_dir);
    if (rc != 0) return rc;
    cue_kafka_handler h = {.assigned = on_assigned,
                           .revoked = on_revoked,
                           .message = on_message,
                           .fatal = on_fatal,
                           .ctx = r};
    rc = cue_kafka_open(&r->k, cfg, &h, err);
    if (rc != 0) return rc;
    int32_t partitions = 0;
    rc = cue_kafka_wait_ready(r->k, cfg->startup_timeout_ms, &partitions, err);
    if (rc == 0) rc = partition_count_check(r, partitions, err);
    if (rc != 0) return rc;
    r->input_parts = partitions;
    /* statestore.cache.max.bytes is for the whole instance: each partition's
     * task gets its share, as if this instance owned them all. */
    r->task_cfg = *cfg;
    size_t share = cfg->cache_max_bytes / (size_t)partitions;
    r->task_cfg.cache_max_bytes = share < CUE_CACHE_BYTES_MIN ? CUE_CACHE_BYTES_MIN : share;
    if (parts_reserve(r, partitions - 1) != 0) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (cfg->changelog && (rc = changelog_open(r, partitions, err)) != 0) return rc;
    if (r->o->policy) decisions_open(r, partitions);
    if (cfg->changelog) {
        /* The changelog's reader: the live config with the changelog as its
         * input, outside the group. */
        r->restore_cfg = *cfg;
        snprintf(r->restore_cfg.input_topic, sizeof r->restore_cfg.input_topic, "%s",
                 cue_config_changelog_topic(cfg));
        cue_kafka_handler rh = {.message = on_restore_message,
                                .fatal = on_fatal,
                                .end = on_restore_end,
                                .out_of_range = on_restore_out_of_range,
                                .ctx = r};
        rc = cue_kafka_open_replay(&r->restore, &r->restore_cfg, &rh, "restore", NULL, err);
        if (rc != 0) return rc;
    }
    if (cfg->standby_replicas > 0) {
        /* Standbys speed fail-overs up; without them the pipeline still runs. */
        cue_err merr = {0};
        if (members_open(r, partitions, &merr) != 0) {
            cue_log(CUE_LOG_WARN, "standby replicas off: the members topic cannot be used",
                    "s:topic", cue_config_members_topic(cfg), "s:error", merr.msg, NULL);
            members_close(r);
            cue_members_free(r->members);
            r->members = NULL;
        }
    }
    cue_log(CUE_LOG_INFO, "connected", "s:bootstrap_servers", cfg->bootstrap_servers, "s:topic",
            cfg->input_topic, "i:partitions", (int64_t)partitions, "s:group", cfg->application_id,
            NULL);
    return open_admin(r, err);
}

static void start_handles(rt *r)
{
    uv_poll_init(&r->loop, &r->cpoll, cue_kafka_consumer_fd(r->k));
    uv_poll_init(&r->loop, &r->ppoll, cue_kafka_producer_fd(r->k));
    uv_timer_init(&r->loop, &r->commit_timer);
    uv_timer_init(&r->loop, &r->clock_timer);
    uv_timer_init(&r->loop, &r->stop_timer);
    uv_idle_init(&r->loop, &r->more);
    uv_signal_init(&r->loop, &r->sigterm);
    uv_signal_init(&r->loop, &r->sigint);
    uv_handle_t *hs[] = {(uv_handle_t *)&r->cpoll,        (uv_handle_t *)&r->ppoll,
                         (uv_handle_t *)&r->commit_timer, (uv_handle_t *)&r->clock_timer,
                         (uv_handle_t *)&r->stop_timer,   (uv_handle_t *)&r->more,
                         (uv_handle_t *)&r->sigterm,      (uv_handle_t *)&r->sigint};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        hs[i]->data = r;
    uv_poll_start(&r->cpoll, UV_READABLE, on_consumer);
    uv_idle_init(&r->loop, &r->rmore);
    r->rmore.data = r;
    uv_idle_init(&r->loop, &r->more1);
    r->more1.data = r;
    if (r->k1) {
        uv_poll_init(&r->loop, &r->c1poll, cue_kafka_consumer_fd(r->k1));
        uv_poll_init(&r->loop, &r->p1poll, cue_kafka_producer_fd(r->k1));
        r->c1poll.data = r->p1poll.data = r;
        uv_poll_start(&r->c1poll, UV_READABLE, on_consumer1);
        uv_poll_start(&r->p1poll, UV_READABLE, on_producer1);
        uv_idle_start(&r->more1, on_more1_cb);
    }
    if (r->restore) {
        uv_poll_init(&r->loop, &r->rpoll, cue_kafka_consumer_fd(r->restore));
        r->rpoll.data = r;
        uv_poll_start(&r->rpoll, UV_READABLE, on_restore_ready);
    }
    if (r->mk) {
        uv_poll_init(&r->loop, &r->mpoll, cue_kafka_consumer_fd(r->mk));
        uv_poll_init(&r->loop, &r->mppoll, cue_kafka_producer_fd(r->mk));
        uv_timer_init(&r->loop, &r->heartbeat);
        uv_idle_init(&r->loop, &r->mmore);
        r->mpoll.data = r->mppoll.data = r->heartbeat.data = r->mmore.data = r;
        uv_poll_start(&r->mpoll, UV_READABLE, on_members_ready);
        uv_poll_start(&r->mppoll, UV_READABLE, on_members_producer);
        uv_timer_start(&r->heartbeat, on_heartbeat, 0, MEMBER_HEARTBEAT_MS);
    }
    uv_poll_start(&r->ppoll, UV_READABLE, on_producer);
    uint64_t every = (uint64_t)r->cfg->commit_interval_ms;
    uv_timer_start(&r->commit_timer, on_commit_timer, every, every);
    uv_timer_start(&r->clock_timer, on_clock, CLOCK_TICK_MS, CLOCK_TICK_MS);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    resume(r); /* records may already be queued */
}

static void close_handles(rt *r)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&r->cpoll,        (uv_handle_t *)&r->ppoll,
                         (uv_handle_t *)&r->commit_timer, (uv_handle_t *)&r->clock_timer,
                         (uv_handle_t *)&r->stop_timer,   (uv_handle_t *)&r->more,
                         (uv_handle_t *)&r->sigterm,      (uv_handle_t *)&r->sigint};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        if (!uv_is_closing(hs[i])) uv_close(hs[i], NULL);
    if (!uv_is_closing((uv_handle_t *)&r->rmore)) uv_close((uv_handle_t *)&r->rmore, NULL);
    if (!uv_is_closing((uv_handle_t *)&r->more1)) uv_close((uv_handle_t *)&r->more1, NULL);
    if (r->k1) {
        if (!uv_is_closing((uv_handle_t *)&r->c1poll)) uv_close((uv_handle_t *)&r->c1poll, NULL);
        if (!uv_is_closing((uv_handle_t *)&r->p1poll)) uv_close((uv_handle_t *)&r->p1poll, NULL);
    }
    if (r->restore && !uv_is_closing((uv_handle_t *)&r->rpoll))
        uv_close((uv_handle_t *)&r->rpoll, NULL);
    if (r->mk) {
        uv_handle_t *ms[] = {(uv_handle_t *)&r->mpoll, (uv_handle_t *)&r->mppoll,
                             (uv_handle_t *)&r->heartbeat, (uv_handle_t *)&r->mmore};
        for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
            if (!uv_is_closing(ms[i])) uv_close(ms[i], NULL);
    }
}

int cue_runtime_run(const cue_runtime_opts *o, cue_runtime_result *res, cue_err *err)
{
    rt *r = calloc(1, sizeof *r);
    if (r == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    r->cfg = o->cfg;
    memset(res, 0, sizeof *res);
    r->o = o;
    r->res = res;
    r->started_ns = uv_hrtime();
    r->sink = (cue_task_sink){.trigger = sink_trigger,
                              .dead_letter = sink_dead,
                              .decision = sink_decision,
                              .changelog = o->cfg->changelog ? sink_changelog : NULL,
                              .changelog_next = o->cfg->changelog ? sink_changelog_next : NULL,
                              .flush = sink_flush,
                              .commit = o->cfg->exactly_once ? sink_commit : NULL,
                              .ctx = r};
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,  0.5,    1,     2.5,  5,     10};
    cue_histogram_init(&r->commit_hist, bounds, sizeof bounds / sizeof *bounds);
    cue_buf_init(&r->labels, 256);
    uv_loop_init(&r->loop);
    int rc = open_all(r, err);
    if (rc == 0) rc = cue_kafka_subscribe(r->k, err);
    if (rc == 0 && r->k1) rc = cue_kafka_subscribe(r->k1, err);
    if (rc == 0) {
        start_handles(r);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        rc = r->fatal_rc;
        if (rc != 0) *err = r->fatal_err;
        close_handles(r);
    }
    /* Commit what is left (unless the run failed) and close the store: from
     * here on everything the next run needs is on disk. Then leave the
     * group (its revocation finds no tasks left). */
    if (r->k && r->cfg->exactly_once && r->fatal_rc == 0) eos_cycle(r);
    for (int32_t i = 0; i < r->n_parts && r->k; i++)
        part_release(r, i, false, false);
    if (rc == 0 && r->fatal_rc) {
        rc = r->fatal_rc;
        *err = r->fatal_err;
    }
    if (r->store && r->standbys && r->fatal_rc == 0) {
        cue_err serr = {0}; /* what the standbys applied last; losing it costs a re-read */
        if (cue_store_batch_commit(r->store, false, &serr) != 0)
            cue_log(CUE_LOG_WARN, "standby progress not saved", "s:error", serr.msg, NULL);
    }
    if (r->store) cue_store_close(r->store);
    r->store = NULL;
    if (r->http) cue_http_stop(r->http);
    uv_run(&r->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    uv_loop_close(&r->loop);
    if (r->restore) cue_kafka_close(r->restore, 0);
    members_close(r);
    if (r->k1) {
        cue_err ferr = {0};
        if (r->fatal_rc == 0 && cue_kafka_flush(r->k1, o->cfg->delivery_timeout_ms, &ferr) == 0)
            stage1_commit(r, true);
        cue_kafka_close(r->k1, r->fatal_rc ? 0 : o->cfg->shutdown_timeout_ms);
    }
    cue_event_decoder_free(r->dec1);
    free(r->owned1);
    free(r->h1);
    free(r->emitted1);
    if (r->k) {
        teardown_watchdog(rc, o->cfg->shutdown_timeout_ms);
        cue_kafka_close(r->k, r->fatal_rc ? 0 : o->cfg->shutdown_timeout_ms);
        alarm(0);
    }
    res->seconds = (double)(uv_hrtime() - r->started_ns) / 1e9;
    res->active_seconds = (double)(r->last_record_ns - r->first_record_ns) / 1e9;
    res->applied = r->retired.applied;
    res->duplicates = r->retired.duplicates;
    cue_buf_deinit(&r->labels);
    cue_buf_deinit(&r->member_rec);
    cue_members_free(r->members);
    free(r->want);
    free(r->owned_ids);
    free(r->txn_parts);
    free(r->txn_offsets);
    free(r->txn_meta);
    for (int32_t i = 0; i < r->n_parts; i++) {
        cue_restore_deinit(&r->parts[i].rs);
        cue_restore_deinit(&r->parts[i].sb);
    }
    free(r->parts);
    free(r);
    return rc;
}
