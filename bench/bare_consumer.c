/*
 * bare_consumer: the baseline for bench/pipeline.sh. A librdkafka consumer
 * that reads every partition of a topic from the beginning to the high
 * watermark it had when the run started, and does nothing with the records
 * but count them and their bytes.
 *
 * It uses assign (no group: nothing to join, nothing committed), so the
 * clock is not started by a rebalance: it runs from the first record
 * received to the last one, the same interval bench/pipeline.sh measures for
 * `cuepoint run`. It reads through rd_kafka_consumer_poll, as cuepoint does.
 *
 *   bare_consumer --bootstrap HOST:PORT --topic NAME [--set key=value]...
 *
 * --set passes a librdkafka consumer property (fetch.max.bytes,
 * max.partition.fetch.bytes, fetch.wait.max.ms, ...); pipeline.sh gives the
 * same ones to cuepoint's consumer. Prints one line:
 *   bare_consumer records=N bytes=B partitions=P seconds=S rate=R interval=first_record_to_last
 *                 peak_rss_mb=M
 * (M: the process's peak resident memory, read before it closes.)
 * Exit 0 when every partition was read to its high watermark, 1 otherwise.
 */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROPS 32

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char why[512];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof why) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "bare_consumer: %s=%s: %s\n", k, v, why);
        exit(2);
    }
}

static void usage(void)
{
    fputs("usage: bare_consumer --bootstrap HOST:PORT --topic NAME [--set key=value]...\n"
          "       [--timeout-s S]   give up after S seconds without a record (default 60)\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *topic = NULL;
    char *props[MAX_PROPS];
    int n_props = 0;
    double idle_timeout = 60;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--bootstrap") == 0)
            bootstrap = argv[++i];
        else if (strcmp(argv[i], "--topic") == 0)
            topic = argv[++i];
        else if (strcmp(argv[i], "--timeout-s") == 0)
            idle_timeout = atof(argv[++i]);
        else if (strcmp(argv[i], "--set") == 0 && n_props < MAX_PROPS)
            props[n_props++] = argv[++i];
        else
            usage();
    }
    if (bootstrap == NULL || topic == NULL) usage();

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "client.id", "bare-consumer");
    /* A group id only because the consumer API wants one; assign() never joins it. */
    set(conf, "group.id", "bare-consumer");
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.auto.offset.store", "false");
    for (int i = 0; i < n_props; i++) {
        char *eq = strchr(props[i], '=');
        if (eq == NULL) usage();
        *eq = '\0';
        set(conf, props[i], eq + 1);
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (rk == NULL) {
        fprintf(stderr, "bare_consumer: %s\n", why);
        return 2;
    }
    rd_kafka_poll_set_consumer(rk);

    /* The partitions and where each ends now. */
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "bare_consumer: no metadata for topic %s\n", topic);
        return 2;
    }
    rd_kafka_topic_destroy(t);
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    int64_t *high = calloc((size_t)np, sizeof *high);
    bool *done = calloc((size_t)np, sizeof *done);
    int remaining = 0;
    uint64_t expected = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++) {
        int64_t lo = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &high[p], 10000);
        if (e) {
            fprintf(stderr, "bare_consumer: watermarks of %s[%d]: %s\n", topic, p,
                    rd_kafka_err2str(e));
            return 2;
        }
        expected += (uint64_t)(high[p] - lo);
        if (high[p] > lo) {
            remaining++;
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        } else {
            done[p] = true;
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        fprintf(stderr, "bare_consumer: assign: %s\n", rd_kafka_err2str(e));
        return 2;
    }

    uint64_t records = 0, bytes = 0;
    double first = 0, last = 0, last_seen = now_s();
    while (remaining > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL) {
            if (now_s() - last_seen > idle_timeout) break;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            last = last_seen = now_s();
            if (records++ == 0) first = last;
            bytes += m->len;
            int p = m->partition;
            if (p >= 0 && p < np && !done[p] && m->offset + 1 >= high[p]) {
                done[p] = true;
                remaining--;
            }
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "bare_consumer: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    double secs = last - first;
    struct rusage ru;
    double rss_mb = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
    printf("bare_consumer records=%" PRIu64 " bytes=%" PRIu64 " partitions=%d seconds=%.3f "
           "rate=%.0f interval=first_record_to_last peak_rss_mb=%.1f\n",
           records, bytes, np, secs, secs > 0 ? (double)records / secs : 0.0, rss_mb);
    fflush(stdout);
    if (remaining > 0)
        fprintf(stderr,
                "bare_consumer: %d partitions not read to their end (%" PRIu64 " of %" PRIu64
                " records)\n",
                remaining, records, expected);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(high);
    free(done);
    return remaining == 0 ? 0 : 1;
}
