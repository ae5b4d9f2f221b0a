/*
 * log: one line per entry on stderr. As JSON, one object per line, the
 * format log shippers expect:
 *   {"ts":"...","level":"warn","msg":"...","topic":"...","offset":42}
 * or as text for a person at a terminal:
 *   2026-12-05T05:02:10.914Z warn msg topic=events offset=42
 * (log.format; by default text when stderr is a terminal, JSON otherwise).
 * Fields are given as pairs after the message: a key with a one-letter type
 * prefix ("s:" string, "i:" int64_t, "u:" uint64_t, "d:" double, "b:" bool as
 * int, "t:" an int64_t time in epoch ms, null when INT64_MIN: not known yet)
 * and its value, ending with NULL. Strings are escaped; nothing a caller
 * passes can break the line. Any thread (one write per line).
 */
#ifndef CUEPOINT_LOG_H
#define CUEPOINT_LOG_H

#include <stdbool.h>

typedef enum cue_log_level {
    CUE_LOG_DEBUG = 0,
    CUE_LOG_INFO,
    CUE_LOG_WARN,
    CUE_LOG_ERROR,
    CUE_LOG_OFF,
} cue_log_level;

/* Lines below `level` are dropped (default INFO). */
void cue_log_set_level(cue_log_level level);

typedef enum cue_log_format {
    CUE_LOG_FORMAT_AUTO = 0, /* text when stderr is a terminal, else JSON */
    CUE_LOG_FORMAT_JSON,
    CUE_LOG_FORMAT_TEXT,
} cue_log_format;

/* How lines are written from now on. Call it once at start (AUTO) before
 * any other thread logs: until then lines are JSON. Not thread-safe. */
void cue_log_set_format(cue_log_format format);
/* True when lines are written as text (AUTO resolved). */
bool cue_log_is_text(void);

void cue_log(cue_log_level level, const char *msg, ...);

#endif
