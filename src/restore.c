/* Changelog records back into the store. */
#include "cuepoint/restore.h"

#include "cuepoint/codec.h"
#include "cuepoint/limits.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cue_restore_init(cue_restore *r, uint32_t partition, const cue_store_meta *base, bool hold)
{
    r->partition = partition;
    r->input_offset = base ? base->input_offset : 0;
    r->n_more = base ? base->n_more : 0;
    for (size_t i = 0; i < r->n_more; i++)
        r->more_offsets[i] = base->more_offsets[i];
    r->stream_time_ms = base ? base->stream_time_ms : INT64_MIN;
    r->records = r->bytes = r->skipped = 0;
    r->hold = hold;
    r->ttl_mark_cleared = false;
    r->last_topics = (cue_position_topics){0};
    r->last_position_at = -1;
    r->held.n = 0;
    cue_buf_reset(&r->held.keys);
}

void cue_restore_deinit(cue_restore *r)
{
    cue_timer_run_deinit(&r->held);
}

/* What follows the stream time: the further input topics' offsets,
 * ,"more_offsets":[N,...] (several input topics), then which topics,
 * ,"topics":{"count":N,"hash":"<16 hex>"}, each optional, then the closing
 * brace. False when it is not that. */
static bool position_tail(const char *s, int64_t *more, uint8_t *n_more, cue_position_topics *tp)
{
    *n_more = 0;
    *tp = (cue_position_topics){0};
    const char *open = ",\"more_offsets\":[";
    if (strncmp(s, open, strlen(open)) == 0) {
        s += strlen(open);
        for (;;) {
            char *end = NULL;
            long long v = strtoll(s, &end, 10);
            if (end == s || v < 0 || *n_more == CUE_INPUT_TOPICS_MAX - 1) return false;
            more[(*n_more)++] = v;
            s = end + 1;
            if (*end == ']') break;
            if (*end != ',') return false;
        }
    }
    const char *topics = ",\"topics\":{\"count\":";
    if (strncmp(s, topics, strlen(topics)) == 0) {
        s += strlen(topics);
        if (*s < '1' || *s > '9') return false;
        char *end = NULL;
        unsigned long n = strtoul(s, &end, 10);
        const char *hash = ",\"hash\":\"";
        if (n > CUE_INPUT_TOPICS_MAX || strncmp(end, hash, strlen(hash)) != 0) return false;
        s = end + strlen(hash);
        uint64_t h = 0;
        for (int i = 0; i < 16; i++, s++) {
            int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : -1;
            if (d < 0) return false;
            h = h << 4 | (uint64_t)d;
        }
        if (strncmp(s, "\"}", 2) != 0) return false;
        s += 2;
        *tp = (cue_position_topics){.n = (uint32_t)n, .hash = h};
    }
    return strcmp(s, "}") == 0;
}

int cue_restore_position_parse(const void *val, size_t len, int64_t *input_offset,
                               int64_t *stream_time_ms, int64_t *more, uint8_t *n_more,
                               cue_position_topics *topics)
{
    char buf[CUE_POSITION_TEXT_BYTES_MAX];
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    if (n) memcpy(buf, val, n);
    buf[n] = '\0';
    /* Read into these, and handed out only when the whole record reads: a
     * refused one changes nothing (a restore keeps its last good position). */
    long long in = -1, st = 0;
    int64_t more_read[CUE_INPUT_TOPICS_MAX - 1];
    uint8_t n_read = 0;
    cue_position_topics tp;
    int at = 0;
    bool ok = false;
    if (sscanf(buf, "{\"input_offset\":%lld,\"stream_time_ms\":%lld%n", &in, &st, &at) == 2 &&
        in >= 0 && at > 0 && position_tail(buf + at, more_read, &n_read, &tp)) {
        ok = true;
    } else {
        in = -1;
        at = 0;
        st = INT64_MIN;
        ok = sscanf(buf, "{\"input_offset\":%lld,\"stream_time_ms\":null%n", &in, &at) == 1 &&
             in >= 0 && at > 0 && position_tail(buf + at, more_read, &n_read, &tp);
    }
    if (!ok) return CUE_EPARSE;
    *input_offset = in;
    *stream_time_ms = st;
    if (more) memcpy(more, more_read, n_read * sizeof more_read[0]);
    if (n_more) *n_more = n_read;
    if (topics) *topics = tp;
    return 0;
}

int cue_restore_position_format(char *out, size_t cap, int64_t input_offset, int64_t stream_time_ms,
                                const int64_t *more, size_t n_more,
                                const cue_position_topics *topics)
{
    int n = stream_time_ms == INT64_MIN
                ? snprintf(out, cap, "{\"input_offset\":%lld,\"stream_time_ms\":null",
                           (long long)input_offset)
                : snprintf(out, cap, "{\"input_offset\":%lld,\"stream_time_ms\":%lld",
                           (long long)input_offset, (long long)stream_time_ms);
    size_t at = (size_t)n;
    for (size_t i = 0; i < n_more && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%lld", i == 0 ? ",\"more_offsets\":[" : ",",
                               (long long)more[i]);
    if (at < cap && n_more) at += (size_t)snprintf(out + at, cap - at, "]");
    if (at < cap && topics && topics->n)
        at +=
            (size_t)snprintf(out + at, cap - at, ",\"topics\":{\"count\":%u,\"hash\":\"%016llx\"}",
                             (unsigned)topics->n, (unsigned long long)topics->hash);
    if (at < cap) at += (size_t)snprintf(out + at, cap - at, "}");
    CUE_ASSERT(n > 0 && at < cap);
    return (int)at;
}

static int position_record(cue_restore *r, const char *val, size_t len, cue_err *err)
{
    if (cue_restore_position_parse(val, len, &r->input_offset, &r->stream_time_ms, r->more_offsets,
                                   &r->n_more, &r->last_topics) == 0)
        return 0;
    return cue_err_set(err, CUE_EPARSE,
                       "a position record (empty key) whose value of %zu bytes is not "
                       "{\"input_offset\":N,\"stream_time_ms\":T[,\"more_offsets\":[N,...]]"
                       "[,\"topics\":{...}]}",
                       len);
}

int cue_restore_topics_check(const cue_restore *r, const cue_config *cfg, cue_err *err)
{
    const cue_position_topics *tp = &r->last_topics;
    if (tp->n == 0) return 0; /* not said */
    if (tp->n <= cfg->input_topic_count && cue_config_input_topics_hash(cfg, tp->n) == tp->hash)
        return 0;
    char list[CUE_INPUT_TOPICS_MAX * (CUE_TOPIC_BYTES_MAX + 1)];
    cue_config_input_topics_join(cfg, list, sizeof list);
    return cue_err_set(err, CUE_ECONFIG,
                       "the changelog's position was written reading %u input topic%s that "
                       "input.topics \"%.300s\" does not begin with: its users and positions "
                       "belong to another input and are not restored (use that pipeline's "
                       "input.topics, only adding topics at the end, or another application.id)",
                       (unsigned)tp->n, tp->n == 1 ? "" : "s", list);
}

/* Why a record's key cannot be a user's, or 0 when it can. */
static int user_key_check(const char *key, size_t key_len, cue_err *err)
{
    if (key == NULL) return cue_err_set(err, CUE_EPARSE, "a record without a key");
    if (key_len > CUE_USER_ID_BYTES_MAX)
        return cue_err_set(err, CUE_ELIMIT, "a key of %zu bytes, longer than a user id (%d)",
                           key_len, CUE_USER_ID_BYTES_MAX);
    return 0;
}

int cue_restore_apply(cue_restore *r, cue_store *s, const char *key, size_t key_len,
                      const void *val, size_t len, cue_err *err)
{
    r->records++;
    r->bytes += key_len + len;
    int rc = user_key_check(key, key_len, err);
    if (rc == 0 && key_len == 0) rc = position_record(r, val, len, err);
    if (rc != 0 || key_len == 0) {
        r->skipped += rc != 0;
        return rc;
    }
    if (val == NULL || len == 0) {
        rc = cue_store_batch_user_delete(s, r->partition, key, key_len);
    } else {
        rc = cue_store_batch_user_put(s, r->partition, key, key_len, val, len);
        /* The timer index is derived: each user's entry is in their record. */
        int64_t due = CUE_TIMER_NONE;
        bool indexed = cue_codec_peek_indexed_due(val, len, &due) == 0 && due != CUE_TIMER_NONE;
        if (rc == 0 && indexed &&
            /* Out of memory while holding: into the store's own run. */
            (!r->hold || cue_timer_run_add(&r->held, r->partition, due, key, key_len) != 0))
            rc = cue_store_batch_timer_put_bulk(s, r->partition, due, key, key_len);
        /* A user without an entry (its owner ran without state TTL): the
         * state-TTL pass must look at the partition again. */
        if (rc == 0 && !indexed && !r->ttl_mark_cleared) {
            cue_store_batch_ttl_mark_put(s, r->partition, 0);
            r->ttl_mark_cleared = true;
        }
    }
    /* The key was checked: the store has no other reason to refuse it. */
    CUE_ASSERT(rc == 0);
    return 0;
}

int cue_restore_apply_erasure(cue_restore *r, cue_store *s, const char *key, size_t key_len,
                              cue_err *err)
{
    r->records++;
    r->bytes += key_len;
    int rc = user_key_check(key, key_len, err);
    if (rc == 0 && key_len == 0)
        rc = cue_err_set(err, CUE_EPARSE, "an erasure's tombstone without a user id");
    if (rc != 0) {
        r->skipped++;
        return rc;
    }
    char id[1 + CUE_USER_ID_BYTES_MAX];
    id[0] = (char)key_len;
    memcpy(id + 1, key, key_len);
    const cue_buf ids = {.data = id, .len = 1 + key_len, .cap = sizeof id};
    /* Entries held for the end of the restore would put the id back. */
    cue_timer_run_drop_user(&r->held, r->partition, key, key_len);
    return cue_store_batch_users_erase(s, r->partition, &ids, err);
}

void cue_restore_finish(cue_restore *r, cue_store *s, int64_t changelog_end, int64_t synced_ms)
{
    cue_store_batch_timer_run(s, &r->held);
    cue_store_meta meta = {.input_offset = r->input_offset,
                           .changelog_offset = changelog_end,
                           .stream_time_ms = r->stream_time_ms,
                           .synced_ms = synced_ms,
                           .n_more = r->n_more};
    for (size_t i = 0; i < r->n_more; i++)
        meta.more_offsets[i] = r->more_offsets[i];
    cue_store_batch_meta_put(s, r->partition, &meta);
}
