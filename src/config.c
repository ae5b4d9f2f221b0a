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
    c->changelog_delete_retention_ms = 86400000;
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
    snprintf(c->bootstrap_servers, sizeof c->bootstrap_servers, "localhost:9092");
    snprintf(c->input_topic, sizeof c->input_topic, "events");
    snprintf(c->trigger_topic, sizeof c->trigger_topic, "triggers");
    snprintf(c->admin_listen, sizeof c->admin_listen, "127.0.0.1:9464");
    c->wall_clock = true;
    c->startup_timeout_ms = 30000;
    c->shutdown_timeout_ms = 30000;
    c->delivery_timeout_ms = 120000;
}

bool cue_config_secret(const char *key)
{
    size_t n = strlen(key);
    static const char *const suffixes[] = {".password", ".secret"};
    for (size_t k = 0; k < 2; k++) {
        size_t m = strlen(suffixes[k]);
        if (n >= m && strcmp(key + n - m, suffixes[k]) == 0) return true;
    }
    /* librdkafka also takes whole secrets in sasl.oauthbearer.config and
     * ssl.key.pem; a prefix match errs on the side of hiding. */
    return strncmp(key, "sasl.", 5) == 0 || strncmp(key, "ssl.key.", 8) == 0 ||
           strcmp(key, "ssl_key") == 0;
}

const char *cue_config_kafka_key(const cue_config *c, size_t i)
{
    CUE_ASSERT(i < c->kafka_len);
    return c->kafka_text + c->kafka[i].key_off;
}

const char *cue_config_kafka_value(const cue_config *c, size_t i)
{
    CUE_ASSERT(i < c->kafka_len);
    return c->kafka_text + c->kafka[i].value_off;
}

const char *cue_config_dead_letter_topic(const cue_config *c)
{
    static _Thread_local char fallback[CUE_NAME_BYTES_MAX + 32];
    if (c->dead_letter_topic[0]) return c->dead_letter_topic;
    snprintf(fallback, sizeof fallback, "%s-dead-letters", c->application_id);
    return fallback;
}

/* "<application.id><suffix>" into the caller's per-name buffer: each name
 * has its own, so a caller may hold several at once. */
static const char *internal_topic(char *buf, size_t cap, const cue_config *c, const char *suffix)
{
    snprintf(buf, cap, "%s%s", c->application_id, suffix);
    return buf;
}

const char *cue_config_changelog_topic(const cue_config *c)
{
    static _Thread_local char name[CUE_NAME_BYTES_MAX + 32];
    return internal_topic(name, sizeof name, c, "-changelog");
}

const char *cue_config_members_topic(const cue_config *c)
{
    static _Thread_local char name[CUE_NAME_BYTES_MAX + 32];
    return internal_topic(name, sizeof name, c, "-members");
}

const char *cue_config_repartition_topic(const cue_config *c)
{
    static _Thread_local char name[CUE_NAME_BYTES_MAX + 32];
    return internal_topic(name, sizeof name, c, "-repartition");
}

const char *cue_config_decisions_topic(const cue_config *c)
{
    static _Thread_local char fallback[CUE_NAME_BYTES_MAX + 32];
    if (c->decisions_topic[0]) return c->decisions_topic;
    snprintf(fallback, sizeof fallback, "%s-decisions", c->application_id);
    return fallback;
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

/* librdkafka properties cuepoint sets itself because its promises depend on
 * them; each names the setting to use instead. */
static const struct {
    const char *key, *instead;
} owned_props[] = {
    {"group.id", "application.id"},
    {"bootstrap.servers", "the top-level bootstrap.servers"},
    {"metadata.broker.list", "the top-level bootstrap.servers"},
    {"enable.auto.commit", "nothing: offsets are committed after the state (commit cycle)"},
    {"enable.auto.offset.store", "nothing: offsets are committed after the state"},
    {"enable.idempotence", "nothing: the producer is always idempotent"},
    {"acks", "nothing: triggers are always acks=all"},
    {"request.required.acks", "nothing: triggers are always acks=all"},
    {"message.timeout.ms", "delivery.timeout.ms"},
    {"delivery.timeout.ms", "the top-level delivery.timeout.ms"},
    /* One id per instance, stable across restarts, is what fences a zombie:
     * cuepoint derives it (README, "Exactly-once"). A user-chosen one could
     * be shared by two instances, which would then fence each other. */
    {"transactional.id",
     "processing.guarantee; the id is <application.id>-<group.instance.id, or the "
     "state.dir's instance id>"},
};

static int kafka_text_add(cue_config *c, const char *s, size_t n, uint32_t *off, const char *path,
                          cue_err *err)
{
    if (c->kafka_text_len + n + 1 > sizeof c->kafka_text)
        return cue_err_set(err, CUE_ECONFIG, "%s: the kafka properties exceed %zu bytes in all",
                           path, sizeof c->kafka_text);
    *off = (uint32_t)c->kafka_text_len;
    memcpy(c->kafka_text + c->kafka_text_len, s, n);
    c->kafka_text[c->kafka_text_len + n] = '\0';
    c->kafka_text_len += n + 1;
    return 0;
}

/* One librdkafka property: a string (or env/file), a number or a boolean,
 * kept as the text librdkafka's conf_set takes. A later setting of the same
 * key for the same clients replaces the earlier one. */
static int kafka_prop(cue_config *c, int clients, const char *key, json_t *v, const char *path,
                      cue_err *err)
{
    for (size_t k = 0; k < sizeof owned_props / sizeof *owned_props; k++)
        if (strcmp(key, owned_props[k].key) == 0)
            return cue_err_set(err, CUE_ECONFIG, "%s: set by cuepoint; use %s", path,
                               owned_props[k].instead);
    bool name = key[0] != '\0';
    for (const char *p = key; *p; p++)
        name &= (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_';
    if (!name) return cue_err_set(err, CUE_ECONFIG, "%s: not a librdkafka property name", path);
    char text[8192];
    int rc = 0;
    if (json_is_integer(v))
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(text, sizeof text, "%s", json_is_true(v) ? "true" : "false");
    else
        rc = string_value(v, path, text, sizeof text, err);
    if (rc != 0) return rc;
    if (c->kafka_len == CUE_KAFKA_PROPS_MAX)
        return cue_err_set(err, CUE_ECONFIG, "%s: more than %d kafka properties", path,
                           CUE_KAFKA_PROPS_MAX);
    cue_kafka_prop *kp = &c->kafka[c->kafka_len];
    kp->clients = clients;
    if (kafka_text_add(c, key, strlen(key), &kp->key_off, path, err) != 0 ||
        kafka_text_add(c, text, strlen(text), &kp->value_off, path, err) != 0)
        return CUE_ECONFIG;
    c->kafka_len++;
    return 0;
}

/* "kafka": {prop: value, ..., "consumer": {...}, "producer": {...}}. Properties
 * at the top apply to both clients; the nested ones to one. */
static int kafka_value(cue_config *c, json_t *v, const char *path, cue_err *err)
{
    if (!json_is_object(v))
        return cue_err_set(err, CUE_ECONFIG,
                           "%s: must be an object of librdkafka properties (with optional "
                           "\"consumer\" and \"producer\" objects)",
                           path);
    const char *key;
    json_t *item;
    json_object_foreach(v, key, item)
    {
        char p[300];
        snprintf(p, sizeof p, "%s.%.200s", path, key);
        int rc = 0;
        bool nested = strcmp(key, "consumer") == 0 || strcmp(key, "producer") == 0;
        if (nested && !json_is_object(item))
            return cue_err_set(err, CUE_ECONFIG, "%s: must be an object of librdkafka properties",
                               p);
        if (nested) {
            int clients = key[0] == 'c' ? CUE_KAFKA_CONSUMER : CUE_KAFKA_PRODUCER;
            const char *k2;
            json_t *i2;
            json_object_foreach(item, k2, i2)
            {
                char p2[600];
                snprintf(p2, sizeof p2, "%s.%.200s", p, k2);
                if (rc == 0) rc = kafka_prop(c, clients, k2, i2, p2, err);
            }
        } else {
            rc = kafka_prop(c, CUE_KAFKA_BOTH, key, item, p, err);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

static int topic_value(json_t *v, const char *path, char *out, size_t cap, cue_err *err)
{
    int rc = string_value(v, path, out, cap, err);
    if (rc != 0) return rc;
    if (out[0] == '\0') return cue_err_set(err, CUE_ECONFIG, "%s: must not be empty", path);
    for (const char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return cue_err_set(err, CUE_ECONFIG,
                               "%s: '%s' is not a Kafka topic name (letters, digits, '.', '_', "
                               "'-')",
                               path, out);
    return 0;
}

static int bool_value(json_t *v, const char *path, bool *out, cue_err *err)
{
    if (!json_is_boolean(v))
        return cue_err_set(err, CUE_ECONFIG, "%s: must be true or false", path);
    *out = json_is_true(v);
    return 0;
}

static const char *const keys[] = {"$schema",
                                   "bootstrap.servers",
                                   "input.topic",
                                   "trigger.topic",
                                   "errors.dead.letter.queue.topic.name",
                                   "admin.listen",
                                   "wall.clock.advance",
                                   "changelog.enabled",
                                   "changelog.delete.retention.ms",
                                   "repartition",
                                   "num.standby.replicas",
                                   "processing.guarantee",
                                   "startup.timeout.ms",
                                   "shutdown.timeout.ms",
                                   "delivery.timeout.ms",
                                   "kafka",
                                   "application.id",
                                   "state.dir",
                                   "machines.dir",
                                   "policies",
                                   "decisions.topic",
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

static int guarantee_value(cue_config *c, json_t *v, const char *path, cue_err *err)
{
    const char *s = json_string_value(v);
    if (s && strcmp(s, "at_least_once") == 0)
        c->exactly_once = false;
    else if (s && strcmp(s, "exactly_once_v2") == 0)
        c->exactly_once = true;
    else
        return cue_err_set(err, CUE_ECONFIG, "%s: must be \"at_least_once\" or \"exactly_once_v2\"",
                           path);
    return 0;
}

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
    } else if (strcmp(key, "policies") == 0) {
        rc = string_value(v, path, c->policies, sizeof c->policies, err);
    } else if (strcmp(key, "decisions.topic") == 0) {
        rc = string_value(v, path, c->decisions_topic, sizeof c->decisions_topic, err);
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
    } else if (strcmp(key, "bootstrap.servers") == 0) {
        rc = string_value(v, path, c->bootstrap_servers, sizeof c->bootstrap_servers, err);
        if (rc == 0 && c->bootstrap_servers[0] == '\0')
            rc = cue_err_set(err, CUE_ECONFIG, "%s: must not be empty", path);
    } else if (strcmp(key, "input.topic") == 0) {
        rc = topic_value(v, path, c->input_topic, sizeof c->input_topic, err);
    } else if (strcmp(key, "trigger.topic") == 0) {
        rc = topic_value(v, path, c->trigger_topic, sizeof c->trigger_topic, err);
    } else if (strcmp(key, "errors.dead.letter.queue.topic.name") == 0) {
        rc = topic_value(v, path, c->dead_letter_topic, sizeof c->dead_letter_topic, err);
    } else if (strcmp(key, "admin.listen") == 0) {
        rc = string_value(v, path, c->admin_listen, sizeof c->admin_listen, err);
    } else if (strcmp(key, "wall.clock.advance") == 0) {
        rc = bool_value(v, path, &c->wall_clock, err);
    } else if (strcmp(key, "changelog.enabled") == 0) {
        rc = bool_value(v, path, &c->changelog, err);
    } else if (strcmp(key, "changelog.delete.retention.ms") == 0) {
        rc = int_value(v, path, 1000, 3650LL * 86400000, &c->changelog_delete_retention_ms, err);
    } else if (strcmp(key, "repartition") == 0) {
        rc = bool_value(v, path, &c->repartition, err);
    } else if (strcmp(key, "num.standby.replicas") == 0) {
        rc = int_value(v, path, 0, 16, &c->standby_replicas, err);
    } else if (strcmp(key, "processing.guarantee") == 0) {
        rc = guarantee_value(c, v, path, err);
    } else if (strcmp(key, "startup.timeout.ms") == 0) {
        rc = int_value(v, path, 100, 3600 * 1000, &c->startup_timeout_ms, err);
    } else if (strcmp(key, "shutdown.timeout.ms") == 0) {
        rc = int_value(v, path, 100, 3600 * 1000, &c->shutdown_timeout_ms, err);
    } else if (strcmp(key, "delivery.timeout.ms") == 0) {
        rc = int_value(v, path, 1000, 24 * 3600 * 1000, &c->delivery_timeout_ms, err);
    } else if (strcmp(key, "kafka") == 0) {
        rc = kafka_value(c, v, path, err);
    } else {
        const char *near = cue_nearest_name(key, keys, sizeof keys / sizeof *keys);
        rc = cue_err_set(err, CUE_ECONFIG, "%s: unknown setting%s%s%s", path,
                         near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    }
    return rc;
}

/* Applies the parsed file `root` (taken: released here); `path` names it. */
static int config_apply(cue_config *c, json_t *root, const char *path, cue_err *err)
{
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

int cue_config_load(cue_config *c, const char *path, cue_err *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s: line %d, column %d: %s", path, jerr.line,
                           jerr.column, jerr.text);
    return config_apply(c, root, path, err);
}

int cue_config_load_text(cue_config *c, const char *name, const char *text, size_t len,
                         cue_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s: line %d, column %d: %s", name, jerr.line,
                           jerr.column, jerr.text);
    return config_apply(c, root, name, err);
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

/* ---- dump -------------------------------------------------------------- */

static void dump_str(cue_buf *b, const char *key, const char *val, bool *first)
{
    cue_buf_append_str(b, *first ? "\n  " : ",\n  ");
    *first = false;
    cue_buf_append_json_str(b, key, strlen(key));
    cue_buf_append_str(b, ": ");
    cue_buf_append_json_str(b, val, strlen(val));
}

static void dump_int(cue_buf *b, const char *key, int64_t v, bool *first)
{
    cue_buf_append_str(b, *first ? "\n  " : ",\n  ");
    *first = false;
    cue_buf_printf(b, "\"%s\": %lld", key, (long long)v);
}

static bool dump_kafka(const cue_config *c, cue_buf *b, int clients, const char *indent)
{
    bool first = true;
    for (size_t i = 0; i < c->kafka_len; i++) {
        if (c->kafka[i].clients != clients) continue;
        const char *k = cue_config_kafka_key(c, i);
        const char *v = cue_config_secret(k) ? "[redacted]" : cue_config_kafka_value(c, i);
        cue_buf_printf(b, "%s%s", first ? "" : ",", indent);
        first = false;
        cue_buf_append_json_str(b, k, strlen(k));
        cue_buf_append_str(b, ": ");
        cue_buf_append_json_str(b, v, strlen(v));
    }
    return !first;
}

int cue_config_dump(const cue_config *c, cue_buf *b)
{
    bool first = true;
    cue_buf_append_str(b, "{");
    dump_str(b, "application.id", c->application_id, &first);
    dump_str(b, "bootstrap.servers", c->bootstrap_servers, &first);
    dump_str(b, "input.topic", c->input_topic, &first);
    dump_str(b, "trigger.topic", c->trigger_topic, &first);
    dump_str(b, "errors.dead.letter.queue.topic.name", cue_config_dead_letter_topic(c), &first);
    dump_str(b, "state.dir", c->state_dir, &first);
    dump_str(b, "machines.dir", c->machines_dir, &first);
    dump_str(b, "policies", c->policies, &first);
    dump_str(b, "decisions.topic", cue_config_decisions_topic(c), &first);
    dump_str(b, "admin.listen", c->admin_listen, &first);
    dump_int(b, "statestore.cache.max.bytes", (int64_t)c->cache_max_bytes, &first);
    dump_int(b, "commit.interval.ms", c->commit_interval_ms, &first);
    dump_int(b, "commit.records", c->commit_records, &first);
    dump_str(b, "event.user_id", c->ptr_user_id.source, &first);
    dump_str(b, "event.type", c->ptr_type.source, &first);
    dump_str(b, "event.time", c->ptr_time.source, &first);
    dump_str(b, "event.id", c->ptr_event_id.source, &first);
    dump_int(b, "event.max.bytes", (int64_t)c->event_bytes_max, &first);
    dump_int(b, "timers.memory.max", (int64_t)c->timers_memory_max, &first);
    dump_int(b, "allowed.lateness.ms", c->allowed_lateness_ms, &first);
    dump_str(b, "late.policy", c->late_policy == CUE_LATE_APPLY ? "apply" : "dead_letter", &first);
    cue_buf_append_str(b, ",\n  \"wall.clock.advance\": ");
    cue_buf_append_str(b, c->wall_clock ? "true" : "false");
    cue_buf_append_str(b, ",\n  \"changelog.enabled\": ");
    cue_buf_append_str(b, c->changelog ? "true" : "false");
    dump_int(b, "changelog.delete.retention.ms", c->changelog_delete_retention_ms, &first);
    cue_buf_append_str(b, ",\n  \"repartition\": ");
    cue_buf_append_str(b, c->repartition ? "true" : "false");
    dump_int(b, "num.standby.replicas", c->standby_replicas, &first);
    dump_str(b, "processing.guarantee", c->exactly_once ? "exactly_once_v2" : "at_least_once",
             &first);
    dump_int(b, "startup.timeout.ms", c->startup_timeout_ms, &first);
    dump_int(b, "shutdown.timeout.ms", c->shutdown_timeout_ms, &first);
    dump_int(b, "delivery.timeout.ms", c->delivery_timeout_ms, &first);
    cue_buf_append_str(b, ",\n  \"kafka\": {");
    if (dump_kafka(c, b, CUE_KAFKA_BOTH, "\n    ")) cue_buf_append_str(b, ",");
    cue_buf_append_str(b, "\n    \"consumer\": {");
    dump_kafka(c, b, CUE_KAFKA_CONSUMER, "\n      ");
    cue_buf_append_str(b, "},\n    \"producer\": {");
    dump_kafka(c, b, CUE_KAFKA_PRODUCER, "\n      ");
    cue_buf_append_str(b, "}\n  }\n}\n");
    return 0;
}
