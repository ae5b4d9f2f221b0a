/* Lints over compiled machines, and Graphviz output. */
#include "cuepoint/check.h"

#include <stdio.h>
#include <string.h>

/* ---- paths back into the file ------------------------------------------ */

/* Where transition `ti` (an index into the set's table) sits in its file. */
static void transition_path(const cue_machine *m, size_t ti, char *out, size_t cap)
{
    for (uint16_t s = 0; s < m->n_states; s++) {
        const cue_state *st = &m->states[s];
        if (ti >= st->first_transition && ti < (size_t)st->first_transition + st->n_transitions) {
            snprintf(out, cap, "$.states.%s.on[%zu]", st->name, ti - st->first_transition);
            return;
        }
    }
    snprintf(out, cap, "$.start");
}

/* Calls `fn` for every transition of the machine, the start first. */
typedef void (*transition_fn)(const cue_machines *ms, const cue_machine *m, int state,
                              const cue_transition *t, size_t ti, void *ctx);

static void each_transition(const cue_machines *ms, const cue_machine *m, transition_fn fn,
                            void *ctx)
{
    fn(ms, m, -1, &m->start, SIZE_MAX, ctx);
    const cue_transition *all = cue_machines_transitions(ms);
    for (uint16_t s = 0; s < m->n_states; s++)
        for (uint16_t k = 0; k < m->states[s].n_transitions; k++) {
            size_t ti = (size_t)m->states[s].first_transition + k;
            fn(ms, m, s, &all[ti], ti, ctx);
        }
}

/* ---- reachability ------------------------------------------------------ */

static void reachable(const cue_machines *ms, const cue_machine *m, bool *seen)
{
    const cue_transition *all = cue_machines_transitions(ms);
    uint16_t stack[CUE_MACHINE_STATES_MAX], n = 0;
    memset(seen, 0, CUE_MACHINE_STATES_MAX * sizeof *seen);
    seen[m->initial] = true;
    stack[n++] = m->initial;
    while (n) {
        const cue_state *st = &m->states[stack[--n]];
        for (uint16_t k = 0; k < st->n_transitions; k++) {
            int16_t go = all[st->first_transition + k].go;
            if (go >= 0 && !seen[go]) {
                seen[go] = true;
                stack[n++] = (uint16_t)go;
            }
        }
    }
}

static void lint_states(const cue_machines *ms, const cue_machine *m, const bool *seen,
                        cue_diags *d)
{
    const cue_transition *all = cue_machines_transitions(ms);
    char path[300];
    for (uint16_t s = 0; s < m->n_states; s++) {
        const cue_state *st = &m->states[s];
        snprintf(path, sizeof path, "$.states.%s", st->name);
        if (!seen[s])
            cue_diags_add(d, CUE_DIAG_WARNING, "unreachable-state", path,
                          "state '%s' cannot be reached from the initial state '%s'", st->name,
                          m->states[m->initial].name);
        if (st->final && st->n_transitions)
            cue_diags_add(d, CUE_DIAG_WARNING, "final-has-transitions", path,
                          "state '%s' is final: its %u transition(s) can never run", st->name,
                          st->n_transitions);
        bool out = false;
        for (uint16_t k = 0; k < st->n_transitions; k++) {
            int16_t go = all[st->first_transition + k].go;
            out = out || (go >= 0 && go != (int16_t)s);
        }
        if (!st->final && !out && seen[s])
            cue_diags_add(d, CUE_DIAG_WARNING, "no-way-out", path,
                          "state '%s' is not final and no transition leaves it: instances "
                          "that reach it stay forever",
                          st->name);
    }
    if (m->states[m->initial].final)
        cue_diags_add(d, CUE_DIAG_WARNING, "start-in-final", "$.initial",
                      "the initial state '%s' is final: every journey ends as it starts",
                      m->states[m->initial].name);
}

/* ---- timers and triggers ------------------------------------------------ */

typedef struct usage {
    const bool *seen;
    bool timer_handled[CUE_MACHINE_TIMERS_MAX], timer_cancelled[CUE_MACHINE_TIMERS_MAX];
    bool timer_started[CUE_MACHINE_TIMERS_MAX]; /* by an action that can run */
    char timer_started_at[CUE_MACHINE_TIMERS_MAX][300];
    char timer_handled_at[CUE_MACHINE_TIMERS_MAX][300];
    bool trigger_live[CUE_MACHINE_TRIGGERS_MAX];
    char trigger_at[CUE_MACHINE_TRIGGERS_MAX][300];
} usage;

static void note_usage(const cue_machines *ms, const cue_machine *m, int state,
                       const cue_transition *t, size_t ti, void *ctx)
{
    usage *u = ctx;
    /* Actions in the start or in a reachable, non-final state can run. */
    bool live = state < 0 || (u->seen[state] && !m->states[state].final);
    if (t->on == CUE_ON_TIMER && live) u->timer_handled[t->timer] = true;
    char base[300];
    if (ti == SIZE_MAX)
        snprintf(base, sizeof base, "$.start");
    else
        transition_path(m, ti, base, sizeof base);
    if (t->on == CUE_ON_TIMER && u->timer_handled_at[t->timer][0] == '\0')
        snprintf(u->timer_handled_at[t->timer], 300, "%.290s.timer", base);
    const cue_action *acts = cue_machines_actions(ms) + t->first_action;
    for (uint16_t k = 0; k < t->n_actions; k++) {
        const cue_action *a = &acts[k];
        char *at = NULL;
        if (a->kind == CUE_ACT_START_TIMER) at = u->timer_started_at[a->target];
        if (a->kind == CUE_ACT_EMIT) at = u->trigger_at[a->target];
        if (at && at[0] == '\0') snprintf(at, 300, "%.280s.do[%u]", base, k);
        if (a->kind == CUE_ACT_CANCEL_TIMER) u->timer_cancelled[a->target] = true;
        if (a->kind == CUE_ACT_START_TIMER && live) u->timer_started[a->target] = true;
        if (a->kind == CUE_ACT_EMIT && live) u->trigger_live[a->target] = true;
    }
}

static void lint_usage(const cue_machines *ms, const cue_machine *m, const bool *seen, cue_diags *d)
{
    usage u;
    memset(&u, 0, sizeof u);
    u.seen = seen;
    each_transition(ms, m, note_usage, &u);
    /* Both are errors: a timer that fires into nothing, or a handler that
     * waits for a timer nothing starts, is a journey that does not do what
     * its author wrote. */
    for (uint16_t t = 0; t < m->n_timers; t++) {
        if (!u.timer_handled[t])
            cue_diags_add(d, CUE_DIAG_ERROR, "timer-never-handled", u.timer_started_at[t],
                          "timer '%s' is started but no reachable state has {\"timer\": \"%s\"}: "
                          "it fires into nothing%s",
                          m->timers[t].name, m->timers[t].name,
                          u.timer_cancelled[t] ? "" : " and is never cancelled");
        else if (!u.timer_started[t])
            cue_diags_add(d, CUE_DIAG_ERROR, "timer-never-started", u.timer_handled_at[t],
                          "timer '%s' is handled here but only started where nothing runs (an "
                          "unreachable or final state): it never fires",
                          m->timers[t].name);
    }
    for (uint16_t t = 0; t < m->n_triggers; t++)
        if (!u.trigger_live[t])
            cue_diags_add(d, CUE_DIAG_WARNING, "trigger-never-emitted", u.trigger_at[t],
                          "trigger '%s' is only emitted from states that can never run it",
                          m->triggers[t].name);
}

/* ---- shadowed transitions ---------------------------------------------- */

static bool same_trigger(const cue_transition *a, const cue_transition *b)
{
    if (a->on == CUE_ON_ANY) return b->on != CUE_ON_TIMER;
    if (a->on != b->on) return false;
    return a->on == CUE_ON_TIMER ? a->timer == b->timer : a->type_id == b->type_id;
}

static void lint_shadowed(const cue_machines *ms, const cue_machine *m, cue_diags *d)
{
    const cue_transition *all = cue_machines_transitions(ms);
    for (uint16_t s = 0; s < m->n_states; s++) {
        const cue_state *st = &m->states[s];
        for (uint16_t j = 1; j < st->n_transitions; j++)
            for (uint16_t i = 0; i < j; i++) {
                const cue_transition *a = &all[st->first_transition + i];
                const cue_transition *b = &all[st->first_transition + j];
                if (a->n_guards || !same_trigger(a, b)) continue;
                char path[300];
                transition_path(m, (size_t)st->first_transition + j, path, sizeof path);
                cue_diags_add(d, CUE_DIAG_WARNING, "shadowed-transition", path,
                              "this transition never runs: on[%u] before it matches the same "
                              "events and has no guards",
                              i);
                break;
            }
    }
}

void cue_check_lint(const cue_machines *ms, size_t mi, cue_diags *d)
{
    const cue_machine *m = cue_machines_get(ms, mi);
    bool seen[CUE_MACHINE_STATES_MAX];
    reachable(ms, m, seen);
    lint_states(ms, m, seen, d);
    lint_usage(ms, m, seen, d);
    lint_shadowed(ms, m, d);
}

int cue_check_file(const char *file, cue_diags *d)
{
    cue_machines *ms = NULL;
    int rc = cue_machines_compile_file(&ms, file, d);
    if (rc != 0) return rc;
    size_t errors = d->errors;
    cue_check_lint(ms, 0, d);
    cue_machines_free(ms);
    return d->errors > errors ? CUE_EMACHINE : 0;
}

/* ---- graph ------------------------------------------------------------- */

static void on_label(const cue_machines *ms, const cue_machine *m, const cue_transition *t,
                     cue_buf *out)
{
    if (t->on == CUE_ON_TIMER)
        cue_buf_printf(out, "timer %s", m->timers[t->timer].name);
    else if (t->on == CUE_ON_ANY)
        cue_buf_append_str(out, "any event");
    else
        cue_buf_append_str(out, cue_machines_type_name(ms, t->type_id));
    if (t->n_guards) cue_buf_printf(out, " [%u guard%s]", t->n_guards, t->n_guards > 1 ? "s" : "");
    const cue_action *acts = cue_machines_actions(ms) + t->first_action;
    for (uint16_t k = 0; k < t->n_actions; k++)
        if (acts[k].kind == CUE_ACT_EMIT)
            cue_buf_printf(out, "\\n/ emit %s", m->triggers[acts[k].target].name);
}

int cue_check_graph(const cue_machines *ms, size_t mi, cue_buf *out)
{
    const cue_machine *m = cue_machines_get(ms, mi);
    const cue_transition *all = cue_machines_transitions(ms);
    /* Names are letters, digits, '_', '-' and '.', so they need no escaping. */
    cue_buf_printf(out, "digraph \"%s\" {\n  rankdir=LR;\n  label=\"%s v%u\";\n", m->name, m->name,
                   m->version);
    cue_buf_append_str(out, "  node [shape=box, style=rounded];\n  \"(start)\" [shape=point];\n");
    for (uint16_t s = 0; s < m->n_states; s++)
        if (m->states[s].final)
            cue_buf_printf(out, "  \"%s\" [shape=doublecircle];\n", m->states[s].name);
    cue_buf_printf(out, "  \"(start)\" -> \"%s\" [label=\"", m->states[m->initial].name);
    on_label(ms, m, &m->start, out);
    cue_buf_append_str(out, "\"];\n");
    for (uint16_t s = 0; s < m->n_states; s++) {
        const cue_state *st = &m->states[s];
        for (uint16_t k = 0; k < st->n_transitions; k++) {
            const cue_transition *t = &all[st->first_transition + k];
            const char *to = m->states[t->go >= 0 ? t->go : s].name;
            cue_buf_printf(out, "  \"%s\" -> \"%s\" [label=\"", st->name, to);
            on_label(ms, m, t, out);
            cue_buf_printf(out, "\"%s];\n", t->go >= 0 ? "" : ", style=dashed");
        }
    }
    return cue_buf_append_str(out, "}\n");
}
