/* A replay's reads, outside any group: partitions assigned by the caller,
 * paused, resumed or sought, their watermarks and offsets by time; and
 * librdkafka's key partitioners, to place records as a producer would. */
#include "kafka_int.h"

int cue_kafka_assign(cue_kafka *k, const int32_t *parts, const int64_t *start, size_t n,
                     cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, parts[i])->offset = start[i];
    rd_kafka_resp_err_t e = rd_kafka_assign(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    k->assigned = e == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e) return cue_err_set(err, CUE_EUNAVAILABLE, "assign: %s", rd_kafka_err2str(e));
    return 0;
}

void cue_kafka_pause(cue_kafka *k, int32_t partition)
{
    uint32_t n = k->cfg->input_topic_count ? k->cfg->input_topic_count : 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition);
    for (uint32_t i = 1; i < n; i++)
        rd_kafka_topic_partition_list_add(l, k->cfg->input_topics[i], partition);
    rd_kafka_pause_partitions(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

int cue_kafka_assign_one(cue_kafka *k, int32_t partition, int64_t offset, cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_incremental_assign(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e == NULL) return 0;
    int rc = cue_err_set(err, CUE_EUNAVAILABLE, "%s [%d]: assign: %s", k->cfg->input_topic,
                         (int)partition, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return rc;
}

void cue_kafka_unassign_one(cue_kafka *k, int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition);
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(k->consumer, l);
    if (e) rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(l);
}

static void seek_resume(cue_kafka *k, int32_t partition, const int64_t *offsets, uint32_t n);

void cue_kafka_seek_resume(cue_kafka *k, int32_t partition, int64_t offset)
{
    seek_resume(k, partition, &offset, 1);
}

void cue_kafka_seek_resume_all(cue_kafka *k, int32_t partition, const int64_t *offsets)
{
    seek_resume(k, partition, offsets, k->cfg->input_topic_count ? k->cfg->input_topic_count : 1);
}

/* Seeks partition `partition` of the first `n` input topics, then resumes them. */
static void seek_resume(cue_kafka *k, int32_t partition, const int64_t *offsets, uint32_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (uint32_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, cue_config_input_topic_name(k->cfg, i), partition)
            ->offset = offsets[i] > 0 ? offsets[i] : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(k->consumer, l, 0);
    if (e) {
        cue_log(CUE_LOG_WARN, "seek failed", "s:topic", k->cfg->input_topic, "i:partition",
                (int64_t)partition, "s:error", rd_kafka_error_string(e), NULL);
        rd_kafka_error_destroy(e);
    }
    rd_kafka_resume_partitions(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

int cue_kafka_watermarks(cue_kafka *k, int32_t partition, int64_t timeout_ms, int64_t *low,
                         int64_t *high, cue_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(k->consumer, k->cfg->input_topic,
                                                             partition, low, high, (int)timeout_ms);
    if (e)
        return cue_err_set(err, CUE_EUNAVAILABLE, "%s [%d]: watermarks: %s", k->cfg->input_topic,
                           (int)partition, rd_kafka_err2str(e));
    return 0;
}

int cue_kafka_offset_for_time(cue_kafka *k, int32_t partition, int64_t ts_ms, int64_t timeout_ms,
                              int64_t *offset, cue_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->cfg->input_topic, partition)->offset = ts_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(k->consumer, l, (int)timeout_ms);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = l->elems[0].err;
    *offset = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return cue_err_set(err, CUE_EUNAVAILABLE, "%s [%d]: offsets for time %lld: %s",
                           k->cfg->input_topic, (int)partition, (long long)ts_ms,
                           rd_kafka_err2str(e));
    return 0;
}

int cue_kafka_partitioner_find(const char *name)
{
    static const char *const names[] = {"consistent_random", "consistent",   "murmur2_random",
                                        "murmur2",           "fnv1a_random", "fnv1a"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (strcmp(name, names[i]) == 0) return i / 2;
    return -1;
}

int32_t cue_kafka_partition_of(int partitioner, const char *key, size_t key_len, int32_t n)
{
    /* The *_random variants differ only for records without a key: the
     * caller puts those in partition 0 rather than a random one. The topic
     * handle is not used by these three. */
    if (key_len == 0 || n <= 1) return 0;
    switch (partitioner) {
    case 1: return rd_kafka_msg_partitioner_murmur2(NULL, key, key_len, n, NULL, NULL);
    case 2: return rd_kafka_msg_partitioner_fnv1a(NULL, key, key_len, n, NULL, NULL);
    default: return rd_kafka_msg_partitioner_consistent(NULL, key, key_len, n, NULL, NULL);
    }
}
