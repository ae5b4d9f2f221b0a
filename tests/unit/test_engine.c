/* The engine as tables of cases: a machine, a script of events and timer
 * firings, and the triggers it must produce (name, time, data), in order. */
#include "cuepoint/codec.h"
#include "cuepoint/config.h"
#include "cuepoint/engine.h"
#include "cuepoint/event.h"
#include "cuepoint/machine.h"
#include "cuepoint/timefmt.h"
#include "cuepoint/trigger.h"
#include "cuepoint/tz.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One step of a script: an event line, or "@<ms>" to fire timers due then. */
typedef struct engine_case {
    const char *name;
    const char *machine;
    const char *steps[12];
    const char *expected; /* "name@ms{data...};..." */
} engine_case;

typedef struct collected {
    char text[8192];
    char ids[64][CUE_HASH_HEX_LEN + 1];
    size_t n;
} collected;

static void collect(const cue_trigger *t, void *ctx)
{
    collected *c = ctx;
    char one[1024];
    cue_buf data;
    cue_buf_init(&data, 256);
    for (uint16_t i = 0; i < t->n_fields; i++) {
        cue_buf_printf(&data, "%s%s=", i ? "," : "", t->fields[i].name);
        cue_trigger_append_value(&data, &t->values[i]);
    }
    snprintf(one, sizeof one, "%s@%lld{%s};", t->name, (long long)t->time_ms, data.data);
    cue_buf_deinit(&data);
    strncat(c->text, one, sizeof c->text - strlen(c->text) - 1);
    if (c->n < 64) memcpy(c->ids[c->n++], t->id, sizeof t->id);
}

/* Runs a script for one user, the state round-tripping through the codec
 * between steps as it does in the pipeline. */
static void run_script(const engine_case *c, collected *out)
{
    cue_machines *ms = compile_text(c->machine);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0; /* the cases count time from 0 */
    cue_event_decoder *dec;
    cue_err err;
    cr_assert(cue_event_decoder_new(&dec, &cfg, &err) == 0);
    cue_user *u = malloc(sizeof *u);
    cue_user_init(u, "u1", 2);
    cue_buf rec;
    cue_buf_init(&rec, 1024);
    cue_step_stats st = {0};
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 12 && c->steps[i]; i++) {
        const char *s = c->steps[i];
        if (s[0] == '@') {
            cue_engine_fire(ms, u, strtoll(s + 1, NULL, 10), NULL, collect, out, &st);
        } else {
            cue_event ev;
            cue_reason reason;
            cr_assert(cue_event_decode(dec, s, strlen(s), &ev, &reason, &err) == 0,
                      "%s: step %d does not decode: %s", c->name, i, err.msg);
            ev.offset = i;
            cue_engine_apply(ms, u, &ev, NULL, collect, out, &st);
        }
        cr_assert(cue_codec_encode(u, ms, &rec) == 0);
        cr_assert(cue_codec_decode(rec.data, rec.len, ms, u, NULL, &err) == 0, "%s", err.msg);
    }
    cue_buf_deinit(&rec);
    free(u);
    cue_event_decoder_free(dec);
    cue_machines_free(ms);
}

#define EV(type, ts, extra) "{\"user_id\":\"u1\",\"type\":\"" type "\",\"ts\":" #ts extra "}"

static const char counter_machine[] =
    "{\"name\":\"m\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"increment\":\"n\"}]},"
    "\"initial\":\"a\",\"final\":[\"done\"],\"states\":{\"a\":{\"on\":["
    "{\"event\":\"go\",\"when\":[{\"counter\":\"n\",\"gte\":2}],\"do\":[{\"increment\":\"n\"},"
    "{\"emit\":\"third\",\"once\":true,\"data\":{\"n\":{\"counter\":\"n\"}}}],\"goto\":\"done\"},"
    "{\"event\":\"go\",\"do\":[{\"increment\":\"n\"}]}]},\"done\":{}}}";

static const char timer_machine[] =
    "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"begin\",\"do\":[{\"start_timer\":"
    "\"nudge\",\"after\":\"1h\"}]},\"initial\":\"waiting\",\"final\":[\"done\"],\"states\":{"
    "\"waiting\":{\"on\":[{\"event\":\"step\",\"do\":[{\"start_timer\":\"nudge\",\"after\":"
    "\"1h\"}]},{\"event\":\"finish\",\"do\":[{\"cancel_timer\":\"nudge\"}],\"goto\":\"done\"},"
    "{\"timer\":\"nudge\",\"do\":[{\"emit\":\"stalled\",\"data\":{\"state\":{\"meta\":"
    "\"state\"}}}]}]},\"done\":{}}}";

static const char guard_machine[] =
    "{\"name\":\"g\",\"version\":1,\"start\":{\"event\":\"*\"},\"initial\":\"s\",\"states\":{"
    "\"s\":{\"on\":["
    "{\"event\":\"x\",\"when\":[{\"event\":\"/p/plan\",\"eq\":\"pro\"}],\"do\":[{\"emit\":"
    "\"pro\"}]},"
    "{\"event\":\"x\",\"when\":[{\"event\":\"/p/n\",\"gt\":10}],\"do\":[{\"emit\":\"big\"}]},"
    "{\"event\":\"x\",\"when\":[{\"event\":\"/p/tag\",\"in\":[\"a\",\"b\"]}],\"do\":[{\"emit\":"
    "\"tagged\"}]},"
    "{\"event\":\"x\",\"when\":[{\"event\":\"/p/tag\",\"exists\":false}],\"do\":[{\"emit\":"
    "\"untagged\"}]},"
    "{\"event\":\"x\",\"when\":[{\"attr\":\"region\",\"eq\":\"EU\"}],\"do\":[{\"emit\":\"eu\"}]},"
    "{\"event\":\"x\",\"do\":[{\"emit\":\"other\"}]}]}}}";

static const char keyed_machine[] =
    "{\"name\":\"k\",\"version\":1,\"instance_key\":\"/p/id\",\"max_instances\":2,"
    "\"repeat\":true,\"start\":{\"event\":\"open\",\"do\":[{\"set\":\"title\",\"from\":{"
    "\"event\":\"/p/title\"}},{\"start_timer\":\"due\",\"at\":{\"event\":\"/p/due\"}}]},"
    "\"initial\":\"open\",\"final\":[\"closed\"],\"states\":{\"open\":{\"on\":["
    "{\"event\":\"open\",\"do\":[{\"start_timer\":\"due\",\"at\":{\"event\":\"/p/due\"}}]},"
    "{\"event\":\"close\",\"goto\":\"closed\"},"
    "{\"timer\":\"due\",\"do\":[{\"emit\":\"overdue\",\"data\":{\"id\":{\"meta\":"
    "\"instance_key\"},\"title\":{\"var\":\"title\"}}}],\"goto\":\"closed\"}]},"
    "\"closed\":{}}}";

static const engine_case cases[] = {
    {"counts to three and emits once",
     counter_machine,
     {EV("go", 1000, ""), EV("go", 2000, ""), EV("go", 3000, ""), EV("go", 4000, "")},
     "third@3000{n=3};"},
    {"an unrelated event type does nothing",
     counter_machine,
     {EV("stop", 1000, ""), EV("stop", 2000, "")},
     ""},
    {"a timer fires once and reports the state",
     timer_machine,
     {EV("begin", 0, ""), "@3600000", "@3600000"},
     "stalled@3600000{state=\"waiting\"};"},
    {"re-arming a timer moves it",
     timer_machine,
     {EV("begin", 0, ""), EV("step", 1800000, ""), "@3600000", "@5400000"},
     "stalled@5400000{state=\"waiting\"};"},
    {"cancelling a timer stops it",
     timer_machine,
     {EV("begin", 0, ""), EV("finish", 1000, ""), "@3600000"},
     ""},
    {"guards: equality on a string",
     guard_machine,
     {EV("y", 0, ""), EV("x", 1, ",\"p\":{\"plan\":\"pro\",\"tag\":\"z\"}")},
     "pro@1{};"},
    {"guards: numeric comparison",
     guard_machine,
     {EV("y", 0, ""), EV("x", 1, ",\"p\":{\"n\":11,\"tag\":\"z\"}"),
      EV("x", 2, ",\"p\":{\"n\":10,\"tag\":\"z\"}")},
     "big@1{};other@2{};"},
    {"guards: membership and absence",
     guard_machine,
     {EV("y", 0, ""), EV("x", 1, ",\"p\":{\"tag\":\"b\"}"), EV("x", 2, ",\"p\":{}")},
     "tagged@1{};untagged@2{};"},
    {"guards: user attributes from an earlier event",
     guard_machine,
     {EV("y", 1, ",\"user\":{\"region\":\"EU\"}"), EV("x", 2, ",\"p\":{\"tag\":\"q\"}")},
     "eu@2{};"},
    {"guards: a number never equals a string",
     guard_machine,
     {EV("y", 0, ""), EV("x", 1, ",\"p\":{\"plan\":1,\"n\":\"11\",\"tag\":\"z\"}")},
     "other@1{};"},
    {"keyed: one instance per key, each with its own timer",
     keyed_machine,
     {EV("open", 0, ",\"p\":{\"id\":\"a\",\"title\":\"A\",\"due\":100}"),
      EV("open", 1, ",\"p\":{\"id\":\"b\",\"title\":\"B\",\"due\":\"1970-01-01T00:00:00.200Z\"}"),
      "@100", "@200"},
     "overdue@100{id=\"a\",title=\"A\"};overdue@200{id=\"b\",title=\"B\"};"},
    {"keyed: a closed key can start again (repeat)",
     keyed_machine,
     {EV("open", 0, ",\"p\":{\"id\":\"a\",\"title\":\"A\",\"due\":100}"),
      EV("close", 1, ",\"p\":{\"id\":\"a\"}"), "@100",
      EV("open", 2, ",\"p\":{\"id\":\"a\",\"title\":\"A2\",\"due\":300}"), "@300"},
     "overdue@300{id=\"a\",title=\"A2\"};"},
    {"keyed: max_instances refuses a third live key",
     keyed_machine,
     {EV("open", 0, ",\"p\":{\"id\":\"a\",\"title\":\"A\",\"due\":100}"),
      EV("open", 0, ",\"p\":{\"id\":\"b\",\"title\":\"B\",\"due\":100}"),
      EV("open", 0, ",\"p\":{\"id\":\"c\",\"title\":\"C\",\"due\":100}"), "@100"},
     "overdue@100{id=\"a\",title=\"A\"};overdue@100{id=\"b\",title=\"B\"};"},
    {"keyed: events without the key are ignored",
     keyed_machine,
     {EV("open", 0, ",\"p\":{\"title\":\"A\",\"due\":100}"), "@100"},
     ""},
    {"keyed: a moved deadline fires at the new time only",
     keyed_machine,
     {EV("open", 0, ",\"p\":{\"id\":\"a\",\"title\":\"A\",\"due\":100}"),
      EV("open", 50, ",\"p\":{\"id\":\"a\",\"due\":400}"), "@100", "@400"},
     "overdue@400{id=\"a\",title=\"A\"};"},
};

Test(engine, table_of_cases)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        collected got;
        run_script(&cases[i], &got);
        cr_expect_str_eq(got.text, cases[i].expected, "case '%s':\n  expected %s\n  got      %s",
                         cases[i].name, cases[i].expected, got.text);
    }
}

Test(engine, same_input_same_ids_and_ids_differ_by_cause)
{
    collected a, b;
    run_script(&cases[0], &a);
    run_script(&cases[0], &b);
    cr_assert_eq(a.n, 1);
    cr_assert_str_eq(a.ids[0], b.ids[0], "the same input must give the same trigger id");
    engine_case other = cases[0];
    other.steps[2] = EV("go", 3001, "");
    run_script(&other, &b);
    cr_assert_eq(b.n, 1);
    cr_assert_str_neq(a.ids[0], b.ids[0], "a different cause must give a different id");
}

Test(engine, event_id_is_the_cause_when_present)
{
    engine_case c = {"ids",
                     counter_machine,
                     {"{\"user_id\":\"u1\",\"type\":\"go\",\"ts\":1,\"event_id\":\"e1\"}",
                      "{\"user_id\":\"u1\",\"type\":\"go\",\"ts\":2,\"event_id\":\"e2\"}",
                      "{\"user_id\":\"u1\",\"type\":\"go\",\"ts\":3,\"event_id\":\"e3\"}"},
                     "third@3{n=3};"};
    collected a, b;
    run_script(&c, &a);
    /* Same event id, different bytes (time written differently): same id. */
    c.steps[2] = "{\"user_id\":\"u1\",\"event_id\":\"e3\",\"type\":\"go\",\"ts\":3}";
    run_script(&c, &b);
    cr_assert_eq(a.n, 1);
    cr_assert_eq(b.n, 1);
    cr_assert_str_eq(a.ids[0], b.ids[0]);
}

/* ---- timers at times read from the event -------------------------------- */

#define DAY 86400000LL

/* Starts "expiring" at the time in /p/end moved by `when` (JSON members). */
#define TRIAL(when)                                                                                \
    "{\"name\":\"trial\",\"version\":1,\"start\":{\"event\":\"trial_started\",\"do\":[{"           \
    "\"start_timer\":\"expiring\"," when "}]},\"initial\":\"trial\",\"final\":[\"done\"],"         \
    "\"states\":{\"trial\":{\"on\":[{\"timer\":\"expiring\",\"do\":[{\"emit\":\"trial_expiring\"}" \
    "],"                                                                                           \
    "\"goto\":\"done\"}]},\"done\":{}}}"

static const engine_case timer_cases[] = {
    {"before: three days before the time in the event",
     TRIAL("\"at\":{\"event\":\"/p/end\"},\"before\":\"3d\""),
     {EV("trial_started", 0, ",\"p\":{\"end\":\"1970-01-15T00:00:00Z\"}"), "@950400000"},
     "trial_expiring@950400000{};"},
    {"after: an hour after the time in the event",
     TRIAL("\"at\":{\"event\":\"/p/end\"},\"after\":\"1h\""),
     {EV("trial_started", 0, ",\"p\":{\"end\":86400000}"), "@90000000"},
     "trial_expiring@90000000{};"},
    {"earliest: the event's time minus 3d, or a week from now",
     TRIAL("\"earliest\":[{\"at\":{\"event\":\"/p/end\"},\"before\":\"3d\"},{\"after\":\"7d\"}]"),
     {EV("trial_started", 0, ",\"p\":{\"end\":\"1970-01-31T00:00:00Z\"}"), "@604800000"},
     "trial_expiring@604800000{};"},
    {"latest skips a time that is not there",
     TRIAL("\"latest\":[{\"event\":\"/p/end\"},{\"event\":\"/p/renewal\"}]"),
     {EV("trial_started", 0, ",\"p\":{\"end\":5000}"), "@5000"},
     "trial_expiring@5000{};"},
    {"local_time without a zone is UTC: 09:00 the day after",
     TRIAL("\"after\":\"1d\",\"local_time\":\"09:00\""),
     {EV("trial_started", 1000, ""), "@118800000"},
     "trial_expiring@118800000{};"},
    {"a time already past fires at once, at its own time",
     TRIAL("\"at\":{\"event\":\"/p/end\"},\"before\":\"3d\""),
     {EV("trial_started", 864000000, ",\"p\":{\"end\":\"1970-01-12T00:00:00Z\"}"), "@691200000"},
     "trial_expiring@691200000{};"},
    {"if_past skip starts nothing",
     TRIAL("\"at\":{\"event\":\"/p/end\"},\"before\":\"3d\",\"if_past\":\"skip\""),
     {EV("trial_started", 864000000, ",\"p\":{\"end\":\"1970-01-12T00:00:00Z\"}"), "@691200000",
      "@864000000"},
     ""},
};

Test(engine, timers_at_times_from_the_event)
{
    for (size_t i = 0; i < sizeof timer_cases / sizeof *timer_cases; i++) {
        collected got;
        run_script(&timer_cases[i], &got);
        cr_expect_str_eq(got.text, timer_cases[i].expected,
                         "case '%s':\n  expected %s\n  got      %s", timer_cases[i].name,
                         timer_cases[i].expected, got.text);
    }
}

/* Decodes one event line with a fresh decoder kept in `dec`. */
static cue_event decode_one(cue_event_decoder **dec, const char *line)
{
    static cue_config cfg; /* the decoder borrows it */
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0; /* the cases count time from 0 */
    cue_err err;
    if (*dec == NULL) cr_assert(cue_event_decoder_new(dec, &cfg, &err) == 0);
    cue_event ev;
    cue_reason reason;
    cr_assert(cue_event_decode(*dec, line, strlen(line), &ev, &reason, &err) == 0, "%s", err.msg);
    return ev;
}

Test(engine, local_time_in_the_users_zone_across_a_clock_change)
{
    cue_machines *ms = compile_text(TRIAL("\"after\":\"1d\",\"local_time\":\"09:00\""));
    cue_tz *tz;
    cue_err err;
    cr_assert(cue_tz_new(&tz, 4, &err) == 0);
    cue_step_env env = {.tz = tz};
    cr_assert(cue_tz_find(tz, "Europe/Berlin", 13, &env.zone, &err) == 0, "%s", err.msg);
    static cue_user u;
    cue_user_init(&u, "u1", 2);
    cue_event_decoder *dec = NULL;
    /* Saturday 21:00 in Berlin; summer time starts that night, so 09:00 on
     * Sunday is 07:00 UTC, 34 hours later, not 36. */
    cue_event ev = decode_one(
        &dec, "{\"user_id\":\"u1\",\"type\":\"trial_started\",\"ts\":\"2026-03-28T20:00:00Z\"}");
    cue_step_stats st = {0};
    collected got = {0};
    cue_engine_apply(ms, &u, &ev, &env, collect, &got, &st);
    int64_t want;
    cr_assert(cue_time_parse_rfc3339("2026-03-29T07:00:00Z", 20, &want) == 0);
    cr_assert_eq(u.inst[0].timers[0], want, "due %lld, want %lld", (long long)u.inst[0].timers[0],
                 (long long)want);
    cue_event_decoder_free(dec);
    cue_tz_free(tz);
    cue_machines_free(ms);
}

typedef struct check_case {
    const char *name, *machine, *event;
    bool ok;
    const char *in_message; /* the refusal names this */
} check_case;

static const check_case check_cases[] = {
    {"a readable time", TRIAL("\"at\":{\"event\":\"/p/end\"},\"before\":\"3d\""),
     EV("trial_started", 0, ",\"p\":{\"end\":\"2026-04-01T00:00:00Z\"}"), true, NULL},
    {"not a date", TRIAL("\"at\":{\"event\":\"/p/end\"},\"before\":\"3d\""),
     EV("trial_started", 0, ",\"p\":{\"end\":\"not a date\"}"), false,
     "timer 'expiring' at the time in /p/end, but it is \"not a date\""},
    {"missing", TRIAL("\"at\":{\"event\":\"/p/end\"}"), EV("trial_started", 0, ""), false,
     "/p/end, but there is nothing there"},
    {"epoch seconds", TRIAL("\"at\":{\"event\":\"/p/end\"}"),
     EV("trial_started", 0, ",\"p\":{\"end\":1767225600}"), false,
     "it is 1767225600: a time is epoch milliseconds or RFC 3339 with an offset, 1970-9999, and "
     "this looks like epoch seconds"},
    {"none of several", TRIAL("\"earliest\":[{\"event\":\"/p/a\"},{\"event\":\"/p/b\"}]"),
     EV("trial_started", 0, ""), false, "none of them is there (the first is read from /p/a)"},
    {"one of several is enough", TRIAL("\"earliest\":[{\"event\":\"/p/a\"},{\"event\":\"/p/b\"}]"),
     EV("trial_started", 0, ",\"p\":{\"b\":5}"), true, NULL},
    {"a variable set just before",
     "{\"name\":\"v\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"set\":\"due\",\"from\":"
     "{\"event\":\"/p/due\"}},{\"start_timer\":\"t\",\"at\":{\"var\":\"due\"}}]},\"initial\":\"a\","
     "\"final\":[\"z\"],\"states\":{\"a\":{\"on\":[{\"timer\":\"t\",\"goto\":\"z\"}]},\"z\":{}}}",
     EV("go", 0, ",\"p\":{\"due\":\"soon\"}"), false, "variable 'due', but it is \"soon\""},
    {"a start whose guard fails is not checked",
     "{\"name\":\"g\",\"version\":1,\"start\":{\"event\":\"go\",\"when\":[{\"event\":\"/p/due\","
     "\"exists\":true}],\"do\":[{\"start_timer\":\"t\",\"at\":{\"event\":\"/p/due\"}}]},"
     "\"initial\":\"a\",\"final\":[\"z\"],\"states\":{\"a\":{\"on\":[{\"timer\":\"t\",\"goto\":"
     "\"z\"}]},\"z\":{}}}",
     EV("go", 0, ""), true, NULL},
    {"another event type is not checked", TRIAL("\"at\":{\"event\":\"/p/end\"}"),
     EV("page_viewed", 0, ""), true, NULL},
};

Test(engine, check_refuses_an_event_whose_timer_time_does_not_read)
{
    for (size_t i = 0; i < sizeof check_cases / sizeof *check_cases; i++) {
        const check_case *c = &check_cases[i];
        cue_machines *ms = compile_text(c->machine);
        static cue_user u, before;
        cue_user_init(&u, "u1", 2);
        before = u;
        cue_event_decoder *dec = NULL;
        cue_event ev = decode_one(&dec, c->event);
        cue_step_refusal why;
        bool ok = cue_engine_check(ms, &u, &ev, NULL, &why);
        cr_expect_eq(ok, c->ok, "%s: check says %d", c->name, ok);
        cr_expect(memcmp(&u, &before, sizeof u) == 0, "%s: checking changed the user", c->name);
        if (!ok && c->in_message) {
            char msg[512];
            cue_engine_refusal_text(ms, &why, msg, sizeof msg);
            cr_expect(strstr(msg, c->in_message) != NULL, "%s: '%s' lacks '%s'", c->name, msg,
                      c->in_message);
        }
        cue_event_decoder_free(dec);
        cue_machines_free(ms);
    }
}

/* Found by fuzzing (tests/fuzz/fuzz_machine.c): `counters += by` overflowed
 * for "by": 9223372036854775807. The compiler now bounds `by` at 2^53 - 1,
 * and counters stop at the 64-bit bounds, whatever a stored state held. */
Test(engine, counters_stop_at_the_64_bit_bounds)
{
    static const char machine[] =
        "{\"name\":\"c\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":\"a\",\"states\":{"
        "\"a\":{\"on\":[{\"event\":\"up\",\"do\":[{\"increment\":\"n\",\"by\":9007199254740991},"
        "{\"emit\":\"n\",\"data\":{\"n\":{\"counter\":\"n\"}}}]},"
        "{\"event\":\"down\",\"do\":[{\"increment\":\"n\",\"by\":-9007199254740991},"
        "{\"emit\":\"n\",\"data\":{\"n\":{\"counter\":\"n\"}}}]}]}}}";
    cue_machines *ms = compile_text(machine);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0; /* the cases count time from 0 */
    cue_event_decoder *dec;
    cue_err err;
    cr_assert(cue_event_decoder_new(&dec, &cfg, &err) == 0);
    cue_user *u = malloc(sizeof *u);
    cue_user_init(u, "u1", 2);
    cue_step_stats st = {0};
    collected got;
    memset(&got, 0, sizeof got);
    const char *steps[] = {EV("go", 1, ""), EV("up", 2, ""), EV("down", 3, ""), EV("up", 4, "")};
    int64_t before[] = {0, INT64_MAX - 5, INT64_MIN + 5, INT64_MAX};
    for (int i = 0; i < 4; i++) {
        if (i > 0) u->inst[0].counters[0] = before[i];
        cue_event ev;
        cue_reason reason;
        cr_assert(cue_event_decode(dec, steps[i], strlen(steps[i]), &ev, &reason, &err) == 0);
        cue_engine_apply(ms, u, &ev, NULL, collect, &got, &st);
    }
    cr_assert_str_eq(got.text, "n@2{n=9223372036854775807};n@3{n=-9223372036854775808};"
                               "n@4{n=9223372036854775807};");
    free(u);
    cue_event_decoder_free(dec);
    cue_machines_free(ms);
}

/* Found while fuzzing the journey compiler: a timer's transition that
 * starts a timer "at" a time already past (a literal, or a variable) made it
 * due again at once, and `cuepoint file` emitted the same trigger for ever.
 * In a timer's step such a start is refused and counted; in an event's step
 * a past time still fires at once, after the event. */
Test(engine, a_timer_step_cannot_start_a_timer_at_or_before_its_own_time)
{
    engine_case c = {
        "re-arm in the past",
        "{\"name\":\"l\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"start_timer\":\"t\","
        "\"after\":\"1h\"},{\"start_timer\":\"u\",\"at\":\"1970-01-01T00:00:00Z\"}]},\"initial\":"
        "\"a\",\"states\":{\"a\":{"
        "\"on\":[{\"timer\":\"t\",\"do\":[{\"emit\":\"tick\"},{\"start_timer\":\"t\",\"at\":"
        "\"1970-01-01T00:30:00Z\"},{\"start_timer\":\"u\",\"at\":\"1970-01-01T01:00:00Z\"}]},"
        "{\"timer\":\"u\",\"do\":[{\"emit\":\"past\"}]}]}}}",
        {EV("go", 0, ""), "@0", "@3600000", "@3600000"},
        "past@0{};tick@3600000{};"};
    collected got;
    run_script(&c, &got);
    cr_assert_str_eq(got.text, c.expected);
    /* And nothing is left armed: the refused starts did not move anything. */
    cue_machines *ms = compile_text(c.machine);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0; /* the cases count time from 0 */
    cue_event_decoder *dec;
    cue_err err;
    cr_assert(cue_event_decoder_new(&dec, &cfg, &err) == 0);
    cue_user *u = malloc(sizeof *u);
    cue_user_init(u, "u1", 2);
    cue_step_stats st = {0};
    cue_event ev;
    cue_reason reason;
    cr_assert(cue_event_decode(dec, c.steps[0], strlen(c.steps[0]), &ev, &reason, &err) == 0);
    cue_engine_apply(ms, u, &ev, NULL, collect, &got, &st);
    cr_assert_eq(cue_user_next_due(u), 0, "an event's step may start a timer in the past");
    cue_engine_fire(ms, u, 0, NULL, collect, &got, &st);
    cue_engine_fire(ms, u, 3600000, NULL, collect, &got, &st);
    cr_assert_eq(cue_user_next_due(u), CUE_TIMER_NONE);
    cr_assert_eq(st.timers_refused, 2);
    cr_assert_eq(st.bad_timer_value, 0);
    free(u);
    cue_event_decoder_free(dec);
    cue_machines_free(ms);
}

/* ---- state TTL ---------------------------------------------------------- */

#define HOUR 3600000LL

/* A journey with a state_ttl of 2 h: `begin` starts it with a 1 h timer,
 * `step` moves on without one. */
static const char ttl_machine[] =
    "{\"name\":\"t\",\"version\":1,\"state_ttl\":\"2h\",\"start\":{\"event\":\"begin\",\"do\":["
    "{\"start_timer\":\"nudge\",\"after\":\"1h\"}]},\"initial\":\"waiting\",\"states\":{"
    "\"waiting\":{\"on\":[{\"event\":\"step\"},{\"timer\":\"nudge\",\"do\":[{\"emit\":"
    "\"stalled\"}]}]}}}";

/* The same journey without a state_ttl. */
static const char no_ttl_machine[] =
    "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"begin\",\"do\":["
    "{\"start_timer\":\"nudge\",\"after\":\"1h\"}]},\"initial\":\"waiting\",\"states\":{"
    "\"waiting\":{\"on\":[{\"event\":\"step\"},{\"timer\":\"nudge\",\"do\":[{\"emit\":"
    "\"stalled\"}]}]}}}";

static void apply_line(const cue_machines *ms, cue_user *u, cue_event_decoder **dec,
                       const char *line, cue_step_stats *st)
{
    collected out = {0};
    cue_event ev = decode_one(dec, line);
    cue_engine_apply(ms, u, &ev, NULL, collect, &out, st);
}

Test(engine, state_ttl_global_waits_for_timers_then_counts_from_the_last_event)
{
    cue_machines *ms = compile_text(no_ttl_machine);
    cue_event_decoder *dec = NULL;
    cue_user *u = malloc(sizeof *u);
    cue_user_init(u, "u1", 2);
    cue_step_stats st = {0};
    collected out = {0};
    int64_t ttl = 24 * HOUR;
    cr_expect_eq(cue_engine_expiry(ms, u, ttl), CUE_TIMER_NONE, "a user with no event");
    apply_line(ms, u, &dec, EV("begin", 0, ""), &st);
    /* A timer is pending: nothing expires, whatever the time. */
    cr_expect_eq(cue_engine_expiry(ms, u, ttl), CUE_TIMER_NONE);
    cr_expect_not(cue_engine_expire(ms, u, 100 * HOUR, ttl, &st));
    cue_engine_fire(ms, u, HOUR, NULL, collect, &out, &st);
    /* Nothing pending now: the last event's time plus the TTL. */
    cr_expect_eq(cue_engine_expiry(ms, u, ttl), ttl);
    apply_line(ms, u, &dec, EV("step", 7200000, ""), &st);
    cr_expect_eq(cue_engine_expiry(ms, u, ttl), 2 * HOUR + ttl, "an event moves it");
    cr_expect_not(cue_engine_expire(ms, u, 2 * HOUR + ttl - 1, ttl, &st));
    cr_expect(cue_engine_expire(ms, u, 2 * HOUR + ttl, ttl, &st), "due at exactly the TTL");
    cr_expect_eq(cue_engine_expiry(ms, u, 0), CUE_TIMER_NONE, "state.ttl off: never");
    cr_expect_not(cue_engine_expire(ms, u, INT64_MAX / 2, 0, &st));
    cr_expect_eq(st.instances_expired, 0);
    free(u);
    cue_event_decoder_free(dec);
    cue_machines_free(ms);
}

Test(engine, state_ttl_of_a_journey_drops_the_idle_instance_and_then_the_user)
{
    cue_machines *ms = compile_text(ttl_machine);
    cue_event_decoder *dec = NULL;
    cue_user *u = malloc(sizeof *u);
    cue_user_init(u, "u1", 2);
    cue_step_stats st = {0};
    collected out = {0};
    apply_line(ms, u, &dec, EV("begin", 0, ""), &st);
    cr_expect_eq(cue_engine_expiry(ms, u, 0), CUE_TIMER_NONE, "its timer keeps it");
    cue_engine_fire(ms, u, HOUR, NULL, collect, &out, &st);
    /* Idle since its last transition (the timer's, at 1 h). */
    cr_expect_eq(cue_engine_expiry(ms, u, 0), 3 * HOUR);
    apply_line(ms, u, &dec, EV("step", 5400000, ""), &st); /* a transition at 1.5 h */
    cr_expect_eq(cue_engine_expiry(ms, u, 0), 7 * HOUR / 2);
    cr_expect_not(cue_engine_expire(ms, u, 7 * HOUR / 2 - 1, 0, &st));
    cr_expect_eq(u->n_instances, 1);
    /* The global TTL, longer, is not waited for: the last instance went. */
    cr_expect(cue_engine_expire(ms, u, 7 * HOUR / 2, 100 * HOUR, &st));
    cr_expect_eq(u->n_instances, 0);
    cr_expect_eq(st.instances_expired, 1);
    free(u);
    cue_event_decoder_free(dec);
    cue_machines_free(ms);
}
