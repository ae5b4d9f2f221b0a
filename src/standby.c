/* The members view and the standby placement decided from it. */
#include "cuepoint/standby.h"

#include "cuepoint/hash.h"
#include "cuepoint/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct member {
    char name[CUE_MEMBER_NAME_BYTES_MAX];
    int64_t ts_ms, ttl_ms;
    int64_t offset; /* of its latest record */
    uint8_t *owned; /* owned: one bit per partition */
} member;

struct cue_members {
    int32_t partitions;
    char self[CUE_MEMBER_NAME_BYTES_MAX];
    member *m; /* owned; n of cap */
    size_t n, cap;
    /* owned: room to parse a record that lists every partition */
    cue_json_tok *toks;
    uint32_t toks_cap;
};

static size_t bitmap_bytes(int32_t partitions)
{
    return ((size_t)partitions + 7) / 8;
}

static bool has(const member *x, int32_t p)
{
    return (x->owned[p / 8] >> (p % 8)) & 1;
}

int cue_members_new(cue_members **out, int32_t partitions, const char *self, cue_err *err)
{
    if (partitions <= 0)
        return cue_err_set(err, CUE_EINVAL, "members view: %d partitions", (int)partitions);
    if (strlen(self) == 0 || strlen(self) >= CUE_MEMBER_NAME_BYTES_MAX)
        return cue_err_set(err, CUE_ELIMIT, "instance name must be 1 to %d bytes",
                           CUE_MEMBER_NAME_BYTES_MAX - 1);
    cue_members *m = calloc(1, sizeof *m);
    if (m == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    m->partitions = partitions;
    m->toks_cap = (uint32_t)partitions + 16;
    m->toks = malloc(m->toks_cap * sizeof *m->toks);
    if (m->toks == NULL) {
        free(m);
        return cue_err_set(err, CUE_ENOMEM, "out of memory");
    }
    snprintf(m->self, sizeof m->self, "%s", self);
    *out = m;
    return 0;
}

void cue_members_free(cue_members *m)
{
    if (m == NULL) return;
    for (size_t i = 0; i < m->n; i++)
        free(m->m[i].owned);
    free(m->m);
    free(m->toks);
    free(m);
}

static member *find(const cue_members *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n; i++)
        if (strlen(m->m[i].name) == len && memcmp(m->m[i].name, name, len) == 0) return &m->m[i];
    return NULL;
}

static void forget(cue_members *m, member *x)
{
    free(x->owned);
    *x = m->m[--m->n];
}

/* Live while its last record is younger than its ttl; a record from ahead
 * of this clock (clocks apart) is live. ts_ms is whatever a record said,
 * INT64_MIN included, so the age is taken without overflow. */
static bool live(const member *x, int64_t now_ms)
{
    if (x->ts_ms >= now_ms) return true;
    return (uint64_t)now_ms - (uint64_t)x->ts_ms < (uint64_t)x->ttl_ms;
}

/* The record's fields, checked, before the view changes. */
static int parse(cue_members *m, const char *key, size_t key_len, const char *val, size_t len,
                 int64_t offset, int64_t *ts, int64_t *ttl, uint8_t *bits, cue_err *err)
{
    cue_json_tok *toks = m->toks;
    cue_json_doc doc;
    cue_err perr = {0};
    if (cue_json_parse(&doc, val, len, toks, m->toks_cap, &perr) != 0)
        return cue_err_set(err, CUE_EPARSE, "members record at offset %lld: %s", (long long)offset,
                           perr.msg);
    if (toks[0].type != CUE_JSON_OBJECT)
        return cue_err_set(err, CUE_EPARSE, "members record at offset %lld: not an object",
                           (long long)offset);
    int32_t v = cue_json_member(&doc, 0, "v", 1);
    int64_t ver = 0;
    if (v < 0 || cue_json_int64(&doc, (uint32_t)v, &ver) != 0 || ver != 1)
        return cue_err_set(err, CUE_EPARSE, "members record at offset %lld: $.v must be 1",
                           (long long)offset);
    int32_t inst = cue_json_member(&doc, 0, "instance", 8);
    if (inst < 0 || !cue_json_string_eq(&doc, (uint32_t)inst, key, key_len))
        return cue_err_set(err, CUE_EPARSE,
                           "members record at offset %lld: $.instance must equal the key",
                           (long long)offset);
    int32_t t = cue_json_member(&doc, 0, "ts_ms", 5);
    int32_t l = cue_json_member(&doc, 0, "ttl_ms", 6);
    if (t < 0 || cue_json_int64(&doc, (uint32_t)t, ts) != 0 || l < 0 ||
        cue_json_int64(&doc, (uint32_t)l, ttl) != 0 || *ttl <= 0)
        return cue_err_set(err, CUE_EPARSE,
                           "members record at offset %lld: $.ts_ms and $.ttl_ms (> 0) must be "
                           "integers",
                           (long long)offset);
    int32_t o = cue_json_member(&doc, 0, "owned", 5);
    if (o < 0 || toks[o].type != CUE_JSON_ARRAY)
        return cue_err_set(err, CUE_EPARSE,
                           "members record at offset %lld: $.owned must be an array",
                           (long long)offset);
    uint32_t e = (uint32_t)o + 1;
    for (uint32_t i = 0; i < toks[o].size; i++, e = toks[e].next) {
        int64_t p = -1;
        if (cue_json_int64(&doc, e, &p) != 0 || p < 0 || p >= m->partitions)
            return cue_err_set(err, CUE_EPARSE,
                               "members record at offset %lld: $.owned[%u] is not a partition "
                               "of 0..%d",
                               (long long)offset, i, (int)m->partitions - 1);
        bits[p / 8] |= (uint8_t)(1u << (p % 8));
    }
    return 0;
}

int cue_members_apply(cue_members *m, const char *key, size_t key_len, const char *val, size_t len,
                      int64_t offset, cue_err *err)
{
    /* Names are kept as C strings: one with a NUL byte is none of ours. */
    if (key == NULL || key_len == 0 || key_len >= CUE_MEMBER_NAME_BYTES_MAX ||
        memchr(key, '\0', key_len) != NULL)
        return cue_err_set(err, CUE_EPARSE,
                           "members record at offset %lld: the key must be an instance name of "
                           "1 to %d bytes (no NUL)",
                           (long long)offset, CUE_MEMBER_NAME_BYTES_MAX - 1);
    member *x = find(m, key, key_len);
    if (val == NULL || len == 0) { /* a member that left */
        if (x) forget(m, x);
        return 0;
    }
    uint8_t *bits = calloc(1, bitmap_bytes(m->partitions));
    if (bits == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    int64_t ts = 0, ttl = 0;
    int rc = parse(m, key, key_len, val, len, offset, &ts, &ttl, bits, err);
    if (rc == 0 && x == NULL && m->n == CUE_MEMBERS_MAX) {
        /* Full of names, most of them gone (an instance without a stable id
         * killed, restarted, killed...): one whose record had expired by
         * this record's time makes room; all such go. */
        for (size_t i = 0; i < m->n;)
            if (!live(&m->m[i], ts))
                forget(m, &m->m[i]); /* the last one moves into i */
            else
                i++;
    }
    if (rc == 0 && x == NULL) {
        if (m->n == CUE_MEMBERS_MAX) {
            rc = cue_err_set(err, CUE_ELIMIT, "members record at offset %lld: more than %d members",
                             (long long)offset, CUE_MEMBERS_MAX);
        } else if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 8;
            member *grown = realloc(m->m, cap * sizeof *grown);
            if (grown == NULL)
                rc = cue_err_set(err, CUE_ENOMEM, "out of memory");
            else {
                m->m = grown;
                m->cap = cap;
            }
        }
        if (rc == 0) {
            x = &m->m[m->n++];
            memset(x, 0, sizeof *x);
            memcpy(x->name, key, key_len);
        }
    }
    if (rc != 0) {
        free(bits);
        return rc;
    }
    free(x->owned);
    x->owned = bits;
    x->ts_ms = ts;
    x->ttl_ms = ttl;
    x->offset = offset;
    return 0;
}

int cue_members_encode(const char *self, const int32_t *owned, size_t n_owned, int64_t now_ms,
                       int64_t ttl_ms, cue_buf *out)
{
    cue_buf_reset(out);
    int rc = cue_buf_append_str(out, "{\"v\":1,\"instance\":");
    if (rc == 0) rc = cue_buf_append_json_str(out, self, strlen(self));
    if (rc == 0) rc = cue_buf_append_str(out, ",\"owned\":[");
    for (size_t i = 0; rc == 0 && i < n_owned; i++) {
        if (i) rc = cue_buf_append_char(out, ',');
        if (rc == 0) rc = cue_buf_append_i64(out, owned[i]);
    }
    if (rc == 0)
        rc = cue_buf_printf(out, "],\"ts_ms\":%lld,\"ttl_ms\":%lld}", (long long)now_ms,
                            (long long)ttl_ms);
    return rc;
}

size_t cue_members_live(const cue_members *m, int64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += live(&m->m[i], now_ms);
    return n;
}

static const member *owner_of(const cue_members *m, int32_t p, int64_t now_ms)
{
    const member *best = NULL;
    for (size_t i = 0; i < m->n; i++) {
        const member *x = &m->m[i];
        if (live(x, now_ms) && has(x, p) && (best == NULL || x->offset > best->offset)) best = x;
    }
    return best;
}

const char *cue_members_owner(const cue_members *m, int32_t partition, int64_t now_ms)
{
    if (partition < 0 || partition >= m->partitions) return NULL;
    const member *o = owner_of(m, partition, now_ms);
    return o ? o->name : NULL;
}

/* A member's rank for a partition: its hash with the partition as the seed,
 * ties (astronomically rare) broken by name so that every reader agrees. */
static uint64_t score(const char *name, int32_t p)
{
    return cue_hash64(name, strlen(name), 0x9e3779b97f4a7c15ull ^ (uint64_t)(uint32_t)p);
}

static bool outranks(const char *a, uint64_t sa, const char *b, uint64_t sb)
{
    return sa != sb ? sa > sb : strcmp(a, b) > 0;
}

size_t cue_members_standbys(const cue_members *m, int64_t now_ms, int replicas, bool *want)
{
    size_t set = 0;
    const member *me = find(m, m->self, strlen(m->self));
    for (int32_t p = 0; p < m->partitions; p++) {
        want[p] = false;
        if (replicas <= 0 || me == NULL || !live(me, now_ms)) continue;
        const member *o = owner_of(m, p, now_ms);
        if (o == NULL || o == me) continue;
        uint64_t mine = score(me->name, p);
        int above = 0;
        for (size_t i = 0; i < m->n && above < replicas; i++) {
            const member *x = &m->m[i];
            if (x == me || x == o || !live(x, now_ms)) continue;
            if (outranks(x->name, score(x->name, p), me->name, mine)) above++;
        }
        if (above < replicas) {
            want[p] = true;
            set++;
        }
    }
    return set;
}
