/* The state cache: a bound in bytes, LRU eviction of clean entries only, dirty
 * entries flushed in key order, checked against a simple model; and who left
 * it (evicted, a deletion flushed, a clear) remembered until forgotten. */
#include "cuepoint/cache.h"

#include "cuepoint/limits.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_dirty(const char *uid, size_t len, const void *val, size_t vlen, void *ctx)
{
    (*(size_t *)ctx)++;
    return 0;
}

typedef struct flushed {
    char text[4096];
    int stop_after; /* return non-zero at this visit (1-based), or 0 */
    int visits;
} flushed;

static int on_dirty(const char *uid, size_t len, const void *val, size_t vlen, void *ctx)
{
    flushed *f = ctx;
    if (++f->visits == f->stop_after) return 7;
    char one[64];
    snprintf(one, sizeof one, "%.*s=%.*s;", (int)len, uid, val ? (int)vlen : 4,
             val ? (const char *)val : "null");
    strcat(f->text, one);
    return 0;
}

Test(cache, hits_misses_and_flush_order)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    const void *v;
    size_t n;
    cr_assert_eq(cue_cache_get(c, "a", 1, &v, &n, NULL), CUE_ENOTFOUND);
    cr_assert(cue_cache_put(c, "c", 1, "3", 1, 0, true) == 0);
    cr_assert(cue_cache_put(c, "a", 1, "1", 1, 0, true) == 0);
    cr_assert(cue_cache_put(c, "b", 1, "2", 1, 0, false) == 0);
    cr_assert(cue_cache_put(c, "ab", 2, NULL, 0, 0, true) == 0);
    cr_assert(cue_cache_get(c, "ab", 2, &v, &n, NULL) == 0 && v == NULL, "a deletion is a hit");
    cr_assert(cue_cache_put(c, "a", 1, "one-but-longer-than-before", 26, 0, true) == 0);
    flushed f = {.stop_after = 2};
    cr_assert_eq(cue_cache_flush(c, on_dirty, &f), 7, "a failing callback stops the flush");
    memset(&f, 0, sizeof f);
    cr_assert(cue_cache_flush(c, on_dirty, &f) == 0);
    cr_assert_str_eq(f.text, "a=one-but-longer-than-before;ab=null;c=3;", "key order");
    memset(&f, 0, sizeof f);
    cr_assert(cue_cache_flush(c, on_dirty, &f) == 0);
    cr_assert_str_eq(f.text, "", "flushed entries are clean");
    cr_assert_eq(cue_cache_get(c, "ab", 2, &v, &n, NULL), CUE_ENOTFOUND,
                 "a flushed deletion is gone");
    cr_assert(cue_cache_get(c, "b", 1, &v, &n, NULL) == 0 && n == 1 && memcmp(v, "2", 1) == 0);
    cue_cache_stats st;
    cue_cache_stats_get(c, &st);
    cr_assert_eq(st.entries, 3);
    cr_assert_eq(st.dirty_bytes, 0);
    cue_cache_free(c);
}

/* A flush whose callback fails after some visits (a deletion among them)
 * leaves every entry as it was: dirty, with its owner's word, the deletion
 * still there; the next flush visits them all in order. Many entries, so
 * that the failure falls in the middle of a long run. */
Test(cache, a_failed_flush_marks_nothing_clean)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    char key[16];
    for (int i = 0; i < 300; i++) {
        int klen = snprintf(key, sizeof key, "u%03d", i);
        if (i % 7 == 3)
            cr_assert(cue_cache_put(c, key, (size_t)klen, NULL, 0, (uint32_t)i + 1, true) == 0);
        else
            cr_assert(
                cue_cache_put(c, key, (size_t)klen, key, (size_t)klen, (uint32_t)i + 1, true) == 0);
    }
    cue_cache_stats before;
    cue_cache_stats_get(c, &before);
    size_t visits = 0;
    for (int stop = 1; stop <= 300; stop += 37) {
        flushed f = {.stop_after = stop};
        cr_assert_eq(cue_cache_flush(c, on_dirty, &f), 7);
        cue_cache_stats st;
        cue_cache_stats_get(c, &st);
        cr_assert_eq(st.entries, before.entries, "stop %d: an entry went", stop);
        cr_assert_eq(st.dirty_bytes, before.dirty_bytes, "stop %d: dirty bytes changed", stop);
        for (int i = 0; i < 300; i++) {
            int klen = snprintf(key, sizeof key, "u%03d", i);
            const void *v;
            size_t n;
            uint32_t aux = 0;
            cr_assert(cue_cache_peek(c, key, (size_t)klen, &v, &n, &aux) == 0);
            cr_assert_eq(aux, (uint32_t)i + 1, "stop %d: %s lost its word", stop, key);
            if (i % 7 == 3)
                cr_assert_null(v, "stop %d: %s is no longer a deletion", stop, key);
            else
                cr_assert(v && n == (size_t)klen && memcmp(v, key, n) == 0);
        }
    }
    cr_assert(cue_cache_flush(c, count_dirty, &visits) == 0);
    cr_assert_eq(visits, 300, "every entry is visited after the failures");
    visits = 0;
    cr_assert(cue_cache_flush(c, count_dirty, &visits) == 0);
    cr_assert_eq(visits, 0, "and then clean");
    cue_cache_stats st;
    cue_cache_stats_get(c, &st);
    cr_assert_eq(st.entries, 300 - 43, "the 43 deletions are gone, the rest kept");
    cr_assert_eq(st.dirty_bytes, 0);
    const void *v;
    size_t n;
    uint32_t aux = 5;
    cr_assert(cue_cache_get(c, "u000", 4, &v, &n, &aux) == 0 && aux == 0, "clean: no word");
    cue_cache_free(c);
}

/* Random puts, gets and flushes against a model: everything dirty or
 * recently read is still there, bytes never pass the budget, and a full cache
 * says so instead of dropping dirty data. */
Test(cache, the_owners_word_lasts_until_the_entry_is_flushed)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    const void *v;
    size_t n;
    uint32_t aux = 99;
    cr_assert(cue_cache_put(c, "u", 1, "1", 1, 7, true) == 0);
    cr_assert(cue_cache_get(c, "u", 1, &v, &n, &aux) == 0 && aux == 7);
    /* A value of another size class moves the entry to another blob. */
    char big[1500];
    memset(big, 'x', sizeof big);
    cr_assert(cue_cache_put(c, "u", 1, big, sizeof big, 8, true) == 0);
    cr_assert(cue_cache_peek(c, "u", 1, &v, &n, &aux) == 0 && aux == 8 && n == sizeof big);
    cr_assert(cue_cache_put(c, "u", 1, NULL, 0, 9, true) == 0);
    cr_assert(cue_cache_get(c, "u", 1, &v, &n, &aux) == 0 && v == NULL && aux == 9,
              "a deletion keeps it too");
    cr_assert(cue_cache_put(c, "w", 1, "2", 1, 5, true) == 0);
    cr_assert(cue_cache_flush(c, count_dirty, &n) == 0);
    cr_assert(cue_cache_get(c, "w", 1, &v, &n, &aux) == 0 && aux == 0, "flushed clean: %u", aux);
    cue_cache_free(c);
}

Test(cache, a_prefetch_changes_nothing)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    char key[16], val[200];
    memset(val, 'v', sizeof val);
    size_t fits = 0;
    /* Clean entries until the first eviction: the LRU order is then in use. */
    for (int i = 0;; i++) {
        int klen = snprintf(key, sizeof key, "u%d", i);
        cr_assert(cue_cache_put(c, key, (size_t)klen, val, sizeof val, 0, false) == 0);
        cue_cache_stats st;
        cue_cache_stats_get(c, &st);
        if (st.evictions > 0) {
            fits = (size_t)i;
            break;
        }
    }
    cue_cache_stats before, after;
    cue_cache_stats_get(c, &before);
    /* The oldest left, and keys never put: a prefetch must not make the
     * oldest recent (it would be evicted next, as before) nor count. */
    for (int stage = 0; stage < 2; stage++) {
        for (size_t i = 0; i <= fits; i++) {
            int klen = snprintf(key, sizeof key, "u%zu", i);
            cue_cache_prefetch(c, key, (size_t)klen, stage);
        }
        cue_cache_prefetch(c, "absent", 6, stage);
    }
    cue_cache_stats_get(c, &after);
    cr_assert(after.hits == before.hits && after.misses == before.misses &&
              after.entries == before.entries && after.evictions == before.evictions);
    const void *v;
    size_t n;
    /* u0 was evicted; u1 is the least recent: the next put evicts it. */
    cr_assert(cue_cache_peek(c, "u1", 2, &v, &n, NULL) == 0);
    cr_assert(cue_cache_put(c, "new", 3, val, sizeof val, 0, false) == 0);
    cr_assert_eq(cue_cache_peek(c, "u1", 2, &v, &n, NULL), CUE_ENOTFOUND,
                 "the prefetch touched the recency order");
    cue_cache_free(c);
}

Test(cache, model_check_with_a_fixed_seed)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    enum { USERS = 4000 };
    static int model[USERS]; /* value length written last, 0 = never */
    static bool dirty[USERS];
    static char val[4096];
    memset(val, 'v', sizeof val);
    unsigned seed = 12345;
    size_t fulls = 0, evictions_seen = 0;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245 + 12345;
        int u = (int)((seed >> 8) % USERS), op = (int)((seed >> 4) % 16);
        char key[16];
        int klen = snprintf(key, sizeof key, "user-%d", u);
        if (op < 6) {
            size_t vlen = 50 + (seed >> 20) % 2000;
            int rc = cue_cache_put(c, key, (size_t)klen, val, vlen, 0, true);
            if (rc == CUE_EFULL) {
                fulls++;
                size_t n = 0;
                cr_assert(cue_cache_flush(c, count_dirty, &n) == 0);
                memset(dirty, 0, sizeof dirty);
                rc = cue_cache_put(c, key, (size_t)klen, val, vlen, 0, true);
            }
            cr_assert(rc == 0, "put after flush failed: %d", rc);
            model[u] = (int)vlen;
            dirty[u] = true;
        } else if (op < 15) {
            const void *v;
            size_t n;
            int rc = cue_cache_get(c, key, (size_t)klen, &v, &n, NULL);
            if (dirty[u]) cr_assert(rc == 0 && (int)n == model[u], "dirty entry %d lost", u);
            if (rc == 0)
                cr_assert_eq((int)n, model[u], "entry %d has a stale value", u);
            else
                evictions_seen++;
        } else if ((seed >> 12) % 64 == 0 && cue_cache_should_flush(c)) {
            size_t n = 0;
            cue_cache_flush(c, count_dirty, &n);
            memset(dirty, 0, sizeof dirty);
        }
        cue_cache_stats st;
        cue_cache_stats_get(c, &st);
        cr_assert_leq(st.bytes, st.max_bytes, "over budget at step %d", step);
    }
    cr_assert_gt(evictions_seen, 0, "the test never exercised eviction");
    cr_assert_gt(fulls, 0, "the test never filled the cache with dirty entries");
    cue_cache_free(c);
}

/* A caller that cannot commit in the middle of a step (exactly-once) puts
 * past the budget; the entry is there, dirty, and a flush brings the cache
 * back under its budget. */
Test(cache, put_over_goes_past_a_full_budget_until_the_flush)
{
    cue_cache *c = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err), 0);
    static char val[2000];
    memset(val, 'v', sizeof val);
    char key[32];
    int n = 0, rc = 0;
    for (; n < 100000; n++) {
        int klen = snprintf(key, sizeof key, "user-%d", n);
        if ((rc = cue_cache_put(c, key, (size_t)klen, val, sizeof val, 0, true)) != 0) break;
    }
    cr_assert_eq(rc, CUE_EFULL, "a budget of dirty entries never filled (%d puts)", n);
    int klen = snprintf(key, sizeof key, "user-%d", n);
    cue_cache_stats before, after;
    cue_cache_stats_get(c, &before);
    cr_assert_eq(cue_cache_put_over(c, key, (size_t)klen, val, sizeof val, 0), 0);
    cue_cache_stats_get(c, &after);
    cr_assert_gt(after.dirty_bytes, before.dirty_bytes, "the put did not add to a full budget");
    cr_assert_eq(after.entries, before.entries + 1, "the put evicted or replaced an entry");
    const void *got = NULL;
    size_t got_len = 0;
    cr_assert_eq(cue_cache_get(c, key, (size_t)klen, &got, &got_len, NULL), 0);
    cr_assert_eq(got_len, sizeof val);
    cue_cache_free(c);
}

/* Who left since the last forget: every evicted key and every flushed
 * deletion says "maybe"; keys that never left seldom do (a filter); a clear
 * makes every key "maybe"; a forget none. */
Test(cache, who_left_is_remembered_until_forgotten)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    cr_assert(!cue_cache_left_maybe(c, "x", 1), "an empty cache says someone left");
    char val[1000], key[32];
    memset(val, 'v', sizeof val);
    size_t n_put = 0;
    while (cue_cache_evictions(c) < 50) { /* clean entries, pushed out by later ones */
        int len = snprintf(key, sizeof key, "user-%zu", n_put++);
        cr_assert(cue_cache_put(c, key, (size_t)len, val, sizeof val, 0, false) == 0);
    }
    size_t evicted = 0;
    for (size_t i = 0; i < n_put; i++) {
        int len = snprintf(key, sizeof key, "user-%zu", i);
        const void *v;
        size_t vlen;
        if (cue_cache_get(c, key, (size_t)len, &v, &vlen, NULL) == 0) continue;
        evicted++;
        cr_expect(cue_cache_left_maybe(c, key, (size_t)len), "%s was evicted: no 'maybe'", key);
    }
    cr_assert_eq(evicted, cue_cache_evictions(c));
    size_t false_maybe = 0;
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(key, sizeof key, "never-%d", i);
        false_maybe += cue_cache_left_maybe(c, key, (size_t)len);
    }
    cr_expect_leq(false_maybe, 5, "%zu of 1000 keys that never left say 'maybe'", false_maybe);

    cue_cache_left_forget(c);
    cr_expect(!cue_cache_left_maybe(c, "user-0", 6), "forgotten, user-0 still 'maybe'");
    cr_assert(cue_cache_put(c, "gone", 4, "1", 1, 0, true) == 0);
    cr_assert(cue_cache_put(c, "gone", 4, NULL, 0, 0, true) == 0);
    cr_expect(!cue_cache_left_maybe(c, "gone", 4), "a deletion not yet flushed has not left");
    size_t visits = 0;
    cr_assert(cue_cache_flush(c, count_dirty, &visits) == 0);
    cr_expect(cue_cache_left_maybe(c, "gone", 4), "a flushed deletion left the cache");
    cue_cache_left_forget(c);
    cue_cache_clear(c);
    cr_expect(cue_cache_left_maybe(c, "anyone", 6), "after a clear, anyone may have left");
    cue_cache_left_forget(c);
    cr_expect(!cue_cache_left_maybe(c, "anyone", 6));
    cue_cache_free(c);
}

/* The visit of the changed users, for the order test below: each key after
 * the one before it (user id bytes, a shorter prefix first). */
typedef struct order_seen {
    char last[CUE_USER_ID_BYTES_MAX];
    size_t last_len, n;
    bool ordered;
    uint64_t sum; /* of the keys' first bytes and lengths, to compare two visits */
} order_seen;

static int check_order(const char *uid, size_t len, const void *val, size_t vlen, void *ctx)
{
    (void)val;
    (void)vlen;
    order_seen *o = ctx;
    if (o->n > 0) {
        size_t m = len < o->last_len ? len : o->last_len;
        int c = memcmp(o->last, uid, m);
        if (c > 0 || (c == 0 && o->last_len >= len)) o->ordered = false;
    }
    memcpy(o->last, uid, len);
    o->last_len = len;
    o->n++;
    o->sum = o->sum * 31 + (unsigned char)uid[len - 1] + len;
    return 0;
}

/* Puts 3000 dirty users whose ids are `prefix` (cut to a random length of
 * at least `min` bytes) then random bytes, NUL among them, up to `max`
 * bytes; checks that the visit and the flush go in key order, the same order
 * both times. */
static void check_visit_order(const char *prefix, size_t min, size_t max)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, 64u << 20, &err) == 0);
    size_t plen = strlen(prefix);
    unsigned seed = 7;
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245 + 12345;
        char key[CUE_USER_ID_BYTES_MAX];
        size_t len = min + (seed >> 8) % (max - min + 1);
        /* The prefix up to a few bytes before the id's end, then random. */
        size_t tail = (seed >> 4) % 10, cut = len > tail ? len - tail : 0;
        if (cut > plen) cut = plen;
        unsigned r = seed;
        for (size_t k = 0; k < len; k++) {
            r = r * 1103515245 + 12345;
            key[k] = k < cut ? prefix[k] : (char)((r >> 16) % 3 == 0 ? '\0' : '0' + (r >> 20) % 4);
        }
        cr_assert(cue_cache_put(c, key, len, "v", 1, 0, true) == 0);
    }
    cue_cache_stats st;
    cue_cache_stats_get(c, &st);
    cr_assert_gt(st.entries, 500, "too few distinct ids: %zu", st.entries);
    order_seen a = {.ordered = true}, b = {.ordered = true};
    cr_assert(cue_cache_visit_dirty(c, check_order, &a) == 0);
    cr_expect(a.ordered, "the visit is not in key order (prefix %s)", prefix);
    cr_expect_eq(a.n, st.entries);
    cr_assert(cue_cache_flush(c, check_order, &b) == 0);
    cr_expect(b.ordered, "the flush is not in key order (prefix %s)", prefix);
    cr_expect_eq(b.n, a.n);
    cr_expect_eq(b.sum, a.sum, "the flush visited in another order than the visit");
    cue_cache_free(c);
}

/* Ids that share their first eight bytes or more (generated ids do), of
 * every length around 8 and 16, some with NUL bytes. */
Test(cache, changed_users_with_common_prefixes_are_visited_in_key_order)
{
    check_visit_order("lu000000", 6, 19);
}

/* Ids with a long common prefix, as "customer-account-..." ids have: the
 * runs that tie on sixteen bytes and more, up to the longest id. */
Test(cache, changed_users_with_long_common_prefixes_are_visited_in_key_order)
{
    check_visit_order("customer-account-region-eu-west-1/", 20, 44);
    static char longest[CUE_USER_ID_BYTES_MAX + 1];
    memset(longest, 'x', CUE_USER_ID_BYTES_MAX);
    check_visit_order(longest, CUE_USER_ID_BYTES_MAX - 12, CUE_USER_ID_BYTES_MAX);
}

/* A step looks its user up, then puts the user's new state: the put writes
 * into the entry the look-up found when the state's size class is the same,
 * and never into one that left the cache in between. */
/* A state a little smaller than its blob stays in it: no new memory, and
 * what is read back is what was put. One much smaller moves to a blob of
 * its size, and a blob of the doubled classes is not kept for a smaller
 * value. Sizes are in 64-byte classes. */
Test(cache, a_state_that_shrinks_a_little_keeps_its_blob)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    static char val[8192];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (char)('a' + i % 23);
    const void *v;
    size_t n;
    cue_cache_stats st;
    cr_assert(cue_cache_put(c, "u", 1, val, 600, 0, true) == 0);
    cue_cache_stats_get(c, &st);
    size_t held = st.bytes;

    /* 64 bytes smaller: the same blob, in place, from either path (after a
     * look-up, and without one). */
    cr_assert(cue_cache_get(c, "u", 1, &v, &n, NULL) == 0);
    cr_assert(cue_cache_put(c, "u", 1, val + 1, 536, 0, true) == 0);
    cue_cache_stats_get(c, &st);
    cr_assert_eq(st.bytes, held, "a state one class smaller took a new blob");
    cr_assert(cue_cache_get(c, "u", 1, &v, &n, NULL) == 0 && n == 536 &&
              memcmp(v, val + 1, 536) == 0);
    cr_assert(cue_cache_put(c, "u", 1, val + 2, 600, 0, true) == 0); /* back: no look-up */
    cr_assert(cue_cache_put(c, "u", 1, val + 3, 540, 0, true) == 0);
    cue_cache_stats_get(c, &st);
    cr_assert_eq(st.bytes, held, "growing back into its own blob took a new one");
    cr_assert(cue_cache_get(c, "u", 1, &v, &n, NULL) == 0 && n == 540 &&
              memcmp(v, val + 3, 540) == 0);
    cr_assert_eq(st.entries, 1);

    /* Two classes smaller: a blob of its own class, new memory. */
    cr_assert(cue_cache_put(c, "u", 1, val + 4, 400, 0, true) == 0);
    cue_cache_stats_get(c, &st);
    cr_assert_gt(st.bytes, held, "a state two classes smaller stayed in its blob");
    cr_assert(cue_cache_get(c, "u", 1, &v, &n, NULL) == 0 && n == 400 &&
              memcmp(v, val + 4, 400) == 0);

    /* Past the 64-byte steps (2 KiB) classes double: a 5 KiB state in an
     * 8 KiB blob would waste too much, so it moves. */
    cr_assert(cue_cache_put(c, "w", 1, val, 8000, 0, true) == 0);
    cue_cache_stats_get(c, &st);
    held = st.bytes;
    cr_assert(cue_cache_get(c, "w", 1, &v, &n, NULL) == 0);
    cr_assert(cue_cache_put(c, "w", 1, val + 5, 3000, 0, true) == 0);
    cue_cache_stats_get(c, &st);
    cr_assert_gt(st.bytes, held, "a state half its doubled blob's size stayed in it");
    cr_assert(cue_cache_get(c, "w", 1, &v, &n, NULL) == 0 && n == 3000 &&
              memcmp(v, val + 5, 3000) == 0);

    flushed f = {0};
    cr_assert(cue_cache_flush(c, on_dirty, &f) == 0);
    cr_assert_eq(f.visits, 2, "u and w, once each");
    cue_cache_free(c);
}

Test(cache, a_put_after_its_look_up_lands_in_the_users_own_entry)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, CUE_CACHE_BYTES_MIN, &err) == 0);
    const void *v;
    size_t n;
    cr_assert(cue_cache_put(c, "a", 1, "1111", 4, 0, false) == 0);
    cr_assert(cue_cache_put(c, "b", 1, "bbbb", 4, 0, false) == 0);

    /* In place: the same class, now dirty, counted once. */
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, NULL) == 0);
    cr_assert(cue_cache_put(c, "a", 1, "2222", 4, 9, true) == 0);
    uint32_t aux = 0;
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, &aux) == 0 && n == 4 && memcmp(v, "2222", 4) == 0);
    cr_assert_eq(aux, 9);
    cr_assert(cue_cache_put(c, "a", 1, "3333", 4, 9, true) == 0);
    cue_cache_stats st;
    cue_cache_stats_get(c, &st);
    cr_assert_eq(st.entries, 2);
    size_t one_dirty = st.dirty_bytes;
    cr_assert_gt(one_dirty, 0);

    /* Another user's put after a's look-up leaves a alone. */
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, NULL) == 0);
    cr_assert(cue_cache_put(c, "b", 1, "BBBB", 4, 0, true) == 0);
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, NULL) == 0 && memcmp(v, "3333", 4) == 0);
    cr_assert(cue_cache_get(c, "b", 1, &v, &n, NULL) == 0 && memcmp(v, "BBBB", 4) == 0);
    cue_cache_stats_get(c, &st);
    cr_assert_eq(st.dirty_bytes, 2 * one_dirty, "each dirty entry counted once");

    /* A larger state moves to a blob of its class. */
    static char big[1000];
    memset(big, 'x', sizeof big);
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, NULL) == 0);
    cr_assert(cue_cache_put(c, "a", 1, big, sizeof big, 0, true) == 0);
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, NULL) == 0 && n == sizeof big);
    flushed f = {0};
    cr_assert(cue_cache_flush(c, on_dirty, &f) == 0);
    cr_assert_eq(f.visits, 2, "a and b, once each");

    /* a leaves the cache after its look-up (evicted by other users' clean
     * states of another class, so its blob waits unused in its free
     * list): its put makes a new entry rather than writing there. */
    cr_assert(cue_cache_put(c, "a", 1, "4444", 4, 0, false) == 0);
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, NULL) == 0);
    char key[16];
    for (int i = 0; cue_cache_peek(c, "a", 1, &v, &n, NULL) == 0; i++) {
        cr_assert_lt(i, 100000, "a was never evicted");
        int klen = snprintf(key, sizeof key, "k%d", i);
        cr_assert(cue_cache_put(c, key, (size_t)klen, big, sizeof big, 0, false) == 0);
    }
    cr_assert(cue_cache_put(c, "a", 1, "5555", 4, 0, true) == 0);
    cr_assert(cue_cache_get(c, "a", 1, &v, &n, NULL) == 0 && n == 4 && memcmp(v, "5555", 4) == 0,
              "the put after an eviction is found");
    memset(&f, 0, sizeof f);
    cr_assert(cue_cache_flush(c, on_dirty, &f) == 0);
    cr_assert_str_eq(f.text, "a=5555;");
    cue_cache_free(c);
}

/* Growing the table moves every entry by its slot's stored hash, and
 * evicting closes each gap by it: many users, a table doubled many times
 * and evictions all along, and still every user in the cache is found with
 * its own value, the most recent ones all there, and none found twice. */
Test(cache, a_table_grown_many_times_while_evicting_finds_every_user)
{
    cue_cache *c;
    cue_err err;
    cr_assert(cue_cache_new(&c, 8u << 20, &err) == 0, "%s", err.msg);
    enum { USERS = 200000, RECENT = 20000 };
    char key[24], val[24];
    for (int u = 0; u < USERS; u++) {
        int kl = snprintf(key, sizeof key, "user-%d", u);
        int vl = snprintf(val, sizeof val, "v%d", u * 7);
        cr_assert(cue_cache_put(c, key, (size_t)kl, val, (size_t)vl, 0, false) == 0, "put %d", u);
    }
    cue_cache_stats st;
    cue_cache_stats_get(c, &st);
    cr_assert_gt(st.evictions, 0, "the test never evicted");
    cr_assert_gt(st.entries, (size_t)RECENT, "only %zu entries stayed", st.entries);
    size_t found = 0;
    for (int u = 0; u < USERS; u++) {
        int kl = snprintf(key, sizeof key, "user-%d", u);
        int vl = snprintf(val, sizeof val, "v%d", u * 7);
        const void *v;
        size_t n;
        int rc = cue_cache_peek(c, key, (size_t)kl, &v, &n, NULL);
        if (u >= USERS - RECENT) cr_assert_eq(rc, 0, "recent user %d not found", u);
        if (rc != 0) continue;
        found++;
        cr_assert(n == (size_t)vl && memcmp(v, val, n) == 0, "user %d has another's value", u);
    }
    cr_assert_eq(found, st.entries, "%zu users found, the cache holds %zu", found, st.entries);
    cue_cache_free(c);
}
