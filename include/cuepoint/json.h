/*
 * json: a small, allocation-free JSON tokenizer for the hot path, and JSON
 * Pointers (RFC 6901) compiled once and resolved against tokenized documents.
 *
 * jansson allocates per node (~38 allocations for a 155-byte event); decoding
 * every event through it would cost more than the rest of the pipeline. The
 * tokenizer instead validates the document (RFC 8259 grammar) and records one
 * token per value in a caller-provided array, pointing into the source bytes.
 * Any thread; a document borrows its source and its token array.
 */
#ifndef CUEPOINT_JSON_H
#define CUEPOINT_JSON_H

#include "cuepoint/err.h"
#include "cuepoint/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cue_json_type {
    CUE_JSON_NONE = 0,
    CUE_JSON_OBJECT,
    CUE_JSON_ARRAY,
    CUE_JSON_STRING,
    CUE_JSON_NUMBER,
    CUE_JSON_TRUE,
    CUE_JSON_FALSE,
    CUE_JSON_NULL,
} cue_json_type;

/* One value. For strings, [start, start+len) is the content between the quotes,
 * still escaped when `escaped` is set; for other types it is the value's text
 * (for objects and arrays, from the opening to the closing bracket). Object
 * members are a key token (a string) followed by its value's subtree. */
/* Bits of a string token's `escaped`. */
#define CUE_JSON_TOK_ESCAPED 1 /* contains a backslash escape */
#define CUE_JSON_TOK_NUL     2 /* contains \u0000, a NUL once unescaped */

typedef struct cue_json_tok {
    uint8_t type;    /* cue_json_type */
    uint8_t escaped; /* CUE_JSON_TOK_* bits; 0 for a string to take as it is */
    uint16_t pad_;
    uint32_t start;
    uint32_t len;
    uint32_t next; /* index of the first token after this value's subtree */
    uint32_t size; /* members (objects) or elements (arrays); 0 otherwise */
} cue_json_tok;

typedef struct cue_json_doc {
    const char *src; /* borrowed */
    size_t src_len;
    cue_json_tok *toks; /* borrowed, caller's array */
    uint32_t n;
    uint32_t cap;
} cue_json_doc;

/* Tokenizes `src` into `toks` (capacity `cap`). Whitespace around the value is
 * allowed, anything else after it is not. On failure returns CUE_EPARSE (bad
 * grammar, with the byte offset in `err`), CUE_EENCODING (a string that is not
 * valid UTF-8, or a \u escape of an unpaired surrogate), CUE_EDUPLICATE (an
 * object names a key twice, compared unescaped) or CUE_ELIMIT (too many tokens
 * or too deep). The document borrows `src` and `toks`. */
int cue_json_parse(cue_json_doc *doc, const char *src, size_t len, cue_json_tok *toks, uint32_t cap,
                   cue_err *err);

/* A compiled JSON Pointer. "" is the whole document. */
typedef struct cue_json_ptr {
    uint8_t n;
    struct {
        uint16_t off; /* into text, unescaped (~0 and ~1 resolved) */
        uint16_t len;
        int32_t index; /* the segment as an array index, or -1 */
    } seg[CUE_JSON_PTR_SEGS_MAX];
    char text[CUE_JSON_PTR_BYTES_MAX];   /* unescaped segments, back to back */
    char source[CUE_JSON_PTR_BYTES_MAX]; /* the pointer as written, for messages */
} cue_json_ptr;

/* Compiles RFC 6901 text ("/props/due_at"). CUE_EPARSE if it does not start
 * with '/' (and is not empty) or has a bad ~ escape; CUE_ELIMIT if too long. */
int cue_json_ptr_compile(cue_json_ptr *p, const char *text, cue_err *err);

/* The token index the pointer names in `doc`, or -1 when absent. */
int32_t cue_json_find(const cue_json_doc *doc, const cue_json_ptr *p);

/* The token index of member `key` of object token `obj`, or -1. */
int32_t cue_json_member(const cue_json_doc *doc, uint32_t obj, const char *key, size_t key_len);

/* Copies string token `t` unescaped into `out` (capacity `cap`, NUL-terminated),
 * setting `*len`. CUE_EINVAL if `t` is not a string, CUE_ELIMIT if it does not
 * fit, CUE_EPARSE on an escape that is not valid (e.g. a lone surrogate). */
int cue_json_string(const cue_json_doc *doc, uint32_t t, char *out, size_t cap, size_t *len);

/* Compares string token `t` (unescaped) with `s`; false for non-strings. */
bool cue_json_string_eq(const cue_json_doc *doc, uint32_t t, const char *s, size_t n);

/* Number token `t` as an exact integer: CUE_EINVAL if not a number, CUE_ERANGE-like
 * CUE_ELIMIT if it has a fraction or exponent that is not integral or overflows. */
int cue_json_int64(const cue_json_doc *doc, uint32_t t, int64_t *out);

/* Number token `t` as a double. */
int cue_json_double(const cue_json_doc *doc, uint32_t t, double *out);

#endif
