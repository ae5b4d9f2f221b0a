/* The generator: the same seed gives the same bytes, events are in time
 * order but for shifts within the allowed lateness, and every journey's
 * events appear; consent events (opt-in) change nothing else. */
#include "cuepoint/gen.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run(uint64_t seed, cue_buf *all, int64_t *max_back, size_t *types_seen)
{
    cue_gen *g;
    cue_err err;
    cr_assert(
        cue_gen_new(&g,
                    &(cue_gen_opts){
                        .seed = seed, .users = 200, .events = 3000, .start_ms = 1767603600000LL},
                    &err) == 0);
    cue_buf b;
    cue_buf_init(&b, 256);
    int64_t ts, stream = INT64_MIN;
    *max_back = 0;
    const char *types[] = {"signed_up",        "file_uploaded", "member_invited",
                           "project_exported", "deadline_set",  "project_delivered",
                           "comment_added"};
    memset(types_seen, 0, 7 * sizeof *types_seen);
    while (cue_gen_next(g, &b, &ts) == 1) {
        cue_buf_append(all, b.data, b.len);
        cue_buf_append_char(all, '\n');
        if (stream != INT64_MIN && stream - ts > *max_back) *max_back = stream - ts;
        if (ts > stream) stream = ts;
        for (int k = 0; k < 7; k++)
            if (strstr(b.data, types[k])) types_seen[k]++;
    }
    cue_buf_deinit(&b);
    cue_gen_free(g);
}

Test(gen, deterministic_ordered_and_complete)
{
    cue_buf a, b;
    cue_buf_init(&a, 1 << 20);
    cue_buf_init(&b, 1 << 20);
    int64_t back;
    size_t seen[7];
    run(5, &a, &back, seen);
    run(5, &b, &back, seen);
    cr_assert(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "same seed, other bytes");
    cr_assert_leq(back, 20 * 60000 + 60 * 60000, "an event more than the lateness behind");
    cr_assert_gt(back, 0, "no event out of order: the lateness path is not exercised");
    for (int k = 0; k < 7; k++)
        cr_assert_gt(seen[k], 0, "event type %d never generated", k);
    cue_buf_reset(&b);
    run(6, &b, &back, seen);
    cr_assert(a.len != b.len || memcmp(a.data, b.data, a.len) != 0, "the seed is ignored");
    cue_buf_deinit(&a);
    cue_buf_deinit(&b);
}

/* Lines of a stream, from the event type on (the event id counts every event,
 * so it moves when consent events are added). */
static size_t product_lines(cue_gen *g, cue_buf *all, size_t *consent, size_t *grants)
{
    cue_buf b;
    cue_buf_init(&b, 256);
    int64_t ts;
    size_t n = 0;
    while (cue_gen_next(g, &b, &ts) == 1) {
        cue_buf_append_char(&b, '\0');
        if (strstr(b.data, "\"consent_changed\"") || strstr(b.data, "\"channel_muted\"")) {
            (*consent)++;
            *grants += strstr(b.data, "\"granted\":true") != NULL;
            continue;
        }
        cue_buf_append_str(all, strstr(b.data, "\"type\""));
        cue_buf_append_char(all, '\n');
        n++;
    }
    cue_buf_deinit(&b);
    return n;
}

Test(gen, consent_events_leave_the_product_events_alone)
{
    cue_gen_opts o = {.seed = 9, .users = 300, .events = 4000, .start_ms = 1767603600000LL};
    cue_gen *g;
    cue_err err;
    cue_buf plain, with;
    cue_buf_init(&plain, 1 << 20);
    cue_buf_init(&with, 1 << 20);
    size_t c0 = 0, c1 = 0, grants0 = 0, grants1 = 0;
    cr_assert(cue_gen_new(&g, &o, &err) == 0);
    size_t n0 = product_lines(g, &plain, &c0, &grants0);
    cue_gen_free(g);
    o.consent = true;
    cr_assert(cue_gen_new(&g, &o, &err) == 0);
    size_t n1 = product_lines(g, &with, &c1, &grants1);
    cue_gen_free(g);
    cr_assert_eq(c0, 0, "consent events without the option");
    cr_assert_gt(c1, 0, "no consent events with the option");
    cr_assert_gt(grants1, 0, "no consent granted");
    cr_assert_eq(n0, n1 + c1, "the count limit counts every event");
    /* The shorter stream is a prefix of the longer one. */
    cr_assert(with.len <= plain.len && memcmp(with.data, plain.data, with.len) == 0,
              "product events changed when consent events were added");
    cue_buf_deinit(&plain);
    cue_buf_deinit(&with);
}

Test(gen, consent_only_in_the_opt_in_region_is_granted)
{
    cue_gen *g;
    cue_err err;
    cr_assert(cue_gen_new(&g,
                          &(cue_gen_opts){.seed = 3,
                                          .users = 400,
                                          .events = 6000,
                                          .start_ms = 1767603600000LL,
                                          .consent = true},
                          &err) == 0);
    cue_buf b;
    cue_buf_init(&b, 256);
    static char region[400]; /* 'E' for EU users, from their sign-up */
    int64_t ts;
    size_t granted = 0;
    while (cue_gen_next(g, &b, &ts) == 1) {
        cue_buf_append_char(&b, '\0');
        unsigned idx;
        cr_assert(sscanf(strstr(b.data, "\"user_id\":\"u"), "\"user_id\":\"u%u", &idx) == 1);
        if (strstr(b.data, "\"signed_up\""))
            region[idx] = strstr(b.data, "\"region\":\"EU\"") ? 'E' : 'o';
        if (strstr(b.data, "\"granted\":true")) {
            cr_assert_eq(region[idx], 'E', "a grant outside the opt-in region: %s", b.data);
            granted++;
        }
    }
    cr_assert_gt(granted, 0);
    cue_buf_deinit(&b);
    cue_gen_free(g);
}

/* ---- the planted history ------------------------------------------------- */

/* A holdout of about a tenth, by the user id's last digit. */
static bool tenth(const char *user, size_t len, void *ctx)
{
    (void)ctx;
    return user[len - 1] == '7';
}

typedef struct recount {
    int64_t signup[2000], upload[2000], exported[2000];
    bool withdrew[2000], muted[2000];
} recount;

/* Reads the planted stream back: each user's sign-up, first upload, export,
 * withdrawal and mute; the stream is in time order. */
static void plant_read(uint64_t seed, size_t users, recount *rc, cue_buf *all, cue_buf *truth)
{
    cue_gen_plant_opts o;
    cue_gen_plant_defaults(&o);
    o.seed = seed;
    o.users = users;
    o.holdout = tenth;
    cue_gen_plant *g;
    cue_err err;
    cr_assert_eq(cue_gen_plant_new(&g, &o, &err), 0, "%s", err.msg);
    cue_buf b;
    cue_buf_init(&b, 256);
    int64_t ts, last = INT64_MIN;
    while (cue_gen_plant_next(g, &b, &ts) == 1) {
        cr_assert_geq(ts, last, "out of time order: %s", b.data);
        last = ts;
        cue_buf_append(all, b.data, b.len);
        cue_buf_append_char(all, '\n');
        unsigned idx;
        cr_assert(sscanf(strstr(b.data, "\"user_id\":\"u"), "\"user_id\":\"u%u", &idx) == 1);
        if (strstr(b.data, "\"signed_up\"")) rc->signup[idx] = ts;
        if (strstr(b.data, "\"file_uploaded\"") && rc->upload[idx] == 0) rc->upload[idx] = ts;
        if (strstr(b.data, "\"project_exported\"")) rc->exported[idx] = ts;
        if (strstr(b.data, "\"granted\":false")) rc->withdrew[idx] = true;
        if (strstr(b.data, "\"muted\":true")) rc->muted[idx] = true;
    }
    cue_gen_plant_truth(g, "exp", truth);
    cue_buf_deinit(&b);
    cue_gen_plant_free(g);
}

static long long truth_num(const char *truth, const char *key)
{
    const char *p = strstr(truth, key);
    cr_assert(p != NULL, "no %s in the truth: %s", key, truth);
    return strtoll(p + strlen(key), NULL, 10);
}

Test(gen, planted_history_keeps_its_promises)
{
    static recount rc;
    cue_buf all, again, truth, t2;
    cue_buf_init(&all, 1 << 20);
    cue_buf_init(&again, 1 << 20);
    cue_buf_init(&truth, 1024);
    cue_buf_init(&t2, 1024);
    plant_read(9, 2000, &rc, &all, &truth);
    static recount unused;
    plant_read(9, 2000, &unused, &again, &t2);
    cr_assert(all.len == again.len && memcmp(all.data, again.data, all.len) == 0,
              "the same seed, other bytes");
    /* Recounted from the events, as the journeys will see them: a user is
     * exposed (the 72 h stall fires) when no upload came within 72 h. */
    const int64_t stall = 72 * 3600000LL, week = 7 * 86400000LL;
    long long exposed = 0, holdout = 0, late = 0, completers = 0, muted = 0, withdrew = 0;
    for (unsigned u = 0; u < 2000; u++) {
        char id[16];
        snprintf(id, sizeof id, "u%07u", u);
        bool stalled = rc.upload[u] == 0 || rc.upload[u] - rc.signup[u] > stall;
        exposed += stalled;
        holdout += stalled && tenth(id, strlen(id), NULL);
        late += rc.exported[u] && rc.exported[u] - rc.signup[u] > week;
        completers += rc.exported[u] != 0;
        muted += rc.muted[u];
        withdrew += rc.withdrew[u];
        cr_assert(!rc.withdrew[u] || (stalled && !tenth(id, strlen(id), NULL)),
                  "%s withdrew without a nudge", id);
    }
    cr_assert_eq(late, 0, "an onboarding completed after 7 days");
    cr_assert_eq(truth_num(truth.data, "\"exposed\":"), exposed);
    cr_assert_eq(truth_num(truth.data, "\"holdout\":"), holdout);
    cr_assert_eq(truth_num(truth.data, "\"completers\":"), completers);
    cr_assert_eq(truth_num(truth.data, "\"muted\":"), muted);
    cr_assert_eq(truth_num(truth.data, "\"followed\":"), withdrew);
    cr_assert_gt(holdout, 50);
    cr_assert_gt(exposed, 500);
    cue_buf_deinit(&all);
    cue_buf_deinit(&again);
    cue_buf_deinit(&truth);
    cue_buf_deinit(&t2);
}
