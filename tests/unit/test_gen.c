/* The generator: the same seed gives the same bytes, events are in time
 * order but for shifts within the allowed lateness, and every journey's
 * events appear. */
#include "cuepoint/gen.h"

#include <criterion/criterion.h>
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
