/*
 * Prometheus text format writers. The format is line-based and its reader is
 * strict: one bad byte in a label value or a malformed number fails the whole
 * scrape, not one series. So values are escaped and made valid UTF-8 here, and
 * names, which come from our own code, are checked with assertions.
 *
 * Numbers go through snprintf and strtod, which follow LC_NUMERIC: cuepoint
 * never calls setlocale, so the decimal point is always '.'.
 */
#include "cuepoint/metrics.h"

#include "cuepoint/err.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]*. Hand-written rather than isalpha(): that one
 * follows the locale, the format does not. */
static bool metric_name_ok(const char *s)
{
    if (s == NULL || !(is_alpha_(s[0]) || s[0] == ':')) return false;
    for (const char *p = s + 1; *p; p++)
        if (!(is_alpha_(*p) || is_digit(*p) || *p == ':')) return false;
    return true;
}

/* [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved for Prometheus). */
static bool label_name_ok(const char *s)
{
    if (s == NULL || !is_alpha_(s[0]) || (s[0] == '_' && s[1] == '_')) return false;
    for (const char *p = s + 1; *p; p++)
        if (!(is_alpha_(*p) || is_digit(*p))) return false;
    return true;
}

static bool type_ok(const char *t)
{
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (t && strcmp(t, types[i]) == 0) return true;
    return false;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 0 when the
 * bytes there are not one: overlong forms, surrogates and code points past
 * U+10FFFF included, since Prometheus's reader rejects them too. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    unsigned c = s[0];
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n) return 0;
    uint32_t cp = c & (0x3fu >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* Appends s (n bytes) with backslash and newline escaped, and the double quote
 * too when `quote` (label values; HELP text leaves it alone). Runs of bytes
 * that need nothing are copied whole. */
static int append_escaped(cue_buf *b, const char *s, size_t n, bool quote)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n) {
            unsigned char c = u[i];
            if (c == '\\' || c == '\n' || (quote && c == '"')) break;
            size_t k = utf8_seq_len(u + i, n - i);
            if (k == 0) break;
            i += k;
        }
        if (i > start && cue_buf_append(b, s + start, i - start) != 0) return CUE_ENOMEM;
        if (i == n) break;
        const char *esc = u[i] == '\\'   ? "\\\\"
                          : u[i] == '\n' ? "\\n"
                          : u[i] == '"'  ? "\\\""
                                         : "\xef\xbf\xbd"; /* U+FFFD for a byte that is not UTF-8 */
        if (cue_buf_append_str(b, esc) != 0) return CUE_ENOMEM;
        i++;
    }
    return 0;
}

/* A sample value or a bucket bound, as Prometheus (Go's ParseFloat) reads it. */
static int append_value(cue_buf *b, double v)
{
    if (isnan(v)) return cue_buf_append_str(b, "NaN");
    if (isinf(v)) return cue_buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
    /* Counters and most gauges are whole numbers: no exponent, no ".0". The
     * range check comes first, since converting a double outside int64's range
     * is undefined. */
    if (v >= -9223372036854775808.0 && v < 9223372036854775808.0 && (double)(int64_t)v == v)
        return cue_buf_append_i64(b, (int64_t)v);
    /* The shortest of 15, 16 or 17 significant digits that reads back as the
     * same double: 0.1 stays "0.1", where %.17g would print 0.10000000000000001. */
    char tmp[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    return cue_buf_append_str(b, tmp);
}

static int append_u64(cue_buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    return cue_buf_append(b, tmp, (size_t)n);
}

/* "name<suffix>{labels,le="bound"} ", the part of a sample line before its value. */
static int append_head(cue_buf *b, const char *name, const char *suffix, const char *labels,
                       const double *le)
{
    bool has_labels = labels != NULL && labels[0] != '\0';
    int rc = cue_buf_append_str(b, name);
    if (rc == 0) rc = cue_buf_append_str(b, suffix);
    if (rc == 0 && (has_labels || le)) {
        rc = cue_buf_append_char(b, '{');
        if (rc == 0 && has_labels) rc = cue_buf_append_str(b, labels);
        if (rc == 0 && le) {
            rc = cue_buf_append_str(b, has_labels ? ",le=\"" : "le=\"");
            if (rc == 0) rc = append_value(b, *le);
            if (rc == 0) rc = cue_buf_append_char(b, '"');
        }
        if (rc == 0) rc = cue_buf_append_char(b, '}');
    }
    if (rc == 0) rc = cue_buf_append_char(b, ' ');
    return rc;
}

int cue_prom_family(cue_buf *b, const char *name, const char *type, const char *help)
{
    CUE_ASSERT(metric_name_ok(name));
    CUE_ASSERT(type_ok(type));
    int rc = cue_buf_printf(b, "# HELP %s ", name);
    if (rc == 0) rc = append_escaped(b, help ? help : "", help ? strlen(help) : 0, false);
    if (rc == 0) rc = cue_buf_printf(b, "\n# TYPE %s %s\n", name, type);
    return rc == 0 ? 0 : CUE_ENOMEM;
}

int cue_prom_sample(cue_buf *b, const char *name, const char *labels, double value)
{
    CUE_ASSERT(metric_name_ok(name));
    int rc = append_head(b, name, "", labels, NULL);
    if (rc == 0) rc = append_value(b, value);
    if (rc == 0) rc = cue_buf_append_char(b, '\n');
    return rc;
}

int cue_prom_label(cue_buf *b, const char *key, const char *value, size_t value_len)
{
    CUE_ASSERT(label_name_ok(key));
    int rc = b->len > 0 ? cue_buf_append_char(b, ',') : 0;
    if (rc == 0) rc = cue_buf_append_str(b, key);
    if (rc == 0) rc = cue_buf_append(b, "=\"", 2);
    if (rc == 0) rc = append_escaped(b, value, value_len, true);
    if (rc == 0) rc = cue_buf_append_char(b, '"');
    return rc;
}

void cue_histogram_init(cue_histogram *h, const double *bounds, size_t n)
{
    CUE_ASSERT(n <= CUE_HISTOGRAM_BOUNDS_MAX);
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < n; i++) {
        CUE_ASSERT(isfinite(bounds[i]));
        CUE_ASSERT(i == 0 || bounds[i] > bounds[i - 1]);
        h->bounds[i] = bounds[i];
    }
    h->n_bounds = n;
}

void cue_histogram_observe(cue_histogram *h, double v)
{
    /* A linear scan: with at most 16 bounds it is as fast as a binary search
     * and has no branch to get wrong. NaN fails every comparison and lands in
     * the +Inf bucket, as in Prometheus's own clients. */
    size_t i = 0;
    while (i < h->n_bounds && !(v <= h->bounds[i]))
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

int cue_prom_histogram(cue_buf *b, const char *name, const char *labels, const cue_histogram *h)
{
    CUE_ASSERT(metric_name_ok(name));
    CUE_ASSERT(h->n_bounds <= CUE_HISTOGRAM_BOUNDS_MAX);
    static const double inf = INFINITY;
    uint64_t cum = 0;
    int rc = 0;
    for (size_t i = 0; i <= h->n_bounds && rc == 0; i++) {
        cum += h->counts[i];
        rc = append_head(b, name, "_bucket", labels, i < h->n_bounds ? &h->bounds[i] : &inf);
        if (rc == 0) rc = append_u64(b, cum);
        if (rc == 0) rc = cue_buf_append_char(b, '\n');
    }
    /* The +Inf bucket and _count are the same number told twice; a reader
     * that sees them differ discards the series. */
    CUE_ASSERT(rc != 0 || cum == h->count);
    if (rc == 0) rc = append_head(b, name, "_sum", labels, NULL);
    if (rc == 0) rc = append_value(b, h->sum);
    if (rc == 0) rc = cue_buf_append_char(b, '\n');
    if (rc == 0) rc = append_head(b, name, "_count", labels, NULL);
    if (rc == 0) rc = append_u64(b, h->count);
    if (rc == 0) rc = cue_buf_append_char(b, '\n');
    return rc;
}
