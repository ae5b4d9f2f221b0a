/* Journeys that change under stored state: the pass at a partition's opening
 * and the plan before a deploy. */
#include "cuepoint/migrate.h"

#include "cuepoint/timefmt.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Users rewritten between two batch commits of the pass: bounds the batch
 * (a state record is at most a few kilobytes in practice). */
#define PASS_BATCH_USERS 1024

bool cue_migrate_needed(const cue_machines *ms)
{
    /* With machines set aside (a run of one journey), a user written back
     * would lose the instances of the others. */
    if (cue_machines_set_aside(ms) > 0) return false;
    for (size_t i = 0; i < cue_machines_count(ms); i++)
        if (cue_machines_get(ms, i)->migrates) return true;
    return false;
}

/* Whether decoding changed the user (and the record must be written back). */
static bool changed(const cue_codec_stats *us)
{
    return us->migrated || us->stranded || us->dropped_instances || us->dropped_names ||
           us->timers_dropped;
}

/* ---- the pass ----------------------------------------------------------- */

typedef struct pass {
    cue_store *s;
    const cue_machines *ms;
    cue_user *u; /* owned scratch */
    cue_buf enc; /* owned */
    cue_codec_stats *st;
    uint64_t rewritten;
    size_t pending;
    int rc;
    cue_err *err;
} pass;

static int pass_user(uint32_t partition, const char *uid, size_t len, const void *val, size_t vlen,
                     void *ctx)
{
    pass *p = ctx;
    cue_codec_stats us = {0};
    if (cue_codec_decode(val, vlen, p->ms, p->u, &us, NULL) != 0 || !changed(&us)) return 0;
    cue_codec_stats_add(p->st, &us);
    /* The index holds a lower bound of each user's earliest timer; a rule
     * that moved a timer earlier needs an entry that early. Entries left
     * behind are skipped when they come up (the record's header says). */
    int64_t next = cue_user_next_due(p->u);
    if (next != CUE_TIMER_NONE &&
        (p->u->indexed_due == CUE_TIMER_NONE || next < p->u->indexed_due)) {
        cue_store_batch_timer_put(p->s, partition, next, uid, len);
        p->u->indexed_due = next;
    }
    if (cue_codec_encode(p->u, p->ms, &p->enc) != 0) {
        p->rc = cue_err_set(p->err, CUE_ENOMEM, "out of memory migrating a user");
        return 1;
    }
    cue_store_batch_user_put(p->s, partition, uid, len, p->enc.data, p->enc.len);
    p->rewritten++;
    if (++p->pending < PASS_BATCH_USERS) return 0;
    p->pending = 0;
    p->rc = cue_store_batch_commit(p->s, false, p->err);
    return p->rc != 0;
}

int cue_migrate_partition(cue_store *s, uint32_t partition, const cue_machines *ms,
                          cue_codec_stats *st, uint64_t *rewritten, cue_err *err)
{
    pass p = {.s = s, .ms = ms, .st = st, .err = err};
    p.u = malloc(sizeof *p.u);
    if (p.u == NULL || cue_buf_init(&p.enc, 4096) != 0) {
        free(p.u);
        return cue_err_set(err, CUE_ENOMEM, "out of memory migrating partition %u", partition);
    }
    int rc = cue_store_users_scan(s, partition, pass_user, &p);
    if (rc < 0)
        rc = cue_err_set(err, rc, "partition %u: cannot read the users to migrate", partition);
    else
        rc = p.rc;
    if (rc == 0) rc = cue_store_batch_commit(s, false, err);
    *rewritten += p.rewritten;
    cue_buf_deinit(&p.enc);
    free(p.u);
    return rc;
}

/* ---- the plan ----------------------------------------------------------- */

typedef struct state_row {
    uint16_t machine;
    uint32_t version, from;
    const char *name; /* NULL: known by hash only */
    uint8_t outcome;
    int16_t to;
    uint64_t n;
} state_row;

typedef struct timer_row {
    uint16_t machine;
    uint32_t from;
    const char *name;
    uint8_t fate;
    int16_t to;
    int64_t shift_ms;
    uint64_t n, at_once;
} timer_row;

typedef struct fire_row {
    uint16_t machine;
    int16_t state, timer;
    uint64_t n;
} fire_row;

typedef struct gone_row {
    uint32_t machine;
    uint64_t n;
} gone_row;

struct cue_plan {
    const cue_machines *ms, *prev;        /* borrowed */
    cue_user *u;                          /* owned scratch */
    cue_buf states, timers, fires, gones; /* owned arrays of rows */
    cue_codec_stats totals;
    uint64_t by_outcome[CUE_MIG_OUTCOMES];
    uint64_t users, users_migrated, corrupt, at_once;
    cue_store *s;
    uint32_t partition;
    bool have_partition, this_user;
    int64_t stream_ms; /* the partition's: timers due by it fire at once */
};

int cue_plan_new(cue_plan **out, const cue_machines *ms, const cue_machines *previous, cue_err *err)
{
    cue_plan *p = calloc(1, sizeof *p);
    if (p) p->u = malloc(sizeof *p->u);
    if (p == NULL || p->u == NULL || cue_buf_init(&p->states, 1024) ||
        cue_buf_init(&p->timers, 1024) || cue_buf_init(&p->fires, 256) ||
        cue_buf_init(&p->gones, 64)) {
        cue_plan_free(p);
        return cue_err_set(err, CUE_ENOMEM, "out of memory for a migration plan");
    }
    p->ms = ms;
    p->prev = previous;
    *out = p;
    return 0;
}

void cue_plan_free(cue_plan *p)
{
    if (p == NULL) return;
    cue_buf_deinit(&p->states);
    cue_buf_deinit(&p->timers);
    cue_buf_deinit(&p->fires);
    cue_buf_deinit(&p->gones);
    free(p->u);
    free(p);
}

/* The row equal to `key` in `b` (compared over `cmp_len` bytes; rows are
 * zeroed before they are filled, padding included), added if missing. */
static void *row(cue_buf *b, const void *key, size_t size, size_t cmp_len)
{
    for (size_t off = 0; off + size <= b->len; off += size)
        if (memcmp(b->data + off, key, cmp_len) == 0) return b->data + off;
    if (cue_buf_append(b, key, size) != 0) return NULL;
    return b->data + b->len - size;
}

/* An old name the new files do not know, from the previous ones. */
static const char *previous_name(const cue_plan *p, uint32_t machine, uint32_t hash, bool state)
{
    int mi = p->prev ? cue_machines_find_hash(p->prev, machine) : -1;
    if (mi < 0) return NULL;
    const cue_machine *m = cue_machines_get(p->prev, (size_t)mi);
    for (uint16_t i = 0; state && i < m->n_states; i++)
        if (m->states[i].hash == hash) return m->states[i].name;
    for (uint16_t i = 0; !state && i < m->n_timers; i++)
        if (m->timers[i].hash == hash) return m->timers[i].name;
    return NULL;
}

static void note_timers(cue_plan *p, const cue_migration *mg)
{
    for (uint8_t k = 0; k < mg->n_timers; k++) {
        timer_row key;
        memset(&key, 0, sizeof key);
        key.machine = mg->machine;
        key.from = mg->timers[k].from;
        key.fate = mg->timers[k].fate;
        key.to = mg->timers[k].to;
        key.shift_ms = key.to >= 0 ? mg->timers[k].due - mg->timers[k].due_was : 0;
        key.name = mg->timers[k].from_name ? mg->timers[k].from_name
                                           : previous_name(p, mg->machine_hash, key.from, false);
        timer_row *r = row(&p->timers, &key, sizeof key, offsetof(timer_row, n));
        if (r == NULL) continue;
        r->n++;
        if (key.to < 0 || mg->timers[k].due > p->stream_ms) continue;
        /* Due by the partition's time already: it fires as soon as the
         * partition's time next moves. */
        r->at_once++;
        p->at_once++;
        fire_row fk;
        memset(&fk, 0, sizeof fk);
        fk.machine = mg->machine;
        fk.state = mg->to_state;
        fk.timer = key.to;
        fire_row *f = row(&p->fires, &fk, sizeof fk, offsetof(fire_row, n));
        if (f) f->n++;
    }
}

static void on_migration(const cue_migration *mg, void *ctx)
{
    cue_plan *p = ctx;
    p->this_user = true;
    p->by_outcome[mg->outcome]++;
    if (mg->outcome == CUE_MIG_GONE) {
        gone_row key = {.machine = mg->machine_hash};
        gone_row *g = row(&p->gones, &key, sizeof key, offsetof(gone_row, n));
        if (g) g->n++;
        return;
    }
    state_row key;
    memset(&key, 0, sizeof key);
    key.machine = mg->machine;
    key.version = mg->from_version;
    key.from = mg->from_state;
    key.outcome = mg->outcome;
    key.to = mg->to_state;
    key.name = mg->from_name ? mg->from_name : previous_name(p, mg->machine_hash, key.from, true);
    state_row *r = row(&p->states, &key, sizeof key, offsetof(state_row, n));
    if (r) r->n++;
    note_timers(p, mg);
}

static int cmp_state_rows(const void *a, const void *b)
{
    const state_row *x = a, *y = b;
    if (x->machine != y->machine) return x->machine < y->machine ? -1 : 1;
    if (x->version != y->version) return x->version < y->version ? -1 : 1;
    int c = strcmp(x->name ? x->name : "~", y->name ? y->name : "~");
    if (c) return c;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    if (x->outcome != y->outcome) return x->outcome < y->outcome ? -1 : 1;
    return (x->to > y->to) - (x->to < y->to);
}

static int cmp_timer_rows(const void *a, const void *b)
{
    const timer_row *x = a, *y = b;
    if (x->machine != y->machine) return x->machine < y->machine ? -1 : 1;
    int c = strcmp(x->name ? x->name : "~", y->name ? y->name : "~");
    if (c) return c;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    if (x->fate != y->fate) return x->fate < y->fate ? -1 : 1;
    if (x->to != y->to) return x->to < y->to ? -1 : 1;
    return (x->shift_ms > y->shift_ms) - (x->shift_ms < y->shift_ms);
}

static int plan_user(uint32_t partition, const char *uid, size_t len, const void *val, size_t vlen,
                     void *ctx)
{
    cue_plan *p = ctx;
    if (!p->have_partition || partition != p->partition) {
        cue_store_meta meta = {.stream_time_ms = INT64_MIN};
        if (cue_store_meta_get(p->s, partition, &meta, NULL) != 0) meta.stream_time_ms = INT64_MIN;
        p->partition = partition;
        p->have_partition = true;
        p->stream_ms = meta.stream_time_ms;
    }
    p->users++;
    p->this_user = false;
    if (cue_codec_decode_traced(val, vlen, p->ms, p->u, &p->totals, on_migration, p, NULL) != 0)
        p->corrupt++;
    p->users_migrated += p->this_user;
    return 0;
}

int cue_plan_scan(cue_plan *p, cue_store *s, cue_err *err)
{
    p->s = s;
    int rc = cue_store_users_scan(s, -1, plan_user, p);
    if (rc < 0) return cue_err_set(err, rc, "cannot read the stored users");
    /* Rows come in the store's key order; sorted, the plan reads the same
     * whatever the order users were stored in. */
    qsort(p->states.data, p->states.len / sizeof(state_row), sizeof(state_row), cmp_state_rows);
    qsort(p->timers.data, p->timers.len / sizeof(timer_row), sizeof(timer_row), cmp_timer_rows);
    return 0;
}

const cue_codec_stats *cue_plan_totals(const cue_plan *p)
{
    return &p->totals;
}

uint64_t cue_plan_stranded(const cue_plan *p)
{
    return p->totals.stranded;
}

/* ---- the plan as text --------------------------------------------------- */

static void write_name(cue_buf *out, const char *name, uint32_t hash)
{
    if (name)
        cue_buf_printf(out, "%s", name);
    else
        cue_buf_printf(out, "#%08x", hash);
}

static void write_state_row(cue_buf *out, const cue_machine *m, const state_row *r)
{
    cue_buf_printf(out, "  v%u state ", r->version);
    write_name(out, r->name, r->from);
    cue_buf_printf(out, ": %llu ", (unsigned long long)r->n);
    const char *to = r->to >= 0 ? m->states[r->to].name : "";
    switch (r->outcome) {
    case CUE_MIG_KEPT: cue_buf_printf(out, "kept in %s", to); break;
    case CUE_MIG_MOVED: cue_buf_printf(out, "moved to %s", to); break;
    case CUE_MIG_FINISHED: cue_buf_printf(out, "finished (shown in %s)", to); break;
    case CUE_MIG_RESTARTED:
        cue_buf_append_str(out, "restarted: dropped, their start event begins afresh");
        break;
    case CUE_MIG_DONE: cue_buf_append_str(out, "already finished: stay finished"); break;
    default:
        cue_buf_printf(out,
                       "STRANDED: version %u has no such state and migrate.states no rule for it: "
                       "they would be finished",
                       m->version);
    }
    cue_buf_append_char(out, '\n');
}

static void write_timer_row(cue_buf *out, const cue_machine *m, const timer_row *r)
{
    char d[32];
    cue_buf_append_str(out, "  timer ");
    write_name(out, r->name, r->from);
    cue_buf_printf(out, ": %llu ", (unsigned long long)r->n);
    switch (r->fate) {
    case CUE_MIGT_KEPT: cue_buf_append_str(out, "kept"); break;
    case CUE_MIGT_MOVED:
        cue_buf_printf(out, "moved to %s", m->timers[r->to].name);
        if (r->shift_ms) {
            cue_duration_format(r->shift_ms < 0 ? -r->shift_ms : r->shift_ms, d, sizeof d);
            cue_buf_printf(out, ", %s %s", d, r->shift_ms < 0 ? "earlier" : "later");
        }
        break;
    case CUE_MIGT_DROPPED: cue_buf_append_str(out, "dropped (rule)"); break;
    case CUE_MIGT_GONE:
        cue_buf_printf(out, "dropped: version %u has no timer of that name and no rule for it",
                       m->version);
        break;
    default: cue_buf_append_str(out, "dropped: their instance finishes"); break;
    }
    if (r->at_once) cue_buf_printf(out, " (%llu due at once)", (unsigned long long)r->at_once);
    cue_buf_append_char(out, '\n');
}

/* What a timer firing in `state` would do: the emits of its first
 * transition on that timer (guards aside: "could"). */
static void write_fire_row(cue_buf *out, const cue_machines *ms, const cue_machine *m,
                           const fire_row *f)
{
    cue_buf_printf(out, "  at once: timer %s in state %s: %llu", m->timers[f->timer].name,
                   m->states[f->state].name, (unsigned long long)f->n);
    const cue_state *st = &m->states[f->state];
    const cue_transition *ts = cue_machines_transitions(ms) + st->first_transition;
    for (uint16_t k = 0; k < st->n_transitions; k++) {
        if (ts[k].on != CUE_ON_TIMER || ts[k].timer != (uint8_t)f->timer) continue;
        const cue_action *acts = cue_machines_actions(ms) + ts[k].first_action;
        int emits = 0;
        for (uint16_t a = 0; a < ts[k].n_actions; a++)
            if (acts[a].kind == CUE_ACT_EMIT)
                cue_buf_printf(out, "%s%s", emits++ ? ", " : ", could emit ",
                               m->triggers[acts[a].target].name);
        if (ts[k].go >= 0) cue_buf_printf(out, ", then %s", m->states[ts[k].go].name);
        break;
    }
    cue_buf_append_char(out, '\n');
}

static void write_machine(const cue_plan *p, size_t mi, cue_buf *out)
{
    const cue_machine *m = cue_machines_get(p->ms, mi);
    const state_row *sr = (const state_row *)p->states.data;
    const timer_row *tr = (const timer_row *)p->timers.data;
    const fire_row *fr = (const fire_row *)p->fires.data;
    size_t ns = p->states.len / sizeof *sr, nt = p->timers.len / sizeof *tr,
           nf = p->fires.len / sizeof *fr;
    uint64_t n = 0;
    for (size_t i = 0; i < ns; i++)
        n += sr[i].machine == mi ? sr[i].n : 0;
    cue_buf_printf(out, "journey %s (version %u): ", m->name, m->version);
    if (n == 0) {
        cue_buf_append_str(out, "nothing stored under another version\n");
        return;
    }
    cue_buf_printf(out, "%llu instance(s) stored under another version\n", (unsigned long long)n);
    for (size_t i = 0; i < ns; i++)
        if (sr[i].machine == mi) write_state_row(out, m, &sr[i]);
    for (size_t i = 0; i < nt; i++)
        if (tr[i].machine == mi) write_timer_row(out, m, &tr[i]);
    for (size_t i = 0; i < nf; i++)
        if (fr[i].machine == mi) write_fire_row(out, p->ms, m, &fr[i]);
}

void cue_plan_write(const cue_plan *p, cue_buf *out)
{
    for (size_t mi = 0; mi < cue_machines_count(p->ms); mi++)
        write_machine(p, mi, out);
    const gone_row *g = (const gone_row *)p->gones.data;
    for (size_t i = 0; i < p->gones.len / sizeof *g; i++)
        cue_buf_printf(out,
                       "journey #%08x (not among the files checked): %llu instance(s), dropped if "
                       "it is not loaded\n",
                       g[i].machine, (unsigned long long)g[i].n);
    const cue_codec_stats *t = &p->totals;
    const uint64_t *o = p->by_outcome;
    cue_buf_printf(out,
                   "plan: %llu user(s) read, %llu to migrate: %llu kept, %llu moved, %llu "
                   "finished, %llu restarted, %llu stranded, %llu already finished, %llu of "
                   "journeys not checked\n",
                   (unsigned long long)p->users, (unsigned long long)p->users_migrated,
                   (unsigned long long)o[CUE_MIG_KEPT], (unsigned long long)o[CUE_MIG_MOVED],
                   (unsigned long long)o[CUE_MIG_FINISHED],
                   (unsigned long long)o[CUE_MIG_RESTARTED],
                   (unsigned long long)o[CUE_MIG_STRANDED], (unsigned long long)o[CUE_MIG_DONE],
                   (unsigned long long)o[CUE_MIG_GONE]);
    /* The counters the run's summary shows after it migrates this store. */
    cue_buf_printf(out,
                   "migration: %llu instances migrated, %llu moved, %llu finished, %llu stranded, "
                   "%llu dropped; timers: %llu moved, %llu dropped; %llu due at once",
                   (unsigned long long)t->migrated, (unsigned long long)t->moved,
                   (unsigned long long)t->finished, (unsigned long long)t->stranded,
                   (unsigned long long)t->dropped_instances, (unsigned long long)t->timers_moved,
                   (unsigned long long)t->timers_dropped, (unsigned long long)p->at_once);
    if (p->corrupt)
        cue_buf_printf(out, "; %llu stored state(s) did not decode",
                       (unsigned long long)p->corrupt);
    cue_buf_append_char(out, '\n');
}
