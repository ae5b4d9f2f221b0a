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

#endif
