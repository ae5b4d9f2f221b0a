/* The earliest pending timers of a task, in a bounded min-heap. */
#include "cuepoint/timers.h"

#include "cuepoint/limits.h"
#include "cuepoint/sort.h"

#include <stdlib.h>
#include <string.h>

/* An entry's key lives in a slot of a pool; the heap moves small items. The
 * first version moved whole 144-byte entries through each sift, which made
 * the heap a tenth of the task's time at 1M events (perf: sift_up/down). */
typedef struct entry {
    int64_t due;
    uint8_t len;
    char uid[CUE_USER_ID_BYTES_MAX];
} entry;

/* What the heap orders: the due time, then four bytes of the id (zero
 * padded, big-endian) from where the window's ids stop sharing a prefix
 * (cue_timers.skip), decide most comparisons without touching the slot.
 * Due times seldom tie for timers set a span after events (6 of 3.3M
 * comparisons over generated events), but a `local_time` timer is due at
 * the same instant for every user of a zone who was active that day; ids
 * then decide, and ids share their first bytes ("u00...",
 * "customer-account-..."), so the first four would tie too. Sixteen bytes,
 * so that a node's four children fill one cache line. */
typedef struct item {
    int64_t due;
    uint32_t prefix;
    uint32_t slot : 30;
    /* How far cue_timers_hint has fetched the entry's user (HINT_*): kept
     * here, where the front's items are read anyway, not in the slot, a
     * miss in memory to look at. */
    uint32_t hinted : 2;
} item;

enum { HINT_NONE, HINT_SLOT, HINT_NEAR, HINT_NEXT };
_Static_assert(CUE_TIMER_WINDOW_MAX <= 1 << 30, "a slot's number fits its field");
_Static_assert(sizeof(item) == 16, "four items a cache line");

/* The heap's first item sits 48 bytes into a 64-byte line: the children of
 * node i, 4i+1 to 4i+4, then start on a line of their own. */
#define LINE       64
#define HEAP_SHIFT (LINE - sizeof(item))

struct cue_timers {
    void *heap_mem; /* owned: the heap's allocation, aligned to a line */
    item *heap;     /* cap items, HEAP_SHIFT bytes into heap_mem */
    entry *slots;   /* owned, cap entries; a slot is used while an item names it */
    uint32_t *free; /* owned, cap slot numbers: the unused slots, a stack */
    size_t n, cap, n_free;
    size_t slice; /* entries added by load() since the last load_end */
    entry horizon;
    /* Every id in the heap shares its first `skip` bytes with `ref` (the
     * first id put into the empty heap); items' prefixes are the four bytes
     * after those. An id that shares fewer makes skip shorter and every
     * item's prefix is taken again: the order of ids that share a prefix
     * is the order of what follows it, so the heap stays valid. */
    size_t skip;
    char ref[CUE_USER_ID_BYTES_MAX];
    /* Whether the front (the first FRONT items) may hold an entry that
     * cue_timers_hint has not asked for yet, or not for its next stage:
     * most records change nothing there, and then the pass reads nothing. */
    bool front_moved;
};

/* The items cue_timers_hint looks at: the root and two levels below it. */
#define FRONT (1 + CUE_TIMERS_NEAR)

/* Key order: due time, then user id bytes, a shorter prefix first. */
static int key_cmp(int64_t due_a, const char *a, size_t la, int64_t due_b, const char *b, size_t lb)
{
    if (due_a != due_b) return due_a < due_b ? -1 : 1;
    size_t n = la < lb ? la : lb;
    int c = memcmp(a, b, n);
    if (c != 0) return c < 0 ? -1 : 1;
    return (la > lb) - (la < lb);
}

/* The same order as key_cmp, for ids that share their first `skip` bytes:
 * zero-padded prefixes of what follows that differ differ at a byte both
 * ids have, or where the shorter one ends (its zero pad sorts first or
 * ties, and a tie goes to the whole ids). */
static int item_cmp(const cue_timers *t, const item *a, const item *b)
{
    if (a->due != b->due) return a->due < b->due ? -1 : 1;
    if (a->prefix != b->prefix) return a->prefix < b->prefix ? -1 : 1;
    const entry *x = &t->slots[a->slot], *y = &t->slots[b->slot];
    return key_cmp(x->due, x->uid, x->len, y->due, y->uid, y->len);
}

/* A 4-ary heap: half the levels of a binary one. A pop's descent is a
 * chain of loads, each waiting for the level above it (62% of a binary
 * pop's samples were on one compare's load: 64 tasks' heaps do not stay in
 * the CPU's caches between a task's turns); here each level's four
 * children are adjacent and come in together. */
#define ARITY 4
_Static_assert(CUE_TIMERS_NEXT == ARITY && CUE_TIMERS_NEAR == ARITY + ARITY * ARITY,
               "timers.h describes the heap");

#define SWAP_ITEMS(a, b)                                                                           \
    do {                                                                                           \
        item swap_ = (a);                                                                          \
        (a) = (b);                                                                                 \
        (b) = swap_;                                                                               \
    } while (0)

/* Returns where the item came to rest. */
static size_t sift_up(cue_timers *t, size_t i)
{
    item e = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / ARITY;
        if (item_cmp(t, &t->heap[parent], &e) <= 0) break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = e;
    return i;
}

/* The least of the children from `first` (one at least) below `n`: with all
 * four, two pairs then their winners, so the first two compares need not
 * wait for each other. */
static size_t least_child(const cue_timers *t, size_t first, size_t n)
{
    const item *h = t->heap;
    if (first + ARITY <= n) {
        size_t a = item_cmp(t, &h[first + 1], &h[first]) < 0 ? first + 1 : first;
        size_t b = item_cmp(t, &h[first + 3], &h[first + 2]) < 0 ? first + 3 : first + 2;
        return item_cmp(t, &h[b], &h[a]) < 0 ? b : a;
    }
    size_t m = first;
    for (size_t c = first + 1; c < n; c++)
        if (item_cmp(t, &h[c], &h[m]) < 0) m = c;
    return m;
}

static void sift_down(cue_timers *t, size_t i)
{
    item e = t->heap[i];
    for (;;) {
        size_t first = ARITY * i + 1;
        if (first >= t->n) break;
        size_t m = least_child(t, first, t->n);
        if (item_cmp(t, &e, &t->heap[m]) <= 0) break;
        t->heap[i] = t->heap[m];
        i = m;
    }
    t->heap[i] = e;
}

/* Removes the root: its hole goes down to a leaf along the least child,
 * then the last item fills it and rises, which it seldom does far: it was
 * a leaf too. The firing loop pops once per timer. */
static void pop_root(cue_timers *t)
{
    t->front_moved = true;
    size_t n = --t->n, i = 0;
    if (n == 0) return;
    for (;;) {
        size_t first = ARITY * i + 1;
        if (first >= n) break;
        size_t m = least_child(t, first, n);
        t->heap[i] = t->heap[m];
        i = m;
    }
    t->heap[i] = t->heap[n];
    sift_up(t, i);
}

int cue_timers_new(cue_timers **out, size_t cap, cue_err *err)
{
    if (cap < 16 || cap > CUE_TIMER_WINDOW_MAX)
        return cue_err_set(err, CUE_EINVAL, "timer window of %zu entries: must be 16 to %d", cap,
                           CUE_TIMER_WINDOW_MAX);
    cue_timers *t = calloc(1, sizeof *t);
    if (t) {
        /* aligned_alloc wants a multiple of the alignment. */
        size_t bytes = (HEAP_SHIFT + cap * sizeof(item) + LINE - 1) / LINE * LINE;
        t->heap_mem = aligned_alloc(LINE, bytes);
        t->heap = t->heap_mem ? (item *)(void *)((char *)t->heap_mem + HEAP_SHIFT) : NULL;
        t->slots = malloc(cap * sizeof *t->slots);
        t->free = malloc(cap * sizeof *t->free);
    }
    if (t == NULL || t->heap == NULL || t->slots == NULL || t->free == NULL) {
        cue_timers_free(t);
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
    free(t->heap_mem);
    free(t->slots);
    free(t->free);
    free(t);
}

void cue_timers_reset(cue_timers *t)
{
    t->n = 0;
    /* Slot 0 on top: slots are reused low first, so only as much of the pool
     * as the window ever held gets touched. */
    t->n_free = t->cap;
    for (size_t i = 0; i < t->cap; i++)
        t->free[i] = (uint32_t)(t->cap - 1 - i);
    t->slice = 0;
    t->horizon.due = INT64_MIN;
    t->horizon.len = 0;
    t->front_moved = true;
}

static void slot_release(cue_timers *t, uint32_t slot)
{
    CUE_ASSERT(t->n_free < t->cap);
    t->free[t->n_free++] = slot;
}

/* Puts the k least items of heap[0, n) in [0, k), in no order, and the
 * least of the others at k (a quickselect: expected a few n comparisons). */
static void select_least(cue_timers *t, size_t n, size_t k)
{
    item *h = t->heap;
    size_t lo = 0, hi = n; /* the k-th least is in [lo, hi) */
    while (hi - lo > 2) {
        /* Median of three as the pivot, kept out of the way at lo. */
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (item_cmp(t, &h[mid], &h[lo]) < 0) SWAP_ITEMS(h[mid], h[lo]);
        if (item_cmp(t, &h[last], &h[lo]) < 0) SWAP_ITEMS(h[last], h[lo]);
        if (item_cmp(t, &h[last], &h[mid]) < 0) SWAP_ITEMS(h[last], h[mid]);
        SWAP_ITEMS(h[lo], h[mid]);
        item pivot = h[lo];
        /* [lo+1, i) <= pivot, (j, hi) >= pivot. */
        size_t i = lo + 1, j = last;
        for (;;) {
            while (i <= j && item_cmp(t, &h[i], &pivot) < 0)
                i++;
            while (j > lo && item_cmp(t, &h[j], &pivot) > 0)
                j--;
            if (i >= j) break;
            SWAP_ITEMS(h[i], h[j]);
            i++;
            j--;
        }
        SWAP_ITEMS(h[lo], h[j]); /* the pivot at its place: j */
        if (j == k) return;
        if (j < k)
            lo = j + 1;
        else
            hi = j;
    }
    if (hi - lo == 2 && item_cmp(t, &h[lo + 1], &h[lo]) < 0) SWAP_ITEMS(h[lo], h[lo + 1]);
}

/* Keeps the earliest half; the rest stay in the store only, behind the
 * horizon. The earliest half is selected (linear), then made a heap again
 * from the bottom up (linear): popping it out in order, as before, was
 * n/2 pops of ~30 comparisons, ~10 ms for a full window of 65,536; each
 * task's window fills at about the same count of records, so a turn of the
 * loop took them all at once. */
static void shrink(cue_timers *t)
{
    size_t n = t->n, keep = n / 2;
    select_least(t, n, keep);
    /* [keep, n) is what is let go, its least (at keep) the new horizon. */
    t->horizon = t->slots[t->heap[keep].slot];
    for (size_t i = keep; i < n; i++)
        slot_release(t, t->heap[i].slot);
    t->n = keep;
    for (size_t i = keep / ARITY + 1; i-- > 0;)
        sift_down(t, i);
    t->front_moved = true;
}

/* The four bytes of an id after the heap's shared prefix (see item). */
static uint32_t prefix_after(const char *uid, size_t len, size_t skip)
{
    return len > skip ? (uint32_t)(cue_sort_prefix(uid + skip, len - skip) >> 32) : 0;
}

/* Makes room in the shared prefix for `uid` (see cue_timers.skip). */
static void share_prefix(cue_timers *t, const char *uid, size_t len)
{
    if (t->n == 0) {
        memcpy(t->ref, uid, len);
        t->skip = len;
        return;
    }
    size_t n = len < t->skip ? len : t->skip, c = 0;
    while (c < n && uid[c] == t->ref[c])
        c++;
    if (c == t->skip) return;
    t->skip = c;
    for (size_t i = 0; i < t->n; i++) {
        const entry *e = &t->slots[t->heap[i].slot];
        t->heap[i].prefix = prefix_after(e->uid, e->len, c);
    }
}

static void insert(cue_timers *t, int64_t due, const char *uid, size_t len)
{
    CUE_ASSERT(len <= CUE_USER_ID_BYTES_MAX && t->n < t->cap && t->n_free > 0);
    share_prefix(t, uid, len);
    uint32_t slot = t->free[--t->n_free];
    entry *e = &t->slots[slot];
    e->due = due;
    e->len = (uint8_t)len;
    memcpy(e->uid, uid, len);
    t->heap[t->n] = (item){.due = due, .prefix = prefix_after(uid, len, t->skip), .slot = slot};
    if (sift_up(t, t->n++) < FRONT) t->front_moved = true;
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
    const entry *e = &t->slots[t->heap[0].slot];
    *due_ms = e->due;
    *uid = e->uid;
    *uid_len = e->len;
    return 0;
}

void cue_timers_hint(cue_timers *t, cue_timers_hint_fn fn, void *ctx)
{
    if (!t->front_moved) return;
    t->front_moved = false;
    size_t n = t->n < FRONT ? t->n : FRONT;
    for (size_t i = 0; i < n; i++) {
        item *it = &t->heap[i];
        bool next = i <= ARITY; /* the root or one of its children */
        /* Each stage on a later call than the one before it: what it reads
         * has to have landed, or the pass would wait for it. */
        if (it->hinted == HINT_SLOT || (next && it->hinted == HINT_NEAR))
            fn(t->slots[it->slot].uid, t->slots[it->slot].len, it->hinted == HINT_SLOT ? 0 : 1,
               ctx);
        else if (it->hinted == HINT_NONE)
            __builtin_prefetch(&t->slots[it->slot]);
        else
            continue;
        it->hinted++;
        if (it->hinted < HINT_NEXT && (next || it->hinted < HINT_NEAR)) t->front_moved = true;
    }
}

void cue_timers_pop(cue_timers *t)
{
    if (t->n == 0) return;
    slot_release(t, t->heap[0].slot);
    pop_root(t);
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
    for (size_t i = 0; i < t->n; i++) {
        const entry *e = &t->slots[t->heap[i].slot];
        if (before_horizon(t, e->due, e->uid, e->len))
            t->heap[k++] = t->heap[i];
        else
            slot_release(t, t->heap[i].slot);
    }
    if (k != t->n) {
        t->n = k;
        for (size_t i = (t->n + ARITY - 2) / ARITY; i-- > 0;) /* the parents */
            sift_down(t, i);
        t->front_moved = true;
    }
}
