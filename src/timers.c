/* The earliest pending timers of a task, in a bounded min-heap. */
#include "cuepoint/timers.h"

#include "cuepoint/limits.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int64_t due;
    uint8_t len;
    char uid[CUE_USER_ID_BYTES_MAX];
} entry;

struct cue_timers {
    entry *heap; /* owned, cap entries */
    size_t n, cap;
    size_t slice; /* entries added by load() since the last load_end */
    entry horizon;
};

/* Key order: due time, then user id bytes, a shorter prefix first. */
static int key_cmp(int64_t due_a, const char *a, size_t la, int64_t due_b, const char *b, size_t lb)
{
    if (due_a != due_b) return due_a < due_b ? -1 : 1;
    size_t n = la < lb ? la : lb;
    int c = memcmp(a, b, n);
    if (c != 0) return c < 0 ? -1 : 1;
    return (la > lb) - (la < lb);
}

static int entry_cmp(const entry *a, const entry *b)
{
    return key_cmp(a->due, a->uid, a->len, b->due, b->uid, b->len);
}

static void sift_up(cue_timers *t, size_t i)
{
    entry e = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (entry_cmp(&t->heap[parent], &e) <= 0) break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = e;
}

static void sift_down(cue_timers *t, size_t i)
{
    entry e = t->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = l;
        if (l >= t->n) break;
        if (l + 1 < t->n && entry_cmp(&t->heap[l + 1], &t->heap[l]) < 0) m = l + 1;
        if (entry_cmp(&e, &t->heap[m]) <= 0) break;
        t->heap[i] = t->heap[m];
        i = m;
    }
    t->heap[i] = e;
}

int cue_timers_new(cue_timers **out, size_t cap, cue_err *err)
{
    if (cap < 16 || cap > CUE_TIMER_WINDOW_MAX)
        return cue_err_set(err, CUE_EINVAL, "timer window of %zu entries: must be 16 to %d", cap,
                           CUE_TIMER_WINDOW_MAX);
    cue_timers *t = calloc(1, sizeof *t);
    if (t) t->heap = malloc(cap * sizeof *t->heap);
    if (t == NULL || t->heap == NULL) {
        free(t);
        return cue_err_set(err, CUE_ENOMEM, "out of memory for %zu timers", cap);
    }
    t->cap = cap;
    cue_timers_reset(t);
    *out = t;
    return 0;
}

void cue_timers_free(cue_timers *t)
{
    if (t == NULL) return;
    free(t->heap);
    free(t);
}

void cue_timers_reset(cue_timers *t)
{
    t->n = 0;
    t->slice = 0;
    t->horizon.due = INT64_MIN;
    t->horizon.len = 0;
}

static int cmp_qsort(const void *a, const void *b)
{
    return entry_cmp(a, b);
}

/* Keeps the earliest half; the rest stay in the store only, behind the horizon. */
static void shrink(cue_timers *t)
{
    qsort(t->heap, t->n, sizeof *t->heap, cmp_qsort); /* a sorted array is a valid heap */
    size_t keep = t->n / 2;
    t->horizon = t->heap[keep];
    t->n = keep;
}

static void insert(cue_timers *t, int64_t due, const char *uid, size_t len)
{
    CUE_ASSERT(len <= CUE_USER_ID_BYTES_MAX);
    entry *e = &t->heap[t->n];
    e->due = due;
    e->len = (uint8_t)len;
    memcpy(e->uid, uid, len);
    sift_up(t, t->n++);
}

static bool before_horizon(const cue_timers *t, int64_t due, const char *uid, size_t len)
{
    if (t->horizon.due == INT64_MAX) return true;
    return key_cmp(due, uid, len, t->horizon.due, t->horizon.uid, t->horizon.len) < 0;
}

void cue_timers_arm(cue_timers *t, int64_t due_ms, const char *uid, size_t uid_len)
{
    if (!before_horizon(t, due_ms, uid, uid_len)) return;
    if (t->n == t->cap) {
        shrink(t);
        if (!before_horizon(t, due_ms, uid, uid_len)) return;
    }
    insert(t, due_ms, uid, uid_len);
}

int cue_timers_peek(const cue_timers *t, int64_t *due_ms, const char **uid, size_t *uid_len)
{
    if (t->n == 0) return CUE_ENOTFOUND;
    *due_ms = t->heap[0].due;
    *uid = t->heap[0].uid;
    *uid_len = t->heap[0].len;
    return 0;
}

void cue_timers_pop(cue_timers *t)
{
    if (t->n == 0) return;
    t->heap[0] = t->heap[--t->n];
    if (t->n) sift_down(t, 0);
}

void cue_timers_horizon(const cue_timers *t, int64_t *due_ms, const char **uid, size_t *uid_len)
{
    *due_ms = t->horizon.due;
    *uid = t->horizon.uid;
    *uid_len = t->horizon.len;
}

size_t cue_timers_count(const cue_timers *t)
{
    return t->n;
}

size_t cue_timers_capacity(const cue_timers *t)
{
    return t->cap;
}

bool cue_timers_load(cue_timers *t, int64_t due_ms, const char *uid, size_t uid_len)
{
    if (t->slice >= t->cap / 2 || t->n == t->cap) return false;
    insert(t, due_ms, uid, uid_len);
    t->slice++;
    return true;
}

void cue_timers_load_end(cue_timers *t, bool complete, int64_t next_due_ms, const char *next_uid,
                         size_t next_uid_len)
{
    t->slice = 0;
    if (complete) {
        t->horizon.due = INT64_MAX;
        t->horizon.len = 0;
        return;
    }
    CUE_ASSERT(next_uid_len <= CUE_USER_ID_BYTES_MAX);
    t->horizon.due = next_due_ms;
    t->horizon.len = (uint8_t)next_uid_len;
    memcpy(t->horizon.uid, next_uid, next_uid_len);
    /* Entries at or past the new horizon would break the invariant's other
     * half (they are in the store and will be loaded again): drop them. */
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++)
        if (before_horizon(t, t->heap[i].due, t->heap[i].uid, t->heap[i].len))
            t->heap[k++] = t->heap[i];
    if (k != t->n) {
        t->n = k;
        for (size_t i = t->n / 2 + 1; i-- > 0;)
            sift_down(t, i);
    }
}
