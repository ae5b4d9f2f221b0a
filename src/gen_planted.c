/* A history with planted effects, for checking `cuepoint report` (gen.h). */
#include "cuepoint/gen.h"

#include "cuepoint/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_MS  60000LL
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)
#define WEEK_MS (7 * DAY_MS)
/* 1970-01-05, the first Monday: sign-up cohorts are weeks from a Monday, as
 * the report counts them. */
#define MONDAY0_MS (4 * DAY_MS)
/* The engaged take up to this between steps: past 48 h, so that a shorter
 * stall delay (a what-if) nudges some of them, and three steps stay within
 * 7 days (165 h), so that they all complete onboarding in time. */
#define ENGAGED_GAP_MAX_MS (55 * HOUR_MS)
/* Cohort weeks a truth keeps: sign-ups spread over at most this many. */
#define PLANT_WEEKS_MAX 52

enum step {
    S_SIGNUP,
    S_GRANT_PUSH,
    S_GRANT_EMAIL,
    S_UPLOAD,
    S_INVITE,
    S_EXPORT,
    S_WITHDRAW,
    S_ACTIVE,
    S_DONE
};
/* What a user will do with onboarding, drawn at sign-up. */
enum plan { PL_ENGAGED, PL_RECOVER, PL_OPTOUT, PL_LOST };

typedef struct puser {
    int64_t next_ms; /* the script's next event; INT64_MAX: none */
    int64_t signup_ms;
    int64_t mute_ms; /* a planned mute; INT64_MAX: none */
    int64_t active_until;
    uint32_t project;
    uint8_t step, plan, zone, role, mode, holdout;
} puser;

/* opt_in: a region deploy/policies.json sends nothing to without consent;
 * its users grant push and email at sign-up. */
static const struct {
    const char *name, *region;
    bool opt_in;
} zones[] = {{"Europe/Berlin", "EU", true},      {"America/Los_Angeles", "US-CA", false},
             {"America/New_York", "US", false},  {"Asia/Tokyo", "JP", false},
             {"Europe/London", "GB", true},      {"Asia/Kolkata", "IN", false},
             {"America/Sao_Paulo", "BR", false}, {"Australia/Sydney", "AU", false}};
#define N_ZONES (sizeof zones / sizeof *zones)
static const char *const roles[] = {"designer", "editor", "producer", "manager"};
static const char *const modes[] = {"remote", "in_person"};

/* Expected values: a sum of each user's probability and how many users. */
typedef struct mean {
    double sum;
    uint64_t n;
} mean;

struct cue_gen_plant {
    cue_gen_plant_opts o;
    uint64_t rng;
    size_t produced;
    int64_t week0; /* the first cohort's week number */
    puser *users;
    uint32_t *heap;
    size_t heap_n;
    /* The truth. */
    mean all, by_mode[2], by_role[4], by_week[PLANT_WEEKS_MAX];
    uint64_t exposed[2]; /* [treated, holdout] */
    uint64_t recovered[2];
    uint64_t nudge_optouts, completers, muted;
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t between(cue_gen_plant *g, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(splitmix(&g->rng) % (uint64_t)(hi - lo + 1));
}

/* Uniform in [0, 1). */
static double unit(cue_gen_plant *g)
{
    return (double)(splitmix(&g->rng) >> 11) / 9007199254740992.0;
}

static int64_t week_of(int64_t ms)
{
    int64_t x = ms - MONDAY0_MS;
    return x >= 0 ? x / WEEK_MS : -((-x + WEEK_MS - 1) / WEEK_MS);
}

void cue_gen_plant_defaults(cue_gen_plant_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->users = 1000;
    o->start_ms = 1767571200000LL; /* 2026-01-05T00:00:00Z, a Monday */
    o->weeks = 4;
    o->engaged[0] = 0.45;
    o->engaged[1] = 0.65;
    o->engaged_step = 0.04;
    o->recover_treated = 0.40;
    o->recover_holdout = 0.20;
    o->optout_nudge = 0.08;
    o->optout_after = 0.05;
    o->stall_ms = 72 * HOUR_MS;
}

static int64_t next_at(const puser *u)
{
    return u->mute_ms < u->next_ms ? u->mute_ms : u->next_ms;
}

static bool before(const cue_gen_plant *g, uint32_t a, uint32_t b)
{
    int64_t x = next_at(&g->users[a]), y = next_at(&g->users[b]);
    return x < y || (x == y && a < b);
}

static void sift_down(cue_gen_plant *g, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g->heap_n && before(g, g->heap[l], g->heap[m])) m = l;
        if (r < g->heap_n && before(g, g->heap[r], g->heap[m])) m = r;
        if (m == i) return;
        uint32_t t = g->heap[i];
        g->heap[i] = g->heap[m];
        g->heap[m] = t;
        i = m;
    }
}

static bool probability(double p)
{
    return p >= 0 && p <= 1;
}

int cue_gen_plant_new(cue_gen_plant **out, const cue_gen_plant_opts *o, cue_err *err)
{
    if (o->users == 0 || o->users > UINT32_MAX)
        return cue_err_set(err, CUE_EINVAL, "users must be from 1 to %u", UINT32_MAX);
    if (o->weeks < 1 || o->weeks > PLANT_WEEKS_MAX - 1)
        return cue_err_set(err, CUE_EINVAL, "sign-up weeks must be from 1 to %d",
                           PLANT_WEEKS_MAX - 1);
    if (!probability(o->engaged[0]) || !probability(o->engaged[1]) ||
        !probability(o->recover_holdout) || !probability(o->optout_after) ||
        !probability(o->optout_nudge + o->recover_treated))
        return cue_err_set(err, CUE_EINVAL,
                           "planted probabilities must be in [0, 1] (and the "
                           "nudge's opt-out and recovery together too)");
    cue_gen_plant *g = calloc(1, sizeof *g);
    if (g == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    g->o = *o;
    g->rng = o->seed ^ 0x706c616e746564ULL; /* "planted" */
    g->week0 = week_of(o->start_ms);
    g->users = calloc(o->users, sizeof *g->users);
    g->heap = calloc(o->users, sizeof *g->heap);
    if (g->users == NULL || g->heap == NULL) {
        cue_gen_plant_free(g);
        return cue_err_set(err, CUE_ENOMEM, "out of memory for %zu users", o->users);
    }
    for (size_t i = 0; i < o->users; i++) {
        puser *u = &g->users[i];
        u->signup_ms = u->next_ms = o->start_ms + between(g, 0, o->weeks * WEEK_MS - 1);
        u->mute_ms = INT64_MAX;
        u->zone = (uint8_t)(splitmix(&g->rng) % N_ZONES);
        u->role = (uint8_t)(splitmix(&g->rng) % 4);
        u->mode = (uint8_t)(splitmix(&g->rng) % 2);
        g->heap[i] = (uint32_t)i;
    }
    g->heap_n = o->users;
    for (size_t i = g->heap_n / 2 + 1; i-- > 0;)
        sift_down(g, i);
    *out = g;
    return 0;
}

void cue_gen_plant_free(cue_gen_plant *g)
{
    if (g == NULL) return;
    free(g->users);
    free(g->heap);
    free(g);
}

static void uid(char *out, size_t cap, uint32_t idx)
{
    snprintf(out, cap, "u%07u", idx);
}

/* At sign-up: the user's plan, and the truth's expectations for them. */
static void plan(cue_gen_plant *g, uint32_t idx, puser *u)
{
    char id[16];
    uid(id, sizeof id, idx);
    u->holdout = g->o.holdout && g->o.holdout(id, strlen(id), g->o.holdout_ctx);
    int64_t w = week_of(u->signup_ms) - g->week0;
    double e = g->o.engaged[u->mode] + g->o.engaged_step * (double)w;
    e = e < 0 ? 0 : e > 1 ? 1 : e;
    double recover = u->holdout ? g->o.recover_holdout : g->o.recover_treated;
    double x = unit(g);
    if (x < e) {
        u->plan = PL_ENGAGED;
    } else {
        double y = unit(g), quit = u->holdout ? 0 : g->o.optout_nudge;
        u->plan = y < quit ? PL_OPTOUT : y < quit + recover ? PL_RECOVER : PL_LOST;
        g->exposed[u->holdout]++;
        g->recovered[u->holdout] += u->plan == PL_RECOVER;
        g->nudge_optouts += u->plan == PL_OPTOUT;
    }
    double p = e + (1 - e) * recover; /* onboarding completed within 7 days */
    mean *ms[] = {&g->all, &g->by_mode[u->mode], &g->by_role[u->role],
                  &g->by_week[w >= 0 && w < PLANT_WEEKS_MAX ? w : 0]};
    for (size_t k = 0; k < sizeof ms / sizeof *ms; k++) {
        ms[k]->sum += p;
        ms[k]->n++;
    }
}

/* The first onboarding step after sign-up (and the grants). */
static void onboarding_start(cue_gen_plant *g, puser *u)
{
    int64_t stall = u->signup_ms + g->o.stall_ms;
    switch (u->plan) {
    case PL_ENGAGED:
        u->step = S_UPLOAD;
        u->next_ms = u->signup_ms + between(g, HOUR_MS, ENGAGED_GAP_MAX_MS);
        break;
    case PL_RECOVER:
        u->step = S_UPLOAD;
        u->next_ms = stall + between(g, 2 * HOUR_MS, 20 * HOUR_MS);
        break;
    case PL_OPTOUT:
        u->step = S_WITHDRAW;
        u->next_ms = stall + between(g, 14 * HOUR_MS, 36 * HOUR_MS);
        break;
    default: u->step = S_DONE; u->next_ms = INT64_MAX;
    }
}

static void completed(cue_gen_plant *g, puser *u, int64_t now)
{
    g->completers++;
    if (unit(g) < g->o.optout_after) {
        u->mute_ms = now + between(g, 8 * DAY_MS, 20 * DAY_MS);
        g->muted++;
    }
    u->active_until = now + between(g, 1, 8) * WEEK_MS;
    u->step = S_ACTIVE;
    u->next_ms = now + between(g, 2 * DAY_MS, 5 * DAY_MS);
}

/* Moves the user past the step just written, at `now`. */
static void advance(cue_gen_plant *g, puser *u, int64_t now)
{
    switch (u->step) {
    case S_SIGNUP:
        if (!zones[u->zone].opt_in) {
            onboarding_start(g, u);
            return;
        }
        u->step = S_GRANT_PUSH;
        u->next_ms = now + between(g, MIN_MS, 5 * MIN_MS);
        return;
    case S_GRANT_PUSH:
        u->step = S_GRANT_EMAIL;
        u->next_ms = now + between(g, MIN_MS, 5 * MIN_MS);
        return;
    case S_GRANT_EMAIL: onboarding_start(g, u); return;
    case S_UPLOAD:
    case S_INVITE:
        /* The engaged take their time; the recovered, nudged, go quickly. */
        u->step++;
        u->next_ms = now + (u->plan == PL_ENGAGED ? between(g, HOUR_MS, ENGAGED_GAP_MAX_MS)
                                                  : between(g, HOUR_MS, 12 * HOUR_MS));
        return;
    case S_EXPORT: completed(g, u, now); return;
    case S_ACTIVE:
        u->next_ms = now + between(g, 2 * DAY_MS, 5 * DAY_MS);
        if (u->next_ms <= u->active_until) return;
        /* fall through */
    default: u->step = S_DONE; u->next_ms = INT64_MAX;
    }
}

static void put_head(cue_gen_plant *g, cue_buf *out, uint32_t idx, const char *type, int64_t ms)
{
    cue_buf_reset(out);
    cue_buf_printf(out,
                   "{\"event_id\":\"p%llx-%zu\",\"user_id\":\"u%07u\",\"type\":\"%s\",\"ts\":%lld",
                   (unsigned long long)g->o.seed, g->produced, idx, type, (long long)ms);
}

/* The event of the user's current step, into `out`. */
static void put_step(cue_gen_plant *g, cue_buf *out, uint32_t idx, puser *u, int64_t ms)
{
    static const char *const types[] = {"signed_up",      "consent_changed", "consent_changed",
                                        "file_uploaded",  "member_invited",  "project_exported",
                                        "consent_changed"};
    if (u->step == S_ACTIVE) {
        bool deliver = unit(g) < 0.5;
        put_head(g, out, idx, deliver ? "project_delivered" : "comment_added", ms);
        if (deliver) u->project++;
        cue_buf_printf(out, ",\"props\":{\"project_id\":\"p%u-%u\"}}", idx, u->project);
        return;
    }
    put_head(g, out, idx, types[u->step], ms);
    if (u->step == S_SIGNUP)
        cue_buf_printf(out,
                       ",\"user\":{\"role\":\"%s\",\"timezone\":\"%s\",\"region\":\"%s\","
                       "\"work_mode\":\"%s\"}}",
                       roles[u->role], zones[u->zone].name, zones[u->zone].region, modes[u->mode]);
    else if (u->step == S_GRANT_PUSH || u->step == S_GRANT_EMAIL || u->step == S_WITHDRAW)
        cue_buf_printf(out, ",\"props\":{\"channel\":\"%s\",\"granted\":%s}}",
                       u->step == S_GRANT_EMAIL ? "email" : "push",
                       u->step == S_WITHDRAW ? "false" : "true");
    else
        cue_buf_append_char(out, '}');
}

int cue_gen_plant_next(cue_gen_plant *g, cue_buf *out, int64_t *ts_ms)
{
    if (g->heap_n == 0) return 0;
    uint32_t idx = g->heap[0];
    puser *u = &g->users[idx];
    int64_t when = next_at(u);
    if (when == INT64_MAX) return 0; /* everyone is done */
    if (u->mute_ms == when) {
        put_head(g, out, idx, "channel_muted", when);
        cue_buf_append_str(out, ",\"props\":{\"channel\":\"push\",\"muted\":true}}");
        u->mute_ms = INT64_MAX;
    } else {
        if (u->step == S_SIGNUP) plan(g, idx, u);
        put_step(g, out, idx, u, when);
        advance(g, u, when);
    }
    sift_down(g, 0);
    *ts_ms = when;
    g->produced++;
    return 1;
}

/* ---- the truth -------------------------------------------------------------- */

static void put_mean(cue_buf *out, const char *name, const mean *m, bool comma)
{
    cue_buf_printf(out, "\"%s\":{\"users\":%llu,\"expected\":%.6f}%s", name,
                   (unsigned long long)m->n, m->n ? m->sum / (double)m->n : 0.0, comma ? "," : "");
}

static void put_completion(const cue_gen_plant *g, cue_buf *out)
{
    cue_buf_append_str(out, "\"onboarding_completed_7d\":{");
    put_mean(out, "all", &g->all, true);
    cue_buf_append_str(out, "\"work_mode\":{");
    for (int m = 0; m < 2; m++)
        put_mean(out, modes[m], &g->by_mode[m], m == 0);
    cue_buf_append_str(out, "},\"role\":{");
    for (int r = 0; r < 4; r++)
        put_mean(out, roles[r], &g->by_role[r], r < 3);
    cue_buf_append_str(out, "},\"cohort\":{");
    bool first = true;
    for (int w = 0; w < PLANT_WEEKS_MAX; w++) {
        if (g->by_week[w].n == 0) continue;
        int64_t y;
        unsigned mo, d;
        cue_time_civil_from_days((g->week0 + w) * 7 + 4, &y, &mo, &d);
        char name[16];
        snprintf(name, sizeof name, "%04lld-%02u-%02u", (long long)y, mo, d);
        if (!first) cue_buf_append_char(out, ',');
        put_mean(out, name, &g->by_week[w], false);
        first = false;
    }
    cue_buf_append_str(out, "}}");
}

void cue_gen_plant_truth(const cue_gen_plant *g, const char *experiment, cue_buf *out)
{
    const cue_gen_plant_opts *o = &g->o;
    cue_buf_printf(out, "{\"users\":%zu,\"events\":%zu,", o->users, g->produced);
    put_completion(g, out);
    cue_buf_append_str(out, ",\"experiment\":{\"name\":");
    cue_buf_append_json_str(out, experiment ? experiment : "", experiment ? strlen(experiment) : 0);
    cue_buf_printf(out,
                   ",\"goal\":\"onboarding_completed_7d\",\"exposed\":%llu,\"holdout\":%llu,"
                   "\"treated\":%llu,\"completed_treated\":%llu,\"completed_holdout\":%llu,"
                   "\"rate_treated\":%.6f,\"rate_holdout\":%.6f,\"lift\":%.6f},",
                   (unsigned long long)(g->exposed[0] + g->exposed[1]),
                   (unsigned long long)g->exposed[1], (unsigned long long)g->exposed[0],
                   (unsigned long long)g->recovered[0], (unsigned long long)g->recovered[1],
                   o->recover_treated, o->recover_holdout, o->recover_treated - o->recover_holdout);
    cue_buf_printf(out,
                   "\"opt_out_after_trigger\":{\"journey\":\"onboarding\",\"trigger\":"
                   "\"onboarding_stalled\",\"sent\":%llu,\"followed\":%llu,\"per_thousand\":%.3f},",
                   (unsigned long long)g->exposed[0], (unsigned long long)g->nudge_optouts,
                   1000 * o->optout_nudge);
    cue_buf_printf(out,
                   "\"opt_out_after_onboarding\":{\"completers\":%llu,\"muted\":%llu,"
                   "\"expected\":%.6f}}",
                   (unsigned long long)g->completers, (unsigned long long)g->muted,
                   o->optout_after);
}
