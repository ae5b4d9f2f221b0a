/* CloudEvents encoding of triggers, straight into a reused buffer. */
#include "cuepoint/trigger.h"

#include "cuepoint/err.h"
#include "cuepoint/timefmt.h"

#include <string.h>

/* The record is written through a cursor into room reserved once, not a
 * cue_buf append per piece: a room check, a NUL and a call to copy each of
 * some thirty pieces were most of a trigger's encoding. */
typedef struct cursor {
    cue_buf *b;
    char *o; /* the next byte to write, within b's reserved room */
    int rc;  /* CUE_ENOMEM once an escape could not grow the buffer */
} cursor;

static void put(cursor *c, const void *s, size_t n)
{
    memcpy(c->o, s, n);
    c->o += n;
}

#define PUT_LIT(c, lit) put((c), (lit), sizeof(lit) - 1)

/* A journey's own name (machine, state, trigger, timer) or a formatted
 * time, quoted: machine.c admits only letters, digits, '_', '-' and '.' in
 * names, so they need no escaping scan. */
static void put_name(cursor *c, const char *s, size_t n)
{
    *c->o++ = '"';
    put(c, s, n);
    *c->o++ = '"';
}

/* Text that may hold anything (a user id, an instance key, an event type),
 * escaped by cue_buf_append_json_str, which may grow the buffer. */
static void put_json_str(cursor *c, const char *s, size_t n)
{
    c->b->len = (size_t)(c->o - c->b->data);
    if (cue_buf_append_json_str(c->b, s, n) != 0) c->rc = CUE_ENOMEM;
    c->o = c->b->data + c->b->len;
}

/* Hands the buffer back (its length at the cursor), or takes it again with
 * `room` bytes reserved. */
static void cursor_leave(cursor *c)
{
    CUE_ASSERT((size_t)(c->o - c->b->data) < c->b->cap); /* the room held */
    c->b->len = (size_t)(c->o - c->b->data);
    *c->o = '\0';
}

static void cursor_take(cursor *c, size_t room)
{
    if (cue_buf_reserve(c->b, room) != 0) c->rc = CUE_ENOMEM;
    c->o = c->b->data + c->b->len;
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

/* Room for everything a cursor writes between two cue_buf calls, beyond
 * the names and texts counted by the caller: the literal keys, quotes and
 * punctuation (~220 bytes), the id (32), a time (< CUE_TIME_TEXT_MAX), a
 * version number (10) and the source's own bytes (10). */
#define FIXED_ROOM 384

int cue_trigger_encode(const cue_trigger *t, const char *application_id, cue_buf *out)
{
    const cue_machine *m = t->machine;
    size_t al = strlen(application_id), ml = strlen(m->name), nl = strlen(t->name);
    size_t fl = strlen(t->from_state), tl = strlen(t->to_state);
    size_t cl = t->ev ? 0 : strlen(t->timer);
    /* Escaped text is at most six bytes a byte; the names are plain. */
    size_t escaped = 6 * (al + t->user->id_len + (m->keyed ? t->inst->key_len : 0) +
                          (t->ev ? t->ev->type_len : 0));
    cursor c = {.b = out};
    cursor_take(&c, FIXED_ROOM + escaped + 2 * ml + nl + fl + tl + cl);
    if (c.rc != 0) return c.rc;

    char when[CUE_TIME_TEXT_MAX];
    size_t when_len = cue_time_format_rfc3339(t->time_ms, when);
    PUT_LIT(&c, "{\"specversion\":\"1.0\",\"id\":\"");
    put(&c, t->id, CUE_HASH_HEX_LEN);
    PUT_LIT(&c, "\",\"source\":");
    char source[16 + 2 * CUE_NAME_BYTES_MAX];
    memcpy(source, "cuepoint/", 9);
    size_t n = 9;
    memcpy(source + n, application_id, al);
    n += al;
    source[n++] = '/';
    memcpy(source + n, m->name, ml);
    n += ml;
    put_json_str(&c, source, n);
    PUT_LIT(&c, ",\"type\":");
    put_name(&c, t->name, nl);
    PUT_LIT(&c, ",\"subject\":");
    put_json_str(&c, t->user->id, t->user->id_len);
    PUT_LIT(&c, ",\"time\":");
    put_name(&c, when, when_len);
    PUT_LIT(&c, ",\"datacontenttype\":\"application/json\",\"data\":{");
    if (t->n_fields > 0) {
        cursor_leave(&c);
        for (uint16_t i = 0; i < t->n_fields; i++) {
            cue_buf_append_json_str(out, t->fields[i].name, strlen(t->fields[i].name));
            cue_buf_append_char(out, ':');
            cue_trigger_append_value(out, &t->values[i]);
            if (cue_buf_append_char(out, ',') != 0) return CUE_ENOMEM;
        }
        cursor_take(&c, FIXED_ROOM + escaped + ml + fl + tl + cl);
        if (c.rc != 0) return c.rc;
    }
    PUT_LIT(&c, "\"machine\":");
    put_name(&c, m->name, ml);
    /* Not printf: this runs for every trigger, and vsnprintf cost as much
     * as the rest of the record. */
    PUT_LIT(&c, ",\"version\":");
    cursor_leave(&c);
    cue_buf_append_i64(out, m->version);
    c.o = out->data + out->len; /* the room reserved holds the number */
    PUT_LIT(&c, ",\"instance_key\":");
    if (m->keyed)
        put_json_str(&c, t->inst->key, t->inst->key_len);
    else
        PUT_LIT(&c, "null");
    PUT_LIT(&c, ",\"from_state\":");
    put_name(&c, t->from_state, fl);
    PUT_LIT(&c, ",\"to_state\":");
    put_name(&c, t->to_state, tl);
    if (t->ev) {
        PUT_LIT(&c, ",\"cause\":{\"event\":");
        put_json_str(&c, t->ev->type, t->ev->type_len);
    } else {
        PUT_LIT(&c, ",\"cause\":{\"timer\":");
        put_name(&c, t->timer, cl);
    }
    PUT_LIT(&c, "}}}");
    cursor_leave(&c);
    return c.rc;
}
