/*
 * offsets: moving the live group's input position (`cuepoint offsets reset`)
 * without breaking the promise that no event is applied twice.
 *
 * The state store, not the group, says where a partition resumes, and each
 * user's state records the last offset it applied: a stored position moved
 * backward over existing state would make the replayed records look like
 * repeats and skip them. So a reset is applied to a store per partition as:
 *   - forward (or to the same offset): the users, timers and stream time are
 *     kept and only the stored input offset moves;
 *   - backward: the partition's state is dropped (a range delete) and it
 *     starts empty at the new offset, rebuilt by reprocessing from there.
 *
 * Other instances' stores are reached through Kafka: the tool commits the new
 * offsets with commit metadata naming the reset, the *marker*
 * "cuepoint-reset:ID:OFFSET" (ID unique per reset, OFFSET that partition's new
 * position). On every assignment the runtime reads the group's committed
 * metadata; a marker its store has not applied yet is applied to the store
 * exactly as here (relative to that store's own position), before the
 * partition is read. The runtime's own commits carry the partition's marker
 * forward, so it survives them and a store that comes back later still sees it.
 *
 * Pure planning (targets, clamping, decisions, the marker's text) plus
 * cue_offsets_apply, which writes one partition's reset to a store. One
 * thread; no allocation.
 */
#ifndef CUEPOINT_OFFSETS_H
#define CUEPOINT_OFFSETS_H

#include "cuepoint/err.h"
#include "cuepoint/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Partitions a reset may name explicitly (--to-offset, --partitions): more
 * than any single topic cuepoint is deployed on, and it bounds the command's
 * tables. */
#define CUE_OFFSETS_PARTS_MAX     1024
#define CUE_OFFSETS_MARKER_PREFIX "cuepoint-reset:"
#define CUE_OFFSETS_ID_MAX        48 /* a reset id's bytes, the NUL included */

typedef enum cue_reset_kind {
    CUE_RESET_EARLIEST = 1, /* each partition's log start */
    CUE_RESET_LATEST,       /* each partition's high watermark */
    CUE_RESET_TIME,         /* the first record at or after a time */
    CUE_RESET_OFFSET,       /* explicit offsets per partition */
} cue_reset_kind;

typedef struct cue_reset_spec {
    cue_reset_kind kind;
    int64_t time_ms; /* CUE_RESET_TIME */
    /* CUE_RESET_OFFSET: partition -> offset pairs */
    int32_t offset_parts[CUE_OFFSETS_PARTS_MAX];
    int64_t offsets[CUE_OFFSETS_PARTS_MAX];
    size_t n_offsets;
    /* --partitions: only these (none listed: every partition) */
    int32_t only[CUE_OFFSETS_PARTS_MAX];
    size_t n_only;
} cue_reset_spec;

/* What the broker and the store say about one partition. */
typedef struct cue_offsets_part {
    int32_t partition;
    int64_t log_start; /* first retained offset */
    int64_t high;      /* high watermark */
    /* CUE_RESET_TIME: the broker's answer to "first offset at or after
     * time_ms", or -1 for "no such record" (the mock broker answers -1 for
     * every time). */
    int64_t time_answer;
} cue_offsets_part;

typedef struct cue_offsets_target {
    bool selected;     /* false: the reset leaves this partition alone */
    int64_t requested; /* the offset asked for (before clamping) */
    int64_t offset;    /* the new next offset, within [log_start, high] */
    bool clamped;      /* requested was outside the retained range */
} cue_offsets_target;

/* What applying a target does to a store's partition. */
typedef enum cue_offsets_action {
    CUE_OFFSETS_MOVE = 1, /* forward or the same: state kept, position moved */
    CUE_OFFSETS_DROP,     /* backward: state dropped, rebuilt from the new offset */
} cue_offsets_action;

/* Parses "P:O[,P:O...]" into spec's explicit offsets. CUE_EPARSE naming the
 * item; CUE_ELIMIT past CUE_OFFSETS_PARTS_MAX; CUE_EINVAL for a partition
 * named twice. */
int cue_offsets_parse_list(const char *s, cue_reset_spec *spec, cue_err *err);

/* Parses "P[,P...]" into spec's partition filter. Same errors. */
int cue_offsets_parse_partitions(const char *s, cue_reset_spec *spec, cue_err *err);

/* Maps an offsets-for-times answer: -1 (no record at or after the time) is the
 * high watermark, the position after the last record. */
int64_t cue_offsets_for_time(int64_t answer, int64_t high);

/* The new position of one partition under `spec`. */
cue_offsets_target cue_offsets_target_for(const cue_reset_spec *spec, const cue_offsets_part *p);

/* Moving a store's partition from `stored` (its next offset; -1 when it has
 * none) to `to`. */
cue_offsets_action cue_offsets_decide(int64_t stored, int64_t to);

/* Writes the marker "cuepoint-reset:ID:OFFSET" into `out`. CUE_ELIMIT when it
 * does not fit. */
int cue_offsets_marker_format(char *out, size_t cap, const char *id, int64_t offset);

/* Reads a marker out of commit metadata (`len` bytes, not NUL-terminated):
 * true and `*offset` when it is one. */
bool cue_offsets_marker_parse(const char *meta, size_t len, int64_t *offset);

/* A new reset id: the wall clock in ms and the process id ("1718000000000-4242"). */
void cue_offsets_new_id(char out[CUE_OFFSETS_ID_MAX]);

typedef struct cue_offsets_applied {
    bool already; /* the store had applied this marker: nothing done */
    cue_offsets_action action;
    int64_t from; /* the store's next offset before, -1 when it had none */
    int64_t to;
    uint64_t users; /* users dropped (DROP) or kept (MOVE) */
} cue_offsets_applied;

/* Counts the users the store holds for `partition`. */
int cue_offsets_count_users(cue_store *s, uint32_t partition, uint64_t *n, cue_err *err);

/* Applies the reset named by `marker` (its offset is the partition's new
 * position) to the store's `partition`, unless the store applied that marker
 * already. One synced write; CUE_ESTORE on failure (nothing changed). */
int cue_offsets_apply(cue_store *s, uint32_t partition, const char *marker,
                      cue_offsets_applied *out, cue_err *err);

#endif
