/* Lints fire on the mistake they name and stay quiet on the examples; the
 * graph draws every state and transition. */
#include "cuepoint/check.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

static size_t count(const cue_diags *d, const char *code)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += strcmp(d->items[i].code, code) == 0;
    return n;
}

static void lint_text(const char *text, cue_diags *d)
{
    cue_machines *ms = compile_text(text);
    cue_diags_init(d);
    cue_check_lint(ms, 0, d);
    cue_machines_free(ms);
}

typedef struct lint_case {
    const char *code, *text;
    const char *error_path; /* NULL: a warning; else an error at this JSON path */
} lint_case;

static const lint_case cases[] = {
    {"unreachable-state",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":"
     "\"a\",\"final\":[\"a\"],\"states\":{\"a\":{},\"b\":{}}}",
     NULL},
    {"no-way-out",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":\"a\","
     "\"states\":{\"a\":{\"on\":[{\"event\":\"x\",\"do\":[{\"emit\":\"e\"}]}]}}}",
     NULL},
    {"final-has-transitions",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":\"a\",\"final\":["
     "\"a\"],"
     "\"states\":{\"a\":{\"on\":[{\"event\":\"x\",\"do\":[{\"emit\":\"e\"}]}]}}}",
     NULL},
    {"timer-never-handled",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":[{\"start_timer\":\"w\","
     "\"after\":1}]},\"initial\":\"a\",\"final\":[\"a\"],\"states\":{\"a\":{}}}",
     "$.start.do[0]"},
    {"timer-never-started",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":\"a\",\"final\":["
     "\"z\"],\"states\":{\"a\":{\"on\":[{\"event\":\"x\",\"goto\":\"z\"},{\"timer\":\"w\","
     "\"goto\":\"z\"}]},\"b\":{\"on\":[{\"event\":\"y\",\"do\":[{\"start_timer\":\"w\","
     "\"after\":\"1h\"}],\"goto\":\"a\"}]},\"z\":{}}}",
     "$.states.a.on[1].timer"},
    {"trigger-never-emitted",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":\"a\",\"final\":["
     "\"a\","
     "\"b\"],\"states\":{\"a\":{},\"b\":{\"on\":[{\"event\":\"x\",\"do\":[{\"emit\":\"e\"}]}]}}}",
     NULL},
    {"shadowed-transition",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},"
     "\"initial\":\"a\",\"final\":[\"b\"],"
     "\"states\":{\"a\":{\"on\":[{\"event\":\"*\",\"goto\":\"b\"},{"
     "\"event\":\"x\",\"goto\":\"b\"}]},"
     "\"b\":{}}}",
     NULL},
    {"start-in-final",
     "{\"name\":\"t\",\"version\":1,\"start\":{\"event\":\"go\"},\"initial\":\"a\","
     "\"final\":[\"a\"],\"states\":{\"a\":{}}}",
     NULL},
};

Test(check, each_lint_fires_on_its_mistake)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cue_diags d;
        lint_text(cases[i].text, &d);
        cr_expect_geq(count(&d, cases[i].code), 1, "%s: not reported", cases[i].code);
        if (cases[i].error_path == NULL) {
            cr_expect_eq(d.errors, 0, "%s: a warning", cases[i].code);
            cue_diags_deinit(&d);
            continue;
        }
        cr_expect_eq(d.errors, 1, "%s: an error", cases[i].code);
        for (size_t k = 0; k < d.n; k++)
            if (strcmp(d.items[k].code, cases[i].code) == 0)
                cr_expect_str_eq(d.items[k].path, cases[i].error_path, "%s: path", cases[i].code);
        cue_diags_deinit(&d);
    }
}

Test(check, examples_lint_clean)
{
    const char *names[] = {"onboarding", "deadlines", "milestones", "lifecycle"};
    for (size_t i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/deploy/machines/%s.json", CUE_SOURCE_DIR, names[i]);
        cue_diags d;
        cue_diags_init(&d);
        cr_expect_eq(cue_check_file(path, &d), 0, "%s", names[i]);
        for (size_t k = 0; k < d.n; k++)
            cr_log_error("%s: %s: %s [%s]", names[i], d.items[k].path, d.items[k].msg,
                         d.items[k].code);
        cr_expect_eq(d.n, 0, "%s: %zu finding(s)", names[i], d.n);
        cue_diags_deinit(&d);
    }
}

Test(check, graph_draws_every_transition)
{
    cue_machines *ms;
    cue_err err;
    const char *file = CUE_SOURCE_DIR "/deploy/machines/onboarding.json";
    cr_assert(cue_machines_load_files(&ms, &file, 1, &err) == 0, "%s", err.msg);
    cue_buf out;
    cue_buf_init(&out, 1024);
    cr_assert(cue_check_graph(ms, 0, &out) == 0);
    cr_assert(strncmp(out.data, "digraph \"onboarding\" {", 22) == 0, "%s", out.data);
    cr_assert(strstr(out.data, "\"(start)\" -> \"awaiting_upload\" [label=\"signed_up\"]"));
    cr_assert(strstr(out.data, "\"finished\" [shape=doublecircle]"));
    cr_assert(strstr(out.data, "\"completed\" -> \"finished\" [label=\"timer survey\\n/ emit "
                               "onboarding_survey\"]"));
    size_t edges = 0;
    for (const char *p = out.data; (p = strstr(p, " -> ")); p++)
        edges++;
    cr_assert_eq(edges, 8, "1 start edge and 7 transitions, got %zu", edges);
    cr_assert_eq(out.data[out.len - 2], '}');
    cue_buf_deinit(&out);
    cue_machines_free(ms);
}
