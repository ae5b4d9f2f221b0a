/* The output buffer: growth, numbers, and JSON string escaping. */
#include "cuepoint/buf.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

Test(buf, grows_and_stays_terminated)
{
    cue_buf b;
    cr_assert(cue_buf_init(&b, 0) == 0);
    for (int i = 0; i < 1000; i++)
        cr_assert(cue_buf_append_str(&b, "abc") == 0);
    cr_assert_eq(b.len, 3000);
    cr_assert_eq(b.data[b.len], '\0');
    cue_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    cue_buf_append_i64(&b, INT64_MIN);
    cue_buf_append_char(&b, ' ');
    cue_buf_append_i64(&b, 0);
    cue_buf_printf(&b, " %s-%d", "x", 42);
    cr_assert_str_eq(b.data, "-9223372036854775808 0 x-42");
    cue_buf_deinit(&b);
}

Test(buf, json_strings_escape_what_they_must_and_keep_every_byte)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "\"plain\""},
        {"q\"b\\s", 5, "\"q\\\"b\\\\s\""},
        {"\n\r\t\b\f\x01", 6, "\"\\n\\r\\t\\b\\f\\u0001\""},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
        {"bad\xff\xc3", 5, "\"bad\\u00ff\\u00c3\""},
        {"\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\""}, /* an encoded surrogate is not UTF-8 */
        {"nul\0x", 5, "\"nul\\u0000x\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cue_buf b;
        cue_buf_init(&b, 0);
        cue_buf_append_json_str(&b, cases[i].in, cases[i].len);
        cr_expect_str_eq(b.data, cases[i].out, "case %zu", i);
        cue_buf_deinit(&b);
    }
}
