/* The loop's side: the wake-up pipes, serving the consumer's queue (or
 * each partition's, split) and the producer's delivery reports without
 * blocking, and what the loop asks of the consumer's view. */
#include "kafka_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int kafka_pipe_open(int fds[2], cue_err *err)
{
    if (pipe(fds) != 0)
        return cue_err_set(err, CUE_EIO, "cannot create a pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

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

/* A tombstone marked as an erasure's (only tombstones are asked: a header
 * look-up per record would cost every input record). */
static bool erasure_marked(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    return m->len == 0 && m->key_len > 0 && rd_kafka_message_headers(m, &h) == 0 &&
           rd_kafka_header_get_last(h, CUE_KAFKA_ERASURE_HEADER, &v, &n) == 0;
}

/* A record as the handler sees it; everything borrowed from `m`. */
static cue_kafka_msg msg_of(const cue_kafka *k, const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tt;
    const char *topic = rd_kafka_topic_name(m->rkt);
    /* A few short names at most (CUE_INPUT_TOPICS_MAX): cheaper than a lookup. */
    int index = k->cfg->input_topic_count > 1 ? cue_kafka_topic_index(k, topic) : 0;
    return (cue_kafka_msg){.topic = topic,
                           .topic_index = index > 0 ? (uint8_t)index : 0,
                           .partition = m->partition,
                           .offset = m->offset,
                           .timestamp_ms = rd_kafka_message_timestamp(m, &tt),
                           .key = m->key,
                           .key_len = m->key_len,
                           .value = m->payload ? m->payload : "",
                           .value_len = m->len,
                           .erasure = erasure_marked(m)};
}

void kafka_split_open(cue_kafka *k, int32_t p)
{
    if (p < 0 || p >= CUE_KAFKA_SPLIT_MAX || k->partq[p]) return;
    k->partq[p] = rd_kafka_queue_get_partition(k->consumer, k->cfg->input_topic, p);
    if (k->partq[p] == NULL) return;
    rd_kafka_queue_forward(k->partq[p], NULL); /* its records stay here */
    rd_kafka_queue_io_event_enable(k->partq[p], k->cpipe[1], "1", 1);
}

void kafka_split_close(cue_kafka *k, int32_t p)
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
        k->headmsg[p] = msg_of(k, m);
    }
    return &k->headmsg[p];
}

void cue_kafka_take(cue_kafka *k, int32_t p)
{
    if (p < 0 || p >= CUE_KAFKA_SPLIT_MAX || k->head[p] == NULL) return;
    rd_kafka_message_destroy(k->head[p]);
    k->head[p] = NULL;
}

/* Hands one polled message (a record or an event) to the handler, and frees it. */
static void deliver(cue_kafka *k, rd_kafka_message_t *m)
{
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
        cue_kafka_msg msg = msg_of(k, m);
        k->h.message(&msg, k->h.ctx);
    }
    rd_kafka_message_destroy(m);
}

/* Hands the batch polled so far to its handler, and frees it. */
static void batch_hand(cue_kafka *k)
{
    size_t n = k->batch_n;
    if (n == 0) return;
    k->batch_n = 0;
    k->batch_fn(k->batch_view, n, k->batch_ctx);
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(k->batch[i]);
}

void kafka_ahead_drain(cue_kafka *k)
{
    batch_hand(k);
    /* Taken off before it is handled: a handler that drains again (from a
     * rebalance it causes) goes on with the next. */
    while (k->ahead_n > 0) {
        rd_kafka_message_t *m = k->ahead[k->ahead_first];
        k->ahead_first = (k->ahead_first + 1) % KAFKA_AHEAD;
        k->ahead_n--;
        deliver(k, m);
    }
}

/* The record `back` places behind the newest held one, as the handler sees it. */
static cue_kafka_msg ahead_msg(const cue_kafka *k, size_t back)
{
    return msg_of(k, k->ahead[(k->ahead_first + k->ahead_n - 1 - back) % KAFKA_AHEAD]);
}

/* Holds a record ahead, handing over the oldest when the ring is full. Its
 * key and the start of its value (what decoding reads) are fetched now: the
 * user id is read from one of them a third of the ring later, and hashing
 * it had been the first touch of librdkafka's buffer, a miss in the middle
 * of the look-up. The record a third behind gets prefetch stage 0, the one
 * two thirds behind stage 1. */
static void hold_ahead(cue_kafka *k, rd_kafka_message_t *m)
{
    if (m->key) __builtin_prefetch(m->key);
    for (size_t at = 0; m->payload && at < m->len && at < 256; at += 64)
        __builtin_prefetch((const char *)m->payload + at);
    if (k->ahead_n == KAFKA_AHEAD) {
        rd_kafka_message_t *old = k->ahead[k->ahead_first];
        k->ahead_first = (k->ahead_first + 1) % KAFKA_AHEAD;
        k->ahead_n--;
        uint64_t drops = k->drops;
        deliver(k, old);
        if (k->drops != drops) { /* m was polled before the handler's seek */
            rd_kafka_message_destroy(m);
            return;
        }
    }
    k->ahead[(k->ahead_first + k->ahead_n) % KAFKA_AHEAD] = m;
    k->ahead_n++;
    if (k->ahead_n > KAFKA_AHEAD / 3) {
        cue_kafka_msg msg = ahead_msg(k, KAFKA_AHEAD / 3);
        k->h.prefetch(&msg, 0, k->h.ctx);
    }
    if (k->ahead_n > 2 * KAFKA_AHEAD / 3) {
        cue_kafka_msg msg = ahead_msg(k, 2 * KAFKA_AHEAD / 3);
        k->h.prefetch(&msg, 1, k->h.ctx);
    }
}

size_t cue_kafka_consume(cue_kafka *k, size_t max)
{
    size_t served = 0;
    while (served < max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
        if (m == NULL) break;
        served++;
        if (m->err == 0 && k->h.prefetch) {
            hold_ahead(k, m);
            continue;
        }
        /* An end, a reset or an error comes after the records before it. */
        kafka_ahead_drain(k);
        deliver(k, m);
    }
    /* Nothing stays held between calls: the caller's checks (a commit
     * cycle, a pause, the end) see every record polled. */
    kafka_ahead_drain(k);
    return served;
}

void cue_kafka_drop_held(cue_kafka *k)
{
    k->drops++;
    while (k->ahead_n > 0) {
        rd_kafka_message_destroy(k->ahead[k->ahead_first]);
        k->ahead_first = (k->ahead_first + 1) % KAFKA_AHEAD;
        k->ahead_n--;
    }
}

size_t cue_kafka_consume_batch(cue_kafka *k, size_t max, cue_kafka_batch_fn fn, void *ctx)
{
    if (k->batch_cap < max) {
        rd_kafka_message_t **b = realloc(k->batch, max * sizeof *b);
        if (b) k->batch = b;
        cue_kafka_msg *v = b ? realloc(k->batch_view, max * sizeof *v) : NULL;
        if (v) k->batch_view = v;
        if (b && v) k->batch_cap = max;
    }
    k->batch_fn = fn;
    k->batch_ctx = ctx;
    size_t served = 0;
    while (served < max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
        if (m == NULL) break;
        served++;
        if (m->err == 0 && k->batch_cap > 0) {
            if (k->batch_n == k->batch_cap) {
                uint64_t drops = k->drops;
                batch_hand(k);
                if (k->drops != drops) { /* polled before the handler's seek */
                    rd_kafka_message_destroy(m);
                    continue;
                }
            }
            k->batch[k->batch_n] = m;
            k->batch_view[k->batch_n] = msg_of(k, m);
            k->batch_n++;
            continue;
        }
        /* An end, a reset or an error comes after the records before it;
         * without room for a batch, records go one at a time. */
        batch_hand(k);
        if (m->err == 0) {
            cue_kafka_msg one = msg_of(k, m);
            fn(&one, 1, ctx);
            rd_kafka_message_destroy(m);
        } else {
            deliver(k, m);
        }
    }
    batch_hand(k);
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

void cue_kafka_seal(cue_kafka *k)
{
    CUE_ASSERT(k->in_flight_of[(k->epoch + 1) & 1] == 0);
    k->epoch++;
}

size_t cue_kafka_in_flight_sealed(const cue_kafka *k)
{
    return k->in_flight_of[(k->epoch + 1) & 1];
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
    return cue_kafka_high_watermark_of(k, 0, partition);
}

int64_t cue_kafka_high_watermark_of(cue_kafka *k, uint8_t topic, int32_t partition)
{
    const char *name = cue_config_input_topic_name(k->cfg, topic);
    int64_t lo = -1, hi = -1;
    if (rd_kafka_get_watermark_offsets(k->consumer, name, partition, &lo, &hi) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return hi;
}
