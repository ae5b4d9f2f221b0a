/* A task's timer index: the entries made while processing (held until the
 * commit writes them, sorted, each user's once), and the window's refill
 * from the store's index merged with them. */
#include "task_int.h"

#include "cuepoint/sort.h"
#include "cuepoint/store.h"

#include <stdlib.h>
#include <string.h>

/* How close to coming up a lower-bound index entry must be for an event of its
 * user to move it (see cue_task_index_sync). */
#define REINDEX_AHEAD_MS (2 * 86400000LL)

/* t->user's pending index entry, or NULL. */
static timer_op *user_op(cue_task *t)
{
    size_t n = t->timer_ops.len / sizeof(timer_op);
    return t->user_op && t->user_op <= n ? &((timer_op *)t->timer_ops.data)[t->user_op - 1] : NULL;
}

/* t->user's index entry is now at `due`: its pending entry moves there (what
 * it held was superseded: it would only come up stale), or one is made. So
 * pending entries number the dirty users with a timer at most, which the
 * cache's budget bounds, and not the records processed. */
static void timer_op_add(cue_task *t, int64_t due)
{
    timer_op *mine = user_op(t);
    if (mine) {
        if (mine->due != CUE_TIMER_NONE) t->stats.timer_dropped++;
        mine->due = due;
        return;
    }
    size_t n = t->timer_ops.len / sizeof(timer_op);
    timer_op op = {.due = due, .key_off = (uint32_t)t->timer_keys.len, .key_len = t->user->id_len};
    /* Growth failures need an allocation failure on a buffer that is reused
     * every cycle; the entry is then missing from the store but still in the
     * window, so it fires unless the process also crashes before then. */
    if (cue_buf_append(&t->timer_keys, t->user->id, t->user->id_len) == 0 &&
        cue_buf_append(&t->timer_ops, &op, sizeof op) == 0)
        t->user_op = (uint32_t)n + 1;
}

/* t->user's pending entry is not to be written: it came up (`due`, the entry
 * used), or the user went (CUE_TIMER_NONE). */
void cue_task_index_kill(cue_task *t, int64_t due)
{
    timer_op *mine = user_op(t);
    if (mine && (due == CUE_TIMER_NONE || mine->due == due)) mine->due = CUE_TIMER_NONE;
}

/* Keeps the timer index in step with the user. The index holds, per user, an
 * entry never later than the user's earliest timer: a lower bound. It is
 * written only when the earliest timer moves earlier. When it moves later (as
 * lifecycle's does on every event) the old entry stays; when it comes up, the
 * user is re-indexed at its real earliest timer. Entries are never deleted
 * one by one: once stream time has passed them they are used up, and each
 * commit deletes that whole range at once (see cue_task_commit). */
void cue_task_index_sync(cue_task *t)
{
    cue_user *u = t->user;
    /* The index holds the user's expiry too (state TTL): the earlier of it
     * and the earliest timer, so expiring needs no scan of the users. */
    int64_t want = cue_user_next_due(u);
    int64_t expiry = cue_engine_expiry(t->ms, u, t->cfg->state_ttl_ms);
    if (want == CUE_TIMER_NONE || (expiry != CUE_TIMER_NONE && expiry < want)) want = expiry;
    if (want == CUE_TIMER_NONE) return;
    if (u->indexed_due != CUE_TIMER_NONE && u->indexed_due <= want) {
        /* Still a valid lower bound. But if it is about to come up while the
         * real earliest timer is later, move it now: the user is loaded and
         * dirty anyway, and a put here is cheaper than loading, decoding and
         * rewriting the user when the entry comes up. The old entry is then
         * skipped from the record's header alone. */
        if (u->indexed_due == want || u->indexed_due > t->stream_ms + REINDEX_AHEAD_MS) return;
    }
    timer_op_add(t, want);
    cue_timers_arm(t->timers, want, u->id, u->id_len);
    u->indexed_due = want;
}

/* ---- timers ------------------------------------------------------------ */

#define OP_OF(item) ((const timer_op *)(uintptr_t)(item).val)

static int op_order(const timer_op *x, const timer_op *y)
{
    if (x->due != y->due) return x->due < y->due ? -1 : 1;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c != 0) return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int item_order(const void *a, const void *b)
{
    return op_order(OP_OF(*(const cue_sort_item *)a), OP_OF(*(const cue_sort_item *)b));
}

/* Whether a pending index entry is to be written (cue_task_index_kill). */
static bool op_live(const timer_op *op)
{
    return op->due != CUE_TIMER_NONE;
}

/* Sorts the pending index entries into key order: a radix sort by due
 * time, then the runs due at the same millisecond by user id. *items (in
 * t->timer_sort, pointing into t->timer_ops) is valid until either changes;
 * equal entries end up next to each other. False when there is no memory to
 * sort with. */
static bool ops_sort(cue_task *t, const cue_sort_item **items_out, size_t *n_out)
{
    timer_op *ops = (timer_op *)t->timer_ops.data;
    size_t n = t->timer_ops.len / sizeof *ops;
    *items_out = NULL;
    *n_out = 0;
    cue_buf_reset(&t->timer_sort);
    if (n == 0) return true;
    if (cue_buf_reserve(&t->timer_sort, 2 * n * sizeof(cue_sort_item)) != 0) return false;
    cue_sort_item *items = (cue_sort_item *)t->timer_sort.data, *tmp = items + n;
    for (size_t i = 0; i < n; i++) {
        ops[i].key = t->timer_keys.data + ops[i].key_off;
        items[i] =
            (cue_sort_item){.key = (uint64_t)ops[i].due ^ (1ULL << 63), .val = (uintptr_t)&ops[i]};
    }
    cue_sort_items(items, tmp, n);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && items[j].key == items[i].key; j++) {}
        if (j - i > 1) qsort(items + i, j - i, sizeof *items, item_order);
    }
    *items_out = items;
    *n_out = n;
    return true;
}

/* Writes the pending index entries that are still live into the batch in
 * key order, each once, and forgets them. */
static void timer_ops_write(cue_task *t, bool count)
{
    const cue_sort_item *items;
    size_t n;
    if (!ops_sort(t, &items, &n)) {
        /* No memory to sort with: write them as they came (slower, as correct). */
        timer_op *ops = (timer_op *)t->timer_ops.data;
        for (size_t i = 0; i < t->timer_ops.len / sizeof *ops; i++)
            if (op_live(&ops[i]))
                cue_store_batch_timer_put(t->store, t->partition, ops[i].due,
                                          t->timer_keys.data + ops[i].key_off, ops[i].key_len);
    }
    for (size_t i = 0; i < n; i++) {
        const timer_op *op = OP_OF(items[i]);
        if (i + 1 < n && op_order(op, OP_OF(items[i + 1])) == 0) continue;
        if (!op_live(op)) {
            if (count) t->stats.timer_dropped++;
            continue;
        }
        if (count) t->stats.timer_writes++;
        cue_store_batch_timer_put(t->store, t->partition, op->due, op->key, op->key_len);
    }
}

/* At commit: the pending entries go into the batch, and are forgotten (as
 * the cache's flush forgets which was whose). */
void cue_task_index_flush(cue_task *t)
{
    timer_ops_write(t, true);
    cue_buf_reset(&t->timer_ops);
    cue_buf_reset(&t->timer_keys);
    t->user_op = 0;
}

/* A slice being loaded: the store's entries merged with the pending ones. */
typedef struct load_ctx {
    cue_task *t;
    const cue_sort_item *ops; /* pending entries in key order (ops_sort) */
    size_t n_ops, next_op;    /* ... and the next one not looked at */
    bool stopped;
    int64_t next_due;
    char next_uid[CUE_USER_ID_BYTES_MAX];
    size_t next_len;
} load_ctx;

/* Offers one entry to the window; false (and the slice ends before it) when
 * the window has taken its share. */
static bool load_key(load_ctx *lc, int64_t due, const char *uid, size_t len)
{
    if (cue_timers_load(lc->t->timers, due, uid, len)) return true;
    lc->stopped = true;
    lc->next_due = due;
    lc->next_len = len < sizeof lc->next_uid ? len : sizeof lc->next_uid;
    memcpy(lc->next_uid, uid, lc->next_len);
    return false;
}

/* Offers the pending entries that sort before `bound` (all of them when
 * `bound` is NULL), each once; one equal to `bound` is the store's too. */
static bool load_ops_before(load_ctx *lc, const timer_op *bound)
{
    for (; lc->next_op < lc->n_ops; lc->next_op++) {
        const timer_op *op = OP_OF(lc->ops[lc->next_op]);
        int c = bound ? op_order(op, bound) : -1;
        if (c > 0) return true;
        bool dup =
            c == 0 || (lc->next_op > 0 && op_order(op, OP_OF(lc->ops[lc->next_op - 1])) == 0);
        if (dup || !op_live(op)) continue;
        if (!load_key(lc, op->due, op->key, op->key_len)) return false;
    }
    return true;
}

static int load_one(int64_t due, const char *uid, size_t len, void *ctx)
{
    load_ctx *lc = ctx;
    timer_op here = {.due = due, .key = uid, .key_len = (uint8_t)len};
    if (!load_ops_before(lc, &here)) return 1;
    return load_key(lc, due, uid, len) ? 0 : 1;
}

/* Reads the next slice of timers from the window's horizon on: the store's
 * index merged with the entries made since the last commit, which stay
 * pending (the commit writes them, with the users they belong to), so that
 * no record's processing writes to the store. */
int cue_task_timers_reload(cue_task *t, cue_err *err)
{
    int64_t hdue;
    const char *huid;
    size_t hlen;
    cue_timers_horizon(t->timers, &hdue, &huid, &hlen);
    char from[CUE_USER_ID_BYTES_MAX];
    memcpy(from, huid, hlen);
    load_ctx lc = {.t = t};
    if (!ops_sort(t, &lc.ops, &lc.n_ops)) {
        /* No memory to sort with: the pending entries go to the store first,
         * as they are (an entry that outlives a crash is only a lower bound
         * that comes up stale). They stay pending, each still its user's:
         * the commit writes them again, as they are then. */
        timer_ops_write(t, false);
        int rc = cue_store_batch_commit(t->store, false, err);
        if (rc != 0) return rc;
    }
    /* Pending entries before the horizon are in the window or used up. */
    timer_op h = {.due = hdue, .key = from, .key_len = (uint8_t)hlen};
    size_t lo = 0, hi = lc.n_ops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (op_order(OP_OF(lc.ops[mid]), &h) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    lc.next_op = lo;
    int rc = cue_store_timers_scan(t->store, t->partition, hdue, from, hlen, load_one, &lc);
    if (rc < 0)
        return cue_err_set(err, rc, "partition %u: cannot read the timer index", t->partition);
    if (!lc.stopped) load_ops_before(&lc, NULL);
    cue_timers_load_end(t->timers, !lc.stopped, lc.next_due, lc.next_uid, lc.next_len);
    t->stats.timer_loads++;
    return 0;
}
