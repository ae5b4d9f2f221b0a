/* The repartition stage (config "repartition"): a member of its own group
 * on the input topic that re-keys each record by its user id into
 * <application.id>-repartition, merging the input's partitions in event-time
 * order, for input that is not keyed by user id. Records that cannot be
 * re-keyed are dead letters at once. */
#include "runtime_int.h"

/* The repartition stage's progress goes to its group once what it produced
 * is acknowledged (the commit cycle waited for that). */
void rt_stage1_commit(rt *r, bool sync)
{
    if (r->s1.owned == NULL || r->s1.emitted == NULL) return; /* it never started */
    for (int32_t i = 0; r->s1.k && i < r->s1.n && r->fatal_rc == 0; i++) {
        if (!r->s1.owned[i]) continue;
        if (r->s1.emitted[i] >= 0) cue_kafka_commit(r->s1.k, i, r->s1.emitted[i], sync);
    }
}

/* With the repartition stage, "at the end" also needs what it produced to
 * be read: its deliveries done, and the repartition topic's ends (asked from
 * the brokers, not from the last fetch) reached. */
bool rt_repartition_drained(rt *r)
{
    if (r->s1.k == NULL) return true;
    if (cue_kafka_in_flight(r->s1.k) > 0) return false;
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        int64_t low = 0, high = 0;
        if (cue_kafka_watermarks(r->k, i, 1000, &low, &high, NULL) != 0 || p->position < high)
            return false;
    }
    return true;
}

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
    if (id < r->s1.n) return 0;
    size_t n = (size_t)id + 1;
    bool *owned = realloc(r->s1.owned, n * sizeof *owned);
    if (owned) r->s1.owned = owned;
    struct head1 *h = realloc(r->s1.h, n * sizeof *h);
    if (h) r->s1.h = h;
    int64_t *emitted = realloc(r->s1.emitted, n * sizeof *emitted);
    if (emitted) r->s1.emitted = emitted;
    if (owned == NULL || h == NULL || emitted == NULL) return CUE_ENOMEM;
    for (int32_t i = r->s1.n; i <= id; i++) {
        r->s1.owned[i] = false;
        r->s1.h[i].offset = -1;
        r->s1.emitted[i] = -1;
    }
    r->s1.n = id + 1;
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
            rt_fatal(r, CUE_ECONFIG, msg);
            return CUE_ECONFIG;
        }
        if (stage1_reserve(r, ids[i]) != 0) {
            rt_fatal(r, CUE_ENOMEM, "out of memory for the repartition stage's partitions");
            return CUE_ENOMEM;
        }
        r->s1.owned[ids[i]] = true;
        r->s1.h[ids[i]].offset = -1;
        r->s1.emitted[ids[i]] = -1;
    }
    r->s1.assigned_once = true;
    return 0;
}

static void on_revoked1(const int32_t *ids, size_t n, bool lost, void *ctx)
{
    rt *r = ctx;
    if (!lost && r->fatal_rc == 0) {
        /* What was produced is acknowledged before the offsets move on. */
        cue_err err = {0};
        if (cue_kafka_flush(r->s1.k, r->cfg->delivery_timeout_ms, &err) != 0)
            rt_fatal(r, err.code, err.msg);
        else
            rt_stage1_commit(r, true);
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < r->s1.n) r->s1.owned[ids[i]] = false;
}

/* A record that cannot be re-keyed goes to the dead letters at once: it has
 * no place in the event-time order. */
static void stage1_dead(rt *r, const cue_kafka_msg *m, cue_reason why, const char *msg)
{
    cue_kafka_dead d = {.reason = cue_reason_name(why),
                        .message = msg,
                        .topic = m->topic,
                        .partition = m->partition,
                        .offset = m->offset,
                        .key = m->key,
                        .key_len = m->key_len,
                        .value = m->value,
                        .value_len = m->value_len,
                        .timestamp_ms = m->timestamp_ms};
    /* Read, and never to reach a task: counted here as consumed. */
    r->res->consumed++;
    r->res->dead_letters++;
    r->res->dead_by_reason[why]++;
    cue_kafka_produce_dead_letter(r->s1.k, &d);
}

/* The head of partition `p`, decoded: false when there is none (dead
 * letters on the way are passed on and taken). */
static bool stage1_head(rt *r, int32_t p, const cue_kafka_msg **out)
{
    for (;;) {
        const cue_kafka_msg *m = cue_kafka_peek(r->s1.k, p);
        if (m == NULL) return false;
        struct head1 *h = &r->s1.h[p];
        if (h->offset == m->offset) {
            *out = m;
            return true;
        }
        cue_event ev;
        cue_reason why = CUE_REASON_TOO_LARGE;
        cue_err derr = {0};
        if (m->value_len > r->cfg->event_bytes_max ||
            cue_event_decode(r->s1.dec, m->value, m->value_len, &ev, &why, &derr) != 0) {
            stage1_dead(r, m, why, derr.msg[0] ? derr.msg : "record larger than event.max.bytes");
            r->s1.emitted[p] = m->offset + 1;
            cue_kafka_take(r->s1.k, p);
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
bool rt_stage1_at_end(rt *r, int32_t p)
{
    int64_t high = cue_kafka_high_watermark(r->s1.k, p), pos = cue_kafka_position(r->s1.k, p);
    return high >= 0 && pos >= high;
}

/* One turn of the stage: passes the input on in event-time order across its
 * partitions, always the earliest head, waiting (briefly) for a partition
 * with records still to come. Read partition by partition instead, a
 * backlog would reach the repartition topic in fetch-sized runs, days apart
 * in event time, and the journeys would see most events as late. Returns
 * how many records went on. */
static size_t stage1_serve(void *ctx)
{
    rt *r = ctx;
    cue_kafka_consume(r->s1.k, 64); /* rebalances and errors; records wait per partition */
    size_t passed = 0;
    for (; passed < STAGE1_BATCH && r->fatal_rc == 0; passed++) {
        int32_t best = -1;
        bool lagging = false;
        const cue_kafka_msg *bm = NULL;
        for (int32_t i = 0; i < r->s1.n; i++) {
            const cue_kafka_msg *m;
            if (!r->s1.owned[i]) continue;
            if (!stage1_head(r, i, &m)) {
                if (!rt_stage1_at_end(r, i)) lagging = true;
                continue;
            }
            if (best < 0 || r->s1.h[i].ts_ms < r->s1.h[best].ts_ms) {
                best = i;
                bm = m;
            }
        }
        if (best < 0) break;
        if (!lagging) {
            r->s1.wait_ns = 0;
        } else {
            uint64_t now = uv_hrtime();
            if (r->s1.wait_ns == 0) r->s1.wait_ns = now;
            if (now - r->s1.wait_ns < STAGE1_WAIT_NS) break; /* the clock tick looks again */
        }
        const struct head1 *h = &r->s1.h[best];
        cue_kafka_produce_keyed(r->s1.k, h->uid, h->uid_len, bm->value, bm->value_len,
                                bm->timestamp_ms);
        r->s1.emitted[best] = bm->offset + 1;
        r->s1.repartitioned++;
        cue_kafka_take(r->s1.k, best);
    }
    return passed;
}

void rt_stage1_start(rt *r)
{
    if (r->s1.k == NULL) return;
    CUE_ASSERT(r->main.may_serve != NULL); /* rt_start set the main client up first */
    r->s1.client = (rt_client){.batch = STAGE1_BATCH,
                               .serve = stage1_serve,
                               /* intake and acknowledgements as the loop's */
                               .may_serve = r->main.may_serve,
                               .produced = r->main.produced,
                               .ctx = r};
    rt_client_start(&r->s1.client, &r->loop, r->s1.k, true);
    rt_client_resume(&r->s1.client);
}

/* The repartition topic: the input's partition count, like the changelog. */
int rt_stage1_open(rt *r, cue_err *err)
{
    const cue_config *cfg = r->o->cfg;
    r->s1.cfg = *cfg;
    snprintf(r->s1.cfg.application_id, sizeof r->s1.cfg.application_id, "%s",
             cue_config_repartition_topic(cfg));
    snprintf(r->s1.cfg.trigger_topic, sizeof r->s1.cfg.trigger_topic, "%s",
             cue_config_repartition_topic(cfg));
    snprintf(r->s1.cfg.dead_letter_topic, sizeof r->s1.cfg.dead_letter_topic, "%s",
             cue_config_dead_letter_topic(cfg));
    cue_kafka_handler h = {.assigned = on_assigned1,
                           .revoked = on_revoked1,
                           .message = NULL,
                           .fatal = rt_on_fatal,
                           .ctx = r};
    int32_t n = 0, have = 0;
    const char *topic = cue_config_repartition_topic(cfg);
    int rc = cue_event_decoder_new(&r->s1.dec, cfg, err);
    if (rc == 0) rc = cue_kafka_open(&r->s1.k, &r->s1.cfg, &h, err);
    if (rc == 0) rc = cue_kafka_wait_ready(r->s1.k, cfg->startup_timeout_ms, &n, err);
    if (rc == 0)
        rc = cue_kafka_topic_partitions(r->s1.k, topic, false, cfg->startup_timeout_ms, &have, err);
    if (rc == 0 && have == 0) {
        cue_err cerr = {0};
        if (cue_kafka_create_topic(r->s1.k, topic, n, NULL, cfg->startup_timeout_ms, &cerr) == 0)
            have = n;
        else
            rc = cue_kafka_topic_partitions(r->s1.k, topic, true, cfg->startup_timeout_ms, &have,
                                            err);
    }
    /* The repartition topic's count is the journeys' parallelism and is
     * bound to their state (rt_partition_count_check); the input's may differ
     * and grow: re-keying puts each user where the state is. */
    if (rc == 0 && n > CUE_KAFKA_SPLIT_MAX)
        rc = cue_err_set(err, CUE_ECONFIG, "repartition: at most %d input partitions",
                         CUE_KAFKA_SPLIT_MAX);
    if (rc == 0 && stage1_reserve(r, n - 1) != 0)
        rc = cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (rc == 0) cue_kafka_split_partitions(r->s1.k);
    if (rc == 0) {
        /* The pipeline reads the repartition topic. */
        r->cfg_main = *cfg;
        cue_config_set_input_topic(&r->cfg_main, topic);
        r->cfg = &r->cfg_main;
        cue_log(CUE_LOG_INFO, "repartitioning", "s:from", cfg->input_topic, "i:partitions",
                (int64_t)n, "s:to", topic, "i:to_partitions", (int64_t)have, NULL);
    }
    return rc;
}

/* What the stage produced is acknowledged before its offsets go to its
 * group; then it leaves the group. */
void rt_stage1_close(rt *r)
{
    if (r->s1.k) {
        cue_err ferr = {0};
        if (r->fatal_rc == 0 && cue_kafka_flush(r->s1.k, r->cfg->delivery_timeout_ms, &ferr) == 0)
            rt_stage1_commit(r, true);
        cue_kafka_close(r->s1.k, r->fatal_rc ? 0 : r->cfg->shutdown_timeout_ms);
        r->s1.k = NULL;
    }
    cue_event_decoder_free(r->s1.dec);
    r->s1.dec = NULL;
    free(r->s1.owned);
    free(r->s1.h);
    free(r->s1.emitted);
    r->s1.owned = NULL;
    r->s1.h = NULL;
    r->s1.emitted = NULL;
}
