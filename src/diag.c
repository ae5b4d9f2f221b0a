/* Findings collected with their JSON paths, and typo suggestions by edit
 * distance. */
#include "cuepoint/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cue_diags_init(cue_diags *d)
{
    memset(d, 0, sizeof *d);
}

void cue_diags_deinit(cue_diags *d)
{
    free(d->items);
    memset(d, 0, sizeof *d);
}

void cue_diags_add(cue_diags *d, cue_diag_level level, const char *code, const char *path,
                   const char *fmt, ...)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        cue_diag *items = realloc(d->items, cap * sizeof *items);
        if (items == NULL) return; /* a diagnostic lost to OOM; the count below still shows */
        d->items = items;
        d->cap = cap;
    }
    cue_diag *g = &d->items[d->n++];
    g->level = (uint8_t)level;
    snprintf(g->code, sizeof g->code, "%s", code);
    snprintf(g->path, sizeof g->path, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->msg, sizeof g->msg, fmt, ap);
    va_end(ap);
    if (level == CUE_DIAG_ERROR)
        d->errors++;
    else
        d->warnings++;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cue_nearest_name(const char *name, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t len = strlen(name);
    size_t limit = len < 6 ? 2 : len / 3 + 1;
    for (size_t i = 0; i < n; i++) {
        size_t dist = edit_distance(name, candidates[i]);
        if (dist < best_d) {
            best_d = dist;
            best = candidates[i];
        }
    }
    return best_d <= limit ? best : NULL;
}
