/*
 * kafka_int: what the kafka module's files share (kafka.c has the pipeline's
 * clients, kafka_group.c the group's offsets and membership). Private to the
 * module: it is the only place besides those files that names librdkafka.
 */
#ifndef CUEPOINT_KAFKA_INT_H
#define CUEPOINT_KAFKA_INT_H

#include "cuepoint/kafka.h"

#include <librdkafka/rdkafka.h>

/* The client's consumer handle and config, borrowed for the client's life. */
rd_kafka_t *cue_kafka_consumer_handle(cue_kafka *k);
const cue_config *cue_kafka_config(const cue_kafka *k);

#endif
