/* The hot-user cache: blobs in size classes, an LRU of clean entries, and the
 * dirty entries pinned in first-dirty order until the owner flushes them. */
#include "cuepoint/cache.h"

#include "cuepoint/hash.h"
#include "cuepoint/limits.h"
#include "cuepoint/sort.h"

#include <stdlib.h>
#include <string.h>

/* One blob: this header, then the key, then the value. */
typedef struct entry {
    struct entry *prev, *next; /* LRU links (clean entries only) */
    uint64_t hash;
    uint32_t val_len;
    uint32_t dirty_idx; /* position in the dirty list while dirty */
    uint32_t aux;       /* the owner's word (cue_cache_put); 0 once flushed clean */
    uint8_t key_len;
    uint8_t cls; /* size class (class_bytes) */
    uint8_t dirty;
    uint8_t tomb; /* a deletion waiting for the next flush */
    char data[];
} entry;

/* Size classes: 64-byte steps up to 2 KiB, where most states are (a power of
 * two would waste a third of the cache on a typical 300-byte state), then
 * doubling up to 512 KiB, which holds the largest state plus its key. */
#define CLASS_STEP   64
#define STEP_CLASSES 32                 /* 64 B .. 2 KiB */
#define CLASSES      (STEP_CLASSES + 8) /* .. 512 KiB */

/* The dirty list holds (first eight key bytes, entry) pairs, so that sorting
 * it at flush seldom touches the entries (a cache miss each). */
#define DIRTY_ENTRY(item) ((entry *)(uintptr_t)(item).val)

/* The filter of who left (8 KiB): a few thousand leave while a cycle's
 * batch waits to be written, for a false "maybe" well under 1%. */
#define LEFT_BITS (1u << 16)

struct cue_cache {
    size_t max_bytes;
    size_t held; /* live blobs + free blobs + table + dirty list */
    size_t dirty_bytes;
    entry **table; /* owned; open addressing, linear probing, NULL = empty */
    /* owned; the low 32 bits of each slot's hash: probes that miss need not
     * touch the entry (another cache line), and growing the table or
     * closing a gap finds each entry's home without reading it (reading
     * them was a cache miss per entry, a few ms for a table of 32k users) */
    uint32_t *tags;
    size_t table_cap, n;
    entry *lru_head, *lru_tail; /* most and least recently used clean entries */
    cue_sort_item *dirty;       /* owned; the dirty entries, sorted at flush */
    cue_sort_item *dirty_tmp;   /* owned; the radix sort's scratch, as long */
    size_t n_dirty, dirty_cap;
    entry *free[CLASSES]; /* owned free lists, linked through `next` */
    uint64_t hits, misses, evictions;
    /* The entry the last cue_cache_get found, or NULL: a step's put of the
     * same user then needs no second hash and probe (it tests the key,
     * which is in the CPU's cache by then). Cleared whenever a blob is let
     * go, so it never points at one that is not its user's. */
    entry *found;
    /* Who left the cache (evicted, a deletion flushed) since
     * cue_cache_left_forget: two bits of the key's hash each, a Bloom
     * filter; `left_all` after a clear. */
    uint64_t left[LEFT_BITS / 64];
    size_t n_left;
    bool left_all;
};

static void left_mark(cue_cache *c, uint64_t hash)
{
    uint32_t a = (uint32_t)hash & (LEFT_BITS - 1), b = (uint32_t)(hash >> 32) & (LEFT_BITS - 1);
    c->left[a / 64] |= UINT64_C(1) << (a % 64);
    c->left[b / 64] |= UINT64_C(1) << (b % 64);
    c->n_left++;
}

bool cue_cache_left_maybe(const cue_cache *c, const char *uid, size_t uid_len)
{
    if (c->left_all) return true;
    if (c->n_left == 0) return false;
    uint64_t hash = cue_hash64(uid, uid_len, 0);
    uint32_t a = (uint32_t)hash & (LEFT_BITS - 1), b = (uint32_t)(hash >> 32) & (LEFT_BITS - 1);
    return (c->left[a / 64] >> (a % 64) & 1) && (c->left[b / 64] >> (b % 64) & 1);
}

void cue_cache_left_forget(cue_cache *c)
{
    if (c->n_left) memset(c->left, 0, sizeof c->left);
    c->n_left = 0;
    c->left_all = false;
}

static size_t class_bytes(uint8_t cls)
{
    if (cls < STEP_CLASSES) return (size_t)CLASS_STEP * (cls + 1u);
    return (size_t)CLASS_STEP * STEP_CLASSES << (cls - STEP_CLASSES + 1);
}

static int class_for(size_t bytes)
{
    if (bytes <= (size_t)CLASS_STEP * STEP_CLASSES)
        return (int)((bytes + CLASS_STEP - 1) / CLASS_STEP) - (bytes > 0);
    for (uint8_t c = STEP_CLASSES; c < CLASSES; c++)
        if (class_bytes(c) >= bytes) return c;
    return -1;
}

/* Whether a blob of class `have` takes a value of class `want` in place: one
 * as big, or one class bigger. A state's size moves back and forth across a
 * class boundary as instances come and go; moving it to a smaller blob each
 * time it shrank, and back when it grew, was 40% of the puts of the file
 * mode, each a relocation into memory not in the CPU's caches. Keeping the
 * larger blob costs at most a step (64 bytes) of the budget, counted as
 * held: only within the 64-byte steps, not a doubled class. */
static inline bool fits(uint8_t have, int want)
{
    return have == want || (have == want + 1 && have < STEP_CLASSES);
}

/* ---- lists ------------------------------------------------------------- */

static void lru_unlink(cue_cache *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else if (c->lru_head == e)
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else if (c->lru_tail == e)
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(cue_cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head) c->lru_head->prev = e;
    c->lru_head = e;
    if (c->lru_tail == NULL) c->lru_tail = e;
}

static void blob_release(cue_cache *c, entry *e)
{
    if (e == c->found) c->found = NULL;
    e->next = c->free[e->cls];
    c->free[e->cls] = e;
}

/* Frees one free-listed blob, largest class first; false when none. */
static bool free_one(cue_cache *c)
{
    for (int k = CLASSES - 1; k >= 0; k--) {
        entry *e = c->free[k];
        if (e == NULL) continue;
        c->free[k] = e->next;
        c->held -= class_bytes((uint8_t)k);
        free(e);
        return true;
    }
    return false;
}

/* ---- the table --------------------------------------------------------- */

static uint32_t tag_of(uint64_t hash)
{
    return (uint32_t)hash;
}

static void set_slot(cue_cache *c, size_t i, entry *e)
{
    c->table[i] = e;
    c->tags[i] = e ? tag_of(e->hash) : 0;
}

static size_t slot_of(const cue_cache *c, uint64_t hash, const char *key, size_t len)
{
    size_t mask = c->table_cap - 1;
    uint32_t tag = tag_of(hash);
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        entry *e = c->table[i];
        if (e == NULL) return i;
        if (c->tags[i] == tag && e->hash == hash && e->key_len == len &&
            memcmp(e->data, key, len) == 0)
            return i;
    }
}

/* Removes slot i, shifting later entries of its probe run back. */
static void table_remove(cue_cache *c, size_t i)
{
    size_t mask = c->table_cap - 1;
    set_slot(c, i, NULL);
    c->n--;
    for (size_t j = (i + 1) & mask; c->table[j]; j = (j + 1) & mask) {
        entry *e = c->table[j];
        size_t home = c->tags[j] & mask;
        /* Move e back to i if i lies cyclically in [home, j). */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            set_slot(c, i, e);
            set_slot(c, j, NULL);
            i = j;
        }
    }
}

static int table_grow(cue_cache *c)
{
    size_t cap = c->table_cap * 2;
    entry **t = calloc(cap, sizeof *t);
    uint32_t *tags = calloc(cap, sizeof *tags);
    if (t == NULL || tags == NULL) {
        free(t);
        free(tags);
        return CUE_ENOMEM;
    }
    entry **old = c->table;
    uint32_t *old_tags = c->tags;
    size_t old_cap = c->table_cap, mask = cap - 1;
    c->table = t;
    c->tags = tags;
    c->table_cap = cap;
    /* Keys are distinct: each goes to the first free slot from its home. */
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] == NULL) continue;
        size_t j = old_tags[i] & mask;
        while (t[j])
            j = (j + 1) & mask;
        t[j] = old[i];
        tags[j] = old_tags[i];
    }
    free(old);
    free(old_tags);
    c->held += (cap - old_cap) * (sizeof *t + sizeof *tags);
    return 0;
}

int cue_cache_new(cue_cache **out, size_t max_bytes, cue_err *err)
{
    if (max_bytes < CUE_CACHE_BYTES_MIN)
        return cue_err_set(err, CUE_EINVAL, "cache of %zu bytes: at least %d", max_bytes,
                           CUE_CACHE_BYTES_MIN);
    cue_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->table_cap = 1024;
        c->table = calloc(c->table_cap, sizeof *c->table);
        c->tags = calloc(c->table_cap, sizeof *c->tags);
    }
    if (c == NULL || c->table == NULL || c->tags == NULL) {
        if (c) free(c->table);
        free(c);
        return cue_err_set(err, CUE_ENOMEM, "out of memory for the state cache");
    }
    c->max_bytes = max_bytes;
    c->held = c->table_cap * (sizeof *c->table + sizeof *c->tags);
    *out = c;
    return 0;
}

void cue_cache_clear(cue_cache *c)
{
    for (size_t i = 0; i < c->table_cap; i++) {
        entry *e = c->table[i];
        if (e == NULL) continue;
        c->held -= class_bytes(e->cls);
        free(e);
        set_slot(c, i, NULL);
    }
    c->n = 0;
    c->found = NULL;
    c->lru_head = c->lru_tail = NULL;
    c->n_dirty = 0;
    c->dirty_bytes = 0;
    c->left_all = true;
}

void cue_cache_free(cue_cache *c)
{
    if (c == NULL) return;
    cue_cache_clear(c);
    while (free_one(c)) {}
    free(c->table);
    free(c->tags);
    free(c->dirty);
    free(c->dirty_tmp);
    free(c);
}

/* ---- get and put ------------------------------------------------------- */

int cue_cache_get(cue_cache *c, const char *uid, size_t uid_len, const void **val, size_t *val_len,
                  uint32_t *aux)
{
    entry *e = c->table[slot_of(c, cue_hash64(uid, uid_len, 0), uid, uid_len)];
    if (e == NULL) {
        c->misses++;
        return CUE_ENOTFOUND;
    }
    c->hits++;
    c->found = e;
    if (!e->dirty) {
        lru_unlink(c, e);
        lru_push_head(c, e);
    }
    *val = e->tomb ? NULL : e->data + e->key_len;
    *val_len = e->tomb ? 0 : e->val_len;
    if (aux) *aux = e->aux;
    return 0;
}

int cue_cache_peek(const cue_cache *c, const char *uid, size_t uid_len, const void **val,
                   size_t *val_len, uint32_t *aux)
{
    entry *e = c->table[slot_of(c, cue_hash64(uid, uid_len, 0), uid, uid_len)];
    if (e == NULL) return CUE_ENOTFOUND;
    *val = e->tomb ? NULL : e->data + e->key_len;
    *val_len = e->tomb ? 0 : e->val_len;
    if (aux) *aux = e->aux;
    return 0;
}

void cue_cache_prefetch(const cue_cache *c, const char *uid, size_t uid_len, int stage)
{
    uint64_t hash = cue_hash64(uid, uid_len, 0);
    size_t mask = c->table_cap - 1, i = hash & mask;
    if (stage == 0) {
        __builtin_prefetch(&c->tags[i]);
        __builtin_prefetch(&c->table[i]);
        return;
    }
    /* The table is at most half full: the run ends soon. A tag that matches
     * another key only wastes the hint. */
    uint32_t tag = tag_of(hash);
    for (;; i = (i + 1) & mask) {
        const entry *e = c->table[i];
        if (e == NULL) return;
        if (c->tags[i] == tag) {
            /* The header and key, then the state's first lines. Not
             * bounded by the blob's size: reading it would wait for the
             * very line being fetched, and a prefetch past a blob's end
             * does no harm. */
            for (size_t off = 0; off < 512; off += 64)
                __builtin_prefetch((const char *)e + off);
            return;
        }
    }
}

/* Drops the least recently used clean entry (not `keep`); false when none. */
static bool evict_one(cue_cache *c, const entry *keep)
{
    entry *e = c->lru_tail;
    if (e == keep && e) e = e->prev;
    if (e == NULL) return false;
    lru_unlink(c, e);
    table_remove(c, slot_of(c, e->hash, e->data, e->key_len));
    left_mark(c, e->hash);
    blob_release(c, e);
    c->evictions++;
    return true;
}

/* Makes `bytes` more fit under the budget: free blobs first, then clean entries. */
static bool make_room(cue_cache *c, size_t bytes, const entry *keep)
{
    while (c->held + bytes > c->max_bytes)
        if (!free_one(c) && !evict_one(c, keep)) return false;
    return true;
}

static entry *blob_take(cue_cache *c, uint8_t cls)
{
    entry *e = c->free[cls];
    if (e) {
        c->free[cls] = e->next;
        return e;
    }
    e = malloc(class_bytes(cls));
    if (e) c->held += class_bytes(cls);
    return e;
}

static int mark_dirty(cue_cache *c, entry *e)
{
    if (e->dirty) return 0;
    if (c->n_dirty == c->dirty_cap) {
        size_t cap = c->dirty_cap ? c->dirty_cap * 2 : 1024;
        cue_sort_item *d = realloc(c->dirty, cap * sizeof *d);
        if (d == NULL) return CUE_ENOMEM;
        c->dirty = d;
        cue_sort_item *t = realloc(c->dirty_tmp, cap * sizeof *t);
        if (t == NULL) return CUE_ENOMEM;
        c->dirty_tmp = t;
        c->held += (cap - c->dirty_cap) * 2 * sizeof *d;
        c->dirty_cap = cap;
    }
    lru_unlink(c, e);
    e->dirty = 1;
    e->dirty_idx = (uint32_t)c->n_dirty;
    c->dirty[c->n_dirty++] =
        (cue_sort_item){.key = cue_sort_prefix(e->data, e->key_len), .val = (uintptr_t)e};
    return 0;
}

/* Moves entry `old` (in table slot `slot`) into the fresh blob `e`. */
static void relocate(cue_cache *c, entry *old, entry *e, size_t slot)
{
    e->prev = old->prev;
    e->next = old->next;
    if (!old->dirty) {
        if (e->prev)
            e->prev->next = e;
        else
            c->lru_head = e;
        if (e->next)
            e->next->prev = e;
        else
            c->lru_tail = e;
    } else {
        c->dirty[old->dirty_idx].val = (uintptr_t)e;
    }
    e->dirty = old->dirty;
    e->dirty_idx = old->dirty_idx;
    set_slot(c, slot, e);
    blob_release(c, old);
}

/* Writes a value into entry e, which holds its key in a blob of the right
 * class (a dirty one's bytes taken off dirty_bytes), and files it. */
static int put_value(cue_cache *c, entry *e, const void *val, size_t val_len, uint32_t aux,
                     bool dirty)
{
    e->tomb = val == NULL;
    e->aux = aux;
    e->val_len = (uint32_t)val_len;
    if (val) memcpy(e->data + e->key_len, val, val_len);
    if (dirty && mark_dirty(c, e) != 0) return CUE_ENOMEM;
    if (e->dirty)
        c->dirty_bytes += class_bytes(e->cls);
    else {
        lru_unlink(c, e);
        lru_push_head(c, e);
    }
    return 0;
}

static int put(cue_cache *c, const char *uid, size_t uid_len, const void *val, size_t val_len,
               uint32_t aux, bool dirty, bool over);

int cue_cache_put(cue_cache *c, const char *uid, size_t uid_len, const void *val, size_t val_len,
                  uint32_t aux, bool dirty)
{
    return put(c, uid, uid_len, val, val_len, aux, dirty, false);
}

int cue_cache_put_over(cue_cache *c, const char *uid, size_t uid_len, const void *val,
                       size_t val_len, uint32_t aux)
{
    return put(c, uid, uid_len, val, val_len, aux, true, true);
}

static int put(cue_cache *c, const char *uid, size_t uid_len, const void *val, size_t val_len,
               uint32_t aux, bool dirty, bool over)
{
    CUE_ASSERT(uid_len <= CUE_USER_ID_BYTES_MAX && (val != NULL || dirty));
    int cls = class_for(sizeof(entry) + uid_len + val_len);
    if (cls < 0) return CUE_ELIMIT;
    entry *e = c->found;
    if (e && fits(e->cls, cls) && e->key_len == uid_len && memcmp(e->data, uid, uid_len) == 0) {
        /* The user just looked up, and its blob still fits: written in
         * place, as the path below would (no slot, no room to make). */
        if (e->dirty) c->dirty_bytes -= class_bytes(e->cls);
        return put_value(c, e, val, val_len, aux, dirty);
    }
    uint64_t hash = cue_hash64(uid, uid_len, 0);
    if (c->n * 2 >= c->table_cap && table_grow(c) != 0) return CUE_ENOMEM;
    size_t slot = slot_of(c, hash, uid, uid_len);
    e = c->table[slot];
    if (e && e->dirty) c->dirty_bytes -= class_bytes(e->cls); /* added back below */
    if (e == NULL || !fits(e->cls, cls)) {
        size_t need = c->free[cls] ? 0 : class_bytes((uint8_t)cls);
        if (!make_room(c, need, e) && !over) {
            if (e && e->dirty) c->dirty_bytes += class_bytes(e->cls);
            return CUE_EFULL;
        }
        slot = slot_of(c, hash, uid, uid_len); /* evictions may have moved entries */
        entry *fresh = blob_take(c, (uint8_t)cls);
        if (fresh == NULL) return CUE_ENOMEM;
        fresh->cls = (uint8_t)cls;
        fresh->hash = hash; /* before set_slot, which tags the slot with it */
        if (e) {
            relocate(c, e, fresh, slot);
        } else {
            fresh->dirty = 0;
            fresh->prev = fresh->next = NULL;
            set_slot(c, slot, fresh);
            c->n++;
            lru_push_head(c, fresh);
        }
        e = fresh;
    }
    e->hash = hash;
    e->key_len = (uint8_t)uid_len;
    memcpy(e->data, uid, uid_len);
    return put_value(c, e, val, val_len, aux, dirty);
}

bool cue_cache_should_flush(const cue_cache *c)
{
    return c->dirty_bytes > c->max_bytes / 2;
}

static int key_order(const void *a, const void *b)
{
    const entry *x = DIRTY_ENTRY(*(const cue_sort_item *)a);
    const entry *y = DIRTY_ENTRY(*(const cue_sort_item *)b);
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->data, y->data, n);
    return c != 0 ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Sorts items[0..n) by key: insertion for the short runs most are, else
 * the radix sort (scratch: n items). */
static void sort_run(cue_sort_item *items, cue_sort_item *scratch, size_t n)
{
    if (n > 32) {
        cue_sort_items(items, scratch, n);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        cue_sort_item x = items[i];
        size_t k = i;
        for (; k > 0 && items[k - 1].key > x.key; k--)
            items[k] = items[k - 1];
        items[k] = x;
    }
}

/* Sorts items[0..n), which tie on their ids' bytes before `off`, by the
 * bytes from `off` on: the next eight as a key, then what still ties by the
 * eight after, and so on. Ids that tie through their last byte (which the
 * zero padding of a short chunk allows: "a" and "a\0") go to a comparison
 * sort. Each pass reads every entry once; a comparison sort of a long run
 * read each entry (a cache miss) many times, which ids with a long common
 * prefix ("customer-account-...") made most runs. */
static void sort_from(cue_sort_item *items, cue_sort_item *scratch, size_t n, size_t off)
{
    bool longer = false;
    for (size_t k = 0; k < n; k++) {
        if (k + 4 < n) __builtin_prefetch(DIRTY_ENTRY(items[k + 4]));
        const entry *e = DIRTY_ENTRY(items[k]);
        items[k].key = e->key_len > off ? cue_sort_prefix(e->data + off, e->key_len - off) : 0;
        longer |= e->key_len > off + 8;
    }
    sort_run(items, scratch, n);
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && items[b].key == items[a].key; b++) {}
        if (b - a == 1) continue;
        if (longer)
            sort_from(items + a, scratch + a, b - a, off + 8);
        else
            qsort(items + a, b - a, sizeof *items, key_order);
    }
}

/* Key order: a radix sort on the first eight bytes, then the runs that
 * share them by the bytes after (sort_from). */
static void sort_dirty(cue_cache *c)
{
    cue_sort_items(c->dirty, c->dirty_tmp, c->n_dirty);
    for (size_t i = 0, j; i < c->n_dirty; i = j) {
        for (j = i + 1; j < c->n_dirty && c->dirty[j].key == c->dirty[i].key; j++) {}
        if (j - i == 1) continue;
        uint64_t head = c->dirty[i].key;
        sort_from(c->dirty + i, c->dirty_tmp + i, j - i, 8);
        /* The list keeps each entry's first eight bytes (it is sorted again
         * at the next visit). */
        for (size_t k = i; k < j; k++)
            c->dirty[k].key = head;
    }
}

/* How many dirty entries ahead a visit fetches: they lie anywhere in memory,
 * and a cycle's seal visits tens of thousands while intake stands still. */
#define VISIT_AHEAD 8

/* Fetches the header line of dirty entry i (stage 0) or, some entries
 * later, the rest of its blob (stage 1: the header says how long). */
static void visit_prefetch(const cue_cache *c, size_t i, int stage)
{
    if (i >= c->n_dirty) return;
    const entry *e = DIRTY_ENTRY(c->dirty[i]);
    if (stage == 0) {
        __builtin_prefetch(e);
        return;
    }
    size_t end = sizeof *e + e->key_len + (e->tomb ? 0 : e->val_len);
    for (size_t off = 64; off < end; off += 64)
        __builtin_prefetch((const char *)e + off);
}

int cue_cache_visit_dirty(cue_cache *c, cue_cache_dirty_fn fn, void *ctx)
{
    if (c->n_dirty == 0) return 0;
    sort_dirty(c);
    int rc = 0;
    for (size_t i = 0; i < c->n_dirty; i++) {
        entry *e = DIRTY_ENTRY(c->dirty[i]);
        /* Numbered in the new order as they come (every one, even after a
         * failure): a relocation finds its place in the list by it. */
        e->dirty_idx = (uint32_t)i;
        if (rc != 0) continue;
        visit_prefetch(c, i + VISIT_AHEAD, 0);
        visit_prefetch(c, i + VISIT_AHEAD / 2, 1);
        rc = fn(e->data, e->key_len, e->tomb ? NULL : e->data + e->key_len, e->val_len, ctx);
    }
    return rc;
}

int cue_cache_flush(cue_cache *c, cue_cache_dirty_fn fn, void *ctx)
{
    int rc = cue_cache_visit_dirty(c, fn, ctx);
    if (rc != 0) return rc;
    for (size_t i = 0; i < c->n_dirty; i++) {
        entry *e = DIRTY_ENTRY(c->dirty[i]);
        e->dirty = 0;
        e->aux = 0;
        if (e->tomb) {
            table_remove(c, slot_of(c, e->hash, e->data, e->key_len));
            left_mark(c, e->hash); /* the store may hold the user until its batch is written */
            blob_release(c, e);
        } else {
            lru_push_head(c, e);
        }
    }
    c->n_dirty = 0;
    c->dirty_bytes = 0;
    return 0;
}

uint64_t cue_cache_evictions(const cue_cache *c)
{
    return c->evictions;
}

void cue_cache_stats_get(const cue_cache *c, cue_cache_stats *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    out->entries = c->n;
    out->bytes = c->held;
    out->dirty_bytes = c->dirty_bytes;
    out->max_bytes = c->max_bytes;
}
