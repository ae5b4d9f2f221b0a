/* The journey compiler (machine.c) from JSON text, and what runs on what it
 * compiles: the lints and the graph (check.c), the engine (engine.c) over a
 * few events of every type the machine names and every timer that comes
 * due, and the state codec's round trip of the user it leaves. */
#include "cuepoint/check.h"
#include "cuepoint/codec.h"
#include "cuepoint/engine.h"

#include "fuzz.h"

#include <stdio.h>
#include <string.h>

static cue_config cfg;
static cue_event_decoder *dec;
static cue_user user, back;
static cue_buf rec, out;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cue_config_defaults(&cfg);
    cue_err err = {0};
    if (cue_event_decoder_new(&dec, &cfg, &err) != 0) abort();
    cue_buf_init(&rec, 4096);
    cue_buf_init(&out, 4096);
    return 0;
}

static void on_trigger(const cue_trigger *t, void *ctx)
{
    (void)ctx;
    if (strlen(t->id) != CUE_HASH_HEX_LEN) abort();
}

/* The event types machine 0 names (start and transitions), and one it
 * does not, for "*" transitions. */
static size_t event_types(const cue_machines *ms, const char **names, size_t cap)
{
    const cue_machine *m = cue_machines_get(ms, 0);
    const cue_transition *all = cue_machines_transitions(ms);
    int32_t ids[CUE_MACHINE_TRANSITIONS_MAX + 1];
    size_t n_ids = 0, n = 0;
    if (m->start.on == CUE_ON_EVENT) ids[n_ids++] = m->start.type_id;
    for (uint16_t s = 0; s < m->n_states; s++)
        for (uint16_t k = 0; k < m->states[s].n_transitions; k++) {
            const cue_transition *t = &all[m->states[s].first_transition + k];
            if (t->on == CUE_ON_EVENT && n_ids < CUE_MACHINE_TRANSITIONS_MAX)
                ids[n_ids++] = t->type_id;
        }
    for (size_t i = 0; i < n_ids && n + 1 < cap; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= ids[j] == ids[i];
        if (!seen) names[n++] = cue_machines_type_name(ms, ids[i]);
    }
    names[n++] = "something_else";
    return n;
}

/* One event of every type, at `ts`, with the fields the example journeys
 * and their variations read. */
static void apply_round(const cue_machines *ms, int64_t ts, int round, cue_step_stats *st)
{
    const char *types[64];
    size_t n_types = event_types(ms, types, 64);
    for (size_t ty = 0; ty < n_types; ty++) {
        char ev_text[1024];
        int n =
            snprintf(ev_text, sizeof ev_text,
                     "{\"user_id\":\"u1\",\"type\":\"%s\",\"ts\":%lld,\"event_id\":\"e%zu-%d\","
                     "\"user\":{\"role\":\"designer\",\"timezone\":\"Europe/Berlin\","
                     "\"region\":\"EU\"},\"props\":{\"project_id\":\"p%d\",\"due_at\":"
                     "\"2026-03-05T00:00:00Z\",\"project_name\":\"x\",\"count\":%d,"
                     "\"plan\":\"pro\",\"n\":-1,\"amount\":1.5,\"flag\":true,"
                     "\"trial_ends_at\":\"2026-03-15T09:00:00Z\",\"renewal_at\":1773921600000}}",
                     types[ty], (long long)ts, ty, round, round % 2, round * 3);
        if (n <= 0 || (size_t)n >= sizeof ev_text) continue;
        cue_event ev;
        cue_reason reason;
        cue_err err = {0};
        if (cue_event_decode(dec, ev_text, (size_t)n, &ev, &reason, &err) != 0) continue;
        ev.offset = round * 100 + (int64_t)ty;
        /* As the task does: an event whose timer times do not read is refused
         * whole, and the refusal must say why. */
        cue_step_refusal why;
        if (!cue_engine_check(ms, &user, &ev, NULL, &why)) {
            char text[512];
            if (cue_engine_refusal_text(ms, &why, text, sizeof text) == 0) abort();
            continue;
        }
        cue_engine_apply(ms, &user, &ev, NULL, on_trigger, NULL, st);
    }
}

/* Fires due timers in time order, at most `max` due times. */
static void fire_timers(const cue_machines *ms, int max, cue_step_stats *st)
{
    for (int k = 0; k < max; k++) {
        int64_t due = cue_user_next_due(&user);
        if (due == CUE_TIMER_NONE) return;
        cue_engine_fire(ms, &user, due, NULL, on_trigger, NULL, st);
        /* What is left or started comes due later: a timer's step that
         * started one at or before its own time would fire for ever. */
        int64_t next = cue_user_next_due(&user);
        if (next != CUE_TIMER_NONE && next <= due) {
            fprintf(stderr, "fuzz: after firing at %lld, a timer is due at %lld\n", (long long)due,
                    (long long)next);
            abort();
        }
    }
}

static void run_engine(const cue_machines *ms)
{
    cue_user_init(&user, "u1", 2);
    cue_step_stats st = {0};
    int64_t ts = 1772442000000; /* 2026-03-02T09:00:00Z */
    for (int round = 0; round < 3; round++) {
        apply_round(ms, ts + round * 3600000LL, round, &st);
        fire_timers(ms, 4, &st);
    }
    cue_err err = {0};
    if (cue_codec_encode(&user, ms, &rec) != 0) abort();
    if (cue_codec_decode(rec.data, rec.len, ms, &back, NULL, &err) != 0) {
        fprintf(stderr, "fuzz: a state the engine made does not decode: %s\n", err.msg);
        abort();
    }
    cue_buf_reset(&out);
    if (cue_user_to_json(&back, ms, &out) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_dup(data, size);
    cue_diags d;
    cue_diags_init(&d);
    cue_machines *ms = NULL;
    int rc = cue_machines_compile_text(&ms, "fuzz.json", text ? text : "", size, &d);
    if (rc == 0) {
        if (d.errors != 0 || cue_machines_count(ms) != 1) abort();
        cue_check_lint(ms, 0, &d);
        cue_buf_reset(&out);
        if (cue_check_graph(ms, 0, &out) != 0) abort();
        run_engine(ms);
        cue_machines_free(ms);
    } else if (d.errors == 0) {
        abort(); /* a refusal names what is wrong */
    }
    cue_diags_deinit(&d);
    free(text);
    return 0;
}
