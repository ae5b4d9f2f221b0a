/*
 * latency_relay: the latency rig with cuepoint taken out, for its floor.
 *
 *   latency_relay BOOTSTRAP EVENTS_TOPIC TRIGGERS_TOPIC
 *
 * Reads bench/latency's events (from the end of each partition, with the
 * consumer properties bench/pipeline.sh gives cuepoint) and at once writes
 * the two triggers bench/latency times: "onboarding_completed" for a
 * user's project_exported, "fifth_project_delivered" for its fifth
 * project_delivered. Keyed by the event's key, stamped with its timestamp,
 * padded to about a CloudEvents trigger's size, from an idempotent acks=all
 * producer with cuepoint's linger.ms. Whatever bench/latency measures with
 * this in cuepoint's place is the mock broker's, the clients' and the
 * cores' share of the figure. Prints "ready" once assigned; stops on
 * SIGTERM or SIGINT, flushing what it produced.
 */
#include <librdkafka/rdkafka.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* bench/latency's users number at most its rate times seconds over ten. */
#define USERS_MAX 20000000

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char why[256];
    if (rd_kafka_conf_set(c, k, v, why, sizeof why) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "latency_relay: %s: %s\n", k, why);
        exit(2);
    }
}

/* A client from `conf` (which it takes), or the process ends saying why. */
static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (rk == NULL) {
        fprintf(stderr, "latency_relay: %s: %s\n",
                type == RD_KAFKA_CONSUMER ? "consumer" : "producer", why);
        exit(2);
    }
    return rk;
}

/* The trigger an event makes, or NULL. `delivered` counts each user's
 * project_delivered events. */
static const char *trigger_of(const char *v, size_t len, uint8_t *delivered)
{
    char buf[512];
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    const char *type = strstr(buf, "\"type\":\""), *uid = strstr(buf, "\"user_id\":\"lu");
    if (type == NULL || uid == NULL) return NULL;
    long u = atol(uid + strlen("\"user_id\":\"lu"));
    type += strlen("\"type\":\"");
    if (strncmp(type, "project_exported\"", 17) == 0) return "onboarding_completed";
    if (strncmp(type, "project_delivered\"", 18) == 0 && u >= 0 && u < USERS_MAX &&
        ++delivered[u] == 5)
        return "fifth_project_delivered";
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fputs("usage: latency_relay BOOTSTRAP EVENTS_TOPIC TRIGGERS_TOPIC\n", stderr);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    uint8_t *delivered = calloc(USERS_MAX, 1); /* owned */
    if (delivered == NULL) return 1;
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    set(cc, "bootstrap.servers", argv[1]);
    set(cc, "group.id", "latency-relay"); /* assign() never joins it */
    set(cc, "enable.auto.commit", "false");
    set(cc, "fetch.max.bytes", "104857600");
    set(cc, "max.partition.fetch.bytes", "4194304");
    set(cc, "queued.min.messages", "1000000");
    set(cc, "fetch.wait.max.ms", "1");
    rd_kafka_t *c = client_new(RD_KAFKA_CONSUMER, cc);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    set(pc, "bootstrap.servers", argv[1]);
    set(pc, "enable.idempotence", "true");
    set(pc, "acks", "all");
    set(pc, "linger.ms", "5");
    set(pc, "compression.type", "snappy");
    rd_kafka_t *p = client_new(RD_KAFKA_PRODUCER, pc);
    rd_kafka_topic_t *out = rd_kafka_topic_new(p, argv[3], NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *in = rd_kafka_topic_new(c, argv[2], NULL);
    if (rd_kafka_metadata(c, 0, in, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "latency_relay: topic %s does not exist\n", argv[2]);
        return 2;
    }
    rd_kafka_topic_destroy(in);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(l, argv[2], i)->offset = RD_KAFKA_OFFSET_END;
    rd_kafka_metadata_destroy(md);
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    printf("ready\n");
    fflush(stdout);
    uint64_t relayed = 0;
    while (!stopping) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        rd_kafka_poll(p, 0);
        if (m == NULL) continue;
        const char *what =
            m->err || m->payload == NULL ? NULL : trigger_of(m->payload, m->len, delivered);
        if (what) {
            rd_kafka_timestamp_type_t tt;
            int64_t ts = rd_kafka_message_timestamp(m, &tt);
            time_t s = (time_t)(ts / 1000);
            struct tm tm;
            gmtime_r(&s, &tm);
            char rec[1400];
            int n = snprintf(rec, sizeof rec,
                             "{\"type\":\"%s\",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\","
                             "\"pad\":\"%0900d\"}",
                             what, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                             tm.tm_min, tm.tm_sec, (int)(ts % 1000), 0);
            while (rd_kafka_producev(
                       p, RD_KAFKA_V_RKT(out), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                       RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(rec, (size_t)n),
                       RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(p, 1);
            relayed++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_flush(p, 10000);
    fprintf(stderr, "latency_relay: %llu triggers\n", (unsigned long long)relayed);
    rd_kafka_topic_destroy(out);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    free(delivered);
    return 0;
}
