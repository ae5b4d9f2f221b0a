/*
 * machine: the journey language and its compiler.
 *
 * A journey is a JSON file (schemas/machine.schema.json) that a data engineer
 * writes instead of C. cue_machines_load compiles a directory of them into an
 * immutable machine set: names become small indices, JSON Pointers are
 * compiled, durations parsed, and every reference (goto, timer, counter,
 * variable) is checked, with errors naming the file and the JSON path and
 * suggesting the nearest known name. The engine then runs on indices only.
 *
 * Semantics, in short (docs/journeys.md has the long form):
 * - `start` names the event type ("*" = any) that creates an instance, with
 *   optional guards (`when`) and actions (`do`); the instance enters `initial`.
 * - With `instance_key` (a JSON Pointer into the event) a user has one instance
 *   per key value, at most `max_instances`; events without the key are ignored.
 * - Each state lists transitions (`on`), tried in order; the first whose trigger
 *   (an event type, "*", or a timer) matches and whose guards all hold runs its
 *   actions, then moves to `goto` (or stays).
 * - Reaching a `final` state finishes the instance. It is then kept (a later
 *   start event does nothing: a journey happens once) unless `repeat` is true, in
 *   which case it is removed and the next start event begins afresh.
 * Loading runs at start-up on one thread; the set is then read-only and may be
 * shared. The set owns all compiled data.
 */
#ifndef CUEPOINT_MACHINE_H
#define CUEPOINT_MACHINE_H

#include "cuepoint/diag.h"
#include "cuepoint/err.h"
#include "cuepoint/json.h"
#include "cuepoint/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A value: a literal from a machine file, a variable, or a field of an event.
 * Strings are borrowed from whatever holds them (machine, user state, event). */
typedef enum cue_value_type {
    CUE_VAL_ABSENT = 0, /* the source has nothing there */
    CUE_VAL_NULL,
    CUE_VAL_BOOL,
    CUE_VAL_INT,
    CUE_VAL_DOUBLE,
    CUE_VAL_STRING,
    CUE_VAL_JSON, /* an object or array, as its JSON text */
} cue_value_type;

typedef struct cue_value {
    uint8_t type; /* cue_value_type */
    bool b;
    int64_t i;
    double d;
    const char *s; /* STRING: bytes (not NUL-terminated); JSON: text */
    uint32_t len;
} cue_value;

/* Orders two values for guards: numbers compare numerically (int with double
 * too), strings bytewise, booleans false < true. Returns -1, 0 or 1, or 2 when
 * they are not comparable (different kinds, absent, JSON). */
int cue_value_cmp(const cue_value *a, const cue_value *b);

/* User attributes kept in state, picked from configured event fields. */
typedef enum cue_attr {
    CUE_ATTR_ROLE = 0,
    CUE_ATTR_TIMEZONE,
    CUE_ATTR_REGION,
    CUE_ATTR_LOCALE,
    CUE_ATTR_COUNT
} cue_attr;
extern const char *const cue_attr_names[CUE_ATTR_COUNT];

/* Facts about the step and the instance, usable as a source. */
typedef enum cue_meta {
    CUE_META_INSTANCE_KEY = 0,
    CUE_META_STATE,
    CUE_META_MACHINE,
    CUE_META_USER_ID,
    CUE_META_EVENT_TYPE,
    CUE_META_EVENT_TIME,
    CUE_META_COUNT
} cue_meta;
extern const char *const cue_meta_names[CUE_META_COUNT];

/* Where a value comes from. */
typedef enum cue_src_kind {
    CUE_SRC_LITERAL = 0,
    CUE_SRC_EVENT,   /* JSON Pointer into the event */
    CUE_SRC_ATTR,    /* user attribute */
    CUE_SRC_COUNTER, /* this instance's counter */
    CUE_SRC_VAR,     /* this instance's variable */
    CUE_SRC_META,
} cue_src_kind;

typedef struct cue_operand {
    uint8_t kind;  /* cue_src_kind */
    uint8_t index; /* attr, counter, variable or meta index */
    uint16_t ptr;  /* EVENT: index into the set's pointer table */
    cue_value lit; /* LITERAL; strings point into the set's string pool */
} cue_operand;

typedef enum cue_op {
    CUE_OP_EQ = 0,
    CUE_OP_NE,
    CUE_OP_LT,
    CUE_OP_LTE,
    CUE_OP_GT,
    CUE_OP_GTE,
    CUE_OP_IN,
    CUE_OP_NOT_IN,
    CUE_OP_EXISTS, /* rhs literal true: present; false: absent */
    CUE_OP_COUNT
} cue_op;
extern const char *const cue_op_names[CUE_OP_COUNT];
/* Whether a comparison operator (EQ .. GTE) holds for cue_value_cmp's
 * result `c`; 2 (not comparable) holds only for NE. */
bool cue_op_holds(cue_op op, int c);

typedef struct cue_guard {
    cue_operand lhs;
    uint8_t op;      /* cue_op */
    uint8_t n_set;   /* IN / NOT_IN: number of values in set[] */
    cue_operand rhs; /* comparisons, EXISTS */
    cue_operand set[CUE_GUARD_SET_MAX];
} cue_guard;

typedef enum cue_action_kind {
    CUE_ACT_EMIT = 0,
    CUE_ACT_SET,
    CUE_ACT_UNSET,
    CUE_ACT_INCREMENT,
    CUE_ACT_RESET,
    CUE_ACT_START_TIMER,
    CUE_ACT_CANCEL_TIMER,
} cue_action_kind;

typedef struct cue_emit_field {
    const char *name; /* pool */
    cue_operand src;
} cue_emit_field;

/* When a timer is due, as a journey writes it (docs/journeys.md, "Timers"): one or more
 * terms, each a base time plus an offset, of which the earliest or latest
 * counts, then optionally moved to a clock time of that local day:
 *   {"after": "72h"}                         now + 72h
 *   {"at": {"event": "/p/end"}, "before": "3d"}  the event's time - 3d
 *   {"earliest": [{"at": ...}, {"after": "7d"}]}  whichever comes first
 *   ..., "local_time": "09:00"                09:00 in the user's zone, that day */
typedef enum cue_time_base {
    CUE_TIME_NOW = 0, /* the step's time: the event's, or the firing timer's due time */
    CUE_TIME_SOURCE,  /* a time read from `src` */
} cue_time_base;

typedef struct cue_time_term {
    uint8_t base;      /* cue_time_base */
    int64_t offset_ms; /* `after` adds, `before` subtracts */
    cue_operand src;   /* SOURCE */
} cue_time_term;

typedef enum cue_time_pick {
    CUE_TIME_ONE = 0,  /* one term */
    CUE_TIME_EARLIEST, /* the earliest of the terms that are there */
    CUE_TIME_LATEST,   /* the latest of them */
} cue_time_pick;

/* No `local_time`. */
#define CUE_LOCAL_NONE (-1)

typedef struct cue_action {
    uint8_t kind;                   /* cue_action_kind */
    uint8_t target;                 /* trigger, variable, counter or timer index */
    bool once;                      /* EMIT: at most once per instance */
    bool skip_past;                 /* START_TIMER: "if_past": "skip" */
    uint8_t pick;                   /* START_TIMER: cue_time_pick */
    uint8_t n_terms;                /* START_TIMER: terms, from first_term */
    uint16_t first_term;            /* START_TIMER: range in the set's time term table */
    int16_t local_min;              /* START_TIMER: minute of the local day, or CUE_LOCAL_NONE */
    int64_t amount;                 /* INCREMENT: by */
    cue_operand src;                /* SET: from */
    uint16_t first_field, n_fields; /* EMIT: range in the set's field table */
} cue_action;

typedef enum cue_on_kind { CUE_ON_EVENT = 0, CUE_ON_ANY, CUE_ON_TIMER } cue_on_kind;

typedef struct cue_transition {
    uint8_t on;                       /* cue_on_kind */
    uint8_t timer;                    /* TIMER: timer index */
    bool reads_time;                  /* starts a timer at a time read from a source */
    int16_t go;                       /* state index, or -1 to stay */
    int32_t type_id;                  /* EVENT: index in the set's event type table */
    uint16_t first_guard, n_guards;   /* range in the set's guard table */
    uint16_t first_action, n_actions; /* range in the set's action table */
} cue_transition;

typedef struct cue_state {
    const char *name; /* pool */
    uint32_t hash;    /* cue_hash32 of the name, as stored in encoded state */
    bool final;
    uint16_t first_transition, n_transitions;
} cue_state;

/* A name with its stored hash: timers, counters, variables, triggers. */
typedef struct cue_name {
    const char *name; /* pool */
    uint32_t hash;
} cue_name;

/* What happens to instances saved under another version of the machine. */
typedef enum cue_migrate {
    CUE_MIGRATE_KEEP = 0, /* map state, counters, variables and timers by name */
    CUE_MIGRATE_RESTART,  /* drop the instance; the next start event begins afresh */
    CUE_MIGRATE_FINISH,   /* finish it where it is */
} cue_migrate;

/* The `migrate` map (with `keep`): rules for instances stored under another
 * version, by the old names (as hashes, the way the state record keeps them).
 * A state rule moves the instance (to a state, checked in this version),
 * finishes it or restarts it; rules for one old state are tried in order, the
 * first whose guards hold (over counters, variables, attributes; no event)
 * applies, and the last of them has no guards, so every instance has one. A
 * timer rule renames (`to`), shifts (`shift`, signed) or drops a pending
 * timer; a state rule may carry its own timer rules, tried before the
 * machine's. Old states with no rule keep their name if this version has it;
 * an instance whose state has neither is finished and counted as stranded. */
typedef enum cue_mig_do {
    CUE_MIG_MOVE = 0, /* to `to` (a final state finishes the instance) */
    CUE_MIG_FINISH,   /* finished where it was */
    CUE_MIG_RESTART,  /* dropped: the next start event begins afresh */
} cue_mig_do;

typedef struct cue_mig_timer {
    const char *from; /* pool: the old timer's name */
    uint32_t from_hash;
    int16_t to; /* timer index in this version, or -1: dropped */
    int64_t shift_ms;
} cue_mig_timer;

typedef struct cue_mig_rule {
    const char *from; /* pool: the old state's name */
    uint32_t from_hash;
    uint8_t action; /* cue_mig_do */
    uint16_t to;    /* MOVE: state index */
    uint16_t first_guard, n_guards;
    uint16_t first_timer, n_timers; /* this rule's own timer rules */
} cue_mig_rule;

typedef struct cue_machine {
    const char *name; /* pool */
    const char *file; /* pool: where it was loaded from, for messages */
    uint32_t hash;
    uint32_t version;
    bool keyed;
    bool repeat;
    uint8_t on_version_change; /* cue_migrate */
    bool reads_time;           /* a transition starts a timer at a time read from a source */
    bool time_any_type;        /* ... one on "*", or on more types than time_types holds */
    uint8_t n_time_types;      /* ... the event types of such transitions */
    int32_t time_types[4];
    bool migrates;                    /* has a `migrate` map */
    uint16_t first_rule, n_rules;     /* `migrate.states`: range in the set's rule table */
    uint16_t first_mtimer, n_mtimers; /* `migrate.timers`: range in the set's timer rules */
    uint16_t key_ptr;                 /* keyed: pointer table index */
    uint16_t max_instances;
    int64_t state_ttl_ms; /* `state_ttl`: an instance idle this long goes; 0: never */
    uint16_t initial;
    cue_transition start; /* on: EVENT or ANY; go = initial */
    uint16_t n_states, n_timers, n_counters, n_vars, n_triggers;
    cue_state states[CUE_MACHINE_STATES_MAX];
    cue_name timers[CUE_MACHINE_TIMERS_MAX];
    cue_name counters[CUE_MACHINE_COUNTERS_MAX];
    cue_name vars[CUE_MACHINE_VARS_MAX];
    cue_name triggers[CUE_MACHINE_TRIGGERS_MAX];
} cue_machine;

typedef struct cue_machines cue_machines;

/* Compiles every *.json file in `dir` (sorted by file name, so the order of
 * machines, and with it the order of triggers in a step, is stable). With
 * `only` non-NULL, keeps just the machine of that name (the others are set
 * aside, see below; an unknown name is an error naming the nearest). Fails
 * on the first file with an error; use cue_machine_check (check.h) to see
 * all of them. The caller owns `*out` and frees it with cue_machines_free. */
int cue_machines_load(cue_machines **out, const char *dir, const char *only, cue_err *err);

/* Compiles the given files, in the given order. */
int cue_machines_load_files(cue_machines **out, const char *const *files, size_t n_files,
                            cue_err *err);

void cue_machines_free(cue_machines *ms);

size_t cue_machines_count(const cue_machines *ms);
const cue_machine *cue_machines_get(const cue_machines *ms, size_t i);

/* The machines of the directory that `only` left out of the set, still
 * compiled, for checks of files that name every journey (a policy file): a
 * name that is one of them is known, though nothing runs it. Not seen by
 * cue_machines_count, _get or the find functions; 0 without `only`. */
size_t cue_machines_set_aside(const cue_machines *ms);
const cue_machine *cue_machines_get_set_aside(const cue_machines *ms, size_t i);

/* The machine with this name hash, or -1. */
int cue_machines_find_hash(const cue_machines *ms, uint32_t hash);
/* The machine and trigger with these name hashes (as stored in user state):
 * the machine's index, or -1; `*trigger` is the trigger's index in it, or -1
 * when the machine has none by that name. */
int cue_machines_find_trigger(const cue_machines *ms, uint32_t machine_hash, uint32_t trigger_hash,
                              int *trigger);

/* An event type's index in the set's type table, or -1 when no machine names
 * it (the event can still match "*" transitions). */
int32_t cue_machines_type_id(const cue_machines *ms, const char *type, size_t len);

/* Tables that compiled transitions index into; never NULL, even empty. */
const cue_guard *cue_machines_guards(const cue_machines *ms);
const cue_action *cue_machines_actions(const cue_machines *ms);
const cue_transition *cue_machines_transitions(const cue_machines *ms);
const cue_emit_field *cue_machines_fields(const cue_machines *ms);
const cue_json_ptr *cue_machines_ptr(const cue_machines *ms, uint16_t i);
/* How many event pointers the set reads (cue_machines_ptr's indexes). */
uint16_t cue_machines_ptr_count(const cue_machines *ms);
const char *cue_machines_type_name(const cue_machines *ms, int32_t type_id);
const cue_time_term *cue_machines_time_terms(const cue_machines *ms);
const cue_mig_rule *cue_machines_mig_rules(const cue_machines *ms);
const cue_mig_timer *cue_machines_mig_timers(const cue_machines *ms);

/* Whether any machine starts a timer at a clock time of the user's local day
 * (`local_time`): the caller then finds users' zones for the engine. */
bool cue_machines_use_local_time(const cue_machines *ms);

/* Evaluates one guard, its operands read through `get` (the engine reads
 * events and instances its own way; migration reads stored instances). */
typedef cue_value (*cue_operand_fn)(const cue_operand *o, void *ctx);
bool cue_guard_eval(const cue_guard *g, cue_operand_fn get, void *arg);

/* Compiles one file into a set of its own, collecting every error into `d`
 * (which may already hold diagnostics of other files). On success (no error)
 * `*out` is the one-machine set, owned by the caller; otherwise NULL. */
int cue_machines_compile_file(cue_machines **out, const char *file, cue_diags *d);
/* The same from `len` bytes of JSON text (a machine that is not a file: the
 * fuzz targets'); `name` stands for the file in the set and its messages. */
int cue_machines_compile_text(cue_machines **out, const char *name, const char *text, size_t len,
                              cue_diags *d);

#endif
