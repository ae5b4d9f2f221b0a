/*
 * timers: the in-memory window of a task's earliest pending timers.
 *
 * The full timer index lives in the store (`timers` column family); memory
 * holds only the earliest ones, so that a million users with a pending timer
 * each cost a bounded amount of RAM. The window keeps one promise, its
 * invariant: every pending timer whose key (due_ms, user_id) sorts before the
 * horizon key is in the window. Timers at or past the horizon are only in the
 * store (or in the owner's entries not yet committed to it), and the owner
 * loads the next slice (cue_timers_load_*) when stream time reaches the
 * horizon.
 *
 * Entries are (due_ms, user_id) and are ordered by due time, then user id bytes:
 * the same order as the store's keys, so firing order does not depend on what
 * happened to be in memory. Entries can be stale (the user re-armed or cancelled
 * the timer): the owner checks the user's state when an entry comes up. The same
 * (due, user) may appear twice; the second is then stale.
 * One thread; pure (no store access, no clock). The window owns its entries.
 */
#ifndef CUEPOINT_TIMERS_H
#define CUEPOINT_TIMERS_H

#include "cuepoint/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cue_timers cue_timers;

/* `cap` entries at most (>= 16, <= CUE_TIMER_WINDOW_MAX). Starts empty with the
 * horizon at (INT64_MIN, "") (nothing known: the owner loads before relying on it). */
int cue_timers_new(cue_timers **out, size_t cap, cue_err *err);
void cue_timers_free(cue_timers *t);

/* Empties the window; horizon back to (INT64_MIN, ""). */
void cue_timers_reset(cue_timers *t);

/* Records a timer the owner also keeps for the store (written at its
 * commit). Kept only if its key sorts before the horizon; when the window is
 * full it keeps its earliest half and lowers the horizon to the earliest
 * entry it let go (those stay with the owner and the store). */
void cue_timers_arm(cue_timers *t, int64_t due_ms, const char *uid, size_t uid_len);

/* The earliest entry, borrowed until the next change. CUE_ENOTFOUND if empty. */
int cue_timers_peek(const cue_timers *t, int64_t *due_ms, const char **uid, size_t *uid_len);

/* The heap's first levels: the root, its children, theirs. */
#define CUE_TIMERS_NEXT 4
#define CUE_TIMERS_NEAR 20

/* Asks `fn` to fetch the users of the entries near the front into the CPU's
 * caches before their turn, in two stages as a record's user is: stage 0
 * for each entry once it is among the first CUE_TIMERS_NEAR + 1, stage 1
 * once it is among the first CUE_TIMERS_NEXT + 1, on a later call than its
 * stage 0 (which must have landed first). Each entry is asked for once per
 * stage; a call when nothing near the front moved reads nothing else. A
 * timer's user is otherwise found only when it fires, a miss in memory
 * each (most of the file mode's cache look-up time). */
typedef void (*cue_timers_hint_fn)(const char *uid, size_t uid_len, int stage, void *ctx);
void cue_timers_hint(cue_timers *t, cue_timers_hint_fn fn, void *ctx);

/* Removes the earliest entry (no-op when empty). */
void cue_timers_pop(cue_timers *t);

/* The horizon key; `*uid` is borrowed until the next change. A horizon due of
 * INT64_MAX means the window holds every pending timer. */
void cue_timers_horizon(const cue_timers *t, int64_t *due_ms, const char **uid, size_t *uid_len);
size_t cue_timers_count(const cue_timers *t);
size_t cue_timers_capacity(const cue_timers *t);

/* Loading the next slice from the store (merged by the owner with its
 * uncommitted entries), which the owner scans in key order
 * starting at the horizon key (inclusive): load() each entry until it returns
 * false (the window took half its capacity in this slice), then end().
 * `complete` says the scan reached the end of the partition's timers (the
 * horizon becomes (INT64_MAX, "")); otherwise (next_due_ms, next_uid) is the key
 * of the first entry not loaded, which becomes the horizon. */
bool cue_timers_load(cue_timers *t, int64_t due_ms, const char *uid, size_t uid_len);
void cue_timers_load_end(cue_timers *t, bool complete, int64_t next_due_ms, const char *next_uid,
                         size_t next_uid_len);

#endif
