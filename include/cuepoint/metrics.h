/*
 * metrics: writers for the Prometheus text exposition format (version 0.0.4)
 * into a cue_buf, and a fixed-bucket histogram to feed them.
 *
 * A scrape renders every family into one reused buffer: cue_prom_family() for
 * the HELP and TYPE lines, then that family's samples (cue_prom_sample() or
 * cue_prom_histogram()). Label lists are rendered first, into a scratch
 * buffer, with cue_prom_label(). Counting is the owner's business: this module
 * holds no registry and no global state. Any thread, one buffer per thread; no
 * allocation but the buffer's growth.
 *
 * Names (metric, label) and types come from cuepoint's code, not from input:
 * an invalid one is a bug and aborts. Label values may be anything: they are
 * escaped, and bytes that are not UTF-8 are written as U+FFFD so that one odd
 * value cannot make the whole scrape unreadable. Each writer returns 0 or
 * CUE_ENOMEM (the buffer could not grow; what was written so far stays).
 */
#ifndef CUEPOINT_METRICS_H
#define CUEPOINT_METRICS_H

#include "cuepoint/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Buckets per histogram: latency histograms use about a dozen, and a fixed
 * bound keeps the struct embeddable and observe() free of allocation. */
#define CUE_HISTOGRAM_BOUNDS_MAX 16

/* "# HELP name help" and "# TYPE name type". `type` is "counter", "gauge",
 * "histogram", "summary" or "untyped"; `help` is escaped (backslash, newline). */
int cue_prom_family(cue_buf *b, const char *name, const char *type, const char *help);

/* "name{labels} value". `labels` is NULL, "" or a list rendered with
 * cue_prom_label() (no braces), borrowed. Integral values up to 2^63 are
 * written as integers ("12345"), other finite ones in the shortest form that
 * reads back exactly ("0.25", "1e+300"), and the rest as +Inf, -Inf, NaN. */
int cue_prom_sample(cue_buf *b, const char *name, const char *labels, double value);

/* Appends key="value" to a label list in `b`, after a comma unless `b` is
 * empty. The value (value_len bytes, borrowed) has backslash, double quote and
 * newline escaped. */
int cue_prom_label(cue_buf *b, const char *key, const char *value, size_t value_len);

/* Counts per bucket, not cumulative: counts[i] holds observations in
 * (bounds[i-1], bounds[i]], and counts[n_bounds] those above the last bound
 * (and NaN). The owner embeds it; one thread observes it. */
typedef struct cue_histogram {
    size_t n_bounds;
    double bounds[CUE_HISTOGRAM_BOUNDS_MAX];
    uint64_t counts[CUE_HISTOGRAM_BOUNDS_MAX + 1];
    double sum;
    uint64_t count;
} cue_histogram;

/* Caller's storage; nothing to deinit. `bounds` (n of them, borrowed, copied)
 * must be finite and strictly ascending, n <= CUE_HISTOGRAM_BOUNDS_MAX. */
void cue_histogram_init(cue_histogram *h, const double *bounds, size_t n);

void cue_histogram_observe(cue_histogram *h, double v);

/* The samples of one histogram series: cumulative name_bucket{labels,le="..."}
 * lines ending with le="+Inf", then name_sum and name_count. The family line
 * is written separately, with cue_prom_family(b, name, "histogram", ...). */
int cue_prom_histogram(cue_buf *b, const char *name, const char *labels, const cue_histogram *h);

/* "cuepoint_build_info{version="...",commit="..."} 1": the gauge Prometheus
 * clients export so that a query can join any series with the binary that
 * made it. Both strings borrowed. */
int cue_prom_build_info(cue_buf *b, const char *version, const char *commit);

/* The process, as Prometheus's own client libraries describe theirs, so the
 * usual dashboards and alerts work unchanged. Read from Linux's /proc. */
typedef struct cue_process_stats {
    double cpu_seconds;        /* user + system time */
    double start_time_seconds; /* since the epoch */
    uint64_t resident_bytes;   /* RSS */
    uint64_t virtual_bytes;    /* address space */
    uint64_t open_fds;         /* entries of /proc/self/fd */
    uint64_t max_fds;          /* the soft RLIMIT_NOFILE */
} cue_process_stats;

/* Fills `out` from /proc/self/stat, /proc/stat (boot time), /proc/self/fd
 * and getrlimit. CUE_EIO when /proc cannot be read (not Linux, or not
 * mounted); `out` is then zeroed. Opens and reads a few files: for a scrape,
 * not for the hot path. */
int cue_process_stats_read(cue_process_stats *out);

/* The families process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds, with their samples. */
int cue_prom_process(cue_buf *b, const cue_process_stats *s);

#endif
