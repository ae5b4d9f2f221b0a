/* cuepoint's state in RocksDB: with store_writer.c, the only files that
 * include RocksDB's header (the writer thread and its batches are there).
 *
 * Its sections, each behind a "----" line: keys (every key starts with the
 * partition's four bytes; range deletions only through
 * delete_from_partition_start), open and close (RocksDB's options: the
 * memtable hints, the users' memtable filter, the WAL cap), reads, the
 * batch of a commit, timer runs, physical erasure, scans, resets, the
 * state-TTL mark, whose state this is, the partition count.
 *
 * The key layouts and the meta record are the stored format: a change must
 * still read what earlier releases wrote (as the meta record's versions
 * do). RocksDB's options are not part of it and may change, within the
 * rule on range deletions above. */
#include "store_int.h"

#include "cuepoint/buf.h"
#include "cuepoint/limits.h"

#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

static const char *const cf_names[CF_COUNT] = {"default", "users", "timers", "meta"};

#define META_VERSION 2 /* 1: without synced_ms, still read */
/* Version 3: version 2's fields, then a count and the next offsets of the
 * further input topics (input.topics). Written only with some. */
#define META_VERSION_TOPICS 3
#define WRITE_BUFFER_MB     4
/* The users' column family gets larger memtables: every commit rewrites its
 * dirty users, so most of a memtable's states are overwritten before it is
 * flushed when it holds several commits' worth, and each flush feeds
 * compactions that rewrite the whole family again. 4 MiB memtables made
 * RocksDB's background threads ~17% of the pipeline's CPU; 16 MiB, at most
 * three, cut the pipeline's CPU per record by ~10% (bench/pipeline.sh's
 * records, docs/benchmarks.md). */
#define USERS_WRITE_BUFFER_MB 16
#define USERS_WRITE_BUFFERS   3
#define USERS_FILTER_RATIO    0.02 /* of a users' memtable, for its keys' filter */
#define WAL_TOTAL_MB          64
#define BLOCK_CACHE_MB        8
#define META_BYTES            (1 + 4 * 8)
#define META_V1_BYTES         (1 + 3 * 8)
#define KEY_MAX               (4 + 8 + CUE_USER_ID_BYTES_MAX)
/* ---- keys -------------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The sign bit flipped, so that negative times sort before positive ones. */
static uint64_t due_bits(int64_t due)
{
    return (uint64_t)due ^ (1ULL << 63);
}

/* Every range deletion starts at a partition's first key, the partition's
 * four bytes alone, and only this writes one: a start key of five bytes or
 * more would fall inside the users' and timers' insert hints
 * (hinted_options), which RocksDB 7.8 would then use in both of a
 * memtable's tables and break its skiplist. `hi` is the exclusive end. */
static void delete_from_partition_start(rocksdb_writebatch_t *b, rocksdb_column_family_handle_t *cf,
                                        uint32_t partition, const unsigned char *hi, size_t hi_len)
{
    unsigned char lo[4];
    put_be32(lo, partition);
    rocksdb_writebatch_delete_range_cf(b, cf, (const char *)lo, sizeof lo, (const char *)hi,
                                       hi_len);
}

/* Keys are built in buffers of KEY_MAX bytes on the stack. A user id comes
 * from an event (checked by the decoder) or from a changelog record, which
 * anything that can write the topic can make: so the bound is checked here,
 * where it protects the buffer, and the caller gets CUE_ELIMIT. */
static int user_key(unsigned char k[KEY_MAX], size_t *klen, uint32_t partition, const char *uid,
                    size_t len)
{
    if (len == 0) return CUE_EINVAL;
    if (len > CUE_USER_ID_BYTES_MAX) return CUE_ELIMIT;
    put_be32(k, partition);
    memcpy(k + 4, uid, len);
    *klen = 4 + len;
    return 0;
}

/* An empty user id is allowed here: a scan starts from (due, ""). */
static int timer_key(unsigned char k[KEY_MAX], size_t *klen, uint32_t partition, int64_t due,
                     const char *uid, size_t len)
{
    if (len > CUE_USER_ID_BYTES_MAX) return CUE_ELIMIT;
    put_be32(k, partition);
    put_be64(k + 4, due_bits(due));
    if (len) memcpy(k + 12, uid, len);
    *klen = 12 + len;
    return 0;
}

int cue_store_rocks_error(char *errptr, cue_err *err, const char *what)
{
    cue_err_set(err, CUE_ESTORE, "%s: %s", what, errptr ? errptr : "unknown RocksDB error");
    rocksdb_free(errptr);
    return CUE_ESTORE;
}

/* ---- open and close ---------------------------------------------------- */

static int mkdir_p(const char *dir);

int cue_store_dir_create(const char *dir, cue_err *err)
{
    if (mkdir_p(dir) != 0)
        return cue_err_set(err, CUE_EIO, "cannot create state directory '%s': %s", dir,
                           strerror(errno));
    return 0;
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* What makes an erasure physical possible (see scrub): a WAL file, once
 * obsolete, is deleted rather than archived (WAL_ttl_seconds and
 * WAL_size_limit_MB 0) or reused with its old bytes inside (recycling); the
 * MANIFEST, which names each table file's smallest and largest key, is
 * rewritten from the live files at every change instead of growing (a few
 * hundred bytes per table file, written at each flush and compaction); and
 * RocksDB's own LOG stays at warnings, because at the info level it prints
 * a manual compaction's range, which is the erased user's key. */
static void set_erasure_options(rocksdb_options_t *o)
{
    rocksdb_options_set_WAL_ttl_seconds(o, 0);
    rocksdb_options_set_WAL_size_limit_MB(o, 0);
    rocksdb_options_set_recycle_log_file_num(o, 0);
    rocksdb_options_set_max_manifest_file_size(o, 0);
    rocksdb_options_set_info_log_level(o, 2 /* WARN_LEVEL */);
    rocksdb_options_set_keep_log_file_num(o, 4);
}

/* The options of a family whose commits write each partition's keys in key
 * order (the users' and the timers'): the base options, and a memtable told
 * where each partition's last insert went, so that each insert starts next
 * to the one before instead of at the top of a skiplist of a few hundred
 * thousand entries (30% fewer instructions an insert in the pipeline's
 * writes: docs/benchmarks.md). The prefix is five bytes, the partition and
 * one more, so that every range deletion, whose start key is the partition
 * alone (delete_from_partition_start, the only writer of one), stays out of
 * it: RocksDB 7.8 keeps one hint per prefix for point keys and range
 * deletions alike (fixed upstream in 2024, pull request 12558), and a hint
 * of one table used in the other breaks the skiplist (an assertion in
 * Debian's build). Only the option string reaches this option in the C
 * API; should it fail, the family goes without the hint, as before. */
static rocksdb_options_t *hinted_options(rocksdb_options_t *base)
{
    rocksdb_options_t *o = rocksdb_options_create();
    char *e = NULL;
    rocksdb_get_options_from_string(
        base, "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.5", o, &e);
    if (e == NULL) return o;
    rocksdb_free(e);
    rocksdb_options_destroy(o);
    return rocksdb_options_create_copy(base);
}

static void set_options(cue_store *s, const cue_store_opts *o)
{
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_increase_parallelism(s->opts, 2);
    /* Level 0 is written by memtable flushes and read once by the next
     * compaction: LZ4 there was a fifth of the flush threads' time for
     * files that live seconds. The levels below, which hold the store at
     * rest, stay compressed. */
    int per_level[7] = {rocksdb_no_compression};
    for (size_t i = 1; i < sizeof per_level / sizeof *per_level; i++)
        per_level[i] = rocksdb_lz4_compression;
    rocksdb_options_set_compression_per_level(s->opts, per_level,
                                              sizeof per_level / sizeof *per_level);
    /* Small memtables: inserting into a skiplist that fits the CPU caches was
     * twice as fast here (8 MiB vs the 64 MiB default, sorted 250-byte puts),
     * and flushing and compacting them runs on the other core. */
    rocksdb_options_set_write_buffer_size(s->opts, (size_t)WRITE_BUFFER_MB << 20);
    rocksdb_options_set_max_write_buffer_number(s->opts, 4);
    /* The meta family takes a few bytes a commit: its memtable never fills,
     * so nothing made RocksDB let go of a WAL file until all of them passed
     * four times the families' write buffers (384 MiB; 362 MiB of WAL beside
     * 113 MiB of tables after 3M records over 1M users, and a second to
     * replay at every open). Past this, the families holding the oldest file
     * are flushed: 25 MiB of WAL then, opens 0.3 s, the same CPU. */
    rocksdb_options_set_max_total_wal_size(
        s->opts, o->wal_total_bytes ? (uint64_t)o->wal_total_bytes : (uint64_t)WAL_TOTAL_MB << 20);
    s->table = rocksdb_block_based_options_create();
    /* Every new user is a read that finds nothing; bloom filters answer those
     * without touching the data blocks of each level-0 file. */
    rocksdb_block_based_options_set_filter_policy(s->table, rocksdb_filterpolicy_create_bloom(10));
    /* Index and filter blocks live in the block cache too, so RocksDB's memory
     * is bounded by these settings and not by how many users are stored. */
    s->cache = rocksdb_cache_create_lru(o->block_cache_bytes ? o->block_cache_bytes
                                                             : (size_t)BLOCK_CACHE_MB << 20);
    rocksdb_block_based_options_set_block_cache(s->table, s->cache);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(s->table, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(s->table, 1);
    /* Filters and indexes in partitions of about a data block each, behind a
     * small pinned top level: one look-up reads one partition. Whole, a big
     * file's filter (hundreds of KiB at a million users) did not stay in the
     * cache beside the data blocks, and was read from disk on every miss. */
    rocksdb_block_based_options_set_index_type(
        s->table, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(s->table, 1);
    rocksdb_block_based_options_set_pin_top_level_index_and_filter(s->table, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(s->table, 1);
    rocksdb_options_set_block_based_table_factory(s->opts, s->table);
    s->ro = rocksdb_readoptions_create();
    s->wo = rocksdb_writeoptions_create();
    s->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo_sync, 1);
    s->batch = rocksdb_writebatch_create();
    set_erasure_options(s->opts);
    s->users_opts = hinted_options(s->opts);
    s->timers_opts = hinted_options(s->opts);
    rocksdb_options_set_write_buffer_size(s->users_opts, (size_t)USERS_WRITE_BUFFER_MB << 20);
    rocksdb_options_set_max_write_buffer_number(s->users_opts, USERS_WRITE_BUFFERS);
    /* A user seen for the first time is a look-up that finds nothing, and
     * a memtable answered it only at the end of a skiplist search: ~11,000
     * instructions a miss in Debian's build (its assertions compare keys
     * again), once the memtables fill. A bloom filter of the memtable's
     * whole keys answers most of those at once (~1,900 a miss; file mode at
     * a million users 15 to 26% faster). 2% of the write buffer, ~10 bits a key
     * for entries of 60 bytes, in the memtable's own memory. */
    rocksdb_options_set_memtable_whole_key_filtering(s->users_opts, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(s->users_opts, USERS_FILTER_RATIO);
}

int cue_store_open(cue_store **out, const char *dir, const cue_store_opts *opts, cue_err *err)
{
    *out = NULL;
    if (!opts->read_only && cue_store_dir_create(dir, err) != 0) return CUE_EIO;
    cue_store *s = calloc(1, sizeof *s);
    if (s == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory for the store");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    set_options(s, opts);
    s->read_only = opts->read_only;
    const rocksdb_options_t *cf_opts[CF_COUNT] = {s->opts, s->users_opts, s->timers_opts, s->opts};
    char *e = NULL;
    if (opts->read_only)
        s->db = rocksdb_open_for_read_only_column_families(s->opts, dir, CF_COUNT, cf_names,
                                                           cf_opts, s->cf, 0, &e);
    else
        s->db = rocksdb_open_column_families(s->opts, dir, CF_COUNT, cf_names, cf_opts, s->cf, &e);
    if (e != NULL && strstr(e, "/LOCK") != NULL) {
        /* RocksDB's words for it name a lock file, not the cause. */
        rocksdb_free(e);
        e = NULL;
        cue_err_set(err, CUE_ESTORE,
                    "state directory '%.900s' is in use by another cuepoint process (it holds "
                    "the directory's lock): stop that one, or give this one another state.dir",
                    dir);
        cue_store_close(s);
        return CUE_ESTORE;
    }
    if (e != NULL || s->db == NULL) {
        char what[1024];
        snprintf(what, sizeof what, "cannot open state directory '%.900s'", dir);
        cue_store_rocks_error(e, err, what);
        s->db = NULL;
        cue_store_close(s);
        return CUE_ESTORE;
    }
    *out = s;
    return 0;
}

void cue_store_close(cue_store *s)
{
    if (s == NULL) return;
    cue_store_writer_stop(s);
    if (s->db) {
        for (int i = 0; i < CF_COUNT; i++)
            if (s->cf[i]) rocksdb_column_family_handle_destroy(s->cf[i]);
        rocksdb_close(s->db);
    }
    rocksdb_writebatch_destroy(s->batch);
    cue_timer_run_deinit(&s->bulk);
    cue_buf_deinit(&s->erased);
    free(s->fill_scratch);
    for (size_t i = 0; i < s->n_fill_bufs; i++)
        cue_buf_deinit(&s->fill_bufs[i]);
    rocksdb_readoptions_destroy(s->ro);
    rocksdb_writeoptions_destroy(s->wo);
    rocksdb_writeoptions_destroy(s->wo_sync);
    rocksdb_options_destroy(s->opts);
    if (s->users_opts) rocksdb_options_destroy(s->users_opts);
    if (s->timers_opts) rocksdb_options_destroy(s->timers_opts);
    rocksdb_block_based_options_destroy(s->table);
    if (s->cache) rocksdb_cache_destroy(s->cache);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- reads ------------------------------------------------------------- */

int cue_store_user_get(cue_store *s, uint32_t partition, const char *uid, size_t uid_len,
                       cue_buf *out, cue_err *err)
{
    cue_store_settle(s); /* reads and writes see the batches handed over */
    return cue_store_user_get_unsettled(s, partition, uid, uid_len, out, err);
}

int cue_store_user_get_unsettled(cue_store *s, uint32_t partition, const char *uid, size_t uid_len,
                                 cue_buf *out, cue_err *err)
{
    unsigned char k[KEY_MAX];
    size_t klen;
    int rc = user_key(k, &klen, partition, uid, uid_len);
    if (rc != 0) return cue_err_set(err, rc, "a user id of %zu bytes", uid_len);
    char *e = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, s->ro, s->cf[CF_USERS], (const char *)k, klen, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "reading a user's state");
    if (ps == NULL) return CUE_ENOTFOUND;
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    cue_buf_reset(out);
    rc = cue_buf_append(out, v, vlen);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

#define META_BYTES_MAX (META_BYTES + 1 + (CUE_INPUT_TOPICS_MAX - 1) * 8)

/* Returns the record's length. */
static size_t meta_encode(unsigned char *p, const cue_store_meta *m)
{
    CUE_ASSERT(m->n_more < CUE_INPUT_TOPICS_MAX);
    p[0] = m->n_more ? META_VERSION_TOPICS : META_VERSION;
    put_be64(p + 1, (uint64_t)m->input_offset);
    put_be64(p + 9, (uint64_t)m->changelog_offset);
    put_be64(p + 17, (uint64_t)m->stream_time_ms);
    put_be64(p + 25, (uint64_t)m->synced_ms);
    if (m->n_more == 0) return META_BYTES;
    p[META_BYTES] = m->n_more;
    for (size_t i = 0; i < m->n_more; i++)
        put_be64(p + META_BYTES + 1 + 8 * i, (uint64_t)m->more_offsets[i]);
    return META_BYTES + 1 + 8 * (size_t)m->n_more;
}

int cue_store_meta_get(cue_store *s, uint32_t partition, cue_store_meta *out, cue_err *err)
{
    cue_store_settle(s); /* reads and writes see the batches handed over */
    unsigned char k[4];
    put_be32(k, partition);
    char *e = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ro, s->cf[CF_META], (const char *)k, 4, &vlen, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "reading a partition's meta");
    if (v == NULL) return CUE_ENOTFOUND;
    const unsigned char *p = (const unsigned char *)v;
    int rc = 0;
    bool v1 = vlen == META_V1_BYTES && p[0] == 1;
    bool v3 = vlen > META_BYTES && p[0] == META_VERSION_TOPICS && p[META_BYTES] > 0 &&
              p[META_BYTES] < CUE_INPUT_TOPICS_MAX && vlen == META_BYTES + 1 + 8u * p[META_BYTES];
    out->n_more = v3 ? p[META_BYTES] : 0;
    for (size_t i = 0; i < out->n_more; i++)
        out->more_offsets[i] = (int64_t)get_be64(p + META_BYTES + 1 + 8 * i);
    if (!v1 && !v3 && (vlen != META_BYTES || p[0] != META_VERSION)) {
        rc = cue_err_set(err, CUE_ECORRUPT,
                         "partition %u: meta record of %zu bytes, version %u; this build reads "
                         "versions 1 to %d",
                         partition, vlen, vlen ? p[0] : 0, META_VERSION_TOPICS);
    } else {
        out->input_offset = (int64_t)get_be64(p + 1);
        out->changelog_offset = (int64_t)get_be64(p + 9);
        out->stream_time_ms = (int64_t)get_be64(p + 17);
        /* A version 1 copy's age is unknown: it counts as the oldest. */
        out->synced_ms = v1 ? 0 : (int64_t)get_be64(p + 25);
    }
    rocksdb_free(v);
    return rc;
}

/* ---- the batch --------------------------------------------------------- */

int cue_store_batch_user_put(cue_store *s, uint32_t partition, const char *uid, size_t uid_len,
                             const void *val, size_t val_len)
{
    unsigned char k[KEY_MAX];
    size_t klen;
    int rc = user_key(k, &klen, partition, uid, uid_len);
    if (rc != 0) return rc;
    rocksdb_writebatch_put_cf(s->batch, s->cf[CF_USERS], (const char *)k, klen, val, val_len);
    s->batch_count++;
    return 0;
}

int cue_store_filler_user_put(cue_store_filler *f, uint32_t partition, const char *uid,
                              size_t uid_len, const void *val, size_t val_len)
{
    unsigned char k[KEY_MAX];
    size_t klen;
    int rc = user_key(k, &klen, partition, uid, uid_len);
    if (rc != 0) return rc;
    rocksdb_writebatch_put_cf(f->batch, f->s->cf[CF_USERS], (const char *)k, klen, val, val_len);
    return 0;
}

void *cue_store_filler_scratch(cue_store_filler *f, size_t bytes)
{
    cue_store *s = f->s;
    if (bytes > s->fill_scratch_bytes) {
        free(s->fill_scratch);
        s->fill_scratch = malloc(bytes);
        s->fill_scratch_bytes = s->fill_scratch ? bytes : 0;
    }
    return s->fill_scratch;
}

int cue_store_batch_user_delete(cue_store *s, uint32_t partition, const char *uid, size_t uid_len)
{
    unsigned char k[KEY_MAX];
    size_t klen;
    int rc = user_key(k, &klen, partition, uid, uid_len);
    if (rc != 0) return rc;
    rocksdb_writebatch_delete_cf(s->batch, s->cf[CF_USERS], (const char *)k, klen);
    s->batch_count++;
    return 0;
}

static int erased_timers_delete(cue_store *s, uint32_t partition, const cue_buf *ids, cue_err *err);

int cue_store_batch_users_erase(cue_store *s, uint32_t partition, const cue_buf *ids, cue_err *err)
{
    size_t mark = s->erased.len, n = 0;
    for (size_t at = 0; at < ids->len; at += 1 + (unsigned char)ids->data[at], n++) {
        unsigned char k[1 + KEY_MAX];
        size_t klen, len = (unsigned char)ids->data[at];
        CUE_ASSERT(at + 1 + len <= ids->len);
        int rc = user_key(k + 1, &klen, partition, ids->data + at + 1, len);
        if (rc == 0) {
            k[0] = (unsigned char)klen;
            rc = cue_buf_append(&s->erased, k, 1 + klen);
        }
        if (rc != 0) {
            s->erased.len = mark;
            return cue_err_set(err, rc, "partition %u: cannot note an erasure", partition);
        }
    }
    int rc = erased_timers_delete(s, partition, ids, err);
    if (rc != 0) {
        s->erased.len = mark;
        return rc;
    }
    for (size_t at = 0; at < ids->len; at += 1 + (unsigned char)ids->data[at]) {
        const char *uid = ids->data + at + 1;
        size_t len = (unsigned char)ids->data[at];
        /* Entries put in bulk earlier in this batch (a standby's) are not in
         * the index the scan read: they would be written after the erasure. */
        cue_timer_run_drop_user(&s->bulk, partition, uid, len);
        cue_store_batch_user_delete(s, partition, uid, len);
    }
    s->n_erased += n;
    return 0;
}

int cue_store_batch_timer_put(cue_store *s, uint32_t partition, int64_t due_ms, const char *uid,
                              size_t uid_len)
{
    unsigned char k[KEY_MAX];
    size_t klen;
    int rc = timer_key(k, &klen, partition, due_ms, uid, uid_len);
    if (rc != 0) return rc;
    rocksdb_writebatch_put_cf(s->batch, s->cf[CF_TIMERS], (const char *)k, klen, "", 0);
    s->batch_count++;
    return 0;
}

/* ---- timer runs ------------------------------------------------------------ */

void cue_timer_run_deinit(cue_timer_run *run)
{
    cue_buf_deinit(&run->keys);
    free(run->off);
    free(run->at);
    memset(run, 0, sizeof *run);
}

int cue_timer_run_add(cue_timer_run *run, uint32_t partition, int64_t due_ms, const char *uid,
                      size_t uid_len)
{
    unsigned char k[2 + KEY_MAX];
    size_t klen;
    int rc = timer_key(k + 2, &klen, partition, due_ms, uid, uid_len);
    if (rc != 0) return rc;
    k[0] = (unsigned char)(klen >> 8);
    k[1] = (unsigned char)klen;
    if (run->n == run->cap) {
        size_t cap = run->cap ? 2 * run->cap : 4096;
        size_t *off = realloc(run->off, cap * sizeof *off);
        if (off) run->off = off;
        const unsigned char **at = realloc(run->at, cap * sizeof *at);
        if (at) run->at = at;
        if (off == NULL || at == NULL) return CUE_ENOMEM;
        run->cap = cap;
    }
    size_t start = run->keys.len;
    if (cue_buf_append(&run->keys, k, 2 + klen) != 0) return CUE_ENOMEM;
    run->off[run->n++] = start;
    return 0;
}

void cue_timer_run_drop_user(cue_timer_run *run, uint32_t partition, const char *uid,
                             size_t uid_len)
{
    size_t kept = 0;
    for (size_t i = 0; i < run->n; i++) {
        const unsigned char *e = (const unsigned char *)run->keys.data + run->off[i];
        size_t klen = (size_t)e[0] << 8 | e[1];
        /* partition (4) | due (8) | user id: the id is what follows. */
        bool theirs = klen == 12 + uid_len && get_be32(e + 2) == partition &&
                      memcmp(e + 2 + 12, uid, uid_len) == 0;
        if (!theirs) run->off[kept++] = run->off[i];
    }
    run->n = kept; /* their bytes stay in `keys` until the run is emptied */
}

static int run_cmp(const void *x, const void *y)
{
    const unsigned char *a = *(const unsigned char *const *)x;
    const unsigned char *b = *(const unsigned char *const *)y;
    size_t la = (size_t)a[0] << 8 | a[1], lb = (size_t)b[0] << 8 | b[1];
    int c = memcmp(a + 2, b + 2, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

void cue_store_batch_timer_run(cue_store *s, cue_timer_run *run)
{
    if (run->n == 0) return;
    for (size_t i = 0; i < run->n; i++)
        run->at[i] = (const unsigned char *)run->keys.data + run->off[i];
    qsort(run->at, run->n, sizeof *run->at, run_cmp);
    for (size_t i = 0; i < run->n; i++) {
        const unsigned char *e = run->at[i];
        rocksdb_writebatch_put_cf(s->batch, s->cf[CF_TIMERS], (const char *)e + 2,
                                  (size_t)e[0] << 8 | e[1], "", 0);
    }
    s->batch_count += run->n;
    run->n = 0;
    cue_buf_reset(&run->keys);
}

int cue_store_batch_timer_put_bulk(cue_store *s, uint32_t partition, int64_t due_ms,
                                   const char *uid, size_t uid_len)
{
    int rc = cue_timer_run_add(&s->bulk, partition, due_ms, uid, uid_len);
    /* Out of memory: unsorted, but not lost. */
    if (rc == CUE_ENOMEM) rc = cue_store_batch_timer_put(s, partition, due_ms, uid, uid_len);
    return rc;
}

int cue_store_batch_timer_delete(cue_store *s, uint32_t partition, int64_t due_ms, const char *uid,
                                 size_t uid_len)
{
    unsigned char k[KEY_MAX];
    size_t klen;
    int rc = timer_key(k, &klen, partition, due_ms, uid, uid_len);
    if (rc != 0) return rc;
    rocksdb_writebatch_delete_cf(s->batch, s->cf[CF_TIMERS], (const char *)k, klen);
    s->batch_count++;
    return 0;
}

void cue_store_batch_timers_delete_upto(cue_store *s, uint32_t partition, int64_t due_ms)
{
    /* From the partition's first key (every timer key is longer than it,
     * so from (INT64_MIN, "") on). Keys of due_ms itself start with these
     * 12 bytes and sort after them: the exclusive end is the first key of
     * due_ms + 1. */
    unsigned char hi[12];
    put_be32(hi, partition);
    put_be64(hi + 4, due_bits(due_ms == INT64_MAX ? due_ms : due_ms + 1));
    delete_from_partition_start(s->batch, s->cf[CF_TIMERS], partition, hi, sizeof hi);
    s->batch_count++;
}

void cue_store_batch_meta_put(cue_store *s, uint32_t partition, const cue_store_meta *meta)
{
    unsigned char k[4], v[META_BYTES_MAX];
    put_be32(k, partition);
    size_t vlen = meta_encode(v, meta);
    rocksdb_writebatch_put_cf(s->batch, s->cf[CF_META], (const char *)k, 4, (const char *)v, vlen);
    s->batch_count++;
}

size_t cue_store_batch_count(const cue_store *s)
{
    return s->batch_count + s->bulk.n;
}

static int scrub(cue_store *s, cue_err *err);

int cue_store_batch_commit(cue_store *s, bool sync, cue_err *err)
{
    cue_store_settle(s);                    /* reads and writes see the batches handed over */
    cue_store_batch_timer_run(s, &s->bulk); /* kept in the batch if the write fails */
    if (s->batch_count == 0) return 0;
    char *e = NULL;
    rocksdb_write(s->db, sync ? s->wo_sync : s->wo, s->batch, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "writing the state batch");
    rocksdb_writebatch_clear(s->batch);
    s->batch_count = 0;
    if (s->n_erased == 0) return 0;
    int rc = scrub(s, err);
    cue_buf_reset(&s->erased);
    s->n_erased = 0;
    return rc;
}

uint64_t cue_store_scrubs(const cue_store *s)
{
    return s->scrubs;
}

/* ---- erasure that is physical ------------------------------------------ */

/* The next erased key in s->erased from *at on: its bytes and length. */
static const unsigned char *erased_next(const cue_store *s, size_t *at, size_t *klen)
{
    if (*at >= s->erased.len) return NULL;
    const unsigned char *p = (const unsigned char *)s->erased.data + *at;
    *klen = p[0];
    *at += 1 + *klen;
    return p + 1;
}

typedef struct erase_scan {
    cue_store *s;
    uint32_t partition;
    const cue_buf *ids;
} erase_scan;

/* Deletes an index entry if its user is one of those erased. */
static int erase_timer(int64_t due, const char *uid, size_t len, void *ctx)
{
    erase_scan *es = ctx;
    const cue_buf *ids = es->ids;
    for (size_t at = 0; at < ids->len; at += 1 + (unsigned char)ids->data[at]) {
        if ((unsigned char)ids->data[at] != len || memcmp(ids->data + at + 1, uid, len) != 0)
            continue;
        return cue_store_batch_timer_delete(es->s, es->partition, due, uid, len) == 0 ? 0 : 1;
    }
    return 0;
}

/* An erased user's timer index entries hold its id in their keys. Which due
 * times they have is not known (stale lower bounds stay until they come up),
 * so the partition's index is read once for all the users erased at once.
 * The deletions go into the batch before anything the caller puts after
 * them (a user erased and back within one commit keeps its new entries). */
static int erased_timers_delete(cue_store *s, uint32_t partition, const cue_buf *ids, cue_err *err)
{
    erase_scan es = {.s = s, .partition = partition, .ids = ids};
    int rc = cue_store_timers_scan(s, partition, INT64_MIN, "", 0, erase_timer, &es);
    if (rc != 0)
        return cue_err_set(err, CUE_ESTORE,
                           "partition %u: cannot read the timer index to erase users' entries",
                           partition);
    return 0;
}

/* Compacts [lo, hi] of one column family down to its last level, where a
 * deletion drops every older copy of its key and then itself. */
static int compact(cue_store *s, int cf, const unsigned char *lo, size_t lo_len,
                   const unsigned char *hi, size_t hi_len, cue_err *err)
{
    rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
    rocksdb_compactoptions_set_bottommost_level_compaction(co, 2 /* kForce */);
    rocksdb_compactoptions_set_exclusive_manual_compaction(co, 0);
    /* hi NULL: to the end of the column family. */
    rocksdb_compact_range_cf_opt(s->db, s->cf[cf], co, (const char *)lo, lo_len, (const char *)hi,
                                 hi ? hi_len : 0);
    rocksdb_compactoptions_destroy(co);
    (void)err; /* RocksDB's C API reports no error from a manual compaction */
    return 0;
}

static int flush_all(cue_store *s, cue_err *err)
{
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    char *e = NULL;
    for (int c = 0; c < CF_COUNT && e == NULL; c++)
        rocksdb_flush_cf(s->db, fo, s->cf[c], &e);
    rocksdb_flushoptions_destroy(fo);
    return e ? cue_store_rocks_error(e, err, "flushing the state after an erasure") : 0;
}

/* After a batch with erasures: the erased users' ids and states leave every
 * live file of the state directory. A flush of every column family moves
 * the memtables (and so the WAL's contents) into table files, which makes
 * every WAL written so far obsolete and deleted; compacting each erased
 * user's key, and each partition's timer index, to the last level drops the
 * deletions and all they shadow; and the MANIFEST, rewritten at each change
 * (set_erasure_options), is written once more after the compactions, by a
 * last flush of a marker, so it names none of the files they replaced. */
static int scrub(cue_store *s, cue_err *err)
{
    int rc = flush_all(s, err);
    const unsigned char *k;
    size_t at = 0, klen;
    while (rc == 0 && (k = erased_next(s, &at, &klen)) != NULL) {
        rc = compact(s, CF_USERS, k, klen, k, klen, err);
        uint32_t p = get_be32(k);
        /* Each partition's timer index once, at its first erased key. */
        const unsigned char *j;
        size_t at2 = 0, jlen;
        bool done = false;
        while (!done && (j = erased_next(s, &at2, &jlen)) != k)
            done = get_be32(j) == p;
        if (done || rc != 0) continue;
        unsigned char lo[4], hi[4];
        put_be32(lo, p);
        put_be32(hi, p + 1);
        rc = compact(s, CF_TIMERS, lo, 4, p == UINT32_MAX ? NULL : hi, 4, err);
    }
    if (rc != 0) return rc;
    static const char marker[] = "erasure";
    char *e = NULL;
    rocksdb_put_cf(s->db, s->wo, s->cf[CF_DEFAULT], marker, sizeof marker - 1, "", 0, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "writing the state after an erasure");
    rc = flush_all(s, err);
    if (rc == 0) s->scrubs++;
    return rc;
}

/* ---- scans ------------------------------------------------------------- */

/* An iterator over [lo, hi) of one column family; the bounds must outlive it. */
static rocksdb_iterator_t *range(cue_store *s, int cf, rocksdb_readoptions_t **ro,
                                 const unsigned char *lo, size_t lo_len, const unsigned char *hi,
                                 size_t hi_len)
{
    cue_store_settle(s);
    *ro = rocksdb_readoptions_create();
    if (hi) rocksdb_readoptions_set_iterate_upper_bound(*ro, (const char *)hi, hi_len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, *ro, s->cf[cf]);
    if (lo)
        rocksdb_iter_seek(it, (const char *)lo, lo_len);
    else
        rocksdb_iter_seek_to_first(it);
    return it;
}

static int finish_scan(rocksdb_iterator_t *it, rocksdb_readoptions_t *ro, int rc)
{
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (e != NULL) {
        rocksdb_free(e);
        return CUE_ESTORE;
    }
    return rc;
}

int cue_store_timers_scan(cue_store *s, uint32_t partition, int64_t from_due_ms,
                          const char *from_uid, size_t from_uid_len, cue_store_timer_fn fn,
                          void *ctx)
{
    unsigned char lo[KEY_MAX], hi[4];
    size_t lo_len;
    if (timer_key(lo, &lo_len, partition, from_due_ms, from_uid, from_uid_len) != 0)
        return CUE_ELIMIT;
    put_be32(hi, partition + 1);
    rocksdb_readoptions_t *ro;
    /* partition + 1 wraps for the last partition: then scan to the end instead. */
    rocksdb_iterator_t *it =
        range(s, CF_TIMERS, &ro, lo, lo_len, partition == UINT32_MAX ? NULL : hi, 4);
    int rc = 0;
    for (; rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        /* Not a timer key (or one an earlier release let in from a changelog
         * record): ignore rather than misread. */
        if (klen < 12 || klen - 12 > CUE_USER_ID_BYTES_MAX) continue;
        int64_t due = (int64_t)(get_be64(k + 4) ^ (1ULL << 63));
        rc = fn(due, (const char *)k + 12, klen - 12, ctx);
    }
    return finish_scan(it, ro, rc);
}

int cue_store_users_scan(cue_store *s, int64_t partition, cue_store_user_fn fn, void *ctx)
{
    unsigned char lo[4], hi[4];
    bool one = partition >= 0;
    if (one) {
        put_be32(lo, (uint32_t)partition);
        put_be32(hi, (uint32_t)partition + 1);
    }
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it =
        range(s, CF_USERS, &ro, one ? lo : NULL, 4, one && partition < UINT32_MAX ? hi : NULL, 4);
    int rc = 0;
    for (; rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen <= 4 || klen - 4 > CUE_USER_ID_BYTES_MAX) continue; /* as for timers */
        uint32_t p = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
        rc = fn(p, (const char *)k + 4, klen - 4, v, vlen, ctx);
    }
    return finish_scan(it, ro, rc);
}

void cue_store_bytes(cue_store *s, uint64_t *sst_bytes, uint64_t *memtable_bytes)
{
    *sst_bytes = *memtable_bytes = 0;
    for (int c = 0; c < CF_COUNT; c++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(s->db, s->cf[c], "rocksdb.total-sst-files-size", &v) == 0)
            *sst_bytes += v;
        if (rocksdb_property_int_cf(s->db, s->cf[c], "rocksdb.cur-size-all-mem-tables", &v) == 0)
            *memtable_bytes += v;
    }
}

/* ---- resets ------------------------------------------------------------ */

/* The applied reset's marker lives in `meta` under partition | "reset": inside
 * the partition's key range, so a drop takes it too, and never read as meta
 * (cue_store_meta_get reads the 4-byte key only). */
static void reset_key(unsigned char k[9], uint32_t partition)
{
    put_be32(k, partition);
    memcpy(k + 4, "reset", 5);
}

int cue_store_partition_reset(cue_store *s, uint32_t partition, bool drop,
                              const cue_store_meta *meta, const char *marker, cue_err *err)
{
    cue_store_settle(s);
    CUE_ASSERT(!s->read_only);
    CUE_ASSERT(partition < UINT32_MAX); /* partition + 1 is the range's end */
    size_t mlen = strlen(marker);
    CUE_ASSERT(mlen < CUE_STORE_MARKER_MAX);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (drop) {
        unsigned char hi[4];
        put_be32(hi, partition + 1);
        for (int cf = CF_USERS; cf <= CF_META; cf++)
            delete_from_partition_start(b, s->cf[cf], partition, hi, sizeof hi);
    }
    unsigned char k[9], v[META_BYTES_MAX];
    put_be32(k, partition);
    size_t vlen = meta_encode(v, meta);
    rocksdb_writebatch_put_cf(b, s->cf[CF_META], (const char *)k, 4, (const char *)v, vlen);
    reset_key(k, partition);
    rocksdb_writebatch_put_cf(b, s->cf[CF_META], (const char *)k, 9, marker, mlen);
    char *e = NULL;
    rocksdb_write(s->db, s->wo_sync, b, &e);
    rocksdb_writebatch_destroy(b);
    if (e != NULL) return cue_store_rocks_error(e, err, "writing a partition's reset");
    return 0;
}

int cue_store_reset_marker_get(cue_store *s, uint32_t partition, char *out, size_t cap,
                               cue_err *err)
{
    cue_store_settle(s);
    CUE_ASSERT(cap > 0);
    unsigned char k[9];
    reset_key(k, partition);
    char *e = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ro, s->cf[CF_META], (const char *)k, 9, &vlen, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "reading a partition's applied reset");
    out[0] = '\0';
    if (v != NULL) snprintf(out, cap, "%.*s", (int)vlen, v);
    rocksdb_free(v);
    return 0;
}

/* ---- the state-TTL pass's mark ------------------------------------------- */

/* partition | "ttl": read by its exact key, as the reset's marker is. */
static void ttl_mark_key(unsigned char k[7], uint32_t partition)
{
    put_be32(k, partition);
    memcpy(k + 4, "ttl", 3);
}

int cue_store_ttl_mark_get(cue_store *s, uint32_t partition, uint64_t *mark, cue_err *err)
{
    cue_store_settle(s);
    unsigned char k[7];
    ttl_mark_key(k, partition);
    char *e = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ro, s->cf[CF_META], (const char *)k, sizeof k, &vlen, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "reading a partition's state-TTL mark");
    *mark = 0;
    if (v != NULL && vlen == 8) *mark = get_be64((const unsigned char *)v);
    rocksdb_free(v);
    return 0;
}

void cue_store_batch_ttl_mark_put(cue_store *s, uint32_t partition, uint64_t mark)
{
    unsigned char k[7], v[8];
    ttl_mark_key(k, partition);
    if (mark == 0) {
        rocksdb_writebatch_delete_cf(s->batch, s->cf[CF_META], (const char *)k, sizeof k);
        return;
    }
    put_be64(v, mark);
    rocksdb_writebatch_put_cf(s->batch, s->cf[CF_META], (const char *)k, sizeof k, (const char *)v,
                              sizeof v);
}

/* ---- whose state this is ----------------------------------------------------- */

static const char owner_key[] = "\xff\xff\xff\xff"
                                "owner";

/* Whether the recorded owner `v` is `want` with fewer input topics: the
 * same application.id, and a list that the wanted one continues after a ','. */
static bool owner_extended(const char *v, size_t vlen, const char *want, size_t n)
{
    return vlen < n && memcmp(v, want, vlen) == 0 && memchr(v, '\0', vlen) != NULL &&
           want[vlen] == ',';
}

static int owner_put(cue_store *s, const char *want, size_t n, cue_err *err)
{
    if (s->read_only) return 0;
    char *e = NULL;
    rocksdb_put_cf(s->db, s->wo_sync, s->cf[CF_META], owner_key, sizeof owner_key - 1, want, n, &e);
    return e ? cue_store_rocks_error(e, err, "writing whose state this is") : 0;
}

int cue_store_owner_check(cue_store *s, const char *app_id, const char *topic, cue_err *err)
{
    cue_store_settle(s);
    char *e = NULL;
    size_t vlen = 0;
    char *v =
        rocksdb_get_cf(s->db, s->ro, s->cf[CF_META], owner_key, sizeof owner_key - 1, &vlen, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "reading whose state this is");
    char want[2 * CUE_OWNER_NAME_MAX + 2];
    int n = snprintf(want, sizeof want, "%s%c%s", app_id, '\0', topic);
    CUE_ASSERT(n > 0 && (size_t)n < sizeof want);
    if (v == NULL) return owner_put(s, want, (size_t)n, err);
    int rc = 0;
    if (owner_extended(v, vlen, want, (size_t)n)) {
        /* Input topics added after the ones the store was built from. */
        rc = owner_put(s, want, (size_t)n, err);
    } else if (vlen != (size_t)n || memcmp(v, want, vlen) != 0) {
        const char *sep = memchr(v, '\0', vlen);
        int app_len = sep ? (int)(sep - v) : (int)vlen;
        int topic_len = sep ? (int)(vlen - (size_t)app_len - 1) : 0;
        rc = cue_err_set(err, CUE_ECONFIG,
                         "state.dir belongs to application.id \"%.*s\" reading \"%.*s\", not to "
                         "application.id \"%s\" reading \"%s\": its positions and users are "
                         "another pipeline's; use that pipeline's configuration, or another "
                         "state.dir (input topics may only be added at the end of "
                         "input.topics)",
                         app_len > 200 ? 200 : app_len, v, topic_len > 200 ? 200 : topic_len,
                         sep ? sep + 1 : "", app_id, topic);
    }
    rocksdb_free(v);
    return rc;
}

/* ---- the partition count ---------------------------------------------------- */

/* Under a key no partition's range holds: partitions are 4-byte keys and
 * their ranges [p, p + 1) would need p = 0xffffffff. */
static const char count_key[] = "\xff\xff\xff\xff"
                                "partition-count";

int cue_store_partition_count_get(cue_store *s, int32_t *n, cue_err *err)
{
    cue_store_settle(s);
    char *e = NULL;
    size_t vlen = 0;
    char *v =
        rocksdb_get_cf(s->db, s->ro, s->cf[CF_META], count_key, sizeof count_key - 1, &vlen, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "reading the partition count");
    if (v == NULL) return CUE_ENOTFOUND;
    int rc = 0;
    if (vlen != 4)
        rc =
            cue_err_set(err, CUE_ECORRUPT, "partition count record of %zu bytes, 4 expected", vlen);
    else
        *n = (int32_t)get_be32((const unsigned char *)v);
    rocksdb_free(v);
    return rc;
}

int cue_store_partition_count_put(cue_store *s, int32_t n, cue_err *err)
{
    cue_store_settle(s);
    CUE_ASSERT(!s->read_only && n > 0);
    unsigned char v[4];
    put_be32(v, (uint32_t)n);
    char *e = NULL;
    rocksdb_put_cf(s->db, s->wo_sync, s->cf[CF_META], count_key, sizeof count_key - 1,
                   (const char *)v, 4, &e);
    if (e != NULL) return cue_store_rocks_error(e, err, "writing the partition count");
    return 0;
}
