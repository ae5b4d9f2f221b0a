/* The report's tables, from the users' aggregates once every record is read:
 * goal rates by cohort and attribute, opt-out rates, experiments' arms,
 * retention, and the user-weeks of the messages' distributions. */
#include "cuepoint/report.h"

#include "cuepoint/timefmt.h"

#include "report_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t report_by_index(const cue_report *r, size_t dim, size_t value)
{
    if (dim == 0) return value;
    return r->n_cohorts + 1 + (dim - 1) * CUE_REPORT_VALUES_MAX + value;
}

size_t report_value_at(const cue_report *r, size_t dim, size_t i)
{
    return dim == 0 ? i : r->order[dim - 1][i];
}

const char *report_dim_name(const cue_report *r, size_t dim)
{
    return dim == 0 ? "cohort" : r->rc.attr_name[dim - 1];
}

void report_value_name(const cue_report *r, size_t dim, size_t value, char *out, size_t cap)
{
    if (dim == 0 && value == r->n_cohorts) {
        snprintf(out, cap, "(no sign-up)");
    } else if (dim == 0) {
        int64_t days = (r->cohort0 + (int64_t)value) * 7 + 4, y;
        unsigned m, d;
        cue_time_civil_from_days(days, &y, &m, &d);
        snprintf(out, cap, "%04lld-%02u-%02u", (long long)y, m, d);
    } else if (value == VAL_NONE) {
        snprintf(out, cap, "(none)");
    } else if (value == VAL_OTHER) {
        snprintf(out, cap, "(other)");
    } else {
        snprintf(out, cap, "%s", r->vals[dim - 1][value]);
    }
}

uint64_t report_zero_weeks(const cue_report *r, int d)
{
    const rhist *h = d < 0 ? &r->hist_all : &r->hist_dim[d];
    return r->user_weeks - h->nonzero;
}

/* The week number (since the first Monday) of a minute. */
static int64_t week_of(int32_t t)
{
    int64_t x = (int64_t)t - MONDAY0_MIN;
    return x >= 0 ? x / WEEK_MIN : -((-x + WEEK_MIN - 1) / WEEK_MIN);
}

static size_t cohort_of(const cue_report *r, const ruser *u)
{
    if (u->signup == NO_MIN) return r->n_cohorts;
    int64_t c = week_of(u->signup) - r->cohort0;
    return c < (int64_t)r->n_cohorts ? (size_t)c : r->n_cohorts - 1;
}

/* Whether a goal's event came within [a, a + w] of a user's anchor `a`:
 * 1 yes, 0 no, -1 undetermined. Each goal keeps its first and last time, so
 * the answer is exact unless the first came before `a` and the last after
 * the window, which only a goal measured from exposure can meet. */
static int reached(const cue_report *r, const ruser *u, size_t g, int32_t a, int32_t w)
{
    int32_t f = goal_first(r, u)[g], l = goal_last(r, u)[g];
    int yes;
    if (f == NO_MIN)
        yes = 0;
    else if (f >= a)
        yes = f <= a + w;
    else if (l < a)
        yes = 0;
    else if (l <= a + w)
        yes = 1;
    else
        return -1;
    return r->rc.goals[g].absent ? !yes : yes;
}

/* When the user reached goal g within its window from `a` (1 above). */
static int32_t reached_at(const cue_report *r, const ruser *u, size_t g, int32_t a)
{
    int32_t f = goal_first(r, u)[g];
    return f >= a ? f : goal_last(r, u)[g];
}

/* An opt-out in [from, to], minutes. */
static bool opted_out(const ruser *u, int32_t from, int32_t to)
{
    for (int k = 0; k < 2; k++) {
        if (u->optout[k] == NO_MS) continue;
        int64_t m = u->optout[k] / 60000;
        if (m >= from && m <= to) return true;
    }
    return false;
}

static void count(const cue_report *r, rmetric *m, const ruser *u, size_t cohort, int yes)
{
    if (yes < 0) {
        m->undetermined++;
        return;
    }
    m->all.n++;
    m->all.k += (uint64_t)yes;
    rcount *c = &m->by[report_by_index(r, 0, cohort)];
    c->n++;
    c->k += (uint64_t)yes;
    for (size_t a = 0; a < r->rc.n_attrs; a++) {
        c = &m->by[report_by_index(r, 1 + a, attrs(r, u)[a])];
        c->n++;
        c->k += (uint64_t)yes;
    }
}

static int metrics_alloc(cue_report *r, cue_err *err)
{
    size_t n = 0;
    char after[32];
    cue_duration_format(r->rc.optout_after_ms, after, sizeof after);
    for (size_t g = 0; g < r->rc.n_goals; g++) {
        const cue_report_goal *goal = &r->rc.goals[g];
        if (goal->from_exposure) continue;
        rmetric *m = &r->metrics[n++];
        char within[32];
        cue_duration_format(goal->within_ms, within, sizeof within);
        snprintf(m->name, sizeof m->name, "%s", goal->name);
        snprintf(m->what, sizeof m->what, "%s %s %s within %s of sign-up",
                 goal->absent ? "no" : "reached", goal->is_event ? "event" : "trigger",
                 goal->source, within);
    }
    if (r->rc.onboarding_goal >= 0) {
        rmetric *m = &r->metrics[n++];
        snprintf(m->name, sizeof m->name, "opt_out_after_onboarding");
        snprintf(m->what, sizeof m->what,
                 "an opt-out within %s after reaching %s (users who reached it)", after,
                 r->rc.goals[r->rc.onboarding_goal].name);
    }
    rmetric *m = &r->metrics[n++];
    snprintf(m->name, sizeof m->name, "opt_out_after_signup");
    snprintf(m->what, sizeof m->what, "an opt-out within %s of sign-up (every user)", after);
    r->n_metrics = n;
    for (size_t i = 0; i < n; i++)
        if ((r->metrics[i].by = calloc(report_by_len(r), sizeof(rcount))) == NULL)
            return cue_err_set(err, CUE_ENOMEM, "out of memory");
    return 0;
}

/* Goal and opt-out rates of one user who signed up in the history. */
static void user_rates(cue_report *r, const ruser *u, size_t cohort, int32_t end)
{
    size_t n = 0;
    int32_t after = (int32_t)(r->rc.optout_after_ms / 60000);
    for (size_t g = 0; g < r->rc.n_goals; g++) {
        const cue_report_goal *goal = &r->rc.goals[g];
        if (goal->from_exposure) continue;
        int32_t w = (int32_t)(goal->within_ms / 60000);
        rmetric *m = &r->metrics[n++];
        if (u->signup + w <= end) count(r, m, u, cohort, reached(r, u, g, u->signup, w));
    }
    int og = r->rc.onboarding_goal;
    if (og >= 0) {
        rmetric *m = &r->metrics[n++];
        int32_t w = (int32_t)(r->rc.goals[og].within_ms / 60000);
        if (reached(r, u, (size_t)og, u->signup, w) == 1) {
            int32_t c = reached_at(r, u, (size_t)og, u->signup);
            if (c + after <= end) count(r, m, u, cohort, opted_out(u, c, c + after));
        }
    }
    if (u->signup + after <= end)
        count(r, &r->metrics[n], u, cohort, opted_out(u, u->signup, u->signup + after));
}

static void user_retention(cue_report *r, const ruser *u, size_t cohort, int32_t end)
{
    for (size_t k = 0; k < r->ret_weeks; k++) {
        if (u->signup + (int32_t)(k + 1) * WEEK_MIN > end) break;
        bool on = (u->active >> k) & 1;
        rcount *c = &r->ret[cohort * r->ret_weeks + k],
               *all = &r->ret[r->n_cohorts * r->ret_weeks + k];
        c->n++;
        c->k += on;
        all->n++;
        all->k += on;
    }
}

static void user_experiments(cue_report *r, const ruser *u, int32_t end)
{
    for (size_t e = 0; e < r->n_exps; e++) {
        uint8_t a = arm(r, u)[e];
        if (a == ARM_NONE) continue;
        rexp *x = &r->exps[e];
        size_t col = a - 1; /* [0] holdout, [1 + v] variant v */
        x->arm_users[col]++;
        for (size_t g = 0; g < r->rc.n_goals; g++) {
            const cue_report_goal *goal = &r->rc.goals[g];
            int32_t from = goal->from_exposure ? exposed(r, u)[e] : u->signup;
            int32_t w = (int32_t)(goal->within_ms / 60000);
            if (from == NO_MIN || from + w > end) continue;
            int yes = reached(r, u, g, from, w);
            if (yes < 0) {
                x->undetermined[g]++;
                continue;
            }
            x->goal[g][col].n++;
            x->goal[g][col].k += (uint64_t)yes;
        }
    }
}

/* Messages: the user's last week closes if it is whole; every whole week
 * counts in the user-weeks, those without messages as zeros. */
static void user_weeks(cue_report *r, ruser *u, size_t cohort, int32_t end)
{
    int32_t anchor = u->signup != NO_MIN ? u->signup : u->first;
    if (anchor == NO_MIN || end < anchor) return;
    int64_t whole = (end - anchor) / WEEK_MIN;
    if (u->week < whole) report_week_close(r, u);
    r->user_weeks += (uint64_t)whole;
    rsum *s = &r->msg_by[report_by_index(r, 0, cohort)];
    s->weeks += (uint64_t)whole;
    s->messages += u->messages;
    for (size_t a = 0; a < r->rc.n_attrs; a++) {
        s = &r->msg_by[report_by_index(r, 1 + a, attrs(r, u)[a])];
        s->weeks += (uint64_t)whole;
        s->messages += u->messages;
    }
}

static void cohorts_find(cue_report *r)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < r->n_users; i++) {
        const ruser *u = user_at(r, i);
        if (u->signup == NO_MIN) continue;
        int64_t w = week_of(u->signup);
        if (w < lo) lo = w;
        if (w > hi) hi = w;
    }
    r->cohort0 = lo == INT64_MAX ? 0 : lo;
    r->n_cohorts = lo == INT64_MAX ? 0 : (size_t)(hi - lo + 1);
    if (r->n_cohorts > CUE_REPORT_COHORTS_MAX) r->n_cohorts = CUE_REPORT_COHORTS_MAX;
}

/* ---- the output's order ------------------------------------------------------------ */

/* What the output lists does not depend on the order records came in (a
 * topic's partitions interleave as they please): values, triggers, classes
 * and journeys are sorted by name. */
static int cmp_trig(const void *a, const void *b)
{
    const rtrig *x = a, *y = b;
    int c = strcmp(x->machine, y->machine);
    return c ? c : strcmp(x->name, y->name);
}

static void order_values(cue_report *r)
{
    for (size_t a = 0; a < r->rc.n_attrs; a++) {
        uint8_t *o = r->order[a];
        const char(*vals)[CUE_ATTR_BYTES_MAX] = r->vals[a];
        size_t n = 0;
        /* Insertion: at most 62 names. */
        for (size_t v = 1; v <= r->n_vals[a]; v++) {
            size_t j = n++;
            for (; j > 0 && strcmp(vals[o[j - 1]], vals[v]) > 0; j--)
                o[j] = o[j - 1];
            o[j] = (uint8_t)v;
        }
        o[n++] = VAL_NONE;
        for (size_t v = r->n_vals[a] + 1; v < CUE_REPORT_VALUES_MAX; v++)
            o[n++] = (uint8_t)v; /* unused, and "(other)" last */
    }
}

static void swap_variants(rexp *x, size_t i, size_t j)
{
    char name[CUE_NAME_BYTES_MAX];
    memcpy(name, x->variants[i], sizeof name);
    memcpy(x->variants[i], x->variants[j], sizeof name);
    memcpy(x->variants[j], name, sizeof name);
    uint64_t u = x->arm_users[1 + i];
    x->arm_users[1 + i] = x->arm_users[1 + j];
    x->arm_users[1 + j] = u;
    for (size_t g = 0; g < CUE_REPORT_GOALS_MAX; g++) {
        rcount c = x->goal[g][1 + i];
        x->goal[g][1 + i] = x->goal[g][1 + j];
        x->goal[g][1 + j] = c;
    }
}

/* An experiment's variants by name, with their counts (after the users). */
static void order_variants(cue_report *r)
{
    for (size_t e = 0; e < r->n_exps; e++) {
        rexp *x = &r->exps[e];
        for (size_t i = 1; i < x->n_variants; i++)
            for (size_t j = i; j > 0 && strcmp(x->variants[j - 1], x->variants[j]) > 0; j--)
                swap_variants(x, j - 1, j);
    }
}

/* Classes, then journeys, each by name; their distributions move with them. */
static void order_dims(cue_report *r)
{
    for (size_t i = 1; i < r->n_dims; i++)
        for (size_t j = i; j > 0; j--) {
            rdim *x = &r->dims[j - 1], *y = &r->dims[j];
            if (x->journey < y->journey ||
                (x->journey == y->journey && strcmp(x->name, y->name) <= 0))
                break;
            rdim td = *x;
            *x = *y;
            *y = td;
            rhist th = r->hist_dim[j - 1];
            r->hist_dim[j - 1] = r->hist_dim[j];
            r->hist_dim[j] = th;
        }
}

int cue_report_finish(cue_report *r, cue_err *err)
{
    CUE_ASSERT(!r->finished);
    r->finished = true;
    r->end_ms = r->until_ms != INT64_MIN ? r->until_ms : r->max_ms;
    if (r->end_ms == INT64_MIN) r->end_ms = 0;
    int32_t end = (int32_t)(r->end_ms / 60000);
    cohorts_find(r);
    r->ret_weeks = (size_t)r->rc.retention_weeks;
    int rc = metrics_alloc(r, err);
    r->ret = calloc((r->n_cohorts + 1) * r->ret_weeks, sizeof *r->ret);
    r->msg_by = calloc(report_by_len(r), sizeof *r->msg_by);
    if (rc == 0 && (r->ret == NULL || r->msg_by == NULL))
        rc = cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (rc != 0) return rc;
    for (size_t i = 0; i < r->n_users; i++) {
        ruser *u = user_at(r, i);
        size_t cohort = cohort_of(r, u);
        if (u->signup != NO_MIN) {
            r->signups++;
            user_rates(r, u, cohort, end);
            user_retention(r, u, cohort, end);
        }
        user_experiments(r, u, end);
        user_weeks(r, u, cohort, end);
    }
    r->hist_all.n[0] = report_zero_weeks(r, -1);
    for (size_t d = 0; d < r->n_dims; d++)
        r->hist_dim[d].n[0] = report_zero_weeks(r, (int)d);
    order_values(r);
    order_dims(r);
    order_variants(r);
    qsort(r->trigs, r->n_trigs, sizeof *r->trigs, cmp_trig); /* no look-ups after this */
    return 0;
}
