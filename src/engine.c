/* The pure step: guards, actions and transitions over one user's state. */
#include "cuepoint/engine.h"

#include "cuepoint/timefmt.h"
#include "cuepoint/tz.h"

#include <stdio.h>
#include <string.h>

#define DAY_MS 86400000LL

/* Everything one step needs, on the stack of the caller. */
typedef struct step {
    const cue_machines *ms;
    cue_user *u;
    const cue_event *ev; /* NULL for timers */
    const cue_step_env *env;
    bool attrs_from_event; /* checking before the step: the event's attributes count */
    int64_t now_ms;
    const char *timer_name; /* timers only */
    cue_hash128 cause;      /* digest of the cause, once has_cause */
    bool has_cause;         /* computed on the first trigger: most steps emit none */
    cue_emit_fn emit;
    void *ctx;
    cue_step_stats *st;
    uint16_t n_emitted; /* (instance, trigger) pairs emitted in this step, for ordinals */
    struct {
        uint16_t machine;
        uint8_t trigger;
        uint64_t key_hash; /* instances can move within a step; their keys' hashes do not */
    } emitted[CUE_STEP_TRIGGERS_MAX];
} step;

/* Sets up a step field by field: a designated initializer would also zero the
 * 4 KiB `emitted` table on every event, of which only n_emitted is read. */
static void step_init(step *s, const cue_machines *ms, cue_user *u, const cue_event *ev,
                      int64_t now_ms, const cue_step_env *env, cue_emit_fn emit, void *ctx,
                      cue_step_stats *st)
{
    s->ms = ms;
    s->u = u;
    s->ev = ev;
    s->env = env;
    s->attrs_from_event = false;
    s->now_ms = now_ms;
    s->timer_name = NULL;
    s->cause = (cue_hash128){0, 0};
    s->has_cause = false;
    s->emit = emit;
    s->ctx = ctx;
    s->st = st;
    s->n_emitted = 0;
}

static cue_hash128 event_cause(const cue_event *ev);
static cue_hash128 timer_cause(const char *name, int64_t due_ms);

/* ---- values ------------------------------------------------------------ */

static cue_value str_value(const char *s, size_t n)
{
    return (cue_value){.type = CUE_VAL_STRING, .s = s, .len = (uint32_t)n};
}

static cue_value var_value(const cue_var *v)
{
    cue_value out = {.type = v->type};
    switch (v->type) {
    case CUE_VAL_BOOL: out.b = v->b; break;
    case CUE_VAL_INT: out.i = v->i; break;
    case CUE_VAL_DOUBLE: out.d = v->d; break;
    case CUE_VAL_STRING:
        out.s = v->s;
        out.len = v->len;
        break;
    default: break;
    }
    return out;
}

static cue_value meta_value(const step *s, const cue_machine *m, const cue_instance *in,
                            uint8_t which)
{
    switch (which) {
    case CUE_META_INSTANCE_KEY:
        return m->keyed ? str_value(in->key, in->key_len) : (cue_value){.type = CUE_VAL_ABSENT};
    case CUE_META_STATE: {
        const char *n = m->states[in->state].name;
        return str_value(n, strlen(n));
    }
    case CUE_META_MACHINE: return str_value(m->name, strlen(m->name));
    case CUE_META_USER_ID: return str_value(s->u->id, s->u->id_len);
    case CUE_META_EVENT_TYPE:
        return s->ev ? str_value(s->ev->type, s->ev->type_len)
                     : (cue_value){.type = CUE_VAL_ABSENT};
    default: return (cue_value){.type = CUE_VAL_INT, .i = s->now_ms};
    }
}

static cue_value resolve(const step *s, const cue_machine *m, const cue_instance *in,
                         const cue_operand *o)
{
    switch (o->kind) {
    case CUE_SRC_LITERAL: return o->lit;
    case CUE_SRC_EVENT:
        if (s->ev == NULL) return (cue_value){.type = CUE_VAL_ABSENT};
        return cue_event_value(s->ev, cue_machines_ptr(s->ms, o->ptr));
    case CUE_SRC_ATTR:
        if (s->attrs_from_event && s->ev->attr[o->index]) {
            size_t n = s->ev->attr_len[o->index];
            return str_value(s->ev->attr[o->index],
                             n < CUE_ATTR_BYTES_MAX ? n : CUE_ATTR_BYTES_MAX);
        }
        if (s->u->attr_len[o->index] == 0) return (cue_value){.type = CUE_VAL_ABSENT};
        return str_value(s->u->attrs[o->index], s->u->attr_len[o->index]);
    case CUE_SRC_COUNTER: return (cue_value){.type = CUE_VAL_INT, .i = in->counters[o->index]};
    case CUE_SRC_VAR: return var_value(&in->vars[o->index]);
    default: return meta_value(s, m, in, o->index);
    }
}

/* ---- guards ------------------------------------------------------------ */

static bool guard_holds(const step *s, const cue_machine *m, const cue_instance *in,
                        const cue_guard *g)
{
    cue_value l = resolve(s, m, in, &g->lhs);
    if (g->op == CUE_OP_EXISTS) {
        bool present = l.type != CUE_VAL_ABSENT && l.type != CUE_VAL_NULL;
        return present == g->rhs.lit.b;
    }
    if (g->op == CUE_OP_IN || g->op == CUE_OP_NOT_IN) {
        bool found = false;
        for (uint8_t i = 0; i < g->n_set && !found; i++) {
            cue_value r = resolve(s, m, in, &g->set[i]);
            found = cue_value_cmp(&l, &r) == 0;
        }
        return found == (g->op == CUE_OP_IN);
    }
    cue_value r = resolve(s, m, in, &g->rhs);
    return cue_op_holds(g->op, cue_value_cmp(&l, &r));
}

static bool guards_hold(const step *s, const cue_machine *m, const cue_instance *in,
                        const cue_transition *t)
{
    const cue_guard *g = cue_machines_guards(s->ms) + t->first_guard;
    for (uint16_t i = 0; i < t->n_guards; i++)
        if (!guard_holds(s, m, in, &g[i])) return false;
    return true;
}

/* ---- actions ----------------------------------------------------------- */

static uint8_t ordinal(step *s, const cue_instance *in, uint8_t trigger)
{
    uint8_t n = 0;
    uint64_t kh = cue_hash64(in->key, in->key_len, 0);
    for (uint16_t i = 0; i < s->n_emitted; i++)
        n += s->emitted[i].machine == in->machine && s->emitted[i].trigger == trigger &&
             s->emitted[i].key_hash == kh;
    if (s->n_emitted < CUE_STEP_TRIGGERS_MAX) {
        s->emitted[s->n_emitted].machine = in->machine;
        s->emitted[s->n_emitted].trigger = trigger;
        s->emitted[s->n_emitted].key_hash = kh;
        s->n_emitted++;
    }
    return n;
}

/* trigger_id: fields separated by a byte that names cannot contain. */
static void trigger_id(step *s, const cue_machine *m, const cue_instance *in, uint8_t trigger,
                       char out[CUE_HASH_HEX_LEN + 1])
{
    uint8_t buf[CUE_USER_ID_BYTES_MAX + CUE_NAME_BYTES_MAX * 2 + CUE_KEY_BYTES_MAX + 32];
    size_t n = 0;
    const char *name = m->triggers[trigger].name;
    memcpy(buf + n, s->u->id, s->u->id_len);
    n += s->u->id_len;
    buf[n++] = 0;
    memcpy(buf + n, m->name, strlen(m->name));
    n += strlen(m->name);
    buf[n++] = 0;
    memcpy(buf + n, in->key, in->key_len);
    n += in->key_len;
    buf[n++] = 0;
    memcpy(buf + n, name, strlen(name));
    n += strlen(name);
    buf[n++] = 0;
    if (!s->has_cause) {
        s->cause = s->ev ? event_cause(s->ev) : timer_cause(s->timer_name, s->now_ms);
        s->has_cause = true;
    }
    for (int i = 0; i < 8; i++)
        buf[n++] = (uint8_t)(s->cause.hi >> (8 * i));
    for (int i = 0; i < 8; i++)
        buf[n++] = (uint8_t)(s->cause.lo >> (8 * i));
    buf[n++] = ordinal(s, in, trigger);
    cue_hash128_hex(cue_hash128_of(buf, n), out);
}

static void do_emit(step *s, const cue_machine *m, cue_instance *in, const cue_action *a,
                    const cue_transition *t)
{
    if (a->once && (in->once & (1u << a->target))) return;
    if (a->once) in->once |= 1u << a->target;
    cue_trigger tr = {
        .user = s->u,
        .machine = m,
        .machine_index = in->machine,
        .trigger_index = a->target,
        .inst = in,
        .name = m->triggers[a->target].name,
        .from_state = m->states[in->state].name,
        .to_state = m->states[t->go >= 0 ? t->go : in->state].name,
        .time_ms = s->now_ms,
        .ev = s->ev,
        .timer = s->timer_name,
        .fields = cue_machines_fields(s->ms) + a->first_field,
        .n_fields = a->n_fields,
    };
    for (uint16_t i = 0; i < a->n_fields; i++)
        tr.values[i] = resolve(s, m, in, &tr.fields[i].src);
    trigger_id(s, m, in, a->target, tr.id);
    s->st->triggers++;
    s->emit(&tr, s->ctx);
}

static void do_set(step *s, const cue_machine *m, cue_instance *in, const cue_action *a)
{
    cue_value v = resolve(s, m, in, &a->src);
    cue_var *var = &in->vars[a->target];
    var->type = v.type;
    var->b = v.type == CUE_VAL_BOOL && v.b;
    var->i = v.type == CUE_VAL_INT ? v.i : 0;
    var->d = v.type == CUE_VAL_DOUBLE ? v.d : 0;
    var->len = 0;
    if (v.type == CUE_VAL_STRING || v.type == CUE_VAL_JSON) {
        uint32_t n = v.len;
        if (n > CUE_VALUE_BYTES_MAX) {
            n = CUE_VALUE_BYTES_MAX;
            s->st->value_truncated++;
        }
        var->type = CUE_VAL_STRING;
        var->len = (uint8_t)n;
        memcpy(var->s, v.s, n);
    }
}

/* ---- timer times ------------------------------------------------------- */

typedef enum due_rc { DUE_OK = 0, DUE_UNREADABLE, DUE_SKIP } due_rc;

/* Resolves `o` as it will read when action k of `acts` runs: checking before
 * the step, a variable that an earlier action of the same transition sets
 * holds what that action will put there. `acts` NULL: as it reads now. */
static cue_value resolve_at(const step *s, const cue_machine *m, const cue_instance *in,
                            const cue_action *acts, uint16_t k, const cue_operand *o)
{
    for (uint16_t j = k; acts && o->kind == CUE_SRC_VAR && j-- > 0;) {
        const cue_action *a = &acts[j];
        if ((a->kind != CUE_ACT_SET && a->kind != CUE_ACT_UNSET) || a->target != o->index) continue;
        if (a->kind == CUE_ACT_UNSET) return (cue_value){.type = CUE_VAL_ABSENT};
        o = &a->src;
    }
    return resolve(s, m, in, o);
}

/* `minute` of the local day of `t`, in the user's zone (else UTC). */
static int64_t local_clock(const step *s, int64_t t, int16_t minute)
{
    if (s->env && s->env->tz && s->env->zone >= 0) {
        cue_civil c;
        cue_tz_local(s->env->tz, s->env->zone, t, &c);
        c.hour = minute / 60;
        c.minute = minute % 60;
        c.second = c.millis = 0;
        return cue_tz_instant(s->env->tz, s->env->zone, &c);
    }
    int64_t day = t >= 0 ? t / DAY_MS : -((-t + DAY_MS - 1) / DAY_MS);
    return day * DAY_MS + (int64_t)minute * 60000;
}

/* When start_timer `a` makes its timer due. DUE_UNREADABLE, with the term
 * and what it read, when a time is missing or is no time; DUE_SKIP when it is
 * past and the action says "if_past": "skip". */
static due_rc timer_due(const step *s, const cue_machine *m, const cue_instance *in,
                        const cue_action *a, const cue_action *acts, uint16_t k, int64_t *due,
                        const cue_time_term **bad, cue_value *seen)
{
    const cue_time_term *terms = cue_machines_time_terms(s->ms) + a->first_term;
    bool have = false;
    int64_t best = 0;
    for (uint8_t i = 0; i < a->n_terms; i++) {
        const cue_time_term *tt = &terms[i];
        int64_t t = s->now_ms;
        if (tt->base == CUE_TIME_SOURCE) {
            cue_value v = resolve_at(s, m, in, acts, k, &tt->src);
            bool missing = v.type == CUE_VAL_ABSENT || v.type == CUE_VAL_NULL;
            /* The earliest or latest of the times that are there, as SQL's
             * LEAST and GREATEST skip NULLs. */
            if (missing && a->pick != CUE_TIME_ONE) continue;
            if (missing || cue_event_time_of(&v, &t) != 0) {
                *bad = tt;
                *seen = v;
                return DUE_UNREADABLE;
            }
        }
        /* Times are within years 0-9999 and offsets within a century. */
        t += tt->offset_ms;
        if (!have || (a->pick == CUE_TIME_LATEST ? t > best : t < best)) best = t;
        have = true;
    }
    if (!have) {
        *bad = NULL;
        *seen = (cue_value){.type = CUE_VAL_ABSENT};
        return DUE_UNREADABLE;
    }
    if (a->local_min != CUE_LOCAL_NONE) best = local_clock(s, best, a->local_min);
    *due = best;
    return best < s->now_ms && a->skip_past ? DUE_SKIP : DUE_OK;
}

static void do_start_timer(step *s, const cue_machine *m, cue_instance *in, const cue_action *a)
{
    int64_t due = CUE_TIMER_NONE;
    const cue_time_term *bad;
    cue_value seen;
    switch (timer_due(s, m, in, a, NULL, 0, &due, &bad, &seen)) {
    case DUE_OK:
        /* In a timer's step, a time not after the step's own would come due
         * at once, fire the same transition, and start it again, for ever:
         * the partition would never get past it. Refused and counted. */
        if (s->ev == NULL && due <= s->now_ms) {
            s->st->timers_refused++;
            break;
        }
        /* A time already past fires at once, just after this step, with its
         * own due time as the trigger's time (docs/journeys.md, "Timers"). */
        s->st->timers_past += due < s->now_ms;
        in->timers[a->target] = due;
        break;
    case DUE_SKIP:
        s->st->timers_past_skipped++;
        in->timers[a->target] = CUE_TIMER_NONE;
        break;
    default:
        /* Only a timer's step gets here (an event's was checked first): a
         * variable that holds no time. Nothing to refuse; counted. */
        s->st->bad_timer_value++;
        break;
    }
}

/* Counters stop at the 64-bit bounds rather than wrap (a wrap is undefined,
 * and would turn "many" into "very few"). */
static int64_t add_saturating(int64_t a, int64_t b)
{
    int64_t sum;
    if (!__builtin_add_overflow(a, b, &sum)) return sum;
    return b > 0 ? INT64_MAX : INT64_MIN;
}

static void run_actions(step *s, const cue_machine *m, cue_instance *in, const cue_transition *t)
{
    const cue_action *acts = cue_machines_actions(s->ms) + t->first_action;
    for (uint16_t i = 0; i < t->n_actions; i++) {
        const cue_action *a = &acts[i];
        switch (a->kind) {
        case CUE_ACT_EMIT: do_emit(s, m, in, a, t); break;
        case CUE_ACT_SET: do_set(s, m, in, a); break;
        case CUE_ACT_UNSET: in->vars[a->target].type = CUE_VAL_ABSENT; break;
        case CUE_ACT_INCREMENT:
            in->counters[a->target] = add_saturating(in->counters[a->target], a->amount);
            break;
        case CUE_ACT_RESET: in->counters[a->target] = 0; break;
        case CUE_ACT_START_TIMER: do_start_timer(s, m, in, a); break;
        default: in->timers[a->target] = CUE_TIMER_NONE; break;
        }
    }
}

/* Runs transition t on instance i; returns false if the instance was removed. */
static bool take(step *s, const cue_machine *m, size_t i, const cue_transition *t)
{
    cue_instance *in = &s->u->inst[i];
    int16_t from = t == &m->start ? -1 : (int16_t)in->state;
    uint64_t made = s->st->triggers;
    run_actions(s, m, in, t);
    in->updated_ms = s->now_ms;
    s->st->transitions++;
    if (t->go >= 0) in->state = (uint16_t)t->go;
    if (s->env && s->env->taken) {
        cue_take tk = {.machine = in->machine,
                       .from = from,
                       .to = in->state,
                       .final = m->states[in->state].final,
                       .triggers = (uint32_t)(s->st->triggers - made),
                       .started_ms = in->started_ms,
                       .at_ms = s->now_ms};
        s->env->taken(&tk, s->env->taken_ctx);
    }
    if (!m->states[in->state].final) return true;
    /* A finished journey keeps no timers: nothing may fire for it later. */
    in->finished = true;
    s->st->finishes++;
    for (size_t k = 0; k < CUE_MACHINE_TIMERS_MAX; k++)
        in->timers[k] = CUE_TIMER_NONE;
    if (!m->repeat) return true;
    cue_user_remove_instance(s->u, i);
    return false;
}

/* ---- events ------------------------------------------------------------ */

static bool on_matches(const cue_transition *t, int32_t type_id)
{
    return t->on == CUE_ON_ANY || (t->on == CUE_ON_EVENT && t->type_id == type_id);
}

/* The instance key for a keyed machine, as text; false when the event has none. */
static bool event_key(step *s, const cue_machine *m, char *out, uint8_t *len)
{
    cue_value v = cue_event_value(s->ev, cue_machines_ptr(s->ms, m->key_ptr));
    if (v.type == CUE_VAL_ABSENT || v.type == CUE_VAL_NULL) return false;
    if (v.type == CUE_VAL_INT) {
        char tmp[24];
        size_t n = 0;
        uint64_t x = v.i < 0 ? -(uint64_t)v.i : (uint64_t)v.i;
        do
            tmp[n++] = (char)('0' + x % 10);
        while ((x /= 10) != 0);
        if (v.i < 0) tmp[n++] = '-';
        for (size_t k = 0; k < n; k++)
            out[k] = tmp[n - 1 - k];
        *len = (uint8_t)n;
        return true;
    }
    if (v.type != CUE_VAL_STRING || v.len == 0 || v.len > CUE_KEY_BYTES_MAX) {
        s->st->bad_key++;
        return false;
    }
    memcpy(out, v.s, v.len);
    *len = (uint8_t)v.len;
    return true;
}

static int find_instance(const cue_user *u, uint16_t mi, const char *key, uint8_t key_len)
{
    for (size_t i = 0; i < u->n_instances; i++) {
        const cue_instance *in = &u->inst[i];
        if (in->machine == mi && in->key_len == key_len && memcmp(in->key, key, key_len) == 0)
            return (int)i;
    }
    return -1;
}

/* Makes room for one more instance of machine mi: at its bound, the oldest
 * finished instance goes (its journey is over); if none is finished, no room. */
static bool make_room(step *s, const cue_machine *m, uint16_t mi)
{
    size_t live = 0;
    int oldest = -1;
    for (size_t i = 0; i < s->u->n_instances; i++) {
        const cue_instance *in = &s->u->inst[i];
        if (in->machine != mi) continue;
        live++;
        if (in->finished && (oldest < 0 || in->updated_ms < s->u->inst[oldest].updated_ms))
            oldest = (int)i;
    }
    if (live < m->max_instances && s->u->n_instances < CUE_USER_INSTANCES_MAX) return true;
    if (oldest < 0) {
        s->st->instance_limit++;
        return false;
    }
    cue_user_remove_instance(s->u, (size_t)oldest);
    return true;
}

static void start_instance(step *s, const cue_machine *m, uint16_t mi, const char *key,
                           uint8_t key_len)
{
    /* The new instance is built in the first free slot, not on the stack: an
     * instance is over a kilobyte, and a start happens on many events. */
    cue_user *u = s->u;
    bool full = u->n_instances == CUE_USER_INSTANCES_MAX;
    cue_instance scratch, *fresh = full ? &scratch : &u->inst[u->n_instances];
    cue_instance_init(fresh, m, mi, s->now_ms);
    memcpy(fresh->key, key, key_len);
    fresh->key_len = key_len;
    if (!guards_hold(s, m, fresh, &m->start)) return;
    size_t before = u->n_instances;
    if (!make_room(s, m, mi)) return;
    /* Making room removed an instance and shifted the others down one. */
    if (full || u->n_instances < before) u->inst[u->n_instances] = *fresh;
    size_t i = u->n_instances++;
    s->st->starts++;
    take(s, m, i, &m->start);
}

/* The transition an event takes from the instance's state, or NULL. */
static const cue_transition *first_match(const step *s, const cue_machine *m,
                                         const cue_instance *in, int32_t type_id)
{
    const cue_state *st = &m->states[in->state];
    const cue_transition *ts = cue_machines_transitions(s->ms) + st->first_transition;
    for (uint16_t k = 0; k < st->n_transitions; k++)
        if (on_matches(&ts[k], type_id) && guards_hold(s, m, in, &ts[k])) return &ts[k];
    return NULL;
}

static void apply_machine(step *s, uint16_t mi, int32_t type_id)
{
    const cue_machine *m = cue_machines_get(s->ms, mi);
    char key[CUE_KEY_BYTES_MAX];
    uint8_t key_len = 0;
    if (m->keyed && !event_key(s, m, key, &key_len)) return;
    int i = find_instance(s->u, mi, key, key_len);
    if (i < 0) {
        if (on_matches(&m->start, type_id)) start_instance(s, m, mi, key, key_len);
        return;
    }
    cue_instance *in = &s->u->inst[i];
    if (in->finished) return;
    const cue_transition *t = first_match(s, m, in, type_id);
    if (t) take(s, m, (size_t)i, t);
}

/* ---- checking an event before it is applied ----------------------------- */

/* Whether the transition's timers all have a time they can read; if not,
 * fills `why` for the first that does not. */
static bool times_readable(const step *s, const cue_machine *m, const cue_instance *in,
                           const cue_transition *t, cue_step_refusal *why)
{
    const cue_action *acts = cue_machines_actions(s->ms) + t->first_action;
    for (uint16_t k = 0; k < t->n_actions; k++) {
        const cue_action *a = &acts[k];
        if (a->kind != CUE_ACT_START_TIMER) continue;
        int64_t due;
        const cue_time_term *bad;
        cue_value seen;
        if (timer_due(s, m, in, a, acts, k, &due, &bad, &seen) != DUE_UNREADABLE) continue;
        why->machine = m;
        why->timer = m->timers[a->target].name;
        why->state = m->states[in->state].name;
        why->none_there = bad == NULL;
        why->src = bad ? &bad->src : &cue_machines_time_terms(s->ms)[a->first_term].src;
        why->value = seen;
        return false;
    }
    return true;
}

/* Whether a start would find room (make_room, without making it). */
static bool has_room(const step *s, const cue_machine *m, uint16_t mi)
{
    size_t live = 0;
    bool finished = false;
    for (size_t i = 0; i < s->u->n_instances; i++) {
        if (s->u->inst[i].machine != mi) continue;
        live++;
        finished = finished || s->u->inst[i].finished;
    }
    return finished || (live < m->max_instances && s->u->n_instances < CUE_USER_INSTANCES_MAX);
}

/* As apply_machine decides, without changing anything. */
static bool check_machine(step *s, uint16_t mi, int32_t type_id, cue_step_refusal *why)
{
    const cue_machine *m = cue_machines_get(s->ms, mi);
    char key[CUE_KEY_BYTES_MAX];
    uint8_t key_len = 0;
    if (m->keyed && !event_key(s, m, key, &key_len)) return true;
    int i = find_instance(s->u, mi, key, key_len);
    if (i >= 0) {
        const cue_instance *in = &s->u->inst[i];
        const cue_transition *t = in->finished ? NULL : first_match(s, m, in, type_id);
        return t == NULL || !t->reads_time || times_readable(s, m, in, t, why);
    }
    if (!on_matches(&m->start, type_id) || !m->start.reads_time) return true;
    cue_instance fresh;
    cue_instance_init(&fresh, m, mi, s->now_ms);
    memcpy(fresh.key, key, key_len);
    fresh.key_len = key_len;
    if (!guards_hold(s, m, &fresh, &m->start) || !has_room(s, m, mi)) return true;
    return times_readable(s, m, &fresh, &m->start, why);
}

/* Whether an event of this type can take a transition of `m` that reads a
 * timer's time: most events cannot, and are checked no further. */
static bool may_read_time(const cue_machine *m, int32_t type_id)
{
    if (m->time_any_type) return true;
    for (uint8_t i = 0; i < m->n_time_types; i++)
        if (m->time_types[i] == type_id) return true;
    return false;
}

static int32_t event_type(const cue_machines *ms, const cue_event *ev, const cue_step_env *env)
{
    return env && env->has_type ? env->type_id : cue_machines_type_id(ms, ev->type, ev->type_len);
}

bool cue_engine_check(const cue_machines *ms, const cue_user *u, const cue_event *ev,
                      const cue_step_env *env, cue_step_refusal *why)
{
    step s;
    cue_step_stats scratch = {0}; /* what checking counts is counted again by the step */
    /* Read-only: nothing below writes through s.u. */
    step_init(&s, ms, (cue_user *)u, ev, ev->ts_ms, env, NULL, NULL, &scratch);
    s.attrs_from_event = true;
    int32_t type_id = event_type(ms, ev, env);
    for (size_t mi = 0; mi < cue_machines_count(ms); mi++)
        if (may_read_time(cue_machines_get(ms, mi), type_id) &&
            !check_machine(&s, (uint16_t)mi, type_id, why))
            return false;
    return true;
}

size_t cue_engine_refusal_text(const cue_machines *ms, const cue_step_refusal *why, char *out,
                               size_t cap)
{
    char where[CUE_JSON_PTR_BYTES_MAX + 32], what[128];
    const cue_operand *o = why->src;
    if (o->kind == CUE_SRC_EVENT)
        snprintf(where, sizeof where, "%s", cue_machines_ptr(ms, o->ptr)->source);
    else if (o->kind == CUE_SRC_VAR)
        snprintf(where, sizeof where, "variable '%s'", why->machine->vars[o->index].name);
    else
        snprintf(where, sizeof where, "its source");
    const cue_value *v = &why->value;
    const char *hint = "";
    switch (v->type) {
    case CUE_VAL_ABSENT: snprintf(what, sizeof what, "there is nothing there"); break;
    case CUE_VAL_NULL: snprintf(what, sizeof what, "it is null"); break;
    case CUE_VAL_BOOL: snprintf(what, sizeof what, "it is %s", v->b ? "true" : "false"); break;
    case CUE_VAL_INT:
        snprintf(what, sizeof what, "it is %lld", (long long)v->i);
        /* As for event times: an integer of 10 or 11 digits is seconds. */
        if (v->i >= 1000000000LL && v->i < 100000000000LL)
            hint = ", and this looks like epoch seconds";
        break;
    case CUE_VAL_DOUBLE: snprintf(what, sizeof what, "it is %g", v->d); break;
    case CUE_VAL_STRING:
        snprintf(what, sizeof what, "it is \"%.*s\"%s", (int)(v->len < 48 ? v->len : 48), v->s,
                 v->len > 48 ? "..." : "");
        break;
    default: snprintf(what, sizeof what, "it is an object or array"); break;
    }
    int n;
    if (why->none_there)
        n = snprintf(out, cap,
                     "journey '%s' (state '%s') starts timer '%s' at the earliest or latest of "
                     "several times, and none of them is there (the first is read from %s)",
                     why->machine->name, why->state, why->timer, where);
    else
        n = snprintf(out, cap,
                     "journey '%s' (state '%s') starts timer '%s' at the time in %s, but %s: a "
                     "time is epoch milliseconds or RFC 3339 with an offset, 1970-9999%s",
                     why->machine->name, why->state, why->timer, where, what, hint);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static void copy_attrs(cue_user *u, const cue_event *ev)
{
    for (int a = 0; a < CUE_ATTR_COUNT; a++) {
        if (ev->attr[a] == NULL) continue;
        size_t n = ev->attr_len[a] < CUE_ATTR_BYTES_MAX ? ev->attr_len[a] : CUE_ATTR_BYTES_MAX;
        memcpy(u->attrs[a], ev->attr[a], n);
        u->attr_len[a] = (uint8_t)n;
    }
}

/* The cause of an event's triggers: its id when it has one (so a re-sent copy
 * of the same event gives the same ids), else its bytes. */
static cue_hash128 event_cause(const cue_event *ev)
{
    uint8_t buf[CUE_KEY_BYTES_MAX + 4];
    if (ev->event_id) {
        memcpy(buf, "id:", 3);
        memcpy(buf + 3, ev->event_id, ev->event_id_len);
        return cue_hash128_of(buf, 3 + ev->event_id_len);
    }
    return cue_hash128_of(ev->raw, ev->raw_len);
}

void cue_engine_apply(const cue_machines *ms, cue_user *u, const cue_event *ev,
                      const cue_step_env *env, cue_emit_fn emit, void *ctx, cue_step_stats *st)
{
    step s;
    step_init(&s, ms, u, ev, ev->ts_ms, env, emit, ctx, st);
    copy_attrs(u, ev);
    int32_t type_id = event_type(ms, ev, env);
    for (size_t mi = 0; mi < cue_machines_count(ms); mi++)
        apply_machine(&s, (uint16_t)mi, type_id);
    CUE_ASSERT(ev->topic < CUE_INPUT_TOPICS_MAX);
    if (ev->topic == 0)
        u->last_offset = ev->offset;
    else
        u->more_offsets[ev->topic - 1] = ev->offset;
    if (ev->ts_ms > u->last_event_ms) u->last_event_ms = ev->ts_ms;
}

/* ---- timers ------------------------------------------------------------ */

static cue_hash128 timer_cause(const char *name, int64_t due_ms)
{
    uint8_t buf[CUE_NAME_BYTES_MAX + 16];
    size_t n = strlen(name);
    memcpy(buf, "timer:", 6);
    memcpy(buf + 6, name, n);
    for (int i = 0; i < 8; i++)
        buf[6 + n + i] = (uint8_t)((uint64_t)due_ms >> (8 * i));
    return cue_hash128_of(buf, 6 + n + 8);
}

/* Fires timer t of instance i; returns false if the instance was removed. */
static bool fire_one(step *s, size_t i, uint8_t t)
{
    cue_instance *in = &s->u->inst[i];
    const cue_machine *m = cue_machines_get(s->ms, in->machine);
    in->timers[t] = CUE_TIMER_NONE;
    s->st->timers_fired++;
    if (in->finished) return true;
    s->timer_name = m->timers[t].name;
    s->has_cause = false;
    const cue_state *st = &m->states[in->state];
    const cue_transition *ts = cue_machines_transitions(s->ms) + st->first_transition;
    for (uint16_t k = 0; k < st->n_transitions; k++)
        if (ts[k].on == CUE_ON_TIMER && ts[k].timer == t && guards_hold(s, m, in, &ts[k]))
            return take(s, m, i, &ts[k]);
    return true;
}

void cue_engine_fire(const cue_machines *ms, cue_user *u, int64_t due_ms, const cue_step_env *env,
                     cue_emit_fn emit, void *ctx, cue_step_stats *st)
{
    step s;
    step_init(&s, ms, u, NULL, due_ms, env, emit, ctx, st);
    for (size_t i = 0; i < u->n_instances;) {
        bool kept = true;
        for (uint8_t t = 0; t < CUE_MACHINE_TIMERS_MAX && kept; t++)
            if (u->inst[i].timers[t] == due_ms) kept = fire_one(&s, i, t);
        if (kept) i++;
    }
}

/* ---- state TTL --------------------------------------------------------- */

static bool timer_armed(const cue_instance *in)
{
    for (size_t t = 0; t < CUE_MACHINE_TIMERS_MAX; t++)
        if (in->timers[t] != CUE_TIMER_NONE) return true;
    return false;
}

/* When instance `in` will have been idle for its journey's state_ttl, or
 * CUE_TIMER_NONE when it does not expire (no TTL, or a timer armed). */
static int64_t instance_expiry(const cue_machines *ms, const cue_instance *in)
{
    const cue_machine *m = cue_machines_get(ms, in->machine);
    if (m->state_ttl_ms <= 0 || in->updated_ms == INT64_MIN || timer_armed(in))
        return CUE_TIMER_NONE;
    /* Both within years of the epoch: no overflow. */
    return in->updated_ms + m->state_ttl_ms;
}

static bool user_waits(const cue_user *u)
{
    return u->policy.n_deferred > 0 || cue_user_next_due(u) != CUE_TIMER_NONE;
}

int64_t cue_engine_expiry(const cue_machines *ms, const cue_user *u, int64_t ttl_ms)
{
    int64_t at = CUE_TIMER_NONE;
    for (size_t i = 0; i < u->n_instances; i++) {
        int64_t e = instance_expiry(ms, &u->inst[i]);
        if (e != CUE_TIMER_NONE && (at == CUE_TIMER_NONE || e < at)) at = e;
    }
    if (ttl_ms > 0 && u->last_event_ms != INT64_MIN && !user_waits(u)) {
        int64_t e = u->last_event_ms + ttl_ms;
        if (at == CUE_TIMER_NONE || e < at) at = e;
    }
    return at;
}

bool cue_engine_expire(const cue_machines *ms, cue_user *u, int64_t now_ms, int64_t ttl_ms,
                       cue_step_stats *st)
{
    size_t had = u->n_instances;
    for (size_t i = 0; i < u->n_instances;) {
        int64_t e = instance_expiry(ms, &u->inst[i]);
        if (e != CUE_TIMER_NONE && e <= now_ms) {
            cue_user_remove_instance(u, i);
            st->instances_expired++;
            continue;
        }
        i++;
    }
    if (user_waits(u)) return false;
    if (ttl_ms > 0 && u->last_event_ms != INT64_MIN && u->last_event_ms + ttl_ms <= now_ms)
        return true;
    return had > 0 && u->n_instances == 0;
}
