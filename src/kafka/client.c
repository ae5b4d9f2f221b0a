/* The pipeline's and a replay's clients: opened from the config (a consumer,
 * and a producer when there is an output topic), checked without keeping
 * them, and closed. */
#include "kafka_int.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

/* Clients whose consumers are deliberately not destroyed (see
 * cue_kafka_close): the pipeline's and the repartition stage's at most;
 * globals, so that leak checkers see them as still reachable at exit. */
#define LEFT_TO_EXIT_MAX 4
static cue_kafka *left_to_exit[LEFT_TO_EXIT_MAX];

/* The consumer left to the exit still runs its threads: they log through
 * `k` (its opaque) and the config, whose owner may free it first, and may
 * write the consumer's pipe. Those stay with it; `k` is closed for good. */
static void keep_for_exit(cue_kafka *k)
{
    cue_config *own = malloc(sizeof *own);
    if (own) {
        *own = *k->cfg;
        k->cfg = own;
    } else {
        cue_log(CUE_LOG_WARN, "out of memory keeping a consumer's config to the exit", NULL);
    }
    for (int i = 0; i < LEFT_TO_EXIT_MAX; i++)
        if (left_to_exit[i] == NULL) {
            left_to_exit[i] = k;
            return;
        }
}

static int open_clients(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                        const char *replay_id, const char *output_topic, bool writer, cue_err *err)
{
    cue_kafka *k = calloc(1, sizeof *k);
    if (k == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    k->cfg = cfg;
    k->h = *h;
    k->replay_id = replay_id;
    k->writer = writer;
    k->cpipe[0] = k->cpipe[1] = k->ppipe[0] = k->ppipe[1] = -1;
    char why[512];
    rd_kafka_conf_t *cc = NULL, *pc = NULL;
    if (kafka_pipe_open(k->cpipe, err) != 0 || kafka_pipe_open(k->ppipe, err) != 0) goto fail;
    cc = kafka_conf_new(k, CUE_KAFKA_CONSUMER, err);
    if (cc == NULL) goto fail;
    if (output_topic) {
        pc = kafka_conf_new(k, CUE_KAFKA_PRODUCER, err);
        if (pc == NULL) goto fail;
    }
    k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, why, sizeof why);
    if (k->consumer == NULL) {
        cue_err_set(err, CUE_ECONFIG, "kafka consumer: %s", why);
        goto fail;
    }
    cc = NULL; /* the client owns it now */
    rd_kafka_poll_set_consumer(k->consumer);
    k->cq = rd_kafka_queue_get_consumer(k->consumer);
    rd_kafka_queue_io_event_enable(k->cq, k->cpipe[1], "1", 1);
    if (output_topic) {
        k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, why, sizeof why);
        if (k->producer == NULL) {
            cue_err_set(err, CUE_ECONFIG, "kafka producer: %s", why);
            goto fail;
        }
        pc = NULL;
        char mmb[32];
        size_t mmb_len = sizeof mmb;
        k->message_max = 1000000;
        if (rd_kafka_conf_get(rd_kafka_conf(k->producer), "message.max.bytes", mmb, &mmb_len) ==
            RD_KAFKA_CONF_OK)
            k->message_max = (size_t)strtoull(mmb, NULL, 10);
        k->pq = rd_kafka_queue_get_main(k->producer);
        rd_kafka_queue_io_event_enable(k->pq, k->ppipe[1], "1", 1);
        if (k->transactional && kafka_txn_init(k, err) != 0) goto fail;
        k->output = rd_kafka_topic_new(k->producer, output_topic, NULL);
        if (replay_id == NULL) {
            k->dead = rd_kafka_topic_new(k->producer, cue_config_dead_letter_topic(cfg), NULL);
            k->decisions = rd_kafka_topic_new(k->producer, cue_config_decisions_topic(cfg), NULL);
        }
    }
    *out = k;
    return 0;
fail:
    if (cc) rd_kafka_conf_destroy(cc);
    if (pc) rd_kafka_conf_destroy(pc);
    cue_kafka_close(k, 0);
    return err ? err->code : CUE_ECONFIG;
}

static void quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {}

static void quiet_error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque) {}

/* One client made as the pipeline makes it, then destroyed at once: some
 * combinations of properties are refused only by rd_kafka_new. Its log is
 * silenced, since it may try a broker before it is destroyed. */
static int check_client(cue_kafka *k, int client, cue_err *err)
{
    rd_kafka_conf_t *conf = kafka_conf_new(k, client, err);
    if (conf == NULL) return CUE_ECONFIG;
    rd_kafka_conf_set_log_cb(conf, quiet_log_cb);
    rd_kafka_conf_set_error_cb(conf, quiet_error_cb);
    char why[512];
    rd_kafka_t *rk =
        rd_kafka_new(client == CUE_KAFKA_CONSUMER ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf,
                     why, sizeof why);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return cue_err_set(err, CUE_ECONFIG, "kafka %s: %s",
                           client == CUE_KAFKA_CONSUMER ? "consumer" : "producer", why);
    }
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return 0;
}

int cue_kafka_check(const cue_config *cfg, cue_err *err)
{
    /* The transactional.id is derived from the state directory at start-up
     * (runtime.c); a stand-in of the same shape checks everything else. */
    cue_config *c = malloc(sizeof *c);
    if (c == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    *c = *cfg;
    if (c->exactly_once && c->transactional_id[0] == '\0')
        snprintf(c->transactional_id, sizeof c->transactional_id, "%s-check", c->application_id);
    cue_kafka k = {.cfg = c};
    int rc = check_client(&k, CUE_KAFKA_CONSUMER, err);
    if (rc == 0) rc = check_client(&k, CUE_KAFKA_PRODUCER, err);
    free(c);
    return rc;
}

int cue_kafka_open(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h, cue_err *err)
{
    return open_clients(out, cfg, h, NULL, cfg->trigger_topic, false, err);
}

int cue_kafka_open_replay(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                          const char *replay_id, const char *output_topic, cue_err *err)
{
    CUE_ASSERT(replay_id != NULL);
    return open_clients(out, cfg, h, replay_id, output_topic, false, err);
}

int cue_kafka_open_changelog_writer(cue_kafka **out, const cue_config *cfg,
                                    const cue_kafka_handler *h, cue_err *err)
{
    CUE_ASSERT(!cfg->exactly_once || cfg->transactional_id[0] != '\0');
    return open_clients(out, cfg, h, "changelog-writer", cue_config_changelog_topic(cfg), true,
                        err);
}

void cue_kafka_close(cue_kafka *k, int64_t timeout_ms)
{
    if (k == NULL || k->kept) return; /* a kept one was closed already */
    k->closing = true;
    if (k->consumer) {
        if (timeout_ms > 0 && k->leave) k->leave(k, timeout_ms);
        for (int32_t p = 0; p < CUE_KAFKA_SPLIT_MAX; p++)
            kafka_split_close(k, p);
        if (k->cq) rd_kafka_queue_destroy(k->cq);
        if (k->subscribed && !k->assigned) {
            /* librdkafka 2.0.2 asserts when a cooperative-sticky member that
             * joined but never received an assignment is destroyed
             * (librdkafka issue #4312, fixed in 2.3.0): such a consumer is
             * left to the process's exit, which follows. Kept reachable. */
            k->kept = true;
            cue_log(CUE_LOG_INFO, "stopped before the group's first assignment", NULL);
        } else {
            rd_kafka_destroy_flags(k->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        }
    }
    if (k->producer) {
        if (timeout_ms > 0) rd_kafka_flush(k->producer, (int)timeout_ms);
        /* Whatever is still queued was never committed: the next run makes
         * it again, so it is dropped rather than waited for. */
        rd_kafka_purge(k->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(k->producer, 0);
        if (k->output) rd_kafka_topic_destroy(k->output);
        if (k->dead) rd_kafka_topic_destroy(k->dead);
        if (k->decisions) rd_kafka_topic_destroy(k->decisions);
        if (k->changelog) rd_kafka_topic_destroy(k->changelog);
        if (k->pq) rd_kafka_queue_destroy(k->pq);
        rd_kafka_destroy(k->producer);
    }
    free(k->changelog_next);
    k->changelog_next = NULL;
    free(k->batch);
    free(k->batch_view);
    k->batch = NULL;
    k->batch_view = NULL;
    k->batch_n = k->batch_cap = 0;
    if (k->shared) pthread_mutex_destroy(&k->produce_mu);
    k->shared = false;
    for (int i = 0; i < 2; i++) {
        if (k->ppipe[i] >= 0) close(k->ppipe[i]);
        k->ppipe[i] = -1;
    }
    if (k->kept) {
        keep_for_exit(k);
        return;
    }
    for (int i = 0; i < 2; i++)
        if (k->cpipe[i] >= 0) close(k->cpipe[i]);
    free(k);
}

const cue_kafka_stats *cue_kafka_stats_get(const cue_kafka *k)
{
    return &k->stats;
}
