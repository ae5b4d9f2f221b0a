#!/bin/bash
# kafka_eos.sh with three stream threads and a task's own commit every 1,500
# records of its partition: the clean run, aborted transactions (every task
# rolled back, whichever thread's commit aborted, nothing produced by the
# others in between) and fencing give the file mode's triggers and states as
# with one thread.
EOS_THREADS=3 EOS_COMMIT_RECORDS=1500 EOS_MIN_ABORTS=1 exec bash "$(dirname "$0")/kafka_eos.sh" "$1"
