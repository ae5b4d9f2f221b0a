/* A deterministic stream of plausible product events, in time order. */
#include "cuepoint/gen.h"

#include "cuepoint/timefmt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS (3600 * 1000LL)
#define DAY_MS  (24 * HOUR_MS)

/* Where a user is in their script. */
enum phase {
    P_SIGNUP = 0,
    P_UPLOAD,
    P_INVITE,
    P_EXPORT,
    P_DEADLINE,
    P_MOVE,
    P_DELIVER,
    P_NOISE,
};

/* Consent steps a user still has to take (opts.consent), done in this order. */
enum {
    C_GRANT_PUSH = 1,
    C_GRANT_EMAIL = 2,
    C_WITHDRAW_PUSH = 4,
    C_MUTE_PUSH = 8,
};

typedef struct guser {
    int64_t next_ms;    /* when their next event happens */
    int64_t due_ms;     /* current project's deadline */
    int64_t consent_ms; /* when their next consent step happens; INT64_MAX: none */
    uint32_t project;   /* projects started so far */
    uint8_t phase;
    uint8_t zone; /* index into zones[] */
    uint8_t role;
    uint8_t moved;   /* this project's deadline was moved */
    uint8_t consent; /* C_* steps still to come */
} guser;

/* Region "EU" stands for the opt-in regions (deploy/policies.json): there a
 * channel needs consent before anything is sent on it. */
static const struct {
    const char *name, *region, *locale;
    int offset_min; /* a fixed offset is enough for generated RFC 3339 text */
} zones[] = {
    {"Europe/Berlin", "EU", "de-DE", 60},       {"America/Los_Angeles", "US-CA", "en-US", -480},
    {"America/New_York", "US", "en-US", -300},  {"Asia/Tokyo", "JP", "ja-JP", 540},
    {"Europe/London", "GB", "en-GB", 0},        {"Asia/Kolkata", "IN", "en-IN", 330},
    {"America/Sao_Paulo", "BR", "pt-BR", -180}, {"Australia/Sydney", "AU", "en-AU", 600},
};
#define N_ZONES (sizeof zones / sizeof *zones)
static const char *const roles[] = {"designer", "editor", "producer", "manager"};

struct cue_gen {
    cue_gen_opts opts;
    uint64_t rng;
    /* Consent steps draw from their own stream, so turning them on leaves
     * every product event's time and content as it was (ids count on). */
    uint64_t consent_rng;
    size_t produced;
    guser *users;   /* owned, opts.users entries */
    uint32_t *heap; /* owned: user indices, min-heap on next_ms then index */
    size_t heap_n;
};

static uint64_t splitmix(uint64_t *state)
{
    /* splitmix64: tiny, fast, and fully determined by the seed. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t next_rand(cue_gen *g)
{
    return splitmix(&g->rng);
}

/* Uniform in [lo, hi], from `state`. */
static int64_t draw(uint64_t *state, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(splitmix(state) % (uint64_t)(hi - lo + 1));
}

static bool draw_chance(uint64_t *state, int percent)
{
    return (int)(splitmix(state) % 100) < percent;
}

static int64_t between(cue_gen *g, int64_t lo, int64_t hi)
{
    return draw(&g->rng, lo, hi);
}

static bool chance(cue_gen *g, int percent)
{
    return draw_chance(&g->rng, percent);
}

/* When the user's next event of either kind happens. */
static int64_t next_at(const guser *u)
{
    return u->consent_ms < u->next_ms ? u->consent_ms : u->next_ms;
}

static bool before(const cue_gen *g, uint32_t a, uint32_t b)
{
    int64_t x = next_at(&g->users[a]), y = next_at(&g->users[b]);
    return x < y || (x == y && a < b);
}

static void sift_down(cue_gen *g, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g->heap_n && before(g, g->heap[l], g->heap[m])) m = l;
        if (r < g->heap_n && before(g, g->heap[r], g->heap[m])) m = r;
        if (m == i) return;
        uint32_t tmp = g->heap[i];
        g->heap[i] = g->heap[m];
        g->heap[m] = tmp;
        i = m;
    }
}

int cue_gen_new(cue_gen **out, const cue_gen_opts *opts, cue_err *err)
{
    if (opts->users == 0 || opts->users > UINT32_MAX)
        return cue_err_set(err, CUE_EINVAL, "users must be from 1 to %u", UINT32_MAX);
    cue_gen *g = calloc(1, sizeof *g);
    if (g == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    g->opts = *opts;
    g->rng = opts->seed;
    g->consent_rng = opts->seed ^ 0x636f6e73656e74ULL; /* "consent" */
    g->users = calloc(opts->users, sizeof *g->users);
    g->heap = calloc(opts->users, sizeof *g->heap);
    if (g->users == NULL || g->heap == NULL) {
        cue_gen_free(g);
        return cue_err_set(err, CUE_ENOMEM, "out of memory for %zu users", opts->users);
    }
    for (size_t i = 0; i < opts->users; i++) {
        guser *u = &g->users[i];
        u->next_ms = opts->start_ms + between(g, 0, 30 * DAY_MS);
        u->zone = (uint8_t)(next_rand(g) % N_ZONES);
        u->role = (uint8_t)(next_rand(g) % 4);
        u->consent_ms = INT64_MAX;
        g->heap[i] = (uint32_t)i;
    }
    g->heap_n = opts->users;
    for (size_t i = g->heap_n / 2 + 1; i-- > 0;)
        sift_down(g, i);
    *out = g;
    return 0;
}

void cue_gen_free(cue_gen *g)
{
    if (g == NULL) return;
    free(g->users);
    free(g->heap);
    free(g);
}

/* RFC 3339 with the user's offset: the same instant, written as they'd see it. */
static void put_local_time(cue_buf *out, int64_t ms, int offset_min)
{
    char t[CUE_TIME_TEXT_MAX];
    size_t n = cue_time_format_rfc3339(ms + (int64_t)offset_min * 60000, t);
    cue_buf_append_char(out, '"');
    cue_buf_append(out, t, n - 1); /* drop the Z */
    if (offset_min == 0) {
        cue_buf_append_str(out, "Z\"");
        return;
    }
    int a = offset_min < 0 ? -offset_min : offset_min;
    cue_buf_printf(out, "%c%02d:%02d\"", offset_min < 0 ? '-' : '+', a / 60, a % 60);
}

static int64_t onboarding_delay(cue_gen *g)
{
    return chance(g, 85) ? between(g, HOUR_MS, 48 * HOUR_MS)
                         : between(g, 73 * HOUR_MS, 110 * HOUR_MS);
}

static void schedule_delivery(cue_gen *g, guser *u, int64_t now)
{
    u->phase = P_DELIVER;
    if (chance(g, 75) && u->due_ms - now > 2 * HOUR_MS)
        u->next_ms = between(g, now + HOUR_MS, u->due_ms - HOUR_MS);
    else
        u->next_ms = u->due_ms + between(g, HOUR_MS, 48 * HOUR_MS);
}

/* Decides what the user does next; returns the type of the event now due. */
static const char *step_user(cue_gen *g, guser *u)
{
    int64_t now = u->next_ms;
    static const char *const steps[] = {"signed_up", "file_uploaded", "member_invited",
                                        "project_exported"};
    switch (u->phase) {
    case P_SIGNUP:
    case P_UPLOAD:
    case P_INVITE:
    case P_EXPORT: {
        const char *type = steps[u->phase];
        bool quit = u->phase != P_SIGNUP && chance(g, 8);
        if (u->phase == P_EXPORT || quit) {
            u->phase = P_DEADLINE;
            u->next_ms = now + between(g, DAY_MS, 3 * DAY_MS);
        } else {
            u->phase++;
            u->next_ms = now + onboarding_delay(g);
        }
        return type;
    }
    case P_DEADLINE:
        u->project++;
        u->moved = 0;
        u->due_ms = now + between(g, 2 * DAY_MS, 10 * DAY_MS);
        if (chance(g, 30)) {
            u->phase = P_MOVE;
            u->next_ms = now + between(g, HOUR_MS, DAY_MS);
        } else {
            schedule_delivery(g, u, now);
        }
        return "deadline_set";
    case P_MOVE:
        u->moved = 1;
        u->due_ms += between(g, DAY_MS, 3 * DAY_MS);
        schedule_delivery(g, u, now);
        return "deadline_set";
    case P_DELIVER:
        u->phase = chance(g, 30) ? P_NOISE : P_DEADLINE;
        u->next_ms = now + (chance(g, 8) ? between(g, 15 * DAY_MS, 25 * DAY_MS)
                                         : between(g, DAY_MS, 4 * DAY_MS));
        return "project_delivered";
    default:
        u->phase = P_DEADLINE;
        u->next_ms = now + between(g, HOUR_MS, 2 * DAY_MS);
        return "comment_added";
    }
}

static void put_props(cue_buf *out, const guser *u, const char *type, size_t idx)
{
    bool project = strcmp(type, "deadline_set") == 0 || strcmp(type, "project_delivered") == 0;
    if (!project) return;
    cue_buf_printf(out, ",\"props\":{\"project_id\":\"p%zu-%u\",\"project_name\":\"Project %u\"",
                   idx, u->project, u->project);
    if (type[0] == 'd') {
        cue_buf_append_str(out, ",\"due_at\":");
        put_local_time(out, u->due_ms, zones[u->zone].offset_min);
    }
    cue_buf_append_char(out, '}');
}

/* The fields every event starts with, up to and including "ts". */
static void put_head(cue_buf *out, const cue_gen *g, uint32_t idx, const char *type,
                     int64_t stamped, bool local)
{
    cue_buf_reset(out);
    cue_buf_printf(out,
                   "{\"event_id\":\"%016llx-%zu\",\"user_id\":\"u%07u\",\"type\":\"%s\",\"ts\":",
                   (unsigned long long)g->opts.seed, g->produced, idx, type);
    if (local)
        put_local_time(out, stamped, zones[g->users[idx].zone].offset_min);
    else
        cue_buf_append_i64(out, stamped);
}

/* ---- consent steps (opts.consent) ------------------------------------- */

/* Sets when the user's next remaining step happens, counted from `now`:
 * grants within minutes of sign-up, as a first-run prompt gets them; a
 * withdrawal or a mute at some point in the following three weeks. */
static void consent_schedule(cue_gen *g, guser *u, int64_t now)
{
    uint64_t *r = &g->consent_rng;
    if (u->consent == 0)
        u->consent_ms = INT64_MAX;
    else if (u->consent & (C_GRANT_PUSH | C_GRANT_EMAIL))
        u->consent_ms = now + draw(r, 1000, 10 * 60000);
    else
        u->consent_ms = now + draw(r, HOUR_MS, 21 * DAY_MS);
}

/* At sign-up, the steps this user will take. In the opt-in region some grant
 * push (60%) and email (80%); anyone whom push may reach later withdraws it
 * (5%) or mutes it (3%). Elsewhere nothing is granted explicitly: push and
 * email are on until withdrawn. */
static void consent_plan(cue_gen *g, guser *u, int64_t signup_ms)
{
    uint64_t *r = &g->consent_rng;
    bool opt_in = strcmp(zones[u->zone].region, "EU") == 0;
    uint8_t steps = 0;
    if (opt_in && draw_chance(r, 60)) steps |= C_GRANT_PUSH;
    if (opt_in && draw_chance(r, 80)) steps |= C_GRANT_EMAIL;
    if (!opt_in || (steps & C_GRANT_PUSH)) {
        int64_t k = draw(r, 0, 99);
        if (k < 5)
            steps |= C_WITHDRAW_PUSH;
        else if (k < 8)
            steps |= C_MUTE_PUSH;
    }
    u->consent = steps;
    consent_schedule(g, u, signup_ms);
}

/* The user's next consent step as an event (stamped, like the rest, a little
 * early now and then); plans the step after it. */
static void consent_event(cue_gen *g, uint32_t idx, cue_buf *out, int64_t *ts_ms)
{
    guser *u = &g->users[idx];
    uint64_t *r = &g->consent_rng;
    int64_t when = u->consent_ms;
    uint8_t step = 1; /* the lowest pending: steps go in C_* order */
    while (!(u->consent & step))
        step = (uint8_t)(step << 1);
    u->consent &= (uint8_t)~step;
    consent_schedule(g, u, when);
    sift_down(g, 0);
    int64_t stamped = draw_chance(r, 3) ? when - draw(r, 60000, 20 * 60000) : when;
    bool mute = step == C_MUTE_PUSH;
    put_head(out, g, idx, mute ? "channel_muted" : "consent_changed", stamped, draw_chance(r, 40));
    cue_buf_printf(out, ",\"props\":{\"channel\":\"%s\",\"%s\":%s}}",
                   step == C_GRANT_EMAIL ? "email" : "push", mute ? "muted" : "granted",
                   step == C_WITHDRAW_PUSH ? "false" : "true");
    *ts_ms = stamped;
}

int cue_gen_next(cue_gen *g, cue_buf *out, int64_t *ts_ms)
{
    if (g->produced >= g->opts.events) return 0;
    uint32_t idx = g->heap[0];
    guser *u = &g->users[idx];
    if (u->consent_ms < u->next_ms) {
        consent_event(g, idx, out, ts_ms);
        g->produced++;
        return 1;
    }
    int64_t when = u->next_ms;
    bool signup = u->phase == P_SIGNUP;
    const char *type = step_user(g, u);
    if (signup && g->opts.consent) consent_plan(g, u, when);
    sift_down(g, 0);
    /* A few events arrive stamped a little earlier than their neighbours, as
     * mobile clients do: out of order, but within the allowed lateness. */
    int64_t stamped = chance(g, 3) ? when - between(g, 60000, 20 * 60000) : when;
    put_head(out, g, idx, type, stamped, chance(g, 40));
    put_props(out, u, type, idx);
    if (signup || chance(g, 10))
        cue_buf_printf(out,
                       ",\"user\":{\"role\":\"%s\",\"timezone\":\"%s\",\"region\":\"%s\","
                       "\"locale\":\"%s\"}",
                       roles[u->role], zones[u->zone].name, zones[u->zone].region,
                       zones[u->zone].locale);
    cue_buf_append_char(out, '}');
    *ts_ms = stamped;
    g->produced++;
    return 1;
}
