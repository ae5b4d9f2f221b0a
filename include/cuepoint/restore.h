/*
 * restore: rebuilding a partition's state from its changelog records (the
 * runtime reads them from <application.id>-changelog; the restore benchmark
 * feeds them from memory). Each user record goes into the store's batch as it
 * came (it is the sealed state record the owner's store had), a tombstone
 * deletes the user, the timer index entry is re-derived from the record's
 * header, and the partition's position record (the empty key) says where the
 * input resumes. The caller commits the batch as it likes and ends with
 * cue_restore_finish. One thread; the store is borrowed.
 */
#ifndef CUEPOINT_RESTORE_H
#define CUEPOINT_RESTORE_H

#include "cuepoint/config.h"
#include "cuepoint/store.h"

#include <stddef.h>
#include <stdint.h>

/* Which input topics a position record was written reading: how many, and
 * cue_config_input_topics_hash of them; n 0 when the record does not say
 * (written before positions carried it). */
typedef struct cue_position_topics {
    uint32_t n;
    uint64_t hash;
} cue_position_topics;

typedef struct cue_restore {
    uint32_t partition;
    int64_t input_offset; /* from the last position record seen */
    /* ... and the further input topics' (input.topics), n_more of them */
    uint8_t n_more;
    int64_t more_offsets[CUE_INPUT_TOPICS_MAX - 1];
    int64_t stream_time_ms; /* ... */
    uint64_t records, bytes;
    uint64_t skipped; /* records not applied: see cue_restore_apply */
    /* With `hold`, the timer index entries wait here until
     * cue_restore_finish, which puts all of them in key order: one sorted
     * run for the whole restore costs a fraction of sorted runs per commit.
     * The commits before that write users without their entries, but no
     * meta either, so a restore cut short starts again from the same place. */
    bool hold;
    cue_timer_run held; /* owned; released by cue_restore_deinit */
    /* A user record without a timer index entry cleared the partition's
     * state-TTL mark (cue_store_ttl_mark_get) in the batch already. */
    bool ttl_mark_cleared;
    /* ... and which input topics the last position record was written
     * reading (cue_restore_topics_check). */
    cue_position_topics last_topics;
    /* The changelog offset of that record, -1 before one: the caller, who
     * reads the changelog, sets it (cue_restore_apply has no offset). */
    int64_t last_position_at;
} cue_restore;

/* Starts a restore that builds on `base` (the local meta), or on nothing;
 * `hold` as above (a standby, whose meta moves at every position record,
 * cannot hold). `r` is zero-initialised before its first use; its held
 * memory is reused. */
void cue_restore_init(cue_restore *r, uint32_t partition, const cue_store_meta *base, bool hold);
/* Releases the held entries' memory (the restore may be started again). */
void cue_restore_deinit(cue_restore *r);
/* CUE_ECONFIG, naming `cfg`'s input topics, when the last position record
 * applied was written reading input topics that `cfg`'s input.topics does
 * not begin with (topics may be added at the end, as the store allows):
 * the state restored so far is then another input's, and must not be
 * taken. Only the last counts: an older one of another input (before the
 * changelog was rewritten for this one, e.g. by `replay --seed-state`) is
 * superseded by what follows it. 0 when it matches or does not say. */
int cue_restore_topics_check(const cue_restore *r, const cue_config *cfg, cue_err *err);

/* Applies one changelog record to the store's batch. Anything that can write
 * the changelog topic can put records there, so a record that is not one of
 * the owner's is skipped, counted in `skipped`, and named in `err` for the
 * caller to log with its topic, partition and offset: one without a key
 * (CUE_EPARSE), one whose key is longer than a user id (CUE_ELIMIT), and a
 * position record (empty key) whose value does not read (CUE_EPARSE). */
int cue_restore_apply(cue_restore *r, cue_store *s, const char *key, size_t key_len,
                      const void *val, size_t len, cue_err *err);
/* An erased user's tombstone (marked on the changelog): deleted as the
 * owner deleted it, physically (cue_store_batch_users_erase: the commit of
 * the store's batch then leaves the id in no file). Errors as above. */
int cue_restore_apply_erasure(cue_restore *r, cue_store *s, const char *key, size_t key_len,
                              cue_err *err);

/* A position record's value, {"input_offset":N,"stream_time_ms":T|null}
 * with ,"more_offsets":[N,...] before the brace for several input topics
 * (the further topics' next offsets, `n_more` of them), then
 * ,"topics":{"count":N,"hash":"<16 hex digits>"} saying which topics
 * (older records have none): parsed (CUE_EPARSE when it is not one; stream
 * time INT64_MIN for null; the further offsets into `more`, up to
 * CUE_INPUT_TOPICS_MAX - 1, and the topics into `topics`, each when it is
 * not NULL), and formatted into `out` (room for
 * CUE_POSITION_TEXT_BYTES_MAX bytes; `topics` NULL or n 0 writes none),
 * returning its length. The task writes it, and so do the commands that
 * rewrite the changelog. */
int cue_restore_position_parse(const void *val, size_t len, int64_t *input_offset,
                               int64_t *stream_time_ms, int64_t *more, uint8_t *n_more,
                               cue_position_topics *topics);
int cue_restore_position_format(char *out, size_t cap, int64_t input_offset, int64_t stream_time_ms,
                                const int64_t *more, size_t n_more,
                                const cue_position_topics *topics);

/* Puts the held timer entries and the partition's meta (input offset,
 * stream time, changelog_offset = `changelog_end`, synced_ms: a wall-clock
 * time no later than the writing of any record past changelog_end) into
 * the batch: commit it with the last records. */
void cue_restore_finish(cue_restore *r, cue_store *s, int64_t changelog_end, int64_t synced_ms);

#endif
