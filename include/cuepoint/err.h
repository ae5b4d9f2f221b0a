/*
 * err: the one table of cuepoint's error codes, and the message struct that
 * carries a human-readable explanation next to them.
 *
 * A fallible function returns 0 or a negative CUE_E* code. Where a person will
 * read the failure (configuration, machine files, start-up, dead letters) it
 * also fills an optional trailing `cue_err *` with a message naming what and
 * where. Any thread; no allocation.
 */
#ifndef CUEPOINT_ERR_H
#define CUEPOINT_ERR_H

#include <stddef.h>

/* X(name, value, description). Values are stable: they appear in logs. */
#define CUE_ERRORS(X)                                                                              \
    X(OK, 0, "ok")                                                                                 \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EPARSE, -3, "malformed input")                                                               \
    X(ELIMIT, -4, "limit exceeded")                                                                \
    X(ENOTFOUND, -5, "not found")                                                                  \
    X(ECORRUPT, -6, "corrupt record")                                                              \
    X(EVERSION, -7, "unsupported version")                                                         \
    X(EIO, -8, "I/O error")                                                                        \
    X(ESTORE, -9, "state store error")                                                             \
    X(ECONFIG, -10, "configuration error")                                                         \
    X(EMACHINE, -11, "invalid machine")                                                            \
    X(ELATE, -12, "event later than the allowed lateness")                                         \
    X(EUSAGE, -13, "usage error")                                                                  \
    X(EFULL, -14, "bounded structure full")                                                        \
    X(EUNAVAILABLE, -15, "service unavailable")                                                    \
    X(EABORTED, -16, "transaction aborted")                                                        \
    X(EFENCED, -17, "producer fenced")                                                             \
    X(EENCODING, -18, "invalid text encoding")                                                     \
    X(EDUPLICATE, -19, "duplicate key")

enum {
#define CUE_ERR_ENUM(name, value, desc) CUE_##name = value,
    CUE_ERRORS(CUE_ERR_ENUM)
#undef CUE_ERR_ENUM
};

#define CUE_ERR_MSG_MAX 512

/* A failure explained for a person. Caller's storage; `code` repeats the return value. */
typedef struct cue_err {
    int code;
    char msg[CUE_ERR_MSG_MAX];
} cue_err;

/* The symbolic name of a code ("ECORRUPT"); "EUNKNOWN" for codes not in the table. */
const char *cue_err_name(int code);

/* The one-line description of a code. */
const char *cue_err_describe(int code);

/* Fills `err` (which may be NULL) with a printf-style message and returns `code`,
 * so that a failure path reads `return cue_err_set(err, CUE_EPARSE, "...", ...);`. */
int cue_err_set(cue_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Puts `prefix: ` in front of an existing message, for adding where to what. */
void cue_err_prefix(cue_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears an error struct (code 0, empty message). */
void cue_err_clear(cue_err *err);

/* Invariants stay checked in every build: a broken one is a bug, not an input error. */
void cue_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define CUE_ASSERT(expr) ((expr) ? (void)0 : cue_assert_fail(#expr, __FILE__, __LINE__))

#endif
