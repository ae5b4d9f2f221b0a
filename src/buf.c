/* A growable, reusable output buffer. */
#include "cuepoint/buf.h"

#include "cuepoint/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* One byte more than asked: the terminating NUL never needs a second grow. */
    if (b->data && b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) return CUE_ENOMEM;
    if (b->data == NULL) p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int cue_buf_append(cue_buf *b, const void *p, size_t n)
{
    if (cue_buf_reserve(b, n) != 0) return CUE_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cue_buf_append_str(cue_buf *b, const char *s)
{
    return cue_buf_append(b, s, strlen(s));
}

int cue_buf_append_char(cue_buf *b, char c)
{
    return cue_buf_append(b, &c, 1);
}

int cue_buf_append_i64(cue_buf *b, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t x = v < 0 ? -(uint64_t)v : (uint64_t)v;
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

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

int cue_buf_append_json_str(cue_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX: reserve once. */
    if (cue_buf_reserve(b, n * 6 + 2) != 0) return CUE_ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            i++;
            continue;
        }
        size_t len = c >= 0x80 ? utf8_len(u + i, n - i) : 0;
        if (len) {
            memcpy(o, u + i, len);
            o += len;
            i += len;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        i++;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}
