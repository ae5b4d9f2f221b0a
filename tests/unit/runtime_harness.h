/* A runtime driven by hand, for the suites of the runtime's parts
 * (test_runtime_*.c): librdkafka's mock cluster in this process, a state
 * directory of its own, the loop turned by the test until what it waits for
 * happened, commit cycles started by the test (the timer's interval is an
 * hour), and the commit cycle's steps recorded through the probe
 * (runtime_int.h's rt_probe_fn). Header-only, like testutil.h. */
#ifndef CUEPOINT_RUNTIME_HARNESS_H
#define CUEPOINT_RUNTIME_HARNESS_H

#include "runtime_int.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Every "begin" emits "hello" at once; "stop" ends the journey. */
static const char harness_machine[] =
    "{\"name\":\"greet\",\"version\":1,\"start\":{\"event\":\"begin\",\"do\":[{\"emit\":"
    "\"hello\"}]},\"initial\":\"w\",\"final\":[\"done\"],\"states\":{\"w\":{\"on\":[{\"event\":"
    "\"stop\",\"goto\":\"done\"}]},\"done\":{}}}";

#define STEPS_MAX 256

typedef struct step_seen {
    rt_step_id step;
    int32_t partition;
    /* What was true when the step was told: records produced and not yet
     * acknowledged, the store's input offset for the partition, the task's
     * next offset. */
    size_t in_flight;
    size_t in_flight_sealed; /* of the last sealed cycle */
    int64_t stored_offset, task_offset;
} step_seen;

typedef struct harness {
    char dir[64];
    cue_kafka_mock *mock;
    cue_kafka_loader *loader;
    cue_config cfg;
    cue_machines *ms;
    cue_runtime_opts o;
    cue_runtime_result res;
    rt *r;
    step_seen steps[STEPS_MAX];
    size_t n_steps;
    /* Called by the probe after it recorded a step (a test's own check). */
    void (*on_step)(struct harness *h, const step_seen *s);
    uint64_t want; /* records consumed that harness_consumed waits for */
} harness;

static inline int64_t harness_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline const char *step_name(rt_step_id s)
{
    return s == RT_STEP_ACKED ? "acked" : s == RT_STEP_STORED ? "stored" : "group";
}

static inline int64_t stored_offset(rt *r, int32_t partition)
{
    cue_store_meta m = {0};
    cue_err err = {0};
    if (partition < 0 || r->store == NULL ||
        cue_store_meta_get(r->store, (uint32_t)partition, &m, &err) != 0)
        return -1;
    return m.input_offset;
}

/* The input offset of the last record applied to user `uid` as the store
 * holds it (not the cache): -1 when the store has no such user, -2 when its
 * record does not read. */
static inline int64_t stored_user_offset(rt *r, int32_t partition, const char *uid)
{
    cue_buf rec;
    cue_err err = {0};
    cue_buf_init(&rec, 256);
    int64_t out = -1;
    int rc = cue_store_user_get(r->store, (uint32_t)partition, uid, strlen(uid), &rec, &err);
    if (rc == 0) {
        cue_user *u = malloc(sizeof *u);
        out = u && cue_codec_decode(rec.data, rec.len, r->o->ms, u, NULL, &err) == 0
                  ? u->last_offset
                  : -2;
        free(u);
    }
    cue_buf_deinit(&rec);
    return out;
}

static void harness_probe(rt *r, rt_step_id step, int32_t partition, void *ctx)
{
    harness *h = ctx;
    cr_assert(h->n_steps < STEPS_MAX, "more steps than the harness keeps");
    step_seen *s = &h->steps[h->n_steps++];
    part *p = rt_part_get(r, partition);
    *s = (step_seen){.step = step,
                     .partition = partition,
                     .in_flight = cue_kafka_in_flight(r->k),
                     .in_flight_sealed = cue_kafka_in_flight_sealed(r->k),
                     .stored_offset = stored_offset(r, partition),
                     .task_offset = p && p->task ? cue_task_next_offset(p->task) : -1};
    if (h->on_step) h->on_step(h, s);
}

/* The steps seen so far as text: "acked stored:0 group:0 ...". */
static inline void steps_text(const harness *h, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < h->n_steps && len < cap; i++) {
        const step_seen *s = &h->steps[i];
        int n = s->partition < 0
                    ? snprintf(out + len, cap - len, "%s%s", i ? " " : "", step_name(s->step))
                    : snprintf(out + len, cap - len, "%s%s:%d", i ? " " : "", step_name(s->step),
                               (int)s->partition);
        if (n < 0) break;
        len += (size_t)n;
    }
}

/* A mock cluster of `brokers` with the input topic (`partitions`) and the
 * output topics, and a config for it; the test may change the config before
 * harness_open. */
static inline void harness_init_brokers(harness *h, int partitions, int brokers)
{
    memset(h, 0, sizeof *h);
    cue_err err = {0};
    temp_dir(h->dir);
    cr_assert(cue_kafka_mock_start(&h->mock, brokers, &err) == 0, "%s", err.msg);
    const char *topics[] = {"events", "triggers", "dead-letters", "cuepoint-decisions"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        cr_assert(cue_kafka_mock_topic_create(h->mock, topics[i], i == 0 ? partitions : 1, &err) ==
                      0,
                  "%s", err.msg);
    cr_assert(cue_kafka_loader_new(&h->loader, cue_kafka_mock_bootstraps(h->mock), NULL, 0, &err) ==
                  0,
              "%s", err.msg);
    cue_config *c = &h->cfg;
    cue_config_defaults(c);
    snprintf(c->bootstrap_servers, sizeof c->bootstrap_servers, "%s",
             cue_kafka_mock_bootstraps(h->mock));
    snprintf(c->application_id, sizeof c->application_id, "unit");
    snprintf(c->state_dir, sizeof c->state_dir, "%s/state", h->dir);
    snprintf(c->dead_letter_topic, sizeof c->dead_letter_topic, "dead-letters");
    c->admin_listen[0] = '\0';
    /* Off unless a test turns it on (and creates <app>-changelog with the
     * input's count, which the mock would make with 4): the commit cycle's
     * steps are checked without it, its own cases with it. */
    c->changelog = false;
    c->commit_interval_ms = 3600000; /* the test starts the cycles */
    c->wall_clock = false;           /* event times stay where the test put them */
    c->startup_timeout_ms = 10000;
    c->shutdown_timeout_ms = 10000;
    c->delivery_timeout_ms = 5000;
    cr_assert(cue_config_set(c, "kafka",
                             "{\"consumer\": {\"fetch.wait.max.ms\": 10, "
                             "\"session.timeout.ms\": 6000}, \"producer\": {\"linger.ms\": 0}}",
                             &err) == 0,
              "%s", err.msg);
    h->ms = compile_text(harness_machine);
}

static inline void harness_init(harness *h, int partitions)
{
    harness_init_brokers(h, partitions, 1);
}

/* Event times are HARNESS_T0 + the test's ms (2026-01-01, past
 * event.time.min and never in the future). */
#define HARNESS_T0 INT64_C(1767225600000)

/* Events for `partition`: "begin" for users <prefix>0 .. <prefix>n-1. */
static inline void harness_send(harness *h, int32_t partition, const char *prefix, int n,
                                int64_t ts_ms)
{
    cue_err err = {0};
    for (int i = 0; i < n; i++) {
        char user[32], v[160];
        snprintf(user, sizeof user, "%s%d", prefix, i);
        snprintf(v, sizeof v, "{\"user_id\":\"%s\",\"type\":\"begin\",\"ts\":%lld}", user,
                 (long long)(HARNESS_T0 + ts_ms + i));
        cr_assert(cue_kafka_loader_send(h->loader, "events", partition, user, strlen(user), v,
                                        strlen(v), &err) == 0,
                  "%s", err.msg);
    }
    cr_assert(cue_kafka_loader_flush(h->loader, 10000, &err) == 0, "%s", err.msg);
}

typedef bool (*harness_pred)(harness *h);

/* Turns the loop until `done` holds; fails the test after `timeout_ms`. */
static inline void harness_until(harness *h, harness_pred done, int64_t timeout_ms,
                                 const char *what)
{
    int64_t end = harness_ms() + timeout_ms;
    while (!done(h)) {
        cr_assert(harness_ms() < end, "timed out waiting for %s", what);
        uv_run(&h->r->loop, UV_RUN_ONCE); /* the 250 ms clock bounds each turn */
    }
}

/* Turns the loop for `ms` milliseconds (and up to a clock tick more). */
static inline void harness_run_for(harness *h, int64_t ms)
{
    for (int64_t end = harness_ms() + ms; harness_ms() < end;)
        uv_run(&h->r->loop, UV_RUN_ONCE);
}

static inline bool assigned(harness *h)
{
    return h->r->assigned_once;
}

/* Opens the runtime (store, clients, group) and starts its loop handles. */
static inline void harness_open(harness *h)
{
    cue_err err = {0};
    h->o = (cue_runtime_opts){.cfg = &h->cfg, .ms = h->ms};
    h->r = rt_new(&h->o, &h->res);
    cr_assert(h->r != NULL);
    h->r->probe = harness_probe;
    h->r->probe_ctx = h;
    cr_assert(rt_open(h->r, &err) == 0, "%s", err.msg);
    rt_start(h->r);
    /* Joined before the test goes on: a member closed before its first
     * assignment is left to the process's exit (cue_kafka_close). */
    harness_until(h, assigned, 20000, "the group's first assignment");
}

static inline bool consumed_enough(harness *h)
{
    return h->res.consumed >= h->want;
}

/* Turns the loop until `n` records in all were consumed. */
static inline void harness_consumed(harness *h, uint64_t n)
{
    h->want = n;
    harness_until(h, consumed_enough, 20000, "records to be consumed");
}

/* The cycle's records are acknowledged and its batches handed to the
 * store's writer: it stopped intake (COMMITTING) or was sealed. */
static inline bool cycle_done(harness *h)
{
    return h->r->state == RUNNING && !h->r->sealed;
}

/* The state batches handed to the store's writer thread are written, and
 * the steps that follow each (stored, group) are taken, in order. */
static inline void harness_settle(harness *h)
{
    if (h->r->store) cue_store_settle(h->r->store);
}

/* One commit cycle, started now and waited for, its writes included. */
static inline void harness_commit(harness *h)
{
    rt_begin_commit(h->r);
    harness_until(h, cycle_done, 15000, "the commit cycle to end");
    harness_settle(h);
}

/* Records read back from a topic's partition 0 (copies). */
#define READ_MAX 64
typedef struct read_rec {
    char key[64], value[512];
    bool has_key;
    int64_t offset, timestamp_ms;
} read_rec;
typedef struct topic_read {
    read_rec recs[READ_MAX];
    size_t n;
    bool end;
} topic_read;

static void read_message(const cue_kafka_msg *m, void *ctx)
{
    topic_read *t = ctx;
    if (t->n == READ_MAX) return;
    read_rec *rr = &t->recs[t->n++];
    rr->has_key = m->key != NULL;
    snprintf(rr->key, sizeof rr->key, "%.*s", (int)m->key_len, m->key ? m->key : "");
    snprintf(rr->value, sizeof rr->value, "%.*s", (int)m->value_len, m->value);
    rr->offset = m->offset;
    rr->timestamp_ms = m->timestamp_ms;
}

static void read_end(int32_t partition, int64_t offset, void *ctx)
{
    ((topic_read *)ctx)->end = true;
}

/* Reads partition 0 of `topic` from its start to its end, outside any group. */
static inline void harness_read(harness *h, const char *topic, topic_read *out)
{
    memset(out, 0, sizeof *out);
    cue_config c = h->cfg;
    snprintf(c.input_topic, sizeof c.input_topic, "%s", topic);
    cue_kafka_handler kh = {.message = read_message, .end = read_end, .ctx = out};
    cue_kafka *k = NULL;
    cue_err err = {0};
    cr_assert(cue_kafka_open_replay(&k, &c, &kh, "unit-read", NULL, &err) == 0, "%s", err.msg);
    cr_assert(cue_kafka_assign_one(k, 0, CUE_KAFKA_OFFSET_BEGINNING, &err) == 0, "%s", err.msg);
    int64_t end = harness_ms() + 10000;
    while (!out->end) {
        cr_assert(harness_ms() < end, "timed out reading %s", topic);
        if (cue_kafka_consume(k, 64) == 0) usleep(10000);
    }
    cue_kafka_close(k, 0);
}

/* Ends the run (rt_end commits unless it failed) and removes everything;
 * returns rt_end's status. */
static inline int harness_close(harness *h, cue_err *err)
{
    int rc = 0;
    if (h->r) {
        /* A stop the test caused outside the loop (rt_fatal) is still
         * pending: a turn takes it, as the run's loop would have. */
        uv_run(&h->r->loop, UV_RUN_NOWAIT);
        rc = rt_end(h->r, 0, err);
    }
    h->r = NULL;
    cue_kafka_loader_free(h->loader);
    cue_kafka_mock_stop(h->mock);
    cue_machines_free(h->ms);
    remove_tree(h->dir);
    return rc;
}

#endif
