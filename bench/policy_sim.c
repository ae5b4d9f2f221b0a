/*
 * policy_sim: what the policy stage does to a month of messages, and what it
 * costs. A fixed-seed month of generated events with consent events (gen.h)
 * for 10k users goes through the four example journeys in the file mode, in
 * one process, twice per round: without the policy stage ("off") and with
 * deploy/policies.json ("on"); each mode RUNS times, interleaved, over fresh
 * state directories in a temporary directory. The events come from memory,
 * so both modes pay for the same work but the policy's.
 *
 * For each mode it prints one line, "bench=policy_sim case=off|on ...":
 *   tpw_p50/p99/max  triggers per user-week: each user's weeks from the one
 *                    they signed up in (weeks of 7 days from --start); off
 *                    counts every trigger the journeys emit at its trigger
 *                    time, on counts every trigger written at the stream time
 *                    it was written (see below);
 *   quiet_push       pushes inside the user's local quiet hours (the policy
 *                    file's window, in the zone the policy reads), for classes
 *                    that do not bypass them; quiet_push_bypass, the rest;
 *                    off: every trigger as a push at its trigger time; on:
 *                    every trigger written with channel push, at the stream
 *                    time it was written;
 *   sent_off_time    (on) sent decisions whose decided_at is not the stream
 *                    time their trigger was written at: a check of quiet
 *                    hours at decided_at would miss those sends;
 *   push_no_consent  pushes at an instant the user had not consented to push,
 *                    from a replay of their consent_changed and channel_muted
 *                    events (at the stream time they were applied) over their
 *                    region's default; off: every trigger as a push;
 *   holdout_reached  users in an experiment's holdout who got a trigger the
 *                    experiment covers (off: any; on: a sent one);
 *   events_per_s     the median over the runs of the mode;
 * then "case=cost" with both rates and their ratio, and a short summary.
 * With policies on, quiet_push, push_no_consent, holdout_reached and
 * sent_off_time must be 0; the exit status is 1 when one is not (or when runs
 * disagree, or sent triggers and sent decisions differ in number), never for
 * speed.
 *
 * When a trigger is written is the bench's own reading, not the decision
 * record's: the stream time of the record being processed when the file mode
 * hands the trigger over (the largest event time so far: timers and
 * deferrals that time passes come out before the event that moved it), or
 * --days' end once the records are done and the file mode advances to it.
 *
 * The checks use the policy's readings (policy.h: cue_policy_quiet_at,
 * cue_policy_opt_in, cue_policy_experiment_of) for zones, opt-in regions and
 * experiment scope, so a different policy file is checked by its own rules;
 * the consent replay, the week counting and the decision records are the
 * bench's own.
 */
#define _XOPEN_SOURCE 700 /* nftw, to remove the temporary directory */

#include "cuepoint/config.h"
#include "cuepoint/filemode.h"
#include "cuepoint/gen.h"
#include "cuepoint/machine.h"
#include "cuepoint/policy.h"
#include "cuepoint/timefmt.h"

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS  (24 * 3600 * 1000LL)
#define WEEK_MS (7 * DAY_MS)
/* Push consent changes remembered per user: the generator makes at most two
 * (a grant, then a withdrawal or a mute); more are counted and reported. */
#define CHANGES_MAX 8
#define RUNS_MAX    99

typedef struct opts {
    size_t users, events_max;
    int days, runs;
    uint64_t seed;
    int64_t start_ms;
    const char *machines, *policies, *workdir;
} opts;

/* One push consent change, at the stream time the task applied it. */
enum { CH_GRANT, CH_DENY, CH_MUTE, CH_UNMUTE };
typedef struct change {
    int64_t ms;
    uint8_t kind;
} change;

typedef struct suser {
    int64_t first_ms; /* INT64_MIN: no event */
    char tz[CUE_ATTR_BYTES_MAX], region[CUE_ATTR_BYTES_MAX];
    uint8_t tz_len, region_len, n_changes;
    change changes[CHANGES_MAX];
} suser;

/* All generated lines back to back, with their offsets. */
typedef struct corpus {
    cue_buf text;
    size_t *off;     /* n + 1 entries */
    int64_t *stream; /* n entries: the stream time once line i is read */
    size_t n, cap;
    size_t consent_events, changes_dropped;
} corpus;

/* A message as the checks see it: who, which trigger, when, which channel. */
typedef struct msg {
    uint32_t user;
    uint16_t machine;
    uint8_t trigger;
    uint8_t push;
    int64_t ms;
} msg;

typedef struct msgs {
    msg *v;
    size_t n, cap;
} msgs;

typedef struct figures {
    uint64_t triggers, tpw_p50, tpw_p99, tpw_max;
    uint64_t quiet_push, quiet_push_bypass, push_no_consent, holdout_reached, sent_off_time;
    uint64_t outcomes[CUE_OUTCOME_COUNT], dead_letters, records;
} figures;

/* Everything one process needs, set up once. */
typedef struct sim {
    opts o;
    cue_config cfg;
    cue_machines *ms;
    cue_policy *p;
    cue_policy_tz *z;
    cue_user *scratch; /* attributes of the user being checked */
    corpus c;
    suser *users;
    int64_t end_ms;
    char dir[512]; /* leaves room in cfg.state_dir for a run's name */
} sim;

static void die(const char *what, const char *text)
{
    fprintf(stderr, "policy_sim: %s: %s\n", what, text);
    exit(2);
}

/* ---- the corpus ---------------------------------------------------------- */

static uint32_t user_index(const char *id, size_t len)
{
    /* The generator's ids are "u" and seven digits: the index itself. */
    uint32_t v = 0;
    for (size_t i = 1; i < len; i++)
        v = v * 10 + (uint32_t)(id[i] - '0');
    return v;
}

/* The string value of `"key":"` in a generated line, or NULL. */
static const char *str_field(const char *line, const char *key, size_t *len)
{
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *s = strstr(line, pat);
    if (s == NULL) return NULL;
    s += strlen(pat);
    *len = (size_t)(strchr(s, '"') - s);
    return s;
}

/* What the checks need from one generated event: the user's attributes
 * (their first event carries them) and push consent changes. `applied_ms` is
 * the stream time at which the task applies it (an event stamped early is
 * applied at the time already reached, and a decision in between still saw
 * the old consent). */
static void note_event(sim *s, const char *line, int64_t ts, int64_t applied_ms)
{
    size_t n;
    const char *id = str_field(line, "user_id", &n);
    suser *u = &s->users[user_index(id, n)];
    if (u->first_ms == INT64_MIN || ts < u->first_ms) u->first_ms = ts;
    const char *v;
    if (u->tz_len == 0 && (v = str_field(line, "timezone", &n)) && n < sizeof u->tz)
        memcpy(u->tz, v, u->tz_len = (uint8_t)n);
    if (u->region_len == 0 && (v = str_field(line, "region", &n)) && n < sizeof u->region)
        memcpy(u->region, v, u->region_len = (uint8_t)n);
    bool consent = strstr(line, "\"type\":\"consent_changed\"") != NULL;
    bool mute = strstr(line, "\"type\":\"channel_muted\"") != NULL;
    if (!consent && !mute) return;
    s->c.consent_events++;
    if (!strstr(line, "\"channel\":\"push\"")) return;
    if (u->n_changes == CHANGES_MAX) {
        s->c.changes_dropped++;
        return;
    }
    bool yes = strstr(line, consent ? "\"granted\":true" : "\"muted\":true") != NULL;
    u->changes[u->n_changes++] =
        (change){.ms = applied_ms,
                 .kind = consent ? (yes ? CH_GRANT : CH_DENY) : (yes ? CH_MUTE : CH_UNMUTE)};
}

/* Generates up to end_ms (the first event stamped at or after it ends the
 * stream), keeping every line and noting what the checks need. */
static void corpus_make(sim *s)
{
    cue_gen *g;
    cue_err err;
    if (cue_gen_new(&g,
                    &(cue_gen_opts){.seed = s->o.seed,
                                    .users = s->o.users,
                                    .events = s->o.events_max ? s->o.events_max : SIZE_MAX,
                                    .start_ms = s->o.start_ms,
                                    .consent = true},
                    &err) != 0)
        die("generator", err.msg);
    corpus *c = &s->c;
    cue_buf b;
    cue_buf_init(&b, 512);
    cue_buf_init(&c->text, s->o.users * 2048); /* about 10 events a user; it grows */
    int64_t ts, stream = INT64_MIN;
    while (cue_gen_next(g, &b, &ts) == 1 && ts < s->end_ms) {
        if (c->n + 1 >= c->cap) {
            c->cap = c->cap ? 2 * c->cap : 1 << 16;
            c->off = realloc(c->off, c->cap * sizeof *c->off);
            c->stream = realloc(c->stream, c->cap * sizeof *c->stream);
            if (c->off == NULL || c->stream == NULL) die("corpus", "out of memory");
        }
        if (ts > stream) stream = ts;
        c->stream[c->n] = stream;
        c->off[c->n++] = c->text.len;
        cue_buf_append(&c->text, b.data, b.len);
        cue_buf_append_char(&b, '\0');
        note_event(s, b.data, ts, stream);
    }
    c->off[c->n] = c->text.len;
    cue_buf_deinit(&b);
    cue_gen_free(g);
}

typedef struct mem_source {
    const corpus *c;
    size_t i;
    int64_t end_ms; /* where the file mode advances to after the last record */
    int64_t now_ms; /* the stream time of the record being processed */
} mem_source;

static int mem_next(void *ctx, const char **rec, size_t *len, int64_t *line, bool *oversize,
                    cue_err *err)
{
    mem_source *m = ctx;
    if (m->i == m->c->n) {
        m->now_ms = m->end_ms;
        return 0;
    }
    m->now_ms = m->c->stream[m->i];
    *rec = m->c->text.data + m->c->off[m->i];
    *len = m->c->off[m->i + 1] - m->c->off[m->i];
    *line = (int64_t)++m->i;
    *oversize = false;
    return 1;
}

/* ---- one run --------------------------------------------------------------- */

static void msgs_add(msgs *l, msg m)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1 << 16;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (l->v == NULL) die("triggers", "out of memory");
    }
    l->v[l->n++] = m;
}

/* What one run collects from the triggers the file mode writes. */
typedef struct writes {
    msgs *l;
    const mem_source *src;
    bool policy;
} writes;

/* The channel the policy chose, from the record's data.policy (the last
 * member of data): whether it is push. */
static bool policy_push(const char *rec, size_t len)
{
    static const char key[] = "\"policy\":{\"channel\":";
    size_t k = sizeof key - 1;
    for (size_t i = len >= k ? len - k + 1 : 0; i-- > 0;)
        if (memcmp(rec + i, key, k) == 0)
            return len - i - k >= 6 && memcmp(rec + i + k, "\"push\"", 6) == 0;
    die("trigger record", "no data.policy.channel");
    return false;
}

/* Every trigger the file mode writes (with policies on: every sent one):
 * policies off, at its trigger time and as a push; on, at the stream time it
 * is written, on the channel the policy chose. */
static void on_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    writes *w = ctx;
    msgs_add(w->l, (msg){.user = user_index(t->user->id, t->user->id_len),
                         .machine = t->machine_index,
                         .trigger = t->trigger_index,
                         .push = w->policy ? policy_push(rec, len) : 1,
                         .ms = w->policy ? w->src->now_ms : t->time_ms});
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Runs the corpus through the file mode; the decisions (policies on) go to
 * `decisions`. Returns events/s. */
static double run_once(sim *s, bool policy, int round, msgs *sent, FILE *decisions, figures *f)
{
    snprintf(s->cfg.state_dir, sizeof s->cfg.state_dir, "%s/%s-%d", s->dir, policy ? "on" : "off",
             round);
    FILE *null = fopen("/dev/null", "w");
    mem_source src = {.c = &s->c, .end_ms = s->end_ms};
    writes w = {.l = sent, .src = &src, .policy = policy};
    cue_filemode_opts fo = {.cfg = &s->cfg,
                            .ms = s->ms,
                            .source = mem_next,
                            .source_ctx = &src,
                            .source_name = "generator",
                            .out = null,
                            .dead = null,
                            .policy = policy ? s->p : NULL,
                            .decisions = policy ? decisions : NULL,
                            .until_ms = s->end_ms,
                            .on_trigger = on_trigger,
                            .on_trigger_ctx = &w};
    cue_filemode_result res;
    cue_err err = {0};
    if (cue_filemode_run(&fo, &res, &err) != 0) die("file mode", err.msg);
    fclose(null);
    nftw(s->cfg.state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    f->triggers = res.triggers;
    f->records = res.task.records;
    f->dead_letters = res.task.dead_letters;
    memcpy(f->outcomes, res.task.decisions, sizeof f->outcomes);
    return (double)res.task.records / res.seconds;
}

/* ---- reading the decisions ----------------------------------------------- */

static int machine_named(const cue_machines *ms, const char *name)
{
    for (size_t i = 0; i < cue_machines_count(ms); i++)
        if (strcmp(cue_machines_get(ms, i)->name, name) == 0) return (int)i;
    return -1;
}

static int trigger_named(const cue_machine *m, const char *name)
{
    for (int t = 0; t < m->n_triggers; t++)
        if (strcmp(m->triggers[t].name, name) == 0) return t;
    return -1;
}

/* The sent decisions in the file, as messages at their decided_at. */
static void read_sent(const sim *s, FILE *in, msgs *out)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    rewind(in);
    while ((n = getline(&line, &cap, in)) > 0) {
        json_error_t jerr;
        json_t *d = json_loadb(line, (size_t)n, 0, &jerr);
        if (d == NULL) die("decision record", jerr.text);
        const char *outcome = json_string_value(json_object_get(d, "outcome"));
        if (outcome && strcmp(outcome, "sent") == 0) {
            const char *uid = json_string_value(json_object_get(d, "user_id"));
            const char *ch = json_string_value(json_object_get(d, "channel"));
            const char *at = json_string_value(json_object_get(d, "decided_at"));
            int mi = machine_named(s->ms, json_string_value(json_object_get(d, "machine")));
            int ti = mi < 0 ? -1
                            : trigger_named(cue_machines_get(s->ms, (size_t)mi),
                                            json_string_value(json_object_get(d, "trigger")));
            int64_t ms;
            if (!uid || !ch || !at || ti < 0 || cue_time_parse_rfc3339(at, strlen(at), &ms) != 0)
                die("decision record", line);
            msgs_add(out, (msg){.user = user_index(uid, strlen(uid)),
                                .machine = (uint16_t)mi,
                                .trigger = (uint8_t)ti,
                                .push = strcmp(ch, "push") == 0,
                                .ms = ms});
        }
        json_decref(d);
    }
    free(line);
}

/* ---- the checks ---------------------------------------------------------- */

/* The scratch user with user `i`'s attributes, for the policy's readings. */
static const cue_user *as_user(sim *s, uint32_t i)
{
    const suser *su = &s->users[i];
    cue_user *u = s->scratch;
    u->id_len = (uint8_t)snprintf(u->id, sizeof u->id, "u%07u", i);
    memcpy(u->attrs[CUE_ATTR_TIMEZONE], su->tz, su->tz_len);
    u->attr_len[CUE_ATTR_TIMEZONE] = su->tz_len;
    memcpy(u->attrs[CUE_ATTR_REGION], su->region, su->region_len);
    u->attr_len[CUE_ATTR_REGION] = su->region_len;
    return u;
}

/* Whether push may reach the user at `ms`: the region's default, then their
 * changes in the order applied. A change at the same millisecond as the send
 * may have come before or after it, so it counts in the sender's favour. */
static bool push_allowed(const suser *su, bool opt_in, int64_t ms)
{
    bool granted = !opt_in, muted = false;
    for (int i = 0; i < su->n_changes; i++) {
        const change *c = &su->changes[i];
        bool lifts = c->kind == CH_GRANT || c->kind == CH_UNMUTE;
        if (c->ms > ms || (c->ms == ms && !lifts)) break;
        if (c->kind == CH_GRANT || c->kind == CH_DENY) granted = c->kind == CH_GRANT;
        if (c->kind == CH_MUTE || c->kind == CH_UNMUTE) muted = c->kind == CH_MUTE;
    }
    return granted && !muted;
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Per user-week counts: each user's weeks from the one of their first event. */
static void week_percentiles(sim *s, const msgs *l, figures *f)
{
    size_t weeks = (size_t)s->o.days / 7, users = s->o.users;
    uint16_t *count = calloc(users * weeks, sizeof *count);
    uint16_t *dist = malloc(users * weeks * sizeof *dist);
    for (size_t i = 0; i < l->n; i++) {
        int64_t w = (l->v[i].ms - s->o.start_ms) / WEEK_MS;
        if (w < 0) w = 0;                 /* stamped a little before the start */
        if ((size_t)w >= weeks) continue; /* the part week at the end, if any */
        count[l->v[i].user * weeks + (size_t)w]++;
    }
    size_t n = 0;
    for (size_t u = 0; u < users; u++) {
        if (s->users[u].first_ms == INT64_MIN) continue;
        int64_t w0 = (s->users[u].first_ms - s->o.start_ms) / WEEK_MS;
        for (size_t w = w0 < 0 ? 0 : (size_t)w0; w < weeks; w++)
            dist[n++] = count[u * weeks + w];
    }
    qsort(dist, n, sizeof *dist, cmp_u16);
    /* Nearest rank: the smallest value with at least p% of user-weeks at or below it. */
    f->tpw_p50 = n ? dist[(n * 50 + 99) / 100 - 1] : 0;
    f->tpw_p99 = n ? dist[(n * 99 + 99) / 100 - 1] : 0;
    f->tpw_max = n ? dist[n - 1] : 0;
    free(count);
    free(dist);
}

/* Sent decisions (in the order made) against the triggers written (in the
 * same order: a send is written right after its decision): each must be
 * decided at the time it is written. */
static void check_times(const msgs *decided, const msgs *written, figures *f)
{
    for (size_t i = 0; i < decided->n && i < written->n; i++) {
        const msg *d = &decided->v[i], *w = &written->v[i];
        if (d->user != w->user || d->machine != w->machine || d->trigger != w->trigger)
            die("sent decisions", "not in the order their triggers were written");
        f->sent_off_time += d->ms != w->ms;
    }
}

/* Quiet hours, consent and holdouts over the messages (policies off, every
 * message is marked a push: nothing chose a channel). */
static void check(sim *s, const msgs *l, figures *f)
{
    uint8_t *reached = calloc(s->o.users, 1);
    for (size_t i = 0; i < l->n; i++) {
        const msg *m = &l->v[i];
        const cue_user *u = as_user(s, m->user);
        int e = cue_policy_experiment_of(s->p, m->machine, m->trigger);
        if (e >= 0 && cue_policy_assign(s->p, (size_t)e, u->id, u->id_len) == -1 &&
            !reached[m->user]) {
            reached[m->user] = 1;
            f->holdout_reached++;
        }
        if (!m->push) continue;
        if (cue_policy_quiet_at(s->p, s->z, u, m->ms)) {
            if (cue_policy_class_bypass(s->p, cue_policy_class(s->p, m->machine, m->trigger)))
                f->quiet_push_bypass++;
            else
                f->quiet_push++;
        }
        if (!push_allowed(&s->users[m->user], cue_policy_opt_in(s->p, u), m->ms))
            f->push_no_consent++;
    }
    free(reached);
    week_percentiles(s, l, f);
}

/* ---- reporting ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_case(const sim *s, const char *name, const figures *f, double rate)
{
    printf("bench=policy_sim case=%s users=%zu days=%d events=%llu runs=%d events_per_s=%.0f "
           "triggers=%llu tpw_p50=%llu tpw_p99=%llu tpw_max=%llu quiet_push=%llu "
           "quiet_push_bypass=%llu push_no_consent=%llu holdout_reached=%llu dead_letters=%llu "
           "sent_off_time=%llu",
           name, s->o.users, s->o.days, (unsigned long long)f->records, s->o.runs, rate,
           (unsigned long long)f->triggers, (unsigned long long)f->tpw_p50,
           (unsigned long long)f->tpw_p99, (unsigned long long)f->tpw_max,
           (unsigned long long)f->quiet_push, (unsigned long long)f->quiet_push_bypass,
           (unsigned long long)f->push_no_consent, (unsigned long long)f->holdout_reached,
           (unsigned long long)f->dead_letters, (unsigned long long)f->sent_off_time);
    if (strcmp(name, "on") == 0)
        printf(" sent=%llu deferred=%llu suppressed=%llu cancelled=%llu",
               (unsigned long long)f->outcomes[CUE_OUTCOME_SENT],
               (unsigned long long)f->outcomes[CUE_OUTCOME_DEFERRED],
               (unsigned long long)f->outcomes[CUE_OUTCOME_SUPPRESSED],
               (unsigned long long)f->outcomes[CUE_OUTCOME_CANCELLED]);
    putchar('\n');
}

static void print_summary(const sim *s, const figures *off, const figures *on, double r_off,
                          double r_on)
{
    printf("\npolicy_sim: %zu users, %d days from the seed %llu: %llu events (%zu consent "
           "events); policies %s\n",
           s->o.users, s->o.days, (unsigned long long)s->o.seed, (unsigned long long)off->records,
           s->c.consent_events, s->o.policies);
    printf("                                  policies off   policies on\n");
    printf("  triggers sent                   %12llu  %12llu\n", (unsigned long long)off->triggers,
           (unsigned long long)on->triggers);
    printf("  per user-week p50 / p99 / max   %4llu/%3llu/%3llu   %4llu/%3llu/%3llu\n",
           (unsigned long long)off->tpw_p50, (unsigned long long)off->tpw_p99,
           (unsigned long long)off->tpw_max, (unsigned long long)on->tpw_p50,
           (unsigned long long)on->tpw_p99, (unsigned long long)on->tpw_max);
    printf("  pushes in local quiet hours     %12llu  %12llu   (must be 0)\n",
           (unsigned long long)off->quiet_push, (unsigned long long)on->quiet_push);
    printf("    of bypassing classes          %12llu  %12llu   (allowed)\n",
           (unsigned long long)off->quiet_push_bypass, (unsigned long long)on->quiet_push_bypass);
    printf("  sends decided off their time                  %12llu   (must be 0)\n",
           (unsigned long long)on->sent_off_time);
    printf("  pushes without consent          %12llu  %12llu   (must be 0)\n",
           (unsigned long long)off->push_no_consent, (unsigned long long)on->push_no_consent);
    printf("  holdout users reached           %12llu  %12llu   (must be 0)\n",
           (unsigned long long)off->holdout_reached, (unsigned long long)on->holdout_reached);
    printf("  events/s (median of %d)          %12.0f  %12.0f   policy stage costs %.1f%%\n",
           s->o.runs, r_off, r_on, 100.0 * (1.0 - r_on / r_off));
}

/* ---- set-up -------------------------------------------------------------- */

static void parse(int argc, char **argv, opts *o)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--users") == 0)
            o->users = strtoull(v, NULL, 10);
        else if (strcmp(k, "--events-max") == 0)
            o->events_max = strtoull(v, NULL, 10);
        else if (strcmp(k, "--days") == 0)
            o->days = atoi(v);
        else if (strcmp(k, "--runs") == 0)
            o->runs = atoi(v);
        else if (strcmp(k, "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else if (strcmp(k, "--machines") == 0)
            o->machines = v;
        else if (strcmp(k, "--policies") == 0)
            o->policies = v;
        else if (strcmp(k, "--workdir") == 0)
            o->workdir = v;
        else {
            fprintf(stderr, "policy_sim: unknown option %s\n", k);
            exit(64);
        }
    }
    if (argc % 2 == 0 || o->users == 0 || o->users > 9999999 || o->days < 7 || o->runs < 1 ||
        o->runs > RUNS_MAX) {
        fprintf(stderr, "policy_sim: options are pairs; users 1-9999999, days >= 7, runs 1-%d\n",
                RUNS_MAX);
        exit(64);
    }
}

static void sim_open(sim *s)
{
    cue_err err = {0};
    cue_config_defaults(&s->cfg);
    s->end_ms = s->o.start_ms + s->o.days * DAY_MS;
    if (cue_machines_load(&s->ms, s->o.machines, NULL, &err) != 0) die(s->o.machines, err.msg);
    if (cue_policy_load(&s->p, s->o.policies, s->ms, &err) != 0) die(s->o.policies, err.msg);
    if (cue_policy_tz_new(&s->z, &err) != 0) die("time zones", err.msg);
    s->scratch = malloc(sizeof *s->scratch);
    s->users = malloc(s->o.users * sizeof *s->users);
    if (s->scratch == NULL || s->users == NULL) die("set-up", "out of memory");
    cue_user_init(s->scratch, "u", 1);
    for (size_t i = 0; i < s->o.users; i++)
        s->users[i] = (suser){.first_ms = INT64_MIN};
    snprintf(s->dir, sizeof s->dir, "%s/policy_sim-XXXXXX", s->o.workdir);
    if (mkdtemp(s->dir) == NULL) die(s->dir, "cannot create the temporary directory");
}

static void sim_close(sim *s)
{
    nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    cue_buf_deinit(&s->c.text);
    free(s->c.off);
    free(s->c.stream);
    free(s->users);
    free(s->scratch);
    cue_policy_tz_free(s->z);
    cue_policy_free(s->p);
    cue_machines_free(s->ms);
}

/* Both modes, `runs` rounds; the figures of the last round, and a failure
 * when a round's counts differ from the first's (the run is deterministic). */
static int rounds(sim *s, figures *off, figures *on, double *r_off, double *r_on)
{
    double rates[2][RUNS_MAX];
    uint64_t first[2] = {0, 0};
    int bad = 0;
    char path[1100];
    snprintf(path, sizeof path, "%s/decisions.jsonl", s->dir);
    for (int r = 0; r < s->o.runs; r++) {
        msgs triggers = {0}, sent_triggers = {0}, sent = {0};
        FILE *dec = fopen(path, "w+");
        if (dec == NULL) die(path, "cannot create");
        *off = (figures){0};
        *on = (figures){0};
        rates[0][r] = run_once(s, false, r, &triggers, NULL, off);
        rates[1][r] = run_once(s, true, r, &sent_triggers, dec, on);
        read_sent(s, dec, &sent);
        fclose(dec);
        fprintf(stderr, "policy_sim: round %d: off %.0f events/s, on %.0f events/s\n", r + 1,
                rates[0][r], rates[1][r]);
        if (r == 0) {
            first[0] = off->triggers;
            first[1] = on->triggers;
        }
        bad |= off->triggers != first[0] || on->triggers != first[1];
        if (sent.n != sent_triggers.n) {
            fprintf(stderr, "policy_sim: %zu sent decisions but %zu triggers written\n", sent.n,
                    sent_triggers.n);
            bad = 1;
        }
        if (r == s->o.runs - 1) {
            check(s, &triggers, off);
            check(s, &sent_triggers, on);
            check_times(&sent, &sent_triggers, on);
        }
        free(triggers.v);
        free(sent_triggers.v);
        free(sent.v);
    }
    if (bad) fprintf(stderr, "policy_sim: rounds disagree, or sends do not match decisions\n");
    *r_off = median(rates[0], s->o.runs);
    *r_on = median(rates[1], s->o.runs);
    return bad;
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    sim s = {.o = {.users = 10000,
                   .days = 28,
                   .runs = 3,
                   .seed = 42,
                   .start_ms = 1767603600000LL, /* 2026-01-05T09:00:00Z, a Monday */
                   .machines = CUE_SOURCE_DIR "/deploy/machines",
                   .policies = CUE_SOURCE_DIR "/deploy/policies.json",
                   .workdir = tmp && *tmp ? tmp : "/tmp"}};
    parse(argc, argv, &s.o);
    sim_open(&s);
    corpus_make(&s);
    if (s.c.changes_dropped) die("consent", "a user changed push consent more than 8 times");
    figures off, on;
    double r_off, r_on;
    int bad = rounds(&s, &off, &on, &r_off, &r_on);
    print_case(&s, "off", &off, r_off);
    print_case(&s, "on", &on, r_on);
    printf("bench=policy_sim case=cost events_per_s_off=%.0f events_per_s_on=%.0f ratio=%.3f\n",
           r_off, r_on, r_on / r_off);
    print_summary(&s, &off, &on, r_off, r_on);
    if (on.quiet_push || on.push_no_consent || on.holdout_reached || on.sent_off_time) {
        fprintf(stderr,
                "policy_sim: FAIL: with policies on, %llu pushes in quiet hours, %llu "
                "without consent, %llu holdout users reached, %llu sends decided at another "
                "time than they went out (all must be 0)\n",
                (unsigned long long)on.quiet_push, (unsigned long long)on.push_no_consent,
                (unsigned long long)on.holdout_reached, (unsigned long long)on.sent_off_time);
        bad = 1;
    }
    sim_close(&s);
    return bad;
}
