/* The policy stage: deciding each trigger (compiling: policy_compile.c). */
#include "policy_int.h"

#include "cuepoint/hash.h"
#include "cuepoint/timefmt.h"
#include "cuepoint/tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names found not to be zones, remembered: the tz module looks an unknown
 * name up on disk every time, and a user's bad attribute comes with every
 * one of their triggers. */
#define UNKNOWN_ZONES 64

struct cue_policy_tz {
    cue_tz *tz;                      /* owned */
    uint64_t unknown[UNKNOWN_ZONES]; /* hashes of names that are not zones; 0 = free */
    unsigned next_unknown;
};

void cue_policy_free(cue_policy *p)
{
    free(p);
}

int cue_policy_tz_new(cue_policy_tz **out, cue_err *err)
{
    cue_policy_tz *z = calloc(1, sizeof *z);
    if (z == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    int rc = cue_tz_new(&z->tz, TZ_ZONES_MAX, err);
    if (rc != 0) {
        free(z);
        return rc;
    }
    *out = z;
    return 0;
}

void cue_policy_tz_free(cue_policy_tz *z)
{
    if (z == NULL) return;
    cue_tz_free(z->tz);
    free(z);
}

/* ---- deciding ---------------------------------------------------------- */

int cue_policy_channel_find(const char *name, size_t len)
{
    for (int i = 0; i < CUE_CHANNELS_MAX; i++)
        if (strlen(cue_channel_names[i]) == len && memcmp(cue_channel_names[i], name, len) == 0)
            return i;
    return -1;
}

static bool in_scope(const scope *sc, uint32_t machine, uint32_t trigger, uint8_t cls)
{
    if (sc->n_machines) {
        bool hit = false;
        for (int i = 0; i < sc->n_machines; i++)
            hit |= sc->machines[i] == machine;
        if (!hit) return false;
    }
    if (sc->n_triggers) {
        bool hit = false;
        for (int i = 0; i < sc->n_triggers; i++)
            hit |= sc->triggers[i] == trigger;
        if (!hit) return false;
    }
    return sc->classes == 0 || (sc->classes & (1u << cls));
}

uint8_t cue_policy_class(const cue_policy *p, uint16_t machine, uint8_t trigger)
{
    return p->rules[machine][trigger].cls;
}

const char *cue_policy_class_name(const cue_policy *p, uint8_t cls)
{
    return cls < p->n_classes ? p->classes[cls] : "";
}

size_t cue_policy_experiments(const cue_policy *p)
{
    return p->n_exps;
}

const char *cue_policy_experiment_name(const cue_policy *p, size_t e)
{
    CUE_ASSERT(e < (size_t)p->n_exps);
    return p->exps[e].name;
}

/* A point in [0, 10000) from the user and a salt, the same everywhere. */
static uint32_t bucket(const char *user, size_t len, const char *salt, uint64_t seed)
{
    uint64_t h = cue_hash64(user, len, cue_hash64(salt, strlen(salt), seed));
    return (uint32_t)(h % 10000);
}

int cue_policy_assign(const cue_policy *p, size_t e, const char *user, size_t len)
{
    const experiment *x = &p->exps[e];
    if (bucket(user, len, x->name, 1) < x->holdout_bp) return -1;
    uint64_t total = x->cum[x->n_variants - 1];
    CUE_ASSERT(total > 0); /* each weight is at least 0.001 */
    uint64_t h = cue_hash64(user, len, cue_hash64(x->name, strlen(x->name), 2));
    uint64_t pick = h % total;
    for (int v = 0; v < x->n_variants; v++)
        if (pick < x->cum[v]) return v;
    return x->n_variants - 1;
}

int cue_policy_experiment_of(const cue_policy *p, uint16_t machine, uint8_t trigger)
{
    const cue_machine *m = cue_machines_get(p->ms, machine);
    uint8_t cls = p->rules[machine][trigger].cls;
    /* A trigger is in one experiment: the first that names it. */
    for (int e = 0; e < p->n_exps; e++)
        if (in_scope(&p->exps[e].sc, m->hash, m->triggers[trigger].hash, cls)) return e;
    return -1;
}

bool cue_policy_class_bypass(const cue_policy *p, uint8_t cls)
{
    return cls < p->n_classes && p->bypass[cls];
}

static const char *attr(const cue_user *u, cue_attr a, size_t *len)
{
    *len = u->attr_len[a];
    return u->attrs[a];
}

/* The user's zone: their attribute if it names a real zone, else their
 * region's, else the default. An unknown name is not an error here: the
 * user still gets quiet hours, in the default zone. */
static int user_zone(const cue_policy *p, cue_policy_tz *z, const cue_user *u)
{
    size_t n;
    const char *name = attr(u, CUE_ATTR_TIMEZONE, &n);
    int zone;
    if (n) {
        uint64_t h = cue_hash64(name, n, 4) | 1;
        bool known_bad = false;
        for (int i = 0; i < UNKNOWN_ZONES && !known_bad; i++)
            known_bad = z->unknown[i] == h;
        if (!known_bad) {
            if (cue_tz_find(z->tz, name, n, &zone, NULL) == 0) return zone;
            z->unknown[z->next_unknown++ % UNKNOWN_ZONES] = h;
        }
    }
    const char *region = attr(u, CUE_ATTR_REGION, &n);
    for (int i = 0; n && i < p->n_region_zones; i++) {
        const region_zone *rz = &p->region_zones[i];
        if (strlen(rz->region) == n && memcmp(rz->region, region, n) == 0 &&
            cue_tz_find(z->tz, rz->zone, strlen(rz->zone), &zone, NULL) == 0)
            return zone;
    }
    int rc = cue_tz_find(z->tz, p->default_zone, strlen(p->default_zone), &zone, NULL);
    CUE_ASSERT(rc == 0); /* checked when the policy was loaded */
    return zone;
}

static bool opt_in_region(const cue_policy *p, const cue_user *u)
{
    size_t n;
    const char *region = attr(u, CUE_ATTR_REGION, &n);
    for (int i = 0; i < p->n_consent_rules; i++) {
        const consent_rule *r = &p->consent_rules[i];
        for (int j = 0; j < r->n_regions; j++)
            if (strlen(r->regions[j]) == n && memcmp(r->regions[j], region, n) == 0)
                return r->opt_in;
        if (r->any) return r->opt_in;
    }
    return false;
}

bool cue_policy_quiet_at(const cue_policy *p, cue_policy_tz *z, const cue_user *u, int64_t ms)
{
    return p->quiet &&
           cue_tz_quiet(z->tz, user_zone(p, z, u), ms, p->quiet_start, p->quiet_end, NULL);
}

bool cue_policy_opt_in(const cue_policy *p, const cue_user *u)
{
    return opt_in_region(p, u);
}

static bool may_use(const cue_policy *p, const cue_user *u, uint8_t ch)
{
    const cue_user_policy *up = &u->policy;
    if (up->muted & (1u << ch)) return false;
    if (up->consent[ch] == CUE_CONSENT_GRANTED) return true;
    if (up->consent[ch] == CUE_CONSENT_DENIED) return false;
    return !opt_in_region(p, u);
}

static uint8_t pick_channel(const cue_policy *p, const cue_user *u, const trig_rule *r)
{
    for (int i = 0; i < r->n_channels; i++)
        if (may_use(p, u, r->channels[i])) return r->channels[i];
    return CUE_CH_NONE;
}

/* A past send's class under the current policy: classes are positions in the
 * policy file, which may be reordered, so the stored one is not trusted. */
static uint8_t class_of(const cue_policy *p, const cue_sent *s)
{
    int ti;
    int mi = cue_machines_find_trigger(p->ms, s->machine, s->trigger, &ti);
    if (ti >= 0) return p->rules[mi][ti].cls;
    return s->cls < p->n_classes ? s->cls : (uint8_t)(p->n_classes - 1);
}

/* When a cap lets this trigger through again, or INT64_MIN when it does now. */
static int64_t cap_blocks(const cue_policy *p, cue_policy_tz *z, const cue_user *u,
                          const cap_rule *k, uint32_t mh, uint32_t th, uint8_t cls, int64_t now,
                          int *zone)
{
    const cue_user_policy *up = &u->policy;
    if (!in_scope(&k->sc, mh, th, cls)) return INT64_MIN;
    if (k->kind == CAP_COOLDOWN) {
        for (int i = up->n_sent - 1; i >= 0; i--)
            if (up->sent[i].trigger == th && up->sent[i].machine == mh &&
                up->sent[i].ms > now - k->window_ms)
                return up->sent[i].ms + k->window_ms;
        return INT64_MIN;
    }
    int count = 0;
    int64_t times[CUE_POLICY_SENDS_MAX];
    int64_t day = 0;
    if (k->kind == CAP_DAY) {
        if (*zone < 0) *zone = user_zone(p, z, u);
        day = cue_tz_day(z->tz, *zone, now);
    }
    for (int i = 0; i < up->n_sent; i++) {
        const cue_sent *s = &up->sent[i];
        if (!in_scope(&k->sc, s->machine, s->trigger, class_of(p, s))) continue;
        bool inside = k->kind == CAP_ROLLING ? s->ms > now - k->window_ms
                                             : cue_tz_day(z->tz, *zone, s->ms) == day;
        if (inside) times[count++] = s->ms;
    }
    if (count < k->max) return INT64_MIN;
    if (k->max == 0) return INT64_MAX; /* never frees: deferring means dropping */
    if (k->kind == CAP_DAY) return cue_tz_day_start(z->tz, *zone, day + 1);
    /* sent[] is oldest first: the window frees when enough of the oldest leave it. */
    CUE_ASSERT(count >= k->max && k->max > 0);
    return times[count - k->max] + k->window_ms;
}

static void remember_decision(cue_user *u, const cue_policy_trigger *t, uint32_t mh, uint32_t th,
                              const cue_decision *d)
{
    cue_user_policy *up = &u->policy;
    if (up->n_decided == CUE_POLICY_DECISIONS_MAX) {
        memmove(&up->decided[0], &up->decided[1],
                (CUE_POLICY_DECISIONS_MAX - 1) * sizeof up->decided[0]);
        up->n_decided--;
    }
    cue_decided *x = &up->decided[up->n_decided++];
    x->ms = d->decided_ms;
    x->until = d->until_ms;
    x->machine = mh;
    x->trigger = th;
    x->outcome = (uint8_t)d->outcome;
    x->why = (uint8_t)d->why;
    x->channel = d->channel;
    snprintf(x->id, sizeof x->id, "%s", t->id);
}

/* Remembers a send for the caps, when one could ever count it: a class that
 * bypasses caps, or a trigger no cap covers, would only push out sends that
 * do count (the memory holds CUE_POLICY_SENDS_MAX). */
static void remember_send(const cue_policy *p, cue_user *u, uint32_t mh, uint32_t th,
                          const cue_decision *d)
{
    if (p->bypass[d->cls]) return;
    bool counted = false;
    for (int i = 0; i < p->n_caps && !counted; i++)
        counted = in_scope(&p->caps[i].sc, mh, th, d->cls);
    if (!counted) return;
    cue_user_policy *up = &u->policy;
    if (up->n_sent == CUE_POLICY_SENDS_MAX) {
        memmove(&up->sent[0], &up->sent[1], (CUE_POLICY_SENDS_MAX - 1) * sizeof up->sent[0]);
        up->n_sent--;
    }
    up->sent[up->n_sent++] = (cue_sent){
        .ms = d->decided_ms, .machine = mh, .trigger = th, .cls = d->cls, .channel = d->channel};
}

/* Parks the trigger in the user's state; false when there is no room. */
static bool park(cue_user *u, const cue_policy_trigger *t, uint32_t mh, uint32_t th,
                 const cue_decision *d)
{
    cue_user_policy *up = &u->policy;
    if (up->n_deferred == CUE_POLICY_DEFERRED_MAX || t->rec_len > CUE_POLICY_DEFERRED_BYTES_MAX)
        return false;
    cue_deferred *x = &up->deferred[up->n_deferred++];
    x->due_ms = d->until_ms;
    x->time_ms = t->time_ms;
    x->machine = mh;
    x->trigger = th;
    x->why = (uint8_t)d->why;
    x->timer = t->timer;
    x->late = d->late;
    snprintf(x->id, sizeof x->id, "%s", t->id);
    memcpy(x->rec, t->rec, t->rec_len);
    x->rec_len = (uint16_t)t->rec_len;
    return true;
}

static uint64_t spread(const cue_policy *p, const cue_user *u)
{
    if (p->spread_ms <= 0) return 0;
    return cue_hash64(u->id, u->id_len, 3) % (uint64_t)p->spread_ms;
}

/* The experiment a trigger is in and the user's variant (NULL: its
 * holdout), into `d`, which every record of the trigger carries. Returns
 * the experiment's index, or -1. */
static int experiment_in(const cue_policy *p, const cue_user *u, uint16_t machine, uint8_t trigger,
                         cue_decision *d)
{
    int e = cue_policy_experiment_of(p, machine, trigger);
    if (e < 0) return -1;
    int v = cue_policy_assign(p, (size_t)e, u->id, u->id_len);
    d->experiment = p->exps[e].name;
    d->variant = v >= 0 ? p->exps[e].variants[v] : NULL;
    return e;
}

/* Rules 4 and 5, quiet hours then caps, for a trigger that may go out now:
 * leaves `d` a send, or makes it a deferral or a suppression. `excused`: let
 * through late by rule 2, so its max_age no longer bounds a wait. */
static void wait_rules(const cue_policy *p, cue_policy_tz *z, const cue_user *u,
                       const cue_policy_trigger *t, bool excused, int64_t now, cue_decision *d)
{
    const cue_machine *m = cue_machines_get(p->ms, t->machine);
    const trig_rule *r = &p->rules[t->machine][t->trigger];
    int64_t max_age = excused ? INT64_MAX : r->max_age_ms;
    int zone = -1;
    int64_t ends;
    if (p->quiet) zone = user_zone(p, z, u);
    if (p->quiet && cue_tz_quiet(z->tz, zone, now, p->quiet_start, p->quiet_end, &ends)) {
        d->until_ms = ends + (int64_t)spread(p, u);
        d->why = CUE_WHY_QUIET_HOURS;
        d->rule = "quiet_hours";
        d->outcome = CUE_OUTCOME_DEFERRED;
        if (max_age != INT64_MAX && d->until_ms - t->time_ms > max_age) {
            d->outcome = CUE_OUTCOME_SUPPRESSED;
            d->why = CUE_WHY_TOO_LATE;
            d->until_ms = INT64_MIN;
        }
        return;
    }
    for (int i = 0; i < p->n_caps; i++) {
        const cap_rule *k = &p->caps[i];
        int64_t frees =
            cap_blocks(p, z, u, k, m->hash, m->triggers[t->trigger].hash, r->cls, now, &zone);
        if (frees == INT64_MIN) continue;
        d->why = k->kind == CAP_COOLDOWN ? CUE_WHY_COOLDOWN : CUE_WHY_CAP;
        d->rule = k->name;
        /* INT64_MAX: a cap of 0 never frees, so deferring would mean dropping. */
        bool waits = k->defer && frees != INT64_MAX &&
                     (max_age == INT64_MAX || frees - t->time_ms <= max_age);
        d->outcome = waits ? CUE_OUTCOME_DEFERRED : CUE_OUTCOME_SUPPRESSED;
        if (waits) d->until_ms = frees;
        return;
    }
}

void cue_policy_decide(const cue_policy *p, cue_policy_tz *z, cue_user *u,
                       const cue_policy_trigger *t, int64_t now, cue_decision *d)
{
    const cue_machine *m = cue_machines_get(p->ms, t->machine);
    const trig_rule *r = &p->rules[t->machine][t->trigger];
    uint32_t mh = m->hash, th = m->triggers[t->trigger].hash;
    *d = (cue_decision){.outcome = CUE_OUTCOME_SENT,
                        .why = CUE_WHY_NONE,
                        .channel = CUE_CH_NONE,
                        .cls = r->cls,
                        .until_ms = INT64_MIN,
                        .decided_ms = now,
                        .rule = ""};
    int e = experiment_in(p, u, t->machine, t->trigger, d);
    if (e >= 0 && d->variant == NULL) {
        d->outcome = CUE_OUTCOME_SUPPRESSED;
        d->why = CUE_WHY_HOLDOUT;
        d->rule = p->exps[e].name;
        goto done;
    }
    /* A late trigger that `late` lets through is past its max_age already:
     * it may still wait for quiet hours or a cap, but max_age no longer
     * drops it (that would make "mark" a "drop" at night), and a mark it
     * was given stays when it waits. */
    bool excused = t->late;
    if (t->timer && r->max_age_ms != INT64_MAX && now - t->time_ms > r->max_age_ms) {
        if (r->late == LATE_DROP) {
            d->outcome = CUE_OUTCOME_SUPPRESSED;
            d->why = CUE_WHY_TOO_LATE;
            d->rule = "max_age";
            goto done;
        }
        excused = true;
        d->late = r->late == LATE_MARK;
    }
    d->late |= t->late;
    d->channel = pick_channel(p, u, r);
    if (d->channel == CUE_CH_NONE) {
        d->outcome = CUE_OUTCOME_SUPPRESSED;
        d->why = CUE_WHY_NO_CONSENT;
        d->rule = "consent";
        goto done;
    }
    if (!p->bypass[r->cls]) wait_rules(p, z, u, t, excused, now, d);
done:
    if (d->outcome == CUE_OUTCOME_DEFERRED && !park(u, t, mh, th, d)) {
        d->outcome = CUE_OUTCOME_SUPPRESSED;
        d->why =
            t->rec_len > CUE_POLICY_DEFERRED_BYTES_MAX ? CUE_WHY_TOO_LARGE : CUE_WHY_DEFERRED_FULL;
        d->until_ms = INT64_MIN;
    }
    /* Only a send has a channel: a deferred trigger picks one again when it
     * comes due, since consent may have changed meanwhile. */
    if (d->outcome == CUE_OUTCOME_SENT)
        remember_send(p, u, mh, th, d);
    else
        d->channel = CUE_CH_NONE;
    remember_decision(u, t, mh, th, d);
}

void cue_policy_fields(const cue_policy *p, const cue_decision *d, cue_buf *out)
{
    cue_buf_append_str(out, "\"policy\":{\"channel\":");
    if (d->channel < CUE_CHANNELS_MAX)
        cue_buf_printf(out, "\"%s\"", cue_channel_names[d->channel]);
    else
        cue_buf_append_str(out, "null");
    cue_buf_append_str(out, ",\"class\":");
    const char *cls = cue_policy_class_name(p, d->cls);
    cue_buf_append_json_str(out, cls, strlen(cls));
    if (d->experiment) {
        cue_buf_append_str(out, ",\"experiment\":");
        cue_buf_append_json_str(out, d->experiment, strlen(d->experiment));
        cue_buf_append_str(out, ",\"variant\":");
        cue_buf_append_json_str(out, d->variant, strlen(d->variant));
    }
    if (d->late) cue_buf_append_str(out, ",\"late\":true");
    cue_buf_append_char(out, '}');
}

bool cue_policy_take_due(cue_user *u, int64_t now_ms, cue_deferred *out)
{
    cue_user_policy *up = &u->policy;
    int best = -1;
    for (int i = 0; i < up->n_deferred; i++)
        if (up->deferred[i].due_ms <= now_ms &&
            (best < 0 || up->deferred[i].due_ms < up->deferred[best].due_ms ||
             (up->deferred[i].due_ms == up->deferred[best].due_ms &&
              strcmp(up->deferred[i].id, up->deferred[best].id) < 0)))
            best = i;
    if (best < 0) return false;
    *out = up->deferred[best];
    up->deferred[best] = up->deferred[--up->n_deferred];
    return true;
}

/* ---- events the policy reads ------------------------------------------- */

static bool type_is(const cue_event *ev, const char *type)
{
    return type[0] && ev->type_len == strlen(type) && memcmp(ev->type, type, ev->type_len) == 0;
}

static int channel_of(const cue_event *ev, const cue_json_ptr *ptr)
{
    cue_value v = cue_event_value(ev, ptr);
    return v.type == CUE_VAL_STRING ? cue_policy_channel_find(v.s, v.len) : -1;
}

static bool flag_of(const cue_event *ev, const cue_json_ptr *ptr, bool *out)
{
    cue_value v = cue_event_value(ev, ptr);
    if (v.type != CUE_VAL_BOOL) return false;
    *out = v.b;
    return true;
}

const cue_json_ptr *cue_policy_event_ptr(const cue_policy *p, size_t i)
{
    const cue_json_ptr *consent[] = {&p->consent_channel, &p->consent_granted};
    const cue_json_ptr *mute[] = {&p->mute_channel, &p->mute_muted};
    /* Only those of configured events: the others are never read. */
    if (p->consent_event[0] && i < 2) return consent[i];
    if (p->consent_event[0]) i -= 2;
    return p->mute_event[0] && i < 2 ? mute[i] : NULL;
}

bool cue_policy_is_erasure(const cue_policy *p, const cue_event *ev)
{
    return type_is(ev, p->erase_event);
}

cue_policy_event cue_policy_observe(const cue_policy *p, cue_user *u, const cue_event *ev,
                                    void (*cancelled)(const cue_deferred *d,
                                                      const cue_decision *dec, void *ctx),
                                    void *ctx, const char **why)
{
    bool flag;
    int ch;
    if (type_is(ev, p->consent_event)) {
        ch = channel_of(ev, &p->consent_channel);
        if (ch < 0 || !flag_of(ev, &p->consent_granted, &flag)) {
            *why = ch < 0 ? "consent event: the channel is not push, email, in_app or sms"
                          : "consent event: 'granted' is not true or false";
            return CUE_POLICY_EVENT_BAD;
        }
        u->policy.consent[ch] = flag ? CUE_CONSENT_GRANTED : CUE_CONSENT_DENIED;
    } else if (type_is(ev, p->mute_event)) {
        ch = channel_of(ev, &p->mute_channel);
        if (ch < 0 || !flag_of(ev, &p->mute_muted, &flag)) {
            *why = ch < 0 ? "mute event: the channel is not push, email, in_app or sms"
                          : "mute event: 'muted' is not true or false";
            return CUE_POLICY_EVENT_BAD;
        }
        if (flag)
            u->policy.muted |= (uint8_t)(1u << ch);
        else
            u->policy.muted &= (uint8_t) ~(1u << ch);
    } else {
        return CUE_POLICY_EVENT_NONE;
    }
    /* Withdrawn consent takes effect at once: a deferred trigger with no
     * channel left never goes out, even on a later window. */
    cue_user_policy *up = &u->policy;
    for (int i = 0; i < up->n_deferred;) {
        cue_deferred *x = &up->deferred[i];
        int ti;
        int mi = cue_machines_find_trigger(p->ms, x->machine, x->trigger, &ti);
        if (ti >= 0 && pick_channel(p, u, &p->rules[mi][ti]) != CUE_CH_NONE) {
            i++;
            continue;
        }
        cue_deferred gone = *x;
        *x = up->deferred[--up->n_deferred];
        cue_decision d = {.outcome = CUE_OUTCOME_CANCELLED,
                          .why = CUE_WHY_CONSENT_WITHDRAWN,
                          .channel = CUE_CH_NONE,
                          .cls = ti >= 0 ? p->rules[mi][ti].cls : 0,
                          .until_ms = INT64_MIN,
                          .decided_ms = ev->ts_ms,
                          .rule = "consent"};
        /* Like the trigger's other records (its deferral's): a cancellation
         * counts against its variant in an experiment's analysis. */
        if (ti >= 0) experiment_in(p, u, (uint16_t)mi, (uint8_t)ti, &d);
        cue_policy_trigger t = {.id = gone.id, .time_ms = gone.time_ms};
        remember_decision(u, &t, gone.machine, gone.trigger, &d);
        if (cancelled) cancelled(&gone, &d, ctx);
    }
    return CUE_POLICY_EVENT_CONSENT;
}
