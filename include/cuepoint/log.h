/*
 * log: one JSON object per line on stderr, the format log shippers expect:
 *   {"ts":"...","level":"warn","msg":"...","topic":"...","offset":42}
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

void cue_log(cue_log_level level, const char *msg, ...);

#endif
