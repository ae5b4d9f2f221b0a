/* The stream threads (num.stream.threads above 1).
 *
 * Each batch the main consumer polls is taken apart by partition (partition
 * number modulo the threads), and each part is processed on a thread of its
 * own, the loop's thread taking the first: a partition's records stay in
 * order on one thread, and its task, cache and decoder are that thread's
 * alone for the batch. The loop waits for every part before it goes on, so
 * everything outside a batch (commit cycles, rebalances, restores, the clock,
 * the admin server) stays on the loop's thread as with one thread, and a
 * cycle seals the work of every thread at once.
 *
 * Inside a batch the threads share only the producer (its lock,
 * cue_kafka_produce_shared), the run's counters (atomic, collector.c) and
 * what a task reaches through cue_task_sink's exclusive: a task that commits
 * on its own (a full cache, commit.records), reads a user the store's writer
 * has not written yet, or refills its timers from the store first waits
 * until every other thread has stopped between two records (or finished its
 * part), then does it as the only thread running, and lets them go on.
 *
 * Exactly-once: a task's own commit commits every task (rt_eos_commit) as the
 * only thread running, the others stopped between two of their steps, where
 * their work so far is whole. When it aborts, no thread commits or produces
 * again in the batch (rt_workers_abort, cue_kafka_txn_hold) and the loop
 * rolls every task back once all have stopped.
 */
#include "runtime_int.h"

#include <pthread.h>
#include <stdatomic.h>

/* Records ahead of the one processed whose bytes, then user, are fetched
 * into the CPU's caches, as the consumer's ring does with one thread. */
#define AHEAD_BYTES 12
#define AHEAD_SLOT  8
#define AHEAD_ENTRY 4

typedef struct worker {
    pthread_t th;
    struct rt_workers *ws;
    int idx;
    bool started;
    uint32_t *recs; /* owned: the batch's records of this thread's partitions */
    size_t n, cap;
    int rc;      /* the first failure of the batch, or 0 */
    cue_err err; /* ... its message */
    /* For /metrics, read by the loop between batches: records processed,
     * and time stood still while another thread ran alone. */
    uint64_t records, paused_ns;
} worker;

typedef struct rt_workers {
    rt *r;
    uint32_t n;
    worker *w; /* owned, n of them; w[0] is the loop's thread */
    pthread_mutex_t mu;
    pthread_cond_t go;      /* a batch to process, or quit */
    pthread_cond_t changed; /* a thread parked or finished its part */
    pthread_cond_t world;   /* the exclusive owner let go */
    uint64_t round;         /* batches handed out */
    uint32_t finished;      /* threads done with this batch */
    uint32_t parked;        /* threads stopped for an exclusive owner */
    int owner;              /* the thread running alone, or -1 */
    uint32_t depth;         /* its nested exclusive sections */
    bool quit;
    const cue_kafka_msg *msgs; /* the batch, borrowed while it is processed */
    atomic_bool want;          /* an owner waits or runs: stop at the next record */
    atomic_bool stop;          /* a thread failed: the others stop too */
    bool aborted;              /* rt_workers_abort: written and read in exclusive sections */
    pthread_mutex_t serial;    /* rt_workers_serial */
} rt_workers;

/* The thread's index among the workers while it processes a batch; -1 on
 * any other thread, and on the loop's outside a batch. */
static _Thread_local int self = -1;

/* Stands thread `me` still (ws->mu held) until no other thread runs alone. */
static void park(rt_workers *ws, int me)
{
    if (ws->owner < 0 || ws->owner == me) return;
    uint64_t t0 = uv_hrtime();
    while (ws->owner >= 0 && ws->owner != me) {
        ws->parked++;
        pthread_cond_broadcast(&ws->changed);
        pthread_cond_wait(&ws->world, &ws->mu);
        ws->parked--;
    }
    ws->w[me].paused_ns += uv_hrtime() - t0;
}

/* Between two records: waits while another thread runs alone. */
static void safe_point(rt_workers *ws, int me)
{
    pthread_mutex_lock(&ws->mu);
    park(ws, me);
    pthread_mutex_unlock(&ws->mu);
}

void rt_workers_exclusive(bool enter, void *ctx)
{
    rt *r = ctx;
    rt_workers *ws = r->workers;
    int me = self;
    if (ws == NULL || me < 0) return; /* not inside a batch: the loop's thread alone */
    pthread_mutex_lock(&ws->mu);
    if (!enter) {
        CUE_ASSERT(ws->owner == me && ws->depth > 0);
        if (--ws->depth == 0) {
            ws->owner = -1;
            atomic_store(&ws->want, false);
            pthread_cond_broadcast(&ws->world);
        }
        pthread_mutex_unlock(&ws->mu);
        return;
    }
    if (ws->owner == me) {
        ws->depth++;
        pthread_mutex_unlock(&ws->mu);
        return;
    }
    /* Another owner first: this thread counts as stopped meanwhile. */
    park(ws, me);
    ws->owner = me;
    ws->depth = 1;
    atomic_store(&ws->want, true);
    while (ws->parked + ws->finished < ws->n - 1)
        pthread_cond_wait(&ws->changed, &ws->mu);
    pthread_mutex_unlock(&ws->mu);
}

void rt_workers_serial(rt *r, bool enter)
{
    if (r->workers == NULL) return;
    if (enter)
        pthread_mutex_lock(&r->workers->serial);
    else
        pthread_mutex_unlock(&r->workers->serial);
}

static void prefetch_bytes(const cue_kafka_msg *m)
{
    if (m->key) __builtin_prefetch(m->key);
    for (size_t at = 0; at < m->value_len && at < 256; at += 64)
        __builtin_prefetch(m->value + at);
}

/* One thread's part of the batch, in order. */
static void run_part(rt_workers *ws, worker *w)
{
    rt *r = ws->r;
    const cue_kafka_msg *msgs = ws->msgs;
    w->rc = 0;
    for (size_t j = 0; j < w->n && j < AHEAD_BYTES; j++)
        prefetch_bytes(&msgs[w->recs[j]]);
    for (size_t j = 0; j < w->n && j < AHEAD_SLOT; j++)
        rt_on_prefetch(&msgs[w->recs[j]], 0, r);
    for (size_t j = 0; j < w->n; j++) {
        if (atomic_load_explicit(&ws->stop, memory_order_relaxed)) break;
        if (atomic_load_explicit(&ws->want, memory_order_relaxed)) safe_point(ws, w->idx);
        if (j + AHEAD_BYTES < w->n) prefetch_bytes(&msgs[w->recs[j + AHEAD_BYTES]]);
        if (j + AHEAD_SLOT < w->n) rt_on_prefetch(&msgs[w->recs[j + AHEAD_SLOT]], 0, r);
        if (j + AHEAD_ENTRY < w->n) rt_on_prefetch(&msgs[w->recs[j + AHEAD_ENTRY]], 1, r);
        const cue_kafka_msg *m = &msgs[w->recs[j]];
        cue_err_clear(&w->err);
        int rc = rt_record_apply(rt_part_get(r, m->partition), m, &w->err);
        w->records++;
        if (rc != 0) {
            w->rc = rc;
            atomic_store(&ws->stop, true);
            break;
        }
    }
    pthread_mutex_lock(&ws->mu);
    ws->finished++;
    pthread_cond_broadcast(&ws->changed);
    pthread_mutex_unlock(&ws->mu);
}

static void *thread_main(void *arg)
{
    worker *w = arg;
    rt_workers *ws = w->ws;
    self = w->idx;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&ws->mu);
        while (ws->round == seen && !ws->quit)
            pthread_cond_wait(&ws->go, &ws->mu);
        bool quit = ws->quit;
        seen = ws->round;
        pthread_mutex_unlock(&ws->mu);
        if (quit) break;
        run_part(ws, w);
    }
    return NULL;
}

void rt_workers_batch(const cue_kafka_msg *msgs, size_t n, void *ctx)
{
    rt *r = ctx;
    rt_workers *ws = r->workers;
    for (uint32_t i = 0; i < ws->n; i++)
        ws->w[i].n = 0;
    for (size_t i = 0; i < n; i++) {
        if (rt_record_part(r, &msgs[i]) == NULL) continue;
        worker *w = &ws->w[(uint32_t)msgs[i].partition % ws->n];
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 4096;
            uint32_t *recs = realloc(w->recs, cap * sizeof *recs);
            if (recs == NULL) {
                rt_fatal(r, CUE_ENOMEM, "out of memory for a stream thread's records");
                return;
            }
            w->recs = recs;
            w->cap = cap;
        }
        w->recs[w->n++] = (uint32_t)i;
    }
    pthread_mutex_lock(&ws->mu);
    ws->msgs = msgs;
    ws->finished = 0;
    ws->aborted = false;
    atomic_store(&ws->stop, false);
    ws->round++;
    pthread_cond_broadcast(&ws->go);
    pthread_mutex_unlock(&ws->mu);
    self = 0;
    run_part(ws, &ws->w[0]);
    pthread_mutex_lock(&ws->mu);
    while (ws->finished < ws->n)
        pthread_cond_wait(&ws->changed, &ws->mu);
    ws->msgs = NULL;
    pthread_mutex_unlock(&ws->mu);
    self = -1;
    /* The first failure stops the run, as it would with one thread; an
     * aborted transaction (exactly-once) rolls every task back instead,
     * which also drops what the threads did after it. */
    const worker *aborted = NULL;
    for (uint32_t i = 0; i < ws->n; i++) {
        const worker *w = &ws->w[i];
        if (w->rc == CUE_EABORTED) {
            if (aborted == NULL) aborted = w;
        } else if (w->rc != 0) {
            rt_fatal(r, w->rc, w->err.msg);
            return;
        }
    }
    if (aborted) rt_eos_rollback(r, aborted->err.msg);
}

bool rt_workers_abort(rt *r)
{
    if (r->workers == NULL || self < 0) return false;
    r->workers->aborted = true;
    return true;
}

bool rt_workers_aborted(const rt *r)
{
    return r->workers && self >= 0 && r->workers->aborted;
}

uint32_t rt_workers_count(const rt *r)
{
    return r->workers ? r->workers->n : 1;
}

void rt_workers_stats(const rt *r, uint32_t i, uint64_t *records, uint64_t *paused_ns)
{
    const worker *w = &r->workers->w[i];
    *records = w->records;
    *paused_ns = w->paused_ns;
}

int rt_workers_open(rt *r, uint32_t n, cue_err *err)
{
    if (n < 2) return 0;
    rt_workers *ws = calloc(1, sizeof *ws);
    worker *w = calloc(n, sizeof *w);
    if (ws == NULL || w == NULL) {
        free(ws);
        free(w);
        return cue_err_set(err, CUE_ENOMEM, "out of memory");
    }
    ws->r = r;
    ws->n = n;
    ws->w = w;
    ws->owner = -1;
    atomic_init(&ws->want, false);
    atomic_init(&ws->stop, false);
    pthread_mutex_init(&ws->mu, NULL);
    pthread_mutex_init(&ws->serial, NULL);
    pthread_cond_init(&ws->go, NULL);
    pthread_cond_init(&ws->changed, NULL);
    pthread_cond_init(&ws->world, NULL);
    r->workers = ws;
    for (uint32_t i = 0; i < n; i++) {
        w[i].ws = ws;
        w[i].idx = (int)i;
    }
    for (uint32_t i = 1; i < n; i++) {
        int e = pthread_create(&w[i].th, NULL, thread_main, &w[i]);
        if (e != 0) {
            rt_workers_close(r);
            return cue_err_set(err, CUE_ENOMEM, "cannot start stream thread %u of %u: %s", i + 1, n,
                               strerror(e));
        }
        w[i].started = true;
    }
    cue_kafka_produce_shared(r->k);
    return 0;
}

void rt_workers_close(rt *r)
{
    rt_workers *ws = r->workers;
    if (ws == NULL) return;
    pthread_mutex_lock(&ws->mu);
    ws->quit = true;
    pthread_cond_broadcast(&ws->go);
    pthread_mutex_unlock(&ws->mu);
    for (uint32_t i = 1; i < ws->n; i++)
        if (ws->w[i].started) pthread_join(ws->w[i].th, NULL);
    for (uint32_t i = 0; i < ws->n; i++)
        free(ws->w[i].recs);
    pthread_cond_destroy(&ws->go);
    pthread_cond_destroy(&ws->changed);
    pthread_cond_destroy(&ws->world);
    pthread_mutex_destroy(&ws->serial);
    pthread_mutex_destroy(&ws->mu);
    free(ws->w);
    free(ws);
    r->workers = NULL;
}
