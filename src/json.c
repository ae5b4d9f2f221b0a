/* An allocation-free, validating JSON tokenizer and JSON Pointer resolver. */
#include "cuepoint/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t len, i;
    cue_json_doc *doc;
    cue_err *err;
    int rc;
} parser;

static int fail(parser *p, int code, const char *what)
{
    if (p->rc == 0) {
        p->rc = code;
        cue_err_set(p->err, code, "at byte %zu: %s", p->i, what);
    }
    return -1;
}

static void skip_ws(parser *p)
{
    while (p->i < p->len) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
        p->i++;
    }
}

static long new_tok(parser *p, cue_json_type type)
{
    if (p->doc->n >= p->doc->cap) return fail(p, CUE_ELIMIT, "too many values (token limit)");
    cue_json_tok *t = &p->doc->toks[p->doc->n];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->start = (uint32_t)p->i;
    return (long)p->doc->n++;
}

static void end_tok(parser *p, long t)
{
    cue_json_tok *tok = &p->doc->toks[t];
    tok->len = (uint32_t)(p->i - tok->start);
    tok->next = p->doc->n;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int parse_string(parser *p)
{
    p->i++; /* the opening quote */
    long t = new_tok(p, CUE_JSON_STRING);
    if (t < 0) return -1;
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            end_tok(p, t);
            p->i++;
            return 0;
        }
        if (c < 0x20) return fail(p, CUE_EPARSE, "control character in a string");
        if (c == '\\') {
            p->doc->toks[t].escaped = 1;
            if (p->i + 1 >= p->len) break;
            char e = p->s[p->i + 1];
            if (e == 'u') {
                if (p->i + 6 > p->len || hex4(p->s + p->i + 2) < 0)
                    return fail(p, CUE_EPARSE, "bad \\u escape");
                p->i += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0') return fail(p, CUE_EPARSE, "bad escape");
            p->i += 2;
            continue;
        }
        p->i++;
    }
    return fail(p, CUE_EPARSE, "unterminated string");
}

static int parse_number(parser *p)
{
    long t = new_tok(p, CUE_JSON_NUMBER);
    if (t < 0) return -1;
    const char *s = p->s;
    size_t i = p->i, n = p->len;
    if (i < n && s[i] == '-') i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return fail(p, CUE_EPARSE, "bad number");
    if (s[i] == '0')
        i++;
    else
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d) return fail(p, CUE_EPARSE, "bad number: no digits after '.'");
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d) return fail(p, CUE_EPARSE, "bad number: no digits in the exponent");
    }
    p->i = i;
    end_tok(p, t);
    return 0;
}

static int parse_literal(parser *p, const char *word, cue_json_type type)
{
    size_t n = strlen(word);
    if (p->len - p->i < n || memcmp(p->s + p->i, word, n) != 0)
        return fail(p, CUE_EPARSE, "unexpected character");
    long t = new_tok(p, type);
    if (t < 0) return -1;
    p->i += n;
    end_tok(p, t);
    return 0;
}

static int parse_value(parser *p, int depth);

static int parse_container(parser *p, int depth, bool object)
{
    if (depth >= CUE_JSON_DEPTH_MAX) return fail(p, CUE_ELIMIT, "nested too deep");
    long t = new_tok(p, object ? CUE_JSON_OBJECT : CUE_JSON_ARRAY);
    if (t < 0) return -1;
    char close = object ? '}' : ']';
    p->i++;
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == close) {
        p->i++;
        end_tok(p, t);
        return 0;
    }
    for (;;) {
        if (object) {
            skip_ws(p);
            if (p->i >= p->len || p->s[p->i] != '"')
                return fail(p, CUE_EPARSE, "expected a string key");
            if (parse_string(p) != 0) return -1;
            skip_ws(p);
            if (p->i >= p->len || p->s[p->i] != ':')
                return fail(p, CUE_EPARSE, "expected ':' after object key");
            p->i++;
        }
        if (parse_value(p, depth + 1) != 0) return -1;
        p->doc->toks[t].size++;
        skip_ws(p);
        if (p->i >= p->len) return fail(p, CUE_EPARSE, "unterminated object or array");
        char c = p->s[p->i++];
        if (c == close) break;
        if (c != ',')
            return fail(p, CUE_EPARSE, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    end_tok(p, t);
    return 0;
}

static int parse_value(parser *p, int depth)
{
    skip_ws(p);
    if (p->i >= p->len) return fail(p, CUE_EPARSE, "unexpected end of input");
    char c = p->s[p->i];
    switch (c) {
    case '{': return parse_container(p, depth, true);
    case '[': return parse_container(p, depth, false);
    case '"': return parse_string(p);
    case 't': return parse_literal(p, "true", CUE_JSON_TRUE);
    case 'f': return parse_literal(p, "false", CUE_JSON_FALSE);
    case 'n': return parse_literal(p, "null", CUE_JSON_NULL);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
        return fail(p, CUE_EPARSE, "unexpected character");
    }
}

int cue_json_parse(cue_json_doc *doc, const char *src, size_t len, cue_json_tok *toks, uint32_t cap,
                   cue_err *err)
{
    doc->src = src;
    doc->src_len = len;
    doc->toks = toks;
    doc->n = 0;
    doc->cap = cap;
    parser p = {.s = src, .len = len, .doc = doc, .err = err};
    if (parse_value(&p, 0) != 0) return p.rc;
    skip_ws(&p);
    if (p.i != len) {
        fail(&p, CUE_EPARSE, "unexpected data after the value");
        return p.rc;
    }
    return 0;
}

/* ---- pointers ---------------------------------------------------------- */

int cue_json_ptr_compile(cue_json_ptr *p, const char *text, cue_err *err)
{
    memset(p, 0, sizeof *p);
    size_t len = strlen(text);
    if (len >= sizeof p->source)
        return cue_err_set(err, CUE_ELIMIT, "JSON Pointer longer than %zu bytes",
                           sizeof p->source - 1);
    memcpy(p->source, text, len + 1);
    if (len == 0) return 0;
    if (text[0] != '/')
        return cue_err_set(err, CUE_EPARSE, "a JSON Pointer starts with '/' (e.g. \"/%s\")", text);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (p->n >= CUE_JSON_PTR_SEGS_MAX)
            return cue_err_set(err, CUE_ELIMIT, "more than %d segments", CUE_JSON_PTR_SEGS_MAX);
        i++; /* the '/' */
        size_t start = o;
        bool all_digits = true;
        while (i < len && text[i] != '/') {
            char c = text[i++];
            if (c == '~') {
                if (i >= len || (text[i] != '0' && text[i] != '1'))
                    return cue_err_set(err, CUE_EPARSE, "'~' must be followed by 0 or 1");
                c = text[i++] == '0' ? '~' : '/';
            }
            all_digits = all_digits && c >= '0' && c <= '9';
            p->text[o++] = c;
        }
        size_t n = o - start;
        p->seg[p->n].off = (uint16_t)start;
        p->seg[p->n].len = (uint16_t)n;
        p->seg[p->n].index = -1;
        if (all_digits && n > 0 && n < 10 && (n == 1 || p->text[start] != '0'))
            p->seg[p->n].index = (int32_t)strtol(p->text + start, NULL, 10);
        p->n++;
    }
    return 0;
}

static bool key_eq(const cue_json_doc *doc, uint32_t t, const char *s, size_t n)
{
    const cue_json_tok *k = &doc->toks[t];
    if (!k->escaped) return k->len == n && memcmp(doc->src + k->start, s, n) == 0;
    return cue_json_string_eq(doc, t, s, n);
}

int32_t cue_json_member(const cue_json_doc *doc, uint32_t obj, const char *key, size_t key_len)
{
    const cue_json_tok *o = &doc->toks[obj];
    if (o->type != CUE_JSON_OBJECT) return -1;
    uint32_t child = obj + 1;
    for (uint32_t k = 0; k < o->size; k++) {
        uint32_t val = child + 1;
        if (key_eq(doc, child, key, key_len)) return (int32_t)val;
        child = doc->toks[val].next;
    }
    return -1;
}

int32_t cue_json_find(const cue_json_doc *doc, const cue_json_ptr *p)
{
    if (doc->n == 0) return -1;
    uint32_t t = 0;
    for (uint8_t s = 0; s < p->n; s++) {
        const cue_json_tok *tok = &doc->toks[t];
        if (tok->type == CUE_JSON_OBJECT) {
            int32_t v = cue_json_member(doc, t, p->text + p->seg[s].off, p->seg[s].len);
            if (v < 0) return -1;
            t = (uint32_t)v;
        } else if (tok->type == CUE_JSON_ARRAY) {
            int32_t idx = p->seg[s].index;
            if (idx < 0 || (uint32_t)idx >= tok->size) return -1;
            uint32_t child = t + 1;
            for (int32_t k = 0; k < idx; k++)
                child = doc->toks[child].next;
            t = child;
        } else {
            return -1;
        }
    }
    return (int32_t)t;
}

/* ---- values ------------------------------------------------------------ */

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Reads the \u escape at s[i] (s[i] == 'u'), with a following low surrogate
 * when it is a high one. Returns the code point or -1. */
static long unicode_escape(const char *s, size_t end, size_t *i)
{
    if (*i + 5 > end) return -1;
    long cp = hex4(s + *i + 1);
    *i += 5;
    if (cp >= 0xdc00 && cp <= 0xdfff) return -1;
    if (cp < 0xd800 || cp > 0xdbff) return cp;
    if (*i + 6 > end || s[*i] != '\\' || s[*i + 1] != 'u') return -1;
    long lo = hex4(s + *i + 2);
    if (lo < 0xdc00 || lo > 0xdfff) return -1;
    *i += 6;
    return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
}

int cue_json_string(const cue_json_doc *doc, uint32_t t, char *out, size_t cap, size_t *len)
{
    const cue_json_tok *k = &doc->toks[t];
    if (k->type != CUE_JSON_STRING) return CUE_EINVAL;
    const char *s = doc->src;
    size_t end = k->start + k->len, n = 0;
    for (size_t i = k->start; i < end;) {
        char buf[4];
        size_t w = 1;
        if (s[i] != '\\') {
            buf[0] = s[i++];
        } else {
            char e = s[++i];
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *f = e == 'u' ? NULL : strchr(from, e);
            if (f) {
                buf[0] = to[f - from];
                i++;
            } else {
                long cp = unicode_escape(s, end, &i);
                if (cp < 0) return CUE_EPARSE;
                w = put_utf8(buf, (uint32_t)cp);
            }
        }
        if (n + w + 1 > cap) return CUE_ELIMIT;
        memcpy(out + n, buf, w);
        n += w;
    }
    if (cap == 0) return CUE_ELIMIT;
    out[n] = '\0';
    *len = n;
    return 0;
}

bool cue_json_string_eq(const cue_json_doc *doc, uint32_t t, const char *s, size_t n)
{
    const cue_json_tok *k = &doc->toks[t];
    if (k->type != CUE_JSON_STRING) return false;
    if (!k->escaped) return k->len == n && memcmp(doc->src + k->start, s, n) == 0;
    char buf[CUE_KEY_BYTES_MAX * 2];
    size_t len;
    if (n >= sizeof buf || cue_json_string(doc, t, buf, sizeof buf, &len) != 0) return false;
    return len == n && memcmp(buf, s, n) == 0;
}

int cue_json_int64(const cue_json_doc *doc, uint32_t t, int64_t *out)
{
    const cue_json_tok *k = &doc->toks[t];
    if (k->type != CUE_JSON_NUMBER) return CUE_EINVAL;
    const char *s = doc->src + k->start;
    size_t i = 0, n = k->len;
    bool neg = s[0] == '-';
    if (neg) i++;
    uint64_t v = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) return CUE_ELIMIT;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == n) {
        if (v > (uint64_t)INT64_MAX + neg) return CUE_ELIMIT;
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
    }
    /* A fraction or exponent: accept it only when the value is a whole number. */
    double d;
    if (cue_json_double(doc, t, &d) != 0 || d != floor(d) || d < -9.2233720368547758e18 ||
        d >= 9.2233720368547758e18)
        return CUE_ELIMIT;
    *out = (int64_t)d;
    return 0;
}

int cue_json_double(const cue_json_doc *doc, uint32_t t, double *out)
{
    const cue_json_tok *k = &doc->toks[t];
    if (k->type != CUE_JSON_NUMBER) return CUE_EINVAL;
    char buf[64];
    if (k->len >= sizeof buf) return CUE_ELIMIT;
    memcpy(buf, doc->src + k->start, k->len);
    buf[k->len] = '\0';
    *out = strtod(buf, NULL);
    return 0;
}
