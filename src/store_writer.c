/* The store's writer thread: batches handed over by the caller's thread
 * (cue_store_batch_commit_async) are written here in order, and their
 * callbacks run back on the caller's thread when it reaps them. */
#include "store_int.h"

#include <time.h>

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *writer_main(void *arg)
{
    cue_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && (s->q_done == s->q_open || s->held))
            pthread_cond_wait(&s->work, &s->mu);
        if (s->q_done == s->q_open) break; /* stopping, and nothing open left */
        pending_write *w = &s->q[(s->q_head + s->q_done) % WRITES_MAX];
        pthread_mutex_unlock(&s->mu);
        char *e = NULL;
        double t0 = mono_seconds();
        if (w->fill.fn) {
            cue_store_filler f = {.s = s, .batch = w->batch};
            w->fill_rc = w->fill.fn(&f, w->fill.ctx);
            w->fill.fn = NULL;
        }
        if (w->fill_rc == 0) rocksdb_write(s->db, s->wo, w->batch, &e);
        double took = mono_seconds() - t0;
        pthread_mutex_lock(&s->mu);
        w->error = e;
        w->seconds = took;
        s->q_done++;
        pthread_cond_broadcast(&s->done);
        if (s->notify) s->notify(s->notify_ctx);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void cue_store_set_notify(cue_store *s, void (*notify)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&s->mu);
    s->notify = notify;
    s->notify_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}

void cue_store_writer_hold(cue_store *s, bool hold)
{
    pthread_mutex_lock(&s->mu);
    s->held = hold;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

void cue_store_reap(cue_store *s)
{
    if (!s->writer_started || s->reaping) return;
    s->reaping = true;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->q_done == 0) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        pending_write w = s->q[s->q_head];
        s->q_head = (s->q_head + 1) % WRITES_MAX;
        s->q_len--;
        s->q_open--;
        s->q_done--;
        pthread_mutex_unlock(&s->mu);
        s->q_bytes -= w.bytes;
        cue_err err = {0};
        int rc = 0;
        if (w.error) {
            rc = cue_store_rocks_error(w.error, &err, "writing the state batch");
        } else if (w.fill_rc) {
            rc = cue_err_set(&err, w.fill_rc, "out of memory making the states of the batch");
        }
        /* Emptied batches are kept for reuse (each keeps the room it grew
         * to) up to the queue's own bound; the rest are freed, so memory
         * follows the dirty users. */
        size_t grew = 0;
        rocksdb_writebatch_data(w.batch, &grew);
        rocksdb_writebatch_clear(w.batch);
        if (s->n_spare < SPARES_MAX && s->spares_bytes + grew <= WRITES_BYTES_MAX) {
            s->spare_bytes[s->n_spare] = grew;
            s->spare[s->n_spare++] = w.batch;
            s->spares_bytes += grew;
        } else {
            rocksdb_writebatch_destroy(w.batch);
        }
        /* Called last: it may read the store. */
        if (w.fn) w.fn(rc, rc ? &err : NULL, w.seconds, w.ctx);
    }
    s->reaping = false;
}

void cue_store_set_gate_opener(cue_store *s, int (*opener)(void *ctx), void *ctx)
{
    s->opener = opener;
    s->opener_ctx = ctx;
}

void cue_store_gate_close(cue_store *s)
{
    s->gated = true;
}

void cue_store_gate_open(cue_store *s)
{
    s->gated = false;
    pthread_mutex_lock(&s->mu);
    s->q_open = s->q_len;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

bool cue_store_gate_waiting(const cue_store *s)
{
    return s->gated && s->writer_started && s->q_open < s->q_len;
}

/* Lets go of a batch taken out from behind the gate, unwritten: its bytes,
 * its RocksDB batch and its fill (told with NULL). */
static void pending_let_go(cue_store *s, const pending_write *w)
{
    s->q_bytes -= w->bytes;
    rocksdb_writebatch_destroy(w->batch);
    if (w->fill.fn) w->fill.fn(NULL, w->fill.ctx);
}

/* Drops the batches waiting at the gate (their cycle failed) and opens it. */
static void gate_drop(cue_store *s)
{
    s->gated = false;
    if (!s->writer_started) return;
    /* The writer touches only the open part: the rest is this thread's. */
    while (s->q_len > s->q_open) {
        pthread_mutex_lock(&s->mu);
        s->q_len--;
        pending_write w = s->q[(s->q_head + s->q_len) % WRITES_MAX];
        pthread_mutex_unlock(&s->mu);
        pending_let_go(s, &w);
        cue_err err = {0};
        cue_err_set(&err, CUE_EABORTED,
                    "the state batch was not written: its cycle's records "
                    "were not all acknowledged");
        if (w.fn) w.fn(CUE_EABORTED, &err, 0, w.ctx);
    }
}

bool cue_store_gate_cancel(cue_store *s, const void *ctx)
{
    if (!s->gated || !s->writer_started) return false;
    /* The waiting part of the ring is this thread's: the writer reads only
     * the first q_open entries, so the later ones move down without it. */
    for (size_t i = s->q_open; i < s->q_len; i++) {
        pending_write w = s->q[(s->q_head + i) % WRITES_MAX];
        if (w.ctx != ctx) continue;
        for (size_t j = i + 1; j < s->q_len; j++)
            s->q[(s->q_head + j - 1) % WRITES_MAX] = s->q[(s->q_head + j) % WRITES_MAX];
        pthread_mutex_lock(&s->mu);
        s->q_len--;
        pthread_mutex_unlock(&s->mu);
        pending_let_go(s, &w);
        return true;
    }
    return false;
}

void cue_store_settle(cue_store *s)
{
    if (!s->writer_started) return;
    if (cue_store_gate_waiting(s)) {
        if (s->opener && s->opener(s->opener_ctx) != 0)
            gate_drop(s);
        else
            cue_store_gate_open(s);
    }
    pthread_mutex_lock(&s->mu);
    while (s->q_done < s->q_len)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    cue_store_reap(s);
}

void cue_store_writer_stop(cue_store *s)
{
    if (!s->writer_started) return;
    cue_store_settle(s);
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->held = false;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    s->writer_started = false;
    for (size_t i = 0; i < s->n_spare; i++)
        rocksdb_writebatch_destroy(s->spare[i]);
    s->n_spare = s->spares_bytes = 0;
}

/* A batch that cannot go to the writer thread, written here and told of
 * as one written there would be. */
static int commit_in_place(cue_store *s, const cue_store_fill *fill, cue_store_written_fn fn,
                           void *ctx, cue_err *err)
{
    double t0 = mono_seconds();
    int rc = 0;
    if (fill) {
        /* Filled here once the writer is idle: its scratch is free. */
        cue_store_settle(s);
        cue_store_filler f = {.s = s, .batch = s->batch};
        rc = fill->fn(&f, fill->ctx);
        if (rc != 0)
            cue_err_set(err, rc, "out of memory making the states of the batch");
        else
            s->batch_count++;
    }
    if (rc == 0) rc = cue_store_batch_commit(s, false, err);
    fn(rc, rc ? err : NULL, mono_seconds() - t0, ctx);
    return rc;
}

int cue_store_batch_commit_async(cue_store *s, const cue_store_fill *fill, cue_store_written_fn fn,
                                 void *ctx, cue_err *err)
{
    if (fill && fill->fn == NULL) fill = NULL;
    if (s->n_erased > 0) {
        /* Erasures are scrubbed right after their write (a restore's may
         * share the batch): written here, after those handed over. */
        return commit_in_place(s, fill, fn, ctx, err);
    }
    /* A full queue is made room in by reaping, which a fn cannot do. */
    CUE_ASSERT(!s->reaping);
    if (!s->writer_started) {
        s->q_head = s->q_len = s->q_done = s->q_open = 0;
        s->stopping = false;
        if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
            /* No thread: written here, as cue_store_batch_commit would. */
            return commit_in_place(s, fill, fn, ctx, err);
        }
        s->writer_started = true;
    }
    cue_store_batch_timer_run(s, &s->bulk);
    size_t bytes = 0;
    rocksdb_writebatch_data(s->batch, &bytes);
    if (fill) bytes += fill->bytes;
    if (s->q_bytes > 0 && s->q_bytes + bytes > WRITES_BYTES_MAX) cue_store_settle(s);
    rocksdb_writebatch_t *next = NULL;
    if (s->n_spare) {
        next = s->spare[--s->n_spare];
        s->spares_bytes -= s->spare_bytes[s->n_spare];
    } else {
        next = rocksdb_writebatch_create();
    }
    pthread_mutex_lock(&s->mu);
    while (s->q_len == WRITES_MAX) {
        pthread_mutex_unlock(&s->mu);
        cue_store_settle(s);
        pthread_mutex_lock(&s->mu);
    }
    s->q[(s->q_head + s->q_len) % WRITES_MAX] =
        (pending_write){.batch = s->batch,
                        .bytes = bytes,
                        .fn = fn,
                        .ctx = ctx,
                        .fill = fill ? *fill : (cue_store_fill){0}};
    s->q_len++;
    if (!s->gated) s->q_open = s->q_len;
    s->q_bytes += bytes;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    s->batch = next;
    s->batch_count = 0;
    return 0;
}

int cue_store_fill_buf_take(cue_store *s, size_t bytes, cue_buf *out)
{
    *out = (cue_buf){0};
    pthread_mutex_lock(&s->mu);
    /* The smallest kept one with room enough, else the largest (grown). */
    size_t pick = s->n_fill_bufs;
    for (size_t i = 0; i < s->n_fill_bufs; i++) {
        size_t cap = s->fill_bufs[i].cap;
        if (pick == s->n_fill_bufs) {
            pick = i;
            continue;
        }
        size_t best = s->fill_bufs[pick].cap;
        if (best > bytes ? cap > bytes && cap < best : cap > best) pick = i;
    }
    if (pick < s->n_fill_bufs) {
        *out = s->fill_bufs[pick];
        s->fill_bufs_bytes -= out->cap;
        s->fill_bufs[pick] = s->fill_bufs[--s->n_fill_bufs];
    }
    pthread_mutex_unlock(&s->mu);
    cue_buf_reset(out);
    return cue_buf_reserve(out, bytes);
}

void cue_store_fill_buf_give(cue_store *s, cue_buf *b)
{
    bool kept = false;
    if (b->data) {
        pthread_mutex_lock(&s->mu);
        if (s->n_fill_bufs < FILL_BUFS_MAX && s->fill_bufs_bytes + b->cap <= WRITES_BYTES_MAX) {
            s->fill_bufs[s->n_fill_bufs++] = *b;
            s->fill_bufs_bytes += b->cap;
            kept = true;
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (!kept) cue_buf_deinit(b);
    *b = (cue_buf){0};
}

bool cue_store_writes_pending(const cue_store *s)
{
    /* No lock: q_len changes only on the caller's thread (hand-over and
     * reap), and a cache miss asks this. */
    return s->writer_started && s->q_len > 0;
}
