/*
 * gen: a synthetic stream of product events for the demo, tests and
 * benchmarks. Users sign up, work through onboarding (some stall), set
 * deadlines on projects (some move them, some miss them), deliver projects
 * (some reach five), and some go quiet for weeks. Events come out in time
 * order, except for a few shifted back within the allowed lateness, and in
 * both time formats (epoch ms and RFC 3339 with the user's offset).
 *
 * With `consent`, users also say which channels may reach them, as
 * consent_changed {"channel","granted"} and channel_muted {"channel","muted"}
 * events (deploy/policies.json reads both): in the opt-in region (region
 * "EU") some grant push (60%) and email (80%) within minutes of signing up;
 * anyone push may reach later withdraws it (5%) or mutes it (3%) within three
 * weeks. Those events draw from their own random stream, so the product events
 * are the same with or without them (only event ids, which count every event,
 * move); without `consent` the output is byte for byte what it always was.
 *
 * Deterministic for a seed; no clock, no global state. The generator owns its
 * per-user state (about 44 bytes a user).
 */
#ifndef CUEPOINT_GEN_H
#define CUEPOINT_GEN_H

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cue_gen_opts {
    uint64_t seed;
    size_t users;
    size_t events;    /* stop after this many */
    int64_t start_ms; /* first sign-up; sign-ups spread over the following 30 days */
    bool consent;     /* also consent and mute events (see above); off by default */
} cue_gen_opts;

typedef struct cue_gen cue_gen;

int cue_gen_new(cue_gen **out, const cue_gen_opts *opts, cue_err *err);
void cue_gen_free(cue_gen *g);

/* Writes the next event (one JSON object, no newline) into `out`, replacing
 * its contents, and sets `*ts_ms` to its true time. Returns 1, or 0 when
 * `events` have been produced. */
int cue_gen_next(cue_gen *g, cue_buf *out, int64_t *ts_ms);

/* ---- a history with planted effects (`cuepoint generate --planted`) ----
 *
 * For testing what `cuepoint report` measures: a history whose effects are
 * known, so the report's figures can be checked against them. Users sign up
 * over `weeks` weeks (a quarter each in four cohort weeks, by default),
 * each with a role, a region and a work mode (remote or in person, half
 * each: "user":{"work_mode":...}); users of the opt-in regions (EU, GB)
 * grant push and email within minutes, so that consent stops no message.
 * Then:
 *   - a share of users, by work mode and sign-up week (`engaged`, plus
 *     `engaged_step` per week), upload, invite and export 1 to 55 hours
 *     apart: onboarding completed within 7 days, never stalled (past 48 h:
 *     a 48 h stall delay would nudge some of them);
 *   - the others do nothing for `stall_ms` (the onboarding journey's 72 h),
 *     so onboarding_stalled fires for them: the experiment's exposure. Those
 *     the experiment treats (the nudge is sent) withdraw push 14 to 36 hours
 *     later with probability `optout_nudge` (the opt-outs planted after one
 *     trigger) and otherwise complete onboarding within 2 days with
 *     probability `recover_treated`; those in its holdout complete with
 *     probability `recover_holdout` (the planted lift is the difference);
 *   - users who complete onboarding stay active 1 to 8 weeks (an event
 *     every 2 to 5 days: comments and deliveries), and mute push 8 to 20 days
 *     after completing with probability `optout_after`.
 * The holdout is the policy's own assignment, through `holdout` (the CLI
 * passes cue_policy_assign's), so the planted arms are the ones the run
 * decides. Events come out in time order, epoch milliseconds.
 *
 * The truth (cue_gen_plant_truth) is what was planted: each figure's
 * expected value (the mean of each user's probability over the users it
 * covers) and the counts the generator knows exactly (users exposed, by
 * arm; nudges sent; opt-outs after them). Deterministic for a seed. */
typedef struct cue_gen_plant_opts {
    uint64_t seed;
    size_t users;
    int64_t
        start_ms; /* the first sign-up week starts here (a Monday 00:00 UTC keeps cohorts whole) */
    int weeks;    /* sign-up weeks */
    double engaged[2]; /* [remote, in person] */
    double engaged_step;
    double recover_treated, recover_holdout;
    double optout_nudge, optout_after;
    int64_t stall_ms;
    /* Whether the user is in the stall nudge's holdout; NULL: nobody is. */
    bool (*holdout)(const char *user, size_t len, void *ctx);
    void *holdout_ctx;
} cue_gen_plant_opts;

/* The defaults above: 4 weeks; engaged 0.45 remote, 0.65 in person, +0.04 a
 * week; recovery 0.40 treated, 0.20 holdout; opt-outs 0.08 after the nudge,
 * 0.05 after onboarding; stall 72 h. The caller sets seed, users, start. */
void cue_gen_plant_defaults(cue_gen_plant_opts *o);

typedef struct cue_gen_plant cue_gen_plant;
int cue_gen_plant_new(cue_gen_plant **out, const cue_gen_plant_opts *opts, cue_err *err);
void cue_gen_plant_free(cue_gen_plant *g);
/* As cue_gen_next: the next event into `out`; 1, or 0 when every user is done. */
int cue_gen_plant_next(cue_gen_plant *g, cue_buf *out, int64_t *ts_ms);
/* The planted figures as one JSON object (appended to `out`), after the
 * last event. `experiment` names the experiment for the reader. */
void cue_gen_plant_truth(const cue_gen_plant *g, const char *experiment, cue_buf *out);

#endif
