/* The changelog reader (src/runtime/changelog_reader.c) on the mock
 * cluster: a partition whose store is missing is held while its state comes
 * back from the changelog; records that arrive meanwhile wait, and are taken
 * once the restore finished, against the restored state; a store that is
 * current needs no restore. */
#include "runtime_harness.h"

static void changelog_init(harness *h)
{
    harness_init(h, 1);
    cue_err err = {0};
    cr_assert(cue_kafka_mock_topic_create(h->mock, "unit-changelog", 1, &err) == 0, "%s", err.msg);
    h->cfg.changelog = true;
}

/* A first run: users a0..a4 begin their journeys, committed (their state
 * in the changelog), then the run ends. */
static void first_run(harness *h)
{
    harness_send(h, 0, "a", 5, 1000);
    harness_open(h);
    harness_consumed(h, 5);
    harness_commit(h);
    cr_assert_eq(h->res.triggers, 5);
    cue_err err = {0};
    cr_assert_eq(rt_end(h->r, 0, &err), 0, "%s", err.msg);
    h->r = NULL;
}

static bool restored(harness *h)
{
    part *p = rt_part_get(h->r, 0);
    /* Nothing of the input is taken while the state is coming back. */
    if (p && p->restoring) cr_assert_eq(h->res.consumed, 0, "input taken during the restore");
    return p && !p->restoring && p->task != NULL;
}

Test(runtime_changelog, a_restore_finishing_while_records_arrive, .timeout = 120)
{
    harness h;
    changelog_init(&h);
    first_run(&h);
    /* The same instance on a new disk: the store is gone. */
    snprintf(h.cfg.state_dir, sizeof h.cfg.state_dir, "%s/state-new", h.dir);
    harness_send(&h, 0, "a", 3, 2000); /* a0..a2 again: already on their way */
    harness_open(&h);
    part *p = rt_part_get(h.r, 0);
    cr_assert(p && p->restoring, "the partition is not being restored");
    cr_expect_null(p->task);
    harness_send(&h, 0, "n", 2, 3000); /* new users, during the restore */
    harness_until(&h, restored, 20000, "the restore to finish");
    /* The turn that finished the restore may already have taken some of
     * the waiting records: whatever it took was taken from offset 5 on. */
    cr_expect_eq(p->position - (int64_t)h.res.consumed, 5, "input resumes at %lld",
                 (long long)(p->position - (int64_t)h.res.consumed));
    harness_consumed(&h, 5);
    /* a0..a2 were restored in their journeys: only n0 and n1 begin one. */
    cr_expect_eq(h.res.triggers, 2, "triggers %llu", (unsigned long long)h.res.triggers);
    harness_commit(&h);
    cr_expect_eq(stored_offset(h.r, 0), 10);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

Test(runtime_changelog, a_current_store_needs_no_restore, .timeout = 120)
{
    harness h;
    changelog_init(&h);
    first_run(&h);
    harness_send(&h, 0, "n", 2, 3000);
    harness_open(&h);
    part *p = rt_part_get(h.r, 0);
    cr_expect(!p->restoring && p->restore_started_ns == 0, "a current store restored");
    harness_consumed(&h, 2);
    cr_expect_eq(p->position, 7);
    cr_expect_eq(h.res.triggers, 2);
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

static bool failed(harness *h)
{
    return h->r->fatal_rc != 0;
}

/* The same application.id on a new disk, reading another topic: the
 * changelog's users and positions are the first input's, and taking them
 * would resume "other" at "events"' offsets with users it never saw. The
 * restore ends on a position record of that input: the run stops with a
 * configuration error, no position is written and no task opens. */
Test(runtime_changelog, a_changelog_written_reading_other_topics_is_not_restored, .timeout = 120)
{
    harness h;
    changelog_init(&h);
    first_run(&h);
    cue_err err = {0};
    cr_assert(cue_kafka_mock_topic_create(h.mock, "other", 1, &err) == 0, "%s", err.msg);
    snprintf(h.cfg.state_dir, sizeof h.cfg.state_dir, "%s/state-other", h.dir);
    cue_config_set_input_topic(&h.cfg, "other");
    harness_open(&h);
    harness_until(&h, failed, 20000, "the restore to refuse the changelog");
    cr_expect_eq(h.r->fatal_rc, CUE_ECONFIG);
    cr_expect(strstr(h.r->fatal_err.msg, "another input") != NULL, "%s", h.r->fatal_err.msg);
    part *p = rt_part_get(h.r, 0);
    cr_expect(p != NULL && p->task == NULL, "a task opened on another input's state");
    cr_expect_neq(harness_close(&h, &err), 0, "the run ended well");
}
