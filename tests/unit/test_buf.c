/* The output buffer: growth by doubling, the NUL after every append, numbers,
 * and JSON string escaping, checked against hand-written escapes and against
 * jansson reading the output back. */
#include "cuepoint/buf.h"

#include "cuepoint/err.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* Checks the buffer holds exactly `want` (n bytes) followed by a NUL. */
static void expect_bytes(const cue_buf *b, const char *want, size_t n, const char *what)
{
    cr_expect_eq(b->len, n, "%s: length %zu, expected %zu ('%.*s')", what, b->len, n, (int)b->len,
                 b->data);
    cr_expect(b->len == n && memcmp(b->data, want, n) == 0, "%s: '%.*s', expected '%.*s'", what,
              (int)b->len, b->data, (int)n, want);
    cr_expect(b->len < b->cap && b->data[b->len] == '\0', "%s: not NUL-terminated", what);
}

Test(buf, init_reset_and_deinit)
{
    cue_buf b;
    cr_assert_eq(cue_buf_init(&b, 0), 0);
    cr_assert_not_null(b.data, "even an empty buffer is a valid C string");
    expect_bytes(&b, "", 0, "fresh");
    cue_buf_deinit(&b);
    cr_expect_null(b.data);
    cr_expect_eq(b.cap, 0);

    cr_assert_eq(cue_buf_init(&b, 1000), 0);
    cr_expect_geq(b.cap, 1001, "room for 1000 bytes and the NUL, got %zu", b.cap);
    size_t cap = b.cap;
    cue_buf_append_str(&b, "abc");
    cue_buf_reset(&b);
    expect_bytes(&b, "", 0, "reset");
    cr_expect_eq(b.cap, cap, "reset keeps the capacity");
    cue_buf_deinit(&b);
}

Test(buf, growth_doubles_and_keeps_contents)
{
    cue_buf b;
    cr_assert_eq(cue_buf_init(&b, 0), 0);
    size_t first = b.cap, grows = 0, last = b.cap;
    char want[3000];
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(cue_buf_append(&b, "abc", 3), 0);
        memcpy(want + 3 * i, "abc", 3);
        if (b.cap != last) {
            cr_expect_eq(b.cap, last * 2, "grew from %zu to %zu, not doubled", last, b.cap);
            last = b.cap;
            grows++;
        }
    }
    expect_bytes(&b, want, sizeof want, "3000 bytes");
    /* 3001 bytes from a first capacity of `first` by doubling. */
    size_t expect_grows = 0;
    for (size_t c = first; c < 3001; c *= 2)
        expect_grows++;
    cr_expect_eq(grows, expect_grows, "%zu regrows, expected %zu", grows, expect_grows);

    /* Reserving room that is there already changes nothing. */
    char *data = b.data;
    cr_assert_eq(cue_buf_reserve(&b, b.cap - b.len - 1), 0);
    cr_expect_eq(b.data, data);
    cr_assert_eq(cue_buf_reserve(&b, b.cap - b.len), 0);
    cr_expect_gt(b.cap, last, "one byte more than there is room for grows");
    expect_bytes(&b, want, sizeof want, "after reserve");
    cr_expect_eq(cue_buf_reserve(&b, SIZE_MAX - 1), CUE_ENOMEM, "a size that overflows");
    expect_bytes(&b, want, sizeof want, "after a failed reserve");
    cue_buf_deinit(&b);
}

Test(buf, appends_of_each_kind)
{
    cue_buf b;
    cue_buf_init(&b, 0);
    cr_assert_eq(cue_buf_append(&b, "a\0b", 3), 0);
    expect_bytes(&b, "a\0b", 3, "bytes with a NUL inside");
    cr_assert_eq(cue_buf_append(&b, NULL, 0), 0);
    expect_bytes(&b, "a\0b", 3, "nothing appended");
    cue_buf_reset(&b);
    cr_assert_eq(cue_buf_append_char(&b, 'x'), 0);
    cr_assert_eq(cue_buf_append_str(&b, "yz"), 0);
    cr_assert_eq(cue_buf_append_str(&b, ""), 0);
    expect_bytes(&b, "xyz", 3, "char and strings");
    cue_buf_deinit(&b);
}

Test(buf, integers_table)
{
    static const struct {
        int64_t v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {-7, "-7"},
        {10, "10"},
        {1772438400123, "1772438400123"},
        {-1000000, "-1000000"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
        {INT64_MIN + 1, "-9223372036854775807"},
    };
    cue_buf b;
    cue_buf_init(&b, 0);
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_buf_reset(&b);
        cr_assert_eq(cue_buf_append_i64(&b, cases[i].v), 0);
        expect_bytes(&b, cases[i].text, strlen(cases[i].text), cases[i].text);
    }
    cue_buf_deinit(&b);
}

Test(buf, printf_appends_and_grows)
{
    cue_buf b;
    cue_buf_init(&b, 0);
    cr_assert_eq(cue_buf_printf(&b, "%s-%d", "x", 42), 0);
    cr_assert_eq(cue_buf_printf(&b, "%s", ""), 0);
    expect_bytes(&b, "x-42", 4, "short");
    /* Longer than the first capacity: the text must arrive whole. */
    char big[500], want[510];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(cue_buf_printf(&b, "[%s]", big), 0);
    snprintf(want, sizeof want, "x-42[%s]", big);
    expect_bytes(&b, want, strlen(want), "long");
    cue_buf_deinit(&b);
}

/* ---- JSON strings ------------------------------------------------------ */

static const struct {
    const char *in;
    size_t len;
    const char *out;
} json_strs[] = {
    {"", 0, "\"\""},
    {"plain", 5, "\"plain\""},
    {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\""}, /* '/' need not be escaped */
    {"\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\""},
    {"\x01\x1f\x0b", 3, "\"\\u0001\\u001f\\u000b\""},
    {"nul\0x", 5, "\"nul\\u0000x\""},
    {"\x7f", 1, "\"\x7f\""},                         /* DEL is not a control char in JSON */
    {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},           /* 2 bytes */
    {"\xe2\x82\xac", 3, "\"\xe2\x82\xac\""},         /* 3 bytes */
    {"\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\""}, /* 4 bytes */
    {"\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7, "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\""}, /* U+FFFF, U+10FFFF */
    {"bad\xff\xc3", 5, "\"bad\\u00ff\\u00c3\""},                 /* 0xff; a lead byte at the end */
    {"\x80x", 2, "\"\\u0080x\""},                                /* a lone continuation byte */
    {"\xc3(", 2, "\"\\u00c3(\""},                                /* a lead without continuation */
    {"\xc0\x80", 2, "\"\\u00c0\\u0080\""},                       /* overlong NUL */
    {"\xe0\x80\xaf", 3, "\"\\u00e0\\u0080\\u00af\""},            /* overlong '/' */
    {"\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\""},            /* an encoded surrogate */
    {"\xf4\x90\x80\x80", 4, "\"\\u00f4\\u0090\\u0080\\u0080\""}, /* past U+10FFFF */
    {"\xf8\x88\x80\x80\x80", 5, "\"\\u00f8\\u0088\\u0080\\u0080\\u0080\""}, /* 5-byte form */
    {"\xe2\x82", 2, "\"\\u00e2\\u0082\""},     /* truncated at the end */
    {"\xe2\x82\xac", 2, "\"\\u00e2\\u0082\""}, /* the length cuts a valid one */
    {"\xf0\x9f\x98\x80\xff\xc3\xa9\"", 8, "\"\xf0\x9f\x98\x80\\u00ff\xc3\xa9\\\"\""}, /* mixed */
};

Test(buf, json_string_table)
{
    cue_buf b;
    cue_buf_init(&b, 0);
    for (size_t i = 0; i < COUNT(json_strs); i++) {
        cue_buf_reset(&b);
        cr_assert_eq(cue_buf_append_json_str(&b, json_strs[i].in, json_strs[i].len), 0);
        char what[32];
        snprintf(what, sizeof what, "case %zu", i);
        expect_bytes(&b, json_strs[i].out, strlen(json_strs[i].out), what);
    }
    cue_buf_deinit(&b);
}

/* Decodes `text` as one JSON string with jansson, into out (cap bytes). */
static size_t jansson_string(const char *text, size_t len, char *out, size_t cap)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    cr_assert_not_null(j, "jansson rejects %.*s: %s", (int)len, text, e.text);
    cr_assert(json_is_string(j));
    size_t n = json_string_length(j);
    cr_assert_leq(n, cap);
    memcpy(out, json_string_value(j), n);
    json_decref(j);
    return n;
}

Test(buf, every_ascii_byte_round_trips_through_a_json_reader)
{
    /* Each byte below 0x80, alone and between letters, must come back as itself. */
    cue_buf b;
    cue_buf_init(&b, 0);
    for (int c = 0; c < 0x80; c++) {
        char in[3] = {'a', (char)c, 'z'}, out[8];
        cue_buf_reset(&b);
        cr_assert_eq(cue_buf_append_json_str(&b, in, sizeof in), 0);
        size_t n = jansson_string(b.data, b.len, out, sizeof out);
        cr_expect(n == 3 && memcmp(out, in, 3) == 0, "byte 0x%02x: written as %s", c, b.data);
    }
    cue_buf_deinit(&b);
}

Test(buf, each_byte_at_each_place_of_a_string_of_each_length_is_written_alone)
{
    /* Plain runs are checked eight bytes at a time, a string's last bytes
     * as a word overlapping the ones before and one shorter than eight as
     * two overlapping halves: any byte that is not plain ASCII, wherever it
     * falls in a word and whatever the length, must still be seen. */
    cue_buf b;
    cue_buf_init(&b, 0);
    for (size_t len = 1; len <= 19; len++) {
        for (int c = 0; c < 0x100; c++) {
            for (size_t at = 0; at < len; at++) {
                char in[19], out[32];
                memcpy(in, "abcdefghijklmnopqrs", len);
                in[at] = (char)c;
                cue_buf_reset(&b);
                cr_assert_eq(cue_buf_append_json_str(&b, in, len), 0);
                if (c < 0x80) {
                    size_t n = jansson_string(b.data, b.len, out, sizeof out);
                    cr_expect(n == len && memcmp(out, in, n) == 0,
                              "length %zu, byte 0x%02x at %zu: written as %s", len, c, at, b.data);
                } else { /* alone, never a whole UTF-8 sequence */
                    char esc[8];
                    snprintf(esc, sizeof esc, "\\u00%02x", c);
                    cr_expect_eq(b.len, 2 + len - 1 + 6, "length %zu, byte 0x%02x at %zu: %s", len,
                                 c, at, b.data);
                    cr_expect(memcmp(b.data + 1 + at, esc, 6) == 0,
                              "length %zu, byte 0x%02x at %zu: %s", len, c, at, b.data);
                }
            }
        }
    }
    cue_buf_deinit(&b);
}

Test(buf, a_large_string_of_escapes_grows_as_needed)
{
    /* Every byte needs six: the buffer must grow in the middle of the string. */
    enum { N = 10000 };
    static char in[N], out[N];
    for (size_t i = 0; i < N; i++)
        in[i] = (char)(i % 3 == 0 ? 0x01 : i % 3 == 1 ? '"' : 'k');
    cue_buf b;
    cue_buf_init(&b, 0);
    cue_buf_append_str(&b, "prefix:");
    cr_assert_eq(cue_buf_append_json_str(&b, in, N), 0);
    cr_expect_eq(b.len, 7 + 2 + (N / 3 + 1) * 6 + (N / 3) * 2 + N / 3, "length %zu", b.len);
    cr_expect(memcmp(b.data, "prefix:\"\\u0001\\\"k", 17) == 0, "starts %.20s", b.data);
    cr_expect_eq(b.data[b.len], '\0');
    size_t n = jansson_string(b.data + 7, b.len - 7, out, sizeof out);
    cr_expect(n == N && memcmp(out, in, N) == 0, "the string does not read back");
    cue_buf_deinit(&b);
}

Test(buf, base64_as_a_json_string)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"", "\"\""},
                 {"f", "\"Zg==\""},
                 {"fo", "\"Zm8=\""},
                 {"foo", "\"Zm9v\""},
                 {"foob", "\"Zm9vYg==\""},
                 {"fooba", "\"Zm9vYmE=\""},
                 {"foobar", "\"Zm9vYmFy\""},
                 {"v\xff"
                  "1",
                  "\"dv8x\""}};
    cue_buf b;
    cue_buf_init(&b, 1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cue_buf_reset(&b);
        cr_assert(cue_buf_append_base64_str(&b, cases[i].in, strlen(cases[i].in)) == 0);
        cr_expect_str_eq(b.data, cases[i].out, "'%s'", cases[i].in);
        cr_expect_eq(b.len, strlen(cases[i].out));
    }
    cue_buf_deinit(&b);
}
