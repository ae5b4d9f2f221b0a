/*
 * policy: the rules that protect the user, applied to every trigger between
 * the engine and the producer: priority classes, frequency caps (rolling and
 * local-calendar windows, cooldowns), quiet hours in the user's time zone,
 * late timers, consent per channel with fallback, experiments and holdouts,
 * and erasure. Declared in one JSON file (schemas/policy.schema.json,
 * deploy/policies.json), compiled against the machine set.
 *
 * Deciding is deterministic: it reads only the trigger, the user's state
 * (attributes, consent, what was sent, what waits) and a time the caller
 * passes, never the wall clock; experiment assignment is a hash of the user
 * id and the experiment's name. So a replay decides exactly as the live run
 * did. The time is the stream time at which a sent trigger goes out: the
 * event's, or, for a timer's trigger or a deferral coming due, the time the
 * partition's clock has reached when it passes them. Deciding at the due time
 * instead would let a timer due at 20:30 that the clock passes at 22:00 go
 * out at 22:00 inside the quiet hours.
 *
 * The order of the rules, for one trigger:
 *   1. holdout: users in an experiment's holdout share get nothing from it;
 *   2. late timers: a timer trigger older than its max_age is dropped, sent
 *      marked late, or sent, as configured; one let through may still wait
 *      (rules 4, 5) without max_age dropping it, and keeps its mark;
 *   3. consent: the first of the trigger's channels the user consents to and
 *      has not muted, or nothing (no class bypasses consent);
 *   4. quiet hours (classes without bypass): inside the user's local window
 *      the trigger waits until it ends, plus a spread by a hash of the user
 *      id; dropped if it would then be older than its max_age;
 *   5. caps and cooldowns (classes without bypass): dropped, or deferred to
 *      when the window frees, as each cap says;
 *   6. sent: remembered for the caps.
 * A deferred trigger waits in the user's state (codec.h) and is decided again,
 * from rule 1, when it comes due. Triggers made in one step are decided in
 * class priority order, so the higher class takes a cap's last slot.
 *
 * The compiled policy is immutable and may be shared by threads; a
 * cue_policy_tz (time zones) belongs to one thread. The policy owns its
 * compiled data and borrows the machine set it was compiled against.
 */
#ifndef CUEPOINT_POLICY_H
#define CUEPOINT_POLICY_H

#include "cuepoint/codec.h"
#include "cuepoint/err.h"
#include "cuepoint/event.h"
#include "cuepoint/machine.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cue_policy cue_policy;

/* Compiles the policy file at `path` against `ms` (and the machines `ms` set
 * aside: a policy file names every journey). CUE_ECONFIG with a message
 * naming the file, then each error at its JSON path as far as they fit ("N
 * errors: $.a: ...; $.b: ..."): a value of the wrong kind as "expected ...",
 * a misspelt key, machine, trigger, class or channel with the nearest known
 * name. Caller owns `*out`. */
int cue_policy_load(cue_policy **out, const char *path, const cue_machines *ms, cue_err *err);
/* The same from `len` bytes of JSON text; `name` stands for the file. */
int cue_policy_load_text(cue_policy **out, const char *name, const char *text, size_t len,
                         const cue_machines *ms, cue_err *err);

/* Checks the file as cue_policy_load does, for `cuepoint check`: returns how
 * many errors it has (0: it loads), the first CUE_POLICY_ERRORS_MAX of them
 * in `d` (code "policy"), each with its JSON path ("$" for a file that does
 * not read or parse). */
size_t cue_policy_check(const char *path, const cue_machines *ms, cue_diags *d);
void cue_policy_free(cue_policy *p);

/* Time zones for deciding: one per thread (a task owns one). */
typedef struct cue_policy_tz cue_policy_tz;
int cue_policy_tz_new(cue_policy_tz **out, cue_err *err);
void cue_policy_tz_free(cue_policy_tz *z);

/* A trigger as the policy sees it. */
typedef struct cue_policy_trigger {
    uint16_t machine; /* index in the machine set */
    uint8_t trigger;  /* index in the machine's trigger names */
    const char *id;   /* trigger_id */
    int64_t time_ms;  /* its cause's time */
    bool timer;       /* caused by a timer: its lateness counts to the decision's time */
    bool late;        /* a deferral coming due that was let through late and marked */
    const char *rec;  /* the encoded record, without policy fields */
    size_t rec_len;
} cue_policy_trigger;

typedef struct cue_decision {
    cue_outcome outcome;
    cue_why why;
    uint8_t channel;  /* SENT: the channel; else CUE_CH_NONE */
    uint8_t cls;      /* the trigger's class index */
    int64_t until_ms; /* DEFERRED: when it is decided again; else INT64_MIN */
    int64_t decided_ms;
    const char *rule;       /* the cap, experiment or setting that decided; "" when none */
    const char *experiment; /* the experiment the trigger is in, or NULL */
    const char *variant;    /* its variant for this user, or NULL (holdout) */
    bool late;              /* sent marked late */
} cue_decision;

/* The class index of a machine's trigger (0 = highest priority). */
uint8_t cue_policy_class(const cue_policy *p, uint16_t machine, uint8_t trigger);
const char *cue_policy_class_name(const cue_policy *p, uint8_t cls);

/* Decides one trigger at `now_ms`, the stream time at which it would go out,
 * and records the decision in the user's state: a send (at `now_ms`) in its
 * sent list, a deferral (the record copied) in its deferred list, the
 * decision in its recent ones. */
void cue_policy_decide(const cue_policy *p, cue_policy_tz *z, cue_user *u,
                       const cue_policy_trigger *t, int64_t now_ms, cue_decision *d);

/* Writes the policy's fields for a sent trigger (`"policy":{...}`, no
 * surrounding comma) into `out`, appending. */
void cue_policy_fields(const cue_policy *p, const cue_decision *d, cue_buf *out);

/* Takes the earliest deferred trigger due at or before `now_ms` out of the
 * user's state into `*out`. Returns false when none is due. */
bool cue_policy_take_due(cue_user *u, int64_t now_ms, cue_deferred *out);

/* What an event means to the policy, seen before the engine applies it. */
typedef enum {
    CUE_POLICY_EVENT_NONE = 0,
    CUE_POLICY_EVENT_CONSENT, /* consent or mute changed (the user's state has it) */
    CUE_POLICY_EVENT_BAD      /* a consent or mute event without a known channel or flag */
} cue_policy_event;

/* The event pointers the policy reads (consent and mute events), for the
 * decoder to find in its pass: the i-th, or NULL past the last. */
const cue_json_ptr *cue_policy_event_ptr(const cue_policy *p, size_t i);

/* True for the policy's erasure event type (the caller deletes the user). */
bool cue_policy_is_erasure(const cue_policy *p, const cue_event *ev);

/* Applies a consent or mute event to the user's state. Deferred triggers that
 * can no longer go to any channel are cancelled at once: each is passed to
 * `cancelled` (with its decision) and removed. For CUE_POLICY_EVENT_BAD,
 * `*why` names what is wrong (the event should be a dead letter). */
cue_policy_event cue_policy_observe(const cue_policy *p, cue_user *u, const cue_event *ev,
                                    void (*cancelled)(const cue_deferred *d,
                                                      const cue_decision *dec, void *ctx),
                                    void *ctx, const char **why);

/* Experiment assignment, exposed for tests and tools: the variant index of
 * `user` in experiment `e`, or -1 for its holdout. */
int cue_policy_assign(const cue_policy *p, size_t e, const char *user, size_t len);
size_t cue_policy_experiments(const cue_policy *p);
/* Experiment `e`'s name (borrowed from the policy). */
const char *cue_policy_experiment_name(const cue_policy *p, size_t e);

/* The experiment a machine's trigger is in (the first that covers it, as rule
 * 1 takes it), or -1. */
int cue_policy_experiment_of(const cue_policy *p, uint16_t machine, uint8_t trigger);

/* The rules' own readings, for tools that check decisions against them
 * (bench/policy_sim.c), so that a check cannot drift from what it checks. */

/* Whether the user's local clock at `ms` reads inside the quiet hours, in the
 * zone rule 4 uses (the timezone attribute if it names a known zone, else the
 * region's, else the default); false when the policy has no quiet hours. */
bool cue_policy_quiet_at(const cue_policy *p, cue_policy_tz *z, const cue_user *u, int64_t ms);

/* Whether class `cls` skips quiet hours and caps. */
bool cue_policy_class_bypass(const cue_policy *p, uint8_t cls);

/* Whether the user's region needs consent before a channel is used (opt-in),
 * rather than until it is withdrawn. */
bool cue_policy_opt_in(const cue_policy *p, const cue_user *u);

#endif
