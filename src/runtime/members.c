/* The members topic (num.standby.replicas): each instance's record of what
 * it owns, written at every change and heartbeat, read by all, from which
 * every instance computes the same standby placement (standby.h). Also the
 * instance's stable id, which names it there and in its transactional.id. */
#include "runtime_int.h"

static int instance_id(const cue_config *c, char *out, size_t cap, cue_err *err);

/* How often an instance writes its member record, and how long the record
 * keeps it live: a member that stops writing counts as gone after the ttl
 * (the group notices a dead consumer after session.timeout.ms on its own). */
#define MEMBER_HEARTBEAT_MS 2000
#define MEMBER_TTL_MS       10000

void rt_members_publish(rt *r)
{
    if (r->mem.k == NULL || r->stop_requested) return;
    size_t n = 0;
    for (int32_t i = 0; i < r->mem.parts; i++)
        if (r->parts[i].task || r->parts[i].restoring) r->mem.owned_ids[n++] = i;
    if (cue_members_encode(r->mem.name, r->mem.owned_ids, n, rt_real_ms(), MEMBER_TTL_MS,
                           &r->mem.rec) != 0)
        return; /* out of memory: the next heartbeat tries again */
    cue_kafka_produce_at(r->mem.k, 0, r->mem.name, strlen(r->mem.name), r->mem.rec.data,
                         r->mem.rec.len);
}

static void on_member_message(const cue_kafka_msg *m, void *ctx)
{
    rt *r = ctx;
    if (m->partition != 0) return; /* records are written to partition 0 only */
    cue_err err = {0};
    if (cue_members_apply(r->mem.view, m->key, m->key_len, m->value_len ? m->value : NULL,
                          m->value_len, m->offset, &err) != 0) {
        r->mem.bad++;
        cue_log(CUE_LOG_WARN, "members record skipped", "s:topic", r->mem.cfg.input_topic,
                "i:partition", (int64_t)m->partition, "i:offset", m->offset, "s:error", err.msg,
                NULL);
        return;
    }
    rt_standby_update(r);
}

static void on_members_end(int32_t partition, int64_t offset, void *ctx)
{
    rt *r = ctx;
    if (partition != 0 || r->mem.read) return;
    r->mem.read = true;
    cue_log(CUE_LOG_INFO, "members read", "s:topic", r->mem.cfg.input_topic, "i:offset", offset,
            "i:live", (int64_t)cue_members_live(r->mem.view, rt_real_ms()), NULL);
    rt_standby_update(r);
}

/* Standbys are a speed-up, never a reason to stop processing: a members
 * topic that cannot be written is reported and the heartbeats go on. */
static void on_members_fatal(const char *why, void *ctx)
{
    rt *r = ctx;
    cue_log(CUE_LOG_WARN, "members topic: standby placement may be stale", "s:topic",
            r->mem.cfg.input_topic, "s:error", why, NULL);
}

#define MEMBERS_BATCH 4096

static void on_heartbeat(uv_timer_t *h)
{
    rt *r = h->data;
    rt_members_publish(r);
    rt_standby_update(r);
    /* What the standbys applied since reaches disk at least this often. */
    if (r->reader.standbys && cue_store_batch_count(r->store) > 0) rt_batch_commit(r);
}

/* The members topic is served a turn at a time: a long one (not compacted,
 * read from its start) goes on in the next turns. */
void rt_members_start(rt *r)
{
    if (r->mem.k == NULL) return;
    r->mem.client = (rt_client){.batch = MEMBERS_BATCH, .ctx = r};
    rt_client_start(&r->mem.client, &r->loop, r->mem.k, true);
    uv_timer_init(&r->loop, &r->mem.heartbeat);
    r->mem.heartbeat.data = r;
    uv_timer_start(&r->mem.heartbeat, on_heartbeat, 0, MEMBER_HEARTBEAT_MS);
}

void rt_members_stop(rt *r)
{
    if (r->mem.k == NULL || !r->mem.client.started) return;
    rt_client_close(&r->mem.client);
    if (!uv_is_closing((uv_handle_t *)&r->mem.heartbeat))
        uv_close((uv_handle_t *)&r->mem.heartbeat, NULL);
}

int rt_members_open(rt *r, int32_t partitions, cue_err *err)
{
    const cue_config *cfg = r->cfg;
    const char *topic = cue_config_members_topic(cfg);
    int32_t n = 0;
    int rc = cue_kafka_topic_partitions(r->k, topic, false, cfg->startup_timeout_ms, &n, err);
    if (rc != 0) return rc;
    if (n == 0) {
        cue_err cerr = {0};
        static const char *const compact[] = {"cleanup.policy", "compact", NULL};
        if (cue_kafka_create_topic(r->k, topic, 1, compact, cfg->startup_timeout_ms, &cerr) == 0)
            cue_log(CUE_LOG_INFO, "members topic created", "s:topic", topic, NULL);
        else if ((rc = cue_kafka_topic_partitions(r->k, topic, true, cfg->startup_timeout_ms, &n,
                                                  err)) != 0)
            return rc;
    }
    rc = instance_id(cfg, r->mem.name, sizeof r->mem.name, err);
    if (rc != 0) return rc;
    r->mem.parts = partitions;
    r->mem.want = calloc((size_t)partitions, sizeof *r->mem.want);
    r->mem.owned_ids = calloc((size_t)partitions, sizeof *r->mem.owned_ids);
    if (r->mem.want == NULL || r->mem.owned_ids == NULL || cue_buf_init(&r->mem.rec, 256) != 0)
        return cue_err_set(err, CUE_ENOMEM, "out of memory");
    rc = cue_members_new(&r->mem.view, partitions, r->mem.name, err);
    if (rc != 0) return rc;
    r->mem.cfg = *cfg;
    cue_config_set_input_topic(&r->mem.cfg, topic);
    cue_kafka_handler h = {
        .message = on_member_message, .fatal = on_members_fatal, .end = on_members_end, .ctx = r};
    rc = cue_kafka_open_replay(&r->mem.k, &r->mem.cfg, &h, "members", topic, err);
    if (rc == 0) rc = cue_kafka_assign_one(r->mem.k, 0, CUE_KAFKA_OFFSET_BEGINNING, err);
    if (rc == 0)
        cue_log(CUE_LOG_INFO, "standby replicas on", "s:topic", topic, "s:instance", r->mem.name,
                "i:replicas", r->cfg->standby_replicas, NULL);
    return rc;
}

/* The last word of a clean stop: this member is gone. */
void rt_members_close(rt *r)
{
    if (r->mem.k) {
        if (r->fatal_rc == 0)
            cue_kafka_produce_at(r->mem.k, 0, r->mem.name, strlen(r->mem.name), NULL, 0);
        cue_kafka_close(r->mem.k, r->fatal_rc ? 0 : 2000);
        r->mem.k = NULL;
    }
    cue_buf_deinit(&r->mem.rec);
    cue_members_free(r->mem.view);
    r->mem.view = NULL;
    free(r->mem.want);
    free(r->mem.owned_ids);
    r->mem.want = NULL;
    r->mem.owned_ids = NULL;
}

/* The instance's stable name: its group.instance.id when static membership
 * names it, else a random id made once and kept in <state.dir>/instance.id.
 * It names the instance among the members (standby.h) and in its
 * transactional.id. Stable across restarts: a restart replaces its own
 * member record, and under exactly-once registering the same
 * transactional.id fences the previous incarnation (a zombie still running)
 * and aborts the transaction it left open at once; a new id per start
 * (Kafka Streams' process id) would leave that transaction open until
 * transaction.timeout.ms, holding read_committed consumers back. One per
 * instance: two live holders fence each other, so a state.dir must never
 * be copied to start a second instance. */
static int instance_id(const cue_config *c, char *out, size_t cap, cue_err *err)
{
    for (size_t i = 0; i < c->kafka_len; i++)
        if ((c->kafka[i].clients & CUE_KAFKA_CONSUMER) &&
            strcmp(cue_config_kafka_key(c, i), "group.instance.id") == 0) {
            snprintf(out, cap, "%s", cue_config_kafka_value(c, i));
            return 0;
        }
    char path[CUE_PATH_MAX + 32], id[40] = "";
    snprintf(path, sizeof path, "%s/instance.id", c->state_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%32[0-9a-f]", id) != 1) id[0] = '\0';
        fclose(f);
    }
    if (strlen(id) != 32) {
        unsigned char b[16];
        int urc = uv_random(NULL, NULL, b, sizeof b, 0, NULL);
        if (urc != 0)
            return cue_err_set(err, CUE_EIO, "no random bytes for the instance id: %s",
                               uv_strerror(urc));
        for (size_t i = 0; i < sizeof b; i++)
            snprintf(id + 2 * i, 3, "%02x", b[i]);
        char tmp[sizeof path + 4];
        snprintf(tmp, sizeof tmp, "%s.new", path);
        /* Written aside, fsync'd, renamed: after a crash or a power loss the
         * id is there whole or not at all. */
        errno = 0;
        bool written = (f = fopen(tmp, "w")) != NULL && fprintf(f, "%s\n", id) > 0 &&
                       fflush(f) == 0 && fsync(fileno(f)) == 0;
        int werr = errno;
        if (f != NULL && fclose(f) != 0 && written) {
            written = false;
            werr = errno;
        }
        if (written && rename(tmp, path) != 0) {
            written = false;
            werr = errno;
        }
        if (written) { /* the rename itself, durable */
            int dfd = open(c->state_dir, O_RDONLY | O_DIRECTORY);
            if (dfd < 0 || fsync(dfd) != 0) {
                written = false;
                werr = errno;
            }
            if (dfd >= 0) close(dfd);
        }
        if (!written) {
            unlink(tmp);
            return cue_err_set(err, CUE_EIO, "%s: cannot write the instance id: %s", tmp,
                               werr ? strerror(werr) : "short write");
        }
    }
    snprintf(out, cap, "%s", id);
    return 0;
}

/* The producer's transactional.id: <application.id>-<instance id>. */
int rt_txn_id_derive(cue_config *c, cue_err *err)
{
    char id[CUE_MEMBER_NAME_BYTES_MAX];
    int rc = instance_id(c, id, sizeof id, err);
    if (rc == 0)
        snprintf(c->transactional_id, sizeof c->transactional_id, "%s-%s", c->application_id, id);
    return rc;
}
