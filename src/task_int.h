/* task's inside: the task that task.c (a record's or a timer's step, the
 * firing of timers), task_policy.c (the step's triggers and the policy
 * stage), task_timers.c (the timer index entries made while processing,
 * the window's refill) and task_commit.c (the commit) share. */
#ifndef CUEPOINT_TASK_INT_H
#define CUEPOINT_TASK_INT_H

#include "cuepoint/task.h"

#include "cuepoint/cache.h"
#include "cuepoint/codec.h"
#include "cuepoint/journey_counts.h"
#include "cuepoint/policy.h"
#include "cuepoint/timers.h"
#include "cuepoint/tz.h"

/* A new timer index entry, held until commit (or a timer reload) so that the
 * batch gets them sorted, which RocksDB inserts far faster, and each once. */
typedef struct timer_op {
    int64_t due;      /* CUE_TIMER_NONE: it came up, or its user went (not written) */
    const char *key;  /* set just before sorting: timer_keys may move while it grows */
    uint32_t key_off; /* into timer_keys */
    uint8_t key_len;
} timer_op;

struct cue_task {
    const cue_config *cfg;  /* borrowed */
    const cue_machines *ms; /* borrowed */
    cue_store *store;       /* borrowed */
    cue_task_sink sink;     /* copied; its ctx is borrowed */
    uint32_t partition;
    /* Per input topic (input.topics' order): the next offset to read. */
    int64_t next[CUE_INPUT_TOPICS_MAX];
    int64_t stream_ms;
    int64_t since_commit;
    int64_t fired_upto;     /* every index entry due at or before this has been used */
    int64_t purged_upto;    /* ... and is deleted from the store up to here */
    cue_event_decoder *dec; /* owned */
    cue_cache *cache;       /* owned */
    cue_timers *timers;     /* owned */
    cue_user *user;         /* owned scratch: the user being stepped */
    cue_buf enc;            /* owned: the stepped user's image, for the cache */
    cue_buf sealed;         /* owned: a state on its way to the store, with checksum */
    /* Owned: the cycle's changed users as records (cue_task_commit_encode),
     * each as (id length, id, record length, record) in the cache's dirty
     * order, for the changelog and the store batch, which take them in that
     * order from their own positions. `recs_ok`: made, and no step has
     * changed a user since. */
    cue_buf recs;
    bool recs_ok;
    size_t recs_log_at, recs_flush_at;
    /* Owned: a sealed cycle's changelog records, held from the seal until
     * its triggers are acknowledged (cue_task_commit_hold_log), each as
     * (kind, key length, key, value length, value); `log_holding` while they
     * are being made, `log_hold_failed` when one did not fit in memory. */
    cue_buf log_held;
    bool log_holding, log_hold_failed;
    /* Owned scratch, made at the first commit: a cached user read back from
     * its image to be encoded as a record (the commit can come in the middle
     * of a step, while t->user is in use). Only the instances a user has
     * are written, so its untouched pages cost no memory. */
    cue_user *flushing;
    /* While a batch for the store's writer is being built: the images of
     * its changed users, which the writer encodes (task_commit.c). Owned
     * until handed over with the batch; NULL otherwise. */
    struct fill_job *filling;
    cue_buf rec;        /* owned: encoded trigger */
    cue_buf loaded;     /* owned: a state read from the store */
    cue_buf timer_ops;  /* owned: timer_op array, index entries not yet written */
    cue_buf timer_keys; /* owned: the user ids those ops name, back to back */
    cue_buf timer_sort; /* owned: sort items and scratch for cue_task_index_flush */
    /* t->user's pending index entry: its index in timer_ops plus one, or 0.
     * Kept with the user's cache entry (its owner's word, which the cache's
     * flush clears as the commit empties timer_ops), so that a user has one
     * pending entry, moved in place, and nothing reads the cache again to
     * tell which of a user's entries is live. */
    uint32_t user_op;
    const cue_policy *policy; /* borrowed; NULL: every trigger goes out as made */
    cue_policy_tz *tz;        /* owned, with a policy */
    int64_t now_ms;           /* stream time of the current step: its triggers go out then */
    /* The input offsets in the last changelog meta record; logged[0] = -1:
     * write one at the next commit. */
    int64_t logged[CUE_INPUT_TOPICS_MAX];
    int64_t logged_ms;      /* ... and about when it was written (synced_ms then) */
    bool logged_now;        /* ... in this cycle */
    int64_t changelog_next; /* the partition's changelog position, from its meta */
    int64_t synced_ms;      /* ... and when the store was last in line with it */
    cue_buf pend;           /* owned: pending array of this step */
    cue_buf pend_recs;      /* owned: their encoded records, back to back */
    cue_buf decision;       /* owned: one decision record */
    cue_buf erased;         /* owned: ids erased since the commit, each after its length */
    cue_deferred *released; /* owned, with a policy: a deferred trigger being decided again */
    bool user_loaded;       /* t->user holds the current event's user */
    int64_t clock_ms;       /* the reader's clock (cue_task_set_clock), or INT64_MIN */
    const cue_record *in;   /* the record being processed (borrowed for the call) */
    /* A repair not committed yet: the poisoned stream time it replaced and
     * its limit, to repair again if a rollback reloads that time. */
    int64_t repair_from, repair_ms;
    char msg[512];         /* a dead letter's message that needs formatting */
    cue_tz *jtz;           /* owned when journeys use local clock times: users' zones */
    uint64_t bad_zones[8]; /* hashes of zone names found not to be zones; 0 = free */
    unsigned next_bad_zone;
    cue_task_stats stats;

    cue_journey_counts *journeys; /* owned once counted (cue_task_count_journeys) */
};

/* task_timers.c: t->user's index entry kept in step with its timers (a
 * lower bound, written at the commit); its pending entry dropped, having
 * come up at `due` or its user gone (CUE_TIMER_NONE); the pending entries
 * into the commit's batch; the window's next slice read from the store's
 * index merged with the pending entries. */
void cue_task_index_sync(cue_task *t);
void cue_task_index_kill(cue_task *t, int64_t due);
void cue_task_index_flush(cue_task *t);
int cue_task_timers_reload(cue_task *t, cue_err *err);

/* task_policy.c: the engine's trigger callback (held for the policy, or
 * sent); the step's held triggers decided; the user's deferred triggers
 * due by `due` decided again; the policy's callback for a deferred trigger
 * that an event cancels; an erased user's deferred triggers ended with
 * their decisions, and the erasure's own. */
void cue_task_on_trigger(const cue_trigger *tr, void *ctx);
void cue_task_decide_step(cue_task *t);
void cue_task_release_deferred(cue_task *t, int64_t due);
void cue_task_on_cancelled(const cue_deferred *x, const cue_decision *d, void *ctx);
void cue_task_decide_erased(cue_task *t, const cue_event *ev);

/* task_commit.c: the task's own commit (alone, or every task's when a
 * transaction spans them: the sink's), and the cycle's records dropped
 * (cue_task_commit_encode) when a step changes a user after them. */
int cue_task_self_commit(cue_task *t, cue_err *err);
void cue_task_recs_drop(cue_task *t);

/* Around what touches things every task shares (cue_task_sink's exclusive). */
static inline void cue_task_exclusive(cue_task *t, bool enter)
{
    if (t->sink.exclusive) t->sink.exclusive(enter, t->sink.ctx);
}

#endif
