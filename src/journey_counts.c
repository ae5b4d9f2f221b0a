/* Live journey counts (journey_counts.h). One flat block per counts object:
 * for machine m with n states, n users-per-state slots, and (n + 1) * n
 * slots per edge table (row 0 is the start, row k + 1 state k). The layout
 * (offsets) is the same for every object of one machine set, which is what
 * lets _add sum two of them slot by slot. */
#include "cuepoint/journey_counts.h"

#include <stdlib.h>
#include <string.h>

/* Journey durations in seconds: from a minute to a quarter, on the scale
 * journeys run at (onboarding in hours or days, deadlines in weeks). */
static const double duration_bounds[] = {60,         600,        3600,      6 * 3600,
                                         86400,      172800,     3 * 86400, 7 * 86400,
                                         14 * 86400, 30 * 86400, 90 * 86400};

typedef struct counts_part {
    int64_t *users;           /* per (machine, state) */
    uint64_t *transitions;    /* per (machine, from + 1, to) */
    uint64_t *triggers;       /* same shape */
    cue_histogram *durations; /* per machine */
} counts_part;

struct cue_journey_counts {
    const cue_machines *ms; /* borrowed */
    size_t n_machines;
    size_t *user_off, *edge_off; /* per machine: first slot */
    size_t n_users, n_edges;
    counts_part now, committed;
};

static int part_alloc(counts_part *p, size_t n_users, size_t n_edges, size_t n_machines)
{
    p->users = calloc(n_users ? n_users : 1, sizeof *p->users);
    p->transitions = calloc(n_edges ? n_edges : 1, sizeof *p->transitions);
    p->triggers = calloc(n_edges ? n_edges : 1, sizeof *p->triggers);
    p->durations = calloc(n_machines ? n_machines : 1, sizeof *p->durations);
    if (!p->users || !p->transitions || !p->triggers || !p->durations) return CUE_ENOMEM;
    for (size_t m = 0; m < n_machines; m++)
        cue_histogram_init(&p->durations[m], duration_bounds,
                           sizeof duration_bounds / sizeof *duration_bounds);
    return 0;
}

static void part_free(counts_part *p)
{
    free(p->users);
    free(p->transitions);
    free(p->triggers);
    free(p->durations);
}

static void part_copy(counts_part *to, const counts_part *from, const cue_journey_counts *c)
{
    memcpy(to->users, from->users, c->n_users * sizeof *to->users);
    memcpy(to->transitions, from->transitions, c->n_edges * sizeof *to->transitions);
    memcpy(to->triggers, from->triggers, c->n_edges * sizeof *to->triggers);
    memcpy(to->durations, from->durations, c->n_machines * sizeof *to->durations);
}

int cue_journey_counts_new(cue_journey_counts **out, const cue_machines *ms, cue_err *err)
{
    cue_journey_counts *c = calloc(1, sizeof *c);
    if (c == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory for journey counts");
    c->ms = ms;
    c->n_machines = cue_machines_count(ms);
    c->user_off = calloc(c->n_machines + 1, sizeof *c->user_off);
    c->edge_off = calloc(c->n_machines + 1, sizeof *c->edge_off);
    int rc = c->user_off && c->edge_off ? 0 : CUE_ENOMEM;
    for (size_t m = 0; rc == 0 && m < c->n_machines; m++) {
        size_t n = cue_machines_get(ms, m)->n_states;
        c->user_off[m + 1] = c->user_off[m] + n;
        c->edge_off[m + 1] = c->edge_off[m] + (n + 1) * n;
    }
    if (rc == 0) {
        c->n_users = c->user_off[c->n_machines];
        c->n_edges = c->edge_off[c->n_machines];
        rc = part_alloc(&c->now, c->n_users, c->n_edges, c->n_machines);
    }
    if (rc == 0) rc = part_alloc(&c->committed, c->n_users, c->n_edges, c->n_machines);
    if (rc != 0) {
        cue_journey_counts_free(c);
        return cue_err_set(err, CUE_ENOMEM, "out of memory for journey counts");
    }
    *out = c;
    return 0;
}

void cue_journey_counts_free(cue_journey_counts *c)
{
    if (c == NULL) return;
    part_free(&c->now);
    part_free(&c->committed);
    free(c->user_off);
    free(c->edge_off);
    free(c);
}

static void user_add(cue_journey_counts *c, const cue_user *u, int64_t sign)
{
    for (size_t i = 0; i < u->n_instances; i++) {
        const cue_instance *in = &u->inst[i];
        /* Decoding keeps only instances of machines in the set, in range. */
        CUE_ASSERT(in->machine < c->n_machines);
        CUE_ASSERT(c->user_off[in->machine] + in->state < c->user_off[in->machine + 1]);
        c->now.users[c->user_off[in->machine] + in->state] += sign;
    }
}

void cue_journey_counts_leave(cue_journey_counts *c, const cue_user *u)
{
    user_add(c, u, -1);
}

void cue_journey_counts_enter(cue_journey_counts *c, const cue_user *u)
{
    user_add(c, u, 1);
}

static size_t edge_slot(const cue_journey_counts *c, uint16_t machine, int from, uint16_t to)
{
    size_t n = c->user_off[machine + 1] - c->user_off[machine];
    CUE_ASSERT(from >= -1 && from < (int)n && to < n);
    return c->edge_off[machine] + (size_t)(from + 1) * n + to;
}

void cue_journey_counts_taken(const cue_take *tk, void *ctx)
{
    cue_journey_counts *c = ctx;
    size_t k = edge_slot(c, tk->machine, tk->from, tk->to);
    c->now.transitions[k]++;
    c->now.triggers[k] += tk->triggers;
    if (tk->final && tk->started_ms <= tk->at_ms)
        cue_histogram_observe(&c->now.durations[tk->machine],
                              (double)(tk->at_ms - tk->started_ms) / 1000.0);
}

typedef struct recount_ctx {
    cue_journey_counts *c;
    cue_user *u;
} recount_ctx;

static int recount_one(uint32_t partition, const char *uid, size_t uid_len, const void *val,
                       size_t val_len, void *ctx)
{
    recount_ctx *rc = ctx;
    /* A record that does not decode is left out: the task leaves such a
     * user as it is (its events are dead letters), so it never enters. */
    if (cue_codec_decode(val, val_len, rc->c->ms, rc->u, NULL, NULL) == 0)
        user_add(rc->c, rc->u, 1);
    return 0;
}

int cue_journey_counts_recount(cue_journey_counts *c, cue_store *s, uint32_t partition,
                               cue_user *scratch, cue_err *err)
{
    memset(c->now.users, 0, c->n_users * sizeof *c->now.users);
    recount_ctx rc = {.c = c, .u = scratch};
    int r = cue_store_users_scan(s, partition, recount_one, &rc);
    if (r < 0)
        return cue_err_set(err, r, "journey counts: cannot read partition %u's users",
                           (unsigned)partition);
    cue_journey_counts_mark(c);
    return 0;
}

void cue_journey_counts_mark(cue_journey_counts *c)
{
    part_copy(&c->committed, &c->now, c);
}

void cue_journey_counts_rollback(cue_journey_counts *c)
{
    part_copy(&c->now, &c->committed, c);
}

static void hist_add(cue_histogram *sum, const cue_histogram *h)
{
    for (size_t i = 0; i <= h->n_bounds; i++)
        sum->counts[i] += h->counts[i];
    sum->sum += h->sum;
    sum->count += h->count;
}

void cue_journey_counts_add(cue_journey_counts *sum, const cue_journey_counts *c, bool flows_only)
{
    CUE_ASSERT(sum->ms == c->ms);
    for (size_t i = 0; !flows_only && i < c->n_users; i++)
        sum->now.users[i] += c->now.users[i];
    for (size_t i = 0; i < c->n_edges; i++) {
        sum->now.transitions[i] += c->now.transitions[i];
        sum->now.triggers[i] += c->now.triggers[i];
    }
    for (size_t m = 0; m < c->n_machines; m++)
        hist_add(&sum->now.durations[m], &c->now.durations[m]);
}

void cue_journey_counts_clear(cue_journey_counts *c)
{
    memset(c->now.users, 0, c->n_users * sizeof *c->now.users);
    memset(c->now.transitions, 0, c->n_edges * sizeof *c->now.transitions);
    memset(c->now.triggers, 0, c->n_edges * sizeof *c->now.triggers);
    for (size_t m = 0; m < c->n_machines; m++)
        cue_histogram_init(&c->now.durations[m], duration_bounds,
                           sizeof duration_bounds / sizeof *duration_bounds);
}

int64_t cue_journey_counts_users(const cue_journey_counts *c, uint16_t machine, uint16_t state)
{
    CUE_ASSERT(machine < c->n_machines);
    CUE_ASSERT(c->user_off[machine] + state < c->user_off[machine + 1]);
    return c->now.users[c->user_off[machine] + state];
}

uint64_t cue_journey_counts_transitions(const cue_journey_counts *c, uint16_t machine, int from,
                                        uint16_t to)
{
    return c->now.transitions[edge_slot(c, machine, from, to)];
}

uint64_t cue_journey_counts_triggers(const cue_journey_counts *c, uint16_t machine, int from,
                                     uint16_t to)
{
    return c->now.triggers[edge_slot(c, machine, from, to)];
}

const cue_histogram *cue_journey_counts_durations(const cue_journey_counts *c, uint16_t machine)
{
    CUE_ASSERT(machine < c->n_machines);
    return &c->now.durations[machine];
}

/* ---- rendering ----------------------------------------------------------- */

/* Marks the edges machine `m` declares: its start, and each transition of
 * each state (to itself when it does not go anywhere). `mark` has room for
 * (n + 1) * n flags. */
static void declared_edges(const cue_machines *ms, const cue_machine *m, bool *mark)
{
    size_t n = m->n_states;
    memset(mark, 0, (n + 1) * n);
    mark[m->start.go >= 0 ? (size_t)m->start.go : m->initial] = true;
    const cue_transition *ts = cue_machines_transitions(ms);
    for (size_t s = 0; s < n; s++) {
        const cue_state *st = &m->states[s];
        for (uint16_t k = 0; k < st->n_transitions; k++) {
            int16_t go = ts[st->first_transition + k].go;
            mark[(s + 1) * n + (go >= 0 ? (size_t)go : s)] = true;
        }
    }
}

static void label_edge(cue_buf *labels, const cue_machine *m, int from, size_t to)
{
    cue_buf_reset(labels);
    cue_prom_label(labels, "machine", m->name, strlen(m->name));
    const char *f = from < 0 ? "(start)" : m->states[from].name;
    cue_prom_label(labels, "from", f, strlen(f));
    cue_prom_label(labels, "to", m->states[to].name, strlen(m->states[to].name));
}

/* One edge family: `v` is transitions or triggers. */
static void prom_edges(const cue_journey_counts *c, cue_buf *b, cue_buf *labels, const char *name,
                       const uint64_t *v)
{
    bool mark[(CUE_MACHINE_STATES_MAX + 1) * CUE_MACHINE_STATES_MAX];
    for (size_t mi = 0; mi < c->n_machines; mi++) {
        const cue_machine *m = cue_machines_get(c->ms, mi);
        size_t n = m->n_states;
        declared_edges(c->ms, m, mark);
        for (size_t k = 0; k < (n + 1) * n; k++) {
            uint64_t x = v[c->edge_off[mi] + k];
            if (!mark[k] && x == 0) continue;
            label_edge(labels, m, (int)(k / n) - 1, k % n);
            cue_prom_sample(b, name, labels->data, (double)x);
        }
    }
}

int cue_journey_counts_prometheus(const cue_journey_counts *c, cue_buf *b, cue_buf *labels)
{
    cue_prom_family(b, "cuepoint_journey_users", "gauge",
                    "Journey instances in each state now, over this instance's partitions (one "
                    "per user for unkeyed journeys; final states hold finished journeys).");
    for (size_t mi = 0; mi < c->n_machines; mi++) {
        const cue_machine *m = cue_machines_get(c->ms, mi);
        for (size_t s = 0; s < m->n_states; s++) {
            cue_buf_reset(labels);
            cue_prom_label(labels, "machine", m->name, strlen(m->name));
            cue_prom_label(labels, "state", m->states[s].name, strlen(m->states[s].name));
            cue_prom_sample(b, "cuepoint_journey_users", labels->data,
                            (double)c->now.users[c->user_off[mi] + s]);
        }
    }
    cue_prom_family(b, "cuepoint_journey_transitions_total", "counter",
                    "Transitions taken, by journey and edge (from \"(start)\": journeys started).");
    prom_edges(c, b, labels, "cuepoint_journey_transitions_total", c->now.transitions);
    cue_prom_family(b, "cuepoint_journey_edge_triggers_total", "counter",
                    "Triggers made by the engine, by journey and the edge that made them "
                    "(before the policy stage).");
    prom_edges(c, b, labels, "cuepoint_journey_edge_triggers_total", c->now.triggers);
    cue_prom_family(b, "cuepoint_journey_duration_seconds", "histogram",
                    "Event time from a journey's start to its final state, by journey.");
    for (size_t mi = 0; mi < c->n_machines; mi++) {
        const cue_machine *m = cue_machines_get(c->ms, mi);
        cue_buf_reset(labels);
        cue_prom_label(labels, "machine", m->name, strlen(m->name));
        cue_prom_histogram(b, "cuepoint_journey_duration_seconds", labels->data,
                           &c->now.durations[mi]);
    }
    return b->len > 0 ? 0 : CUE_ENOMEM;
}

static void json_name(cue_buf *b, const char *key, const char *v)
{
    cue_buf_printf(b, "\"%s\":", key);
    cue_buf_append_json_str(b, v, strlen(v));
}

static void json_machine(const cue_journey_counts *c, size_t mi, cue_buf *b, bool *mark)
{
    const cue_machine *m = cue_machines_get(c->ms, mi);
    size_t n = m->n_states;
    cue_buf_append_char(b, '{');
    json_name(b, "name", m->name);
    cue_buf_printf(b, ",\"version\":%u,\"keyed\":%s,\"initial\":", (unsigned)m->version,
                   m->keyed ? "true" : "false");
    cue_buf_append_json_str(b, m->states[m->initial].name, strlen(m->states[m->initial].name));
    cue_buf_append_str(b, ",\"states\":[");
    for (size_t s = 0; s < n; s++) {
        cue_buf_append_str(b, s ? ",{" : "{");
        json_name(b, "name", m->states[s].name);
        cue_buf_printf(b, ",\"final\":%s,\"users\":%lld}", m->states[s].final ? "true" : "false",
                       (long long)c->now.users[c->user_off[mi] + s]);
    }
    cue_buf_append_str(b, "],\"edges\":[");
    declared_edges(c->ms, m, mark);
    bool first = true;
    for (size_t k = 0; k < (n + 1) * n; k++) {
        uint64_t tr = c->now.transitions[c->edge_off[mi] + k];
        if (!mark[k] && tr == 0) continue;
        int from = (int)(k / n) - 1;
        cue_buf_append_str(b, first ? "{\"from\":" : ",{\"from\":");
        first = false;
        if (from < 0)
            cue_buf_append_str(b, "null");
        else
            cue_buf_append_json_str(b, m->states[from].name, strlen(m->states[from].name));
        cue_buf_append_str(b, ",\"to\":");
        cue_buf_append_json_str(b, m->states[k % n].name, strlen(m->states[k % n].name));
        cue_buf_printf(b, ",\"transitions\":%llu,\"triggers\":%llu}", (unsigned long long)tr,
                       (unsigned long long)c->now.triggers[c->edge_off[mi] + k]);
    }
    const cue_histogram *h = &c->now.durations[mi];
    cue_buf_printf(b, "],\"finished\":%llu,\"duration_seconds_sum\":%.3f}",
                   (unsigned long long)h->count, h->sum);
}

int cue_journey_counts_json(const cue_journey_counts *c, cue_buf *b)
{
    bool mark[(CUE_MACHINE_STATES_MAX + 1) * CUE_MACHINE_STATES_MAX];
    cue_buf_append_str(b, "{\"journeys\":[");
    for (size_t mi = 0; mi < c->n_machines; mi++) {
        if (mi) cue_buf_append_char(b, ',');
        json_machine(c, mi, b, mark);
    }
    return cue_buf_append_str(b, "]}");
}
