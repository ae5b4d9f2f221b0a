/* The tokenizer as tables: documents it must accept (and what they hold) and
 * every kind it must reject; pointers; unescaping; numbers. */
#include "cuepoint/json.h"

#include <criterion/criterion.h>
#include <string.h>

static cue_json_tok toks[256];

static int parse(cue_json_doc *d, const char *s, cue_err *err)
{
    return cue_json_parse(d, s, strlen(s), toks, 256, err);
}

static const struct {
    const char *text;
    int rc;
    const char *in_message;
} grammar[] = {
    {"{}", 0, NULL},
    {" [1, -0.5e3, \"x\", true, false, null, {\"a\": []}] ", 0, NULL},
    {"\"\\u00e9\\ud83d\\ude00\\n\"", 0, NULL},
    {"", CUE_EPARSE, "byte 0"},
    {"{", CUE_EPARSE, "expected a string key"},
    {"{\"a\":1,}", CUE_EPARSE, "expected a string key"},
    {"[1,]", CUE_EPARSE, NULL},
    {"[1 2]", CUE_EPARSE, "expected ','"},
    {"{\"a\" 1}", CUE_EPARSE, "expected ':'"},
    {"01", CUE_EPARSE, "after the value"},
    {"1.", CUE_EPARSE, "no digits after '.'"},
    {"1e", CUE_EPARSE, "exponent"},
    {"-", CUE_EPARSE, "bad number"},
    {"tru", CUE_EPARSE, NULL},
    {"\"abc", CUE_EPARSE, "unterminated string"},
    {"\"a\tb\"", CUE_EPARSE, "control character"},
    {"\"\\x\"", CUE_EPARSE, "bad escape"},
    {"\"\\u12\"", CUE_EPARSE, "bad \\u escape"},
    {"{} {}", CUE_EPARSE, "after the value"},
    {"{'a':1}", CUE_EPARSE, NULL},
};

Test(json, grammar_table)
{
    for (size_t i = 0; i < sizeof grammar / sizeof *grammar; i++) {
        cue_json_doc d;
        cue_err err = {0};
        int rc = parse(&d, grammar[i].text, &err);
        cr_expect_eq(rc, grammar[i].rc, "'%s': rc %d (%s)", grammar[i].text, rc, err.msg);
        if (grammar[i].in_message)
            cr_expect(strstr(err.msg, grammar[i].in_message) != NULL, "'%s': message '%s'",
                      grammar[i].text, err.msg);
    }
}

Test(json, limits_on_depth_and_tokens)
{
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    cue_json_doc d;
    cue_err err;
    cr_assert_eq(cue_json_parse(&d, deep, 200, toks, 256, &err), CUE_ELIMIT);
    cr_assert(strstr(err.msg, "deep") != NULL, "%s", err.msg);
    cr_assert_eq(cue_json_parse(&d, "[1,2,3,4]", 9, toks, 3, &err), CUE_ELIMIT);
}

Test(json, structure_and_subtree_links)
{
    cue_json_doc d;
    cue_err err;
    cr_assert(parse(&d, "{\"a\":[1,{\"b\":2}],\"c\":\"x\"}", &err) == 0);
    cr_assert_eq(d.n, 9);
    cr_assert_eq(d.toks[0].size, 2);
    cr_assert_eq(d.toks[2].type, CUE_JSON_ARRAY);
    cr_assert_eq(d.toks[2].size, 2);
    cr_assert_eq(d.toks[2].next, 7, "the array's subtree ends before key c");
    cr_assert_eq(d.toks[8].type, CUE_JSON_STRING);
}

Test(json, pointers)
{
    cue_json_doc d;
    cue_err err;
    cr_assert(parse(&d, "{\"a\":{\"b/c\":1,\"d~e\":[10,20,{\"f\":\"g\"}],\"\\u0068\":true},\"\":5}",
                    &err) == 0);
    static const struct {
        const char *ptr;
        const char *text; /* the value's text, or NULL when absent */
    } cases[] = {
        {"/a/b~1c", "1"}, {"/a/d~0e/1", "20"}, {"/a/d~0e/2/f", "g"},
        {"/a/h", "true"}, {"/", "5"},          {"/a/d~0e/3", NULL},
        {"/a/x", NULL},   {"/a/b~1c/z", NULL}, {"/a/d~0e/01", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cue_json_ptr p;
        cr_assert(cue_json_ptr_compile(&p, cases[i].ptr, &err) == 0, "%s: %s", cases[i].ptr,
                  err.msg);
        int32_t t = cue_json_find(&d, &p);
        if (cases[i].text == NULL) {
            cr_expect_eq(t, -1, "%s: found", cases[i].ptr);
            continue;
        }
        cr_assert_geq(t, 0, "%s: not found", cases[i].ptr);
        size_t n = strlen(cases[i].text);
        cr_expect(d.toks[t].len == n && memcmp(d.src + d.toks[t].start, cases[i].text, n) == 0,
                  "%s: wrong value", cases[i].ptr);
    }
    cue_json_ptr p;
    cr_assert_eq(cue_json_ptr_compile(&p, "a/b", &err), CUE_EPARSE);
    cr_assert_eq(cue_json_ptr_compile(&p, "/a~2", &err), CUE_EPARSE);
    cr_assert(cue_json_ptr_compile(&p, "", &err) == 0);
    cr_assert_eq(cue_json_find(&d, &p), 0, "the empty pointer is the whole document");
}

Test(json, unescaping)
{
    cue_json_doc d;
    cue_err err;
    cr_assert(parse(&d,
                    "[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\\ud83d\\ude00\", "
                    "\"\\ud83d\", \"plain\"]",
                    &err) == 0);
    char out[64];
    size_t n;
    cr_assert(cue_json_string(&d, 1, out, sizeof out, &n) == 0);
    cr_assert_eq(n, 12);
    cr_assert(memcmp(out, "a\"b\\c/d\b\f\n\r\t", 12) == 0);
    cr_assert(cue_json_string(&d, 2, out, sizeof out, &n) == 0);
    cr_assert_str_eq(out, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    cr_assert_eq(cue_json_string(&d, 3, out, sizeof out, &n), CUE_EPARSE, "a lone surrogate");
    cr_assert_eq(cue_json_string(&d, 4, out, 3, &n), CUE_ELIMIT);
    cr_assert(cue_json_string_eq(&d, 2, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    cr_assert(!cue_json_string_eq(&d, 4, "plan", 4));
    cr_assert_eq(cue_json_string(&d, 0, out, sizeof out, &n), CUE_EINVAL, "not a string");
}

Test(json, numbers)
{
    cue_json_doc d;
    cue_err err;
    cr_assert(parse(&d,
                    "[0, -1, 9223372036854775807, -9223372036854775808, 9223372036854775808, "
                    "1e3, 1.5, 2.50e1]",
                    &err) == 0);
    static const struct {
        int rc;
        int64_t v;
    } want[] = {{0, 0},          {0, -1},   {0, INT64_MAX},  {0, INT64_MIN},
                {CUE_ELIMIT, 0}, {0, 1000}, {CUE_ELIMIT, 0}, {0, 25}};
    for (uint32_t i = 0; i < 8; i++) {
        int64_t v = 0;
        int rc = cue_json_int64(&d, i + 1, &v);
        cr_expect_eq(rc, want[i].rc, "number %u: rc %d", i, rc);
        if (rc == 0) cr_expect_eq(v, want[i].v, "number %u: %lld", i, (long long)v);
    }
    double x;
    cr_assert(cue_json_double(&d, 7, &x) == 0);
    cr_assert_float_eq(x, 1.5, 1e-12);
}
