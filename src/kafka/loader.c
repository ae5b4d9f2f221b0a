/* A plain idempotent producer for loading topics (the demo, benchmarks,
 * tests). */
#include "kafka_int.h"

struct cue_kafka_loader {
    rd_kafka_t *rk; /* owned */
    uint64_t failed;
};

static void loader_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    cue_kafka_loader *l = opaque;
    if (m->err) l->failed++;
    (void)rk;
}

int cue_kafka_loader_new(cue_kafka_loader **out, const char *bootstrap, const char *const *props,
                         size_t n_props, cue_err *err)
{
    cue_kafka_loader *l = calloc(1, sizeof *l);
    if (l == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = kafka_conf_set(conf, "bootstrap.servers", bootstrap, err);
    if (rc == 0) rc = kafka_conf_set(conf, "enable.idempotence", "true", err);
    if (rc == 0) rc = kafka_conf_set(conf, "linger.ms", "20", err);
    if (rc == 0) rc = kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err);
    for (size_t i = 0; rc == 0 && i < n_props; i++) {
        char key[256];
        const char *eq = strchr(props[i], '=');
        if (eq == NULL || eq == props[i] || (size_t)(eq - props[i]) >= sizeof key) {
            rc = cue_err_set(err, CUE_ECONFIG, "'%s' is not KEY=VALUE", props[i]);
            break;
        }
        snprintf(key, sizeof key, "%.*s", (int)(eq - props[i]), props[i]);
        rc = kafka_conf_set(conf, key, eq + 1, err);
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        free(l);
        return rc;
    }
    rd_kafka_conf_set_opaque(conf, l);
    rd_kafka_conf_set_dr_msg_cb(conf, loader_dr);
    rd_kafka_conf_set_log_cb(conf, kafka_plain_log_cb);
    char why[512];
    l->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (l->rk == NULL) {
        free(l);
        return cue_err_set(err, CUE_ECONFIG, "producer: %s", why);
    }
    *out = l;
    return 0;
}

int cue_kafka_loader_send(cue_kafka_loader *l, const char *topic, int32_t partition,
                          const char *key, size_t key_len, const char *val, size_t len,
                          cue_err *err)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            l->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return cue_err_set(err, CUE_EIO, "produce to %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(l->rk, 50);
    }
    rd_kafka_poll(l->rk, 0);
    return 0;
}

int cue_kafka_loader_flush(cue_kafka_loader *l, int64_t timeout_ms, cue_err *err)
{
    rd_kafka_flush(l->rk, (int)timeout_ms);
    if (rd_kafka_outq_len(l->rk) > 0)
        return cue_err_set(err, CUE_EUNAVAILABLE, "%d records not acknowledged in %lld ms",
                           rd_kafka_outq_len(l->rk), (long long)timeout_ms);
    if (l->failed)
        return cue_err_set(err, CUE_EIO, "%llu records failed", (unsigned long long)l->failed);
    return 0;
}

void cue_kafka_loader_free(cue_kafka_loader *l)
{
    if (l == NULL) return;
    rd_kafka_destroy(l->rk);
    free(l);
}
