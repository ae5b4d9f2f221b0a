/* RFC 3339 times and durations, with calendar arithmetic done by hand so that
 * no process-wide TZ or libc time zone state is ever involved. */
#include "cuepoint/timefmt.h"

#include "cuepoint/err.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MS_PER_DAY 86400000LL

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned mp = m > 2 ? m - 3 : m + 9;
    unsigned doy = (153 * mp + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Reads exactly `n` digits at s[*i]. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9') return false;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c) return false;
    (*i)++;
    return true;
}

/* The optional fraction after seconds: milliseconds, extra digits truncated. */
static bool fraction(const char *s, size_t len, size_t *i, int *ms)
{
    *ms = 0;
    if (*i >= len || s[*i] != '.') return true;
    (*i)++;
    int n = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (n < 3) *ms = *ms * 10 + (s[*i] - '0');
        n++;
        (*i)++;
    }
    for (int k = n; k < 3; k++)
        *ms *= 10;
    return n > 0;
}

static bool offset(const char *s, size_t len, size_t *i, int *minutes)
{
    if (*i < len && (s[*i] == 'Z' || s[*i] == 'z')) {
        (*i)++;
        *minutes = 0;
        return true;
    }
    if (*i >= len || (s[*i] != '+' && s[*i] != '-')) return false;
    int sign = s[(*i)++] == '-' ? -1 : 1, hh, mm;
    if (!digits(s, len, i, 2, &hh) || !expect(s, len, i, ':') || !digits(s, len, i, 2, &mm))
        return false;
    if (hh > 23 || mm > 59) return false;
    *minutes = sign * (hh * 60 + mm);
    return true;
}

int cue_time_parse_rfc3339(const char *s, size_t len, int64_t *ms_out)
{
    size_t i = 0;
    int y, mo, d, h, mi, sec, ms, off;
    if (!digits(s, len, &i, 4, &y) || !expect(s, len, &i, '-') || !digits(s, len, &i, 2, &mo) ||
        !expect(s, len, &i, '-') || !digits(s, len, &i, 2, &d))
        return CUE_EPARSE;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' ')) return CUE_EPARSE;
    i++;
    if (!digits(s, len, &i, 2, &h) || !expect(s, len, &i, ':') || !digits(s, len, &i, 2, &mi) ||
        !expect(s, len, &i, ':') || !digits(s, len, &i, 2, &sec) || !fraction(s, len, &i, &ms) ||
        !offset(s, len, &i, &off) || i != len)
        return CUE_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || (unsigned)d > days_in_month(y, (unsigned)mo) || h > 23 ||
        mi > 59 || sec > 60)
        return CUE_EPARSE;
    if (sec == 60) { /* a leap second is read as the last millisecond before it */
        sec = 59;
        ms = 999;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t t = days * MS_PER_DAY + ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + ms;
    *ms_out = t - (int64_t)off * 60000;
    return 0;
}

size_t cue_time_format_rfc3339(int64_t ms, char out[CUE_TIME_TEXT_MAX])
{
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60);
    int frac = (int)(rem % 1000);
    /* Years outside 0..9999 cannot be written as RFC 3339; clamp the text. */
    if (y < 0) y = 0;
    if (y > 9999) y = 9999;
    char *o = out;
    int vals[] = {(int)y, (int)m, (int)d, h, mi, s, frac};
    int widths[] = {4, 2, 2, 2, 2, 2, 3};
    const char seps[] = "--T::.Z";
    for (int k = 0; k < 7; k++) {
        for (int w = widths[k] - 1, v = vals[k]; w >= 0; w--, v /= 10)
            o[w] = (char)('0' + v % 10);
        o += widths[k];
        *o++ = seps[k];
    }
    *o = '\0';
    return (size_t)(o - out);
}

static int64_t unit_ms(const char *s, size_t len, size_t *i)
{
    if (*i + 1 < len && s[*i] == 'm' && s[*i + 1] == 's') {
        *i += 2;
        return 1;
    }
    if (*i >= len) return 0;
    switch (s[(*i)++]) {
    case 'w': return 7 * MS_PER_DAY;
    case 'd': return MS_PER_DAY;
    case 'h': return 3600000;
    case 'm': return 60000;
    case 's': return 1000;
    default: return 0;
    }
}

int cue_duration_parse(const char *s, size_t len, int64_t *ms_out)
{
    size_t i = 0;
    int64_t total = 0;
    if (len == 0) return CUE_EPARSE;
    while (i < len) {
        int64_t v = 0;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (v > (INT64_MAX - 9) / 10) return CUE_EPARSE;
            v = v * 10 + (s[i++] - '0');
        }
        if (i == start) return CUE_EPARSE;
        int64_t unit = unit_ms(s, len, &i);
        if (unit == 0 || v > INT64_MAX / unit || total > INT64_MAX - v * unit) return CUE_EPARSE;
        total += v * unit;
    }
    *ms_out = total;
    return 0;
}

size_t cue_duration_format(int64_t ms, char *out, size_t cap)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{MS_PER_DAY, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    size_t n = 0;
    if (cap == 0) return 0;
    out[0] = '\0';
    if (ms <= 0) {
        int k = snprintf(out, cap, "%lldms", (long long)ms);
        return k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1;
    }
    for (size_t u = 0; u < sizeof units / sizeof *units && ms > 0; u++) {
        if (ms < units[u].ms) continue;
        int k = snprintf(out + n, cap - n, "%lld%s", (long long)(ms / units[u].ms), units[u].unit);
        if (k < 0 || (size_t)k >= cap - n) break;
        n += (size_t)k;
        ms %= units[u].ms;
    }
    return n;
}
