/*
 * An allocation-free, validating JSON tokenizer and JSON Pointer resolver.
 *
 * The tokenizer is one loop over an explicit stack of open containers rather
 * than a recursive descent: input controls nesting, and a bounded array of
 * CUE_JSON_DEPTH_MAX entries is a limit we can state, where C stack frames are
 * not.
 *
 * Text is strict, because ids and names read from it are compared as bytes
 * with Kafka keys and stored state: strings must be valid UTF-8 (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF), a \u escape of
 * a surrogate must be half of a pair, and an object may not name a key
 * twice (RFC 8259 leaves the meaning of a repeated name to each reader, so
 * two readers of one record could see two different users). These checks
 * run in the same pass as the grammar: ASCII stays on the fast path, and
 * only bytes >= 0x80, escapes and keys that might repeat take a slower one.
 */
#include "cuepoint/json.h"

#include "cuepoint/utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x)  STR_(x)

/* Where the tokenizer loop stands after a step; errors are negative codes. */
enum {
    STEP_VALUE_DONE = 0, /* a value is complete: count it in its container */
    STEP_WANT_VALUE = 1, /* a value must follow (after '[', ',' or a key's ':') */
    STEP_DOC_DONE = 2,   /* the top-level value is complete */
};

/* Duplicate keys (key_seen): an object's first KEYS_LINEAR keys are
 * compared with each other; past that, its keys go in a table of the
 * document's keys, sized for an event's CUE_EVENT_TOKENS_MAX (at most half
 * of them keys) at half load. */
#define KEYS_LINEAR     8
#define KEY_TABLE_SLOTS 4096
typedef struct key_slot {
    uint32_t key; /* token index + 1; 0: empty */
    uint32_t obj; /* the key's object's token index */
} key_slot;

typedef struct parser {
    const char *s;
    size_t len;
    size_t i; /* the next byte to read */
    cue_json_tok *toks;
    uint32_t n, cap;
    uint32_t depth;
    uint32_t stack[CUE_JSON_DEPTH_MAX]; /* token index of each open container */
    /* Per open object, a 64-bit filter of its keys so far (see key_seen);
     * bit 63 is kept for "a key was escaped": compare every key then. */
    uint64_t keys[CUE_JSON_DEPTH_MAX];
    /* The keys of objects past KEYS_LINEAR keys (key_seen), filled lazily:
     * an event's objects rarely get there. */
    key_slot ktab[KEY_TABLE_SLOTS];
    uint32_t ktab_used;
    bool ktab_ready;
    int rc; /* a failure's code, where a helper returns something else */
    cue_err *err;
} parser;

/* ASCII bytes that may appear unescaped inside a string: not '"' (0x22), not
 * '\\' (0x5c), not a control character. Bytes >= 0x80 leave the fast loop to
 * be checked as UTF-8. A table keeps the scan to one load and one branch a
 * byte. */
// clang-format off
static const uint8_t str_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};
// clang-format on

__attribute__((cold)) static int fail(parser *p, int code, const char *what)
{
    return cue_err_set(p->err, code, "at byte %zu: %s", p->i, what);
}

static inline void skip_ws(parser *p)
{
    const char *s = p->s;
    size_t i = p->i, n = p->len;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
        i++;
    p->i = i;
}

__attribute__((cold)) static void fail_tokens(parser *p)
{
    cue_err_set(p->err, CUE_ELIMIT, "at byte %zu: more than %u values (token limit)", p->i, p->cap);
}

/* The next token, or NULL (CUE_ELIMIT, message set) when the array is full. */
static inline cue_json_tok *new_tok(parser *p, cue_json_type type, size_t start)
{
    if (p->n >= p->cap) {
        fail_tokens(p);
        return NULL;
    }
    cue_json_tok *t = &p->toks[p->n];
    t->type = (uint8_t)type;
    t->escaped = 0;
    t->pad_ = 0;
    t->start = (uint32_t)start;
    t->len = 0;
    t->size = 0;
    t->next = ++p->n; /* right for scalars; a container's is set when it closes */
    return t;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The four hex digits at s, or -1. */
static long hex4(const char *s)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int d = hex_digit(s[k]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Length of the escape sequence at s[i] (a backslash), or 0 if it is not one
 * RFC 8259 allows. Surrogate pairing is checked when the string is read. */
static size_t escape_len(const char *s, size_t i, size_t n)
{
    if (i + 1 >= n) return 0;
    switch (s[i + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't': return 2;
    case 'u': return i + 6 <= n && hex4(s + i + 2) >= 0 ? 6 : 0;
    default: return 0;
    }
}

/* Why the string opened at `open` cannot go on at byte i. */
__attribute__((cold)) static int fail_string(parser *p, size_t open, size_t i)
{
    const char *s = p->s;
    p->i = i;
    if (i >= p->len || (s[i] == '\\' && i + 1 >= p->len))
        return cue_err_set(p->err, CUE_EPARSE,
                           "at byte %zu: unterminated string (opened at byte %zu)", p->len, open);
    if (s[i] != '\\') return fail(p, CUE_EPARSE, "raw control character in a string");
    if (s[i + 1] == 'u') return fail(p, CUE_EPARSE, "bad \\u escape (expected four hex digits)");
    return fail(p, CUE_EPARSE, "bad escape in a string");
}

/* A \u escape of a surrogate must be a high one followed by a low one:
 * alone, it stands for no character and cannot become UTF-8. Returns the
 * escape's length (6, or 12 for a pair), or 0. */
static size_t unicode_escape_len(const char *s, size_t i, size_t n)
{
    long cp = hex4(s + i + 2);
    if (cp >= 0xdc00 && cp <= 0xdfff) return 0;
    if (cp < 0xd800 || cp > 0xdbff) return 6;
    long lo = i + 12 <= n && s[i + 6] == '\\' && s[i + 7] == 'u' ? hex4(s + i + 8) : -1;
    return lo >= 0xdc00 && lo <= 0xdfff ? 12 : 0;
}

__attribute__((cold)) static int fail_encoding(parser *p, size_t i, const char *what)
{
    p->i = i;
    return fail(p, CUE_EENCODING, what);
}

/* What ends a plain run inside string `t` at byte i (not a quote): a UTF-8
 * sequence or an escape, checked and stepped over; or an error. Returns the
 * next byte to scan, or 0 with p->rc set. Kept out of string() so that its
 * loop over plain bytes stays small. */
__attribute__((noinline)) static size_t string_special(parser *p, cue_json_tok *t, size_t open,
                                                       size_t i)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t n = p->len;
    if (i >= n) goto bad;
    if (s[i] >= 0x80) {
        size_t k = cue_utf8_len(s + i, n - i);
        if (k == 0) {
            p->rc = fail_encoding(p, i, "invalid UTF-8 in a string");
            return 0;
        }
        return i + k;
    }
    size_t k = s[i] == '\\' ? escape_len(p->s, i, n) : 0;
    if (k == 0) goto bad;
    if (p->s[i + 1] == 'u') {
        k = unicode_escape_len(p->s, i, n);
        if (k == 0) {
            p->rc = fail_encoding(p, i, "a \\u escape of an unpaired surrogate");
            return 0;
        }
        if (memcmp(p->s + i + 2, "0000", 4) == 0) t->escaped |= CUE_JSON_TOK_NUL;
    }
    t->escaped |= CUE_JSON_TOK_ESCAPED;
    return i + k;
bad:
    p->rc = fail_string(p, open, i);
    return 0;
}

static int string(parser *p)
{
    size_t open = p->i, i = open + 1, n = p->len;
    cue_json_tok *t = new_tok(p, CUE_JSON_STRING, i);
    if (t == NULL) return CUE_ELIMIT;
    const unsigned char *s = (const unsigned char *)p->s;
    for (;;) {
        while (i < n && str_plain[s[i]])
            i++;
        if (i < n && s[i] == '"') break;
        i = string_special(p, t, open, i);
        if (i == 0) return p->rc;
    }
    t->len = (uint32_t)(i - open - 1);
    p->i = i + 1;
    return STEP_VALUE_DONE;
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(parser *p)
{
    const char *s = p->s, *what = "expected a digit after '-'";
    size_t i = p->i, n = p->len, start = p->i;
    if (s[i] == '-') i++;
    if (i >= n || s[i] < '0' || s[i] > '9') goto no_digit;
    if (s[i] == '0') {
        if (++i < n && s[i] >= '0' && s[i] <= '9') {
            p->i = i;
            return fail(p, CUE_EPARSE, "leading zero in a number");
        }
    } else {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && s[i] == '.') {
        what = "expected a digit after '.'";
        if (++i >= n || s[i] < '0' || s[i] > '9') goto no_digit;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        what = "expected a digit in the exponent";
        if (++i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') goto no_digit;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    cue_json_tok *t = new_tok(p, CUE_JSON_NUMBER, start);
    if (t == NULL) return CUE_ELIMIT;
    t->len = (uint32_t)(i - start);
    p->i = i;
    return STEP_VALUE_DONE;
no_digit:
    p->i = i;
    return fail(p, CUE_EPARSE, what);
}

static int literal(parser *p, const char *word, size_t n, cue_json_type type)
{
    if (p->len - p->i < n || memcmp(p->s + p->i, word, n) != 0)
        return fail(p, CUE_EPARSE, "invalid literal (expected true, false or null)");
    cue_json_tok *t = new_tok(p, type, p->i);
    if (t == NULL) return CUE_ELIMIT;
    t->len = (uint32_t)n;
    p->i += n;
    return STEP_VALUE_DONE;
}

#define KEY_ESCAPED_BIT (1ULL << 63)

static size_t unescape(const char *s, size_t end, size_t *i, char out[4]);

/* A key's bytes as they read unescaped, one at a time, with no buffer: so
 * keys of any length compare and hash alike however they are spelt. */
typedef struct key_reader {
    const char *s;
    size_t i, end;
    char pend[4];
    uint8_t n, at;
} key_reader;

static key_reader key_read(const parser *p, uint32_t t)
{
    const cue_json_tok *k = &p->toks[t];
    return (key_reader){.s = p->s, .i = k->start, .end = (size_t)k->start + k->len};
}

/* The next byte, or -1 at the end. */
static int key_byte(key_reader *r)
{
    if (r->at < r->n) return (unsigned char)r->pend[r->at++];
    if (r->i >= r->end) return -1;
    if (r->s[r->i] != '\\') return (unsigned char)r->s[r->i++];
    r->n = (uint8_t)unescape(r->s, r->end, &r->i, r->pend); /* checked by the tokenizer */
    r->at = 0;
    return r->n ? (unsigned char)r->pend[r->at++] : -1;
}

/* Whether key tokens a and b name the same member once unescaped. */
static bool keys_equal(const parser *p, uint32_t a, uint32_t b)
{
    const cue_json_tok *ka = &p->toks[a], *kb = &p->toks[b];
    if (!ka->escaped && !kb->escaped)
        return ka->len == kb->len && memcmp(p->s + ka->start, p->s + kb->start, ka->len) == 0;
    key_reader ra = key_read(p, a), rb = key_read(p, b);
    for (;;) {
        int ca = key_byte(&ra), cb = key_byte(&rb);
        if (ca != cb) return false;
        if (ca < 0) return true;
    }
}

/* FNV-1a over the key's unescaped bytes, mixed with its object's token. */
static uint64_t key_hash(const parser *p, uint32_t t, uint32_t obj)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)obj * 0x9e3779b97f4a7c15ULL);
    const cue_json_tok *k = &p->toks[t];
    if (!k->escaped) {
        const unsigned char *c = (const unsigned char *)p->s + k->start;
        for (uint32_t j = 0; j < k->len; j++)
            h = (h ^ c[j]) * 0x100000001b3ULL;
        return h;
    }
    key_reader r = key_read(p, t);
    for (int c; (c = key_byte(&r)) >= 0;)
        h = (h ^ (unsigned)c) * 0x100000001b3ULL;
    return h;
}

/* Whether `kt` equals one of the first `count` keys of object `obj`. */
static bool key_among(const parser *p, uint32_t obj, uint32_t count, uint32_t kt)
{
    uint32_t m = obj + 1;
    for (uint32_t j = 0; j < count; j++) {
        if (keys_equal(p, m, kt)) return true;
        m = p->toks[m + 1].next;
    }
    return false;
}

/* Puts key `kt` of `obj` in the document's key table, or says it is there
 * already. False (nothing done) when the table is half full: the caller
 * compares with every earlier key instead. */
static bool key_table_put(parser *p, uint32_t obj, uint32_t kt, bool *dup)
{
    if (p->ktab_used >= KEY_TABLE_SLOTS / 2) return false;
    if (!p->ktab_ready) {
        memset(p->ktab, 0, sizeof p->ktab);
        p->ktab_ready = true;
    }
    uint64_t h = key_hash(p, kt, obj);
    for (size_t s = (size_t)h & (KEY_TABLE_SLOTS - 1);; s = (s + 1) & (KEY_TABLE_SLOTS - 1)) {
        if (p->ktab[s].key == 0) {
            p->ktab[s] = (key_slot){.key = kt + 1, .obj = obj};
            p->ktab_used++;
            *dup = false;
            return true;
        }
        if (p->ktab[s].obj == obj && keys_equal(p, p->ktab[s].key - 1, kt)) {
            *dup = true;
            return true;
        }
    }
}

/* key_seen's cases past the first test: an escaped key, a filter hit, an
 * object past KEYS_LINEAR keys. */
__attribute__((noinline)) static bool key_seen_slow(parser *p, uint32_t obj, uint32_t count,
                                                    uint32_t kt, uint64_t *f)
{
    if (count >= KEYS_LINEAR) {
        bool dup = false;
        if (count == KEYS_LINEAR) { /* the earlier ones go in first */
            uint32_t m = obj + 1;
            for (uint32_t j = 0; j < count && key_table_put(p, obj, m, &dup); j++)
                m = p->toks[m + 1].next;
        }
        if (key_table_put(p, obj, kt, &dup)) return dup;
        return key_among(p, obj, count, kt); /* a table full of another object's keys */
    }
    /* An escaped key may equal any earlier one. */
    if (p->toks[kt].escaped) *f |= KEY_ESCAPED_BIT;
    return key_among(p, obj, count, kt);
}

/* Whether key token `kt` repeats a key of the object open at the top of the
 * stack. An object's first KEYS_LINEAR keys: a filter bit per key (from its
 * length and end bytes) keeps the common case to one test, and on a hit the
 * earlier keys are compared. Past them, the object's keys go in a hash table
 * of the document, so a crafted object of thousands of keys costs one probe
 * a key, not a comparison with every earlier one. */
static inline bool key_seen(parser *p, uint32_t kt)
{
    uint32_t obj = p->stack[p->depth - 1], count = p->toks[obj].size;
    const cue_json_tok *k = &p->toks[kt];
    uint64_t *f = &p->keys[p->depth - 1];
    if (count < KEYS_LINEAR && !k->escaped) {
        uint32_t h = k->len * 0x9e3779b1u;
        if (k->len > 0)
            h ^= ((uint32_t)(unsigned char)p->s[k->start] << 8 |
                  (unsigned char)p->s[k->start + k->len - 1]) *
                 0x85ebca6bu;
        /* One of bits 0..62 (multiply-high, no division); 63 marks "a key
         * was escaped": every key is compared then. */
        uint64_t bit = 1ULL << (((uint64_t)h * 63) >> 32);
        bool check = (*f & (bit | KEY_ESCAPED_BIT)) != 0;
        *f |= bit;
        if (!check) return false;
    }
    return key_seen_slow(p, obj, count, kt, f);
}

/* An object member's key and its ':'; the caller reads the value next. */
static int member_key(parser *p)
{
    skip_ws(p);
    if (p->i >= p->len || p->s[p->i] != '"') {
        bool trailing = p->i < p->len && p->s[p->i] == '}';
        return fail(p, CUE_EPARSE,
                    trailing ? "trailing comma before '}'" : "expected a string key");
    }
    size_t at = p->i;
    int rc = string(p);
    if (rc < 0) return rc;
    if (key_seen(p, p->n - 1)) {
        const cue_json_tok *k = &p->toks[p->n - 1];
        return cue_err_set(p->err, CUE_EDUPLICATE, "at byte %zu: duplicate key \"%.*s\"", at,
                           k->len > 64 ? 64 : (int)k->len, p->s + k->start);
    }
    skip_ws(p);
    if (p->i >= p->len || p->s[p->i] != ':')
        return fail(p, CUE_EPARSE, "expected ':' after object key");
    p->i++;
    return 0;
}

static void close_tok(parser *p, uint32_t t)
{
    p->toks[t].len = (uint32_t)(p->i - p->toks[t].start);
    p->toks[t].next = p->n;
}

/* Opens '{' or '['. An empty one is a complete value; otherwise it is pushed
 * and, for an object, its first key read. */
static int open_container(parser *p, cue_json_type type)
{
    if (p->depth >= CUE_JSON_DEPTH_MAX)
        return fail(p, CUE_ELIMIT, "nested deeper than " STR(CUE_JSON_DEPTH_MAX) " levels");
    cue_json_tok *tok = new_tok(p, type, p->i);
    if (tok == NULL) return CUE_ELIMIT;
    uint32_t t = (uint32_t)(tok - p->toks);
    int rc;
    p->i++;
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == (type == CUE_JSON_OBJECT ? '}' : ']')) {
        p->i++;
        close_tok(p, t);
        return STEP_VALUE_DONE;
    }
    p->keys[p->depth] = 0;
    p->stack[p->depth++] = t;
    if (type == CUE_JSON_OBJECT && (rc = member_key(p)) < 0) return rc;
    return STEP_WANT_VALUE;
}

static int value(parser *p)
{
    skip_ws(p);
    if (p->i >= p->len) return fail(p, CUE_EPARSE, "unexpected end of input, expected a value");
    switch (p->s[p->i]) {
    case '"': return string(p);
    case '{': return open_container(p, CUE_JSON_OBJECT);
    case '[': return open_container(p, CUE_JSON_ARRAY);
    case 't': return literal(p, "true", 4, CUE_JSON_TRUE);
    case 'f': return literal(p, "false", 5, CUE_JSON_FALSE);
    case 'n': return literal(p, "null", 4, CUE_JSON_NULL);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': return number(p);
    default: return fail(p, CUE_EPARSE, "expected a value");
    }
}

/* After a complete value: counts it in its container, then reads ',' (and an
 * object's next key) or closes containers until one continues; STEP_DOC_DONE
 * once the top-level value is complete. */
static int after_value(parser *p)
{
    while (p->depth > 0) {
        uint32_t top = p->stack[p->depth - 1];
        bool object = p->toks[top].type == CUE_JSON_OBJECT;
        p->toks[top].size++;
        skip_ws(p);
        if (p->i >= p->len)
            return fail(p, CUE_EPARSE, object ? "unterminated object" : "unterminated array");
        char c = p->s[p->i];
        if (c == ',') {
            p->i++;
            if (object) {
                int rc = member_key(p);
                return rc < 0 ? rc : STEP_WANT_VALUE;
            }
            skip_ws(p);
            if (p->i < p->len && p->s[p->i] == ']')
                return fail(p, CUE_EPARSE, "trailing comma before ']'");
            return STEP_WANT_VALUE;
        }
        if (c != (object ? '}' : ']'))
            return fail(p, CUE_EPARSE,
                        object ? "expected ',' or '}' after a member" : "expected ',' or ']'");
        p->i++;
        close_tok(p, top);
        p->depth--;
    }
    return STEP_DOC_DONE;
}

int cue_json_parse(cue_json_doc *doc, const char *src, size_t len, cue_json_tok *toks, uint32_t cap,
                   cue_err *err)
{
    doc->src = src;
    doc->src_len = len;
    doc->toks = toks;
    doc->n = 0;
    doc->cap = cap;
    /* Token offsets are 32-bit: 16 bytes a token matter more than 4 GiB
     * documents. */
    if (len > UINT32_MAX)
        return cue_err_set(err, CUE_ELIMIT, "document of %zu bytes is over 4 GiB", len);
    /* Fields one by one: the stack needs no zeroing, and this is per event. */
    parser p;
    p.s = src;
    p.len = len;
    p.i = 0;
    p.toks = toks;
    p.n = 0;
    p.cap = cap;
    p.depth = 0;
    p.ktab_used = 0;
    p.ktab_ready = false;
    p.err = err;
    int rc = STEP_WANT_VALUE;
    while (rc == STEP_WANT_VALUE) {
        rc = value(&p);
        if (rc == STEP_VALUE_DONE) rc = after_value(&p);
    }
    if (rc < 0) return rc;
    skip_ws(&p);
    if (p.i != len) return fail(&p, CUE_EPARSE, "unexpected data after the value");
    doc->n = p.n;
    return 0;
}

/* ---- pointers ---------------------------------------------------------- */

/* RFC 6901 array index: "0" or digits without a leading zero. Nine digits at
 * most, which keeps it in int32 and is far past any token limit. */
static int32_t segment_index(const char *s, size_t n)
{
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) return -1;
    int32_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return -1;
        v = v * 10 + (s[k] - '0');
    }
    return v;
}

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
        return cue_err_set(err, CUE_EPARSE, "JSON Pointer \"%s\" does not start with '/'", text);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (p->n >= CUE_JSON_PTR_SEGS_MAX)
            return cue_err_set(err, CUE_ELIMIT, "JSON Pointer \"%s\" has more than %d segments",
                               text, CUE_JSON_PTR_SEGS_MAX);
        size_t start = o;
        for (i++; i < len && text[i] != '/'; i++) {
            char c = text[i];
            if (c == '~') {
                if (i + 1 >= len || (text[i + 1] != '0' && text[i + 1] != '1'))
                    return cue_err_set(err, CUE_EPARSE,
                                       "JSON Pointer \"%s\": '~' at byte %zu is not ~0 or ~1", text,
                                       i);
                c = text[++i] == '0' ? '~' : '/';
            }
            p->text[o++] = c;
        }
        p->seg[p->n].off = (uint16_t)start;
        p->seg[p->n].len = (uint16_t)(o - start);
        p->seg[p->n].index = segment_index(p->text + start, o - start);
        p->n++;
    }
    return 0;
}

/* ---- reading strings --------------------------------------------------- */

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

/* Decodes the escape at s[*i] (a backslash) of a tokenized string ending at
 * `end` into `out` and returns its UTF-8 length; 0 for a surrogate that is not
 * part of a pair. The tokenizer has checked the escape's shape already. */
static size_t unescape(const char *s, size_t end, size_t *i, char out[4])
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char e = s[*i + 1];
    if (e != 'u') {
        out[0] = to[strchr(from, e) - from];
        *i += 2;
        return 1;
    }
    long cp = hex4(s + *i + 2);
    *i += 6;
    if (cp >= 0xdc00 && cp <= 0xdfff) return 0;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        long lo = *i + 6 <= end && s[*i] == '\\' && s[*i + 1] == 'u' ? hex4(s + *i + 2) : -1;
        if (lo < 0xdc00 || lo > 0xdfff) return 0;
        *i += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return put_utf8(out, (uint32_t)cp);
}

static bool is_string(const cue_json_doc *doc, uint32_t t)
{
    return t < doc->n && doc->toks[t].type == CUE_JSON_STRING;
}

int cue_json_string(const cue_json_doc *doc, uint32_t t, char *out, size_t cap, size_t *len)
{
    if (!is_string(doc, t)) return CUE_EINVAL;
    const cue_json_tok *k = &doc->toks[t];
    const char *s = doc->src;
    size_t i = k->start, end = (size_t)k->start + k->len, n = 0;
    while (i < end) {
        /* Unescaped runs are copied whole; only escapes are decoded. */
        const char *bs = k->escaped ? memchr(s + i, '\\', end - i) : NULL;
        size_t run = bs ? (size_t)(bs - (s + i)) : end - i;
        if (n + run >= cap) return CUE_ELIMIT;
        memcpy(out + n, s + i, run);
        n += run;
        i += run;
        if (i == end) break;
        char ch[4];
        size_t w = unescape(s, end, &i, ch);
        if (w == 0) return CUE_EPARSE;
        if (n + w >= cap) return CUE_ELIMIT;
        memcpy(out + n, ch, w);
        n += w;
    }
    if (n >= cap) return CUE_ELIMIT;
    out[n] = '\0';
    *len = n;
    return 0;
}

bool cue_json_string_eq(const cue_json_doc *doc, uint32_t t, const char *s, size_t n)
{
    if (!is_string(doc, t)) return false;
    const cue_json_tok *k = &doc->toks[t];
    const char *src = doc->src;
    if (!k->escaped) return k->len == n && memcmp(src + k->start, s, n) == 0;
    /* Decoded as it is compared: no buffer, so no bound on the key's length. */
    size_t i = k->start, end = (size_t)k->start + k->len, j = 0;
    while (i < end) {
        char ch[4];
        size_t w = 1;
        if (src[i] == '\\') {
            w = unescape(src, end, &i, ch);
            if (w == 0) return false;
        } else {
            ch[0] = src[i++];
        }
        if (n - j < w || memcmp(s + j, ch, w) != 0) return false;
        j += w;
    }
    return j == n;
}

/* ---- finding ----------------------------------------------------------- */

int32_t cue_json_member(const cue_json_doc *doc, uint32_t obj, const char *key, size_t key_len)
{
    if (obj >= doc->n || doc->toks[obj].type != CUE_JSON_OBJECT) return -1;
    const cue_json_tok *toks = doc->toks;
    uint32_t k = obj + 1;
    for (uint32_t m = 0; m < toks[obj].size; m++) {
        const cue_json_tok *kt = &toks[k];
        bool eq = kt->escaped
                      ? cue_json_string_eq(doc, k, key, key_len)
                      : kt->len == key_len && memcmp(doc->src + kt->start, key, key_len) == 0;
        if (eq) return (int32_t)(k + 1);
        k = toks[k + 1].next;
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

/* ---- numbers ----------------------------------------------------------- */

/* A number's text split by the grammar the tokenizer has already checked. */
typedef struct num_parts {
    bool neg;
    const char *digits; /* integer digits, then (after a '.') fraction digits */
    size_t int_len, frac_len;
    int64_t exp; /* clamped: any exponent beyond it overflows or underflows */
} num_parts;

static void num_split(const char *s, size_t n, num_parts *np)
{
    size_t i = 0;
    np->neg = s[0] == '-';
    i += np->neg;
    np->digits = s + i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    np->int_len = (size_t)(s + i - np->digits);
    np->frac_len = 0;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            np->frac_len++;
    np->exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = s[++i] == '-';
        if (s[i] == '-' || s[i] == '+') i++;
        for (; i < n; i++)
            if (np->exp < 1000000) np->exp = np->exp * 10 + (s[i] - '0');
        if (eneg) np->exp = -np->exp;
    }
}

/* The k-th significant digit, skipping the '.' between integer and fraction. */
static int num_digit(const num_parts *np, size_t k)
{
    return np->digits[k < np->int_len ? k : k + 1] - '0';
}

int cue_json_int64(const cue_json_doc *doc, uint32_t t, int64_t *out)
{
    if (t >= doc->n || doc->toks[t].type != CUE_JSON_NUMBER) return CUE_EINVAL;
    num_parts np;
    num_split(doc->src + doc->toks[t].start, doc->toks[t].len, &np);
    /* value = digits[first..last] * 10^e once trailing zeros are moved into e:
     * exact integer arithmetic, so "1.0" and "25e-1" are told apart without
     * rounding through a double. */
    size_t total = np.int_len + np.frac_len, first = 0, last = total;
    while (first < total && num_digit(&np, first) == 0)
        first++;
    if (first == total) {
        *out = 0;
        return 0;
    }
    while (num_digit(&np, last - 1) == 0)
        last--;
    int64_t e = np.exp - (int64_t)np.frac_len + (int64_t)(total - last);
    if (e < 0) return CUE_ELIMIT;
    if (e > 19 || last - first > 19) return CUE_ELIMIT;
    uint64_t v = 0, max = (uint64_t)INT64_MAX + np.neg;
    for (size_t k = first; k < last; k++) {
        unsigned d = (unsigned)num_digit(&np, k);
        if (v > (max - d) / 10) return CUE_ELIMIT;
        v = v * 10 + d;
    }
    for (; e > 0; e--) {
        if (v > max / 10) return CUE_ELIMIT;
        v *= 10;
    }
    *out = np.neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int cue_json_double(const cue_json_doc *doc, uint32_t t, double *out)
{
    if (t >= doc->n || doc->toks[t].type != CUE_JSON_NUMBER) return CUE_EINVAL;
    /* strtod needs a terminator the source does not have. Numbers longer than
     * this carry more digits than a double holds; they are refused, not cut. */
    char buf[128];
    const cue_json_tok *k = &doc->toks[t];
    if (k->len >= sizeof buf) return CUE_ELIMIT;
    memcpy(buf, doc->src + k->start, k->len);
    buf[k->len] = '\0';
    double d = strtod(buf, NULL);
    if (isinf(d)) return CUE_ELIMIT; /* JSON has no infinity: this is overflow */
    *out = d;
    return 0;
}
