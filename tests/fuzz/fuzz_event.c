/* The event decoder (event.c) with the default configuration, as every
 * record of the input topic meets it: decode, then read the fields a
 * journey reads through cue_event_value. */
#include "cuepoint/event.h"

#include "fuzz.h"

#include <string.h>

static cue_config cfg;
static cue_event_decoder *dec;
static cue_json_ptr extra[4];
static cue_json_ptr copy[4]; /* the same pointers, not declared: read by tokenizing */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cue_config_defaults(&cfg);
    cue_err err = {0};
    if (cue_event_decoder_new(&dec, &cfg, &err) != 0) abort();
    /* Pointers the example journeys read, and one into an array. */
    static const char *const ptrs[] = {"/props/project_id", "/props/due_at", "/props",
                                       "/props/items/0"};
    for (int i = 0; i < 4; i++)
        if (cue_json_ptr_compile(&extra[i], ptrs[i], &err) != 0 ||
            cue_json_ptr_compile(&copy[i], ptrs[i], &err) != 0)
            abort();
    /* Three declared, found by the scan; the last one left to the tokenizer. */
    for (int i = 0; i < 3; i++)
        if (cue_event_decoder_want(dec, &extra[i]) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = fuzz_dup(data, size);
    cue_event ev;
    cue_reason reason;
    cue_err err = {0};
    if (cue_event_decode(dec, raw ? raw : "", size, &ev, &reason, &err) == 0) {
        if (reason != CUE_REASON_NONE || ev.user_id_len == 0 ||
            ev.user_id_len > CUE_USER_ID_BYTES_MAX || ev.type_len == 0)
            abort();
        for (int i = 0; i < 4; i++) {
            cue_value v = cue_event_value(&ev, &extra[i]);
            if (v.type == CUE_VAL_STRING || v.type == CUE_VAL_JSON) {
                volatile char sink = 0;
                for (uint32_t k = 0; k < v.len; k++)
                    sink ^= v.s[k]; /* every byte must be readable */
                (void)sink;
            }
            int64_t ms;
            (void)cue_event_time_of(&v, &ms);
            /* Found by the scan or by the tokenizer, the same value. */
            cue_value w = cue_event_value(&ev, &copy[i]);
            if (v.type != w.type || v.b != w.b || v.len != w.len ||
                (v.type == CUE_VAL_INT && v.i != w.i) ||
                (v.type == CUE_VAL_DOUBLE && memcmp(&v.d, &w.d, sizeof v.d) != 0) ||
                ((v.type == CUE_VAL_STRING || v.type == CUE_VAL_JSON) &&
                 memcmp(v.s, w.s, v.len) != 0))
                abort();
        }
    } else if (reason == CUE_REASON_NONE || err.msg[0] == '\0') {
        abort(); /* a failure always has a reason and a message */
    }
    free(raw);
    return 0;
}
