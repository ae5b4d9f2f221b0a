/* The state cache's form of a user: an image of cue_user's used parts.
 *
 * A record costs a decode and an encode per event (names looked up by hash,
 * varints, bounds on every field: ~5,500 instructions a step, the largest
 * share of the engine alone). An image is written and read by plain copies:
 * indices instead of name hashes, fixed-width numbers, only the instances,
 * variables, counters and timers that are set. It is valid only with the
 * machine set that wrote it (indices) and only in this process's memory
 * (host byte order, struct layouts), which is where the cache keeps it; the
 * commit turns it into a record (cue_codec_encode) for the store and the
 * changelog.
 *
 * Layout ('M' 'I', then the indexed due time at a fixed place, for
 * cue_codec_peek_indexed_due):
 *   "MI" | indexed_due | last_offset | last_event_ms | has floor [| seen_floor_ms]
 *   | id_len | attr_len[] | n_more | n_seen | n_instances | policy counts (3)
 *   | consent[] | muted | id | attrs | more_offsets[] | seen[] | sent[]
 *   | deferred (head, rec) ... | decided[] | instances ...
 * an instance:
 *   machine | state | flags | key_len | counter, timer, variable masks
 *   | started [| updated] [| version] [| once] | key | counters set
 *   | timers set | variables set (type, then its value)
 * (an image is about the size of the record, so the cache holds as many).
 */
#include "cuepoint/codec.h"

#include "codec_int.h"
#include "cuepoint/bytes.h"

#include <stddef.h>
#include <string.h>

#define IMAGE_HEAD 2

/* An instance's counters, timers and variables set are one bit each of a byte. */
_Static_assert(CUE_MACHINE_COUNTERS_MAX <= 8 && CUE_MACHINE_TIMERS_MAX <= 8 &&
                   CUE_MACHINE_VARS_MAX <= 8,
               "masks are one byte");
_Static_assert(CUE_USER_INSTANCES_MAX <= 255 && CUE_INPUT_TOPICS_MAX <= 256 &&
                   CUE_MACHINES_MAX <= 256 && CUE_MACHINE_STATES_MAX <= 256,
               "counts and indices are one byte");

typedef struct writer {
    uint8_t *p;
} writer;

static void w_bytes(writer *w, const void *s, size_t n)
{
    cue_bytes_copy(w->p, s, n);
    w->p += n;
}

static void w_u8(writer *w, uint8_t v)
{
    *w->p++ = v;
}

#define W_FIXED(w, v) w_bytes((w), &(v), sizeof(v))

typedef struct reader {
    const uint8_t *p;
} reader;

static void r_bytes(reader *r, void *out, size_t n)
{
    cue_bytes_copy(out, r->p, n);
    r->p += n;
}

static uint8_t r_u8(reader *r)
{
    return *r->p++;
}

#define R_FIXED(r, v) r_bytes((r), &(v), sizeof(v))

/* An upper bound on one instance's image. */
static size_t instance_bound(void)
{
    return 48 + CUE_KEY_BYTES_MAX + 8 * (CUE_MACHINE_COUNTERS_MAX + CUE_MACHINE_TIMERS_MAX) +
           CUE_MACHINE_VARS_MAX * (10 + CUE_VALUE_BYTES_MAX);
}

static void put_var(writer *w, const cue_var *v)
{
    w_u8(w, v->type);
    switch (v->type) {
    case CUE_VAL_BOOL: w_u8(w, v->b); break;
    case CUE_VAL_INT: W_FIXED(w, v->i); break;
    case CUE_VAL_DOUBLE: W_FIXED(w, v->d); break;
    case CUE_VAL_STRING:
        w_u8(w, v->len);
        w_bytes(w, v->s, v->len);
        break;
    default: break;
    }
}

static void get_var(reader *r, cue_var *v)
{
    v->type = r_u8(r);
    switch (v->type) {
    case CUE_VAL_BOOL: v->b = r_u8(r) != 0; break;
    case CUE_VAL_INT: R_FIXED(r, v->i); break;
    case CUE_VAL_DOUBLE: R_FIXED(r, v->d); break;
    case CUE_VAL_STRING:
        v->len = r_u8(r);
        r_bytes(r, v->s, v->len);
        break;
    default: break;
    }
}

/* An instance's flags: what it has that most do not, and what is written. */
enum {
    INST_FINISHED = 1,
    INST_ONCE = 2,        /* once bits, else none */
    INST_OLD_VERSION = 4, /* a version other than its machine's, written */
    INST_UPDATED = 8,     /* updated_ms other than started_ms, written */
};

/* Only the machine's own counters, timers and variables can be set (the
 * engine and the record reader touch no others). */
static void put_instance(writer *w, const cue_instance *in, const cue_machine *m)
{
    uint8_t counters = 0, timers = 0, vars = 0;
    for (unsigned i = 0; i < m->n_counters; i++)
        counters |= (uint8_t)((in->counters[i] != 0) << i);
    for (unsigned i = 0; i < m->n_timers; i++)
        timers |= (uint8_t)((in->timers[i] != CUE_TIMER_NONE) << i);
    for (unsigned i = 0; i < m->n_vars; i++)
        vars |= (uint8_t)((in->vars[i].type != CUE_VAL_ABSENT) << i);
    uint8_t flags = (uint8_t)((in->finished ? INST_FINISHED : 0) | (in->once ? INST_ONCE : 0) |
                              (in->version != m->version ? INST_OLD_VERSION : 0) |
                              (in->updated_ms != in->started_ms ? INST_UPDATED : 0));
    w_u8(w, (uint8_t)in->machine);
    w_u8(w, (uint8_t)in->state);
    w_u8(w, flags);
    w_u8(w, in->key_len);
    w_u8(w, counters);
    w_u8(w, timers);
    w_u8(w, vars);
    W_FIXED(w, in->started_ms);
    if (flags & INST_UPDATED) W_FIXED(w, in->updated_ms);
    if (flags & INST_OLD_VERSION) W_FIXED(w, in->version);
    if (flags & INST_ONCE) W_FIXED(w, in->once);
    w_bytes(w, in->key, in->key_len);
    for (unsigned i = 0; i < m->n_counters; i++)
        if (counters & (1u << i)) W_FIXED(w, in->counters[i]);
    for (unsigned i = 0; i < m->n_timers; i++)
        if (timers & (1u << i)) W_FIXED(w, in->timers[i]);
    for (unsigned i = 0; i < m->n_vars; i++)
        if (vars & (1u << i)) put_var(w, &in->vars[i]);
}

static void get_instance(reader *r, const cue_machines *ms, cue_instance *in)
{
    uint16_t mi = r_u8(r);
    CUE_ASSERT(mi < cue_machines_count(ms));
    const cue_machine *m = cue_machines_get(ms, mi);
    cue_instance_init(in, m, mi, 0); /* its version is the machine's */
    in->state = r_u8(r);
    uint8_t flags = r_u8(r);
    in->finished = (flags & INST_FINISHED) != 0;
    in->key_len = r_u8(r);
    uint8_t counters = r_u8(r), timers = r_u8(r), vars = r_u8(r);
    R_FIXED(r, in->started_ms);
    in->updated_ms = in->started_ms;
    if (flags & INST_UPDATED) R_FIXED(r, in->updated_ms);
    if (flags & INST_OLD_VERSION) R_FIXED(r, in->version);
    if (flags & INST_ONCE) R_FIXED(r, in->once);
    r_bytes(r, in->key, in->key_len);
    for (unsigned i = 0; i < m->n_counters; i++)
        if (counters & (1u << i)) R_FIXED(r, in->counters[i]);
    for (unsigned i = 0; i < m->n_timers; i++)
        if (timers & (1u << i)) R_FIXED(r, in->timers[i]);
    for (unsigned i = 0; i < m->n_vars; i++)
        if (vars & (1u << i)) get_var(r, &in->vars[i]);
}

/* A deferred trigger's fixed part: everything before its record's bytes. */
#define DEFERRED_HEAD offsetof(cue_deferred, rec)

int cue_codec_image_save(const cue_user *u, const cue_machines *ms, cue_buf *out)
{
    const cue_user_policy *pol = &u->policy;
    size_t more = cue_codec_more_offsets_len(u);
    size_t bound = 64 + u->id_len + CUE_ATTR_COUNT * (CUE_ATTR_BYTES_MAX + 1) + more * 8 +
                   u->n_seen * sizeof(cue_seen_id) + 16 + pol->n_sent * sizeof(cue_sent) +
                   pol->n_deferred * sizeof(cue_deferred) + pol->n_decided * sizeof(cue_decided) +
                   u->n_instances * instance_bound();
    cue_buf_reset(out);
    if (cue_buf_reserve(out, bound) != 0) return CUE_ENOMEM;
    writer w = {.p = (uint8_t *)out->data};
    w_u8(&w, 'M');
    w_u8(&w, 'I');
    W_FIXED(&w, u->indexed_due);
    W_FIXED(&w, u->last_offset);
    W_FIXED(&w, u->last_event_ms);
    w_u8(&w, u->seen_floor_ms != INT64_MIN);
    if (u->seen_floor_ms != INT64_MIN) W_FIXED(&w, u->seen_floor_ms);
    w_u8(&w, u->id_len);
    w_bytes(&w, u->attr_len, sizeof u->attr_len);
    w_u8(&w, (uint8_t)more);
    w_u8(&w, u->n_seen);
    w_u8(&w, (uint8_t)u->n_instances);
    w_u8(&w, pol->n_sent);
    w_u8(&w, pol->n_deferred);
    w_u8(&w, pol->n_decided);
    w_bytes(&w, pol->consent, sizeof pol->consent);
    w_u8(&w, pol->muted);
    w_bytes(&w, u->id, u->id_len);
    for (int a = 0; a < CUE_ATTR_COUNT; a++)
        w_bytes(&w, u->attrs[a], u->attr_len[a]);
    w_bytes(&w, u->more_offsets, more * sizeof u->more_offsets[0]);
    w_bytes(&w, u->seen, u->n_seen * sizeof u->seen[0]);
    w_bytes(&w, pol->sent, pol->n_sent * sizeof pol->sent[0]);
    for (size_t i = 0; i < pol->n_deferred; i++) {
        w_bytes(&w, &pol->deferred[i], DEFERRED_HEAD);
        w_bytes(&w, pol->deferred[i].rec, pol->deferred[i].rec_len);
    }
    w_bytes(&w, pol->decided, pol->n_decided * sizeof pol->decided[0]);
    for (size_t i = 0; i < u->n_instances; i++)
        put_instance(&w, &u->inst[i], cue_machines_get(ms, u->inst[i].machine));
    out->len = (size_t)(w.p - (uint8_t *)out->data);
    CUE_ASSERT(out->len <= bound);
    return 0;
}

bool cue_codec_is_image(const void *val, size_t len)
{
    const uint8_t *b = val;
    return len >= IMAGE_HEAD + 8 && b[0] == 'M' && b[1] == 'I';
}

int64_t cue_codec_image_indexed_due(const void *img)
{
    int64_t due;
    memcpy(&due, (const uint8_t *)img + IMAGE_HEAD, sizeof due);
    return due;
}

void cue_codec_image_load(const void *img, size_t len, const cue_machines *ms, cue_user *u)
{
    CUE_ASSERT(cue_codec_is_image(img, len));
    cue_user_policy *pol = &u->policy;
    reader r = {.p = (const uint8_t *)img + IMAGE_HEAD};
    R_FIXED(&r, u->indexed_due);
    R_FIXED(&r, u->last_offset);
    R_FIXED(&r, u->last_event_ms);
    u->seen_floor_ms = INT64_MIN;
    if (r_u8(&r)) R_FIXED(&r, u->seen_floor_ms);
    u->id_len = r_u8(&r);
    r_bytes(&r, u->attr_len, sizeof u->attr_len);
    size_t more = r_u8(&r);
    u->n_seen = r_u8(&r);
    u->n_instances = r_u8(&r);
    pol->n_sent = r_u8(&r);
    pol->n_deferred = r_u8(&r);
    pol->n_decided = r_u8(&r);
    r_bytes(&r, pol->consent, sizeof pol->consent);
    pol->muted = r_u8(&r);
    r_bytes(&r, u->id, u->id_len);
    for (int a = 0; a < CUE_ATTR_COUNT; a++)
        r_bytes(&r, u->attrs[a], u->attr_len[a]);
    r_bytes(&r, u->more_offsets, more * sizeof u->more_offsets[0]);
    for (size_t i = more; i < CUE_INPUT_TOPICS_MAX - 1; i++)
        u->more_offsets[i] = CUE_OFFSET_NONE;
    r_bytes(&r, u->seen, u->n_seen * sizeof u->seen[0]);
    r_bytes(&r, pol->sent, pol->n_sent * sizeof pol->sent[0]);
    for (size_t i = 0; i < pol->n_deferred; i++) {
        r_bytes(&r, &pol->deferred[i], DEFERRED_HEAD);
        r_bytes(&r, pol->deferred[i].rec, pol->deferred[i].rec_len);
    }
    r_bytes(&r, pol->decided, pol->n_decided * sizeof pol->decided[0]);
    for (size_t i = 0; i < u->n_instances; i++)
        get_instance(&r, ms, &u->inst[i]);
    CUE_ASSERT(r.p == (const uint8_t *)img + len);
}
