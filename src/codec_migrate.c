/* Instances read from a record, settled into the current machines: their
 * state and timers by name, and by the machine's `migrate` rules when they
 * were stored under another version. */
#include "codec_int.h"

#include <string.h>

const char *const cue_mig_outcome_names[CUE_MIG_OUTCOMES] = {
    "kept", "moved", "finished", "restarted", "stranded", "done", "gone"};
const char *const cue_migt_fate_names[CUE_MIGT_FATES] = {"kept", "moved", "dropped", "gone",
                                                         "finished"};

void cue_codec_stats_add(cue_codec_stats *sum, const cue_codec_stats *s)
{
    sum->dropped_instances += s->dropped_instances;
    sum->dropped_names += s->dropped_names;
    sum->migrated += s->migrated;
    sum->moved += s->moved;
    sum->finished += s->finished;
    sum->stranded += s->stranded;
    sum->timers_moved += s->timers_moved;
    sum->timers_dropped += s->timers_dropped;
}

static int find_name(const cue_name *names, uint16_t n, uint32_t hash)
{
    for (uint16_t i = 0; i < n; i++)
        if (names[i].hash == hash) return i;
    return -1;
}

static int find_state(const cue_machine *m, uint32_t hash)
{
    for (uint16_t i = 0; i < m->n_states; i++)
        if (m->states[i].hash == hash) return i;
    return -1;
}

/* ---- the rules' guards, over what the record holds ---------------------- */

typedef struct stored {
    const cue_machine *m;
    const cue_instance *in;
    const cue_user *u;
    const char *state; /* the old state's name, as the rule spells it */
} stored;

static cue_value str_value(const char *s, size_t n)
{
    return (cue_value){.type = CUE_VAL_STRING, .s = s, .len = (uint32_t)n};
}

static cue_value stored_value(const cue_operand *o, void *arg)
{
    const stored *x = arg;
    const cue_value absent = {.type = CUE_VAL_ABSENT};
    switch (o->kind) {
    case CUE_SRC_LITERAL: return o->lit;
    case CUE_SRC_ATTR:
        if (x->u->attr_len[o->index] == 0) return absent;
        return str_value(x->u->attrs[o->index], x->u->attr_len[o->index]);
    case CUE_SRC_COUNTER: return (cue_value){.type = CUE_VAL_INT, .i = x->in->counters[o->index]};
    case CUE_SRC_VAR: {
        const cue_var *v = &x->in->vars[o->index];
        cue_value out = {.type = v->type, .b = v->b, .i = v->i, .d = v->d};
        if (v->type == CUE_VAL_STRING) out = str_value(v->s, v->len);
        return out;
    }
    case CUE_SRC_META:
        switch (o->index) {
        case CUE_META_INSTANCE_KEY:
            return x->m->keyed ? str_value(x->in->key, x->in->key_len) : absent;
        case CUE_META_STATE: return str_value(x->state, strlen(x->state));
        case CUE_META_MACHINE: return str_value(x->m->name, strlen(x->m->name));
        case CUE_META_USER_ID: return str_value(x->u->id, x->u->id_len);
        default: return absent; /* the compiler refuses event sources in rules */
        }
    default: return absent;
    }
}

/* The first rule for old state `hash` whose guards hold, or NULL. The last
 * rule of each old state has none, so a state with rules always finds one. */
static const cue_mig_rule *pick_rule(const cue_machines *ms, const cue_machine *m,
                                     const cue_user *u, const cue_instance *in, uint32_t hash)
{
    const cue_mig_rule *rules = cue_machines_mig_rules(ms) + m->first_rule;
    const cue_guard *guards = cue_machines_guards(ms);
    for (uint16_t i = 0; i < m->n_rules; i++) {
        const cue_mig_rule *r = &rules[i];
        if (r->from_hash != hash) continue;
        stored x = {.m = m, .in = in, .u = u, .state = r->from};
        bool ok = true;
        for (uint16_t k = 0; k < r->n_guards && ok; k++)
            ok = cue_guard_eval(&guards[r->first_guard + k], stored_value, &x);
        if (ok) return r;
    }
    return NULL;
}

static const cue_mig_timer *find_rule_timer(const cue_mig_timer *t, uint16_t n, uint32_t hash)
{
    for (uint16_t i = 0; i < n; i++)
        if (t[i].from_hash == hash) return &t[i];
    return NULL;
}

/* ---- settling ----------------------------------------------------------- */

/* Places the pending timers of an instance being migrated: the state rule's
 * timer rules first, then the machine's, then by name. A finished (or
 * dropped) instance keeps none. */
static void settle_timers(const cue_machines *ms, const cue_machine *m, const cue_mig_rule *rule,
                          cue_instance *in, const cue_old_timer *olds, uint8_t n,
                          cue_codec_stats *st, cue_migration *mg)
{
    const cue_mig_timer *all = cue_machines_mig_timers(ms);
    for (uint8_t k = 0; k < n; k++) {
        const cue_mig_timer *r = NULL;
        if (rule) r = find_rule_timer(all + rule->first_timer, rule->n_timers, olds[k].hash);
        if (r == NULL && m->migrates)
            r = find_rule_timer(all + m->first_mtimer, m->n_mtimers, olds[k].hash);
        int same = find_name(m->timers, m->n_timers, olds[k].hash);
        int64_t due = olds[k].due;
        int to = -1;
        uint8_t fate;
        if (in->finished) {
            fate = CUE_MIGT_FINISHED;
        } else if (r && r->to < 0) {
            fate = CUE_MIGT_DROPPED;
        } else if (r) {
            to = r->to;
            due += r->shift_ms; /* within a century of a time in 0-9999: no overflow */
            fate = r->shift_ms || to != same ? CUE_MIGT_MOVED : CUE_MIGT_KEPT;
        } else if (same >= 0) {
            to = same;
            fate = CUE_MIGT_KEPT;
        } else {
            fate = CUE_MIGT_GONE;
        }
        if (to >= 0) in->timers[to] = due;
        st->timers_moved += fate == CUE_MIGT_MOVED;
        st->timers_dropped += fate >= CUE_MIGT_DROPPED;
        mg->timers[k].from = olds[k].hash;
        mg->timers[k].from_name = r ? r->from : same >= 0 ? m->timers[same].name : NULL;
        mg->timers[k].fate = fate;
        mg->timers[k].to = (int16_t)to;
        mg->timers[k].due_was = olds[k].due;
        mg->timers[k].due = to >= 0 ? due : CUE_TIMER_NONE;
    }
    mg->n_timers = n;
}

/* Where an instance stored under another version (or in a state that is
 * gone) goes, and what is counted. Returns the outcome; *state is where it
 * now is. */
/* Where a finished instance whose state is gone is shown: the first final
 * state (its journey is over), else the initial one. */
static int finished_state(const cue_machine *m)
{
    for (uint16_t i = 0; i < m->n_states; i++)
        if (m->states[i].final) return i;
    return m->initial;
}

static uint8_t settle_state(const cue_machine *m, const cue_mig_rule *rule, bool migrating,
                            bool was_finished, int *state, uint32_t state_hash)
{
    int here = *state >= 0 ? *state : finished_state(m);
    if (migrating &&
        (m->on_version_change == CUE_MIGRATE_RESTART || (rule && rule->action == CUE_MIG_RESTART)))
        return CUE_MIG_RESTARTED;
    if (was_finished) {
        *state = rule && rule->action == CUE_MIG_MOVE ? rule->to : here;
        return CUE_MIG_DONE;
    }
    if ((migrating && m->on_version_change == CUE_MIGRATE_FINISH) ||
        (rule && rule->action == CUE_MIG_FINISH)) {
        *state = here;
        return CUE_MIG_FINISHED;
    }
    if (rule) {
        *state = rule->to;
        if (m->states[rule->to].final) return CUE_MIG_FINISHED;
        return m->states[rule->to].hash == state_hash ? CUE_MIG_KEPT : CUE_MIG_MOVED;
    }
    if (*state >= 0) return CUE_MIG_KEPT;
    *state = here;
    return CUE_MIG_STRANDED;
}

static bool settle_other(const cue_machine *m, uint16_t mi, const cue_machines *ms,
                         const cue_user *u, cue_instance *in, uint32_t state_hash,
                         const cue_old_timer *olds, uint8_t n_olds, cue_codec_stats *st,
                         const cue_mig_trace *tr)
{
    cue_migration mg = {.machine_hash = m->hash,
                        .m = m,
                        .machine = mi,
                        .from_version = in->version,
                        .from_state = state_hash,
                        .to_state = -1};
    int state = find_state(m, state_hash);
    bool migrating = in->version != m->version;
    const cue_mig_rule *rule =
        migrating && m->migrates ? pick_rule(ms, m, u, in, state_hash) : NULL;
    mg.from_name = rule ? rule->from : state >= 0 ? m->states[state].name : NULL;
    mg.rule = rule;
    if (migrating) st->migrated++;
    in->version = m->version;
    uint8_t outcome = settle_state(m, rule, migrating, in->finished, &state, state_hash);
    st->dropped_instances += outcome == CUE_MIG_RESTARTED;
    st->moved += outcome == CUE_MIG_MOVED;
    st->finished += outcome == CUE_MIG_FINISHED;
    st->stranded += outcome == CUE_MIG_STRANDED;
    if (outcome == CUE_MIG_FINISHED || outcome == CUE_MIG_STRANDED || outcome == CUE_MIG_RESTARTED)
        in->finished = true;
    in->state = (uint16_t)state;
    settle_timers(ms, m, rule, in, olds, n_olds, st, &mg);
    mg.outcome = outcome;
    mg.to_state = outcome == CUE_MIG_RESTARTED ? -1 : (int16_t)state;
    if (tr && tr->fn) tr->fn(&mg, tr->ctx);
    return outcome != CUE_MIG_RESTARTED;
}

bool cue_codec_settle(const cue_machine *m, uint16_t mi, const cue_machines *ms, const cue_user *u,
                      cue_instance *in, uint32_t state_hash, const cue_old_timer *olds,
                      uint8_t n_olds, cue_codec_stats *st, const cue_mig_trace *tr)
{
    int state = find_state(m, state_hash);
    if (in->version != m->version || state < 0)
        return settle_other(m, mi, ms, u, in, state_hash, olds, n_olds, st, tr);
    /* The common case: this version's own state, timers by name. */
    in->state = (uint16_t)state;
    for (uint8_t k = 0; k < n_olds; k++) {
        int t = find_name(m->timers, m->n_timers, olds[k].hash);
        if (t >= 0)
            in->timers[t] = olds[k].due;
        else
            st->timers_dropped++;
    }
    return true;
}
