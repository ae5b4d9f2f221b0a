/*
 * task: one input partition's processing, wired from the pure parts (event
 * decoding, the engine, the codec) and the stateful ones (the user cache, the
 * timer window, the store). The file mode runs one task over partition 0; the
 * Kafka pipeline runs one per assigned partition.
 *
 * For each record, in order: decode (bad records become dead letters, and the
 * position still advances); refuse a time too far ahead of the record's
 * reference (below) and a late one; advance stream time, firing every
 * timer it passed, in (due time, user id) order, before the event; skip the event
 * if the user's state has already applied this position (promise 2); apply it;
 * then fire timers due at or before stream time. A timer due at exactly an
 * event's time fires after that event: time has reached it, not passed it.
 * Triggers and dead letters go to the sink as made.
 *
 * cue_task_commit is the commit cycle: the sink's flush (triggers durable
 * first: promise 3), then one store batch with the used timer index range
 * deleted, the index entries made in the cycle that are still live (each
 * user's current one; superseded ones are dropped), the dirty users and the
 * partition's meta (next input offset, stream time). Nothing else writes to
 * the store while records are processed: the timer window refills from the
 * store's index merged with the entries pending in memory. The task also
 * commits by itself when commit.records records have passed or the cache's
 * dirty share is high.
 * One thread. The task borrows the config, machines, store and sink.
 */
#ifndef CUEPOINT_TASK_H
#define CUEPOINT_TASK_H

#include "cuepoint/cache.h"
#include "cuepoint/config.h"
#include "cuepoint/engine.h"
#include "cuepoint/err.h"
#include "cuepoint/event.h"
#include "cuepoint/machine.h"
#include "cuepoint/record.h"
#include "cuepoint/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A record that could not be used, with all the context of the record
 * (borrowed for the sink's call). */
typedef struct cue_dead_letter {
    cue_reason reason;
    const char *message; /* names the field or the problem */
    const char *raw;     /* the record as received (its value) */
    size_t raw_len;
    uint32_t partition;
    int64_t offset;
    const char *key; /* NULL: the record had none (files) */
    size_t key_len;
    int64_t timestamp_ms; /* its Kafka timestamp, or CUE_NO_TIMESTAMP */
} cue_dead_letter;

typedef struct cue_task_sink {
    /* A trigger, and its encoded CloudEvents record; both borrowed for the call. */
    void (*trigger)(const cue_trigger *t, const char *rec, size_t len, void *ctx);
    /* A record that could not be applied; borrowed for the call. */
    void (*dead_letter)(const cue_dead_letter *dl, void *ctx);
    /* A policy decision as a JSON record, keyed by the user id (NULL for an
     * erasure, which carries no personal data); both borrowed for the call.
     * NULL when decisions are not kept. */
    void (*decision)(const char *key, size_t key_len, const char *rec, size_t len, void *ctx);
    /* The changelog (Kafka mode; NULL: none). At each commit, before the
     * flush: one record per changed user (its state record exactly as the
     * store gets it; `val` NULL deletes), then the partition's meta record
     * under the empty key: {"input_offset":N,"stream_time_ms":T}. All
     * borrowed for the call. */
    void (*changelog)(uint32_t partition, const char *key, size_t key_len, const void *val,
                      size_t len, void *ctx);
    /* The tombstone of a user erased in the cycle (NULL: a plain one through
     * `changelog`): marked, so that the copies a restore or a standby makes
     * erase it physically too, which a state TTL's tombstone does not need. */
    void (*changelog_erasure)(uint32_t partition, const char *key, size_t key_len, void *ctx);
    /* After the flush: the changelog offset after the last acknowledged
     * record of `partition`, kept in the partition's meta; -1 when unknown.
     * *synced_ms gets the wall-clock time, which no record past that offset
     * can precede (the meta's synced_ms). */
    int64_t (*changelog_next)(uint32_t partition, int64_t *synced_ms, void *ctx);
    /* Makes everything emitted so far durable; non-zero stops the commit. */
    int (*flush)(void *ctx, cue_err *err);
    /* Exactly-once (NULL otherwise): the task's own commits (commit.records,
     * a full cache) call this instead of committing alone, because one
     * transaction covers every task of the instance and the caller commits
     * them all (cue_task_commit_prepare, the transaction, then
     * cue_task_commit_finish on each). Non-zero is returned by the call
     * that committed; CUE_EABORTED means the caller rolls the tasks back. */
    int (*commit)(void *ctx, cue_err *err);
    /* With several stream threads (NULL otherwise): called with true before
     * and false after what a task does to things every task shares, the
     * store's batch and its writer's queue and the producer's flush (its own
     * commit, a read that waits for the writer, a refill of its timers from
     * the store), so that no other task is processing meanwhile. */
    void (*exclusive)(bool enter, void *ctx);
    /* NULL: a task whose changed users fill half its cache commits alone,
     * there and then. Set (the pipeline, at least once): it asks for the
     * instance's next commit cycle instead, which seals every task's batch
     * without stopping intake for the acknowledgements and the write; the
     * task commits alone only if its cache fills before that cycle comes.
     * Called from any stream thread, once per record while it holds. */
    void (*want_cycle)(void *ctx);
    void *ctx;
} cue_task_sink;

typedef struct cue_task_stats {
    uint64_t records;      /* every record offered */
    uint64_t applied;      /* events applied to a user's state */
    uint64_t duplicates;   /* skipped: already applied (promise 2) */
    uint64_t late_applied; /* older than the allowed lateness, applied by policy */
    uint64_t dead_letters;
    uint64_t corrupt_states; /* stored states that did not decode (user left as is) */
    uint64_t dead_by_reason[CUE_REASON_COUNT];
    uint64_t commits;
    /* Commits the task made alone, intake stopped (cue_task_self_commit):
     * commit.records reached, or its cache full before a commit cycle. */
    uint64_t own_commits;
    uint64_t state_writes;  /* user records written to the store */
    uint64_t timer_writes;  /* timer index entries put or deleted */
    uint64_t timer_dropped; /* index entries superseded before their commit: not written */
    uint64_t timer_loads;   /* slices read back from the store */
    uint64_t timer_checks;  /* index entries that came up (a user looked at) */
    uint64_t timer_stale;   /* ... of which the user had nothing due then */
    cue_step_stats engine;
    cue_codec_stats codec;
    uint64_t decisions[CUE_OUTCOME_COUNT]; /* by the policy stage, by outcome */
    uint64_t erasures;
    uint64_t expired_users;     /* deleted by state TTL (engine.h) */
    uint64_t ttl_indexed_users; /* stored before state TTL was set: indexed at opening */
    uint64_t changelog_records; /* user records written to the changelog */
    uint64_t migrated_users;    /* users rewritten by the migration pass (migrate.h) */
} cue_task_stats;

typedef struct cue_task cue_task;

/* Opens partition `partition`'s task: reads its meta (next offset, stream time)
 * from the store and, when a machine has a `migrate` map, migrates the
 * partition's stored users (cue_migrate_partition; counted in the stats).
 * With state TTL set (state.ttl or a journey's state_ttl), reads every
 * stored user's record header, and gives those with no timer index entry
 * (written before state TTL was set) one at their expiry.
 * Caller owns `*out`. */
int cue_task_new(cue_task **out, const cue_config *cfg, const cue_machines *ms, cue_store *store,
                 uint32_t partition, const cue_task_sink *sink, cue_err *err);

/* Puts the policy stage (policy.h) between the engine and the sink: triggers
 * are decided at the end of each step, deferred ones wait in the user's state,
 * and each decision goes to the sink's `decision`. `p` is borrowed; NULL keeps
 * triggers going out as made. */
struct cue_policy;
int cue_task_set_policy(cue_task *t, const struct cue_policy *p, cue_err *err);

/* Commits nothing; call cue_task_commit first to keep the work. */
void cue_task_free(cue_task *t);

/* Processes one record (in file mode at cue_task_next_offset). A key that
 * differs from the user id is a dead letter. Returns 0, also for dead
 * letters; an error only when the task cannot go on (the store failed). */
int cue_task_process(cue_task *t, const cue_record *rec, cue_err *err);

/* The reader's clock: the reference time of records without a timestamp
 * (the wall clock when reading a topic; the start of the run for a file).
 * Unset, such records are not checked for a time in the future. */
void cue_task_set_clock(cue_task *t, int64_t now_ms);

/* A partition whose stored stream time is past `limit_ms` was moved there by
 * an event from the future, before such events were refused (or by a clock
 * that has since been set back): its stream time is brought back to
 * `limit_ms` and written at the next commit. Returns the time it had, or
 * INT64_MIN when it was not past the limit. Timers armed from such an event
 * stay until their users' next events re-arm them. */
int64_t cue_task_repair_stream_time(cue_task *t, int64_t limit_ms);

/* A record as a consumer reads it: one below cue_task_next_offset (applied
 * and committed before: a redelivery) is counted as a duplicate and skipped
 * (returns 1); one over event.max.bytes is a dead letter; any other is
 * processed. 0, or what cue_task_process returns. */
int cue_task_offer(cue_task *t, const cue_record *rec, cue_err *err);

/* A hint that a record of user `uid` (a record's key, which must be its user
 * id) comes soon: its cached state is fetched into the CPU's caches (stage 0
 * its slot, stage 1 later its entry; cue_cache_prefetch). Changes nothing. */
void cue_task_prefetch(const cue_task *t, const char *uid, size_t uid_len, int stage);

/* Counts a record the caller skips because it is below cue_task_next_offset
 * (applied and committed before: a redelivery) as a duplicate, so that
 * every record read is counted once: applied, duplicate or dead letter. */
void cue_task_skip(cue_task *t);

/* Dead-letters a record the caller could not even offer (e.g. a line over the
 * size limit, passed truncated), so it is counted and its position consumed
 * like any other record's. */
int cue_task_reject(cue_task *t, const cue_record *rec, cue_reason reason, const char *msg,
                    cue_err *err);

/* Moves stream time to `until_ms` (if later) and fires every timer due by then. */
int cue_task_advance(cue_task *t, int64_t until_ms, cue_err *err);

int cue_task_commit(cue_task *t, cue_err *err);

/* cue_task_commit in two halves, for a commit that spans tasks (exactly-once):
 * prepare flushes the sink and writes the cycle's changelog records; finish,
 * once the caller made them durable, writes the store batch. Nothing reaches
 * the store before finish. */
int cue_task_commit_prepare(cue_task *t, cue_err *err);
/* prepare without its waits: the changelog records produced. The caller
 * makes the sink's records durable before (the triggers) and after (these),
 * once for every task (a wait per task costs a round trip each), then
 * calls finish. */
int cue_task_commit_log(cue_task *t, cue_err *err);
/* cue_task_commit_log for a sealed cycle: the records are made now, from
 * the cycle's state, and held in the task until the caller has the
 * triggers before them acknowledged; then cue_task_commit_release_log
 * produces them (any later changelog write of the task does so first).
 * CUE_ENOMEM only. */
int cue_task_commit_hold_log(cue_task *t, cue_err *err);
void cue_task_commit_release_log(cue_task *t);
/* Whether the task holds changelog records made by hold_log, not yet released. */
bool cue_task_commit_log_held(const cue_task *t);
/* Encodes the cycle's changed users as records now, for the commit to come
 * (the changelog's and the store batch's), so that a caller that waits for
 * the triggers' acknowledgements first does this meanwhile. Optional: a
 * commit encodes what was not, and a step after this makes it encode again.
 * CUE_ENOMEM only. */
int cue_task_commit_encode(cue_task *t, cue_err *err);
int cue_task_commit_finish(cue_task *t, cue_err *err);
/* finish, but the batch goes to the store's writer thread
 * (cue_store_batch_commit_async) and `fn` is called once it is written:
 * the caller goes on processing meanwhile, and commits the group's
 * offsets (those of this commit: cue_task_next_offset_of now) in `fn`.
 * `fn` is called exactly once, with the error too when this fails. */
int cue_task_commit_finish_async(cue_task *t, cue_store_written_fn fn, void *ctx, cue_err *err);

/* Drops every change not yet in the store (dirty and clean cached users,
 * timers in memory and not yet indexed, deferrals, the position) and reloads
 * the partition's meta: the task is then as cue_task_new left it after the
 * last committed batch, with its counters kept. The caller moves its input
 * back to cue_task_next_offset. */
int cue_task_rollback(cue_task *t, cue_err *err);

int64_t cue_task_next_offset(const cue_task *t);
/* ... in input topic `topic` (its index in input.topics); topic 0 is the above. */
int64_t cue_task_next_offset_of(const cue_task *t, uint8_t topic);
int64_t cue_task_stream_time(const cue_task *t);
const cue_task_stats *cue_task_stats_get(const cue_task *t);
/* Adds every counter of `s` into `sum` (partitions' stats into a run's). */
void cue_task_stats_add(cue_task_stats *sum, const cue_task_stats *s);
void cue_task_cache_stats(const cue_task *t, cue_cache_stats *out);

/* Keeps live journey counts for this partition (journey_counts.h): recounted
 * now from the store, then kept in step with each user's changes, marked at
 * each commit and rolled back with the task. Costs a pass over the
 * partition's stored users; the file mode and replays go without. */
struct cue_journey_counts;
int cue_task_count_journeys(cue_task *t, cue_err *err);
/* NULL until cue_task_count_journeys. */
const struct cue_journey_counts *cue_task_journeys(const cue_task *t);

/* Writes the user's current state as JSON (cache, then store) into `out`.
 * CUE_ENOTFOUND when the user has none. */
int cue_task_user_json(cue_task *t, const char *uid, size_t uid_len, cue_buf *out, cue_err *err);

#endif
