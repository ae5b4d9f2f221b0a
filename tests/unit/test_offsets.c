/* Planning an offset reset: targets per kind (offsets-for-times answers
 * included), clamping, forward versus backward, the marker's text, parsing,
 * and applying a reset to a store. */
#include "cuepoint/offsets.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

static cue_reset_spec *spec_new(cue_reset_kind kind)
{
    cue_reset_spec *s = calloc(1, sizeof *s);
    cr_assert(s != NULL);
    s->kind = kind;
    return s;
}

/* One partition whose records 100..199 are retained. */
static const cue_offsets_part part0 = {.partition = 0, .log_start = 100, .high = 200};

typedef struct target_case {
    const char *name;
    cue_reset_kind kind;
    int64_t time_answer; /* what offsets-for-times said */
    const char *offsets; /* --to-offset, for CUE_RESET_OFFSET */
    bool selected;
    int64_t offset;
    bool clamped;
} target_case;

static const target_case target_cases[] = {
    {"earliest is the log start", CUE_RESET_EARLIEST, 0, NULL, true, 100, false},
    {"latest is the high watermark", CUE_RESET_LATEST, 0, NULL, true, 200, false},
    {"a time with a record at or after it", CUE_RESET_TIME, 150, NULL, true, 150, false},
    {"a time after every record (-1) is the high watermark", CUE_RESET_TIME, -1, NULL, true, 200,
     false},
    {"a time answered before the log start is clamped", CUE_RESET_TIME, 20, NULL, true, 100, true},
    {"an explicit offset inside the range", CUE_RESET_OFFSET, 0, "0:123", true, 123, false},
    {"an explicit offset below the log start is clamped", CUE_RESET_OFFSET, 0, "0:5", true, 100,
     true},
    {"an explicit offset past the high watermark is clamped", CUE_RESET_OFFSET, 0, "0:999", true,
     200, true},
    {"a partition not named is left alone", CUE_RESET_OFFSET, 0, "1:150", false, 0, false},
};

Test(offsets, targets_per_kind_with_clamping)
{
    for (size_t i = 0; i < sizeof target_cases / sizeof *target_cases; i++) {
        const target_case *c = &target_cases[i];
        cue_reset_spec *s = spec_new(c->kind);
        cue_err err = {0};
        if (c->offsets) cr_assert(cue_offsets_parse_list(c->offsets, s, &err) == 0, "%s", err.msg);
        cue_offsets_part p = part0;
        p.time_answer = c->time_answer;
        cue_offsets_target t = cue_offsets_target_for(s, &p);
        cr_expect_eq(t.selected, c->selected, "%s: selected %d", c->name, t.selected);
        if (c->selected) {
            cr_expect_eq(t.offset, c->offset, "%s: offset %lld, %lld expected", c->name,
                         (long long)t.offset, (long long)c->offset);
            cr_expect_eq(t.clamped, c->clamped, "%s: clamped %d", c->name, t.clamped);
        }
        free(s);
    }
}

Test(offsets, partition_filter)
{
    cue_reset_spec *s = spec_new(CUE_RESET_EARLIEST);
    cue_err err = {0};
    cr_assert(cue_offsets_parse_partitions("2,0", s, &err) == 0, "%s", err.msg);
    cue_offsets_part p = part0;
    cr_expect(cue_offsets_target_for(s, &p).selected, "partition 0 is listed");
    p.partition = 1;
    cr_expect(!cue_offsets_target_for(s, &p).selected, "partition 1 is not");
    free(s);
}

Test(offsets, for_time_maps_no_record_to_the_high_watermark)
{
    cr_expect_eq(cue_offsets_for_time(-1, 77), 77);
    cr_expect_eq(cue_offsets_for_time(0, 77), 0);
    cr_expect_eq(cue_offsets_for_time(40, 77), 40);
}

Test(offsets, backward_drops_forward_and_same_keep)
{
    cr_expect_eq(cue_offsets_decide(500, 100), CUE_OFFSETS_DROP);
    cr_expect_eq(cue_offsets_decide(500, 499), CUE_OFFSETS_DROP);
    cr_expect_eq(cue_offsets_decide(500, 500), CUE_OFFSETS_MOVE);
    cr_expect_eq(cue_offsets_decide(500, 900), CUE_OFFSETS_MOVE);
    cr_expect_eq(cue_offsets_decide(-1, 0), CUE_OFFSETS_MOVE,
                 "no stored position: nothing to drop");
}

Test(offsets, bad_lists_are_refused_with_the_item)
{
    static const struct {
        const char *text;
        int code;
        const char *says;
    } cases[] = {
        {"", CUE_EPARSE, "empty"},         {"0", CUE_EPARSE, "'0'"},
        {"0:x", CUE_EPARSE, "'x'"},        {"-1:5", CUE_EPARSE, "'-1'"},
        {"0:-5", CUE_EPARSE, "'-5'"},      {"0:1,0:2", CUE_EINVAL, "partition 0"},
        {"0:1,", CUE_EPARSE, "PARTITION"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cue_reset_spec *s = spec_new(CUE_RESET_OFFSET);
        cue_err err = {0};
        cr_expect_eq(cue_offsets_parse_list(cases[i].text, s, &err), cases[i].code, "'%s'",
                     cases[i].text);
        cr_expect(strstr(err.msg, cases[i].says) != NULL, "'%s': message '%s'", cases[i].text,
                  err.msg);
        free(s);
    }
}

Test(offsets, marker_round_trip)
{
    char m[128];
    int64_t o = 0;
    cr_assert(cue_offsets_marker_format(m, sizeof m, "1718000000000-42", 1234) == 0);
    cr_expect_str_eq(m, "cuepoint-reset:1718000000000-42:1234");
    cr_expect(cue_offsets_marker_parse(m, strlen(m), &o));
    cr_expect_eq(o, 1234);
    cr_expect(!cue_offsets_marker_parse("", 0, &o));
    cr_expect(!cue_offsets_marker_parse("someone else's", 14, &o));
    cr_expect(!cue_offsets_marker_parse("cuepoint-reset::5", 17, &o), "no id");
    cr_expect(!cue_offsets_marker_parse("cuepoint-reset:id:", 18, &o), "no offset");
    cr_expect_eq(cue_offsets_marker_format(m, 10, "id", 1), CUE_ELIMIT);
}

/* ---- applying to a store ----------------------------------------------- */

static cue_store *store_with_users(char *dir)
{
    temp_dir(dir);
    cue_store *s;
    cue_err err = {0};
    cr_assert(cue_store_open(&s, dir, &(cue_store_opts){0}, &err) == 0, "%s", err.msg);
    cue_store_batch_user_put(s, 1, "ann", 3, "a", 1);
    cue_store_batch_user_put(s, 1, "bob", 3, "b", 1);
    cue_store_batch_timer_put(s, 1, 5000, "ann", 3);
    cue_store_batch_user_put(s, 2, "cy", 2, "c", 1);
    cue_store_meta m = {.input_offset = 500, .changelog_offset = -1, .stream_time_ms = 9000};
    cue_store_batch_meta_put(s, 1, &m);
    cue_store_batch_meta_put(s, 2, &m);
    cr_assert(cue_store_batch_commit(s, true, &err) == 0);
    return s;
}

static int count_timer(int64_t due, const char *uid, size_t len, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

Test(offsets, backward_reset_empties_only_that_partition_once)
{
    char dir[64];
    cue_store *s = store_with_users(dir);
    cue_err err = {0};
    cue_offsets_applied a;
    cr_assert(cue_offsets_apply(s, 1, "cuepoint-reset:r1:100", &a, &err) == 0, "%s", err.msg);
    cr_expect(!a.already);
    cr_expect_eq(a.action, CUE_OFFSETS_DROP);
    cr_expect_eq(a.from, 500);
    cr_expect_eq(a.users, 2);
    uint64_t n = 9;
    cr_assert(cue_offsets_count_users(s, 1, &n, &err) == 0);
    cr_expect_eq(n, 0, "partition 1's users dropped");
    int timers = 0;
    cue_store_timers_scan(s, 1, INT64_MIN, "", 0, count_timer, &timers);
    cr_expect_eq(timers, 0, "and its timer index");
    cue_store_meta m;
    cr_assert(cue_store_meta_get(s, 1, &m, &err) == 0);
    cr_expect_eq(m.input_offset, 100);
    cr_expect_eq(m.stream_time_ms, INT64_MIN, "stream time starts over");
    cr_assert(cue_offsets_count_users(s, 2, &n, &err) == 0);
    cr_expect_eq(n, 1, "partition 2 untouched");
    char marker[CUE_STORE_MARKER_MAX];
    cr_assert(cue_store_reset_marker_get(s, 1, marker, sizeof marker, &err) == 0);
    cr_expect_str_eq(marker, "cuepoint-reset:r1:100");
    /* Applied again (the next assignment sees the same marker): nothing. */
    cue_store_batch_user_put(s, 1, "dee", 3, "d", 1);
    cue_store_meta later = {.input_offset = 300, .changelog_offset = -1, .stream_time_ms = 1};
    cue_store_batch_meta_put(s, 1, &later);
    cr_assert(cue_store_batch_commit(s, true, &err) == 0);
    cr_assert(cue_offsets_apply(s, 1, "cuepoint-reset:r1:100", &a, &err) == 0);
    cr_expect(a.already);
    cr_assert(cue_store_meta_get(s, 1, &m, &err) == 0);
    cr_expect_eq(m.input_offset, 300, "an applied reset is not applied twice");
    cue_store_close(s);
}

Test(offsets, forward_reset_keeps_users_and_stream_time)
{
    char dir[64];
    cue_store *s = store_with_users(dir);
    cue_err err = {0};
    cue_offsets_applied a;
    cr_assert(cue_offsets_apply(s, 1, "cuepoint-reset:r2:800", &a, &err) == 0, "%s", err.msg);
    cr_expect_eq(a.action, CUE_OFFSETS_MOVE);
    cr_expect_eq(a.users, 2);
    uint64_t n = 0;
    cr_assert(cue_offsets_count_users(s, 1, &n, &err) == 0);
    cr_expect_eq(n, 2);
    cue_store_meta m;
    cr_assert(cue_store_meta_get(s, 1, &m, &err) == 0);
    cr_expect_eq(m.input_offset, 800);
    cr_expect_eq(m.stream_time_ms, 9000);
    /* A partition the store never had starts at the reset's offset. */
    cr_assert(cue_offsets_apply(s, 7, "cuepoint-reset:r2:40", &a, &err) == 0);
    cr_expect_eq(a.from, -1);
    cr_assert(cue_store_meta_get(s, 7, &m, &err) == 0);
    cr_expect_eq(m.input_offset, 40);
    cue_store_close(s);
}
