/* Planning an input-offset reset, and applying one partition's to a store. */
#include "cuepoint/offsets.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- parsing ----------------------------------------------------------- */

static int parse_i64(const char *s, size_t len, int64_t *out)
{
    char tmp[24];
    if (len == 0 || len >= sizeof tmp) return CUE_EPARSE;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (*end != '\0' || errno != 0 || tmp[0] == '+' || tmp[0] == ' ') return CUE_EPARSE;
    *out = v;
    return 0;
}

static bool listed(const int32_t *parts, size_t n, int32_t p)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i] == p) return true;
    return false;
}

/* Calls `item` on each comma-separated item of `s`. */
static int each_item(const char *s,
                     int (*item)(const char *it, size_t len, void *ctx, cue_err *err), void *ctx,
                     cue_err *err)
{
    if (*s == '\0') return cue_err_set(err, CUE_EPARSE, "an empty list");
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int rc = item(p, len, ctx, err);
        if (rc != 0) return rc;
        if (comma == NULL) return 0;
        p = comma + 1;
    }
}

static int partition_of(const char *it, size_t len, int32_t *out, cue_err *err)
{
    int64_t v = 0;
    if (parse_i64(it, len, &v) != 0 || v < 0 || v > INT32_MAX)
        return cue_err_set(err, CUE_EPARSE, "'%.*s' is not a partition number", (int)len, it);
    *out = (int32_t)v;
    return 0;
}

static int offset_item(const char *it, size_t len, void *ctx, cue_err *err)
{
    cue_reset_spec *spec = ctx;
    const char *colon = memchr(it, ':', len);
    if (colon == NULL)
        return cue_err_set(err, CUE_EPARSE, "'%.*s' is not PARTITION:OFFSET", (int)len, it);
    int32_t p = 0;
    int64_t o = 0;
    int rc = partition_of(it, (size_t)(colon - it), &p, err);
    if (rc != 0) return rc;
    size_t olen = len - (size_t)(colon - it) - 1;
    if (parse_i64(colon + 1, olen, &o) != 0 || o < 0)
        return cue_err_set(err, CUE_EPARSE, "'%.*s' is not an offset", (int)olen, colon + 1);
    if (listed(spec->offset_parts, spec->n_offsets, p))
        return cue_err_set(err, CUE_EINVAL, "partition %d is named twice", (int)p);
    if (spec->n_offsets == CUE_OFFSETS_PARTS_MAX)
        return cue_err_set(err, CUE_ELIMIT, "more than %d partitions", CUE_OFFSETS_PARTS_MAX);
    spec->offset_parts[spec->n_offsets] = p;
    spec->offsets[spec->n_offsets++] = o;
    return 0;
}

static int only_item(const char *it, size_t len, void *ctx, cue_err *err)
{
    cue_reset_spec *spec = ctx;
    int32_t p = 0;
    int rc = partition_of(it, len, &p, err);
    if (rc != 0) return rc;
    if (listed(spec->only, spec->n_only, p))
        return cue_err_set(err, CUE_EINVAL, "partition %d is named twice", (int)p);
    if (spec->n_only == CUE_OFFSETS_PARTS_MAX)
        return cue_err_set(err, CUE_ELIMIT, "more than %d partitions", CUE_OFFSETS_PARTS_MAX);
    spec->only[spec->n_only++] = p;
    return 0;
}

int cue_offsets_parse_list(const char *s, cue_reset_spec *spec, cue_err *err)
{
    return each_item(s, offset_item, spec, err);
}

int cue_offsets_parse_partitions(const char *s, cue_reset_spec *spec, cue_err *err)
{
    return each_item(s, only_item, spec, err);
}

/* ---- planning ---------------------------------------------------------- */

int64_t cue_offsets_for_time(int64_t answer, int64_t high)
{
    return answer < 0 ? high : answer;
}

cue_offsets_target cue_offsets_target_for(const cue_reset_spec *spec, const cue_offsets_part *p)
{
    cue_offsets_target t = {.selected = true};
    if (spec->n_only > 0 && !listed(spec->only, spec->n_only, p->partition)) {
        t.selected = false;
        return t;
    }
    switch (spec->kind) {
    case CUE_RESET_EARLIEST: t.requested = p->log_start; break;
    case CUE_RESET_LATEST: t.requested = p->high; break;
    case CUE_RESET_TIME: t.requested = cue_offsets_for_time(p->time_answer, p->high); break;
    case CUE_RESET_OFFSET:
        t.selected = false;
        for (size_t i = 0; i < spec->n_offsets; i++)
            if (spec->offset_parts[i] == p->partition) {
                t.selected = true;
                t.requested = spec->offsets[i];
            }
        if (!t.selected) return t;
        break;
    }
    /* Records before the log start are gone, and there is nothing past the
     * high watermark to start at. */
    t.offset = t.requested < p->log_start ? p->log_start
               : t.requested > p->high    ? p->high
                                          : t.requested;
    t.clamped = t.offset != t.requested;
    return t;
}

cue_offsets_action cue_offsets_decide(int64_t stored, int64_t to)
{
    return to < stored ? CUE_OFFSETS_DROP : CUE_OFFSETS_MOVE;
}

/* ---- the marker -------------------------------------------------------- */

int cue_offsets_marker_format(char *out, size_t cap, const char *id, int64_t offset)
{
    int n = snprintf(out, cap, CUE_OFFSETS_MARKER_PREFIX "%s:%" PRId64, id, offset);
    if (n < 0 || (size_t)n >= cap) return CUE_ELIMIT;
    return 0;
}

bool cue_offsets_marker_parse(const char *meta, size_t len, int64_t *offset)
{
    size_t plen = sizeof CUE_OFFSETS_MARKER_PREFIX - 1;
    if (meta == NULL || len <= plen || memcmp(meta, CUE_OFFSETS_MARKER_PREFIX, plen) != 0)
        return false;
    const char *last = NULL;
    for (size_t i = plen; i < len; i++)
        if (meta[i] == ':') last = meta + i;
    if (last == NULL || last == meta + plen) return false; /* no id */
    int64_t o = 0;
    if (parse_i64(last + 1, len - (size_t)(last + 1 - meta), &o) != 0 || o < 0) return false;
    *offset = o;
    return true;
}

void cue_offsets_new_id(char out[CUE_OFFSETS_ID_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, CUE_OFFSETS_ID_MAX, "%lld-%ld",
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, (long)getpid());
}

/* ---- applying ---------------------------------------------------------- */

static int count_user(uint32_t partition, const char *uid, size_t uid_len, const void *val,
                      size_t val_len, void *ctx)
{
    (*(uint64_t *)ctx)++;
    return 0;
}

int cue_offsets_count_users(cue_store *s, uint32_t partition, uint64_t *n, cue_err *err)
{
    *n = 0;
    int rc = cue_store_users_scan(s, partition, count_user, n);
    if (rc != 0)
        return cue_err_set(err, CUE_ESTORE, "partition %u: counting users failed", partition);
    return 0;
}

int cue_offsets_apply(cue_store *s, uint32_t partition, const char *marker,
                      cue_offsets_applied *out, cue_err *err)
{
    memset(out, 0, sizeof *out);
    int64_t to = 0;
    if (!cue_offsets_marker_parse(marker, strlen(marker), &to))
        return cue_err_set(err, CUE_EINVAL, "partition %u: '%.100s' is not a reset marker",
                           partition, marker);
    char applied[CUE_STORE_MARKER_MAX];
    int rc = cue_store_reset_marker_get(s, partition, applied, sizeof applied, err);
    if (rc != 0) return rc;
    out->to = to;
    if (strcmp(applied, marker) == 0) {
        out->already = true;
        return 0;
    }
    cue_store_meta meta = {.input_offset = -1, .changelog_offset = -1, .stream_time_ms = INT64_MIN};
    rc = cue_store_meta_get(s, partition, &meta, err);
    if (rc != 0 && rc != CUE_ENOTFOUND) return rc;
    out->from = meta.input_offset;
    out->action = cue_offsets_decide(meta.input_offset, to);
    rc = cue_offsets_count_users(s, partition, &out->users, err);
    if (rc != 0) return rc;
    if (out->action == CUE_OFFSETS_DROP)
        meta = (cue_store_meta){.changelog_offset = -1, .stream_time_ms = INT64_MIN};
    meta.input_offset = to;
    return cue_store_partition_reset(s, partition, out->action == CUE_OFFSETS_DROP, &meta, marker,
                                     err);
}
