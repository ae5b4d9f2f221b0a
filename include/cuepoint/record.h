/*
 * record: one input record as a reader offers it to a task (task.h), from a
 * topic (kafka.h) or a file. Borrowed for the call; no code.
 */
#ifndef CUEPOINT_RECORD_H
#define CUEPOINT_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* No Kafka timestamp on a record (files; old message formats). */
#define CUE_NO_TIMESTAMP (-1)

/* One input record as the task is offered it; everything borrowed for the
 * call. The reference time of a record, which its event's time may not pass
 * by more than event.time.max.future.ms, is its Kafka timestamp (set by the
 * producing service or the broker, not by the device the event came from),
 * else the reader's clock (cue_task_set_clock). One record cannot move it. */
typedef struct cue_record {
    const char *value;
    size_t value_len;
    const char *key; /* NULL: records carry no key (files) */
    size_t key_len;
    int64_t offset;       /* >= the task's next offset in its topic */
    uint8_t topic;        /* index in input.topics; 0 for files */
    int64_t timestamp_ms; /* CUE_NO_TIMESTAMP when it has none */
} cue_record;

#endif
