/*
 * cache: the bounded in-memory cache of hot users' states (as bytes: the task
 * keeps images, codec.h), in front of the store. Its size in bytes comes from
 * `statestore.cache.max.bytes`, so memory is bounded by configuration and not
 * by the number of users.
 *
 * Entries are clean (equal to the store) or dirty (changed since the last
 * commit). Clean entries are evicted least-recently-used first; dirty entries
 * are never evicted: the owner flushes them at commit (cue_cache_flush), and
 * commits early when cue_cache_put reports CUE_EFULL. Blobs live in size-class
 * free lists, so once warm the cache allocates nothing per event.
 * One thread. The cache owns its copies of keys and values.
 */
#ifndef CUEPOINT_CACHE_H
#define CUEPOINT_CACHE_H

#include "cuepoint/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cue_cache cue_cache;

typedef struct cue_cache_stats {
    uint64_t hits, misses, evictions;
    size_t entries;
    size_t bytes;       /* keys + values + per-entry overhead */
    size_t dirty_bytes; /* the part that cannot be evicted */
    size_t max_bytes;
} cue_cache_stats;

/* `max_bytes` >= CUE_CACHE_BYTES_MIN. The caller owns `*out`. */
int cue_cache_new(cue_cache **out, size_t max_bytes, cue_err *err);
void cue_cache_free(cue_cache *c);

/* Looks a user up. On a hit, `*val`/`*val_len` borrow the cached bytes until the
 * next call that changes the cache; a cached deletion is a hit with *val NULL
 * and *val_len 0; `*aux` (when not NULL) gets the entry's owner's word.
 * CUE_ENOTFOUND on a miss. */
int cue_cache_get(cue_cache *c, const char *uid, size_t uid_len, const void **val, size_t *val_len,
                  uint32_t *aux);

/* cue_cache_get without counting a hit or a miss and without touching the
 * recency order: for the owner's own bookkeeping, not for a user's step. */
int cue_cache_peek(const cue_cache *c, const char *uid, size_t uid_len, const void **val,
                   size_t *val_len, uint32_t *aux);

/* A hint that `uid` is looked up soon, so that the look-up finds it in the
 * CPU's caches: stage 0 starts reading its table slot; stage 1, some work
 * later, its entry. Changes nothing (not even the recency order). */
void cue_cache_prefetch(const cue_cache *c, const char *uid, size_t uid_len, int stage);

/* Inserts or replaces a user's state (copied). `val` NULL records a deletion
 * (it must be dirty). `aux` is a word the owner keeps with the entry (the
 * task: where the user's pending timer index entry is), read back by get and
 * peek; a flush sets it to 0 as it marks the entry clean, since what the
 * owner noted about a cycle ends with it. Evicts clean entries as needed.
 * CUE_EFULL when the entry cannot fit without evicting dirty ones: flush,
 * then put again. */
int cue_cache_put(cue_cache *c, const char *uid, size_t uid_len, const void *val, size_t val_len,
                  uint32_t aux, bool dirty);

/* A dirty put that may take the cache past its budget when only dirty
 * entries are left to evict: for a caller that cannot commit at this point
 * (exactly-once, in the middle of a step) and commits as soon as it can. */
int cue_cache_put_over(cue_cache *c, const char *uid, size_t uid_len, const void *val,
                       size_t val_len, uint32_t aux);

/* True once dirty bytes pass half the budget: a good moment to commit. */
bool cue_cache_should_flush(const cue_cache *c);

/* Visits every dirty entry in key order (user id bytes, a shorter prefix
 * first: sorted writes are what RocksDB's memtable inserts fastest), then marks
 * them clean (deletions are dropped from the cache). If the callback returns
 * non-zero, flushing stops, nothing is marked clean, and that value is returned. */
typedef int (*cue_cache_dirty_fn)(const char *uid, size_t uid_len, const void *val, size_t val_len,
                                  void *ctx);
int cue_cache_flush(cue_cache *c, cue_cache_dirty_fn fn, void *ctx);
/* Visits the dirty entries in the same order without marking them clean
 * (the changelog is written before the store batch). */
int cue_cache_visit_dirty(cue_cache *c, cue_cache_dirty_fn fn, void *ctx);

/* Drops every entry, dirty ones included (used when a partition is revoked
 * after its last commit, or to roll back to the store). */
void cue_cache_clear(cue_cache *c);

void cue_cache_stats_get(const cue_cache *c, cue_cache_stats *out);

/* Entries evicted since the cache was made. */
uint64_t cue_cache_evictions(const cue_cache *c);

/* Whether `uid` may have left the cache since cue_cache_left_forget: evicted,
 * its deletion flushed, or dropped by cue_cache_clear. A filter: a "maybe"
 * may be false, a "no" never is. A user that left while a batch holding it
 * was not yet written must be read after that write; others need not wait. */
bool cue_cache_left_maybe(const cue_cache *c, const char *uid, size_t uid_len);

/* Forgets who left: for when the store holds everything flushed so far. */
void cue_cache_left_forget(cue_cache *c);

#endif
