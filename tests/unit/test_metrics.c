/* The Prometheus writers: exact text for a counter, a gauge with labels that
 * need escaping, a histogram and a table of numbers; and a strict validator
 * of the exposition format (written here, from the format's description)
 * that all of it, and a few thousand random series, must pass. The validator
 * is itself checked against a table of bad expositions. */
#include "cuepoint/metrics.h"

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* Checks the buffer holds exactly `want`, printing both when not. */
static void expect_text(const cue_buf *b, const char *want, const char *what)
{
    cr_expect(b->len == strlen(want) && memcmp(b->data, want, b->len) == 0,
              "%s:\n--- got ---\n%.*s\n--- expected ---\n%s", what, (int)b->len, b->data, want);
}

/* ---- the validator -------------------------------------------------------
 *
 * Checks, line by line:
 * - "# HELP name text" and "# TYPE name type" with a valid metric name, the
 *   help escaped with \\ and \n only, a known type; each once per family, both
 *   before the family's first sample; no other comments, no empty lines;
 * - samples "name{label="value",...} value" (labels optional) with valid
 *   metric and label names, no duplicate label, values escaped with \\, \"
 *   and \n only, and the value a decimal float or +Inf, -Inf, NaN;
 * - each sample belongs to a family (for histograms name_bucket, name_sum,
 *   name_count) whose lines form one group;
 * - per histogram series (its labels without le): bounds ascending, counts
 *   cumulative integers, the last bucket le="+Inf" and equal to name_count,
 *   and a name_sum. */

enum { V_FAMILIES = 32, V_SERIES = 64, V_TEXT = 512 };

typedef struct vfamily {
    char name[V_TEXT];
    char type[16];
    bool help, typed, sampled, closed;
} vfamily;

typedef struct vseries {
    int family;
    char labels[V_TEXT]; /* without le */
    double last_le;
    double last_count;
    bool any_bucket, inf, sum, count;
} vseries;

typedef struct validator {
    vfamily fam[V_FAMILIES];
    size_t n_fam;
    vseries ser[V_SERIES];
    size_t n_ser;
    int current; /* the family of the lines just read, -1 before any */
    int line;
    char why[V_TEXT + 32];
} validator;

static bool fail(validator *v, const char *fmt, const char *arg)
{
    char msg[V_TEXT];
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(v->why, sizeof v->why, "line %d: %s", v->line, msg);
    return false;
}

static bool v_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool v_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the metric name at s ([a-zA-Z_:][a-zA-Z0-9_:]*), 0 if none. */
static size_t metric_name_len(const char *s)
{
    size_t n = 0;
    if (!(v_alpha(s[0]) || s[0] == ':')) return 0;
    while (v_alpha(s[n]) || v_digit(s[n]) || s[n] == ':')
        n++;
    return n;
}

/* Length of the label name at s ([a-zA-Z_][a-zA-Z0-9_]*), 0 if none. */
static size_t label_name_len(const char *s)
{
    size_t n = 0;
    if (!v_alpha(s[0])) return 0;
    while (v_alpha(s[n]) || v_digit(s[n]))
        n++;
    return n;
}

/* A sample value: +Inf, -Inf, NaN or [-+]?digits[.digits][(e|E)[-+]?digits]. */
static bool parse_value(const char *s, double *out)
{
    if (strcmp(s, "+Inf") == 0) return *out = INFINITY, true;
    if (strcmp(s, "-Inf") == 0) return *out = -INFINITY, true;
    if (strcmp(s, "NaN") == 0) return *out = NAN, true;
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    size_t digits = 0;
    for (; v_digit(*p); p++)
        digits++;
    if (*p == '.')
        for (p++; v_digit(*p); p++)
            digits++;
    if (digits == 0) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        if (!v_digit(*p)) return false;
        while (v_digit(*p))
            p++;
    }
    if (*p != '\0') return false;
    *out = strtod(s, NULL);
    return true;
}

static int find_family(const validator *v, const char *name, size_t len)
{
    for (size_t i = 0; i < v->n_fam; i++)
        if (strlen(v->fam[i].name) == len && memcmp(v->fam[i].name, name, len) == 0) return (int)i;
    return -1;
}

/* "# HELP name text" or "# TYPE name type". */
static bool check_comment(validator *v, const char *line)
{
    bool help = strncmp(line, "# HELP ", 7) == 0;
    if (!help && strncmp(line, "# TYPE ", 7) != 0)
        return fail(v, "a comment other than HELP or TYPE: %s", line);
    const char *name = line + 7;
    size_t n = metric_name_len(name);
    if (n == 0 || n >= V_TEXT || name[n] != ' ') return fail(v, "bad metric name in %s", line);
    int f = find_family(v, name, n);
    if (f < 0) {
        if (v->n_fam == V_FAMILIES) return fail(v, "%s", "too many families for the validator");
        f = (int)v->n_fam++;
        memcpy(v->fam[f].name, name, n);
    }
    vfamily *fam = &v->fam[f];
    if (fam->sampled || fam->closed) return fail(v, "HELP or TYPE after samples: %s", line);
    const char *rest = name + n + 1;
    if (help) {
        if (fam->help) return fail(v, "a second HELP for %s", fam->name);
        for (const char *p = rest; *p; p++)
            if (*p == '\\' && (*++p != '\\' && *p != 'n'))
                return fail(v, "bad escape in HELP: %s", line);
        fam->help = true;
    } else {
        static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
        bool known = false;
        for (size_t i = 0; i < COUNT(types); i++)
            known = known || strcmp(rest, types[i]) == 0;
        if (!known) return fail(v, "unknown type in %s", line);
        if (fam->typed) return fail(v, "a second TYPE for %s", fam->name);
        snprintf(fam->type, sizeof fam->type, "%s", rest);
        fam->typed = true;
    }
    return true;
}

/* Reads {label="value",...} at *p, leaving *p after the '}', the labels other
 * than le (as written) in `rest` and le's value in `le` ("" if absent). */
static bool parse_labels(validator *v, const char **p, char *rest, char *le)
{
    char names[16][V_TEXT];
    size_t n_names = 0, rest_len = 0;
    const char *s = *p + 1;
    rest[0] = le[0] = '\0';
    for (;;) {
        const char *start = s;
        size_t n = label_name_len(s);
        if (n == 0 || n >= V_TEXT) return fail(v, "bad label name at %s", s);
        for (size_t i = 0; i < n_names; i++)
            if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
                return fail(v, "duplicate label at %s", s);
        if (n_names == COUNT(names)) return fail(v, "%s", "too many labels");
        memcpy(names[n_names], s, n);
        names[n_names++][n] = '\0';
        bool is_le = n == 2 && memcmp(s, "le", 2) == 0;
        s += n;
        if (s[0] != '=' || s[1] != '"') return fail(v, "expected =\" at %s", s);
        s += 2;
        char value[V_TEXT];
        size_t vlen = 0;
        for (; *s != '"'; s++) {
            if (*s == '\0' || *s == '\n') return fail(v, "%s", "unterminated label value");
            if (*s == '\\' && s[1] != '\\' && s[1] != '"' && s[1] != 'n')
                return fail(v, "bad escape in label value at %s", s);
            if (vlen + 2 >= sizeof value) return fail(v, "%s", "label value too long");
            if (*s == '\\') value[vlen++] = *s++;
            value[vlen++] = *s;
        }
        value[vlen] = '\0';
        s++;
        if (is_le) {
            snprintf(le, V_TEXT, "%s", value);
        } else {
            size_t len = (size_t)(s - start);
            if (rest_len + len + 2 >= V_TEXT) return fail(v, "%s", "labels too long");
            if (rest_len) rest[rest_len++] = ',';
            memcpy(rest + rest_len, start, len);
            rest[rest_len += len] = '\0';
        }
        if (*s == '}') break;
        if (*s != ',' || s[1] == '}') return fail(v, "expected , or } at %s", s);
        s++;
    }
    *p = s + 1;
    return true;
}

static vseries *find_series(validator *v, int family, const char *labels)
{
    for (size_t i = 0; i < v->n_ser; i++)
        if (v->ser[i].family == family && strcmp(v->ser[i].labels, labels) == 0) return &v->ser[i];
    if (v->n_ser == V_SERIES) return NULL;
    vseries *s = &v->ser[v->n_ser++];
    memset(s, 0, sizeof *s);
    s->family = family;
    s->last_le = -INFINITY;
    snprintf(s->labels, sizeof s->labels, "%s", labels);
    return s;
}

/* The family a sample name belongs to: itself, or a histogram's suffixed name. */
static int sample_family(const validator *v, const char *name, size_t n, const char **suffix)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    *suffix = "";
    int f = find_family(v, name, n);
    if (f >= 0 && strcmp(v->fam[f].type, "histogram") != 0) return f;
    for (size_t i = 0; i < COUNT(suffixes); i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && memcmp(name + n - k, suffixes[i], k) == 0) {
            f = find_family(v, name, n - k);
            if (f >= 0 && strcmp(v->fam[f].type, "histogram") == 0) {
                *suffix = suffixes[i];
                return f;
            }
        }
    }
    return -1;
}

static bool check_histogram(validator *v, int f, const char *suffix, const char *labels,
                            const char *le_text, double value)
{
    vseries *s = find_series(v, f, labels);
    if (s == NULL) return fail(v, "%s", "too many series for the validator");
    if (strcmp(suffix, "_bucket") != 0) {
        if (le_text[0]) return fail(v, "le on a %s sample", suffix);
        bool *seen = strcmp(suffix, "_sum") == 0 ? &s->sum : &s->count;
        if (*seen) return fail(v, "a second %s in one series", suffix);
        *seen = true;
        if (seen == &s->count && (!s->inf || value != s->last_count))
            return fail(v, "%s", "_count differs from the +Inf bucket (or comes before it)");
        return true;
    }
    double le;
    if (!parse_value(le_text, &le) || isnan(le)) return fail(v, "bad or missing le: %s", le_text);
    if (s->inf || s->count) return fail(v, "%s", "a bucket after le=\"+Inf\" or _count");
    if (s->any_bucket && !(le > s->last_le)) return fail(v, "le %s not ascending", le_text);
    if (value != floor(value) || value < 0) return fail(v, "%s", "a bucket count not a count");
    if (s->any_bucket && value < s->last_count) return fail(v, "%s", "buckets not cumulative");
    s->any_bucket = true;
    s->last_le = le;
    s->last_count = value;
    s->inf = isinf(le) && le > 0;
    if (isinf(le) && strcmp(le_text, "+Inf") != 0) return fail(v, "le spelled %s", le_text);
    return true;
}

static bool check_sample(validator *v, const char *line)
{
    size_t n = metric_name_len(line);
    if (n == 0 || n >= V_TEXT) return fail(v, "bad metric name in %.200s", line);
    const char *suffix;
    int f = sample_family(v, line, n, &suffix);
    if (f < 0) return fail(v, "a sample of no family: %.200s", line);
    vfamily *fam = &v->fam[f];
    if (!fam->help || !fam->typed) return fail(v, "a sample before HELP and TYPE: %.200s", line);
    if (fam->closed) return fail(v, "a family's lines not together: %.200s", line);
    const char *p = line + n;
    char labels[V_TEXT], le[V_TEXT];
    labels[0] = le[0] = '\0';
    if (*p == '{' && !parse_labels(v, &p, labels, le)) return false;
    if (*p != ' ') return fail(v, "expected one space before the value in %.200s", line);
    double value;
    if (!parse_value(p + 1, &value)) return fail(v, "bad value in %.200s", line);
    fam->sampled = true;
    if (strcmp(fam->type, "histogram") == 0)
        return check_histogram(v, f, suffix, labels, le, value);
    return true;
}

/* True if `text` is a valid exposition; otherwise v->why says where and why. */
static bool validate(validator *v, const char *text, size_t len)
{
    memset(v, 0, sizeof *v);
    v->current = -1;
    if (len == 0) return true;
    if (text[len - 1] != '\n') return fail(v, "%s", "the text does not end with a newline");
    for (size_t at = 0; at < len;) {
        const char *end = memchr(text + at, '\n', len - at);
        char line[2 * V_TEXT];
        size_t n = (size_t)(end - (text + at));
        v->line++;
        if (n == 0) return fail(v, "%s", "an empty line");
        if (n >= sizeof line) return fail(v, "%s", "a line too long for the validator");
        memcpy(line, text + at, n);
        line[n] = '\0';
        if (memchr(line, '\0', n)) return fail(v, "%s", "a NUL byte");
        at += n + 1;
        bool ok = line[0] == '#' ? check_comment(v, line) : check_sample(v, line);
        if (!ok) return false;
        /* Which family this line was about; leaving one closes it. */
        const char *name = line[0] == '#' ? line + 7 : line;
        const char *suffix;
        int f = sample_family(v, name, metric_name_len(name), &suffix);
        if (f < 0) f = find_family(v, name, metric_name_len(name));
        if (v->current >= 0 && f != v->current) v->fam[v->current].closed = true;
        v->current = f;
    }
    for (size_t i = 0; i < v->n_ser; i++)
        if (!v->ser[i].inf || !v->ser[i].sum || !v->ser[i].count)
            return fail(v, "histogram series {%s} lacks +Inf, _sum or _count", v->ser[i].labels);
    return true;
}

static void expect_valid(const cue_buf *b, const char *what)
{
    validator *v = malloc(sizeof *v);
    cr_assert_not_null(v);
    cr_expect(validate(v, b->data, b->len), "%s: %s\n%.*s", what, v->why, (int)b->len, b->data);
    free(v);
}

/* ---- exact text ---------------------------------------------------------- */

Test(metrics, counter)
{
    cue_buf b;
    cue_buf_init(&b, 0);
    cr_assert_eq(cue_prom_family(&b, "cuepoint_events_total", "counter", "Events read."), 0);
    cr_assert_eq(cue_prom_sample(&b, "cuepoint_events_total", NULL, 12345), 0);
    cr_assert_eq(cue_prom_sample(&b, "cuepoint_events_total", "", 0), 0);
    expect_text(&b,
                "# HELP cuepoint_events_total Events read.\n"
                "# TYPE cuepoint_events_total counter\n"
                "cuepoint_events_total 12345\n"
                "cuepoint_events_total 0\n",
                "counter");
    cue_buf_deinit(&b);
}

Test(metrics, gauge_with_escaped_labels)
{
    cue_buf b, labels;
    cue_buf_init(&b, 0);
    cue_buf_init(&labels, 0);
    static const char topic[] = "a\\b\"c\nd\xff\xc3\xa9";
    cr_assert_eq(cue_prom_label(&labels, "reason", "not_json", 8), 0);
    cr_assert_eq(cue_prom_label(&labels, "topic", topic, sizeof topic - 1), 0);
    cr_assert_eq(cue_prom_label(&labels, "empty", "", 0), 0);
    expect_text(&labels,
                "reason=\"not_json\",topic=\"a\\\\b\\\"c\\nd\xef\xbf\xbd\xc3\xa9\",empty=\"\"",
                "labels (backslash, quote, newline escaped; a bad byte as U+FFFD)");

    cr_assert_eq(cue_prom_family(&b, "cuepoint_lag", "gauge", "Lag \"now\"\\behind\nthe head."), 0);
    cr_assert_eq(cue_prom_sample(&b, "cuepoint_lag", labels.data, -2.5), 0);
    expect_text(&b,
                "# HELP cuepoint_lag Lag \"now\"\\\\behind\\nthe head.\n"
                "# TYPE cuepoint_lag gauge\n"
                "cuepoint_lag{reason=\"not_json\",topic=\"a\\\\b\\\"c\\nd\xef\xbf\xbd\xc3\xa9\","
                "empty=\"\"} -2.5\n",
                "gauge");
    expect_valid(&b, "gauge");
    cue_buf_deinit(&labels);
    cue_buf_deinit(&b);
}

Test(metrics, histogram)
{
    static const double bounds[] = {0.25, 0.5, 1, 2.5};
    static const double seen[] = {0.125, 0.25, 0.375, 0.75, 1, 2, 3.625};
    cue_histogram h;
    cue_histogram_init(&h, bounds, COUNT(bounds));
    for (size_t i = 0; i < COUNT(seen); i++)
        cue_histogram_observe(&h, seen[i]);
    /* A bound is inclusive: 0.25 and 1 land in the buckets they bound. */
    static const uint64_t counts[] = {2, 1, 2, 1, 1};
    for (size_t i = 0; i < COUNT(counts); i++)
        cr_expect_eq(h.counts[i], counts[i], "bucket %zu: %llu", i,
                     (unsigned long long)h.counts[i]);

    cue_buf b;
    cue_buf_init(&b, 0);
    cue_prom_family(&b, "cuepoint_commit_seconds", "histogram", "Commit time.");
    cr_assert_eq(cue_prom_histogram(&b, "cuepoint_commit_seconds", "task=\"0\"", &h), 0);
    cue_histogram empty;
    cue_histogram_init(&empty, bounds, 1);
    cr_assert_eq(cue_prom_histogram(&b, "cuepoint_commit_seconds", NULL, &empty), 0);
    expect_text(&b,
                "# HELP cuepoint_commit_seconds Commit time.\n"
                "# TYPE cuepoint_commit_seconds histogram\n"
                "cuepoint_commit_seconds_bucket{task=\"0\",le=\"0.25\"} 2\n"
                "cuepoint_commit_seconds_bucket{task=\"0\",le=\"0.5\"} 3\n"
                "cuepoint_commit_seconds_bucket{task=\"0\",le=\"1\"} 5\n"
                "cuepoint_commit_seconds_bucket{task=\"0\",le=\"2.5\"} 6\n"
                "cuepoint_commit_seconds_bucket{task=\"0\",le=\"+Inf\"} 7\n"
                "cuepoint_commit_seconds_sum{task=\"0\"} 8.125\n"
                "cuepoint_commit_seconds_count{task=\"0\"} 7\n"
                "cuepoint_commit_seconds_bucket{le=\"0.25\"} 0\n"
                "cuepoint_commit_seconds_bucket{le=\"+Inf\"} 0\n"
                "cuepoint_commit_seconds_sum 0\n"
                "cuepoint_commit_seconds_count 0\n",
                "histogram");
    expect_valid(&b, "histogram");

    /* NaN and values past the last bound go to +Inf. */
    cue_histogram_observe(&empty, NAN);
    cue_histogram_observe(&empty, 1e300);
    cr_expect_eq(empty.counts[1], 2);
    cr_expect_eq(empty.count, 2);
    cue_buf_deinit(&b);
}

Test(metrics, numbers_table)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {12345, "12345"},
        {-7, "-7"},
        {1772438400123.0, "1772438400123"},
        {9007199254740992.0, "9007199254740992"},
        {-9223372036854775808.0, "-9223372036854775808"},
        {9223372036854775808.0, "9.223372036854776e+18"}, /* 2^63: past int64 */
        {1e20, "1e+20"},
        {0.1, "0.1"},
        {0.25, "0.25"},
        {-2.5, "-2.5"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.5e-7, "1.5e-07"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    cue_buf b;
    cue_buf_init(&b, 0);
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_buf_reset(&b);
        cr_assert_eq(cue_prom_sample(&b, "x", NULL, cases[i].v), 0);
        char want[64];
        snprintf(want, sizeof want, "x %s\n", cases[i].text);
        expect_text(&b, want, cases[i].text);
        /* Whatever the form, it reads back as the same double. */
        double back = strtod(b.data + 2, NULL);
        cr_expect(isnan(cases[i].v) ? isnan(back) : back == cases[i].v, "%s reads back as %.17g",
                  cases[i].text, back);
    }
    cue_buf_deinit(&b);
}

/* ---- the validator on our output and on bad text ------------------------- */

Test(metrics, random_series_pass_the_validator)
{
    /* Random label bytes (every escape, bad UTF-8, NUL excluded: it ends the
     * validator's lines) and random doubles of every magnitude. Fixed seed. */
    srand(20240611);
    cue_buf b, labels;
    cue_buf_init(&b, 0);
    cue_buf_init(&labels, 0);
    for (int round = 0; round < 200; round++) {
        cue_buf_reset(&b);
        cue_prom_family(&b, "g", "gauge", "Random\\ values\nhere.");
        for (int s = 0; s < 10; s++) {
            char value[24];
            size_t n = (size_t)(rand() % (int)sizeof value);
            for (size_t i = 0; i < n; i++)
                value[i] = (char)(1 + rand() % 255);
            cue_buf_reset(&labels);
            cue_prom_label(&labels, "v", value, n);
            cue_prom_label(&labels, "i", (char[]){(char)('0' + s)}, 1);
            uint64_t bits = (uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ (uint64_t)rand();
            double d;
            memcpy(&d, &bits, sizeof d);
            cr_assert_eq(cue_prom_sample(&b, "g", labels.data, d), 0);
        }
        static const double bounds[] = {-1, 0, 1e-9, 3, 1e12};
        cue_histogram h;
        cue_histogram_init(&h, bounds, COUNT(bounds));
        for (int i = 0; i < 50; i++)
            cue_histogram_observe(&h, (rand() % 2000 - 1000) / 7.0);
        cue_prom_family(&b, "h", "histogram", "H.");
        cue_prom_histogram(&b, "h", "a=\"1\"", &h);
        cue_prom_histogram(&b, "h", "a=\"2\"", &h);
        validator *v = malloc(sizeof *v);
        bool ok = validate(v, b.data, b.len);
        cr_assert(ok, "round %d: %s\n%s", round, v->why, b.data);
        free(v);
    }
    cue_buf_deinit(&labels);
    cue_buf_deinit(&b);
}

Test(metrics, the_validator_rejects_bad_text)
{
    static const char fam[] = "# HELP x X.\n# TYPE x counter\n";
    static const char hfam[] = "# HELP h H.\n# TYPE h histogram\n";
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"x 1\n", "a sample of no family"},
        {"# HELP x X.\nx 1\n", "before HELP and TYPE"},
        {"# TYPE x counter\nx 1\n", "before HELP and TYPE"},
        {"# HELP x X.\n# TYPE x counter\nx 1\n# HELP x X.\n", "after samples"},
        {"# HELP x X.\n# TYPE x counter\n# TYPE x gauge\n", "a second TYPE"},
        {"# HELP x X.\n# TYPE x countr\n", "unknown type"},
        {"# HELP x a\\tb\n", "bad escape in HELP"},
        {"# hello\n", "a comment other than"},
        {"# HELP 1x X.\n", "bad metric name"},
        {"%sx 1", "does not end with a newline"},
        {"%sx 1\n\n", "an empty line"},
        {"%sx  1\n", "bad value"},
        {"%sx 1.2.3\n", "bad value"},
        {"%sx inf\n", "bad value"},
        {"%sx 0x10\n", "bad value"},
        {"%sx 1 2\n", "bad value"},
        {"%sx{} 1\n", "bad label name"},
        {"%sx{a=\"1\",} 1\n", "expected , or }"},
        {"%sx{a=\"1\" 1\n", "expected , or }"},
        {"%sx{a=1} 1\n", "expected =\""},
        {"%sx{1a=\"1\"} 1\n", "bad label name"},
        {"%sx{a=\"1\",a=\"2\"} 1\n", "duplicate label"},
        {"%sx{a=\"\\t\"} 1\n", "bad escape in label value"},
        {"%sx{a=\"open} 1\n", "unterminated"},
        {"%sx{a=\"1\"}1\n", "expected one space"},
        {"%sx 1\n# HELP y Y.\n# TYPE y gauge\ny 1\nx 2\n", "not together"},
        {"%sh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n",
         "lacks +Inf, _sum or _count"},
        {"%sh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n", "not ascending"},
        {"%sh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n", "not cumulative"},
        {"%sh_bucket{le=\"1\"} 1.5\n", "not a count"},
        {"%sh_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 2\n", "_count differs"},
        {"%sh_bucket{le=\"inf\"} 3\n", "bad or missing le"},
        {"%sh_bucket 3\n", "bad or missing le"},
        {"%sh_bucket{le=\"+Inf\"} 3\nh_bucket{le=\"5\"} 3\n", "a bucket after"},
        {"%sh 3\n", "a sample of no family"},
    };
    validator *v = malloc(sizeof *v);
    for (size_t i = 0; i < COUNT(cases); i++) {
        char text[512];
        bool hist = strstr(cases[i].text, "%sh") != NULL;
        /* Cases that start with %s get a valid family header first. */
        if (strncmp(cases[i].text, "%s", 2) == 0)
            snprintf(text, sizeof text, "%s%s", hist ? hfam : fam, cases[i].text + 2);
        else
            snprintf(text, sizeof text, "%s", cases[i].text);
        bool ok = validate(v, text, strlen(text));
        cr_expect(!ok, "case %zu passed:\n%s", i, text);
        cr_expect(ok || strstr(v->why, cases[i].why) != NULL, "case %zu: '%s', expected '%s'", i,
                  v->why, cases[i].why);
    }
    /* And the good counterparts pass. */
    static const char good[] = "# HELP x X.\n# TYPE x counter\nx{a=\"\\\\\\\"\\n\"} 1e+20\n"
                               "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                               "h_bucket{le=\"+Inf\"} 2\nh_sum -Inf\nh_count 2\n";
    cr_expect(validate(v, good, strlen(good)), "the good text: %s", v->why);
    free(v);
}

/* ---- build and process --------------------------------------------------- */

Test(metrics, build_info)
{
    cue_buf b;
    cue_buf_init(&b, 0);
    cr_assert_eq(cue_prom_build_info(&b, "0.1.0", "dd35c200b37a"), 0);
    expect_text(&b,
                "# HELP cuepoint_build_info Always 1; the labels name the version and the git "
                "commit built.\n"
                "# TYPE cuepoint_build_info gauge\n"
                "cuepoint_build_info{version=\"0.1.0\",commit=\"dd35c200b37a\"} 1\n",
                "build info");
    expect_valid(&b, "build info");
    cue_buf_reset(&b);
    cr_assert_eq(cue_prom_build_info(&b, "1\"x", "unknown"), 0);
    cr_expect(strstr(b.data, "version=\"1\\\"x\",commit=\"unknown\"") != NULL, "%s", b.data);
    expect_valid(&b, "build info with a quote");
    cue_buf_deinit(&b);
}

/* What this very process reads about itself: its own pid's figures, which
 * the test can check against what it does (opening files, allocating). */
Test(metrics, process_reads_this_process)
{
    cue_process_stats s0, s1;
    cr_assert_eq(cue_process_stats_read(&s0), 0);
    FILE *extra[3];
    for (size_t i = 0; i < COUNT(extra); i++)
        cr_assert_not_null(extra[i] = fopen("/proc/self/stat", "r"));
    /* Touch 64 MiB so the resident size must grow by at least most of it. */
    size_t big = 64u << 20;
    char *mem = malloc(big);
    cr_assert_not_null(mem);
    memset(mem, 1, big);
    /* Burn a little CPU so the counter cannot go backwards unnoticed. */
    volatile double x = 0;
    for (int i = 0; i < 20 * 1000 * 1000; i++)
        x += i * 0.5;
    cr_assert_eq(cue_process_stats_read(&s1), 0);
    cr_expect_eq(s1.open_fds, s0.open_fds + COUNT(extra), "open fds %llu then %llu",
                 (unsigned long long)s0.open_fds, (unsigned long long)s1.open_fds);
    cr_expect(s1.resident_bytes >= s0.resident_bytes + big / 2, "rss %llu then %llu",
              (unsigned long long)s0.resident_bytes, (unsigned long long)s1.resident_bytes);
    cr_expect(s1.virtual_bytes >= s1.resident_bytes);
    cr_expect(s1.cpu_seconds >= s0.cpu_seconds && s1.cpu_seconds > 0);
    cr_expect(s1.max_fds >= s1.open_fds);
    double now = (double)time(NULL);
    cr_expect(s1.start_time_seconds > now - 3600 && s1.start_time_seconds <= now + 1,
              "start time %.0f, now %.0f", s1.start_time_seconds, now);
    cr_expect_eq(s1.start_time_seconds, s0.start_time_seconds);
    free(mem);
    for (size_t i = 0; i < COUNT(extra); i++)
        fclose(extra[i]);

    cue_buf b;
    cue_buf_init(&b, 0);
    cr_assert_eq(cue_prom_process(&b, &s1), 0);
    expect_valid(&b, "process families");
    static const char *const names[] = {"process_cpu_seconds_total",
                                        "process_resident_memory_bytes",
                                        "process_virtual_memory_bytes",
                                        "process_open_fds",
                                        "process_max_fds",
                                        "process_start_time_seconds"};
    for (size_t i = 0; i < COUNT(names); i++) {
        char line[128];
        snprintf(line, sizeof line, "\n%s ", names[i]);
        cr_expect(strstr(b.data, line) != NULL, "no sample of %s in\n%s", names[i], b.data);
    }
    char want[64];
    snprintf(want, sizeof want, "\nprocess_open_fds %llu\n", (unsigned long long)s1.open_fds);
    cr_expect(strstr(b.data, want) != NULL, "%s", b.data);
    cue_buf_deinit(&b);
}
