/* The policy compiler: the policy file, checked against the journeys, into
 * the tables policy.c decides with. */
#include "policy_int.h"

#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cc {
    cue_policy *p;
    const char *file;
    cue_err *err;
    char path[256];
} cc;

static int fail(cc *c, const char *fmt, const char *what)
{
    char msg[CUE_ERR_MSG_MAX]; /* any message may be quoted whole */
    snprintf(msg, sizeof msg, fmt, what);
    return cue_err_set(c->err, CUE_ECONFIG, "%s: %s: %s", c->file, c->path, msg);
}

/* Sets the JSON path for messages; `saved` restores it. */
static void path_push(cc *c, const char *fmt, const char *key, int idx, size_t *saved)
{
    *saved = strlen(c->path);
    size_t n = *saved;
    if (key)
        snprintf(c->path + n, sizeof c->path - n, fmt, key);
    else
        snprintf(c->path + n, sizeof c->path - n, fmt, idx);
}

static void path_pop(cc *c, size_t saved)
{
    c->path[saved] = '\0';
}

/* Unknown keys are errors: a misspelt one must not silently widen a rule. */
static int check_keys(cc *c, json_t *o, const char *const *keys, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n; i++)
            ok |= strcmp(key, keys[i]) == 0;
        if (!ok) return fail(c, "unknown key '%s'", key);
    }
    return 0;
}
#define CHECK_KEYS(c, o, ...)                                                                      \
    check_keys(c, o, (const char *const[]){__VA_ARGS__},                                           \
               sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static int get_string(cc *c, json_t *v, char *out, size_t cap, const char *what)
{
    if (!json_is_string(v)) return fail(c, "%s must be a string", what);
    if (json_string_length(v) == 0 || json_string_length(v) >= cap)
        return fail(c, "%s must be 1 to 64 characters", what);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_duration(cc *c, json_t *v, int64_t *ms)
{
    if (!json_is_string(v) ||
        cue_duration_parse(json_string_value(v), json_string_length(v), ms) != 0 || *ms <= 0)
        return fail(c, "%s", "expected a positive duration such as \"30m\", \"24h\" or \"7d\"");
    return 0;
}

static int get_clock(cc *c, json_t *v, int *min)
{
    int h, m;
    char tail;
    if (!json_is_string(v) || sscanf(json_string_value(v), "%2d:%2d%c", &h, &m, &tail) != 2 ||
        h < 0 || h > 23 || m < 0 || m > 59)
        return fail(c, "%s", "expected a local time of day \"HH:MM\"");
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
    if (!json_is_string(v)) return fail(c, "%s", "a class name (a string)");
    int k = find_class(c->p, json_string_value(v));
    if (k < 0) return fail(c, "unknown class '%s' (see $.classes)", json_string_value(v));
    *out = (uint8_t)k;
    return 0;
}

static int get_channels(cc *c, json_t *v, trig_rule *r)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > CUE_CHANNELS_MAX)
        return fail(c, "%s", "a list of 1 to 4 channels (push, email, in_app, sms)");
    r->n_channels = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        int ch = json_is_string(e)
                     ? cue_policy_channel_find(json_string_value(e), json_string_length(e))
                     : -1;
        if (ch < 0) return fail(c, "%s", "channels are push, email, in_app and sms");
        r->channels[r->n_channels++] = (uint8_t)ch;
    }
    return 0;
}

/* class, channels, max_age, late: into `r`, over what it holds already. */
static int get_rule(cc *c, json_t *o, trig_rule *r, bool allow_triggers)
{
    const char *key;
    json_t *v;
    int rc = 0;
    if (!json_is_object(o)) return fail(c, "%s", "expected an object");
    json_object_foreach(o, key, v)
    {
        size_t saved;
        path_push(c, ".%s", key, 0, &saved);
        if (strcmp(key, "class") == 0)
            rc = get_class(c, v, &r->cls);
        else if (strcmp(key, "channels") == 0)
            rc = get_channels(c, v, r);
        else if (strcmp(key, "max_age") == 0)
            rc = json_is_null(v) ? (r->max_age_ms = INT64_MAX, 0)
                                 : get_duration(c, v, &r->max_age_ms);
        else if (strcmp(key, "late") == 0) {
            const char *s = json_is_string(v) ? json_string_value(v) : "";
            r->late = strcmp(s, "send") == 0   ? LATE_SEND
                      : strcmp(s, "mark") == 0 ? LATE_MARK
                      : strcmp(s, "drop") == 0 ? LATE_DROP
                                               : 0xff;
            if (r->late == 0xff) rc = fail(c, "%s", "late is \"send\", \"mark\" or \"drop\"");
        } else if (!(allow_triggers && strcmp(key, "triggers") == 0))
            rc = fail(c, "unknown key '%s' (class, channels, max_age, late)", key);
        path_pop(c, saved);
        if (rc) return rc;
    }
    return 0;
}

static int compile_classes(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    if (v == NULL) { /* the default three */
        static const char *const names[] = {"transactional", "lifecycle", "promotional"};
        for (int i = 0; i < 3; i++)
            snprintf(p->classes[i], sizeof p->classes[i], "%s", names[i]);
        p->bypass[0] = true;
        p->n_classes = 3;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > CLASSES_MAX)
        return fail(c, "%s", "a list of 1 to 8 classes, highest priority first");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t saved;
        path_push(c, "[%d]", NULL, (int)i, &saved);
        json_t *name = json_is_object(e) ? json_object_get(e, "name") : e;
        int rc = json_is_object(e) ? CHECK_KEYS(c, e, "name", "bypass") : 0;
        if (rc == 0) rc = get_string(c, name, p->classes[i], sizeof p->classes[i], "a class");
        if (rc == 0 && find_class(p, p->classes[i]) >= 0)
            rc = fail(c, "class '%s' twice", p->classes[i]);
        json_t *b = json_is_object(e) ? json_object_get(e, "bypass") : NULL;
        p->bypass[i] = b ? json_is_true(b) : strcmp(p->classes[i], "transactional") == 0;
        path_pop(c, saved);
        if (rc) return rc;
        p->n_classes = (uint8_t)(i + 1);
    }
    return 0;
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

/* Whether a machine of the set, or one set aside, emits `name`. */
static bool emitted(const cue_machines *ms, const char *name)
{
    for (size_t m = 0; m < cue_machines_count(ms); m++)
        if (trigger_index(cue_machines_get(ms, m), name) >= 0) return true;
    for (size_t m = 0; m < cue_machines_set_aside(ms); m++)
        if (trigger_index(cue_machines_get_set_aside(ms, m), name) >= 0) return true;
    return false;
}

static int compile_rules(cc *c, json_t *defaults, json_t *machines)
{
    cue_policy *p = c->p;
    trig_rule base = {.cls = (uint8_t)(find_class(p, "lifecycle") >= 0 ? find_class(p, "lifecycle")
                                                                       : p->n_classes - 1),
                      .channels = {CUE_CH_PUSH},
                      .n_channels = 1,
                      .max_age_ms = INT64_MAX,
                      .late = LATE_SEND};
    snprintf(c->path, sizeof c->path, "$.defaults");
    if (defaults && get_rule(c, defaults, &base, false) != 0) return CUE_ECONFIG;
    size_t nm = cue_machines_count(p->ms);
    for (size_t m = 0; m < nm; m++)
        for (int t = 0; t < CUE_MACHINE_TRIGGERS_MAX; t++)
            p->rules[m][t] = base;
    if (machines == NULL) return 0;
    snprintf(c->path, sizeof c->path, "$.machines");
    if (!json_is_object(machines)) return fail(c, "%s", "an object of machine names");
    const char *mname;
    json_t *mo;
    json_object_foreach(machines, mname, mo)
    {
        snprintf(c->path, sizeof c->path, "$.machines.%s", mname);
        int mi;
        const cue_machine *m = machine_named(p->ms, mname, &mi);
        if (m == NULL) return fail(c, "no machine '%s' in machines.dir", mname);
        trig_rule mr = base;
        if (get_rule(c, mo, &mr, true) != 0) return CUE_ECONFIG;
        for (int t = 0; mi >= 0 && t < CUE_MACHINE_TRIGGERS_MAX; t++)
            p->rules[mi][t] = mr;
        json_t *trs = json_object_get(mo, "triggers");
        if (trs == NULL) continue;
        const char *tname;
        json_t *to;
        json_object_foreach(trs, tname, to)
        {
            snprintf(c->path, sizeof c->path, "$.machines.%s.triggers.%s", mname, tname);
            int ti = trigger_index(m, tname);
            if (ti < 0) return fail(c, "machine has no trigger '%s'", tname);
            trig_rule tr = mr;
            if (get_rule(c, to, &tr, false) != 0) return CUE_ECONFIG;
            if (mi >= 0) p->rules[mi][ti] = tr;
        }
    }
    return 0;
}

/* machines, triggers, classes: which triggers a cap or experiment covers. */
static int compile_scope(cc *c, json_t *o, scope *sc)
{
    memset(sc, 0, sizeof *sc);
    json_t *v;
    size_t i;
    json_t *e;
    if ((v = json_object_get(o, "machines")) != NULL) {
        if (!json_is_array(v) || json_array_size(v) > SCOPE_MAX)
            return fail(c, "%s", "machines: a list of machine names");
        json_array_foreach(v, i, e)
        {
            int mi;
            if (!json_is_string(e) || machine_named(c->p->ms, json_string_value(e), &mi) == NULL)
                return fail(c, "machines: no machine '%s'",
                            json_is_string(e) ? json_string_value(e) : "?");
            sc->machines[sc->n_machines++] =
                cue_hash32(json_string_value(e), json_string_length(e));
        }
    }
    if ((v = json_object_get(o, "triggers")) != NULL) {
        if (!json_is_array(v) || json_array_size(v) > SCOPE_MAX)
            return fail(c, "%s", "triggers: a list of trigger names");
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) || !emitted(c->p->ms, json_string_value(e)))
                return fail(c, "triggers: no machine emits '%s'",
                            json_is_string(e) ? json_string_value(e) : "?");
            sc->triggers[sc->n_triggers++] =
                cue_hash32(json_string_value(e), json_string_length(e));
        }
    }
    if ((v = json_object_get(o, "classes")) != NULL) {
        if (!json_is_array(v)) return fail(c, "%s", "classes: a list of class names");
        json_array_foreach(v, i, e)
        {
            uint8_t k;
            if (get_class(c, e, &k) != 0) return CUE_ECONFIG;
            sc->classes |= (uint16_t)(1u << k);
        }
    }
    return 0;
}

static int compile_caps(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    if (v == NULL) return 0;
    if (!json_is_array(v) || json_array_size(v) > CAPS_MAX)
        return fail(c, "%s", "a list of at most 32 caps");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t saved;
        path_push(c, "[%d]", NULL, (int)i, &saved);
        cap_rule *k = &p->caps[i];
        int rc = json_is_object(e) ? 0 : fail(c, "%s", "a cap is an object");
        if (rc == 0)
            rc = get_string(c, json_object_get(e, "name"), k->name, sizeof k->name, "name");
        json_t *w = json_object_get(e, "window"), *cal = json_object_get(e, "calendar"),
               *cool = json_object_get(e, "cooldown"), *max = json_object_get(e, "max"),
               *on = json_object_get(e, "on_cap");
        if (rc == 0 && (w != NULL) + (cal != NULL) + (cool != NULL) != 1)
            rc = fail(c, "%s", "give exactly one of window, calendar (\"day\") or cooldown");
        if (rc == 0 && w) {
            k->kind = CAP_ROLLING;
            rc = get_duration(c, w, &k->window_ms);
        } else if (rc == 0 && cal) {
            k->kind = CAP_DAY;
            if (!json_is_string(cal) || strcmp(json_string_value(cal), "day") != 0)
                rc = fail(c, "%s", "calendar windows are \"day\" (the user's local day)");
        } else if (rc == 0) {
            k->kind = CAP_COOLDOWN;
            rc = get_duration(c, cool, &k->window_ms);
        }
        if (rc == 0 && k->kind != CAP_COOLDOWN) {
            if (!json_is_integer(max) || json_integer_value(max) < 0 ||
                json_integer_value(max) > CUE_POLICY_SENDS_MAX)
                rc =
                    fail(c, "%s", "max: a whole number 0..32 (the sends a user's state remembers)");
            else
                k->max = (int)json_integer_value(max);
        }
        if (rc == 0 && on) {
            const char *s = json_is_string(on) ? json_string_value(on) : "";
            if (strcmp(s, "defer") != 0 && strcmp(s, "drop") != 0)
                rc = fail(c, "%s", "on_cap is \"drop\" or \"defer\"");
            k->defer = strcmp(s, "defer") == 0;
        }
        if (rc == 0) rc = compile_scope(c, e, &k->sc);
        const char *key;
        json_t *x;
        json_object_foreach(e, key, x)
        {
            static const char *const keys[] = {"name",   "window",   "calendar", "cooldown", "max",
                                               "on_cap", "machines", "triggers", "classes"};
            bool ok = false;
            for (size_t j = 0; j < sizeof keys / sizeof *keys; j++)
                ok |= strcmp(key, keys[j]) == 0;
            if (rc == 0 && !ok) rc = fail(c, "unknown key '%s'", key);
        }
        path_pop(c, saved);
        if (rc) return rc;
        p->n_caps = (uint8_t)(i + 1);
    }
    return 0;
}

static int compile_zones(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    snprintf(p->default_zone, sizeof p->default_zone, "UTC");
    if (v == NULL) return 0;
    if (!json_is_object(v)) return fail(c, "%s", "an object: default, regions");
    if (CHECK_KEYS(c, v, "default", "regions") != 0) return CUE_ECONFIG;
    json_t *d = json_object_get(v, "default");
    size_t saved;
    path_push(c, ".%s", "default", 0, &saved);
    if (d && get_string(c, d, p->default_zone, sizeof p->default_zone, "a zone name") != 0)
        return CUE_ECONFIG;
    path_pop(c, saved);
    json_t *r = json_object_get(v, "regions");
    if (r == NULL) return 0;
    path_push(c, ".%s", "regions", 0, &saved);
    if (!json_is_object(r) || json_object_size(r) > REGIONS_MAX)
        return fail(c, "%s", "an object of region: zone name");
    const char *region;
    json_t *z;
    json_object_foreach(r, region, z)
    {
        region_zone *rz = &p->region_zones[p->n_region_zones++];
        snprintf(rz->region, sizeof rz->region, "%s", region);
        if (get_string(c, z, rz->zone, sizeof rz->zone, "a zone name") != 0) return CUE_ECONFIG;
    }
    path_pop(c, saved);
    return 0;
}

static int compile_quiet(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    if (v == NULL) return 0;
    size_t saved;
    if (!json_is_object(v)) return fail(c, "%s", "an object: start, end, spread");
    if (CHECK_KEYS(c, v, "start", "end", "spread") != 0) return CUE_ECONFIG;
    path_push(c, ".%s", "start", 0, &saved);
    if (get_clock(c, json_object_get(v, "start"), &p->quiet_start) != 0) return CUE_ECONFIG;
    path_pop(c, saved);
    path_push(c, ".%s", "end", 0, &saved);
    if (get_clock(c, json_object_get(v, "end"), &p->quiet_end) != 0) return CUE_ECONFIG;
    path_pop(c, saved);
    json_t *s = json_object_get(v, "spread");
    path_push(c, ".%s", "spread", 0, &saved);
    if (s && get_duration(c, s, &p->spread_ms) != 0) return CUE_ECONFIG;
    path_pop(c, saved);
    p->quiet = p->quiet_start != p->quiet_end;
    /* The spread must end before the next window opens, or a trigger would
     * be deferred into it, and again, every night. */
    int64_t open_ms = (int64_t)((p->quiet_start - p->quiet_end + 1440) % 1440) * 60000;
    if (p->quiet && p->spread_ms >= open_ms)
        return fail(c, "%s",
                    "spread must be shorter than the time between the end and the next start");
    return 0;
}

static int compile_ptr(cc *c, json_t *o, const char *key, cue_json_ptr *out)
{
    json_t *v = json_object_get(o, key);
    size_t saved;
    path_push(c, ".%s", key, 0, &saved);
    cue_err e = {0};
    if (!json_is_string(v) || cue_json_ptr_compile(out, json_string_value(v), &e) != 0)
        return fail(c, "%s",
                    json_is_string(v) ? e.msg : "a JSON Pointer such as \"/props/channel\"");
    path_pop(c, saved);
    return 0;
}

static int compile_consent(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    /* With no consent section every channel is open: the default rule is
     * opt-out everywhere. */
    p->consent_rules[0].any = true;
    p->n_consent_rules = 1;
    if (v == NULL) return 0;
    if (!json_is_object(v)) return fail(c, "%s", "an object: event, mute_event, defaults");
    if (CHECK_KEYS(c, v, "event", "mute_event", "defaults") != 0) return CUE_ECONFIG;
    size_t saved;
    json_t *ev = json_object_get(v, "event");
    if (ev) {
        path_push(c, ".%s", "event", 0, &saved);
        int rc = json_is_object(ev) ? CHECK_KEYS(c, ev, "type", "channel", "granted")
                                    : fail(c, "%s", "an object: type, channel, granted");
        if (rc == 0)
            rc = get_string(c, json_object_get(ev, "type"), p->consent_event,
                            sizeof p->consent_event, "type");
        if (rc == 0) rc = compile_ptr(c, ev, "channel", &p->consent_channel);
        if (rc == 0) rc = compile_ptr(c, ev, "granted", &p->consent_granted);
        if (rc) return rc;
        path_pop(c, saved);
    }
    json_t *mu = json_object_get(v, "mute_event");
    if (mu) {
        path_push(c, ".%s", "mute_event", 0, &saved);
        int rc = json_is_object(mu) ? CHECK_KEYS(c, mu, "type", "channel", "muted")
                                    : fail(c, "%s", "an object: type, channel, muted");
        if (rc == 0)
            rc = get_string(c, json_object_get(mu, "type"), p->mute_event, sizeof p->mute_event,
                            "type");
        if (rc == 0) rc = compile_ptr(c, mu, "channel", &p->mute_channel);
        if (rc == 0) rc = compile_ptr(c, mu, "muted", &p->mute_muted);
        if (rc) return rc;
        path_pop(c, saved);
    }
    json_t *d = json_object_get(v, "defaults");
    if (d == NULL) return 0;
    path_push(c, ".%s", "defaults", 0, &saved);
    if (!json_is_array(d) || json_array_size(d) == 0 || json_array_size(d) > CONSENT_RULES_MAX)
        return fail(c, "%s", "a list of {\"regions\": [...], \"mode\": \"opt_in\"|\"opt_out\"}");
    p->n_consent_rules = 0;
    size_t i;
    json_t *e;
    json_array_foreach(d, i, e)
    {
        consent_rule *r = &p->consent_rules[p->n_consent_rules++];
        memset(r, 0, sizeof *r);
        if (!json_is_object(e)) return fail(c, "%s", "each default is an object");
        if (CHECK_KEYS(c, e, "regions", "mode") != 0) return CUE_ECONFIG;
        json_t *regs = json_object_get(e, "regions"), *mode = json_object_get(e, "mode");
        const char *ms = json_is_string(mode) ? json_string_value(mode) : "";
        if (strcmp(ms, "opt_in") != 0 && strcmp(ms, "opt_out") != 0)
            return fail(c, "%s", "each default has a mode: \"opt_in\" or \"opt_out\"");
        r->opt_in = strcmp(ms, "opt_in") == 0;
        if (!json_is_array(regs) || json_array_size(regs) > REGIONS_MAX)
            return fail(c, "%s", "each default has regions: a list of region codes, or [\"*\"]");
        size_t j;
        json_t *x;
        json_array_foreach(regs, j, x)
        {
            if (!json_is_string(x) || json_string_length(x) >= sizeof r->regions[0])
                return fail(c, "%s", "a region code is a short string");
            if (strcmp(json_string_value(x), "*") == 0) r->any = true;
            snprintf(r->regions[r->n_regions++], sizeof r->regions[0], "%s", json_string_value(x));
        }
    }
    path_pop(c, saved);
    return 0;
}

static int compile_experiments(cc *c, json_t *v)
{
    cue_policy *p = c->p;
    if (v == NULL) return 0;
    if (!json_is_array(v) || json_array_size(v) > EXPERIMENTS_MAX)
        return fail(c, "%s", "a list of at most 16 experiments");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        size_t saved;
        path_push(c, "[%d]", NULL, (int)i, &saved);
        experiment *x = &p->exps[i];
        int rc = json_is_object(e) ? CHECK_KEYS(c, e, "name", "machines", "triggers", "classes",
                                                "holdout", "variants")
                                   : fail(c, "%s", "an experiment is an object");
        if (rc == 0)
            rc = get_string(c, json_object_get(e, "name"), x->name, sizeof x->name, "name");
        if (rc == 0) rc = compile_scope(c, e, &x->sc);
        json_t *h = json_object_get(e, "holdout");
        if (rc == 0 && h &&
            (!json_is_number(h) || json_number_value(h) < 0 || json_number_value(h) > 1))
            rc = fail(c, "%s", "holdout: a share between 0 and 1");
        x->holdout_bp = h ? (uint32_t)(json_number_value(h) * 10000 + 0.5) : 0;
        json_t *vars = json_object_get(e, "variants");
        if (rc == 0 && (!json_is_object(vars) || json_object_size(vars) == 0 ||
                        json_object_size(vars) > VARIANTS_MAX))
            rc = fail(c, "%s", "variants: an object of 1 to 8 name: weight");
        const char *vn;
        json_t *w;
        uint64_t sum = 0;
        if (rc == 0) json_object_foreach(vars, vn, w)
            {
                if (rc == 0 && (!json_is_number(w) || json_number_value(w) < 0.001 ||
                                json_number_value(w) > 1000000))
                    rc = fail(c, "variant '%s': a weight from 0.001 to 1000000", vn);
                if (rc == 0 && strlen(vn) > NAME_MAX_BYTES)
                    rc = fail(c, "variant '%s': name too long", vn);
                if (rc) break;
                snprintf(x->variants[x->n_variants], sizeof x->variants[0], "%s", vn);
                sum += (uint64_t)(json_number_value(w) * 1000 + 0.5);
                x->cum[x->n_variants++] = sum;
            }
        path_pop(c, saved);
        if (rc) return rc;
        p->n_exps = (uint8_t)(i + 1);
    }
    return 0;
}

int cue_policy_load(cue_policy **out, const char *path, const cue_machines *ms, cue_err *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    cue_policy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        json_decref(root);
        return cue_err_set(err, CUE_ENOMEM, "out of memory");
    }
    p->ms = ms;
    cc c = {.p = p, .file = path, .err = err, .path = "$"};
    int rc = json_is_object(root) ? 0 : fail(&c, "%s", "the policy file is a JSON object");
    static const char *const keys[] = {"version",     "classes",     "defaults", "machines",
                                       "timezone",    "quiet_hours", "caps",     "consent",
                                       "experiments", "erasure",     "$schema",  "description"};
    const char *key;
    json_t *v;
    if (rc == 0) json_object_foreach(root, key, v)
        {
            bool ok = false;
            for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
                ok |= strcmp(key, keys[i]) == 0;
            if (!ok) {
                rc = fail(&c, "unknown key '%s'", key);
                break;
            }
        }
#define SECTION(name, call)                                                                        \
    if (rc == 0) {                                                                                 \
        snprintf(c.path, sizeof c.path, "$.%s", name);                                             \
        rc = call;                                                                                 \
    }
    SECTION("classes", compile_classes(&c, json_object_get(root, "classes")));
    if (rc == 0)
        rc =
            compile_rules(&c, json_object_get(root, "defaults"), json_object_get(root, "machines"));
    SECTION("timezone", compile_zones(&c, json_object_get(root, "timezone")));
    SECTION("quiet_hours", compile_quiet(&c, json_object_get(root, "quiet_hours")));
    SECTION("caps", compile_caps(&c, json_object_get(root, "caps")));
    SECTION("consent", compile_consent(&c, json_object_get(root, "consent")));
    SECTION("experiments", compile_experiments(&c, json_object_get(root, "experiments")));
#undef SECTION
    json_t *er = json_object_get(root, "erasure");
    if (rc == 0 && er) {
        snprintf(c.path, sizeof c.path, "$.erasure");
        rc = json_is_object(er) ? CHECK_KEYS(&c, er, "event") : fail(&c, "%s", "an object: event");
    }
    if (rc == 0 && er) {
        snprintf(c.path, sizeof c.path, "$.erasure.event");
        rc = get_string(&c, json_object_get(er, "event"), p->erase_event, sizeof p->erase_event,
                        "an event type");
    }
    /* Every zone name must be real: checked now, not at 3 a.m. */
    if (rc == 0) {
        cue_tz *tz = NULL;
        rc = cue_tz_new(&tz, TZ_ZONES_MAX, err);
        int zone;
        snprintf(c.path, sizeof c.path, "$.timezone.default");
        if (rc == 0 && cue_tz_find(tz, p->default_zone, strlen(p->default_zone), &zone, NULL) != 0)
            rc = fail(&c, "unknown time zone '%s'", p->default_zone);
        for (int i = 0; rc == 0 && i < p->n_region_zones; i++) {
            snprintf(c.path, sizeof c.path, "$.timezone.regions.%s", p->region_zones[i].region);
            const char *z = p->region_zones[i].zone;
            if (cue_tz_find(tz, z, strlen(z), &zone, NULL) != 0)
                rc = fail(&c, "unknown time zone '%s'", z);
        }
        cue_tz_free(tz);
    }
    json_decref(root);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}
