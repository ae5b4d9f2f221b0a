#include "cuepoint/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cue_err_name(int code)
{
    switch (code) {
#define CUE_ERR_NAME(name, value, desc)                                                            \
    case value: return #name;
        CUE_ERRORS(CUE_ERR_NAME)
#undef CUE_ERR_NAME
    }
    return "EUNKNOWN";
}

const char *cue_err_describe(int code)
{
    switch (code) {
#define CUE_ERR_DESC(name, value, desc)                                                            \
    case value: return desc;
        CUE_ERRORS(CUE_ERR_DESC)
#undef CUE_ERR_DESC
    }
    return "unknown error";
}

int cue_err_set(cue_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void cue_err_prefix(cue_err *err, const char *fmt, ...)
{
    if (err == NULL) return;
    char prefix[CUE_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = strlen(prefix);
    size_t olen = strnlen(err->msg, sizeof err->msg - 1);
    if (plen + 2 >= sizeof err->msg) {
        memcpy(err->msg, prefix, sizeof err->msg - 1);
        err->msg[sizeof err->msg - 1] = '\0';
        return;
    }
    /* Shift the old message right to make room; it loses its tail if too long. */
    size_t keep = olen;
    if (plen + 2 + keep >= sizeof err->msg) keep = sizeof err->msg - 1 - plen - 2;
    memmove(err->msg + plen + 2, err->msg, keep);
    memcpy(err->msg, prefix, plen);
    err->msg[plen] = ':';
    err->msg[plen + 1] = ' ';
    err->msg[plen + 2 + keep] = '\0';
}

void cue_err_clear(cue_err *err)
{
    if (err == NULL) return;
    err->code = 0;
    err->msg[0] = '\0';
}

void cue_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr,
            "{\"level\":\"fatal\",\"msg\":\"assertion failed\",\"expr\":\"%s\","
            "\"file\":\"%s\",\"line\":%d}\n",
            expr, file, line);
    abort();
}
