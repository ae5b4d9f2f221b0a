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

Test(kafka, consumes_through_the_pipe_and_produces_with_reports, .timeout = 60)
{
    cue_err err = {0};
    cue_kafka_mock *m = NULL;
    cr_assert(cue_kafka_mock_start(&m, 1, &err) == 0, "%s", err.msg);
    cr_assert(cue_kafka_mock_topic_create(m, "events", 3, &err) == 0, "%s", err.msg);
    cue_kafka_loader *l = NULL;
    cr_assert(cue_kafka_loader_new(&l, cue_kafka_mock_bootstraps(m), NULL, 0, &err) == 0, "%s",
              err.msg);
    for (int i = 0; i < 30; i++) {
        char v[32];
        snprintf(v, sizeof v, "record-%d", i);
        cr_assert(cue_kafka_loader_send(l, "events", i % 3, "k", 1, v, strlen(v), &err) == 0);
    }
    cr_assert(cue_kafka_loader_flush(l, 10000, &err) == 0, "%s", err.msg);
    cue_kafka_loader_free(l);

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
