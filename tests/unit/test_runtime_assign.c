/* Assignment (src/runtime/assign.c) on the mock cluster: a partition revoked
 * in the middle of a commit cycle is committed whole before it goes and the
 * cycle goes on without it (a cycle that stops intake; a sealed one, whose
 * batches are written first); a lost one is dropped without a commit; a
 * partition the input did not have at start stops the run; records of a
 * partition not owned here are not taken; a partition assigned again
 * resumes where its store ends; an idle input keeps its member in the
 * group past max.poll.interval.ms. The rebalance callbacks are called as
 * librdkafka would call them (through cue_kafka_consume, on the loop). */
#include "runtime_harness.h"

static void two_partitions_consumed(harness *h)
{
    harness_init(h, 2);
    harness_send(h, 0, "a", 5, 1000);
    harness_send(h, 1, "b", 3, 1000);
    harness_open(h);
    harness_consumed(h, 8);
}

Test(runtime_assign, a_revocation_mid_cycle_commits_the_partition_before_it_goes, .timeout = 90)
{
    harness h;
    two_partitions_consumed(&h);
    h.r->no_seal = true; /* a cycle that stops intake, as exactly-once's */
    cue_err err = {0};
    /* Records in flight when the cycle starts: it waits on the loop. */
    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 1 400", &err), 0, "%s", err.msg);
    harness_send(&h, 0, "c", 2, 2000);
    harness_consumed(&h, 10);
    rt_begin_commit(h.r);
    cr_assert_eq(h.r->state, COMMITTING);
    cr_assert_gt(cue_kafka_in_flight(h.r->k), 0);

    int32_t gone = 0;
    rt_on_revoked(&gone, 1, false, h.r);
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked stored:0 group:0", "steps at the revocation: %s", trace);
    cr_expect_null(h.r->parts[0].task, "the revoked partition's task is still open");
    cr_expect_eq(stored_offset(h.r, 0), 7, "partition 0 stored at %lld",
                 (long long)stored_offset(h.r, 0));
    cr_expect_eq(h.r->state, COMMITTING, "the cycle ended with the revocation");

    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 1 0", &err), 0, "%s", err.msg);
    harness_until(&h, cycle_done, 15000, "the cycle to end");
    harness_settle(&h);
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked stored:0 group:0 acked stored:1 group:1",
                     "the cycle after the revocation: %s", trace);
    cr_expect_eq(stored_offset(h.r, 1), 3);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* A partition revoked while a sealed cycle's batches wait for their
 * acknowledgements: they are waited for, the batches written (the revoked
 * partition's and the other's, in order), then the partition is committed
 * with what came after the seal, before it goes. */
Test(runtime_assign, a_revocation_during_a_sealed_cycle_writes_its_batches_first, .timeout = 90)
{
    harness h;
    two_partitions_consumed(&h);
    cue_err err = {0};
    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 1 400", &err), 0, "%s", err.msg);
    harness_send(&h, 0, "c", 2, 2000);
    harness_consumed(&h, 10);
    rt_begin_commit(h.r);
    cr_assert(h.r->sealed, "the cycle was not sealed");
    cr_assert_gt(cue_kafka_in_flight_sealed(h.r->k), 0,
                 "nothing in flight: the test shows nothing");
    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 1 0", &err), 0, "%s", err.msg);
    harness_send(&h, 0, "d", 1, 3000); /* after the seal: in the revocation's commit only */
    harness_consumed(&h, 11);

    int32_t gone = 0;
    rt_on_revoked(&gone, 1, false, h.r);
    char trace[512], writes[512];
    steps_text(&h, trace, sizeof trace);
    /* The sealed batches, then partition 0's own commit, each after an
     * acknowledgement (the gate's may come before the revocation or with
     * its flush: the acknowledgements race the test). */
    size_t n = 0;
    for (const char *t = trace; *t;) {
        size_t len = strcspn(t, " ");
        if (!(len == 5 && strncmp(t, "acked", 5) == 0))
            n += (size_t)snprintf(writes + n, sizeof writes - n, "%s%.*s", n ? " " : "", (int)len,
                                  t);
        t += len + (t[len] == ' ');
    }
    writes[n] = '\0';
    cr_expect(strncmp(trace, "acked", 5) == 0, "steps at the revocation: %s", trace);
    cr_expect_str_eq(writes, "stored:0 group:0 stored:1 group:1 stored:0 group:0",
                     "steps at the revocation: %s", trace);
    cr_expect(strstr(trace, "group:1 acked stored:0") != NULL ||
                  strstr(trace, "acked acked stored:0 group:0 stored:1") != NULL,
              "partition 0's commit without its flush: %s", trace);
    cr_expect_null(h.r->parts[0].task, "the revoked partition's task is still open");
    cr_expect(!h.r->sealed);
    cr_expect_eq(stored_offset(h.r, 0), 8, "partition 0 stored at %lld",
                 (long long)stored_offset(h.r, 0));
    cr_expect_eq(stored_offset(h.r, 1), 3);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

Test(runtime_assign, a_lost_partition_is_dropped_without_a_commit, .timeout = 90)
{
    harness h;
    two_partitions_consumed(&h);
    int32_t gone = 1;
    rt_on_revoked(&gone, 1, true, h.r);
    cr_expect_eq(h.n_steps, 0, "a lost partition was committed");
    cr_expect_null(h.r->parts[1].task);
    cr_expect_eq(stored_offset(h.r, 1), -1, "the lost partition's store moved");
    harness_commit(&h);
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked stored:0 group:0", "%s", trace);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

Test(runtime_assign, a_partition_added_while_running_stops_the_run, .timeout = 90)
{
    harness h;
    two_partitions_consumed(&h);
    int32_t added = 2;
    int64_t start = 0;
    cr_expect_eq(rt_on_assigned(&added, &start, 1, h.r), CUE_ECONFIG);
    cr_expect_eq(h.r->fatal_rc, CUE_ECONFIG);
    cr_expect(strstr(h.r->fatal_err.msg, "partition 2 of events assigned") != NULL, "%s",
              h.r->fatal_err.msg);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), CUE_ECONFIG);
}

Test(runtime_assign, records_of_a_partition_not_owned_are_not_taken, .timeout = 90)
{
    harness h;
    two_partitions_consumed(&h);
    int32_t gone = 1;
    rt_on_revoked(&gone, 1, false, h.r);
    uint64_t consumed = h.res.consumed;
    cue_kafka_msg m = {.topic = "events",
                       .partition = 1,
                       .offset = 3,
                       .timestamp_ms = -1,
                       .value = "{}",
                       .value_len = 2};
    rt_on_message(&m, h.r);
    m.partition = 9;
    rt_on_message(&m, h.r);
    cr_expect_eq(h.res.consumed, consumed);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* Assigned again after a revocation, a partition starts where its store
 * ends, whatever the consumer's position was. */
Test(runtime_assign, assigned_again_it_resumes_where_its_store_ends, .timeout = 90)
{
    harness h;
    two_partitions_consumed(&h);
    int32_t id = 0;
    rt_on_revoked(&id, 1, false, h.r);
    int64_t start = -1;
    cr_expect_eq(rt_on_assigned(&id, &start, 1, h.r), 0);
    cr_expect_eq(start, 5, "start %lld", (long long)start);
    cr_expect_not_null(h.r->parts[0].task);
    cr_expect_eq(h.r->parts[0].position, 5);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* Nothing comes for longer than max.poll.interval.ms: the consumer is
 * polled all the same (librdkafka would take the member out of the group,
 * and its partitions with it). */
Test(runtime_assign, an_idle_input_keeps_its_member_in_the_group, .timeout = 90)
{
    harness h;
    harness_init(&h, 2);
    cue_err err = {0};
    cr_assert(cue_config_set(&h.cfg, "kafka",
                             "{\"consumer\": {\"fetch.wait.max.ms\": 10, \"session.timeout.ms\": "
                             "6000, \"max.poll.interval.ms\": 6000}, \"producer\": "
                             "{\"linger.ms\": 0}}",
                             &err) == 0,
              "%s", err.msg);
    harness_send(&h, 0, "a", 2, 1000);
    harness_open(&h);
    harness_consumed(&h, 2);
    uint64_t rebalances = h.res.rebalances;
    harness_run_for(&h, 9000);
    cr_expect_eq(h.res.rebalances, rebalances, "%llu rebalances while the input was idle",
                 (unsigned long long)(h.res.rebalances - rebalances));
    cr_expect_not_null(h.r->parts[0].task, "partition 0 went while the input was idle");
    harness_send(&h, 0, "b", 1, 2000);
    harness_consumed(&h, 3);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}
