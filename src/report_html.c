/* The report and the comparison as one self-contained HTML page: inline CSS
 * and SVG, no script, nothing fetched, so it opens from a mail attachment or
 * a CI artifact as it is. Every figure is also in the JSON. */
#include "cuepoint/report.h"

#include "cuepoint/timefmt.h"

#include "report_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The palette: one hue per series, readable on white and in print. */
static const char *const palette[] = {"#3366cc", "#dc3912", "#ff9900", "#109618", "#990099",
                                      "#0099c6", "#dd4477", "#66aa00", "#b82e2e", "#316395"};
#define PALETTE_N (sizeof palette / sizeof *palette)

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;"
    "max-width:1100px;margin:24px auto;padding:0 16px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px "
    "solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}"
    ".sub{color:#666}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}"
    ".card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:180px}"
    ".card b{display:block;font-size:22px}.card span{color:#666;font-size:12px}"
    "table{border-collapse:collapse;margin:6px 0 12px}td,th{padding:3px 10px;text-align:right;"
    "border-bottom:1px solid #eee;white-space:nowrap}th{background:#f6f6f6;font-weight:600}"
    "td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:13px;"
    "max-width:900px}.warn{color:#b00;font-weight:600}.ok{color:#070}"
    "svg text{font:11px system-ui,sans-serif;fill:#333}.pos{color:#b00}.neg{color:#070}"
    "details{margin:6px 0}summary{cursor:pointer;color:#3366cc}";

static void esc(cue_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': cue_buf_append_str(b, "&lt;"); break;
        case '>': cue_buf_append_str(b, "&gt;"); break;
        case '&': cue_buf_append_str(b, "&amp;"); break;
        case '"': cue_buf_append_str(b, "&quot;"); break;
        default: cue_buf_append_char(b, *s);
        }
    }
}

static void pct(cue_buf *b, double x)
{
    if (isfinite(x))
        cue_buf_printf(b, "%.1f%%", 100 * x);
    else
        cue_buf_append_str(b, "–");
}

static void num(cue_buf *b, double x, int digits)
{
    if (isfinite(x))
        cue_buf_printf(b, "%.*f", digits, x);
    else
        cue_buf_append_str(b, "–");
}

static void head(cue_buf *b, const char *title)
{
    cue_buf_append_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                          "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    esc(b, title);
    cue_buf_printf(b, "</title><style>%s</style></head><body>\n", css);
}

static void card(cue_buf *b, const char *value, const char *label)
{
    cue_buf_append_str(b, "<div class=\"card\"><b>");
    esc(b, value);
    cue_buf_append_str(b, "</b><span>");
    esc(b, label);
    cue_buf_append_str(b, "</span></div>");
}

/* ---- charts ------------------------------------------------------------------ */

/* A rate and its interval as a small horizontal bar on [0, scale]. */
static void rate_bar(cue_buf *b, double p, cue_interval ci, double scale, const char *color)
{
    const double w = 180, h = 14;
    if (!(scale > 0)) scale = 1;
    double x = isfinite(p) ? p / scale * w : 0;
    cue_buf_printf(b, "<svg width=\"%.0f\" height=\"%.0f\" role=\"img\">", w + 2, h);
    cue_buf_printf(b,
                   "<rect x=\"0\" y=\"2\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\" "
                   "opacity=\"0.75\"/>",
                   x > w ? w : x, h - 4, color);
    if (isfinite(ci.lo)) {
        double lo = ci.lo / scale * w, hi = ci.hi / scale * w;
        if (hi > w) hi = w;
        cue_buf_printf(b,
                       "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"7\" y2=\"7\" stroke=\"#000\"/>"
                       "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"3\" y2=\"11\" stroke=\"#000\"/>"
                       "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"3\" y2=\"11\" stroke=\"#000\"/>",
                       lo, hi, lo, lo, hi, hi);
    }
    cue_buf_append_str(b, "</svg>");
}

/* A difference and its interval on a symmetric axis around 0. */
static void diff_bar(cue_buf *b, double d, cue_interval ci, double scale)
{
    const double w = 220, mid = w / 2;
    if (!(scale > 0)) scale = 1;
    cue_buf_printf(b, "<svg width=\"%.0f\" height=\"16\" role=\"img\">", w);
    cue_buf_printf(b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"0\" y2=\"16\" stroke=\"#999\"/>", mid,
                   mid);
    if (isfinite(ci.lo) && isfinite(d)) {
        double lo = mid + ci.lo / scale * mid, hi = mid + ci.hi / scale * mid,
               x = mid + d / scale * mid;
        lo = lo < 0 ? 0 : lo;
        hi = hi > w ? w : hi;
        const char *c = ci.lo > 0 ? "#109618" : ci.hi < 0 ? "#dc3912" : "#555";
        cue_buf_printf(b,
                       "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"8\" y2=\"8\" stroke=\"%s\" "
                       "stroke-width=\"2\"/><circle cx=\"%.1f\" cy=\"8\" r=\"4\" fill=\"%s\"/>",
                       lo, hi, c, x, c);
    }
    cue_buf_append_str(b, "</svg>");
}

/* Vertical bars: series[s][i] for i < n, side by side per i; x labels are
 * the bucket numbers. A histogram of messages per user-week. */
static void bars(cue_buf *b, const uint64_t *const *series, size_t n_series, size_t n,
                 const char *const *names, const char *xlabel)
{
    const double W = 680, H = 220, L = 56, B = 34, T = 10;
    uint64_t max = 1;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < n; i++)
            if (series[s][i] > max) max = series[s][i];
    double slot = (W - L - 10) / (double)(n ? n : 1), bw = slot * 0.8 / (double)n_series;
    cue_buf_printf(b, "<svg width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H);
    for (int g = 0; g <= 4; g++) {
        double y = T + (H - B - T) * (1 - g / 4.0);
        cue_buf_printf(b,
                       "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                       "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>",
                       L, W - 10, y, y, L - 4, y + 4, (double)max * g / 4.0);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; s < n_series; s++) {
            double h = (H - B - T) * (double)series[s][i] / (double)max;
            cue_buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"%s\"><title>%s %zu: %llu</title></rect>",
                           L + slot * (double)i + slot * 0.1 + bw * (double)s, H - B - h, bw, h,
                           palette[s % PALETTE_N], names[s], i, (unsigned long long)series[s][i]);
        }
        if (n <= 30 || i % 5 == 0)
            cue_buf_printf(b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%zu</text>",
                           L + slot * ((double)i + 0.5), H - B + 14, i);
    }
    cue_buf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text></svg>",
                   L + (W - L) / 2, H - 4, xlabel);
}

static void legend(cue_buf *b, const char *const *names, size_t n)
{
    cue_buf_append_str(b, "<div class=\"note\">");
    for (size_t s = 0; s < n; s++) {
        cue_buf_printf(b, "<span style=\"color:%s\">&#9632;</span> ", palette[s % PALETTE_N]);
        esc(b, names[s]);
        cue_buf_append_str(b, " &nbsp; ");
    }
    cue_buf_append_str(b, "</div>");
}

/* ---- the report's sections ----------------------------------------------------- */

static void section_head(const cue_report *r, cue_buf *b)
{
    char from[CUE_TIME_TEXT_MAX] = "–", to[CUE_TIME_TEXT_MAX];
    if (r->min_ms != INT64_MAX) cue_time_format_rfc3339(r->min_ms, from);
    cue_time_format_rfc3339(r->end_ms, to);
    cue_buf_append_str(b, "<h1>What the journeys do</h1><div class=\"sub\">History from ");
    cue_buf_printf(b, "%.10s to %.16s UTC &middot; events: ", from, to);
    esc(b, r->src_events[0] ? r->src_events : "–");
    cue_buf_append_str(b, " &middot; decisions: ");
    esc(b, r->src_decisions[0] ? r->src_decisions : "–");
    cue_buf_append_str(b, " &middot; triggers: ");
    esc(b, r->src_triggers[0] ? r->src_triggers : "–");
    cue_buf_printf(b,
                   "<br>%llu events (%llu unreadable), %llu decision records, %llu trigger "
                   "records; %zu users, %llu signed up in the history.</div>",
                   (unsigned long long)r->events, (unsigned long long)r->bad_events,
                   (unsigned long long)r->decisions, (unsigned long long)r->triggers, r->n_users,
                   (unsigned long long)r->signups);
}

static void rate_text(char *out, size_t cap, rcount c)
{
    if (c.n == 0) {
        snprintf(out, cap, "–");
        return;
    }
    cue_interval ci = cue_stat_wilson(c.k, c.n, CUE_Z95);
    snprintf(out, cap, "%.1f%% (%.1f–%.1f)", 100.0 * (double)c.k / (double)c.n, 100 * ci.lo,
             100 * ci.hi);
}

static rcount treated(const rexp *x, size_t g);
static cue_interval lift_ci(rcount t, rcount h);

static void section_cards(const cue_report *r, cue_buf *b)
{
    char v[96], l[160];
    cue_buf_append_str(b, "<div class=\"cards\">");
    for (size_t m = 0; m < r->n_metrics && m < 2; m++) {
        rate_text(v, sizeof v, r->metrics[m].all);
        snprintf(l, sizeof l, "%s (95%% interval)", r->metrics[m].name);
        card(b, v, l);
    }
    snprintf(v, sizeof v, "%.2f", report_mean(&r->hist_all, r->user_weeks));
    card(b, v, "messages per user-week (mean)");
    snprintf(v, sizeof v, "%u / %u / %u", report_percentile(&r->hist_all, r->user_weeks, 0.5),
             report_percentile(&r->hist_all, r->user_weeks, 0.9),
             report_percentile(&r->hist_all, r->user_weeks, 0.99));
    card(b, v, "messages per user-week p50 / p90 / p99");
    for (size_t e = 0; e < r->n_exps && e < 2; e++) {
        const rexp *x = &r->exps[e];
        size_t g = r->rc.onboarding_goal >= 0 ? (size_t)r->rc.onboarding_goal : 0;
        rcount t = treated(x, g), h = x->goal[g][0];
        if (t.n == 0 || h.n == 0) continue;
        cue_interval ci = lift_ci(t, h);
        snprintf(v, sizeof v, "%+.1f pts (%+.1f … %+.1f)",
                 100 * ((double)t.k / (double)t.n - (double)h.k / (double)h.n), 100 * ci.lo,
                 100 * ci.hi);
        snprintf(l, sizeof l, "lift of %s over its holdout on %s", x->name, r->rc.goals[g].name);
        card(b, v, l);
    }
    cue_buf_append_str(b, "</div>");
}

static double max_hi(const cue_report *r, const rmetric *m, size_t d)
{
    double mx = 0;
    for (size_t i = 0; i < by_values(r, d); i++) {
        size_t v = report_value_at(r, d, i);
        rcount c = m->by[report_by_index(r, d, v)];
        if (c.n == 0) continue;
        double hi = cue_stat_wilson(c.k, c.n, CUE_Z95).hi;
        if (hi > mx) mx = hi;
    }
    return mx > 0 ? mx : 1;
}

static void rate_row(cue_buf *b, const char *name, rcount c, double scale, const char *color)
{
    double p = c.n ? (double)c.k / (double)c.n : NAN;
    cue_interval ci = c.n ? cue_stat_wilson(c.k, c.n, CUE_Z95) : (cue_interval){NAN, NAN};
    cue_buf_append_str(b, "<tr><td>");
    esc(b, name);
    cue_buf_printf(b, "</td><td>%llu</td><td>%llu</td><td>", (unsigned long long)c.n,
                   (unsigned long long)c.k);
    pct(b, p);
    cue_buf_append_str(b, "</td><td>");
    pct(b, ci.lo);
    cue_buf_append_str(b, " – ");
    pct(b, ci.hi);
    cue_buf_append_str(b, "</td><td>");
    rate_bar(b, p, ci, scale, color);
    cue_buf_append_str(b, "</td></tr>");
}

static void metric_table(const cue_report *r, cue_buf *b, const rmetric *m, size_t d)
{
    double scale = max_hi(r, m, d);
    cue_buf_append_str(b, "<h3>by ");
    esc(b, report_dim_name(r, d));
    cue_buf_append_str(b, d == 0 ? " (sign-up week, Monday UTC)" : "");
    cue_buf_append_str(b, "</h3><table><tr><th>");
    esc(b, report_dim_name(r, d));
    cue_buf_append_str(b, "</th><th>users</th><th>yes</th><th>rate</th><th>95% interval</th>"
                          "<th></th></tr>");
    for (size_t i = 0; i < by_values(r, d); i++) {
        size_t v = report_value_at(r, d, i);
        rcount c = m->by[report_by_index(r, d, v)];
        if (c.n == 0) continue;
        char name[96];
        report_value_name(r, d, v, name, sizeof name);
        rate_row(b, name, c, scale, palette[d % PALETTE_N]);
    }
    cue_buf_append_str(b, "</table>");
}

static void section_rates(const cue_report *r, cue_buf *b)
{
    cue_buf_append_str(
        b, "<h2>Goals and opt-outs by cohort and attribute</h2><p class=\"note\">Each user "
           "counts once, in the week they signed up and under the first value they gave each "
           "attribute. A user counts only once the whole window has passed by the end of the "
           "history (later sign-ups are left out, not counted as failures). Intervals are "
           "Wilson score intervals, 95%.</p>");
    for (size_t i = 0; i < r->n_metrics; i++) {
        const rmetric *m = &r->metrics[i];
        char all[96];
        rate_text(all, sizeof all, m->all);
        cue_buf_append_str(b, i < 2 ? "<details open><summary><b>" : "<details><summary><b>");
        esc(b, m->name);
        cue_buf_append_str(b, "</b>: ");
        esc(b, all);
        cue_buf_printf(b, " of %llu users &middot; ", (unsigned long long)m->all.n);
        esc(b, m->what);
        cue_buf_append_str(b, "</summary>");
        for (size_t d = 0; d < by_dims(r); d++)
            metric_table(r, b, m, d);
        cue_buf_append_str(b, "</details>");
    }
}

static void section_attribution(const cue_report *r, cue_buf *b)
{
    char w[32];
    cue_duration_format(r->rc.optout_window_ms, w, sizeof w);
    cue_buf_printf(b,
                   "<h2>Which messages opt-outs follow</h2><p class=\"note\">For each trigger "
                   "sent: how many were followed by a consent withdrawal or a mute of the same "
                   "user within %s, per thousand sent (Wilson 95%%). An opt-out that follows "
                   "two messages counts for both; compare a trigger with the others, not with "
                   "zero. %llu opt-out events in the history",
                   w, (unsigned long long)r->optout_events);
    if (r->optout_dropped)
        cue_buf_printf(b, " (%llu past a user's first two were not attributed)",
                       (unsigned long long)r->optout_dropped);
    cue_buf_append_str(b, ".</p><table><tr><th>journey / trigger</th><th>sent</th><th>followed"
                          "</th><th>per 1000</th><th>95% interval</th><th></th></tr>");
    /* The scale: the widest interval of a trigger sent often enough to say
     * something (a handful of sends has an interval to 1000). */
    double scale = 0;
    for (size_t i = 0; i < r->n_trigs; i++)
        if (r->trigs[i].sent >= 100) {
            double hi = cue_stat_wilson(r->trigs[i].followed, r->trigs[i].sent, CUE_Z95).hi;
            if (hi > scale) scale = hi;
        }
    for (size_t i = 0; i < r->n_trigs; i++) {
        const rtrig *t = &r->trigs[i];
        if (t->sent == 0) continue;
        cue_interval ci = cue_stat_wilson(t->followed, t->sent, CUE_Z95);
        double p = (double)t->followed / (double)t->sent;
        cue_buf_append_str(b, "<tr><td>");
        esc(b, t->machine);
        cue_buf_append_str(b, " / ");
        esc(b, t->name);
        cue_buf_printf(b, "</td><td>%llu</td><td>%llu</td><td>%.1f</td><td>%.1f – %.1f</td><td>",
                       (unsigned long long)t->sent, (unsigned long long)t->followed, 1000 * p,
                       1000 * ci.lo, 1000 * ci.hi);
        rate_bar(b, p, ci, scale, "#dc3912");
        cue_buf_append_str(b, "</td></tr>");
    }
    cue_buf_append_str(b, "</table>");
}

static void exp_srm(cue_buf *b, const rexp *x, uint64_t users)
{
    uint64_t obs[2] = {x->arm_users[0], users - x->arm_users[0]};
    cue_buf_printf(b, "<p class=\"note\">%llu users in the experiment, %llu in its holdout (",
                   (unsigned long long)users, (unsigned long long)obs[0]);
    pct(b, users ? (double)obs[0] / (double)users : NAN);
    if (x->holdout < 0 || users == 0) {
        cue_buf_append_str(b, "; no configured share to check it against: give --policies).</p>");
        return;
    }
    double share[2] = {x->holdout, 1 - x->holdout};
    double chi = cue_stat_chi2(obs, share, 2), p = cue_stat_chi2_p(chi, 1);
    cue_buf_append_str(b, " against ");
    pct(b, x->holdout);
    cue_buf_printf(b, " configured). Sample-ratio check: &chi;&sup2; = %.2f, p = %.3g: ", chi, p);
    cue_buf_append_str(b, p < 0.001 ? "<span class=\"warn\">mismatch: the arms are not what "
                                      "the assignment made; do not trust the lift</span></p>"
                                    : "<span class=\"ok\">no mismatch</span></p>");
}

static cue_interval lift_ci(rcount t, rcount h)
{
    return t.n && h.n ? cue_stat_diff(t.k, t.n, h.k, h.n, CUE_Z95) : (cue_interval){NAN, NAN};
}

/* Widens `scale` to hold the interval of t against h. */
static void lift_scale(double *scale, rcount t, rcount h)
{
    cue_interval ci = lift_ci(t, h);
    if (isfinite(ci.lo)) *scale = fmax(*scale, fmax(fabs(ci.lo), fabs(ci.hi)));
}

static void lift_row(cue_buf *b, const char *name, rcount t, rcount h, double scale)
{
    double pt = t.n ? (double)t.k / (double)t.n : NAN, ph = h.n ? (double)h.k / (double)h.n : NAN;
    cue_interval ci = lift_ci(t, h);
    cue_buf_append_str(b, "<tr><td>");
    esc(b, name);
    cue_buf_printf(b, "</td><td>%llu</td><td>", (unsigned long long)t.n);
    pct(b, pt);
    cue_buf_printf(b, "</td><td>%llu</td><td>", (unsigned long long)h.n);
    pct(b, ph);
    cue_buf_append_str(b, "</td><td><b>");
    if (isfinite(pt - ph)) cue_buf_printf(b, "%+.1f pts", 100 * (pt - ph));
    cue_buf_append_str(b, "</b></td><td>");
    if (isfinite(ci.lo)) cue_buf_printf(b, "%+.1f … %+.1f", 100 * ci.lo, 100 * ci.hi);
    cue_buf_printf(b, "</td><td>%.3g</td><td>", cue_stat_diff_p(t.k, t.n, h.k, h.n));
    diff_bar(b, pt - ph, ci, scale > 0 ? scale * 1.1 : 1);
    cue_buf_append_str(b, "</td></tr>");
}

static rcount treated(const rexp *x, size_t g)
{
    rcount t = {0, 0};
    for (size_t v = 0; v < x->n_variants; v++) {
        t.n += x->goal[g][1 + v].n;
        t.k += x->goal[g][1 + v].k;
    }
    return t;
}

/* Each goal's lift, pooled and by variant, on one scale. */
static void exp_table(const cue_report *r, cue_buf *b, const rexp *x)
{
    double scale = 0;
    for (size_t g = 0; g < r->rc.n_goals; g++) {
        lift_scale(&scale, treated(x, g), x->goal[g][0]);
        for (size_t v = 0; v < x->n_variants; v++)
            lift_scale(&scale, x->goal[g][1 + v], x->goal[g][0]);
    }
    cue_buf_append_str(b, "<table><tr><th>goal</th><th>treated</th><th>rate</th><th>holdout"
                          "</th><th>rate</th><th>lift</th><th>95% interval</th><th>p</th>"
                          "<th>lift and interval (0 at the line)</th></tr>");
    for (size_t g = 0; g < r->rc.n_goals; g++) {
        lift_row(b, r->rc.goals[g].name, treated(x, g), x->goal[g][0], scale);
        for (size_t v = 0; v < x->n_variants && x->n_variants > 1; v++) {
            char name[160];
            snprintf(name, sizeof name, "  … variant %s", x->variants[v]);
            lift_row(b, name, x->goal[g][1 + v], x->goal[g][0], scale);
        }
    }
    cue_buf_append_str(b, "</table>");
}

static void section_experiments(const cue_report *r, cue_buf *b)
{
    cue_buf_append_str(
        b, "<h2>Experiments: lift over the holdout</h2><p class=\"note\">Users are in an "
           "experiment from their first decision record that names it; the holdout got none of "
           "its triggers. Lift is the treatment's goal rate minus the holdout's, with Newcombe's "
           "95% interval for a difference of proportions and the two-proportion z-test's p. A "
           "goal measured from exposure starts at that first decision.</p>");
    if (r->n_exps == 0)
        cue_buf_append_str(b, r->decisions_given ? "<p>No decision names an experiment.</p>"
                                                 : "<p>Experiments need the decision records "
                                                   "(--decisions): holdout users have no "
                                                   "trigger.</p>");
    for (size_t e = 0; e < r->n_exps; e++) {
        const rexp *x = &r->exps[e];
        uint64_t users = x->arm_users[0];
        for (size_t v = 0; v < x->n_variants; v++)
            users += x->arm_users[1 + v];
        cue_buf_append_str(b, "<h3>");
        esc(b, x->name);
        cue_buf_append_str(b, "</h3>");
        exp_srm(b, x, users);
        exp_table(r, b, x);
    }
}

static void dist_row(cue_buf *b, const char *name, const cue_report *r, const rhist *h)
{
    unsigned max = 0;
    for (unsigned c = 1; c < 256; c++)
        if (h->n[c]) max = c;
    cue_buf_append_str(b, "<tr><td>");
    esc(b, name);
    cue_buf_append_str(b, "</td><td>");
    num(b, report_mean(h, r->user_weeks), 3);
    cue_buf_printf(b, "</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td></tr>",
                   report_percentile(h, r->user_weeks, 0.5),
                   report_percentile(h, r->user_weeks, 0.9),
                   report_percentile(h, r->user_weeks, 0.99), max);
}

static void group_means(const cue_report *r, cue_buf *b)
{
    for (size_t d = 0; d < by_dims(r); d++) {
        cue_buf_append_str(b, "<details><summary>by ");
        esc(b, report_dim_name(r, d));
        cue_buf_append_str(b, "</summary><table><tr><th>");
        esc(b, report_dim_name(r, d));
        cue_buf_append_str(b, "</th><th>user-weeks</th><th>messages</th><th>per user-week</th>"
                              "</tr>");
        for (size_t i = 0; i < by_values(r, d); i++) {
            size_t v = report_value_at(r, d, i);
            rsum s = r->msg_by[report_by_index(r, d, v)];
            if (s.weeks == 0) continue;
            char name[96];
            report_value_name(r, d, v, name, sizeof name);
            cue_buf_append_str(b, "<tr><td>");
            esc(b, name);
            cue_buf_printf(b, "</td><td>%llu</td><td>%llu</td><td>%.3f</td></tr>",
                           (unsigned long long)s.weeks, (unsigned long long)s.messages,
                           (double)s.messages / (double)s.weeks);
        }
        cue_buf_append_str(b, "</table></details>");
    }
}

static void section_messages(const cue_report *r, cue_buf *b)
{
    cue_buf_printf(b,
                   "<h2>Messages per user per week</h2><p class=\"note\">Every whole week of "
                   "every user from sign-up (or first event) to the end of the history, counting "
                   "the messages sent to the user in it (%s), zeros included: %llu user-weeks. "
                   "The tail (p99, max) is where over-notification shows.</p>",
                   r->decisions_given ? "sent decisions, at the time they went out"
                                      : "trigger records, at their time",
                   (unsigned long long)r->user_weeks);
    unsigned max = 0;
    for (unsigned c = 0; c < 256; c++)
        if (r->hist_all.n[c]) max = c;
    const uint64_t *s[1] = {r->hist_all.n};
    const char *names[1] = {"user-weeks"};
    bars(b, s, 1, max + 1, names, "messages in the week");
    cue_buf_append_str(b, "<table><tr><th></th><th>mean</th><th>p50</th><th>p90</th><th>p99</th>"
                          "<th>max</th></tr>");
    dist_row(b, "all messages", r, &r->hist_all);
    for (int j = 0; j < 2; j++)
        for (size_t d = 0; d < r->n_dims; d++) {
            if (r->dims[d].journey != (j == 1)) continue;
            char name[96];
            snprintf(name, sizeof name, "%s %s", j ? "journey" : "class", r->dims[d].name);
            dist_row(b, name, r, &r->hist_dim[d]);
        }
    cue_buf_append_str(b, "</table>");
    if (r->out_of_order)
        cue_buf_printf(b, "<p class=\"warn\">%llu messages came out of their user's order.</p>",
                       (unsigned long long)r->out_of_order);
    group_means(r, b);
}

static void reasons_cell(cue_buf *b, const uint64_t *reason)
{
    bool first = true;
    for (int k = 0; k < REASON_COUNT; k++) {
        if (!reason[k]) continue;
        cue_buf_printf(b, "%s%s %llu", first ? "" : ", ", report_reasons[k],
                       (unsigned long long)reason[k]);
        first = false;
    }
    if (first) cue_buf_append_str(b, "–");
}

static void section_triggers(const cue_report *r, cue_buf *b)
{
    cue_buf_append_str(b, "<h2>Triggers and decisions</h2><table><tr><th>journey / trigger</th>"
                          "<th>records</th><th>sent</th><th>deferred</th><th>suppressed</th>"
                          "<th>cancelled</th><th style=\"text-align:left\">why not sent</th></tr>");
    for (size_t i = 0; i < r->n_trigs; i++) {
        const rtrig *t = &r->trigs[i];
        cue_buf_append_str(b, "<tr><td>");
        esc(b, t->machine);
        cue_buf_append_str(b, " / ");
        esc(b, t->name);
        cue_buf_printf(b, "</td><td>%llu</td>", (unsigned long long)t->records);
        for (int o = 0; o < OUT_COUNT; o++)
            cue_buf_printf(b, "<td>%llu</td>", (unsigned long long)t->outcome[o]);
        cue_buf_append_str(b, "<td style=\"text-align:left\">");
        reasons_cell(b, t->reason);
        cue_buf_append_str(b, "</td></tr>");
    }
    cue_buf_append_str(b, "<tr><th>all</th><th></th>");
    for (int o = 0; o < OUT_COUNT; o++)
        cue_buf_printf(b, "<th>%llu</th>", (unsigned long long)r->outcome[o]);
    cue_buf_append_str(b, "<th style=\"text-align:left\">");
    reasons_cell(b, r->reason);
    cue_buf_append_str(b, "</th></tr></table>");
}

static void retention_chart(const cue_report *r, cue_buf *b)
{
    const double W = 680, H = 240, L = 46, B = 30, T = 10, R = 120;
    size_t weeks = r->ret_weeks;
    double dx = (W - L - R) / (double)(weeks > 1 ? weeks - 1 : 1);
    cue_buf_printf(b, "<svg width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H);
    for (int g = 0; g <= 4; g++) {
        double y = T + (H - B - T) * (1 - g / 4.0);
        cue_buf_printf(b,
                       "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                       "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>",
                       L, W - R, y, y, L - 4, y + 4, g * 25);
    }
    for (size_t k = 0; k < weeks; k++)
        cue_buf_printf(b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%zu</text>",
                       L + dx * (double)k, H - B + 14, k);
    size_t shown = 0;
    for (size_t c = 0; c <= r->n_cohorts; c++) {
        const rcount *row = &r->ret[c * r->ret_weeks];
        if (row[0].n == 0) continue;
        bool all = c == r->n_cohorts;
        const char *color = all ? "#000" : palette[shown++ % PALETTE_N];
        cue_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"",
                       color, all ? "3" : "1.5");
        for (size_t k = 0; k < weeks && row[k].n; k++)
            cue_buf_printf(b, "%.1f,%.1f ", L + dx * (double)k,
                           T + (H - B - T) * (1 - (double)row[k].k / (double)row[k].n));
        /* The legend, right of the plot: the curves end together. */
        char name[32];
        if (all)
            snprintf(name, sizeof name, "all cohorts");
        else
            report_value_name(r, 0, c, name, sizeof name);
        double y = T + 16.0 * (double)(all ? shown + 1 : shown);
        cue_buf_printf(b,
                       "\"/><line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                       "stroke-width=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>",
                       W - R + 10, W - R + 28, y, y, color, all ? "3" : "1.5", W - R + 32, y + 4,
                       name);
    }
    cue_buf_printf(b,
                   "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">weeks after sign-up"
                   "</text></svg>",
                   L + (W - L - R) / 2, H - 2);
}

static void section_retention(const cue_report *r, cue_buf *b)
{
    cue_buf_append_str(b, "<h2>Retention by sign-up cohort</h2><p class=\"note\">The share of a "
                          "cohort's users with any event in week k after their sign-up (week 0 "
                          "holds the sign-up). A week counts once it has passed for the user by "
                          "the end of the history, so later cohorts have shorter curves.</p>");
    retention_chart(r, b);
    cue_buf_append_str(b, "<table><tr><th>cohort</th><th>users</th>");
    for (size_t k = 0; k < r->ret_weeks; k++)
        cue_buf_printf(b, "<th>w%zu</th>", k);
    cue_buf_append_str(b, "</tr>");
    for (size_t c = 0; c <= r->n_cohorts; c++) {
        const rcount *row = &r->ret[c * r->ret_weeks];
        if (row[0].n == 0) continue;
        char name[32];
        if (c == r->n_cohorts)
            snprintf(name, sizeof name, "all");
        else
            report_value_name(r, 0, c, name, sizeof name);
        cue_buf_printf(b, "<tr><td>%s</td><td>%llu</td>", name, (unsigned long long)row[0].n);
        for (size_t k = 0; k < r->ret_weeks; k++) {
            double p = row[k].n ? (double)row[k].k / (double)row[k].n : NAN;
            cue_buf_printf(b, "<td style=\"background:rgba(51,102,204,%.2f)\">",
                           isfinite(p) ? p * 0.6 : 0);
            pct(b, p);
            cue_buf_append_str(b, "</td>");
        }
        cue_buf_append_str(b, "</tr>");
    }
    cue_buf_append_str(b, "</table>");
}

int cue_report_html(const cue_report *r, cue_buf *b)
{
    CUE_ASSERT(r->finished);
    cue_buf_reset(b);
    head(b, "cuepoint report");
    section_head(r, b);
    section_cards(r, b);
    section_rates(r, b);
    section_attribution(r, b);
    section_experiments(r, b);
    section_messages(r, b);
    section_triggers(r, b);
    section_retention(r, b);
    cue_buf_append_str(b, "<p class=\"note\">Made by <code>cuepoint report</code>. The same "
                          "figures, with every count, are in its JSON (--json).</p></body>"
                          "</html>\n");
    return cue_buf_reserve(b, 0);
}

/* ---- the comparison -------------------------------------------------------------- */

static const rtrig *find_trig(const cue_report *r, const char *machine, const char *name)
{
    for (size_t i = 0; i < r->n_trigs; i++)
        if (strcmp(r->trigs[i].machine, machine) == 0 && strcmp(r->trigs[i].name, name) == 0)
            return &r->trigs[i];
    return NULL;
}

static void change_cell(cue_buf *b, double d, int digits)
{
    if (!isfinite(d)) {
        cue_buf_append_str(b, "<td>–</td>");
        return;
    }
    cue_buf_printf(b, "<td class=\"%s\"><b>%+.*f</b></td>",
                   d > 0   ? "pos"
                   : d < 0 ? "neg"
                           : "",
                   digits, d);
}

static void cmp_trig_row(cue_buf *b, const rtrig *ta, const rtrig *tb, const rtrig *any)
{
    static const rtrig none;
    ta = ta ? ta : &none;
    tb = tb ? tb : &none;
    cue_buf_append_str(b, "<tr><td>");
    esc(b, any->machine);
    cue_buf_append_str(b, " / ");
    esc(b, any->name);
    cue_buf_printf(b, "</td><td>%llu</td><td>%llu</td>", (unsigned long long)ta->records,
                   (unsigned long long)tb->records);
    change_cell(b, (double)tb->records - (double)ta->records, 0);
    cue_buf_printf(b, "<td>%llu → %llu</td><td style=\"text-align:left\">",
                   (unsigned long long)ta->outcome[OUT_SUPPRESSED],
                   (unsigned long long)tb->outcome[OUT_SUPPRESSED]);
    bool reasons = false;
    for (int k = 0; k < REASON_COUNT; k++)
        reasons |= ta->reason[k] || tb->reason[k];
    if (reasons) {
        reasons_cell(b, ta->reason);
        cue_buf_append_str(b, " → ");
        reasons_cell(b, tb->reason);
    }
    cue_buf_append_str(b, "</td></tr>");
}

static void cmp_section_triggers(const cue_report *a, const cue_report *c, cue_buf *b,
                                 const char *la, const char *lb)
{
    cue_buf_append_str(b, "<h2>Each trigger</h2><table><tr><th>journey / trigger</th><th>");
    esc(b, la);
    cue_buf_append_str(b, "</th><th>");
    esc(b, lb);
    cue_buf_append_str(b, "</th><th>change</th><th>suppressed</th><th style=\"text-align:left\">"
                          "why not sent</th></tr>");
    for (size_t i = 0; i < a->n_trigs; i++)
        cmp_trig_row(b, &a->trigs[i], find_trig(c, a->trigs[i].machine, a->trigs[i].name),
                     &a->trigs[i]);
    for (size_t i = 0; i < c->n_trigs; i++)
        if (!find_trig(a, c->trigs[i].machine, c->trigs[i].name))
            cmp_trig_row(b, NULL, &c->trigs[i], &c->trigs[i]);
    cue_buf_append_str(b, "<tr><th>decisions</th><th></th><th></th><th></th><th></th><th>"
                          "</th></tr>");
    for (int o = 0; o < OUT_COUNT; o++) {
        cue_buf_printf(b, "<tr><td>%s</td><td>%llu</td><td>%llu</td>", report_outcomes[o],
                       (unsigned long long)a->outcome[o], (unsigned long long)c->outcome[o]);
        change_cell(b, (double)c->outcome[o] - (double)a->outcome[o], 0);
        cue_buf_append_str(b, "<td></td><td></td></tr>");
    }
    for (int k = 0; k < REASON_COUNT; k++) {
        if (!a->reason[k] && !c->reason[k]) continue;
        cue_buf_printf(b, "<tr><td>not sent: %s</td><td>%llu</td><td>%llu</td>", report_reasons[k],
                       (unsigned long long)a->reason[k], (unsigned long long)c->reason[k]);
        change_cell(b, (double)c->reason[k] - (double)a->reason[k], 0);
        cue_buf_append_str(b, "<td></td><td></td></tr>");
    }
    cue_buf_append_str(b, "</table>");
}

static void cmp_dist_rows(const cue_report *a, const cue_report *c, cue_buf *b)
{
    for (int j = 0; j < 2; j++)
        for (int side = 0; side < 2; side++) {
            const cue_report *r = side ? c : a;
            for (size_t d = 0; d < r->n_dims; d++) {
                if (r->dims[d].journey != (j == 1)) continue;
                const char *name = r->dims[d].name;
                const rhist *ha = NULL, *hb = NULL;
                for (size_t e = 0; e < a->n_dims; e++)
                    if (a->dims[e].journey == (j == 1) && strcmp(a->dims[e].name, name) == 0)
                        ha = &a->hist_dim[e];
                for (size_t e = 0; e < c->n_dims; e++)
                    if (c->dims[e].journey == (j == 1) && strcmp(c->dims[e].name, name) == 0)
                        hb = &c->hist_dim[e];
                if (side && ha) continue;
                static const rhist empty;
                double ma = report_mean(ha ? ha : &empty, a->user_weeks);
                double mb = report_mean(hb ? hb : &empty, c->user_weeks);
                cue_buf_printf(b, "<tr><td>%s ", j ? "journey" : "class");
                esc(b, name);
                cue_buf_printf(b, "</td><td>%.3f</td><td>%.3f</td>", ma, mb);
                change_cell(b, mb - ma, 3);
                cue_buf_printf(b, "<td>%u → %u</td></tr>",
                               report_percentile(ha ? ha : &empty, a->user_weeks, 0.99),
                               report_percentile(hb ? hb : &empty, c->user_weeks, 0.99));
            }
        }
}

static void cmp_section_messages(const cue_report *a, const cue_report *c, cue_buf *b,
                                 const char *la, const char *lb)
{
    double ma = report_mean(&a->hist_all, a->user_weeks),
           mb = report_mean(&c->hist_all, c->user_weeks);
    cue_buf_printf(b,
                   "<h2>Messages per user per week</h2><p class=\"note\">%llu user-weeks, the "
                   "same in both (one history). Both runs replay the same events, so every "
                   "change here is the journeys' or the policies', not chance: no interval "
                   "is needed.</p><table><tr><th></th><th>",
                   (unsigned long long)a->user_weeks);
    esc(b, la);
    cue_buf_append_str(b, "</th><th>");
    esc(b, lb);
    cue_buf_printf(b,
                   "</th><th>change</th><th>p99</th></tr><tr><td>all messages</td>"
                   "<td>%.3f</td><td>%.3f</td>",
                   ma, mb);
    change_cell(b, mb - ma, 3);
    cue_buf_printf(b, "<td>%u → %u</td></tr>", report_percentile(&a->hist_all, a->user_weeks, 0.99),
                   report_percentile(&c->hist_all, c->user_weeks, 0.99));
    cmp_dist_rows(a, c, b);
    cue_buf_append_str(b, "</table>");
    unsigned max = 0;
    for (unsigned k = 0; k < 256; k++)
        if (a->hist_all.n[k] || c->hist_all.n[k]) max = k;
    const uint64_t *s[2] = {a->hist_all.n, c->hist_all.n};
    const char *names[2] = {la, lb};
    bars(b, s, 2, max + 1, names, "messages in the week");
    legend(b, names, 2);
}

static void cmp_section_groups(const cue_report *a, const cue_report *c, cue_buf *b, const char *la,
                               const char *lb)
{
    cue_buf_append_str(b, "<h2>For which users</h2><p class=\"note\">Messages per user-week "
                          "by sign-up cohort and attribute.</p>");
    for (size_t d = 0; d < by_dims(a); d++) {
        cue_buf_append_str(b, "<h3>by ");
        esc(b, report_dim_name(a, d));
        cue_buf_append_str(b, "</h3><table><tr><th>");
        esc(b, report_dim_name(a, d));
        cue_buf_append_str(b, "</th><th>user-weeks</th><th>");
        esc(b, la);
        cue_buf_append_str(b, "</th><th>");
        esc(b, lb);
        cue_buf_append_str(b, "</th><th>change</th></tr>");
        for (size_t i = 0; i < by_values(a, d); i++) {
            size_t v = report_value_at(a, d, i);
            rsum sa = a->msg_by[report_by_index(a, d, v)], sb = c->msg_by[report_by_index(c, d, v)];
            if (sa.weeks == 0) continue;
            char name[96];
            report_value_name(a, d, v, name, sizeof name);
            double ma = (double)sa.messages / (double)sa.weeks,
                   mb = (double)sb.messages / (double)sb.weeks;
            cue_buf_append_str(b, "<tr><td>");
            esc(b, name);
            cue_buf_printf(b, "</td><td>%llu</td><td>%.3f</td><td>%.3f</td>",
                           (unsigned long long)sa.weeks, ma, mb);
            change_cell(b, mb - ma, 3);
            cue_buf_append_str(b, "</tr>");
        }
        cue_buf_append_str(b, "</table>");
    }
}

static void cmp_section_rates(const cue_report *a, const cue_report *c, cue_buf *b, const char *la,
                              const char *lb)
{
    cue_buf_append_str(b, "<h2>Goals and opt-outs</h2><table><tr><th>rate</th><th>");
    esc(b, la);
    cue_buf_append_str(b, "</th><th>");
    esc(b, lb);
    cue_buf_append_str(b, "</th><th>change (points)</th></tr>");
    for (size_t i = 0; i < a->n_metrics; i++) {
        char ta[96], tb[96];
        rcount ra = a->metrics[i].all, rb = c->metrics[i].all;
        rate_text(ta, sizeof ta, ra);
        rate_text(tb, sizeof tb, rb);
        cue_buf_append_str(b, "<tr><td>");
        esc(b, a->metrics[i].name);
        cue_buf_printf(b, "</td><td>%s</td><td>%s</td>", ta, tb);
        change_cell(b,
                    ra.n && rb.n ? 100 * ((double)rb.k / (double)rb.n - (double)ra.k / (double)ra.n)
                                 : NAN,
                    1);
        cue_buf_append_str(b, "</tr>");
    }
    cue_buf_append_str(b, "</table><p class=\"note\">A goal that is itself a trigger moves when "
                          "the journey that makes it changes; read it as what the journeys would "
                          "record, not what users would do.</p>");
}

/* The answer first: how many more (or fewer) messages, and which trigger
 * moved most. */
static void cmp_cards(const cue_report *a, const cue_report *c, cue_buf *b, const char *lb)
{
    double ma = report_mean(&a->hist_all, a->user_weeks),
           mc = report_mean(&c->hist_all, c->user_weeks);
    char v[96], l[160];
    cue_buf_append_str(b, "<div class=\"cards\">");
    snprintf(v, sizeof v, "%+.3f (%+.1f%%)", mc - ma, ma > 0 ? 100 * (mc - ma) / ma : 0.0);
    snprintf(l, sizeof l, "messages per user-week with %s", lb);
    card(b, v, l);
    snprintf(v, sizeof v, "%u → %u", report_percentile(&a->hist_all, a->user_weeks, 0.99),
             report_percentile(&c->hist_all, c->user_weeks, 0.99));
    card(b, v, "messages per user-week, p99");
    const rtrig *most = NULL;
    long long most_d = 0;
    for (size_t i = 0; i < c->n_trigs; i++) {
        const rtrig *t = find_trig(a, c->trigs[i].machine, c->trigs[i].name);
        long long d = (long long)c->trigs[i].records - (long long)(t ? t->records : 0);
        if (llabs(d) > llabs(most_d)) most = &c->trigs[i], most_d = d;
    }
    if (most) {
        snprintf(v, sizeof v, "%+lld %s", most_d, most->name);
        card(b, v, "the trigger that moves most");
    }
    cue_buf_append_str(b, "</div>");
}

int cue_report_compare_html(const cue_report *a, const cue_report *c, const char *la,
                            const char *lb, cue_buf *b)
{
    CUE_ASSERT(a->finished && c->finished);
    cue_buf_reset(b);
    head(b, "cuepoint report --compare");
    cue_buf_append_str(b, "<h1>What the change would send</h1><div class=\"sub\">");
    esc(b, la);
    cue_buf_append_str(b, " (");
    esc(b, a->src_triggers);
    cue_buf_append_str(b, ") against ");
    esc(b, lb);
    cue_buf_append_str(b, " (");
    esc(b, c->src_triggers);
    cue_buf_printf(b, "), over the same %llu events of %zu users (", (unsigned long long)a->events,
                   a->n_users);
    esc(b, a->src_events);
    cue_buf_append_str(b, ").</div>");
    cmp_cards(a, c, b, lb);
    cmp_section_messages(a, c, b, la, lb);
    cmp_section_triggers(a, c, b, la, lb);
    cmp_section_groups(a, c, b, la, lb);
    cmp_section_rates(a, c, b, la, lb);
    cue_buf_append_str(b, "<p class=\"note\">Made by <code>cuepoint report --compare</code>; the "
                          "same figures are in its JSON (--json).</p></body></html>\n");
    return cue_buf_reserve(b, 0);
}
