/* User state records: compact varints, names as hashes, a checksum at the end. */
#include "cuepoint/codec.h"

#include "codec_int.h"
#include "cuepoint/bytes.h"
#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"

#include <string.h>

const char *const cue_channel_names[CUE_CHANNELS_MAX] = {"push", "email", "in_app", "sms"};

const char *cue_outcome_name(cue_outcome o)
{
    static const char *const names[] = {
#define CUE_OUTCOME_TEXT(name, text) text,
        CUE_OUTCOMES(CUE_OUTCOME_TEXT)
#undef CUE_OUTCOME_TEXT
    };
    return (unsigned)o < CUE_OUTCOME_COUNT ? names[o] : "unknown";
}

const char *cue_why_name(cue_why w)
{
    static const char *const names[] = {
#define CUE_WHY_TEXT(name, text) text,
        CUE_WHYS(CUE_WHY_TEXT)
#undef CUE_WHY_TEXT
    };
    return (unsigned)w < CUE_WHY_COUNT ? names[w] : "unknown";
}

static void policy_init(cue_user_policy *p)
{
    memset(p->consent, 0, sizeof p->consent);
    p->muted = 0;
    p->n_sent = p->n_deferred = p->n_decided = 0;
}

bool cue_user_policy_empty(const cue_user_policy *p)
{
    for (int c = 0; c < CUE_CHANNELS_MAX; c++)
        if (p->consent[c] != CUE_CONSENT_DEFAULT) return false;
    return p->muted == 0 && p->n_sent == 0 && p->n_deferred == 0 && p->n_decided == 0;
}

void cue_user_init(cue_user *u, const char *id, size_t id_len)
{
    CUE_ASSERT(id_len <= CUE_USER_ID_BYTES_MAX);
    u->id_len = (uint8_t)id_len;
    memcpy(u->id, id, id_len);
    memset(u->attr_len, 0, sizeof u->attr_len);
    u->last_offset = CUE_OFFSET_NONE;
    for (size_t i = 0; i < CUE_INPUT_TOPICS_MAX - 1; i++)
        u->more_offsets[i] = CUE_OFFSET_NONE;
    u->last_event_ms = INT64_MIN;
    u->indexed_due = CUE_TIMER_NONE;
    u->n_instances = 0;
    policy_init(&u->policy);
    u->n_seen = 0;
    u->seen_floor_ms = INT64_MIN;
}

void cue_instance_init(cue_instance *in, const cue_machine *m, uint16_t mi, int64_t now_ms)
{
    in->machine = mi;
    in->state = m->initial;
    in->version = m->version;
    in->finished = false;
    in->key_len = 0;
    in->once = 0;
    in->started_ms = now_ms;
    in->updated_ms = now_ms;
    for (size_t i = 0; i < CUE_MACHINE_COUNTERS_MAX; i++)
        in->counters[i] = 0;
    for (size_t i = 0; i < CUE_MACHINE_VARS_MAX; i++)
        in->vars[i].type = CUE_VAL_ABSENT;
    for (size_t i = 0; i < CUE_MACHINE_TIMERS_MAX; i++)
        in->timers[i] = CUE_TIMER_NONE;
}

void cue_user_remove_instance(cue_user *u, size_t i)
{
    CUE_ASSERT(i < u->n_instances);
    memmove(&u->inst[i], &u->inst[i + 1], (u->n_instances - i - 1) * sizeof u->inst[0]);
    u->n_instances--;
}

int64_t cue_user_next_due(const cue_user *u)
{
    int64_t next = CUE_TIMER_NONE;
    for (size_t i = 0; i < u->n_instances; i++)
        for (size_t t = 0; t < CUE_MACHINE_TIMERS_MAX; t++) {
            int64_t due = u->inst[i].timers[t];
            if (due != CUE_TIMER_NONE && (next == CUE_TIMER_NONE || due < next)) next = due;
        }
    for (size_t i = 0; i < u->policy.n_deferred; i++) {
        int64_t due = u->policy.deferred[i].due_ms;
        if (next == CUE_TIMER_NONE || due < next) next = due;
    }
    return next;
}

/* ---- writing ----------------------------------------------------------- */

static void put_varint(uint8_t **p, uint64_t v)
{
    while (v >= 0x80) {
        *(*p)++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *(*p)++ = (uint8_t)v;
}

static void put_zigzag(uint8_t **p, int64_t v)
{
    put_varint(p, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_u32(uint8_t **p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

static void put_bytes(uint8_t **p, const void *s, size_t n)
{
    put_varint(p, n);
    cue_bytes_copy(*p, s, n);
    *p += n;
}

static void put_var(uint8_t **p, const cue_var *v)
{
    *(*p)++ = v->type;
    switch (v->type) {
    case CUE_VAL_BOOL: *(*p)++ = v->b; break;
    case CUE_VAL_INT: put_zigzag(p, v->i); break;
    case CUE_VAL_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->d, sizeof bits);
        put_u32(p, (uint32_t)bits);
        put_u32(p, (uint32_t)(bits >> 32));
        break;
    }
    case CUE_VAL_STRING: put_bytes(p, v->s, v->len); break;
    default: break;
    }
}

static void put_instance(uint8_t **p, const cue_instance *in, const cue_machine *m)
{
    put_u32(p, m->hash);
    put_varint(p, in->version);
    *(*p)++ = in->finished;
    put_bytes(p, in->key, in->key_len);
    put_u32(p, m->states[in->state].hash);
    put_zigzag(p, in->started_ms);
    put_zigzag(p, in->updated_ms);
    put_varint(p, (uint64_t)__builtin_popcount(in->once));
    for (uint16_t t = 0; t < m->n_triggers; t++)
        if (in->once & (1u << t)) put_u32(p, m->triggers[t].hash);
    uint64_t n = 0;
    for (uint16_t i = 0; i < m->n_counters; i++)
        n += in->counters[i] != 0;
    put_varint(p, n);
    for (uint16_t i = 0; i < m->n_counters; i++) {
        if (in->counters[i] == 0) continue;
        put_u32(p, m->counters[i].hash);
        put_zigzag(p, in->counters[i]);
    }
    n = 0;
    for (uint16_t i = 0; i < m->n_vars; i++)
        n += in->vars[i].type != CUE_VAL_ABSENT;
    put_varint(p, n);
    for (uint16_t i = 0; i < m->n_vars; i++) {
        if (in->vars[i].type == CUE_VAL_ABSENT) continue;
        put_u32(p, m->vars[i].hash);
        put_var(p, &in->vars[i]);
    }
    n = 0;
    for (uint16_t i = 0; i < m->n_timers; i++)
        n += in->timers[i] != CUE_TIMER_NONE;
    put_varint(p, n);
    for (uint16_t i = 0; i < m->n_timers; i++) {
        if (in->timers[i] == CUE_TIMER_NONE) continue;
        put_u32(p, m->timers[i].hash);
        put_zigzag(p, in->timers[i]);
    }
}

/* An upper bound on one instance's record, so the buffer grows once. */
static size_t instance_bound(void)
{
    return 64 + CUE_KEY_BYTES_MAX + 4 * CUE_MACHINE_TRIGGERS_MAX + CUE_MACHINE_COUNTERS_MAX * 16 +
           CUE_MACHINE_VARS_MAX * (16 + CUE_VALUE_BYTES_MAX) + CUE_MACHINE_TIMERS_MAX * 16;
}

void cue_codec_seal(void *rec, size_t len)
{
    CUE_ASSERT(len >= 7);
    uint8_t *b = rec;
    uint32_t sum = cue_hash32(b, len - 4);
    for (int i = 0; i < 4; i++)
        b[len - 4 + i] = (uint8_t)(sum >> (8 * i));
}

/* A deferred trigger's flags byte. */
enum { DEFERRED_TIMER = 1, DEFERRED_LATE = 2 };

static void put_policy(uint8_t **p, const cue_user_policy *pol)
{
    for (int c = 0; c < CUE_CHANNELS_MAX; c++)
        *(*p)++ = pol->consent[c];
    *(*p)++ = pol->muted;
    put_varint(p, pol->n_sent);
    for (size_t i = 0; i < pol->n_sent; i++) {
        const cue_sent *x = &pol->sent[i];
        put_zigzag(p, x->ms);
        put_u32(p, x->machine);
        put_u32(p, x->trigger);
        *(*p)++ = x->cls;
        *(*p)++ = x->channel;
    }
    put_varint(p, pol->n_deferred);
    for (size_t i = 0; i < pol->n_deferred; i++) {
        const cue_deferred *x = &pol->deferred[i];
        put_zigzag(p, x->due_ms);
        put_zigzag(p, x->time_ms);
        put_u32(p, x->machine);
        put_u32(p, x->trigger);
        *(*p)++ = x->why;
        /* Flags in the byte that was once the timer boolean, so the policy
         * section (formats 2 and 3) reads both ways without a new format: a
         * build that reads the byte as "non-zero: a timer" loses only the
         * mark. */
        *(*p)++ = (uint8_t)((x->timer ? DEFERRED_TIMER : 0) | (x->late ? DEFERRED_LATE : 0));
        put_bytes(p, x->id, CUE_HASH_HEX_LEN);
        put_bytes(p, x->rec, x->rec_len);
    }
    put_varint(p, pol->n_decided);
    for (size_t i = 0; i < pol->n_decided; i++) {
        const cue_decided *x = &pol->decided[i];
        put_zigzag(p, x->ms);
        put_zigzag(p, x->until);
        put_u32(p, x->machine);
        put_u32(p, x->trigger);
        *(*p)++ = x->outcome;
        *(*p)++ = x->why;
        *(*p)++ = x->channel;
        put_bytes(p, x->id, CUE_HASH_HEX_LEN);
    }
}

static size_t policy_bound(const cue_user_policy *pol)
{
    return 16 + pol->n_sent * 32u +
           pol->n_deferred * (48u + CUE_HASH_HEX_LEN + CUE_POLICY_DEFERRED_BYTES_MAX) +
           pol->n_decided * (48u + CUE_HASH_HEX_LEN);
}

/* The event ids: the count, then each one's time as a difference from the
 * last event's, and its hash. */
static void put_seen(uint8_t **p, const cue_user *u)
{
    put_varint(p, u->n_seen);
    *(*p)++ = u->seen_floor_ms != INT64_MIN;
    if (u->seen_floor_ms != INT64_MIN)
        put_zigzag(p, (int64_t)((uint64_t)u->last_event_ms - (uint64_t)u->seen_floor_ms));
    for (size_t i = 0; i < u->n_seen; i++) {
        put_zigzag(p, (int64_t)((uint64_t)u->last_event_ms - (uint64_t)u->seen[i].ms));
        put_u32(p, (uint32_t)u->seen[i].hash);
        put_u32(p, (uint32_t)(u->seen[i].hash >> 32));
    }
}

size_t cue_codec_more_offsets_len(const cue_user *u)
{
    size_t n = CUE_INPUT_TOPICS_MAX - 1;
    while (n > 0 && u->more_offsets[n - 1] == CUE_OFFSET_NONE)
        n--;
    return n;
}

static void put_more_offsets(uint8_t **p, const cue_user *u, size_t n)
{
    put_varint(p, n);
    for (size_t i = 0; i < n; i++)
        put_zigzag(p, u->more_offsets[i]);
}

int cue_codec_encode(const cue_user *u, const cue_machines *ms, cue_buf *out)
{
    size_t more = cue_codec_more_offsets_len(u);
    bool ids = more > 0 || u->n_seen > 0 || u->seen_floor_ms != INT64_MIN;
    bool plain = !ids && cue_user_policy_empty(&u->policy);
    uint8_t format = more    ? CUE_CODEC_VERSION_TOPICS
                     : ids   ? CUE_CODEC_VERSION_IDS
                     : plain ? CUE_CODEC_VERSION_PLAIN
                             : CUE_CODEC_VERSION_POLICY;
    size_t bound = 64 + CUE_USER_ID_BYTES_MAX + CUE_ATTR_COUNT * (CUE_ATTR_BYTES_MAX + 2) +
                   u->n_instances * instance_bound() + (plain ? 0 : policy_bound(&u->policy)) +
                   (ids ? 20 + u->n_seen * 18u : 0) + (more ? 2 + more * 10u : 0);
    cue_buf_reset(out);
    if (cue_buf_reserve(out, bound) != 0) return CUE_ENOMEM;
    uint8_t *start = (uint8_t *)out->data, *p = start;
    *p++ = 'C';
    *p++ = 'U';
    *p++ = format;
    put_bytes(&p, u->id, u->id_len);
    put_zigzag(&p, u->last_offset);
    put_zigzag(&p, u->last_event_ms);
    put_zigzag(&p, u->indexed_due);
    for (int a = 0; a < CUE_ATTR_COUNT; a++)
        put_bytes(&p, u->attrs[a], u->attr_len[a]);
    put_varint(&p, u->n_instances);
    for (size_t i = 0; i < u->n_instances; i++)
        put_instance(&p, &u->inst[i], cue_machines_get(ms, u->inst[i].machine));
    if (!plain) put_policy(&p, &u->policy);
    if (ids) put_seen(&p, u);
    if (more) put_more_offsets(&p, u, more);
    put_u32(&p, 0); /* the checksum */
    out->len = (size_t)(p - start);
    CUE_ASSERT(out->len <= bound);
    cue_codec_seal(out->data, out->len);
    return 0;
}

/* ---- reading ----------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p, *end;
    bool bad;
    const char *what; /* the first field that did not read */
} reader;

static bool need(reader *r, size_t n, const char *what)
{
    if (r->bad) return false;
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        r->what = what;
        return false;
    }
    return true;
}

static void bad(reader *r, const char *what)
{
    if (!r->bad) {
        r->bad = true;
        r->what = what;
    }
}

static uint64_t get_varint(reader *r, const char *what)
{
    /* Most varints here are one byte (lengths, counts, small numbers). */
    if (r->p < r->end && *r->p < 0x80) return *r->p++;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (!need(r, 1, what)) return 0;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->bad = true;
    r->what = what;
    return 0;
}

static int64_t get_zigzag(reader *r, const char *what)
{
    uint64_t v = get_varint(r, what);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static uint32_t get_u32(reader *r, const char *what)
{
    if (!need(r, 4, what)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[i] << (8 * i);
    r->p += 4;
    return v;
}

static uint8_t get_u8(reader *r, const char *what)
{
    return need(r, 1, what) ? *r->p++ : 0;
}

/* Reads length-prefixed bytes into `out` (capacity `cap`). */
static size_t get_bytes(reader *r, char *out, size_t cap, const char *what)
{
    uint64_t n = get_varint(r, what);
    if (n > cap) {
        r->bad = true;
        r->what = what;
        return 0;
    }
    if (!need(r, n, what)) return 0;
    cue_bytes_copy(out, r->p, n);
    r->p += n;
    return (size_t)n;
}

static void get_var(reader *r, cue_var *v)
{
    v->type = get_u8(r, "variable type");
    switch (v->type) {
    case CUE_VAL_NULL: break;
    case CUE_VAL_BOOL: v->b = get_u8(r, "variable") != 0; break;
    case CUE_VAL_INT: v->i = get_zigzag(r, "variable"); break;
    case CUE_VAL_DOUBLE: {
        uint64_t lo = get_u32(r, "variable"), hi = get_u32(r, "variable");
        uint64_t bits = lo | hi << 32;
        memcpy(&v->d, &bits, sizeof bits);
        break;
    }
    case CUE_VAL_STRING: v->len = (uint8_t)get_bytes(r, v->s, sizeof v->s, "variable"); break;
    default: r->bad = true; r->what = "variable type";
    }
}

static int find_name(const cue_name *names, uint16_t n, uint32_t hash)
{
    for (uint16_t i = 0; i < n; i++)
        if (names[i].hash == hash) return i;
    return -1;
}

/* Reads the per-name sections of an instance, mapping hashes to indices;
 * timers are left as read, for cue_codec_settle to place. */
static void get_named(reader *r, cue_instance *in, const cue_machine *m, cue_codec_stats *st,
                      cue_old_timer *olds, uint8_t *n_olds)
{
    uint64_t n = get_varint(r, "once count");
    for (uint64_t k = 0; k < n && !r->bad; k++) {
        int t = find_name(m ? m->triggers : NULL, m ? m->n_triggers : 0, get_u32(r, "once"));
        if (t >= 0) in->once |= 1u << t;
    }
    n = get_varint(r, "counter count");
    for (uint64_t k = 0; k < n && !r->bad; k++) {
        int c = find_name(m ? m->counters : NULL, m ? m->n_counters : 0, get_u32(r, "counter"));
        int64_t v = get_zigzag(r, "counter");
        if (c >= 0)
            in->counters[c] = v;
        else
            st->dropped_names++;
    }
    n = get_varint(r, "variable count");
    for (uint64_t k = 0; k < n && !r->bad; k++) {
        int v = find_name(m ? m->vars : NULL, m ? m->n_vars : 0, get_u32(r, "variable"));
        cue_var tmp;
        get_var(r, v >= 0 ? &in->vars[v] : &tmp);
        if (v < 0) st->dropped_names++;
    }
    n = get_varint(r, "timer count");
    /* A machine has at most CUE_MACHINE_TIMERS_MAX timers, in every version. */
    if (n > CUE_MACHINE_TIMERS_MAX) bad(r, "timer count");
    for (uint64_t k = 0; k < n && !r->bad; k++) {
        olds[k].hash = get_u32(r, "timer");
        olds[k].due = get_zigzag(r, "timer");
    }
    *n_olds = r->bad ? 0 : (uint8_t)n;
}

/* Reads one instance into `in`; returns false when it is to be dropped. */
static bool get_instance(reader *r, const cue_machines *ms, const cue_user *u, cue_instance *in,
                         cue_codec_stats *st, const cue_mig_trace *tr)
{
    uint32_t machine_hash = get_u32(r, "machine");
    int mi = cue_machines_find_hash(ms, machine_hash);
    const cue_machine *m = mi >= 0 ? cue_machines_get(ms, (size_t)mi) : NULL;
    uint32_t version = (uint32_t)get_varint(r, "version");
    if (m)
        cue_instance_init(in, m, (uint16_t)mi, 0);
    else
        memset(in, 0, sizeof *in);
    in->version = version;
    in->finished = get_u8(r, "finished") != 0;
    in->key_len = (uint8_t)get_bytes(r, in->key, sizeof in->key, "instance key");
    uint32_t state_hash = get_u32(r, "state");
    in->started_ms = get_zigzag(r, "started");
    in->updated_ms = get_zigzag(r, "updated");
    cue_old_timer olds[CUE_MACHINE_TIMERS_MAX];
    uint8_t n_olds = 0;
    get_named(r, in, m, st, olds, &n_olds);
    if (r->bad) return false;
    if (m == NULL) {
        /* Its journey was removed: nothing can run it. */
        st->dropped_instances++;
        if (tr && tr->fn) {
            cue_migration mg = {.machine_hash = machine_hash,
                                .from_version = version,
                                .from_state = state_hash,
                                .outcome = CUE_MIG_GONE,
                                .to_state = -1};
            tr->fn(&mg, tr->ctx);
        }
        return false;
    }
    /* A state renamed, split or removed is placed by the machine's rules;
     * one that no rule places is finished and counted as stranded. */
    return cue_codec_settle(m, (uint16_t)mi, ms, u, in, state_hash, olds, n_olds, st, tr);
}

static bool hex_id(const char *id)
{
    for (int i = 0; i < CUE_HASH_HEX_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return false;
    return true;
}

static bool channel_ok(uint8_t ch)
{
    return ch < CUE_CHANNELS_MAX || ch == CUE_CH_NONE;
}

/* Reads the policy section. Once a field is bad the rest reads out of step,
 * so only the first bad field is named (bad() keeps it). */
static void get_policy(reader *r, cue_user_policy *pol)
{
    for (int c = 0; c < CUE_CHANNELS_MAX; c++) {
        pol->consent[c] = get_u8(r, "consent");
        if (pol->consent[c] > CUE_CONSENT_DENIED) bad(r, "consent");
    }
    pol->muted = get_u8(r, "muted");
    uint64_t n = get_varint(r, "sent count");
    if (n > CUE_POLICY_SENDS_MAX) bad(r, "sent count");
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        cue_sent *x = &pol->sent[i];
        x->ms = get_zigzag(r, "sent time");
        x->machine = get_u32(r, "sent machine");
        x->trigger = get_u32(r, "sent trigger");
        x->cls = get_u8(r, "sent class");
        x->channel = get_u8(r, "sent channel");
        if (x->cls >= 16) bad(r, "sent class");
        if (x->channel >= CUE_CHANNELS_MAX) bad(r, "sent channel");
    }
    pol->n_sent = r->bad ? 0 : (uint8_t)n;
    n = get_varint(r, "deferred count");
    if (n > CUE_POLICY_DEFERRED_MAX) bad(r, "deferred count");
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        cue_deferred *x = &pol->deferred[i];
        x->due_ms = get_zigzag(r, "deferred due");
        x->time_ms = get_zigzag(r, "deferred time");
        x->machine = get_u32(r, "deferred machine");
        x->trigger = get_u32(r, "deferred trigger");
        x->why = get_u8(r, "deferred reason");
        uint8_t flags = get_u8(r, "deferred flags");
        if (flags & ~(DEFERRED_TIMER | DEFERRED_LATE)) bad(r, "deferred flags");
        x->timer = (flags & DEFERRED_TIMER) != 0;
        x->late = (flags & DEFERRED_LATE) != 0;
        if (get_bytes(r, x->id, CUE_HASH_HEX_LEN, "deferred id") != CUE_HASH_HEX_LEN && !r->bad)
            bad(r, "deferred id");
        x->id[CUE_HASH_HEX_LEN] = '\0';
        x->rec_len = (uint16_t)get_bytes(r, x->rec, sizeof x->rec, "deferred record");
        /* A trigger record: the policy's fields go before its last two braces. */
        if (x->rec_len < 3 || x->rec[x->rec_len - 1] != '}' || x->rec[x->rec_len - 2] != '}')
            bad(r, "deferred record");
        if (x->due_ms == CUE_TIMER_NONE) bad(r, "deferred due");
        if (x->why >= CUE_WHY_COUNT) bad(r, "deferred reason");
        if (!r->bad && !hex_id(x->id)) bad(r, "deferred id");
    }
    pol->n_deferred = r->bad ? 0 : (uint8_t)n;
    n = get_varint(r, "decision count");
    if (n > CUE_POLICY_DECISIONS_MAX) bad(r, "decision count");
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        cue_decided *x = &pol->decided[i];
        x->ms = get_zigzag(r, "decision time");
        x->until = get_zigzag(r, "decision until");
        x->machine = get_u32(r, "decision machine");
        x->trigger = get_u32(r, "decision trigger");
        x->outcome = get_u8(r, "decision outcome");
        x->why = get_u8(r, "decision reason");
        x->channel = get_u8(r, "decision channel");
        if (get_bytes(r, x->id, CUE_HASH_HEX_LEN, "decision id") != CUE_HASH_HEX_LEN && !r->bad)
            bad(r, "decision id");
        x->id[CUE_HASH_HEX_LEN] = '\0';
        if (x->outcome >= CUE_OUTCOME_COUNT) bad(r, "decision outcome");
        if (x->why >= CUE_WHY_COUNT) bad(r, "decision reason");
        if (!channel_ok(x->channel)) bad(r, "decision channel");
        if (!r->bad && !hex_id(x->id)) bad(r, "decision id");
    }
    pol->n_decided = r->bad ? 0 : (uint8_t)n;
}

static void get_seen(reader *r, cue_user *u)
{
    uint64_t n = get_varint(r, "event id count");
    if (n > CUE_EVENT_IDS_MAX) bad(r, "event id count");
    u->n_seen = 0;
    uint8_t has_floor = get_u8(r, "event id floor");
    if (has_floor > 1) bad(r, "event id floor");
    u->seen_floor_ms = INT64_MIN;
    if (has_floor == 1)
        u->seen_floor_ms =
            (int64_t)((uint64_t)u->last_event_ms - (uint64_t)get_zigzag(r, "event id floor"));
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        int64_t back = get_zigzag(r, "event id time");
        uint64_t lo = get_u32(r, "event id"), hi = get_u32(r, "event id");
        u->seen[i].ms = (int64_t)((uint64_t)u->last_event_ms - (uint64_t)back);
        u->seen[i].hash = lo | hi << 32;
    }
    u->n_seen = r->bad ? 0 : (uint8_t)n;
}

static int decode_body(reader *r, const cue_machines *ms, cue_user *u, cue_codec_stats *st,
                       int format, const cue_mig_trace *tr)
{
    u->id_len = (uint8_t)get_bytes(r, u->id, sizeof u->id, "user id");
    u->last_offset = get_zigzag(r, "last offset");
    u->last_event_ms = get_zigzag(r, "last event time");
    u->indexed_due = get_zigzag(r, "indexed due time");
    for (int a = 0; a < CUE_ATTR_COUNT; a++)
        u->attr_len[a] = (uint8_t)get_bytes(r, u->attrs[a], sizeof u->attrs[a], "attribute");
    uint64_t n = get_varint(r, "instance count");
    if (n > CUE_USER_INSTANCES_MAX) {
        r->bad = true;
        r->what = "instance count";
    }
    u->n_instances = 0;
    for (uint64_t i = 0; i < n && !r->bad; i++)
        if (get_instance(r, ms, u, &u->inst[u->n_instances], st, tr)) u->n_instances++;
    policy_init(&u->policy);
    if (format >= CUE_CODEC_VERSION_POLICY) get_policy(r, &u->policy);
    u->n_seen = 0;
    u->seen_floor_ms = INT64_MIN;
    if (format >= CUE_CODEC_VERSION_IDS) get_seen(r, u);
    for (size_t i = 0; i < CUE_INPUT_TOPICS_MAX - 1; i++)
        u->more_offsets[i] = CUE_OFFSET_NONE;
    if (format >= CUE_CODEC_VERSION_TOPICS) {
        uint64_t m = get_varint(r, "input topic count");
        if (m == 0 || m > CUE_INPUT_TOPICS_MAX - 1) bad(r, "input topic count");
        for (uint64_t i = 0; i < m && !r->bad; i++)
            u->more_offsets[i] = get_zigzag(r, "input topic offset");
    }
    if (!r->bad && r->p != r->end) {
        r->bad = true;
        r->what = "trailing bytes";
    }
    return r->bad ? CUE_ECORRUPT : 0;
}

static int decode(const void *rec, size_t len, const cue_machines *ms, cue_user *u,
                  cue_codec_stats *stats, const cue_mig_trace *tr, cue_err *err)
{
    cue_codec_stats scratch = {0};
    cue_codec_stats *st = stats ? stats : &scratch;
    const uint8_t *b = rec;
    if (len < 7 || b[0] != 'C' || b[1] != 'U')
        return cue_err_set(err, CUE_ECORRUPT, "state record: not a cuepoint state (bad magic)");
    if (b[2] < CUE_CODEC_VERSION_PLAIN || b[2] > CUE_CODEC_VERSION)
        return cue_err_set(err, CUE_EVERSION,
                           "state record: format version %u, this build reads %u to %u", b[2],
                           CUE_CODEC_VERSION_PLAIN, CUE_CODEC_VERSION);
    if (len > CUE_STATE_BYTES_MAX)
        return cue_err_set(err, CUE_ECORRUPT, "state record: %zu bytes, over the %d limit", len,
                           CUE_STATE_BYTES_MAX);
    reader r = {.p = b + len - 4, .end = b + len};
    if (get_u32(&r, "checksum") != cue_hash32(b, len - 4))
        return cue_err_set(err, CUE_ECORRUPT, "state record: checksum mismatch");
    r = (reader){.p = b + 3, .end = b + len - 4};
    if (decode_body(&r, ms, u, st, b[2], tr) != 0)
        return cue_err_set(err, CUE_ECORRUPT, "state record: bad %s", r.what);
    return 0;
}

int cue_codec_peek_indexed_due(const void *rec, size_t len, int64_t *out)
{
    const uint8_t *b = rec;
    if (len < 7 || b[0] != 'C' || b[1] != 'U' || b[2] < CUE_CODEC_VERSION_PLAIN ||
        b[2] > CUE_CODEC_VERSION)
        return CUE_ECORRUPT;
    reader r = {.p = b + 3, .end = b + len - 4};
    uint64_t n = get_varint(&r, "user id");
    if (!need(&r, n, "user id")) return CUE_ECORRUPT;
    r.p += n;
    get_zigzag(&r, "last offset");
    get_zigzag(&r, "last event time");
    *out = get_zigzag(&r, "indexed due time");
    return r.bad ? CUE_ECORRUPT : 0;
}

int cue_codec_decode(const void *rec, size_t len, const cue_machines *ms, cue_user *u,
                     cue_codec_stats *stats, cue_err *err)
{
    return decode(rec, len, ms, u, stats, NULL, err);
}

int cue_codec_decode_traced(const void *rec, size_t len, const cue_machines *ms, cue_user *u,
                            cue_codec_stats *stats, cue_migration_fn fn, void *ctx, cue_err *err)
{
    cue_mig_trace tr = {.fn = fn, .ctx = ctx};
    return decode(rec, len, ms, u, stats, &tr, err);
}

/* ---- JSON view --------------------------------------------------------- */

static void json_time(cue_buf *out, const char *key, int64_t ms)
{
    cue_buf_printf(out, ",\"%s\":", key);
    if (ms == INT64_MIN || ms == CUE_TIMER_NONE) {
        cue_buf_append_str(out, "null");
        return;
    }
    char t[CUE_TIME_TEXT_MAX];
    size_t n = cue_time_format_rfc3339(ms, t);
    cue_buf_append_json_str(out, t, n);
}

static void json_var(cue_buf *out, const cue_var *v)
{
    switch (v->type) {
    case CUE_VAL_BOOL: cue_buf_append_str(out, v->b ? "true" : "false"); break;
    case CUE_VAL_INT: cue_buf_append_i64(out, v->i); break;
    case CUE_VAL_DOUBLE: cue_buf_printf(out, "%.17g", v->d); break;
    case CUE_VAL_STRING: cue_buf_append_json_str(out, v->s, v->len); break;
    default: cue_buf_append_str(out, "null");
    }
}

static void json_instance(cue_buf *out, const cue_instance *in, const cue_machine *m)
{
    cue_buf_append_str(out, "{\"machine\":");
    cue_buf_append_json_str(out, m->name, strlen(m->name));
    cue_buf_printf(out, ",\"version\":%u,\"key\":", in->version);
    if (m->keyed)
        cue_buf_append_json_str(out, in->key, in->key_len);
    else
        cue_buf_append_str(out, "null");
    cue_buf_append_str(out, ",\"state\":");
    const char *st = m->states[in->state].name;
    cue_buf_append_json_str(out, st, strlen(st));
    cue_buf_printf(out, ",\"finished\":%s", in->finished ? "true" : "false");
    json_time(out, "started", in->started_ms);
    json_time(out, "updated", in->updated_ms);
    cue_buf_append_str(out, ",\"counters\":{");
    for (uint16_t i = 0, first = 1; i < m->n_counters; i++) {
        if (in->counters[i] == 0) continue;
        cue_buf_printf(out, "%s\"%s\":%lld", first ? "" : ",", m->counters[i].name,
                       (long long)in->counters[i]);
        first = 0;
    }
    cue_buf_append_str(out, "},\"vars\":{");
    for (uint16_t i = 0, first = 1; i < m->n_vars; i++) {
        if (in->vars[i].type == CUE_VAL_ABSENT) continue;
        cue_buf_printf(out, "%s\"%s\":", first ? "" : ",", m->vars[i].name);
        json_var(out, &in->vars[i]);
        first = 0;
    }
    cue_buf_append_str(out, "},\"timers\":{");
    for (uint16_t i = 0, first = 1; i < m->n_timers; i++) {
        if (in->timers[i] == CUE_TIMER_NONE) continue;
        char t[CUE_TIME_TEXT_MAX];
        size_t n = cue_time_format_rfc3339(in->timers[i], t);
        cue_buf_printf(out, "%s\"%s\":", first ? "" : ",", m->timers[i].name);
        cue_buf_append_json_str(out, t, n);
        first = 0;
    }
    cue_buf_append_str(out, "},\"emitted_once\":[");
    for (uint16_t t = 0, first = 1; t < m->n_triggers; t++) {
        if (!(in->once & (1u << t))) continue;
        cue_buf_printf(out, "%s\"%s\"", first ? "" : ",", m->triggers[t].name);
        first = 0;
    }
    cue_buf_append_str(out, "]}");
}

/* A trigger's name from its hashes, through the current machines. */
static void json_names(cue_buf *out, const cue_machines *ms, uint32_t machine, uint32_t trigger)
{
    int mi = cue_machines_find_hash(ms, machine);
    const cue_machine *m = mi >= 0 ? cue_machines_get(ms, (size_t)mi) : NULL;
    int t = m ? find_name(m->triggers, m->n_triggers, trigger) : -1;
    cue_buf_append_str(out, "\"machine\":");
    if (m)
        cue_buf_append_json_str(out, m->name, strlen(m->name));
    else
        cue_buf_append_str(out, "null");
    cue_buf_append_str(out, ",\"trigger\":");
    if (t >= 0)
        cue_buf_append_json_str(out, m->triggers[t].name, strlen(m->triggers[t].name));
    else
        cue_buf_append_str(out, "null");
}

static void json_channel(cue_buf *out, uint8_t ch)
{
    cue_buf_append_str(out, ",\"channel\":");
    if (ch < CUE_CHANNELS_MAX)
        cue_buf_printf(out, "\"%s\"", cue_channel_names[ch]);
    else
        cue_buf_append_str(out, "null");
}

static void json_policy(cue_buf *out, const cue_user_policy *p, const cue_machines *ms)
{
    static const char *const consent[] = {"default", "granted", "denied"};
    cue_buf_append_str(out, ",\"policy\":{\"consent\":{");
    for (int c = 0; c < CUE_CHANNELS_MAX; c++)
        cue_buf_printf(out, "%s\"%s\":\"%s\"", c ? "," : "", cue_channel_names[c],
                       consent[p->consent[c] <= CUE_CONSENT_DENIED ? p->consent[c] : 0]);
    cue_buf_append_str(out, "},\"muted\":[");
    for (int c = 0, first = 1; c < CUE_CHANNELS_MAX; c++)
        if (p->muted & (1u << c)) {
            cue_buf_printf(out, "%s\"%s\"", first ? "" : ",", cue_channel_names[c]);
            first = 0;
        }
    cue_buf_append_str(out, "],\"sent\":[");
    for (size_t i = 0; i < p->n_sent; i++) {
        cue_buf_append_str(out, i ? ",{" : "{");
        json_names(out, ms, p->sent[i].machine, p->sent[i].trigger);
        json_time(out, "time", p->sent[i].ms);
        json_channel(out, p->sent[i].channel);
        cue_buf_append_char(out, '}');
    }
    cue_buf_append_str(out, "],\"deferred\":[");
    for (size_t i = 0; i < p->n_deferred; i++) {
        const cue_deferred *d = &p->deferred[i];
        cue_buf_printf(out, "%s{\"trigger_id\":\"%s\",", i ? "," : "", d->id);
        json_names(out, ms, d->machine, d->trigger);
        json_time(out, "until", d->due_ms);
        cue_buf_printf(out, ",\"reason\":\"%s\"%s}", cue_why_name((cue_why)d->why),
                       d->late ? ",\"late\":true" : "");
    }
    cue_buf_append_str(out, "],\"decisions\":[");
    for (size_t i = 0; i < p->n_decided; i++) {
        const cue_decided *d = &p->decided[i];
        cue_buf_printf(out, "%s{\"trigger_id\":\"%s\",", i ? "," : "", d->id);
        json_names(out, ms, d->machine, d->trigger);
        cue_buf_printf(out, ",\"outcome\":\"%s\",\"reason\":\"%s\"",
                       cue_outcome_name((cue_outcome)d->outcome), cue_why_name((cue_why)d->why));
        json_channel(out, d->channel);
        json_time(out, "decided", d->ms);
        json_time(out, "until", d->until);
        cue_buf_append_char(out, '}');
    }
    cue_buf_append_str(out, "]}");
}

int cue_user_to_json(const cue_user *u, const cue_machines *ms, cue_buf *out)
{
    cue_buf_append_str(out, "{\"user_id\":");
    cue_buf_append_json_str(out, u->id, u->id_len);
    cue_buf_append_str(out, ",\"attributes\":{");
    for (int a = 0, first = 1; a < CUE_ATTR_COUNT; a++) {
        if (u->attr_len[a] == 0) continue;
        cue_buf_printf(out, "%s\"%s\":", first ? "" : ",", cue_attr_names[a]);
        cue_buf_append_json_str(out, u->attrs[a], u->attr_len[a]);
        first = 0;
    }
    cue_buf_append_str(out, "},\"last_offset\":");
    if (u->last_offset == CUE_OFFSET_NONE)
        cue_buf_append_str(out, "null");
    else
        cue_buf_append_i64(out, u->last_offset);
    size_t more = cue_codec_more_offsets_len(u);
    if (more) {
        /* Only with several input topics: the next topics' offsets, in order. */
        cue_buf_append_str(out, ",\"more_offsets\":[");
        for (size_t i = 0; i < more; i++) {
            if (i) cue_buf_append_char(out, ',');
            if (u->more_offsets[i] == CUE_OFFSET_NONE)
                cue_buf_append_str(out, "null");
            else
                cue_buf_append_i64(out, u->more_offsets[i]);
        }
        cue_buf_append_char(out, ']');
    }
    json_time(out, "last_event", u->last_event_ms);
    json_time(out, "next_timer_check", u->indexed_due);
    cue_buf_append_str(out, ",\"instances\":[");
    for (size_t i = 0; i < u->n_instances; i++) {
        if (i) cue_buf_append_char(out, ',');
        json_instance(out, &u->inst[i], cue_machines_get(ms, u->inst[i].machine));
    }
    cue_buf_append_str(out, "]");
    if (!cue_user_policy_empty(&u->policy)) json_policy(out, &u->policy, ms);
    return cue_buf_append_str(out, "}");
}
