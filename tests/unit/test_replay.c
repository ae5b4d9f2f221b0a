/* The replay's plan: where each partition starts and stops, from offsets,
 * times (through a fake offsets-for-times, since the mock broker answers -1
 * for every time) and the log's edges. Also the file placement's partitioner. */
#include "cuepoint/kafka.h"
#include "cuepoint/replay.h"

#include <criterion/criterion.h>
#include <string.h>

#define NP 3

/* A log per partition: low 10, high 100, and record i (from 10) has
 * timestamp 1000 + 10 * i, so a time maps to an offset; past the last record
 * the answer is -1, as Kafka's. */
static int fake_lookup(void *ctx, int32_t partition, int64_t ts_ms, int64_t *offset, cue_err *err)
{
    int *calls = ctx;
    (*calls)++;
    (void)partition;
    (void)err;
    if (ts_ms > 1000 + 10 * 99) {
        *offset = -1;
        return 0;
    }
    int64_t i = ts_ms <= 1100 ? 10 : (ts_ms - 1000 + 9) / 10;
    *offset = i;
    return 0;
}

static int failing_lookup(void *ctx, int32_t partition, int64_t ts_ms, int64_t *offset,
                          cue_err *err)
{
    (void)ctx;
    (void)ts_ms;
    (void)offset;
    return cue_err_set(err, CUE_EUNAVAILABLE, "partition %d: broker gone", (int)partition);
}

static void parts_init(cue_replay_part *p)
{
    for (int i = 0; i < NP; i++)
        p[i] = (cue_replay_part){.partition = i, .low = 10, .high = 100};
}

Test(replay_plan, defaults_are_the_whole_log)
{
    cue_replay_range r = {.from = CUE_REPLAY_BEGINNING, .to = CUE_REPLAY_END};
    cue_replay_part p[NP];
    parts_init(p);
    int calls = 0;
    cr_assert_eq(cue_replay_plan(&r, p, NP, fake_lookup, &calls, NULL), 0);
    for (int i = 0; i < NP; i++) {
        cr_assert(p[i].selected);
        cr_assert_eq(p[i].start, 10);
        cr_assert_eq(p[i].end, 100);
        cr_assert(!p[i].clamped);
    }
    cr_assert_eq(calls, 0, "no time asked, no broker look-up");
}

Test(replay_plan, offsets_per_partition_pick_partitions_and_clamp)
{
    cue_replay_range r = {.from = CUE_REPLAY_OFFSET, .to = CUE_REPLAY_OFFSET};
    r.from_points[0] = (cue_replay_point){.partition = 0, .offset = 5}; /* below low */
    r.from_points[1] = (cue_replay_point){.partition = 2, .offset = 50};
    r.n_from_points = 2;
    r.to_points[0] = (cue_replay_point){.partition = -1, .offset = 60};
    r.to_points[1] = (cue_replay_point){.partition = 2, .offset = 40}; /* before its start */
    r.n_to_points = 2;
    cue_replay_part p[NP];
    parts_init(p);
    cr_assert_eq(cue_replay_plan(&r, p, NP, fake_lookup, NULL, NULL), 0);
    cr_assert(p[0].selected && !p[1].selected && p[2].selected);
    cr_assert_eq(p[0].start, 10);
    cr_assert(p[0].clamped);
    cr_assert_eq(p[0].end, 60, "the all-partitions end applies");
    cr_assert_eq(p[2].start, 50);
    cr_assert_eq(p[2].end, 50, "an end before the start is an empty range");
    cr_assert(p[2].clamped);
}

Test(replay_plan, one_offset_for_all_partitions_keeps_them_all)
{
    cue_replay_range r = {.from = CUE_REPLAY_OFFSET, .to = CUE_REPLAY_END};
    r.from_points[0] = (cue_replay_point){.partition = -1, .offset = 30};
    r.n_from_points = 1;
    r.only[0] = 1;
    r.n_only = 1;
    cue_replay_part p[NP];
    parts_init(p);
    cr_assert_eq(cue_replay_plan(&r, p, NP, fake_lookup, NULL, NULL), 0);
    cr_assert(!p[0].selected && p[1].selected && !p[2].selected, "--partitions still applies");
    cr_assert_eq(p[1].start, 30);
    cr_assert_eq(p[1].end, 100);
}

Test(replay_plan, times_map_through_offsets_for_times)
{
    cue_replay_range r = {
        .from = CUE_REPLAY_TIME, .to = CUE_REPLAY_TIME, .from_time_ms = 1205, .to_time_ms = 1500};
    cue_replay_part p[NP];
    parts_init(p);
    int calls = 0;
    cr_assert_eq(cue_replay_plan(&r, p, NP, fake_lookup, &calls, NULL), 0);
    cr_assert_eq(calls, 2 * NP);
    cr_assert_eq(p[1].start, 21, "the first record at or after the time");
    cr_assert_eq(p[1].end, 50, "stops before the first record at or after --to-time");
    cr_assert(!p[1].no_time);
}

Test(replay_plan, a_time_past_the_last_record_is_the_end)
{
    /* The broker's -1: no record at or after the time. From there nothing
     * is replayed; up to there, everything is. */
    cue_replay_range r = {.from = CUE_REPLAY_TIME, .to = CUE_REPLAY_END, .from_time_ms = 5000};
    cue_replay_part p[NP];
    parts_init(p);
    int calls = 0;
    cr_assert_eq(cue_replay_plan(&r, p, NP, fake_lookup, &calls, NULL), 0);
    cr_assert_eq(p[0].start, 100);
    cr_assert_eq(p[0].end, 100);
    cr_assert(p[0].no_time);
    r = (cue_replay_range){.from = CUE_REPLAY_BEGINNING, .to = CUE_REPLAY_TIME, .to_time_ms = 5000};
    parts_init(p);
    cr_assert_eq(cue_replay_plan(&r, p, NP, fake_lookup, &calls, NULL), 0);
    cr_assert_eq(p[0].start, 10);
    cr_assert_eq(p[0].end, 100);
    cr_assert(!p[0].no_time, "an end past the last record leaves the range whole");
}

Test(replay_plan, errors_name_the_partition)
{
    cue_replay_range r = {.from = CUE_REPLAY_OFFSET, .to = CUE_REPLAY_END};
    r.from_points[0] = (cue_replay_point){.partition = 7, .offset = 1};
    r.n_from_points = 1;
    cue_replay_part p[NP];
    parts_init(p);
    cue_err err = {0};
    cr_assert_eq(cue_replay_plan(&r, p, NP, fake_lookup, NULL, &err), CUE_EUSAGE);
    cr_assert(strstr(err.msg, "partition 7; the topic has 3"), "%s", err.msg);
    r = (cue_replay_range){.from = CUE_REPLAY_TIME, .to = CUE_REPLAY_END, .from_time_ms = 1};
    cr_assert_eq(cue_replay_plan(&r, p, NP, failing_lookup, NULL, &err), CUE_EUNAVAILABLE);
    cr_assert(strstr(err.msg, "partition 0: broker gone"), "%s", err.msg);
}

Test(replay_partitioner, matches_librdkafka_names_and_spreads)
{
    int crc = cue_kafka_partitioner_find("consistent_random");
    cr_assert_geq(crc, 0);
    cr_assert_eq(cue_kafka_partitioner_find("consistent"), crc);
    int mm = cue_kafka_partitioner_find("murmur2_random");
    cr_assert_geq(mm, 0);
    cr_assert_neq(mm, crc);
    cr_assert_eq(cue_kafka_partitioner_find("round_robin"), -1);
    int hits[4] = {0}, differ = 0;
    char key[16];
    for (int i = 0; i < 400; i++) {
        int n = snprintf(key, sizeof key, "u%07d", i);
        int32_t a = cue_kafka_partition_of(crc, key, (size_t)n, 4);
        int32_t b = cue_kafka_partition_of(mm, key, (size_t)n, 4);
        cr_assert(a >= 0 && a < 4 && b >= 0 && b < 4);
        cr_assert_eq(a, cue_kafka_partition_of(crc, key, (size_t)n, 4), "stable");
        hits[a]++;
        differ += a != b;
    }
    for (int p = 0; p < 4; p++)
        cr_assert_gt(hits[p], 50, "partition %d got %d of 400", p, hits[p]);
    cr_assert_gt(differ, 100, "murmur2 and crc32 place keys differently");
    cr_assert_eq(cue_kafka_partition_of(crc, "", 0, 4), 0, "no key: partition 0");
}
