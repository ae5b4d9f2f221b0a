/* The configuration file: defaults, then the file, then command-line overrides. */
#include "cuepoint/config.h"

#include "cuepoint/timefmt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cue_config_defaults(cue_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->application_id, sizeof c->application_id, "cuepoint");
    snprintf(c->state_dir, sizeof c->state_dir, "state");
    snprintf(c->machines_dir, sizeof c->machines_dir, "deploy/machines");
    c->cache_max_bytes = 64u << 20;
    c->commit_interval_ms = 1000;
    /* Each commit rewrites every user changed since the last one, so fewer
     * commits mean fewer writes; a crash costs re-reading up to this many
     * records (about 3 s here). Kafka Streams commits every 30 s by default. */
    c->commit_records = 1000000;
    cue_json_ptr_compile(&c->ptr_user_id, "/user_id", NULL);
    cue_json_ptr_compile(&c->ptr_type, "/type", NULL);
    cue_json_ptr_compile(&c->ptr_time, "/ts", NULL);
    cue_json_ptr_compile(&c->ptr_event_id, "/event_id", NULL);
    for (int a = 0; a < CUE_ATTR_COUNT; a++) {
        char p[64];
        snprintf(p, sizeof p, "/user/%s", cue_attr_names[a]);
        cue_json_ptr_compile(&c->ptr_attr[a], p, NULL);
    }
    c->event_bytes_max = CUE_EVENT_BYTES_MAX;
    c->timers_memory_max = CUE_TIMER_WINDOW_MAX;
    c->allowed_lateness_ms = 3600 * 1000;
    c->late_policy = CUE_LATE_DEAD_LETTER;
}

/* A string setting, or {"env": NAME} / {"file": PATH} for values that should
 * not sit in the file (secrets). A file's trailing newline is dropped. */
static int string_value(json_t *v, const char *path, char *out, size_t cap, cue_err *err)
{
    if (json_is_string(v)) {
        if (json_string_length(v) >= cap)
            return cue_err_set(err, CUE_ECONFIG, "%s: longer than %zu bytes", path, cap - 1);
        memcpy(out, json_string_value(v), json_string_length(v) + 1);
        return 0;
    }
    json_t *env = json_object_get(v, "env"), *file = json_object_get(v, "file");
    if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(env)) {
        const char *val = getenv(json_string_value(env));
        if (val == NULL)
            return cue_err_set(err, CUE_ECONFIG, "%s: environment variable %s is not set", path,
                               json_string_value(env));
        if (strlen(val) >= cap)
            return cue_err_set(err, CUE_ECONFIG, "%s: value longer than %zu bytes", path, cap - 1);
        memcpy(out, val, strlen(val) + 1);
        return 0;
    }
    if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(file)) {
        FILE *f = fopen(json_string_value(file), "r");
        if (f == NULL)
            return cue_err_set(err, CUE_ECONFIG, "%s: cannot read file %s", path,
                               json_string_value(file));
        size_t n = fread(out, 1, cap - 1, f);
        bool more = fgetc(f) != EOF;
        fclose(f);
        if (more)
            return cue_err_set(err, CUE_ECONFIG, "%s: file longer than %zu bytes", path, cap - 1);
        while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
            n--;
        out[n] = '\0';
        return 0;
    }
    return cue_err_set(err, CUE_ECONFIG,
                       "%s: must be a string, {\"env\": \"NAME\"} or {\"file\": \"PATH\"}", path);
}

static int int_value(json_t *v, const char *path, int64_t min, int64_t max, int64_t *out,
                     cue_err *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return cue_err_set(err, CUE_ECONFIG, "%s: must be an integer from %lld to %lld", path,
                           (long long)min, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

static int ptr_value(json_t *v, const char *path, cue_json_ptr *out, cue_err *err)
{
    char text[CUE_JSON_PTR_BYTES_MAX];
    int rc = string_value(v, path, text, sizeof text, err);
    if (rc != 0) return rc;
    if (cue_json_ptr_compile(out, text, err) != 0) {
        cue_err_prefix(err, "%s", path);
        return CUE_ECONFIG;
    }
    return 0;
}

static int lateness_value(json_t *v, const char *path, int64_t *out, cue_err *err)
{
    if (json_is_string(v) &&
        cue_duration_parse(json_string_value(v), json_string_length(v), out) == 0)
        return 0;
    return int_value(v, path, 0, INT64_MAX / 2, out, err);
}

static int attrs_value(cue_config *c, json_t *v, const char *path, cue_err *err)
{
    if (!json_is_object(v))
        return cue_err_set(err, CUE_ECONFIG, "%s: must be an object of attribute to pointer", path);
    const char *key;
    json_t *item;
    json_object_foreach(v, key, item)
    {
        int a = -1;
        for (int k = 0; k < CUE_ATTR_COUNT; k++)
            if (strcmp(key, cue_attr_names[k]) == 0) a = k;
        char p[256];
        snprintf(p, sizeof p, "%s.%.64s", path, key);
        if (a < 0) {
            const char *near = cue_nearest_name(key, cue_attr_names, CUE_ATTR_COUNT);
            return cue_err_set(err, CUE_ECONFIG, "%s: unknown attribute%s%s%s", p,
                               near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        }
        if (json_is_null(item)) { /* null switches the attribute off */
            memset(&c->ptr_attr[a], 0, sizeof c->ptr_attr[a]);
            continue;
        }
        int rc = ptr_value(item, p, &c->ptr_attr[a], err);
        if (rc != 0) return rc;
    }
    return 0;
}

static const char *const keys[] = {"$schema",
                                   "application.id",
                                   "state.dir",
                                   "machines.dir",
                                   "statestore.cache.max.bytes",
                                   "commit.interval.ms",
                                   "commit.records",
                                   "event.user_id",
                                   "event.type",
                                   "event.time",
                                   "event.id",
                                   "event.attributes",
                                   "event.max.bytes",
                                   "timers.memory.max",
                                   "allowed.lateness.ms",
                                   "late.policy"};

static int late_value(cue_config *c, json_t *v, const char *path, cue_err *err)
{
    const char *s = json_string_value(v);
    if (s && strcmp(s, "apply") == 0)
        c->late_policy = CUE_LATE_APPLY;
    else if (s && strcmp(s, "dead_letter") == 0)
        c->late_policy = CUE_LATE_DEAD_LETTER;
    else
        return cue_err_set(err, CUE_ECONFIG, "%s: must be \"apply\" or \"dead_letter\"", path);
    return 0;
}

/* Applies one top-level key. `path` is "$.key" for messages. */
static int apply_key(cue_config *c, const char *key, json_t *v, const char *path, cue_err *err)
{
    int64_t n = 0;
    int rc = 0;
    if (strcmp(key, "$schema") == 0) return 0;
    if (strcmp(key, "application.id") == 0) {
        rc = string_value(v, path, c->application_id, sizeof c->application_id, err);
        if (rc == 0 && c->application_id[0] == '\0')
            rc = cue_err_set(err, CUE_ECONFIG, "%s: must not be empty", path);
    } else if (strcmp(key, "state.dir") == 0) {
        rc = string_value(v, path, c->state_dir, sizeof c->state_dir, err);
    } else if (strcmp(key, "machines.dir") == 0) {
        rc = string_value(v, path, c->machines_dir, sizeof c->machines_dir, err);
    } else if (strcmp(key, "statestore.cache.max.bytes") == 0) {
        rc = int_value(v, path, CUE_CACHE_BYTES_MIN, (int64_t)1 << 40, &n, err);
        c->cache_max_bytes = rc == 0 ? (size_t)n : c->cache_max_bytes;
    } else if (strcmp(key, "commit.interval.ms") == 0) {
        rc = int_value(v, path, 1, 3600 * 1000, &c->commit_interval_ms, err);
    } else if (strcmp(key, "commit.records") == 0) {
        rc = int_value(v, path, 1, 10 * 1000 * 1000, &c->commit_records, err);
    } else if (strcmp(key, "event.user_id") == 0) {
        rc = ptr_value(v, path, &c->ptr_user_id, err);
    } else if (strcmp(key, "event.type") == 0) {
        rc = ptr_value(v, path, &c->ptr_type, err);
    } else if (strcmp(key, "event.time") == 0) {
        rc = ptr_value(v, path, &c->ptr_time, err);
    } else if (strcmp(key, "event.id") == 0) {
        rc = ptr_value(v, path, &c->ptr_event_id, err);
    } else if (strcmp(key, "event.attributes") == 0) {
        rc = attrs_value(c, v, path, err);
    } else if (strcmp(key, "event.max.bytes") == 0) {
        rc = int_value(v, path, 64, CUE_EVENT_BYTES_MAX, &n, err);
        c->event_bytes_max = rc == 0 ? (size_t)n : c->event_bytes_max;
    } else if (strcmp(key, "timers.memory.max") == 0) {
        rc = int_value(v, path, 16, CUE_TIMER_WINDOW_MAX, &n, err);
        c->timers_memory_max = rc == 0 ? (size_t)n : c->timers_memory_max;
    } else if (strcmp(key, "allowed.lateness.ms") == 0) {
        rc = lateness_value(v, path, &c->allowed_lateness_ms, err);
    } else if (strcmp(key, "late.policy") == 0) {
        rc = late_value(c, v, path, err);
    } else {
        const char *near = cue_nearest_name(key, keys, sizeof keys / sizeof *keys);
        rc = cue_err_set(err, CUE_ECONFIG, "%s: unknown setting%s%s%s", path,
                         near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    }
    return rc;
}

int cue_config_load(cue_config *c, const char *path, cue_err *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s: line %d, column %d: %s", path, jerr.line,
                           jerr.column, jerr.text);
    int rc = 0;
    if (!json_is_object(root)) rc = cue_err_set(err, CUE_ECONFIG, "$: must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        char p[300];
        snprintf(p, sizeof p, "$.%.200s", key);
        if (rc == 0) rc = apply_key(c, key, v, p, err);
    }
    json_decref(root);
    if (rc != 0) cue_err_prefix(err, "%s", path);
    return rc == 0 ? 0 : CUE_ECONFIG;
}

int cue_config_set(cue_config *c, const char *key, const char *value, cue_err *err)
{
    /* A value that reads as JSON (numbers, objects) is taken as such; anything
     * else is a string, so `--set state.dir=/tmp/x` needs no quotes. */
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    if (v == NULL) v = json_string(value);
    if (v == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    char p[300];
    snprintf(p, sizeof p, "$.%.200s", key);
    int rc = apply_key(c, key, v, p, err);
    json_decref(v);
    return rc == 0 ? 0 : CUE_ECONFIG;
}
