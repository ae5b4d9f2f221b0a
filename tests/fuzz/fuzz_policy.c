/* The policy compiler (policy.c) from JSON text, against the example
 * journeys; a policy that compiles then decides every trigger of every
 * journey for one user at a few times, deferrals included, so the numbers
 * it was given (caps, windows, quiet hours, shares) meet arithmetic. */
#include "cuepoint/policy.h"

#include "fuzz.h"

#include <string.h>

static cue_policy_tz *tz;
static cue_user user;
static cue_buf out;
static cue_config cfg;
static cue_event_decoder *dec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cue_err err = {0};
    fuzz_example_machines();
    if (cue_policy_tz_new(&tz, &err) != 0) abort();
    cue_buf_init(&out, 1024);
    cue_config_defaults(&cfg);
    if (cue_event_decoder_new(&dec, &cfg, &err) != 0) abort();
    return 0;
}

static void on_cancelled(const cue_deferred *d, const cue_decision *dec_, void *ctx)
{
    if (dec_->outcome != CUE_OUTCOME_CANCELLED) abort();
}

/* The events the policy reads (consent, mute, erasure: the types of
 * deploy/policies.json), good and bad, at `now`. */
static void observe(const cue_policy *p, int round, int64_t now)
{
    static const char *const events[] = {
        "{\"user_id\":\"u1\",\"type\":\"consent_changed\",\"ts\":%lld,"
        "\"props\":{\"channel\":\"push\",\"granted\":%s}}",
        "{\"user_id\":\"u1\",\"type\":\"channel_muted\",\"ts\":%lld,"
        "\"props\":{\"channel\":\"email\",\"muted\":%s}}",
        "{\"user_id\":\"u1\",\"type\":\"consent_changed\",\"ts\":%lld,"
        "\"props\":{\"channel\":\"fax\",\"granted\":%s}}",
        "{\"user_id\":\"u1\",\"type\":\"user_erased\",\"ts\":%lld,\"x\":%s}",
    };
    for (size_t i = 0; i < sizeof events / sizeof *events; i++) {
        char text[256];
        int n = snprintf(text, sizeof text, events[i], (long long)now,
                         (round + (int)i) % 2 ? "true" : "false");
        cue_event ev;
        cue_reason reason;
        cue_err err = {0};
        if (cue_event_decode(dec, text, (size_t)n, &ev, &reason, &err) != 0) abort();
        const char *why = NULL;
        if (cue_policy_observe(p, &user, &ev, on_cancelled, NULL, &why) == CUE_POLICY_EVENT_BAD &&
            why == NULL)
            abort();
        (void)cue_policy_is_erasure(p, &ev);
    }
}

/* A time zone and region per round: known, unknown, absent. */
static void set_attrs(int round)
{
    static const char *const zones[] = {"Europe/Berlin", "Nowhere/Bad", "", "America/New_York"};
    static const char *const regions[] = {"EU", "US-CA", "JP", ""};
    const char *z = zones[round % 4], *r = regions[round % 4];
    memcpy(user.attrs[CUE_ATTR_TIMEZONE], z, strlen(z));
    user.attr_len[CUE_ATTR_TIMEZONE] = (uint8_t)strlen(z);
    memcpy(user.attrs[CUE_ATTR_REGION], r, strlen(r));
    user.attr_len[CUE_ATTR_REGION] = (uint8_t)strlen(r);
}

static void decide_all(const cue_policy *p, const cue_machines *ms, int64_t now)
{
    for (size_t mi = 0; mi < cue_machines_count(ms); mi++) {
        const cue_machine *m = cue_machines_get(ms, mi);
        for (uint8_t ti = 0; ti < m->n_triggers; ti++) {
            cue_policy_trigger t = {.machine = (uint16_t)mi,
                                    .trigger = ti,
                                    .id = "0123456789abcdef0123456789abcdef",
                                    .time_ms = now - (ti % 2) * 86400000LL,
                                    .timer = ti % 2,
                                    .late = ti % 3 == 2,
                                    .rec = "{\"trigger\":\"x\"}",
                                    .rec_len = 15};
            cue_decision d;
            cue_policy_decide(p, tz, &user, &t, now, &d);
            if ((d.outcome == CUE_OUTCOME_DEFERRED) != (d.until_ms != INT64_MIN)) abort();
            if (d.outcome != CUE_OUTCOME_SENT) continue;
            /* As the task writes a sent trigger (the fields are for those only). */
            cue_buf_reset(&out);
            cue_policy_fields(p, &d, &out);
        }
    }
}

static void run(const cue_policy *p, const cue_machines *ms)
{
    cue_user_init(&user, "u1", 2);
    int64_t now = 1772442000000; /* 2026-03-02T09:00:00Z */
    for (int round = 0; round < 4; round++) {
        set_attrs(round);
        decide_all(p, ms, now);
        observe(p, round, now);
        cue_deferred due;
        for (int k = 0; k < 16 && cue_policy_take_due(&user, now, &due); k++)
            ;
        now += 5 * 3600000LL;
        (void)cue_policy_quiet_at(p, tz, &user, now);
        (void)cue_policy_opt_in(p, &user);
    }
    for (size_t e = 0; e < cue_policy_experiments(p); e++)
        (void)cue_policy_assign(p, e, "u1", 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cue_machines *ms = fuzz_example_machines();
    char *text = fuzz_dup(data, size);
    cue_policy *p = NULL;
    cue_err err = {0};
    int rc = cue_policy_load_text(&p, "fuzz.json", text ? text : "", size, ms, &err);
    if (rc == 0) {
        run(p, ms);
        cue_policy_free(p);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    free(text);
    return 0;
}
