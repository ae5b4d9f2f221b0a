/*
 * store: cuepoint's state in RocksDB, and the only module that includes
 * RocksDB's header.
 *
 * Three column families, every key prefixed by the big-endian partition number
 * so that one partition's data is one key range:
 *   users:  partition | user_id            -> encoded user state (codec)
 *   timers: partition | due_ms | user_id   -> empty (a derived index: for each
 *           user with timers, an entry no later than its earliest timer, plus
 *           stale ones the task skips; due_ms is big-endian with the sign bit
 *           flipped so keys sort by time)
 *   meta:   partition                      -> input offset (one per input topic),
 *                                             changelog offset, stream time
 * Writes go into one reused WriteBatch and reach the database only at
 * cue_store_batch_commit, atomically. Reads see committed data only.
 * One thread at a time per store. The store owns its RocksDB handles.
 */
#ifndef CUEPOINT_STORE_H
#define CUEPOINT_STORE_H

#include "cuepoint/buf.h"
#include "cuepoint/err.h"
#include "cuepoint/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cue_store cue_store;

typedef struct cue_store_opts {
    size_t block_cache_bytes; /* RocksDB block cache; 0 = RocksDB's default */
    size_t wal_total_bytes;   /* the WAL files kept, about; 0 = 64 MiB */
    bool read_only;           /* for offline tools (state get/dump) */
} cue_store_opts;

/* A partition's progress, written in the same batch as the users it covers. */
typedef struct cue_store_meta {
    int64_t input_offset; /* next input offset to read (last applied + 1) */
    /* With several input topics (input.topics), the next offsets of the
     * topics after the first, in the list's order; topics past n_more have
     * none yet (read from their start). Zero-initialised: one topic. */
    uint8_t n_more;
    int64_t more_offsets[CUE_INPUT_TOPICS_MAX - 1];
    int64_t changelog_offset; /* next changelog offset to read; -1 when none */
    int64_t stream_time_ms;   /* largest event time seen; INT64_MIN when none */
    /* Wall-clock ms no later than the writing of any changelog record at or
     * past changelog_offset: how old the copy is, against the changelog's
     * delete.retention.ms (an older copy may miss a compacted-away
     * tombstone). 0 when unknown, which counts as the oldest. */
    int64_t synced_ms;
} cue_store_meta;

/* Creates a state directory and its parents (mode 0755) if missing. */
int cue_store_dir_create(const char *dir, cue_err *err);

/* Opens (creating if missing, unless read_only) the database in `dir`, creating
 * the directory and the column families. `*out` is owned by the caller and
 * released with cue_store_close. CUE_ESTORE with RocksDB's message on failure
 * (e.g. the directory is locked by another process). */
int cue_store_open(cue_store **out, const char *dir, const cue_store_opts *opts, cue_err *err);
void cue_store_close(cue_store *s);

/* A user id in a key is 1 to CUE_USER_ID_BYTES_MAX bytes: every function
 * that takes one refuses another with CUE_EINVAL (empty) or CUE_ELIMIT (too
 * long) and changes nothing. (A timer scan may start from an empty one.) */

/* Reads a user's encoded state into `out` (replacing its contents).
 * CUE_ENOTFOUND when there is none; CUE_ESTORE on a read error. */
int cue_store_user_get(cue_store *s, uint32_t partition, const char *uid, size_t uid_len,
                       cue_buf *out, cue_err *err);

/* Batch writes: queued in the store's batch until commit. */
int cue_store_batch_user_put(cue_store *s, uint32_t partition, const char *uid, size_t uid_len,
                             const void *val, size_t val_len);
int cue_store_batch_user_delete(cue_store *s, uint32_t partition, const char *uid, size_t uid_len);
/* Erasure that is physical. `ids` holds user ids of `partition`, each
 * after a 1-byte length. Queues, in this order, the deletion of every timer
 * index entry of theirs (one read of the partition's index) and of their
 * states; the commit then, once the batch is written, makes sure neither
 * their ids nor their states are left in any live file of the state
 * directory (WAL, table files, MANIFEST; RocksDB's LOG is kept at
 * warnings): a flush of every column family and a compaction of their keys
 * and of their partitions' timer indexes down to the last level. That is
 * done once per commit however many users it erases (erasures are rare:
 * it costs a flush and a compaction). CUE_ENOMEM or CUE_ESTORE: nothing
 * queued. An id over the bound is a caller's bug. */
int cue_store_batch_users_erase(cue_store *s, uint32_t partition, const cue_buf *ids, cue_err *err);
int cue_store_batch_timer_put(cue_store *s, uint32_t partition, int64_t due_ms, const char *uid,
                              size_t uid_len);
/* Timer index entries collected to go into a batch in key order. A
 * restore's entries come in due-time order, which is random, and inserting
 * them so into RocksDB's memtable skip list cost more than the rest of the
 * restore; in key order each insert starts where the previous one ended.
 * Zero-initialised; its memory is released with cue_timer_run_deinit. */
typedef struct cue_timer_run {
    cue_buf keys;             /* owned: per entry a 2-byte length and the key */
    size_t *off;              /* owned: where each entry starts in `keys` */
    const unsigned char **at; /* owned: the entries, to sort */
    size_t n, cap;
} cue_timer_run;
/* CUE_ENOMEM when it cannot grow, CUE_ELIMIT for a user id over the bound
 * (the entry is then not added). */
int cue_timer_run_add(cue_timer_run *run, uint32_t partition, int64_t due_ms, const char *uid,
                      size_t uid_len);
void cue_timer_run_deinit(cue_timer_run *run);
/* Drops the run's entries of user `uid` of `partition` (an erasure: they
 * must not reach the store after it). */
void cue_timer_run_drop_user(cue_timer_run *run, uint32_t partition, const char *uid,
                             size_t uid_len);
/* Puts the run's entries into the batch in key order and empties the run
 * (keeping its memory). */
void cue_store_batch_timer_run(cue_store *s, cue_timer_run *run);
/* As cue_store_batch_timer_put, for many entries at once: held in the
 * store's own run and put in key order when the batch commits, so the
 * order of the calls does not matter. Only for entries no other operation
 * of the same batch touches (they would be reordered around it). */
int cue_store_batch_timer_put_bulk(cue_store *s, uint32_t partition, int64_t due_ms,
                                   const char *uid, size_t uid_len);
int cue_store_batch_timer_delete(cue_store *s, uint32_t partition, int64_t due_ms, const char *uid,
                                 size_t uid_len);
/* Deletes every timer index entry of `partition` due at or before `due_ms`. */
void cue_store_batch_timers_delete_upto(cue_store *s, uint32_t partition, int64_t due_ms);
void cue_store_batch_meta_put(cue_store *s, uint32_t partition, const cue_store_meta *meta);

/* Operations queued since the last commit. */
size_t cue_store_batch_count(const cue_store *s);

/* Writes the batch atomically (fsync'd WAL when `sync`) and empties it.
 * CUE_ESTORE on failure; the batch is then kept so the caller may retry. */
int cue_store_batch_commit(cue_store *s, bool sync, cue_err *err);

/* Written: the batch handed over by cue_store_batch_commit_async is in the
 * store (rc 0), or could not be written (rc CUE_ESTORE, `err` says why);
 * `seconds` is how long the write took. */
typedef void (*cue_store_written_fn)(int rc, const cue_err *err, double seconds, void *ctx);

/* Users' records that the writer thread adds to a handed-over batch just
 * before writing it (cue_store_batch_commit_async's `fill`), so that the
 * caller need not make them itself: a fill copies what it needs at the
 * hand-over and encodes it there. `fn` is called exactly once: with a
 * filler to put with (on the writer thread, or the caller's when the batch
 * is written in place), or with NULL when the batch will never be written
 * (dropped at the gate), only to let go of `ctx`. It returns 0, or an
 * error code that stops the write (the batch's `written` gets it). */
typedef struct cue_store_filler cue_store_filler;
typedef struct cue_store_fill {
    int (*fn)(cue_store_filler *f, void *ctx);
    void *ctx;
    size_t bytes; /* what the fill holds, counted with the batch's own */
} cue_store_fill;

/* For a fill: a user's record put into the batch being filled. */
int cue_store_filler_user_put(cue_store_filler *f, uint32_t partition, const char *uid,
                              size_t uid_len, const void *val, size_t val_len);
/* For a fill: `bytes` of memory of the writer's own, kept from fill to fill
 * (one fill runs at a time) and freed with the store; NULL when there is
 * none. Its contents are undefined at each fill. */
void *cue_store_filler_scratch(cue_store_filler *f, size_t bytes);
/* A buffer for what a fill copies at the hand-over: one given back before
 * (cue_store_fill_buf_give) when there is one, so that a cycle's copies go
 * to memory touched before instead of fresh pages, whose faults would add
 * to the time intake stands still. `*out` is empty with room for `bytes`;
 * the caller owns it until it gives it back (or deinits it). CUE_ENOMEM. */
int cue_store_fill_buf_take(cue_store *s, size_t bytes, cue_buf *out);
/* Gives a fill's buffer back, from any thread: kept for a later fill while
 * those kept hold no more than the writer's queue may (64 MiB), else freed.
 * `*b` is left empty. */
void cue_store_fill_buf_give(cue_store *s, cue_buf *b);

/* Hands the batch to the store's writer thread and starts an empty one, so
 * the caller goes on while RocksDB inserts it. Batches are written in the
 * order handed over, and their `fn` called in that order, one at a time, on
 * the caller's thread, by cue_store_reap or by any call that must see them
 * first: every read of the store and every synchronous commit waits for the
 * batches handed over before it (so reads are exact), and calls their `fn`
 * first unless it is made from within one. `fn` may read the store and
 * commit synchronously, never hand a batch over. `notify`
 * (cue_store_set_notify) is how the writer thread says a batch is written.
 * A batch with erasures is written in place, after those handed over (its
 * scrub follows its write), and `fn` called before this returns. `fill`
 * (may be NULL) adds users' records to the batch before it is written. */
int cue_store_batch_commit_async(cue_store *s, const cue_store_fill *fill, cue_store_written_fn fn,
                                 void *ctx, cue_err *err);

/* Batches handed over and not yet reaped, at most: one more makes
 * cue_store_batch_commit_async settle those first (the gate's opener
 * included), so memory stays bounded when the disk falls behind. */
#define CUE_STORE_WRITES_MAX 256

/* Called by the writer thread each time a batch is written: it must only
 * wake the caller's thread (uv_async_send), which then calls cue_store_reap. */
void cue_store_set_notify(cue_store *s, void (*notify)(void *ctx), void *ctx);

/* True while a batch handed over is not yet reaped. */
bool cue_store_writes_pending(const cue_store *s);

/* cue_store_user_get without waiting for the batches handed over: for a
 * caller that knows the user is in none of them. */
int cue_store_user_get_unsettled(cue_store *s, uint32_t partition, const char *uid, size_t uid_len,
                                 cue_buf *out, cue_err *err);

/* Calls `fn` of the batches written so far, in order; nothing when called
 * from within one (the outer call goes on with the rest). */
void cue_store_reap(cue_store *s);

/* Waits for every batch handed over to be written, and reaps them. */
void cue_store_settle(cue_store *s);

/* The gate, for a commit cycle whose batches are built before its records
 * are acknowledged (promise 3): batches handed over while the gate is closed
 * wait in the queue, unwritten, until cue_store_gate_open. Anything that must
 * see them first (a settle: every read and synchronous commit) calls the
 * `opener` given here, which returns once the records are acknowledged (0:
 * the gate opens) or cannot be (non-zero: the waiting batches are dropped,
 * never written, and their `fn` told so with CUE_EABORTED). */
void cue_store_set_gate_opener(cue_store *s, int (*opener)(void *ctx), void *ctx);
void cue_store_gate_close(cue_store *s);
void cue_store_gate_open(cue_store *s);
/* True while batches wait at the closed gate. */
bool cue_store_gate_waiting(const cue_store *s);
/* Drops the batch waiting at the closed gate that was handed over with
 * `ctx` as its fn's: it is never written, its fill lets go, and its fn is
 * not called (the caller has `ctx` back). False when no batch with `ctx`
 * waits there (it was written in place, or the gate has opened since). */
bool cue_store_gate_cancel(cue_store *s, const void *ctx);

/* For tests: the writer thread writes nothing more while held (so a test
 * can see what happens before a batch is in the store). Nothing may wait
 * for the writes meanwhile (a read, a settle): it would wait for ever. */
void cue_store_writer_hold(cue_store *s, bool hold);

/* Commits that made erasures physical since the store was opened. */
uint64_t cue_store_scrubs(const cue_store *s);

/* Bytes RocksDB holds: SST files on disk and memtables in memory, summed over
 * the column families (for /metrics). */
void cue_store_bytes(cue_store *s, uint64_t *sst_bytes, uint64_t *memtable_bytes);

/* A partition's progress. CUE_ENOTFOUND when the partition has never committed. */
int cue_store_meta_get(cue_store *s, uint32_t partition, cue_store_meta *out, cue_err *err);

/* Whose state this is: the application.id and the input topics that built it
 * (their positions and users mean nothing to another pipeline); `topics` is
 * the list joined by ','. A store that records none takes these (unless
 * read-only). Topics added at the end of the list are accepted and recorded
 * (the positions of the first ones stay theirs; the new ones start with
 * none): a store of `events` opens with "events,billing", not with
 * "billing,events" nor "billing". CUE_ECONFIG, naming both, otherwise.
 * Names longer than CUE_OWNER_NAME_MAX are a caller's bug. */
#define CUE_OWNER_NAME_MAX (CUE_INPUT_TOPICS_MAX * (CUE_TOPIC_BYTES_MAX + 1))
int cue_store_owner_check(cue_store *s, const char *app_id, const char *topics, cue_err *err);

/* The input's partition count this store's partitions were built for: a
 * user's partition depends on it, so state kept under one count is wrong
 * under another. CUE_ENOTFOUND when none is kept (a store from before, or
 * from the file mode). */
int cue_store_partition_count_get(cue_store *s, int32_t *n, cue_err *err);
/* Keeps it, in a synced write of its own. */
int cue_store_partition_count_put(cue_store *s, int32_t n, cue_err *err);

/* ---- resets (`cuepoint offsets reset`, and the runtime applying one) ---- */

/* Moves a partition's input position in one synced write of its own (not the
 * shared batch, which may hold other partitions' work in progress). With
 * `drop`, every key of the partition goes first (users, timer index, meta:
 * one range delete per column family), so the partition starts empty at
 * meta->input_offset. `marker` (the reset's commit metadata, at most
 * CUE_STORE_MARKER_MAX - 1 bytes) is kept as the partition's applied reset.
 * CUE_ESTORE on failure; nothing is then changed. */
#define CUE_STORE_MARKER_MAX 128
int cue_store_partition_reset(cue_store *s, uint32_t partition, bool drop,
                              const cue_store_meta *meta, const char *marker, cue_err *err);

/* The last reset applied to `partition` (its marker) into `out`; "" when
 * none. CUE_ESTORE on a read error. */
int cue_store_reset_marker_get(cue_store *s, uint32_t partition, char *out, size_t cap,
                               cue_err *err);

/* Whether the state-TTL pass (task.c: every stored user without a timer
 * index entry gets one at its expiry) has run over `partition` under the
 * TTL settings whose fingerprint is `*mark` (0: never, or since a change
 * that may have written users without one). Kept in `meta` inside the
 * partition's key range, so a drop takes it too. CUE_ESTORE on a read error. */
int cue_store_ttl_mark_get(cue_store *s, uint32_t partition, uint64_t *mark, cue_err *err);
/* Puts the mark into the batch; 0 deletes it. */
void cue_store_batch_ttl_mark_put(cue_store *s, uint32_t partition, uint64_t mark);

/* Visits committed timers of `partition` whose key (due_ms, user id) is at or
 * after (from_due_ms, from_uid) in key order (due time, then user id bytes). The callback returns 0
 * to go on, non-zero to stop (that value is then returned). Data passed to it is borrowed for the
 * call. CUE_ELIMIT for a from_uid over the bound. */
typedef int (*cue_store_timer_fn)(int64_t due_ms, const char *uid, size_t uid_len, void *ctx);
int cue_store_timers_scan(cue_store *s, uint32_t partition, int64_t from_due_ms,
                          const char *from_uid, size_t from_uid_len, cue_store_timer_fn fn,
                          void *ctx);

/* Visits committed users, of one partition or of all (partition < 0), in key
 * order. Same callback contract as above. */
typedef int (*cue_store_user_fn)(uint32_t partition, const char *uid, size_t uid_len,
                                 const void *val, size_t val_len, void *ctx);
int cue_store_users_scan(cue_store *s, int64_t partition, cue_store_user_fn fn, void *ctx);

#endif
