/* The console on the admin port: the page itself (src/console/index.html,
 * compiled in by cmake/embed_file.cmake), and the JSON it reads, all on the
 * loop's thread and read-only:
 *   /v1/journeys    the journeys as graphs, with users per state and edge
 *                   totals (journey_counts.h), over the partitions here;
 *   /v1/partitions  each partition here: position, lag, stream time, restore
 *                   and standby progress;
 *   /v1/activity    records, triggers and policy decisions over the last
 *                   ACTIVITY_SAMPLES * ACTIVITY_EVERY_MS, as running totals.
 * None of them holds a user's data; the user look-up goes to /v1/users/{id},
 * with its own gate (admin.c). docs/console.md documents the shapes. */
#include "runtime_int.h"

/* The page is one file, compiled in: nothing to install, nothing fetched. */
extern const char cue_console_html[];
extern const size_t cue_console_html_len;

/* What the page may do: its own inline style and script, and requests to
 * this origin only; no frames, no forms sent anywhere. */
static const char console_csp[] =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

/* Sums every task's stats (and those of tasks gone) into `sum`. */
static void stats_sum(rt *r, cue_task_stats *sum)
{
    *sum = r->retired;
    for (int32_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].task) cue_task_stats_add(sum, cue_task_stats_get(r->parts[i].task));
}

void rt_activity_tick(rt *r)
{
    uint64_t now = uv_now(&r->loop);
    if (r->activity_n > 0 && now - r->activity_last_ms < ACTIVITY_EVERY_MS) return;
    r->activity_last_ms = now;
    cue_task_stats sum;
    stats_sum(r, &sum);
    rt_activity *a = &r->activity[r->activity_head];
    a->time_ms = rt_real_ms();
    a->records = r->res->consumed;
    a->triggers = sum.engine.triggers;
    a->produced = r->res->triggers;
    a->dead_letters = r->res->dead_letters;
    for (int k = 0; k < CUE_OUTCOME_COUNT; k++)
        a->decisions[k] = sum.decisions[k];
    r->activity_head = (r->activity_head + 1) % ACTIVITY_SAMPLES;
    if (r->activity_n < ACTIVITY_SAMPLES) r->activity_n++;
}

static void activity_json(rt *r, cue_buf *b)
{
    rt_activity_tick(r); /* the newest figures, when a sample is due */
    cue_buf_printf(b, "{\"every_ms\":%d,\"outcomes\":[", ACTIVITY_EVERY_MS);
    for (int k = 0; k < CUE_OUTCOME_COUNT; k++)
        cue_buf_printf(b, "%s\"%s\"", k ? "," : "", cue_outcome_name((cue_outcome)k));
    cue_buf_append_str(b, "],\"samples\":[");
    size_t first = (r->activity_head + ACTIVITY_SAMPLES - r->activity_n) % ACTIVITY_SAMPLES;
    for (size_t i = 0; i < r->activity_n; i++) {
        const rt_activity *a = &r->activity[(first + i) % ACTIVITY_SAMPLES];
        cue_buf_printf(b,
                       "%s{\"time_ms\":%lld,\"records\":%llu,\"triggers\":%llu,\"produced\":%llu,"
                       "\"dead_letters\":%llu,\"decisions\":[",
                       i ? "," : "", (long long)a->time_ms, (unsigned long long)a->records,
                       (unsigned long long)a->triggers, (unsigned long long)a->produced,
                       (unsigned long long)a->dead_letters);
        for (int k = 0; k < CUE_OUTCOME_COUNT; k++)
            cue_buf_printf(b, "%s%llu", k ? "," : "", (unsigned long long)a->decisions[k]);
        cue_buf_append_str(b, "]}");
    }
    cue_buf_printf(b, "],\"policy\":%s}\n", r->o->policy ? "true" : "false");
}

/* A task's lag summed over its input topics, or -1 while a topic's high
 * watermark is not known yet. */
static int64_t part_lag(rt *r, int32_t i)
{
    const part *p = &r->parts[i];
    int64_t lag = 0;
    for (uint32_t t = 0; t < rt_topics(r); t++) {
        int64_t high = cue_kafka_high_watermark_of(r->k, (uint8_t)t, i);
        int64_t pos = t == 0 ? p->position : p->more_position[t - 1];
        if (high < 0) return -1;
        lag += high > pos ? high - pos : 0;
    }
    return lag;
}

/* One partition's figures (position and high watermark of the first input
 * topic; the lag of all); `high` -1 when not known yet. */
static void partition_json(rt *r, int32_t i, cue_buf *b)
{
    part *p = &r->parts[i];
    const char *role = p->task ? "active" : p->restoring ? "restoring" : "standby";
    cue_buf_printf(b, "{\"partition\":%d,\"role\":\"%s\"", (int)i, role);
    if (p->task) {
        int64_t high = cue_kafka_high_watermark(r->k, i);
        int64_t st = cue_task_stream_time(p->task);
        cue_buf_printf(b, ",\"position\":%lld,\"high_watermark\":%lld,\"lag\":",
                       (long long)p->position, (long long)high);
        int64_t lag = part_lag(r, i);
        if (lag >= 0)
            cue_buf_printf(b, "%lld", (long long)lag);
        else
            cue_buf_append_str(b, "null");
        if (st == INT64_MIN)
            cue_buf_append_str(b, ",\"stream_time_ms\":null");
        else
            cue_buf_printf(b, ",\"stream_time_ms\":%lld", (long long)st);
    }
    if (p->restoring || p->rs.records > 0)
        cue_buf_printf(
            b,
            ",\"restore\":{\"from\":%lld,\"end\":%lld,\"position\":%lld,\"records\":%llu,"
            "\"done\":%s}",
            (long long)p->restore_from, (long long)p->restore_end, (long long)p->restore_pos,
            (unsigned long long)p->rs.records, p->restoring ? "false" : "true");
    if (p->standby) {
        int64_t high = r->reader.k ? cue_kafka_high_watermark(r->reader.k, i) : -1;
        cue_buf_printf(b,
                       ",\"standby\":{\"position\":%lld,\"high_watermark\":%lld,\"records\":%llu}",
                       (long long)p->restore_pos, (long long)high,
                       (unsigned long long)(p->sb_records_before + p->sb.records));
    }
    cue_buf_append_char(b, '}');
}

static void partitions_json(rt *r, cue_buf *b)
{
    cue_buf_printf(b, "{\"topic\":");
    cue_buf_append_json_str(b, r->cfg->input_topic, strlen(r->cfg->input_topic));
    /* Several input topics: the first is "topic" (as before), all are here. */
    cue_buf_append_str(b, ",\"topics\":[");
    for (uint32_t t = 0; t < rt_topics(r); t++) {
        const char *name = t == 0 ? r->cfg->input_topic : r->cfg->input_topics[t];
        if (t) cue_buf_append_char(b, ',');
        cue_buf_append_json_str(b, name, strlen(name));
    }
    cue_buf_append_char(b, ']');
    cue_buf_printf(b, ",\"time_ms\":%lld,\"restoring\":%zu,\"standbys\":%zu,\"partitions\":[",
                   (long long)rt_real_ms(), r->reader.restoring, r->reader.standbys);
    bool first = true;
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (!p->task && !p->restoring && !p->standby) continue;
        if (!first) cue_buf_append_char(b, ',');
        first = false;
        partition_json(r, i, b);
    }
    cue_buf_append_str(b, "]}\n");
}

int rt_console_http(rt *r, const char *path, cue_http_reply *reply)
{
    cue_buf *body = reply->body;
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        reply->content_type = "text/html; charset=utf-8";
        reply->security_policy = console_csp;
        cue_buf_append(body, cue_console_html, cue_console_html_len);
        return 200;
    }
    if (strcmp(path, "/v1/journeys") == 0) {
        /* This instance's view: the partitions it holds. */
        cue_journey_counts_json(rt_journeys_sum(r), body);
        cue_buf_append_char(body, '\n');
        return 200;
    }
    if (strcmp(path, "/v1/partitions") == 0) {
        partitions_json(r, body);
        return 200;
    }
    if (strcmp(path, "/v1/activity") == 0) {
        activity_json(r, body);
        return 200;
    }
    return 0;
}
