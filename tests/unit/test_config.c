/* The configuration file: defaults, every kind of bad value named by path. */
#include "cuepoint/config.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

typedef struct config_case {
    const char *text;
    int rc;
    const char *in_message; /* a substring the error must contain */
} config_case;

static const config_case cases[] = {
    {"{}", 0, NULL},
    {"{\"application.id\":\"app\",\"state.dir\":\"/tmp/s\",\"allowed.lateness.ms\":\"2h\"}", 0,
     NULL},
    {"{\"aplication.id\":\"x\"}", CUE_ECONFIG, "did you mean 'application.id'"},
    {"{\"state.dir\":5}", CUE_ECONFIG, "$.state.dir"},
    {"{\"statestore.cache.max.bytes\":10}", CUE_ECONFIG, "$.statestore.cache.max.bytes"},
    {"{\"late.policy\":\"drop\"}", CUE_ECONFIG, "\"apply\" or \"dead_letter\""},
    {"{\"event.user_id\":\"user_id\"}", CUE_ECONFIG, "$.event.user_id"},
    {"{\"event.attributes\":{\"timezon\":\"/tz\"}}", CUE_ECONFIG, "did you mean 'timezone'"},
    {"{\"application.id\":{\"env\":\"CUE_TEST_UNSET_VARIABLE\"}}", CUE_ECONFIG,
     "CUE_TEST_UNSET_VARIABLE is not set"},
    {"{\"application.id\":", CUE_ECONFIG, "line 1"},
    {"[]", CUE_ECONFIG, "must be a JSON object"},
    {"{\"input.topic\":\"ev ents\"}", CUE_ECONFIG, "$.input.topic"},
    {"{\"trigger.topic\":\"\"}", CUE_ECONFIG, "must not be empty"},
    {"{\"wall.clock.advance\":\"yes\"}", CUE_ECONFIG, "true or false"},
    {"{\"kafka\":{\"group.id\":\"x\"}}", CUE_ECONFIG,
     "$.kafka.group.id: set by cuepoint; use application.id"},
    {"{\"kafka\":{\"consumer\":{\"enable.auto.commit\":true}}}", CUE_ECONFIG,
     "$.kafka.consumer.enable.auto.commit"},
    {"{\"kafka\":{\"producer\":{\"acks\":1}}}", CUE_ECONFIG, "acks=all"},
    {"{\"kafka\":{\"consumer\":5}}", CUE_ECONFIG, "$.kafka.consumer"},
    {"{\"kafka\":{\"Bad Name\":\"x\"}}", CUE_ECONFIG, "not a librdkafka property name"},
    /* Found by fuzzing: an empty name passed, and librdkafka refused it only at start. */
    {"{\"kafka\":{\"consumer\":{\"\":5}}}", CUE_ECONFIG,
     "$.kafka.consumer.: not a librdkafka property name"},
    {"{\"kafka\":{\"\":\"x\"}}", CUE_ECONFIG, "$.kafka.: not a librdkafka property name"},
    {"{\"kafka\":{\"socket.timeout.ms\":100,\"consumer\":{\"fetch.wait.max.ms\":10},"
     "\"producer\":{\"linger.ms\":\"2\",\"enable.gapless.guarantee\":true}}}",
     0, NULL},
};

Test(config, table_of_files)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[64];
        write_temp(path, ".json", cases[i].text);
        cue_config cfg;
        cue_config_defaults(&cfg);
        cue_err err = {0};
        int rc = cue_config_load(&cfg, path, &err);
        cr_expect_eq(rc, cases[i].rc, "%s: rc %d (%s)", cases[i].text, rc, err.msg);
        if (cases[i].in_message)
            cr_expect(strstr(err.msg, cases[i].in_message) != NULL, "%s: message '%s' lacks '%s'",
                      cases[i].text, err.msg, cases[i].in_message);
        unlink(path);
    }
}

Test(config, values_from_env_and_file_never_logged)
{
    setenv("CUE_TEST_APP", "from-env", 1);
    char secret[64], path[64], text[256];
    write_temp(secret, ".txt", "from-file\n");
    snprintf(text, sizeof text,
             "{\"application.id\":{\"env\":\"CUE_TEST_APP\"},\"state.dir\":{\"file\":\"%s\"}}",
             secret);
    write_temp(path, ".json", text);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cr_assert(cue_config_load(&cfg, path, &err) == 0, "%s", err.msg);
    cr_assert_str_eq(cfg.application_id, "from-env");
    cr_assert_str_eq(cfg.state_dir, "from-file");
    unlink(secret);
    unlink(path);
}

Test(config, overrides_and_defaults)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cr_assert_str_eq(cfg.application_id, "cuepoint");
    cr_assert_eq(cfg.allowed_lateness_ms, 3600000);
    cr_assert_eq(cfg.late_policy, CUE_LATE_DEAD_LETTER);
    cue_err err = {0};
    cr_assert(cue_config_set(&cfg, "allowed.lateness.ms", "90000", &err) == 0, "%s", err.msg);
    cr_assert_eq(cfg.allowed_lateness_ms, 90000);
    cr_assert(cue_config_set(&cfg, "state.dir", "/tmp/x y", &err) == 0, "%s", err.msg);
    cr_assert_str_eq(cfg.state_dir, "/tmp/x y");
    cr_assert(cue_config_set(&cfg, "late.policy", "apply", &err) == 0, "%s", err.msg);
    cr_assert_eq(cfg.late_policy, CUE_LATE_APPLY);
    cr_assert(cue_config_set(&cfg, "no.such.key", "1", &err) != 0);
}

Test(config, kafka_passthrough_and_secrets)
{
    setenv("CUE_TEST_SECRET", "hunter2-very-secret", 1);
    char path[64];
    write_temp(path, ".json",
               "{\"kafka\":{\"sasl.password\":{\"env\":\"CUE_TEST_SECRET\"},"
               "\"ssl.key.pem\":\"PEM-SECRET\",\"client.rack\":\"r1\","
               "\"consumer\":{\"group.instance.id\":\"i-1\"},"
               "\"producer\":{\"oauth.secret\":\"s3\",\"linger.ms\":7}}}");
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cr_assert(cue_config_load(&cfg, path, &err) == 0, "%s", err.msg);
    cr_assert_eq(cfg.kafka_len, 6);
    bool seen_instance = false, seen_linger = false;
    for (size_t i = 0; i < cfg.kafka_len; i++) {
        const char *k = cue_config_kafka_key(&cfg, i), *v = cue_config_kafka_value(&cfg, i);
        if (strcmp(k, "group.instance.id") == 0)
            seen_instance = cfg.kafka[i].clients == CUE_KAFKA_CONSUMER && strcmp(v, "i-1") == 0;
        if (strcmp(k, "linger.ms") == 0)
            seen_linger = cfg.kafka[i].clients == CUE_KAFKA_PRODUCER && strcmp(v, "7") == 0;
        if (strcmp(k, "sasl.password") == 0) cr_expect_str_eq(v, "hunter2-very-secret");
    }
    cr_expect(seen_instance && seen_linger);
    cue_buf b;
    cue_buf_init(&b, 0);
    cue_config_dump(&cfg, &b);
    cr_expect(strstr(b.data, "hunter2") == NULL, "a secret in the dump:\n%s", b.data);
    cr_expect(strstr(b.data, "PEM-SECRET") == NULL && strstr(b.data, "s3\"") == NULL);
    cr_expect(strstr(b.data, "\"client.rack\": \"r1\"") != NULL, "%s", b.data);
    cr_expect(strstr(b.data, "\"sasl.password\": \"[redacted]\"") != NULL, "%s", b.data);
    cue_buf_deinit(&b);
    cr_expect(cue_config_secret("sasl.jaas.config") && cue_config_secret("ssl.key.password") &&
              cue_config_secret("x.secret") && !cue_config_secret("ssl.ca.location") &&
              !cue_config_secret("client.id"));
    cr_expect_str_eq(cue_config_dead_letter_topic(&cfg), "cuepoint-dead-letters");
    unlink(path);
}
