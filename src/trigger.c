/* CloudEvents encoding of triggers, straight into a reused buffer. */
#include "cuepoint/trigger.h"

#include "cuepoint/timefmt.h"

#include <string.h>

/* `key` is a literal that needs no escaping: written as it is. */
#define key_str(out, key, s, n) key_str_(out, ",\"" key "\":", s, n)
static void key_str_(cue_buf *out, const char *prefix, const char *s, size_t n)
{
    cue_buf_append_str(out, prefix);
    cue_buf_append_json_str(out, s, n);
}

/* A journey's own name (machine, state, trigger, timer) or a formatted
 * time: machine.c admits only letters, digits, '_', '-' and '.' in names,
 * so they are quoted without the escaping scan, which was a fifth of a
 * trigger's encoding. */
#define key_name(out, key, s) key_name_(out, ",\"" key "\":\"", s, strlen(s))
static void key_name_(cue_buf *out, const char *prefix, const char *s, size_t n)
{
    cue_buf_append_str(out, prefix);
    cue_buf_append(out, s, n);
    cue_buf_append_char(out, '"');
}

int cue_trigger_append_value(cue_buf *out, const cue_value *v)
{
    switch (v->type) {
    case CUE_VAL_BOOL: return cue_buf_append_str(out, v->b ? "true" : "false");
    case CUE_VAL_INT: return cue_buf_append_i64(out, v->i);
    case CUE_VAL_DOUBLE: return cue_buf_printf(out, "%.17g", v->d);
    case CUE_VAL_STRING: return cue_buf_append_json_str(out, v->s, v->len);
    case CUE_VAL_JSON: return cue_buf_append(out, v->s, v->len);
    default: return cue_buf_append_str(out, "null");
    }
}

static void encode_data(const cue_trigger *t, cue_buf *out)
{
    cue_buf_append_str(out, ",\"data\":{");
    for (uint16_t i = 0; i < t->n_fields; i++) {
        cue_buf_append_json_str(out, t->fields[i].name, strlen(t->fields[i].name));
        cue_buf_append_char(out, ':');
        cue_trigger_append_value(out, &t->values[i]);
        cue_buf_append_char(out, ',');
    }
    key_name_(out, "\"machine\":\"", t->machine->name, strlen(t->machine->name));
    /* Not printf: this runs for every trigger, and vsnprintf cost as much as
     * the rest of the record. */
    cue_buf_append_str(out, ",\"version\":");
    cue_buf_append_i64(out, t->machine->version);
    cue_buf_append_str(out, ",\"instance_key\":");
    if (t->machine->keyed)
        cue_buf_append_json_str(out, t->inst->key, t->inst->key_len);
    else
        cue_buf_append_str(out, "null");
    key_name(out, "from_state", t->from_state);
    key_name(out, "to_state", t->to_state);
    cue_buf_append_str(out, ",\"cause\":{");
    if (t->ev) {
        cue_buf_append_str(out, "\"event\":");
        cue_buf_append_json_str(out, t->ev->type, t->ev->type_len);
    } else {
        key_name_(out, "\"timer\":\"", t->timer, strlen(t->timer));
    }
    cue_buf_append_str(out, "}}");
}

int cue_trigger_encode(const cue_trigger *t, const char *application_id, cue_buf *out)
{
    char when[CUE_TIME_TEXT_MAX];
    size_t when_len = cue_time_format_rfc3339(t->time_ms, when);
    cue_buf_append_str(out, "{\"specversion\":\"1.0\",\"id\":\"");
    cue_buf_append(out, t->id, CUE_HASH_HEX_LEN);
    cue_buf_append_str(out, "\",\"source\":");
    char source[16 + 2 * CUE_NAME_BYTES_MAX];
    size_t n = 0;
    memcpy(source, "cuepoint/", 9);
    n = 9;
    size_t al = strlen(application_id), ml = strlen(t->machine->name);
    memcpy(source + n, application_id, al);
    n += al;
    source[n++] = '/';
    memcpy(source + n, t->machine->name, ml);
    n += ml;
    cue_buf_append_json_str(out, source, n);
    key_name(out, "type", t->name);
    key_str(out, "subject", t->user->id, t->user->id_len);
    key_name_(out, ",\"time\":\"", when, when_len);
    cue_buf_append_str(out, ",\"datacontenttype\":\"application/json\"");
    encode_data(t, out);
    return cue_buf_append_char(out, '}');
}
