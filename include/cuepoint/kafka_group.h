/*
 * kafka_group: the consumer group's offsets and membership, for
 * `cuepoint offsets` and for the runtime's check for resets on assignment.
 * Part of the kafka module (librdkafka stays inside it).
 *
 * Reading (watermarks, committed offsets with their metadata, offsets for a
 * time) uses a consumer that never subscribes, so it never joins the group.
 * Writing the group's offsets is done as a member: the mock broker refuses
 * offset commits from non-members of a group it has seen, so the offsets
 * tool joins (cue_kafka_probe_join), and only if this member was assigned
 * every partition (no other member holds any) commits and leaves.
 *
 * One thread per client. Every call is bounded by its timeout.
 */
#ifndef CUEPOINT_KAFKA_GROUP_H
#define CUEPOINT_KAFKA_GROUP_H

#include "cuepoint/config.h"
#include "cuepoint/err.h"
#include "cuepoint/kafka.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Commit metadata kept per partition, the NUL included (Kafka allows more;
 * cuepoint writes only its reset markers). */
#define CUE_KAFKA_META_MAX 128

/* A consumer of the group application.id with the pipeline's settings, without
 * a producer; it joins only when subscribed. Release with cue_kafka_close. */
int cue_kafka_open_consumer(cue_kafka **out, const cue_config *cfg, const cue_kafka_handler *h,
                            cue_err *err);

/* The group's committed offset (-1 when none) and metadata ("" when none) for
 * each of `n` partitions of input topic `topic` (an index of input.topics;
 * 0 is input.topic). Works for members and non-members. CUE_EUNAVAILABLE
 * when the coordinator did not answer within `timeout_ms`. */
int cue_kafka_group_committed(cue_kafka *k, uint32_t topic, const int32_t *parts, size_t n,
                              int64_t *offsets, char (*meta)[CUE_KAFKA_META_MAX],
                              int64_t timeout_ms, cue_err *err);

/* Commits `offset` for `partition` of input.topic with commit metadata `meta`
 * (NULL: none). With `sync`, waits for the answer and returns CUE_EUNAVAILABLE
 * naming the partition if it failed; otherwise failures are logged. */
int cue_kafka_group_commit(cue_kafka *k, int32_t partition, int64_t offset, const char *meta,
                           bool sync, cue_err *err);
/* The same for partition `partition` of every input topic (input.topics),
 * `offsets[t]` for topic t; `meta` goes with the first topic's. */
int cue_kafka_group_commit_all(cue_kafka *k, int32_t partition, const int64_t *offsets,
                               const char *meta, bool sync, cue_err *err);

/* The first retained offset and high watermark of `partition` of input topic
 * `topic` (as above), asked of the leader. */
int cue_kafka_group_watermarks(cue_kafka *k, uint32_t topic, int32_t partition, int64_t *log_start,
                               int64_t *high, int64_t timeout_ms, cue_err *err);

/* The first offset at or after `time_ms` in each of `n` partitions, as the
 * broker answers (-1: no such record; see cue_offsets_for_time). */
int cue_kafka_group_offsets_for_time(cue_kafka *k, const int32_t *parts, size_t n, int64_t time_ms,
                                     int64_t *answers, int64_t timeout_ms, cue_err *err);

/* A member of the group as the cluster describes it. */
typedef struct cue_kafka_member {
    char client_id[128];
    char host[128];
} cue_kafka_member;

/* The group's members (up to `cap` of them in `out`, the count in `*n`), from
 * ListGroups and DescribeGroups. CUE_EVERSION when the cluster did not
 * describe the group (the mock broker does not implement those requests). */
int cue_kafka_group_members(cue_kafka *k, cue_kafka_member *out, size_t cap, size_t *n,
                            int64_t timeout_ms, cue_err *err);

/* A member that joins the group only to see whether anyone else is in it.
 * Caller's storage; its fields are read after cue_kafka_probe_join. */
typedef struct cue_kafka_probe {
    cue_kafka *k;        /* owned; joined to the group */
    bool got_assignment; /* the group assigned this member (possibly nothing) */
    size_t assigned;     /* partitions in that first assignment */
} cue_kafka_probe;

/* Joins (subscribing to input.topic, cooperative-sticky like the pipeline)
 * and waits for the first assignment: up to `timeout_ms`, or longer than
 * the consumer's session.timeout.ms when that is longer (a member that just
 * stopped or died counts in the group until then). It fetches nothing.
 * CUE_EUNAVAILABLE when no assignment came in time (e.g. the group waits for
 * a member that died without leaving); the probe must be left either way. */
int cue_kafka_probe_join(cue_kafka_probe *p, const cue_config *cfg, int64_t timeout_ms,
                         cue_err *err);

/* Leaves the group (one more rebalance for the others) and frees the client. */
void cue_kafka_probe_leave(cue_kafka_probe *p, int64_t timeout_ms);

#endif
