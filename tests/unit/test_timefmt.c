/* RFC 3339 and durations. Epoch values come from an independent source
 * (Python's datetime, and a day count kept by a plain loop below), never from
 * the code under test. */
#include "cuepoint/timefmt.h"

#include "cuepoint/err.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

#define T_MIN (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define T_MAX 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

static void expect_parse(const char *text, int want_rc, int64_t want_ms)
{
    int64_t ms = 123456789;
    int rc = cue_time_parse_rfc3339(text, strlen(text), &ms);
    cr_expect_eq(rc, want_rc, "'%s': rc %d, expected %d", text, rc, want_rc);
    if (rc == 0 && want_rc == 0)
        cr_expect_eq(ms, want_ms, "'%s': %lld, expected %lld (off by %lld ms)", text, (long long)ms,
                     (long long)want_ms, (long long)(ms - want_ms));
    if (rc != 0) cr_expect_eq(ms, 123456789, "'%s': output written on failure", text);
}

Test(timefmt, rfc3339_valid_table)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-03-02T08:00:00Z", 1772438400000},
        /* offsets */
        {"2026-03-02T09:00:00+01:00", 1772438400000},
        {"2026-03-02T02:30:00.5-05:30", 1772438400500},
        {"2026-03-02T08:00:00-00:00", 1772438400000},
        {"2026-03-01T10:00:00+23:59", 1772272860000},
        {"2026-03-01T10:00:00-23:59", 1772445540000},
        {"2026-01-01T00:30:00+01:00", 1767223800000}, /* the previous year in UTC */
        /* separators and case */
        {"2026-03-02t08:00:00z", 1772438400000},
        {"2026-03-02 08:00:00Z", 1772438400000},
        /* fractions: milliseconds kept, the rest truncated, never rounded */
        {"1970-01-01T00:00:00.1Z", 100},
        {"1970-01-01T00:00:00.12Z", 120},
        {"1970-01-01T00:00:00.123Z", 123},
        {"1970-01-01T00:00:00.1239Z", 123},
        {"1970-01-01T00:00:00.999999999999Z", 999},
        {"1970-01-01T00:00:00.000Z", 0},
        /* leap days */
        {"2024-02-29T00:00:00Z", 1709164800000},
        {"2000-02-29T12:00:00Z", 951825600000},
        {"1600-02-29T23:59:59Z", -11670912001000},
        {"0000-02-29T00:00:00Z", -62162121600000},
        {"2100-02-28T23:59:59Z", 4107542399000},
        {"2100-03-01T00:00:00Z", 4107542400000},
        /* before 1970 */
        {"1969-12-31T23:59:59.999Z", -1},
        {"1969-07-20T20:17:40Z", -14182940000},
        {"1900-01-01T00:00:00Z", -2208988800000},
        {"1583-10-15T00:00:00Z", -12187756800000},
        {"0001-01-01T00:00:00Z", -62135596800000},
        {"0000-01-01T00:00:00Z", T_MIN},
        {"9999-12-31T23:59:59.999Z", T_MAX},
        {"0000-01-01T02:00:00+02:00", T_MIN},
        {"9999-12-31T21:59:59.999-02:00", T_MAX},
        {"2038-01-19T03:14:08Z", 2147483648000},
        /* a leap second is the last millisecond of its minute */
        {"2016-12-31T23:59:60Z", 1483228799999},
        {"2016-12-31T23:59:60.5Z", 1483228799999},
        {"2017-01-01T00:59:60+01:00", 1483228799999},
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        expect_parse(cases[i].text, 0, cases[i].ms);
}

Test(timefmt, rfc3339_invalid_table)
{
    static const char *cases[] = {
        /* calendar */
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-06-31T00:00:00Z",
        "2026-09-31T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-03-00T00:00:00Z",
        /* clock */
        "2026-03-02T24:00:00Z",
        "2026-03-02T23:60:00Z",
        "2026-03-02T23:59:61Z",
        "2026-03-02T99:00:00Z",
        /* offsets */
        "2026-03-02T08:00:00",
        "2026-03-02T08:00:00+0100",
        "2026-03-02T08:00:00+01",
        "2026-03-02T08:00:00+1:00",
        "2026-03-02T08:00:00+24:00",
        "2026-03-02T08:00:00+01:60",
        "2026-03-02T08:00:00 Z",
        "2026-03-02T08:00:00GMT",
        "2026-03-02T08:00:00UTC",
        "2026-03-02T08:00:00ZZ",
        "2026-03-02T08:00:00Z+01:00",
        /* shape */
        "",
        "2026",
        "2026-03-02",
        "2026-03-02T",
        "2026-03-02T08:00Z",
        "2026-03-02T08:00:00.Z",
        "2026-03-02T08:00:00,5Z",
        "2026-03-02T08:00:00Z ",
        " 2026-03-02T08:00:00Z",
        "26-03-02T08:00:00Z",
        "02026-03-02T08:00:00Z",
        "2026-3-02T08:00:00Z",
        "2026-03-2T08:00:00Z",
        "2026-03-02T8:00:00Z",
        "2026/03/02T08:00:00Z",
        "2026-03-02X08:00:00Z",
        "2026-03-02T08-00-00Z",
        "2026-03-02T08-00:00Z",
        "2026-03-02T08:00-00Z",
        "+2026-03-02T08:00:00Z",
        "-0001-03-02T08:00:00Z",
        "2026-+3-02T08:00:00Z",
        "2026-03-02T08:00:0xZ",
        "1772438400000",
        /* Found by fuzzing: an offset took these past the instants RFC 3339
         * text can name, so they formatted as another time. */
        "0000-01-01T00:00:00.5+02:00",
        "0000-01-01T01:59:59.999+02:00",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T22:00:00-02:00",
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        expect_parse(cases[i], CUE_EPARSE, 0);
}

Test(timefmt, rfc3339_reads_only_its_length)
{
    /* The text is bounded by len, not by a NUL. */
    int64_t ms;
    cr_expect_eq(cue_time_parse_rfc3339("2026-03-02T08:00:00Zjunk", 20, &ms), 0);
    cr_expect_eq(ms, 1772438400000);
    cr_expect_eq(cue_time_parse_rfc3339("2026-03-02T08:00:00Z", 19, &ms), CUE_EPARSE);
    cr_expect_eq(cue_time_parse_rfc3339("2026-03-02T08:00:00.5Z", 21, &ms), CUE_EPARSE);
    cr_expect_eq(cue_time_parse_rfc3339(NULL, 0, &ms), CUE_EPARSE);
}

/* Days from 1970-01-01 to Jan 1 of every year, counted one year at a time with
 * the leap rule written out here: an independent check of days-from-civil. */
Test(timefmt, every_new_year_against_a_plain_day_count)
{
    int64_t day = 0;
    for (int y = 1970; y <= 9999; y++) {
        char text[32];
        snprintf(text, sizeof text, "%04d-01-01T00:00:00Z", y);
        int64_t ms;
        cr_assert_eq(cue_time_parse_rfc3339(text, strlen(text), &ms), 0, "%s", text);
        cr_assert_eq(ms, day * 86400000, "%s: %lld, expected %lld", text, (long long)ms,
                     (long long)(day * 86400000));
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        day += leap ? 366 : 365;
    }
    day = 0;
    for (int y = 1969; y >= 0; y--) {
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        day -= leap ? 366 : 365;
        char text[32];
        snprintf(text, sizeof text, "%04d-01-01T00:00:00Z", y);
        int64_t ms;
        cr_assert_eq(cue_time_parse_rfc3339(text, strlen(text), &ms), 0, "%s", text);
        cr_assert_eq(ms, day * 86400000, "%s: %lld, expected %lld", text, (long long)ms,
                     (long long)(day * 86400000));
    }
}

Test(timefmt, format_table)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {1772438400123, "2026-03-02T08:00:00.123Z"},
        {1234567890123, "2009-02-13T23:31:30.123Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {-1001, "1969-12-31T23:59:58.999Z"},
        {-86400000, "1969-12-31T00:00:00.000Z"},
        {-86400001, "1969-12-30T23:59:59.999Z"},
        {-14182940000, "1969-07-20T20:17:40.000Z"},
        {-2208988800000, "1900-01-01T00:00:00.000Z"},
        {951782400000, "2000-02-29T00:00:00.000Z"},
        {1709164800000, "2024-02-29T00:00:00.000Z"},
        {-62162121600000, "0000-02-29T00:00:00.000Z"},
        {T_MIN, "0000-01-01T00:00:00.000Z"},
        {T_MAX, "9999-12-31T23:59:59.999Z"},
        /* outside what RFC 3339 can write: the nearest instant it can */
        {T_MIN - 1, "0000-01-01T00:00:00.000Z"},
        {T_MAX + 1, "9999-12-31T23:59:59.999Z"},
        {INT64_MIN, "0000-01-01T00:00:00.000Z"},
        {INT64_MAX, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char out[CUE_TIME_TEXT_MAX];
        memset(out, 'Z', sizeof out);
        size_t n = cue_time_format_rfc3339(cases[i].ms, out);
        cr_expect_str_eq(out, cases[i].text, "%lld: '%s', expected '%s'", (long long)cases[i].ms,
                         out, cases[i].text);
        cr_expect_eq(n, 24, "%lld: length %zu", (long long)cases[i].ms, n);
    }
}

Test(timefmt, format_then_parse_round_trips)
{
    /* Every day from 1600 to 2400 (leap rules of every kind), at a different
     * time of day each, then a stride across the whole range. */
    int64_t from = -11676096000000 / 86400000, to = 13569465600000 / 86400000;
    for (int64_t day = from; day < to; day++) {
        char out[CUE_TIME_TEXT_MAX];
        int64_t ms = day * 86400000 + (day * 7919) % 86400000, back;
        if (ms < day * 86400000) ms += 86400000;
        size_t n = cue_time_format_rfc3339(ms, out);
        cr_assert(cue_time_parse_rfc3339(out, n, &back) == 0 && back == ms,
                  "%lld: '%s' reads back as %lld", (long long)ms, out, (long long)back);
    }
    for (int64_t ms = T_MIN; ms <= T_MAX - 99999999977; ms += 99999999977) {
        char out[CUE_TIME_TEXT_MAX];
        int64_t back;
        size_t n = cue_time_format_rfc3339(ms, out);
        cr_assert(cue_time_parse_rfc3339(out, n, &back) == 0 && back == ms,
                  "%lld: '%s' reads back as %lld", (long long)ms, out, (long long)back);
    }
}

/* ---- durations --------------------------------------------------------- */

Test(timefmt, duration_parse_table)
{
    static const struct {
        const char *text;
        int rc;
        int64_t ms;
    } cases[] = {
        {"72h", 0, 259200000},
        {"14d", 0, 1209600000},
        {"30m", 0, 1800000},
        {"45s", 0, 45000},
        {"250ms", 0, 250},
        {"2w", 0, 1209600000},
        {"1h30m", 0, 5400000},
        {"1w2d", 0, 777600000},
        {"1m1s", 0, 61000},
        {"1ms", 0, 1},
        {"1d2h3m4s5ms", 0, 93784005},
        {"0s", 0, 0},
        {"0ms", 0, 0},
        {"007s", 0, 7000},
        {"1h1h", 0, 7200000}, /* a sum, so a repeated unit adds up */
        {"9223372036854775807ms", 0, INT64_MAX},
        {"106751991167d", 0, 9223372036828800000},
        /* overflow */
        {"9223372036854775808ms", CUE_EPARSE, 0},
        {"106751991168d", CUE_EPARSE, 0},
        {"99999999999999999999d", CUE_EPARSE, 0},
        {"9223372036854775807ms1ms", CUE_EPARSE, 0},
        {"15250284453w", CUE_EPARSE, 0},
        /* empty, no amount, no unit, unknown unit */
        {"", CUE_EPARSE, 0},
        {"h", CUE_EPARSE, 0},
        {"ms", CUE_EPARSE, 0},
        {"10", CUE_EPARSE, 0},
        {"1h30", CUE_EPARSE, 0},
        {"5y", CUE_EPARSE, 0},
        {"1H", CUE_EPARSE, 0},
        {"1hh", CUE_EPARSE, 0},
        {"1mss", CUE_EPARSE, 0},
        {"1us", CUE_EPARSE, 0},
        /* signs, spaces, fractions */
        {"-1h", CUE_EPARSE, 0},
        {"+1h", CUE_EPARSE, 0},
        {"3 days", CUE_EPARSE, 0},
        {" 1h", CUE_EPARSE, 0},
        {"1h ", CUE_EPARSE, 0},
        {"1h 30m", CUE_EPARSE, 0},
        {"1.5h", CUE_EPARSE, 0},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        int64_t ms = -42;
        int rc = cue_duration_parse(cases[i].text, strlen(cases[i].text), &ms);
        cr_expect_eq(rc, cases[i].rc, "'%s': rc %d, expected %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && cases[i].rc == 0)
            cr_expect_eq(ms, cases[i].ms, "'%s': %lld, expected %lld", cases[i].text, (long long)ms,
                         (long long)cases[i].ms);
        if (rc != 0) cr_expect_eq(ms, -42, "'%s': output written on failure", cases[i].text);
    }
    int64_t ms;
    cr_expect_eq(cue_duration_parse("1h30m", 2, &ms), 0, "only the first 2 bytes are read");
    cr_expect_eq(ms, 3600000);
}

Test(timefmt, duration_format_table)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "0ms"},
        {1, "1ms"},
        {250, "250ms"},
        {1000, "1s"},
        {61000, "1m1s"},
        {3600000, "1h"},
        {5400000, "1h30m"},
        {5400250, "1h30m250ms"},
        {86400000, "1d"},
        {86400001, "1d1ms"},
        {129600000, "1d12h"},
        {259200000, "3d"},
        {1209600000, "14d"}, /* weeks are read, not written */
        {93784005, "1d2h3m4s5ms"},
        {INT64_MAX, "106751991167d7h12m55s807ms"},
        {-1500, "-1s500ms"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char out[64];
        size_t n = cue_duration_format(cases[i].ms, out, sizeof out);
        cr_expect_str_eq(out, cases[i].text, "%lld: '%s', expected '%s'", (long long)cases[i].ms,
                         out, cases[i].text);
        cr_expect_eq(n, strlen(cases[i].text), "%lld: length %zu", (long long)cases[i].ms, n);
    }
    /* Exactly enough room, then one byte too little: nothing rather than a
     * shortened, different duration. */
    char out[6];
    cr_expect_eq(cue_duration_format(5400000, out, 6), 5);
    cr_expect_str_eq(out, "1h30m");
    cr_expect_eq(cue_duration_format(5400000, out, 5), 0);
    cr_expect_str_eq(out, "");
    cr_expect_eq(cue_duration_format(5400000, out, 0), 0);
}

Test(timefmt, duration_round_trips)
{
    /* Units at their edges, then a spread of values from a fixed LCG. */
    static const int64_t edges[] = {0,         1,         999,           1000,      59999,
                                    60000,     3599999,   3600000,       86399999,  86400000,
                                    604800000, INT64_MAX, INT64_MAX - 1, 1209600001};
    uint64_t x = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < COUNT(edges) + 10000; i++) {
        int64_t ms;
        if (i < COUNT(edges)) {
            ms = edges[i];
        } else {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            ms = (int64_t)(x >> (1 + i % 40)); /* magnitudes from ms to centuries */
        }
        char out[64];
        size_t n = cue_duration_format(ms, out, sizeof out);
        int64_t back = -1;
        cr_assert(n > 0 && cue_duration_parse(out, n, &back) == 0 && back == ms,
                  "%lld: '%s' reads back as %lld", (long long)ms, out, (long long)back);
    }
}
