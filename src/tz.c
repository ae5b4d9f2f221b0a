/*
 * Time zones through ICU's C calendar. Each found name owns one UCalendar set
 * up once (proleptic Gregorian, lenient, gap and overlap rules fixed) and then
 * only re-pointed: ucal_setMillis to read a clock, ucal_clear plus field sets
 * to find an instant. Neither allocates (opening a zone does, ~26 times and
 * ~1 KiB). Reading fields after setMillis costs one offset look-up (a binary
 * search over the zone's transitions) and the field arithmetic; getMillis
 * after setting fields costs a local-to-UTC offset search. Measured at -O2 on
 * the development machine: ~230 ns to read a clock, ~310 ns to find an
 * instant, ~350 ns for a quiet-hours check, ~16 ns to find a zone already
 * open. That is well inside ~100k calls a second, so nothing is memoized.
 */
#include "cuepoint/tz.h"

#include "cuepoint/hash.h"
#include "cuepoint/limits.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

/* cuepoint's instant range (timefmt's): 0000-01-01 to 9999-12-31 UTC. ICU
 * reaches far beyond, but clamping keeps every input inside what ICU accepts,
 * so conversions never fail at run time. */
#define TZ_MS_MIN (-62167219200000LL)
#define TZ_MS_MAX 253402300799999LL

/* ICU's Julian day of 1970-01-01, for local day numbers since the epoch. */
#define JULIAN_DAY_EPOCH 2440588

#define MS_PER_MIN 60000

/* ICU calendars before the Gregorian cutover (1582) are Julian; a cutover
 * before any instant cuepoint handles makes them proleptic Gregorian, the
 * calendar timefmt and RFC 3339 use. ICU clamps it to its own minimum. */
#define GREGORIAN_ALWAYS (-1e18)

typedef struct entry {
    char name[CUE_TZ_NAME_BYTES_MAX];
    size_t len;
    UCalendar *cal;
} entry;

struct cue_tz {
    entry *zones;
    int len, cap;
    /* Open addressing by name hash: each slot a zone index or -1. Twice as
     * many slots as zones keeps probes short. */
    int32_t *slots;
    uint32_t slot_mask;
};

int cue_tz_new(cue_tz **out, int zones_max, cue_err *err)
{
    if (zones_max < 1 || zones_max > CUE_TZ_ZONES_MAX)
        return cue_err_set(err, CUE_EINVAL, "time zone cache of %d zones: must be 1..%d", zones_max,
                           CUE_TZ_ZONES_MAX);
    uint32_t nslots = 1;
    while (nslots < 2u * (uint32_t)zones_max)
        nslots <<= 1;
    cue_tz *tz = calloc(1, sizeof *tz);
    if (tz == NULL) goto fail;
    tz->zones = calloc((size_t)zones_max, sizeof *tz->zones);
    if (tz->zones == NULL) goto free_tz;
    tz->slots = malloc(nslots * sizeof *tz->slots);
    if (tz->slots == NULL) goto free_zones;
    memset(tz->slots, 0xff, nslots * sizeof *tz->slots); /* every slot -1 */
    tz->cap = zones_max;
    tz->slot_mask = nslots - 1;
    *out = tz;
    return 0;
free_zones:
    free(tz->zones);
free_tz:
    free(tz);
fail:
    return cue_err_set(err, CUE_ENOMEM, "time zone cache of %d zones", zones_max);
}

void cue_tz_free(cue_tz *tz)
{
    if (tz == NULL) return;
    for (int i = 0; i < tz->len; i++)
        ucal_close(tz->zones[i].cal);
    free(tz->slots);
    free(tz->zones);
    free(tz);
}

const char *cue_tz_data_version(void)
{
    UErrorCode st = U_ZERO_ERROR;
    const char *v = ucal_getTZDataVersion(&st);
    return U_SUCCESS(st) && v != NULL ? v : "unknown";
}

/* IANA names use letters, digits and "/_-+." only. Checking that first keeps
 * other bytes out of ICU's invariant-character conversion (which is undefined
 * for them) and out of error messages. */
static bool name_chars_ok(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '/' || c == '_' || c == '-' || c == '+' || c == '.';
        if (!ok) return false;
    }
    return true;
}

/* Whether a rejected name can go into a message as it is. */
static bool printable(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (name[i] < 0x20 || name[i] > 0x7e) return false;
    return true;
}

/* The slot holding `name`, or the empty slot where it would go. */
static uint32_t slot_of(const cue_tz *tz, const char *name, size_t len)
{
    uint32_t s = (uint32_t)cue_hash64(name, len, 0) & tz->slot_mask;
    for (;;) {
        int32_t z = tz->slots[s];
        if (z < 0) return s;
        if (tz->zones[z].len == len && memcmp(tz->zones[z].name, name, len) == 0) return s;
        s = (s + 1) & tz->slot_mask;
    }
}

/* Opens a calendar for a name ICU lists as a system zone. ICU maps an unknown
 * id to "Etc/Unknown" (GMT) without an error, so the name is checked with
 * ucal_getCanonicalTimeZoneID first: it fails for unknown names, is
 * case-sensitive, and flags custom "GMT+05:00" ids as not system ones. */
static int calendar_open(const char *name, size_t len, UCalendar **out, cue_err *err)
{
    UChar id[CUE_TZ_NAME_BYTES_MAX], canon[CUE_TZ_NAME_BYTES_MAX * 2];
    UBool is_system = 0;
    UErrorCode st = U_ZERO_ERROR;
    u_charsToUChars(name, id, (int32_t)len);
    ucal_getCanonicalTimeZoneID(id, (int32_t)len, canon, (int32_t)(sizeof canon / sizeof *canon),
                                &is_system, &st);
    if (U_FAILURE(st) || !is_system)
        return cue_err_set(err, CUE_ENOTFOUND,
                           "time zone \"%.*s\" is not an IANA zone name (names are "
                           "case-sensitive; ICU tz data %s)",
                           (int)len, name, cue_tz_data_version());
    UCalendar *cal = ucal_open(id, (int32_t)len, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_SUCCESS(st)) ucal_setGregorianChange(cal, GREGORIAN_ALWAYS, &st);
    if (U_FAILURE(st)) {
        if (cal != NULL) ucal_close(cal);
        return cue_err_set(err, st == U_MEMORY_ALLOCATION_ERROR ? CUE_ENOMEM : CUE_EINVAL,
                           "time zone \"%.*s\": ICU calendar: %s", (int)len, name, u_errorName(st));
    }
    /* Lenient, so that fields out of range carry over and skipped wall times
     * resolve instead of failing; the two wall-time rules as the header
     * states them (FIRST is ICU's default, NEXT_VALID is not). */
    ucal_setAttribute(cal, UCAL_LENIENT, 1);
    ucal_setAttribute(cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    ucal_setAttribute(cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    *out = cal;
    return 0;
}

int cue_tz_find(cue_tz *tz, const char *name, size_t len, int *zone_out, cue_err *err)
{
    if (len == 0) return cue_err_set(err, CUE_ENOTFOUND, "time zone name is empty");
    if (len > CUE_TZ_NAME_BYTES_MAX)
        return cue_err_set(err, CUE_ENOTFOUND, "time zone name of %zu bytes: at most %d", len,
                           CUE_TZ_NAME_BYTES_MAX);
    if (!name_chars_ok(name, len)) {
        if (printable(name, len))
            return cue_err_set(err, CUE_ENOTFOUND,
                               "time zone \"%.*s\" is not an IANA zone name (IANA names have "
                               "letters, digits and /_-+. only)",
                               (int)len, name);
        return cue_err_set(err, CUE_ENOTFOUND,
                           "time zone name has a byte outside IANA's letters, digits and /_-+.");
    }
    uint32_t s = slot_of(tz, name, len);
    if (tz->slots[s] >= 0) {
        *zone_out = tz->slots[s];
        return 0;
    }
    UCalendar *cal;
    int rc = calendar_open(name, len, &cal, err);
    if (rc != 0) return rc;
    /* Checked after the name, so a full cache still tells an unknown name
     * from a valid one it has no room for. */
    if (tz->len == tz->cap) {
        ucal_close(cal);
        return cue_err_set(err, CUE_EFULL, "time zone \"%.*s\": cache full at %d zones", (int)len,
                           name, tz->cap);
    }
    entry *z = &tz->zones[tz->len];
    memcpy(z->name, name, len);
    z->len = len;
    z->cal = cal;
    tz->slots[s] = tz->len;
    *zone_out = tz->len++;
    return 0;
}

/* The zone's calendar, checked: a handle from elsewhere is a caller's bug. */
static UCalendar *calendar(cue_tz *tz, int zone)
{
    CUE_ASSERT(tz != NULL && zone >= 0 && zone < tz->len);
    return tz->zones[zone].cal;
}

static int64_t clamp_ms(int64_t ms)
{
    return ms < TZ_MS_MIN ? TZ_MS_MIN : ms > TZ_MS_MAX ? TZ_MS_MAX : ms;
}

/* The calendar set to an instant, ready for ucal_get. */
static UCalendar *at_instant(cue_tz *tz, int zone, int64_t utc_ms)
{
    UCalendar *cal = calendar(tz, zone);
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(cal, (UDate)clamp_ms(utc_ms), &st);
    CUE_ASSERT(U_SUCCESS(st));
    return cal;
}

/* One field of a calendar already set; fields of a clamped instant always
 * compute. */
static int32_t field(UCalendar *cal, UCalendarDateFields f)
{
    UErrorCode st = U_ZERO_ERROR;
    int32_t v = ucal_get(cal, f, &st);
    CUE_ASSERT(U_SUCCESS(st));
    return v;
}

/* The instant of the fields set since ucal_clear, under the calendar's rules. */
static int64_t resolved_ms(UCalendar *cal)
{
    UErrorCode st = U_ZERO_ERROR;
    UDate ms = ucal_getMillis(cal, &st);
    CUE_ASSERT(U_SUCCESS(st));
    return (int64_t)ms;
}

void cue_tz_local(cue_tz *tz, int zone, int64_t utc_ms, cue_civil *out)
{
    UCalendar *cal = at_instant(tz, zone, utc_ms);
    /* EXTENDED_YEAR, not YEAR: it counts 1 BC as 0, as RFC 3339 does. */
    out->year = field(cal, UCAL_EXTENDED_YEAR);
    out->month = field(cal, UCAL_MONTH) + 1;
    out->day = field(cal, UCAL_DATE);
    out->hour = field(cal, UCAL_HOUR_OF_DAY);
    out->minute = field(cal, UCAL_MINUTE);
    out->second = field(cal, UCAL_SECOND);
    out->millis = field(cal, UCAL_MILLISECOND);
    /* ICU counts Sunday as 1 whatever the locale; ISO counts it as 7. */
    out->weekday = (field(cal, UCAL_DAY_OF_WEEK) + 5) % 7 + 1;
}

int32_t cue_tz_offset_ms(cue_tz *tz, int zone, int64_t utc_ms)
{
    UCalendar *cal = at_instant(tz, zone, utc_ms);
    return field(cal, UCAL_ZONE_OFFSET) + field(cal, UCAL_DST_OFFSET);
}

int64_t cue_tz_instant(cue_tz *tz, int zone, const cue_civil *local)
{
    CUE_ASSERT(local->year >= 0 && local->year <= 9999);
    UCalendar *cal = calendar(tz, zone);
    /* ICU resolves a date from whichever competing fields were set last, and
     * every field that decides the instant is set below; clearing first still
     * leaves nothing from an earlier reading or call to take part, for the
     * price of a memset. */
    ucal_clear(cal);
    ucal_set(cal, UCAL_EXTENDED_YEAR, local->year);
    ucal_set(cal, UCAL_MONTH, local->month - 1);
    ucal_set(cal, UCAL_DATE, local->day);
    ucal_set(cal, UCAL_HOUR_OF_DAY, local->hour);
    ucal_set(cal, UCAL_MINUTE, local->minute);
    ucal_set(cal, UCAL_SECOND, local->second);
    ucal_set(cal, UCAL_MILLISECOND, local->millis);
    return resolved_ms(cal);
}

int64_t cue_tz_day(cue_tz *tz, int zone, int64_t utc_ms)
{
    /* ICU's JULIAN_DAY is the local date's Julian day number, which makes the
     * local day count one subtraction and needs no calendar arithmetic here. */
    return field(at_instant(tz, zone, utc_ms), UCAL_JULIAN_DAY) - JULIAN_DAY_EPOCH;
}

/* The instant the clock reads `ms_in_day` on local Julian day `julian_day`,
 * with the calendar's gap rule and the given overlap rule. */
static int64_t wall_ms(UCalendar *cal, int32_t julian_day, int32_t ms_in_day,
                       UCalendarWallTimeOption repeated)
{
    ucal_setAttribute(cal, UCAL_REPEATED_WALL_TIME, repeated);
    ucal_clear(cal);
    ucal_set(cal, UCAL_JULIAN_DAY, julian_day);
    ucal_set(cal, UCAL_MILLISECONDS_IN_DAY, ms_in_day);
    int64_t ms = resolved_ms(cal);
    ucal_setAttribute(cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    return ms;
}

int64_t cue_tz_day_start(cue_tz *tz, int zone, int64_t day)
{
    /* Days beyond year 9999 would overflow nothing in ICU, but the header
     * promises the instant range; clamp the day to it as instants are. */
    int64_t lo = TZ_MS_MIN / 86400000 - 1, hi = TZ_MS_MAX / 86400000 + 1;
    day = day < lo ? lo : day > hi ? hi : day;
    return wall_ms(calendar(tz, zone), (int32_t)(day + JULIAN_DAY_EPOCH), 0, UCAL_WALLTIME_FIRST);
}

bool cue_tz_quiet(cue_tz *tz, int zone, int64_t utc_ms, int start_min, int end_min,
                  int64_t *ends_ms)
{
    CUE_ASSERT(start_min >= 0 && start_min < 1440 && end_min >= 0 && end_min < 1440);
    if (start_min == end_min) return false;
    UCalendar *cal = at_instant(tz, zone, utc_ms);
    int32_t julian_day = field(cal, UCAL_JULIAN_DAY);
    int now_min = field(cal, UCAL_MILLISECONDS_IN_DAY) / MS_PER_MIN;
    bool wraps = start_min > end_min;
    bool inside = wraps ? now_min >= start_min || now_min < end_min
                        : now_min >= start_min && now_min < end_min;
    if (!inside || ends_ms == NULL) return inside;
    /* The end is today unless the window wraps and the clock is still before
     * midnight. */
    int32_t end_day = wraps && now_min >= start_min ? julian_day + 1 : julian_day;
    int64_t now = clamp_ms(utc_ms);
    int64_t end = wall_ms(cal, end_day, end_min * MS_PER_MIN, UCAL_WALLTIME_FIRST);
    /* Inside a repeated hour, past the first reading of end_min (the clock
     * went back below it), the window ends at its second reading. */
    if (end <= now) end = wall_ms(cal, end_day, end_min * MS_PER_MIN, UCAL_WALLTIME_LAST);
    CUE_ASSERT(end > now);
    *ends_ms = end;
    return true;
}
