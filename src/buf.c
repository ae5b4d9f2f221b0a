/*
 * A growable, reusable output buffer. Capacity doubles, so a buffer reused
 * across events stops allocating once it has seen its largest record, and the
 * data is kept NUL-terminated so that it can be handed to C string functions
 * and logged without a copy.
 */
#include "cuepoint/buf.h"

#include "cuepoint/bytes.h"
#include "cuepoint/err.h"
#include "cuepoint/utf8.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation: small records (triggers, states) fit without a regrow.
 */
#define BUF_CAP_MIN 64

int cue_buf_init(cue_buf *b, size_t cap)
{
    b->len = 0;
    b->cap = 0;
    b->data = NULL;
    return cue_buf_reserve(b, cap);
}

void cue_buf_deinit(cue_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int cue_buf_reserve(cue_buf *b, size_t extra)
{
    /* One byte more than asked, for the NUL, so that it never costs a regrow. */
    if (extra > SIZE_MAX - b->len - 1) return CUE_ENOMEM;
    size_t need = b->len + extra + 1;
    if (b->data && need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : BUF_CAP_MIN;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) return CUE_ENOMEM;
    if (b->data == NULL) p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int cue_buf_append_grow(cue_buf *b, const void *p, size_t n)
{
    if (cue_buf_reserve(b, n) != 0) return CUE_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cue_buf_append_i64(cue_buf *b, int64_t v)
{
    /* Digits from the right, on the magnitude as unsigned: INT64_MIN has no
     * positive counterpart, and snprintf would cost a format parse per number. */
    char tmp[24];
    size_t n = 0;
    uint64_t x = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        tmp[sizeof tmp - 1 - n++] = (char)('0' + x % 10);
    while ((x /= 10) != 0);
    if (v < 0) tmp[sizeof tmp - 1 - n++] = '-';
    return cue_buf_append(b, tmp + sizeof tmp - n, n);
}

int cue_buf_printf(cue_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return CUE_EINVAL;
    if (cue_buf_reserve(b, (size_t)n) != 0) return CUE_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Whether eight bytes (as a little- or big-endian word, either way) are all
 * printable ASCII other than '"' and '\\': no byte below 0x20 or from 0x80
 * up, none equal to either (the classic "has a zero byte" tests). */
static bool plain8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
    uint64_t bad = (w - ones * 0x20) | (quote - ones) | (bslash - ones);
    bad &= ~w; /* a byte with its high bit set is caught below, not here */
    return ((bad | w) & highs) == 0;
}

/* Whether a string of at most SHORT_MAX bytes is all plain ASCII (plain8):
 * its words, the last one overlapping the one before, or for fewer than
 * eight bytes two overlapping halves, instead of a loop over bytes. */
#define SHORT_MAX 32
static bool plain_short(const unsigned char *s, size_t n)
{
    uint64_t w;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if (memcpy(&w, s + i, 8), !plain8(w)) return false;
        memcpy(&w, s + n - 8, 8);
        return plain8(w);
    }
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        return plain8((uint64_t)hi << 32 | lo);
    }
    unsigned char b[8] = {'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'};
    for (size_t i = 0; i < n; i++)
        b[i] = s[i];
    memcpy(&w, b, 8);
    return plain8(w);
}

/* Bytes at s that go out as they are: printable ASCII other than '"' and
 * '\\', and whole well-formed UTF-8 sequences. Plain ASCII is checked eight
 * bytes at a time: escaping is on the path of every trigger. */
static size_t plain_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t w;
        if (n - i >= 8 && (memcpy(&w, s + i, 8), plain8(w))) {
            i += 8;
            continue;
        }
        /* The last few bytes of a string of eight or more as one word that
         * overlaps the bytes checked already; a shorter string whole, as
         * plain_short reads it: most strings (names, ids) are all plain,
         * and a byte at a time was most of their cost. */
        if (n - i < 8 &&
            (n >= 8 ? (memcpy(&w, s + n - 8, 8), plain8(w)) : i == 0 && plain_short(s, n)))
            return n;
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t k = c >= 0x80 ? cue_utf8_len(s + i, n - i) : 0;
        if (k == 0) break;
        i += k;
    }
    return i;
}

/* Writes the escape for byte c at o and returns its length (2 or 6). */
static size_t put_escape(char *o, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    o[0] = '\\';
    switch (c) {
    case '"': o[1] = '"'; return 2;
    case '\\': o[1] = '\\'; return 2;
    case '\n': o[1] = 'n'; return 2;
    case '\r': o[1] = 'r'; return 2;
    case '\t': o[1] = 't'; return 2;
    case '\b': o[1] = 'b'; return 2;
    case '\f': o[1] = 'f'; return 2;
    default:
        memcpy(o + 1, "u00", 3);
        o[4] = hex[c >> 4];
        o[5] = hex[c & 15];
        return 6;
    }
}

int cue_buf_append_base64_str(cue_buf *b, const void *s, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > SIZE_MAX / 2 || cue_buf_reserve(b, (n + 2) / 3 * 4 + 3) != 0) return CUE_ENOMEM;
    const unsigned char *u = s;
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)u[i] << 16 | (uint32_t)u[i + 1] << 8 | u[i + 2];
        *o++ = abc[v >> 18];
        *o++ = abc[(v >> 12) & 63];
        *o++ = abc[(v >> 6) & 63];
        *o++ = abc[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)u[i] << 16 | (i + 1 < n ? (uint32_t)u[i + 1] << 8 : 0);
        *o++ = abc[v >> 18];
        *o++ = abc[(v >> 12) & 63];
        *o++ = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
    return 0;
}

int cue_buf_append_json_str(cue_buf *b, const char *s, size_t n)
{
    /* Most strings written are short and need no escape (ids, types,
     * keys): checked and copied whole, with no scan loop or call. */
    if (n <= SHORT_MAX && b->data && b->cap - b->len > n + 2 &&
        plain_short((const unsigned char *)s, n)) {
        char *d = b->data + b->len;
        d[0] = '"';
        cue_bytes_copy(d + 1, s, n); /* no call: n <= SHORT_MAX */
        d[n + 1] = '"';
        d[n + 2] = '\0';
        b->len += n + 2;
        return 0;
    }
    /* Room for the common case (nothing to escape) up front; an escape grows
     * the buffer only when it must, so a large record is not reserved at six
     * times its size. The invariant: after `len`, room for the rest of the
     * input, the closing quote and the NUL. */
    size_t start = b->len;
    if (n > SIZE_MAX / 8 || cue_buf_reserve(b, n + 2) != 0) return CUE_ENOMEM;
    const unsigned char *u = (const unsigned char *)s;
    size_t len = start;
    b->data[len++] = '"';
    for (size_t i = 0; i < n;) {
        size_t run = plain_run(u + i, n - i);
        memcpy(b->data + len, u + i, run);
        len += run;
        i += run;
        if (i == n) break;
        b->len = len;
        if (cue_buf_reserve(b, 6 + (n - i - 1) + 1) != 0) {
            b->len = start;
            b->data[start] = '\0';
            return CUE_ENOMEM;
        }
        len += put_escape(b->data + len, u[i++]);
    }
    b->data[len++] = '"';
    b->data[len] = '\0';
    b->len = len;
    return 0;
}
