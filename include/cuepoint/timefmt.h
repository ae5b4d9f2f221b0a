/*
 * timefmt: event times and durations in and out of text. Pure functions, any
 * thread, no allocation, no clock and no process-wide TZ: RFC 3339 carries its
 * own offset, and output is always UTC.
 */
#ifndef CUEPOINT_TIMEFMT_H
#define CUEPOINT_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* "2026-03-01T10:00:00Z", "2026-03-01t10:00:00.5+02:00", "2026-03-01 10:00:00-07:30":
 * date, 'T' (or 't' or ' '), time with optional fraction (kept to the millisecond,
 * truncated), then 'Z', 'z' or a numeric offset. Fields are range-checked (Feb 30
 * fails); a leap second :60 is read as :59.999. The instant must lie in years
 * 0000 to 9999 in UTC too (an offset can move it out). Returns 0 or CUE_EPARSE. */
int cue_time_parse_rfc3339(const char *s, size_t len, int64_t *ms_out);

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes plus NUL) and returns its length. */
#define CUE_TIME_TEXT_MAX 32
size_t cue_time_format_rfc3339(int64_t ms, char out[CUE_TIME_TEXT_MAX]);

/* "72h", "14d", "30m", "45s", "250ms", "1h30m", "2w": a sum of integer amounts
 * with units w, d, h, m, s, ms. Returns 0 or CUE_EPARSE (empty, unknown unit,
 * overflow, or zero-length amount). */
int cue_duration_parse(const char *s, size_t len, int64_t *ms_out);

/* Writes a duration back in the largest exact units ("72h", "1d12h", "250ms"). */
size_t cue_duration_format(int64_t ms, char *out, size_t cap);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12, day 1-31,
 * both in range; any year, 0 being 1 BC), and back. The calendar arithmetic
 * under the RFC 3339 functions, for modules that read local clocks (tz). */
int64_t cue_time_days_from_civil(int64_t year, unsigned month, unsigned day);
void cue_time_civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day);

#endif
