/* Event decoding as a table: each record, the reason it fails (or none), and
 * what it decodes to. */
#include "cuepoint/event.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

typedef struct event_case {
    const char *raw;
    cue_reason reason;
    const char *user_id, *type, *event_id;
    int64_t ts;
} event_case;

static const event_case cases[] = {
    {"{\"user_id\":\"u1\",\"type\":\"a\",\"ts\":1000}", CUE_REASON_NONE, "u1", "a", NULL, 1000},
    {"{\"user_id\":42,\"type\":\"a\",\"ts\":1000,\"event_id\":7}", CUE_REASON_NONE, "42", "a", "7",
     1000},
    {"{\"user_id\":\"u\\u00e9\",\"type\":\"a\",\"ts\":\"2026-03-02T09:00:00+01:00\"}",
     CUE_REASON_NONE, "u\xc3\xa9", "a", NULL, 1772438400000},
    {"  {\"ts\":\"2026-03-02T08:00:00.123456Z\",\"type\":\"a\",\"user_id\":\"u\"}  ",
     CUE_REASON_NONE, "u", "a", NULL, 1772438400123},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":-0}", CUE_REASON_NONE, "u", "a", NULL, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":999999999}", CUE_REASON_NONE, "u", "a", NULL,
     999999999},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":100000000000}", CUE_REASON_NONE, "u", "a", NULL,
     100000000000},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1.7733e12}", CUE_REASON_NONE, "u", "a", NULL,
     1773300000000},
    {"nope", CUE_REASON_NOT_JSON, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",}", CUE_REASON_NOT_JSON, 0, 0, 0, 0},
    {"[]", CUE_REASON_NOT_OBJECT, 0, 0, 0, 0},
    {"\"just a string\"", CUE_REASON_NOT_OBJECT, 0, 0, 0, 0},
    {"{\"type\":\"a\",\"ts\":1}", CUE_REASON_NO_USER, 0, 0, 0, 0},
    {"{\"user_id\":null,\"type\":\"a\",\"ts\":1}", CUE_REASON_NO_USER, 0, 0, 0, 0},
    {"{\"user_id\":\"\",\"type\":\"a\",\"ts\":1}", CUE_REASON_BAD_USER, 0, 0, 0, 0},
    {"{\"user_id\":true,\"type\":\"a\",\"ts\":1}", CUE_REASON_BAD_USER, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"ts\":1}", CUE_REASON_NO_TYPE, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":[],\"ts\":1}", CUE_REASON_BAD_TYPE, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\"}", CUE_REASON_NO_TIME, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"2026-02-29T00:00:00Z\"}", CUE_REASON_BAD_TIME, 0,
     0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"2026-03-02T09:00:00\"}", CUE_REASON_BAD_TIME, 0, 0,
     0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1.5}", CUE_REASON_BAD_TIME, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":99999999999999999}", CUE_REASON_BAD_TIME, 0, 0, 0,
     0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"event_id\":{}}", CUE_REASON_BAD_FIELD, 0, 0, 0,
     0},
    /* times that no clock should give */
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":-1000}", CUE_REASON_BAD_TIME, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"1969-12-31T23:59:59Z\"}", CUE_REASON_BAD_TIME, 0,
     0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1e999}", CUE_REASON_BAD_TIME, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":-1e999}", CUE_REASON_BAD_TIME, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1773300000}", CUE_REASON_BAD_TIME, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1773300000000000}", CUE_REASON_BAD_TIME, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"10000-01-01T00:00:00Z\"}", CUE_REASON_BAD_TIME, 0,
     0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":true}", CUE_REASON_BAD_TIME, 0, 0, 0, 0},
    /* text that is not text, NULs, names given twice */
    {"{\"user_id\":\"v\xff"
     "1\",\"type\":\"a\",\"ts\":1}",
     CUE_REASON_BAD_ENCODING, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"user\":{\"timezone\":\"Europe/Par\xeds\"}}",
     CUE_REASON_BAD_ENCODING, 0, 0, 0, 0},
    {"{\"user_id\":\"u\\ud800\",\"type\":\"a\",\"ts\":1}", CUE_REASON_BAD_ENCODING, 0, 0, 0, 0},
    {"{\"user_id\":\"u\\u0000junk\",\"type\":\"a\",\"ts\":1}", CUE_REASON_BAD_USER, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\\u0000\",\"ts\":1}", CUE_REASON_BAD_TYPE, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"event_id\":\"\\u0000\"}", CUE_REASON_BAD_FIELD,
     0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"user\":{\"role\":\"x\\u0000\"}}",
     CUE_REASON_BAD_FIELD, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"user_id\":\"v\"}", CUE_REASON_DUPLICATE_KEY, 0,
     0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"props\":{\"x\":1,\"x\":2}}",
     CUE_REASON_DUPLICATE_KEY, 0, 0, 0, 0},
    {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"user\":{\"timezone\":{}}}", CUE_REASON_BAD_FIELD,
     0, 0, 0, 0},
};

static bool same(const char *want, const char *got, size_t len)
{
    if (want == NULL) return got == NULL;
    return got && strlen(want) == len && memcmp(want, got, len) == 0;
}

Test(event, table_of_records)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0; /* the cases count time from 0; event.time.min is tested below */
    cue_event_decoder *d;
    cue_err err;
    cr_assert(cue_event_decoder_new(&d, &cfg, &err) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const event_case *c = &cases[i];
        cue_event ev;
        cue_reason reason;
        memset(&err, 0, sizeof err);
        int rc = cue_event_decode(d, c->raw, strlen(c->raw), &ev, &reason, &err);
        cr_expect_eq(reason, c->reason, "%s: reason %s, expected %s (%s)", c->raw,
                     cue_reason_name(reason), cue_reason_name(c->reason), err.msg);
        cr_expect_eq(rc != 0, c->reason != CUE_REASON_NONE, "%s: rc %d", c->raw, rc);
        if (rc != 0) {
            cr_expect(err.msg[0] != '\0', "%s: no message", c->raw);
            continue;
        }
        cr_expect(same(c->user_id, ev.user_id, ev.user_id_len), "%s: user id", c->raw);
        cr_expect(same(c->type, ev.type, ev.type_len), "%s: type", c->raw);
        cr_expect(same(c->event_id, ev.event_id, ev.event_id_len), "%s: event id", c->raw);
        cr_expect_eq(ev.ts_ms, c->ts, "%s: ts %lld", c->raw, (long long)ev.ts_ms);
    }
    cue_event_decoder_free(d);
}

Test(event, messages_name_the_field)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cr_assert(cue_config_set(&cfg, "event.time", "/when", &err) == 0, "%s", err.msg);
    cue_event_decoder *d;
    cue_event_decoder_new(&d, &cfg, &err);
    cue_event ev;
    cue_reason reason;
    const char *raw = "{\"user_id\":\"u\",\"type\":\"a\",\"when\":\"soon\"}";
    cr_assert(cue_event_decode(d, raw, strlen(raw), &ev, &reason, &err) != 0);
    cr_assert_eq(reason, CUE_REASON_BAD_TIME);
    cr_assert(strstr(err.msg, "/when") != NULL, "message: %s", err.msg);
    cue_event_decoder_free(d);
}

Test(event, size_limit_and_attributes)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_bytes_max = 64;
    cfg.event_time_min_ms = 0;
    cue_event_decoder *d;
    cue_err err;
    cue_event_decoder_new(&d, &cfg, &err);
    cue_event ev;
    cue_reason reason;
    char big[100];
    memset(big, ' ', sizeof big);
    cr_assert(cue_event_decode(d, big, sizeof big, &ev, &reason, &err) != 0);
    cr_assert_eq(reason, CUE_REASON_TOO_LARGE);
    const char *raw = "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1,\"user\":{\"region\":\"EU\"}}";
    cr_assert(cue_event_decode(d, raw, strlen(raw), &ev, &reason, &err) == 0, "%s", err.msg);
    cr_assert(same("EU", ev.attr[CUE_ATTR_REGION], ev.attr_len[CUE_ATTR_REGION]));
    cr_assert_null(ev.attr[CUE_ATTR_TIMEZONE]);
    cue_event_decoder_free(d);
}

/* Mutated records (fixed seed): every one either decodes or fails with a
 * reason and a message; none crashes (the suite runs under ASan and UBSan). */
Test(event, mutated_records_never_crash)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_event_decoder *d;
    cue_err err;
    cr_assert(cue_event_decoder_new(&d, &cfg, &err) == 0);
    static const char *seeds[] = {
        "{\"event_id\":\"e\\u00e9-1\",\"user_id\":\"u\\\"1\",\"type\":\"deadline_set\",\"ts\":"
        "\"2026-03-02T09:00:00.123+01:00\",\"props\":{\"project_id\":\"p1\",\"due_at\":"
        "1772971200000,"
        "\"tags\":[1,2.5e3,true,null]},\"user\":{\"timezone\":\"Europe/Berlin\"}}",
        "{\"user_id\":42,\"type\":\"x\",\"ts\":-1}",
    };
    char buf[512];
    unsigned seed = 7;
    size_t ok = 0, bad = 0;
    for (int i = 0; i < 200000; i++) {
        const char *src = seeds[i % 2];
        size_t n = strlen(src);
        memcpy(buf, src, n);
        for (int k = 0; k < 1 + i % 4 && n > 0; k++) {
            seed = seed * 1103515245 + 12345;
            size_t at = (seed >> 8) % n;
            switch ((seed >> 4) % 4) {
            case 0: buf[at] = (char)(seed >> 16); break;                /* any byte */
            case 1: n = at; break;                                      /* truncate */
            case 2: buf[at] = "{}[]\",:\\"[(seed >> 16) % 8]; break;    /* structure */
            default: buf[at] ^= (char)(1 << ((seed >> 16) % 8)); break; /* bit flip */
            }
        }
        cue_event ev;
        cue_reason reason;
        err.msg[0] = '\0';
        int rc = cue_event_decode(d, buf, n, &ev, &reason, &err);
        if (rc == 0) {
            ok++;
            cr_assert(ev.user_id_len > 0 && ev.type_len > 0);
        } else {
            bad++;
            cr_assert(reason != CUE_REASON_NONE && err.msg[0] != '\0', "rc %d without a reason",
                      rc);
        }
    }
    cr_assert_gt(ok, 0);
    cr_assert_gt(bad, 0);
    cue_event_decoder_free(d);
}

/* The message of a refused time names the likely unit mistake. */
Test(event, a_time_in_another_unit_is_named)
{
    static const struct {
        const char *raw, *says;
    } units[] = {
        {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1773300000}", "epoch seconds"},
        {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1773300000123456}", "epoch microseconds"},
        {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1773300000123456789}", "epoch nanoseconds"},
        {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":-5}", "before 1970"},
        {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1e999}", "out of range"},
        {"{\"user_id\":\"u\",\"type\":\"a\",\"ts\":12.5}", "whole number"},
    };
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_event_decoder *d;
    cue_err err;
    cr_assert(cue_event_decoder_new(&d, &cfg, &err) == 0);
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        cue_event ev;
        cue_reason reason;
        memset(&err, 0, sizeof err);
        cue_event_decode(d, units[i].raw, strlen(units[i].raw), &ev, &reason, &err);
        cr_expect_eq(reason, CUE_REASON_BAD_TIME, "%s: %s", units[i].raw, cue_reason_name(reason));
        cr_expect(strstr(err.msg, units[i].says) != NULL, "%s: '%s' does not say '%s'",
                  units[i].raw, err.msg, units[i].says);
        cr_expect(strstr(err.msg, "/ts") != NULL, "%s: '%s' names no pointer", units[i].raw,
                  err.msg);
    }
    cue_event_decoder_free(d);
}

/* Times before event.time.min (default 2000) are clocks that were never set:
 * 0, small numbers, 1970 in any spelling. */
Test(event, times_before_event_time_min_are_refused)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_event_decoder *d;
    cue_err err = {0};
    cr_assert(cue_event_decoder_new(&d, &cfg, &err) == 0);
    static const char *const early[] = {
        "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":0}",
        "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":-0}",
        "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":86400000}",
        "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"1970-01-01T00:00:00Z\"}",
        "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"1999-12-31T23:59:59.999Z\"}",
    };
    for (size_t i = 0; i < sizeof early / sizeof *early; i++) {
        cue_event ev;
        cue_reason reason;
        cue_err_clear(&err);
        cue_event_decode(d, early[i], strlen(early[i]), &ev, &reason, &err);
        cr_expect_eq(reason, CUE_REASON_BAD_TIME, "%s: %s", early[i], cue_reason_name(reason));
        cr_expect(strstr(err.msg, "before event.time.min (2000-01-01T00:00:00.000Z)") != NULL,
                  "%s: %s", early[i], err.msg);
    }
    const char *ok = "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"2000-01-01T00:00:00Z\"}";
    cue_event ev;
    cue_reason reason;
    cr_expect(cue_event_decode(d, ok, strlen(ok), &ev, &reason, &err) == 0, "%s", err.msg);
    cue_event_decoder_free(d);
    cr_assert(cue_config_set(&cfg, "event.time.min", "1970-01-01T00:00:00Z", &err) == 0, "%s",
              err.msg);
    cr_assert_eq(cfg.event_time_min_ms, 0);
    cr_expect_eq(cue_config_set(&cfg, "event.time.min", "soon", &err), CUE_ECONFIG);
}

static bool same_value(const cue_value *a, const cue_value *b)
{
    if (a->type != b->type || a->b != b->b || a->len != b->len) return false;
    if (a->type == CUE_VAL_INT) return a->i == b->i;
    if (a->type == CUE_VAL_DOUBLE) return a->d == b->d;
    return a->len == 0 || memcmp(a->s, b->s, a->len) == 0;
}

/* A declared pointer is found by the decoder's scan, any other by tokenizing
 * the record: the same values either way, also for records the scan leaves
 * to the tokenizer (an escaped key) and in their dead letters. */
Test(event, declared_and_undeclared_fields_agree)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0;
    cue_event_decoder *d;
    cue_err err = {0};
    cr_assert(cue_event_decoder_new(&d, &cfg, &err) == 0);
    static const char *const ptrs[] = {"/props/x", "/props/list/1", "/props", "/props/s",
                                       "/props/n", "/props/absent", "/ts"};
    enum { N = sizeof ptrs / sizeof *ptrs };
    cue_json_ptr declared[N], copy[N];
    for (int i = 0; i < N; i++) {
        cr_assert(cue_json_ptr_compile(&declared[i], ptrs[i], NULL) == 0);
        cr_assert(cue_json_ptr_compile(&copy[i], ptrs[i], NULL) == 0);
        cr_assert_eq(cue_event_decoder_want(d, &declared[i]), 0);
    }
    static const char *const records[] = {
        "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1000,\"props\":{\"x\":1.5,\"list\":[true,"
        "{\"k\":null}],\"s\":\"caf\\u00e9\",\"n\":-12}}",
        /* escaped keys: the tokenizer's path */
        "{\"\\u0075ser_id\":\"u\",\"type\":\"a\",\"ts\":1000,\"props\":{\"\\u0078\":\"y\","
        "\"list\":[1,2]}}",
        "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":\"1970-01-01T00:00:01Z\",\"props\":[]}",
    };
    for (size_t r = 0; r < sizeof records / sizeof *records; r++) {
        cue_event ev;
        cue_reason reason;
        int rc = cue_event_decode(d, records[r], strlen(records[r]), &ev, &reason, &err);
        cr_assert_eq(rc, 0, "%s: %s", records[r], err.msg);
        cr_expect(same("u", ev.user_id, ev.user_id_len), "%s: user id", records[r]);
        cr_expect_eq(ev.ts_ms, 1000);
        for (int i = 0; i < N; i++) {
            cue_value a = cue_event_value(&ev, &declared[i]);
            cue_value b = cue_event_value(&ev, &copy[i]);
            cr_expect(same_value(&a, &b), "%s at %s: types %d and %d", records[r], ptrs[i], a.type,
                      b.type);
        }
    }
    cue_event_decoder_free(d);
}

/* Past CUE_EVENT_FIELDS_MAX declared fields, a pointer is refused (and read
 * by tokenizing, still right). */
Test(event, declared_fields_are_bounded)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_event_decoder *d;
    cr_assert(cue_event_decoder_new(&d, &cfg, NULL) == 0);
    static cue_json_ptr p[CUE_EVENT_FIELDS_MAX + 1];
    int full = -1;
    for (int i = 0; i <= CUE_EVENT_FIELDS_MAX; i++) {
        char text[32];
        snprintf(text, sizeof text, "/props/f%d", i);
        cue_json_ptr_compile(&p[i], text, NULL);
        if (cue_event_decoder_want(d, &p[i]) == CUE_EFULL && full < 0) full = i;
    }
    cr_expect(full > 0 && full < CUE_EVENT_FIELDS_MAX, "full at %d", full);
    const char *raw = "{\"user_id\":\"u\",\"type\":\"a\",\"ts\":1000000000000,"
                      "\"props\":{\"f1\":1,\"f64\":64}}";
    cue_event ev;
    cue_reason reason;
    cr_assert(cue_event_decode(d, raw, strlen(raw), &ev, &reason, NULL) == 0);
    cue_value v1 = cue_event_value(&ev, &p[1]), v64 = cue_event_value(&ev, &p[64]);
    cr_expect(v1.type == CUE_VAL_INT && v1.i == 1);
    cr_expect(v64.type == CUE_VAL_INT && v64.i == 64);
    cue_event_decoder_free(d);
}

/* The prefetch hint's guess at the user id: right on plain records, and
 * silent (false) where it cannot tell cheaply; never a wrong length. */
Test(event, the_user_id_peeked_for_a_prefetch)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    static const struct {
        const char *raw, *want; /* want NULL: no guess */
    } peeks[] = {
        {"{\"user_id\":\"u1\",\"type\":\"a\"}", "u1"},
        {"{\"type\":\"user_id\",\"ts\":1, \"user_id\" :\t\"abc\"}", "abc"},
        {"{\"user_id\":42,\"type\":\"a\"}", "42"},
        {"{\"user_id\":-4.2e3}", "-4.2e3"},
        {"{\"user_id\":\"u\\u00e9\"}", NULL},
        {"{\"user_id\":\"\"}", NULL},
        {"{\"user_id\":null}", NULL},
        {"{\"user_id\":\"unterminated", NULL},
        {"{\"user_idx\":\"a\",\"xuser_id\":\"b\"}", NULL},
        {"{\"type\":\"a\"}", NULL},
    };
    for (size_t i = 0; i < sizeof peeks / sizeof *peeks; i++) {
        const char *id = NULL;
        size_t n = 0;
        bool got = cue_event_peek_user_id(&cfg, peeks[i].raw, strlen(peeks[i].raw), &id, &n);
        if (peeks[i].want == NULL) {
            cr_expect(!got, "%s: guessed '%.*s'", peeks[i].raw, (int)n, id);
        } else {
            cr_expect(got && n == strlen(peeks[i].want) && memcmp(id, peeks[i].want, n) == 0,
                      "%s: got '%.*s'", peeks[i].raw, got ? (int)n : 0, got ? id : "");
        }
    }
    /* A nested pointer is not guessed at. */
    cue_err err;
    cr_assert_eq(cue_json_ptr_compile(&cfg.ptr_user_id, "/user/id", &err), 0);
    const char *id;
    size_t n;
    cr_expect(!cue_event_peek_user_id(&cfg, "{\"user\":{\"id\":\"u\"}}", 20, &id, &n));
}
