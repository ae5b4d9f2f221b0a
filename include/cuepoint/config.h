/*
 * config: cuepoint's one JSON configuration file, validated at start-up.
 *
 * Names follow Kafka Streams where the concept matches (application.id,
 * state.dir, commit.interval.ms, statestore.cache.max.bytes). Every key is
 * optional; defaults are in cue_config_defaults and in docs/configuration.md.
 * Unknown keys and wrong types are errors naming the JSON path and, for a
 * misspelt key, the nearest known one: a typo must not silently fall back to a
 * default. Start-up only; the struct is then read-only and owned by the caller.
 */
#ifndef CUEPOINT_CONFIG_H
#define CUEPOINT_CONFIG_H

#include "cuepoint/buf.h"
#include "cuepoint/err.h"
#include "cuepoint/json.h"
#include "cuepoint/limits.h"
#include "cuepoint/log.h"
#include "cuepoint/machine.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CUE_PATH_MAX 1024

typedef enum cue_late_policy {
    CUE_LATE_APPLY = 0,   /* apply it as if on time, and count it */
    CUE_LATE_DEAD_LETTER, /* send it to the dead letters with reason "late" */
} cue_late_policy;

/* Which librdkafka client a passed-through property is for. */
enum { CUE_KAFKA_CONSUMER = 1, CUE_KAFKA_PRODUCER = 2, CUE_KAFKA_BOTH = 3 };

/* How a passed-through property was written, so a dump writes it back the
 * same way (librdkafka takes every value as text). */
enum { CUE_KAFKA_TEXT = 0, CUE_KAFKA_NUMBER, CUE_KAFKA_BOOL };

/* Offsets into the config's kafka_text (not pointers, so the struct copies). */
typedef struct cue_kafka_prop {
    int clients; /* CUE_KAFKA_CONSUMER, _PRODUCER or _BOTH */
    int kind;    /* CUE_KAFKA_TEXT, _NUMBER or _BOOL */
    uint32_t key_off;
    uint32_t value_off;
} cue_kafka_prop;

/* Paths (state.dir, machines.dir, policies, and {"file": PATH} values) read
 * from a config file are taken from that file's directory when relative; the
 * defaults and command-line values (cue_config_set) from the working
 * directory. */
typedef struct cue_config {
    char application_id[CUE_NAME_BYTES_MAX + 1]; /* "cuepoint" */
    char state_dir[CUE_PATH_MAX];                /* "state" */
    char machines_dir[CUE_PATH_MAX];             /* "deploy/machines" */
    /* The policy file (policy.h); "" runs without the policy stage. */
    char policies[CUE_PATH_MAX];
    cue_log_level log_level;   /* log.level: "info" (debug, info, warn, error) */
    cue_log_format log_format; /* log.format: "auto" (text at a terminal), json, text */
    /* decisions.topic: "" means <application.id>-decisions. */
    char decisions_topic[CUE_TOPIC_BYTES_MAX + 1];
    size_t cache_max_bytes;     /* statestore.cache.max.bytes: 64 MiB */
    int64_t commit_interval_ms; /* 1000 (file mode: records per commit below) */
    int64_t commit_records;     /* commit.records: 1000000 */

    /* Where things are in an event (JSON Pointers). */
    cue_json_ptr ptr_user_id;              /* event.user_id: "/user_id" */
    cue_json_ptr ptr_type;                 /* event.type: "/type" */
    cue_json_ptr ptr_time;                 /* event.time: "/ts" */
    cue_json_ptr ptr_event_id;             /* event.id: "/event_id" */
    cue_json_ptr ptr_attr[CUE_ATTR_COUNT]; /* event.attributes.<name>: "/user/<name>" */
    size_t event_bytes_max;                /* event.max.bytes: 1 MiB */

    size_t timers_memory_max;    /* timers.memory.max: CUE_TIMER_WINDOW_MAX timers in memory */
    int64_t allowed_lateness_ms; /* allowed.lateness.ms: 3600000 (1 h) */
    cue_late_policy late_policy; /* late.policy: "dead_letter" */
    /* event.time.max.future.ms: 3600000 (1 h). How far an event's time may be
     * ahead of its record's reference time (the Kafka timestamp, else the
     * reader's clock) before it is a future_time dead letter. */
    int64_t event_max_future_ms;
    /* event.time.min: 2000-01-01T00:00:00Z (epoch ms here). Earlier event
     * times are bad_time dead letters: 0 and small numbers are what clocks
     * that were never set send, and one applied first would fire a user's
     * timers decades early. */
    int64_t event_time_min_ms;
    /* event.id.dedup.max: 32. Event ids remembered per user (those of events
     * within allowed.lateness.ms of stream time) to skip a re-sent event; 0
     * switches it off. At most CUE_EVENT_IDS_MAX. */
    uint32_t event_id_dedup_max;
    /* state.ttl: 0 (off). A user with no event for this long, no timer and
     * no deferred trigger is deleted, by stream time (a journey's own
     * `state_ttl` drops its instances: machine.h). A number of ms or a
     * duration like "90d". */
    int64_t state_ttl_ms;

    /* The Kafka pipeline (`cuepoint run`). */
    char bootstrap_servers[CUE_PATH_MAX];      /* "localhost:9092" */
    char input_topic[CUE_TOPIC_BYTES_MAX + 1]; /* input.topic: "events" */
    /* input.topics: the input topics read as one stream, partition N of each
     * going to the same task (co-partitioned). input.topic is the list of
     * one; input_topics[0] is always input_topic. Giving both keys is an
     * error. */
    char input_topics[CUE_INPUT_TOPICS_MAX][CUE_TOPIC_BYTES_MAX + 1];
    uint32_t input_topic_count;
    uint8_t input_keys_given;                        /* bit 0: input.topic, bit 1: input.topics */
    char trigger_topic[CUE_TOPIC_BYTES_MAX + 1];     /* trigger.topic: "triggers" */
    char dead_letter_topic[CUE_TOPIC_BYTES_MAX + 1]; /* errors.dead.letter.queue.topic.name:
                                                      * "<application.id>-dead-letters" */
    char admin_listen[CUE_LISTEN_BYTES_MAX];         /* admin.listen: "127.0.0.1:9464"; "" is off */
    /* admin.users.token: the bearer token /v1/users/{id} asks for; "" for
     * none. A secret: never in a log, an error or a dump. */
    char admin_users_token[CUE_TOKEN_BYTES_MAX + 1];
    bool wall_clock; /* wall.clock.advance: true */
    /* changelog.enabled: true. Each commit also writes the changed users to
     * <application.id>-changelog, so another instance can rebuild a partition. */
    bool changelog;
    /* changelog.delete.retention.ms: 86400000 (Kafka's default). How long the
     * changelog keeps a tombstone; cuepoint creates the topic with it. A
     * local copy (a former owner's, a standby's) last in line with the
     * changelog longer ago than about this may have missed a tombstone
     * compacted away since, so it is emptied and restored in full. */
    int64_t changelog_delete_retention_ms;
    /* repartition: false. The input is not keyed by user id: a first stage
     * re-keys each record by its user id into <application.id>-repartition,
     * which the journeys then read. */
    bool repartition;
    /* num.standby.replicas: 0. Copies of each partition's state that other
     * instances keep current from its changelog (needs changelog.enabled), so
     * a fail-over restores only the tail (standby.h says where they go). */
    int64_t standby_replicas;
    /* num.stream.threads: 1. Threads that process the input's records: an
     * instance's partitions are spread over them, each partition's records
     * in order on one thread (runtime.h, "stream threads"). */
    int64_t stream_threads;
    /* processing.guarantee: "at_least_once". "exactly_once_v2" puts each
     * commit cycle's triggers, dead letters, decisions, changelog records and
     * input offsets in one Kafka transaction (see cue_kafka_txn_commit). */
    bool exactly_once;
    /* Not a key: the producer's transactional.id under exactly_once, set by
     * the runtime at start-up (see runtime.c, txn_id_derive). */
    char transactional_id[CUE_NAME_BYTES_MAX + 160];
    int64_t startup_timeout_ms;  /* startup.timeout.ms: 30000, then exit 69 */
    int64_t shutdown_timeout_ms; /* shutdown.timeout.ms: 30000 */
    int64_t delivery_timeout_ms; /* delivery.timeout.ms: 120000 (librdkafka message.timeout.ms) */

    /* "kafka": librdkafka properties, passed through unchanged. Keys and
     * values live in kafka_text; secrets are never printed (cue_config_secret). */
    cue_kafka_prop kafka[CUE_KAFKA_PROPS_MAX];
    size_t kafka_len;
    char kafka_text[CUE_KAFKA_PROPS_BYTES_MAX];
    size_t kafka_text_len;
} cue_config;

/* Fills every field with its default. */
void cue_config_defaults(cue_config *c);

/* Reads `path` over the defaults already in `c`. CUE_ECONFIG with the file and
 * JSON path on a bad value; CUE_ENOTFOUND, naming the path, when the file
 * cannot be opened (missing or unreadable). */
int cue_config_load(cue_config *c, const char *path, cue_err *err);
/* The same from `len` bytes of JSON text; `name` stands for the file. */
int cue_config_load_text(cue_config *c, const char *name, const char *text, size_t len,
                         cue_err *err);

/* The rules between settings that no single key can check (exactly-once
 * and standby replicas need the changelog, ...): CUE_ECONFIG naming the key.
 * `cuepoint run` and `run --print-config` both apply them. */
int cue_config_check(const cue_config *c, cue_err *err);

/* Applies one "key=value" override (as from the command line) with the same
 * checks as the file. */
int cue_config_set(cue_config *c, const char *key, const char *value, cue_err *err);

/* True for property names whose values are secrets: *.password, *.secret,
 * sasl.*, ssl.key.*. Their values never appear in a log, an error or a dump. */
bool cue_config_secret(const char *key);

/* The `i`th passed-through property's key and value (i < c->kafka_len). */
const char *cue_config_kafka_key(const cue_config *c, size_t i);
const char *cue_config_kafka_value(const cue_config *c, size_t i);

/* The dead-letter topic: the configured one, or "<application.id>-dead-letters". */
const char *cue_config_dead_letter_topic(const cue_config *c);
/* The changelog topic: "<application.id>-changelog" (compacted, one
 * partition per input partition). */
const char *cue_config_changelog_topic(const cue_config *c);
/* The repartition topic: "<application.id>-repartition". */
const char *cue_config_repartition_topic(const cue_config *c);
/* The members topic of the standby placement: "<application.id>-members". */
const char *cue_config_members_topic(const cue_config *c);
/* The decisions topic: the configured one, or "<application.id>-decisions". */
const char *cue_config_decisions_topic(const cue_config *c);

/* Makes `topic` the only input topic (a reader of another topic: the
 * changelog, the repartition topic). `topic` is at most CUE_TOPIC_BYTES_MAX. */
void cue_config_set_input_topic(cue_config *c, const char *topic);
/* Input topic `i`'s name (0: input.topic, also in a configuration that set
 * input.topic alone); `i` is below input_topic_count. */
const char *cue_config_input_topic_name(const cue_config *c, uint32_t i);
/* The index of `topic` in input.topics, or -1. */
int cue_config_input_topic_index(const cue_config *c, const char *topic);
/* The input topics joined by ',' into `out` (cut to `cap`). */
void cue_config_input_topics_join(const cue_config *c, char *out, size_t cap);
/* A hash of the first `n` input topics' names, in order (at most
 * input_topic_count): what the changelog's position records carry, so that a
 * restore can tell a changelog written reading other topics. Never 0. */
uint64_t cue_config_input_topics_hash(const cue_config *c, uint32_t n);
/* For a tool that reads one input topic (`what` names it): CUE_ECONFIG
 * naming input.topics and its topics when there are several. */
int cue_config_one_input(const cue_config *c, const char *what, cue_err *err);

/* Writes the effective configuration as JSON to `out` (two-space indent,
 * numbers and booleans as JSON numbers and booleans, readable back as a config
 * file), secrets replaced by "[redacted]". CUE_ENOMEM only. */
int cue_config_dump(const cue_config *c, cue_buf *out);

#endif
