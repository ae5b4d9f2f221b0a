/* The task over a real store: timer order across users, the timer window
 * spilling to RocksDB, duplicates skipped, restarts, lateness, forced commits. */
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

static void feed(harness *h, const char *line)
{
    cue_err err = {0};
    cr_assert(cue_task_process(h->task, line, strlen(line), cue_task_next_offset(h->task), NULL, 0,
                               &err) == 0,
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

Test(task, the_timer_window_spills_to_the_store_and_keeps_order)
{
    harness h;
    setup(&h);
    close_task(&h, false);
    h.cfg.timers_memory_max = 16;
    h.cfg.commit_records = 7;
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
    cue_buf_deinit(&want);
    teardown(&h);
}

Test(task, a_redelivered_record_is_skipped)
{
    harness h;
    setup(&h);
    const char *line = "{\"user_id\":\"a\",\"type\":\"begin\",\"ts\":1,\"due\":10}";
    cue_err err = {0};
    cr_assert(cue_task_process(h.task, line, strlen(line), 5, NULL, 0, &err) == 0);
    cr_assert(cue_task_process(h.task, line, strlen(line), 5, NULL, 0, &err) == 0);
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
    cr_assert(cue_task_process(h.task, line, strlen(line), 3, "b", 1, &err) == 0);
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

Test(task, triggers_are_flushed_before_the_changelog_and_the_changelog_before_the_store)
{
    harness h;
    setup(&h);
    close_task(&h, false);
    order_log ol = {.now_ms = 1700000000000};
    cue_buf_init(&ol.log, 256);
    cue_task_sink sink = {.trigger = ol_trigger,
                          .dead_letter = ol_dead,
                          .changelog = ol_changelog,
                          .changelog_next = ol_next,
                          .flush = ol_flush,
                          .ctx = &ol};
    cue_err err = {0};
    cr_assert(cue_store_open(&h.store, h.dir, &(cue_store_opts){0}, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_new(&h.task, &h.cfg, h.ms, h.store, 0, &sink, &err) == 0, "%s", err.msg);
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
