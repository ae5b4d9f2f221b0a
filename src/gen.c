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

typedef struct guser {
    int64_t next_ms;  /* when their next event happens */
    int64_t due_ms;   /* current project's deadline */
    uint32_t project; /* projects started so far */
    uint8_t phase;
    uint8_t zone; /* index into zones[] */
    uint8_t role;
    uint8_t moved; /* this project's deadline was moved */
} guser;

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
    size_t produced;
    guser *users;   /* owned, opts.users entries */
    uint32_t *heap; /* owned: user indices, min-heap on next_ms then index */
    size_t heap_n;
};

static uint64_t next_rand(cue_gen *g)
{
    /* splitmix64: tiny, fast, and fully determined by the seed. */
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t between(cue_gen *g, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(next_rand(g) % (uint64_t)(hi - lo + 1));
}

static bool chance(cue_gen *g, int percent)
{
    return (int)(next_rand(g) % 100) < percent;
}

static bool before(const cue_gen *g, uint32_t a, uint32_t b)
{
    const guser *x = &g->users[a], *y = &g->users[b];
    return x->next_ms < y->next_ms || (x->next_ms == y->next_ms && a < b);
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

int cue_gen_next(cue_gen *g, cue_buf *out, int64_t *ts_ms)
{
    if (g->produced >= g->opts.events) return 0;
    uint32_t idx = g->heap[0];
    guser *u = &g->users[idx];
    int64_t when = u->next_ms;
    bool signup = u->phase == P_SIGNUP;
    const char *type = step_user(g, u);
    sift_down(g, 0);
    /* A few events arrive stamped a little earlier than their neighbours, as
     * mobile clients do: out of order, but within the allowed lateness. */
    int64_t stamped = chance(g, 3) ? when - between(g, 60000, 20 * 60000) : when;
    cue_buf_reset(out);
    cue_buf_printf(out,
                   "{\"event_id\":\"%016llx-%zu\",\"user_id\":\"u%07u\",\"type\":\"%s\",\"ts\":",
                   (unsigned long long)g->opts.seed, g->produced, idx, type);
    if (chance(g, 40))
        put_local_time(out, stamped, zones[u->zone].offset_min);
    else
        cue_buf_append_i64(out, stamped);
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
