/* The librdkafka adapter: clients built from the config, queues that wake the
 * loop through pipes, triggers and dead letters out, the mock cluster. */
#include "cuepoint/kafka.h"

#include "cuepoint/kafka_group.h"
#include "cuepoint/log.h"

#include "kafka_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cue_kafka {
    const cue_config *cfg;     /* borrowed */
    cue_kafka_handler h;       /* copied; ctx borrowed */
    rd_kafka_t *consumer;      /* owned */
    rd_kafka_t *producer;      /* owned */
    rd_kafka_queue_t *cq, *pq; /* owned references to the clients' queues */
    rd_kafka_topic_t *triggers, *dead, *decisions, *changelog;
    /* Per changelog partition: the offset after the last acknowledged record
     * (-1: none yet), and how many of its records are still in flight. */
    int64_t *changelog_next;
    int32_t changelog_parts;
    int cpipe[2], ppipe[2];
    size_t in_flight;
    bool fatal_raised;
    bool closing;    /* purged records' reports are expected, not failures */
    bool subscribed; /* the consumer joined (or is joining) the group */
    /* Exactly-once: the producer is transactional; a transaction is open
     * from the first record of a cycle to its commit or abort; a delivery
     * failed inside it (the commit will be refused: abort instead); the
     * producer was fenced (another one has this transactional.id). */
    bool transactional, txn_open, txn_failed, fenced;
    uint64_t txn_triggers; /* trigger records produced in the open transaction */
    /* cue_kafka_split_partitions: each assigned partition's records wait in
     * a queue of their own, read one head at a time by the caller. */
    bool split;
    rd_kafka_queue_t *partq[CUE_KAFKA_SPLIT_MAX];
    rd_kafka_message_t *head[CUE_KAFKA_SPLIT_MAX];
    cue_kafka_msg headmsg[CUE_KAFKA_SPLIT_MAX];
    bool assigned; /* ... and has received an assignment since */
    /* A replay's clients (cue_kafka_open_replay): no group, and the
     * replay's id on every record produced. NULL for the live pipeline. */
    const char *replay_id; /* borrowed */
    size_t message_max;    /* the producer's message.max.bytes */
    cue_kafka_stats stats;
};

/* A dead letter keeps the record's key up to this: a key longer than any user
 * id (CUE_USER_ID_BYTES_MAX) is garbage, and must not make the dead letter
 * too large to produce. */
#define DEAD_KEY_BYTES_MAX 4096
/* What a dead letter needs beside its key and value: the headers (the error
 * message is at most CUE_ERR_MSG_MAX) and the record's framing, with room. */
#define DEAD_OVERHEAD_BYTES 8192
/* A dead letter fits a broker's default max.message.bytes (1048588) too,
 * whatever the producer allows: one the broker refuses would, under
 * exactly-once, fail its transaction, and the record would be read again
 * and refused again for ever. */
#define DEAD_RECORD_BYTES_MAX 1000000

/* A consumer deliberately not destroyed (see cue_kafka_close); a global, so
 * that leak checkers see it as still reachable at exit. */
static rd_kafka_t *left_to_exit;

/* Opaque tags on produced records, so a delivery report knows what it was. */
enum { REC_TRIGGER = 1, REC_DEAD_LETTER = 2, REC_DECISION = 3, REC_CHANGELOG = 4 };

/* ---- configuration ----------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, cue_err *err)
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
static void plain_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_emit(rk, level, fac, buf);
}

/* The errors that say another producer took over this transactional.id. */
static bool is_fencing(rd_kafka_resp_err_t e)
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
        if (rk == k->producer && k->transactional && is_fencing(fe)) {
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

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                         rd_kafka_topic_partition_list_t *parts, void *opaque);

/* Defaults first, then the passthrough for this client, so a user's property wins. */
static rd_kafka_conf_t *conf_new(cue_kafka *k, int client, cue_err *err)
{
    const cue_config *c = k->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char n[64];
    int rc = conf_set(conf, "bootstrap.servers", c->bootstrap_servers, err);
    snprintf(n, sizeof n, "%s", client == CUE_KAFKA_CONSUMER ? "cuepoint-consumer" : "cuepoint");
    if (rc == 0) rc = conf_set(conf, "client.id", n, err);
    if (client == CUE_KAFKA_CONSUMER) {
        /* A replay reads outside the live group: it never subscribes (the
         * partitions are assigned) and never commits, under a group id of
         * its own because librdkafka's consumer queue needs one. */
        char group[CUE_NAME_BYTES_MAX + 160];
        snprintf(group, sizeof group, "%s%s%s", c->application_id, k->replay_id ? "-" : "",
                 k->replay_id ? k->replay_id : "");
        if (rc == 0) rc = conf_set(conf, "group.id", group, err);
        if (rc == 0 && k->replay_id) rc = conf_set(conf, "enable.partition.eof", "true", err);
        if (rc == 0) rc = conf_set(conf, "enable.auto.commit", "false", err);
        if (rc == 0) rc = conf_set(conf, "enable.auto.offset.store", "false", err);
        if (rc == 0) rc = conf_set(conf, "auto.offset.reset", "earliest", err);
        if (rc == 0)
            rc = conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err);
        if (rc == 0) rc = conf_set(conf, "fetch.wait.max.ms", "100", err);
        /* librdkafka 2.0.2 weighs each partition's prefetch against the one
         * consumer queue all partitions share: with the default (100000), one
         * fetch over many partitions stops them all until the next wake-up,
         * and the pipeline idles half the time (bench/pipeline.sh). The
         * queue stays bounded by queued.max.messages.kbytes (64 MiB). */
        if (rc == 0) rc = conf_set(conf, "queued.min.messages", "1000000", err);
    } else {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)c->delivery_timeout_ms);
        if (rc == 0) rc = conf_set(conf, "enable.idempotence", "true", err);
        if (rc == 0) rc = conf_set(conf, "acks", "all", err);
        if (rc == 0) rc = conf_set(conf, "message.timeout.ms", v, err);
        if (rc == 0) rc = conf_set(conf, "linger.ms", "5", err);
        if (rc == 0) rc = conf_set(conf, "compression.type", "lz4", err);
        /* Room for a dead letter that carries a whole maximum-size event. */
        snprintf(v, sizeof v, "%zu", c->event_bytes_max + 64 * 1024);
        if (rc == 0 && c->event_bytes_max + 64 * 1024 > 1000000)
            rc = conf_set(conf, "message.max.bytes", v, err);
    }
    for (size_t i = 0; rc == 0 && i < c->kafka_len; i++)
        if (c->kafka[i].clients & client)
            rc = conf_set(conf, cue_config_kafka_key(c, i), cue_config_kafka_value(c, i), err);
    /* Exactly-once reads only committed records (the input and, for a
     * restore, the changelog), whatever the passthrough says: after it. The
     * pipeline's producer (not a replay's) is transactional, which implies
     * enable.idempotence. */
    if (rc == 0 && c->exactly_once && client == CUE_KAFKA_CONSUMER)
        rc = conf_set(conf, "isolation.level", "read_committed", err);
    if (rc == 0 && client == CUE_KAFKA_CONSUMER && k->h.out_of_range)
        rc = conf_set(conf, "auto.offset.reset", "error", err);
    if (rc == 0 && c->exactly_once && client == CUE_KAFKA_PRODUCER && k->replay_id == NULL) {
        CUE_ASSERT(c->transactional_id[0] != '\0'); /* the runtime derives it */
        rc = conf_set(conf, "transactional.id", c->transactional_id, err);
        /* librdkafka wants a record's delivery timeout within its
         * transaction's: delivery.timeout.ms bounds both. */
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)c->delivery_timeout_ms);
        if (rc == 0) rc = conf_set(conf, "transaction.timeout.ms", v, err);
        k->transactional = rc == 0;
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (client == CUE_KAFKA_CONSUMER)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    else
        rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
    return conf;
}

static int pipe_open(int fds[2], cue_err *err)
{
    if (pipe(fds) != 0)
        return cue_err_set(err, CUE_EIO, "cannot create a pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static int txn_error(cue_kafka *k, rd_kafka_error_t *e, const char *what, cue_err *err);

/* Registers the transactional.id with its coordinator: this fences any older
 * producer with the same id and aborts the transaction it left open, so a
 * restart never waits for transaction.timeout.ms. */
static int txn_init(cue_kafka *k, cue_err *err)
{
    rd_kafka_error_t *e = rd_kafka_init_transactions(k->producer, (int)k->cfg->startup_timeout_ms);
    if (e) return txn_error(k, e, "init_transactions", err);
    cue_log(CUE_LOG_INFO, "transactional producer ready", "s:transactional_id",
            k->cfg->transactional_id, NULL);
    return 0;
}

static int open_clients(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                        const char *replay_id, const char *output_topic, cue_err *err)
{
    cue_kafka *k = calloc(1, sizeof *k);
    if (k == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    k->cfg = cfg;
    k->h = *h;
    k->replay_id = replay_id;
    k->cpipe[0] = k->cpipe[1] = k->ppipe[0] = k->ppipe[1] = -1;
    char why[512];
    rd_kafka_conf_t *cc = NULL, *pc = NULL;
    if (pipe_open(k->cpipe, err) != 0 || pipe_open(k->ppipe, err) != 0) goto fail;
    cc = conf_new(k, CUE_KAFKA_CONSUMER, err);
    if (cc == NULL) goto fail;
    if (output_topic) {
        pc = conf_new(k, CUE_KAFKA_PRODUCER, err);
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
        if (k->transactional && txn_init(k, err) != 0) goto fail;
        k->triggers = rd_kafka_topic_new(k->producer, output_topic, NULL);
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
    rd_kafka_conf_t *conf = conf_new(k, client, err);
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
    return open_clients(out, cfg, h, NULL, cfg->trigger_topic, err);
}

int cue_kafka_open_replay(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                          const char *replay_id, const char *output_topic, cue_err *err)
{
    CUE_ASSERT(replay_id != NULL);
    return open_clients(out, cfg, h, replay_id, output_topic, err);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void parts_of(const rd_kafka_topic_partition_list_t *l, int32_t *out, size_t *n)
{
    *n = 0;
    for (int i = 0; i < l->cnt; i++)
        out[(*n)++] = l->elems[i].partition;
}

/* A rebalance met while leaving: the handler hears of a revocation as usual
 * (the runtime has nothing left to commit by then), and either kind is
 * acknowledged so the close can finish. */
static void acknowledge_rebalance(cue_kafka *k, rd_kafka_event_t *ev)
{
    rd_kafka_t *rk = k->consumer;
    const rd_kafka_topic_partition_list_t *parts = rd_kafka_event_topic_partition_list(ev);
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
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
static void consumer_leave(cue_kafka *k, int64_t timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->consumer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(k->consumer, q);
    if (e) {
        rd_kafka_error_destroy(e);
    } else {
        int64_t until = mono_ms() + timeout_ms;
        while (!rd_kafka_consumer_closed(k->consumer) && mono_ms() < until) {
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

static void split_close(cue_kafka *k, int32_t p);

void cue_kafka_close(cue_kafka *k, int64_t timeout_ms)
{
    if (k == NULL) return;
    k->closing = true;
    if (k->consumer) {
        if (timeout_ms > 0 && k->replay_id == NULL) consumer_leave(k, timeout_ms);
        for (int32_t p = 0; p < CUE_KAFKA_SPLIT_MAX; p++)
            split_close(k, p);
        if (k->cq) rd_kafka_queue_destroy(k->cq);
        if (k->subscribed && !k->assigned) {
            /* librdkafka 2.0.2 asserts when a cooperative-sticky member that
             * joined but never received an assignment is destroyed
             * (librdkafka issue #4312, fixed in 2.3.0): such a consumer is
             * left to the process's exit, which follows. Kept reachable. */
            left_to_exit = k->consumer;
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
        if (k->triggers) rd_kafka_topic_destroy(k->triggers);
        if (k->dead) rd_kafka_topic_destroy(k->dead);
        if (k->decisions) rd_kafka_topic_destroy(k->decisions);
        if (k->changelog) rd_kafka_topic_destroy(k->changelog);
        if (k->pq) rd_kafka_queue_destroy(k->pq);
        rd_kafka_destroy(k->producer);
    }
    free(k->changelog_next);
    for (int i = 0; i < 2; i++) {
        if (k->cpipe[i] >= 0) close(k->cpipe[i]);
        if (k->ppipe[i] >= 0) close(k->ppipe[i]);
    }
    free(k);
}

/* ---- start-up ---------------------------------------------------------- */

int cue_kafka_wait_ready(cue_kafka *k, int64_t timeout_ms, int32_t *partitions, cue_err *err)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(k->consumer, k->cfg->input_topic, NULL);
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
        rc = cue_err_set(err, CUE_ENOTFOUND, "input topic %s: %s", k->cfg->input_topic,
                         md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not in metadata");
    else
        *partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return rc;
}

int cue_kafka_topic_partitions(cue_kafka *k, const char *topic, bool auto_create,
                               int64_t timeout_ms, int32_t *n, cue_err *err)
{
    /* The producer may have the cluster create the topic (allow.auto.create.topics). */
    rd_kafka_t *rk = auto_create && k->producer ? k->producer : k->consumer;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, (int)timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return cue_err_set(err, CUE_EUNAVAILABLE, "metadata for %s: %s", topic,
                           rd_kafka_err2str(e));
    *n = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR
             ? md->topics[0].partition_cnt
             : 0;
    rd_kafka_metadata_destroy(md);
    return 0;
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

int cue_kafka_subscribe(cue_kafka *k, cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    k->subscribed = e == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e) return cue_err_set(err, CUE_EUNAVAILABLE, "subscribe: %s", rd_kafka_err2str(e));
    return 0;
}

/* ---- the loop's side --------------------------------------------------- */

int cue_kafka_consumer_fd(const cue_kafka *k)
{
    return k->cpipe[0];
}
int cue_kafka_producer_fd(const cue_kafka *k)
{
    return k->ppipe[0];
}

void cue_kafka_drain_fd(int fd)
{
    char b[256];
    while (read(fd, b, sizeof b) > 0) {}
}

/* A record as the handler sees it; everything borrowed from `m`. */
static cue_kafka_msg msg_of(const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tt;
    return (cue_kafka_msg){.topic = rd_kafka_topic_name(m->rkt),
                           .partition = m->partition,
                           .offset = m->offset,
                           .timestamp_ms = rd_kafka_message_timestamp(m, &tt),
                           .key = m->key,
                           .key_len = m->key_len,
                           .value = m->payload ? m->payload : "",
                           .value_len = m->len};
}

static void split_open(cue_kafka *k, int32_t p)
{
    if (p < 0 || p >= CUE_KAFKA_SPLIT_MAX || k->partq[p]) return;
    k->partq[p] = rd_kafka_queue_get_partition(k->consumer, k->cfg->input_topic, p);
    if (k->partq[p] == NULL) return;
    rd_kafka_queue_forward(k->partq[p], NULL); /* its records stay here */
    rd_kafka_queue_io_event_enable(k->partq[p], k->cpipe[1], "1", 1);
}

static void split_close(cue_kafka *k, int32_t p)
{
    if (p < 0 || p >= CUE_KAFKA_SPLIT_MAX) return;
    if (k->head[p]) rd_kafka_message_destroy(k->head[p]);
    k->head[p] = NULL;
    if (k->partq[p]) rd_kafka_queue_destroy(k->partq[p]);
    k->partq[p] = NULL;
}

void cue_kafka_split_partitions(cue_kafka *k)
{
    k->split = true;
}

const cue_kafka_msg *cue_kafka_peek(cue_kafka *k, int32_t p)
{
    if (p < 0 || p >= CUE_KAFKA_SPLIT_MAX || k->partq[p] == NULL) return NULL;
    while (k->head[p] == NULL) {
        rd_kafka_message_t *m = rd_kafka_consume_queue(k->partq[p], 0);
        if (m == NULL) return NULL;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                k->stats.consumer_errors++;
                cue_log(CUE_LOG_WARN, rd_kafka_message_errstr(m), "s:topic", k->cfg->input_topic,
                        "i:partition", (int64_t)p, "s:error", rd_kafka_err2name(m->err), NULL);
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        k->head[p] = m;
        k->headmsg[p] = msg_of(m);
    }
    return &k->headmsg[p];
}

void cue_kafka_take(cue_kafka *k, int32_t p)
{
    if (p < 0 || p >= CUE_KAFKA_SPLIT_MAX || k->head[p] == NULL) return;
    rd_kafka_message_destroy(k->head[p]);
    k->head[p] = NULL;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    cue_kafka *k = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    size_t n = 0;
    int32_t *ids = calloc((size_t)parts->cnt + 1, sizeof *ids);
    int64_t *start = calloc((size_t)parts->cnt + 1, sizeof *start);
    CUE_ASSERT(ids && start); /* rebalances are rare; a failed small calloc is not survivable */
    parts_of(parts, ids, &n);
    if (code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        k->assigned = true;
        int rc = k->h.assigned(ids, start, n, k->h.ctx);
        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset =
                start[i] == CUE_KAFKA_OFFSET_GROUP || start[i] == CUE_KAFKA_OFFSET_HOLD
                    ? RD_KAFKA_OFFSET_INVALID
                    : start[i];
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
            for (int i = 0; i < parts->cnt; i++)
                if (start[i] == CUE_KAFKA_OFFSET_HOLD)
                    cue_kafka_pause(k, parts->elems[i].partition);
            for (int i = 0; k->split && i < parts->cnt; i++)
                split_open(k, parts->elems[i].partition);
        }
    } else {
        bool lost = rd_kafka_assignment_lost(rk);
        k->h.revoked(ids, n, lost, k->h.ctx);
        for (size_t i = 0; k->split && i < n; i++)
            split_close(k, ids[i]);
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

size_t cue_kafka_consume(cue_kafka *k, size_t max)
{
    size_t served = 0;
    while (served < max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
        if (m == NULL) break;
        served++;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (k->h.end) k->h.end(m->partition, m->offset, k->h.ctx);
        } else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && k->h.out_of_range) {
            cue_log(CUE_LOG_WARN, "position no longer in the log", "s:topic",
                    m->rkt ? rd_kafka_topic_name(m->rkt) : "", "i:partition", (int64_t)m->partition,
                    "i:offset", m->offset, "s:error", rd_kafka_message_errstr(m), NULL);
            k->h.out_of_range(m->partition, m->offset, k->h.ctx);
        } else if (m->err) {
            k->stats.consumer_errors++;
            cue_log(CUE_LOG_WARN, rd_kafka_message_errstr(m), "s:topic",
                    m->rkt ? rd_kafka_topic_name(m->rkt) : "", "i:partition", (int64_t)m->partition,
                    "s:error", rd_kafka_err2name(m->err), NULL);
        } else {
            cue_kafka_msg msg = msg_of(m);
            k->h.message(&msg, k->h.ctx);
        }
        rd_kafka_message_destroy(m);
    }
    return served;
}

void cue_kafka_serve_producer(cue_kafka *k)
{
    if (k->producer) rd_kafka_poll(k->producer, 0);
}

size_t cue_kafka_in_flight(const cue_kafka *k)
{
    return k->in_flight;
}

int cue_kafka_flush(cue_kafka *k, int64_t timeout_ms, cue_err *err)
{
    if (k->producer == NULL) return 0;
    rd_kafka_flush(k->producer, (int)timeout_ms);
    rd_kafka_poll(k->producer, 0);
    if (k->fatal_raised) return cue_err_set(err, CUE_EIO, "a delivery failed");
    if (k->in_flight > 0)
        return cue_err_set(err, CUE_EUNAVAILABLE, "%zu records not yet acknowledged after %lld ms",
                           k->in_flight, (long long)timeout_ms);
    return 0;
}

/* ---- producing --------------------------------------------------------- */

/* Opens the cycle's transaction before its first record. Local: no broker is
 * asked, so it costs nothing on the loop. A failure here is the producer's
 * fatal state (fenced), raised through the handler. */
static int txn_begin(cue_kafka *k)
{
    rd_kafka_error_t *e = rd_kafka_begin_transaction(k->producer);
    if (e == NULL) {
        k->txn_open = true;
        k->txn_triggers = 0;
        return 0;
    }
    cue_err err = {0};
    txn_error(k, e, "begin_transaction", &err);
    if (!k->fatal_raised && k->h.fatal) {
        k->fatal_raised = true;
        k->h.fatal(err.msg, k->h.ctx);
    }
    return CUE_EIO;
}

/* Produces, waiting while the local queue is full: backpressure on the
 * consumer side instead of unbounded memory. */
static int produce_to(cue_kafka *k, rd_kafka_topic_t *topic, int32_t partition, int tag,
                      const char *key, size_t key_len, const char *val, size_t len,
                      rd_kafka_headers_t *hdrs, int64_t ts_ms)
{
    if (k->transactional && !k->txn_open && txn_begin(k) != 0) {
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return CUE_EIO;
    }
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(k->producer, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)val, len),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_TIMESTAMP(ts_ms > 0 ? ts_ms : 0),
                              RD_KAFKA_V_OPAQUE((void *)(intptr_t)tag), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            k->in_flight++;
            k->stats.produced++;
            if (tag == REC_TRIGGER) k->txn_triggers++;
            return 0;
        }
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && tag == REC_DEAD_LETTER &&
            (len > 65536 || key_len > 256)) {
            /* Still too large for this producer (its limit is not the one
             * read at start?): cut further rather than stop, also inside a
             * transaction, which the record has not failed yet. */
            len = len > 65536 ? 65536 : len;
            key_len = key_len > 256 ? 256 : key_len;
            if (hdrs) rd_kafka_header_add(hdrs, "cuepoint.errors.truncated", -1, "true", -1);
            continue;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL && k->transactional &&
            rd_kafka_fatal_error(k->producer, NULL, 0) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* The transaction failed (an abortable error): the record is
             * lost with it, and the cycle's commit aborts and rolls back. */
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            if (!k->txn_failed)
                cue_log(CUE_LOG_WARN, "the transaction failed; it will be aborted", "s:topic",
                        rd_kafka_topic_name(topic), "s:error", rd_kafka_err2str(e), NULL);
            k->txn_failed = true;
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            cue_log(CUE_LOG_ERROR, "produce failed", "s:topic", rd_kafka_topic_name(topic),
                    "s:error", rd_kafka_err2str(e), NULL);
            if (!k->fatal_raised && k->h.fatal) {
                k->fatal_raised = true;
                k->h.fatal(rd_kafka_err2str(e), k->h.ctx);
            }
            return CUE_EIO;
        }
        k->stats.produce_retries_full++;
        rd_kafka_poll(k->producer, 100);
    }
}

static int produce(cue_kafka *k, rd_kafka_topic_t *topic, int tag, const char *key, size_t key_len,
                   const char *val, size_t len, rd_kafka_headers_t *hdrs, int64_t ts_ms)
{
    return produce_to(k, topic, RD_KAFKA_PARTITION_UA, tag, key, key_len, val, len, hdrs, ts_ms);
}

int cue_kafka_changelog_open(cue_kafka *k, int32_t partitions, cue_err *err)
{
    k->changelog_next = malloc((size_t)partitions * sizeof *k->changelog_next);
    if (k->changelog_next == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    for (int32_t i = 0; i < partitions; i++)
        k->changelog_next[i] = -1;
    k->changelog_parts = partitions;
    k->changelog = rd_kafka_topic_new(k->producer, cue_config_changelog_topic(k->cfg), NULL);
    return 0;
}

int cue_kafka_produce_changelog(cue_kafka *k, int32_t partition, const char *key, size_t key_len,
                                const void *val, size_t len)
{
    /* A tombstone is a record with a key and no value: compaction then
     * drops the key. The empty key is the partition's meta record. */
    return produce_to(k, k->changelog, partition, REC_CHANGELOG, key, key_len, val, len, NULL, 0);
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

int64_t cue_kafka_changelog_next(const cue_kafka *k, int32_t partition)
{
    return partition >= 0 && partition < k->changelog_parts ? k->changelog_next[partition] : -1;
}

void cue_kafka_changelog_forget(cue_kafka *k, int32_t partition)
{
    if (partition >= 0 && partition < k->changelog_parts) k->changelog_next[partition] = -1;
}

int cue_kafka_produce_trigger(cue_kafka *k, const cue_trigger *t, const char *rec, size_t len)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "ce_id", -1, t->id, -1);
    rd_kafka_header_add(h, "ce_type", -1, t->name, -1);
    rd_kafka_header_add(h, "content-type", -1, "application/cloudevents+json", -1);
    if (k->replay_id) rd_kafka_header_add(h, "cuepoint-replay", -1, k->replay_id, -1);
    return produce(k, k->triggers, REC_TRIGGER, t->user->id, t->user->id_len, rec, len, h,
                   t->time_ms);
}

int cue_kafka_produce_dead_letter(cue_kafka *k, const cue_dead_letter *dl, const cue_kafka_msg *src)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, src->partition);
    snprintf(off, sizeof off, "%" PRId64, src->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    rd_kafka_header_add(h, "__streams.errors.exception", -1, cue_reason_name(dl->reason), -1);
    rd_kafka_header_add(h, "__streams.errors.message", -1, dl->message ? dl->message : "", -1);
    rd_kafka_header_add(h, "__streams.errors.topic", -1, src->topic, -1);
    rd_kafka_header_add(h, "__streams.errors.partition", -1, part, -1);
    rd_kafka_header_add(h, "__streams.errors.offset", -1, off, -1);
    if (src->timestamp_ms >= 0) {
        char ts[24];
        snprintf(ts, sizeof ts, "%" PRId64, src->timestamp_ms);
        rd_kafka_header_add(h, "cuepoint.errors.timestamp", -1, ts, -1);
    }
    /* A dead letter must not stop the pipeline: one that would not fit the
     * producer's message.max.bytes (a record over event.max.bytes, a key of
     * a megabyte) is cut to fit, marked, with the sizes it had. */
    size_t key_len = src->key_len, len = src->value_len;
    if (key_len > DEAD_KEY_BYTES_MAX) key_len = DEAD_KEY_BYTES_MAX;
    size_t limit = k->message_max < DEAD_RECORD_BYTES_MAX ? k->message_max : DEAD_RECORD_BYTES_MAX;
    size_t room = limit > key_len + DEAD_OVERHEAD_BYTES ? limit - key_len - DEAD_OVERHEAD_BYTES : 0;
    if (len > room) len = room;
    if (len > k->cfg->event_bytes_max) len = k->cfg->event_bytes_max;
    if (len < src->value_len || key_len < src->key_len) {
        char n[24];
        rd_kafka_header_add(h, "cuepoint.errors.truncated", -1, "true", -1);
        snprintf(n, sizeof n, "%zu", src->value_len);
        rd_kafka_header_add(h, "cuepoint.errors.value.bytes", -1, n, -1);
        snprintf(n, sizeof n, "%zu", src->key_len);
        rd_kafka_header_add(h, "cuepoint.errors.key.bytes", -1, n, -1);
        k->stats.dead_letters_truncated++;
    }
    return produce(k, k->dead, REC_DEAD_LETTER, src->key, key_len, src->value, len, h,
                   src->timestamp_ms);
}

int cue_kafka_produce_keyed(cue_kafka *k, const char *key, size_t key_len, const char *val,
                            size_t len, int64_t ts_ms)
{
    return produce(k, k->triggers, REC_TRIGGER, key, key_len, val, len, NULL, ts_ms);
}

int cue_kafka_produce_at(cue_kafka *k, int32_t partition, const char *key, size_t key_len,
                         const char *val, size_t len)
{
    return produce_to(k, k->triggers, partition, REC_TRIGGER, key, key_len, val, len, NULL, 0);
}

int cue_kafka_produce_decision(cue_kafka *k, const char *key, size_t key_len, const char *rec,
                               size_t len)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
    return produce(k, k->decisions, REC_DECISION, key, key_len, rec, len, h, 0);
}

/* A dead letter the broker refused for its size goes again with its value cut
 * to 64 KiB and a header saying so: nothing disappears, and the offset may
 * still not pass it until the copy is acknowledged. */
static bool retry_truncated(cue_kafka *k, const rd_kafka_message_t *m)
{
    if ((intptr_t)m->_private != REC_DEAD_LETTER ||
        (m->err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
         m->err != RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE))
        return false;
    if (m->len <= 65536 && m->key_len <= 256) return false; /* cut already: it cannot shrink */
    rd_kafka_headers_t *orig = NULL, *h = NULL;
    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
        h = rd_kafka_headers_copy(orig);
    else
        h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "cuepoint.errors.truncated", -1, "true", -1);
    size_t len = m->len < 65536 ? m->len : 65536;
    size_t key_len = m->key_len < 256 ? m->key_len : 256;
    k->stats.dead_letters_truncated++;
    return produce(k, k->dead, REC_DEAD_LETTER, m->key, key_len, m->payload, len, h, 0) == 0;
}

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    cue_kafka *k = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && (intptr_t)m->_private == REC_CHANGELOG &&
        m->partition >= 0 && m->partition < k->changelog_parts &&
        m->offset + 1 > k->changelog_next[m->partition])
        k->changelog_next[m->partition] = m->offset + 1;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || retry_truncated(k, m)) {
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) k->stats.delivered++;
        CUE_ASSERT(k->in_flight > 0);
        k->in_flight--;
        return;
    }
    k->in_flight--;
    if (k->closing) return;
    if (k->transactional) {
        /* Inside a transaction a failed record fails the transaction: the
         * commit aborts it and the tasks roll back, so nothing after the
         * record is committed either. Records purged by an abort are
         * expected. */
        if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
            return;
        k->stats.delivery_failures++;
        k->txn_failed = true;
        cue_log(CUE_LOG_WARN, "delivery failed inside a transaction; it will be aborted", "s:topic",
                rd_kafka_topic_name(m->rkt), "i:partition", (int64_t)m->partition, "s:error",
                rd_kafka_err2str(m->err), NULL);
        return;
    }
    k->stats.delivery_failures++;
    cue_log(CUE_LOG_ERROR, "delivery failed", "s:topic", rd_kafka_topic_name(m->rkt), "i:partition",
            (int64_t)m->partition, "s:error", rd_kafka_err2str(m->err), NULL);
    /* The idempotent producer has retried until delivery.timeout.ms: the
     * record is lost to this process, so the offsets behind it must not be
     * committed. The caller stops without committing; a restart makes it again. */
    if (!k->fatal_raised && k->h.fatal) {
        k->fatal_raised = true;
        k->h.fatal(rd_kafka_err2str(m->err), k->h.ctx);
    }
    (void)rk;
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

/* ---- exactly-once ----------------------------------------------------- */

/* Translates (and frees) a transactional call's error: fencing and other
 * fatal errors, errors that need an abort, the rest. */
static int txn_error(cue_kafka *k, rd_kafka_error_t *e, const char *what, cue_err *err)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    bool fatal = rd_kafka_error_is_fatal(e);
    int rc = fatal && (is_fencing(code) || k->fenced) ? CUE_EFENCED
             : rd_kafka_error_txn_requires_abort(e)   ? CUE_EABORTED
                                                      : CUE_EUNAVAILABLE;
    if (rc == CUE_EFENCED && !k->fenced) {
        k->fenced = true;
        k->stats.txn_fenced++;
    }
    cue_err_set(err, rc, "%s: %s (%s)", what, rd_kafka_error_string(e), rd_kafka_err2name(code));
    rd_kafka_error_destroy(e);
    return rc;
}

/* A transactional call is retried while librdkafka says it may, within one
 * deadline for the whole of it (the caller's timeout): a broker that stays
 * away holds the loop no longer than that, and the caller then stops
 * without committing. */
static int64_t txn_left_ms(int64_t end_ms)
{
    int64_t left = end_ms - mono_ms();
    return left > 0 ? left : 0;
}

int cue_kafka_txn_abort(cue_kafka *k, int64_t timeout_ms, cue_err *err)
{
    if (!k->transactional || !k->txn_open) return 0;
    rd_kafka_error_t *e = NULL;
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        e = rd_kafka_abort_transaction(k->producer, (int)txn_left_ms(end));
        if (e == NULL || !rd_kafka_error_is_retriable(e) || txn_left_ms(end) == 0) break;
        rd_kafka_error_destroy(e);
    }
    /* The purged records' reports, so in_flight is right again. */
    rd_kafka_poll(k->producer, 0);
    if (e) return txn_error(k, e, "abort_transaction", err);
    k->txn_open = false;
    k->txn_failed = false;
    k->stats.txn_aborted++;
    k->stats.txn_aborted_triggers += k->txn_triggers;
    return 0;
}

static int txn_offsets(cue_kafka *k, const int32_t *parts, const int64_t *offsets,
                       const char *const *meta, size_t n, int64_t end_ms, cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *t =
            rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, parts[i]);
        t->offset = offsets[i];
        if (meta && meta[i] && *meta[i]) {
            /* The list owns and frees its elements' metadata. */
            t->metadata_size = strlen(meta[i]);
            t->metadata = malloc(t->metadata_size);
            CUE_ASSERT(t->metadata != NULL);
            memcpy(t->metadata, meta[i], t->metadata_size);
        }
    }
    /* The group's generation goes with the offsets: a member the group has
     * since replaced (a zombie) is refused by the coordinator. */
    rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(k->consumer);
    rd_kafka_error_t *e = NULL;
    for (;;) {
        e = rd_kafka_send_offsets_to_transaction(k->producer, l, gm, (int)txn_left_ms(end_ms));
        if (e == NULL || !rd_kafka_error_is_retriable(e) || txn_left_ms(end_ms) == 0) break;
        rd_kafka_error_destroy(e);
    }
    rd_kafka_consumer_group_metadata_destroy(gm);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? txn_error(k, e, "send_offsets_to_transaction", err) : 0;
}

int cue_kafka_txn_commit(cue_kafka *k, const int32_t *parts, const int64_t *offsets,
                         const char *const *meta, size_t n, int64_t timeout_ms, cue_err *err)
{
    CUE_ASSERT(k->transactional);
    if (!k->txn_open && n == 0) return 0;
    if (!k->txn_open && txn_begin(k) != 0)
        return cue_err_set(err, k->fenced ? CUE_EFENCED : CUE_EUNAVAILABLE,
                           "begin_transaction failed");
    int rc = 0;
    if (k->txn_failed) {
        rc = cue_err_set(err, CUE_EABORTED, "a record of the transaction was not delivered");
    } else {
        int64_t end = mono_ms() + timeout_ms; /* offsets and commit share it */
        if (n > 0) rc = txn_offsets(k, parts, offsets, meta, n, end, err);
        rd_kafka_error_t *e = NULL;
        while (rc == 0) {
            e = rd_kafka_commit_transaction(k->producer, (int)txn_left_ms(end));
            if (e == NULL || !rd_kafka_error_is_retriable(e) || txn_left_ms(end) == 0) break;
            rd_kafka_error_destroy(e);
            e = NULL;
        }
        if (rc == 0 && e) rc = txn_error(k, e, "commit_transaction", err);
        rd_kafka_poll(k->producer, 0); /* delivery reports, changelog positions */
    }
    if (rc == 0) {
        k->txn_open = false;
        k->txn_failed = false;
        k->stats.txn_committed++;
        return 0;
    }
    if (rc != CUE_EABORTED) return rc;
    cue_err aerr = {0};
    int arc = cue_kafka_txn_abort(k, timeout_ms, &aerr);
    if (arc != 0) return cue_err_set(err, arc, "%s; then %s", err ? err->msg : "", aerr.msg);
    return CUE_EABORTED;
}

bool cue_kafka_fenced(const cue_kafka *k)
{
    return k->fenced;
}

int64_t cue_kafka_position(cue_kafka *k, int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition);
    int64_t pos = -1;
    if (rd_kafka_position(k->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].offset >= 0)
        pos = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return pos;
}

int64_t cue_kafka_high_watermark(cue_kafka *k, int32_t partition)
{
    int64_t lo = -1, hi = -1;
    if (rd_kafka_get_watermark_offsets(k->consumer, k->cfg->input_topic, partition, &lo, &hi) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return hi;
}

/* ---- a replay's reads -------------------------------------------------- */

int cue_kafka_assign(cue_kafka *k, const int32_t *parts, const int64_t *start, size_t n,
                     cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, parts[i])->offset = start[i];
    rd_kafka_resp_err_t e = rd_kafka_assign(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    k->assigned = e == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e) return cue_err_set(err, CUE_EUNAVAILABLE, "assign: %s", rd_kafka_err2str(e));
    return 0;
}

void cue_kafka_pause(cue_kafka *k, int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition);
    rd_kafka_pause_partitions(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

int cue_kafka_assign_one(cue_kafka *k, int32_t partition, int64_t offset, cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_incremental_assign(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e == NULL) return 0;
    int rc = cue_err_set(err, CUE_EUNAVAILABLE, "%s [%d]: assign: %s", k->cfg->input_topic,
                         (int)partition, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return rc;
}

void cue_kafka_unassign_one(cue_kafka *k, int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition);
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(k->consumer, l);
    if (e) rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(l);
}

void cue_kafka_seek_resume(cue_kafka *k, int32_t partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition)->offset =
        offset > 0 ? offset : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(k->consumer, l, 0);
    if (e) {
        cue_log(CUE_LOG_WARN, "seek failed", "s:topic", k->cfg->input_topic, "i:partition",
                (int64_t)partition, "s:error", rd_kafka_error_string(e), NULL);
        rd_kafka_error_destroy(e);
    }
    rd_kafka_resume_partitions(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

int cue_kafka_watermarks(cue_kafka *k, int32_t partition, int64_t timeout_ms, int64_t *low,
                         int64_t *high, cue_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(k->consumer, k->cfg->input_topic,
                                                             partition, low, high, (int)timeout_ms);
    if (e)
        return cue_err_set(err, CUE_EUNAVAILABLE, "%s [%d]: watermarks: %s", k->cfg->input_topic,
                           (int)partition, rd_kafka_err2str(e));
    return 0;
}

int cue_kafka_offset_for_time(cue_kafka *k, int32_t partition, int64_t ts_ms, int64_t timeout_ms,
                              int64_t *offset, cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition)->offset = ts_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(k->consumer, l, (int)timeout_ms);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = l->elems[0].err;
    *offset = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return cue_err_set(err, CUE_EUNAVAILABLE, "%s [%d]: offsets for time %lld: %s",
                           k->cfg->input_topic, (int)partition, (long long)ts_ms,
                           rd_kafka_err2str(e));
    return 0;
}

int cue_kafka_partitioner_find(const char *name)
{
    static const char *const names[] = {"consistent_random", "consistent",   "murmur2_random",
                                        "murmur2",           "fnv1a_random", "fnv1a"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (strcmp(name, names[i]) == 0) return i / 2;
    return -1;
}

int32_t cue_kafka_partition_of(int partitioner, const char *key, size_t key_len, int32_t n)
{
    /* The *_random variants differ only for records without a key: the
     * caller puts those in partition 0 rather than a random one. The topic
     * handle is not used by these three. */
    if (key_len == 0 || n <= 1) return 0;
    switch (partitioner) {
    case 1: return rd_kafka_msg_partitioner_murmur2(NULL, key, key_len, n, NULL, NULL);
    case 2: return rd_kafka_msg_partitioner_fnv1a(NULL, key, key_len, n, NULL, NULL);
    default: return rd_kafka_msg_partitioner_consistent(NULL, key, key_len, n, NULL, NULL);
    }
}

const cue_kafka_stats *cue_kafka_stats_get(const cue_kafka *k)
{
    return &k->stats;
}

/* ---- the mock cluster -------------------------------------------------- */

struct cue_kafka_mock {
    rd_kafka_t *rk; /* owned: the handle the mock cluster lives in */
    rd_kafka_mock_cluster_t *mc;
};

int cue_kafka_mock_start(cue_kafka_mock **out, int brokers, cue_err *err)
{
    char why[512];
    cue_kafka_mock *m = calloc(1, sizeof *m);
    if (m == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, plain_log_cb);
    rd_kafka_conf_set(conf, "client.id", "cuepoint-mock", why, sizeof why);
    /* The handle only hosts the cluster; its own "no bootstrap.servers"
     * notice would only confuse. */
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (m->rk == NULL) {
        free(m);
        return cue_err_set(err, CUE_EIO, "mock cluster: %s", why);
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (m->mc == NULL) {
        rd_kafka_destroy(m->rk);
        free(m);
        return cue_err_set(err, CUE_EIO, "mock cluster: could not start %d brokers", brokers);
    }
    *out = m;
    return 0;
}

void cue_kafka_mock_stop(cue_kafka_mock *m)
{
    if (m == NULL) return;
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
}

const char *cue_kafka_mock_bootstraps(const cue_kafka_mock *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->mc);
}

int cue_kafka_mock_topic_create(cue_kafka_mock *m, const char *topic, int partitions, cue_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->mc, topic, partitions, 1);
    if (e) return cue_err_set(err, CUE_EIO, "mock topic %s: %s", topic, rd_kafka_err2str(e));
    return 0;
}

/* The request types a test may want to fail, by their protocol names. */
static const struct {
    const char *name;
    int16_t key;
} mock_apis[] = {{"Produce", 0},
                 {"Fetch", 1},
                 {"OffsetCommit", 8},
                 {"InitProducerId", 22},
                 {"AddPartitionsToTxn", 24},
                 {"AddOffsetsToTxn", 25},
                 {"EndTxn", 26},
                 {"TxnOffsetCommit", 28}};

/* "errors API ERROR N": the next N requests of API get ERROR. */
static int mock_errors(cue_kafka_mock *m, const char *api, const char *error, int n,
                       const char *line, cue_err *err)
{
    int key = -1;
    for (size_t i = 0; i < sizeof mock_apis / sizeof *mock_apis; i++)
        if (strcmp(api, mock_apis[i].name) == 0) key = mock_apis[i].key;
    char *end;
    if (key < 0 && (key = (int)strtol(api, &end, 10), *end != '\0' || key < 0))
        return cue_err_set(err, CUE_EUSAGE, "'%.100s': unknown API %s", line, api);
    const struct rd_kafka_err_desc *descs;
    size_t n_descs;
    rd_kafka_get_err_descs(&descs, &n_descs);
    int code = INT32_MIN;
    for (size_t i = 0; i < n_descs; i++)
        if (descs[i].name && strcmp(descs[i].name, error) == 0) code = descs[i].code;
    if (code == INT32_MIN && (code = (int)strtol(error, &end, 10), *end != '\0'))
        return cue_err_set(err, CUE_EUSAGE, "'%.100s': unknown error %s", line, error);
    if (n <= 0 || n > 1000) return cue_err_set(err, CUE_EUSAGE, "'%.100s': N is 1 to 1000", line);
    rd_kafka_resp_err_t errs[1000];
    for (int i = 0; i < n; i++)
        errs[i] = (rd_kafka_resp_err_t)code;
    rd_kafka_mock_push_request_errors_array(m->mc, (int16_t)key, (size_t)n, errs);
    return 0;
}

int cue_kafka_mock_command(cue_kafka_mock *m, const char *line, cue_err *err)
{
    char a[256], b[256];
    int x = 0, y = 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (sscanf(line, "down %d", &x) == 1) {
        e = rd_kafka_mock_broker_set_down(m->mc, x);
    } else if (sscanf(line, "up %d", &x) == 1) {
        e = rd_kafka_mock_broker_set_up(m->mc, x);
    } else if (sscanf(line, "leader %255s %d %d", a, &x, &y) == 3) {
        e = rd_kafka_mock_partition_set_leader(m->mc, a, x, y);
    } else if (sscanf(line, "coordinator %255s %255s %d", a, b, &x) == 3) {
        e = rd_kafka_mock_coordinator_set(m->mc, a, b, x);
    } else if (sscanf(line, "produce-errors %d", &x) == 1 && x > 0 && x <= 1000) {
        rd_kafka_resp_err_t errs[1000];
        for (int i = 0; i < x; i++)
            errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        rd_kafka_mock_push_request_errors_array(m->mc, 0 /* Produce */, (size_t)x, errs);
    } else if (sscanf(line, "rtt %d %d", &x, &y) == 2) {
        e = rd_kafka_mock_broker_set_rtt(m->mc, x, y);
    } else if (sscanf(line, "errors %255s %255s %d", a, b, &x) == 3) {
        return mock_errors(m, a, b, x, line, err);
    } else {
        return cue_err_set(err, CUE_EUSAGE, "unknown mock command '%.100s'", line);
    }
    if (e) return cue_err_set(err, CUE_EINVAL, "'%.100s': %s", line, rd_kafka_err2str(e));
    return 0;
}

/* ---- a plain producer ------------------------------------------------- */

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
    int rc = conf_set(conf, "bootstrap.servers", bootstrap, err);
    if (rc == 0) rc = conf_set(conf, "enable.idempotence", "true", err);
    if (rc == 0) rc = conf_set(conf, "linger.ms", "20", err);
    if (rc == 0) rc = conf_set(conf, "queue.buffering.max.messages", "1000000", err);
    for (size_t i = 0; rc == 0 && i < n_props; i++) {
        char key[256];
        const char *eq = strchr(props[i], '=');
        if (eq == NULL || eq == props[i] || (size_t)(eq - props[i]) >= sizeof key) {
            rc = cue_err_set(err, CUE_ECONFIG, "'%s' is not KEY=VALUE", props[i]);
            break;
        }
        snprintf(key, sizeof key, "%.*s", (int)(eq - props[i]), props[i]);
        rc = conf_set(conf, key, eq + 1, err);
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        free(l);
        return rc;
    }
    rd_kafka_conf_set_opaque(conf, l);
    rd_kafka_conf_set_dr_msg_cb(conf, loader_dr);
    rd_kafka_conf_set_log_cb(conf, plain_log_cb);
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

/* ---- a consumer alone, for the offsets tool ---------------------------- */

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
    if (pipe_open(k->cpipe, err) != 0) goto fail;
    cc = conf_new(k, CUE_KAFKA_CONSUMER, err);
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

rd_kafka_t *cue_kafka_consumer_handle(cue_kafka *k)
{
    return k->consumer;
}

const cue_config *cue_kafka_config(const cue_kafka *k)
{
    return k->cfg;
}
