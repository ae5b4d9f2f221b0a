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

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

/* ---- build and process ------------------------------------------------- */

int cue_prom_build_info(cue_buf *b, const char *version, const char *commit)
{
    int rc = cue_prom_family(b, "cuepoint_build_info", "gauge",
                             "Always 1; the labels name the version and the git commit built.");
    /* The label list is written in place: two labels need no scratch buffer. */
    if (rc == 0) rc = cue_buf_append_str(b, "cuepoint_build_info{version=\"");
    if (rc == 0) rc = append_escaped(b, version, strlen(version), true);
    if (rc == 0) rc = cue_buf_append_str(b, "\",commit=\"");
    if (rc == 0) rc = append_escaped(b, commit, strlen(commit), true);
    if (rc == 0) rc = cue_buf_append_str(b, "\"} 1\n");
    return rc == 0 ? 0 : CUE_ENOMEM;
}

/* Reads a small /proc file whole into buf (NUL-terminated); its length or -1. */
static long read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

/* /proc/self/stat after the command name, which may itself hold spaces and
 * parentheses, so the fields start after the last ')'. Fields counted from
 * 3 (state) as proc(5) numbers them: utime 14, stime 15, starttime 22,
 * vsize 23, rss 24. */
static int parse_self_stat(const char *text, cue_process_stats *out, uint64_t *start_ticks)
{
    const char *p = strrchr(text, ')');
    if (p == NULL) return CUE_EIO;
    p++;
    uint64_t f[25] = {0};
    for (int field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0') return CUE_EIO;
        char *end;
        f[field] = field == 3 ? 0 : strtoull(p, &end, 10);
        while (*p && *p != ' ')
            p++;
    }
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (hz <= 0 || page <= 0) return CUE_EIO;
    out->cpu_seconds = (double)(f[14] + f[15]) / (double)hz;
    *start_ticks = f[22];
    out->virtual_bytes = f[23];
    /* rss is signed in the kernel; a negative one reads as a huge number. */
    out->resident_bytes = f[24] > UINT64_MAX / (uint64_t)page ? 0 : f[24] * (uint64_t)page;
    return 0;
}

int cue_process_stats_read(cue_process_stats *out)
{
    memset(out, 0, sizeof *out);
    char buf[4096];
    uint64_t start_ticks = 0;
    if (read_small("/proc/self/stat", buf, sizeof buf) < 0 ||
        parse_self_stat(buf, out, &start_ticks) != 0)
        goto fail;
    /* The boot time: /proc/stat is a few kB with many CPUs, so read it line
     * by line rather than whole. */
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) goto fail;
    unsigned long long btime = 0;
    while (fgets(buf, sizeof buf, f))
        if (sscanf(buf, "btime %llu", &btime) == 1) break;
    fclose(f);
    if (btime == 0) goto fail;
    out->start_time_seconds = (double)btime + (double)start_ticks / (double)sysconf(_SC_CLK_TCK);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) goto fail;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') out->open_fds++;
    closedir(d);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) out->max_fds = (uint64_t)rl.rlim_cur;
    return 0;
fail:
    memset(out, 0, sizeof *out);
    return CUE_EIO;
}

int cue_prom_process(cue_buf *b, const cue_process_stats *s)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"process_cpu_seconds_total", "counter",
         "Total user and system CPU time spent in seconds."},
        {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes."},
        {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."},
        {"process_open_fds", "gauge", "Number of open file descriptors."},
        {"process_max_fds", "gauge", "Maximum number of open file descriptors."},
        {"process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds."},
    };
    const double v[] = {s->cpu_seconds,      (double)s->resident_bytes, (double)s->virtual_bytes,
                        (double)s->open_fds, (double)s->max_fds,        s->start_time_seconds};
    int rc = 0;
    for (size_t i = 0; i < sizeof fam / sizeof *fam && rc == 0; i++) {
        rc = cue_prom_family(b, fam[i].name, fam[i].type, fam[i].help);
        if (rc == 0) rc = cue_prom_sample(b, fam[i].name, NULL, v[i]);
    }
    return rc;
}
