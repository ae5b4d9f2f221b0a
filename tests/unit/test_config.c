/* The configuration file: defaults, every kind of bad value named by path. */
#include "cuepoint/config.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct config_case {
    const char *text;
    int rc;
    const char *in_message; /* a substring the error must contain */
} config_case;

static const config_case cases[] = {
    {"{}", 0, NULL},
    {"{\"application.id\":\"app\",\"state.dir\":\"/tmp/s\",\"allowed.lateness.ms\":\"2h\"}", 0,
     NULL},
    {"{\"state.ttl\":\"90d\"}", 0, NULL},
    {"{\"state.ttl\":0}", 0, NULL},
    {"{\"state.ttl\":\"30s\"}", CUE_ECONFIG, "$.state.ttl: must be 0 (off) or a duration"},
    {"{\"state.ttl\":\"soon\"}", CUE_ECONFIG, "$.state.ttl"},
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
    {"{\"input.topics\":[\"web\",\"mobile\"]}", 0, NULL},
    {"{\"input.topic\":\"web\",\"input.topics\":[\"web\",\"mobile\"]}", CUE_ECONFIG,
     "give either input.topic (one topic) or input.topics (a list), not both"},
    {"{\"input.topics\":[]}", CUE_ECONFIG, "$.input.topics: must be a non-empty list"},
    {"{\"input.topics\":\"web\"}", CUE_ECONFIG, "$.input.topics: must be a non-empty list"},
    {"{\"input.topics\":[\"web\",\"we b\"]}", CUE_ECONFIG, "$.input.topics[1]"},
    {"{\"input.topics\":[\"web\",\"web\"]}", CUE_ECONFIG,
     "$.input.topics[1]: topic 'web' is listed twice"},
    {"{\"input.topics\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}", CUE_ECONFIG,
     "9 topics, more than the limit of 8"},
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
    {"{\"admin.users.token\":\"\"}", 0, NULL},
    {"{\"admin.users.token\":\"tOk3n-._~+/tOk3n==\"}", 0, NULL},
    {"{\"admin.users.token\":\"short\"}", CUE_ECONFIG, "5 bytes; a token needs 16 at least"},
    {"{\"admin.users.token\":\"has a space in it, long enough\"}", CUE_ECONFIG,
     "$.admin.users.token: a token is letters"},
    {"{\"admin.users.token\":\"==paddingfirst0123456\"}", CUE_ECONFIG, "padding"},
    {"{\"admin.users.token\":5}", CUE_ECONFIG, "$.admin.users.token: must be a string"},
    {"{\"admin.user.token\":\"x\"}", CUE_ECONFIG, "did you mean 'admin.users.token'"},
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

/* input.topics is the list; input.topic the list of one, kept in both forms. */
Test(config, input_topics)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cr_assert_eq(cfg.input_topic_count, 1);
    cr_assert_str_eq(cfg.input_topics[0], "events");
    cue_err err = {0};
    const char *text = "{\"input.topics\":[\"web\",\"billing\"]}";
    cr_assert(cue_config_load_text(&cfg, "t", text, strlen(text), &err) == 0, "%s", err.msg);
    cr_assert_eq(cfg.input_topic_count, 2);
    cr_assert_str_eq(cfg.input_topic, "web");
    cr_assert_str_eq(cfg.input_topics[1], "billing");
    cr_assert_eq(cue_config_input_topic_index(&cfg, "billing"), 1);
    cr_assert_eq(cue_config_input_topic_index(&cfg, "events"), -1);
    char list[64];
    cue_config_input_topics_join(&cfg, list, sizeof list);
    cr_assert_str_eq(list, "web,billing");
    cr_assert_eq(cue_config_one_input(&cfg, "offsets", &err), CUE_ECONFIG);
    cr_assert(strstr(err.msg, "input.topics lists 2 (web,billing)") != NULL, "%s", err.msg);
    /* The dump reads back as the same list. */
    cue_buf b;
    cr_assert(cue_buf_init(&b, 256) == 0);
    cr_assert(cue_config_dump(&cfg, &b) == 0);
    cr_assert(strstr(b.data, "\"input.topics\"") != NULL, "%.*s", (int)b.len, b.data);
    cue_config back;
    cue_config_defaults(&back);
    cr_assert(cue_config_load_text(&back, "dump", b.data, b.len, &err) == 0, "%s", err.msg);
    cr_assert_eq(back.input_topic_count, 2);
    cr_assert_str_eq(back.input_topics[1], "billing");
    cue_buf_deinit(&b);
    /* On the command line either key replaces the file's input. */
    cr_assert(cue_config_set(&cfg, "input.topic", "events", &err) == 0, "%s", err.msg);
    cr_assert_eq(cfg.input_topic_count, 1);
    cr_assert_eq(cue_config_one_input(&cfg, "offsets", &err), 0);
    cr_assert(cue_config_set(&cfg, "input.topics", "[\"a\",\"b\",\"c\"]", &err) == 0, "%s",
              err.msg);
    cr_assert_eq(cfg.input_topic_count, 3);
    cr_assert_str_eq(cfg.input_topic, "a");
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
    /* A path read from a file is still a path in the config: taken from the
     * config's directory (both are in /tmp here). */
    cr_assert_str_eq(cfg.state_dir, "/tmp/from-file");
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
    cr_assert_eq(cfg.state_ttl_ms, 0, "state.ttl is off by default");
    cr_assert(cue_config_set(&cfg, "state.ttl", "90d", &err) == 0, "%s", err.msg);
    cr_assert_eq(cfg.state_ttl_ms, 90LL * 86400000);
}

/* librdkafka properties through --set: kafka.PROP for both clients,
 * kafka.consumer.PROP and kafka.producer.PROP for one; cuepoint's own are
 * refused as in the file. */
Test(config, set_kafka_properties)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cr_assert(cue_config_set(&cfg, "kafka.fetch.wait.max.ms", "10", &err) == 0, "%s", err.msg);
    cr_assert(cue_config_set(&cfg, "kafka.consumer.fetch.min.bytes", "1", &err) == 0, "%s",
              err.msg);
    cr_assert(cue_config_set(&cfg, "kafka.producer.linger.ms", "5", &err) == 0, "%s", err.msg);
    cr_assert_eq(cfg.kafka_len, 3);
    cr_assert_str_eq(cue_config_kafka_key(&cfg, 0), "fetch.wait.max.ms");
    cr_assert_str_eq(cue_config_kafka_value(&cfg, 0), "10");
    cr_assert_eq(cfg.kafka[0].clients, CUE_KAFKA_BOTH);
    cr_assert_str_eq(cue_config_kafka_key(&cfg, 1), "fetch.min.bytes");
    cr_assert_eq(cfg.kafka[1].clients, CUE_KAFKA_CONSUMER);
    cr_assert_str_eq(cue_config_kafka_key(&cfg, 2), "linger.ms");
    cr_assert_eq(cfg.kafka[2].clients, CUE_KAFKA_PRODUCER);
    cr_assert(cue_config_set(&cfg, "kafka.producer.linger.ms", "0.5", &err) == 0, "%s", err.msg);
    cr_assert_str_eq(cue_config_kafka_value(&cfg, 3), "0.5");
    cr_assert(cue_config_set(&cfg, "kafka.consumer", "{}", &err) != 0);
    cr_assert(strstr(err.msg, "one property at a time") != NULL, "%s", err.msg);
    cr_assert(cue_config_set(&cfg, "kafka.group.id", "x", &err) != 0);
    cr_assert(strstr(err.msg, "$.kafka.group.id: set by cuepoint") != NULL, "%s", err.msg);
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

/* Relative paths in a file are the file's: its directory is prefixed; absolute
 * ones, "" (switched off) and command-line values stay as they are. */
Test(config, paths_relative_to_the_file)
{
    char dir[] = "/tmp/cue-test-dir-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[128], path[160], secret[160];
    snprintf(sub, sizeof sub, "%s/etc", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    snprintf(secret, sizeof secret, "%s/app.txt", sub);
    FILE *f = fopen(secret, "w");
    cr_assert_not_null(f);
    fputs("from-sibling\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/c.json", sub);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"machines.dir\":\"m\",\"state.dir\":\"../var/state\",\"policies\":\"\","
          "\"application.id\":{\"file\":\"app.txt\"},\"log.level\":\"warn\"}",
          f);
    fclose(f);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cr_assert_eq(cfg.log_level, CUE_LOG_INFO);
    cue_err err = {0};
    cr_assert(cue_config_load(&cfg, path, &err) == 0, "%s", err.msg);
    char want[200];
    snprintf(want, sizeof want, "%s/m", sub);
    cr_expect_str_eq(cfg.machines_dir, want);
    snprintf(want, sizeof want, "%s/../var/state", sub);
    cr_expect_str_eq(cfg.state_dir, want);
    cr_expect_str_eq(cfg.policies, "");
    cr_expect_str_eq(cfg.application_id, "from-sibling");
    cr_expect_eq(cfg.log_level, CUE_LOG_WARN);
    cr_assert(cue_config_set(&cfg, "machines.dir", "rel", &err) == 0, "%s", err.msg);
    cr_expect_str_eq(cfg.machines_dir, "rel");
    unlink(secret);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

Test(config, a_missing_file_is_not_found)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cr_expect_eq(cue_config_load(&cfg, "/tmp/cue-no-such-dir/c.json", &err), CUE_ENOTFOUND);
    cr_expect(strstr(err.msg, "/tmp/cue-no-such-dir/c.json") != NULL, "%s", err.msg);
}

/* The dump is JSON a config file can hold: numbers and booleans as they were
 * written, nested objects indented, and it loads back to the same dump. */
Test(config, dump_reads_back)
{
    char path[64];
    write_temp(path, ".json",
               "{\"commit.interval.ms\":250,\"log.level\":\"debug\",\"event.attributes\":"
               "{\"locale\":null},\"kafka\":{\"socket.timeout.ms\":3000,\"consumer\":"
               "{\"check.crcs\":true},\"producer\":{\"linger.ms\":\"7\"}}}");
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cr_assert(cue_config_load(&cfg, path, &err) == 0, "%s", err.msg);
    /* The defaults are relative to the working directory; read back from a
     * file elsewhere they would not be the same paths. */
    cr_assert(cue_config_set(&cfg, "state.dir", "/var/lib/x", &err) == 0, "%s", err.msg);
    cr_assert(cue_config_set(&cfg, "machines.dir", "/usr/share/x", &err) == 0, "%s", err.msg);
    cue_buf b;
    cue_buf_init(&b, 0);
    cr_assert_eq(cue_config_dump(&cfg, &b), 0);
    static const char *const parts[] = {"\n  \"commit.interval.ms\": 250,\n",
                                        "\n  \"log.level\": \"debug\",\n",
                                        "\n    \"locale\": null\n",
                                        "\n    \"socket.timeout.ms\": 3000,\n",
                                        "\n      \"check.crcs\": true\n",
                                        "\n      \"linger.ms\": \"7\"\n",
                                        "\n  }\n}\n"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        cr_expect(strstr(b.data, parts[i]) != NULL, "no '%s' in\n%s", parts[i], b.data);
    char again[64];
    write_temp(again, ".json", b.data);
    cue_config cfg2;
    cue_config_defaults(&cfg2);
    cr_assert(cue_config_load(&cfg2, again, &err) == 0, "%s", err.msg);
    cue_buf b2;
    cue_buf_init(&b2, 0);
    cr_assert_eq(cue_config_dump(&cfg2, &b2), 0);
    cr_expect_str_eq(b2.data, b.data);
    cue_buf_deinit(&b2);
    cue_buf_deinit(&b);
    unlink(again);
    unlink(path);
}

Test(config, the_user_api_token_is_a_secret)
{
    setenv("CUE_TEST_TOKEN", "env-token-0123456789", 1);
    char file[64], path[64], text[256];
    write_temp(file, ".txt", "file-token-0123456789\n");
    cue_config cfg;
    cue_config_defaults(&cfg);
    cr_expect_str_eq(cfg.admin_users_token, "", "a token by default");
    cue_err err = {0};
    cr_assert(cue_config_set(&cfg, "admin.users.token", "{\"env\": \"CUE_TEST_TOKEN\"}", &err) == 0,
              "%s", err.msg);
    cr_expect_str_eq(cfg.admin_users_token, "env-token-0123456789");
    snprintf(text, sizeof text, "{\"admin.users.token\":{\"file\":\"%s\"}}", file);
    write_temp(path, ".json", text);
    cr_assert(cue_config_load(&cfg, path, &err) == 0, "%s", err.msg);
    cr_expect_str_eq(cfg.admin_users_token, "file-token-0123456789", "the newline is dropped");
    cue_buf b;
    cue_buf_init(&b, 0);
    cue_config_dump(&cfg, &b);
    cr_expect(strstr(b.data, "file-token") == NULL, "the token in the dump:\n%s", b.data);
    cr_expect(strstr(b.data, "\"admin.users.token\": \"[redacted]\"") != NULL, "%s", b.data);
    cue_buf_deinit(&b);
    /* A bad one is not kept, nor quoted. */
    setenv("CUE_TEST_TOKEN", "bad token, with spaces", 1);
    cr_expect(cue_config_set(&cfg, "admin.users.token", "{\"env\": \"CUE_TEST_TOKEN\"}", &err) !=
              0);
    cr_expect(strstr(err.msg, "spaces") == NULL, "'%s' quotes the token", err.msg);
    cr_expect_str_eq(cfg.admin_users_token, "");
    cue_config_defaults(&cfg);
    cue_buf_init(&b, 0);
    cue_config_dump(&cfg, &b);
    cr_expect(strstr(b.data, "\"admin.users.token\": \"\"") != NULL, "%s", b.data);
    cue_buf_deinit(&b);
    unlink(file);
    unlink(path);
}
