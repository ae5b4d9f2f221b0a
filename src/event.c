/* Event decoding: one scan of the record that validates it whole and keeps
 * the declared fields; the tokenizer only for records the scan leaves to it
 * (bad ones, to say why) and for pointers nobody declared. No allocation. */
#include "cuepoint/event.h"

#include "cuepoint/timefmt.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* Unescaped strings of one event (escaped values only; most borrow the record). */
#define SCRATCH_BYTES (2 * CUE_EVENT_BYTES_MAX)

/* Declared pointers by address (open addressing, at most half full). */
#define KNOWN_SLOTS 128

struct cue_event_decoder {
    const cue_config *cfg; /* borrowed */
    cue_json_fields fields;
    const cue_json_ptr *field_ptr[CUE_EVENT_FIELDS_MAX]; /* borrowed: one per slot */
    struct {
        const cue_json_ptr *p; /* borrowed; NULL: free */
        int16_t slot;
    } known[KNOWN_SLOTS];
    unsigned n_known;
    int16_t slot_user_id, slot_type, slot_time, slot_event_id;
    int16_t slot_attr[CUE_ATTR_COUNT];        /* -1: the attribute is not configured */
    cue_json_tok field[CUE_EVENT_FIELDS_MAX]; /* the current event's */
    /* The tokens of the current record, when the scan left it to the
     * tokenizer or an undeclared pointer was read (doc_ready). */
    bool doc_ready;
    cue_json_doc doc;
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

static size_t known_hash(const cue_json_ptr *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL) >> 57) & (KNOWN_SLOTS - 1);
}

/* The slot of declared pointer `p`, or -1. */
static int known_slot(const cue_event_decoder *d, const cue_json_ptr *p)
{
    for (size_t h = known_hash(p);; h = (h + 1) & (KNOWN_SLOTS - 1)) {
        if (d->known[h].p == p) return d->known[h].slot;
        if (d->known[h].p == NULL) return -1;
    }
}

int cue_event_decoder_want(cue_event_decoder *d, const cue_json_ptr *p)
{
    if (known_slot(d, p) >= 0) return 0;
    if (d->n_known >= KNOWN_SLOTS / 2) return CUE_EFULL;
    int slot = cue_json_fields_add(&d->fields, p);
    if (slot < 0) return slot;
    if (d->field_ptr[slot] == NULL) d->field_ptr[slot] = p;
    size_t h = known_hash(p);
    while (d->known[h].p != NULL)
        h = (h + 1) & (KNOWN_SLOTS - 1);
    d->known[h].p = p;
    d->known[h].slot = (int16_t)slot;
    d->n_known++;
    return 0;
}

/* Declares one of the configuration's pointers; there is room for them all. */
static int16_t want_config(cue_event_decoder *d, const cue_json_ptr *p)
{
    int rc = cue_event_decoder_want(d, p);
    CUE_ASSERT(rc == 0);
    return (int16_t)known_slot(d, p);
}

int cue_event_decoder_new(cue_event_decoder **out, const cue_config *cfg, cue_err *err)
{
    cue_event_decoder *d = malloc(sizeof *d);
    *out = d;
    if (d == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory for the event decoder");
    d->cfg = cfg;
    d->scratch_used = 0;
    d->doc_ready = false;
    d->n_known = 0;
    memset(d->known, 0, sizeof d->known);
    memset(d->field_ptr, 0, sizeof d->field_ptr);
    cue_json_fields_init(&d->fields);
    d->slot_user_id = want_config(d, &cfg->ptr_user_id);
    d->slot_type = want_config(d, &cfg->ptr_type);
    d->slot_time = want_config(d, &cfg->ptr_time);
    d->slot_event_id = want_config(d, &cfg->ptr_event_id);
    for (int a = 0; a < CUE_ATTR_COUNT; a++)
        d->slot_attr[a] =
            cfg->ptr_attr[a].source[0] == '\0' ? -1 : want_config(d, &cfg->ptr_attr[a]);
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
static int text_field(const cue_event *ev, int16_t slot, bool numbers, char *buf, size_t cap,
                      const char **s, size_t *len)
{
    const cue_json_tok *tok = &ev->fields[slot];
    if (tok->type == CUE_JSON_NONE || tok->type == CUE_JSON_NULL) return CUE_ENOTFOUND;
    if ((numbers && tok->type == CUE_JSON_NUMBER) ||
        (tok->type == CUE_JSON_STRING && !tok->escaped)) {
        if (tok->len > cap) return CUE_ELIMIT;
        *s = ev->raw + tok->start;
        *len = tok->len;
        return 0;
    }
    if (tok->type != CUE_JSON_STRING) return CUE_EINVAL;
    if (tok->escaped & CUE_JSON_TOK_NUL) return CUE_EENCODING;
    int rc = cue_json_tok_string(ev->raw, tok, buf, cap + 1, len);
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
    int rc = text_field(ev, d->slot_user_id, true, d->user_id, CUE_USER_ID_BYTES_MAX, &ev->user_id,
                        &ev->user_id_len);
    if (rc == CUE_ENOTFOUND)
        return fail(reason, CUE_REASON_NO_USER, err, CUE_EPARSE, "no user id", &c->ptr_user_id);
    if (rc != 0 || ev->user_id_len == 0)
        return field_fail(reason, CUE_REASON_BAD_USER, err, "user id",
                          text_problem(rc, rc == CUE_ELIMIT
                                               ? "is longer than 128 bytes"
                                               : "is not a non-empty string or number"),
                          &c->ptr_user_id);
    rc = text_field(ev, d->slot_type, false, d->type, CUE_NAME_BYTES_MAX, &ev->type, &ev->type_len);
    if (rc == CUE_ENOTFOUND)
        return fail(reason, CUE_REASON_NO_TYPE, err, CUE_EPARSE, "no event type", &c->ptr_type);
    if (rc != 0 || ev->type_len == 0)
        return field_fail(reason, CUE_REASON_BAD_TYPE, err, "event type",
                          text_problem(rc, "is not a string of 1 to 64 bytes"), &c->ptr_type);
    ev->event_id = NULL;
    ev->event_id_len = 0;
    rc = text_field(ev, d->slot_event_id, true, d->event_id, CUE_KEY_BYTES_MAX, &ev->event_id,
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

static cue_value tok_value(const cue_event *ev, const cue_json_tok *tok);

static int decode_time_attrs(cue_event_decoder *d, cue_event *ev, cue_reason *reason, cue_err *err)
{
    const cue_config *c = d->cfg;
    /* Present but unreadable (a number too large for a double, say) is a bad
     * time, not a missing one. */
    const cue_json_tok *tt = &ev->fields[d->slot_time];
    if (tt->type == CUE_JSON_NONE || tt->type == CUE_JSON_NULL)
        return fail(reason, CUE_REASON_NO_TIME, err, CUE_EPARSE, "no event time", &c->ptr_time);
    cue_value tv = tok_value(ev, tt);
    if (tt->type == CUE_JSON_NUMBER && tv.type == CUE_VAL_ABSENT)
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
        if (d->slot_attr[a] < 0) continue;
        int rc = text_field(ev, d->slot_attr[a], false, d->attr[a], CUE_ATTR_BYTES_MAX,
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

/* The record as tokens, for the tokenizer's path and undeclared pointers:
 * once per record. */
static int tokenize(cue_event_decoder *d, const char *raw, size_t len, cue_err *err)
{
    if (d->doc_ready && d->doc.src == raw && d->doc.src_len == len) return 0;
    int rc = cue_json_parse(&d->doc, raw, len, d->toks, CUE_EVENT_TOKENS_MAX, err);
    d->doc_ready = rc == 0;
    return rc;
}

/* The declared fields of a record the scan left to the tokenizer, which
 * accepted it. */
static void fields_from_tokens(cue_event_decoder *d)
{
    for (uint16_t k = 0; k < d->fields.n_slots; k++) {
        int32_t t = cue_json_find(&d->doc, d->field_ptr[k]);
        if (t >= 0)
            d->field[k] = d->doc.toks[t];
        else
            d->field[k].type = CUE_JSON_NONE;
    }
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The first '"' at or after p, or NULL: sixteen bytes a step where SSE2 is
 * (every x86-64). The spans between quotes are a few bytes, where a call to
 * memchr cost more than the search (a twentieth of the file mode's time). */
static inline const char *next_quote(const char *p, const char *end)
{
#ifdef __SSE2__
    for (; end - p >= 16; p += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned bits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
        if (bits != 0) return p + __builtin_ctz(bits);
    }
#endif
    for (; p < end; p++)
        if (*p == '"') return p;
    return NULL;
}

bool cue_event_peek_user_id(const cue_config *cfg, const char *raw, size_t len, const char **id,
                            size_t *id_len)
{
    const cue_json_ptr *ptr = &cfg->ptr_user_id;
    if (ptr->n != 1 || ptr->seg[0].len == 0) return false;
    const char *key = ptr->text + ptr->seg[0].off, *end = raw + len, *at = raw;
    size_t klen = ptr->seg[0].len;
    const char *k;
    /* Each quote that may start the key. */
    for (k = raw; (k = next_quote(k, end)) != NULL; k++) {
        at = k + 1;
        /* The first byte first: most quotes open another key or a value. */
        if ((size_t)(end - at) < klen + 1 || at[0] != key[0] || at[klen] != '"' ||
            memcmp(at, key, klen) != 0)
            continue;
        at += klen + 1;
        const char *v = skip_space(at, end);
        if (v >= end || *v != ':') {
            k = at - 1; /* on after the key */
            continue;
        }
        v = skip_space(v + 1, end);
        const char *e = v;
        if (v < end && *v == '"') {
            v++;
            e = next_quote(v, end);
            if (e == NULL) return false;
            for (const char *b = v; b < e; b++)
                if (*b == '\\') return false;
        } else {
            while (e < end && strchr("0123456789+-.eE", *e) != NULL && *e != '\0')
                e++;
        }
        *id = v;
        *id_len = (size_t)(e - v);
        return *id_len > 0 && *id_len <= CUE_USER_ID_BYTES_MAX;
    }
    return false;
}

int cue_event_decode(cue_event_decoder *d, const char *raw, size_t len, cue_event *ev,
                     cue_reason *reason, cue_err *err)
{
    *reason = CUE_REASON_NONE;
    ev->topic = 0; /* the caller sets it (and the offset) when there are several */
    d->scratch_used = 0;
    d->doc_ready = false; /* the buffer may be the last record's, rewritten */
    ev->raw = raw;
    ev->raw_len = len;
    ev->dec = d;
    ev->fields = d->field;
    ev->n_fields = d->fields.n_slots;
    if (len > d->cfg->event_bytes_max) {
        *reason = CUE_REASON_TOO_LARGE;
        return cue_err_set(err, CUE_ELIMIT, "record of %zu bytes is over event.max.bytes (%zu)",
                           len, d->cfg->event_bytes_max);
    }
    bool root_object;
    if (cue_json_scan(&d->fields, raw, len, CUE_EVENT_TOKENS_MAX, d->field)) {
        /* A valid document's first byte past whitespace says what it is. */
        size_t i = 0;
        while (raw[i] == ' ' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == '\t')
            i++;
        root_object = raw[i] == '{';
    } else {
        int rc = tokenize(d, raw, len, err);
        if (rc != 0) {
            *reason = rc == CUE_EENCODING    ? CUE_REASON_BAD_ENCODING
                      : rc == CUE_EDUPLICATE ? CUE_REASON_DUPLICATE_KEY
                                             : CUE_REASON_NOT_JSON;
            cue_err_prefix(err, rc == CUE_EENCODING    ? "not UTF-8 text"
                                : rc == CUE_EDUPLICATE ? "ambiguous JSON"
                                                       : "not JSON");
            return CUE_EPARSE;
        }
        fields_from_tokens(d);
        root_object = d->doc.toks[0].type == CUE_JSON_OBJECT;
    }
    if (!root_object) {
        *reason = CUE_REASON_NOT_OBJECT;
        return cue_err_set(err, CUE_EPARSE, "the record is JSON but not an object");
    }
    int rc = decode_ids(d, ev, reason, err);
    if (rc == 0) rc = decode_time_attrs(d, ev, reason, err);
    return rc;
}

/* Copies an escaped string into the scratch; it is reset at every decode. */
static cue_value scratch_string(cue_event_decoder *d, const cue_event *ev, const cue_json_tok *t)
{
    cue_value v = {.type = CUE_VAL_ABSENT};
    size_t room = SCRATCH_BYTES - d->scratch_used, n = 0;
    char *dst = d->scratch + d->scratch_used;
    if (cue_json_tok_string(ev->raw, t, dst, room, &n) != 0) return v;
    d->scratch_used += n + 1;
    v.type = CUE_VAL_STRING;
    v.s = dst;
    v.len = (uint32_t)n;
    return v;
}

static cue_value tok_value(const cue_event *ev, const cue_json_tok *tok)
{
    cue_value v = {.type = CUE_VAL_ABSENT};
    switch (tok->type) {
    case CUE_JSON_NONE: break;
    case CUE_JSON_NULL: v.type = CUE_VAL_NULL; break;
    case CUE_JSON_TRUE:
    case CUE_JSON_FALSE:
        v.type = CUE_VAL_BOOL;
        v.b = tok->type == CUE_JSON_TRUE;
        break;
    case CUE_JSON_NUMBER:
        if (cue_json_tok_int64(ev->raw, tok, &v.i) == 0)
            v.type = CUE_VAL_INT;
        else if (cue_json_tok_double(ev->raw, tok, &v.d) == 0)
            v.type = CUE_VAL_DOUBLE;
        break;
    case CUE_JSON_STRING:
        if (tok->escaped) return scratch_string(ev->dec, ev, tok);
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

cue_value cue_event_value(const cue_event *ev, const cue_json_ptr *p)
{
    cue_event_decoder *d = ev->dec;
    int slot = known_slot(d, p);
    if (slot >= 0 && (uint32_t)slot < ev->n_fields) return tok_value(ev, &ev->fields[slot]);
    /* Not declared (or declared after this event was decoded). The record
     * was valid, so it tokenizes. */
    cue_value absent = {.type = CUE_VAL_ABSENT};
    if (tokenize(d, ev->raw, ev->raw_len, NULL) != 0) return absent;
    int32_t t = cue_json_find(&d->doc, p);
    return t < 0 ? absent : tok_value(ev, &d->doc.toks[t]);
}
