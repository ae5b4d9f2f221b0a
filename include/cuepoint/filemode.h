/*
 * filemode: cuepoint without Kafka. Events come from a source (a JSON-lines
 * file, stdin, or a generator), go through one task (partition 0) over a state
 * directory, and triggers are written as JSON lines; bad records go to a
 * dead-letter file with their line number and reason. A second run over the
 * same state directory continues where the first stopped: its records are
 * positioned after the first run's, so nothing is applied twice and timers
 * armed by the first run fire in the second. The state directory remembers
 * which source the current positions belong to (file-source.txt), so an
 * interrupted run can resume the same source. Used by `cuepoint file`,
 * `cuepoint demo`, tests and benchmarks. One thread.
 */
#ifndef CUEPOINT_FILEMODE_H
#define CUEPOINT_FILEMODE_H

#include "cuepoint/buf.h"
#include "cuepoint/config.h"
#include "cuepoint/engine.h"
#include "cuepoint/machine.h"
#include "cuepoint/task.h"

#include <stdio.h>

/* Yields the next record: 1 with `*rec`/`*len` borrowed until the next call,
 * 0 at the end, negative on a read error (with `err`). `*line` is its line
 * number in the source, for messages. A record longer than the limit is
 * yielded truncated with `*oversize` set, so it can be dead-lettered. */
typedef int (*cue_source_fn)(void *ctx, const char **rec, size_t *len, int64_t *line,
                             bool *oversize, cue_err *err);

/* A source reading JSON lines from a stream, with a bounded line buffer.
 * Blank lines are skipped; a trailing '\r' is dropped. */
typedef struct cue_line_source cue_line_source;
int cue_line_source_new(cue_line_source **out, FILE *in, size_t line_max, cue_err *err);
void cue_line_source_free(cue_line_source *s);
int cue_line_source_next(void *ctx, const char **rec, size_t *len, int64_t *line, bool *oversize,
                         cue_err *err);

typedef struct cue_filemode_opts {
    const cue_config *cfg;  /* borrowed */
    const cue_machines *ms; /* borrowed */
    cue_source_fn source;
    void *source_ctx;
    /* The source may be read up to 16 records ahead of the record being
     * processed (their users are prefetched meanwhile). False for a source
     * whose owner relies on a record being processed before the next is
     * read (one that tracks "the record being processed", say). */
    bool read_ahead;
    const char *source_name;         /* for dead letters and messages */
    FILE *out;                       /* triggers; borrowed */
    FILE *dead;                      /* dead letters; borrowed */
    const struct cue_policy *policy; /* the policy stage (policy.h), or NULL; borrowed */
    FILE *decisions;                 /* its decision records, one per line, or NULL; borrowed */
    int64_t until_ms;                /* advance stream time to this at the end; INT64_MIN: don't */
    int64_t linger_ms;               /* or, when > 0, to the last event's time plus this */
    /* The reader's clock, epoch ms: events more than event.time.max.future.ms
     * ahead of it are future_time dead letters (task.h); 0: not checked. */
    int64_t clock_ms;
    /* Continue the same source after an interruption: its records were given
     * positions from the one saved when it was first run, and those already
     * committed are skipped. Needs source_name to match the saved one. */
    bool resume;
    /* What recognises this input when it is run over the same state again
     * (refused without --resume): a hash of its first 64 KiB for a file
     * (cue_filemode_fingerprint); 0 takes the first record's bytes (a
     * stream, which cannot be read ahead). */
    uint64_t fingerprint;
    /* Called for every trigger (after it is written), e.g. to print a sample. */
    void (*on_trigger)(const cue_trigger *t, const char *rec, size_t len, void *ctx);
    void *on_trigger_ctx;
} cue_filemode_opts;

typedef struct cue_filemode_result {
    cue_task_stats task;
    uint64_t triggers;
    uint64_t by_trigger[CUE_MACHINES_MAX][CUE_MACHINE_TRIGGERS_MAX];
    uint64_t resumed; /* records skipped because a previous run committed them */
    double seconds;
    int64_t stream_ms;
} cue_filemode_result;

/* Appends one JSON line (the record and a newline) to `f`. */
void cue_jsonl_put(FILE *f, const char *rec, size_t len);
/* Flushes `f` (NULL: nothing to do); CUE_EIO naming `what` on a write error. */
int cue_jsonl_flush(FILE *f, const char *what, cue_err *err);

/* One dead letter as a JSON line (newline included) into `b`, replacing its
 * contents: reason, error, source, line (when >= 0), partition, offset,
 * truncated, raw. */
void cue_dead_letter_json(cue_buf *b, const cue_dead_letter *dl, const char *source, int64_t line,
                          bool truncated);

/* Runs the whole source through a task over cfg->state_dir and commits at the
 * end. Returns 0, or an error that stopped the run (store, I/O, source). */
int cue_filemode_run(const cue_filemode_opts *o, cue_filemode_result *res, cue_err *err);

/* A hash of the first 64 KiB of `f` when it is a regular file (read without
 * moving its position), else 0: cue_filemode_opts.fingerprint. */
uint64_t cue_filemode_fingerprint(FILE *f);

/* Writes the human summary ("N events read, ...; triggers by name") to `f`. */
void cue_filemode_summary(FILE *f, const cue_filemode_opts *o, const cue_filemode_result *r);

/* Writes the summary as one JSON object (for --stats and benchmarks). */
void cue_filemode_summary_json(FILE *f, const cue_filemode_opts *o, const cue_filemode_result *r);

#endif
