/*
 * limits: every fixed bound in cuepoint, each with the reason for its value.
 *
 * Bounds make memory a function of configuration rather than of input. Config
 * and machine files are validated against these at start-up, so the hot path
 * can rely on them without checking twice. Header only.
 */
#ifndef CUEPOINT_LIMITS_H
#define CUEPOINT_LIMITS_H

/* An event is one Kafka record or one file line. 1 MiB is Kafka's default
 * message.max.bytes; anything larger is a dead letter, not a reason to grow. */
#define CUE_EVENT_BYTES_MAX (1024 * 1024)

/* Tokens in one event. A flat behavioural event has a few dozen; 4096 leaves room
 * for nested props while keeping the token array (16 B each) at 64 KiB. */
#define CUE_EVENT_TOKENS_MAX 4096

/* Nesting depth accepted by the tokenizer: bounds its stack, and no event we
 * have seen nests beyond 5. */
#define CUE_JSON_DEPTH_MAX 64

/* Segments in one JSON Pointer ("/props/project/id" has 3). */
#define CUE_JSON_PTR_SEGS_MAX 8

/* Bytes of a JSON Pointer's text. */
#define CUE_JSON_PTR_BYTES_MAX 256

/* Distinct event fields (JSON Pointers) the decoder resolves in its one pass
 * over a record: the configuration's, the journeys' and the policy's. The
 * example journeys and policy read 14; a field past the bound is still read,
 * by a second pass over the record. */
#define CUE_EVENT_FIELDS_MAX 64

/* Segment text of those fields, shared where they share a prefix. */
#define CUE_EVENT_FIELDS_TEXT_MAX 4096

/* User ids are keys in RocksDB and Kafka: 128 bytes covers UUIDs, emails and
 * prefixed ids with room to spare. */
#define CUE_USER_ID_BYTES_MAX 128

/* A Kafka topic name: Kafka's own limit is 249 bytes. */
#define CUE_TOPIC_BYTES_MAX 249

/* Input topics read as one stream (input.topics): a product's sources (web,
 * mobile, billing, ...). Each user's state keeps one applied offset per topic
 * and each partition's meta one position per topic, so the bound keeps both
 * small; eight is more sources than any product we have seen. */
#define CUE_INPUT_TOPICS_MAX 8

/* Processing threads of one instance (num.stream.threads): beyond this a
 * machine is better served by more instances (each with its own consumer
 * and producer) than by more threads sharing one. */
#define CUE_STREAM_THREADS_MAX 64

/* A changelog position record's text at most (task, restore): its keys,
 * a stream time, one offset (20 digits and a comma) per input topic, and
 * which topics they are (a count and a hash). */
#define CUE_POSITION_TEXT_BYTES_MAX (64 + 21 * CUE_INPUT_TOPICS_MAX + 48)

/* librdkafka properties passed through from the config's "kafka" object: more
 * than librdkafka's ~150 properties would mean a config generated wrong, and the
 * text (keys and values, certificates included) fits a fixed arena. */
#define CUE_KAFKA_PROPS_MAX       128
#define CUE_KAFKA_PROPS_BYTES_MAX (64 * 1024)

/* Event types, trigger names, machine, state, timer, counter and variable names. */
#define CUE_NAME_BYTES_MAX 64

/* User attributes (role, time zone, region, locale): an IANA zone name is at most ~32. */
#define CUE_ATTR_BYTES_MAX 64

/* Time zone names one task's cue_tz holds. Debian's tzdata 2025b has 598
 * names (zones and links); 1024 leaves room for newer data. A full cache is
 * ~90 KiB of names and slots. The zones themselves are GLib's, one per name in
 * the process however many caches hold it: ~35 KiB for a zone with daylight
 * time (GLib lists its transitions up to 2999), ~1 KiB for one without. */
#define CUE_TZ_ZONES_MAX 1024

/* A time zone name: zones come from a user attribute, so no longer than one. The
 * longest IANA name ("America/Argentina/ComodRivadavia") is 32 bytes. */
#define CUE_TZ_NAME_BYTES_MAX CUE_ATTR_BYTES_MAX

/* An instance key (a project id): same room as a user id. */
#define CUE_KEY_BYTES_MAX 128

/* A variable's string value: enough for a project name, small enough that an
 * instance with every variable full stays around a kilobyte. */
#define CUE_VALUE_BYTES_MAX 128

/* Machines loaded at once. Each event is offered to each machine, so this also
 * bounds the work per event. */
#define CUE_MACHINES_MAX 64

/* Per machine: states, transitions, timers, counters, variables, trigger names.
 * These keep compiled machines in fixed arrays and encoded names in one byte. */
#define CUE_MACHINE_STATES_MAX      64
#define CUE_MACHINE_TRANSITIONS_MAX 512
#define CUE_MACHINE_TIMERS_MAX      8
#define CUE_MACHINE_COUNTERS_MAX    8
#define CUE_MACHINE_VARS_MAX        8
#define CUE_MACHINE_TRIGGERS_MAX    32
#define CUE_TRANSITION_GUARDS_MAX   8
#define CUE_TRANSITION_ACTIONS_MAX  16
#define CUE_EMIT_FIELDS_MAX         16
#define CUE_GUARD_SET_MAX           16
/* The times a start_timer picks the earliest or latest of: "the earlier of the
 * trial's end and the renewal, or a week from now" is three; a longer list is
 * more likely a journey that wants two timers. */
#define CUE_TIMER_TERMS_MAX 4
/* Rules in one machine's `migrate` map, old states and old timers together:
 * one per state and timer of the old version, each state split at most a few
 * ways, fits with room. */
#define CUE_MIGRATE_RULES_MAX 128

/* Live machine instances per user across all machines. One keyed machine may
 * declare its own smaller bound (max_instances); this is the ceiling. */
#define CUE_USER_INSTANCES_MAX 64

/* Event ids remembered per user to recognise a re-sent event (a producer's
 * retry, a file sent twice) that arrives with a new position. Only ids of
 * events within allowed.lateness.ms of stream time are kept: an older copy is
 * late and refused as such. 8 bytes each in memory and on disk; 128 covers a
 * user's burst in an hour many times over, event.id.dedup.max picks how many. */
#define CUE_EVENT_IDS_MAX 128

/* Distinct event types across all machines (for the type lookup table). */
#define CUE_EVENT_TYPES_MAX 1024

/* An encoded user state. With the bounds above a full state fits in ~96 KiB;
 * 256 KiB is the hard ceiling the codec enforces on decode. */
#define CUE_STATE_BYTES_MAX (256 * 1024)

/* The policy stage's memory per user (codec.h, policy.h). Sends remembered
 * for frequency caps: a cap's max must fit (the policy compiler checks), and
 * 32 covers "7 in 7 days" with room. Deferred triggers wait in the user's
 * state with their whole record, so both are bounded; a trigger that would
 * be deferred past them is suppressed with the reason. Recent decisions are
 * what /v1/users/{id} shows. */
#define CUE_POLICY_SENDS_MAX          32
#define CUE_POLICY_DEFERRED_MAX       8
#define CUE_POLICY_DEFERRED_BYTES_MAX 2048
#define CUE_POLICY_DECISIONS_MAX      8
#define CUE_CHANNELS_MAX              4

/* Errors a policy file reports at most (then how many more): a screenful is
 * what a person reads, and a file with more is likely not a policy file. */
#define CUE_POLICY_ERRORS_MAX 20

/* Triggers one step may produce: each transition emits at most
 * CUE_TRANSITION_ACTIONS_MAX, and each instance takes one transition per step. */
#define CUE_STEP_TRIGGERS_MAX 256

/* Timers held in memory per task: the earliest ones; the rest wait in RocksDB.
 * 64k entries of ~150 B keep the window near 10 MiB. */
#define CUE_TIMER_WINDOW_MAX 65536

/* admin.listen's text: a DNS name (at most 253 bytes), or an IPv6 address in
 * brackets with its zone, then ':' and the port. */
#define CUE_LISTEN_BYTES_MAX 264

/* admin.users.token, a bearer token (RFC 6750's token characters): 16 bytes
 * at least, so that it cannot be guessed by trying; 256 at most, like other
 * secrets that come from a file or the environment. */
#define CUE_TOKEN_BYTES_MIN 16
#define CUE_TOKEN_BYTES_MAX 256

/* Lower bound for statestore.cache.max.bytes: below 1 MiB the cache cannot hold a
 * single commit cycle's dirty users. */
#define CUE_CACHE_BYTES_MIN (1024 * 1024)

#endif
