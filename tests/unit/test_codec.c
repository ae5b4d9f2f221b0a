/* The state record: round trips, every corruption rejected, and migration
 * between machine versions. */
#include "cuepoint/codec.h"
#include "cuepoint/hash.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

static const char v1[] =
    "{\"name\":\"m\",\"version\":1,\"start\":{\"event\":\"go\",\"do\":["
    "{\"increment\":\"n\"},{\"set\":\"s\",\"from\":{\"event\":\"/s\"}},"
    "{\"set\":\"i\",\"from\":{\"event\":\"/i\"}},{\"set\":\"d\",\"from\":{\"event\":\"/d\"}},"
    "{\"set\":\"b\",\"from\":{\"event\":\"/b\"}},{\"start_timer\":\"t\",\"after\":\"1h\"},"
    "{\"emit\":\"hello\",\"once\":true}]},"
    "\"initial\":\"a\",\"final\":[\"z\"],\"states\":{\"a\":{\"on\":[{\"event\":\"go\","
    "\"goto\":\"b\"}]},\"b\":{\"on\":[{\"timer\":\"t\",\"goto\":\"z\"}]},\"z\":{}}}";

/* v2 renames state b to c (so b's instances finish) and drops counter n. */
static const char v2_keep[] =
    "{\"name\":\"m\",\"version\":2,\"start\":{\"event\":\"go\",\"do\":["
    "{\"set\":\"s\",\"from\":{\"event\":\"/s\"}},{\"start_timer\":\"t\",\"after\":\"1h\"}]},"
    "\"initial\":\"a\",\"final\":[\"z\"],\"states\":{\"a\":{\"on\":[{\"event\":\"go\","
    "\"goto\":\"c\"}]},\"c\":{\"on\":[{\"timer\":\"t\",\"goto\":\"z\"}]},\"z\":{}}}";

static const char v2_restart[] =
    "{\"name\":\"m\",\"version\":2,\"on_version_change\":\"restart\",\"start\":{\"event\":\"go\"},"
    "\"initial\":\"a\",\"states\":{\"a\":{}}}";

static void fill(cue_user *u)
{
    cue_user_init(u, "user-1", 6);
    memcpy(u->attrs[CUE_ATTR_TIMEZONE], "Europe/Berlin", 13);
    u->attr_len[CUE_ATTR_TIMEZONE] = 13;
    u->last_offset = 41;
    u->last_event_ms = 1772438400000;
    u->indexed_due = 1772442000000;
    u->n_instances = 1;
    cue_instance *in = &u->inst[0];
    memset(in, 0, sizeof *in);
    in->machine = 0;
    in->state = 1;
    in->version = 1;
    in->once = 1;
    in->started_ms = -5;
    in->updated_ms = 1772438400000;
    in->counters[0] = -7;
    in->vars[0] = (cue_var){.type = CUE_VAL_STRING, .len = 5, .s = "hello"};
    in->vars[1] = (cue_var){.type = CUE_VAL_INT, .i = INT64_MIN};
    in->vars[2] = (cue_var){.type = CUE_VAL_DOUBLE, .d = 2.5};
    in->vars[3] = (cue_var){.type = CUE_VAL_BOOL, .b = true};
    for (int t = 0; t < CUE_MACHINE_TIMERS_MAX; t++)
        in->timers[t] = CUE_TIMER_NONE;
    in->timers[0] = 1772442000000;
}

Test(codec, round_trip_is_exact)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    fill(&a);
    cue_buf rec, rec2;
    cue_buf_init(&rec, 64);
    cue_buf_init(&rec2, 64);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cue_err err;
    cr_assert(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err) == 0, "%s", err.msg);
    cr_assert(cue_codec_encode(&b, ms, &rec2) == 0);
    cr_assert_eq(rec.len, rec2.len);
    cr_assert(memcmp(rec.data, rec2.data, rec.len) == 0, "re-encoding changed the bytes");
    cr_assert_eq(b.last_offset, 41);
    cr_assert_eq(b.inst[0].counters[0], -7);
    cr_assert_eq(b.inst[0].vars[1].i, INT64_MIN);
    cr_assert_eq(b.inst[0].vars[2].d, 2.5);
    cr_assert_eq(b.inst[0].timers[0], 1772442000000);
    cr_assert_eq(b.inst[0].once, 1u);
    cr_assert_eq(b.attr_len[CUE_ATTR_TIMEZONE], 13);
    int64_t peeked = 0;
    cr_assert(cue_codec_peek_indexed_due(rec.data, rec.len, &peeked) == 0);
    cr_assert_eq(peeked, a.indexed_due, "the header's indexed due time");
    cr_assert_eq(cue_codec_peek_indexed_due(rec.data, 6, &peeked), CUE_ECORRUPT);
    cue_buf_deinit(&rec);
    cue_buf_deinit(&rec2);
    cue_machines_free(ms);
}

Test(codec, every_corruption_is_rejected_with_a_reason)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    fill(&a);
    cue_buf rec;
    cue_buf_init(&rec, 64);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cue_err err;
    /* Every single-byte flip is caught: by the magic, the version or the checksum. */
    for (size_t i = 0; i < rec.len; i++) {
        rec.data[i] ^= 0x20;
        int rc = cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err);
        cr_expect(rc == CUE_ECORRUPT || rc == CUE_EVERSION, "flip at byte %zu accepted", i);
        rec.data[i] ^= 0x20;
    }
    /* Every truncation too. */
    for (size_t n = 0; n < rec.len; n++)
        cr_expect(cue_codec_decode(rec.data, n, ms, &b, NULL, &err) != 0, "%zu bytes accepted", n);
    rec.data[2] = 9;
    cr_assert_eq(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err), CUE_EVERSION);
    cr_assert(strstr(err.msg, "version 9") != NULL, "message: %s", err.msg);
    cue_buf_deinit(&rec);
    cue_machines_free(ms);
}

Test(codec, a_valid_checksum_over_bad_fields_is_still_rejected)
{
    cue_machines *ms = compile_text(v1);
    /* Magic and version; user id "x"; offset, event time, indexed due time and
     * four empty attributes; an instance count of 16383 (over the limit); then
     * a valid checksum. */
    unsigned char rec[18] = {'C', 'U', 1, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0xff, 0x7f};
    uint32_t sum = cue_hash32(rec, 14);
    for (int i = 0; i < 4; i++)
        rec[14 + i] = (unsigned char)(sum >> (8 * i));
    static cue_user b;
    cue_err err;
    cr_assert_eq(cue_codec_decode(rec, sizeof rec, ms, &b, NULL, &err), CUE_ECORRUPT);
    cr_assert(strstr(err.msg, "instance count") != NULL, "message: %s", err.msg);
    cue_machines_free(ms);
}

/* Encodes the filled user under v1 and decodes it under `v2`, into `b`. */
static cue_codec_stats migrate(const char *v2, cue_user *b)
{
    cue_machines *m1 = compile_text(v1), *m2 = compile_text(v2);
    static cue_user a;
    fill(&a);
    cue_buf rec;
    cue_buf_init(&rec, 64);
    cr_assert(cue_codec_encode(&a, m1, &rec) == 0);
    cue_codec_stats st = {0};
    cue_err err;
    cr_assert(cue_codec_decode(rec.data, rec.len, m2, b, &st, &err) == 0, "%s", err.msg);
    cue_buf_deinit(&rec);
    cue_machines_free(m1);
    cue_machines_free(m2);
    return st;
}

Test(codec, migration_keeps_by_name_and_finishes_lost_states)
{
    static cue_user b;
    cue_codec_stats st = migrate(v2_keep, &b);
    cr_assert_eq(b.n_instances, 1);
    cr_assert_eq(st.migrated, 1);
    cr_assert(b.inst[0].finished, "state b is gone in v2: the instance must finish");
    cr_assert_eq(st.stranded, 1, "and be counted as stranded, not lost silently");
    cr_assert_eq(b.inst[0].version, 2u);
    cr_assert_eq(b.inst[0].vars[0].type, CUE_VAL_STRING, "variable s survives by name");
    cr_assert_eq(b.inst[0].timers[0], CUE_TIMER_NONE, "a finished instance keeps no timer");
    cr_assert_eq(st.timers_dropped, 1, "the timer it had is counted as dropped");
    cr_assert_geq(st.dropped_names, 1u, "the dropped counter and variables are counted");
}

Test(codec, migration_restart_drops_the_instance)
{
    static cue_user b;
    cue_codec_stats st = migrate(v2_restart, &b);
    cr_assert_eq(b.n_instances, 0);
    cr_assert_eq(st.dropped_instances, 1);
    cr_assert_eq(b.last_offset, 41, "the user's position survives");
}

Test(codec, next_due_is_the_earliest_armed_timer)
{
    static cue_user u;
    cue_user_init(&u, "x", 1);
    cr_assert_eq(cue_user_next_due(&u), CUE_TIMER_NONE);
    u.n_instances = 2;
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < CUE_MACHINE_TIMERS_MAX; t++)
            u.inst[i].timers[t] = CUE_TIMER_NONE;
    u.inst[0].timers[0] = 30;
    u.inst[0].timers[1] = 10;
    u.inst[1].timers[3] = 30;
    cr_assert_eq(cue_user_next_due(&u), 10);
    u.inst[1].timers[4] = -5;
    cr_assert_eq(cue_user_next_due(&u), -5);
}

Test(codec, policy_state_round_trips_and_plain_users_stay_format_1)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    fill(&a);
    cue_buf rec, rec2;
    cue_buf_init(&rec, 64);
    cue_buf_init(&rec2, 64);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_assert_eq(((uint8_t *)rec.data)[2], CUE_CODEC_VERSION_PLAIN, "no policy state: format 1");
    cue_user_policy *p = &a.policy;
    p->consent[CUE_CH_EMAIL] = CUE_CONSENT_DENIED;
    p->muted = 1u << CUE_CH_PUSH;
    p->n_sent = 2;
    p->sent[0] = (cue_sent){.ms = 1000, .machine = 7, .trigger = 9, .cls = 1, .channel = 2};
    p->sent[1] = (cue_sent){.ms = 2000, .machine = 8, .trigger = 10, .cls = 2, .channel = 0};
    p->n_deferred = 1;
    cue_deferred *d = &p->deferred[0];
    memset(d, 0, sizeof *d);
    d->due_ms = 5000;
    d->time_ms = 4000;
    d->machine = 3;
    d->trigger = 4;
    d->why = CUE_WHY_QUIET_HOURS;
    d->timer = true;
    memcpy(d->id, "0123456789abcdef0123456789abcdef", CUE_HASH_HEX_LEN + 1);
    memcpy(d->rec, "{\"x\":{\"y\":1}}", 13);
    d->rec_len = 13;
    p->n_decided = 1;
    p->decided[0] = (cue_decided){.ms = 4000,
                                  .until = 5000,
                                  .machine = 3,
                                  .trigger = 4,
                                  .outcome = CUE_OUTCOME_DEFERRED,
                                  .why = CUE_WHY_QUIET_HOURS,
                                  .channel = CUE_CH_NONE};
    memcpy(p->decided[0].id, d->id, sizeof d->id);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_assert_eq(((uint8_t *)rec.data)[2], CUE_CODEC_VERSION_POLICY);
    cue_err err;
    cr_assert(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err) == 0, "%s", err.msg);
    cr_assert(cue_codec_encode(&b, ms, &rec2) == 0);
    cr_assert(rec.len == rec2.len && memcmp(rec.data, rec2.data, rec.len) == 0);
    cr_assert_eq(b.policy.consent[CUE_CH_EMAIL], CUE_CONSENT_DENIED);
    cr_assert_eq(b.policy.muted, 1u << CUE_CH_PUSH);
    cr_assert_eq(b.policy.sent[1].ms, 2000);
    cr_assert_eq(b.policy.deferred[0].rec_len, 13);
    cr_assert(memcmp(b.policy.deferred[0].rec, "{\"x\":{\"y\":1}}", 13) == 0);
    cr_assert_str_eq(b.policy.deferred[0].id, d->id);
    cr_assert_eq(b.policy.decided[0].outcome, CUE_OUTCOME_DEFERRED);
    cr_assert_eq(cue_user_next_due(&b), 5000, "a deferred trigger is due like a timer");
    int64_t peeked = 0;
    cr_assert(cue_codec_peek_indexed_due(rec.data, rec.len, &peeked) == 0);
    /* Fields out of range are refused with a reason, even under a good checksum. */
    static cue_user spoilt;
    for (int k = 0; k < 4; k++) {
        spoilt = a;
        const char *want = "";
        switch (k) {
        case 0: spoilt.policy.deferred[0].rec[12] = ' ', want = "deferred record"; break;
        case 1: spoilt.policy.deferred[0].id[3] = '"', want = "deferred id"; break;
        case 2: spoilt.policy.sent[0].channel = 77, want = "sent channel"; break;
        default: spoilt.policy.decided[0].why = 200, want = "decision reason"; break;
        }
        cr_assert(cue_codec_encode(&spoilt, ms, &rec2) == 0);
        cr_assert_eq(cue_codec_decode(rec2.data, rec2.len, ms, &b, NULL, &err), CUE_ECORRUPT,
                     "case %d decoded", k);
        cr_assert(strstr(err.msg, want), "case %d: %s", k, err.msg);
    }
    cue_buf json;
    cue_buf_init(&json, 256);
    cr_assert(cue_user_to_json(&a, ms, &json) == 0);
    cr_assert(
        strstr(json.data, "\"policy\":{\"consent\":{\"push\":\"default\",\"email\":\"denied\""),
        "%s", json.data);
    cr_assert(strstr(json.data, "\"muted\":[\"push\"]"), "%s", json.data);
    cr_assert(strstr(json.data, "\"outcome\":\"deferred\",\"reason\":\"quiet_hours\""), "%s",
              json.data);
    cue_buf_deinit(&json);
    cue_buf_deinit(&rec);
    cue_buf_deinit(&rec2);
    cue_machines_free(ms);
}

/* Event ids go in format 3, with their times; a user without any is written
 * as before, and a count over the bound is refused. */
Test(codec, event_ids_round_trip_in_format_3)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    fill(&a);
    a.n_seen = 3;
    a.seen[0] = (cue_seen_id){.ms = 1772438400000 - 3600000, .hash = 0x0123456789abcdefULL};
    a.seen[1] = (cue_seen_id){.ms = 1772438400000 + 5, .hash = UINT64_MAX};
    a.seen[2] = (cue_seen_id){.ms = 1772438400000, .hash = 0};
    cue_buf rec, rec2;
    cue_buf_init(&rec, 64);
    cue_buf_init(&rec2, 64);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_assert_eq(((uint8_t *)rec.data)[2], CUE_CODEC_VERSION_IDS);
    cue_err err;
    cr_assert(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err) == 0, "%s", err.msg);
    cr_assert_eq(b.n_seen, 3);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(b.seen[i].ms, a.seen[i].ms, "id %d time", i);
        cr_expect_eq(b.seen[i].hash, a.seen[i].hash, "id %d hash", i);
    }
    cr_assert(cue_codec_encode(&b, ms, &rec2) == 0);
    cr_assert(rec.len == rec2.len && memcmp(rec.data, rec2.data, rec.len) == 0);
    /* The count is the byte after the (empty) policy section: past the bound,
     * the record is refused even with a good checksum. */
    a.n_seen = 1;
    a.seen[0].ms = a.last_event_ms;
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    /* checksum, hash, time difference (1 byte), floor flag, count */
    size_t at = rec.len - 4 - 8 - 1 - 1 - 1;
    cr_assert_eq(((uint8_t *)rec.data)[at], 1);
    ((uint8_t *)rec.data)[at] = CUE_EVENT_IDS_MAX + 1;
    cue_codec_seal(rec.data, rec.len);
    cr_expect_eq(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err), CUE_ECORRUPT);
    cr_expect(strstr(err.msg, "event id") != NULL, "%s", err.msg);
    /* The floor up to which ids were dropped travels with them, even alone. */
    a.n_seen = 0;
    a.seen_floor_ms = a.last_event_ms - 12345;
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_expect_eq(((uint8_t *)rec.data)[2], CUE_CODEC_VERSION_IDS);
    cr_assert(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err) == 0, "%s", err.msg);
    cr_expect_eq(b.seen_floor_ms, a.seen_floor_ms);
    cr_expect_eq(b.n_seen, 0);
    a.seen_floor_ms = INT64_MIN;
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_expect_eq(((uint8_t *)rec.data)[2], CUE_CODEC_VERSION_PLAIN, "no ids, no policy: format 1");
    cue_buf_deinit(&rec);
    cue_buf_deinit(&rec2);
    cue_machines_free(ms);
}

/* Several input topics: the offsets of the topics after the first travel in
 * format 4; a user who has none stays in the smaller formats. */
Test(codec, offsets_of_further_input_topics_round_trip_in_format_4)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    fill(&a);
    cr_assert_eq(a.more_offsets[0], CUE_OFFSET_NONE, "cue_user_init leaves them unset");
    a.more_offsets[1] = 77;
    cue_buf rec;
    cue_buf_init(&rec, 64);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_assert_eq(((uint8_t *)rec.data)[2], CUE_CODEC_VERSION_TOPICS);
    cue_err err;
    cr_assert(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err) == 0, "%s", err.msg);
    cr_expect_eq(b.last_offset, 41);
    cr_expect_eq(b.more_offsets[0], CUE_OFFSET_NONE);
    cr_expect_eq(b.more_offsets[1], 77);
    cr_expect_eq(b.more_offsets[2], CUE_OFFSET_NONE);
    cue_buf j;
    cue_buf_init(&j, 256);
    cr_assert(cue_user_to_json(&b, ms, &j) == 0);
    cr_expect(strstr(j.data, "\"more_offsets\":[null,77]") != NULL, "%.*s", (int)j.len, j.data);
    a.more_offsets[1] = CUE_OFFSET_NONE;
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_expect_eq(((uint8_t *)rec.data)[2], CUE_CODEC_VERSION_PLAIN);
    cue_buf_deinit(&j);
    cue_buf_deinit(&rec);
    cue_machines_free(ms);
}

/* A deferred trigger's late mark (issue 14: it was lost while the trigger
 * waited) rides in the byte that the policy section wrote as the timer
 * boolean, so records written before it still read, and no format changes. */
Test(codec, a_deferred_triggers_late_mark_round_trips_in_the_flags_byte)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    fill(&a);
    a.policy.n_deferred = 1;
    cue_deferred *d = &a.policy.deferred[0];
    memset(d, 0, sizeof *d);
    d->due_ms = 5000;
    d->time_ms = 4000;
    d->why = CUE_WHY_QUIET_HOURS;
    d->timer = true;
    d->late = true;
    memcpy(d->id, "0123456789abcdef0123456789abcdef", CUE_HASH_HEX_LEN + 1);
    memcpy(d->rec, "{\"x\":{\"y\":1}}", 13);
    d->rec_len = 13;
    cue_buf rec;
    cue_buf_init(&rec, 64);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    cr_assert_eq(((uint8_t *)rec.data)[2], 2, "the policy section's format");
    cue_err err;
    cr_assert(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err) == 0, "%s", err.msg);
    cr_assert(b.policy.deferred[0].late && b.policy.deferred[0].timer);
    /* The flags byte comes just before the id's length and bytes. */
    size_t at = 0;
    while (at + CUE_HASH_HEX_LEN <= rec.len && memcmp(rec.data + at, d->id, CUE_HASH_HEX_LEN))
        at++;
    cr_assert(at >= 2 && at + CUE_HASH_HEX_LEN <= rec.len);
    uint8_t *flags = (uint8_t *)rec.data + at - 2;
    cr_assert_eq(*flags, 3, "timer | late");
    *flags = 1; /* as format 2 wrote a timer's trigger before the mark */
    cue_codec_seal(rec.data, rec.len);
    cr_assert(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err) == 0, "%s", err.msg);
    cr_assert(b.policy.deferred[0].timer && !b.policy.deferred[0].late);
    *flags = 4; /* no such flag */
    cue_codec_seal(rec.data, rec.len);
    cr_assert_eq(cue_codec_decode(rec.data, rec.len, ms, &b, NULL, &err), CUE_ECORRUPT);
    cr_assert(strstr(err.msg, "deferred flags"), "%s", err.msg);
    cue_buf json;
    cue_buf_init(&json, 256);
    cr_assert(cue_user_to_json(&a, ms, &json) == 0);
    cr_assert(strstr(json.data, "\"reason\":\"quiet_hours\",\"late\":true}"), "%s", json.data);
    cue_buf_deinit(&json);
    cue_buf_deinit(&rec);
    cue_machines_free(ms);
}

/* ---- migrate maps ------------------------------------------------------- */

/* v2 with state b gone and a `migrate` map placing its instances (the rest
 * of the map is `map`). Timer t is kept by name unless the map says. */
#define V2_MAP(states, map)                                                                        \
    "{\"name\":\"m\",\"version\":2,\"start\":{\"event\":\"go\",\"do\":[{\"increment\":\"n\"},"     \
    "{\"set\":\"s\",\"from\":{\"event\":\"/s\"}},{\"start_timer\":\"t\",\"after\":\"1h\"}]},"      \
    "\"initial\":\"a\",\"final\":[\"z\"],\"states\":{\"a\":{\"on\":[{\"event\":\"go\",\"goto\":"   \
    "\"c1\"}]}," states "\"z\":{}},\"migrate\":{" map "}}"
#define C_STATES                                                                                   \
    "\"c1\":{\"on\":[{\"timer\":\"t\",\"goto\":\"z\"}]},\"c2\":{\"on\":[{\"timer\":\"t\","         \
    "\"goto\":\"z\"}]},"

typedef struct traced {
    cue_migration last;
    int calls;
} traced;

static void on_migration(const cue_migration *mg, void *ctx)
{
    traced *t = ctx;
    t->last = *mg;
    t->calls++;
}

/* Encodes the filled user under v1 and decodes it under `v2`, tracing. */
static cue_codec_stats migrate_traced(const char *v2, cue_user *b, traced *tr)
{
    cue_machines *m1 = compile_text(v1), *m2 = compile_text(v2);
    static cue_user a;
    fill(&a);
    cue_buf rec;
    cue_buf_init(&rec, 64);
    cr_assert(cue_codec_encode(&a, m1, &rec) == 0);
    cue_codec_stats st = {0};
    cue_err err;
    memset(tr, 0, sizeof *tr);
    cr_assert(cue_codec_decode_traced(rec.data, rec.len, m2, b, &st, on_migration, tr, &err) == 0,
              "%s", err.msg);
    /* What the trace borrows lives as long as m2: keep the name, drop the rest. */
    if (tr->last.from_name) tr->last.from_name = strcmp(tr->last.from_name, "b") ? "?" : "b";
    tr->last.rule = NULL;
    tr->last.m = NULL;
    cue_buf_deinit(&rec);
    cue_machines_free(m1);
    cue_machines_free(m2);
    return st;
}

Test(codec, a_renamed_state_moves_and_its_timer_is_shifted)
{
    static cue_user b;
    traced tr;
    cue_codec_stats st = migrate_traced(
        V2_MAP(C_STATES, "\"states\":{\"b\":\"c2\"},\"timers\":{\"t\":{\"shift\":\"-30m\"}}"), &b,
        &tr);
    cr_assert_eq(b.n_instances, 1);
    cr_assert(!b.inst[0].finished);
    cr_assert_eq(b.inst[0].state, 2, "b -> c2 (a, c1, c2, z)");
    cr_assert_eq(b.inst[0].timers[0], 1772442000000 - 1800000, "shifted half an hour earlier");
    cr_assert_eq(st.migrated, 1);
    cr_assert_eq(st.moved, 1);
    cr_assert_eq(st.timers_moved, 1);
    cr_assert_eq(st.stranded + st.finished + st.timers_dropped, 0);
    cr_assert_eq(b.inst[0].counters[0], -7, "counter n kept by name");
    cr_assert_eq(tr.calls, 1);
    cr_assert_eq(tr.last.outcome, CUE_MIG_MOVED);
    cr_assert_str_eq(tr.last.from_name, "b");
    cr_assert_eq(tr.last.from_version, 1u);
    cr_assert_eq(tr.last.to_state, 2);
    cr_assert_eq(tr.last.n_timers, 1);
    cr_assert_eq(tr.last.timers[0].fate, CUE_MIGT_MOVED);
}

Test(codec, a_split_state_goes_where_the_first_guard_holds)
{
    static cue_user b;
    traced tr;
    /* The counter is -7: the first rule does not hold, the second does. */
    cue_codec_stats st = migrate_traced(
        V2_MAP(C_STATES,
               "\"states\":{\"b\":[{\"when\":[{\"counter\":\"n\",\"gt\":0}],\"to\":\"c1\"},"
               "{\"when\":[{\"attr\":\"timezone\",\"eq\":\"Europe/Berlin\"}],\"to\":\"c2\","
               "\"timers\":{\"t\":\"drop\"}},{\"to\":\"c1\"}]}"),
        &b, &tr);
    cr_assert_eq(b.inst[0].state, 2, "the attribute's rule: c2");
    cr_assert_eq(b.inst[0].timers[0], CUE_TIMER_NONE, "that rule drops the timer");
    cr_assert_eq(st.moved, 1);
    cr_assert_eq(st.timers_dropped, 1);
    cr_assert_eq(tr.last.timers[0].fate, CUE_MIGT_DROPPED);
    cr_assert_eq(tr.last.to_state, 2);
}

Test(codec, a_removed_state_is_finished_or_restarted_by_its_rule)
{
    static cue_user b;
    traced tr;
    cue_codec_stats st =
        migrate_traced(V2_MAP(C_STATES, "\"states\":{\"b\":{\"finish\":true}}"), &b, &tr);
    cr_assert_eq(b.n_instances, 1);
    cr_assert(b.inst[0].finished);
    cr_assert_eq(b.inst[0].timers[0], CUE_TIMER_NONE, "a finished instance keeps no timer");
    cr_assert_eq(st.finished, 1);
    cr_assert_eq(st.stranded, 0, "finished by a rule is not stranded");
    cr_assert_eq(st.timers_dropped, 1);
    cr_assert_eq(tr.last.outcome, CUE_MIG_FINISHED);
    st = migrate_traced(V2_MAP(C_STATES, "\"states\":{\"b\":{\"restart\":true}}"), &b, &tr);
    cr_assert_eq(b.n_instances, 0);
    cr_assert_eq(st.dropped_instances, 1);
    cr_assert_eq(tr.last.outcome, CUE_MIG_RESTARTED);
}

Test(codec, a_state_with_no_rule_is_stranded_and_reported)
{
    static cue_user b;
    traced tr;
    cue_codec_stats st = migrate_traced(V2_MAP(C_STATES, "\"timers\":{\"t\":\"keep\"}"), &b, &tr);
    cr_assert(b.inst[0].finished);
    cr_assert_eq(st.stranded, 1);
    cr_assert_eq(tr.last.outcome, CUE_MIG_STRANDED);
    cr_assert_null(tr.last.from_name, "nothing in v2 names state b");
    cr_assert_eq(tr.last.from_state, cue_hash32("b", 1));
}

Test(codec, the_same_version_is_not_reported)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    fill(&a);
    cue_buf rec;
    cue_buf_init(&rec, 64);
    cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
    traced tr = {0};
    cue_codec_stats st = {0};
    cue_err err;
    cr_assert(cue_codec_decode_traced(rec.data, rec.len, ms, &b, &st, on_migration, &tr, &err) ==
              0);
    cr_assert_eq(tr.calls, 0);
    cr_assert_eq(st.migrated + st.timers_dropped + st.stranded, 0);
    cue_buf_deinit(&rec);
    cue_machines_free(ms);
}

/* The cache's image of a user: loaded over a scratch full of garbage, it
 * gives a user whose record is byte for byte the original's, for a user with
 * every part set (two instances, every variable type, policy, event ids,
 * further input topics) and for one with nothing; its header tells the
 * indexed due time without a load, and it is never taken for a record. */
Test(codec, an_image_gives_back_the_user_its_record_holds)
{
    cue_machines *ms = compile_text(v1);
    static cue_user a, b;
    cue_buf img, rec, rec2;
    cue_buf_init(&img, 64);
    cue_buf_init(&rec, 64);
    cue_buf_init(&rec2, 64);
    cue_err err;
    for (int k = 0; k < 2; k++) {
        if (k == 0) {
            fill(&a);
            a.n_instances = 2;
            cue_instance *in = &a.inst[1];
            cue_instance_init(in, cue_machines_get(ms, 0), 0, 1772438400000);
            in->finished = true;
            in->version = 9; /* saved under another version than the machine's */
            in->key_len = 3;
            memcpy(in->key, "k-1", 3);
            in->vars[4] = (cue_var){.type = CUE_VAL_NULL};
            in->timers[0] = 1772442000001;
            a.policy.consent[CUE_CH_SMS] = CUE_CONSENT_GRANTED;
            a.policy.muted = 1u << CUE_CH_EMAIL;
            a.policy.n_sent = 1;
            a.policy.sent[0] = (cue_sent){.ms = 9, .machine = 1, .trigger = 2, .channel = 3};
            a.policy.n_deferred = 1;
            cue_deferred *d = &a.policy.deferred[0];
            memset(d, 0, sizeof *d);
            d->due_ms = 5000;
            d->late = true;
            memcpy(d->id, "0123456789abcdef0123456789abcdef", CUE_HASH_HEX_LEN + 1);
            memcpy(d->rec, "{\"x\":{\"y\":1}}", 13);
            d->rec_len = 13;
            a.policy.n_decided = 1;
            a.policy.decided[0] = (cue_decided){.ms = 4, .until = INT64_MIN, .channel = 1};
            memcpy(a.policy.decided[0].id, d->id, sizeof d->id);
            a.n_seen = 2;
            a.seen[0] = (cue_seen_id){.ms = 7, .hash = 0x0123456789abcdefULL};
            a.seen[1] = (cue_seen_id){.ms = 8, .hash = UINT64_MAX};
            a.seen_floor_ms = 3;
            a.more_offsets[2] = 77;
        } else {
            cue_user_init(&a, "u", 1);
        }
        cr_assert(cue_codec_image_save(&a, ms, &img) == 0);
        cr_assert(cue_codec_is_image(img.data, img.len), "case %d", k);
        memset(&b, 0xa5, sizeof b);
        cue_codec_image_load(img.data, img.len, ms, &b);
        cr_assert(cue_codec_encode(&a, ms, &rec) == 0);
        cr_assert(cue_codec_encode(&b, ms, &rec2) == 0);
        cr_assert(rec.len == rec2.len && memcmp(rec.data, rec2.data, rec.len) == 0,
                  "case %d: the loaded user's record differs", k);
        cr_assert(!cue_codec_is_image(rec.data, rec.len));
        cr_assert_eq(cue_codec_image_indexed_due(img.data), a.indexed_due, "case %d", k);
        cr_assert_eq(cue_user_next_due(&b), cue_user_next_due(&a), "case %d", k);
        /* What the engine reads but no record holds is as a fresh user's. */
        if (k == 0) cr_assert_eq(b.inst[1].timers[CUE_MACHINE_TIMERS_MAX - 1], CUE_TIMER_NONE);
        cr_assert(cue_codec_decode(rec2.data, rec2.len, ms, &a, NULL, &err) == 0, "%s", err.msg);
    }
    cue_buf_deinit(&img);
    cue_buf_deinit(&rec);
    cue_buf_deinit(&rec2);
    cue_machines_free(ms);
}
