/* The JSON tokenizer and pointer resolver (json.c). The input is a JSON
 * document, optionally preceded by a JSON Pointer and a newline (when the
 * first line is shorter than a pointer may be); every token is then read the
 * ways the decoders read them, and checked against the others. */
#include "cuepoint/json.h"
#include "cuepoint/utf8.h"

#include "fuzz.h"

#include <string.h>

#define TOKS 4096

static cue_json_tok toks[TOKS];
static char text[1024 * 1024 + 1];

static void check_token(const cue_json_doc *doc, uint32_t t)
{
    const cue_json_tok *k = &doc->toks[t];
    if ((size_t)k->start + k->len > doc->src_len || k->next <= t || k->next > doc->n) abort();
    if (k->type == CUE_JSON_STRING) {
        size_t len = 0;
        /* A parsed string always unescapes (the tokenizer refuses unpaired
         * surrogates), never longer than its escaped form, into UTF-8, with
         * a NUL only where a \u0000 said so. */
        int rc = cue_json_string(doc, t, text, (size_t)k->len + 1, &len);
        if (rc != 0 || len > k->len || text[len] != '\0' || !cue_utf8_valid(text, len) ||
            (memchr(text, '\0', len) != NULL) != ((k->escaped & CUE_JSON_TOK_NUL) != 0) ||
            !cue_json_string_eq(doc, t, text, len))
            abort();
        if (rc == 0 && len > 0 && cue_json_string(doc, t, text, len, &len) != CUE_ELIMIT) abort();
    } else if (k->type == CUE_JSON_NUMBER) {
        int64_t i = 0;
        double d = 0;
        int ri = cue_json_int64(doc, t, &i), rd = cue_json_double(doc, t, &d);
        /* Both are exact or correctly rounded, so an integer and its double agree. */
        if (ri == 0 && rd == 0 && (double)i != d) abort();
    } else if (cue_json_int64(doc, t, &(int64_t){0}) != CUE_EINVAL ||
               cue_json_string(doc, t, text, 8, &(size_t){0}) != CUE_EINVAL) {
        abort();
    }
}

/* Every member of every object is found again by its own key. */
static void check_members(const cue_json_doc *doc, uint32_t obj)
{
    uint32_t k = obj + 1;
    for (uint32_t m = 0; m < doc->toks[obj].size; m++) {
        size_t len = 0;
        if (cue_json_string(doc, k, text, sizeof text, &len) == 0) {
            int32_t v = cue_json_member(doc, obj, text, len);
            /* Keys are unique (a repeated one is refused): this very member. */
            if (v < 0 || (uint32_t)v != k + 1) abort();
        }
        k = doc->toks[k + 1].next;
    }
}

/* The scanner against the tokenizer: what it accepts, the tokenizer
 * accepts, and each field is the token cue_json_find names. */
static cue_json_fields fields;
static cue_json_ptr fixed[6];
static cue_json_tok found[CUE_EVENT_FIELDS_MAX];

static void check_scan(const char *src, size_t len, int parse_rc, const cue_json_doc *doc,
                       const cue_json_ptr *ptr, bool ptr_ok)
{
    static const char *const texts[] = {"/user_id", "/props", "/props/items/0", "/a/0/b", "", "/0"};
    if (fields.n_nodes == 0) {
        cue_json_fields_init(&fields);
        for (int i = 0; i < 6; i++)
            if (cue_json_ptr_compile(&fixed[i], texts[i], NULL) != 0 ||
                cue_json_fields_add(&fields, &fixed[i]) != i)
                abort();
    }
    cue_json_fields f = fields;
    int extra = ptr_ok ? cue_json_fields_add(&f, ptr) : -1;
    /* A small token limit, so that the scan counts tokens as it goes. */
    static cue_json_tok few[16];
    cue_json_doc small;
    if (cue_json_scan(&f, src, len, 16, found) &&
        cue_json_parse(&small, src, len, few, 16, NULL) != 0)
        abort();
    if (!cue_json_scan(&f, src, len, TOKS, found)) return;
    if (parse_rc != 0) abort();
    for (int i = 0; i < 7; i++) {
        const cue_json_ptr *p = i < 6 ? &fixed[i] : ptr;
        int slot = i < 6 ? i : extra;
        if (slot < 0) continue;
        int32_t t = cue_json_find(doc, p);
        const cue_json_tok *a = &found[slot], *b = t >= 0 ? &doc->toks[t] : NULL;
        if (b == NULL ? a->type != CUE_JSON_NONE
                      : a->type != b->type || a->escaped != b->escaped || a->start != b->start ||
                            a->len != b->len)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 300 ? size : 300);
    char ptr_text[300] = "/props/project/id";
    size_t skip = 0;
    if (nl && memchr(data, '\0', (size_t)(nl - data)) == NULL) {
        memcpy(ptr_text, data, (size_t)(nl - data));
        ptr_text[nl - data] = '\0';
        skip = (size_t)(nl - data) + 1;
    }
    cue_json_ptr ptr;
    cue_err err = {0};
    int prc = cue_json_ptr_compile(&ptr, ptr_text, &err);
    char *src = fuzz_dup(data + skip, size - skip);
    cue_json_doc doc;
    int rc = cue_json_parse(&doc, src ? src : "", size - skip, toks, TOKS, &err);
    if (rc == 0) {
        if (doc.n == 0 || doc.n > TOKS || doc.toks[0].next != doc.n) abort();
        for (uint32_t t = 0; t < doc.n; t++) {
            check_token(&doc, t);
            if (doc.toks[t].type == CUE_JSON_OBJECT) check_members(&doc, t);
        }
        if (prc == 0) {
            int32_t t = cue_json_find(&doc, &ptr);
            if (t >= (int32_t)doc.n || (ptr.n == 0 && t != 0)) abort();
        }
    } else if (rc != CUE_EPARSE && rc != CUE_ELIMIT && rc != CUE_EENCODING &&
               rc != CUE_EDUPLICATE) {
        abort();
    }
    check_scan(src ? src : "", size - skip, rc, &doc, &ptr, prc == 0);
    free(src);
    return 0;
}
