/* Opening the pipeline, in order: the checks that need no broker, the
 * store (whose it is), the consumer and the input's partition count (what
 * the store was built for), the changelog and its reader, the members
 * topic, admin HTTP. Also cue_runtime_check: what run would refuse, without
 * running. */
#include "runtime_int.h"

int cue_runtime_check(const cue_runtime_opts *o, cue_err *err)
{
    int rc = cue_config_check(o->cfg, err);
    if (rc == 0) rc = cue_kafka_check(o->cfg, err);
    if (rc == 0) rc = rt_check_admin(o->cfg->admin_listen, err);
    return rc;
}

/* The decision trail's topic, created when missing where the cluster lets
 * us (else its automatic creation applies, or deliveries fail and say so). */
static void decisions_open(rt *r, int32_t partitions)
{
    const cue_config *cfg = r->cfg;
    const char *topic = cue_config_decisions_topic(cfg);
    int32_t n = 0;
    cue_err err = {0};
    if (cue_kafka_topic_partitions(r->k, topic, false, cfg->startup_timeout_ms, &n, &err) != 0 ||
        n > 0)
        return;
    if (cue_kafka_create_topic(r->k, topic, partitions, NULL, cfg->startup_timeout_ms, &err) == 0)
        cue_log(CUE_LOG_INFO, "decisions topic created", "s:topic", topic, "i:partitions",
                (int64_t)partitions, NULL);
    else
        cue_log(CUE_LOG_WARN, "cannot create the decisions topic; relying on automatic creation",
                "s:topic", topic, "s:error", err.msg, NULL);
}

/* A user's partition is a hash of the user id modulo the input's partition
 * count: state built under one count is split under another (earlier
 * events in one partition, later ones in another, each with half a
 * journey). Kafka Streams refuses the same change. The store keeps the
 * count it was built for; a store without one takes the current count. */
int rt_partition_count_check(rt *r, int32_t partitions, cue_err *err)
{
    int32_t kept = 0;
    int rc = cue_store_partition_count_get(r->store, &kept, err);
    if (rc == CUE_ENOTFOUND) return cue_store_partition_count_put(r->store, partitions, err);
    if (rc != 0 || kept == partitions) return rc;
    if (r->o->cfg->repartition) /* the stage made its topic with the input's count */
        return cue_err_set(err, CUE_ECONFIG,
                           "repartition topic %s has %d partitions and state.dir %s was built for "
                           "%d: the state belongs to a repartition topic of %d partitions (the "
                           "input may have any count); use a fresh state.dir, or drain %s and "
                           "recreate it with %d",
                           r->cfg->input_topic, (int)partitions, r->cfg->state_dir, (int)kept,
                           (int)kept, r->cfg->input_topic, (int)kept);
    char topics[CUE_OWNER_NAME_MAX];
    cue_config_input_topics_join(r->cfg, topics, sizeof topics);
    return cue_err_set(err, CUE_ECONFIG,
                       "input topic%s %.200s ha%s %d partitions and state.dir %s was built for %d: "
                       "users would map to other partitions than their state; a deployment's "
                       "input cannot change its partition count (docs/operations.md: \"Changing "
                       "the partition count\")",
                       rt_topics(r) > 1 ? "s" : "", topics, rt_topics(r) > 1 ? "ve" : "s",
                       (int)partitions, r->cfg->state_dir, (int)kept);
}

int rt_open_all(rt *r, cue_err *err)
{
    int crc = cue_config_check(r->o->cfg, err);
    if (crc != 0) return crc;
    if (r->o->cfg->exactly_once) {
        /* The pipeline's copy of the config carries the derived id. */
        r->cfg_main = *r->o->cfg;
        r->cfg = &r->cfg_main;
        int rc = cue_store_dir_create(r->cfg_main.state_dir, err);
        if (rc == 0) rc = rt_txn_id_derive(&r->cfg_main, err);
        if (rc != 0) return rc;
    }
    if (r->o->cfg->repartition) {
        int src = rt_stage1_open(r, err);
        if (src != 0) return src;
    }
    const cue_config *cfg = r->cfg;
    int rc = cue_store_dir_create(cfg->state_dir, err);
    cue_store_opts so = {.block_cache_bytes = 0};
    if (rc == 0) rc = cue_store_open(&r->store, cfg->state_dir, &so, err);
    char topics[CUE_OWNER_NAME_MAX];
    cue_config_input_topics_join(cfg, topics, sizeof topics);
    if (rc == 0 && (rc = cue_store_owner_check(r->store, cfg->application_id, topics, err)) != 0)
        cue_err_prefix(err, "%s", cfg->state_dir);
    if (rc != 0) return rc;
    cue_kafka_handler h = {.assigned = rt_on_assigned,
                           .revoked = rt_on_revoked,
                           .message = rt_on_message,
                           .prefetch = rt_on_prefetch,
                           .fatal = rt_on_fatal,
                           .ctx = r};
    rc = cue_kafka_open(&r->k, cfg, &h, err);
    if (rc == 0) rc = rt_workers_open(r, (uint32_t)cfg->stream_threads, err);
    if (rc != 0) return rc;
    int32_t partitions = 0;
    rc = cue_kafka_wait_ready(r->k, cfg->startup_timeout_ms, &partitions, err);
    if (rc == 0) rc = rt_partition_count_check(r, partitions, err);
    if (rc != 0) return rc;
    r->input_parts = partitions;
    /* statestore.cache.max.bytes is for the whole instance: each partition's
     * task gets its share, as if this instance owned them all. */
    r->task_cfg = *cfg;
    size_t share = cfg->cache_max_bytes / (size_t)partitions;
    r->task_cfg.cache_max_bytes = share < CUE_CACHE_BYTES_MIN ? CUE_CACHE_BYTES_MIN : share;
    if (rt_parts_reserve(r, partitions - 1) != 0)
        return cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (cfg->changelog && (rc = rt_changelog_open(r, partitions, err)) != 0) return rc;
    if (r->o->policy) decisions_open(r, partitions);
    r->reader.open_task = rt_task_open;
    if (cfg->changelog && (rc = rt_reader_open(r, err)) != 0) return rc;
    if (cfg->standby_replicas > 0) {
        /* Standbys speed fail-overs up; without them the pipeline still runs. */
        cue_err merr = {0};
        if (rt_members_open(r, partitions, &merr) != 0) {
            cue_log(CUE_LOG_WARN, "standby replicas off: the members topic cannot be used",
                    "s:topic", cue_config_members_topic(cfg), "s:error", merr.msg, NULL);
            rt_members_close(r);
        }
    }
    cue_log(CUE_LOG_INFO, "connected", "s:bootstrap_servers", cfg->bootstrap_servers, "s:topic",
            topics, "i:partitions", (int64_t)partitions, "s:group", cfg->application_id, NULL);
    return rt_open_admin(r, err);
}
