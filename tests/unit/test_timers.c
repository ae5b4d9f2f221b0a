/* The timer window against a model store: whatever the capacity, popping with
 * reloads yields exactly the store's (due, user) order. */
#include "cuepoint/timers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct key {
    int64_t due;
    char uid[40];
} key;

static int key_cmp(const void *a, const void *b)
{
    const key *x = a, *y = b;
    if (x->due != y->due) return x->due < y->due ? -1 : 1;
    return strcmp(x->uid, y->uid);
}

/* The window's horizon as a key of the model. */
static key horizon_of(const cue_timers *t)
{
    int64_t due;
    const char *uid;
    size_t len;
    cue_timers_horizon(t, &due, &uid, &len);
    key k = {.due = due};
    snprintf(k.uid, sizeof k.uid, "%.*s", (int)len, uid);
    return k;
}

Test(timers, order_ties_and_horizon)
{
    cue_timers *t;
    cue_err err;
    cr_assert(cue_timers_new(&t, 16, &err) == 0);
    cr_assert_eq(cue_timers_new(&t, 4, &err), CUE_EINVAL);
    cue_timers_load_end(t, true, 0, "", 0);
    cue_timers_arm(t, 5, "b", 1);
    cue_timers_arm(t, 5, "a", 1);
    cue_timers_arm(t, -3, "z", 1);
    cue_timers_arm(t, 5, "aa", 2);
    const char *expect[] = {"z", "a", "aa", "b"};
    for (int i = 0; i < 4; i++) {
        int64_t due;
        const char *uid;
        size_t len;
        cr_assert(cue_timers_peek(t, &due, &uid, &len) == 0);
        cr_assert(len == strlen(expect[i]) && memcmp(uid, expect[i], len) == 0, "pop %d", i);
        cue_timers_pop(t);
    }
    cr_assert_eq(cue_timers_count(t), 0);
    cue_timers_free(t);
}

/* Arms n timers (dues in [-100, dues - 100), so ties), pops them all with
 * reloads from the model store, and checks the order. */
static void model_run(size_t cap, int n, unsigned dues)
{
    enum { N_MAX = 40000 };
    static key store[N_MAX];
    cr_assert(n <= N_MAX);
    const int N = n;
    unsigned seed = 99;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245 + 12345;
        store[i].due = (int64_t)((seed >> 8) % dues) - 100;
        snprintf(store[i].uid, sizeof store[i].uid, "u%d", i);
    }
    cue_timers *t;
    cue_err err;
    cr_assert(cue_timers_new(&t, cap, &err) == 0);
    /* Every timer is armed as it is written to the (model) store, as the task
     * does; the window keeps what fits and spills the rest behind its horizon. */
    cue_timers_load_end(t, true, 0, "", 0);
    for (int i = 0; i < N; i++)
        cue_timers_arm(t, store[i].due, store[i].uid, strlen(store[i].uid));
    qsort(store, N, sizeof *store, key_cmp);
    int popped = 0;
    while (popped < N) {
        int64_t due;
        const char *uid;
        size_t len;
        if (cue_timers_peek(t, &due, &uid, &len) == 0) {
            cr_assert_eq(due, store[popped].due, "pop %d: due %lld, expected %lld", popped,
                         (long long)due, (long long)store[popped].due);
            cr_assert(len == strlen(store[popped].uid) && memcmp(uid, store[popped].uid, len) == 0,
                      "pop %d: wrong user", popped);
            cue_timers_pop(t);
            popped++;
            continue;
        }
        /* Empty: reload from the model store at the horizon. */
        key from = horizon_of(t);
        int i = 0;
        while (i < N && key_cmp(&store[i], &from) < 0)
            i++;
        for (; i < N; i++)
            if (!cue_timers_load(t, store[i].due, store[i].uid, strlen(store[i].uid))) break;
        cue_timers_load_end(t, i == N, i < N ? store[i].due : 0, i < N ? store[i].uid : "",
                            i < N ? strlen(store[i].uid) : 0);
    }
    cr_assert_leq(cue_timers_count(t), cue_timers_capacity(t));
    cue_timers_free(t);
}

Test(timers, model_with_spills_and_reloads)
{
    model_run(32, 3000, 500);
}

/* A large window halved many times over dues that tie by the hundred: the
 * half kept is selected, not popped out in order, and must still be the
 * earliest half with the least of the rest as the horizon. */
Test(timers, a_large_window_halved_over_many_ties)
{
    model_run(4096, 40000, 300);
}

/* What cue_timers_hint asked for: per user (the ids are "u<n>") the call
 * that asked for each stage, 0 for not asked. */
#define HINT_USERS 64
typedef struct hints {
    int call;              /* the call under way, from 1 */
    int asked;             /* asks in this call */
    int at[HINT_USERS][2]; /* call of stage 0 and of stage 1 */
    int twice;             /* asks for a stage already asked for */
} hints;

/* The number of "u<n>" (ids in the window are not terminated). */
static int user_number(const char *uid, size_t len)
{
    int u = 0;
    for (size_t i = 1; i < len; i++)
        u = 10 * u + (uid[i] - '0');
    return u;
}

static void record_hint(const char *uid, size_t len, int stage, void *ctx)
{
    hints *h = ctx;
    int u = user_number(uid, len);
    cr_assert(len > 1 && uid[0] == 'u' && u >= 0 && u < HINT_USERS && (stage == 0 || stage == 1),
              "a hint for %.*s stage %d", (int)len, uid, stage);
    if (h->at[u][stage]) h->twice++;
    h->at[u][stage] = h->call;
    h->asked++;
}

static int hint_call(cue_timers *t, hints *h)
{
    h->call++;
    h->asked = 0;
    cue_timers_hint(t, record_hint, h);
    return h->asked;
}

/* The earliest entry's user number. */
static int earliest(const cue_timers *t)
{
    int64_t due;
    const char *uid;
    size_t len;
    cr_assert_eq(cue_timers_peek(t, &due, &uid, &len), 0);
    return user_number(uid, len);
}

/* Prefetch hints for the users of the entries near the front: three calls
 * after a change, the next to come up has had both stages, the first in an
 * earlier call (also one armed straight to the front); the heap's first
 * levels (21 entries) have had stage 0;
 * nobody is asked for a stage twice; and a call when nothing moved asks
 * for nothing. */
Test(timers, hints_reach_the_front_in_stages_and_once)
{
    cue_timers *t;
    cue_err err;
    cr_assert(cue_timers_new(&t, 64, &err) == 0);
    cue_timers_load_end(t, true, 0, "", 0);
    hints h = {0};
    cr_expect_eq(hint_call(t, &h), 0, "an empty window asked for something");
    for (int i = 0; i < 40; i++) {
        char uid[8];
        int n = snprintf(uid, sizeof uid, "u%d", (i * 17) % 40);
        cue_timers_arm(t, 1000 + (i * 7919) % 97, uid, (size_t)n);
        if (i % 5 == 0) hint_call(t, &h); /* changes between calls too */
    }
    for (int popped = 0; popped < 30; popped++) {
        for (int k = 0; k < 3; k++)
            hint_call(t, &h);
        cr_expect_eq(hint_call(t, &h), 0, "a call with nothing moved asked for something");
        int u = earliest(t);
        cr_expect(h.at[u][0] > 0 && h.at[u][1] > h.at[u][0],
                  "the next to come up (u%d) had stage 0 at call %d and stage 1 at call %d", u,
                  h.at[u][0], h.at[u][1]);
        int near = 0;
        for (int k = 0; k < HINT_USERS; k++)
            near += h.at[k][0] > 0;
        size_t front = cue_timers_count(t) < 21 ? cue_timers_count(t) : 21;
        cr_expect_geq((size_t)near, front, "only %d users had stage 0 after %d pops", near, popped);
        cue_timers_pop(t);
        if (popped % 7 == 3) cue_timers_arm(t, 900, "u50", 3); /* straight to the front */
        if (popped % 7 == 3) cr_expect_eq(earliest(t), 50);
        if (popped % 7 == 4) h.at[50][0] = h.at[50][1] = 0; /* re-armed: asked again */
    }
    cr_expect_eq(h.twice, 0, "a stage was asked for twice");
    cue_timers_free(t);
}

/* Pops the window's earliest entry, which must be the least of the model's
 * n keys, and takes that key out of the model. */
static void pop_least(cue_timers *t, key *model, size_t *n, int op)
{
    size_t least = 0;
    for (size_t i = 1; i < *n; i++)
        if (key_cmp(&model[i], &model[least]) < 0) least = i;
    int64_t due;
    const char *uid;
    size_t len;
    cr_assert_eq(cue_timers_peek(t, &due, &uid, &len), 0);
    cr_assert(due == model[least].due && len == strlen(model[least].uid) &&
                  memcmp(uid, model[least].uid, len) == 0,
              "op %d: popped %lld %.*s, the least is %lld %s", op, (long long)due, (int)len, uid,
              (long long)model[least].due, model[least].uid);
    cue_timers_pop(t);
    model[least] = model[--*n];
}

/* Arms and pops interleaved, a few levels deep, against a sorted model:
 * every pop is the model's least, ties on the due time broken by the id. */
Test(timers, interleaved_against_a_model)
{
    enum { CAP = 1024, OPS = 20000 };
    static key model[CAP];
    size_t n = 0;
    cue_timers *t;
    cue_err err;
    cr_assert(cue_timers_new(&t, CAP, &err) == 0);
    cue_timers_load_end(t, true, 0, "", 0);
    unsigned seed = 7;
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245 + 12345;
        bool arm = n == 0 || (n < CAP && (seed >> 16) % 3 != 0);
        if (arm) {
            key k = {.due = (int64_t)((seed >> 4) % 200)};
            snprintf(k.uid, sizeof k.uid, "u%u", (seed >> 9) % 5000);
            model[n++] = k;
            cue_timers_arm(t, k.due, k.uid, strlen(k.uid));
            continue;
        }
        pop_least(t, model, &n, op);
    }
    cr_assert_eq(cue_timers_count(t), n);
    cue_timers_free(t);
}

/* Many timers due at the same instant (a `local_time` timer's) for ids that
 * share a long prefix, then, with the heap full of them, ids that share
 * less of it, and ids that are a prefix of others: every pop is still the
 * model's least. */
Test(timers, ties_among_ids_that_share_a_long_prefix)
{
    enum { CAP = 1024, OPS = 30000 };
    static key model[CAP];
    static const char *const heads[] = {"customer-account-eu-", "customer-account-", "customer-",
                                        "cust", ""};
    size_t n = 0;
    cue_timers *t;
    cue_err err;
    cr_assert(cue_timers_new(&t, CAP, &err) == 0);
    cue_timers_load_end(t, true, 0, "", 0);
    unsigned seed = 11;
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245 + 12345;
        bool arm = n == 0 || (n < CAP && (seed >> 16) % 3 != 0);
        if (arm) {
            /* The heads come in one by one, each shorter than the last. */
            size_t h = (size_t)op / (OPS / 5), pick = (seed >> 20) % (h + 1);
            key k = {.due = 1000 + (int64_t)((seed >> 4) % 3)};
            if ((seed >> 11) % 16 == 0)
                snprintf(k.uid, sizeof k.uid, "%.*s", (int)((seed >> 5) % 18), heads[1]);
            else
                snprintf(k.uid, sizeof k.uid, "%s%u", heads[pick], (seed >> 9) % 5000);
            model[n++] = k;
            cue_timers_arm(t, k.due, k.uid, strlen(k.uid));
            continue;
        }
        pop_least(t, model, &n, op);
    }
    cue_timers_free(t);
}

/* Many small windows, each overfilled once with dues that tie: after the
 * halving, what the window holds comes out in key order, all of it before
 * the horizon, and every armed timer before the horizon is held. */
Test(timers, a_halved_window_holds_exactly_what_lies_before_its_horizon)
{
    unsigned seed = 7;
    for (int round = 0; round < 5000; round++) {
        size_t cap = 16 + (size_t)(round % 40);
        cue_timers *t;
        cue_err err;
        cr_assert(cue_timers_new(&t, cap, &err) == 0, "%s", err.msg);
        cue_timers_load_end(t, true, 0, "", 0);
        int n = (int)cap + 1 + round % 7;
        key armed[64];
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245 + 12345;
            armed[i].due = (int64_t)((seed >> 8) % (1 + round % 9));
            snprintf(armed[i].uid, sizeof armed[i].uid, "u%02d", i);
            cue_timers_arm(t, armed[i].due, armed[i].uid, strlen(armed[i].uid));
        }
        key horizon = horizon_of(t);
        size_t held = cue_timers_count(t), before = 0;
        for (int i = 0; i < n; i++)
            before += key_cmp(&armed[i], &horizon) < 0;
        cr_assert_eq(held, before, "round %d: %zu held, %zu armed before the horizon", round, held,
                     before);
        key prev = {.due = INT64_MIN};
        for (size_t k = 0; k < held; k++) {
            key got;
            const char *uid;
            size_t len;
            cr_assert(cue_timers_peek(t, &got.due, &uid, &len) == 0);
            snprintf(got.uid, sizeof got.uid, "%.*s", (int)len, uid);
            cr_assert(key_cmp(&prev, &got) <= 0, "round %d: out of order", round);
            cr_assert(key_cmp(&got, &horizon) < 0, "round %d: held past the horizon", round);
            prev = got;
            cue_timers_pop(t);
        }
        cue_timers_free(t);
    }
}
