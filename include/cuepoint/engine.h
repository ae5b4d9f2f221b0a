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
 */
#ifndef CUEPOINT_ENGINE_H
#define CUEPOINT_ENGINE_H

#include "cuepoint/codec.h"
#include "cuepoint/event.h"
#include "cuepoint/hash.h"
#include "cuepoint/machine.h"

#include <stdint.h>

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
    uint64_t instance_limit;  /* a start refused: max_instances live ones */
    uint64_t bad_key;         /* keyed machine, key not a string/number of <= 128 bytes */
    uint64_t bad_timer_value; /* start_timer "at" a value that is not a time, or (in a
                               * timer's step) not after the step's time */
    uint64_t value_truncated; /* a variable set to a string over the limit */
} cue_step_stats;

/* Applies one decoded event to `u`: attributes first, then each machine in
 * order (start or transition), then the user's last offset and event time. */
void cue_engine_apply(const cue_machines *ms, cue_user *u, const cue_event *ev, cue_emit_fn emit,
                      void *ctx, cue_step_stats *st);

/* Fires every timer of `u` that is due exactly at `due_ms`, instance by instance
 * in order. The caller fires due times in ascending order. */
void cue_engine_fire(const cue_machines *ms, cue_user *u, int64_t due_ms, cue_emit_fn emit,
                     void *ctx, cue_step_stats *st);

#endif
