/* Event decoding: tokenize once, resolve a handful of pointers, no allocation. */
#include "cuepoint/event.h"

#include "cuepoint/timefmt.h"

#include <stdlib.h>
#include <string.h>

/* Unescaped strings of one event (escaped values only; most borrow the record). */
#define SCRATCH_BYTES (2 * CUE_EVENT_BYTES_MAX)

struct cue_event_decoder {
    const cue_config *cfg; /* borrowed */
    cue_json_tok toks[CUE_EVENT_TOKENS_MAX];
    char user_id[CUE_USER_ID_BYTES_MAX + 1];
    char type[CUE_NAME_BYTES_MAX + 1];
    char event_id[CUE_KEY_BYTES_MAX + 1];
    char attr[CUE_ATTR_COUNT][CUE_ATTR_BYTES_MAX + 1];
    size_t scratch_used;
    char scratch[SCRATCH_BYTES];
};

const char *cue_reason_name(cue_reason r)
{
    static const char *const names[] = {
#define CUE_REASON_NAME(name, text) text,
        CUE_REASONS(CUE_REASON_NAME)
#undef CUE_REASON_NAME
    };
    return (unsigned)r < CUE_REASON_COUNT ? names[r] : "unknown";
}

int cue_event_decoder_new(cue_event_decoder **out, const cue_config *cfg, cue_err *err)
{
    *out = malloc(sizeof **out);
    if (*out == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory for the event decoder");
    (*out)->cfg = cfg;
    (*out)->scratch_used = 0;
    return 0;
}

void cue_event_decoder_free(cue_event_decoder *d)
{
    free(d);
}

/* A string field as bytes: borrowed from the record when it has no escapes,
 * else unescaped into `buf`. With `numbers`, a number is taken as its text
 * (ids are often numeric; types and attributes are not). Returns 0, CUE_ENOTFOUND (absent or null),
 * CUE_EINVAL (other type), CUE_ELIMIT (longer than cap) or CUE_EENCODING (it
 * holds \u0000: ids and names are compared and stored as bytes, and a NUL
 * would end them early wherever they become C strings). */
static int text_field(const cue_event *ev, const cue_json_ptr *p, bool numbers, char *buf,
                      size_t cap, const char **s, size_t *len)
{
    int32_t t = cue_json_find(&ev->doc, p);
    if (t < 0 || ev->doc.toks[t].type == CUE_JSON_NULL) return CUE_ENOTFOUND;
    const cue_json_tok *tok = &ev->doc.toks[t];
    if ((numbers && tok->type == CUE_JSON_NUMBER) ||
        (tok->type == CUE_JSON_STRING && !tok->escaped)) {
        if (tok->len > cap) return CUE_ELIMIT;
        *s = ev->raw + tok->start;
        *len = tok->len;
        return 0;
    }
    if (tok->type != CUE_JSON_STRING) return CUE_EINVAL;
    if (tok->escaped & CUE_JSON_TOK_NUL) return CUE_EENCODING;
    int rc = cue_json_string(&ev->doc, (uint32_t)t, buf, cap + 1, len);
    *s = buf;
    return rc;
}

static int fail(cue_reason *reason, cue_reason r, cue_err *err, int code, const char *what,
                const cue_json_ptr *p)
{
    *reason = r;
    return cue_err_set(err, code, "%s at %s", what, p->source[0] ? p->source : "(root)");
}

/* Why a text field could not be used, for a dead letter's message. */
static const char *text_problem(int rc, const char *what_bad)
{
    if (rc == CUE_EENCODING) return "contains a NUL character (\\u0000)";
    return what_bad;
}

static int field_fail(cue_reason *reason, cue_reason r, cue_err *err, const char *field,
                      const char *problem, const cue_json_ptr *p)
{
    *reason = r;
    return cue_err_set(err, CUE_EPARSE, "%s %s at %s", field, problem,
                       p->source[0] ? p->source : "(root)");
}

static int decode_ids(cue_event_decoder *d, cue_event *ev, cue_reason *reason, cue_err *err)
{
    const cue_config *c = d->cfg;
    int rc = text_field(ev, &c->ptr_user_id, true, d->user_id, CUE_USER_ID_BYTES_MAX, &ev->user_id,
                        &ev->user_id_len);
    if (rc == CUE_ENOTFOUND)
        return fail(reason, CUE_REASON_NO_USER, err, CUE_EPARSE, "no user id", &c->ptr_user_id);
    if (rc != 0 || ev->user_id_len == 0)
        return field_fail(reason, CUE_REASON_BAD_USER, err, "user id",
                          text_problem(rc, rc == CUE_ELIMIT
                                               ? "is longer than 128 bytes"
                                               : "is not a non-empty string or number"),
                          &c->ptr_user_id);
    rc = text_field(ev, &c->ptr_type, false, d->type, CUE_NAME_BYTES_MAX, &ev->type, &ev->type_len);
    if (rc == CUE_ENOTFOUND)
        return fail(reason, CUE_REASON_NO_TYPE, err, CUE_EPARSE, "no event type", &c->ptr_type);
    if (rc != 0 || ev->type_len == 0)
        return field_fail(reason, CUE_REASON_BAD_TYPE, err, "event type",
                          text_problem(rc, "is not a string of 1 to 64 bytes"), &c->ptr_type);
    ev->event_id = NULL;
    ev->event_id_len = 0;
    rc = text_field(ev, &c->ptr_event_id, true, d->event_id, CUE_KEY_BYTES_MAX, &ev->event_id,
                    &ev->event_id_len);
    if (rc == CUE_ENOTFOUND || (rc == 0 && ev->event_id_len == 0))
        ev->event_id = NULL; /* "" names no event: it is not an id */
    else if (rc != 0)
        return field_fail(reason, CUE_REASON_BAD_FIELD, err, "event id",
                          text_problem(rc, "is not a string or number of at most 128 bytes"),
                          &c->ptr_event_id);
    return 0;
}

/* 1970 to 9999: before the epoch is no product event's time (a negative
 * epoch is a broken clock), and RFC 3339 stops at year 9999, which keeps
 * time arithmetic far from overflow. */
#define EVENT_MS_MIN 0LL
#define EVENT_MS_MAX 253402300799999LL
/* Integers in [1e9, 1e11) read as milliseconds are 1970-01-12 to 1973-03-03,
 * a time no event of this product has, while as seconds they are 2001 to
 * 5138: they are epoch seconds. */
#define SECONDS_LOOKALIKE_MIN 1000000000LL
#define SECONDS_LOOKALIKE_MAX 100000000000LL

int cue_event_time_of(const cue_value *v, int64_t *ms)
{
    if (v->type == CUE_VAL_INT) {
        if (v->i < EVENT_MS_MIN || v->i > EVENT_MS_MAX) return CUE_EPARSE;
        if (v->i >= SECONDS_LOOKALIKE_MIN && v->i < SECONDS_LOOKALIKE_MAX) return CUE_EPARSE;
        *ms = v->i;
        return 0;
    }
    if (v->type == CUE_VAL_STRING) {
        int rc = cue_time_parse_rfc3339(v->s, v->len, ms);
        /* An offset can carry year 9999 local past year 9999 UTC. */
        if (rc == 0 && (*ms < EVENT_MS_MIN || *ms > EVENT_MS_MAX)) return CUE_EPARSE;
        return rc;
    }
    return CUE_EPARSE;
}

/* Says what is wrong with an event time that cue_event_time_of refused, naming
 * a likely unit mistake: a clock in seconds, microseconds or nanoseconds. */
static int bad_time(cue_reason *reason, cue_err *err, const cue_value *v, const cue_json_ptr *p)
{
    *reason = CUE_REASON_BAD_TIME;
    const char *at = p->source[0] ? p->source : "(root)";
    if (v->type == CUE_VAL_INT) {
        int64_t i = v->i;
        if (i < 0)
            return cue_err_set(err, CUE_EPARSE,
                               "event time %lld at %s is before 1970 (negative epoch milliseconds)",
                               (long long)i, at);
        if (i >= SECONDS_LOOKALIKE_MIN && i < SECONDS_LOOKALIKE_MAX)
            return cue_err_set(err, CUE_EPARSE,
                               "event time %lld at %s looks like epoch seconds: as milliseconds, "
                               "which event.time expects, it is in 1970",
                               (long long)i, at);
        const char *unit = i / 1000 <= EVENT_MS_MAX      ? "microseconds"
                           : i / 1000000 <= EVENT_MS_MAX ? "nanoseconds"
                                                         : NULL;
        if (unit)
            return cue_err_set(err, CUE_EPARSE,
                               "event time %lld at %s is after year 9999 as milliseconds; it looks "
                               "like epoch %s",
                               (long long)i, at, unit);
        return cue_err_set(err, CUE_EPARSE, "event time %lld at %s is after year 9999",
                           (long long)i, at);
    }
    if (v->type == CUE_VAL_STRING)
        return cue_err_set(err, CUE_EPARSE,
                           "event time at %s is not an RFC 3339 time with offset between 1970 "
                           "and 9999",
                           at);
    if (v->type == CUE_VAL_DOUBLE)
        return cue_err_set(err, CUE_EPARSE,
                           "event time at %s is not a whole number of epoch milliseconds", at);
    return cue_err_set(err, CUE_EPARSE,
                       "event time at %s is neither epoch milliseconds nor an RFC 3339 time with "
                       "offset",
                       at);
}

static int decode_time_attrs(cue_event_decoder *d, cue_event *ev, cue_reason *reason, cue_err *err)
{
    const cue_config *c = d->cfg;
    /* Present but unreadable (a number too large for a double, say) is a bad
     * time, not a missing one. */
    int32_t tt = cue_json_find(&ev->doc, &c->ptr_time);
    if (tt < 0 || ev->doc.toks[tt].type == CUE_JSON_NULL)
        return fail(reason, CUE_REASON_NO_TIME, err, CUE_EPARSE, "no event time", &c->ptr_time);
    cue_value tv = cue_event_value(ev, &c->ptr_time);
    if (ev->doc.toks[tt].type == CUE_JSON_NUMBER && tv.type == CUE_VAL_ABSENT)
        return fail(reason, CUE_REASON_BAD_TIME, err, CUE_EPARSE,
                    "event time is a number out of range", &c->ptr_time);
    if (cue_event_time_of(&tv, &ev->ts_ms) != 0) return bad_time(reason, err, &tv, &c->ptr_time);
    if (ev->ts_ms < c->event_time_min_ms) {
        char at[CUE_TIME_TEXT_MAX], min[CUE_TIME_TEXT_MAX];
        cue_time_format_rfc3339(ev->ts_ms, at);
        cue_time_format_rfc3339(c->event_time_min_ms, min);
        *reason = CUE_REASON_BAD_TIME;
        return cue_err_set(err, CUE_EPARSE,
                           "event time %s at %s is before event.time.min (%s): a clock that was "
                           "never set?",
                           at, c->ptr_time.source[0] ? c->ptr_time.source : "(root)", min);
    }
    for (int a = 0; a < CUE_ATTR_COUNT; a++) {
        ev->attr[a] = NULL;
        ev->attr_len[a] = 0;
        if (c->ptr_attr[a].source[0] == '\0') continue;
        int rc = text_field(ev, &c->ptr_attr[a], false, d->attr[a], CUE_ATTR_BYTES_MAX,
                            &ev->attr[a], &ev->attr_len[a]);
        if (rc == CUE_ENOTFOUND)
            ev->attr[a] = NULL;
        else if (rc != 0)
            return field_fail(reason, CUE_REASON_BAD_FIELD, err, "attribute",
                              text_problem(rc, "is not a string of at most 64 bytes"),
                              &c->ptr_attr[a]);
    }
    return 0;
}

int cue_event_decode(cue_event_decoder *d, const char *raw, size_t len, cue_event *ev,
                     cue_reason *reason, cue_err *err)
{
    *reason = CUE_REASON_NONE;
    ev->topic = 0; /* the caller sets it (and the offset) when there are several */
    d->scratch_used = 0;
    ev->raw = raw;
    ev->raw_len = len;
    ev->dec = d;
    if (len > d->cfg->event_bytes_max) {
        *reason = CUE_REASON_TOO_LARGE;
        return cue_err_set(err, CUE_ELIMIT, "record of %zu bytes is over event.max.bytes (%zu)",
                           len, d->cfg->event_bytes_max);
    }
    int rc = cue_json_parse(&ev->doc, raw, len, d->toks, CUE_EVENT_TOKENS_MAX, err);
    if (rc != 0) {
        *reason = rc == CUE_EENCODING    ? CUE_REASON_BAD_ENCODING
                  : rc == CUE_EDUPLICATE ? CUE_REASON_DUPLICATE_KEY
                                         : CUE_REASON_NOT_JSON;
        cue_err_prefix(err, rc == CUE_EENCODING    ? "not UTF-8 text"
                            : rc == CUE_EDUPLICATE ? "ambiguous JSON"
                                                   : "not JSON");
        return CUE_EPARSE;
    }
    if (ev->doc.toks[0].type != CUE_JSON_OBJECT) {
        *reason = CUE_REASON_NOT_OBJECT;
        return cue_err_set(err, CUE_EPARSE, "the record is JSON but not an object");
    }
    rc = decode_ids(d, ev, reason, err);
    if (rc == 0) rc = decode_time_attrs(d, ev, reason, err);
    return rc;
}

/* Copies an escaped string into the scratch; it is reset at every decode. */
static cue_value scratch_string(cue_event_decoder *d, const cue_event *ev, uint32_t t)
{
    cue_value v = {.type = CUE_VAL_ABSENT};
    size_t room = SCRATCH_BYTES - d->scratch_used, n = 0;
    char *dst = d->scratch + d->scratch_used;
    if (cue_json_string(&ev->doc, t, dst, room, &n) != 0) return v;
    d->scratch_used += n + 1;
    v.type = CUE_VAL_STRING;
    v.s = dst;
    v.len = (uint32_t)n;
    return v;
}

cue_value cue_event_value(const cue_event *ev, const cue_json_ptr *p)
{
    cue_value v = {.type = CUE_VAL_ABSENT};
    int32_t t = cue_json_find(&ev->doc, p);
    if (t < 0) return v;
    const cue_json_tok *tok = &ev->doc.toks[t];
    switch (tok->type) {
    case CUE_JSON_NULL: v.type = CUE_VAL_NULL; break;
    case CUE_JSON_TRUE:
    case CUE_JSON_FALSE:
        v.type = CUE_VAL_BOOL;
        v.b = tok->type == CUE_JSON_TRUE;
        break;
    case CUE_JSON_NUMBER:
        if (cue_json_int64(&ev->doc, (uint32_t)t, &v.i) == 0)
            v.type = CUE_VAL_INT;
        else if (cue_json_double(&ev->doc, (uint32_t)t, &v.d) == 0)
            v.type = CUE_VAL_DOUBLE;
        break;
    case CUE_JSON_STRING:
        if (tok->escaped) return scratch_string(ev->dec, ev, (uint32_t)t);
        v.type = CUE_VAL_STRING;
        v.s = ev->raw + tok->start;
        v.len = tok->len;
        break;
    default:
        v.type = CUE_VAL_JSON;
        v.s = ev->raw + tok->start;
        v.len = tok->len;
    }
    return v;
}
