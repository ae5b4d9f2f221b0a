/* Live journey counts: edges and durations as the engine reports them, and
 * users per state kept by a task equal to a recount of its store, through
 * commits, rollbacks, erasures and reopening. */
#include "cuepoint/gen.h"
#include "cuepoint/journey_counts.h"
#include "cuepoint/task.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* begin -> w; w --stop--> done; w --timer t (emits nudge)--> done; w --poke--> w. */
static const char nudge_machine[] =
    "{\"name\":\"n\",\"version\":1,\"start\":{\"event\":\"begin\",\"do\":[{\"start_timer\":"
    "\"t\",\"at\":{\"event\":\"/due\"}}]},\"initial\":\"w\",\"final\":[\"done\"],\"states\":{"
    "\"w\":{\"on\":[{\"event\":\"stop\",\"do\":[{\"cancel_timer\":\"t\"}],\"goto\":\"done\"},"
    "{\"event\":\"poke\",\"do\":[{\"emit\":\"poked\"}]},"
    "{\"timer\":\"t\",\"do\":[{\"emit\":\"nudge\"}],\"goto\":\"done\"}]},\"done\":{}}}";

enum { W = 0, DONE = 1 };

static void sink_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx) {}
static void sink_dead(const cue_dead_letter *dl, void *ctx) {}

typedef struct harness {
    char dir[64];
    cue_config cfg;
    cue_machines *ms;
    cue_store *store;
    cue_task *task;
    cue_user *scratch;
} harness;

static void open_task(harness *h)
{
    cue_err err = {0};
    cue_task_sink sink = {.trigger = sink_trigger, .dead_letter = sink_dead, .ctx = h};
    cr_assert(cue_store_open(&h->store, h->dir, &(cue_store_opts){0}, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_new(&h->task, &h->cfg, h->ms, h->store, 0, &sink, &err) == 0, "%s", err.msg);
    cr_assert(cue_task_count_journeys(h->task, &err) == 0, "%s", err.msg);
}

static void close_task(harness *h, bool commit)
{
    cue_err err = {0};
    if (commit) cr_assert(cue_task_commit(h->task, &err) == 0, "%s", err.msg);
    cue_task_free(h->task);
    cue_store_close(h->store);
}

static void setup(harness *h, cue_machines *ms)
{
    memset(h, 0, sizeof *h);
    temp_dir(h->dir);
    cue_config_defaults(&h->cfg);
    h->cfg.event_time_min_ms = 0;
    h->ms = ms;
    h->scratch = malloc(sizeof *h->scratch);
    open_task(h);
}

static void teardown(harness *h)
{
    close_task(h, false);
    cue_machines_free(h->ms);
    free(h->scratch);
    remove_tree(h->dir);
}

static void feed(harness *h, const char *line)
{
    cue_err err = {0};
    cue_record rec = {.value = line,
                      .value_len = strlen(line),
                      .offset = cue_task_next_offset(h->task),
                      .timestamp_ms = CUE_NO_TIMESTAMP};
    cr_assert(cue_task_process(h->task, &rec, &err) == 0, "%s", err.msg);
}

static void event(harness *h, const char *user, const char *type, long long ts, long long due)
{
    char line[256];
    snprintf(line, sizeof line, "{\"user_id\":\"%s\",\"type\":\"%s\",\"ts\":%lld,\"due\":%lld}",
             user, type, ts, due);
    feed(h, line);
}

/* Commits, then checks every state's live count against a recount of the
 * store, printing the state that differs. */
static void assert_recount_equal(harness *h)
{
    cue_err err = {0};
    cr_assert(cue_task_commit(h->task, &err) == 0, "%s", err.msg);
    const cue_journey_counts *live = cue_task_journeys(h->task);
    cue_journey_counts *re = NULL;
    cr_assert(cue_journey_counts_new(&re, h->ms, &err) == 0);
    cr_assert(cue_journey_counts_recount(re, h->store, 0, h->scratch, &err) == 0, "%s", err.msg);
    for (size_t m = 0; m < cue_machines_count(h->ms); m++) {
        const cue_machine *mc = cue_machines_get(h->ms, m);
        for (uint16_t s = 0; s < mc->n_states; s++)
            cr_expect_eq(cue_journey_counts_users(live, (uint16_t)m, s),
                         cue_journey_counts_users(re, (uint16_t)m, s),
                         "%s.%s: live %lld, recount %lld", mc->name, mc->states[s].name,
                         (long long)cue_journey_counts_users(live, (uint16_t)m, s),
                         (long long)cue_journey_counts_users(re, (uint16_t)m, s));
    }
    cue_journey_counts_free(re);
}

Test(journey_counts, edges_users_and_durations_follow_the_steps)
{
    harness h;
    setup(&h, compile_text(nudge_machine));
    event(&h, "a", "begin", 0, 100000);
    event(&h, "b", "begin", 1000, 100000);
    event(&h, "c", "begin", 2000, 5000);
    event(&h, "a", "poke", 3000, 0);
    event(&h, "b", "stop", 4000, 0);
    event(&h, "z", "other", 10000, 0); /* passes c's timer at 5000 */
    const cue_journey_counts *c = cue_task_journeys(h.task);
    cr_expect_eq(cue_journey_counts_users(c, 0, W), 1);    /* a */
    cr_expect_eq(cue_journey_counts_users(c, 0, DONE), 2); /* b stopped, c nudged */
    cr_expect_eq(cue_journey_counts_transitions(c, 0, -1, W), 3);
    cr_expect_eq(cue_journey_counts_transitions(c, 0, W, W), 1);
    cr_expect_eq(cue_journey_counts_triggers(c, 0, W, W), 1);
    cr_expect_eq(cue_journey_counts_transitions(c, 0, W, DONE), 2);
    cr_expect_eq(cue_journey_counts_triggers(c, 0, W, DONE), 1); /* the nudge; stop emits none */
    const cue_histogram *d = cue_journey_counts_durations(c, 0);
    cr_expect_eq(d->count, 2);
    cr_expect_float_eq(d->sum, 3.0 + 3.0, 1e-9); /* b: 1 s -> 4 s; c: 2 s -> 5 s */
    assert_recount_equal(&h);
    teardown(&h);
}

Test(journey_counts, a_reopened_task_recounts_what_it_committed)
{
    harness h;
    setup(&h, compile_text(nudge_machine));
    event(&h, "a", "begin", 0, 100000);
    event(&h, "b", "begin", 0, 100000);
    event(&h, "b", "stop", 10, 0);
    close_task(&h, true);
    open_task(&h);
    const cue_journey_counts *c = cue_task_journeys(h.task);
    cr_expect_eq(cue_journey_counts_users(c, 0, W), 1);
    cr_expect_eq(cue_journey_counts_users(c, 0, DONE), 1);
    /* Edge totals are the process's: they start again at zero. */
    cr_expect_eq(cue_journey_counts_transitions(c, 0, -1, W), 0);
    /* Uncommitted work is not in the store: closing without a commit (a
     * crash) and reopening counts what was committed. */
    event(&h, "a", "stop", 20, 0);
    event(&h, "d", "begin", 20, 100000);
    cr_expect_eq(cue_journey_counts_users(c, 0, DONE), 2);
    close_task(&h, false);
    open_task(&h);
    c = cue_task_journeys(h.task);
    cr_expect_eq(cue_journey_counts_users(c, 0, W), 1);
    cr_expect_eq(cue_journey_counts_users(c, 0, DONE), 1);
    teardown(&h);
}

Test(journey_counts, a_rollback_goes_back_to_the_last_commit)
{
    harness h;
    setup(&h, compile_text(nudge_machine));
    cue_err err = {0};
    event(&h, "a", "begin", 0, 100000);
    cr_assert(cue_task_commit(h.task, &err) == 0, "%s", err.msg);
    event(&h, "a", "stop", 10, 0);
    event(&h, "b", "begin", 10, 100000);
    cr_assert(cue_task_rollback(h.task, &err) == 0, "%s", err.msg);
    const cue_journey_counts *c = cue_task_journeys(h.task);
    cr_expect_eq(cue_journey_counts_users(c, 0, W), 1);
    cr_expect_eq(cue_journey_counts_users(c, 0, DONE), 0);
    cr_expect_eq(cue_journey_counts_transitions(c, 0, -1, W), 1);
    cr_expect_eq(cue_journey_counts_transitions(c, 0, W, DONE), 0);
    assert_recount_equal(&h);
    teardown(&h);
}

/* The example journeys over generated traffic (starts, steps, timers,
 * keyed deadlines, finishes and restarts): live equals recount after each
 * of several commits, and after reopening. */
Test(journey_counts, live_counts_equal_a_recount_over_generated_traffic)
{
    cue_machines *ms = NULL;
    cue_err err = {0};
    cr_assert(cue_machines_load(&ms, CUE_SOURCE_DIR "/deploy/machines", NULL, &err) == 0, "%s",
              err.msg);
    harness h;
    setup(&h, ms);
    cue_gen *g = NULL;
    cr_assert(
        cue_gen_new(
            &g,
            &(cue_gen_opts){.seed = 7, .users = 300, .events = 20000, .start_ms = 1767225600000LL},
            &err) == 0);
    cue_buf line;
    cue_buf_init(&line, 1024);
    int64_t ts, last = 0;
    for (int n = 1; cue_gen_next(g, &line, &ts) == 1; n++) {
        feed(&h, line.data);
        last = ts > last ? ts : last;
        if (n % 5000 == 0) assert_recount_equal(&h);
    }
    /* Not vacuous: every journey has users somewhere
     * (before the advance, which ends every deadline: a repeating journey
     * keeps no finished instances). */
    const cue_journey_counts *c = cue_task_journeys(h.task);
    for (size_t m = 0; m < cue_machines_count(ms); m++) {
        int64_t total = 0;
        for (uint16_t s = 0; s < cue_machines_get(ms, m)->n_states; s++)
            total += cue_journey_counts_users(c, (uint16_t)m, s);
        cr_expect_gt(total, 0, "no users in %s (applied %llu, dead %llu)",
                     cue_machines_get(ms, m)->name,
                     (unsigned long long)cue_task_stats_get(h.task)->applied,
                     (unsigned long long)cue_task_stats_get(h.task)->dead_letters);
    }
    cr_assert(cue_task_advance(h.task, last + 90LL * 86400000, &err) == 0, "%s", err.msg);
    assert_recount_equal(&h);
    close_task(&h, true);
    open_task(&h);
    assert_recount_equal(&h);
    cue_buf_deinit(&line);
    cue_gen_free(g);
    teardown(&h);
}

Test(journey_counts, prometheus_names_every_declared_edge)
{
    cue_machines *ms = compile_text(nudge_machine);
    cue_journey_counts *c = NULL;
    cr_assert(cue_journey_counts_new(&c, ms, NULL) == 0);
    cue_take tk = {.machine = 0,
                   .from = W,
                   .to = DONE,
                   .final = true,
                   .triggers = 1,
                   .started_ms = 0,
                   .at_ms = 7200000};
    cue_journey_counts_taken(&tk, c);
    cue_buf b, labels;
    cue_buf_init(&b, 4096);
    cue_buf_init(&labels, 256);
    cr_assert(cue_journey_counts_prometheus(c, &b, &labels) == 0);
    const char *want[] = {
        "cuepoint_journey_users{machine=\"n\",state=\"w\"} 0\n",
        "cuepoint_journey_transitions_total{machine=\"n\",from=\"(start)\",to=\"w\"} 0\n",
        "cuepoint_journey_transitions_total{machine=\"n\",from=\"w\",to=\"w\"} 0\n",
        "cuepoint_journey_transitions_total{machine=\"n\",from=\"w\",to=\"done\"} 1\n",
        "cuepoint_journey_edge_triggers_total{machine=\"n\",from=\"w\",to=\"done\"} 1\n",
        "cuepoint_journey_duration_seconds_bucket{machine=\"n\",le=\"3600\"} 0\n",
        "cuepoint_journey_duration_seconds_bucket{machine=\"n\",le=\"21600\"} 1\n",
        "cuepoint_journey_duration_seconds_sum{machine=\"n\"} 7200\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect(strstr(b.data, want[i]) != NULL, "missing %s in:\n%s", want[i], b.data);
    /* No edge from "done" (a final state has none) and none into the start. */
    cr_expect(strstr(b.data, "from=\"done\"") == NULL);
    cue_buf_reset(&b);
    cr_assert(cue_journey_counts_json(c, &b) == 0);
    cr_expect(strstr(b.data, "{\"from\":\"w\",\"to\":\"done\",\"transitions\":1,\"triggers\":1}"),
              "%s", b.data);
    cue_buf_deinit(&b);
    cue_buf_deinit(&labels);
    cue_journey_counts_free(c);
    cue_machines_free(ms);
}
