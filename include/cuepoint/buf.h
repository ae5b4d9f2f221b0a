/*
 * buf: a growable byte buffer for building output (trigger JSON, dead letters,
 * encoded states) that is reused across events, so that after warm-up building
 * a record allocates nothing. Single-threaded; the buffer owns its bytes.
 */
#ifndef CUEPOINT_BUF_H
#define CUEPOINT_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct cue_buf {
    char *data; /* owned; NUL-terminated after every append (not counted in len) */
    size_t len;
    size_t cap;
} cue_buf;

/* Caller's storage. init reserves `cap` bytes (0 is fine); deinit frees them. */
int cue_buf_init(cue_buf *b, size_t cap);
void cue_buf_deinit(cue_buf *b);

/* Empties the buffer and keeps its capacity. */
static inline void cue_buf_reset(cue_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

/* Makes room for `extra` more bytes. CUE_ENOMEM on failure; contents kept. */
int cue_buf_reserve(cue_buf *b, size_t extra);

/* The appends' way when the buffer must grow (or was never allocated). */
int cue_buf_append_grow(cue_buf *b, const void *p, size_t n);

/* Appends; each returns 0 or CUE_ENOMEM. Inline when there is room: a
 * trigger's record is some thirty appends, most of a literal whose length
 * the compiler then knows, and a call each (with a strlen) was a tenth of
 * encoding it. */
static inline int cue_buf_append(cue_buf *b, const void *p, size_t n)
{
    if (b->data == NULL || n >= b->cap - b->len) return cue_buf_append_grow(b, p, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static inline int cue_buf_append_str(cue_buf *b, const char *s)
{
    return cue_buf_append(b, s, strlen(s));
}

static inline int cue_buf_append_char(cue_buf *b, char c)
{
    return cue_buf_append(b, &c, 1);
}

int cue_buf_append_i64(cue_buf *b, int64_t v);
int cue_buf_printf(cue_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends `s` as a quoted JSON string. Bytes that are not valid UTF-8 are
 * written as \u00XX so that nothing is dropped and the output stays valid JSON. */
int cue_buf_append_json_str(cue_buf *b, const char *s, size_t n);

/* Appends n bytes at s as standard base64 (RFC 4648, padded), as a JSON
 * string with its quotes. CUE_ENOMEM. */
int cue_buf_append_base64_str(cue_buf *b, const void *s, size_t n);

#endif
