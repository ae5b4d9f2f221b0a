/* The report's reading: users' aggregates from the events, the decisions and
 * the triggers, one record at a time. */
#include "cuepoint/report.h"

#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"

#include "report_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const report_outcomes[OUT_COUNT] = {"sent", "deferred", "suppressed", "cancelled"};
const char *const report_reasons[REASON_COUNT] = {"none",          "cap",
                                                  "cooldown",      "quiet_hours",
                                                  "no_consent",    "holdout",
                                                  "too_late",      "consent_withdrawn",
                                                  "deferred_full", "machine_changed",
                                                  "too_large",     "erased",
                                                  "other"};

/* Experiment slots a user has when the policy file is not given (the
 * experiments are then the first ones the decisions name). */
#define EXP_SLOTS_FOUND 4

/* Tokens of one decision or trigger record: a trigger's data holds at most
 * CUE_EMIT_FIELDS_MAX fields, whose values may be JSON of their own. */
#define RECORD_TOKENS_MAX CUE_EVENT_TOKENS_MAX

static int32_t to_min(int64_t ms)
{
    int64_t m = ms >= 0 ? ms / 60000 : -((-ms + 59999) / 60000);
    if (m <= INT32_MIN) return INT32_MIN + 1;
    return m > INT32_MAX ? INT32_MAX : (int32_t)m;
}

static void layout(cue_report *r)
{
    size_t g = r->rc.n_goals, e = r->n_exp_slots, a = r->rc.n_attrs;
    size_t off = sizeof(ruser);
    r->off_goal_first = off;
    off += 4 * g;
    r->off_goal_last = off;
    off += 4 * g;
    r->off_exposed = off;
    off += 4 * e;
    r->off_arm = off;
    off += e;
    r->off_attr = off;
    off += a;
    r->off_dim = off;
    off += CUE_REPORT_DIMS_MAX;
    r->stride = (off + 7) & ~(size_t)7;
}

static void experiments_from_config(cue_report *r)
{
    r->n_exps = r->rc.n_experiments;
    for (size_t i = 0; i < r->n_exps; i++) {
        snprintf(r->exps[i].name, sizeof r->exps[i].name, "%s", r->rc.experiments[i].name);
        r->exps[i].holdout = r->rc.experiments[i].holdout;
    }
    r->n_exp_slots = r->n_exps ? r->n_exps : EXP_SLOTS_FOUND;
}

int cue_report_new(cue_report **out, const cue_report_opts *o, cue_err *err)
{
    cue_report *r = calloc(1, sizeof *r);
    if (r == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    r->rc = *o->rc;
    r->cfg = *o->cfg;
    r->decisions_given = o->decisions;
    r->until_ms = o->until_ms;
    r->min_ms = INT64_MAX;
    r->max_ms = INT64_MIN;
    experiments_from_config(r);
    layout(r);
    r->trigs = calloc(CUE_REPORT_TRIGGERS_MAX, sizeof *r->trigs);
    r->trig_slot = calloc(2 * CUE_REPORT_TRIGGERS_MAX, sizeof *r->trig_slot);
    r->toks = malloc(RECORD_TOKENS_MAX * sizeof *r->toks);
    int rc =
        r->trigs && r->trig_slot && r->toks ? 0 : cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (rc == 0) rc = cue_event_decoder_new(&r->dec, &r->cfg, err);
    if (rc != 0) {
        cue_report_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int cue_report_fork(cue_report **out, const cue_report *base, cue_err *err)
{
    CUE_ASSERT(!base->finished);
    cue_report *r = malloc(sizeof *r);
    if (r == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    *r = *base;
    r->dec = NULL;
    r->users = malloc(base->cap_users * base->stride + 1);
    r->index = malloc(base->index_cap * sizeof *r->index + 1);
    r->trigs = malloc(CUE_REPORT_TRIGGERS_MAX * sizeof *r->trigs);
    r->trig_slot = malloc(2 * CUE_REPORT_TRIGGERS_MAX * sizeof *r->trig_slot);
    r->toks = malloc(RECORD_TOKENS_MAX * sizeof *r->toks);
    int rc =
        r->users && r->index && r->trigs && r->trig_slot && r->toks
            ? 0
            : cue_err_set(err, CUE_ENOMEM, "out of memory for a copy of %zu users", base->n_users);
    if (rc == 0) {
        memcpy(r->users, base->users, base->n_users * base->stride);
        memcpy(r->index, base->index, base->index_cap * sizeof *r->index);
        memcpy(r->trigs, base->trigs, CUE_REPORT_TRIGGERS_MAX * sizeof *r->trigs);
        memcpy(r->trig_slot, base->trig_slot, 2 * CUE_REPORT_TRIGGERS_MAX * sizeof *r->trig_slot);
        rc = cue_event_decoder_new(&r->dec, &r->cfg, err);
    }
    if (rc != 0) {
        cue_report_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void cue_report_free(cue_report *r)
{
    if (r == NULL) return;
    cue_event_decoder_free(r->dec);
    free(r->users);
    free(r->index);
    free(r->trigs);
    free(r->trig_slot);
    free(r->toks);
    for (size_t m = 0; m < r->n_metrics; m++)
        free(r->metrics[m].by);
    free(r->ret);
    free(r->msg_by);
    free(r);
}

size_t cue_report_users(const cue_report *r)
{
    return r->n_users;
}

size_t cue_report_bytes(const cue_report *r)
{
    size_t n = sizeof *r + r->cap_users * r->stride + r->index_cap * sizeof *r->index +
               CUE_REPORT_TRIGGERS_MAX * (sizeof *r->trigs + 2 * sizeof *r->trig_slot) +
               RECORD_TOKENS_MAX * sizeof *r->toks;
    if (r->finished)
        n += r->n_metrics * report_by_len(r) * sizeof(rcount) + report_by_len(r) * sizeof(rsum) +
             (r->n_cohorts + 1) * r->ret_weeks * sizeof(rcount);
    return n;
}

void cue_report_set_sources(cue_report *r, const char *events, const char *decisions,
                            const char *triggers)
{
    snprintf(r->src_events, sizeof r->src_events, "%s", events ? events : "");
    snprintf(r->src_decisions, sizeof r->src_decisions, "%s", decisions ? decisions : "");
    snprintf(r->src_triggers, sizeof r->src_triggers, "%s", triggers ? triggers : "");
}

/* ---- users ----------------------------------------------------------------- */

static uint64_t user_key(const char *id, size_t len)
{
    uint64_t k = cue_hash64(id, len, 0x7265706f7274ULL); /* "report" */
    return k ? k : 1;
}

static int index_grow(cue_report *r)
{
    size_t cap = r->index_cap ? r->index_cap * 2 : 1024;
    uint32_t *ix = calloc(cap, sizeof *ix);
    if (ix == NULL) return CUE_ENOMEM;
    for (size_t i = 0; i < r->n_users; i++) {
        size_t s = user_at(r, i)->key & (cap - 1);
        while (ix[s])
            s = (s + 1) & (cap - 1);
        ix[s] = (uint32_t)(i + 1);
    }
    free(r->index);
    r->index = ix;
    r->index_cap = cap;
    return 0;
}

static ruser *user_new(cue_report *r, uint64_t key, size_t slot)
{
    if (r->n_users == r->cap_users) {
        size_t cap = r->cap_users ? r->cap_users * 2 : 1024;
        uint8_t *u = realloc(r->users, cap * r->stride);
        if (u == NULL) return NULL;
        r->users = u;
        r->cap_users = cap;
    }
    ruser *u = user_at(r, r->n_users);
    memset(u, 0, r->stride);
    u->key = key;
    u->signup = u->first = NO_MIN;
    u->optout[0] = u->optout[1] = NO_MS;
    for (size_t g = 0; g < r->rc.n_goals; g++)
        goal_first(r, u)[g] = goal_last(r, u)[g] = NO_MIN;
    for (size_t e = 0; e < r->n_exp_slots; e++)
        exposed(r, u)[e] = NO_MIN;
    r->index[slot] = (uint32_t)(++r->n_users);
    return u;
}

/* The user's aggregate, made when new; NULL when memory runs out. */
static ruser *user_get(cue_report *r, const char *id, size_t len)
{
    if (2 * (r->n_users + 1) > r->index_cap && index_grow(r) != 0) return NULL;
    if (r->n_users >= UINT32_MAX - 1) return NULL;
    uint64_t key = user_key(id, len);
    size_t s = key & (r->index_cap - 1);
    for (; r->index[s]; s = (s + 1) & (r->index_cap - 1)) {
        ruser *u = user_at(r, r->index[s] - 1);
        if (u->key == key) return u;
    }
    return user_new(r, key, s);
}

static void seen_time(cue_report *r, int64_t ms)
{
    if (ms < r->min_ms) r->min_ms = ms;
    if (ms > r->max_ms) r->max_ms = ms;
}

static void goal_seen(cue_report *r, ruser *u, size_t g, int32_t t)
{
    int32_t *f = &goal_first(r, u)[g], *l = &goal_last(r, u)[g];
    if (*f == NO_MIN || t < *f) *f = t;
    if (*l == NO_MIN || t > *l) *l = t;
}

/* ---- events ---------------------------------------------------------------- */

static uint8_t attr_value(cue_report *r, size_t a, const cue_value *v)
{
    char text[CUE_ATTR_BYTES_MAX];
    size_t n;
    if (v->type == CUE_VAL_STRING && v->len > 0 && v->len < sizeof text) {
        memcpy(text, v->s, v->len);
        n = v->len;
    } else if (v->type == CUE_VAL_INT) {
        n = (size_t)snprintf(text, sizeof text, "%lld", (long long)v->i);
    } else if (v->type == CUE_VAL_BOOL) {
        n = (size_t)snprintf(text, sizeof text, "%s", v->b ? "true" : "false");
    } else {
        return VAL_NONE;
    }
    text[n] = '\0';
    for (size_t i = 1; i <= r->n_vals[a]; i++)
        if (strcmp(r->vals[a][i], text) == 0) return (uint8_t)i;
    if (r->n_vals[a] + 1 >= VAL_OTHER) return VAL_OTHER;
    size_t i = ++r->n_vals[a];
    memcpy(r->vals[a][i], text, n + 1);
    return (uint8_t)i;
}

static void opt_out_seen(cue_report *r, ruser *u, int64_t t)
{
    r->optout_events++;
    if (u->optout[0] == t || u->optout[1] == t) return; /* the same event again */
    if (u->optout[0] == NO_MS) {
        u->optout[0] = t;
        return;
    }
    /* Keep the first two: a later one, or the second's place taken, is lost. */
    if (u->optout[1] != NO_MS && t > u->optout[1]) {
        r->optout_dropped++;
        return;
    }
    if (u->optout[1] != NO_MS) r->optout_dropped++;
    u->optout[1] = t;
    if (u->optout[1] < u->optout[0]) {
        int64_t x = u->optout[0];
        u->optout[0] = u->optout[1];
        u->optout[1] = x;
    }
}

static bool type_is(const cue_event *ev, const char *name)
{
    size_t n = strlen(name);
    return ev->type_len == n && memcmp(ev->type, name, n) == 0;
}

static void event_facts(cue_report *r, ruser *u, const cue_event *ev, int32_t t)
{
    for (size_t a = 0; a < r->rc.n_attrs; a++) {
        if (attrs(r, u)[a] != VAL_NONE) continue; /* the first value a user gives */
        cue_value v = cue_event_value(ev, &r->rc.attr_ptr[a]);
        attrs(r, u)[a] = attr_value(r, a, &v);
    }
    for (size_t g = 0; g < r->rc.n_goals; g++)
        if (r->rc.goals[g].is_event && type_is(ev, r->rc.goals[g].source)) goal_seen(r, u, g, t);
    for (size_t k = 0; k < r->rc.n_optouts; k++) {
        const cue_report_optout *o = &r->rc.optouts[k];
        if (!type_is(ev, o->type)) continue;
        cue_value v = cue_event_value(ev, &o->ptr);
        if (v.type == CUE_VAL_BOOL && v.b == o->equals) opt_out_seen(r, u, ev->ts_ms);
    }
}

int cue_report_event(cue_report *r, const char *rec, size_t len)
{
    cue_event ev;
    cue_reason why;
    if (cue_event_decode(r->dec, rec, len, &ev, &why, NULL) != 0) {
        r->bad_events++;
        return CUE_EPARSE;
    }
    r->events++;
    if (r->until_ms != INT64_MIN && ev.ts_ms > r->until_ms) {
        r->late_records++; /* after the history's end */
        return 0;
    }
    seen_time(r, ev.ts_ms);
    ruser *u = user_get(r, ev.user_id, ev.user_id_len);
    if (u == NULL) return CUE_ENOMEM;
    int32_t t = to_min(ev.ts_ms);
    if (u->first == NO_MIN || t < u->first) u->first = t;
    if (type_is(&ev, r->rc.signup_event) && (u->signup == NO_MIN || t < u->signup)) u->signup = t;
    if (u->signup != NO_MIN && t >= u->signup) {
        int32_t w = (t - u->signup) / WEEK_MIN;
        if (w < CUE_REPORT_WEEKS_MAX) u->active |= 1ull << w;
    }
    event_facts(r, u, &ev, t);
    return 0;
}

/* ---- names ----------------------------------------------------------------- */

/* A string member of object token `obj` into `out`; false when absent, not a
 * string or too long. */
static bool member_str(const cue_json_doc *d, uint32_t obj, const char *key, char *out, size_t cap)
{
    int32_t t = cue_json_member(d, obj, key, strlen(key));
    size_t n;
    return t >= 0 && cue_json_string(d, (uint32_t)t, out, cap, &n) == 0;
}

static bool member_time(const cue_json_doc *d, uint32_t obj, const char *key, int64_t *ms)
{
    int32_t t = cue_json_member(d, obj, key, strlen(key));
    if (t < 0) return false;
    const cue_json_tok *k = &d->toks[t];
    if (k->type != CUE_JSON_STRING || k->escaped) return false;
    return cue_time_parse_rfc3339(d->src + k->start, k->len, ms) == 0;
}

static bool goal_names_trigger(const cue_report_goal *g, const char *machine, const char *name)
{
    if (g->is_event) return false;
    if (strcmp(g->source, name) == 0) return true;
    size_t m = strlen(machine);
    return strncmp(g->source, machine, m) == 0 && g->source[m] == '.' &&
           strcmp(g->source + m + 1, name) == 0;
}

/* The trigger entry of (machine, name), made when new; NULL when the table
 * is full. */
static rtrig *trig_get(cue_report *r, const char *machine, const char *name)
{
    char key[2 * CUE_NAME_BYTES_MAX + 2];
    int n = snprintf(key, sizeof key, "%s%c%s", machine, 0, name);
    uint64_t h = cue_hash64(key, (size_t)n, 0);
    size_t cap = 2 * CUE_REPORT_TRIGGERS_MAX, s = h & (cap - 1);
    for (; r->trig_slot[s]; s = (s + 1) & (cap - 1)) {
        rtrig *t = &r->trigs[r->trig_slot[s] - 1];
        if (t->hash == h && strcmp(t->machine, machine) == 0 && strcmp(t->name, name) == 0)
            return t;
    }
    if (r->n_trigs == CUE_REPORT_TRIGGERS_MAX) return NULL;
    rtrig *t = &r->trigs[r->n_trigs++];
    memset(t, 0, sizeof *t);
    snprintf(t->machine, sizeof t->machine, "%s", machine);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->hash = h;
    for (size_t g = 0; g < r->rc.n_goals; g++)
        if (goal_names_trigger(&r->rc.goals[g], machine, name)) t->goals |= 1u << g;
    r->trig_slot[s] = (uint16_t)r->n_trigs;
    return t;
}

static size_t dim_get(cue_report *r, const char *name, bool journey)
{
    for (size_t d = 0; d < r->n_dims; d++)
        if (r->dims[d].journey == journey && strcmp(r->dims[d].name, name) == 0) return d;
    if (r->n_dims == CUE_REPORT_DIMS_MAX - 1) {
        /* The last one gathers the rest. */
        r->n_dims++;
        snprintf(r->dims[CUE_REPORT_DIMS_MAX - 1].name, CUE_NAME_BYTES_MAX, "(other)");
    }
    if (r->n_dims == CUE_REPORT_DIMS_MAX) return CUE_REPORT_DIMS_MAX - 1;
    rdim *d = &r->dims[r->n_dims];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->journey = journey;
    return r->n_dims++;
}

static int exp_get(cue_report *r, const char *name)
{
    for (size_t e = 0; e < r->n_exps; e++)
        if (strcmp(r->exps[e].name, name) == 0) return (int)e;
    if (r->rc.n_experiments || r->n_exps == r->n_exp_slots) return -1;
    rexp *x = &r->exps[r->n_exps];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->holdout = -1;
    return (int)r->n_exps++;
}

static uint8_t variant_get(rexp *x, const char *name)
{
    for (size_t v = 0; v < x->n_variants; v++)
        if (strcmp(x->variants[v], name) == 0) return (uint8_t)(2 + v);
    if (x->n_variants == CUE_REPORT_VARIANTS_MAX) return ARM_NONE;
    snprintf(x->variants[x->n_variants], CUE_NAME_BYTES_MAX, "%s", name);
    return (uint8_t)(2 + x->n_variants++);
}

/* ---- messages ---------------------------------------------------------------- */

/* Closes the user's counted week: its counts go to the distributions. */
void report_week_close(cue_report *r, ruser *u)
{
    if (u->week_all) {
        r->hist_all.n[u->week_all]++;
        r->hist_all.nonzero++;
        u->messages += u->week_all;
        u->week_all = 0;
    }
    uint8_t *wd = week_dims(r, u);
    for (size_t d = 0; d < CUE_REPORT_DIMS_MAX; d++) {
        if (!wd[d]) continue;
        r->hist_dim[d].n[wd[d]]++;
        r->hist_dim[d].nonzero++;
        wd[d] = 0;
    }
}

static void message(cue_report *r, ruser *u, rtrig *t, int64_t at_ms, const char *cls)
{
    int32_t at = to_min(at_ms);
    if (u->first == NO_MIN) u->first = at; /* a user the events never named */
    int32_t anchor = u->signup != NO_MIN ? u->signup : u->first;
    int32_t w = at > anchor ? (at - anchor) / WEEK_MIN : 0;
    if (w > UINT16_MAX) w = UINT16_MAX;
    if (w > u->week) {
        report_week_close(r, u);
        u->week = (uint16_t)w;
    } else if (w < u->week) {
        r->out_of_order++;
    }
    if (u->week_all < UINT8_MAX) u->week_all++;
    uint8_t *wd = week_dims(r, u);
    size_t dc = dim_get(r, cls[0] ? cls : "(none)", false), dj = dim_get(r, t->machine, true);
    if (wd[dc] < UINT8_MAX) wd[dc]++;
    if (wd[dj] < UINT8_MAX) wd[dj]++;
    /* Opt-out attribution: a withdrawal or mute in the window after it.
     * Strictly after: a message the opt-out event itself caused (a
     * user_reactivated) has its time and does not precede it. */
    t->sent++;
    for (int k = 0; k < 2; k++)
        if (u->optout[k] != NO_MS && u->optout[k] > at_ms &&
            u->optout[k] - at_ms <= r->rc.optout_window_ms) {
            t->followed++;
            break;
        }
}

/* ---- decisions ----------------------------------------------------------------- */

static int outcome_of(const char *s)
{
    for (int o = 0; o < OUT_COUNT; o++)
        if (strcmp(s, report_outcomes[o]) == 0) return o;
    return -1;
}

static int reason_of(const char *s)
{
    for (int k = 0; k < REASON_COUNT - 1; k++)
        if (strcmp(s, report_reasons[k]) == 0) return k;
    return REASON_COUNT - 1;
}

/* The experiment and arm a decision names, onto the user. */
static void decision_experiment(cue_report *r, const cue_json_doc *d, ruser *u, rtrig *t,
                                int64_t decided_ms)
{
    char name[CUE_NAME_BYTES_MAX], variant[CUE_NAME_BYTES_MAX];
    if (!member_str(d, 0, "experiment", name, sizeof name)) return;
    int e = exp_get(r, name);
    if (e < 0) {
        r->unknown_experiment++;
        return;
    }
    rexp *x = &r->exps[e];
    x->records++;
    uint8_t a = member_str(d, 0, "variant", variant, sizeof variant) ? variant_get(x, variant)
                                                                     : ARM_HOLDOUT;
    if (a == ARM_NONE) return;
    uint8_t *ua = &arm(r, u)[e];
    if (*ua != ARM_NONE && *ua != a) {
        x->conflicts++; /* assignment is by user: it cannot change */
        return;
    }
    *ua = a;
    int32_t at = to_min(decided_ms), *ex = &exposed(r, u)[e];
    if (*ex == NO_MIN || at < *ex) *ex = at;
}

static int decision_read(cue_report *r, const char *rec, size_t len)
{
    cue_json_doc d;
    if (cue_json_parse(&d, rec, len, r->toks, RECORD_TOKENS_MAX, NULL) != 0 ||
        d.toks[0].type != CUE_JSON_OBJECT)
        return CUE_EPARSE;
    char outcome[32], reason[32], user[CUE_USER_ID_BYTES_MAX + 1];
    char machine[CUE_NAME_BYTES_MAX], name[CUE_NAME_BYTES_MAX], cls[CUE_NAME_BYTES_MAX] = "";
    int64_t decided = 0, when = 0;
    if (!member_str(&d, 0, "outcome", outcome, sizeof outcome) ||
        !member_time(&d, 0, "decided_at", &decided))
        return CUE_EPARSE;
    if (strcmp(outcome, "erased") == 0) { /* an erasure, without the user */
        r->erasures++;
        return 0;
    }
    int o = outcome_of(outcome);
    if (o < 0 || !member_str(&d, 0, "reason", reason, sizeof reason)) return CUE_EPARSE;
    int k = reason_of(reason);
    if (r->until_ms != INT64_MIN && decided > r->until_ms) {
        r->late_records++;
        return 0;
    }
    r->outcome[o]++;
    if (o == OUT_SUPPRESSED || o == OUT_CANCELLED) r->reason[k]++;
    seen_time(r, decided);
    size_t ulen;
    int32_t ut = cue_json_member(&d, 0, "user_id", 7);
    if (ut < 0) return 0; /* an erased user's cancellation */
    if (cue_json_string(&d, (uint32_t)ut, user, sizeof user, &ulen) != 0 ||
        !member_str(&d, 0, "machine", machine, sizeof machine) ||
        !member_str(&d, 0, "trigger", name, sizeof name) ||
        !member_time(&d, 0, "trigger_time", &when))
        return CUE_EPARSE;
    member_str(&d, 0, "class", cls, sizeof cls);
    ruser *u = user_get(r, user, ulen);
    rtrig *t = trig_get(r, machine, name);
    if (u == NULL) return CUE_ENOMEM;
    if (t == NULL) return CUE_ELIMIT;
    t->outcome[o]++;
    if (o == OUT_SUPPRESSED || o == OUT_CANCELLED) t->reason[k]++;
    for (size_t g = 0; g < r->rc.n_goals; g++)
        if (t->goals & (1u << g)) goal_seen(r, u, g, to_min(when));
    decision_experiment(r, &d, u, t, decided);
    if (o == OUT_SENT) message(r, u, t, decided, cls);
    return 0;
}

int cue_report_decision(cue_report *r, const char *rec, size_t len)
{
    int rc = decision_read(r, rec, len);
    if (rc == 0)
        r->decisions++;
    else
        r->bad_decisions++;
    return rc;
}

/* ---- triggers -------------------------------------------------------------------- */

static int trigger_read(cue_report *r, const char *rec, size_t len)
{
    cue_json_doc d;
    if (cue_json_parse(&d, rec, len, r->toks, RECORD_TOKENS_MAX, NULL) != 0 ||
        d.toks[0].type != CUE_JSON_OBJECT)
        return CUE_EPARSE;
    char user[CUE_USER_ID_BYTES_MAX + 1], machine[CUE_NAME_BYTES_MAX], name[CUE_NAME_BYTES_MAX];
    char cls[CUE_NAME_BYTES_MAX] = "";
    int64_t when;
    size_t ulen;
    int32_t ut = cue_json_member(&d, 0, "subject", 7), data = cue_json_member(&d, 0, "data", 4);
    if (ut < 0 || data < 0 || cue_json_string(&d, (uint32_t)ut, user, sizeof user, &ulen) != 0 ||
        !member_str(&d, 0, "type", name, sizeof name) || !member_time(&d, 0, "time", &when) ||
        !member_str(&d, (uint32_t)data, "machine", machine, sizeof machine))
        return CUE_EPARSE;
    int32_t pol = cue_json_member(&d, (uint32_t)data, "policy", 6);
    if (pol >= 0) member_str(&d, (uint32_t)pol, "class", cls, sizeof cls);
    if (r->until_ms != INT64_MIN && when > r->until_ms) {
        r->late_records++;
        return 0;
    }
    seen_time(r, when);
    rtrig *t = trig_get(r, machine, name);
    if (t == NULL) return CUE_ELIMIT;
    t->records++;
    if (r->decisions_given) return 0; /* the decisions said the rest */
    ruser *u = user_get(r, user, ulen);
    if (u == NULL) return CUE_ENOMEM;
    for (size_t g = 0; g < r->rc.n_goals; g++)
        if (t->goals & (1u << g)) goal_seen(r, u, g, to_min(when));
    message(r, u, t, when, cls);
    return 0;
}

int cue_report_trigger(cue_report *r, const char *rec, size_t len)
{
    int rc = trigger_read(r, rec, len);
    if (rc == 0)
        r->triggers++;
    else
        r->bad_triggers++;
    return rc;
}
