/* The task over a real store: timer order across users, the timer window
 * spilling to RocksDB, duplicates skipped, restarts, lateness, forced commits. */
#include "cuepoint/codec.h"
#include "cuepoint/policy.h"
#include "cuepoint/restore.h"
#include "cuepoint/store.h"
#include "cuepoint/task.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* One timer per user, a nudge an hour (or `after`) after `begin`. */
static const char nudge_machine[] =
    "{\"name\":\"n\",\"version\":1,\"start\":{\"event\":\"begin\",\"do\":[{\"start_timer\":"
    "\"t\",\"at\":{\"event\":\"/due\"}}]},\"initial\":\"w\",\"final\":[\"done\"],\"states\":{"
    "\"w\":{\"on\":[{\"event\":\"stop\",\"do\":[{\"cancel_timer\":\"t\"}],\"goto\":\"done\"},"
    "{\"timer\":\"t\",\"do\":[{\"emit\":\"nudge\"}],\"goto\":\"done\"}]},\"done\":{}}}";

typedef struct harness {
    char dir[64];
    cue_config cfg;
    cue_machines *ms;
    cue_store *store;
    cue_task *task;
    cue_buf log; /* "nudge:user@ms;" per trigger, "dead:reason@offset;" per dead letter */
    size_t triggers, dead;
    char last_dead[256]; /* the last dead letter's message */
} harness;

static void on_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    harness *h = ctx;
    cue_buf_printf(&h->log, "%s:%.*s@%lld;", t->name, (int)t->user->id_len, t->user->id,
                   (long long)t->time_ms);
    h->triggers++;
}

static void on_dead(const cue_dead_letter *dl, void *ctx)
{
    harness *h = ctx;
    cue_buf_printf(&h->log, "dead:%s@%lld;", cue_reason_name(dl->reason), (long long)dl->offset);
    snprintf(h->last_dead, sizeof h->last_dead, "%s", dl->message);
    h->dead++;
}

static void open_task(harness *h)
{
    cue_err err = {0};
    cue_task_sink sink = {.trigger = on_trigger, .dead_letter = on_dead, .ctx = h};
    cr_assert(cue_store_open(&h->store, h->dir, &(cue_store_opts){0}, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_new(&h->task, &h->cfg, h->ms, h->store, 0, &sink, &err) == 0, "%s", err.msg);
}

static void close_task(harness *h, bool commit)
{
    cue_err err = {0};
    if (commit) cr_assert(cue_task_commit(h->task, &err) == 0, "%s", err.msg);
    cue_task_free(h->task);
    cue_store_close(h->store);
}

static void setup(harness *h)
{
    memset(h, 0, sizeof *h);
    temp_dir(h->dir);
    cue_config_defaults(&h->cfg);
    h->cfg.event_time_min_ms = 0; /* the cases count time from 0 */
    h->ms = compile_text(nudge_machine);
    cue_buf_init(&h->log, 1024);
    open_task(h);
}

static void teardown(harness *h)
{
    close_task(h, false);
    cue_machines_free(h->ms);
    cue_buf_deinit(&h->log);
    remove_tree(h->dir);
}

/* One record as a file or a topic offers it (key NULL: none; ts: its Kafka
 * timestamp or CUE_NO_TIMESTAMP). */
static int process(harness *h, const char *line, int64_t offset, const char *key, int64_t ts,
                   cue_err *err)
{
    cue_record rec = {.value = line,
                      .value_len = strlen(line),
                      .key = key,
                      .key_len = key ? strlen(key) : 0,
                      .offset = offset,
                      .timestamp_ms = ts};
    return cue_task_process(h->task, &rec, err);
}

static void feed(harness *h, const char *line)
{
    cue_err err = {0};
    cr_assert(process(h, line, cue_task_next_offset(h->task), NULL, CUE_NO_TIMESTAMP, &err) == 0,
              "%s", err.msg);
}

static void begin(harness *h, const char *user, long long ts, long long due)
{
    char line[256];
    snprintf(line, sizeof line, "{\"user_id\":\"%s\",\"type\":\"begin\",\"ts\":%lld,\"due\":%lld}",
             user, ts, due);
    feed(h, line);
}

Test(task, timers_fire_in_due_then_user_order_before_the_passing_event)
{
    harness h;
    setup(&h);
    begin(&h, "b", 0, 100);
    begin(&h, "a", 1, 100);
    begin(&h, "c", 2, 50);
    begin(&h, "d", 3, 200);
    /* An event at 200 passes 50 and 100, but reaches 200 only: d fires after it. */
    feed(&h, "{\"user_id\":\"z\",\"type\":\"other\",\"ts\":200}");
    cr_assert_str_eq(h.log.data, "nudge:c@50;nudge:a@100;nudge:b@100;nudge:d@200;");
    teardown(&h);
}

static int count_timer(int64_t due, const char *uid, size_t len, void *ctx)
{
    (void)due, (void)uid, (void)len;
    ++*(size_t *)ctx;
    return 0;
}

/* 300 users through a 16-timer window, committing every `commit_records`
 * records: the triggers come in (due, user) order all the same. */
static void spill_case(int64_t commit_records)
{
    harness h;
    setup(&h);
    close_task(&h, false);
    h.cfg.timers_memory_max = 16;
    h.cfg.commit_records = commit_records;
    open_task(&h);
    /* 300 users, due times with many ties, armed in an order unlike due order. */
    char expected[300][32];
    int n = 0;
    for (int i = 0; i < 300; i++) {
        char user[16];
        snprintf(user, sizeof user, "u%03d", (i * 37) % 300);
        begin(&h, user, i, 1000 + ((i * 7919) % 23) * 10);
    }
    /* Reference: sort (due, user) pairs. */
    for (int due = 1000; due < 1000 + 23 * 10; due += 10)
        for (int u = 0; u < 300; u++)
            for (int i = 0; i < 300; i++)
                if ((i * 37) % 300 == u && 1000 + ((i * 7919) % 23) * 10 == due)
                    snprintf(expected[n++], 32, "nudge:u%03d@%d;", u, due);
    cue_err err = {0};
    cr_assert(cue_task_advance(h.task, 5000, &err) == 0, "%s", err.msg);
    cue_buf want;
    cue_buf_init(&want, 8192);
    for (int i = 0; i < n; i++)
        cue_buf_append_str(&want, expected[i]);
    cr_assert_eq(h.triggers, 300);
    cr_assert_str_eq(h.log.data, want.data);
    cr_assert_gt(cue_task_stats_get(h.task)->timer_loads, 1, "the window never spilled");
    if (cue_task_stats_get(h.task)->commits == 0) {
        /* The window reloaded from the entries pending in memory: nothing
         * was written to the store while the records were processed. */
        size_t stored = 0;
        cr_assert(cue_store_timers_scan(h.store, 0, INT64_MIN, "", 0, count_timer, &stored) == 0);
        cr_assert_eq(stored, 0, "%zu index entries written before the commit", stored);
    }
    cue_buf_deinit(&want);
    teardown(&h);
}

Test(task, the_timer_window_spills_to_the_store_and_keeps_order)
{
    spill_case(7);
}

Test(task, the_timer_window_reloads_from_pending_entries_without_writing)
{
    spill_case(1000000);
}

Test(task, a_redelivered_record_is_skipped)
{
    harness h;
    setup(&h);
    const char *line = "{\"user_id\":\"a\",\"type\":\"begin\",\"ts\":1,\"due\":10}";
    cue_err err = {0};
    cr_assert(process(&h, line, 5, NULL, CUE_NO_TIMESTAMP, &err) == 0);
    cr_assert(process(&h, line, 5, NULL, CUE_NO_TIMESTAMP, &err) == 0);
    cr_assert_eq(cue_task_stats_get(h.task)->duplicates, 1);
    cr_assert_eq(cue_task_stats_get(h.task)->applied, 1);
    cr_assert(cue_task_advance(h.task, 100, &err) == 0);
    cr_assert_str_eq(h.log.data, "nudge:a@10;", "the timer must exist once: %s", h.log.data);
    teardown(&h);
}

Test(task, a_restart_continues_from_the_store)
{
    harness h;
    setup(&h);
    begin(&h, "a", 0, 100);
    begin(&h, "b", 1, 300);
    close_task(&h, true);
    open_task(&h);
    cr_assert_eq(cue_task_next_offset(h.task), 2);
    cr_assert_eq(cue_task_stream_time(h.task), 1);
    feed(&h, "{\"user_id\":\"b\",\"type\":\"stop\",\"ts\":200}");
    cue_err err = {0};
    cr_assert(cue_task_advance(h.task, 1000, &err) == 0);
    cr_assert_str_eq(h.log.data, "nudge:a@100;");
    teardown(&h);
}

/* Several input topics: each has its own offsets, in the task, the store and
 * each user's state. A record of the second topic at an offset below what
 * the user applied from the first is new, not a duplicate; one at or below
 * what the user applied from its own topic is. */
Test(task, each_input_topic_has_its_own_offsets)
{
    harness h;
    setup(&h);
    close_task(&h, false);
    cue_config_set_input_topic(&h.cfg, "web");
    memcpy(h.cfg.input_topics[1], "mobile", 7);
    h.cfg.input_topic_count = 2;
    open_task(&h);
    cue_err err = {0};
    const char *a0 = "{\"user_id\":\"a\",\"type\":\"begin\",\"ts\":1,\"due\":100}";
    const char *a1 = "{\"user_id\":\"a\",\"type\":\"stop\",\"ts\":2}";
    cue_record web = {.value = a0, .value_len = strlen(a0), .offset = 9, .topic = 0};
    cue_record mob = {.value = a1, .value_len = strlen(a1), .offset = 3, .topic = 1};
    cr_assert(cue_task_offer(h.task, &web, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_offer(h.task, &mob, &err) == 0, "%s", err.msg);
    cr_assert_eq(cue_task_stats_get(h.task)->duplicates, 0, "mobile's 3 is not web's 3");
    cr_assert_eq(cue_task_next_offset_of(h.task, 0), 10);
    cr_assert_eq(cue_task_next_offset_of(h.task, 1), 4);
    close_task(&h, true);
    open_task(&h);
    cr_assert_eq(cue_task_next_offset_of(h.task, 0), 10);
    cr_assert_eq(cue_task_next_offset_of(h.task, 1), 4, "the second topic resumes where it was");
    cr_assert(cue_task_offer(h.task, &mob, &err) == 1, "a redelivered record is skipped");
    /* The user's own offsets catch what the task's position does not (a
     * restored state ahead of its input). */
    cue_record again = mob;
    cue_task_free(h.task);
    cue_store_close(h.store);
    cue_store_meta m = {.input_offset = 0, .changelog_offset = -1, .stream_time_ms = 2};
    cr_assert(cue_store_open(&h.store, h.dir, &(cue_store_opts){0}, &err) == 0, "%s", err.msg);
    cr_assert(cue_store_partition_reset(h.store, 0, false, &m, "", &err) == 0, "%s", err.msg);
    cue_task_sink sink = {.trigger = on_trigger, .dead_letter = on_dead, .ctx = &h};
    cr_assert(cue_task_new(&h.task, &h.cfg, h.ms, h.store, 0, &sink, &err) == 0, "%s", err.msg);
    cr_assert_eq(cue_task_next_offset_of(h.task, 1), 0);
    cr_assert(cue_task_offer(h.task, &again, &err) == 0, "%s", err.msg);
    cr_assert_eq(cue_task_stats_get(h.task)->duplicates, 1, "the user applied mobile's 3 before");
    teardown(&h);
}

Test(task, uncommitted_work_is_redone_after_a_crash)
{
    harness h;
    setup(&h);
    begin(&h, "a", 0, 100);
    close_task(&h, true);
    open_task(&h);
    begin(&h, "b", 1, 50);
    close_task(&h, false); /* a crash: b was never committed */
    open_task(&h);
    cr_assert_eq(cue_task_next_offset(h.task), 1, "input resumes at the committed position");
    begin(&h, "b", 1, 50);
    cue_err err = {0};
    cr_assert(cue_task_advance(h.task, 1000, &err) == 0);
    cr_assert_str_eq(h.log.data, "nudge:b@50;nudge:a@100;");
    teardown(&h);
}

Test(task, lateness_policy_and_key_mismatch)
{
    harness h;
    setup(&h);
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":10000000}");
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":9000000}"); /* 1000 s late: within 1 h */
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":1000}");    /* far too late */
    cue_err err = {0};
    const char *line = "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":10000000}";
    cr_assert(process(&h, line, 3, "b", CUE_NO_TIMESTAMP, &err) == 0);
    cr_assert_str_eq(h.log.data, "dead:late@2;dead:key_mismatch@3;");
    close_task(&h, true); /* stream time is kept with the commit */
    h.cfg.late_policy = CUE_LATE_APPLY;
    open_task(&h);
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":1000}");
    cr_assert_eq(cue_task_stats_get(h.task)->late_applied, 1);
    teardown(&h);
}

Test(task, a_small_cache_commits_early_and_gives_the_same_triggers)
{
    harness h;
    setup(&h);
    for (int i = 0; i < 20000; i++) {
        char user[16];
        snprintf(user, sizeof user, "user-%05d", i);
        begin(&h, user, i, 100000 + i % 1000);
    }
    cue_err err = {0};
    cr_assert(cue_task_advance(h.task, 200000, &err) == 0);
    size_t big_commits = cue_task_stats_get(h.task)->commits;
    char *big = strdup(h.log.data);
    teardown(&h);

    setup(&h);
    close_task(&h, false);
    h.cfg.cache_max_bytes = CUE_CACHE_BYTES_MIN;
    open_task(&h);
    for (int i = 0; i < 20000; i++) {
        char user[16];
        snprintf(user, sizeof user, "user-%05d", i);
        begin(&h, user, i, 100000 + i % 1000);
    }
    cr_assert(cue_task_advance(h.task, 200000, &err) == 0);
    cr_assert_gt(cue_task_stats_get(h.task)->commits, big_commits,
                 "the small cache never forced a commit");
    cr_assert_str_eq(h.log.data, big);
    free(big);
    teardown(&h);
}

Test(task, a_corrupt_stored_state_dead_letters_the_event_and_the_rest_goes_on)
{
    harness h;
    setup(&h);
    cue_err err = {0};
    cue_store_batch_user_put(h.store, 0, "bad", 3, "CU\x01garbage", 10);
    cr_assert(cue_store_batch_commit(h.store, false, &err) == 0);
    begin(&h, "bad", 0, 10);
    begin(&h, "good", 1, 10);
    cr_assert(cue_task_advance(h.task, 100, &err) == 0);
    cr_assert_str_eq(h.log.data, "dead:bad_state@0;nudge:good@10;");
    cr_assert_eq(cue_task_stats_get(h.task)->corrupt_states, 1);
    teardown(&h);
}

/* The commit order the changelog relies on (promise 3 across instances): the
 * cycle's triggers are acknowledged before any changelog record of the cycle,
 * the changelog before the store batch, and the changelog's position is what
 * the store's meta keeps. A cycle that changed nothing writes no changelog. */
typedef struct order_log {
    cue_buf log;
    int64_t now_ms; /* the wall clock the sink reports */
} order_log;

static void ol_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    (void)t, (void)rec, (void)len;
    cue_buf_append_str(&((order_log *)ctx)->log, "T;");
}

static void ol_dead(const cue_dead_letter *dl, void *ctx)
{
    (void)dl;
    cue_buf_append_str(&((order_log *)ctx)->log, "D;");
}

static void ol_changelog(uint32_t partition, const char *key, size_t key_len, const void *val,
                         size_t len, void *ctx)
{
    (void)partition, (void)key, (void)len;
    cue_buf_append_str(&((order_log *)ctx)->log, key_len == 0 ? "P;" : val ? "U;" : "X;");
}

static int64_t ol_next(uint32_t partition, int64_t *synced_ms, void *ctx)
{
    (void)partition;
    *synced_ms = ((order_log *)ctx)->now_ms;
    return 42;
}

static int ol_flush(void *ctx, cue_err *err)
{
    (void)err;
    cue_buf_append_str(&((order_log *)ctx)->log, "F;");
    return 0;
}

/* A sink that logs each call into `ol` (its flushes too when `flush`), and
 * `ol` set up at a fixed wall clock; the caller deinits ol->log. */
static cue_task_sink logged_sink(order_log *ol, bool flush)
{
    *ol = (order_log){.now_ms = 1700000000000};
    cue_buf_init(&ol->log, 256);
    return (cue_task_sink){.trigger = ol_trigger,
                           .dead_letter = ol_dead,
                           .changelog = ol_changelog,
                           .changelog_next = ol_next,
                           .flush = flush ? ol_flush : NULL,
                           .ctx = ol};
}

/* h's task again, on a store of its own, with a logged sink. */
static void logged_task(harness *h, order_log *ol, bool flush)
{
    close_task(h, false);
    cue_task_sink sink = logged_sink(ol, flush);
    cue_err err = {0};
    cr_assert(cue_store_open(&h->store, h->dir, &(cue_store_opts){0}, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_new(&h->task, &h->cfg, h->ms, h->store, 0, &sink, &err) == 0, "%s", err.msg);
}

/* A sealed cycle's changelog records are held until the caller releases
 * them; a changelog write of the task before that sends them first, so a
 * user's records keep their order (a restore keeps a user's last one). */
Test(task, held_changelog_records_go_out_before_later_ones)
{
    harness h;
    setup(&h);
    order_log ol;
    logged_task(&h, &ol, false);
    cue_err err = {0};
    begin(&h, "a", 0, 500);
    begin(&h, "b", 1, 500);
    cue_buf_reset(&ol.log);
    cr_assert(cue_task_commit_hold_log(h.task, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_commit_finish(h.task, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(ol.log.data, "", "held records went out: %s", ol.log.data);
    /* Not released yet: the next changelog write sends them first. */
    begin(&h, "c", 2, 500);
    cr_assert(cue_task_commit_log(h.task, &err) == 0, "%s", err.msg);
    cr_expect_str_eq(ol.log.data, "U;U;P;U;P;", "out of order: %s", ol.log.data);
    cue_task_commit_release_log(h.task);
    cr_expect_str_eq(ol.log.data, "U;U;P;U;P;", "held records went out twice: %s", ol.log.data);
    cue_buf_deinit(&ol.log);
    teardown(&h);
}

Test(task, triggers_are_flushed_before_the_changelog_and_the_changelog_before_the_store)
{
    harness h;
    setup(&h);
    order_log ol;
    logged_task(&h, &ol, true);
    cue_err err = {0};
    begin(&h, "a", 0, 5);
    cr_assert(cue_task_advance(h.task, 10, &err) == 0);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(ol.log.data, "T;F;U;P;F;");
    cue_store_meta meta;
    cr_assert(cue_store_meta_get(h.store, 0, &meta, &err) == 0);
    cr_assert_eq(meta.changelog_offset, 42, "the store keeps the changelog's position");
    cr_assert_eq(meta.synced_ms, 1700000000000, "... and when it was in line with it");
    cue_buf_reset(&ol.log);
    cr_assert(cue_task_commit(h.task, &err) == 0);
    cr_assert(strstr(ol.log.data, "U;") == NULL && strstr(ol.log.data, "P;") == NULL,
              "an idle cycle wrote the changelog: %s", ol.log.data);
    /* Idle for a tenth of the tombstones' retention: the position again
     * (a standby's copy ages from the last one it saw), no users. A cycle
     * judges by the time the previous one stamped, so two cycles each. */
    int64_t refresh = h.cfg.changelog_delete_retention_ms / 10;
    ol.now_ms += refresh - 1;
    cue_buf_reset(&ol.log);
    cr_assert(cue_task_commit(h.task, &err) == 0 && cue_task_commit(h.task, &err) == 0);
    cr_assert(strstr(ol.log.data, "P;") == NULL, "written again too soon: %s", ol.log.data);
    ol.now_ms += 1;
    cr_assert(cue_task_commit(h.task, &err) == 0 && cue_task_commit(h.task, &err) == 0);
    cr_assert(strstr(ol.log.data, "P;") != NULL && strstr(ol.log.data, "U;") == NULL,
              "an idle partition's position was not written again: %s", ol.log.data);
    cue_buf_deinit(&ol.log);
    teardown(&h);
}

/* Exactly-once rolls a task back when its transaction aborts: whatever it did
 * since the last committed batch (users changed in the cache, timers armed
 * and fired, the position) is dropped, and the same records processed again
 * give what one clean pass gives: the same triggers, the same states. */
static const char *const rollback_events[] = {
    "{\"user_id\":\"a\",\"type\":\"begin\",\"ts\":0,\"due\":40}",
    "{\"user_id\":\"b\",\"type\":\"begin\",\"ts\":1,\"due\":30}",
    "{\"user_id\":\"c\",\"type\":\"begin\",\"ts\":2,\"due\":90}",
    /* the last committed batch ends here */
    "{\"user_id\":\"d\",\"type\":\"begin\",\"ts\":10,\"due\":20}",
    "{\"user_id\":\"c\",\"type\":\"stop\",\"ts\":35}",
    "{\"user_id\":\"e\",\"type\":\"begin\",\"ts\":50,\"due\":60}",
    "{\"user_id\":\"f\",\"type\":\"other\",\"ts\":100}",
};
#define ROLLBACK_N (sizeof rollback_events / sizeof *rollback_events)

static void states_of(harness *h, cue_buf *out)
{
    cue_buf one;
    cue_buf_init(&one, 256);
    for (const char *u = "abcdef"; *u; u++) {
        cue_buf_reset(&one);
        int rc = cue_task_user_json(h->task, u, 1, &one, NULL);
        cue_buf_printf(out, "%c=%s\n", *u, rc == 0 ? one.data : "none");
    }
    cue_buf_deinit(&one);
}

Test(task, a_rollback_returns_to_the_last_commit_and_a_second_pass_equals_a_clean_one)
{
    harness clean, h;
    setup(&clean);
    for (size_t i = 0; i < ROLLBACK_N; i++)
        feed(&clean, rollback_events[i]);
    cue_err err = {0};
    cr_assert(cue_task_commit(clean.task, &err) == 0, "%s", err.msg);
    cue_buf want;
    cue_buf_init(&want, 1024);
    states_of(&clean, &want);

    setup(&h);
    for (size_t i = 0; i < 3; i++)
        feed(&h, rollback_events[i]);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    size_t committed_log = h.log.len;
    for (size_t i = 3; i < ROLLBACK_N; i++)
        feed(&h, rollback_events[i]);
    cr_assert(h.log.len > committed_log, "the aborted part made triggers: %s", h.log.data);
    cr_assert(cue_task_rollback(h.task, &err) == 0, "%s", err.msg);
    cr_assert_eq(cue_task_next_offset(h.task), 3, "the position is the committed one");
    cr_assert_eq(cue_task_stream_time(h.task), 2, "stream time is the committed one");
    cue_buf got;
    cue_buf_init(&got, 1024);
    states_of(&h, &got);
    cr_assert(strstr(got.data, "d=none") && strstr(got.data, "e=none"),
              "users made after the commit survived the rollback:\n%s", got.data);
    /* What went out in the aborted transaction is not visible downstream. */
    h.log.len = committed_log;
    h.log.data[committed_log] = '\0';
    for (size_t i = 3; i < ROLLBACK_N; i++)
        feed(&h, rollback_events[i]);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(h.log.data, clean.log.data);
    cue_buf_reset(&got);
    states_of(&h, &got);
    cr_assert_str_eq(got.data, want.data);
    cr_assert_eq(cue_task_stats_get(h.task)->duplicates, 0, "a record was skipped as applied");
    cue_buf_deinit(&got);
    cue_buf_deinit(&want);
    teardown(&clean);
    teardown(&h);
}

/* An event from a device whose clock is years ahead is refused before it can
 * move stream time or arm a timer, so the good events after it are not late;
 * the reference is the record's Kafka timestamp, else the reader's clock. */
Test(task, an_event_from_the_future_moves_no_time)
{
    harness h;
    setup(&h);
    const int64_t now = 1772438400000; /* 2026-03-02 */
    const char *good1 =
        "{\"user_id\":\"a\",\"type\":\"begin\",\"ts\":1772438400000,\"due\":1772442000000}";
    const char *year9999 = "{\"user_id\":\"b\",\"type\":\"begin\",\"ts\":\"9999-12-31T23:59:59Z\","
                           "\"due\":1772442000000}";
    const char *ahead2h = "{\"user_id\":\"c\",\"type\":\"begin\",\"ts\":1772445600001,\"due\":1}";
    const char *within = "{\"user_id\":\"d\",\"type\":\"x\",\"ts\":1772441900000}";
    const char *good2 = "{\"user_id\":\"a\",\"type\":\"stop\",\"ts\":1772438460000}";
    cue_err err = {0};
    cr_assert(process(&h, good1, 0, NULL, now, &err) == 0, "%s", err.msg);
    cr_assert(process(&h, year9999, 1, NULL, now, &err) == 0, "%s", err.msg);
    cr_assert(process(&h, ahead2h, 2, NULL, now, &err) == 0, "%s", err.msg);
    cr_assert(process(&h, within, 3, NULL, now, &err) == 0, "%s", err.msg); /* 58 min ahead */
    cr_expect_eq(cue_task_stream_time(h.task), 1772441900000);
    cr_assert(process(&h, good2, 4, NULL, now, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(h.log.data, "dead:future_time@1;dead:future_time@2;");
    const cue_task_stats *s = cue_task_stats_get(h.task);
    cr_expect_eq(s->applied, 3);
    cr_expect_eq(s->dead_by_reason[CUE_REASON_FUTURE_TIME], 2);
    /* Without a Kafka timestamp, the reader's clock is the reference; with
     * neither, nothing is checked. */
    cue_buf_reset(&h.log);
    cr_assert(process(&h, year9999, 5, NULL, CUE_NO_TIMESTAMP, &err) == 0);
    cr_expect_eq(cue_task_stream_time(h.task), 253402300799000,
                 "no reference: applied, time moved");
    cr_expect_eq(h.dead, 2);
    teardown(&h);
    setup(&h);
    cue_task_set_clock(h.task, now);
    cr_assert(process(&h, year9999, 0, NULL, CUE_NO_TIMESTAMP, &err) == 0);
    cr_assert(process(&h, good1, 1, NULL, CUE_NO_TIMESTAMP, &err) == 0);
    cr_expect_str_eq(h.log.data, "dead:future_time@0;");
    cr_expect_eq(cue_task_stream_time(h.task), now);
    teardown(&h);
}

/* The message says how far ahead, of what, and names the setting. */
Test(task, a_future_time_dead_letter_says_by_how_much)
{
    harness h;
    setup(&h);
    cue_err err = {0};
    const char *y2030 = "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":\"2026-03-12T00:00:00Z\"}";
    cr_assert(process(&h, y2030, 0, NULL, 1772409600000, &err) == 0);
    cr_expect_str_eq(h.log.data, "dead:future_time@0;");
    cr_expect_str_eq(h.last_dead,
                     "event time 2026-03-12T00:00:00.000Z is 10.0 days ahead of the record's Kafka "
                     "timestamp 2026-03-02T00:00:00.000Z, more than event.time.max.future.ms "
                     "(3600000 ms): a device clock set ahead?");
    teardown(&h);
}

/* A store whose stream time an older version let a future event move is
 * brought back, and stays back after a rollback and a restart. */
Test(task, a_poisoned_stream_time_is_repaired)
{
    harness h;
    setup(&h);
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":\"9999-12-31T23:59:59Z\"}");
    close_task(&h, true);
    open_task(&h);
    cr_assert_eq(cue_task_stream_time(h.task), 253402300799000);
    cr_expect_eq(cue_task_repair_stream_time(h.task, 1772438400000), 253402300799000);
    cr_expect_eq(cue_task_stream_time(h.task), 1772438400000);
    cue_err err = {0};
    cr_assert(cue_task_rollback(h.task, &err) == 0, "%s", err.msg);
    cr_expect_eq(cue_task_stream_time(h.task), 1772438400000, "the repair outlives a rollback");
    feed(&h, "{\"user_id\":\"b\",\"type\":\"x\",\"ts\":1772438000000}"); /* not late now */
    cr_expect_eq(cue_task_stats_get(h.task)->applied, 1);
    cr_expect_eq(h.dead, 0);
    close_task(&h, true);
    open_task(&h);
    cr_expect_eq(cue_task_stream_time(h.task), 1772438400000, "and is committed");
    cr_expect_eq(cue_task_repair_stream_time(h.task, 1772438400000), INT64_MIN, "nothing to do");
    teardown(&h);
}

/* A re-sent event (the same event id at a new position: a producer's retry,
 * a file sent again) is a duplicate: not applied, no trigger, no new id. */
Test(task, an_event_sent_again_under_a_new_position_is_a_duplicate)
{
    harness h;
    setup(&h);
    const char *begin =
        "{\"user_id\":\"a\",\"type\":\"begin\",\"ts\":1000,\"due\":5000,\"event_id\":\"e1\"}";
    const char *tick = "{\"user_id\":\"b\",\"type\":\"x\",\"ts\":6000,\"event_id\":\"e2\"}";
    feed(&h, begin);
    feed(&h, tick); /* fires a's nudge at 5000 */
    feed(&h, begin);
    feed(&h, begin);
    feed(&h, tick);
    const cue_task_stats *s = cue_task_stats_get(h.task);
    cr_expect_eq(s->applied, 2);
    cr_expect_eq(s->duplicates, 3);
    cr_expect_str_eq(h.log.data, "nudge:a@5000;");
    /* The ids outlive a commit and a restart. */
    close_task(&h, true);
    open_task(&h);
    feed(&h, begin);
    cr_expect_eq(cue_task_stats_get(h.task)->duplicates, 1);
    cr_expect_str_eq(h.log.data, "nudge:a@5000;", "no second nudge: %s", h.log.data);
    /* The same id at another time is another event (a client that sends a
     * constant id); without an id, or with the check off, a new position is
     * a new event. */
    feed(&h, "{\"user_id\":\"c\",\"type\":\"x\",\"ts\":7000,\"event_id\":\"undefined\"}");
    feed(&h, "{\"user_id\":\"c\",\"type\":\"x\",\"ts\":7001,\"event_id\":\"undefined\"}");
    cr_expect_eq(cue_task_stats_get(h.task)->applied, 2, "a constant id at two times");
    feed(&h, "{\"user_id\":\"c\",\"type\":\"x\",\"ts\":7000}");
    feed(&h, "{\"user_id\":\"c\",\"type\":\"x\",\"ts\":7000}");
    cr_expect_eq(cue_task_stats_get(h.task)->applied, 4);
    close_task(&h, true);
    h.cfg.event_id_dedup_max = 0;
    open_task(&h);
    feed(&h, tick);
    cr_expect_eq(cue_task_stats_get(h.task)->applied, 1, "dedup off: applied again");
    teardown(&h);
}

/* Ids are kept for events within allowed.lateness.ms of stream time (an
 * older copy is late), at most event.id.dedup.max of them, oldest out. */
Test(task, event_ids_are_kept_within_the_lateness_and_the_bound)
{
    harness h;
    setup(&h);
    h.cfg.event_id_dedup_max = 3;
    close_task(&h, false);
    open_task(&h);
    char line[160];
    for (int i = 1; i <= 4; i++) {
        snprintf(line, sizeof line,
                 "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":%d000,\"event_id\":\"e%d\"}", i, i);
        feed(&h, line);
    }
    /* e1 fell out of the three kept: its copy cannot be told from a new
     * event, and is refused as late for this user; e4..e2 are duplicates. */
    for (int i = 4; i >= 1; i--) {
        snprintf(line, sizeof line,
                 "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":%d000,\"event_id\":\"e%d\"}", i, i);
        feed(&h, line);
    }
    const cue_task_stats *s = cue_task_stats_get(h.task);
    cr_expect_eq(s->applied, 4);
    cr_expect_eq(s->duplicates, 3);
    cr_expect_str_eq(h.log.data, "dead:late@7;");
    /* Before the dropped ids' time: unsure, refused; after: new. */
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":500,\"event_id\":\"e7\"}");
    cr_expect_str_eq(h.log.data, "dead:late@7;dead:late@8;");
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":1500,\"event_id\":\"e8\"}");
    cr_expect_eq(s->applied, 5, "after the floor: new");
    /* Past the lateness, a copy is late, and its id is no longer kept. */
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":7200000,\"event_id\":\"e9\"}");
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":4000,\"event_id\":\"e4\"}");
    cr_expect_str_eq(h.log.data, "dead:late@7;dead:late@8;dead:late@11;");
    cr_expect_eq(s->records, s->applied + s->duplicates + s->dead_letters,
                 "every record counted once");
    teardown(&h);
}

/* A rollback long after a partition opened does not pull its stream time
 * back to the repair limit of the open: only a repair not yet committed is
 * made again. */
Test(task, a_rollback_keeps_an_honest_stream_time)
{
    harness h;
    setup(&h);
    cr_expect_eq(cue_task_repair_stream_time(h.task, 39600000), INT64_MIN, "nothing to repair");
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":54000000}");
    cue_err err = {0};
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    feed(&h, "{\"user_id\":\"a\",\"type\":\"x\",\"ts\":54060000}");
    cr_assert(cue_task_rollback(h.task, &err) == 0, "%s", err.msg);
    cr_expect_eq(cue_task_stream_time(h.task), 54000000);
    feed(&h, "{\"user_id\":\"b\",\"type\":\"x\",\"ts\":43200000}");
    cr_expect_str_eq(h.log.data, "dead:late@1;", "3 h behind stream time is late");
    teardown(&h);
}

/* The nudge, but a `move` event arms its timer again at the event's due
 * and keeps its note (which makes the state larger). */
static const char move_machine[] =
    "{\"name\":\"n\",\"version\":1,\"start\":{\"event\":\"begin\",\"do\":[{\"start_timer\":"
    "\"t\",\"at\":{\"event\":\"/due\"}}]},\"initial\":\"w\",\"final\":[\"done\"],\"states\":{"
    "\"w\":{\"on\":[{\"event\":\"move\",\"do\":[{\"set\":\"note\",\"from\":{\"event\":"
    "\"/note\"}},{\"start_timer\":\"t\",\"at\":{\"event\":\"/"
    "due\"}}]},{\"timer\":\"t\",\"do\":[{\"emit\":\"nudge\"}],\"goto\":\"done\"}]},"
    "\"done\":{}}}";

static void move_to(harness *h, const char *user, long long ts, long long due)
{
    char line[256];
    snprintf(line, sizeof line,
             "{\"user_id\":\"%s\",\"type\":\"move\",\"ts\":%lld,\"due\":%lld,\"note\":"
             "\"moved, with a note long enough to take the state into a larger size class\"}",
             user, ts, due);
    feed(h, line);
}

static void use_machine(harness *h, const char *text)
{
    close_task(h, false);
    cue_machines_free(h->ms);
    h->ms = compile_text(text);
    open_task(h);
}

/* A user whose earliest timer moves earlier twice in a cycle leaves two
 * superseded index entries behind; the commit writes only the live one, so
 * after a restart (the window read back from the store) nothing stale comes
 * up, and the timer fires once, at its last time. */
Test(task, only_the_live_timer_index_entry_is_written)
{
    harness h;
    setup(&h);
    use_machine(&h, move_machine);
    begin(&h, "a", 0, 1000);
    move_to(&h, "a", 1, 500);
    move_to(&h, "a", 2, 200);
    close_task(&h, true);
    open_task(&h);
    cue_err err = {0};
    cr_assert(cue_task_advance(h.task, 5000, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(h.log.data, "nudge:a@200;");
    const cue_task_stats *s = cue_task_stats_get(h.task);
    cr_expect_eq(s->timer_checks, 1, "stale index entries came up: %llu",
                 (unsigned long long)s->timer_checks);
    teardown(&h);
}

/* Users whose timers move within a cycle keep one pending index entry each,
 * moved in place: the superseded ones are counted and never written, two
 * users' moves interleaved never take one's entry for the other's, and an
 * entry that came up before the commit is not written either. After a
 * restart each timer fires once, at its last time, and nothing stale comes
 * up. */
Test(task, each_user_has_one_pending_index_entry_moved_in_place)
{
    harness h;
    setup(&h);
    use_machine(&h, move_machine);
    begin(&h, "a", 0, 100000);
    begin(&h, "b", 0, 100000);
    begin(&h, "c", 0, 150);
    for (int i = 1; i <= 5; i++) {
        move_to(&h, "a", i, 100000 - i * 1000);
        move_to(&h, "b", i, 100000 - i * 1500);
    }
    move_to(&h, "a", 200, 90000); /* time passes c's timer */
    cr_assert_str_eq(h.log.data, "nudge:c@150;");
    const cue_task_stats *s = cue_task_stats_get(h.task);
    uint64_t writes = s->timer_writes, dropped = s->timer_dropped;
    cue_err err = {0};
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    s = cue_task_stats_get(h.task);
    cr_expect_eq(s->timer_writes - writes, 2, "a's and b's entries only, written %llu",
                 (unsigned long long)(s->timer_writes - writes));
    /* a: 6 moves, b: 5 (counted as they happen); c's, used up: 1 (at the commit). */
    cr_expect_eq(s->timer_dropped, 12, "%llu", (unsigned long long)s->timer_dropped);
    cr_expect_eq(dropped, 11);
    close_task(&h, false);
    open_task(&h);
    cr_assert(cue_task_advance(h.task, 200000, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(h.log.data, "nudge:c@150;nudge:a@90000;nudge:b@92500;");
    cr_expect_eq(cue_task_stats_get(h.task)->timer_checks, 2, "stale index entries came up: %llu",
                 (unsigned long long)cue_task_stats_get(h.task)->timer_checks);
    teardown(&h);
}

/* A nudge that, when it fires, arms a second one an hour later and makes
 * the state several times larger (three long notes). */
#define BIG                                                                                        \
    "a note of a hundred bytes, to make the state larger: "                                        \
    "........................................"
static const char chain_machine[] =
    "{\"name\":\"n\",\"version\":1,\"start\":{\"event\":\"begin\",\"do\":[{\"start_timer\":"
    "\"t\",\"at\":{\"event\":\"/due\"}}]},\"initial\":\"w\",\"final\":[\"done\"],\"states\":{"
    "\"w\":{\"on\":[{\"timer\":\"t\",\"do\":[{\"emit\":\"nudge\"},{\"start_timer\":\"u\","
    "\"after\":\"1h\"},{\"set\":\"a\",\"from\":\"" BIG "\"},{\"set\":\"b\",\"from\":\"" BIG
    "\"},{\"set\":\"c\",\"from\":\"" BIG "\"},{\"set\":\"d\",\"from\":\"" BIG
    "\"}],\"goto\":\"w2\"}]},\"w2\":{\"on\":[{\"timer\":\"u\",\"do\":[{\"emit\":"
    "\"again\"}],\"goto\":\"done\"}]},\"done\":{}}}";

/* Timers firing together fill a small cache within one step, so it commits
 * while a user is being saved: that user's new index entry is live although
 * the cache still holds its older state, and must reach the store, or its
 * second timer is lost after a restart. */
Test(task, a_commit_while_saving_a_user_keeps_its_new_index_entry)
{
    harness h;
    setup(&h);
    use_machine(&h, chain_machine);
    close_task(&h, false);
    h.cfg.cache_max_bytes = CUE_CACHE_BYTES_MIN;
    open_task(&h);
    /* Few enough that their states stay dirty in the cache until they fire
     * (under half of it), many enough that they outgrow it when they do. */
    enum { USERS = 2400 };
    for (int i = 0; i < USERS; i++) {
        char user[16];
        snprintf(user, sizeof user, "user-%05d", i);
        begin(&h, user, i, 100000);
    }
    cue_err err = {0};
    cr_assert_eq(cue_task_stats_get(h.task)->commits, 0);
    size_t commits = cue_task_stats_get(h.task)->commits;
    cr_assert(cue_task_advance(h.task, 100000, &err) == 0, "%s", err.msg);
    cr_assert_gt(cue_task_stats_get(h.task)->commits, commits, "no commit while firing");
    cr_assert_eq(h.triggers, USERS);
    close_task(&h, true);
    open_task(&h);
    cr_assert(cue_task_advance(h.task, 100000 + 3600000, &err) == 0, "%s", err.msg);
    cr_assert_eq(h.triggers, 2 * USERS, "%zu of %d second timers fired after the restart",
                 h.triggers - USERS, USERS);
    teardown(&h);
}

/* The task again, with state TTL (100 ms) and `sink`, on a store of its own. */
static void ttl_task(harness *h, const cue_task_sink *sink)
{
    close_task(h, false);
    h->cfg.state_ttl_ms = 100;
    cue_err err = {0};
    cr_assert(cue_store_open(&h->store, h->dir, &(cue_store_opts){0}, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_new(&h->task, &h->cfg, h->ms, h->store, 0, sink, &err) == 0, "%s", err.msg);
}

/* State TTL through the task: the user's timer index entry is its expiry
 * once nothing is pending, so the user goes when stream time passes it (no
 * scan): its record leaves the store, the changelog gets its tombstone, and
 * the user's next event starts afresh. */
Test(task, state_ttl_deletes_through_the_timer_index_with_a_tombstone)
{
    harness h;
    setup(&h);
    order_log ol;
    cue_task_sink sink = logged_sink(&ol, true);
    ttl_task(&h, &sink);
    cue_err err = {0};
    begin(&h, "a", 0, 50); /* its timer keeps it until 50, then 0 + 100 */
    begin(&h, "b", 60, 70);
    cr_assert(cue_task_advance(h.task, 99, &err) == 0);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    cr_assert_eq(cue_task_stats_get(h.task)->expired_users, 0);
    cue_buf_reset(&ol.log);
    cr_assert(cue_task_advance(h.task, 100, &err) == 0);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    cr_assert_eq(cue_task_stats_get(h.task)->expired_users, 1);
    cr_assert_str_eq(ol.log.data, "F;X;P;F;", "a's tombstone, then the position");
    cue_buf state;
    cue_buf_init(&state, 256);
    cr_assert_eq(cue_store_user_get(h.store, 0, "a", 1, &state, &err), CUE_ENOTFOUND);
    cr_assert_eq(cue_store_user_get(h.store, 0, "b", 1, &state, &err), 0, "b goes at 160");
    /* Back after expiring: a new user, whose journey starts again. */
    begin(&h, "a", 150, 155);
    cr_assert(cue_task_advance(h.task, 156, &err) == 0);
    cr_assert_eq(cue_task_stats_get(h.task)->engine.starts, 3);
    cr_assert(cue_task_advance(h.task, 1000, &err) == 0);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    cr_assert_eq(cue_task_stats_get(h.task)->expired_users, 3);
    cr_assert_eq(cue_store_user_get(h.store, 0, "b", 1, &state, &err), CUE_ENOTFOUND);
    cue_buf_deinit(&state);
    cue_buf_deinit(&ol.log);
    teardown(&h);
}

/* A journey that ends by its state_ttl (30 minutes idle) and emits on
 * every `ping`; quiet hours from 21:00 to 08:00 UTC hold what it emits at
 * night. */
static const char ping_machine[] =
    "{\"name\":\"p\",\"version\":1,\"state_ttl\":\"30m\",\"start\":{\"event\":\"begin\"},"
    "\"initial\":\"open\",\"states\":{\"open\":{\"on\":[{\"event\":\"ping\",\"do\":[{"
    "\"emit\":\"pinged\"}]}]}}}";
static const char quiet_policy[] = "{\"version\":1,\"defaults\":{\"channels\":[\"push\"],"
                                   "\"max_age\":\"3d\"},\"quiet_hours\":{\"start\":\"21:00\","
                                   "\"end\":\"08:00\"}}";

/* The user's journey goes (its state_ttl) while the trigger it made waits
 * for the night to end: the user stays for that trigger, and then goes
 * with it, rather than staying for ever with nothing left. */
Test(task, a_user_whose_journeys_went_while_a_trigger_waited_goes_when_it_is_let_out)
{
    harness h;
    memset(&h, 0, sizeof h);
    temp_dir(h.dir);
    cue_config_defaults(&h.cfg);
    h.ms = compile_text(ping_machine);
    cue_buf_init(&h.log, 1024);
    open_task(&h);
    cue_err err = {0};
    cue_policy *p = NULL;
    cr_assert_eq(
        cue_policy_load_text(&p, "p.json", quiet_policy, sizeof quiet_policy - 1, h.ms, &err), 0,
        "%s", err.msg);
    cr_assert_eq(cue_task_set_policy(h.task, p, &err), 0, "%s", err.msg);
    int64_t night = 1781125200000; /* 2026-06-10T21:00:00Z */
    char line[160];
    snprintf(line, sizeof line, "{\"user_id\":\"u1\",\"type\":\"begin\",\"ts\":%lld}",
             (long long)night);
    feed(&h, line);
    snprintf(line, sizeof line, "{\"user_id\":\"u1\",\"type\":\"ping\",\"ts\":%lld}",
             (long long)(night + 600000));
    feed(&h, line);
    cr_assert_eq(h.triggers, 0, "held by the quiet hours");
    /* Past the journey's end (21:40), still night: the user stays. */
    cr_assert(cue_task_advance(h.task, night + 3600000, &err) == 0, "%s", err.msg);
    const cue_task_stats *st = cue_task_stats_get(h.task);
    cr_assert_eq(st->engine.instances_expired, 1);
    cr_assert_eq(st->expired_users, 0, "its trigger still waits");
    /* 08:00: the trigger goes out, and the user with it. */
    cr_assert(cue_task_advance(h.task, night + 12 * 3600000, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    cr_assert_eq(h.triggers, 1, "%s", h.log.data);
    cr_assert_eq(st->expired_users, 1);
    cue_buf state;
    cue_buf_init(&state, 256);
    cr_assert_eq(cue_store_user_get(h.store, 0, "u1", 2, &state, &err), CUE_ENOTFOUND);
    cue_buf_deinit(&state);
    teardown(&h);
    cue_policy_free(p);
}

/* Reopens the task over the same store with state TTL `ttl_ms` (0: off);
 * returns how many users the opening indexed for it. */
static uint64_t reopen_ttl(harness *h, int64_t ttl_ms)
{
    close_task(h, true);
    h->cfg.state_ttl_ms = ttl_ms;
    open_task(h);
    return cue_task_stats_get(h->task)->ttl_indexed_users;
}

/* A user stored without a timer index entry (as a run without state TTL
 * writes one once its journeys have nothing pending), put straight into the
 * store or through a changelog restore. */
static void put_unindexed(harness *h, const char *id, bool restore)
{
    cue_user *u = malloc(sizeof *u);
    cr_assert(u != NULL);
    cue_user_init(u, id, strlen(id));
    u->last_event_ms = 5;
    cue_buf rec;
    cue_buf_init(&rec, 256);
    cr_assert_eq(cue_codec_encode(u, h->ms, &rec), 0);
    cue_err err = {0};
    if (restore) {
        static cue_restore r;
        cue_restore_init(&r, 0, NULL, false);
        cr_assert_eq(cue_restore_apply(&r, h->store, id, strlen(id), rec.data, rec.len, &err), 0);
        cue_restore_deinit(&r);
    } else {
        cr_assert_eq(cue_store_batch_user_put(h->store, 0, id, strlen(id), rec.data, rec.len), 0);
    }
    cr_assert_eq(cue_store_batch_commit(h->store, false, &err), 0, "%s", err.msg);
    cue_buf_deinit(&rec);
    free(u);
}

/* The opening pass that indexes users stored before state TTL was set reads
 * every user: it runs once per settings, not at every opening. A run
 * without state TTL, or a restore that brings a user without an entry,
 * makes the next opening with it look again. */
Test(task, the_state_ttl_pass_runs_once_until_users_without_an_entry_may_have_come)
{
    harness h;
    setup(&h);
    cue_err err = {0};
    begin(&h, "a", 0, 10); /* nudged at 10 and done: nothing pending, no entry */
    cr_assert(cue_task_advance(h.task, 20, &err) == 0, "%s", err.msg);
    cr_assert_eq(reopen_ttl(&h, 1000), 1, "a, stored before state TTL was set");
    cr_assert_eq(reopen_ttl(&h, 1000), 0);
    put_unindexed(&h, "b", false);
    cr_assert_eq(reopen_ttl(&h, 2000), 0, "the same settings (a length is not one): not read");
    cr_assert_eq(reopen_ttl(&h, 0), 0, "without state TTL");
    cr_assert_eq(reopen_ttl(&h, 1000), 1, "b: a run without state TTL may have stored it");
    cr_assert_eq(reopen_ttl(&h, 1000), 0);
    put_unindexed(&h, "c", true);
    cr_assert_eq(reopen_ttl(&h, 1000), 1, "c, restored from the changelog without an entry");
    cr_assert_eq(reopen_ttl(&h, 1000), 0);
    teardown(&h);
}

static void on_gated_write(int rc, const cue_err *err, double seconds, void *ctx)
{
    (void)err;
    (void)seconds;
    *(int *)ctx = rc == 0 ? 1 : -1;
}

static int opened;

static int open_gate(void *ctx)
{
    (void)ctx;
    opened++;
    return 0;
}

/* A user whose state expired, its deletion in a batch handed over and not
 * yet written (waiting at the store's gate, as a sealed cycle's does), left
 * the cache with the flush: an event for it then waits for that batch
 * rather than reading the record the store still holds, and starts afresh. */
Test(task, a_deletion_not_yet_written_is_not_read_around)
{
    harness h;
    setup(&h);
    order_log ol = {.now_ms = 1700000000000};
    cue_buf_init(&ol.log, 256);
    cue_task_sink sink = {.trigger = ol_trigger, .dead_letter = ol_dead, .ctx = &ol};
    ttl_task(&h, &sink);
    cue_err err = {0};
    begin(&h, "a", 0, 50);
    cr_assert(cue_task_advance(h.task, 99, &err) == 0);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    uint64_t starts = cue_task_stats_get(h.task)->engine.starts;
    cr_assert(cue_task_advance(h.task, 100, &err) == 0);
    cr_assert_eq(cue_task_stats_get(h.task)->expired_users, 1);

    opened = 0;
    int written = 0;
    cue_store_set_gate_opener(h.store, open_gate, NULL);
    cue_store_gate_close(h.store);
    cr_assert(cue_task_commit_finish_async(h.task, on_gated_write, &written, &err) == 0, "%s",
              err.msg);
    cr_assert(cue_store_gate_waiting(h.store), "the batch went past the gate");
    cr_assert_eq(written, 0);

    begin(&h, "a", 150, 155); /* a miss: the cache dropped a's tombstone with the flush */
    cr_expect_eq(opened, 1, "the miss read around the batch that deletes a");
    cue_store_reap(h.store);
    cr_expect_eq(written, 1, "the batch was not written before the read");
    cr_expect_eq(cue_task_stats_get(h.task)->engine.starts, starts + 1,
                 "a came back with its expired state instead of afresh");
    cue_buf_deinit(&ol.log);
    teardown(&h);
}

/* The cycle's records made ahead of the commit (while a cycle waits for its
 * triggers' acknowledgements) are what the commit writes, unless a step
 * changed a user after them: then the store gets the user as it is, not as
 * it was when they were made. */
Test(task, records_made_ahead_of_a_commit_give_way_to_a_later_step)
{
    harness h;
    setup(&h);
    begin(&h, "a", 0, 500);
    begin(&h, "b", 1, 600);
    cue_err err = {0};
    cue_buf want, got;
    cue_buf_init(&want, 1024);
    cue_buf_init(&got, 1024);
    /* 0: nothing after them; 1: b changes after them; 2: a and b do. */
    for (int later_step = 0; later_step < 3; later_step++) {
        if (later_step == 0) begin(&h, "c", 2, 800);
        cr_assert(cue_task_commit_encode(h.task, &err) == 0, "%s", err.msg);
        if (later_step == 2) feed(&h, "{\"user_id\":\"a\",\"type\":\"other\",\"ts\":5}");
        if (later_step > 0) begin(&h, "b", 6, 700 + later_step);
        cue_buf_reset(&want);
        states_of(&h, &want);
        close_task(&h, true);
        open_task(&h);
        cue_buf_reset(&got);
        states_of(&h, &got);
        cr_assert_str_eq(got.data, want.data, "case %d: the store differs from the cache",
                         later_step);
    }
    cue_buf_deinit(&want);
    cue_buf_deinit(&got);
    teardown(&h);
}
