/* The line source: lines across read boundaries, CRLF, blank lines, a last
 * line without a newline, and oversize lines cut but never lost. */
#include "cuepoint/filemode.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

typedef struct got {
    char text[1 << 16];
} got;

static void read_all(const char *input, size_t line_max, got *g)
{
    FILE *f = fmemopen((void *)input, strlen(input), "r");
    cr_assert(f != NULL);
    cue_line_source *s;
    cue_err err;
    cr_assert(cue_line_source_new(&s, f, line_max, &err) == 0);
    const char *rec;
    size_t len;
    int64_t line;
    bool oversize;
    g->text[0] = '\0';
    int rc;
    while ((rc = cue_line_source_next(s, &rec, &len, &line, &oversize, &err)) == 1) {
        char one[256];
        snprintf(one, sizeof one, "%lld%s:%.*s|", (long long)line, oversize ? "!" : "", (int)len,
                 rec);
        strncat(g->text, one, sizeof g->text - strlen(g->text) - 1);
    }
    cr_assert_eq(rc, 0);
    cue_line_source_free(s);
    fclose(f);
}

Test(filemode, lines_crlf_blanks_and_the_last_line)
{
    got g;
    read_all("a\r\n\n  \nbb\nccc", 64, &g);
    cr_assert_str_eq(g.text, "1:a|4:bb|5:ccc|");
}

Test(filemode, oversize_lines_are_cut_and_flagged_and_the_next_line_is_intact)
{
    got g;
    read_all("short\n0123456789abcdefXYZ\nnext\n0123456789abcdef\n0123456789abcdefg", 16, &g);
    cr_assert_str_eq(g.text,
                     "1:short|2!:0123456789abcdef|3:next|4:0123456789abcdef|5!:0123456789abcdef|");
}

Test(filemode, many_lines_across_read_boundaries)
{
    /* ~1 MiB of numbered lines: every read of the source ends mid-line. */
    static char input[1 << 20];
    size_t n = 0;
    int lines = 0;
    while (n + 32 < sizeof input)
        n += (size_t)snprintf(input + n, 32, "line-%d\n", ++lines);
    FILE *f = fmemopen(input, n, "r");
    cue_line_source *s;
    cue_err err;
    cr_assert(cue_line_source_new(&s, f, 64, &err) == 0);
    const char *rec;
    size_t len;
    int64_t line;
    bool oversize;
    int seen = 0;
    while (cue_line_source_next(s, &rec, &len, &line, &oversize, &err) == 1) {
        char want[32];
        int wn = snprintf(want, sizeof want, "line-%d", ++seen);
        cr_assert(!oversize && (int)len == wn && memcmp(rec, want, len) == 0 && line == seen,
                  "line %d: '%.*s'", seen, (int)len, rec);
    }
    cr_assert_eq(seen, lines);
    cue_line_source_free(s);
    fclose(f);
}
