/* store's inside: the handle that store.c (the database, its batch, reads,
 * scans) and store_writer.c (the thread that writes handed-over batches)
 * share. */
#ifndef CUEPOINT_STORE_INT_H
#define CUEPOINT_STORE_INT_H

#include "cuepoint/buf.h"
#include "cuepoint/store.h"

#include <pthread.h>
#include <rocksdb/c.h>

enum { CF_DEFAULT = 0, CF_USERS, CF_TIMERS, CF_META, CF_COUNT };

/* Batches handed to the writer thread and not yet reaped: a few cycles'
 * worth (each task hands one per cycle), and at most WRITES_BYTES_MAX of
 * them; a caller past either waits, so memory stays bounded when the disk
 * falls behind. */
#define WRITES_MAX       CUE_STORE_WRITES_MAX
#define WRITES_BYTES_MAX (64u << 20)
#define SPARES_MAX       WRITES_MAX
#define FILL_BUFS_MAX    WRITES_MAX

/* A batch on its way to the store (cue_store_batch_commit_async). */
typedef struct pending_write {
    rocksdb_writebatch_t *batch; /* owned by the queue */
    size_t bytes;
    cue_store_written_fn fn;
    void *ctx;
    char *error;         /* RocksDB's message, owned (rocksdb_free); NULL: written */
    double seconds;      /* the write's */
    cue_store_fill fill; /* fn NULL: none (or it ran) */
    int fill_rc;         /* the fill's error: the batch was not written */
} pending_write;

/* The batch a fill puts into, and the store it belongs to. */
struct cue_store_filler {
    cue_store *s;
    rocksdb_writebatch_t *batch;
};

struct cue_store {
    rocksdb_t *db;                                /* owned */
    rocksdb_options_t *opts;                      /* owned */
    rocksdb_options_t *users_opts;                /* owned: opts, but the users' memtables */
    rocksdb_options_t *timers_opts;               /* owned: opts, with hinted inserts */
    rocksdb_block_based_table_options_t *table;   /* owned */
    rocksdb_cache_t *cache;                       /* owned, may be NULL */
    rocksdb_column_family_handle_t *cf[CF_COUNT]; /* owned */
    rocksdb_writebatch_t *batch;                  /* owned, reused across commits */
    rocksdb_readoptions_t *ro;                    /* owned, reused for point reads */
    rocksdb_writeoptions_t *wo, *wo_sync;         /* owned */
    size_t batch_count;
    bool read_only;
    /* Timer index entries put in bulk (a standby's), put in key order at
     * the commit (cue_timer_run says why). */
    cue_timer_run bulk;
    /* The writer thread, started by the first batch handed over. Under `mu`:
     * the ring q[q_head .. q_head + q_len), of which the first q_done are
     * written; `stopping` ends the thread; `held` pauses it (tests).
     * q_len is changed by the caller's thread only, which may read it
     * without the lock. */
    pthread_t writer;
    bool writer_started, stopping, held;
    /* A written batch's fn is running: a read it makes waits for the
     * writes but calls no fn itself, so fns run one at a time, in order. */
    bool reaping;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pending_write q[WRITES_MAX];
    size_t q_head, q_len, q_done;
    /* The gate (cue_store_gate_close): the writer writes the first q_open
     * of the ring only; the rest wait for their cycle's acknowledgements. */
    size_t q_open;
    bool gated;
    int (*opener)(void *ctx);
    void *opener_ctx;
    size_t q_bytes; /* of the batches not yet reaped; the caller's thread only */
    /* Emptied batches to reuse (owned), each with the bytes it grew to, at
     * most WRITES_BYTES_MAX of them in all: every task hands one over per
     * cycle, and a fresh one grows through pages that fault in, some of it
     * while intake stands still (the seal's timer entries). */
    rocksdb_writebatch_t *spare[SPARES_MAX];
    size_t spare_bytes[SPARES_MAX];
    size_t n_spare, spares_bytes;
    /* Fills' buffers given back (cue_store_fill_buf_give), under `mu`:
     * owned, n_fill_bufs of them holding fill_bufs_bytes. */
    cue_buf fill_bufs[FILL_BUFS_MAX];
    size_t n_fill_bufs, fill_bufs_bytes;
    void (*notify)(void *ctx);
    void *notify_ctx;
    /* Users erased in the batch (cue_store_batch_users_erase), as user keys
     * (partition | id) each after a 1-byte length: the commit makes their
     * deletion physical (scrub). */
    cue_buf erased;
    size_t n_erased;
    /* cue_store_filler_scratch's memory: the writer's, or the caller's
     * while no batch is handed over (a fill in place). Owned. */
    void *fill_scratch;
    size_t fill_scratch_bytes;
    uint64_t scrubs; /* commits that made erasures physical */
};

/* Translates RocksDB's error string at this edge, and frees it. */
int cue_store_rocks_error(char *errptr, cue_err *err, const char *what);

/* Waits for every handed-over batch, reaps them and ends the writer thread
 * (cue_store_close). */
void cue_store_writer_stop(cue_store *s);

#endif
