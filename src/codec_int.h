/* codec's inside: what the record reader hands to migration (codec_migrate.c),
 * and what the image (codec_image.c) shares with the record. */
#ifndef CUEPOINT_CODEC_INT_H
#define CUEPOINT_CODEC_INT_H

#include "cuepoint/codec.h"

/* A pending timer as the record holds it: the old name's hash. */
typedef struct cue_old_timer {
    uint32_t hash;
    int64_t due;
} cue_old_timer;

/* Where decoding reports migrations; fn NULL: nowhere. */
typedef struct cue_mig_trace {
    cue_migration_fn fn;
    void *ctx;
} cue_mig_trace;

/* Settles instance `in` of machine `m` (index `mi`), read from a record:
 * its state from `state_hash`, its timers from `olds`, by name for its own
 * version and by the machine's rules for another (in->version holds the
 * stored one). Counts into `st`, reports to `tr`. Returns false when the
 * instance is to be dropped. `u` gives the user's attributes to the rules'
 * guards. */
bool cue_codec_settle(const cue_machine *m, uint16_t mi, const cue_machines *ms, const cue_user *u,
                      cue_instance *in, uint32_t state_hash, const cue_old_timer *olds,
                      uint8_t n_olds, cue_codec_stats *st, const cue_mig_trace *tr);

/* How many further input topics' offsets the user holds (up to the last set). */
size_t cue_codec_more_offsets_len(const cue_user *u);

#endif
