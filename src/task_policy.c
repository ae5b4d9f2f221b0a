/* A step's triggers and the policy stage: triggers are held until the
 * step ends, then decided together, higher classes first (sent, deferred,
 * suppressed, cancelled), with a decision record each; deferred ones are
 * decided again when their time comes, and an erased user's end with it. */
#include "task_int.h"

#include "cuepoint/timefmt.h"
#include "cuepoint/trigger.h"

#include <stdlib.h>
#include <string.h>

/* A trigger made in the current step, waiting for the policy: triggers of one
 * step are decided together, higher classes first. */
typedef struct pending {
    uint16_t machine;
    uint8_t trigger, cls;
    bool timer, late; /* see cue_policy_trigger */
    int64_t time_ms;
    uint32_t seq; /* the order they were made in, for a stable sort */
    uint32_t rec_off, rec_len;
    char id[CUE_HASH_HEX_LEN + 1];
} pending;

void cue_task_on_trigger(const cue_trigger *tr, void *ctx)
{
    cue_task *t = ctx;
    if (t->policy) {
        /* Held for the step's end, when the policy decides them by class. */
        size_t off = t->pend_recs.len;
        cue_trigger_encode(tr, t->cfg->application_id, &t->pend_recs);
        pending pd = {.machine = tr->machine_index,
                      .trigger = tr->trigger_index,
                      .cls = cue_policy_class(t->policy, tr->machine_index, tr->trigger_index),
                      .timer = tr->ev == NULL,
                      .time_ms = tr->time_ms,
                      .seq = (uint32_t)(t->pend.len / sizeof(pending)),
                      .rec_off = (uint32_t)off,
                      .rec_len = (uint32_t)(t->pend_recs.len - off)};
        memcpy(pd.id, tr->id, sizeof pd.id);
        cue_buf_append(&t->pend, &pd, sizeof pd);
        return;
    }
    cue_buf_reset(&t->rec);
    cue_trigger_encode(tr, t->cfg->application_id, &t->rec);
    t->sink.trigger(tr, t->rec.data, t->rec.len, t->sink.ctx);
}

static void json_time_field(cue_buf *b, const char *key, int64_t ms)
{
    char text[CUE_TIME_TEXT_MAX];
    cue_buf_printf(b, ",\"%s\":", key);
    if (ms == INT64_MIN) {
        cue_buf_append_str(b, "null");
        return;
    }
    size_t n = cue_time_format_rfc3339(ms, text);
    cue_buf_append_json_str(b, text, n);
}

/* One decision as a record for the decisions topic or file. */
static void emit_decision(cue_task *t, const cue_machine *m, int trigger, const char *id,
                          int64_t time_ms, const cue_decision *d)
{
    if (t->sink.decision == NULL) return;
    cue_buf *b = &t->decision;
    const cue_user *u = t->user;
    cue_buf_reset(b);
    cue_buf_printf(b, "{\"trigger_id\":\"%s\",\"user_id\":", id);
    cue_buf_append_json_str(b, u->id, u->id_len);
    cue_buf_append_str(b, ",\"machine\":");
    cue_buf_append_json_str(b, m ? m->name : "", m ? strlen(m->name) : 0);
    cue_buf_append_str(b, ",\"trigger\":");
    const char *tn = m && trigger >= 0 ? m->triggers[trigger].name : "";
    cue_buf_append_json_str(b, tn, strlen(tn));
    cue_buf_printf(b,
                   ",\"outcome\":\"%s\",\"reason\":\"%s\",\"rule\":", cue_outcome_name(d->outcome),
                   cue_why_name(d->why));
    cue_buf_append_json_str(b, d->rule, strlen(d->rule));
    cue_buf_append_str(b, ",\"channel\":");
    if (d->channel < CUE_CHANNELS_MAX)
        cue_buf_printf(b, "\"%s\"", cue_channel_names[d->channel]);
    else
        cue_buf_append_str(b, "null");
    const char *cls = cue_policy_class_name(t->policy, d->cls);
    cue_buf_append_str(b, ",\"class\":");
    cue_buf_append_json_str(b, cls, strlen(cls));
    json_time_field(b, "trigger_time", time_ms);
    json_time_field(b, "decided_at", d->decided_ms);
    json_time_field(b, "until", d->until_ms);
    if (d->experiment) {
        cue_buf_append_str(b, ",\"experiment\":");
        cue_buf_append_json_str(b, d->experiment, strlen(d->experiment));
        cue_buf_append_str(b, ",\"variant\":");
        if (d->variant)
            cue_buf_append_json_str(b, d->variant, strlen(d->variant));
        else
            cue_buf_append_str(b, "null");
    }
    if (d->late) cue_buf_append_str(b, ",\"late\":true");
    cue_buf_append_char(b, '}');
    t->stats.decisions[d->outcome]++;
    t->sink.decision(u->id, u->id_len, b->data, b->len, t->sink.ctx);
}

/* Sends a trigger the policy let through: its record with the policy's
 * fields added as the last member of "data". */
static void send_decided(cue_task *t, const cue_policy_trigger *pt, const cue_decision *d)
{
    const cue_machine *m = cue_machines_get(t->ms, pt->machine);
    cue_buf_reset(&t->rec);
    /* The record ends with the closing braces of "data" and of the event. */
    CUE_ASSERT(pt->rec_len >= 2 && pt->rec[pt->rec_len - 1] == '}');
    cue_buf_append(&t->rec, pt->rec, pt->rec_len - 2);
    cue_buf_append_char(&t->rec, ',');
    cue_policy_fields(t->policy, d, &t->rec);
    cue_buf_append_str(&t->rec, "}}");
    cue_trigger tr = {.user = t->user,
                      .machine = m,
                      .machine_index = pt->machine,
                      .trigger_index = pt->trigger,
                      .name = m->triggers[pt->trigger].name,
                      .time_ms = pt->time_ms};
    memcpy(tr.id, pt->id, sizeof tr.id);
    t->sink.trigger(&tr, t->rec.data, t->rec.len, t->sink.ctx);
}

static void decide(cue_task *t, const cue_policy_trigger *pt, int64_t now)
{
    cue_decision d;
    cue_policy_decide(t->policy, t->tz, t->user, pt, now, &d);
    emit_decision(t, cue_machines_get(t->ms, pt->machine), pt->trigger, pt->id, pt->time_ms, &d);
    if (d.outcome == CUE_OUTCOME_SENT) send_decided(t, pt, &d);
}

static int pending_order(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    if (x->cls != y->cls) return x->cls < y->cls ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Decides the step's triggers, the higher class first: when two compete for
 * a cap's last slot, the class decides, not the order machines are listed. */
void cue_task_decide_step(cue_task *t)
{
    size_t n = t->pend.len / sizeof(pending);
    if (n == 0) return;
    pending *ps = (pending *)t->pend.data;
    if (n > 1) qsort(ps, n, sizeof *ps, pending_order);
    for (size_t i = 0; i < n; i++) {
        cue_policy_trigger pt = {.machine = ps[i].machine,
                                 .trigger = ps[i].trigger,
                                 .id = ps[i].id,
                                 .time_ms = ps[i].time_ms,
                                 .timer = ps[i].timer,
                                 .late = ps[i].late,
                                 .rec = t->pend_recs.data + ps[i].rec_off,
                                 .rec_len = ps[i].rec_len};
        /* Decided when it would go out: the step's stream time. A timer due
         * before the quiet hours that the partition's time reaches inside
         * them goes out inside them, so it is the later time that counts. */
        decide(t, &pt, t->now_ms);
    }
    cue_buf_reset(&t->pend);
    cue_buf_reset(&t->pend_recs);
}

/* Deferred triggers due by `due` join the step's batch, so a deferred
 * trigger competes by class with the timers' ones. Like them, each is decided
 * at the step's stream time, when it would go out: a deferral whose end the
 * partition's time passes only hours later (no events meanwhile) may find
 * quiet hours again, and waits again. */
void cue_task_release_deferred(cue_task *t, int64_t due)
{
    cue_deferred *d = t->released;
    while (cue_policy_take_due(t->user, due, d)) {
        int ti;
        int mi = cue_machines_find_trigger(t->ms, d->machine, d->trigger, &ti);
        const cue_machine *m = mi >= 0 ? cue_machines_get(t->ms, (size_t)mi) : NULL;
        if (ti < 0) {
            /* Its machine or trigger was removed: nothing to send, and said so. */
            cue_decision gone = {.outcome = CUE_OUTCOME_CANCELLED,
                                 .why = CUE_WHY_MACHINE_CHANGED,
                                 .channel = CUE_CH_NONE,
                                 .until_ms = INT64_MIN,
                                 .decided_ms = t->now_ms,
                                 .rule = "machines"};
            emit_decision(t, m, -1, d->id, d->time_ms, &gone);
            continue;
        }
        size_t off = t->pend_recs.len;
        if (cue_buf_append(&t->pend_recs, d->rec, d->rec_len) != 0) continue; /* counted below */
        pending pd = {.machine = (uint16_t)mi,
                      .trigger = (uint8_t)ti,
                      .cls = cue_policy_class(t->policy, (uint16_t)mi, (uint8_t)ti),
                      .timer = d->timer,
                      .late = d->late,
                      .time_ms = d->time_ms,
                      .seq = (uint32_t)(t->pend.len / sizeof(pending)),
                      .rec_off = (uint32_t)off,
                      .rec_len = d->rec_len};
        memcpy(pd.id, d->id, sizeof pd.id);
        cue_buf_append(&t->pend, &pd, sizeof pd);
    }
}

void cue_task_on_cancelled(const cue_deferred *x, const cue_decision *d, void *ctx)
{
    cue_task *t = ctx;
    int ti;
    int mi = cue_machines_find_trigger(t->ms, x->machine, x->trigger, &ti);
    const cue_machine *m = mi >= 0 ? cue_machines_get(t->ms, (size_t)mi) : NULL;
    emit_decision(t, m, ti, x->id, x->time_ms, d);
}

void cue_task_decide_erased(cue_task *t, const cue_event *ev)
{
    if (t->sink.decision == NULL) return;
    /* The user's deferred triggers end here: each gets its final decision,
     * with its trigger id and without the user. */
    cue_buf *b = &t->decision;
    unsigned dropped = 0;
    for (size_t i = 0; t->user_loaded && i < t->user->policy.n_deferred; i++) {
        const cue_deferred *d = &t->user->policy.deferred[i];
        cue_buf_reset(b);
        cue_buf_printf(b, "{\"trigger_id\":\"%s\",\"outcome\":\"cancelled\",\"reason\":\"erased\"",
                       d->id);
        json_time_field(b, "decided_at", ev->ts_ms);
        cue_buf_append_char(b, '}');
        t->stats.decisions[CUE_OUTCOME_CANCELLED]++;
        t->sink.decision(NULL, 0, b->data, b->len, t->sink.ctx);
        dropped++;
    }
    cue_buf_reset(b);
    cue_buf_printf(b, "{\"outcome\":\"erased\",\"partition\":%u,\"offset\":%lld", t->partition,
                   (long long)ev->offset);
    json_time_field(b, "decided_at", ev->ts_ms);
    cue_buf_printf(b, ",\"deferred_dropped\":%u}", dropped);
    t->sink.decision(NULL, 0, b->data, b->len, t->sink.ctx);
}
