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
 *
 * The file's parts, top down: the tokenizer (cue_json_parse), pointers,
 * reading strings and numbers out of tokens, finding by pointer, and last
 * the field scanner (cue_json_scan), a second reader of the same grammar
 * that keeps only the fields asked for. The two must accept exactly the
 * same documents: the scanner reuses the tokenizer's grammar pieces
 * (number_end, string_step, str_plain) rather than spelling them again, and
 * gives up to the tokenizer on whatever it does not handle fast. A change to
 * the grammar goes in those pieces; json/scan_agrees_with_the_tokenizer and
 * the json fuzz target hold the two readers to each other.
 */
#include "cuepoint/json.h"

#include "cuepoint/utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/* What string_step found wrong. */
enum { STEP_BAD = 1, STEP_BAD_UTF8, STEP_BAD_SURROGATE };

/* What ends a plain run inside a string at byte i (not its closing quote): a
 * UTF-8 sequence or an escape, checked and stepped over, its CUE_JSON_TOK_*
 * bits added to *flags. Returns the next byte to scan, or 0 with *why set.
 * The tokenizer and the scanner share it, so they accept the same strings. */
static inline size_t string_step(const unsigned char *s, size_t n, size_t i, uint8_t *flags,
                                 int *why)
{
    *why = STEP_BAD;
    if (i >= n) return 0;
    if (s[i] >= 0x80) {
        size_t k = cue_utf8_len(s + i, n - i);
        if (k == 0) *why = STEP_BAD_UTF8;
        return k ? i + k : 0;
    }
    const char *c = (const char *)s;
    size_t k = s[i] == '\\' ? escape_len(c, i, n) : 0;
    if (k == 0) return 0;
    if (s[i + 1] == 'u') {
        k = unicode_escape_len(c, i, n);
        if (k == 0) {
            *why = STEP_BAD_SURROGATE;
            return 0;
        }
        if (memcmp(c + i + 2, "0000", 4) == 0) *flags |= CUE_JSON_TOK_NUL;
    }
    *flags |= CUE_JSON_TOK_ESCAPED;
    return i + k;
}

/* string_step for the tokenizer, with its errors. Returns the next byte to
 * scan, or 0 with p->rc set. Kept out of string() so that its loop over plain
 * bytes stays small. */
__attribute__((noinline)) static size_t string_special(parser *p, cue_json_tok *t, size_t open,
                                                       size_t i)
{
    int why;
    size_t next = string_step((const unsigned char *)p->s, p->len, i, &t->escaped, &why);
    if (next != 0) return next;
    if (why == STEP_BAD_UTF8)
        p->rc = fail_encoding(p, i, "invalid UTF-8 in a string");
    else if (why == STEP_BAD_SURROGATE)
        p->rc = fail_encoding(p, i, "a \\u escape of an unpaired surrogate");
    else
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

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * The end of the number at s[i], or 0 with *at and *what saying where and
 * what is wrong. Shared by the tokenizer and the scanner. */
__attribute__((always_inline)) static inline size_t number_end(const char *s, size_t n, size_t i,
                                                               size_t *at, const char **what)
{
    *what = "expected a digit after '-'";
    if (s[i] == '-') i++;
    if (i >= n || s[i] < '0' || s[i] > '9') goto no_digit;
    if (s[i] == '0') {
        if (++i < n && s[i] >= '0' && s[i] <= '9') {
            *what = "leading zero in a number";
            goto no_digit;
        }
    } else {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && s[i] == '.') {
        *what = "expected a digit after '.'";
        if (++i >= n || s[i] < '0' || s[i] > '9') goto no_digit;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *what = "expected a digit in the exponent";
        if (++i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') goto no_digit;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i;
no_digit:
    *at = i;
    return 0;
}

static int number(parser *p)
{
    const char *what;
    size_t start = p->i, at = 0, end = number_end(p->s, p->len, start, &at, &what);
    if (end == 0) {
        p->i = at;
        return fail(p, CUE_EPARSE, what);
    }
    cue_json_tok *t = new_tok(p, CUE_JSON_NUMBER, start);
    if (t == NULL) return CUE_ELIMIT;
    t->len = (uint32_t)(end - start);
    p->i = end;
    return STEP_VALUE_DONE;
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
    return cue_json_tok_string(doc->src, &doc->toks[t], out, cap, len);
}

int cue_json_tok_string(const char *s, const cue_json_tok *k, char *out, size_t cap, size_t *len)
{
    if (k->type != CUE_JSON_STRING) return CUE_EINVAL;
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
    if (t >= doc->n) return CUE_EINVAL;
    return cue_json_tok_int64(doc->src, &doc->toks[t], out);
}

/* Up to 18 digits, with no fraction or exponent, cannot overflow: the common
 * case (epoch milliseconds, counts, ids) needs none of num_split's work.
 * The tokenizer has checked the grammar: no leading zero, digits only. */
static bool int_plain(const char *s, uint32_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    if (n - neg == 0 || n - neg > 18) return false;
    int64_t v = 0;
    for (uint32_t i = neg; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9) return false;
        v = v * 10 + (int64_t)d;
    }
    *out = neg ? -v : v;
    return true;
}

int cue_json_tok_int64(const char *src, const cue_json_tok *tok, int64_t *out)
{
    if (tok->type != CUE_JSON_NUMBER) return CUE_EINVAL;
    if (int_plain(src + tok->start, tok->len, out)) return 0;
    num_parts np;
    num_split(src + tok->start, tok->len, &np);
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
    if (t >= doc->n) return CUE_EINVAL;
    return cue_json_tok_double(doc->src, &doc->toks[t], out);
}

int cue_json_tok_double(const char *src, const cue_json_tok *k, double *out)
{
    if (k->type != CUE_JSON_NUMBER) return CUE_EINVAL;
    /* strtod needs a terminator the source does not have. Numbers longer than
     * this carry more digits than a double holds; they are refused, not cut. */
    char buf[128];
    if (k->len >= sizeof buf) return CUE_ELIMIT;
    memcpy(buf, src + k->start, k->len);
    buf[k->len] = '\0';
    double d = strtod(buf, NULL);
    if (isinf(d)) return CUE_ELIMIT; /* JSON has no infinity: this is overflow */
    *out = d;
    return 0;
}

/* ---- scanning for known fields ------------------------------------------ */

/* A key's first eight bytes as one word, zero past its end: with its length
 * it compares most keys whole (those of events are short). The word is the
 * bytes' image in memory, the same on either byte order. `avail` is how many
 * bytes may be read at k (the key is followed by at least its quote). */
static inline uint64_t key_head_of(uint64_t w, size_t len)
{
    static const unsigned char ones[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint64_t m;
    memcpy(&m, ones + 8 - (len < 8 ? len : 8), 8);
    return w & m;
}

static inline uint64_t key_head(const unsigned char *k, size_t len, size_t avail)
{
    uint64_t w = 0;
    if (avail >= 8) {
        memcpy(&w, k, 8);
    } else {
        unsigned char b[8] = {0};
        memcpy(b, k, len < 8 ? len : 8);
        memcpy(&w, b, 8);
    }
    return key_head_of(w, len);
}

void cue_json_fields_init(cue_json_fields *f)
{
    f->n_slots = 0;
    f->n_nodes = 1;
    f->text_used = 0;
    f->node[0] = (struct cue_json_field_node){.slot = -1, .index = -1};
    memset(f->by_key, 0, sizeof f->by_key);
}

/* Where a child of `node` with key head `head` and length `len` starts its
 * probe in by_key. */
static inline size_t field_slot(uint16_t node, uint64_t head, size_t len)
{
    uint64_t h = (head ^ len ^ (uint64_t)node << 48) * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 53) & (CUE_JSON_FIELDS_TABLE - 1);
}

/* The child of `node` whose segment is key `k` (`head` its key_head), or 0
 * (the root is no child). */
__attribute__((always_inline)) static inline uint16_t
child_key(const cue_json_fields *f, uint16_t node, const char *k, size_t len, uint64_t head)
{
    for (size_t i = field_slot(node, head, len);; i = (i + 1) & (CUE_JSON_FIELDS_TABLE - 1)) {
        uint16_t c = f->by_key[i];
        if (c == 0) return 0;
        const struct cue_json_field_node *x = &f->node[c];
        if (x->head == head && x->parent == node && x->key_len == len &&
            (len <= 8 || memcmp(f->text + x->key_off + 8, k + 8, len - 8) == 0))
            return c;
    }
}

/* The child of `node` that is element `index` of an array, or 0. */
static uint16_t child_index(const cue_json_fields *f, uint16_t node, uint32_t index)
{
    for (uint16_t c = f->node[node].child; c != 0; c = f->node[c].sibling)
        if ((uint32_t)f->node[c].index == index) return c;
    return 0;
}

static uint64_t seg_head(const cue_json_ptr *p, uint8_t s)
{
    const char *k = p->text + p->seg[s].off;
    return key_head((const unsigned char *)k, p->seg[s].len, p->seg[s].len);
}

int cue_json_fields_add(cue_json_fields *f, const cue_json_ptr *p)
{
    uint16_t node = 0;
    uint8_t s = 0;
    for (uint16_t c; s < p->n; s++, node = c)
        if ((c = child_key(f, node, p->text + p->seg[s].off, p->seg[s].len, seg_head(p, s))) == 0)
            break;
    if (s == p->n && f->node[node].slot >= 0) return f->node[node].slot;
    size_t text = 0;
    for (uint8_t k = s; k < p->n; k++)
        text += p->seg[k].len;
    /* Nodes cannot run out: each field adds at most CUE_JSON_PTR_SEGS_MAX. */
    if (f->n_slots >= CUE_EVENT_FIELDS_MAX || f->text_used + text > sizeof f->text)
        return CUE_EFULL;
    for (; s < p->n; s++) {
        uint16_t c = f->n_nodes++;
        CUE_ASSERT(c < CUE_JSON_FIELDS_NODES && CUE_JSON_FIELDS_NODES * 2 <= CUE_JSON_FIELDS_TABLE);
        f->node[c] = (struct cue_json_field_node){.head = seg_head(p, s),
                                                  .sibling = f->node[node].child,
                                                  .parent = node,
                                                  .slot = -1,
                                                  .key_off = f->text_used,
                                                  .key_len = p->seg[s].len,
                                                  .index = p->seg[s].index};
        size_t i = field_slot(node, f->node[c].head, p->seg[s].len);
        while (f->by_key[i] != 0)
            i = (i + 1) & (CUE_JSON_FIELDS_TABLE - 1);
        f->by_key[i] = c;
        memcpy(f->text + f->text_used, p->text + p->seg[s].off, p->seg[s].len);
        f->text_used = (uint16_t)(f->text_used + p->seg[s].len);
        f->node[node].child = c;
        node = c;
    }
    f->node[node].slot = (int16_t)f->n_slots;
    return f->n_slots++;
}

/* The scanner does in one pass what cue_json_parse and cue_json_find do in
 * two, without a token per value: the same grammar (number_end, string_step
 * and the same limits), the same duplicate-key rule (over keys kept per open
 * object instead of key tokens) and the same pointer semantics (children by
 * key in objects, by index in arrays). It gives up, leaving the document to
 * the tokenizer, on anything it does not need to be fast at: errors (the
 * tokenizer says what is wrong), escaped keys (compared unescaped there) and
 * objects of many keys (its hash table). */

#define SCAN_NO_NODE         0xffffu
#define SCAN_KEYS_MAX        256 /* keys of all open objects */
#define SCAN_OBJECT_KEYS_MAX 32  /* keys of one object, compared on a filter hit */

typedef struct scan_level {
    uint64_t filter;  /* objects: one bit per key so far (scan_key_new) */
    uint32_t count;   /* members or elements so far */
    uint32_t keys_at; /* objects: its first key in scanner.keys */
    uint32_t start;   /* its opening bracket */
    uint16_t node;    /* its node in the fields, SCAN_NO_NODE if no field is inside */
    int16_t slot;     /* the field it is, or -1 */
    bool object;
} scan_level;

typedef struct scan_key_rec {
    uint64_t head;
    uint32_t start, len;
} scan_key_rec;

typedef struct scanner {
    const unsigned char *s;
    size_t n;
    const cue_json_fields *f;
    uint32_t n_keys;
    scan_key_rec keys[SCAN_KEYS_MAX];
} scanner;

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The high bit of each byte of x that a string cannot hold as it is: '"',
 * '\\', a control character, or a byte >= 0x80 (checked as UTF-8). The lowest
 * bit set is exact: a borrow can only mark bytes above a true one. */
static inline uint64_t special8(uint64_t x)
{
    uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((x - ONES * 0x20) & ~x) | x) & HIGHS;
}

#ifdef __SSE2__
/* special8 for sixteen bytes, a byte of 0xff for each. */
static inline __m128i special16(__m128i x)
{
    /* Signed: bytes >= 0x80 are negative, so "less than ' '" takes them with
     * the control characters. */
    return _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
        _mm_cmplt_epi8(x, _mm_set1_epi8(' ')));
}
#endif

/* The first byte at or after i that is not plain string text, or n:
 * sixteen bytes a step where SSE2 is (every x86-64), else eight (special8);
 * the table for the last few. */
static inline size_t plain_run(const unsigned char *s, size_t i, size_t n)
{
#ifdef __SSE2__
    while (i + 16 <= n) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        unsigned bits = (unsigned)_mm_movemask_epi8(special16(x));
        if (bits != 0) return i + (size_t)__builtin_ctz(bits);
        i += 16;
    }
#endif
    while (i + 8 <= n) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t m = special8(x);
        if (m != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return i + ((size_t)__builtin_ctzll(m) >> 3);
#else
            break; /* the first byte in memory is the most significant */
#endif
        }
        i += 8;
    }
    while (i < n && str_plain[s[i]])
        i++;
    return i;
}

/* The closing quote of the string whose text starts at i, its
 * CUE_JSON_TOK_* bits added to *flags; 0 when it is not a valid string. */
static inline size_t scan_string(const unsigned char *s, size_t i, size_t n, uint8_t *flags)
{
    for (;;) {
        i = plain_run(s, i, n);
        if (i < n && s[i] == '"') return i;
        int why;
        if ((i = string_step(s, n, i, flags, &why)) == 0) return 0;
    }
}

static inline bool is_ws(unsigned char c)
{
    return c <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t');
}

static inline size_t scan_ws(const unsigned char *s, size_t i, size_t n)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

/* Whether key k (unescaped, `head` its key_head) is new in object `l`;
 * false too when the object has more keys than the scanner compares. The
 * filter works as key_seen's: on a miss, no comparison. */
__attribute__((always_inline)) static inline bool
scan_key_new(scanner *sc, scan_level *l, uint32_t start, uint32_t len, uint64_t head)
{
    if (l->count >= SCAN_OBJECT_KEYS_MAX || sc->n_keys >= SCAN_KEYS_MAX) return false;
    uint64_t bit = 1ULL << (((head ^ len) * 0x9e3779b97f4a7c15ULL) >> 58);
    if (l->filter & bit)
        for (uint32_t j = l->keys_at; j < sc->n_keys; j++) {
            const scan_key_rec *r = &sc->keys[j];
            if (r->head == head && r->len == len &&
                (len <= 8 || memcmp(sc->s + r->start + 8, sc->s + start + 8, len - 8) == 0))
                return false;
        }
    l->filter |= bit;
    sc->keys[sc->n_keys++] = (scan_key_rec){.head = head, .start = start, .len = len};
    return true;
}

/* A member's key at i, checked against its object's earlier keys, and its
 * ':'. *node becomes the node of the member's value. Returns the byte after
 * the ':', or 0 to give up. */
__attribute__((always_inline)) static inline size_t scan_key(scanner *sc, scan_level *l, size_t i,
                                                             uint16_t *node)
{
    const unsigned char *s = sc->s;
    size_t n = sc->n;
    if (i < n && s[i] != '"') i = scan_ws(s, i, n);
    if (i >= n || s[i] != '"') return 0;
    size_t start = i + 1, end, len;
    uint64_t head;
#ifdef __SSE2__
    /* Most keys are plain and shorter than 16 bytes: one load finds the
     * closing quote and holds the head. */
    if (start + 16 <= n) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + start));
        unsigned bits = (unsigned)_mm_movemask_epi8(special16(x));
        if (bits != 0 && s[start + (size_t)__builtin_ctz(bits)] == '"') {
            len = (size_t)__builtin_ctz(bits);
            end = start + len;
            head = key_head_of((uint64_t)_mm_cvtsi128_si64(x), len);
            goto have_key;
        }
    }
#endif
    uint8_t flags = 0;
    end = scan_string(s, start, n, &flags);
    len = end - start;
    if (end == 0 || flags != 0) return 0; /* escaped: equal keys may be spelt apart */
    head = key_head(s + start, len, n - start);
#ifdef __SSE2__
have_key:
#endif
    if (!scan_key_new(sc, l, (uint32_t)start, (uint32_t)len, head)) return 0;
    *node = SCAN_NO_NODE;
    if (l->node != SCAN_NO_NODE) {
        uint16_t c = child_key(sc->f, l->node, (const char *)s + start, len, head);
        if (c != 0) *node = c;
    }
    i = end + 1;
    if (i < n && s[i] != ':') i = scan_ws(s, i, n);
    if (i >= n || s[i] != ':') return 0;
    return i + 1;
}

/* The node of element `index` of array `l`. */
static inline uint16_t scan_element(const scanner *sc, const scan_level *l, uint32_t index)
{
    if (l->node == SCAN_NO_NODE) return SCAN_NO_NODE;
    uint16_t c = child_index(sc->f, l->node, index);
    return c ? c : SCAN_NO_NODE;
}

/* Opens the container at i as level `l` (its node `node`, which becomes that
 * of its first value). Returns the byte to read the first value at, or 0 to
 * give up; *empty when it closed at once (i is then past it). */
__attribute__((always_inline)) static inline size_t scan_open(scanner *sc, scan_level *l, size_t i,
                                                              uint16_t *node, uint32_t *toks,
                                                              uint32_t tok_cap, bool counting,
                                                              bool *empty)
{
    const cue_json_fields *f = sc->f;
    bool object = sc->s[i] == '{';
    size_t at = scan_ws(sc->s, i + 1, sc->n);
    *empty = at < sc->n && sc->s[at] == (object ? '}' : ']');
    if (*empty) return at + 1;
    *l = (scan_level){.keys_at = sc->n_keys,
                      .start = (uint32_t)i,
                      .node = *node != SCAN_NO_NODE && f->node[*node].child ? *node : SCAN_NO_NODE,
                      .slot = *node != SCAN_NO_NODE ? f->node[*node].slot : -1,
                      .object = object};
    if (!object) {
        *node = scan_element(sc, l, 0);
        return at;
    }
    if (counting && ++*toks > tok_cap) return 0;
    return scan_key(sc, l, at, node);
}

/* After a value: counts it in its container, then reads ',' (and an
 * object's next key, or finds an array element's node) or closes containers
 * until one continues. Returns the byte of the next value, or 0 when the
 * document ends (*done: well) or the scan gives up. */
__attribute__((always_inline)) static inline size_t
scan_after(scanner *sc, scan_level *lv, uint32_t *depth, size_t i, uint16_t *node, uint32_t *toks,
           uint32_t tok_cap, bool counting, cue_json_tok *out, bool *done)
{
    const unsigned char *s = sc->s;
    size_t n = sc->n;
    while (*depth > 0) {
        scan_level *l = &lv[*depth - 1];
        l->count++;
        if (i < n && is_ws(s[i])) i = scan_ws(s, i, n);
        if (i >= n) return 0;
        if (s[i] == ',') {
            if (!l->object) {
                *node = scan_element(sc, l, l->count);
                return i + 1;
            }
            if (counting && ++*toks > tok_cap) return 0;
            return scan_key(sc, l, i + 1, node);
        }
        if (s[i] != (l->object ? '}' : ']')) return 0;
        i++;
        if (l->object) sc->n_keys = l->keys_at;
        if (l->slot >= 0)
            out[l->slot] = (cue_json_tok){.type = l->object ? CUE_JSON_OBJECT : CUE_JSON_ARRAY,
                                          .start = l->start,
                                          .len = (uint32_t)(i - l->start)};
        (*depth)--;
    }
    *done = scan_ws(s, i, n) == n;
    return 0;
}

/* One scalar value at i (not a container): its type, its end (0: give up)
 * and, for a string, its flags. The token's text is [start, end). */
static inline size_t scan_scalar(const scanner *sc, size_t i, uint8_t *type, uint8_t *flags)
{
    const unsigned char *s = sc->s;
    size_t n = sc->n, at;
    const char *what;
    switch (s[i]) {
    case '"': {
        size_t end = scan_string(s, i + 1, n, flags);
        *type = CUE_JSON_STRING;
        return end ? end + 1 : 0;
    }
    case 't': *type = CUE_JSON_TRUE; return n - i >= 4 && memcmp(s + i, "true", 4) == 0 ? i + 4 : 0;
    case 'f':
        *type = CUE_JSON_FALSE;
        return n - i >= 5 && memcmp(s + i, "false", 5) == 0 ? i + 5 : 0;
    case 'n': *type = CUE_JSON_NULL; return n - i >= 4 && memcmp(s + i, "null", 4) == 0 ? i + 4 : 0;
    default:
        if (s[i] != '-' && (s[i] < '0' || s[i] > '9')) return 0;
        *type = CUE_JSON_NUMBER;
        return number_end((const char *)s, n, i, &at, &what);
    }
}

/* The scan, with the token limit checked (`counting`) or not. */
__attribute__((always_inline)) static inline bool scan_doc(const cue_json_fields *f,
                                                           const char *src, size_t len,
                                                           uint32_t tok_cap, bool counting,
                                                           cue_json_tok *out)
{
    scanner sc;
    sc.s = (const unsigned char *)src;
    sc.n = len;
    sc.f = f;
    sc.n_keys = 0;
    scan_level lv[CUE_JSON_DEPTH_MAX]; /* not zeroed: a level is set when opened */
    uint32_t depth = 0, toks = 0;
    uint16_t node = 0; /* the node of the value about to be read */
    size_t i = 0;
    for (;;) {
        if (i < len && is_ws(sc.s[i])) i = scan_ws(sc.s, i, len);
        if (i >= len || (counting && ++toks > tok_cap)) return false;
        int16_t slot = node != SCAN_NO_NODE ? f->node[node].slot : -1;
        size_t start = i;
        uint8_t type, flags = 0;
        if (sc.s[i] == '{' || sc.s[i] == '[') {
            if (depth >= CUE_JSON_DEPTH_MAX) return false;
            bool empty;
            type = sc.s[i] == '{' ? CUE_JSON_OBJECT : CUE_JSON_ARRAY;
            i = scan_open(&sc, &lv[depth], i, &node, &toks, tok_cap, counting, &empty);
            if (i == 0) return false;
            if (!empty) {
                depth++;
                continue;
            }
        } else {
            if ((i = scan_scalar(&sc, i, &type, &flags)) == 0) return false;
        }
        if (slot >= 0) {
            bool str = type == CUE_JSON_STRING; /* its token is the text between the quotes */
            out[slot] = (cue_json_tok){.type = type,
                                       .escaped = flags,
                                       .start = (uint32_t)(start + str),
                                       .len = (uint32_t)(i - start - 2 * str)};
        }
        bool done = false;
        i = scan_after(&sc, lv, &depth, i, &node, &toks, tok_cap, counting, out, &done);
        if (i == 0) return done;
    }
}

bool cue_json_scan(const cue_json_fields *f, const char *src, size_t len, uint32_t tok_cap,
                   cue_json_tok *out)
{
    for (uint16_t k = 0; k < f->n_slots; k++)
        out[k].type = CUE_JSON_NONE;
    if (len > UINT32_MAX) return false;
    /* Each token starts at a byte of its own: a document of at most tok_cap
     * bytes cannot have more tokens, and (an event's case) needs no count. */
    return len <= tok_cap ? scan_doc(f, src, len, tok_cap, false, out)
                          : scan_doc(f, src, len, tok_cap, true, out);
}
