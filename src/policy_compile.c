/* The policy compiler: the policy file, checked against the journeys, into
 * the tables policy.c decides with.
 *
 * A file is checked whole: every error is reported (the first
 * CUE_POLICY_ERRORS_MAX of them), each at its JSON path, a value of the
 * wrong kind as "expected ..., not ...", a misspelt key or name with the
 * nearest known one (cue_nearest_name, as the machine compiler and the
 * config do). After an error the compiler goes on with the next key or item,
 * so one mistake is one message, not a cascade. */
#include "policy_int.h"

#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cc {
    cue_policy *p;
    cue_diags *d;   /* borrowed: the first CUE_POLICY_ERRORS_MAX errors */
    size_t errors;  /* all of them */
    char path[256]; /* where the compiler is: "$.caps[2].window" */
} cc;

/* ---- messages ---------------------------------------------------------- */

static int fail(cc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(cc *c, const char *fmt, ...)
{
    if (++c->errors > CUE_POLICY_ERRORS_MAX) return CUE_ECONFIG;
    char msg[sizeof c->d->items[0].msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cue_diags_add(c->d, CUE_DIAG_ERROR, "policy", c->path, "%s", msg);
    return CUE_ECONFIG;
}

/* A JSON value as a message shows it: a string or a number as it is (a long
 * string cut short), a container by its kind. */
static const char *shown(json_t *v, char *buf, size_t cap)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING:
        snprintf(buf, cap, "\"%.40s%s\"", json_string_value(v),
                 json_string_length(v) > 40 ? "..." : "");
        return buf;
    case JSON_INTEGER:
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    case JSON_REAL: snprintf(buf, cap, "%g", json_real_value(v)); return buf;
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    default: return "null";
    }
}

/* "expected WHAT, not VALUE", or "missing: expected WHAT" for an absent one. */
static int expected(cc *c, json_t *v, const char *what)
{
    char buf[64];
    if (v == NULL) return fail(c, "missing: expected %s", what);
    return fail(c, "expected %s, not %s", what, shown(v, buf, sizeof buf));
}

/* " (did you mean 'X'?)" when a known name is close to `name`, else "". */
static const char *hint(const char *name, const char *const *known, size_t n, char *buf, size_t cap)
{
    const char *near = cue_nearest_name(name, known, n);
    if (near == NULL) return "";
    snprintf(buf, cap, " (did you mean '%s'?)", near);
    return buf;
}

/* "a, b or c" into `buf`. */
static const char *listed(const char *const *names, size_t n, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s",
                                i == 0      ? ""
                                : i + 1 < n ? ", "
                                            : " or ",
                                names[i]);
    return buf;
}

/* Unknown keys are errors: a misspelt one must not silently widen a rule.
 * Each names the nearest known key, or lists them. */
static void check_keys(cc *c, json_t *o, const char *const *keys, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, keys[i]) == 0;
        if (ok) continue;
        char near[96], all[256];
        const char *h = hint(key, keys, n, near, sizeof near);
        if (*h)
            fail(c, "unknown key '%s'%s", key, h);
        else
            fail(c, "unknown key '%s' (expected %s)", key, listed(keys, n, all, sizeof all));
    }
}
/* A literal list of keys and its length, for check_keys. */
#define KEYS(...)                                                                                  \
    (const char *const[]){__VA_ARGS__},                                                            \
        sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* The JSON path follows the compiler into a member or an item; each enter_*
 * returns what leave() restores. */
static size_t enter_key(cc *c, const char *key)
{
    size_t n = strlen(c->path);
    snprintf(c->path + n, sizeof c->path - n, ".%s", key);
    return n;
}

static size_t enter_index(cc *c, size_t i)
{
    size_t n = strlen(c->path);
    snprintf(c->path + n, sizeof c->path - n, "[%zu]", i);
    return n;
}

static void leave(cc *c, size_t n)
{
    c->path[n] = '\0';
}

/* ---- values ------------------------------------------------------------ */

static int get_name(cc *c, json_t *v, char *out, size_t cap, const char *what)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap) {
        char desc[128];
        snprintf(desc, sizeof desc, "%s: a string of 1 to %zu characters", what, cap - 1);
        return expected(c, v, desc);
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_duration(cc *c, json_t *v, int64_t *ms)
{
    if (!json_is_string(v) ||
        cue_duration_parse(json_string_value(v), json_string_length(v), ms) != 0 || *ms <= 0)
        return expected(c, v, "a positive duration such as \"30m\", \"24h\" or \"7d\"");
    return 0;
}

static int get_clock(cc *c, json_t *v, int *min)
{
    int h, m;
    char tail;
    if (!json_is_string(v) || sscanf(json_string_value(v), "%2d:%2d%c", &h, &m, &tail) != 2 ||
        h < 0 || h > 23 || m < 0 || m > 59)
        return expected(c, v, "a local time of day \"HH:MM\"");
    *min = h * 60 + m;
    return 0;
}

static int find_class(const cue_policy *p, const char *name)
{
    for (int i = 0; i < p->n_classes; i++)
        if (strcmp(p->classes[i], name) == 0) return i;
    return -1;
}

static int get_class(cc *c, json_t *v, uint8_t *out)
{
    const cue_policy *p = c->p;
    if (!json_is_string(v)) return expected(c, v, "a class name");
    int k = find_class(p, json_string_value(v));
    if (k >= 0) {
        *out = (uint8_t)k;
        return 0;
    }
    const char *names[CLASSES_MAX];
    for (int i = 0; i < p->n_classes; i++)
        names[i] = p->classes[i];
    char near[96], all[CLASSES_MAX * (NAME_MAX_BYTES + 4)];
    if (*hint(json_string_value(v), names, p->n_classes, near, sizeof near))
        return fail(c, "unknown class '%s'%s", json_string_value(v), near);
    return fail(c, "unknown class '%s' (the classes in $.classes: %s)", json_string_value(v),
                listed(names, p->n_classes, all, sizeof all));
}

static int get_channels(cc *c, json_t *v, trig_rule *r)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > CUE_CHANNELS_MAX)
        return expected(c, v, "a list of 1 to 4 channels (push, email, in_app, sms)");
    int rc = 0;
    uint8_t seen = 0, n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t at = enter_index(c, i);
        int ch = json_is_string(e)
                     ? cue_policy_channel_find(json_string_value(e), json_string_length(e))
                     : -1;
        char near[96];
        if (!json_is_string(e))
            rc = expected(c, e, "a channel: push, email, in_app or sms");
        else if (ch < 0 && *hint(json_string_value(e), cue_channel_names, CUE_CHANNELS_MAX, near,
                                 sizeof near))
            rc = fail(c, "unknown channel '%s'%s", json_string_value(e), near);
        else if (ch < 0)
            rc = fail(c, "unknown channel '%s' (channels are push, email, in_app and sms)",
                      json_string_value(e));
        else if (seen & (1u << ch))
            rc = fail(c, "channel '%s' twice", json_string_value(e));
        else {
            seen |= (uint8_t)(1u << ch);
            r->channels[n++] = (uint8_t)ch;
        }
        leave(c, at);
    }
    if (rc == 0) r->n_channels = n;
    return rc;
}

static void get_late(cc *c, json_t *v, trig_rule *r)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(s, "send") == 0)
        r->late = LATE_SEND;
    else if (strcmp(s, "mark") == 0)
        r->late = LATE_MARK;
    else if (strcmp(s, "drop") == 0)
        r->late = LATE_DROP;
    else
        expected(c, v, "\"send\", \"mark\" or \"drop\"");
}

/* class, channels, max_age, late (and triggers, for a machine): into `r`,
 * over what it holds already, in the order the file gives them. */
static void get_rule(cc *c, json_t *o, trig_rule *r, bool machine)
{
    static const char *const keys[] = {"class", "channels", "max_age", "late", "triggers"};
    size_t n_keys = machine ? 5 : 4;
    if (!json_is_object(o)) {
        expected(c, o,
                 machine ? "an object with class, channels, max_age, late or triggers"
                         : "an object with class, channels, max_age or late");
        return;
    }
    check_keys(c, o, keys, n_keys);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        size_t at = enter_key(c, key);
        if (strcmp(key, "class") == 0)
            get_class(c, v, &r->cls);
        else if (strcmp(key, "channels") == 0)
            get_channels(c, v, r);
        else if (strcmp(key, "max_age") == 0 && json_is_null(v))
            r->max_age_ms = INT64_MAX;
        else if (strcmp(key, "max_age") == 0)
            get_duration(c, v, &r->max_age_ms);
        else if (strcmp(key, "late") == 0)
            get_late(c, v, r);
        leave(c, at);
    }
}

/* ---- sections ---------------------------------------------------------- */

static void default_classes(cue_policy *p)
{
    static const char *const names[] = {"transactional", "lifecycle", "promotional"};
    for (int i = 0; i < 3; i++)
        snprintf(p->classes[i], sizeof p->classes[i], "%s", names[i]);
    p->bypass[0] = true;
    p->n_classes = 3;
}

/* One class: its name, or {"name": ..., "bypass": ...}; added when good. */
static void compile_class(cc *c, json_t *e)
{
    cue_policy *p = c->p;
    json_t *name = e, *bypass = NULL;
    size_t at = strlen(c->path);
    if (json_is_object(e)) {
        check_keys(c, e, KEYS("name", "bypass"));
        bypass = json_object_get(e, "bypass");
        if (bypass && !json_is_boolean(bypass)) {
            size_t b = enter_key(c, "bypass");
            expected(c, bypass, "true or false");
            leave(c, b);
        }
        name = json_object_get(e, "name");
        enter_key(c, "name");
    } else if (!json_is_string(e)) {
        expected(c, e, "a class: its name, or {\"name\": ..., \"bypass\": true}");
        return;
    }
    char cls[NAME_MAX_BYTES + 1];
    int rc = get_name(c, name, cls, sizeof cls, "a class name");
    leave(c, at);
    if (rc != 0) return;
    if (find_class(p, cls) >= 0) {
        fail(c, "class '%s' twice", cls);
        return;
    }
    uint8_t k = p->n_classes++;
    memcpy(p->classes[k], cls, sizeof cls);
    p->bypass[k] =
        json_is_boolean(bypass) ? json_is_true(bypass) : strcmp(cls, "transactional") == 0;
}

static void compile_classes(cc *c, json_t *v)
{
    if (v == NULL) {
        default_classes(c->p);
        return;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > CLASSES_MAX) {
        expected(c, v, "a list of 1 to 8 classes, highest priority first");
        default_classes(c->p); /* so that the class names used elsewhere are checked */
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t at = enter_index(c, i);
        compile_class(c, e);
        leave(c, at);
    }
    if (c->p->n_classes == 0) default_classes(c->p);
}

static int trigger_index(const cue_machine *m, const char *name)
{
    for (int t = 0; t < m->n_triggers; t++)
        if (strcmp(m->triggers[t].name, name) == 0) return t;
    return -1;
}

static int machine_index(const cue_machines *ms, const char *name)
{
    for (size_t i = 0; i < cue_machines_count(ms); i++)
        if (strcmp(cue_machines_get(ms, i)->name, name) == 0) return (int)i;
    return -1;
}

/* The machine called `name`: one of the set (`*index` its index), or one that
 * `--only` set aside (`*index` -1: its rules are checked, not kept), or NULL.
 * A policy file names every journey, whichever run only some of them. */
static const cue_machine *machine_named(const cue_machines *ms, const char *name, int *index)
{
    *index = machine_index(ms, name);
    if (*index >= 0) return cue_machines_get(ms, (size_t)*index);
    for (size_t i = 0; i < cue_machines_set_aside(ms); i++)
        if (strcmp(cue_machines_get_set_aside(ms, i)->name, name) == 0)
            return cue_machines_get_set_aside(ms, i);
    return NULL;
}

/* The i-th machine of the set, then of those set aside. */
static const cue_machine *any_machine(const cue_machines *ms, size_t i)
{
    size_t n = cue_machines_count(ms);
    return i < n ? cue_machines_get(ms, i) : cue_machines_get_set_aside(ms, i - n);
}

static size_t any_machines(const cue_machines *ms)
{
    return cue_machines_count(ms) + cue_machines_set_aside(ms);
}

/* " (did you mean 'X'?)" for a machine name, or "". */
static const char *machine_hint(const cue_machines *ms, const char *name, char *buf, size_t cap)
{
    const char *names[CUE_MACHINES_MAX]; /* the set and those set aside were one directory */
    size_t n = any_machines(ms);
    for (size_t i = 0; i < n; i++)
        names[i] = any_machine(ms, i)->name;
    return hint(name, names, n, buf, cap);
}

/* " (did you mean 'X'?)" for a trigger name of machine `m`, or "". */
static const char *trigger_hint(const cue_machine *m, const char *name, char *buf, size_t cap)
{
    const char *names[CUE_MACHINE_TRIGGERS_MAX];
    for (int t = 0; t < m->n_triggers; t++)
        names[t] = m->triggers[t].name;
    return hint(name, names, m->n_triggers, buf, cap);
}

/* Whether a machine of the set, or one set aside, emits `name`; else the
 * nearest name one of them emits, in `buf`. */
static bool emitted(const cue_machines *ms, const char *name, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t m = 0; m < any_machines(ms); m++)
        if (trigger_index(any_machine(ms, m), name) >= 0) return true;
    for (size_t m = 0; m < any_machines(ms) && buf[0] == '\0'; m++)
        trigger_hint(any_machine(ms, m), name, buf, cap);
    return false;
}

/* $.machines.NAME: the machine's rule, then its triggers'. */
static void compile_machine(cc *c, const char *name, json_t *o, const trig_rule *base)
{
    cue_policy *p = c->p;
    int mi;
    char near[96];
    const cue_machine *m = machine_named(p->ms, name, &mi);
    if (m == NULL) {
        fail(c, "no machine '%s' in machines.dir%s", name,
             machine_hint(p->ms, name, near, sizeof near));
        return;
    }
    trig_rule mr = *base;
    get_rule(c, o, &mr, true);
    for (int t = 0; mi >= 0 && t < CUE_MACHINE_TRIGGERS_MAX; t++)
        p->rules[mi][t] = mr;
    json_t *trs = json_is_object(o) ? json_object_get(o, "triggers") : NULL;
    if (trs == NULL) return;
    size_t at = enter_key(c, "triggers");
    if (!json_is_object(trs)) expected(c, trs, "an object of the machine's trigger names");
    const char *tname;
    json_t *to;
    json_object_foreach(trs, tname, to)
    {
        size_t at_t = enter_key(c, tname);
        int ti = trigger_index(m, tname);
        if (ti < 0) {
            fail(c, "machine has no trigger '%s'%s", tname,
                 trigger_hint(m, tname, near, sizeof near));
        } else {
            trig_rule tr = mr;
            get_rule(c, to, &tr, false);
            if (mi >= 0) p->rules[mi][ti] = tr;
        }
        leave(c, at_t);
    }
    leave(c, at);
}

static void compile_rules(cc *c, json_t *defaults, json_t *machines)
{
    cue_policy *p = c->p;
    int lifecycle = find_class(p, "lifecycle");
    trig_rule base = {.cls = (uint8_t)(lifecycle >= 0 ? lifecycle : p->n_classes - 1),
                      .channels = {CUE_CH_PUSH},
                      .n_channels = 1,
                      .max_age_ms = INT64_MAX,
                      .late = LATE_SEND};
    snprintf(c->path, sizeof c->path, "$.defaults");
    if (defaults) get_rule(c, defaults, &base, false);
    for (size_t m = 0; m < cue_machines_count(p->ms); m++)
        for (int t = 0; t < CUE_MACHINE_TRIGGERS_MAX; t++)
            p->rules[m][t] = base;
    if (machines == NULL) return;
    snprintf(c->path, sizeof c->path, "$.machines");
    if (!json_is_object(machines)) {
        expected(c, machines, "an object of machine names");
        return;
    }
    const char *name;
    json_t *o;
    json_object_foreach(machines, name, o)
    {
        snprintf(c->path, sizeof c->path, "$.machines.%s", name);
        compile_machine(c, name, o, &base);
    }
}

/* One list of a scope: `what` names each entry ("a machine name"). */
static bool scope_list(cc *c, json_t *o, const char *key, size_t max, const char *what)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || (json_is_array(v) && json_array_size(v) <= max)) return v != NULL;
    char desc[96];
    snprintf(desc, sizeof desc, "a list of at most %zu %ss", max, what);
    size_t at = enter_key(c, key);
    expected(c, v, desc);
    leave(c, at);
    return false;
}

/* machines, triggers, classes: which triggers a cap or experiment covers
 * (docs/policies.md: each list given narrows it). */
static void compile_scope(cc *c, json_t *o, scope *sc)
{
    const cue_machines *ms = c->p->ms;
    memset(sc, 0, sizeof *sc);
    size_t i;
    json_t *e;
    char near[96];
    if (scope_list(c, o, "machines", SCOPE_MAX, "machine name")) {
        json_array_foreach(json_object_get(o, "machines"), i, e)
        {
            size_t at = enter_key(c, "machines");
            enter_index(c, i);
            int mi;
            if (!json_is_string(e))
                expected(c, e, "a machine name");
            else if (machine_named(ms, json_string_value(e), &mi) == NULL)
                fail(c, "no machine '%s'%s", json_string_value(e),
                     machine_hint(ms, json_string_value(e), near, sizeof near));
            else
                sc->machines[sc->n_machines++] =
                    cue_hash32(json_string_value(e), json_string_length(e));
            leave(c, at);
        }
    }
    if (scope_list(c, o, "triggers", SCOPE_MAX, "trigger name")) {
        json_array_foreach(json_object_get(o, "triggers"), i, e)
        {
            size_t at = enter_key(c, "triggers");
            enter_index(c, i);
            if (!json_is_string(e))
                expected(c, e, "a trigger name");
            else if (!emitted(ms, json_string_value(e), near, sizeof near))
                fail(c, "no machine emits '%s'%s", json_string_value(e), near);
            else
                sc->triggers[sc->n_triggers++] =
                    cue_hash32(json_string_value(e), json_string_length(e));
            leave(c, at);
        }
    }
    if (scope_list(c, o, "classes", CLASSES_MAX, "class name")) {
        json_array_foreach(json_object_get(o, "classes"), i, e)
        {
            size_t at = enter_key(c, "classes");
            enter_index(c, i);
            uint8_t k;
            if (get_class(c, e, &k) == 0) sc->classes |= (uint16_t)(1u << k);
            leave(c, at);
        }
    }
}

/* A member checked by `check`, at its own path. */
#define AT(c, key, check)                                                                          \
    do {                                                                                           \
        size_t at_ = enter_key(c, key);                                                            \
        check;                                                                                     \
        leave(c, at_);                                                                             \
    } while (0)

/* One cap; true when it compiled. */
static bool compile_cap(cc *c, json_t *e, cap_rule *k)
{
    memset(k, 0, sizeof *k); /* the slot of a cap that did not compile, maybe */
    if (!json_is_object(e)) {
        expected(c, e, "a cap: an object with a name and one of window, calendar or cooldown");
        return false;
    }
    size_t before = c->errors;
    check_keys(c, e,
               KEYS("name", "window", "calendar", "cooldown", "max", "on_cap", "machines",
                    "triggers", "classes"));
    AT(c, "name", get_name(c, json_object_get(e, "name"), k->name, sizeof k->name, "a cap name"));
    json_t *w = json_object_get(e, "window"), *cal = json_object_get(e, "calendar"),
           *cool = json_object_get(e, "cooldown"), *max = json_object_get(e, "max"),
           *on = json_object_get(e, "on_cap");
    if ((w != NULL) + (cal != NULL) + (cool != NULL) != 1) {
        fail(c, "give exactly one of window, calendar (\"day\") or cooldown");
    } else if (w) {
        k->kind = CAP_ROLLING;
        AT(c, "window", get_duration(c, w, &k->window_ms));
    } else if (cal) {
        k->kind = CAP_DAY;
        if (!json_is_string(cal) || strcmp(json_string_value(cal), "day") != 0)
            AT(c, "calendar", expected(c, cal, "\"day\" (the user's local calendar day)"));
    } else {
        k->kind = CAP_COOLDOWN;
        AT(c, "cooldown", get_duration(c, cool, &k->window_ms));
    }
    bool counted = (w || cal) && !cool; /* a cooldown has no max */
    if (counted && (!json_is_integer(max) || json_integer_value(max) < 0 ||
                    json_integer_value(max) > CUE_POLICY_SENDS_MAX))
        AT(c, "max",
           expected(c, max, "a whole number from 0 to 32 (the sends a user's state remembers)"));
    else if (json_is_integer(max))
        k->max = (int)json_integer_value(max);
    const char *s = json_is_string(on) ? json_string_value(on) : "";
    if (on && strcmp(s, "defer") != 0 && strcmp(s, "drop") != 0)
        AT(c, "on_cap", expected(c, on, "\"drop\" or \"defer\""));
    k->defer = strcmp(s, "defer") == 0;
    compile_scope(c, e, &k->sc);
    return c->errors == before;
}

static void compile_caps(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    if (v == NULL) return;
    if (!json_is_array(v) || json_array_size(v) > CAPS_MAX) {
        expected(c, v, "a list of at most 32 caps");
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t at = enter_index(c, i);
        if (compile_cap(c, e, &p->caps[p->n_caps])) p->n_caps++;
        leave(c, at);
    }
}

static void compile_regions(cc *c, json_t *r)
{
    cue_policy *p = c->p;
    if (!json_is_object(r) || json_object_size(r) > REGIONS_MAX) {
        expected(c, r, "an object of region code: zone name (at most 128)");
        return;
    }
    const char *region;
    json_t *z;
    json_object_foreach(r, region, z)
    {
        size_t at = enter_key(c, region);
        region_zone *rz = &p->region_zones[p->n_region_zones];
        if (strlen(region) == 0 || strlen(region) >= sizeof rz->region)
            fail(c, "a region code is 1 to %zu characters", sizeof rz->region - 1);
        else if (get_name(c, z, rz->zone, sizeof rz->zone, "a zone name") == 0) {
            memcpy(rz->region, region, strlen(region) + 1);
            p->n_region_zones++;
        }
        leave(c, at);
    }
}

static void compile_zones(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    snprintf(p->default_zone, sizeof p->default_zone, "UTC");
    if (v == NULL) return;
    if (!json_is_object(v)) {
        expected(c, v, "an object with the keys default and regions");
        return;
    }
    check_keys(c, v, KEYS("default", "regions"));
    json_t *d = json_object_get(v, "default"), *r = json_object_get(v, "regions");
    if (d) {
        char zone[NAME_MAX_BYTES + 1];
        size_t at = enter_key(c, "default");
        if (get_name(c, d, zone, sizeof zone, "a zone name") == 0)
            memcpy(p->default_zone, zone, sizeof zone);
        leave(c, at);
    }
    if (r) AT(c, "regions", compile_regions(c, r));
}

static void compile_quiet(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    if (v == NULL) return;
    if (!json_is_object(v)) {
        expected(c, v, "an object with the keys start, end and (optional) spread");
        return;
    }
    size_t before = c->errors;
    check_keys(c, v, KEYS("start", "end", "spread"));
    AT(c, "start", get_clock(c, json_object_get(v, "start"), &p->quiet_start));
    AT(c, "end", get_clock(c, json_object_get(v, "end"), &p->quiet_end));
    json_t *s = json_object_get(v, "spread");
    if (s) AT(c, "spread", get_duration(c, s, &p->spread_ms));
    if (c->errors != before) return;
    p->quiet = p->quiet_start != p->quiet_end;
    /* The spread must end before the next window opens, or a trigger would
     * be deferred into it, and again, every night. */
    int64_t open_ms = (int64_t)((p->quiet_start - p->quiet_end + 1440) % 1440) * 60000;
    if (p->quiet && p->spread_ms >= open_ms)
        AT(c, "spread",
           fail(c, "spread must be shorter than the time between the end and the next start"));
}

static void compile_ptr(cc *c, json_t *o, const char *key, cue_json_ptr *out)
{
    json_t *v = json_object_get(o, key);
    size_t at = enter_key(c, key);
    cue_err e = {0};
    if (!json_is_string(v))
        expected(c, v, "a JSON Pointer such as \"/props/channel\"");
    else if (cue_json_ptr_compile(out, json_string_value(v), &e) != 0)
        fail(c, "%s", e.msg);
    leave(c, at);
}

/* consent.event or consent.mute_event: a type, where the channel is, and
 * where the flag (`flag`: granted, muted) is. */
static void compile_consent_event(cc *c, json_t *o, const char *flag, char *type,
                                  cue_json_ptr *channel, cue_json_ptr *value)
{
    if (!json_is_object(o)) {
        char desc[96];
        snprintf(desc, sizeof desc, "an object with the keys type, channel and %s", flag);
        expected(c, o, desc);
        return;
    }
    check_keys(c, o, KEYS("type", "channel", flag));
    AT(c, "type",
       get_name(c, json_object_get(o, "type"), type, NAME_MAX_BYTES + 1, "an event type"));
    compile_ptr(c, o, "channel", channel);
    compile_ptr(c, o, flag, value);
}

/* One of consent.defaults; true when it compiled. */
static bool compile_consent_rule(cc *c, json_t *e, consent_rule *r)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(e)) {
        expected(c, e, "an object with the keys regions and mode");
        return false;
    }
    size_t before = c->errors;
    check_keys(c, e, KEYS("regions", "mode"));
    json_t *regs = json_object_get(e, "regions"), *mode = json_object_get(e, "mode");
    const char *s = json_is_string(mode) ? json_string_value(mode) : "";
    if (strcmp(s, "opt_in") != 0 && strcmp(s, "opt_out") != 0)
        AT(c, "mode", expected(c, mode, "\"opt_in\" or \"opt_out\""));
    r->opt_in = strcmp(s, "opt_in") == 0;
    size_t at = enter_key(c, "regions");
    bool listed_ok = json_is_array(regs) && json_array_size(regs) <= REGIONS_MAX;
    if (!listed_ok) expected(c, regs, "a list of region codes, or [\"*\"] for every user");
    size_t j;
    json_t *x;
    json_array_foreach(listed_ok ? regs : NULL, j, x)
    {
        size_t at_j = enter_index(c, j);
        /* "" is a code too: it matches the users who have no region. */
        if (!json_is_string(x) || json_string_length(x) >= sizeof r->regions[0]) {
            expected(c, x, "a region code: a string of at most 15 characters");
        } else {
            if (strcmp(json_string_value(x), "*") == 0) r->any = true;
            memcpy(r->regions[r->n_regions++], json_string_value(x), json_string_length(x) + 1);
        }
        leave(c, at_j);
    }
    leave(c, at);
    return c->errors == before;
}

static void compile_consent(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    /* With no consent section every channel is open: the default rule is
     * opt-out everywhere. */
    p->consent_rules[0].any = true;
    p->n_consent_rules = 1;
    if (v == NULL) return;
    if (!json_is_object(v)) {
        expected(c, v, "an object with the keys event, mute_event and defaults");
        return;
    }
    check_keys(c, v, KEYS("event", "mute_event", "defaults"));
    json_t *ev = json_object_get(v, "event"), *mu = json_object_get(v, "mute_event"),
           *d = json_object_get(v, "defaults");
    if (ev)
        AT(c, "event",
           compile_consent_event(c, ev, "granted", p->consent_event, &p->consent_channel,
                                 &p->consent_granted));
    if (mu)
        AT(c, "mute_event",
           compile_consent_event(c, mu, "muted", p->mute_event, &p->mute_channel, &p->mute_muted));
    if (d == NULL) return;
    size_t at = enter_key(c, "defaults");
    if (!json_is_array(d) || json_array_size(d) == 0 || json_array_size(d) > CONSENT_RULES_MAX) {
        expected(c, d, "a list of 1 to 8 {\"regions\": [...], \"mode\": \"opt_in\"|\"opt_out\"}");
        leave(c, at);
        return;
    }
    p->n_consent_rules = 0;
    size_t i;
    json_t *e;
    json_array_foreach(d, i, e)
    {
        size_t at_i = enter_index(c, i);
        if (compile_consent_rule(c, e, &p->consent_rules[p->n_consent_rules])) p->n_consent_rules++;
        leave(c, at_i);
    }
    leave(c, at);
}

static void compile_variants(cc *c, json_t *vars, experiment *x)
{
    if (!json_is_object(vars) || json_object_size(vars) == 0 ||
        json_object_size(vars) > VARIANTS_MAX) {
        expected(c, vars, "an object of 1 to 8 variant names and their weights");
        return;
    }
    const char *name;
    json_t *w;
    uint64_t sum = 0;
    json_object_foreach(vars, name, w)
    {
        size_t at = enter_key(c, name);
        if (strlen(name) == 0 || strlen(name) > NAME_MAX_BYTES)
            fail(c, "a variant name is 1 to %d characters", NAME_MAX_BYTES);
        else if (!json_is_number(w) || json_number_value(w) < 0.001 ||
                 json_number_value(w) > 1000000)
            expected(c, w, "a weight from 0.001 to 1000000");
        else {
            snprintf(x->variants[x->n_variants], sizeof x->variants[0], "%s", name);
            sum += (uint64_t)(json_number_value(w) * 1000 + 0.5);
            x->cum[x->n_variants++] = sum;
        }
        leave(c, at);
    }
}

/* One experiment; true when it compiled. */
static bool compile_experiment(cc *c, json_t *e, experiment *x)
{
    memset(x, 0, sizeof *x); /* the slot of an experiment that did not compile, maybe */
    if (!json_is_object(e)) {
        expected(c, e, "an experiment: an object with a name and variants");
        return false;
    }
    size_t before = c->errors;
    check_keys(c, e, KEYS("name", "machines", "triggers", "classes", "holdout", "variants"));
    AT(c, "name",
       get_name(c, json_object_get(e, "name"), x->name, sizeof x->name, "an experiment name"));
    compile_scope(c, e, &x->sc);
    json_t *h = json_object_get(e, "holdout");
    if (h && (!json_is_number(h) || json_number_value(h) < 0 || json_number_value(h) > 1))
        AT(c, "holdout", expected(c, h, "a share from 0 to 1"));
    else
        x->holdout_bp = h ? (uint32_t)(json_number_value(h) * 10000 + 0.5) : 0;
    AT(c, "variants", compile_variants(c, json_object_get(e, "variants"), x));
    return c->errors == before;
}

static void compile_experiments(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    if (v == NULL) return;
    if (!json_is_array(v) || json_array_size(v) > EXPERIMENTS_MAX) {
        expected(c, v, "a list of at most 16 experiments");
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t at = enter_index(c, i);
        if (compile_experiment(c, e, &p->exps[p->n_exps])) p->n_exps++;
        leave(c, at);
    }
}

static void compile_erasure(cc *c, json_t *v)
{
    if (!json_is_object(v)) {
        expected(c, v, "an object with the key event");
        return;
    }
    check_keys(c, v, KEYS("event"));
    AT(c, "event",
       get_name(c, json_object_get(v, "event"), c->p->erase_event, sizeof c->p->erase_event,
                "an event type"));
}

/* Every zone name must be real: checked now, not at 3 a.m. */
static void check_zones(cc *c, cue_tz *tz)
{
    cue_policy *p = c->p;
    int zone;
    snprintf(c->path, sizeof c->path, "$.timezone.default");
    if (cue_tz_find(tz, p->default_zone, strlen(p->default_zone), &zone, NULL) != 0)
        fail(c, "unknown time zone '%s'", p->default_zone);
    for (int i = 0; i < p->n_region_zones; i++) {
        snprintf(c->path, sizeof c->path, "$.timezone.regions.%s", p->region_zones[i].region);
        const char *z = p->region_zones[i].zone;
        if (cue_tz_find(tz, z, strlen(z), &zone, NULL) != 0) fail(c, "unknown time zone '%s'", z);
    }
}

/* ---- the file ---------------------------------------------------------- */

/* Compiles `root` into `p`, every error into `c`. */
static void compile_root(cc *c, json_t *root, cue_tz *tz)
{
    if (!json_is_object(root)) {
        expected(c, root, "a JSON object (the policy file)");
        return;
    }
    check_keys(c, root,
               KEYS("version", "classes", "defaults", "machines", "timezone", "quiet_hours", "caps",
                    "consent", "experiments", "erasure", "$schema", "description"));
    json_t *v = json_object_get(root, "version");
    if (v && !(json_is_integer(v) && json_integer_value(v) == 1))
        AT(c, "version", expected(c, v, "1 (the only version of this format)"));
#define SECTION(name, call)                                                                        \
    do {                                                                                           \
        snprintf(c->path, sizeof c->path, "$.%s", name);                                           \
        call;                                                                                      \
    } while (0)
    SECTION("classes", compile_classes(c, json_object_get(root, "classes")));
    compile_rules(c, json_object_get(root, "defaults"), json_object_get(root, "machines"));
    SECTION("timezone", compile_zones(c, json_object_get(root, "timezone")));
    SECTION("quiet_hours", compile_quiet(c, json_object_get(root, "quiet_hours")));
    SECTION("caps", compile_caps(c, json_object_get(root, "caps")));
    SECTION("consent", compile_consent(c, json_object_get(root, "consent")));
    SECTION("experiments", compile_experiments(c, json_object_get(root, "experiments")));
    if ((v = json_object_get(root, "erasure")) != NULL) SECTION("erasure", compile_erasure(c, v));
#undef SECTION
    check_zones(c, tz);
}

/* Reads and compiles the file at `path`, or `len` bytes of `text` when it
 * is not NULL (`path` then names it). Returns how many errors it has
 * (the first CUE_POLICY_ERRORS_MAX in `d`), with `*out` the policy when none,
 * or SIZE_MAX when it could not be read or parsed, or memory ran out (`err`
 * says why, in the parser's "FILE:LINE:COL: ..." for bad JSON). */
static size_t compile(const char *path, const char *text, size_t len, const cue_machines *ms,
                      cue_diags *d, cue_policy **out, cue_err *err)
{
    json_error_t je;
    json_t *root = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)
                        : json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        cue_diags_add(d, CUE_DIAG_ERROR, "policy", "$", "not JSON: line %d, column %d: %s", je.line,
                      je.column, je.text);
        cue_err_set(err, CUE_ECONFIG, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return SIZE_MAX;
    }
    cue_policy *p = calloc(1, sizeof *p);
    cue_tz *tz = NULL;
    int rc = p ? cue_tz_new(&tz, TZ_ZONES_MAX, err) : cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (rc != 0) {
        free(p);
        json_decref(root);
        return SIZE_MAX;
    }
    p->ms = ms;
    cc c = {.p = p, .d = d, .path = "$"};
    compile_root(&c, root, tz);
    cue_tz_free(tz);
    json_decref(root);
    if (c.errors == 0)
        *out = p;
    else
        free(p);
    return c.errors;
}

static int load(cue_policy **out, const char *path, const char *text, size_t text_len,
                const cue_machines *ms, cue_err *err)
{
    cue_diags d;
    cue_diags_init(&d);
    size_t errors = compile(path, text, text_len, ms, &d, out, err);
    if (errors == SIZE_MAX) {
        cue_diags_deinit(&d);
        return err && err->code ? err->code : CUE_ECONFIG;
    }
    if (errors == 0) {
        cue_diags_deinit(&d);
        return 0;
    }
    /* One line: as many errors as fit, then how many more. The first is
     * always there, if cut short. */
    char msg[CUE_ERR_MSG_MAX];
    const size_t room = sizeof msg - 80; /* for the tail */
    size_t len = 0, shown = 0;
    if (errors > 1) len = (size_t)snprintf(msg, room, "%zu errors: ", errors);
    for (size_t i = 0; i < d.n && len < room; i++) {
        int n = snprintf(msg + len, room - len, "%s%s: %s", i ? "; " : "", d.items[i].path,
                         d.items[i].msg);
        if (i > 0 && len + (size_t)n >= room) {
            msg[len] = '\0';
            break;
        }
        len = len + (size_t)n < room ? len + (size_t)n : room - 1;
        shown++;
    }
    if (shown < errors)
        snprintf(msg + len, sizeof msg - len,
                 "; and %zu more (cuepoint check --policies lists them)", errors - shown);
    cue_diags_deinit(&d);
    return cue_err_set(err, CUE_ECONFIG, "%s: %s", path, msg);
}

int cue_policy_load(cue_policy **out, const char *path, const cue_machines *ms, cue_err *err)
{
    return load(out, path, NULL, 0, ms, err);
}

int cue_policy_load_text(cue_policy **out, const char *name, const char *text, size_t len,
                         const cue_machines *ms, cue_err *err)
{
    return load(out, name, text, len, ms, err);
}

size_t cue_policy_check(const char *path, const cue_machines *ms, cue_diags *d)
{
    cue_policy *p = NULL;
    cue_err err = {0};
    size_t errors = compile(path, NULL, 0, ms, d, &p, &err);
    cue_policy_free(p);
    if (errors != SIZE_MAX) return errors;
    if (err.code != CUE_ECONFIG) cue_diags_add(d, CUE_DIAG_ERROR, "policy", "$", "%s", err.msg);
    return 1;
}
