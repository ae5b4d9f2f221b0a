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

/* The same three readers for a token on its own (one from cue_json_scan):
 * `src` is the document it was read from. */
int cue_json_tok_string(const char *src, const cue_json_tok *t, char *out, size_t cap, size_t *len);
int cue_json_tok_int64(const char *src, const cue_json_tok *t, int64_t *out);
int cue_json_tok_double(const char *src, const cue_json_tok *t, double *out);

/* ---- scanning for known fields ------------------------------------------
 *
 * A reader that needs a few values of every document (an event's user id,
 * type, time and the fields its journeys read) does not need a token per
 * value: cue_json_scan validates the document exactly as cue_json_parse
 * does, and keeps only the values a set of pointers names. */

/* Pointers compiled into a tree of their segments (node 0 is the document),
 * so that one pass finds them all. Caller's storage, ~20 KiB. */
#define CUE_JSON_FIELDS_NODES (1 + CUE_EVENT_FIELDS_MAX * CUE_JSON_PTR_SEGS_MAX)
#define CUE_JSON_FIELDS_TABLE 2048 /* a power of two, over twice the nodes */
typedef struct cue_json_fields {
    uint16_t n_slots, n_nodes, text_used;
    struct cue_json_field_node {
        uint64_t head;             /* the segment's first 8 bytes, zero-padded */
        uint16_t child;            /* first child node; 0: none */
        uint16_t sibling;          /* next child of the same parent; 0: none */
        uint16_t parent;           /* the node it is a child of */
        int16_t slot;              /* the field this node is, or -1 */
        uint16_t key_off, key_len; /* the segment (unescaped) in text */
        int32_t index;             /* the segment as an array index, or -1 */
    } node[CUE_JSON_FIELDS_NODES];
    /* The nodes by (parent, key), open addressing; 0: empty. A key of a
     * document is looked up with one probe or two, where walking the
     * parent's children compared it with half of them on average. */
    uint16_t by_key[CUE_JSON_FIELDS_TABLE];
    char text[CUE_EVENT_FIELDS_TEXT_MAX];
} cue_json_fields;

void cue_json_fields_init(cue_json_fields *f);

/* Adds pointer `p` and returns its slot (0, 1, ...), the slot of an equal
 * pointer added before, or CUE_EFULL when CUE_EVENT_FIELDS_MAX fields (or
 * their text) fill the set. */
int cue_json_fields_add(cue_json_fields *f, const cue_json_ptr *p);

/* Scans `src` (`len` bytes) in one pass. True: the document is one that
 * cue_json_parse accepts with at most `tok_cap` tokens, and out[slot] (one
 * per slot of `f`) is the token of each field, type CUE_JSON_NONE when the
 * document has none there (its `next` and `size` are not set). False: the
 * scan cannot vouch for it, because it is not valid JSON or is of a shape
 * left to the tokenizer (an escaped key, an object of many keys, ...): the
 * caller parses it with cue_json_parse, which says what is wrong if anything
 * is. */
bool cue_json_scan(const cue_json_fields *f, const char *src, size_t len, uint32_t tok_cap,
                   cue_json_tok *out);

#endif
