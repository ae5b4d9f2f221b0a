/*
 * codec: one user's state, in memory and as a versioned binary record.
 *
 * The in-memory form (cue_user) has fixed capacities from limits.h, so the
 * engine changes it without allocating; it is large (~100 KiB) and meant to be
 * a reused scratch, one per task. The record form is compact (varints, only
 * what is set) and is what RocksDB and the changelog hold (the cache holds
 * images, below):
 *
 *   "CU" | format version (1 byte) | body | XXH32 of everything before (4 bytes LE)
 *
 * Names in the record (machine, state, timer, counter, variable, emitted-once
 * trigger) are 32-bit hashes, so a record survives machines being edited:
 * decoding maps them back through the current machine set and applies the
 * machine's on_version_change rule, and its `migrate` map (machine.h), to
 * instances saved under another version. An instance whose state is gone and
 * that no rule places is finished and counted as stranded, never dropped
 * without a count; cue_codec_decode_traced tells a caller (the deploy plan)
 * what became of each migrated instance and its timers.
 * Decoding rejects a wrong magic, an unknown version, a bad checksum and any
 * field out of bounds with CUE_ECORRUPT / CUE_EVERSION and a message saying
 * which. Pure; any thread.
 */
#ifndef CUEPOINT_CODEC_H
#define CUEPOINT_CODEC_H

#include "cuepoint/buf.h"
#include "cuepoint/err.h"
#include "cuepoint/hash.h"
#include "cuepoint/limits.h"
#include "cuepoint/machine.h"

#include <stdbool.h>
#include <stdint.h>

/* Format 1: no policy state. Format 2 adds the policy section. Format 3 adds
 * the event ids after it (the policy section is then always there, empty or
 * not). Format 4 adds, after the event ids, the last applied offsets of the
 * input topics after the first (input.topics). Each user is written in the
 * smallest format that holds it, and all four are read. */
#define CUE_CODEC_VERSION        4
#define CUE_CODEC_VERSION_TOPICS 4
#define CUE_CODEC_VERSION_IDS    3
#define CUE_CODEC_VERSION_POLICY 2
#define CUE_CODEC_VERSION_PLAIN  1

/* No timer armed. */
#define CUE_TIMER_NONE INT64_MIN
/* No input applied yet. */
#define CUE_OFFSET_NONE INT64_MIN

typedef struct cue_var {
    uint8_t type; /* cue_value_type: ABSENT (unset), NULL, BOOL, INT, DOUBLE, STRING */
    uint8_t len;  /* STRING */
    bool b;
    int64_t i;
    double d;
    char s[CUE_VALUE_BYTES_MAX];
} cue_var;

typedef struct cue_instance {
    uint16_t machine; /* index in the machine set */
    uint16_t state;   /* index in the machine */
    uint32_t version; /* of the machine when this instance last ran */
    bool finished;
    uint8_t key_len;
    char key[CUE_KEY_BYTES_MAX];
    uint32_t once; /* bit i: trigger i was emitted with once */
    int64_t started_ms, updated_ms;
    int64_t counters[CUE_MACHINE_COUNTERS_MAX];
    cue_var vars[CUE_MACHINE_VARS_MAX];
    int64_t timers[CUE_MACHINE_TIMERS_MAX]; /* due time, or CUE_TIMER_NONE */
} cue_instance;

/* ---- the policy stage's memory of a user (policy.h decides with it) ---- */

/* What happened to a trigger; names are stable (decision records, state JSON). */
#define CUE_OUTCOMES(X)                                                                            \
    X(SENT, "sent")                                                                                \
    X(DEFERRED, "deferred")                                                                        \
    X(SUPPRESSED, "suppressed")                                                                    \
    X(CANCELLED, "cancelled")
typedef enum cue_outcome {
#define CUE_OUTCOME_ENUM(name, text) CUE_OUTCOME_##name,
    CUE_OUTCOMES(CUE_OUTCOME_ENUM)
#undef CUE_OUTCOME_ENUM
        CUE_OUTCOME_COUNT
} cue_outcome;
const char *cue_outcome_name(cue_outcome o);

/* Why; "rule" in a decision record names the cap, experiment or setting. */
#define CUE_WHYS(X)                                                                                \
    X(NONE, "none")                                                                                \
    X(CAP, "cap")                                                                                  \
    X(COOLDOWN, "cooldown")                                                                        \
    X(QUIET_HOURS, "quiet_hours")                                                                  \
    X(NO_CONSENT, "no_consent")                                                                    \
    X(HOLDOUT, "holdout")                                                                          \
    X(TOO_LATE, "too_late")                                                                        \
    X(CONSENT_WITHDRAWN, "consent_withdrawn")                                                      \
    X(ERASED, "erased")                                                                            \
    X(DEFERRED_FULL, "deferred_full")                                                              \
    X(MACHINE_CHANGED, "machine_changed")                                                          \
    X(TOO_LARGE, "too_large")
typedef enum cue_why {
#define CUE_WHY_ENUM(name, text) CUE_WHY_##name,
    CUE_WHYS(CUE_WHY_ENUM)
#undef CUE_WHY_ENUM
        CUE_WHY_COUNT
} cue_why;
const char *cue_why_name(cue_why w);

/* Channels, in a fixed order (bit i of masks). */
typedef enum cue_channel { CUE_CH_PUSH = 0, CUE_CH_EMAIL, CUE_CH_IN_APP, CUE_CH_SMS } cue_channel;
extern const char *const cue_channel_names[CUE_CHANNELS_MAX];
#define CUE_CH_NONE 0xff

typedef enum { CUE_CONSENT_DEFAULT = 0, CUE_CONSENT_GRANTED, CUE_CONSENT_DENIED } cue_consent;

/* A trigger that was sent (for caps and cooldowns). Names are hashes, as in
 * the record, so edits to machines do not break them. */
typedef struct cue_sent {
    int64_t ms;
    uint32_t machine, trigger; /* name hashes */
    uint8_t cls;               /* priority class index (policy file) */
    uint8_t channel;
} cue_sent;

/* A trigger waiting for a window to open: its record, without the policy's
 * fields, and what deciding again needs. */
typedef struct cue_deferred {
    int64_t due_ms;  /* when to decide again */
    int64_t time_ms; /* the trigger's own time (its cause) */
    uint32_t machine, trigger;
    uint8_t why; /* cue_why it waits */
    bool timer;  /* caused by a timer: its age counts from time_ms */
    bool late;   /* let through late and marked (late: mark): it goes out marked */
    char id[CUE_HASH_HEX_LEN + 1];
    uint16_t rec_len;
    char rec[CUE_POLICY_DEFERRED_BYTES_MAX];
} cue_deferred;

typedef struct cue_decided {
    int64_t ms;    /* when it was decided (stream time) */
    int64_t until; /* DEFERRED: until when; else INT64_MIN */
    uint32_t machine, trigger;
    uint8_t outcome, why, channel;
    char id[CUE_HASH_HEX_LEN + 1];
} cue_decided;

typedef struct cue_user_policy {
    uint8_t consent[CUE_CHANNELS_MAX]; /* cue_consent */
    uint8_t muted;                     /* bit per channel */
    uint8_t n_sent, n_deferred, n_decided;
    cue_sent sent[CUE_POLICY_SENDS_MAX];            /* oldest first */
    cue_deferred deferred[CUE_POLICY_DEFERRED_MAX]; /* any order */
    cue_decided decided[CUE_POLICY_DECISIONS_MAX];  /* oldest first */
} cue_user_policy;

/* True when the policy part holds nothing (the record stays format 1). */
bool cue_user_policy_empty(const cue_user_policy *p);

/* An event the user applied that named an event id: the id's 64-bit hash
 * and the event's time, kept to recognise the same event sent again. */
typedef struct cue_seen_id {
    int64_t ms;
    uint64_t hash;
} cue_seen_id;

typedef struct cue_user {
    uint8_t id_len;
    char id[CUE_USER_ID_BYTES_MAX];
    uint8_t attr_len[CUE_ATTR_COUNT];
    char attrs[CUE_ATTR_COUNT][CUE_ATTR_BYTES_MAX];
    int64_t last_offset; /* input position of the last applied record (first input topic) */
    /* ... of each further input topic (input.topics[1..]), CUE_OFFSET_NONE
     * when none: offsets of different topics cannot be compared. */
    int64_t more_offsets[CUE_INPUT_TOPICS_MAX - 1];
    int64_t last_event_ms; /* event time of the last applied event */
    int64_t indexed_due;   /* this user's entry in the timer index, or CUE_TIMER_NONE */
    uint16_t n_instances;
    cue_instance inst[CUE_USER_INSTANCES_MAX];
    cue_user_policy policy;
    uint8_t n_seen;
    cue_seen_id seen[CUE_EVENT_IDS_MAX]; /* oldest first */
    /* Ids of events at or before this time may have been dropped to keep
     * within the bound: such an event cannot be told from a copy.
     * INT64_MIN: the list is whole. */
    int64_t seen_floor_ms;
} cue_user;

/* What decoding had to change to fit the current machines; the caller counts it. */
typedef struct cue_codec_stats {
    uint64_t dropped_instances; /* machine gone, or restarted (on_version_change, a rule) */
    uint64_t dropped_names;     /* counter or variable gone */
    uint64_t migrated;          /* instances saved under another version, of which: */
    uint64_t moved;             /* ... moved to another state by a `migrate` rule */
    uint64_t finished;          /* ... finished by a rule (or moved into a final state) */
    uint64_t stranded;          /* ... finished: their state is gone and no rule places them */
    uint64_t timers_moved;      /* pending timers renamed or shifted by a rule */
    uint64_t
        timers_dropped; /* pending timers dropped: by a rule, gone, or their instance finished */
} cue_codec_stats;

void cue_codec_stats_add(cue_codec_stats *sum, const cue_codec_stats *s);

/* What became of one instance stored under another version (or in a state
 * its version no longer has), for cue_codec_decode_traced. */
typedef enum cue_mig_outcome {
    CUE_MIG_KEPT = 0,  /* in its state, found by name */
    CUE_MIG_MOVED,     /* to another state, by a rule */
    CUE_MIG_FINISHED,  /* finished, by a rule, a final state or on_version_change */
    CUE_MIG_RESTARTED, /* dropped, by a rule or on_version_change: its start begins afresh */
    CUE_MIG_STRANDED,  /* its state is gone and no rule places it: finished, counted */
    CUE_MIG_DONE,      /* its journey was already over: stays finished */
    CUE_MIG_GONE,      /* its machine is not loaded: dropped */
    CUE_MIG_OUTCOMES
} cue_mig_outcome;
extern const char *const cue_mig_outcome_names[CUE_MIG_OUTCOMES];

typedef enum cue_migt_fate {
    CUE_MIGT_KEPT = 0, /* same name, same time */
    CUE_MIGT_MOVED,    /* renamed or shifted by a rule */
    CUE_MIGT_DROPPED,  /* by a rule */
    CUE_MIGT_GONE,     /* no timer of its name, no rule: dropped */
    CUE_MIGT_FINISHED, /* its instance finished (or restarted): dropped */
    CUE_MIGT_FATES
} cue_migt_fate;
extern const char *const cue_migt_fate_names[CUE_MIGT_FATES];

typedef struct cue_migration {
    uint32_t machine_hash;
    const cue_machine *m; /* NULL: GONE */
    uint16_t machine;     /* index in the set */
    uint32_t from_version;
    uint32_t from_state;      /* name hash */
    const char *from_name;    /* NULL when neither this version nor a rule knows it */
    uint8_t outcome;          /* cue_mig_outcome */
    int16_t to_state;         /* state index now; -1 when dropped */
    const cue_mig_rule *rule; /* the state rule that applied, or NULL */
    uint8_t n_timers;
    struct {
        uint32_t from; /* name hash */
        const char *from_name;
        uint8_t fate; /* cue_migt_fate */
        int16_t to;   /* timer index now, or -1 */
        int64_t due_was, due;
    } timers[CUE_MACHINE_TIMERS_MAX];
} cue_migration;

typedef void (*cue_migration_fn)(const cue_migration *mg, void *ctx);

/* A fresh user with no instances. */
void cue_user_init(cue_user *u, const char *id, size_t id_len);

/* A clean instance of machine `m` (index `mi`) in its initial state. */
void cue_instance_init(cue_instance *in, const cue_machine *m, uint16_t mi, int64_t now_ms);

/* Removes instance i, keeping the order of the others. */
void cue_user_remove_instance(cue_user *u, size_t i);

/* Encodes `u` into `out` (replacing its contents). CUE_ENOMEM only. */
int cue_codec_encode(const cue_user *u, const cue_machines *ms, cue_buf *out);

/* Writes the checksum of an encoded record into its last four bytes. */
void cue_codec_seal(void *rec, size_t len);

/* Decodes a record into `u`. `stats` may be NULL. */
int cue_codec_decode(const void *rec, size_t len, const cue_machines *ms, cue_user *u,
                     cue_codec_stats *stats, cue_err *err);

/* As cue_codec_decode, calling `fn` for each instance that was stored under
 * another version, in a state its version lacks, or for a machine that is not
 * loaded: what became of it. Called as instances are read; a record that
 * turns out corrupt after some have been reported still fails. */
int cue_codec_decode_traced(const void *rec, size_t len, const cue_machines *ms, cue_user *u,
                            cue_codec_stats *stats, cue_migration_fn fn, void *ctx, cue_err *err);

/* ---- the state cache's form: an image (codec_image.c) ----
 *
 * Written and read by plain copies, for the cache that holds users between
 * commits: no name look-ups, no varints, no bounds to check, so a cached
 * user costs a few hundred instructions a step instead of a record's decode
 * and encode. Valid only in this process and with the machine set that wrote
 * it (machine, state and timer indices); the commit makes the record from it
 * (cue_codec_image_load, then cue_codec_encode). Never leaves memory. */

/* Writes `u`'s image into `out` (replacing its contents). CUE_ENOMEM only. */
int cue_codec_image_save(const cue_user *u, const cue_machines *ms, cue_buf *out);

/* True when `val` is an image (else it is a record, or not a state). */
bool cue_codec_is_image(const void *val, size_t len);

/* Reads an image this process saved with the same machine set into `u`. */
void cue_codec_image_load(const void *img, size_t len, const cue_machines *ms, cue_user *u);

/* The indexed due time an image holds (cue_codec_is_image must be true). */
int64_t cue_codec_image_indexed_due(const void *img);

/* The earliest due time of any armed timer or deferred trigger in `u`, or
 * CUE_TIMER_NONE. The timer index holds this one time per user. */
int64_t cue_user_next_due(const cue_user *u);

/* Reads just the indexed due time from a record's header, without decoding
 * the rest (nor verifying the checksum). CUE_ECORRUPT if the header does not
 * read. (An image's: cue_codec_image_indexed_due.) */
int cue_codec_peek_indexed_due(const void *rec, size_t len, int64_t *out);

/* Writes `u` as one JSON object (for `cuepoint state`, /v1/users and tests). */
int cue_user_to_json(const cue_user *u, const cue_machines *ms, cue_buf *out);

#endif
