/* The tokenizer as tables: documents it must accept (and the tokens they
 * make), every class of grammar it must reject and where it says so, its two
 * limits; pointers; unescaping; numbers. Expected values are written out by
 * hand from RFC 8259 and RFC 6901, not computed by the code under test. */
#include "cuepoint/json.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

static cue_json_tok toks[4096];

static int parse(cue_json_doc *d, const char *s, cue_err *err)
{
    return cue_json_parse(d, s, strlen(s), toks, COUNT(toks), err);
}

/* Parses a document that must be valid, failing the test with the message. */
static void parse_ok(cue_json_doc *d, const char *s)
{
    cue_err err = {0};
    int rc = parse(d, s, &err);
    cr_assert_eq(rc, 0, "'%s' does not parse: %d %s", s, rc, err.msg);
}

/* A token's text, quoted for messages. */
static const char *tok_text(const cue_json_doc *d, int32_t t, char *buf, size_t cap)
{
    if (t < 0) return "(absent)";
    snprintf(buf, cap, "'%.*s'", (int)d->toks[t].len, d->src + d->toks[t].start);
    return buf;
}

static bool tok_is(const cue_json_doc *d, int32_t t, const char *text)
{
    size_t n = strlen(text);
    return t >= 0 && d->toks[t].len == n && memcmp(d->src + d->toks[t].start, text, n) == 0;
}

/* ---- grammar ----------------------------------------------------------- */

static const struct {
    const char *text;
    int rc;
    const char *message; /* the whole message, offset included; NULL to accept */
} grammar[] = {
    /* accepted */
    {"{}", 0, NULL},
    {"[]", 0, NULL},
    {" \t\r\n{ } \t\r\n", 0, NULL},
    {"[1, -0.5e3, \"x\", true, false, null, {\"a\": []}]", 0, NULL},
    {"0", 0, NULL},
    {"-0", 0, NULL},
    {"-0.0e-0", 0, NULL},
    {"1E+2", 0, NULL},
    {"123456789012345678901234567890", 0, NULL},
    {"\"\"", 0, NULL},
    {"\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"", 0, NULL},
    {"\"\\ud800\"", CUE_EENCODING, NULL}, /* a lone surrogate is not text */
    {"\"caf\xc3\xa9 \x7f\"", 0, NULL},
    {"{\"a\":{\"b\":{\"c\":[[[]]]}}}", 0, NULL},
    {"null", 0, NULL},
    /* nothing there */
    {"", CUE_EPARSE, "at byte 0: unexpected end of input, expected a value"},
    {"  \n ", CUE_EPARSE, "at byte 4: unexpected end of input, expected a value"},
    /* trailing commas */
    {"[1,]", CUE_EPARSE, "at byte 3: trailing comma before ']'"},
    {"[1, ]", CUE_EPARSE, "at byte 4: trailing comma before ']'"},
    {"{\"a\":1,}", CUE_EPARSE, "at byte 7: trailing comma before '}'"},
    /* misplaced or missing separators */
    {"[,1]", CUE_EPARSE, "at byte 1: expected a value"},
    {"[1,,2]", CUE_EPARSE, "at byte 3: expected a value"},
    {"[1 2]", CUE_EPARSE, "at byte 3: expected ',' or ']'"},
    {"[1:2]", CUE_EPARSE, "at byte 2: expected ',' or ']'"},
    {"{\"a\":1 \"b\":2}", CUE_EPARSE, "at byte 7: expected ',' or '}' after a member"},
    {"{\"event_type_xy\" 1}", CUE_EPARSE, "at byte 17: expected ':' after object key"},
    {"{\"a\"}", CUE_EPARSE, "at byte 4: expected ':' after object key"},
    {"{\"a\":}", CUE_EPARSE, "at byte 5: expected a value"},
    {"{\"a\":1]", CUE_EPARSE, "at byte 6: expected ',' or '}' after a member"},
    {"[1}", CUE_EPARSE, "at byte 2: expected ',' or ']'"},
    /* keys */
    {"{1:2}", CUE_EPARSE, "at byte 1: expected a string key"},
    {"{'a':1}", CUE_EPARSE, "at byte 1: expected a string key"},
    {"{a:1}", CUE_EPARSE, "at byte 1: expected a string key"},
    {"{,}", CUE_EPARSE, "at byte 1: expected a string key"},
    /* numbers */
    {"01", CUE_EPARSE, "at byte 1: leading zero in a number"},
    {"-01", CUE_EPARSE, "at byte 2: leading zero in a number"},
    {"[00]", CUE_EPARSE, "at byte 2: leading zero in a number"},
    {"1.", CUE_EPARSE, "at byte 2: expected a digit after '.'"},
    {"1.e5", CUE_EPARSE, "at byte 2: expected a digit after '.'"},
    {".5", CUE_EPARSE, "at byte 0: expected a value"},
    {"+1", CUE_EPARSE, "at byte 0: expected a value"},
    {"-", CUE_EPARSE, "at byte 1: expected a digit after '-'"},
    {"-a", CUE_EPARSE, "at byte 1: expected a digit after '-'"},
    {"1e", CUE_EPARSE, "at byte 2: expected a digit in the exponent"},
    {"1e+", CUE_EPARSE, "at byte 3: expected a digit in the exponent"},
    {"1E-x", CUE_EPARSE, "at byte 3: expected a digit in the exponent"},
    {"0x10", CUE_EPARSE, "at byte 1: unexpected data after the value"},
    {"NaN", CUE_EPARSE, "at byte 0: expected a value"},
    {"-Infinity", CUE_EPARSE, "at byte 1: expected a digit after '-'"},
    /* literals */
    {"tru", CUE_EPARSE, "at byte 0: invalid literal (expected true, false or null)"},
    {"[nul]", CUE_EPARSE, "at byte 1: invalid literal (expected true, false or null)"},
    {"True", CUE_EPARSE, "at byte 0: expected a value"},
    {"falsey", CUE_EPARSE, "at byte 5: unexpected data after the value"},
    /* strings */
    {"\"abc", CUE_EPARSE, "at byte 4: unterminated string (opened at byte 0)"},
    {"[\"a\\\"]", CUE_EPARSE, "at byte 6: unterminated string (opened at byte 1)"},
    {"\"ab\\", CUE_EPARSE, "at byte 4: unterminated string (opened at byte 0)"},
    {"\"a\tb\"", CUE_EPARSE, "at byte 2: raw control character in a string"},
    {"\"a\nb\"", CUE_EPARSE, "at byte 2: raw control character in a string"},
    {"\"\x01\"", CUE_EPARSE, "at byte 1: raw control character in a string"},
    {"\"\x1f\"", CUE_EPARSE, "at byte 1: raw control character in a string"},
    {"\"\\x41\"", CUE_EPARSE, "at byte 1: bad escape in a string"},
    {"\"\\'\"", CUE_EPARSE, "at byte 1: bad escape in a string"},
    {"\"\\U00e9\"", CUE_EPARSE, "at byte 1: bad escape in a string"},
    {"\"\\u12\"", CUE_EPARSE, "at byte 1: bad \\u escape (expected four hex digits)"},
    {"\"\\u12g4\"", CUE_EPARSE, "at byte 1: bad \\u escape (expected four hex digits)"},
    {"\"\\u", CUE_EPARSE, "at byte 1: bad \\u escape (expected four hex digits)"},
    /* unterminated containers */
    {"[", CUE_EPARSE, "at byte 1: unexpected end of input, expected a value"},
    {"[1", CUE_EPARSE, "at byte 2: unterminated array"},
    {"{", CUE_EPARSE, "at byte 1: expected a string key"},
    {"{\"a\":1", CUE_EPARSE, "at byte 6: unterminated object"},
    {"[[1]", CUE_EPARSE, "at byte 4: unterminated array"},
    /* something after the value */
    {"{} {}", CUE_EPARSE, "at byte 3: unexpected data after the value"},
    {"1 2", CUE_EPARSE, "at byte 2: unexpected data after the value"},
    {"[]]", CUE_EPARSE, "at byte 2: unexpected data after the value"},
    {"{}x", CUE_EPARSE, "at byte 2: unexpected data after the value"},
    {"{} // comment", CUE_EPARSE, "at byte 3: unexpected data after the value"},
    {"\xef\xbb\xbf{}", CUE_EPARSE, "at byte 0: expected a value"}, /* a BOM */
    /* text that is not UTF-8, or escapes that cannot become it */
    {"\"v\xff"
     "1\"",
     CUE_EENCODING, "at byte 2: invalid UTF-8 in a string"},
    {"\"Europe/Par\xeds\"", CUE_EENCODING, "at byte 11: invalid UTF-8 in a string"},
    {"\"\xc3\"", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"},         /* cut short */
    {"\"\xc3", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"},           /* at the end */
    {"\"\xc0\xaf\"", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"},     /* overlong */
    {"\"\xe0\x80\xaf\"", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"}, /* overlong */
    {"\"\xed\xa0\x80\"", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"}, /* surrogate */
    {"\"\xf4\x90\x80\x80\"", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"}, /* >10FFFF */
    {"\"\xf5\x80\x80\x80\"", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"},
    {"\"\x80\"", CUE_EENCODING, "at byte 1: invalid UTF-8 in a string"}, /* a lone continuation */
    {"{\"k\xff\":1}", CUE_EENCODING, "at byte 3: invalid UTF-8 in a string"}, /* in a key */
    {"\"\\ud83d\"", CUE_EENCODING, "at byte 1: a \\u escape of an unpaired surrogate"},
    {"\"\\ud83dx\"", CUE_EENCODING, NULL},
    {"\"\\ud83d\\n\"", CUE_EENCODING, NULL},
    {"\"\\ud83d\\ud83d\"", CUE_EENCODING, NULL},
    {"\"\\ude00\"", CUE_EENCODING, NULL},
    {"[\"ok\", \"\\ude00\\ud83d\"]", CUE_EENCODING,
     "at byte 8: a \\u escape of an unpaired surrogate"},
    /* a key named twice, also when spelled differently */
    {"{\"a\":1,\"a\":2}", CUE_EDUPLICATE, "at byte 7: duplicate key \"a\""},
    {"{\"a\":1,\"b\":{\"a\":2},\"a\":3}", CUE_EDUPLICATE, "at byte 19: duplicate key \"a\""},
    {"{\"user_id\":\"u1\",\"\\u0075ser_id\":\"u2\"}", CUE_EDUPLICATE, NULL},
    {"{\"\\u0061\":1,\"\\u0061\":2}", CUE_EDUPLICATE, NULL},
    {"{\"\":1,\"\":2}", CUE_EDUPLICATE, NULL},
};

/* Valid text and distinct keys in every shape the checks above look at. */
static const char *const strict_ok[] = {
    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xee\x80\x80\"",
    "\"\\ud83d\\ude00\"",
    "{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":1},{\"a\":2}]}",
    "{\"ab\":1,\"ba\":2,\"a\":3,\"b\":4,\"\":5,\"aa\":6}",
    "{\"\\u0061\":1,\"b\":2,\"\\u0062c\":3}",
    "{\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,\"k8\":1,\"k9\":1}",
};

Test(json, strict_text_that_passes)
{
    for (size_t i = 0; i < COUNT(strict_ok); i++) {
        cue_json_doc d;
        cue_err err = {0};
        int rc = cue_json_parse(&d, strict_ok[i], strlen(strict_ok[i]), toks, COUNT(toks), &err);
        cr_expect_eq(rc, 0, "case %zu '%s': %s", i, strict_ok[i], err.msg);
    }
}

Test(json, a_nul_escape_is_flagged)
{
    cue_json_doc d;
    parse_ok(&d, "[\"x\\u0000y\", \"x\\u0001y\", \"xy\"]");
    cr_expect_eq(d.toks[1].escaped, CUE_JSON_TOK_ESCAPED | CUE_JSON_TOK_NUL);
    cr_expect_eq(d.toks[2].escaped, CUE_JSON_TOK_ESCAPED);
    cr_expect_eq(d.toks[3].escaped, 0);
}

Test(json, grammar_table)
{
    for (size_t i = 0; i < COUNT(grammar); i++) {
        /* An exact-size heap copy, no NUL after it: under ASan, reading one
         * byte past the input fails the test. */
        size_t len = strlen(grammar[i].text);
        char *copy = malloc(len ? len : 1);
        cr_assert_not_null(copy);
        memcpy(copy, grammar[i].text, len);
        cue_json_doc d;
        cue_err err = {0};
        int rc = cue_json_parse(&d, copy, len, toks, COUNT(toks), &err);
        free(copy);
        cr_expect_eq(rc, grammar[i].rc, "case %zu '%s': rc %d, expected %d (%s)", i,
                     grammar[i].text, rc, grammar[i].rc, err.msg);
        if (grammar[i].message)
            cr_expect_str_eq(err.msg, grammar[i].message, "case %zu '%s': message '%s', not '%s'",
                             i, grammar[i].text, err.msg, grammar[i].message);
        if (grammar[i].rc != 0)
            cr_expect_eq(d.n, 0, "case %zu: a failed parse leaves no tokens, has %u", i, d.n);
    }
}

Test(json, a_length_is_honoured_without_a_terminator)
{
    /* Only the first 7 bytes are the document; what follows must not be read. */
    const char text[] = "[1,2,3]garbage";
    cue_json_doc d;
    cr_assert_eq(cue_json_parse(&d, text, 7, toks, COUNT(toks), NULL), 0);
    cr_assert_eq(d.toks[0].size, 3);
    cr_assert_eq(cue_json_parse(&d, text, 6, toks, COUNT(toks), NULL), CUE_EPARSE);
    /* An embedded NUL is not the end of input. */
    cr_assert_eq(cue_json_parse(&d, "[1]\0", 4, toks, COUNT(toks), NULL), CUE_EPARSE);
}

/* ---- tokens ------------------------------------------------------------ */

typedef struct want_tok {
    cue_json_type type;
    const char *text; /* between the quotes for strings */
    uint32_t size, next;
    bool escaped;
} want_tok;

static void expect_tokens(const char *doc, const want_tok *want, uint32_t n)
{
    cue_json_doc d;
    parse_ok(&d, doc);
    cr_expect_eq(d.n, n, "'%s': %u tokens, expected %u", doc, d.n, n);
    for (uint32_t i = 0; i < n && i < d.n; i++) {
        const cue_json_tok *t = &d.toks[i];
        char buf[128];
        cr_expect_eq(t->type, want[i].type, "'%s' token %u: type %d, expected %d", doc, i, t->type,
                     want[i].type);
        cr_expect(tok_is(&d, (int32_t)i, want[i].text), "'%s' token %u: text %s, expected '%s'",
                  doc, i, tok_text(&d, (int32_t)i, buf, sizeof buf), want[i].text);
        cr_expect_eq(t->size, want[i].size, "'%s' token %u: size %u, expected %u", doc, i, t->size,
                     want[i].size);
        cr_expect_eq(t->next, want[i].next, "'%s' token %u: next %u, expected %u", doc, i, t->next,
                     want[i].next);
        cr_expect_eq(t->escaped, want[i].escaped, "'%s' token %u: escaped %d", doc, i, t->escaped);
    }
}

Test(json, tokens_of_nested_document)
{
    static const char doc[] = "{\"a\":[1,{\"b\":2}],\"c\":\"x\\n\"}";
    static const want_tok want[] = {
        {CUE_JSON_OBJECT, doc, 2, 9, false},
        {CUE_JSON_STRING, "a", 0, 2, false},
        {CUE_JSON_ARRAY, "[1,{\"b\":2}]", 2, 7, false},
        {CUE_JSON_NUMBER, "1", 0, 4, false},
        {CUE_JSON_OBJECT, "{\"b\":2}", 1, 7, false},
        {CUE_JSON_STRING, "b", 0, 6, false},
        {CUE_JSON_NUMBER, "2", 0, 7, false},
        {CUE_JSON_STRING, "c", 0, 8, false},
        {CUE_JSON_STRING, "x\\n", 0, 9, true},
    };
    expect_tokens(doc, want, COUNT(want));
}

Test(json, tokens_of_scalars_and_empty_containers)
{
    static const want_tok want[] = {
        {CUE_JSON_ARRAY, "[ true,false , null,{ },[],\"\",-1.5e3 ]", 7, 8, false},
        {CUE_JSON_TRUE, "true", 0, 2, false},
        {CUE_JSON_FALSE, "false", 0, 3, false},
        {CUE_JSON_NULL, "null", 0, 4, false},
        {CUE_JSON_OBJECT, "{ }", 0, 5, false},
        {CUE_JSON_ARRAY, "[]", 0, 6, false},
        {CUE_JSON_STRING, "", 0, 7, false},
        {CUE_JSON_NUMBER, "-1.5e3", 0, 8, false},
    };
    expect_tokens(" [ true,false , null,{ },[],\"\",-1.5e3 ] ", want, COUNT(want));
    static const want_tok scalar[] = {{CUE_JSON_STRING, "solo", 0, 1, false}};
    expect_tokens("\"solo\"", scalar, 1);
}

/* ---- limits ------------------------------------------------------------ */

/* n '[' then n ']', in caller's storage of at least 2n bytes. */
static size_t nest(char *buf, size_t n, char open, char close)
{
    memset(buf, open, n);
    memset(buf + n, close, n);
    return 2 * n;
}

Test(json, depth_limit)
{
    static char buf[200002];
    cue_json_doc d;
    cue_err err = {0};
    size_t len = nest(buf, CUE_JSON_DEPTH_MAX, '[', ']');
    cr_assert_eq(cue_json_parse(&d, buf, len, toks, COUNT(toks), &err), 0, "%s", err.msg);
    cr_expect_eq(d.n, CUE_JSON_DEPTH_MAX);
    cr_expect_eq(d.toks[0].next, CUE_JSON_DEPTH_MAX, "the outermost subtree holds every token");
    cr_expect_eq(d.toks[CUE_JSON_DEPTH_MAX - 1].size, 0, "the innermost array is empty");
    cr_expect_eq(d.toks[CUE_JSON_DEPTH_MAX - 2].size, 1);

    len = nest(buf, CUE_JSON_DEPTH_MAX + 1, '[', ']');
    cr_assert_eq(cue_json_parse(&d, buf, len, toks, COUNT(toks), &err), CUE_ELIMIT);
    char want[64];
    snprintf(want, sizeof want, "at byte %d: nested deeper than %d levels", CUE_JSON_DEPTH_MAX,
             CUE_JSON_DEPTH_MAX);
    cr_expect_str_eq(err.msg, want);

    /* Far past the limit: refused without recursion, so without a crash. */
    len = nest(buf, 100000, '[', ']');
    cr_assert_eq(cue_json_parse(&d, buf, len, toks, COUNT(toks), &err), CUE_ELIMIT);

    /* Objects count the same. */
    char *o = buf;
    for (int k = 0; k < CUE_JSON_DEPTH_MAX + 1; k++)
        o += sprintf(o, "{\"k\":");
    *o++ = '1';
    for (int k = 0; k < CUE_JSON_DEPTH_MAX + 1; k++)
        *o++ = '}';
    cr_expect_eq(cue_json_parse(&d, buf, (size_t)(o - buf), toks, COUNT(toks), &err), CUE_ELIMIT);
    cr_expect_eq(cue_json_parse(&d, buf + 5, (size_t)(o - buf) - 6, toks, COUNT(toks), &err), 0,
                 "one level fewer parses: %s", err.msg);
}

Test(json, token_limit)
{
    static const struct {
        const char *text;
        uint32_t cap;
        int rc;
    } cases[] = {
        {"[1,2,3]", 4, 0},        {"[1,2,3]", 3, CUE_ELIMIT}, {"{}", 1, 0},
        {"{}", 0, CUE_ELIMIT},    {"{\"a\":1}", 3, 0},        {"{\"a\":1}", 2, CUE_ELIMIT},
        {"\"x\"", 0, CUE_ELIMIT}, {"[[],[]]", 3, 0},          {"[[],[]]", 2, CUE_ELIMIT},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_json_doc d;
        cue_err err = {0};
        int rc = cue_json_parse(&d, cases[i].text, strlen(cases[i].text), toks, cases[i].cap, &err);
        cr_expect_eq(rc, cases[i].rc, "'%s' with %u tokens: rc %d (%s)", cases[i].text,
                     cases[i].cap, rc, err.msg);
        if (rc == CUE_ELIMIT)
            cr_expect(strstr(err.msg, "token limit") != NULL, "'%s': message '%s'", cases[i].text,
                      err.msg);
        else if (rc == 0)
            cr_expect_eq(d.n, cases[i].cap, "'%s': uses exactly its tokens", cases[i].text);
    }
}

/* ---- pointers ---------------------------------------------------------- */

Test(json, pointer_compile_table)
{
    static const struct {
        const char *text;
        int rc;
        uint8_t n;
        const char *segs[3]; /* unescaped */
        int32_t index[3];
    } cases[] = {
        {"", 0, 0, {NULL}, {0}},
        {"/", 0, 1, {""}, {-1}},
        {"/a/b", 0, 2, {"a", "b"}, {-1, -1}},
        {"/a~1b/m~0n", 0, 2, {"a/b", "m~n"}, {-1, -1}},
        {"/~01", 0, 1, {"~1"}, {-1}}, /* ~0 first, then the 1: not "/" */
        {"/~10", 0, 1, {"/0"}, {-1}},
        {"/a//", 0, 3, {"a", "", ""}, {-1, -1, -1}},
        {"/0/10/007", 0, 3, {"0", "10", "007"}, {0, 10, -1}},
        {"/-/1a/ 1", 0, 3, {"-", "1a", " 1"}, {-1, -1, -1}},
        {"/123456789/1234567890", 0, 2, {"123456789", "1234567890"}, {123456789, -1}},
        {"a/b", CUE_EPARSE, 0, {NULL}, {0}},
        {"#/a", CUE_EPARSE, 0, {NULL}, {0}},
        {"/a~", CUE_EPARSE, 0, {NULL}, {0}},
        {"/a~2", CUE_EPARSE, 0, {NULL}, {0}},
        {"/a~/b", CUE_EPARSE, 0, {NULL}, {0}},
        {"/1/2/3/4/5/6/7/8", 0, 8, {"1", "2", "3"}, {1, 2, 3}},
        {"/1/2/3/4/5/6/7/8/9", CUE_ELIMIT, 0, {NULL}, {0}},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_json_ptr p;
        cue_err err = {0};
        int rc = cue_json_ptr_compile(&p, cases[i].text, &err);
        cr_expect_eq(rc, cases[i].rc, "'%s': rc %d (%s)", cases[i].text, rc, err.msg);
        if (rc != 0 || cases[i].rc != 0) continue;
        cr_expect_str_eq(p.source, cases[i].text);
        cr_expect_eq(p.n, cases[i].n, "'%s': %u segments, expected %u", cases[i].text, p.n,
                     cases[i].n);
        for (int s = 0; s < 3 && s < p.n && cases[i].segs[s]; s++) {
            size_t len = strlen(cases[i].segs[s]);
            cr_expect(p.seg[s].len == len &&
                          memcmp(p.text + p.seg[s].off, cases[i].segs[s], len) == 0,
                      "'%s' segment %d: '%.*s', expected '%s'", cases[i].text, s, p.seg[s].len,
                      p.text + p.seg[s].off, cases[i].segs[s]);
            cr_expect_eq(p.seg[s].index, cases[i].index[s],
                         "'%s' segment %d: index %d, expected %d", cases[i].text, s, p.seg[s].index,
                         cases[i].index[s]);
        }
    }
    char longer[CUE_JSON_PTR_BYTES_MAX + 1];
    memset(longer, 'a', sizeof longer - 1);
    longer[0] = '/';
    longer[sizeof longer - 1] = '\0';
    cue_json_ptr p;
    cr_expect_eq(cue_json_ptr_compile(&p, longer, NULL), CUE_ELIMIT);
    longer[sizeof longer - 2] = '\0';
    cr_expect_eq(cue_json_ptr_compile(&p, longer, NULL), 0, "one byte shorter fits");
}

static const char find_doc[] =
    "{\"a\":{\"b/c\":1,\"d~e\":[10,20,{\"f\":\"g\"}],\"\\u0068\":true,\"x\\\"y\":3},"
    "\"\":5,\"arr\":[[0,1],[2,3]],\"k\\u00e9y\":\"v\",\"dup\":1,\"pud\":2,"
    "\"esc\\\\aped\\/key\":\"w\",\"n\":null}";

Test(json, pointer_find_table)
{
    cue_json_doc d;
    parse_ok(&d, find_doc);
    static const struct {
        const char *ptr;
        const char *text; /* the value's text, or NULL when absent */
    } cases[] = {
        {"", NULL}, /* checked below: the whole document */
        {"/a/b~1c", "1"},
        {"/a/d~0e/0", "10"},
        {"/a/d~0e/1", "20"},
        {"/a/d~0e/2/f", "g"},
        {"/a/h", "true"},         /* key written as \u0068 */
        {"/a/x\"y", "3"},         /* key with an escaped quote */
        {"/k\xc3\xa9y", "v"},     /* key with \u00e9, pointer in UTF-8 */
        {"/esc\\aped~1key", "w"}, /* \\ and \/ in the key */
        {"/", "5"},               /* the empty key */
        {"/arr/1/0", "2"},
        {"/arr/0/1", "1"},
        {"/dup", "1"},
        {"/pud", "2"},
        {"/n", "null"},
        {"/a/d~0e/3", NULL}, /* past the end */
        {"/a/d~0e/-", NULL},
        {"/a/d~0e/01", NULL}, /* leading zero is not an index */
        {"/a/x", NULL},
        {"/a/b~1c/z", NULL}, /* through a scalar */
        {"/a/b/c", NULL},    /* "b/c" is one key */
        {"/a/d~e", NULL},    /* unescaped "~" does not name "d~e"... */
        {"/arr/x", NULL},    /* a key on an array */
        {"/0", NULL},        /* an index on an object */
        {"/a/h/", NULL},
        {"/A", NULL}, /* keys are case-sensitive */
        {"/k\xc3\xa9", NULL},
        {"/ke\xcc\x81y", NULL}, /* no Unicode normalization */
    };
    char buf[128];
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_json_ptr p;
        cue_err err = {0};
        int rc = cue_json_ptr_compile(&p, cases[i].ptr, &err);
        if (rc != 0) {
            /* "/a/d~e" is refused at compile time: fine, it names nothing. */
            cr_expect(cases[i].text == NULL, "'%s': %s", cases[i].ptr, err.msg);
            continue;
        }
        int32_t t = cue_json_find(&d, &p);
        if (i == 0) {
            cr_expect_eq(t, 0, "the empty pointer is the whole document, got %d", t);
        } else if (cases[i].text == NULL) {
            cr_expect_eq(t, -1, "'%s': found %s", cases[i].ptr, tok_text(&d, t, buf, sizeof buf));
        } else {
            cr_expect(tok_is(&d, t, cases[i].text), "'%s': %s, expected '%s'", cases[i].ptr,
                      tok_text(&d, t, buf, sizeof buf), cases[i].text);
        }
    }
}

Test(json, member_lookup)
{
    cue_json_doc d;
    parse_ok(&d, find_doc);
    char buf[64];
    int32_t a = cue_json_member(&d, 0, "a", 1);
    cr_assert_eq(a, 2);
    int32_t h = cue_json_member(&d, (uint32_t)a, "h", 1);
    cr_expect(tok_is(&d, h, "true"), "member h: %s", tok_text(&d, h, buf, sizeof buf));
    /* Length, not a terminator, bounds the key. */
    cr_expect_eq(cue_json_member(&d, 0, "arrow", 3), cue_json_member(&d, 0, "arr", 3));
    cr_expect_eq(cue_json_member(&d, 0, "ar", 2), -1);
    cr_expect_eq(cue_json_member(&d, 1, "a", 1), -1, "a key token is not an object");
    cr_expect_eq(cue_json_member(&d, d.n, "a", 1), -1, "out of range");
    int32_t b = cue_json_member(&d, (uint32_t)a, "b/c", 3);
    cr_expect_eq(cue_json_member(&d, (uint32_t)b, "x", 1), -1, "a number has no members");
}

Test(json, find_on_a_failed_or_scalar_document)
{
    cue_json_doc d;
    cue_json_ptr root, member;
    cue_json_ptr_compile(&root, "", NULL);
    cue_json_ptr_compile(&member, "/a", NULL);
    cr_assert_eq(parse(&d, "{\"a\":", NULL), CUE_EPARSE);
    cr_expect_eq(cue_json_find(&d, &root), -1, "nothing to find in a failed parse");
    parse_ok(&d, "42");
    cr_expect_eq(cue_json_find(&d, &root), 0);
    cr_expect_eq(cue_json_find(&d, &member), -1);
}

/* ---- strings ----------------------------------------------------------- */

static const struct {
    const char *json; /* a JSON string literal */
    int rc;
    const char *out;
    size_t out_len;
} strings[] = {
    {"\"plain\"", 0, "plain", 5},
    {"\"\"", 0, "", 0},
    {"\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", 0, "a\"b\\c/d\b\f\n\r\t", 12},
    {"\"\\u0041\\u00e9\\u20ac\"", 0, "A\xc3\xa9\xe2\x82\xac", 6},
    {"\"\\u07ff\\u0800\\uffff\"", 0, "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 8},
    {"\"\\ud83d\\ude00\"", 0, "\xf0\x9f\x98\x80", 4},
    {"\"\\uD83D\\uDE00\"", 0, "\xf0\x9f\x98\x80", 4},
    {"\"\\ud800\\udc00\"", 0, "\xf0\x90\x80\x80", 4},                     /* U+10000 */
    {"\"\\udbff\\udfff\"", 0, "\xf4\x8f\xbf\xbf", 4},                     /* U+10FFFF */
    {"\"x\\u0000y\"", 0, "x\0y", 3},                                      /* NUL kept, counted */
    {"\"caf\xc3\xa9 \\u2013 ok\"", 0, "caf\xc3\xa9 \xe2\x80\x93 ok", 12}, /* raw and escaped */
};

Test(json, unescape_table)
{
    for (size_t i = 0; i < COUNT(strings); i++) {
        cue_json_doc d;
        parse_ok(&d, strings[i].json);
        char out[64];
        size_t n = 999;
        memset(out, 'Z', sizeof out);
        int rc = cue_json_string(&d, 0, out, sizeof out, &n);
        cr_expect_eq(rc, strings[i].rc, "%s: rc %d, expected %d", strings[i].json, rc,
                     strings[i].rc);
        if (rc != 0 || strings[i].rc != 0) continue;
        cr_expect(n == strings[i].out_len && memcmp(out, strings[i].out, n) == 0,
                  "%s: got %zu bytes '%.*s', expected %zu '%s'", strings[i].json, n, (int)n, out,
                  strings[i].out_len, strings[i].out);
        cr_expect_eq(out[n], '\0', "%s: not terminated", strings[i].json);
        cr_expect(cue_json_string_eq(&d, 0, strings[i].out, strings[i].out_len),
                  "%s: string_eq disagrees", strings[i].json);
        /* Exactly enough room (the NUL included) fits; one byte less does not. */
        cr_expect_eq(cue_json_string(&d, 0, out, n + 1, &n), 0, "%s: exact fit", strings[i].json);
        cr_expect_eq(cue_json_string(&d, 0, out, n, &n), CUE_ELIMIT, "%s: one short",
                     strings[i].json);
    }
}

Test(json, string_equality_and_wrong_types)
{
    cue_json_doc d;
    parse_ok(&d, "[\"caf\\u00e9\", \"plain\", 1, \"\\ud83d\\ude00\", \"a\\nb\"]");
    char out[16];
    size_t n;
    static const struct {
        uint32_t tok;
        const char *s;
        size_t n;
        bool eq;
    } cases[] = {
        {1, "caf\xc3\xa9", 5, true},
        {1, "caf\xc3", 4, false},
        {1, "caf\xc3\xa9!", 6, false},
        {1, "cafe", 4, false},
        {1, "caf\\u00e9", 10, false},
        {2, "plain", 5, true},
        {2, "plai", 4, false},
        {2, "plainer", 7, false},
        {2, "PLAIN", 5, false},
        {3, "1", 1, false},
        {4, "\xf0\x9f\x98\x80", 4, true},
        {5, "a\nb", 3, true},
        {5, "a\\nb", 4, false},
        {0, "", 0, false},
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        cr_expect_eq(cue_json_string_eq(&d, cases[i].tok, cases[i].s, cases[i].n), cases[i].eq,
                     "token %u vs '%.*s': expected %s", cases[i].tok, (int)cases[i].n, cases[i].s,
                     cases[i].eq ? "equal" : "different");
    /* A comparand that is a proper prefix is never read past its length. */
    static const char prefix[4] = {'c', 'a', 'f', '\xc3'};
    cr_expect(!cue_json_string_eq(&d, 1, prefix, sizeof prefix));
    cr_expect_eq(cue_json_string(&d, 0, out, sizeof out, &n), CUE_EINVAL, "an array");
    cr_expect_eq(cue_json_string(&d, 3, out, sizeof out, &n), CUE_EINVAL, "a number");
    cr_expect_eq(cue_json_string(&d, d.n, out, sizeof out, &n), CUE_EINVAL, "out of range");
    cr_expect_eq(cue_json_string(&d, 2, out, 0, &n), CUE_ELIMIT, "no room even for the NUL");
}

/* ---- numbers ----------------------------------------------------------- */

static const struct {
    const char *text;
    int rc;
    int64_t v;
} ints[] = {
    {"0", 0, 0},
    {"-0", 0, 0},
    {"1", 0, 1},
    {"-1", 0, -1},
    {"9223372036854775807", 0, INT64_MAX},
    {"-9223372036854775808", 0, INT64_MIN},
    {"9223372036854775808", CUE_ELIMIT, 0},
    {"-9223372036854775809", CUE_ELIMIT, 0},
    {"18446744073709551616", CUE_ELIMIT, 0},
    {"123456789012345678901234567890", CUE_ELIMIT, 0},
    {"9007199254740993", 0, 9007199254740993}, /* not representable as a double */
    {"9007199254740993.0", 0, 9007199254740993},
    {"1e3", 0, 1000},
    {"1E3", 0, 1000},
    {"1e+3", 0, 1000},
    {"1.0", 0, 1},
    {"-2.000", 0, -2},
    {"1.50e1", 0, 15},
    {"250e-1", 0, 25},
    {"1000e-3", 0, 1},
    {"1e18", 0, 1000000000000000000},
    {"1e19", CUE_ELIMIT, 0},
    {"9.223372036854775807e18", 0, INT64_MAX},
    {"9.223372036854775808e18", CUE_ELIMIT, 0},
    {"-9.223372036854775808e18", 0, INT64_MIN},
    {"92233720368547758070e-1", 0, INT64_MAX},
    {"0.0e99999999999", 0, 0},
    {"0e-5", 0, 0},
    {"1.5", CUE_ELIMIT, 0},
    {"25e-1", CUE_ELIMIT, 0},
    {"0.1", CUE_ELIMIT, 0},
    {"-0.5", CUE_ELIMIT, 0},
    {"1e-99999999999", CUE_ELIMIT, 0},
    {"1e99999999999", CUE_ELIMIT, 0},
    {"10000000000000000000000e-3", CUE_ELIMIT, 0}, /* 1e19 */
    {"1000000000000000000000e-3", 0, 1000000000000000000},
};

Test(json, int64_table)
{
    for (size_t i = 0; i < COUNT(ints); i++) {
        cue_json_doc d;
        parse_ok(&d, ints[i].text);
        int64_t v = -42;
        int rc = cue_json_int64(&d, 0, &v);
        cr_expect_eq(rc, ints[i].rc, "%s: rc %d, expected %d", ints[i].text, rc, ints[i].rc);
        if (rc == 0 && ints[i].rc == 0)
            cr_expect_eq(v, ints[i].v, "%s: %lld, expected %lld", ints[i].text, (long long)v,
                         (long long)ints[i].v);
        if (rc != 0) cr_expect_eq(v, -42, "%s: the output is untouched on failure", ints[i].text);
    }
    cue_json_doc d;
    parse_ok(&d, "[\"1\", true, null]");
    int64_t v;
    for (uint32_t t = 0; t < d.n; t++)
        cr_expect_eq(cue_json_int64(&d, t, &v), CUE_EINVAL, "token %u is not a number", t);
}

Test(json, double_table)
{
    static const struct {
        const char *text;
        int rc;
        double v;
    } cases[] = {
        {"1.5", 0, 1.5},
        {"-0.25", 0, -0.25},
        {"1e-3", 0, 0.001},
        {"0.1", 0, 0.1},
        {"12345678901234567890", 0, 12345678901234567890.0},
        {"2.5E+2", 0, 250.0},
        {"1e-400", 0, 0.0}, /* underflow rounds to zero */
        {"1e400", CUE_ELIMIT, 0},
        {"-1e400", CUE_ELIMIT, 0},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_json_doc d;
        parse_ok(&d, cases[i].text);
        double v = -42;
        int rc = cue_json_double(&d, 0, &v);
        cr_expect_eq(rc, cases[i].rc, "%s: rc %d", cases[i].text, rc);
        if (rc == 0)
            cr_expect(v == cases[i].v, "%s: %.17g, expected %.17g", cases[i].text, v, cases[i].v);
    }
    /* A number too long for the local copy is refused, not cut short. */
    char longer[200] = "0.";
    memset(longer + 2, '1', sizeof longer - 3);
    longer[sizeof longer - 1] = '\0';
    cue_json_doc d;
    parse_ok(&d, longer);
    double v;
    cr_expect_eq(cue_json_double(&d, 0, &v), CUE_ELIMIT);
    parse_ok(&d, "\"1.5\"");
    cr_expect_eq(cue_json_double(&d, 0, &v), CUE_EINVAL);
}

Test(json, a_flat_event)
{
    static const char ev[] =
        "{\"event_id\":\"00000000002a-12345\",\"user_id\":\"u0001234\",\"type\":\"project_"
        "created\","
        "\"ts\":\"2026-03-02T08:00:00.123Z\",\"props\":{\"project_id\":\"p0042\",\"seats\":12},"
        "\"user\":{\"role\":\"admin\",\"timezone\":\"Europe/Berlin\"}}";
    cue_json_doc d;
    parse_ok(&d, ev);
    static const struct {
        const char *ptr, *text;
    } fields[] = {
        {"/user_id", "u0001234"},
        {"/type", "project_created"},
        {"/ts", "2026-03-02T08:00:00.123Z"},
        {"/props/project_id", "p0042"},
        {"/props/seats", "12"},
        {"/user/timezone", "Europe/Berlin"},
    };
    char buf[64];
    for (size_t i = 0; i < COUNT(fields); i++) {
        cue_json_ptr p;
        cr_assert_eq(cue_json_ptr_compile(&p, fields[i].ptr, NULL), 0);
        int32_t t = cue_json_find(&d, &p);
        cr_expect(tok_is(&d, t, fields[i].text), "%s: %s, expected '%s'", fields[i].ptr,
                  tok_text(&d, t, buf, sizeof buf), fields[i].text);
    }
    cr_expect_eq(d.toks[0].size, 6);
    cr_expect_eq(d.toks[0].next, d.n);
}

/* Objects of many keys go through the key table: every duplicate is still
 * found, however far apart and however spelt, and distinct keys pass. */
Test(json, duplicate_keys_in_large_objects)
{
    static cue_json_tok big_toks[CUE_EVENT_TOKENS_MAX];
    size_t cap = 64 * 1024;
    char *doc = malloc(cap);
    cr_assert_not_null(doc);
    /* 2000 distinct keys of the same length and end bytes: k0000x .. k1999x */
    size_t n = (size_t)snprintf(doc, cap, "{");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(doc + n, cap - n, "%s\"k%04dx\":%d", i ? "," : "", i, i);
    size_t open_end = n;
    n += (size_t)snprintf(doc + n, cap - n, "}");
    cue_json_doc d;
    cue_err err = {0};
    cr_expect_eq(cue_json_parse(&d, doc, n, big_toks, CUE_EVENT_TOKENS_MAX, &err), 0, "%s",
                 err.msg);
    /* ... then one more that repeats the 7th, spelt with an escape. */
    n = open_end + (size_t)snprintf(doc + open_end, cap - open_end, ",\"\\u006b0006x\":1}");
    cr_expect_eq(cue_json_parse(&d, doc, n, big_toks, CUE_EVENT_TOKENS_MAX, &err), CUE_EDUPLICATE,
                 "%s", err.msg);
    /* ... or the 1500th, plainly. */
    n = open_end + (size_t)snprintf(doc + open_end, cap - open_end, ",\"k1499x\":1}");
    cr_expect_eq(cue_json_parse(&d, doc, n, big_toks, CUE_EVENT_TOKENS_MAX, &err), CUE_EDUPLICATE,
                 "%s", err.msg);
    /* Keys are per object: the same names in two objects are no duplicates. */
    n = (size_t)snprintf(doc, cap, "{\"a\":{");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(doc + n, cap - n, "%s\"k%d\":1", i ? "," : "", i);
    n += (size_t)snprintf(doc + n, cap - n, "},\"b\":{");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(doc + n, cap - n, "%s\"k%d\":1", i ? "," : "", i);
    n += (size_t)snprintf(doc + n, cap - n, "}}");
    cr_expect_eq(cue_json_parse(&d, doc, n, big_toks, CUE_EVENT_TOKENS_MAX, &err), 0, "%s",
                 err.msg);
    free(doc);
}

/* Two escaped spellings of one long key are one key, at any length. */
Test(json, long_escaped_keys_compare_whole)
{
    char doc[2048];
    char key[700] = "";
    for (int i = 0; i < 300; i++)
        strcat(key, "a");
    snprintf(doc, sizeof doc, "{\"\\u0061%s\":1,\"a\\u0061%s\":2}", key, key + 1);
    cue_json_doc d;
    cue_err err = {0};
    cr_expect_eq(cue_json_parse(&d, doc, strlen(doc), toks, COUNT(toks), &err), CUE_EDUPLICATE,
                 "%s", err.msg);
    snprintf(doc, sizeof doc, "{\"\\u0061%s\":1,\"a\\u0062%s\":2}", key, key + 1);
    cr_expect_eq(cue_json_parse(&d, doc, strlen(doc), toks, COUNT(toks), &err), 0, "%s", err.msg);
}

/* ---- scanning for known fields ----------------------------------------- */

static const char *const scan_ptrs[] = {
    "",
    "/user_id",
    "/type",
    "/props",
    "/props/items/0",
    "/props/items/1/x",
    "/arr/1",
    "/0",
    "/k\xc3\xa9y",
    "/props/n",
    "/t",
    "/f",
    "/e",
    "/a~1b",
    "/m~0n",
    "/props/items/9",
    "/arr/x",
    "/user_id/x",
    "/longer_than_eight_bytes",
    "/longer_than_eight_bytez",
};

static const struct {
    const char *doc;
    bool scans; /* false: left to the tokenizer */
} scan_docs[] = {
    {"{\"user_id\":\"u1\",\"type\":\"a\",\"ts\":1}", true},
    {" {\"props\":{\"items\":[1,{\"x\":\"y\"},3],\"n\":null},\"t\":true,\"f\":false} ", true},
    {"{\"arr\":[[],{}, \"s\\n\"],\"e\":-1.5e+3,\"a/b\":\"slash\",\"m~n\":\"tilde\"}", true},
    {"{\"k\xc3\xa9y\":\"v\xe2\x82\xac\",\"0\":\"zero\"}", true},
    {"{\"longer_than_eight_bytes\":1,\"longer_than_eight_bytez\":2}", true},
    {"[{\"0\":1}]", true},
    {"\"just a string\"", true},
    {"\t{ \"user_id\" : \"u\\u0000\" ,\n\"type\":{ } }\r\n", true},
    {"{\"user_id\":\"0123456789abcdef0123456789\\\"quoted\\\"\xf0\x9f\x98\x80\"}", true},
    /* the tokenizer's to judge */
    {"{\"\\u0075ser_id\":\"u\"}", false},
    {"{\"a\":1,\"a\":2}", false},
    {"{\"props\":{\"longer_than_eight_bytes\":1,\"longer_than_eight_bytes\":2}}", false},
    {"{\"user_id\":\"v\xff\"}", false},
    {"{\"user_id\":\"\xc0\xaf\"}", false},
    {"{\"user_id\":\"\xed\xa0\x80\"}", false},
    {"{\"user_id\":\"u\\ud800\"}", false},
    {"{\"user_id\":\"u\\x\"}", false},
    {"{\"x\":01}", false},
    {"{\"x\":1.}", false},
    {"{\"x\":1,}", false},
    {"[1,]", false},
    {"{\"x\":tru}", false},
    {"{} x", false},
    {"", false},
    {"{\"x\":\"\x01\"}", false},
    {"{\"x\":\"open", false},
    {"{\"x\" 1}", false},
    {"{\"x\":[1}", false},
};

static void scan_fields(cue_json_fields *f, cue_json_ptr *p, size_t n)
{
    cue_json_fields_init(f);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(cue_json_ptr_compile(&p[i], scan_ptrs[i], NULL), 0, "%s", scan_ptrs[i]);
        cr_assert_eq(cue_json_fields_add(f, &p[i]), (int)i, "%s", scan_ptrs[i]);
    }
}

/* What the scan accepts the tokenizer accepts, and each field is the token
 * cue_json_find names there. */
Test(json, scan_agrees_with_the_tokenizer)
{
    static cue_json_fields f;
    cue_json_ptr p[COUNT(scan_ptrs)];
    scan_fields(&f, p, COUNT(scan_ptrs));
    cue_json_tok out[COUNT(scan_ptrs)];
    for (size_t i = 0; i < COUNT(scan_docs); i++) {
        const char *doc = scan_docs[i].doc;
        bool scans = cue_json_scan(&f, doc, strlen(doc), COUNT(toks), out);
        cr_expect_eq(scans, scan_docs[i].scans, "%s: scan %d", doc, scans);
        cue_json_doc d;
        int rc = cue_json_parse(&d, doc, strlen(doc), toks, COUNT(toks), NULL);
        if (!scans) continue;
        cr_assert_eq(rc, 0, "%s: scanned, but the tokenizer says %d", doc, rc);
        for (size_t k = 0; k < COUNT(scan_ptrs); k++) {
            int32_t t = cue_json_find(&d, &p[k]);
            if (t < 0) {
                cr_expect_eq(out[k].type, CUE_JSON_NONE, "%s at '%s'", doc, scan_ptrs[k]);
                continue;
            }
            cr_expect(out[k].type == d.toks[t].type && out[k].escaped == d.toks[t].escaped &&
                          out[k].start == d.toks[t].start && out[k].len == d.toks[t].len,
                      "%s at '%s': type %d start %u len %u, expected %d %u %u", doc, scan_ptrs[k],
                      out[k].type, out[k].start, out[k].len, d.toks[t].type, d.toks[t].start,
                      d.toks[t].len);
        }
    }
}

/* Limits as the tokenizer's: tokens, depth; and shapes left to it. */
Test(json, scan_limits)
{
    static cue_json_fields f;
    cue_json_fields_init(&f);
    cue_json_tok out[1];
    cr_expect(cue_json_scan(&f, "[1,2,3]", 7, 4, out));
    cr_expect(!cue_json_scan(&f, "[1,2,3]", 7, 3, out), "five tokens over a limit of four");
    cr_expect(!cue_json_scan(&f, "{\"a\":1}", 7, 2, out));
    char deep[2 * CUE_JSON_DEPTH_MAX + 3];
    for (int i = 0; i <= CUE_JSON_DEPTH_MAX; i++) {
        deep[i] = '[';
        deep[2 * CUE_JSON_DEPTH_MAX + 1 - i] = ']';
    }
    cr_expect(!cue_json_scan(&f, deep, 2 * CUE_JSON_DEPTH_MAX + 2, 4096, out), "65 levels");
    cr_expect(cue_json_scan(&f, deep + 1, 2 * CUE_JSON_DEPTH_MAX, 4096, out), "64 levels");
    /* An object of many keys is the tokenizer's (its hash table), duplicate
     * or not; up to 32, the scan compares them itself. */
    char doc[1024];
    size_t n = (size_t)snprintf(doc, sizeof doc, "{");
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"key%d\":%d", i ? "," : "", i, i);
    snprintf(doc + n, sizeof doc - n, "}");
    cr_expect(cue_json_scan(&f, doc, strlen(doc), 4096, out), "32 keys");
    snprintf(doc + n, sizeof doc - n, ",\"key17\":1}");
    cr_expect(!cue_json_scan(&f, doc, strlen(doc), 4096, out), "a repeated key");
    snprintf(doc + n, sizeof doc - n, ",\"key32\":1}");
    cr_expect(!cue_json_scan(&f, doc, strlen(doc), 4096, out), "33 keys");
    cue_json_doc d;
    cr_expect_eq(cue_json_parse(&d, doc, strlen(doc), toks, COUNT(toks), NULL), 0);
}

Test(json, fields_share_slots_and_fill_up)
{
    static cue_json_fields f;
    cue_json_fields_init(&f);
    cue_json_ptr a, b, c;
    cue_json_ptr_compile(&a, "/props/x", NULL);
    cue_json_ptr_compile(&b, "/props/x", NULL);
    cue_json_ptr_compile(&c, "/props", NULL);
    cr_expect_eq(cue_json_fields_add(&f, &a), 0);
    cr_expect_eq(cue_json_fields_add(&f, &b), 0, "an equal pointer is the same field");
    cr_expect_eq(cue_json_fields_add(&f, &c), 1, "a prefix is a field of its own");
    char text[32];
    int rc = 0;
    for (int i = 2; rc >= 0; i++) {
        snprintf(text, sizeof text, "/f%d", i);
        cue_json_ptr_compile(&a, text, NULL);
        rc = cue_json_fields_add(&f, &a);
        if (rc >= 0) cr_expect_eq(rc, i);
    }
    cr_expect_eq(rc, CUE_EFULL);
    cr_expect_eq(f.n_slots, CUE_EVENT_FIELDS_MAX);
}
