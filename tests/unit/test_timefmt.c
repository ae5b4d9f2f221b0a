/* RFC 3339 and durations against independently known epoch values. */
#include "cuepoint/timefmt.h"

#include "cuepoint/err.h"

#include <criterion/criterion.h>
#include <string.h>

static const struct {
    const char *text;
    int rc;
    int64_t ms;
} times[] = {
    {"1970-01-01T00:00:00Z", 0, 0},
    {"2026-03-02T08:00:00Z", 0, 1772438400000},
    {"2026-03-02T09:00:00+01:00", 0, 1772438400000},
    {"2026-03-02t02:30:00.5-05:30", 0, 1772438400500},
    {"2026-03-02 08:00:00.123456789Z", 0, 1772438400123},
    {"2024-02-29T00:00:00Z", 0, 1709164800000},
    {"2000-02-29T12:00:00z", 0, 951825600000},
    {"1969-12-31T23:59:59.999Z", 0, -1},
    {"1900-01-01T00:00:00Z", 0, -2208988800000},
    {"2016-12-31T23:59:60Z", 0, 1483228799999},
    {"2026-02-29T00:00:00Z", CUE_EPARSE, 0},
    {"1900-02-29T00:00:00Z", CUE_EPARSE, 0},
    {"2026-13-01T00:00:00Z", CUE_EPARSE, 0},
    {"2026-04-31T00:00:00Z", CUE_EPARSE, 0},
    {"2026-03-02T24:00:00Z", CUE_EPARSE, 0},
    {"2026-03-02T08:00:00", CUE_EPARSE, 0},
    {"2026-03-02T08:00Z", CUE_EPARSE, 0},
    {"2026-03-02T08:00:00.Z", CUE_EPARSE, 0},
    {"2026-03-02T08:00:00+0100", CUE_EPARSE, 0},
    {"2026-03-02T08:00:00Z ", CUE_EPARSE, 0},
    {"26-03-02T08:00:00Z", CUE_EPARSE, 0},
    {"", CUE_EPARSE, 0},
};

Test(timefmt, rfc3339_table)
{
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        int64_t ms = 0;
        int rc = cue_time_parse_rfc3339(times[i].text, strlen(times[i].text), &ms);
        cr_expect_eq(rc, times[i].rc, "'%s': rc %d", times[i].text, rc);
        if (rc == 0 && times[i].rc == 0)
            cr_expect_eq(ms, times[i].ms, "'%s': %lld, expected %lld", times[i].text, (long long)ms,
                         (long long)times[i].ms);
    }
}

Test(timefmt, format_round_trips)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {{0, "1970-01-01T00:00:00.000Z"},
                 {1772438400123, "2026-03-02T08:00:00.123Z"},
                 {-1, "1969-12-31T23:59:59.999Z"},
                 {1709164800000, "2024-02-29T00:00:00.000Z"},
                 {253402300799999, "9999-12-31T23:59:59.999Z"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[CUE_TIME_TEXT_MAX];
        size_t n = cue_time_format_rfc3339(cases[i].ms, out);
        cr_expect_str_eq(out, cases[i].text);
        cr_expect_eq(n, strlen(cases[i].text));
        int64_t back;
        cr_expect(cue_time_parse_rfc3339(out, n, &back) == 0 && back == cases[i].ms);
    }
    /* Every day over four centuries round-trips (leap years included). */
    for (int64_t day = -146097; day < 146097; day += 1) {
        char out[CUE_TIME_TEXT_MAX];
        int64_t ms = day * 86400000 + 12345, back;
        size_t n = cue_time_format_rfc3339(ms, out);
        cr_assert(cue_time_parse_rfc3339(out, n, &back) == 0 && back == ms, "day %lld: %s",
                  (long long)day, out);
    }
}

Test(timefmt, durations)
{
    static const struct {
        const char *text;
        int rc;
        int64_t ms;
    } cases[] = {
        {"72h", 0, 259200000},     {"14d", 0, 1209600000}, {"1h30m", 0, 5400000},
        {"250ms", 0, 250},         {"2w", 0, 1209600000},  {"1m1s", 0, 61000},
        {"", CUE_EPARSE, 0},       {"h", CUE_EPARSE, 0},   {"10", CUE_EPARSE, 0},
        {"3 days", CUE_EPARSE, 0}, {"5y", CUE_EPARSE, 0},  {"99999999999999999999d", CUE_EPARSE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t ms = 0;
        int rc = cue_duration_parse(cases[i].text, strlen(cases[i].text), &ms);
        cr_expect_eq(rc, cases[i].rc, "'%s': rc %d", cases[i].text, rc);
        if (rc == 0) cr_expect_eq(ms, cases[i].ms, "'%s': %lld", cases[i].text, (long long)ms);
    }
    char out[32];
    cue_duration_format(259200000, out, sizeof out);
    cr_assert_str_eq(out, "3d");
    cue_duration_format(5400250, out, sizeof out);
    cr_assert_str_eq(out, "1h30m250ms");
}
