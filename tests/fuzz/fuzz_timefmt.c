/* The time parsers (timefmt.c): RFC 3339 times and durations, as events,
 * configuration and journeys give them. What parses must format and parse
 * back to the same value: a time to the millisecond, a duration exactly.
 * The first byte picks the parser; the rest is the text. */
#include "cuepoint/timefmt.h"

#include "cuepoint/err.h"

#include "fuzz.h"

#include <string.h>

static void rfc3339(const char *s, size_t len)
{
    int64_t ms;
    if (cue_time_parse_rfc3339(s, len, &ms) != 0) return;
    char text[CUE_TIME_TEXT_MAX];
    size_t n = cue_time_format_rfc3339(ms, text);
    if (n == 0 || n >= CUE_TIME_TEXT_MAX || text[n] != '\0') abort();
    int64_t back;
    if (cue_time_parse_rfc3339(text, n, &back) != 0 || back != ms) {
        fprintf(stderr, "fuzz: %lld formats as %s, which reads back differently\n", (long long)ms,
                text);
        abort();
    }
    int64_t year;
    unsigned month, day;
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    cue_time_civil_from_days(days, &year, &month, &day);
    if (cue_time_days_from_civil(year, month, day) != days) abort();
}

static void duration(const char *s, size_t len)
{
    int64_t ms;
    if (cue_duration_parse(s, len, &ms) != 0) return;
    char text[64];
    size_t n = cue_duration_format(ms, text, sizeof text);
    if (n == 0 || n >= sizeof text) abort();
    int64_t back;
    if (cue_duration_parse(text, n, &back) != 0 || back != ms) {
        fprintf(stderr, "fuzz: %lld ms formats as %s, which reads back differently\n",
                (long long)ms, text);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    char *s = fuzz_dup(data + 1, size - 1);
    if (data[0] & 1)
        duration(s, size - 1);
    else
        rfc3339(s, size - 1);
    free(s);
    return 0;
}
