/* The configuration file: defaults, then the file, then command-line overrides.
 *
 * Its parts, top down: the defaults and the names derived from settings
 * (internal topics, secret keys); the readers of one value each (strings,
 * paths, numbers, durations, attributes, librdkafka properties); the input
 * topics (input.topic / input.topics, and what other modules ask of the
 * list: its index, its text, the hash the changelog's positions carry); the
 * key tables that map each setting to its reader (apply_*_key); loading a
 * file or text and `--set`; the checks across settings (cue_config_check);
 * and the dump for `--print-config`. A new setting is a field in config.h,
 * its default here, its name in `keys` (the names an unknown setting is
 * matched against for "did you mean"), one line in an apply_*_key table,
 * its line in the dump and its row in docs/configuration.md
 * (tests/integration/docs_config.sh holds the last two together). */
#include "cuepoint/config.h"

#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"

#include <errno.h>
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
    /* On: partitions can move between instances (scaling out, a pod on
     * another node) without losing state, as in Kafka Streams. */
    c->changelog = true;
    c->changelog_delete_retention_ms = 86400000;
    /* Each commit rewrites every user changed since the last one, so fewer
     * commits mean fewer writes; a crash costs re-reading up to this many
     * records (about 3 s here). Kafka Streams commits every 30 s by default. */
    c->commit_records = 1000000;
    c->stream_threads = 1;
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
    c->event_max_future_ms = 3600 * 1000;
    c->event_time_min_ms = 946684800000; /* 2000-01-01T00:00:00Z */
    c->event_id_dedup_max = 32;
    c->late_policy = CUE_LATE_DEAD_LETTER;
    snprintf(c->bootstrap_servers, sizeof c->bootstrap_servers, "localhost:9092");
    cue_config_set_input_topic(c, "events");
    snprintf(c->trigger_topic, sizeof c->trigger_topic, "triggers");
    snprintf(c->admin_listen, sizeof c->admin_listen, "127.0.0.1:9464");
    c->wall_clock = true;
    c->startup_timeout_ms = 30000;
    c->shutdown_timeout_ms = 30000;
    c->delivery_timeout_ms = 120000;
    c->log_level = CUE_LOG_INFO;
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

/* `name` as read from a config file in directory `dir`: a relative path is
 * taken from that directory, not from the working directory, so a config
 * and the files it names move together. `dir` NULL (a command-line value) or
 * "" leaves it as it is; so do absolute paths and "" (a setting switched
 * off). -1 when the result does not fit. */
static int resolve(const char *dir, const char *name, char *out, size_t cap)
{
    bool keep = dir == NULL || dir[0] == '\0' || name[0] == '\0' || name[0] == '/';
    int n = keep ? snprintf(out, cap, "%s", name) : snprintf(out, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

/* A string setting, or {"env": NAME} / {"file": PATH} for values that should
 * not sit in the file (secrets). A file's trailing newline is dropped; its
 * PATH, when relative, is taken from the config file's directory `dir`. */
static int string_value(json_t *v, const char *path, const char *dir, char *out, size_t cap,
                        cue_err *err)
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
        char where[CUE_PATH_MAX];
        if (resolve(dir, json_string_value(file), where, sizeof where) != 0)
            return cue_err_set(err, CUE_ECONFIG, "%s: file path longer than %zu bytes", path,
                               sizeof where - 1);
        FILE *f = fopen(where, "r");
        if (f == NULL) return cue_err_set(err, CUE_ECONFIG, "%s: cannot read file %s", path, where);
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

/* A path setting (state.dir, machines.dir, policies): a string value, taken
 * from the config file's directory when relative (see resolve). */
static int path_value(json_t *v, const char *path, const char *dir, char *out, size_t cap,
                      cue_err *err)
{
    char text[CUE_PATH_MAX];
    int rc = string_value(v, path, dir, text, sizeof text, err);
    if (rc != 0) return rc;
    if (resolve(dir, text, out, cap) != 0)
        return cue_err_set(err, CUE_ECONFIG, "%s: '%s' under %s is longer than %zu bytes", path,
                           text, dir, cap - 1);
    return 0;
}

/* A bearer token: "" for none, else CUE_TOKEN_BYTES_MIN or more of RFC
 * 6750's token characters, so that it can be sent as is in a header. The
 * value is a secret: no message quotes it. */
static int token_value(json_t *v, const char *path, const char *dir, char *out, size_t cap,
                       cue_err *err)
{
    int rc = string_value(v, path, dir, out, cap, err);
    if (rc != 0 || out[0] == '\0') return rc;
    size_t n = strlen(out);
    size_t body =
        strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
    size_t pad = strspn(out + body, "=");
    bool ok = body > 0 && body + pad == n;
    if (!ok || n < CUE_TOKEN_BYTES_MIN) {
        memset(out, 0, cap);
        if (!ok)
            return cue_err_set(err, CUE_ECONFIG,
                               "%s: a token is letters, digits and -._~+/ (then '=' padding "
                               "only), as a bearer token must be",
                               path);
        return cue_err_set(err, CUE_ECONFIG, "%s: %zu bytes; a token needs %d at least", path, n,
                           CUE_TOKEN_BYTES_MIN);
    }
    return 0;
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

static int ptr_value(json_t *v, const char *path, const char *dir, cue_json_ptr *out, cue_err *err)
{
    char text[CUE_JSON_PTR_BYTES_MAX];
    int rc = string_value(v, path, dir, text, sizeof text, err);
    if (rc != 0) return rc;
    if (cue_json_ptr_compile(out, text, err) != 0) {
        cue_err_prefix(err, "%s", path);
        return CUE_ECONFIG;
    }
    return 0;
}

/* A point in time: an RFC 3339 string with offset, or epoch milliseconds. */
static int time_value(json_t *v, const char *path, int64_t *out, cue_err *err)
{
    if (json_is_string(v) &&
        cue_time_parse_rfc3339(json_string_value(v), json_string_length(v), out) == 0)
        return 0;
    if (json_is_integer(v)) return int_value(v, path, 0, 253402300799999, out, err);
    return cue_err_set(err, CUE_ECONFIG,
                       "%s: expected an RFC 3339 time with offset or epoch milliseconds", path);
}

static int lateness_value(json_t *v, const char *path, int64_t *out, cue_err *err)
{
    if (json_is_string(v) &&
        cue_duration_parse(json_string_value(v), json_string_length(v), out) == 0)
        return 0;
    return int_value(v, path, 0, INT64_MAX / 2, out, err);
}

/* 0 (off), or a duration of at least a minute and at most a century: a
 * shorter one would delete users between two of their events. */
static int ttl_value(json_t *v, const char *path, int64_t *out, cue_err *err)
{
    int64_t ms = -1;
    if (json_is_string(v) &&
        cue_duration_parse(json_string_value(v), json_string_length(v), &ms) != 0)
        ms = -1;
    if (json_is_integer(v)) ms = json_integer_value(v);
    if (ms == 0 || (ms >= 60000 && ms <= 100LL * 366 * 86400000)) {
        *out = ms;
        return 0;
    }
    return cue_err_set(err, CUE_ECONFIG,
                       "%s: must be 0 (off) or a duration from 1 minute to 100 years, such as "
                       "\"90d\" or milliseconds",
                       path);
}

static int attrs_value(cue_config *c, json_t *v, const char *path, const char *dir, cue_err *err)
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
        int rc = ptr_value(item, p, dir, &c->ptr_attr[a], err);
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
     * cuepoint derives it (docs/operations.md, "Exactly-once"). A user-chosen one could
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
                      const char *dir, cue_err *err)
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
    int kind = CUE_KAFKA_TEXT;
    if (json_is_integer(v)) {
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        kind = CUE_KAFKA_NUMBER;
    } else if (json_is_real(v)) { /* linger.ms and a few others take fractions */
        snprintf(text, sizeof text, "%.17g", json_real_value(v));
        kind = CUE_KAFKA_TEXT;
    } else if (json_is_boolean(v)) {
        snprintf(text, sizeof text, "%s", json_is_true(v) ? "true" : "false");
        kind = CUE_KAFKA_BOOL;
    } else {
        rc = string_value(v, path, dir, text, sizeof text, err);
    }
    if (rc != 0) return rc;
    if (c->kafka_len == CUE_KAFKA_PROPS_MAX)
        return cue_err_set(err, CUE_ECONFIG, "%s: more than %d kafka properties", path,
                           CUE_KAFKA_PROPS_MAX);
    cue_kafka_prop *kp = &c->kafka[c->kafka_len];
    kp->clients = clients;
    kp->kind = kind;
    if (kafka_text_add(c, key, strlen(key), &kp->key_off, path, err) != 0 ||
        kafka_text_add(c, text, strlen(text), &kp->value_off, path, err) != 0)
        return CUE_ECONFIG;
    c->kafka_len++;
    return 0;
}

/* "kafka": {prop: value, ..., "consumer": {...}, "producer": {...}}. Properties
 * at the top apply to both clients; the nested ones to one. */
static int kafka_value(cue_config *c, json_t *v, const char *path, const char *dir, cue_err *err)
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
                if (rc == 0) rc = kafka_prop(c, clients, k2, i2, p2, dir, err);
            }
        } else {
            rc = kafka_prop(c, CUE_KAFKA_BOTH, key, item, p, dir, err);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

static int topic_value(json_t *v, const char *path, const char *dir, char *out, size_t cap,
                       cue_err *err)
{
    int rc = string_value(v, path, dir, out, cap, err);
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

/* input.topic and input.topics say the same thing; both given would leave
 * one silently ignored. */
static int input_keys_check(cue_config *c, uint8_t bit, const char *path, cue_err *err)
{
    c->input_keys_given |= bit;
    if (c->input_keys_given != 3) return 0;
    return cue_err_set(err, CUE_ECONFIG,
                       "%s: give either input.topic (one topic) or input.topics (a list), not "
                       "both",
                       path);
}

static int input_topic_value(cue_config *c, json_t *v, const char *path, const char *dir,
                             cue_err *err)
{
    char t[CUE_TOPIC_BYTES_MAX + 1];
    int rc = input_keys_check(c, 1, path, err);
    if (rc == 0) rc = topic_value(v, path, dir, t, sizeof t, err);
    if (rc == 0) cue_config_set_input_topic(c, t);
    return rc;
}

static int input_topics_value(cue_config *c, json_t *v, const char *path, const char *dir,
                              cue_err *err)
{
    int rc = input_keys_check(c, 2, path, err);
    if (rc != 0) return rc;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cue_err_set(err, CUE_ECONFIG, "%s: must be a non-empty list of topic names", path);
    if (json_array_size(v) > CUE_INPUT_TOPICS_MAX)
        return cue_err_set(err, CUE_ECONFIG, "%s: %zu topics, more than the limit of %d", path,
                           json_array_size(v), CUE_INPUT_TOPICS_MAX);
    char topics[CUE_INPUT_TOPICS_MAX][CUE_TOPIC_BYTES_MAX + 1];
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        char p[300];
        snprintf(p, sizeof p, "%.250s[%zu]", path, i);
        rc = topic_value(json_array_get(v, i), p, dir, topics[i], sizeof topics[i], err);
        if (rc != 0) return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(topics[i], topics[j]) == 0)
                return cue_err_set(err, CUE_ECONFIG, "%s: topic '%s' is listed twice", p,
                                   topics[i]);
    }
    cue_config_set_input_topic(c, topics[0]);
    for (size_t i = 1; i < n; i++)
        memcpy(c->input_topics[i], topics[i], sizeof topics[i]);
    c->input_topic_count = (uint32_t)n;
    return 0;
}

void cue_config_set_input_topic(cue_config *c, const char *topic)
{
    CUE_ASSERT(strlen(topic) <= CUE_TOPIC_BYTES_MAX);
    snprintf(c->input_topic, sizeof c->input_topic, "%s", topic);
    memcpy(c->input_topics[0], c->input_topic, sizeof c->input_topic);
    c->input_topic_count = 1;
}

const char *cue_config_input_topic_name(const cue_config *c, uint32_t i)
{
    CUE_ASSERT(i < (c->input_topic_count ? c->input_topic_count : 1));
    return i ? c->input_topics[i] : c->input_topic;
}

int cue_config_input_topic_index(const cue_config *c, const char *topic)
{
    for (uint32_t i = 0; i < c->input_topic_count; i++)
        if (strcmp(c->input_topics[i], topic) == 0) return (int)i;
    return -1;
}

void cue_config_input_topics_join(const cue_config *c, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < c->input_topic_count && at < cap; i++) {
        int n = snprintf(out + at, cap - at, "%s%s", i ? "," : "", c->input_topics[i]);
        if (n < 0) break;
        at += (size_t)n;
    }
}

uint64_t cue_config_input_topics_hash(const cue_config *c, uint32_t n)
{
    CUE_ASSERT(n <= c->input_topic_count);
    uint64_t h = 0x746f70696373ULL; /* "topics" */
    for (uint32_t i = 0; i < n; i++)
        h = cue_hash64(c->input_topics[i], strlen(c->input_topics[i]) + 1, h); /* with its NUL */
    return h | 1;
}

int cue_config_one_input(const cue_config *c, const char *what, cue_err *err)
{
    if (c->input_topic_count <= 1) return 0;
    char list[CUE_INPUT_TOPICS_MAX * (CUE_TOPIC_BYTES_MAX + 1)];
    cue_config_input_topics_join(c, list, sizeof list);
    return cue_err_set(err, CUE_ECONFIG,
                       "%s reads one input topic, and input.topics lists %u (%.300s): not "
                       "supported with several input topics yet (docs/kafka.md, \"Several input "
                       "topics\")",
                       what, (unsigned)c->input_topic_count, list);
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
                                   "input.topics",
                                   "trigger.topic",
                                   "errors.dead.letter.queue.topic.name",
                                   "admin.listen",
                                   "admin.users.token",
                                   "wall.clock.advance",
                                   "changelog.enabled",
                                   "changelog.delete.retention.ms",
                                   "repartition",
                                   "num.standby.replicas",
                                   "num.stream.threads",
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
                                   "late.policy",
                                   "event.time.max.future.ms",
                                   "event.time.min",
                                   "event.id.dedup.max",
                                   "state.ttl",
                                   "log.level",
                                   "log.format"};

static const char *const log_formats[] = {"auto", "json", "text"};

static int log_format_value(cue_config *c, json_t *v, const char *path, cue_err *err)
{
    const char *s = json_string_value(v);
    for (int f = 0; s && f < 3; f++)
        if (strcmp(s, log_formats[f]) == 0) {
            c->log_format = (cue_log_format)f;
            return 0;
        }
    return cue_err_set(err, CUE_ECONFIG, "%s: must be \"auto\", \"json\" or \"text\"", path);
}

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

static const char *const log_levels[] = {"debug", "info", "warn", "error"};

static int log_level_value(cue_config *c, json_t *v, const char *path, cue_err *err)
{
    const char *s = json_string_value(v);
    for (int l = 0; s && l < 4; l++)
        if (strcmp(s, log_levels[l]) == 0) {
            c->log_level = (cue_log_level)l;
            return 0;
        }
    return cue_err_set(err, CUE_ECONFIG, "%s: must be \"debug\", \"info\", \"warn\" or \"error\"",
                       path);
}

/* What an apply_*_key returns for a key of another group. */
#define NOT_MINE 1

/* The engine's own settings: identity, directories, the commit and the cache. */
static int apply_core_key(cue_config *c, const char *key, json_t *v, const char *path,
                          const char *dir, cue_err *err)
{
    int64_t n = 0;
    int rc = 0;
    if (strcmp(key, "application.id") == 0) {
        rc = string_value(v, path, dir, c->application_id, sizeof c->application_id, err);
        if (rc == 0 && c->application_id[0] == '\0')
            rc = cue_err_set(err, CUE_ECONFIG, "%s: must not be empty", path);
    } else if (strcmp(key, "state.dir") == 0) {
        rc = path_value(v, path, dir, c->state_dir, sizeof c->state_dir, err);
    } else if (strcmp(key, "machines.dir") == 0) {
        rc = path_value(v, path, dir, c->machines_dir, sizeof c->machines_dir, err);
    } else if (strcmp(key, "policies") == 0) {
        rc = path_value(v, path, dir, c->policies, sizeof c->policies, err);
    } else if (strcmp(key, "decisions.topic") == 0) {
        rc = string_value(v, path, dir, c->decisions_topic, sizeof c->decisions_topic, err);
    } else if (strcmp(key, "statestore.cache.max.bytes") == 0) {
        rc = int_value(v, path, CUE_CACHE_BYTES_MIN, (int64_t)1 << 40, &n, err);
        c->cache_max_bytes = rc == 0 ? (size_t)n : c->cache_max_bytes;
    } else if (strcmp(key, "commit.interval.ms") == 0) {
        rc = int_value(v, path, 1, 3600 * 1000, &c->commit_interval_ms, err);
    } else if (strcmp(key, "commit.records") == 0) {
        rc = int_value(v, path, 1, 10 * 1000 * 1000, &c->commit_records, err);
    } else {
        return NOT_MINE;
    }
    return rc;
}

/* How events are read: fields, sizes, time and lateness, timers. */
static int apply_event_key(cue_config *c, const char *key, json_t *v, const char *path,
                           const char *dir, cue_err *err)
{
    int64_t n = 0;
    int rc = 0;
    if (strcmp(key, "event.user_id") == 0) {
        rc = ptr_value(v, path, dir, &c->ptr_user_id, err);
    } else if (strcmp(key, "event.type") == 0) {
        rc = ptr_value(v, path, dir, &c->ptr_type, err);
    } else if (strcmp(key, "event.time") == 0) {
        rc = ptr_value(v, path, dir, &c->ptr_time, err);
    } else if (strcmp(key, "event.id") == 0) {
        rc = ptr_value(v, path, dir, &c->ptr_event_id, err);
    } else if (strcmp(key, "event.attributes") == 0) {
        rc = attrs_value(c, v, path, dir, err);
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
    } else if (strcmp(key, "event.time.max.future.ms") == 0) {
        rc = lateness_value(v, path, &c->event_max_future_ms, err);
    } else if (strcmp(key, "event.time.min") == 0) {
        rc = time_value(v, path, &c->event_time_min_ms, err);
    } else if (strcmp(key, "event.id.dedup.max") == 0) {
        rc = int_value(v, path, 0, CUE_EVENT_IDS_MAX, &n, err);
        c->event_id_dedup_max = rc == 0 ? (uint32_t)n : c->event_id_dedup_max;
    } else if (strcmp(key, "state.ttl") == 0) {
        rc = ttl_value(v, path, &c->state_ttl_ms, err);
    } else {
        return NOT_MINE;
    }
    return rc;
}

/* Kafka, the runtime and its admin endpoint. */
static int apply_kafka_key(cue_config *c, const char *key, json_t *v, const char *path,
                           const char *dir, cue_err *err)
{
    int rc = 0;
    if (strcmp(key, "bootstrap.servers") == 0) {
        rc = string_value(v, path, dir, c->bootstrap_servers, sizeof c->bootstrap_servers, err);
        if (rc == 0 && c->bootstrap_servers[0] == '\0')
            rc = cue_err_set(err, CUE_ECONFIG, "%s: must not be empty", path);
    } else if (strcmp(key, "input.topic") == 0) {
        rc = input_topic_value(c, v, path, dir, err);
    } else if (strcmp(key, "input.topics") == 0) {
        rc = input_topics_value(c, v, path, dir, err);
    } else if (strcmp(key, "trigger.topic") == 0) {
        rc = topic_value(v, path, dir, c->trigger_topic, sizeof c->trigger_topic, err);
    } else if (strcmp(key, "errors.dead.letter.queue.topic.name") == 0) {
        rc = topic_value(v, path, dir, c->dead_letter_topic, sizeof c->dead_letter_topic, err);
    } else if (strcmp(key, "admin.listen") == 0) {
        rc = string_value(v, path, dir, c->admin_listen, sizeof c->admin_listen, err);
    } else if (strcmp(key, "admin.users.token") == 0) {
        rc = token_value(v, path, dir, c->admin_users_token, sizeof c->admin_users_token, err);
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
    } else if (strcmp(key, "num.stream.threads") == 0) {
        rc = int_value(v, path, 1, CUE_STREAM_THREADS_MAX, &c->stream_threads, err);
    } else if (strcmp(key, "processing.guarantee") == 0) {
        rc = guarantee_value(c, v, path, err);
    } else if (strcmp(key, "startup.timeout.ms") == 0) {
        rc = int_value(v, path, 100, 3600 * 1000, &c->startup_timeout_ms, err);
    } else if (strcmp(key, "shutdown.timeout.ms") == 0) {
        rc = int_value(v, path, 100, 3600 * 1000, &c->shutdown_timeout_ms, err);
    } else if (strcmp(key, "delivery.timeout.ms") == 0) {
        rc = int_value(v, path, 1000, 24 * 3600 * 1000, &c->delivery_timeout_ms, err);
    } else if (strcmp(key, "kafka") == 0) {
        rc = kafka_value(c, v, path, dir, err);
    } else {
        return NOT_MINE;
    }
    return rc;
}

/* Applies one top-level key. `path` is "$.key" for messages; `dir` is the
 * config file's directory, or NULL for a command-line value. */
static int apply_key(cue_config *c, const char *key, json_t *v, const char *path, const char *dir,
                     cue_err *err)
{
    if (strcmp(key, "$schema") == 0) return 0;
    if (strcmp(key, "log.level") == 0) return log_level_value(c, v, path, err);
    if (strcmp(key, "log.format") == 0) return log_format_value(c, v, path, err);
    int rc = apply_core_key(c, key, v, path, dir, err);
    if (rc == NOT_MINE) rc = apply_event_key(c, key, v, path, dir, err);
    if (rc == NOT_MINE) rc = apply_kafka_key(c, key, v, path, dir, err);
    if (rc != NOT_MINE) return rc;
    const char *near = cue_nearest_name(key, keys, sizeof keys / sizeof *keys);
    return cue_err_set(err, CUE_ECONFIG, "%s: unknown setting%s%s%s", path,
                       near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

/* The directory part of `path`, for resolve(): "" when it has none (the
 * working directory), "/" for a file at the root. */
static void dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    snprintf(out, cap, "%.*s", (int)n, path);
}

/* Applies the parsed file `root` (taken: released here); `path` names it,
 * and relative paths in it are resolved against `dir` (NULL: as given). */
static int config_apply(cue_config *c, json_t *root, const char *path, const char *dir,
                        cue_err *err)
{
    int rc = 0;
    if (!json_is_object(root)) rc = cue_err_set(err, CUE_ECONFIG, "$: must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        char p[300];
        snprintf(p, sizeof p, "$.%.200s", key);
        if (rc == 0) rc = apply_key(c, key, v, p, dir, err);
    }
    json_decref(root);
    if (rc != 0) cue_err_prefix(err, "%s", path);
    return rc == 0 ? 0 : CUE_ECONFIG;
}

int cue_config_load(cue_config *c, const char *path, cue_err *err)
{
    /* Opened here, not by jansson, so that a missing file is told apart
     * from a bad one: the former is exit 66 (EX_NOINPUT), the latter 78. */
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cue_err_set(err, CUE_ENOTFOUND, "configuration file %s: %s", path, strerror(errno));
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s: line %d, column %d: %s", path, jerr.line,
                           jerr.column, jerr.text);
    char dir[CUE_PATH_MAX];
    dir_of(path, dir, sizeof dir);
    return config_apply(c, root, path, dir, err);
}

int cue_config_load_text(cue_config *c, const char *name, const char *text, size_t len,
                         cue_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return cue_err_set(err, CUE_ECONFIG, "%s: line %d, column %d: %s", name, jerr.line,
                           jerr.column, jerr.text);
    /* No file, no directory: paths are taken as given, as with --set. */
    return config_apply(c, root, name, NULL, err);
}

/* `--set kafka.PROP=V` (both clients), `kafka.consumer.PROP=V` or
 * `kafka.producer.PROP=V`: the file's "kafka" object, one property at a
 * time, so a librdkafka setting does not need a config file of its own. */
static int kafka_set(cue_config *c, const char *prop, json_t *v, const char *path, cue_err *err)
{
    if (strcmp(prop, "consumer") == 0 || strcmp(prop, "producer") == 0)
        return cue_err_set(err, CUE_ECONFIG,
                           "%s: set one property at a time: --set kafka.%s.PROP=VALUE", path, prop);
    int clients = CUE_KAFKA_BOTH;
    if (strncmp(prop, "consumer.", 9) == 0) {
        clients = CUE_KAFKA_CONSUMER;
        prop += 9;
    } else if (strncmp(prop, "producer.", 9) == 0) {
        clients = CUE_KAFKA_PRODUCER;
        prop += 9;
    }
    return kafka_prop(c, clients, prop, v, path, NULL, err);
}

int cue_config_set(cue_config *c, const char *key, const char *value, cue_err *err)
{
    /* A value that reads as JSON (numbers, objects) is taken as such; anything
     * else is a string, so `--set state.dir=/tmp/x` needs no quotes. Paths
     * given here are the shell's: relative to the working directory. */
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    if (v == NULL) v = json_string(value);
    if (v == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    char p[300];
    snprintf(p, sizeof p, "$.%.200s", key);
    /* Either key on the command line replaces the input, whichever the file gave. */
    if (strcmp(key, "input.topic") == 0 || strcmp(key, "input.topics") == 0)
        c->input_keys_given = 0;
    int rc = strncmp(key, "kafka.", 6) == 0 ? kafka_set(c, key + 6, v, p, err)
                                            : apply_key(c, key, v, p, NULL, err);
    json_decref(v);
    return rc == 0 ? 0 : CUE_ECONFIG;
}

int cue_config_check(const cue_config *c, cue_err *err)
{
    if (c->repartition && c->input_topic_count > 1)
        return cue_err_set(err, CUE_ECONFIG,
                           "$.repartition: the repartition stage reads one input topic, and "
                           "input.topics lists %u; several input topics must be keyed by user id "
                           "and co-partitioned",
                           (unsigned)c->input_topic_count);
    if (c->exactly_once && c->repartition)
        return cue_err_set(err, CUE_ECONFIG,
                           "$.processing.guarantee: exactly_once_v2 does not cover the repartition "
                           "stage yet; use at_least_once with repartition");
    /* The transaction commits before the local store is written: a crash
     * between the two leaves the store a cycle behind, and only the
     * changelog (its meta record is in the committed transaction) brings it
     * forward; without it the cycle would be redone and its triggers
     * committed twice. Kafka Streams always has a changelog. */
    if (c->exactly_once && !c->changelog)
        return cue_err_set(err, CUE_ECONFIG,
                           "$.processing.guarantee: exactly_once_v2 needs \"changelog.enabled\": "
                           "true (after a crash between a transaction's commit and the local "
                           "store's write, the state is restored from the changelog)");
    if (c->standby_replicas > 0 && !c->changelog)
        return cue_err_set(err, CUE_ECONFIG,
                           "$.num.standby.replicas: %lld needs \"changelog.enabled\": true (a "
                           "standby replica is kept from the changelog)",
                           (long long)c->standby_replicas);
    return 0;
}

/* ---- dump -------------------------------------------------------------- */

/* One client's passthrough properties as an object, each value as it was
 * written (a number stays a number), secrets redacted. */
static json_t *dump_kafka(const cue_config *c, int clients)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < c->kafka_len; i++) {
        if (c->kafka[i].clients != clients) continue;
        const char *k = cue_config_kafka_key(c, i), *v = cue_config_kafka_value(c, i);
        json_t *val = cue_config_secret(k)                   ? json_string("[redacted]")
                      : c->kafka[i].kind == CUE_KAFKA_NUMBER ? json_integer(strtoll(v, NULL, 10))
                      : c->kafka[i].kind == CUE_KAFKA_BOOL   ? json_boolean(strcmp(v, "true") == 0)
                                                             : json_string(v);
        json_object_set_new(o, k, val);
    }
    return o;
}

static json_t *dump_attributes(const cue_config *c)
{
    json_t *o = json_object();
    for (int a = 0; o && a < CUE_ATTR_COUNT; a++)
        json_object_set_new(o, cue_attr_names[a],
                            c->ptr_attr[a].source[0] ? json_string(c->ptr_attr[a].source)
                                                     : json_null());
    return o;
}

int cue_config_dump(const cue_config *c, cue_buf *b)
{
    json_t *o = json_object();
    if (o == NULL) return CUE_ENOMEM;
#define S(k, v) json_object_set_new(o, k, json_string(v))
#define I(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
#define B(k, v) json_object_set_new(o, k, json_boolean(v))
    S("application.id", c->application_id);
    S("bootstrap.servers", c->bootstrap_servers);
    if (c->input_topic_count > 1) {
        json_t *l = json_array();
        for (uint32_t i = 0; l && i < c->input_topic_count; i++)
            json_array_append_new(l, json_string(c->input_topics[i]));
        json_object_set_new(o, "input.topics", l);
    } else {
        S("input.topic", c->input_topic);
    }
    S("trigger.topic", c->trigger_topic);
    S("errors.dead.letter.queue.topic.name", cue_config_dead_letter_topic(c));
    S("state.dir", c->state_dir);
    S("machines.dir", c->machines_dir);
    S("policies", c->policies);
    S("decisions.topic", cue_config_decisions_topic(c));
    S("admin.listen", c->admin_listen);
    S("admin.users.token", c->admin_users_token[0] ? "[redacted]" : "");
    S("log.level", log_levels[c->log_level]);
    S("log.format", log_formats[c->log_format]);
    I("statestore.cache.max.bytes", c->cache_max_bytes);
    I("commit.interval.ms", c->commit_interval_ms);
    I("commit.records", c->commit_records);
    S("event.user_id", c->ptr_user_id.source);
    S("event.type", c->ptr_type.source);
    S("event.time", c->ptr_time.source);
    S("event.id", c->ptr_event_id.source);
    json_object_set_new(o, "event.attributes", dump_attributes(c));
    I("event.max.bytes", c->event_bytes_max);
    I("timers.memory.max", c->timers_memory_max);
    I("allowed.lateness.ms", c->allowed_lateness_ms);
    S("late.policy", c->late_policy == CUE_LATE_APPLY ? "apply" : "dead_letter");
    I("event.time.max.future.ms", c->event_max_future_ms);
    I("event.time.min", c->event_time_min_ms);
    I("event.id.dedup.max", c->event_id_dedup_max);
    I("state.ttl", c->state_ttl_ms);
    B("wall.clock.advance", c->wall_clock);
    B("changelog.enabled", c->changelog);
    I("changelog.delete.retention.ms", c->changelog_delete_retention_ms);
    B("repartition", c->repartition);
    I("num.standby.replicas", c->standby_replicas);
    I("num.stream.threads", c->stream_threads);
    S("processing.guarantee", c->exactly_once ? "exactly_once_v2" : "at_least_once");
    I("startup.timeout.ms", c->startup_timeout_ms);
    I("shutdown.timeout.ms", c->shutdown_timeout_ms);
    I("delivery.timeout.ms", c->delivery_timeout_ms);
#undef S
#undef I
#undef B
    json_t *k = dump_kafka(c, CUE_KAFKA_BOTH);
    if (k) json_object_set_new(k, "consumer", dump_kafka(c, CUE_KAFKA_CONSUMER));
    if (k) json_object_set_new(k, "producer", dump_kafka(c, CUE_KAFKA_PRODUCER));
    json_object_set_new(o, "kafka", k);
    /* The dump reads back as a config file: same keys, same order, the
     * values it would set. */
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text == NULL) return CUE_ENOMEM;
    int rc = cue_buf_append_str(b, text);
    if (rc == 0) rc = cue_buf_append_char(b, '\n');
    free(text);
    return rc == 0 ? 0 : CUE_ENOMEM;
}
