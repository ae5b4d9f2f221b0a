/* Time zones. Every expected instant was computed on the development machine
 * with GNU date over Debian's tzdata 2025b, not with the code under
 * test, e.g.
 *   TZ=America/Los_Angeles date -d "2026-11-01 01:30 PST" +%s   -> 1793525400
 *   TZ=America/Santiago zdump -v -c 2026,2027 America/Santiago  (the changes)
 * and day numbers as $(TZ=UTC date -d 2026-03-08 +%s) / 86400. date and the
 * code under test read the same compiled zones; the cases marked "since 2022"
 * are rules ICU 72's built-in tz data (2022e) got wrong, which the module used
 * before it read the system's data. */
#include "cuepoint/tz.h"

#include "cuepoint/limits.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))
#define S        1000LL /* seconds from date(1) to milliseconds */
#define HOUR_MS  3600000LL

static cue_tz *tz;

static void setup(void)
{
    cue_err err;
    cr_assert_eq(cue_tz_new(&tz, CUE_TZ_ZONES_MAX, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    cue_tz_free(tz);
    tz = NULL;
}

TestSuite(tz, .init = setup, .fini = teardown);

static int zone(const char *name)
{
    cue_err err;
    int z = -1;
    int rc = cue_tz_find(tz, name, strlen(name), &z, &err);
    cr_assert_eq(rc, 0, "%s: %s", name, err.msg);
    return z;
}

static void expect_civil(const char *what, const cue_civil *got, const cue_civil *want)
{
    cr_expect(got->year == want->year && got->month == want->month && got->day == want->day &&
                  got->hour == want->hour && got->minute == want->minute &&
                  got->second == want->second && got->millis == want->millis &&
                  got->weekday == want->weekday,
              "%s: got %04d-%02d-%02d %02d:%02d:%02d.%03d weekday %d, "
              "expected %04d-%02d-%02d %02d:%02d:%02d.%03d weekday %d",
              what, got->year, got->month, got->day, got->hour, got->minute, got->second,
              got->millis, got->weekday, want->year, want->month, want->day, want->hour,
              want->minute, want->second, want->millis, want->weekday);
}

typedef struct local_case {
    const char *zone;
    int64_t utc_ms;
    cue_civil local;
    int32_t offset_min;
} local_case;

/* Reads the clock and the offset at the case's instant, and finds the
 * instant again from the reading. */
static void expect_local_and_back(const local_case *c)
{
    char what[96];
    snprintf(what, sizeof what, "%s at %lld", c->zone, (long long)c->utc_ms);
    int z = zone(c->zone);
    cue_civil got;
    cue_tz_local(tz, z, c->utc_ms, &got);
    expect_civil(what, &got, &c->local);
    int32_t off = cue_tz_offset_ms(tz, z, c->utc_ms);
    cr_expect_eq(off, c->offset_min * 60000, "%s: offset %d ms, expected %d min", what, off,
                 c->offset_min);
    int64_t back = cue_tz_instant(tz, z, &c->local);
    cr_expect_eq(back, c->utc_ms, "%s: back to %lld", what, (long long)back);
}

/* Instants and their wall times, both ways; weekday 1 = Monday. */
Test(tz, local_and_back_table)
{
    static const local_case cases[] = {
        {"America/Los_Angeles", 1783193696 * S + 250, {2026, 7, 4, 12, 34, 56, 250, 6}, -7 * 60},
        {"America/Los_Angeles", 1767243600 * S, {2025, 12, 31, 21, 0, 0, 0, 3}, -8 * 60},
        {"Europe/Berlin", 1768460400 * S, {2026, 1, 15, 8, 0, 0, 0, 4}, 60},
        {"Asia/Kolkata", 1768444200 * S, {2026, 1, 15, 8, 0, 0, 0, 4}, 5 * 60 + 30},
        /* 2026-01-14T20:00Z is already Thursday the 15th in India. */
        {"Asia/Kolkata", 1768420800 * S, {2026, 1, 15, 1, 30, 0, 0, 4}, 5 * 60 + 30},
        /* Lord Howe: +11 in (southern) summer, +10:30 in winter. */
        {"Australia/Lord_Howe", 1768424400 * S, {2026, 1, 15, 8, 0, 0, 0, 4}, 11 * 60},
        {"Australia/Lord_Howe", 1784064600 * S, {2026, 7, 15, 8, 0, 0, 0, 3}, 10 * 60 + 30},
        {"UTC", 1768464000 * S + 999, {2026, 1, 15, 8, 0, 0, 999, 4}, 0},
        {"Etc/UTC", 0, {1970, 1, 1, 0, 0, 0, 0, 4}, 0},
        /* Proleptic Gregorian, as timefmt: calendar libraries often switch
         * to Julian before 1582 (ICU does; Python's datetime gave these). */
        {"UTC", -30610224000000LL, {1000, 1, 1, 0, 0, 0, 0, 3}, 0},
        {"UTC", -12219681600000LL, {1582, 10, 10, 12, 0, 0, 0, 7}, 0},
        /* Daylight time goes on as the zone's rule says to the end of
         * cuepoint's range; GLib alone stops computing it after 2999. */
        {"America/Los_Angeles", 32519646000 * S, {3000, 7, 4, 12, 0, 0, 0, 5}, -7 * 60},
        {"America/Los_Angeles", 253386730800 * S, {9999, 7, 4, 12, 0, 0, 0, 7}, -7 * 60},
        {"Australia/Lord_Howe", 253371963600 * S, {9999, 1, 15, 8, 0, 0, 0, 5}, 11 * 60},
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        expect_local_and_back(&cases[i]);
}

/* Rules changed since 2022, which only current tz data gets right: at noon
 * UTC on 2026-01-15 and 2026-07-01, e.g.
 *   TZ=America/Mexico_City date -d @1782907200 '+%F %T %u %z'
 *     -> 2026-07-01 06:00:00 3 -0600 */
Test(tz, rules_since_2022)
{
    static const local_case cases[] = {
        /* Mexico abolished daylight time in October 2022: -06 all year. */
        {"America/Mexico_City", 1768478400 * S, {2026, 1, 15, 6, 0, 0, 0, 4}, -6 * 60},
        {"America/Mexico_City", 1782907200 * S, {2026, 7, 1, 6, 0, 0, 0, 3}, -6 * 60},
        /* ... except on the US border: Ciudad Juarez, a zone since tz 2022g,
         * keeps US daylight time. */
        {"America/Ciudad_Juarez", 1768478400 * S, {2026, 1, 15, 5, 0, 0, 0, 4}, -7 * 60},
        {"America/Ciudad_Juarez", 1782907200 * S, {2026, 7, 1, 6, 0, 0, 0, 3}, -6 * 60},
        /* Egypt brought daylight time back in 2023. */
        {"Africa/Cairo", 1768478400 * S, {2026, 1, 15, 14, 0, 0, 0, 4}, 2 * 60},
        {"Africa/Cairo", 1782907200 * S, {2026, 7, 1, 15, 0, 0, 0, 3}, 3 * 60},
        /* Paraguay stays on -03 all year since 2024. */
        {"America/Asuncion", 1782907200 * S, {2026, 7, 1, 9, 0, 0, 0, 3}, -3 * 60},
        /* Kazakhstan moved to one zone, +05, in March 2024. */
        {"Asia/Almaty", 1782907200 * S, {2026, 7, 1, 17, 0, 0, 0, 3}, 5 * 60},
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        expect_local_and_back(&cases[i]);
}

/* Wall times on the change days: skipped ones move to the end of the gap,
 * repeated ones take the first (daylight) occurrence. */
Test(tz, instant_across_dst_changes)
{
    static const struct {
        const char *zone;
        cue_civil local;
        int64_t want_s;
    } cases[] = {
        /* Los Angeles spring forward, 2026-03-08 02:00 PST -> 03:00 PDT. */
        {"America/Los_Angeles", {2026, 3, 8, 1, 59, 59, 0, 0}, 1772963999},
        {"America/Los_Angeles", {2026, 3, 8, 2, 0, 0, 0, 0}, 1772964000},
        {"America/Los_Angeles", {2026, 3, 8, 2, 30, 0, 0, 0}, 1772964000},
        {"America/Los_Angeles", {2026, 3, 8, 2, 59, 59, 0, 0}, 1772964000},
        {"America/Los_Angeles", {2026, 3, 8, 3, 0, 0, 0, 0}, 1772964000},
        /* Los Angeles fall back, 2026-11-01 02:00 PDT -> 01:00 PST: 01:30
         * happens at 1793521800 (PDT) and 1793525400 (PST). */
        {"America/Los_Angeles", {2026, 11, 1, 1, 30, 0, 0, 0}, 1793521800},
        /* Berlin, 2026-03-29 02:00 CET -> 03:00 CEST. */
        {"Europe/Berlin", {2026, 3, 29, 2, 30, 0, 0, 0}, 1774746000},
        {"Europe/Berlin", {2026, 3, 29, 3, 0, 0, 0, 0}, 1774746000},
        /* Berlin, 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 at 1792888200
         * (CEST) and 1792891800 (CET). */
        {"Europe/Berlin", {2026, 10, 25, 2, 30, 0, 0, 0}, 1792888200},
        /* Lord Howe's half-hour change, 2026-10-04 02:00 -> 02:30. */
        {"Australia/Lord_Howe", {2026, 10, 4, 2, 15, 0, 0, 0}, 1791041400},
        /* Ciudad Juarez springs forward with the US (since 2022). */
        {"America/Ciudad_Juarez", {2026, 3, 8, 2, 30, 0, 0, 0}, 1772960400},
        /* Dublin, 2026-10-25 02:00 IST -> 01:00 GMT. tzdata flags Irish
         * winter time as the daylight one, so a daylight flag would pick the
         * second 01:30 (1792891800). */
        {"Europe/Dublin", {2026, 10, 25, 1, 30, 0, 0, 0}, 1792888200},
        /* Almaty, 2024-03-01 00:00 +06 -> 2024-02-29 23:00 +05: a repeated
         * hour with no daylight time on either side (since 2024). */
        {"Asia/Almaty", {2024, 2, 29, 23, 30, 0, 0, 0}, 1709227800},
        /* Daylight time after 2999: spring forward in 9999, the last year
         * cuepoint handles, and fall back in 3000. */
        {"America/Los_Angeles", {9999, 3, 14, 2, 30, 0, 0, 0}, 253377021600},
        {"America/Los_Angeles", {3000, 11, 2, 1, 30, 0, 0, 0}, 32530062600},
        /* Out-of-range fields carry over: March 0th is the last of February,
         * hour 24 is the next midnight. */
        {"Europe/Berlin", {2026, 3, 30, -21, 0, 0, 0, 0}, 1774746000},
        {"America/Los_Angeles", {2026, 11, 0, 24, 0, 0, 0, 0}, 1793516400},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        const cue_civil *l = &cases[i].local;
        int64_t got = cue_tz_instant(tz, zone(cases[i].zone), l);
        cr_expect_eq(got, cases[i].want_s * S,
                     "%s %04d-%02d-%02d %02d:%02d:%02d: %lld, expected %lld (off by %lld s)",
                     cases[i].zone, l->year, l->month, l->day, l->hour, l->minute, l->second,
                     (long long)got, (long long)(cases[i].want_s * S),
                     (long long)(got / S - cases[i].want_s));
    }
}

/* Both occurrences of a repeated wall time read the same on the clock, with
 * the offset telling them apart. */
Test(tz, repeated_hour_reads_the_same_twice)
{
    static const struct {
        const char *zone;
        int64_t first_s, second_s;
        int hour, minute;
        int32_t first_off_h, second_off_h;
    } cases[] = {
        {"America/Los_Angeles", 1793521800, 1793525400, 1, 30, -7, -8},
        {"Europe/Berlin", 1792888200, 1792891800, 2, 30, 2, 1},
        {"Europe/Dublin", 1792888200, 1792891800, 1, 30, 1, 0},
        {"Asia/Almaty", 1709227800, 1709231400, 23, 30, 6, 5},
        {"America/Los_Angeles", 32530062600, 32530066200, 1, 30, -7, -8},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        int z = zone(cases[i].zone);
        int64_t at[2] = {cases[i].first_s * S, cases[i].second_s * S};
        int32_t off_h[2] = {cases[i].first_off_h, cases[i].second_off_h};
        for (int k = 0; k < 2; k++) {
            cue_civil c;
            cue_tz_local(tz, z, at[k], &c);
            cr_expect(c.hour == cases[i].hour && c.minute == cases[i].minute,
                      "%s occurrence %d: %02d:%02d", cases[i].zone, k + 1, c.hour, c.minute);
            cr_expect_eq(cue_tz_offset_ms(tz, z, at[k]), off_h[k] * HOUR_MS, "%s occurrence %d",
                         cases[i].zone, k + 1);
            /* Either reading maps back to the first occurrence. */
            cr_expect_eq(cue_tz_instant(tz, z, &c), at[0], "%s occurrence %d back", cases[i].zone,
                         k + 1);
        }
    }
}

typedef struct quiet_case {
    const char *zone;
    int start_min, end_min;
    int64_t at_s;
    bool inside;
    int64_t ends_s; /* when inside */
} quiet_case;

static void expect_quiet(const quiet_case *c)
{
    int64_t ends = -1;
    bool got = cue_tz_quiet(tz, zone(c->zone), c->at_s * S, c->start_min, c->end_min, &ends);
    cr_expect_eq(got, c->inside, "%s [%d,%d) at %lld: inside %d, expected %d", c->zone,
                 c->start_min, c->end_min, (long long)c->at_s, got, c->inside);
    int64_t want = c->inside ? c->ends_s * S : -1;
    cr_expect_eq(ends, want, "%s [%d,%d) at %lld: ends %lld, expected %lld (off by %lld s)",
                 c->zone, c->start_min, c->end_min, (long long)c->at_s, (long long)ends,
                 (long long)want, (long long)((ends - want) / S));
}

Test(tz, quiet_hours_table)
{
    static const quiet_case cases[] = {
        /* 21:00-08:00 in Los Angeles across the spring-forward night: the
         * night is an hour shorter, the window still ends at 08:00 PDT. */
        {"America/Los_Angeles", 1260, 480, 1772953200, true, 1772982000}, /* 03-07 23:00 */
        {"America/Los_Angeles", 1260, 480, 1772981940, true, 1772982000}, /* 03-08 07:59 */
        {"America/Los_Angeles", 1260, 480, 1772982000, false, 0},         /* 03-08 08:00 */
        {"America/Los_Angeles", 1260, 480, 1773001800, false, 0},         /* 03-08 13:30 */
        /* ... and across fall back: 22:00 PDT to 08:00 PST is 11 hours. */
        {"America/Los_Angeles", 1260, 480, 1793509200, true, 1793548800}, /* 10-31 22:00 */
        /* 21:00 is in, 08:00 is out; this night in Berlin is 10 hours. */
        {"Europe/Berlin", 1260, 480, 1774728000, true, 1774764000}, /* 03-28 21:00 */
        {"Europe/Berlin", 1260, 480, 1774850400, false, 0},         /* 03-30 08:00 */
        /* Window ending at 02:30 on spring-forward night: ends when the clock
         * jumps to 03:00. */
        {"America/Los_Angeles", 1260, 150, 1772953200, true, 1772964000}, /* 03-07 23:00 */
        {"America/Los_Angeles", 1260, 150, 1772963100, true, 1772964000}, /* 03-08 01:45 */
        {"America/Los_Angeles", 1260, 150, 1772964000, false, 0},         /* 03-08 03:00 */
        {"Europe/Berlin", 1260, 150, 1774742400, true, 1774746000},       /* 03-29 01:00 */
        /* A window not crossing midnight: 13:00-14:00. */
        {"America/Los_Angeles", 780, 840, 1773001800, true, 1773003600}, /* 13:30 */
        {"America/Los_Angeles", 780, 840, 1773003600, false, 0},         /* 14:00 */
        /* Start == end is no window. */
        {"America/Los_Angeles", 480, 480, 1772981940, false, 0},
        /* 22:00-01:30 on fall-back night: 01:15 is inside both times, and
         * each time the window ends at the 01:30 that follows. 01:40 PDT is
         * outside even though 01:00-01:30 PST comes after it. */
        {"America/Los_Angeles", 1320, 90, 1793521800 - 900, true, 1793521800}, /* 01:15 PDT */
        {"America/Los_Angeles", 1320, 90, 1793521800 + 600, false, 0},         /* 01:40 PDT */
        {"America/Los_Angeles", 1320, 90, 1793525400 - 900, true, 1793525400}, /* 01:15 PST */
        {"America/Los_Angeles", 1320, 90, 1793525400, false, 0},               /* 01:30 PST */
        /* Berlin's repeated 02:00-03:00 with a window ending at 02:45. */
        {"Europe/Berlin", 1320, 165, 1792888200, true, 1792889100}, /* 02:30 CEST */
        {"Europe/Berlin", 1320, 165, 1792891800, true, 1792892700}, /* 02:30 CET */
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        expect_quiet(&cases[i]);
}

Test(tz, quiet_without_ends_pointer)
{
    cr_expect(cue_tz_quiet(tz, zone("UTC"), 1768464000 * S, 420, 540, NULL)); /* 08:00 */
    cr_expect(!cue_tz_quiet(tz, zone("UTC"), 1768464000 * S, 540, 420, NULL));
}

/* Local days across changes: 23- and 25-hour days, and a day that does not
 * begin at midnight. */
Test(tz, days_across_changes)
{
    static const struct {
        const char *zone;
        int64_t day, start_s, next_start_s;
        int hours;
    } cases[] = {
        {"America/Los_Angeles", 20520, 1772956800, 1773039600, 23}, /* 2026-03-08 */
        {"America/Los_Angeles", 20758, 1793516400, 1793606400, 25}, /* 2026-11-01 */
        {"Europe/Berlin", 20541, 1774738800, 1774821600, 23},       /* 2026-03-29 */
        {"Europe/Berlin", 20751, 1792879200, 1792969200, 25},       /* 2026-10-25 */
        /* Santiago skips 00:00-01:00 on 2026-09-06: the day starts at 01:00. */
        {"America/Santiago", 20702, 1788667200, 1788750000, 23},
        /* ... and repeats 23:00-24:00 on 2026-04-04. */
        {"America/Santiago", 20547, 1775271600, 1775361600, 25},
        {"Asia/Kolkata", 20468, 1768415400, 1768501800, 24}, /* 2026-01-15 */
        /* Cairo skips 00:00-01:00 on 2026-04-24 (daylight time since 2023). */
        {"Africa/Cairo", 20567, 1776981600, 1777064400, 23},
        /* Almaty's 2024-02-29 repeats 23:00-24:00 and is 25 hours long. */
        {"Asia/Almaty", 19782, 1709143200, 1709233200, 25},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        int z = zone(cases[i].zone);
        int64_t start = cue_tz_day_start(tz, z, cases[i].day);
        int64_t next = cue_tz_day_start(tz, z, cases[i].day + 1);
        cr_expect_eq(start, cases[i].start_s * S, "%s day %lld starts %lld, expected %lld",
                     cases[i].zone, (long long)cases[i].day, (long long)start,
                     (long long)(cases[i].start_s * S));
        cr_expect_eq(next, cases[i].next_start_s * S, "%s day %lld ends %lld", cases[i].zone,
                     (long long)cases[i].day, (long long)next);
        cr_expect_eq(next - start, cases[i].hours * HOUR_MS, "%s day %lld is %lld ms long",
                     cases[i].zone, (long long)cases[i].day, (long long)(next - start));
        /* The first and last millisecond belong to the day, their neighbours
         * do not. */
        int64_t d[4] = {cue_tz_day(tz, z, start - 1), cue_tz_day(tz, z, start),
                        cue_tz_day(tz, z, next - 1), cue_tz_day(tz, z, next)};
        int64_t want[4] = {cases[i].day - 1, cases[i].day, cases[i].day, cases[i].day + 1};
        for (int k = 0; k < 4; k++)
            cr_expect_eq(d[k], want[k], "%s day %lld, probe %d: %lld", cases[i].zone,
                         (long long)cases[i].day, k, (long long)d[k]);
    }
}

/* Every quarter hour of 2026 in Los Angeles and Lord Howe, and of 9999 in
 * Los Angeles: reading the clock and finding the instant again round-trips
 * (except in the repeated hour, which maps to its first occurrence), and each
 * instant lies in its day. */
Test(tz, round_trip_through_a_year)
{
    const char *zones[] = {"America/Los_Angeles", "Australia/Lord_Howe", "America/Los_Angeles"};
    const int64_t years[][2] = {{1767225600, 1798761600}, /* 2026 UTC */
                                {1767225600, 1798761600},
                                {253370764800, 253402300800}}; /* 9999 UTC */
    const int64_t step = 15 * 60 * S;
    for (size_t zi = 0; zi < COUNT(zones); zi++) {
        int z = zone(zones[zi]);
        const int64_t from = years[zi][0] * S, to = years[zi][1] * S;
        int repeated = 0;
        for (int64_t t = from; t < to; t += step) {
            cue_civil c;
            cue_tz_local(tz, z, t, &c);
            int64_t back = cue_tz_instant(tz, z, &c);
            if (back != t) {
                /* Only allowed for the second occurrence of a wall time. */
                cr_assert(back < t && cue_tz_offset_ms(tz, z, back) > cue_tz_offset_ms(tz, z, t),
                          "%s: %lld maps back to %lld", zones[zi], (long long)t, (long long)back);
                repeated++;
            }
            int64_t day = cue_tz_day(tz, z, t);
            cr_assert(cue_tz_day_start(tz, z, day) <= t && t < cue_tz_day_start(tz, z, day + 1),
                      "%s: %lld outside its day %lld", zones[zi], (long long)t, (long long)day);
        }
        /* One repeated hour (4 quarters) in LA, half an hour (2) on Lord Howe. */
        cr_expect_eq(repeated, zi == 1 ? 2 : 4, "%s: %d repeated quarter hours", zones[zi],
                     repeated);
    }
}

Test(tz, names_found_and_not)
{
    int la = zone("America/Los_Angeles");
    cr_expect_eq(zone("America/Los_Angeles"), la, "the same name twice is one zone");
    /* A link reads the same clock. */
    int pacific = zone("US/Pacific");
    cue_civil a, b;
    cue_tz_local(tz, la, 1793525400 * S, &a);
    cue_tz_local(tz, pacific, 1793525400 * S, &b);
    expect_civil("US/Pacific", &b, &a);
    cr_expect_eq(cue_tz_offset_ms(tz, pacific, 1793525400 * S), -8 * HOUR_MS);
    zone("UTC");
    zone("Etc/UTC");
    zone("Asia/Calcutta"); /* the old name of Asia/Kolkata */
    zone("Etc/GMT+5");     /* IANA's fixed zone five hours west */
    zone("EST5EDT");
    /* A zone since tz 2022g: ICU 72 did not know it. */
    int juarez = zone("America/Ciudad_Juarez");
    cr_expect_eq(cue_tz_offset_ms(tz, juarez, 1782907200 * S), -6 * HOUR_MS);

    /* Not found: unknown, the wrong case (tz names are case-sensitive),
     * ICU's placeholder and legacy alias, offsets and POSIX TZ rules (GLib
     * would read both as zones), paths, files beside the zones that are no
     * IANA name, bytes IANA names never have. */
    static const char *unknown[] = {
        "Mars/Olympus",
        "europe/berlin",
        "EUROPE/BERLIN",
        "Etc/Unknown",
        "AET",
        "GMT+05:00",
        "+05:00",
        "+05",
        "-0500",
        "Z",
        "Foo5",
        "EST5",
        "Europe/Berlin ",
        "Europe/",
        "Europe",
        "Europe//Berlin",
        "/Europe/Berlin",
        "/usr/share/zoneinfo/Europe/Berlin",
        "../zoneinfo/Europe/Berlin",
        "Europe/../UTC",
        "right/UTC",
        "posix/Europe/Berlin",
        "localtime",
        "posixrules",
        "zone.tab",
        "tzdata.zi",
        "leapseconds",
        "Europe/Berlín",
    };
    for (size_t i = 0; i < COUNT(unknown); i++) {
        cue_err err;
        int z = 77;
        int rc = cue_tz_find(tz, unknown[i], strlen(unknown[i]), &z, &err);
        cr_expect_eq(rc, CUE_ENOTFOUND, "\"%s\": rc %d", unknown[i], rc);
        cr_expect_eq(z, 77, "\"%s\": handle written on failure", unknown[i]);
        /* The message names the zone, unless it has bytes a log line should
         * not carry. */
        if (strchr(unknown[i], '\xc3') == NULL)
            cr_expect(strstr(err.msg, unknown[i]) != NULL, "\"%s\": message \"%s\"", unknown[i],
                      err.msg);
    }
    cue_err err;
    int z;
    cr_expect_eq(cue_tz_find(tz, "", 0, &z, &err), CUE_ENOTFOUND);
    /* Length is what counts, not a NUL: a prefix is not the zone, and an
     * embedded NUL is not ignored. */
    cr_expect_eq(cue_tz_find(tz, "Europe/Berlin", 6, &z, &err), CUE_ENOTFOUND);
    cr_expect_eq(cue_tz_find(tz, "Europe/Berlin\0x", 15, &z, &err), CUE_ENOTFOUND);
    char longname[CUE_TZ_NAME_BYTES_MAX + 2];
    memset(longname, 'A', sizeof longname);
    cr_expect_eq(cue_tz_find(tz, longname, CUE_TZ_NAME_BYTES_MAX + 1, &z, &err), CUE_ENOTFOUND);
    cr_expect(strstr(err.msg, "65 bytes") != NULL, "%s", err.msg);
}

Test(tz, cache_is_bounded)
{
    cue_err err;
    cue_tz *small = NULL;
    cr_expect_eq(cue_tz_new(&small, 0, &err), CUE_EINVAL);
    cr_expect_eq(cue_tz_new(&small, CUE_TZ_ZONES_MAX + 1, &err), CUE_EINVAL);
    cr_assert_eq(cue_tz_new(&small, 2, &err), 0, "%s", err.msg);
    int a, b, c = -1;
    cr_assert_eq(cue_tz_find(small, "Europe/Berlin", 13, &a, &err), 0);
    cr_assert_eq(cue_tz_find(small, "UTC", 3, &b, &err), 0);
    cr_expect_eq(cue_tz_find(small, "Asia/Tokyo", 10, &c, &err), CUE_EFULL);
    cr_expect(strstr(err.msg, "Asia/Tokyo") != NULL, "%s", err.msg);
    cr_expect_eq(c, -1);
    /* Full, an unknown name is still reported as unknown, and zones held
     * are still found and work. */
    cr_expect_eq(cue_tz_find(small, "Mars/Olympus", 12, &c, &err), CUE_ENOTFOUND);
    cr_expect_eq(cue_tz_find(small, "Europe/Berlin", 13, &c, &err), 0);
    cr_expect_eq(c, a);
    cr_expect_eq(cue_tz_offset_ms(small, a, 1768460400 * S), HOUR_MS);
    cue_tz_free(small);
    cue_tz_free(NULL);
}

/* The process's TZ changes nothing. */
Test(tz, independent_of_process_tz)
{
    int berlin = zone("Europe/Berlin");
    setenv("TZ", "Pacific/Kiritimati", 1);
    tzset();
    cue_civil c;
    cue_tz_local(tz, berlin, 1768460400 * S, &c);
    cr_expect(c.hour == 8 && c.day == 15, "%02d:00 on the %d", c.hour, c.day);
    int later = zone("Asia/Kolkata"); /* opened after the change */
    cr_expect_eq(cue_tz_offset_ms(tz, later, 1768460400 * S), 5 * HOUR_MS + 30 * 60000);
    cr_expect_eq(cue_tz_offset_ms(tz, zone("UTC"), 0), 0);
}

/* TZDIR, as for glibc, names the directory of compiled zones. */
Test(tz, zoneinfo_directory_from_tzdir)
{
    setenv("TZDIR", "/nonexistent/zoneinfo", 1);
    cue_err err;
    int z;
    cr_expect_eq(cue_tz_find(tz, "Asia/Tokyo", 10, &z, &err), CUE_ENOTFOUND);
    cr_expect(strstr(err.msg, "/nonexistent/zoneinfo") != NULL, "%s", err.msg);
    setenv("TZDIR", "/usr/share/zoneinfo", 1);
    cr_expect_eq(cue_tz_find(tz, "Asia/Tokyo", 10, &z, &err), 0, "%s", err.msg);
}

/* The version is the one the system's tzdata.zi names ("2025b" here). */
Test(tz, data_version_is_the_systems)
{
    const char *v = cue_tz_data_version();
    char line[64] = "";
    FILE *f = fopen("/usr/share/zoneinfo/tzdata.zi", "r");
    cr_assert(f != NULL, "tzdata is not installed (scripts/deps.sh)");
    cr_assert(fgets(line, sizeof line, f) != NULL);
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    cr_expect(strncmp(line, "# version ", 10) == 0 && strcmp(line + 10, v) == 0,
              "\"%s\" from \"%s\"", v, line);
}

/* A cache of its own for each question: nothing remembered. */
static cue_tz *fresh(const char *name, int *z)
{
    cue_tz *f;
    cue_err err;
    cr_assert_eq(cue_tz_new(&f, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(cue_tz_find(f, name, strlen(name), z, &err), 0, "%s", err.msg);
    return f;
}

/* What a zone remembers of the intervals its instants fell in changes no
 * answer: one cache asked in stream order (each instant a little after the
 * last) and out of it (anywhere in 2011-2028), around the changes of zones
 * with odd rules (a skipped day, half-hour daylight time, winter time as
 * the flagged one), answers as a cache that has seen nothing. */
Test(tz, remembered_intervals_change_no_answer)
{
    static const char *const names[] = {"America/Los_Angeles", "Europe/Dublin",
                                        "Australia/Lord_Howe", "Pacific/Apia", "America/Santiago"};
    unsigned seed = 3;
    for (size_t n = 0; n < COUNT(names); n++) {
        int z = zone(names[n]), fz;
        int64_t t = 1293840000000LL; /* 2011-01-01T00:00Z */
        for (int q = 0; q < 1500; q++) {
            seed = seed * 1103515245 + 12345;
            if (q % 2 == 0) t += (int64_t)((seed >> 8) % 360) * 60000; /* up to 6 h on */
            int64_t at = q % 2 == 0 ? t : 1293840000000LL + (int64_t)((seed >> 4) % 557000000) * S;
            char what[96];
            snprintf(what, sizeof what, "%s, question %d at %lld", names[n], q, (long long)at);

            cue_civil got, want;
            cue_tz_local(tz, z, at, &got);
            cue_tz *f = fresh(names[n], &fz);
            cue_tz_local(f, fz, at, &want);
            cue_tz_free(f);
            expect_civil(what, &got, &want);

            f = fresh(names[n], &fz);
            cr_expect_eq(cue_tz_offset_ms(tz, z, at), cue_tz_offset_ms(f, fz, at), "%s: offset",
                         what);
            cue_tz_free(f);

            /* The day's 09:00 and a reading in the small hours, where the
             * clock jumps or repeats. */
            for (int h = 0; h < 2; h++) {
                cue_civil c = want;
                c.hour = h ? 2 : 9;
                c.minute = h ? 30 : 0;
                c.second = c.millis = 0;
                f = fresh(names[n], &fz);
                int64_t expect = cue_tz_instant(f, fz, &c);
                cue_tz_free(f);
                cr_expect_eq(cue_tz_instant(tz, z, &c), expect, "%s: instant at %02d:%02d", what,
                             c.hour, c.minute);
            }

            int64_t day = cue_tz_day(tz, z, at);
            f = fresh(names[n], &fz);
            cr_expect_eq(day, cue_tz_day(f, fz, at), "%s: day", what);
            cue_tz_free(f);
            f = fresh(names[n], &fz);
            cr_expect_eq(cue_tz_day_start(tz, z, day), cue_tz_day_start(f, fz, day),
                         "%s: day start", what);
            cue_tz_free(f);

            int64_t ends = 0, fends = 0;
            bool quiet = cue_tz_quiet(tz, z, at, 22 * 60, 7 * 60, &ends);
            f = fresh(names[n], &fz);
            bool fquiet = cue_tz_quiet(f, fz, at, 22 * 60, 7 * 60, &fends);
            cue_tz_free(f);
            cr_expect(quiet == fquiet && ends == fends,
                      "%s: quiet %d until %lld, expected %d until %lld", what, quiet,
                      (long long)ends, fquiet, (long long)fends);
        }
    }
}

/* cue_tz_found knows only what this cache's finds found. */
Test(tz, found_names_only_what_was_found)
{
    cr_expect_eq(cue_tz_found(tz, "Europe/Berlin", 13), -1, "not found yet");
    int z = zone("Europe/Berlin");
    cr_expect_eq(cue_tz_found(tz, "Europe/Berlin", 13), z);
    cr_expect_eq(cue_tz_found(tz, "Europe/Berli", 12), -1);
    cr_expect_eq(cue_tz_found(tz, "Not/AZone", 9), -1);
    cr_expect_eq(cue_tz_found(tz, "", 0), -1);
    cue_err err;
    int bad = -1;
    cr_expect_neq(cue_tz_find(tz, "Not/AZone", 9, &bad, &err), 0);
    cr_expect_eq(cue_tz_found(tz, "Not/AZone", 9), -1, "an unknown name is not kept");
}
