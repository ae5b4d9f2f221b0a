/* The report's configuration: defaults, the JSON file
 * (schemas/report.schema.json), and the experiments of a policy file. */
#include "cuepoint/machine.h"
#include "cuepoint/report.h"
#include "cuepoint/timefmt.h"

#include "report_int.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS (86400 * 1000LL)

static void add_goal(cue_report_config *c, const char *name, const char *source, int days,
                     bool absent)
{
    cue_report_goal *g = &c->goals[c->n_goals++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    snprintf(g->source, sizeof g->source, "%s", source);
    g->absent = absent;
    g->within_ms = days * DAY_MS;
}

static void add_attr(cue_report_config *c, const char *name, const char *ptr)
{
    snprintf(c->attr_name[c->n_attrs], sizeof c->attr_name[0], "%s", name);
    cue_json_ptr_compile(&c->attr_ptr[c->n_attrs], ptr, NULL);
    c->n_attrs++;
}

static void add_optout(cue_report_config *c, const char *type, const char *ptr, bool equals)
{
    cue_report_optout *o = &c->optouts[c->n_optouts++];
    snprintf(o->type, sizeof o->type, "%s", type);
    cue_json_ptr_compile(&o->ptr, ptr, NULL);
    o->equals = equals;
}

void cue_report_config_defaults(cue_report_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->signup_event, sizeof c->signup_event, "signed_up");
    add_attr(c, "role", "/user/role");
    add_attr(c, "region", "/user/region");
    add_attr(c, "work_mode", "/user/work_mode");
    add_goal(c, "onboarding_completed_7d", "onboarding_completed", 7, false);
    add_goal(c, "fifth_project_delivered_30d", "fifth_project_delivered", 30, false);
    add_goal(c, "user_reactivated_30d", "user_reactivated", 30, false);
    add_goal(c, "not_dormant_30d", "user_dormant", 30, true);
    c->onboarding_goal = 0;
    /* The consent events deploy/policies.json reads (docs/policies.md): a
     * withdrawal and a mute. */
    add_optout(c, "consent_changed", "/props/granted", false);
    add_optout(c, "channel_muted", "/props/muted", true);
    c->optout_window_ms = 2 * DAY_MS;
    c->optout_after_ms = 30 * DAY_MS;
    c->retention_weeks = 8;
}

/* ---- the file ------------------------------------------------------------ */

typedef struct rcc {
    cue_report_config *c;
    const char *file;
    char path[256]; /* JSON path of what is being read */
    cue_err *err;
    int rc;
} rcc;

/* The first error wins; it names the file and the JSON path. */
static int fail(rcc *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(rcc *x, const char *fmt, ...)
{
    if (x->rc) return x->rc;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    x->rc = cue_err_set(x->err, CUE_ECONFIG, "%s: %s: %s", x->file, x->path, msg);
    return x->rc;
}

static int check_keys(rcc *x, json_t *o, const char *const *keys, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = key[0] == '$' || strcmp(key, "description") == 0;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, keys[i]) == 0;
        if (ok) continue;
        const char *near = cue_nearest_name(key, keys, n);
        char hint[96] = "";
        if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
        return fail(x, "unknown key '%s'%s", key, hint);
    }
    return 0;
}
#define KEYS(...)                                                                                  \
    (const char *const[]){__VA_ARGS__},                                                            \
        sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

static size_t enter(rcc *x, const char *key, long index)
{
    size_t n = strlen(x->path);
    if (index >= 0)
        snprintf(x->path + n, sizeof x->path - n, "[%ld]", index);
    else
        snprintf(x->path + n, sizeof x->path - n, ".%s", key);
    return n;
}

static void leave(rcc *x, size_t n)
{
    x->path[n] = '\0';
}

static int get_name(rcc *x, json_t *v, char *out, size_t cap)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap)
        return fail(x, "expected a name (a string of 1 to 63 bytes)");
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

/* Windows longer than ten years say nothing a history can show, and keep
 * a sign-up's minute plus a window inside 32 bits. */
#define WINDOW_MAX_MS (3650 * DAY_MS)

static int get_duration(rcc *x, json_t *v, int64_t *ms)
{
    if (json_is_string(v) &&
        cue_duration_parse(json_string_value(v), json_string_length(v), ms) == 0 && *ms > 0 &&
        *ms <= WINDOW_MAX_MS)
        return 0;
    return fail(x, "expected a duration such as \"7d\" or \"48h\", at most 3650d");
}

static int get_ptr(rcc *x, json_t *v, cue_json_ptr *p)
{
    cue_err e = {0};
    if (!json_is_string(v)) return fail(x, "expected a JSON Pointer such as \"/user/role\"");
    if (cue_json_ptr_compile(p, json_string_value(v), &e) != 0) return fail(x, "%s", e.msg);
    return 0;
}

static int read_attributes(rcc *x, json_t *v)
{
    if (!json_is_object(v)) return fail(x, "expected an object of name: JSON Pointer");
    if (json_object_size(v) > CUE_REPORT_ATTRS_MAX)
        return fail(x, "more than %d attributes", CUE_REPORT_ATTRS_MAX);
    x->c->n_attrs = 0;
    const char *key;
    json_t *p;
    json_object_foreach(v, key, p)
    {
        size_t at = enter(x, key, -1);
        size_t i = x->c->n_attrs;
        if (strlen(key) == 0 || strlen(key) >= CUE_NAME_BYTES_MAX) return fail(x, "a bad name");
        snprintf(x->c->attr_name[i], sizeof x->c->attr_name[i], "%s", key);
        if (get_ptr(x, p, &x->c->attr_ptr[i]) != 0) return x->rc;
        x->c->n_attrs++;
        leave(x, at);
    }
    return 0;
}

static int read_goal(rcc *x, json_t *o, cue_report_goal *g)
{
    if (!json_is_object(o)) return fail(x, "expected an object");
    if (check_keys(x, o, KEYS("name", "trigger", "event", "within", "absent", "from")) != 0)
        return x->rc;
    memset(g, 0, sizeof *g);
    json_t *t = json_object_get(o, "trigger"), *e = json_object_get(o, "event");
    if ((t == NULL) == (e == NULL)) return fail(x, "a goal names one 'trigger' or one 'event'");
    size_t at = enter(x, t ? "trigger" : "event", -1);
    if (get_name(x, t ? t : e, g->source, sizeof g->source) != 0) return x->rc;
    leave(x, at);
    g->is_event = e != NULL;
    at = enter(x, "name", -1);
    if (get_name(x, json_object_get(o, "name"), g->name, sizeof g->name) != 0) return x->rc;
    leave(x, at);
    at = enter(x, "within", -1);
    if (get_duration(x, json_object_get(o, "within"), &g->within_ms) != 0) return x->rc;
    leave(x, at);
    json_t *a = json_object_get(o, "absent"), *f = json_object_get(o, "from");
    if (a && !json_is_boolean(a)) return fail(x, "'absent' is true or false");
    g->absent = a && json_is_true(a);
    if (f && (!json_is_string(f) || (strcmp(json_string_value(f), "signup") != 0 &&
                                     strcmp(json_string_value(f), "exposure") != 0)))
        return fail(x, "'from' is \"signup\" or \"exposure\"");
    g->from_exposure = f && strcmp(json_string_value(f), "exposure") == 0;
    return 0;
}

static int read_goals(rcc *x, json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > CUE_REPORT_GOALS_MAX)
        return fail(x, "expected an array of 1 to %d goals", CUE_REPORT_GOALS_MAX);
    x->c->n_goals = 0;
    size_t i;
    json_t *o;
    json_array_foreach(v, i, o)
    {
        size_t at = enter(x, NULL, (long)i);
        if (read_goal(x, o, &x->c->goals[i]) != 0) return x->rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(x->c->goals[j].name, x->c->goals[i].name) == 0)
                return fail(x, "goal '%s' is declared twice", x->c->goals[i].name);
        x->c->n_goals++;
        leave(x, at);
    }
    return 0;
}

static int read_optout_events(rcc *x, json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) > CUE_REPORT_OPTOUT_KINDS_MAX)
        return fail(x, "expected an array of at most %d events", CUE_REPORT_OPTOUT_KINDS_MAX);
    x->c->n_optouts = 0;
    size_t i;
    json_t *o;
    json_array_foreach(v, i, o)
    {
        size_t at = enter(x, NULL, (long)i);
        cue_report_optout *e = &x->c->optouts[i];
        if (!json_is_object(o) || check_keys(x, o, KEYS("type", "field", "equals")) != 0)
            return x->rc ? x->rc : fail(x, "expected an object");
        json_t *eq = json_object_get(o, "equals");
        if (get_name(x, json_object_get(o, "type"), e->type, sizeof e->type) != 0 ||
            get_ptr(x, json_object_get(o, "field"), &e->ptr) != 0)
            return x->rc;
        if (!json_is_boolean(eq)) return fail(x, "'equals' is true or false");
        e->equals = json_is_true(eq);
        x->c->n_optouts++;
        leave(x, at);
    }
    return 0;
}

static int read_optout(rcc *x, json_t *v)
{
    if (!json_is_object(v)) return fail(x, "expected an object");
    if (check_keys(x, v, KEYS("events", "window", "after_onboarding")) != 0) return x->rc;
    json_t *e = json_object_get(v, "events"), *w = json_object_get(v, "window"),
           *a = json_object_get(v, "after_onboarding");
    size_t at = enter(x, "events", -1);
    if (e && read_optout_events(x, e) != 0) return x->rc;
    leave(x, at);
    at = enter(x, "window", -1);
    if (w && get_duration(x, w, &x->c->optout_window_ms) != 0) return x->rc;
    leave(x, at);
    at = enter(x, "after_onboarding", -1);
    if (a && get_duration(x, a, &x->c->optout_after_ms) != 0) return x->rc;
    leave(x, at);
    return 0;
}

/* The members that are neither objects nor arrays. */
static int read_scalars(rcc *x, json_t *root)
{
    json_t *v;
    size_t at;
    if ((v = json_object_get(root, "signup_event"))) {
        at = enter(x, "signup_event", -1);
        if (get_name(x, v, x->c->signup_event, sizeof x->c->signup_event) != 0) return x->rc;
        leave(x, at);
    }
    if ((v = json_object_get(root, "retention_weeks"))) {
        at = enter(x, "retention_weeks", -1);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > CUE_REPORT_WEEKS_MAX)
            return fail(x, "expected a whole number of weeks from 1 to %d", CUE_REPORT_WEEKS_MAX);
        x->c->retention_weeks = (int)json_integer_value(v);
        leave(x, at);
    }
    if ((v = json_object_get(root, "policies"))) {
        at = enter(x, "policies", -1);
        if (!json_is_string(v) || json_string_length(v) >= sizeof x->c->policies)
            return fail(x, "expected a file name");
        snprintf(x->c->policies, sizeof x->c->policies, "%s", json_string_value(v));
        leave(x, at);
    }
    return 0;
}

static int read_onboarding(rcc *x, json_t *root)
{
    json_t *v = json_object_get(root, "onboarding_goal");
    x->c->onboarding_goal = -1;
    if (v == NULL) {
        /* The default's, when the goals keep its name. */
        for (size_t g = 0; g < x->c->n_goals; g++)
            if (strcmp(x->c->goals[g].name, "onboarding_completed_7d") == 0)
                x->c->onboarding_goal = (int)g;
        return 0;
    }
    size_t at = enter(x, "onboarding_goal", -1);
    const char *names[CUE_REPORT_GOALS_MAX];
    for (size_t g = 0; g < x->c->n_goals; g++) {
        names[g] = x->c->goals[g].name;
        if (json_is_string(v) && strcmp(json_string_value(v), names[g]) == 0)
            x->c->onboarding_goal = (int)g;
    }
    if (x->c->onboarding_goal < 0) {
        const char *near =
            json_is_string(v) ? cue_nearest_name(json_string_value(v), names, x->c->n_goals) : NULL;
        char hint[96] = "";
        if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
        return fail(x, "not one of the goals%s", hint);
    }
    if (x->c->goals[x->c->onboarding_goal].from_exposure ||
        x->c->goals[x->c->onboarding_goal].absent)
        return fail(x, "the onboarding goal is reached, from sign-up");
    leave(x, at);
    return 0;
}

int report_config_from_json(cue_report_config *c, void *rootp, const char *name, cue_err *err)
{
    json_t *root = rootp;
    rcc x = {.c = c, .file = name, .path = "$", .err = err};
    if (!json_is_object(root)) return fail(&x, "expected an object");
    if (check_keys(&x, root,
                   KEYS("signup_event", "attributes", "goals", "onboarding_goal", "opt_out",
                        "retention_weeks", "policies")) != 0)
        return x.rc;
    json_t *v;
    if (read_scalars(&x, root) != 0) return x.rc;
    size_t at;
    if ((v = json_object_get(root, "attributes"))) {
        at = enter(&x, "attributes", -1);
        if (read_attributes(&x, v) != 0) return x.rc;
        leave(&x, at);
    }
    if ((v = json_object_get(root, "goals"))) {
        at = enter(&x, "goals", -1);
        if (read_goals(&x, v) != 0) return x.rc;
        leave(&x, at);
    }
    if ((v = json_object_get(root, "opt_out"))) {
        at = enter(&x, "opt_out", -1);
        if (read_optout(&x, v) != 0) return x.rc;
        leave(&x, at);
    }
    return read_onboarding(&x, root);
}

int cue_report_config_parse(cue_report_config *c, const char *text, const char *name, cue_err *err)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s: line %d, column %d: %s", name, je.line, je.column,
                           je.text);
    int rc = report_config_from_json(c, root, name, err);
    json_decref(root);
    return rc;
}

/* A JSON file, or NULL with CUE_ECONFIG saying why not. */
static json_t *load(const char *path, const char *what, cue_err *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL && je.line < 0)
        cue_err_set(err, CUE_ECONFIG, "cannot read the %s '%s': %s", what, path, je.text);
    else if (root == NULL)
        cue_err_set(err, CUE_ECONFIG, "%s: line %d, column %d: %s", path, je.line, je.column,
                    je.text);
    return root;
}

int cue_report_config_load(cue_report_config *c, const char *path, cue_err *err)
{
    json_t *root = load(path, "report config", err);
    if (root == NULL) return CUE_ECONFIG;
    int rc = report_config_from_json(c, root, path, err);
    json_decref(root);
    return rc;
}

/* ---- the policy file's experiments --------------------------------------- */

int cue_report_policies_load(cue_report_config *c, const char *path, cue_err *err)
{
    json_t *root = load(path, "policy file", err);
    if (root == NULL) return CUE_ECONFIG;
    json_t *exps = json_object_get(root, "experiments");
    int rc = 0;
    c->n_experiments = 0;
    if (exps && !json_is_array(exps))
        rc = cue_err_set(err, CUE_ECONFIG, "%s: $.experiments: expected an array", path);
    size_t i;
    json_t *e;
    json_array_foreach(exps, i, e)
    {
        if (rc != 0) break;
        json_t *n = json_object_get(e, "name"), *h = json_object_get(e, "holdout");
        if (i >= CUE_REPORT_EXPERIMENTS_MAX || !json_is_string(n) ||
            json_string_length(n) >= CUE_NAME_BYTES_MAX || (h && !json_is_number(h))) {
            rc = cue_err_set(err, CUE_ECONFIG,
                             "%s: $.experiments[%zu]: a name and a holdout share (at most %d "
                             "experiments); check the file with 'cuepoint check --policies'",
                             path, i, CUE_REPORT_EXPERIMENTS_MAX);
            break;
        }
        cue_report_experiment *x = &c->experiments[c->n_experiments++];
        snprintf(x->name, sizeof x->name, "%s", json_string_value(n));
        x->holdout = h ? json_number_value(h) : 0;
    }
    json_decref(root);
    return rc;
}
