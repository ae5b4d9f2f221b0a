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
