/*
 * runtime_int.h: what the parts of the runtime share (see runtime.h for the
 * whole). Private to src/runtime/.
 */
#ifndef CUEPOINT_RUNTIME_INT_H
#define CUEPOINT_RUNTIME_INT_H

#include "cuepoint/runtime.h"
#include "cuepoint/buf.h"
#include "cuepoint/http.h"
#include "cuepoint/journey_counts.h"
#include "cuepoint/kafka.h"
#include "cuepoint/kafka_group.h"
#include "cuepoint/log.h"
#include "cuepoint/metrics.h"
#include "cuepoint/offsets.h"
#include "cuepoint/restore.h"
#include "cuepoint/standby.h"
#include "cuepoint/store.h"
#include "cuepoint/task.h"
#include "cuepoint/timefmt.h"
#include "cuepoint/version.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

typedef struct rt rt; /* the runtime: defined below, after its parts' structs */

/* A librdkafka client's queues on the libuv loop (client.c): its consumer's
 * pipe watched, and its producer's when it produces; served a batch per turn,
 * the rest on the next turn. */
typedef struct rt_client {
    cue_kafka *k; /* borrowed */
    uv_poll_t cpoll, ppoll;
    uv_idle_t more;
    bool producer, started;
    size_t batch; /* records per turn: fewer served means the queue is empty */
    /* One turn: serves at most `batch` records and says how many (NULL:
     * cue_kafka_consume). Not called while may_serve says no. */
    size_t (*serve)(void *ctx);
    bool (*may_serve)(void *ctx);
    void (*produced)(void *ctx); /* after delivery reports were served */
    void *ctx;
} rt_client;

void rt_client_start(rt_client *c, uv_loop_t *loop, cue_kafka *k, bool producer);
/* Serves a turn now, and keeps serving turns while the queue is full. */
void rt_client_pump(rt_client *c);
/* Serves from the next turn on. Needed once may_serve turns true again:
 * librdkafka signals a queue once until it is served, and one signalled
 * while may_serve said no is not signalled again. */
void rt_client_resume(rt_client *c);
void rt_client_close(rt_client *c);

typedef struct part {
    cue_task *task;   /* owned while assigned; NULL otherwise */
    int64_t position; /* next offset to process */
    int64_t high;     /* the high watermark last seen, or -1 */
    /* The same for the further input topics (input.topics[1..]). */
    int64_t more_position[CUE_INPUT_TOPICS_MAX - 1];
    int64_t more_high[CUE_INPUT_TOPICS_MAX - 1];
    uint64_t consumed;
    /* Where each input topic's first record is expected since the task
     * started consuming (rt_part_positions_reset; -1: seen). The first one
     * applied is logged with it: on an input without gaps (no compaction,
     * no transactions) a record past it means records were skipped. */
    int64_t first_from[CUE_INPUT_TOPICS_MAX];
    bool first_pending;
    /* The partition's reset marker, carried forward in every group commit
     * so the reset reaches stores that have not seen it (offsets.h). Group
     * commits are skipped while `group_unread`: the group's metadata could
     * not be read at assignment, and a commit must not overwrite a marker
     * this instance never saw. */
    char marker[CUE_KAFKA_META_MAX];
    bool group_unread;
    /* Changes each time the partition's task goes: a store write handed
     * over before (loop.c's on_written) commits no group offset after it. */
    uint32_t gen;
    /* The task's batch last handed to the store's writer (loop.c's
     * commit_async), until its on_written: not owned, and NULL after. */
    struct written *handed;
    /* Rebuilding the partition's state from the changelog before it
     * processes input (held meanwhile): records [restore_from, restore_end). */
    bool restoring;
    int64_t restore_from, restore_end, restore_pos;
    int64_t restore_synced_ms; /* when restore_end was read: records past it came later */
    cue_restore rs;
    uint64_t restore_started_ns;
    /* A standby replica (num.standby.replicas): the changelog tailed into
     * the local store from `restore_pos` on, while another instance owns
     * the partition. `sb` counts what it applied. */
    bool standby;
    cue_restore sb;
    uint64_t sb_records_before; /* applied by this partition's earlier standbys */
    uint64_t standby_retry_ns;  /* a failed start is not tried again before this */
    /* Exactly-once: the input offsets (per input topic) the last committed
     * transaction sent (-1: none since the assignment), so an idle cycle
     * sends nothing. */
    int64_t txn_sent[CUE_INPUT_TOPICS_MAX];
} part;
enum { RUNNING = 0, COMMITTING };

/* The changelog reader (changelog_reader.c, with changelog.enabled): outside
 * any group, it restores partitions assigned here and keeps standby replicas
 * of others current. */
typedef struct rt_reader {
    cue_kafka *k;   /* owned */
    cue_config cfg; /* the live config with the changelog topic as its input */
    rt_client client;
    size_t restoring; /* partitions being restored */
    size_t standbys;  /* partitions kept here as standby replicas */
    uint64_t skipped; /* changelog records restores and standbys did not apply */
    /* Assignment's (set by setup.c): opens the task of a partition whose
     * state is whole again. Through this, a finished restore reaches the
     * assignment without the reader calling into it. */
    int (*open_task)(rt *r, int32_t partition, cue_err *err);
} rt_reader;

/* Standby replicas' placement (members.c): the members topic's reader and
 * writer (outside the group), the view of the members it gives, this
 * instance's name in it. */
typedef struct rt_members {
    cue_kafka *k; /* owned */
    cue_config cfg;
    cue_members *view; /* owned */
    char name[CUE_MEMBER_NAME_BYTES_MAX];
    bool read;          /* the topic was read to its end once */
    bool *want;         /* owned: per partition, from cue_members_standbys */
    int32_t *owned_ids; /* owned: room for every partition, for the member record */
    int32_t parts;
    uint64_t bad;
    cue_buf rec;
    rt_client client;
    uv_timer_t heartbeat;
} rt_members;

/* The repartition stage (repartition.c, config "repartition"): a member of
 * its own group (<application.id>-repartition) on the input topic that
 * re-keys each record by its user id into the repartition topic, which the
 * pipeline reads. Stateless: its position is its group's committed offset. */
typedef struct rt_stage1 {
    cue_kafka *k; /* owned */
    cue_config cfg;
    cue_event_decoder *dec; /* owned */
    rt_client client;
    bool *owned; /* per input partition */
    /* Per input partition: the head record's event time and user id (decoded
     * once), and the offset after the last record passed on. */
    struct head1 {
        int64_t offset, ts_ms;
        char uid[CUE_USER_ID_BYTES_MAX];
        size_t uid_len;
    } * h;
    int64_t *emitted;
    uint64_t wait_ns; /* since when a partition with data still to come held the merge */
    int32_t n;
    bool assigned_once;
    uint64_t repartitioned;
} rt_stage1;
/* The commit cycle's steps, in their order for each partition: its records
 * acknowledged (the producer flushed), its store batch written (state,
 * timers and the input offset together), its offset committed to the group. */
typedef enum rt_step_id { RT_STEP_ACKED, RT_STEP_STORED, RT_STEP_GROUP_COMMITTED } rt_step_id;

/* Told each step as it is done (a seam for the unit suites; NULL in a run).
 * `partition` is -1 for a step of the whole producer (acknowledgements). */
typedef void (*rt_probe_fn)(rt *r, rt_step_id step, int32_t partition, void *ctx);

/* The console's recent activity (console.c): running totals sampled every
 * ACTIVITY_EVERY_MS, the last ACTIVITY_SAMPLES of them (ten minutes). */
#define ACTIVITY_EVERY_MS 5000
#define ACTIVITY_SAMPLES  120
typedef struct rt_activity {
    int64_t time_ms; /* the real clock */
    uint64_t records, triggers, produced, dead_letters;
    uint64_t decisions[CUE_OUTCOME_COUNT];
} rt_activity;

struct rt {
    const cue_runtime_opts *o;
    /* The pipeline's config: the caller's, or with repartition its copy whose
     * input is <application.id>-repartition. */
    const cue_config *cfg;
    cue_config cfg_main;
    cue_runtime_result *res;
    cue_config task_cfg; /* the config with the cache budget divided among partitions */
    uv_loop_t loop;
    rt_client main; /* the pipeline's consumer of the input, and its producer */
    uv_timer_t commit_timer, clock_timer, stop_timer;
    uv_async_t store_wake; /* the store's writer thread wrote a batch */
    uv_signal_t sigterm, sigint;
    cue_store *store;    /* owned */
    cue_kafka *k;        /* owned */
    int32_t input_parts; /* the input's partition count at start; 0 before it is known */
    rt_reader reader;
    rt_members mem;
    rt_stage1 s1;
    cue_http *http;      /* owned */
    bool admin_loopback; /* the admin address bound is a loopback one */
    cue_task_sink sink;
    part *parts; /* owned; n_parts of them, indexed by partition */
    int32_t n_parts;
    int state;
    /* A sealed cycle's batches wait at the store's gate for its records'
     * acknowledgements (loop.c's seal_cycle) while intake goes on;
     * `log_held`: with the changelog, its records are still held in the
     * tasks, to be produced once the triggers are acknowledged. */
    bool sealed, log_held;
    /* Tests: cycles that stop intake, as exactly-once's and the repartition
     * stage's do, without setting either up. */
    bool no_seal;
    bool stop_requested, assigned_once;
    /* Between a revocation and the assignment that ends that rebalance
     * (cooperative rebalances end with an assignment, empty or not). */
    bool rebalancing;
    int fatal_rc;
    cue_err fatal_err;
    uint64_t commit_started_ns, started_ns, first_record_ns, last_record_ns;
    bool took_records; /* a record was taken in the consume batch under way */
    /* A task's changed users passed half its cache (set from any stream
     * thread): the loop begins a commit cycle after the batch under way. */
    bool cycle_wanted;
    /* Sealed cycles take the partitions a slice at a time (on_commit_timer):
     * the slice the next tick seals, counted on. */
    uint32_t slice_next;
    uint64_t early_cycles; /* cycles begun for cycle_wanted, before their time */
    cue_histogram commit_hist;
    cue_histogram write_hist; /* a task's state batch written on the store's thread */
    cue_histogram ack_hist;   /* a sealed cycle: from the seal to its records acknowledged */
    cue_task_stats retired;   /* summed from tasks already freed, so counters only grow */
    cue_cache_stats retired_cache;
    cue_buf labels; /* owned: a metric's label list, rebuilt per sample */
    /* Live journey counts (journey_counts.h): the edge totals of partitions
     * no longer here, so counters only grow, and a scrape's sum. */
    cue_journey_counts *journeys_retired, *journeys_sum; /* owned */
    uint64_t recount_ns, recounts; /* journey recounts at task open: time taken, how many */
    rt_activity activity[ACTIVITY_SAMPLES]; /* a ring: activity_n samples before activity_head */
    size_t activity_head, activity_n;
    uint64_t activity_last_ms; /* the loop's clock at the last sample */
    /* Exactly-once: the offsets handed to each transaction (owned, n_parts
     * long, grown with it) and whether the producer was fenced. */
    int32_t *txn_parts;
    int64_t *txn_offsets;
    uint8_t *txn_topics;
    const char **txn_meta;
    bool fenced;
    /* Transactions aborted since the last one committed: a record that
     * fails the same way each time would otherwise be redone for ever. */
    int aborts_in_row;
    bool started; /* the loop's handles are open (rt_start) */
    rt_probe_fn probe;
    void *probe_ctx;
    struct rt_workers *workers; /* owned; NULL with one stream thread */
};

/* loop.c: the loop, the clocks, the commit cycle, stopping. A run is
 * rt_new, rt_open, rt_start, the loop until it stops, rt_end (the unit
 * suites drive the loop themselves between rt_start and rt_end). */
rt *rt_new(const cue_runtime_opts *o, cue_runtime_result *res); /* NULL: out of memory */
int rt_open(rt *r, cue_err *err); /* opens everything and subscribes */
void rt_start(rt *r);             /* the loop's handles: clients, timers, signals */
/* Closes the handles, commits what is left unless the run failed, closes
 * everything and frees `r`; returns the run's status. */
int rt_end(rt *r, int rc, cue_err *err);
void rt_begin_commit(rt *r); /* a commit cycle starts: intake stops */
void rt_check_commit(rt *r); /* ends a commit cycle once its records are acknowledged */

/* core.c: what every part uses and none owns; it calls no other part, so
 * the parts' calls among themselves stay one-way (loop and setup on top,
 * core at the bottom). */
void rt_step(rt *r, rt_step_id step, int32_t partition); /* tells the probe */
int64_t rt_wall_ms(rt *r); /* the runtime's clock: injected (CUEPOINT_CLOCK) or real */
int64_t rt_real_ms(void);  /* the real one, compared with other processes' and brokers' */
/* Ends the run without another commit: whatever was not committed is made
 * again by the next run, with the same ids. */
void rt_fatal(rt *r, int rc, const char *msg);
part *rt_part_get(rt *r, int32_t p);
void rt_on_fatal(const char *why, void *ctx); /* a Kafka client's fatal error */
void rt_batch_commit(rt *r);                  /* the store's shared batch (restores, standbys) */
int rt_flush(rt *r,
             cue_err *err); /* every record produced so far acknowledged (not exactly-once) */
/* The journey counts of the partitions here (and the edge totals of those
 * gone), summed into r->journeys_sum; borrowed until the next call. */
const cue_journey_counts *rt_journeys_sum(rt *r);

/* setup.c: opening everything, in order, and the checks before. */
int rt_open_all(rt *r, cue_err *err);
/* The input's partition count against the one state.dir was built for. */
int rt_partition_count_check(rt *r, int32_t partitions, cue_err *err);

/* collector.c: the tasks' sink onto the producer. */
cue_task_sink rt_collector(rt *r);

/* assign.c: the partition table, assignment and revocation, a record's way
 * to its task, exactly-once's commit and rollback. */
int rt_parts_reserve(rt *r, int32_t p);
/* The number of input topics (input.topics; 1 with input.topic). */
uint32_t rt_topics(const rt *r);
/* The task's next input offsets, one per input topic, into `out`. */
void rt_task_offsets(const part *p, uint32_t topics, int64_t *out);
/* Whether the partition's position in every input topic is at the high
 * watermark last seen (refreshed first when `refresh`). */
bool rt_part_caught_up(rt *r, int32_t id, bool refresh);
/* Sets the partition's positions from its task's next offsets. */
void rt_part_positions_reset(rt *r, part *p);
int rt_task_open(rt *r, int32_t id, cue_err *err);
void rt_part_release(rt *r, int32_t id, bool lost, bool sync);
/* Partition `id` is lost while its sealed cycle's changelog records are
 * still held (their triggers not yet acknowledged): that cycle does not
 * commit, and its batch waiting at the store's gate is dropped. Written, it
 * would leave the local copy a cycle ahead of the changelog for good (the
 * records are never produced), and a restore from the changelog, by another
 * instance or by this one once the copy is gone, would miss that cycle. */
void rt_part_lost_cycle(rt *r, int32_t id);
/* The partition's task has just committed in place: the steps, and its
 * offsets to the group (waited for when `sync`). */
void rt_part_committed(rt *r, int32_t id, bool sync);
int rt_on_assigned(const int32_t *ids, int64_t *start, size_t n, void *ctx);
void rt_on_revoked(const int32_t *ids, size_t n, bool lost, void *ctx);
void rt_on_message(const cue_kafka_msg *m, void *ctx);
/* rt_on_message's two halves: the record counted and its partition found
 * (NULL: none here, or the run is stopping), on the loop's thread; then
 * offered to the partition's task, on whichever thread has the partition.
 * Returns 0, or what stops the run (err says why). */
part *rt_record_part(rt *r, const cue_kafka_msg *m);
int rt_record_apply(part *p, const cue_kafka_msg *m, cue_err *err);
void rt_on_prefetch(const cue_kafka_msg *m, int stage, void *ctx);
int rt_eos_commit(rt *r, cue_err *err);
void rt_eos_rollback(rt *r, const char *why);
void rt_eos_cycle(rt *r);

/* changelog_reader.c: restores and standby replicas from the changelog. */
int rt_changelog_open(rt *r, int32_t partitions, cue_err *err);
int rt_reader_open(rt *r, cue_err *err);
void rt_reader_start(rt *r);
/* Decides whether partition `id` needs its state from the changelog, and
 * starts that restore (the partition is held meanwhile). */
int rt_restore_plan(rt *r, int32_t id, bool *needed, cue_err *err);
void rt_standby_stop(rt *r, int32_t id, const char *why);
void rt_standby_update(rt *r);

/* workers.c: the stream threads (num.stream.threads above 1). */
int rt_workers_open(rt *r, uint32_t n, cue_err *err);
void rt_workers_close(rt *r);
/* The main consumer's batch handler: the records spread over the threads
 * by partition, processed, and waited for (cue_kafka_batch_fn). */
void rt_workers_batch(const cue_kafka_msg *msgs, size_t n, void *ctx);
/* cue_task_sink's exclusive. */
void rt_workers_exclusive(bool enter, void *ctx);
/* Around what only one thread at a time may call (the caller's
 * on_trigger); nothing without stream threads. */
void rt_workers_serial(rt *r, bool enter);
/* Exactly-once inside a batch: a transaction aborted (set by the thread
 * whose commit aborted, in its exclusive section), so no other commits
 * before the loop rolls back after the batch; false (and nothing set)
 * outside batches, where the caller rolls back at once. */
bool rt_workers_abort(rt *r);
bool rt_workers_aborted(const rt *r);
/* The stream threads (1 without workers), and thread i's records processed
 * and time stood still for another's exclusive section (with workers only;
 * between batches). */
uint32_t rt_workers_count(const rt *r);
void rt_workers_stats(const rt *r, uint32_t i, uint64_t *records, uint64_t *paused_ns);

/* members.c: the members topic and the instance id. */
int rt_members_open(rt *r, int32_t partitions, cue_err *err);
void rt_members_start(rt *r);
void rt_members_stop(rt *r);
void rt_members_close(rt *r);
void rt_members_publish(rt *r);
int rt_txn_id_derive(cue_config *c, cue_err *err);

/* repartition.c: the repartition stage. */
int rt_stage1_open(rt *r, cue_err *err);
void rt_stage1_start(rt *r);
void rt_stage1_commit(rt *r, bool sync);
void rt_stage1_close(rt *r);
bool rt_stage1_at_end(rt *r, int32_t p);
bool rt_repartition_drained(rt *r);

/* admin.c: admin HTTP and /metrics. */
int rt_check_admin(const char *listen, cue_err *err);
int rt_open_admin(rt *r, cue_err *err);

/* console.c: the console page and its JSON. */
/* Answers `path` if it is the console's (returns the status), else 0. */
int rt_console_http(rt *r, const char *path, cue_http_reply *reply);
/* Samples the activity totals when one is due (called by the clock). */
void rt_activity_tick(rt *r);

#endif
