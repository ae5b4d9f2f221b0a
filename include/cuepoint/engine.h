/*
 * engine: the pure step. (user state, one event or one due time, machines) ->
 * (new user state, triggers). It reads no clock and no random source, does no
 * I/O and allocates nothing: the same inputs give the same outputs, which is
 * what lets a replay or a restarted instance reproduce the live run's triggers,
 * ids included.
 *
 * Triggers are handed to a callback as they are made, with their data values
 * resolved; what they borrow (names, the event, the user) is valid during the
 * call only. A trigger's id is a hash of content, never of position:
 *   user | machine | instance key | trigger name | cause | ordinal
 * where the cause is the event's id when it has one, else a hash of its bytes,
 * and for a timer its name and due time; the ordinal separates a trigger name
 * emitted twice by one instance in one step. Any thread; the machine set is
 * shared read-only, the user belongs to the caller.
 *
 * Timers at a clock time of the user's local day (`local_time`) need the
 * user's zone. The engine does not look zones up (that reads tz files): the
 * caller finds the zone and passes it in the step's environment, and the
 * engine only converts instants through it (cue_tz_local, cue_tz_instant:
 * arithmetic over data already loaded). Without a zone, local means UTC.
 *
 * An event that would start a timer at a time it does not hold in a readable
 * form (a missing field, "not a date") is refused before anything of it is
 * applied: cue_engine_check says so, read-only, and the caller makes it a
 * dead letter, so that no half of the event is kept and no user is left
 * waiting for a timer that was never started.
 */
#ifndef CUEPOINT_ENGINE_H
#define CUEPOINT_ENGINE_H

#include "cuepoint/codec.h"
#include "cuepoint/event.h"
#include "cuepoint/hash.h"
#include "cuepoint/machine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cue_tz;

/* A transition an instance took, as told to cue_step_env.taken. */
typedef struct cue_take {
    uint16_t machine;   /* index in the machine set */
    int16_t from;       /* state index, or -1: the journey's start */
    uint16_t to;        /* state index (the same as `from` when it stays) */
    bool final;         /* `to` is a final state: the journey is over */
    uint32_t triggers;  /* triggers the transition emitted */
    int64_t started_ms; /* when the instance started (event time) */
    int64_t at_ms;      /* the step's time */
} cue_take;

/* What a step may know beyond the user, the event and the machines. */
typedef struct cue_step_env {
    struct cue_tz *tz; /* borrowed: the zones `zone` is found in; NULL: none */
    int zone;          /* the user's zone (cue_tz_find), or -1: local times in UTC */
    /* Told of each transition taken, after its actions (NULL: no one). An
     * observer only: it may not change the user, and the step stays pure. */
    void (*taken)(const cue_take *tk, void *ctx);
    void *taken_ctx;
    /* The event's type in the machine set (cue_machines_type_id, -1 for
     * none of theirs), when the caller looked it up already: an event is
     * checked and then applied, and each looked it up. */
    bool has_type;
    int32_t type_id;
} cue_step_env;

typedef struct cue_trigger {
    const cue_user *user;
    const cue_machine *machine;
    uint16_t machine_index; /* in the machine set */
    uint8_t trigger_index;  /* in the machine's trigger names */
    const cue_instance *inst;
    const char *name;
    const char *from_state, *to_state;
    int64_t time_ms;               /* the cause's time: event time, or the timer's due time */
    char id[CUE_HASH_HEX_LEN + 1]; /* trigger_id */
    const cue_event *ev;           /* the causing event, or NULL for a timer */
    const char *timer;             /* the timer's name, or NULL for an event */
    const cue_emit_field *fields;  /* names, n_fields of them */
    uint16_t n_fields;
    cue_value values[CUE_EMIT_FIELDS_MAX];
} cue_trigger;

typedef void (*cue_emit_fn)(const cue_trigger *t, void *ctx);

/* What a step did and what it could not do; the caller adds these up. */
typedef struct cue_step_stats {
    uint64_t transitions;
    uint64_t starts;
    uint64_t finishes;
    uint64_t triggers;
    uint64_t timers_fired;
    uint64_t instance_limit;      /* a start refused: max_instances live ones */
    uint64_t bad_key;             /* keyed machine, key not a string/number of <= 128 bytes */
    uint64_t bad_timer_value;     /* a timer's step read no time where it starts a timer */
    uint64_t value_truncated;     /* a variable set to a string over the limit */
    uint64_t timers_past;         /* started at a time already past: they fire at once */
    uint64_t timers_past_skipped; /* ... and not started, by "if_past": "skip" */
    uint64_t timers_refused;      /* a timer's step starting one at or before its own time */
    uint64_t instances_expired;   /* dropped by their journey's state_ttl */
} cue_step_stats;

/* Why cue_engine_check refused an event: the first timer it would start at a
 * time it cannot read. Borrows from the machines, the user and the event. */
typedef struct cue_step_refusal {
    const cue_machine *machine;
    const char *timer;      /* the timer's name */
    const char *state;      /* the state whose transition starts it */
    const cue_operand *src; /* what it reads the time from */
    cue_value value;        /* what is there: ABSENT when nothing */
    bool none_there;        /* earliest/latest: none of its times is there */
} cue_step_refusal;

/* Whether `ev` can be applied to `u`: false when a transition it would take
 * starts a timer at a time that is missing or not a time (epoch milliseconds
 * or RFC 3339 with an offset), with `why` saying which. Read-only: neither
 * the user nor anything else changes, so the caller can refuse the event
 * whole. */
bool cue_engine_check(const cue_machines *ms, const cue_user *u, const cue_event *ev,
                      const cue_step_env *env, cue_step_refusal *why);

/* A refusal as a sentence for a dead letter, naming the journey, the timer,
 * the JSON Pointer (or variable) and what was there. Returns its length. */
size_t cue_engine_refusal_text(const cue_machines *ms, const cue_step_refusal *why, char *out,
                               size_t cap);

/* Applies one decoded event to `u`: attributes first, then each machine in
 * order (start or transition), then the user's last offset and event time.
 * An event cue_engine_check refuses is the caller's to keep out; given one
 * anyway, timers whose time does not read are not started (counted). `env`
 * may be NULL (no zones). */
void cue_engine_apply(const cue_machines *ms, cue_user *u, const cue_event *ev,
                      const cue_step_env *env, cue_emit_fn emit, void *ctx, cue_step_stats *st);

/* Fires every timer of `u` that is due exactly at `due_ms`, instance by instance
 * in order. The caller fires due times in ascending order. */
void cue_engine_fire(const cue_machines *ms, cue_user *u, int64_t due_ms, const cue_step_env *env,
                     cue_emit_fn emit, void *ctx, cue_step_stats *st);

/* ---- state TTL -----------------------------------------------------------
 *
 * What goes, by stream time, with nothing pending:
 * - an instance of a journey with `state_ttl`, no transition for that long
 *   and no timer of its own armed: dropped, as if never started (its start
 *   event begins it afresh, even without `repeat`);
 * - the whole user, when `ttl_ms` (state.ttl) is set and the user has had
 *   no event for that long, or when the last of its instances went the
 *   first way; in both cases only with no timer armed and no deferred
 *   trigger waiting. The caller deletes the user's record.
 * An instance of a journey without `state_ttl`, or a user with no
 * instances and no state.ttl, stays. */

/* The earliest time at which something of `u` will have expired if nothing
 * happens before, or CUE_TIMER_NONE. */
int64_t cue_engine_expiry(const cue_machines *ms, const cue_user *u, int64_t ttl_ms);

/* Drops what has expired at `now_ms` (counted in `st`); true when the
 * whole user has. */
bool cue_engine_expire(const cue_machines *ms, cue_user *u, int64_t now_ms, int64_t ttl_ms,
                       cue_step_stats *st);

#endif
