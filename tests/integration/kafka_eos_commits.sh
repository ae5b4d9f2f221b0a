#!/bin/bash
# kafka_eos.sh with a task's own commit every 1,500 records of its partition:
# such commits happen inside a consume turn, with records already taken from
# the consumer, and an abort there must drop those records (the consumer
# gives them again from the positions rolled back to). Before that was so,
# the abort case lost triggers here (353 of 14,238) and ended with other states.
EOS_COMMIT_RECORDS=1500 EOS_MIN_ABORTS=1 exec bash "$(dirname "$0")/kafka_eos.sh" "$1"
