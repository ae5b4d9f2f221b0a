/* Exactly-once: the transactional producer's registration, the cycle's
 * transaction opened on its first record, committed with the input offsets
 * or aborted, and fencing recognised however it surfaces. */
#include "kafka_int.h"

/* Translates (and frees) a transactional call's error: fencing and other
 * fatal errors, errors that need an abort, the rest. */
static int txn_error(cue_kafka *k, rd_kafka_error_t *e, const char *what, cue_err *err)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    bool fatal = rd_kafka_error_is_fatal(e);
    int rc = fatal && (kafka_is_fencing(code) || k->fenced) ? CUE_EFENCED
             : rd_kafka_error_txn_requires_abort(e)         ? CUE_EABORTED
                                                            : CUE_EUNAVAILABLE;
    if (rc == CUE_EFENCED && !k->fenced) {
        k->fenced = true;
        k->stats.txn_fenced++;
    }
    cue_err_set(err, rc, "%s: %s (%s)", what, rd_kafka_error_string(e), rd_kafka_err2name(code));
    rd_kafka_error_destroy(e);
    return rc;
}

/* Registers the transactional.id with its coordinator: this fences any older
 * producer with the same id and aborts the transaction it left open, so a
 * restart never waits for transaction.timeout.ms. */
int kafka_txn_init(cue_kafka *k, cue_err *err)
{
    rd_kafka_error_t *e = rd_kafka_init_transactions(k->producer, (int)k->cfg->startup_timeout_ms);
    if (e) return txn_error(k, e, "init_transactions", err);
    cue_log(CUE_LOG_INFO, "transactional producer ready", "s:transactional_id",
            k->cfg->transactional_id, NULL);
    return 0;
}

/* Opens the cycle's transaction before its first record. Local: no broker is
 * asked, so it costs nothing on the loop. A failure here is the producer's
 * fatal state (fenced), raised through the handler. */
int kafka_txn_begin(cue_kafka *k)
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

/* A transactional call is retried while librdkafka says it may, within one
 * deadline for the whole of it (the caller's timeout): a broker that stays
 * away holds the loop no longer than that, and the caller then stops
 * without committing. */
static int64_t txn_left_ms(int64_t end_ms)
{
    int64_t left = end_ms - kafka_mono_ms();
    return left > 0 ? left : 0;
}

void cue_kafka_txn_hold(cue_kafka *k)
{
    k->txn_hold = true;
}

int cue_kafka_txn_abort(cue_kafka *k, int64_t timeout_ms, cue_err *err)
{
    k->txn_hold = false;
    if (!k->transactional || !k->txn_open) return 0;
    rd_kafka_error_t *e = NULL;
    int64_t end = kafka_mono_ms() + timeout_ms;
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

static int txn_offsets(cue_kafka *k, const uint8_t *topics, const int32_t *parts,
                       const int64_t *offsets, const char *const *meta, size_t n, int64_t end_ms,
                       cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const char *topic = cue_config_input_topic_name(k->cfg, topics ? topics[i] : 0);
        rd_kafka_topic_partition_t *t = rd_kafka_topic_partition_list_add(l, topic, parts[i]);
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

int cue_kafka_txn_commit(cue_kafka *k, const uint8_t *topics, const int32_t *parts,
                         const int64_t *offsets, const char *const *meta, size_t n,
                         int64_t timeout_ms, cue_err *err)
{
    CUE_ASSERT(k->transactional);
    if (!k->txn_open && n == 0) return 0;
    if (!k->txn_open && kafka_txn_begin(k) != 0)
        return cue_err_set(err, k->fenced ? CUE_EFENCED : CUE_EUNAVAILABLE,
                           "begin_transaction failed");
    int rc = 0;
    if (k->txn_failed) {
        rc = cue_err_set(err, CUE_EABORTED, "a record of the transaction was not delivered");
    } else {
        int64_t end = kafka_mono_ms() + timeout_ms; /* offsets and commit share it */
        if (n > 0) rc = txn_offsets(k, topics, parts, offsets, meta, n, end, err);
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
