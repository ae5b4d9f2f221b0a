/* The loop and the commit cycle. One libuv loop runs everything: the
 * pipeline's consumer and producer (rt_client), the changelog reader, the
 * members topic, the repartition stage, admin HTTP, the clocks and signals.
 * Every commit.interval.ms (or sooner, when a task's changed users fill half
 * its cache: cycle_wanted) a cycle commits every task's store batch and the
 * group's offsets, after the producer's acknowledgements (promise 3). At
 * least once, without a repartition stage, the cycle is sealed (seal_cycle),
 * a quarter of the partitions at a time (on_commit_timer):
 * its batches are built at once and wait at the store's gate for the
 * acknowledgements while intake goes on (with the changelog, its records
 * are made at the seal, produced once the triggers are acknowledged, and
 * the gate opens once they are too). Otherwise (exactly once's transaction,
 * the repartition stage, the last cycle of a run) it stops intake while it
 * waits. Caught-up partitions follow the wall clock
 * (on_clock); SIGTERM finishes the cycle under way, within
 * shutdown.timeout.ms. */
#include "runtime_int.h"

static void request_stop(rt *r, int sig);

/* Records served per loop turn before the loop looks at its other work
 * (timers, HTTP, signals); the rest wait for the next turn. */
#define CONSUME_BATCH 4096

/* Sealed cycles take a quarter of the partitions each (partition number
 * modulo 4), one every commit.interval.ms / 4: each partition still commits
 * once an interval, and intake stops for a quarter of the seal at a time.
 * One seal of every partition stopped intake ~7 ms a second at half
 * bench/pipeline.sh's rate, and the records that waited through it, and
 * through the store's writer and RocksDB's flush working on a full cycle,
 * were the latency's p99 (docs/benchmarks.md). */
#define COMMIT_SLICES 4

/* How often caught-up partitions follow the wall clock and stop_at_end looks. */
#define CLOCK_TICK_MS 250

/* A task's batch handed to the store's writer thread, and what its group
 * commit needs once it is written: the offsets and marker of the commit. */
typedef struct written {
    rt *r;
    int32_t partition;
    uint32_t gen;
    bool group_unread;
    int64_t offsets[CUE_INPUT_TOPICS_MAX];
    char marker[CUE_KAFKA_META_MAX];
} written;

/* The batch is in the store: the group may now hear of its offsets (the
 * promise's order), unless the partition went meanwhile (a lost one may
 * have a new owner whose offsets this would overwrite). */
static void on_written(int rc, const cue_err *err, double seconds, void *ctx)
{
    written *w = ctx;
    rt *r = w->r;
    cue_histogram_observe(&r->write_hist, seconds);
    part *p = rt_part_get(r, w->partition);
    if (rc != 0) {
        char msg[CUE_ERR_MSG_MAX + 32];
        const char *why = err ? err->msg : "cannot write the state batch";
        if (w->partition < 0)
            snprintf(msg, sizeof msg, "restored records: %s", why);
        else
            snprintf(msg, sizeof msg, "partition %d: %s", (int)w->partition, why);
        rt_fatal(r, rc, msg);
    } else if (r->fatal_rc == 0 && p && p->task && p->gen == w->gen) {
        rt_step(r, RT_STEP_STORED, w->partition);
        if (!w->group_unread) {
            cue_kafka_group_commit_all(r->k, w->partition, w->offsets, w->marker, false, NULL);
            rt_step(r, RT_STEP_GROUP_COMMITTED, w->partition);
        }
    }
    if (p && p->handed == w) p->handed = NULL;
    free(w);
}

static void on_store_wake(uv_async_t *h)
{
    rt *r = h->data;
    if (r->store) cue_store_reap(r->store);
}

/* From the store's writer thread. */
static void store_wake(void *ctx)
{
    uv_async_send(&((rt *)ctx)->store_wake);
}

/* Hands the task's batch, its changelog records acknowledged, to the
 * store's writer thread: intake resumes while RocksDB inserts it (most of a
 * cycle's time). False when it could not be handed over (no memory): the
 * caller commits it in place. */
static bool commit_async(rt *r, int32_t i)
{
    part *p = &r->parts[i];
    written *w = malloc(sizeof *w);
    if (w == NULL) return false;
    *w = (written){.r = r, .partition = i, .gen = p->gen, .group_unread = p->group_unread};
    rt_task_offsets(p, rt_topics(r), w->offsets);
    memcpy(w->marker, p->marker, sizeof w->marker);
    cue_err err = {0};
    p->handed = w;
    /* On failure on_written has been called: it stops the run and frees w. */
    (void)cue_task_commit_finish_async(p->task, on_written, w, &err);
    return true;
}

/* What restores and standbys put into the store's batch is handed over on
 * its own before a seal: a task's batch may be dropped at the gate
 * (rt_part_lost_cycle), and must hold nothing but the task's. */
static void hand_over_shared(rt *r)
{
    if (cue_store_batch_count(r->store) == 0) return;
    written *w = malloc(sizeof *w);
    if (w == NULL) {
        rt_batch_commit(r);
        return;
    }
    *w = (written){.r = r, .partition = -1};
    cue_err err = {0};
    (void)cue_store_batch_commit_async(r->store, NULL, on_written, w, &err);
}

void rt_part_lost_cycle(rt *r, int32_t id)
{
    part *p = &r->parts[id];
    if (p->handed == NULL || p->task == NULL || !cue_task_commit_log_held(p->task)) return;
    if (!cue_store_gate_cancel(r->store, p->handed)) return;
    free(p->handed);
    p->handed = NULL;
    cue_log(CUE_LOG_INFO, "sealed cycle dropped: partition lost before its changelog went out",
            "i:partition", (int64_t)id, NULL);
}

/* The triggers acknowledged (the cycle waited for them), every task's
 * changelog records produced, then waited for at once (a wait per task
 * costs a round trip each), then the batches written: in place, or handed
 * to the store's writer thread (`async`). */
static int commit_all(rt *r, bool async)
{
    cue_err err = {0};
    int rc = rt_flush(r, &err);
    for (int32_t i = 0; i < r->n_parts && rc == 0; i++)
        if (r->parts[i].task) rc = cue_task_commit_log(r->parts[i].task, &err);
    if (rc == 0 && r->cfg->changelog) rc = rt_flush(r, &err);
    for (int32_t i = 0; i < r->n_parts && rc == 0 && r->fatal_rc == 0; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL || (async && commit_async(r, i))) continue;
        rc = cue_task_commit_finish(p->task, &err);
        if (rc == 0)
            rt_part_committed(r, i, false);
        else
            cue_err_prefix(&err, "partition %d", (int)i);
    }
    if (rc != 0) rt_fatal(r, err.code, err.msg);
    return rc;
}

static void finish_commit(rt *r)
{
    /* The last cycle of a run writes in place: its group commits must be
     * done before the consumer leaves. */
    if (r->cfg->exactly_once)
        rt_eos_cycle(r);
    else if (commit_all(r, r->store && !r->stop_requested) != 0)
        return;
    rt_stage1_commit(r, false);
    r->res->commits++;
    cue_histogram_observe(&r->commit_hist, (double)(uv_hrtime() - r->commit_started_ns) / 1e9);
    if (r->fatal_rc) return;
    r->state = RUNNING;
    if (r->stop_requested) uv_stop(&r->loop);
}

/* The sealed cycle's triggers are acknowledged: its changelog records,
 * held in the tasks since the seal, go out, and the gate waits for them. */
static void release_logs(rt *r)
{
    r->log_held = false;
    rt_step(r, RT_STEP_ACKED, -1);
    for (int32_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].task) cue_task_commit_release_log(r->parts[i].task);
}

/* The sealed cycle's records are acknowledged: its batches may be written. */
static void open_gate(rt *r)
{
    r->sealed = false;
    cue_histogram_observe(&r->ack_hist, (double)(uv_hrtime() - r->commit_started_ns) / 1e9);
    rt_step(r, RT_STEP_ACKED, -1);
    cue_store_gate_open(r->store);
}

/* The store must see the batches at its gate now (a read of a user who
 * left the cache since, a synchronous commit, the close): every record
 * produced so far is waited for here, the sealed cycle's among them (also
 * while seal_cycle is still handing batches over, when one is written in
 * place). Non-zero drops the batches: the run is failing. */
static int gate_opener(void *ctx)
{
    rt *r = ctx;
    for (int pass = 0; pass < 2 && r->fatal_rc == 0; pass++) {
        cue_err err = {0};
        if (cue_kafka_flush(r->k, r->cfg->delivery_timeout_ms, &err) != 0)
            rt_fatal(r, err.code, err.msg);
        else if (r->log_held)
            release_logs(r); /* then waited for by the second pass */
        else
            break;
    }
    if (r->fatal_rc) {
        r->sealed = false;
        return r->fatal_rc;
    }
    if (r->sealed) open_gate(r);
    return 0;
}

/* Whether this cycle is sealed rather than stopping intake (the top says when). */
static bool may_seal(const rt *r)
{
    return r->store && !r->cfg->exactly_once && r->s1.k == NULL && !r->stop_requested &&
           !r->no_seal;
}

/* Whether partition i is in `slice` (-1: every slice). */
static bool in_slice(int32_t i, int32_t slice)
{
    return slice < 0 || i % COMMIT_SLICES == slice;
}

/* The batches of the tasks of `slice` (-1: every task) built now, with
 * their states and offsets as they are, and handed to the store behind the
 * closed gate; the records produced so far are the sealed cycle's
 * (cue_kafka_seal: all of them, the slice's and the others', are waited
 * for). Intake stops only while the batches are built. */
static void seal_cycle(rt *r, int32_t slice)
{
    cue_kafka_serve_producer(r->k);
    hand_over_shared(r);
    cue_store_gate_close(r->store);
    for (int32_t i = 0; i < r->n_parts && r->fatal_rc == 0; i++) {
        part *p = &r->parts[i];
        if (p->task == NULL || !in_slice(i, slice)) continue;
        /* Again for each task: a hand-over that found the write queue full
         * settled it, which opened the gate for the batches before; this
         * task's records are not acknowledged yet. */
        cue_store_gate_close(r->store);
        if (r->cfg->changelog) {
            cue_err err = {0};
            if (cue_task_commit_hold_log(p->task, &err) != 0) {
                rt_fatal(r, err.code, err.msg);
                break;
            }
            r->log_held = true;
        }
        if (commit_async(r, i)) continue;
        cue_err err = {0}; /* no memory for its hand-over: written in place, after the acks */
        if (cue_task_commit_finish(p->task, &err) != 0) {
            cue_err_prefix(&err, "partition %d", (int)i);
            rt_fatal(r, err.code, err.msg);
        } else {
            rt_part_committed(r, i, false);
        }
    }
    if (r->fatal_rc) return;
    cue_kafka_seal(r->k);
    r->sealed = true;
    r->res->commits++;
    cue_histogram_observe(&r->commit_hist, (double)(uv_hrtime() - r->commit_started_ns) / 1e9);
}

void rt_check_commit(rt *r)
{
    if (r->sealed && r->fatal_rc == 0 && cue_kafka_in_flight_sealed(r->k) == 0 && r->log_held) {
        /* Its changelog records now, then wait for them as a cycle of their
         * own (none, when the tasks that held them were lost meanwhile:
         * the gate opens now, not at the next delivery report). */
        release_logs(r);
        cue_kafka_seal(r->k);
    }
    if (r->sealed && r->fatal_rc == 0 && !r->log_held && cue_kafka_in_flight_sealed(r->k) == 0)
        open_gate(r);
    if (r->state != COMMITTING || r->fatal_rc) return;
    if (cue_kafka_in_flight(r->k) > 0) return; /* the producer's fd wakes us */
    if (r->s1.k && cue_kafka_in_flight(r->s1.k) > 0) return;
    finish_commit(r);
    if (r->state == RUNNING && !r->stop_requested) {
        rt_client_resume(&r->main);
        rt_client_resume(&r->s1.client);
    }
}

/* A cycle of the tasks of `slice` (-1: every task; a sealed cycle only
 * may be of a slice). */
static void begin_commit(rt *r, int32_t slice)
{
    if (r->state != RUNNING || r->fatal_rc) return;
    rt_check_commit(r);
    if (may_seal(r)) {
        /* One sealed cycle waits at a time: a cycle whose acknowledgements
         * take longer than commit.interval.ms makes the next one later. */
        if (r->sealed) return;
        r->early_cycles += r->cycle_wanted;
        r->cycle_wanted = false;
        r->commit_started_ns = uv_hrtime();
        seal_cycle(r, slice);
        rt_check_commit(r); /* its records may be acknowledged already */
        return;
    }
    r->early_cycles += r->cycle_wanted;
    r->cycle_wanted = false;
    r->state = COMMITTING;
    r->commit_started_ns = uv_hrtime(); /* intake stops: see serving() */
    cue_kafka_serve_producer(r->k);
    /* The changed users' records are made while the triggers' acknowledgements
     * come back, rather than after them. */
    cue_err err = {0};
    for (int32_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].task && cue_task_commit_encode(r->parts[i].task, &err) != 0) {
            rt_fatal(r, err.code, err.msg);
            return;
        }
    rt_check_commit(r);
}

void rt_begin_commit(rt *r)
{
    begin_commit(r, -1);
}

/* Every commit.interval.ms / COMMIT_SLICES. A sealed cycle takes the next
 * slice (none when the slice has no task: a partition's cycle comes once
 * an interval however few there are); a slice waits while the cycle
 * before it does, so slow acknowledgements make every partition's cycle
 * later, as they made the one cycle later before slices. Other cycles
 * (exactly-once's, the repartition stage's) take every task, once a round
 * of slices. */
static void on_commit_timer(uv_timer_t *h)
{
    rt *r = h->data;
    if (r->state != RUNNING || r->fatal_rc) return;
    if (!may_seal(r)) {
        if (r->slice_next++ % COMMIT_SLICES == 0) begin_commit(r, -1);
        return;
    }
    rt_check_commit(r);
    if (r->sealed) return;
    int32_t slice = (int32_t)(r->slice_next++ % COMMIT_SLICES);
    for (int32_t i = slice; i < r->n_parts; i += COMMIT_SLICES)
        if (r->parts[i].task) {
            begin_commit(r, slice);
            return;
        }
}

/* Delivery reports came (the main producer's or the repartition stage's):
 * a cycle waiting for them may end. */
static void on_produced(void *ctx)
{
    rt_check_commit(ctx);
}

/* Refreshes every owned partition's high watermark (each partition's own
 * clock depends on it, so none is skipped) and says whether all are at it. */
static bool all_caught_up(rt *r)
{
    size_t owned = 0, behind = 0;
    for (int32_t i = 0; i < r->n_parts; i++) {
        part *p = &r->parts[i];
        if (p->restoring) {
            owned++;
            behind++;
            continue;
        }
        if (p->task == NULL) continue;
        owned++;
        if (!rt_part_caught_up(r, i, true)) behind++;
    }
    for (int32_t i = 0; r->s1.k && i < r->s1.n; i++) {
        if (!r->s1.owned[i]) continue;
        if (cue_kafka_peek(r->s1.k, i) != NULL || !rt_stage1_at_end(r, i)) behind++;
    }
    return owned > 0 && behind == 0;
}

/* Records are taken between commit cycles only (and not once the run is
 * failing): the intake of the main consumer and the repartition stage. */
static bool serving(void *ctx)
{
    const rt *r = ctx;
    return r->state == RUNNING && r->fatal_rc == 0;
}

/* The pipeline's records, a batch at a time. The first record's and the
 * last one's times (for active_seconds) are read once a batch, before and
 * after it: a clock read per record was 2% of the pipeline's CPU. */
static size_t serve_main(void *ctx)
{
    rt *r = ctx;
    uint64_t before = r->first_record_ns ? 0 : uv_hrtime();
    r->took_records = false;
    size_t n = r->workers ? cue_kafka_consume_batch(r->k, CONSUME_BATCH, rt_workers_batch, r)
                          : cue_kafka_consume(r->k, CONSUME_BATCH);
    if (r->took_records) {
        r->last_record_ns = uv_hrtime();
        if (r->first_record_ns == 0) r->first_record_ns = before;
    }
    /* Until a cycle begins (a sealed one still waiting makes it wait). */
    if (r->cycle_wanted) rt_begin_commit(r);
    return n;
}

/* Caught-up partitions follow the wall clock; lagging ones never do, so a
 * backlog of progress is applied before any "stalled" timer can fire. */
static void on_clock(uv_timer_t *h)
{
    rt *r = h->data;
    rt_activity_tick(r);
    rt_client_pump(&r->s1.client); /* the merge may be waiting for a partition */
    /* librdkafka takes a group member that has not polled its consumer for
     * max.poll.interval.ms out of the group, and the pipe wakes the loop
     * only when something comes: an input idle for five minutes would
     * cost a rebalance every five minutes. */
    rt_client_pump(&r->main);
    if (r->state != RUNNING || r->fatal_rc) return;
    bool caught_up = all_caught_up(r);
    int64_t now = rt_wall_ms(r);
    for (int32_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].task) cue_task_set_clock(r->parts[i].task, now);
    if (r->cfg->wall_clock) {
        for (int32_t i = 0; i < r->n_parts; i++) {
            part *p = &r->parts[i];
            if (p->task == NULL || !rt_part_caught_up(r, i, false)) continue;
            cue_err err = {0};
            int rc = cue_task_advance(p->task, now, &err);
            if (rc == CUE_EABORTED) { /* a task's own commit, under exactly-once */
                rt_eos_rollback(r, err.msg);
                return;
            }
            if (rc != 0) {
                rt_fatal(r, err.code, err.msg);
                return;
            }
        }
    }
    if (r->o->stop_at_end && caught_up && cue_kafka_in_flight(r->k) == 0 && !r->stop_requested &&
        rt_repartition_drained(r)) {
        cue_log(CUE_LOG_INFO, "every partition reached its end; stopping", NULL);
        request_stop(r, 0);
    }
}

static void on_stop_timeout(uv_timer_t *h)
{
    rt_fatal(h->data, CUE_EUNAVAILABLE,
             "shutdown.timeout.ms passed before the last commit; the next run resumes from the one "
             "before");
}

static void request_stop(rt *r, int sig)
{
    if (r->stop_requested && sig != 0) {
        /* A second signal: out at once. The last commit is on disk; the
         * next run resumes there. */
        cue_log(CUE_LOG_WARN, "second signal: exiting now", "i:signal", (int64_t)sig, NULL);
        _exit(128 + sig);
    }
    if (r->stop_requested) return;
    r->stop_requested = true;
    r->res->signal = sig;
    cue_log(CUE_LOG_INFO, "stopping: finishing the commit cycle", "i:signal", (int64_t)sig, NULL);
    uv_timer_start(&r->stop_timer, on_stop_timeout, (uint64_t)r->cfg->shutdown_timeout_ms, 0);
    if (r->state == RUNNING) rt_begin_commit(r);
}

static void on_signal(uv_signal_t *h, int sig)
{
    request_stop(h->data, sig);
}

/* The exit status the run will have, for the watchdog below. */
static volatile sig_atomic_t teardown_status;

static void on_teardown_alarm(int sig)
{
    static const char msg[] = "{\"level\":\"warn\",\"msg\":\"the Kafka clients did not close in "
                              "time; exiting anyway: state and offsets are on disk\"}\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    (void)sig;
    _exit(teardown_status);
}

/* librdkafka's teardown waits for a coordinator that may be down (offset
 * commits, the group's close) for up to a minute, and no flag of 2.0.2 cuts
 * that short. By the time it runs the store is committed and closed, so
 * leaving without it loses nothing: the process exits once `timeout_ms` more
 * have passed, with the status the run would have had. */
static void teardown_watchdog(int rc, int64_t timeout_ms)
{
    teardown_status = rc == 0                             ? 0
                      : rc == CUE_ESTORE || rc == CUE_EIO ? EX_IOERR
                      : rc == CUE_ECONFIG                 ? EX_CONFIG
                      : rc == CUE_EFENCED                 ? EX_TEMPFAIL
                                                          : EX_UNAVAILABLE;
    struct sigaction sa = {.sa_handler = on_teardown_alarm};
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)(timeout_ms / 1000) + 2);
}

void rt_start(rt *r)
{
    r->started = true;
    uv_timer_init(&r->loop, &r->commit_timer);
    uv_timer_init(&r->loop, &r->clock_timer);
    uv_timer_init(&r->loop, &r->stop_timer);
    uv_signal_init(&r->loop, &r->sigterm);
    uv_signal_init(&r->loop, &r->sigint);
    uv_async_init(&r->loop, &r->store_wake, on_store_wake);
    uv_handle_t *hs[] = {(uv_handle_t *)&r->commit_timer, (uv_handle_t *)&r->clock_timer,
                         (uv_handle_t *)&r->stop_timer,   (uv_handle_t *)&r->sigterm,
                         (uv_handle_t *)&r->sigint,       (uv_handle_t *)&r->store_wake};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        hs[i]->data = r;
    if (r->store) {
        cue_store_set_notify(r->store, store_wake, r);
        cue_store_set_gate_opener(r->store, gate_opener, r);
    }
    r->main = (rt_client){.batch = CONSUME_BATCH,
                          .may_serve = serving,
                          .serve = serve_main,
                          .produced = on_produced,
                          .ctx = r};
    rt_client_start(&r->main, &r->loop, r->k, true);
    rt_stage1_start(r);
    rt_reader_start(r);
    rt_members_start(r);
    uint64_t every = (uint64_t)r->cfg->commit_interval_ms / COMMIT_SLICES;
    if (every == 0) every = 1;
    uv_timer_start(&r->commit_timer, on_commit_timer, every, every);
    uv_timer_start(&r->clock_timer, on_clock, CLOCK_TICK_MS, CLOCK_TICK_MS);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    rt_client_resume(&r->main); /* records may already be queued */
}

static void close_handles(rt *r)
{
    if (!r->started) return;
    r->started = false;
    /* The writer thread wakes the loop no more (writes still queued are
     * waited for, and their group commits made, by the stores' settles). */
    if (r->store) cue_store_set_notify(r->store, NULL, NULL);
    uv_handle_t *hs[] = {(uv_handle_t *)&r->commit_timer, (uv_handle_t *)&r->clock_timer,
                         (uv_handle_t *)&r->stop_timer,   (uv_handle_t *)&r->sigterm,
                         (uv_handle_t *)&r->sigint,       (uv_handle_t *)&r->store_wake};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        if (!uv_is_closing(hs[i])) uv_close(hs[i], NULL);
    rt_client_close(&r->main);
    rt_client_close(&r->s1.client);
    rt_client_close(&r->reader.client);
    rt_members_stop(r);
}

/* After the loop: commits what is left (unless the run failed) and closes
 * the store, so that everything the next run needs is on disk; then the
 * clients, the pipeline's consumer last (leaving the group revokes no tasks
 * any more). Returns the run's status. */
static int stop_all(rt *r, int rc, cue_err *err)
{
    if (r->k && r->cfg->exactly_once && r->fatal_rc == 0) rt_eos_cycle(r);
    for (int32_t i = 0; i < r->n_parts && r->k; i++)
        rt_part_release(r, i, false, false);
    if (rc == 0 && r->fatal_rc) {
        rc = r->fatal_rc;
        *err = r->fatal_err;
    }
    if (r->store && r->reader.standbys && r->fatal_rc == 0) {
        cue_err serr = {0}; /* what the standbys applied last; losing it costs a re-read */
        if (cue_store_batch_commit(r->store, false, &serr) != 0)
            cue_log(CUE_LOG_WARN, "standby progress not saved", "s:error", serr.msg, NULL);
    }
    if (r->store) cue_store_close(r->store);
    r->store = NULL;
    if (r->http) cue_http_stop(r->http);
    uv_run(&r->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    uv_loop_close(&r->loop);
    if (r->reader.k) cue_kafka_close(r->reader.k, 0);
    rt_members_close(r);
    rt_stage1_close(r);
    if (r->k) {
        teardown_watchdog(rc, r->o->cfg->shutdown_timeout_ms);
        cue_kafka_close(r->k, r->fatal_rc ? 0 : r->o->cfg->shutdown_timeout_ms);
        alarm(0);
    }
    return rc;
}

rt *rt_new(const cue_runtime_opts *o, cue_runtime_result *res)
{
    rt *r = calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    r->cfg = o->cfg;
    memset(res, 0, sizeof *res);
    r->o = o;
    r->res = res;
    r->started_ns = uv_hrtime();
    r->sink = rt_collector(r);
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,  0.5,    1,     2.5,  5,     10};
    cue_histogram_init(&r->commit_hist, bounds, sizeof bounds / sizeof *bounds);
    cue_histogram_init(&r->write_hist, bounds, sizeof bounds / sizeof *bounds);
    cue_histogram_init(&r->ack_hist, bounds, sizeof bounds / sizeof *bounds);
    cue_buf_init(&r->labels, 256);
    uv_loop_init(&r->loop);
    return r;
}

int rt_open(rt *r, cue_err *err)
{
    int rc = cue_journey_counts_new(&r->journeys_retired, r->o->ms, err);
    if (rc == 0) rc = cue_journey_counts_new(&r->journeys_sum, r->o->ms, err);
    if (rc == 0) rc = rt_open_all(r, err);
    if (rc == 0) rc = cue_kafka_subscribe(r->k, err);
    if (rc == 0 && r->s1.k) rc = cue_kafka_subscribe(r->s1.k, err);
    return rc;
}

int rt_end(rt *r, int rc, cue_err *err)
{
    close_handles(r);
    rc = stop_all(r, rc, err);
    rt_workers_close(r);
    cue_runtime_result *res = r->res;
    res->seconds = (double)(uv_hrtime() - r->started_ns) / 1e9;
    res->active_seconds = (double)(r->last_record_ns - r->first_record_ns) / 1e9;
    res->applied = r->retired.applied;
    res->duplicates = r->retired.duplicates;
    res->error_logged = rc != 0 && rc == r->fatal_rc && strcmp(err->msg, r->fatal_err.msg) == 0;
    cue_buf_deinit(&r->labels);
    cue_journey_counts_free(r->journeys_retired);
    cue_journey_counts_free(r->journeys_sum);
    free(r->txn_parts);
    free(r->txn_offsets);
    free(r->txn_meta);
    free(r->txn_topics);
    for (int32_t i = 0; i < r->n_parts; i++) {
        cue_restore_deinit(&r->parts[i].rs);
        cue_restore_deinit(&r->parts[i].sb);
    }
    free(r->parts);
    free(r);
    return rc;
}

int cue_runtime_run(const cue_runtime_opts *o, cue_runtime_result *res, cue_err *err)
{
    rt *r = rt_new(o, res);
    if (r == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    int rc = rt_open(r, err);
    if (rc == 0) {
        rt_start(r);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        rc = r->fatal_rc;
        if (rc != 0) *err = r->fatal_err;
    }
    return rt_end(r, rc, err);
}
