/* The CloudEvents record: fixed key order, escaped values, the journey facts. */
#include "cuepoint/trigger.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

static char last[4096];

static void keep(const cue_trigger *t, void *ctx)
{
    cue_buf b;
    cue_buf_init(&b, 256);
    cue_trigger_encode(t, "app", &b);
    snprintf(last, sizeof last, "%s", b.data);
    cue_buf_deinit(&b);
}

Test(trigger, cloudevents_shape)
{
    cue_machines *ms = compile_text(
        "{\"name\":\"m\",\"version\":2,\"instance_key\":\"/"
        "k\",\"start\":{\"event\":\"go\",\"do\":[{"
        "\"emit\":\"hi\",\"data\":{\"text\":{\"event\":\"/t\"},\"obj\":{\"event\":\"/o\"},"
        "\"missing\":{\"event\":\"/nope\"},\"n\":1.5}}]},\"initial\":\"a\",\"states\":{\"a\":{}}}");
    cue_config cfg;
    cue_config_defaults(&cfg);
    cfg.event_time_min_ms = 0; /* the cases count time from 0 */
    cue_event_decoder *d;
    cue_err err;
    cue_event_decoder_new(&d, &cfg, &err);
    const char *raw = "{\"user_id\":\"u\\\"1\",\"type\":\"go\",\"ts\":1000,\"k\":\"p1\",\"t\":"
                      "\"a\\nb\",\"o\":{\"x\":[1,2]}}";
    cue_event ev;
    cue_reason r;
    cr_assert(cue_event_decode(d, raw, strlen(raw), &ev, &r, &err) == 0, "%s", err.msg);
    static cue_user u;
    cue_user_init(&u, ev.user_id, ev.user_id_len);
    cue_step_stats st = {0};
    last[0] = '\0';
    cue_engine_apply(ms, &u, &ev, NULL, keep, NULL, &st);
    cr_assert_eq(st.triggers, 1);
    json_error_t jerr;
    json_t *j = json_loads(last, 0, &jerr);
    cr_assert(j != NULL, "not JSON: %s (%s)", last, jerr.text);
    cr_assert(strncmp(last, "{\"specversion\":\"1.0\",\"id\":\"", 27) == 0, "%s", last);
    cr_assert_str_eq(json_string_value(json_object_get(j, "source")), "cuepoint/app/m");
    cr_assert_str_eq(json_string_value(json_object_get(j, "subject")), "u\"1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "time")), "1970-01-01T00:00:01.000Z");
    cr_assert_eq(strlen(json_string_value(json_object_get(j, "id"))), 32);
    json_t *data = json_object_get(j, "data");
    cr_assert_str_eq(json_string_value(json_object_get(data, "text")), "a\nb");
    cr_assert(json_is_array(json_object_get(json_object_get(data, "obj"), "x")));
    cr_assert(json_is_null(json_object_get(data, "missing")));
    cr_assert_float_eq(json_real_value(json_object_get(data, "n")), 1.5, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(data, "version")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(data, "instance_key")), "p1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(data, "cause"), "event")),
                     "go");
    json_decref(j);
    cue_event_decoder_free(d);
    cue_machines_free(ms);
}

/* Reads a JSON string member back as bytes (jansson unescapes it). */
static void expect_member(json_t *obj, const char *key, const char *want, size_t n)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    cr_expect_eq(json_string_length(v), n, "%s: %zu bytes, %zu wanted", key, json_string_length(v),
                 n);
    cr_expect(memcmp(json_string_value(v), want, n) == 0, "%s differs", key);
}

Test(trigger, every_escaped_text_at_its_longest_fits_and_reads_back)
{
    /* The record is written into room reserved up front: every text that
     * may need escapes (application id, user id, instance key, event type,
     * data values) at its longest and all escapes, six bytes a byte, must
     * still fit and come back as it went in. */
    cue_machines *ms = compile_text(
        "{\"name\":\"m.long-name_of_a_machine\",\"version\":4294967295,\"instance_key\":\"/k\","
        "\"start\":{\"event\":\"go\",\"do\":[{\"emit\":\"hi\",\"data\":{"
        "\"a\":{\"event\":\"/t\"},\"b\":{\"event\":\"/t\"},\"c\":{\"event\":\"/t\"},"
        "\"d\":{\"event\":\"/t\"}}}]},\"initial\":\"a\",\"states\":{\"a\":{}}}");
    const cue_machine *m = cue_machines_get(ms, 0);
    char app[CUE_NAME_BYTES_MAX], text[CUE_KEY_BYTES_MAX];
    memset(app, '"', sizeof app);
    app[sizeof app - 1] = '\0';
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)(1 + i % 31); /* control characters: \u00XX each */
    static cue_user u;
    cue_user_init(&u, text, CUE_USER_ID_BYTES_MAX);
    static cue_instance in;
    in.key_len = CUE_KEY_BYTES_MAX;
    memcpy(in.key, text, sizeof text);
    static cue_event ev;
    ev.type = text;
    ev.type_len = sizeof text;
    cue_trigger t = {.user = &u,
                     .machine = m,
                     .inst = &in,
                     .name = m->triggers[0].name,
                     .from_state = m->states[0].name,
                     .to_state = m->states[0].name,
                     .time_ms = 253402300799999LL, /* 9999-12-31T23:59:59.999Z */
                     .ev = &ev,
                     .fields = cue_machines_fields(ms),
                     .n_fields = 4};
    memset(t.id, 'f', CUE_HASH_HEX_LEN);
    for (int i = 0; i < 4; i++)
        t.values[i] = (cue_value){.type = CUE_VAL_STRING, .s = text, .len = sizeof text};
    for (size_t start = 0; start < 3; start++) {
        /* A buffer already holding something, or exactly full, or empty. */
        cue_buf b;
        cue_buf_init(&b, start == 2 ? 0 : 64);
        if (start == 1) cue_buf_append(&b, "x", 1);
        size_t before = b.len;
        cr_assert_eq(cue_trigger_encode(&t, app, &b), 0);
        cr_assert_eq(b.data[b.len], '\0');
        json_error_t jerr;
        json_t *j = json_loadb(b.data + before, b.len - before, 0, &jerr);
        cr_assert(j != NULL, "not JSON: %s", jerr.text);
        char source[16 + 2 * CUE_NAME_BYTES_MAX];
        int n = snprintf(source, sizeof source, "cuepoint/%s/%s", app, m->name);
        expect_member(j, "source", source, (size_t)n);
        expect_member(j, "subject", text, CUE_USER_ID_BYTES_MAX);
        expect_member(j, "time", "9999-12-31T23:59:59.999Z", 24);
        json_t *data = json_object_get(j, "data");
        expect_member(data, "instance_key", text, sizeof text);
        expect_member(data, "a", text, sizeof text);
        expect_member(data, "d", text, sizeof text);
        expect_member(data, "machine", m->name, strlen(m->name));
        cr_expect_eq(json_integer_value(json_object_get(data, "version")), 4294967295LL);
        expect_member(json_object_get(data, "cause"), "event", text, sizeof text);
        json_decref(j);
        cue_buf_deinit(&b);
    }
    cue_machines_free(ms);
}
