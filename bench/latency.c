/*
 * latency: end-to-end latency of `cuepoint run`, from producing an event to
 * reading the trigger it caused, for bench/pipeline.sh.
 *
 *   latency --bootstrap HOST:PORT --events-topic T --triggers-topic T2 --rate R
 *           [--seconds D] [--warmup-s W] [--drain-s S] [--window U] [--rounds]
 *           [--trace PATH] [--set k=v]...
 *
 * A producer thread paces events at R records/s for D seconds (linger.ms=1,
 * no compression), keyed by user id, each with "ts" = the wall-clock time
 * (epoch ms) at which it is produced, also used as the record's timestamp.
 * Every user goes through ten events: signed_up, file_uploaded,
 * member_invited, project_exported (causes onboarding_completed),
 * deadline_set, then five project_delivered (the fifth causes
 * fifth_project_delivered); the lifecycle journey sees them all. U users
 * (default 10,000) are in flight at once, round robin, so a user's events are
 * U records apart (U is smaller when the run is too short for every user to
 * finish). The users in flight are at different steps: slot s starts its
 * first user s mod 10 rounds late, so every stretch of records holds every
 * step alike and a fifth of them cause a trigger, evenly through the run.
 * --rounds keeps the slots in step instead: every user in flight is at the
 * same step, so two rounds in ten (U records each) all cause a trigger and
 * the other eight none, the burst that shape makes.
 *
 * The main thread reads the trigger topic (assigned, from the beginning; it
 * must exist before) and for each trigger takes receive wall time minus the
 * record's timestamp. A trigger caused by an event carries that event's time:
 * the record timestamp must equal the ts this program gave the causing event
 * and the CloudEvents "time" field; mismatches are counted. Triggers whose
 * cause came in the first W seconds (default 2, or a quarter of D when
 * shorter) are not sampled (warm-up). Timestamps are whole milliseconds, so
 * each latency is up to 1 ms high.
 * --trace writes every trigger's cause time (seconds from the start) and
 * latency (ms), one per line, to PATH, to see when the slow ones came.
 * --set passes librdkafka properties to both clients (e.g. fetch.wait.max.ms).
 * Prints one line:
 *   latency shape=staggered|rounds target_rate=R produce_rate=R2 produced=N seconds=D triggers=T
 * expected=E samples=S p50_ms=.. p99_ms=.. max_ms=.. ts_mismatch=M Exit 0 when every expected
 * trigger came and none mismatched, 1 otherwise.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROPS 32
#define STEPS     10

typedef struct opts {
    const char *bootstrap, *events_topic, *triggers_topic;
    double rate, seconds, warmup, drain;
    int64_t window;
    bool rounds;       /* every slot at the same step (the bursty shape) */
    const char *trace; /* every sampled trigger: cause time (s from start), latency (ms) */
    char *props[MAX_PROPS];
    int n_props;
} opts;

/* Shared between the threads: the cause time of each user's two triggers. */
static _Atomic int64_t *cause_onboarding, *cause_fifth;
static int64_t max_users;
static int64_t start_ms; /* wall clock when producing began */
static atomic_bool producing_done;
static atomic_uint_least64_t produced, expected_triggers;
static double produce_seconds;

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static double wall_ms_f(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char why[512];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof why) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "latency: %s=%s: %s\n", k, v, why);
        exit(2);
    }
}

static void set_props(rd_kafka_conf_t *conf, const opts *o, bool consumer)
{
    for (int i = 0; i < o->n_props; i++) {
        char kv[512];
        snprintf(kv, sizeof kv, "%s", o->props[i]);
        char *eq = strchr(kv, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        /* fetch.* and max.partition.* are consumer-only properties */
        bool consumer_only =
            strncmp(kv, "fetch.", 6) == 0 || strncmp(kv, "max.partition.", 14) == 0;
        if (consumer || !consumer_only) set(conf, kv, eq + 1);
    }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) fprintf(stderr, "latency: delivery failed: %s\n", rd_kafka_err2str(m->err));
}

/* The j-th event of the stream: its user and step; false when its slot
 * has not started yet (no event: the slot's first user starts late, so
 * that the slots are at different steps). */
static bool event_of(const opts *o, int64_t j, int64_t *user, int *step)
{
    int64_t slot = j % o->window, round = j / o->window;
    int64_t late = o->rounds ? 0 : slot % STEPS;
    if (round < late) return false;
    *step = (int)((round - late) % STEPS);
    *user = ((round - late) / STEPS) * o->window + slot;
    return true;
}

static size_t event_json(char *b, size_t cap, int64_t j, int64_t u, int step, int64_t ts)
{
    static const char *const types[STEPS] = {
        "signed_up",         "file_uploaded",     "member_invited",    "project_exported",
        "deadline_set",      "project_delivered", "project_delivered", "project_delivered",
        "project_delivered", "project_delivered"};
    int n = snprintf(b, cap,
                     "{\"event_id\":\"lat-%" PRId64 "\",\"user_id\":\"lu%07" PRId64
                     "\",\"type\":\"%s\",\"ts\":%" PRId64,
                     j, u, types[step], ts);
    if (step == 4)
        n += snprintf(b + n, cap - (size_t)n,
                      ",\"props\":{\"project_id\":\"lp%" PRId64 "\",\"project_name\":\"Latency\","
                      "\"due_at\":%" PRId64 "}",
                      u, ts + (int64_t)30 * 86400000);
    else if (step >= 5)
        n += snprintf(b + n, cap - (size_t)n,
                      ",\"props\":{\"project_id\":\"lp%" PRId64 "\",\"project_name\":\"Latency\"}",
                      u);
    else if (step == 0)
        n += snprintf(b + n, cap - (size_t)n,
                      ",\"user\":{\"role\":\"editor\",\"timezone\":\"Europe/Berlin\","
                      "\"region\":\"EU\",\"locale\":\"de-DE\"}");
    n += snprintf(b + n, cap - (size_t)n, "}");
    return (size_t)n;
}

static void *producer_main(void *arg)
{
    const opts *o = arg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o->bootstrap);
    set(conf, "client.id", "latency-producer");
    set(conf, "linger.ms", "1");
    set(conf, "compression.type", "none");
    set(conf, "queue.buffering.max.messages", "1000000");
    set_props(conf, o, false);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (rk == NULL) {
        fprintf(stderr, "latency: producer: %s\n", why);
        exit(2);
    }
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, o->events_topic, NULL);
    char buf[512], key[32];
    double t0 = mono_s();
    start_ms = wall_ms();
    int64_t j = 0, total = (int64_t)(o->rate * o->seconds), sent = 0;
    uint64_t causes = 0;
    /* Paced by the events sent: a slot not started yet sends none. */
    while (sent < total) {
        double el = mono_s() - t0;
        int64_t due = (int64_t)(el * o->rate);
        if (due > total) due = total;
        for (; sent < due; j++) {
            int64_t u;
            int step;
            if (!event_of(o, j, &u, &step)) continue;
            if (u >= max_users) {
                fprintf(stderr, "latency: user %" PRId64 " is past the %" PRId64 " sized for\n", u,
                        max_users);
                exit(2);
            }
            int64_t ts = wall_ms();
            size_t len = event_json(buf, sizeof buf, j, u, step, ts);
            int kl = snprintf(key, sizeof key, "lu%07" PRId64, u);
            if (step == 3) atomic_store_explicit(&cause_onboarding[u], ts, memory_order_relaxed);
            if (step == 9) atomic_store_explicit(&cause_fifth[u], ts, memory_order_relaxed);
            for (;;) {
                rd_kafka_resp_err_t e = rd_kafka_producev(
                    rk, RD_KAFKA_V_RKT(t), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY(key, (size_t)kl), RD_KAFKA_V_VALUE(buf, len),
                    RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
                if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    fprintf(stderr, "latency: produce: %s\n", rd_kafka_err2str(e));
                    exit(2);
                }
                rd_kafka_poll(rk, 1);
            }
            if (step == 3 || step == 9) causes++;
            sent++;
        }
        rd_kafka_poll(rk, 0);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    produce_seconds = mono_s() - t0;
    atomic_store(&produced, (uint64_t)sent);
    atomic_store(&expected_triggers, causes);
    rd_kafka_flush(rk, 30000);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    atomic_store(&producing_done, true);
    return NULL;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" to epoch ms, or -1. */
static int64_t parse_time(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void usage(void)
{
    fputs("usage: latency --bootstrap HOST:PORT --events-topic T --triggers-topic T2 --rate R\n"
          "       [--seconds D=15] [--warmup-s W=2] [--drain-s S=30] [--window U=10000]\n"
          "       [--rounds] [--trace PATH] [--set key=value]...\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    opts o = {.seconds = 15, .warmup = -1, .drain = 30, .window = -1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0) {
            o.rounds = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *a = argv[i], *v = argv[++i];
        if (strcmp(a, "--bootstrap") == 0)
            o.bootstrap = v;
        else if (strcmp(a, "--events-topic") == 0)
            o.events_topic = v;
        else if (strcmp(a, "--triggers-topic") == 0)
            o.triggers_topic = v;
        else if (strcmp(a, "--rate") == 0)
            o.rate = atof(v);
        else if (strcmp(a, "--seconds") == 0)
            o.seconds = atof(v);
        else if (strcmp(a, "--warmup-s") == 0)
            o.warmup = atof(v);
        else if (strcmp(a, "--drain-s") == 0)
            o.drain = atof(v);
        else if (strcmp(a, "--window") == 0)
            o.window = atoll(v);
        else if (strcmp(a, "--trace") == 0)
            o.trace = v;
        else if (strcmp(a, "--set") == 0 && o.n_props < MAX_PROPS)
            o.props[o.n_props++] = (char *)v;
        else
            usage();
    }
    if (!o.bootstrap || !o.events_topic || !o.triggers_topic || o.rate <= 0 || o.seconds <= 0)
        usage();
    /* Defaults that still give samples at smoke size. */
    if (o.window < 1) {
        o.window = (int64_t)(o.rate * o.seconds) / (STEPS * 4);
        o.window = o.window > 10000 ? 10000 : o.window < 1 ? 1 : o.window;
    }
    if (o.warmup < 0) o.warmup = o.seconds / 4 < 2 ? o.seconds / 4 : 2;
    /* A user's slot starts up to STEPS - 1 rounds late (event_of), so the
     * last round's users reach one window past the rounds' own count. */
    max_users = (int64_t)(o.rate * o.seconds) / STEPS + 2 * o.window + 1;
    cause_onboarding = calloc((size_t)max_users, sizeof *cause_onboarding);
    cause_fifth = calloc((size_t)max_users, sizeof *cause_fifth);
    size_t cap = (size_t)(o.rate * o.seconds) / 4 + 1024, n_lat = 0;
    double *lat = malloc(cap * sizeof *lat);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o.bootstrap);
    set(conf, "client.id", "latency-consumer");
    set(conf, "group.id", "latency-reader"); /* assign() never joins it */
    set(conf, "enable.auto.commit", "false");
    set_props(conf, &o, true);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (rk == NULL) {
        fprintf(stderr, "latency: consumer: %s\n", why);
        return 2;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, o.triggers_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "latency: topic %s does not exist\n", o.triggers_topic);
        return 2;
    }
    rd_kafka_topic_destroy(t);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(l, o.triggers_topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    /* Let the first fetches go out before there is anything to read. */
    for (double t0 = mono_s(); mono_s() - t0 < 1.0;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (m) rd_kafka_message_destroy(m);
    }

    FILE *trace = o.trace ? fopen(o.trace, "w") : NULL;
    pthread_t th;
    pthread_create(&th, NULL, producer_main, &o);
    uint64_t triggers = 0, mismatch = 0, unknown = 0;
    double drain_start = -1;
    int64_t warm_ms = (int64_t)(o.warmup * 1000);
    for (;;) {
        if (atomic_load(&producing_done)) {
            if (drain_start < 0) drain_start = mono_s();
            if (triggers >= atomic_load(&expected_triggers) || mono_s() - drain_start > o.drain)
                break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL) continue;
        double recv = wall_ms_f();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "latency: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        triggers++;
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        /* which user and which trigger: the key is the subject */
        int64_t u = -1, cause = -1;
        if (m->key_len > 2 && m->key_len < 20 && memcmp(m->key, "lu", 2) == 0) {
            char k[24];
            memcpy(k, (const char *)m->key + 2, m->key_len - 2);
            k[m->key_len - 2] = '\0';
            u = atoll(k);
        }
        char *val = strndup(m->payload ? (const char *)m->payload : "", m->len);
        const char *time_f = strstr(val, "\"time\":\"");
        int64_t ce_time = time_f ? parse_time(time_f + 8) : -1;
        if (u >= 0 && u < max_users) {
            if (strstr(val, "\"type\":\"onboarding_completed\""))
                cause = atomic_load_explicit(&cause_onboarding[u], memory_order_relaxed);
            else if (strstr(val, "\"type\":\"fifth_project_delivered\""))
                cause = atomic_load_explicit(&cause_fifth[u], memory_order_relaxed);
        }
        free(val);
        if (cause <= 0) {
            unknown++;
        } else {
            if (ts != cause || ce_time != cause) mismatch++;
            if (cause - start_ms >= warm_ms && n_lat < cap) lat[n_lat++] = recv - (double)ts;
            if (trace)
                fprintf(trace, "%.3f %.1f\n", (double)(cause - start_ms) / 1000.0,
                        recv - (double)ts);
        }
        rd_kafka_message_destroy(m);
    }
    pthread_join(th, NULL);
    if (trace) fclose(trace);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    qsort(lat, n_lat, sizeof *lat, cmp_double);
    uint64_t n = atomic_load(&produced), exp = atomic_load(&expected_triggers);
    printf("latency shape=%s target_rate=%.0f produce_rate=%.0f produced=%" PRIu64 " seconds=%.1f "
           "triggers=%" PRIu64 " expected=%" PRIu64 " samples=%zu warmup_s=%.1f p50_ms=%.1f "
           "p99_ms=%.1f max_ms=%.1f ts_mismatch=%" PRIu64 " unknown=%" PRIu64 "\n",
           o.rounds ? "rounds" : "staggered", o.rate,
           produce_seconds > 0 ? (double)n / produce_seconds : 0.0, n, produce_seconds, triggers,
           exp, n_lat, o.warmup, pct(lat, n_lat, 0.50), pct(lat, n_lat, 0.99),
           n_lat ? lat[n_lat - 1] : 0.0, mismatch, unknown);
    free(lat);
    free(cause_onboarding);
    free(cause_fifth);
    return triggers == exp && mismatch == 0 && unknown == 0 ? 0 : 1;
}
