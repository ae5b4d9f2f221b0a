/* Requests about topics: the input's metadata at start-up, a topic's
 * partition count, creating a topic and reading one of its settings
 * through the admin API. */
#include "kafka_int.h"

/* One input topic's partition count from the brokers. */
static int input_partitions(cue_kafka *k, const char *topic, int64_t timeout_ms, int32_t *n,
                            cue_err *err)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(k->consumer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(k->consumer, 0, t, &md, (int)timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return cue_err_set(err, CUE_EUNAVAILABLE,
                           "no broker of %s answered within %lld ms (%s); is bootstrap.servers "
                           "right and the cluster up?",
                           k->cfg->bootstrap_servers, (long long)timeout_ms, rd_kafka_err2str(e));
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topics[0].partition_cnt == 0)
        rc = cue_err_set(err, CUE_ENOTFOUND, "input topic %s: %s", topic,
                         md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not in metadata");
    else
        *n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return rc;
}

int cue_kafka_wait_ready(cue_kafka *k, int64_t timeout_ms, int32_t *partitions, cue_err *err)
{
    const cue_config *c = k->cfg;
    uint32_t topics = c->input_topic_count ? c->input_topic_count : 1;
    int32_t counts[CUE_INPUT_TOPICS_MAX];
    bool differ = false;
    for (uint32_t i = 0; i < topics; i++) {
        int rc =
            input_partitions(k, cue_config_input_topic_name(c, i), timeout_ms, &counts[i], err);
        if (rc != 0) return rc;
        differ |= counts[i] != counts[0];
    }
    if (differ) {
        /* Partition N of each topic goes to one task: with other counts a
         * user's events would be in partitions of different numbers. */
        char list[CUE_ERR_MSG_MAX];
        size_t at = 0;
        for (uint32_t i = 0; i < topics && at < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s has %d", i ? ", " : "",
                                   c->input_topics[i], (int)counts[i]);
        return cue_err_set(err, CUE_ECONFIG,
                           "the input topics have different partition counts (%s): input.topics "
                           "are read as one stream per partition number and must be "
                           "co-partitioned (the same count, keyed by user id)",
                           list);
    }
    *partitions = counts[0];
    return 0;
}

/* `topic`'s partition count from the metadata of `asked` (NULL: every topic). */
static int partitions_of(rd_kafka_t *rk, rd_kafka_topic_t *asked, const char *topic,
                         int64_t timeout_ms, int32_t *n, cue_err *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, asked == NULL, asked, &md, (int)timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return cue_err_set(err, CUE_EUNAVAILABLE, "metadata for %s: %s", topic,
                           rd_kafka_err2str(e));
    *n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            *n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return 0;
}

int cue_kafka_topic_partitions(cue_kafka *k, const char *topic, bool auto_create,
                               int64_t timeout_ms, int32_t *n, cue_err *err)
{
    /* The producer may have the cluster create the topic (allow.auto.create.topics). */
    rd_kafka_t *rk = auto_create && k->producer ? k->producer : k->consumer;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int rc = partitions_of(rk, t, topic, timeout_ms, n, err);
    rd_kafka_topic_destroy(t);
    return rc;
}

int cue_kafka_topic_listed(cue_kafka *k, const char *topic, int64_t timeout_ms, int32_t *n,
                           cue_err *err)
{
    return partitions_of(k->consumer, NULL, topic, timeout_ms, n, err);
}

/* One admin request: `send` issues it with the options and the queue; the
 * answer's event comes back (the caller destroys it), or NULL with `err`
 * naming `what` when there is none or the request as a whole failed. */
typedef void admin_send_fn(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q,
                           void *arg);
static rd_kafka_event_t *admin_call(cue_kafka *k, rd_kafka_admin_op_t op, admin_send_fn *send,
                                    void *arg, int64_t timeout_ms, const char *what, cue_err *err)
{
    char why[512];
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->producer);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(k->producer, op);
    rd_kafka_AdminOptions_set_request_timeout(o, (int)timeout_ms, why, sizeof why);
    send(k->producer, o, q, arg);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)timeout_ms + 1000);
    if (ev == NULL) {
        cue_err_set(err, CUE_EUNAVAILABLE, "%s: no answer", what);
    } else if (rd_kafka_event_error(ev)) {
        cue_err_set(err, CUE_EUNAVAILABLE, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        ev = NULL;
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return ev;
}

static void send_create(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q,
                        void *arg)
{
    rd_kafka_CreateTopics(rk, (rd_kafka_NewTopic_t **)arg, 1, o, q);
}

int cue_kafka_create_topic(cue_kafka *k, const char *topic, int32_t partitions,
                           const char *const *configs, int64_t timeout_ms, cue_err *err)
{
    char why[512], what[CUE_TOPIC_BYTES_MAX + 16];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, why, sizeof why);
    if (nt == NULL) return cue_err_set(err, CUE_ECONFIG, "%s: %s", topic, why);
    for (size_t i = 0; configs && configs[i]; i += 2)
        if (rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]) != 0) {
            rd_kafka_NewTopic_destroy(nt);
            return cue_err_set(err, CUE_ECONFIG, "%s: topic setting %s=%s refused", topic,
                               configs[i], configs[i + 1]);
        }
    snprintf(what, sizeof what, "creating %s", topic);
    rd_kafka_event_t *ev =
        admin_call(k, RD_KAFKA_ADMIN_OP_CREATETOPICS, send_create, &nt, timeout_ms, what, err);
    int rc = ev ? 0 : CUE_EUNAVAILABLE;
    if (ev) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        if (n == 1 && rd_kafka_topic_result_error(res[0]) &&
            rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = cue_err_set(err, CUE_EUNAVAILABLE, "%s: %s", what,
                             rd_kafka_topic_result_error_string(res[0]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

static void send_describe(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q,
                          void *arg)
{
    rd_kafka_DescribeConfigs(rk, (rd_kafka_ConfigResource_t **)arg, 1, o, q);
}

int cue_kafka_topic_config(cue_kafka *k, const char *topic, const char *name, char *out, size_t cap,
                           int64_t timeout_ms, cue_err *err)
{
    char what[CUE_TOPIC_BYTES_MAX + 16];
    snprintf(what, sizeof what, "%s: settings", topic);
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_event_t *ev = admin_call(k, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, send_describe, &res,
                                      timeout_ms, what, err);
    int rc = ev ? CUE_ENOTFOUND : CUE_EUNAVAILABLE;
    size_t n = 0;
    const rd_kafka_ConfigResource_t **got = ev ? rd_kafka_DescribeConfigs_result_resources(
                                                     rd_kafka_event_DescribeConfigs_result(ev), &n)
                                               : NULL;
    if (ev && (n != 1 || rd_kafka_ConfigResource_error(got[0])))
        rc = cue_err_set(err, CUE_EUNAVAILABLE, "%s: %s", what,
                         n == 1 ? rd_kafka_ConfigResource_error_string(got[0]) : "no answer");
    if (rc == CUE_ENOTFOUND) {
        size_t m = 0;
        const rd_kafka_ConfigEntry_t **e = rd_kafka_ConfigResource_configs(got[0], &m);
        for (size_t j = 0; j < m && rc != 0; j++)
            if (strcmp(rd_kafka_ConfigEntry_name(e[j]), name) == 0 &&
                rd_kafka_ConfigEntry_value(e[j]) != NULL) {
                snprintf(out, cap, "%s", rd_kafka_ConfigEntry_value(e[j]));
                rc = 0;
            }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_ConfigResource_destroy(res);
    return rc;
}

int cue_kafka_changelog_ensure(cue_kafka *k, int32_t partitions, const char *input_topic,
                               bool *described, cue_err *err)
{
    const cue_config *cfg = k->cfg;
    const char *topic = cue_config_changelog_topic(cfg);
    int32_t n = 0;
    *described = true;
    int rc = cue_kafka_topic_partitions(k, topic, false, cfg->startup_timeout_ms, &n, err);
    if (rc == 0 && n == 0) {
        cue_err cerr = {0};
        char retention[24];
        snprintf(retention, sizeof retention, "%lld",
                 (long long)cfg->changelog_delete_retention_ms);
        const char *const configs[] = {"cleanup.policy", "compact", "delete.retention.ms",
                                       retention, NULL};
        if (cue_kafka_create_topic(k, topic, partitions, configs, cfg->startup_timeout_ms, &cerr) ==
            0) {
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
            rc = cue_kafka_topic_partitions(k, topic, true, cfg->startup_timeout_ms, &n, err);
            *described = false; /* nor will it describe the topic: no waiting for that */
        }
    }
    if (rc == 0 && n > 0 && n != partitions)
        return cue_err_set(err, CUE_ECONFIG,
                           "changelog topic %s has %d partitions and input topic %s has %d: they "
                           "must be equal (each partition's state goes to the partition of the "
                           "same number); create %s with %d partitions",
                           topic, (int)n, input_topic, (int)partitions, topic, (int)partitions);
    return rc;
}
