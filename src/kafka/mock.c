/* The mock cluster (librdkafka's rdkafka_mock) for `cuepoint dev-broker`,
 * the demo and tests, and its fault commands. */
#include "kafka_int.h"

#include <librdkafka/rdkafka_mock.h>

struct cue_kafka_mock {
    rd_kafka_t *rk; /* owned: the handle the mock cluster lives in */
    rd_kafka_mock_cluster_t *mc;
};

int cue_kafka_mock_start(cue_kafka_mock **out, int brokers, cue_err *err)
{
    return cue_kafka_mock_start_debug(out, brokers, NULL, err);
}

int cue_kafka_mock_start_debug(cue_kafka_mock **out, int brokers, const char *debug, cue_err *err)
{
    char why[512];
    cue_kafka_mock *m = calloc(1, sizeof *m);
    if (m == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_plain_log_cb);
    rd_kafka_conf_set(conf, "client.id", "cuepoint-mock", why, sizeof why);
    /* The handle only hosts the cluster; its own "no bootstrap.servers"
     * notice would only confuse. */
    rd_kafka_conf_set(conf, "log_level", debug ? "7" : "3", why, sizeof why);
    if (debug && rd_kafka_conf_set(conf, "debug", debug, why, sizeof why) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        free(m);
        return cue_err_set(err, CUE_EUSAGE, "debug contexts '%s': %s", debug, why);
    }
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (m->rk == NULL) {
        free(m);
        return cue_err_set(err, CUE_EIO, "mock cluster: %s", why);
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (m->mc == NULL) {
        rd_kafka_destroy(m->rk);
        free(m);
        return cue_err_set(err, CUE_EIO, "mock cluster: could not start %d brokers", brokers);
    }
    *out = m;
    return 0;
}

void cue_kafka_mock_stop(cue_kafka_mock *m)
{
    if (m == NULL) return;
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
}

const char *cue_kafka_mock_bootstraps(const cue_kafka_mock *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->mc);
}

int cue_kafka_mock_topic_create(cue_kafka_mock *m, const char *topic, int partitions, cue_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->mc, topic, partitions, 1);
    if (e) return cue_err_set(err, CUE_EIO, "mock topic %s: %s", topic, rd_kafka_err2str(e));
    return 0;
}

/* The request types a test may want to fail, by their protocol names. */
static const struct {
    const char *name;
    int16_t key;
} mock_apis[] = {{"Produce", 0},
                 {"Fetch", 1},
                 {"OffsetCommit", 8},
                 {"InitProducerId", 22},
                 {"AddPartitionsToTxn", 24},
                 {"AddOffsetsToTxn", 25},
                 {"EndTxn", 26},
                 {"TxnOffsetCommit", 28}};

/* "errors API ERROR N": the next N requests of API get ERROR. */
static int mock_errors(cue_kafka_mock *m, const char *api, const char *error, int n,
                       const char *line, cue_err *err)
{
    int key = -1;
    for (size_t i = 0; i < sizeof mock_apis / sizeof *mock_apis; i++)
        if (strcmp(api, mock_apis[i].name) == 0) key = mock_apis[i].key;
    char *end;
    if (key < 0 && (key = (int)strtol(api, &end, 10), *end != '\0' || key < 0))
        return cue_err_set(err, CUE_EUSAGE, "'%.100s': unknown API %s", line, api);
    const struct rd_kafka_err_desc *descs;
    size_t n_descs;
    rd_kafka_get_err_descs(&descs, &n_descs);
    int code = INT32_MIN;
    for (size_t i = 0; i < n_descs; i++)
        if (descs[i].name && strcmp(descs[i].name, error) == 0) code = descs[i].code;
    if (code == INT32_MIN && (code = (int)strtol(error, &end, 10), *end != '\0'))
        return cue_err_set(err, CUE_EUSAGE, "'%.100s': unknown error %s", line, error);
    if (n <= 0 || n > 1000) return cue_err_set(err, CUE_EUSAGE, "'%.100s': N is 1 to 1000", line);
    rd_kafka_resp_err_t errs[1000];
    for (int i = 0; i < n; i++)
        errs[i] = (rd_kafka_resp_err_t)code;
    rd_kafka_mock_push_request_errors_array(m->mc, (int16_t)key, (size_t)n, errs);
    return 0;
}

int cue_kafka_mock_command(cue_kafka_mock *m, const char *line, cue_err *err)
{
    char a[256], b[256];
    int x = 0, y = 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (sscanf(line, "down %d", &x) == 1) {
        e = rd_kafka_mock_broker_set_down(m->mc, x);
    } else if (sscanf(line, "up %d", &x) == 1) {
        e = rd_kafka_mock_broker_set_up(m->mc, x);
    } else if (sscanf(line, "leader %255s %d %d", a, &x, &y) == 3) {
        e = rd_kafka_mock_partition_set_leader(m->mc, a, x, y);
    } else if (sscanf(line, "coordinator %255s %255s %d", a, b, &x) == 3) {
        e = rd_kafka_mock_coordinator_set(m->mc, a, b, x);
    } else if (sscanf(line, "produce-errors %d", &x) == 1 && x > 0 && x <= 1000) {
        rd_kafka_resp_err_t errs[1000];
        for (int i = 0; i < x; i++)
            errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        rd_kafka_mock_push_request_errors_array(m->mc, 0 /* Produce */, (size_t)x, errs);
    } else if (sscanf(line, "rtt %d %d", &x, &y) == 2) {
        e = rd_kafka_mock_broker_set_rtt(m->mc, x, y);
    } else if (sscanf(line, "errors %255s %255s %d", a, b, &x) == 3) {
        return mock_errors(m, a, b, x, line, err);
    } else {
        return cue_err_set(err, CUE_EUSAGE, "unknown mock command '%.100s'", line);
    }
    if (e) return cue_err_set(err, CUE_EINVAL, "'%.100s': %s", line, rd_kafka_err2str(e));
    return 0;
}
