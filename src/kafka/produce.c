/* Producing: triggers, dead letters (cut to fit), decisions, the changelog,
 * the output topic's other records, and the delivery reports that count
 * them acknowledged or stop the run. */
#include "kafka_int.h"

#include <inttypes.h>

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

void cue_kafka_produce_shared(cue_kafka *k)
{
    if (k->shared) return;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&k->produce_mu, &a);
    pthread_mutexattr_destroy(&a);
    k->shared = true;
}

static void produce_lock(cue_kafka *k)
{
    if (k->shared) pthread_mutex_lock(&k->produce_mu);
}

static void produce_unlock(cue_kafka *k)
{
    if (k->shared) pthread_mutex_unlock(&k->produce_mu);
}

static int produce_to_locked(cue_kafka *k, rd_kafka_topic_t *topic, int32_t partition, int tag,
                             const char *key, size_t key_len, const char *val, size_t len,
                             rd_kafka_headers_t *hdrs, int64_t ts_ms);

/* Produces, waiting while the local queue is full: backpressure on the
 * consumer side instead of unbounded memory. */
static int produce_to(cue_kafka *k, rd_kafka_topic_t *topic, int32_t partition, int tag,
                      const char *key, size_t key_len, const char *val, size_t len,
                      rd_kafka_headers_t *hdrs, int64_t ts_ms)
{
    produce_lock(k);
    int rc = produce_to_locked(k, topic, partition, tag, key, key_len, val, len, hdrs, ts_ms);
    produce_unlock(k);
    return rc;
}

static int produce_to_locked(cue_kafka *k, rd_kafka_topic_t *topic, int32_t partition, int tag,
                             const char *key, size_t key_len, const char *val, size_t len,
                             rd_kafka_headers_t *hdrs, int64_t ts_ms)
{
    if (k->transactional && k->txn_hold) { /* redone after the rollback */
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return 0;
    }
    if (k->transactional && !k->txn_open && kafka_txn_begin(k) != 0) {
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return CUE_EIO;
    }
    int op = tag | ((k->epoch & 1) ? REC_EPOCH : 0);
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(k->producer, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)val, len),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_TIMESTAMP(ts_ms > 0 ? ts_ms : 0),
                              RD_KAFKA_V_OPAQUE((void *)(intptr_t)op), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            k->in_flight++;
            k->in_flight_of[k->epoch & 1]++;
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

int cue_kafka_produce_changelog_erasure(cue_kafka *k, int32_t partition, const char *key,
                                        size_t key_len)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, CUE_KAFKA_ERASURE_HEADER, -1, "true", -1);
    return produce_to(k, k->changelog, partition, REC_CHANGELOG, key, key_len, NULL, 0, h, 0);
}

int64_t cue_kafka_changelog_next(const cue_kafka *k, int32_t partition)
{
    return partition >= 0 && partition < k->changelog_parts ? k->changelog_next[partition] : -1;
}

void cue_kafka_changelog_forget(cue_kafka *k, int32_t partition)
{
    if (partition >= 0 && partition < k->changelog_parts) k->changelog_next[partition] = -1;
}

int cue_kafka_produce_trigger(cue_kafka *k, const char *user, size_t user_len, const char *id,
                              const char *type, int64_t time_ms, const char *rec, size_t len)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "ce_id", -1, id, -1);
    rd_kafka_header_add(h, "ce_type", -1, type, -1);
    rd_kafka_header_add(h, "content-type", -1, "application/cloudevents+json", -1);
    if (k->replay_id) rd_kafka_header_add(h, "cuepoint-replay", -1, k->replay_id, -1);
    return produce(k, k->output, REC_TRIGGER, user, user_len, rec, len, h, time_ms);
}

int cue_kafka_produce_dead_letter(cue_kafka *k, const cue_kafka_dead *d)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, d->partition);
    snprintf(off, sizeof off, "%" PRId64, d->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    rd_kafka_header_add(h, "__streams.errors.exception", -1, d->reason, -1);
    rd_kafka_header_add(h, "__streams.errors.message", -1, d->message ? d->message : "", -1);
    rd_kafka_header_add(h, "__streams.errors.topic", -1, d->topic, -1);
    rd_kafka_header_add(h, "__streams.errors.partition", -1, part, -1);
    rd_kafka_header_add(h, "__streams.errors.offset", -1, off, -1);
    if (d->timestamp_ms >= 0) {
        char ts[24];
        snprintf(ts, sizeof ts, "%" PRId64, d->timestamp_ms);
        rd_kafka_header_add(h, "cuepoint.errors.timestamp", -1, ts, -1);
    }
    /* A dead letter must not stop the pipeline: one that would not fit the
     * producer's message.max.bytes (a record over event.max.bytes, a key of
     * a megabyte) is cut to fit, marked, with the sizes it had. */
    size_t key_len = d->key_len, len = d->value_len;
    if (key_len > DEAD_KEY_BYTES_MAX) key_len = DEAD_KEY_BYTES_MAX;
    size_t limit = k->message_max < DEAD_RECORD_BYTES_MAX ? k->message_max : DEAD_RECORD_BYTES_MAX;
    size_t room = limit > key_len + DEAD_OVERHEAD_BYTES ? limit - key_len - DEAD_OVERHEAD_BYTES : 0;
    if (len > room) len = room;
    if (len > k->cfg->event_bytes_max) len = k->cfg->event_bytes_max;
    if (len < d->value_len || key_len < d->key_len) {
        char n[24];
        rd_kafka_header_add(h, "cuepoint.errors.truncated", -1, "true", -1);
        snprintf(n, sizeof n, "%zu", d->value_len);
        rd_kafka_header_add(h, "cuepoint.errors.value.bytes", -1, n, -1);
        snprintf(n, sizeof n, "%zu", d->key_len);
        rd_kafka_header_add(h, "cuepoint.errors.key.bytes", -1, n, -1);
        produce_lock(k);
        k->stats.dead_letters_truncated++;
        produce_unlock(k);
    }
    return produce(k, k->dead, REC_DEAD_LETTER, d->key, key_len, d->value, len, h, d->timestamp_ms);
}

int cue_kafka_produce_keyed(cue_kafka *k, const char *key, size_t key_len, const char *val,
                            size_t len, int64_t ts_ms)
{
    return produce(k, k->output, REC_TRIGGER, key, key_len, val, len, NULL, ts_ms);
}

int cue_kafka_produce_at(cue_kafka *k, int32_t partition, const char *key, size_t key_len,
                         const char *val, size_t len)
{
    return produce_to(k, k->output, partition, REC_TRIGGER, key, key_len, val, len, NULL, 0);
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
    if (REC_TAG(m->_private) != REC_DEAD_LETTER ||
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
    /* The copy belongs to the original's cycle: that cycle's offsets wait for it. */
    uint32_t epoch = k->epoch;
    k->epoch = ((intptr_t)m->_private & REC_EPOCH) ? 1 : 0;
    int rc = produce(k, k->dead, REC_DEAD_LETTER, m->key, key_len, m->payload, len, h, 0);
    k->epoch = epoch;
    return rc == 0;
}

void kafka_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    cue_kafka *k = opaque;
    /* Counted out before a truncated copy (retry_truncated) is counted in. */
    size_t *of = &k->in_flight_of[((intptr_t)m->_private & REC_EPOCH) ? 1 : 0];
    CUE_ASSERT(*of > 0);
    (*of)--;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && REC_TAG(m->_private) == REC_CHANGELOG &&
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
