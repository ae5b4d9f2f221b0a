/*
 * trigger: a trigger as a CloudEvents 1.0 structured-mode JSON record, the
 * format downstream senders read (schemas/trigger.schema.json):
 *
 *   {"specversion":"1.0","id":<trigger_id>,"source":"cuepoint/<app>/<machine>",
 *    "type":<trigger name>,"subject":<user id>,"time":<cause time, UTC>,
 *    "datacontenttype":"application/json",
 *    "data":{<the machine's fields>,"machine":..,"version":..,"instance_key":..,
 *            "from_state":..,"to_state":..,"cause":{"event":<type>}|{"timer":<name>}}}
 *
 * Keys in a fixed order and no input position anywhere, so the same trigger is
 * the same bytes from a file, a live run or a replay. Pure; any thread.
 */
#ifndef CUEPOINT_TRIGGER_H
#define CUEPOINT_TRIGGER_H

#include "cuepoint/buf.h"
#include "cuepoint/engine.h"

/* Appends the record (no trailing newline) to `out`. CUE_ENOMEM only. The
 * machine's, states', trigger's and timer's names are written unescaped:
 * they are names machine.c admitted (letters, digits, '_', '-', '.'). */
int cue_trigger_encode(const cue_trigger *t, const char *application_id, cue_buf *out);

/* Appends a value as JSON: strings quoted, JSON text as is, absent as null. */
int cue_trigger_append_value(cue_buf *out, const cue_value *v);

#endif
