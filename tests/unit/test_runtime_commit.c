/* The commit cycle (src/runtime/loop.c) on the mock cluster: for each
 * partition its records acknowledged, then one store batch with its state,
 * timers and input offset, then the group's offset; a sealed cycle's batches
 * built at the seal and written only once the records produced before it are
 * acknowledged, while intake goes on (with the changelog, its records
 * produced only after the triggers'); intake stopped while a cycle that is
 * not sealed waits; not while the batches are written (and the group then
 * hears of the offsets the batch holds, not of later ones); and a failed
 * delivery that commits nothing past it. */
#include "runtime_harness.h"

/* Each step checks what must already be true when it is done. */
static void check_step(harness *h, const step_seen *s)
{
    switch (s->step) {
    case RT_STEP_ACKED:
        cr_expect_eq(s->in_flight_sealed, 0, "the cycle's records still in flight");
        break;
    case RT_STEP_STORED:
        cr_expect_eq(s->in_flight_sealed, 0, "partition %d stored with %zu records unacknowledged",
                     (int)s->partition, s->in_flight_sealed);
        cr_expect_eq(s->stored_offset, s->task_offset,
                     "partition %d: the store says %lld, the task %lld", (int)s->partition,
                     (long long)s->stored_offset, (long long)s->task_offset);
        break;
    case RT_STEP_GROUP_COMMITTED:
        /* The group never gets ahead of the store: a restart resumes from
         * the store, and a new owner from the group. */
        cr_expect_eq(s->stored_offset, s->task_offset,
                     "partition %d: group offset %lld committed while the store holds %lld",
                     (int)s->partition, (long long)s->task_offset, (long long)s->stored_offset);
        break;
    }
}

/* The group's committed offset of `p`, waited for (commits at the end of a
 * cycle are asynchronous). */
static int64_t group_offset(harness *h, int32_t p, int64_t want)
{
    int64_t off = -1, end = harness_ms() + 10000;
    char meta[1][CUE_KAFKA_META_MAX];
    while (harness_ms() < end) {
        cue_err err = {0};
        if (cue_kafka_group_committed(h->r->k, 0, &p, 1, &off, meta, 5000, &err) == 0 &&
            off == want)
            break;
        uv_run(&h->r->loop, UV_RUN_NOWAIT);
    }
    return off;
}

Test(runtime_commit, acknowledged_then_stored_then_committed_to_the_group, .timeout = 90)
{
    harness h;
    harness_init(&h, 2);
    harness_send(&h, 0, "a", 5, 1000);
    harness_send(&h, 1, "b", 3, 1000);
    h.on_step = check_step;
    harness_open(&h);
    harness_consumed(&h, 8);
    cr_expect_eq(h.res.triggers, 8);
    harness_commit(&h);

    /* The acknowledgements are waited for once, then each task hands its
     * batch to the store's writer thread; the writes, and the group commits
     * that follow each, come in the order handed over. */
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    const char *want = "acked stored:0 group:0 stored:1 group:1";
    cr_expect_str_eq(trace, want, "the commit cycle's steps:\n  were     %s\n  expected %s", trace,
                     want);
    cr_expect_eq(h.res.commits, 1);
    cr_expect_eq(h.r->write_hist.count, 2, "state batch writes timed: %llu",
                 (unsigned long long)h.r->write_hist.count);
    cr_expect_eq(stored_offset(h.r, 0), 5);
    cr_expect_eq(stored_offset(h.r, 1), 3);
    cr_expect_eq(group_offset(&h, 0, 5), 5);
    cr_expect_eq(group_offset(&h, 1, 3), 3);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* A mock command that must succeed. */
static void mock(harness *h, const char *cmd)
{
    cue_err err = {0};
    cr_assert_eq(cue_kafka_mock_command(h->mock, cmd, &err), 0, "%s: %s", cmd, err.msg);
}

/* One input partition on two brokers: the input's (and the changelog's)
 * leader answers at once, the triggers' leader, broker 2, can be slowed
 * ("rtt 2 ..."), so a sealed cycle's acknowledgements wait while intake
 * goes on. */
static void slow_triggers_init_parts(harness *h, bool changelog, int parts)
{
    harness_init_brokers(h, parts, 2);
    char cmd[64];
    if (changelog) {
        cue_err err = {0};
        cr_assert(cue_kafka_mock_topic_create(h->mock, "unit-changelog", parts, &err) == 0, "%s",
                  err.msg);
        h->cfg.changelog = true;
        for (int p = 0; p < parts; p++) {
            snprintf(cmd, sizeof cmd, "leader unit-changelog %d 1", p);
            mock(h, cmd);
        }
    }
    for (int p = 0; p < parts; p++) {
        snprintf(cmd, sizeof cmd, "leader events %d 1", p);
        mock(h, cmd);
    }
    mock(h, "leader triggers 0 2");
}

static void slow_triggers_init(harness *h, bool changelog)
{
    slow_triggers_init_parts(h, changelog, 1);
}

/* What the sealed-cycle tests start from: a0..a3 taken, the triggers'
 * leader slowed by `rtt` ("rtt 2 <ms>"), then b0..b2 taken. */
static void slowed_after_four(harness *h, const char *rtt)
{
    harness_send(h, 0, "a", 4, 1000);
    harness_open(h);
    harness_consumed(h, 4);
    mock(h, rtt);
    harness_send(h, 0, "b", 3, 2000);
    harness_consumed(h, 7);
}

static bool unsealed(harness *h)
{
    return !h->r->sealed;
}

/* The sealed cycle of the test below: its own records acknowledged at each
 * step (the next cycle's may not be), and the seal's offset stored. */
static void check_sealed_step(harness *h, const step_seen *s)
{
    (void)h;
    cr_expect_eq(s->in_flight_sealed, 0, "step %s with %zu of the cycle's records in flight",
                 step_name(s->step), s->in_flight_sealed);
    if (s->step != RT_STEP_ACKED)
        cr_expect_eq(s->stored_offset, 7, "step %s: the store holds %lld, not the seal's 7",
                     step_name(s->step), (long long)s->stored_offset);
}

/* A sealed cycle: its batch is built at the seal and waits at the store's
 * gate while the triggers produced before the seal are acknowledged (held
 * up: the triggers' leader answers slowly); records that come meanwhile are
 * taken and processed; then the batch, with the seal's offset and not a
 * later one, is stored and the group hears of it. */
/* The partitions stored by each sealed cycle (the stored steps after one
 * "acked"), as a bit set, and how many times each partition was stored. */
static size_t sealed_cycles(const harness *h, uint32_t *cycles, size_t cap, int *stores)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n_steps; i++) {
        const step_seen *s = &h->steps[i];
        if (s->step == RT_STEP_ACKED) {
            cr_assert(n < cap);
            cycles[n++] = 0;
        } else if (s->step == RT_STEP_STORED && n > 0) {
            cycles[n - 1] |= 1u << s->partition;
            stores[s->partition]++;
        }
    }
    return n;
}

/* Sealed cycles from the commit timer take the partitions a quarter at a
 * time (number modulo 4), in turn, each partition once an interval; a
 * quarter with no partition is skipped, not sealed empty nor replaced by
 * the next one. */
Test(runtime_commit, sealed_cycles_take_the_partitions_a_quarter_at_a_time, .timeout = 90)
{
    for (int parts = 6; parts >= 2; parts -= 4) {
        harness h;
        harness_init(&h, parts);
        h.cfg.commit_interval_ms = 400; /* a slice every 100 ms */
        for (int32_t p = 0; p < parts; p++)
            harness_send(&h, p, p % 2 ? "b" : "a", 2, 1000);
        harness_open(&h);
        harness_consumed(&h, (uint64_t)(2 * parts));
        h.n_steps = 0; /* from here: cycles of the timer only */
        int64_t t0 = harness_ms();
        harness_run_for(&h, 1700);
        harness_until(&h, cycle_done, 15000, "the last sealed cycle");
        harness_settle(&h);
        double rounds = (double)(harness_ms() - t0) / 400.0;
        uint32_t cycles[64];
        int stores[8] = {0};
        size_t n = sealed_cycles(&h, cycles, 64, stores);
        cr_assert_gt(n, 3, "%d partitions: %zu sealed cycles in %.1f rounds", parts, n, rounds);
        int last = -1;
        for (size_t c = 0; c < n; c++) {
            cr_assert_neq(cycles[c], 0, "%d partitions: cycle %zu stored nothing", parts, c);
            int slice = __builtin_ctz(cycles[c]) % 4;
            for (int32_t p = 0; p < parts; p++)
                cr_expect_eq((cycles[c] >> p & 1) != 0, p % 4 == slice,
                             "%d partitions: cycle %zu (slice %d) and partition %d", parts, c,
                             slice, (int)p);
            if (last >= 0)
                cr_expect_eq(slice, (last + 1) % (parts < 4 ? parts : 4),
                             "%d partitions: slice %d after %d", parts, slice, last);
            last = slice;
        }
        /* Once an interval each: about `rounds` times, not four times that. */
        for (int32_t p = 0; p < parts; p++)
            cr_expect(stores[p] >= 2 && stores[p] <= rounds + 2,
                      "%d partitions: partition %d stored %d times in %.1f rounds", parts, (int)p,
                      stores[p], rounds);
        cue_err err = {0};
        cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
    }
}

Test(runtime_commit, a_sealed_cycle_waits_for_its_acknowledgements_while_intake_goes_on,
     .timeout = 90)
{
    harness h;
    slow_triggers_init(&h, false);
    cue_err err = {0};
    h.on_step = check_sealed_step;
    slowed_after_four(&h, "rtt 2 3000");
    rt_begin_commit(h.r);
    cr_expect_eq(h.r->state, RUNNING, "a sealed cycle stopped intake");
    cr_assert(h.r->sealed, "the cycle was not sealed");
    cr_assert_gt(cue_kafka_in_flight_sealed(h.r->k), 0,
                 "nothing in flight: the test shows nothing");
    cr_expect_eq(h.res.commits, 1);

    harness_send(&h, 0, "c", 2, 3000); /* records that come during the cycle */
    harness_consumed(&h, 9);
    cr_expect(h.r->sealed, "the acknowledgements came before the records: the test shows nothing");
    cr_expect_eq(h.res.triggers, 9, "records taken during the cycle were not processed");
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "", "a step before the cycle's records were acknowledged: %s", trace);

    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 2 0", &err), 0, "%s", err.msg);
    harness_until(&h, unsealed, 15000, "the sealed cycle's acknowledgements");
    harness_settle(&h);
    h.on_step = NULL;
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked stored:0 group:0", "%s", trace);
    cr_expect_eq(stored_offset(h.r, 0), 7, "the store holds %lld, not the seal's 7",
                 (long long)stored_offset(h.r, 0));
    cr_expect_eq(group_offset(&h, 0, 7), 7, "the group got other than the seal's offset");
    /* The batch holds the users as they were at the seal (their records made
     * on the store's writer thread), and none of those that came after it. */
    cr_expect_eq(stored_user_offset(h.r, 0, "a0"), 0);
    cr_expect_eq(stored_user_offset(h.r, 0, "b2"), 6, "b2 is stored as %lld",
                 (long long)stored_user_offset(h.r, 0, "b2"));
    cr_expect_eq(stored_user_offset(h.r, 0, "c0"), -1, "a user of the next cycle is stored");

    harness_commit(&h);
    cr_expect_eq(stored_offset(h.r, 0), 9);
    cr_expect_eq(stored_user_offset(h.r, 0, "c1"), 8);
    cr_expect_eq(group_offset(&h, 0, 9), 9);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* The sealed cycle with the changelog, below: what the producer had sent at
 * the seal, and what it had sent at each acknowledgement step. */
static uint64_t produced_at_seal;
static uint64_t produced_at_acked[4];
static size_t n_acked;

static void note_acked(harness *h, const step_seen *s)
{
    if (s->step == RT_STEP_ACKED && n_acked < 4)
        produced_at_acked[n_acked++] = cue_kafka_stats_get(h->r->k)->produced;
}

/* With the changelog a cycle is sealed too: its changelog records are made
 * at the seal but produced only once the triggers before it are
 * acknowledged (promise 3 across instances: a restored user never has an
 * event applied whose trigger was lost), and the batch is written once those
 * records are acknowledged in turn; intake goes on throughout. */
Test(runtime_commit, a_sealed_cycle_with_the_changelog_produces_it_after_the_triggers,
     .timeout = 90)
{
    harness h;
    slow_triggers_init(&h, true);
    cue_err err = {0};
    slowed_after_four(&h, "rtt 2 2000");
    n_acked = 0;
    h.on_step = note_acked;
    produced_at_seal = cue_kafka_stats_get(h.r->k)->produced;
    rt_begin_commit(h.r);
    cr_assert(h.r->sealed && h.r->log_held, "the cycle was not sealed with its changelog held");
    cr_assert_gt(cue_kafka_in_flight_sealed(h.r->k), 0,
                 "nothing in flight: the test shows nothing");
    cr_expect_eq(cue_kafka_stats_get(h.r->k)->produced, produced_at_seal,
                 "changelog records produced at the seal, before the triggers' acknowledgements");
    harness_send(&h, 0, "c", 2, 3000);
    harness_consumed(&h, 9); /* intake goes on */
    cr_expect(h.r->sealed, "the acknowledgements came before the records: the test shows nothing");

    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 2 0", &err), 0, "%s", err.msg);
    harness_until(&h, unsealed, 15000, "the sealed cycle's acknowledgements");
    harness_settle(&h);
    h.on_step = NULL;
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked acked stored:0 group:0", "%s", trace);
    cr_assert_eq(n_acked, 2);
    /* The first acknowledgement (the triggers') came before any changelog
     * record of the cycle was produced; c's two triggers may have been. */
    cr_expect_leq(produced_at_acked[0], produced_at_seal + 2,
                  "changelog records went out before the triggers were acknowledged");
    cr_expect_geq(produced_at_acked[1], produced_at_seal + 8,
                  "the cycle's changelog (7 users and its position) was not produced");
    cr_expect_eq(stored_offset(h.r, 0), 7, "the store holds %lld, not the seal's 7",
                 (long long)stored_offset(h.r, 0));
    harness_commit(&h);
    cr_expect_eq(stored_offset(h.r, 0), 9);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* A partition lost while its sealed cycle's changelog records are still
 * held (the triggers' acknowledgements are slow): the cycle does not commit.
 * Its batch never reaches the store and its records never reach the
 * changelog, so the local copy stays where the changelog is: written, the
 * copy would be a cycle ahead of any restore from the changelog for good. */
/* A cycle sealed while the triggers' acknowledgements are slow, so that
 * its changelog records are held. */
static void seal_held(harness *h)
{
    rt_begin_commit(h->r);
    cr_assert(h->r->sealed && h->r->log_held, "the cycle was not sealed with its changelog held");
    cr_assert_gt(cue_kafka_in_flight_sealed(h->r->k), 0,
                 "nothing in flight: the test shows nothing");
}

/* Partition 0 lost, then the acknowledgements let through and whatever
 * the store was handed written. */
static void lose_then_ack(harness *h)
{
    int32_t gone = 0;
    rt_on_revoked(&gone, 1, true, h->r);
    cr_assert_null(h->r->parts[0].task, "the lost partition's task is still open");
    mock(h, "rtt 2 0");
    harness_until(h, unsealed, 15000, "the sealed cycle's acknowledgements");
    harness_settle(h);
}

Test(runtime_commit, a_partition_lost_before_its_changelog_goes_out_stores_nothing_of_the_cycle,
     .timeout = 90)
{
    harness h;
    slow_triggers_init(&h, true);
    cue_err err = {0};
    slowed_after_four(&h, "rtt 2 2000");
    int64_t before = stored_offset(h.r, 0);
    seal_held(&h);
    uint64_t produced = cue_kafka_stats_get(h.r->k)->produced;
    lose_then_ack(&h);
    cr_expect_eq(stored_offset(h.r, 0), before,
                 "the lost partition's sealed batch was stored (offset %lld, before %lld)",
                 (long long)stored_offset(h.r, 0), (long long)before);
    cr_expect_eq(cue_kafka_stats_get(h.r->k)->produced, produced,
                 "the lost cycle's changelog records were produced");
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    cr_expect_null(strstr(trace, "stored:0"), "the lost partition was stored: %s", trace);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* What a restore or a standby puts into the store's batch (here: a user of
 * partition 1, put as they put theirs) when a seal comes is handed over on
 * its own: losing partition 0 takes its sealed batch out from behind the
 * gate, and must take nothing else with it. In partition 0's batch, the
 * restored user was gone with it. */
Test(runtime_commit, a_lost_partitions_batch_takes_nothing_a_restore_had_put_in, .timeout = 90)
{
    harness h;
    slow_triggers_init(&h, true);
    cue_err err = {0};
    slowed_after_four(&h, "rtt 2 2000");
    static const char restored[] = "restored state";
    cr_assert_eq(cue_store_batch_user_put(h.r->store, 1, "r0", 2, restored, sizeof restored), 0);
    seal_held(&h);
    lose_then_ack(&h);
    cue_buf val;
    cue_buf_init(&val, 64);
    int rc = cue_store_user_get(h.r->store, 1, "r0", 2, &val, &err);
    cr_expect_eq(rc, 0, "the restored user was not stored (rc %d) %s", rc, err.msg);
    cr_expect(rc != 0 || (val.len == sizeof restored && memcmp(val.data, restored, val.len) == 0),
              "the restored user's state is not what was put");
    cue_buf_deinit(&val);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

static void written_nothing(int rc, const cue_err *err, double seconds, void *ctx)
{
    (void)rc, (void)err, (void)seconds, (void)ctx;
}

/* A seal that meets a full write queue settles it in the middle: the
 * records produced so far are acknowledged, the changelogs held so far
 * released, and the batches queued so far written. The tasks sealed after
 * that hold their changelogs again, so their batches wait at the gate
 * again too: one that did not was written before its changelog records were
 * acknowledged (a crash then leaves the local copy ahead of the changelog
 * for good, and a partition lost then could not take it back). */
Test(runtime_commit, a_seal_that_settles_midway_keeps_the_later_batches_behind_the_gate,
     .timeout = 90)
{
    harness h;
    slow_triggers_init_parts(&h, true, 3);
    /* The changelog's leader slowed too: its records are still in flight
     * when the seal returns. */
    for (int p = 0; p < 3; p++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "leader unit-changelog %d 2", p);
        mock(&h, cmd);
    }
    const char *first[] = {"a", "b", "c"}, *then[] = {"d", "e", "f"};
    for (int p = 0; p < 3; p++)
        harness_send(&h, p, first[p], 2, 1000);
    harness_open(&h);
    harness_consumed(&h, 6);
    harness_commit(&h);
    mock(&h, "rtt 2 1000");
    for (int p = 0; p < 3; p++)
        harness_send(&h, p, then[p], 2, 2000);
    harness_consumed(&h, 12);
    /* The write queue one short of full, behind the gate: partition 0's
     * batch fills it, partition 1's finds it full and settles it (its own
     * changelog released and acknowledged with the rest), partition 2's
     * comes after the settle. */
    cue_err err = {0};
    cue_store_gate_close(h.r->store);
    for (int i = 0; i < CUE_STORE_WRITES_MAX - 1; i++)
        cr_assert_eq(cue_store_batch_commit_async(h.r->store, NULL, written_nothing, NULL, &err), 0,
                     "%s", err.msg);
    rt_begin_commit(h.r);
    cr_assert(h.r->sealed && cue_kafka_in_flight_sealed(h.r->k) > 0,
              "no changelog record in flight after the seal: the test shows nothing");
    cr_expect(cue_store_gate_waiting(h.r->store),
              "partition 2's batch went past the gate before its changelog was acknowledged");
    mock(&h, "rtt 2 0");
    harness_until(&h, unsealed, 15000, "the sealed cycle's acknowledgements");
    harness_settle(&h);
    for (int p = 0; p < 3; p++)
        cr_expect_eq(stored_offset(h.r, p), 4, "partition %d's store holds %lld", p,
                     (long long)stored_offset(h.r, p));
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* A user read from the store while the sealed cycle's batch waits (here: a
 * read of the store, as a cache miss of a user evicted since makes) waits
 * for the acknowledgements and the batch first, so it reads the cycle's state. */
Test(runtime_commit, a_read_during_a_sealed_cycle_sees_its_batch, .timeout = 90)
{
    harness h;
    slow_triggers_init(&h, false);
    cue_err err = {0};
    slowed_after_four(&h, "rtt 2 1000");
    rt_begin_commit(h.r);
    cr_assert(h.r->sealed && cue_kafka_in_flight_sealed(h.r->k) > 0,
              "nothing waits at the gate: the test shows nothing");
    cr_expect_eq(stored_offset(h.r, 0), 7, "the read did not see the sealed batch");
    cr_expect(!h.r->sealed, "the read went past the gate");
    cr_expect_eq(cue_kafka_in_flight_sealed(h.r->k), 0,
                 "stored before its records were acknowledged");
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* A cycle that is not sealed (exactly-once's, the repartition stage's; here
 * through the runtime's test switch) stops intake while it waits for the
 * acknowledgements; the records that came meanwhile are taken after it. */
Test(runtime_commit, intake_stops_during_a_cycle_that_is_not_sealed, .timeout = 90)
{
    harness h;
    harness_init(&h, 1);
    harness_send(&h, 0, "a", 4, 1000);
    harness_open(&h);
    h.r->no_seal = true;
    harness_consumed(&h, 4);
    /* Acknowledgements held up: the cycle waits for them on the loop. */
    cue_err err = {0};
    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 1 400", &err), 0, "%s", err.msg);
    harness_send(&h, 0, "b", 3, 2000);
    harness_consumed(&h, 7);
    rt_begin_commit(h.r);
    cr_expect_eq(h.r->state, COMMITTING);
    cr_expect_gt(cue_kafka_in_flight(h.r->k), 0, "nothing in flight: the test shows nothing");
    harness_send(&h, 0, "c", 2, 3000); /* records that come during the cycle */
    while (h.r->state == COMMITTING) {
        uv_run(&h.r->loop, UV_RUN_ONCE);
        if (h.r->state == COMMITTING)
            cr_assert_eq(h.res.consumed, 7, "a record taken in the middle of a cycle");
    }
    cr_expect_eq(cue_kafka_in_flight(h.r->k), 0);
    cr_assert_eq(cue_kafka_mock_command(h.mock, "rtt 1 0", &err), 0, "%s", err.msg);
    harness_consumed(&h, 9);
    harness_commit(&h);
    cr_expect_eq(stored_offset(h.r, 0), 9);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* The cycle's batch is being written (the writer thread held here): the
 * records that come meanwhile are taken and processed, the store and the
 * group end at the cycle's offset, and the next cycle takes them in. */
Test(runtime_commit, intake_goes_on_while_the_batch_is_written, .timeout = 90)
{
    harness h;
    harness_init(&h, 1);
    harness_send(&h, 0, "a", 4, 1000);
    harness_open(&h);
    harness_consumed(&h, 4);
    cue_store_writer_hold(h.r->store, true);
    rt_begin_commit(h.r);
    harness_until(&h, cycle_done, 15000, "the commit cycle to end");
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked", "steps before the batch is written: %s", trace);

    harness_send(&h, 0, "b", 3, 2000);
    harness_consumed(&h, 7);
    cr_expect_eq(h.res.triggers, 7, "records taken during the write were not processed");
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked", "a step before the batch was written: %s", trace);

    cue_store_writer_hold(h.r->store, false);
    harness_settle(&h);
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked stored:0 group:0", "%s", trace);
    cr_expect_eq(stored_offset(h.r, 0), 4, "the store holds %lld",
                 (long long)stored_offset(h.r, 0));
    cr_expect_eq(group_offset(&h, 0, 4), 4, "the group got ahead of the cycle's batch");

    harness_commit(&h);
    cr_expect_eq(stored_offset(h.r, 0), 7);
    cr_expect_eq(group_offset(&h, 0, 7), 7);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

/* A partition lost while its batch waits for the writer: the batch is
 * written (it is the cycle's, sealed before the loss), but the group hears
 * nothing of it, since a new owner may already have committed further. */
Test(runtime_commit, a_partition_lost_during_the_write_gets_no_group_commit, .timeout = 90)
{
    harness h;
    harness_init(&h, 2);
    harness_send(&h, 0, "a", 4, 1000);
    harness_send(&h, 1, "b", 3, 1000);
    harness_open(&h);
    harness_consumed(&h, 7);
    cue_store_writer_hold(h.r->store, true);
    rt_begin_commit(h.r);
    harness_until(&h, cycle_done, 15000, "the commit cycle to end");
    int32_t gone = 1;
    rt_on_revoked(&gone, 1, true, h.r);
    cr_assert_null(h.r->parts[1].task, "the lost partition's task is still open");

    cue_store_writer_hold(h.r->store, false);
    harness_settle(&h);
    char trace[512];
    steps_text(&h, trace, sizeof trace);
    cr_expect_str_eq(trace, "acked stored:0 group:0", "%s", trace);
    cr_expect_eq(group_offset(&h, 0, 4), 4);
    cr_expect_eq(group_offset(&h, 1, -1), -1, "the lost partition's offset reached the group");
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

static bool failed(harness *h)
{
    return h->r->fatal_rc != 0;
}

/* A trigger that cannot be delivered stops the run: nothing after the last
 * cycle is stored or committed, so the next run makes the trigger again. */
Test(runtime_commit, a_failed_delivery_commits_nothing_past_it, .timeout = 90)
{
    harness h;
    harness_init(&h, 1);
    harness_send(&h, 0, "a", 4, 1000);
    h.cfg.delivery_timeout_ms = 1000;
    harness_open(&h);
    harness_consumed(&h, 4);
    harness_commit(&h);
    cr_assert_eq(stored_offset(h.r, 0), 4);
    size_t steps_before = h.n_steps;

    harness_send(&h, 0, "b", 3, 2000);
    cue_err err = {0};
    cr_assert_eq(cue_kafka_mock_command(h.mock, "errors Produce MSG_SIZE_TOO_LARGE 100", &err), 0,
                 "%s", err.msg);
    harness_until(&h, failed, 20000, "the failed delivery to stop the run");
    rt_begin_commit(h.r); /* a cycle after the failure does nothing */
    cr_expect_eq(h.n_steps, steps_before, "a step after the failed delivery");
    cr_expect_eq(stored_offset(h.r, 0), 4);
    cr_expect_eq(group_offset(&h, 0, 4), 4);
    cr_expect_neq(harness_close(&h, &err), 0, "the run ended as if it had succeeded");
    cr_expect(strstr(err.msg, "Broker: Message size too large") != NULL, "error: %s", err.msg);
}
