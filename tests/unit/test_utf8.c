/* Well-formed UTF-8 as RFC 3629 draws it, at its edges. */
#include "cuepoint/utf8.h"

#include <criterion/criterion.h>
#include <string.h>

static const struct {
    const char *bytes;
    size_t len; /* of the first sequence; 0: not UTF-8 */
} seqs[] = {
    {"A", 1},
    {"\x7f", 1},
    {"\xc2\x80", 2},         /* U+0080, the first two-byte one */
    {"\xdf\xbf", 2},         /* U+07FF */
    {"\xe0\xa0\x80", 3},     /* U+0800 */
    {"\xed\x9f\xbf", 3},     /* U+D7FF, just below the surrogates */
    {"\xee\x80\x80", 3},     /* U+E000, just above */
    {"\xef\xbf\xbf", 3},     /* U+FFFF */
    {"\xf0\x90\x80\x80", 4}, /* U+10000 */
    {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF, the last */
    {"\x80", 0},             /* a continuation byte alone */
    {"\xc0\xaf", 0},         /* overlong '/' */
    {"\xc1\xbf", 0},         /* overlong */
    {"\xe0\x9f\xbf", 0},     /* overlong three-byte */
    {"\xf0\x8f\xbf\xbf", 0}, /* overlong four-byte */
    {"\xed\xa0\x80", 0},     /* U+D800, a surrogate */
    {"\xed\xbf\xbf", 0},     /* U+DFFF */
    {"\xf4\x90\x80\x80", 0}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0},
    {"\xff", 0},
    {"\xe2\x82", 0},     /* cut short */
    {"\xe2\x28\xa1", 0}, /* a bad continuation */
};

Test(utf8, sequences_at_the_edges)
{
    for (size_t i = 0; i < sizeof seqs / sizeof *seqs; i++) {
        size_t n = strlen(seqs[i].bytes);
        cr_expect_eq(cue_utf8_len((const unsigned char *)seqs[i].bytes, n), seqs[i].len, "case %zu",
                     i);
        cr_expect_eq(cue_utf8_valid(seqs[i].bytes, n), seqs[i].len == n, "case %zu", i);
    }
}

Test(utf8, whole_strings)
{
    cr_expect(cue_utf8_valid("", 0));
    const char *mixed = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    cr_expect(cue_utf8_valid(mixed, strlen(mixed)));
    cr_expect(!cue_utf8_valid("Europe/Par\xeds", 12));
    cr_expect(!cue_utf8_valid("ok\xc3", 3), "cut at the end");
    cr_expect(cue_utf8_valid("a\0b", 3), "NUL is ASCII");
}
