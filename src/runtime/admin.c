/* Admin HTTP on the loop: the console (console.c), /healthz (the loop
 * answers: it makes progress), /readyz (false while restoring, rebalancing,
 * stopping or fenced),
 * /metrics (Prometheus text: partitions, records, output, state, the admin
 * port itself, build and process) and /v1/users/{id} (personal data: behind
 * admin.users.token, or on a loopback address only). */
#include "runtime_int.h"

static bool is_ready(rt *r);

/* Labels of partition `p` of input topic `t` (index in input.topics). */
static void label_topic_part(rt *r, uint32_t t, int32_t p)
{
    cue_buf_reset(&r->labels);
    char v[16];
    snprintf(v, sizeof v, "%d", (int)p);
    const char *topic = t == 0 ? r->cfg->input_topic : r->cfg->input_topics[t];
    cue_prom_label(&r->labels, "topic", topic, strlen(topic));
    cue_prom_label(&r->labels, "partition", v, strlen(v));
}

/* A task's partition: labelled with the first input topic. */
static void label_part(rt *r, int32_t p)
{
    label_topic_part(r, 0, p);
}

static void metrics_counter(cue_buf *b, const char *name, const char *help, double v)
{
    cue_prom_family(b, name, "counter", help);
    cue_prom_sample(b, name, NULL, v);
}

static void metrics_gauge(cue_buf *b, const char *name, const char *help, double v)
{
    cue_prom_family(b, name, "gauge", help);
    cue_prom_sample(b, name, NULL, v);
}

/* Each assigned partition's lag and stream time; sums its task's counters
 * into `sum` and `cache`. */
static void render_partitions(rt *r, cue_buf *b, cue_task_stats *sum, cue_cache_stats *cache)
{
    cue_prom_family(b, "cuepoint_consumer_lag_records", "gauge",
                    "High watermark minus the next offset to process, per assigned partition "
                    "of each input topic.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        for (uint32_t t = 0; t < rt_topics(r); t++) {
            /* Read, not stored: a scrape must not change what the clock sees. */
            int64_t high = cue_kafka_high_watermark_of(r->k, (uint8_t)t, i);
            int64_t pos = t == 0 ? p->position : p->more_position[t - 1];
            label_topic_part(r, t, i);
            cue_prom_sample(b, "cuepoint_consumer_lag_records", r->labels.data,
                            high > pos ? (double)(high - pos) : 0.0);
        }
        cue_task_stats_add(sum, cue_task_stats_get(p->task));
        cue_cache_stats cs;
        cue_task_cache_stats(p->task, &cs);
        cache->hits += cs.hits;
        cache->misses += cs.misses;
        cache->evictions += cs.evictions;
        cache->bytes += cs.bytes;
        cache->entries += cs.entries;
    }
    cue_prom_family(b, "cuepoint_stream_time_seconds", "gauge",
                    "Each assigned partition's stream time (event time), in epoch seconds.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL || cue_task_stream_time(p->task) == INT64_MIN) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_stream_time_seconds", r->labels.data,
                        (double)cue_task_stream_time(p->task) / 1000.0);
    }
}

/* Restores and standby replicas, per partition. */
static void render_restores(rt *r, cue_buf *b)
{
    cue_prom_family(b, "cuepoint_restore_records_total", "counter",
                    "Changelog records restored, per partition being or last restored here.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (!p->restoring && p->rs.records == 0) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_restore_records_total", r->labels.data, (double)p->rs.records);
    }
    cue_prom_family(b, "cuepoint_restore_bytes_total", "counter",
                    "Bytes (keys and values) of changelog records restored, per partition.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (!p->restoring && p->rs.records == 0) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_restore_bytes_total", r->labels.data, (double)p->rs.bytes);
    }
    cue_prom_family(b, "cuepoint_restore_remaining_records", "gauge",
                    "Changelog records left to restore, per partition being restored.");
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (!p->restoring) continue;
        label_part(r, i);
        cue_prom_sample(b, "cuepoint_restore_remaining_records", r->labels.data,
                        (double)(p->restore_end - p->restore_pos));
    }
    if (r->mem.view) {
        cue_prom_family(b, "cuepoint_standby_lag_records", "gauge",
                        "Changelog records a standby replica kept here has yet to apply.");
        for (int32_t i = 0; i < r->n_parts; i++) {
            part *p = &r->parts[i];
            if (!p->standby) continue;
            int64_t high = cue_kafka_high_watermark(r->reader.k, i);
            label_part(r, i);
            /* Not fetched from yet: unknown, which is not caught up. */
            cue_prom_sample(b, "cuepoint_standby_lag_records", r->labels.data,
                            high < 0                ? NAN
                            : high > p->restore_pos ? (double)(high - p->restore_pos)
                                                    : 0.0);
        }
        cue_prom_family(b, "cuepoint_standby_records_total", "counter",
                        "Changelog records applied to a standby replica, per partition.");
        for (int32_t i = 0; i < r->n_parts; i++) {
            part *p = &r->parts[i];
            uint64_t n = p->sb_records_before + p->sb.records;
            if (n == 0) continue;
            label_part(r, i);
            cue_prom_sample(b, "cuepoint_standby_records_total", r->labels.data, (double)n);
        }
    }
}

/* The admin server's own connections: a flood shows here. */
static void render_admin(rt *r, cue_buf *b, const cue_http_stats *st)
{
    metrics_gauge(b, "cuepoint_admin_connections", "Admin HTTP connections open.",
                  (double)st->connections);
    metrics_counter(b, "cuepoint_admin_connections_accepted_total",
                    "Admin HTTP connections accepted.", (double)st->accepted);
    cue_prom_family(b, "cuepoint_admin_connections_dropped_total", "counter",
                    "Admin HTTP connections closed by cuepoint while waiting for a request: to "
                    "make room (client_limit, table_full) or past their deadline (timeout).");
    const struct {
        const char *reason;
        uint64_t n;
    } dropped[] = {{"client_limit", st->closed_client_limit},
                   {"table_full", st->closed_table_full},
                   {"timeout", st->closed_timeout}};
    for (size_t i = 0; i < sizeof dropped / sizeof *dropped; i++) {
        cue_buf_reset(&r->labels);
        cue_prom_label(&r->labels, "reason", dropped[i].reason, strlen(dropped[i].reason));
        cue_prom_sample(b, "cuepoint_admin_connections_dropped_total", r->labels.data,
                        (double)dropped[i].n);
    }
    metrics_counter(b, "cuepoint_admin_bad_paths_total",
                    "Admin HTTP requests answered 400 for a path that did not decode.",
                    (double)st->bad_paths);
}

/* What became of the records: read, applied, skipped, dead, and what they
 * made (triggers by name, timers, migrations, policy decisions). */
static void render_records(rt *r, cue_buf *b, const cue_task_stats *sum)
{
    const cue_runtime_result *res = r->res;
    metrics_counter(b, "cuepoint_records_consumed_total", "Input records read.",
                    (double)res->consumed);
    metrics_counter(b, "cuepoint_records_applied_total", "Events applied to a user's state.",
                    (double)sum->applied);
    metrics_counter(b, "cuepoint_task_own_commits_total",
                    "Commits a partition's task made alone with intake stopped: commit.records "
                    "reached, or its cache full of changed users before the next commit cycle "
                    "(with exactly-once, half full: every task commits in the transaction).",
                    (double)sum->own_commits);
    metrics_counter(b, "cuepoint_records_duplicate_total",
                    "Records skipped because the user's state had applied them already.",
                    (double)sum->duplicates);
    cue_prom_family(b, "cuepoint_dead_letters_total", "counter",
                    "Records sent to the dead-letter topic, by reason.");
    for (int k = CUE_REASON_NONE + 1; k < CUE_REASON_COUNT; k++) {
        cue_buf_reset(&r->labels);
        cue_prom_label(&r->labels, "reason", cue_reason_name(k), strlen(cue_reason_name(k)));
        cue_prom_sample(b, "cuepoint_dead_letters_total", r->labels.data,
                        (double)res->dead_by_reason[k]);
    }
    cue_prom_family(b, "cuepoint_triggers_total", "counter", "Triggers produced, by name.");
    for (size_t m = 0; m < cue_machines_count(r->o->ms); m++) {
        const cue_machine *mc = cue_machines_get(r->o->ms, m);
        for (int t = 0; t < mc->n_triggers; t++) {
            cue_buf_reset(&r->labels);
            cue_prom_label(&r->labels, "machine", mc->name, strlen(mc->name));
            cue_prom_label(&r->labels, "trigger", mc->triggers[t].name,
                           strlen(mc->triggers[t].name));
            cue_prom_sample(b, "cuepoint_triggers_total", r->labels.data,
                            (double)res->by_trigger[m][t]);
        }
    }
    metrics_counter(b, "cuepoint_timers_fired_total", "Timers that fired.",
                    (double)sum->engine.timers_fired);
    metrics_counter(b, "cuepoint_journey_instances_migrated_total",
                    "Instances stored under another journey version, migrated on load.",
                    (double)sum->codec.migrated);
    metrics_counter(b, "cuepoint_journey_instances_stranded_total",
                    "Migrated instances whose state was gone with no rule for it: finished.",
                    (double)sum->codec.stranded);
    if (r->o->policy == NULL) return;
    cue_prom_family(b, "cuepoint_policy_decisions_total", "counter",
                    "Decisions of the policy stage, by outcome.");
    for (int k = 0; k < CUE_OUTCOME_COUNT; k++) {
        const char *name = cue_outcome_name((cue_outcome)k);
        cue_buf_reset(&r->labels);
        cue_prom_label(&r->labels, "outcome", name, strlen(name));
        cue_prom_sample(b, "cuepoint_policy_decisions_total", r->labels.data,
                        (double)sum->decisions[k]);
    }
    metrics_counter(b, "cuepoint_users_erased_total", "Users erased by an erasure event.",
                    (double)sum->erasures);
    metrics_counter(b, "cuepoint_users_expired_total",
                    "Users deleted by state TTL (state.ttl, or a journey's state_ttl).",
                    (double)sum->expired_users);
    metrics_counter(b, "cuepoint_journey_instances_expired_total",
                    "Journey instances dropped by their journey's state_ttl.",
                    (double)sum->engine.instances_expired);
}

/* The commit cycle and what the producer did with its records. */
static void render_output(rt *r, cue_buf *b)
{
    cue_prom_family(b, "cuepoint_commit_duration_seconds", "histogram",
                    "Commit cycle: from stopping intake to resuming it (a sealed cycle, a quarter "
                    "of the partitions: while its "
                    "changelog records are made and its state batches built; with exactly-once or "
                    "a repartition stage: the wait for acknowledgements too; at a run's end: the "
                    "writes too).");
    cue_prom_histogram(b, "cuepoint_commit_duration_seconds", NULL, &r->commit_hist);
    cue_prom_family(b, "cuepoint_store_write_duration_seconds", "histogram",
                    "A task's state batch written to RocksDB on the store's thread, intake going "
                    "on meanwhile; its group offsets are committed after it.");
    cue_prom_histogram(b, "cuepoint_store_write_duration_seconds", NULL, &r->write_hist);
    cue_prom_family(b, "cuepoint_commit_ack_wait_seconds", "histogram",
                    "A sealed commit cycle: from the seal to the acknowledgement of every record "
                    "produced before it (then of its changelog records), intake going on "
                    "meanwhile; its state batches are written after it.");
    cue_prom_histogram(b, "cuepoint_commit_ack_wait_seconds", NULL, &r->ack_hist);
    metrics_counter(b, "cuepoint_commit_cycles_early_total",
                    "Commit cycles begun before commit.interval.ms was up, because a task's "
                    "changed users had passed half its share of statestore.cache.max.bytes.",
                    (double)r->early_cycles);
    metrics_counter(b, "cuepoint_rebalances_total", "Partition assignments and revocations.",
                    (double)r->res->rebalances);
    const cue_kafka_stats *ks = cue_kafka_stats_get(r->k);
    metrics_counter(b, "cuepoint_produced_records_total", "Triggers and dead letters produced.",
                    (double)ks->produced);
    metrics_counter(b, "cuepoint_delivery_failures_total", "Deliveries that failed for good.",
                    (double)ks->delivery_failures);
    metrics_gauge(b, "cuepoint_in_flight_records", "Produced records not yet acknowledged.",
                  (double)cue_kafka_in_flight(r->k));
    if (!r->cfg->exactly_once) return;
    metrics_counter(b, "cuepoint_transactions_committed_total",
                    "Transactions committed (exactly-once).", (double)ks->txn_committed);
    metrics_counter(b, "cuepoint_transactions_aborted_total",
                    "Transactions aborted; the tasks rolled back to the last commit.",
                    (double)ks->txn_aborted);
    metrics_counter(b, "cuepoint_transactions_aborted_triggers_total",
                    "Trigger records produced in transactions that were then aborted.",
                    (double)ks->txn_aborted_triggers);
    metrics_counter(b, "cuepoint_producer_fenced_total",
                    "Times another producer took over this transactional.id.",
                    (double)ks->txn_fenced);
}

/* Readiness, restores and standbys, the state cache and RocksDB. */
static void render_state(rt *r, cue_buf *b, const cue_cache_stats *cache)
{
    /* What /readyz answers, so an alert can say how long it has been false:
     * Prometheus cannot probe /readyz itself without a blackbox exporter. */
    metrics_gauge(b, "cuepoint_ready", "1 when /readyz answers 200, else 0.", is_ready(r) ? 1 : 0);
    metrics_gauge(b, "cuepoint_restoring_partitions",
                  "Partitions rebuilding their state from the changelog (not ready meanwhile).",
                  (double)r->reader.restoring);
    if (r->reader.k)
        metrics_counter(b, "cuepoint_changelog_records_skipped_total",
                        "Changelog records a restore or standby skipped: not a user's state "
                        "or position (see the log).",
                        (double)r->reader.skipped);
    if (r->mem.view) {
        metrics_gauge(b, "cuepoint_standby_partitions",
                      "Partitions this instance keeps as standby replicas.",
                      (double)r->reader.standbys);
        metrics_gauge(b, "cuepoint_members_live",
                      "Instances with a live record on the members topic (this one included).",
                      (double)cue_members_live(r->mem.view, rt_real_ms()));
        metrics_counter(b, "cuepoint_members_records_skipped_total",
                        "Records of the members topic that were not member records.",
                        (double)r->mem.bad);
    }
    metrics_counter(b, "cuepoint_cache_hits_total", "User states found in the cache.",
                    (double)cache->hits);
    metrics_counter(b, "cuepoint_cache_misses_total", "User states read from RocksDB.",
                    (double)cache->misses);
    metrics_counter(b, "cuepoint_cache_evictions_total", "User states evicted from the cache.",
                    (double)cache->evictions);
    metrics_gauge(b, "cuepoint_cache_bytes", "Bytes held by the user-state caches.",
                  (double)cache->bytes);
    uint64_t sst = 0, mem = 0;
    cue_store_bytes(r->store, &sst, &mem);
    metrics_gauge(b, "cuepoint_rocksdb_sst_bytes", "Bytes of RocksDB SST files.", (double)sst);
    metrics_gauge(b, "cuepoint_rocksdb_memtable_bytes", "Bytes in RocksDB memtables.", (double)mem);
}

static void render_journeys(rt *r, cue_buf *b)
{
    cue_journey_counts_prometheus(rt_journeys_sum(r), b, &r->labels);
    metrics_counter(b, "cuepoint_journey_recounts_total",
                    "Partitions whose journey counts were recounted from the store on opening.",
                    (double)r->recounts);
    metrics_counter(b, "cuepoint_journey_recount_seconds_total",
                    "Time spent recounting journey counts from the store on opening partitions.",
                    (double)r->recount_ns / 1e9);
}

/* The stream threads: how many, and with several, each one's share of the
 * records and the time each stood still while another ran alone. */
static void render_threads(rt *r, cue_buf *b)
{
    uint32_t n = rt_workers_count(r);
    metrics_gauge(b, "cuepoint_stream_threads", "Threads processing records (num.stream.threads).",
                  (double)n);
    if (r->workers == NULL) return;
    cue_prom_family(b, "cuepoint_stream_thread_records_total", "counter",
                    "Records processed, per stream thread.");
    uint64_t paused = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t recs, ns;
        rt_workers_stats(r, i, &recs, &ns);
        paused += ns;
        char v[16];
        snprintf(v, sizeof v, "%u", i);
        cue_buf_reset(&r->labels);
        cue_prom_label(&r->labels, "thread", v, strlen(v));
        cue_prom_sample(b, "cuepoint_stream_thread_records_total", r->labels.data, (double)recs);
    }
    metrics_counter(b, "cuepoint_stream_thread_paused_seconds_total",
                    "Time stream threads stood still while another ran alone (a task's own "
                    "commit, a read waiting for the store's writer, a timer refill), summed.",
                    (double)paused / 1e9);
}

static void render_metrics(rt *r, cue_buf *b)
{
    cue_task_stats sum = r->retired;
    cue_cache_stats cache = r->retired_cache;
    cache.bytes = cache.entries = 0;
    render_partitions(r, b, &sum, &cache);
    render_restores(r, b);
    render_records(r, b, &sum);
    render_journeys(r, b);
    render_output(r, b);
    render_state(r, b, &cache);
    render_threads(r, b);
    if (r->http) render_admin(r, b, cue_http_stats_get(r->http));
    cue_prom_build_info(b, cue_version, cue_commit);
    /* Without /proc (not Linux) the process families are left out rather
     * than exported as zeros that would read as real figures. */
    cue_process_stats ps;
    if (cue_process_stats_read(&ps) == 0) cue_prom_process(b, &ps);
}

static bool is_ready(rt *r)
{
    return !r->fenced && r->assigned_once && !r->rebalancing && !r->stop_requested &&
           r->fatal_rc == 0 && r->reader.restoring == 0 && (r->s1.k == NULL || r->s1.assigned_once);
}

static int user_json(rt *r, const char *uid, cue_buf *body)
{
    size_t n = strlen(uid);
    if (n == 0 || n > CUE_USER_ID_BYTES_MAX) return 404;
    /* The producer's partitioner is not known here, so every owned partition
     * is asked: the cache first, then RocksDB; a miss costs one lookup each. */
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL) continue;
        cue_buf_reset(body);
        int rc = cue_task_user_json(p->task, uid, n, body, NULL);
        if (rc == 0) return 200;
        if (rc != CUE_ENOTFOUND) return 500;
    }
    return 404;
}

/* Who may read /v1/users/{id}, which is personal data: with
 * admin.users.token, whoever sends it as a bearer token (401 for anyone
 * else); without one, whoever reaches a loopback admin address, which is
 * this host only, and no one when the address is reachable from elsewhere
 * (403: no credentials would help). Health and metrics stay open to all:
 * they are what probes and scrapers need, and they hold no user's data. */
static int users_gate(rt *r, const cue_http_request *req, cue_http_reply *reply)
{
    const char *token = r->cfg->admin_users_token;
    if (token[0] != '\0') {
        if (cue_http_bearer_is(req->authorization, token)) return 0;
        if (req->authorization) {
            reply->www_authenticate = "Bearer realm=\"cuepoint\", error=\"invalid_token\"";
            cue_buf_append_str(reply->body,
                               "{\"error\":\"the bearer token is not admin.users.token\"}\n");
        } else {
            reply->www_authenticate = "Bearer realm=\"cuepoint\"";
            cue_buf_append_str(reply->body, "{\"error\":\"this needs admin.users.token as a bearer "
                                            "token (Authorization: Bearer ...)\"}\n");
        }
        return 401;
    }
    if (r->admin_loopback) return 0;
    cue_buf_append_str(reply->body,
                       "{\"error\":\"/v1/users/{id} is off: admin.listen is reachable from other "
                       "hosts and admin.users.token is not set\"}\n");
    return 403;
}

static int on_http(const cue_http_request *req, cue_http_reply *reply, void *ctx)
{
    rt *r = ctx;
    const char *path = req->path;
    cue_buf *body = reply->body;
    reply->content_type = "application/json";
    if (strcmp(path, "/healthz") == 0) {
        /* Answered from the loop itself: an answer is the proof of progress. */
        bool ok = r->fatal_rc == 0;
        cue_buf_printf(body, "{\"status\":\"%s\"}\n", ok ? "ok" : "failing");
        return ok ? 200 : 503;
    }
    if (strcmp(path, "/readyz") == 0) {
        bool ok = is_ready(r);
        cue_buf_printf(body, "{\"ready\":%s,%s\"partitions\":[", ok ? "true" : "false",
                       r->fenced ? "\"reason\":\"fenced\"," : "");
        bool first = true;
        for (int32_t i = 0; i < r->n_parts; i++)
            if (r->parts[i].task) {
                cue_buf_printf(body, "%s%d", first ? "" : ",", (int)i);
                first = false;
            }
        cue_buf_append_str(body, "]}\n");
        return ok ? 200 : 503;
    }
    if (strcmp(path, "/metrics") == 0) {
        reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(r, body);
        return 200;
    }
    if (strncmp(path, "/v1/users/", 10) == 0) {
        int status = users_gate(r, req, reply);
        if (status == 0) status = user_json(r, path + 10, body);
        if (status == 200) {
            cue_buf_append_char(body, '\n');
            return 200;
        }
        if (status == 401 || status == 403) return status;
        cue_buf_reset(body);
        cue_buf_printf(body, "{\"error\":\"%s\"}\n",
                       status == 404 ? "no state for this user in this instance's partitions"
                                     : "state could not be read");
        return status;
    }
    int status = rt_console_http(r, path, reply);
    if (status != 0) return status;
    cue_buf_append_str(body, "{\"error\":\"not found\",\"paths\":[\"/\",\"/healthz\",\"/readyz\","
                             "\"/metrics\",\"/v1/journeys\",\"/v1/partitions\",\"/v1/activity\","
                             "\"/v1/users/{id}\"]}\n");
    return 404;
}

static int check_answer(const cue_http_request *req, cue_http_reply *reply, void *ctx)
{
    return 404;
}

/* admin.listen as rt_open_admin will take it: "HOST:PORT" with a port from 0
 * to 65535, and a host the http module can bind. The host is bound on a
 * free port (PORT 0) and let go at once, so a check beside a running
 * instance that holds the port still passes. */
int rt_check_admin(const char *listen, cue_err *err)
{
    if (listen[0] == '\0') return 0;
    const char *colon = strrchr(listen, ':');
    size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
    if (colon == NULL || colon == listen || digits == 0 || digits > 5 ||
        colon[1 + digits] != '\0' || atol(colon + 1) > 65535)
        return cue_err_set(err, CUE_ECONFIG, "admin.listen: '%s' is not HOST:PORT (port 0-65535)",
                           listen);
    char any[80];
    snprintf(any, sizeof any, "%.*s:0", (int)(colon - listen), listen);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) return cue_err_set(err, CUE_EIO, "cannot start a loop");
    cue_http *h = NULL;
    int rc = cue_http_start(&h, &loop, any, NULL, check_answer, NULL, err);
    if (rc != 0 && err) {
        /* The http module's message names the address it was given: name
         * the configured one instead, so the message reads as run's. */
        char *at = strstr(err->msg, any);
        size_t n = strlen(any), m = strlen(listen), len = strlen(err->msg);
        if (at && len - n + m < sizeof err->msg) {
            memmove(at + m, at + n, len - (size_t)(at - err->msg) - n + 1);
            memcpy(at, listen, m);
        }
        cue_err_prefix(err, "admin.listen");
        err->code = CUE_ECONFIG;
    }
    if (rc != 0) rc = CUE_ECONFIG;
    cue_http_stop(h);
    uv_run(&loop, UV_RUN_DEFAULT); /* the server's close callbacks */
    uv_loop_close(&loop);
    return rc;
}

int rt_open_admin(rt *r, cue_err *err)
{
    if (r->cfg->admin_listen[0] == '\0') return 0;
    int rc = cue_http_start(&r->http, &r->loop, r->cfg->admin_listen, NULL, on_http, r, err);
    if (rc != 0) {
        /* A taken port or a bad address is fixed in the config (or "" for none). */
        cue_err_prefix(err, "admin.listen");
        if (err) err->code = CUE_ECONFIG;
        return CUE_ECONFIG;
    }
    const char *addr = cue_http_address(r->http);
    r->admin_loopback = cue_http_loopback(r->http);
    cue_log(CUE_LOG_INFO, "admin listening", "s:address", addr, NULL);
    if (!r->admin_loopback && r->cfg->admin_users_token[0] == '\0')
        cue_log(CUE_LOG_WARN,
                "admin: /v1/users/{id} refused (403): the admin address is reachable from "
                "other hosts and admin.users.token is not set",
                "s:address", addr, NULL);
    if (r->o->admin_addr_file) {
        char tmp[CUE_PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", r->o->admin_addr_file);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%s\n", addr);
            fclose(f);
            rename(tmp, r->o->admin_addr_file);
        }
    }
    return 0;
}
