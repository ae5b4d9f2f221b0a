/* The report: its statistics against published values, and its tables from
 * small histories made by hand, read back from its JSON. */
#include "cuepoint/report.h"

#include "cuepoint/buf.h"
#include "cuepoint/config.h"
#include "cuepoint/timefmt.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS  86400000LL
#define HOUR_MS 3600000LL
/* 2026-01-05T00:00:00Z, a Monday. */
#define T0 1767571200000LL

static void near(double got, double want, double tol, const char *what)
{
    cr_assert(fabs(got - want) <= tol, "%s: %.6f, expected %.6f", what, got, want);
}

/* ---- statistics ------------------------------------------------------------ */

Test(report_stats, wilson_matches_newcombe)
{
    /* Newcombe (1998), "Two-sided confidence intervals for the single
     * proportion", method 3: 81/263 gives 0.2553 to 0.3662. */
    cue_interval ci = cue_stat_wilson(81, 263, CUE_Z95);
    near(ci.lo, 0.2553, 5e-5, "81/263 lower");
    near(ci.hi, 0.3662, 5e-5, "81/263 upper");
    ci = cue_stat_wilson(0, 10, CUE_Z95);
    cr_assert_eq(ci.lo, 0.0);
    near(ci.hi, 0.2775, 5e-5, "0/10 upper");
    ci = cue_stat_wilson(10, 10, CUE_Z95);
    cr_assert_eq(ci.hi, 1.0, "10/10 reaches 1 exactly");
    near(ci.lo, 0.7225, 5e-5, "10/10 lower");
    ci = cue_stat_wilson(0, 0, CUE_Z95);
    cr_assert(ci.lo == 0 && ci.hi == 1, "nothing known: [0, 1]");
}

Test(report_stats, difference_matches_newcombe)
{
    /* Newcombe (1998), "Interval estimation for the difference between
     * independent proportions", method 10: 56/70 - 48/80 = 0.2000, 95%
     * interval 0.0524 to 0.3339. */
    cue_interval ci = cue_stat_diff(56, 70, 48, 80, CUE_Z95);
    near(ci.lo, 0.0524, 5e-5, "lower");
    near(ci.hi, 0.3339, 5e-5, "upper");
    /* Swapped arms mirror the interval. */
    cue_interval m = cue_stat_diff(48, 80, 56, 70, CUE_Z95);
    near(m.lo, -ci.hi, 1e-12, "mirrored lower");
    near(m.hi, -ci.lo, 1e-12, "mirrored upper");
    /* Equal rates: 0 inside, p = 1. */
    ci = cue_stat_diff(20, 100, 20, 100, CUE_Z95);
    cr_assert(ci.lo < 0 && ci.hi > 0);
    near(cue_stat_diff_p(20, 100, 20, 100), 1.0, 1e-12, "p of equal rates");
    /* 30/100 against 20/100: z = 1.633, two-sided p = 0.1025. */
    near(cue_stat_diff_p(30, 100, 20, 100), 0.1025, 5e-4, "z-test p");
}

Test(report_stats, chi_square)
{
    uint64_t obs[2] = {90, 910};
    double share[2] = {0.1, 0.9};
    /* (90-100)^2/100 + (910-900)^2/900 */
    near(cue_stat_chi2(obs, share, 2), 1.0 + 100.0 / 900.0, 1e-12, "statistic");
    /* The 95% critical values: 3.841 (df 1), 5.991 (df 2), 7.815 (df 3). */
    near(cue_stat_chi2_p(3.841459, 1), 0.05, 1e-6, "df 1");
    near(cue_stat_chi2_p(5.991465, 2), 0.05, 1e-6, "df 2");
    near(cue_stat_chi2_p(7.814728, 3), 0.05, 1e-3, "df 3 (Wilson-Hilferty)");
    near(cue_stat_chi2_p(0, 1), 1.0, 0, "no deviation");
    uint64_t bad[2] = {3, 0};
    double none[2] = {0, 1};
    cr_assert(isinf(cue_stat_chi2(bad, none, 2)), "users in an arm that should be empty");
    cr_assert_eq(cue_stat_chi2_p(INFINITY, 1), 0.0);
}

/* ---- histories by hand ------------------------------------------------------ */

typedef struct hist {
    cue_buf events, decisions, triggers;
} hist;

static void hist_init(hist *h)
{
    cue_buf_init(&h->events, 4096);
    cue_buf_init(&h->decisions, 4096);
    cue_buf_init(&h->triggers, 4096);
}

static void hist_deinit(hist *h)
{
    cue_buf_deinit(&h->events);
    cue_buf_deinit(&h->decisions);
    cue_buf_deinit(&h->triggers);
}

static void iso(int64_t ms, char out[CUE_TIME_TEXT_MAX])
{
    cue_time_format_rfc3339(ms, out);
}

static void ev(hist *h, const char *user, const char *type, int64_t ms, const char *extra)
{
    cue_buf_printf(&h->events, "{\"user_id\":\"%s\",\"type\":\"%s\",\"ts\":%lld%s%s}\n", user, type,
                   (long long)ms, extra ? "," : "", extra ? extra : "");
}

static void signup(hist *h, const char *user, int64_t ms, const char *mode)
{
    char extra[128];
    snprintf(extra, sizeof extra, "\"user\":{\"role\":\"designer\",\"work_mode\":\"%s\"}", mode);
    ev(h, user, "signed_up", ms, extra);
}

/* A decision record; `variant` NULL is the holdout, "" no experiment. */
static void dec(hist *h, const char *user, const char *machine, const char *trigger,
                const char *outcome, const char *reason, int64_t ms, const char *variant)
{
    char t[CUE_TIME_TEXT_MAX];
    iso(ms, t);
    cue_buf_printf(&h->decisions,
                   "{\"trigger_id\":\"00000000000000000000000000000000\",\"user_id\":\"%s\","
                   "\"machine\":\"%s\",\"trigger\":\"%s\",\"outcome\":\"%s\",\"reason\":\"%s\","
                   "\"rule\":\"\",\"channel\":null,\"class\":\"lifecycle\",\"trigger_time\":"
                   "\"%s\",\"decided_at\":\"%s\",\"until\":null",
                   user, machine, trigger, outcome, reason, t, t);
    if (variant == NULL)
        cue_buf_append_str(&h->decisions, ",\"experiment\":\"exp\",\"variant\":null");
    else if (variant[0])
        cue_buf_printf(&h->decisions, ",\"experiment\":\"exp\",\"variant\":\"%s\"", variant);
    cue_buf_append_str(&h->decisions, "}\n");
}

static void trig(hist *h, const char *user, const char *machine, const char *name, int64_t ms)
{
    char t[CUE_TIME_TEXT_MAX];
    iso(ms, t);
    cue_buf_printf(&h->triggers,
                   "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"cuepoint/a/%s\",\"type\":"
                   "\"%s\",\"subject\":\"%s\",\"time\":\"%s\",\"datacontenttype\":"
                   "\"application/json\",\"data\":{\"machine\":\"%s\",\"version\":1,"
                   "\"instance_key\":null,\"from_state\":\"a\",\"to_state\":\"b\",\"cause\":"
                   "{\"event\":\"e\"}}}\n",
                   machine, name, user, t, machine);
}

static void feed(cue_report *r, cue_buf *b, int (*fn)(cue_report *, const char *, size_t))
{
    char *p = b->data, *end = b->data + b->len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        fn(r, p, (size_t)(nl - p));
        p = nl + 1;
    }
}

/* Runs the report over the history and returns its JSON, parsed. */
static json_t *report_of(hist *h, const cue_report_config *rc, bool decisions, int64_t until)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_report *r;
    cue_err err = {0};
    cue_report_opts o = {.rc = rc, .cfg = &cfg, .decisions = decisions, .until_ms = until};
    cr_assert_eq(cue_report_new(&r, &o, &err), 0, "%s", err.msg);
    feed(r, &h->events, cue_report_event);
    feed(r, &h->decisions, cue_report_decision);
    feed(r, &h->triggers, cue_report_trigger);
    cr_assert_eq(cue_report_finish(r, &err), 0, "%s", err.msg);
    cue_buf out;
    cue_buf_init(&out, 1 << 16);
    cr_assert_eq(cue_report_json(r, &out), 0);
    json_error_t je;
    json_t *j = json_loads(out.data, 0, &je);
    cr_assert(j != NULL, "the report's JSON does not parse: %s at %d: %.200s", je.text, je.position,
              out.data);
    cue_buf html;
    cue_buf_init(&html, 1 << 16);
    cr_assert_eq(cue_report_html(r, &html), 0);
    cr_assert(strstr(html.data, "<script") == NULL && strstr(html.data, "http") == NULL,
              "the page runs or fetches something");
    cue_buf_deinit(&html);
    cue_buf_deinit(&out);
    cue_report_free(r);
    return j;
}

static json_t *rate_named(json_t *rep, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(rep, "rates"), i,
                       m) if (strcmp(json_string_value(json_object_get(m, "name")), name) ==
                              0) return m;
    cr_assert_fail("no rate %s", name);
    return NULL;
}

static json_t *by_value(json_t *metric, const char *dim, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(metric, "by"), dim), i,
                       v) if (strcmp(json_string_value(json_object_get(v, "value")), value) ==
                              0) return json_object_get(v, "rate");
    cr_assert_fail("no %s %s", dim, value);
    return NULL;
}

static long long num(json_t *o, const char *path)
{
    char key[64];
    snprintf(key, sizeof key, "%s", path);
    json_t *v = o;
    for (char *tok = strtok(key, "."); tok; tok = strtok(NULL, "."))
        v = json_object_get(v, tok);
    cr_assert(json_is_number(v), "%s is not a number", path);
    return (long long)json_number_value(v);
}

Test(report, goals_by_cohort_with_censoring)
{
    hist h;
    hist_init(&h);
    cue_report_config rc;
    cue_report_config_defaults(&rc);
    /* Week of 2026-01-05: a completes on day 2, b on day 8 (too late), c
     * never. d signs up a week later and completes; e signs up 3 days before
     * the end, too late to be counted. */
    signup(&h, "a", T0 + HOUR_MS, "remote");
    signup(&h, "b", T0 + 2 * HOUR_MS, "remote");
    signup(&h, "c", T0 + 3 * HOUR_MS, "in_person");
    signup(&h, "d", T0 + 7 * DAY_MS + HOUR_MS, "in_person");
    int64_t end = T0 + 30 * DAY_MS;
    signup(&h, "e", end - 3 * DAY_MS, "remote");
    dec(&h, "a", "onboarding", "onboarding_completed", "sent", "none", T0 + 2 * DAY_MS, "");
    dec(&h, "b", "onboarding", "onboarding_completed", "suppressed", "no_consent",
        T0 + 8 * DAY_MS + 3 * HOUR_MS, "");
    dec(&h, "d", "onboarding", "onboarding_completed", "sent", "none", T0 + 9 * DAY_MS, "");
    json_t *j = report_of(&h, &rc, true, end);
    json_t *m = rate_named(j, "onboarding_completed_7d");
    cr_assert_eq(num(m, "all.n"), 4, "e's week is not over: not counted");
    cr_assert_eq(num(m, "all.k"), 2, "a and d; b's came on day 8");
    json_t *w1 = by_value(m, "cohort", "2026-01-05"), *w2 = by_value(m, "cohort", "2026-01-12");
    cr_assert_eq(num(w1, "n"), 3);
    cr_assert_eq(num(w1, "k"), 1);
    cr_assert_eq(num(w2, "n"), 1);
    cr_assert_eq(num(w2, "k"), 1);
    json_t *remote = by_value(m, "work_mode", "remote");
    cr_assert_eq(num(remote, "n"), 2);
    cr_assert_eq(num(remote, "k"), 1);
    /* A suppressed decision still means the journey reached the goal. */
    cr_assert_eq(num(j, "decisions.suppressed"), 1);
    cr_assert_eq(num(j, "decisions.sent"), 2);
    json_decref(j);
    hist_deinit(&h);
}

Test(report, absent_goal_and_opt_outs)
{
    hist h;
    hist_init(&h);
    cue_report_config rc;
    cue_report_config_defaults(&rc);
    int64_t end = T0 + 60 * DAY_MS;
    signup(&h, "a", T0, "remote");
    signup(&h, "b", T0, "remote");
    /* a withdraws push 3 h after a nudge (it follows it) and again 10 days
     * later; b mutes 5 days after a nudge (too late to follow it). */
    ev(&h, "a", "consent_changed", T0 + 3 * DAY_MS + 3 * HOUR_MS,
       "\"props\":{\"channel\":\"push\",\"granted\":false}");
    ev(&h, "b", "channel_muted", T0 + 8 * DAY_MS,
       "\"props\":{\"channel\":\"push\",\"muted\":true}");
    ev(&h, "b", "channel_muted", T0 + 9 * DAY_MS,
       "\"props\":{\"channel\":\"push\",\"muted\":false}"); /* unmuted: not an opt-out */
    dec(&h, "a", "onboarding", "onboarding_stalled", "sent", "none", T0 + 3 * DAY_MS, "");
    dec(&h, "b", "onboarding", "onboarding_stalled", "sent", "none", T0 + 3 * DAY_MS, "");
    dec(&h, "b", "lifecycle", "user_dormant", "sent", "none", T0 + 40 * DAY_MS, "");
    /* A message the opt-out itself caused (same instant) does not precede it. */
    dec(&h, "a", "lifecycle", "user_reactivated", "sent", "none", T0 + 3 * DAY_MS + 3 * HOUR_MS,
        "");
    json_t *j = report_of(&h, &rc, true, end);
    json_t *att = json_object_get(j, "opt_out_attribution");
    cr_assert_eq(num(att, "opt_out_events"), 2);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(att, "triggers"), i, t)
    {
        const char *name = json_string_value(json_object_get(t, "trigger"));
        if (strcmp(name, "onboarding_stalled") == 0) {
            cr_assert_eq(num(t, "sent"), 2);
            cr_assert_eq(num(t, "followed"), 1, "only a's withdrawal is within 48 h");
            near(json_number_value(json_object_get(t, "per_thousand")), 500, 1e-9, "per 1000");
        } else if (strcmp(name, "user_reactivated") == 0) {
            cr_assert_eq(num(t, "followed"), 0, "caused by the opt-out, not followed by it");
        }
    }
    /* No user_dormant within 30 days: a yes, b yes (its is on day 40). */
    json_t *m = rate_named(j, "not_dormant_30d");
    cr_assert_eq(num(m, "all.n"), 2);
    cr_assert_eq(num(m, "all.k"), 2);
    m = rate_named(j, "opt_out_after_signup");
    cr_assert_eq(num(m, "all.k"), 2, "both opted out within 30 days of sign-up");
    json_decref(j);
    hist_deinit(&h);
}

Test(report, experiment_arms_lift_and_sample_ratio)
{
    hist h;
    hist_init(&h);
    cue_report_config rc;
    cue_report_config_defaults(&rc);
    rc.n_experiments = 1;
    snprintf(rc.experiments[0].name, sizeof rc.experiments[0].name, "exp");
    rc.experiments[0].holdout = 0.5;
    int64_t end = T0 + 60 * DAY_MS;
    /* Four users exposed at day 3: two in the holdout (one completes), two
     * in variant v (both complete); one more records a second arm. */
    const char *users[] = {"h1", "h2", "v1", "v2"};
    for (int u = 0; u < 4; u++) {
        signup(&h, users[u], T0, "remote");
        dec(&h, users[u], "onboarding", "onboarding_stalled", u < 2 ? "suppressed" : "sent",
            u < 2 ? "holdout" : "none", T0 + 3 * DAY_MS, u < 2 ? NULL : "v");
    }
    dec(&h, "h1", "onboarding", "onboarding_completed", "sent", "none", T0 + 5 * DAY_MS, "");
    dec(&h, "v1", "onboarding", "onboarding_completed", "sent", "none", T0 + 5 * DAY_MS, "");
    dec(&h, "v2", "onboarding", "onboarding_completed", "sent", "none", T0 + 6 * DAY_MS, "");
    dec(&h, "h2", "onboarding", "onboarding_stalled", "sent", "none", T0 + 4 * DAY_MS, "v");
    json_t *j = report_of(&h, &rc, true, end);
    json_t *e = json_array_get(json_object_get(j, "experiments"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "name")), "exp");
    cr_assert_eq(num(e, "users"), 4);
    cr_assert_eq(num(e, "conflicts"), 1, "h2 cannot move from the holdout to v");
    cr_assert_eq(num(e, "sample_ratio.holdout_users"), 2);
    near(json_number_value(json_object_get(json_object_get(e, "sample_ratio"), "chi2")), 0, 1e-12,
         "2 of 4 against a half");
    json_t *g = json_array_get(json_object_get(e, "goals"), 0);
    cr_assert_eq(num(g, "holdout.n"), 2);
    cr_assert_eq(num(g, "holdout.k"), 1);
    cr_assert_eq(num(g, "treatment.k"), 2);
    near(json_number_value(json_object_get(json_object_get(g, "lift"), "estimate")), 0.5, 1e-12,
         "lift");
    cue_interval want = cue_stat_diff(2, 2, 1, 2, CUE_Z95);
    json_t *ci = json_object_get(json_object_get(g, "lift"), "ci");
    near(json_number_value(json_array_get(ci, 0)), want.lo, 1e-5, "lift lower");
    json_decref(j);
    hist_deinit(&h);
}

Test(report, messages_per_user_week_and_retention)
{
    hist h;
    hist_init(&h);
    cue_report_config rc;
    cue_report_config_defaults(&rc);
    signup(&h, "a", T0, "remote");
    signup(&h, "b", T0, "remote");
    ev(&h, "a", "comment_added", T0 + 15 * DAY_MS, NULL); /* week 2 */
    /* a: 2 messages in week 0, none in week 1, 1 in week 2; b: none. So
     * 6 user-weeks: four 0s, one 1, one 2. Triggers only (no policies). */
    trig(&h, "a", "onboarding", "onboarding_stalled", T0 + DAY_MS);
    trig(&h, "a", "deadlines", "missed_deadline", T0 + 2 * DAY_MS);
    trig(&h, "a", "onboarding", "onboarding_stalled", T0 + 16 * DAY_MS);
    /* This one falls in a week not over by the end: left out. */
    trig(&h, "a", "onboarding", "onboarding_stalled", T0 + 28 * DAY_MS - HOUR_MS);
    json_t *j = report_of(&h, &rc, false, INT64_MIN);
    cr_assert_eq(num(j, "history.after_end"), 0);
    json_t *m = json_object_get(j, "messages");
    cr_assert_str_eq(json_string_value(json_object_get(m, "source")), "triggers");
    /* The last trigger moved the end to 28 days less an hour: 3 whole
     * weeks each. */
    cr_assert_eq(num(m, "user_weeks"), 6);
    cr_assert_eq(num(m, "all.messages"), 3, "the message of a week not over is left out");
    cr_assert_eq(num(m, "all.p50"), 0);
    cr_assert_eq(num(m, "all.max"), 2);
    json_t *hg = json_object_get(m, "histogram");
    cr_assert_eq(json_integer_value(json_array_get(hg, 0)), 4);
    cr_assert_eq(json_integer_value(json_array_get(hg, 1)), 1);
    cr_assert_eq(json_integer_value(json_array_get(hg, 2)), 1);
    cr_assert_eq(num(json_object_get(m, "by_journey"), "deadlines.messages"), 1);
    /* Retention: week 0 both, week 1 nobody, week 2 a. */
    json_t *all = NULL, *row;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(j, "retention"), "by_cohort"), i,
                       row) if (strcmp(json_string_value(json_object_get(row, "cohort")), "all") ==
                                0) all = row;
    cr_assert(all != NULL);
    json_t *weeks = json_object_get(all, "weeks");
    cr_assert_eq(num(json_array_get(weeks, 0), "rate.k"), 2);
    cr_assert_eq(num(json_array_get(weeks, 1), "rate.k"), 0);
    cr_assert_eq(num(json_array_get(weeks, 2), "rate.k"), 1);
    cr_assert_eq(num(json_array_get(weeks, 2), "rate.n"), 2);
    json_decref(j);
    hist_deinit(&h);
}

Test(report, compare_forks_the_events)
{
    hist h, b;
    hist_init(&h);
    hist_init(&b);
    cue_report_config rc;
    cue_report_config_defaults(&rc);
    signup(&h, "a", T0, "remote");
    signup(&h, "b", T0 + DAY_MS, "in_person");
    trig(&h, "a", "onboarding", "onboarding_stalled", T0 + 3 * DAY_MS);
    trig(&b, "a", "onboarding", "onboarding_stalled", T0 + 2 * DAY_MS);
    trig(&b, "b", "onboarding", "onboarding_stalled", T0 + 3 * DAY_MS);
    trig(&b, "b", "onboarding", "onboarding_survey", T0 + 4 * DAY_MS);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_report *ra, *rb;
    cue_err err = {0};
    cue_report_opts o = {.rc = &rc, .cfg = &cfg, .until_ms = T0 + 29 * DAY_MS};
    cr_assert_eq(cue_report_new(&ra, &o, &err), 0);
    feed(ra, &h.events, cue_report_event);
    cr_assert_eq(cue_report_fork(&rb, ra, &err), 0);
    feed(ra, &h.triggers, cue_report_trigger);
    feed(rb, &b.triggers, cue_report_trigger);
    cr_assert_eq(cue_report_finish(ra, &err), 0);
    cr_assert_eq(cue_report_finish(rb, &err), 0);
    cue_buf out;
    cue_buf_init(&out, 1 << 16);
    cr_assert_eq(cue_report_compare_json(ra, rb, "A", "B", &out), 0);
    json_t *j = json_loads(out.data, 0, NULL);
    cr_assert(j != NULL, "compare JSON does not parse: %.300s", out.data);
    json_t *m = json_object_get(j, "messages");
    cr_assert_eq(num(m, "user_weeks"), 8, "4 whole weeks each, the same in both");
    cr_assert_eq(num(m, "a.messages"), 1);
    cr_assert_eq(num(m, "b.messages"), 3);
    near(json_number_value(json_object_get(m, "change_mean")), 2.0 / 8, 1e-12, "change");
    size_t i;
    json_t *t;
    int seen = 0;
    json_array_foreach(json_object_get(j, "triggers"), i, t)
    {
        const char *name = json_string_value(json_object_get(t, "trigger"));
        if (strcmp(name, "onboarding_stalled") == 0) {
            cr_assert_eq(num(t, "a"), 1);
            cr_assert_eq(num(t, "b"), 2);
            cr_assert_eq(num(t, "change"), 1);
            seen++;
        } else if (strcmp(name, "onboarding_survey") == 0) {
            cr_assert_eq(num(t, "a"), 0, "only B's run made it");
            cr_assert_eq(num(t, "b"), 1);
            seen++;
        }
    }
    cr_assert_eq(seen, 2);
    json_t *g = json_object_get(json_object_get(j, "groups"), "work_mode");
    cr_assert_eq(json_array_size(g), 2);
    cue_buf_reset(&out);
    cr_assert_eq(cue_report_compare_html(ra, rb, "A<x>", "B", &out), 0);
    cr_assert(strstr(out.data, "A&lt;x&gt;") != NULL, "labels are escaped");
    json_decref(j);
    cue_buf_deinit(&out);
    cue_report_free(ra);
    cue_report_free(rb);
    hist_deinit(&h);
    hist_deinit(&b);
}

Test(report, bad_records_are_counted_not_fatal)
{
    cue_report_config rc;
    cue_report_config_defaults(&rc);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_report *r;
    cue_report_opts o = {.rc = &rc, .cfg = &cfg, .decisions = true, .until_ms = INT64_MIN};
    cr_assert_eq(cue_report_new(&r, &o, NULL), 0);
    const char *bad[] = {"{", "[]", "{\"user_id\":\"a\"}", "{\"outcome\":\"sent\"}"};
    cr_assert_eq(cue_report_event(r, bad[0], strlen(bad[0])), CUE_EPARSE);
    cr_assert_eq(cue_report_event(r, bad[2], strlen(bad[2])), CUE_EPARSE);
    cr_assert_eq(cue_report_decision(r, bad[1], strlen(bad[1])), CUE_EPARSE);
    cr_assert_eq(cue_report_decision(r, bad[3], strlen(bad[3])), CUE_EPARSE);
    cr_assert_eq(cue_report_trigger(r, bad[0], strlen(bad[0])), CUE_EPARSE);
    cr_assert_eq(cue_report_finish(r, NULL), 0);
    cue_buf out;
    cue_buf_init(&out, 4096);
    cr_assert_eq(cue_report_json(r, &out), 0);
    json_t *j = json_loads(out.data, 0, NULL);
    cr_assert(j != NULL);
    cr_assert_eq(num(j, "history.bad_events"), 2);
    cr_assert_eq(num(j, "history.bad_decisions"), 2);
    cr_assert_eq(num(j, "history.bad_triggers"), 1);
    json_decref(j);
    cue_buf_deinit(&out);
    cue_report_free(r);
}

Test(report, many_users_grow_the_table)
{
    cue_report_config rc;
    cue_report_config_defaults(&rc);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_report *r;
    cue_report_opts o = {.rc = &rc, .cfg = &cfg, .until_ms = INT64_MIN};
    cr_assert_eq(cue_report_new(&r, &o, NULL), 0);
    char line[160];
    for (int u = 0; u < 5000; u++) {
        for (int k = 0; k < 2; k++) { /* each user twice: found, not added */
            int n =
                snprintf(line, sizeof line, "{\"user_id\":\"user-%d\",\"type\":\"%s\",\"ts\":%lld}",
                         u, k ? "comment_added" : "signed_up", (long long)(T0 + k * DAY_MS));
            cr_assert_eq(cue_report_event(r, line, (size_t)n), 0);
        }
    }
    cr_assert_eq(cue_report_users(r), 5000);
    size_t bytes = cue_report_bytes(r);
    cr_assert_lt(bytes, 2u << 20, "5000 users take %zu bytes", bytes);
    cue_report_free(r);
}

Test(report_config, file_errors_name_where)
{
    cue_report_config rc;
    cue_err err = {0};
    cue_report_config_defaults(&rc);
    cr_assert_eq(cue_report_config_parse(&rc,
                                         "{\"goals\":[{\"name\":\"g\",\"trigger\":\"t\","
                                         "\"withn\":\"7d\"}]}",
                                         "r.json", &err),
                 CUE_ECONFIG);
    cr_assert(strstr(err.msg, "r.json: $.goals[0]: unknown key 'withn' (did you mean 'within'?)"),
              "%s", err.msg);
    cue_report_config_defaults(&rc);
    cr_assert_eq(
        cue_report_config_parse(&rc, "{\"opt_out\":{\"window\":\"soon\"}}", "r.json", &err),
        CUE_ECONFIG);
    cr_assert(strstr(err.msg, "$.opt_out.window: expected a duration"), "%s", err.msg);
    cue_report_config_defaults(&rc);
    cr_assert_eq(cue_report_config_parse(&rc, "{\"onboarding_goal\":\"onboarding_completed_7\"}",
                                         "r.json", &err),
                 CUE_ECONFIG);
    cr_assert(strstr(err.msg, "did you mean 'onboarding_completed_7d'"), "%s", err.msg);
    cue_report_config_defaults(&rc);
    cr_assert_eq(cue_report_config_parse(&rc,
                                         "{\"goals\":[{\"name\":\"x\",\"event\":\"project_"
                                         "exported\",\"within\":\"3d\",\"from\":\"exposure\"}],"
                                         "\"retention_weeks\":4}",
                                         "r.json", &err),
                 0, "%s", err.msg);
    cr_assert_eq(rc.n_goals, 1);
    cr_assert(rc.goals[0].is_event && rc.goals[0].from_exposure);
    cr_assert_eq(rc.goals[0].within_ms, 3 * DAY_MS);
    cr_assert_eq(rc.onboarding_goal, -1, "no goal of the default's name");
    cr_assert_eq(rc.retention_weeks, 4);
}

Test(report_config, the_example_is_the_default)
{
    cue_report_config def, ex;
    cue_err err = {0};
    cue_report_config_defaults(&def);
    cue_report_config_defaults(&ex);
    cr_assert_eq(cue_report_config_load(&ex, CUE_SOURCE_DIR "/deploy/report.json", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(ex.n_goals, def.n_goals);
    for (size_t g = 0; g < def.n_goals; g++) {
        cr_assert_str_eq(ex.goals[g].name, def.goals[g].name);
        cr_assert_eq(ex.goals[g].within_ms, def.goals[g].within_ms);
        cr_assert_eq(ex.goals[g].absent, def.goals[g].absent);
    }
    cr_assert_eq(ex.optout_window_ms, def.optout_window_ms);
    cr_assert_eq(ex.optout_after_ms, def.optout_after_ms);
    cr_assert_eq(ex.n_attrs, def.n_attrs);
    cr_assert_eq(ex.onboarding_goal, def.onboarding_goal);
}
