/* The journey language as tables: each machine text, the diagnostic it must
 * produce (code and JSON path) or none, and what compiles must mean what it says. */
#include "cuepoint/machine.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

#define BASE_START "\"start\":{\"event\":\"go\",\"do\":[{\"start_timer\":\"w\",\"after\":\"1h\"}]},"
#define BASE_TAIL                                                                                  \
    "\"initial\":\"a\",\"final\":[\"z\"],\"states\":{\"a\":{\"on\":[{\"event\":\"next\","          \
    "\"goto\":\"z\"},{\"timer\":\"w\",\"do\":[{\"emit\":\"late\"}]}]},\"z\":{}}}"
#define M(extra) "{\"name\":\"t\",\"version\":1," extra BASE_START BASE_TAIL
/* A machine whose start runs `act`. */
#define T(act)                                                                                     \
    "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[" act "]}," BASE_TAIL
/* A machine whose state a handles timer w with `rest` (when, do). */
#define IN_TIMER(rest)                                                                             \
    "{\"name\":\"t\",\"version\":1," BASE_START "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{"   \
    "\"timer\":\"w\"," rest "}]}}}"

typedef struct compile_case {
    const char *name, *text, *code, *path, *in_message;
} compile_case;

static const compile_case cases[] = {
    {"valid", M(""), NULL, NULL, NULL},
    {"json syntax", "{\"name\":", "bad-json", "$", "line 1"},
    {"not an object", "[1]", "wrong-type", "$", NULL},
    {"unknown top-level key", M("\"intial\":\"a\","), "unknown-key", "$.intial",
     "did you mean 'initial'"},
    {"missing start", "{\"name\":\"t\",\"version\":1," BASE_TAIL, "missing-key", "$", "'start'"},
    {"version as a string", "{\"name\":\"t\",\"version\":\"1\"," BASE_START BASE_TAIL, "wrong-type",
     "$.version", NULL},
    {"bad machine name", "{\"name\":\"a b\",\"version\":1," BASE_START BASE_TAIL, "bad-name",
     "$.name", NULL},
    {"goto an unknown state",
     "{\"name\":\"t\",\"version\":1," BASE_START "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{"
     "\"event\":\"n\",\"goto\":\"zed\"}]},\"zen\":{}}}",
     "unknown-name", "$.states.a.on[0].goto", "did you mean 'zen'"},
    {"cancel an unknown timer",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"do\":[{\"cancel_timer\":"
     "\"x\"}]}]}}}",
     "unknown-name", "$.states.a.on[0].do[0].cancel_timer", NULL},
    {"guard on an unknown counter",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"when\":[{\"counter\":\"c\","
     "\"gt\":1}]}]}}}",
     "unknown-name", "$.states.a.on[0].when[0].counter", NULL},
    {"a keyed machine compiles", M("\"instance_key\":\"/k\","), NULL, NULL, NULL},
    {"pointer without slash", M("\"instance_key\":\"k\","), "bad-pointer", "$.instance_key", NULL},
    {"max_instances without a key", M("\"max_instances\":3,"), "bad-value", "$.max_instances",
     NULL},
    {"bad on_version_change", M("\"on_version_change\":\"x\","), "bad-value", "$.on_version_change",
     NULL},
    {"guard with two operators",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"when\":[{\"event\":\"/p\","
     "\"eq\":1,\"ne\":2}]}]}}}",
     "bad-guard", "$.states.a.on[0].when[0]", NULL},
    {"in needs an array",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"when\":[{\"event\":\"/p\","
     "\"in\":\"x\"}]}]}}}",
     "wrong-type", "$.states.a.on[0].when[0].in", NULL},
    {"source with two keys",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"do\":[{\"emit\":\"e\","
     "\"data\":{\"x\":{\"event\":\"/a\",\"meta\":\"state\"}}}]}]}}}",
     "bad-source", "$.states.a.on[0].do[0].data.x", NULL},
    {"unknown meta",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"do\":[{\"emit\":\"e\","
     "\"data\":{\"x\":{\"meta\":\"stat\"}}}]}]}}}",
     "unknown-name", "$.states.a.on[0].do[0].data.x.meta", "did you mean 'state'"},
    {"reserved data name",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"do\":[{\"emit\":\"e\","
     "\"data\":{\"to_state\":1}}]}]}}}",
     "reserved-name", "$.states.a.on[0].do[0].data.to_state", NULL},
    {"action with two kinds",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"do\":[{\"emit\":\"e\","
     "\"increment\":\"c\"}]}]}}}",
     "bad-action", "$.states.a.on[0].do[0]", NULL},
    {"timer with after and before",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"start_timer\":\"w\","
     "\"after\":\"1h\",\"before\":\"1h\",\"at\":{\"event\":\"/t\"}}]},\"initial\":\"a\","
     "\"states\":{\"a\":{}}}",
     "bad-timer", "$.start.do[0]", NULL},
    {"duration in words",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"start_timer\":\"w\","
     "\"after\":\"3 days\"}]},\"initial\":\"a\",\"states\":{\"a\":{}}}",
     "bad-duration", "$.start.do[0].after", NULL},
    {"negative duration",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"start_timer\":\"w\","
     "\"after\":-5}]},\"initial\":\"a\",\"states\":{\"a\":{}}}",
     "bad-duration", "$.start.do[0].after", NULL},
    {"event and timer in one transition",
     "{\"name\":\"t\",\"version\":1," BASE_START
     "\"initial\":\"a\",\"states\":{\"a\":{\"on\":[{\"event\":\"n\",\"timer\":\"w\"}]}}}",
     "bad-transition", "$.states.a.on[0]", NULL},
    {"start on a timer",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"timer\":\"w\"},\"initial\":\"a\",\"states\":{"
     "\"a\":{}}}",
     "bad-transition", "$.start", NULL},
    {"increment by what a double holds exactly",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"increment\":\"n\","
     "\"by\":-9007199254740991}]},\"initial\":\"a\",\"states\":{\"a\":{}}}",
     NULL, NULL, NULL},
    /* Found by fuzzing: the engine's `counters += by` overflowed. */
    {"increment by more",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"increment\":\"n\","
     "\"by\":9223372036854775807}]},\"initial\":\"a\",\"states\":{\"a\":{}}}",
     "bad-value", "$.start.do[0].by", "9007199254740991"},
    {"increment by a fraction",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"increment\":\"n\","
     "\"by\":1.5}]},\"initial\":\"a\",\"states\":{\"a\":{}}}",
     "wrong-type", "$.start.do[0].by", NULL},
    {"empty states",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":\"a\","
     "\"states\":{}}",
     "wrong-type", "$.states", NULL},
    /* Timers at times read from the event, offset either way, picked among. */
    {"at with before", T("{\"start_timer\":\"w\",\"at\":{\"event\":\"/end\"},\"before\":\"3d\"}"),
     NULL, NULL, NULL},
    {"at with after", T("{\"start_timer\":\"w\",\"at\":{\"event\":\"/end\"},\"after\":\"1h\"}"),
     NULL, NULL, NULL},
    {"earliest of two, local clock, skip the past",
     T("{\"start_timer\":\"w\",\"earliest\":[{\"at\":{\"event\":\"/end\"},\"before\":\"3d\"},"
       "{\"after\":\"7d\"},{\"event\":\"/renew\"}],\"local_time\":\"09:00\",\"if_past\":"
       "\"skip\"}"),
     NULL, NULL, NULL},
    {"before without at", T("{\"start_timer\":\"w\",\"before\":\"3d\"}"), "bad-timer",
     "$.start.do[0]", "before which time"},
    {"no time at all", T("{\"start_timer\":\"w\"}"), "bad-timer", "$.start.do[0]", NULL},
    {"earliest beside at",
     T("{\"start_timer\":\"w\",\"at\":{\"event\":\"/a\"},\"earliest\":[{\"after\":\"1h\"},"
       "{\"after\":\"2h\"}]}"),
     "bad-timer", "$.start.do[0]", NULL},
    {"earliest of one", T("{\"start_timer\":\"w\",\"earliest\":[{\"after\":\"1h\"}]}"), "bad-timer",
     "$.start.do[0].earliest", NULL},
    {"a misspelt key in a term",
     T("{\"start_timer\":\"w\",\"latest\":[{\"at\":{\"event\":\"/a\"},\"befor\":\"1h\"},"
       "{\"after\":\"2h\"}]}"),
     "unknown-key", "$.start.do[0].latest[0].befor", "did you mean 'before'"},
    {"an attribute is no time", T("{\"start_timer\":\"w\",\"at\":{\"attr\":\"timezone\"}}"),
     "bad-timer", "$.start.do[0].at", NULL},
    {"a literal that is no time", T("{\"start_timer\":\"w\",\"at\":\"next monday\"}"), "bad-timer",
     "$.start.do[0].at", "RFC 3339"},
    {"a literal time", T("{\"start_timer\":\"w\",\"at\":\"2026-04-01T09:00:00Z\"}"), NULL, NULL,
     NULL},
    {"local_time out of range",
     T("{\"start_timer\":\"w\",\"after\":\"1d\",\"local_time\":\"24:00\"}"), "bad-timer",
     "$.start.do[0].local_time", NULL},
    {"if_past unknown", T("{\"start_timer\":\"w\",\"after\":\"1d\",\"if_past\":\"later\"}"),
     "bad-value", "$.start.do[0].if_past", NULL},
    /* A timer's transition has no event to read. */
    {"event pointer in a timer's data",
     IN_TIMER("\"do\":[{\"emit\":\"e\",\"data\":{\"plan\":{\"event\":\"/props/plan\"}}}]"),
     "no-event", "$.states.a.on[0].do[0].data.plan.event", "has no event"},
    {"event pointer in a timer's guard",
     IN_TIMER("\"when\":[{\"event\":\"/props/plan\",\"eq\":\"pro\"}]"), "no-event",
     "$.states.a.on[0].when[0].event", NULL},
    {"event type in a timer's guard", IN_TIMER("\"when\":[{\"meta\":\"event_type\",\"eq\":\"x\"}]"),
     "no-event", "$.states.a.on[0].when[0].meta", NULL},
    {"event pointer where a timer restarts itself",
     IN_TIMER("\"do\":[{\"start_timer\":\"w\",\"at\":{\"event\":\"/due\"}}]"), "no-event",
     "$.states.a.on[0].do[0].at.event", NULL},
    {"the step time in a timer's data",
     IN_TIMER("\"do\":[{\"emit\":\"e\",\"data\":{\"at\":{\"meta\":\"event_time\"}}}]"), NULL, NULL,
     NULL},
    /* Migration maps. */
    {"a migrate map",
     M("\"migrate\":{\"states\":{\"old\":\"a\",\"split\":[{\"when\":[{\"attr\":\"region\","
       "\"eq\":\"EU\"}],\"to\":\"a\",\"timers\":{\"w\":\"drop\"}},{\"to\":\"z\"}],\"gone\":{"
       "\"finish\":true},\"redo\":{\"restart\":true}},\"timers\":{\"w\":{\"shift\":\"-24h\"},"
       "\"old_w\":{\"to\":\"w\"},\"legacy\":\"drop\"}},"),
     NULL, NULL, NULL},
    {"migrate to an unknown state", M("\"migrate\":{\"states\":{\"old\":\"zz\"}},"), "unknown-name",
     "$.migrate.states.old", "did you mean 'z'"},
    {"a split whose last rule has a guard",
     M("\"migrate\":{\"states\":{\"old\":[{\"when\":[{\"counter\":\"n\",\"gt\":1}],\"to\":"
       "\"a\"}]}},"),
     "bad-migration", "$.migrate.states.old[0].when", "nowhere to go"},
    {"a rule after the catch-all", M("\"migrate\":{\"states\":{\"old\":[\"a\",\"z\"]}},"),
     "bad-migration", "$.migrate.states.old[0]", NULL},
    {"keep a timer this version lacks", M("\"migrate\":{\"timers\":{\"nudge\":\"keep\"}},"),
     "unknown-name", "$.migrate.timers.nudge", NULL},
    {"a state_ttl that is no duration", M("\"state_ttl\":\"forever\","), "bad-duration",
     "$.state_ttl", NULL},
    {"a state_ttl of zero", M("\"state_ttl\":0,"), "bad-duration", "$.state_ttl", NULL},
    {"a shift that is no duration",
     M("\"migrate\":{\"timers\":{\"w\":{\"shift\":\"a day less\"}}},"), "bad-duration",
     "$.migrate.timers.w.shift", NULL},
    {"migrate beside restart",
     M("\"on_version_change\":\"restart\",\"migrate\":{\"states\":{\"old\":\"a\"}},"),
     "bad-migration", "$.migrate", NULL},
    {"an event in a migration rule",
     M("\"migrate\":{\"states\":{\"old\":[{\"when\":[{\"event\":\"/p\",\"exists\":true}],"
       "\"to\":\"a\"},\"z\"]}},"),
     "no-event", "$.migrate.states.old[0].when[0].event", NULL},
};

static const cue_diag *find(const cue_diags *d, const char *code)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->items[i].code, code) == 0) return &d->items[i];
    return NULL;
}

Test(machine, table_of_compile_cases)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const compile_case *c = &cases[i];
        char path[64];
        write_temp(path, ".json", c->text);
        cue_diags d;
        cue_diags_init(&d);
        cue_machines *ms = NULL;
        int rc = cue_machines_compile_file(&ms, path, &d);
        unlink(path);
        if (c->code == NULL) {
            cr_expect_eq(rc, 0, "%s: expected to compile, got %zu error(s): %s", c->name, d.errors,
                         d.n ? d.items[0].msg : "");
        } else {
            cr_expect_neq(rc, 0, "%s: expected error %s", c->name, c->code);
            const cue_diag *g = find(&d, c->code);
            cr_expect(g != NULL, "%s: no %s diagnostic (first: %s %s)", c->name, c->code,
                      d.n ? d.items[0].code : "-", d.n ? d.items[0].path : "");
            if (g) cr_expect_str_eq(g->path, c->path, "%s: path", c->name);
            if (g && c->in_message)
                cr_expect(strstr(g->msg, c->in_message) != NULL, "%s: message '%s' lacks '%s'",
                          c->name, g->msg, c->in_message);
        }
        cue_machines_free(ms);
        cue_diags_deinit(&d);
    }
}

Test(machine, compiled_model_means_what_the_file_says)
{
    cue_machines *ms = compile_text(
        "{\"name\":\"d\",\"version\":3,\"instance_key\":\"/props/id\",\"max_instances\":5,"
        "\"repeat\":true,\"on_version_change\":\"finish\",\"start\":{\"event\":\"open\",\"when\":["
        "{\"event\":\"/props/due\",\"exists\":true}],\"do\":[{\"start_timer\":\"due\",\"at\":{"
        "\"event\":\"/props/due\"}},{\"start_timer\":\"nag\",\"after\":\"1d2h\"}]},\"initial\":"
        "\"open\",\"final\":[\"done\"],\"states\":{\"open\":{\"on\":[{\"event\":\"close\",\"goto\":"
        "\"done\"},{\"event\":\"*\",\"when\":[{\"attr\":\"region\",\"in\":[\"EU\",\"UK\"]}]},{"
        "\"timer\":\"due\",\"goto\":\"done\"}]},\"done\":{}}}");
    cr_assert_eq(cue_machines_count(ms), 1);
    const cue_machine *m = cue_machines_get(ms, 0);
    cr_assert_str_eq(m->name, "d");
    cr_assert_eq(m->version, 3u);
    cr_assert(m->keyed && m->repeat);
    cr_assert_eq(m->max_instances, 5);
    cr_assert_eq(m->on_version_change, CUE_MIGRATE_FINISH);
    cr_assert_eq(m->n_states, 2);
    cr_assert(m->states[1].final && !m->states[0].final);
    cr_assert_eq(m->n_timers, 2);
    const cue_action *acts = cue_machines_actions(ms) + m->start.first_action;
    const cue_time_term *terms = cue_machines_time_terms(ms);
    cr_assert_eq(acts[0].n_terms, 1);
    cr_assert_eq(terms[acts[0].first_term].base, CUE_TIME_SOURCE);
    cr_assert_eq(terms[acts[1].first_term].base, CUE_TIME_NOW);
    cr_assert_eq(terms[acts[1].first_term].offset_ms, 26 * 3600 * 1000LL, "1d2h is 26 hours");
    const cue_transition *t = cue_machines_transitions(ms) + m->states[0].first_transition;
    cr_assert_eq(m->states[0].n_transitions, 3);
    cr_assert_eq(t[0].on, CUE_ON_EVENT);
    cr_assert_eq(t[0].go, 1);
    cr_assert_eq(t[1].on, CUE_ON_ANY);
    cr_assert_eq(t[1].go, -1);
    const cue_guard *g = cue_machines_guards(ms) + t[1].first_guard;
    cr_assert_eq(g->op, CUE_OP_IN);
    cr_assert_eq(g->n_set, 2);
    cr_assert_eq(t[2].on, CUE_ON_TIMER);
    cr_assert_eq(cue_machines_type_id(ms, "close", 5), t[0].type_id);
    cr_assert_eq(cue_machines_type_id(ms, "unknown", 7), -1);
    cue_machines_free(ms);
}

Test(machine, the_examples_compile_and_names_are_unique)
{
    cue_machines *ms;
    cue_err err = {0};
    cr_assert(cue_machines_load(&ms, CUE_SOURCE_DIR "/deploy/machines", NULL, &err) == 0, "%s",
              err.msg);
    cr_assert_eq(cue_machines_count(ms), 4);
    cr_assert_str_eq(cue_machines_get(ms, 0)->name, "deadlines", "files load in name order");
    cue_machines_free(ms);
    const char *files[] = {CUE_SOURCE_DIR "/deploy/machines/lifecycle.json",
                           CUE_SOURCE_DIR "/deploy/machines/lifecycle.json"};
    cr_assert(cue_machines_load_files(&ms, files, 2, &err) != 0);
    cr_assert(strstr(err.msg, "duplicate-machine") != NULL, "%s", err.msg);
    cr_assert(cue_machines_load(&ms, CUE_SOURCE_DIR "/deploy/machines", "nope", &err) != 0);
    cr_assert(cue_machines_load(&ms, "/nonexistent", NULL, &err) != 0);
    cr_assert(strstr(err.msg, "/nonexistent") != NULL, "%s", err.msg);
}

Test(machine, values_compare_by_kind)
{
    cue_value i3 = {.type = CUE_VAL_INT, .i = 3}, d3 = {.type = CUE_VAL_DOUBLE, .d = 3.0};
    cue_value d35 = {.type = CUE_VAL_DOUBLE, .d = 3.5},
              s = {.type = CUE_VAL_STRING, .s = "3", .len = 1};
    cue_value ab = {.type = CUE_VAL_STRING, .s = "ab", .len = 2},
              a = {.type = CUE_VAL_STRING, .s = "a", .len = 1};
    cue_value absent = {.type = CUE_VAL_ABSENT};
    cr_assert_eq(cue_value_cmp(&i3, &d3), 0);
    cr_assert_eq(cue_value_cmp(&i3, &d35), -1);
    cr_assert_eq(cue_value_cmp(&i3, &s), 2, "a number and a string are not comparable");
    cr_assert_eq(cue_value_cmp(&a, &ab), -1);
    cr_assert_eq(cue_value_cmp(&absent, &absent), 2);
}

/* Found by fuzzing (clang's UBSan on deploy/machines/onboarding.json): a set
 * with no guards had a NULL guard table, and the engine and the lints added
 * a range's first index to it, which is undefined even for 0. */
Test(machine, empty_tables_are_arrays_not_null)
{
    static const char text[] = "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},"
                               "\"initial\":\"a\",\"states\":{\"a\":{}}}";
    cue_diags d;
    cue_diags_init(&d);
    cue_machines *ms = NULL;
    cr_assert(cue_machines_compile_text(&ms, "t.json", text, strlen(text), &d) == 0);
    cr_assert_str_eq(cue_machines_get(ms, 0)->file, "t.json");
    cr_assert_not_null(cue_machines_guards(ms));
    cr_assert_not_null(cue_machines_actions(ms));
    cr_assert_not_null(cue_machines_transitions(ms));
    cr_assert_not_null(cue_machines_fields(ms));
    cue_machines_free(ms);
    cue_diags_deinit(&d);
}
