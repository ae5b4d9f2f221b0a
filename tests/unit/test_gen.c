/* The generator: the same seed gives the same bytes, events are in time
 * order but for shifts within the allowed lateness, and every journey's
 * events appear; consent events (opt-in) change nothing else. */
#include "cuepoint/gen.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void run(uint64_t seed, cue_buf *all, int64_t *max_back, size_t *types_seen)
{
    cue_gen *g;
    cue_err err;
    cr_assert(
        cue_gen_new(&g,
                    &(cue_gen_opts){
                        .seed = seed, .users = 200, .events = 3000, .start_ms = 1767603600000LL},
                    &err) == 0);
    cue_buf b;
    cue_buf_init(&b, 256);
    int64_t ts, stream = INT64_MIN;
    *max_back = 0;
    const char *types[] = {"signed_up",        "file_uploaded", "member_invited",
                           "project_exported", "deadline_set",  "project_delivered",
                           "comment_added"};
    memset(types_seen, 0, 7 * sizeof *types_seen);
    while (cue_gen_next(g, &b, &ts) == 1) {
        cue_buf_append(all, b.data, b.len);
        cue_buf_append_char(all, '\n');
        if (stream != INT64_MIN && stream - ts > *max_back) *max_back = stream - ts;
        if (ts > stream) stream = ts;
        for (int k = 0; k < 7; k++)
            if (strstr(b.data, types[k])) types_seen[k]++;
    }
    cue_buf_deinit(&b);
    cue_gen_free(g);
}

Test(gen, deterministic_ordered_and_complete)
{
    cue_buf a, b;
    cue_buf_init(&a, 1 << 20);
    cue_buf_init(&b, 1 << 20);
    int64_t back;
    size_t seen[7];
    run(5, &a, &back, seen);
    run(5, &b, &back, seen);
    cr_assert(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "same seed, other bytes");
    cr_assert_leq(back, 20 * 60000 + 60 * 60000, "an event more than the lateness behind");
    cr_assert_gt(back, 0, "no event out of order: the lateness path is not exercised");
    for (int k = 0; k < 7; k++)
        cr_assert_gt(seen[k], 0, "event type %d never generated", k);
    cue_buf_reset(&b);
    run(6, &b, &back, seen);
    cr_assert(a.len != b.len || memcmp(a.data, b.data, a.len) != 0, "the seed is ignored");
    cue_buf_deinit(&a);
    cue_buf_deinit(&b);
}

/* Lines of a stream, from the event type on (the event id counts every event,
 * so it moves when consent events are added). */
static size_t product_lines(cue_gen *g, cue_buf *all, size_t *consent, size_t *grants)
{
    cue_buf b;
    cue_buf_init(&b, 256);
    int64_t ts;
    size_t n = 0;
    while (cue_gen_next(g, &b, &ts) == 1) {
        cue_buf_append_char(&b, '\0');
        if (strstr(b.data, "\"consent_changed\"") || strstr(b.data, "\"channel_muted\"")) {
            (*consent)++;
            *grants += strstr(b.data, "\"granted\":true") != NULL;
            continue;
        }
        cue_buf_append_str(all, strstr(b.data, "\"type\""));
        cue_buf_append_char(all, '\n');
        n++;
    }
    cue_buf_deinit(&b);
    return n;
}

Test(gen, consent_events_leave_the_product_events_alone)
{
    cue_gen_opts o = {.seed = 9, .users = 300, .events = 4000, .start_ms = 1767603600000LL};
    cue_gen *g;
    cue_err err;
    cue_buf plain, with;
    cue_buf_init(&plain, 1 << 20);
    cue_buf_init(&with, 1 << 20);
    size_t c0 = 0, c1 = 0, grants0 = 0, grants1 = 0;
    cr_assert(cue_gen_new(&g, &o, &err) == 0);
    size_t n0 = product_lines(g, &plain, &c0, &grants0);
    cue_gen_free(g);
    o.consent = true;
    cr_assert(cue_gen_new(&g, &o, &err) == 0);
    size_t n1 = product_lines(g, &with, &c1, &grants1);
    cue_gen_free(g);
    cr_assert_eq(c0, 0, "consent events without the option");
    cr_assert_gt(c1, 0, "no consent events with the option");
    cr_assert_gt(grants1, 0, "no consent granted");
    cr_assert_eq(n0, n1 + c1, "the count limit counts every event");
    /* The shorter stream is a prefix of the longer one. */
    cr_assert(with.len <= plain.len && memcmp(with.data, plain.data, with.len) == 0,
              "product events changed when consent events were added");
    cue_buf_deinit(&plain);
    cue_buf_deinit(&with);
}

Test(gen, consent_only_in_the_opt_in_region_is_granted)
{
    cue_gen *g;
    cue_err err;
    cr_assert(cue_gen_new(&g,
                          &(cue_gen_opts){.seed = 3,
                                          .users = 400,
                                          .events = 6000,
                                          .start_ms = 1767603600000LL,
                                          .consent = true},
                          &err) == 0);
    cue_buf b;
    cue_buf_init(&b, 256);
    static char region[400]; /* 'E' for EU users, from their sign-up */
    int64_t ts;
    size_t granted = 0;
    while (cue_gen_next(g, &b, &ts) == 1) {
        cue_buf_append_char(&b, '\0');
        unsigned idx;
        cr_assert(sscanf(strstr(b.data, "\"user_id\":\"u"), "\"user_id\":\"u%u", &idx) == 1);
        if (strstr(b.data, "\"signed_up\""))
            region[idx] = strstr(b.data, "\"region\":\"EU\"") ? 'E' : 'o';
        if (strstr(b.data, "\"granted\":true")) {
            cr_assert_eq(region[idx], 'E', "a grant outside the opt-in region: %s", b.data);
            granted++;
        }
    }
    cr_assert_gt(granted, 0);
    cue_buf_deinit(&b);
    cue_gen_free(g);
}
