/* The policy stage: compiling the policy file, and deciding each trigger. */
#include "cuepoint/policy.h"

#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"
#include "cuepoint/tz.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLASSES_MAX       8
#define CAPS_MAX          32
#define EXPERIMENTS_MAX   16
#define VARIANTS_MAX      8
#define SCOPE_MAX         32
#define REGIONS_MAX       128
#define CONSENT_RULES_MAX 8
#define NAME_MAX_BYTES    64
/* Zones one task may meet (more than tzdata has); past that, users fall back
 * to their region's or the default zone. */
#define TZ_ZONES_MAX CUE_TZ_ZONES_MAX

typedef struct scope {
    uint32_t machines[SCOPE_MAX], triggers[SCOPE_MAX]; /* name hashes */
    uint8_t n_machines, n_triggers;
    uint16_t classes; /* bit per class; 0 with no other list: everything */
} scope;

typedef enum { CAP_ROLLING, CAP_DAY, CAP_COOLDOWN } cap_kind;

typedef struct cap_rule {
    char name[NAME_MAX_BYTES + 1];
    cap_kind kind;
    int64_t window_ms; /* ROLLING, COOLDOWN */
    int max;           /* ROLLING, DAY */
    bool defer;        /* on_cap: defer, else drop */
    scope sc;
} cap_rule;

typedef struct trig_rule {
    uint8_t cls;
    uint8_t channels[CUE_CHANNELS_MAX];
    uint8_t n_channels;
    int64_t max_age_ms; /* INT64_MAX: none */
    uint8_t late;       /* LATE_* */
} trig_rule;

enum { LATE_SEND = 0, LATE_MARK, LATE_DROP };

typedef struct experiment {
    char name[NAME_MAX_BYTES + 1];
    scope sc;
    uint32_t holdout_bp; /* basis points of 10000 */
    char variants[VARIANTS_MAX][NAME_MAX_BYTES + 1];
    uint64_t cum[VARIANTS_MAX]; /* cumulative weights, in thousandths */
    uint8_t n_variants;
} experiment;

typedef struct region_zone {
    char region[NAME_MAX_BYTES + 1];
    char zone[NAME_MAX_BYTES + 1];
} region_zone;

typedef struct consent_rule {
    char regions[REGIONS_MAX][16];
    uint16_t n_regions;
    bool any;    /* "*" */
    bool opt_in; /* consent needed before sending; else sent until withdrawn */
} consent_rule;

struct cue_policy {
    const cue_machines *ms; /* borrowed */
    char classes[CLASSES_MAX][NAME_MAX_BYTES + 1];
    bool bypass[CLASSES_MAX];
    uint8_t n_classes;
    trig_rule rules[CUE_MACHINES_MAX][CUE_MACHINE_TRIGGERS_MAX];
    /* time zones */
    char default_zone[NAME_MAX_BYTES + 1];
    region_zone region_zones[REGIONS_MAX];
    uint16_t n_region_zones;
    /* quiet hours */
    bool quiet;
    int quiet_start, quiet_end; /* minutes of the local day */
    int64_t spread_ms;
    cap_rule caps[CAPS_MAX];
    uint8_t n_caps;
    /* consent */
    char consent_event[NAME_MAX_BYTES + 1], mute_event[NAME_MAX_BYTES + 1];
    cue_json_ptr consent_channel, consent_granted, mute_channel, mute_muted;
    consent_rule consent_rules[CONSENT_RULES_MAX];
    uint8_t n_consent_rules;
    experiment exps[EXPERIMENTS_MAX];
    uint8_t n_exps;
    char erase_event[NAME_MAX_BYTES + 1];
};

/* Names found not to be zones, remembered: the tz module looks an unknown
 * name up on disk every time, and a user's bad attribute comes with every
 * one of their triggers. */
#define UNKNOWN_ZONES 64

struct cue_policy_tz {
    cue_tz *tz;                      /* owned */
    uint64_t unknown[UNKNOWN_ZONES]; /* hashes of names that are not zones; 0 = free */
    unsigned next_unknown;
};

/* ---- compiling --------------------------------------------------------- */

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

static int find_channel(const char *name, size_t len)
{
    for (int i = 0; i < CUE_CHANNELS_MAX; i++)
        if (strlen(cue_channel_names[i]) == len && memcmp(cue_channel_names[i], name, len) == 0)
            return i;
    return -1;
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
        int ch = json_is_string(e) ? find_channel(json_string_value(e), json_string_length(e)) : -1;
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
        int mi = machine_index(p->ms, mname);
        if (mi < 0) return fail(c, "no machine '%s' in machines.dir", mname);
        const cue_machine *m = cue_machines_get(p->ms, (size_t)mi);
        trig_rule mr = base;
        if (get_rule(c, mo, &mr, true) != 0) return CUE_ECONFIG;
        for (int t = 0; t < CUE_MACHINE_TRIGGERS_MAX; t++)
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
            p->rules[mi][ti] = tr;
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
            if (!json_is_string(e) || machine_index(c->p->ms, json_string_value(e)) < 0)
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
            bool known = false;
            for (size_t m = 0; json_is_string(e) && m < cue_machines_count(c->p->ms); m++)
                known |= trigger_index(cue_machines_get(c->p->ms, m), json_string_value(e)) >= 0;
            if (!known)
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

static bool in_scope(const scope *sc, uint32_t machine, uint32_t trigger, uint8_t cls)
{
    if (sc->n_machines) {
        bool hit = false;
        for (int i = 0; i < sc->n_machines; i++)
            hit |= sc->machines[i] == machine;
        if (!hit) return false;
    }
    if (sc->n_triggers) {
        bool hit = false;
        for (int i = 0; i < sc->n_triggers; i++)
            hit |= sc->triggers[i] == trigger;
        if (!hit) return false;
    }
    return sc->classes == 0 || (sc->classes & (1u << cls));
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
        /* Converted only once checked: a share out of range does not fit. */
        x->holdout_bp = rc == 0 && h ? (uint32_t)(json_number_value(h) * 10000 + 0.5) : 0;
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

/* Compiles the parsed file `root` (taken: released here); `path` names it. */
static int policy_compile(cue_policy **out, json_t *root, const char *path, const cue_machines *ms,
                          cue_err *err)
{
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

int cue_policy_load(cue_policy **out, const char *path, const cue_machines *ms, cue_err *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return policy_compile(out, root, path, ms, err);
}

int cue_policy_load_text(cue_policy **out, const char *name, const char *text, size_t len,
                         const cue_machines *ms, cue_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s:%d:%d: %s", name, je.line, je.column, je.text);
    return policy_compile(out, root, name, ms, err);
}

void cue_policy_free(cue_policy *p)
{
    free(p);
}

int cue_policy_tz_new(cue_policy_tz **out, cue_err *err)
{
    cue_policy_tz *z = calloc(1, sizeof *z);
    if (z == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    int rc = cue_tz_new(&z->tz, TZ_ZONES_MAX, err);
    if (rc != 0) {
        free(z);
        return rc;
    }
    *out = z;
    return 0;
}

void cue_policy_tz_free(cue_policy_tz *z)
{
    if (z == NULL) return;
    cue_tz_free(z->tz);
    free(z);
}

/* ---- deciding ---------------------------------------------------------- */

uint8_t cue_policy_class(const cue_policy *p, uint16_t machine, uint8_t trigger)
{
    return p->rules[machine][trigger].cls;
}

const char *cue_policy_class_name(const cue_policy *p, uint8_t cls)
{
    return cls < p->n_classes ? p->classes[cls] : "";
}

size_t cue_policy_experiments(const cue_policy *p)
{
    return p->n_exps;
}

/* A point in [0, 10000) from the user and a salt, the same everywhere. */
static uint32_t bucket(const char *user, size_t len, const char *salt, uint64_t seed)
{
    uint64_t h = cue_hash64(user, len, cue_hash64(salt, strlen(salt), seed));
    return (uint32_t)(h % 10000);
}

int cue_policy_assign(const cue_policy *p, size_t e, const char *user, size_t len)
{
    const experiment *x = &p->exps[e];
    if (bucket(user, len, x->name, 1) < x->holdout_bp) return -1;
    uint64_t total = x->cum[x->n_variants - 1];
    CUE_ASSERT(total > 0); /* each weight is at least 0.001 */
    uint64_t h = cue_hash64(user, len, cue_hash64(x->name, strlen(x->name), 2));
    uint64_t pick = h % total;
    for (int v = 0; v < x->n_variants; v++)
        if (pick < x->cum[v]) return v;
    return x->n_variants - 1;
}

int cue_policy_experiment_of(const cue_policy *p, uint16_t machine, uint8_t trigger)
{
    const cue_machine *m = cue_machines_get(p->ms, machine);
    uint8_t cls = p->rules[machine][trigger].cls;
    /* A trigger is in one experiment: the first that names it. */
    for (int e = 0; e < p->n_exps; e++)
        if (in_scope(&p->exps[e].sc, m->hash, m->triggers[trigger].hash, cls)) return e;
    return -1;
}

bool cue_policy_class_bypass(const cue_policy *p, uint8_t cls)
{
    return cls < p->n_classes && p->bypass[cls];
}

static const char *attr(const cue_user *u, cue_attr a, size_t *len)
{
    *len = u->attr_len[a];
    return u->attrs[a];
}

/* The user's zone: their attribute if it names a real zone, else their
 * region's, else the default. An unknown name is not an error here: the
 * user still gets quiet hours, in the default zone. */
static int user_zone(const cue_policy *p, cue_policy_tz *z, const cue_user *u)
{
    size_t n;
    const char *name = attr(u, CUE_ATTR_TIMEZONE, &n);
    int zone;
    if (n) {
        uint64_t h = cue_hash64(name, n, 4) | 1;
        bool known_bad = false;
        for (int i = 0; i < UNKNOWN_ZONES && !known_bad; i++)
            known_bad = z->unknown[i] == h;
        if (!known_bad) {
            if (cue_tz_find(z->tz, name, n, &zone, NULL) == 0) return zone;
            z->unknown[z->next_unknown++ % UNKNOWN_ZONES] = h;
        }
    }
    const char *region = attr(u, CUE_ATTR_REGION, &n);
    for (int i = 0; n && i < p->n_region_zones; i++) {
        const region_zone *rz = &p->region_zones[i];
        if (strlen(rz->region) == n && memcmp(rz->region, region, n) == 0 &&
            cue_tz_find(z->tz, rz->zone, strlen(rz->zone), &zone, NULL) == 0)
            return zone;
    }
    int rc = cue_tz_find(z->tz, p->default_zone, strlen(p->default_zone), &zone, NULL);
    CUE_ASSERT(rc == 0); /* checked when the policy was loaded */
    return zone;
}

static bool opt_in_region(const cue_policy *p, const cue_user *u)
{
    size_t n;
    const char *region = attr(u, CUE_ATTR_REGION, &n);
    for (int i = 0; i < p->n_consent_rules; i++) {
        const consent_rule *r = &p->consent_rules[i];
        for (int j = 0; j < r->n_regions; j++)
            if (strlen(r->regions[j]) == n && memcmp(r->regions[j], region, n) == 0)
                return r->opt_in;
        if (r->any) return r->opt_in;
    }
    return false;
}

bool cue_policy_quiet_at(const cue_policy *p, cue_policy_tz *z, const cue_user *u, int64_t ms)
{
    return p->quiet &&
           cue_tz_quiet(z->tz, user_zone(p, z, u), ms, p->quiet_start, p->quiet_end, NULL);
}

bool cue_policy_opt_in(const cue_policy *p, const cue_user *u)
{
    return opt_in_region(p, u);
}

static bool may_use(const cue_policy *p, const cue_user *u, uint8_t ch)
{
    const cue_user_policy *up = &u->policy;
    if (up->muted & (1u << ch)) return false;
    if (up->consent[ch] == CUE_CONSENT_GRANTED) return true;
    if (up->consent[ch] == CUE_CONSENT_DENIED) return false;
    return !opt_in_region(p, u);
}

static uint8_t pick_channel(const cue_policy *p, const cue_user *u, const trig_rule *r)
{
    for (int i = 0; i < r->n_channels; i++)
        if (may_use(p, u, r->channels[i])) return r->channels[i];
    return CUE_CH_NONE;
}

/* A past send's class under the current policy: classes are positions in the
 * policy file, which may be reordered, so the stored one is not trusted. */
static uint8_t class_of(const cue_policy *p, const cue_sent *s)
{
    int ti;
    int mi = cue_machines_find_trigger(p->ms, s->machine, s->trigger, &ti);
    if (ti >= 0) return p->rules[mi][ti].cls;
    return s->cls < p->n_classes ? s->cls : (uint8_t)(p->n_classes - 1);
}

/* When a cap lets this trigger through again, or INT64_MIN when it does now. */
static int64_t cap_blocks(const cue_policy *p, cue_policy_tz *z, const cue_user *u,
                          const cap_rule *k, uint32_t mh, uint32_t th, uint8_t cls, int64_t now,
                          int *zone)
{
    const cue_user_policy *up = &u->policy;
    if (!in_scope(&k->sc, mh, th, cls)) return INT64_MIN;
    if (k->kind == CAP_COOLDOWN) {
        for (int i = up->n_sent - 1; i >= 0; i--)
            if (up->sent[i].trigger == th && up->sent[i].machine == mh &&
                up->sent[i].ms > now - k->window_ms)
                return up->sent[i].ms + k->window_ms;
        return INT64_MIN;
    }
    int count = 0;
    int64_t times[CUE_POLICY_SENDS_MAX];
    int64_t day = 0;
    if (k->kind == CAP_DAY) {
        if (*zone < 0) *zone = user_zone(p, z, u);
        day = cue_tz_day(z->tz, *zone, now);
    }
    for (int i = 0; i < up->n_sent; i++) {
        const cue_sent *s = &up->sent[i];
        if (!in_scope(&k->sc, s->machine, s->trigger, class_of(p, s))) continue;
        bool inside = k->kind == CAP_ROLLING ? s->ms > now - k->window_ms
                                             : cue_tz_day(z->tz, *zone, s->ms) == day;
        if (inside) times[count++] = s->ms;
    }
    if (count < k->max) return INT64_MIN;
    if (k->max == 0) return INT64_MAX; /* never frees: deferring means dropping */
    if (k->kind == CAP_DAY) return cue_tz_day_start(z->tz, *zone, day + 1);
    /* sent[] is oldest first: the window frees when enough of the oldest leave it. */
    CUE_ASSERT(count >= k->max && k->max > 0);
    return times[count - k->max] + k->window_ms;
}

static void remember_decision(cue_user *u, const cue_policy_trigger *t, uint32_t mh, uint32_t th,
                              const cue_decision *d)
{
    cue_user_policy *up = &u->policy;
    if (up->n_decided == CUE_POLICY_DECISIONS_MAX) {
        memmove(&up->decided[0], &up->decided[1],
                (CUE_POLICY_DECISIONS_MAX - 1) * sizeof up->decided[0]);
        up->n_decided--;
    }
    cue_decided *x = &up->decided[up->n_decided++];
    x->ms = d->decided_ms;
    x->until = d->until_ms;
    x->machine = mh;
    x->trigger = th;
    x->outcome = (uint8_t)d->outcome;
    x->why = (uint8_t)d->why;
    x->channel = d->channel;
    snprintf(x->id, sizeof x->id, "%s", t->id);
}

/* Remembers a send for the caps, when one could ever count it: a class that
 * bypasses caps, or a trigger no cap covers, would only push out sends that
 * do count (the memory holds CUE_POLICY_SENDS_MAX). */
static void remember_send(const cue_policy *p, cue_user *u, uint32_t mh, uint32_t th,
                          const cue_decision *d)
{
    if (p->bypass[d->cls]) return;
    bool counted = false;
    for (int i = 0; i < p->n_caps && !counted; i++)
        counted = in_scope(&p->caps[i].sc, mh, th, d->cls);
    if (!counted) return;
    cue_user_policy *up = &u->policy;
    if (up->n_sent == CUE_POLICY_SENDS_MAX) {
        memmove(&up->sent[0], &up->sent[1], (CUE_POLICY_SENDS_MAX - 1) * sizeof up->sent[0]);
        up->n_sent--;
    }
    up->sent[up->n_sent++] = (cue_sent){
        .ms = d->decided_ms, .machine = mh, .trigger = th, .cls = d->cls, .channel = d->channel};
}

/* Parks the trigger in the user's state; false when there is no room. */
static bool park(cue_user *u, const cue_policy_trigger *t, uint32_t mh, uint32_t th,
                 const cue_decision *d)
{
    cue_user_policy *up = &u->policy;
    if (up->n_deferred == CUE_POLICY_DEFERRED_MAX || t->rec_len > CUE_POLICY_DEFERRED_BYTES_MAX)
        return false;
    cue_deferred *x = &up->deferred[up->n_deferred++];
    x->due_ms = d->until_ms;
    x->time_ms = t->time_ms;
    x->machine = mh;
    x->trigger = th;
    x->why = (uint8_t)d->why;
    x->timer = t->timer;
    snprintf(x->id, sizeof x->id, "%s", t->id);
    memcpy(x->rec, t->rec, t->rec_len);
    x->rec_len = (uint16_t)t->rec_len;
    return true;
}

static uint64_t spread(const cue_policy *p, const cue_user *u)
{
    if (p->spread_ms <= 0) return 0;
    return cue_hash64(u->id, u->id_len, 3) % (uint64_t)p->spread_ms;
}

void cue_policy_decide(const cue_policy *p, cue_policy_tz *z, cue_user *u,
                       const cue_policy_trigger *t, int64_t now, cue_decision *d)
{
    const cue_machine *m = cue_machines_get(p->ms, t->machine);
    const trig_rule *r = &p->rules[t->machine][t->trigger];
    uint32_t mh = m->hash, th = m->triggers[t->trigger].hash;
    *d = (cue_decision){.outcome = CUE_OUTCOME_SENT,
                        .why = CUE_WHY_NONE,
                        .channel = CUE_CH_NONE,
                        .cls = r->cls,
                        .until_ms = INT64_MIN,
                        .decided_ms = now,
                        .rule = ""};
    int e = cue_policy_experiment_of(p, t->machine, t->trigger);
    if (e >= 0) {
        int v = cue_policy_assign(p, (size_t)e, u->id, u->id_len);
        d->experiment = p->exps[e].name;
        d->variant = v >= 0 ? p->exps[e].variants[v] : NULL;
        if (v < 0) {
            d->outcome = CUE_OUTCOME_SUPPRESSED;
            d->why = CUE_WHY_HOLDOUT;
            d->rule = p->exps[e].name;
            goto done;
        }
    }
    if (t->timer && r->max_age_ms != INT64_MAX && t->fired_ms - t->time_ms > r->max_age_ms) {
        if (r->late == LATE_DROP) {
            d->outcome = CUE_OUTCOME_SUPPRESSED;
            d->why = CUE_WHY_TOO_LATE;
            d->rule = "max_age";
            goto done;
        }
        d->late = r->late == LATE_MARK;
    }
    d->channel = pick_channel(p, u, r);
    if (d->channel == CUE_CH_NONE) {
        d->outcome = CUE_OUTCOME_SUPPRESSED;
        d->why = CUE_WHY_NO_CONSENT;
        d->rule = "consent";
        goto done;
    }
    if (!p->bypass[r->cls]) {
        int zone = -1;
        int64_t ends;
        if (p->quiet) zone = user_zone(p, z, u);
        if (p->quiet && cue_tz_quiet(z->tz, zone, now, p->quiet_start, p->quiet_end, &ends)) {
            d->until_ms = ends + (int64_t)spread(p, u);
            d->why = CUE_WHY_QUIET_HOURS;
            d->rule = "quiet_hours";
            d->outcome = CUE_OUTCOME_DEFERRED;
            if (r->max_age_ms != INT64_MAX && d->until_ms - t->time_ms > r->max_age_ms) {
                d->outcome = CUE_OUTCOME_SUPPRESSED;
                d->why = CUE_WHY_TOO_LATE;
                d->rule = "quiet_hours";
                d->until_ms = INT64_MIN;
            }
            goto done;
        }
        for (int i = 0; i < p->n_caps; i++) {
            const cap_rule *k = &p->caps[i];
            int64_t frees = cap_blocks(p, z, u, k, mh, th, r->cls, now, &zone);
            if (frees == INT64_MIN) continue;
            d->why = k->kind == CAP_COOLDOWN ? CUE_WHY_COOLDOWN : CUE_WHY_CAP;
            d->rule = k->name;
            if (k->defer && frees != INT64_MAX &&
                (r->max_age_ms == INT64_MAX || frees - t->time_ms <= r->max_age_ms)) {
                d->outcome = CUE_OUTCOME_DEFERRED;
                d->until_ms = frees;
            } else {
                d->outcome = CUE_OUTCOME_SUPPRESSED;
            }
            goto done;
        }
    }
done:
    if (d->outcome == CUE_OUTCOME_DEFERRED && !park(u, t, mh, th, d)) {
        d->outcome = CUE_OUTCOME_SUPPRESSED;
        d->why =
            t->rec_len > CUE_POLICY_DEFERRED_BYTES_MAX ? CUE_WHY_TOO_LARGE : CUE_WHY_DEFERRED_FULL;
        d->until_ms = INT64_MIN;
    }
    /* Only a send has a channel: a deferred trigger picks one again when it
     * comes due, since consent may have changed meanwhile. */
    if (d->outcome == CUE_OUTCOME_SENT)
        remember_send(p, u, mh, th, d);
    else
        d->channel = CUE_CH_NONE;
    remember_decision(u, t, mh, th, d);
}

void cue_policy_fields(const cue_policy *p, const cue_decision *d, cue_buf *out)
{
    cue_buf_append_str(out, "\"policy\":{\"channel\":");
    if (d->channel < CUE_CHANNELS_MAX)
        cue_buf_printf(out, "\"%s\"", cue_channel_names[d->channel]);
    else
        cue_buf_append_str(out, "null");
    cue_buf_append_str(out, ",\"class\":");
    const char *cls = cue_policy_class_name(p, d->cls);
    cue_buf_append_json_str(out, cls, strlen(cls));
    if (d->experiment) {
        cue_buf_append_str(out, ",\"experiment\":");
        cue_buf_append_json_str(out, d->experiment, strlen(d->experiment));
        cue_buf_append_str(out, ",\"variant\":");
        cue_buf_append_json_str(out, d->variant, strlen(d->variant));
    }
    if (d->late) cue_buf_append_str(out, ",\"late\":true");
    cue_buf_append_char(out, '}');
}

bool cue_policy_take_due(cue_user *u, int64_t now_ms, cue_deferred *out)
{
    cue_user_policy *up = &u->policy;
    int best = -1;
    for (int i = 0; i < up->n_deferred; i++)
        if (up->deferred[i].due_ms <= now_ms &&
            (best < 0 || up->deferred[i].due_ms < up->deferred[best].due_ms ||
             (up->deferred[i].due_ms == up->deferred[best].due_ms &&
              strcmp(up->deferred[i].id, up->deferred[best].id) < 0)))
            best = i;
    if (best < 0) return false;
    *out = up->deferred[best];
    up->deferred[best] = up->deferred[--up->n_deferred];
    return true;
}

/* ---- events the policy reads ------------------------------------------- */

static bool type_is(const cue_event *ev, const char *type)
{
    return type[0] && ev->type_len == strlen(type) && memcmp(ev->type, type, ev->type_len) == 0;
}

static int channel_of(const cue_event *ev, const cue_json_ptr *ptr)
{
    cue_value v = cue_event_value(ev, ptr);
    return v.type == CUE_VAL_STRING ? find_channel(v.s, v.len) : -1;
}

static bool flag_of(const cue_event *ev, const cue_json_ptr *ptr, bool *out)
{
    cue_value v = cue_event_value(ev, ptr);
    if (v.type != CUE_VAL_BOOL) return false;
    *out = v.b;
    return true;
}

bool cue_policy_is_erasure(const cue_policy *p, const cue_event *ev)
{
    return type_is(ev, p->erase_event);
}

cue_policy_event cue_policy_observe(const cue_policy *p, cue_user *u, const cue_event *ev,
                                    void (*cancelled)(const cue_deferred *d,
                                                      const cue_decision *dec, void *ctx),
                                    void *ctx, const char **why)
{
    bool flag;
    int ch;
    if (type_is(ev, p->consent_event)) {
        ch = channel_of(ev, &p->consent_channel);
        if (ch < 0 || !flag_of(ev, &p->consent_granted, &flag)) {
            *why = ch < 0 ? "consent event: the channel is not push, email, in_app or sms"
                          : "consent event: 'granted' is not true or false";
            return CUE_POLICY_EVENT_BAD;
        }
        u->policy.consent[ch] = flag ? CUE_CONSENT_GRANTED : CUE_CONSENT_DENIED;
    } else if (type_is(ev, p->mute_event)) {
        ch = channel_of(ev, &p->mute_channel);
        if (ch < 0 || !flag_of(ev, &p->mute_muted, &flag)) {
            *why = ch < 0 ? "mute event: the channel is not push, email, in_app or sms"
                          : "mute event: 'muted' is not true or false";
            return CUE_POLICY_EVENT_BAD;
        }
        if (flag)
            u->policy.muted |= (uint8_t)(1u << ch);
        else
            u->policy.muted &= (uint8_t) ~(1u << ch);
    } else {
        return CUE_POLICY_EVENT_NONE;
    }
    /* Withdrawn consent takes effect at once: a deferred trigger with no
     * channel left never goes out, even on a later window. */
    cue_user_policy *up = &u->policy;
    for (int i = 0; i < up->n_deferred;) {
        cue_deferred *x = &up->deferred[i];
        int ti;
        int mi = cue_machines_find_trigger(p->ms, x->machine, x->trigger, &ti);
        if (ti >= 0 && pick_channel(p, u, &p->rules[mi][ti]) != CUE_CH_NONE) {
            i++;
            continue;
        }
        cue_deferred gone = *x;
        *x = up->deferred[--up->n_deferred];
        cue_decision d = {.outcome = CUE_OUTCOME_CANCELLED,
                          .why = CUE_WHY_CONSENT_WITHDRAWN,
                          .channel = CUE_CH_NONE,
                          .cls = ti >= 0 ? p->rules[mi][ti].cls : 0,
                          .until_ms = INT64_MIN,
                          .decided_ms = ev->ts_ms,
                          .rule = "consent"};
        cue_policy_trigger t = {.id = gone.id, .time_ms = gone.time_ms};
        remember_decision(u, &t, gone.machine, gone.trigger, &d);
        if (cancelled) cancelled(&gone, &d, ctx);
    }
    return CUE_POLICY_EVENT_CONSENT;
}
