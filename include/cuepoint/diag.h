/*
 * diag: what the compilers of users' files (journeys, policies, report and
 * run configurations) say about them, and the nearest known name for a typo.
 * The machine compiler and `cuepoint check` collect every finding of a file
 * into a cue_diags; check.h adds the lints.
 */
#ifndef CUEPOINT_DIAG_H
#define CUEPOINT_DIAG_H

#include <stddef.h>
#include <stdint.h>

/* One diagnostic per finding: every error, not just the first. Each has a
 * JSON path ($.states.x.on[2].goto) and a message with the nearest known
 * name where one is close. */
typedef enum cue_diag_level { CUE_DIAG_ERROR = 0, CUE_DIAG_WARNING } cue_diag_level;
typedef struct cue_diag {
    uint8_t level;
    char code[32]; /* stable id: "unknown-state", "unreachable-state", ... */
    char path[256];
    char msg[384];
} cue_diag;

typedef struct cue_diags {
    cue_diag *items; /* owned */
    size_t n, cap;
    size_t errors, warnings;
} cue_diags;

void cue_diags_init(cue_diags *d);
void cue_diags_deinit(cue_diags *d);
void cue_diags_add(cue_diags *d, cue_diag_level level, const char *code, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The nearest of `candidates` to `name` by edit distance, or NULL when none is
 * close enough to be a plausible typo. */
const char *cue_nearest_name(const char *name, const char *const *candidates, size_t n);

#endif
