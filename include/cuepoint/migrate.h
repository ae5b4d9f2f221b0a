/*
 * migrate: journeys that change under stored state, before and at a deploy.
 *
 * Decoding a user (codec) settles instances stored under another version of
 * their journey through its on_version_change rule and `migrate` map. Two
 * things need more than one user at a time, and live here:
 *
 * - The pass (cue_migrate_partition), run when a task opens a partition
 *   whose machines have a `migrate` map: every stored user of the partition
 *   is decoded and, if any of their instances was migrated, written back with
 *   a timer index entry for their earliest timer. Without it, a user who
 *   sends no event would be migrated only when their old timer comes up, and
 *   a timer a rule moved earlier would fire late; with it, the run's counts
 *   are the plan's. It reads every user of the partition at each start while
 *   a map is declared: remove the map once `check --against` finds nothing
 *   left to migrate. Writes go straight to the store, not the changelog:
 *   another instance that restores the old records migrates them the same
 *   way when it opens the partition.
 *
 * - The plan (cue_plan_*): `cuepoint check --against STATE_DIR`, the dry run
 *   before a deploy. It decodes every stored user with the new machines,
 *   read-only, and counts per journey: instances in each old state and where
 *   each goes, pending timers kept, moved or dropped, timers a migration makes
 *   due at once (and what their transitions emit), and instances stranded: in
 *   a state the new version lacks, with no rule for it.
 *
 * Start-up and offline tools; one thread; the store and machines are
 * borrowed.
 */
#ifndef CUEPOINT_MIGRATE_H
#define CUEPOINT_MIGRATE_H

#include "cuepoint/buf.h"
#include "cuepoint/codec.h"
#include "cuepoint/err.h"
#include "cuepoint/machine.h"
#include "cuepoint/store.h"

#include <stdbool.h>
#include <stdint.h>

/* Whether the pass is to run: some machine of the set has a `migrate` map,
 * and none was set aside (`--only`: users written back would lose their
 * other journeys' instances; such a run migrates users as it loads them). */
bool cue_migrate_needed(const cue_machines *ms);

/* The pass over one partition (above). Adds what decoding changed to `st`
 * and how many users it rewrote to `*rewritten`. CUE_ESTORE when the store
 * fails; a user whose record does not decode is left as it is (its next
 * event is a dead letter, as without the pass). */
int cue_migrate_partition(cue_store *s, uint32_t partition, const cue_machines *ms,
                          cue_codec_stats *st, uint64_t *rewritten, cue_err *err);

typedef struct cue_plan cue_plan;

/* A plan of what loading the store under `ms` would do. `previous`, when not
 * NULL, is the journeys as they were, to name old states and timers that
 * the new files no longer mention. Both are borrowed for the plan's life. */
int cue_plan_new(cue_plan **out, const cue_machines *ms, const cue_machines *previous,
                 cue_err *err);
void cue_plan_free(cue_plan *p);

/* Reads every stored user (all partitions) and each partition's stream time. */
int cue_plan_scan(cue_plan *p, cue_store *s, cue_err *err);

/* The plan as text, one journey after another, ending with a summary line. */
void cue_plan_write(const cue_plan *p, cue_buf *out);

/* Totals: as the run's summary counts them when it migrates the same store. */
const cue_codec_stats *cue_plan_totals(const cue_plan *p);

/* Instances that would be stranded: finished because their state is gone
 * and no rule places them. Non-zero fails `check --against`. */
uint64_t cue_plan_stranded(const cue_plan *p);

#endif
