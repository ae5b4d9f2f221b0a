/* The policy compiler's errors and the experiment assignment's split; the
 * rules themselves are golden-tested (tests/golden/policy.sh). */
#include "cuepoint/policy.h"

#include "cuepoint/timefmt.h"

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
        {"{\"caps\":[{\"name\":\"c\",\"window\":\"24h\",\"max\":99}]}",
         "$.caps[0].max: expected a whole number"},
        {"{\"caps\":[{\"name\":\"c\",\"window\":\"24h\",\"calendar\":\"day\",\"max\":1}]}",
         "$.caps[0]: give exactly one of"},
        {"{\"machines\":{\"nope\":{}}}", "$.machines.nope: no machine 'nope'"},
        {"{\"machines\":{\"m\":{\"triggers\":{\"x\":{}}}}}", "machine has no trigger 'x'"},
        {"{\"defaults\":{\"class\":\"urgent\"}}", "$.defaults.class: unknown class 'urgent'"},
        {"{\"defaults\":{\"channels\":[\"fax\"]}}", "channels are push, email, in_app and sms"},
        {"{\"quiet_hours\":{\"start\":\"25:00\",\"end\":\"08:00\"}}", "$.quiet_hours.start"},
        {"{\"timezone\":{\"regions\":{\"DE\":\"Europe/Berlim\"}}}",
         "$.timezone.regions.DE: unknown time zone 'Europe/Berlim'"},
        {"{\"experiments\":[{\"name\":\"e\",\"variants\":{}}]}",
         "$.experiments[0].variants: expected an object"},
        {"{\"capz\":[]}", "$: unknown key 'capz' (did you mean 'caps'?)"},
        {"[1]", "$: expected a JSON object (the policy file), not a list"},
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

/* ---- deciding ---------------------------------------------------------- */

static int64_t at(const char *rfc3339)
{
    int64_t ms;
    cr_assert(cue_time_parse_rfc3339(rfc3339, strlen(rfc3339), &ms) == 0, "%s", rfc3339);
    return ms;
}

static const char record[] = "{\"id\":\"x\",\"data\":{\"n\":1}}";

static cue_policy_trigger timer_trigger(const char *id, int64_t time_ms)
{
    return (cue_policy_trigger){.machine = 0,
                                .trigger = 0,
                                .id = id,
                                .time_ms = time_ms,
                                .timer = true,
                                .rec = record,
                                .rec_len = sizeof record - 1};
}

/* Takes the user's one due deferral and decides it again at `now`, as the
 * task does when the partition's time passes its end. */
static void redecide(const cue_policy *p, cue_policy_tz *z, cue_user *u, int64_t now,
                     cue_decision *d)
{
    static cue_deferred x;
    cr_assert(cue_policy_take_due(u, now, &x), "nothing due");
    cue_policy_trigger t = {.id = x.id,
                            .time_ms = x.time_ms,
                            .timer = x.timer,
                            .late = x.late,
                            .rec = x.rec,
                            .rec_len = x.rec_len};
    cue_policy_decide(p, z, u, &t, now, d);
}

/* Issue 14: a timer's trigger let through late under late: "mark" that has
 * to wait first (quiet hours, a deferring cap) goes out marked, and max_age,
 * which it is past already, does not drop it while it waits. */
Test(policy, a_late_mark_survives_waiting_for_quiet_hours_and_caps)
{
    cue_machines *ms = compile_text(machine);
    cue_policy *p = NULL;
    cue_policy_tz *z = NULL;
    cue_err err = {0};
    cr_assert_eq(
        load("{\"defaults\":{\"channels\":[\"push\"],\"max_age\":\"1d\",\"late\":\"mark\"},"
             "\"quiet_hours\":{\"start\":\"21:00\",\"end\":\"08:00\"},"
             "\"caps\":[{\"name\":\"one\",\"window\":\"24h\",\"max\":1,\"on_cap\":"
             "\"defer\"}]}",
             ms, &p, &err),
        0, "%s", err.msg);
    cr_assert_eq(cue_policy_tz_new(&z, &err), 0, "%s", err.msg);
    static cue_user u;
    cue_user_init(&u, "u1", 2);
    cue_decision d;
    /* Due three days before the partition's time reaches it, at 22:00 UTC. */
    cue_policy_trigger t =
        timer_trigger("00000000000000000000000000000001", at("2026-06-10T01:00:00Z"));
    cue_policy_decide(p, z, &u, &t, at("2026-06-13T22:00:00Z"), &d);
    cr_assert_eq(d.outcome, CUE_OUTCOME_DEFERRED, "waits for the night to end, not dropped");
    cr_assert_eq(d.why, CUE_WHY_QUIET_HOURS);
    cr_assert(d.late, "the deferral says it is late");
    cr_assert(u.policy.n_deferred == 1 && u.policy.deferred[0].late, "the mark is kept");
    redecide(p, z, &u, at("2026-06-14T09:00:00Z"), &d);
    cr_assert_eq(d.outcome, CUE_OUTCOME_SENT);
    cr_assert(d.late, "sent after the night: still marked");
    cue_buf b;
    cue_buf_init(&b, 128);
    cue_policy_fields(p, &d, &b);
    cr_assert(strstr(b.data, "\"late\":true"), "%s", b.data);
    /* The cap (one a day) defers the next late one until the send leaves
     * the window; it goes out marked then. */
    t = timer_trigger("00000000000000000000000000000002", at("2026-06-10T02:00:00Z"));
    cue_policy_decide(p, z, &u, &t, at("2026-06-14T10:00:00Z"), &d);
    cr_assert_eq(d.outcome, CUE_OUTCOME_DEFERRED);
    cr_assert_eq(d.why, CUE_WHY_CAP);
    cr_assert_eq(d.until_ms, at("2026-06-15T09:00:00Z"));
    redecide(p, z, &u, at("2026-06-15T09:00:00Z"), &d);
    cr_assert_eq(d.outcome, CUE_OUTCOME_SENT);
    cr_assert(d.late);
    /* One that is not late (not a timer's) is still dropped when its wait
     * would take it past max_age: 02:00 to 08:00 the next day is 30 h. */
    t = timer_trigger("00000000000000000000000000000003", at("2026-06-15T02:00:00Z"));
    t.timer = false;
    cue_policy_decide(p, z, &u, &t, at("2026-06-15T22:00:00Z"), &d);
    cr_assert_eq(d.outcome, CUE_OUTCOME_SUPPRESSED);
    cr_assert_eq(d.why, CUE_WHY_TOO_LATE);
    cr_assert(!d.late);
    cue_buf_deinit(&b);
    cue_policy_tz_free(z);
    cue_policy_free(p);
    cue_machines_free(ms);
}

/* With --only, the policy file still names every journey: names of the
 * machines set aside are known (and their rules checked), not errors. */
Test(policy, names_of_machines_set_aside_by_only_are_known)
{
    static const char other[] =
        "{\"name\":\"o\",\"version\":1,\"start\":{\"event\":\"hi\"},\"initial\":\"on\","
        "\"states\":{\"on\":{\"on\":[{\"event\":\"x\",\"do\":[{\"emit\":\"ox\"}]}]}}}";
    char dir[64], path[128];
    temp_dir(dir);
    snprintf(path, sizeof path, "%s/m.json", dir);
    FILE *f = fopen(path, "w");
    fputs(machine, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/o.json", dir);
    f = fopen(path, "w");
    fputs(other, f);
    fclose(f);
    cue_machines *ms = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_machines_load(&ms, dir, "m", &err), 0, "%s", err.msg);
    cr_assert_eq(cue_machines_count(ms), 1);
    cr_assert_eq(cue_machines_set_aside(ms), 1);
    cue_policy *p = NULL;
    cr_assert_eq(load("{\"machines\":{\"o\":{\"class\":\"promotional\","
                      "\"triggers\":{\"ox\":{\"channels\":[\"email\"]}}}},"
                      "\"caps\":[{\"name\":\"c\",\"cooldown\":\"1h\",\"machines\":[\"o\"],"
                      "\"triggers\":[\"ox\"]}],"
                      "\"experiments\":[{\"name\":\"e\",\"triggers\":[\"ox\"],"
                      "\"variants\":{\"a\":1}}]}",
                      ms, &p, &err),
                 0, "%s", err.msg);
    cr_assert_eq(cue_policy_experiment_of(p, 0, 0), -1, "m's trigger is in no experiment");
    cr_assert_str_eq(cue_policy_class_name(p, cue_policy_class(p, 0, 0)), "lifecycle",
                     "o's rules do not land on m");
    cue_policy_free(p);
    p = NULL;
    /* ... but checked against them, as on a run of every journey. */
    cr_assert_eq(load("{\"machines\":{\"o\":{\"triggers\":{\"nope\":{}}}}}", ms, &p, &err),
                 CUE_ECONFIG);
    cr_assert(strstr(err.msg, "machine has no trigger 'nope'"), "%s", err.msg);
    cr_assert_eq(load("{\"machines\":{\"gone\":{}}}", ms, &p, &err), CUE_ECONFIG);
    /* An unknown --only name suggests the nearest. */
    cue_machines_free(ms);
    ms = NULL;
    cr_assert_eq(cue_machines_load(&ms, dir, "oo", &err), CUE_EMACHINE);
    cr_assert(strstr(err.msg, "no machine named 'oo'") && strstr(err.msg, "(did you mean 'o'?)"),
              "%s", err.msg);
    remove_tree(dir);
}

/* The rough-edges list: the check stopped at the first error, suggested
 * nothing for 'windw', and said "error: an object: default, regions". Now
 * every error (to CUE_POLICY_ERRORS_MAX), at its path, the nearest key or
 * name, and "expected ..., not ..." for a value of the wrong kind. */
Test(policy, every_error_is_reported_with_its_path_and_the_nearest_name)
{
    cue_machines *ms = compile_text(machine);
    char path[64];
    write_temp(path, ".json",
               "{\"timezone\":\"Europe/Berlin\","
               "\"caps\":[{\"name\":\"c\",\"windw\":\"24h\",\"max\":1},"
               "{\"name\":\"d\",\"window\":\"24h\",\"max\":1,\"triggers\":[\"pinge\"]}],"
               "\"machines\":{\"mm\":{}},"
               "\"defaults\":{\"class\":\"lifecycl\",\"channels\":[\"emial\"]},"
               "\"quiet_hours\":{\"start\":\"21:00\"}}");
    cue_diags d;
    cue_diags_init(&d);
    static const struct {
        const char *path, *msg;
    } want[] = {
        {"$.defaults.class", "unknown class 'lifecycl' (did you mean 'lifecycle'?)"},
        {"$.defaults.channels[0]", "unknown channel 'emial' (did you mean 'email'?)"},
        {"$.machines.mm", "no machine 'mm' in machines.dir (did you mean 'm'?)"},
        {"$.timezone",
         "expected an object with the keys default and regions, not \"Europe/Berlin\""},
        {"$.quiet_hours.end", "missing: expected a local time of day \"HH:MM\""},
        {"$.caps[0]", "unknown key 'windw' (did you mean 'window'?)"},
        {"$.caps[0]", "give exactly one of window, calendar (\"day\") or cooldown"},
        {"$.caps[1].triggers[0]", "no machine emits 'pinge' (did you mean 'pinged'?)"},
    };
    size_t n = sizeof want / sizeof *want;
    cr_assert_eq(cue_policy_check(path, ms, &d), n);
    cr_assert_eq(d.n, n);
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(d.items[i].path, want[i].path, "error %zu", i);
        cr_expect_str_eq(d.items[i].msg, want[i].msg, "error %zu", i);
    }
    cue_diags_deinit(&d);
    /* Loading says them all in one message, as far as they fit. */
    cue_policy *p = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_policy_load(&p, path, ms, &err), CUE_ECONFIG);
    cr_assert(strstr(err.msg, ": 8 errors: $.defaults.class: unknown class 'lifecycl'"), "%s",
              err.msg);
    cr_assert(strstr(err.msg, "; $.timezone: expected an object"), "%s", err.msg);
    unlink(path);
    /* Past CUE_POLICY_ERRORS_MAX: the first ones, and how many more. */
    char text[4096] = "{\"caps\":[";
    for (int i = 0; i < 30; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s{\"name\":\"c%d\"}",
                 i ? "," : "", i);
    strcat(text, "]}");
    write_temp(path, ".json", text);
    cue_diags_init(&d);
    cr_assert_eq(cue_policy_check(path, ms, &d), 30);
    cr_assert_eq(d.n, CUE_POLICY_ERRORS_MAX);
    cue_diags_deinit(&d);
    cr_assert_eq(cue_policy_load(&p, path, ms, &err), CUE_ECONFIG);
    cr_assert(strstr(err.msg, ": 30 errors: $.caps[0]: give exactly one"), "%s", err.msg);
    cr_assert(strstr(err.msg, " more (cuepoint check --policies lists them)"), "%s", err.msg);
    cr_assert(strlen(err.msg) < CUE_ERR_MSG_MAX - 1, "the tail is not cut: %s", err.msg);
    unlink(path);
    cue_machines_free(ms);
}

/* Consent defaults: the first rule naming the user's region decides; "*"
 * matches every user, one without a region too; "" only users without one;
 * a user no rule matches is opt-out. */
Test(policy, consent_defaults_for_users_without_a_region)
{
    cue_machines *ms = compile_text(machine);
    static cue_user none, us;
    cue_user_init(&none, "u1", 2);
    cue_user_init(&us, "u2", 2);
    memcpy(us.attrs[CUE_ATTR_REGION], "US", 2);
    us.attr_len[CUE_ATTR_REGION] = 2;
    static const struct {
        const char *defaults;
        bool none_opt_in, us_opt_in;
    } cases[] = {
        {"[{\"regions\":[\"US\"],\"mode\":\"opt_out\"},{\"regions\":[\"*\"],\"mode\":\"opt_in\"}]",
         true, false},
        {"[{\"regions\":[\"\"],\"mode\":\"opt_in\"},{\"regions\":[\"*\"],\"mode\":\"opt_out\"}]",
         true, false},
        {"[{\"regions\":[\"US\"],\"mode\":\"opt_in\"}]", false, true},
        {"[{\"regions\":[\"*\"],\"mode\":\"opt_in\"},{\"regions\":[\"US\"],\"mode\":\"opt_out\"}]",
         true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"consent\":{\"defaults\":%s}}", cases[i].defaults);
        cue_policy *p = NULL;
        cue_err err = {0};
        cr_assert_eq(load(text, ms, &p, &err), 0, "case %zu: %s", i, err.msg);
        cr_expect_eq(cue_policy_opt_in(p, &none), cases[i].none_opt_in, "case %zu: no region", i);
        cr_expect_eq(cue_policy_opt_in(p, &us), cases[i].us_opt_in, "case %zu: US", i);
        cue_policy_free(p);
    }
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
        cr_assert(strstr(err.msg, "p.json") && strstr(err.msg, "holdout") &&
                      strstr(err.msg, "a share from 0 to 1"),
                  "holdout %s: %s", shares[i], err.msg);
    }
    cue_machines_free(ms);
}
