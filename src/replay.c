/* The replay: history from the input topic (outside the group) or a file,
 * through one task per partition into a state directory of its own. */
#include "cuepoint/replay.h"

#include "cuepoint/buf.h"
#include "cuepoint/event.h"
#include "cuepoint/kafka.h"
#include "cuepoint/log.h"
#include "cuepoint/store.h"
#include "cuepoint/task.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Records served per turn before the loop looks at progress and stop. */
#define CONSUME_BATCH 4096
/* How long the loop sleeps on an empty consumer queue before looking again. */
#define IDLE_WAIT_MS 200
/* Progress: a terminal line every second, a log line every ten. */
#define PROGRESS_TTY_NS 1000000000ull
#define PROGRESS_LOG_NS 10000000000ull
/* Partitions listed in a progress log line, the furthest behind first. */
#define PROGRESS_BEHIND_MAX 8

/* ---- the plan ---------------------------------------------------------- */

static int64_t clamp(cue_replay_part *p, int64_t v, int64_t lo)
{
    if (v < lo || v > p->high) {
        p->clamped = true;
        return v < lo ? lo : p->high;
    }
    return v;
}

/* The offset a bound names for partition p; `all` says whether any point
 * applies to it. */
static bool point_for(const cue_replay_point *pts, size_t n, int32_t p, int64_t *out)
{
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (pts[i].partition == p || (pts[i].partition < 0 && !found)) {
            *out = pts[i].offset;
            found = true;
            if (pts[i].partition == p) return true;
        }
    return found;
}

static int check_points(const cue_replay_point *pts, size_t n, int32_t parts, const char *what,
                        cue_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (pts[i].partition >= parts)
            return cue_err_set(err, CUE_EUSAGE, "%s names partition %d; the topic has %d", what,
                               (int)pts[i].partition, (int)parts);
    return 0;
}

static int bound_offset(cue_replay_bound b, int64_t ts, const cue_replay_point *pts, size_t n,
                        cue_replay_part *p, int64_t lo, bool is_end, cue_replay_lookup_fn lookup,
                        void *ctx, int64_t *out, cue_err *err)
{
    int64_t v = is_end ? p->high : p->low;
    if (b == CUE_REPLAY_OFFSET && !point_for(pts, n, p->partition, &v)) v = is_end ? p->high : lo;
    if (b == CUE_REPLAY_TIME) {
        int rc = lookup(ctx, p->partition, ts, &v, err);
        if (rc != 0) return rc;
        if (v < 0) {
            /* No record at or after the time: from there, nothing; up to
             * there, everything (an end past the last record is the end). */
            v = p->high;
            if (!is_end) p->no_time = true;
        }
    }
    *out = clamp(p, v, lo);
    return 0;
}

int cue_replay_plan(const cue_replay_range *r, cue_replay_part *parts, int32_t n,
                    cue_replay_lookup_fn lookup, void *ctx, cue_err *err)
{
    int rc = check_points(r->from_points, r->n_from_points, n, "--from-offset", err);
    if (rc == 0) rc = check_points(r->to_points, r->n_to_points, n, "--to-offset", err);
    for (size_t i = 0; rc == 0 && i < r->n_only; i++)
        if (r->only[i] < 0 || r->only[i] >= n)
            rc = cue_err_set(err, CUE_EUSAGE, "--partitions names partition %d; the topic has %d",
                             (int)r->only[i], (int)n);
    if (rc != 0) return rc;
    /* --from-offset P:O,... without an all-partitions entry picks partitions. */
    bool from_picks = r->from == CUE_REPLAY_OFFSET && r->n_from_points > 0;
    for (size_t i = 0; i < r->n_from_points; i++)
        if (r->from_points[i].partition < 0) from_picks = false;
    for (int32_t i = 0; i < n; i++) {
        cue_replay_part *p = &parts[i];
        p->selected = r->n_only == 0;
        for (size_t j = 0; j < r->n_only; j++)
            if (r->only[j] == p->partition) p->selected = true;
        int64_t dummy;
        if (from_picks && !point_for(r->from_points, r->n_from_points, p->partition, &dummy))
            p->selected = false;
        p->start = p->end = p->high;
        if (!p->selected) continue;
        rc = bound_offset(r->from, r->from_time_ms, r->from_points, r->n_from_points, p, p->low,
                          false, lookup, ctx, &p->start, err);
        if (rc == 0)
            rc = bound_offset(r->to, r->to_time_ms, r->to_points, r->n_to_points, p, p->start, true,
                              lookup, ctx, &p->end, err);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- the run ----------------------------------------------------------- */

typedef struct slot {
    cue_task *task; /* owned */
    cue_replay_part plan;
    int64_t position; /* next offset to process */
    bool done;
} slot;

typedef struct rp {
    const cue_replay_opts *o;
    cue_replay_result *res;
    cue_config task_cfg; /* the config with the cache budget divided among partitions */
    cue_store *store;    /* owned */
    cue_kafka *k;        /* owned; NULL for a file */
    cue_task_sink sink;
    slot *slots; /* owned; one per partition */
    int32_t n_slots, active;
    int fatal_rc;
    cue_err fatal_err;
    const char *source; /* for dead letters: the topic or the file's name */
    int64_t line;       /* the file line being processed, or -1 */
    bool truncated;
    cue_buf dl; /* owned: one dead-letter line */
    uint64_t records, started_ns, last_progress_ns;
    bool progress_shown;
} rp;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(rp *r, int rc, const char *msg)
{
    if (r->fatal_rc) return;
    r->fatal_rc = rc;
    cue_err_set(&r->fatal_err, rc, "%s", msg);
}

static void sink_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    rp *r = ctx;
    if (t->time_ms < r->o->since_ms) {
        r->res->before_since++;
        return;
    }
    if (r->o->output_topic) {
        if (cue_kafka_produce_trigger(r->k, t->user->id, t->user->id_len, t->id, t->name,
                                      t->time_ms, rec, len) != 0)
            return; /* fatal raised */
    } else {
        cue_jsonl_put(r->o->out, rec, len);
    }
    r->res->sum.triggers++;
    r->res->sum.by_trigger[t->machine_index][t->trigger_index]++;
}

static void sink_dead(const cue_dead_letter *dl, void *ctx)
{
    rp *r = ctx;
    cue_dead_letter_json(&r->dl, dl, r->source, r->line, r->truncated);
    fwrite(r->dl.data, 1, r->dl.len, r->o->dead);
}

static void sink_decision(const char *key, size_t key_len, const char *rec, size_t len, void *ctx)
{
    rp *r = ctx;
    (void)key;
    (void)key_len;
    if (r->o->decisions) cue_jsonl_put(r->o->decisions, rec, len);
}

static int sink_flush(void *ctx, cue_err *err)
{
    rp *r = ctx;
    if (r->fatal_rc) return cue_err_set(err, r->fatal_rc, "%s", r->fatal_err.msg);
    int rc = cue_jsonl_flush(r->o->decisions, "decisions", err);
    if (rc == 0) rc = cue_jsonl_flush(r->o->dead, "dead letters", err);
    if (rc == 0 && r->o->output_topic)
        rc = cue_kafka_flush(r->k, r->o->cfg->delivery_timeout_ms, err);
    else if (rc == 0)
        rc = cue_jsonl_flush(r->o->out, "triggers", err);
    return rc;
}

static int slots_open(rp *r, int32_t n, cue_err *err)
{
    r->slots = calloc((size_t)n, sizeof *r->slots);
    if (r->slots == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    r->n_slots = n;
    r->task_cfg = *r->o->cfg;
    size_t share = r->o->cfg->cache_max_bytes / (size_t)n;
    r->task_cfg.cache_max_bytes = share < CUE_CACHE_BYTES_MIN ? CUE_CACHE_BYTES_MIN : share;
    for (int32_t i = 0; i < n; i++)
        r->slots[i].plan.partition = i;
    return 0;
}

static int slot_task(rp *r, slot *s, cue_err *err)
{
    if (s->task) return 0;
    int rc = cue_task_new(&s->task, &r->task_cfg, r->o->ms, r->store, (uint32_t)s->plan.partition,
                          &r->sink, err);
    if (rc == 0 && r->o->clock_ms > 0) cue_task_set_clock(s->task, r->o->clock_ms);
    return rc == 0 ? cue_task_set_policy(s->task, r->o->policy, err) : rc;
}

static void progress(rp *r, bool final)
{
    if (r->o->quiet) return;
    uint64_t now = mono_ns();
    uint64_t every = r->o->progress_tty ? PROGRESS_TTY_NS : PROGRESS_LOG_NS;
    if (!final && now - r->last_progress_ns < every) return;
    if (final && !r->progress_shown) return;
    r->last_progress_ns = now;
    r->progress_shown = true;
    double secs = (double)(now - r->started_ns) / 1e9;
    double rate = secs > 0 ? (double)r->records / secs : 0;
    uint64_t remaining = 0;
    char behind[PROGRESS_BEHIND_MAX * 48] = "";
    size_t used = 0, listed = 0;
    for (int32_t i = 0; i < r->n_slots; i++) {
        slot *s = &r->slots[i];
        if (!s->plan.selected || s->done) continue;
        int64_t at = s->position > s->plan.start ? s->position : s->plan.start;
        if (s->plan.end > at) remaining += (uint64_t)(s->plan.end - at);
        if (listed++ < PROGRESS_BEHIND_MAX && used < sizeof behind)
            used += (size_t)snprintf(behind + used, sizeof behind - used, "%s%d:%lld/%lld",
                                     listed > 1 ? " " : "", (int)i, (long long)at,
                                     (long long)s->plan.end);
    }
    double eta = rate > 0 ? (double)remaining / rate : 0;
    if (r->o->progress_tty) {
        if (r->k)
            fprintf(stderr,
                    "\rreplay: %llu records, %.0f/s, %d of %d partitions done, %llu left, "
                    "ETA %.0f s   ",
                    (unsigned long long)r->records, rate, (int)(r->res->partitions - r->active),
                    (int)r->res->partitions, (unsigned long long)remaining, eta);
        else
            fprintf(stderr, "\rreplay: %llu records, %.0f/s   ", (unsigned long long)r->records,
                    rate);
        if (final) fputc('\n', stderr);
        return;
    }
    if (r->k == NULL) { /* a file: how much is left is not known */
        cue_log(CUE_LOG_INFO, final ? "replay read everything" : "replay progress", "s:replay_id",
                r->o->replay_id, "u:records", r->records, "d:records_per_second", rate, NULL);
        return;
    }
    cue_log(CUE_LOG_INFO, final ? "replay read everything" : "replay progress", "s:replay_id",
            r->o->replay_id, "u:records", r->records, "d:records_per_second", rate, "u:remaining",
            remaining, "d:eta_seconds", eta, "i:partitions_left", (int64_t)r->active, "s:behind",
            behind, NULL);
}

/* ---- from the topic ---------------------------------------------------- */

static void part_done(rp *r, slot *s)
{
    if (s->done) return;
    s->done = true;
    r->active--;
    cue_kafka_pause(r->k, s->plan.partition);
}

static void on_message(const cue_kafka_msg *m, void *ctx)
{
    rp *r = ctx;
    if (m->partition < 0 || m->partition >= r->n_slots || r->fatal_rc) return;
    slot *s = &r->slots[m->partition];
    if (s->done || s->task == NULL) return;
    if (m->offset >= s->plan.end) {
        part_done(r, s);
        return;
    }
    cue_err err = {0};
    cue_record rec = cue_kafka_record(m);
    int rc = cue_task_offer(s->task, &rec, &err);
    if (rc == 1) return; /* applied before (a --seed-state run) */
    r->records++;
    if (rc != 0) fail(r, rc, err.msg);
    s->position = m->offset + 1;
    if (s->position >= s->plan.end) part_done(r, s);
}

static void on_end(int32_t partition, int64_t offset, void *ctx)
{
    rp *r = ctx;
    if (partition < 0 || partition >= r->n_slots) return;
    slot *s = &r->slots[partition];
    /* Offsets can skip (compaction, transaction markers): the end is reached
     * when the consumer says so, not only by the last record's offset. */
    if (offset >= s->plan.end) part_done(r, s);
}

static void on_fatal(const char *why, void *ctx)
{
    fail(ctx, CUE_EUNAVAILABLE, why);
}

static int lookup_time(void *ctx, int32_t partition, int64_t ts_ms, int64_t *offset, cue_err *err)
{
    rp *r = ctx;
    return cue_kafka_offset_for_time(r->k, partition, ts_ms, r->o->cfg->startup_timeout_ms, offset,
                                     err);
}

/* True when every selected partition with records found none at or after
 * --from-time (false without it: no_time stays unset). */
static bool all_no_time(const rp *r, int32_t n)
{
    bool any = false;
    for (int32_t i = 0; i < n; i++) {
        const cue_replay_part *p = &r->slots[i].plan;
        if (!p->selected || p->high <= p->low) continue;
        if (!p->no_time) return false;
        any = true;
    }
    return any;
}

static int topic_plan(rp *r, cue_err *err)
{
    int32_t n = 0;
    int rc = cue_kafka_wait_ready(r->k, r->o->cfg->startup_timeout_ms, &n, err);
    if (rc == 0) rc = slots_open(r, n, err);
    for (int32_t i = 0; rc == 0 && i < n; i++)
        rc = cue_kafka_watermarks(r->k, i, r->o->cfg->startup_timeout_ms, &r->slots[i].plan.low,
                                  &r->slots[i].plan.high, err);
    if (rc != 0) return rc;
    cue_replay_part *parts = calloc((size_t)n, sizeof *parts);
    if (parts == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++)
        parts[i] = r->slots[i].plan;
    rc = cue_replay_plan(&r->o->range, parts, n, lookup_time, r, err);
    for (int32_t i = 0; rc == 0 && i < n; i++) {
        slot *s = &r->slots[i];
        s->plan = parts[i];
        s->position = s->plan.start;
        if (!s->plan.selected) continue;
        r->res->partitions++;
        r->res->target += (uint64_t)(s->plan.end - s->plan.start);
        if (s->plan.clamped || s->plan.no_time)
            cue_log(CUE_LOG_WARN,
                    s->plan.no_time ? "no record at or after the time: the range is empty there"
                                    : "offset outside the partition's log: moved to its edge",
                    "s:topic", r->o->cfg->input_topic, "i:partition", (int64_t)i, "i:low",
                    s->plan.low, "i:high", s->plan.high, "i:start", s->plan.start, "i:end",
                    s->plan.end, NULL);
    }
    free(parts);
    if (rc == 0 && all_no_time(r, n))
        cue_log(CUE_LOG_WARN, CUE_KAFKA_NO_TIME_HINT, "s:topic", r->o->cfg->input_topic, NULL);
    return rc;
}

static int topic_assign(rp *r, cue_err *err)
{
    int32_t *ids = calloc((size_t)r->n_slots, sizeof *ids);
    int64_t *start = calloc((size_t)r->n_slots, sizeof *start);
    int rc = ids && start ? 0 : cue_err_set(err, CUE_ENOMEM, "out of memory");
    size_t n = 0;
    for (int32_t i = 0; rc == 0 && i < r->n_slots; i++) {
        slot *s = &r->slots[i];
        if (!s->plan.selected) continue;
        rc = slot_task(r, s, err);
        if (rc != 0 || s->plan.start >= s->plan.end) {
            s->done = true;
            continue;
        }
        ids[n] = i;
        start[n++] = s->plan.start;
        r->active++;
    }
    cue_log(CUE_LOG_INFO, "replay starting", "s:replay_id", r->o->replay_id, "s:topic",
            r->o->cfg->input_topic, "i:partitions", (int64_t)r->res->partitions, "u:records",
            r->res->target, NULL);
    if (rc == 0 && n > 0) rc = cue_kafka_assign(r->k, ids, start, n, err);
    free(ids);
    free(start);
    return rc;
}

static int from_topic(rp *r, cue_err *err)
{
    cue_kafka_handler h = {.message = on_message, .fatal = on_fatal, .end = on_end, .ctx = r};
    r->source = r->o->cfg->input_topic;
    int rc = cue_kafka_open_replay(&r->k, r->o->cfg, &h, r->o->replay_id, r->o->output_topic, err);
    if (rc == 0) rc = topic_plan(r, err);
    if (rc == 0) rc = topic_assign(r, err);
    if (rc != 0) return rc;
    r->started_ns = mono_ns();
    int fd = cue_kafka_consumer_fd(r->k);
    while (r->active > 0 && r->fatal_rc == 0 && !(r->o->stop && *r->o->stop)) {
        if (cue_kafka_consume(r->k, CONSUME_BATCH) < CONSUME_BATCH) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, IDLE_WAIT_MS);
            cue_kafka_drain_fd(fd);
        }
        cue_kafka_serve_producer(r->k);
        progress(r, false);
    }
    return r->fatal_rc ? cue_err_set(err, r->fatal_rc, "%s", r->fatal_err.msg) : 0;
}

/* ---- from a file ------------------------------------------------------- */

static int from_file(rp *r, cue_err *err)
{
    const cue_replay_opts *o = r->o;
    int32_t n = o->file_partitions > 0 ? o->file_partitions : 1;
    cue_line_source *src = NULL;
    cue_event_decoder *dec = NULL;
    int rc = slots_open(r, n, err);
    if (rc == 0) rc = cue_line_source_new(&src, o->in, o->cfg->event_bytes_max, err);
    /* Placing a record needs its user id first: a decoder of its own, so
     * the task's decode of the same record is untouched. */
    if (rc == 0 && n > 1) rc = cue_event_decoder_new(&dec, o->cfg, err);
    for (int32_t i = 0; rc == 0 && i < n; i++) {
        r->slots[i].plan.selected = true;
        rc = slot_task(r, &r->slots[i], err);
    }
    r->res->partitions = n;
    r->source = o->input_name ? o->input_name : "-";
    r->started_ns = mono_ns();
    const char *rec;
    size_t len;
    bool oversize;
    while (rc == 0 && !(o->stop && *o->stop) &&
           (rc = cue_line_source_next(src, &rec, &len, &r->line, &oversize, err)) > 0) {
        rc = 0;
        int32_t p = 0;
        if (dec && !oversize) {
            cue_event ev;
            cue_reason why;
            if (cue_event_decode(dec, rec, len, &ev, &why, NULL) == 0)
                p = cue_kafka_partition_of(o->partitioner, ev.user_id, ev.user_id_len, n);
        }
        slot *s = &r->slots[p];
        r->records++;
        r->truncated = oversize;
        cue_record line = {.value = rec,
                           .value_len = len,
                           .offset = s->position,
                           .timestamp_ms = CUE_NO_TIMESTAMP};
        rc =
            oversize
                ? cue_task_reject(s->task, &line, CUE_REASON_TOO_LARGE,
                                  "line is longer than event.max.bytes (raw is its beginning)", err)
                : cue_task_process(s->task, &line, err);
        s->position++;
        if ((r->records & 0xfff) == 0) progress(r, false);
    }
    r->line = -1;
    cue_event_decoder_free(dec);
    cue_line_source_free(src);
    return rc;
}

/* ---- the whole --------------------------------------------------------- */

/* Advances (when asked), commits and frees every task. */
static int finish(rp *r, int rc, cue_err *err)
{
    int64_t stream = INT64_MIN;
    for (int32_t i = 0; i < r->n_slots; i++) {
        slot *s = &r->slots[i];
        if (s->task == NULL) continue;
        if (rc == 0 && r->o->advance_to_ms != INT64_MIN && !r->res->stopped)
            rc = cue_task_advance(s->task, r->o->advance_to_ms, err);
        if (rc == 0) rc = cue_task_commit(s->task, err);
        cue_task_stats_add(&r->res->sum.task, cue_task_stats_get(s->task));
        if (cue_task_stream_time(s->task) > stream) stream = cue_task_stream_time(s->task);
        cue_task_free(s->task);
        s->task = NULL;
    }
    r->res->sum.stream_ms = stream;
    return rc;
}

int cue_replay_run(const cue_replay_opts *o, cue_replay_result *res, cue_err *err)
{
    memset(res, 0, sizeof *res);
    rp r = {.o = o, .res = res, .line = -1};
    r.sink = (cue_task_sink){.trigger = sink_trigger,
                             .dead_letter = sink_dead,
                             .decision = sink_decision,
                             .flush = sink_flush,
                             .ctx = &r};
    uint64_t t0 = mono_ns();
    /* Never the first topic alone, as if it were the whole input. */
    int rc = cue_config_one_input(o->cfg, "cuepoint replay", err);
    if (rc != 0) return rc;
    rc = cue_buf_init(&r.dl, 4096) ? cue_err_set(err, CUE_ENOMEM, "out of memory") : 0;
    if (rc == 0) rc = cue_store_dir_create(o->cfg->state_dir, err);
    if (rc == 0) rc = cue_store_open(&r.store, o->cfg->state_dir, &(cue_store_opts){0}, err);
    /* A seeded directory is for the live pipeline: it must say so. */
    if (rc == 0)
        rc = cue_store_owner_check(r.store, o->cfg->application_id, o->cfg->input_topic, err);
    if (rc == 0) rc = o->in ? from_file(&r, err) : from_topic(&r, err);
    res->stopped = o->stop && *o->stop;
    progress(&r, true);
    rc = finish(&r, rc, err);
    /* Every trigger acknowledged before the replay says it is done. */
    if (rc == 0 && r.k) rc = cue_kafka_flush(r.k, o->cfg->delivery_timeout_ms, err);
    if (r.k) cue_kafka_close(r.k, 0);
    cue_store_close(r.store);
    cue_buf_deinit(&r.dl);
    free(r.slots);
    res->sum.seconds = (double)(mono_ns() - t0) / 1e9;
    return rc;
}
