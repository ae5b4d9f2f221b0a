/* The report and the comparison as JSON: every figure the HTML page shows,
 * with its counts and intervals. */
#include "cuepoint/report.h"

#include "cuepoint/timefmt.h"

#include "report_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void report_put_num(cue_buf *b, double x)
{
    if (!isfinite(x)) {
        cue_buf_append_str(b, "null");
        return;
    }
    if (x == floor(x) && fabs(x) < 1e15) {
        cue_buf_printf(b, "%.0f", x);
        return;
    }
    cue_buf_printf(b, "%.6g", x);
}

void report_put_interval(cue_buf *b, cue_interval ci)
{
    cue_buf_append_char(b, '[');
    report_put_num(b, ci.lo);
    cue_buf_append_char(b, ',');
    report_put_num(b, ci.hi);
    cue_buf_append_char(b, ']');
}

void report_put_time(cue_buf *b, int64_t ms)
{
    char t[CUE_TIME_TEXT_MAX];
    cue_time_format_rfc3339(ms, t);
    cue_buf_printf(b, "\"%s\"", t);
}

static void key(cue_buf *b, const char *k)
{
    cue_buf_append_json_str(b, k, strlen(k));
    cue_buf_append_char(b, ':');
}

static void str(cue_buf *b, const char *s)
{
    cue_buf_append_json_str(b, s, strlen(s));
}

static void u64(cue_buf *b, const char *k, uint64_t v, bool comma)
{
    key(b, k);
    cue_buf_printf(b, "%llu%s", (unsigned long long)v, comma ? "," : "");
}

static void duration(cue_buf *b, const char *k, int64_t ms)
{
    char t[32];
    cue_duration_format(ms, t, sizeof t);
    key(b, k);
    str(b, t);
}

/* {"n":..,"k":..,"rate":..,"ci":[..]} */
static void rate(cue_buf *b, rcount c)
{
    cue_buf_printf(b, "{\"n\":%llu,\"k\":%llu,\"rate\":", (unsigned long long)c.n,
                   (unsigned long long)c.k);
    report_put_num(b, c.n ? (double)c.k / (double)c.n : NAN);
    cue_buf_append_str(b, ",\"ci\":");
    report_put_interval(b, c.n ? cue_stat_wilson(c.k, c.n, CUE_Z95) : (cue_interval){NAN, NAN});
    cue_buf_append_char(b, '}');
}

/* ---- the report ------------------------------------------------------------ */

static void put_history(const cue_report *r, cue_buf *b)
{
    key(b, "sources");
    cue_buf_append_str(b, "{\"events\":");
    str(b, r->src_events);
    cue_buf_append_str(b, ",\"decisions\":");
    str(b, r->src_decisions);
    cue_buf_append_str(b, ",\"triggers\":");
    str(b, r->src_triggers);
    cue_buf_append_str(b, "},\"history\":{\"from\":");
    if (r->min_ms == INT64_MAX)
        cue_buf_append_str(b, "null");
    else
        report_put_time(b, r->min_ms);
    cue_buf_append_str(b, ",\"to\":");
    report_put_time(b, r->end_ms);
    cue_buf_append_char(b, ',');
    u64(b, "events", r->events, true);
    u64(b, "bad_events", r->bad_events, true);
    u64(b, "decisions", r->decisions, true);
    u64(b, "bad_decisions", r->bad_decisions, true);
    u64(b, "triggers", r->triggers, true);
    u64(b, "bad_triggers", r->bad_triggers, true);
    u64(b, "after_end", r->late_records, true);
    u64(b, "users", r->n_users, true);
    u64(b, "signups", r->signups, true);
    u64(b, "bytes", cue_report_bytes(r), false);
    cue_buf_append_str(b, "},");
}

static void put_config(const cue_report *r, cue_buf *b)
{
    key(b, "config");
    cue_buf_append_str(b, "{\"signup_event\":");
    str(b, r->rc.signup_event);
    cue_buf_append_str(b, ",\"goals\":[");
    for (size_t g = 0; g < r->rc.n_goals; g++) {
        const cue_report_goal *x = &r->rc.goals[g];
        cue_buf_printf(b, "%s{\"name\":", g ? "," : "");
        str(b, x->name);
        cue_buf_printf(b, ",\"%s\":", x->is_event ? "event" : "trigger");
        str(b, x->source);
        cue_buf_printf(b, ",\"absent\":%s,\"from\":\"%s\",", x->absent ? "true" : "false",
                       x->from_exposure ? "exposure" : "signup");
        duration(b, "within", x->within_ms);
        cue_buf_append_char(b, '}');
    }
    cue_buf_append_str(b, "],\"onboarding_goal\":");
    if (r->rc.onboarding_goal >= 0)
        str(b, r->rc.goals[r->rc.onboarding_goal].name);
    else
        cue_buf_append_str(b, "null");
    cue_buf_append_str(b, ",\"opt_out\":{");
    duration(b, "window", r->rc.optout_window_ms);
    cue_buf_append_char(b, ',');
    duration(b, "after_onboarding", r->rc.optout_after_ms);
    cue_buf_printf(b, "},\"retention_weeks\":%d},", r->rc.retention_weeks);
}

static void put_breakdown_rates(const cue_report *r, cue_buf *b, const rmetric *m)
{
    cue_buf_append_str(b, "\"by\":{");
    for (size_t d = 0; d < by_dims(r); d++) {
        cue_buf_printf(b, "%s", d ? "," : "");
        key(b, report_dim_name(r, d));
        cue_buf_append_char(b, '[');
        bool first = true;
        for (size_t i = 0; i < by_values(r, d); i++) {
            size_t v = report_value_at(r, d, i);
            rcount c = m->by[report_by_index(r, d, v)];
            if (c.n == 0) continue;
            char name[96];
            report_value_name(r, d, v, name, sizeof name);
            cue_buf_printf(b, "%s{\"value\":", first ? "" : ",");
            str(b, name);
            cue_buf_append_str(b, ",\"rate\":");
            rate(b, c);
            cue_buf_append_char(b, '}');
            first = false;
        }
        cue_buf_append_char(b, ']');
    }
    cue_buf_append_char(b, '}');
}

static void put_rates(const cue_report *r, cue_buf *b)
{
    key(b, "rates");
    cue_buf_append_char(b, '[');
    for (size_t i = 0; i < r->n_metrics; i++) {
        const rmetric *m = &r->metrics[i];
        cue_buf_printf(b, "%s{\"name\":", i ? "," : "");
        str(b, m->name);
        cue_buf_append_str(b, ",\"what\":");
        str(b, m->what);
        cue_buf_append_str(b, ",\"all\":");
        rate(b, m->all);
        cue_buf_printf(b, ",\"undetermined\":%llu,", (unsigned long long)m->undetermined);
        put_breakdown_rates(r, b, m);
        cue_buf_append_char(b, '}');
    }
    cue_buf_append_str(b, "],");
}

static void put_attribution(const cue_report *r, cue_buf *b)
{
    key(b, "opt_out_attribution");
    cue_buf_append_char(b, '{');
    duration(b, "window", r->rc.optout_window_ms);
    cue_buf_append_char(b, ',');
    u64(b, "opt_out_events", r->optout_events, true);
    u64(b, "not_kept", r->optout_dropped, true);
    cue_buf_append_str(b, "\"triggers\":[");
    bool first = true;
    for (size_t i = 0; i < r->n_trigs; i++) {
        const rtrig *t = &r->trigs[i];
        if (t->sent == 0) continue;
        cue_interval ci = cue_stat_wilson(t->followed, t->sent, CUE_Z95);
        cue_buf_printf(b, "%s{\"journey\":", first ? "" : ",");
        str(b, t->machine);
        cue_buf_append_str(b, ",\"trigger\":");
        str(b, t->name);
        cue_buf_printf(b, ",\"sent\":%llu,\"followed\":%llu,\"per_thousand\":",
                       (unsigned long long)t->sent, (unsigned long long)t->followed);
        report_put_num(b, 1000.0 * (double)t->followed / (double)t->sent);
        cue_buf_append_str(b, ",\"ci\":");
        report_put_interval(b, (cue_interval){1000 * ci.lo, 1000 * ci.hi});
        cue_buf_append_char(b, '}');
        first = false;
    }
    cue_buf_append_str(b, "]},");
}

static rcount pooled(const rexp *x, size_t g)
{
    rcount c = {0, 0};
    for (size_t v = 0; v < x->n_variants; v++) {
        c.n += x->goal[g][1 + v].n;
        c.k += x->goal[g][1 + v].k;
    }
    return c;
}

static void lift(cue_buf *b, rcount t, rcount h)
{
    cue_buf_append_str(b, "{\"estimate\":");
    bool ok = t.n && h.n;
    double pt = ok ? (double)t.k / (double)t.n : NAN, ph = ok ? (double)h.k / (double)h.n : NAN;
    report_put_num(b, pt - ph);
    cue_buf_append_str(b, ",\"ci\":");
    report_put_interval(b,
                        ok ? cue_stat_diff(t.k, t.n, h.k, h.n, CUE_Z95) : (cue_interval){NAN, NAN});
    cue_buf_append_str(b, ",\"p\":");
    report_put_num(b, cue_stat_diff_p(t.k, t.n, h.k, h.n));
    cue_buf_append_str(b, ",\"relative\":");
    report_put_num(b, ok && ph > 0 ? (pt - ph) / ph : NAN);
    cue_buf_append_char(b, '}');
}

/* The sample-ratio check: holdout users against the others, against the
 * configured share (chi-square, one degree of freedom). */
static void put_srm(cue_buf *b, const rexp *x, uint64_t users)
{
    uint64_t obs[2] = {x->arm_users[0], users - x->arm_users[0]};
    cue_buf_printf(b, "\"sample_ratio\":{\"holdout_users\":%llu,\"users\":%llu,\"expected_share\":",
                   (unsigned long long)obs[0], (unsigned long long)users);
    report_put_num(b, x->holdout);
    cue_buf_append_str(b, ",\"observed_share\":");
    report_put_num(b, users ? (double)obs[0] / (double)users : NAN);
    double chi = NAN, p = NAN;
    if (x->holdout >= 0 && users) {
        double share[2] = {x->holdout, 1 - x->holdout};
        chi = cue_stat_chi2(obs, share, 2);
        p = cue_stat_chi2_p(chi, 1);
    }
    cue_buf_append_str(b, ",\"chi2\":");
    report_put_num(b, chi);
    cue_buf_append_str(b, ",\"p\":");
    report_put_num(b, p);
    /* 0.001, the usual threshold for a sample-ratio mismatch: an SRM check
     * runs on every experiment, every time, and must rarely cry wolf. */
    cue_buf_printf(b, ",\"mismatch\":%s}", isfinite(p) && p < 0.001 ? "true" : "false");
}

static void put_experiment_goal(const cue_report *r, cue_buf *b, const rexp *x, size_t g)
{
    const cue_report_goal *goal = &r->rc.goals[g];
    rcount h = x->goal[g][0], t = pooled(x, g);
    cue_buf_append_str(b, "{\"goal\":");
    str(b, goal->name);
    cue_buf_printf(b, ",\"from\":\"%s\",\"holdout\":", goal->from_exposure ? "exposure" : "signup");
    rate(b, h);
    cue_buf_append_str(b, ",\"treatment\":");
    rate(b, t);
    cue_buf_append_str(b, ",\"lift\":");
    lift(b, t, h);
    cue_buf_printf(b, ",\"undetermined\":%llu,\"variants\":[",
                   (unsigned long long)x->undetermined[g]);
    for (size_t v = 0; v < x->n_variants; v++) {
        cue_buf_printf(b, "%s{\"variant\":", v ? "," : "");
        str(b, x->variants[v]);
        cue_buf_append_str(b, ",\"rate\":");
        rate(b, x->goal[g][1 + v]);
        cue_buf_append_str(b, ",\"lift\":");
        lift(b, x->goal[g][1 + v], h);
        cue_buf_append_char(b, '}');
    }
    cue_buf_append_str(b, "]}");
}

static void put_experiments(const cue_report *r, cue_buf *b)
{
    key(b, "experiments");
    cue_buf_append_char(b, '[');
    for (size_t e = 0; e < r->n_exps; e++) {
        const rexp *x = &r->exps[e];
        uint64_t users = x->arm_users[0];
        for (size_t v = 0; v < x->n_variants; v++)
            users += x->arm_users[1 + v];
        cue_buf_printf(b, "%s{\"name\":", e ? "," : "");
        str(b, x->name);
        cue_buf_printf(b, ",\"records\":%llu,\"users\":%llu,\"conflicts\":%llu,\"arms\":[",
                       (unsigned long long)x->records, (unsigned long long)users,
                       (unsigned long long)x->conflicts);
        cue_buf_printf(b, "{\"arm\":null,\"users\":%llu}", (unsigned long long)x->arm_users[0]);
        for (size_t v = 0; v < x->n_variants; v++) {
            cue_buf_append_str(b, ",{\"arm\":");
            str(b, x->variants[v]);
            cue_buf_printf(b, ",\"users\":%llu}", (unsigned long long)x->arm_users[1 + v]);
        }
        cue_buf_append_str(b, "],");
        put_srm(b, x, users);
        cue_buf_append_str(b, ",\"goals\":[");
        for (size_t g = 0; g < r->rc.n_goals; g++) {
            if (g) cue_buf_append_char(b, ',');
            put_experiment_goal(r, b, x, g);
        }
        cue_buf_append_str(b, "]}");
    }
    cue_buf_append_str(b, "],");
}

/* {"messages":..,"mean":..,"p50":..,"p90":..,"p99":..,"max":..} of a distribution. */
static void put_dist(const cue_report *r, cue_buf *b, const rhist *h)
{
    uint64_t msgs = 0;
    unsigned max = 0;
    for (unsigned c = 1; c < 256; c++) {
        msgs += (uint64_t)c * h->n[c];
        if (h->n[c]) max = c;
    }
    cue_buf_printf(b, "{\"messages\":%llu,\"mean\":", (unsigned long long)msgs);
    report_put_num(b, report_mean(h, r->user_weeks));
    cue_buf_printf(b, ",\"p50\":%u,\"p90\":%u,\"p99\":%u,\"max\":%u%s}",
                   report_percentile(h, r->user_weeks, 0.50),
                   report_percentile(h, r->user_weeks, 0.90),
                   report_percentile(h, r->user_weeks, 0.99), max,
                   h->n[255] ? ",\"max_is_at_least\":true" : "");
}

static void put_dims(const cue_report *r, cue_buf *b, bool journey)
{
    cue_buf_append_char(b, '{');
    bool first = true;
    for (size_t d = 0; d < r->n_dims; d++) {
        if (r->dims[d].journey != journey) continue;
        cue_buf_printf(b, "%s", first ? "" : ",");
        key(b, r->dims[d].name);
        put_dist(r, b, &r->hist_dim[d]);
        first = false;
    }
    cue_buf_append_char(b, '}');
}

static void put_message_breakdowns(const cue_report *r, cue_buf *b)
{
    cue_buf_append_str(b, "\"by\":{");
    for (size_t d = 0; d < by_dims(r); d++) {
        cue_buf_printf(b, "%s", d ? "," : "");
        key(b, report_dim_name(r, d));
        cue_buf_append_char(b, '[');
        bool first = true;
        for (size_t i = 0; i < by_values(r, d); i++) {
            size_t v = report_value_at(r, d, i);
            rsum s = r->msg_by[report_by_index(r, d, v)];
            if (s.weeks == 0) continue;
            char name[96];
            report_value_name(r, d, v, name, sizeof name);
            cue_buf_printf(b, "%s{\"value\":", first ? "" : ",");
            str(b, name);
            cue_buf_printf(b, ",\"user_weeks\":%llu,\"messages\":%llu,\"mean\":",
                           (unsigned long long)s.weeks, (unsigned long long)s.messages);
            report_put_num(b, (double)s.messages / (double)s.weeks);
            cue_buf_append_char(b, '}');
            first = false;
        }
        cue_buf_append_char(b, ']');
    }
    cue_buf_append_char(b, '}');
}

static void put_messages(const cue_report *r, cue_buf *b)
{
    key(b, "messages");
    cue_buf_printf(b, "{\"source\":\"%s\",", r->decisions_given ? "decisions" : "triggers");
    u64(b, "user_weeks", r->user_weeks, true);
    u64(b, "out_of_order", r->out_of_order, true);
    key(b, "all");
    put_dist(r, b, &r->hist_all);
    cue_buf_append_str(b, ",\"histogram\":[");
    unsigned max = 0;
    for (unsigned c = 0; c < 256; c++)
        if (r->hist_all.n[c]) max = c;
    for (unsigned c = 0; c <= max; c++)
        cue_buf_printf(b, "%s%llu", c ? "," : "", (unsigned long long)r->hist_all.n[c]);
    cue_buf_append_str(b, "],\"by_class\":");
    put_dims(r, b, false);
    cue_buf_append_str(b, ",\"by_journey\":");
    put_dims(r, b, true);
    cue_buf_append_char(b, ',');
    put_message_breakdowns(r, b);
    cue_buf_append_str(b, "},");
}

static void put_outcomes(cue_buf *b, const uint64_t *outcome)
{
    cue_buf_append_char(b, '{');
    for (int o = 0; o < OUT_COUNT; o++)
        cue_buf_printf(b, "%s\"%s\":%llu", o ? "," : "", report_outcomes[o],
                       (unsigned long long)outcome[o]);
    cue_buf_append_char(b, '}');
}

static void put_reasons(cue_buf *b, const uint64_t *reason)
{
    cue_buf_append_char(b, '{');
    bool first = true;
    for (int k = 0; k < REASON_COUNT; k++) {
        if (!reason[k]) continue;
        cue_buf_printf(b, "%s\"%s\":%llu", first ? "" : ",", report_reasons[k],
                       (unsigned long long)reason[k]);
        first = false;
    }
    cue_buf_append_char(b, '}');
}

static void put_triggers(const cue_report *r, cue_buf *b)
{
    key(b, "triggers");
    cue_buf_append_char(b, '[');
    for (size_t i = 0; i < r->n_trigs; i++) {
        const rtrig *t = &r->trigs[i];
        cue_buf_printf(b, "%s{\"journey\":", i ? "," : "");
        str(b, t->machine);
        cue_buf_append_str(b, ",\"trigger\":");
        str(b, t->name);
        cue_buf_printf(b, ",\"records\":%llu,\"decisions\":", (unsigned long long)t->records);
        put_outcomes(b, t->outcome);
        cue_buf_append_str(b, ",\"not_sent_by_reason\":");
        put_reasons(b, t->reason);
        cue_buf_append_char(b, '}');
    }
    cue_buf_append_str(b, "],\"decisions\":");
    put_outcomes(b, r->outcome);
    b->len--; /* reopen the object */
    cue_buf_printf(b,
                   ",\"erasures\":%llu,\"not_sent_by_reason\":", (unsigned long long)r->erasures);
    put_reasons(b, r->reason);
    cue_buf_append_str(b, "},");
}

static void put_retention(const cue_report *r, cue_buf *b)
{
    key(b, "retention");
    cue_buf_printf(b, "{\"weeks\":%zu,\"by_cohort\":[", r->ret_weeks);
    bool first = true;
    for (size_t c = 0; c <= r->n_cohorts; c++) {
        const rcount *row = &r->ret[c * r->ret_weeks];
        if (row[0].n == 0 && c < r->n_cohorts) continue;
        char name[32];
        if (c == r->n_cohorts)
            snprintf(name, sizeof name, "all");
        else
            report_value_name(r, 0, c, name, sizeof name);
        cue_buf_printf(b, "%s{\"cohort\":", first ? "" : ",");
        str(b, name);
        cue_buf_append_str(b, ",\"weeks\":[");
        for (size_t k = 0; k < r->ret_weeks && row[k].n; k++) {
            cue_buf_printf(b, "%s{\"week\":%zu,\"rate\":", k ? "," : "", k);
            rate(b, row[k]);
            cue_buf_append_char(b, '}');
        }
        cue_buf_append_str(b, "]}");
        first = false;
    }
    cue_buf_append_str(b, "]}");
}

int cue_report_json(const cue_report *r, cue_buf *b)
{
    CUE_ASSERT(r->finished);
    cue_buf_reset(b);
    cue_buf_append_str(b, "{\"report_version\":1,");
    put_history(r, b);
    put_config(r, b);
    put_rates(r, b);
    put_attribution(r, b);
    put_experiments(r, b);
    put_messages(r, b);
    put_triggers(r, b);
    put_retention(r, b);
    cue_buf_append_str(b, "}\n");
    return cue_buf_reserve(b, 0);
}

/* ---- the comparison ------------------------------------------------------------ */

static const rtrig *trig_find(const cue_report *r, const char *machine, const char *name)
{
    for (size_t i = 0; i < r->n_trigs; i++)
        if (strcmp(r->trigs[i].machine, machine) == 0 && strcmp(r->trigs[i].name, name) == 0)
            return &r->trigs[i];
    return NULL;
}

static void cmp_trigger(cue_buf *b, const rtrig *ta, const rtrig *tb, const rtrig *any)
{
    static const rtrig none;
    if (ta == NULL) ta = &none;
    if (tb == NULL) tb = &none;
    cue_buf_append_str(b, "{\"journey\":");
    str(b, any->machine);
    cue_buf_append_str(b, ",\"trigger\":");
    str(b, any->name);
    cue_buf_printf(b, ",\"a\":%llu,\"b\":%llu,\"change\":%lld,\"a_decisions\":",
                   (unsigned long long)ta->records, (unsigned long long)tb->records,
                   (long long)tb->records - (long long)ta->records);
    put_outcomes(b, ta->outcome);
    cue_buf_append_str(b, ",\"b_decisions\":");
    put_outcomes(b, tb->outcome);
    cue_buf_append_str(b, ",\"a_not_sent_by_reason\":");
    put_reasons(b, ta->reason);
    cue_buf_append_str(b, ",\"b_not_sent_by_reason\":");
    put_reasons(b, tb->reason);
    cue_buf_append_char(b, '}');
}

static void cmp_triggers(const cue_report *a, const cue_report *b2, cue_buf *b)
{
    cue_buf_append_str(b, "\"triggers\":[");
    bool first = true;
    for (size_t i = 0; i < a->n_trigs; i++) {
        const rtrig *t = &a->trigs[i];
        cue_buf_printf(b, "%s", first ? "" : ",");
        cmp_trigger(b, t, trig_find(b2, t->machine, t->name), t);
        first = false;
    }
    for (size_t i = 0; i < b2->n_trigs; i++) {
        const rtrig *t = &b2->trigs[i];
        if (trig_find(a, t->machine, t->name)) continue;
        cue_buf_printf(b, "%s", first ? "" : ",");
        cmp_trigger(b, NULL, t, t);
        first = false;
    }
    cue_buf_append_str(b, "],");
}

static double dist_mean(const cue_report *r, const rhist *h)
{
    return report_mean(h, r->user_weeks);
}

static const rhist *dim_hist(const cue_report *r, const char *name, bool journey)
{
    static const rhist empty;
    for (size_t d = 0; d < r->n_dims; d++)
        if (r->dims[d].journey == journey && strcmp(r->dims[d].name, name) == 0)
            return &r->hist_dim[d];
    return &empty;
}

static bool dim_has(const cue_report *r, const char *name, bool journey)
{
    for (size_t d = 0; d < r->n_dims; d++)
        if (r->dims[d].journey == journey && strcmp(r->dims[d].name, name) == 0) return true;
    return false;
}

/* Each class (or journey) of either run: its distribution in both. */
static void cmp_dims(const cue_report *a, const cue_report *b2, cue_buf *b, bool journey)
{
    cue_buf_append_char(b, '[');
    bool first = true;
    for (int side = 0; side < 2; side++) {
        const cue_report *r = side ? b2 : a;
        for (size_t d = 0; d < r->n_dims; d++) {
            const char *name = r->dims[d].name;
            if (r->dims[d].journey != journey || (side && dim_has(a, name, journey))) continue;
            const rhist *ha = dim_hist(a, name, journey), *hb = dim_hist(b2, name, journey);
            cue_buf_printf(b, "%s{\"name\":", first ? "" : ",");
            str(b, name);
            cue_buf_append_str(b, ",\"a\":");
            put_dist(a, b, ha);
            cue_buf_append_str(b, ",\"b\":");
            put_dist(b2, b, hb);
            cue_buf_append_str(b, ",\"change_mean\":");
            report_put_num(b, dist_mean(b2, hb) - dist_mean(a, ha));
            cue_buf_append_char(b, '}');
            first = false;
        }
    }
    cue_buf_append_char(b, ']');
}

static void cmp_messages(const cue_report *a, const cue_report *b2, cue_buf *b)
{
    cue_buf_append_str(b, "\"messages\":{\"user_weeks\":");
    cue_buf_printf(b, "%llu,\"a\":", (unsigned long long)a->user_weeks);
    put_dist(a, b, &a->hist_all);
    cue_buf_append_str(b, ",\"b\":");
    put_dist(b2, b, &b2->hist_all);
    cue_buf_append_str(b, ",\"change_mean\":");
    report_put_num(b, dist_mean(b2, &b2->hist_all) - dist_mean(a, &a->hist_all));
    cue_buf_append_str(b, ",\"histogram\":{\"a\":[");
    for (int side = 0; side < 2; side++) {
        const rhist *h = side ? &b2->hist_all : &a->hist_all;
        unsigned max = 0;
        for (unsigned c = 0; c < 256; c++)
            if (a->hist_all.n[c] || b2->hist_all.n[c]) max = c;
        for (unsigned c = 0; c <= max; c++)
            cue_buf_printf(b, "%s%llu", c ? "," : "", (unsigned long long)h->n[c]);
        cue_buf_append_str(b, side ? "]}" : "],\"b\":[");
    }
    cue_buf_append_str(b, ",\"by_class\":");
    cmp_dims(a, b2, b, false);
    cue_buf_append_str(b, ",\"by_journey\":");
    cmp_dims(a, b2, b, true);
    cue_buf_append_str(b, "},");
}

static void cmp_groups(const cue_report *a, const cue_report *b2, cue_buf *b)
{
    cue_buf_append_str(b, "\"groups\":{");
    for (size_t d = 0; d < by_dims(a); d++) {
        cue_buf_printf(b, "%s", d ? "," : "");
        key(b, report_dim_name(a, d));
        cue_buf_append_char(b, '[');
        bool first = true;
        for (size_t i = 0; i < by_values(a, d); i++) {
            size_t v = report_value_at(a, d, i);
            rsum sa = a->msg_by[report_by_index(a, d, v)],
                 sb = b2->msg_by[report_by_index(b2, d, v)];
            if (sa.weeks == 0) continue;
            char name[96];
            report_value_name(a, d, v, name, sizeof name);
            double ma = (double)sa.messages / (double)sa.weeks,
                   mb = (double)sb.messages / (double)sb.weeks;
            cue_buf_printf(b, "%s{\"value\":", first ? "" : ",");
            str(b, name);
            cue_buf_printf(
                b, ",\"user_weeks\":%llu,\"a_messages\":%llu,\"b_messages\":%llu,\"a_mean\":",
                (unsigned long long)sa.weeks, (unsigned long long)sa.messages,
                (unsigned long long)sb.messages);
            report_put_num(b, ma);
            cue_buf_append_str(b, ",\"b_mean\":");
            report_put_num(b, mb);
            cue_buf_append_str(b, ",\"change_mean\":");
            report_put_num(b, mb - ma);
            cue_buf_append_char(b, '}');
            first = false;
        }
        cue_buf_append_char(b, ']');
    }
    cue_buf_append_str(b, "},");
}

static void cmp_rates(const cue_report *a, const cue_report *b2, cue_buf *b)
{
    cue_buf_append_str(b, "\"rates\":[");
    for (size_t i = 0; i < a->n_metrics; i++) {
        rcount ra = a->metrics[i].all, rb = b2->metrics[i].all;
        cue_buf_printf(b, "%s{\"name\":", i ? "," : "");
        str(b, a->metrics[i].name);
        cue_buf_append_str(b, ",\"a\":");
        rate(b, ra);
        cue_buf_append_str(b, ",\"b\":");
        rate(b, rb);
        cue_buf_append_str(b, ",\"change\":");
        report_put_num(b, (ra.n && rb.n) ? (double)rb.k / (double)rb.n - (double)ra.k / (double)ra.n
                                         : NAN);
        cue_buf_append_char(b, '}');
    }
    cue_buf_append_str(b, "],");
}

static void cmp_decisions(const cue_report *a, const cue_report *b2, cue_buf *b)
{
    cue_buf_append_str(b, "\"decisions\":{\"a\":");
    put_outcomes(b, a->outcome);
    cue_buf_append_str(b, ",\"b\":");
    put_outcomes(b, b2->outcome);
    cue_buf_append_str(b, "},\"not_sent_by_reason\":[");
    bool first = true;
    for (int k = 0; k < REASON_COUNT; k++) {
        if (!a->reason[k] && !b2->reason[k]) continue;
        cue_buf_printf(b, "%s{\"reason\":\"%s\",\"a\":%llu,\"b\":%llu,\"change\":%lld}",
                       first ? "" : ",", report_reasons[k], (unsigned long long)a->reason[k],
                       (unsigned long long)b2->reason[k],
                       (long long)b2->reason[k] - (long long)a->reason[k]);
        first = false;
    }
    cue_buf_append_str(b, "],");
}

int cue_report_compare_json(const cue_report *a, const cue_report *b2, const char *la,
                            const char *lb, cue_buf *b)
{
    CUE_ASSERT(a->finished && b2->finished);
    CUE_ASSERT(a->n_cohorts == b2->n_cohorts && a->user_weeks == b2->user_weeks);
    cue_buf_reset(b);
    cue_buf_append_str(b, "{\"report_version\":1,\"compare\":{\"a\":");
    str(b, la);
    cue_buf_append_str(b, ",\"b\":");
    str(b, lb);
    cue_buf_append_str(b, "},\"sources\":{\"events\":");
    str(b, a->src_events);
    cue_buf_append_str(b, ",\"a\":{\"decisions\":");
    str(b, a->src_decisions);
    cue_buf_append_str(b, ",\"triggers\":");
    str(b, a->src_triggers);
    cue_buf_append_str(b, "},\"b\":{\"decisions\":");
    str(b, b2->src_decisions);
    cue_buf_append_str(b, ",\"triggers\":");
    str(b, b2->src_triggers);
    cue_buf_append_str(b, "}},\"history\":{\"to\":");
    report_put_time(b, a->end_ms);
    cue_buf_printf(b, ",\"users\":%llu,\"signups\":%llu},", (unsigned long long)a->n_users,
                   (unsigned long long)a->signups);
    cmp_messages(a, b2, b);
    cmp_triggers(a, b2, b);
    cmp_decisions(a, b2, b);
    cmp_groups(a, b2, b);
    cmp_rates(a, b2, b);
    b->len--; /* the last comma */
    cue_buf_append_str(b, "}\n");
    return cue_buf_reserve(b, 0);
}
