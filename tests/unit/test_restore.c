/* Restoring a partition from its changelog: the owner's records land in the
 * store as they came, the timer index is re-derived, the position record
 * moves the input position, and anything else is skipped and counted. */
#include "cuepoint/restore.h"

#include "cuepoint/codec.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

typedef struct seen {
    char text[1024];
} seen;

static int collect_user(uint32_t p, const char *uid, size_t len, const void *v, size_t vlen,
                        void *ctx)
{
    seen *s = ctx;
    char one[64];
    snprintf(one, sizeof one, "%u/%.*s;", p, (int)len, uid);
    strcat(s->text, one);
    return 0;
}

static int collect_timer(int64_t due, const char *uid, size_t len, void *ctx)
{
    seen *s = ctx;
    char one[64];
    snprintf(one, sizeof one, "%lld:%.*s;", (long long)due, (int)len, uid);
    strcat(s->text, one);
    return 0;
}

/* A sealed state record of user `uid` whose timer index entry is `due`. */
static void state_record(const char *uid, int64_t due, cue_buf *out)
{
    cue_machines *ms = compile_text("{\"name\":\"m\",\"version\":1,\"start\":{\"event\":\"go\"},"
                                    "\"initial\":\"a\",\"states\":{\"a\":{}}}");
    cue_user *u = malloc(sizeof *u);
    cue_user_init(u, uid, strlen(uid));
    u->indexed_due = due;
    cr_assert_eq(cue_codec_encode(u, ms, out), 0);
    free(u);
    cue_machines_free(ms);
}

/* Found by fuzzing (tests/fuzz/fuzz_restore.c): a key longer than a user id
 * overflowed the store's key buffer (anything that can write the changelog
 * topic reached it, during a restore or a standby's apply), and an empty key
 * without a value copied from a null pointer. Each such record is now
 * skipped, counted and named; the partition goes on. */
/* With several input topics the position record carries the further
 * topics' offsets, and they reach the meta. */
Test(restore, a_position_record_of_several_input_topics)
{
    char dir[64];
    temp_dir(dir);
    cue_store *s = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_store_open(&s, dir, &(cue_store_opts){0}, &err), 0, "%s", err.msg);
    static const char pos[] =
        "{\"input_offset\":42,\"stream_time_ms\":null,\"more_offsets\":[7,0]}";
    static const char bad[] = "{\"input_offset\":42,\"stream_time_ms\":3,\"more_offsets\":[7,]}";
    cue_restore r = {0};
    cue_restore_init(&r, 1, NULL, false);
    cr_assert_eq(cue_restore_apply(&r, s, "", 0, bad, sizeof bad - 1, &err), CUE_EPARSE);
    cr_assert_eq(cue_restore_apply(&r, s, "", 0, pos, sizeof pos - 1, &err), 0, "%s", err.msg);
    cr_assert(r.input_offset == 42 && r.stream_time_ms == INT64_MIN && r.n_more == 2);
    cue_restore_finish(&r, s, 10, 1);
    cr_assert_eq(cue_store_batch_commit(s, false, &err), 0, "%s", err.msg);
    cue_restore_deinit(&r);
    cue_store_meta m;
    cr_assert(cue_store_meta_get(s, 1, &m, &err) == 0, "%s", err.msg);
    cr_expect(m.input_offset == 42 && m.n_more == 2 && m.more_offsets[0] == 7 &&
              m.more_offsets[1] == 0);
    cue_store_close(s);
    remove_tree(dir);
}

Test(restore, records_that_are_not_the_owners_are_skipped_and_counted)
{
    char dir[64];
    temp_dir(dir);
    cue_store *s = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_store_open(&s, dir, &(cue_store_opts){0}, &err), 0, "%s", err.msg);
    cue_buf ann;
    cue_buf_init(&ann, 64);
    state_record("ann", 5000, &ann);
    static char big[5000];
    memset(big, 'k', sizeof big);
    static const char pos[] = "{\"input_offset\":42,\"stream_time_ms\":7}";
    static const char neg[] = "{\"input_offset\":-3,\"stream_time_ms\":7}";
    const struct {
        const char *key;
        size_t key_len;
        const char *val;
        size_t len;
        int rc;
        const char *says;
    } recs[] = {
        {"ann", 3, ann.data, ann.len, 0, NULL},
        {big, sizeof big, ann.data, ann.len, CUE_ELIMIT, "key of 5000 bytes"},
        {big, sizeof big, NULL, 0, CUE_ELIMIT, "key of 5000 bytes"},
        {big, CUE_USER_ID_BYTES_MAX + 1, ann.data, ann.len, CUE_ELIMIT, "key of 129 bytes"},
        {NULL, 0, ann.data, ann.len, CUE_EPARSE, "without a key"},
        {"", 0, NULL, 0, CUE_EPARSE, "position record"},
        {"", 0, "garbage", 7, CUE_EPARSE, "position record"},
        {"", 0, neg, sizeof neg - 1, CUE_EPARSE, "position record"},
        {"", 0, pos, sizeof pos - 1, 0, NULL},
    };
    size_t n = sizeof recs / sizeof *recs;
    for (int hold = 0; hold < 2; hold++) {
        cue_restore r = {0};
        cue_restore_init(&r, 3, NULL, hold);
        for (size_t i = 0; i < n; i++) {
            cue_err e = {0};
            int rc = cue_restore_apply(&r, s, recs[i].key, recs[i].key_len, recs[i].val,
                                       recs[i].len, &e);
            cr_assert_eq(rc, recs[i].rc, "record %zu: %d (%s)", i, rc, e.msg);
            if (recs[i].says)
                cr_assert(strstr(e.msg, recs[i].says), "record %zu: '%s' lacks '%s'", i, e.msg,
                          recs[i].says);
        }
        cr_assert_eq(r.records, n);
        cr_assert_eq(r.skipped, 7);
        cr_assert_eq(r.input_offset, 42);
        cr_assert_eq(r.stream_time_ms, 7);
        cue_restore_finish(&r, s, 100, 1);
        cr_assert_eq(cue_store_batch_commit(s, false, &err), 0, "%s", err.msg);
        cue_restore_deinit(&r);
        seen users = {""}, timers = {""};
        cr_assert_eq(cue_store_users_scan(s, -1, collect_user, &users), 0);
        cr_assert_str_eq(users.text, "3/ann;");
        cr_assert_eq(cue_store_timers_scan(s, 3, INT64_MIN, "", 0, collect_timer, &timers), 0);
        cr_assert_str_eq(timers.text, "5000:ann;");
        cue_store_meta meta;
        cr_assert_eq(cue_store_meta_get(s, 3, &meta, &err), 0);
        cr_assert(meta.input_offset == 42 && meta.changelog_offset == 100);
    }
    cue_buf_deinit(&ann);
    cue_store_close(s);
    remove_tree(dir);
}

/* The position record the offline commands write (cli_changelog.c) is the
 * one the task writes, and reads back to what went in, null included. */
Test(restore, position_record_round_trip)
{
    static const struct {
        int64_t in, st;
        const char *text;
    } cases[] = {
        {0, INT64_MIN, "{\"input_offset\":0,\"stream_time_ms\":null}"},
        {42, 7, "{\"input_offset\":42,\"stream_time_ms\":7}"},
        {9000000000LL, -5, "{\"input_offset\":9000000000,\"stream_time_ms\":-5}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[CUE_POSITION_TEXT_BYTES_MAX];
        int n =
            cue_restore_position_format(buf, sizeof buf, cases[i].in, cases[i].st, NULL, 0, NULL);
        cr_assert_str_eq(buf, cases[i].text);
        cr_assert_eq((size_t)n, strlen(cases[i].text));
        int64_t in = -1, st = 0;
        cr_assert_eq(cue_restore_position_parse(buf, (size_t)n, &in, &st, NULL, NULL, NULL), 0,
                     "case %zu", i);
        cr_assert(in == cases[i].in && st == cases[i].st, "case %zu: %lld %lld", i, (long long)in,
                  (long long)st);
    }
    int64_t in = 5, st = 5;
    const char *neg = "{\"input_offset\":-1,\"stream_time_ms\":3}";
    cr_assert_eq(cue_restore_position_parse(neg, strlen(neg), &in, &st, NULL, NULL, NULL),
                 CUE_EPARSE);
    cr_assert(in == 5 && st == 5, "a refused record changed the outputs");
    /* With several input topics: the further topics' offsets, back as written. */
    const int64_t more[2] = {7, 0};
    char buf[CUE_POSITION_TEXT_BYTES_MAX];
    int n = cue_restore_position_format(buf, sizeof buf, 42, INT64_MIN, more, 2, NULL);
    cr_assert_str_eq(buf, "{\"input_offset\":42,\"stream_time_ms\":null,\"more_offsets\":[7,0]}");
    int64_t got[CUE_INPUT_TOPICS_MAX - 1];
    uint8_t n_got = 0;
    cr_assert_eq(cue_restore_position_parse(buf, (size_t)n, &in, &st, got, &n_got, NULL), 0);
    cr_assert(in == 42 && st == INT64_MIN && n_got == 2 && got[0] == 7 && got[1] == 0);
}

/* Position records say which input topics they were written reading; the
 * last one a restore applied must be of the configuration's topics or the
 * first of them (topics are added at the end), else the state is another
 * input's (CUE_ECONFIG). Only the last counts: a changelog rewritten for
 * this input (replay --seed-state) holds the other input's older ones.
 * Records that do not say are taken, as before. */
Test(restore, a_position_written_reading_other_input_topics_is_refused)
{
    cue_config *now = malloc(sizeof *now), *was = malloc(sizeof *was);
    cr_assert(now && was);
    cue_config_defaults(now);
    cue_err err = {0};
    cr_assert_eq(cue_config_set(now, "input.topics", "[\"web\", \"mobile\"]", &err), 0, "%s",
                 err.msg);
    char dir[64];
    temp_dir(dir);
    cue_store *s = NULL;
    cr_assert_eq(cue_store_open(&s, dir, &(cue_store_opts){0}, &err), 0, "%s", err.msg);
    static const struct {
        const char *topics; /* what the writer read; NULL: an older record */
        int want;
    } cases[] = {
        {"[\"web\", \"mobile\"]", 0},
        {"[\"web\"]", 0},
        {NULL, 0},
        {"[\"mobile\", \"web\"]", CUE_ECONFIG},
        {"[\"web\", \"billing\"]", CUE_ECONFIG},
        {"[\"web\", \"mobile\", \"billing\"]", CUE_ECONFIG},
        {"[\"events\"]", CUE_ECONFIG},
    };
    char pos[sizeof cases / sizeof *cases][CUE_POSITION_TEXT_BYTES_MAX];
    int len[sizeof cases / sizeof *cases];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cue_position_topics tp = {0};
        if (cases[i].topics) {
            cue_config_defaults(was);
            cr_assert_eq(cue_config_set(was, "input.topics", cases[i].topics, &err), 0, "%s",
                         err.msg);
            tp.n = was->input_topic_count;
            tp.hash = cue_config_input_topics_hash(was, tp.n);
        }
        int64_t more[1] = {3};
        len[i] =
            cue_restore_position_format(pos[i], sizeof pos[i], 10 + (int64_t)i, 20, more, 1, &tp);
        cue_position_topics back;
        int64_t in, st;
        cr_assert_eq(
            cue_restore_position_parse(pos[i], (size_t)len[i], &in, &st, NULL, NULL, &back), 0,
            "%s", pos[i]);
        cr_assert(back.n == tp.n && back.hash == tp.hash, "case %zu: %s", i, pos[i]);
        static cue_restore r;
        cue_restore_init(&r, 0, NULL, false);
        cr_assert_eq(cue_restore_apply(&r, s, "", 0, pos[i], (size_t)len[i], &err), 0, "%s",
                     err.msg);
        cr_assert(r.input_offset == 10 + (int64_t)i && r.n_more == 1 && r.more_offsets[0] == 3);
        cue_err_clear(&err);
        cr_assert_eq(cue_restore_topics_check(&r, now, &err), cases[i].want, "case %zu (%s): %s", i,
                     cases[i].topics ? cases[i].topics : "none", err.msg);
        if (cases[i].want) cr_assert(strstr(err.msg, "web,mobile") != NULL, "%s", err.msg);
        cue_restore_deinit(&r);
    }
    /* Another input's positions, then this one's: the state is this one's. */
    static cue_restore r;
    cue_restore_init(&r, 0, NULL, false);
    cr_assert_eq(cue_restore_apply(&r, s, "", 0, pos[6], (size_t)len[6], &err), 0);
    cr_assert_eq(cue_restore_apply(&r, s, "", 0, pos[0], (size_t)len[0], &err), 0);
    cr_assert_eq(cue_restore_topics_check(&r, now, &err), 0, "%s", err.msg);
    cr_assert_eq(cue_restore_apply(&r, s, "", 0, pos[4], (size_t)len[4], &err), 0);
    cr_assert_eq(cue_restore_topics_check(&r, now, &err), CUE_ECONFIG);
    /* A position record that does not read is skipped and changes nothing. */
    static const char torn[] = "{\"input_offset\":99,\"stream_time_ms\":1,\"more_offsets\":[5,";
    cr_assert_eq(cue_restore_apply(&r, s, "", 0, torn, sizeof torn - 1, &err), CUE_EPARSE);
    cr_assert_eq(cue_restore_topics_check(&r, now, &err), CUE_ECONFIG, "the last good one counts");
    cr_assert(r.input_offset == 14 && r.n_more == 1 && r.more_offsets[0] == 3 && r.skipped == 1);
    cue_restore_deinit(&r);
    const char *bad = "{\"input_offset\":1,\"stream_time_ms\":2,\"topics\":{\"count\":0,\"hash\":"
                      "\"0123456789abcdef\"}}";
    int64_t in, st;
    cr_assert_eq(cue_restore_position_parse(bad, strlen(bad), &in, &st, NULL, NULL, NULL),
                 CUE_EPARSE, "a count of 0");
    cue_store_close(s);
    remove_tree(dir);
    free(now);
    free(was);
}

/* A user erased by its owner reaches a restore or a standby as a marked
 * tombstone: the copy is erased physically too (no file of the directory
 * holds the id after the commit), where a plain tombstone (a state TTL's)
 * only deletes, and the id stays in the WAL until compactions reach it. */
Test(restore, a_marked_tombstone_erases_the_copy_physically)
{
    static const char gone[] = "zq-restored-then-erased-93";
    for (int marked = 0; marked < 2; marked++) {
        char dir[64];
        temp_dir(dir);
        cue_store *s = NULL;
        cue_err err = {0};
        cr_assert_eq(cue_store_open(&s, dir, &(cue_store_opts){0}, &err), 0, "%s", err.msg);
        cue_buf rec = {0};
        state_record(gone, 5000, &rec);
        cue_restore r = {0};
        cue_restore_init(&r, 1, NULL, false);
        cr_assert_eq(cue_restore_apply(&r, s, gone, strlen(gone), rec.data, rec.len, &err), 0);
        cr_assert_eq(cue_store_batch_commit(s, false, &err), 0, "%s", err.msg);
        int rc = marked ? cue_restore_apply_erasure(&r, s, gone, strlen(gone), &err)
                        : cue_restore_apply(&r, s, gone, strlen(gone), NULL, 0, &err);
        cr_assert_eq(rc, 0, "%s", err.msg);
        cue_restore_finish(&r, s, 10, 1);
        cr_assert_eq(cue_store_batch_commit(s, false, &err), 0, "%s", err.msg);
        cr_assert_eq(cue_store_scrubs(s), (uint64_t)marked);
        if (marked)
            cr_assert_not(test_dir_holds(dir, gone), "the erased id is still in a file of %s", dir);
        else
            cr_assert(test_dir_holds(dir, gone), "control: a plain tombstone leaves the id");
        seen users = {""}, timers = {""};
        cr_assert_eq(cue_store_users_scan(s, -1, collect_user, &users), 0);
        cr_assert_str_eq(users.text, "");
        cr_assert_eq(cue_store_timers_scan(s, 1, INT64_MIN, "", 0, collect_timer, &timers), 0);
        if (marked) /* a plain tombstone's entry stays, to find no user when it comes up */
            cr_assert_str_eq(timers.text, "", "the index entry goes with the erasure: %s",
                             timers.text);
        cr_assert_eq(cue_restore_apply_erasure(&r, s, "", 0, &err), CUE_EPARSE);
        cr_assert_eq(r.skipped, 1);
        cue_restore_deinit(&r);
        cue_buf_deinit(&rec);
        cue_store_close(s);
        remove_tree(dir);
    }
}

/* A user's record and its erasure within one batch (a standby reading both
 * between two commits), or before the end of a restore that holds the index
 * entries back: the entry derived from the record must not reach the store
 * after the erasure (its key holds the id). */
Test(restore, an_erasure_drops_the_index_entries_not_yet_written)
{
    static const char gone[] = "zq-held-then-erased-17";
    for (int hold = 0; hold < 2; hold++) {
        char dir[64];
        temp_dir(dir);
        cue_store *s = NULL;
        cue_err err = {0};
        cr_assert_eq(cue_store_open(&s, dir, &(cue_store_opts){0}, &err), 0, "%s", err.msg);
        cue_buf rec = {0}, keep = {0};
        state_record(gone, 5000, &rec);
        state_record("kept", 6000, &keep);
        cue_restore r = {0};
        cue_restore_init(&r, 2, NULL, hold);
        cr_assert_eq(cue_restore_apply(&r, s, "kept", 4, keep.data, keep.len, &err), 0);
        cr_assert_eq(cue_restore_apply(&r, s, gone, strlen(gone), rec.data, rec.len, &err), 0);
        cr_assert_eq(cue_restore_apply_erasure(&r, s, gone, strlen(gone), &err), 0, "%s", err.msg);
        cue_restore_finish(&r, s, 10, 1);
        cr_assert_eq(cue_store_batch_commit(s, false, &err), 0, "%s", err.msg);
        seen timers = {""};
        cr_assert_eq(cue_store_timers_scan(s, 2, INT64_MIN, "", 0, collect_timer, &timers), 0);
        cr_assert_str_eq(timers.text, "6000:kept;", "hold %d", hold);
        cr_assert_not(test_dir_holds(dir, gone), "hold %d: the erased id is in a file of %s", hold,
                      dir);
        cue_restore_deinit(&r);
        cue_buf_deinit(&rec);
        cue_buf_deinit(&keep);
        cue_store_close(s);
        remove_tree(dir);
    }
}
