/* The consumer group: subscribing, rebalances handed to the caller,
 * leaving within a bound, offset commits, and a consumer alone
 * (cue_kafka_open_consumer) that joins only when subscribed. */
#include "kafka_int.h"

/* The partition numbers in `l`, each once: partition N of several input
 * topics is one partition to the handler. */
static void parts_of(const rd_kafka_topic_partition_list_t *l, int32_t *out, size_t *n)
{
    *n = 0;
    for (int i = 0; i < l->cnt; i++) {
        size_t j = 0;
        while (j < *n && out[j] != l->elems[i].partition)
            j++;
        if (j == *n) out[(*n)++] = l->elems[i].partition;
    }
}

/* Where the handler put the start of `t` (an element of the assignment):
 * start[i * T + topic]. */
static int64_t start_of(const cue_kafka *k, const rd_kafka_topic_partition_t *t, const int32_t *ids,
                        const int64_t *start, size_t n)
{
    int topic = cue_kafka_topic_index(k, t->topic);
    uint32_t topics = k->cfg->input_topic_count ? k->cfg->input_topic_count : 1;
    for (size_t i = 0; i < n && topic >= 0; i++)
        if (ids[i] == t->partition) return start[i * topics + (uint32_t)topic];
    return CUE_KAFKA_OFFSET_GROUP;
}

int cue_kafka_topic_index(const cue_kafka *k, const char *topic)
{
    if (k->cfg->input_topic_count == 0) return strcmp(topic, k->cfg->input_topic) == 0 ? 0 : -1;
    return cue_config_input_topic_index(k->cfg, topic);
}

/* librdkafka answers NULL when the member has no protocol (seen while
 * closing mid-rebalance): acknowledged then as an eager rebalance. */
static bool cooperative(rd_kafka_t *rk)
{
    const char *p = rd_kafka_rebalance_protocol(rk);
    return p != NULL && strcmp(p, "COOPERATIVE") == 0;
}

/* A rebalance met while leaving: the handler hears of a revocation as usual
 * (the runtime has nothing left to commit by then), and either kind is
 * acknowledged so the close can finish. */
static void acknowledge_rebalance(cue_kafka *k, rd_kafka_event_t *ev)
{
    rd_kafka_t *rk = k->consumer;
    const rd_kafka_topic_partition_list_t *parts = rd_kafka_event_topic_partition_list(ev);
    bool coop = cooperative(rk);
    rd_kafka_error_t *e = NULL;
    if (rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int32_t *ids = calloc((size_t)parts->cnt + 1, sizeof *ids);
        CUE_ASSERT(ids != NULL);
        size_t n = 0;
        parts_of(parts, ids, &n);
        k->h.revoked(ids, n, rd_kafka_assignment_lost(rk), k->h.ctx);
        free(ids);
        e = coop ? rd_kafka_incremental_unassign(rk, parts) : (rd_kafka_assign(rk, NULL), NULL);
    } else {
        k->assigned = true;
        e = coop ? rd_kafka_incremental_assign(rk, parts) : (rd_kafka_assign(rk, parts), NULL);
    }
    if (e) rd_kafka_error_destroy(e);
}

/* Leaves the group, serving the revocation on a queue of our own, for at most
 * `timeout_ms`: with the coordinator down, rd_kafka_consumer_close() would
 * wait for it for minutes. The group then notices after session.timeout.ms. */
void kafka_consumer_leave(cue_kafka *k, int64_t timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->consumer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(k->consumer, q);
    if (e) {
        rd_kafka_error_destroy(e);
    } else {
        int64_t until = kafka_mono_ms() + timeout_ms;
        while (!rd_kafka_consumer_closed(k->consumer) && kafka_mono_ms() < until) {
            /* Served as events, not callbacks: fetched records still
             * arriving here cannot go through a callback (librdkafka
             * asserts), and the tasks are gone, so a revocation only needs
             * acknowledging. */
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                acknowledge_rebalance(k, ev);
            if (ev) rd_kafka_event_destroy(ev);
        }
        if (!rd_kafka_consumer_closed(k->consumer))
            cue_log(CUE_LOG_WARN,
                    "leaving the group timed out; it will notice after "
                    "session.timeout.ms",
                    "i:timeout_ms", timeout_ms, NULL);
    }
    rd_kafka_queue_destroy(q);
}

int cue_kafka_subscribe(cue_kafka *k, cue_err *err)
{
    uint32_t n = k->cfg->input_topic_count ? k->cfg->input_topic_count : 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (uint32_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, k->cfg->input_topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    k->subscribed = e == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (k->subscribed) k->leave = kafka_consumer_leave;
    if (e) return cue_err_set(err, CUE_EUNAVAILABLE, "subscribe: %s", rd_kafka_err2str(e));
    return 0;
}

void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                        rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    cue_kafka *k = opaque;
    /* Records polled before the rebalance are handled before it, as when
     * none was held ahead: a partition revoked must not apply them after. */
    kafka_ahead_drain(k);
    bool coop = cooperative(rk);
    size_t n = 0;
    uint32_t topics = k->cfg->input_topic_count ? k->cfg->input_topic_count : 1;
    int32_t *ids = calloc((size_t)parts->cnt + 1, sizeof *ids);
    int64_t *start = calloc(((size_t)parts->cnt + 1) * topics, sizeof *start);
    CUE_ASSERT(ids && start); /* rebalances are rare; a failed small calloc is not survivable */
    parts_of(parts, ids, &n);
    for (size_t i = 0; i < n * topics; i++)
        start[i] = CUE_KAFKA_OFFSET_GROUP;
    if (code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        k->assigned = true;
        int rc = k->h.assigned(ids, start, n, k->h.ctx);
        bool held = false;
        for (int i = 0; i < parts->cnt; i++) {
            int64_t s = start_of(k, &parts->elems[i], ids, start, n);
            held |= s == CUE_KAFKA_OFFSET_HOLD;
            parts->elems[i].offset = s == CUE_KAFKA_OFFSET_GROUP || s == CUE_KAFKA_OFFSET_HOLD
                                         ? RD_KAFKA_OFFSET_INVALID
                                         : s;
        }
        if (rc == 0) {
            rd_kafka_error_t *e = NULL;
            if (coop)
                e = rd_kafka_incremental_assign(rk, parts);
            else
                rd_kafka_assign(rk, parts);
            if (e) {
                cue_log(CUE_LOG_ERROR, "assign failed", "s:error", rd_kafka_error_string(e), NULL);
                rd_kafka_error_destroy(e);
            }
            for (int i = 0; held && i < parts->cnt; i++)
                if (start_of(k, &parts->elems[i], ids, start, n) == CUE_KAFKA_OFFSET_HOLD)
                    cue_kafka_pause(k, parts->elems[i].partition);
            for (int i = 0; k->split && i < parts->cnt; i++)
                kafka_split_open(k, parts->elems[i].partition);
        }
    } else {
        bool lost = rd_kafka_assignment_lost(rk);
        k->h.revoked(ids, n, lost, k->h.ctx);
        for (size_t i = 0; k->split && i < n; i++)
            kafka_split_close(k, ids[i]);
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
    free(ids);
    free(start);
}

void cue_kafka_commit(cue_kafka *k, int32_t partition, int64_t offset, bool sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_commit(k->consumer, l, sync ? 0 : 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        cue_log(CUE_LOG_WARN, "offset commit failed", "s:topic", k->cfg->input_topic, "i:partition",
                (int64_t)partition, "i:offset", offset, "s:error", rd_kafka_err2str(e), NULL);
    rd_kafka_topic_partition_list_destroy(l);
}

/* The pipeline's consumer (the same defaults and passthrough properties, so
 * TLS and SASL settings apply) without the producer. It joins the group only
 * if the caller subscribes it. */
int cue_kafka_open_consumer(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                            cue_err *err)
{
    cue_kafka *k = calloc(1, sizeof *k);
    if (k == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    k->cfg = cfg;
    k->h = *h;
    k->cpipe[0] = k->cpipe[1] = k->ppipe[0] = k->ppipe[1] = -1;
    char why[512];
    rd_kafka_conf_t *cc = NULL;
    if (kafka_pipe_open(k->cpipe, err) != 0) goto fail;
    cc = kafka_conf_new(k, CUE_KAFKA_CONSUMER, err);
    if (cc == NULL) goto fail;
    k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, why, sizeof why);
    if (k->consumer == NULL) {
        rd_kafka_conf_destroy(cc);
        cue_err_set(err, CUE_ECONFIG, "kafka consumer: %s", why);
        goto fail;
    }
    rd_kafka_poll_set_consumer(k->consumer);
    k->cq = rd_kafka_queue_get_consumer(k->consumer);
    rd_kafka_queue_io_event_enable(k->cq, k->cpipe[1], "1", 1);
    *out = k;
    return 0;
fail:
    cue_kafka_close(k, 0);
    return err ? err->code : CUE_ECONFIG;
}
