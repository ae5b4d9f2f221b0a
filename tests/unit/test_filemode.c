/* The line source: lines across read boundaries, CRLF, blank lines, a last
 * line without a newline, and oversize lines cut but never lost. */
#include "cuepoint/filemode.h"

#include "testutil.h"

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

/* ---- the run: records read ahead stay in order ---------------------------- */

/* A trigger on every `e` event. */
static const char every_machine[] =
    "{\"name\":\"m\",\"version\":1,\"start\":{\"event\":\"e\"},\"initial\":\"s\",\"states\":{"
    "\"s\":{\"on\":[{\"event\":\"e\",\"do\":[{\"emit\":\"hit\"}]}]}}}";

typedef struct mem_source {
    char **lines;
    size_t n, next, line_max;
} mem_source;

static int mem_next(void *ctx, const char **rec, size_t *len, int64_t *line, bool *oversize,
                    cue_err *err)
{
    (void)err;
    mem_source *m = ctx;
    if (m->next == m->n) return 0;
    *rec = m->lines[m->next];
    *len = strlen(*rec);
    *oversize = *len > m->line_max;
    if (*oversize) *len = m->line_max;
    *line = (int64_t)++m->next;
    return 1;
}

typedef struct run_out {
    char *out, *dead; /* owned: the triggers' and dead letters' text */
    size_t out_len, dead_len;
    uint64_t dead_letters;
} run_out;

/* One file-mode run of `lines` over a fresh state directory. */
static void run_lines(char **lines, size_t n, const cue_machines *ms, bool read_ahead, run_out *r)
{
    mem_source src = {.lines = lines, .n = n, .line_max = 16384};
    char dir[64];
    temp_dir(dir);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0;
    snprintf(cfg.state_dir, sizeof cfg.state_dir, "%s", dir);
    FILE *out = open_memstream(&r->out, &r->out_len),
         *dead = open_memstream(&r->dead, &r->dead_len);
    cue_filemode_opts o = {.cfg = &cfg,
                           .ms = ms,
                           .source = mem_next,
                           .read_ahead = read_ahead,
                           .source_ctx = &src,
                           .source_name = "mem",
                           .out = out,
                           .dead = dead,
                           .until_ms = INT64_MIN};
    cue_filemode_result res;
    cue_err err = {0};
    cr_assert_eq(cue_filemode_run(&o, &res, &err), 0, "%s", err.msg);
    fclose(out);
    fclose(dead);
    r->dead_letters = res.task.dead_letters;
    remove_tree(dir);
}

/* Short records, records longer than the read-ahead ring holds (processed
 * without it, after what it holds), a cut one and a broken one: every
 * trigger comes out in input order, each dead letter names its line, and
 * the output is the same byte for byte as without reading ahead. */
Test(filemode, records_read_ahead_are_processed_in_order_with_their_lines)
{
    enum { N = 120 };
    char *lines[N];
    for (size_t i = 0; i < N; i++) {
        size_t pad = i % 7 == 3 ? 6000 : i % 11 == 5 ? 12000 : 8;
        lines[i] = malloc(pad + 128);
        cr_assert(lines[i] != NULL);
        int n =
            snprintf(lines[i], 128, "{\"user_id\":\"u%zu\",\"type\":\"e\",\"ts\":%zu,\"pad\":\"",
                     i % 13, 1000 + i);
        memset(lines[i] + n, 'x', pad);
        strcpy(lines[i] + n + pad, "\"}");
    }
    strcpy(lines[40], "{\"user_id\":\"u1\",\"type\":"); /* line 41: not JSON */
    char *big = malloc(20000);                          /* line 100: longer than the limit */
    cr_assert(big != NULL);
    memset(big, 'z', 19999);
    big[19999] = '\0';
    free(lines[99]);
    lines[99] = big;
    cue_machines *ms = compile_text(every_machine);
    run_out a, b;
    run_lines(lines, N, ms, true, &a);
    run_lines(lines, N, ms, false, &b);

    /* Triggers: one per good record but each user's first (which starts
     * the journey), in the order of their times (one format: text order). */
    size_t seen = 0;
    char last[32] = "";
    for (const char *p = a.out; (p = strstr(p, "\"time\":\"")) != NULL; p++) {
        char t[32];
        snprintf(t, sizeof t, "%.24s", p + 8);
        cr_expect_gt(strcmp(t, last), 0, "trigger %zu at %s after %s", seen, t, last);
        memcpy(last, t, sizeof last);
        seen++;
    }
    cr_expect_eq(seen, N - 2 - 13, "%zu triggers", seen);
    cr_expect(strstr(a.dead, "\"line\":41") != NULL, "dead letters: %s", a.dead);
    cr_expect(strstr(a.dead, "\"line\":100") != NULL, "dead letters: %s", a.dead);
    cr_expect_eq(a.dead_letters, 2);
    cr_expect(a.out_len == b.out_len && memcmp(a.out, b.out, a.out_len) == 0,
              "the triggers differ with and without reading ahead");
    cr_expect(a.dead_len == b.dead_len && memcmp(a.dead, b.dead, a.dead_len) == 0,
              "the dead letters differ with and without reading ahead");

    free(a.out);
    free(a.dead);
    free(b.out);
    free(b.dead);
    for (size_t i = 0; i < N; i++)
        free(lines[i]);
    cue_machines_free(ms);
}
