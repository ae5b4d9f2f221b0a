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
