/*
 * replay: `cuepoint replay`, the input history run again through the journeys
 * into a state directory of its own, without touching the live pipeline.
 *
 * From the input topic, the replay's consumer is outside every group: the
 * caller's range says where each partition starts and stops (offsets, times
 * mapped through the broker's offsets-for-times, or the log's ends), the
 * partitions are assigned directly, and nothing is committed to Kafka. Each
 * partition is a task with its own stream time, exactly as in the live run,
 * so the same records give the same triggers with the same ids. Time moves
 * only with the records (no wall clock), plus an optional advance at the end.
 *
 * From a file of JSON lines, records are placed in partitions by the user id
 * with librdkafka's partitioner (what a producer keyed by user id does), and
 * each partition's records are numbered from 0 like a topic's offsets, so a
 * file holding what the topic holds replays exactly like the topic.
 *
 * Triggers go to a stream (JSON lines) or, only when named, to a Kafka topic
 * with a cuepoint-replay header; dead letters go to a stream, never to the
 * live dead-letter topic. One thread. Borrows everything in its options.
 */
#ifndef CUEPOINT_REPLAY_H
#define CUEPOINT_REPLAY_H

#include "cuepoint/config.h"
#include "cuepoint/err.h"
#include "cuepoint/filemode.h"
#include "cuepoint/machine.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Where partitions start and stop. Offsets are per partition or for all. */
typedef enum {
    CUE_REPLAY_BEGINNING,
    CUE_REPLAY_END,
    CUE_REPLAY_OFFSET,
    CUE_REPLAY_TIME
} cue_replay_bound;

#define CUE_REPLAY_POINTS_MAX 1024

typedef struct cue_replay_point {
    int32_t partition; /* -1: every partition */
    int64_t offset;
} cue_replay_point;

typedef struct cue_replay_range {
    cue_replay_bound from; /* BEGINNING, OFFSET or TIME */
    cue_replay_bound to;   /* END, OFFSET (exclusive) or TIME (exclusive) */
    int64_t from_time_ms, to_time_ms;
    cue_replay_point from_points[CUE_REPLAY_POINTS_MAX], to_points[CUE_REPLAY_POINTS_MAX];
    size_t n_from_points, n_to_points;
    /* Only these partitions (none: every partition, or those --from-offset names). */
    int32_t only[CUE_REPLAY_POINTS_MAX];
    size_t n_only;
} cue_replay_range;

/* One partition's plan: the caller fills the watermarks, cue_replay_plan the rest. */
typedef struct cue_replay_part {
    int32_t partition;
    int64_t low, high;  /* log start and high watermark when the replay began */
    int64_t start, end; /* replay [start, end) */
    bool selected;
    bool clamped; /* an asked-for offset was outside [low, high] */
    bool no_time; /* no record at or after --from-time: the range is empty */
} cue_replay_part;

/* The broker's offsets-for-times answer for one partition: the first offset
 * whose timestamp is at or after ts_ms, or -1 when there is none. A seam, so
 * the mapping can be tested with answers the mock broker never gives. */
typedef int (*cue_replay_lookup_fn)(void *ctx, int32_t partition, int64_t ts_ms, int64_t *offset,
                                    cue_err *err);

/* Fills start/end/selected of parts[0..n) from the range. A time with no
 * record at or after it maps to the high watermark (nothing from there).
 * CUE_EUSAGE when the range names a partition the topic does not have. */
int cue_replay_plan(const cue_replay_range *r, cue_replay_part *parts, int32_t n,
                    cue_replay_lookup_fn lookup, void *ctx, cue_err *err);

typedef struct cue_replay_opts {
    const cue_config *cfg;           /* the live config, with state.dir the replay's own */
    const cue_machines *ms;          /* the journeys to replay with */
    const struct cue_policy *policy; /* the policy stage, or NULL */
    FILE *decisions;                 /* its decision records, or NULL */
    const char *replay_id;
    /* The source: a JSON-lines stream when `in` is set, else the input topic. */
    FILE *in;
    const char *input_name;
    int32_t file_partitions; /* partitions to place a file's records in (>= 1) */
    int partitioner;         /* cue_kafka_partitioner_find */
    cue_replay_range range;  /* for the topic */
    /* Triggers to `out`, or to `output_topic` when set. Dead letters to `dead`. */
    FILE *out;
    const char *output_topic;
    FILE *dead;
    int64_t since_ms;      /* write only triggers at or after this time; INT64_MIN: all */
    int64_t advance_to_ms; /* at the end, move every partition's time here; INT64_MIN: don't */
    /* The reader's clock for records without a Kafka timestamp (a file's),
     * epoch ms; 0: such records are not checked for a time in the future. */
    int64_t clock_ms;
    bool progress_tty;           /* a progress line on stderr, else JSON log lines */
    bool quiet;                  /* neither */
    volatile sig_atomic_t *stop; /* set (e.g. by a signal) to stop early */
} cue_replay_opts;

typedef struct cue_replay_result {
    cue_filemode_result sum; /* every partition's task stats and triggers, summed */
    uint64_t before_since;   /* triggers made but not written (before since_ms) */
    uint64_t target;         /* records the range holds (topic) */
    int32_t partitions;      /* partitions replayed */
    bool stopped;            /* stopped early by *stop */
} cue_replay_result;

/* Runs the replay. 0 when done (dead letters included); CUE_EUNAVAILABLE when
 * the brokers do not answer or a delivery fails; CUE_ENOTFOUND for a missing
 * input topic; CUE_ESTORE/CUE_EIO for the disk. */
int cue_replay_run(const cue_replay_opts *o, cue_replay_result *res, cue_err *err);

#endif
