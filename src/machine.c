/* The journey compiler: JSON files in, index-only machines out. */
#include "cuepoint/machine.h"

#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cue_attr_names[CUE_ATTR_COUNT] = {"role", "timezone", "region", "locale"};
const char *const cue_meta_names[CUE_META_COUNT] = {"instance_key", "state",      "machine",
                                                    "user_id",      "event_type", "event_time"};
const char *const cue_op_names[CUE_OP_COUNT] = {"eq",  "ne", "lt",     "lte",   "gt",
                                                "gte", "in", "not_in", "exists"};

/* Keys the engine adds to every trigger's data; a machine may not choose them. */
static const char *const reserved_data[] = {"machine",    "version",  "instance_key",
                                            "from_state", "to_state", "cause"};

#define POOL_CHUNK 16384

typedef struct pool_chunk {
    struct pool_chunk *next;
    size_t used, cap;
    char data[];
} pool_chunk;

/* Growable tables that compiled machines index into. */
struct cue_machines {
    cue_machine *m; /* owned, n_m entries, then n_aside that `only` left out */
    size_t n_m, n_aside;
    cue_transition *trans; /* owned */
    size_t n_trans, cap_trans;
    cue_guard *guards; /* owned */
    size_t n_guards, cap_guards;
    cue_action *actions; /* owned */
    size_t n_actions, cap_actions;
    cue_emit_field *fields; /* owned */
    size_t n_fields, cap_fields;
    cue_json_ptr *ptrs; /* owned */
    size_t n_ptrs, cap_ptrs;
    const char **types; /* owned array; strings in the pool */
    size_t n_types, cap_types;
    int32_t *type_index; /* owned open-addressing table of type ids, -1 empty */
    size_t type_index_cap;
    cue_time_term *terms; /* owned */
    size_t n_terms, cap_terms;
    cue_mig_rule *rules; /* owned */
    size_t n_rules, cap_rules;
    cue_mig_timer *mtimers; /* owned */
    size_t n_mtimers, cap_mtimers;
    bool local_time;  /* some start_timer has `local_time` */
    pool_chunk *pool; /* owned chunk list; strings never move */
};

/* ---- values ------------------------------------------------------------ */

static bool is_number(const cue_value *v)
{
    return v->type == CUE_VAL_INT || v->type == CUE_VAL_DOUBLE;
}

bool cue_op_holds(cue_op op, int c)
{
    switch (op) {
    case CUE_OP_EQ: return c == 0;
    case CUE_OP_NE: return c != 0;
    case CUE_OP_LT: return c == -1;
    case CUE_OP_LTE: return c == -1 || c == 0;
    case CUE_OP_GT: return c == 1;
    default: return c == 1 || c == 0;
    }
}

int cue_value_cmp(const cue_value *a, const cue_value *b)
{
    if (is_number(a) && is_number(b)) {
        if (a->type == CUE_VAL_INT && b->type == CUE_VAL_INT) return (a->i > b->i) - (a->i < b->i);
        double x = a->type == CUE_VAL_INT ? (double)a->i : a->d;
        double y = b->type == CUE_VAL_INT ? (double)b->i : b->d;
        return (x > y) - (x < y);
    }
    if (a->type != b->type) return 2;
    switch (a->type) {
    case CUE_VAL_NULL: return 0;
    case CUE_VAL_BOOL: return (a->b > b->b) - (a->b < b->b);
    case CUE_VAL_STRING: {
        uint32_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->s, b->s, n);
        if (c != 0) return c < 0 ? -1 : 1;
        return (a->len > b->len) - (a->len < b->len);
    }
    default: return 2;
    }
}

/* ---- the compile context ----------------------------------------------- */

typedef struct names {
    const char *v[CUE_MACHINE_STATES_MAX];
    size_t n;
} names;

typedef struct ctx {
    cue_machines *ms;
    cue_machine *m;
    cue_diags *d;
    const char *file;
    /* Names that actions define; references elsewhere must match one. */
    names timers, counters, vars, triggers, states;
    /* Whether the part being read runs with an event: a timer transition
     * has none, and a migration rule (run when state is loaded) has no event
     * and no step time either. */
    uint8_t no_event; /* where_event */
} ctx;

typedef enum where_event { WITH_EVENT = 0, IN_TIMER, IN_MIGRATION } where_event;
static const char *const where_text[] = {"", "a timer transition", "a migration rule"};

/* ---- pool and tables --------------------------------------------------- */

static const char *pool_strndup(cue_machines *ms, const char *s, size_t n)
{
    pool_chunk *c = ms->pool;
    if (c == NULL || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > POOL_CHUNK ? n + 1 : POOL_CHUNK;
        pool_chunk *fresh = malloc(sizeof *fresh + cap);
        if (fresh == NULL) return NULL;
        fresh->next = ms->pool;
        fresh->used = 0;
        fresh->cap = cap;
        ms->pool = fresh;
        c = fresh;
    }
    char *p = c->data + c->used;
    memcpy(p, s, n);
    p[n] = '\0';
    c->used += n + 1;
    return p;
}

static const char *pool_strdup(cue_machines *ms, const char *s)
{
    return pool_strndup(ms, s, strlen(s));
}

/* Grows one table; returns the new element's index or -1 on OOM or limit. */
static long table_push(void **items, size_t *n, size_t *cap, size_t elem, size_t max)
{
    if (*n >= max) return -1;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        void *p = realloc(*items, ncap * elem);
        if (p == NULL) return -1;
        *items = p;
        *cap = ncap;
    }
    memset((char *)*items + *n * elem, 0, elem);
    return (long)(*n)++;
}

#define PUSH(ms, field, max)                                                                       \
    table_push((void **)&(ms)->field, &(ms)->n_##field, &(ms)->cap_##field, sizeof *(ms)->field,   \
               (max))

static int32_t type_lookup(const cue_machines *ms, const char *s, size_t n)
{
    if (ms->type_index_cap == 0) return -1;
    size_t mask = ms->type_index_cap - 1;
    for (size_t i = cue_hash64(s, n, 0) & mask;; i = (i + 1) & mask) {
        int32_t id = ms->type_index[i];
        if (id < 0) return -1;
        const char *t = ms->types[id];
        if (strlen(t) == n && memcmp(t, s, n) == 0) return id;
    }
}

static int type_rehash(cue_machines *ms, size_t cap)
{
    int32_t *idx = malloc(cap * sizeof *idx);
    if (idx == NULL) return CUE_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        idx[i] = -1;
    for (size_t id = 0; id < ms->n_types; id++) {
        const char *t = ms->types[id];
        size_t i = cue_hash64(t, strlen(t), 0) & (cap - 1);
        while (idx[i] >= 0)
            i = (i + 1) & (cap - 1);
        idx[i] = (int32_t)id;
    }
    free(ms->type_index);
    ms->type_index = idx;
    ms->type_index_cap = cap;
    return 0;
}

static int32_t type_intern(cue_machines *ms, const char *s)
{
    int32_t id = type_lookup(ms, s, strlen(s));
    if (id >= 0) return id;
    long i = PUSH(ms, types, CUE_EVENT_TYPES_MAX);
    if (i < 0) return -1;
    ms->types[i] = pool_strdup(ms, s);
    if (ms->types[i] == NULL) return -1;
    /* Rebuilding the index on every growth keeps it at most half full, so probes
     * stay short; it runs at start-up only. */
    size_t cap = ms->type_index_cap ? ms->type_index_cap : 64;
    while (ms->n_types * 2 > cap)
        cap *= 2;
    if (type_rehash(ms, cap) != 0) return -1;
    return (int32_t)i;
}

/* ---- small checks ------------------------------------------------------ */

static void err_at(ctx *c, const char *code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_at(ctx *c, const char *code, const char *path, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cue_diags_add(c->d, CUE_DIAG_ERROR, code, path, "%s", msg);
}

/* Paths are for people: one that would not fit is cut short, never overrun. */
static void path_join(char *out, size_t cap, const char *base, const char *sep, const char *tail,
                      const char *end)
{
    size_t n = 0;
    const char *parts[4] = {base, sep, tail, end};
    for (size_t k = 0; k < 4; k++)
        for (const char *q = parts[k]; *q && n + 1 < cap; q++)
            out[n++] = *q;
    out[n] = '\0';
}

static void subpath(char *out, size_t cap, const char *base, const char *key)
{
    path_join(out, cap, base, ".", key, "");
}

static void subindex(char *out, size_t cap, const char *base, size_t i)
{
    char num[24];
    size_t k = sizeof num - 1;
    num[k] = '\0';
    do {
        num[--k] = (char)('0' + i % 10);
        i /= 10;
    } while (i && k);
    path_join(out, cap, base, "[", num + k, "]");
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CUE_NAME_BYTES_MAX) return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
        if (!ok) return false;
    }
    return true;
}

/* Reports keys of `obj` that are not in `allowed`, with the nearest allowed one. */
static void check_keys(ctx *c, json_t *obj, const char *path, const char *const *allowed, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (ok) continue;
        char p[256];
        subpath(p, sizeof p, path, key);
        const char *near = cue_nearest_name(key, allowed, n);
        if (near)
            err_at(c, "unknown-key", p, "unknown key '%s' (did you mean '%s'?)", key, near);
        else
            err_at(c, "unknown-key", p, "unknown key '%s'", key);
    }
}

static const char *get_name(ctx *c, json_t *obj, const char *key, const char *path, bool required)
{
    json_t *v = json_object_get(obj, key);
    char p[256];
    subpath(p, sizeof p, path, key);
    if (v == NULL) {
        if (required) err_at(c, "missing-key", path, "missing required key '%s'", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        err_at(c, "wrong-type", p, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (!valid_name(s)) {
        err_at(c, "bad-name", p,
               "'%s' is not a valid name (letters, digits, '_', '-', '.'; starting with a "
               "letter or '_'; at most %d bytes)",
               s, CUE_NAME_BYTES_MAX);
        return NULL;
    }
    return s;
}

static int names_index(const names *ns, const char *s)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], s) == 0) return (int)i;
    return -1;
}

static int names_add(ctx *c, names *ns, const char *s, size_t max, const char *what,
                     const char *path)
{
    int i = names_index(ns, s);
    if (i >= 0) return i;
    if (ns->n >= max) {
        err_at(c, "limit", path, "more than %zu %s in one machine", max, what);
        return -1;
    }
    ns->v[ns->n] = pool_strdup(c->ms, s);
    return ns->v[ns->n] ? (int)ns->n++ : -1;
}

/* Resolves a reference to a name that some action must define. */
static int names_ref(ctx *c, const names *ns, const char *s, const char *what, const char *definer,
                     const char *path)
{
    int i = names_index(ns, s);
    if (i >= 0) return i;
    const char *near = cue_nearest_name(s, ns->v, ns->n);
    if (near)
        err_at(c, "unknown-name", path, "unknown %s '%s' (did you mean '%s'?)", what, s, near);
    else if (ns->n)
        err_at(c, "unknown-name", path, "unknown %s '%s': no action %s it", what, s, definer);
    else
        err_at(c, "unknown-name", path, "unknown %s '%s': this machine %s no %s", what, s, definer,
               what);
    return -1;
}

/* ---- operands ---------------------------------------------------------- */

static const char *const source_keys[] = {"event", "attr", "counter", "var", "meta", "value"};

static int literal_from_json(ctx *c, json_t *v, cue_value *out, const char *path)
{
    memset(out, 0, sizeof *out);
    switch (json_typeof(v)) {
    case JSON_NULL: out->type = CUE_VAL_NULL; return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = CUE_VAL_BOOL;
        out->b = json_is_true(v);
        return 0;
    case JSON_INTEGER:
        out->type = CUE_VAL_INT;
        out->i = json_integer_value(v);
        return 0;
    case JSON_REAL:
        out->type = CUE_VAL_DOUBLE;
        out->d = json_real_value(v);
        return 0;
    case JSON_STRING:
        out->type = CUE_VAL_STRING;
        out->len = (uint32_t)json_string_length(v);
        out->s = pool_strndup(c->ms, json_string_value(v), out->len);
        return out->s ? 0 : CUE_ENOMEM;
    default: {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) return CUE_ENOMEM;
        out->type = CUE_VAL_JSON;
        out->len = (uint32_t)strlen(text);
        out->s = pool_strndup(c->ms, text, out->len);
        free(text);
        (void)path;
        return out->s ? 0 : CUE_ENOMEM;
    }
    }
}

static int ptr_intern(ctx *c, const char *text, const char *path)
{
    for (size_t i = 0; i < c->ms->n_ptrs; i++)
        if (strcmp(c->ms->ptrs[i].source, text) == 0) return (int)i;
    cue_json_ptr p;
    cue_err e;
    if (cue_json_ptr_compile(&p, text, &e) != 0) {
        err_at(c, "bad-pointer", path, "'%s' is not a valid JSON Pointer: %s", text, e.msg);
        return -1;
    }
    long i = PUSH(c->ms, ptrs, UINT16_MAX);
    if (i < 0) return -1;
    c->ms->ptrs[i] = p;
    return (int)i;
}

/* A source object: {"event": "/ptr"}, {"attr": "role"}, {"counter": "n"},
 * {"var": "v"}, {"meta": "instance_key"}, {"value": <any JSON>}. */
static int source_from_key(ctx *c, const char *key, json_t *v, cue_operand *out, const char *path)
{
    char p[256];
    subpath(p, sizeof p, path, key);
    if (strcmp(key, "value") == 0) {
        out->kind = CUE_SRC_LITERAL;
        return literal_from_json(c, v, &out->lit, p);
    }
    if (!json_is_string(v)) {
        err_at(c, "wrong-type", p, "must be a string");
        return -1;
    }
    const char *s = json_string_value(v);
    int i = -1;
    if (strcmp(key, "event") == 0) {
        out->kind = CUE_SRC_EVENT;
        if (c->no_event != WITH_EVENT) {
            /* It would read as missing every time: always a mistake. */
            err_at(c, "no-event", p,
                   "%s has no event: {\"event\": \"%s\"} would always be missing (keep the "
                   "value in a variable with {\"set\": ..., \"from\": {\"event\": \"%s\"}} "
                   "where the event is, and read {\"var\": ...} here)",
                   where_text[c->no_event], s, s);
            return -1;
        }
        i = ptr_intern(c, s, p);
        out->ptr = (uint16_t)(i < 0 ? 0 : i);
        return i < 0 ? -1 : 0;
    }
    if (strcmp(key, "attr") == 0 || strcmp(key, "meta") == 0) {
        bool attr = key[0] == 'a';
        const char *const *table = attr ? cue_attr_names : cue_meta_names;
        size_t n = attr ? CUE_ATTR_COUNT : CUE_META_COUNT;
        out->kind = attr ? CUE_SRC_ATTR : CUE_SRC_META;
        for (size_t k = 0; k < n; k++)
            if (strcmp(table[k], s) == 0) i = (int)k;
        /* A timer's step has a time (its due time) but no event type; a
         * migration has neither. */
        if (i >= 0 && !attr &&
            ((c->no_event != WITH_EVENT && i == CUE_META_EVENT_TYPE) ||
             (c->no_event == IN_MIGRATION && i == CUE_META_EVENT_TIME))) {
            err_at(c, "no-event", p, "%s has no event: {\"meta\": \"%s\"} would always be missing",
                   where_text[c->no_event], s);
            return -1;
        }
        if (i < 0) {
            const char *near = cue_nearest_name(s, table, n);
            err_at(c, "unknown-name", p, "unknown %s '%s'%s%s%s", key, s,
                   near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        }
    } else if (strcmp(key, "counter") == 0) {
        out->kind = CUE_SRC_COUNTER;
        i = names_ref(c, &c->counters, s, "counter", "increments or resets", p);
    } else {
        out->kind = CUE_SRC_VAR;
        i = names_ref(c, &c->vars, s, "variable", "sets", p);
    }
    out->index = (uint8_t)(i < 0 ? 0 : i);
    return i < 0 ? -1 : 0;
}

/* A plain JSON scalar is a literal; an object must be exactly one source. */
static int operand_from_json(ctx *c, json_t *v, cue_operand *out, const char *path)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(v)) {
        if (json_is_array(v)) {
            err_at(c, "wrong-type", path,
                   "an array here must be written {\"value\": [...]} to be a literal");
            return -1;
        }
        out->kind = CUE_SRC_LITERAL;
        return literal_from_json(c, v, &out->lit, path);
    }
    if (json_object_size(v) != 1) {
        err_at(c, "bad-source", path,
               "a source object has exactly one of event, attr, counter, var, meta, value");
        return -1;
    }
    const char *key = json_object_iter_key(json_object_iter(v));
    check_keys(c, v, path, source_keys, sizeof source_keys / sizeof *source_keys);
    for (size_t i = 0; i < sizeof source_keys / sizeof *source_keys; i++)
        if (strcmp(key, source_keys[i]) == 0)
            return source_from_key(c, key, json_object_get(v, key), out, path);
    return -1;
}

/* ---- guards ------------------------------------------------------------ */

static int guard_ops(ctx *c, json_t *g, cue_guard *out, const char *path)
{
    int found = 0;
    for (int op = 0; op < CUE_OP_COUNT; op++) {
        json_t *rhs = json_object_get(g, cue_op_names[op]);
        if (rhs == NULL) continue;
        found++;
        out->op = (uint8_t)op;
        char p[256];
        subpath(p, sizeof p, path, cue_op_names[op]);
        if (op == CUE_OP_IN || op == CUE_OP_NOT_IN) {
            if (!json_is_array(rhs) || json_array_size(rhs) == 0 ||
                json_array_size(rhs) > CUE_GUARD_SET_MAX) {
                err_at(c, "wrong-type", p, "must be an array of 1 to %d values", CUE_GUARD_SET_MAX);
                continue;
            }
            size_t i;
            json_t *item;
            json_array_foreach(rhs, i, item)
            {
                char q[256];
                subindex(q, sizeof q, p, i);
                operand_from_json(c, item, &out->set[i], q);
            }
            out->n_set = (uint8_t)json_array_size(rhs);
        } else if (op == CUE_OP_EXISTS) {
            if (!json_is_boolean(rhs)) err_at(c, "wrong-type", p, "must be true or false");
            out->rhs.kind = CUE_SRC_LITERAL;
            out->rhs.lit.type = CUE_VAL_BOOL;
            out->rhs.lit.b = json_is_true(rhs);
        } else {
            operand_from_json(c, rhs, &out->rhs, p);
        }
    }
    if (found != 1)
        err_at(c, "bad-guard", path,
               "a guard has exactly one operator (eq, ne, lt, lte, gt, gte, in, not_in, exists)");
    return found == 1 ? 0 : -1;
}

static int guard_from_json(ctx *c, json_t *g, cue_guard *out, const char *path)
{
    static const char *const keys[] = {"event", "attr", "counter", "var",   "meta",
                                       "eq",    "ne",   "lt",      "lte",   "gt",
                                       "gte",   "in",   "not_in",  "exists"};
    if (!json_is_object(g)) {
        err_at(c, "wrong-type", path,
               "a guard must be an object such as {\"event\": "
               "\"/props/plan\", \"eq\": \"pro\"}");
        return -1;
    }
    check_keys(c, g, path, keys, sizeof keys / sizeof *keys);
    int sources = 0;
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_object_get(g, source_keys[i]);
        if (v == NULL) continue;
        sources++;
        source_from_key(c, source_keys[i], v, &out->lhs, path);
    }
    if (sources != 1) {
        err_at(c, "bad-guard", path,
               "a guard has exactly one subject (event, attr, counter, var or meta)");
        return -1;
    }
    return guard_ops(c, g, out, path);
}

static int guards_from_json(ctx *c, json_t *when, uint16_t *first, uint16_t *n, const char *path)
{
    *first = (uint16_t)c->ms->n_guards;
    *n = 0;
    if (when == NULL) return 0;
    if (!json_is_array(when) || json_array_size(when) > CUE_TRANSITION_GUARDS_MAX) {
        err_at(c, "wrong-type", path, "must be an array of at most %d guards",
               CUE_TRANSITION_GUARDS_MAX);
        return -1;
    }
    size_t i;
    json_t *g;
    json_array_foreach(when, i, g)
    {
        char p[256];
        subindex(p, sizeof p, path, i);
        long k = PUSH(c->ms, guards, UINT16_MAX);
        if (k < 0) return CUE_ENOMEM;
        guard_from_json(c, g, &c->ms->guards[k], p);
        (*n)++;
    }
    return 0;
}

/* ---- actions ----------------------------------------------------------- */

static const char *const action_kinds[] = {"emit",  "set",         "unset",       "increment",
                                           "reset", "start_timer", "cancel_timer"};
#define N_ACTION_KINDS (sizeof action_kinds / sizeof *action_kinds)

/* The one kind key an action object has, or -1 (reported). */
static int action_kind(ctx *c, json_t *a, const char *path, bool report)
{
    int kind = -1, n = 0;
    for (size_t i = 0; i < N_ACTION_KINDS; i++)
        if (json_object_get(a, action_kinds[i])) {
            kind = (int)i;
            n++;
        }
    if (n != 1 && report)
        err_at(c, "bad-action", path,
               "an action has exactly one of emit, set, unset, increment, reset, start_timer, "
               "cancel_timer");
    return n == 1 ? kind : -1;
}

static int emit_data(ctx *c, json_t *data, cue_action *out, const char *path)
{
    out->first_field = (uint16_t)c->ms->n_fields;
    if (data == NULL) return 0;
    if (!json_is_object(data) || json_object_size(data) > CUE_EMIT_FIELDS_MAX) {
        err_at(c, "wrong-type", path, "must be an object of at most %d fields",
               CUE_EMIT_FIELDS_MAX);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(data, key, v)
    {
        char p[256];
        subpath(p, sizeof p, path, key);
        for (size_t r = 0; r < sizeof reserved_data / sizeof *reserved_data; r++)
            if (strcmp(key, reserved_data[r]) == 0)
                err_at(c, "reserved-name", p,
                       "'%s' is set by cuepoint on every trigger; choose another name", key);
        long k = PUSH(c->ms, fields, UINT16_MAX);
        if (k < 0) return CUE_ENOMEM;
        c->ms->fields[k].name = pool_strdup(c->ms, key);
        operand_from_json(c, v, &c->ms->fields[k].src, p);
        out->n_fields++;
    }
    return 0;
}

/* A century bounds timer arithmetic well away from overflow. */
#define DURATION_MAX_MS (100LL * 366 * 86400000)

/* A duration: "72h", "1h30m", milliseconds; `sign` lets a leading '-' through
 * (a migration's shift). */
static int duration_of(ctx *c, json_t *v, const char *path, bool sign, int64_t *out)
{
    int64_t ms = -1;
    bool neg = false;
    if (json_is_integer(v)) {
        ms = json_integer_value(v);
        if (sign && ms < 0 && ms != INT64_MIN) {
            neg = true;
            ms = -ms;
        }
    } else if (json_is_string(v)) {
        const char *t = json_string_value(v);
        size_t n = json_string_length(v);
        if (sign && n && (t[0] == '-' || t[0] == '+')) {
            neg = t[0] == '-';
            t++;
            n--;
        }
        if (cue_duration_parse(t, n, &ms) != 0) ms = -1;
    }
    if (ms <= 0 || ms > DURATION_MAX_MS) {
        err_at(c, "bad-duration", path,
               "must be a %sduration of at most 100 years such as \"%s72h\", \"14d\", \"90m\" or "
               "milliseconds",
               sign ? "non-zero, signed " : "positive ", sign ? "-" : "");
        return -1;
    }
    *out = neg ? -ms : ms;
    return 0;
}

/* 2^53 - 1: the largest integer a double (and so any JSON reader) holds exactly. */
#define INCREMENT_MAX 9007199254740991LL

/* The offset of a term: `after` (later) or `before` (earlier), or 0. */
static int term_offset(ctx *c, json_t *obj, const char *path, int64_t *out)
{
    json_t *after = json_object_get(obj, "after"), *before = json_object_get(obj, "before");
    *out = 0;
    if (after && before) {
        err_at(c, "bad-timer", path, "'after' and 'before' together: a time has one offset");
        return -1;
    }
    if (after == NULL && before == NULL) return 0;
    char p[256];
    subpath(p, sizeof p, path, after ? "after" : "before");
    int64_t ms;
    if (duration_of(c, after ? after : before, p, false, &ms) != 0) return -1;
    *out = after ? ms : -ms;
    return 0;
}

/* What `at` may read: a time in the event or a variable, the step's time,
 * or a literal RFC 3339 time. The rest can never hold a time. */
static int term_source(ctx *c, json_t *at, cue_operand *src, const char *path)
{
    if (operand_from_json(c, at, src, path) != 0) return -1;
    int64_t ms;
    switch (src->kind) {
    case CUE_SRC_EVENT:
    case CUE_SRC_VAR: return 0;
    case CUE_SRC_META:
        if (src->index == CUE_META_EVENT_TIME) return 0;
        break;
    case CUE_SRC_LITERAL:
        if (src->lit.type == CUE_VAL_STRING &&
            cue_time_parse_rfc3339(src->lit.s, src->lit.len, &ms) == 0 && ms >= 0)
            return 0;
        err_at(c, "bad-timer", path,
               "a literal time is RFC 3339 text with an offset, such as "
               "\"2026-04-01T09:00:00Z\"");
        return -1;
    default: break;
    }
    err_at(c, "bad-timer", path,
           "'at' reads a time from the event ({\"event\": \"/ptr\"}), a variable, "
           "{\"meta\": \"event_time\"} or a literal RFC 3339 time; this source never holds one");
    return -1;
}

/* One term: {"at": <time>, "after"|"before": d}, {"after": d} (from the
 * step's time), or, inside earliest/latest, a bare <time>. */
static int time_term(ctx *c, json_t *v, bool bare_ok, const char *path)
{
    static const char *const keys[] = {"at", "after", "before"};
    long k = PUSH(c->ms, terms, UINT16_MAX);
    if (k < 0) return CUE_ENOMEM;
    cue_time_term *t = &c->ms->terms[k];
    bool term_obj = json_is_object(v) && (json_object_get(v, "at") || json_object_get(v, "after") ||
                                          json_object_get(v, "before"));
    if (!term_obj) {
        if (!bare_ok) return -1;
        t->base = CUE_TIME_SOURCE;
        return term_source(c, v, &t->src, path);
    }
    if (bare_ok) check_keys(c, v, path, keys, 3);
    if (term_offset(c, v, path, &t->offset_ms) != 0) return -1;
    json_t *at = json_object_get(v, "at");
    if (at == NULL) {
        if (json_object_get(v, "before")) {
            err_at(c, "bad-timer", path, "'before' needs 'at': before which time?");
            return -1;
        }
        t->base = CUE_TIME_NOW;
        return 0;
    }
    char p[256];
    subpath(p, sizeof p, path, "at");
    t->base = CUE_TIME_SOURCE;
    return term_source(c, at, &t->src, p);
}

/* earliest/latest: a list of terms, of which the first or last in time counts. */
static int time_list(ctx *c, json_t *list, const char *path)
{
    if (!json_is_array(list) || json_array_size(list) < 2 ||
        json_array_size(list) > CUE_TIMER_TERMS_MAX) {
        err_at(c, "bad-timer", path, "must be a list of 2 to %d times", CUE_TIMER_TERMS_MAX);
        return -1;
    }
    size_t i;
    json_t *v;
    int rc = 0;
    json_array_foreach(list, i, v)
    {
        char p[256];
        subindex(p, sizeof p, path, i);
        if (time_term(c, v, true, p) != 0) rc = -1;
    }
    return rc;
}

/* "09:00": minute of the day. */
static int local_time_of(ctx *c, json_t *v, const char *path, int16_t *out)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    bool ok = strlen(s) == 5 && s[2] == ':';
    for (int i = 0; ok && i < 5; i++)
        ok = i == 2 || (s[i] >= '0' && s[i] <= '9');
    int h = ok ? (s[0] - '0') * 10 + (s[1] - '0') : 0,
        m = ok ? (s[3] - '0') * 10 + (s[4] - '0') : 0;
    if (!ok || h > 23 || m > 59) {
        err_at(c, "bad-timer", path, "must be a clock time \"HH:MM\" from \"00:00\" to \"23:59\"");
        return -1;
    }
    *out = (int16_t)(h * 60 + m);
    c->ms->local_time = true;
    return 0;
}

/* start_timer's time: one term, or earliest/latest of several; then
 * `local_time` and `if_past`. */
static int timer_when(ctx *c, json_t *a, cue_action *out, const char *path)
{
    json_t *earliest = json_object_get(a, "earliest"), *latest = json_object_get(a, "latest");
    bool list = earliest || latest;
    bool single =
        json_object_get(a, "at") || json_object_get(a, "after") || json_object_get(a, "before");
    out->first_term = (uint16_t)c->ms->n_terms;
    out->local_min = CUE_LOCAL_NONE;
    int rc = 0;
    if ((earliest && latest) || list == single) {
        err_at(c, "bad-timer", path,
               list ? "'earliest' and 'latest' list the times, with 'at', 'after' and 'before' "
                      "inside them: use one list and nothing beside it"
                    : "start_timer needs a time: 'after' (from now), 'at' (with 'after' or "
                      "'before' to offset it), or 'earliest'/'latest' of several");
        return -1;
    }
    char p[256];
    if (list) {
        subpath(p, sizeof p, path, earliest ? "earliest" : "latest");
        out->pick = earliest ? CUE_TIME_EARLIEST : CUE_TIME_LATEST;
        rc = time_list(c, earliest ? earliest : latest, p);
    } else {
        out->pick = CUE_TIME_ONE;
        rc = time_term(c, a, false, path);
    }
    out->n_terms = (uint8_t)(c->ms->n_terms - out->first_term);
    json_t *local = json_object_get(a, "local_time"), *past = json_object_get(a, "if_past");
    subpath(p, sizeof p, path, "local_time");
    if (local && local_time_of(c, local, p, &out->local_min) != 0) rc = -1;
    subpath(p, sizeof p, path, "if_past");
    if (past && !(json_is_string(past) && (strcmp(json_string_value(past), "fire") == 0 ||
                                           strcmp(json_string_value(past), "skip") == 0))) {
        err_at(c, "bad-value", p, "must be \"fire\" (the default: at once) or \"skip\"");
        rc = -1;
    }
    out->skip_past = past && json_is_string(past) && strcmp(json_string_value(past), "skip") == 0;
    return rc;
}

#define ACTION_KEYS_MAX 8
static const char *const action_keys[N_ACTION_KINDS][ACTION_KEYS_MAX] = {
    {"emit", "data", "once"},
    {"set", "from"},
    {"unset"},
    {"increment", "by"},
    {"reset"},
    {"start_timer", "after", "before", "at", "earliest", "latest", "local_time", "if_past"},
    {"cancel_timer"}};

static int action_target(ctx *c, int kind, const char *name, const char *p)
{
    switch (kind) {
    case CUE_ACT_EMIT: return names_index(&c->triggers, name);
    case CUE_ACT_SET: return names_index(&c->vars, name);
    case CUE_ACT_UNSET: return names_ref(c, &c->vars, name, "variable", "sets", p);
    case CUE_ACT_INCREMENT: return names_index(&c->counters, name);
    case CUE_ACT_RESET: return names_ref(c, &c->counters, name, "counter", "increments", p);
    case CUE_ACT_START_TIMER: return names_index(&c->timers, name);
    default: return names_ref(c, &c->timers, name, "timer", "starts", p);
    }
}

static int action_from_json(ctx *c, json_t *a, cue_action *out, const char *path)
{
    if (!json_is_object(a)) {
        err_at(c, "wrong-type", path, "an action must be an object such as {\"emit\": \"name\"}");
        return -1;
    }
    int kind = action_kind(c, a, path, true);
    if (kind < 0) return -1;
    const char *const *keys = action_keys[kind];
    size_t nkeys = 0;
    while (nkeys < ACTION_KEYS_MAX && keys[nkeys])
        nkeys++;
    check_keys(c, a, path, keys, nkeys);
    out->kind = (uint8_t)kind;
    const char *name = get_name(c, a, action_kinds[kind], path, true);
    if (name == NULL) return -1;
    char p[256];
    subpath(p, sizeof p, path, action_kinds[kind]);
    int target = action_target(c, kind, name, p);
    if (target < 0) return -1;
    out->target = (uint8_t)target;
    switch (kind) {
    case CUE_ACT_EMIT: {
        json_t *once = json_object_get(a, "once");
        subpath(p, sizeof p, path, "once");
        if (once && !json_is_boolean(once)) err_at(c, "wrong-type", p, "must be true or false");
        out->once = json_is_true(once);
        subpath(p, sizeof p, path, "data");
        return emit_data(c, json_object_get(a, "data"), out, p);
    }
    case CUE_ACT_SET: {
        json_t *from = json_object_get(a, "from");
        if (from == NULL) {
            err_at(c, "missing-key", path, "missing required key 'from'");
            return -1;
        }
        subpath(p, sizeof p, path, "from");
        return operand_from_json(c, from, &out->src, p);
    }
    case CUE_ACT_INCREMENT: {
        json_t *by = json_object_get(a, "by");
        subpath(p, sizeof p, path, "by");
        out->amount = by ? json_integer_value(by) : 1;
        if (by && !json_is_integer(by))
            err_at(c, "wrong-type", p, "must be an integer");
        else if (out->amount > INCREMENT_MAX || out->amount < -INCREMENT_MAX)
            err_at(c, "bad-value", p, "must be from -%lld to %lld (counters stop at 64-bit bounds)",
                   (long long)INCREMENT_MAX, (long long)INCREMENT_MAX);
        return 0;
    }
    case CUE_ACT_START_TIMER: return timer_when(c, a, out, path);
    default: return 0;
    }
}

static int actions_from_json(ctx *c, json_t *todo, cue_transition *t, const char *path)
{
    t->first_action = (uint16_t)c->ms->n_actions;
    if (todo == NULL) return 0;
    if (!json_is_array(todo) || json_array_size(todo) > CUE_TRANSITION_ACTIONS_MAX) {
        err_at(c, "wrong-type", path, "must be an array of at most %d actions",
               CUE_TRANSITION_ACTIONS_MAX);
        return -1;
    }
    size_t i;
    json_t *a;
    json_array_foreach(todo, i, a)
    {
        char p[256];
        subindex(p, sizeof p, path, i);
        long k = PUSH(c->ms, actions, UINT16_MAX);
        if (k < 0) return CUE_ENOMEM;
        if (action_from_json(c, a, &c->ms->actions[k], p) != 0) {
            c->ms->n_actions--; /* keep the table free of half-compiled actions */
            continue;
        }
        t->n_actions++;
    }
    return 0;
}

/* Pass 1: the names that actions define (emit, set, increment, start_timer), so
 * that references anywhere in the file can be resolved in pass 2. */
static void collect_defs(ctx *c, json_t *todo, const char *path)
{
    static const struct {
        const char *key;
        size_t off;
        size_t max;
        const char *what;
    } defs[] = {
        {"emit", offsetof(ctx, triggers), CUE_MACHINE_TRIGGERS_MAX, "trigger names"},
        {"set", offsetof(ctx, vars), CUE_MACHINE_VARS_MAX, "variables"},
        {"increment", offsetof(ctx, counters), CUE_MACHINE_COUNTERS_MAX, "counters"},
        {"start_timer", offsetof(ctx, timers), CUE_MACHINE_TIMERS_MAX, "timers"},
    };
    if (!json_is_array(todo)) return;
    size_t i;
    json_t *a;
    json_array_foreach(todo, i, a)
    {
        char p[256];
        subindex(p, sizeof p, path, i);
        for (size_t k = 0; k < sizeof defs / sizeof *defs; k++) {
            json_t *v = json_object_get(a, defs[k].key);
            if (!json_is_string(v) || !valid_name(json_string_value(v))) continue;
            names_add(c, (names *)((char *)c + defs[k].off), json_string_value(v), defs[k].max,
                      defs[k].what, p);
        }
    }
}

/* ---- transitions and states -------------------------------------------- */

static int trigger_from_json(ctx *c, json_t *t, cue_transition *out, const char *path,
                             bool allow_timer)
{
    json_t *ev = json_object_get(t, "event"), *tm = json_object_get(t, "timer");
    if ((ev == NULL) == (tm == NULL) || (tm && !allow_timer)) {
        err_at(c, "bad-transition", path,
               allow_timer ? "a transition has exactly one of 'event' or 'timer'"
                           : "start needs 'event' (an event type, or \"*\" for any)");
        return -1;
    }
    char p[256];
    if (tm) {
        const char *name = get_name(c, t, "timer", path, true);
        if (name == NULL) return -1;
        subpath(p, sizeof p, path, "timer");
        int i = names_ref(c, &c->timers, name, "timer", "starts", p);
        if (i < 0) return -1;
        out->on = CUE_ON_TIMER;
        out->timer = (uint8_t)i;
        return 0;
    }
    subpath(p, sizeof p, path, "event");
    if (json_is_string(ev) && strcmp(json_string_value(ev), "*") == 0) {
        out->on = CUE_ON_ANY;
        return 0;
    }
    const char *type = get_name(c, t, "event", path, true);
    if (type == NULL) return -1;
    out->on = CUE_ON_EVENT;
    out->type_id = type_intern(c->ms, type);
    return out->type_id < 0 ? CUE_ENOMEM : 0;
}

/* Whether a transition starts a timer at a time it reads from the event or a
 * variable: the engine checks those before it applies an event. */
static bool reads_time(const cue_machines *ms, const cue_transition *t)
{
    for (uint16_t i = 0; i < t->n_actions; i++) {
        const cue_action *a = &ms->actions[t->first_action + i];
        if (a->kind != CUE_ACT_START_TIMER) continue;
        for (uint8_t k = 0; k < a->n_terms; k++) {
            const cue_time_term *tt = &ms->terms[a->first_term + k];
            if (tt->base == CUE_TIME_SOURCE &&
                (tt->src.kind == CUE_SRC_EVENT || tt->src.kind == CUE_SRC_VAR))
                return true;
        }
    }
    return false;
}

static int transition_from_json(ctx *c, json_t *t, cue_transition *out, const char *path,
                                bool is_start)
{
    static const char *const keys[] = {"event", "timer", "when", "do", "goto"};
    if (!json_is_object(t)) {
        err_at(c, "wrong-type", path, "must be an object");
        return -1;
    }
    check_keys(c, t, path, keys, is_start ? 4 : 5);
    if (is_start && json_object_get(t, "timer"))
        err_at(c, "bad-transition", path, "start is an event, not a timer");
    out->go = -1;
    char p[256];
    trigger_from_json(c, t, out, path, !is_start);
    bool timer = !is_start && json_object_get(t, "timer") && !json_object_get(t, "event");
    c->no_event = timer ? IN_TIMER : WITH_EVENT;
    subpath(p, sizeof p, path, "when");
    guards_from_json(c, json_object_get(t, "when"), &out->first_guard, &out->n_guards, p);
    subpath(p, sizeof p, path, "do");
    actions_from_json(c, json_object_get(t, "do"), out, p);
    c->no_event = WITH_EVENT;
    out->reads_time = reads_time(c->ms, out);
    if (is_start) return 0;
    const char *go = get_name(c, t, "goto", path, false);
    if (go) {
        subpath(p, sizeof p, path, "goto");
        int s = names_ref(c, &c->states, go, "state", "declares", p);
        out->go = (int16_t)s;
    }
    return 0;
}

static int state_from_json(ctx *c, json_t *st, cue_state *out, const char *path)
{
    static const char *const keys[] = {"on", "description"};
    out->first_transition = (uint16_t)c->ms->n_trans;
    if (!json_is_object(st)) {
        err_at(c, "wrong-type", path, "a state must be an object (it may be empty: {})");
        return -1;
    }
    check_keys(c, st, path, keys, 2);
    json_t *on = json_object_get(st, "on");
    if (on == NULL) return 0;
    char p[256];
    subpath(p, sizeof p, path, "on");
    if (!json_is_array(on)) {
        err_at(c, "wrong-type", p, "must be an array of transitions");
        return -1;
    }
    size_t i;
    json_t *t;
    json_array_foreach(on, i, t)
    {
        char q[256];
        subindex(q, sizeof q, p, i);
        long k = PUSH(c->ms, trans, CUE_MACHINE_TRANSITIONS_MAX * CUE_MACHINES_MAX);
        if (k < 0) {
            err_at(c, "limit", q, "too many transitions");
            return -1;
        }
        transition_from_json(c, t, &c->ms->trans[k], q, false);
        out->n_transitions++;
    }
    return 0;
}

/* ---- the machine ------------------------------------------------------- */

static void collect_all_defs(ctx *c, json_t *root)
{
    json_t *start = json_object_get(root, "start");
    if (json_is_object(start)) collect_defs(c, json_object_get(start, "do"), "$.start.do");
    json_t *states = json_object_get(root, "states");
    const char *name;
    json_t *st;
    json_object_foreach(states, name, st)
    {
        json_t *on = json_object_get(st, "on");
        if (!json_is_array(on)) continue;
        size_t i;
        json_t *t;
        json_array_foreach(on, i, t)
        {
            char p[256];
            char q[256];
            subpath(q, sizeof q, "$.states", name);
            subpath(p, sizeof p, q, "on");
            subindex(q, sizeof q, p, i);
            subpath(p, sizeof p, q, "do");
            collect_defs(c, json_object_get(t, "do"), p);
        }
    }
}

static void copy_names(ctx *c, const names *ns, cue_name *out, uint16_t *n)
{
    for (size_t i = 0; i < ns->n; i++) {
        out[i].name = ns->v[i];
        out[i].hash = cue_hash32(ns->v[i], strlen(ns->v[i]));
    }
    *n = (uint16_t)ns->n;
}

static void machine_header(ctx *c, json_t *root)
{
    cue_machine *m = c->m;
    const char *name = get_name(c, root, "name", "$", true);
    m->name = pool_strdup(c->ms, name ? name : "?");
    m->hash = cue_hash32(m->name, strlen(m->name));
    json_t *v = json_object_get(root, "version");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > UINT32_MAX)
        err_at(c, v ? "wrong-type" : "missing-key", v ? "$.version" : "$",
               v ? "must be a positive integer" : "missing required key 'version'");
    else
        m->version = (uint32_t)json_integer_value(v);
    v = json_object_get(root, "repeat");
    if (v && !json_is_boolean(v)) err_at(c, "wrong-type", "$.repeat", "must be true or false");
    m->repeat = json_is_true(v);
    v = json_object_get(root, "on_version_change");
    static const char *const rules[] = {"keep", "restart", "finish"};
    m->on_version_change = CUE_MIGRATE_KEEP;
    if (v) {
        int r = -1;
        for (int i = 0; i < 3; i++)
            if (json_is_string(v) && strcmp(json_string_value(v), rules[i]) == 0) r = i;
        if (r < 0)
            err_at(c, "bad-value", "$.on_version_change", "must be keep, restart or finish");
        else
            m->on_version_change = (uint8_t)r;
    }
    v = json_object_get(root, "state_ttl");
    m->state_ttl_ms = 0;
    if (v) duration_of(c, v, "$.state_ttl", false, &m->state_ttl_ms);
}

static void machine_key(ctx *c, json_t *root)
{
    cue_machine *m = c->m;
    json_t *key = json_object_get(root, "instance_key");
    json_t *max = json_object_get(root, "max_instances");
    m->max_instances = 1;
    if (key) {
        if (!json_is_string(key)) {
            err_at(c, "wrong-type", "$.instance_key", "must be a JSON Pointer into the event");
        } else {
            int p = ptr_intern(c, json_string_value(key), "$.instance_key");
            m->keyed = p >= 0;
            m->key_ptr = (uint16_t)(p < 0 ? 0 : p);
        }
        m->max_instances = 16;
    }
    if (max) {
        if (!key)
            err_at(c, "bad-value", "$.max_instances", "max_instances needs an instance_key");
        else if (!json_is_integer(max) || json_integer_value(max) < 1 ||
                 json_integer_value(max) > CUE_USER_INSTANCES_MAX)
            err_at(c, "bad-value", "$.max_instances", "must be an integer from 1 to %d",
                   CUE_USER_INSTANCES_MAX);
        else
            m->max_instances = (uint16_t)json_integer_value(max);
    }
}

static void machine_states(ctx *c, json_t *root)
{
    cue_machine *m = c->m;
    json_t *states = json_object_get(root, "states");
    if (!json_is_object(states) || json_object_size(states) == 0) {
        err_at(c, states ? "wrong-type" : "missing-key", states ? "$.states" : "$",
               "states must be a non-empty object of state name to state");
        return;
    }
    const char *name;
    json_t *st;
    json_object_foreach(states, name, st)
    {
        char p[256];
        subpath(p, sizeof p, "$.states", name);
        if (!valid_name(name)) err_at(c, "bad-name", p, "'%s' is not a valid state name", name);
        names_add(c, &c->states, name, CUE_MACHINE_STATES_MAX, "states", p);
    }
    const char *initial = get_name(c, root, "initial", "$", true);
    if (initial) {
        int s = names_ref(c, &c->states, initial, "state", "declares", "$.initial");
        m->initial = (uint16_t)(s < 0 ? 0 : s);
    }
    m->n_states = (uint16_t)c->states.n;
    for (size_t i = 0; i < c->states.n; i++) {
        m->states[i].name = c->states.v[i];
        m->states[i].hash = cue_hash32(c->states.v[i], strlen(c->states.v[i]));
    }
    size_t i = 0;
    json_object_foreach(states, name, st)
    {
        char p[256];
        subpath(p, sizeof p, "$.states", name);
        if (i < CUE_MACHINE_STATES_MAX) state_from_json(c, st, &m->states[i], p);
        i++;
    }
}

static void machine_finals(ctx *c, json_t *root)
{
    json_t *fin = json_object_get(root, "final");
    if (fin == NULL) return;
    if (!json_is_array(fin)) {
        err_at(c, "wrong-type", "$.final", "must be an array of state names");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(fin, i, v)
    {
        char p[256];
        subindex(p, sizeof p, "$.final", i);
        if (!json_is_string(v)) {
            err_at(c, "wrong-type", p, "must be a state name");
            continue;
        }
        int s = names_ref(c, &c->states, json_string_value(v), "state", "declares", p);
        if (s >= 0) c->m->states[s].final = true;
    }
}

/* Records which events can take a transition that reads a timer's time: the
 * engine checks those events only (cue_engine_check runs on every event). */
static void note_time_type(cue_machine *m, const cue_transition *t)
{
    if (!t->reads_time) return;
    m->reads_time = true;
    if (t->on == CUE_ON_TIMER) return; /* no event to refuse there */
    if (t->on == CUE_ON_ANY || m->n_time_types == sizeof m->time_types / sizeof *m->time_types) {
        m->time_any_type = true;
        return;
    }
    for (uint8_t i = 0; i < m->n_time_types; i++)
        if (m->time_types[i] == t->type_id) return;
    m->time_types[m->n_time_types++] = t->type_id;
}

static const char *const machine_keys[] = {
    "$schema", "name",     "version",      "description",   "start",  "initial",
    "final",   "states",   "instance_key", "max_instances", "repeat", "on_version_change",
    "migrate", "state_ttl"};

/* ---- migration --------------------------------------------------------- */

/* An old name in the map: it need not exist in this version, but must be a
 * name that a version could have had. */
static const char *old_name(ctx *c, const char *name, const char *path)
{
    if (valid_name(name)) return pool_strdup(c->ms, name);
    err_at(c, "bad-name", path, "'%s' is not a valid name", name);
    return NULL;
}

/* Timer rules: {"old": "keep" | "drop" | {"to": "new", "shift": "-24h"}}. */
static void mig_timers(ctx *c, json_t *obj, uint16_t *first, uint16_t *n, const char *path)
{
    static const char *const keys[] = {"to", "shift"};
    *first = (uint16_t)c->ms->n_mtimers;
    *n = 0;
    if (obj == NULL) return;
    if (!json_is_object(obj)) {
        err_at(c, "wrong-type", path, "must be an object of old timer name to rule");
        return;
    }
    const char *old;
    json_t *r;
    json_object_foreach(obj, old, r)
    {
        char p[256], q[256];
        subpath(p, sizeof p, path, old);
        long k = PUSH(c->ms, mtimers, UINT16_MAX);
        if (k < 0) return;
        cue_mig_timer *mt = &c->ms->mtimers[k];
        (*n)++;
        mt->from = old_name(c, old, p);
        mt->from_hash = mt->from ? cue_hash32(mt->from, strlen(mt->from)) : 0;
        mt->to = (int16_t)names_index(&c->timers, old);
        if (json_is_string(r) && strcmp(json_string_value(r), "drop") == 0) {
            mt->to = -1;
        } else if (json_is_string(r) && strcmp(json_string_value(r), "keep") == 0) {
            if (mt->to < 0)
                err_at(c, "unknown-name", p,
                       "this version has no timer '%s' to keep it as: \"drop\" it, or name its "
                       "new timer with {\"to\": ...}",
                       old);
        } else if (json_is_object(r)) {
            check_keys(c, r, p, keys, 2);
            json_t *to = json_object_get(r, "to"), *shift = json_object_get(r, "shift");
            subpath(q, sizeof q, p, "to");
            if (to && !json_is_string(to))
                err_at(c, "wrong-type", q, "must be a timer name");
            else if (to)
                mt->to =
                    (int16_t)names_ref(c, &c->timers, json_string_value(to), "timer", "starts", q);
            else if (mt->to < 0)
                err_at(c, "unknown-name", p,
                       "this version has no timer '%s': name its new timer with {\"to\": ...}",
                       old);
            subpath(q, sizeof q, p, "shift");
            if (shift) duration_of(c, shift, q, true, &mt->shift_ms);
        } else {
            err_at(c, "bad-value", p,
                   "must be \"keep\", \"drop\" or {\"to\": timer, \"shift\": \"-24h\"}");
        }
    }
}

/* One rule for old state `old`: "new_state" or {"to"|"finish"|"restart", "when", "timers"}. */
static void mig_rule(ctx *c, const char *old, json_t *t, bool last, const char *path)
{
    static const char *const keys[] = {"to", "finish", "restart", "when", "timers"};
    long k = PUSH(c->ms, rules, UINT16_MAX);
    if (k < 0) return;
    cue_mig_rule *r = &c->ms->rules[k];
    r->from = pool_strdup(c->ms, old);
    r->from_hash = cue_hash32(old, strlen(old));
    char p[256];
    if (json_is_string(t)) {
        r->action = CUE_MIG_MOVE;
        int s = names_ref(c, &c->states, json_string_value(t), "state", "declares", path);
        r->to = (uint16_t)(s < 0 ? 0 : s);
        r->first_guard = (uint16_t)c->ms->n_guards;
        r->first_timer = (uint16_t)c->ms->n_mtimers;
        if (!last)
            err_at(c, "bad-migration", path, "only the last rule for '%s' may have no 'when'", old);
        return;
    }
    if (!json_is_object(t)) {
        err_at(c, "wrong-type", path,
               "must be a state name, or {\"to\": state} / {\"finish\": true} / "
               "{\"restart\": true} with optional 'when' and 'timers'");
        return;
    }
    check_keys(c, t, path, keys, 5);
    json_t *to = json_object_get(t, "to"), *fin = json_object_get(t, "finish"),
           *rs = json_object_get(t, "restart");
    if ((to != NULL) + json_is_true(fin) + json_is_true(rs) != 1) {
        err_at(c, "bad-migration", path,
               "a rule does one thing: 'to' a state, \"finish\": true or \"restart\": true");
    } else if (to) {
        subpath(p, sizeof p, path, "to");
        int s = json_is_string(to)
                    ? names_ref(c, &c->states, json_string_value(to), "state", "declares", p)
                    : (err_at(c, "wrong-type", p, "must be a state name"), -1);
        r->action = CUE_MIG_MOVE;
        r->to = (uint16_t)(s < 0 ? 0 : s);
    } else {
        r->action = json_is_true(fin) ? CUE_MIG_FINISH : CUE_MIG_RESTART;
    }
    json_t *when = json_object_get(t, "when");
    subpath(p, sizeof p, path, "when");
    c->no_event = IN_MIGRATION;
    guards_from_json(c, when, &r->first_guard, &r->n_guards, p);
    c->no_event = WITH_EVENT;
    /* Every instance in the old state must find a rule: the last one takes
     * whoever is left, and one after it could never apply. */
    if (last && when)
        err_at(c, "bad-migration", p,
               "the last rule for '%s' needs no 'when': an instance that matched none would have "
               "nowhere to go",
               old);
    if (!last && !when)
        err_at(c, "bad-migration", path,
               "only the last rule for '%s' may have no 'when': the ones after it never apply",
               old);
    subpath(p, sizeof p, path, "timers");
    mig_timers(c, json_object_get(t, "timers"), &r->first_timer, &r->n_timers, p);
}

/* "migrate": {"states": {"old": rule | [rule, ...]}, "timers": {...}}. */
static void machine_migrate(ctx *c, json_t *root)
{
    static const char *const keys[] = {"states", "timers", "description"};
    cue_machine *m = c->m;
    json_t *mg = json_object_get(root, "migrate");
    m->first_rule = (uint16_t)c->ms->n_rules;
    if (mg == NULL) return;
    if (!json_is_object(mg)) {
        err_at(c, "wrong-type", "$.migrate", "must be an object with 'states' and 'timers' maps");
        return;
    }
    check_keys(c, mg, "$.migrate", keys, 3);
    if (m->on_version_change != CUE_MIGRATE_KEEP)
        err_at(c, "bad-migration", "$.migrate",
               "a migrate map goes with on_version_change \"keep\" (the default): restart and "
               "finish leave nothing to map");
    m->migrates = true;
    size_t rules0 = c->ms->n_rules, timers0 = c->ms->n_mtimers;
    mig_timers(c, json_object_get(mg, "timers"), &m->first_mtimer, &m->n_mtimers,
               "$.migrate.timers");
    json_t *states = json_object_get(mg, "states");
    if (states && !json_is_object(states))
        err_at(c, "wrong-type", "$.migrate.states", "must be an object of old state name to rule");
    const char *old;
    json_t *r;
    json_object_foreach(json_is_object(states) ? states : NULL, old, r)
    {
        char p[256], q[256];
        subpath(p, sizeof p, "$.migrate.states", old);
        if (old_name(c, old, p) == NULL) continue;
        if (!json_is_array(r)) {
            mig_rule(c, old, r, true, p);
            continue;
        }
        if (json_array_size(r) == 0)
            err_at(c, "bad-migration", p, "an empty list gives '%s' nowhere to go", old);
        size_t i;
        json_t *one;
        json_array_foreach(r, i, one)
        {
            subindex(q, sizeof q, p, i);
            mig_rule(c, old, one, i + 1 == json_array_size(r), q);
        }
    }
    m->first_rule = (uint16_t)rules0;
    m->n_rules = (uint16_t)(c->ms->n_rules - rules0);
    if (c->ms->n_rules - rules0 + c->ms->n_mtimers - timers0 > CUE_MIGRATE_RULES_MAX)
        err_at(c, "limit", "$.migrate", "more than %d migration rules in one machine",
               CUE_MIGRATE_RULES_MAX);
}

static void machine_from_json(ctx *c, json_t *root)
{
    if (!json_is_object(root)) {
        err_at(c, "wrong-type", "$", "a machine file must hold one JSON object");
        return;
    }
    check_keys(c, root, "$", machine_keys, sizeof machine_keys / sizeof *machine_keys);
    machine_header(c, root);
    machine_key(c, root);
    collect_all_defs(c, root);
    machine_states(c, root);
    machine_finals(c, root);
    json_t *start = json_object_get(root, "start");
    if (start == NULL)
        err_at(c, "missing-key", "$", "missing required key 'start'");
    else
        transition_from_json(c, start, &c->m->start, "$.start", true);
    c->m->start.go = (int16_t)c->m->initial;
    copy_names(c, &c->timers, c->m->timers, &c->m->n_timers);
    copy_names(c, &c->counters, c->m->counters, &c->m->n_counters);
    copy_names(c, &c->vars, c->m->vars, &c->m->n_vars);
    copy_names(c, &c->triggers, c->m->triggers, &c->m->n_triggers);
    machine_migrate(c, root);
    note_time_type(c->m, &c->m->start);
    for (uint16_t s = 0; s < c->m->n_states; s++)
        for (uint16_t k = 0; k < c->m->states[s].n_transitions; k++)
            note_time_type(c->m, &c->ms->trans[c->m->states[s].first_transition + k]);
}

/* ---- sets and files ---------------------------------------------------- */

static int set_new(cue_machines **out)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL) return CUE_ENOMEM;
    (*out)->m = calloc(CUE_MACHINES_MAX, sizeof *(*out)->m);
    if ((*out)->m == NULL) {
        free(*out);
        *out = NULL;
        return CUE_ENOMEM;
    }
    return 0;
}

void cue_machines_free(cue_machines *ms)
{
    if (ms == NULL) return;
    free(ms->m);
    free(ms->trans);
    free(ms->guards);
    free(ms->actions);
    free(ms->fields);
    free(ms->ptrs);
    free(ms->types);
    free(ms->type_index);
    free(ms->terms);
    free(ms->rules);
    free(ms->mtimers);
    for (pool_chunk *c = ms->pool, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(ms);
}

/* Compiles `file` as the next machine of `ms`, from `text` (`len` bytes)
 * when it is not NULL, else from the file itself; diagnostics go to `d`. */
static int compile_into(cue_machines *ms, const char *file, const char *text, size_t len,
                        cue_diags *d)
{
    size_t errors_before = d->errors;
    if (ms->n_m >= CUE_MACHINES_MAX) {
        cue_diags_add(d, CUE_DIAG_ERROR, "limit", "$", "more than %d machines", CUE_MACHINES_MAX);
        return CUE_ELIMIT;
    }
    json_error_t jerr;
    json_t *root = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)
                        : json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        cue_diags_add(d, CUE_DIAG_ERROR, "bad-json", "$", "line %d, column %d: %s", jerr.line,
                      jerr.column, jerr.text);
        return CUE_EPARSE;
    }
    ctx c = {.ms = ms, .m = &ms->m[ms->n_m], .d = d, .file = file};
    memset(c.m, 0, sizeof *c.m);
    c.m->file = pool_strdup(ms, file);
    machine_from_json(&c, root);
    json_decref(root);
    if (d->errors > errors_before) return CUE_EMACHINE;
    for (size_t i = 0; i < ms->n_m; i++) {
        if (strcmp(ms->m[i].name, c.m->name) == 0) {
            cue_diags_add(d, CUE_DIAG_ERROR, "duplicate-machine", "$.name",
                          "machine '%s' is also defined in %s", c.m->name, ms->m[i].file);
            return CUE_EMACHINE;
        }
        if (ms->m[i].hash == c.m->hash) {
            cue_diags_add(d, CUE_DIAG_ERROR, "hash-collision", "$.name",
                          "machine name '%s' hashes like '%s'; rename one", c.m->name,
                          ms->m[i].name);
            return CUE_EMACHINE;
        }
    }
    ms->n_m++;
    return 0;
}

static int compile_one(cue_machines **out, const char *file, const char *text, size_t len,
                       cue_diags *d)
{
    *out = NULL;
    cue_machines *ms;
    if (set_new(&ms) != 0) return CUE_ENOMEM;
    int rc = compile_into(ms, file, text, len, d);
    if (rc != 0) {
        cue_machines_free(ms);
        return rc;
    }
    *out = ms;
    return 0;
}

int cue_machines_compile_file(cue_machines **out, const char *file, cue_diags *d)
{
    return compile_one(out, file, NULL, 0, d);
}

int cue_machines_compile_text(cue_machines **out, const char *name, const char *text, size_t len,
                              cue_diags *d)
{
    return compile_one(out, name, text, len, d);
}

static int first_error(const cue_diags *d, const char *file, cue_err *err)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->items[i].level == CUE_DIAG_ERROR)
            return cue_err_set(err, CUE_EMACHINE, "%s: %s: %s [%s]", file, d->items[i].path,
                               d->items[i].msg, d->items[i].code);
    return cue_err_set(err, CUE_EMACHINE, "%s: invalid machine", file);
}

int cue_machines_load_files(cue_machines **out, const char *const *files, size_t n_files,
                            cue_err *err)
{
    *out = NULL;
    cue_machines *ms;
    if (set_new(&ms) != 0) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_files; i++) {
        cue_diags d;
        cue_diags_init(&d);
        int rc = compile_into(ms, files[i], NULL, 0, &d);
        if (rc != 0) first_error(&d, files[i], err);
        cue_diags_deinit(&d);
        if (rc != 0) {
            cue_machines_free(ms);
            return CUE_EMACHINE;
        }
    }
    *out = ms;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json files of `dir`, sorted; the caller frees each and the array. */
static int list_json_files(const char *dir, char ***files, size_t *n, cue_err *err)
{
    DIR *dh = opendir(dir);
    /* A directory named in the configuration or on the command line: a
     * configuration error (exit 78), as a bad journey in it is. */
    if (dh == NULL)
        return cue_err_set(err, CUE_ECONFIG, "cannot open machines directory '%s': %s", dir,
                           strerror(errno));
    size_t cap = 16;
    *n = 0;
    *files = malloc(cap * sizeof **files);
    struct dirent *de;
    while (*files && (de = readdir(dh)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.') continue;
        if (*n == cap) {
            char **grown = realloc(*files, (cap *= 2) * sizeof **files);
            if (grown == NULL) break;
            *files = grown;
        }
        size_t plen = strlen(dir) + len + 2;
        (*files)[*n] = malloc(plen);
        if ((*files)[*n] == NULL) break;
        snprintf((*files)[*n], plen, "%s/%s", dir, de->d_name);
        (*n)++;
    }
    closedir(dh);
    if (*files == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    qsort(*files, *n, sizeof **files, cmp_str);
    return 0;
}

int cue_machines_load(cue_machines **out, const char *dir, const char *only, cue_err *err)
{
    char **files = NULL;
    size_t n = 0;
    *out = NULL;
    int rc = list_json_files(dir, &files, &n, err);
    if (rc != 0) return rc;
    if (n == 0) rc = cue_err_set(err, CUE_EMACHINE, "no *.json machine files in '%s'", dir);
    if (rc == 0) rc = cue_machines_load_files(out, (const char *const *)files, n, err);
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    if (rc != 0 || only == NULL) return rc;
    /* Keep one machine in slot 0; the others stay compiled behind it, set
     * aside: not in the set, but known to checks of names that refer to the
     * whole directory (a policy file names every journey). */
    cue_machines *ms = *out;
    for (size_t i = 0; i < ms->n_m; i++) {
        if (strcmp(ms->m[i].name, only) == 0) {
            cue_machine kept = ms->m[i];
            ms->m[i] = ms->m[0];
            ms->m[0] = kept;
            ms->n_aside = ms->n_m - 1;
            ms->n_m = 1;
            return 0;
        }
    }
    const char *known[CUE_MACHINES_MAX]; /* compile_into holds n_m to this */
    for (size_t i = 0; i < ms->n_m; i++)
        known[i] = ms->m[i].name;
    const char *near = cue_nearest_name(only, known, ms->n_m);
    rc = cue_err_set(err, CUE_EMACHINE, "no machine named '%s' in '%s'%s%s%s", only, dir,
                     near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    cue_machines_free(ms);
    *out = NULL;
    return rc;
}

/* ---- accessors --------------------------------------------------------- */

size_t cue_machines_count(const cue_machines *ms)
{
    return ms->n_m;
}

const cue_machine *cue_machines_get(const cue_machines *ms, size_t i)
{
    CUE_ASSERT(i < ms->n_m);
    return &ms->m[i];
}

size_t cue_machines_set_aside(const cue_machines *ms)
{
    return ms->n_aside;
}

const cue_machine *cue_machines_get_set_aside(const cue_machines *ms, size_t i)
{
    CUE_ASSERT(i < ms->n_aside);
    return &ms->m[ms->n_m + i];
}

int cue_machines_find_hash(const cue_machines *ms, uint32_t hash)
{
    for (size_t i = 0; i < ms->n_m; i++)
        if (ms->m[i].hash == hash) return (int)i;
    return -1;
}

int cue_machines_find_trigger(const cue_machines *ms, uint32_t machine_hash, uint32_t trigger_hash,
                              int *trigger)
{
    *trigger = -1;
    int mi = cue_machines_find_hash(ms, machine_hash);
    for (int t = 0; mi >= 0 && t < ms->m[mi].n_triggers; t++)
        if (ms->m[mi].triggers[t].hash == trigger_hash) *trigger = t;
    return mi;
}

int32_t cue_machines_type_id(const cue_machines *ms, const char *type, size_t len)
{
    return type_lookup(ms, type, len);
}

/* A set whose machines have no guards (or actions, transitions, fields,
 * timer times, migration rules) has
 * no table for them; callers still add a range's first index, which is
 * undefined on a null pointer even when it is 0. So an empty table is a
 * real, empty, array. */
static const cue_guard no_guards[1];
static const cue_action no_actions[1];
static const cue_transition no_transitions[1];
static const cue_emit_field no_fields[1];
static const cue_time_term no_terms[1];
static const cue_mig_rule no_rules[1];
static const cue_mig_timer no_mtimers[1];

const cue_guard *cue_machines_guards(const cue_machines *ms)
{
    return ms->guards ? ms->guards : no_guards;
}

const cue_action *cue_machines_actions(const cue_machines *ms)
{
    return ms->actions ? ms->actions : no_actions;
}

const cue_transition *cue_machines_transitions(const cue_machines *ms)
{
    return ms->trans ? ms->trans : no_transitions;
}

const cue_emit_field *cue_machines_fields(const cue_machines *ms)
{
    return ms->fields ? ms->fields : no_fields;
}

const cue_json_ptr *cue_machines_ptr(const cue_machines *ms, uint16_t i)
{
    CUE_ASSERT(i < ms->n_ptrs);
    return &ms->ptrs[i];
}

uint16_t cue_machines_ptr_count(const cue_machines *ms)
{
    return (uint16_t)ms->n_ptrs;
}

const char *cue_machines_type_name(const cue_machines *ms, int32_t type_id)
{
    CUE_ASSERT(type_id >= 0 && (size_t)type_id < ms->n_types);
    return ms->types[type_id];
}

const cue_time_term *cue_machines_time_terms(const cue_machines *ms)
{
    return ms->terms ? ms->terms : no_terms;
}

const cue_mig_rule *cue_machines_mig_rules(const cue_machines *ms)
{
    return ms->rules ? ms->rules : no_rules;
}

const cue_mig_timer *cue_machines_mig_timers(const cue_machines *ms)
{
    return ms->mtimers ? ms->mtimers : no_mtimers;
}

bool cue_machines_use_local_time(const cue_machines *ms)
{
    return ms->local_time;
}

bool cue_guard_eval(const cue_guard *g, cue_operand_fn get, void *arg)
{
    cue_value l = get(&g->lhs, arg);
    if (g->op == CUE_OP_EXISTS) {
        bool present = l.type != CUE_VAL_ABSENT && l.type != CUE_VAL_NULL;
        return present == g->rhs.lit.b;
    }
    if (g->op == CUE_OP_IN || g->op == CUE_OP_NOT_IN) {
        bool found = false;
        for (uint8_t i = 0; i < g->n_set && !found; i++) {
            cue_value r = get(&g->set[i], arg);
            found = cue_value_cmp(&l, &r) == 0;
        }
        return found == (g->op == CUE_OP_IN);
    }
    cue_value r = get(&g->rhs, arg);
    return cue_op_holds(g->op, cue_value_cmp(&l, &r));
}
