/*
 * kafka_int: what the kafka module's files share. Private to src/kafka/, the
 * only place that names librdkafka.
 *
 *   conf.c     the clients' librdkafka configuration, logging and errors
 *   client.c   opening, checking and closing the pipeline's and a replay's clients
 *   group.c    the consumer group: subscribing, rebalances, leaving, commits,
 *              a consumer alone (cue_kafka_open_consumer)
 *   loop.c     the wake-up pipes, serving the queues, split partitions
 *   produce.c  triggers, dead letters, decisions, the changelog; delivery reports
 *   txn.c      exactly-once's transactions
 *   admin.c    metadata and admin requests about topics
 *   replay.c   a replay's reads outside any group; key partitioners
 *   offsets.c  the group's offsets and members for `cuepoint offsets`
 *   mock.c     the mock cluster
 *   loader.c   a plain producer for loading topics
 */
#ifndef CUEPOINT_KAFKA_INT_H
#define CUEPOINT_KAFKA_INT_H

#include "cuepoint/kafka.h"
#include "cuepoint/kafka_group.h"
#include "cuepoint/log.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How many records the consumer's loop holds ahead of the one handled, in
 * three steps of a third each: a record's bytes are fetched into the CPU's
 * caches as it arrives, its user looked up (hashed, the cache's slot
 * fetched) a third later, the user's entry fetched two thirds later. A
 * step is about one cache miss of time at this machine's cost per record. */
#define KAFKA_AHEAD 12

struct cue_kafka {
    const cue_config *cfg;     /* borrowed */
    cue_kafka_handler h;       /* copied; ctx borrowed */
    rd_kafka_t *consumer;      /* owned */
    rd_kafka_t *producer;      /* owned */
    rd_kafka_queue_t *cq, *pq; /* owned references to the clients' queues */
    /* The output topic: trigger.topic for the pipeline (triggers, or the
     * repartition stage's re-keyed records), a replay's or the members
     * topic's otherwise; NULL without a producer. */
    rd_kafka_topic_t *output;
    rd_kafka_topic_t *dead, *decisions, *changelog;
    /* Per changelog partition: the offset after the last acknowledged record
     * (-1: none yet), and how many of its records are still in flight. */
    int64_t *changelog_next;
    int32_t changelog_parts;
    int cpipe[2], ppipe[2];
    size_t in_flight;
    /* Commit cycles: records produced since the last seal carry `epoch`'s
     * low bit in their opaque (REC_EPOCH); in_flight_of counts each half, so
     * a sealed cycle knows when its own records are acknowledged while the
     * next cycle's are still being produced (cue_kafka_seal). */
    uint32_t epoch;
    size_t in_flight_of[2];
    bool fatal_raised;
    bool closing;    /* purged records' reports are expected, not failures */
    bool kept;       /* closed, its consumer left to the exit (cue_kafka_close) */
    bool subscribed; /* the consumer joined (or is joining) the group */
    /* Set with the subscription (group.c): how cue_kafka_close leaves the
     * group, so the client's close does not reach into the group's code. */
    void (*leave)(cue_kafka *k, int64_t timeout_ms);
    /* Exactly-once: the producer is transactional; a transaction is open
     * from the first record of a cycle to its commit or abort; a delivery
     * failed inside it (the commit will be refused: abort instead); the
     * producer was fenced (another one has this transactional.id). */
    bool transactional, txn_open, txn_failed, fenced;
    bool txn_hold;         /* cue_kafka_txn_hold: records dropped until the next abort */
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
    /* cue_kafka_open_changelog_writer's: transactional under exactly-once
     * like the pipeline's producer, though outside the group. */
    bool writer;
    size_t message_max; /* the producer's message.max.bytes */
    cue_kafka_stats stats;
    /* Records polled and not yet handed to the handler (with a prefetch
     * handler): a ring, oldest at ahead_first. Handed over, in order,
     * before anything else the consumer reports (kafka_ahead_drain). */
    rd_kafka_message_t *ahead[KAFKA_AHEAD]; /* owned */
    size_t ahead_first, ahead_n;
    uint64_t drops; /* cue_kafka_drop_held calls: a record polled before one is stale */
    /* cue_kafka_consume_batch's records not yet handed over (owned,
     * batch_cap long, with their views), and where they go. */
    rd_kafka_message_t **batch;
    cue_kafka_msg *batch_view;
    size_t batch_n, batch_cap;
    cue_kafka_batch_fn batch_fn;
    void *batch_ctx;
    /* cue_kafka_produce_shared: producing takes `produce_mu` (recursive: a
     * delivery report served while producing may produce a cut copy). */
    bool shared;
    pthread_mutex_t produce_mu;
};

/* Hands the records held ahead to the handler, oldest first. */
void kafka_ahead_drain(cue_kafka *k);

/* Opaque tags on produced records, so a delivery report knows what it was. */
enum { REC_TRIGGER = 1, REC_DEAD_LETTER = 2, REC_DECISION = 3, REC_CHANGELOG = 4 };
/* The opaque's bit for the record's cycle (kafka_int's epoch), above the tag. */
#define REC_EPOCH   0x100
#define REC_TAG(op) ((int)((intptr_t)(op)&0xff))

/* conf.c */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, cue_err *err);
/* The client's configuration (CUE_KAFKA_CONSUMER or CUE_KAFKA_PRODUCER) for
 * `k`, its opaque; NULL with `err` set when a property is refused. */
rd_kafka_conf_t *kafka_conf_new(cue_kafka *k, int client, cue_err *err);
/* The log callback of clients that carry no secrets (the loader, the mock). */
void kafka_plain_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
/* The errors that say another producer took over this transactional.id. */
bool kafka_is_fencing(rd_kafka_resp_err_t e);

/* loop.c: a wake-up pipe, both ends non-blocking and close-on-exec. */
int kafka_pipe_open(int fds[2], cue_err *err);

/* A monotonic clock for the clients' own deadlines. */
static inline int64_t kafka_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* group.c */
void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                        rd_kafka_topic_partition_list_t *parts, void *opaque);
void kafka_consumer_leave(cue_kafka *k, int64_t timeout_ms);

/* loop.c: a partition's own queue (cue_kafka_split_partitions). */
void kafka_split_open(cue_kafka *k, int32_t p);
void kafka_split_close(cue_kafka *k, int32_t p);

/* produce.c */
void kafka_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* txn.c */
int kafka_txn_init(cue_kafka *k, cue_err *err);
int kafka_txn_begin(cue_kafka *k);

#endif
