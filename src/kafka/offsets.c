/* The consumer group's offsets and membership: reads without joining, and a
 * probe member that joins to commit. */
#include "kafka_int.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static rd_kafka_topic_partition_list_t *parts_list(const char *topic, const int32_t *parts,
                                                   size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i]);
    return l;
}

int cue_kafka_group_committed(cue_kafka *k, uint32_t topic, const int32_t *parts, size_t n,
                              int64_t *offsets, char (*meta)[CUE_KAFKA_META_MAX],
                              int64_t timeout_ms, cue_err *err)
{
    const cue_config *cfg = k->cfg;
    const char *name = cue_config_input_topic_name(cfg, topic);
    rd_kafka_topic_partition_list_t *l = parts_list(name, parts, n);
    rd_kafka_resp_err_t e = rd_kafka_committed(k->consumer, l, (int)timeout_ms);
    int rc = 0;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = cue_err_set(err, CUE_EUNAVAILABLE,
                         "group %s: committed offsets of %s not read within %lld ms: %s",
                         cfg->application_id, name, (long long)timeout_ms, rd_kafka_err2str(e));
    } else {
        for (size_t i = 0; i < n; i++) {
            const rd_kafka_topic_partition_t *t = &l->elems[i];
            if (t->err && rc == 0)
                rc = cue_err_set(err, CUE_EUNAVAILABLE, "%s partition %d: committed offset: %s",
                                 name, (int)t->partition, rd_kafka_err2str(t->err));
            offsets[i] = t->offset >= 0 ? t->offset : -1;
            size_t len =
                t->metadata_size < CUE_KAFKA_META_MAX ? t->metadata_size : CUE_KAFKA_META_MAX - 1;
            if (t->metadata && len > 0) memcpy(meta[i], t->metadata, len);
            meta[i][t->metadata ? len : 0] = '\0';
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static int group_commit(cue_kafka *k, int32_t partition, const int64_t *offsets, uint32_t topics,
                        const char *meta, bool sync, cue_err *err);

int cue_kafka_group_commit(cue_kafka *k, int32_t partition, int64_t offset, const char *meta,
                           bool sync, cue_err *err)
{
    return group_commit(k, partition, &offset, 1, meta, sync, err);
}

int cue_kafka_group_commit_all(cue_kafka *k, int32_t partition, const int64_t *offsets,
                               const char *meta, bool sync, cue_err *err)
{
    return group_commit(k, partition, offsets, k->cfg->input_topic_count, meta, sync, err);
}

/* Commits partition `partition` of the first `topics` input topics. */
static int group_commit(cue_kafka *k, int32_t partition, const int64_t *offsets, uint32_t topics,
                        const char *meta, bool sync, cue_err *err)
{
    const cue_config *cfg = k->cfg;
    CUE_ASSERT(topics >= 1 && topics <= cfg->input_topic_count);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)topics);
    for (uint32_t i = 0; i < topics; i++)
        rd_kafka_topic_partition_list_add(l, cfg->input_topics[i], partition)->offset = offsets[i];
    rd_kafka_topic_partition_t *t = &l->elems[0];
    if (meta && *meta) {
        /* The list owns and frees its elements' metadata. */
        t->metadata_size = strlen(meta);
        t->metadata = malloc(t->metadata_size);
        CUE_ASSERT(t->metadata != NULL);
        memcpy(t->metadata, meta, t->metadata_size);
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(k->consumer, l, sync ? 0 : 1);
    for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && sync && i < l->cnt; i++)
        e = l->elems[i].err;
    int64_t offset = offsets[0];
    rd_kafka_topic_partition_list_destroy(l);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR__NO_OFFSET) return 0;
    /* Refused because the group is between generations: the store holds the
     * offset, and the next assignment starts from it. Not worth a warning. */
    bool rebalance = e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
                     e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
                     e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID;
    cue_log(rebalance ? CUE_LOG_DEBUG : CUE_LOG_WARN, "offset commit failed", "s:topic",
            cfg->input_topic, "i:partition", (int64_t)partition, "i:offset", offset, "s:error",
            rd_kafka_err2str(e), NULL);
    if (!sync) return 0;
    return cue_err_set(err, CUE_EUNAVAILABLE, "%s partition %d: committing offset %lld: %s",
                       cfg->input_topic, (int)partition, (long long)offset, rd_kafka_err2str(e));
}

int cue_kafka_group_watermarks(cue_kafka *k, uint32_t topic, int32_t partition, int64_t *log_start,
                               int64_t *high, int64_t timeout_ms, cue_err *err)
{
    const char *name = cue_config_input_topic_name(k->cfg, topic);
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(k->consumer, name, partition,
                                                             log_start, high, (int)timeout_ms);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    return cue_err_set(err, CUE_EUNAVAILABLE, "%s partition %d: watermarks: %s", name,
                       (int)partition, rd_kafka_err2str(e));
}

int cue_kafka_group_offsets_for_time(cue_kafka *k, const int32_t *parts, size_t n, int64_t time_ms,
                                     int64_t *answers, int64_t timeout_ms, cue_err *err)
{
    const cue_config *cfg = k->cfg;
    rd_kafka_topic_partition_list_t *l = parts_list(cfg->input_topic, parts, n);
    for (int i = 0; i < l->cnt; i++)
        l->elems[i].offset = time_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(k->consumer, l, (int)timeout_ms);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rd_kafka_resp_err_t pe = e ? e : l->elems[i].err;
        if (pe)
            rc = cue_err_set(err, CUE_EUNAVAILABLE, "%s partition %d: offset for time %lld: %s",
                             cfg->input_topic, (int)parts[i], (long long)time_ms,
                             rd_kafka_err2str(pe));
        else
            answers[i] = l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* librdkafka 2.0.2's DescribeConsumerGroups asserts (rd_kafka_enq_once
 * refcount) when the broker lacks DescribeGroups, as the mock does; the
 * older rd_kafka_list_groups asks the same questions (ListGroups, then
 * DescribeGroups) and fails cleanly there. */
int cue_kafka_group_members(cue_kafka *k, cue_kafka_member *out, size_t cap, size_t *n,
                            int64_t timeout_ms, cue_err *err)
{
    const cue_config *cfg = k->cfg;
    *n = 0;
    const struct rd_kafka_group_list *gl = NULL;
    rd_kafka_resp_err_t e =
        rd_kafka_list_groups(k->consumer, cfg->application_id, &gl, (int)timeout_ms);
    int rc = 0;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && gl && gl->group_cnt == 1 && gl->groups[0].err)
        e = gl->groups[0].err;
    if (e == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        rc = 0; /* no such group: no members */
    } else if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = cue_err_set(err, CUE_EVERSION, "the cluster did not describe group %s (%s)",
                         cfg->application_id, rd_kafka_err2str(e));
    } else if (gl && gl->group_cnt == 1) {
        const struct rd_kafka_group_info *g = &gl->groups[0];
        for (int i = 0; i < g->member_cnt; i++) {
            if ((size_t)i >= cap) break;
            snprintf(out[i].client_id, sizeof out[i].client_id, "%s",
                     g->members[i].client_id ? g->members[i].client_id : "");
            snprintf(out[i].host, sizeof out[i].host, "%s",
                     g->members[i].client_host ? g->members[i].client_host : "");
        }
        *n = (size_t)g->member_cnt;
    }
    if (gl) rd_kafka_group_list_destroy(gl);
    return rc;
}

/* ---- the probe member -------------------------------------------------- */

static int probe_assigned(const int32_t *parts, int64_t *start, size_t n, void *ctx)
{
    cue_kafka_probe *p = ctx;
    if (!p->got_assignment) p->assigned = n;
    p->got_assignment = true;
    /* Start at the end: the probe reads nothing. */
    for (size_t i = 0; i < n; i++)
        start[i] = RD_KAFKA_OFFSET_END;
    return 0;
}

static void probe_revoked(const int32_t *parts, size_t n, bool lost, void *ctx) {}
static void probe_message(const cue_kafka_msg *m, void *ctx) {}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The consumer's session.timeout.ms as librdkafka resolved it (the
 * configured value or its default), or 0 when it cannot say. */
static int64_t session_timeout_ms(rd_kafka_t *rk)
{
    char v[32];
    size_t len = sizeof v;
    if (rd_kafka_conf_get(rd_kafka_conf(rk), "session.timeout.ms", v, &len) != RD_KAFKA_CONF_OK)
        return 0;
    return strtoll(v, NULL, 10);
}

int cue_kafka_probe_join(cue_kafka_probe *p, const cue_config *cfg, int64_t timeout_ms,
                         cue_err *err)
{
    memset(p, 0, sizeof *p);
    cue_kafka_handler h = {
        .assigned = probe_assigned, .revoked = probe_revoked, .message = probe_message, .ctx = p};
    int rc = cue_kafka_open_consumer(&p->k, cfg, &h, err);
    if (rc == 0) rc = cue_kafka_subscribe(p->k, err);
    if (rc != 0) return rc;
    /* A member that stopped a moment ago may still count in the group until
     * session.timeout.ms has passed (one that died always does; the dev
     * broker keeps even one that left): the join completes only then. A
     * probe that gave up before would leave one more rebalance behind it,
     * and its retry would wait again, so it waits that long at least. */
    int64_t session = session_timeout_ms(p->k->consumer);
    if (session + 5000 > timeout_ms) {
        cue_log(CUE_LOG_INFO,
                "joining the group; a member that stopped within session.timeout.ms "
                "still counts in it, so this may take that long",
                "i:session_timeout_ms", session, NULL);
        timeout_ms = session + 5000;
    }
    int64_t until = now_ms() + timeout_ms;
    while (!p->got_assignment && now_ms() < until) {
        struct pollfd pfd = {.fd = cue_kafka_consumer_fd(p->k), .events = POLLIN};
        poll(&pfd, 1, 100);
        cue_kafka_drain_fd(pfd.fd);
        cue_kafka_consume(p->k, 1000);
    }
    if (p->got_assignment) return 0;
    return cue_err_set(err, CUE_EUNAVAILABLE,
                       "group %s assigned nothing to a probe within %lld ms: a member is in it "
                       "and the group is still rebalancing; try again when it is stopped",
                       cfg->application_id, (long long)timeout_ms);
}

void cue_kafka_probe_leave(cue_kafka_probe *p, int64_t timeout_ms)
{
    cue_kafka_close(p->k, timeout_ms);
    p->k = NULL;
}
