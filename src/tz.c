/*
 * Time zones through GLib's GTimeZone, over the compiled zones in the system's
 * zoneinfo directory. GLib does the part that needs the tz data: reading a
 * TZif file, and telling which interval (stretch of constant offset) an
 * instant or a wall-clock reading falls in. Everything else is integer
 * arithmetic here: a clock reading is the instant plus the interval's offset,
 * turned into a date with timefmt's proleptic Gregorian day arithmetic. So
 * GDateTime (one allocation per value) is never used, and conversions on a
 * found zone allocate nothing.
 *
 * GLib finds an interval by scanning the zone's transitions in order: ~185 of
 * them before 2026 in America/Los_Angeles, then two a year up to 2999.
 * Reading a clock costs one scan, finding an instant two or three. Measured
 * at -O2 on the development machine in Los Angeles: for instants in 2026,
 * ~100 ns to read a clock, ~200 ns to find an instant, ~180 ns for a
 * quiet-hours check, ~17 ns to find a zone already found (ICU took 230, 310,
 * 350 and 16); at worst (2799, or later years looked up there) ~0.8 us to
 * read a clock and ~2 us to find an instant. A journey with a `local_time`
 * timer reads a clock and finds an instant on every event, four to five
 * scans; at half a million events a second that was 12% of the file mode's
 * time. So each zone remembers the stretch of instants it has seen fall in
 * one interval (entry.seen_*): a task's instants cluster in stream time, and
 * one found inside that stretch, or a wall-clock reading that the
 * stretch's interval shows there, needs no scan.
 *
 * One known GLib 2.74 defect is left as it is: a zone's closing rule with an
 * explicit daylight offset of zero ("IST-1GMT0,...") is read as if none were
 * given (an hour on), so Europe/Dublin (and its link Eire) reads +02 instead
 * of +00 in winters after 2037, the last year its file lists. A comparison
 * with Python's zoneinfo over all 598 names and ~70k instants from year 1 to
 * 9999 found no other difference.
 *
 * GLib holds each file's zone in a process-wide cache keyed by its path, so
 * every task that finds "Europe/Berlin" shares one immutable GTimeZone
 * (reference-counted atomically, read without locks).
 */
#include "cuepoint/tz.h"

#include "cuepoint/hash.h"
#include "cuepoint/limits.h"
#include "cuepoint/timefmt.h"

#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cuepoint's instant range (timefmt's): 0000-01-01 to 9999-12-31 UTC. */
#define TZ_MS_MIN (-62167219200000LL)
#define TZ_MS_MAX 253402300799999LL

#define MS_PER_SEC  1000LL
#define MS_PER_MIN  60000LL
#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY  86400000LL

/* GLib lists a zone's transitions up to 2999 and keeps the last offset after
 * that, where the zone's rule (the TZ string closing its file, which governs
 * everything after its last listed transition, 2037 at the latest) has
 * daylight time go on. The Gregorian calendar repeats every 400 years to the
 * weekday (146097 days, whole weeks), and so does any such rule: an instant
 * from 2800 on is looked up a multiple of 400 years earlier, where GLib still
 * has transitions, and moved back by as much. */
#define ERA_S       (146097LL * 86400)
#define FOLD_FROM_S 26192246400LL /* 2800-01-01T00:00Z */

/* Where compiled zones are when TZDIR does not say: Debian's tzdata, and
 * where glibc and GLib look too. */
#define ZONEINFO_DIR "/usr/share/zoneinfo"

/* A zone file's path: the directory (TZDIR may name any) and a name of at most
 * CUE_TZ_NAME_BYTES_MAX. PATH_MAX on Linux, so no real directory is refused. */
#define ZONE_PATH_BYTES_MAX 4096

/* The most neighbouring intervals that can show one wall-clock reading. Two
 * in every zone's history (a reading repeats once when the clock goes back);
 * the bound only keeps the search for the first or last of them finite. */
#define OCCURRENCES_MAX 4

typedef struct entry {
    char name[CUE_TZ_NAME_BYTES_MAX];
    size_t len;
    GTimeZone *gtz;
    int last; /* the zone's last interval: GLib numbers them 0..last */
    /* UTC seconds (after the era fold) [seen_lo, seen_hi] that GLib has
     * placed in interval seen_at; intervals are contiguous stretches of
     * time, so every second between is in it too. seen_at -1: none yet. */
    int64_t seen_lo, seen_hi;
    int seen_at;
    int seen_uses; /* look-ups placed in seen_at since it became so, up to 8 */
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
        g_time_zone_unref(tz->zones[i].gtz);
    free(tz->slots);
    free(tz->zones);
    free(tz);
}

/* TZDIR as glibc reads it: a directory of compiled zones to use instead. */
static const char *zoneinfo_dir(void)
{
    const char *dir = getenv("TZDIR");
    return dir != NULL && dir[0] != '\0' ? dir : ZONEINFO_DIR;
}

static char data_version[16];
static pthread_once_t data_version_once = PTHREAD_ONCE_INIT;

/* tzdata.zi, the text the directory's zones were compiled from, opens with
 * "# version 2025b". Distributions that do not install it still have
 * current zones, so "system" stands in for the version, not "unknown". */
static void data_version_read(void)
{
    char path[ZONE_PATH_BYTES_MAX], line[64];
    int n = snprintf(path, sizeof path, "%s/tzdata.zi", zoneinfo_dir());
    FILE *f = n > 0 && (size_t)n < sizeof path ? fopen(path, "r") : NULL;
    if (f != NULL) {
        static const char prefix[] = "# version ";
        if (fgets(line, sizeof line, f) != NULL && strncmp(line, prefix, sizeof prefix - 1) == 0) {
            const char *v = line + sizeof prefix - 1;
            size_t len = 0;
            while (len < sizeof data_version - 1 &&
                   ((v[len] >= '0' && v[len] <= '9') || (v[len] >= 'a' && v[len] <= 'z')))
                len++;
            memcpy(data_version, v, len);
        }
        fclose(f);
    }
    if (data_version[0] == '\0') strcpy(data_version, "system");
}

const char *cue_tz_data_version(void)
{
    pthread_once(&data_version_once, data_version_read);
    return data_version;
}

/* IANA names use letters, digits and "/_-+." only. Checking that first keeps
 * other bytes out of file names and error messages. */
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

static bool is_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool has_prefix(const char *name, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(name, prefix, n) == 0;
}

static bool equals(const char *name, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(name, s, len) == 0;
}

/* Whether a name (of valid bytes) can be a zone in the zoneinfo directory.
 * Every IANA name is one or more '/'-separated parts starting with a letter,
 * which keeps out absolute paths, "..", "Europe/" and offsets ("+05", "-0500",
 * which GLib would read as fixed zones). The directory also holds files that
 * are no IANA name: Debian's posix/ (copies) and right/ (clocks that count
 * leap seconds, which cuepoint's instants do not), the machine's own zone
 * (localtime) and zic's default rules (posixrules). */
static bool zone_shaped(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((i == 0 || name[i - 1] == '/') && !is_letter(name[i])) return false;
    if (name[len - 1] == '/') return false;
    return !has_prefix(name, len, "posix/") && !has_prefix(name, len, "right/") &&
           !equals(name, len, "localtime") && !equals(name, len, "posixrules");
}

/* Whether `path` is a compiled zone (a TZif file). GLib would read any file
 * it is given, and says so on stderr (g_critical) when it is not TZif, such
 * as zone.tab beside the zones; checking the magic first keeps those names an
 * ordinary "not found". */
static bool is_tzif(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    char magic[4];
    ssize_t n = read(fd, magic, sizeof magic);
    close(fd);
    return n == (ssize_t)sizeof magic && memcmp(magic, "TZif", sizeof magic) == 0;
}

/* Opens the zone of a name shaped like one, from its file. GLib is given the
 * file's absolute path, never the bare name: a bare name is first tried as a
 * fixed offset ("UTC", "Z", "+05:00") and as a POSIX TZ rule ("Foo5" is five
 * hours west), and only then as a file; a path is only ever a file, the one
 * is_tzif checked. */
static int zone_open(const char *name, size_t len, GTimeZone **out, cue_err *err)
{
    const char *dir = zoneinfo_dir();
    if (!zone_shaped(name, len))
        return cue_err_set(err, CUE_ENOTFOUND,
                           "time zone \"%.*s\" is not an IANA zone name (names are "
                           "case-sensitive; tz data %s)",
                           (int)len, name, cue_tz_data_version());
    char path[ZONE_PATH_BYTES_MAX];
    int n = snprintf(path, sizeof path, "%s/%.*s", dir, (int)len, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return cue_err_set(err, CUE_EINVAL, "time zone \"%.*s\": TZDIR is longer than %d bytes",
                           (int)len, name, ZONE_PATH_BYTES_MAX - CUE_TZ_NAME_BYTES_MAX);
    GTimeZone *gtz = is_tzif(path) ? g_time_zone_new_identifier(path) : NULL;
    if (gtz == NULL)
        return cue_err_set(err, CUE_ENOTFOUND,
                           "time zone \"%.*s\" is not an IANA zone name (names are "
                           "case-sensitive; none such in %s, tz data %s)",
                           (int)len, name, dir, cue_tz_data_version());
    *out = gtz;
    return 0;
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
    GTimeZone *gtz;
    int rc = zone_open(name, len, &gtz, err);
    if (rc != 0) return rc;
    /* Checked after the name, so a full cache still tells an unknown name
     * from a valid one it has no room for. */
    if (tz->len == tz->cap) {
        g_time_zone_unref(gtz);
        return cue_err_set(err, CUE_EFULL, "time zone \"%.*s\": cache full at %d zones", (int)len,
                           name, tz->cap);
    }
    entry *z = &tz->zones[tz->len];
    memcpy(z->name, name, len);
    z->len = len;
    z->gtz = gtz;
    /* Every instant is in some interval, the last one included. */
    z->last = g_time_zone_find_interval(gtz, G_TIME_TYPE_UNIVERSAL, G_MAXINT64);
    z->seen_at = -1;
    tz->slots[s] = tz->len;
    *zone_out = tz->len++;
    return 0;
}

int cue_tz_found(const cue_tz *tz, const char *name, size_t len)
{
    if (len == 0 || len > CUE_TZ_NAME_BYTES_MAX) return -1;
    return tz->slots[slot_of(tz, name, len)];
}

/* The zone's entry, checked: a handle from elsewhere is a caller's bug. */
static entry *entry_of(cue_tz *tz, int zone)
{
    CUE_ASSERT(tz != NULL && zone >= 0 && zone < tz->len);
    return &tz->zones[zone];
}

static int64_t clamp_ms(int64_t ms)
{
    return ms < TZ_MS_MIN ? TZ_MS_MIN : ms > TZ_MS_MAX ? TZ_MS_MAX : ms;
}

/* a / b rounded down, for b > 0: instants before 1970 belong to the second
 * and the day they start, as after. */
static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

/* How far back to look up the second `s` (UTC or local): whole eras of 400
 * years, so that it lands before 2800. */
static int64_t era_shift_s(int64_t s)
{
    return s < FOLD_FROM_S ? 0 : ((s - FOLD_FROM_S) / ERA_S + 1) * ERA_S;
}

/* How far past a look-up the stretch a zone has seen is checked to reach:
 * instants come in stream order, each a little after the last, and each
 * would otherwise lie just past the stretch. */
#define SEEN_AHEAD_S 86400

/* The interval holding UTC second `s` (after the era fold), as GLib's
 * g_time_zone_find_interval tells, from what the zone has seen when it can. */
static int interval_at(entry *z, int64_t s)
{
    if (z->seen_at >= 0 && s >= z->seen_lo && s <= z->seen_hi) {
        z->seen_uses += z->seen_uses < 8;
        return z->seen_at;
    }
    int i = g_time_zone_find_interval(z->gtz, G_TIME_TYPE_UNIVERSAL, s);
    if (i != z->seen_at) {
        z->seen_at = i;
        z->seen_lo = z->seen_hi = s;
        z->seen_uses = 1;
        return i;
    }
    z->seen_uses += z->seen_uses < 8;
    /* The stretch grows to s; when s lies just past it and the interval has
     * served a few look-ups (instants in stream order), also a day further
     * on, if that is still the same interval. Instants far apart, or one
     * stretch after another (times read from events, in random order) are
     * not checked ahead: each would cost a second scan, for nothing. */
    bool near = z->seen_uses >= 4 &&
                (s > z->seen_hi ? s - z->seen_hi <= SEEN_AHEAD_S : z->seen_lo - s <= SEEN_AHEAD_S);
    int64_t ahead = s > z->seen_hi ? s + SEEN_AHEAD_S : s - SEEN_AHEAD_S;
    if (s > z->seen_hi) z->seen_hi = s;
    if (s < z->seen_lo) z->seen_lo = s;
    if (near && g_time_zone_find_interval(z->gtz, G_TIME_TYPE_UNIVERSAL, ahead) == i) {
        if (ahead > z->seen_hi) z->seen_hi = ahead;
        if (ahead < z->seen_lo) z->seen_lo = ahead;
    }
    return i;
}

/* The zone's offset in seconds at an instant already clamped. */
static int32_t offset_s(entry *z, int64_t utc_ms)
{
    int64_t s = floor_div(utc_ms, MS_PER_SEC);
    return g_time_zone_get_offset(z->gtz, interval_at(z, s - era_shift_s(s)));
}

/* The clock reading at `utc_ms` as milliseconds since 1970-01-01 00:00 of
 * the local calendar. */
static int64_t local_ms(entry *z, int64_t utc_ms)
{
    int64_t ms = clamp_ms(utc_ms);
    return ms + offset_s(z, ms) * MS_PER_SEC;
}

/* Whether interval `i` shows the local second `local_s`: the instant that
 * reading would be under i's offset lies in i. */
static bool shows(entry *z, int i, int64_t local_s)
{
    int64_t utc_s = local_s - g_time_zone_get_offset(z->gtz, i);
    return interval_at(z, utc_s) == i;
}

/* The instant at which the clock reads `local` (as local_ms counts): the
 * first or the last of the instants showing it, or the moment the clock
 * jumps past it when it falls in a gap. */
static int64_t wall_instant(entry *z, int64_t local, bool first)
{
    int64_t ms = local - floor_div(local, MS_PER_SEC) * MS_PER_SEC;
    int64_t shift_s = era_shift_s(floor_div(local, MS_PER_SEC));
    int64_t local_s = floor_div(local, MS_PER_SEC) - shift_s;
    int i = z->seen_at;
    int64_t seen = i >= 0 ? local_s - g_time_zone_get_offset(z->gtz, i) : 0;
    if (i < 0 || seen < z->seen_lo || seen > z->seen_hi) {
        /* Not a reading the interval seen last shows (where no GLib scan is
         * needed: the neighbours below decide between intervals that show
         * it, whichever GLib would have picked). */
        gint64 t = local_s;
        i = g_time_zone_adjust_time(z->gtz, G_TIME_TYPE_STANDARD, &t);
        /* In a gap GLib moves the reading forward to where the clock lands,
         * the local start of interval i; under i's offset that is the
         * transition itself. */
        if (t != local_s) return (t - g_time_zone_get_offset(z->gtz, i) + shift_s) * MS_PER_SEC;
    }
#ifndef NDEBUG
    CUE_ASSERT(shows(z, i, local_s));
#endif
    /* Of two intervals showing the reading, GLib picks by daylight flag,
     * which says nothing of their order (Europe/Dublin's winter time is the
     * flagged one) and nothing when neither is daylight time (a zone moving
     * its standard offset back). The neighbours decide instead. */
    int step = first ? -1 : 1;
    for (int n = 0; n < OCCURRENCES_MAX; n++) {
        int j = i + step;
        if (j < 0 || j > z->last || !shows(z, j, local_s)) break;
        i = j;
    }
    return (local_s - g_time_zone_get_offset(z->gtz, i) + shift_s) * MS_PER_SEC + ms;
}

void cue_tz_local(cue_tz *tz, int zone, int64_t utc_ms, cue_civil *out)
{
    int64_t local = local_ms(entry_of(tz, zone), utc_ms);
    int64_t day = floor_div(local, MS_PER_DAY), ms = local - day * MS_PER_DAY;
    int64_t year;
    unsigned month, mday;
    cue_time_civil_from_days(day, &year, &month, &mday);
    out->year = (int)year;
    out->month = (int)month;
    out->day = (int)mday;
    out->hour = (int)(ms / MS_PER_HOUR);
    out->minute = (int)(ms / MS_PER_MIN % 60);
    out->second = (int)(ms / MS_PER_SEC % 60);
    out->millis = (int)(ms % MS_PER_SEC);
    /* 1970-01-01 was a Thursday, ISO weekday 4. */
    out->weekday = (int)((day % 7 + 7 + 3) % 7) + 1;
}

int32_t cue_tz_offset_ms(cue_tz *tz, int zone, int64_t utc_ms)
{
    return offset_s(entry_of(tz, zone), clamp_ms(utc_ms)) * (int32_t)MS_PER_SEC;
}

int64_t cue_tz_instant(cue_tz *tz, int zone, const cue_civil *local)
{
    CUE_ASSERT(local->year >= 0 && local->year <= 9999);
    entry *z = entry_of(tz, zone);
    /* The months carry into years; every smaller field is a count added to
     * the first of the month, which carries it as mktime does. */
    int64_t months = (int64_t)local->month - 1;
    int64_t year = local->year + floor_div(months, 12);
    unsigned month = (unsigned)(months - floor_div(months, 12) * 12) + 1;
    int64_t ms = (cue_time_days_from_civil(year, month, 1) + local->day - 1) * MS_PER_DAY +
                 local->hour * MS_PER_HOUR + local->minute * MS_PER_MIN +
                 local->second * MS_PER_SEC + local->millis;
    return wall_instant(z, ms, true);
}

int64_t cue_tz_day(cue_tz *tz, int zone, int64_t utc_ms)
{
    return floor_div(local_ms(entry_of(tz, zone), utc_ms), MS_PER_DAY);
}

int64_t cue_tz_day_start(cue_tz *tz, int zone, int64_t day)
{
    /* The header promises the instant range; clamp the day to it as
     * instants are. */
    int64_t lo = TZ_MS_MIN / MS_PER_DAY - 1, hi = TZ_MS_MAX / MS_PER_DAY + 1;
    day = day < lo ? lo : day > hi ? hi : day;
    return wall_instant(entry_of(tz, zone), day * MS_PER_DAY, true);
}

bool cue_tz_quiet(cue_tz *tz, int zone, int64_t utc_ms, int start_min, int end_min,
                  int64_t *ends_ms)
{
    CUE_ASSERT(start_min >= 0 && start_min < 1440 && end_min >= 0 && end_min < 1440);
    if (start_min == end_min) return false;
    entry *z = entry_of(tz, zone);
    int64_t now = clamp_ms(utc_ms), local = local_ms(z, now);
    int64_t day = floor_div(local, MS_PER_DAY);
    int now_min = (int)((local - day * MS_PER_DAY) / MS_PER_MIN);
    bool wraps = start_min > end_min;
    bool inside = wraps ? now_min >= start_min || now_min < end_min
                        : now_min >= start_min && now_min < end_min;
    if (!inside || ends_ms == NULL) return inside;
    /* The end is today unless the window wraps and the clock is still before
     * midnight. */
    int64_t end_day = wraps && now_min >= start_min ? day + 1 : day;
    int64_t end_local = end_day * MS_PER_DAY + end_min * MS_PER_MIN;
    int64_t end = wall_instant(z, end_local, true);
    /* Inside a repeated hour, past the first reading of end_min (the clock
     * went back below it), the window ends at its second reading. */
    if (end <= now) end = wall_instant(z, end_local, false);
    CUE_ASSERT(end > now);
    *ends_ms = end;
    return true;
}
