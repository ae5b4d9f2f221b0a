/*
 * tz: IANA time zones for the rules that read a user's local clock (quiet
 * hours, "at most one per local day" caps). Reads the system's compiled tz
 * data through GLib's GTimeZone, and is the only module that includes a GLib
 * header; the process-wide TZ variable, localtime and the process locale are
 * never consulted.
 *
 * A cue_tz is a bounded cache of found zones, owned by one thread (each task
 * owns one). It holds one GLib zone per distinct name it has found, read on
 * the name's first cue_tz_find and reused after that, so conversions on a
 * found zone allocate nothing (GLib shares the zones themselves, which are
 * immutable, between caches and threads). What can fail: cue_tz_new (memory,
 * a bad bound) and cue_tz_find (an unknown name, the cache full; GLib aborts
 * when out of memory, as everywhere). Conversions on a found zone cannot
 * fail; a handle this cue_tz's find did not return is a caller's bug (one out
 * of range aborts).
 *
 * The rules are the system's: the TZif files in /usr/share/zoneinfo (Debian's
 * tzdata package, which security updates keep current; TZDIR, as for glibc,
 * names another directory). A zone is read when a cache first finds its name
 * and kept while any cache holds it, so new data takes effect at restart.
 * cue_tz_data_version names the data so start-up can log it. One known
 * error, GLib's: Europe/Dublin's winters after 2037 read +02, not +00.
 *
 * Instants are milliseconds since the epoch (UTC), as everywhere in cuepoint,
 * and are clamped to years 0000-9999 (cuepoint's RFC 3339 range). Calendar
 * dates are proleptic Gregorian, as in timefmt, never Julian before 1582.
 */
#ifndef CUEPOINT_TZ_H
#define CUEPOINT_TZ_H

#include "cuepoint/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cue_tz cue_tz;

/* A wall-clock reading in some zone. Fields as people write them: month 1-12,
 * day 1-31, hour 0-23; weekday is ISO (1 = Monday ... 7 = Sunday) and is only
 * an output: cue_tz_instant ignores it. */
typedef struct cue_civil {
    int year, month, day, hour, minute, second, millis, weekday;
} cue_civil;

/* Creates an empty cache holding at most `zones_max` distinct names
 * (1..CUE_TZ_ZONES_MAX), sized now so that finding a zone never grows it.
 * `*out` is the caller's to free. CUE_EINVAL for a bad bound, CUE_ENOMEM. */
int cue_tz_new(cue_tz **out, int zones_max, cue_err *err);

/* Releases every zone and frees the cache. NULL is accepted. */
void cue_tz_free(cue_tz *tz);

/* The version of the system's tz data ("2025b"), from the "# version" line
 * of tzdata.zi beside the zones, read once per process; "system" when that
 * file is missing or does not say. A static string, any thread. */
const char *cue_tz_data_version(void);

/* Sets `*zone` to the handle of the zone named by `name` (borrowed; `len`
 * bytes, no NUL needed). Names are IANA's, case-sensitive as in the tz
 * database and on disk: "Europe/Berlin" and the link "US/Pacific" are found,
 * "europe/berlin" is not (a user attribute in the wrong case is a data error
 * to surface, not to guess at). "UTC", "Etc/UTC" and "Etc/GMT+5" are found. A
 * name is found when the system's data has a zone of that name, so what it
 * holds decides (America/Ciudad_Juarez exists since tz 2022g). Not found:
 * offsets ("+05:00", "GMT+05:00") and POSIX TZ rules ("EST5"), which GLib
 * would read as zones; paths ("/etc/localtime", ".."); files beside the zones
 * that are no IANA name ("right/UTC", "posix/UTC", "localtime", "posixrules",
 * "zone.tab"). A name already found costs a hash look-up; a new one reads a
 * file unless another cache in the process holds its zone.
 * CUE_ENOTFOUND (with a message naming the zone) for an unknown name, an empty
 * one, or one longer than CUE_TZ_NAME_BYTES_MAX; CUE_EFULL when the cache
 * already holds `zones_max` names; CUE_EINVAL when TZDIR is too long for a
 * path. Unknown names are not cached: each costs a failed open(2), so
 * callers validate attributes once, not per call. */
int cue_tz_find(cue_tz *tz, const char *name, size_t len, int *zone, cue_err *err);

/* The zone this cache's cue_tz_find found under `name` before, or -1: a
 * hash look-up only, never a file, for callers that find a zone per event. */
int cue_tz_found(const cue_tz *tz, const char *name, size_t len);

/* The wall-clock reading in `zone` at the instant `utc_ms`. */
void cue_tz_local(cue_tz *tz, int zone, int64_t utc_ms, cue_civil *out);

/* The zone's total offset from UTC at `utc_ms` (standard plus daylight), in
 * milliseconds: local = utc_ms + offset. */
int32_t cue_tz_offset_ms(cue_tz *tz, int zone, int64_t utc_ms);

/* The instant at which `zone`'s clock reads `local` (weekday ignored).
 * Out-of-range fields carry over as with mktime (day 32 of January is
 * February 1st, minute -30 is half an hour before the hour); year must be
 * 0000-9999. Wall times the clock skips or shows twice:
 *  - skipped (spring forward: 02:30 on 2026-03-08 in America/Los_Angeles, on
 *    2026-03-29 in Europe/Berlin): the first instant after the gap, i.e. the
 *    moment the clock jumps (03:00 local). A quiet hour that "ends at 02:30"
 *    ends when the clock reaches 03:00, never an hour early or late.
 *  - repeated (fall back: 01:30 on 2026-11-01 in Los Angeles, 02:30 on
 *    2026-10-25 in Berlin): the first occurrence, still on daylight time. */
int64_t cue_tz_instant(cue_tz *tz, int zone, const cue_civil *local);

/* The local calendar day of `utc_ms` in `zone`, as days since 1970-01-01 of
 * the local calendar: two instants share a value exactly when the zone's clock
 * shows the same date at both. The unit of "per local day" caps. */
int64_t cue_tz_day(cue_tz *tz, int zone, int64_t utc_ms);

/* The first instant of local day `day` (as cue_tz_day counts): local midnight,
 * or the first instant after the gap where a zone skips midnight (Chile starts
 * daylight time at 00:00, so 2026-09-06 in America/Santiago begins at 01:00).
 * A day is 23 or 25 hours long across a change: subtract two starts, never
 * multiply by 24 hours. */
int64_t cue_tz_day_start(cue_tz *tz, int zone, int64_t day);

/* Quiet hours: whether `zone`'s clock at `utc_ms` reads inside [start_min,
 * end_min), both minutes of the local day (0..1439; 21:00 is 1260). start >
 * end wraps past midnight (21:00-08:00); start == end is no window at all. The
 * comparison is on the clock reading, so in a repeated hour 01:30 is inside a
 * window both times the clock shows it. When inside and `ends_ms` is not NULL,
 * sets `*ends_ms` to the next instant after `utc_ms` at which the clock reads
 * end_min, found as cue_tz_instant finds it (an end inside a gap is the end of
 * the gap); in a repeated hour that is the end_min that follows `utc_ms`, the
 * second occurrence if the instant is past the first. Left alone otherwise. */
bool cue_tz_quiet(cue_tz *tz, int zone, int64_t utc_ms, int start_min, int end_min,
                  int64_t *ends_ms);

#endif
