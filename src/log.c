/* Logging to stderr: JSON lines, or text lines at a terminal. */
#include "cuepoint/log.h"

#include "cuepoint/buf.h"
#include "cuepoint/timefmt.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static cue_log_level min_level = CUE_LOG_INFO;
static cue_log_format format = CUE_LOG_FORMAT_AUTO;
static bool as_text; /* the format resolved: read by every thread, written before any */
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void cue_log_set_level(cue_log_level level)
{
    min_level = level;
}

void cue_log_set_format(cue_log_format f)
{
    format = f;
    as_text = f == CUE_LOG_FORMAT_TEXT || (f == CUE_LOG_FORMAT_AUTO && isatty(STDERR_FILENO));
}

bool cue_log_is_text(void)
{
    return as_text;
}

/* A text line's string: bare when it reads as one word, else quoted and
 * escaped as JSON, so a value can never end the line or fake a field. */
static void append_text_str(cue_buf *b, const char *s, size_t n)
{
    bool bare = n > 0;
    for (size_t i = 0; i < n && bare; i++) {
        unsigned char c = (unsigned char)s[i];
        bare = c > ' ' && c != '"' && c != '=' && c != '\\' && c != 0x7f;
    }
    if (bare)
        cue_buf_append(b, s, n);
    else
        cue_buf_append_json_str(b, s, n);
}

/* A text line's message as it is, but for control bytes (escaped), so the
 * entry stays one line whatever a caller passes. */
static void append_text_msg(cue_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < ' ' || c == 0x7f)
            cue_buf_printf(b, "\\x%02x", c);
        else
            cue_buf_append_char(b, (char)c);
    }
}

static void add_field(cue_buf *b, bool text, const char *key, va_list *ap)
{
    const char *name = strlen(key) > 2 && key[1] == ':' ? key + 2 : key;
    if (text) {
        cue_buf_append_char(b, ' ');
        cue_buf_append_str(b, name);
        cue_buf_append_char(b, '=');
    } else {
        cue_buf_append_char(b, ',');
        cue_buf_append_json_str(b, name, strlen(name));
        cue_buf_append_char(b, ':');
    }
    switch (key[0]) {
    case 'i': cue_buf_append_i64(b, va_arg(*ap, int64_t)); break;
    case 't': {
        int64_t ms = va_arg(*ap, int64_t);
        if (ms == INT64_MIN)
            cue_buf_append_str(b, "null");
        else
            cue_buf_append_i64(b, ms);
        break;
    }
    case 'u': cue_buf_printf(b, "%llu", (unsigned long long)va_arg(*ap, uint64_t)); break;
    case 'd': cue_buf_printf(b, "%.6g", va_arg(*ap, double)); break;
    case 'b': cue_buf_append_str(b, va_arg(*ap, int) ? "true" : "false"); break;
    default: {
        const char *s = va_arg(*ap, const char *);
        if (s && text)
            append_text_str(b, s, strlen(s));
        else if (s)
            cue_buf_append_json_str(b, s, strlen(s));
        else
            cue_buf_append_str(b, "null");
    }
    }
}

void cue_log(cue_log_level level, const char *msg, ...)
{
    if (level < min_level || level >= CUE_LOG_OFF) return;
    cue_buf b = {.data = NULL};
    if (cue_buf_init(&b, 512) != 0) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char ts[CUE_TIME_TEXT_MAX];
    cue_time_format_rfc3339((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, ts);
    bool text = cue_log_is_text();
    if (text) {
        cue_buf_printf(&b, "%s %s ", ts, level_names[level]);
        append_text_msg(&b, msg, strlen(msg));
    } else {
        cue_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        cue_buf_append_json_str(&b, msg, strlen(msg));
    }
    va_list ap;
    va_start(ap, msg);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL;)
        add_field(&b, text, key, &ap);
    va_end(ap);
    cue_buf_append_str(&b, text ? "\n" : "}\n");
    /* One write per line, so lines from several threads never interleave. */
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w;
    cue_buf_deinit(&b);
}
