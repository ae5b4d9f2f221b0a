/* The policy compiler's errors and the experiment assignment's split; the
 * rules themselves are golden-tested (tests/golden/policy.sh). */
#include "cuepoint/policy.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static const char machine[] =
    "{\"name\":\"m\",\"version\":1,\"start\":{\"event\":\"hello\"},\"initial\":\"on\","
    "\"states\":{\"on\":{\"on\":[{\"event\":\"ping\",\"do\":[{\"emit\":\"pinged\"}]}]}}}";

static int load(const char *text, cue_machines *ms, cue_policy **p, cue_err *err)
{
    char path[64];
    write_temp(path, ".json", text);
    int rc = cue_policy_load(p, path, ms, err);
    unlink(path);
    return rc;
}

Test(policy, split_is_within_one_percent_of_the_weights_over_100k_users)
{
    cue_machines *ms = compile_text(machine);
    cue_policy *p = NULL;
    cue_err err = {0};
    cr_assert_eq(load("{\"experiments\":[{\"name\":\"copy\",\"holdout\":0.1,"
                      "\"variants\":{\"a\":1,\"b\":2,\"c\":1}}]}",
                      ms, &p, &err),
                 0, "%s", err.msg);
    int counts[4] = {0}; /* holdout, a, b, c */
    char id[16];
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        int len = snprintf(id, sizeof id, "u%07d", i);
        int v = cue_policy_assign(p, 0, id, (size_t)len);
        cr_assert(v >= -1 && v < 3);
        counts[v + 1]++;
        cr_assert_eq(cue_policy_assign(p, 0, id, (size_t)len), v, "the same user, the same answer");
    }
    const double want[4] = {0.10, 0.9 * 0.25, 0.9 * 0.5, 0.9 * 0.25};
    for (int k = 0; k < 4; k++)
        cr_assert(fabs((double)counts[k] / n - want[k]) < 0.01, "bucket %d: %.4f, want %.4f", k,
                  (double)counts[k] / n, want[k]);
    cue_policy_free(p);
    cue_machines_free(ms);
}

Test(policy, two_experiments_assign_independently)
{
    cue_machines *ms = compile_text(machine);
    cue_policy *p = NULL;
    cue_err err = {0};
    cr_assert_eq(load("{\"experiments\":[{\"name\":\"x\",\"holdout\":0.5,\"variants\":{\"a\":1}},"
                      "{\"name\":\"y\",\"holdout\":0.5,\"variants\":{\"a\":1}}]}",
                      ms, &p, &err),
                 0, "%s", err.msg);
    int both = 0;
    char id[16];
    for (int i = 0; i < 20000; i++) {
        int len = snprintf(id, sizeof id, "u%07d", i);
        both += cue_policy_assign(p, 0, id, (size_t)len) < 0 &&
                cue_policy_assign(p, 1, id, (size_t)len) < 0;
    }
    /* Independent halves: about a quarter in both holdouts, not a half. */
    cr_assert(both > 4500 && both < 5500, "%d of 20000 in both holdouts", both);
    cue_policy_free(p);
    cue_machines_free(ms);
}

Test(policy, errors_name_the_file_and_the_json_path)
{
    cue_machines *ms = compile_text(machine);
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"caps\":[{\"name\":\"c\",\"window\":\"24h\",\"max\":99}]}", "$.caps[0]: max: a whole"},
        {"{\"caps\":[{\"name\":\"c\",\"window\":\"24h\",\"calendar\":\"day\",\"max\":1}]}",
         "$.caps[0]: give exactly one of"},
        {"{\"machines\":{\"nope\":{}}}", "$.machines.nope: no machine 'nope'"},
        {"{\"machines\":{\"m\":{\"triggers\":{\"x\":{}}}}}", "machine has no trigger 'x'"},
        {"{\"defaults\":{\"class\":\"urgent\"}}", "$.defaults.class: unknown class 'urgent'"},
        {"{\"defaults\":{\"channels\":[\"fax\"]}}", "channels are push, email, in_app and sms"},
        {"{\"quiet_hours\":{\"start\":\"25:00\",\"end\":\"08:00\"}}", "$.quiet_hours.start"},
        {"{\"timezone\":{\"regions\":{\"DE\":\"Europe/Berlim\"}}}",
         "$.timezone.regions.DE: unknown time zone 'Europe/Berlim'"},
        {"{\"experiments\":[{\"name\":\"e\",\"variants\":{}}]}", "$.experiments[0]: variants"},
        {"{\"capz\":[]}", "$: unknown key 'capz'"},
        {"[1]", "the policy file is a JSON object"},
        {"{\"caps\":[{\"name\":\"c\",\"cooldown\":\"1h\",\"triggers\":[\"nope\"]}]}",
         "no machine emits 'nope'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cue_policy *p = NULL;
        cue_err err = {0};
        cr_assert_eq(load(cases[i].text, ms, &p, &err), CUE_ECONFIG, "case %zu loaded", i);
        cr_assert(strstr(err.msg, cases[i].want), "case %zu: '%s' lacks '%s'", i, err.msg,
                  cases[i].want);
        cr_assert(strstr(err.msg, "/tmp/cue-test-"), "case %zu names no file: %s", i, err.msg);
    }
    cue_machines_free(ms);
}

/* The readings exposed for checkers: the zone falls back as rule 4's does. */
Test(policy, readings_for_checkers)
{
    cue_machines *ms = compile_text(machine);
    cue_policy *p = NULL;
    cue_policy_tz *z = NULL;
    cue_err err = {0};
    cr_assert_eq(load("{\"timezone\":{\"default\":\"UTC\",\"regions\":{\"JP\":\"Asia/Tokyo\"}},"
                      "\"quiet_hours\":{\"start\":\"21:00\",\"end\":\"08:00\"},"
                      "\"consent\":{\"defaults\":[{\"regions\":[\"EU\"],\"mode\":\"opt_in\"},"
                      "{\"regions\":[\"*\"],\"mode\":\"opt_out\"}]},"
                      "\"experiments\":[{\"name\":\"x\",\"triggers\":[\"pinged\"],"
                      "\"holdout\":0.1,\"variants\":{\"a\":1}}]}",
                      ms, &p, &err),
                 0, "%s", err.msg);
    cr_assert_eq(cue_policy_tz_new(&z, &err), 0, "%s", err.msg);
    static cue_user u; /* large: not on the stack */
    cue_user_init(&u, "u1", 2);
    const int64_t noon_utc = 1781092800000LL; /* 2026-06-10T12:00:00Z */
    cr_assert(!cue_policy_quiet_at(p, z, &u, noon_utc), "no zone: UTC, noon");
    memcpy(u.attrs[CUE_ATTR_REGION], "JP", 2);
    u.attr_len[CUE_ATTR_REGION] = 2;
    cr_assert(cue_policy_quiet_at(p, z, &u, noon_utc), "region JP: 21:00 in Tokyo");
    memcpy(u.attrs[CUE_ATTR_TIMEZONE], "Europe/Berlin", 13);
    u.attr_len[CUE_ATTR_TIMEZONE] = 13;
    cr_assert(!cue_policy_quiet_at(p, z, &u, noon_utc), "the zone first: 14:00 in Berlin");
    cr_assert(!cue_policy_opt_in(p, &u), "JP is opt-out");
    memcpy(u.attrs[CUE_ATTR_REGION], "EU", 2);
    cr_assert(cue_policy_opt_in(p, &u), "EU is opt-in");
    cr_assert_eq(cue_policy_experiment_of(p, 0, 0), 0, "pinged is in x");
    cr_assert(cue_policy_class_bypass(p, 0), "transactional bypasses by default");
    cr_assert(!cue_policy_class_bypass(p, 1));
    cue_policy_tz_free(z);
    cue_policy_free(p);
    cue_machines_free(ms);
}

/* Found by fuzzing (clang's UBSan): a holdout share out of range was refused,
 * but converted to basis points first, which does not fit a uint32_t. */
Test(policy, a_holdout_out_of_range_is_refused_before_it_is_converted)
{
    cue_machines *ms = compile_text(machine);
    static const char *const shares[] = {"1e300", "-1e300", "4294967296", "1.0001", "-0.5"};
    for (size_t i = 0; i < sizeof shares / sizeof *shares; i++) {
        char text[256];
        int n =
            snprintf(text, sizeof text,
                     "{\"experiments\":[{\"name\":\"x\",\"holdout\":%s,\"variants\":{\"a\":1}}]}",
                     shares[i]);
        cue_policy *p = NULL;
        cue_err err = {0};
        cr_assert_eq(cue_policy_load_text(&p, "p.json", text, (size_t)n, ms, &err), CUE_ECONFIG,
                     "holdout %s loaded", shares[i]);
        cr_assert(strstr(err.msg, "p.json") && strstr(err.msg, "holdout: a share between 0 and 1"),
                  "holdout %s: %s", shares[i], err.msg);
    }
    cue_machines_free(ms);
}
