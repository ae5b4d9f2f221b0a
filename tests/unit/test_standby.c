/* Standby placement: every reader of the same member records decides the same
 * copies, never on the owner, spread evenly, moved as little as possible;
 * liveness, tombstones and conflicting claims; bad records refused. */
#include "cuepoint/standby.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define NP  64
#define NOW 1000000

/* Writes `name`'s record (owning `owned`) into view `m` at `offset`. */
static void put(cue_members *m, const char *name, const int32_t *owned, size_t n, int64_t ts,
                int64_t offset)
{
    cue_buf b;
    cr_assert_eq(cue_buf_init(&b, 64), 0);
    cr_assert_eq(cue_members_encode(name, owned, n, ts, 10000, &b), 0);
    cue_err err = {0};
    cr_assert_eq(cue_members_apply(m, name, strlen(name), b.data, b.len, offset, &err), 0, "%s",
                 err.msg);
    cue_buf_deinit(&b);
}

/* Four instances, partition p owned by instance p % 4; each reader's view
 * gets the same records. */
static cue_members *cluster(const char *self, int members, int64_t ts)
{
    cue_members *m = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_members_new(&m, NP, self, &err), 0);
    for (int i = 0; i < members; i++) {
        int32_t owned[NP];
        size_t n = 0;
        for (int32_t p = 0; p < NP; p++)
            if (p % members == i) owned[n++] = p;
        char name[32];
        snprintf(name, sizeof name, "i%d", i);
        put(m, name, owned, n, ts, i);
    }
    return m;
}

Test(standby, every_partition_gets_its_copies_on_other_members)
{
    for (int replicas = 1; replicas <= 3; replicas++) {
        int copies[NP] = {0};
        int per_member[4] = {0};
        for (int i = 0; i < 4; i++) {
            char self[32];
            snprintf(self, sizeof self, "i%d", i);
            cue_members *m = cluster(self, 4, NOW);
            bool want[NP];
            size_t set = cue_members_standbys(m, NOW, replicas, want);
            per_member[i] = (int)set;
            for (int32_t p = 0; p < NP; p++) {
                if (!want[p]) continue;
                cr_assert_neq(p % 4, i, "member %d keeps a standby of its own partition %d", i, p);
                copies[p]++;
            }
            cue_members_free(m);
        }
        for (int32_t p = 0; p < NP; p++)
            cr_assert_eq(copies[p], replicas, "partition %d has %d copies, want %d", p, copies[p],
                         replicas);
        /* evenly: 64 * replicas copies over 4 members, none far from its share */
        for (int i = 0; i < 4; i++)
            cr_assert(per_member[i] >= NP * replicas / 4 - 8 &&
                          per_member[i] <= NP * replicas / 4 + 8,
                      "member %d keeps %d standbys with %d replicas", i, per_member[i], replicas);
    }
}

Test(standby, more_replicas_than_other_members_means_everyone_else)
{
    cue_members *m = cluster("i1", 3, NOW);
    bool want[NP];
    size_t set = cue_members_standbys(m, NOW, 5, want);
    for (int32_t p = 0; p < NP; p++)
        cr_assert_eq(want[p], p % 3 != 1, "partition %d", p);
    cr_assert_eq(set, (size_t)(NP - (NP + 1) / 3));
    cue_members_free(m);
}

Test(standby, a_member_leaving_moves_only_its_own_copies)
{
    /* i3's record is old at `later`: it no longer counts. */
    bool before[4][NP], after[4][NP];
    int64_t later = NOW + 10000;
    for (int i = 0; i < 3; i++) {
        char self[32];
        snprintf(self, sizeof self, "i%d", i);
        cue_members *m = cluster(self, 4, NOW);
        cue_members_standbys(m, NOW, 1, before[i]);
        /* the survivors write again; i3 does not */
        for (int j = 0; j < 3; j++) {
            char name[32];
            snprintf(name, sizeof name, "i%d", j);
            int32_t owned[NP];
            size_t n = 0;
            for (int32_t p = 0; p < NP; p++)
                if (p % 4 == j) owned[n++] = p;
            put(m, name, owned, n, later, 10 + j);
        }
        cr_assert_eq(cue_members_live(m, later), 3);
        cr_assert_null(cue_members_owner(m, 3, later), "a dead member still owns");
        cue_members_standbys(m, later, 1, after[i]);
        cue_members_free(m);
    }
    for (int32_t p = 0; p < NP; p++) {
        if (p % 4 == 3) {
            for (int i = 0; i < 3; i++)
                cr_assert(!after[i][p], "partition %d without a live owner has a standby", p);
            continue;
        }
        /* a copy that was on a survivor stays where it was */
        for (int i = 0; i < 3; i++)
            if (before[i][p]) cr_assert(after[i][p], "partition %d's copy left member %d", p, i);
        int n = 0;
        for (int i = 0; i < 3; i++)
            n += after[i][p];
        cr_assert_eq(n, 1, "partition %d has %d copies", p, n);
    }
}

Test(standby, the_later_claim_wins_and_tombstones_remove)
{
    cue_members *m = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_members_new(&m, 4, "b", &err), 0);
    int32_t all[] = {0, 1, 2, 3}, two[] = {2};
    put(m, "a", all, 4, NOW, 1);
    put(m, "b", two, 1, NOW, 2); /* b took 2 after a's record */
    cr_assert_str_eq(cue_members_owner(m, 2, NOW), "b");
    cr_assert_str_eq(cue_members_owner(m, 1, NOW), "a");
    bool want[4];
    cr_assert_eq(cue_members_standbys(m, NOW, 1, want), 3);
    cr_assert(!want[2]);
    put(m, "a", all, 4, NOW, 3); /* and a claims it again, later */
    cr_assert_str_eq(cue_members_owner(m, 2, NOW), "a");
    cr_assert_eq(cue_members_apply(m, "a", 1, NULL, 0, 4, &err), 0);
    cr_assert_eq(cue_members_live(m, NOW), 1);
    cr_assert_str_eq(cue_members_owner(m, 2, NOW), "b");
    cr_assert_eq(cue_members_standbys(m, NOW, 1, want), 0, "nothing to copy: b owns the rest");
    cue_members_free(m);
}

Test(standby, no_standby_before_this_instance_is_seen)
{
    cue_members *m = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_members_new(&m, 4, "new", &err), 0);
    int32_t all[] = {0, 1, 2, 3};
    put(m, "a", all, 4, NOW, 1);
    bool want[4];
    cr_assert_eq(cue_members_standbys(m, NOW, 1, want), 0);
    put(m, "new", NULL, 0, NOW, 2);
    cr_assert_eq(cue_members_standbys(m, NOW, 1, want), 4);
    cr_assert_eq(cue_members_standbys(m, NOW, 0, want), 0, "replicas 0 keeps nothing");
    cue_members_free(m);
}

Test(standby, bad_records_are_refused_and_change_nothing)
{
    cue_members *m = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_members_new(&m, 4, "a", &err), 0);
    int32_t one[] = {1};
    put(m, "a", one, 1, NOW, 1);
    struct {
        const char *key, *val, *says;
    } bad[] = {
        {"a", "not json", "offset 7"},
        {"a", "[1]", "not an object"},
        {"a", "{\"v\":2,\"instance\":\"a\",\"owned\":[],\"ts_ms\":1,\"ttl_ms\":1}", "$.v"},
        {"b", "{\"v\":1,\"instance\":\"a\",\"owned\":[],\"ts_ms\":1,\"ttl_ms\":1}", "$.instance"},
        {"a", "{\"v\":1,\"instance\":\"a\",\"owned\":[4],\"ts_ms\":1,\"ttl_ms\":1}", "$.owned[0]"},
        {"a", "{\"v\":1,\"instance\":\"a\",\"owned\":[-1],\"ts_ms\":1,\"ttl_ms\":1}", "$.owned[0]"},
        {"a", "{\"v\":1,\"instance\":\"a\",\"owned\":{},\"ts_ms\":1,\"ttl_ms\":1}", "$.owned"},
        {"a", "{\"v\":1,\"instance\":\"a\",\"owned\":[],\"ts_ms\":1,\"ttl_ms\":0}", "$.ttl_ms"},
        {"", "{}", "key"},
        /* A name with a NUL byte would be kept cut short, and never found again. */
        {"a\0b", "{\"v\":1,\"instance\":\"a\\u0000b\",\"owned\":[],\"ts_ms\":1,\"ttl_ms\":1}",
         "no NUL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cue_err e = {0};
        size_t key_len = strlen(bad[i].key);
        if (strcmp(bad[i].says, "no NUL") == 0) key_len = 3;
        cr_assert_eq(
            cue_members_apply(m, bad[i].key, key_len, bad[i].val, strlen(bad[i].val), 7, &e),
            CUE_EPARSE, "record %zu accepted", i);
        cr_assert(strstr(e.msg, bad[i].says), "record %zu: '%s' does not name '%s'", i, e.msg,
                  bad[i].says);
        cr_assert_str_eq(cue_members_owner(m, 1, NOW), "a", "record %zu changed the view", i);
    }
    cue_members_free(m);
}

Test(standby, a_full_view_makes_room_from_members_gone)
{
    cue_members *m = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_members_new(&m, 4, "new", &err), 0);
    char name[32];
    for (int i = 0; i < CUE_MEMBERS_MAX; i++) {
        snprintf(name, sizeof name, "gone-%d", i);
        put(m, name, NULL, 0, NOW, i);
    }
    /* Still live at NOW + 1: no room. */
    cue_buf b;
    cr_assert_eq(cue_buf_init(&b, 64), 0);
    cr_assert_eq(cue_members_encode("late", NULL, 0, NOW + 1, 10000, &b), 0);
    cr_assert_eq(cue_members_apply(m, "late", 4, b.data, b.len, 5000, &err), CUE_ELIMIT);
    cue_buf_deinit(&b);
    /* Their ttl (10 s) has passed by this record's time: they make room. */
    put(m, "new", NULL, 0, NOW + 10000, 6000);
    cr_assert_eq(cue_members_live(m, NOW + 10000), 1);
    int32_t all[] = {0, 1, 2, 3};
    put(m, "owner", all, 4, NOW + 10000, 6001);
    bool want[4];
    cr_assert_eq(cue_members_standbys(m, NOW + 10000, 1, want), 4);
    cue_members_free(m);
}

/* Found by fuzzing: `now - ts_ms < ttl_ms` overflowed for a record with
 * ts_ms = INT64_MIN, and the wrapped age made a dead member look live. */
Test(standby, a_member_from_the_far_past_is_dead_not_live)
{
    cue_members *m = NULL;
    cue_err err = {0};
    cr_assert_eq(cue_members_new(&m, 4, "a", &err), 0);
    static const char rec[] =
        "{\"v\":1,\"instance\":\"old\",\"owned\":[1],\"ts_ms\":-9223372036854775808,"
        "\"ttl_ms\":9223372036854775807}";
    cr_assert_eq(cue_members_apply(m, "old", 3, rec, strlen(rec), 1, &err), 0, "%s", err.msg);
    cr_assert_eq(cue_members_live(m, NOW), 0);
    cr_assert_null(cue_members_owner(m, 1, NOW));
    /* At the far end, a record from ahead of the reader's clock is live. */
    static const char ahead[] = "{\"v\":1,\"instance\":\"new\",\"owned\":[2],"
                                "\"ts_ms\":9223372036854775807,\"ttl_ms\":1}";
    cr_assert_eq(cue_members_apply(m, "new", 3, ahead, strlen(ahead), 2, &err), 0, "%s", err.msg);
    cr_assert_eq(cue_members_live(m, NOW), 1);
    cr_assert_str_eq(cue_members_owner(m, 2, NOW), "new");
    cue_members_free(m);
}
