/* The report's statistics: score intervals for rates and their
 * differences, Pearson's chi-square, and percentiles of counts. Pure. */
#include "cuepoint/report.h"

#include "report_int.h"

#include <math.h>

cue_interval cue_stat_wilson(uint64_t k, uint64_t n, double z)
{
    if (n == 0) return (cue_interval){0, 1};
    CUE_ASSERT(k <= n);
    /* Wilson (1927): the p whose score test at z just accepts k/n. Unlike
     * the Wald interval it stays inside [0, 1] and keeps its coverage near
     * 0 and 1, where opt-out rates live. */
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
    double half = z / (1 + z2 / nn) * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    cue_interval ci = {centre - half, centre + half};
    /* Exact at the edges: k = 0 has lower bound 0, k = n upper bound 1. */
    if (k == 0 || ci.lo < 0) ci.lo = 0;
    if (k == n || ci.hi > 1) ci.hi = 1;
    return ci;
}

cue_interval cue_stat_diff(uint64_t k1, uint64_t n1, uint64_t k2, uint64_t n2, double z)
{
    if (n1 == 0 || n2 == 0) return (cue_interval){-1, 1};
    /* Newcombe (1998), method 10: each rate's Wilson bounds give the
     * difference's, which keeps the good coverage of the score interval for
     * small groups (a 10% holdout of a small journey) and rates near 0 or 1. */
    double p1 = (double)k1 / (double)n1, p2 = (double)k2 / (double)n2, d = p1 - p2;
    cue_interval a = cue_stat_wilson(k1, n1, z), b = cue_stat_wilson(k2, n2, z);
    double lo = d - sqrt((p1 - a.lo) * (p1 - a.lo) + (b.hi - p2) * (b.hi - p2));
    double hi = d + sqrt((a.hi - p1) * (a.hi - p1) + (p2 - b.lo) * (p2 - b.lo));
    return (cue_interval){lo, hi};
}

double cue_stat_diff_p(uint64_t k1, uint64_t n1, uint64_t k2, uint64_t n2)
{
    if (n1 == 0 || n2 == 0) return NAN;
    double p1 = (double)k1 / (double)n1, p2 = (double)k2 / (double)n2;
    double p = (double)(k1 + k2) / (double)(n1 + n2);
    double se = sqrt(p * (1 - p) * (1.0 / (double)n1 + 1.0 / (double)n2));
    if (se == 0) return p1 == p2 ? 1.0 : 0.0;
    return erfc(fabs(p1 - p2) / se / sqrt(2.0));
}

double cue_stat_chi2(const uint64_t *observed, const double *share, size_t k)
{
    uint64_t n = 0;
    for (size_t i = 0; i < k; i++)
        n += observed[i];
    double x = 0;
    for (size_t i = 0; i < k; i++) {
        double e = share[i] * (double)n;
        if (e <= 0) {
            /* An arm that should be empty and is not is infinitely unlikely. */
            if (observed[i]) return INFINITY;
            continue;
        }
        double d = (double)observed[i] - e;
        x += d * d / e;
    }
    return x;
}

double cue_stat_chi2_p(double x, int df)
{
    if (!(x > 0)) return 1.0;
    if (isinf(x)) return 0.0;
    if (df == 1) return erfc(sqrt(x / 2));
    if (df == 2) return exp(-x / 2);
    /* Wilson and Hilferty (1931): (x/df)^(1/3) is nearly normal. */
    double k = df, m = 1 - 2 / (9 * k), s = sqrt(2 / (9 * k));
    double zz = (cbrt(x / k) - m) / s;
    return 0.5 * erfc(zz / sqrt(2.0));
}

/* ---- distributions ------------------------------------------------------- */

unsigned report_percentile(const rhist *h, uint64_t total, double p)
{
    if (total == 0) return 0;
    /* Nearest rank: the smallest count with at least p of the user-weeks at
     * or below it (bench/policy_sim.c reads its figures the same way). */
    uint64_t rank = (uint64_t)ceil(p * (double)total);
    if (rank == 0) rank = 1;
    /* The zeros are what the other buckets leave of the total: a class that
     * one run never sent has only them. */
    uint64_t seen = total;
    for (unsigned c = 1; c < 256; c++)
        seen -= h->n[c];
    if (seen >= rank) return 0;
    for (unsigned c = 1; c < 256; c++) {
        seen += h->n[c];
        if (seen >= rank) return c;
    }
    return 255;
}

double report_mean(const rhist *h, uint64_t total)
{
    if (total == 0) return NAN;
    double s = 0;
    for (unsigned c = 1; c < 256; c++)
        s += (double)c * (double)h->n[c];
    return s / (double)total;
}
