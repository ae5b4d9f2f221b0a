/* The librdkafka adapter against the in-process mock cluster: clients from
 * the config, rebalance and message callbacks through the wake-up pipe,
 * producing with delivery reports, and the errors people read. */
#include "cuepoint/kafka.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct seen {
    int assigned, revoked, messages, fatal;
    int64_t last_offset;
    char last_value[64];
} seen;

static int on_assigned(const int32_t *parts, int64_t *start, size_t n, void *ctx)
{
    seen *s = ctx;
    for (size_t i = 0; i < n; i++)
        start[i] = CUE_KAFKA_OFFSET_BEGINNING;
    s->assigned += (int)n;
    (void)parts;
    return 0;
}

static void on_revoked(const int32_t *parts, size_t n, bool lost, void *ctx)
{
    ((seen *)ctx)->revoked += (int)n;
    (void)parts;
    (void)lost;
}

static void on_message(const cue_kafka_msg *m, void *ctx)
{
    seen *s = ctx;
    s->messages++;
    s->last_offset = m->offset;
    snprintf(s->last_value, sizeof s->last_value, "%.*s", (int)m->value_len, m->value);
}

static void on_fatal(const char *why, void *ctx)
{
    ((seen *)ctx)->fatal++;
    (void)why;
}

static cue_kafka_handler handler(seen *s)
{
    return (cue_kafka_handler){.assigned = on_assigned,
                               .revoked = on_revoked,
                               .message = on_message,
                               .fatal = on_fatal,
                               .ctx = s};
}

static void config_for(cue_config *c, const char *bootstrap, const char *app)
{
    cue_config_defaults(c);
    snprintf(c->bootstrap_servers, sizeof c->bootstrap_servers, "%s", bootstrap);
    snprintf(c->application_id, sizeof c->application_id, "%s", app);
    cr_assert(cue_config_set(c, "kafka", "{\"consumer\": {\"fetch.wait.max.ms\": 10}}", NULL) == 0);
}

/* A mock cluster whose topic "events" has `parts` partitions and `n`
 * records ("record-<i>", key "k", round robin over the partitions). */
static cue_kafka_mock *mock_with_records(int parts, int n)
{
    cue_err err = {0};
    cue_kafka_mock *m = NULL;
    cr_assert(cue_kafka_mock_start(&m, 1, &err) == 0, "%s", err.msg);
    cr_assert(cue_kafka_mock_topic_create(m, "events", parts, &err) == 0, "%s", err.msg);
    cue_kafka_loader *l = NULL;
    cr_assert(cue_kafka_loader_new(&l, cue_kafka_mock_bootstraps(m), NULL, 0, &err) == 0, "%s",
              err.msg);
    for (int i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof v, "record-%d", i);
        cr_assert(cue_kafka_loader_send(l, "events", i % parts, "k", 1, v, strlen(v), &err) == 0);
    }
    cr_assert(cue_kafka_loader_flush(l, 10000, &err) == 0, "%s", err.msg);
    cue_kafka_loader_free(l);
    return m;
}

Test(kafka, consumes_through_the_pipe_and_produces_with_reports, .timeout = 60)
{
    cue_err err = {0};
    cue_kafka_mock *m = mock_with_records(3, 30);

    cue_config cfg;
    config_for(&cfg, cue_kafka_mock_bootstraps(m), "unit");
    seen s = {0};
    cue_kafka_handler h = handler(&s);
    cue_kafka *k = NULL;
    cr_assert(cue_kafka_open(&k, &cfg, &h, &err) == 0, "%s", err.msg);
    int32_t parts = 0;
    cr_assert(cue_kafka_wait_ready(k, 10000, &parts, &err) == 0, "%s", err.msg);
    cr_expect_eq(parts, 3);
    cr_assert(cue_kafka_subscribe(k, &err) == 0, "%s", err.msg);
    /* Nothing but the pipe wakes us: a poll() that times out means no wake-up. */
    for (int rounds = 0; s.messages < 30 && rounds < 200; rounds++) {
        struct pollfd p = {.fd = cue_kafka_consumer_fd(k), .events = POLLIN};
        if (poll(&p, 1, 100) > 0) cue_kafka_drain_fd(p.fd);
        while (cue_kafka_consume(k, 64) == 64) {}
    }
    cr_expect_eq(s.assigned, 3);
    cr_expect_eq(s.messages, 30);
    cr_expect(strncmp(s.last_value, "record-", 7) == 0, "%s", s.last_value);

    /* A dead letter goes out with its headers and is acknowledged. */
    cue_kafka_dead d = {.reason = "not_json",
                        .message = "not JSON",
                        .topic = "events",
                        .partition = 1,
                        .offset = 7,
                        .timestamp_ms = 1767603600000,
                        .key = "u1",
                        .key_len = 2,
                        .value = "not json",
                        .value_len = 8};
    cr_assert(cue_kafka_produce_dead_letter(k, &d) == 0);
    cr_expect_eq(cue_kafka_in_flight(k), 1);
    cr_assert(cue_kafka_flush(k, 10000, &err) == 0, "%s", err.msg);
    cr_expect_eq(cue_kafka_in_flight(k), 0);
    cr_expect_eq(cue_kafka_stats_get(k)->delivered, 1);
    cr_expect(cue_kafka_high_watermark(k, 0) == 10, "high watermark %lld",
              (long long)cue_kafka_high_watermark(k, 0));
    cue_kafka_close(k, 1000);
    cr_expect_eq(s.revoked, 3, "leaving the group revokes every partition");
    cr_expect_eq(s.fatal, 0);
    cue_kafka_mock_stop(m);
}

Test(kafka, errors_people_read)
{
    cue_err err = {0};
    cue_config cfg;
    config_for(&cfg, "127.0.0.1:1", "unit");
    cr_assert(cue_config_set(&cfg, "kafka",
                             "{\"sasl.oauthbearer.method\": \"hunter2\", \"sasl.password\": \"x\"}",
                             NULL) == 0);
    seen s = {0};
    cue_kafka_handler h = handler(&s);
    cue_kafka *k = NULL;
    cr_expect_eq(cue_kafka_open(&k, &cfg, &h, &err), CUE_ECONFIG);
    cr_expect(strstr(err.msg, "sasl.oauthbearer.method") != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, "hunter2") == NULL, "a secret in: %s", err.msg);

    config_for(&cfg, "127.0.0.1:1", "unit");
    cr_assert(cue_kafka_open(&k, &cfg, &h, &err) == 0, "%s", err.msg);
    int32_t parts = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_expect_eq(cue_kafka_wait_ready(k, 500, &parts, &err), CUE_EUNAVAILABLE);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_expect(b.tv_sec - a.tv_sec < 5, "gave up after %ld s", (long)(b.tv_sec - a.tv_sec));
    cr_expect(strstr(err.msg, "127.0.0.1:1") != NULL, "%s", err.msg);
    cue_kafka_close(k, 0);

    cue_kafka_mock *m = NULL;
    cr_assert(cue_kafka_mock_start(&m, 2, &err) == 0, "%s", err.msg);
    cr_expect_eq(cue_kafka_mock_command(m, "explode 1", &err), CUE_EUSAGE);
    cr_expect(strstr(err.msg, "explode") != NULL, "%s", err.msg);
    cr_expect_eq(cue_kafka_mock_command(m, "down 2", &err), 0, "%s", err.msg);
    cr_expect_eq(cue_kafka_mock_command(m, "up 2", &err), 0, "%s", err.msg);
    cr_expect_eq(cue_kafka_mock_command(m, "produce-errors 3", &err), 0, "%s", err.msg);
    cue_kafka_mock_stop(m);
}

/* The member whose records are held ahead (it has a prefetch callback):
 * which partitions it owns now, and what it was handed. */
typedef struct ahead_member {
    bool owned[4];
    /* Records handed over in the cue_kafka_consume call under way, since
     * its last rebalance: all were polled in that call. */
    int handed;
    int messages, strays, revocations, held_revocations;
    /* Set when the group has just changed: the next call pauses this long
     * after its first record, with more held behind it, so the revocation
     * comes inside that call whatever the machine's load. */
    int stall_ms;
} ahead_member;

static int ahead_assigned(const int32_t *parts, int64_t *start, size_t n, void *ctx)
{
    ahead_member *a = ctx;
    for (size_t i = 0; i < n; i++) {
        a->owned[parts[i]] = true;
        /* Nothing is committed: a partition coming back is read again, so
         * there is always a backlog to hold records from. */
        start[i] = CUE_KAFKA_OFFSET_BEGINNING;
    }
    a->handed = 0;
    return 0;
}

static void ahead_revoked(const int32_t *parts, size_t n, bool lost, void *ctx)
{
    ahead_member *a = ctx;
    for (size_t i = 0; i < n; i++)
        a->owned[parts[i]] = false;
    a->revocations++;
    /* The ring is empty at the start of each call: records handed over in
     * this one before the revocation were held when the rebalance came. */
    if (a->handed > 0) a->held_revocations++;
    a->handed = 0;
    (void)lost;
}

static void ahead_message(const cue_kafka_msg *m, void *ctx)
{
    ahead_member *a = ctx;
    a->messages++;
    a->handed++;
    if (!a->owned[m->partition]) a->strays++;
    /* Work per record (a millisecond): the backlog outlasts the rebalance,
     * and the polls of a call are far enough apart for the revocation to
     * come inside a call, with records held, not between calls (at 0.1 ms
     * a record, a third of the first revocations came with none held). */
    nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    if (a->stall_ms > 0 && a->handed == 1) {
        nanosleep(&(struct timespec){.tv_sec = a->stall_ms / 1000,
                                     .tv_nsec = (long)(a->stall_ms % 1000) * 1000000},
                  NULL);
        a->stall_ms = 0;
    }
}

/* Set, it makes the consumer hold records ahead; the hint itself is of no use here. */
static void ahead_prefetch(const cue_kafka_msg *m, int stage, void *ctx)
{
    (void)m;
    (void)stage;
    (void)ctx;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Partitions owned by A and by the first n other members. */
static int owned_total(const ahead_member *a, const seen *os, int n)
{
    int total = 0;
    for (int p = 0; p < 4; p++)
        total += a->owned[p];
    for (int i = 0; i < n; i++)
        total += os[i].assigned - os[i].revoked;
    return total;
}

/* Serves A (its calls counted from zero) and each other member in turn, from
 * this one thread, waiting on their pipes when none had anything. */
static void serve_members(cue_kafka *ka, ahead_member *a, cue_kafka **others, int n)
{
    a->handed = 0;
    size_t served = cue_kafka_consume(ka, 64);
    struct pollfd p[4] = {{.fd = cue_kafka_consumer_fd(ka), .events = POLLIN}};
    for (int i = 0; i < n; i++) {
        served += cue_kafka_consume(others[i], 64);
        p[i + 1] = (struct pollfd){.fd = cue_kafka_consumer_fd(others[i]), .events = POLLIN};
    }
    if (served > 0 || poll(p, (nfds_t)n + 1, 10) <= 0) return;
    for (int i = 0; i <= n; i++)
        cue_kafka_drain_fd(p[i].fd);
}

/* Records held ahead for the prefetch callback are handed to message()
 * before the consumer reports a rebalance: none reaches message() after its
 * partition's revoked() ran. Eager rebalances (the range assignor) take
 * every partition of A's at once, so whatever A holds then is at stake. */
Test(kafka, held_records_are_handed_over_before_a_revocation, .timeout = 240)
{
    cue_err err = {0};
    cue_kafka_mock *m = mock_with_records(4, 4000);

    cue_config cfg;
    config_for(&cfg, cue_kafka_mock_bootstraps(m), "ahead");
    /* The mock group waits most of session.timeout.ms for members to
     * rejoin; frequent heartbeats tell A of a rebalance soon. */
    cr_assert(cue_config_set(&cfg, "kafka",
                             "{\"consumer\": {\"partition.assignment.strategy\": \"range\", "
                             "\"heartbeat.interval.ms\": 100, \"session.timeout.ms\": 3000}}",
                             &err) == 0,
              "%s", err.msg);
    ahead_member a = {0};
    cue_kafka_handler ha = {.assigned = ahead_assigned,
                            .revoked = ahead_revoked,
                            .message = ahead_message,
                            .prefetch = ahead_prefetch,
                            .ctx = &a};
    cue_kafka *ka = NULL;
    cr_assert(cue_kafka_open(&ka, &cfg, &ha, &err) == 0, "%s", err.msg);
    int32_t parts = 0;
    cr_assert(cue_kafka_wait_ready(ka, 10000, &parts, &err) == 0, "%s", err.msg);
    cr_assert(cue_kafka_subscribe(ka, &err) == 0, "%s", err.msg);
    int64_t until = mono_ms() + 20000;
    while (a.messages == 0 && mono_ms() < until)
        serve_members(ka, &a, NULL, 0);
    cr_assert(a.messages > 0, "A got no records");

    /* Each member that joins or leaves takes all of A's partitions away, and
     * gives some back (read again from the start): another chance for the
     * revocation to come with records held, should one come between calls.
     * Members join up to three, then leave and join again, until one does
     * or ten rebalances have passed. Left to chance, on a loaded machine ten
     * in a row came between calls; A now pauses inside a call after each
     * change, holding records, until the revocation is surely on its way. */
    cue_kafka *others[3] = {0};
    seen os[3] = {0};
    cue_kafka_handler ho[3];
    int joined = 0;
    bool growing = true;
    for (int rebalances = 0; rebalances < 10 && a.held_revocations == 0; rebalances++) {
        int revocations = a.revocations;
        if (joined == 3) growing = false;
        if (joined == 1) growing = true;
        if (growing) {
            os[joined] = (seen){0};
            ho[joined] = handler(&os[joined]);
            cr_assert(cue_kafka_open(&others[joined], &cfg, &ho[joined], &err) == 0, "%s", err.msg);
            cr_assert(cue_kafka_subscribe(others[joined], &err) == 0, "%s", err.msg);
            joined++;
        } else {
            joined--;
            cue_kafka_close(others[joined], 5000);
            cr_expect_eq(os[joined].fatal, 0);
        }
        /* Past a few heartbeats (100 ms), well inside the session. */
        a.stall_ms = 1000;
        until = mono_ms() + 20000;
        while ((a.revocations == revocations || owned_total(&a, os, joined) < 4) &&
               mono_ms() < until)
            serve_members(ka, &a, others, joined);
        cr_assert(a.revocations > revocations, "%d members now and A lost nothing", joined);
        cr_assert(owned_total(&a, os, joined) == 4, "the group did not settle");
    }
    cr_expect(a.held_revocations > 0, "no revocation came with records held (%d revocations)",
              a.revocations);
    cr_expect_eq(a.strays, 0, "%d records reached message() after their partition was revoked",
                 a.strays);
    /* One at a time, each into a settled group: one closed in the middle
     * of a rebalance may not have its assignment yet (cue_kafka_close then
     * keeps it for the process's exit). */
    while (joined > 0) {
        joined--;
        cue_kafka_close(others[joined], 5000);
        cr_expect_eq(os[joined].fatal, 0);
        until = mono_ms() + 20000;
        while (owned_total(&a, os, joined) < 4 && mono_ms() < until)
            serve_members(ka, &a, others, joined);
    }
    cue_kafka_close(ka, 5000);
    cue_kafka_mock_stop(m);
}
