/*
 * RFC 3339 times and durations. Calendar arithmetic is done by hand
 * (days-from-civil and its inverse, after H. Hinnant) so that neither timegm
 * nor the process-wide TZ is involved: a parse depends on its input only, in
 * any thread.
 */
#include "cuepoint/timefmt.h"

#include "cuepoint/err.h"

#include <stdbool.h>
#include <string.h>

#define MS_PER_SEC  1000LL
#define MS_PER_MIN  60000LL
#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY  86400000LL

/* The instants RFC 3339 text can name: 0000-01-01T00:00:00.000Z through
 * 9999-12-31T23:59:59.999Z. */
#define TIME_MS_MIN (-62167219200000LL)
#define TIME_MS_MAX 253402300799999LL

/* Years are shifted to start in March so that the leap day is the last day of
 * its year, and eras of 400 years (146097 days) repeat exactly. */
int64_t cue_time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned mp = m > 2 ? m - 3 : m + 9;
    unsigned doy = (153 * mp + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void cue_time_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
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

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* A cursor over the text: every reader checks the bound itself. */
typedef struct cursor {
    const char *s;
    size_t len, i;
} cursor;

static bool digits(cursor *c, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++, c->i++) {
        if (c->i >= c->len || c->s[c->i] < '0' || c->s[c->i] > '9') return false;
        v = v * 10 + (c->s[c->i] - '0');
    }
    *out = v;
    return true;
}

/* Sets are a few characters: a loop, not a call to strchr (per event time). */
static bool one_of(cursor *c, const char *set)
{
    if (c->i >= c->len) return false;
    for (; *set != '\0'; set++)
        if (c->s[c->i] == *set) {
            c->i++;
            return true;
        }
    return false;
}

/* The optional fraction after the seconds, in milliseconds: digits beyond the
 * third are read and dropped (truncated, so a time never moves forward). */
static bool fraction(cursor *c, int *ms)
{
    *ms = 0;
    if (c->i >= c->len || c->s[c->i] != '.') return true;
    c->i++;
    int n = 0;
    for (; c->i < c->len && c->s[c->i] >= '0' && c->s[c->i] <= '9'; c->i++, n++)
        if (n < 3) *ms = *ms * 10 + (c->s[c->i] - '0');
    for (int k = n; k < 3; k++)
        *ms *= 10;
    return n > 0;
}

/* 'Z', 'z' or ±HH:MM, as signed minutes east of UTC. */
static bool offset(cursor *c, int *minutes)
{
    if (one_of(c, "Zz")) {
        *minutes = 0;
        return true;
    }
    if (c->i >= c->len || (c->s[c->i] != '+' && c->s[c->i] != '-')) return false;
    int sign = c->s[c->i++] == '-' ? -1 : 1, hh, mm;
    if (!digits(c, 2, &hh) || !one_of(c, ":") || !digits(c, 2, &mm) || hh > 23 || mm > 59)
        return false;
    *minutes = sign * (hh * 60 + mm);
    return true;
}

/* The two digits at s as a number, or -1 when either is not a digit. */
static inline int two_digits(const char *s)
{
    unsigned a = (unsigned)(unsigned char)s[0] - '0', b = (unsigned)(unsigned char)s[1] - '0';
    return a <= 9 && b <= 9 ? (int)(a * 10 + b) : -1;
}

/* "YYYY-MM-DDTHH:MM:SS", the part every time has at fixed places, read at
 * once (an event's time is parsed per event; byte by byte through the
 * cursor it cost some 800 instructions). False when it is not that shape. */
static bool fixed_part(const char *s, size_t len, int *y, int *mo, int *d, int *h, int *mi,
                       int *sec)
{
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return false;
    int y1 = two_digits(s), y2 = two_digits(s + 2);
    *mo = two_digits(s + 5);
    *d = two_digits(s + 8);
    *h = two_digits(s + 11);
    *mi = two_digits(s + 14);
    *sec = two_digits(s + 17);
    if ((y1 | y2 | *mo | *d | *h | *mi | *sec) < 0) return false;
    *y = y1 * 100 + y2;
    return true;
}

int cue_time_parse_rfc3339(const char *s, size_t len, int64_t *ms_out)
{
    cursor c = {s, len, 19};
    int y, mo, d, h, mi, sec, ms, off;
    if (!fixed_part(s, len, &y, &mo, &d, &h, &mi, &sec) || !fraction(&c, &ms) ||
        !offset(&c, &off) || c.i != len)
        return CUE_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return CUE_EPARSE;
    /* No leap-second table here: :60 becomes the last millisecond before the
     * next minute, which keeps order and never names a time twice. */
    if (sec == 60) {
        sec = 59;
        ms = 999;
    }
    int64_t days = cue_time_days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t local = days * MS_PER_DAY + h * MS_PER_HOUR + mi * MS_PER_MIN + sec * MS_PER_SEC + ms;
    int64_t utc = local - off * MS_PER_MIN;
    /* An offset can take the first and last hours of the range outside it;
     * those instants have no text in UTC (the formatter would write another). */
    if (utc < TIME_MS_MIN || utc > TIME_MS_MAX) return CUE_EPARSE;
    *ms_out = utc;
    return 0;
}

/* Writes v < 100 as two digits at o, from a table: the time of every
 * trigger and decision is formatted, and a division per digit was most of
 * that. */
static char *put2(char *o, unsigned v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    memcpy(o, pairs + 2 * v, 2);
    return o + 2;
}

size_t cue_time_format_rfc3339(int64_t ms, char out[CUE_TIME_TEXT_MAX])
{
    /* Instants outside years 0000-9999 have no RFC 3339 text; they are written
     * as the nearest one that has, rather than with a wrapped year. */
    if (ms < TIME_MS_MIN) ms = TIME_MS_MIN;
    if (ms > TIME_MS_MAX) ms = TIME_MS_MAX;
    /* Floor division: -1 ms is 1969-12-31T23:59:59.999, not day 0 minus 1 ms. */
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    cue_time_civil_from_days(days, &y, &m, &d);
    unsigned r = (unsigned)rem, msec = r % 1000, sec = r / 1000; /* rem < 86,400,000 */
    char *o = out;
    o = put2(o, (unsigned)y / 100); /* 0 <= y <= 9999 (clamped above) */
    o = put2(o, (unsigned)y % 100);
    *o++ = '-';
    o = put2(o, m);
    *o++ = '-';
    o = put2(o, d);
    *o++ = 'T';
    o = put2(o, sec / 3600);
    *o++ = ':';
    o = put2(o, sec / 60 % 60);
    *o++ = ':';
    o = put2(o, sec % 60);
    *o++ = '.';
    *o++ = (char)('0' + msec / 100);
    o = put2(o, msec % 100);
    *o++ = 'Z';
    *o = '\0';
    return (size_t)(o - out);
}

/* ---- durations --------------------------------------------------------- */

static const struct {
    const char *name;
    size_t len;
    int64_t ms;
} units[] = {
    /* "ms" before "m": the longest unit name that matches wins. */
    {"ms", 2, 1},          {"w", 1, 7 * MS_PER_DAY}, {"d", 1, MS_PER_DAY},
    {"h", 1, MS_PER_HOUR}, {"m", 1, MS_PER_MIN},     {"s", 1, MS_PER_SEC},
};

/* The unit at c (consumed), in milliseconds, or 0 if there is none. */
static int64_t unit_ms(cursor *c)
{
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        if (c->len - c->i >= units[u].len &&
            memcmp(c->s + c->i, units[u].name, units[u].len) == 0) {
            c->i += units[u].len;
            return units[u].ms;
        }
    }
    return 0;
}

int cue_duration_parse(const char *s, size_t len, int64_t *ms_out)
{
    cursor c = {s, len, 0};
    int64_t total = 0;
    if (len == 0) return CUE_EPARSE;
    while (c.i < len) {
        int64_t v = 0;
        size_t start = c.i;
        for (; c.i < len && s[c.i] >= '0' && s[c.i] <= '9'; c.i++) {
            int d = s[c.i] - '0';
            if (v > (INT64_MAX - d) / 10) return CUE_EPARSE;
            v = v * 10 + d;
        }
        if (c.i == start) return CUE_EPARSE;
        int64_t unit = unit_ms(&c);
        if (unit == 0 || v > INT64_MAX / unit || total > INT64_MAX - v * unit) return CUE_EPARSE;
        total += v * unit;
    }
    *ms_out = total;
    return 0;
}

/* Writes u in decimal at o and returns the digit count. */
static size_t put_u64(char *o, uint64_t u)
{
    char tmp[20];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    for (size_t k = 0; k < n; k++)
        o[k] = tmp[n - 1 - k];
    return n;
}

/* Weeks are read but not written: "14d" says more at a glance than "2w", and
 * days are what configuration examples use. */
static const struct {
    const char *name;
    int64_t ms;
} format_units[] = {
    {"d", MS_PER_DAY}, {"h", MS_PER_HOUR}, {"m", MS_PER_MIN}, {"s", MS_PER_SEC}, {"ms", 1}};

/* A negative duration is written with a '-' for people to read; the parser
 * does not take it back. Text that does not fit in `cap` is not written at all
 * (empty string, length 0): a shortened duration would be a different one. */
size_t cue_duration_format(int64_t ms, char *out, size_t cap)
{
    char tmp[64]; /* "-106751991167d7h12m55s808ms" at worst */
    size_t n = 0;
    uint64_t rest = ms < 0 ? 0 - (uint64_t)ms : (uint64_t)ms;
    if (ms < 0) tmp[n++] = '-';
    if (rest == 0) {
        memcpy(tmp + n, "0ms", 3);
        n += 3;
    }
    for (size_t u = 0; u < sizeof format_units / sizeof *format_units && rest > 0; u++) {
        uint64_t unit = (uint64_t)format_units[u].ms;
        if (rest < unit) continue;
        n += put_u64(tmp + n, rest / unit);
        size_t k = strlen(format_units[u].name);
        memcpy(tmp + n, format_units[u].name, k);
        n += k;
        rest %= unit;
    }
    if (cap == 0) return 0;
    if (n >= cap) n = 0;
    memcpy(out, tmp, n);
    out[n] = '\0';
    return n;
}
