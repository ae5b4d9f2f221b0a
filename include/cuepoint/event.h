/*
 * event: decoding one input record (a JSON object) into what the engine needs,
 * without allocating: the tokenizer indexes the bytes, and the few fields the
 * engine reads are resolved through the configured JSON Pointers.
 *
 * A decoder is one task's reusable scratch (field values, tokens, unescaped
 * strings); an event it produces borrows from the decoder and from the record
 * bytes, and is valid until the next decode. A record that cannot be decoded
 * gets a reason (a stable name for the dead-letter topic and metrics) and a
 * message.
 *
 * The fields a reader needs are declared to the decoder up front (the
 * configuration's at cue_event_decoder_new, the journeys' and the policy's
 * with cue_event_decoder_want), so that decoding is one pass over the record
 * that validates all of it and keeps only those fields (cue_json_scan). A
 * pointer not declared is still answered, by tokenizing the record again.
 */
#ifndef CUEPOINT_EVENT_H
#define CUEPOINT_EVENT_H

#include "cuepoint/config.h"
#include "cuepoint/err.h"
#include "cuepoint/json.h"
#include "cuepoint/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a record is a dead letter. Names are stable (headers, metrics, files). */
#define CUE_REASONS(X)                                                                             \
    X(NONE, "none")                                                                                \
    X(TOO_LARGE, "too_large")                                                                      \
    X(NOT_JSON, "not_json")                                                                        \
    X(BAD_ENCODING, "bad_encoding")                                                                \
    X(DUPLICATE_KEY, "duplicate_key")                                                              \
    X(NOT_OBJECT, "not_object")                                                                    \
    X(NO_USER, "missing_user_id")                                                                  \
    X(BAD_USER, "bad_user_id")                                                                     \
    X(NO_TYPE, "missing_type")                                                                     \
    X(BAD_TYPE, "bad_type")                                                                        \
    X(NO_TIME, "missing_time")                                                                     \
    X(BAD_TIME, "bad_time")                                                                        \
    X(BAD_FIELD, "bad_field")                                                                      \
    X(LATE, "late")                                                                                \
    X(FUTURE_TIME, "future_time")                                                                  \
    X(KEY_MISMATCH, "key_mismatch")                                                                \
    X(BAD_STATE, "bad_state")

typedef enum cue_reason {
#define CUE_REASON_ENUM(name, text) CUE_REASON_##name,
    CUE_REASONS(CUE_REASON_ENUM)
#undef CUE_REASON_ENUM
        CUE_REASON_COUNT
} cue_reason;

const char *cue_reason_name(cue_reason r);

typedef struct cue_event {
    const char *raw; /* borrowed record bytes */
    size_t raw_len;
    /* The declared fields' tokens (type CUE_JSON_NONE: absent), borrowed
     * from the decoder: n_fields of them, indexed by the decoder's slots. */
    const cue_json_tok *fields;
    uint32_t n_fields;
    const char *user_id;
    size_t user_id_len;
    const char *type;
    size_t type_len;
    int64_t ts_ms;
    const char *event_id; /* NULL when the event has none */
    size_t event_id_len;
    const char *attr[CUE_ATTR_COUNT]; /* NULL when absent */
    size_t attr_len[CUE_ATTR_COUNT];
    int64_t offset;                /* input position, set by the caller */
    uint8_t topic;                 /* ... in this input topic (input.topics index) */
    struct cue_event_decoder *dec; /* the decoder it borrows from */
} cue_event;

typedef struct cue_event_decoder cue_event_decoder;

/* The decoder borrows `cfg` (it must outlive it). Caller owns `*out`. */
int cue_event_decoder_new(cue_event_decoder **out, const cue_config *cfg, cue_err *err);
void cue_event_decoder_free(cue_event_decoder *d);

/* Declares that `p` will be read with cue_event_value, so that decoding
 * finds it in its one pass. The decoder borrows `p` (it must outlive the
 * decoder) and knows it by its address. 0, or CUE_EFULL when the decoder
 * holds CUE_EVENT_FIELDS_MAX fields already: `p` is then read the slower
 * way, by tokenizing the record again. */
int cue_event_decoder_want(cue_event_decoder *d, const cue_json_ptr *p);

/* Decodes `raw` into `ev`. On failure returns CUE_EPARSE (or CUE_ELIMIT) with
 * `*reason` set and a message in `err` that names the field. */
int cue_event_decode(cue_event_decoder *d, const char *raw, size_t len, cue_event *ev,
                     cue_reason *reason, cue_err *err);

/* A guess at a record's user id without decoding it, for a prefetch hint:
 * the first `"key": "text"` (or a number) whose key is event.user_id's when
 * that is a single segment. True with `*id` borrowed from `raw`; false when
 * it cannot tell cheaply (an escape, a nested pointer). Never trusted: it
 * may find a nested key of the same name. */
bool cue_event_peek_user_id(const cue_config *cfg, const char *raw, size_t len, const char **id,
                            size_t *id_len);

/* Resolves a compiled pointer in the event to a value (strings borrowed from
 * the event or the decoder's scratch, valid until the next decode). A
 * pointer declared to the decoder costs a look-up; any other, a tokenizing
 * of the record (once per event). */
cue_value cue_event_value(const cue_event *ev, const cue_json_ptr *p);

/* Reads an event time value: epoch milliseconds (an integer) or an RFC 3339
 * string with offset. CUE_EPARSE otherwise. */
int cue_event_time_of(const cue_value *v, int64_t *ms);

#endif
