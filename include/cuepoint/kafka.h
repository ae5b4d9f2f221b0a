/*
 * kafka: cuepoint's librdkafka adapter, and the only module that includes
 * librdkafka's headers.
 *
 * One consumer (a member of the group application.id, cooperative-sticky
 * assignor, no automatic commits) and one idempotent producer (acks=all) for
 * triggers and dead letters. Neither client is polled on a timer: each has a
 * queue that writes to a pipe when it goes from empty to non-empty, so the
 * runtime's event loop sleeps until there is work (cue_kafka_consumer_fd,
 * cue_kafka_producer_fd). Rebalances, messages and client errors reach the
 * caller through the handler, from inside cue_kafka_consume (or _batch);
 * delivery reports are counted inside cue_kafka_serve_producer. librdkafka's
 * own threads only log (through cue_log).
 *
 * Also the mock cluster (librdkafka's rdkafka_mock) for `cuepoint dev-broker`,
 * the demo and tests.
 *
 * One thread (the runtime's loop) calls everything here. The module owns both
 * clients; the handler and the config are borrowed for the object's life.
 */
#ifndef CUEPOINT_KAFKA_H
#define CUEPOINT_KAFKA_H

#include "cuepoint/config.h"
#include "cuepoint/err.h"
#include "cuepoint/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Start where the group committed, else at auto.offset.reset (earliest). */
#define CUE_KAFKA_OFFSET_GROUP (-1001)
/* Start at the partition's first retained record. */
#define CUE_KAFKA_OFFSET_BEGINNING (-2)
/* Take the partition but do not fetch from it yet (its state is being
 * restored); cue_kafka_seek_resume starts it. */
#define CUE_KAFKA_OFFSET_HOLD (-1003)

typedef struct cue_kafka cue_kafka;

/* One consumed record; everything borrowed for the handler call. */
typedef struct cue_kafka_msg {
    const char *topic;
    uint8_t topic_index; /* in input.topics (0 for any other topic) */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* the record's timestamp, or -1 */
    const char *key;      /* NULL when the record has none */
    size_t key_len;
    const char *value;
    size_t value_len;
    bool erasure; /* a tombstone marked CUE_KAFKA_ERASURE_HEADER */
} cue_kafka_msg;

/* The record a task is offered (record.h): a record without a key is not
 * keyed by user id either, so its key is "", not NULL (which means files). */
static inline cue_record cue_kafka_record(const cue_kafka_msg *m)
{
    return (cue_record){.value = m->value,
                        .value_len = m->value_len,
                        .key = m->key ? m->key : "",
                        .key_len = m->key ? m->key_len : 0,
                        .offset = m->offset,
                        .topic = m->topic_index,
                        .timestamp_ms = m->timestamp_ms};
}

typedef struct cue_kafka_handler {
    /* Partitions joining this member, each number once: with several input
     * topics (input.topics) partition N of each is one partition here. For
     * each, the handler loads its task and sets start[i * T + t] (T the
     * number of input topics, t a topic's index) to the offset to read
     * topic t's partition from (an offset, or one of the CUE_KAFKA_OFFSET_*
     * values). Non-zero fails the run (fatal is called). */
    int (*assigned)(const int32_t *parts, int64_t *start, size_t n, void *ctx);
    /* Partitions leaving this member. `lost` when the group took them away
     * already (session timeout): committing them could clobber a new owner's work. */
    void (*revoked)(const int32_t *parts, size_t n, bool lost, void *ctx);
    void (*message)(const cue_kafka_msg *m, void *ctx);
    /* Optional: a record's message() is coming, in the same order, a few
     * records later (stage 0), then nearer (stage 1): a chance to start
     * fetching what it will need into the CPU's caches while the records
     * before it are handled. A hint only: it must change nothing. */
    void (*prefetch)(const cue_kafka_msg *m, int stage, void *ctx);
    /* The consumer or producer cannot go on (a fatal client error, a failed
     * delivery); the message names the cause. */
    void (*fatal)(const char *why, void *ctx);
    /* A replay's consumer reached the end of a partition at `offset` (the
     * high watermark then); NULL for the live pipeline. */
    void (*end)(int32_t partition, int64_t offset, void *ctx);
    /* A partition's position is no longer in the log (retention or
     * compaction moved its start past it). Set, it makes the consumer stop
     * there (auto.offset.reset=error) instead of jumping silently to the
     * log's start: a reader of the changelog must know it missed records.
     * The partition fetches nothing more until assigned again. */
    void (*out_of_range)(int32_t partition, int64_t offset, void *ctx);
    void *ctx;
} cue_kafka_handler;

/* Checks the config as cue_kafka_open would use it, without keeping a
 * client: both clients' properties (defaults, then the passthrough) are set
 * and each client is created and destroyed at once. CUE_ECONFIG naming the
 * property or the client, as cue_kafka_open. For `run --print-config`. */
int cue_kafka_check(const cue_config *cfg, cue_err *err);

/* Creates both clients from the config (defaults, then the "kafka"
 * passthrough). CUE_ECONFIG naming the property when librdkafka rejects one;
 * a secret's value is never part of the message. */
int cue_kafka_open(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                   cue_err *err);

/* A replay's clients: a consumer outside any group (the caller assigns the
 * partitions and nothing is ever committed, so the live group neither
 * rebalances nor sees its offsets move) that reports partition ends, and a
 * producer only when `output_topic` is set (triggers only; every record
 * carries the header cuepoint-replay = replay_id). Both strings are borrowed
 * for the object's life. */
int cue_kafka_open_replay(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                          const char *replay_id, const char *output_topic, cue_err *err);

/* The clients of an offline command that rewrites the changelog (`replay
 * --seed-state`, `offsets reset`): a consumer outside any group that reads
 * cfg->input_topic (the caller's copy of the config names the changelog
 * there) and reports partition ends, and a producer whose output topic is
 * <application.id>-changelog. Under exactly-once the producer is
 * transactional with cfg->transactional_id (which the caller sets), so what
 * it writes becomes visible to read_committed readers all at once, at
 * cue_kafka_txn_commit. `cfg` is borrowed for the object's life. */
int cue_kafka_open_changelog_writer(cue_kafka **out, const cue_config *cfg,
                                    const cue_kafka_handler *h, cue_err *err);

/* Leaves the group (after the caller committed what it had), waits up to
 * `timeout_ms` for outstanding deliveries, and frees everything. */
void cue_kafka_close(cue_kafka *k, int64_t timeout_ms);

/* Waits up to `timeout_ms` for the brokers to answer with the input topics'
 * metadata; sets `*partitions`. CUE_EUNAVAILABLE when no broker answers in
 * time, CUE_ENOTFOUND when a topic does not exist, CUE_ECONFIG naming each
 * topic and its count when input.topics' counts differ (they are read as
 * one stream per partition number). */
int cue_kafka_wait_ready(cue_kafka *k, int64_t timeout_ms, int32_t *partitions, cue_err *err);

/* Joins the group on every input topic. With several (input.topics) the
 * group uses the range assignor, which gives partition N of every topic to
 * the same member (cooperative-sticky does not). */
int cue_kafka_subscribe(cue_kafka *k, cue_err *err);

/* A topic's partition count, 0 when it does not exist. With `auto_create`
 * the question is the producer's, which lets a cluster that creates topics
 * on first use (auto.create.topics.enable) do so, with its default count. */
int cue_kafka_topic_partitions(cue_kafka *k, const char *topic, bool auto_create,
                               int64_t timeout_ms, int32_t *n, cue_err *err);
/* The same, asked of the metadata of every topic: a cluster that creates a
 * topic because a client asked for it by name (librdkafka's mock does so
 * even for a consumer) cannot create it this way. For commands that must
 * change nothing (`offsets reset --dry-run`). */
int cue_kafka_topic_listed(cue_kafka *k, const char *topic, int64_t timeout_ms, int32_t *n,
                           cue_err *err);
/* Creates a topic through the admin API with `configs` (topic settings as
 * name, value, ..., NULL; NULL for none); an existing one is not an error.
 * CUE_EUNAVAILABLE when the cluster says no or cannot (librdkafka's mock
 * cluster has no CreateTopics). */
int cue_kafka_create_topic(cue_kafka *k, const char *topic, int32_t partitions,
                           const char *const *configs, int64_t timeout_ms, cue_err *err);
/* Reads one setting of a topic (DescribeConfigs) into `out`.
 * CUE_EUNAVAILABLE when the cluster does not answer or cannot (the mock),
 * CUE_ENOTFOUND when the topic has no such setting. */
int cue_kafka_topic_config(cue_kafka *k, const char *topic, const char *name, char *out, size_t cap,
                           int64_t timeout_ms, cue_err *err);

/* Read ends of the wake-up pipes; the caller drains them with cue_kafka_drain_fd. */
int cue_kafka_consumer_fd(const cue_kafka *k);
int cue_kafka_producer_fd(const cue_kafka *k);
void cue_kafka_drain_fd(int fd);

/* Serves up to `max` consumer events (messages, rebalances, errors) without
 * blocking. Returns how many were served; fewer than `max` means the queue is
 * empty and the consumer fd will wake the caller again. */
size_t cue_kafka_consume(cue_kafka *k, size_t max);

/* As cue_kafka_consume, but records come to `fn` in batches of up to `max`
 * (the runtime's stream threads take one apart by partition), the handler's
 * message callback is not called, and no record is held ahead (prefetching
 * is the batch handler's). Anything else the consumer reports (an end, a
 * reset, an error, a rebalance) comes after the batch of records polled
 * before it. The records are borrowed until `fn` returns. */
typedef void (*cue_kafka_batch_fn)(const cue_kafka_msg *msgs, size_t n, void *ctx);
size_t cue_kafka_consume_batch(cue_kafka *k, size_t max, cue_kafka_batch_fn fn, void *ctx);

/* Drops the records polled and not yet handed over (the ring held ahead of
 * the handler), and any the poll under way took before now: for a caller
 * that has just sought every assigned partition back (exactly-once's
 * rollback), they came from before the seek, and the consumer delivers them
 * again from the positions sought. */
void cue_kafka_drop_held(cue_kafka *k);

/* From now on, records may be produced from several threads at once (the
 * stream threads): producing and the delivery reports it serves when the
 * queue is full take a lock. Everything else stays the caller's thread's. */
void cue_kafka_produce_shared(cue_kafka *k);

/* Serves the producer's delivery reports without blocking. */
void cue_kafka_serve_producer(cue_kafka *k);

/* Blocks up to `timeout_ms` until every produced record is acknowledged.
 * CUE_EUNAVAILABLE when some are still waiting; CUE_EIO when a delivery failed. */
int cue_kafka_flush(cue_kafka *k, int64_t timeout_ms, cue_err *err);

/* Records produced and not yet acknowledged. */
size_t cue_kafka_in_flight(const cue_kafka *k);

/* Seals a commit cycle: the records produced so far are the sealed cycle's,
 * those produced from now on the next one's. Call only when the cycle sealed
 * before has none in flight (cue_kafka_in_flight_sealed is 0): two cycles
 * are told apart, not three. */
void cue_kafka_seal(cue_kafka *k);

/* The last sealed cycle's records not yet acknowledged (a delivery that
 * failed counts as done: it stops the run). */
size_t cue_kafka_in_flight_sealed(const cue_kafka *k);

/* Produces a trigger record to the trigger topic, keyed by the user id, with
 * the headers ce_id (the trigger id), ce_type (its name) and content-type,
 * and its time as the record's timestamp. The bytes are copied. Waits
 * (serving delivery reports) while the producer's queue is full. */
int cue_kafka_produce_trigger(cue_kafka *k, const char *user, size_t user_len, const char *id,
                              const char *type, int64_t time_ms, const char *rec, size_t len);

/* A record that could not be used, and where it came from; all borrowed. */
typedef struct cue_kafka_dead {
    const char *reason, *message;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key; /* NULL: the record had none */
    size_t key_len;
    const char *value;
    size_t value_len;
    int64_t timestamp_ms; /* the record's; < 0: none */
} cue_kafka_dead;

/* Produces a dead letter: the original key and value, the original
 * timestamp, and Kafka Streams' dead-letter headers
 * (__streams.errors.exception = the reason, .message, .topic, .partition,
 * .offset). One that would not fit is cut to fit (docs/kafka.md, "Dead letters"). */
int cue_kafka_produce_dead_letter(cue_kafka *k, const cue_kafka_dead *d);

/* Produces a record to trigger.topic with the given key and timestamp, the
 * value as it is (the repartition stage: trigger.topic is then
 * <application.id>-repartition). */
int cue_kafka_produce_keyed(cue_kafka *k, const char *key, size_t key_len, const char *val,
                            size_t len, int64_t ts_ms);

/* Produces a record to the output topic's `partition`, no headers; `val`
 * NULL makes a tombstone (the members topic of standby.h). */
int cue_kafka_produce_at(cue_kafka *k, int32_t partition, const char *key, size_t key_len,
                         const char *val, size_t len);

/* Produces a policy decision record to the decisions topic (decisions.topic,
 * default <application.id>-decisions), keyed by user id (none for an
 * erasure). Counted in flight like triggers: a commit waits for it. */
int cue_kafka_produce_decision(cue_kafka *k, const char *key, size_t key_len, const char *rec,
                               size_t len);

/* ---- the changelog ------------------------------------------------------ */

/* Starts producing to <application.id>-changelog, `partitions` of them (the
 * input topic's count). */
int cue_kafka_changelog_open(cue_kafka *k, int32_t partitions, cue_err *err);
/* Makes sure <application.id>-changelog exists: created compacted, with
 * changelog.delete.retention.ms, when missing; where the cluster cannot
 * create it (the mock), asked for through the producer so that automatic
 * creation applies (*described is then false: the cluster will not describe
 * it either). CUE_ECONFIG, naming `input_topic`, when its partition count
 * is not `partitions`. */
int cue_kafka_changelog_ensure(cue_kafka *k, int32_t partitions, const char *input_topic,
                               bool *described, cue_err *err);
/* The header that marks an erased user's tombstone on the changelog. */
#define CUE_KAFKA_ERASURE_HEADER "cuepoint.erasure"

/* One changelog record to `partition` (the input partition's number): a
 * user's state, a tombstone (`val` NULL), or the meta record (empty key).
 * Counted in flight like triggers. */
int cue_kafka_produce_changelog(cue_kafka *k, int32_t partition, const char *key, size_t key_len,
                                const void *val, size_t len);
/* An erased user's tombstone, marked with CUE_KAFKA_ERASURE_HEADER. */
int cue_kafka_produce_changelog_erasure(cue_kafka *k, int32_t partition, const char *key,
                                        size_t key_len);
/* The offset after the last acknowledged changelog record of `partition`,
 * or -1 before any. */
int64_t cue_kafka_changelog_next(const cue_kafka *k, int32_t partition);
/* Forgets it (back to -1): a partition that comes back here starts from its
 * store's position, not from where this process last wrote. */
void cue_kafka_changelog_forget(cue_kafka *k, int32_t partition);

/* Commits `offset` (the next to read) for `partition` to the group; waits
 * for the answer only when `sync` (a partition being given up). */
void cue_kafka_commit(cue_kafka *k, int32_t partition, int64_t offset, bool sync);
/* Which input topic a topic name is (its index in input.topics), or -1. */
int cue_kafka_topic_index(const cue_kafka *k, const char *topic);

/* ---- exactly-once (processing.guarantee = exactly_once_v2) ------------- */

/* With config exactly_once the producer is transactional (transactional.id =
 * the config's transactional_id, registered by cue_kafka_open, which fences
 * older producers with that id) and the consumers read committed records
 * only. A transaction opens by itself before the first record produced after
 * the last commit or abort. */

/* Ends the open transaction: the input offsets (`n` partitions, of input
 * topic topics[i] (an index in input.topics; NULL: all of the first),
 * `offsets` the next to read, `meta` each one's commit metadata or NULL) go
 * in with the consumer's group metadata, then the transaction
 * commits; with nothing produced and no offsets, nothing happens. Blocks up
 * to `timeout_ms` in all, retrying what librdkafka calls retriable (and an
 * abort that follows up to `timeout_ms` more).
 * CUE_EABORTED: the transaction could not commit and was aborted (the caller
 * rolls its state back to the last commit); CUE_EFENCED: another producer
 * has this transactional.id, and this one must stop producing for good;
 * CUE_EUNAVAILABLE otherwise. */
int cue_kafka_txn_commit(cue_kafka *k, const uint8_t *topics, const int32_t *parts,
                         const int64_t *offsets, const char *const *meta, size_t n,
                         int64_t timeout_ms, cue_err *err);
/* Aborts the open transaction, if any, within `timeout_ms` (CUE_EFENCED as
 * above). Ends a hold (cue_kafka_txn_hold). */
int cue_kafka_txn_abort(cue_kafka *k, int64_t timeout_ms, cue_err *err);
/* A transaction aborted and the caller will roll back, but other threads
 * may still produce before it does (stream threads): until the next
 * cue_kafka_txn_abort, records are dropped instead of opening a transaction
 * that could only carry work to be redone. */
void cue_kafka_txn_hold(cue_kafka *k);
/* The producer was fenced (its fatal error, however it surfaced). */
bool cue_kafka_fenced(const cue_kafka *k);

/* ---- reading partitions one by one (the repartition stage) ------------- */

#define CUE_KAFKA_SPLIT_MAX 1024

/* Call before subscribing: each assigned partition's records then wait in a
 * queue of their own (partitions up to CUE_KAFKA_SPLIT_MAX), so the caller can
 * take them in an order of its choosing across partitions; the consumer fd
 * still wakes the caller, and cue_kafka_consume serves rebalances and errors. */
void cue_kafka_split_partitions(cue_kafka *k);
/* The next record of `partition`, left in place: NULL when none is buffered.
 * Borrowed until cue_kafka_take or a rebalance. */
const cue_kafka_msg *cue_kafka_peek(cue_kafka *k, int32_t partition);
void cue_kafka_take(cue_kafka *k, int32_t partition);

/* The consumer's position in a partition (the offset after the last record
 * it returned), or -1 when it has none yet. */
int64_t cue_kafka_position(cue_kafka *k, int32_t partition);

/* The partition's high watermark as last seen by the consumer, or -1. */
int64_t cue_kafka_high_watermark(cue_kafka *k, int32_t partition);
/* ... of input topic `topic` (an index in input.topics). */
int64_t cue_kafka_high_watermark_of(cue_kafka *k, uint8_t topic, int32_t partition);

/* ---- a replay's reads (cue_kafka_open_replay) ------------------------ */

/* Reads input.topic's partitions from the given offsets (or CUE_KAFKA_OFFSET_*). */
int cue_kafka_assign(cue_kafka *k, const int32_t *parts, const int64_t *start, size_t n,
                     cue_err *err);
/* Stops fetching a partition that reached its end (of every input topic). */
void cue_kafka_pause(cue_kafka *k, int32_t partition);
/* Adds or removes one partition of a consumer outside any group (a restore
 * of the changelog reads partitions as they are assigned elsewhere). */
int cue_kafka_assign_one(cue_kafka *k, int32_t partition, int64_t offset, cue_err *err);
void cue_kafka_unassign_one(cue_kafka *k, int32_t partition);
/* Starts a held partition (CUE_KAFKA_OFFSET_HOLD) at `offset`. */
void cue_kafka_seek_resume(cue_kafka *k, int32_t partition, int64_t offset);
/* ... of every input topic, `offsets[t]` for topic t (input.topics' order). */
void cue_kafka_seek_resume_all(cue_kafka *k, int32_t partition, const int64_t *offsets);
/* Asks the partition's leader for its log start and high watermark. */
int cue_kafka_watermarks(cue_kafka *k, int32_t partition, int64_t timeout_ms, int64_t *low,
                         int64_t *high, cue_err *err);
/* What to tell a user when no partition with records has one at or after a
 * time: true of a time past the end, and of every time on the dev broker. */
#define CUE_KAFKA_NO_TIME_HINT                                                                     \
    "no partition with records has one at or after the time, so nothing is read from there "       \
    "(or each moves to its end); librdkafka's mock cluster (cuepoint dev-broker) answers "         \
    "every time this way: it cannot look records up by time"
/* The first offset whose record timestamp is at or after `ts_ms`, or -1 when
 * there is none (Kafka's ListOffsets by time; the mock broker always answers -1). */
int cue_kafka_offset_for_time(cue_kafka *k, int32_t partition, int64_t ts_ms, int64_t timeout_ms,
                              int64_t *offset, cue_err *err);

/* librdkafka's key partitioners, to place records from a file where a
 * producer would have put them: "consistent_random" (librdkafka's default
 * and kcat's), "murmur2_random" (the Java client's default), "fnv1a_random",
 * or their names without "_random". Returns an id for cue_kafka_partition_of,
 * or -1 for an unknown name. */
int cue_kafka_partitioner_find(const char *name);
/* The partition for `key` among `n`; a record without a key goes to 0. */
int32_t cue_kafka_partition_of(int partitioner, const char *key, size_t key_len, int32_t n);

typedef struct cue_kafka_stats {
    uint64_t produced, delivered, delivery_failures, produce_retries_full;
    uint64_t dead_letters_truncated;
    uint64_t consumer_errors, producer_errors;
    /* Exactly-once: transactions committed and aborted, fencings seen. */
    uint64_t txn_committed, txn_aborted, txn_fenced;
    /* Trigger records produced in transactions that were then aborted: a
     * read_committed consumer never sees them (on a real cluster). */
    uint64_t txn_aborted_triggers;
} cue_kafka_stats;
const cue_kafka_stats *cue_kafka_stats_get(const cue_kafka *k);

/* ---- a plain producer ------------------------------------------------- */

/* For loading topics (the demo, benchmarks): an idempotent producer to
 * `bootstrap`, with optional extra properties as "key=value" strings. */
typedef struct cue_kafka_loader cue_kafka_loader;
int cue_kafka_loader_new(cue_kafka_loader **out, const char *bootstrap, const char *const *props,
                         size_t n_props, cue_err *err);
/* Copies key and value; waits while the local queue is full. Partition -1
 * lets librdkafka's partitioner choose by key. */
int cue_kafka_loader_send(cue_kafka_loader *l, const char *topic, int32_t partition,
                          const char *key, size_t key_len, const char *val, size_t len,
                          cue_err *err);
/* Waits for every record's acknowledgement; CUE_EIO if any failed. */
int cue_kafka_loader_flush(cue_kafka_loader *l, int64_t timeout_ms, cue_err *err);
void cue_kafka_loader_free(cue_kafka_loader *l);

/* ---- the mock cluster -------------------------------------------------- */

typedef struct cue_kafka_mock cue_kafka_mock;

/* Starts librdkafka's in-process mock cluster with `brokers` brokers on
 * 127.0.0.1 (ephemeral ports). */
int cue_kafka_mock_start(cue_kafka_mock **out, int brokers, cue_err *err);
/* The same, with librdkafka's debug contexts (`debug`, e.g. "mock" for
 * every request the brokers serve and every log append) logged at debug
 * level; NULL for none. CUE_EUSAGE names a context librdkafka refuses. */
int cue_kafka_mock_start_debug(cue_kafka_mock **out, int brokers, const char *debug, cue_err *err);
void cue_kafka_mock_stop(cue_kafka_mock *m);
const char *cue_kafka_mock_bootstraps(const cue_kafka_mock *m);
int cue_kafka_mock_topic_create(cue_kafka_mock *m, const char *topic, int partitions, cue_err *err);

/* A fault, as a line of text: "down B", "up B", "leader TOPIC PART B",
 * "coordinator group|txn ID B", "produce-errors N" (the next N produce
 * requests fail with NOT_LEADER_FOR_PARTITION, which clients retry),
 * "rtt B MS", "errors API ERROR N" (the next N requests of API, a name like
 * EndTxn or a number, are answered with ERROR, a name like PRODUCER_FENCED
 * or a number). CUE_EUSAGE on anything else. */
int cue_kafka_mock_command(cue_kafka_mock *m, const char *line, cue_err *err);

#endif
