/*
 * journey_counts: what the journeys of one partition are doing, live. For
 * each journey (machine): how many instances are in each state now (for an
 * unkeyed journey, one per user), how many transitions each edge took and how
 * many triggers it made, and how long journeys took from their start to a
 * final state (a histogram in seconds of event time).
 *
 * The users per state are derived from state, never estimated: the task
 * takes a user out of the counts (cue_journey_counts_leave) before a step
 * changes it and puts it back after (cue_journey_counts_enter), so the counts
 * always equal a recount of the partition's users; when the partition opens
 * they are recounted from the store (cue_journey_counts_recount), which holds
 * exactly the last committed batch after a crash, a restore from the
 * changelog or a hand-off. A commit marks the counts as committed and a
 * rollback goes back to that mark, as the store does.
 *
 * Edges are counted as the engine takes them (cue_step_env's `taken`), by
 * (from, to) state index, with "from" -1 for the start of a journey. Their
 * totals are process counters, as every _total is: they start at zero in a
 * new process, and Prometheus' rate() reads over that.
 *
 * Sized once from the machines (states squared per machine, so at most
 * CUE_MACHINES_MAX * 65 * 64 edges); nothing is allocated after
 * cue_journey_counts_new. One thread: the task's. Borrows the machines.
 */
#ifndef CUEPOINT_JOURNEY_COUNTS_H
#define CUEPOINT_JOURNEY_COUNTS_H

#include "cuepoint/buf.h"
#include "cuepoint/codec.h"
#include "cuepoint/engine.h"
#include "cuepoint/err.h"
#include "cuepoint/machine.h"
#include "cuepoint/metrics.h"
#include "cuepoint/store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cue_journey_counts cue_journey_counts;

/* Zeroed counts for the machine set `ms` (borrowed; it must outlive them).
 * Caller owns `*out`. */
int cue_journey_counts_new(cue_journey_counts **out, const cue_machines *ms, cue_err *err);
void cue_journey_counts_free(cue_journey_counts *c);

/* Sets the users per state to those of `partition`'s committed users in the
 * store (decoded as the task decodes them; a record that does not decode is
 * not counted, as the task leaves such a user as it is), and marks the counts
 * committed. `scratch` is borrowed for the call. CUE_ESTORE on a read error. */
int cue_journey_counts_recount(cue_journey_counts *c, cue_store *s, uint32_t partition,
                               cue_user *scratch, cue_err *err);

/* Takes `u`'s instances out of the users per state (before a step changes
 * it), or puts them in (after). */
void cue_journey_counts_leave(cue_journey_counts *c, const cue_user *u);
void cue_journey_counts_enter(cue_journey_counts *c, const cue_user *u);

/* The engine's transition callback (cue_step_env.taken, with `c` as its
 * ctx): counts the edge, its triggers and, into a final state, the journey's
 * duration. */
void cue_journey_counts_taken(const cue_take *tk, void *ctx);

/* The last commit: the counts now are those of the store (mark), or go back
 * to them (rollback: what was not committed is done again). */
void cue_journey_counts_mark(cue_journey_counts *c);
void cue_journey_counts_rollback(cue_journey_counts *c);

/* Adds every count of `c` into `sum` (same machine set): partitions into an
 * instance's figures. With `flows_only`, the users per state are left out
 * (a partition handed off keeps its edge totals in the instance's counters,
 * but its users are no longer here). */
void cue_journey_counts_add(cue_journey_counts *sum, const cue_journey_counts *c, bool flows_only);
/* Zeroes every count. */
void cue_journey_counts_clear(cue_journey_counts *c);

/* Reading them. `from` is -1 for a journey's start. */
int64_t cue_journey_counts_users(const cue_journey_counts *c, uint16_t machine, uint16_t state);
uint64_t cue_journey_counts_transitions(const cue_journey_counts *c, uint16_t machine, int from,
                                        uint16_t to);
uint64_t cue_journey_counts_triggers(const cue_journey_counts *c, uint16_t machine, int from,
                                     uint16_t to);
const cue_histogram *cue_journey_counts_durations(const cue_journey_counts *c, uint16_t machine);

/* The Prometheus families (metrics.h) of `c`: cuepoint_journey_users,
 * cuepoint_journey_transitions_total, cuepoint_journey_edge_triggers_total
 * and cuepoint_journey_duration_seconds. Edges that the machines declare are
 * always written (zero or not); others only once taken. `labels` is scratch. */
int cue_journey_counts_prometheus(const cue_journey_counts *c, cue_buf *b, cue_buf *labels);

/* The journeys as graphs with their counts, as one JSON object (the console's
 * /v1/journeys; docs/console.md describes it). */
int cue_journey_counts_json(const cue_journey_counts *c, cue_buf *b);

#endif
