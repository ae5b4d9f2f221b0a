/* The record collector (src/runtime/collector.c), the tasks' sink onto the
 * producer, on the mock cluster: a trigger is handed to the producer in the
 * call that made it; a dead letter carries its record's context (topic,
 * partition, offset, key, timestamp) in the call and keeps the original key,
 * value and timestamp; the flush acknowledges everything or fails, and a
 * run that is failing flushes nothing. */
#include "runtime_harness.h"

Test(runtime_collector, a_trigger_goes_to_the_producer_in_the_call, .timeout = 90)
{
    harness h;
    harness_init(&h, 1);
    harness_send(&h, 0, "a", 3, 1000);
    harness_open(&h);
    harness_consumed(&h, 3);
    /* Counted, and in flight or acknowledged, before any commit. */
    cr_expect_eq(h.res.triggers, 3);
    cr_expect_eq(h.res.by_trigger[0][0], 3);
    const cue_kafka_stats *st = cue_kafka_stats_get(h.r->k);
    cr_expect_eq(st->produced, 3, "produced %llu", (unsigned long long)st->produced);
    cue_err err = {0};
    cr_expect_eq(h.r->sink.flush(h.r->sink.ctx, &err), 0, "%s", err.msg);
    cr_expect_eq(cue_kafka_in_flight(h.r->k), 0);
    topic_read t;
    harness_read(&h, "triggers", &t);
    cr_assert_eq(t.n, 3);
    cr_expect_str_eq(t.recs[0].key, "a0");
    cr_expect(strstr(t.recs[0].value, "\"hello\"") != NULL, "%s", t.recs[0].value);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

Test(runtime_collector, a_dead_letter_carries_its_records_context, .timeout = 90)
{
    harness h;
    harness_init(&h, 1);
    harness_open(&h);
    cue_dead_letter dl = {.reason = CUE_REASON_NOT_JSON,
                          .message = "not JSON at 1",
                          .raw = "{oops",
                          .raw_len = 5,
                          .partition = 0,
                          .offset = 42,
                          .key = "user-7",
                          .key_len = 6,
                          .timestamp_ms = HARNESS_T0 + 5};
    h.r->sink.dead_letter(&dl, h.r->sink.ctx);
    cr_expect_eq(h.res.dead_letters, 1);
    cr_expect_eq(h.res.dead_by_reason[CUE_REASON_NOT_JSON], 1);
    cue_err err = {0};
    cr_expect_eq(h.r->sink.flush(h.r->sink.ctx, &err), 0, "%s", err.msg);
    topic_read t;
    harness_read(&h, "dead-letters", &t);
    cr_assert_eq(t.n, 1);
    cr_expect_str_eq(t.recs[0].key, "user-7");
    cr_expect_str_eq(t.recs[0].value, "{oops");
    cr_expect_eq(t.recs[0].timestamp_ms, HARNESS_T0 + 5, "timestamp %lld",
                 (long long)t.recs[0].timestamp_ms);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* A record from the input that cannot be read becomes a dead letter with
 * the input record's own key, value and timestamp. */
Test(runtime_collector, a_bad_record_is_dead_lettered_as_it_came, .timeout = 90)
{
    harness h;
    harness_init(&h, 1);
    cue_err err = {0};
    cr_assert_eq(cue_kafka_loader_send(h.loader, "events", 0, "u1", 2, "not json", 8, &err), 0);
    cr_assert_eq(cue_kafka_loader_flush(h.loader, 10000, &err), 0, "%s", err.msg);
    harness_open(&h);
    harness_consumed(&h, 1);
    cr_expect_eq(h.res.dead_letters, 1);
    harness_commit(&h);
    topic_read in, dead;
    harness_read(&h, "events", &in);
    harness_read(&h, "dead-letters", &dead);
    cr_assert_eq(in.n, 1);
    cr_assert_eq(dead.n, 1);
    cr_expect_str_eq(dead.recs[0].key, "u1");
    cr_expect_str_eq(dead.recs[0].value, "not json");
    cr_expect_eq(dead.recs[0].timestamp_ms, in.recs[0].timestamp_ms);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* Once the run is failing, a flush (a task's commit) refuses with the
 * run's error instead of acknowledging anything. */
Test(runtime_collector, a_failing_run_flushes_nothing, .timeout = 90)
{
    harness h;
    harness_init(&h, 1);
    harness_open(&h);
    rt_fatal(h.r, CUE_EIO, "delivery failed: test");
    cue_err err = {0};
    cr_expect_eq(h.r->sink.flush(h.r->sink.ctx, &err), CUE_EIO);
    cr_expect_str_eq(err.msg, "delivery failed: test");
    cr_expect_eq(h.n_steps, 0, "a flush acknowledged by a failing run");
    cr_expect_eq(harness_close(&h, &err), CUE_EIO);
}
