/* The clients' librdkafka configuration: defaults, then the config's
 * passthrough, secrets kept out of every log line, and the callbacks every
 * pipeline client gets (log, errors). */
#include "kafka_int.h"

int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, cue_err *err)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, val, why, sizeof why) == RD_KAFKA_CONF_OK) return 0;
    /* librdkafka's message may quote the value: leave it out for secrets. */
    if (cue_config_secret(key))
        return cue_err_set(err, CUE_ECONFIG, "$.kafka.%s: rejected by librdkafka (value hidden)",
                           key);
    return cue_err_set(err, CUE_ECONFIG, "$.kafka.%s: %s", key, why);
}

/* Copies `in` to `out` with every configured secret value replaced:
 * librdkafka quotes property values in some of its own warnings. */
static const char *scrub(const cue_config *cfg, const char *in, char *out, size_t cap)
{
    if (cfg == NULL) return in;
    snprintf(out, cap, "%s", in);
    for (size_t i = 0; i < cfg->kafka_len; i++) {
        if (!cue_config_secret(cue_config_kafka_key(cfg, i))) continue;
        const char *v = cue_config_kafka_value(cfg, i);
        size_t vlen = strlen(v);
        char *hit;
        while (vlen > 0 && (hit = strstr(out, v)) != NULL) {
            static const char mark[] = "[redacted]";
            size_t tail = strlen(hit + vlen);
            if ((size_t)(hit - out) + sizeof mark + tail > cap) {
                *hit = '\0'; /* no room to keep the rest: cut it */
                break;
            }
            memmove(hit + sizeof mark - 1, hit + vlen, tail + 1);
            memcpy(hit, mark, sizeof mark - 1);
        }
    }
    return out;
}

static const cue_config *cfg_of(const rd_kafka_t *rk)
{
    const cue_kafka *k = rd_kafka_opaque(rk);
    return k ? k->cfg : NULL;
}

static void log_emit(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* syslog levels: 0-3 errors, 4 warnings, 5-6 notices and info, 7 debug. */
    cue_log_level l = level <= 3   ? CUE_LOG_ERROR
                      : level == 4 ? CUE_LOG_WARN
                      : level <= 6 ? CUE_LOG_INFO
                                   : CUE_LOG_DEBUG;
    /* A group offset commit refused while the group rebalances (or with the
     * generation it ended, a stop during one gave 124 of them) is retried
     * at the next cycle, and the store holds the offsets meanwhile: one
     * warning per partition per cycle would only bury the real ones. */
    if (l == CUE_LOG_WARN && strstr(buf, "Offset commit") &&
        (strstr(buf, "Group rebalance in progress") || strstr(buf, "generation id is not valid") ||
         strstr(buf, "Illegal generation") || strstr(buf, "member id is not valid")))
        l = CUE_LOG_DEBUG;
    cue_log(l, buf, "s:source", "librdkafka", "s:client", rd_kafka_name(rk), "s:facility", fac,
            NULL);
}

/* The pipeline's clients: their opaque is the cue_kafka with the config. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *raw)
{
    char clean[2048];
    log_emit(rk, level, fac, scrub(cfg_of(rk), raw, clean, sizeof clean));
}

/* The loader and the mock cluster carry no secrets of the config. */
void kafka_plain_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_emit(rk, level, fac, buf);
}

/* The errors that say another producer took over this transactional.id. */
bool kafka_is_fencing(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__FENCED || e == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           e == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

static void error_cb(rd_kafka_t *rk, int code, const char *raw, void *opaque)
{
    cue_kafka *k = opaque;
    char clean[2048];
    const char *reason = scrub(k->cfg, raw, clean, sizeof clean);
    bool is_consumer = rk == k->consumer;
    if (is_consumer)
        k->stats.consumer_errors++;
    else
        k->stats.producer_errors++;
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        char raw_why[512];
        rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, raw_why, sizeof raw_why);
        scrub(k->cfg, raw_why, why, sizeof why);
        if (rk == k->producer && k->transactional && kafka_is_fencing(fe)) {
            k->fenced = true;
            k->stats.txn_fenced++;
        }
        cue_log(CUE_LOG_ERROR, "fatal client error", "s:client", rd_kafka_name(rk), "s:error", why,
                NULL);
        if (!k->fatal_raised && k->h.fatal) {
            k->fatal_raised = true;
            k->h.fatal(why, k->h.ctx);
        }
        return;
    }
    /* Everything else (brokers down, timeouts) librdkafka retries by itself. */
    cue_log(CUE_LOG_WARN, reason, "s:client", rd_kafka_name(rk), "s:error",
            rd_kafka_err2name((rd_kafka_resp_err_t)code), NULL);
}

/* The consumer's defaults. A replay reads outside the live group: it never
 * subscribes (the partitions are assigned) and never commits, under a group
 * id of its own because librdkafka's consumer queue needs one. */
static int consumer_defaults(const cue_kafka *k, rd_kafka_conf_t *conf, cue_err *err)
{
    const cue_config *c = k->cfg;
    char group[CUE_NAME_BYTES_MAX + 160];
    snprintf(group, sizeof group, "%s%s%s", c->application_id, k->replay_id ? "-" : "",
             k->replay_id ? k->replay_id : "");
    int rc = kafka_conf_set(conf, "group.id", group, err);
    if (rc == 0 && k->replay_id) rc = kafka_conf_set(conf, "enable.partition.eof", "true", err);
    if (rc == 0) rc = kafka_conf_set(conf, "enable.auto.commit", "false", err);
    if (rc == 0) rc = kafka_conf_set(conf, "enable.auto.offset.store", "false", err);
    if (rc == 0) rc = kafka_conf_set(conf, "auto.offset.reset", "earliest", err);
    /* Several input topics are co-partitioned only if partition N of each
     * goes to the same member: the range assignor does that (for topics of
     * equal partition counts); cooperative-sticky balances each partition
     * on its own. The price is eager rebalances (docs/kafka.md). */
    if (rc == 0)
        rc = kafka_conf_set(conf, "partition.assignment.strategy",
                            c->input_topic_count > 1 ? "range" : "cooperative-sticky", err);
    if (rc == 0) rc = kafka_conf_set(conf, "fetch.wait.max.ms", "100", err);
    /* librdkafka 2.0.2 weighs each partition's prefetch against the one
     * consumer queue all partitions share: with the default (100000), one
     * fetch over many partitions stops them all until the next wake-up,
     * and the pipeline idles half the time (bench/pipeline.sh). The
     * queue stays bounded by queued.max.messages.kbytes (64 MiB). */
    if (rc == 0) rc = kafka_conf_set(conf, "queued.min.messages", "1000000", err);
    return rc;
}

static int producer_defaults(const cue_config *c, rd_kafka_conf_t *conf, cue_err *err)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)c->delivery_timeout_ms);
    int rc = kafka_conf_set(conf, "enable.idempotence", "true", err);
    if (rc == 0) rc = kafka_conf_set(conf, "acks", "all", err);
    if (rc == 0) rc = kafka_conf_set(conf, "message.timeout.ms", v, err);
    if (rc == 0) rc = kafka_conf_set(conf, "linger.ms", "5", err);
    /* Snappy, not LZ4: librdkafka makes an LZ4 frame context per batch, and
     * with triggers spread over many partitions a batch holds a few records:
     * the context's zeroed buffers (jemalloc zeroes a reused one with
     * madvise, a TLB shootdown on every core) and their page faults were
     * ~7% of the pipeline's CPU samples. Snappy keeps no such state; JSON
     * triggers compress about as well. kafka.producer overrides it. */
    if (rc == 0) rc = kafka_conf_set(conf, "compression.type", "snappy", err);
    /* Room for a dead letter that carries a whole maximum-size event. */
    snprintf(v, sizeof v, "%zu", c->event_bytes_max + 64 * 1024);
    if (rc == 0 && c->event_bytes_max + 64 * 1024 > 1000000)
        rc = kafka_conf_set(conf, "message.max.bytes", v, err);
    return rc;
}

/* What no passthrough property may change, set after it. Exactly-once reads
 * only committed records (the input and, for a restore, the changelog). The
 * pipeline's producer and the changelog writer's (not a replay's) are
 * transactional, which implies enable.idempotence. */
static int enforced(cue_kafka *k, int client, rd_kafka_conf_t *conf, cue_err *err)
{
    const cue_config *c = k->cfg;
    int rc = 0;
    if (c->exactly_once && client == CUE_KAFKA_CONSUMER)
        rc = kafka_conf_set(conf, "isolation.level", "read_committed", err);
    if (rc == 0 && client == CUE_KAFKA_CONSUMER && k->h.out_of_range)
        rc = kafka_conf_set(conf, "auto.offset.reset", "error", err);
    if (rc == 0 && c->exactly_once && client == CUE_KAFKA_PRODUCER &&
        (k->replay_id == NULL || k->writer)) {
        CUE_ASSERT(c->transactional_id[0] != '\0'); /* the runtime derives it */
        rc = kafka_conf_set(conf, "transactional.id", c->transactional_id, err);
        /* librdkafka wants a record's delivery timeout within its
         * transaction's: delivery.timeout.ms bounds both. */
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)c->delivery_timeout_ms);
        if (rc == 0) rc = kafka_conf_set(conf, "transaction.timeout.ms", v, err);
        k->transactional = rc == 0;
    }
    return rc;
}

/* Defaults first, then the passthrough for this client, so a user's property wins. */
rd_kafka_conf_t *kafka_conf_new(cue_kafka *k, int client, cue_err *err)
{
    const cue_config *c = k->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = kafka_conf_set(conf, "bootstrap.servers", c->bootstrap_servers, err);
    if (rc == 0)
        rc = kafka_conf_set(conf, "client.id",
                            client == CUE_KAFKA_CONSUMER ? "cuepoint-consumer" : "cuepoint", err);
    if (rc == 0)
        rc = client == CUE_KAFKA_CONSUMER ? consumer_defaults(k, conf, err)
                                          : producer_defaults(c, conf, err);
    for (size_t i = 0; rc == 0 && i < c->kafka_len; i++)
        if (c->kafka[i].clients & client)
            rc =
                kafka_conf_set(conf, cue_config_kafka_key(c, i), cue_config_kafka_value(c, i), err);
    if (rc == 0) rc = enforced(k, client, conf, err);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (client == CUE_KAFKA_CONSUMER)
        rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);
    else
        rd_kafka_conf_set_dr_msg_cb(conf, kafka_delivery_cb);
    return conf;
}
